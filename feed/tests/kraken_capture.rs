//! The Kraken normalizer on real v1 captures, checked against an independent reconstruction
//! (serde_json over the raw text, prices and volumes kept as the strings sent, the checksum
//! recomputed here from those strings), plus documented v2 examples and fuzzing.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use serde_json::{Value, json};
use tickwire_feed::capture::{CaptureReader, Record, RecordKind};
use tickwire_feed::kraken::KrakenNormalizer;
use tickwire_feed::{Action, Normalizer, Output};
use tickwire_sdk::L2Book;
use tickwire_sdk::wire::{
    Body, BookSide, Frame, Side, StatusCode, TradeId, Venue, flags, instrument_id,
};

const CAPTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../replay-data/captures/kraken_spot_v1"
);

fn received(path: &str) -> Vec<Record> {
    CaptureReader::open(format!("{CAPTURES}/{path}"))
        .unwrap()
        .read_all()
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == RecordKind::Received)
        .collect()
}

/// Decimal text -> 1e-9 units, written here independently of the SDK's parser.
fn fx(s: &str) -> i64 {
    i64::try_from(wide(s)).unwrap()
}

/// The same in i128: the capture has an ask at 9,999,999,997 CHF, beyond a frame's i64.
fn wide(s: &str) -> i128 {
    let (i, f) = s.split_once('.').unwrap_or((s, ""));
    let mut f = f.to_string();
    while f.len() < 9 {
        f.push('0');
    }
    i.parse::<i128>().unwrap() * 1_000_000_000 + f[..9].parse::<i128>().unwrap()
}

fn crc_text(s: &str) -> String {
    s.replace('.', "").trim_start_matches('0').to_string()
}

/// One pair's book as the venue's strings, built from raw JSON.
#[derive(Default, Clone)]
struct TruthBook {
    bids: BTreeMap<i128, (String, String)>,
    asks: BTreeMap<i128, (String, String)>,
    depth: usize,
}

impl TruthBook {
    fn apply(&mut self, side: &str, levels: &Value) {
        let m = if side == "a" {
            &mut self.asks
        } else {
            &mut self.bids
        };
        for l in levels.as_array().unwrap() {
            let p = l[0].as_str().unwrap();
            let q = l[1].as_str().unwrap();
            if wide(q) == 0 {
                m.remove(&wide(p));
            } else {
                m.insert(wide(p), (p.to_string(), q.to_string()));
            }
        }
    }

    fn truncate(&mut self) {
        while self.bids.len() > self.depth {
            let k = *self.bids.keys().next().unwrap();
            self.bids.remove(&k);
        }
        while self.asks.len() > self.depth {
            let k = *self.asks.keys().next_back().unwrap();
            self.asks.remove(&k);
        }
    }

    fn checksum(&self) -> u32 {
        let mut s = String::new();
        for (p, q) in self.asks.values().take(10) {
            s += &crc_text(p);
            s += &crc_text(q);
        }
        for (p, q) in self.bids.values().rev().take(10) {
            s += &crc_text(p);
            s += &crc_text(q);
        }
        crc32fast::hash(s.as_bytes())
    }

    /// The v1 snapshot message the venue would send for this book.
    fn snapshot_message(&self, channel_id: u64, pair: &str) -> Vec<u8> {
        let lv = |(p, q): &(String, String)| json!([p, q, "1618678150.000000"]);
        let asks: Vec<_> = self.asks.values().map(lv).collect();
        let bids: Vec<_> = self.bids.values().rev().map(lv).collect();
        serde_json::to_vec(&json!([
            channel_id,
            {"as": asks, "bs": bids},
            format!("book-{}", self.depth),
            pair
        ]))
        .unwrap()
    }

    fn assert_eq_book(&self, book: &L2Book, at: &str) {
        let ours_b: BTreeMap<i64, i64> = book.bids().map(|l| (l.price, l.qty)).collect();
        let ours_a: BTreeMap<i64, i64> = book.asks().map(|l| (l.price, l.qty)).collect();
        // Frames carry i64: levels beyond that range are left out of them (documented).
        let fit = |m: &BTreeMap<i128, (String, String)>| -> BTreeMap<i64, i64> {
            m.iter()
                .filter_map(|(k, v)| {
                    Some((i64::try_from(*k).ok()?, i64::try_from(wide(&v.1)).ok()?))
                })
                .collect()
        };
        let (t_b, t_a) = (fit(&self.bids), fit(&self.asks));
        assert_eq!(ours_b.len(), t_b.len(), "bid depth differs {at}");
        assert_eq!(ours_a.len(), t_a.len(), "ask depth differs {at}");
        assert!(ours_b == t_b, "bids differ {at}");
        assert!(ours_a == t_a, "asks differ {at}");
    }
}

