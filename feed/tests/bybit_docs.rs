//! The Bybit v5 normalizer (spot and linear) on the documented example messages and on
//! generated streams, checked against an independent reconstruction (serde_json over the raw
//! text, price strings as keys). There is no real Bybit capture in replay-data.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use serde_json::Value;
use tickwire_feed::bybit::{BybitNormalizer, Market};
use tickwire_feed::{Action, NormalizeError, Normalizer, Output};
use tickwire_sdk::L2Book;
use tickwire_sdk::wire::{
    Body, Frame, Quote, Side, StatusCode, TradeId, Venue, decimal_string, flags, instrument_id,
};

// ---------------------------------------------------------------------------------------
// Documented examples, verbatim unless a comment says otherwise.
// ---------------------------------------------------------------------------------------

/// https://bybit-exchange.github.io/docs/v5/websocket/public/orderbook, "Response Example",
/// Snapshot. The page elides levels with `...,` lines, which are not JSON: those two lines are
/// removed, nothing else is changed.
const DOC_BOOK_SNAPSHOT: &str = r#"{
    "topic": "orderbook.50.BTCUSDT",
    "type": "snapshot",
    "ts": 1672304484978,
    "data": {
        "s": "BTCUSDT",
        "b": [
            [
                "16493.50",
                "0.006"
            ],
            [
                "16493.00",
                "0.100"
            ]
        ],
        "a": [
            [
                "16611.00",
                "0.029"
            ],
            [
                "16612.00",
                "0.213"
            ]
        ],
    "u": 18521288,
    "seq": 7961638724
    },
    "cts": 1672304484976
}"#;

/// Same page, "Response Example", Delta (verbatim).
const DOC_BOOK_DELTA: &str = r#"{
    "topic": "orderbook.50.BTCUSDT",
    "type": "delta",
    "ts": 1687940967466,
    "data": {
        "s": "BTCUSDT",
        "b": [
            [
                "30247.20",
                "30.028"
            ],
            [
                "30245.40",
                "0.224"
            ],
            [
                "30242.10",
                "1.593"
            ],
            [
                "30240.30",
                "1.305"
            ],
            [
                "30240.00",
                "0"
            ]
        ],
        "a": [
            [
                "30248.70",
                "0"
            ],
            [
                "30249.30",
                "0.892"
            ],
            [
                "30249.50",
                "1.778"
            ],
            [
                "30249.60",
                "0"
            ],
            [
                "30251.90",
                "2.947"
            ],
            [
                "30252.20",
                "0.659"
            ],
            [
                "30252.50",
                "4.591"
            ]
        ],
        "u": 177400507,
        "seq": 66544703342
    },
    "cts": 1687940967464
}"#;

/// https://bybit-exchange.github.io/docs/v5/websocket/public/trade, "Response Example"
/// (verbatim; a linear trade: UUID trade id, `L` tick direction).
const DOC_TRADE: &str = r#"{
    "topic": "publicTrade.BTCUSDT",
    "type": "snapshot",
    "ts": 1672304486868,
    "data": [
        {
            "T": 1672304486865,
            "s": "BTCUSDT",
            "S": "Buy",
            "v": "0.001",
            "p": "16578.50",
            "L": "PlusTick",
            "i": "20f43950-d8dd-5b31-9112-a178eb6023af",
            "BT": false,
            "seq": 1783284617
        }
    ]
}"#;

/// https://bybit-exchange.github.io/docs/v5/websocket/public/ticker, "Response Example",
/// Linear (verbatim).
const DOC_TICKER_LINEAR: &str = r#"{
    "topic": "tickers.BTCUSDT",
    "type": "snapshot",
    "data": {
        "symbol": "BTCUSDT",
        "tickDirection": "PlusTick",
        "price24hPcnt": "0.017103",
        "lastPrice": "17216.00",
        "prevPrice24h": "16926.50",
        "highPrice24h": "17281.50",
        "lowPrice24h": "16915.00",
        "prevPrice1h": "17238.00",
        "markPrice": "17217.33",
        "indexPrice": "17227.36",
        "openInterest": "68744.761",
        "openInterestValue": "1183601235.91",
        "turnover24h": "1570383121.943499",
        "volume24h": "91705.276",
        "nextFundingTime": "1673280000000",
        "fundingRate": "-0.000212",
        "bid1Price": "17215.50",
        "bid1Size": "84.489",
        "ask1Price": "17216.00",
        "ask1Size": "83.020"
    },
    "cs": 24987956059,
    "ts": 1673272861686
}"#;

/// Same page, "Response Example", Spot (verbatim): no bid/ask fields.
const DOC_TICKER_SPOT: &str = r#"{
    "topic": "tickers.BTCUSDT",
    "ts": 1673853746003,
    "type": "snapshot",
    "cs": 2588407389,
    "data": {
        "symbol": "BTCUSDT",
        "lastPrice": "21109.77",
        "highPrice24h": "21426.99",
        "lowPrice24h": "20575",
        "prevPrice24h": "20704.93",
        "volume24h": "6780.866843",
        "turnover24h": "141946527.22907118",
        "price24hPcnt": "0.0196",
        "usdIndexPrice": "21120.2400136"
    }
}"#;

/// https://bybit-exchange.github.io/docs/v5/ws/connect, "Pong message example of public
/// channels", Spot (verbatim).
const DOC_PONG_SPOT: &str = r#"{
    "success": true,
    "ret_msg": "pong",
    "conn_id": "0970e817-426e-429a-a679-ff7f55e0b16a",
    "op": "ping"
}"#;

/// Same page, Linear/Inverse (verbatim).
const DOC_PONG_LINEAR: &str = r#"{
    "success": true,
    "ret_msg": "pong",
    "conn_id": "465772b1-7630-4fdc-a492-e003e6f0f260",
    "req_id": "",
    "op": "ping"
}"#;

/// Same page, "Pong message example of private channels" (verbatim): the `"op":"pong"` shape.
const DOC_PONG_PRIVATE: &str = r#"{
    "req_id": "test",
    "op": "pong",
    "args": [
        "1675418560633"
    ],
    "conn_id": "cfcb4ocsvfriu23r3er0-1b"
}"#;

