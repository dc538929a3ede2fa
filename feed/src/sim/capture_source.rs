//! The capture source: replays recorded Binance spot frames (hftbacktest `<ns> <frame>` lines,
//! cryptofeed captures, bare frames; plain or gzip) as the exchange would send them.
//!
//! - Loading ([`load_tape`]): every file is parsed with serde_json into a [`Tape`] of typed
//!   items, several files merged by receive time. Trades, aggTrades, bookTickers and depth
//!   updates are kept; REST depth snapshots seed the books (a snapshot with no `symbol=` in its
//!   URL is given to the symbol whose diff stream it bridges). Other frames are skipped.
//! - Replay ([`CapturePlayer`]): a symbol's book is known from its snapshot on, bridged to the
//!   diffs already sent exactly as Binance's documented procedure does it. Depth ids are kept
//!   contiguous per symbol: a hole in the capture's `U`/`u` chain is closed by renumbering the
//!   following ids (logged), so the sim's book is always "snapshot + every diff it sent".
//! - Looping: the replay restarts at the first item after the last symbol's snapshot bridge.
//!   Before it, one bridging `depthUpdate` per symbol turns the end-of-capture book into the
//!   loop-start book (and a `bookTicker` gives its top); update ids (`U`, `u`, bookTicker `u`)
//!   and trade ids are shifted so that they keep increasing without a hole.
//! - Streams: captured depth updates are sent on `@depth@100ms` and merged per second of
//!   simulated time into `@depth`. A symbol with trades but no aggTrades in the capture gets
//!   one derived aggTrade per trade (`a` = `f` = `l` = the trade id); a capture with aggTrades
//!   only replays them and sends nothing on `@trade`.

use std::collections::{HashMap, VecDeque};

use serde_json::Value;
use thiserror::Error;
use tickwire_sdk::wire::{BookSide, Level, parse_decimal};
use tracing::{debug, warn};

use super::market::{DepthDiff, DepthSnapshot, DepthUpdate, Emitted, Event, apply, bridge, top};
use super::stream::{StreamKey, StreamKind, SymbolId, valid_symbol_text};
use crate::book::OrderBook;
use crate::capture::{CaptureError, CaptureReader, Record, RecordKind};

/// Simulated time between the last item of a loop and the first item of the next, in ns.
pub const LOOP_GAP_NS: u64 = 100_000_000;
const NS_1S: u64 = 1_000_000_000;
/// Most diffs kept per symbol while its book is not known (older ones are dropped; a REST
/// snapshot that needs them then cannot be bridged and is skipped with a warning).
pub const MAX_BUFFERED_DIFFS: usize = 20_000;

/// What one captured item is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TapeKind {
    /// A diff-depth update (ids as captured).
    Depth(DepthUpdate),
    /// A trade.
    Trade {
        /// Trade id as captured.
        id: u64,
        /// Price, 1e-9 units.
        price: i64,
        /// Quantity, 1e-9 units.
        qty: i64,
        /// The buyer was the maker.
        buyer_maker: bool,
    },
    /// An aggregated trade.
    AggTrade {
        /// Aggregate trade id as captured.
        id: u64,
        /// First trade id.
        first_trade: u64,
        /// Last trade id.
        last_trade: u64,
        /// Price, 1e-9 units.
        price: i64,
        /// Quantity, 1e-9 units.
        qty: i64,
        /// The buyer was the maker.
        buyer_maker: bool,
    },
    /// A best bid/ask update.
    BookTicker {
        /// Update id as captured.
        update_id: u64,
        /// Best bid.
        bid: Level,
        /// Best ask.
        ask: Level,
    },
    /// A REST depth snapshot.
    Snapshot {
        /// `lastUpdateId` as captured.
        last_update_id: u64,
        /// Bids, as captured.
        bids: Vec<Level>,
        /// Asks, as captured.
        asks: Vec<Level>,
    },
}

/// One captured item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapeItem {
    /// Receive time, ns since the epoch (0 if the capture has none; such items keep the time
    /// of the item before them in their file).
    pub ts: u64,
    /// Index into [`Tape::symbols`].
    pub sym: usize,
    /// What it is.
    pub kind: TapeKind,
}

/// A symbol seen in a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapeSymbol {
    /// Upper-case symbol.
    pub symbol: String,
    /// Price tick inferred from the prices seen (finest decimal place used), 1e-9 units.
    pub tick: i64,
    /// Quantity step inferred likewise, 1e-9 units.
    pub step: i64,
    /// Whether the capture has aggTrades for it (else they are derived from trades).
    pub has_agg_trades: bool,
}

/// A loaded capture: items in receive-time order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tape {
    /// The symbols, indexed by [`TapeItem::sym`].
    pub symbols: Vec<TapeSymbol>,
    /// The items, by receive time (stable for equal times).
    pub items: Vec<TapeItem>,
}

/// Why a capture could not be loaded.
#[derive(Debug, Error)]
pub enum LoadError {
    /// A file could not be read.
    #[error("cannot read capture: {0}")]
    Read(#[from] CaptureError),
    /// Nothing usable was found.
    #[error(
        "{0}: no Binance spot events found (expected trade, aggTrade, bookTicker or depthUpdate frames, \
         bare or in combined-stream envelopes, optionally after `<ns> ` or `<secs>: ` receive times)"
    )]
    Empty(String),
}

