//! The Binance normalizer and book sync on real captures, checked against an independent
//! reconstruction (serde_json over the raw text, price strings as keys).

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;
use tickwire_feed::binance::BinanceNormalizer;
use tickwire_feed::capture::{CaptureReader, Record, RecordKind};
use tickwire_feed::{Action, Normalizer, Output};
use tickwire_sdk::L2Book;
use tickwire_sdk::wire::{Body, Frame, StatusCode, TradeId, decimal_string, flags};

const CAPTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../replay-data/captures");

fn hftbacktest() -> Vec<Record> {
    CaptureReader::open(format!(
        "{CAPTURES}/binance_spot/depth100ms_bookTicker_trade_restSnapshot/btcusdt_20240808.gz"
    ))
    .unwrap()
    .read_all()
    .unwrap()
}

/// Book by price text as the venue sent it, built with Binance's procedure from raw JSON.
#[derive(Default)]
struct TruthBook {
    bids: HashMap<String, String>,
    asks: HashMap<String, String>,
    last_u: Option<u64>,
    buffered: Vec<Value>,
}

impl TruthBook {
    fn apply_levels(side: &mut HashMap<String, String>, levels: &Value) {
        for l in levels.as_array().unwrap() {
            let p = l[0].as_str().unwrap().to_string();
            let q = l[1].as_str().unwrap();
            if q.trim_end_matches('0').trim_end_matches('.') == "0"
                || q.chars().all(|c| c == '0' || c == '.')
            {
                side.remove(&p);
            } else {
                side.insert(p, q.to_string());
            }
        }
    }

    fn on_diff(&mut self, d: &Value) {
        match self.last_u {
            None => self.buffered.push(d.clone()),
            Some(last) => {
                let u = d["u"].as_u64().unwrap();
                if u > last {
                    Self::apply_levels(&mut self.bids, &d["b"]);
                    Self::apply_levels(&mut self.asks, &d["a"]);
                    self.last_u = Some(u);
                }
            }
        }
    }

    fn on_snapshot(&mut self, s: &Value) {
        self.bids.clear();
        self.asks.clear();
        Self::apply_levels(&mut self.bids, &s["bids"]);
        Self::apply_levels(&mut self.asks, &s["asks"]);
        self.last_u = Some(s["lastUpdateId"].as_u64().unwrap());
        for d in std::mem::take(&mut self.buffered) {
            self.on_diff(&d);
        }
    }

    fn snapshot_json(&self) -> Vec<u8> {
        let mut bids: Vec<_> = self.bids.iter().collect();
        let mut asks: Vec<_> = self.asks.iter().collect();
        let key = |p: &str| p.parse::<f64>().unwrap();
        bids.sort_by(|a, b| key(b.0).partial_cmp(&key(a.0)).unwrap());
        asks.sort_by(|a, b| key(a.0).partial_cmp(&key(b.0)).unwrap());
        serde_json::to_vec(&serde_json::json!({
            "lastUpdateId": self.last_u.unwrap(),
            "bids": bids.iter().map(|(p, q)| [p, q]).collect::<Vec<_>>(),
            "asks": asks.iter().map(|(p, q)| [p, q]).collect::<Vec<_>>(),
        }))
        .unwrap()
    }

    /// Compares with a book built from frames, rendering its prices with `decimals`.
    fn assert_eq_book(&self, book: &L2Book, decimals: u8, at: &str) {
        let render = |it: &mut dyn Iterator<Item = tickwire_sdk::wire::Level>| {
            it.map(|l| {
                (
                    decimal_string(l.price, decimals),
                    decimal_string(l.qty, decimals),
                )
            })
            .collect::<BTreeMap<_, _>>()
        };
        let ours_bids = render(&mut book.bids());
        let ours_asks = render(&mut book.asks());
        let truth_bids: BTreeMap<_, _> = self.bids.clone().into_iter().collect();
        let truth_asks: BTreeMap<_, _> = self.asks.clone().into_iter().collect();
        assert_eq!(ours_bids.len(), truth_bids.len(), "bid depth differs {at}");
        assert_eq!(ours_asks.len(), truth_asks.len(), "ask depth differs {at}");
        assert!(ours_bids == truth_bids, "bids differ {at}");
        assert!(ours_asks == truth_asks, "asks differ {at}");
    }
}

