//! The synthetic source: a seeded random walk per symbol over an internally consistent book.
//!
//! Each action (`rate` per second in total, symbol picked at random) is one of: a trade at the
//! touch (its quantity is taken off the touched level), a new level inside the spread, or a
//! change of quantity at a level (more or less liquidity, or a cancel). Every level change
//! takes one update id. Diffs are batched per 100 ms (`@depth@100ms`) and per second
//! (`@depth`), exactly as the book changed; a `@bookTicker` goes out whenever the top changes;
//! trades go to `@trade` and, one for one, to `@aggTrade`. Prices move in ticks of 0.01 and
//! quantities in steps of 0.00001. The same seed gives the same events.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tickwire_sdk::wire::{BookSide, Level};

use super::market::{DepthDiff, DepthSnapshot, DepthUpdate, Emitted, Event, apply, top};
use super::stream::{StreamKey, StreamKind, SymbolId, SymbolSpec};
use crate::book::OrderBook;

/// Price tick of synthetic symbols: 0.01, in 1e-9 units.
pub const TICK: i64 = 10_000_000;
/// Quantity step of synthetic symbols: 0.00001, in 1e-9 units.
pub const STEP: i64 = 10_000;
/// Fewest levels a side of a synthetic book holds.
pub const MIN_LEVELS: usize = 50;
/// Most levels a side of a synthetic book holds.
pub const MAX_LEVELS: usize = 80;
/// First update id of every synthetic book (the id of its initial snapshot).
pub const FIRST_UPDATE_ID: u64 = 1_000_000;

const NS_100MS: u64 = 100_000_000;
const NS_1S: u64 = 1_000_000_000;

/// A starting price (1e-9 units) for a symbol: near the real one for a few well-known bases,
/// 100.00 otherwise.
pub fn start_price(spec: &SymbolSpec) -> i64 {
    let whole = match spec.base.as_str() {
        "BTC" => 60_000,
        "ETH" => 2_600,
        "BNB" => 550,
        "SOL" => 150,
        "LTC" => 70,
        "AVAX" => 25,
        "LINK" => 12,
        _ => 100,
    };
    whole * 1_000_000_000
}

struct SynthSymbol {
    id: SymbolId,
    book: OrderBook,
    published: OrderBook,
    published_u: u64,
    update_id: u64,
    trade_id: u64,
    agg_id: u64,
    pending_100: DepthDiff,
    pending_1000: DepthDiff,
}

/// A synthetic market for a set of symbols (see the module docs).
pub struct SyntheticSource {
    rng: StdRng,
    interval_ns: f64,
    actions: u64,
    symbols: Vec<SynthSymbol>,
    flush_100_at: Option<u64>,
    flush_1000_at: Option<u64>,
}

impl SyntheticSource {
    /// A source driving `symbols` (ids from the catalog, with their specs) at `rate` actions
    /// per second in total (must be finite and > 0), seeded with `seed`.
    pub fn new(symbols: &[(SymbolId, SymbolSpec)], rate: f64, seed: u64) -> SyntheticSource {
        let mut rng = StdRng::seed_from_u64(seed);
        let symbols = symbols
            .iter()
            .map(|(id, spec)| {
                let book = initial_book(&mut rng, start_price(spec));
                SynthSymbol {
                    id: *id,
                    published: book.clone(),
                    book,
                    published_u: FIRST_UPDATE_ID,
                    update_id: FIRST_UPDATE_ID,
                    trade_id: 1,
                    agg_id: 1,
                    pending_100: DepthDiff::new(),
                    pending_1000: DepthDiff::new(),
                }
            })
            .collect();
        SyntheticSource {
            rng,
            interval_ns: 1e9 / rate,
            actions: 0,
            symbols,
            flush_100_at: None,
            flush_1000_at: None,
        }
    }

    /// Number of actions taken so far.
    pub fn actions(&self) -> u64 {
        self.actions
    }

    fn action_due(&self) -> u64 {
        (self.actions as f64 * self.interval_ns) as u64
    }

    /// When the next item is due, in simulated ns (never `None`: the walk never ends).
    pub fn next_due(&self) -> Option<u64> {
        let mut due = self.action_due();
        for flush in [self.flush_100_at, self.flush_1000_at]
            .into_iter()
            .flatten()
        {
            due = due.min(flush);
        }
        Some(due)
    }

