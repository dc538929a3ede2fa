//! A small zero-copy JSON reader over the raw message bytes.
//!
//! Kraken v2 sends prices and quantities as JSON numbers, and its book checksum is computed
//! from their decimal text: a DOM or tape parser turns them into `f64` and loses that text.
//! This reader hands out the text of every scalar (strings without their quotes, numbers as
//! written) straight from the input, allocates nothing, and never recurses (nesting is
//! skipped with a counter), so no input can make it panic or overflow the stack.
//!
//! It checks what it reads (brackets, quotes, separators, number characters) but is not a
//! full validator: it does not decode string escapes (Kraken symbols and keys have none; a
//! string with an escape simply compares unequal) and does not look past the value it was
//! asked to read.

use crate::normalizer::NormalizeError;

/// A read position in a JSON text.
#[derive(Debug, Clone, Copy)]
pub struct Scan<'a> {
    b: &'a [u8],
    pos: usize,
}

/// Deepest nesting [`Scan::skip`] accepts.
const MAX_DEPTH: u32 = 128;

fn err(what: &str, at: usize) -> NormalizeError {
    NormalizeError::Json(format!("{what} at byte {at}"))
}

impl<'a> Scan<'a> {
    /// A reader at the start of `b`.
    pub fn new(b: &'a [u8]) -> Scan<'a> {
        Scan { b, pos: 0 }
    }

    /// A reader at byte `pos` of the same text (a position recorded by [`Self::pos`]).
    pub fn at(&self, pos: usize) -> Scan<'a> {
        Scan { b: self.b, pos }
    }

    /// The current byte offset.
    pub fn pos(&self) -> usize {
        self.pos
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(c) = self.b.get(self.pos) {
            if matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// The next non-blank byte, not consumed.
    #[inline]
    pub fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.pos).copied()
    }

