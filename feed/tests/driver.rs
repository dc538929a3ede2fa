//! The connection driver against a scripted venue on a real socket: subscribe, answer pings,
//! skip malformed messages, reconnect with backoff and resubscribe, the silence watchdog, and
//! a status frame for every transition.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tickwire_feed::binance::BinanceSpot;
use tickwire_feed::driver::{self, DriverConfig, DriverStats, Shutdown};
use tickwire_feed::venue::ChannelSet;
use tickwire_sdk::wire::{Body, Channel, Frame, StatusCode, TradeId};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

type Venue = WebSocketStream<TcpStream>;

fn trade(id: u64) -> String {
    format!(
        r#"{{"stream":"btcusdt@trade","data":{{"e":"trade","E":1723161255343000,"s":"BTCUSDT","t":{id},"p":"61837.63000000","q":"0.02000000","T":1723161255342000,"m":true,"M":true}}}}"#
    )
}

async fn accept(listener: &TcpListener) -> Venue {
    let (tcp, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("the driver connects")
        .unwrap();
    tokio_tungstenite::accept_async(tcp).await.unwrap()
}

/// Reads the subscription request and acknowledges it as Binance does.
async fn expect_subscribe(ws: &mut Venue) {
    let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("a SUBSCRIBE")
        .unwrap()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
    assert_eq!(v["method"], "SUBSCRIBE");
    assert_eq!(v["params"], serde_json::json!(["btcusdt@trade"]));
    ws.send(Message::text(format!(
        r#"{{"result":null,"id":{}}}"#,
        v["id"]
    )))
    .await
    .unwrap();
}

/// What the test sees of the driver's output: statuses by code and trades by id.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Status(StatusCode),
    Trade(u64),
}

