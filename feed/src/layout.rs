//! Exact-layout reading: the fast path of the normalizers.
//!
//! A venue sends each message type with the same keys in the same order, compact, every time.
//! A [`Cursor`] walks such a message expecting exactly that layout: literal key runs are
//! compared as bytes, and only the values are read (strings without escapes, unsigned
//! integers, decimal strings straight to fixed point, booleans, `[price, qty]` level arrays).
//! Anything else (whitespace, another key order, an escape, an exponent, a missing field)
//! makes the read return `None`, and the normalizer falls back to its general simd-json tape
//! path, which also produces the error messages. So the fast path never decides that input is
//! bad; it only accepts input it is sure of.
//!
//! Soundness: everything a cursor accepts is valid JSON (strings are checked for quotes,
//! backslashes and control characters; integers have no leading zeros; literals are exact),
//! and [`Cursor::end`] checks that nothing follows the value. Each normalizer's tests compare
//! its fast path with its tape path, frame for frame, on real captures and on mutated input.

use tickwire_sdk::wire::{Level, Parsed, parse_decimal};

/// A reading position in one message. Every method consumes what it reads and returns
/// `None` (leaving the cursor somewhere undefined) when the input is not what it expects.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `bytes`.
    #[inline]
    pub fn new(bytes: &'a [u8]) -> Cursor<'a> {
        Cursor { bytes, pos: 0 }
    }

    /// The bytes not read yet.
    #[inline]
    pub fn rest(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }

    /// True if the unread input starts with `lit`.
    #[inline(always)]
    pub fn peek(&self, lit: &[u8]) -> bool {
        self.rest().starts_with(lit)
    }

    /// Consumes `lit` exactly.
    #[inline(always)]
    pub fn lit(&mut self, lit: &[u8]) -> Option<()> {
        if self.peek(lit) {
            self.pos += lit.len();
            Some(())
        } else {
            None
        }
    }

    /// Consumes `lit` if it is next; says whether it was.
    #[inline(always)]
    pub fn opt_lit(&mut self, lit: &[u8]) -> bool {
        self.lit(lit).is_some()
    }

    /// The contents of a string value, the opening quote already consumed: up to the closing
    /// quote, which is consumed. No escapes, no control characters.
    #[inline]
    pub fn str_body(&mut self) -> Option<&'a str> {
        let rest = self.rest();
        let mut n = 0;
        // Printable ASCII without quote or backslash: the usual case, read in one pass.
        while n < rest.len()
            && matches!(rest[n], 0x20..=0x7e)
            && rest[n] != b'"'
            && rest[n] != b'\\'
        {
            n += 1;
        }
        if n < rest.len() && rest[n] == b'"' {
            // SAFETY: every byte in `rest[..n]` is printable ASCII (checked above).
            let s = unsafe { std::str::from_utf8_unchecked(&rest[..n]) };
            self.pos += n + 1;
            return Some(s);
        }
        // Non-ASCII text (or DEL): check it properly; escapes and control characters are
        // left to the general path.
        let end = rest
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        if rest[end] != b'"' {
            return None;
        }
        let s = std::str::from_utf8(&rest[..end]).ok()?;
        self.pos += end + 1;
        Some(s)
    }

    /// Like [`Cursor::str_body`] for text that is printable ASCII (`0x20..=0x7e`) without
    /// quote or backslash, read eight bytes at a time; `None` for any other text (escapes
    /// and non-ASCII included), which the caller's general path then reads. For venues whose
    /// symbols, times and numbers in strings are always such text (Kraken).
    #[inline]
    pub fn ascii_str_body(&mut self) -> Option<&'a str> {
        let rest = self.rest();
        let mut n = 0;
        while n + 8 <= rest.len() {
            let w = u64::from_le_bytes(rest[n..n + 8].try_into().ok()?);
            // A byte is "special" if it is `"`, `\`, below 0x20 or above 0x7e. High bit set
            // in `x` for each zero byte of `v ^ (c * LO)` (the classic has-zero-byte test; its
            // false positives only occur above a true one, which is what we stop at).
            const LO: u64 = 0x0101_0101_0101_0101;
            const HI: u64 = 0x8080_8080_8080_8080;
            let zero = |v: u64| v.wrapping_sub(LO) & !v & HI;
            let quote = zero(w ^ (LO * u64::from(b'"')));
            let slash = zero(w ^ (LO * u64::from(b'\\')));
            // Below 0x20: (b - 0x20) borrows into the high bit for b < 0x20 (b < 0x80).
            let low = w.wrapping_sub(LO * 0x20) & !w & HI;
            // 0x7f and above: b + 1 has the high bit set (b >= 0x7f), or b has it already.
            let high = (w.wrapping_add(LO) | w) & HI;
            let special = quote | slash | low | high;
            if special != 0 {
                let k = n + (special.trailing_zeros() / 8) as usize;
                if rest[k] != b'"' {
                    return None;
                }
                n = k;
                // SAFETY: every byte in `rest[..n]` is printable ASCII (checked above).
                let s = unsafe { std::str::from_utf8_unchecked(&rest[..n]) };
                self.pos += n + 1;
                return Some(s);
            }
            n += 8;
        }
        while n < rest.len()
            && matches!(rest[n], 0x20..=0x7e)
            && rest[n] != b'"'
            && rest[n] != b'\\'
        {
            n += 1;
        }
        if n < rest.len() && rest[n] == b'"' {
            // SAFETY: every byte in `rest[..n]` is printable ASCII (checked above).
            let s = unsafe { std::str::from_utf8_unchecked(&rest[..n]) };
            self.pos += n + 1;
            return Some(s);
        }
        None
    }

    /// A string value (`"..."`), without escapes.
    #[inline]
    pub fn str(&mut self) -> Option<&'a str> {
        self.lit(b"\"")?;
        self.str_body()
    }

    /// An unsigned integer value: digits, no sign, no leading zero, no fraction, below 2^64.
    #[inline]
    pub fn u64(&mut self) -> Option<u64> {
        let rest = self.rest();
        let mut v: u64 = 0;
        let mut n = 0;
        // Eight digits at a time while they fit (16 of them: 8 more cannot overflow).
        while n + 8 <= rest.len() && n <= 8 {
            match eight_digits(&rest[n..n + 8]) {
                Some(d) => {
                    v = v * 100_000_000 + d;
                    n += 8;
                }
                None => break,
            }
        }
        // 19 digits always fit in a u64; a 20th is checked.
        while n < rest.len() && n < 19 {
            let d = rest[n].wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            v = v * 10 + u64::from(d);
            n += 1;
        }
        if n == 19 && n < rest.len() && rest[n].is_ascii_digit() {
            v = v.checked_mul(10)?.checked_add(u64::from(rest[n] - b'0'))?;
            n += 1;
        }
        if n == 0 || (n > 1 && rest[0] == b'0') {
            return None;
        }
        // A number must end at a delimiter: `1.5`, `1e3` or a 21st digit are not ours.
        if n < rest.len() && !matches!(rest[n], b',' | b'}' | b']') {
            return None;
        }
        self.pos += n;
        Some(v)
    }

    /// A quoted decimal (`"61837.63000000"`) parsed to fixed point, exactly as
    /// [`parse_decimal`] parses the text between the quotes.
    #[inline]
    pub fn dec(&mut self) -> Option<Parsed> {
        self.lit(b"\"")?;
        let rest = self.rest();
        // The usual shape, read in the same pass that finds the closing quote.
        if let Some((v, n)) = plain_fixed(rest)
            && rest.get(n) == Some(&b'"')
        {
            self.pos += n + 1;
            return Some(v);
        }
        // Anything else (a sign, an exponent, more digits): find the closing quote, let the
        // general parser decide.
        let mut n = 0;
        while n < rest.len()
            && n < 64
            && (rest[n].is_ascii_digit() || matches!(rest[n], b'.' | b'-' | b'+' | b'e' | b'E'))
        {
            n += 1;
        }
        if n >= rest.len() || rest[n] != b'"' {
            return None;
        }
        let v = parse_decimal(&rest[..n]).ok()?;
        self.pos += n + 1;
        Some(v)
    }

    /// A signed integer value: an optional `-`, then as [`Cursor::u64`]; within `i64`, and
    /// not `-0`.
    #[inline]
    pub fn i64(&mut self) -> Option<i64> {
        if self.opt_lit(b"-") {
            let v = self.u64()?;
            if v == 0 || v > i64::MAX as u64 + 1 {
                return None;
            }
            Some((v as i64).wrapping_neg())
        } else {
            i64::try_from(self.u64()?).ok()
        }
    }

    /// An unsigned integer sent as a string (`"1597026383085"`): 1 to 19 digits, no leading
    /// zero, nothing else inside the quotes.
    #[inline]
    pub fn quoted_u64(&mut self) -> Option<u64> {
        self.lit(b"\"")?;
        let rest = self.rest();
        let mut v: u64 = 0;
        let mut n = 0;
        while n < rest.len() && n < 19 {
            let d = rest[n].wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            v = v * 10 + u64::from(d);
            n += 1;
        }
        if n == 0 || (n > 1 && rest[0] == b'0') || n >= rest.len() || rest[n] != b'"' {
            return None;
        }
        self.pos += n + 1;
        Some(v)
    }

    /// A quoted decimal like [`Cursor::dec`], also returning its text (without the quotes).
    #[inline]
    pub fn dec_text(&mut self) -> Option<(Parsed, &'a [u8])> {
        let start = self.pos + 1;
        let v = self.dec()?;
        Some((v, &self.bytes[start..self.pos - 1]))
    }

    /// An unquoted JSON number without sign or exponent, `(0|[1-9]\d{0,9})(\.\d+)?`, that
    /// ends at `,`, `}` or `]` (not consumed), parsed to fixed point exactly as
    /// [`parse_decimal`] parses its text (venues that send prices as JSON numbers: Kraken
    /// v2). Anything else, or a value beyond the fixed-point range, is `None`.
    #[inline]
    pub fn num(&mut self) -> Option<Parsed> {
        let rest = self.rest();
        let (v, n) = plain_fixed(rest)?;
        // JSON: no leading zero; and the number ends here (not at an 11th integer digit, a
        // second point or an exponent).
        if rest[0] == b'0' && rest.get(1).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        if !matches!(rest.get(n), Some(b',' | b'}' | b']')) {
            return None;
        }
        self.pos += n;
        Some(v)
    }

    /// Skips one JSON number of any valid form (`-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?`)
    /// that ends at `,`, `}` or `]` (not consumed).
    #[inline]
    pub fn skip_num(&mut self) -> Option<()> {
        let rest = self.rest();
        let digits = |mut i: usize| {
            while i < rest.len() && rest[i].is_ascii_digit() {
                i += 1;
            }
            i
        };
        let mut i = usize::from(rest.first() == Some(&b'-'));
        let start = i;
        i = digits(i);
        if i == start || (i - start > 1 && rest[start] == b'0') {
            return None;
        }
        if rest.get(i) == Some(&b'.') {
            let f = i + 1;
            i = digits(f);
            if i == f {
                return None;
            }
        }
        if matches!(rest.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(rest.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let e = i;
            i = digits(e);
            if i == e {
                return None;
            }
        }
        if i >= rest.len() || !matches!(rest[i], b',' | b'}' | b']') {
            return None;
        }
        self.pos += i;
        Some(())
    }

    /// `true` or `false`.
    #[inline]
    pub fn bool(&mut self) -> Option<bool> {
        if self.opt_lit(b"true") {
            Some(true)
        } else if self.opt_lit(b"false") {
            Some(false)
        } else {
            None
        }
    }

    /// An array of `["price","qty"]` pairs into `out` (cleared first), widening `price_dp` and
    /// `qty_dp` to the most decimals seen. Prices must be positive and quantities
    /// non-negative.
    #[inline]
    pub fn levels(
        &mut self,
        out: &mut Vec<Level>,
        price_dp: &mut u8,
        qty_dp: &mut u8,
    ) -> Option<()> {
        out.clear();
        self.lit(b"[")?;
        if self.opt_lit(b"]") {
            return Some(());
        }
        loop {
            self.lit(b"[")?;
            let price = self.dec()?;
            self.lit(b",")?;
            let qty = self.dec()?;
            self.lit(b"]")?;
            if price.value <= 0 || qty.value < 0 {
                return None; // the general path says what is wrong
            }
            *price_dp = (*price_dp).max(price.decimals);
            *qty_dp = (*qty_dp).max(qty.decimals);
            out.push(Level {
                price: price.value,
                qty: qty.value,
            });
            if self.opt_lit(b"]") {
                return Some(());
            }
            self.lit(b",")?;
        }
    }

    /// The end of the message: nothing but JSON whitespace left.
    #[inline]
    pub fn end(&self) -> Option<()> {
        self.rest()
            .iter()
            .all(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
            .then_some(())
    }
}

/// A text that is exactly an unsigned integer (digits only, no leading zero, below 2^64),
/// like a venue's trade id sent as a string.
#[inline]
pub fn whole_u64(text: &[u8]) -> Option<u64> {
    let mut c = Cursor::new(text);
    let v = c.u64()?;
    c.rest().is_empty().then_some(v)
}

/// Powers of ten up to 1e9.
const POW10: [u64; 10] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
];

