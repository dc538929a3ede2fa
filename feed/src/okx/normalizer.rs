//! OKX v5 public WebSocket messages -> frames.
//!
//! Messages understood (docs: <https://www.okx.com/docs-v5/en/>, sections "WebSocket",
//! "WS / Order book channel", "WS / Trades channel", "WS / All trades channel",
//! "WS / Tickers channel"):
//!
//! - the text `pong` (the answer to our text `ping` keepalive; not JSON);
//! - events: `subscribe` / `unsubscribe` acknowledgements, `error` (code, msg), `notice`
//!   (code 64008: the connection closes soon for a service upgrade: reconnect now),
//!   `channel-conn-count` / `channel-conn-count-error`;
//! - pushes `{"arg":{"channel":..,"instId":..},"action":..,"data":[..]}` of the channels
//!   `books` (also `books-l2-tbt` / `books50-l2-tbt`, same dialect): snapshot then updates,
//!   checked by `prevSeqId`/`seqId` and by the checksum; `books5` (a 5-level snapshot each
//!   push); `bbo-tbt` and `tickers` (-> Quote); `trades` and `trades-all` (-> Trade).
//!
//! Everything else is counted as `ignored:<channel>` or `ignored:event:<event>`.
//!
//! Stats keys: one per message type (`books`, `books-l2-tbt`, `books50-l2-tbt`, `books5`,
//! `bbo-tbt`, `tickers`, `trades`, `trades-all`, `pong`, `event:subscribe`,
//! `event:unsubscribe`, `event:error`, `event:notice`, `event:channel-conn-count`,
//! `event:channel-conn-count-error`, `ignored:...`), plus outcomes: `book:synced`,
//! `checksum:ok` / `checksum:zero` / `checksum:mismatch`, `books:skipped_while_resyncing`,
//! `trades:duplicate`, and `error:json` / `error:message` / `error:snapshot`.
//!
//! Book integrity, per instrument:
//!
//! - sequence: an update's `prevSeqId` must equal the `seqId` of the message before it. A
//!   no-change keepalive has `prevSeqId == seqId` and empty sides; after maintenance the
//!   sequence may be reset (`seqId < prevSeqId`), still chained by `prevSeqId`. A snapshot has
//!   `prevSeqId` -1. Messages without these fields (before OKX added them) are accepted
//!   unchecked; when present they are always checked.
//! - checksum: CRC32 of the top 25 levels (see [`super::book`]). OKX has since deprecated it:
//!   the field stays in `books` pushes but is fixed to 0 and "must no longer be used", so a
//!   checksum of 0 is not checked (counted as `checksum:zero`); any other value is.
//! - crossed book: a book whose best bid reaches its best ask after an update is broken,
//!   except where OKX says it may be so ("best ask price may be lower than the best bid
//!   price during the pre-open period"): a crossed book coming straight from a fresh
//!   snapshot is the venue's own state, and crossing is then accepted until the book uncrosses.
//!
//! On a break: a `Gap` status (flagged `BAD_BOOK`), the book is dropped, and the instrument's
//! book channel is unsubscribed and subscribed again, which makes OKX send a fresh snapshot;
//! updates until then are skipped; the snapshot is emitted whole, then `Resynced`. OKX limits
//! subscribe/unsubscribe requests to 480 an hour per connection: past [`MAX_RESYNCS_PER_HOUR`]
//! resyncs the normalizer asks for a new connection instead.
//!
//! Trades: `tradeId` is the last trade of an aggregation of `count` trades (ids
//! `tradeId - count + 1 ..= tradeId`). Ids are consecutive per instrument, so a jump is a
//! `Gap` status on the trades stream; a trade at or below the last id seen (OKX re-sends the
//! latest trade on subscribe, e.g. after a reconnect) is a duplicate and is not emitted again.

use std::collections::VecDeque;

use simd_json::prelude::*;
use simd_json::tape::{Array, Value};
use tickwire_sdk::wire::{
    Body, BookDelta, BookSide, BookSnapshot, Frame, Level, Parsed, Quote, Side, StatusCode, Trade,
    TradeId, Venue, flags,
};

use super::book::{OkxBook, TextLevel};
use crate::clock::venue_time_to_ns;
use crate::json::{Precision, decimal, fields, req_str};
use crate::layout::Cursor;
use crate::normalizer::{Action, NormalizeError, Normalizer, Output, Paths, Stats, TwoPaths};
use crate::symbols::{SymbolIndex, SymbolTable};

/// Resyncs allowed per connection per hour before the normalizer asks for a new connection
/// (each is an unsubscribe and a subscribe; OKX allows 480 such requests an hour).
pub const MAX_RESYNCS_PER_HOUR: usize = 200;
const HOUR_NS: u64 = 3_600 * 1_000_000_000;

/// The incremental book channels, which share one dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookChannel {
    /// `books`: 400 levels, updates every 100 ms.
    Books,
    /// `books-l2-tbt`: 400 levels, tick by tick (VIP accounts).
    BooksL2Tbt,
    /// `books50-l2-tbt`: 50 levels, tick by tick (VIP accounts).
    Books50L2Tbt,
}

impl BookChannel {
    /// The channel name.
    pub fn name(self) -> &'static str {
        match self {
            BookChannel::Books => "books",
            BookChannel::BooksL2Tbt => "books-l2-tbt",
            BookChannel::Books50L2Tbt => "books50-l2-tbt",
        }
    }
}

