//! Binance spot (and USD-M futures) messages -> frames.
//!
//! Messages understood: combined-stream envelopes `{"stream":..,"data":..}` and raw-stream
//! payloads; `trade`, `aggTrade`, `bookTicker`, `depthUpdate`; REST depth snapshots
//! (`{"lastUpdateId":..}`); subscription replies and errors. Everything else is counted as
//! `ignored:<type>`.

use simd_json::prelude::*;
use simd_json::tape::Value;
use tickwire_sdk::wire::{
    Body, BookSnapshot, Frame, Parsed, Quote, Side, StatusCode, Trade, TradeId, Venue, flags,
};

use super::depth_sync::{DepthEvent, DepthSnapshot, DepthSync, Outcome, SyncRule};
use crate::clock::venue_time_to_ns;
use crate::json::{
    Precision, array_field, fields, levels, opt_u64, req_array, req_bool, req_decimal, req_str,
    req_u64, u64_field,
};
use crate::layout::Cursor;
use crate::normalizer::{Action, NormalizeError, Normalizer, Output, Paths, Stats, TwoPaths};
use crate::symbols::{SymbolIndex, SymbolTable};

/// Per-symbol state beyond the symbol table.
#[derive(Debug)]
struct SymbolState {
    /// Book sync, created at the first depth event.
    depth: Option<DepthSync>,
    /// The book was flagged bad (gap or disconnect); the next sync reports `Resynced`.
    book_flagged: bool,
    /// Last trade id (`t`) seen, to detect missed trades.
    last_trade_id: Option<u64>,
    /// Last aggregate trade id (`a`) seen.
    last_agg_id: Option<u64>,
}

impl SymbolState {
    fn new() -> SymbolState {
        SymbolState {
            depth: None,
            book_flagged: false,
            last_trade_id: None,
            last_agg_id: None,
        }
    }
}

/// The Binance normalizer with its book builders. One per upstream connection.
pub struct BinanceNormalizer {
    venue: Venue,
    rule: SyncRule,
    symbols: SymbolTable,
    state: Vec<SymbolState>,
    /// Fast path and tape parser.
    paths: Paths,
    stats: Stats,
    /// Scratch event reused for every depth update.
    scratch: DepthEvent,
}

/// A trade or aggTrade's fields, however they were read.
struct TradeFields<'a> {
    symbol: &'a str,
    id: u64,
    price: Parsed,
    qty: Parsed,
    /// `T`, else `E`, else 0 (venue units).
    time: u64,
    /// `m`.
    buyer_is_maker: bool,
}

/// A bookTicker's fields, however they were read.
struct QuoteFields<'a> {
    symbol: &'a str,
    bid: Parsed,
    bid_qty: Parsed,
    ask: Parsed,
    ask_qty: Parsed,
    /// `T`, else `E`, else 0 (venue units).
    time: u64,
}

/// Where a message came from, for the dispatcher.
enum Message {
    Trade { agg: bool },
    Depth,
    BookTicker,
    Snapshot,
    Reply,
    ServerShutdown,
    Ignored(String),
}

impl BinanceNormalizer {
    /// A Binance spot normalizer. `symbols` (venue spelling, e.g. `BTCUSDT`) are announced
    /// up front so connection statuses can name them; others are learned from the data.
    pub fn spot(symbols: &[String]) -> BinanceNormalizer {
        Self::with_rule(Venue::Binance, SyncRule::Spot, symbols)
    }

    /// A Binance USD-M futures normalizer (the `pu` continuity rule).
    pub fn usd_futures(symbols: &[String]) -> BinanceNormalizer {
        Self::with_rule(Venue::BinanceFutures, SyncRule::Futures, symbols)
    }

