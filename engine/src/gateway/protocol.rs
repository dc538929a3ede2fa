//! The control messages of the public protocol (JSON text), sans-IO: parsing requests and
//! rendering replies.
//!
//! ```text
//! -> {"op":"subscribe","id":1,"symbols":["binance:BTCUSDT","okx:*"],"channels":["trades","quotes","book"],
//!     "encoding":"json","policy":"conflate","depth":20,"snapshot":true}
//! <- {"type":"subscribed","id":1,"symbols":["binance:BTCUSDT","okx:*"],"channels":["trades","quotes","book"],
//!     "encoding":"json","policy":"conflate","depth":20}
//! -> {"op":"snapshot","id":4,"symbols":["binance:BTCUSDT"],"channels":["book"]}
//! <- {"type":"snapshot","id":4}
//! -> {"op":"unsubscribe","id":2,"symbols":["binance:BTCUSDT"]}
//! <- {"type":"unsubscribed","id":2,"symbols":["binance:BTCUSDT"],"channels":["trades","quotes","book"]}
//! -> {"op":"list","id":5}
//! <- {"type":"instruments","id":5,"symbols":["binance:BTCUSDT","binance:ETHUSDT"]}
//! -> {"op":"ping","id":3}
//! <- {"type":"pong","id":3,"ts":1723161254087896568}
//! <- {"type":"error","id":4,"code":"unknown_channel","message":"..."}
//! ```

use serde_json::{Value, json};
use tickwire_sdk::wire::{Channel, Venue};

/// How data frames are sent to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// One JSON text message per frame (the public text protocol).
    Json,
    /// Binary messages, each a batch of rkyv frames (the Rust SDK).
    Binary,
}

impl Encoding {
    /// The name used in requests and replies.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Json => "json",
            Encoding::Binary => "binary",
        }
    }
}

/// How a subscription is delivered when the client cannot keep up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Every frame; a client that falls a whole ring behind is closed (4001).
    Lossless,
    /// Every frame while the client keeps up; when it does not, the latest state per stream
    /// (flagged `conflated`), trades folded into a summary.
    Conflate,
    /// At most one update per stream per interval (the latest state, trades folded).
    Interval(std::time::Duration),
}

impl Policy {
    /// The name used in requests and replies.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Lossless => "lossless",
            Policy::Conflate => "conflate",
            Policy::Interval(_) => "interval",
        }
    }
}

/// Options of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubOptions {
    /// Delivery policy.
    pub policy: Policy,
    /// Levels per side in book snapshots; `usize::MAX` (the default): the whole book.
    pub depth: usize,
    /// Send the current state first (book snapshot, latest quote, status).
    pub snapshot: bool,
}

impl Default for SubOptions {
    fn default() -> Self {
        SubOptions {
            policy: Policy::Conflate,
            depth: DEFAULT_DEPTH,
            snapshot: true,
        }
    }
}

/// Book snapshot levels per side when the request does not say: the whole book. (Deltas
/// are always whole-book: a client given only the top N levels cannot tell which level moves
/// into its top N when one of them goes, so a smaller depth suits a picture, not a book.)
pub const DEFAULT_DEPTH: usize = usize::MAX;
/// Most book snapshot levels per side a request may ask for.
pub const MAX_DEPTH: usize = 5_000;
/// Shortest and longest `interval_ms`.
pub const INTERVAL_MS: (u64, u64) = (10, 60_000);

/// What a subscription names: one instrument, or a pattern (`binance:*`, `*:BTCUSDT`, `*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SymbolSpec {
    /// One instrument.
    Exact(Symbol),
    /// Every instrument of a venue and/or with a symbol (`None` = any), now and later.
    Pattern {
        /// The venue, or any.
        venue: Option<Venue>,
        /// The symbol (upper case), or any.
        symbol: Option<String>,
    },
}

impl SymbolSpec {
    /// As written in requests: `venue:SYMBOL`, `venue:*`, `*:SYMBOL`, `*`.
    pub fn text(&self) -> String {
        match self {
            SymbolSpec::Exact(s) => s.qualified(),
            SymbolSpec::Pattern { venue, symbol } => format!(
                "{}:{}",
                venue.map_or("*", |v| v.name()),
                symbol.as_deref().unwrap_or("*")
            ),
        }
    }