/// Loads and merges captures (each a name for messages and a reader) into one [`Tape`].
/// Lines that are not understood are skipped and counted (the first few are logged).
pub fn load_tape(inputs: Vec<(String, CaptureReader)>) -> Result<Tape, LoadError> {
    let names: Vec<String> = inputs.iter().map(|(n, _)| n.clone()).collect();
    let mut builder = TapeBuilder::default();
    for (file_no, (name, reader)) in inputs.into_iter().enumerate() {
        let mut last_ts = 0;
        for record in reader {
            let record = match record {
                Ok(r) => r,
                Err(CaptureError::Format {
                    path,
                    line,
                    snippet,
                }) => {
                    builder.skip(&format!("{path}:{line}: not a capture line: {snippet}"));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let ts = record.ts_ns.unwrap_or(last_ts);
            last_ts = ts;
            builder.record(&name, file_no, ts, &record);
        }
    }
    if builder.skipped > 0 {
        warn!(
            skipped = builder.skipped,
            "capture: {} lines skipped (not Binance spot events)", builder.skipped
        );
    }
    let tape = builder.finish();
    if tape
        .items
        .iter()
        .all(|i| matches!(i.kind, TapeKind::Snapshot { .. }))
    {
        return Err(LoadError::Empty(names.join(", ")));
    }
    Ok(tape)
}

/// The symbols a capture names (upper case, first-seen order), found by a cheap scan of the
/// frames (`"s":"..."`, combined stream names, REST snapshot URLs) without parsing them.
/// Lines that cannot be read end the scan of that capture.
pub fn scan_symbols(readers: Vec<CaptureReader>) -> Vec<String> {
    fn after<'a>(hay: &'a [u8], needle: &[u8]) -> Option<&'a [u8]> {
        let i = hay.windows(needle.len()).position(|w| w == needle)?;
        Some(&hay[i + needle.len()..])
    }
    let mut out: Vec<String> = Vec::new();
    for reader in readers {
        for record in reader {
            let Ok(record) = record else { break };
            let name = match &record.kind {
                RecordKind::Http { .. } => record.url_symbol().map(str::to_string),
                RecordKind::Received => {
                    let p = &record.payload;
                    let field = after(p, b"\"s\":\"")
                        .map(|rest| rest.split(|&c| c == b'"').next().unwrap_or_default());
                    let stream = || {
                        after(p, b"\"stream\":\"")
                            .map(|rest| rest.split(|&c| c == b'@').next().unwrap_or_default())
                    };
                    field
                        .or_else(stream)
                        .map(|b| String::from_utf8_lossy(b).to_ascii_uppercase())
                }
                _ => None,
            };
            if let Some(n) = name
                && valid_symbol_text(&n)
                && !out.contains(&n)
            {
                out.push(n);
            }
        }
    }
    out
}

#[derive(Default)]
struct TapeBuilder {
    symbols: Vec<TapeSymbol>,
    by_name: HashMap<String, usize>,
    /// (ts, file, sequence, symbol or None for unattributed snapshots, kind)
    raw: Vec<(u64, usize, usize, Option<usize>, TapeKind)>,
    tick_gran: Vec<i64>,
    step_gran: Vec<i64>,
    skipped: u64,
}

impl TapeBuilder {
    fn skip(&mut self, why: &str) {
        self.skipped += 1;
        if self.skipped <= 5 {
            debug!("capture: skipped {why}");
        }
    }

    fn symbol(&mut self, name: &str) -> Option<usize> {
        let upper = name.to_ascii_uppercase();
        if !valid_symbol_text(&upper) {
            return None;
        }
        if let Some(&i) = self.by_name.get(&upper) {
            return Some(i);
        }
        let i = self.symbols.len();
        self.symbols.push(TapeSymbol {
            symbol: upper.clone(),
            tick: 0,
            step: 0,
            has_agg_trades: false,
        });
        self.tick_gran.push(i64::MAX);
        self.step_gran.push(i64::MAX);
        self.by_name.insert(upper, i);
        Some(i)
    }

    fn record(&mut self, name: &str, file: usize, ts: u64, record: &Record) {
        let url_symbol = match &record.kind {
            RecordKind::Received => None,
            RecordKind::Http { .. } => record.url_symbol().map(str::to_string),
            RecordKind::Sent { .. } | RecordKind::Connect { .. } => return,
        };
        let value: Value = match serde_json::from_slice(&record.payload) {
            Ok(v) => v,
            Err(e) => {
                self.skip(&format!("{name}:{}: invalid JSON: {e}", record.line));
                return;
            }
        };
        match parse_frame(&value) {
            Ok(Some((sym_name, kind))) => {
                let sym_name = sym_name.or(url_symbol);
                let sym = match sym_name {
                    Some(s) => match self.symbol(&s) {
                        Some(i) => Some(i),
                        None => {
                            self.skip(&format!("{name}:{}: bad symbol {s:?}", record.line));
                            return;
                        }
                    },
                    None if matches!(kind, TapeKind::Snapshot { .. }) => None,
                    None => {
                        self.skip(&format!("{name}:{}: event without a symbol", record.line));
                        return;
                    }
                };
                if let Some(i) = sym {
                    self.observe(i, &kind);
                }
                let seq = self.raw.len();
                self.raw.push((ts, file, seq, sym, kind));
            }
            Ok(None) => self.skip(&format!("{name}:{}: not a market event", record.line)),
            Err(why) => self.skip(&format!("{name}:{}: {why}", record.line)),
        }
    }

