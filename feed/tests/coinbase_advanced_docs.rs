//! The Coinbase Advanced Trade normalizer on the documented example messages (there is no
//! capture): every channel, the sequence_num rule, crossed books, errors, and no panic on
//! arbitrary or mutated input.
//!
//! Examples are from docs.cdp.coinbase.com/coinbase-app/advanced-trade-apis/websocket/
//! websocket-channels (each test names its section). Their `sequence_num` is 0; where a test
//! needs a run of messages the number is set per message, nothing else is changed.

use proptest::prelude::*;
use tickwire_feed::coinbase_advanced::CoinbaseAdvancedNormalizer;
use tickwire_feed::{Action, NormalizeError, Normalizer, Output};
use tickwire_sdk::L2Book;
use tickwire_sdk::wire::{Body, BookSide, Frame, Side, StatusCode, TradeId, flags};

/// "Level2 Channel" example.
const DOC_L2: &str = r#"{
  "channel": "l2_data",
  "client_id": "",
  "timestamp": "2023-02-09T20:32:50.714964855Z",
  "sequence_num": 0,
  "events": [
    {
      "type": "snapshot",
      "product_id": "BTC-USD",
      "updates": [
        {
          "side": "bid",
          "event_time": "1970-01-01T00:00:00Z",
          "price_level": "21921.73",
          "new_quantity": "0.06317902"
        },
        {
          "side": "bid",
          "event_time": "1970-01-01T00:00:00Z",
          "price_level": "21921.3",
          "new_quantity": "0.02"
        }
      ]
    }
  ]
}"#;

/// "Market Trades Channel" example.
const DOC_TRADES: &str = r#"{
  "channel": "market_trades",
  "client_id": "",
  "timestamp": "2023-02-09T20:19:35.39625135Z",
  "sequence_num": 0,
  "events": [
    {
      "type": "snapshot",
      "trades": [
        {
          "trade_id": "000000000",
          "product_id": "ETH-USD",
          "price": "1260.01",
          "size": "0.3",
          "side": "BUY",
          "time": "2019-08-14T20:42:27.265Z"
        }
      ]
    }
  ]
}"#;

/// "Ticker Channel" example.
const DOC_TICKER: &str = r#"{
  "channel": "ticker",
  "client_id": "",
  "timestamp": "2023-02-09T20:30:37.167359596Z",
  "sequence_num": 0,
  "events": [
    {
      "type": "snapshot",
      "tickers": [
        {
          "type": "ticker",
          "product_id": "BTC-USD",
          "price": "21932.98",
          "volume_24_h": "16038.28770938",
          "low_24_h": "21835.29",
          "high_24_h": "23011.18",
          "low_52_w": "15460",
          "high_52_w": "48240",
          "price_percent_chg_24_h": "-4.15775596190603",
          "best_bid": "21931.98",
          "best_bid_quantity": "8000.21",
          "best_ask": "21933.98",
          "best_ask_quantity": "8038.07770938"
        }
      ]
    }
  ]
}"#;

/// "Ticker Batch Channel" example (production omits best bid/ask, per the AsyncAPI spec).
const DOC_TICKER_BATCH: &str = r#"{
  "channel": "ticker_batch",
  "client_id": "",
  "timestamp": "2023-06-09T20:19:35.39625135Z",
  "sequence_num": 0,
  "events": [
    {
      "type": "snapshot",
      "tickers": [
        {
          "type": "ticker",
          "product_id": "BTC-USD",
          "price": "21932.98",
          "volume_24_h": "16038.28770938",
          "low_24_h": "21835.29",
          "high_24_h": "23011.18",
          "low_52_w": "15460",
          "high_52_w": "48240",
          "price_percent_chg_24_h": "-4.15775596190603"
        }
      ]
    }
  ]
}"#;

