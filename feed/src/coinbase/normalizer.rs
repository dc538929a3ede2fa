//! Coinbase Exchange (the former Pro feed) messages -> frames.
//!
//! Channels understood (docs.cdp.coinbase.com/exchange/websocket-feed/channels):
//!
//! - `matches`: `match` -> Trade. `side` is the MAKER's side, so the aggressor is the other
//!   side. `trade_id` is contiguous per product: a jump is a Gap status on the trades stream.
//!   `last_match` (sent once on subscribing: the product's latest trade, which happened
//!   before we were there) is not emitted; it sets the trade-id baseline, and after a
//!   reconnect it shows which trades were missed while away.
//! - `ticker` -> Quote from `best_bid`/`best_ask` and, where the venue sends them (current
//!   docs), `best_bid_size`/`best_ask_size` (0 when absent, as in 2021 captures).
//! - `level2` / `level2_batch`: `snapshot` -> the whole book (BookSnapshot), then `l2update`
//!   `changes: [[side, price, size]]` (absolute sizes, "0" removes) -> BookDelta frames. The
//!   channel carries no sequence number: a book that crosses after an update is the break.
//!   The book is then flagged `BAD_BOOK`, a Gap status is emitted, the product's book channel
//!   is unsubscribed and subscribed again (a fresh `snapshot` follows), and `Resynced` is
//!   emitted once it arrives.
//! - `heartbeat`: `last_trade_id` past the last trade received means trades were missed
//!   (a Gap status on the trades stream).
//! - `subscriptions` (the subscribe acknowledgement) is counted; `error` is returned as a
//!   [`NormalizeError::Venue`]. Every other type (`status`, the `full` channel's...) is
//!   counted as `ignored:<type>` (the docs: "clients are expected to ignore messages they do
//!   not support").

use simd_json::prelude::*;
use simd_json::tape::Value;
use tickwire_sdk::wire::{
    Body, BookSide, Frame, Level, Parsed, Quote, Side, StatusCode, Trade, TradeId, Venue,
};

use super::common::{self, BookState, ProductBook, json_product, parse_time_ns};
use crate::json::{Precision, decimal, fields, levels, req_array, req_decimal, req_str, req_u64};
use crate::layout::Cursor;
use crate::normalizer::{Action, NormalizeError, Normalizer, Output, Paths, Stats, TwoPaths};
use crate::symbols::{SymbolIndex, SymbolTable};

/// Per-product state beyond the symbol table.
#[derive(Debug, Default)]
struct ProductState {
    /// The L2 book, created at the first level2 message.
    book: Option<ProductBook>,
    /// Highest trade id emitted (or set as baseline by `last_match`).
    last_trade_id: Option<u64>,
    /// Highest trade id already reported missing (by a heartbeat), so it is not reported twice.
    reported_through: u64,
}

/// The Coinbase Exchange normalizer with its books. One per upstream connection.
pub struct CoinbaseNormalizer {
    symbols: SymbolTable,
    state: Vec<ProductState>,
    /// Fast path and tape parser.
    paths: Paths,
    stats: Stats,
    /// The book channel subscribed (`level2` or `level2_batch`), for resubscriptions.
    book_channel: String,
    /// Scratch for one update's changes.
    changes: Vec<(BookSide, Level, u64)>,
    /// Scratch for a snapshot's levels.
    bids: Vec<Level>,
    asks: Vec<Level>,
}

/// A match or last_match's fields, however they were read.
struct MatchFields<'a> {
    id: u64,
    product: &'a str,
    price: Parsed,
    qty: Parsed,
    /// The aggressor (the other side from the maker's `side`).
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
    ts_exchange: u64,
}

/// The message types with a handler.
enum Message {
    L2Update,
    Snapshot,
    Match,
    LastMatch,
    Ticker,
    Heartbeat,
    Subscriptions,
    Error,
}

const TYPES: [(&str, Message); 8] = [
    ("l2update", Message::L2Update),
    ("ticker", Message::Ticker),
    ("match", Message::Match),
    ("snapshot", Message::Snapshot),
    ("heartbeat", Message::Heartbeat),
    ("last_match", Message::LastMatch),
    ("subscriptions", Message::Subscriptions),
    ("error", Message::Error),
];

