//! Coinbase Advanced Trade market data messages -> frames.
//!
//! Every message is an envelope `{"channel":..,"client_id":..,"timestamp":..,
//! "sequence_num":..,"events":[..]}` (docs.cdp.coinbase.com/coinbase-app/advanced-trade-apis/
//! websocket/websocket-channels). Channels understood:
//!
//! - `l2_data` (subscribed as `level2`): events `snapshot` (the whole book) and `update`,
//!   each with `updates: [{side: bid|offer, event_time, price_level, new_quantity}]`
//!   (`new_quantity` is the new size, "0" removes) -> BookSnapshot / BookDelta frames.
//! - `market_trades`: `update` events -> Trade. The `snapshot` event (recent trades from
//!   before we subscribed) is not emitted. The docs promise nothing about trade ids being
//!   contiguous, so no trade-id gap check is made here (the sequence check covers loss).
//!   `side` is read as the maker's side (aggressor = the other), as on the Exchange feed.
//! - `ticker` / `ticker_batch`: tickers with `best_bid`/`best_ask` (and their quantities)
//!   -> Quote. Tickers without a best bid/ask (`ticker_batch` in production) are counted
//!   and skipped.
//! - `heartbeats`, `subscriptions`: counted. `{"type":"error",..}`: a venue error.
//!   Other channels (`candles`, `status`, `user`...): `ignored:<channel>`.
//!
//! Integrity: `sequence_num` grows by one per message on a connection, across all channels.
//! A hole means any message may be lost: every instrument gets a Gap status (books flagged
//! `BAD_BOOK`), and every live book is resynced by unsubscribing and subscribing `level2`
//! for those products (a fresh snapshot follows). A number at or below the last one is a
//! late or repeated message and is ignored (the docs: "can be ignored"). A book that crosses
//! after an update is a break too, resynced the same way for that product.

use simd_json::prelude::*;
use simd_json::tape::Value;
use tickwire_sdk::wire::{
    Body, BookSide, Frame, Level, Parsed, Quote, Side, StatusCode, Trade, TradeId, Venue,
};

use crate::coinbase::common::{BookState, ProductBook, json_product};
use crate::coinbase::common::{fast_time, parse_time_ns};
use crate::coinbase::normalizer::{opt_decimal, opt_time};
use crate::json::{Precision, decimal, fields, req_array, req_decimal, req_str};
use crate::layout::Cursor;
use crate::normalizer::{Action, NormalizeError, Normalizer, Output, Paths, Stats, TwoPaths};
use crate::symbols::{SymbolIndex, SymbolTable};

/// The Coinbase Advanced Trade normalizer with its books. One per upstream connection.
pub struct CoinbaseAdvancedNormalizer {
    symbols: SymbolTable,
    books: Vec<Option<ProductBook>>,
    /// Fast path and tape parser.
    paths: Paths,
    stats: Stats,
    /// Last `sequence_num` seen on this connection.
    last_seq: Option<u64>,
    /// Scratch for one event's updates / snapshot levels.
    changes: Vec<(BookSide, Level, u64)>,
    bids: Vec<Level>,
    asks: Vec<Level>,
    /// Scratch for the fast path's trades (text as offsets into the message).
    fast_trades: Vec<FastTrade>,
}

/// A market trade's fields, however they were read (`&str`s into the message).
struct TradeFields<'a> {
    trade_id: &'a str,
    product: &'a str,
    price: Parsed,
    qty: Parsed,
    /// The aggressor (the other side from the maker's `side`).
    side: Side,
    ts_exchange: u64,
}

/// A trade read by the fast path, its text kept as byte ranges of the message (so a run of
/// them can be read in full before any is emitted).
struct FastTrade {
    trade_id: (usize, usize),
    product: (usize, usize),
    price: Parsed,
    qty: Parsed,
    side: Side,
    ts_exchange: u64,
}