/// "Heartbeats Channel" example.
const DOC_HEARTBEAT: &str = r#"{
  "channel": "heartbeats",
  "client_id": "",
  "timestamp": "2023-06-23T20:31:26.122969572Z",
  "sequence_num": 0,
  "events": [
    {
      "current_time": "2023-06-23 20:31:56.121961769 +0000 UTC m=+91717.525857105",
      "heartbeat_counter": "3049"
    }
  ]
}"#;

/// The subscriptions acknowledgement (shape as the docs' "subscriptions" message).
const DOC_SUBSCRIPTIONS: &str = r#"{
  "channel": "subscriptions",
  "client_id": "",
  "timestamp": "2023-02-09T20:32:50.714964855Z",
  "sequence_num": 1,
  "events": [
    {
      "subscriptions": {
        "level2": ["BTC-USD"],
        "market_trades": ["BTC-USD", "ETH-USD"]
      }
    }
  ]
}"#;

fn with_seq(msg: &str, seq: u64) -> String {
    let mut v: serde_json::Value = serde_json::from_str(msg).unwrap();
    v["sequence_num"] = seq.into();
    v.to_string()
}

fn run(n: &mut CoinbaseAdvancedNormalizer, msg: &str) -> (Vec<Frame>, Vec<Action>) {
    let mut out = Output::new();
    n.on_message(msg.as_bytes(), 7, &mut out)
        .unwrap_or_else(|e| panic!("{e}: {msg}"));
    (out.frames, out.actions)
}

fn update(seq: u64, side: &str, price: &str, qty: &str) -> String {
    format!(
        r#"{{"channel":"l2_data","client_id":"","timestamp":"2023-02-09T20:32:51Z","sequence_num":{seq},"events":[{{"type":"update","product_id":"BTC-USD","updates":[{{"side":"{side}","event_time":"2023-02-09T20:32:50.714964855Z","price_level":"{price}","new_quantity":"{qty}"}}]}}]}}"#
    )
}

