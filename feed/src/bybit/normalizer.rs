//! Bybit v5 public messages (spot and linear) -> frames.
//!
//! Topics understood (Bybit v5 docs, "WebSocket Stream > Public"):
//!
//! - `publicTrade.{symbol}`: `data` is an array of trades (`T`, `s`, `S` taker side, `v`, `p`,
//!   `i` trade id, `BT`, `RPI`, `seq`) -> one Trade each. Trade ids are strings: numeric on
//!   spot, UUIDs on linear; the docs promise no contiguity (and the `seq` is the cross
//!   sequence, shared by several messages), so missed trades cannot be detected and no trade
//!   gap is ever reported.
//! - `orderbook.{depth}.{symbol}`: `snapshot` / `delta` with `u`, `seq`, `ts`, `cts`. Depth 1
//!   is the top of book -> Quote frames. Any other depth -> BookSnapshot + BookDelta frames
//!   (the first such depth seen for a symbol owns its book; another one is counted as
//!   `ignored:orderbook:second_depth`). Integrity rule in [`super::book`]; on a break: a `Gap`
//!   status and an unsubscribe + subscribe of that one topic, `Resynced` after the fresh
//!   snapshot.
//! - `tickers.{symbol}`: linear `snapshot` + `delta` (a delta carries only the changed fields;
//!   the state is kept) -> a Quote whenever `bid1Price`/`bid1Size`/`ask1Price`/`ask1Size`
//!   change. Spot tickers carry no bid/ask: counted as `ignored:tickers`.
//! - control replies: `{"success":..,"ret_msg":..,"op":..}` for subscribe / unsubscribe
//!   (`success: false` is an error naming `ret_msg`), pongs in both the public shape
//!   (`"op":"ping","ret_msg":"pong"`) and the option/private shape (`"op":"pong"`).
//!
//! Every other topic is counted as `ignored:<topic name>` (`ignored:kline`...).

use simd_json::prelude::*;
use simd_json::tape::Value;
use tickwire_sdk::wire::{
    Body, BookSnapshot, Frame, Level, Parsed, Quote, Side, StatusCode, Trade, TradeId, Venue, flags,
};

use super::book::{BookEvent, EventKind, Outcome, TopicBook};
use crate::clock::venue_time_to_ns;
use crate::json::{Precision, decimal, fields, levels, req_array, req_decimal, req_str};
use crate::layout::Cursor;
use crate::normalizer::{Action, NormalizeError, Normalizer, Output, Paths, Stats, TwoPaths};
use crate::symbols::{SymbolIndex, SymbolTable};

/// Which Bybit v5 public market a connection carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Market {
    /// `/v5/public/spot`.
    Spot,
    /// `/v5/public/linear`: USDT/USDC perpetuals and futures.
    Linear,
}

impl Market {
    /// The tickwire venue id.
    pub fn venue(self) -> Venue {
        match self {
            Market::Spot => Venue::Bybit,
            Market::Linear => Venue::BybitLinear,
        }
    }

    /// The path segment (`spot`, `linear`).
    pub fn path(self) -> &'static str {
        match self {
            Market::Spot => "spot",
            Market::Linear => "linear",
        }
    }
}

/// The top of book as the ticker stream last said it (linear).
#[derive(Debug, Clone, Copy, Default)]
struct TickerTop {
    bid_px: Option<i64>,
    bid_qty: Option<i64>,
    ask_px: Option<i64>,
    ask_qty: Option<i64>,
}

/// Per-symbol state beyond the symbol table.
#[derive(Debug, Default)]
struct SymbolState {
    /// The book topic (depth > 1).
    book: Option<TopicBook>,
    /// `orderbook.1`: the top of book, for quotes.
    top: Option<TopicBook>,
    /// The last quote emitted from `orderbook.1` (to skip the unchanged re-sends).
    last_top: Option<Quote>,
    /// Ticker fields kept across deltas.
    ticker: Option<TickerTop>,
}