    /// True if the pattern (or exact symbol) covers `venue:symbol`.
    pub fn matches(&self, venue: Venue, symbol: &str) -> bool {
        match self {
            SymbolSpec::Exact(s) => s.venue == venue && s.symbol == symbol,
            SymbolSpec::Pattern {
                venue: v,
                symbol: s,
            } => v.is_none_or(|v| v == venue) && s.as_deref().is_none_or(|s| s == symbol),
        }
    }
}

/// A parsed `venue:SYMBOL`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Symbol {
    /// The venue.
    pub venue: Venue,
    /// The venue's symbol, upper case.
    pub symbol: String,
}

impl Symbol {
    /// `venue:SYMBOL`.
    pub fn qualified(&self) -> String {
        format!("{}:{}", self.venue.name(), self.symbol)
    }
}

/// A client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Start receiving `channels` of `symbols`.
    Subscribe {
        /// Echoed in the reply.
        id: Option<Value>,
        /// Instruments and patterns.
        symbols: Vec<SymbolSpec>,
        /// Channels (all three if the request names none).
        channels: Vec<Channel>,
        /// Data encoding for this connection, if the request sets it.
        encoding: Option<Encoding>,
        /// Policy, depth, snapshot.
        options: SubOptions,
    },
    /// Stop receiving `channels` (all if none named) of `symbols`.
    Unsubscribe {
        /// Echoed in the reply.
        id: Option<Value>,
        /// Instruments and patterns.
        symbols: Vec<SymbolSpec>,
        /// Channels.
        channels: Vec<Channel>,
    },
    /// Send the current state of subscribed streams again (after a hole).
    Snapshot {
        /// Echoed in the reply.
        id: Option<Value>,
        /// Instruments.
        symbols: Vec<SymbolSpec>,
        /// Channels.
        channels: Vec<Channel>,
    },
    /// Liveness check: answered with `pong`.
    Ping {
        /// Echoed in the reply.
        id: Option<Value>,
    },
    /// Which symbols this server serves: answered with `instruments`.
    List {
        /// Echoed in the reply.
        id: Option<Value>,
    },
}

/// A request that could not be accepted: sent back as an `error` reply; the connection stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    /// The request's id, if it could be read.
    pub id: Option<Value>,
    /// Machine-readable code (`bad_json`, `bad_request`, `unknown_op`, `unknown_venue`,
    /// `bad_symbol`, `unknown_symbol`, `unknown_channel`, `bad_encoding`,
    /// `too_many_subscriptions`).
    pub code: &'static str,
    /// What was wrong and what to send instead.
    pub message: String,
}

impl RequestError {
    fn new(id: &Option<Value>, code: &'static str, message: impl Into<String>) -> RequestError {
        RequestError {
            id: id.clone(),
            code,
            message: message.into(),
        }
    }

    /// The `error` reply text.
    pub fn to_json(&self) -> String {
        json!({"type": "error", "id": self.id, "code": self.code, "message": self.message})
            .to_string()
    }
}

/// Parses one control message.
pub fn parse(text: &str) -> Result<Request, RequestError> {
    let v: Value = serde_json::from_str(text).map_err(|e| {
        RequestError::new(
            &None,
            "bad_json",
            format!("not valid JSON ({e}); send e.g. {{\"op\":\"subscribe\",\"symbols\":[\"binance:BTCUSDT\"]}}"),
        )
    })?;
    let Some(obj) = v.as_object() else {
        return Err(RequestError::new(
            &None,
            "bad_request",
            "a request is a JSON object with an \"op\" field",
        ));
    };
    let id = obj.get("id").cloned();
    let op = obj.get("op").and_then(Value::as_str).ok_or_else(|| {
        RequestError::new(
            &id,
            "bad_request",
            "missing \"op\": one of subscribe, unsubscribe, snapshot, list, ping",
        )
    })?;
    match op {
        "subscribe" => {
            let symbols = symbols(obj.get("symbols"), &id)?;
            let channels = channels(obj.get("channels"), &id)?;
            let encoding = match obj.get("encoding") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s == "json" => Some(Encoding::Json),
                Some(Value::String(s)) if s == "binary" => Some(Encoding::Binary),
                Some(other) => {
                    return Err(RequestError::new(
                        &id,
                        "bad_encoding",
                        format!("encoding {other} is not supported; use \"json\" or \"binary\""),
                    ));
                }
            };
            let options = options(obj, &id)?;
            Ok(Request::Subscribe {
                id,
                symbols,
                channels,
                encoding,
                options,
            })
        }
        "unsubscribe" => Ok(Request::Unsubscribe {
            symbols: symbols(obj.get("symbols"), &id)?,
            channels: channels(obj.get("channels"), &id)?,
            id,
        }),
        "snapshot" => Ok(Request::Snapshot {
            symbols: symbols(obj.get("symbols"), &id)?,
            channels: channels(obj.get("channels"), &id)?,
            id,
        }),
        "ping" => Ok(Request::Ping { id }),
        "list" => Ok(Request::List { id }),
        other => Err(RequestError::new(
            &id,
            "unknown_op",
            format!("unknown op {other:?}; ops are subscribe, unsubscribe, snapshot, list, ping"),
        )),
    }
}

