//! Market events as the simulator produces them (typed, before rendering to Binance JSON),
//! and the book-consistency helpers: diff accumulation, applying diffs, bridging two books.
//!
//! Prices and quantities are fixed point, 1e-9 units (see `tickwire_sdk::wire::fixed`).

use std::collections::BTreeMap;

use tickwire_sdk::wire::{BookSide, Level};

use super::stream::StreamKey;
use crate::book::OrderBook;

/// A diff-depth update: every level that changed in update ids `first..=last`, with its new
/// absolute quantity (0 = level removed). Bids best (highest) first, asks best (lowest) first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DepthUpdate {
    /// First update id in the event (`U`).
    pub first_update_id: u64,
    /// Final update id in the event (`u`), `>= first_update_id`.
    pub last_update_id: u64,
    /// Changed bid levels.
    pub bids: Vec<Level>,
    /// Changed ask levels.
    pub asks: Vec<Level>,
}

/// One market event of one symbol, as a Binance stream reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A trade (`@trade`).
    Trade {
        /// Trade id (`t`), increasing per symbol.
        id: u64,
        /// Price, 1e-9 units.
        price: i64,
        /// Quantity, 1e-9 units.
        qty: i64,
        /// `m`: the buyer was the maker (the taker sold).
        buyer_maker: bool,
    },
    /// An aggregated trade (`@aggTrade`).
    AggTrade {
        /// Aggregate trade id (`a`).
        id: u64,
        /// First trade id (`f`).
        first_trade: u64,
        /// Last trade id (`l`).
        last_trade: u64,
        /// Price, 1e-9 units.
        price: i64,
        /// Quantity, 1e-9 units.
        qty: i64,
        /// `m`: the buyer was the maker.
        buyer_maker: bool,
    },
    /// The best bid and ask (`@bookTicker`). A side with no level has price and qty 0.
    BookTicker {
        /// Order book update id (`u`).
        update_id: u64,
        /// Best bid.
        bid: Level,
        /// Best ask.
        ask: Level,
    },
    /// A diff-depth update (`@depth` or `@depth@100ms`, told apart by the stream key).
    Depth(DepthUpdate),
}

/// An event on its stream, at its scheduled time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emitted {
    /// The stream the event belongs to.
    pub key: StreamKey,
    /// Scheduled time in ns of simulated time since the simulation began (before the speed
    /// factor; the server maps it to wall-clock time).
    pub at: u64,
    /// The event.
    pub event: Event,
}

/// Accumulates book changes into one [`DepthUpdate`] (last value per level wins), as Binance
/// batches changes per 100 ms or per second.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DepthDiff {
    first: Option<u64>,
    last: u64,
    bids: BTreeMap<i64, i64>,
    asks: BTreeMap<i64, i64>,
}

impl DepthDiff {
    /// An empty accumulator.
    pub fn new() -> DepthDiff {
        DepthDiff::default()
    }

    /// Records that `price` on `side` became `qty` (0 = removed) with update id `update_id`.
    pub fn record(&mut self, side: BookSide, price: i64, qty: i64, update_id: u64) {
        self.first.get_or_insert(update_id);
        self.last = self.last.max(update_id);
        match side {
            BookSide::Bid => self.bids.insert(price, qty),
            BookSide::Ask => self.asks.insert(price, qty),
        };
    }

    /// Folds a whole update in (its ids extend the accumulated range).
    pub fn merge(&mut self, update: &DepthUpdate) {
        self.first.get_or_insert(update.first_update_id);
        self.last = self.last.max(update.last_update_id);
        for l in &update.bids {
            self.bids.insert(l.price, l.qty);
        }
        for l in &update.asks {
            self.asks.insert(l.price, l.qty);
        }
    }

    /// Whether nothing was recorded since the last [`Self::take`].
    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    /// The accumulated update (bids best first, asks best first), leaving the accumulator
    /// empty; `None` if nothing was recorded.
    pub fn take(&mut self) -> Option<DepthUpdate> {
        let first = self.first.take()?;
        let update = DepthUpdate {
            first_update_id: first,
            last_update_id: self.last.max(first),
            bids: self
                .bids
                .iter()
                .rev()
                .map(|(&price, &qty)| Level { price, qty })
                .collect(),
            asks: self
                .asks
                .iter()
                .map(|(&price, &qty)| Level { price, qty })
                .collect(),
        };
        self.bids.clear();
        self.asks.clear();
        self.last = 0;
        Some(update)
    }
}

/// Applies a diff to a book (absolute quantities; 0 removes; removing an absent level is fine).
pub fn apply(book: &mut OrderBook, update: &DepthUpdate) {
    for l in &update.bids {
        book.set(BookSide::Bid, l.price, l.qty);
    }
    for l in &update.asks {
        book.set(BookSide::Ask, l.price, l.qty);
    }
}