/// Where an instrument's incremental book stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sync {
    /// No snapshot yet on this connection.
    NoBook,
    /// Built from a snapshot and every update since.
    Live,
    /// Broken; a resubscription was requested and updates are skipped until its snapshot.
    Resyncing,
}

/// Per-instrument state beyond the symbol table.
#[derive(Debug)]
struct InstState {
    book: OkxBook,
    sync: Sync,
    /// The book channel this instrument's book comes from (for the resubscription).
    channel: BookChannel,
    /// `seqId` of the last book message applied, when the venue sends it.
    last_seq: Option<i64>,
    /// The book was flagged bad (gap or disconnect): the next snapshot reports `Resynced`.
    flagged: bool,
    /// The last snapshot was crossed (pre-open): crossing is the venue's state, not a break.
    cross_ok: bool,
    /// Last trade id seen (the last of its aggregation).
    last_trade_id: Option<u64>,
}

impl InstState {
    fn new() -> InstState {
        InstState {
            book: OkxBook::new(),
            sync: Sync::NoBook,
            channel: BookChannel::Books,
            last_seq: None,
            flagged: false,
            cross_ok: false,
            last_trade_id: None,
        }
    }
}

/// A book message's fields, parsed into reused buffers.
#[derive(Debug, Default)]
struct BookMsg {
    /// Levels in message order, bids then asks.
    levels: Vec<(BookSide, TextLevel)>,
    precision: Precision,
    ts: u64,
    checksum: Option<i64>,
    seq: Option<i64>,
    prev_seq: Option<i64>,
}

/// The outcome of a checksum check.
#[derive(Debug, PartialEq, Eq)]
enum Checksum {
    /// None sent, or the deprecated 0.
    NotChecked,
    /// The book matches.
    Verified,
    /// The book does not match: why.
    Mismatch(String),
}

/// What a push is, from its `arg.channel`.
enum Channel<'a> {
    Book(BookChannel),
    Books5,
    BboTbt,
    Tickers,
    Trades { all: bool },
    Other(&'a str),
}

impl<'a> Channel<'a> {
    fn of(name: &'a str) -> Channel<'a> {
        match name {
            "books" => Channel::Book(BookChannel::Books),
            "books-l2-tbt" => Channel::Book(BookChannel::BooksL2Tbt),
            "books50-l2-tbt" => Channel::Book(BookChannel::Books50L2Tbt),
            "books5" => Channel::Books5,
            "bbo-tbt" => Channel::BboTbt,
            "tickers" => Channel::Tickers,
            "trades" => Channel::Trades { all: false },
            "trades-all" => Channel::Trades { all: true },
            other => Channel::Other(other),
        }
    }
}

/// The OKX normalizer with its book builders. One per upstream connection.
pub struct OkxNormalizer {
    symbols: SymbolTable,
    state: Vec<InstState>,
    /// Fast path and tape parser.
    paths: Paths,
    stats: Stats,
    /// Scratch book message reused for every push.
    msg: BookMsg,
    /// Scratch for the checksum text.
    text: Vec<u8>,
    /// When the resyncs of this connection were requested (the last hour's).
    resyncs: VecDeque<u64>,
}

/// One trade's fields, read by either path.
struct TradeFields<'a> {
    /// The id as sent, and as a number when it is one.
    id_text: &'a str,
    id: Option<u64>,
    price: Parsed,
    qty: Parsed,
    side: Side,
    ts: u64,
    count: u64,
}

impl OkxNormalizer {
    /// An OKX normalizer. `symbols` (the venue's instIds, e.g. `BTC-USDT`, `BTC-USD-SWAP`)
    /// are announced up front so connection statuses can name them; others are learned from
    /// the data.
    pub fn new(symbols: &[String]) -> OkxNormalizer {
        let mut n = OkxNormalizer {
            symbols: SymbolTable::new(Venue::Okx),
            state: Vec::new(),
            paths: Paths::default(),
            stats: Stats::default(),
            msg: BookMsg::default(),
            text: Vec::with_capacity(2048),
            resyncs: VecDeque::new(),
        };
        for s in symbols {
            n.intern(&s.to_ascii_uppercase());
        }
        n
    }

    /// Turns the exact-layout fast path on or off (on by default). Off, every message goes
    /// through the general simd-json tape path; the output is the same either way.
    pub fn set_fast_path(&mut self, on: bool) {
        self.paths.set_fast(on);
    }

    /// Messages handled by the exact-layout fast path so far.
    pub fn fast_hits(&self) -> u64 {
        self.paths.fast_hits()
    }

    /// The exact-layout fast path for the pushes of `books` (and `books-l2-tbt`,
    /// `books50-l2-tbt`), `trades`, `trades-all` and `tickers`, one data element each, in the
    /// venue's key order. Returns false, having changed nothing but the scratch book message,
    /// when the message is not exactly such a push: the tape path then handles it.
    fn fast(&mut self, raw: &[u8], ts_recv: u64, out: &mut Output) -> bool {
        let mut c = Cursor::new(raw);
        let Some((channel, symbol)) = fast_arg(&mut c) else {
            return false;
        };
        match Channel::of(channel) {
            Channel::Book(ch) => {
                let Some(snapshot) = fast_books(&mut c, &mut self.msg) else {
                    return false;
                };
                self.stats.count(ch.name());
                let i = self.intern(symbol);
                self.state[i].channel = ch;
                if snapshot {
                    self.apply_snapshot(i, ts_recv, out);
                } else {
                    self.apply_update(i, ts_recv, out);
                }
            }
            Channel::Trades { all } => {
                let Some(f) = fast_trade(&mut c) else {
                    return false;
                };
                let m = if all { "trades-all" } else { "trades" };
                self.stats.count(m);
                let i = self.intern(symbol);
                self.emit_trade(m, i, f, ts_recv, out);
            }
            Channel::Tickers => {
                let Some((bid, bid_qty, ask, ask_qty, ts)) = fast_ticker(&mut c) else {
                    return false;
                };
                self.stats.count("tickers");
                let i = self.intern(symbol);
                self.emit_quote(i, [bid, bid_qty, ask, ask_qty], ts, ts_recv, out);
            }
            _ => return false,
        }
        true
    }

