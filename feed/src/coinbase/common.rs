//! What the two Coinbase dialects share: RFC 3339 times and the per-product L2 book that is
//! synced from a snapshot the venue pushes on the WebSocket (no REST, no sequence numbers).

use tickwire_sdk::wire::{Body, BookDelta, BookSide, BookSnapshot, Frame, Level, Venue, flags};

use crate::book::OrderBook;
use crate::layout::Cursor;
use crate::normalizer::Output;

/// Parses an RFC 3339 / ISO 8601 UTC time as Coinbase sends it
/// (`2014-11-07T08:19:27.028459Z`, `2023-02-09T20:32:50.714964855Z`, `1970-01-01T00:00:00Z`,
/// or with a `+hh:mm` offset) into ns since the Unix epoch. Up to 9 fractional digits are
/// kept (more are truncated). `None` if it is not such a time or is before 1970.
pub fn parse_time_ns(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |from: usize, len: usize| -> Option<u64> {
        let mut v = 0u64;
        for &c in b.get(from..from + len)? {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            v = v * 10 + d as u64;
        }
        Some(v)
    };
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, min, sec) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || min > 59
        || sec > 60
    {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0u64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + (b[i] - b'0') as u64;
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..9 {
            nanos *= 10;
        }
    }
    let offset_secs: i64 = match b.get(i..) {
        Some([b'Z' | b'z']) => 0,
        Some([sign @ (b'+' | b'-'), h1, h2, b':', m1, m2]) => {
            let h = (h1.wrapping_sub(b'0') as i64, h2.wrapping_sub(b'0') as i64);
            let m = (m1.wrapping_sub(b'0') as i64, m2.wrapping_sub(b'0') as i64);
            if h.0 > 9 || h.1 > 9 || m.0 > 9 || m.1 > 9 {
                return None;
            }
            let secs = (h.0 * 10 + h.1) * 3600 + (m.0 * 10 + m.1) * 60;
            if *sign == b'+' { secs } else { -secs }
        }
        _ => return None,
    };
    let days = days_from_civil(year as i64, month as i64, day as i64);
    let secs = days * 86_400 + (hour * 3600 + min * 60 + sec) as i64 - offset_secs;
    if secs < 0 {
        return None;
    }
    (secs as u64).checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// The fast path's time: a quoted `"YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z"` read straight from the
/// cursor, giving exactly what [`parse_time_ns`] gives for that text. Anything else (another
/// separator or offset, more than 9 fractional digits, an invalid date) is `None`: the caller
/// falls back to the general path.
#[inline]
pub fn fast_time(c: &mut Cursor<'_>) -> Option<u64> {
    let b = c.rest();
    if b.len() < 22 || b[0] != b'"' {
        return None;
    }
    let d = |i: usize| -> Option<u64> {
        let v = b[i].wrapping_sub(b'0');
        (v <= 9).then_some(v as u64)
    };
    let two = |i: usize| -> Option<u64> { Some(d(i)? * 10 + d(i + 1)?) };
    if b[5] != b'-' || b[8] != b'-' || b[11] != b'T' || b[14] != b':' || b[17] != b':' {
        return None;
    }
    let year = two(1)? * 100 + two(3)?;
    let (month, day) = (two(6)?, two(9)?);
    let (hour, min, sec) = (two(12)?, two(15)?, two(18)?);
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || min > 59
        || sec > 60
    {
        return None;
    }
    let mut i = 20;
    let mut nanos = 0u64;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && i - start < 9 && b[i].is_ascii_digit() {
            nanos = nanos * 10 + (b[i] - b'0') as u64;
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        nanos *= [
            1,
            100_000_000,
            10_000_000,
            1_000_000,
            100_000,
            10_000,
            1_000,
            100,
            10,
            1,
        ][digits];
    }
    if b.get(i..i + 2) != Some(b"Z\"") {
        return None;
    }
    let days = days_from_civil(year as i64, month as i64, day as i64);
    let secs = days * 86_400 + (hour * 3600 + min * 60 + sec) as i64;
    if secs < 0 {
        return None;
    }
    let t = (secs as u64)
        .checked_mul(1_000_000_000)?
        .checked_add(nanos)?;
    c.lit(&b[..i + 2])?;
    Some(t)
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Where a product's book stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookState {
    /// No snapshot yet on this connection: updates are dropped until one arrives.
    Waiting,
    /// Built from a snapshot and every update since.
    Live,
    /// Broken; a resubscription was requested and updates are dropped until its snapshot.
    Resyncing,
}

