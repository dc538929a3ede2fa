//! The OKX normalizer on the documented example messages (verbatim from
//! <https://www.okx.com/docs-v5/en/>, page named at each), on the rules the capture does not
//! exercise (seqId/prevSeqId, crossed books, reconnects, the resync budget), and on arbitrary
//! and mutated input (proptest).

use proptest::prelude::*;
use tickwire_feed::capture::{CaptureReader, RecordKind};
use tickwire_feed::okx::OkxNormalizer;
use tickwire_feed::okx::normalizer::MAX_RESYNCS_PER_HOUR;
use tickwire_feed::{Action, NormalizeError, Normalizer, Output};
use tickwire_sdk::L2Book;
use tickwire_sdk::wire::{Body, Frame, Level, Quote, Side, StatusCode, TradeId, flags};

const E9: i64 = 1_000_000_000;

/// "WS / Order book channel", Push Data Example: Full Snapshot.
const DOC_BOOKS_SNAPSHOT: &str = r#"{
  "arg": {
    "channel": "books",
    "instId": "BTC-USDT"
  },
  "action": "snapshot",
  "data": [
    {
      "asks": [
        ["8476.98", "415", "0", "13"],
        ["8477", "7", "0", "2"],
        ["8477.34", "85", "0", "1"],
        ["8477.56", "1", "0", "1"],
        ["8505.84", "8", "0", "1"],
        ["8506.37", "85", "0", "1"],
        ["8506.49", "2", "0", "1"],
        ["8506.96", "100", "0", "2"]
      ],
      "bids": [
        ["8476.97", "256", "0", "12"],
        ["8475.55", "101", "0", "1"],
        ["8475.54", "100", "0", "1"],
        ["8475.3", "1", "0", "1"],
        ["8447.32", "6", "0", "1"],
        ["8447.02", "246", "0", "1"],
        ["8446.83", "24", "0", "1"],
        ["8446", "95", "0", "3"]
      ],
      "ts": "1597026383085",
      "checksum": 0,
      "prevSeqId": -1,
      "seqId": 123456
    }
  ]
}"#;

/// "WS / Order book channel", Push Data Example: Incremental Data.
const DOC_BOOKS_UPDATE: &str = r#"{
  "arg": {
    "channel": "books",
    "instId": "BTC-USDT"
  },
  "action": "update",
  "data": [
    {
      "asks": [
        ["8476.98", "415", "0", "13"],
        ["8477", "7", "0", "2"],
        ["8477.34", "85", "0", "1"],
        ["8477.56", "1", "0", "1"],
        ["8505.84", "8", "0", "1"],
        ["8506.37", "85", "0", "1"],
        ["8506.49", "2", "0", "1"],
        ["8506.96", "100", "0", "2"]
      ],
      "bids": [
        ["8476.97", "256", "0", "12"],
        ["8475.55", "101", "0", "1"],
        ["8475.54", "100", "0", "1"],
        ["8475.3", "1", "0", "1"],
        ["8447.32", "6", "0", "1"],
        ["8447.02", "246", "0", "1"],
        ["8446.83", "24", "0", "1"],
        ["8446", "95", "0", "3"]
      ],
      "ts": "1597026383085",
      "checksum": 0,
      "prevSeqId": 123456,
      "seqId": 123457
    }
  ]
}"#;

/// "WS / Order book channel", Push Data Example of bbo-tbt channel.
const DOC_BBO_TBT: &str = r#"{
  "arg": {
    "channel": "bbo-tbt",
    "instId": "BCH-USDT-SWAP"
  },
  "data": [
    {
      "asks": [
        [
          "111.06","55154","0","2"
        ]
      ],
      "bids": [
        [
          "111.05","57745","0","2"
        ]
      ],
      "ts": "1670324386802",
      "seqId": 363996337
    }
  ]
}"#;

