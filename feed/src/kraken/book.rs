//! Kraken's L2 book as its checksum needs it: depth-limited, each level with the number of
//! fractional digits its price and quantity were sent with, and the CRC32 over the top ten.
//!
//! Documented rules (docs.kraken.com, "Spot Websockets (v1) Book Checksum" and "(v2) Book
//! Checksum"): apply every level of a message in order (quantity 0 deletes); then truncate
//! each side to the subscribed depth (levels pushed beyond it are dropped: no delete is sent
//! for them); then the checksum is the CRC32 of the top 10 asks (low to high) followed by the
//! top 10 bids (high to low), each level written as its price then its quantity with the `.`
//! removed and leading zeros stripped. v1 uses the strings as sent; v2 formats the numbers at
//! the pair's price and quantity precision.

use std::collections::VecDeque;

use tickwire_sdk::wire::{BookSide, BookSnapshot, Level};

/// Levels per side the checksum covers.
pub const CHECKSUM_LEVELS: usize = 10;

/// One price level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KLevel {
    /// Price, 1e-9 units (wider than a frame's i64: Kraken books hold far-out levels such
    /// as an ask at 9,999,999,997 CHF, which frames cannot carry but the book must keep).
    pub price: i128,
    /// Quantity, 1e-9 units.
    pub qty: i128,
    /// Fractional digits of the price as sent.
    pub price_dec: u8,
    /// Fractional digits of the quantity as sent.
    pub qty_dec: u8,
}

impl KLevel {
    /// As a frame level, if price and quantity fit the frame's i64.
    #[inline]
    pub fn to_level(&self) -> Option<Level> {
        Some(Level {
            price: i64::try_from(self.price).ok()?,
            qty: i64::try_from(self.qty).ok()?,
        })
    }
}

/// How a book's checksum writes its numbers: each level's text as sent (v1), or every price
/// and quantity at the pair's precision (v2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumFormat {
    /// As sent: the fractional digits each level came with ([`KrakenBook::checksum_as_sent`]).
    AsSent,
    /// At fixed (price, quantity) decimals ([`KrakenBook::checksum_at`]).
    At(u8, u8),
}

/// Bytes of checksum text a level keeps: its price digits then its quantity digits (two u64
/// values are at most 20 digits each, so every level whose values fit a u64 fits).
const TEXT: usize = 47;
/// [`Slot::len`] when the text is not written yet.
const UNSET: u8 = 0xFF;
/// [`Slot::len`] when the text is longer than [`TEXT`] (values beyond u64): written into the
/// checksum input directly every time.
const LONG: u8 = 0xFE;

/// A level and, once a checksum needed it, its checksum text in the book's format.
#[derive(Debug, Clone, Copy)]
struct Slot {
    level: KLevel,
    len: u8,
    text: [u8; TEXT],
}

impl Slot {
    #[inline]
    fn new(level: KLevel) -> Slot {
        Slot {
            level,
            len: UNSET,
            text: [0; TEXT],
        }
    }
}

/// One side, sorted from the worst level to the best (the best is at the back), so that
/// updates near the top move few elements and truncation pops from the front.
#[derive(Debug, Clone, Default)]
struct Side {
    ask: bool,
    levels: VecDeque<Slot>,
}

impl Side {
    /// Sort key: ascending from worst to best.
    #[inline]
    fn key(&self, price: i128) -> i128 {
        if self.ask { -price } else { price }
    }

    #[inline]
    fn find(&self, price: i128) -> Result<usize, usize> {
        let k = self.key(price);
        self.levels
            .binary_search_by(|s| self.key(s.level.price).cmp(&k))
    }

    fn set(&mut self, l: KLevel) {
        match self.find(l.price) {
            Ok(i) => {
                if l.qty == 0 {
                    self.levels.remove(i);
                } else {
                    self.levels[i] = Slot::new(l);
                }
            }
            Err(i) => {
                if l.qty != 0 {
                    self.levels.insert(i, Slot::new(l));
                }
            }
        }
    }

    fn best(&self) -> Option<&KLevel> {
        self.levels.back().map(|s| &s.level)
    }

    /// Best first.
    fn iter_best(&self) -> impl Iterator<Item = &KLevel> {
        self.levels.iter().rev().map(|s| &s.level)
    }