    /// Consumes `c` if it is the next non-blank byte.
    #[inline]
    pub fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Consumes `c` or fails.
    #[inline]
    pub fn expect(&mut self, c: u8) -> Result<(), NormalizeError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(err(&format!("expected `{}`", c as char), self.pos))
        }
    }

    /// A string's raw content (escapes left as they are).
    #[inline]
    pub fn string(&mut self) -> Result<&'a [u8], NormalizeError> {
        self.expect(b'"')?;
        let start = self.pos;
        let mut i = start;
        while let Some(&c) = self.b.get(i) {
            match c {
                b'"' => {
                    self.pos = i + 1;
                    return Ok(&self.b[start..i]);
                }
                b'\\' => i += 2,
                _ => i += 1,
            }
        }
        Err(err("unterminated string", start))
    }

    /// A number's text as written.
    #[inline]
    pub fn number(&mut self) -> Result<&'a [u8], NormalizeError> {
        self.ws();
        let start = self.pos;
        let mut i = start;
        let mut digits = false;
        while let Some(&c) = self.b.get(i) {
            match c {
                b'0'..=b'9' => digits = true,
                b'-' | b'+' | b'.' | b'e' | b'E' => {}
                _ => break,
            }
            i += 1;
        }
        if !digits {
            return Err(err("expected a number", start));
        }
        self.pos = i;
        Ok(&self.b[start..i])
    }

    /// A string's content or a number's text: how a decimal may be sent.
    #[inline]
    pub fn decimal_text(&mut self) -> Result<&'a [u8], NormalizeError> {
        if self.peek() == Some(b'"') {
            self.string()
        } else {
            self.number()
        }
    }

    /// An unsigned integer (a JSON number of digits only; any size up to u64).
    #[inline]
    pub fn u64(&mut self) -> Result<u64, NormalizeError> {
        let start = self.pos;
        let text = self.number()?;
        parse_u64(text).ok_or_else(|| err("expected an unsigned integer", start))
    }

    /// `true` or `false`.
    pub fn bool(&mut self) -> Result<bool, NormalizeError> {
        self.ws();
        let rest = self.b.get(self.pos..).unwrap_or(&[]);
        if rest.starts_with(b"true") {
            self.pos += 4;
            Ok(true)
        } else if rest.starts_with(b"false") {
            self.pos += 5;
            Ok(false)
        } else {
            Err(err("expected a boolean", self.pos))
        }
    }

    /// Skips one value of any kind.
    pub fn skip(&mut self) -> Result<(), NormalizeError> {
        match self.peek() {
            None => Err(err("expected a value", self.pos)),
            Some(b'"') => self.string().map(|_| ()),
            Some(b'{' | b'[') => {
                let start = self.pos;
                let mut depth = 0u32;
                while let Some(&c) = self.b.get(self.pos) {
                    match c {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => {
                            depth += 1;
                            if depth > MAX_DEPTH {
                                return Err(err("nesting too deep", self.pos));
                            }
                        }
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.pos += 1;
                                return Ok(());
                            }
                        }
                        _ => {}
                    }
                    self.pos += 1;
                }
                Err(err("unterminated object or array", start))
            }
            Some(_) => {
                let start = self.pos;
                while let Some(&c) = self.b.get(self.pos) {
                    if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.') {
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
                if self.pos == start {
                    Err(err("expected a value", start))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Enters an object.
    #[inline]
    pub fn begin_object(&mut self) -> Result<(), NormalizeError> {
        self.expect(b'{')
    }

    /// The next key of the object entered (its `:` consumed), or `None` at its end.
    #[inline]
    pub fn next_key(&mut self) -> Result<Option<&'a [u8]>, NormalizeError> {
        match self.peek() {
            Some(b'}') => {
                self.pos += 1;
                return Ok(None);
            }
            Some(b',') => self.pos += 1,
            _ => {}
        }
        let key = self.string()?;
        self.expect(b':')?;
        Ok(Some(key))
    }

    /// Enters an array.
    #[inline]
    pub fn begin_array(&mut self) -> Result<(), NormalizeError> {
        self.expect(b'[')
    }

    /// True if another element follows in the array entered (its `,` consumed), false at
    /// its end (the `]` consumed).
    #[inline]
    pub fn next_elem(&mut self) -> Result<bool, NormalizeError> {
        match self.peek() {
            Some(b']') => {
                self.pos += 1;
                Ok(false)
            }
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) => Ok(true),
            None => Err(err("unterminated array", self.pos)),
        }
    }

    /// Reads an object's keys in one pass, recording where the value of each of `keys`
    /// starts (for [`Self::at`]) and skipping every value.
    pub fn fields<const N: usize>(
        &mut self,
        keys: [&[u8]; N],
    ) -> Result<[Option<usize>; N], NormalizeError> {
        let mut out = [None; N];
        self.begin_object()?;
        while let Some(k) = self.next_key()? {
            self.ws();
            if let Some(slot) = keys.iter().position(|key| *key == k) {
                out[slot] = Some(self.pos);
            }
            self.skip()?;
        }
        Ok(out)
    }
}

/// Digits only, fitting a u64.
#[inline]
pub fn parse_u64(text: &[u8]) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &c in text {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(d as u64)?;
    }
    Some(v)
}

/// Seconds since the epoch as decimal text (`"1618678142.557535"`) to ns.
pub fn epoch_secs_to_ns(text: &[u8]) -> Option<u64> {
    let (int, frac) = match text.iter().position(|&c| c == b'.') {
        Some(i) => (&text[..i], &text[i + 1..]),
        None => (text, &[][..]),
    };
    let secs = parse_u64(int)?;
    let mut ns: u64 = 0;
    for k in 0..9 {
        let d = match frac.get(k) {
            Some(c) => {
                let d = c.wrapping_sub(b'0');
                if d > 9 {
                    return None;
                }
                d as u64
            }
            None => 0,
        };
        ns = ns * 10 + d;
    }
    if frac.iter().skip(9).any(|c| !c.is_ascii_digit()) {
        return None;
    }
    secs.checked_mul(1_000_000_000)?.checked_add(ns)
}