/// The Bybit v5 normalizer with its books. One per upstream connection.
pub struct BybitNormalizer {
    market: Market,
    symbols: SymbolTable,
    state: Vec<SymbolState>,
    /// Fast path and tape parser.
    paths: Paths,
    stats: Stats,
    /// Scratch event reused for every orderbook message.
    scratch: BookEvent,
    /// Resubscription requests sent, for their `req_id`.
    resyncs: u64,
}

/// One trade's fields, read by either path.
#[derive(Debug, Clone, Copy)]
struct TradeFields<'a> {
    symbol: &'a str,
    price: Parsed,
    qty: Parsed,
    side: Side,
    id: &'a str,
    time: u64,
}

/// Trades per `publicTrade` message the fast path reads (more go to the tape path).
const FAST_TRADES: usize = 8;

/// What a message is, from its first fields.
enum Message<'a> {
    Trade,
    Book { depth: u32 },
    Tickers,
    Reply,
    Ignored(&'a str),
}

/// Reads a time that Bybit sends as a number (documented) or as digits in a string (as the
/// orderbook page's reminder shows it).
fn time_field(slot: Option<Value<'_, '_>>) -> u64 {
    match slot {
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(0),
        None => 0,
    }
}

/// The best levels of a book as a quote (0 where a side is empty).
fn quote_of(book: &crate::book::OrderBook) -> Quote {
    let bid = book.best_bid().unwrap_or(Level { price: 0, qty: 0 });
    let ask = book.best_ask().unwrap_or(Level { price: 0, qty: 0 });
    Quote {
        bid_px: bid.price,
        bid_qty: bid.qty,
        ask_px: ask.price,
        ask_qty: ask.qty,
    }
}

impl BybitNormalizer {
    /// A normalizer for `market`. `symbols` (venue spelling, `BTCUSDT`) are announced up front
    /// so connection statuses can name them; others are learned from the data.
    pub fn new(market: Market, symbols: &[String]) -> BybitNormalizer {
        let mut n = BybitNormalizer {
            market,
            symbols: SymbolTable::new(market.venue()),
            state: Vec::new(),
            paths: Paths::default(),
            stats: Stats::default(),
            scratch: BookEvent::default(),
            resyncs: 0,
        };
        for s in symbols {
            n.intern(&s.to_ascii_uppercase());
        }
        n
    }

    /// A spot normalizer (`Venue::Bybit`).
    pub fn spot(symbols: &[String]) -> BybitNormalizer {
        Self::new(Market::Spot, symbols)
    }