/// "WS / Order book channel", Push Data Example of books5 channel.
const DOC_BOOKS5: &str = r#"{
  "arg": {
    "channel": "books5",
    "instId": "BCH-USDT-SWAP"
  },
  "data": [
    {
      "asks": [
        ["111.06","55154","0","2"],
        ["111.07","53276","0","2"],
        ["111.08","72435","0","2"],
        ["111.09","70312","0","2"],
        ["111.1","67272","0","2"]],
      "bids": [
        ["111.05","57745","0","2"],
        ["111.04","57109","0","2"],
        ["111.03","69563","0","2"],
        ["111.02","71248","0","2"],
        ["111.01","65090","0","2"]],
      "instId": "BCH-USDT-SWAP",
      "ts": "1670324386802",
      "seqId": 363996337
    }
  ]
}"#;

/// "WS / Trades channel", Push Data Example.
const DOC_TRADES: &str = r#"{
  "arg": {
    "channel": "trades",
    "instId": "BTC-USDT"
  },
  "data": [
    {
      "instId": "BTC-USDT",
      "tradeId": "130639474",
      "px": "42219.9",
      "sz": "0.12060306",
      "side": "buy",
      "ts": "1630048897897",
      "count": "3",
      "source": "0",
      "seqId": 1234
    }
  ]
}"#;

/// "WS / All trades channel", Push Data Example.
const DOC_TRADES_ALL: &str = r#"{
  "arg": {
    "channel": "trades-all",
    "instId": "BTC-USDT"
  },
  "data": [
    {
      "instId": "BTC-USDT",
      "tradeId": "130639474",
      "px": "42219.9",
      "sz": "0.12060306",
      "side": "buy",
      "source": "0",
      "ts": "1630048897897"
    }
  ]
}"#;

/// "WS / Tickers channel", Push Data Example.
const DOC_TICKERS: &str = r#"{
  "arg": {
    "channel": "tickers",
    "instId": "BTC-USDT"
  },
  "data": [
    {
      "instType": "SPOT",
      "instId": "BTC-USDT",
      "last": "9999.99",
      "lastSz": "0.1",
      "askPx": "9999.99",
      "askSz": "11",
      "bidPx": "8888.88",
      "bidSz": "5",
      "open24h": "9000",
      "high24h": "10000",
      "low24h": "8888.88",
      "volCcy24h": "2222",
      "vol24h": "2222",
      "sodUtc0": "2222",
      "sodUtc8": "2222",
      "ts": "1597026383085"
    }
  ]
}"#;

/// "WS / Order book channel", Response Example (subscribe).
const DOC_SUBSCRIBED: &str = r#"{
  "id": "1512",
  "event": "subscribe",
  "arg": {
    "channel": "books",
    "instId": "BTC-USDT"
  },
  "connId": "a4d3ae55"
}"#;

/// "WS / Order book channel", Failure example.
const DOC_ERROR: &str = r#"{
  "id": "1512",
  "event": "error",
  "code": "60012",
  "msg": "Invalid request: {\"op\": \"subscribe\", \"argss\":[{ \"channel\" : \"books\", \"instId\" : \"BTC-USD-191227\"}]}",
  "connId": "a4d3ae55"
}"#;

/// "WebSocket" / "Unsubscribe", Response Example.
const DOC_UNSUBSCRIBED: &str = r#"{
    "event": "unsubscribe",
    "arg": {
        "channel": "tickers",
        "instId": "BTC-USDT"
    },
    "connId": "d0b44253"
}"#;

/// "WebSocket" / "Notification", Response Example.
const DOC_NOTICE: &str = r#"{
    "event": "notice",
    "code": "64008",
    "msg": "The connection will soon be closed for a service upgrade. Please reconnect.",
    "connId": "a4d3ae55"
}"#;

/// A normalizer with everything it emitted, and the book rebuilt from its frames.
struct Run {
    n: OkxNormalizer,
    out: Output,
    frames: Vec<Frame>,
    actions: Vec<Action>,
    book: L2Book,
}