fn options(
    obj: &serde_json::Map<String, Value>,
    id: &Option<Value>,
) -> Result<SubOptions, RequestError> {
    let mut o = SubOptions::default();
    match obj.get("policy") {
        None | Some(Value::Null) => {}
        Some(Value::String(p)) if p == "lossless" => o.policy = Policy::Lossless,
        Some(Value::String(p)) if p == "conflate" => o.policy = Policy::Conflate,
        Some(Value::String(p)) if p == "interval" => {
            let ms = obj
                .get("interval_ms")
                .and_then(Value::as_u64)
                .ok_or_else(|| {
                    RequestError::new(
                        id,
                        "bad_request",
                        "policy \"interval\" needs \"interval_ms\": a number of milliseconds",
                    )
                })?;
            if !(INTERVAL_MS.0..=INTERVAL_MS.1).contains(&ms) {
                return Err(RequestError::new(
                    id,
                    "bad_request",
                    format!(
                        "interval_ms {ms} is out of range: {}..={}",
                        INTERVAL_MS.0, INTERVAL_MS.1
                    ),
                ));
            }
            o.policy = Policy::Interval(std::time::Duration::from_millis(ms));
        }
        Some(other) => {
            return Err(RequestError::new(
                id,
                "bad_policy",
                format!("policy {other} is not one of \"lossless\", \"conflate\", \"interval\""),
            ));
        }
    }
    match obj.get("depth") {
        None | Some(Value::Null) => {}
        Some(d) => match d.as_u64() {
            Some(n) if (1..=MAX_DEPTH as u64).contains(&n) => o.depth = n as usize,
            _ => {
                return Err(RequestError::new(
                    id,
                    "bad_request",
                    format!("depth {d} must be a number of levels from 1 to {MAX_DEPTH}"),
                ));
            }
        },
    }
    match obj.get("snapshot") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => o.snapshot = *b,
        Some(other) => {
            return Err(RequestError::new(
                id,
                "bad_request",
                format!("snapshot {other} must be true or false"),
            ));
        }
    }
    Ok(o)
}

fn symbols(v: Option<&Value>, id: &Option<Value>) -> Result<Vec<SymbolSpec>, RequestError> {
    let arr = v.and_then(Value::as_array).ok_or_else(|| {
        RequestError::new(
            id,
            "bad_request",
            "\"symbols\" must be a list of \"venue:SYMBOL\" strings, e.g. [\"binance:BTCUSDT\"]",
        )
    })?;
    if arr.is_empty() {
        return Err(RequestError::new(id, "bad_request", "\"symbols\" is empty"));
    }
    arr.iter()
        .map(|s| {
            let s = s.as_str().ok_or_else(|| {
                RequestError::new(id, "bad_symbol", format!("symbol {s} is not a string"))
            })?;
            parse_spec(s).map_err(|(code, m)| RequestError::new(id, code, m))
        })
        .collect()
}