/// The truth for a whole v1 book capture: books by pair, checksums verified as they come.
#[derive(Default)]
struct Truth {
    books: HashMap<String, TruthBook>,
    channel_ids: HashMap<String, u64>,
    checksums_verified: usize,
}

impl Truth {
    /// Feeds a raw message; returns the pair if it was a book message.
    fn feed(&mut self, raw: &[u8]) -> Option<String> {
        let v: Value = serde_json::from_slice(raw).unwrap();
        let a = v.as_array()?;
        let name = a[a.len() - 2].as_str().unwrap();
        let pair = a[a.len() - 1].as_str().unwrap().to_string();
        let depth: usize = name.strip_prefix("book-")?.parse().unwrap();
        self.channel_ids
            .insert(pair.clone(), a[0].as_u64().unwrap());
        let b = self.books.entry(pair.clone()).or_default();
        b.depth = depth;
        let mut checksum = None;
        for payload in &a[1..a.len() - 2] {
            let o = payload.as_object().unwrap();
            if o.contains_key("as") || o.contains_key("bs") {
                b.bids.clear();
                b.asks.clear();
            }
            for (k, levels) in o {
                match k.as_str() {
                    "as" | "a" => b.apply("a", levels),
                    "bs" | "b" => b.apply("b", levels),
                    "c" => checksum = Some(levels.as_str().unwrap().parse::<u32>().unwrap()),
                    _ => {}
                }
            }
        }
        b.truncate();
        if let Some(c) = checksum {
            assert_eq!(b.checksum(), c, "truth checksum for {pair}");
            self.checksums_verified += 1;
        }
        Some(pair)
    }
}

/// Drives the normalizer like the driver would; answers resubscriptions with a snapshot of
/// the truth when `serve_resync` is set.
struct Harness {
    n: KrakenNormalizer,
    out: Output,
    frames: Vec<Frame>,
    books: HashMap<u32, L2Book>,
    actions: Vec<Action>,
}

impl Harness {
    fn new(n: KrakenNormalizer) -> Harness {
        Harness {
            n,
            out: Output::new(),
            frames: Vec::new(),
            books: HashMap::new(),
            actions: Vec::new(),
        }
    }

    fn feed(&mut self, raw: &[u8], ts: u64) {
        self.out.clear();
        self.n
            .on_message(raw, ts, &mut self.out)
            .unwrap_or_else(|e| panic!("normalize failed: {e}: {}", String::from_utf8_lossy(raw)));
        self.absorb();
    }

    fn absorb(&mut self) {
        for f in &self.out.frames {
            self.books.entry(f.instrument).or_default().apply_owned(f);
        }
        self.frames.append(&mut self.out.frames);
        self.actions.append(&mut self.out.actions);
    }