/// Drives a normalizer over records like a driver would, answering snapshot requests from
/// the truth when `serve_snapshots` is set.
struct Harness {
    n: BinanceNormalizer,
    out: Output,
    frames: Vec<Frame>,
    books: HashMap<u32, L2Book>,
    truth: HashMap<String, TruthBook>,
    serve_snapshots: bool,
}

impl Harness {
    fn new(serve_snapshots: bool) -> Harness {
        Harness {
            n: BinanceNormalizer::spot(&[]),
            out: Output::new(),
            frames: Vec::new(),
            books: HashMap::new(),
            truth: HashMap::new(),
            serve_snapshots,
        }
    }

    fn truth_feed(&mut self, payload: &[u8], http_symbol: Option<&str>) {
        let v: Value = serde_json::from_slice(payload).unwrap();
        let data = v.get("data").cloned().unwrap_or(v.clone());
        if data.get("lastUpdateId").is_some() {
            let symbol = http_symbol.map(str::to_string).unwrap_or_else(|| {
                assert_eq!(self.truth.len(), 1);
                self.truth.keys().next().unwrap().clone()
            });
            self.truth.entry(symbol).or_default().on_snapshot(&data);
        } else if data["e"] == "depthUpdate" {
            let s = data["s"].as_str().unwrap().to_string();
            self.truth.entry(s).or_default().on_diff(&data);
        }
    }

    fn feed(&mut self, payload: &[u8], ts: u64, http_symbol: Option<&str>) {
        let raw = payload.to_vec();
        self.out.clear();
        let r = match http_symbol {
            Some(sym) => self.n.on_snapshot(sym, &raw, ts, &mut self.out),
            None => self.n.on_message(&raw, ts, &mut self.out),
        };
        r.unwrap_or_else(|e| {
            panic!(
                "normalize failed: {e}: {}",
                String::from_utf8_lossy(payload)
            )
        });
        self.absorb();
    }

    fn absorb(&mut self) {
        let frames = std::mem::take(&mut self.out.frames);
        let actions = std::mem::take(&mut self.out.actions);
        for f in &frames {
            self.books.entry(f.instrument).or_default().apply_owned(f);
        }
        self.frames.extend(frames);
        for a in actions {
            if let Action::FetchSnapshot { symbol } = a
                && self.serve_snapshots
                && self.truth.get(&symbol).is_some_and(|t| t.last_u.is_some())
            {
                let body = self.truth[&symbol].snapshot_json();
                let raw = body.clone();
                self.out.clear();
                self.n.on_snapshot(&symbol, &raw, 0, &mut self.out).unwrap();
                self.absorb();
            }
        }
    }

    fn book_of(&self, symbol: &str) -> &L2Book {
        let id = tickwire_sdk::wire::instrument_id(tickwire_sdk::wire::Venue::Binance, symbol);
        &self.books[&id]
    }
}

