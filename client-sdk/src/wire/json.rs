//! The JSON text rendering of frames: the public protocol for browsers and other languages.
//!
//! One JSON object per frame. Prices and quantities are decimal strings with the venue's own
//! precision (from the instrument's definition); timestamps are integers in ns since the Unix
//! epoch. The field order is fixed, so the same frame always renders to the same bytes.

use super::fixed::{write_decimal, write_decimal_wide};
use super::frame::{
    ArchivedBody, ArchivedFrame, ArchivedTradeId, BookSide, Side, StatusCode, flags,
};
use super::instruments::InstrumentInfo;

/// Which header fields to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonOptions {
    /// Include `ts_publish` (false for `tickwire normalize`, where nothing was published).
    pub ts_publish: bool,
}

impl Default for JsonOptions {
    fn default() -> Self {
        JsonOptions { ts_publish: true }
    }
}

/// Appends the JSON object for `frame` to `out` (no trailing newline).
///
/// `info` supplies symbol and display precision; without it the symbol renders as `null`
/// and numbers with as many decimals as they need.
pub fn render(
    frame: &ArchivedFrame,
    info: Option<&InstrumentInfo>,
    opts: JsonOptions,
    out: &mut Vec<u8>,
) {
    let (pd, qd) = info.map_or((0, 0), |i| (i.price_decimals, i.qty_decimals));
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(frame.kind().json_name().as_bytes());
    out.extend_from_slice(b"\",\"venue\":");
    match frame.venue() {
        Some(v) => string(out, v.name()),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"symbol\":");
    match info {
        Some(i) if frame.instrument.to_native() != 0 => string(out, &i.symbol),
        _ => out.extend_from_slice(b"null"),
    }
    field_u64(out, "seq", frame.seq.to_native());
    field_u64(out, "ts_exchange", frame.ts_exchange.to_native());
    field_u64(out, "ts_recv", frame.ts_recv.to_native());
    if opts.ts_publish {
        field_u64(out, "ts_publish", frame.ts_publish.to_native());
    }
    let updates = frame.updates.to_native();
    if updates != 1 {
        field_u64(out, "updates", updates as u64);
    }
    out.extend_from_slice(b",\"flags\":[");
    let mut first = true;
    for (bit, name) in flags::NAMES {
        if frame.flags & bit != 0 {
            if !first {
                out.push(b',');
            }
            first = false;
            string(out, name);
        }
    }
    out.push(b']');
    match &frame.body {
        ArchivedBody::Trade(t) => trade(out, t, pd, qd),
        ArchivedBody::TradeSummary(s) => {
            field_u64(out, "count", s.count.to_native());
            out.extend_from_slice(b",\"volume\":\"");
            write_decimal_wide(out, s.volume.to_native(), qd);
            out.push(b'"');
            field_dec(out, "vwap", s.vwap.to_native(), pd);
            field_dec(out, "high", s.high.to_native(), pd);
            field_dec(out, "low", s.low.to_native(), pd);
            out.extend_from_slice(b",\"last\":{");
            // The last trade's fields, without the leading comma of the first.
            let start = out.len();
            trade(out, &s.last, pd, qd);
            out.remove(start);
            out.push(b'}');
        }
        ArchivedBody::Quote(q) => {
            field_dec(out, "bid_px", q.bid_px.to_native(), pd);
            field_dec(out, "bid_qty", q.bid_qty.to_native(), qd);
            field_dec(out, "ask_px", q.ask_px.to_native(), pd);
            field_dec(out, "ask_qty", q.ask_qty.to_native(), qd);
        }
        ArchivedBody::BookDelta(d) => {
            out.extend_from_slice(b",\"side\":");
            string(out, BookSide::from(&d.side).json_name());
            field_dec(out, "price", d.price.to_native(), pd);
            field_dec(out, "qty", d.qty.to_native(), qd);
        }
        ArchivedBody::BookSnapshot(s) => {
            out.extend_from_slice(b",\"bids\":[");
            levels(
                out,
                s.bids
                    .iter()
                    .map(|l| (l.price.to_native(), l.qty.to_native())),
                pd,
                qd,
            );
            out.extend_from_slice(b"],\"asks\":[");
            levels(
                out,
                s.asks
                    .iter()
                    .map(|l| (l.price.to_native(), l.qty.to_native())),
                pd,
                qd,
            );
            out.push(b']');
        }
        ArchivedBody::Status(s) => {
            out.extend_from_slice(b",\"status\":");
            string(out, StatusCode::from(&s.code).json_name());
            out.extend_from_slice(b",\"detail\":");
            string(out, s.detail.as_str());
        }
        ArchivedBody::Heartbeat => {}
        ArchivedBody::Definition(d) => {
            field_u64(out, "price_decimals", d.price_decimals as u64);
            field_u64(out, "qty_decimals", d.qty_decimals as u64);
            if info.is_none() {
                // The definition itself says what the symbol is.
                out.extend_from_slice(b",\"definition_symbol\":");
                string(out, d.symbol.as_str());
            }
        }
    }
    out.push(b'}');
}

