//! An L2 order book: price -> total quantity per side, in 1e-9 units. The feed keeps venue
//! books with it; clients rebuild books from BookSnapshot and BookDelta frames with it.

use std::collections::BTreeMap;

use crate::wire::{ArchivedBody, ArchivedFrame, Body, BookSide, BookSnapshot, Frame, Level, flags};

/// Price -> quantity per side, in 1e-9 units. A level with quantity 0 does not exist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct L2Book {
    bids: BTreeMap<i64, i64>,
    asks: BTreeMap<i64, i64>,
    /// False until a snapshot was applied, and after a frame flagged `BAD_BOOK`.
    valid: bool,
}

impl L2Book {
    /// An empty, not yet valid book.
    pub fn new() -> L2Book {
        L2Book::default()
    }

    /// True once a snapshot was applied and no `BAD_BOOK` frame came after it.
    pub fn is_valid(&self) -> bool {
        self.valid
    }

    /// Applies a frame: a snapshot replaces the book, a delta changes one level, a frame
    /// flagged `BAD_BOOK` invalidates it; other kinds are ignored. Returns true if the book
    /// changed.
    pub fn apply(&mut self, frame: &ArchivedFrame) -> bool {
        if frame.flags & flags::BAD_BOOK != 0 {
            self.valid = false;
        }
        match &frame.body {
            ArchivedBody::BookSnapshot(s) => {
                self.bids.clear();
                self.asks.clear();
                for l in s.bids.iter() {
                    self.bids.insert(l.price.to_native(), l.qty.to_native());
                }
                for l in s.asks.iter() {
                    self.asks.insert(l.price.to_native(), l.qty.to_native());
                }
                self.valid = frame.flags & flags::BAD_BOOK == 0;
                true
            }
            ArchivedBody::BookDelta(d) => {
                self.set(
                    BookSide::from(&d.side),
                    d.price.to_native(),
                    d.qty.to_native(),
                );
                true
            }
            _ => false,
        }
    }

    /// Applies an owned frame (same rules as [`Self::apply`]).
    pub fn apply_owned(&mut self, frame: &Frame) -> bool {
        if frame.flags & flags::BAD_BOOK != 0 {
            self.valid = false;
        }
        match &frame.body {
            Body::BookSnapshot(s) => {
                self.load(s);
                self.valid = frame.flags & flags::BAD_BOOK == 0;
                true
            }
            Body::BookDelta(d) => {
                self.set(d.side, d.price, d.qty);
                true
            }
            _ => false,
        }
    }

    /// Sets a level; quantity 0 removes it.
    pub fn set(&mut self, side: BookSide, price: i64, qty: i64) {
        let m = match side {
            BookSide::Bid => &mut self.bids,
            BookSide::Ask => &mut self.asks,
        };
        if qty == 0 {
            m.remove(&price);
        } else {
            m.insert(price, qty);
        }
    }

    /// Best bid.
    pub fn best_bid(&self) -> Option<Level> {
        self.bids
            .iter()
            .next_back()
            .map(|(&price, &qty)| Level { price, qty })
    }

    /// Best ask.
    pub fn best_ask(&self) -> Option<Level> {
        self.asks
            .iter()
            .next()
            .map(|(&price, &qty)| Level { price, qty })
    }

    /// Bids, best first.
    pub fn bids(&self) -> impl Iterator<Item = Level> + '_ {
        self.bids
            .iter()
            .rev()
            .map(|(&price, &qty)| Level { price, qty })
    }

    /// Asks, best first.
    pub fn asks(&self) -> impl Iterator<Item = Level> + '_ {
        self.asks.iter().map(|(&price, &qty)| Level { price, qty })
    }

    /// Number of (bid, ask) levels.
    pub fn depth(&self) -> (usize, usize) {
        (self.bids.len(), self.asks.len())
    }

    /// Removes every level (and marks the book not valid).
    pub fn clear(&mut self) {
        self.bids.clear();
        self.asks.clear();
        self.valid = false;
    }

    /// True when the best bid is at or above the best ask.
    pub fn is_crossed(&self) -> bool {
        match (self.best_bid(), self.best_ask()) {
            (Some(b), Some(a)) => b.price >= a.price,
            _ => false,
        }
    }

    /// The top `depth` levels per side (all of them with `None`).
    pub fn snapshot(&self, depth: Option<usize>) -> BookSnapshot {
        let n = depth.unwrap_or(usize::MAX);
        BookSnapshot {
            bids: self.bids().take(n).collect(),
            asks: self.asks().take(n).collect(),
        }
    }

    /// Replaces the book with a snapshot's levels (and marks it valid).
    pub fn load(&mut self, snapshot: &BookSnapshot) {
        self.bids = snapshot
            .bids
            .iter()
            .map(|l| (l.price, l.qty))
            .filter(|l| l.1 != 0)
            .collect();
        self.asks = snapshot
            .asks
            .iter()
            .map(|l| (l.price, l.qty))
            .filter(|l| l.1 != 0)
            .collect();
        self.valid = true;
    }

    /// Marks the book valid or not (a venue book is valid while it is synced).
    pub fn set_valid(&mut self, valid: bool) {
        self.valid = valid;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_set_remove_and_order() {
        let mut b = L2Book::new();
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
        let mut c = L2Book::new();
        c.load(&b.snapshot(None));
        assert!(c.is_valid());
        assert_eq!(c.bids().collect::<Vec<_>>(), b.bids().collect::<Vec<_>>());
        assert_eq!(c.asks().collect::<Vec<_>>(), b.asks().collect::<Vec<_>>());
    }
}
