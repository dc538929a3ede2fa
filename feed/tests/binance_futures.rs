//! Binance USD-M futures end to end on a real socket: the simulator speaking the futures
//! dialect (`pu` chains, `/fapi/v1/depth`, no raw trade stream), the connection driver and the
//! futures normalizer (the `pu` sync rule). The book rebuilt from the emitted frames must equal
//! the simulator's REST book, with no gap on the way.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tickwire_feed::binance::BinanceSpot;
use tickwire_feed::driver::{self, DriverConfig, DriverStats, Shutdown};
use tickwire_feed::sim::{self, SimConfig, SimSource};
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

async fn get(url: &str) -> (u16, String) {
    let r = http().get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn side(levels: &Value, depth: usize) -> Vec<(i64, i64)> {
    levels
        .as_array()
        .unwrap()
        .iter()
        .take(depth)
        .map(|l| {
            (
                parse_decimal(l[0].as_str().unwrap().as_bytes())
                    .unwrap()
                    .value,
                parse_decimal(l[1].as_str().unwrap().as_bytes())
                    .unwrap()
                    .value,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn futures_dialect_driver_and_pu_rule_rebuild_the_venue_book() {
    let sim = sim::start(SimConfig {
        sources: vec![SimSource::CaptureBytes {
            name: "btcusdt".into(),
            bytes: sim::DEMO_CAPTURE,
        }],
        speed: 20.0,
        looping: false,
        paused: true,
        venue: Venue::BinanceFutures,
        pacing: sim::Pacing::Timer,
        ..SimConfig::demo()
    })
    .await
    .unwrap();
    let rest = sim.rest_url();

    // The raw trade stream is refused at the handshake, as on the venue (trades come from
    // @aggTrade).
    let refused =
        tokio_tungstenite::connect_async(format!("{}/ws/btcusdt@trade", sim.ws_url())).await;
    assert!(refused.is_err(), "futures has no @trade stream");

    let spec = BinanceSpot::usd_futures(vec!["btcusdt".into()]).at(&sim.ws_url(), &rest);
    let (tx, rx) = crossbeam::channel::bounded::<Frame>(1 << 20);
    let (shutdown, shutdown_rx) = Shutdown::new();
    let driver = tokio::spawn(driver::run(
        Arc::new(spec),
        Arc::new(tx),
        DriverConfig::default(),
        Arc::new(DriverStats::default()),
        shutdown_rx,
    ));
    // Let it connect and subscribe, then replay ~4 s of simulated time (80 s of the capture).
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    sim.start();
    tokio::time::sleep(Duration::from_secs(4)).await;
    sim.pause();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, venue_book) = get(&format!("{rest}/fapi/v1/depth?symbol=BTCUSDT&limit=5000")).await;
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(5), driver)
        .await
        .unwrap()
        .unwrap();

    let frames: Vec<Frame> = rx.try_iter().collect();
    let mut book = L2Book::new();
    let (mut trades, mut deltas, mut snapshots) = (0, 0, 0);
    for f in &frames {
        assert_eq!(f.venue, Venue::BinanceFutures.id());
        match &f.body {
            Body::Status(s) => assert!(
                !matches!(s.code, StatusCode::Gap),
                "no gap on a gap-free pu chain: {}",
                s.detail
            ),
            Body::Trade(_) => trades += 1,
            Body::BookDelta(_) => deltas += 1,
            Body::BookSnapshot(_) => snapshots += 1,
            _ => {}
        }
        if matches!(f.body, Body::BookDelta(_) | Body::BookSnapshot(_)) {
            book.apply_owned(f);
        }
    }
    assert_eq!(snapshots, 1, "one sync from the REST snapshot");
    assert!(deltas > 1_000, "deltas applied: {deltas}");
    assert!(trades > 100, "trades from @aggTrade: {trades}");
    assert!(book.is_valid());

    let v: Value = serde_json::from_str(&venue_book).unwrap();
    let depth = 200;
    let bids: Vec<(i64, i64)> = book.bids().take(depth).map(|l| (l.price, l.qty)).collect();
    let asks: Vec<(i64, i64)> = book.asks().take(depth).map(|l| (l.price, l.qty)).collect();
    assert_eq!(bids, side(&v["bids"], depth), "bids equal the venue's");
    assert_eq!(asks, side(&v["asks"], depth), "asks equal the venue's");
    sim.shutdown().await;
}
