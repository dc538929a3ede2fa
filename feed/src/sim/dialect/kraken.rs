//! Kraken spot WebSocket v2 (`wss://ws.kraken.com/v2`), as documented on docs.kraken.com
//! ("Spot WebSocket v2": `book`, `trade`, `ticker`, `instrument`, `heartbeat`, `status`,
//! `ping`; "Book checksum (WebSocket v2)").
//!
//! - Path `/v2`. On connect the server greets with a `status` update (`system: online`).
//! - Requests `{"method":"subscribe"|"unsubscribe","params":{"channel":..,"symbol":[..],..},
//!   "req_id":n}`; one acknowledgement per symbol (`{"method":..,"req_id":..,"result":{..},
//!   "success":true,"time_in":..,"time_out":..}`, keys in Kraken's alphabetical order), errors
//!   as `{"error":..,"method":..,"req_id":..,"success":false,"symbol":..,"time_in":..,
//!   "time_out":..}`: `Currency pair not supported`, `Already subscribed`, `Subscription Not
//!   Found`, and `EGeneral:Invalid arguments` for a request that does not fit the schema
//!   (unknown channel, depth not one of 10/25/100/500/1000, no symbol list). The connection
//!   stays open. `{"method":"ping"}` is answered with `{"method":"pong",..}`.
//! - Symbols `BTC/USDT` (`base/quote`). Prices and quantities are JSON numbers.
//! - `instrument`: a snapshot of every served pair with `price_precision` (decimals of the
//!   tick) and `qty_precision` (decimals of the step), the precisions of the book checksum.
//! - `book`: a snapshot of the subscribed depth (default 10), then one update per depth event
//!   with what changed inside the depth window: changed and entering levels with their
//!   quantity, levels deleted from the window with `qty: 0`; levels pushed out of the window
//!   are not deleted (the client truncates to its depth, as the checksum guide says). Every
//!   message carries the CRC32 of the top 10 asks (low to high) and bids (high to low), each
//!   price and quantity written at the pair's precision with the point and leading zeros
//!   removed, computed from this connection's own copy of the book.
//! - `trade`: one update per trade (`side` of the taker, `trade_id` the market's trade id,
//!   sequential per pair); the optional snapshot holds the latest (up to 50) trades this
//!   connection saw.
//! - `ticker`: `event_trigger` `bbo` publishes on every change of the best bid or offer,
//!   `trades` (the default) on every trade. `last`, `volume`, `vwap`, `low`, `high` and
//!   `change` cover the trades seen since the connection opened (the simulator keeps no 24 h
//!   history).
//! - `heartbeat`: about once a second while subscribed to anything, when no channel message
//!   went out since the last one.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::Write as _;
use std::ops::Bound;

use serde_json::Value;
use tickwire_sdk::wire::{Level, Venue, write_decimal};

use super::{Ctx, Dialect, Session, decimals_of, lookup, venue_symbol};
use crate::sim::fanout::CloseReason;
use crate::sim::market::{DepthSnapshot, DepthUpdate, Emitted, Event};
use crate::sim::render::into_string;
use crate::sim::stream::{Catalog, StreamKind, SymbolId, SymbolSpec};

/// The WebSocket path of the public v2 API.
pub const PATH: &str = "/v2";
/// Separator of base and quote in a v2 symbol (`BTC/USD`).
pub const SEP: &str = "/";
/// Book depths the `book` channel accepts.
pub const DEPTHS: [usize; 5] = [10, 25, 100, 500, 1000];
/// Book depth when a subscription gives none.
pub const DEFAULT_DEPTH: usize = 10;
/// Levels per side the checksum covers.
pub const CHECKSUM_LEVELS: usize = 10;
/// Trades in a `trade` snapshot, at most.
pub const TRADE_SNAPSHOT: usize = 50;
/// The error for a request that does not fit the schema.
pub const INVALID_ARGUMENTS: &str = "EGeneral:Invalid arguments";
/// The error for a symbol the venue does not list.
pub const PAIR_NOT_SUPPORTED: &str = "Currency pair not supported";
/// The error for subscribing twice.
pub const ALREADY_SUBSCRIBED: &str = "Already subscribed";
/// The error for unsubscribing what is not subscribed.
pub const NOT_FOUND: &str = "Subscription Not Found";

/// The Kraken spot v2 dialect.
#[derive(Debug, Clone, Copy, Default)]
pub struct KrakenDialect;

impl Dialect for KrakenDialect {
    fn venue(&self) -> Venue {
        Venue::Kraken
    }

    fn paths(&self) -> &'static [&'static str] {
        &[PATH]
    }

    fn session(&self, _path: &str) -> Box<dyn Session> {
        Box::new(KrakenSession::new())
    }

    fn symbol(&self, spec: &SymbolSpec) -> String {
        symbol(spec)
    }
}

/// A symbol as Kraken v2 spells it (`BTC/USDT`).
pub fn symbol(spec: &SymbolSpec) -> String {
    venue_symbol(spec, SEP)
}

// ---------------------------------------------------------------- text helpers

/// `ns` since the epoch as RFC 3339 UTC with microseconds (`2023-10-06T17:35:55.440295Z`).
pub fn rfc3339(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let micros = (ns % 1_000_000_000) / 1_000;
    let days = (secs / 86_400) as i64;
    let sod = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        sod / 3_600,
        sod % 3_600 / 60,
        sod % 60
    )
}

/// A JSON number for a fixed-point value (1e-9 units), shortest exact form (`0.5`, `45281`).
fn num(out: &mut Vec<u8>, v: i64) {
    write_decimal(out, v, 0);
}

/// A JSON string literal.
fn string(out: &mut Vec<u8>, s: &str) {
    match serde_json::to_string(s) {
        Ok(q) => out.extend_from_slice(q.as_bytes()),
        Err(_) => out.extend_from_slice(b"\"\""),
    }
}

/// `value` (1e-9 units) at `decimals` fractional digits, the point removed and leading zeros
/// stripped (the checksum's text of a price or quantity; empty for 0).
pub fn checksum_digits(value: i64, decimals: u8) -> String {
    let n = value.unsigned_abs() / 10u64.pow(9 - u32::from(decimals.min(9)));
    if n == 0 { String::new() } else { n.to_string() }
}

/// The v2 book checksum: CRC32 of the top 10 asks (best first) then the top 10 bids (best
/// first), each price then quantity as [`checksum_digits`] at the pair's precisions.
pub fn checksum<'a>(
    asks: impl Iterator<Item = &'a Level>,
    bids: impl Iterator<Item = &'a Level>,
    price_dec: u8,
    qty_dec: u8,
) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for l in asks.take(CHECKSUM_LEVELS).chain(bids.take(CHECKSUM_LEVELS)) {
        h.update(checksum_digits(l.price, price_dec).as_bytes());
        h.update(checksum_digits(l.qty, qty_dec).as_bytes());
    }
    h.finalize()
}

// ---------------------------------------------------------------- books

/// One side of a connection's copy of a book, keyed so that ascending keys go best first
/// (the price for asks, minus the price for bids).
#[derive(Debug, Clone, Default)]
struct Side {
    ask: bool,
    levels: BTreeMap<i64, i64>,
}

impl Side {
    fn new(ask: bool) -> Side {
        Side {
            ask,
            levels: BTreeMap::new(),
        }
    }

    fn key(&self, price: i64) -> i64 {
        if self.ask { price } else { -price }
    }

    /// The price of a key (keys map back the same way).
    fn price(&self, key: i64) -> i64 {
        self.key(key)
    }

