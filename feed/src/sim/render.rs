//! Rendering of Binance spot JSON: stream events (raw and combined), REST depth snapshots,
//! exchangeInfo and REST errors. Field order and shapes follow Binance's documentation;
//! prices and quantities are decimal strings with (at least) 8 decimals.

use std::io::Write as _;

use tickwire_sdk::wire::{Level, write_decimal};

use super::market::{DepthSnapshot, Event};
use super::stream::{Catalog, SymbolSpec, TimeUnit};
use crate::binance::BinanceMarket;

/// Decimals Binance spot uses in price and quantity strings.
pub const DECIMALS: u8 = 8;

fn num(out: &mut Vec<u8>, v: u64) {
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{v}");
}

fn dec(out: &mut Vec<u8>, v: i64) {
    out.push(b'"');
    write_decimal(out, v, DECIMALS);
    out.push(b'"');
}

fn levels(out: &mut Vec<u8>, levels: &[Level]) {
    out.push(b'[');
    for (i, l) in levels.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'[');
        dec(out, l.price);
        out.push(b',');
        dec(out, l.qty);
        out.push(b']');
    }
    out.push(b']');
}

/// Appends one stream message for `event` of symbol `spec`: the raw payload, or with
/// `combined` the `{"stream":..,"data":..}` envelope. `time_ns` is the event's time (ns since
/// the epoch), written in `unit` in the `E` and `T` fields. `market` picks the shapes: USD-M
/// futures depth events carry `T` and `pu` (the previous event's `u`: the simulator's diff
/// chains have no holes, so it is `U - 1`), book tickers carry `e`, `E` and `T`, aggregate
/// trades have no `M`.
#[allow(clippy::too_many_arguments)]
pub fn event(
    out: &mut Vec<u8>,
    spec: &SymbolSpec,
    stream_suffix: &str,
    event: &Event,
    time_ns: u64,
    unit: TimeUnit,
    combined: bool,
    market: BinanceMarket,
) {
    let futures = market == BinanceMarket::UsdFutures;
    if combined {
        out.extend_from_slice(b"{\"stream\":\"");
        out.extend_from_slice(spec.lower.as_bytes());
        out.push(b'@');
        out.extend_from_slice(stream_suffix.as_bytes());
        out.extend_from_slice(b"\",\"data\":");
    }
    let t = unit.from_ns(time_ns);
    let sym = spec.symbol.as_bytes();
    match event {
        Event::Trade {
            id,
            price,
            qty,
            buyer_maker,
        } => {
            out.extend_from_slice(b"{\"e\":\"trade\",\"E\":");
            num(out, t);
            out.extend_from_slice(b",\"s\":\"");
            out.extend_from_slice(sym);
            out.extend_from_slice(b"\",\"t\":");
            num(out, *id);
            out.extend_from_slice(b",\"p\":");
            dec(out, *price);
            out.extend_from_slice(b",\"q\":");
            dec(out, *qty);
            out.extend_from_slice(b",\"T\":");
            num(out, t);
            out.extend_from_slice(if *buyer_maker {
                b",\"m\":true,\"M\":true}"
            } else {
                b",\"m\":false,\"M\":true}"
            });
        }
        Event::AggTrade {
            id,
            first_trade,
            last_trade,
            price,
            qty,
            buyer_maker,
        } => {
            out.extend_from_slice(b"{\"e\":\"aggTrade\",\"E\":");
            num(out, t);
            out.extend_from_slice(b",\"s\":\"");
            out.extend_from_slice(sym);
            out.extend_from_slice(b"\",\"a\":");
            num(out, *id);
            out.extend_from_slice(b",\"p\":");
            dec(out, *price);
            out.extend_from_slice(b",\"q\":");
            dec(out, *qty);
            out.extend_from_slice(b",\"f\":");
            num(out, *first_trade);
            out.extend_from_slice(b",\"l\":");
            num(out, *last_trade);
            out.extend_from_slice(b",\"T\":");
            num(out, t);
            out.extend_from_slice(match (*buyer_maker, futures) {
                (true, false) => b",\"m\":true,\"M\":true}",
                (false, false) => b",\"m\":false,\"M\":true}",
                (true, true) => b",\"m\":true}",
                (false, true) => b",\"m\":false}",
            });
        }
        Event::BookTicker {
            update_id,
            bid,
            ask,
        } => {
            if futures {
                out.extend_from_slice(b"{\"e\":\"bookTicker\",\"u\":");
                num(out, *update_id);
                out.extend_from_slice(b",\"E\":");
                num(out, t);
                out.extend_from_slice(b",\"T\":");
                num(out, t);
            } else {
                out.extend_from_slice(b"{\"u\":");
                num(out, *update_id);
            }
            out.extend_from_slice(b",\"s\":\"");
            out.extend_from_slice(sym);
            out.extend_from_slice(b"\",\"b\":");
            dec(out, bid.price);
            out.extend_from_slice(b",\"B\":");
            dec(out, bid.qty);
            out.extend_from_slice(b",\"a\":");
            dec(out, ask.price);
            out.extend_from_slice(b",\"A\":");
            dec(out, ask.qty);
            out.push(b'}');
        }
        Event::Depth(d) => {
            out.extend_from_slice(b"{\"e\":\"depthUpdate\",\"E\":");
            num(out, t);
            if futures {
                out.extend_from_slice(b",\"T\":");
                num(out, t);
            }
            out.extend_from_slice(b",\"s\":\"");
            out.extend_from_slice(sym);
            out.extend_from_slice(b"\",\"U\":");
            num(out, d.first_update_id);
            out.extend_from_slice(b",\"u\":");
            num(out, d.last_update_id);
            if futures {
                out.extend_from_slice(b",\"pu\":");
                num(out, d.first_update_id.saturating_sub(1));
            }
            out.extend_from_slice(b",\"b\":");
            levels(out, &d.bids);
            out.extend_from_slice(b",\"a\":");
            levels(out, &d.asks);
            out.push(b'}');
        }
    }
    if combined {
        out.push(b'}');
    }
}

