//! Bybit v5 end to end on a real socket: the simulator speaking the Bybit dialect (spot on
//! `/v5/public/spot`, linear on `/v5/public/linear`), the connection driver and the Bybit
//! normalizer (snapshot + contiguous `u` deltas, level 1 quotes). The book rebuilt from the
//! emitted frames must equal the simulator's REST book within the subscribed depth (50), with
//! no gap on the way.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tickwire_feed::driver::{self, DriverConfig, DriverStats, Shutdown};
use tickwire_feed::sim::{self, SimConfig, SimSource};
use tickwire_feed::venues::{self, Endpoints};
use tickwire_sdk::L2Book;
use tickwire_sdk::wire::{Body, Frame, StatusCode, Venue, parse_decimal};

fn http() -> reqwest::Client {
    tickwire_feed::tls::install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn side(levels: &Value, depth: usize) -> Vec<(i64, i64)> {
    let px = |v: &Value| parse_decimal(v.as_str().unwrap().as_bytes()).unwrap().value;
    levels
        .as_array()
        .unwrap()
        .iter()
        .take(depth)
        .map(|l| (px(&l[0]), px(&l[1])))
        .collect()
}

async fn rebuilds_the_venue_book(venue: Venue) {
    let sim = sim::start(SimConfig {
        sources: vec![SimSource::CaptureBytes {
            name: "btcusdt".into(),
            bytes: sim::DEMO_CAPTURE,
        }],
        speed: 20.0,
        looping: false,
        paused: true,
        venue,
        ..SimConfig::demo()
    })
    .await
    .unwrap();
    let rest = sim.rest_url();
    assert_eq!(sim.venue_symbols(), ["BTCUSDT"]);

    let spec = venues::spec(
        venue,
        sim.venue_symbols(),
        &Endpoints {
            ws: Some(sim.ws_url()),
            rest: None,
        },
    )
    .unwrap();
    assert_eq!(spec.ws_url(), sim.venue_ws_url());
    let (tx, rx) = crossbeam::channel::bounded::<Frame>(1 << 20);
    let (shutdown, shutdown_rx) = Shutdown::new();
    let driver = tokio::spawn(driver::run(
        spec,
        Arc::new(tx),
        DriverConfig::default(),
        Arc::new(DriverStats::default()),
        shutdown_rx,
    ));
    // Connect and subscribe (snapshots of the paused market), then ~4 s of replay (80 s of the
    // capture), pause, let the last messages drain.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    sim.start();
    tokio::time::sleep(Duration::from_secs(4)).await;
    sim.pause();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let venue_book = http()
        .get(format!("{rest}/api/v3/depth?symbol=BTCUSDT&limit=5000"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(5), driver)
        .await
        .unwrap()
        .unwrap();

    let frames: Vec<Frame> = rx.try_iter().collect();
    let mut book = L2Book::new();
    let (mut trades, mut deltas, mut snapshots, mut quotes) = (0, 0, 0, 0);
    for f in &frames {
        assert_eq!(f.venue, venue.id());
        match &f.body {
            Body::Status(s) => assert!(
                !matches!(s.code, StatusCode::Gap | StatusCode::Resynced),
                "no gap on a contiguous u chain: {}",
                s.detail
            ),
            Body::Trade(_) => trades += 1,
            Body::Quote(_) => quotes += 1,
            Body::BookDelta(_) => deltas += 1,
            Body::BookSnapshot(_) => snapshots += 1,
            _ => {}
        }
        // Book frames only: the Disconnected status at shutdown flags the book as stale.
        if matches!(f.body, Body::BookDelta(_) | Body::BookSnapshot(_)) {
            book.apply_owned(f);
        }
    }
    assert_eq!(snapshots, 1, "one snapshot, on subscribe");
    assert!(deltas > 1_000, "deltas applied: {deltas}");
    assert!(trades > 100, "trades: {trades}");
    assert!(quotes > 100, "quotes from orderbook.1: {quotes}");
    assert!(book.is_valid());

    let v: Value = serde_json::from_str(&venue_book).unwrap();
    let depth = 50;
    let bids: Vec<(i64, i64)> = book.bids().map(|l| (l.price, l.qty)).collect();
    let asks: Vec<(i64, i64)> = book.asks().map(|l| (l.price, l.qty)).collect();
    assert_eq!(bids, side(&v["bids"], depth), "bids: the venue's top 50");
    assert_eq!(asks, side(&v["asks"], depth), "asks: the venue's top 50");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spot_dialect_driver_and_normalizer_rebuild_the_venue_book() {
    rebuilds_the_venue_book(Venue::Bybit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linear_dialect_driver_and_normalizer_rebuild_the_venue_book() {
    rebuilds_the_venue_book(Venue::BybitLinear).await;
}