/// Parses `venue:SYMBOL`, or a pattern: `venue:*`, `*:SYMBOL`, `*` (or `*:*`).
pub fn parse_spec(s: &str) -> Result<SymbolSpec, (&'static str, String)> {
    if s == "*" || s == "*:*" {
        return Ok(SymbolSpec::Pattern {
            venue: None,
            symbol: None,
        });
    }
    if let Some(venue) = s.strip_suffix(":*") {
        let venue: Venue = venue
            .parse()
            .map_err(|e: tickwire_sdk::wire::UnknownVenue| ("unknown_venue", e.to_string()))?;
        return Ok(SymbolSpec::Pattern {
            venue: Some(venue),
            symbol: None,
        });
    }
    if let Some(symbol) = s.strip_prefix("*:") {
        let Symbol { symbol, .. } = parse_symbol(&format!("binance:{symbol}"))?;
        return Ok(SymbolSpec::Pattern {
            venue: None,
            symbol: Some(symbol),
        });
    }
    parse_symbol(s).map(SymbolSpec::Exact)
}

/// Parses `venue:SYMBOL` (symbol upper-cased).
pub fn parse_symbol(s: &str) -> Result<Symbol, (&'static str, String)> {
    let (venue, symbol) = s.split_once(':').ok_or_else(|| {
        (
            "bad_symbol",
            format!("symbol {s:?} must be \"venue:SYMBOL\", e.g. \"binance:BTCUSDT\""),
        )
    })?;
    let venue: Venue = venue
        .parse()
        .map_err(|e: tickwire_sdk::wire::UnknownVenue| ("unknown_venue", e.to_string()))?;
    if symbol.is_empty()
        || symbol.len() > 64
        || symbol.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err((
            "bad_symbol",
            format!("symbol {symbol:?} is not a valid venue symbol"),
        ));
    }
    Ok(Symbol {
        venue,
        symbol: symbol.to_ascii_uppercase(),
    })
}

fn channels(v: Option<&Value>, id: &Option<Value>) -> Result<Vec<Channel>, RequestError> {
    let Some(v) = v else {
        return Ok(Channel::SUBSCRIBABLE.to_vec());
    };
    let arr = v.as_array().ok_or_else(|| {
        RequestError::new(
            id,
            "bad_request",
            "\"channels\" must be a list, e.g. [\"trades\",\"quotes\",\"book\"]",
        )
    })?;
    let mut out = Vec::new();
    for c in arr {
        let c = c
            .as_str()
            .ok_or_else(|| {
                RequestError::new(
                    id,
                    "unknown_channel",
                    format!("channel {c} is not a string"),
                )
            })?
            .parse::<Channel>()
            .map_err(|m| RequestError::new(id, "unknown_channel", m))?;
        if !out.contains(&c) {
            out.push(c);
        }
    }
    if out.is_empty() {
        return Ok(Channel::SUBSCRIBABLE.to_vec());
    }
    Ok(out)
}

/// The `subscribed` / `unsubscribed` / `snapshot` reply.
pub fn ack(
    kind: &str,
    id: &Option<Value>,
    symbols: &[SymbolSpec],
    channels: &[Channel],
    encoding: Encoding,
    options: Option<&SubOptions>,
) -> String {
    let mut v = json!({
        "type": kind,
        "id": id,
        "symbols": symbols.iter().map(SymbolSpec::text).collect::<Vec<_>>(),
        "channels": channels.iter().map(|c| c.name()).collect::<Vec<_>>(),
        "encoding": encoding.name(),
    });
    if let Some(o) = options {
        v["policy"] = json!(o.policy.name());
        if let Policy::Interval(d) = o.policy {
            v["interval_ms"] = json!(d.as_millis() as u64);
        }
        if o.depth != usize::MAX {
            v["depth"] = json!(o.depth);
        }
    }
    v.to_string()
}

/// The `instruments` reply: every `venue:SYMBOL` served.
pub fn instruments(id: &Option<Value>, symbols: &[String]) -> String {
    json!({"type": "instruments", "id": id, "symbols": symbols}).to_string()
}