/// A ticker's fields, however they were read.
struct TickerFields<'a> {
    product: &'a str,
    bid: Parsed,
    bid_qty: Option<Parsed>,
    ask: Parsed,
    ask_qty: Option<Parsed>,
}

/// The envelope of a data message, read by the fast path.
struct Envelope {
    ts_msg: u64,
    seq: u64,
}

impl CoinbaseAdvancedNormalizer {
    /// A normalizer; `symbols` (`BTC-USD`) are announced up front for connection statuses.
    pub fn new(symbols: &[String]) -> CoinbaseAdvancedNormalizer {
        let mut n = CoinbaseAdvancedNormalizer {
            symbols: SymbolTable::new(Venue::CoinbaseAdvanced),
            books: Vec::new(),
            paths: Paths::default(),
            stats: Stats::default(),
            last_seq: None,
            changes: Vec::new(),
            bids: Vec::new(),
            asks: Vec::new(),
            fast_trades: Vec::new(),
        };
        for s in symbols {
            n.intern(&s.to_ascii_uppercase());
        }
        n
    }

    /// Turns the exact-layout fast path on or off (on by default). Off, every message goes
    /// through the simd-json tape: the tests compare the two paths frame for frame.
    pub fn set_fast_path(&mut self, on: bool) {
        self.paths.set_fast(on);
    }

    /// Messages handled by the exact-layout fast path so far.
    pub fn fast_hits(&self) -> u64 {
        self.paths.fast_hits()
    }

    /// The book of `product` if it is live.
    pub fn book(&self, product: &str) -> Option<&crate::book::OrderBook> {
        let i = self.symbols.find(product)?;
        self.books[i]
            .as_ref()
            .filter(|b| b.state == BookState::Live)
            .map(|b| &b.book)
    }

    fn intern(&mut self, symbol: &str) -> SymbolIndex {
        let i = self.symbols.intern(symbol);
        if i == self.books.len() {
            self.books.push(None);
        }
        i
    }

    fn dispatch(
        &mut self,
        root: Value<'_, '_>,
        ts_recv: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        let [channel, seq, timestamp, events, kind, message] = fields(
            &root,
            [
                "channel",
                "sequence_num",
                "timestamp",
                "events",
                "type",
                "message",
            ],
        );
        let Some(channel) = channel.and_then(|c| c.into_string()) else {
            if kind.and_then(|k| k.into_string()) == Some("error") {
                self.stats.count("error");
                let m = message.and_then(|m| m.into_string()).unwrap_or("");
                return Err(NormalizeError::Venue(m.to_string()));
            }
            self.stats.count("ignored:unknown");
            return Ok(());
        };
        const KNOWN: [&str; 6] = [
            "l2_data",
            "market_trades",
            "ticker",
            "ticker_batch",
            "heartbeats",
            "subscriptions",
        ];
        let Some(key) = KNOWN.iter().find(|k| **k == channel) else {
            self.stats.count(&format!("ignored:{channel}"));
            return Ok(());
        };
        self.stats.count(key);
        let ts_msg = opt_time(timestamp, key, "timestamp")?;
        if let Some(seq) = seq {
            let seq = seq.as_u64().ok_or(NormalizeError::Field {
                message: key,
                field: "sequence_num",
                expected: "an unsigned integer",
            })?;
            if !self.sequence(seq, ts_recv, out) {
                return Ok(());
            }
        }
        if matches!(*key, "heartbeats" | "subscriptions") {
            return Ok(());
        }
        let events = req_array(events, key, "events")?;
        for ev in events.iter() {
            match *key {
                "l2_data" => self.on_l2_event(&ev, ts_msg, ts_recv, out)?,
                "market_trades" => self.on_trades_event(&ev, ts_recv, out)?,
                _ => self.on_ticker_event(&ev, key, ts_msg, ts_recv, out)?,
            }
        }
        Ok(())
    }

