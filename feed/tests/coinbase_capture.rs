//! The Coinbase Exchange normalizer on a real capture (cryptofeed's COINBASE.ws.28.0: 10
//! products, level2 + ticker + matches), checked against an independent reconstruction
//! (serde_json over the raw text, prices kept as the venue's strings); documented example
//! messages; altered frames; and no panic on arbitrary input.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use serde_json::Value;
use tickwire_feed::capture::{CaptureReader, RecordKind};
use tickwire_feed::coinbase::CoinbaseNormalizer;
use tickwire_feed::{Action, NormalizeError, Normalizer, Output};
use tickwire_sdk::L2Book;
use tickwire_sdk::wire::{
    Body, Frame, Side, StatusCode, TradeId, Venue, decimal_string, flags, instrument_id,
};

const CAPTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../replay-data/captures/coinbase_exchange_legacy/level2_ticker_matches/COINBASE.ws.28.0"
);

/// The received frames of the capture, with their receive times.
fn capture() -> Vec<(Vec<u8>, u64)> {
    CaptureReader::open(CAPTURE)
        .unwrap()
        .read_all()
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == RecordKind::Received)
        .map(|r| (r.payload, r.ts_ns.unwrap()))
        .collect()
}

/// A decimal string without trailing fractional zeros (`"123.10"` -> `"123.1"`, `"5.0"` -> `"5"`).
fn canon(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

fn is_zero(s: &str) -> bool {
    s.chars().all(|c| c == '0' || c == '.')
}

/// One product's book by the venue's price text.
#[derive(Default, Clone)]
struct TruthBook {
    bids: HashMap<String, String>,
    asks: HashMap<String, String>,
    synced: bool,
}

impl TruthBook {
    fn set(&mut self, buy: bool, p: &str, q: &str) {
        let side = if buy { &mut self.bids } else { &mut self.asks };
        if is_zero(q) {
            side.remove(&canon(p));
        } else {
            side.insert(canon(p), canon(q));
        }
    }

    fn snapshot_json(&self, product: &str) -> Vec<u8> {
        let bids: Vec<[&String; 2]> = self.bids.iter().map(|(p, q)| [p, q]).collect();
        let asks: Vec<[&String; 2]> = self.asks.iter().map(|(p, q)| [p, q]).collect();
        serde_json::to_vec(&serde_json::json!({
            "type": "snapshot", "product_id": product, "bids": bids, "asks": asks,
        }))
        .unwrap()
    }

    fn assert_eq_book(&self, book: &L2Book, at: &str) {
        let render = |it: &mut dyn Iterator<Item = tickwire_sdk::wire::Level>| {
            it.map(|l| {
                (
                    canon(&decimal_string(l.price, 9)),
                    canon(&decimal_string(l.qty, 9)),
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

/// Drives the normalizer like a driver, keeps books rebuilt from its frames, and answers
/// a level2 resubscription with a snapshot of the truth (as the venue would).
struct Harness {
    n: CoinbaseNormalizer,
    out: Output,
    frames: Vec<Frame>,
    books: HashMap<u32, L2Book>,
    truth: HashMap<String, TruthBook>,
    sent: Vec<String>,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            n: CoinbaseNormalizer::new(&[], "level2"),
            out: Output::new(),
            frames: Vec::new(),
            books: HashMap::new(),
            truth: HashMap::new(),
            sent: Vec::new(),
        }
    }

    fn truth_feed(&mut self, payload: &[u8]) {
        let v: Value = serde_json::from_slice(payload).unwrap();
        match v["type"].as_str().unwrap() {
            "snapshot" => {
                let t = self
                    .truth
                    .entry(v["product_id"].as_str().unwrap().to_string())
                    .or_default();
                *t = TruthBook::default();
                for (key, buy) in [("bids", true), ("asks", false)] {
                    for l in v[key].as_array().unwrap() {
                        t.set(buy, l[0].as_str().unwrap(), l[1].as_str().unwrap());
                    }
                }
                t.synced = true;
            }
            "l2update" => {
                let t = self
                    .truth
                    .get_mut(v["product_id"].as_str().unwrap())
                    .unwrap();
                for c in v["changes"].as_array().unwrap() {
                    let buy = match c[0].as_str().unwrap() {
                        "buy" => true,
                        "sell" => false,
                        other => panic!("side {other}"),
                    };
                    t.set(buy, c[1].as_str().unwrap(), c[2].as_str().unwrap());
                }
            }
            _ => {}
        }
    }

    fn feed(&mut self, payload: &[u8], ts: u64) {
        self.out.clear();
        self.n
            .on_message(payload, ts, &mut self.out)
            .unwrap_or_else(|e| {
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
            let Action::Send(text) = a else {
                panic!("unexpected action {a:?}")
            };
            self.sent.push(text.clone());
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["type"] == "subscribe" && v["channels"][0] == "level2" {
                let product = v["product_ids"][0].as_str().unwrap().to_string();
                let body = self.truth[&product].snapshot_json(&product);
                self.out.clear();
                self.n.on_message(&body, 0, &mut self.out).unwrap();
                self.absorb();
            }
        }
    }

    fn book_of(&self, product: &str) -> &L2Book {
        &self.books[&instrument_id(Venue::Coinbase, product)]
    }

    fn statuses(&self) -> Vec<(u32, u8, StatusCode, String)> {
        self.frames
            .iter()
            .filter_map(|f| match &f.body {
                Body::Status(s) => Some((f.instrument, f.flags, s.code, s.detail.clone())),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn capture_trades_exact_quotes_counted_and_books_match_reconstruction() {
    let records = capture();
    let mut h = Harness::new();
    let mut raw_matches = Vec::new();
    let mut raw_tickers = Vec::new();
    let mut l2_seen = 0;
    let mut compared = 0;
    for (payload, ts) in &records {
        h.truth_feed(payload);
        h.feed(payload, *ts);
        let v: Value = serde_json::from_slice(payload).unwrap();
        match v["type"].as_str().unwrap() {
            "match" => raw_matches.push(v),
            "ticker" => raw_tickers.push(v),
            "l2update" => {
                l2_seen += 1;
                if l2_seen % 50 == 0 {
                    let p = v["product_id"].as_str().unwrap();
                    h.truth[p].assert_eq_book(h.book_of(p), &format!("after l2update {l2_seen}"));
                    compared += 1;
                }
            }
            _ => {}
        }
    }
    assert!(compared >= 190);
    // Every trade, exact, in order, with the aggressor opposite to the maker side.
    let trades: Vec<_> = h
        .frames
        .iter()
        .filter_map(|f| match &f.body {
            Body::Trade(t) => Some((f, t)),
            _ => None,
        })
        .collect();
    assert_eq!(trades.len(), 97);
    assert_eq!(raw_matches.len(), 97);
    for ((f, t), raw) in trades.iter().zip(&raw_matches) {
        let p = raw["product_id"].as_str().unwrap();
        assert_eq!(f.instrument, instrument_id(Venue::Coinbase, p));
        assert_eq!(
            canon(&decimal_string(t.price, 9)),
            canon(raw["price"].as_str().unwrap())
        );
        assert_eq!(
            canon(&decimal_string(t.qty, 9)),
            canon(raw["size"].as_str().unwrap())
        );
        assert_eq!(t.trade_id, TradeId::Num(raw["trade_id"].as_u64().unwrap()));
        let maker = raw["side"].as_str().unwrap();
        assert_eq!(
            t.side,
            if maker == "sell" {
                Side::Buy
            } else {
                Side::Sell
            }
        );
        assert!(
            f.ts_exchange > 1_618_600_000_000_000_000,
            "{}",
            f.ts_exchange
        );
    }
    // Quotes: one per ticker, best bid/ask exact; this 2021 capture has no sizes.
    let quotes: Vec<_> = h
        .frames
        .iter()
        .filter_map(|f| match &f.body {
            Body::Quote(q) => Some(q),
            _ => None,
        })
        .collect();
    assert_eq!(quotes.len(), 107);
    for (q, raw) in quotes.iter().zip(&raw_tickers) {
        assert_eq!(
            canon(&decimal_string(q.bid_px, 9)),
            canon(raw["best_bid"].as_str().unwrap())
        );
        assert_eq!(
            canon(&decimal_string(q.ask_px, 9)),
            canon(raw["best_ask"].as_str().unwrap())
        );
        assert_eq!((q.bid_qty, q.ask_qty), (0, 0));
    }
    // Every book ends valid and equal to the reconstruction.
    assert_eq!(h.truth.len(), 10);
    for (p, t) in &h.truth {
        let book = h.book_of(p);
        assert!(book.is_valid(), "{p}");
        t.assert_eq_book(book, &format!("{p} at the end"));
        assert_eq!(h.n.book(p).unwrap().depth(), book.depth());
    }
    let stats = h.n.stats();
    assert_eq!(stats.errors, 0, "{stats:?}");
    assert_eq!(stats.gaps, 0);
    assert_eq!(stats.get("snapshot"), 10);
    assert_eq!(stats.get("book:synced"), 10);
    assert_eq!(stats.get("l2update"), 9_719);
    assert_eq!(stats.get("ticker"), 107);
    assert_eq!(stats.get("match"), 97);
    assert_eq!(stats.get("last_match"), 10);
    assert_eq!(stats.get("subscriptions"), 3);
    assert_eq!(stats.get("l2update:before_snapshot"), 0);
    assert_eq!(stats.messages, records.len() as u64);
    assert_eq!(records.len(), 9_946);
    // Each key is a message type or a sub-count of one: nothing fell through.
    for (k, _) in stats.by_kind() {
        assert!(!k.starts_with("ignored:"), "{k}");
    }
    // No status frames on a clean capture; Definitions precede each instrument's data.
    assert!(h.statuses().is_empty());
    assert!(matches!(h.frames[0].body, Body::Definition(_)));
    assert!(h.sent.is_empty());
}

#[test]
fn altered_price_crosses_the_book_gap_resubscribe_resynced() {
    let records = capture();
    let mut h = Harness::new();
    let mut l2_seen = 0;
    let mut altered = None;
    for (payload, ts) in &records {
        h.truth_feed(payload);
        let mut v: Value = serde_json::from_slice(payload).unwrap();
        if v["type"] == "l2update" {
            l2_seen += 1;
            if altered.is_none() && l2_seen >= 3_000 && v["changes"][0][0] == "buy" {
                // A bid price typed wrong: far through the ask, so the book crosses.
                v["changes"][0][1] = Value::String("99999".into());
                altered = Some(v["product_id"].as_str().unwrap().to_string());
                h.feed(&serde_json::to_vec(&v).unwrap(), *ts);
                continue;
            }
        }
        h.feed(payload, *ts);
    }
    let product = altered.unwrap();
    let id = instrument_id(Venue::Coinbase, &product);
    let statuses = h.statuses();
    assert_eq!(statuses.len(), 2, "{statuses:?}");
    assert_eq!((statuses[0].0, statuses[0].2), (id, StatusCode::Gap));
    assert!(statuses[0].1 & flags::BAD_BOOK != 0);
    assert!(statuses[0].3.contains("crossed"), "{}", statuses[0].3);
    assert_eq!((statuses[1].0, statuses[1].2), (id, StatusCode::Resynced));
    // The resync is an unsubscribe then a subscribe of level2 for that product alone.
    assert_eq!(
        h.sent,
        [
            format!(
                r#"{{"type":"unsubscribe","product_ids":["{product}"],"channels":["level2"]}}"#
            ),
            format!(r#"{{"type":"subscribe","product_ids":["{product}"],"channels":["level2"]}}"#),
        ]
    );
    // The deltas of the bad update were flagged.
    assert!(h.frames.iter().any(|f| f.instrument == id
        && matches!(f.body, Body::BookDelta(_))
        && f.flags & flags::BAD_BOOK != 0));
    let book = h.book_of(&product);
    assert!(book.is_valid());
    h.truth[&product].assert_eq_book(book, "after the resync, at the end");
    let stats = h.n.stats();
    assert_eq!(stats.gaps, 1);
    assert_eq!(stats.get("book:synced"), 11);
    assert_eq!(stats.errors, 0);
}

#[test]
fn removed_match_is_a_trade_gap() {
    let records = capture();
    let mut h = Harness::new();
    let mut matches_seen = 0;
    let mut removed = None;
    for (payload, ts) in &records {
        let v: Value = serde_json::from_slice(payload).unwrap();
        if v["type"] == "match" {
            matches_seen += 1;
            if matches_seen == 40 {
                removed = Some((
                    v["product_id"].as_str().unwrap().to_string(),
                    v["trade_id"].as_u64().unwrap(),
                ));
                continue;
            }
        }
        h.truth_feed(payload);
        h.feed(payload, *ts);
    }
    let (product, id) = removed.unwrap();
    let statuses = h.statuses();
    assert_eq!(statuses.len(), 1, "{statuses:?}");
    assert_eq!(statuses[0].0, instrument_id(Venue::Coinbase, &product));
    assert_eq!(statuses[0].2, StatusCode::Gap);
    assert_eq!(
        statuses[0].1 & flags::BAD_BOOK,
        0,
        "a trade gap leaves the book alone"
    );
    assert!(
        statuses[0].3.contains(&format!("{id}..={id}")),
        "{}",
        statuses[0].3
    );
    assert_eq!(h.n.stats().gaps, 1);
    let trades = h
        .frames
        .iter()
        .filter(|f| matches!(f.body, Body::Trade(_)))
        .count();
    assert_eq!(trades, 96);
}

#[test]
fn malformed_messages_are_counted_skipped_and_break_the_book() {
    let records = capture();
    let mut h = Harness::new();
    let mut bad = 0;
    for (k, (payload, ts)) in records.iter().enumerate() {
        if k % 1000 == 500 {
            h.out.clear();
            let junk = br#"{"type":"match","trade_id":1"#;
            assert!(matches!(
                h.n.on_message(junk, 0, &mut h.out),
                Err(NormalizeError::Json(_))
            ));
            let wrong = br#"{"type":"match","trade_id":1,"product_id":"SKL-USD","price":"abc","size":"1","side":"buy","time":"2021-04-17T16:43:30.244075Z"}"#;
            let e = h.n.on_message(wrong, 0, &mut h.out).unwrap_err();
            assert!(e.to_string().contains("price"), "{e}");
            assert!(h.out.frames.is_empty());
            bad += 2;
        }
        h.truth_feed(payload);
        h.feed(payload, *ts);
    }
    let stats = h.n.stats();
    assert_eq!(stats.errors, bad);
    assert_eq!(stats.get("error:json"), bad / 2);
    assert_eq!(stats.get("error:message"), bad / 2);
    for (p, t) in &h.truth {
        t.assert_eq_book(h.book_of(p), p);
    }
    // An unreadable l2update breaks its book: Gap and a resubscription.
    h.out.clear();
    let e = h
        .n
        .on_message(br#"{"type":"l2update","product_id":"SKL-USD","changes":[["buy","x","1"]],"time":"2021-04-17T16:43:37.075687Z"}"#, 0, &mut h.out)
        .unwrap_err();
    assert!(e.to_string().contains("changes"), "{e}");
    assert_eq!(h.out.actions.len(), 2);
    assert!(h.out.frames.iter().any(
        |f| matches!(&f.body, Body::Status(s) if s.code == StatusCode::Gap)
            && f.flags & flags::BAD_BOOK != 0
    ));
}

// ---- Documented examples -------------------------------------------------------------

fn run(n: &mut CoinbaseNormalizer, msg: &str) -> (Vec<Frame>, Vec<Action>) {
    let mut out = Output::new();
    n.on_message(msg.as_bytes(), 7, &mut out)
        .unwrap_or_else(|e| panic!("{e}: {msg}"));
    (out.frames, out.actions)
}

/// docs.cdp.coinbase.com/exchange/websocket-feed/channels, "Level2 Channel": the snapshot
/// and l2update examples; then a change that crosses the book.
#[test]
fn doc_level2_snapshot_and_update() {
    let mut n = CoinbaseNormalizer::new(&["BTC-USD".into()], "level2_batch");
    let (f, _) = run(
        &mut n,
        r#"{
  "type": "snapshot",
  "product_id": "BTC-USD",
  "bids": [["10101.10", "0.45054140"]],
  "asks": [["10102.55", "0.57753524"]]
}"#,
    );
    let snap = f.iter().find_map(|f| match &f.body {
        Body::BookSnapshot(s) => Some((f.flags, s.clone())),
        _ => None,
    });
    let (fl, s) = snap.unwrap();
    assert_eq!(fl, flags::SNAPSHOT | flags::LAST);
    assert_eq!(s.bids[0].price, 10_101_100_000_000);
    assert_eq!(s.asks[0].qty, 577_535_240);
    let (f, _) = run(
        &mut n,
        r#"{
  "type": "l2update",
  "product_id": "BTC-USD",
  "changes": [
    [
      "buy",
      "10101.80000000",
      "0.162567"
    ]
  ],
  "time": "2019-08-14T20:42:27.265Z"
}"#,
    );
    // The Definition is announced again (8 price decimals seen now), then the one delta.
    assert!(matches!(&f[0].body, Body::Definition(d) if d.price_decimals == 8));
    assert_eq!(f.len(), 2);
    assert_eq!(f[1].flags, flags::LAST);
    assert_eq!(f[1].ts_exchange, 1_565_815_347_265_000_000);
    assert!(
        matches!(f[1].body, Body::BookDelta(d) if d.price == 10_101_800_000_000 && d.qty == 162_567_000)
    );
    assert_eq!(
        n.book("BTC-USD").unwrap().best_bid().unwrap().price,
        10_101_800_000_000
    );
    // A bid through the ask crosses the book: Gap, flagged, resubscribe level2_batch.
    let (f, a) = run(
        &mut n,
        r#"{"type":"l2update","product_id":"BTC-USD","changes":[["buy","10103.00","1"]],"time":"2019-08-14T20:42:28Z"}"#,
    );
    assert!(f[0].flags & flags::BAD_BOOK != 0);
    assert!(matches!(&f[1].body, Body::Status(s) if s.code == StatusCode::Gap));
    assert_eq!(a.len(), 2);
    assert_eq!(
        a[1],
        Action::Send(
            r#"{"type":"subscribe","product_ids":["BTC-USD"],"channels":["level2_batch"]}"#.into()
        )
    );
    assert!(n.book("BTC-USD").is_none());
    // Updates before the fresh snapshot are dropped (and counted); the snapshot resyncs.
    let (f, _) = run(
        &mut n,
        r#"{"type":"l2update","product_id":"BTC-USD","changes":[["sell","10104","1"]],"time":"2019-08-14T20:42:29Z"}"#,
    );
    assert!(f.is_empty());
    assert_eq!(n.stats().get("l2update:dropped_resyncing"), 1);
    let (f, _) = run(
        &mut n,
        r#"{"type":"snapshot","product_id":"BTC-USD","bids":[["10101.10","0.5"]],"asks":[["10102.55","0.5"]]}"#,
    );
    assert!(matches!(&f.last().unwrap().body, Body::Status(s) if s.code == StatusCode::Resynced));
    assert!(n.book("BTC-USD").is_some());
}

/// docs.cdp.coinbase.com/exchange/websocket-feed/channels, "Match": `side` is the maker's.
#[test]
fn doc_match_and_last_match() {
    let mut n = CoinbaseNormalizer::new(&[], "level2_batch");
    // last_match sets the baseline and is not emitted (it happened before we subscribed).
    let (f, _) = run(
        &mut n,
        r#"{"type":"last_match","trade_id":9,"sequence":49,"maker_order_id":"a","taker_order_id":"b","time":"2014-11-07T08:19:26Z","product_id":"BTC-USD","size":"1","price":"400.00","side":"buy"}"#,
    );
    assert!(f.iter().all(|f| matches!(f.body, Body::Definition(_))));
    let (f, _) = run(
        &mut n,
        r#"{
  "type": "match",
  "trade_id": 10,
  "sequence": 50,
  "maker_order_id": "ac928c66-ca53-498f-9c13-a110027a60e8",
  "taker_order_id": "132fb6ae-456b-4654-b4e0-d681ac05cea1",
  "time": "2014-11-07T08:19:27.028459Z",
  "product_id": "BTC-USD",
  "size": "5.23512",
  "price": "400.23",
  "side": "sell"
}"#,
    );
    let t = f.iter().find_map(|f| match &f.body {
        Body::Trade(t) => Some((f.ts_exchange, t.clone())),
        _ => None,
    });
    let (ts, t) = t.unwrap();
    assert_eq!(ts, 1_415_348_367_028_459_000);
    assert_eq!((t.price, t.qty), (400_230_000_000, 5_235_120_000));
    assert_eq!(t.side, Side::Buy, "a sell maker was taken by a buyer");
    assert_eq!(t.trade_id, TradeId::Num(10));
    // A duplicate is dropped; a jump is a Gap on the trades stream (book untouched).
    let (f, _) = run(
        &mut n,
        r#"{"type":"match","trade_id":10,"time":"2014-11-07T08:19:27Z","product_id":"BTC-USD","size":"1","price":"400","side":"buy"}"#,
    );
    assert!(f.is_empty());
    let (f, _) = run(
        &mut n,
        r#"{"type":"match","trade_id":13,"time":"2014-11-07T08:19:27Z","product_id":"BTC-USD","size":"1","price":"400","side":"buy"}"#,
    );
    assert!(
        matches!(&f[0].body, Body::Status(s) if s.code == StatusCode::Gap && s.detail.contains("11..=12"))
    );
    assert_eq!(f[0].flags & flags::BAD_BOOK, 0);
    assert!(matches!(&f[1].body, Body::Trade(t) if t.side == Side::Sell));
}

/// docs.cdp.coinbase.com/exchange/websocket-feed/channels, "Heartbeat Channel" (verbatim),
/// after trades up to id 17: ids 18..=20 were missed.
#[test]
fn doc_heartbeat_shows_missed_trades() {
    let mut n = CoinbaseNormalizer::new(&[], "level2_batch");
    let heartbeat = r#"{
  "type": "heartbeat",
  "sequence": 90,
  "last_trade_id": 20,
  "product_id": "BTC-USD",
  "time": "2014-11-07T08:19:28.464459Z"
}"#;
    // Before any trade is followed, a heartbeat says nothing.
    let (f, _) = run(&mut n, heartbeat);
    assert!(f.is_empty());
    run(
        &mut n,
        r#"{"type":"match","trade_id":17,"time":"2014-11-07T08:19:27Z","product_id":"BTC-USD","size":"1","price":"400","side":"buy"}"#,
    );
    let (f, _) = run(&mut n, heartbeat);
    assert!(
        matches!(&f[0].body, Body::Status(s) if s.code == StatusCode::Gap && s.detail.contains("18..=20")),
        "{f:?}"
    );
    // Reported once; a late trade in that range is still delivered, the next is contiguous.
    let (f, _) = run(&mut n, heartbeat);
    assert!(f.is_empty());
    let (f, _) = run(
        &mut n,
        r#"{"type":"match","trade_id":21,"time":"2014-11-07T08:19:29Z","product_id":"BTC-USD","size":"1","price":"400","side":"buy"}"#,
    );
    assert!(matches!(&f[0].body, Body::Trade(_)), "{f:?}");
    assert_eq!(n.stats().gaps, 1);
    assert_eq!(n.stats().get("heartbeat"), 3);
}

/// docs.cdp.coinbase.com/exchange/websocket-feed/channels, "Ticker Channel": the current
/// example carries best_bid_size / best_ask_size.
#[test]
fn doc_ticker_with_sizes() {
    let mut n = CoinbaseNormalizer::new(&[], "level2_batch");
    let (f, _) = run(
        &mut n,
        r#"{
  "type": "ticker",
  "sequence": 37475248783,
  "product_id": "ETH-USD",
  "price": "1285.22",
  "open_24h": "1310.79",
  "volume_24h": "245532.79269678",
  "low_24h": "1280.52",
  "high_24h": "1313.8",
  "volume_30d": "9788783.60117027",
  "best_bid": "1285.04",
  "best_bid_size": "0.46688654",
  "best_ask": "1285.27",
  "best_ask_size": "1.56637040",
  "side": "buy",
  "time": "2022-10-19T23:28:22.061769Z",
  "trade_id": 370843401,
  "last_size": "11.4396987"
}"#,
    );
    let q = f.iter().find_map(|f| match &f.body {
        Body::Quote(q) => Some(*q),
        _ => None,
    });
    let q = q.unwrap();
    assert_eq!((q.bid_px, q.bid_qty), (1_285_040_000_000, 466_886_540));
    assert_eq!((q.ask_px, q.ask_qty), (1_285_270_000_000, 1_566_370_400));
    let Body::Definition(d) = &f[0].body else {
        panic!("{f:?}")
    };
    assert_eq!(
        (d.symbol.as_str(), d.price_decimals, d.qty_decimals),
        ("ETH-USD", 2, 8)
    );
}

/// docs.cdp.coinbase.com/exchange/websocket-feed/overview: subscribe replies, errors, and
/// message types a client is expected to ignore.
#[test]
fn doc_subscriptions_errors_and_unknown_types() {
    let mut n = CoinbaseNormalizer::new(&[], "level2_batch");
    run(
        &mut n,
        r#"{"type":"subscriptions","channels":[{"name":"level2","product_ids":["ETH-USD","ETH-EUR"]},{"name":"heartbeat","product_ids":["ETH-USD","ETH-EUR"]},{"name":"ticker","product_ids":["ETH-USD","ETH-EUR","ETH-BTC"]}]}"#,
    );
    assert_eq!(n.stats().get("subscriptions"), 1);
    let mut out = Output::new();
    let e = n
        .on_message(br#"{"type":"error","message":"Failed to subscribe","reason":"level2 requires authentication"}"#, 0, &mut out)
        .unwrap_err();
    assert_eq!(
        e,
        NormalizeError::Venue("Failed to subscribe: level2 requires authentication".into())
    );
    assert_eq!(n.stats().get("error:venue"), 1);
    run(&mut n, r#"{"type":"status","products":[],"currencies":[]}"#);
    run(&mut n, r#"{"type":"received","product_id":"BTC-USD"}"#);
    run(&mut n, r#"{"no_type":1}"#);
    assert_eq!(n.stats().get("ignored:status"), 1);
    assert_eq!(n.stats().get("ignored:received"), 1);
    assert_eq!(n.stats().get("ignored:unknown"), 1);
    assert!(n.on_snapshot("BTC-USD", b"{}", 0, &mut out).is_err());
}

#[test]
fn disconnect_flags_books_and_reconnect_resyncs() {
    let mut n = CoinbaseNormalizer::new(&["BTC-USD".into()], "level2");
    let snap =
        r#"{"type":"snapshot","product_id":"BTC-USD","bids":[["100","1"]],"asks":[["101","1"]]}"#;
    run(&mut n, snap);
    run(
        &mut n,
        r#"{"type":"last_match","trade_id":5,"time":"2014-11-07T08:19:26Z","product_id":"BTC-USD","size":"1","price":"100","side":"buy"}"#,
    );
    let mut out = Output::new();
    n.on_disconnect(1, "read failed", &mut out);
    assert!(matches!(&out.frames[0].body, Body::Status(s) if s.code == StatusCode::Disconnected));
    assert!(out.frames[0].flags & flags::BAD_BOOK != 0);
    assert!(n.book("BTC-USD").is_none());
    out.clear();
    n.on_connect(2, &mut out);
    assert!(matches!(&out.frames[0].body, Body::Status(s) if s.code == StatusCode::Connected));
    out.clear();
    n.on_stale(3, "no message for 5s", &mut out);
    assert!(matches!(&out.frames[0].body, Body::Status(s) if s.code == StatusCode::Stale));
    // An update before the new snapshot is dropped; the snapshot reports Resynced.
    let (f, _) = run(
        &mut n,
        r#"{"type":"l2update","product_id":"BTC-USD","changes":[["buy","99","1"]],"time":"2019-08-14T20:42:27.265Z"}"#,
    );
    assert!(f.is_empty());
    let (f, _) = run(&mut n, snap);
    assert!(matches!(&f.last().unwrap().body, Body::Status(s) if s.code == StatusCode::Resynced));
    // The new last_match shows the trades missed while away.
    let (f, _) = run(
        &mut n,
        r#"{"type":"last_match","trade_id":8,"time":"2014-11-07T08:19:26Z","product_id":"BTC-USD","size":"1","price":"100","side":"buy"}"#,
    );
    assert!(
        matches!(&f[0].body, Body::Status(s) if s.code == StatusCode::Gap && s.detail.contains("6..=8")),
        "{f:?}"
    );
}

// ---- No panic on arbitrary input -------------------------------------------------------

fn samples() -> &'static [Vec<u8>] {
    static SAMPLES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    SAMPLES.get_or_init(load_samples)
}

fn load_samples() -> Vec<Vec<u8>> {
    let records = capture();
    let mut by_type: HashMap<String, Vec<u8>> = HashMap::new();
    for (p, _) in records {
        let v: Value = serde_json::from_slice(&p).unwrap();
        by_type
            .entry(v["type"].as_str().unwrap().to_string())
            .or_insert(p);
    }
    let mut v: Vec<Vec<u8>> = by_type.into_values().collect();
    v.push(br#"{"type":"heartbeat","sequence":90,"last_trade_id":20,"product_id":"BTC-USD","time":"2014-11-07T08:19:28.464459Z"}"#.to_vec());
    v.push(br#"{"type":"error","message":"Failed to subscribe","reason":"x"}"#.to_vec());
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn no_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut n = CoinbaseNormalizer::new(&["BTC-USD".into()], "level2");
        let mut out = Output::new();
        let _ = n.on_message(&bytes, 0, &mut out);
    }

    #[test]
    fn no_panic_on_mutated_messages(
        which in 0usize..64,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
    ) {
        let samples = samples();
        let mut n = CoinbaseNormalizer::new(&[], "level2");
        let mut out = Output::new();
        // A synced book first, so mutated updates reach the book code.
        for s in samples {
            let _ = n.on_message(s, 0, &mut out);
        }
        let mut msg = samples[which % samples.len()].clone();
        for (at, byte) in edits {
            let i = at % msg.len();
            msg[i] = byte;
        }
        out.clear();
        let _ = n.on_message(&msg, 0, &mut out);
        let _ = n.on_message(&samples[which % samples.len()], 0, &mut out);
    }
}

// ---- The exact-layout fast path against the tape path ----------------------------------

/// Runs `messages` through a normalizer with the fast path on or off; returns every result,
/// frame and action, the stats, and the fast path's hit count.
fn run_paths(messages: &[(Vec<u8>, u64)], fast: bool) -> (Vec<String>, u64) {
    let mut n = CoinbaseNormalizer::new(&[], "level2");
    n.set_fast_path(fast);
    let mut out = Output::new();
    let mut seen = Vec::new();
    for (raw, ts) in messages {
        out.clear();
        let res = n.on_message(raw, *ts, &mut out);
        seen.push(format!("{res:?} {:?} {:?}", out.frames, out.actions));
    }
    seen.push(format!("{:?}", n.stats()));
    (seen, n.fast_hits())
}

fn assert_same_paths(name: &str, messages: &[(Vec<u8>, u64)]) -> u64 {
    let (tape, zero) = run_paths(messages, false);
    let (fast, hits) = run_paths(messages, true);
    assert_eq!(zero, 0);
    assert_eq!(tape.len(), fast.len());
    for (k, (a, b)) in tape.iter().zip(&fast).enumerate() {
        assert_eq!(a, b, "{name}: message {k} differs between the paths");
    }
    hits
}

#[test]
fn fast_path_gives_the_tape_path_frames_on_every_capture_message() {
    let records = capture();
    let data = records
        .iter()
        .filter(|(p, _)| {
            let p = String::from_utf8_lossy(p);
            [
                "{\"type\":\"l2update\"",
                "{\"type\":\"match\"",
                "{\"type\":\"last_match\"",
                "{\"type\":\"ticker\"",
            ]
            .iter()
            .any(|k| p.starts_with(k))
        })
        .count() as u64;
    assert_eq!(data, 9_719 + 97 + 10 + 107);
    let hits = assert_same_paths("capture", &records);
    assert_eq!(hits, data, "every data message takes the fast path");
}

#[test]
fn fast_path_reads_the_documented_layouts_like_the_tape() {
    let lines = [
        r#"{"type":"snapshot","product_id":"BTC-USD","bids":[["10101.10","0.45054140"]],"asks":[["10102.55","0.57753524"]]}"#,
        // Documented order: time before changes.
        r#"{"type":"l2update","product_id":"BTC-USD","time":"2019-08-14T20:42:27.265Z","changes":[["buy","10101.80000000","0.162567"],["sell","10102.55","0"]]}"#,
        r#"{"type":"l2update","product_id":"BTC-USD","changes":[],"time":"2019-08-14T20:42:27.265Z"}"#,
        // Documented match order, then the live order.
        r#"{"type":"match","trade_id":10,"sequence":50,"maker_order_id":"ac928c66-ca53-498f-9c13-a110027a60e8","taker_order_id":"132fb6ae-456b-4654-b4e0-d681ac05cea1","time":"2014-11-07T08:19:27.028459Z","product_id":"BTC-USD","size":"5.23512","price":"400.23","side":"sell"}"#,
        r#"{"type":"match","trade_id":12,"maker_order_id":"ac928c66-ca53-498f-9c13-a110027a60e8","taker_order_id":"132fb6ae-456b-4654-b4e0-d681ac05cea1","side":"buy","size":"1","price":"400.5","product_id":"BTC-USD","sequence":52,"time":"2014-11-07T08:19:28Z"}"#,
        r#"{"type":"last_match","trade_id":12,"maker_order_id":"ac928c66-ca53-498f-9c13-a110027a60e8","taker_order_id":"132fb6ae-456b-4654-b4e0-d681ac05cea1","side":"buy","size":"1","price":"400.5","product_id":"BTC-USD","sequence":52,"time":"2014-11-07T08:19:28Z"}"#,
        // Current ticker, with the best sizes.
        r#"{"type":"ticker","sequence":37475248783,"product_id":"BTC-USD","price":"10102.1","open_24h":"10000","volume_24h":"245532.79269678","low_24h":"9980.52","high_24h":"10313.8","volume_30d":"9788783.60117027","best_bid":"10101.80","best_bid_size":"0.46688654","best_ask":"10102.55","best_ask_size":"1.56637040","side":"buy","time":"2022-10-19T23:28:22.061769Z","trade_id":370843401,"last_size":"11.4396987"}"#,
        // A crossing update: Gap, resubscription.
        r#"{"type":"l2update","product_id":"BTC-USD","changes":[["buy","10103.00","1"]],"time":"2019-08-14T20:42:28Z"}"#,
    ];
    let messages: Vec<(Vec<u8>, u64)> = lines
        .iter()
        .enumerate()
        .map(|(k, l)| (l.as_bytes().to_vec(), k as u64))
        .collect();
    assert_eq!(assert_same_paths("documented", &messages), 7);
}

mod fast_path_props {
    use super::*;

    /// Up to 20 capture messages of each fast-path type.
    fn fast_samples() -> &'static [Vec<u8>] {
        static SAMPLES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
        SAMPLES.get_or_init(|| {
            let records = capture();
            let mut picked = Vec::new();
            for key in ["l2update", "match", "last_match", "ticker"] {
                let start = format!("{{\"type\":\"{key}\"");
                picked.extend(
                    records
                        .iter()
                        .filter(|(p, _)| p.starts_with(start.as_bytes()))
                        .take(20)
                        .map(|(p, _)| p.clone()),
                );
            }
            picked
        })
    }

    /// One message on a normalizer whose books for the capture's products are live (a
    /// one-level snapshot each, wide apart), on either path.
    fn both(raw: &[u8]) -> (String, String) {
        let mut out = Output::new();
        let mut run = |fast: bool| {
            let mut n = CoinbaseNormalizer::new(&[], "level2");
            for p in [
                "SKL-USD", "SKL-BTC", "BAND-GBP", "NMR-EUR", "BAND-BTC", "YFI-BTC", "DASH-BTC",
                "NU-GBP", "CRV-EUR", "SKL-GBP",
            ] {
                let snap = format!(
                    r#"{{"type":"snapshot","product_id":"{p}","bids":[["0.00000001","1"]],"asks":[["900000","1"]]}}"#
                );
                n.on_message(snap.as_bytes(), 0, &mut out).unwrap();
            }
            n.set_fast_path(fast);
            out.clear();
            let r = n.on_message(raw, 1, &mut out);
            // Errors as error or not (the fast path never reports one; it falls back),
            // frames, actions and stats exactly.
            format!(
                "{} {:?} {:?} {:?}",
                r.is_ok(),
                out.frames,
                out.actions,
                n.stats()
            )
        };
        (run(false), run(true))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn mutated_messages_give_the_same_result_on_both_paths(
            pick in 0usize..80,
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let samples = fast_samples();
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
