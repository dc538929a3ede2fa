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

use super::{Ctx, Dialect, Session, decimals_of, lookup, mapped};
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