    /// Checks `sequence_num`: false if the message is old (counted, to be ignored); a hole
    /// is reported (and every book resynced) before the message is handled.
    fn sequence(&mut self, seq: u64, ts_recv: u64, out: &mut Output) -> bool {
        match self.last_seq {
            Some(last) if seq <= last => {
                self.stats.count("ignored:old_sequence");
                return false;
            }
            Some(last) if seq > last + 1 => {
                self.last_seq = Some(seq);
                self.sequence_gap(last, seq, ts_recv, out);
            }
            _ => self.last_seq = Some(seq),
        }
        true
    }

    fn sequence_gap(&mut self, last: u64, seq: u64, ts: u64, out: &mut Output) {
        self.stats.gaps += 1;
        let detail = format!(
            "sequence_num {}..={} missing on the connection (last {last}, now {seq}): any channel may have lost messages",
            last + 1,
            seq - 1
        );
        let mut resync = Vec::new();
        for i in 0..self.symbols.len() {
            let has_book = match self.books[i].as_mut() {
                Some(b) => {
                    if b.state == BookState::Live {
                        resync.push(json_product(&self.symbols.get(i).symbol));
                    }
                    b.break_book();
                    true
                }
                None => false,
            };
            self.symbols
                .status(i, StatusCode::Gap, detail.clone(), has_book, ts, out);
        }
        if !resync.is_empty() {
            resubscribe_level2(&resync, out);
        }
    }

    fn on_l2_event(
        &mut self,
        ev: &Value<'_, '_>,
        ts_msg: u64,
        ts_recv: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        const M: &str = "l2_data";
        let [t, p, u] = fields(ev, ["type", "product_id", "updates"]);
        let product = req_str(p, M, "product_id")?;
        let i = self.intern(product);
        let snapshot = match req_str(t, M, "type")? {
            "snapshot" => true,
            "update" => false,
            _ => {
                return Err(NormalizeError::Field {
                    message: M,
                    field: "type",
                    expected: "\"snapshot\" or \"update\"",
                });
            }
        };
        let precision = match self.parse_updates(u) {
            Ok(p) => p,
            Err(e) => {
                if let Some(b) = self.books[i].as_mut()
                    && b.break_book()
                {
                    self.book_gap(i, format!("unreadable l2_data event: {e}"), ts_recv, out);
                }
                return Err(e);
            }
        };
        if snapshot {
            self.bids.clear();
            self.asks.clear();
            for (side, l, _) in &self.changes {
                match side {
                    BookSide::Bid => self.bids.push(*l),
                    BookSide::Ask => self.asks.push(*l),
                }
            }
            let inst = self
                .symbols
                .announce(i, precision.price, precision.qty, ts_recv, out);
            let book = self.books[i].get_or_insert_with(ProductBook::new);
            book.load_snapshot(
                Venue::CoinbaseAdvanced,
                inst,
                &self.bids,
                &self.asks,
                ts_msg,
                ts_recv,
                out,
            );
            self.stats.count("book:synced");
            if std::mem::take(&mut book.flagged) {
                self.symbols.status(
                    i,
                    StatusCode::Resynced,
                    "book rebuilt from a fresh level2 snapshot".into(),
                    false,
                    ts_recv,
                    out,
                );
            }
            if book.book.is_crossed() {
                book.break_book();
                self.book_gap(i, "the level2 snapshot is crossed".into(), ts_recv, out);
            }
            return Ok(());
        }
        self.apply_l2_update(i, precision, ts_recv, out);
        Ok(())
    }

