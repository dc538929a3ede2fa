//! The resilient client against scripted fake servers on 127.0.0.1: each test plays the
//! server's side of the protocol step by step (checking what the client sends, sending binary
//! batches with deliberate holes, closing the connection) and checks what the client does.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tickwire_sdk::backoff::BackoffConfig;
use tickwire_sdk::books::Books;
use tickwire_sdk::client::{Client, ClientError, Event, Policy, SubscribeOptions};
use tickwire_sdk::wire::{
    BatchWriter, Body, BookDelta, BookSide, BookSnapshot, Channel, Definition, Encoder, Frame,
    Level, Side, Trade, TradeId, Venue, flags, instrument_id,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

type ServerWs = WebSocketStream<TcpStream>;

const LIMIT: Duration = Duration::from_secs(10);
const BTC: &str = "binance:BTCUSDT";
const ETH: &str = "binance:ETHUSDT";

fn btc() -> u32 {
    instrument_id(Venue::Binance, "BTCUSDT")
}

fn eth() -> u32 {
    instrument_id(Venue::Binance, "ETHUSDT")
}

async fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    (listener, url)
}

/// Accepts one WebSocket connection, answering 401 unless it carries `Bearer <token>` (when
/// a token is expected). Returns `None` if the handshake was refused.
async fn accept(listener: &TcpListener, token: Option<&str>) -> Option<ServerWs> {
    let (tcp, _) = tokio::time::timeout(LIMIT, listener.accept())
        .await
        .expect("the client connects")
        .unwrap();
    let want = token.map(|t| format!("Bearer {t}"));
    // The callback's shape is tungstenite's.
    #[allow(clippy::result_large_err)]
    let check = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let got = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if want.is_none() || got == want.as_deref() {
            Ok(resp)
        } else {
            let mut refusal = ErrorResponse::new(Some("missing or wrong token".into()));
            *refusal.status_mut() = StatusCode::UNAUTHORIZED;
            Err(refusal)
        }
    };
    tokio_tungstenite::accept_hdr_async(tcp, check).await.ok()
}

/// The next control message from the client.
async fn recv_json(ws: &mut ServerWs) -> Value {
    loop {
        let msg = tokio::time::timeout(LIMIT, ws.next())
            .await
            .expect("the client sends a message in time")
            .expect("the connection is open")
            .expect("a valid message");
        match msg {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a JSON control message, got {other:?}"),
        }
    }
}