/// `\d{1,10}(\.\d+)?` at the start of `bytes`, with nothing but zeros past the 9th decimal,
/// as fixed point (what [`parse_decimal`] makes of that text), and how many bytes it took;
/// `None` for any other shape or a value beyond `i64`. The common case of [`Cursor::dec`]
/// and [`Cursor::num`]: one pass, eight decimals at a time (SWAR) when there are eight.
#[inline(always)]
fn plain_fixed(bytes: &[u8]) -> Option<(Parsed, usize)> {
    let mut i = 0;
    let mut int: u64 = 0;
    while i < bytes.len() && i < 10 {
        let d = bytes[i].wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        int = int * 10 + u64::from(d);
        i += 1;
    }
    if i == 0 {
        return None;
    }
    let mut frac: u64 = 0;
    let mut decimals = 0usize;
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        // Venues mostly send 8 decimals: one SWAR step for them.
        if i + 8 <= bytes.len()
            && let Some(d) = eight_digits(&bytes[i..i + 8])
        {
            frac = d;
            decimals = 8;
            i += 8;
        }
        while i < bytes.len() {
            let d = bytes[i].wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            if decimals < 9 {
                frac = frac * 10 + u64::from(d);
            } else if d != 0 {
                return None; // not exact in 1e-9 units
            }
            decimals += 1;
            i += 1;
        }
        if decimals == 0 {
            return None;
        }
    }
    let kept = decimals.min(9);
    // int < 1e10, so int * 1e9 + frac < 1e19: no overflow in u64.
    let value = i64::try_from(int * 1_000_000_000 + frac * POW10[9 - kept]).ok()?;
    Some((
        Parsed {
            value,
            decimals: kept as u8,
        },
        i,
    ))
}