    fn with_rule(venue: Venue, rule: SyncRule, symbols: &[String]) -> BinanceNormalizer {
        let mut n = BinanceNormalizer {
            venue,
            rule,
            symbols: SymbolTable::new(venue),
            state: Vec::new(),
            paths: Paths::default(),
            stats: Stats::default(),
            scratch: DepthEvent::default(),
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

    /// The book of `symbol` if it is synced (for tests and the engine's checks).
    pub fn book(&self, symbol: &str) -> Option<&crate::book::OrderBook> {
        let i = self.symbols.find(symbol)?;
        self.state[i]
            .depth
            .as_ref()
            .filter(|d| d.is_live())
            .map(|d| d.book())
    }

    fn intern(&mut self, symbol: &str) -> SymbolIndex {
        let i = self.symbols.intern(symbol);
        if i == self.state.len() {
            self.state.push(SymbolState::new());
        }
        i
    }

    fn classify(stream: Option<&str>, data: &Value<'_, '_>, root: &Value<'_, '_>) -> Message {
        // One pass over the keys: the event type, or the keys that mark the untyped messages.
        let [e, last_update_id, u, b, a, big_b] =
            fields(data, ["e", "lastUpdateId", "u", "b", "a", "B"]);
        match e.and_then(|v| v.into_string()) {
            Some("trade") => Message::Trade { agg: false },
            Some("aggTrade") => Message::Trade { agg: true },
            Some("depthUpdate") => Message::Depth,
            Some("bookTicker") => Message::BookTicker,
            Some("serverShutdown") => Message::ServerShutdown,
            Some(other) => Message::Ignored(other.to_string()),
            None => {
                if last_update_id.is_some() {
                    // A bare snapshot is the REST reply; inside a stream envelope it is a
                    // partial book depth stream (`<symbol>@depth<levels>`), not handled here.
                    match stream {
                        None => Message::Snapshot,
                        Some(_) => Message::Ignored("partialDepth".into()),
                    }
                } else if u.is_some() && b.is_some() && a.is_some() && big_b.is_some() {
                    Message::BookTicker
                } else if root.contains_key("id")
                    || root.contains_key("result")
                    || root.contains_key("error")
                    || root.contains_key("code")
                {
                    Message::Reply
                } else {
                    Message::Ignored("unknown".into())
                }
            }
        }
    }

    fn on_trade(
        &mut self,
        d: &Value<'_, '_>,
        agg: bool,
        ts_recv: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        let msg = if agg { "aggTrade" } else { "trade" };
        let id_field = if agg { "a" } else { "t" };
        let [s, id, p, q, t, e, m] = fields(d, ["s", id_field, "p", "q", "T", "E", "m"]);
        let fields = TradeFields {
            symbol: req_str(s, msg, "s")?,
            id: req_u64(id, msg, id_field)?,
            price: req_decimal(p, msg, "p")?,
            qty: req_decimal(q, msg, "q")?,
            time: opt_u64(t, msg, "T")?.or(opt_u64(e, msg, "E")?).unwrap_or(0),
            buyer_is_maker: req_bool(m, msg, "m")?,
        };
        self.emit_trade(fields, agg, ts_recv, out);
        Ok(())
    }

    /// A parsed trade or aggTrade -> a Trade frame (and a Gap status if ids were skipped).
    fn emit_trade(&mut self, f: TradeFields<'_>, agg: bool, ts_recv: u64, out: &mut Output) {
        let msg = if agg { "aggTrade" } else { "trade" };
        let TradeFields {
            symbol,
            id,
            price,
            qty,
            time,
            buyer_is_maker,
        } = f;
        let i = self.intern(symbol);
        let inst = self
            .symbols
            .announce(i, price.decimals, qty.decimals, ts_recv, out);
        // Trade ids are consecutive per symbol: a jump means trades were missed.
        let last = if agg {
            &mut self.state[i].last_agg_id
        } else {
            &mut self.state[i].last_trade_id
        };
        let prev = last.replace(id.max(last.unwrap_or(0)));
        if let Some(prev) = prev
            && id > prev + 1
        {
            self.stats.gaps += 1;
            let detail = format!(
                "{msg} ids {}..={} missing: those trades were not received",
                prev + 1,
                id - 1
            );
            self.symbols
                .status(i, StatusCode::Gap, detail, false, ts_recv, out);
        }
        out.frames.push(Frame::new(
            self.venue,
            inst,
            venue_time_to_ns(time),
            ts_recv,
            Body::Trade(Trade {
                price: price.value,
                qty: qty.value,
                // `m`: the buyer is the maker, so the seller took liquidity.
                side: if buyer_is_maker {
                    Side::Sell
                } else {
                    Side::Buy
                },
                trade_id: TradeId::Num(id),
            }),
        ));
    }

    fn on_book_ticker(
        &mut self,
        d: &Value<'_, '_>,
        ts_recv: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        const M: &str = "bookTicker";
        let [s, b, bq, a, aq, t, e] = fields(d, ["s", "b", "B", "a", "A", "T", "E"]);
        let fields = QuoteFields {
            symbol: req_str(s, M, "s")?,
            bid: req_decimal(b, M, "b")?,
            bid_qty: req_decimal(bq, M, "B")?,
            ask: req_decimal(a, M, "a")?,
            ask_qty: req_decimal(aq, M, "A")?,
            // Spot bookTicker carries no time; futures carries E (event) and T (transaction).
            time: opt_u64(t, M, "T")?.or(opt_u64(e, M, "E")?).unwrap_or(0),
        };
        self.emit_quote(fields, ts_recv, out);
        Ok(())
    }

    /// A parsed bookTicker -> a Quote frame.
    fn emit_quote(&mut self, f: QuoteFields<'_>, ts_recv: u64, out: &mut Output) {
        let QuoteFields {
            symbol,
            bid,
            bid_qty,
            ask,
            ask_qty,
            time,
        } = f;
        let i = self.intern(symbol);
        let pd = bid.decimals.max(ask.decimals);
        let qd = bid_qty.decimals.max(ask_qty.decimals);
        let inst = self.symbols.announce(i, pd, qd, ts_recv, out);
        out.frames.push(Frame::new(
            self.venue,
            inst,
            venue_time_to_ns(time),
            ts_recv,
            Body::Quote(Quote {
                bid_px: bid.value,
                bid_qty: bid_qty.value,
                ask_px: ask.value,
                ask_qty: ask_qty.value,
            }),
        ));
    }

    /// Reads a depthUpdate into the scratch event; returns the symbol index and precision.
    fn parse_depth(
        &mut self,
        d: &Value<'_, '_>,
        ts_recv: u64,
    ) -> Result<(SymbolIndex, Precision), NormalizeError> {
        const M: &str = "depthUpdate";
        let [s, first, last, pu, t, e, b, a] = fields(d, ["s", "U", "u", "pu", "T", "E", "b", "a"]);
        let symbol = req_str(s, M, "s")?;
        let i = self.intern(symbol);
        let ev = &mut self.scratch;
        ev.first_id = req_u64(first, M, "U")?;
        ev.last_id = req_u64(last, M, "u")?;
        ev.prev_last_id = opt_u64(pu, M, "pu")?;
        ev.ts_exchange = venue_time_to_ns(opt_u64(t, M, "T")?.or(opt_u64(e, M, "E")?).unwrap_or(0));
        ev.ts_recv = ts_recv;
        ev.bids.clear();
        ev.asks.clear();
        let mut precision = Precision::default();
        levels(&req_array(b, M, "b")?, M, "b", &mut precision, &mut ev.bids)?;
        levels(&req_array(a, M, "a")?, M, "a", &mut precision, &mut ev.asks)?;
        if ev.first_id > ev.last_id {
            return Err(NormalizeError::Field {
                message: M,
                field: "U",
                expected: "a first update id not above the final one (`u`)",
            });
        }
        Ok((i, precision))
    }

    fn on_depth(
        &mut self,
        d: &Value<'_, '_>,
        ts_recv: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        let (i, precision) = match self.parse_depth(d, ts_recv) {
            Ok(x) => x,
            Err(e) => {
                // An update we cannot read leaves the book in doubt: break it, resync.
                if let Some(symbol) = d.get_str("s")
                    && let Some(i) = self.symbols.find(symbol)
                {
                    self.break_book(i, format!("unreadable depth update: {e}"), ts_recv, out);
                }
                return Err(e);
            }
        };
        self.apply_depth(i, precision, ts_recv, out);
        Ok(())
    }

    /// The depth update in `self.scratch` (symbol `i`) -> book sync -> frames.
    fn apply_depth(
        &mut self,
        i: SymbolIndex,
        precision: Precision,
        ts_recv: u64,
        out: &mut Output,
    ) {
        let inst = self
            .symbols
            .announce(i, precision.price, precision.qty, ts_recv, out);
        let rule = self.rule;
        let sync = self.state[i]
            .depth
            .get_or_insert_with(|| DepthSync::new(rule));
        let outcome = sync.on_event(&self.scratch);
        match outcome {
            Outcome::Applied => out.push_deltas(
                self.venue,
                inst,
                self.scratch.ts_exchange,
                self.scratch.ts_recv,
                &self.scratch.bids,
                &self.scratch.asks,
                0,
            ),
            Outcome::Buffered { request_snapshot } => {
                if request_snapshot {
                    self.request_snapshot(i, out);
                }
            }
            Outcome::Ignored | Outcome::SnapshotHeld | Outcome::SnapshotUnexpected => {}
            Outcome::SnapshotTooOld { .. } => {
                self.stats.count("snapshot:too_old");
                self.request_snapshot(i, out);
            }
            Outcome::Synced { .. } => self.emit_synced(i, ts_recv, out),
            Outcome::Gap { detail, applied } => {
                if applied {
                    out.push_deltas(
                        self.venue,
                        inst,
                        self.scratch.ts_exchange,
                        self.scratch.ts_recv,
                        &self.scratch.bids,
                        &self.scratch.asks,
                        flags::BAD_BOOK,
                    );
                }
                self.report_gap(i, detail, ts_recv, out);
            }
        }
    }

    /// Emits the Gap status and asks for a snapshot (the sync machine is already buffering).
    fn report_gap(&mut self, i: SymbolIndex, detail: String, ts: u64, out: &mut Output) {
        self.stats.gaps += 1;
        self.state[i].book_flagged = true;
        self.symbols
            .status(i, StatusCode::Gap, detail, true, ts, out);
        self.request_snapshot(i, out);
    }

    /// Forces symbol `i`'s book out of sync (unreadable update) and reports it.
    fn break_book(&mut self, i: SymbolIndex, detail: String, ts: u64, out: &mut Output) {
        let Some(sync) = self.state[i].depth.as_mut() else {
            return;
        };
        sync.reset();
        self.report_gap(i, detail, ts, out);
    }

    fn request_snapshot(&mut self, i: SymbolIndex, out: &mut Output) {
        out.actions.push(Action::FetchSnapshot {
            symbol: self.symbols.get(i).symbol.clone(),
        });
    }

    /// The book of `i` was just rebuilt: emit it whole, then `Resynced` if it had been flagged.
    fn emit_synced(&mut self, i: SymbolIndex, ts_recv: u64, out: &mut Output) {
        let Some(sync) = self.state[i].depth.as_ref() else {
            return;
        };
        let snapshot: BookSnapshot = sync.book().snapshot(None);
        let last_id = sync.last_id().unwrap_or(0);
        let inst = self.symbols.get(i).id;
        out.frames.push(
            Frame::new(
                self.venue,
                inst,
                self.scratch.ts_exchange,
                ts_recv,
                Body::BookSnapshot(snapshot),
            )
            .with_flags(flags::SNAPSHOT | flags::LAST),
        );
        self.stats.count("book:synced");
        if std::mem::take(&mut self.state[i].book_flagged) {
            self.symbols.status(
                i,
                StatusCode::Resynced,
                format!("book rebuilt from a snapshot; at update id {last_id}"),
                false,
                ts_recv,
                out,
            );
        }
    }

    fn parse_snapshot(d: &Value<'_, '_>) -> Result<(DepthSnapshot, Precision), NormalizeError> {
        const M: &str = "depth snapshot";
        let mut snap = DepthSnapshot {
            last_update_id: u64_field(d, M, "lastUpdateId")?,
            ..DepthSnapshot::default()
        };
        let mut precision = Precision::default();
        levels(
            &array_field(d, M, "bids")?,
            M,
            "bids",
            &mut precision,
            &mut snap.bids,
        )?;
        levels(
            &array_field(d, M, "asks")?,
            M,
            "asks",
            &mut precision,
            &mut snap.asks,
        )?;
        Ok((snap, precision))
    }

    fn apply_snapshot(
        &mut self,
        i: SymbolIndex,
        snap: DepthSnapshot,
        precision: Precision,
        ts_recv: u64,
        out: &mut Output,
    ) {
        self.symbols
            .announce(i, precision.price, precision.qty, ts_recv, out);
        let rule = self.rule;
        let sync = self.state[i]
            .depth
            .get_or_insert_with(|| DepthSync::new(rule));
        match sync.on_snapshot(snap) {
            Outcome::Synced { .. } => {
                self.scratch.ts_exchange = 0;
                self.emit_synced(i, ts_recv, out)
            }
            Outcome::SnapshotTooOld { .. } => {
                self.stats.count("snapshot:too_old");
                self.request_snapshot(i, out);
            }
            Outcome::SnapshotUnexpected => self.stats.count("snapshot:unexpected"),
            Outcome::Gap { detail, .. } => self.report_gap(i, detail, ts_recv, out),
            Outcome::SnapshotHeld
            | Outcome::Applied
            | Outcome::Buffered { .. }
            | Outcome::Ignored => {}
        }
    }

    /// The one symbol a bare snapshot can belong to: the only one waiting for a snapshot.
    fn snapshot_owner(&self) -> Result<SymbolIndex, NormalizeError> {
        let mut waiting = self
            .state
            .iter()
            .enumerate()
            .filter(|(_, s)| s.depth.as_ref().is_some_and(|d| !d.is_live()))
            .map(|(i, _)| i);
        match (waiting.next(), waiting.next()) {
            (Some(i), None) => Ok(i),
            (None, _) => Err(NormalizeError::Snapshot(
                "no symbol is waiting for a snapshot (the snapshot came before any depth update, or every book is synced)".into(),
            )),
            (Some(_), Some(_)) => Err(NormalizeError::Snapshot(
                "several symbols are waiting for a snapshot and the snapshot does not say which it is for; give it with its request URL".into(),
            )),
        }
    }

    /// The exact-layout fast path for the data messages (trade, aggTrade, depthUpdate,
    /// bookTicker, spot and futures layouts, raw or in a combined envelope). Returns false,
    /// having changed nothing but the scratch event, when the message is not exactly one of
    /// those layouts: the tape path then handles it.
    fn fast(&mut self, raw: &[u8], ts_recv: u64, out: &mut Output) -> bool {
        let mut c = Cursor::new(raw);
        let enveloped = c.opt_lit(b"{\"stream\":\"");
        if enveloped && (c.str_body().is_none() || c.lit(b",\"data\":").is_none()) {
            return false;
        }
        let done = |c: &mut Cursor<'_>| -> Option<()> {
            c.lit(b"}")?;
            if enveloped {
                c.lit(b"}")?;
            }
            c.end()
        };
        if c.opt_lit(b"{\"e\":\"trade\",\"E\":") {
            let Some(f) = fast_trade(&mut c, b"t", &done) else {
                return false;
            };
            self.stats.count("trade");
            self.emit_trade(f, false, ts_recv, out);
        } else if c.opt_lit(b"{\"e\":\"aggTrade\",\"E\":") {
            let Some(f) = fast_trade(&mut c, b"a", &done) else {
                return false;
            };
            self.stats.count("aggTrade");
            self.emit_trade(f, true, ts_recv, out);
        } else if c.opt_lit(b"{\"e\":\"depthUpdate\",\"E\":") {
            let Some((symbol, precision)) = fast_depth(&mut c, &mut self.scratch, &done) else {
                return false;
            };
            self.scratch.ts_recv = ts_recv;
            self.stats.count("depthUpdate");
            let i = self.intern(symbol);
            self.apply_depth(i, precision, ts_recv, out);
        } else if c.opt_lit(b"{\"u\":") {
            let Some(f) = fast_spot_ticker(&mut c, &done) else {
                return false;
            };
            self.stats.count("bookTicker");
            self.emit_quote(f, ts_recv, out);
        } else if c.opt_lit(b"{\"e\":\"bookTicker\",\"u\":") {
            let Some(f) = fast_futures_ticker(&mut c, &done) else {
                return false;
            };
            self.stats.count("bookTicker");
            self.emit_quote(f, ts_recv, out);
        } else {
            return false;
        }
        true
    }

    fn dispatch(
        &mut self,
        root: Value<'_, '_>,
        ts_recv: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        let (stream, data) = match root.get("data") {
            Some(data) if root.contains_key("stream") => (root.get_str("stream"), data),
            _ => (None, root),
        };
        match Self::classify(stream, &data, &root) {
            Message::Trade { agg } => {
                self.stats.count(if agg { "aggTrade" } else { "trade" });
                self.on_trade(&data, agg, ts_recv, out)
            }
            Message::BookTicker => {
                self.stats.count("bookTicker");
                self.on_book_ticker(&data, ts_recv, out)
            }
            Message::Depth => {
                self.stats.count("depthUpdate");
                self.on_depth(&data, ts_recv, out)
            }
            Message::Snapshot => {
                self.stats.count("snapshot");
                let (snap, precision) = Self::parse_snapshot(&data)?;
                let i = self.snapshot_owner()?;
                self.apply_snapshot(i, snap, precision, ts_recv, out);
                Ok(())
            }
            Message::Reply => {
                // {"result":null,"id":1} acknowledges; an error reply carries code/msg.
                let err = root.get("error").unwrap_or(root);
                if let Some(code) = err.get_i64("code") {
                    self.stats.count("reply:error");
                    let msg = err.get_str("msg").unwrap_or("");
                    return Err(NormalizeError::Venue(format!(
                        "request id {} refused: code {code}, {msg}",
                        root.get_u64("id")
                            .map_or("?".to_string(), |v| v.to_string())
                    )));
                }
                self.stats.count("reply");
                Ok(())
            }
            Message::ServerShutdown => {
                // Documented: the server is about to go away; reconnect now rather than
                // wait to be cut off.
                self.stats.count("serverShutdown");
                out.actions.push(Action::Reconnect {
                    reason: "venue announced serverShutdown".into(),
                });
                Ok(())
            }
            Message::Ignored(kind) => {
                self.stats.count(&format!("ignored:{kind}"));
                Ok(())
            }
        }
    }
}

/// `<E>,"s":..,"<id>":..,"p":..,"q":..[,"f":..,"l":..],"T":..,"m":..[,"M":..]` then the end.
fn fast_trade<'a>(
    c: &mut Cursor<'a>,
    id_key: &[u8],
    done: &dyn Fn(&mut Cursor<'a>) -> Option<()>,
) -> Option<TradeFields<'a>> {
    c.u64()?; // E: T is the trade time
    c.lit(b",\"s\":")?;
    let symbol = c.str()?;
    c.lit(b",\"")?;
    c.lit(id_key)?;
    c.lit(b"\":")?;
    let id = c.u64()?;
    c.lit(b",\"p\":")?;
    let price = c.dec()?;
    c.lit(b",\"q\":")?;
    let qty = c.dec()?;
    if id_key == b"a" {
        c.lit(b",\"f\":")?;
        c.u64()?;
        c.lit(b",\"l\":")?;
        c.u64()?;
    }
    c.lit(b",\"T\":")?;
    let time = c.u64()?;
    c.lit(b",\"m\":")?;
    let buyer_is_maker = c.bool()?;
    if c.opt_lit(b",\"M\":") {
        c.bool()?;
    }
    done(c)?;
    Some(TradeFields {
        symbol,
        id,
        price,
        qty,
        time,
        buyer_is_maker,
    })
}