    /// A linear normalizer (`Venue::BybitLinear`).
    pub fn linear(symbols: &[String]) -> BybitNormalizer {
        Self::new(Market::Linear, symbols)
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

    /// The exact-layout fast path for `orderbook.<depth>.<symbol>` (snapshot and delta) and
    /// `publicTrade.<symbol>`, spot and linear layouts. Returns false, having changed nothing
    /// but the scratch book event, when the message is not exactly such a message: the tape
    /// path then handles it.
    fn fast(&mut self, raw: &[u8], ts_recv: u64, out: &mut Output) -> bool {
        let mut c = Cursor::new(raw);
        if c.lit(b"{\"topic\":\"").is_none() {
            return false;
        }
        let Some(topic) = c.str_body() else {
            return false;
        };
        match Self::classify(Some(topic), false) {
            Message::Book { depth } => {
                let Some((symbol, precision)) = fast_book(&mut c, &mut self.scratch) else {
                    return false;
                };
                self.scratch.ts_recv = ts_recv;
                self.stats.count("orderbook");
                let i = self.intern(symbol);
                self.apply_book(topic, depth, i, precision, ts_recv, out);
            }
            Message::Trade => {
                let mut trades = [None; FAST_TRADES];
                let Some(n) = fast_trades(&mut c, &mut trades) else {
                    return false;
                };
                self.stats.count("publicTrade");
                for t in trades.into_iter().take(n).flatten() {
                    self.emit_trade(t, ts_recv, out);
                }
            }
            _ => return false,
        }
        true
    }

    /// The market.
    pub fn market(&self) -> Market {
        self.market
    }

    /// The book of `symbol` if it is good (for tests and the engine's checks).
    pub fn book(&self, symbol: &str) -> Option<&crate::book::OrderBook> {
        let i = self.symbols.find(symbol)?;
        self.state[i]
            .book
            .as_ref()
            .filter(|b| b.is_live())
            .map(|b| b.book())
    }

    fn intern(&mut self, symbol: &str) -> SymbolIndex {
        let i = self.symbols.intern(symbol);
        if i == self.state.len() {
            self.state.push(SymbolState::default());
        }
        i
    }

    fn classify<'a>(topic: Option<&'a str>, op: bool) -> Message<'a> {
        let Some(topic) = topic else {
            return if op {
                Message::Reply
            } else {
                Message::Ignored("unknown")
            };
        };
        let (name, rest) = topic.split_once('.').unwrap_or((topic, ""));
        match name {
            "publicTrade" => Message::Trade,
            "tickers" => Message::Tickers,
            "orderbook" => match rest.split_once('.').and_then(|(d, _)| d.parse().ok()) {
                Some(depth) => Message::Book { depth },
                // `orderbook.full.{symbol}` and anything else we do not speak.
                None => Message::Ignored("orderbook:other"),
            },
            other => Message::Ignored(other),
        }
    }

    fn on_trades(
        &mut self,
        data: Option<Value<'_, '_>>,
        ts_recv: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        const M: &str = "publicTrade";
        let data = req_array(data, M, "data")?;
        for t in data.iter() {
            let [s, side, v, p, i, time] = fields(&t, ["s", "S", "v", "p", "i", "T"]);
            let symbol = req_str(s, M, "s")?;
            let price = req_decimal(p, M, "p")?;
            let qty = req_decimal(v, M, "v")?;
            let side = match req_str(side, M, "S")? {
                "Buy" => Side::Buy,
                "Sell" => Side::Sell,
                _ => {
                    return Err(NormalizeError::Field {
                        message: M,
                        field: "S",
                        expected: "`Buy` or `Sell`",
                    });
                }
            };
            if price.value <= 0 || qty.value <= 0 {
                return Err(NormalizeError::Field {
                    message: M,
                    field: "p",
                    expected: "a positive price and size",
                });
            }
            let id = req_str(i, M, "i")?;
            let time = time_field(time);
            let f = TradeFields {
                symbol,
                price,
                qty,
                side,
                id,
                time,
            };
            self.emit_trade(f, ts_recv, out);
        }
        Ok(())
    }

    fn emit_trade(&mut self, f: TradeFields<'_>, ts_recv: u64, out: &mut Output) {
        let TradeFields {
            symbol,
            price,
            qty,
            side,
            id,
            time,
        } = f;
        // Spot ids are digits; linear ids are UUIDs.
        let trade_id = match id.parse::<u64>() {
            Ok(n) if !id.starts_with('+') => TradeId::Num(n),
            _ => TradeId::Text(id.to_string()),
        };
        let k = self.intern(symbol);
        let inst = self
            .symbols
            .announce(k, price.decimals, qty.decimals, ts_recv, out);
        out.frames.push(Frame::new(
            self.market.venue(),
            inst,
            venue_time_to_ns(time),
            ts_recv,
            Body::Trade(Trade {
                price: price.value,
                qty: qty.value,
                side,
                trade_id,
            }),
        ));
    }

    fn on_tickers(
        &mut self,
        kind: Option<&str>,
        ts: u64,
        data: Option<Value<'_, '_>>,
        ts_recv: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        const M: &str = "tickers";
        let Some(data) = data.filter(|d| d.as_object().is_some()) else {
            return Err(NormalizeError::Field {
                message: M,
                field: "data",
                expected: "an object",
            });
        };
        let [s, bp, bq, ap, aq] = fields(
            &data,
            ["symbol", "bid1Price", "bid1Size", "ask1Price", "ask1Size"],
        );
        let symbol = req_str(s, M, "symbol")?;
        let snapshot = match kind {
            Some("snapshot") => true,
            Some("delta") => false,
            _ => {
                return Err(NormalizeError::Field {
                    message: M,
                    field: "type",
                    expected: "`snapshot` or `delta`",
                });
            }
        };
        // An empty string means no level on that side.
        let read = |slot: Option<Value<'_, '_>>, field: &'static str| match slot {
            None => Ok(None),
            Some(v) => match v.as_str() {
                Some("") => Ok(Some((0, 0))),
                Some(text) => decimal(text, M, field).map(|p| Some((p.value, p.decimals))),
                None => Err(NormalizeError::Field {
                    message: M,
                    field,
                    expected: "a decimal string",
                }),
            },
        };
        let bp = read(bp, "bid1Price")?;
        let bq = read(bq, "bid1Size")?;
        let ap = read(ap, "ask1Price")?;
        let aq = read(aq, "ask1Size")?;
        let i = self.intern(symbol);
        let st = &mut self.state[i];
        if snapshot {
            st.ticker = Some(TickerTop::default());
        }
        let Some(top) = st.ticker.as_mut() else {
            // A delta before any snapshot: nothing to apply it to; the subscription's
            // snapshot comes first, so this only follows a reconnect race.
            self.stats.count("tickers:before_snapshot");
            return Ok(());
        };
        let changed = bp.is_some() || bq.is_some() || ap.is_some() || aq.is_some();
        top.bid_px = bp.map(|x| x.0).or(top.bid_px);
        top.bid_qty = bq.map(|x| x.0).or(top.bid_qty);
        top.ask_px = ap.map(|x| x.0).or(top.ask_px);
        top.ask_qty = aq.map(|x| x.0).or(top.ask_qty);
        let (Some(bid_px), Some(bid_qty), Some(ask_px), Some(ask_qty)) =
            (top.bid_px, top.bid_qty, top.ask_px, top.ask_qty)
        else {
            return Ok(());
        };
        if !changed {
            return Ok(());
        }
        let pd = bp.map_or(0, |x| x.1).max(ap.map_or(0, |x| x.1));
        let qd = bq.map_or(0, |x| x.1).max(aq.map_or(0, |x| x.1));
        let inst = self.symbols.announce(i, pd, qd, ts_recv, out);
        out.frames.push(Frame::new(
            self.market.venue(),
            inst,
            venue_time_to_ns(ts),
            ts_recv,
            Body::Quote(Quote {
                bid_px,
                bid_qty,
                ask_px,
                ask_qty,
            }),
        ));
        Ok(())
    }

    /// Reads an orderbook message into the scratch event; returns the symbol and precision.
    fn parse_book(
        &mut self,
        kind: Option<&str>,
        ts: u64,
        cts: u64,
        data: Option<Value<'_, '_>>,
        ts_recv: u64,
    ) -> Result<(SymbolIndex, Precision), NormalizeError> {
        const M: &str = "orderbook";
        let Some(data) = data else {
            return Err(NormalizeError::Field {
                message: M,
                field: "data",
                expected: "an object",
            });
        };
        let [s, u, seq, b, a] = fields(&data, ["s", "u", "seq", "b", "a"]);
        let symbol = req_str(s, M, "s")?;
        let i = self.intern(symbol);
        let ev = &mut self.scratch;
        ev.kind = match kind {
            Some("snapshot") => EventKind::Snapshot,
            Some("delta") => EventKind::Delta,
            _ => {
                return Err(NormalizeError::Field {
                    message: M,
                    field: "type",
                    expected: "`snapshot` or `delta`",
                });
            }
        };
        ev.u = u.and_then(|v| v.as_u64()).ok_or(NormalizeError::Field {
            message: M,
            field: "u",
            expected: "an unsigned integer",
        })?;
        ev.seq = seq.and_then(|v| v.as_u64());
        ev.ts_exchange = venue_time_to_ns(if cts != 0 { cts } else { ts });
        ev.ts_recv = ts_recv;
        ev.bids.clear();
        ev.asks.clear();
        let mut precision = Precision::default();
        levels(&req_array(b, M, "b")?, M, "b", &mut precision, &mut ev.bids)?;
        levels(&req_array(a, M, "a")?, M, "a", &mut precision, &mut ev.asks)?;
        Ok((i, precision))
    }

    #[allow(clippy::too_many_arguments)]
    fn on_book(
        &mut self,
        topic: &str,
        depth: u32,
        kind: Option<&str>,
        ts: u64,
        cts: u64,
        data: Option<Value<'_, '_>>,
        ts_recv: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        let top = depth == 1;
        let (i, precision) = match self.parse_book(kind, ts, cts, data, ts_recv) {
            Ok(x) => x,
            Err(e) => {
                // An update we cannot read leaves the book in doubt: break it, resync.
                let symbol = data.as_ref().and_then(|d| d.get_str("s"));
                if let Some(i) = symbol.and_then(|s| self.symbols.find(s)) {
                    let st = &mut self.state[i];
                    let tb = if top {
                        st.top.as_mut()
                    } else {
                        st.book.as_mut()
                    };
                    if let Some(tb) = tb.filter(|tb| tb.topic == topic)
                        && tb.force_break()
                    {
                        let detail = format!("{topic}: unreadable update: {e}");
                        self.report_break(i, top, detail, ts_recv, out);
                    }
                }
                return Err(e);
            }
        };
        self.apply_book(topic, depth, i, precision, ts_recv, out);
        Ok(())
    }

    /// Applies the scratch event (read by either path) to the book of `i`.
    fn apply_book(
        &mut self,
        topic: &str,
        depth: u32,
        i: SymbolIndex,
        precision: Precision,
        ts_recv: u64,
        out: &mut Output,
    ) {
        let top = depth == 1;
        let st = &mut self.state[i];
        let slot = if top { &mut st.top } else { &mut st.book };
        let tb = slot.get_or_insert_with(|| TopicBook::new(topic, depth));
        if tb.depth != depth {
            self.stats.count("ignored:orderbook:second_depth");
            return;
        }
        let inst = self
            .symbols
            .announce(i, precision.price, precision.qty, ts_recv, out);
        let outcome = tb.on_event(&self.scratch);
        let venue = self.market.venue();
        match outcome {
            Outcome::Replaced {
                restart,
                unchanged,
                resynced,
            } => {
                if restart {
                    self.stats.count("orderbook:restart");
                }
                if unchanged {
                    // Level 1's re-send after 3 s without change (same `u`).
                    self.stats.count("orderbook:unchanged");
                }
                if top {
                    // Skips the quote if equal to the last one (the unchanged re-send).
                    self.emit_top(i, inst, out);
                } else {
                    let snapshot: BookSnapshot = tb.book().snapshot(None);
                    out.frames.push(
                        Frame::new(
                            venue,
                            inst,
                            self.scratch.ts_exchange,
                            ts_recv,
                            Body::BookSnapshot(snapshot),
                        )
                        .with_flags(flags::SNAPSHOT | flags::LAST),
                    );
                    self.stats.count("book:synced");
                }
                if resynced {
                    let u = self.scratch.u;
                    self.symbols.status(
                        i,
                        StatusCode::Resynced,
                        format!("{topic}: rebuilt from a fresh snapshot at u={u}"),
                        false,
                        ts_recv,
                        out,
                    );
                }
            }
            Outcome::Applied => {
                if top {
                    self.emit_top(i, inst, out);
                } else {
                    out.push_deltas(
                        venue,
                        inst,
                        self.scratch.ts_exchange,
                        self.scratch.ts_recv,
                        &self.scratch.bids,
                        &self.scratch.asks,
                        0,
                    );
                }
            }
            Outcome::Dropped => self.stats.count("orderbook:dropped"),
            Outcome::Break { detail, applied } => {
                if applied && !top {
                    out.push_deltas(
                        venue,
                        inst,
                        self.scratch.ts_exchange,
                        self.scratch.ts_recv,
                        &self.scratch.bids,
                        &self.scratch.asks,
                        flags::BAD_BOOK,
                    );
                }
                self.report_break(i, top, detail, ts_recv, out);
            }
        }
    }

    /// A Quote from the `orderbook.1` book of `i`, unless it equals the last one.
    fn emit_top(&mut self, i: SymbolIndex, inst: u32, out: &mut Output) {
        let st = &mut self.state[i];
        let Some(tb) = st.top.as_ref() else { return };
        let q = quote_of(tb.book());
        if st.last_top == Some(q) {
            return;
        }
        st.last_top = Some(q);
        out.frames.push(Frame::new(
            self.market.venue(),
            inst,
            self.scratch.ts_exchange,
            self.scratch.ts_recv,
            Body::Quote(q),
        ));
    }

    /// Reports a break of symbol `i`'s book (or top-of-book) topic and resubscribes it.
    fn report_break(
        &mut self,
        i: SymbolIndex,
        top: bool,
        detail: String,
        ts: u64,
        out: &mut Output,
    ) {
        self.stats.gaps += 1;
        let st = &mut self.state[i];
        let tb = if top {
            st.top.as_ref()
        } else {
            st.book.as_ref()
        };
        let Some(topic) = tb.map(|t| t.topic.clone()) else {
            return;
        };
        if top {
            st.last_top = None;
        }
        // The top-of-book topic feeds quotes, not the book: its break does not flag the book.
        self.symbols
            .status(i, StatusCode::Gap, detail, !top, ts, out);
        self.resyncs += 1;
        let n = self.resyncs;
        out.actions.push(Action::Send(format!(
            "{{\"op\":\"unsubscribe\",\"args\":[\"{topic}\"],\"req_id\":\"resync-{n}-unsub\"}}"
        )));
        out.actions.push(Action::Send(format!(
            "{{\"op\":\"subscribe\",\"args\":[\"{topic}\"],\"req_id\":\"resync-{n}-sub\"}}"
        )));
    }

    fn on_reply(&mut self, root: &Value<'_, '_>) -> Result<(), NormalizeError> {
        let [op, success, ret_msg, req_id] = fields(root, ["op", "success", "ret_msg", "req_id"]);
        let op = op.and_then(|v| v.into_string()).unwrap_or("");
        let ret_msg = ret_msg.and_then(|v| v.into_string()).unwrap_or("");
        // Public pong: {"success":true,"ret_msg":"pong","op":"ping",..};
        // option / private pong: {"op":"pong","args":[..],..}.
        if op == "pong" || (op == "ping" && ret_msg == "pong") {
            self.stats.count("pong");
            return Ok(());
        }
        match success.and_then(|v| v.as_bool()) {
            Some(false) => {
                self.stats.count("reply:error");
                let req_id = req_id.and_then(|v| v.into_string()).unwrap_or("");
                Err(NormalizeError::Venue(format!(
                    "{op} refused (req_id {req_id:?}): {ret_msg}"
                )))
            }
            Some(true) => {
                self.stats.count(match op {
                    "subscribe" => "reply:subscribe",
                    "unsubscribe" => "reply:unsubscribe",
                    _ => "reply:other",
                });
                Ok(())
            }
            None => {
                self.stats.count("ignored:op");
                Ok(())
            }
        }
    }

    fn dispatch(
        &mut self,
        root: Value<'_, '_>,
        ts_recv: u64,
        out: &mut Output,
    ) -> Result<(), NormalizeError> {
        if root.as_object().is_none() {
            self.stats.count("ignored:not_an_object");
            return Ok(());
        }
        let [topic, kind, ts, cts, data, op] =
            fields(&root, ["topic", "type", "ts", "cts", "data", "op"]);
        let topic = topic.and_then(|v| v.into_string());
        let kind = kind.and_then(|v| v.into_string());
        match Self::classify(topic, op.is_some()) {
            Message::Trade => {
                self.stats.count("publicTrade");
                self.on_trades(data, ts_recv, out)
            }
            Message::Book { depth } => {
                self.stats.count("orderbook");
                let topic = topic.unwrap_or("");
                let (ts, cts) = (time_field(ts), time_field(cts));
                self.on_book(topic, depth, kind, ts, cts, data, ts_recv, out)
            }
            Message::Tickers => match self.market {
                // Spot tickers carry no bid/ask: nothing for a Quote.
                Market::Spot => {
                    self.stats.count("ignored:tickers");
                    Ok(())
                }
                Market::Linear => {
                    self.stats.count("tickers");
                    self.on_tickers(kind, time_field(ts), data, ts_recv, out)
                }
            },
            Message::Reply => self.on_reply(&root),
            Message::Ignored(kind) => {
                self.stats.count(&format!("ignored:{kind}"));
                Ok(())
            }
        }
    }
}