/// The value of eight ASCII digits, or `None` if any byte is not a digit (SWAR: one load,
/// three multiplies).
#[inline]
fn eight_digits(bytes: &[u8]) -> Option<u64> {
    let chunk = u64::from_le_bytes(bytes.try_into().ok()?);
    // Every byte in 0x30..=0x39: high nibble 3, and adding 6 keeps it 3.
    let high = chunk & 0xF0F0_F0F0_F0F0_F0F0;
    let plus6 = chunk.wrapping_add(0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0;
    if high != 0x3030_3030_3030_3030 || plus6 != 0x3030_3030_3030_3030 {
        return None;
    }
    let mut v = chunk - 0x3030_3030_3030_3030;
    v = (v * 10 + (v >> 8)) & 0x00FF_00FF_00FF_00FF;
    v = (v * 100 + (v >> 16)) & 0x0000_FFFF_0000_FFFF;
    v = (v * 10_000 + (v >> 32)) & 0x0000_0000_FFFF_FFFF;
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn u64_matches_the_standard_parser(text in "[0-9]{1,22}[,}\\]]") {
            let digits = &text[..text.len() - 1];
            let expected = if digits.len() > 1 && digits.starts_with('0') {
                None
            } else {
                digits.parse::<u64>().ok()
            };
            prop_assert_eq!(Cursor::new(text.as_bytes()).u64(), expected);
        }

        #[test]
        fn num_matches_parse_decimal(
            text in "-?[0-9]{0,12}(\\.[0-9]{0,20})?(e-?[0-9])?",
            end in "[,}\\] x]",
        ) {
            let raw = format!("{text}{end}");
            let mut c = Cursor::new(raw.as_bytes());
            let got = c.num();
            if let Some(v) = got {
                prop_assert_eq!(Ok(v), parse_decimal(text.as_bytes()), "{}", raw);
                prop_assert_eq!(c.rest(), end.as_bytes());
            }
            // Every plain JSON number in range is read.
            let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
            let json_int = !int.is_empty() && (int == "0" || !int.starts_with('0'));
            let plain = json_int
                && int.len() <= 10
                && int.bytes().all(|b| b.is_ascii_digit())
                && (!text.contains('.') || !frac.is_empty())
                && frac.bytes().all(|b| b.is_ascii_digit())
                && frac.bytes().skip(9).all(|b| b == b'0')
                && "]},".contains(end.as_str());
            if plain && parse_decimal(text.as_bytes()).is_ok() {
                prop_assert!(got.is_some(), "{}", raw);
            }
            // skip_num accepts every number num reads, and what serde_json calls a number.
            let mut s = Cursor::new(raw.as_bytes());
            let skipped = s.skip_num().is_some();
            if got.is_some() {
                prop_assert!(skipped, "{}", raw);
            }
            let valid = serde_json::from_str::<serde_json::Number>(&text).is_ok();
            prop_assert_eq!(skipped, valid && "]},".contains(end.as_str()), "{}", raw);
        }

        #[test]
        fn ascii_str_body_reads_what_str_body_reads(
            bytes in proptest::collection::vec(
                prop_oneof![8 => 0x20u8..0x7f, 1 => Just(b'"'), 1 => Just(b'\\'), 1 => any::<u8>()],
                0..40,
            ),
        ) {
            let got = Cursor::new(&bytes).ascii_str_body().map(|s| s.len());
            let want = Cursor::new(&bytes)
                .str_body()
                .filter(|s| s.bytes().all(|b| (0x20..0x7f).contains(&b)))
                .map(|s| s.len());
            prop_assert_eq!(got, want, "{:?}", String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn dec_matches_parse_decimal(text in "-?[0-9]{0,12}(\\.[0-9]{0,20})?(e-?[0-9])?") {
            let quoted = format!("\"{text}\"");
            let got = Cursor::new(quoted.as_bytes()).dec();
            let expected = parse_decimal(text.as_bytes()).ok();
            prop_assert_eq!(got, expected, "{}", text);
        }
    }

    #[test]
    fn reads_exact_layouts_and_refuses_the_rest() {
        let mut c = Cursor::new(
            br#"{"e":"trade","E":123,"p":"1.50","m":true,"b":[["1.0","2"],["3","4.25"]]}"#,
        );
        c.lit(br#"{"e":""#).unwrap();
        assert_eq!(c.str_body(), Some("trade"));
        c.lit(br#","E":"#).unwrap();
        assert_eq!(c.u64(), Some(123));
        c.lit(br#","p":"#).unwrap();
        assert_eq!(
            c.dec().map(|p| (p.value, p.decimals)),
            Some((1_500_000_000, 2))
        );
        c.lit(br#","m":"#).unwrap();
        assert_eq!(c.bool(), Some(true));
        c.lit(br#","b":"#).unwrap();
        let (mut v, mut pd, mut qd) = (Vec::new(), 0, 0);
        c.levels(&mut v, &mut pd, &mut qd).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!((pd, qd), (1, 2));
        c.lit(b"}").unwrap();
        assert!(c.end().is_some());

        for bad in [
            &b"01,"[..],
            b"1.5,",
            b"1e3,",
            b"-1,",
            b"18446744073709551616,",
            b"",
        ] {
            assert_eq!(
                Cursor::new(bad).u64(),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(Cursor::new(br#""a\"b""#).str(), None);
        assert_eq!(Cursor::new(b"\"a\x01b\"").str(), None);
        // Exponents are the general parser's business, with its answer.
        assert_eq!(
            Cursor::new(br#""1.5e3""#).dec().map(|p| p.value),
            Some(1_500_000_000_000)
        );
        assert_eq!(Cursor::new(br#""1..5""#).dec().map(|p| p.value), None);
        let mut c = Cursor::new(br#"-1,-9223372036854775808,9223372036854775807,"12","0","#);
        assert_eq!(c.i64(), Some(-1));
        c.lit(b",").unwrap();
        assert_eq!(c.i64(), Some(i64::MIN));
        c.lit(b",").unwrap();
        assert_eq!(c.i64(), Some(i64::MAX));
        c.lit(b",").unwrap();
        assert_eq!(c.quoted_u64(), Some(12));
        c.lit(b",").unwrap();
        assert_eq!(c.quoted_u64(), Some(0));
        for bad in [
            &b"-0,"[..],
            b"-,",
            b"9223372036854775808,",
            b"-9223372036854775809,",
            b"--1,",
        ] {
            assert_eq!(
                Cursor::new(bad).i64(),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        for bad in [
            &br#""""#[..],
            br#""01""#,
            br#""1.5""#,
            br#""-1""#,
            br#""12"#,
            b"12",
            br#""12345678901234567890""#,
        ] {
            assert_eq!(
                Cursor::new(bad).quoted_u64(),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut c = Cursor::new(br#""30243.50","#);
        let (v, t) = c.dec_text().unwrap();
        assert_eq!(
            (v.value, v.decimals, t),
            (30_243_500_000_000, 2, &b"30243.50"[..])
        );
        assert!(c.peek(b","));
        // dec reads what parse_decimal reads between the quotes, and stops after them.
        let alphabet = b"0123456789.-\"x";
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 24) as usize;
            let mut t = vec![b'"'];
            let mut y = x;
            for _ in 0..len {
                y = y.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                // Mostly digits, so long plain numbers come up.
                let k = (y >> 60) as usize;
                t.push(if k < 11 {
                    b"0123456789."[k]
                } else {
                    alphabet[(y >> 33) as usize % alphabet.len()]
                });
            }
            t.extend_from_slice(b"\",");
            // The text up to the first closing quote is what the general parser would see.
            let close = t[1..].iter().position(|&c| c == b'"').map(|k| k + 1);
            let mut a = Cursor::new(&t);
            let got = a.dec();
            let expected = close.and_then(|k| parse_decimal(&t[1..k]).ok());
            assert_eq!(got, expected, "{:?}", String::from_utf8_lossy(&t));
            if got.is_some() {
                assert_eq!(a.rest(), &t[close.unwrap() + 1..]);
            }
        }
        assert!(Cursor::new(b" x").end().is_none());
        assert!(Cursor::new(b"  \n").end().is_some());
        assert_eq!(whole_u64(b"749"), Some(749));
        for bad in [&b"7,49"[..], b"7]", b"07", b"", b"7 "] {
            assert_eq!(whole_u64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
