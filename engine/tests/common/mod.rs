//! Helpers shared by the engine's integration tests: a simulator + server pair on loopback,
//! raw JSON clients, and waiting with a deadline.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tickwire_engine::server::{self, ServerConfig, ServerHandle};
use tickwire_feed::binance::BinanceSpot;
use tickwire_feed::sim::{self, SimConfig, SimHandle, SimSource};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A paused simulator replaying the embedded BTCUSDT capture once at 30x (346 s in ~12 s).
/// Not "max": the simulator, like the venue, drops a connection that cannot keep up, and a
/// debug-build feed cannot take 41k messages in a burst.
pub async fn capture_sim() -> SimHandle {
    sim::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        sources: vec![SimSource::CaptureBytes {
            name: "btcusdt_20240808.gz".into(),
            bytes: sim::DEMO_CAPTURE,
        }],
        speed: 30.0,
        looping: false,
        paused: true,
        ping_interval: Duration::from_secs(20),
        venue: tickwire_sdk::wire::Venue::Binance,
        pacing: sim::Pacing::Timer,
    })
    .await
    .expect("simulator starts")
}

/// A server ingesting `symbols` from the simulator, with a ring big enough to hold the whole
/// capture (clients in debug builds may read slowly) and full-depth snapshots.
pub async fn server_for(
    sim: &SimHandle,
    symbols: &[&str],
    tweak: impl FnOnce(&mut ServerConfig),
) -> ServerHandle {
    let mut spec = BinanceSpot::new(symbols.iter().map(|s| s.to_string()).collect())
        .at(&sim.ws_url(), &sim.rest_url());
    spec.snapshot_depth = 5000;
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), vec![Arc::new(spec)]);
    config.ring_capacity = 1 << 18;
    tweak(&mut config);
    server::start(config).await.expect("server starts")
}

/// Waits until the simulator has `streams` stream subscriptions (the feed's SUBSCRIBE landed).
pub async fn wait_subscribed(sim: &SimHandle, streams: u64) {
    wait_for(
        "the feed to subscribe at the simulator",
        Duration::from_secs(30),
        || sim.status()["streams_subscribed"].as_u64().unwrap_or(0) >= streams,
    )
    .await;
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after `limit`.
pub async fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A raw WebSocket client (no SDK): what any stock client would do.
pub async fn ws_connect(url: &str) -> Ws {
    tokio_tungstenite::connect_async(url)
        .await
        .expect("connects")
        .0
}

/// Sends a JSON text message.
pub async fn send_json(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.expect("sends");
}

/// The next text message as JSON, within `limit`.
pub async fn next_json(ws: &mut Ws, limit: Duration) -> Option<Value> {
    loop {
        let msg = tokio::time::timeout(limit, ws.next()).await.ok()??.ok()?;
        match msg {
            Message::Text(t) => return serde_json::from_str(t.as_str()).ok(),
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

/// Reads JSON messages until one has `"type" == kind` (skipping data frames).
pub async fn reply_of(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let v = next_json(ws, Duration::from_secs(10))
            .await
            .expect("a reply");
        if v["type"] == kind || v["type"] == "error" {
            return v;
        }
    }
}

/// The capture's raw trades, in order: (id, price text, qty text, buyer-is-maker).
pub fn capture_trades() -> Vec<(u64, String, String, bool)> {
    let reader = tickwire_feed::capture::CaptureReader::from_bytes("demo", sim::DEMO_CAPTURE);
    reader
        .map(|r| r.unwrap())
        .filter_map(|r| {
            let v: Value = serde_json::from_slice(&r.payload).ok()?;
            let d = &v["data"];
            (d["e"] == "trade").then(|| {
                (
                    d["t"].as_u64().unwrap(),
                    d["p"].as_str().unwrap().to_string(),
                    d["q"].as_str().unwrap().to_string(),
                    d["m"].as_bool().unwrap(),
                )
            })
        })
        .collect()
}

/// A path under the system temp dir for one test's files, emptied (not created):
/// `tickwire-<suite>-<name>-<pid>`.
pub fn temp_dir(suite: &str, name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tickwire-{suite}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