    fn book_of(&self, pair: &str) -> &L2Book {
        &self.books[&instrument_id(Venue::Kraken, pair)]
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

#[test]
fn v1_book_capture_every_checksum_verifies_and_books_match_the_reconstruction() {
    let records = received("book_1000/KRAKEN.ws.50.0");
    let mut truth = Truth::default();
    let mut h = Harness::new(KrakenNormalizer::v1(&[], 10));
    let mut book_msgs = 0;
    for r in &records {
        let pair = truth.feed(&r.payload);
        h.feed(&r.payload, r.ts_ns.unwrap());
        if let Some(pair) = pair {
            book_msgs += 1;
            if book_msgs % 50 == 0 {
                truth.books[&pair].assert_eq_book(h.book_of(&pair), &format!("at {book_msgs}"));
            }
        }
    }
    assert_eq!(truth.checksums_verified, 4_269);
    let stats = h.n.stats();
    assert_eq!(stats.errors, 0, "{stats:?}");
    assert_eq!(stats.gaps, 0);
    assert_eq!(stats.messages, 4_321);
    assert_eq!(stats.get("book_snapshot"), 10);
    assert_eq!(stats.get("book_update"), 4_269);
    assert_eq!(stats.get("checksum:ok"), 4_269);
    assert_eq!(stats.get("book:synced"), 10);
    assert_eq!(stats.get("heartbeat"), 31);
    assert_eq!(stats.get("subscriptionStatus"), 10);
    assert_eq!(stats.get("systemStatus"), 1);
    let by_kind: u64 = stats
        .by_kind()
        .iter()
        .map(|(k, n)| {
            if k.starts_with("checksum") || k.starts_with("book:") {
                0
            } else {
                *n
            }
        })
        .sum();
    assert_eq!(
        by_kind,
        stats.messages,
        "every message counted once: {:?}",
        stats.by_kind()
    );
    assert!(h.statuses().is_empty(), "{:?}", h.statuses());
    assert!(h.actions.is_empty());
    for (pair, t) in &truth.books {
        let book = h.book_of(pair);
        assert!(book.is_valid(), "{pair}");
        t.assert_eq_book(book, &format!("{pair} at the end"));
        // The normalizer's own book agrees too, level for level.
        let kb = h.n.book(pair).unwrap();
        assert_eq!(kb.depth(), (t.bids.len(), t.asks.len()));
        assert_eq!(kb.checksum_as_sent(), t.checksum());
    }
    // Deltas come in atomic runs: the last frame of each update carries LAST.
    let deltas = h
        .frames
        .iter()
        .filter(|f| matches!(f.body, Body::BookDelta(_)))
        .count();
    let lasts = h
        .frames
        .iter()
        .filter(|f| matches!(f.body, Body::BookDelta(_)) && f.flags & flags::LAST != 0)
        .count();
    assert!(deltas > 4_269);
    assert_eq!(lasts, 4_269);
}

/// Runs the book capture with `edit` applied to the `k`-th book update (None removes it);
/// returns the harness, the truth and the affected pair.
fn run_with_edit(k: usize, edit: impl Fn(&mut Value) -> bool) -> (Harness, Truth, String) {
    let records = received("book_1000/KRAKEN.ws.50.0");
    let mut truth = Truth::default();
    let mut h = Harness::new(KrakenNormalizer::v1(&[], 10));
    let mut updates = 0;
    let mut hit = None;
    let mut all_actions = Vec::new();
    for r in &records {
        let pair = truth.feed(&r.payload);
        let mut payload = r.payload.clone();
        if pair.is_some() && r.payload.windows(5).any(|w| w == b"\"c\":\"") {
            updates += 1;
            if updates == k {
                let mut v: Value = serde_json::from_slice(&payload).unwrap();
                hit = pair.clone();
                if !edit(&mut v) {
                    continue; // removed: the venue sent it, we never got it
                }
                payload = serde_json::to_vec(&v).unwrap();
            }
        }
        h.feed(&payload, r.ts_ns.unwrap());
        // Serve a resubscription the way Kraken does: a fresh snapshot of the book.
        let actions = std::mem::take(&mut h.actions);
        for a in &actions {
            if let Action::Send(text) = a {
                let v: Value = serde_json::from_str(text).unwrap();
                if v["event"] == "subscribe" {
                    let pair = v["pair"][0].as_str().unwrap();
                    let snap = truth.books[pair].snapshot_message(truth.channel_ids[pair], pair);
                    h.feed(&snap, r.ts_ns.unwrap());
                }
            }
        }
        all_actions.extend(actions);
    }
    h.actions = all_actions;
    (h, truth, hit.unwrap())
}

fn assert_gap_then_resync(h: &Harness, truth: &Truth, pair: &str) {
    let statuses = h.statuses();
    assert_eq!(statuses.len(), 2, "{statuses:?}");
    assert_eq!(statuses[0].1, StatusCode::Gap);
    assert!(statuses[0].0 & flags::BAD_BOOK != 0);
    assert!(
        statuses[0].2.contains("checksum mismatch"),
        "{}",
        statuses[0].2
    );
    assert_eq!(statuses[1].1, StatusCode::Resynced);
    let gap_inst = h
        .frames
        .iter()
        .find(|f| matches!(f.body, Body::Status(_)))
        .unwrap()
        .instrument;
    assert_eq!(gap_inst, instrument_id(Venue::Kraken, pair));
    // The resync: unsubscribe then subscribe this pair's book at the subscribed depth.
    let sent: Vec<Value> = h
        .actions
        .iter()
        .map(|a| match a {
            Action::Send(t) => serde_json::from_str(t).unwrap(),
            other => panic!("unexpected action {other:?}"),
        })
        .collect();
    assert_eq!(
        sent,
        vec![
            json!({"event":"unsubscribe","pair":[pair],"subscription":{"name":"book","depth":1000}}),
            json!({"event":"subscribe","pair":[pair],"subscription":{"name":"book","depth":1000}}),
        ]
    );
    let stats = h.n.stats();
    assert_eq!(stats.gaps, 1);
    assert_eq!(stats.get("book:synced"), 11);
    for (p, t) in &truth.books {
        let book = h.book_of(p);
        assert!(book.is_valid(), "{p}");
        t.assert_eq_book(book, &format!("{p} at the end"));
    }
}

#[test]
fn altered_size_is_a_checksum_gap_then_a_resync_to_the_truth() {
    let (h, truth, pair) = run_with_edit(1_000, |v| {
        let a = v.as_array_mut().unwrap();
        let o = a[1].as_object_mut().unwrap();
        let side = if o.contains_key("a") { "a" } else { "b" };
        let q = o[side][0][1].as_str().unwrap().to_string();
        // One more unit in the last digit.
        let mut bytes = q.into_bytes();
        let last = bytes.len() - 1;
        bytes[last] = if bytes[last] == b'9' {
            b'8'
        } else {
            bytes[last] + 1
        };
        o[side][0][1] = Value::String(String::from_utf8(bytes).unwrap());
        true
    });
    // The altered update's own deltas are flagged BAD_BOOK.
    assert!(
        h.frames
            .iter()
            .any(|f| matches!(f.body, Body::BookDelta(_)) && f.flags & flags::BAD_BOOK != 0)
    );
    assert_gap_then_resync(&h, &truth, &pair);
}

#[test]
fn removed_update_is_a_checksum_gap_then_a_resync_to_the_truth() {
    // Update 2,000 changes the top of its book (its checksum differs from the pair's
    // previous one), so the next update of that pair cannot verify without it.
    let (h, truth, pair) = run_with_edit(2_000, |_| false);
    assert_gap_then_resync(&h, &truth, &pair);
}

#[test]
fn v1_trade_capture_trades_exact() {
    let records = received("trade/KRAKEN.ws.48.0");
    let mut h = Harness::new(KrakenNormalizer::v1(&[], 10));
    let mut raw_trades = Vec::new();
    for r in &records {
        let v: Value = serde_json::from_slice(&r.payload).unwrap();
        if let Some(a) = v.as_array() {
            for t in a[1].as_array().unwrap() {
                raw_trades.push((a[3].as_str().unwrap().to_string(), t.clone()));
            }
        }
        h.feed(&r.payload, r.ts_ns.unwrap());
    }
    let trades: Vec<_> = h
        .frames
        .iter()
        .filter_map(|f| match &f.body {
            Body::Trade(t) => Some((f, t)),
            _ => None,
        })
        .collect();
    assert_eq!(trades.len(), 10);
    assert_eq!(raw_trades.len(), 10);
    for ((f, t), (pair, raw)) in trades.iter().zip(&raw_trades) {
        assert_eq!(f.instrument, instrument_id(Venue::Kraken, pair));
        assert_eq!(t.price, fx(raw[0].as_str().unwrap()));
        assert_eq!(t.qty, fx(raw[1].as_str().unwrap()));
        let ts = raw[2].as_str().unwrap();
        let (s, us) = ts.split_once('.').unwrap();
        assert_eq!(
            f.ts_exchange,
            s.parse::<u64>().unwrap() * 1_000_000_000 + us.parse::<u64>().unwrap() * 1_000
        );
        let side = if raw[3] == "b" { Side::Buy } else { Side::Sell };
        assert_eq!(t.side, side);
        assert_eq!(t.trade_id, TradeId::None);
    }
    let stats = h.n.stats();
    assert_eq!(stats.errors, 0);
    assert_eq!(stats.get("trade"), 8);
    assert_eq!(stats.get("heartbeat"), 30);
    assert_eq!(stats.get("subscriptionStatus"), 10);
    assert_eq!(stats.get("systemStatus"), 1);
    assert_eq!(stats.messages, 49);
}

#[test]
fn v1_ticker_capture_quotes_exact() {
    let records = received("ticker/KRAKEN.ws.49.0");
    let mut h = Harness::new(KrakenNormalizer::v1(&[], 10));
    let mut raw = Vec::new();
    for r in &records {
        let v: Value = serde_json::from_slice(&r.payload).unwrap();
        if v.is_array() {
            raw.push(v.clone());
        }
        h.feed(&r.payload, r.ts_ns.unwrap());
    }
    let quotes: Vec<_> = h
        .frames
        .iter()
        .filter_map(|f| match &f.body {
            Body::Quote(q) => Some((f, *q)),
            _ => None,
        })
        .collect();
    assert_eq!(quotes.len(), 18);
    for ((f, q), v) in quotes.iter().zip(&raw) {
        assert_eq!(
            f.instrument,
            instrument_id(Venue::Kraken, v[3].as_str().unwrap())
        );
        assert_eq!(q.bid_px, fx(v[1]["b"][0].as_str().unwrap()));
        assert_eq!(q.bid_qty, fx(v[1]["b"][2].as_str().unwrap()));
        assert_eq!(q.ask_px, fx(v[1]["a"][0].as_str().unwrap()));
        assert_eq!(q.ask_qty, fx(v[1]["a"][2].as_str().unwrap()));
    }
    let stats = h.n.stats();
    assert_eq!(stats.errors, 0);
    assert_eq!(stats.get("ticker"), 18);
    assert_eq!(stats.get("heartbeat"), 31);
    assert_eq!(stats.messages, 60);
}

// ---------------------------------------------------------------- v2, documented examples

/// The BTC/USD book of the checksum example in docs.kraken.com "Spot Websockets (v2) Book
/// Checksum" (guides/spot-ws-book-v2), expected checksum 3310070434.
const DOC_BIDS: [(&str, &str); 10] = [
    ("45283.5", "0.10000000"),
    ("45283.4", "1.54582015"),
    ("45282.1", "0.10000000"),
    ("45281.0", "0.10000000"),
    ("45280.3", "1.54592586"),
    ("45279.0", "0.07990000"),
    ("45277.6", "0.03310103"),
    ("45277.5", "0.30000000"),
    ("45277.3", "1.54602737"),
    ("45276.6", "0.15445238"),
];
const DOC_ASKS: [(&str, &str); 10] = [
    ("45285.2", "0.00100000"),
    ("45286.4", "1.54571953"),
    ("45286.6", "1.54571109"),
    ("45289.6", "1.54560911"),
    ("45290.2", "0.15890660"),
    ("45291.8", "1.54553491"),
    ("45294.7", "0.04454749"),
    ("45296.1", "0.35380000"),
    ("45297.5", "0.09945542"),
    ("45299.5", "0.18772827"),
];
const DOC_CHECKSUM: u32 = 3_310_070_434;

/// The doc example as the wire sends it: numbers, trailing zeros dropped (`0.1`, `45281`).
fn doc_snapshot_numbers() -> String {
    let lv = |l: &[(&str, &str)]| {
        l.iter()
            .map(|(p, q)| {
                let trim = |s: &str| {
                    let t = s.trim_end_matches('0');
                    t.trim_end_matches('.').to_string()
                };
                format!("{{\"price\":{},\"qty\":{}}}", trim(p), trim(q))
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        "{{\"channel\":\"book\",\"type\":\"snapshot\",\"data\":[{{\"symbol\":\"BTC/USD\",\"bids\":[{}],\"asks\":[{}],\"checksum\":{DOC_CHECKSUM}}}]}}",
        lv(&DOC_BIDS),
        lv(&DOC_ASKS)
    )
}

/// An `instrument` snapshot giving BTC/USD's precisions (shape of the v2 `instrument` doc
/// page: `data.pairs[].price_precision`, `qty_precision`).
const INSTRUMENT: &str = r#"{"channel":"instrument","type":"snapshot","data":{"assets":[{"id":"BTC","status":"enabled","precision":10,"precision_display":5,"borrowable":true,"collateral_value":1.0,"margin_rate":0.01}],"pairs":[{"symbol":"BTC/USD","base":"BTC","quote":"USD","status":"online","qty_precision":8,"qty_increment":0.00000001,"price_precision":1,"cost_precision":5,"marginable":true,"has_index":true,"cost_min":0.5,"margin_initial":0.2,"position_limit_long":250,"position_limit_short":200,"tick_size":0.1,"price_increment":0.1,"qty_min":0.0001}]}}"#;

fn v2_session() -> Harness {
    let mut h = Harness::new(KrakenNormalizer::v2(&["BTC/USD".to_string()], 10));
    h.feed(INSTRUMENT.as_bytes(), 1);
    // Subscribe ack, v2 `book` doc page.
    h.feed(br#"{"method":"subscribe","result":{"channel":"book","depth":10,"snapshot":true,"symbol":"BTC/USD"},"success":true,"time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z"}"#, 2);
    h
}

/// The checksum of a v2 book held as (price, qty) text at precisions 1 and 8, computed here.
fn v2_checksum(bids: &BTreeMap<i64, i64>, asks: &BTreeMap<i64, i64>) -> u32 {
    let f = |v: i64, dec: u32| (v / 10i64.pow(9 - dec)).to_string();
    let mut s = String::new();
    for (p, q) in asks.iter().take(10) {
        s += &f(*p, 1);
        s += &f(*q, 8);
    }
    for (p, q) in bids.iter().rev().take(10) {
        s += &f(*p, 1);
        s += &f(*q, 8);
    }
    crc32fast::hash(s.as_bytes())
}

#[test]
fn v2_doc_checksum_example_verifies_from_json_numbers() {
    let mut h = v2_session();
    h.feed(doc_snapshot_numbers().as_bytes(), 3);
    let stats = h.n.stats();
    assert_eq!(stats.get("checksum:ok"), 1, "{:?}", stats.by_kind());
    assert_eq!(stats.get("checksum:learned_precision"), 0);
    assert_eq!(h.n.precision("BTC/USD"), Some((1, 8)));
    let book = h.book_of("BTC/USD");
    assert!(book.is_valid());
    assert_eq!(book.best_bid().unwrap().price, fx("45283.5"));
    assert_eq!(book.best_ask().unwrap().qty, fx("0.001"));
    // The same example with the strings of the checksum guide verifies too.
    let mut h2 = v2_session();
    let lv = |l: &[(&str, &str)]| {
        l.iter()
            .map(|(p, q)| json!({"price": p, "qty": q}))
            .collect::<Vec<_>>()
    };
    let msg = json!({"channel":"book","type":"snapshot","data":[{"symbol":"BTC/USD","bids":lv(&DOC_BIDS),"asks":lv(&DOC_ASKS),"checksum":DOC_CHECKSUM}]});
    h2.feed(msg.to_string().as_bytes(), 3);
    assert_eq!(h2.n.stats().get("checksum:ok"), 1);
    // A wrong precision would not verify: without the instrument channel the digits seen in
    // the data stand in (here 1 and 8 as well, the strings carry them).
    let mut h3 = Harness::new(KrakenNormalizer::v2(&[], 10));
    h3.feed(msg.to_string().as_bytes(), 3);
    assert_eq!(h3.n.stats().get("checksum:ok"), 1);
    assert_eq!(h3.n.stats().get("checksum:learned_precision"), 1);
}

#[test]
fn v2_updates_verify_and_a_bad_checksum_resyncs_with_v2_messages() {
    let mut h = v2_session();
    h.feed(doc_snapshot_numbers().as_bytes(), 3);
    let mut bids: BTreeMap<i64, i64> = DOC_BIDS.iter().map(|(p, q)| (fx(p), fx(q))).collect();
    let mut asks: BTreeMap<i64, i64> = DOC_ASKS.iter().map(|(p, q)| (fx(p), fx(q))).collect();
    // An update in the shape of the v2 `book` doc page: a new best bid, an ask removed.
    bids.insert(fx("45284.0"), fx("0.5"));
    asks.remove(&fx("45285.2"));
    // Depth 10: the worst bid falls out.
    let worst = *bids.keys().next().unwrap();
    bids.remove(&worst);
    let c = v2_checksum(&bids, &asks);
    let upd = format!(
        r#"{{"channel":"book","type":"update","data":[{{"symbol":"BTC/USD","bids":[{{"price":45284.0,"qty":0.50000000}}],"asks":[{{"price":45285.2,"qty":0}}],"checksum":{c},"timestamp":"2023-10-06T17:35:55.440295Z"}}]}}"#
    );
    h.feed(upd.as_bytes(), 4);
    assert_eq!(h.n.stats().get("checksum:ok"), 2);
    assert!(h.statuses().is_empty());
    let book = h.book_of("BTC/USD");
    assert_eq!(book.depth(), (10, 9));
    assert_eq!(book.best_bid().unwrap().price, fx("45284.0"));
    let delta_ts = h.frames.last().unwrap().ts_exchange;
    assert_eq!(delta_ts, 1_696_613_755_440_295_000);
    // Same update again with a wrong checksum: Gap, resync over v2, then Resynced.
    let bad = upd.replace(&format!("\"checksum\":{c}"), "\"checksum\":12345");
    h.feed(bad.as_bytes(), 5);
    let st = h.statuses();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].1, StatusCode::Gap);
    assert!(st[0].0 & flags::BAD_BOOK != 0);
    let sent: Vec<Value> = h
        .actions
        .iter()
        .map(|a| match a {
            Action::Send(t) => serde_json::from_str(t).unwrap(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        sent,
        vec![
            json!({"method":"unsubscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":10}}),
            json!({"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":10,"snapshot":true}}),
        ]
    );
    // Updates before the snapshot are dropped, not applied.
    h.feed(upd.as_bytes(), 6);
    assert_eq!(h.n.stats().get("book:skipped_resyncing"), 1);
    h.feed(br#"{"method":"unsubscribe","result":{"channel":"book","depth":10,"symbol":"BTC/USD"},"success":true,"time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z"}"#, 7);
    h.feed(doc_snapshot_numbers().as_bytes(), 8);
    let st = h.statuses();
    assert_eq!(st.len(), 2);
    assert_eq!(st[1].1, StatusCode::Resynced);
    let book = h.book_of("BTC/USD");
    assert!(book.is_valid());
    assert_eq!(book.best_bid().unwrap().price, fx("45283.5"));
    assert_eq!(h.n.stats().gaps, 1);
}

#[test]
fn v2_trades_ticker_and_control_messages() {
    let mut h = v2_session();
    // Shapes of the v2 `trade`, `ticker`, `heartbeat`, `status` and `ping` doc pages.
    h.feed(br#"{"channel":"status","data":[{"api_version":"v2","connection_id":12393906104898154338,"system":"online","version":"2.0.0"}],"type":"update"}"#, 1);
    h.feed(br#"{"channel":"heartbeat"}"#, 2);
    h.feed(br#"{"method":"pong","req_id":101,"time_in":"2023-09-24T14:10:23.799685Z","time_out":"2023-09-24T14:10:23.799703Z"}"#, 3);
    h.feed(br#"{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy","price":45283.5,"qty":0.00100000,"ord_type":"market","trade_id":4665906,"timestamp":"2023-09-25T07:49:37.708706Z"},{"symbol":"BTC/USD","side":"sell","price":45283.4,"qty":1.2,"ord_type":"limit","trade_id":4665907,"timestamp":"2023-09-25T07:49:37.708706Z"}]}"#, 4);
    h.feed(br#"{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy","price":45290,"qty":2e-3,"ord_type":"market","trade_id":4665910,"timestamp":"2023-09-25T07:49:38.000001Z"}]}"#, 5);
    h.feed(br#"{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":45283.4,"bid_qty":1.54582015,"ask":45285.2,"ask_qty":0.001,"last":45285.2,"volume":1254.4632,"vwap":45312.1,"low":45001.0,"high":45609.8,"change":-23.1,"change_pct":-0.05,"timestamp":"2023-09-25T07:49:38.000001Z"}]}"#, 6);
    let trades: Vec<_> = h
        .frames
        .iter()
        .filter_map(|f| match &f.body {
            Body::Trade(t) => Some((f.ts_exchange, t.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(trades.len(), 3);
    assert_eq!(trades[0].1.price, fx("45283.5"));
    assert_eq!(trades[0].1.qty, fx("0.001"));
    assert_eq!(trades[0].1.side, Side::Buy);
    assert_eq!(trades[0].1.trade_id, TradeId::Num(4_665_906));
    assert_eq!(trades[0].0, 1_695_628_177_708_706_000);
    assert_eq!(trades[1].1.side, Side::Sell);
    assert_eq!(trades[2].1.qty, fx("0.002"));
    // Ids 4665908..=4665909 never came: a Gap on the trades stream, the book untouched.
    let st = h.statuses();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].1, StatusCode::Gap);
    assert_eq!(st[0].0 & flags::BAD_BOOK, 0);
    assert!(st[0].2.contains("4665908..=4665909"), "{}", st[0].2);
    let q = h
        .frames
        .iter()
        .find_map(|f| match &f.body {
            Body::Quote(q) => Some(*q),
            _ => None,
        })
        .unwrap();
    assert_eq!((q.bid_px, q.bid_qty), (fx("45283.4"), fx("1.54582015")));
    assert_eq!((q.ask_px, q.ask_qty), (fx("45285.2"), fx("0.001")));
    // A subscribe error is a venue error naming the reason.
    h.out.clear();
    let e = h
        .n
        .on_message(br#"{"error":"Currency pair not supported","method":"subscribe","success":false,"symbol":"BTC/ABC","time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z"}"#, 7, &mut h.out)
        .unwrap_err();
    assert!(e.to_string().contains("Currency pair not supported"), "{e}");
    let stats = h.n.stats();
    for k in [
        "status",
        "heartbeat",
        "pong",
        "ticker",
        "instrument",
        "reply:subscribe",
        "reply:error",
    ] {
        assert_eq!(stats.get(k), 1, "{k}: {:?}", stats.by_kind());
    }
    assert_eq!(stats.get("trade"), 2);
}

#[test]
fn v1_doc_examples_and_control_messages() {
    let mut h = Harness::new(KrakenNormalizer::v1(&["XBT/USD".to_string()], 10));
    // Shapes of docs.kraken.com "Spot WebSocket v1": systemStatus (connectionID above
    // i64::MAX), subscriptionStatus, pong, heartbeat.
    h.feed(br#"{"connectionID":18266369874838577817,"event":"systemStatus","status":"online","version":"1.9.0"}"#, 1);
    h.feed(br#"{"channelID":10001,"channelName":"book-100","event":"subscriptionStatus","pair":"XBT/USD","status":"subscribed","subscription":{"depth":100,"name":"book"}}"#, 2);
    h.feed(br#"{"event":"pong","reqid":42}"#, 3);
    h.feed(br#"{"event":"heartbeat"}"#, 4);
    // A book update before any snapshot cannot be trusted: Gap and a resubscription.
    // (The update is the example of "Spot Websockets (v1) Book Checksum", verbatim.)
    h.feed(br#"[0,{"a":[["0.05120","0.00000500","1582905486.493008"],["0.05275","0.00000500","1582905486.493034"]]},{"b":[["0.04765","0.00000500","1582905486.493008"],["0.04940","0.00000500","1582905486.493034"]],"c":"974947235"},"book-1000","BTC/USD"]"#, 5);
    let st = h.statuses();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].1, StatusCode::Gap);
    assert_eq!(h.actions.len(), 2);
    let e = {
        h.out.clear();
        h.n.on_message(br#"{"channelName":"book-10","errorMessage":"Currency pair not in ISO 4217-A3 format XBTUSD","event":"subscriptionStatus","pair":"XBTUSD","status":"error","subscription":{"depth":10,"name":"book"}}"#, 6, &mut h.out)
            .unwrap_err()
    };
    assert!(e.to_string().contains("ISO 4217-A3"), "{e}");
    let stats = h.n.stats();
    assert_eq!(stats.get("systemStatus"), 1);
    assert_eq!(stats.get("subscriptionStatus"), 2);
    assert_eq!(stats.get("pong"), 1);
    assert_eq!(stats.get("heartbeat"), 1);
}

#[test]
fn connection_statuses_flag_books_and_resync_after_reconnect() {
    let records = received("book_1000/KRAKEN.ws.50.0");
    let mut h = Harness::new(KrakenNormalizer::v1(&["XMR/USD".to_string()], 10));
    h.out.clear();
    h.n.on_connect(1, &mut h.out);
    h.absorb();
    for r in &records[..200] {
        h.feed(&r.payload, r.ts_ns.unwrap());
    }
    assert!(h.book_of("XMR/USD").is_valid());
    h.n.on_stale(2, "no message for 10 s", &mut h.out);
    h.n.on_disconnect(3, "socket closed", &mut h.out);
    h.absorb();
    assert!(!h.book_of("XMR/USD").is_valid());
    // The next connection's snapshots rebuild the books: Resynced for each pair that had one.
    for r in &records[..200] {
        h.feed(&r.payload, r.ts_ns.unwrap());
    }
    let st = h.statuses();
    let codes: Vec<_> = st
        .iter()
        .filter(|s| s.1 != StatusCode::Disconnected && s.1 != StatusCode::Resynced)
        .map(|s| s.1)
        .collect();
    assert_eq!(codes[..2], [StatusCode::Connected, StatusCode::Stale]);
    assert_eq!(
        st.iter()
            .filter(|s| s.1 == StatusCode::Disconnected)
            .count(),
        10
    );
    assert_eq!(
        st.iter().filter(|s| s.1 == StatusCode::Resynced).count(),
        10
    );
    assert!(h.book_of("XMR/USD").is_valid());
    assert_eq!(h.n.stats().errors, 0);
}

#[test]
fn malformed_messages_are_errors_never_frames() {
    let mut n = KrakenNormalizer::v1(&[], 10);
    let mut out = Output::new();
    for bad in [
        &b"[1664,{\"a\":[[\"13.28\""[..],
        b"[1664,{\"a\":[[\"abc\",\"1.0\",\"1618678133.383209\"]],\"c\":\"1\"},\"book-1000\",\"WAVES/EUR\"]",
        b"[993,[[\"354.11\",\"0.8\",\"1618678142.557535\",\"x\",\"l\",\"\"]],\"trade\",\"XMR/USD\"]",
        b"{\"channel\":\"book\",\"type\":\"update\",\"data\":[{\"symbol\":\"BTC/USD\",\"bids\":[{\"price\":-1,\"qty\":1}]}]}",
        b"nonsense",
        b"",
    ] {
        out.clear();
        assert!(n.on_message(bad, 0, &mut out).is_err(), "{}", String::from_utf8_lossy(bad));
        assert!(
            out.frames.iter().all(|f| matches!(f.body, Body::Definition(_) | Body::Status(_))),
            "{:?}",
            out.frames
        );
    }
    assert_eq!(n.stats().errors, 6);
}

fn book_messages() -> Vec<Vec<u8>> {
    received("book_1000/KRAKEN.ws.50.0")
        .into_iter()
        .take(400)
        .map(|r| r.payload)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn no_panic_on_arbitrary_bytes(raw in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut n = KrakenNormalizer::v2(&[], 10);
        let mut out = Output::new();
        let _ = n.on_message(&raw, 0, &mut out);
    }

    #[test]
    fn no_panic_on_mutated_real_and_doc_messages(
        k in 0usize..400,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let msgs = book_messages();
        let docs = [doc_snapshot_numbers().into_bytes(), INSTRUMENT.as_bytes().to_vec()];
        let mut n = KrakenNormalizer::v1(&[], 10);
        let mut out = Output::new();
        // A real prefix, so books exist, then the mutated message.
        for m in msgs.iter().take(30) {
            let _ = n.on_message(m, 0, &mut out);
        }
        let mut raw = if k % 10 == 9 { docs[k % 2].clone() } else { msgs[k].clone() };
        for (at, byte, op) in edits {
            if raw.is_empty() { break; }
            let i = at % raw.len();
            match op {
                0 => raw[i] = byte,
                1 => { raw.remove(i); }
                _ => raw.truncate(i),
            }
        }
        out.clear();
        let _ = n.on_message(&raw, 0, &mut out);
        // Whatever happened, every later real message is still handled without panic.
        for m in msgs.iter().skip(30).take(20) {
            let _ = n.on_message(m, 0, &mut out);
        }
    }
}

#[test]
fn book_side_enum_is_used_for_deltas() {
    // Deltas carry the side they were sent on.
    let mut h = Harness::new(KrakenNormalizer::v1(&[], 10));
    for r in received("book_1000/KRAKEN.ws.50.0").iter().take(40) {
        h.feed(&r.payload, r.ts_ns.unwrap());
    }
    let sides: Vec<BookSide> = h
        .frames
        .iter()
        .filter_map(|f| match &f.body {
            Body::BookDelta(d) => Some(d.side),
            _ => None,
        })
        .collect();
    assert!(sides.contains(&BookSide::Bid) && sides.contains(&BookSide::Ask));
}