/// Renders `frame` as a `String` (convenience for tests and tools).
pub fn render_string(
    frame: &ArchivedFrame,
    info: Option<&InstrumentInfo>,
    opts: JsonOptions,
) -> String {
    let mut out = Vec::with_capacity(256);
    render(frame, info, opts, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// The trade fields: `,"price":..,"qty":..,"side":..,"trade_id":..`.
fn trade(out: &mut Vec<u8>, t: &super::frame::ArchivedTrade, pd: u8, qd: u8) {
    field_dec(out, "price", t.price.to_native(), pd);
    field_dec(out, "qty", t.qty.to_native(), qd);
    out.extend_from_slice(b",\"side\":");
    string(out, Side::from(&t.side).json_name());
    out.extend_from_slice(b",\"trade_id\":");
    match &t.trade_id {
        ArchivedTradeId::None => out.extend_from_slice(b"null"),
        ArchivedTradeId::Num(n) => {
            out.push(b'"');
            digits(out, n.to_native());
            out.push(b'"');
        }
        ArchivedTradeId::Text(s) => string(out, s.as_str()),
    }
}

fn levels(out: &mut Vec<u8>, it: impl Iterator<Item = (i64, i64)>, pd: u8, qd: u8) {
    for (i, (p, q)) in it.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"[\"");
        write_decimal(out, p, pd);
        out.extend_from_slice(b"\",\"");
        write_decimal(out, q, qd);
        out.extend_from_slice(b"\"]");
    }
}

fn field_u64(out: &mut Vec<u8>, name: &str, v: u64) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    digits(out, v);
}

/// Appends the decimal digits of `v`.
fn digits(out: &mut Vec<u8>, v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn field_dec(out: &mut Vec<u8>, name: &str, v: i64, decimals: u8) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":\"");
    write_decimal(out, v, decimals);
    out.push(b'"');
}