/// After the topic: `,"type":..,"ts":..` (either order), `,"data":{"s":..,"b":[..],"a":[..],"u":..[,"seq":..]}`
/// then `,"cts":..` and the end, into `ev` (all but `ts_recv`): (symbol, precision).
fn fast_book<'a>(c: &mut Cursor<'a>, ev: &mut BookEvent) -> Option<(&'a str, Precision)> {
    let (mut kind, mut ts) = (None, None);
    while kind.is_none() || ts.is_none() {
        if kind.is_none() && c.opt_lit(b",\"type\":\"") {
            kind = Some(if c.opt_lit(b"delta\"") {
                EventKind::Delta
            } else if c.opt_lit(b"snapshot\"") {
                EventKind::Snapshot
            } else {
                return None;
            });
        } else if ts.is_none() && c.opt_lit(b",\"ts\":") {
            ts = Some(c.u64()?);
        } else {
            return None;
        }
    }
    let (Some(kind), Some(ts)) = (kind, ts) else {
        return None;
    };
    ev.kind = kind;
    c.lit(b",\"data\":{\"s\":")?;
    let symbol = c.str()?;
    let mut precision = Precision::default();
    c.lit(b",\"b\":")?;
    fast_levels(c, &mut ev.bids, &mut precision)?;
    c.lit(b",\"a\":")?;
    fast_levels(c, &mut ev.asks, &mut precision)?;
    c.lit(b",\"u\":")?;
    ev.u = c.u64()?;
    ev.seq = if c.opt_lit(b",\"seq\":") {
        Some(c.u64()?)
    } else {
        None
    };
    c.lit(b"}")?;
    let cts = if c.opt_lit(b",\"cts\":") { c.u64()? } else { 0 };
    c.lit(b"}")?;
    c.end()?;
    ev.ts_exchange = venue_time_to_ns(if cts != 0 { cts } else { ts });
    Some((symbol, precision))
}

