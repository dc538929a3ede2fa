//! The simulator speaking OKX v5 public WebSocket, as documented at
//! <https://www.okx.com/docs-v5/en/> ("Overview / WebSocket", "Order book trading / Market
//! data / WS / Trades channel, Tickers channel, Order book channel", "Error code / WebSocket").
//!
//! - Path `/ws/v5/public`; instIds are `BASE-QUOTE` (`BTC-USDT`), spot (`instType` `SPOT`).
//! - Requests `{"id":..,"op":"subscribe"|"unsubscribe","args":[{"channel":..,"instId":..}]}`
//!   (`id` optional, echoed). Each arg is answered on its own:
//!   `{"id":..,"event":"subscribe","arg":{..},"connId":".."}`, or an error event
//!   `{"id":..,"event":"error","code":"600xx","msg":"..","connId":".."}`: 60012 `Invalid
//!   request` (not JSON, no `op` or `args`), 60013 `Invalid args` (an arg without a channel or
//!   instId), 60018 `Wrong URL or channel:..,instId:.. doesn't exist` (an unknown channel or
//!   instrument), 60019 `Invalid op`, 60011 `Please log in` (the tick-by-tick books, which need
//!   a login the simulator does not offer). Errors never close the connection.
//! - The text `ping` is answered with the text `pong`.
//! - `trades`: one push per trade, `side` the taker's, `count` 1. On subscribe the latest trade
//!   seen on this connection is sent again, as OKX does (clients drop it by `tradeId`).
//! - `tickers`: on subscribe, then on a trade or a best bid/ask change, at most every 100 ms
//!   (a change within 100 ms of the last push is sent once the 100 ms are over). `last` and
//!   the 24 h fields are made from the trades this connection has seen.
//! - `bbo-tbt`: the best level as a 1-level book, on subscribe and on every change, at most
//!   every 10 ms.
//! - `books`: a snapshot of 400 levels a side (`action` `snapshot`, `prevSeqId` -1), then an
//!   `update` per 100 ms depth event with every level that changed in the 400-level window
//!   (a level pushed out of the window is sent with size 0, a level entering it with its
//!   size), `prevSeqId` = the `seqId` of the previous push, `seqId` = the depth event's last
//!   update id, and the CRC32 checksum of the top 25 levels, interleaved
//!   `bid1px:bid1sz:ask1px:ask1sz:..`, over the price and size strings as sent (the docs call
//!   the checksum deprecated; its documented value is sent, never 0 on purpose). A depth event
//!   that changes nothing within the window is not pushed; after 60 s without a push, a
//!   keepalive update with empty sides and `prevSeqId` = `seqId` is sent.
//! - `books5`: a 5-level snapshot on subscribe and whenever the top 5 change.
//!
//! Numbers are decimal strings without trailing zeros (`"8477"`, `"0.0002"`), timestamps are
//! ms strings; `checksum`, `seqId`, `prevSeqId` are JSON numbers. The session keeps its own
//! copy of each subscribed book (from [`super::BookSource`] on subscribe, or at the first
//! depth event once the source knows the book) and of what the client was sent.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;
use tickwire_sdk::wire::{BookSide, Level, Venue, write_decimal};

use super::{Ctx, Dialect, Session, lookup, mapped, venue_symbol};
use crate::book::OrderBook;
use crate::sim::fanout::CloseReason;
use crate::sim::market::{DepthSnapshot, DepthUpdate, Emitted, Event, apply, bridge};
use crate::sim::render::into_string;
use crate::sim::stream::{StreamKind, SymbolId, SymbolSpec};

/// The public channels' path.
pub const PATH: &str = "/ws/v5/public";
/// Levels a side of the `books` channel.
pub const BOOKS_DEPTH: usize = 400;
/// Levels a side of the `books5` channel.
pub const BOOKS5_DEPTH: usize = 5;
/// Levels a side that enter the checksum.
pub const CHECKSUM_DEPTH: usize = 25;
/// Fastest `tickers` push, per instrument.
pub const TICKERS_INTERVAL_NS: u64 = 100_000_000;
/// Fastest `bbo-tbt` push, per instrument.
pub const BBO_INTERVAL_NS: u64 = 10_000_000;
/// A `books` subscription with no push for this long gets an empty keepalive update.
pub const BOOKS_KEEPALIVE_NS: u64 = 60_000_000_000;
/// Instrument-id separator.
const SEP: &str = "-";
/// The venue's 60018 text after the channel and instId.
const NOT_FOUND: &str =
    "doesn't exist. Please use the correct URL, channel and parameters referring to API document.";

/// The OKX dialect: one path, one session per connection.
#[derive(Debug, Default)]
pub struct OkxDialect {
    next_conn: AtomicU32,
}

impl OkxDialect {
    /// The dialect.
    pub fn new() -> OkxDialect {
        OkxDialect::default()
    }
}

impl Dialect for OkxDialect {
    fn venue(&self) -> Venue {
        Venue::Okx
    }

    fn paths(&self) -> &'static [&'static str] {
        &[PATH]
    }

    fn session(&self, _path: &str) -> Box<dyn Session> {
        let n = self.next_conn.fetch_add(1, Ordering::Relaxed);
        // 8 hex digits like OKX's connId, distinct per connection.
        Box::new(OkxSession::new(format!(
            "{:08x}",
            n.wrapping_add(1).wrapping_mul(0x9E37_79B9)
        )))
    }

    fn symbol(&self, spec: &SymbolSpec) -> String {
        venue_symbol(spec, SEP)
    }
}

/// The channels served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chan {
    Trades,
    Tickers,
    BboTbt,
    Books,
    Books5,
}

impl Chan {
    fn of(name: &str) -> Option<Chan> {
        Some(match name {
            "trades" => Chan::Trades,
            "tickers" => Chan::Tickers,
            "bbo-tbt" => Chan::BboTbt,
            "books" => Chan::Books,
            "books5" => Chan::Books5,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Chan::Trades => "trades",
            Chan::Tickers => "tickers",
            Chan::BboTbt => "bbo-tbt",
            Chan::Books => "books",
            Chan::Books5 => "books5",
        }
    }
}

/// At most one push per interval; a change within it is pushed once it is over.
#[derive(Debug, Default)]
struct Throttle {
    last_ns: Option<u64>,
    /// Time of the latest change not pushed yet.
    pending: Option<u64>,
}

impl Throttle {
    /// A change at `now`: whether to push it now (else it is pending).
    fn trigger(&mut self, now: u64, interval: u64) -> bool {
        if self
            .last_ns
            .is_none_or(|l| now >= l.saturating_add(interval))
        {
            self.last_ns = Some(now);
            self.pending = None;
            true
        } else {
            self.pending = Some(now);
            false
        }
    }