    fn set_key(&mut self, key: i64, qty: i64) {
        if qty == 0 {
            self.levels.remove(&key);
        } else {
            self.levels.insert(key, qty);
        }
    }

    /// The key of the `n`-th best level (0-based), if the side has that many.
    fn nth_key(&self, n: usize) -> Option<i64> {
        self.levels.keys().nth(n).copied()
    }

    /// The best `n` levels, best first.
    fn top(&self, n: usize) -> Vec<Level> {
        self.levels
            .iter()
            .take(n)
            .map(|(&k, &qty)| Level {
                price: self.price(k),
                qty,
            })
            .collect()
    }

    fn load(&mut self, levels: &[Level]) {
        self.levels.clear();
        for l in levels.iter().filter(|l| l.qty != 0) {
            let k = self.key(l.price);
            self.levels.insert(k, l.qty);
        }
    }

    /// Applies `changes` (absolute quantities, 0 removes) and returns what a client holding
    /// the top `depth` levels must be sent (best first): changed levels inside the new window,
    /// levels entering it from below, and `qty` 0 for levels deleted from the old window.
    /// Levels pushed out of the window are not sent: the client truncates to its depth.
    fn update(&mut self, changes: &[Level], depth: usize) -> Vec<Level> {
        let old_edge = self.nth_key(depth - 1);
        // Per key: (new quantity, quantity before the update); the last change of a price wins.
        let mut changed: BTreeMap<i64, (i64, Option<i64>)> = BTreeMap::new();
        for l in changes {
            let k = self.key(l.price);
            let before = match changed.get(&k) {
                Some(&(_, before)) => before,
                None => self.levels.get(&k).copied(),
            };
            changed.insert(k, (l.qty, before));
        }
        for (&k, &(qty, _)) in &changed {
            self.set_key(k, qty);
        }
        let new_edge = self.nth_key(depth - 1);
        let in_old = |k: i64| old_edge.is_none_or(|e| k <= e);
        let in_new = |k: i64| new_edge.is_none_or(|e| k <= e);
        let mut send: BTreeMap<i64, i64> = BTreeMap::new();
        for (&k, &(qty, before)) in &changed {
            let had = before.is_some() && in_old(k);
            if qty > 0 && in_new(k) {
                if !(had && before == Some(qty)) {
                    send.insert(k, qty);
                }
            } else if qty == 0 && had {
                send.insert(k, 0);
            }
        }
        // Levels the window reaches down to now that were below its old edge.
        if let Some(oe) = old_edge
            && new_edge.is_none_or(|ne| ne > oe)
        {
            let upper = new_edge.map_or(Bound::Unbounded, Bound::Included);
            for (&k, &qty) in self.levels.range((Bound::Excluded(oe), upper)) {
                if !changed.contains_key(&k) {
                    send.insert(k, qty);
                }
            }
        }
        send.into_iter()
            .map(|(k, qty)| Level {
                price: self.price(k),
                qty,
            })
            .collect()
    }
}

/// A `book` subscription: its depth and this connection's copy of the whole book.
#[derive(Debug, Clone)]
struct BookSub {
    depth: usize,
    /// A snapshot was asked for and is still owed (the book was not known at subscribe).
    snapshot_owed: bool,
    /// The copy is loaded (from a snapshot of the market) and follows every depth event.
    known: bool,
    bids: Side,
    asks: Side,
}

impl BookSub {
    fn new(depth: usize, snapshot: bool) -> BookSub {
        BookSub {
            depth,
            snapshot_owed: snapshot,
            known: false,
            bids: Side::new(false),
            asks: Side::new(true),
        }
    }

    fn load(&mut self, s: &DepthSnapshot) {
        self.bids.load(&s.bids);
        self.asks.load(&s.asks);
        self.known = true;
    }

    fn checksum(&self, price_dec: u8, qty_dec: u8) -> u32 {
        let asks = self.asks.top(CHECKSUM_LEVELS);
        let bids = self.bids.top(CHECKSUM_LEVELS);
        checksum(asks.iter(), bids.iter(), price_dec, qty_dec)
    }
}

// ---------------------------------------------------------------- trades and tickers

#[derive(Debug, Clone, Copy)]
struct TradeRec {
    id: u64,
    price: i64,
    qty: i64,
    buyer_maker: bool,
    ns: u64,
}

/// The ticker statistics over the trades this connection saw.
#[derive(Debug, Clone, Copy, Default)]
struct TradeStats {
    first: i64,
    last: i64,
    low: i64,
    high: i64,
    volume: i64,
    /// Sum of price * qty, 1e-18 units.
    notional: i128,
}

impl TradeStats {
    fn add(&mut self, price: i64, qty: i64) {
        if self.volume == 0 && self.last == 0 {
            self.first = price;
            self.low = price;
            self.high = price;
        }
        self.last = price;
        self.low = self.low.min(price);
        self.high = self.high.max(price);
        self.volume = self.volume.saturating_add(qty);
        self.notional += i128::from(price) * i128::from(qty);
    }
}

#[derive(Debug, Clone, Copy)]
struct TickerSub {
    /// `event_trigger: bbo` (else `trades`).
    bbo: bool,
    /// The last best bid and offer sent.
    sent: Option<(Level, Level)>,
}

// ---------------------------------------------------------------- the session

/// One connection speaking Kraken spot v2.
#[derive(Debug)]
pub struct KrakenSession {
    greeted: bool,
    connection_id: u64,
    instrument: bool,
    books: HashMap<SymbolId, BookSub>,
    trades: HashSet<SymbolId>,
    tickers: HashMap<SymbolId, TickerSub>,
    /// Per symbol: the latest trades and statistics seen, for snapshots and tickers.
    recent: HashMap<SymbolId, VecDeque<TradeRec>>,
    stats: HashMap<SymbolId, TradeStats>,
    /// Per symbol: the best bid and offer of the latest book-ticker event.
    top: HashMap<SymbolId, (Level, Level)>,
    /// No channel message went out since the last tick.
    quiet: bool,
}

impl Default for KrakenSession {
    fn default() -> Self {
        KrakenSession::new()
    }
}

/// Request fields echoed in replies.
struct Req {
    method: String,
    req_id: Option<u64>,
    time_in: String,
}

impl KrakenSession {
    /// A fresh connection.
    pub fn new() -> KrakenSession {
        KrakenSession {
            greeted: false,
            connection_id: rand::random::<u64>(),
            instrument: false,
            books: HashMap::new(),
            trades: HashSet::new(),
            tickers: HashMap::new(),
            recent: HashMap::new(),
            stats: HashMap::new(),
            top: HashMap::new(),
            quiet: true,
        }
    }

    fn subscribed_to_anything(&self) -> bool {
        self.instrument
            || !self.books.is_empty()
            || !self.trades.is_empty()
            || !self.tickers.is_empty()
    }

    fn channel(&mut self, out: &mut Vec<String>, msg: Vec<u8>) {
        self.quiet = false;
        out.push(into_string(msg));
    }

    /// The `status` greeting a connection gets first.
    fn greet(&mut self, out: &mut Vec<String>) {
        if self.greeted {
            return;
        }
        self.greeted = true;
        out.push(format!(
            "{{\"channel\":\"status\",\"data\":[{{\"api_version\":\"v2\",\"connection_id\":{},\"system\":\"online\",\"version\":\"2.0.10\"}}],\"type\":\"update\"}}",
            self.connection_id
        ));
    }

    // ------------------------------------------------------------ replies