    /// The update in `self.changes` (product `i`) -> the book -> frames.
    fn apply_l2_update(
        &mut self,
        i: SymbolIndex,
        precision: Precision,
        ts_recv: u64,
        out: &mut Output,
    ) {
        let state = self.books[i].as_ref().map(|b| b.state);
        match state {
            None | Some(BookState::Waiting) => self.stats.count("l2_data:before_snapshot"),
            Some(BookState::Resyncing) => self.stats.count("l2_data:dropped_resyncing"),
            Some(BookState::Live) => {
                let inst = self
                    .symbols
                    .announce(i, precision.price, precision.qty, ts_recv, out);
                let book = self.books[i].as_mut().expect("checked above");
                if let Some((bid, ask)) =
                    book.apply_changes(Venue::CoinbaseAdvanced, inst, &self.changes, ts_recv, out)
                {
                    let d = precision.price.max(1);
                    let detail = format!(
                        "book crossed after an update (best bid {} >= best ask {}): resubscribing level2",
                        tickwire_sdk::wire::decimal_string(bid, d),
                        tickwire_sdk::wire::decimal_string(ask, d)
                    );
                    self.book_gap(i, detail, ts_recv, out);
                }
            }
        }
    }

    fn parse_updates(&mut self, u: Option<Value<'_, '_>>) -> Result<Precision, NormalizeError> {
        const M: &str = "l2_data";
        let arr = req_array(u, M, "updates")?;
        self.changes.clear();
        let mut precision = Precision::default();
        for up in arr.iter() {
            let [side, t, p, q] =
                fields(&up, ["side", "event_time", "price_level", "new_quantity"]);
            let side = match req_str(side, M, "side")? {
                "bid" => BookSide::Bid,
                "offer" | "ask" => BookSide::Ask,
                _ => {
                    return Err(NormalizeError::Field {
                        message: M,
                        field: "side",
                        expected: "\"bid\" or \"offer\"",
                    });
                }
            };
            let ts = opt_time(t, M, "event_time")?;
            let p = decimal(req_str(p, M, "price_level")?, M, "price_level")?;
            let q = decimal(req_str(q, M, "new_quantity")?, M, "new_quantity")?;
            if p.value <= 0 || q.value < 0 {
                return Err(NormalizeError::Field {
                    message: M,
                    field: "updates",
                    expected: "levels with a positive price and a non-negative quantity",
                });
            }
            precision.see(&p, &q);
            self.changes.push((
                side,
                Level {
                    price: p.value,
                    qty: q.value,
                },
                ts,
            ));
        }
        Ok(precision)
    }

    fn on_trades_event(
        &mut self,
        ev: &Value<'_, '_>,
        ts_recv: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        const M: &str = "market_trades";
        let [t, trades] = fields(ev, ["type", "trades"]);
        let trades = req_array(trades, M, "trades")?;
        match req_str(t, M, "type")? {
            "update" => {}
            "snapshot" => {
                // Recent trades from before the subscription: history, not live ticks.
                self.stats.count("market_trades:snapshot_skipped");
                return Ok(());
            }
            _ => {
                return Err(NormalizeError::Field {
                    message: M,
                    field: "type",
                    expected: "\"snapshot\" or \"update\"",
                });
            }
        }
        for tr in trades.iter() {
            let [id, p, price, size, side, time] = fields(
                &tr,
                ["trade_id", "product_id", "price", "size", "side", "time"],
            );
            let id = req_str(id, M, "trade_id")?;
            let product = req_str(p, M, "product_id")?;
            let price = req_decimal(price, M, "price")?;
            let qty = req_decimal(size, M, "size")?;
            // The maker's side: a SELL maker was taken by a buyer.
            let side = match req_str(side, M, "side")? {
                "SELL" => Side::Buy,
                "BUY" => Side::Sell,
                _ => Side::Unknown,
            };
            let ts_exchange = opt_time(time, M, "time")?;
            if price.value <= 0 || qty.value <= 0 {
                return Err(NormalizeError::Field {
                    message: M,
                    field: "size",
                    expected: "a positive price and size",
                });
            }
            let f = TradeFields {
                trade_id: id,
                product,
                price,
                qty,
                side,
                ts_exchange,
            };
            self.emit_trade(f, ts_recv, out);
        }
        Ok(())
    }