fn summarize(frames: &[Frame]) -> Vec<Seen> {
    frames
        .iter()
        .filter_map(|f| match &f.body {
            Body::Status(s) => Some(Seen::Status(s.code)),
            Body::Trade(t) => match t.trade_id {
                TradeId::Num(n) => Some(Seen::Trade(n)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_resubscribes_watches_silence_and_reports_every_transition() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut spec = BinanceSpot::new(vec!["btcusdt".into()])
        .at(&format!("ws://{addr}"), &format!("http://{addr}"));
    spec.channels = ChannelSet::of(&[Channel::Trades]);
    let config = DriverConfig {
        ping_every: Duration::from_millis(100),
        stale_after: Duration::from_millis(400),
        dead_after: Duration::from_millis(1_000),
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        ..DriverConfig::default()
    };
    let (tx, rx) = crossbeam::channel::bounded::<Frame>(10_000);
    let stats = Arc::new(DriverStats::default());
    let (shutdown, shutdown_rx) = Shutdown::new();
    let driver = tokio::spawn(driver::run(
        Arc::new(spec),
        Arc::new(tx),
        config,
        stats.clone(),
        shutdown_rx,
    ));

    // Connection 1: subscribe, a ping answered with its payload, junk, two trades, then the
    // venue closes.
    let mut ws = accept(&listener).await;
    expect_subscribe(&mut ws).await;
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    let pong = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            Message::Pong(p) => break p,
            _ => continue, // the driver's own pings
        }
    };
    assert_eq!(&pong[..], b"are you there");
    ws.send(Message::text("{not json")).await.unwrap();
    ws.send(Message::text(trade(1))).await.unwrap();
    ws.send(Message::text(trade(2))).await.unwrap();
    ws.close(Some(CloseFrame {
        code: 1001.into(),
        reason: "going away".into(),
    }))
    .await
    .unwrap();
    drop(ws);

    // Connection 2: resubscribed; a trade after a hole in the ids; then silence (no data, no
    // pongs), which must first be reported stale, then end the connection.
    let mut ws = accept(&listener).await;
    expect_subscribe(&mut ws).await;
    ws.send(Message::text(trade(5))).await.unwrap();
    ws.flush().await.unwrap();
    // Not reading: pings stay unanswered. Hold the socket until the driver gives up on it.
    let mut ws3 = accept(&listener).await;
    drop(ws);

    // Connection 3: one more trade, then the driver is shut down.
    expect_subscribe(&mut ws3).await;
    ws3.send(Message::text(trade(6))).await.unwrap();
    let mut frames = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !frames
        .iter()
        .any(|f: &Frame| matches!(&f.body, Body::Trade(t) if t.trade_id == TradeId::Num(6)))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "trade 6 never arrived: {:?}",
            summarize(&frames)
        );
        while let Ok(f) = rx.try_recv() {
            frames.push(f);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.trigger();
    // The driver closes its connection politely.
    let close = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws3.next().await {
                Some(Ok(Message::Close(_))) | None => return true,
                Some(Ok(_)) => continue,
                Some(Err(_)) => return true,
            }
        }
    })
    .await;
    assert!(
        close.is_ok(),
        "the driver closes its connection on shutdown"
    );
    tokio::time::timeout(Duration::from_secs(5), driver)
        .await
        .expect("the driver stops")
        .unwrap();
    frames.extend(rx.try_iter());

    use Seen::*;
    use StatusCode::*;
    assert_eq!(
        summarize(&frames),
        vec![
            Status(Connected),
            Trade(1),
            Trade(2),
            Status(Disconnected),
            Status(Connected),
            Status(Gap),
            Trade(5),
            Status(Stale),
            Status(Disconnected),
            Status(Connected),
            Trade(6),
            Status(Disconnected),
        ]
    );
    let details: Vec<String> = frames
        .iter()
        .filter_map(|f| match &f.body {
            Body::Status(s) => Some(s.detail.clone()),
            _ => None,
        })
        .collect();
    assert!(
        details[1].contains("1001"),
        "the venue's close code is reported: {}",
        details[1]
    );
    assert!(
        details[3].contains("3..=4"),
        "the missing trade ids are named: {}",
        details[3]
    );
    assert!(details[5].contains("presumed dead"), "{}", details[5]);
    assert!(details[7].contains("shutdown"), "{}", details[7]);
    // Every frame names the instrument and carries its receive time.
    assert!(frames.iter().all(|f| f.instrument != 0 && f.ts_recv != 0));
    assert_eq!(stats.connects.load(Ordering::Relaxed), 3);
    assert_eq!(
        stats.errors.load(Ordering::Relaxed),
        1,
        "the malformed message was counted"
    );
    assert_eq!(
        stats.messages.load(Ordering::Relaxed),
        8,
        "3 acks, junk, 4 trades"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_retried_with_backoff_until_the_venue_appears() {
    // Reserve a port, close it, point the driver there: connects fail until we listen again.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let mut spec = BinanceSpot::new(vec!["btcusdt".into()])
        .at(&format!("ws://{addr}"), &format!("http://{addr}"));
    spec.channels = ChannelSet::of(&[Channel::Trades]);
    let config = DriverConfig {
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        ..DriverConfig::default()
    };
    let (tx, rx) = crossbeam::channel::bounded::<Frame>(1_000);
    let stats = Arc::new(DriverStats::default());
    let (shutdown, shutdown_rx) = Shutdown::new();
    let driver = tokio::spawn(driver::run(
        Arc::new(spec),
        Arc::new(tx),
        config,
        stats.clone(),
        shutdown_rx,
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let failures = stats.disconnects.load(Ordering::Relaxed);
    assert!(
        failures >= 3,
        "several attempts, spaced by backoff: {failures}"
    );
    assert!(failures < 40, "but not a tight loop: {failures}");
    let listener = TcpListener::bind(addr).await.unwrap();
    let mut ws = accept(&listener).await;
    expect_subscribe(&mut ws).await;
    ws.send(Message::text(trade(1))).await.unwrap();
    let got = tokio::task::spawn_blocking(move || {
        rx.iter()
            .find(|f| matches!(f.body, Body::Trade(_)))
            .is_some()
    });
    assert!(
        tokio::time::timeout(Duration::from_secs(5), got)
            .await
            .unwrap()
            .unwrap()
    );
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(5), driver)
        .await
        .unwrap()
        .unwrap();
}