#[test]
fn hftbacktest_capture_trades_exact_and_book_matches_reconstruction() {
    let records = hftbacktest();
    let mut h = Harness::new(false);
    let mut raw_trades = Vec::new();
    let mut depth_seen = 0;
    for r in &records {
        h.truth_feed(&r.payload, None);
        let v: Value = serde_json::from_slice(&r.payload).unwrap();
        if v["data"]["e"] == "trade" {
            raw_trades.push(v["data"].clone());
        }
        h.feed(&r.payload, r.ts_ns.unwrap(), None);
        if v["data"]["e"] == "depthUpdate" {
            depth_seen += 1;
            // Check the whole book at regular points once synced.
            let truth = &h.truth["BTCUSDT"];
            if truth.last_u.is_some() && depth_seen % 100 == 0 {
                truth.assert_eq_book(
                    h.book_of("BTCUSDT"),
                    8,
                    &format!("after depth event {depth_seen}"),
                );
            }
        }
    }
    // Every trade, exact, in order.
    let trades: Vec<_> = h
        .frames
        .iter()
        .filter_map(|f| match &f.body {
            Body::Trade(t) => Some((f, t)),
            _ => None,
        })
        .collect();
    assert_eq!(trades.len(), 9_757);
    assert_eq!(raw_trades.len(), 9_757);
    for ((f, t), raw) in trades.iter().zip(&raw_trades) {
        assert_eq!(decimal_string(t.price, 8), raw["p"].as_str().unwrap());
        assert_eq!(decimal_string(t.qty, 8), raw["q"].as_str().unwrap());
        assert_eq!(t.trade_id, TradeId::Num(raw["t"].as_u64().unwrap()));
        assert_eq!(f.ts_exchange, raw["T"].as_u64().unwrap() * 1_000_000);
        let buyer_maker = raw["m"].as_bool().unwrap();
        assert_eq!(t.side == tickwire_sdk::wire::Side::Sell, buyer_maker);
    }
    // The book ends equal to the reconstruction, and it synced exactly once.
    let book = h.book_of("BTCUSDT");
    assert!(book.is_valid());
    h.truth["BTCUSDT"].assert_eq_book(book, 8, "at the end");
    let stats = h.n.stats();
    assert_eq!(stats.errors, 0);
    assert_eq!(stats.gaps, 0);
    assert_eq!(stats.get("trade"), 9_757);
    assert_eq!(stats.get("bookTicker"), 28_040);
    assert_eq!(stats.get("depthUpdate"), 3_451);
    assert_eq!(stats.get("snapshot"), 1);
    assert_eq!(stats.get("book:synced"), 1);
    assert_eq!(stats.messages, 41_249);
    // No status frames on a clean capture; one Definition before the data.
    assert!(!h.frames.iter().any(|f| matches!(f.body, Body::Status(_))));
    assert!(matches!(h.frames[0].body, Body::Definition(_)));
    let quotes = h
        .frames
        .iter()
        .filter(|f| matches!(f.body, Body::Quote(_)))
        .count();
    assert_eq!(quotes, 28_040);
}

#[test]
fn cryptofeed_capture_four_symbols_merged_with_rest_snapshots() {
    let ws = CaptureReader::open(format!(
        "{CAPTURES}/binance_spot/depth100ms_bookTicker_kline1m_aggTrade/BINANCE.ws.1.0"
    ))
    .unwrap()
    .read_all()
    .unwrap();
    let http = CaptureReader::open(format!(
        "{CAPTURES}/binance_spot/rest_depth_snapshot/BINANCE.http.0.0"
    ))
    .unwrap()
    .read_all()
    .unwrap();
    let mut records: Vec<Record> = ws
        .into_iter()
        .chain(http)
        .filter(|r| !matches!(r.kind, RecordKind::Connect { .. }))
        .collect();
    records.sort_by_key(|r| r.ts_ns);
    let mut h = Harness::new(false);
    for r in &records {
        let sym = r.url_symbol().map(str::to_string);
        h.truth_feed(&r.payload, sym.as_deref());
        h.feed(&r.payload, r.ts_ns.unwrap(), sym.as_deref());
    }
    let stats = h.n.stats();
    assert_eq!(stats.errors, 0, "{stats:?}");
    assert_eq!(stats.gaps, 0);
    assert_eq!(stats.get("depthUpdate"), 177);
    assert_eq!(stats.get("bookTicker"), 84);
    assert_eq!(stats.get("aggTrade"), 2);
    assert_eq!(stats.get("ignored:kline"), 2);
    assert_eq!(stats.get("snapshot"), 4);
    assert_eq!(stats.get("book:synced"), 4);
    for sym in ["NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"] {
        let book = h.book_of(sym);
        assert!(book.is_valid(), "{sym}");
        h.truth[sym].assert_eq_book(book, 8, sym);
    }
}

