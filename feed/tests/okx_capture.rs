//! The OKX normalizer and `books` builder on the real capture, checked against an independent
//! reconstruction (serde_json over the raw text, price strings as keys, checksums recomputed
//! from those strings), and on altered and removed frames.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;
use tickwire_feed::capture::{CaptureReader, Record, RecordKind};
use tickwire_feed::okx::OkxNormalizer;
use tickwire_feed::{Action, Normalizer, Output};
use tickwire_sdk::L2Book;
use tickwire_sdk::wire::{
    Body, Frame, Side, StatusCode, TradeId, Venue, flags, instrument_id, parse_decimal,
};

const CAPTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../replay-data/captures/okx_v5/books_trades_tickers/OKX.ws.1.0"
);
const SYMBOLS: [&str; 3] = ["BTC-USDT", "UNI-USD-SWAP", "BTC-USD-220527"];

fn received() -> Vec<Record> {
    CaptureReader::open(CAPTURE)
        .unwrap()
        .read_all()
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == RecordKind::Received)
        .collect()
}

fn fixed(text: &str) -> i64 {
    parse_decimal(text.as_bytes()).unwrap().value
}

/// (price text, size text).
type TextLevel = (String, String);

/// One instrument's book by price text as OKX sent it, from raw JSON.
#[derive(Default, Clone)]
struct TruthBook {
    bids: HashMap<String, String>,
    asks: HashMap<String, String>,
}

impl TruthBook {
    fn apply(side: &mut HashMap<String, String>, levels: &Value) {
        for l in levels.as_array().unwrap() {
            let p = l[0].as_str().unwrap().to_string();
            let q = l[1].as_str().unwrap();
            if fixed(q) == 0 {
                side.remove(&p);
            } else {
                side.insert(p, q.to_string());
            }
        }
    }

    fn on_push(&mut self, action: &str, d: &Value) {
        if action == "snapshot" {
            self.bids.clear();
            self.asks.clear();
        }
        Self::apply(&mut self.bids, &d["bids"]);
        Self::apply(&mut self.asks, &d["asks"]);
    }

    /// Levels best first, as (price text, size text).
    fn sorted(&self) -> (Vec<TextLevel>, Vec<TextLevel>) {
        let mut bids: Vec<_> = self.bids.clone().into_iter().collect();
        let mut asks: Vec<_> = self.asks.clone().into_iter().collect();
        bids.sort_by_key(|(p, _)| -fixed(p));
        asks.sort_by_key(|(p, _)| fixed(p));
        (bids, asks)
    }

    /// The documented checksum, from the strings.
    fn checksum(&self) -> i32 {
        let (bids, asks) = self.sorted();
        let mut parts: Vec<&str> = Vec::new();
        for k in 0..25 {
            for side in [&bids, &asks] {
                if let Some((p, q)) = side.get(k) {
                    parts.push(p);
                    parts.push(q);
                }
            }
        }
        crc32fast::hash(parts.join(":").as_bytes()) as i32
    }

    /// A `books` snapshot push of this book, as OKX would send after a subscribe.
    fn snapshot_push(&self, inst: &str) -> Vec<u8> {
        let (bids, asks) = self.sorted();
        let lv = |v: &Vec<TextLevel>| {
            v.iter()
                .map(|(p, q)| serde_json::json!([p, q, "0", "1"]))
                .collect::<Vec<_>>()
        };
        serde_json::to_vec(&serde_json::json!({
            "arg": {"channel": "books", "instId": inst},
            "action": "snapshot",
            "data": [{"asks": lv(&asks), "bids": lv(&bids), "ts": "1652459230000",
                      "checksum": self.checksum()}]
        }))
        .unwrap()
    }