/// `GET /api/v3/depth` body: `{"lastUpdateId":..,"bids":[["p","q"],..],"asks":[..]}`.
pub fn depth_snapshot(snap: &DepthSnapshot) -> String {
    let mut out = Vec::with_capacity(64 + 44 * (snap.bids.len() + snap.asks.len()));
    out.extend_from_slice(b"{\"lastUpdateId\":");
    num(&mut out, snap.last_update_id);
    out.extend_from_slice(b",\"bids\":");
    levels(&mut out, &snap.bids);
    out.extend_from_slice(b",\"asks\":");
    levels(&mut out, &snap.asks);
    out.push(b'}');
    into_string(out)
}

/// A Binance REST error body: `{"code":-1121,"msg":"Invalid symbol."}`.
pub fn rest_error(code: i64, msg: &str) -> String {
    serde_json::json!({ "code": code, "msg": msg }).to_string()
}

/// `GET /api/v3/exchangeInfo` body for the symbols `ids` (all when `None`).
pub fn exchange_info(catalog: &Catalog, ids: Option<&[u16]>, server_time_ms: u64) -> String {
    let decimal = |v: i64| {
        let mut out = Vec::new();
        write_decimal(&mut out, v, DECIMALS);
        into_string(out)
    };
    let symbols: Vec<serde_json::Value> = catalog
        .iter()
        .filter(|(id, _)| ids.is_none_or(|ids| ids.contains(id)))
        .map(|(_, s)| {
            serde_json::json!({
                "symbol": s.symbol,
                "status": "TRADING",
                "baseAsset": s.base,
                "baseAssetPrecision": 8,
                "quoteAsset": s.quote,
                "quotePrecision": 8,
                "quoteAssetPrecision": 8,
                "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
                "isSpotTradingAllowed": true,
                "filters": [
                    {
                        "filterType": "PRICE_FILTER",
                        "minPrice": decimal(s.tick),
                        "maxPrice": decimal(1_000_000 * 1_000_000_000),
                        "tickSize": decimal(s.tick),
                    },
                    {
                        "filterType": "LOT_SIZE",
                        "minQty": decimal(s.step),
                        "maxQty": decimal(9_000 * 1_000_000_000),
                        "stepSize": decimal(s.step),
                    }
                ],
                "permissions": [],
            })
        })
        .collect();
    serde_json::json!({
        "timezone": "UTC",
        "serverTime": server_time_ms,
        "rateLimits": [],
        "exchangeFilters": [],
        "symbols": symbols,
    })
    .to_string()
}