impl CoinbaseNormalizer {
    /// A normalizer whose books resync through `book_channel` (`level2` or `level2_batch`).
    /// `symbols` (venue spelling, `BTC-USD`) are announced up front so connection statuses
    /// can name them; others are learned from the data.
    pub fn new(symbols: &[String], book_channel: &str) -> CoinbaseNormalizer {
        let mut n = CoinbaseNormalizer {
            symbols: SymbolTable::new(Venue::Coinbase),
            state: Vec::new(),
            paths: Paths::default(),
            stats: Stats::default(),
            book_channel: book_channel.to_string(),
            changes: Vec::new(),
            bids: Vec::new(),
            asks: Vec::new(),
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

    /// The book of `product` if it is live (for tests and the engine's checks).
    pub fn book(&self, product: &str) -> Option<&crate::book::OrderBook> {
        let i = self.symbols.find(product)?;
        self.state[i]
            .book
            .as_ref()
            .filter(|b| b.state == BookState::Live)
            .map(|b| &b.book)
    }

    fn intern(&mut self, symbol: &str) -> SymbolIndex {
        let i = self.symbols.intern(symbol);
        if i == self.state.len() {
            self.state.push(ProductState::default());
        }
        i
    }

    fn dispatch(
        &mut self,
        root: Value<'_, '_>,
        ts_recv: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        let Some(kind) = root.get_str("type") else {
            self.stats.count("ignored:unknown");
            return Ok(());
        };
        let Some((key, message)) = TYPES.iter().find(|(k, _)| *k == kind) else {
            self.stats.count(&format!("ignored:{kind}"));
            return Ok(());
        };
        self.stats.count(key);
        match message {
            Message::L2Update => self.on_l2update(&root, ts_recv, out),
            Message::Snapshot => self.on_book_snapshot(&root, ts_recv, out),
            Message::Match => self.on_match(&root, false, ts_recv, out),
            Message::LastMatch => self.on_match(&root, true, ts_recv, out),
            Message::Ticker => self.on_ticker(&root, ts_recv, out),
            Message::Heartbeat => self.on_heartbeat(&root, ts_recv, out),
            Message::Subscriptions => Ok(()),
            Message::Error => {
                let [m, r] = fields(&root, ["message", "reason"]);
                let m = m.and_then(|v| v.into_string()).unwrap_or("");
                let r = r.and_then(|v| v.into_string()).unwrap_or("");
                Err(NormalizeError::Venue(format!("{m}: {r}")))
            }
        }
    }

    fn on_l2update(
        &mut self,
        d: &Value<'_, '_>,
        ts_recv: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        const M: &str = "l2update";
        let [p, c, t] = fields(d, ["product_id", "changes", "time"]);
        let product = req_str(p, M, "product_id")?;
        let i = self.intern(product);
        let precision = match self.parse_changes(c, t) {
            Ok(x) => x,
            Err(e) => {
                // An update we cannot read leaves the book in doubt.
                self.break_book(i, format!("unreadable l2update: {e}"), ts_recv, out);
                return Err(e);
            }
        };
        self.apply_l2update(i, precision, ts_recv, out);
        Ok(())
    }

    /// The changes in `self.changes` (product `i`) -> the book -> frames.
    fn apply_l2update(
        &mut self,
        i: SymbolIndex,
        precision: Precision,
        ts_recv: u64,
        out: &mut Output,
    ) {
        let Some(book) = self.state[i].book.as_mut() else {
            self.stats.count("l2update:before_snapshot");
            return;
        };
        match book.state {
            BookState::Waiting => self.stats.count("l2update:before_snapshot"),
            BookState::Resyncing => self.stats.count("l2update:dropped_resyncing"),
            BookState::Live => {
                let inst = self
                    .symbols
                    .announce(i, precision.price, precision.qty, ts_recv, out);
                let book = self.state[i].book.as_mut().expect("checked above");
                if let Some((bid, ask)) =
                    book.apply_changes(Venue::Coinbase, inst, &self.changes, ts_recv, out)
                {
                    let detail = format!(
                        "book crossed after an l2update (best bid {} >= best ask {}): resubscribing {}",
                        tickwire_sdk::wire::decimal_string(bid, precision.price.max(1)),
                        tickwire_sdk::wire::decimal_string(ask, precision.price.max(1)),
                        self.book_channel
                    );
                    self.report_gap(i, detail, ts_recv, out);
                }
            }
        }
    }

    /// Reads `changes` into the scratch list; returns the precision seen.
    fn parse_changes(
        &mut self,
        c: Option<Value<'_, '_>>,
        t: Option<Value<'_, '_>>,
    ) -> Result<Precision, NormalizeError> {
        const M: &str = "l2update";
        let ts_exchange = opt_time(t, M, "time")?;
        let arr = req_array(c, M, "changes")?;
        self.changes.clear();
        let mut precision = Precision::default();
        let bad = || NormalizeError::Field {
            message: M,
            field: "changes",
            expected: "an array of [\"buy\"|\"sell\", price, size] string triples",
        };
        for change in arr.iter() {
            let ch = change.as_array().ok_or_else(bad)?;
            let side = match ch.get(0).and_then(|v| v.into_string()) {
                Some("buy") => BookSide::Bid,
                Some("sell") => BookSide::Ask,
                _ => return Err(bad()),
            };
            let p = ch.get(1).and_then(|v| v.into_string()).ok_or_else(bad)?;
            let q = ch.get(2).and_then(|v| v.into_string()).ok_or_else(bad)?;
            let p = decimal(p, M, "changes")?;
            let q = decimal(q, M, "changes")?;
            if p.value <= 0 || q.value < 0 {
                return Err(NormalizeError::Field {
                    message: M,
                    field: "changes",
                    expected: "levels with a positive price and a non-negative size",
                });
            }
            precision.see(&p, &q);
            self.changes.push((
                side,
                Level {
                    price: p.value,
                    qty: q.value,
                },
                ts_exchange,
            ));
        }
        Ok(precision)
    }

    fn on_book_snapshot(
        &mut self,
        d: &Value<'_, '_>,
        ts_recv: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        const M: &str = "snapshot";
        let [p, b, a, t] = fields(d, ["product_id", "bids", "asks", "time"]);
        let product = req_str(p, M, "product_id")?;
        let i = self.intern(product);
        let mut precision = Precision::default();
        self.bids.clear();
        self.asks.clear();
        let parsed = req_array(b, M, "bids")
            .and_then(|b| levels(&b, M, "bids", &mut precision, &mut self.bids))
            .and_then(|_| req_array(a, M, "asks"))
            .and_then(|a| levels(&a, M, "asks", &mut precision, &mut self.asks))
            .and_then(|_| opt_time(t, M, "time"));
        let ts_exchange = match parsed {
            Ok(t) => t,
            Err(e) => {
                self.break_book(i, format!("unreadable book snapshot: {e}"), ts_recv, out);
                return Err(e);
            }
        };
        let inst = self
            .symbols
            .announce(i, precision.price, precision.qty, ts_recv, out);
        let book = self.state[i].book.get_or_insert_with(ProductBook::new);
        book.load_snapshot(
            Venue::Coinbase,
            inst,
            &self.bids,
            &self.asks,
            ts_exchange,
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
            // A crossed snapshot cannot be trusted either.
            book.break_book();
            self.report_gap(i, "the level2 snapshot is crossed".into(), ts_recv, out);
        }
        Ok(())
    }

    fn on_match(
        &mut self,
        d: &Value<'_, '_>,
        last_match: bool,
        ts_recv: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        let msg = if last_match { "last_match" } else { "match" };
        let [id, p, price, size, side, t] = fields(
            d,
            ["trade_id", "product_id", "price", "size", "side", "time"],
        );
        let id = req_u64(id, msg, "trade_id")?;
        let product = req_str(p, msg, "product_id")?;
        let price = req_decimal(price, msg, "price")?;
        let qty = req_decimal(size, msg, "size")?;
        // `side` is the maker's order side: a sell maker means a buyer took it.
        let side = match req_str(side, msg, "side")? {
            "sell" => Side::Buy,
            "buy" => Side::Sell,
            _ => {
                return Err(NormalizeError::Field {
                    message: msg,
                    field: "side",
                    expected: "\"buy\" or \"sell\"",
                });
            }
        };
        let ts_exchange = opt_time(t, msg, "time")?;
        if price.value <= 0 || qty.value <= 0 {
            return Err(NormalizeError::Field {
                message: msg,
                field: "size",
                expected: "a positive price and size",
            });
        }
        let f = MatchFields {
            id,
            product,
            price,
            qty,
            side,
            ts_exchange,
        };
        self.emit_match(f, last_match, ts_recv, out);
        Ok(())
    }

    /// A read match (or last_match) -> trade-id bookkeeping -> a Trade frame.
    fn emit_match(&mut self, f: MatchFields<'_>, last_match: bool, ts_recv: u64, out: &mut Output) {
        let MatchFields {
            id,
            product,
            price,
            qty,
            side,
            ts_exchange,
        } = f;
        let i = self.intern(product);
        let inst = self
            .symbols
            .announce(i, price.decimals, qty.decimals, ts_recv, out);
        let st = &mut self.state[i];
        let prev = st.last_trade_id;
        if let Some(prev) = prev {
            if id <= prev {
                // Already emitted (a replayed last_match after a reconnect, or a duplicate).
                self.stats.count(if last_match {
                    "last_match:seen"
                } else {
                    "match:duplicate"
                });
                return;
            }
            // Trades from prev+1 (or past what a heartbeat already reported) to the one
            // before this were never received; a last_match itself was not received live.
            let from = prev.max(st.reported_through) + 1;
            let through = if last_match { id } else { id - 1 };
            if through >= from {
                st.reported_through = through;
                self.stats.gaps += 1;
                let detail =
                    format!("trade ids {from}..={through} missing: those trades were not received");
                self.symbols
                    .status(i, StatusCode::Gap, detail, false, ts_recv, out);
            }
        }
        let st = &mut self.state[i];
        st.last_trade_id = Some(id);
        if last_match {
            return;
        }
        out.frames.push(Frame::new(
            Venue::Coinbase,
            inst,
            ts_exchange,
            ts_recv,
            Body::Trade(Trade {
                price: price.value,
                qty: qty.value,
                side,
                trade_id: TradeId::Num(id),
            }),
        ));
    }

    fn on_ticker(
        &mut self,
        d: &Value<'_, '_>,
        ts_recv: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        const M: &str = "ticker";
        let [p, b, bs, a, asz, t] = fields(
            d,
            [
                "product_id",
                "best_bid",
                "best_bid_size",
                "best_ask",
                "best_ask_size",
                "time",
            ],
        );
        let product = req_str(p, M, "product_id")?;
        let bid = req_decimal(b, M, "best_bid")?;
        let ask = req_decimal(a, M, "best_ask")?;
        let bid_qty = opt_decimal(bs, M, "best_bid_size")?;
        let ask_qty = opt_decimal(asz, M, "best_ask_size")?;
        let ts_exchange = opt_time(t, M, "time")?;
        let f = TickerFields {
            product,
            bid,
            bid_qty,
            ask,
            ask_qty,
            ts_exchange,
        };
        self.emit_ticker(f, ts_recv, out);
        Ok(())
    }

    /// A read ticker -> a Quote frame.
    fn emit_ticker(&mut self, f: TickerFields<'_>, ts_recv: u64, out: &mut Output) {
        let TickerFields {
            product,
            bid,
            bid_qty,
            ask,
            ask_qty,
            ts_exchange,
        } = f;
        let i = self.intern(product);
        let qd = bid_qty
            .map_or(0, |q| q.decimals)
            .max(ask_qty.map_or(0, |q| q.decimals));
        let inst = self
            .symbols
            .announce(i, bid.decimals.max(ask.decimals), qd, ts_recv, out);
        out.frames.push(Frame::new(
            Venue::Coinbase,
            inst,
            ts_exchange,
            ts_recv,
            Body::Quote(Quote {
                bid_px: bid.value,
                bid_qty: bid_qty.map_or(0, |q| q.value),
                ask_px: ask.value,
                ask_qty: ask_qty.map_or(0, |q| q.value),
            }),
        ));
    }

    fn on_heartbeat(
        &mut self,
        d: &Value<'_, '_>,
        ts_recv: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        const M: &str = "heartbeat";
        let [p, l] = fields(d, ["product_id", "last_trade_id"]);
        let product = req_str(p, M, "product_id")?;
        let last = req_u64(l, M, "last_trade_id")?;
        let i = self.intern(product);
        let st = &mut self.state[i];
        // Only meaningful once trades are followed (a match or last_match was seen).
        if let Some(prev) = st.last_trade_id {
            let from = prev.max(st.reported_through) + 1;
            if last >= from {
                st.reported_through = last;
                self.stats.gaps += 1;
                let detail = format!(
                    "heartbeat reports last trade id {last}; trade ids {from}..={last} were not received"
                );
                self.symbols
                    .status(i, StatusCode::Gap, detail, false, ts_recv, out);
            }
        }
        Ok(())
    }

    /// Emits the Gap status (book flagged) and resubscribes the product's book channel.
    fn report_gap(&mut self, i: SymbolIndex, detail: String, ts: u64, out: &mut Output) {
        self.stats.gaps += 1;
        self.symbols
            .status(i, StatusCode::Gap, detail, true, ts, out);
        let product = json_product(&self.symbols.get(i).symbol);
        let ch = &self.book_channel;
        out.actions.push(Action::Send(format!(
            "{{\"type\":\"unsubscribe\",\"product_ids\":[\"{product}\"],\"channels\":[\"{ch}\"]}}"
        )));
        out.actions.push(Action::Send(format!(
            "{{\"type\":\"subscribe\",\"product_ids\":[\"{product}\"],\"channels\":[\"{ch}\"]}}"
        )));
    }

    /// An unreadable book message: break the product's book (if it has one) and resync.
    fn break_book(&mut self, i: SymbolIndex, detail: String, ts: u64, out: &mut Output) {
        if let Some(book) = self.state[i].book.as_mut()
            && book.break_book()
        {
            self.report_gap(i, detail, ts, out);
        }
    }
}

impl CoinbaseNormalizer {
    /// The exact-layout fast path for `l2update`, `match`, `last_match` and `ticker` as the
    /// venue sends them (and as its docs show them). Returns false, having changed nothing
    /// but the scratch change list, when the message is not exactly one of those layouts:
    /// the tape path then handles it.
    fn fast(&mut self, raw: &[u8], ts_recv: u64, out: &mut Output) -> bool {
        let mut c = Cursor::new(raw);
        if c.opt_lit(b"{\"type\":\"l2update\",\"product_id\":") {
            let Some((product, precision)) = fast_l2update(&mut c, &mut self.changes) else {
                return false;
            };
            self.stats.count("l2update");
            let i = self.intern(product);
            self.apply_l2update(i, precision, ts_recv, out);
        } else if c.opt_lit(b"{\"type\":\"match\",\"trade_id\":") {
            let Some(f) = fast_match(&mut c) else {
                return false;
            };
            self.stats.count("match");
            self.emit_match(f, false, ts_recv, out);
        } else if c.opt_lit(b"{\"type\":\"ticker\",\"sequence\":") {
            let Some(f) = fast_ticker(&mut c) else {
                return false;
            };
            self.stats.count("ticker");
            self.emit_ticker(f, ts_recv, out);
        } else if c.opt_lit(b"{\"type\":\"last_match\",\"trade_id\":") {
            let Some(f) = fast_match(&mut c) else {
                return false;
            };
            self.stats.count("last_match");
            self.emit_match(f, true, ts_recv, out);
        } else {
            return false;
        }
        true
    }
}

/// An RFC 3339 time string: the common UTC form read in place, any other through
/// [`parse_time_ns`].
#[inline]
fn fast_time(c: &mut Cursor<'_>) -> Option<u64> {
    if let Some(t) = common::fast_time(c) {
        return Some(t);
    }
    parse_time_ns(c.str()?)
}

/// After `"product_id":`: `"..","changes":[..],"time":".."}` (as sent) or
/// `"..","time":"..","changes":[..]}` (as documented), then the end; the changes into
/// `changes` (cleared first).
fn fast_l2update<'a>(
    c: &mut Cursor<'a>,
    changes: &mut Vec<(BookSide, Level, u64)>,
) -> Option<(&'a str, Precision)> {
    let product = c.str()?;
    let mut precision = Precision::default();
    if c.opt_lit(b",\"changes\":") {
        fast_changes(c, changes, &mut precision, 0)?;
        c.lit(b",\"time\":")?;
        let t = fast_time(c)?;
        for ch in changes.iter_mut() {
            ch.2 = t;
        }
    } else {
        c.lit(b",\"time\":")?;
        let t = fast_time(c)?;
        c.lit(b",\"changes\":")?;
        fast_changes(c, changes, &mut precision, t)?;
    }
    c.lit(b"}")?;
    c.end()?;
    Some((product, precision))
}

/// `[["buy"|"sell","price","size"],..]` into `changes` (cleared first), each at time
/// `ts_exchange`. Prices must be positive and sizes non-negative.
#[inline]
fn fast_changes(
    c: &mut Cursor<'_>,
    changes: &mut Vec<(BookSide, Level, u64)>,
    precision: &mut Precision,
    ts_exchange: u64,
) -> Option<()> {
    changes.clear();
    c.lit(b"[")?;
    if c.opt_lit(b"]") {
        return Some(());
    }
    loop {
        let side = if c.opt_lit(b"[\"buy\",") {
            BookSide::Bid
        } else if c.opt_lit(b"[\"sell\",") {
            BookSide::Ask
        } else {
            return None;
        };
        let p = c.dec()?;
        c.lit(b",")?;
        let q = c.dec()?;
        c.lit(b"]")?;
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
            ts_exchange,
        ));
        if c.opt_lit(b"]") {
            return Some(());
        }
        c.lit(b",")?;
    }
}