    /// The live book of `symbol` (None unless synced), for tests and checks.
    pub fn book(&self, symbol: &str) -> Option<&OkxBook> {
        let i = self.symbols.find(symbol)?;
        let st = &self.state[i];
        (st.sync == Sync::Live).then_some(&st.book)
    }

    fn intern(&mut self, symbol: &str) -> SymbolIndex {
        let i = self.symbols.intern(symbol);
        if i == self.state.len() {
            self.state.push(InstState::new());
        }
        i
    }

    fn dispatch(
        &mut self,
        root: Value<'_, '_>,
        ts_recv: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        let [arg, action, data, event] = fields(&root, ["arg", "action", "data", "event"]);
        if let Some(event) = event {
            let event = event.into_string().ok_or(NormalizeError::Field {
                message: "event",
                field: "event",
                expected: "a string",
            })?;
            return self.on_event(event, &root, out);
        }
        let (Some(arg), Some(data)) = (arg, data) else {
            self.stats.count("ignored:unknown");
            return Ok(());
        };
        let [channel, inst] = fields(&arg, ["channel", "instId"]);
        let channel = req_str(channel, "push", "arg.channel")?;
        let data = data.into_array().ok_or(NormalizeError::Field {
            message: "push",
            field: "data",
            expected: "an array",
        })?;
        match Channel::of(channel) {
            Channel::Book(ch) => {
                self.stats.count(ch.name());
                let symbol = req_str(inst, ch.name(), "arg.instId")?;
                let action = action.and_then(|a| a.into_string());
                self.on_books(ch, symbol, action, &data, ts_recv, out)
            }
            Channel::Books5 => {
                self.stats.count("books5");
                let symbol = req_str(inst, "books5", "arg.instId")?;
                self.on_books5(symbol, &data, ts_recv, out)
            }
            Channel::BboTbt => {
                self.stats.count("bbo-tbt");
                let symbol = req_str(inst, "bbo-tbt", "arg.instId")?;
                self.on_bbo(symbol, &data, ts_recv, out)
            }
            Channel::Tickers => {
                self.stats.count("tickers");
                let symbol = req_str(inst, "tickers", "arg.instId")?;
                self.on_tickers(symbol, &data, ts_recv, out)
            }
            Channel::Trades { all } => {
                let m = if all { "trades-all" } else { "trades" };
                self.stats.count(m);
                let symbol = req_str(inst, m, "arg.instId")?;
                self.on_trades(m, symbol, &data, ts_recv, out)
            }
            Channel::Other(name) => {
                self.stats.count(&format!("ignored:{name}"));
                Ok(())
            }
        }
    }

    fn on_event(
        &mut self,
        event: &str,
        root: &Value<'_, '_>,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        let text = |k: &str| root.get_str(k).unwrap_or("").to_string();
        match event {
            "subscribe" => self.stats.count("event:subscribe"),
            "unsubscribe" => self.stats.count("event:unsubscribe"),
            "error" => {
                self.stats.count("event:error");
                // A refused resubscription would leave a book broken for good: start over
                // on a new connection instead.
                if self.state.iter().any(|s| s.sync == Sync::Resyncing) {
                    out.actions.push(Action::Reconnect {
                        reason: format!(
                            "OKX refused a request while a book was resyncing: code {}, {}",
                            text("code"),
                            text("msg")
                        ),
                    });
                }
                return Err(NormalizeError::Venue(format!(
                    "OKX error event: code {}, {}",
                    text("code"),
                    text("msg")
                )));
            }
            "notice" => {
                self.stats.count("event:notice");
                // 64008: "The connection will soon be closed for a service upgrade."
                if root.get_str("code") == Some("64008") {
                    out.actions.push(Action::Reconnect {
                        reason: format!("OKX notice 64008: {}", text("msg")),
                    });
                }
            }
            "channel-conn-count" => self.stats.count("event:channel-conn-count"),
            "channel-conn-count-error" => {
                self.stats.count("event:channel-conn-count-error");
                return Err(NormalizeError::Venue(format!(
                    "OKX terminated the subscription to {}: {} connections",
                    text("channel"),
                    text("connCount")
                )));
            }
            other => self.stats.count(&format!("ignored:event:{other}")),
        }
        Ok(())
    }