#[test]
fn removed_depth_frame_is_a_gap_then_resync_to_the_truth() {
    let records = hftbacktest();
    let mut h = Harness::new(true);
    let mut depth_seen = 0;
    let mut removed = None;
    for r in &records {
        h.truth_feed(&r.payload, None);
        let v: Value = serde_json::from_slice(&r.payload).unwrap();
        if v["data"]["e"] == "depthUpdate" {
            depth_seen += 1;
            if depth_seen == 1_000 {
                removed = Some(v["data"]["U"].as_u64().unwrap());
                continue; // the venue sent it; we never received it
            }
        }
        h.feed(&r.payload, r.ts_ns.unwrap(), None);
    }
    let removed = removed.unwrap();
    let statuses: Vec<_> = h
        .frames
        .iter()
        .filter_map(|f| match &f.body {
            Body::Status(s) => Some((f.flags, s.code, s.detail.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(statuses.len(), 2, "{statuses:?}");
    assert_eq!(statuses[0].1, StatusCode::Gap);
    assert!(statuses[0].0 & flags::BAD_BOOK != 0);
    assert!(
        statuses[0].2.contains(&removed.to_string()),
        "{}",
        statuses[0].2
    );
    assert_eq!(statuses[1].1, StatusCode::Resynced);
    let book = h.book_of("BTCUSDT");
    assert!(book.is_valid());
    h.truth["BTCUSDT"].assert_eq_book(book, 8, "after the resync, at the end");
    assert_eq!(h.n.stats().gaps, 1);
    assert_eq!(h.n.stats().get("book:synced"), 2);
}

#[test]
fn malformed_messages_are_counted_and_skipped() {
    let records = hftbacktest();
    let mut h = Harness::new(false);
    let mut bad = 0;
    for (k, r) in records.iter().enumerate() {
        if k % 1000 == 500 {
            let junk = b"{\"stream\":\"btcusdt@trade\",\"data\":{\"e\":\"trade\"".to_vec();
            h.out.clear();
            assert!(h.n.on_message(&junk, 0, &mut h.out).is_err());
            let wrong = br#"{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":1,"p":"abc","q":"1","T":1,"m":true}}"#.to_vec();
            assert!(h.n.on_message(&wrong, 0, &mut h.out).is_err());
            assert!(
                h.out
                    .frames
                    .iter()
                    .all(|f| matches!(f.body, Body::Definition(_)))
            );
            bad += 2;
        }
        h.truth_feed(&r.payload, None);
        h.feed(&r.payload, r.ts_ns.unwrap(), None);
    }
    let stats = h.n.stats();
    assert_eq!(stats.errors, bad);
    assert_eq!(stats.get("trade"), 9_757 + bad / 2);
    let trades = h
        .frames
        .iter()
        .filter(|f| matches!(f.body, Body::Trade(_)))
        .count();
    assert_eq!(trades, 9_757);
    h.truth["BTCUSDT"].assert_eq_book(h.book_of("BTCUSDT"), 8, "at the end");
}

/// Runs `records` through a normalizer with the exact-layout fast path on or off; returns
/// every frame, action and error, and the fast path's hit count.
fn run_paths(records: &[Record], fast: bool, futures: bool) -> (Vec<String>, u64) {
    let mut n = if futures {
        BinanceNormalizer::usd_futures(&[])
    } else {
        BinanceNormalizer::spot(&[])
    };
    n.set_fast_path(fast);
    let mut out = Output::new();
    let mut seen = Vec::new();
    for r in records {
        out.clear();
        let ts = r.ts_ns.unwrap_or(0);
        let res = match (&r.kind, r.url_symbol()) {
            (RecordKind::Http { .. }, Some(sym)) => n.on_snapshot(sym, &r.payload, ts, &mut out),
            (RecordKind::Received | RecordKind::Http { .. }, _) => {
                n.on_message(&r.payload, ts, &mut out)
            }
            _ => continue,
        };
        seen.push(format!("{res:?} {:?} {:?}", out.frames, out.actions));
    }
    seen.push(format!("{:?}", n.stats()));
    (seen, n.fast_hits())
}

#[test]
fn fast_path_gives_the_tape_path_frames_on_every_capture_message() {
    let mut cryptofeed: Vec<Record> = CaptureReader::open(format!(
        "{CAPTURES}/binance_spot/depth100ms_bookTicker_kline1m_aggTrade/BINANCE.ws.1.0"
    ))
    .unwrap()
    .read_all()
    .unwrap();
    cryptofeed.extend(
        CaptureReader::open(format!(
            "{CAPTURES}/binance_spot/rest_depth_snapshot/BINANCE.http.0.0"
        ))
        .unwrap()
        .read_all()
        .unwrap(),
    );
    cryptofeed.sort_by_key(|r| r.ts_ns);
    for (name, records) in [("hftbacktest", hftbacktest()), ("cryptofeed", cryptofeed)] {
        let (tape, zero) = run_paths(&records, false, false);
        let (fast, hits) = run_paths(&records, true, false);
        assert_eq!(zero, 0);
        assert_eq!(tape.len(), fast.len());
        for (k, (a, b)) in tape.iter().zip(&fast).enumerate() {
            assert_eq!(a, b, "{name}: message {k} differs between the paths");
        }
        let data = records
            .iter()
            .filter(|r| {
                let p = String::from_utf8_lossy(&r.payload);
                ["\"trade\"", "\"aggTrade\"", "\"depthUpdate\"", "bookTicker"]
                    .iter()
                    .any(|k| p.contains(k))
            })
            .count() as u64;
        assert_eq!(hits, data, "{name}: every data message takes the fast path");
    }
}

#[test]
fn fast_path_reads_the_futures_layouts_like_the_tape() {
    let lines = [
        r#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161255343,"T":1723161255341,"s":"BTCUSDT","U":100,"u":105,"pu":99,"b":[["61837.60","1.500"]],"a":[["61837.70","0.002"],["61838.00","0"]]}}"#,
        r#"{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1723161255343,"s":"BTCUSDT","a":5933014,"p":"61837.70","q":"0.010","f":100,"l":105,"T":1723161255342,"m":true}}"#,
        r#"{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":400900217,"E":1568014460893,"T":1568014460891,"s":"BTCUSDT","b":"61837.60","B":"1.500","a":"61837.70","A":"0.002"}}"#,
        r#"{"e":"aggTrade","E":1723161255343,"s":"BTCUSDT","a":5933015,"p":"61837.70","q":"0.010","f":106,"l":106,"T":1723161255342,"m":false}"#,
    ];
    let records: Vec<Record> = lines
        .iter()
        .enumerate()
        .map(|(k, l)| tickwire_feed::capture::parse_line(l.as_bytes(), k as u64).unwrap())
        .collect();
    let (tape, _) = run_paths(&records, false, true);
    let (fast, hits) = run_paths(&records, true, true);
    assert_eq!(tape, fast);
    assert_eq!(hits, 4);
}

mod fast_path_props {
    use super::*;
    use proptest::prelude::*;

    fn samples() -> &'static [Vec<u8>] {
        static SAMPLES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
        SAMPLES.get_or_init(pick_samples)
    }

    fn pick_samples() -> Vec<Vec<u8>> {
        let records = hftbacktest();
        let mut picked = Vec::new();
        for key in ["\"trade\"", "bookTicker", "\"depthUpdate\""] {
            picked.extend(
                records
                    .iter()
                    .filter(|r| String::from_utf8_lossy(&r.payload).contains(key))
                    .take(20)
                    .map(|r| r.payload.to_vec()),
            );
        }
        picked
    }

    fn both(raw: &[u8]) -> (String, String) {
        let mut out = Output::new();
        let mut run = |fast: bool| {
            let mut n = BinanceNormalizer::spot(&[]);
            n.set_fast_path(fast);
            out.clear();
            let r = n.on_message(raw, 1, &mut out);
            // Only what a message produces on its own is compared: errors as error or not
            // (the fast path never reports; it falls back), frames and actions exactly.
            format!("{} {:?} {:?}", r.is_ok(), out.frames, out.actions)
        };
        (run(false), run(true))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn mutated_messages_give_the_same_result_on_both_paths(
            pick in 0usize..60,
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let samples = samples();
            let mut raw = samples[pick % samples.len()].clone();
            for (at, byte) in edits {
                let k = at.index(raw.len());
                raw[k] = byte;
            }
            let (tape, fast) = both(&raw);
            prop_assert_eq!(tape, fast, "input: {:?}", String::from_utf8_lossy(&raw));
        }
    }
}
