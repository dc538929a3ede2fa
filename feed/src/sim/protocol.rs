//! The WebSocket market-stream protocol of one connection, sans IO: live SUBSCRIBE /
//! UNSUBSCRIBE / LIST_SUBSCRIPTIONS / SET_PROPERTY / GET_PROPERTY requests and their replies,
//! Binance's incoming message rate limit, and the server's ping/pong heartbeat.
//!
//! As Binance documents it: requests are `{"method":..,"params":[..],"id":..}`; a success is
//! `{"result":null,"id":1}` (or the list / property value); an error is
//! `{"error":{"code":2,"msg":"Invalid request: ..."},"id":1}` and the connection stays open.
//! Codes: 0 unknown property, 1 invalid value type, 2 invalid request, 3 invalid JSON.
//! `id` may be a 64-bit integer, an alphanumeric string of at most 36 characters, or null.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use super::stream::{Catalog, StreamKey, TimeUnit};

/// Most streams one connection may listen to (Binance: 1024).
pub const MAX_STREAMS: usize = 1024;
/// Most incoming messages (text, binary, ping, pong) per [`RATE_WINDOW`] (Binance: 5 per second).
pub const MAX_INCOMING_PER_WINDOW: usize = 5;
/// The window of [`MAX_INCOMING_PER_WINDOW`].
pub const RATE_WINDOW: Duration = Duration::from_secs(1);
/// Pings that may go unanswered before the connection is closed (Binance: a ping every 20 s,
/// closed after a minute without a pong).
pub const MISSED_PONGS: u32 = 3;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum Method {
    Subscribe,
    Unsubscribe,
    ListSubscriptions,
    SetProperty,
    GetProperty,
}

#[derive(Debug, Deserialize)]
struct Request {
    method: Method,
    #[serde(default)]
    params: Option<Value>,
}

/// What handling a request produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The JSON reply to send.
    pub reply: String,
    /// Whether the subscriptions or the `combined` property changed (the server then updates
    /// what it delivers to this connection before sending the reply).
    pub changed: bool,
}

/// The protocol state of one connection: its streams, payload format and time unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    subs: Vec<StreamKey>,
    combined: bool,
    unit: TimeUnit,
}

fn error(code: i64, msg: impl Into<String>, id: &Value) -> Outcome {
    Outcome {
        reply: json!({ "error": { "code": code, "msg": msg.into() }, "id": id }).to_string(),
        changed: false,
    }
}

fn ok(result: Value, id: &Value, changed: bool) -> Outcome {
    Outcome {
        reply: json!({ "result": result, "id": id }).to_string(),
        changed,
    }
}

fn valid_id(id: &Value) -> bool {
    match id {
        Value::Null => true,
        Value::Number(n) => n.is_i64() || n.is_u64(),
        Value::String(s) => {
            !s.is_empty() && s.len() <= 36 && s.bytes().all(|c| c.is_ascii_alphanumeric())
        }
        _ => false,
    }
}

impl Session {
    /// A session with the streams of its URL, `combined` for `/stream` (false for `/ws`), and
    /// the time unit of its `timeUnit` query parameter.
    pub fn new(subs: Vec<StreamKey>, combined: bool, unit: TimeUnit) -> Session {
        let mut s = Session {
            subs: Vec::new(),
            combined,
            unit,
        };
        for k in subs {
            if !s.subs.contains(&k) {
                s.subs.push(k);
            }
        }
        s
    }

    /// The streams, in subscription order.
    pub fn subscriptions(&self) -> &[StreamKey] {
        &self.subs
    }

    /// Whether payloads are wrapped as `{"stream":..,"data":..}`.
    pub fn combined(&self) -> bool {
        self.combined
    }

    /// The unit of `E` and `T`.
    pub fn unit(&self) -> TimeUnit {
        self.unit
    }

    /// Per-symbol masks of [`super::stream::StreamKind::bit`]s, indexed by symbol id, for
    /// `symbols` symbols.
    pub fn masks(&self, symbols: usize) -> Vec<u8> {
        let mut m = vec![0u8; symbols];
        for k in &self.subs {
            if let Some(slot) = m.get_mut(k.symbol as usize) {
                *slot |= k.kind.bit();
            }
        }
        m
    }