impl Run {
    fn new() -> Run {
        Run {
            n: OkxNormalizer::new(&["BTC-USDT".to_string()]),
            out: Output::new(),
            frames: Vec::new(),
            actions: Vec::new(),
            book: L2Book::new(),
        }
    }

    fn feed(&mut self, msg: &str) -> Result<(), NormalizeError> {
        self.out.clear();
        let r = self.n.on_message(msg.as_bytes(), 7, &mut self.out);
        for f in &self.out.frames {
            if f.instrument
                == tickwire_sdk::wire::instrument_id(tickwire_sdk::wire::Venue::Okx, "BTC-USDT")
            {
                self.book.apply_owned(f);
            }
        }
        self.frames.append(&mut self.out.frames);
        self.actions.append(&mut self.out.actions);
        r
    }

    fn ok(&mut self, msg: &str) {
        self.feed(msg).unwrap_or_else(|e| panic!("{e}: {msg}"));
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

/// A `books` push for BTC-USDT with the given sides and sequence ids (checksum 0, as sent today).
fn books(
    action: &str,
    bids: &[(&str, &str)],
    asks: &[(&str, &str)],
    prev: i64,
    seq: i64,
) -> String {
    let lv = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(p, q)| format!("[\"{p}\",\"{q}\",\"0\",\"1\"]"))
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        r#"{{"arg":{{"channel":"books","instId":"BTC-USDT"}},"action":"{action}","data":[{{"asks":[{}],"bids":[{}],"ts":"1597026383085","checksum":0,"prevSeqId":{prev},"seqId":{seq}}}]}}"#,
        lv(asks),
        lv(bids)
    )
}

#[test]
fn documented_book_snapshot_and_update_build_the_book() {
    let mut r = Run::new();
    r.ok(DOC_SUBSCRIBED);
    r.ok(DOC_BOOKS_SNAPSHOT);
    r.ok(DOC_BOOKS_UPDATE);
    let stats = r.n.stats();
    assert_eq!(stats.get("event:subscribe"), 1);
    assert_eq!(stats.get("books"), 2);
    // The checksum is deprecated and sent as 0: not checked.
    assert_eq!(stats.get("checksum:zero"), 2);
    assert_eq!(stats.gaps, 0);
    assert!(r.statuses().is_empty());
    assert!(r.book.is_valid());
    assert_eq!(r.book.depth(), (8, 8));
    assert_eq!(
        r.book.best_bid(),
        Some(Level {
            price: 8_476_970_000_000,
            qty: 256 * E9
        })
    );
    assert_eq!(
        r.book.best_ask(),
        Some(Level {
            price: 8_476_980_000_000,
            qty: 415 * E9
        })
    );
    let snap = r
        .frames
        .iter()
        .find(|f| matches!(f.body, Body::BookSnapshot(_)))
        .unwrap();
    assert_eq!(snap.flags, flags::SNAPSHOT | flags::LAST);
    assert_eq!(snap.ts_exchange, 1_597_026_383_085_000_000);
    // The update's 16 levels as deltas, the last one flagged LAST.
    let deltas: Vec<_> = r
        .frames
        .iter()
        .filter(|f| matches!(f.body, Body::BookDelta(_)))
        .collect();
    assert_eq!(deltas.len(), 16);
    assert_eq!(
        deltas.iter().filter(|f| f.flags & flags::LAST != 0).count(),
        1
    );
    assert!(deltas[15].flags & flags::LAST != 0);
    assert_eq!(r.n.book("BTC-USDT").unwrap().depth(), (8, 8));
}