    fn observe(&mut self, sym: usize, kind: &TapeKind) {
        let mut prices = Vec::new();
        let mut qtys = Vec::new();
        match kind {
            TapeKind::Depth(d) => {
                for l in d.bids.iter().chain(&d.asks) {
                    prices.push(l.price);
                    qtys.push(l.qty);
                }
            }
            TapeKind::Snapshot { bids, asks, .. } => {
                for l in bids.iter().chain(asks) {
                    prices.push(l.price);
                    qtys.push(l.qty);
                }
            }
            TapeKind::Trade { price, qty, .. } => {
                prices.push(*price);
                qtys.push(*qty);
            }
            TapeKind::AggTrade { price, qty, .. } => {
                prices.push(*price);
                qtys.push(*qty);
                self.symbols[sym].has_agg_trades = true;
            }
            TapeKind::BookTicker { bid, ask, .. } => {
                prices.extend([bid.price, ask.price]);
                qtys.extend([bid.qty, ask.qty]);
            }
        }
        for p in prices {
            self.tick_gran[sym] = self.tick_gran[sym].min(granularity(p));
        }
        for q in qtys {
            self.step_gran[sym] = self.step_gran[sym].min(granularity(q));
        }
    }

    fn finish(mut self) -> Tape {
        // Give unattributed snapshots to a symbol: the only one, or the one whose diff stream
        // they bridge.
        let single = (self.symbols.len() == 1).then_some(0);
        let mut bridges: Vec<Vec<(u64, u64)>> = vec![Vec::new(); self.symbols.len()];
        for (_, _, _, sym, kind) in &self.raw {
            if let (Some(s), TapeKind::Depth(d)) = (sym, kind) {
                bridges[*s].push((d.first_update_id, d.last_update_id));
            }
        }
        let mut raw = std::mem::take(&mut self.raw);
        raw.retain_mut(|(_, _, _, sym, kind)| {
            if sym.is_some() {
                return true;
            }
            let TapeKind::Snapshot { last_update_id, .. } = kind else {
                return false;
            };
            let next = *last_update_id + 1;
            let matches: Vec<usize> = (0..bridges.len())
                .filter(|&s| bridges[s].iter().any(|&(f, l)| f <= next && next <= l))
                .collect();
            *sym = match (single, matches.as_slice()) {
                (Some(s), _) => Some(s),
                (None, [s]) => Some(*s),
                _ => {
                    warn!(
                        last_update_id,
                        "capture: a REST snapshot without a symbol matches no single symbol's diff stream; skipped"
                    );
                    None
                }
            };
            sym.is_some()
        });
        raw.sort_by_key(|(ts, file, seq, _, _)| (*ts, *file, *seq));
        for (i, s) in self.symbols.iter_mut().enumerate() {
            s.tick = if self.tick_gran[i] == i64::MAX {
                10_000_000
            } else {
                self.tick_gran[i]
            };
            s.step = if self.step_gran[i] == i64::MAX {
                1_000
            } else {
                self.step_gran[i]
            };
        }
        Tape {
            symbols: self.symbols,
            items: raw
                .into_iter()
                .filter_map(|(ts, _, _, sym, kind)| {
                    Some(TapeItem {
                        ts,
                        sym: sym?,
                        kind,
                    })
                })
                .collect(),
        }
    }
}

/// The largest power of ten (at most 1.0, i.e. 1e9 units) dividing `v`; `i64::MAX` for 0.
fn granularity(v: i64) -> i64 {
    if v == 0 {
        return i64::MAX;
    }
    let mut g = 1_000_000_000;
    while g > 1 && v % g != 0 {
        g /= 10;
    }
    g
}

fn decimal(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => parse_decimal(s.as_bytes()).ok().map(|p| p.value),
        Value::Number(n) => parse_decimal(n.to_string().as_bytes())
            .ok()
            .map(|p| p.value),
        _ => None,
    }
}

fn levels(v: Option<&Value>) -> Option<Vec<Level>> {
    v?.as_array()?
        .iter()
        .map(|pair| {
            let pair = pair.as_array()?;
            Some(Level {
                price: decimal(pair.first()?)?,
                qty: decimal(pair.get(1)?)?,
            })
        })
        .collect()
}

/// Parses one frame: `Ok(Some((symbol if named, item)))`, `Ok(None)` for frames that are not
/// market events (subscription replies, klines...), `Err(why)` for malformed events.
pub fn parse_frame(frame: &Value) -> Result<Option<(Option<String>, TapeKind)>, String> {
    let Some(obj) = frame.as_object() else {
        return Ok(None);
    };
    let (data, stream_symbol) = match (obj.get("stream"), obj.get("data")) {
        (Some(Value::String(stream)), Some(data)) => (
            data,
            stream.split_once('@').map(|(s, _)| s.to_ascii_uppercase()),
        ),
        _ => (frame, None),
    };
    let Some(d) = data.as_object() else {
        return Ok(None);
    };
    let num = |k: &str| d.get(k).and_then(Value::as_u64);
    let dec = |k: &str| d.get(k).and_then(decimal);
    let symbol = d
        .get("s")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or(stream_symbol);
    let missing = |what: &str| format!("{what} event with a missing or malformed field");
    if let Some(last_update_id) = num("lastUpdateId") {
        let bids = levels(d.get("bids")).ok_or_else(|| missing("depth snapshot"))?;
        let asks = levels(d.get("asks")).ok_or_else(|| missing("depth snapshot"))?;
        return Ok(Some((
            symbol,
            TapeKind::Snapshot {
                last_update_id,
                bids,
                asks,
            },
        )));
    }
    let kind = match d.get("e").and_then(Value::as_str) {
        Some("trade") => TapeKind::Trade {
            id: num("t").ok_or_else(|| missing("trade"))?,
            price: dec("p").ok_or_else(|| missing("trade"))?,
            qty: dec("q").ok_or_else(|| missing("trade"))?,
            buyer_maker: d.get("m").and_then(Value::as_bool).unwrap_or(false),
        },
        Some("aggTrade") => TapeKind::AggTrade {
            id: num("a").ok_or_else(|| missing("aggTrade"))?,
            first_trade: num("f").ok_or_else(|| missing("aggTrade"))?,
            last_trade: num("l").ok_or_else(|| missing("aggTrade"))?,
            price: dec("p").ok_or_else(|| missing("aggTrade"))?,
            qty: dec("q").ok_or_else(|| missing("aggTrade"))?,
            buyer_maker: d.get("m").and_then(Value::as_bool).unwrap_or(false),
        },
        Some("depthUpdate") => {
            let first = num("U").ok_or_else(|| missing("depthUpdate"))?;
            let last = num("u").ok_or_else(|| missing("depthUpdate"))?;
            if last < first {
                return Err(format!("depthUpdate with u {last} < U {first}"));
            }
            TapeKind::Depth(DepthUpdate {
                first_update_id: first,
                last_update_id: last,
                bids: levels(d.get("b")).ok_or_else(|| missing("depthUpdate"))?,
                asks: levels(d.get("a")).ok_or_else(|| missing("depthUpdate"))?,
            })
        }
        Some(_) => return Ok(None),
        None => {
            // Spot bookTicker has no event type.
            let (Some(update_id), Some(b), Some(bq), Some(a), Some(aq)) =
                (num("u"), dec("b"), dec("B"), dec("a"), dec("A"))
            else {
                return Ok(None);
            };
            TapeKind::BookTicker {
                update_id,
                bid: Level { price: b, qty: bq },
                ask: Level { price: a, qty: aq },
            }
        }
    };
    Ok(Some((symbol, kind)))
}