    /// A read market trade -> a Trade frame.
    fn emit_trade(&mut self, f: TradeFields<'_>, ts_recv: u64, out: &mut Output) {
        let TradeFields {
            trade_id,
            product,
            price,
            qty,
            side,
            ts_exchange,
        } = f;
        let trade_id = match trade_id.parse::<u64>() {
            Ok(n) => TradeId::Num(n),
            Err(_) => TradeId::Text(trade_id.to_string()),
        };
        let i = self.intern(product);
        let inst = self
            .symbols
            .announce(i, price.decimals, qty.decimals, ts_recv, out);
        out.frames.push(Frame::new(
            Venue::CoinbaseAdvanced,
            inst,
            ts_exchange,
            ts_recv,
            Body::Trade(Trade {
                price: price.value,
                qty: qty.value,
                side,
                trade_id,
            }),
        ));
    }

    fn on_ticker_event(
        &mut self,
        ev: &Value<'_, '_>,
        key: &'static str,
        ts_msg: u64,
        ts_recv: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        let tickers = req_array(ev.get("tickers"), key, "tickers")?;
        for tk in tickers.iter() {
            let [p, b, bq, a, aq] = fields(
                &tk,
                [
                    "product_id",
                    "best_bid",
                    "best_bid_quantity",
                    "best_ask",
                    "best_ask_quantity",
                ],
            );
            let product = req_str(p, key, "product_id")?;
            let (Some(bid), Some(ask)) = (
                opt_decimal(b, key, "best_bid")?,
                opt_decimal(a, key, "best_ask")?,
            ) else {
                self.stats.count(if key == "ticker" {
                    "ticker:no_best_bid_ask"
                } else {
                    "ticker_batch:no_best_bid_ask"
                });
                continue;
            };
            let bid_qty = opt_decimal(bq, key, "best_bid_quantity")?;
            let ask_qty = opt_decimal(aq, key, "best_ask_quantity")?;
            let f = TickerFields {
                product,
                bid,
                bid_qty,
                ask,
                ask_qty,
            };
            self.emit_ticker(f, ts_msg, ts_recv, out);
        }
        Ok(())
    }

    /// A read ticker (with its best bid and ask) -> a Quote frame.
    fn emit_ticker(&mut self, f: TickerFields<'_>, ts_msg: u64, ts_recv: u64, out: &mut Output) {
        let TickerFields {
            product,
            bid,
            bid_qty,
            ask,
            ask_qty,
        } = f;
        let i = self.intern(product);
        let qd = bid_qty
            .map_or(0, |q| q.decimals)
            .max(ask_qty.map_or(0, |q| q.decimals));
        let inst = self
            .symbols
            .announce(i, bid.decimals.max(ask.decimals), qd, ts_recv, out);
        out.frames.push(Frame::new(
            Venue::CoinbaseAdvanced,
            inst,
            ts_msg,
            ts_recv,
            Body::Quote(Quote {
                bid_px: bid.value,
                bid_qty: bid_qty.map_or(0, |q| q.value),
                ask_px: ask.value,
                ask_qty: ask_qty.map_or(0, |q| q.value),
            }),
        ));
    }