/// `<E>[,"T":..],"s":..,"U":..,"u":..[,"pu":..],"b":[..],"a":[..]` then the end, into `ev`.
fn fast_depth<'a>(
    c: &mut Cursor<'a>,
    ev: &mut DepthEvent,
    done: &dyn Fn(&mut Cursor<'a>) -> Option<()>,
) -> Option<(&'a str, Precision)> {
    let event_time = c.u64()?;
    let time = if c.opt_lit(b",\"T\":") {
        c.u64()?
    } else {
        event_time
    };
    c.lit(b",\"s\":")?;
    let symbol = c.str()?;
    c.lit(b",\"U\":")?;
    let first_id = c.u64()?;
    c.lit(b",\"u\":")?;
    let last_id = c.u64()?;
    let prev_last_id = if c.opt_lit(b",\"pu\":") {
        Some(c.u64()?)
    } else {
        None
    };
    if first_id > last_id {
        return None; // the tape path reports it
    }
    let mut precision = Precision::default();
    c.lit(b",\"b\":")?;
    c.levels(&mut ev.bids, &mut precision.price, &mut precision.qty)?;
    c.lit(b",\"a\":")?;
    c.levels(&mut ev.asks, &mut precision.price, &mut precision.qty)?;
    done(c)?;
    ev.first_id = first_id;
    ev.last_id = last_id;
    ev.prev_last_id = prev_last_id;
    ev.ts_exchange = venue_time_to_ns(time);
    Some((symbol, precision))
}