    fn assert_eq_book(&self, book: &L2Book, at: &str) {
        let ours = |it: &mut dyn Iterator<Item = tickwire_sdk::wire::Level>| {
            it.map(|l| (l.price, l.qty)).collect::<BTreeMap<_, _>>()
        };
        let truth = |m: &HashMap<String, String>| {
            m.iter()
                .map(|(p, q)| (fixed(p), fixed(q)))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(
            ours(&mut book.bids()),
            truth(&self.bids),
            "bids differ {at}"
        );
        assert_eq!(
            ours(&mut book.asks()),
            truth(&self.asks),
            "asks differ {at}"
        );
    }
}

/// Feeds a normalizer like the driver would, rebuilding books from its frames, and answers
/// its resubscriptions with a snapshot of the truth when `serve` is set.
struct Harness {
    n: OkxNormalizer,
    out: Output,
    frames: Vec<Frame>,
    actions: Vec<Action>,
    books: HashMap<u32, L2Book>,
    truth: HashMap<String, TruthBook>,
    serve: bool,
}

impl Harness {
    fn new(serve: bool) -> Harness {
        Harness {
            n: OkxNormalizer::new(&[]),
            out: Output::new(),
            frames: Vec::new(),
            actions: Vec::new(),
            books: HashMap::new(),
            truth: HashMap::new(),
            serve,
        }
    }

    /// The venue's side: what it sent, whether we receive it or not.
    fn truth_feed(&mut self, payload: &[u8]) -> Option<Value> {
        let v: Value = serde_json::from_slice(payload).unwrap();
        if v["arg"]["channel"] == "books" && v.get("data").is_some() {
            let inst = v["arg"]["instId"].as_str().unwrap().to_string();
            let t = self.truth.entry(inst).or_default();
            let d = &v["data"][0];
            t.on_push(v["action"].as_str().unwrap(), d);
            // The reconstruction agrees with the venue's own checksum.
            assert_eq!(i64::from(t.checksum()), d["checksum"].as_i64().unwrap());
            return Some(v);
        }
        None
    }

