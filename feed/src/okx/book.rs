//! The OKX order book as the `books` channel builds it, with the documented CRC32 checksum.
//!
//! OKX's checksum ("Order book channel", "Checksum" section of
//! <https://www.okx.com/docs-v5/en/#order-book-trading-market-data-ws-order-book-channel>):
//! the top 25 levels of each side of the local book, interleaved
//! `bid1px:bid1sz:ask1px:ask1sz:bid2px:...`; when one side has fewer levels, the other side's
//! remaining levels follow alone. CRC32 (IEEE) of that text, compared as a signed 32-bit
//! integer. The prices and sizes are the strings as sent: each level keeps its own
//! `price:size` text as OKX sent it (inline, up to [`TEXT_CAP`] bytes), so the checksum only
//! copies texts instead of rendering 100 decimals per update. A level whose text is longer
//! (never seen from OKX) keeps its value and the number of fractional digits of its text, and
//! its text is rendered back from them ([`tickwire_sdk::wire::write_decimal`] reproduces any
//! plain decimal exactly; an unusual spelling would fail the checksum loudly, never silently).
//!
//! Each side is a vector sorted with the best level LAST, so the busy top of the book is
//! changed with short moves and the checksum reads the last 25 entries. The texts live in a
//! slab beside the vectors (a level holds its slot), so inserts and removals deep in a
//! 400-level book move only the small levels, not their texts.

use tickwire_sdk::wire::{BookSide, BookSnapshot, Level, Parsed, write_decimal};

/// Levels per side that enter the checksum.
pub const CHECKSUM_DEPTH: usize = 25;

/// The longest `price:size` text kept inline with its level.
pub const TEXT_CAP: usize = 38;

/// One level with its text as sent (or, when that is too long, the number of fractional
/// digits its texts had, to render it back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextLevel {
    /// Price, 1e-9 units.
    pub price: i64,
    /// Size, 1e-9 units; 0 deletes the level.
    pub qty: i64,
    /// Fractional digits of the price text.
    pub price_decimals: u8,
    /// Fractional digits of the size text.
    pub qty_decimals: u8,
    /// Length of `text`; 0 when the text did not fit and is rendered from the values.
    text_len: u8,
    /// `price:size` as sent.
    text: [u8; TEXT_CAP],
}

impl TextLevel {
    /// A level from its parsed price and size and their texts as sent.
    #[inline]
    pub fn new(price: Parsed, qty: Parsed, price_text: &[u8], qty_text: &[u8]) -> TextLevel {
        let mut l = TextLevel {
            price: price.value,
            qty: qty.value,
            price_decimals: price.decimals,
            qty_decimals: qty.decimals,
            text_len: 0,
            text: [0; TEXT_CAP],
        };
        let (np, nq) = (price_text.len(), qty_text.len());
        if np + 1 + nq <= TEXT_CAP {
            l.text[..np].copy_from_slice(price_text);
            l.text[np] = b':';
            l.text[np + 1..np + 1 + nq].copy_from_slice(qty_text);
            l.text_len = (np + 1 + nq) as u8;
        }
        l
    }
}

/// One level of the book; its text is in the book's slab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookLevel {
    /// Price, 1e-9 units.
    pub price: i64,
    /// Size, 1e-9 units.
    pub qty: i64,
    /// Fractional digits of the price text.
    pub price_decimals: u8,
    /// Fractional digits of the size text.
    pub qty_decimals: u8,
    /// Where the text is in the slab.
    slot: u32,
}

/// A level's text in the slab: (length, bytes), length 0 to render from the values.
type Text = (u8, [u8; TEXT_CAP]);

/// An L2 book keeping what the checksum needs.
#[derive(Debug, Clone, Default)]
pub struct OkxBook {
    /// Ascending price: the best bid is last.
    bids: Vec<BookLevel>,
    /// Descending price: the best ask is last.
    asks: Vec<BookLevel>,
    /// The texts of the levels, by slot.
    texts: Vec<Text>,
    /// Free slots of `texts`.
    free: Vec<u32>,
    /// The checksum of the top levels, until a change reaches them (deep changes, common in
    /// a 400-level book, leave it valid).
    cached: Option<i32>,
}

impl OkxBook {
    /// An empty book.
    pub fn new() -> OkxBook {
        OkxBook::default()
    }

    /// Removes every level (keeps the capacity).
    pub fn clear(&mut self) {
        self.bids.clear();
        self.asks.clear();
        self.texts.clear();
        self.free.clear();
        self.cached = None;
    }