/// The `pong` reply.
pub fn pong(id: &Option<Value>, ts: u64) -> String {
    json!({"type": "pong", "id": id, "ts": ts}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_requests() {
        let r = parse(r#"{"op":"subscribe","id":1,"symbols":["binance:btcusdt"],"channels":["trades","quotes","book"],"encoding":"json"}"#).unwrap();
        let Request::Subscribe {
            id,
            symbols,
            channels,
            encoding,
            options,
        } = r
        else {
            panic!()
        };
        assert_eq!(id, Some(json!(1)));
        assert_eq!(symbols[0].text(), "binance:BTCUSDT");
        assert_eq!(options, SubOptions::default());
        assert_eq!(
            channels,
            vec![Channel::Trades, Channel::Quotes, Channel::Book]
        );
        assert_eq!(encoding, Some(Encoding::Json));
        assert!(matches!(
            parse(r#"{"op":"ping","id":"a"}"#),
            Ok(Request::Ping { .. })
        ));
        let r = parse(r#"{"op":"unsubscribe","symbols":["binance:BTCUSDT"]}"#).unwrap();
        assert!(matches!(r, Request::Unsubscribe { channels, .. } if channels.len() == 3));
        let r = parse(r#"{"op":"subscribe","symbols":["binance:*","*:ethusdt","*"],"policy":"interval","interval_ms":250,"depth":5,"snapshot":false}"#).unwrap();
        let Request::Subscribe {
            symbols, options, ..
        } = r
        else {
            panic!()
        };
        let texts: Vec<String> = symbols.iter().map(SymbolSpec::text).collect();
        assert_eq!(texts, ["binance:*", "*:ETHUSDT", "*:*"]);
        assert!(symbols[0].matches(Venue::Binance, "BTCUSDT"));
        assert!(!symbols[0].matches(Venue::Okx, "BTCUSDT"));
        assert!(symbols[1].matches(Venue::Okx, "ETHUSDT"));
        assert!(symbols[2].matches(Venue::Kraken, "XBT/USD"));
        assert_eq!(
            options.policy,
            Policy::Interval(std::time::Duration::from_millis(250))
        );
        assert_eq!((options.depth, options.snapshot), (5, false));
        assert!(matches!(
            parse(r#"{"op":"snapshot","id":3,"symbols":["binance:BTCUSDT"],"channels":["book"]}"#),
            Ok(Request::Snapshot { .. })
        ));
    }

    #[test]
    fn bad_requests_name_the_problem() {
        let cases = [
            ("nope", "bad_json"),
            ("[]", "bad_request"),
            (r#"{"id":1}"#, "bad_request"),
            (r#"{"op":"fly","id":1}"#, "unknown_op"),
            (r#"{"op":"subscribe","id":1}"#, "bad_request"),
            (r#"{"op":"subscribe","id":1,"symbols":[]}"#, "bad_request"),
            (
                r#"{"op":"subscribe","id":1,"symbols":["BTCUSDT"]}"#,
                "bad_symbol",
            ),
            (
                r#"{"op":"subscribe","id":1,"symbols":["nyse:IBM"]}"#,
                "unknown_venue",
            ),
            (r#"{"op":"subscribe","id":1,"symbols":[5]}"#, "bad_symbol"),
            (
                r#"{"op":"subscribe","id":1,"symbols":["binance:BTCUSDT"],"channels":["candles"]}"#,
                "unknown_channel",
            ),
            (
                r#"{"op":"subscribe","id":1,"symbols":["binance:BTCUSDT"],"encoding":"xml"}"#,
                "bad_encoding",
            ),
            (
                r#"{"op":"subscribe","id":1,"symbols":["binance:X"],"policy":"fast"}"#,
                "bad_policy",
            ),
            (
                r#"{"op":"subscribe","id":1,"symbols":["binance:X"],"policy":"interval"}"#,
                "bad_request",
            ),
            (
                r#"{"op":"subscribe","id":1,"symbols":["binance:X"],"policy":"interval","interval_ms":1}"#,
                "bad_request",
            ),
            (
                r#"{"op":"subscribe","id":1,"symbols":["binance:X"],"depth":0}"#,
                "bad_request",
            ),
            (
                r#"{"op":"subscribe","id":1,"symbols":["binance:X"],"snapshot":"yes"}"#,
                "bad_request",
            ),
            (
                r#"{"op":"subscribe","id":1,"symbols":["nyse:*"]}"#,
                "unknown_venue",
            ),
        ];
        for (text, code) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.code, code, "{text}");
            let v: Value = serde_json::from_str(&e.to_json()).unwrap();
            assert_eq!(v["type"], "error");
            assert!(!e.message.is_empty());
        }
        assert_eq!(
            parse(r#"{"op":"fly","id":7}"#).unwrap_err().id,
            Some(json!(7))
        );
    }
}