/// Appends `s` as a JSON string literal, escaping as RFC 8259 requires.
pub fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xf) as usize]);
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::codec::{access, encode};
    use crate::wire::frame::*;
    use crate::wire::ids::{Venue, instrument_id};

    fn btc() -> InstrumentInfo {
        InstrumentInfo::new(Venue::Binance, "BTCUSDT", 8, 8)
    }

    fn json(f: &Frame, info: Option<&InstrumentInfo>) -> serde_json::Value {
        let bytes = encode(f);
        let s = render_string(access(&bytes).unwrap(), info, JsonOptions::default());
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("invalid JSON {s}: {e}"))
    }

    #[test]
    fn trade_matches_the_protocol() {
        let mut f = Frame::new(
            Venue::Binance,
            instrument_id(Venue::Binance, "BTCUSDT"),
            1_723_161_255_342_000_000,
            1_723_161_254_087_896_568,
            Body::Trade(Trade {
                price: 61_837_630_000_000,
                qty: 20_000_000,
                side: Side::Sell,
                trade_id: TradeId::Num(3_735_683_259),
            }),
        );
        f.seq = 7;
        f.ts_publish = 1_723_161_254_087_900_000;
        let v = json(&f, Some(&btc()));
        assert_eq!(
            v,
            serde_json::json!({
                "type": "trade", "venue": "binance", "symbol": "BTCUSDT", "seq": 7,
                "ts_exchange": 1_723_161_255_342_000_000u64, "ts_recv": 1_723_161_254_087_896_568u64,
                "ts_publish": 1_723_161_254_087_900_000u64, "flags": [],
                "price": "61837.63000000", "qty": "0.02000000", "side": "sell", "trade_id": "3735683259"
            })
        );
    }

    #[test]
    fn every_kind_renders_valid_json() {
        for f in crate::wire::codec::tests::sample_frames() {
            let info = btc();
            let v = json(&f, Some(&info));
            assert_eq!(v["type"], f.kind().json_name());
            let _ = json(&f, None);
        }
    }

    #[test]
    fn snapshot_and_delta_shapes() {
        let id = instrument_id(Venue::Binance, "BTCUSDT");
        let snap = Frame::new(
            Venue::Binance,
            id,
            0,
            0,
            Body::BookSnapshot(BookSnapshot {
                bids: vec![Level {
                    price: 100_000_000_000,
                    qty: 1_500_000_000,
                }],
                asks: vec![],
            }),
        )
        .with_flags(flags::SNAPSHOT | flags::LAST);
        let v = json(&snap, Some(&btc()));
        assert_eq!(
            v["bids"],
            serde_json::json!([["100.00000000", "1.50000000"]])
        );
        assert_eq!(v["asks"], serde_json::json!([]));
        assert_eq!(v["flags"], serde_json::json!(["last", "snapshot"]));
        let delta = Frame::new(
            Venue::Binance,
            id,
            0,
            0,
            Body::BookDelta(BookDelta {
                side: BookSide::Bid,
                price: 100_000_000_000,
                qty: 0,
            }),
        );
        let v = json(&delta, Some(&btc()));
        assert_eq!(v["side"], "bid");
        assert_eq!(v["qty"], "0.00000000");
    }

    #[test]
    fn trade_summary_shape() {
        let f = Frame::new(
            Venue::Binance,
            instrument_id(Venue::Binance, "BTCUSDT"),
            0,
            0,
            Body::TradeSummary(Box::new(TradeSummary {
                count: 3,
                volume: 30_000_000,
                vwap: 61_837_630_000_000,
                high: 61_837_640_000_000,
                low: 61_837_620_000_000,
                last: Trade {
                    price: 61_837_640_000_000,
                    qty: 10_000_000,
                    side: Side::Buy,
                    trade_id: TradeId::Num(9),
                },
            })),
        )
        .with_flags(flags::CONFLATED);
        let v = json(&f, Some(&btc()));
        assert_eq!(v["type"], "trade_summary");
        assert_eq!(v["count"], 3);
        assert_eq!(v["volume"], "0.03000000");
        assert_eq!(v["high"], "61837.64000000");
        assert_eq!(v["last"]["price"], "61837.64000000");
        assert_eq!(v["last"]["trade_id"], "9");
        assert_eq!(v["flags"], serde_json::json!(["conflated"]));
    }

    #[test]
    fn strings_are_escaped() {
        let f = Frame::new(
            Venue::Binance,
            0,
            0,
            0,
            Body::Status(Status {
                code: StatusCode::Gap,
                detail: "a\"b\\c\n\u{1}é".into(),
            }),
        );
        let v = json(&f, None);
        assert_eq!(v["detail"], "a\"b\\c\n\u{1}é");
        assert_eq!(v["symbol"], serde_json::Value::Null);
    }
}