    /// Appends the checksum text of the best [`CHECKSUM_LEVELS`] levels to `out` at `len`
    /// (`out` has room for each level's text plus [`TEXT`] bytes), writing the text of a
    /// level that has none yet; returns the new length.
    #[inline]
    fn checksum_text(&mut self, fmt: ChecksumFormat, out: &mut [u8], mut len: usize) -> usize {
        for s in self.levels.iter_mut().rev().take(CHECKSUM_LEVELS) {
            if s.len == UNSET {
                let (pd, qd) = match fmt {
                    ChecksumFormat::AsSent => (s.level.price_dec, s.level.qty_dec),
                    ChecksumFormat::At(p, q) => (p, q),
                };
                let mut tmp = [0u8; 2 * 40];
                let n = digits_into(s.level.price, pd, &mut tmp);
                let n = n + digits_into(s.level.qty, qd, &mut tmp[n..]);
                if n <= TEXT {
                    s.text[..n].copy_from_slice(&tmp[..n]);
                    s.len = n as u8;
                } else {
                    s.len = LONG;
                }
            }
            if s.len == LONG {
                let (pd, qd) = match fmt {
                    ChecksumFormat::AsSent => (s.level.price_dec, s.level.qty_dec),
                    ChecksumFormat::At(p, q) => (p, q),
                };
                len += digits_into(s.level.price, pd, &mut out[len..]);
                len += digits_into(s.level.qty, qd, &mut out[len..]);
            } else {
                // The whole text array at once (a fixed-size copy), then only its length
                // counts: what follows is overwritten by the next level or not hashed.
                out[len..len + TEXT].copy_from_slice(&s.text);
                len += s.len as usize;
            }
        }
        len
    }

    /// Forgets every level's checksum text.
    fn forget_text(&mut self) {
        for s in self.levels.iter_mut() {
            s.len = UNSET;
        }
    }
}

/// A Kraken book.
#[derive(Debug, Clone)]
pub struct KrakenBook {
    bids: Side,
    asks: Side,
    /// The format of the checksum texts the levels hold.
    format: ChecksumFormat,
}

impl Default for KrakenBook {
    fn default() -> Self {
        KrakenBook::new()
    }
}

impl KrakenBook {
    /// An empty book.
    pub fn new() -> KrakenBook {
        KrakenBook {
            bids: Side {
                ask: false,
                levels: VecDeque::new(),
            },
            asks: Side {
                ask: true,
                levels: VecDeque::new(),
            },
            format: ChecksumFormat::AsSent,
        }
    }

    fn side_mut(&mut self, side: BookSide) -> &mut Side {
        match side {
            BookSide::Bid => &mut self.bids,
            BookSide::Ask => &mut self.asks,
        }
    }

    /// Sets a level (quantity 0 removes it).
    #[inline]
    pub fn set(&mut self, side: BookSide, level: KLevel) {
        self.side_mut(side).set(level);
    }

    /// Removes every level.
    pub fn clear(&mut self) {
        self.bids.levels.clear();
        self.asks.levels.clear();
    }

    /// Drops the worst levels beyond `depth` on each side, calling `dropped` for each.
    pub fn truncate(&mut self, depth: usize, mut dropped: impl FnMut(BookSide, i128)) {
        while self.bids.levels.len() > depth {
            if let Some(s) = self.bids.levels.pop_front() {
                dropped(BookSide::Bid, s.level.price);
            }
        }
        while self.asks.levels.len() > depth {
            if let Some(s) = self.asks.levels.pop_front() {
                dropped(BookSide::Ask, s.level.price);
            }
        }
    }

    /// Number of (bid, ask) levels.
    pub fn depth(&self) -> (usize, usize) {
        (self.bids.levels.len(), self.asks.levels.len())
    }

    /// Best bid and best ask.
    pub fn best(&self) -> (Option<KLevel>, Option<KLevel>) {
        (self.bids.best().copied(), self.asks.best().copied())
    }

    /// True when the best bid is at or above the best ask.
    pub fn is_crossed(&self) -> bool {
        match (self.bids.best(), self.asks.best()) {
            (Some(b), Some(a)) => b.price >= a.price,
            _ => false,
        }
    }

    /// Every level a frame can carry (price and quantity within i64), best first, as a
    /// snapshot body.
    pub fn snapshot(&self) -> BookSnapshot {
        let conv = |l: &KLevel| l.to_level();
        BookSnapshot {
            bids: self.bids.iter_best().filter_map(conv).collect(),
            asks: self.asks.iter_best().filter_map(conv).collect(),
        }
    }

    /// Bids, best first.
    pub fn bids(&self) -> impl Iterator<Item = &KLevel> {
        self.bids.iter_best()
    }

    /// Asks, best first.
    pub fn asks(&self) -> impl Iterator<Item = &KLevel> {
        self.asks.iter_best()
    }

    /// The checksum with each level's text as sent (v1).
    pub fn checksum_as_sent(&self) -> u32 {
        self.checksum_with(|l| (l.price_dec, l.qty_dec))
    }

