//! The Bybit v5 public dialect, spot (`/v5/public/spot`, [`Venue::Bybit`]) and linear
//! (`/v5/public/linear`, [`Venue::BybitLinear`]): one session type parameterised by the
//! [`Market`], as the adapter in [`crate::bybit`] is.
//!
//! What it serves, after the Bybit v5 docs ("WebSocket Stream > Connect", "Public > Orderbook",
//! "Trade", "Ticker") and replies seen from the venue:
//!
//! - requests `{"req_id":..,"op":"subscribe"|"unsubscribe"|"ping","args":[..]}`; acks
//!   `{"success":true,"ret_msg":..,"conn_id":..,"req_id":..,"op":..}` with `ret_msg`
//!   `"subscribe"`/`"unsubscribe"` on spot and `""` on linear. Spot echoes `req_id` only when
//!   the request had one; linear always carries it (`""` without). The pong is the same
//!   shape with `"ret_msg":"pong","op":"ping"` (spot without `req_id`, linear with `"req_id":""`,
//!   as the Connect page's two examples show).
//! - refusals (`"success":false`, the connection stays open; the whole request is refused,
//!   nothing of it is subscribed): an unknown topic or depth
//!   `error:handler not found,topic:<topic>`; an unknown symbol
//!   `Invalid symbol :[<topic>]` on spot and `error:handler not found,topic:<topic>` on linear;
//!   a topic subscribed twice `error:already subscribed,topic:<topic>`; more than 10 args on
//!   spot `args size >10`; another op `error:invalid op`; text that is not a JSON object
//!   `Failed to decode incoming data: ...`.
//! - `publicTrade.{symbol}`: one `snapshot` message per trade, `T s S v p [L] i BT RPI seq`
//!   (`L`, the tick direction, only on linear; trade ids digits on spot, UUIDs on linear).
//! - `orderbook.{depth}.{symbol}`: depths 1, 50, 200, 1000 on spot; 1, 50, 200, 500 on linear
//!   (the page listed 500 until it was replaced by 1000, which is served too). Depth 1 is
//!   snapshot only, from the best bid and offer events, `u` + 1 per changed top, re-sent with
//!   the same `u` after 3 s without change. Other depths: a snapshot of the top `depth`
//!   levels on subscribe, then one `delta` per book change that reaches the window, with the
//!   levels that changed in it (a level pushed out of the window arrives with size `"0"`, one
//!   coming into it with its size), `u` + 1 per delta. `seq` (the cross sequence) is the
//!   simulator's book update id. `u` counts per connection and topic.
//! - `tickers.{symbol}`: linear a `snapshot` then `delta`s with only the changed fields; spot a
//!   `snapshot` each time (spot tickers have no bid/ask). The 24 h statistics are those of the
//!   trades this connection has seen since it subscribed (the simulator keeps no day of
//!   history); mark and index prices are the mid; funding and open interest are constants.
//!
//! Times (`ts`, `cts`, `T`) are the events' wall-clock times in milliseconds.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use tickwire_sdk::wire::fixed::write_decimal_wide;
use tickwire_sdk::wire::{BookSide, Level, Venue, write_decimal};

use super::{Ctx, Dialect, Session, decimals_of, lookup, mapped, venue_symbol};
use crate::book::OrderBook;
use crate::bybit::Market;
use crate::sim::fanout::CloseReason;
use crate::sim::market::{DepthSnapshot, DepthUpdate, Emitted, Event, apply, bridge};
use crate::sim::stream::{StreamKind, SymbolId, SymbolSpec};

/// Orderbook depths served on spot.
pub const SPOT_DEPTHS: [u32; 4] = [1, 50, 200, 1000];
/// Orderbook depths served on linear (500 as the brief and the older page list it, 1000 as the
/// current page does).
pub const LINEAR_DEPTHS: [u32; 5] = [1, 50, 200, 500, 1000];
/// Most args in one spot request.
pub const SPOT_MAX_ARGS: usize = 10;
/// Level 1 is re-sent after this long without a change (ns).
pub const TOP_RESEND_NS: u64 = 3_000_000_000;

/// The Bybit v5 public dialect of one market.
#[derive(Debug, Clone, Copy)]
pub struct BybitDialect {
    market: Market,
}

impl BybitDialect {
    /// The dialect of `market`.
    pub fn new(market: Market) -> BybitDialect {
        BybitDialect { market }
    }

    /// Spot (`/v5/public/spot`).
    pub fn spot() -> BybitDialect {
        Self::new(Market::Spot)
    }

    /// Linear (`/v5/public/linear`).
    pub fn linear() -> BybitDialect {
        Self::new(Market::Linear)
    }

    /// The dialect of a Bybit venue, `None` for another venue.
    pub fn for_venue(venue: Venue) -> Option<BybitDialect> {
        match venue {
            Venue::Bybit => Some(Self::spot()),
            Venue::BybitLinear => Some(Self::linear()),
            _ => None,
        }
    }

    /// A session (without the boxing), for tests.
    pub fn new_session(&self) -> BybitSession {
        BybitSession::new(self.market)
    }
}

impl Dialect for BybitDialect {
    fn venue(&self) -> Venue {
        self.market.venue()
    }

    fn paths(&self) -> &'static [&'static str] {
        match self.market {
            Market::Spot => &["/v5/public/spot"],
            Market::Linear => &["/v5/public/linear"],
        }
    }

    fn session(&self, _path: &str) -> Box<dyn Session> {
        Box::new(self.new_session())
    }

    fn symbol(&self, spec: &SymbolSpec) -> String {
        // `BTCUSDT`, as in the topics and `"s"`.
        venue_symbol(spec, "")
    }
}

/// The best bid and offer; a side without a level has price and size 0.
type Top = (Level, Level);

/// What one subscribed topic keeps.
enum Feed {
    Trades,
    /// `orderbook.1`: the top last sent, its `u`, when it was sent.
    Top {
        sent: Option<Top>,
        u: u64,
        sent_ns: u64,
    },
    /// `orderbook.{depth}`, `None` until the book is known.
    Book {
        depth: usize,
        state: Option<Box<BookState>>,
    },
    /// `tickers`: the fields last sent.
    Tickers {
        sent: Option<Vec<(&'static str, String)>>,
    },
}

struct BookState {
    /// The whole book as of `last_id`.
    full: OrderBook,
    /// The window last sent (top `depth` levels).
    view: OrderBook,
    /// The simulator's update id the book stands at.
    last_id: u64,
    /// The topic's update id.
    u: u64,
}

struct Sub {
    topic: String,
    symbol: SymbolId,
    feed: Feed,
}

/// What the session knows of one symbol it has a topic of.
#[derive(Default)]
struct SymState {
    /// The latest best bid and offer.
    top: Option<Top>,
    /// The latest update id (the cross sequence).
    cs: u64,
    /// The last trade price and the tick direction it made.
    last: Option<i64>,
    tick: &'static str,
    /// Statistics of the trades seen since subscribing: first price, high, low, volume and
    /// turnover (1e-9 units).
    open: Option<i64>,
    high: i64,
    low: i64,
    volume: i128,
    turnover: i128,
}

impl SymState {
    fn mid(&self, tick: i64) -> Option<i64> {
        let (b, a) = self.top?;
        let m = match (b.qty > 0, a.qty > 0) {
            (true, true) => (b.price + a.price) / 2,
            (true, false) => b.price,
            (false, true) => a.price,
            (false, false) => return None,
        };
        Some(m / tick * tick)
    }