/// The "Sequence ID" section's example: snapshot, normal update, no-update keepalive,
/// sequence reset, normal update: no gap anywhere. Then a broken chain.
#[test]
fn documented_sequence_rules_and_a_broken_chain() {
    let mut r = Run::new();
    r.ok(&books("snapshot", &[("100", "1")], &[("101", "1")], -1, 10));
    r.ok(&books("update", &[("99", "2")], &[], 10, 15));
    r.ok(&books("update", &[], &[], 15, 15));
    r.ok(&books("update", &[], &[("102", "3")], 15, 3));
    r.ok(&books("update", &[("100", "0")], &[], 3, 5));
    assert_eq!(r.n.stats().gaps, 0, "{:?}", r.statuses());
    assert!(r.book.is_valid());
    assert_eq!(r.book.best_bid().unwrap().price, 99 * E9);
    assert_eq!(r.book.depth(), (1, 2));
    assert!(r.actions.is_empty());

    // prevSeqId 7 does not follow seqId 5: updates were missed.
    r.ok(&books("update", &[("98", "1")], &[], 7, 9));
    let st = r.statuses();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].1, StatusCode::Gap);
    assert!(st[0].0 & flags::BAD_BOOK != 0);
    assert!(
        st[0].2.contains("prevSeqId 7") && st[0].2.contains("seqId 5"),
        "{}",
        st[0].2
    );
    assert!(!r.book.is_valid());
    assert!(r.n.book("BTC-USDT").is_none());
    assert_eq!(
        r.actions,
        vec![
            Action::Send(
                r#"{"op":"unsubscribe","args":[{"channel":"books","instId":"BTC-USDT"}]}"#.into()
            ),
            Action::Send(
                r#"{"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"}]}"#.into()
            ),
        ]
    );
    // Updates still in flight are skipped, not applied.
    r.ok(&books("update", &[("97", "1")], &[], 9, 11));
    assert_eq!(r.n.stats().get("books:skipped_while_resyncing"), 1);
    assert_eq!(r.n.stats().gaps, 1);
    // The fresh snapshot after the resubscription rebuilds the book.
    r.ok(DOC_UNSUBSCRIBED);
    r.ok(DOC_SUBSCRIBED);
    r.ok(&books("snapshot", &[("96", "4")], &[("97", "5")], -1, 200));
    let st = r.statuses();
    assert_eq!(st.len(), 2);
    assert_eq!(st[1].1, StatusCode::Resynced);
    assert!(st[1].2.contains("200"));
    assert!(r.book.is_valid());
    assert_eq!(r.book.best_bid().unwrap().price, 96 * E9);
    r.ok(&books("update", &[("96", "5")], &[], 200, 201));
    assert_eq!(r.n.stats().gaps, 1);
    assert_eq!(r.n.stats().get("book:synced"), 2);
}

#[test]
fn a_non_zero_checksum_is_checked() {
    let mut r = Run::new();
    // The docs' checksum example book ("3366.1:7:3366.8:9:3368:8:3372:8" -> 831078360).
    let snap = r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{"asks":[["3366.8","9","10","3"],["3368","8","3","4"],["3372","8","3","4"]],"bids":[["3366.1","7","0","3"]],"ts":"1","checksum":831078360}]}"#;
    r.ok(snap);
    assert_eq!(r.n.stats().get("checksum:ok"), 1);
    // Adding the bid 3366@6 makes it the first example's book minus 3372 on the ask side.
    let upd = r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[["3372","0","0","0"]],"bids":[["3366","6","3","4"]],"ts":"2","checksum":-1881014294}]}"#;
    r.ok(upd);
    assert_eq!(r.n.stats().get("checksum:ok"), 2);
    assert_eq!(r.n.stats().gaps, 0);
    // A wrong one breaks the book.
    let bad = r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[],"bids":[["3365","1","0","1"]],"ts":"3","checksum":-1881014294}]}"#;
    r.ok(bad);
    assert_eq!(r.n.stats().get("checksum:mismatch"), 1);
    let st = r.statuses();
    assert_eq!(st.len(), 1);
    assert!(st[0].2.contains("checksum mismatch"), "{}", st[0].2);
    assert_eq!(r.actions.len(), 2);
    // The delta of the bad update went out flagged BAD_BOOK.
    let last_delta = r
        .frames
        .iter()
        .rev()
        .find(|f| matches!(f.body, Body::BookDelta(_)))
        .unwrap();
    assert_eq!(last_delta.flags, flags::LAST | flags::BAD_BOOK);
}