/// Same page, "Understanding the Subscription Response" (verbatim).
const DOC_SUBSCRIBED: &str = r#"{
    "success": true,
    "ret_msg": "",
    "op": "subscribe",
    "conn_id": "cejreassvfrsfvb9v1a0-2m"
}"#;

/// https://bybit-exchange.github.io/docs/v5/websocket/public/kline, "Response Example"
/// (verbatim): a topic this adapter deliberately ignores.
const DOC_KLINE: &str = r#"{
    "topic": "kline.5.BTCUSDT",
    "data": [
        {
            "start": 1672324800000,
            "end": 1672325099999,
            "interval": "5",
            "open": "16649.5",
            "close": "16677",
            "high": "16677",
            "low": "16608",
            "volume": "2.081",
            "turnover": "34666.4005",
            "confirm": false,
            "timestamp": 1672324988882
        }
    ],
    "ts": 1672324988882,
    "type": "snapshot"
}"#;

fn feed(n: &mut BybitNormalizer, raw: &str) -> (Vec<Frame>, Vec<Action>) {
    let mut out = Output::new();
    n.on_message(raw.as_bytes(), 7, &mut out)
        .unwrap_or_else(|e| panic!("{e}: {raw}"));
    (out.frames, out.actions)
}

fn data_frames(frames: &[Frame]) -> Vec<&Frame> {
    frames
        .iter()
        .filter(|f| !matches!(f.body, Body::Definition(_)))
        .collect()
}

fn px(text: &str) -> i64 {
    tickwire_sdk::wire::parse_decimal(text.as_bytes())
        .unwrap()
        .value
}

#[test]
fn doc_orderbook_snapshot_becomes_a_book_snapshot() {
    for market in [Market::Spot, Market::Linear] {
        let mut n = BybitNormalizer::new(market, &[]);
        let (frames, actions) = feed(&mut n, DOC_BOOK_SNAPSHOT);
        assert!(actions.is_empty());
        let Body::Definition(d) = &frames[0].body else {
            panic!("{frames:?}")
        };
        assert_eq!(
            (d.symbol.as_str(), d.price_decimals, d.qty_decimals),
            ("BTCUSDT", 2, 3)
        );
        let data = data_frames(&frames);
        assert_eq!(data.len(), 1);
        let f = data[0];
        assert_eq!(f.venue, market_venue(market).id());
        assert_eq!(f.instrument, instrument_id(market_venue(market), "BTCUSDT"));
        assert_eq!(f.flags, flags::SNAPSHOT | flags::LAST);
        // `cts` (the matching engine's time) is the exchange time.
        assert_eq!(f.ts_exchange, 1_672_304_484_976_000_000);
        let Body::BookSnapshot(s) = &f.body else {
            panic!()
        };
        assert_eq!(s.bids.len(), 2);
        assert_eq!(s.bids[0].price, px("16493.50"));
        assert_eq!(s.bids[1].qty, px("0.100"));
        assert_eq!(s.asks[0].price, px("16611.00"));
        assert_eq!(s.asks[1].qty, px("0.213"));
        assert_eq!(n.stats().get("orderbook"), 1);
        assert_eq!(n.stats().get("book:synced"), 1);
        assert!(n.book("BTCUSDT").is_some());
    }
}

fn market_venue(m: Market) -> Venue {
    match m {
        Market::Spot => Venue::Bybit,
        Market::Linear => Venue::BybitLinear,
    }
}

#[test]
fn doc_orderbook_delta_applies_on_the_book_it_follows() {
    let mut n = BybitNormalizer::linear(&[]);
    // A snapshot we build at u = 177400506 holding the levels the documented delta touches.
    let snap = r#"{"topic":"orderbook.50.BTCUSDT","type":"snapshot","ts":1687940967400,"data":{"s":"BTCUSDT","b":[["30247.20","1.000"],["30240.00","2.000"],["30230.00","3.000"]],"a":[["30248.70","1.000"],["30249.60","5.000"],["30260.00","1.500"]],"u":177400506,"seq":66544703300},"cts":1687940967399}"#;
    feed(&mut n, snap);
    let (frames, actions) = feed(&mut n, DOC_BOOK_DELTA);
    assert!(actions.is_empty(), "{actions:?}");
    let data = data_frames(&frames);
    assert_eq!(data.len(), 12); // 5 bid levels + 7 ask levels
    assert!(data[..11].iter().all(|f| f.flags == 0));
    assert_eq!(data[11].flags, flags::LAST);
    assert_eq!(data[0].ts_exchange, 1_687_940_967_464_000_000);
    let mut book = L2Book::new();
    let mut all = Vec::new();
    all.extend(feed_frames_for_book(snap));
    all.extend(frames.iter().cloned());
    for f in &all {
        book.apply_owned(f);
    }
    assert!(book.is_valid());
    let bids: Vec<_> = book.bids().map(|l| (l.price, l.qty)).collect();
    assert_eq!(
        bids,
        [
            (px("30247.20"), px("30.028")),
            (px("30245.40"), px("0.224")),
            (px("30242.10"), px("1.593")),
            (px("30240.30"), px("1.305")),
            (px("30230.00"), px("3.000")),
        ]
    );
    let asks: Vec<_> = book.asks().map(|l| (l.price, l.qty)).collect();
    assert_eq!(
        asks,
        [
            (px("30249.30"), px("0.892")),
            (px("30249.50"), px("1.778")),
            (px("30251.90"), px("2.947")),
            (px("30252.20"), px("0.659")),
            (px("30252.50"), px("4.591")),
            (px("30260.00"), px("1.500")),
        ]
    );
    assert_eq!(n.stats().gaps, 0);
}

fn feed_frames_for_book(raw: &str) -> Vec<Frame> {
    let mut n = BybitNormalizer::linear(&[]);
    feed(&mut n, raw).0
}