    /// Sets a level (size 0 removes it; removing an absent level is a no-op).
    pub fn set(&mut self, side: BookSide, level: TextLevel) {
        let OkxBook {
            bids,
            asks,
            texts,
            free,
            cached,
        } = self;
        let (v, pos) = match side {
            BookSide::Bid => {
                let pos = bids.binary_search_by(|l| l.price.cmp(&level.price));
                (bids, pos)
            }
            BookSide::Ask => {
                let pos = asks.binary_search_by(|l| level.price.cmp(&l.price));
                (asks, pos)
            }
        };
        let text = (level.text_len, level.text);
        let at = |slot: u32| BookLevel {
            price: level.price,
            qty: level.qty,
            price_decimals: level.price_decimals,
            qty_decimals: level.qty_decimals,
            slot,
        };
        // The vector is best-last: index i is among the top levels when it is within
        // CHECKSUM_DEPTH of the end (after an insert, before a removal).
        let top = |i: usize, len: usize| i + CHECKSUM_DEPTH >= len;
        let touched_top = match (pos, level.qty == 0) {
            (Ok(i), true) => {
                let t = top(i, v.len());
                free.push(v.remove(i).slot);
                t
            }
            (Ok(i), false) => {
                let slot = v[i].slot;
                texts[slot as usize] = text;
                v[i] = at(slot);
                top(i, v.len())
            }
            (Err(_), true) => false,
            (Err(i), false) => {
                let slot = match free.pop() {
                    Some(slot) => {
                        texts[slot as usize] = text;
                        slot
                    }
                    None => {
                        texts.push(text);
                        (texts.len() - 1) as u32
                    }
                };
                v.insert(i, at(slot));
                top(i, v.len())
            }
        };
        if touched_top {
            *cached = None;
        }
    }

    /// Appends the `price:size` checksum text of `l` to `text`.
    #[inline]
    fn write_text(&self, l: &BookLevel, text: &mut Vec<u8>) {
        let (len, bytes) = &self.texts[l.slot as usize];
        if *len > 0 {
            text.extend_from_slice(&bytes[..usize::from(*len)]);
        } else {
            write_decimal(text, l.price, l.price_decimals);
            text.push(b':');
            write_decimal(text, l.qty, l.qty_decimals);
        }
    }

    /// Number of (bid, ask) levels.
    pub fn depth(&self) -> (usize, usize) {
        (self.bids.len(), self.asks.len())
    }

    /// Best bid.
    pub fn best_bid(&self) -> Option<&BookLevel> {
        self.bids.last()
    }

    /// Best ask.
    pub fn best_ask(&self) -> Option<&BookLevel> {
        self.asks.last()
    }

    /// True when the best bid is at or above the best ask.
    pub fn is_crossed(&self) -> bool {
        match (self.best_bid(), self.best_ask()) {
            (Some(b), Some(a)) => b.price >= a.price,
            _ => false,
        }
    }

    /// Bids, best first.
    pub fn bids(&self) -> impl Iterator<Item = &BookLevel> {
        self.bids.iter().rev()
    }

    /// Asks, best first.
    pub fn asks(&self) -> impl Iterator<Item = &BookLevel> {
        self.asks.iter().rev()
    }

    /// The whole book as a snapshot body, best first.
    pub fn snapshot(&self) -> BookSnapshot {
        let level = |l: &BookLevel| Level {
            price: l.price,
            qty: l.qty,
        };
        BookSnapshot {
            bids: self.bids().map(level).collect(),
            asks: self.asks().map(level).collect(),
        }
    }

    /// Writes the checksum text into `text` (cleared first).
    pub fn checksum_text(&self, text: &mut Vec<u8>) {
        text.clear();
        text.reserve(2 * CHECKSUM_DEPTH * (TEXT_CAP + 1));
        let mut bids = self.bids();
        let mut asks = self.asks();
        for _ in 0..CHECKSUM_DEPTH {
            let (b, a) = (bids.next(), asks.next());
            if b.is_none() && a.is_none() {
                break;
            }
            for l in [b, a].into_iter().flatten() {
                if !text.is_empty() {
                    text.push(b':');
                }
                self.write_text(l, text);
            }
        }
    }