    /// At `now`: the time of a pending change due for its push.
    fn due(&mut self, now: u64, interval: u64) -> Option<u64> {
        let at = self.pending?;
        if self
            .last_ns
            .is_none_or(|l| now >= l.saturating_add(interval))
        {
            self.last_ns = Some(now);
            self.pending = None;
            Some(at)
        } else {
            None
        }
    }
}

/// The last trade and the day's statistics, from the trades seen on this connection.
#[derive(Debug, Clone, Copy)]
struct Traded {
    id: u64,
    price: i64,
    qty: i64,
    taker_sold: bool,
    ts_ms: u64,
    open: i64,
    high: i64,
    low: i64,
    vol: i64,
    /// Quote volume, 1e-9 units.
    vol_ccy: i128,
}

/// The `books` channel of one instrument.
#[derive(Debug, Default)]
struct BooksSub {
    /// What the client was sent: the 400-level window.
    sent: OrderBook,
    /// `seqId` of the last push; `None` until the snapshot is sent.
    seq: Option<i64>,
    /// Wall time of the last push.
    last_push_ns: u64,
}

/// Per instrument: subscriptions, the session's copy of its book, its market state.
#[derive(Debug, Default)]
struct Inst {
    name: String,
    trades: bool,
    tickers: bool,
    bbo: bool,
    books: Option<BooksSub>,
    /// `Some` while subscribed; the last 5-level book sent (`None` before the first).
    books5: Option<Option<(Vec<Level>, Vec<Level>)>>,
    /// The session's copy of the whole book and the update id it stands at, kept while a
    /// book channel is subscribed and the book is known.
    full: Option<(OrderBook, u64)>,
    /// Best bid and ask (price 0 = none) and the update id, from book tickers.
    top: Option<(Level, Level, u64)>,
    traded: Option<Traded>,
    tickers_throttle: Throttle,
    bbo_throttle: Throttle,
}

impl Inst {
    fn wants_book(&self) -> bool {
        self.books.is_some() || self.books5.is_some()
    }
}

/// One OKX connection.
pub struct OkxSession {
    conn_id: String,
    insts: BTreeMap<SymbolId, Inst>,
}

impl OkxSession {
    /// A session whose acknowledgements carry `conn_id`.
    pub fn new(conn_id: String) -> OkxSession {
        OkxSession {
            conn_id,
            insts: BTreeMap::new(),
        }
    }

    fn inst<'a>(&'a mut self, id: SymbolId, ctx: &Ctx<'_>) -> &'a mut Inst {
        self.insts.entry(id).or_insert_with(|| Inst {
            name: ctx
                .catalog
                .spec(id)
                .map(|s| venue_symbol(s, SEP))
                .unwrap_or_default(),
            ..Inst::default()
        })
    }

    fn error(&self, id: Option<&str>, code: &str, msg: &str) -> String {
        let mut s = String::from("{");
        if let Some(id) = id {
            s.push_str(&format!("\"id\":{},", json_str(id)));
        }
        s.push_str(&format!(
            "\"event\":\"error\",\"code\":\"{code}\",\"msg\":{},\"connId\":\"{}\"}}",
            json_str(msg),
            self.conn_id
        ));
        s
    }

    fn ack(&self, id: Option<&str>, op: &str, channel: &str, inst: &str) -> String {
        let mut s = String::from("{");
        if let Some(id) = id {
            s.push_str(&format!("\"id\":{},", json_str(id)));
        }
        s.push_str(&format!(
            "\"event\":\"{op}\",\"arg\":{{\"channel\":\"{channel}\",\"instId\":\"{inst}\"}},\"connId\":\"{}\"}}",
            self.conn_id
        ));
        s
    }

    /// One arg of a subscribe or unsubscribe request.
    fn on_arg(
        &mut self,
        id: Option<&str>,
        subscribe: bool,
        arg: &Value,
        ctx: &Ctx<'_>,
        out: &mut Vec<String>,
    ) {
        let (Some(channel), Some(inst_id)) = (
            arg.get("channel").and_then(Value::as_str),
            arg.get("instId").and_then(Value::as_str),
        ) else {
            out.push(self.error(id, "60013", "Invalid args"));
            return;
        };
        if subscribe && matches!(channel, "books-l2-tbt" | "books50-l2-tbt") {
            out.push(self.error(id, "60011", "Please log in"));
            return;
        }
        let (Some(chan), Some(sym)) = (Chan::of(channel), lookup(ctx.catalog, inst_id, SEP)) else {
            let msg = format!("Wrong URL or channel:{channel},instId:{inst_id} {NOT_FOUND}");
            out.push(self.error(id, "60018", &msg));
            return;
        };
        let op = if subscribe {
            "subscribe"
        } else {
            "unsubscribe"
        };
        let ack = self.ack(id, op, chan.name(), inst_id);
        let now = ctx.now_ns;
        let inst = self.inst(sym, ctx);
        if !subscribe {
            match chan {
                Chan::Trades => inst.trades = false,
                Chan::Tickers => {
                    inst.tickers = false;
                    inst.tickers_throttle = Throttle::default();
                }
                Chan::BboTbt => {
                    inst.bbo = false;
                    inst.bbo_throttle = Throttle::default();
                }
                Chan::Books => inst.books = None,
                Chan::Books5 => inst.books5 = None,
            }
            if !inst.wants_book() {
                inst.full = None;
            }
            out.push(ack);
            return;
        }
        out.push(ack);
        match chan {
            Chan::Trades => {
                inst.trades = true;
                // OKX sends the latest trade again on subscribe.
                if let Some(t) = inst.traded {
                    out.push(trade_msg(&inst.name, &t));
                }
            }
            Chan::Tickers => {
                inst.tickers = true;
                inst.tickers_throttle = Throttle::default();
                known_top(inst, sym, ctx);
                if inst.top.is_some() {
                    inst.tickers_throttle.trigger(now, TICKERS_INTERVAL_NS);
                    out.push(ticker_msg(inst, now / 1_000_000));
                }
            }
            Chan::BboTbt => {
                inst.bbo = true;
                inst.bbo_throttle = Throttle::default();
                known_top(inst, sym, ctx);
                if inst.top.is_some() {
                    inst.bbo_throttle.trigger(now, BBO_INTERVAL_NS);
                    out.push(bbo_msg(inst, now / 1_000_000));
                }
            }
            Chan::Books => {
                // A new subscription (or a resubscription) starts with a fresh snapshot.
                inst.books = Some(BooksSub::default());
                load_full(inst, sym, ctx);
                push_books(inst, now, out);
            }
            Chan::Books5 => {
                inst.books5 = Some(None);
                load_full(inst, sym, ctx);
                push_books5(inst, now, out);
            }
        }
    }