#[test]
fn doc_orderbook_delta_without_its_predecessor_is_a_gap() {
    // The documented snapshot (u=18521288) and delta (u=177400507) are from different days:
    // applying one after the other is exactly the hole the u rule must catch.
    let mut n = BybitNormalizer::linear(&[]);
    feed(&mut n, DOC_BOOK_SNAPSHOT);
    let (frames, actions) = feed(&mut n, DOC_BOOK_DELTA);
    let statuses: Vec<_> = frames
        .iter()
        .filter_map(|f| match &f.body {
            Body::Status(s) => Some((f.flags, s.code, s.detail.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].1, StatusCode::Gap);
    assert!(statuses[0].0 & flags::BAD_BOOK != 0);
    assert!(
        statuses[0].2.contains("18521289..=177400506"),
        "{}",
        statuses[0].2
    );
    assert!(!frames.iter().any(|f| matches!(f.body, Body::BookDelta(_))));
    assert_eq!(actions.len(), 2);
    let [Action::Send(unsub), Action::Send(sub)] = &actions[..] else {
        panic!("{actions:?}")
    };
    let unsub: Value = serde_json::from_str(unsub).unwrap();
    let sub: Value = serde_json::from_str(sub).unwrap();
    assert_eq!(unsub["op"], "unsubscribe");
    assert_eq!(unsub["args"], serde_json::json!(["orderbook.50.BTCUSDT"]));
    assert_eq!(sub["op"], "subscribe");
    assert_eq!(sub["args"], serde_json::json!(["orderbook.50.BTCUSDT"]));
    assert!(n.book("BTCUSDT").is_none());
    assert_eq!(n.stats().gaps, 1);
}

#[test]
fn doc_trade_linear_uuid_id() {
    let mut n = BybitNormalizer::linear(&[]);
    let (frames, _) = feed(&mut n, DOC_TRADE);
    let data = data_frames(&frames);
    assert_eq!(data.len(), 1);
    let Body::Trade(t) = &data[0].body else {
        panic!()
    };
    assert_eq!(t.price, px("16578.50"));
    assert_eq!(t.qty, px("0.001"));
    assert_eq!(t.side, Side::Buy);
    assert_eq!(
        t.trade_id,
        TradeId::Text("20f43950-d8dd-5b31-9112-a178eb6023af".into())
    );
    assert_eq!(data[0].ts_exchange, 1_672_304_486_865_000_000);
    assert_eq!(data[0].venue, Venue::BybitLinear.id());
    assert_eq!(n.stats().get("publicTrade"), 1);
}

#[test]
fn spot_trades_numeric_ids_and_several_per_message() {
    // Shape of the documented trade message on spot: no `L`, numeric ids in strings.
    let raw = r#"{"topic":"publicTrade.BTCUSDT","ts":1714000000100,"type":"snapshot","data":[{"i":"2290000000061666327","T":1714000000099,"p":"64000.01","v":"0.000511","S":"Sell","s":"BTCUSDT","BT":false,"RPI":false,"seq":40000001},{"i":"2290000000061666328","T":1714000000099,"p":"64000.00","v":"1.2","S":"Buy","s":"BTCUSDT","BT":true,"RPI":false,"seq":40000001}]}"#;
    let mut n = BybitNormalizer::spot(&[]);
    let (frames, _) = feed(&mut n, raw);
    let trades: Vec<_> = frames
        .iter()
        .filter_map(|f| match &f.body {
            Body::Trade(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(trades.len(), 2);
    assert_eq!(trades[0].trade_id, TradeId::Num(2290000000061666327));
    assert_eq!(trades[0].side, Side::Sell);
    assert_eq!(trades[0].qty, px("0.000511"));
    assert_eq!(trades[1].side, Side::Buy);
    assert_eq!(trades[1].price, px("64000.00"));
    // No trade-id contiguity is documented: a jump in ids is not reported as a gap.
    let jump = raw.replace("2290000000061666327", "2290000000061669999");
    let (frames, _) = feed(&mut n, &jump);
    assert!(!frames.iter().any(|f| matches!(f.body, Body::Status(_))));
    assert_eq!(n.stats().gaps, 0);
}

#[test]
fn doc_tickers_linear_quote_and_spot_ignored() {
    let mut n = BybitNormalizer::linear(&[]);
    let (frames, _) = feed(&mut n, DOC_TICKER_LINEAR);
    let data = data_frames(&frames);
    assert_eq!(data.len(), 1);
    assert_eq!(
        data[0].body,
        Body::Quote(Quote {
            bid_px: px("17215.50"),
            bid_qty: px("84.489"),
            ask_px: px("17216.00"),
            ask_qty: px("83.020"),
        })
    );
    assert_eq!(data[0].ts_exchange, 1_673_272_861_686_000_000);
    assert_eq!(n.stats().get("tickers"), 1);
    // A delta carries only what changed: the rest is kept.
    let delta = r#"{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT","bid1Size":"80.000","lastPrice":"17216.00"},"cs":24987956060,"ts":1673272861786}"#;
    let (frames, _) = feed(&mut n, delta);
    assert_eq!(
        data_frames(&frames)[0].body,
        Body::Quote(Quote {
            bid_px: px("17215.50"),
            bid_qty: px("80.000"),
            ask_px: px("17216.00"),
            ask_qty: px("83.020"),
        })
    );
    // A delta without bid/ask fields: no quote.
    let other = r#"{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT","markPrice":"17217.00"},"cs":24987956061,"ts":1673272861886}"#;
    let (frames, _) = feed(&mut n, other);
    assert!(data_frames(&frames).is_empty());
    assert_eq!(n.stats().get("tickers"), 3);

    let mut s = BybitNormalizer::spot(&[]);
    let (frames, _) = feed(&mut s, DOC_TICKER_SPOT);
    assert!(frames.is_empty());
    assert_eq!(s.stats().get("ignored:tickers"), 1);
}

#[test]
fn doc_control_messages_and_ignored_topics() {
    for market in [Market::Spot, Market::Linear] {
        let mut n = BybitNormalizer::new(market, &[]);
        for raw in [DOC_PONG_SPOT, DOC_PONG_LINEAR, DOC_PONG_PRIVATE] {
            let (frames, actions) = feed(&mut n, raw);
            assert!(frames.is_empty() && actions.is_empty());
        }
        feed(&mut n, DOC_SUBSCRIBED);
        feed(&mut n, DOC_KLINE);
        let stats = n.stats();
        assert_eq!(stats.get("pong"), 3);
        assert_eq!(stats.get("reply:subscribe"), 1);
        assert_eq!(stats.get("ignored:kline"), 1);
        assert_eq!(stats.errors, 0);
        // A refused subscription is an error naming the venue's reason.
        let refused = r#"{"success":false,"ret_msg":"error:handler not found,topic:orderbook.7.BTCUSDT","conn_id":"cejreassvfrsfvb9v1a0-2m","req_id":"sub-1","op":"subscribe"}"#;
        let mut out = Output::new();
        match n.on_message(refused.as_bytes(), 0, &mut out) {
            Err(NormalizeError::Venue(msg)) => {
                assert!(
                    msg.contains("handler not found") && msg.contains("sub-1"),
                    "{msg}"
                )
            }
            r => panic!("{r:?}"),
        }
        assert_eq!(n.stats().get("reply:error"), 1);
        assert_eq!(n.stats().errors, 1);
    }
}

#[test]
fn orderbook_1_gives_quotes_and_skips_unchanged_resends() {
    for market in [Market::Spot, Market::Linear] {
        let mut n = BybitNormalizer::new(market, &[]);
        let snap = |u: u64, bid: &str, ask: &str| {
            format!(
                r#"{{"topic":"orderbook.1.BTCUSDT","ts":1714000000000,"type":"snapshot","data":{{"s":"BTCUSDT","b":[["{bid}","1.5"]],"a":[["{ask}","2.25"]],"u":{u},"seq":900}},"cts":1714000000000}}"#
            )
        };
        let (frames, _) = feed(&mut n, &snap(100, "64000.10", "64000.20"));
        let data = data_frames(&frames);
        assert_eq!(data.len(), 1);
        assert_eq!(
            data[0].body,
            Body::Quote(Quote {
                bid_px: px("64000.10"),
                bid_qty: px("1.5"),
                ask_px: px("64000.20"),
                ask_qty: px("2.25"),
            })
        );
        // The documented re-send after 3 s unchanged (same u): no new quote.
        let (frames, _) = feed(&mut n, &snap(100, "64000.10", "64000.20"));
        assert!(data_frames(&frames).is_empty());
        let (frames, _) = feed(&mut n, &snap(101, "64000.00", "64000.20"));
        assert_eq!(data_frames(&frames).len(), 1);
        // No book frames from the top-of-book topic.
        assert!(n.book("BTCUSDT").is_none());
        assert_eq!(n.stats().gaps, 0);
    }
}

#[test]
fn string_timestamps_as_the_orderbook_reminder_shows_them() {
    // The orderbook page's "reminder" writes ts as a string.
    let raw = r#"{"topic":"orderbook.50.BTCUSDT","ts":"1772694601512","type":"snapshot","data":{"s":"BTCUSDT","b":[["1.0","1"]],"a":[["2.0","1"]],"u":5,"seq":1}}"#;
    let mut n = BybitNormalizer::spot(&[]);
    let (frames, _) = feed(&mut n, raw);
    assert_eq!(
        data_frames(&frames)[0].ts_exchange,
        1_772_694_601_512_000_000
    );
}

// ---------------------------------------------------------------------------------------
// Generated streams against an independent reconstruction.
// ---------------------------------------------------------------------------------------

/// A deterministic xorshift generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One generated venue message.
#[derive(Debug, Clone)]
enum Gen {
    Book(String),
    Trade(String),
}

/// A venue: a book (ticks of 0.10, sizes in 0.001) around a fixed mid, deltas that never
/// cross it, and trades. `u` follows by one per delta, as documented.
struct Venue_ {
    market: Market,
    symbol: &'static str,
    depth: u32,
    rng: Rng,
    bids: BTreeMap<i64, i64>,
    asks: BTreeMap<i64, i64>,
    u: u64,
    ts: u64,
    trade_id: u64,
}

const MID: i64 = 300_000; // 30000.0 in 0.10 ticks

fn price_text(ticks: i64) -> String {
    format!("{}.{}0", ticks / 10, ticks % 10)
}

fn size_text(milli: i64) -> String {
    format!("{}.{:03}", milli / 1000, milli % 1000)
}

impl Venue_ {
    fn new(market: Market, symbol: &'static str, seed: u64) -> Venue_ {
        let mut v = Venue_ {
            market,
            symbol,
            depth: 50,
            rng: Rng(seed),
            bids: BTreeMap::new(),
            asks: BTreeMap::new(),
            u: 1000,
            ts: 1_714_000_000_000,
            trade_id: 2_290_000_000_061_000_000,
        };
        for k in 1..=40 {
            let q = 1 + v.rng.below(5000) as i64;
            v.bids.insert(MID - k, q);
            let q = 1 + v.rng.below(5000) as i64;
            v.asks.insert(MID + k, q);
        }
        v
    }

    fn topic(&self) -> String {
        format!("orderbook.{}.{}", self.depth, self.symbol)
    }

    fn levels(m: &BTreeMap<i64, i64>, rev: bool) -> String {
        let mut v: Vec<_> = m.iter().collect();
        if rev {
            v.reverse();
        }
        let parts: Vec<String> = v
            .iter()
            .map(|(p, q)| format!("[\"{}\",\"{}\"]", price_text(**p), size_text(**q)))
            .collect();
        format!("[{}]", parts.join(","))
    }

    fn snapshot(&mut self) -> String {
        self.ts += 3;
        format!(
            r#"{{"topic":"{}","type":"snapshot","ts":{},"data":{{"s":"{}","b":{},"a":{},"u":{},"seq":{}}},"cts":{}}}"#,
            self.topic(),
            self.ts,
            self.symbol,
            Self::levels(&self.bids, true),
            Self::levels(&self.asks, false),
            self.u,
            self.u * 7,
            self.ts - 1
        )
    }

    fn delta(&mut self) -> String {
        self.u += 1;
        self.ts += 20;
        let mut b = Vec::new();
        let mut a = Vec::new();
        for _ in 0..1 + self.rng.below(5) {
            let bid = self.rng.below(2) == 0;
            let off = 1 + self.rng.below(60) as i64;
            let (side, price, out) = if bid {
                (&mut self.bids, MID - off, &mut b)
            } else {
                (&mut self.asks, MID + off, &mut a)
            };
            let q = if self.rng.below(4) == 0 {
                0
            } else {
                1 + self.rng.below(9000) as i64
            };
            if q == 0 {
                side.remove(&price);
            } else {
                side.insert(price, q);
            }
            // Sizes of deleted levels are "0", as in the documented delta.
            let qt = if q == 0 {
                "0".to_string()
            } else {
                size_text(q)
            };
            out.push(format!("[\"{}\",\"{}\"]", price_text(price), qt));
        }
        format!(
            r#"{{"topic":"{}","type":"delta","ts":{},"data":{{"s":"{}","b":[{}],"a":[{}],"u":{},"seq":{}}},"cts":{}}}"#,
            self.topic(),
            self.ts,
            self.symbol,
            b.join(","),
            a.join(","),
            self.u,
            self.u * 7,
            self.ts - 1
        )
    }

    fn trade(&mut self) -> String {
        self.trade_id += 1;
        self.ts += 1;
        let side = if self.rng.below(2) == 0 {
            "Buy"
        } else {
            "Sell"
        };
        let price = MID + self.rng.below(5) as i64 - 2;
        let id = match self.market {
            Market::Spot => self.trade_id.to_string(),
            Market::Linear => format!(
                "{:08x}-d8dd-5b31-9112-a178eb6023af",
                self.trade_id % 0xffff_ffff
            ),
        };
        format!(
            r#"{{"topic":"publicTrade.{}","type":"snapshot","ts":{},"data":[{{"T":{},"s":"{}","S":"{side}","v":"{}","p":"{}","L":"PlusTick","i":"{id}","BT":false,"seq":{}}}]}}"#,
            self.symbol,
            self.ts,
            self.ts - 1,
            self.symbol,
            size_text(1 + self.rng.below(2000) as i64),
            price_text(price),
            self.u * 7
        )
    }

    fn step(&mut self) -> Gen {
        if self.rng.below(4) == 0 {
            Gen::Trade(self.trade())
        } else {
            Gen::Book(self.delta())
        }
    }
}

/// The reconstruction: Bybit's documented procedure over serde_json values, prices as text.
#[derive(Default)]
struct Truth {
    bids: HashMap<String, String>,
    asks: HashMap<String, String>,
}

impl Truth {
    fn apply(&mut self, raw: &str) {
        let v: Value = serde_json::from_str(raw).unwrap();
        if v["type"] == "snapshot" {
            self.bids.clear();
            self.asks.clear();
        }
        for (side, key) in [(&mut self.bids, "b"), (&mut self.asks, "a")] {
            for l in v["data"][key].as_array().unwrap() {
                let p = l[0].as_str().unwrap().to_string();
                let q = l[1].as_str().unwrap();
                if q.chars().all(|c| c == '0' || c == '.') {
                    side.remove(&p);
                } else {
                    side.insert(p, q.to_string());
                }
            }
        }
    }

    fn assert_eq_book(&self, book: &L2Book, at: &str) {
        let render = |it: &mut dyn Iterator<Item = tickwire_sdk::wire::Level>| {
            it.map(|l| (decimal_string(l.price, 2), decimal_string(l.qty, 3)))
                .collect::<BTreeMap<_, _>>()
        };
        let ours_b = render(&mut book.bids());
        let ours_a = render(&mut book.asks());
        let tb: BTreeMap<_, _> = self.bids.clone().into_iter().collect();
        let ta: BTreeMap<_, _> = self.asks.clone().into_iter().collect();
        assert_eq!(ours_b.len(), tb.len(), "bid depth differs {at}");
        assert_eq!(ours_a.len(), ta.len(), "ask depth differs {at}");
        assert!(ours_b == tb, "bids differ {at}");
        assert!(ours_a == ta, "asks differ {at}");
    }
}

/// Drives a normalizer like the driver would: frames into an L2Book, resubscriptions answered
/// by the generated venue with a fresh snapshot of its current book.
struct Harness {
    n: BybitNormalizer,
    out: Output,
    frames: Vec<Frame>,
    book: L2Book,
    resubscribe: Option<String>,
}

impl Harness {
    fn new(market: Market) -> Harness {
        Harness {
            n: BybitNormalizer::new(market, &[]),
            out: Output::new(),
            frames: Vec::new(),
            book: L2Book::new(),
            resubscribe: None,
        }
    }

    fn feed(&mut self, raw: &str) {
        self.out.clear();
        self.n
            .on_message(raw.as_bytes(), 1, &mut self.out)
            .unwrap_or_else(|e| panic!("{e}: {raw}"));
        for f in &self.out.frames {
            self.book.apply_owned(f);
        }
        self.frames.append(&mut self.out.frames);
        for a in self.out.actions.drain(..) {
            let Action::Send(text) = a else {
                panic!("unexpected {a:?}")
            };
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["op"] == "subscribe" {
                self.resubscribe = Some(v["args"][0].as_str().unwrap().to_string());
            }
        }
    }

    fn statuses(&self) -> Vec<(u8, StatusCode, String)> {
        self.frames
            .iter()
            .filter_map(|f| match &f.body {
                Body::Status(s) => Some((f.flags, s.code, s.detail.clone())),
                _ => None,
            })
            .collect()
    }
}

/// Runs `steps` generated messages; `tamper(k, msg)` may drop (None) or alter a book message.
fn run(
    market: Market,
    seed: u64,
    steps: usize,
    mut tamper: impl FnMut(usize, String) -> Option<String>,
) -> (Harness, Truth, Vec<String>) {
    let mut venue = Venue_::new(market, "BTCUSDT", seed);
    let mut h = Harness::new(market);
    let mut truth = Truth::default();
    let mut trades = Vec::new();
    let snap = venue.snapshot();
    truth.apply(&snap);
    h.feed(&snap);
    let mut books = 0;
    for _ in 0..steps {
        if let Some(topic) = h.resubscribe.take() {
            // The venue acknowledges both requests, then sends a snapshot of its book now.
            assert_eq!(topic, venue.topic());
            h.feed(r#"{"success":true,"ret_msg":"","conn_id":"c","req_id":"resync-1-unsub","op":"unsubscribe"}"#);
            h.feed(r#"{"success":true,"ret_msg":"","conn_id":"c","req_id":"resync-1-sub","op":"subscribe"}"#);
            let snap = venue.snapshot();
            truth.apply(&snap);
            h.feed(&snap);
        }
        match venue.step() {
            Gen::Trade(t) => {
                trades.push(t.clone());
                h.feed(&t);
            }
            Gen::Book(d) => {
                truth.apply(&d);
                books += 1;
                let mut as_sent = false;
                if let Some(t) = tamper(books, d.clone()) {
                    as_sent = t == d;
                    h.feed(&t);
                }
                // (A dropped message shows only at the next delta: no check right after it.)
                if as_sent && h.n.book("BTCUSDT").is_some() && books % 50 == 0 {
                    assert!(h.book.is_valid());
                    truth.assert_eq_book(&h.book, &format!("after book message {books}"));
                }
            }
        }
    }
    (h, truth, trades)
}

#[test]
fn generated_stream_book_and_trades_match_the_reconstruction() {
    for market in [Market::Spot, Market::Linear] {
        let (h, truth, trades) = run(market, 0x9e37_79b9_7f4a_7c15, 4000, |_, d| Some(d));
        assert!(h.book.is_valid());
        truth.assert_eq_book(&h.book, "at the end");
        // The normalizer's own book agrees too.
        let ours = h.n.book("BTCUSDT").unwrap();
        assert_eq!(
            ours.bids().collect::<Vec<_>>(),
            h.book.bids().collect::<Vec<_>>()
        );
        // Every trade, exact, in order.
        let ours: Vec<_> = h
            .frames
            .iter()
            .filter_map(|f| match &f.body {
                Body::Trade(t) => Some((f.ts_exchange, t.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(ours.len(), trades.len());
        assert!(trades.len() > 800);
        for ((ts, t), raw) in ours.iter().zip(&trades) {
            let v: Value = serde_json::from_str(raw).unwrap();
            let d = &v["data"][0];
            assert_eq!(decimal_string(t.price, 2), d["p"].as_str().unwrap());
            assert_eq!(decimal_string(t.qty, 3), d["v"].as_str().unwrap());
            assert_eq!(*ts, d["T"].as_u64().unwrap() * 1_000_000);
            assert_eq!(t.side == Side::Buy, d["S"] == "Buy");
            let id = d["i"].as_str().unwrap();
            match market {
                Market::Spot => assert_eq!(t.trade_id, TradeId::Num(id.parse().unwrap())),
                Market::Linear => assert_eq!(t.trade_id, TradeId::Text(id.to_string())),
            }
        }
        let stats = h.n.stats();
        assert_eq!(stats.errors, 0);
        assert_eq!(stats.gaps, 0);
        assert_eq!(stats.get("publicTrade") as usize, trades.len());
        assert_eq!(stats.get("orderbook") as usize, 4001 - trades.len());
        assert_eq!(stats.get("book:synced"), 1);
        assert_eq!(stats.messages, 4001);
        assert!(h.statuses().is_empty());
        // Every delta frame batch ends with LAST; nothing is flagged bad.
        assert!(h.frames.iter().all(|f| f.flags & flags::BAD_BOOK == 0));
    }
}

#[test]
fn removed_delta_is_a_gap_then_resync_to_the_truth() {
    for market in [Market::Spot, Market::Linear] {
        let mut removed_u = None;
        let (h, truth, _) = run(market, 42, 3000, |k, d| {
            if k == 700 {
                let v: Value = serde_json::from_str(&d).unwrap();
                removed_u = Some(v["data"]["u"].as_u64().unwrap());
                None // the venue sent it; we never received it
            } else {
                Some(d)
            }
        });
        let removed_u = removed_u.unwrap();
        let st = h.statuses();
        assert_eq!(st.len(), 2, "{st:?}");
        assert_eq!(st[0].1, StatusCode::Gap);
        assert!(st[0].0 & flags::BAD_BOOK != 0);
        assert!(
            st[0].2.contains(&format!("{removed_u}..={removed_u}")),
            "{}",
            st[0].2
        );
        assert_eq!(st[1].1, StatusCode::Resynced);
        assert!(h.book.is_valid());
        truth.assert_eq_book(&h.book, "after the resync, at the end");
        let stats = h.n.stats();
        assert_eq!(stats.gaps, 1);
        assert_eq!(stats.get("book:synced"), 2);
        assert_eq!(stats.get("reply:unsubscribe"), 1);
        assert_eq!(stats.get("reply:subscribe"), 1);
        assert_eq!(stats.errors, 0);
    }
}

#[test]
fn altered_price_that_crosses_is_a_gap_then_resync() {
    // Bybit sends no checksum: a changed size that keeps the book uncrossed cannot be seen.
    // A changed price that crosses the book can.
    let mut altered = false;
    let (h, truth, _) = run(Market::Linear, 7, 2000, |k, d| {
        if k == 500 {
            altered = true;
            let v: Value = serde_json::from_str(&d).unwrap();
            let mut v2 = v.clone();
            v2["data"]["b"] = serde_json::json!([["30100.00", "1.000"]]);
            v2["data"]["a"] = serde_json::json!([]);
            Some(serde_json::to_string(&v2).unwrap())
        } else {
            Some(d)
        }
    });
    assert!(altered);
    let st = h.statuses();
    assert_eq!(st.len(), 2, "{st:?}");
    assert_eq!(st[0].1, StatusCode::Gap);
    assert!(st[0].2.contains("crossed"), "{}", st[0].2);
    assert_eq!(st[1].1, StatusCode::Resynced);
    // The applied delta was emitted flagged BAD_BOOK before the Gap.
    let bad: Vec<_> = h
        .frames
        .iter()
        .filter(|f| matches!(f.body, Body::BookDelta(_)) && f.flags & flags::BAD_BOOK != 0)
        .collect();
    assert_eq!(bad.len(), 1);
    assert!(h.book.is_valid());
    truth.assert_eq_book(&h.book, "after the resync");
}

#[test]
fn restart_with_u_1_replaces_the_book_without_a_gap() {
    let mut venue = Venue_::new(Market::Linear, "BTCUSDT", 3);
    let mut h = Harness::new(Market::Linear);
    let mut truth = Truth::default();
    let s = venue.snapshot();
    truth.apply(&s);
    h.feed(&s);
    for _ in 0..50 {
        let d = venue.delta();
        truth.apply(&d);
        h.feed(&d);
    }
    // Service restart: u starts again at 1 with a snapshot.
    venue.u = 1;
    let s = venue.snapshot();
    truth.apply(&s);
    h.feed(&s);
    for _ in 0..50 {
        let d = venue.delta();
        truth.apply(&d);
        h.feed(&d);
    }
    assert!(h.statuses().is_empty(), "{:?}", h.statuses());
    assert_eq!(h.n.stats().get("orderbook:restart"), 1);
    truth.assert_eq_book(&h.book, "after the restart");
}

#[test]
fn delta_before_any_snapshot_is_a_gap() {
    let mut venue = Venue_::new(Market::Spot, "BTCUSDT", 5);
    let mut h = Harness::new(Market::Spot);
    let d = venue.delta();
    h.feed(&d);
    let st = h.statuses();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].1, StatusCode::Gap);
    assert!(st[0].2.contains("before any snapshot"));
    assert!(h.resubscribe.is_some());
    // Deltas are dropped until the snapshot.
    let d = venue.delta();
    h.feed(&d);
    assert_eq!(h.n.stats().get("orderbook:dropped"), 1);
    let s = venue.snapshot();
    h.feed(&s);
    assert_eq!(h.statuses().last().unwrap().1, StatusCode::Resynced);
}

#[test]
fn disconnect_flags_the_book_and_the_next_snapshot_resyncs() {
    let mut venue = Venue_::new(Market::Linear, "BTCUSDT", 11);
    let mut h = Harness::new(Market::Linear);
    let mut truth = Truth::default();
    let top = r#"{"topic":"orderbook.1.BTCUSDT","ts":1714000000000,"type":"snapshot","data":{"s":"BTCUSDT","b":[["29999.90","1.000"]],"a":[["30000.10","1.000"]],"u":77,"seq":1}}"#;
    h.feed(top);
    let s = venue.snapshot();
    truth.apply(&s);
    h.feed(&s);
    for _ in 0..20 {
        let d = venue.delta();
        truth.apply(&d);
        h.feed(&d);
    }
    h.out.clear();
    h.n.on_disconnect(5, "connection reset", &mut h.out);
    h.n.on_connect(6, &mut h.out);
    for f in &h.out.frames {
        h.book.apply_owned(f);
    }
    h.frames.append(&mut h.out.frames);
    assert!(!h.book.is_valid());
    let st = h.statuses();
    assert_eq!(st[0].1, StatusCode::Disconnected);
    assert!(st[0].0 & flags::BAD_BOOK != 0);
    assert_eq!(st[1].1, StatusCode::Connected);
    // Missed deltas while away; the new subscription's snapshot rebuilds the book.
    for _ in 0..5 {
        truth.apply(&venue.delta());
    }
    let s = venue.snapshot();
    truth.apply(&s);
    h.feed(&s);
    assert_eq!(h.statuses().last().unwrap().1, StatusCode::Resynced);
    // The top-of-book topic comes back with a quote and no status of its own.
    let before = h.statuses().len();
    h.feed(top);
    assert_eq!(h.statuses().len(), before);
    assert!(matches!(h.frames.last().unwrap().body, Body::Quote(_)));
    assert!(h.book.is_valid());
    truth.assert_eq_book(&h.book, "after reconnect");
    assert_eq!(h.n.stats().gaps, 0);
}

#[test]
fn malformed_book_update_breaks_the_book_and_is_an_error() {
    let mut venue = Venue_::new(Market::Linear, "BTCUSDT", 13);
    let mut h = Harness::new(Market::Linear);
    h.feed(&venue.snapshot());
    let d = venue.delta();
    let bad = d.replacen("\"u\":", "\"u\":\"x\",\"w\":", 1);
    h.out.clear();
    let err = h.n.on_message(bad.as_bytes(), 0, &mut h.out).unwrap_err();
    assert!(err.to_string().contains("`u`"), "{err}");
    let gap = h.out.frames.iter().any(|f| {
        matches!(&f.body, Body::Status(s) if s.code == StatusCode::Gap && s.detail.contains("unreadable"))
    });
    assert!(gap, "{:?}", h.out.frames);
    assert_eq!(h.out.actions.len(), 2);
    assert_eq!(h.n.stats().errors, 1);
    assert!(h.n.book("BTCUSDT").is_none());
    let mut out = Output::new();
    assert!(matches!(
        h.n.on_message(b"{\"topic\":\"orderbook.50.", 0, &mut out),
        Err(NormalizeError::Json(_))
    ));
    assert!(h.n.on_snapshot("BTCUSDT", b"{}", 0, &mut out).is_err());
}

// ---------------------------------------------------------------------------------------
// No panic on anything.
// ---------------------------------------------------------------------------------------

fn corpus() -> Vec<String> {
    let mut v: Vec<String> = [
        DOC_BOOK_SNAPSHOT,
        DOC_BOOK_DELTA,
        DOC_TRADE,
        DOC_TICKER_LINEAR,
        DOC_TICKER_SPOT,
        DOC_PONG_SPOT,
        DOC_PONG_LINEAR,
        DOC_PONG_PRIVATE,
        DOC_SUBSCRIBED,
        DOC_KLINE,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut venue = Venue_::new(Market::Linear, "BTCUSDT", 99);
    v.push(venue.snapshot());
    for _ in 0..10 {
        v.push(venue.delta());
        v.push(venue.trade());
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn no_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        for market in [Market::Spot, Market::Linear] {
            let mut n = BybitNormalizer::new(market, &[]);
            let mut out = Output::new();
            let _ = n.on_message(&bytes, 0, &mut out);
        }
    }

    #[test]
    fn no_panic_on_mutated_messages(
        picks in proptest::collection::vec((0usize..64, 0usize..4000, any::<u8>(), 0u8..4), 1..40)
    ) {
        let corpus = corpus();
        for market in [Market::Spot, Market::Linear] {
            let mut n = BybitNormalizer::new(market, &[]);
            let mut out = Output::new();
            for &(which, pos, byte, how) in &picks {
                let mut m = corpus[which % corpus.len()].clone().into_bytes();
                if !m.is_empty() {
                    let p = pos % m.len();
                    match how {
                        0 => m[p] = byte,
                        1 => { m.remove(p); }
                        2 => m.insert(p, byte),
                        _ => m.truncate(p),
                    }
                }
                out.clear();
                let _ = n.on_message(&m, 0, &mut out);
                // Books built from whatever got through stay consistent with their frames.
                let _ = n.stats();
            }
        }
    }
}

/// Every frame, action and error of `messages`, then the stats; and the fast path's hits.
fn run_paths(market: Market, messages: &[String], fast: bool) -> (Vec<String>, u64) {
    let mut n = BybitNormalizer::new(market, &[]);
    n.set_fast_path(fast);
    let mut out = Output::new();
    let mut seen = Vec::new();
    for (k, m) in messages.iter().enumerate() {
        out.clear();
        let res = n.on_message(m.as_bytes(), 1_000 + k as u64, &mut out);
        seen.push(format!("{res:?} {:?} {:?}", out.frames, out.actions));
    }
    seen.push(format!("{:?}", n.stats()));
    (seen, n.fast_hits())
}

/// Both paths give the same frames, actions, errors and stats; returns the fast path's hits.
fn same_on_both_paths(market: Market, name: &str, messages: &[String]) -> u64 {
    let (tape, zero) = run_paths(market, messages, false);
    let (fast, hits) = run_paths(market, messages, true);
    assert_eq!(zero, 0);
    assert_eq!(tape.len(), fast.len());
    for (k, (a, b)) in tape.iter().zip(&fast).enumerate() {
        assert_eq!(a, b, "{name}: message {k} differs between the paths");
    }
    hits
}

/// A generated stream (snapshot, deltas, trades; some deltas dropped or altered so that gaps,
/// crossings and resyncs happen) plus the documented messages, spot and linear.
fn stream(market: Market, seed: u64) -> Vec<String> {
    let mut venue = Venue_::new(market, "BTCUSDT", seed);
    let mut messages = vec![venue.snapshot()];
    for k in 0..1500 {
        match venue.step() {
            Gen::Trade(t) => messages.push(t),
            Gen::Book(d) if k % 397 == 0 => {
                // Dropped: the next delta does not follow, a resync is asked for.
                let _ = d;
                messages.push(venue.snapshot());
            }
            Gen::Book(d) => messages.push(d),
        }
    }
    messages
}

fn is_data(m: &str) -> bool {
    m.starts_with(r#"{"topic":"orderbook."#) || m.starts_with(r#"{"topic":"publicTrade."#)
}

#[test]
fn fast_path_gives_the_tape_path_frames_on_generated_and_documented_messages() {
    for market in [Market::Spot, Market::Linear] {
        let mut messages = stream(market, 0x2545_f491_4f6c_dd1d);
        // Compact documented layouts: spot trades (two per message), orderbook.1, string
        // times (these fall back), a second depth.
        messages.push(r#"{"topic":"publicTrade.BTCUSDT","ts":1714000000100,"type":"snapshot","data":[{"i":"2290000000061666327","T":1714000000099,"p":"64000.01","v":"0.000511","S":"Sell","s":"BTCUSDT","BT":false,"RPI":false,"seq":40000001},{"i":"2290000000061666328","T":1714000000099,"p":"64000.00","v":"1.2","S":"Buy","s":"BTCUSDT","BT":true,"RPI":false,"seq":40000001}]}"#.to_string());
        messages.push(r#"{"topic":"orderbook.1.BTCUSDT","ts":1714000000000,"type":"snapshot","data":{"s":"BTCUSDT","b":[["29999.0","1.5"]],"a":[["30001.0","2.25"]],"u":5,"seq":900},"cts":1714000000000}"#.to_string());
        messages.push(r#"{"topic":"orderbook.1.BTCUSDT","ts":1714000000100,"type":"delta","data":{"s":"BTCUSDT","b":[["29999.5","1.5"]],"a":[],"u":6,"seq":901},"cts":1714000000100}"#.to_string());
        messages.push(r#"{"topic":"orderbook.200.BTCUSDT","type":"delta","ts":1714000000200,"data":{"s":"BTCUSDT","b":[],"a":[],"u":7},"cts":1714000000200}"#.to_string());
        let data = messages.iter().filter(|m| is_data(m)).count() as u64;
        let misses = [
            r#"{"topic":"orderbook.50.BTCUSDT","ts":"1772694601512","type":"snapshot","data":{"s":"BTCUSDT","b":[["1.0","1"]],"a":[["2.0","1"]],"u":5,"seq":1}}"#,
            r#"{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1,"data":[{"T":1,"s":"BTCUSDT","S":"Buy","v":"0","p":"1","L":"PlusTick","i":"x","BT":false}]}"#,
            r#"{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1,"data":[{"T":1,"s":"BTCUSDT","S":"Buy","v":"1","p":"1","p":"2","i":"x"}]}"#,
            r#"{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1,"data":[{"T":1,"s":"BTCUSDT","S":"buy","v":"1","p":"1","i":"7"}]}"#,
            r#"{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1,"data":{"s":"BTCUSDT","b":[["1.0","1","x"]],"a":[],"u":9999999},"cts":1}"#,
            r#"{"topic":"orderbook.50.BTCUSDT","type":"partial","ts":1,"data":{"s":"BTCUSDT","b":[],"a":[],"u":1},"cts":1}"#,
            r#"{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1,"data":[]}"#,
        ];
        messages.extend(misses.iter().map(|m| m.to_string()));
        let hits = same_on_both_paths(market, &format!("{market:?}"), &messages);
        assert_eq!(
            hits, data,
            "{market:?}: every data message in layout takes the fast path"
        );
        assert!(data > 1000);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn fast_path_mutated_messages_give_the_same_result_on_both_paths(
        linear in any::<bool>(),
        pick in 0usize..40,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let market = if linear { Market::Linear } else { Market::Spot };
        let messages = stream(market, 7);
        // The snapshot, then a message to mutate (a delta or a trade).
        let mut raw = messages[1 + pick].clone().into_bytes();
        for (at, byte) in edits {
            let k = at.index(raw.len());
            raw[k] = byte;
        }
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let two = [messages[0].clone(), raw.clone()];
        let (tape, _) = run_paths(market, &two, false);
        let (fast, _) = run_paths(market, &two, true);
        prop_assert_eq!(tape, fast, "input: {:?}", raw);
    }
}
