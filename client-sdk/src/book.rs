//! An L2 order book: price -> total quantity per side, in 1e-9 units. The feed keeps venue
//! books with it; clients rebuild books from BookSnapshot and BookDelta frames with it.

use crate::wire::{ArchivedBody, ArchivedFrame, Body, BookSide, BookSnapshot, Frame, Level, flags};

/// Price -> quantity per side, in 1e-9 units. A level with quantity 0 does not exist.
///
/// Each side is a short list of sorted blocks of levels (a two-level B-tree): finding a level
/// is a binary search over the blocks' last keys, then one inside a block, both over
/// contiguous memory, and a change moves at most one block's levels. The best level is the
/// last of the last block, where most changes land.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct L2Book {
    bids: Side<true>,
    asks: Side<false>,
    /// False until a snapshot was applied, and after a frame flagged `BAD_BOOK`.
    valid: bool,
}

/// Levels per block after a split (a block splits when it reaches twice this).
const BLOCK: usize = if cfg!(test) { 4 } else { 64 };

/// One side of the book: `(key, qty)` in ascending key order across `blocks`, so the best
/// level is last. The key is the price for bids and its bitwise NOT for asks (an
/// order-reversing bijection on `i64`, so the lowest ask has the highest key).
///
/// Invariants: no block is empty; `tops[b]` is the key of `blocks[b]`'s last level; `len` is
/// the number of levels.
#[derive(Debug, Clone, Default)]
struct Side<const BID: bool> {
    blocks: Vec<Vec<(i64, i64)>>,
    tops: Vec<i64>,
    len: usize,
}

impl<const BID: bool> PartialEq for Side<BID> {
    /// Same levels, however they are split into blocks.
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<const BID: bool> Eq for Side<BID> {}

impl<const BID: bool> Side<BID> {
    #[inline]
    fn key(price: i64) -> i64 {
        if BID { price } else { !price }
    }

    /// Sets a level; quantity 0 removes it.
    #[inline]
    fn set(&mut self, price: i64, qty: i64) {
        let k = Self::key(price);
        // The first block whose last key is >= k; past the end, the last block (if any).
        let mut b = self.tops.partition_point(|&t| t < k);
        if b == self.blocks.len() {
            if qty == 0 {
                return;
            }
            if b == 0 {
                self.blocks.push(vec![(k, qty)]);
                self.tops.push(k);
                self.len = 1;
                return;
            }
            b -= 1;
        }
        let block = &mut self.blocks[b];
        let i = block.partition_point(|l| l.0 < k);
        if i < block.len() && block[i].0 == k {
            if qty != 0 {
                block[i].1 = qty;
                return;
            }
            block.remove(i);
            self.len -= 1;
            match block.last() {
                None => {
                    self.blocks.remove(b);
                    self.tops.remove(b);
                }
                Some(last) => self.tops[b] = last.0,
            }
            return;
        }
        if qty == 0 {
            return;
        }
        block.insert(i, (k, qty));
        self.len += 1;
        self.tops[b] = block[block.len() - 1].0;
        if block.len() >= 2 * BLOCK {
            let upper = block.split_off(BLOCK);
            self.tops[b] = block[BLOCK - 1].0;
            self.tops.insert(b + 1, upper[upper.len() - 1].0);
            self.blocks.insert(b + 1, upper);
        }
    }

    /// The best level.
    #[inline]
    fn best(&self) -> Option<Level> {
        let &(k, qty) = self.blocks.last()?.last()?;
        Some(Level {
            price: Self::key(k),
            qty,
        })
    }

    /// Levels, best first.
    fn iter(&self) -> impl Iterator<Item = Level> + '_ {
        self.blocks.iter().rev().flat_map(|b| {
            b.iter().rev().map(|&(k, qty)| Level {
                price: Self::key(k),
                qty,
            })
        })
    }