async fn send_json(ws: &mut ServerWs, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

/// Reads a subscribe request, checks it asks for binary, and acks it the server's way.
async fn ack_subscribe(ws: &mut ServerWs) -> Value {
    let req = recv_json(ws).await;
    assert_eq!(req["op"], "subscribe", "{req}");
    assert_eq!(req["encoding"], "binary", "{req}");
    send_json(
        ws,
        json!({"type": "subscribed", "id": req["id"], "symbols": req["symbols"],
               "channels": req["channels"], "encoding": "binary"}),
    )
    .await;
    req
}

/// Sends frames as one binary batch, as the gateway does.
async fn send_batch(ws: &mut ServerWs, frames: &[Frame]) {
    let mut enc = Encoder::new();
    let mut w = BatchWriter::with_capacity(4096);
    for f in frames {
        w.push(enc.encode(f));
    }
    ws.send(Message::binary(w.take())).await.unwrap();
}

async fn close(ws: &mut ServerWs, code: u16, reason: &str) {
    ws.send(Message::Close(Some(CloseFrame {
        code: code.into(),
        reason: reason.to_string().into(),
    })))
    .await
    .unwrap();
}

fn frame(instrument: u32, seq: u64, fl: u8, body: Body) -> Frame {
    let mut f = Frame::new(Venue::Binance, instrument, 0, 1, body).with_flags(fl);
    f.seq = seq;
    f.ts_publish = 2;
    f
}

fn definition(instrument: u32, symbol: &str) -> Frame {
    frame(
        instrument,
        1,
        0,
        Body::Definition(Definition {
            symbol: symbol.into(),
            price_decimals: 2,
            qty_decimals: 5,
        }),
    )
}

fn snapshot(seq: u64, bid: i64) -> Frame {
    frame(
        btc(),
        seq,
        flags::SNAPSHOT | flags::LAST,
        Body::BookSnapshot(BookSnapshot {
            bids: vec![Level { price: bid, qty: 1 }],
            asks: vec![Level {
                price: bid + 1,
                qty: 1,
            }],
        }),
    )
}

fn delta(seq: u64, price: i64) -> Frame {
    frame(
        btc(),
        seq,
        flags::LAST,
        Body::BookDelta(BookDelta {
            side: BookSide::Bid,
            price,
            qty: 7,
        }),
    )
}

fn trade(instrument: u32, seq: u64) -> Frame {
    frame(
        instrument,
        seq,
        0,
        Body::Trade(Trade {
            price: 100,
            qty: 1,
            side: Side::Buy,
            trade_id: TradeId::Num(seq),
        }),
    )
}

/// The next event, within the time limit.
async fn next_event(c: &mut Client) -> Event {
    tokio::time::timeout(LIMIT, c.next())
        .await
        .expect("an event in time")
        .expect("the client goes on")
        .expect("no error")
}

/// (instrument, channel, expected, got) of a gap event.
fn gap(ev: &Event) -> Option<(u32, Channel, u64, u64)> {
    match *ev {
        Event::Gap {
            instrument,
            channel,
            expected,
            got,
        } => Some((instrument, channel, expected, got)),
        _ => None,
    }
}

/// The (channel, seq) of every frame of a batch event.
fn seqs(ev: &Event) -> Vec<(u32, Channel, u64)> {
    match ev {
        Event::Frames(b) => b
            .iter()
            .map(|f| (f.instrument.to_native(), f.channel(), f.seq.to_native()))
            .collect(),
        _ => Vec::new(),
    }
}

fn fast_backoff() -> BackoffConfig {
    BackoffConfig {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(200),
        reset_after: Duration::from_secs(5),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_book_hole_asks_for_one_snapshot_and_the_book_recovers_while_a_trades_hole_is_only_reported()
 {
    let (listener, url) = listen().await;
    let server = tokio::spawn(async move {
        let mut ws = accept(&listener, Some("t0k"))
            .await
            .expect("token accepted");
        let sub = ack_subscribe(&mut ws).await;
        assert_eq!(sub["symbols"], json!([BTC]));
        assert_eq!(sub["channels"], json!(["book", "trades"]));
        assert_eq!(sub["policy"], "lossless");
        assert_eq!(sub["depth"], 5);
        assert_eq!(sub["snapshot"], true);
        send_batch(
            &mut ws,
            &[
                definition(btc(), "BTCUSDT"),
                snapshot(10, 1000),
                delta(11, 999),
                delta(12, 998),
                trade(btc(), 1),
                trade(btc(), 2),
            ],
        )
        .await;
        // Holes: trades 3 and book 13 lost, then book 15 lost while a snapshot is on its way.
        send_batch(&mut ws, &[trade(btc(), 4), delta(14, 997)]).await;
        send_batch(&mut ws, &[delta(16, 996)]).await;

        let req = recv_json(&mut ws).await;
        assert_eq!(
            req["op"], "snapshot",
            "a book hole asks for a snapshot: {req}"
        );
        assert_eq!(req["symbols"], json!([BTC]));
        assert_eq!(req["channels"], json!(["book"]), "trades are not asked for");
        send_batch(&mut ws, &[snapshot(20, 2000), delta(21, 1999)]).await;
        send_json(&mut ws, json!({"type": "snapshot", "id": req["id"]})).await;

        // One request per stream in flight: the second hole asked for nothing, so the next
        // message is the client's `list`.
        let list = recv_json(&mut ws).await;
        assert_eq!(list["op"], "list", "no second snapshot request: {list}");
        send_json(
            &mut ws,
            json!({"type": "instruments", "id": list["id"], "symbols": [BTC]}),
        )
        .await;

        // The request was answered, so a new hole may ask again.
        send_batch(&mut ws, &[delta(23, 1998)]).await;
        let again = recv_json(&mut ws).await;
        assert_eq!(again["op"], "snapshot", "{again}");
        send_batch(&mut ws, &[snapshot(30, 3000)]).await;
        send_json(&mut ws, json!({"type": "snapshot", "id": again["id"]})).await;
        // Wait for the client to go.
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Close(_) = m {
                break;
            }
        }
    });

    let mut c = Client::builder(&url).token("t0k").connect().await.unwrap();
    let opts = SubscribeOptions::new().policy(Policy::Lossless).depth(5);
    let ack = c
        .subscribe_with(&[BTC], &[Channel::Book, Channel::Trades], &opts)
        .await
        .unwrap();
    assert_eq!(ack["type"], "subscribed");
    let mut books = Books::new();
    let mut gaps = Vec::new();
    let book_of = |books: &Books| books.get(Venue::Binance, "BTCUSDT").cloned().unwrap();
    loop {
        let ev = next_event(&mut c).await;
        books.on_event(&ev);
        if let Some(g) = gap(&ev) {
            gaps.push(g);
        }
        assert!(
            !matches!(ev, Event::Reply(_) | Event::Refused { .. }),
            "{ev:?}"
        );
        let s = seqs(&ev);
        if s.contains(&(btc(), Channel::Book, 12)) {
            assert!(book_of(&books).is_valid(), "snapshot and contiguous deltas");
        }
        if s.contains(&(btc(), Channel::Book, 14)) || s.contains(&(btc(), Channel::Book, 16)) {
            assert!(!book_of(&books).is_valid(), "a hole invalidates the book");
        }
        if s.contains(&(btc(), Channel::Book, 21)) {
            break;
        }
    }
    let book = book_of(&books);
    assert!(book.is_valid(), "the snapshot repaired the book");
    assert_eq!(
        book.best_bid(),
        Some(Level {
            price: 2000,
            qty: 1
        })
    );
    assert_eq!(book.depth(), (2, 1), "snapshot 20 plus delta 21");
    assert_eq!(
        gaps,
        vec![
            (btc(), Channel::Trades, 3, 4),
            (btc(), Channel::Book, 13, 14),
            (btc(), Channel::Book, 15, 16),
        ]
    );
    assert_eq!(c.list().await.unwrap(), vec![BTC.to_string()]);

    // The next hole asks again, and the new snapshot repairs the book again.
    loop {
        let ev = next_event(&mut c).await;
        books.on_event(&ev);
        if seqs(&ev).contains(&(btc(), Channel::Book, 30)) {
            break;
        }
    }
    assert!(book_of(&books).is_valid());
    assert_eq!(c.seq().holes(), 4);
    c.close().await.unwrap();
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_with_backoff_resubscribes_everything_and_reports_the_trades_missed() {
    let (listener, url) = listen().await;
    let server = tokio::spawn(async move {
        let mut ws = accept(&listener, None).await.unwrap();
        let book = ack_subscribe(&mut ws).await;
        assert_eq!(book["policy"], "lossless");
        let trades = ack_subscribe(&mut ws).await;
        assert_eq!(trades["policy"], "interval");
        assert_eq!(trades["interval_ms"], 250);
        assert_eq!(trades["snapshot"], false);
        let quotes = ack_subscribe(&mut ws).await;
        assert_eq!(quotes["symbols"], json!([ETH]));
        let unsub = recv_json(&mut ws).await;
        assert_eq!(unsub["op"], "unsubscribe");
        send_json(
            &mut ws,
            json!({"type": "unsubscribed", "id": unsub["id"], "symbols": [ETH], "channels": ["quotes"]}),
        )
        .await;
        send_batch(
            &mut ws,
            &[
                snapshot(10, 1000),
                trade(btc(), 1),
                trade(btc(), 2),
                trade(eth(), 1),
            ],
        )
        .await;
        close(&mut ws, 1001, "restarting").await;
        drop(ws);

        // First attempt: the TCP connection is taken and dropped before the handshake.
        let (tcp, _) = tokio::time::timeout(LIMIT, listener.accept())
            .await
            .unwrap()
            .unwrap();
        drop(tcp);
        let failed_at = Instant::now();

        // Second attempt: every active subscription comes again, with snapshots.
        let mut ws = accept(&listener, None).await.unwrap();
        let backoff = failed_at.elapsed();
        let mut resubs = vec![ack_subscribe(&mut ws).await, ack_subscribe(&mut ws).await];
        for r in &mut resubs {
            r.as_object_mut().unwrap().remove("id");
        }
        resubs.sort_by_key(|r| r.to_string());
        let mut want = vec![
            json!({"op": "subscribe", "symbols": [BTC], "channels": ["book"], "encoding": "binary",
                   "policy": "lossless", "depth": 5, "snapshot": true}),
            json!({"op": "subscribe", "symbols": [BTC, ETH], "channels": ["trades"], "encoding": "binary",
                   "policy": "interval", "interval_ms": 250, "snapshot": true}),
        ];
        want.sort_by_key(|r| r.to_string());
        assert_eq!(
            resubs, want,
            "same symbols, channels, policy and depth; quotes dropped"
        );
        // BTC trades 3 and 4 were published while the client was away.
        send_batch(
            &mut ws,
            &[snapshot(40, 4000), trade(btc(), 5), trade(eth(), 2)],
        )
        .await;
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Close(_) = m {
                break;
            }
        }
        backoff
    });

    let mut c = Client::builder(&url)
        .reconnect(true)
        .backoff(fast_backoff())
        .connect()
        .await
        .unwrap();
    c.subscribe_with(
        &[BTC],
        &[Channel::Book],
        &SubscribeOptions::new().policy(Policy::Lossless).depth(5),
    )
    .await
    .unwrap();
    let interval = SubscribeOptions::new()
        .policy(Policy::Interval(Duration::from_millis(250)))
        .snapshot(false);
    c.subscribe_with(&[BTC, ETH], &[Channel::Trades], &interval)
        .await
        .unwrap();
    c.subscribe(&[ETH], &[Channel::Quotes]).await.unwrap();
    c.unsubscribe(&[ETH], &[Channel::Quotes]).await.unwrap();
    assert_eq!(c.subscriptions().count(), 3);

    let mut books = Books::new();
    let mut events = Vec::new();
    let mut seen_disconnect = false;
    // Read as a select! loop with a short tick would: the next() future is dropped every
    // few ms, shorter than any backoff delay, and the reconnect must still go on.
    let deadline = Instant::now() + LIMIT;
    'read: loop {
        assert!(
            Instant::now() < deadline,
            "no reconnect in time: {events:?}"
        );
        let ev = match tokio::time::timeout(Duration::from_millis(3), c.next()).await {
            Err(_) => continue,
            Ok(ev) => ev.expect("goes on").expect("no error"),
        };
        books.on_event(&ev);
        let book_valid = books
            .get(Venue::Binance, "BTCUSDT")
            .is_some_and(|b| b.is_valid());
        match &ev {
            Event::Disconnected { code, reason } => {
                assert_eq!((*code, reason.as_str()), (Some(1001), "restarting"));
                assert!(!book_valid, "a lost connection makes the book stale");
                seen_disconnect = true;
            }
            Event::Reconnected { attempt, downtime } => {
                assert_eq!(*attempt, 2, "the first attempt failed");
                assert!(*downtime >= Duration::from_millis(25), "{downtime:?}");
                assert!(!book_valid, "not before the new snapshot");
            }
            Event::Frames(_) if seen_disconnect => {
                assert!(book_valid, "the resubscription brought a snapshot");
                if seqs(&ev).contains(&(eth(), Channel::Trades, 2)) {
                    events.push(format!("{ev:?}"));
                    break 'read;
                }
            }
            Event::Reply(_) | Event::Refused { .. } | Event::Closed { .. } => {
                panic!("unexpected {ev:?}")
            }
            _ => {}
        }
        events.push(match gap(&ev) {
            Some(g) => format!("gap {g:?}"),
            None => match ev {
                Event::Frames(_) => "frames".into(),
                Event::Disconnected { .. } => "disconnected".into(),
                Event::Reconnected { .. } => "reconnected".into(),
                _ => "other".into(),
            },
        });
    }
    let gap_line = format!("gap {:?}", (btc(), Channel::Trades, 3u64, 5u64));
    let order: Vec<&str> = events
        .iter()
        .map(String::as_str)
        .filter(|e| !e.starts_with("Frames"))
        .collect();
    assert_eq!(
        order,
        vec!["frames", "disconnected", "reconnected", gap_line.as_str()],
        "the trades missed while away are reported; ETH trades continued"
    );
    c.close().await.unwrap();
    let backoff = server.await.unwrap();
    assert!(
        backoff >= Duration::from_millis(40),
        "the second attempt waited for its backoff ({backoff:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_goes_in_a_bearer_header_and_a_refused_token_is_fatal() {
    let (listener, url) = listen().await;
    let server = tokio::spawn(async move {
        // A wrong token, then a good one.
        assert!(accept(&listener, Some("good")).await.is_none());
        let mut ws = accept(&listener, Some("good")).await.unwrap();
        close(&mut ws, 1001, "restarting").await;
        drop(ws);
        // The server came back with another token: the reconnect is refused.
        assert!(accept(&listener, Some("rotated")).await.is_none());
    });
    match Client::builder(&url).token("bad").connect().await {
        Err(ClientError::Unauthorized { status, message }) => {
            assert_eq!(status, 401);
            assert_eq!(message, "missing or wrong token");
        }
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    let mut c = Client::builder(&url)
        .token("good")
        .reconnect(true)
        .backoff(fast_backoff())
        .connect()
        .await
        .unwrap();
    assert!(matches!(
        next_event(&mut c).await,
        Event::Disconnected { .. }
    ));
    let end = tokio::time::timeout(LIMIT, c.next()).await.unwrap();
    assert!(
        matches!(
            end,
            Some(Err(ClientError::Unauthorized { status: 401, .. }))
        ),
        "{end:?}"
    );
    assert!(c.next().await.is_none(), "no retry after a refused token");
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_the_snapshot_op_is_asked_once_per_connection() {
    let (listener, url) = listen().await;
    let server = tokio::spawn(async move {
        let mut ws = accept(&listener, None).await.unwrap();
        ack_subscribe(&mut ws).await;
        send_batch(&mut ws, &[snapshot(10, 1000), delta(12, 999)]).await;
        let req = recv_json(&mut ws).await;
        assert_eq!(req["op"], "snapshot");
        send_json(
            &mut ws,
            json!({"type": "error", "id": req["id"], "code": "unknown_op",
                   "message": "unknown op \"snapshot\"; ops are subscribe, unsubscribe, list, ping"}),
        )
        .await;
        send_batch(&mut ws, &[delta(20, 998)]).await;
        let next = recv_json(&mut ws).await;
        assert_eq!(next["op"], "list", "not asked again: {next}");
        send_json(
            &mut ws,
            json!({"type": "instruments", "id": next["id"], "symbols": [BTC]}),
        )
        .await;
    });
    let mut c = Client::connect(&url).await.unwrap();
    c.subscribe(&[BTC], &[Channel::Book]).await.unwrap();
    let mut refused = None;
    let mut gaps = 0;
    while gaps < 2 {
        let ev = next_event(&mut c).await;
        match ev {
            Event::Gap { .. } => gaps += 1,
            Event::Refused { op, code, .. } => refused = Some((op, code)),
            _ => {}
        }
    }
    // The refusal arrives before the second hole's frames (the server sent it first).
    assert_eq!(
        refused,
        Some(("snapshot".to_string(), "unknown_op".to_string()))
    );
    assert_eq!(c.list().await.unwrap(), vec![BTC.to_string()]);
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_reconnect_a_close_ends_the_client_as_before() {
    let (listener, url) = listen().await;
    let server = tokio::spawn(async move {
        let mut ws = accept(&listener, None).await.unwrap();
        ack_subscribe(&mut ws).await;
        send_batch(&mut ws, &[trade(btc(), 1)]).await;
        close(&mut ws, 4001, "slow consumer: 70000 frames behind").await;
        // Nobody reconnects.
        tokio::time::timeout(Duration::from_millis(500), listener.accept())
            .await
            .is_err()
    });
    let mut c = Client::connect(&url).await.unwrap();
    c.subscribe(&[BTC], &[Channel::Trades]).await.unwrap();
    assert!(matches!(next_event(&mut c).await, Event::Frames(_)));
    match next_event(&mut c).await {
        Event::Closed { code, reason } => {
            assert_eq!(code, 4001);
            assert!(reason.starts_with("slow consumer"));
        }
        other => panic!("expected the close, got {other:?}"),
    }
    assert!(c.next().await.is_none());
    assert!(matches!(c.list().await, Err(ClientError::Closed)));
    assert!(server.await.unwrap(), "the client did not reconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_dropped_and_replaced() {
    let (listener, url) = listen().await;
    let server = tokio::spawn(async move {
        // Accepts, then never reads or writes: the client's pings go unanswered.
        let silent = accept(&listener, None).await.unwrap();
        let mut ws = accept(&listener, None).await.unwrap();
        drop(silent);
        send_batch(&mut ws, &[trade(btc(), 1)]).await;
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Close(_) = m {
                break;
            }
        }
    });
    let mut c = Client::builder(&url)
        .reconnect(true)
        .backoff(fast_backoff())
        .idle_timeout(Duration::from_millis(300))
        .connect()
        .await
        .unwrap();
    let started = Instant::now();
    match next_event(&mut c).await {
        Event::Disconnected { code: None, reason } => {
            assert!(reason.contains("no message"), "{reason}");
            assert!(started.elapsed() >= Duration::from_millis(250));
        }
        other => panic!("expected the idle connection to be dropped, got {other:?}"),
    }
    assert!(matches!(
        next_event(&mut c).await,
        Event::Reconnected { attempt: 1, .. }
    ));
    assert!(matches!(next_event(&mut c).await, Event::Frames(_)));
    c.close().await.unwrap();
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gives_up_after_max_attempts_when_the_server_stays_away() {
    let (listener, url) = listen().await;
    let server = tokio::spawn(async move {
        let mut ws = accept(&listener, None).await.unwrap();
        close(&mut ws, 1001, "going away for good").await;
        // Dropping the listener: every reconnect attempt is refused.
    });
    let mut c = Client::builder(&url)
        .reconnect(true)
        .backoff(fast_backoff())
        .max_attempts(3)
        .connect()
        .await
        .unwrap();
    server.await.unwrap();
    assert!(matches!(
        next_event(&mut c).await,
        Event::Disconnected {
            code: Some(1001),
            ..
        }
    ));
    let started = Instant::now();
    match tokio::time::timeout(LIMIT, c.next()).await.unwrap() {
        Some(Err(ClientError::GaveUp { attempts, last })) => {
            assert_eq!(attempts, 3);
            assert!(last.contains("refused"), "{last}");
        }
        other => panic!("expected to give up, got {other:?}"),
    }
    // Three delays of at least 25, 50 and 100 ms.
    assert!(started.elapsed() >= Duration::from_millis(175));
    assert!(c.next().await.is_none());
    assert!(matches!(c.list().await, Err(ClientError::Closed)));
}