    /// Reads one book data element into the scratch message.
    fn parse_book(&mut self, d: &Value<'_, '_>, m: &'static str) -> Result<(), NormalizeError> {
        let [bids, asks, ts, checksum, seq, prev] =
            fields(d, ["bids", "asks", "ts", "checksum", "seqId", "prevSeqId"]);
        let msg = &mut self.msg;
        msg.levels.clear();
        msg.precision = Precision::default();
        msg.ts = opt_ms(ts, m, "ts")?;
        msg.checksum = opt_i64(checksum, m, "checksum")?;
        msg.seq = opt_i64(seq, m, "seqId")?;
        msg.prev_seq = opt_i64(prev, m, "prevSeqId")?;
        // Absent sides are empty (a keepalive may carry `[]`, a message may omit one).
        if let Some(b) = bids {
            let b = b.into_array().ok_or(NormalizeError::Field {
                message: m,
                field: "bids",
                expected: "an array",
            })?;
            text_levels(&b, BookSide::Bid, m, "bids", msg)?;
        }
        if let Some(a) = asks {
            let a = a.into_array().ok_or(NormalizeError::Field {
                message: m,
                field: "asks",
                expected: "an array",
            })?;
            text_levels(&a, BookSide::Ask, m, "asks", msg)?;
        }
        Ok(())
    }

    fn on_books(
        &mut self,
        ch: BookChannel,
        symbol: &str,
        action: Option<&str>,
        data: &Array<'_, '_>,
        ts_recv: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        let m = ch.name();
        let i = self.intern(symbol);
        self.state[i].channel = ch;
        let snapshot = match action {
            Some("snapshot") => true,
            Some("update") => false,
            _ => {
                let e = NormalizeError::Field {
                    message: m,
                    field: "action",
                    expected: "\"snapshot\" or \"update\"",
                };
                if self.state[i].sync == Sync::Live {
                    self.break_book(i, format!("unreadable {m} push: {e}"), ts_recv, out);
                }
                return Err(e);
            }
        };
        for d in data.iter() {
            if let Err(e) = self.parse_book(&d, m) {
                // An update we cannot read leaves the book in doubt; a snapshot we cannot
                // read leaves it unbuilt: either way, ask for another snapshot.
                if snapshot || self.state[i].sync == Sync::Live {
                    let what = if snapshot { "snapshot" } else { "update" };
                    self.break_book(i, format!("unreadable {m} {what}: {e}"), ts_recv, out);
                }
                return Err(e);
            }
            if snapshot {
                self.apply_snapshot(i, ts_recv, out);
            } else {
                self.apply_update(i, ts_recv, out);
            }
        }
        Ok(())
    }

    fn apply_snapshot(&mut self, i: SymbolIndex, ts_recv: u64, out: &mut Output) {
        let msg = &self.msg;
        let st = &mut self.state[i];
        st.book.clear();
        for (side, l) in &msg.levels {
            st.book.set(*side, *l);
        }
        st.last_seq = msg.seq;
        st.sync = Sync::Live;
        st.cross_ok = st.book.is_crossed();
        if let Checksum::Mismatch(detail) = self.check_checksum(i) {
            self.break_book(i, format!("snapshot {detail}"), ts_recv, out);
            return;
        }
        let (pd, qd) = (self.msg.precision.price, self.msg.precision.qty);
        let inst = self.symbols.announce(i, pd, qd, ts_recv, out);
        let st = &mut self.state[i];
        out.frames.push(
            Frame::new(
                Venue::Okx,
                inst,
                venue_time_to_ns(self.msg.ts),
                ts_recv,
                Body::BookSnapshot(st.book.snapshot()),
            )
            .with_flags(flags::SNAPSHOT | flags::LAST),
        );
        self.stats.count("book:synced");
        if std::mem::take(&mut st.flagged) {
            let detail = match self.msg.seq {
                Some(seq) => format!("book rebuilt from a fresh snapshot; at seqId {seq}"),
                None => "book rebuilt from a fresh snapshot".to_string(),
            };
            self.symbols
                .status(i, StatusCode::Resynced, detail, false, ts_recv, out);
        }
    }

    fn apply_update(&mut self, i: SymbolIndex, ts_recv: u64, out: &mut Output) {
        let m = self.state[i].channel.name();
        match self.state[i].sync {
            Sync::Resyncing => {
                self.stats.count("books:skipped_while_resyncing");
                return;
            }
            Sync::NoBook => {
                self.break_book(
                    i,
                    format!("{m} update before any snapshot on this connection"),
                    ts_recv,
                    out,
                );
                return;
            }
            Sync::Live => {}
        }
        let st = &mut self.state[i];
        if let (Some(prev), Some(last)) = (self.msg.prev_seq, st.last_seq)
            && prev != last
        {
            let detail = format!(
                "{m} update with prevSeqId {prev} does not follow seqId {last}: updates were missed (this one has seqId {})",
                self.msg.seq.map_or("?".to_string(), |s| s.to_string())
            );
            self.break_book(i, detail, ts_recv, out);
            return;
        }
        for (side, l) in &self.msg.levels {
            st.book.set(*side, *l);
        }
        st.last_seq = self.msg.seq;
        let checksum = self.check_checksum(i);
        let st = &mut self.state[i];
        let mut broken = None;
        if st.book.is_crossed() {
            if checksum == Checksum::Verified {
                // The venue's checksum says this crossed book is its own (pre-open).
                st.cross_ok = true;
            }
            if !st.cross_ok {
                let (b, a) = (st.book.best_bid(), st.book.best_ask());
                broken = Some(format!(
                    "book crossed after a {m} update (best bid {} >= best ask {})",
                    b.map_or(0, |l| l.price),
                    a.map_or(0, |l| l.price)
                ));
            }
        } else {
            st.cross_ok = false;
        }
        if let Checksum::Mismatch(detail) = checksum {
            broken = Some(format!("{m} update {detail}"));
        }
        let (pd, qd) = (self.msg.precision.price, self.msg.precision.qty);
        let inst = self.symbols.announce(i, pd, qd, ts_recv, out);
        let extra = if broken.is_some() { flags::BAD_BOOK } else { 0 };
        let ts = venue_time_to_ns(self.msg.ts);
        let n = self.msg.levels.len();
        // `as_slice`: on a Vec, `iter` would resolve to value_trait's boxed `Array::iter`.
        for (k, (side, l)) in self.msg.levels.as_slice().iter().enumerate() {
            let last = if k + 1 == n { flags::LAST } else { 0 };
            out.frames.push(
                Frame::new(
                    Venue::Okx,
                    inst,
                    ts,
                    ts_recv,
                    Body::BookDelta(BookDelta {
                        side: *side,
                        price: l.price,
                        qty: l.qty,
                    }),
                )
                .with_flags(last | extra),
            );
        }
        if let Some(detail) = broken {
            self.break_book(i, detail, ts_recv, out);
        }
    }