/// Bytes this module wrote are ASCII (symbols are validated ASCII alphanumerics), so this
/// never loses data.
pub fn into_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::super::market::DepthUpdate;
    use super::*;
    use serde_json::Value;

    const P: i64 = 1_000_000_000;

    fn spec() -> SymbolSpec {
        SymbolSpec::new("BTCUSDT", 10_000_000, 10_000)
    }

    fn render(e: &Event, unit: TimeUnit, combined: bool, suffix: &str) -> Value {
        render_on(BinanceMarket::Spot, e, unit, combined, suffix)
    }

    fn render_on(
        market: BinanceMarket,
        e: &Event,
        unit: TimeUnit,
        combined: bool,
        suffix: &str,
    ) -> Value {
        let mut out = Vec::new();
        event(
            &mut out,
            &spec(),
            suffix,
            e,
            1_723_161_255_342_123_456,
            unit,
            combined,
            market,
        );
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn futures_shapes_follow_the_usd_m_docs() {
        let depth = Event::Depth(DepthUpdate {
            first_update_id: 101,
            last_update_id: 105,
            bids: vec![Level {
                price: 1_000_000_000,
                qty: 0,
            }],
            asks: vec![],
        });
        let v = render_on(
            BinanceMarket::UsdFutures,
            &depth,
            TimeUnit::Millisecond,
            false,
            "depth@100ms",
        );
        assert_eq!(v["pu"], 100);
        assert_eq!(v["T"], 1_723_161_255_342u64);
        assert!(render(&depth, TimeUnit::Millisecond, false, "depth@100ms")["pu"].is_null());
        let bt = Event::BookTicker {
            update_id: 7,
            bid: Level {
                price: 1_000_000_000,
                qty: 1_000_000_000,
            },
            ask: Level {
                price: 2_000_000_000,
                qty: 1_000_000_000,
            },
        };
        let v = render_on(
            BinanceMarket::UsdFutures,
            &bt,
            TimeUnit::Millisecond,
            true,
            "bookTicker",
        );
        assert_eq!(v["data"]["e"], "bookTicker");
        assert_eq!(v["data"]["u"], 7);
        assert_eq!(v["data"]["T"], 1_723_161_255_342u64);
    }

    #[test]
    fn trade_shape() {
        let e = Event::Trade {
            id: 3_735_683_259,
            price: 61_837_630_000_000,
            qty: 20_000_000,
            buyer_maker: true,
        };
        let v = render(&e, TimeUnit::Millisecond, true, "trade");
        assert_eq!(v["stream"], "btcusdt@trade");
        let d = &v["data"];
        let keys: Vec<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
        let mut expected = vec!["e", "E", "s", "t", "p", "q", "T", "m", "M"];
        expected.sort();
        let mut keys = keys;
        keys.sort();
        assert_eq!(keys, expected);
        assert_eq!(d["e"], "trade");
        assert_eq!(d["E"], 1_723_161_255_342u64);
        assert_eq!(d["s"], "BTCUSDT");
        assert_eq!(d["p"], "61837.63000000");
        assert_eq!(d["q"], "0.02000000");
        assert_eq!(d["m"], true);
        let raw = render(&e, TimeUnit::Microsecond, false, "trade");
        assert_eq!(raw["T"], 1_723_161_255_342_123u64);
        assert!(raw.get("stream").is_none());
        let ns = render(&e, TimeUnit::Nanosecond, false, "trade");
        assert_eq!(ns["E"], 1_723_161_255_342_123_456u64);
    }

    #[test]
    fn book_ticker_and_depth_shapes() {
        let bt = Event::BookTicker {
            update_id: 400_900_217,
            bid: Level {
                price: 25 * P,
                qty: 31 * P,
            },
            ask: Level {
                price: 26 * P,
                qty: 40 * P,
            },
        };
        let v = render(&bt, TimeUnit::Millisecond, false, "bookTicker");
        assert!(
            v.get("E").is_none() && v.get("e").is_none(),
            "spot bookTicker has no E/e"
        );
        assert_eq!(v["u"], 400_900_217);
        assert_eq!(v["b"], "25.00000000");
        assert_eq!(v["A"], "40.00000000");
        let d = Event::Depth(DepthUpdate {
            first_update_id: 157,
            last_update_id: 160,
            bids: vec![Level {
                price: P / 400,
                qty: 10 * P,
            }],
            asks: vec![],
        });
        let v = render(&d, TimeUnit::Millisecond, true, "depth@100ms");
        assert_eq!(v["stream"], "btcusdt@depth@100ms");
        assert_eq!(v["data"]["e"], "depthUpdate");
        assert_eq!(v["data"]["U"], 157);
        assert_eq!(v["data"]["u"], 160);
        assert_eq!(v["data"]["b"][0][0], "0.00250000");
        assert_eq!(v["data"]["a"], serde_json::json!([]));
    }

    #[test]
    fn rest_bodies() {
        let s = DepthSnapshot {
            last_update_id: 7,
            bids: vec![Level {
                price: P,
                qty: 2 * P,
            }],
            asks: vec![],
        };
        assert_eq!(
            depth_snapshot(&s),
            r#"{"lastUpdateId":7,"bids":[["1.00000000","2.00000000"]],"asks":[]}"#
        );
        assert_eq!(
            rest_error(-1121, "Invalid symbol."),
            r#"{"code":-1121,"msg":"Invalid symbol."}"#
        );
        let mut c = Catalog::new();
        c.add(spec()).unwrap();
        let v: Value = serde_json::from_str(&exchange_info(&c, None, 5)).unwrap();
        let s = &v["symbols"][0];
        assert_eq!(s["baseAsset"], "BTC");
        assert_eq!(s["filters"][0]["tickSize"], "0.01000000");
        assert_eq!(s["filters"][1]["stepSize"], "0.00001000");
    }
}