    /// Pushes every throttled change whose interval is over.
    fn flush(&mut self, now: u64, out: &mut Vec<String>) {
        for inst in self.insts.values_mut() {
            if inst.tickers
                && let Some(at) = inst.tickers_throttle.due(now, TICKERS_INTERVAL_NS)
            {
                out.push(ticker_msg(inst, at / 1_000_000));
            }
            if inst.bbo
                && let Some(at) = inst.bbo_throttle.due(now, BBO_INTERVAL_NS)
            {
                out.push(bbo_msg(inst, at / 1_000_000));
            }
        }
    }
}

impl Session for OkxSession {
    fn on_text(
        &mut self,
        text: &str,
        ctx: &Ctx<'_>,
        out: &mut Vec<String>,
    ) -> Result<(), CloseReason> {
        if text == "ping" {
            out.push("pong".to_string());
            return Ok(());
        }
        let invalid = |s: &OkxSession| s.error(None, "60012", &format!("Invalid request: {text}"));
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            out.push(invalid(self));
            return Ok(());
        };
        let id = v.get("id").and_then(Value::as_str).map(str::to_string);
        let id = id.as_deref();
        let subscribe = match v.get("op").and_then(Value::as_str) {
            Some("subscribe") => true,
            Some("unsubscribe") => false,
            Some("login") => {
                out.push(self.error(id, "60009", "Login failure"));
                return Ok(());
            }
            Some(op) => {
                out.push(self.error(id, "60019", &format!("Invalid op: {op}")));
                return Ok(());
            }
            None => {
                out.push(invalid(self));
                return Ok(());
            }
        };
        let Some(args) = v
            .get("args")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
        else {
            out.push(invalid(self));
            return Ok(());
        };
        for arg in args {
            self.on_arg(id, subscribe, arg, ctx, out);
        }
        Ok(())
    }

    fn on_event(&mut self, event: &Emitted, wall_ns: u64, ctx: &Ctx<'_>, out: &mut Vec<String>) {
        let kind = event.key.kind;
        if mapped(kind) && ctx.catalog.spec(event.key.symbol).is_some() {
            let sym = event.key.symbol;
            let inst = self.inst(sym, ctx);
            let ts_ms = wall_ns / 1_000_000;
            match (&event.event, kind) {
                (
                    &Event::Trade {
                        id,
                        price,
                        qty,
                        buyer_maker,
                    },
                    StreamKind::Trade,
                ) => {
                    let notional = i128::from(price) * i128::from(qty) / 1_000_000_000;
                    let mut t = inst.traded.unwrap_or(Traded {
                        id,
                        price,
                        qty,
                        taker_sold: buyer_maker,
                        ts_ms,
                        open: price,
                        high: price,
                        low: price,
                        vol: 0,
                        vol_ccy: 0,
                    });
                    t.id = id;
                    t.price = price;
                    t.qty = qty;
                    t.taker_sold = buyer_maker;
                    t.ts_ms = ts_ms;
                    t.high = t.high.max(price);
                    t.low = t.low.min(price);
                    t.vol = t.vol.saturating_add(qty);
                    t.vol_ccy += notional;
                    inst.traded = Some(t);
                    if inst.trades
                        && let Some(t) = &inst.traded
                    {
                        out.push(trade_msg(&inst.name, t));
                    }
                    if inst.tickers
                        && inst.top.is_some()
                        && inst.tickers_throttle.trigger(wall_ns, TICKERS_INTERVAL_NS)
                    {
                        out.push(ticker_msg(inst, ts_ms));
                    }
                }
                (
                    &Event::BookTicker {
                        update_id,
                        bid,
                        ask,
                    },
                    StreamKind::BookTicker,
                ) => {
                    let changed = inst.top.is_none_or(|(b, a, _)| (b, a) != (bid, ask));
                    inst.top = Some((bid, ask, update_id));
                    if changed {
                        if inst.tickers
                            && inst.tickers_throttle.trigger(wall_ns, TICKERS_INTERVAL_NS)
                        {
                            out.push(ticker_msg(inst, ts_ms));
                        }
                        if inst.bbo && inst.bbo_throttle.trigger(wall_ns, BBO_INTERVAL_NS) {
                            out.push(bbo_msg(inst, ts_ms));
                        }
                    }
                }
                (Event::Depth(update), StreamKind::Depth100ms) if inst.wants_book() => {
                    on_depth(inst, sym, update, ctx);
                    push_books(inst, wall_ns, out);
                    push_books5(inst, wall_ns, out);
                }
                _ => {}
            }
        }
        self.flush(wall_ns, out);
    }

    fn on_tick(&mut self, ctx: &Ctx<'_>, out: &mut Vec<String>) {
        let now = ctx.now_ns;
        self.flush(now, out);
        for inst in self.insts.values_mut() {
            let Some(books) = &mut inst.books else {
                continue;
            };
            let Some(seq) = books.seq else {
                continue;
            };
            if now.saturating_sub(books.last_push_ns) >= BOOKS_KEEPALIVE_NS {
                // "No update for a long time": empty sides, prevSeqId = seqId.
                books.last_push_ns = now;
                let checksum = checksum(&books.sent);
                out.push(books_msg(
                    &inst.name,
                    "update",
                    &[],
                    &[],
                    now / 1_000_000,
                    checksum,
                    seq,
                    seq,
                ));
            }
        }
    }
}

/// Fills in the best bid and ask from the book source when no book ticker was seen yet.
fn known_top(inst: &mut Inst, sym: SymbolId, ctx: &Ctx<'_>) {
    if inst.top.is_some() {
        return;
    }
    if let Some((book, id)) = &inst.full {
        let empty = Level { price: 0, qty: 0 };
        let (b, a) = (book.best_bid(), book.best_ask());
        inst.top = Some((b.unwrap_or(empty), a.unwrap_or(empty), *id));
    } else if let Some(s) = ctx.books.book(sym, 1) {
        let empty = Level { price: 0, qty: 0 };
        let b = s.bids.first().copied().unwrap_or(empty);
        let a = s.asks.first().copied().unwrap_or(empty);
        inst.top = Some((b, a, s.last_update_id));
    }
}

/// Takes the session's copy of the book from the source, unless it has one already.
fn load_full(inst: &mut Inst, sym: SymbolId, ctx: &Ctx<'_>) {
    if inst.full.is_none() {
        inst.full = ctx.books.book(sym, usize::MAX).map(from_snapshot);
    }
}

fn from_snapshot(s: DepthSnapshot) -> (OrderBook, u64) {
    let mut book = OrderBook::new();
    for l in &s.bids {
        book.set(BookSide::Bid, l.price, l.qty);
    }
    for l in &s.asks {
        book.set(BookSide::Ask, l.price, l.qty);
    }
    (book, s.last_update_id)
}