    /// Checks the message's checksum (unless absent, or the deprecated 0) against the book.
    fn check_checksum(&mut self, i: SymbolIndex) -> Checksum {
        let Some(want) = self.msg.checksum else {
            return Checksum::NotChecked;
        };
        if want == 0 {
            self.stats.count("checksum:zero");
            return Checksum::NotChecked;
        }
        let got = self.state[i].book.checksum(&mut self.text);
        if i64::from(got) == want {
            self.stats.count("checksum:ok");
            Checksum::Verified
        } else {
            self.stats.count("checksum:mismatch");
            Checksum::Mismatch(format!(
                "checksum mismatch: the venue sent {want}, the book's top 25 levels give {got}"
            ))
        }
    }

    /// The book of `i` cannot be trusted: report it, drop it, and ask OKX for a fresh snapshot
    /// by unsubscribing and subscribing its book channel again.
    fn break_book(&mut self, i: SymbolIndex, detail: String, ts: u64, out: &mut Output) {
        self.stats.gaps += 1;
        let st = &mut self.state[i];
        st.flagged = true;
        st.sync = Sync::Resyncing;
        st.book.clear();
        st.last_seq = None;
        st.cross_ok = false;
        let channel = st.channel;
        self.symbols
            .status(i, StatusCode::Gap, detail, true, ts, out);
        while self
            .resyncs
            .front()
            .is_some_and(|&t| t.saturating_add(HOUR_NS) <= ts)
        {
            self.resyncs.pop_front();
        }
        if self.resyncs.len() >= MAX_RESYNCS_PER_HOUR {
            out.actions.push(Action::Reconnect {
                reason: format!(
                    "{} book resyncs within an hour: OKX allows 480 subscribe/unsubscribe requests an hour per connection",
                    self.resyncs.len()
                ),
            });
            return;
        }
        self.resyncs.push_back(ts);
        let symbol = &self.symbols.get(i).symbol;
        for op in ["unsubscribe", "subscribe"] {
            out.actions
                .push(Action::Send(request(op, channel.name(), symbol)));
        }
    }

    fn on_books5(
        &mut self,
        symbol: &str,
        data: &Array<'_, '_>,
        ts_recv: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        let i = self.intern(symbol);
        for d in data.iter() {
            self.parse_book(&d, "books5")?;
            // A whole 5-level book each push: sent best first; sorted anyway.
            let mut snap = BookSnapshot::default();
            for (side, l) in &self.msg.levels {
                let level = Level {
                    price: l.price,
                    qty: l.qty,
                };
                match side {
                    BookSide::Bid => snap.bids.push(level),
                    BookSide::Ask => snap.asks.push(level),
                }
            }
            snap.bids
                .sort_unstable_by_key(|l| std::cmp::Reverse(l.price));
            snap.asks.sort_unstable_by_key(|l| l.price);
            let (pd, qd) = (self.msg.precision.price, self.msg.precision.qty);
            let inst = self.symbols.announce(i, pd, qd, ts_recv, out);
            out.frames.push(
                Frame::new(
                    Venue::Okx,
                    inst,
                    venue_time_to_ns(self.msg.ts),
                    ts_recv,
                    Body::BookSnapshot(snap),
                )
                .with_flags(flags::SNAPSHOT | flags::LAST),
            );
        }
        Ok(())
    }

    fn on_bbo(
        &mut self,
        symbol: &str,
        data: &Array<'_, '_>,
        ts_recv: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        let i = self.intern(symbol);
        for d in data.iter() {
            self.parse_book(&d, "bbo-tbt")?;
            let best = |side: BookSide| {
                self.msg
                    .levels
                    .as_slice()
                    .iter()
                    .find(|(s, _)| *s == side)
                    .map_or((0, 0), |(_, l)| (l.price, l.qty))
            };
            let (bid_px, bid_qty) = best(BookSide::Bid);
            let (ask_px, ask_qty) = best(BookSide::Ask);
            let (pd, qd) = (self.msg.precision.price, self.msg.precision.qty);
            let inst = self.symbols.announce(i, pd, qd, ts_recv, out);
            out.frames.push(Frame::new(
                Venue::Okx,
                inst,
                venue_time_to_ns(self.msg.ts),
                ts_recv,
                Body::Quote(Quote {
                    bid_px,
                    bid_qty,
                    ask_px,
                    ask_qty,
                }),
            ));
        }
        Ok(())
    }

