//! A price-level (L2) order book in fixed point: price -> total quantity per side.

use std::collections::BTreeMap;

use tickwire_sdk::wire::{BookSide, BookSnapshot, Level};

/// An L2 book. Quantities are totals at a price; a level with quantity 0 does not exist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderBook {
    bids: BTreeMap<i64, i64>,
    asks: BTreeMap<i64, i64>,
}

impl OrderBook {
    /// An empty book.
    pub fn new() -> OrderBook {
        OrderBook::default()
    }

    /// Removes every level.
    pub fn clear(&mut self) {
        self.bids.clear();
        self.asks.clear();
    }

    /// Sets the quantity at `price` on `side`; 0 removes the level (absent levels are fine).
    #[inline]
    pub fn set(&mut self, side: BookSide, price: i64, qty: i64) {
        let levels = match side {
            BookSide::Bid => &mut self.bids,
            BookSide::Ask => &mut self.asks,
        };
        if qty == 0 {
            levels.remove(&price);
        } else {
            levels.insert(price, qty);
        }
    }

    /// Best bid (highest), if any.
    pub fn best_bid(&self) -> Option<Level> {
        self.bids
            .iter()
            .next_back()
            .map(|(&price, &qty)| Level { price, qty })
    }

    /// Best ask (lowest), if any.
    pub fn best_ask(&self) -> Option<Level> {
        self.asks
            .iter()
            .next()
            .map(|(&price, &qty)| Level { price, qty })
    }

    /// True when the best bid is at or above the best ask.
    pub fn is_crossed(&self) -> bool {
        match (self.best_bid(), self.best_ask()) {
            (Some(b), Some(a)) => b.price >= a.price,
            _ => false,
        }
    }

    /// Bids, best (highest) first.
    pub fn bids(&self) -> impl Iterator<Item = Level> + '_ {
        self.bids
            .iter()
            .rev()
            .map(|(&price, &qty)| Level { price, qty })
    }

    /// Asks, best (lowest) first.
    pub fn asks(&self) -> impl Iterator<Item = Level> + '_ {
        self.asks.iter().map(|(&price, &qty)| Level { price, qty })
    }

    /// Number of (bid, ask) levels.
    pub fn depth(&self) -> (usize, usize) {
        (self.bids.len(), self.asks.len())
    }

    /// The top `depth` levels per side (all of them with `None`).
    pub fn snapshot(&self, depth: Option<usize>) -> BookSnapshot {
        let n = depth.unwrap_or(usize::MAX);
        BookSnapshot {
            bids: self.bids().take(n).collect(),
            asks: self.asks().take(n).collect(),
        }
    }

    /// Replaces the book with a snapshot's levels.
    pub fn load(&mut self, snapshot: &BookSnapshot) {
        self.clear();
        for l in &snapshot.bids {
            self.set(BookSide::Bid, l.price, l.qty);
        }
        for l in &snapshot.asks {
            self.set(BookSide::Ask, l.price, l.qty);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_set_remove_and_order() {
        let mut b = OrderBook::new();
        b.set(BookSide::Bid, 100, 1);
        b.set(BookSide::Bid, 101, 2);
        b.set(BookSide::Ask, 103, 3);
        b.set(BookSide::Ask, 102, 4);
        assert_eq!(b.best_bid(), Some(Level { price: 101, qty: 2 }));
        assert_eq!(b.best_ask(), Some(Level { price: 102, qty: 4 }));
        assert!(!b.is_crossed());
        b.set(BookSide::Bid, 101, 0);
        b.set(BookSide::Bid, 99, 0); // deleting an absent level is fine
        assert_eq!(b.best_bid().unwrap().price, 100);
        b.set(BookSide::Bid, 102, 1);
        assert!(b.is_crossed());
        let s = b.snapshot(Some(1));
        assert_eq!(s.bids, vec![Level { price: 102, qty: 1 }]);
        let mut c = OrderBook::new();
        c.load(&b.snapshot(None));
        assert_eq!(b, c);
    }
}