/// `"buy"` or `"sell"` (the maker's side) -> the aggressor's side.
#[inline]
fn fast_maker_side(c: &mut Cursor<'_>) -> Option<Side> {
    if c.opt_lit(b"\"sell\"") {
        Some(Side::Buy)
    } else if c.opt_lit(b"\"buy\"") {
        Some(Side::Sell)
    } else {
        None
    }
}

/// After `"trade_id":`, as sent:
/// `N,"maker_order_id":..,"taker_order_id":..,"side":..,"size":..,"price":..,"product_id":..,
/// "sequence":N,"time":..}`; or as documented:
/// `N,"sequence":N,"maker_order_id":..,"taker_order_id":..,"time":..,"product_id":..,
/// "size":..,"price":..,"side":..}`; then the end.
fn fast_match<'a>(c: &mut Cursor<'a>) -> Option<MatchFields<'a>> {
    let id = c.u64()?;
    let (product, price, qty, side, ts_exchange);
    if c.opt_lit(b",\"maker_order_id\":") {
        c.str()?;
        c.lit(b",\"taker_order_id\":")?;
        c.str()?;
        c.lit(b",\"side\":")?;
        side = fast_maker_side(c)?;
        c.lit(b",\"size\":")?;
        qty = c.dec()?;
        c.lit(b",\"price\":")?;
        price = c.dec()?;
        c.lit(b",\"product_id\":")?;
        product = c.str()?;
        c.lit(b",\"sequence\":")?;
        c.u64()?;
        c.lit(b",\"time\":")?;
        ts_exchange = fast_time(c)?;
    } else {
        c.lit(b",\"sequence\":")?;
        c.u64()?;
        c.lit(b",\"maker_order_id\":")?;
        c.str()?;
        c.lit(b",\"taker_order_id\":")?;
        c.str()?;
        c.lit(b",\"time\":")?;
        ts_exchange = fast_time(c)?;
        c.lit(b",\"product_id\":")?;
        product = c.str()?;
        c.lit(b",\"size\":")?;
        qty = c.dec()?;
        c.lit(b",\"price\":")?;
        price = c.dec()?;
        c.lit(b",\"side\":")?;
        side = fast_maker_side(c)?;
    }
    c.lit(b"}")?;
    c.end()?;
    if price.value <= 0 || qty.value <= 0 {
        return None; // the tape path says what is wrong
    }
    Some(MatchFields {
        id,
        product,
        price,
        qty,
        side,
        ts_exchange,
    })
}