/// The levels that turn book `from` into book `to`: every level of `from` missing in `to`
/// with quantity 0, every level of `to` that `from` lacks or holds with another quantity.
/// Returns (bids best first, asks best first).
pub fn bridge(from: &OrderBook, to: &OrderBook) -> (Vec<Level>, Vec<Level>) {
    fn side(from: Vec<Level>, to: Vec<Level>, best_high: bool) -> Vec<Level> {
        let old: BTreeMap<i64, i64> = from.iter().map(|l| (l.price, l.qty)).collect();
        let new: BTreeMap<i64, i64> = to.iter().map(|l| (l.price, l.qty)).collect();
        let mut out: BTreeMap<i64, i64> = BTreeMap::new();
        for (&p, _) in old.iter().filter(|(p, _)| !new.contains_key(p)) {
            out.insert(p, 0);
        }
        for (&p, &q) in &new {
            if old.get(&p) != Some(&q) {
                out.insert(p, q);
            }
        }
        let levels = out.into_iter().map(|(price, qty)| Level { price, qty });
        if best_high {
            levels.rev().collect()
        } else {
            levels.collect()
        }
    }
    (
        side(from.bids().collect(), to.bids().collect(), true),
        side(from.asks().collect(), to.asks().collect(), false),
    )
}

/// The best bid and ask of `book`; an empty side gives price and qty 0.
pub fn top(book: &OrderBook) -> (Level, Level) {
    let empty = Level { price: 0, qty: 0 };
    (
        book.best_bid().unwrap_or(empty),
        book.best_ask().unwrap_or(empty),
    )
}

/// A REST depth snapshot: the top levels of a book and the update id it stands at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepthSnapshot {
    /// `lastUpdateId`: the `u` of the last depth event sent before the snapshot.
    pub last_update_id: u64,
    /// Bids, best first.
    pub bids: Vec<Level>,
    /// Asks, best first.
    pub asks: Vec<Level>,
}

impl DepthSnapshot {
    /// The top `limit` levels per side of `book` at `last_update_id`.
    pub fn of(book: &OrderBook, last_update_id: u64, limit: usize) -> DepthSnapshot {
        DepthSnapshot {
            last_update_id,
            bids: book.bids().take(limit).collect(),
            asks: book.asks().take(limit).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(price: i64, qty: i64) -> Level {
        Level { price, qty }
    }

    #[test]
    fn diff_accumulates_last_value_and_id_range() {
        let mut d = DepthDiff::new();
        assert!(d.take().is_none());
        d.record(BookSide::Bid, 100, 5, 11);
        d.record(BookSide::Bid, 101, 1, 12);
        d.record(BookSide::Bid, 100, 0, 13);
        d.record(BookSide::Ask, 103, 2, 14);
        d.merge(&DepthUpdate {
            first_update_id: 15,
            last_update_id: 17,
            bids: vec![],
            asks: vec![l(102, 7)],
        });
        let u = d.take().unwrap();
        assert_eq!((u.first_update_id, u.last_update_id), (11, 17));
        assert_eq!(u.bids, vec![l(101, 1), l(100, 0)]);
        assert_eq!(u.asks, vec![l(102, 7), l(103, 2)]);
        assert!(d.is_empty());
        assert!(d.take().is_none());
    }

    #[test]
    fn bridge_turns_one_book_into_another() {
        let mut a = OrderBook::new();
        let mut b = OrderBook::new();
        for (p, q) in [(100, 1), (99, 2), (98, 3)] {
            a.set(BookSide::Bid, p, q);
        }
        for (p, q) in [(101, 1), (102, 2)] {
            a.set(BookSide::Ask, p, q);
        }
        for (p, q) in [(100, 1), (99, 5), (97, 3)] {
            b.set(BookSide::Bid, p, q);
        }
        b.set(BookSide::Ask, 103, 4);
        let (bids, asks) = bridge(&a, &b);
        assert_eq!(bids, vec![l(99, 5), l(98, 0), l(97, 3)]);
        assert_eq!(asks, vec![l(101, 0), l(102, 0), l(103, 4)]);
        let mut c = a.clone();
        apply(
            &mut c,
            &DepthUpdate {
                first_update_id: 1,
                last_update_id: 1,
                bids,
                asks,
            },
        );
        assert_eq!(c, b);
        assert_eq!(bridge(&b, &b), (vec![], vec![]));
        let s = DepthSnapshot::of(&b, 9, 2);
        assert_eq!(s.bids, vec![l(100, 1), l(99, 5)]);
        assert_eq!(top(&OrderBook::new()), (l(0, 0), l(0, 0)));
    }
}