    fn on_tickers(
        &mut self,
        symbol: &str,
        data: &Array<'_, '_>,
        ts_recv: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        const M: &str = "tickers";
        let i = self.intern(symbol);
        for d in data.iter() {
            let [bp, bs, ap, as_, ts] = fields(&d, ["bidPx", "bidSz", "askPx", "askSz", "ts"]);
            // OKX sends "" for a side with no order.
            let bid = opt_decimal(bp, M, "bidPx")?;
            let bid_qty = opt_decimal(bs, M, "bidSz")?;
            let ask = opt_decimal(ap, M, "askPx")?;
            let ask_qty = opt_decimal(as_, M, "askSz")?;
            let ts = opt_ms(ts, M, "ts")?;
            self.emit_quote(i, [bid, bid_qty, ask, ask_qty], ts, ts_recv, out);
        }
        Ok(())
    }

    /// A ticker's quote: `[bid, bid size, ask, ask size]` as (value, decimals).
    fn emit_quote(
        &mut self,
        i: SymbolIndex,
        [bid, bid_qty, ask, ask_qty]: [(i64, u8); 4],
        ts: u64,
        ts_recv: u64,
        out: &mut Output,
    ) {
        let inst =
            self.symbols
                .announce(i, bid.1.max(ask.1), bid_qty.1.max(ask_qty.1), ts_recv, out);
        out.frames.push(Frame::new(
            Venue::Okx,
            inst,
            venue_time_to_ns(ts),
            ts_recv,
            Body::Quote(Quote {
                bid_px: bid.0,
                bid_qty: bid_qty.0,
                ask_px: ask.0,
                ask_qty: ask_qty.0,
            }),
        ));
    }

    fn on_trades(
        &mut self,
        m: &'static str,
        symbol: &str,
        data: &Array<'_, '_>,
        ts_recv: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        let i = self.intern(symbol);
        for d in data.iter() {
            let [id, px, sz, side, ts, count] =
                fields(&d, ["tradeId", "px", "sz", "side", "ts", "count"]);
            let id_text = req_str(id, m, "tradeId")?;
            let price = decimal(req_str(px, m, "px")?, m, "px")?;
            let qty = decimal(req_str(sz, m, "sz")?, m, "sz")?;
            let side = match req_str(side, m, "side")? {
                "buy" => Side::Buy,
                "sell" => Side::Sell,
                _ => {
                    return Err(NormalizeError::Field {
                        message: m,
                        field: "side",
                        expected: "\"buy\" or \"sell\"",
                    });
                }
            };
            let ts = opt_ms(ts, m, "ts")?;
            let count = match count {
                None => 1,
                Some(c) => c
                    .into_string()
                    .and_then(parse_u64)
                    .filter(|&c| c >= 1)
                    .ok_or(NormalizeError::Field {
                        message: m,
                        field: "count",
                        expected: "a string of a positive integer",
                    })?,
            };
            let f = TradeFields {
                id_text,
                id: parse_u64(id_text),
                price,
                qty,
                side,
                ts,
                count,
            };
            self.emit_trade(m, i, f, ts_recv, out);
        }
        Ok(())
    }

    /// One trade: duplicates dropped, id gaps reported, then the frame.
    fn emit_trade(
        &mut self,
        m: &'static str,
        i: SymbolIndex,
        f: TradeFields<'_>,
        ts_recv: u64,
        out: &mut Output,
    ) {
        let TradeFields {
            id_text,
            id,
            price,
            qty,
            side,
            ts,
            count,
        } = f;
        let trade_id = match id {
            Some(id) => {
                let first = id.saturating_sub(count - 1);
                let last = &mut self.state[i].last_trade_id;
                match *last {
                    Some(prev) if id <= prev => {
                        // Already emitted (OKX repeats the latest trade on subscribe).
                        self.stats.count("trades:duplicate");
                        return;
                    }
                    Some(prev) if first > prev.saturating_add(1) => {
                        *last = Some(id);
                        self.stats.gaps += 1;
                        let detail = format!(
                            "{m} ids {}..={} missing: those trades were not received",
                            prev + 1,
                            first - 1
                        );
                        self.symbols
                            .status(i, StatusCode::Gap, detail, false, ts_recv, out);
                    }
                    _ => *last = Some(id),
                }
                TradeId::Num(id)
            }
            None => TradeId::Text(id_text.to_string()),
        };
        let inst = self
            .symbols
            .announce(i, price.decimals, qty.decimals, ts_recv, out);
        out.frames.push(Frame::new(
            Venue::Okx,
            inst,
            venue_time_to_ns(ts),
            ts_recv,
            Body::Trade(Trade {
                price: price.value,
                qty: qty.value,
                side,
                trade_id,
            }),
        ));
    }
}

/// `{"arg":{"channel":"<channel>","instId":"<instId>"},`: (channel, instId).
fn fast_arg<'a>(c: &mut Cursor<'a>) -> Option<(&'a str, &'a str)> {
    c.lit(b"{\"arg\":{\"channel\":\"")?;
    let channel = c.str_body()?;
    c.lit(b",\"instId\":\"")?;
    let symbol = c.str_body()?;
    c.lit(b"},")?;
    Some((channel, symbol))
}