/// A depth event on the session's copy of the book (taken from the source first if the book
/// was not known at subscribe). Absolute quantities: applying a change the copy already holds
/// is harmless, so an event the source already counted is fine either way.
fn on_depth(inst: &mut Inst, sym: SymbolId, update: &DepthUpdate, ctx: &Ctx<'_>) {
    load_full(inst, sym, ctx);
    if let Some((book, id)) = &mut inst.full
        && update.last_update_id > *id
    {
        apply(book, update);
        *id = update.last_update_id;
    }
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

/// Pushes the `books` snapshot (if not sent yet) or the update of the window since the last
/// push (if anything in it changed).
fn push_books(inst: &mut Inst, now: u64, out: &mut Vec<String>) {
    let (Some(books), Some((full, id))) = (&mut inst.books, &inst.full) else {
        return;
    };
    let new = window(full, BOOKS_DEPTH);
    let ts_ms = now / 1_000_000;
    let id = i64::try_from(*id).unwrap_or(i64::MAX);
    match books.seq {
        None => {
            let bids: Vec<Level> = new.bids().collect();
            let asks: Vec<Level> = new.asks().collect();
            let seq = id.max(0);
            out.push(books_msg(
                &inst.name,
                "snapshot",
                &bids,
                &asks,
                ts_ms,
                checksum(&new),
                -1,
                seq,
            ));
            books.seq = Some(seq);
        }
        Some(prev) => {
            let (bids, asks) = bridge(&books.sent, &new);
            if bids.is_empty() && asks.is_empty() {
                return;
            }
            let seq = id.max(prev.saturating_add(1));
            out.push(books_msg(
                &inst.name,
                "update",
                &bids,
                &asks,
                ts_ms,
                checksum(&new),
                prev,
                seq,
            ));
            books.seq = Some(seq);
        }
    }
    books.sent = new;
    books.last_push_ns = now;
}

/// Pushes the 5-level book if it changed since the last push (or was never sent).
fn push_books5(inst: &mut Inst, now: u64, out: &mut Vec<String>) {
    let (Some(sent), Some((full, id))) = (&mut inst.books5, &inst.full) else {
        return;
    };
    let bids: Vec<Level> = full.bids().take(BOOKS5_DEPTH).collect();
    let asks: Vec<Level> = full.asks().take(BOOKS5_DEPTH).collect();
    if sent.as_ref().is_some_and(|(b, a)| *b == bids && *a == asks) {
        return;
    }
    let mut s = Vec::with_capacity(512);
    arg_head(&mut s, "books5", &inst.name);
    s.extend_from_slice(b",\"data\":[{\"asks\":");
    levels(&mut s, &asks);
    s.extend_from_slice(b",\"bids\":");
    levels(&mut s, &bids);
    s.extend_from_slice(b",\"instId\":\"");
    s.extend_from_slice(inst.name.as_bytes());
    s.extend_from_slice(
        format!("\",\"ts\":\"{}\",\"seqId\":{id}}}]}}", now / 1_000_000).as_bytes(),
    );
    out.push(into_string(s));
    *sent = Some((bids, asks));
}

/// The documented checksum of a book: CRC32 of the top 25 levels a side, interleaved
/// `bid1px:bid1sz:ask1px:ask1sz:..` (the longer side's rest alone), as signed 32 bits, over
/// the strings as this dialect writes them.
pub fn checksum(book: &OrderBook) -> i32 {
    let mut text = Vec::with_capacity(2048);
    let mut bids = book.bids();
    let mut asks = book.asks();
    for _ in 0..CHECKSUM_DEPTH {
        let (b, a) = (bids.next(), asks.next());
        if b.is_none() && a.is_none() {
            break;
        }
        for l in [b, a].into_iter().flatten() {
            if !text.is_empty() {
                text.push(b':');
            }
            write_decimal(&mut text, l.price, 0);
            text.push(b':');
            write_decimal(&mut text, l.qty, 0);
        }
    }
    crc32fast::hash(&text) as i32
}

/// A string as a JSON string literal.
fn json_str(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// A decimal string without trailing zeros, quoted.
fn dec(out: &mut Vec<u8>, v: i64) {
    out.push(b'"');
    write_decimal(out, v, 0);
    out.push(b'"');
}

/// `[["px","sz","0","orders"],..]`; the order count is not simulated: 1 per level, 0 for a
/// removed level (as OKX sends removals).
fn levels(out: &mut Vec<u8>, levels: &[Level]) {
    out.push(b'[');
    for (i, l) in levels.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'[');
        dec(out, l.price);
        out.push(b',');
        dec(out, l.qty);
        out.extend_from_slice(if l.qty == 0 {
            b",\"0\",\"0\"]"
        } else {
            b",\"0\",\"1\"]"
        });
    }
    out.push(b']');
}

/// `{"arg":{"channel":..,"instId":..}`
fn arg_head(out: &mut Vec<u8>, channel: &str, inst: &str) {
    out.extend_from_slice(b"{\"arg\":{\"channel\":\"");
    out.extend_from_slice(channel.as_bytes());
    out.extend_from_slice(b"\",\"instId\":\"");
    out.extend_from_slice(inst.as_bytes());
    out.extend_from_slice(b"\"}");
}

#[allow(clippy::too_many_arguments)]
fn books_msg(
    inst: &str,
    action: &str,
    bids: &[Level],
    asks: &[Level],
    ts_ms: u64,
    checksum: i32,
    prev_seq: i64,
    seq: i64,
) -> String {
    let mut s = Vec::with_capacity(64 + 40 * (bids.len() + asks.len()));
    arg_head(&mut s, "books", inst);
    s.extend_from_slice(b",\"action\":\"");
    s.extend_from_slice(action.as_bytes());
    s.extend_from_slice(b"\",\"data\":[{\"asks\":");
    levels(&mut s, asks);
    s.extend_from_slice(b",\"bids\":");
    levels(&mut s, bids);
    s.extend_from_slice(
        format!(
            ",\"ts\":\"{ts_ms}\",\"checksum\":{checksum},\"prevSeqId\":{prev_seq},\"seqId\":{seq}}}]}}"
        )
        .as_bytes(),
    );
    into_string(s)
}

fn trade_msg(inst: &str, t: &Traded) -> String {
    let mut s = Vec::with_capacity(256);
    arg_head(&mut s, "trades", inst);
    s.extend_from_slice(b",\"data\":[{\"instId\":\"");
    s.extend_from_slice(inst.as_bytes());
    s.extend_from_slice(format!("\",\"tradeId\":\"{}\",\"px\":", t.id).as_bytes());
    dec(&mut s, t.price);
    s.extend_from_slice(b",\"sz\":");
    dec(&mut s, t.qty);
    let side = if t.taker_sold { "sell" } else { "buy" };
    s.extend_from_slice(
        format!(
            ",\"side\":\"{side}\",\"ts\":\"{}\",\"count\":\"1\",\"source\":\"0\",\"seqId\":{}}}]}}",
            t.ts_ms, t.id
        )
        .as_bytes(),
    );
    into_string(s)
}

