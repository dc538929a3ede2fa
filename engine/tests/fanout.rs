//! Fan-out under pressure, over real sockets: slow clients never slow fast ones, lossless
//! clients that fall behind are told so, conflating clients end with the truth, snapshots on
//! subscribe give exact books, and a stock WebSocket client can use the JSON protocol.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tickwire_engine::gateway::delivery::MAX_HELD_BYTES;
use tickwire_sdk::wire::{ArchivedBody, Batch, Channel, parse_decimal};
use tokio_tungstenite::tungstenite::Message;

/// A raw binary-mode client: subscribes and returns the socket.
async fn binary_client(url: &str, symbols: &[&str], channels: &[&str], policy: &str) -> Ws {
    let mut ws = ws_connect(url).await;
    send_json(
        &mut ws,
        json!({"op":"subscribe","id":1,"symbols":symbols,"channels":channels,"encoding":"binary","policy":policy}),
    )
    .await;
    let ack = reply_of(&mut ws, "subscribed").await;
    assert_eq!(ack["type"], "subscribed", "{ack}");
    ws
}

/// Per stream (instrument, channel) seqs seen by a binary client, in arrival order.
type Seqs = BTreeMap<(u32, u8), Vec<u64>>;

/// Reads a binary client until `done` says so (checked after each message) or `limit`.
async fn read_binary(ws: &mut Ws, limit: Duration, mut done: impl FnMut(&Seqs) -> bool) -> Seqs {
    let deadline = Instant::now() + limit;
    let mut seqs = Seqs::new();
    while !done(&seqs) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "timed out; got {:?}",
            seqs.iter().map(|(k, v)| (k, v.len())).collect::<Vec<_>>()
        );
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => {
                let batch = Batch::new(b).expect("valid batch");
                for f in batch.iter() {
                    if f.instrument.to_native() != 0 && f.channel() != Channel::Control {
                        seqs.entry((f.instrument.to_native(), f.channel() as u8))
                            .or_default()
                            .push(f.seq.to_native());
                    }
                }
            }
            Ok(Some(Ok(Message::Close(c)))) => panic!("closed: {c:?}"),
            Ok(Some(Ok(_))) => {}
            other => panic!("connection failed: {other:?}"),
        }
    }
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_fast_clients_get_every_frame_while_one_client_stalls() {
    let sim = capture_sim().await;
    let server = server_for(&sim, &["BTCUSDT"], |_| {}).await;
    wait_subscribed(&sim, 3).await;
    let url = server.ws_url();
    let mut fast = Vec::new();
    for _ in 0..50 {
        fast.push(
            binary_client(
                &url,
                &["binance:BTCUSDT"],
                &["trades", "quotes"],
                "lossless",
            )
            .await,
        );
    }
    // Subscribes to everything, conflated, and never reads again.
    let stalled = binary_client(
        &url,
        &["binance:BTCUSDT"],
        &["trades", "quotes", "book"],
        "conflate",
    )
    .await;
    sim.start();
    let trades = capture_trades().len();
    let btc = tickwire_sdk::wire::instrument_id(tickwire_sdk::wire::Venue::Binance, "BTCUSDT");
    let quotes = 28_040;
    let readers: Vec<_> = fast
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                read_binary(&mut ws, Duration::from_secs(120), |s| {
                    s.get(&(btc, Channel::Trades as u8)).map_or(0, Vec::len) >= trades
                        && s.get(&(btc, Channel::Quotes as u8)).map_or(0, Vec::len) >= quotes
                })
                .await
            })
        })
        .collect();
    for r in readers {
        let seqs = r.await.unwrap();
        for ((_, channel), got) in seqs {
            let expected: Vec<u64> = (1..=got.len() as u64).collect();
            assert!(
                got == expected,
                "channel {channel}: every frame, in order, contiguous"
            );
        }
    }
    // The stalled client held no data on the server: what it did not read was folded or left
    // in the shared ring; only control frames could queue, and they are bounded.
    let held = server.gateway_stats.max_held_bytes.load(Ordering::Relaxed);
    assert!(
        held < 64 << 10,
        "a stalled client held {held} bytes on the server"
    );
    assert!((held as usize) < MAX_HELD_BYTES);
    drop(stalled);
    server.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lossless_client_that_falls_a_ring_behind_is_closed_with_4001() {
    let sim = capture_sim().await;
    let server = server_for(&sim, &["BTCUSDT"], |c| {
        c.ring_capacity = 1024;
        c.gateway.write_timeout = Duration::from_secs(60);
        c.gateway.heartbeat_every = Duration::from_millis(100);
    })
    .await;
    wait_subscribed(&sim, 3).await;
    let mut ws = ws_connect(&server.ws_url()).await;
    send_json(
        &mut ws,
        json!({"op":"subscribe","id":1,"symbols":["binance:BTCUSDT"],"policy":"lossless"}),
    )
    .await;
    sim.start();
    wait_for(
        "the server to give up on the stalled client",
        Duration::from_secs(60),
        || server.gateway_stats.slow_closed.load(Ordering::Relaxed) >= 1,
    )
    .await;
    // Reading again, the client gets what was written, then the reason.
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("data then a close")
        {
            Some(Ok(Message::Close(f))) => break f.expect("a close frame with a code"),
            Some(Ok(_)) => continue,
            other => panic!("expected the close frame, got {other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 4001);
    assert!(close.reason.contains("frames behind"), "{}", close.reason);
    server.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflating_client_that_stalls_ends_with_the_truth() {
    let sim = capture_sim().await;
    let server = server_for(&sim, &["BTCUSDT"], |c| {
        c.gateway.write_timeout = Duration::from_secs(120);
    })
    .await;
    wait_subscribed(&sim, 3).await;
    // JSON, so the stalled socket fills up quickly and the server has to fold.
    let mut ws = ws_connect(&server.ws_url()).await;
    send_json(&mut ws, json!({"op":"subscribe","id":1,"symbols":["binance:BTCUSDT"],"encoding":"json","policy":"conflate"})).await;
    sim.start();
    wait_for("the replay to finish", Duration::from_secs(120), || {
        sim.status()["finished"].as_bool().unwrap_or(false)
    })
    .await;
    // Now read everything, until the stream has been quiet for a while.
    let mut book: BTreeMap<(bool, i64), String> = BTreeMap::new(); // (is_bid, price) -> qty text
    let mut last_quote = None;
    let (mut count, mut volume) = (0u64, 0i128);
    let (mut frames, mut conflated) = (0u64, 0u64);
    // Until no data came for 3 s (heartbeats keep arriving every second).
    let mut last_data = Instant::now();
    while last_data.elapsed() < Duration::from_secs(3) {
        let msg = match tokio::time::timeout(Duration::from_millis(500), ws.next()).await {
            Err(_) => continue,
            Ok(m) => m.expect("open").expect("valid"),
        };
        let Message::Text(t) = msg else { continue };
        let v: Value = serde_json::from_str(t.as_str()).unwrap();
        if v["type"] == "heartbeat" {
            continue;
        }
        last_data = Instant::now();
        frames += 1;
        if v["flags"]
            .as_array()
            .is_some_and(|f| f.contains(&json!("conflated")))
        {
            conflated += 1;
        }
        let dec = |x: &Value| parse_decimal(x.as_str().unwrap().as_bytes()).unwrap().value;
        match v["type"].as_str().unwrap() {
            "quote" => {
                last_quote = Some((
                    v["bid_px"].clone(),
                    v["bid_qty"].clone(),
                    v["ask_px"].clone(),
                    v["ask_qty"].clone(),
                ))
            }
            "trade" => {
                count += 1;
                volume += dec(&v["qty"]) as i128;
            }
            "trade_summary" => {
                count += v["count"].as_u64().unwrap();
                volume += parse_decimal(v["volume"].as_str().unwrap().as_bytes())
                    .unwrap()
                    .value as i128;
            }
            "book_snapshot" => {
                book.clear();
                for (side, bid) in [("bids", true), ("asks", false)] {
                    for l in v[side].as_array().unwrap() {
                        book.insert((bid, dec(&l[0])), l[1].as_str().unwrap().to_string());
                    }
                }
            }
            "book_delta" => {
                let key = (v["side"] == "bid", dec(&v["price"]));
                if dec(&v["qty"]) == 0 {
                    book.remove(&key);
                } else {
                    book.insert(key, v["qty"].as_str().unwrap().to_string());
                }
            }
            _ => {}
        }
    }
    assert!(
        conflated > 0,
        "the stalled client was sent conflated state ({frames} frames)"
    );
    // Trades: nothing traded is lost from the totals.
    let truth = capture_trades();
    let truth_volume: i128 = truth
        .iter()
        .map(|t| parse_decimal(t.2.as_bytes()).unwrap().value as i128)
        .sum();
    assert_eq!((count, volume), (truth.len() as u64, truth_volume));
    // Last quote: the capture's last bookTicker.
    let reader =
        tickwire_feed::capture::CaptureReader::from_bytes("demo", tickwire_feed::sim::DEMO_CAPTURE);
    let last_ticker = reader
        .filter_map(|r| serde_json::from_slice::<Value>(&r.unwrap().payload).ok())
        .filter(|v| v["stream"] == "btcusdt@bookTicker")
        .last()
        .unwrap();
    let d = &last_ticker["data"];
    assert_eq!(
        last_quote,
        Some((
            d["b"].clone(),
            d["B"].clone(),
            d["a"].clone(),
            d["A"].clone()
        ))
    );
    // Book: equal to the venue's, level for level.
    tickwire_feed::tls::install_crypto_provider();
    let body = reqwest::get(format!(
        "{}/api/v3/depth?symbol=BTCUSDT&limit=5000",
        sim.rest_url()
    ))
    .await
    .unwrap()
    .bytes()
    .await
    .unwrap();
    let venue: Value = serde_json::from_slice(&body).unwrap();
    let mut truth_book = BTreeMap::new();
    for (side, bid) in [("bids", true), ("asks", false)] {
        for l in venue[side].as_array().unwrap() {
            truth_book.insert(
                (
                    bid,
                    parse_decimal(l[0].as_str().unwrap().as_bytes())
                        .unwrap()
                        .value,
                ),
                l[1].as_str().unwrap().to_string(),
            );
        }
    }
    assert!(
        book == truth_book,
        "book differs: {} levels vs {}",
        book.len(),
        truth_book.len()
    );
    server.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_on_subscribe_then_deltas_equal_the_venue_book_at_every_check() {
    let sim = capture_sim().await;
    let server = server_for(&sim, &["BTCUSDT"], |_| {}).await;
    wait_subscribed(&sim, 3).await;
    tickwire_feed::tls::install_crypto_provider();
    // Let the book sync and move before the client arrives.
    sim.run_items(3_000);
    wait_for("the first items", Duration::from_secs(30), || {
        !sim.status()["running"].as_bool().unwrap_or(true)
    })
    .await;
    let mut client = tickwire_sdk::client::Client::connect(&server.ws_url())
        .await
        .unwrap();
    client
        .subscribe(&["binance:BTCUSDT"], &[Channel::Book])
        .await
        .unwrap();
    let mut book = tickwire_sdk::L2Book::new();
    let mut snapshots = 0;
    for round in 0..4 {
        if round > 0 {
            sim.run_items(4_000);
        }
        // Read until no book frame came for half a second with the simulator paused.
        let mut quiet_since = Instant::now();
        loop {
            let paused = !sim.status()["running"].as_bool().unwrap_or(true);
            if paused && quiet_since.elapsed() > Duration::from_millis(500) {
                break;
            }
            if let Ok(Some(ev)) =
                tokio::time::timeout(Duration::from_millis(100), client.next()).await
                && let tickwire_sdk::client::Event::Frames(batch) = ev.unwrap()
            {
                for f in batch.iter() {
                    if let ArchivedBody::BookSnapshot(_) = &f.body {
                        snapshots += 1;
                    }
                    if book.apply(f) {
                        quiet_since = Instant::now();
                    }
                }
            }
        }
        let body = reqwest::get(format!(
            "{}/api/v3/depth?symbol=BTCUSDT&limit=5000",
            sim.rest_url()
        ))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
        let venue: Value = serde_json::from_slice(&body).unwrap();
        let side = |key: &str| -> Vec<(i64, i64)> {
            venue[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| {
                    let d =
                        |x: &Value| parse_decimal(x.as_str().unwrap().as_bytes()).unwrap().value;
                    (d(&l[0]), d(&l[1]))
                })
                .collect()
        };
        let ours = |it: &mut dyn Iterator<Item = tickwire_sdk::wire::Level>| -> Vec<(i64, i64)> {
            it.map(|l| (l.price, l.qty)).collect()
        };
        assert!(book.is_valid(), "round {round}");
        assert!(
            ours(&mut book.bids()) == side("bids"),
            "round {round}: bids differ"
        );
        assert!(
            ours(&mut book.asks()) == side("asks"),
            "round {round}: asks differ"
        );
    }
    assert_eq!(snapshots, 1, "one snapshot on subscribe, then deltas only");
    server.shutdown().await;
    sim.shutdown().await;
}

/// A PYTHONPATH under which `import websockets` works: the system's, or a copy installed from
/// PyPI into the test's target directory on first use.
async fn python_websockets() -> String {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("python");
    let path = dir.display().to_string();
    let probe = |pp: String| async move {
        tokio::process::Command::new("python3")
            .args(["-c", "import websockets"])
            .env("PYTHONPATH", pp)
            .output()
            .await
            .is_ok_and(|o| o.status.success())
    };
    if probe(path.clone()).await {
        return path;
    }
    let out = tokio::process::Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
        ])
        .arg(&dir)
        .arg("websockets")
        .output()
        .await
        .expect("python3 with pip is installed");
    assert!(
        out.status.success(),
        "installing the Python websockets package failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_python_websockets_client_uses_the_json_protocol() {
    let sim = capture_sim().await;
    let server = server_for(&sim, &["BTCUSDT"], |_| {}).await;
    wait_subscribed(&sim, 3).await;
    sim.start();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/stock_client.py");
    let pythonpath = python_websockets().await;
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("python3")
            .arg(script)
            .arg(server.ws_url())
            .env("PYTHONPATH", pythonpath)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the Python client finishes")
    .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python client failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("ok"), "{stdout}");
    server.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_invalid_messages_get_the_fitting_close_codes() {
    let sim = capture_sim().await;
    let server = server_for(&sim, &["BTCUSDT"], |_| {}).await;
    let close_of = |ws: Ws| async move {
        let mut ws = ws;
        loop {
            match tokio::time::timeout(Duration::from_secs(5), ws.next())
                .await
                .unwrap()
            {
                Some(Ok(Message::Close(f))) => return u16::from(f.unwrap().code),
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    };
    let mut ws = ws_connect(&server.ws_url()).await;
    ws.send(Message::text("x".repeat(100 << 10))).await.unwrap();
    assert_eq!(close_of(ws).await, 1009);
    let mut ws = ws_connect(&server.ws_url()).await;
    let frame = tokio_tungstenite::tungstenite::protocol::frame::Frame::message(
        vec![0xff, 0xfe, 0x80],
        tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode::Data(
            tokio_tungstenite::tungstenite::protocol::frame::coding::Data::Text,
        ),
        true,
    );
    ws.send(Message::Frame(frame)).await.unwrap();
    assert_eq!(close_of(ws).await, 1007);
    server.shutdown().await;
    sim.shutdown().await;
}