    /// The checksum with prices and quantities formatted at fixed precisions (v2).
    pub fn checksum_at(&self, price_dec: u8, qty_dec: u8) -> u32 {
        self.checksum_with(|_| (price_dec, qty_dec))
    }

    /// The checksum in `format`, equal to [`Self::checksum_as_sent`] or [`Self::checksum_at`]
    /// but cheaper: each level's text is written once, the first time a checksum covers the
    /// level, and kept with it until the level changes (or the format does), so a checksum
    /// is 20 small copies and one CRC32 over the result.
    pub fn checksum(&mut self, format: ChecksumFormat) -> u32 {
        if format != self.format {
            self.format = format;
            self.bids.forget_text();
            self.asks.forget_text();
        }
        // 20 levels of at most 2 x 39 digits (values beyond u64), plus the fixed-size copy's
        // overhang.
        let mut text = [0u8; 2 * CHECKSUM_LEVELS * 2 * 40 + TEXT];
        let len = self.asks.checksum_text(format, &mut text, 0);
        let len = self.bids.checksum_text(format, &mut text, len);
        crc32fast::hash(&text[..len])
    }

    fn checksum_with(&self, dec: impl Fn(&KLevel) -> (u8, u8)) -> u32 {
        // The whole checksum input is written into one buffer and hashed at once: 20 levels
        // of two numbers, each at most 39 digits.
        let mut text = [0u8; 2 * 2 * CHECKSUM_LEVELS * 40];
        let mut len = 0;
        for l in self
            .asks
            .iter_best()
            .take(CHECKSUM_LEVELS)
            .chain(self.bids.iter_best().take(CHECKSUM_LEVELS))
        {
            let (pd, qd) = dec(l);
            len += digits_into(l.price, pd, &mut text[len..]);
            len += digits_into(l.qty, qd, &mut text[len..]);
        }
        crc32fast::hash(&text[..len])
    }
}

/// Powers of ten that fit a u64.
const POW10: [u64; 20] = {
    let mut p = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        p[i] = p[i - 1] * 10;
        i += 1;
    }
    p
};

/// `"00".."99"`: two digits per step.
const PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

/// [`digits`], written at the start of `out` (at least 40 bytes): the same text, computed
/// in u64 (no i128 division) whenever the value fits, which is every real price and size.
#[inline]
fn digits_into(value: i128, decimals: u8, out: &mut [u8]) -> usize {
    let abs = value.unsigned_abs();
    let Ok(abs) = u64::try_from(abs) else {
        let mut buf = [0u8; 40];
        let n = digits(value, decimals, &mut buf);
        out[..n].copy_from_slice(&buf[40 - n..]);
        return n;
    };
    let mut n = abs / POW10[9usize.saturating_sub(decimals as usize)];
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    while n >= 100 {
        let d = (n % 100) as usize;
        n /= 100;
        i -= 2;
        buf[i] = PAIRS[2 * d];
        buf[i + 1] = PAIRS[2 * d + 1];
    }
    if n >= 10 {
        i -= 2;
        buf[i] = PAIRS[2 * n as usize];
        buf[i + 1] = PAIRS[2 * n as usize + 1];
    } else if n > 0 {
        i -= 1;
        buf[i] = b'0' + n as u8;
    }
    let len = buf.len() - i;
    out[..len].copy_from_slice(&buf[i..]);
    len
}