fn statuses(frames: &[Frame]) -> Vec<(u8, StatusCode, String)> {
    frames
        .iter()
        .filter_map(|f| match &f.body {
            Body::Status(s) => Some((f.flags, s.code, s.detail.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn doc_level2_snapshot_then_updates_build_the_book() {
    let mut n = CoinbaseAdvancedNormalizer::new(&["BTC-USD".into()]);
    let mut book = L2Book::new();
    let (f, _) = run(&mut n, DOC_L2);
    f.iter().for_each(|f| {
        book.apply_owned(f);
    });
    let snap = f
        .iter()
        .find(|f| matches!(f.body, Body::BookSnapshot(_)))
        .unwrap();
    assert_eq!(snap.flags, flags::SNAPSHOT | flags::LAST);
    assert_eq!(snap.ts_exchange, 1_675_974_770_714_964_855);
    assert!(book.is_valid());
    assert_eq!(book.best_bid().unwrap().price, 21_921_730_000_000);
    assert_eq!(book.depth(), (2, 0));
    // An offer, then the best bid removed ("0"): deltas with the update's event_time.
    let (f, _) = run(&mut n, &update(1, "offer", "21922.5", "1.5"));
    f.iter().for_each(|f| {
        book.apply_owned(f);
    });
    let d = f
        .iter()
        .find(|f| matches!(f.body, Body::BookDelta(_)))
        .unwrap();
    assert_eq!(d.flags, flags::LAST);
    assert_eq!(d.ts_exchange, 1_675_974_770_714_964_855);
    assert!(
        matches!(d.body, Body::BookDelta(x) if x.side == BookSide::Ask && x.qty == 1_500_000_000)
    );
    let (f, _) = run(&mut n, &update(2, "bid", "21921.73", "0"));
    f.iter().for_each(|f| {
        book.apply_owned(f);
    });
    assert_eq!(book.best_bid().unwrap().price, 21_921_300_000_000);
    assert_eq!(book.depth(), (1, 1));
    let ours = n.book("BTC-USD").unwrap();
    assert_eq!(
        ours.bids().collect::<Vec<_>>(),
        book.bids().collect::<Vec<_>>()
    );
    assert_eq!(
        ours.asks().collect::<Vec<_>>(),
        book.asks().collect::<Vec<_>>()
    );
    assert_eq!(n.stats().get("l2_data"), 3);
    assert_eq!(n.stats().get("book:synced"), 1);
    assert_eq!(n.stats().errors, 0);
}

#[test]
fn sequence_hole_gaps_every_book_resubscribes_then_resyncs() {
    let mut n = CoinbaseAdvancedNormalizer::new(&["BTC-USD".into(), "ETH-USD".into()]);
    run(&mut n, DOC_L2);
    run(&mut n, &update(1, "offer", "21922.5", "1.5"));
    // sequence_num 2 and 3 never arrive.
    let (f, a) = run(&mut n, &update(4, "offer", "21923", "1"));
    let st = statuses(&f);
    assert_eq!(st.len(), 2, "{st:?}"); // every instrument
    assert!(
        st.iter()
            .all(|s| s.1 == StatusCode::Gap && s.2.contains("2..=3"))
    );
    assert!(st[0].0 & flags::BAD_BOOK != 0, "BTC-USD has a book");
    assert_eq!(st[1].0 & flags::BAD_BOOK, 0, "ETH-USD has none");
    assert_eq!(
        a,
        [
            Action::Send(
                r#"{"type":"unsubscribe","product_ids":["BTC-USD"],"channel":"level2"}"#.into()
            ),
            Action::Send(
                r#"{"type":"subscribe","product_ids":["BTC-USD"],"channel":"level2"}"#.into()
            ),
        ]
    );
    // The update that revealed the hole is not applied; later ones neither, until the snapshot.
    assert!(!f.iter().any(|f| matches!(f.body, Body::BookDelta(_))));
    assert!(n.book("BTC-USD").is_none());
    run(&mut n, &update(5, "bid", "21900", "1"));
    assert_eq!(n.stats().get("l2_data:dropped_resyncing"), 2);
    // A late or repeated number is ignored.
    let (f, _) = run(&mut n, &update(3, "bid", "1", "1"));
    assert!(f.is_empty());
    assert_eq!(n.stats().get("ignored:old_sequence"), 1);
    // The fresh snapshot: Resynced, book good.
    let (f, _) = run(&mut n, &with_seq(DOC_L2, 6));
    let st = statuses(&f);
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].1, StatusCode::Resynced);
    let mut book = L2Book::new();
    f.iter().for_each(|f| {
        book.apply_owned(f);
    });
    assert!(book.is_valid());
    assert_eq!(book.depth(), (2, 0));
    assert_eq!(n.stats().gaps, 1);
}

#[test]
fn crossed_update_gaps_that_book_only() {
    let mut n = CoinbaseAdvancedNormalizer::new(&[]);
    run(&mut n, DOC_L2);
    run(&mut n, &update(1, "offer", "21922.5", "1.5"));
    let (f, a) = run(&mut n, &update(2, "bid", "21930", "1"));
    let delta = f
        .iter()
        .find(|f| matches!(f.body, Body::BookDelta(_)))
        .unwrap();
    assert!(delta.flags & flags::BAD_BOOK != 0);
    let st = statuses(&f);
    assert_eq!(st.len(), 1);
    assert!(st[0].2.contains("crossed"), "{}", st[0].2);
    assert_eq!(a.len(), 2);
    assert!(n.book("BTC-USD").is_none());
}

#[test]
fn doc_market_trades_snapshot_skipped_updates_emitted() {
    let mut n = CoinbaseAdvancedNormalizer::new(&[]);
    let (f, _) = run(&mut n, DOC_TRADES);
    assert!(f.is_empty(), "the snapshot is history: {f:?}");
    assert_eq!(n.stats().get("market_trades:snapshot_skipped"), 1);
    let live = with_seq(&DOC_TRADES.replace("\"snapshot\"", "\"update\""), 1);
    let (f, _) = run(&mut n, &live);
    let (ts, t) = f
        .iter()
        .find_map(|f| match &f.body {
            Body::Trade(t) => Some((f.ts_exchange, t.clone())),
            _ => None,
        })
        .unwrap();
    assert_eq!((t.price, t.qty), (1_260_010_000_000, 300_000_000));
    assert_eq!(t.trade_id, TradeId::Num(0));
    assert_eq!(
        t.side,
        Side::Sell,
        "side is the maker's: a BUY maker was hit by a seller"
    );
    assert_eq!(ts, 1_565_815_347_265_000_000);
}

#[test]
fn doc_ticker_quote_and_ticker_batch_without_bbo() {
    let mut n = CoinbaseAdvancedNormalizer::new(&[]);
    let (f, _) = run(&mut n, DOC_TICKER);
    let (ts, q) = f
        .iter()
        .find_map(|f| match &f.body {
            Body::Quote(q) => Some((f.ts_exchange, *q)),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        (q.bid_px, q.bid_qty),
        (21_931_980_000_000, 8_000_210_000_000)
    );
    assert_eq!(
        (q.ask_px, q.ask_qty),
        (21_933_980_000_000, 8_038_077_709_380)
    );
    assert_eq!(ts, 1_675_974_637_167_359_596);
    let mut n = CoinbaseAdvancedNormalizer::new(&[]);
    let (f, _) = run(&mut n, DOC_TICKER_BATCH);
    assert!(f.is_empty());
    assert_eq!(n.stats().get("ticker_batch"), 1);
    assert_eq!(n.stats().get("ticker_batch:no_best_bid_ask"), 1);
}

#[test]
fn doc_heartbeats_subscriptions_errors_and_other_channels() {
    let mut n = CoinbaseAdvancedNormalizer::new(&[]);
    let (f, _) = run(&mut n, DOC_HEARTBEAT);
    assert!(f.is_empty());
    run(&mut n, DOC_SUBSCRIPTIONS);
    assert_eq!(n.stats().get("heartbeats"), 1);
    assert_eq!(n.stats().get("subscriptions"), 1);
    run(
        &mut n,
        r#"{"channel":"candles","client_id":"","timestamp":"2023-06-09T20:19:35.39625135Z","sequence_num":2,"events":[]}"#,
    );
    assert_eq!(n.stats().get("ignored:candles"), 1);
    let mut out = Output::new();
    let e = n
        .on_message(
            br#"{"type":"error","message":"failure to subscribe"}"#,
            0,
            &mut out,
        )
        .unwrap_err();
    assert_eq!(e, NormalizeError::Venue("failure to subscribe".into()));
    let e = n
        .on_message(br#"{"channel":"l2_data","sequence_num":3,"events":[{"type":"update","product_id":"BTC-USD","updates":[{"side":"middle","price_level":"1","new_quantity":"1"}]}]}"#, 0, &mut out)
        .unwrap_err();
    assert!(e.to_string().contains("side"), "{e}");
    assert_eq!(n.stats().errors, 2);
    assert!(n.on_snapshot("BTC-USD", b"{}", 0, &mut out).is_err());
}

#[test]
fn disconnect_restarts_the_sequence_and_flags_books() {
    let mut n = CoinbaseAdvancedNormalizer::new(&["BTC-USD".into()]);
    run(&mut n, &with_seq(DOC_L2, 10));
    let mut out = Output::new();
    n.on_disconnect(1, "read failed", &mut out);
    assert!(out.frames.iter().any(
        |f| matches!(&f.body, Body::Status(s) if s.code == StatusCode::Disconnected)
            && f.flags & flags::BAD_BOOK != 0
    ));
    out.clear();
    n.on_connect(2, &mut out);
    n.on_stale(3, "quiet", &mut out);
    // A new connection starts at 0 again: no gap; the snapshot reports Resynced.
    let (f, a) = run(&mut n, DOC_L2);
    assert!(a.is_empty());
    assert!(statuses(&f).iter().any(|s| s.1 == StatusCode::Resynced));
    assert_eq!(n.stats().gaps, 0);
}

fn samples() -> Vec<String> {
    vec![
        DOC_L2.into(),
        with_seq(DOC_TRADES, 1).replace("\"snapshot\"", "\"update\""),
        with_seq(DOC_TICKER, 2),
        with_seq(DOC_TICKER_BATCH, 3),
        with_seq(DOC_HEARTBEAT, 4),
        DOC_SUBSCRIPTIONS.replace("\"sequence_num\": 1", "\"sequence_num\": 5"),
        update(6, "offer", "21922.5", "1.5"),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn no_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut n = CoinbaseAdvancedNormalizer::new(&["BTC-USD".into()]);
        let mut out = Output::new();
        let _ = n.on_message(&bytes, 0, &mut out);
    }

    #[test]
    fn no_panic_on_mutated_doc_messages(
        which in 0usize..7,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
    ) {
        let samples = samples();
        let mut n = CoinbaseAdvancedNormalizer::new(&[]);
        let mut out = Output::new();
        for s in &samples {
            let _ = n.on_message(s.as_bytes(), 0, &mut out);
        }
        let mut msg = samples[which].clone().into_bytes();
        for (at, byte) in edits {
            let i = at % msg.len();
            msg[i] = byte;
        }
        let _ = n.on_message(&msg, 0, &mut out);
    }
}

// ---- The exact-layout fast path against the tape path ----------------------------------

/// `msg` without the whitespace outside strings (the docs pretty-print; the venue does not).
fn compact(msg: &str) -> String {
    let mut out = String::new();
    let mut in_str = false;
    let mut escaped = false;
    for ch in msg.chars() {
        if in_str {
            out.push(ch);
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                in_str = false;
            }
        } else if !ch.is_whitespace() {
            if ch == '"' {
                in_str = true;
            }
            out.push(ch);
        }
    }
    out
}

fn envelope(channel: &str, seq: u64, events: &str) -> String {
    format!(
        r#"{{"channel":"{channel}","client_id":"","timestamp":"2023-02-09T20:32:51.5Z","sequence_num":{seq},"events":[{events}]}}"#
    )
}

fn l2_event(updates: &[(&str, &str, &str)]) -> String {
    let ups: Vec<String> = updates
        .iter()
        .map(|(side, p, q)| {
            format!(
                r#"{{"side":"{side}","event_time":"2023-02-09T20:32:50.714964855Z","price_level":"{p}","new_quantity":"{q}"}}"#
            )
        })
        .collect();
    format!(
        r#"{{"type":"update","product_id":"BTC-USD","updates":[{}]}}"#,
        ups.join(",")
    )
}

fn trade(id: &str, side: &str, price: &str, size: &str) -> String {
    format!(
        r#"{{"trade_id":"{id}","product_id":"ETH-USD","price":"{price}","size":"{size}","side":"{side}","time":"2019-08-14T20:42:27.265Z"}}"#
    )
}

/// A compact run in the venue's layouts: snapshot, updates (one crossing), trades (several
/// per event, numeric and text ids, unknown side), tickers, a sequence hole and an old
/// sequence number.
fn fast_layout_messages() -> Vec<String> {
    let doc_l2 = compact(DOC_L2);
    let ticker = compact(DOC_TICKER).replace("\"sequence_num\":0", "\"sequence_num\":7");
    let v = vec![
        doc_l2,
        envelope("l2_data", 1, &l2_event(&[("bid", "21921.80", "1.5")])),
        envelope(
            "l2_data",
            2,
            &l2_event(&[("offer", "21922.5", "0.25"), ("bid", "21921.3", "0")]),
        ),
        envelope("l2_data", 3, &l2_event(&[])),
        envelope(
            "market_trades",
            4,
            &format!(
                r#"{{"type":"update","trades":[{},{},{}]}}"#,
                trade("000000001", "BUY", "1260.01", "0.3"),
                trade("abc-1", "SELL", "1260.5", "1"),
                trade("2", "MIDDLE", "1261", "0.00000001")
            ),
        ),
        compact(DOC_TRADES)
            .replace("\"snapshot\"", "\"update\"")
            .replace("\"sequence_num\":0", "\"sequence_num\":5"),
        envelope("market_trades", 6, r#"{"type":"update","trades":[]}"#),
        ticker.clone(),
        // An old sequence number: counted and ignored.
        ticker.replace("\"sequence_num\":7", "\"sequence_num\":3"),
        compact(DOC_TICKER)
            .replace("\"ticker\",\"client_id\"", "\"ticker_batch\",\"client_id\"")
            .replace("\"sequence_num\":0", "\"sequence_num\":8"),
        // A hole: every book gapped and resubscribed.
        envelope("l2_data", 20, &l2_event(&[("bid", "21921.90", "2")])),
        doc_l2_resync(),
        envelope("l2_data", 22, &l2_event(&[("offer", "21925", "1")])),
        // A crossing update, then one dropped while resyncing.
        envelope("l2_data", 23, &l2_event(&[("bid", "21930", "1")])),
        envelope("l2_data", 24, &l2_event(&[("bid", "1", "1")])),
    ];
    v
}

fn doc_l2_resync() -> String {
    compact(DOC_L2).replace("\"sequence_num\":0", "\"sequence_num\":21")
}

/// Runs `messages` with the fast path on or off: every result, frame and action, the stats,
/// and the fast path's hit count.
fn run_paths(messages: &[String], fast: bool) -> (Vec<String>, u64) {
    let mut n = CoinbaseAdvancedNormalizer::new(&[]);
    n.set_fast_path(fast);
    let mut out = Output::new();
    let mut seen = Vec::new();
    for (k, m) in messages.iter().enumerate() {
        out.clear();
        let res = n.on_message(m.as_bytes(), k as u64, &mut out);
        seen.push(format!("{res:?} {:?} {:?}", out.frames, out.actions));
    }
    seen.push(format!("{:?}", n.stats()));
    (seen, n.fast_hits())
}

#[test]
fn fast_path_gives_the_tape_path_frames_on_the_venue_layouts() {
    let messages = fast_layout_messages();
    let (tape, zero) = run_paths(&messages, false);
    let (fast, hits) = run_paths(&messages, true);
    assert_eq!(zero, 0);
    for (k, (a, b)) in tape.iter().zip(&fast).enumerate() {
        assert_eq!(a, b, "message {k} differs between the paths");
    }
    assert_eq!(tape.len(), fast.len());
    // Everything but the two snapshots.
    assert_eq!(hits, messages.len() as u64 - 2);
    // And the run did what it says: trades, quotes, deltas, a gap, a crossing.
    let all = fast.join("\n");
    for want in [
        "Trade",
        "Quote",
        "BookDelta",
        "Gap",
        "crossed",
        "Text(\"abc-1\")",
    ] {
        assert!(all.contains(want), "{want} missing");
    }
}

mod fast_path_props {
    use super::*;

    /// One message after the venue-layout run's first message (the snapshot), on either path.
    fn both(raw: &[u8]) -> (String, String) {
        let mut out = Output::new();
        let mut run = |fast: bool| {
            let mut n = CoinbaseAdvancedNormalizer::new(&[]);
            n.on_message(compact(DOC_L2).as_bytes(), 0, &mut out)
                .unwrap();
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
            pick in 0usize..64,
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let samples = fast_layout_messages();
            let mut raw = samples[1 + pick % (samples.len() - 1)].clone().into_bytes();
            for (at, byte) in edits {
                let k = at.index(raw.len());
                raw[k] = byte;
            }
            let (tape, fast) = both(&raw);
            prop_assert_eq!(tape, fast, "input: {:?}", String::from_utf8_lossy(&raw));
        }
    }
}