/// `"action":..,"data":[{"asks":[..],"bids":[..],"ts":"..","checksum":..[,"prevSeqId":..,"seqId":..]}]}`
/// into `msg` (bids first, as the tape path reads them); true for a snapshot.
fn fast_books(c: &mut Cursor<'_>, msg: &mut BookMsg) -> Option<bool> {
    c.lit(b"\"action\":\"")?;
    let snapshot = if c.opt_lit(b"update\"") {
        false
    } else if c.opt_lit(b"snapshot\"") {
        true
    } else {
        return None;
    };
    msg.levels.clear();
    msg.precision = Precision::default();
    c.lit(b",\"data\":[{\"asks\":")?;
    fast_text_levels(c, BookSide::Ask, msg)?;
    let asks = msg.levels.len();
    c.lit(b",\"bids\":")?;
    fast_text_levels(c, BookSide::Bid, msg)?;
    c.lit(b",\"ts\":")?;
    msg.ts = c.quoted_u64()?;
    c.lit(b",\"checksum\":")?;
    msg.checksum = Some(c.i64()?);
    if c.opt_lit(b",\"prevSeqId\":") {
        msg.prev_seq = Some(c.i64()?);
        c.lit(b",\"seqId\":")?;
        msg.seq = Some(c.i64()?);
    } else {
        msg.prev_seq = None;
        msg.seq = None;
    }
    c.lit(b"}]}")?;
    c.end()?;
    msg.levels.rotate_left(asks);
    Some(snapshot)
}

/// `[["px","sz","0","orders"], ...]` (further elements strings) appended to `msg.levels`.
fn fast_text_levels(c: &mut Cursor<'_>, side: BookSide, msg: &mut BookMsg) -> Option<()> {
    c.lit(b"[")?;
    if c.opt_lit(b"]") {
        return Some(());
    }
    loop {
        c.lit(b"[")?;
        let (p, pt) = c.dec_text()?;
        c.lit(b",")?;
        let (q, qt) = c.dec_text()?;
        while c.opt_lit(b",") {
            c.str()?;
        }
        c.lit(b"]")?;
        if p.value <= 0 || q.value < 0 {
            return None; // the tape path says what is wrong
        }
        msg.precision.see(&p, &q);
        msg.levels.push((side, TextLevel::new(p, q, pt, qt)));
        if c.opt_lit(b"]") {
            return Some(());
        }
        c.lit(b",")?;
    }
}

/// `"data":[{"instId":..,"tradeId":"..","px":..,"sz":..,"side":..[,"source":..],"ts":".."
/// [,"count":".."][,"source":..][,"seqId":..]}]}`.
fn fast_trade<'a>(c: &mut Cursor<'a>) -> Option<TradeFields<'a>> {
    c.lit(b"\"data\":[{\"instId\":")?;
    c.str()?;
    c.lit(b",\"tradeId\":\"")?;
    let id_text = c.str_body()?;
    let id = crate::layout::whole_u64(id_text.as_bytes())?;
    c.lit(b",\"px\":")?;
    let price = c.dec()?;
    c.lit(b",\"sz\":")?;
    let qty = c.dec()?;
    c.lit(b",\"side\":\"")?;
    let side = if c.opt_lit(b"buy\"") {
        Side::Buy
    } else if c.opt_lit(b"sell\"") {
        Side::Sell
    } else {
        return None;
    };
    let mut source = false;
    if c.opt_lit(b",\"source\":") {
        c.str()?;
        source = true;
    }
    c.lit(b",\"ts\":")?;
    let ts = c.quoted_u64()?;
    let mut count = 1;
    if c.opt_lit(b",\"count\":") {
        count = c.quoted_u64().filter(|&n| n >= 1)?;
    }
    if !source && c.opt_lit(b",\"source\":") {
        c.str()?;
    }
    if c.opt_lit(b",\"seqId\":") {
        c.i64()?;
    }
    c.lit(b"}]}")?;
    c.end()?;
    Some(TradeFields {
        id_text,
        id: Some(id),
        price,
        qty,
        side,
        ts,
        count,
    })
}

/// A ticker decimal; `""` (no order on that side) is 0.
fn fast_opt_dec(c: &mut Cursor<'_>) -> Option<(i64, u8)> {
    if c.opt_lit(b"\"\"") {
        return Some((0, 0));
    }
    let p = c.dec()?;
    Some((p.value, p.decimals))
}

/// `"data":[{"instType":..,"instId":..,"last":..,"lastSz":..,"askPx":..,"askSz":..,
/// "bidPx":..,"bidSz":..` then string fields the quote does not use, one of them `"ts"`, in
/// any order, then `}]}`: (bid, bid size, ask, ask size, ts).
#[allow(clippy::type_complexity)]
fn fast_ticker(c: &mut Cursor<'_>) -> Option<((i64, u8), (i64, u8), (i64, u8), (i64, u8), u64)> {
    c.lit(b"\"data\":[{\"instType\":")?;
    c.str()?;
    c.lit(b",\"instId\":")?;
    c.str()?;
    c.lit(b",\"last\":")?;
    c.str()?;
    c.lit(b",\"lastSz\":")?;
    c.str()?;
    c.lit(b",\"askPx\":")?;
    let ask = fast_opt_dec(c)?;
    c.lit(b",\"askSz\":")?;
    let ask_qty = fast_opt_dec(c)?;
    c.lit(b",\"bidPx\":")?;
    let bid = fast_opt_dec(c)?;
    c.lit(b",\"bidSz\":")?;
    let bid_qty = fast_opt_dec(c)?;
    let mut ts = None;
    while c.opt_lit(b",\"") {
        let key = c.str_body()?;
        c.lit(b":")?;
        match key {
            "ts" if ts.is_none() => ts = Some(c.quoted_u64()?),
            // A key the quote reads, twice: the tape path decides which counts.
            "ts" | "askPx" | "askSz" | "bidPx" | "bidSz" => return None,
            _ => {
                c.str()?;
            }
        }
    }
    c.lit(b"}]}")?;
    c.end()?;
    Some((bid, bid_qty, ask, ask_qty, ts?))
}

