//! Fixed-point decimals: prices and quantities as `i64` in units of 1e-9 (as Databento's DBN).
//!
//! Exchange decimal text is parsed straight into the integer, never through `f64`, and the
//! number of fractional digits the venue sent is returned alongside so it can be rendered back
//! with the exchange's own precision.

use thiserror::Error;

/// Units per whole: a fixed-point value `v` means `v / 1e9`.
pub const SCALE: i64 = 1_000_000_000;
/// Number of fractional digits a fixed-point value can hold.
pub const MAX_DECIMALS: u8 = 9;

const POW10: [i64; 10] = [
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

/// Why a decimal text could not become a fixed-point value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DecimalError {
    /// The text is empty or holds a character that is not part of a decimal number.
    #[error("not a decimal number")]
    Syntax,
    /// The value does not fit an i64 in units of 1e-9 (|value| > ~9.22e9).
    #[error("decimal out of the fixed-point range (|value| must be below 9.2e9)")]
    Overflow,
    /// The text has non-zero digits beyond the 9th decimal: it cannot be held exactly.
    #[error("decimal has more than 9 significant fractional digits")]
    Inexact,
}

/// A parsed decimal: the fixed-point value and the number of fractional digits as sent
/// (`"0.00100000"` has 8), capped at [`MAX_DECIMALS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// Value in units of 1e-9.
    pub value: i64,
    /// Fractional digits in the text, 0..=9.
    pub decimals: u8,
}

/// Parses a decimal text (`"61837.63000000"`, `"-1.5"`, `"42"`, `"1.2e-5"`) into units of 1e-9.
///
/// Exact: digits beyond the 9th decimal must be zeros, else [`DecimalError::Inexact`].
#[inline]
pub fn parse_decimal(text: &[u8]) -> Result<Parsed, DecimalError> {
    match parse_plain(text) {
        Some(p) => Ok(p),
        None => parse_general(text),
    }
}

/// The shape exchanges send almost always, in `u64` arithmetic: `-?\d{1,10}(\.\d+)?` whose
/// value fits and has no non-zero digit past the 9th decimal. Anything else (every error
/// included) is left to [`parse_general`], which gives the same answer where both apply.
#[inline]
fn parse_plain(text: &[u8]) -> Option<Parsed> {
    let (neg, body) = match text.first()? {
        b'-' => (true, &text[1..]),
        _ => (false, text),
    };
    let mut int: u64 = 0;
    let mut i = 0;
    while i < body.len() && body[i] != b'.' {
        let d = body[i].wrapping_sub(b'0');
        if d > 9 || i == 10 {
            return None;
        }
        int = int * 10 + d as u64;
        i += 1;
    }
    if i == 0 {
        return None;
    }
    let mut frac: u64 = 0;
    let mut decimals = 0usize;
    if i < body.len() {
        i += 1;
        let start = i;
        while i < body.len() {
            let d = body[i].wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            if i - start < 9 {
                frac = frac * 10 + d as u64;
            } else if d != 0 {
                return None;
            }
            i += 1;
        }
        decimals = i - start;
        if decimals == 0 {
            return None;
        }
    }
    let kept = decimals.min(9);
    // int < 1e10, so int * 1e9 + frac < 1e19 < u64::MAX.
    let v = i64::try_from(int * SCALE as u64 + frac * POW10[9 - kept] as u64).ok()?;
    Some(Parsed {
        value: if neg { -v } else { v },
        decimals: kept as u8,
    })
}