    /// The checksum as OKX sends it (signed 32-bit), using `text` as scratch.
    pub fn checksum(&mut self, text: &mut Vec<u8>) -> i32 {
        if let Some(c) = self.cached {
            return c;
        }
        self.checksum_text(text);
        let c = crc32fast::hash(text) as i32;
        self.cached = Some(c);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickwire_sdk::wire::parse_decimal;

    fn lvl(p: &str, q: &str) -> TextLevel {
        let (pt, qt) = (p.as_bytes(), q.as_bytes());
        TextLevel::new(
            parse_decimal(pt).unwrap(),
            parse_decimal(qt).unwrap(),
            pt,
            qt,
        )
    }

    #[test]
    fn texts_are_kept_as_sent_and_long_ones_rendered() {
        let mut b = book(&[("3366.10", "007")], &[("3366.8", "9.0")]);
        let mut text = Vec::new();
        b.checksum_text(&mut text);
        assert_eq!(text, b"3366.10:007:3366.8:9.0");
        // Too long to keep inline: rendered from the value and its decimals.
        let long = "0.0000000010000000000000000000000000";
        b.set(BookSide::Bid, lvl("3366.2", long));
        b.checksum_text(&mut text);
        assert_eq!(text, b"3366.2:0.000000001:3366.8:9.0:3366.10:007");
        assert_eq!(b.checksum(&mut text), crc32fast::hash(&text) as i32);
    }

    fn book(bids: &[(&str, &str)], asks: &[(&str, &str)]) -> OkxBook {
        let mut b = OkxBook::new();
        for (p, q) in bids {
            b.set(BookSide::Bid, lvl(p, q));
        }
        for (p, q) in asks {
            b.set(BookSide::Ask, lvl(p, q));
        }
        b
    }

    /// The two worked examples of the docs' "Checksum" section (Order book channel page),
    /// with the values published alongside them.
    #[test]
    fn documented_checksum_examples() {
        let mut text = Vec::new();
        let mut b = book(
            &[("3366.1", "7"), ("3366", "6")],
            &[("3366.8", "9"), ("3368", "8")],
        );
        b.checksum_text(&mut text);
        assert_eq!(text, b"3366.1:7:3366.8:9:3366:6:3368:8");
        assert_eq!(b.checksum(&mut text), -1_881_014_294);

        let mut b = book(
            &[("3366.1", "7")],
            &[("3366.8", "9"), ("3368", "8"), ("3372", "8")],
        );
        b.checksum_text(&mut text);
        assert_eq!(text, b"3366.1:7:3366.8:9:3368:8:3372:8");
        assert_eq!(b.checksum(&mut text), 831_078_360);
    }

    #[test]
    fn only_the_top_25_levels_count_and_texts_keep_their_zeros() {
        let mut b = OkxBook::new();
        for i in 0..30 {
            b.set(BookSide::Bid, lvl(&format!("{}", 1000 - i), "1.50"));
            b.set(BookSide::Ask, lvl(&format!("{}", 1001 + i), "0.010"));
        }
        let mut text = Vec::new();
        b.checksum_text(&mut text);
        let s = String::from_utf8(text).unwrap();
        assert_eq!(s.split(':').count(), 100);
        assert!(s.starts_with("1000:1.50:1001:0.010:999:1.50:"));
        assert!(!s.contains("975:"));
    }

    #[test]
    fn the_cached_checksum_always_equals_a_fresh_one() {
        let mut b = OkxBook::new();
        let mut text = Vec::new();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut bids = std::collections::BTreeMap::new();
        let mut asks = std::collections::BTreeMap::new();
        for step in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let side = if x & 1 == 0 {
                BookSide::Bid
            } else {
                BookSide::Ask
            };
            let off = (x >> 8) % 60;
            let price = if side == BookSide::Bid {
                1000 - off
            } else {
                1001 + off
            };
            let qty = if (x >> 20).is_multiple_of(4) {
                0
            } else {
                (x >> 24) % 9 + 1
            };
            let dec = if (x >> 30).is_multiple_of(3) {
                ".0"
            } else {
                ""
            };
            let q = format!("{qty}{dec}");
            b.set(side, lvl(&price.to_string(), &q));
            // The slab keeps each level's own text: the same as a map of the texts gives.
            let m = if side == BookSide::Bid {
                &mut bids
            } else {
                &mut asks
            };
            if qty == 0 {
                m.remove(&price);
            } else {
                m.insert(price, format!("{price}:{q}"));
            }
            let (mut bi, mut ai) = (bids.values().rev(), asks.values());
            let mut want: Vec<&str> = Vec::new();
            for _ in 0..CHECKSUM_DEPTH {
                want.extend(bi.next().map(String::as_str));
                want.extend(ai.next().map(String::as_str));
            }
            b.checksum_text(&mut text);
            assert_eq!(
                String::from_utf8_lossy(&text),
                want.join(":"),
                "step {step}"
            );
            let cached = b.checksum(&mut text);
            let mut fresh = b.clone();
            fresh.cached = None;
            assert_eq!(cached, fresh.checksum(&mut text), "step {step}");
        }
    }

    #[test]
    fn levels_are_set_replaced_and_deleted_in_order() {
        let mut b = book(&[("100", "1"), ("101", "2")], &[("103", "3"), ("102", "4")]);
        assert_eq!(b.best_bid().unwrap().price, 101_000_000_000);
        assert_eq!(b.best_ask().unwrap().price, 102_000_000_000);
        b.set(BookSide::Bid, lvl("101", "0"));
        b.set(BookSide::Bid, lvl("99", "0"));
        b.set(BookSide::Ask, lvl("103", "5"));
        assert_eq!(b.depth(), (1, 2));
        let s = b.snapshot();
        assert_eq!(s.bids[0].price, 100_000_000_000);
        assert_eq!(s.asks[1].qty, 5_000_000_000);
        assert!(!b.is_crossed());
        b.set(BookSide::Bid, lvl("102", "1"));
        assert!(b.is_crossed());
    }
}