/// A side of the top: `""` for price and size when the side is empty.
fn top_side(out: &mut Vec<u8>, px: &str, sz: &str, l: Level) {
    out.extend_from_slice(format!(",\"{px}\":").as_bytes());
    if l.price == 0 {
        out.extend_from_slice(format!("\"\",\"{sz}\":\"\"").as_bytes());
    } else {
        dec(out, l.price);
        out.extend_from_slice(format!(",\"{sz}\":").as_bytes());
        dec(out, l.qty);
    }
}

fn ticker_msg(inst: &Inst, ts_ms: u64) -> String {
    let empty = Level { price: 0, qty: 0 };
    let (bid, ask, _) = inst.top.unwrap_or((empty, empty, 0));
    let mut s = Vec::with_capacity(512);
    arg_head(&mut s, "tickers", &inst.name);
    s.extend_from_slice(b",\"data\":[{\"instType\":\"SPOT\",\"instId\":\"");
    s.extend_from_slice(inst.name.as_bytes());
    s.push(b'"');
    let num = |s: &mut Vec<u8>, key: &str, v: Option<i64>| {
        s.extend_from_slice(format!(",\"{key}\":").as_bytes());
        match v {
            Some(v) => dec(s, v),
            None => s.extend_from_slice(b"\"\""),
        }
    };
    let t = inst.traded;
    num(&mut s, "last", t.map(|t| t.price));
    num(&mut s, "lastSz", t.map(|t| t.qty));
    top_side(&mut s, "askPx", "askSz", ask);
    top_side(&mut s, "bidPx", "bidSz", bid);
    num(&mut s, "open24h", t.map(|t| t.open));
    num(&mut s, "high24h", t.map(|t| t.high));
    num(&mut s, "low24h", t.map(|t| t.low));
    let vol_ccy = t.map(|t| t.vol_ccy.clamp(0, i128::from(i64::MAX)) as i64);
    num(&mut s, "volCcy24h", vol_ccy);
    num(&mut s, "vol24h", t.map(|t| t.vol));
    num(&mut s, "sodUtc0", t.map(|t| t.open));
    num(&mut s, "sodUtc8", t.map(|t| t.open));
    s.extend_from_slice(format!(",\"ts\":\"{ts_ms}\"}}]}}").as_bytes());
    into_string(s)
}