    fn feed(&mut self, payload: &[u8], ts: u64) {
        self.out.clear();
        self.n
            .on_message(payload, ts, &mut self.out)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(payload)));
        self.absorb(ts);
    }

    fn absorb(&mut self, ts: u64) {
        let frames = std::mem::take(&mut self.out.frames);
        let actions = std::mem::take(&mut self.out.actions);
        for f in &frames {
            self.books.entry(f.instrument).or_default().apply_owned(f);
        }
        self.frames.extend(frames);
        for a in actions {
            self.actions.push(a.clone());
            let Action::Send(text) = a else { continue };
            let v: Value = serde_json::from_str(&text).unwrap();
            if self.serve && v["op"] == "subscribe" && v["args"][0]["channel"] == "books" {
                let inst = v["args"][0]["instId"].as_str().unwrap().to_string();
                let snap = self.truth[&inst].snapshot_push(&inst);
                self.feed(&snap, ts);
            }
        }
    }

    fn book_of(&self, inst: &str) -> &L2Book {
        &self.books[&instrument_id(Venue::Okx, inst)]
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
fn capture_is_normalized_books_match_the_reconstruction_and_every_checksum_verifies() {
    let records = received();
    assert_eq!(records.len(), 410);
    let mut h = Harness::new(false);
    let mut raw_trades = Vec::new();
    let mut raw_tickers = Vec::new();
    let mut books_seen = 0;
    for r in &records {
        let pushed = h.truth_feed(&r.payload);
        let v: Value = serde_json::from_slice(&r.payload).unwrap();
        match v["arg"]["channel"].as_str() {
            Some("trades") if v.get("data").is_some() => raw_trades.extend(
                v["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| (d.clone(), r.ts_ns.unwrap())),
            ),
            Some("tickers") if v.get("data").is_some() => raw_tickers.push(v["data"][0].clone()),
            _ => {}
        }
        h.feed(&r.payload, r.ts_ns.unwrap());
        if let Some(v) = pushed {
            books_seen += 1;
            let inst = v["arg"]["instId"].as_str().unwrap();
            // The whole book, after every books message.
            h.truth[inst].assert_eq_book(h.book_of(inst), &format!("after books #{books_seen}"));
            let ours = h.n.book(inst).unwrap();
            assert_eq!(
                ours.depth(),
                (h.truth[inst].bids.len(), h.truth[inst].asks.len())
            );
        }
    }
    assert_eq!(books_seen, 290);

    let stats = h.n.stats();
    assert_eq!(stats.messages, 410);
    assert_eq!(stats.errors, 0, "{stats:?}");
    assert_eq!(stats.gaps, 0);
    assert_eq!(stats.get("books"), 290);
    assert_eq!(stats.get("trades"), 74);
    assert_eq!(stats.get("tickers"), 28);
    assert_eq!(stats.get("event:subscribe"), 18);
    assert_eq!(stats.get("checksum:ok"), 290);
    assert_eq!(stats.get("checksum:mismatch"), 0);
    assert_eq!(stats.get("book:synced"), 3);
    assert_eq!(stats.get("trades:duplicate"), 0);
    // Every message is accounted for by exactly one type.
    assert_eq!(290 + 74 + 28 + 18, stats.messages);
    assert!(h.statuses().is_empty(), "{:?}", h.statuses());
    assert!(h.actions.is_empty(), "{:?}", h.actions);

    // Trades exact, in order.
    let trades: Vec<_> = h
        .frames
        .iter()
        .filter_map(|f| match &f.body {
            Body::Trade(t) => Some((f, t)),
            _ => None,
        })
        .collect();
    assert_eq!(trades.len(), 74);
    assert_eq!(raw_trades.len(), 74);
    for ((f, t), (raw, ts_recv)) in trades.iter().zip(&raw_trades) {
        assert_eq!(
            f.instrument,
            instrument_id(Venue::Okx, raw["instId"].as_str().unwrap())
        );
        assert_eq!(t.price, fixed(raw["px"].as_str().unwrap()));
        assert_eq!(t.qty, fixed(raw["sz"].as_str().unwrap()));
        let id: u64 = raw["tradeId"].as_str().unwrap().parse().unwrap();
        assert_eq!(t.trade_id, TradeId::Num(id));
        let side = if raw["side"] == "buy" {
            Side::Buy
        } else {
            Side::Sell
        };
        assert_eq!(t.side, side);
        let ms: u64 = raw["ts"].as_str().unwrap().parse().unwrap();
        assert_eq!(f.ts_exchange, ms * 1_000_000);
        assert_eq!(f.ts_recv, *ts_recv);
    }
    // Quotes from tickers, exact.
    let quotes: Vec<_> = h
        .frames
        .iter()
        .filter_map(|f| match &f.body {
            Body::Quote(q) => Some(q),
            _ => None,
        })
        .collect();
    assert_eq!(quotes.len(), 28);
    for (q, raw) in quotes.iter().zip(&raw_tickers) {
        assert_eq!(q.bid_px, fixed(raw["bidPx"].as_str().unwrap()));
        assert_eq!(q.bid_qty, fixed(raw["bidSz"].as_str().unwrap()));
        assert_eq!(q.ask_px, fixed(raw["askPx"].as_str().unwrap()));
        assert_eq!(q.ask_qty, fixed(raw["askSz"].as_str().unwrap()));
    }
    // One snapshot per instrument, then deltas; every book valid at the end.
    let snapshots = h
        .frames
        .iter()
        .filter(|f| matches!(f.body, Body::BookSnapshot(_)))
        .count();
    assert_eq!(snapshots, 3);
    for inst in SYMBOLS {
        assert!(h.book_of(inst).is_valid(), "{inst}");
        h.truth[inst].assert_eq_book(h.book_of(inst), &format!("{inst} at the end"));
    }
    // Each update's deltas end with exactly one LAST.
    let deltas_last = h
        .frames
        .iter()
        .filter(|f| matches!(f.body, Body::BookDelta(_)) && f.flags & flags::LAST != 0)
        .count();
    let nonempty_updates = records
        .iter()
        .filter(|r| {
            let v: Value = serde_json::from_slice(&r.payload).unwrap();
            v["action"] == "update"
                && (!v["data"][0]["bids"].as_array().unwrap().is_empty()
                    || !v["data"][0]["asks"].as_array().unwrap().is_empty())
        })
        .count();
    assert_eq!(deltas_last, nonempty_updates);
    assert!(h.frames.iter().all(|f| f.flags & flags::BAD_BOOK == 0));
}

/// Runs the capture with one books update for `inst` changed by `alter` (None: removed),
/// serving resubscriptions from the truth. Returns the harness and the altered message.
fn run_with_altered_update(
    inst: &str,
    nth: usize,
    alter: Option<&dyn Fn(&mut Value)>,
) -> (Harness, Value) {
    let mut h = Harness::new(true);
    let mut seen = 0;
    let mut altered = None;
    for r in received() {
        let pushed = h.truth_feed(&r.payload);
        if let Some(v) = pushed
            && v["action"] == "update"
            && v["arg"]["instId"] == inst
        {
            seen += 1;
            if seen == nth {
                altered = Some(v.clone());
                match alter {
                    None => continue, // sent by the venue, never received
                    Some(f) => {
                        let mut v = v;
                        f(&mut v);
                        h.feed(&serde_json::to_vec(&v).unwrap(), r.ts_ns.unwrap());
                        continue;
                    }
                }
            }
        }
        h.feed(&r.payload, r.ts_ns.unwrap());
    }
    (h, altered.unwrap())
}

fn assert_one_gap_then_resynced(h: &Harness, inst: &str, gap_mentions: &str) {
    let statuses = h.statuses();
    assert_eq!(statuses.len(), 2, "{statuses:?}");
    assert_eq!(statuses[0].1, StatusCode::Gap);
    assert!(statuses[0].0 & flags::BAD_BOOK != 0);
    assert!(statuses[0].2.contains(gap_mentions), "{}", statuses[0].2);
    assert_eq!(statuses[1].1, StatusCode::Resynced);
    // The resync: unsubscribe then subscribe `books` for that instrument only.
    let sends: Vec<Value> = h
        .actions
        .iter()
        .map(|a| match a {
            Action::Send(t) => serde_json::from_str(t).unwrap(),
            other => panic!("unexpected action {other:?}"),
        })
        .collect();
    assert_eq!(
        sends,
        vec![
            serde_json::json!({"op": "unsubscribe", "args": [{"channel": "books", "instId": inst}]}),
            serde_json::json!({"op": "subscribe", "args": [{"channel": "books", "instId": inst}]}),
        ]
    );
    assert_eq!(h.n.stats().gaps, 1);
    assert_eq!(h.n.stats().get("book:synced"), 4);
    assert_eq!(h.n.stats().errors, 0);
    for i in SYMBOLS {
        assert!(h.book_of(i).is_valid(), "{i}");
        h.truth[i].assert_eq_book(h.book_of(i), &format!("{i} after the resync, at the end"));
    }
}

#[test]
fn altered_size_is_a_checksum_gap_then_resync_to_the_truth() {
    let bump = |v: &mut Value| {
        let side = if v["data"][0]["bids"].as_array().unwrap().is_empty() {
            "asks"
        } else {
            "bids"
        };
        let level = &mut v["data"][0][side][0];
        let q = level[1].as_str().unwrap().to_string();
        // A different, still valid size at the same price.
        level[1] = Value::String(if q == "0" {
            "7".into()
        } else {
            format!("{q}1")
        });
    };
    let (h, _) = run_with_altered_update("BTC-USDT", 20, Some(&bump));
    assert_one_gap_then_resynced(&h, "BTC-USDT", "checksum mismatch");
    assert_eq!(h.n.stats().get("checksum:mismatch"), 1);
    // The altered update's deltas were emitted flagged BAD_BOOK, before the Gap.
    let bad: Vec<_> = h
        .frames
        .iter()
        .filter(|f| f.flags & flags::BAD_BOOK != 0)
        .collect();
    assert!(bad.len() >= 2);
    assert!(matches!(bad.last().unwrap().body, Body::Status(_)));
}

#[test]
fn altered_price_is_a_checksum_gap_then_resync_to_the_truth() {
    let shift = |v: &mut Value| {
        let side = if v["data"][0]["asks"].as_array().unwrap().is_empty() {
            "bids"
        } else {
            "asks"
        };
        let level = &mut v["data"][0][side][0];
        let p = level[0].as_str().unwrap().to_string();
        level[0] = Value::String(format!("{p}9"));
    };
    let (h, _) = run_with_altered_update("UNI-USD-SWAP", 10, Some(&shift));
    assert_one_gap_then_resynced(&h, "UNI-USD-SWAP", "checksum mismatch");
}

#[test]
fn removed_update_is_a_gap_then_resync_to_the_truth() {
    // These frames predate seqId: the next checksum shows the loss.
    let (h, removed) = run_with_altered_update("BTC-USD-220527", 5, None);
    assert!(
        removed["data"][0]["bids"].as_array().unwrap().len()
            + removed["data"][0]["asks"].as_array().unwrap().len()
            > 0
    );
    assert_one_gap_then_resynced(&h, "BTC-USD-220527", "checksum mismatch");
}

#[test]
fn removed_update_with_seq_ids_is_a_sequence_gap() {
    // The same capture with seqId/prevSeqId added as OKX sends them today: a removed update
    // breaks the prevSeqId chain, which is reported before any checksum.
    let mut h = Harness::new(true);
    let mut seq: HashMap<String, i64> = HashMap::new();
    let mut seen = 0;
    for r in received() {
        let mut v: Value = serde_json::from_slice(&r.payload).unwrap();
        if v["arg"]["channel"] == "books" && v.get("data").is_some() {
            let inst = v["arg"]["instId"].as_str().unwrap().to_string();
            let prev = if v["action"] == "snapshot" {
                -1
            } else {
                seq[&inst]
            };
            let next = seq.get(&inst).copied().unwrap_or(1_000) + 7;
            seq.insert(inst.clone(), next);
            v["data"][0]["prevSeqId"] = prev.into();
            v["data"][0]["seqId"] = next.into();
            let raw = serde_json::to_vec(&v).unwrap();
            h.truth_feed(&raw);
            if v["action"] == "update" && inst == "BTC-USDT" {
                seen += 1;
                if seen == 30 {
                    continue;
                }
            }
            h.feed(&raw, r.ts_ns.unwrap());
        } else {
            h.feed(&r.payload, r.ts_ns.unwrap());
        }
    }
    assert_one_gap_then_resynced(&h, "BTC-USDT", "prevSeqId");
    assert_eq!(h.n.stats().get("checksum:mismatch"), 0);
}

#[test]
fn truncated_and_garbled_messages_are_errors_not_panics_and_the_rest_still_matches() {
    let mut h = Harness::new(false);
    let mut bad = 0;
    for (k, r) in received().iter().enumerate() {
        if k % 50 == 25 {
            let cut = &r.payload[..r.payload.len() / 2];
            h.out.clear();
            assert!(h.n.on_message(cut, 0, &mut h.out).is_err());
            let wrong = br#"{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"1","px":"abc","sz":"1","side":"buy","ts":"1"}]}"#;
            assert!(h.n.on_message(wrong, 0, &mut h.out).is_err());
            assert!(
                h.out
                    .frames
                    .iter()
                    .all(|f| matches!(f.body, Body::Definition(_)))
            );
            bad += 2;
        }
        h.truth_feed(&r.payload);
        h.feed(&r.payload, r.ts_ns.unwrap());
    }
    let stats = h.n.stats();
    assert_eq!(stats.errors, bad);
    assert_eq!(stats.gaps, 0);
    for i in SYMBOLS {
        h.truth[i].assert_eq_book(h.book_of(i), i);
    }
}