/// Every accepted form (sign, exponent, up to 18 fractional digits), in i128 arithmetic.
fn parse_general(text: &[u8]) -> Result<Parsed, DecimalError> {
    let (neg, body) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        Some(_) => (false, text),
        None => return Err(DecimalError::Syntax),
    };
    if body.is_empty() {
        return Err(DecimalError::Syntax);
    }
    // Split off an exponent if any (rare: JSON numbers from some venues).
    let (mantissa, exp) = match body.iter().position(|&c| c == b'e' || c == b'E') {
        Some(i) => (&body[..i], parse_exponent(&body[i + 1..])?),
        None => (body, 0i32),
    };
    let mut int: i64 = 0;
    let mut i = 0;
    let mut int_digits = 0;
    while i < mantissa.len() {
        let c = mantissa[i];
        if c == b'.' {
            break;
        }
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return Err(DecimalError::Syntax);
        }
        int = int
            .checked_mul(10)
            .and_then(|v| v.checked_add(d as i64))
            .ok_or(DecimalError::Overflow)?;
        int_digits += 1;
        i += 1;
    }
    let mut frac: i64 = 0;
    let mut frac_digits: u32 = 0;
    let mut sent_decimals: u32 = 0;
    if i < mantissa.len() {
        // mantissa[i] == '.'
        i += 1;
        let start = i;
        while i < mantissa.len() {
            let d = mantissa[i].wrapping_sub(b'0');
            if d > 9 {
                return Err(DecimalError::Syntax);
            }
            if frac_digits < 18 {
                frac = frac * 10 + d as i64;
                frac_digits += 1;
            } else if d != 0 {
                return Err(DecimalError::Inexact);
            }
            i += 1;
        }
        sent_decimals = (i - start) as u32;
        if sent_decimals == 0 && int_digits == 0 {
            return Err(DecimalError::Syntax);
        }
    } else if int_digits == 0 {
        return Err(DecimalError::Syntax);
    }
    // Value = (int . frac) * 10^exp, scaled by 1e9.
    // Work as a big integer: digits = int * 10^frac_digits + frac, scale exponent = 9 + exp - frac_digits.
    let shift = 9 + exp - frac_digits as i32;
    let digits = (int as i128) * 10i128.pow(frac_digits) + frac as i128;
    let scaled: i128 = if shift >= 0 {
        if shift > 38 {
            if digits == 0 {
                0
            } else {
                return Err(DecimalError::Overflow);
            }
        } else {
            digits
                .checked_mul(10i128.pow(shift as u32))
                .ok_or(DecimalError::Overflow)?
        }
    } else {
        let div = 10i128.pow((-shift).min(38) as u32);
        if digits % div != 0 {
            return Err(DecimalError::Inexact);
        }
        digits / div
    };
    let signed = if neg { -scaled } else { scaled };
    let value = i64::try_from(signed).map_err(|_| DecimalError::Overflow)?;
    let decimals = (sent_decimals as i32 - exp).clamp(0, MAX_DECIMALS as i32) as u8;
    Ok(Parsed { value, decimals })
}

fn parse_exponent(text: &[u8]) -> Result<i32, DecimalError> {
    let (neg, digits) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 3 {
        return Err(DecimalError::Syntax);
    }
    let mut e: i32 = 0;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return Err(DecimalError::Syntax);
        }
        e = e * 10 + d as i32;
    }
    Ok(if neg { -e } else { e })
}

/// Appends `value` (units of 1e-9) as decimal text with at least `decimals` fractional digits
/// (more if the value needs them: nothing is ever rounded away).
pub fn write_decimal(out: &mut Vec<u8>, value: i64, decimals: u8) {
    let decimals = decimals.min(MAX_DECIMALS) as usize;
    let neg = value < 0;
    let abs = value.unsigned_abs();
    let int = abs / SCALE as u64;
    let mut frac = abs % SCALE as u64;
    if neg {
        out.push(b'-');
    }
    let mut buf = itoa_u64(int);
    out.extend_from_slice(buf.as_bytes());
    // Needed digits: drop trailing zeros beyond `decimals`.
    let mut digits = 9usize;
    while digits > decimals && frac.is_multiple_of(10) {
        frac /= 10;
        digits -= 1;
    }
    if digits > 0 {
        out.push(b'.');
        buf = itoa_u64(frac);
        for _ in buf.len()..digits {
            out.push(b'0');
        }
        out.extend_from_slice(buf.as_bytes());
    }
}

/// Appends a wide fixed-point value (sums, units of 1e-9) as decimal text, like
/// [`write_decimal`].
pub fn write_decimal_wide(out: &mut Vec<u8>, value: i128, decimals: u8) {
    if let Ok(v) = i64::try_from(value) {
        return write_decimal(out, v, decimals);
    }
    let decimals = decimals.min(MAX_DECIMALS) as usize;
    if value < 0 {
        out.push(b'-');
    }
    let abs = value.unsigned_abs();
    let int = abs / SCALE as u128;
    let mut frac = (abs % SCALE as u128) as u64;
    out.extend_from_slice(int.to_string().as_bytes());
    let mut digits = 9usize;
    while digits > decimals && frac.is_multiple_of(10) {
        frac /= 10;
        digits -= 1;
    }
    if digits > 0 {
        out.push(b'.');
        let s = frac.to_string();
        for _ in s.len()..digits {
            out.push(b'0');
        }
        out.extend_from_slice(s.as_bytes());
    }
}

/// Renders a fixed-point value as a `String` (see [`write_decimal`]).
pub fn decimal_string(value: i64, decimals: u8) -> String {
    let mut out = Vec::with_capacity(24);
    write_decimal(&mut out, value, decimals);
    // write_decimal emits ASCII only, so this conversion cannot fail.
    String::from_utf8(out).unwrap_or_default()
}

fn itoa_u64(v: u64) -> SmallAscii {
    let mut buf = [0u8; 20];
    let mut i = 20;
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    SmallAscii { buf, start: i }
}

struct SmallAscii {
    buf: [u8; 20],
    start: usize,
}

impl SmallAscii {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
    fn len(&self) -> usize {
        20 - self.start
    }
}