    /// The exact-layout fast path for the data messages as the venue sends them (compact,
    /// keys in the documented order, one event): `l2_data` updates, `market_trades` updates
    /// and `ticker` / `ticker_batch` with a best bid and ask. Returns false, having changed
    /// nothing but scratch, when the message is not exactly one of those: the tape path then
    /// handles it (and says what is wrong, if anything is).
    fn fast(&mut self, raw: &[u8], ts_recv: u64, out: &mut Output) -> bool {
        let mut c = Cursor::new(raw);
        if c.opt_lit(b"{\"channel\":\"l2_data\",\"client_id\":") {
            let Some(env) = fast_envelope(&mut c) else {
                return false;
            };
            let Some((product, precision)) = fast_l2_update(&mut c, &mut self.changes) else {
                return false;
            };
            self.stats.count("l2_data");
            if self.sequence(env.seq, ts_recv, out) {
                let i = self.intern(product);
                self.apply_l2_update(i, precision, ts_recv, out);
            }
        } else if c.opt_lit(b"{\"channel\":\"market_trades\",\"client_id\":") {
            let Some(env) = fast_envelope(&mut c) else {
                return false;
            };
            let mut trades = std::mem::take(&mut self.fast_trades);
            let read = fast_trades(&mut c, raw, &mut trades).is_some();
            if read {
                self.stats.count("market_trades");
                if self.sequence(env.seq, ts_recv, out) {
                    let text = |(from, to): (usize, usize)| {
                        // Always UTF-8: the range was read as a `str` from `raw`.
                        std::str::from_utf8(&raw[from..to]).unwrap_or("")
                    };
                    for t in &trades {
                        let f = TradeFields {
                            trade_id: text(t.trade_id),
                            product: text(t.product),
                            price: t.price,
                            qty: t.qty,
                            side: t.side,
                            ts_exchange: t.ts_exchange,
                        };
                        self.emit_trade(f, ts_recv, out);
                    }
                }
            }
            self.fast_trades = trades;
            return read;
        } else if c.opt_lit(b"{\"channel\":\"ticker\",\"client_id\":") {
            let Some(f) = fast_envelope(&mut c).and_then(|env| Some((env, fast_ticker(&mut c)?)))
            else {
                return false;
            };
            self.stats.count("ticker");
            self.fast_ticker_emit(f, ts_recv, out);
        } else if c.opt_lit(b"{\"channel\":\"ticker_batch\",\"client_id\":") {
            let Some(f) = fast_envelope(&mut c).and_then(|env| Some((env, fast_ticker(&mut c)?)))
            else {
                return false;
            };
            self.stats.count("ticker_batch");
            self.fast_ticker_emit(f, ts_recv, out);
        } else {
            return false;
        }
        true
    }

    fn fast_ticker_emit(
        &mut self,
        (env, f): (Envelope, TickerFields<'_>),
        ts_recv: u64,
        out: &mut Output,
    ) {
        if self.sequence(env.seq, ts_recv, out) {
            self.emit_ticker(f, env.ts_msg, ts_recv, out);
        }
    }

    /// Gap status (book flagged) for one product and its level2 resubscription.
    fn book_gap(&mut self, i: SymbolIndex, detail: String, ts: u64, out: &mut Output) {
        self.stats.gaps += 1;
        self.symbols
            .status(i, StatusCode::Gap, detail, true, ts, out);
        resubscribe_level2(&[json_product(&self.symbols.get(i).symbol)], out);
    }
}

/// After `"client_id":`: `"..","timestamp":"..","sequence_num":N,"events":[`.
fn fast_envelope(c: &mut Cursor<'_>) -> Option<Envelope> {
    c.str()?;
    c.lit(b",\"timestamp\":")?;
    let ts_msg = fast_time_or_str(c)?;
    c.lit(b",\"sequence_num\":")?;
    let seq = c.u64()?;
    c.lit(b",\"events\":[")?;
    Some(Envelope { ts_msg, seq })
}

/// An RFC 3339 time string: the common UTC form read in place, any other through
/// [`parse_time_ns`].
#[inline]
fn fast_time_or_str(c: &mut Cursor<'_>) -> Option<u64> {
    if let Some(t) = fast_time(c) {
        return Some(t);
    }
    parse_time_ns(c.str()?)
}

/// The end of a one-event message: `]}` and nothing after.
fn fast_close(c: &mut Cursor<'_>) -> Option<()> {
    c.lit(b"]}")?;
    c.end()
}

/// `{"type":"update","product_id":"..","updates":[{"side":..,"event_time":..,
/// "price_level":..,"new_quantity":..},..]}` then the end; the updates into `changes`
/// (cleared first).
fn fast_l2_update<'a>(
    c: &mut Cursor<'a>,
    changes: &mut Vec<(BookSide, Level, u64)>,
) -> Option<(&'a str, Precision)> {
    c.lit(b"{\"type\":\"update\",\"product_id\":")?;
    let product = c.str()?;
    c.lit(b",\"updates\":[")?;
    changes.clear();
    let mut precision = Precision::default();
    if !c.opt_lit(b"]") {
        loop {
            let side = if c.opt_lit(b"{\"side\":\"bid\",\"event_time\":") {
                BookSide::Bid
            } else if c.opt_lit(b"{\"side\":\"offer\",\"event_time\":") {
                BookSide::Ask
            } else {
                return None;
            };
            let ts = fast_time_or_str(c)?;
            c.lit(b",\"price_level\":")?;
            let p = c.dec()?;
            c.lit(b",\"new_quantity\":")?;
            let q = c.dec()?;
            c.lit(b"}")?;
            if p.value <= 0 || q.value < 0 {
                return None; // the tape path says what is wrong
            }
            precision.see(&p, &q);
            changes.push((
                side,
                Level {
                    price: p.value,
                    qty: q.value,
                },
                ts,
            ));
            if c.opt_lit(b"]") {
                break;
            }
            c.lit(b",")?;
        }
    }
    c.lit(b"}")?;
    fast_close(c)?;
    Some((product, precision))
}

