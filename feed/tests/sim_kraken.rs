//! Kraken spot v2 end to end on a real socket: the simulator speaking Kraken's dialect on
//! `/v2`, the connection driver with the venue registry's Kraken spec (only the URL differs
//! from the real venue's) and the Kraken normalizer (instrument precisions, CRC32 checksums
//! on every book message, trade-id continuity). The books rebuilt from the emitted frames must
//! equal the simulator's REST books within the subscribed depth, with no gap on the way.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tickwire_feed::driver::{self, DriverConfig, DriverStats, Shutdown};
use tickwire_feed::sim::{self, SimConfig, SimSource};
use tickwire_feed::venues::{self, Endpoints};
use tickwire_sdk::L2Book;
use tickwire_sdk::wire::{Body, Frame, StatusCode, Venue, flags, instrument_id, parse_decimal};
use tokio_tungstenite::tungstenite::Message;

fn http() -> reqwest::Client {
    tickwire_feed::tls::install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn get(url: &str) -> (u16, String) {
    let r = http().get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn side(levels: &Value, depth: usize) -> Vec<(i64, i64)> {
    let fx = |v: &Value| parse_decimal(v.as_str().unwrap().as_bytes()).unwrap().value;
    levels
        .as_array()
        .unwrap()
        .iter()
        .take(depth)
        .map(|l| (fx(&l[0]), fx(&l[1])))
        .collect()
}

fn config() -> SimConfig {
    SimConfig {
        sources: vec![
            SimSource::CaptureBytes {
                name: "btcusdt".into(),
                bytes: sim::DEMO_CAPTURE,
            },
            SimSource::Synthetic {
                symbols: vec!["ETHUSDT".into()],
                rate: 40.0,
                seed: 7,
            },
        ],
        speed: 20.0,
        looping: false,
        paused: true,
        venue: Venue::Kraken,
        pacing: sim::Pacing::Timer,
        ..SimConfig::demo()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kraken_dialect_driver_and_checksums_rebuild_the_venue_books() {
    let sim = sim::start(config()).await.unwrap();
    let rest = sim.rest_url();
    let symbols = sim.venue_symbols();
    assert_eq!(symbols, ["BTC/USDT", "ETH/USDT"]);
    assert_eq!(sim.venue_ws_url(), format!("{}/v2", sim.ws_url()));

    let spec = venues::spec(
        Venue::Kraken,
        symbols.clone(),
        &Endpoints {
            ws: Some(sim.ws_url()),
            rest: None,
        },
    )
    .unwrap();
    assert_eq!(spec.ws_url(), sim.venue_ws_url());
    let (tx, rx) = crossbeam::channel::bounded::<Frame>(1 << 20);
    let (shutdown, shutdown_rx) = Shutdown::new();
    let stats = Arc::new(DriverStats::default());
    let driver = tokio::spawn(driver::run(
        spec,
        Arc::new(tx),
        DriverConfig::default(),
        stats.clone(),
        shutdown_rx,
    ));
    // Let it connect and subscribe (4 requests 200 ms apart), then replay ~4 s.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    sim.start();
    tokio::time::sleep(Duration::from_secs(4)).await;
    sim.pause();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut venue_books = Vec::new();
    for s in ["BTCUSDT", "ETHUSDT"] {
        let (code, body) = get(&format!("{rest}/api/v3/depth?symbol={s}&limit=5000")).await;
        assert_eq!(code, 200, "{body}");
        venue_books.push(serde_json::from_str::<Value>(&body).unwrap());
    }
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(5), driver)
        .await
        .unwrap()
        .unwrap();

    let frames: Vec<Frame> = rx.try_iter().collect();
    let mut books: HashMap<u32, L2Book> = HashMap::new();
    let (mut trades, mut quotes, mut deltas, mut snapshots) = (0, 0, 0, 0);
    for f in &frames {
        assert_eq!(f.venue, Venue::Kraken.id());
        // (The driver's shutdown reports the books stale with a flagged Disconnected status.)
        let disconnected = matches!(&f.body, Body::Status(s) if s.code == StatusCode::Disconnected);
        assert!(
            f.flags & flags::BAD_BOOK == 0 || disconnected,
            "no broken book: {f:?}"
        );
        match &f.body {
            Body::Status(s) => assert!(
                !matches!(s.code, StatusCode::Gap),
                "no gap: every checksum verified, trade ids continuous: {}",
                s.detail
            ),
            Body::Trade(_) => trades += 1,
            Body::Quote(_) => quotes += 1,
            Body::BookDelta(_) => deltas += 1,
            Body::BookSnapshot(_) => snapshots += 1,
            _ => {}
        }
        if matches!(f.body, Body::BookDelta(_) | Body::BookSnapshot(_)) {
            books.entry(f.instrument).or_default().apply_owned(f);
        }
    }
    assert_eq!(snapshots, 2, "one snapshot per pair on subscribe");
    assert!(deltas > 1_000, "deltas applied: {deltas}");
    assert!(trades > 100, "trades: {trades}");
    assert!(quotes > 100, "bbo tickers: {quotes}");

    let depth = 1000; // what the registry's Kraken spec subscribes
    for (name, v) in symbols.iter().zip(&venue_books) {
        let book = &books[&instrument_id(Venue::Kraken, name)];
        assert!(book.is_valid());
        let bids: Vec<(i64, i64)> = book.bids().map(|l| (l.price, l.qty)).collect();
        let asks: Vec<(i64, i64)> = book.asks().map(|l| (l.price, l.qty)).collect();
        assert!(bids.len() <= depth && asks.len() <= depth);
        assert_eq!(
            bids,
            side(&v["bids"], depth),
            "{name} bids equal the venue's"
        );
        assert_eq!(
            asks,
            side(&v["asks"], depth),
            "{name} asks equal the venue's"
        );
    }
    sim.shutdown().await;
}

/// The next text message, as JSON.
async fn next_json<S>(ws: &mut S) -> Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a message within 5 s")
            .expect("the connection stays open")
            .unwrap();
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kraken_dialect_greets_answers_pings_and_refuses_unknown_pairs() {
    let sim = sim::start(config()).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(sim.venue_ws_url())
        .await
        .unwrap();
    let status = next_json(&mut ws).await;
    assert_eq!(status["channel"], "status");
    assert_eq!(status["data"][0]["system"], "online");
    let send = |t: &str| Message::Text(t.to_string().into());
    ws.send(send(
        r#"{"method":"subscribe","params":{"channel":"book","symbol":["BTC/ABC"]},"req_id":3}"#,
    ))
    .await
    .unwrap();
    ws.send(send(r#"{"method":"ping","req_id":4}"#))
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        let v = next_json(&mut ws).await;
        if v["channel"] != "heartbeat" {
            got.push(v);
        }
    }
    assert_eq!(got[0]["error"], "Currency pair not supported");
    assert_eq!(got[0]["success"], false);
    assert_eq!(got[0]["symbol"], "BTC/ABC");
    assert_eq!(got[0]["req_id"], 3);
    // Still open after the refusal: the ping is answered.
    assert_eq!(got[1]["method"], "pong");
    assert_eq!(got[1]["req_id"], 4);
    sim.shutdown().await;
}