    /// Processes the item due at [`Self::next_due`]: a depth flush if one is due (flushes
    /// first when times tie, so a flush at `t` holds the changes made before `t`), else one
    /// action. Emitted events are appended to `out`.
    pub fn step(&mut self, out: &mut Vec<Emitted>) {
        let action_at = self.action_due();
        if let Some(at) = self.flush_100_at
            && at <= action_at
        {
            self.flush_100_at = None;
            for s in &mut self.symbols {
                if let Some(update) = s.pending_100.take() {
                    apply(&mut s.published, &update);
                    s.published_u = update.last_update_id;
                    debug_assert_eq!(s.published, s.book);
                    out.push(depth(s.id, StreamKind::Depth100ms, at, update));
                }
            }
            return;
        }
        if let Some(at) = self.flush_1000_at
            && at <= action_at
        {
            self.flush_1000_at = None;
            for s in &mut self.symbols {
                if let Some(update) = s.pending_1000.take() {
                    out.push(depth(s.id, StreamKind::Depth1000ms, at, update));
                }
            }
            return;
        }
        self.actions += 1;
        if self.symbols.is_empty() {
            return;
        }
        let i = self.rng.random_range(0..self.symbols.len());
        let rng = &mut self.rng;
        let s = &mut self.symbols[i];
        let before = top(&s.book);
        let mut changes = Changes {
            sym: s,
            at: action_at,
            changed: false,
        };
        let r: f64 = rng.random();
        if r < 0.35 {
            changes.trade(rng, out);
        } else if r < 0.55 && changes.spread_ticks() > 1 {
            changes.improve(rng);
        } else {
            changes.modify(rng);
        }
        changes.keep_depth(rng);
        let changed = changes.changed;
        let s = &mut self.symbols[i];
        if changed {
            self.flush_100_at
                .get_or_insert((action_at / NS_100MS + 1) * NS_100MS);
            self.flush_1000_at
                .get_or_insert((action_at / NS_1S + 1) * NS_1S);
        }
        let after = top(&s.book);
        if after != before {
            out.push(Emitted {
                key: StreamKey {
                    symbol: s.id,
                    kind: StreamKind::BookTicker,
                },
                at: action_at,
                event: Event::BookTicker {
                    update_id: s.update_id,
                    bid: after.0,
                    ask: after.1,
                },
            });
        }
    }

    /// The published book of `symbol` (as of the last `@depth@100ms` event) with its update
    /// id; `None` if this source does not drive `symbol`.
    pub fn snapshot(&self, symbol: SymbolId, limit: usize) -> Option<DepthSnapshot> {
        let s = self.symbols.iter().find(|s| s.id == symbol)?;
        Some(DepthSnapshot::of(&s.published, s.published_u, limit))
    }

    /// The live book of `symbol` (including changes not yet sent in a diff).
    pub fn live_book(&self, symbol: SymbolId) -> Option<&OrderBook> {
        self.symbols
            .iter()
            .find(|s| s.id == symbol)
            .map(|s| &s.book)
    }
}

fn depth(symbol: SymbolId, kind: StreamKind, at: u64, update: DepthUpdate) -> Emitted {
    Emitted {
        key: StreamKey { symbol, kind },
        at,
        event: Event::Depth(update),
    }
}

fn random_qty(rng: &mut StdRng) -> i64 {
    // 0.001 .. 2.0 in steps.
    rng.random_range(100..=200_000) * STEP
}

fn initial_book(rng: &mut StdRng, price: i64) -> OrderBook {
    let mut book = OrderBook::new();
    let levels = (MIN_LEVELS + MAX_LEVELS) / 2;
    for k in 0..levels as i64 {
        let bid = price - k * TICK;
        if bid > 0 {
            book.set(BookSide::Bid, bid, random_qty(rng));
        }
        book.set(BookSide::Ask, price + (k + 1) * TICK, random_qty(rng));
    }
    book
}

/// One action's changes to one symbol, recorded in both diff accumulators.
struct Changes<'a> {
    sym: &'a mut SynthSymbol,
    at: u64,
    changed: bool,
}