/// One product's L2 book as the venue pushes it: a snapshot, then absolute level updates.
#[derive(Debug)]
pub struct ProductBook {
    /// The levels.
    pub book: OrderBook,
    /// Sync state.
    pub state: BookState,
    /// The book was flagged bad (gap, crossed, disconnect): the next snapshot reports `Resynced`.
    pub flagged: bool,
}

impl ProductBook {
    /// An empty book waiting for its snapshot.
    pub fn new() -> ProductBook {
        ProductBook {
            book: OrderBook::new(),
            state: BookState::Waiting,
            flagged: false,
        }
    }

    /// Loads a snapshot (`bids`/`asks`, any order, quantity 0 skipped), goes live and pushes
    /// the whole book as one BookSnapshot frame.
    #[allow(clippy::too_many_arguments)]
    pub fn load_snapshot(
        &mut self,
        venue: Venue,
        inst: u32,
        bids: &[Level],
        asks: &[Level],
        ts_exchange: u64,
        ts_recv: u64,
        out: &mut Output,
    ) {
        self.book.clear();
        for l in bids {
            self.book.set(BookSide::Bid, l.price, l.qty);
        }
        for l in asks {
            self.book.set(BookSide::Ask, l.price, l.qty);
        }
        self.book.set_valid(true);
        self.state = BookState::Live;
        let snapshot: BookSnapshot = self.book.snapshot(None);
        out.frames.push(
            Frame::new(
                venue,
                inst,
                ts_exchange,
                ts_recv,
                Body::BookSnapshot(snapshot),
            )
            .with_flags(flags::SNAPSHOT | flags::LAST),
        );
    }

    /// Applies absolute level changes to a live book and pushes one BookDelta per change
    /// (`LAST` on the final one). Returns the crossed prices `(bid, ask)` if the book crossed:
    /// then the deltas were flagged `BAD_BOOK` and the book is no longer live.
    pub fn apply_changes(
        &mut self,
        venue: Venue,
        inst: u32,
        changes: &[(BookSide, Level, u64)],
        ts_recv: u64,
        out: &mut Output,
    ) -> Option<(i64, i64)> {
        for (side, l, _) in changes {
            self.book.set(*side, l.price, l.qty);
        }
        let crossed = if self.book.is_crossed() {
            let bid = self.book.best_bid().map_or(0, |l| l.price);
            let ask = self.book.best_ask().map_or(0, |l| l.price);
            self.state = BookState::Resyncing;
            self.flagged = true;
            self.book.set_valid(false);
            Some((bid, ask))
        } else {
            None
        };
        let extra = if crossed.is_some() {
            flags::BAD_BOOK
        } else {
            0
        };
        let n = changes.len();
        for (k, (side, l, ts_exchange)) in changes.iter().enumerate() {
            let last = if k + 1 == n { flags::LAST } else { 0 };
            out.frames.push(
                Frame::new(
                    venue,
                    inst,
                    *ts_exchange,
                    ts_recv,
                    Body::BookDelta(BookDelta {
                        side: *side,
                        price: l.price,
                        qty: l.qty,
                    }),
                )
                .with_flags(last | extra),
            );
        }
        crossed
    }

    /// Marks the book broken: it waits for a fresh snapshot. Returns true if it had been
    /// live or waiting (so the caller reports it); false if it was already resyncing.
    pub fn break_book(&mut self) -> bool {
        let was = self.state != BookState::Resyncing;
        self.state = BookState::Resyncing;
        self.flagged = true;
        self.book.set_valid(false);
        was
    }