/// The byte range of a `str` read from `raw`.
fn range_of(raw: &[u8], s: &str) -> (usize, usize) {
    let from = s.as_ptr() as usize - raw.as_ptr() as usize;
    (from, from + s.len())
}

/// `{"type":"update","trades":[{"trade_id":..,"product_id":..,"price":..,"size":..,
/// "side":..,"time":..},..]}` then the end; the trades into `trades` (cleared first).
fn fast_trades(c: &mut Cursor<'_>, raw: &[u8], trades: &mut Vec<FastTrade>) -> Option<()> {
    c.lit(b"{\"type\":\"update\",\"trades\":[")?;
    trades.clear();
    if !c.opt_lit(b"]") {
        loop {
            c.lit(b"{\"trade_id\":")?;
            let trade_id = range_of(raw, c.str()?);
            c.lit(b",\"product_id\":")?;
            let product = range_of(raw, c.str()?);
            c.lit(b",\"price\":")?;
            let price = c.dec()?;
            c.lit(b",\"size\":")?;
            let qty = c.dec()?;
            c.lit(b",\"side\":")?;
            // The maker's side: a SELL maker was taken by a buyer.
            let side = match c.str()? {
                "SELL" => Side::Buy,
                "BUY" => Side::Sell,
                _ => Side::Unknown,
            };
            c.lit(b",\"time\":")?;
            let ts_exchange = fast_time_or_str(c)?;
            c.lit(b"}")?;
            if price.value <= 0 || qty.value <= 0 {
                return None; // the tape path says what is wrong
            }
            trades.push(FastTrade {
                trade_id,
                product,
                price,
                qty,
                side,
                ts_exchange,
            });
            if c.opt_lit(b"]") {
                break;
            }
            c.lit(b",")?;
        }
    }
    c.lit(b"}")?;
    fast_close(c)
}

