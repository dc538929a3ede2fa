//! Field access over a simd-json tape with typed errors, shared by the venue normalizers.

use simd_json::prelude::*;
use simd_json::tape::{Array, Value};
use tickwire_sdk::wire::{Level, Parsed, parse_decimal};

use crate::normalizer::NormalizeError;

/// A reusable simd-json parser: its tape, scratch buffers and input copy live across
/// messages, so parsing allocates nothing once warm.
pub struct TapeParser {
    tape: simd_json::Tape<'static>,
    buffers: simd_json::Buffers,
    /// simd-json parses in place: the message is copied here first.
    input: Vec<u8>,
}

impl Default for TapeParser {
    fn default() -> Self {
        TapeParser {
            tape: simd_json::Tape(Vec::new()),
            buffers: simd_json::Buffers::default(),
            input: Vec::new(),
        }
    }
}

impl TapeParser {
    /// A parser with empty buffers.
    pub fn new() -> TapeParser {
        TapeParser::default()
    }

    /// Parses `raw` (a copy of it) and calls `f` with the root value.
    pub fn with<R>(
        &mut self,
        raw: &[u8],
        f: impl FnOnce(Value<'_, '_>) -> R,
    ) -> Result<R, NormalizeError> {
        self.input.clear();
        self.input.extend_from_slice(raw);
        let mut tape = std::mem::replace(&mut self.tape, simd_json::Tape(Vec::new())).reset();
        let parsed = simd_json::fill_tape(&mut self.input, &mut self.buffers, &mut tape);
        let result = match parsed {
            Ok(()) => Ok(f(tape.as_value())),
            Err(e) => Err(NormalizeError::Json(e.to_string())),
        };
        self.tape = tape.reset();
        result
    }
}

/// Reads an object's fields in one pass: slot `k` gets the value of key `keys[k]`.
/// One scan of the object instead of one per field (the tape's `get` is a linear scan).
#[inline]
pub fn fields<'t, 'i, const N: usize>(
    v: &Value<'t, 'i>,
    keys: [&str; N],
) -> [Option<Value<'t, 'i>>; N] {
    let mut out = [None; N];
    if let Some(obj) = v.as_object() {
        for (k, val) in obj.iter() {
            if let Some(slot) = keys.iter().position(|key| *key == k) {
                out[slot] = Some(val);
            }
        }
    }
    out
}

/// A required string from a [`fields`] slot.
#[inline]
pub fn req_str<'i>(
    slot: Option<Value<'_, 'i>>,
    message: &'static str,
    field: &'static str,
) -> Result<&'i str, NormalizeError> {
    slot.and_then(|x| x.into_string())
        .ok_or(NormalizeError::Field {
            message,
            field,
            expected: "a string",
        })
}

/// A required unsigned integer from a [`fields`] slot.
#[inline]
pub fn req_u64(
    slot: Option<Value<'_, '_>>,
    message: &'static str,
    field: &'static str,
) -> Result<u64, NormalizeError> {
    slot.and_then(|x| x.as_u64()).ok_or(NormalizeError::Field {
        message,
        field,
        expected: "an unsigned integer",
    })
}

/// An optional unsigned integer from a [`fields`] slot (an error if present with another type).
#[inline]
pub fn opt_u64(
    slot: Option<Value<'_, '_>>,
    message: &'static str,
    field: &'static str,
) -> Result<Option<u64>, NormalizeError> {
    match slot {
        None => Ok(None),
        Some(x) => x.as_u64().map(Some).ok_or(NormalizeError::Field {
            message,
            field,
            expected: "an unsigned integer",
        }),
    }
}

/// A required boolean from a [`fields`] slot.
#[inline]
pub fn req_bool(
    slot: Option<Value<'_, '_>>,
    message: &'static str,
    field: &'static str,
) -> Result<bool, NormalizeError> {
    slot.and_then(|x| x.as_bool()).ok_or(NormalizeError::Field {
        message,
        field,
        expected: "a boolean",
    })
}

/// A required array from a [`fields`] slot.
#[inline]
pub fn req_array<'t, 'i>(
    slot: Option<Value<'t, 'i>>,
    message: &'static str,
    field: &'static str,
) -> Result<Array<'t, 'i>, NormalizeError> {
    slot.and_then(|x| x.into_array())
        .ok_or(NormalizeError::Field {
            message,
            field,
            expected: "an array",
        })
}

/// A required decimal string from a [`fields`] slot, as fixed point.
#[inline]
pub fn req_decimal(
    slot: Option<Value<'_, '_>>,
    message: &'static str,
    field: &'static str,
) -> Result<Parsed, NormalizeError> {
    decimal(req_str(slot, message, field)?, message, field)
}

/// A required unsigned integer field.
#[inline]
pub fn u64_field(
    v: &Value<'_, '_>,
    message: &'static str,
    field: &'static str,
) -> Result<u64, NormalizeError> {
    v.get_u64(field).ok_or(NormalizeError::Field {
        message,
        field,
        expected: "an unsigned integer",
    })
}

/// A required array field.
#[inline]
pub fn array_field<'t, 'i>(
    v: &Value<'t, 'i>,
    message: &'static str,
    field: &'static str,
) -> Result<Array<'t, 'i>, NormalizeError> {
    v.get_array(field).ok_or(NormalizeError::Field {
        message,
        field,
        expected: "an array",
    })
}

/// Parses decimal text into fixed point, naming the field on error.
#[inline]
pub fn decimal(
    text: &str,
    message: &'static str,
    field: &'static str,
) -> Result<Parsed, NormalizeError> {
    parse_decimal(text.as_bytes()).map_err(|error| NormalizeError::Decimal {
        message,
        field,
        text: text.chars().take(40).collect(),
        error,
    })
}

/// Most fractional digits seen in a run of levels: (price, qty).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Precision {
    /// Price decimals.
    pub price: u8,
    /// Quantity decimals.
    pub qty: u8,
}

impl Precision {
    /// Widens to cover a price and a quantity.
    #[inline]
    pub fn see(&mut self, price: &Parsed, qty: &Parsed) {
        self.price = self.price.max(price.decimals);
        self.qty = self.qty.max(qty.decimals);
    }
}

/// Reads `[["price","qty",...], ...]` into `out` (appending), widening `precision`.
/// Extra elements after price and quantity in a level are ignored (older Binance payloads
/// carried an empty third element).
pub fn levels(
    arr: &Array<'_, '_>,
    message: &'static str,
    field: &'static str,
    precision: &mut Precision,
    out: &mut Vec<Level>,
) -> Result<(), NormalizeError> {
    out.reserve(arr.len());
    for level in arr.iter() {
        let bad = || NormalizeError::Field {
            message,
            field,
            expected: "an array of [price, quantity] string pairs",
        };
        let pair = level.as_array().ok_or_else(bad)?;
        let p = pair.get(0).and_then(|x| x.into_string()).ok_or_else(bad)?;
        let q = pair.get(1).and_then(|x| x.into_string()).ok_or_else(bad)?;
        let p = decimal(p, message, field)?;
        let q = decimal(q, message, field)?;
        if p.value <= 0 || q.value < 0 {
            return Err(NormalizeError::Field {
                message,
                field,
                expected: "levels with a positive price and a non-negative quantity",
            });
        }
        precision.see(&p, &q);
        out.push(Level {
            price: p.value,
            qty: q.value,
        });
    }
    Ok(())
}
