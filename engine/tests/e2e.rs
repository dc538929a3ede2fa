//! End to end over real sockets: simulator -> feed -> sequencer -> ring -> gateway -> clients.

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tickwire_sdk::L2Book;
use tickwire_sdk::client::{Client, Event};
use tickwire_sdk::wire::{
    ArchivedBody, Channel, Side, StatusCode, TradeId, decimal_string, to_owned,
};

/// Reads an SDK client until it has `n` trades; returns (seq, trade) in arrival order.
async fn collect_trades(c: &mut Client, n: usize) -> Vec<(u64, tickwire_sdk::wire::Trade)> {
    let mut out = Vec::new();
    while out.len() < n {
        let ev = tokio::time::timeout(Duration::from_secs(60), c.next())
            .await
            .expect("trades keep coming")
            .expect("connection open")
            .expect("valid data");
        if let Event::Frames(batch) = ev {
            for f in batch.iter() {
                if let ArchivedBody::Trade(_) = &f.body {
                    let owned = to_owned(f);
                    let tickwire_sdk::wire::Body::Trade(t) = owned.body else {
                        unreachable!()
                    };
                    out.push((owned.seq, t));
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_receive_exactly_the_capture_trades_while_a_stalled_client_is_dropped() {
    let sim = capture_sim().await;
    let server = server_for(&sim, &["BTCUSDT"], |c| {
        c.gateway.write_timeout = Duration::from_secs(2);
    })
    .await;
    wait_subscribed(&sim, 3).await;

    // Fast clients: three SDK clients on trades, one raw JSON client on trades.
    let mut fast = Vec::new();
    let lossless = tickwire_sdk::client::SubscribeOptions {
        policy: tickwire_sdk::client::Policy::Lossless,
        ..Default::default()
    };
    for _ in 0..3 {
        let mut c = Client::connect(&server.ws_url()).await.unwrap();
        c.subscribe_with(&["binance:BTCUSDT"], &[Channel::Trades], &lossless)
            .await
            .unwrap();
        fast.push(c);
    }
    let mut json_client = ws_connect(&server.ws_url()).await;
    send_json(&mut json_client, json!({"op":"subscribe","id":1,"symbols":["binance:BTCUSDT"],"channels":["trades"],"encoding":"json","policy":"lossless"})).await;
    assert_eq!(
        reply_of(&mut json_client, "subscribed").await["type"],
        "subscribed"
    );

    // A client that subscribes to everything in JSON and then never reads again.
    let mut stalled = ws_connect(&server.ws_url()).await;
    send_json(
        &mut stalled,
        json!({"op":"subscribe","id":1,"symbols":["binance:BTCUSDT"],"encoding":"json"}),
    )
    .await;

    sim.start();
    let expected = capture_trades();
    assert_eq!(expected.len(), 9_757);
    for c in &mut fast {
        let got = collect_trades(c, expected.len()).await;
        for (k, ((seq, t), (id, p, q, maker))) in got.iter().zip(&expected).enumerate() {
            assert_eq!(*seq, k as u64 + 1, "trade stream seq is contiguous from 1");
            assert_eq!(t.trade_id, TradeId::Num(*id));
            assert_eq!(decimal_string(t.price, 8), *p);
            assert_eq!(decimal_string(t.qty, 8), *q);
            assert_eq!(t.side == Side::Sell, *maker);
        }
    }
    let mut json_trades = Vec::new();
    while json_trades.len() < expected.len() {
        let v = next_json(&mut json_client, Duration::from_secs(60))
            .await
            .expect("JSON trades keep coming");
        if v["type"] == "trade" {
            json_trades.push(v);
        }
    }
    for (k, (v, (id, p, q, _))) in json_trades.iter().zip(&expected).enumerate() {
        assert_eq!(v["seq"], json!(k + 1));
        assert_eq!(v["venue"], "binance");
        assert_eq!(v["symbol"], "BTCUSDT");
        assert_eq!(v["trade_id"], json!(id.to_string()));
        assert_eq!(v["price"], json!(p));
        assert_eq!(v["qty"], json!(q));
        assert!(v["ts_publish"].as_u64().unwrap() >= v["ts_recv"].as_u64().unwrap());
    }

    // The stalled client cost the others nothing; the server dropped it once its socket stayed
    // full past the write timeout, so its memory is bounded by its socket buffers.
    wait_for(
        "the stalled client to be dropped",
        Duration::from_secs(30),
        || {
            server
                .gateway_stats
                .slow_closed
                .load(std::sync::atomic::Ordering::Relaxed)
                >= 1
        },
    )
    .await;
    drop(stalled);
    server.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn book_from_snapshot_and_deltas_equals_the_venue_book() {
    let sim = capture_sim().await;
    let server = server_for(&sim, &["BTCUSDT"], |_| {}).await;
    wait_subscribed(&sim, 3).await;
    let mut c = Client::connect(&server.ws_url()).await.unwrap();
    c.subscribe(&["binance:BTCUSDT"], &[Channel::Book])
        .await
        .unwrap();
    sim.start();
    let mut book = L2Book::new();
    let mut last_delta_seq = 0;
    let mut snapshots = 0;
    // Read until the replay is over and no book frame came for a while (heartbeats still
    // arrive every second, so watch the book frames, not the connection).
    let mut last_book = std::time::Instant::now();
    loop {
        let finished = sim.status()["finished"].as_bool().unwrap_or(false);
        if finished && last_book.elapsed() > Duration::from_secs(2) {
            break;
        }
        assert!(
            last_book.elapsed() < Duration::from_secs(60),
            "no book data for 60 s"
        );
        let ev = match tokio::time::timeout(Duration::from_millis(500), c.next()).await {
            Err(_) => continue,
            Ok(ev) => ev.expect("open").expect("valid"),
        };
        if let Event::Frames(batch) = ev {
            for f in batch.iter() {
                match &f.body {
                    ArchivedBody::BookSnapshot(_) => {
                        last_book = std::time::Instant::now();
                        snapshots += 1;
                        last_delta_seq = f.seq.to_native();
                    }
                    ArchivedBody::BookDelta(_) => {
                        last_book = std::time::Instant::now();
                        assert_eq!(
                            f.seq.to_native(),
                            last_delta_seq + 1,
                            "book stream seq is contiguous"
                        );
                        last_delta_seq = f.seq.to_native();
                    }
                    ArchivedBody::Status(s) => {
                        let code = StatusCode::from(&s.code);
                        assert!(
                            matches!(code, StatusCode::Connected),
                            "unexpected status {code:?}: {}",
                            s.detail.as_str()
                        );
                    }
                    _ => {}
                }
                book.apply(f);
            }
        }
    }
    assert_eq!(snapshots, 1, "one sync, no gap");
    assert!(book.is_valid());
    // The venue's own book now, from its REST endpoint.
    tickwire_feed::tls::install_crypto_provider();
    let body: Value = reqwest_get(&format!(
        "{}/api/v3/depth?symbol=BTCUSDT&limit=5000",
        sim.rest_url()
    ))
    .await;
    let venue_side = |side: &str| -> Vec<(String, String)> {
        body[side]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l[0].as_str().unwrap().to_string(),
                    l[1].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let ours = |it: &mut dyn Iterator<Item = tickwire_sdk::wire::Level>| -> Vec<(String, String)> {
        it.map(|l| (decimal_string(l.price, 8), decimal_string(l.qty, 8)))
            .collect()
    };
    assert_eq!(ours(&mut book.bids()), venue_side("bids"));
    assert_eq!(ours(&mut book.asks()), venue_side("asks"));
    server.shutdown().await;
    sim.shutdown().await;
}

async fn reqwest_get(url: &str) -> Value {
    let client = reqwest::Client::new();
    let bytes = client.get(url).send().await.unwrap().bytes().await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_control_messages_get_error_replies_and_the_connection_stays() {
    let sim = capture_sim().await;
    let server = server_for(&sim, &["BTCUSDT"], |_| {}).await;
    let mut ws = ws_connect(&server.ws_url()).await;
    let cases = [
        ("{not json", "bad_json"),
        (
            r#"{"op":"subscribe","id":1,"symbols":["binance:NOPEUSDT"]}"#,
            "unknown_symbol",
        ),
        (
            r#"{"op":"subscribe","id":2,"symbols":["kraken"]}"#,
            "bad_symbol",
        ),
        (
            r#"{"op":"subscribe","id":3,"symbols":["binance:BTCUSDT"],"channels":["candles"]}"#,
            "unknown_channel",
        ),
        (r#"{"op":"dance","id":4}"#, "unknown_op"),
    ];
    for (text, code) in cases {
        ws.send(tokio_tungstenite::tungstenite::Message::text(text))
            .await
            .unwrap();
        let v = next_json(&mut ws, Duration::from_secs(5))
            .await
            .expect("an error reply");
        assert_eq!(v["type"], "error", "{text}");
        assert_eq!(v["code"], code, "{text}");
        assert!(!v["message"].as_str().unwrap().is_empty());
    }
    // Still open and working.
    send_json(&mut ws, json!({"op":"ping","id":9})).await;
    let v = next_json(&mut ws, Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        (v["type"].as_str(), v["id"].as_u64()),
        (Some("pong"), Some(9))
    );
    send_json(&mut ws, json!({"op":"list","id":10})).await;
    let v = next_json(&mut ws, Duration::from_secs(5)).await.unwrap();
    assert_eq!(v["symbols"], json!(["binance:BTCUSDT"]));

    // A binary message is a protocol violation: closed with 1003.
    ws.send(tokio_tungstenite::tungstenite::Message::binary(vec![
        1, 2, 3,
    ]))
    .await
    .unwrap();
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
        {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(f))) => break f,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(u16::from(close.unwrap().code), 1003);

    // A client's close is answered with a close echoing its code.
    let mut ws = ws_connect(&server.ws_url()).await;
    ws.close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: 4123.into(),
        reason: "bye".into(),
    }))
    .await
    .unwrap();
    let echo = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
        {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(f))) => break f,
            Some(Ok(_)) => continue,
            other => panic!("expected the close echo, got {other:?}"),
        }
    };
    assert_eq!(u16::from(echo.unwrap().code), 4123);
    server.shutdown().await;
    sim.shutdown().await;
}
