//! A client-side L2 book kept from BookSnapshot and BookDelta frames.

use std::collections::BTreeMap;

use crate::wire::{ArchivedBody, ArchivedFrame, Body, BookSide, Frame, Level, flags};

/// Price -> quantity per side, in 1e-9 units, rebuilt from frames.
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
                self.bids = s.bids.iter().map(|l| (l.price, l.qty)).collect();
                self.asks = s.asks.iter().map(|l| (l.price, l.qty)).collect();
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
}