    fn reply(&self, req: &Req, ctx: &Ctx<'_>, result: Option<&str>, out: &mut Vec<String>) {
        let mut m = Vec::with_capacity(160);
        m.extend_from_slice(b"{\"method\":");
        string(&mut m, &req.method);
        if let Some(id) = req.req_id {
            let _ = write!(m, ",\"req_id\":{id}");
        }
        if let Some(r) = result {
            let _ = write!(m, ",\"result\":{r}");
        }
        let _ = write!(
            m,
            ",\"success\":true,\"time_in\":\"{}\",\"time_out\":\"{}\"}}",
            req.time_in,
            rfc3339(ctx.now_ns)
        );
        out.push(into_string(m));
    }

    fn error(
        &self,
        req: &Req,
        ctx: &Ctx<'_>,
        error: &str,
        symbol: Option<&str>,
        out: &mut Vec<String>,
    ) {
        let mut m = Vec::with_capacity(160);
        m.extend_from_slice(b"{\"error\":");
        string(&mut m, error);
        if !req.method.is_empty() {
            m.extend_from_slice(b",\"method\":");
            string(&mut m, &req.method);
        }
        if let Some(id) = req.req_id {
            let _ = write!(m, ",\"req_id\":{id}");
        }
        m.extend_from_slice(b",\"success\":false");
        if let Some(s) = symbol {
            m.extend_from_slice(b",\"symbol\":");
            string(&mut m, s);
        }
        let _ = write!(
            m,
            ",\"time_in\":\"{}\",\"time_out\":\"{}\"}}",
            req.time_in,
            rfc3339(ctx.now_ns)
        );
        out.push(into_string(m));
    }