    /// Handles one text request and returns the reply (never fails: errors are replies).
    pub fn handle(&mut self, text: &str, catalog: &Catalog) -> Outcome {
        let null = Value::Null;
        let value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => return error(3, format!("Invalid JSON: {e}"), &null),
        };
        let request: Request = match serde_json::from_str(text) {
            Ok(r) => r,
            Err(e) => return error(2, format!("Invalid request: {e}"), &null),
        };
        let id = match value.get("id") {
            Some(id) if valid_id(id) => id.clone(),
            _ => {
                return error(
                    2,
                    "Invalid request: request ID must be an unsigned integer",
                    &null,
                );
            }
        };
        let params = match &request.params {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.clone(),
            Some(_) => {
                return error(2, "Invalid request: params must be an array", &id);
            }
        };
        match request.method {
            Method::Subscribe | Method::Unsubscribe => {
                let mut keys = Vec::with_capacity(params.len());
                for p in &params {
                    let Some(name) = p.as_str() else {
                        return error(
                            2,
                            format!(
                                "Invalid request: invalid stream {p}: stream names are strings"
                            ),
                            &id,
                        );
                    };
                    match catalog.parse_stream(name) {
                        Ok(k) => keys.push(k),
                        Err(e) => {
                            return error(
                                2,
                                format!("Invalid request: invalid stream {name:?}: {}", e.why),
                                &id,
                            );
                        }
                    }
                }
                if matches!(request.method, Method::Subscribe) {
                    let mut new = self.subs.clone();
                    for k in keys {
                        if !new.contains(&k) {
                            new.push(k);
                        }
                    }
                    if new.len() > MAX_STREAMS {
                        return error(
                            2,
                            format!(
                                "Invalid request: too many streams: a connection can listen to at most {MAX_STREAMS}"
                            ),
                            &id,
                        );
                    }
                    let changed = new != self.subs;
                    self.subs = new;
                    ok(Value::Null, &id, changed)
                } else {
                    let before = self.subs.len();
                    self.subs.retain(|k| !keys.contains(k));
                    ok(Value::Null, &id, self.subs.len() != before)
                }
            }
            Method::ListSubscriptions => {
                if !params.is_empty() {
                    return error(2, "Invalid request: too many parameters", &id);
                }
                let names: Vec<Value> = self
                    .subs
                    .iter()
                    .map(|&k| Value::String(catalog.stream_name(k)))
                    .collect();
                ok(Value::Array(names), &id, false)
            }
            Method::SetProperty => {
                let Some(name) = params.first().and_then(Value::as_str) else {
                    return error(2, "Invalid request: property name must be a string", &id);
                };
                if params.len() > 2 {
                    return error(2, "Invalid request: too many parameters", &id);
                }
                if name != "combined" {
                    return error(0, "Unknown property", &id);
                }
                let Some(value) = params.get(1).and_then(Value::as_bool) else {
                    return error(1, "Invalid value type: expected Boolean", &id);
                };
                let changed = value != self.combined;
                self.combined = value;
                ok(Value::Null, &id, changed)
            }
            Method::GetProperty => {
                let Some(name) = params.first().and_then(Value::as_str) else {
                    return error(2, "Invalid request: property name must be a string", &id);
                };
                if params.len() > 1 {
                    return error(2, "Invalid request: too many parameters", &id);
                }
                if name != "combined" {
                    return error(0, "Unknown property", &id);
                }
                ok(Value::Bool(self.combined), &id, false)
            }
        }
    }
}

/// Binance's incoming-message limit: at most `max` messages in any `window`.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    window: Duration,
    max: usize,
    times: VecDeque<Instant>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter::new(MAX_INCOMING_PER_WINDOW, RATE_WINDOW)
    }
}

impl RateLimiter {
    /// At most `max` messages per `window`.
    pub fn new(max: usize, window: Duration) -> RateLimiter {
        RateLimiter {
            window,
            max,
            times: VecDeque::with_capacity(max + 1),
        }
    }

    /// Counts a message received at `now`; false if it goes over the limit.
    pub fn allow(&mut self, now: Instant) -> bool {
        while let Some(&t) = self.times.front() {
            if now.saturating_duration_since(t) >= self.window {
                self.times.pop_front();
            } else {
                break;
            }
        }
        if self.times.len() >= self.max {
            return false;
        }
        self.times.push_back(now);
        true
    }
}