/// Converts a fixed-point value to `f64` (for display and statistics only, never for books).
pub fn to_f64(value: i64) -> f64 {
    value as f64 / SCALE as f64
}

/// `10^n` for `n` in 0..=9.
pub fn pow10(n: u8) -> i64 {
    POW10[n.min(9) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Result<Parsed, DecimalError> {
        parse_decimal(s.as_bytes())
    }

    #[test]
    fn parses_exchange_strings() {
        assert_eq!(
            p("61837.63000000"),
            Ok(Parsed {
                value: 61_837_630_000_000,
                decimals: 8
            })
        );
        assert_eq!(
            p("0.00100000"),
            Ok(Parsed {
                value: 1_000_000,
                decimals: 8
            })
        );
        assert_eq!(p("42").unwrap().value, 42 * SCALE);
        assert_eq!(p("-1.5").unwrap().value, -1_500_000_000);
        assert_eq!(p(".5").unwrap().value, 500_000_000);
        assert_eq!(p("5.").unwrap().value, 5 * SCALE);
        assert_eq!(p("0.000000001").unwrap().value, 1);
        assert_eq!(p("0.0000000010000").unwrap().value, 1);
        assert_eq!(p("1.2e-5").unwrap().value, 12_000);
        assert_eq!(p("1.2e-5").unwrap().decimals, 6);
        assert_eq!(p("3E2").unwrap().value, 300 * SCALE);
        assert_eq!(p("9223372036.854775807").unwrap().value, i64::MAX);
    }

    #[test]
    fn fast_path_edges_agree() {
        for t in [
            "0",
            "-0",
            "9223372036.854775807",
            "-9223372036.854775808",
            "9223372036.854775808",
            "9999999999.999999999",
            "1.0000000001",
            "1.0000000000",
            "61837.63000000",
            "0.00000000",
            ".5",
            "5.",
            "12345678901",
            "-",
        ] {
            assert_eq!(
                parse_decimal(t.as_bytes()),
                parse_general(t.as_bytes()),
                "{t}"
            );
        }
    }

    #[test]
    fn rejects_bad_text() {
        for bad in [
            "", "-", ".", "abc", "1.2.3", "1,5", "1e", "1e+", " 1", "1 ", "0x10", "e5",
        ] {
            assert_eq!(p(bad), Err(DecimalError::Syntax), "{bad:?}");
        }
        assert_eq!(p("0.0000000001"), Err(DecimalError::Inexact));
        assert_eq!(p("9223372037"), Err(DecimalError::Overflow));
        assert_eq!(p("99999999999999999999999"), Err(DecimalError::Overflow));
        assert_eq!(p("1e300"), Err(DecimalError::Overflow));
    }

    #[test]
    fn renders_with_precision() {
        assert_eq!(decimal_string(61_837_630_000_000, 8), "61837.63000000");
        assert_eq!(decimal_string(61_837_630_000_000, 2), "61837.63");
        assert_eq!(decimal_string(61_837_630_000_000, 0), "61837.63");
        assert_eq!(decimal_string(42 * SCALE, 0), "42");
        assert_eq!(decimal_string(-1_500_000_000, 3), "-1.500");
        assert_eq!(decimal_string(1, 2), "0.000000001");
        assert_eq!(decimal_string(i64::MIN, 9), "-9223372036.854775808");
        let mut out = Vec::new();
        write_decimal_wide(&mut out, 20_000_000_000_000_000_000i128 + 5, 2);
        assert_eq!(out, b"20000000000.000000005");
        out.clear();
        write_decimal_wide(&mut out, -(10i128.pow(20)), 2);
        assert_eq!(out, b"-100000000000.00");
        out.clear();
        write_decimal_wide(&mut out, 1_500_000_000, 3);
        assert_eq!(out, b"1.500");
    }

    proptest! {
        #[test]
        fn fast_path_agrees_with_the_general_parser(
            t in "[-+]?[0-9]{0,12}(\\.[0-9]{0,20})?([eE][-+]?[0-9]{1,2})?"
        ) {
            prop_assert_eq!(parse_decimal(t.as_bytes()), parse_general(t.as_bytes()));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = parse_decimal(s.as_bytes());
        }

        #[test]
        fn render_then_parse_roundtrips(v in any::<i64>(), d in 0u8..=9) {
            let s = decimal_string(v, d);
            let back = parse_decimal(s.as_bytes()).unwrap();
            prop_assert_eq!(back.value, v);
            prop_assert!(back.decimals >= d);
        }

        #[test]
        fn exchange_text_roundtrips_exactly(int in 0u64..9_000_000_000, frac in 0u64..100_000_000) {
            let s = format!("{int}.{frac:08}");
            let parsed = parse_decimal(s.as_bytes()).unwrap();
            prop_assert_eq!(decimal_string(parsed.value, parsed.decimals), s);
        }
    }
}