#[test]
fn crossed_book_is_a_gap_unless_the_venue_snapshot_itself_is_crossed() {
    let mut r = Run::new();
    r.ok(&books("snapshot", &[("100", "1")], &[("101", "1")], -1, 1));
    r.ok(&books("update", &[("101", "1")], &[], 1, 2));
    let st = r.statuses();
    assert_eq!(st.len(), 1);
    assert!(st[0].2.contains("crossed"), "{}", st[0].2);
    assert_eq!(r.n.stats().gaps, 1);
    // Pre-open: OKX's own snapshot is crossed ("best ask price may be lower than the best
    // bid price during the pre-open period"); that is accepted while it stays crossed.
    r.ok(&books("snapshot", &[("102", "1")], &[("101", "1")], -1, 10));
    r.ok(&books("update", &[("103", "1")], &[], 10, 11));
    assert_eq!(r.n.stats().gaps, 1, "{:?}", r.statuses());
    assert!(r.book.is_valid());
    // Once uncrossed, a new crossing is a break again.
    r.ok(&books("update", &[("103", "0"), ("102", "0")], &[], 11, 12));
    r.ok(&books("update", &[("101", "2")], &[], 12, 13));
    assert_eq!(r.n.stats().gaps, 2);
}

#[test]
fn update_before_snapshot_and_unreadable_update_are_gaps() {
    let mut r = Run::new();
    r.ok(&books("update", &[("100", "1")], &[], 1, 2));
    assert_eq!(r.n.stats().gaps, 1);
    assert!(r.statuses()[0].2.contains("before any snapshot"));
    r.ok(&books("snapshot", &[("100", "1")], &[("101", "1")], -1, 5));
    let bad = r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[["x","1","0","1"]],"bids":[],"ts":"1","prevSeqId":5,"seqId":6}]}"#;
    let e = r.feed(bad).unwrap_err();
    assert!(e.to_string().contains("asks"), "{e}");
    assert_eq!(r.n.stats().gaps, 2);
    let st = r.statuses();
    assert_eq!(st.last().unwrap().1, StatusCode::Gap);
    assert!(st.last().unwrap().2.contains("unreadable"));
    // An unreadable snapshot asks for another one.
    let actions = r.actions.len();
    let bad_snap = r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{"asks":[["1","-1","0","1"]],"bids":[],"ts":"1"}]}"#;
    assert!(r.feed(bad_snap).is_err());
    assert_eq!(r.actions.len(), actions + 2);
    assert!(
        r.statuses()
            .last()
            .unwrap()
            .2
            .contains("unreadable books snapshot")
    );
    r.ok(&books("snapshot", &[("100", "1")], &[("101", "1")], -1, 9));
    assert_eq!(r.statuses().last().unwrap().1, StatusCode::Resynced);
}