/// What the heartbeat wants on a tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Beat {
    /// Send a ping frame with this payload.
    Ping(Vec<u8>),
    /// No pong answered a ping for [`MISSED_PONGS`] intervals: close the connection.
    TimedOut,
}

/// Server pings and the pongs that answer them. Only a pong carrying the payload of a recent
/// ping counts as an answer; unsolicited pongs are allowed but do not keep the connection alive.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    interval: Duration,
    alive_at: Instant,
    outstanding: VecDeque<Vec<u8>>,
    sent: u64,
}

impl Heartbeat {
    /// A heartbeat pinging every `interval`, counting the connection as answered at `now`.
    pub fn new(interval: Duration, now: Instant) -> Heartbeat {
        Heartbeat {
            interval,
            alive_at: now,
            outstanding: VecDeque::new(),
            sent: 0,
        }
    }

    /// The ping interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// On each interval tick: ping, or give up after [`MISSED_PONGS`] unanswered intervals.
    pub fn on_tick(&mut self, now: Instant) -> Beat {
        if now.saturating_duration_since(self.alive_at) >= self.interval * MISSED_PONGS {
            return Beat::TimedOut;
        }
        self.sent += 1;
        let payload = self.sent.to_string().into_bytes();
        self.outstanding.push_back(payload.clone());
        while self.outstanding.len() > MISSED_PONGS as usize + 1 {
            self.outstanding.pop_front();
        }
        Beat::Ping(payload)
    }