/// `[["price","size"], ...]` into `out` (cleared first), as [`Cursor::levels`] reads it, the
/// decimals through [`Cursor::dec`].
fn fast_levels(c: &mut Cursor<'_>, out: &mut Vec<Level>, precision: &mut Precision) -> Option<()> {
    out.clear();
    c.lit(b"[")?;
    if c.opt_lit(b"]") {
        return Some(());
    }
    loop {
        c.lit(b"[")?;
        let price = c.dec()?;
        c.lit(b",")?;
        let qty = c.dec()?;
        c.lit(b"]")?;
        if price.value <= 0 || qty.value < 0 {
            return None; // the tape path says what is wrong
        }
        precision.see(&price, &qty);
        out.push(Level {
            price: price.value,
            qty: qty.value,
        });
        if c.opt_lit(b"]") {
            return Some(());
        }
        c.lit(b",")?;
    }
}

/// After the topic: `,"type":"snapshot","ts":..` (either order), `,"data":[` trades `]}`.
/// A trade is an object of `"key":value` pairs, the values strings, booleans or unsigned
/// integers, with `T`, `s`, `S`, `v`, `p`, `i` each exactly once (spot and linear order them
/// differently). At most [`FAST_TRADES`] trades, stored in `out`; returns how many.
fn fast_trades<'a>(
    c: &mut Cursor<'a>,
    out: &mut [Option<TradeFields<'a>>; FAST_TRADES],
) -> Option<usize> {
    let (mut kind, mut ts) = (false, false);
    loop {
        if !kind && c.opt_lit(b",\"type\":\"snapshot\"") {
            kind = true;
        } else if !ts && c.opt_lit(b",\"ts\":") {
            c.u64()?;
            ts = true;
        } else {
            break;
        }
    }
    c.lit(b",\"data\":[")?;
    let mut n = 0;
    loop {
        if n == FAST_TRADES {
            return None;
        }
        out[n] = Some(fast_trade(c)?);
        n += 1;
        if c.opt_lit(b"]}") {
            break;
        }
        c.lit(b",")?;
    }
    c.end()?;
    Some(n)
}