impl Changes<'_> {
    fn set(&mut self, side: BookSide, price: i64, qty: i64) {
        let s = &mut *self.sym;
        s.update_id += 1;
        s.book.set(side, price, qty);
        s.pending_100.record(side, price, qty, s.update_id);
        s.pending_1000.record(side, price, qty, s.update_id);
        self.changed = true;
    }

    fn spread_ticks(&self) -> i64 {
        match (self.sym.book.best_bid(), self.sym.book.best_ask()) {
            (Some(b), Some(a)) => (a.price - b.price) / TICK,
            _ => i64::MAX,
        }
    }

    fn nth(&self, side: BookSide, n: usize) -> Option<Level> {
        match side {
            BookSide::Bid => self.sym.book.bids().nth(n),
            BookSide::Ask => self.sym.book.asks().nth(n),
        }
    }

    fn trade(&mut self, rng: &mut StdRng, out: &mut Vec<Emitted>) {
        let taker_buys = rng.random_bool(0.5);
        let side = if taker_buys {
            BookSide::Ask
        } else {
            BookSide::Bid
        };
        let Some(level) = self.nth(side, 0) else {
            return;
        };
        let qty = if level.qty <= STEP || rng.random_bool(0.2) {
            level.qty
        } else {
            rng.random_range(1..=level.qty / STEP) * STEP
        };
        self.set(side, level.price, level.qty - qty);
        let s = &mut *self.sym;
        let id = s.trade_id;
        s.trade_id += 1;
        let agg = s.agg_id;
        s.agg_id += 1;
        let buyer_maker = !taker_buys;
        for (kind, event) in [
            (
                StreamKind::Trade,
                Event::Trade {
                    id,
                    price: level.price,
                    qty,
                    buyer_maker,
                },
            ),
            (
                StreamKind::AggTrade,
                Event::AggTrade {
                    id: agg,
                    first_trade: id,
                    last_trade: id,
                    price: level.price,
                    qty,
                    buyer_maker,
                },
            ),
        ] {
            out.push(Emitted {
                key: StreamKey { symbol: s.id, kind },
                at: self.at,
                event,
            });
        }
    }

    fn improve(&mut self, rng: &mut StdRng) {
        let (Some(bid), Some(ask)) = (self.sym.book.best_bid(), self.sym.book.best_ask()) else {
            return;
        };
        let qty = random_qty(rng);
        if rng.random_bool(0.5) {
            self.set(BookSide::Bid, bid.price + TICK, qty);
        } else {
            self.set(BookSide::Ask, ask.price - TICK, qty);
        }
    }

    fn modify(&mut self, rng: &mut StdRng) {
        let side = if rng.random_bool(0.5) {
            BookSide::Bid
        } else {
            BookSide::Ask
        };
        // Activity is concentrated near the touch: depth index ~ geometric.
        let mut n = 0;
        while n < MIN_LEVELS && rng.random_bool(0.7) {
            n += 1;
        }
        let Some(level) = self.nth(side, n).or_else(|| self.nth(side, 0)) else {
            return;
        };
        let qty = if rng.random_bool(0.15) {
            0
        } else {
            let factor = rng.random_range(0.5..1.5);
            (((level.qty as f64 * factor) as i64 / STEP).max(1)) * STEP
        };
        if qty != level.qty {
            self.set(side, level.price, qty);
        }
    }

    /// Keeps each side between [`MIN_LEVELS`] and [`MAX_LEVELS`] levels, adding beyond the
    /// worst level or removing the worst one.
    fn keep_depth(&mut self, rng: &mut StdRng) {
        for side in [BookSide::Bid, BookSide::Ask] {
            loop {
                let (bids, asks) = self.sym.book.depth();
                let len = if side == BookSide::Bid { bids } else { asks };
                if len > MAX_LEVELS {
                    let worst = match side {
                        BookSide::Bid => self.sym.book.bids().last(),
                        BookSide::Ask => self.sym.book.asks().last(),
                    };
                    let Some(worst) = worst else { break };
                    self.set(side, worst.price, 0);
                } else if len < MIN_LEVELS {
                    let worst = match side {
                        BookSide::Bid => self.sym.book.bids().last(),
                        BookSide::Ask => self.sym.book.asks().last(),
                    };
                    let gap = rng.random_range(1..=3) * TICK;
                    let price = match (side, worst) {
                        (BookSide::Bid, Some(w)) => w.price - gap,
                        (BookSide::Ask, Some(w)) => w.price + gap,
                        (BookSide::Bid, None) => self
                            .sym
                            .book
                            .best_ask()
                            .map_or(100 * TICK, |a| a.price - TICK),
                        (BookSide::Ask, None) => self
                            .sym
                            .book
                            .best_bid()
                            .map_or(101 * TICK, |b| b.price + TICK),
                    };
                    if price <= 0 {
                        break;
                    }
                    let qty = random_qty(rng);
                    self.set(side, price, qty);
                } else {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(seed: u64) -> SyntheticSource {
        let specs = [
            (0, SymbolSpec::new("ETHUSDT", TICK, STEP)),
            (1, SymbolSpec::new("SOLUSDT", TICK, STEP)),
        ];
        SyntheticSource::new(&specs, 1000.0, seed)
    }

    fn run(src: &mut SyntheticSource, steps: usize) -> Vec<Emitted> {
        let mut out = Vec::new();
        for _ in 0..steps {
            src.step(&mut out);
        }
        out
    }

    #[test]
    fn same_seed_same_events() {
        let a = run(&mut source(7), 3000);
        let b = run(&mut source(7), 3000);
        let c = run(&mut source(8), 3000);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn diffs_rebuild_the_book_and_books_stay_sane() {
        let mut src = source(42);
        let mut client: Vec<OrderBook> = (0..2)
            .map(|i| {
                let s = src.snapshot(i, usize::MAX).unwrap();
                let mut b = OrderBook::new();
                for l in s.bids {
                    b.set(BookSide::Bid, l.price, l.qty);
                }
                for l in s.asks {
                    b.set(BookSide::Ask, l.price, l.qty);
                }
                b
            })
            .collect();
        let mut last_u = [FIRST_UPDATE_ID; 2];
        let mut last_u_1s = [FIRST_UPDATE_ID; 2];
        let mut last_at = 0;
        let mut trades = 0;
        for _ in 0..20_000 {
            let mut out = Vec::new();
            src.step(&mut out);
            for e in out {
                assert!(e.at >= last_at, "time goes forward");
                last_at = e.at;
                let sym = e.key.symbol as usize;
                match (&e.event, e.key.kind) {
                    (Event::Depth(d), StreamKind::Depth100ms) => {
                        assert_eq!(d.first_update_id, last_u[sym] + 1, "contiguous ids");
                        last_u[sym] = d.last_update_id;
                        apply(&mut client[sym], d);
                        assert_eq!(&client[sym], src.live_book(sym as u16).unwrap());
                        let snap = src.snapshot(sym as u16, usize::MAX).unwrap();
                        assert_eq!(snap.last_update_id, d.last_update_id);
                    }
                    (Event::Depth(d), StreamKind::Depth1000ms) => {
                        assert_eq!(d.first_update_id, last_u_1s[sym] + 1);
                        last_u_1s[sym] = d.last_update_id;
                    }
                    (Event::BookTicker { bid, ask, .. }, _) => {
                        assert!(bid.price < ask.price, "never crossed");
                    }
                    (Event::Trade { qty, .. }, _) => {
                        assert!(*qty > 0 && qty % STEP == 0);
                        trades += 1;
                    }
                    _ => {}
                }
            }
            for s in &src.symbols {
                let (b, a) = s.book.depth();
                assert!((MIN_LEVELS..=MAX_LEVELS).contains(&b), "{b} bids");
                assert!((MIN_LEVELS..=MAX_LEVELS).contains(&a), "{a} asks");
                assert!(!s.book.is_crossed());
            }
        }
        assert!(trades > 1000);
        // 20,000 steps at 1,000 actions/s is well over 10 s of simulated time.
        assert!(last_at > 10 * NS_1S);
    }

    #[test]
    fn trades_take_quantity_off_the_touch() {
        let mut src = source(3);
        for _ in 0..2000 {
            let before: Vec<OrderBook> = src.symbols.iter().map(|s| s.book.clone()).collect();
            let mut out = Vec::new();
            src.step(&mut out);
            for e in &out {
                if let Event::Trade {
                    price,
                    qty,
                    buyer_maker,
                    ..
                } = e.event
                {
                    let old = &before[e.key.symbol as usize];
                    let touch = if buyer_maker {
                        old.best_bid()
                    } else {
                        old.best_ask()
                    }
                    .unwrap();
                    assert_eq!(touch.price, price);
                    assert!(qty <= touch.qty);
                }
            }
        }
    }
}