/// Spot: `{"u":..,"s":..,"b":..,"B":..,"a":..,"A":..}` after `{"u":`.
fn fast_spot_ticker<'a>(
    c: &mut Cursor<'a>,
    done: &dyn Fn(&mut Cursor<'a>) -> Option<()>,
) -> Option<QuoteFields<'a>> {
    c.u64()?;
    c.lit(b",\"s\":")?;
    let symbol = c.str()?;
    let (bid, bid_qty, ask, ask_qty) = fast_bbo(c)?;
    done(c)?;
    Some(QuoteFields {
        symbol,
        bid,
        bid_qty,
        ask,
        ask_qty,
        time: 0,
    })
}

/// Futures: `{"e":"bookTicker","u":..,"E":..,"T":..,"s":..,"b":..,"B":..,"a":..,"A":..}`.
fn fast_futures_ticker<'a>(
    c: &mut Cursor<'a>,
    done: &dyn Fn(&mut Cursor<'a>) -> Option<()>,
) -> Option<QuoteFields<'a>> {
    c.u64()?;
    c.lit(b",\"E\":")?;
    c.u64()?;
    c.lit(b",\"T\":")?;
    let time = c.u64()?;
    c.lit(b",\"s\":")?;
    let symbol = c.str()?;
    let (bid, bid_qty, ask, ask_qty) = fast_bbo(c)?;
    done(c)?;
    Some(QuoteFields {
        symbol,
        bid,
        bid_qty,
        ask,
        ask_qty,
        time,
    })
}