/// Per-symbol replay state.
#[derive(Debug, Clone)]
struct PlayerSym {
    id: SymbolId,
    has_agg_trades: bool,
    book: OrderBook,
    synced: bool,
    /// Highest depth update id (as sent) covered by the sent diffs or the snapshot.
    chain: Option<u64>,
    /// Sent id = captured id + offset.
    offset: i64,
    /// Diffs sent before the snapshot (ids as sent).
    buffer: VecDeque<DepthUpdate>,
    trade: IdShift,
    agg: IdShift,
    agg_first: IdShift,
    pending_1000: DepthDiff,
    gaps: u64,
}

/// Maps captured ids to sent ids that always increase: an id that would not increase is
/// moved to just after the last one sent, and later ids follow it.
#[derive(Debug, Clone, Copy, Default)]
struct IdShift {
    last: Option<u64>,
    offset: i64,
}

impl IdShift {
    fn map(&mut self, id: u64) -> u64 {
        let mut out = shift(id, self.offset);
        if let Some(last) = self.last
            && out <= last
        {
            self.offset = last as i64 + 1 - id as i64;
            out = last + 1;
        }
        self.last = Some(out);
        out
    }
}

fn shift(id: u64, offset: i64) -> u64 {
    (id as i64).saturating_add(offset).max(0) as u64
}

/// Where a loop restarts, per symbol, recorded when the first loop reaches it.
#[derive(Debug, Clone)]
struct LoopStart {
    book: Option<OrderBook>,
}

/// Replays a [`Tape`] (see the module docs).
pub struct CapturePlayer {
    tape: Tape,
    syms: Vec<PlayerSym>,
    pos: usize,
    loops: u64,
    looping: bool,
    /// First item of every loop after the first.
    loop_start: usize,
    /// Per symbol: the captured `U` of its first depth item at or after `loop_start`.
    first_u_after_start: Vec<Option<u64>>,
    starts: Option<Vec<LoopStart>>,
    /// Simulated time of the current loop's first item, and that item's receive time.
    loop_base: u64,
    ts_origin: u64,
    last_at: u64,
    bridge_due: bool,
    flush_1000_at: Option<u64>,
    sync_changes: u64,
}

impl CapturePlayer {
    /// A player for `tape` whose symbols have the global ids `ids` (same order as
    /// `tape.symbols`). With `looping`, the replay restarts at the end (see the module docs).
    pub fn new(tape: Tape, ids: &[SymbolId], looping: bool) -> CapturePlayer {
        let syms: Vec<PlayerSym> = tape
            .symbols
            .iter()
            .zip(ids)
            .map(|(s, &id)| PlayerSym {
                id,
                has_agg_trades: s.has_agg_trades,
                book: OrderBook::new(),
                synced: false,
                chain: None,
                offset: 0,
                buffer: VecDeque::new(),
                trade: IdShift::default(),
                agg: IdShift::default(),
                agg_first: IdShift::default(),
                pending_1000: DepthDiff::new(),
                gaps: 0,
            })
            .collect();
        let ts_origin = tape.items.first().map_or(0, |i| i.ts);
        let mut player = CapturePlayer {
            tape,
            syms,
            pos: 0,
            loops: 0,
            looping,
            loop_start: 0,
            first_u_after_start: Vec::new(),
            starts: None,
            loop_base: 0,
            ts_origin,
            last_at: 0,
            bridge_due: false,
            flush_1000_at: None,
            sync_changes: 0,
        };
        player.loop_start = player.find_loop_start();
        player.first_u_after_start = (0..player.syms.len())
            .map(|s| {
                player.tape.items[player.loop_start..]
                    .iter()
                    .find_map(|i| match &i.kind {
                        TapeKind::Depth(d) if i.sym == s => Some(d.first_update_id),
                        _ => None,
                    })
            })
            .collect();
        if looping && player.loop_start >= player.tape.items.len() {
            warn!(
                "capture: nothing follows the last REST snapshot's bridge, so the replay cannot loop; it will stop at the end"
            );
            player.looping = false;
        }
        player
    }