/// After `"sequence":`: `N,"product_id":..,"price":..,"open_24h":..,"volume_24h":..,
/// "low_24h":..,"high_24h":..,"volume_30d":..,"best_bid":..[,"best_bid_size":..],
/// "best_ask":..[,"best_ask_size":..],"side":..,"time":..,"trade_id":N,"last_size":..}`,
/// then the end (sizes: current docs; without them: 2021 captures).
fn fast_ticker<'a>(c: &mut Cursor<'a>) -> Option<TickerFields<'a>> {
    c.u64()?;
    c.lit(b",\"product_id\":")?;
    let product = c.str()?;
    for key in [
        &b",\"price\":"[..],
        b",\"open_24h\":",
        b",\"volume_24h\":",
        b",\"low_24h\":",
        b",\"high_24h\":",
        b",\"volume_30d\":",
    ] {
        c.lit(key)?;
        c.str()?;
    }
    c.lit(b",\"best_bid\":")?;
    let bid = c.dec()?;
    let bid_qty = if c.opt_lit(b",\"best_bid_size\":") {
        Some(c.dec()?)
    } else {
        None
    };
    c.lit(b",\"best_ask\":")?;
    let ask = c.dec()?;
    let ask_qty = if c.opt_lit(b",\"best_ask_size\":") {
        Some(c.dec()?)
    } else {
        None
    };
    c.lit(b",\"side\":")?;
    c.str()?;
    c.lit(b",\"time\":")?;
    let ts_exchange = fast_time(c)?;
    c.lit(b",\"trade_id\":")?;
    c.u64()?;
    c.lit(b",\"last_size\":")?;
    c.str()?;
    c.lit(b"}")?;
    c.end()?;
    Some(TickerFields {
        product,
        bid,
        bid_qty,
        ask,
        ask_qty,
        ts_exchange,
    })
}