/// `{"type":..,"tickers":[{"type":"ticker","product_id":..,"price":..,"volume_24_h":..,
/// "low_24_h":..,"high_24_h":..,"low_52_w":..,"high_52_w":..,"price_percent_chg_24_h":..,
/// "best_bid":..,"best_bid_quantity":..,"best_ask":..,"best_ask_quantity":..}]}` then the end.
fn fast_ticker<'a>(c: &mut Cursor<'a>) -> Option<TickerFields<'a>> {
    c.lit(b"{\"type\":")?;
    c.str()?;
    c.lit(b",\"tickers\":[{\"type\":\"ticker\",\"product_id\":")?;
    let product = c.str()?;
    for key in [
        &b",\"price\":"[..],
        b",\"volume_24_h\":",
        b",\"low_24_h\":",
        b",\"high_24_h\":",
        b",\"low_52_w\":",
        b",\"high_52_w\":",
        b",\"price_percent_chg_24_h\":",
    ] {
        c.lit(key)?;
        c.str()?;
    }
    c.lit(b",\"best_bid\":")?;
    let bid = c.dec()?;
    c.lit(b",\"best_bid_quantity\":")?;
    let bid_qty = c.dec()?;
    c.lit(b",\"best_ask\":")?;
    let ask = c.dec()?;
    c.lit(b",\"best_ask_quantity\":")?;
    let ask_qty = c.dec()?;
    c.lit(b"}]}")?;
    fast_close(c)?;
    Some(TickerFields {
        product,
        bid,
        bid_qty: Some(bid_qty),
        ask,
        ask_qty: Some(ask_qty),
    })
}

/// Unsubscribe then subscribe `level2` for `products` (one channel per message, as the
/// Advanced Trade protocol requires); a fresh snapshot follows the subscribe.
fn resubscribe_level2(products: &[String], out: &mut Output) {
    let ids: Vec<String> = products.iter().map(|p| format!("\"{p}\"")).collect();
    let ids = ids.join(",");
    for kind in ["unsubscribe", "subscribe"] {
        out.actions.push(Action::Send(format!(
            "{{\"type\":\"{kind}\",\"product_ids\":[{ids}],\"channel\":\"level2\"}}"
        )));
    }
}

impl Normalizer for CoinbaseAdvancedNormalizer {
    fn venue(&self) -> Venue {
        Venue::CoinbaseAdvanced
    }

    fn on_connect(&mut self, ts: u64, out: &mut Output) {
        self.symbols
            .status_all(StatusCode::Connected, "connected and subscribed", ts, out);
    }

    fn on_message(
        &mut self,
        raw: &[u8],
        ts_recv: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        self.stats.messages += 1;
        self.read_message(raw, ts_recv, out)
    }

    fn on_snapshot(
        &mut self,
        symbol: &str,
        _raw: &[u8],
        _ts_recv: u64,
        _out: &mut Output,
    ) -> Result<(), NormalizeError> {
        self.stats.refuse_snapshot(
            symbol,
            "Coinbase Advanced Trade books sync from the level2 snapshot on the WebSocket, never from REST",
        )
    }

    fn on_stale(&mut self, ts: u64, detail: &str, out: &mut Output) {
        self.symbols.status_all(StatusCode::Stale, detail, ts, out);
    }

    fn on_disconnect(&mut self, ts: u64, reason: &str, out: &mut Output) {
        // sequence_num starts again on the next connection.
        self.last_seq = None;
        for i in 0..self.symbols.len() {
            let had_book = match self.books[i].as_mut() {
                Some(b) => {
                    b.disconnect();
                    true
                }
                None => false,
            };
            self.symbols.status(
                i,
                StatusCode::Disconnected,
                reason.to_string(),
                had_book,
                ts,
                out,
            );
        }
    }

    fn stats(&self) -> &Stats {
        &self.stats
    }
}

impl TwoPaths for CoinbaseAdvancedNormalizer {
    fn fast_path(&mut self, raw: &[u8], ts_recv: u64, out: &mut Output) -> bool {
        self.fast(raw, ts_recv, out)
    }

    fn tape_path(
        &mut self,
        root: simd_json::tape::Value<'_, '_>,
        ts_recv: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        self.dispatch(root, ts_recv, out)
    }

    fn paths(&mut self) -> &mut Paths {
        &mut self.paths
    }

    fn counters(&mut self) -> &mut Stats {
        &mut self.stats
    }
}