/// An OKX subscribe/unsubscribe request for one channel of one instrument.
/// Fields in the documented order (`op` first), strings JSON-escaped.
pub fn request(op: &str, channel: &str, inst_id: &str) -> String {
    let q = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    format!(
        "{{\"op\":{},\"args\":[{{\"channel\":{},\"instId\":{}}}]}}",
        q(op),
        q(channel),
        q(inst_id)
    )
}

/// Reads `[["px","sz","0","orders"], ...]` (extra elements ignored) into `msg.levels`.
fn text_levels(
    arr: &Array<'_, '_>,
    side: BookSide,
    m: &'static str,
    field: &'static str,
    msg: &mut BookMsg,
) -> Result<(), NormalizeError> {
    msg.levels.reserve(arr.len());
    for level in arr.iter() {
        let bad = || NormalizeError::Field {
            message: m,
            field,
            expected: "an array of [price, size, ...] string levels",
        };
        let l = level.as_array().ok_or_else(bad)?;
        let p = l.get(0).and_then(|x| x.into_string()).ok_or_else(bad)?;
        let q = l.get(1).and_then(|x| x.into_string()).ok_or_else(bad)?;
        let (pt, qt) = (p.as_bytes(), q.as_bytes());
        let p = decimal(p, m, field)?;
        let q = decimal(q, m, field)?;
        if p.value <= 0 || q.value < 0 {
            return Err(NormalizeError::Field {
                message: m,
                field,
                expected: "levels with a positive price and a non-negative size",
            });
        }
        msg.precision.see(&p, &q);
        msg.levels.push((side, TextLevel::new(p, q, pt, qt)));
    }
    Ok(())
}

/// Digits only, no sign, fits a u64.
fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// An optional millisecond timestamp sent as a string (`"1597026383085"`); 0 when absent.
fn opt_ms(
    slot: Option<Value<'_, '_>>,
    message: &'static str,
    field: &'static str,
) -> Result<u64, NormalizeError> {
    match slot {
        None => Ok(0),
        Some(v) => v
            .as_u64()
            .or_else(|| v.into_string().and_then(parse_u64))
            .ok_or(NormalizeError::Field {
                message,
                field,
                expected: "a timestamp in ms (digits, as a string)",
            }),
    }
}

/// An optional signed integer (a number, or digits in a string).
fn opt_i64(
    slot: Option<Value<'_, '_>>,
    message: &'static str,
    field: &'static str,
) -> Result<Option<i64>, NormalizeError> {
    match slot {
        None => Ok(None),
        Some(v) if v.is_null() => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.into_string().and_then(|s| s.parse().ok()))
            .map(Some)
            .ok_or(NormalizeError::Field {
                message,
                field,
                expected: "an integer",
            }),
    }
}

/// An optional decimal string; absent or `""` (no order on that side) is 0.
/// Returns (value, decimals).
fn opt_decimal(
    slot: Option<Value<'_, '_>>,
    message: &'static str,
    field: &'static str,
) -> Result<(i64, u8), NormalizeError> {
    match slot {
        None => Ok((0, 0)),
        Some(v) => {
            let s = v.into_string().ok_or(NormalizeError::Field {
                message,
                field,
                expected: "a decimal string",
            })?;
            if s.is_empty() {
                return Ok((0, 0));
            }
            let p = decimal(s, message, field)?;
            Ok((p.value, p.decimals))
        }
    }
}

impl Normalizer for OkxNormalizer {
    fn venue(&self) -> Venue {
        Venue::Okx
    }

    fn on_connect(&mut self, ts: u64, out: &mut Output) {
        // A new connection has its own request budget.
        self.resyncs.clear();
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
        // The keepalive answer is the bare text `pong`, not JSON.
        if raw.trim_ascii() == b"pong" {
            self.stats.count("pong");
            return Ok(());
        }
        self.read_message(raw, ts_recv, out)
    }

    fn on_snapshot(
        &mut self,
        symbol: &str,
        _raw: &[u8],
        _ts_recv: u64,
        _out: &mut Output,
    ) -> Result<(), NormalizeError> {
        // OKX books are synced over the WebSocket (a snapshot follows every subscribe); no
        // REST snapshot is ever requested.
        self.stats.refuse_snapshot(
            symbol,
            "OKX books sync from the WebSocket snapshot; REST snapshots are not used",
        )
    }

    fn on_stale(&mut self, ts: u64, detail: &str, out: &mut Output) {
        self.symbols.status_all(StatusCode::Stale, detail, ts, out);
    }

    fn on_disconnect(&mut self, ts: u64, reason: &str, out: &mut Output) {
        for i in 0..self.symbols.len() {
            let st = &mut self.state[i];
            let had_book = st.sync != Sync::NoBook;
            st.book.clear();
            st.sync = Sync::NoBook;
            st.last_seq = None;
            st.cross_ok = false;
            if had_book {
                st.flagged = true;
            }
            // Trades during the outage are lost; the next trade id shows the hole.
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

impl TwoPaths for OkxNormalizer {
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