    /// A pong arrived; true if it answers a recent ping.
    pub fn on_pong(&mut self, payload: &[u8], now: Instant) -> bool {
        if let Some(i) = self.outstanding.iter().position(|p| p == payload) {
            self.outstanding.drain(..=i);
            self.alive_at = now;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::stream::{StreamKind, SymbolSpec};
    use super::*;

    fn catalog() -> Catalog {
        let mut c = Catalog::new();
        c.add(SymbolSpec::new("BTCUSDT", 10_000_000, 10_000))
            .unwrap();
        c.add(SymbolSpec::new("ETHUSDT", 10_000_000, 10_000))
            .unwrap();
        c
    }

    fn reply(s: &mut Session, text: &str) -> Value {
        serde_json::from_str(&s.handle(text, &catalog()).reply).unwrap()
    }

    #[test]
    fn subscribe_list_unsubscribe() {
        let mut s = Session::new(vec![], true, TimeUnit::Millisecond);
        let out = s.handle(
            r#"{"method":"SUBSCRIBE","params":["btcusdt@trade","ethusdt@depth@100ms"],"id":1}"#,
            &catalog(),
        );
        assert!(out.changed);
        let v: Value = serde_json::from_str(&out.reply).unwrap();
        assert_eq!(v, json!({"result": null, "id": 1}));
        assert_eq!(
            reply(&mut s, r#"{"method":"LIST_SUBSCRIPTIONS","id":"abc"}"#),
            json!({"result": ["btcusdt@trade", "ethusdt@depth@100ms"], "id": "abc"})
        );
        assert_eq!(
            s.masks(2),
            vec![StreamKind::Trade.bit(), StreamKind::Depth100ms.bit()]
        );
        assert_eq!(
            reply(
                &mut s,
                r#"{"method":"UNSUBSCRIBE","params":["btcusdt@trade"],"id":null}"#
            ),
            json!({"result": null, "id": null})
        );
        assert_eq!(s.subscriptions().len(), 1);
        // Subscribing twice is harmless.
        let out = s.handle(
            r#"{"method":"SUBSCRIBE","params":["ethusdt@depth@100ms"],"id":-5}"#,
            &catalog(),
        );
        assert!(!out.changed);
    }

    #[test]
    fn properties() {
        let mut s = Session::new(vec![], false, TimeUnit::Microsecond);
        assert_eq!(
            reply(
                &mut s,
                r#"{"method":"GET_PROPERTY","params":["combined"],"id":2}"#
            ),
            json!({"result": false, "id": 2})
        );
        assert!(
            s.handle(
                r#"{"method":"SET_PROPERTY","params":["combined",true],"id":5}"#,
                &catalog()
            )
            .changed
        );
        assert!(s.combined());
        assert_eq!(
            reply(
                &mut s,
                r#"{"method":"SET_PROPERTY","params":["combined","yes"],"id":5}"#
            )["error"]["code"],
            1
        );
        assert_eq!(
            reply(
                &mut s,
                r#"{"method":"GET_PROPERTY","params":["colour"],"id":5}"#
            )["error"],
            json!({"code": 0, "msg": "Unknown property"})
        );
        assert_eq!(
            reply(&mut s, r#"{"method":"GET_PROPERTY","params":[7],"id":5}"#)["error"]["msg"],
            "Invalid request: property name must be a string"
        );
    }

    #[test]
    fn errors_keep_binance_codes_and_ids() {
        let mut s = Session::new(vec![], true, TimeUnit::Millisecond);
        let v = reply(
            &mut s,
            r#"{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1"#,
        );
        assert_eq!(v["error"]["code"], 3);
        assert!(
            v["error"]["msg"]
                .as_str()
                .unwrap()
                .starts_with("Invalid JSON: ")
        );
        assert_eq!(v["id"], Value::Null);
        let v = reply(&mut s, r#"{"method":"SUBSCRIB","params":[],"id":1}"#);
        assert_eq!(v["error"]["code"], 2);
        let msg = v["error"]["msg"].as_str().unwrap();
        assert!(
            msg.starts_with(
                "Invalid request: unknown variant `SUBSCRIB`, expected one of `SUBSCRIBE`"
            ),
            "{msg}"
        );
        assert!(msg.contains("at line 1 column"), "{msg}");
        let v = reply(&mut s, r#"{"params":[],"id":1}"#);
        assert!(
            v["error"]["msg"]
                .as_str()
                .unwrap()
                .contains("missing field `method`")
        );
        let v = reply(&mut s, r#"{"method":"SUBSCRIBE","params":[],"id":{"a":1}}"#);
        assert_eq!(
            v["error"]["msg"],
            "Invalid request: request ID must be an unsigned integer"
        );
        let v = reply(&mut s, r#"{"method":"SUBSCRIBE","params":[]}"#);
        assert_eq!(v["error"]["code"], 2);
        let v = reply(
            &mut s,
            r#"{"method":"SUBSCRIBE","params":["btcusdt@kline_1m"],"id":9}"#,
        );
        assert_eq!(v["id"], 9);
        let msg = v["error"]["msg"].as_str().unwrap();
        assert!(msg.starts_with("Invalid request: invalid stream"), "{msg}");
        let v = reply(
            &mut s,
            r#"{"method":"LIST_SUBSCRIPTIONS","params":["x"],"id":9}"#,
        );
        assert_eq!(v["error"]["msg"], "Invalid request: too many parameters");
        assert!(
            s.subscriptions().is_empty(),
            "failed requests change nothing"
        );
        assert!(valid_id(&json!("a1B2")));
        assert!(!valid_id(&json!("a-b")));
        assert!(!valid_id(&json!("x".repeat(37))));
        assert!(!valid_id(&json!(1.5)));
    }

    #[test]
    fn rate_limit() {
        let t0 = Instant::now();
        let mut r = RateLimiter::default();
        for i in 0..5 {
            assert!(r.allow(t0 + Duration::from_millis(i * 10)));
        }
        assert!(!r.allow(t0 + Duration::from_millis(900)));
        let mut r = RateLimiter::default();
        for i in 0..20 {
            assert!(r.allow(t0 + Duration::from_millis(i * 210)));
        }
    }

    #[test]
    fn heartbeat() {
        let t0 = Instant::now();
        let i = Duration::from_secs(20);
        let mut h = Heartbeat::new(i, t0);
        let Beat::Ping(p1) = h.on_tick(t0 + i) else {
            panic!()
        };
        assert!(!h.on_pong(b"", t0 + i), "unsolicited pong does not count");
        assert!(h.on_pong(&p1, t0 + i));
        assert!(matches!(h.on_tick(t0 + 2 * i), Beat::Ping(_)));
        assert!(matches!(h.on_tick(t0 + 3 * i), Beat::Ping(_)));
        // Last answer at 1 interval: still alive at 3, timed out at 4.
        assert_eq!(h.on_tick(t0 + 4 * i), Beat::TimedOut);
    }
}