    /// A dry run of the first loop: the index after the item at which the last symbol that
    /// ever gets a book got it (0 if none does).
    fn find_loop_start(&self) -> usize {
        let mut dry = self.syms.clone();
        let mut scratch = Vec::new();
        let mut start = 0;
        for (i, item) in self.tape.items.iter().enumerate() {
            let was = dry[item.sym].synced;
            process(&mut dry[item.sym], &item.kind, 0, &mut scratch, false);
            scratch.clear();
            if !was && dry[item.sym].synced {
                start = i + 1;
            }
        }
        start
    }

    /// Simulated time of item `pos` in the current loop.
    fn item_at(&self, pos: usize) -> Option<u64> {
        let item = self.tape.items.get(pos)?;
        Some(self.loop_base + item.ts.saturating_sub(self.ts_origin))
    }

    /// When the next item is due in simulated ns; `None` when the replay is over.
    pub fn next_due(&self) -> Option<u64> {
        let item = if self.bridge_due {
            Some(self.loop_base)
        } else {
            self.item_at(self.pos).or_else(|| {
                self.looping
                    .then_some(self.last_at.saturating_add(LOOP_GAP_NS))
            })
        };
        match (item, self.flush_1000_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Processes the next due item, appending what it sends to `out`.
    pub fn step(&mut self, out: &mut Vec<Emitted>) {
        let Some(due) = self.next_due() else {
            return;
        };
        if let Some(at) = self.flush_1000_at
            && at <= due
        {
            self.flush_1000_at = None;
            for s in &mut self.syms {
                if let Some(update) = s.pending_1000.take() {
                    out.push(Emitted {
                        key: StreamKey {
                            symbol: s.id,
                            kind: StreamKind::Depth1000ms,
                        },
                        at,
                        event: Event::Depth(update),
                    });
                }
            }
            return;
        }
        if self.bridge_due {
            self.bridge_due = false;
            self.emit_bridges(due, out);
        } else if self.pos < self.tape.items.len() {
            if self.loops == 0 && self.pos == self.loop_start && self.starts.is_none() {
                self.record_starts();
            }
            let item = &self.tape.items[self.pos];
            let s = &mut self.syms[item.sym];
            let was = s.synced;
            process(s, &item.kind, due, out, true);
            if s.synced != was {
                self.sync_changes += 1;
            }
            self.pos += 1;
            self.last_at = due;
        } else {
            // End of the tape: start the next loop.
            if self.starts.is_none() {
                self.record_starts();
            }
            self.loops += 1;
            self.pos = self.loop_start;
            self.loop_base = due;
            self.ts_origin = self.tape.items.get(self.loop_start).map_or(0, |i| i.ts);
            self.bridge_due = true;
            return;
        }
        let pending = self.syms.iter().any(|s| !s.pending_1000.is_empty());
        if pending && self.flush_1000_at.is_none() {
            self.flush_1000_at = Some((due / NS_1S + 1) * NS_1S);
        }
    }

    fn record_starts(&mut self) {
        self.starts = Some(
            self.syms
                .iter()
                .map(|s| LoopStart {
                    book: s.synced.then(|| s.book.clone()),
                })
                .collect(),
        );
    }

    /// At a loop start: turn each book back into its loop-start state and shift ids.
    fn emit_bridges(&mut self, at: u64, out: &mut Vec<Emitted>) {
        let Some(starts) = &self.starts else {
            return;
        };
        for (i, s) in self.syms.iter_mut().enumerate() {
            if let (Some(start), true, Some(chain)) = (&starts[i].book, s.synced, s.chain) {
                let (bids, asks) = bridge(&s.book, start);
                if !bids.is_empty() || !asks.is_empty() {
                    let update = DepthUpdate {
                        first_update_id: chain + 1,
                        last_update_id: chain + 1,
                        bids,
                        asks,
                    };
                    s.book = start.clone();
                    s.chain = Some(chain + 1);
                    s.pending_1000.merge(&update);
                    out.push(Emitted {
                        key: StreamKey {
                            symbol: s.id,
                            kind: StreamKind::Depth100ms,
                        },
                        at,
                        event: Event::Depth(update),
                    });
                }
                let (bid, ask) = top(&s.book);
                out.push(Emitted {
                    key: StreamKey {
                        symbol: s.id,
                        kind: StreamKind::BookTicker,
                    },
                    at,
                    event: Event::BookTicker {
                        update_id: s.chain.unwrap_or(chain),
                        bid,
                        ask,
                    },
                });
            }
            // The loop's first diff follows the last id sent.
            if let (Some(chain), Some(first)) = (s.chain, self.first_u_after_start[i]) {
                s.offset = chain as i64 + 1 - first as i64;
            }
        }
        if self.syms.iter().any(|s| !s.pending_1000.is_empty()) && self.flush_1000_at.is_none() {
            self.flush_1000_at = Some((at / NS_1S + 1) * NS_1S);
        }
    }

    /// The book of `symbol` and its update id, if this player drives it and knows its book.
    pub fn snapshot(&self, symbol: SymbolId, limit: usize) -> Option<DepthSnapshot> {
        let s = self.syms.iter().find(|s| s.id == symbol)?;
        if !s.synced {
            return None;
        }
        Some(DepthSnapshot::of(&s.book, s.chain?, limit))
    }

    /// Whether this player drives `symbol`.
    pub fn drives(&self, symbol: SymbolId) -> bool {
        self.syms.iter().any(|s| s.id == symbol)
    }

    /// Loops completed so far.
    pub fn loops(&self) -> u64 {
        self.loops
    }

    /// Position in the tape (items replayed in the current loop's pass) and the tape length.
    pub fn position(&self) -> (usize, usize) {
        (self.pos, self.tape.items.len())
    }

    /// Index of the item every loop after the first restarts at.
    pub fn loop_start(&self) -> usize {
        self.loop_start
    }

    /// Counts changes of "book known" state (a REST request waiting for a book watches it).
    pub fn sync_changes(&self) -> u64 {
        self.sync_changes
    }

    /// Holes in the captured depth id chain that were closed by renumbering, in total.
    pub fn gaps(&self) -> u64 {
        self.syms.iter().map(|s| s.gaps).sum()
    }
}

/// Replays one item of one symbol; with `emit` false (the dry run) nothing is logged.
fn process(s: &mut PlayerSym, kind: &TapeKind, at: u64, out: &mut Vec<Emitted>, emit: bool) {
    let id = s.id;
    let key = move |kind| StreamKey { symbol: id, kind };
    match kind {
        TapeKind::Depth(d) => {
            let mut first = shift(d.first_update_id, s.offset);
            let mut last = shift(d.last_update_id, s.offset);
            if let Some(chain) = s.chain {
                if last <= chain {
                    return; // Already covered (a duplicate, or older than the snapshot).
                }
                if first > chain + 1 {
                    if emit {
                        warn!(
                            symbol = s.id,
                            expected = chain + 1,
                            got = first,
                            "capture: hole in the depth update ids; later ids are renumbered so clients see a contiguous stream"
                        );
                    }
                    s.gaps += 1;
                    s.offset += chain as i64 + 1 - first as i64;
                    first = chain + 1;
                    last = shift(d.last_update_id, s.offset);
                }
            }
            let update = DepthUpdate {
                first_update_id: first,
                last_update_id: last,
                bids: d.bids.clone(),
                asks: d.asks.clone(),
            };
            s.chain = Some(last);
            if s.synced {
                apply(&mut s.book, &update);
            } else {
                if s.buffer.len() >= MAX_BUFFERED_DIFFS {
                    s.buffer.pop_front();
                }
                s.buffer.push_back(update.clone());
            }
            s.pending_1000.merge(&update);
            out.push(Emitted {
                key: key(StreamKind::Depth100ms),
                at,
                event: Event::Depth(update),
            });
        }
        TapeKind::Snapshot {
            last_update_id,
            bids,
            asks,
        } => {
            if s.synced {
                return;
            }
            let snap_id = shift(*last_update_id, s.offset);
            let newer: Vec<&DepthUpdate> = s
                .buffer
                .iter()
                .filter(|u| u.last_update_id > snap_id)
                .collect();
            if let Some(first) = newer.first()
                && first.first_update_id > snap_id + 1
            {
                if emit {
                    warn!(
                        symbol = s.id,
                        last_update_id,
                        "capture: REST snapshot is older than the diffs before it and cannot be bridged; skipped"
                    );
                }
                return;
            }
            let mut book = OrderBook::new();
            for l in bids {
                book.set(BookSide::Bid, l.price, l.qty);
            }
            for l in asks {
                book.set(BookSide::Ask, l.price, l.qty);
            }
            for u in newer {
                apply(&mut book, u);
            }
            s.book = book;
            s.synced = true;
            s.buffer = VecDeque::new();
            s.chain = Some(s.chain.map_or(snap_id, |c| c.max(snap_id)));
        }
        TapeKind::Trade {
            id,
            price,
            qty,
            buyer_maker,
        } => {
            let id = s.trade.map(*id);
            out.push(Emitted {
                key: key(StreamKind::Trade),
                at,
                event: Event::Trade {
                    id,
                    price: *price,
                    qty: *qty,
                    buyer_maker: *buyer_maker,
                },
            });
            if !s.has_agg_trades {
                out.push(Emitted {
                    key: key(StreamKind::AggTrade),
                    at,
                    event: Event::AggTrade {
                        id,
                        first_trade: id,
                        last_trade: id,
                        price: *price,
                        qty: *qty,
                        buyer_maker: *buyer_maker,
                    },
                });
            }
        }
        TapeKind::AggTrade {
            id,
            first_trade,
            last_trade,
            price,
            qty,
            buyer_maker,
        } => {
            let id = s.agg.map(*id);
            let first = s.agg_first.map(*first_trade);
            let last = shift(*last_trade, s.agg_first.offset).max(first);
            s.agg_first.last = Some(last);
            out.push(Emitted {
                key: key(StreamKind::AggTrade),
                at,
                event: Event::AggTrade {
                    id,
                    first_trade: first,
                    last_trade: last,
                    price: *price,
                    qty: *qty,
                    buyer_maker: *buyer_maker,
                },
            });
        }
        TapeKind::BookTicker {
            update_id,
            bid,
            ask,
        } => {
            out.push(Emitted {
                key: key(StreamKind::BookTicker),
                at,
                event: Event::BookTicker {
                    update_id: shift(*update_id, s.offset),
                    bid: *bid,
                    ask: *ask,
                },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    const P: i64 = 1_000_000_000;

    /// A small BTCUSDT capture: two diffs, the REST snapshot (bridged by the second diff,
    /// which came before it), then diffs, trades and bookTickers.
    pub(crate) fn small_capture() -> String {
        let t0 = 1_723_161_253_000_000_000u64;
        let mut lines = Vec::new();
        let depth = |ts: u64, first: u64, last: u64, b: &str, a: &str| {
            format!(
                r#"{ts} {{"stream":"btcusdt@depth@100ms","data":{{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":{first},"u":{last},"b":[{b}],"a":[{a}]}}}}"#
            )
        };
        lines.push(depth(t0, 100, 104, r#"["99.00000000","1.00000000"]"#, ""));
        lines.push(depth(
            t0 + 100_000_000,
            105,
            110,
            r#"["100.00000000","2.00000000"]"#,
            r#"["101.00000000","0.00000000"]"#,
        ));
        lines.push(format!(
            r#"{} {{"lastUpdateId":107,"bids":[["100.00000000","1.00000000"],["99.00000000","1.00000000"]],"asks":[["101.00000000","3.00000000"],["102.00000000","4.00000000"]]}}"#,
            t0 + 150_000_000
        ));
        lines.push(format!(
            r#"{} {{"stream":"btcusdt@trade","data":{{"e":"trade","E":1,"s":"BTCUSDT","t":5000,"p":"102.00000000","q":"0.50000000","T":1,"m":false,"M":true}}}}"#,
            t0 + 160_000_000
        ));
        lines.push(format!(
            r#"{} {{"stream":"btcusdt@bookTicker","data":{{"u":111,"s":"BTCUSDT","b":"100.00000000","B":"2.00000000","a":"102.00000000","A":"3.50000000"}}}}"#,
            t0 + 170_000_000
        ));
        lines.push(depth(
            t0 + 200_000_000,
            111,
            113,
            r#"["98.00000000","5.00000000"]"#,
            r#"["102.00000000","3.50000000"]"#,
        ));
        lines.push(format!(
            r#"{} {{"stream":"btcusdt@trade","data":{{"e":"trade","E":1,"s":"BTCUSDT","t":5001,"p":"100.00000000","q":"0.25000000","T":1,"m":true,"M":true}}}}"#,
            t0 + 250_000_000
        ));
        lines.push(depth(
            t0 + 300_000_000,
            114,
            116,
            r#"["100.00000000","1.75000000"],["97.50000000","1.00000000"]"#,
            r#"["103.00000000","1.00000000"]"#,
        ));
        lines.join("\n") + "\n"
    }

    pub(crate) fn tape_of(text: &str) -> Tape {
        let reader =
            CaptureReader::from_reader("t".into(), Cursor::new(text.as_bytes().to_vec())).unwrap();
        load_tape(vec![("t".into(), reader)]).unwrap()
    }

    fn run(player: &mut CapturePlayer, max_steps: usize) -> Vec<Emitted> {
        let mut out = Vec::new();
        for _ in 0..max_steps {
            if player.next_due().is_none() {
                break;
            }
            player.step(&mut out);
        }
        out
    }

    #[test]
    fn loads_items_and_attributes_the_snapshot() {
        let tape = tape_of(&small_capture());
        assert_eq!(tape.symbols.len(), 1);
        assert_eq!(tape.symbols[0].symbol, "BTCUSDT");
        // Finest decimal places used: prices 97.5, quantities 0.25.
        assert_eq!(tape.symbols[0].tick, 100_000_000);
        assert_eq!(tape.symbols[0].step, 10_000_000);
        assert!(!tape.symbols[0].has_agg_trades);
        assert_eq!(tape.items.len(), 8);
        assert!(matches!(
            tape.items[2].kind,
            TapeKind::Snapshot {
                last_update_id: 107,
                ..
            }
        ));
    }

    #[test]
    fn rejects_captures_without_events() {
        let reader = CaptureReader::from_reader(
            "x".into(),
            Cursor::new(b"{\"result\":null,\"id\":1}\nnot json\n".to_vec()),
        )
        .unwrap();
        let err = load_tape(vec![("x".into(), reader)]).unwrap_err();
        assert!(err.to_string().contains("no Binance spot events"), "{err}");
    }

    #[test]
    fn replays_with_a_book_consistent_with_the_diffs() {
        let mut player = CapturePlayer::new(tape_of(&small_capture()), &[0], false);
        assert_eq!(player.loop_start(), 3);
        let mut out = Vec::new();
        player.step(&mut out);
        player.step(&mut out);
        assert!(
            player.snapshot(0, 100).is_none(),
            "no book before the snapshot"
        );
        player.step(&mut out);
        let snap = player.snapshot(0, 100).unwrap();
        // Snapshot 107 bridged by the diff 105..110 sent before it.
        assert_eq!(snap.last_update_id, 110);
        assert_eq!(
            snap.bids,
            vec![
                Level {
                    price: 100 * P,
                    qty: 2 * P
                },
                Level {
                    price: 99 * P,
                    qty: P
                }
            ]
        );
        assert_eq!(
            snap.asks,
            vec![Level {
                price: 102 * P,
                qty: 4 * P
            }]
        );
        let rest = run(&mut player, 100);
        assert!(player.next_due().is_none());
        let kinds: Vec<StreamKind> = rest.iter().map(|e| e.key.kind).collect();
        assert!(kinds.contains(&StreamKind::AggTrade), "aggTrades derived");
        assert!(kinds.contains(&StreamKind::Depth1000ms), "1 s depth merged");
        let snap = player.snapshot(0, 100).unwrap();
        assert_eq!(snap.last_update_id, 116);
        assert_eq!(snap.bids.len(), 4);
    }

    #[test]
    fn loops_keep_ids_increasing_and_books_exact() {
        let mut player = CapturePlayer::new(tape_of(&small_capture()), &[0], true);
        let mut out = Vec::new();
        for _ in 0..3 {
            player.step(&mut out);
        }
        let snap = player.snapshot(0, usize::MAX).unwrap();
        let mut book = OrderBook::new();
        for l in &snap.bids {
            book.set(BookSide::Bid, l.price, l.qty);
        }
        for l in &snap.asks {
            book.set(BookSide::Ask, l.price, l.qty);
        }
        let mut chain = snap.last_update_id;
        let mut chain_1s: Option<u64> = None;
        let mut last_trade = 0;
        let mut last_at = 0;
        let mut loop_books = Vec::new();
        while player.loops() < 4 {
            let mut out = Vec::new();
            let loops = player.loops();
            player.step(&mut out);
            if player.loops() != loops {
                loop_books.push(book.clone());
            }
            for e in out {
                assert!(e.at >= last_at);
                last_at = e.at;
                match (e.event, e.key.kind) {
                    (Event::Depth(d), StreamKind::Depth100ms) => {
                        if d.last_update_id <= chain {
                            continue;
                        }
                        assert!(
                            d.first_update_id <= chain + 1,
                            "no hole: {d:?} after {chain}"
                        );
                        chain = d.last_update_id;
                        apply(&mut book, &d);
                    }
                    (Event::Depth(d), StreamKind::Depth1000ms) => {
                        if let Some(c) = chain_1s {
                            assert_eq!(d.first_update_id, c + 1);
                        }
                        chain_1s = Some(d.last_update_id);
                    }
                    (Event::Trade { id, .. }, _) => {
                        assert!(id > last_trade);
                        last_trade = id;
                    }
                    _ => {}
                }
            }
            let snap = player.snapshot(0, usize::MAX).unwrap();
            assert_eq!(snap.last_update_id, chain);
            assert_eq!(snap.bids, book.bids().collect::<Vec<_>>());
            assert_eq!(snap.asks, book.asks().collect::<Vec<_>>());
        }
        // Every loop ends with the same book.
        assert_eq!(loop_books.len(), 4);
        assert!(loop_books.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(last_trade, 5001 + 3 * 2);
    }

    #[test]
    fn holes_in_the_capture_are_closed() {
        let text = small_capture().replace(r#""U":114,"u":116"#, r#""U":120,"u":122"#);
        let mut player = CapturePlayer::new(tape_of(&text), &[0], false);
        let out = run(&mut player, 100);
        let last = out
            .iter()
            .filter_map(|e| match (&e.event, e.key.kind) {
                (Event::Depth(d), StreamKind::Depth100ms) => Some(d.clone()),
                _ => None,
            })
            .next_back()
            .unwrap();
        assert_eq!((last.first_update_id, last.last_update_id), (114, 116));
        assert_eq!(player.gaps(), 1);
    }

    #[test]
    fn real_capture_loads_and_bridges() {
        let tape = tape_of_bytes(super::super::DEMO_CAPTURE);
        assert_eq!(tape.symbols.len(), 1);
        assert!(tape.items.len() > 40_000);
        let mut player = CapturePlayer::new(tape, &[0], true);
        let mut n = 0;
        while player.snapshot(0, 1).is_none() {
            let mut out = Vec::new();
            player.step(&mut out);
            n += 1;
            assert!(n < 100, "the snapshot is near the start");
        }
        let snap = player.snapshot(0, 5000).unwrap();
        assert!(
            (990..1010).contains(&snap.bids.len()),
            "{}",
            snap.bids.len()
        );
        assert!(snap.bids[0].price < snap.asks[0].price);
    }

    #[test]
    fn cryptofeed_files_merge_and_every_snapshot_bridges() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../replay-data/captures/binance_spot"
        );
        let files = [
            format!("{dir}/depth100ms_bookTicker_kline1m_aggTrade/BINANCE.ws.1.0"),
            format!("{dir}/rest_depth_snapshot/BINANCE.http.0.0"),
        ];
        let inputs = files
            .iter()
            .map(|f| (f.clone(), CaptureReader::open(f).unwrap()))
            .collect();
        let tape = load_tape(inputs).unwrap();
        let names: Vec<String> = tape.symbols.iter().map(|s| s.symbol.clone()).collect();
        assert_eq!(names.len(), 4, "{names:?}");
        assert!(
            tape.items.windows(2).all(|w| w[0].ts <= w[1].ts),
            "merged by time"
        );
        let snapshots = tape
            .items
            .iter()
            .filter(|i| matches!(i.kind, TapeKind::Snapshot { .. }))
            .count();
        assert_eq!(snapshots, 4);
        assert!(
            tape.symbols
                .iter()
                .all(|s| s.has_agg_trades || s.symbol == "BLZETH" || s.symbol == "RUNEEUR")
        );
        let ids: Vec<SymbolId> = (0..4).collect();
        let mut player = CapturePlayer::new(tape, &ids, true);
        let mut out = Vec::new();
        while player.loops() == 0 {
            player.step(&mut out);
        }
        for id in ids {
            let snap = player.snapshot(id, 10).expect("every symbol has a book");
            assert!(
                snap.bids[0].price < snap.asks[0].price,
                "{}",
                names[id as usize]
            );
        }
        // aggTrades are replayed, not derived; no trades in this capture.
        assert!(out.iter().any(|e| e.key.kind == StreamKind::AggTrade));
        assert!(!out.iter().any(|e| e.key.kind == StreamKind::Trade));
    }

    #[test]
    fn scans_symbols_cheaply() {
        let demo = CaptureReader::from_bytes("demo", super::super::DEMO_CAPTURE);
        assert_eq!(scan_symbols(vec![demo]), ["BTCUSDT"]);
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../replay-data/captures/binance_spot"
        );
        let ws = CaptureReader::open(format!(
            "{dir}/depth100ms_bookTicker_kline1m_aggTrade/BINANCE.ws.1.0"
        ))
        .unwrap();
        assert_eq!(
            scan_symbols(vec![ws]),
            ["NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"]
        );
    }

    fn tape_of_bytes(bytes: &'static [u8]) -> Tape {
        load_tape(vec![(
            "demo".into(),
            CaptureReader::from_bytes("demo", bytes),
        )])
        .unwrap()
    }
}