fn bbo_msg(inst: &Inst, ts_ms: u64) -> String {
    let empty = Level { price: 0, qty: 0 };
    let (bid, ask, id) = inst.top.unwrap_or((empty, empty, 0));
    let side = |l: Level| if l.price == 0 { vec![] } else { vec![l] };
    let mut s = Vec::with_capacity(256);
    arg_head(&mut s, "bbo-tbt", &inst.name);
    s.extend_from_slice(b",\"data\":[{\"asks\":");
    levels(&mut s, &side(ask));
    s.extend_from_slice(b",\"bids\":");
    levels(&mut s, &side(bid));
    s.extend_from_slice(format!(",\"ts\":\"{ts_ms}\",\"seqId\":{id}}}]}}").as_bytes());
    into_string(s)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tickwire_sdk::wire::{Body, Frame, Quote, Side, StatusCode, TradeId, instrument_id};

    use super::*;
    use crate::normalizer::{Action, Normalizer, Output};
    use crate::okx::{OkxNormalizer, OkxSpec, QuoteChannel};
    use crate::sim::dialect::BookSource;
    use crate::sim::stream::{Catalog, StreamKey};
    use crate::venue::VenueSpec;

    const MS: u64 = 1_000_000;
    const T0: u64 = 1_700_000_000_000 * MS;
    const TICK: i64 = 10_000_000; // 0.01
    const STEP: i64 = 10_000; // 0.00001
    const MID: i64 = 30_000 * 1_000_000_000;

    /// The simulated market: books by symbol with their update ids, a seeded generator.
    struct Market {
        catalog: Catalog,
        books: Vec<Option<(OrderBook, u64)>>,
        rng: u64,
        trade_ids: Vec<u64>,
        update_id: u64,
    }

    impl BookSource for Market {
        fn book(&self, symbol: SymbolId, limit: usize) -> Option<DepthSnapshot> {
            let (b, id) = self.books.get(symbol as usize)?.as_ref()?;
            Some(DepthSnapshot::of(b, *id, limit))
        }
    }

    impl Market {
        /// BTCUSDT with `levels` levels a side, ETHUSDT with 30.
        fn new(seed: u64, levels: usize) -> Market {
            let mut catalog = Catalog::new();
            catalog.add(SymbolSpec::new("BTCUSDT", TICK, STEP)).unwrap();
            catalog.add(SymbolSpec::new("ETHUSDT", TICK, STEP)).unwrap();
            let mut m = Market {
                catalog,
                books: vec![None, None],
                rng: seed,
                trade_ids: vec![1000, 5000],
                update_id: 100,
            };
            for (s, n) in [(0usize, levels), (1, 30)] {
                let mut b = OrderBook::new();
                for k in 1..=n as i64 {
                    let q = m.qty();
                    b.set(BookSide::Bid, MID - k * TICK, q);
                    let q = m.qty();
                    b.set(BookSide::Ask, MID + k * TICK, q);
                }
                m.books[s] = Some((b, 100));
            }
            m
        }

        fn next(&mut self) -> u64 {
            self.rng = self
                .rng
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.rng >> 33
        }

        fn qty(&mut self) -> i64 {
            (self.next() % 50_000 + 1) as i64 * STEP
        }

        fn ctx(&self, now_ns: u64) -> Ctx<'_> {
            Ctx {
                catalog: &self.catalog,
                books: self,
                now_ns,
            }
        }

        fn top(&self, s: SymbolId) -> (Level, Level) {
            let (b, _) = self.books[s as usize].as_ref().unwrap();
            crate::sim::market::top(b)
        }

        /// A random market event of a random symbol; the book is not changed yet.
        fn event(&mut self) -> Emitted {
            let s: SymbolId = if self.next().is_multiple_of(4) { 1 } else { 0 };
            let span = if s == 0 { 470 } else { 40 };
            let (kind, event) = match self.next() % 10 {
                0..=5 => {
                    let mut diff = crate::sim::market::DepthDiff::new();
                    self.update_id += 1;
                    let first = self.update_id;
                    for _ in 0..(self.next() % 12 + 1) {
                        // Busy near the top, some churn around the 400-level window edge.
                        let k = if self.next().is_multiple_of(3) {
                            (self.next() % span + 1) as i64
                        } else {
                            (self.next() % 8 + 1) as i64
                        };
                        let q = if self.next().is_multiple_of(3) {
                            0
                        } else {
                            self.qty()
                        };
                        let (side, price) = if self.next().is_multiple_of(2) {
                            (BookSide::Bid, MID - k * TICK)
                        } else {
                            (BookSide::Ask, MID + k * TICK)
                        };
                        self.update_id += 1;
                        diff.record(side, price, q, self.update_id);
                    }
                    let mut u = diff.take().unwrap();
                    u.first_update_id = first;
                    (StreamKind::Depth100ms, Event::Depth(u))
                }
                6..=7 => {
                    self.trade_ids[s as usize] += 1;
                    let (b, a) = self.top(s);
                    let buyer_maker = self.next().is_multiple_of(2);
                    let price = if buyer_maker { b.price } else { a.price };
                    (
                        StreamKind::Trade,
                        Event::Trade {
                            id: self.trade_ids[s as usize],
                            price: price.max(TICK),
                            qty: self.qty(),
                            buyer_maker,
                        },
                    )
                }
                _ => {
                    let (bid, ask) = self.top(s);
                    (
                        StreamKind::BookTicker,
                        Event::BookTicker {
                            update_id: self.update_id,
                            bid,
                            ask,
                        },
                    )
                }
            };
            Emitted {
                key: StreamKey { symbol: s, kind },
                at: 0,
                event,
            }
        }

        /// Applies a depth event to the market's book.
        fn commit(&mut self, e: &Emitted) {
            if let Event::Depth(u) = &e.event {
                let (b, id) = self.books[e.key.symbol as usize].as_mut().unwrap();
                apply(b, u);
                *id = u.last_update_id;
            }
        }
    }

    /// A client: the real OKX normalizer and the books rebuilt from its frames.
    struct Client {
        n: OkxNormalizer,
        books: HashMap<u32, OrderBook>,
        frames: Vec<Frame>,
        errors: Vec<String>,
        actions: Vec<Action>,
        texts: Vec<String>,
    }

    impl Client {
        fn new() -> Client {
            Client {
                n: OkxNormalizer::new(&["BTC-USDT".to_string(), "ETH-USDT".to_string()]),
                books: HashMap::new(),
                frames: Vec::new(),
                errors: Vec::new(),
                actions: Vec::new(),
                texts: Vec::new(),
            }
        }

        fn feed(&mut self, msgs: Vec<String>) {
            let mut out = Output::new();
            for m in msgs {
                out.clear();
                if let Err(e) = self.n.on_message(m.as_bytes(), 0, &mut out) {
                    self.errors.push(format!("{e}: {m}"));
                }
                for f in out.frames.drain(..) {
                    self.books.entry(f.instrument).or_default().apply_owned(&f);
                    self.frames.push(f);
                }
                self.actions.append(&mut out.actions);
                self.texts.push(m);
            }
        }

        fn book(&self, inst: &str) -> (Vec<Level>, Vec<Level>) {
            let b = self
                .books
                .get(&instrument_id(Venue::Okx, inst))
                .cloned()
                .unwrap_or_default();
            (b.bids().collect(), b.asks().collect())
        }

        fn gaps(&self) -> Vec<String> {
            self.frames
                .iter()
                .filter_map(|f| match &f.body {
                    Body::Status(s) if s.code == StatusCode::Gap => Some(s.detail.clone()),
                    _ => None,
                })
                .collect()
        }

        fn quotes(&self, inst: &str) -> Vec<Quote> {
            let id = instrument_id(Venue::Okx, inst);
            self.frames
                .iter()
                .filter(|f| f.instrument == id)
                .filter_map(|f| match &f.body {
                    Body::Quote(q) => Some(*q),
                    _ => None,
                })
                .collect()
        }

        fn assert_clean(&self) {
            assert!(self.errors.is_empty(), "{:?}", self.errors);
            assert!(self.gaps().is_empty(), "{:?}", self.gaps());
            assert!(self.actions.is_empty(), "{:?}", self.actions);
            assert_eq!(self.n.stats().gaps, 0);
            assert_eq!(self.n.stats().get("checksum:mismatch"), 0);
            assert_eq!(self.n.stats().get("checksum:zero"), 0);
        }
    }

    fn window_of(m: &Market, s: SymbolId, depth: usize) -> (Vec<Level>, Vec<Level>) {
        let (b, _) = m.books[s as usize].as_ref().unwrap();
        (
            b.bids().take(depth).collect(),
            b.asks().take(depth).collect(),
        )
    }

    fn subscribe(m: &Market, s: &mut OkxSession, c: &mut Client, text: &str, now: u64) {
        let mut out = Vec::new();
        s.on_text(text, &m.ctx(now), &mut out).unwrap();
        c.feed(out);
    }

    fn quote_of(bid: Level, ask: Level) -> Quote {
        Quote {
            bid_px: bid.price,
            bid_qty: bid.qty,
            ask_px: ask.price,
            ask_qty: ask.qty,
        }
    }

    /// Drives `steps` random events through a session subscribed as the adapter subscribes
    /// (trades, tickers, books for two instruments) and checks every client view after
    /// every event.
    fn run(seed: u64, steps: usize, source_ahead: bool) {
        let mut m = Market::new(seed, 450);
        let mut s = OkxSession::new("a4d3ae55".into());
        let mut c = Client::new();
        let spec = OkxSpec::new(vec!["BTC-USDT".into(), "ETH-USDT".into()]);
        let mut now = T0;
        for msg in spec.subscribe_messages() {
            subscribe(&m, &mut s, &mut c, &msg, now);
        }
        assert_eq!(c.n.stats().get("event:subscribe"), 6);
        assert_eq!(c.n.stats().get("book:synced"), 2);
        // Snapshots: 400 levels a side where the book is deeper.
        assert_eq!(c.book("BTC-USDT"), window_of(&m, 0, BOOKS_DEPTH));
        assert_eq!(c.book("BTC-USDT").0.len(), BOOKS_DEPTH);
        assert_eq!(c.book("ETH-USDT"), window_of(&m, 1, BOOKS_DEPTH));
        let names = ["BTC-USDT", "ETH-USDT"];
        let mut trades = [Vec::new(), Vec::new()];
        let mut tops: Vec<Option<(Level, Level)>> = vec![None, None];
        let mut pushed_levels = 0usize;
        for _ in 0..steps {
            now += 100 * MS;
            let e = m.event();
            if source_ahead {
                m.commit(&e);
            }
            let mut out = Vec::new();
            s.on_event(&e, now, &m.ctx(now), &mut out);
            if !source_ahead {
                m.commit(&e);
            }
            let before = c.frames.len();
            c.feed(out);
            let sym = e.key.symbol as usize;
            match e.event {
                Event::Trade {
                    id,
                    price,
                    qty,
                    buyer_maker,
                } => trades[sym].push((id, price, qty, buyer_maker)),
                Event::BookTicker { bid, ask, .. } => tops[sym] = Some((bid, ask)),
                Event::Depth(_) => {
                    pushed_levels += c.frames[before..]
                        .iter()
                        .filter(|f| matches!(f.body, Body::BookDelta(_)))
                        .count();
                }
                _ => {}
            }
            for (i, name) in names.iter().enumerate() {
                assert_eq!(
                    c.book(name),
                    window_of(&m, i as SymbolId, BOOKS_DEPTH),
                    "{name} after {e:?}"
                );
                if let Some((bid, ask)) = tops[i] {
                    assert_eq!(c.quotes(name).last(), Some(&quote_of(bid, ask)));
                }
            }
            c.assert_clean();
        }
        assert!(pushed_levels > steps / 2, "{pushed_levels}");
        // Every books push had its checksum verified.
        let stats = c.n.stats();
        assert_eq!(stats.get("checksum:ok"), stats.get("books"));
        assert!(stats.get("books") > steps as u64 / 3);
        // Trades exact, in order.
        for (i, name) in names.iter().enumerate() {
            let id = instrument_id(Venue::Okx, name);
            let got: Vec<_> = c
                .frames
                .iter()
                .filter(|f| f.instrument == id)
                .filter_map(|f| match &f.body {
                    Body::Trade(t) => Some((
                        match t.trade_id {
                            TradeId::Num(n) => n,
                            _ => panic!("text trade id"),
                        },
                        t.price,
                        t.qty,
                        t.side == Side::Sell,
                    )),
                    _ => None,
                })
                .collect();
            assert_eq!(got, trades[i], "{name}");
            assert!(!got.is_empty());
        }
    }

    #[test]
    fn the_adapter_rebuilds_every_book_trade_and_quote() {
        run(7, 3000, false);
        run(42, 1500, true);
    }

    #[test]
    fn acks_errors_ping_and_unsubscribe() {
        let mut m = Market::new(1, 50);
        let mut s = OkxSession::new("a4d3ae55".into());
        let mut out = Vec::new();
        let ctx = m.ctx(T0);
        s.on_text("ping", &ctx, &mut out).unwrap();
        assert_eq!(out, vec!["pong".to_string()]);
        out.clear();
        s.on_text(
            r#"{"id":"1512","op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT"},{"channel":"books","instId":"DOGE-USDT"},{"channel":"candle1m","instId":"BTC-USDT"},{"channel":"books-l2-tbt","instId":"BTC-USDT"},{"channel":"tickers"}]}"#,
            &ctx,
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 5, "{out:?}");
        assert_eq!(
            out[0],
            r#"{"id":"1512","event":"subscribe","arg":{"channel":"trades","instId":"BTC-USDT"},"connId":"a4d3ae55"}"#
        );
        assert_eq!(
            out[1],
            r#"{"id":"1512","event":"error","code":"60018","msg":"Wrong URL or channel:books,instId:DOGE-USDT doesn't exist. Please use the correct URL, channel and parameters referring to API document.","connId":"a4d3ae55"}"#
        );
        let code = |s: &str| serde_json::from_str::<Value>(s).unwrap()["code"].clone();
        assert_eq!(code(&out[2]), "60018");
        assert_eq!(code(&out[3]), "60011");
        assert_eq!(code(&out[4]), "60013");
        // The adapter reads the ack and reports the errors.
        let mut c = Client::new();
        c.feed(out.clone());
        assert_eq!(c.n.stats().get("event:subscribe"), 1);
        assert_eq!(c.n.stats().get("event:error"), 4);
        out.clear();
        for bad in [
            "hello",
            r#"{"op":"subscribe"}"#,
            r#"{"op":"subscribe","args":[]}"#,
            r#"{"op":"fly","args":[{"channel":"trades","instId":"BTC-USDT"}]}"#,
        ] {
            s.on_text(bad, &ctx, &mut out).unwrap();
        }
        let codes: Vec<_> = out.iter().map(|o| code(o)).collect();
        assert_eq!(codes, ["60012", "60012", "60012", "60019"]);
        assert!(out[0].contains(r#""msg":"Invalid request: hello""#));
        out.clear();
        // Subscribed trades flow; after the unsubscribe ack nothing more comes.
        let now = T0 + 100 * MS;
        let trade = Emitted {
            key: StreamKey {
                symbol: 0,
                kind: StreamKind::Trade,
            },
            at: 0,
            event: Event::Trade {
                id: 77,
                price: MID,
                qty: STEP * 3,
                buyer_maker: true,
            },
        };
        s.on_event(&trade, now, &m.ctx(now), &mut out);
        assert_eq!(
            out,
            vec![format!(
                r#"{{"arg":{{"channel":"trades","instId":"BTC-USDT"}},"data":[{{"instId":"BTC-USDT","tradeId":"77","px":"30000","sz":"0.00003","side":"sell","ts":"{}","count":"1","source":"0","seqId":77}}]}}"#,
                now / MS
            )]
        );
        out.clear();
        s.on_text(
            r#"{"op":"unsubscribe","args":[{"channel":"trades","instId":"BTC-USDT"}]}"#,
            &m.ctx(now),
            &mut out,
        )
        .unwrap();
        assert_eq!(
            out,
            vec![
                r#"{"event":"unsubscribe","arg":{"channel":"trades","instId":"BTC-USDT"},"connId":"a4d3ae55"}"#
            ]
        );
        out.clear();
        for _ in 0..200 {
            let e = m.event();
            s.on_event(&e, now, &m.ctx(now), &mut out);
            m.commit(&e);
        }
        s.on_tick(&m.ctx(now + 120_000 * MS), &mut out);
        assert!(out.is_empty(), "{out:?}");
        // Subscribing again re-sends the latest trade, which the adapter drops as seen.
        let mut c = Client::new();
        s.on_text(
            r#"{"op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT"}]}"#,
            &m.ctx(now),
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 2);
        c.feed(out.clone());
        c.feed(out[1..].to_vec());
        assert_eq!(c.n.stats().get("trades:duplicate"), 1);
        c.assert_clean();
    }

    #[test]
    fn a_book_unknown_at_subscribe_is_sent_at_the_first_depth_event() {
        let mut m = Market::new(3, 20);
        let held = m.books[0].take();
        let mut s = OkxSession::new("a".into());
        let mut c = Client::new();
        subscribe(
            &m,
            &mut s,
            &mut c,
            r#"{"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"}]}"#,
            T0,
        );
        assert_eq!(c.texts.len(), 1, "only the ack: {:?}", c.texts);
        m.books[0] = held;
        let mut now = T0;
        let mut depth_events = 0;
        while depth_events < 50 {
            now += 100 * MS;
            let e = m.event();
            depth_events += usize::from(matches!(e.event, Event::Depth(_)) && e.key.symbol == 0);
            let mut out = Vec::new();
            s.on_event(&e, now, &m.ctx(now), &mut out);
            m.commit(&e);
            c.feed(out);
            if depth_events > 0 {
                assert_eq!(c.book("BTC-USDT"), window_of(&m, 0, BOOKS_DEPTH));
            }
        }
        assert_eq!(c.n.stats().get("book:synced"), 1);
        c.assert_clean();
    }

    #[test]
    fn bbo_tbt_books5_and_the_tickers_pace() {
        let mut m = Market::new(5, 40);
        let mut s = OkxSession::new("a".into());
        let mut c = Client::new();
        let spec = OkxSpec::new(vec!["BTC-USDT".into()]).with_quotes(QuoteChannel::BboTbt);
        let mut msgs = spec.subscribe_messages();
        msgs[0] = msgs[0].replace("\"books\"", "\"books5\"");
        subscribe(&m, &mut s, &mut c, &msgs[0], T0);
        subscribe(
            &m,
            &mut s,
            &mut c,
            r#"{"op":"subscribe","args":[{"channel":"tickers","instId":"BTC-USDT"}]}"#,
            T0,
        );
        let mut now = T0;
        let mut last_top = None;
        for i in 0..2000 {
            // 20 ms apart: bbo-tbt (10 ms) pushes every change, tickers (100 ms) fall behind.
            now += 20 * MS;
            let e = m.event();
            let mut out = Vec::new();
            s.on_event(&e, now, &m.ctx(now), &mut out);
            m.commit(&e);
            let books5 = out.iter().filter(|o| o.contains("\"books5\"")).count();
            c.feed(out);
            if let Event::BookTicker { bid, ask, .. } = e.event {
                last_top = Some(quote_of(bid, ask));
            }
            // books5: whole 5-level snapshots, pushed only when the top 5 change.
            let top5 = window_of(&m, 0, BOOKS5_DEPTH);
            assert_eq!(c.book("BTC-USDT"), top5, "step {i}");
            if !matches!(e.event, Event::Depth(_)) {
                assert_eq!(books5, 0);
            }
        }
        c.assert_clean();
        let stats = c.n.stats();
        assert!(stats.get("bbo-tbt") > 100);
        assert!(stats.get("books5") > 100);
        // Tickers at most every 100 ms: fewer than the changes.
        let tickers: Vec<u64> = c
            .texts
            .iter()
            .filter(|t| t.contains("\"tickers\"") && t.contains("\"data\""))
            .map(|t| serde_json::from_str::<Value>(t).unwrap())
            .map(|v| v["data"][0]["ts"].as_str().unwrap().parse().unwrap())
            .collect();
        assert!(
            tickers.len() > 50 && tickers.len() < 2000 / 5 + 2,
            "{}",
            tickers.len()
        );
        // After the pending change is flushed, the last quote is the last book ticker.
        let mut out = Vec::new();
        s.on_tick(&m.ctx(now + 1_000 * MS), &mut out);
        c.feed(out);
        assert_eq!(c.quotes("BTC-USDT").last().copied(), last_top);
        c.assert_clean();
    }

    #[test]
    fn an_idle_book_gets_the_documented_keepalive() {
        let m = Market::new(9, 30);
        let mut s = OkxSession::new("a".into());
        let mut c = Client::new();
        subscribe(
            &m,
            &mut s,
            &mut c,
            r#"{"op":"subscribe","args":[{"channel":"books","instId":"ETH-USDT"}]}"#,
            T0,
        );
        let mut out = Vec::new();
        s.on_tick(&m.ctx(T0 + 59_000 * MS), &mut out);
        assert!(out.is_empty());
        s.on_tick(&m.ctx(T0 + 60_000 * MS), &mut out);
        assert_eq!(out.len(), 1);
        let v: Value = serde_json::from_str(&out[0]).unwrap();
        let d = &v["data"][0];
        assert_eq!(v["action"], "update");
        assert_eq!(d["asks"], serde_json::json!([]));
        assert_eq!(d["prevSeqId"], d["seqId"]);
        c.feed(out);
        assert_eq!(c.book("ETH-USDT"), window_of(&m, 1, BOOKS_DEPTH));
        c.assert_clean();
    }

    #[test]
    fn documented_checksum_examples() {
        let l = |p: &str, q: &str| {
            (
                tickwire_sdk::wire::parse_decimal(p.as_bytes())
                    .unwrap()
                    .value,
                tickwire_sdk::wire::parse_decimal(q.as_bytes())
                    .unwrap()
                    .value,
            )
        };
        let book = |bids: &[(i64, i64)], asks: &[(i64, i64)]| {
            let mut b = OrderBook::new();
            for &(p, q) in bids {
                b.set(BookSide::Bid, p, q);
            }
            for &(p, q) in asks {
                b.set(BookSide::Ask, p, q);
            }
            b
        };
        let b = book(
            &[l("3366.1", "7"), l("3366", "6")],
            &[l("3366.8", "9"), l("3368", "8")],
        );
        assert_eq!(checksum(&b), -1_881_014_294);
        let b = book(
            &[l("3366.1", "7")],
            &[l("3366.8", "9"), l("3368", "8"), l("3372", "8")],
        );
        assert_eq!(checksum(&b), 831_078_360);
    }

    #[test]
    fn the_dialect_serves_the_public_path() {
        let d = OkxDialect::new();
        assert_eq!(d.venue(), Venue::Okx);
        assert_eq!(d.paths(), &["/ws/v5/public"]);
        let m = Market::new(1, 5);
        let mut a = d.session(PATH);
        let mut b = d.session(PATH);
        let sub = r#"{"op":"subscribe","args":[{"channel":"tickers","instId":"BTC-USDT"}]}"#;
        let (mut oa, mut ob) = (Vec::new(), Vec::new());
        a.on_text(sub, &m.ctx(T0), &mut oa).unwrap();
        b.on_text(sub, &m.ctx(T0), &mut ob).unwrap();
        let conn = |s: &str| serde_json::from_str::<Value>(s).unwrap()["connId"].clone();
        assert_ne!(conn(&oa[0]), conn(&ob[0]));
        assert_eq!(conn(&oa[0]).as_str().unwrap().len(), 8);
        // The initial ticker: the book's top, no trade yet.
        let v: Value = serde_json::from_str(&oa[1]).unwrap();
        assert_eq!(v["data"][0]["bidPx"], "29999.99");
        assert_eq!(v["data"][0]["askPx"], "30000.01");
        assert_eq!(v["data"][0]["last"], "");
    }
}