/// An RFC 3339 UTC time (`"2023-09-25T07:49:37.708706Z"`, also with `+00:00`) to ns since
/// the epoch.
pub fn rfc3339_to_ns(t: &[u8]) -> Option<u64> {
    fn num(t: &[u8], from: usize, len: usize) -> Option<u64> {
        parse_u64(t.get(from..from + len)?)
    }
    if t.len() < 20 || t[4] != b'-' || t[7] != b'-' || !matches!(t[10], b'T' | b't' | b' ') {
        return None;
    }
    if t[13] != b':' || t[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(t, 0, 4)?, num(t, 5, 2)?, num(t, 8, 2)?);
    let (h, mi, s) = (num(t, 11, 2)?, num(t, 14, 2)?, num(t, 17, 2)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut i = 19;
    let mut ns = 0u64;
    if t.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while let Some(c) = t.get(i).filter(|c| c.is_ascii_digit()) {
            if i - start < 9 {
                ns = ns * 10 + (c - b'0') as u64;
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start).min(9)..9 {
            ns *= 10;
        }
    }
    match &t[i..] {
        b"Z" | b"z" | b"+00:00" | b"-00:00" => {}
        _ => return None,
    }
    // Days from the civil date (Howard Hinnant's algorithm), years 1970 and later.
    let (y, m) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    let secs = days * 86_400 + h * 3_600 + mi * 60 + s;
    secs.checked_mul(1_000_000_000)?.checked_add(ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_scalars_as_text() {
        let raw =
            br#" {"a" : [1.50, "x\"y", -2e-3, true], "b":{"c":[[]]}, "d":18446744073709551615} "#;
        let mut s = Scan::new(raw);
        let [a, b, d, z] = s.fields([b"a", b"b", b"d", b"z"]).unwrap();
        assert!(z.is_none());
        let mut s2 = s.at(a.unwrap());
        s2.begin_array().unwrap();
        assert!(s2.next_elem().unwrap());
        assert_eq!(s2.number().unwrap(), b"1.50");
        assert!(s2.next_elem().unwrap());
        assert_eq!(s2.string().unwrap(), br#"x\"y"#);
        assert!(s2.next_elem().unwrap());
        assert_eq!(s2.decimal_text().unwrap(), b"-2e-3");
        assert!(s2.next_elem().unwrap());
        assert!(s2.bool().unwrap());
        assert!(!s2.next_elem().unwrap());
        let mut s3 = s.at(b.unwrap());
        s3.skip().unwrap();
        assert_eq!(s.at(d.unwrap()).u64().unwrap(), u64::MAX);
    }

    #[test]
    fn bad_input_is_an_error() {
        for raw in [
            &b"{"[..],
            b"{\"a\":",
            b"{\"a\":[1,2",
            b"{\"a\" 1}",
            b"[[[[",
            b"\"abc",
            b"",
        ] {
            let mut s = Scan::new(raw);
            assert!(s.fields([b"a"]).is_err(), "{raw:?}");
        }
        let deep = vec![b'['; 1000];
        assert!(Scan::new(&deep).skip().is_err());
    }

    #[test]
    fn times() {
        assert_eq!(
            epoch_secs_to_ns(b"1618678142.557535"),
            Some(1_618_678_142_557_535_000)
        );
        assert_eq!(epoch_secs_to_ns(b"12"), Some(12_000_000_000));
        assert_eq!(epoch_secs_to_ns(b"1.x"), None);
        assert_eq!(
            rfc3339_to_ns(b"2023-09-25T07:49:37.708706Z"),
            Some(1_695_628_177_708_706_000)
        );
        assert_eq!(rfc3339_to_ns(b"1970-01-01T00:00:01Z"), Some(1_000_000_000));
        assert_eq!(rfc3339_to_ns(b"2023-13-25T07:49:37Z"), None);
        assert_eq!(rfc3339_to_ns(b"2023-09-25T07:49:37.Z"), None);
    }
}