#[test]
fn documented_bbo_books5_tickers_and_trades() {
    let mut r = Run::new();
    r.ok(DOC_BBO_TBT);
    r.ok(DOC_BOOKS5);
    r.ok(DOC_TICKERS);
    r.ok(DOC_TRADES);
    r.ok(DOC_TRADES_ALL);
    let bodies: Vec<_> = r
        .frames
        .iter()
        .filter(|f| !matches!(f.body, Body::Definition(_)))
        .collect();
    assert_eq!(bodies.len(), 4, "{bodies:?}"); // the trades-all repeat of the same id is a duplicate
    assert_eq!(
        bodies[0].body,
        Body::Quote(Quote {
            bid_px: 111_050_000_000,
            bid_qty: 57_745 * E9,
            ask_px: 111_060_000_000,
            ask_qty: 55_154 * E9
        })
    );
    assert_eq!(bodies[0].ts_exchange, 1_670_324_386_802_000_000);
    let Body::BookSnapshot(s) = &bodies[1].body else {
        panic!()
    };
    assert_eq!(bodies[1].flags, flags::SNAPSHOT | flags::LAST);
    assert_eq!((s.bids.len(), s.asks.len()), (5, 5));
    assert_eq!(s.bids[0].price, 111_050_000_000);
    assert_eq!(
        s.asks[4],
        Level {
            price: 111_100_000_000,
            qty: 67_272 * E9
        }
    );
    assert_eq!(
        bodies[2].body,
        Body::Quote(Quote {
            bid_px: 8_888_880_000_000,
            bid_qty: 5 * E9,
            ask_px: 9_999_990_000_000,
            ask_qty: 11 * E9
        })
    );
    let Body::Trade(t) = &bodies[3].body else {
        panic!()
    };
    assert_eq!(t.price, 42_219_900_000_000);
    assert_eq!(t.qty, 120_603_060);
    assert_eq!(t.side, Side::Buy);
    assert_eq!(t.trade_id, TradeId::Num(130_639_474));
    assert_eq!(bodies[3].ts_exchange, 1_630_048_897_897_000_000);
    let stats = r.n.stats();
    for k in [
        "bbo-tbt",
        "books5",
        "tickers",
        "trades",
        "trades-all",
        "trades:duplicate",
    ] {
        assert_eq!(stats.get(k), 1, "{k}");
    }
    assert_eq!(stats.errors, 0);
}

fn trade(id: u64, count: u64) -> String {
    format!(
        r#"{{"arg":{{"channel":"trades","instId":"BTC-USDT"}},"data":[{{"instId":"BTC-USDT","tradeId":"{id}","px":"1","sz":"1","side":"sell","ts":"1630048897897","count":"{count}"}}]}}"#
    )
}

#[test]
fn aggregated_trade_ids_are_checked_for_holes() {
    let mut r = Run::new();
    r.ok(DOC_TRADES); // ids 130639472..=130639474
    r.ok(&trade(130_639_475, 1));
    r.ok(&trade(130_639_478, 3)); // 476..=478
    assert!(r.statuses().is_empty());
    r.ok(&trade(130_639_482, 2)); // 481..=482: 479 and 480 missing
    let st = r.statuses();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].1, StatusCode::Gap);
    assert_eq!(st[0].0 & flags::BAD_BOOK, 0);
    assert!(st[0].2.contains("130639479..=130639480"), "{}", st[0].2);
    r.ok(&trade(130_639_482, 1)); // repeated on a resubscribe: not emitted twice
    let trades = r
        .frames
        .iter()
        .filter(|f| matches!(f.body, Body::Trade(_)))
        .count();
    assert_eq!(trades, 4);
    assert!(r.feed(&trade(130_639_490, 0)).is_err());
}