/// An optional RFC 3339 time from a [`fields`] slot, in ns (0 if absent).
pub(crate) fn opt_time(
    slot: Option<Value<'_, '_>>,
    message: &'static str,
    field: &'static str,
) -> Result<u64, NormalizeError> {
    match slot {
        None => Ok(0),
        Some(v) => v
            .into_string()
            .and_then(parse_time_ns)
            .ok_or(NormalizeError::Field {
                message,
                field,
                expected: "an RFC 3339 UTC time",
            }),
    }
}

/// An optional decimal string from a [`fields`] slot (absent or JSON null -> `None`).
pub(crate) fn opt_decimal(
    slot: Option<Value<'_, '_>>,
    message: &'static str,
    field: &'static str,
) -> Result<Option<tickwire_sdk::wire::Parsed>, NormalizeError> {
    match slot {
        None => Ok(None),
        Some(v) if v.is_null() => Ok(None),
        Some(v) => req_decimal(Some(v), message, field).map(Some),
    }
}

impl Normalizer for CoinbaseNormalizer {
    fn venue(&self) -> Venue {
        Venue::Coinbase
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
            "Coinbase books sync from the level2 snapshot on the WebSocket, never from REST",
        )
    }

    fn on_stale(&mut self, ts: u64, detail: &str, out: &mut Output) {
        self.symbols.status_all(StatusCode::Stale, detail, ts, out);
    }

    fn on_disconnect(&mut self, ts: u64, reason: &str, out: &mut Output) {
        for i in 0..self.symbols.len() {
            let had_book = match self.state[i].book.as_mut() {
                Some(book) => {
                    book.disconnect();
                    true
                }
                None => false,
            };
            // Trades during the outage are lost; the next last_match shows the hole.
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

impl TwoPaths for CoinbaseNormalizer {
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