/// Writes `value` (1e-9 units) at `decimals` fractional digits with the point removed and
/// leading zeros stripped, right-aligned at the end of `buf`; returns its length (0 for 0).
#[inline]
pub fn digits(value: i128, decimals: u8, buf: &mut [u8; 40]) -> usize {
    let shift = 9u32.saturating_sub(decimals as u32);
    let mut n = value.unsigned_abs() / 10u128.pow(shift);
    let mut i = buf.len();
    while n > 0 {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    buf.len() - i
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One step on a book: set a level, truncate, clear, or take the checksum in a format.
    #[derive(Debug, Clone)]
    enum Op {
        Set(bool, i128, i128, u8, u8),
        Truncate(usize),
        Clear,
        Check(Option<(u8, u8)>),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Prices on a small grid so levels are hit again (replaced, deleted); quantities of
        // every size, zero (a delete) included; now and then values beyond u64.
        let value = prop_oneof![
            8 => (1i128..2_000).prop_map(|p| p * 10_000_000),
            1 => 0i128..=i128::from(u64::MAX),
            1 => Just(i128::from(u64::MAX) + 12_345),
        ];
        let qty = prop_oneof![
            2 => Just(0i128),
            8 => 0i128..1_000_000_000_000_000,
            1 => Just(i128::from(u64::MAX) * 1_000),
        ];
        prop_oneof![
            20 => (any::<bool>(), value, qty, 0u8..=9, 0u8..=9)
                .prop_map(|(b, p, q, pd, qd)| Op::Set(b, p, q, pd, qd)),
            2 => (0usize..30).prop_map(Op::Truncate),
            1 => Just(Op::Clear),
            6 => prop::option::of((0u8..=9, 0u8..=9)).prop_map(Op::Check),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The cached checksum equals the one written from scratch, whatever happened to the
        /// book and whichever format was asked for before.
        #[test]
        fn cached_checksum_equals_the_written_one(ops in prop::collection::vec(op(), 1..200)) {
            let mut book = KrakenBook::new();
            for op in ops {
                match op {
                    Op::Set(bid, price, qty, pd, qd) => {
                        let side = if bid { BookSide::Bid } else { BookSide::Ask };
                        book.set(side, KLevel { price, qty, price_dec: pd, qty_dec: qd });
                    }
                    Op::Truncate(d) => book.truncate(d, |_, _| {}),
                    Op::Clear => book.clear(),
                    Op::Check(None) => {
                        let want = book.checksum_as_sent();
                        prop_assert_eq!(book.checksum(ChecksumFormat::AsSent), want);
                    }
                    Op::Check(Some((pd, qd))) => {
                        let want = book.checksum_at(pd, qd);
                        prop_assert_eq!(book.checksum(ChecksumFormat::At(pd, qd)), want);
                    }
                }
            }
            let want = book.checksum_at(1, 8);
            prop_assert_eq!(book.checksum(ChecksumFormat::At(1, 8)), want);
        }
    }

    fn lvl(price: i128, qty: i128) -> KLevel {
        KLevel {
            price,
            qty,
            price_dec: 5,
            qty_dec: 8,
        }
    }

    #[test]
    fn digits_strip_point_and_leading_zeros() {
        let mut b = [0u8; 40];
        let n = digits(50_000_000, 5, &mut b); // "0.05000"
        assert_eq!(&b[40 - n..], b"5000");
        let n = digits(3_040, 8, &mut b); // "0.00000304"
        assert_eq!(&b[40 - n..], b"304");
        let n = digits(45_285_200_000_000, 1, &mut b); // 45285.2
        assert_eq!(&b[40 - n..], b"452852");
        assert_eq!(digits(0, 8, &mut b), 0);
    }

    #[test]
    fn digits_into_writes_what_digits_writes() {
        let mut values: Vec<i128> = vec![0, 1, 9, 10, 99, 100, 999_999_999, 1_000_000_000];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..5_000 {
            // xorshift: values of every magnitude.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(i128::from(x >> (x % 64)));
        }
        values.extend([
            i128::from(u64::MAX),
            i128::from(u64::MAX) + 1,
            -12_345_678_900,
            i128::MAX,
            i128::MIN + 1,
        ]);
        let mut buf = [0u8; 40];
        let mut out = [0u8; 40];
        for v in values {
            for dec in [0u8, 1, 2, 5, 8, 9, 12] {
                let n = digits(v, dec, &mut buf);
                let m = digits_into(v, dec, &mut out);
                assert_eq!(&out[..m], &buf[40 - n..], "{v} at {dec}");
            }
        }
    }

    #[test]
    fn sides_sort_truncate_and_cross() {
        let mut b = KrakenBook::new();
        for p in [100, 99, 101, 98] {
            b.set(BookSide::Bid, lvl(p, 1));
        }
        for p in [103, 105, 104, 102] {
            b.set(BookSide::Ask, lvl(p, 1));
        }
        assert_eq!(b.best().0.unwrap().price, 101);
        assert_eq!(b.best().1.unwrap().price, 102);
        let mut dropped = Vec::new();
        b.truncate(2, |s, p| dropped.push((s, p)));
        assert_eq!(
            dropped,
            vec![
                (BookSide::Bid, 98),
                (BookSide::Bid, 99),
                (BookSide::Ask, 105),
                (BookSide::Ask, 104)
            ]
        );
        let s = b.snapshot();
        assert_eq!(
            s.bids.iter().map(|l| l.price).collect::<Vec<_>>(),
            [101, 100]
        );
        assert_eq!(
            s.asks.iter().map(|l| l.price).collect::<Vec<_>>(),
            [102, 103]
        );
        b.set(BookSide::Bid, lvl(101, 0));
        b.set(BookSide::Bid, lvl(50, 0)); // absent: nothing
        assert_eq!(b.depth(), (1, 2));
        assert!(!b.is_crossed());
        b.set(BookSide::Bid, lvl(102, 1));
        assert!(b.is_crossed());
    }
}