#[test]
fn events_pong_and_errors() {
    let mut r = Run::new();
    r.ok("pong");
    r.ok(DOC_UNSUBSCRIBED);
    let e = r.feed(DOC_ERROR).unwrap_err();
    assert!(matches!(e, NormalizeError::Venue(_)));
    assert!(e.to_string().contains("60012"), "{e}");
    assert!(r.actions.is_empty()); // nothing was resyncing
    r.ok(DOC_NOTICE);
    assert!(matches!(&r.actions[..], [Action::Reconnect { reason }] if reason.contains("64008")));
    r.ok(
        r#"{"event":"channel-conn-count","channel":"orders","connCount":"2","connId":"abcd1234"}"#,
    );
    r.ok(r#"{"arg":{"channel":"candle1m","instId":"BTC-USDT"},"data":[["1","2","3","4","5","6","7","8","0"]]}"#);
    let stats = r.n.stats();
    for k in [
        "pong",
        "event:unsubscribe",
        "event:error",
        "event:notice",
        "event:channel-conn-count",
        "ignored:candle1m",
        "error:venue",
    ] {
        assert_eq!(stats.get(k), 1, "{k}");
    }
    assert_eq!(stats.messages, 6);
    assert_eq!(stats.errors, 1);
    assert!(r.feed("{").is_err());
    assert!(r.feed("ping").is_err());
    assert_eq!(r.n.stats().get("error:json"), 2);
}

#[test]
fn tickers_with_an_empty_side_quote_zero() {
    let mut r = Run::new();
    r.ok(r#"{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instType":"SPOT","instId":"BTC-USDT","last":"1","lastSz":"0","askPx":"","askSz":"","bidPx":"8888.88","bidSz":"5","ts":"1597026383085"}]}"#);
    let q = r.frames.iter().find_map(|f| match f.body {
        Body::Quote(q) => Some(q),
        _ => None,
    });
    assert_eq!(
        q,
        Some(Quote {
            bid_px: 8_888_880_000_000,
            bid_qty: 5 * E9,
            ask_px: 0,
            ask_qty: 0
        })
    );
}

#[test]
fn connection_lifecycle_statuses_and_resync_after_reconnect() {
    let mut r = Run::new();
    let mut out = Output::new();
    r.n.on_connect(1, &mut out);
    let connected: Vec<_> = out
        .frames
        .iter()
        .filter(|f| matches!(&f.body, Body::Status(s) if s.code == StatusCode::Connected))
        .collect();
    assert_eq!(connected.len(), 1);
    r.ok(DOC_BOOKS_SNAPSHOT);
    out.clear();
    r.n.on_stale(2, "no data for 10 s", &mut out);
    assert!(matches!(&out.frames[0].body, Body::Status(s) if s.code == StatusCode::Stale));
    out.clear();
    r.n.on_disconnect(3, "closed by peer", &mut out);
    let f = &out.frames[0];
    assert!(matches!(&f.body, Body::Status(s) if s.code == StatusCode::Disconnected));
    assert!(f.flags & flags::BAD_BOOK != 0);
    assert!(r.n.book("BTC-USDT").is_none());
    r.n.on_connect(4, &mut out);
    r.ok(DOC_BOOKS_SNAPSHOT);
    assert_eq!(r.statuses().last().unwrap().1, StatusCode::Resynced);
    assert!(r.n.book("BTC-USDT").is_some());
    // OKX books sync over the WebSocket: a REST snapshot is refused.
    assert!(r.n.on_snapshot("BTC-USDT", b"{}", 5, &mut out).is_err());
}

#[test]
fn too_many_resyncs_on_one_connection_reconnect_instead() {
    let mut r = Run::new();
    for k in 0..=MAX_RESYNCS_PER_HOUR as i64 {
        r.ok(&books(
            "snapshot",
            &[("100", "1")],
            &[("101", "1")],
            -1,
            k * 10,
        ));
        r.ok(&books(
            "update",
            &[("99", "1")],
            &[],
            k * 10 + 1,
            k * 10 + 2,
        ));
    }
    let sends = r
        .actions
        .iter()
        .filter(|a| matches!(a, Action::Send(_)))
        .count();
    assert_eq!(sends, 2 * MAX_RESYNCS_PER_HOUR);
    assert!(matches!(r.actions.last(), Some(Action::Reconnect { .. })));
    // A new connection has a new budget.
    let mut out = Output::new();
    r.n.on_connect(1, &mut out);
    r.ok(&books("snapshot", &[("100", "1")], &[("101", "1")], -1, 5));
    r.ok(&books("update", &[("99", "1")], &[], 1, 2));
    assert!(matches!(r.actions.last(), Some(Action::Send(_))));
}

fn corpus() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = [
        DOC_BOOKS_SNAPSHOT,
        DOC_BOOKS_UPDATE,
        DOC_BBO_TBT,
        DOC_BOOKS5,
        DOC_TRADES,
        DOC_TRADES_ALL,
        DOC_TICKERS,
        DOC_SUBSCRIBED,
        DOC_ERROR,
        DOC_NOTICE,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../replay-data/captures/okx_v5/books_trades_tickers/OKX.ws.1.0"
    );
    let records = CaptureReader::open(path).unwrap().read_all().unwrap();
    v.extend(
        records
            .into_iter()
            .filter(|r| r.kind == RecordKind::Received)
            .step_by(7)
            .map(|r| r.payload),
    );
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut n = OkxNormalizer::new(&[]);
        let mut out = Output::new();
        let _ = n.on_message(&bytes, 1, &mut out);
        prop_assert_eq!(n.stats().messages, 1);
    }

    #[test]
    fn mutated_real_and_documented_messages_never_panic(
        picks in proptest::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..24)
    ) {
        let corpus = corpus();
        let mut n = OkxNormalizer::new(&[]);
        let mut out = Output::new();
        for (msg, pos, byte, how) in picks {
            let mut m = corpus[msg.index(corpus.len())].clone();
            let at = pos.index(m.len().max(1)).min(m.len());
            match how {
                0 if at < m.len() => m[at] = byte,
                1 => m.insert(at, byte),
                2 if at < m.len() => { m.remove(at); }
                _ => m.truncate(at),
            }
            out.clear();
            let _ = n.on_message(&m, 1, &mut out);
            // Whatever happened, every frame names a real instrument and a BAD_BOOK book
            // delta only ever comes with a Gap status after it.
            for f in &out.frames {
                prop_assert!(f.instrument != 0);
            }
            let bad_delta = out.frames.iter().any(|f| {
                matches!(f.body, Body::BookDelta(_)) && f.flags & flags::BAD_BOOK != 0
            });
            let gap = out.frames.iter().any(|f| {
                matches!(&f.body, Body::Status(s) if s.code == StatusCode::Gap)
            });
            prop_assert!(!bad_delta || gap);
        }
    }
}