    fn request(&mut self, text: &str, ctx: &Ctx<'_>, out: &mut Vec<String>) {
        let time_in = rfc3339(ctx.now_ns);
        let v: Value = match serde_json::from_str(text) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                let req = Req {
                    method: String::new(),
                    req_id: None,
                    time_in,
                };
                return self.error(&req, ctx, INVALID_ARGUMENTS, None, out);
            }
        };
        let req = Req {
            method: v["method"].as_str().unwrap_or_default().to_string(),
            req_id: v.get("req_id").and_then(Value::as_u64),
            time_in,
        };
        match req.method.as_str() {
            "ping" => {
                let pong = Req {
                    method: "pong".into(),
                    ..req
                };
                self.reply(&pong, ctx, None, out)
            }
            "subscribe" | "unsubscribe" => self.subscription(&req, &v["params"], ctx, out),
            _ => self.error(&req, ctx, INVALID_ARGUMENTS, None, out),
        }
    }

    fn subscription(&mut self, req: &Req, params: &Value, ctx: &Ctx<'_>, out: &mut Vec<String>) {
        let subscribe = req.method == "subscribe";
        let invalid =
            |s: &Self, out: &mut Vec<String>| s.error(req, ctx, INVALID_ARGUMENTS, None, out);
        let Some(channel) = params.get("channel").and_then(Value::as_str) else {
            return invalid(self, out);
        };
        let snapshot = match params.get("snapshot") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => return invalid(self, out),
        };
        if channel == "instrument" {
            if self.instrument == subscribe {
                let e = if subscribe {
                    ALREADY_SUBSCRIBED
                } else {
                    NOT_FOUND
                };
                return self.error(req, ctx, e, None, out);
            }
            self.instrument = subscribe;
            let result = if subscribe {
                format!("{{\"channel\":\"instrument\",\"snapshot\":{snapshot}}}")
            } else {
                "{\"channel\":\"instrument\"}".to_string()
            };
            self.reply(req, ctx, Some(&result), out);
            if subscribe && snapshot {
                let msg = instrument_snapshot(ctx.catalog);
                self.channel(out, msg);
            }
            return;
        }
        if !matches!(channel, "book" | "trade" | "ticker") {
            return invalid(self, out);
        }
        let Some(symbols) = params.get("symbol").and_then(Value::as_array) else {
            return invalid(self, out);
        };
        let Some(symbols) = symbols
            .iter()
            .map(Value::as_str)
            .collect::<Option<Vec<&str>>>()
            .filter(|s| !s.is_empty())
        else {
            return invalid(self, out);
        };
        let depth = match params.get("depth") {
            None => DEFAULT_DEPTH,
            Some(d) => match d.as_u64().map(|d| d as usize) {
                Some(d) if channel == "book" && DEPTHS.contains(&d) => d,
                _ => return invalid(self, out),
            },
        };
        let bbo = match params.get("event_trigger") {
            None => false,
            Some(t) if channel == "ticker" => match t.as_str() {
                Some("bbo") => true,
                Some("trades") => false,
                _ => return invalid(self, out),
            },
            Some(_) => return invalid(self, out),
        };
        for name in symbols {
            let Some(id) = lookup(ctx.catalog, name, SEP) else {
                self.error(req, ctx, PAIR_NOT_SUPPORTED, Some(name), out);
                continue;
            };
            let raw = name;
            let name = serde_json::to_string(raw).unwrap_or_default();
            let subscribed = match channel {
                "book" => self.books.contains_key(&id),
                "trade" => self.trades.contains(&id),
                _ => self.tickers.contains_key(&id),
            };
            // An unsubscribe must name the depth subscribed (10 when not given).
            let depth_matches =
                channel != "book" || self.books.get(&id).is_none_or(|b| b.depth == depth);
            if subscribe && subscribed {
                self.error(req, ctx, ALREADY_SUBSCRIBED, Some(raw), out);
                continue;
            }
            if !subscribe && (!subscribed || !depth_matches) {
                self.error(req, ctx, NOT_FOUND, Some(raw), out);
                continue;
            }
            if !subscribe {
                let result = match channel {
                    "book" => {
                        self.books.remove(&id);
                        format!("{{\"channel\":\"book\",\"depth\":{depth},\"symbol\":{name}}}")
                    }
                    "trade" => {
                        self.trades.remove(&id);
                        format!("{{\"channel\":\"trade\",\"symbol\":{name}}}")
                    }
                    _ => {
                        self.tickers.remove(&id);
                        format!("{{\"channel\":\"ticker\",\"symbol\":{name}}}")
                    }
                };
                self.reply(req, ctx, Some(&result), out);
                continue;
            }
            match channel {
                "book" => {
                    let result = format!(
                        "{{\"channel\":\"book\",\"depth\":{depth},\"snapshot\":{snapshot},\"symbol\":{name}}}"
                    );
                    self.reply(req, ctx, Some(&result), out);
                    let mut sub = BookSub::new(depth, snapshot);
                    if let Some(s) = ctx.books.book(id, usize::MAX) {
                        sub.load(&s);
                    }
                    self.books.insert(id, sub);
                    self.owed_book_snapshot(id, ctx, ctx.now_ns, out);
                }
                "trade" => {
                    let result = format!(
                        "{{\"channel\":\"trade\",\"snapshot\":{snapshot},\"symbol\":{name}}}"
                    );
                    self.reply(req, ctx, Some(&result), out);
                    self.trades.insert(id);
                    if snapshot {
                        let trades: Vec<TradeRec> = self
                            .recent
                            .get(&id)
                            .map(|r| r.iter().copied().collect())
                            .unwrap_or_default();
                        let msg = trade_message(ctx, id, &trades, true);
                        self.channel(out, msg);
                    }
                }
                _ => {
                    let trigger = if bbo { "bbo" } else { "trades" };
                    let result = format!(
                        "{{\"channel\":\"ticker\",\"event_trigger\":\"{trigger}\",\"snapshot\":{snapshot},\"symbol\":{name}}}"
                    );
                    self.reply(req, ctx, Some(&result), out);
                    self.tickers.insert(id, TickerSub { bbo, sent: None });
                    if snapshot {
                        let top = self.top.get(&id).copied().or_else(|| {
                            ctx.books.book(id, 1).map(|s| {
                                let none = Level { price: 0, qty: 0 };
                                (
                                    s.bids.first().copied().unwrap_or(none),
                                    s.asks.first().copied().unwrap_or(none),
                                )
                            })
                        });
                        if let Some(top) = top {
                            self.send_ticker(id, top, true, ctx, ctx.now_ns, out);
                        }
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------ channel messages

    /// Sends the book snapshot of `id` if one is owed and the book is known.
    fn owed_book_snapshot(&mut self, id: SymbolId, ctx: &Ctx<'_>, ns: u64, out: &mut Vec<String>) {
        let Some(spec) = ctx.catalog.spec(id) else {
            return;
        };
        let Some(b) = self.books.get_mut(&id) else {
            return;
        };
        if !b.known || !b.snapshot_owed {
            return;
        }
        b.snapshot_owed = false;
        let (pd, qd) = (decimals_of(spec.tick), decimals_of(spec.step));
        let bids = b.bids.top(b.depth);
        let asks = b.asks.top(b.depth);
        let c = b.checksum(pd, qd);
        let msg = book_message(spec, "snapshot", &bids, &asks, c, ns);
        self.channel(out, msg);
    }

    fn on_depth(
        &mut self,
        id: SymbolId,
        u: &DepthUpdate,
        ns: u64,
        ctx: &Ctx<'_>,
        out: &mut Vec<String>,
    ) {
        let Some(b) = self.books.get_mut(&id) else {
            return;
        };
        if !b.known {
            // The book was not known at subscribe: start from the market's book now (the
            // update re-applied on top is idempotent: quantities are absolute).
            let Some(s) = ctx.books.book(id, usize::MAX) else {
                return;
            };
            b.load(&s);
            let depth = b.depth;
            b.bids.update(&u.bids, depth);
            b.asks.update(&u.asks, depth);
            return self.owed_book_snapshot(id, ctx, ns, out);
        }
        let Some(spec) = ctx.catalog.spec(id) else {
            return;
        };
        let depth = b.depth;
        let bids = b.bids.update(&u.bids, depth);
        let asks = b.asks.update(&u.asks, depth);
        if bids.is_empty() && asks.is_empty() {
            return;
        }
        let c = b.checksum(decimals_of(spec.tick), decimals_of(spec.step));
        let msg = book_message(spec, "update", &bids, &asks, c, ns);
        self.channel(out, msg);
    }

    fn on_trade(&mut self, id: SymbolId, t: TradeRec, ctx: &Ctx<'_>, out: &mut Vec<String>) {
        let recent = self.recent.entry(id).or_default();
        if recent.len() == TRADE_SNAPSHOT {
            recent.pop_front();
        }
        recent.push_back(t);
        self.stats.entry(id).or_default().add(t.price, t.qty);
        if self.trades.contains(&id) {
            let msg = trade_message(ctx, id, &[t], false);
            self.channel(out, msg);
        }
        if self.tickers.get(&id).is_some_and(|s| !s.bbo)
            && let Some(&top) = self.top.get(&id)
        {
            self.send_ticker(id, top, false, ctx, t.ns, out);
        }
    }

    fn on_top(
        &mut self,
        id: SymbolId,
        top: (Level, Level),
        ns: u64,
        ctx: &Ctx<'_>,
        out: &mut Vec<String>,
    ) {
        self.top.insert(id, top);
        if let Some(s) = self.tickers.get(&id)
            && s.bbo
            && s.sent != Some(top)
        {
            self.send_ticker(id, top, false, ctx, ns, out);
        }
    }

    /// A ticker message; none while a side of the book is empty (Kraken's ticker always has
    /// both).
    fn send_ticker(
        &mut self,
        id: SymbolId,
        (bid, ask): (Level, Level),
        snapshot: bool,
        ctx: &Ctx<'_>,
        ns: u64,
        out: &mut Vec<String>,
    ) {
        if bid.price <= 0 || ask.price <= 0 {
            return;
        }
        let Some(spec) = ctx.catalog.spec(id) else {
            return;
        };
        if let Some(s) = self.tickers.get_mut(&id) {
            s.sent = Some((bid, ask));
        }
        let st = self.stats.get(&id).copied().unwrap_or_default();
        let last = if st.last > 0 { st.last } else { bid.price };
        let (low, high, first) = if st.last > 0 {
            (st.low, st.high, st.first)
        } else {
            (last, last, last)
        };
        let vwap = if st.volume > 0 {
            (st.notional / i128::from(st.volume)) as i64
        } else {
            last
        };
        let change = last - first;
        let change_pct = if first > 0 {
            change as f64 * 100.0 / first as f64
        } else {
            0.0
        };
        let mut m = Vec::with_capacity(320);
        let ty = if snapshot { "snapshot" } else { "update" };
        let _ = write!(
            m,
            "{{\"channel\":\"ticker\",\"type\":\"{ty}\",\"data\":[{{\"symbol\":"
        );
        string(&mut m, &symbol(spec));
        for (k, v) in [
            ("bid", bid.price),
            ("bid_qty", bid.qty),
            ("ask", ask.price),
            ("ask_qty", ask.qty),
            ("last", last),
            ("volume", st.volume),
            ("vwap", vwap),
            ("low", low),
            ("high", high),
            ("change", change),
        ] {
            let _ = write!(m, ",\"{k}\":");
            num(&mut m, v);
        }
        let _ = write!(
            m,
            ",\"change_pct\":{change_pct:.2},\"timestamp\":\"{}\"}}]}}",
            rfc3339(ns)
        );
        self.channel(out, m);
    }
}

fn levels(m: &mut Vec<u8>, levels: &[Level]) {
    m.push(b'[');
    for (i, l) in levels.iter().enumerate() {
        if i > 0 {
            m.push(b',');
        }
        m.extend_from_slice(b"{\"price\":");
        num(m, l.price);
        m.extend_from_slice(b",\"qty\":");
        num(m, l.qty);
        m.push(b'}');
    }
    m.push(b']');
}

fn book_message(
    spec: &SymbolSpec,
    ty: &str,
    bids: &[Level],
    asks: &[Level],
    checksum: u32,
    ns: u64,
) -> Vec<u8> {
    let mut m = Vec::with_capacity(96 + 40 * (bids.len() + asks.len()));
    let _ = write!(
        m,
        "{{\"channel\":\"book\",\"type\":\"{ty}\",\"data\":[{{\"symbol\":"
    );
    string(&mut m, &symbol(spec));
    m.extend_from_slice(b",\"bids\":");
    levels(&mut m, bids);
    m.extend_from_slice(b",\"asks\":");
    levels(&mut m, asks);
    let _ = write!(
        m,
        ",\"checksum\":{checksum},\"timestamp\":\"{}\"}}]}}",
        rfc3339(ns)
    );
    m
}

fn trade_message(ctx: &Ctx<'_>, id: SymbolId, trades: &[TradeRec], snapshot: bool) -> Vec<u8> {
    let name = ctx.catalog.spec(id).map(symbol).unwrap_or_default();
    let mut m = Vec::with_capacity(64 + 160 * trades.len());
    let ty = if snapshot { "snapshot" } else { "update" };
    let _ = write!(m, "{{\"channel\":\"trade\",\"type\":\"{ty}\",\"data\":[");
    for (i, t) in trades.iter().enumerate() {
        if i > 0 {
            m.push(b',');
        }
        m.extend_from_slice(b"{\"symbol\":");
        string(&mut m, &name);
        // The taker's side: a buyer-maker trade was a sell.
        let side = if t.buyer_maker { "sell" } else { "buy" };
        let _ = write!(m, ",\"side\":\"{side}\",\"price\":");
        num(&mut m, t.price);
        m.extend_from_slice(b",\"qty\":");
        num(&mut m, t.qty);
        let _ = write!(
            m,
            ",\"ord_type\":\"market\",\"trade_id\":{},\"timestamp\":\"{}\"}}",
            t.id,
            rfc3339(t.ns)
        );
    }
    m.extend_from_slice(b"]}");
    m
}

/// The `instrument` snapshot: every served asset and pair, with the precisions of the tick
/// and step.
fn instrument_snapshot(catalog: &Catalog) -> Vec<u8> {
    let mut assets: Vec<(String, u8)> = Vec::new();
    let mut add = |id: &str, precision: u8| {
        if !id.is_empty() && !assets.iter().any(|(a, _)| a == id) {
            assets.push((id.to_string(), precision));
        }
    };
    for (_, s) in catalog.iter() {
        add(&s.base, decimals_of(s.step));
        add(&s.quote, decimals_of(s.tick));
    }
    let mut m = Vec::with_capacity(256 + 400 * catalog.len());
    m.extend_from_slice(
        b"{\"channel\":\"instrument\",\"type\":\"snapshot\",\"data\":{\"assets\":[",
    );
    for (i, (id, precision)) in assets.iter().enumerate() {
        if i > 0 {
            m.push(b',');
        }
        m.extend_from_slice(b"{\"id\":");
        string(&mut m, id);
        let _ = write!(
            m,
            ",\"status\":\"enabled\",\"precision\":{precision},\"precision_display\":{precision},\"borrowable\":false,\"collateral_value\":0.0}}"
        );
    }
    m.extend_from_slice(b"],\"pairs\":[");
    for (i, (_, s)) in catalog.iter().enumerate() {
        if i > 0 {
            m.push(b',');
        }
        let (pd, qd) = (decimals_of(s.tick), decimals_of(s.step));
        m.extend_from_slice(b"{\"symbol\":");
        string(&mut m, &symbol(s));
        m.extend_from_slice(b",\"base\":");
        string(
            &mut m,
            if s.base.is_empty() {
                &s.symbol
            } else {
                &s.base
            },
        );
        m.extend_from_slice(b",\"quote\":");
        string(&mut m, &s.quote);
        let _ = write!(
            m,
            ",\"status\":\"online\",\"qty_precision\":{qd},\"qty_increment\":"
        );
        num(&mut m, s.step);
        let _ = write!(
            m,
            ",\"price_precision\":{pd},\"cost_precision\":{pd},\"marginable\":false,\"has_index\":false,\"cost_min\":0.5,\"tick_size\":"
        );
        num(&mut m, s.tick);
        m.extend_from_slice(b",\"price_increment\":");
        num(&mut m, s.tick);
        m.extend_from_slice(b",\"qty_min\":");
        num(&mut m, s.step);
        m.push(b'}');
    }
    m.extend_from_slice(b"]}}");
    m
}

impl Session for KrakenSession {
    fn on_text(
        &mut self,
        text: &str,
        ctx: &Ctx<'_>,
        out: &mut Vec<String>,
    ) -> Result<(), CloseReason> {
        self.greet(out);
        self.request(text, ctx, out);
        Ok(())
    }

    fn on_event(&mut self, event: &Emitted, wall_ns: u64, ctx: &Ctx<'_>, out: &mut Vec<String>) {
        self.greet(out);
        let id = event.key.symbol;
        match (&event.event, event.key.kind) {
            (Event::Depth(u), StreamKind::Depth100ms) => self.on_depth(id, u, wall_ns, ctx, out),
            (
                &Event::Trade {
                    id: trade_id,
                    price,
                    qty,
                    buyer_maker,
                },
                StreamKind::Trade,
            ) => {
                let t = TradeRec {
                    id: trade_id,
                    price,
                    qty,
                    buyer_maker,
                    ns: wall_ns,
                };
                self.on_trade(id, t, ctx, out);
            }
            (&Event::BookTicker { bid, ask, .. }, StreamKind::BookTicker) => {
                self.on_top(id, (bid, ask), wall_ns, ctx, out)
            }
            _ => {}
        }
    }

    fn on_tick(&mut self, _ctx: &Ctx<'_>, out: &mut Vec<String>) {
        self.greet(out);
        if self.subscribed_to_anything() && self.quiet {
            out.push("{\"channel\":\"heartbeat\"}".to_string());
        }
        self.quiet = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::OrderBook;
    use crate::kraken::{KrakenNormalizer, KrakenSpot};
    use crate::sim::dialect::BookSource;
    use crate::sim::market::DepthDiff;
    use crate::sim::stream::StreamKey;
    use crate::venue::{ChannelSet, VenueSpec};
    use crate::{Normalizer, Output};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use tickwire_sdk::L2Book;
    use tickwire_sdk::wire::{
        Body, BookSide, Side as TakerSide, StatusCode, TradeId, instrument_id, parse_decimal,
    };

    const BTC_TICK: i64 = 10_000_000; // 0.01
    const BTC_STEP: i64 = 10_000; // 0.00001
    const ETH_TICK: i64 = 10_000_000; // 0.01
    const ETH_STEP: i64 = 100_000; // 0.0001
    const T0: u64 = 1_696_613_755_440_295_000;

    fn catalog() -> Catalog {
        let mut c = Catalog::new();
        c.add(SymbolSpec::new("BTCUSDT", BTC_TICK, BTC_STEP))
            .unwrap();
        c.add(SymbolSpec::new("ETHUSDT", ETH_TICK, ETH_STEP))
            .unwrap();
        c
    }

    /// The simulated market: a book per symbol, unknown until `known`.
    struct Market {
        books: Vec<OrderBook>,
        known: bool,
    }

    impl BookSource for Market {
        fn book(&self, symbol: SymbolId, limit: usize) -> Option<DepthSnapshot> {
            let b = self.books.get(symbol as usize).filter(|_| self.known)?;
            Some(DepthSnapshot::of(b, 0, limit))
        }
    }

    /// A seeded random market: BTC/USDT with a deep book (40 levels a side), ETH/USDT with a
    /// thin one (fewer levels than small depths), depth changes near and across the depth
    /// windows, trades at the touch, book tickers on every change of the top.
    struct Gen {
        rng: StdRng,
        market: Market,
        trade_ids: [u64; 2],
        update_id: u64,
    }

    impl Gen {
        fn new(seed: u64) -> Gen {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut books = vec![OrderBook::new(), OrderBook::new()];
            for (i, (mid, tick, step, n)) in [
                (50_000_000_000_000i64, BTC_TICK, BTC_STEP, 40i64),
                (3_000_000_000_000, ETH_TICK, ETH_STEP, 6),
            ]
            .into_iter()
            .enumerate()
            {
                for k in 1..=n {
                    let q = rng.random_range(1..5_000) * step;
                    books[i].set(BookSide::Bid, mid - k * tick, q);
                    let q = rng.random_range(1..5_000) * step;
                    books[i].set(BookSide::Ask, mid + k * tick, q);
                }
            }
            Gen {
                rng,
                market: Market { books, known: true },
                trade_ids: [1_000, 77],
                update_id: 1,
            }
        }

        /// The next events (a depth event and its book ticker, or a trade).
        fn next(&mut self) -> Vec<Emitted> {
            let sym = self.rng.random_range(0..2u16);
            let (tick, step, reach) = if sym == 0 {
                (BTC_TICK, BTC_STEP, 50)
            } else {
                (ETH_TICK, ETH_STEP, 12)
            };
            let book = &mut self.market.books[sym as usize];
            let emit = |kind, event| Emitted {
                key: StreamKey { symbol: sym, kind },
                at: 0,
                event,
            };
            if self.rng.random_bool(0.2) {
                let (bid, ask) = crate::sim::market::top(book);
                let buyer_maker = self.rng.random_bool(0.5);
                let price = if buyer_maker { bid.price } else { ask.price };
                if price == 0 {
                    return vec![];
                }
                let id = &mut self.trade_ids[sym as usize];
                *id += 1;
                let qty = self.rng.random_range(1..3_000) * step;
                return vec![emit(
                    StreamKind::Trade,
                    Event::Trade {
                        id: *id,
                        price,
                        qty,
                        buyer_maker,
                    },
                )];
            }
            let before = crate::sim::market::top(book);
            let mut diff = DepthDiff::new();
            for _ in 0..self.rng.random_range(1..7) {
                let (bid, ask) = crate::sim::market::top(book);
                let mid = if bid.price > 0 && ask.price > 0 {
                    (bid.price + ask.price) / 2 / tick * tick
                } else {
                    50_000_000_000_000
                };
                let side = if self.rng.random_bool(0.5) {
                    BookSide::Bid
                } else {
                    BookSide::Ask
                };
                let k = self.rng.random_range(0..reach);
                let price = match side {
                    BookSide::Bid => ask.price.max(mid + tick).min(mid + tick) - tick - k * tick,
                    BookSide::Ask => bid.price.min(mid - tick).max(mid - tick) + tick + k * tick,
                };
                // Keep the book uncrossed: a bid below the best ask, an ask above the best bid.
                let ok = match side {
                    BookSide::Bid => ask.price == 0 || price < ask.price,
                    BookSide::Ask => bid.price == 0 || price > bid.price,
                };
                if !ok || price <= 0 {
                    continue;
                }
                let qty = if self.rng.random_bool(0.4) {
                    0
                } else {
                    self.rng.random_range(1..5_000) * step
                };
                book.set(side, price, qty);
                self.update_id += 1;
                diff.record(side, price, qty, self.update_id);
            }
            let Some(u) = diff.take() else {
                return vec![];
            };
            let mut out = vec![emit(StreamKind::Depth100ms, Event::Depth(u))];
            let after = crate::sim::market::top(book);
            if after != before {
                out.push(emit(
                    StreamKind::BookTicker,
                    Event::BookTicker {
                        update_id: self.update_id,
                        bid: after.0,
                        ask: after.1,
                    },
                ));
            }
            out
        }
    }

    /// The client: the real Kraken normalizer and books rebuilt from its frames.
    struct Client {
        n: KrakenNormalizer,
        out: Output,
        books: HashMap<u32, L2Book>,
        trades: Vec<(u32, tickwire_sdk::wire::Trade)>,
        quotes: Vec<(u32, tickwire_sdk::wire::Quote)>,
        gaps: Vec<String>,
        messages: usize,
    }

    impl Client {
        fn new(symbols: &[String], depth: usize) -> Client {
            Client {
                n: KrakenNormalizer::v2(symbols, depth),
                out: Output::new(),
                books: HashMap::new(),
                trades: Vec::new(),
                quotes: Vec::new(),
                gaps: Vec::new(),
                messages: 0,
            }
        }

        fn feed(&mut self, msgs: &mut Vec<String>) {
            for m in msgs.drain(..) {
                self.messages += 1;
                self.out.clear();
                self.n
                    .on_message(m.as_bytes(), T0, &mut self.out)
                    .unwrap_or_else(|e| panic!("normalize failed: {e}: {m}"));
                assert!(self.out.actions.is_empty(), "no resync asked: {m}");
                for f in &self.out.frames {
                    self.books.entry(f.instrument).or_default().apply_owned(f);
                    match &f.body {
                        Body::Trade(t) => self.trades.push((f.instrument, t.clone())),
                        Body::Quote(q) => self.quotes.push((f.instrument, *q)),
                        Body::Status(s) if s.code == StatusCode::Gap => {
                            self.gaps.push(s.detail.clone())
                        }
                        _ => {}
                    }
                }
            }
        }

        fn book(&self, name: &str) -> Option<&L2Book> {
            self.books.get(&instrument_id(Venue::Kraken, name))
        }
    }

    fn ctx<'a>(catalog: &'a Catalog, market: &'a Market, now_ns: u64) -> Ctx<'a> {
        Ctx {
            catalog,
            books: market,
            now_ns,
        }
    }

    fn names() -> Vec<String> {
        vec!["BTC/USDT".to_string(), "ETH/USDT".to_string()]
    }

    fn top(book: &OrderBook, depth: usize) -> (Vec<Level>, Vec<Level>) {
        (
            book.bids().take(depth).collect(),
            book.asks().take(depth).collect(),
        )
    }

    /// Runs `events` market steps through a session subscribed by the adapter's own requests
    /// at `depth` and checks the client against the market after every event.
    fn run(seed: u64, depth: u32, steps: usize, known_at_subscribe: bool) {
        let catalog = catalog();
        let mut g = Gen::new(seed);
        g.market.known = known_at_subscribe;
        let spec = KrakenSpot::new(names()).with_depth(depth);
        let depth = spec.depth as usize;
        let mut client = Client::new(&names(), depth);
        let mut s = KrakenSession::new();
        let mut out = Vec::new();
        for m in spec.subscribe_messages() {
            s.on_text(&m, &ctx(&catalog, &g.market, T0), &mut out)
                .unwrap();
        }
        assert!(out[0].starts_with("{\"channel\":\"status\""), "{}", out[0]);
        let mut book_messages = out
            .iter()
            .filter(|m| m.starts_with("{\"channel\":\"book\""))
            .count();
        assert_eq!(book_messages, if known_at_subscribe { 2 } else { 0 });
        client.feed(&mut out);
        assert_eq!(client.n.precision("BTC/USDT"), Some((2, 5)));
        assert_eq!(client.n.precision("ETH/USDT"), Some((2, 4)));
        g.market.known = true;
        let (mut want_trades, mut want_quotes) = (Vec::new(), Vec::new());
        let mut sent_top: [Option<(Level, Level)>; 2] = [None, None];
        for step in 0..steps {
            let wall = T0 + step as u64 * 1_000_000;
            for e in g.next() {
                let sym = e.key.symbol as usize;
                let inst = instrument_id(Venue::Kraken, &names()[sym]);
                match e.event {
                    Event::Trade {
                        id,
                        price,
                        qty,
                        buyer_maker,
                    } => want_trades.push((
                        inst,
                        price,
                        qty,
                        if buyer_maker {
                            TakerSide::Sell
                        } else {
                            TakerSide::Buy
                        },
                        id,
                    )),
                    Event::BookTicker { bid, ask, .. }
                        if sent_top[sym] != Some((bid, ask)) && bid.price > 0 && ask.price > 0 =>
                    {
                        sent_top[sym] = Some((bid, ask));
                        want_quotes.push((inst, bid, ask));
                    }
                    _ => {}
                }
                s.on_event(&e, wall, &ctx(&catalog, &g.market, wall), &mut out);
                book_messages += out
                    .iter()
                    .filter(|m| m.starts_with("{\"channel\":\"book\""))
                    .count();
                client.feed(&mut out);
                // After every event: the client's book is the market's, within the depth.
                for (i, name) in names().iter().enumerate() {
                    let want = top(&g.market.books[i], depth);
                    let Some(b) = client.book(name) else {
                        // Not known at subscribe: the snapshot comes with its first depth event.
                        assert!(!known_at_subscribe && step < 100, "no {name} snapshot yet");
                        continue;
                    };
                    assert!(b.is_valid());
                    assert_eq!(top(b, usize::MAX), want, "{name} at step {step}");
                    let sub = &s.books[&(i as u16)];
                    let mine = (sub.bids.top(usize::MAX), sub.asks.top(usize::MAX));
                    assert_eq!(mine, top(&g.market.books[i], usize::MAX), "session copy");
                }
            }
        }
        let stats = client.n.stats();
        assert_eq!(stats.errors, 0);
        assert_eq!(stats.gaps, 0, "{:?}", client.gaps);
        assert!(client.gaps.is_empty());
        assert_eq!(stats.get("checksum:ok") as usize, book_messages);
        assert_eq!(stats.get("checksum:learned_precision"), 0);
        assert!(book_messages > steps / 3, "book messages: {book_messages}");
        let trades: Vec<_> = client
            .trades
            .iter()
            .map(|(i, t)| {
                let TradeId::Num(id) = t.trade_id else {
                    panic!("numeric trade ids")
                };
                (*i, t.price, t.qty, t.side, id)
            })
            .collect();
        assert_eq!(trades, want_trades);
        assert!(trades.len() > steps / 10);
        let quotes: Vec<_> = client
            .quotes
            .iter()
            .map(|(i, q)| {
                (
                    *i,
                    Level {
                        price: q.bid_px,
                        qty: q.bid_qty,
                    },
                    Level {
                        price: q.ask_px,
                        qty: q.ask_qty,
                    },
                )
            })
            .collect();
        // The ticker snapshot on subscribe comes first, then every change of the top.
        let snapshots = if known_at_subscribe { 2 } else { 0 };
        assert_eq!(quotes[snapshots..], want_quotes[..]);
    }

    #[test]
    fn depth_10_books_trades_and_quotes_rebuild_exactly() {
        run(1, 10, 3_000, true);
    }

    #[test]
    fn depth_25_and_1000_books_rebuild_exactly() {
        run(2, 25, 1_500, true);
        run(3, 1000, 1_000, true);
    }

    #[test]
    fn unknown_book_at_subscribe_is_snapshotted_at_the_first_depth_event() {
        run(4, 10, 1_000, false);
    }

    #[test]
    fn window_updates_follow_the_checksum_guide() {
        // Depth 2: deleting the best bid brings the third one in; inserting a new best pushes
        // the worst out without a delete.
        let mut side = Side::new(false);
        side.load(&[
            Level { price: 100, qty: 1 },
            Level { price: 99, qty: 2 },
            Level { price: 98, qty: 3 },
        ]);
        let l = |price, qty| Level { price, qty };
        assert_eq!(side.update(&[l(100, 0)], 2), vec![l(100, 0), l(98, 3)]);
        assert_eq!(side.update(&[l(101, 5)], 2), vec![l(101, 5)]);
        assert_eq!(side.top(9), vec![l(101, 5), l(99, 2), l(98, 3)]);
        // A change outside the window is not sent; the same quantity again is not either.
        assert!(side.update(&[l(98, 4)], 2).is_empty());
        assert!(side.update(&[l(99, 2)], 2).is_empty());
        // A level deleted inside the window: qty 0, and the next one enters.
        assert_eq!(side.update(&[l(99, 0)], 2), vec![l(99, 0), l(98, 4)]);
    }

    /// The example of docs.kraken.com "Book checksum (WebSocket v2)": BTC/USD at precisions 1
    /// and 8 gives 3310070434.
    #[test]
    fn checksum_matches_the_documented_example() {
        let bids = [
            ("45283.5", "0.10000000"),
            ("45283.4", "1.54582015"),
            ("45282.1", "0.10000000"),
            ("45281.0", "0.10000000"),
            ("45280.3", "1.54592586"),
            ("45279.0", "0.07990000"),
            ("45277.6", "0.03310103"),
            ("45277.5", "0.30000000"),
            ("45277.3", "1.54602737"),
            ("45276.6", "0.15445238"),
        ];
        let asks = [
            ("45285.2", "0.00100000"),
            ("45286.4", "1.54571953"),
            ("45286.6", "1.54571109"),
            ("45289.6", "1.54560911"),
            ("45290.2", "0.15890660"),
            ("45291.8", "1.54553491"),
            ("45294.7", "0.04454749"),
            ("45296.1", "0.35380000"),
            ("45297.5", "0.09945542"),
            ("45299.5", "0.18772827"),
        ];
        let lv = |l: &[(&str, &str)]| -> Vec<Level> {
            l.iter()
                .map(|(p, q)| Level {
                    price: parse_decimal(p.as_bytes()).unwrap().value,
                    qty: parse_decimal(q.as_bytes()).unwrap().value,
                })
                .collect()
        };
        let (b, a) = (lv(&bids), lv(&asks));
        assert_eq!(checksum(a.iter(), b.iter(), 1, 8), 3_310_070_434);
        assert_eq!(checksum_digits(50_000_000, 5), "5000");
        assert_eq!(checksum_digits(0, 8), "");
    }

    #[test]
    fn times_are_rfc3339_microseconds() {
        assert_eq!(rfc3339(T0), "2023-10-06T17:35:55.440295Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            crate::kraken::scan::rfc3339_to_ns(rfc3339(1_709_251_199_999_999_000).as_bytes()),
            Some(1_709_251_199_999_999_000)
        );
    }

    /// The object keys of `m` in the order written (serde_json's map sorts them).
    fn keys(m: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = m;
        while let Some(i) = rest.find("\":") {
            let k = &rest[..i];
            if let Some(j) = k.rfind('"') {
                let k = &k[j + 1..];
                if !out.iter().any(|o| o == k) {
                    out.push(k.to_string());
                }
            }
            rest = &rest[i + 2..];
        }
        out
    }

    fn parse(m: &str) -> Value {
        serde_json::from_str(m).unwrap_or_else(|e| panic!("{e}: {m}"))
    }

    #[test]
    fn errors_pings_heartbeats_and_unsubscribe() {
        let catalog = catalog();
        let mut g = Gen::new(9);
        let mut s = KrakenSession::new();
        let mut out = Vec::new();
        macro_rules! c {
            () => {
                ctx(&catalog, &g.market, T0)
            };
        }
        // First the status greeting, then nothing more while subscribed to nothing.
        s.on_tick(&c!(), &mut out);
        let st = parse(&out[0]);
        assert_eq!(st["channel"], "status");
        assert_eq!(st["type"], "update");
        assert_eq!(st["data"][0]["system"], "online");
        assert_eq!(st["data"][0]["api_version"], "v2");
        assert_eq!(out.len(), 1);
        out.clear();
        // Ping with and without req_id.
        s.on_text(r#"{"method":"ping","req_id":101}"#, &c!(), &mut out)
            .unwrap();
        s.on_text(r#"{"method":"ping"}"#, &c!(), &mut out).unwrap();
        assert!(
            out[0].starts_with(r#"{"method":"pong","req_id":101,"success":true,"time_in":"2023-10-06T17:35:55.440295Z""#),
            "{}",
            out[0]
        );
        assert!(
            out[1].starts_with(r#"{"method":"pong","success":true"#),
            "{}",
            out[1]
        );
        out.clear();
        // Unknown pair among known ones: an error for it, acks for the others; the session
        // stays open.
        s.on_text(
            r#"{"method":"subscribe","params":{"channel":"trade","symbol":["BTC/ABC","BTC/USDT"],"snapshot":false},"req_id":7}"#,
            &c!(),
            &mut out,
        )
        .unwrap();
        let e = parse(&out[0]);
        assert_eq!(e["error"], PAIR_NOT_SUPPORTED);
        assert_eq!(e["success"], false);
        assert_eq!(e["symbol"], "BTC/ABC");
        assert_eq!(e["req_id"], 7);
        assert_eq!(e["method"], "subscribe");
        assert_eq!(
            keys(&out[0]),
            [
                "error", "method", "req_id", "success", "symbol", "time_in", "time_out"
            ]
        );
        let ack = parse(&out[1]);
        assert_eq!(ack["result"]["channel"], "trade");
        assert_eq!(ack["result"]["symbol"], "BTC/USDT");
        assert_eq!(ack["success"], true);
        assert_eq!(out.len(), 2);
        // The real normalizer reads the error as the venue's refusal naming the reason.
        let mut n = KrakenNormalizer::v2(&[], 10);
        let mut o = Output::new();
        let err = n.on_message(out[0].as_bytes(), 1, &mut o).unwrap_err();
        assert!(err.to_string().contains(PAIR_NOT_SUPPORTED), "{err}");
        n.on_message(out[1].as_bytes(), 1, &mut o).unwrap();
        out.clear();
        // Twice: already subscribed. Bad depth, unknown channel, not JSON: invalid arguments.
        for (req, want) in [
            (
                r#"{"method":"subscribe","params":{"channel":"trade","symbol":["BTC/USDT"]}}"#,
                ALREADY_SUBSCRIBED,
            ),
            (
                r#"{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USDT"],"depth":7}}"#,
                INVALID_ARGUMENTS,
            ),
            (
                r#"{"method":"subscribe","params":{"channel":"candles","symbol":["BTC/USDT"]}}"#,
                INVALID_ARGUMENTS,
            ),
            (
                r#"{"method":"unsubscribe","params":{"channel":"ticker","symbol":["BTC/USDT"]}}"#,
                NOT_FOUND,
            ),
            ("not json", INVALID_ARGUMENTS),
        ] {
            s.on_text(req, &c!(), &mut out).unwrap();
            assert_eq!(out.len(), 1, "{req}");
            assert_eq!(parse(&out[0])["error"], want, "{req}");
            out.clear();
        }
        // Trades flow; a quiet second brings a heartbeat, a busy one does not.
        let trade = |id| Emitted {
            key: StreamKey {
                symbol: 0,
                kind: StreamKind::Trade,
            },
            at: 0,
            event: Event::Trade {
                id,
                price: 50_000_000_000_000,
                qty: 1_000_000,
                buyer_maker: true,
            },
        };
        s.on_event(&trade(1), T0, &c!(), &mut out);
        assert_eq!(out.len(), 1);
        let t = parse(&out[0]);
        assert_eq!(t["data"][0]["side"], "sell");
        assert_eq!(t["data"][0]["trade_id"], 1);
        assert_eq!(out[0].matches("\"price\":50000,").count(), 1, "{}", out[0]);
        out.clear();
        s.on_tick(&c!(), &mut out);
        assert!(out.is_empty());
        s.on_tick(&c!(), &mut out);
        assert_eq!(out, vec!["{\"channel\":\"heartbeat\"}".to_string()]);
        out.clear();
        // Unsubscribed: no more trades (nor heartbeats once nothing is subscribed).
        s.on_text(
            r#"{"method":"unsubscribe","params":{"channel":"trade","symbol":["BTC/USDT"]},"req_id":8}"#,
            &c!(),
            &mut out,
        )
        .unwrap();
        let ack = parse(&out[0]);
        assert_eq!(ack["method"], "unsubscribe");
        assert_eq!(ack["result"]["symbol"], "BTC/USDT");
        out.clear();
        s.on_event(&trade(2), T0, &c!(), &mut out);
        for _ in 0..3 {
            for e in g.next() {
                s.on_event(&e, T0, &c!(), &mut out);
            }
            s.on_tick(&c!(), &mut out);
        }
        assert!(out.is_empty(), "{out:?}");
        // A trade snapshot holds the trades seen so far.
        s.on_text(
            r#"{"method":"subscribe","params":{"channel":"trade","symbol":["BTC/USDT"]}}"#,
            &c!(),
            &mut out,
        )
        .unwrap();
        let snap = parse(&out[1]);
        assert_eq!(snap["type"], "snapshot");
        assert_eq!(snap["data"][1]["trade_id"], 2);
    }

    #[test]
    fn book_unsubscribe_needs_its_depth_and_stops_the_updates() {
        let catalog = catalog();
        let mut g = Gen::new(5);
        let mut s = KrakenSession::new();
        let mut out = Vec::new();
        macro_rules! c {
            () => {
                ctx(&catalog, &g.market, T0)
            };
        }
        s.on_text(
            r#"{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USDT"],"depth":25}}"#,
            &c!(),
            &mut out,
        )
        .unwrap();
        let ack = parse(&out[1]);
        assert_eq!(ack["result"]["depth"], 25);
        assert_eq!(ack["result"]["snapshot"], true);
        let snap = parse(&out[2]);
        assert_eq!(snap["type"], "snapshot");
        assert_eq!(snap["data"][0]["bids"].as_array().unwrap().len(), 25);
        let data = snap["data"][0].as_object().unwrap();
        assert_eq!(
            keys(&out[2])
                .into_iter()
                .filter(|k| data.contains_key(k))
                .collect::<Vec<_>>(),
            ["symbol", "bids", "asks", "checksum", "timestamp"]
        );
        out.clear();
        s.on_text(
            r#"{"method":"unsubscribe","params":{"channel":"book","symbol":["BTC/USDT"]}}"#,
            &c!(),
            &mut out,
        )
        .unwrap();
        assert_eq!(parse(&out[0])["error"], NOT_FOUND);
        out.clear();
        s.on_text(
            r#"{"method":"unsubscribe","params":{"channel":"book","symbol":["BTC/USDT"],"depth":25}}"#,
            &c!(),
            &mut out,
        )
        .unwrap();
        assert_eq!(parse(&out[0])["success"], true);
        out.clear();
        for _ in 0..50 {
            for e in g.next() {
                s.on_event(&e, T0, &c!(), &mut out);
            }
        }
        assert!(out.is_empty(), "{out:?}");
        // The adapter's own request shape for books only.
        let mut spec = KrakenSpot::new(vec!["ETH/USDT".into()]).with_depth(10);
        spec.channels = ChannelSet::of(&[tickwire_sdk::wire::Channel::Book]);
        for m in spec.subscribe_messages() {
            s.on_text(&m, &c!(), &mut out).unwrap();
        }
        assert!(
            out.iter()
                .any(|m| m.starts_with("{\"channel\":\"instrument\""))
        );
        assert!(out.iter().any(|m| m.starts_with("{\"channel\":\"book\"")));
    }
}