    /// The connection is gone: the next connection's snapshot rebuilds the book.
    pub fn disconnect(&mut self) {
        self.flagged = true;
        self.state = BookState::Waiting;
        self.book.clear();
    }
}

impl Default for ProductBook {
    fn default() -> Self {
        ProductBook::new()
    }
}

/// Escapes nothing: Coinbase product ids are `[A-Z0-9-]`; anything else is dropped so a
/// hostile symbol cannot break the JSON we send.
pub fn json_product(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_' || *c == '.')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_time_reads_what_parse_time_ns_reads() {
        let mut texts: Vec<String> = [
            "1970-01-01T00:00:00Z",
            "2014-11-07T08:19:27.028459Z",
            "2023-02-09T20:32:50.714964855Z",
            "2023-02-09T20:32:50.7149648551Z",
            "2019-08-14T20:42:27.265Z",
            "2021-04-17T18:43:30+02:00",
            "2024-02-29T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2023-02-30T00:00:00Z",
            "2023-13-01T00:00:00Z",
            "2023-02-09T20:32:50.Z",
            "2023-02-09T20:32:50",
            "2023-02-09X20:32:50Z",
            "2023-02-09t20:32:50Z",
            "1969-12-31T23:59:59Z",
            "2023-02-09T24:00:00Z",
            "2023-02-09T23:60:00Z",
            "2023-02-09T23:59:60.5Z",
            "2023-02-09T23:59:61Z",
            "2023-02-09T20:32:50.1Zx",
            "2023-02-09T20:32:50z",
            "+023-02-09T20:32:50Z",
            "",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Every byte of a valid time replaced by each of a few others.
        let base = "2021-04-17T16:43:37.075687Z";
        for k in 0..base.len() {
            for ch in ['0', '9', '1', '.', 'Z', ':', '-', 'a'] {
                let mut t = base.to_string();
                t.replace_range(k..k + 1, &ch.to_string());
                texts.push(t);
            }
        }
        for t in &texts {
            let quoted = format!("\"{t}\",");
            let mut c = Cursor::new(quoted.as_bytes());
            let fast = fast_time(&mut c);
            if let Some(v) = fast {
                assert_eq!(Some(v), parse_time_ns(t), "{t}");
                assert_eq!(c.rest(), b",", "{t}");
            }
        }
        for t in [
            base,
            "1970-01-01T00:00:00Z",
            "2023-02-09T20:32:50.714964855Z",
        ] {
            let quoted = format!("\"{t}\"");
            assert_eq!(
                fast_time(&mut Cursor::new(quoted.as_bytes())),
                parse_time_ns(t)
            );
            assert!(parse_time_ns(t).is_some());
        }
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(parse_time_ns("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_time_ns("2014-11-07T08:19:27.028459Z"),
            Some(1_415_348_367_028_459_000)
        );
        assert_eq!(
            parse_time_ns("2023-02-09T20:32:50.714964855Z"),
            Some(1_675_974_770_714_964_855)
        );
        assert_eq!(
            parse_time_ns("2019-08-14T20:42:27.265Z"),
            Some(1_565_815_347_265_000_000)
        );
        assert_eq!(
            parse_time_ns("2021-04-17T16:43:30.244075Z"),
            Some(1_618_677_810_244_075_000)
        );
        assert_eq!(
            parse_time_ns("2021-04-17T18:43:30+02:00"),
            Some(1_618_677_810_000_000_000)
        );
        assert_eq!(
            parse_time_ns("2024-02-29T00:00:00Z"),
            Some(1_709_164_800_000_000_000)
        );
        for bad in [
            "",
            "2023-02-30T00:00:00Z",
            "2023-13-01T00:00:00Z",
            "2023-02-09T20:32:50.Z",
            "2023-02-09T20:32:50",
            "2023-02-09X20:32:50Z",
            "1969-12-31T23:59:59Z",
            "2023-02-09T20:32:50.1Zx",
        ] {
            assert_eq!(parse_time_ns(bad), None, "{bad}");
        }
    }
}
