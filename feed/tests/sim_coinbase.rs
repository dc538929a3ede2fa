//! Coinbase end to end on a real socket, both dialects (one simulator each, both on `/`):
//! the connection driver with the registry's spec and the real normalizer. Exchange:
//! matches, heartbeat, ticker, level2_batch. Advanced Trade: heartbeats, market_trades,
//! ticker, level2 with the per-connection `sequence_num`. Every book rebuilt from the emitted
//! frames must equal the simulator's REST book (Coinbase's level2 is the whole book), with no
//! gap on the way.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tickwire_feed::driver::{self, DriverConfig, DriverStats, Shutdown};
use tickwire_feed::sim::{self, SimConfig};
use tickwire_feed::venues::{self, Endpoints};
use tickwire_sdk::L2Book;
use tickwire_sdk::wire::{Body, Frame, StatusCode, Venue, instrument_id, parse_decimal};

fn http() -> reqwest::Client {
    tickwire_feed::tls::install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn side(levels: &Value) -> Vec<(i64, i64)> {
    levels
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let d = |i: usize| {
                parse_decimal(l[i].as_str().unwrap().as_bytes())
                    .unwrap()
                    .value
            };
            (d(0), d(1))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_dialect_driver_and_normalizer_rebuild_every_book() {
    rebuild_every_book(Venue::Coinbase).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advanced_trade_dialect_driver_and_normalizer_rebuild_every_book() {
    rebuild_every_book(Venue::CoinbaseAdvanced).await;
}

async fn rebuild_every_book(venue: Venue) {
    let sim = sim::start(SimConfig {
        speed: 10.0,
        looping: false,
        paused: true,
        venue,
        ..SimConfig::demo()
    })
    .await
    .unwrap();
    let rest = sim.rest_url();
    let products = sim.venue_symbols();
    assert_eq!(products, ["BTC-USDT", "ETH-USDT", "SOL-USDT"]);
    assert!(sim.venue_ws_url().ends_with('/'));

    let spec = venues::spec(
        venue,
        products.clone(),
        &Endpoints {
            ws: Some(sim.venue_ws_url()),
            rest: None,
        },
    )
    .unwrap();
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
    // Four requests 150 ms apart; then a few seconds of market.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    sim.start();
    tokio::time::sleep(Duration::from_secs(4)).await;
    sim.pause();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut venue_books = HashMap::new();
    for p in &products {
        let symbol = p.replace('-', "");
        let r = http()
            .get(format!("{rest}/api/v3/depth?symbol={symbol}&limit=5000"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        venue_books.insert(instrument_id(venue, p), v);
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
        assert_eq!(f.venue, venue.id());
        match &f.body {
            Body::Status(s) => assert!(!matches!(s.code, StatusCode::Gap), "no gap: {}", s.detail),
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
    assert_eq!(snapshots, 3, "one level2 snapshot per product");
    assert!(deltas > 500, "deltas applied: {deltas}");
    assert!(trades > 50, "matches: {trades}");
    assert!(quotes > 50, "tickers: {quotes}");
    for (inst, v) in &venue_books {
        let book = &books[inst];
        assert!(book.is_valid());
        let bids: Vec<(i64, i64)> = book.bids().map(|l| (l.price, l.qty)).collect();
        let asks: Vec<(i64, i64)> = book.asks().map(|l| (l.price, l.qty)).collect();
        let (vb, va) = (side(&v["bids"]), side(&v["asks"]));
        assert!(!vb.is_empty() && !va.is_empty());
        // The whole book where the REST view has it all; its top 5000 levels otherwise.
        assert_eq!(&bids[..vb.len().min(bids.len())], &vb[..], "bids");
        assert_eq!(&asks[..va.len().min(asks.len())], &va[..], "asks");
        if vb.len() < 5000 {
            assert_eq!(bids.len(), vb.len());
        }
        if va.len() < 5000 {
            assert_eq!(asks.len(), va.len());
        }
    }
    sim.shutdown().await;
}