/// One `publicTrade` trade object (see [`fast_trades`]).
fn fast_trade<'a>(c: &mut Cursor<'a>) -> Option<TradeFields<'a>> {
    let (mut time, mut symbol, mut side, mut qty, mut price, mut id) =
        (None, None, None, None, None, None);
    c.lit(b"{")?;
    loop {
        c.lit(b"\"")?;
        let key = c.str_body()?;
        c.lit(b":")?;
        match key {
            "T" if time.is_none() => time = Some(c.u64()?),
            "s" if symbol.is_none() => symbol = Some(c.str()?),
            "S" if side.is_none() => {
                side = Some(if c.opt_lit(b"\"Buy\"") {
                    Side::Buy
                } else if c.opt_lit(b"\"Sell\"") {
                    Side::Sell
                } else {
                    return None;
                })
            }
            "v" if qty.is_none() => qty = Some(c.dec()?),
            "p" if price.is_none() => price = Some(c.dec()?),
            "i" if id.is_none() => id = Some(c.str()?),
            // Read twice: the tape path decides which counts.
            "T" | "s" | "S" | "v" | "p" | "i" => return None,
            _ => {
                if c.peek(b"\"") {
                    c.str()?;
                } else if c.bool().is_none() {
                    c.u64()?;
                }
            }
        }
        if c.opt_lit(b"}") {
            break;
        }
        c.lit(b",")?;
    }
    let (price, qty): (Parsed, Parsed) = (price?, qty?);
    if price.value <= 0 || qty.value <= 0 {
        return None; // the tape path says what is wrong
    }
    Some(TradeFields {
        symbol: symbol?,
        price,
        qty,
        side: side?,
        id: id?,
        time: time?,
    })
}

impl Normalizer for BybitNormalizer {
    fn venue(&self) -> Venue {
        self.market.venue()
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
            "Bybit books are built from the WebSocket snapshot; no REST snapshot is used",
        )
    }

    fn on_stale(&mut self, ts: u64, detail: &str, out: &mut Output) {
        self.symbols.status_all(StatusCode::Stale, detail, ts, out);
    }

    fn on_disconnect(&mut self, ts: u64, reason: &str, out: &mut Output) {
        for i in 0..self.symbols.len() {
            let st = &mut self.state[i];
            let had_book = st.book.as_mut().is_some_and(|b| b.disconnect());
            // The top-of-book topic starts afresh: quotes have no bad state to report.
            st.top = None;
            st.last_top = None;
            st.ticker = None;
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

impl TwoPaths for BybitNormalizer {
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