    /// Replaces the side with `levels` in any order; for a price given twice the last
    /// quantity counts, and quantity 0 means no level.
    fn load(&mut self, levels: impl Iterator<Item = (i64, i64)>) {
        let mut v: Vec<(i64, i64)> = levels.map(|(p, q)| (Self::key(p), q)).collect();
        // Stable, so equal prices keep their order, and the last one's quantity wins.
        v.sort_by_key(|l| l.0);
        v.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 = later.1;
            }
            same
        });
        v.retain(|l| l.1 != 0);
        self.len = v.len();
        self.blocks = v.chunks(BLOCK).map(<[_]>::to_vec).collect();
        self.tops = self.blocks.iter().map(|b| b[b.len() - 1].0).collect();
    }

    fn len(&self) -> usize {
        self.len
    }

    fn clear(&mut self) {
        self.blocks.clear();
        self.tops.clear();
        self.len = 0;
    }
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
                let level = |l: &crate::wire::frame::ArchivedLevel| {
                    (l.price.to_native(), l.qty.to_native())
                };
                self.bids.load(s.bids.iter().map(level));
                self.asks.load(s.asks.iter().map(level));
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
    #[inline]
    pub fn set(&mut self, side: BookSide, price: i64, qty: i64) {
        match side {
            BookSide::Bid => self.bids.set(price, qty),
            BookSide::Ask => self.asks.set(price, qty),
        }
    }

    /// Best bid.
    pub fn best_bid(&self) -> Option<Level> {
        self.bids.best()
    }

    /// Best ask.
    pub fn best_ask(&self) -> Option<Level> {
        self.asks.best()
    }

    /// Bids, best first.
    pub fn bids(&self) -> impl Iterator<Item = Level> + '_ {
        self.bids.iter()
    }

    /// Asks, best first.
    pub fn asks(&self) -> impl Iterator<Item = Level> + '_ {
        self.asks.iter()
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
        self.bids
            .load(snapshot.bids.iter().map(|l| (l.price, l.qty)));
        self.asks
            .load(snapshot.asks.iter().map(|l| (l.price, l.qty)));
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
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// The obvious model: a map per side.
    #[derive(Default)]
    struct Model {
        bids: BTreeMap<i64, i64>,
        asks: BTreeMap<i64, i64>,
    }

    impl Model {
        fn set(&mut self, side: BookSide, price: i64, qty: i64) {
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

        fn bids(&self) -> Vec<Level> {
            self.bids
                .iter()
                .rev()
                .map(|(&price, &qty)| Level { price, qty })
                .collect()
        }

        fn asks(&self) -> Vec<Level> {
            self.asks
                .iter()
                .map(|(&price, &qty)| Level { price, qty })
                .collect()
        }
    }

    fn op() -> impl Strategy<Value = (bool, i64, i64)> {
        // Narrow price ranges make hits, removals and re-inserts common (and, with the
        // tests' 4-level blocks, splits and emptied blocks); the extremes check the ask
        // key's bit flip at the ends of `i64`.
        let price = prop_oneof![
            8 => 90i64..150,
            1 => -5i64..5,
            1 => prop::sample::select(vec![i64::MIN, i64::MIN + 1, i64::MAX - 1, i64::MAX]),
            1 => any::<i64>(),
        ];
        (
            any::<bool>(),
            price,
            prop_oneof![1 => Just(0i64), 3 => 1i64..1_000],
        )
    }

    fn check_blocks<const BID: bool>(side: &Side<BID>) {
        assert!(
            side.blocks
                .iter()
                .all(|b| !b.is_empty() && b.len() < 2 * BLOCK)
        );
        let keys: Vec<i64> = side.blocks.iter().flatten().map(|l| l.0).collect();
        assert!(
            keys.windows(2).all(|w| w[0] < w[1]),
            "keys ascend: {keys:?}"
        );
        assert_eq!(keys.len(), side.len);
        let tops: Vec<i64> = side.blocks.iter().map(|b| b[b.len() - 1].0).collect();
        assert_eq!(tops, side.tops);
    }

    proptest! {
        #[test]
        fn matches_a_map_per_side(
            snapshot in prop::collection::vec(op(), 0..40),
            ops in prop::collection::vec(op(), 0..300),
        ) {
            let mut book = L2Book::new();
            let mut model = Model::default();
            // A snapshot in arbitrary order, repeated prices (the last counts) and zeros.
            let level = |&(_, price, qty): &(bool, i64, i64)| Level { price, qty };
            let snap = BookSnapshot {
                bids: snapshot.iter().filter(|o| o.0).map(level).collect(),
                asks: snapshot.iter().filter(|o| !o.0).map(level).collect(),
            };
            book.load(&snap);
            for &(bid, price, qty) in &snapshot {
                model.set(if bid { BookSide::Bid } else { BookSide::Ask }, price, qty);
            }
            for &(bid, price, qty) in &ops {
                let side = if bid { BookSide::Bid } else { BookSide::Ask };
                book.set(side, price, qty);
                model.set(side, price, qty);
                prop_assert_eq!(book.best_bid(), model.bids().first().copied());
                prop_assert_eq!(book.best_ask(), model.asks().first().copied());
            }
            check_blocks(&book.bids);
            check_blocks(&book.asks);
            prop_assert_eq!(book.bids().collect::<Vec<_>>(), model.bids());
            prop_assert_eq!(book.asks().collect::<Vec<_>>(), model.asks());
            prop_assert_eq!(book.depth(), (model.bids.len(), model.asks.len()));
            let mut copy = L2Book::new();
            copy.load(&book.snapshot(None));
            check_blocks(&copy.bids);
            prop_assert_eq!(&copy, &book);
        }
    }

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