/// `,"b":..,"B":..,"a":..,"A":..`
fn fast_bbo(c: &mut Cursor<'_>) -> Option<(Parsed, Parsed, Parsed, Parsed)> {
    c.lit(b",\"b\":")?;
    let bid = c.dec()?;
    c.lit(b",\"B\":")?;
    let bid_qty = c.dec()?;
    c.lit(b",\"a\":")?;
    let ask = c.dec()?;
    c.lit(b",\"A\":")?;
    let ask_qty = c.dec()?;
    Some((bid, bid_qty, ask, ask_qty))
}

impl Normalizer for BinanceNormalizer {
    fn venue(&self) -> Venue {
        self.venue
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
        raw: &[u8],
        ts_recv: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        self.stats.messages += 1;
        self.stats.count("snapshot");
        let before = out.frames.len();
        let i = self.intern(&symbol.to_ascii_uppercase());
        let mut parser = self.paths.parser_take();
        let parsed = parser
            .with(raw, |root| Self::parse_snapshot(&root))
            .and_then(|r| r);
        self.paths.parser_put(parser);
        let result = match parsed {
            Ok((snap, precision)) => {
                self.apply_snapshot(i, snap, precision, ts_recv, out);
                Ok(())
            }
            Err(e) => {
                if let Some(sync) = self.state[i].depth.as_mut() {
                    sync.snapshot_failed();
                }
                self.request_snapshot(i, out);
                self.stats.errors += 1;
                self.stats.count("error:snapshot");
                Err(e)
            }
        };
        self.stats.frames += (out.frames.len() - before) as u64;
        result
    }

    fn on_stale(&mut self, ts: u64, detail: &str, out: &mut Output) {
        self.symbols.status_all(StatusCode::Stale, detail, ts, out);
    }

    fn on_disconnect(&mut self, ts: u64, reason: &str, out: &mut Output) {
        for i in 0..self.symbols.len() {
            let st = &mut self.state[i];
            let had_book = st.depth.is_some();
            if let Some(sync) = st.depth.as_mut() {
                sync.reset();
                st.book_flagged = true;
            }
            // Trades during the outage are lost; the next trade id will show the hole.
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

impl TwoPaths for BinanceNormalizer {
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