    fn trade(&mut self, price: i64, qty: i64) {
        self.tick = match self.last {
            Some(p) if price > p => "PlusTick",
            Some(p) if price < p => "MinusTick",
            Some(_) if matches!(self.tick, "PlusTick" | "ZeroPlusTick") => "ZeroPlusTick",
            Some(_) => "ZeroMinusTick",
            None => "PlusTick",
        };
        self.last = Some(price);
        if self.open.is_none() {
            self.open = Some(price);
            self.high = price;
            self.low = price;
        }
        self.high = self.high.max(price);
        self.low = self.low.min(price);
        self.volume += qty as i128;
        self.turnover += price as i128 * qty as i128 / 1_000_000_000;
    }
}

static CONNECTIONS: AtomicU64 = AtomicU64::new(1);

fn mix(mut x: u64) -> u64 {
    // splitmix64
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A linear trade id: a UUID (version 5 layout) made from the symbol and the trade id.
pub fn linear_trade_id(symbol: &str, id: u64) -> String {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in symbol.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    let a = mix(h ^ id);
    let b = mix(a ^ id.rotate_left(17));
    format!(
        "{:08x}-{:04x}-5{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// One connection in the Bybit v5 public dialect.
pub struct BybitSession {
    market: Market,
    conn_id: String,
    subs: Vec<Sub>,
    symbols: HashMap<SymbolId, SymState>,
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn num(out: &mut Vec<u8>, v: u64) {
    let _ = write!(out, "{v}");
}

fn dec(out: &mut Vec<u8>, v: i64, decimals: u8) {
    out.push(b'"');
    if v == 0 {
        out.push(b'0');
    } else {
        write_decimal(out, v, decimals);
    }
    out.push(b'"');
}

fn levels(out: &mut Vec<u8>, levels: &[Level], pd: u8, qd: u8) {
    out.push(b'[');
    for (i, l) in levels.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'[');
        dec(out, l.price, pd);
        out.push(b',');
        dec(out, l.qty, qd);
        out.push(b']');
    }
    out.push(b']');
}

fn into_string(out: Vec<u8>) -> String {
    String::from_utf8(out).unwrap_or_default()
}

/// An orderbook message.
#[allow(clippy::too_many_arguments)]
fn book_message(
    topic: &str,
    snapshot: bool,
    spec: &SymbolSpec,
    bids: &[Level],
    asks: &[Level],
    u: u64,
    seq: u64,
    ms: u64,
) -> String {
    let (pd, qd) = (decimals_of(spec.tick), decimals_of(spec.step));
    let mut out = Vec::with_capacity(128 + 24 * (bids.len() + asks.len()));
    out.extend_from_slice(b"{\"topic\":");
    json_str(&mut out, topic);
    out.extend_from_slice(if snapshot {
        b",\"type\":\"snapshot\",\"ts\":"
    } else {
        b",\"type\":\"delta\",\"ts\":"
    });
    num(&mut out, ms);
    out.extend_from_slice(b",\"data\":{\"s\":");
    json_str(&mut out, &spec.symbol);
    out.extend_from_slice(b",\"b\":");
    levels(&mut out, bids, pd, qd);
    out.extend_from_slice(b",\"a\":");
    levels(&mut out, asks, pd, qd);
    out.extend_from_slice(b",\"u\":");
    num(&mut out, u);
    out.extend_from_slice(b",\"seq\":");
    num(&mut out, seq);
    out.extend_from_slice(b"},\"cts\":");
    num(&mut out, ms);
    out.push(b'}');
    into_string(out)
}

fn top_levels(top: &Top) -> (Vec<Level>, Vec<Level>) {
    let side = |l: Level| if l.qty > 0 { vec![l] } else { Vec::new() };
    (side(top.0), side(top.1))
}

/// The top `depth` levels a side of `book`.
fn window(book: &OrderBook, depth: usize) -> OrderBook {
    let mut w = OrderBook::new();
    for l in book.bids().take(depth) {
        w.set(BookSide::Bid, l.price, l.qty);
    }
    for l in book.asks().take(depth) {
        w.set(BookSide::Ask, l.price, l.qty);
    }
    w
}

/// Why a topic cannot be subscribed.
fn check_topic(market: Market, topic: &str, ctx: &Ctx<'_>) -> Result<(SymbolId, Feed), String> {
    let not_found = || format!("error:handler not found,topic:{topic}");
    let parts: Vec<&str> = topic.split('.').collect();
    let (feed, symbol) = match parts.as_slice() {
        ["publicTrade", s] => (Feed::Trades, *s),
        ["tickers", s] => (Feed::Tickers { sent: None }, *s),
        ["orderbook", d, s] => {
            let depths: &[u32] = match market {
                Market::Spot => &SPOT_DEPTHS,
                Market::Linear => &LINEAR_DEPTHS,
            };
            let depth = d
                .parse::<u32>()
                .ok()
                .filter(|d| depths.contains(d))
                .ok_or_else(not_found)?;
            let feed = if depth == 1 {
                Feed::Top {
                    sent: None,
                    u: 0,
                    sent_ns: 0,
                }
            } else {
                Feed::Book {
                    depth: depth as usize,
                    state: None,
                }
            };
            (feed, *s)
        }
        _ => return Err(not_found()),
    };
    match lookup(ctx.catalog, symbol, "") {
        Some(id) => Ok((id, feed)),
        None => Err(match market {
            Market::Spot => format!("Invalid symbol :[{topic}]"),
            Market::Linear => not_found(),
        }),
    }
}

impl BybitSession {
    /// A session of `market`.
    pub fn new(market: Market) -> BybitSession {
        let n = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
        BybitSession {
            market,
            conn_id: format!("sim{:017x}-{n}", mix(n) >> 4),
            subs: Vec::new(),
            symbols: HashMap::new(),
        }
    }

    /// The connection id in replies.
    pub fn conn_id(&self) -> &str {
        &self.conn_id
    }

    /// The topics subscribed, in order.
    pub fn topics(&self) -> Vec<String> {
        self.subs.iter().map(|s| s.topic.clone()).collect()
    }

    /// A reply to a request (ack, refusal, pong).
    fn reply(&self, success: bool, ret_msg: &str, req_id: Option<&str>, op: &str) -> String {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(if success {
            b"{\"success\":true,\"ret_msg\":"
        } else {
            b"{\"success\":false,\"ret_msg\":"
        });
        json_str(&mut out, ret_msg);
        out.extend_from_slice(b",\"conn_id\":");
        json_str(&mut out, &self.conn_id);
        let req_id = match self.market {
            Market::Spot => req_id,
            Market::Linear => Some(req_id.unwrap_or("")),
        };
        if let Some(r) = req_id {
            out.extend_from_slice(b",\"req_id\":");
            json_str(&mut out, r);
        }
        out.extend_from_slice(b",\"op\":");
        json_str(&mut out, op);
        out.push(b'}');
        into_string(out)
    }

    fn ack_msg(&self, op: &str) -> &'static str {
        match (self.market, op) {
            (Market::Spot, "subscribe") => "subscribe",
            (Market::Spot, _) => "unsubscribe",
            (Market::Linear, _) => "",
        }
    }

    fn subscribe(
        &mut self,
        args: &[String],
        req_id: Option<&str>,
        ctx: &Ctx<'_>,
        out: &mut Vec<String>,
    ) {
        let mut new = Vec::with_capacity(args.len());
        for (i, topic) in args.iter().enumerate() {
            let refused =
                if self.subs.iter().any(|s| &s.topic == topic) || args[..i].contains(topic) {
                    Err(format!("error:already subscribed,topic:{topic}"))
                } else {
                    check_topic(self.market, topic, ctx)
                };
            match refused {
                Ok((symbol, feed)) => new.push(Sub {
                    topic: topic.clone(),
                    symbol,
                    feed,
                }),
                Err(msg) => {
                    out.push(self.reply(false, &msg, req_id, "subscribe"));
                    return;
                }
            }
        }
        out.push(self.reply(true, self.ack_msg("subscribe"), req_id, "subscribe"));
        let ms = ctx.now_ns / 1_000_000;
        for mut sub in new {
            let st = self.symbols.entry(sub.symbol).or_default();
            if st.top.is_none()
                && let Some(s) = ctx.books.book(sub.symbol, 1)
            {
                st.top = Some(top_of(&s));
                st.cs = st.cs.max(s.last_update_id);
            }
            if let Some(spec) = ctx.catalog.spec(sub.symbol) {
                start(self.market, &mut sub, st, spec, ctx, ms, out);
            }
            self.subs.push(sub);
        }
    }

    fn unsubscribe(&mut self, args: &[String], req_id: Option<&str>, out: &mut Vec<String>) {
        self.subs.retain(|s| !args.contains(&s.topic));
        let symbols = &mut self.symbols;
        let subs = &self.subs;
        symbols.retain(|id, _| subs.iter().any(|s| s.symbol == *id));
        out.push(self.reply(true, self.ack_msg("unsubscribe"), req_id, "unsubscribe"));
    }
}

fn top_of(s: &DepthSnapshot) -> Top {
    let empty = Level { price: 0, qty: 0 };
    (
        s.bids.first().copied().unwrap_or(empty),
        s.asks.first().copied().unwrap_or(empty),
    )
}

/// The first messages of a new topic: the book snapshots, the ticker snapshot.
fn start(
    market: Market,
    sub: &mut Sub,
    st: &SymState,
    spec: &SymbolSpec,
    ctx: &Ctx<'_>,
    ms: u64,
    out: &mut Vec<String>,
) {
    match &mut sub.feed {
        Feed::Trades => {}
        Feed::Top { .. } => push_top(sub, st, spec, ctx.now_ns, out),
        Feed::Book { depth, state } => {
            if let Some(snap) = ctx.books.book(sub.symbol, usize::MAX) {
                let s = sync(snap, *depth, None);
                out.push(snapshot_of(&sub.topic, spec, &s, *depth, ms));
                *state = Some(s);
            }
        }
        Feed::Tickers { .. } => push_ticker(market, sub, st, spec, ms, out),
    }
}

/// A book state from a snapshot, with `update` applied when the snapshot predates it.
fn sync(snap: DepthSnapshot, depth: usize, update: Option<&DepthUpdate>) -> Box<BookState> {
    let mut full = OrderBook::new();
    for l in &snap.bids {
        full.set(BookSide::Bid, l.price, l.qty);
    }
    for l in &snap.asks {
        full.set(BookSide::Ask, l.price, l.qty);
    }
    let mut last_id = snap.last_update_id;
    if let Some(d) = update.filter(|d| d.last_update_id > last_id) {
        apply(&mut full, d);
        last_id = d.last_update_id;
    }
    let view = window(&full, depth);
    Box::new(BookState {
        full,
        view,
        last_id,
        u: last_id.max(2),
    })
}

fn snapshot_of(topic: &str, spec: &SymbolSpec, s: &BookState, depth: usize, ms: u64) -> String {
    let bids: Vec<Level> = s.view.bids().take(depth).collect();
    let asks: Vec<Level> = s.view.asks().take(depth).collect();
    book_message(topic, true, spec, &bids, &asks, s.u, s.last_id, ms)
}

/// `orderbook.1`: a snapshot when the top changed (or was never sent).
fn push_top(sub: &mut Sub, st: &SymState, spec: &SymbolSpec, now_ns: u64, out: &mut Vec<String>) {
    let Feed::Top { sent, u, sent_ns } = &mut sub.feed else {
        return;
    };
    let Some(top) = st.top else { return };
    if *sent == Some(top) {
        return;
    }
    *u = if sent.is_none() { st.cs.max(2) } else { *u + 1 };
    *sent = Some(top);
    *sent_ns = now_ns;
    let (b, a) = top_levels(&top);
    out.push(book_message(
        &sub.topic,
        true,
        spec,
        &b,
        &a,
        *u,
        st.cs,
        now_ns / 1_000_000,
    ));
}

/// The ticker fields, in the documented order.
fn ticker_fields(
    market: Market,
    st: &SymState,
    spec: &SymbolSpec,
    ms: u64,
) -> Option<Vec<(&'static str, String)>> {
    let (pd, qd) = (decimals_of(spec.tick), decimals_of(spec.step));
    if market == Market::Linear && st.top.is_none() {
        // bid1/ask1 unknown yet: an empty string would say there is no level.
        return None;
    }
    let mid = st.mid(spec.tick);
    let last = st.last.or(mid)?;
    let d = |v: i64, decimals: u8| {
        let mut o = Vec::new();
        write_decimal(&mut o, v, decimals);
        into_string(o)
    };
    let wide = |v: i128, decimals: u8| {
        let mut o = Vec::new();
        write_decimal_wide(&mut o, v, decimals);
        into_string(o)
    };
    let open = st.open.unwrap_or(last);
    let (high, low) = if st.open.is_some() {
        (st.high, st.low)
    } else {
        (last, last)
    };
    let pct = |decimals: u8| {
        let unit = 10i128.pow(9 - decimals as u32);
        let r = (last - open) as i128 * 1_000_000_000 / open.max(1) as i128;
        wide(r / unit * unit, decimals)
    };
    let mark = d(mid.unwrap_or(last), pd);
    let turnover_d = (pd + qd).min(9);
    let mut f: Vec<(&'static str, String)> = vec![("symbol", spec.symbol.clone())];
    match market {
        Market::Spot => {
            f.push(("lastPrice", d(last, pd)));
            f.push(("highPrice24h", d(high, pd)));
            f.push(("lowPrice24h", d(low, pd)));
            f.push(("prevPrice24h", d(open, pd)));
            f.push(("volume24h", wide(st.volume, qd)));
            f.push(("turnover24h", wide(st.turnover, turnover_d)));
            f.push(("price24hPcnt", pct(4)));
            f.push(("usdIndexPrice", mark));
        }
        Market::Linear => {
            const FUNDING_MS: u64 = 8 * 3600 * 1000;
            let side = |l: Level, qty: bool| {
                if l.qty == 0 {
                    String::new()
                } else if qty {
                    d(l.qty, qd)
                } else {
                    d(l.price, pd)
                }
            };
            let empty = Level { price: 0, qty: 0 };
            let (bid, ask) = st.top.unwrap_or((empty, empty));
            let tick = if st.tick.is_empty() {
                "ZeroPlusTick"
            } else {
                st.tick
            };
            f.push(("tickDirection", tick.to_string()));
            f.push(("price24hPcnt", pct(6)));
            f.push(("lastPrice", d(last, pd)));
            f.push(("prevPrice24h", d(open, pd)));
            f.push(("highPrice24h", d(high, pd)));
            f.push(("lowPrice24h", d(low, pd)));
            f.push(("prevPrice1h", d(open, pd)));
            f.push(("markPrice", mark.clone()));
            f.push(("indexPrice", mark));
            f.push(("openInterest", "0".to_string()));
            f.push(("openInterestValue", "0.00".to_string()));
            f.push(("turnover24h", wide(st.turnover, turnover_d)));
            f.push(("volume24h", wide(st.volume, qd)));
            f.push((
                "nextFundingTime",
                ((ms / FUNDING_MS + 1) * FUNDING_MS).to_string(),
            ));
            f.push(("fundingRate", "0.0001".to_string()));
            f.push(("bid1Price", side(bid, false)));
            f.push(("bid1Size", side(bid, true)));
            f.push(("ask1Price", side(ask, false)));
            f.push(("ask1Size", side(ask, true)));
        }
    }
    Some(f)
}

/// `tickers`: a snapshot first; then on linear a delta of the changed fields, on spot a
/// snapshot whenever something changed.
fn push_ticker(
    market: Market,
    sub: &mut Sub,
    st: &SymState,
    spec: &SymbolSpec,
    ms: u64,
    out: &mut Vec<String>,
) {
    let Feed::Tickers { sent } = &mut sub.feed else {
        return;
    };
    let Some(fields) = ticker_fields(market, st, spec, ms) else {
        return;
    };
    let (snapshot, body): (bool, Vec<&(&'static str, String)>) = match sent.as_ref() {
        None => (true, fields.iter().collect()),
        Some(old) if *old == fields => return,
        Some(_) if market == Market::Spot => (true, fields.iter().collect()),
        Some(old) => (
            false,
            fields
                .iter()
                .zip(old.iter())
                .enumerate()
                .filter(|(i, (new, old))| *i == 0 || new != old)
                .map(|(_, (new, _))| new)
                .collect(),
        ),
    };
    let mut o = Vec::with_capacity(512);
    let data = |o: &mut Vec<u8>| {
        o.push(b'{');
        for (i, (k, v)) in body.iter().enumerate() {
            if i > 0 {
                o.push(b',');
            }
            json_str(o, k);
            o.push(b':');
            json_str(o, v);
        }
        o.push(b'}');
    };
    o.extend_from_slice(b"{\"topic\":");
    json_str(&mut o, &sub.topic);
    match market {
        // Spot: topic, ts, type, cs, data (the page's example order).
        Market::Spot => {
            o.extend_from_slice(b",\"ts\":");
            num(&mut o, ms);
            o.extend_from_slice(b",\"type\":\"snapshot\",\"cs\":");
            num(&mut o, st.cs);
            o.extend_from_slice(b",\"data\":");
            data(&mut o);
        }
        // Linear: topic, type, data, cs, ts.
        Market::Linear => {
            o.extend_from_slice(if snapshot {
                b",\"type\":\"snapshot\",\"data\":"
            } else {
                b",\"type\":\"delta\",\"data\":"
            });
            data(&mut o);
            o.extend_from_slice(b",\"cs\":");
            num(&mut o, st.cs);
            o.extend_from_slice(b",\"ts\":");
            num(&mut o, ms);
        }
    }
    o.push(b'}');
    out.push(into_string(o));
    *sent = Some(fields);
}

fn trade_message(
    market: Market,
    topic: &str,
    spec: &SymbolSpec,
    st: &SymState,
    (id, price, qty, buyer_maker): (u64, i64, i64, bool),
    ms: u64,
) -> String {
    let (pd, qd) = (decimals_of(spec.tick), decimals_of(spec.step));
    let mut o = Vec::with_capacity(256);
    o.extend_from_slice(b"{\"topic\":");
    json_str(&mut o, topic);
    o.extend_from_slice(b",\"type\":\"snapshot\",\"ts\":");
    num(&mut o, ms);
    o.extend_from_slice(b",\"data\":[{\"T\":");
    num(&mut o, ms);
    o.extend_from_slice(b",\"s\":");
    json_str(&mut o, &spec.symbol);
    // `m` (buyer is maker) means the taker sold.
    o.extend_from_slice(if buyer_maker {
        b",\"S\":\"Sell\",\"v\":"
    } else {
        b",\"S\":\"Buy\",\"v\":"
    });
    dec(&mut o, qty, qd);
    o.extend_from_slice(b",\"p\":");
    dec(&mut o, price, pd);
    match market {
        Market::Spot => {
            o.extend_from_slice(b",\"i\":\"");
            num(&mut o, id);
            o.push(b'"');
        }
        Market::Linear => {
            o.extend_from_slice(b",\"L\":");
            json_str(&mut o, st.tick);
            o.extend_from_slice(b",\"i\":");
            json_str(&mut o, &linear_trade_id(&spec.symbol, id));
        }
    }
    o.extend_from_slice(b",\"BT\":false,\"RPI\":false,\"seq\":");
    num(&mut o, st.cs);
    o.extend_from_slice(b"}]}");
    into_string(o)
}

impl Session for BybitSession {
    fn on_text(
        &mut self,
        text: &str,
        ctx: &Ctx<'_>,
        out: &mut Vec<String>,
    ) -> Result<(), CloseReason> {
        let v: Value = match serde_json::from_str::<Value>(text) {
            Ok(v) if v.is_object() => v,
            Ok(_) => {
                out.push(self.reply(
                    false,
                    "Failed to decode incoming data: expected a JSON object",
                    None,
                    "",
                ));
                return Ok(());
            }
            Err(e) => {
                out.push(self.reply(
                    false,
                    &format!("Failed to decode incoming data: {e}"),
                    None,
                    "",
                ));
                return Ok(());
            }
        };
        let req_id = v.get("req_id").map(|r| match r.as_str() {
            Some(s) => s.to_string(),
            None => r.to_string(),
        });
        let req_id = req_id.as_deref();
        let op = v.get("op").and_then(Value::as_str).unwrap_or("");
        match op {
            "ping" => out.push(self.reply(true, "pong", req_id, "ping")),
            "subscribe" | "unsubscribe" => {
                let args: Option<Vec<String>> = v
                    .get("args")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().map(|t| t.as_str().map(str::to_string)).collect())
                    .unwrap_or(Some(Vec::new()));
                let Some(args) = args.filter(|a| !a.is_empty()) else {
                    out.push(self.reply(false, "error:args is empty", req_id, op));
                    return Ok(());
                };
                if self.market == Market::Spot && args.len() > SPOT_MAX_ARGS {
                    out.push(self.reply(false, "args size >10", req_id, op));
                    return Ok(());
                }
                if op == "subscribe" {
                    self.subscribe(&args, req_id, ctx, out);
                } else {
                    self.unsubscribe(&args, req_id, out);
                }
            }
            other => out.push(self.reply(false, "error:invalid op", req_id, other)),
        }
        Ok(())
    }

    fn on_event(&mut self, event: &Emitted, wall_ns: u64, ctx: &Ctx<'_>, out: &mut Vec<String>) {
        if !mapped(event.key.kind) {
            return;
        }
        let sym = event.key.symbol;
        let Some(st) = self.symbols.get_mut(&sym) else {
            return;
        };
        let Some(spec) = ctx.catalog.spec(sym) else {
            return;
        };
        if st.top.is_none()
            && let Some(s) = ctx.books.book(sym, 1)
        {
            // The book was unknown at subscription and is known now.
            st.top = Some(top_of(&s));
            st.cs = st.cs.max(s.last_update_id);
        }
        let ms = wall_ns / 1_000_000;
        let market = self.market;
        match (&event.event, event.key.kind) {
            (
                Event::Trade {
                    id,
                    price,
                    qty,
                    buyer_maker,
                },
                StreamKind::Trade,
            ) => {
                st.trade(*price, *qty);
                for sub in self.subs.iter_mut().filter(|s| s.symbol == sym) {
                    match sub.feed {
                        Feed::Trades => out.push(trade_message(
                            market,
                            &sub.topic,
                            spec,
                            st,
                            (*id, *price, *qty, *buyer_maker),
                            ms,
                        )),
                        Feed::Tickers { .. } => push_ticker(market, sub, st, spec, ms, out),
                        _ => {}
                    }
                }
            }
            (
                Event::BookTicker {
                    update_id,
                    bid,
                    ask,
                },
                StreamKind::BookTicker,
            ) => {
                st.top = Some((*bid, *ask));
                st.cs = st.cs.max(*update_id);
                for sub in self.subs.iter_mut().filter(|s| s.symbol == sym) {
                    match sub.feed {
                        Feed::Top { .. } => push_top(sub, st, spec, wall_ns, out),
                        Feed::Tickers { .. } => push_ticker(market, sub, st, spec, ms, out),
                        _ => {}
                    }
                }
            }
            (Event::Depth(d), StreamKind::Depth100ms) => {
                st.cs = st.cs.max(d.last_update_id);
                for sub in self.subs.iter_mut().filter(|s| s.symbol == sym) {
                    if let Feed::Top { sent: None, .. } = sub.feed {
                        push_top(sub, st, spec, wall_ns, out);
                    }
                    let Feed::Book { depth, state } = &mut sub.feed else {
                        continue;
                    };
                    match state {
                        None => {
                            // The book was unknown at subscription: the snapshot now.
                            if let Some(snap) = ctx.books.book(sym, usize::MAX) {
                                let s = sync(snap, *depth, Some(d));
                                out.push(snapshot_of(&sub.topic, spec, &s, *depth, ms));
                                *state = Some(s);
                            }
                        }
                        Some(s) => {
                            if d.last_update_id <= s.last_id {
                                continue;
                            }
                            apply(&mut s.full, d);
                            s.last_id = d.last_update_id;
                            let w = window(&s.full, *depth);
                            let (bids, asks) = bridge(&s.view, &w);
                            if bids.is_empty() && asks.is_empty() {
                                continue;
                            }
                            s.view = w;
                            s.u += 1;
                            out.push(book_message(
                                &sub.topic, false, spec, &bids, &asks, s.u, s.last_id, ms,
                            ));
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn on_tick(&mut self, ctx: &Ctx<'_>, out: &mut Vec<String>) {
        // Level 1: re-sent unchanged, same `u`, after 3 s without a change.
        for sub in &mut self.subs {
            let Feed::Top {
                sent: Some(top),
                u,
                sent_ns,
            } = &mut sub.feed
            else {
                continue;
            };
            if ctx.now_ns.saturating_sub(*sent_ns) < TOP_RESEND_NS {
                continue;
            }
            let (Some(spec), Some(st)) =
                (ctx.catalog.spec(sub.symbol), self.symbols.get(&sub.symbol))
            else {
                continue;
            };
            *sent_ns = ctx.now_ns;
            let (b, a) = top_levels(top);
            out.push(book_message(
                &sub.topic,
                true,
                spec,
                &b,
                &a,
                *u,
                st.cs,
                ctx.now_ns / 1_000_000,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bybit::{BybitNormalizer, BybitSpec, QuoteSource};
    use crate::normalizer::{NormalizeError, Normalizer, Output};
    use crate::sim::dialect::BookSource;
    use crate::sim::market::DepthDiff;
    use crate::sim::stream::{Catalog, StreamKey};
    use crate::venue::VenueSpec;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use tickwire_sdk::L2Book;
    use tickwire_sdk::wire::{Body, Frame, Quote, Side, StatusCode, TradeId, instrument_id};

    const TICK: i64 = 10_000_000; // 0.01
    const STEP: i64 = 1_000_000; // 0.001
    const T0: u64 = 1_714_000_000_000_000_000;

    /// The simulated market: books with their update ids, and whether they are known yet.
    struct Books {
        books: Vec<(OrderBook, u64)>,
        known: bool,
    }

    impl BookSource for Books {
        fn book(&self, symbol: SymbolId, limit: usize) -> Option<DepthSnapshot> {
            let (b, u) = self.books.get(symbol as usize).filter(|_| self.known)?;
            Some(DepthSnapshot::of(b, *u, limit))
        }
    }

    /// A seeded random market of two symbols.
    struct World {
        catalog: Catalog,
        books: Books,
        rng: StdRng,
        mids: Vec<i64>,
        next_id: u64,
        trade_id: u64,
        now: u64,
    }

    const SYMBOLS: [&str; 2] = ["BTCUSDT", "ETHUSDT"];

    impl World {
        fn new(seed: u64) -> World {
            let mut catalog = Catalog::new();
            for s in SYMBOLS {
                catalog.add(SymbolSpec::new(s, TICK, STEP)).unwrap();
            }
            let mut w = World {
                catalog,
                books: Books {
                    books: Vec::new(),
                    known: true,
                },
                rng: StdRng::seed_from_u64(seed),
                mids: vec![64_000 * 1_000_000_000, 3_000 * 1_000_000_000],
                next_id: 1_000,
                trade_id: 5_000_000,
                now: T0,
            };
            for i in 0..SYMBOLS.len() {
                let mut b = OrderBook::new();
                for n in 1..=80 {
                    let q = w.rng.random_range(1..5_000) * STEP;
                    b.set(BookSide::Bid, w.mids[i] - n * TICK, q);
                    let q = w.rng.random_range(1..5_000) * STEP;
                    b.set(BookSide::Ask, w.mids[i] + n * TICK, q);
                }
                w.books.books.push((b, w.next_id));
            }
            w
        }

        fn ctx(&self) -> Ctx<'_> {
            Ctx {
                catalog: &self.catalog,
                books: &self.books,
                now_ns: self.now,
            }
        }

        fn top(&self, s: SymbolId) -> Top {
            crate::sim::market::top(&self.books.books[s as usize].0)
        }

        /// The events of one market step, and the books after it. The book of the symbol
        /// changes before `pending_books` returns: the caller picks when it becomes visible.
        fn step(&mut self) -> (Vec<Emitted>, SymbolId, DepthUpdate) {
            self.now += self.rng.random_range(1..50_000_000);
            let s = self.rng.random_range(0..SYMBOLS.len());
            let id = s as SymbolId;
            let mut diff = DepthDiff::new();
            let book = &mut self.books.books[s].0;
            if self.rng.random_bool(0.15) {
                let mv = self.rng.random_range(-3i64..=3) * TICK;
                self.mids[s] += mv;
            }
            let mid = self.mids[s];
            // Keep the book uncrossed around the mid.
            let crossed_bids: Vec<i64> = book
                .bids()
                .filter(|l| l.price >= mid)
                .map(|l| l.price)
                .collect();
            let crossed_asks: Vec<i64> = book
                .asks()
                .filter(|l| l.price <= mid)
                .map(|l| l.price)
                .collect();
            for p in crossed_bids {
                self.next_id += 1;
                diff.record(BookSide::Bid, p, 0, self.next_id);
            }
            for p in crossed_asks {
                self.next_id += 1;
                diff.record(BookSide::Ask, p, 0, self.next_id);
            }
            for _ in 0..self.rng.random_range(1..8) {
                let n = self.rng.random_range(1..110);
                let bid = self.rng.random_bool(0.5);
                let (side, price) = if bid {
                    (BookSide::Bid, mid - n * TICK)
                } else {
                    (BookSide::Ask, mid + n * TICK)
                };
                let qty = if self.rng.random_bool(0.35) {
                    0
                } else {
                    self.rng.random_range(1..5_000) * STEP
                };
                self.next_id += 1;
                diff.record(side, price, qty, self.next_id);
            }
            let update = diff.take().unwrap();
            let before = crate::sim::market::top(book);
            let mut after_book = book.clone();
            apply(&mut after_book, &update);
            let after = crate::sim::market::top(&after_book);
            let key = |kind| StreamKey { symbol: id, kind };
            let mut events = vec![Emitted {
                key: key(StreamKind::Depth100ms),
                at: 0,
                event: Event::Depth(update.clone()),
            }];
            // Binance-only kinds: ignored by the dialect.
            events.push(Emitted {
                key: key(StreamKind::Depth1000ms),
                at: 0,
                event: Event::Depth(update.clone()),
            });
            if after != before {
                events.push(Emitted {
                    key: key(StreamKind::BookTicker),
                    at: 0,
                    event: Event::BookTicker {
                        update_id: update.last_update_id,
                        bid: after.0,
                        ask: after.1,
                    },
                });
            }
            if self.rng.random_bool(0.4) {
                let buyer_maker = self.rng.random_bool(0.5);
                let l = if buyer_maker { after.0 } else { after.1 };
                if l.qty > 0 {
                    self.trade_id += 1;
                    let qty = self.rng.random_range(1..l.qty / STEP + 1) * STEP;
                    for kind in [StreamKind::Trade, StreamKind::AggTrade] {
                        events.push(Emitted {
                            key: key(kind),
                            at: 0,
                            event: if kind == StreamKind::Trade {
                                Event::Trade {
                                    id: self.trade_id,
                                    price: l.price,
                                    qty,
                                    buyer_maker,
                                }
                            } else {
                                Event::AggTrade {
                                    id: self.trade_id,
                                    first_trade: self.trade_id,
                                    last_trade: self.trade_id,
                                    price: l.price,
                                    qty,
                                    buyer_maker,
                                }
                            },
                        });
                    }
                }
            }
            (events, id, update)
        }

        fn commit(&mut self, s: SymbolId, update: &DepthUpdate) {
            let (b, u) = &mut self.books.books[s as usize];
            apply(b, update);
            *u = update.last_update_id;
        }
    }

    /// The venue's real normalizer and what it emitted, per symbol.
    struct Client {
        n: BybitNormalizer,
        out: Output,
        books: Vec<L2Book>,
        quotes: Vec<Option<Quote>>,
        trades: Vec<Frame>,
        market: Market,
    }

    impl Client {
        fn new(market: Market) -> Client {
            let symbols: Vec<String> = SYMBOLS.iter().map(|s| s.to_string()).collect();
            Client {
                n: BybitNormalizer::new(market, &symbols),
                out: Output::new(),
                books: vec![L2Book::new(), L2Book::new()],
                quotes: vec![None, None],
                trades: Vec::new(),
                market,
            }
        }

        fn symbol_of(&self, f: &Frame) -> usize {
            SYMBOLS
                .iter()
                .position(|s| instrument_id(self.market.venue(), s) == f.instrument)
                .expect("a known instrument")
        }

        fn feed(&mut self, msgs: &[String]) -> Result<(), NormalizeError> {
            for m in msgs {
                self.out.clear();
                let r = self.n.on_message(m.as_bytes(), 1, &mut self.out);
                assert!(self.out.actions.is_empty(), "no resync: {m}");
                for f in std::mem::take(&mut self.out.frames) {
                    match &f.body {
                        Body::Status(s) => {
                            assert_ne!(s.code, StatusCode::Gap, "{}: {m}", s.detail)
                        }
                        Body::BookSnapshot(_) | Body::BookDelta(_) => {
                            let i = self.symbol_of(&f);
                            self.books[i].apply_owned(&f);
                        }
                        Body::Quote(q) => {
                            let i = self.symbol_of(&f);
                            self.quotes[i] = Some(*q);
                        }
                        Body::Trade(_) => self.trades.push(f),
                        _ => {}
                    }
                }
                r?;
            }
            Ok(())
        }
    }

    fn quote(top: Top) -> Quote {
        Quote {
            bid_px: top.0.price,
            bid_qty: top.0.qty,
            ask_px: top.1.price,
            ask_qty: top.1.qty,
        }
    }

    fn side(levels: impl Iterator<Item = Level>) -> Vec<(i64, i64)> {
        levels.map(|l| (l.price, l.qty)).collect()
    }

    /// Subscribes with the adapter's own requests, runs `steps` seeded market steps through
    /// the session and the real normalizer, and checks the books, quotes and trades after
    /// every step.
    fn run(market: Market, depth: u32, quotes: QuoteSource, seed: u64, known: bool, steps: usize) {
        let mut w = World::new(seed);
        w.books.known = known;
        let mut session = BybitDialect::new(market).new_session();
        let mut client = Client::new(market);
        let mut spec = BybitSpec::new(market, SYMBOLS.iter().map(|s| s.to_string()).collect());
        spec.book_depth = depth;
        spec.quotes = quotes;
        client.n.on_connect(1, &mut client.out);
        let mut out = Vec::new();
        for m in spec.subscribe_messages() {
            session.on_text(&m, &w.ctx(), &mut out).unwrap();
        }
        let acks = out
            .iter()
            .filter(|m| m.contains("\"op\":\"subscribe\""))
            .count();
        assert_eq!(acks, spec.subscribe_messages().len());
        if known {
            // Books and level 1 at once; tickers when a last price or mid is known.
            assert!(out.len() > acks, "snapshots on subscribe");
        } else {
            assert_eq!(
                out.len(),
                acks,
                "nothing to send before the books are known"
            );
        }
        client.feed(&out).unwrap();
        w.books.known = true;
        let d = depth as usize;
        let mut trades_sent = Vec::new();
        for k in 0..steps {
            let (events, s, update) = w.step();
            // The book the source exposes may or may not include the event yet.
            let early = w.rng.random_bool(0.5);
            if early {
                w.commit(s, &update);
            }
            let mut out = Vec::new();
            for e in &events {
                session.on_event(e, w.now, &w.ctx(), &mut out);
                if let Event::Trade {
                    id,
                    price,
                    qty,
                    buyer_maker,
                } = e.event
                {
                    trades_sent.push((s, id, price, qty, buyer_maker));
                }
            }
            if !early {
                w.commit(s, &update);
            }
            if k % 20 == 0 {
                w.now += 1_000_000_000;
                session.on_tick(&w.ctx(), &mut out);
            }
            client.feed(&out).unwrap();
            for i in 0..SYMBOLS.len() {
                let (b, _) = &w.books.books[i];
                let c = &client.books[i];
                if !known && !c.is_valid() {
                    // Not synced before this symbol's first depth event.
                    assert_eq!(c.depth(), (0, 0));
                    continue;
                }
                assert!(c.is_valid(), "step {k}");
                assert_eq!(side(c.bids()), side(b.bids().take(d)), "bids step {k}");
                assert_eq!(side(c.asks()), side(b.asks().take(d)), "asks step {k}");
                if let Some(q) = client.quotes[i] {
                    assert_eq!(q, quote(w.top(i as SymbolId)), "quote step {k}");
                }
            }
        }
        let stats = client.n.stats();
        assert_eq!(stats.errors, 0);
        assert_eq!(stats.gaps, 0);
        assert_eq!(stats.get("book:synced"), 2, "one snapshot per symbol");
        assert!(client.quotes.iter().all(Option::is_some));
        // Every trade, exactly, in order.
        assert_eq!(client.trades.len(), trades_sent.len());
        for (f, (s, id, price, qty, buyer_maker)) in client.trades.iter().zip(&trades_sent) {
            let Body::Trade(t) = &f.body else {
                unreachable!()
            };
            assert_eq!(client.symbol_of(f), *s as usize);
            assert_eq!((t.price, t.qty), (*price, *qty));
            assert_eq!(t.side, if *buyer_maker { Side::Sell } else { Side::Buy });
            let want = match market {
                Market::Spot => TradeId::Num(*id),
                Market::Linear => TradeId::Text(linear_trade_id(SYMBOLS[*s as usize], *id)),
            };
            assert_eq!(t.trade_id, want);
            assert_eq!(f.ts_exchange % 1_000_000, 0, "ms times");
        }
        assert!(trades_sent.len() > steps / 5);
    }

    #[test]
    fn spot_books_quotes_and_trades_rebuild_exactly() {
        for (depth, seed) in [(50, 1), (200, 2), (1000, 3)] {
            run(
                Market::Spot,
                depth,
                QuoteSource::Orderbook1,
                seed,
                true,
                1_500,
            );
        }
    }

    #[test]
    fn linear_books_quotes_and_trades_rebuild_exactly() {
        for (depth, seed) in [(50, 4), (200, 5), (1000, 6)] {
            run(
                Market::Linear,
                depth,
                QuoteSource::Orderbook1,
                seed,
                true,
                1_500,
            );
        }
        // Quotes from the ticker deltas.
        run(Market::Linear, 50, QuoteSource::Tickers, 7, true, 1_500);
    }

    #[test]
    fn a_book_unknown_at_subscribe_is_sent_at_the_first_depth_event() {
        run(Market::Spot, 50, QuoteSource::Orderbook1, 8, false, 300);
        run(Market::Linear, 50, QuoteSource::Tickers, 9, false, 300);
    }

    fn json(m: &str) -> Value {
        serde_json::from_str(m).unwrap()
    }

    fn one(session: &mut BybitSession, w: &World, text: &str) -> Vec<Value> {
        let mut out = Vec::new();
        session.on_text(text, &w.ctx(), &mut out).unwrap();
        out.iter().map(|m| json(m)).collect()
    }

    #[test]
    fn acks_errors_and_pongs_in_each_market_shape() {
        let w = World::new(11);
        for market in [Market::Spot, Market::Linear] {
            let mut s = BybitDialect::new(market).new_session();
            let mut client = Client::new(market);
            // Pong: spot without req_id unless given, linear always with it.
            let pong = one(&mut s, &w, r#"{"op":"ping"}"#);
            assert_eq!(pong.len(), 1);
            assert_eq!(pong[0]["success"], true);
            assert_eq!(pong[0]["ret_msg"], "pong");
            assert_eq!(pong[0]["op"], "ping");
            assert_eq!(pong[0]["conn_id"], s.conn_id());
            match market {
                Market::Spot => assert!(pong[0].get("req_id").is_none()),
                Market::Linear => assert_eq!(pong[0]["req_id"], ""),
            }
            let pong = one(&mut s, &w, r#"{"req_id":"100001","op":"ping"}"#);
            assert_eq!(pong[0]["req_id"], "100001");
            client.feed(&[pong[0].to_string()]).unwrap();
            assert_eq!(client.n.stats().get("pong"), 1);

            // Subscribe ack, then the level 1 snapshot.
            let r = one(
                &mut s,
                &w,
                r#"{"req_id":"a","op":"subscribe","args":["orderbook.1.BTCUSDT","publicTrade.BTCUSDT"]}"#,
            );
            assert_eq!(r[0]["success"], true);
            assert_eq!(r[0]["req_id"], "a");
            let ret = if market == Market::Spot {
                "subscribe"
            } else {
                ""
            };
            assert_eq!(r[0]["ret_msg"], ret);
            assert_eq!(r[1]["topic"], "orderbook.1.BTCUSDT");
            assert_eq!(r[1]["type"], "snapshot");
            assert_eq!(r[1]["data"]["b"][0][0], "63999.99");

            // Refusals: the whole request, the connection stays.
            let unknown = if market == Market::Spot {
                "Invalid symbol :[publicTrade.XRPUSDT]"
            } else {
                "error:handler not found,topic:publicTrade.XRPUSDT"
            };
            for (req, msg) in [
                (
                    r#"{"req_id":"b","op":"subscribe","args":["tickers.BTCUSDT","publicTrade.XRPUSDT"]}"#,
                    unknown,
                ),
                (
                    r#"{"req_id":"b","op":"subscribe","args":["orderbook.7.BTCUSDT"]}"#,
                    "error:handler not found,topic:orderbook.7.BTCUSDT",
                ),
                (
                    r#"{"req_id":"b","op":"subscribe","args":["kline.1.BTCUSDT"]}"#,
                    "error:handler not found,topic:kline.1.BTCUSDT",
                ),
                (
                    r#"{"req_id":"b","op":"subscribe","args":["publicTrade.btcusdt"]}"#,
                    if market == Market::Spot {
                        "Invalid symbol :[publicTrade.btcusdt]"
                    } else {
                        "error:handler not found,topic:publicTrade.btcusdt"
                    },
                ),
                (
                    r#"{"req_id":"b","op":"subscribe","args":["publicTrade.BTCUSDT"]}"#,
                    "error:already subscribed,topic:publicTrade.BTCUSDT",
                ),
                (r#"{"req_id":"b","op":"nope"}"#, "error:invalid op"),
            ] {
                let r = one(&mut s, &w, req);
                assert_eq!(r.len(), 1, "{req}");
                assert_eq!(r[0]["success"], false);
                assert_eq!(r[0]["ret_msg"], msg);
                assert_eq!(r[0]["req_id"], "b");
                match client.feed(&[r[0].to_string()]) {
                    Err(NormalizeError::Venue(e)) => assert!(e.contains(msg), "{e}"),
                    other => panic!("{other:?}"),
                }
            }
            // The depth 500 is linear's; 1000 both.
            let r = one(
                &mut s,
                &w,
                r#"{"op":"subscribe","args":["orderbook.500.ETHUSDT"]}"#,
            );
            assert_eq!(r[0]["success"], market == Market::Linear);
            let r = one(&mut s, &w, "hello");
            assert_eq!(r[0]["success"], false);
            assert!(
                r[0]["ret_msg"]
                    .as_str()
                    .unwrap()
                    .starts_with("Failed to decode")
            );
            let many: Vec<String> = (0..11)
                .map(|i| format!("\"publicTrade.S{i}USDT\""))
                .collect();
            let r = one(
                &mut s,
                &w,
                &format!(r#"{{"op":"subscribe","args":[{}]}}"#, many.join(",")),
            );
            if market == Market::Spot {
                assert_eq!(r[0]["ret_msg"], "args size >10");
            } else {
                assert!(r[0]["ret_msg"].as_str().unwrap().contains("S0USDT"));
            }
            // Nothing of the refused requests was subscribed.
            let mut want = vec!["orderbook.1.BTCUSDT", "publicTrade.BTCUSDT"];
            if market == Market::Linear {
                want.push("orderbook.500.ETHUSDT");
            }
            assert_eq!(s.topics(), want);
        }
    }

    #[test]
    fn unsubscribe_stops_the_data() {
        for market in [Market::Spot, Market::Linear] {
            let mut w = World::new(12);
            let mut s = BybitDialect::new(market).new_session();
            one(
                &mut s,
                &w,
                r#"{"op":"subscribe","args":["publicTrade.BTCUSDT","publicTrade.ETHUSDT","orderbook.50.BTCUSDT","orderbook.50.ETHUSDT"]}"#,
            );
            let r = one(
                &mut s,
                &w,
                r#"{"req_id":"u1","op":"unsubscribe","args":["publicTrade.BTCUSDT","orderbook.50.BTCUSDT"]}"#,
            );
            assert_eq!(r.len(), 1);
            assert_eq!(r[0]["success"], true);
            assert_eq!(r[0]["op"], "unsubscribe");
            assert_eq!(r[0]["req_id"], "u1");
            let ret = if market == Market::Spot {
                "unsubscribe"
            } else {
                ""
            };
            assert_eq!(r[0]["ret_msg"], ret);
            let mut seen = [0usize; 2];
            for _ in 0..500 {
                let (events, sym, update) = w.step();
                w.commit(sym, &update);
                let mut out = Vec::new();
                for e in &events {
                    s.on_event(e, w.now, &w.ctx(), &mut out);
                }
                for m in &out {
                    assert!(!m.contains("BTCUSDT"), "unsubscribed: {m}");
                    seen[sym as usize] += 1;
                }
            }
            assert_eq!(seen[0], 0);
            assert!(seen[1] > 100);
            // The adapter's resync (unsubscribe + subscribe): a fresh snapshot.
            let r = one(
                &mut s,
                &w,
                r#"{"req_id":"resync-1-sub","op":"subscribe","args":["orderbook.50.BTCUSDT"]}"#,
            );
            assert_eq!(r.len(), 2);
            assert_eq!(r[0]["success"], true);
            assert_eq!(r[1]["type"], "snapshot");
            assert_eq!(r[1]["data"]["b"].as_array().unwrap().len(), 50);
        }
    }

    #[test]
    fn level_1_is_resent_unchanged_after_3_seconds() {
        let mut w = World::new(13);
        let mut s = BybitDialect::spot().new_session();
        let mut client = Client::new(Market::Spot);
        let mut out = Vec::new();
        s.on_text(
            r#"{"op":"subscribe","args":["orderbook.1.BTCUSDT"]}"#,
            &w.ctx(),
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 2);
        let first = json(&out[1]);
        client.feed(&out).unwrap();
        out.clear();
        w.now += 2_000_000_000;
        s.on_tick(&w.ctx(), &mut out);
        assert!(out.is_empty(), "not before 3 s");
        w.now += 1_000_000_000;
        s.on_tick(&w.ctx(), &mut out);
        assert_eq!(out.len(), 1);
        let again = json(&out[0]);
        assert_eq!(again["data"], first["data"], "same levels, same u");
        assert!(again["ts"].as_u64() > first["ts"].as_u64());
        client.feed(&out).unwrap();
        assert_eq!(client.n.stats().get("orderbook:unchanged"), 1);
        assert_eq!(client.n.stats().gaps, 0);
    }

    #[test]
    fn documented_message_shapes() {
        let mut w = World::new(14);
        for market in [Market::Spot, Market::Linear] {
            let mut s = BybitDialect::new(market).new_session();
            let r = one(
                &mut s,
                &w,
                r#"{"op":"subscribe","args":["orderbook.50.BTCUSDT","tickers.BTCUSDT","publicTrade.BTCUSDT"]}"#,
            );
            let book = &r[1];
            assert_eq!(book["topic"], "orderbook.50.BTCUSDT");
            assert_eq!(book["data"]["s"], "BTCUSDT");
            assert_eq!(book["data"]["b"].as_array().unwrap().len(), 50);
            assert_eq!(book["data"]["a"][0][0], "64000.01");
            assert!(book["data"]["u"].is_u64() && book["data"]["seq"].is_u64());
            assert!(book["ts"].is_u64() && book["cts"].is_u64());
            let ticker = &r[2];
            assert_eq!(ticker["topic"], "tickers.BTCUSDT");
            assert_eq!(ticker["type"], "snapshot");
            assert_eq!(ticker["data"]["lastPrice"], "64000.00");
            assert!(ticker["cs"].is_u64());
            match market {
                Market::Spot => {
                    assert!(ticker["data"].get("bid1Price").is_none());
                    assert_eq!(ticker["data"]["usdIndexPrice"], "64000.00");
                }
                Market::Linear => {
                    assert_eq!(ticker["data"]["bid1Price"], "63999.99");
                    assert_eq!(ticker["data"]["fundingRate"], "0.0001");
                }
            }
            // A trade: the trade message, and on linear a ticker delta of what changed.
            let trade = Emitted {
                key: StreamKey {
                    symbol: 0,
                    kind: StreamKind::Trade,
                },
                at: 0,
                event: Event::Trade {
                    id: 77,
                    price: 64_000_010_000_000,
                    qty: 1_500_000_000,
                    buyer_maker: false,
                },
            };
            let mut out = Vec::new();
            w.now += 1_000_000;
            s.on_event(&trade, w.now, &w.ctx(), &mut out);
            assert_eq!(out.len(), 2);
            out.sort_by_key(|m| !m.starts_with("{\"topic\":\"publicTrade"));
            let t = json(&out[0]);
            let d = &t["data"][0];
            assert_eq!(t["topic"], "publicTrade.BTCUSDT");
            assert_eq!(t["type"], "snapshot");
            assert_eq!(d["T"], w.now / 1_000_000);
            assert_eq!(
                (&d["S"], &d["v"], &d["p"]),
                (&json("\"Buy\""), &json("\"1.500\""), &json("\"64000.01\""))
            );
            assert_eq!(d["BT"], false);
            match market {
                Market::Spot => {
                    assert_eq!(d["i"], "77");
                    assert!(d.get("L").is_none());
                }
                Market::Linear => {
                    assert_eq!(d["L"], "PlusTick");
                    assert_eq!(d["i"].as_str().unwrap().len(), 36);
                }
            }
            let tk = json(&out[1]);
            assert_eq!(tk["data"]["lastPrice"], "64000.01");
            match market {
                Market::Spot => assert_eq!(tk["type"], "snapshot"),
                Market::Linear => {
                    assert_eq!(tk["type"], "delta");
                    let keys: Vec<&str> = tk["data"]
                        .as_object()
                        .unwrap()
                        .keys()
                        .map(|k| k.as_str())
                        .collect();
                    assert!(keys.contains(&"symbol") && keys.contains(&"volume24h"));
                    assert!(!keys.contains(&"bid1Price"), "unchanged fields left out");
                }
            }
        }
    }
}
