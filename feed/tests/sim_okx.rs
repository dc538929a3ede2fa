//! OKX v5 end to end on a real socket: the simulator speaking the OKX dialect on
//! `/ws/v5/public` (the demo market: the embedded BTCUSDT capture and synthetic ETHUSDT and
//! SOLUSDT), the connection driver with the OKX spec pointed at it (only the URL differs from
//! the venue's), and the OKX normalizer (seqId/prevSeqId chain, checksum). Every book rebuilt
//! from the emitted frames must equal the simulator's REST book within the 400 levels the
//! `books` channel carries, with no gap on the way.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tickwire_feed::driver::{self, DriverConfig, DriverStats, Shutdown};
use tickwire_feed::sim::{self, SimConfig};
use tickwire_feed::venues::{self, Endpoints};
use tickwire_sdk::L2Book;
use tickwire_sdk::wire::{Body, Frame, StatusCode, Venue, instrument_id, parse_decimal};

/// Levels a side of OKX's `books` channel.
const BOOKS_DEPTH: usize = 400;

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
            let n = |v: &Value| parse_decimal(v.as_str().unwrap().as_bytes()).unwrap().value;
            (n(&l[0]), n(&l[1]))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okx_dialect_driver_and_normalizer_rebuild_the_simulator_books() {
    let sim = sim::start(SimConfig {
        speed: 10.0,
        paused: true,
        looping: false,
        venue: Venue::Okx,
        pacing: sim::Pacing::Timer,
        ..SimConfig::demo()
    })
    .await
    .unwrap();
    let rest = sim.rest_url();
    let symbols = sim.venue_symbols();
    assert_eq!(symbols, ["BTC-USDT", "ETH-USDT", "SOL-USDT"]);
    assert!(sim.venue_ws_url().ends_with("/ws/v5/public"));

    // The documented keepalive on the raw socket: the text `ping` gets the text `pong`.
    {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        let (mut ws, _) = tokio_tungstenite::connect_async(sim.venue_ws_url())
            .await
            .unwrap();
        ws.send(Message::Text("ping".into())).await.unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(reply, Message::Text("pong".into()));
        ws.send(Message::Text(
            r#"{"op":"subscribe","args":[{"channel":"books","instId":"DOGE-USDT"}]}"#.into(),
        ))
        .await
        .unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_str(reply.to_text().unwrap()).unwrap();
        assert_eq!(v["event"], "error");
        assert_eq!(v["code"], "60018");
        let _ = ws.close(None).await;
    }

    let spec = venues::spec(
        Venue::Okx,
        symbols.clone(),
        &Endpoints {
            ws: Some(sim.ws_url()),
            rest: None,
        },
    )
    .unwrap();
    assert_eq!(spec.ws_url(), sim.venue_ws_url());
    let (tx, rx) = crossbeam::channel::bounded::<Frame>(1 << 21);
    let (shutdown, shutdown_rx) = Shutdown::new();
    let driver = tokio::spawn(driver::run(
        spec,
        Arc::new(tx),
        DriverConfig::default(),
        Arc::new(DriverStats::default()),
        shutdown_rx,
    ));
    // Let it connect and subscribe, then replay ~4 s of wall time (40 s of the market).
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    sim.start();
    tokio::time::sleep(Duration::from_secs(4)).await;
    sim.pause();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut venue_books = HashMap::new();
    for s in ["BTCUSDT", "ETHUSDT", "SOLUSDT"] {
        let (status, body) = get(&format!("{rest}/api/v3/depth?symbol={s}&limit=5000")).await;
        assert_eq!(status, 200, "{body}");
        venue_books.insert(s, serde_json::from_str::<Value>(&body).unwrap());
    }
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(5), driver)
        .await
        .unwrap()
        .unwrap();

    let frames: Vec<Frame> = rx.try_iter().collect();
    let mut books: HashMap<u32, L2Book> = HashMap::new();
    let mut counts: HashMap<u32, (usize, usize, usize, usize)> = HashMap::new();
    for f in &frames {
        assert_eq!(f.venue, Venue::Okx.id());
        let c = counts.entry(f.instrument).or_default();
        match &f.body {
            Body::Status(s) => assert!(
                !matches!(s.code, StatusCode::Gap),
                "no gap on the simulator's OKX books: {}",
                s.detail
            ),
            Body::Trade(_) => c.0 += 1,
            Body::Quote(_) => c.1 += 1,
            Body::BookDelta(_) => c.2 += 1,
            Body::BookSnapshot(_) => c.3 += 1,
            _ => {}
        }
        if matches!(f.body, Body::BookDelta(_) | Body::BookSnapshot(_)) {
            books.entry(f.instrument).or_default().apply_owned(f);
        }
    }
    for (venue_symbol, sim_symbol) in symbols.iter().zip(["BTCUSDT", "ETHUSDT", "SOLUSDT"]) {
        let id = instrument_id(Venue::Okx, venue_symbol);
        let (trades, quotes, deltas, snapshots) = counts.get(&id).copied().unwrap_or_default();
        assert_eq!(snapshots, 1, "{venue_symbol}: one snapshot, no resync");
        assert!(deltas > 100, "{venue_symbol}: deltas {deltas}");
        assert!(trades > 10, "{venue_symbol}: trades {trades}");
        assert!(quotes > 10, "{venue_symbol}: quotes {quotes}");
        let book = &books[&id];
        assert!(book.is_valid(), "{venue_symbol}");
        let v = &venue_books[sim_symbol];
        let bids: Vec<(i64, i64)> = book.bids().map(|l| (l.price, l.qty)).collect();
        let asks: Vec<(i64, i64)> = book.asks().map(|l| (l.price, l.qty)).collect();
        assert_eq!(bids, side(&v["bids"], BOOKS_DEPTH), "{venue_symbol} bids");
        assert_eq!(asks, side(&v["asks"], BOOKS_DEPTH), "{venue_symbol} asks");
        assert!(!bids.is_empty() && !asks.is_empty());
    }
    sim.shutdown().await;
}