#[test]
fn a_crossing_confirmed_by_the_checksum_is_the_venues_book() {
    let mut r = Run::new();
    let snap = r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{"asks":[["3366.8","9","0","3"]],"bids":[["3366.1","7","0","3"]],"ts":"1","checksum":0}]}"#;
    r.ok(snap);
    // Bid 3367@1 crosses the ask; the checksum of "3367:1:3366.8:9:3366.1:7" confirms it.
    let sum = crc32fast::hash(b"3367:1:3366.8:9:3366.1:7") as i32;
    let upd = format!(
        r#"{{"arg":{{"channel":"books","instId":"BTC-USDT"}},"action":"update","data":[{{"asks":[],"bids":[["3367","1","0","1"]],"ts":"2","checksum":{sum}}}]}}"#
    );
    r.ok(&upd);
    assert_eq!(r.n.stats().get("checksum:ok"), 1);
    assert_eq!(r.n.stats().gaps, 0, "{:?}", r.statuses());
    assert!(r.book.is_valid());
    assert!(r.book.is_crossed());
}

#[test]
fn a_venue_error_while_resyncing_asks_for_a_new_connection() {
    let mut r = Run::new();
    r.ok(&books("snapshot", &[("100", "1")], &[("101", "1")], -1, 1));
    r.ok(&books("update", &[("99", "1")], &[], 5, 6));
    assert_eq!(r.actions.len(), 2);
    assert!(r.feed(DOC_ERROR).is_err());
    assert!(
        matches!(r.actions.last(), Some(Action::Reconnect { reason }) if reason.contains("60012"))
    );
}

#[test]
fn huge_trade_ids_do_not_overflow() {
    let mut r = Run::new();
    r.ok(&trade(u64::MAX, 1));
    r.ok(&trade(u64::MAX, 1));
    r.ok(&trade(5, 1));
    assert_eq!(r.n.stats().get("trades:duplicate"), 2);
}
