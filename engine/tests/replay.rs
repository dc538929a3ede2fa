//! `tickwire replay DIR --listen`: a recording served over the live WebSocket API. Clients get
//! the recorded frames byte for byte and in order, between `replay_start` and `replay_end`
//! markers; a full-speed replay waits for its lossless clients instead of lapping them; a
//! paced replay follows the recorded times; damage is reported, not skipped silently.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use serde_json::json;
use tickwire_engine::replay::{self, ReplayConfig, Speed};
use tickwire_engine::sequencer::StreamSeqs;
use tickwire_sdk::recording::{RecordingWriter, WriterOptions};
use tickwire_sdk::wire::{
    ArchivedBody, Batch, Body, BookDelta, BookSide, BookSnapshot, Definition, Frame,
    InstrumentInfo, Level, Quote, Side, StatusCode, Trade, TradeId, Venue, encode, flags,
    instrument_id,
};
use tokio_tungstenite::tungstenite::Message;

const BASE_TS: u64 = 1_723_161_254_000_000_000;

/// Writes a recording of `per_instrument` frames for each of BTCUSDT and ETHUSDT (interleaved,
/// `step_ns` apart): a definition and a book snapshot each, then trades, quotes and book
/// deltas, sequenced as the engine does. Returns every frame's bytes in recorded order.
fn write_recording(
    dir: &std::path::Path,
    per_instrument: usize,
    step_ns: u64,
    options: WriterOptions,
) -> Vec<Vec<u8>> {
    let symbols = ["BTCUSDT", "ETHUSDT"];
    let infos: Vec<InstrumentInfo> = symbols
        .iter()
        .map(|s| InstrumentInfo {
            id: instrument_id(Venue::Binance, s),
            venue: Venue::Binance,
            symbol: s.to_string(),
            price_decimals: 2,
            qty_decimals: 5,
        })
        .collect();
    let mut w = RecordingWriter::create(dir, options, &infos).expect("a new recording");
    let mut seqs = StreamSeqs::default();
    let mut out = Vec::new();
    let mut ts = BASE_TS;
    for i in 0..per_instrument {
        for (k, sym) in symbols.iter().enumerate() {
            let id = instrument_id(Venue::Binance, sym);
            let px = (60_000 + k as i64 * 1_000 + (i % 50) as i64) * 1_000_000_000;
            let (body, fl) = match i {
                0 => (
                    Body::Definition(Definition {
                        symbol: sym.to_string(),
                        price_decimals: 2,
                        qty_decimals: 5,
                    }),
                    0,
                ),
                1 => (
                    Body::BookSnapshot(BookSnapshot {
                        bids: (1..=5)
                            .map(|l| Level {
                                price: px - l * 1_000_000_000,
                                qty: 1_000_000_000,
                            })
                            .collect(),
                        asks: (1..=5)
                            .map(|l| Level {
                                price: px + l * 1_000_000_000,
                                qty: 1_000_000_000,
                            })
                            .collect(),
                    }),
                    flags::SNAPSHOT | flags::LAST,
                ),
                _ => match i % 3 {
                    0 => (
                        Body::Trade(Trade {
                            price: px,
                            qty: 10_000_000 + i as i64,
                            side: if i % 2 == 0 { Side::Buy } else { Side::Sell },
                            trade_id: TradeId::Num(i as u64),
                        }),
                        0,
                    ),
                    1 => (
                        Body::Quote(Quote {
                            bid_px: px - 1_000_000_000,
                            bid_qty: 2_000_000_000,
                            ask_px: px + 1_000_000_000,
                            ask_qty: 3_000_000_000,
                        }),
                        0,
                    ),
                    _ => (
                        Body::BookDelta(BookDelta {
                            side: if i % 2 == 0 {
                                BookSide::Bid
                            } else {
                                BookSide::Ask
                            },
                            price: px + if i % 2 == 0 { -7 } else { 7 } * 1_000_000_000,
                            qty: (i % 4) as i64 * 1_000_000,
                        }),
                        flags::LAST,
                    ),
                },
            };
            let mut f = Frame::new(Venue::Binance, id, ts - 1_000, ts, body).with_flags(fl);
            seqs.assign(&mut f);
            f.ts_publish = ts + 500;
            ts += step_ns;
            let bytes = encode(&f);
            w.append_encoded(&bytes).expect("append");
            out.push(bytes.to_vec());
        }
    }
    w.close().expect("close");
    out
}

/// What a binary client saw: the replayed frames' bytes (after the first `replay_start`),
/// the markers' codes, and when each replayed frame arrived.
#[derive(Default)]
struct Seen {
    /// Frames before the replay started: the state sent on subscribe (a definition).
    before: usize,
    frames: Vec<Vec<u8>>,
    arrivals: Vec<(u64, Instant)>,
    markers: Vec<String>,
    ended: usize,
}

/// Reads binary batches until `ends` `replay_end` markers arrived.
async fn read_until_end(ws: &mut Ws, ends: usize, limit: Duration) -> Seen {
    let mut seen = Seen::default();
    let deadline = tokio::time::Instant::now() + limit;
    while seen.ended < ends {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no replay_end within {limit:?}: {} frames, markers {:?}",
                    seen.frames.len(),
                    seen.markers
                )
            });
        let b = match msg {
            Some(Ok(Message::Binary(b))) => b,
            Some(Ok(Message::Text(t))) => panic!("unexpected text: {t}"),
            Some(Ok(_)) => continue,
            other => panic!("connection ended: {other:?}"),
        };
        let now = Instant::now();
        let batch = Batch::new(&b[..]).expect("a valid batch");
        for (i, f) in batch.iter().enumerate() {
            if let ArchivedBody::Status(s) = &f.body
                && f.seq.to_native() == 0
            {
                let code = StatusCode::from(&s.code);
                if code == StatusCode::ReplayEnd {
                    seen.ended += 1;
                }
                let code = code.json_name();
                seen.markers.push(code.to_string());
                continue;
            }
            if matches!(f.body, ArchivedBody::Heartbeat) {
                continue;
            }
            if seen.markers.is_empty() {
                seen.before += 1;
                continue;
            }
            seen.frames
                .push(batch.frame_bytes(i).expect("in range").to_vec());
            seen.arrivals.push((f.ts_publish.to_native(), now));
        }
    }
    seen
}

/// Subscribes to every channel of both instruments, with no snapshot on subscribe (a pattern
/// would send each instrument's state first, as it does live).
async fn subscribe_binary(url: &str, policy: &str) -> Ws {
    let mut ws = ws_connect(url).await;
    send_json(
        &mut ws,
        json!({"op": "subscribe", "id": 1, "symbols": ["binance:BTCUSDT", "binance:ETHUSDT"],
               "encoding": "binary", "policy": policy, "snapshot": false}),
    )
    .await;
    reply_of(&mut ws, "subscribed").await;
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_speed_replay_gives_every_client_the_recorded_frames_byte_for_byte() {
    let dir = temp_dir("replay", "max");
    let recorded = write_recording(
        &dir,
        6_000,
        1_000_000,
        WriterOptions {
            records_per_block: 100,
            max_segment_bytes: 256 << 10,
            ..WriterOptions::default()
        },
    );
    let mut config = ReplayConfig::new(&dir, "127.0.0.1:0".parse().unwrap());
    config.wait_clients = 2;
    // A ring far smaller than the recording: the replay must wait for its lossless clients.
    config.ring_capacity = 1024;
    let mut server = replay::start(config).await.expect("replay starts");
    let url = server.ws_url();
    let mut a = subscribe_binary(&url, "lossless").await;
    let mut b = subscribe_binary(&url, "lossless").await;
    let (sa, sb) = tokio::join!(
        read_until_end(&mut a, 2, Duration::from_secs(120)),
        read_until_end(&mut b, 2, Duration::from_secs(120)),
    );
    server.finished().await.expect("the replay ends cleanly");
    for s in [&sa, &sb] {
        assert_eq!(s.markers[..2], ["replay_start", "replay_start"]);
        assert_eq!(s.markers.len(), 4, "{:?}", s.markers);
        assert_eq!(s.frames.len(), recorded.len());
        assert!(
            s.frames == recorded,
            "a client's frames differ from the recording"
        );
    }
    assert!(
        server
            .stats
            .held_back
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0,
        "a recording 12x the ring was replayed without ever waiting for the clients"
    );
    assert_eq!(
        server
            .gateway_stats
            .slow_closed
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paced_replays_follow_the_recorded_times() {
    let dir = temp_dir("replay", "paced");
    // 2 x 400 frames 2.5 ms apart: 2 s of recorded time.
    let recorded = write_recording(&dir, 400, 2_500_000, WriterOptions::default());
    let span_ns = 799 * 2_500_000u64;
    const SLACK: Duration = Duration::from_millis(20);
    for factor in [1.0, 10.0] {
        let mut config = ReplayConfig::new(&dir, "127.0.0.1:0".parse().unwrap());
        config.speed = Speed::Factor(factor);
        let mut server = replay::start(config).await.expect("replay starts");
        let mut ws = subscribe_binary(&server.ws_url(), "lossless").await;
        let seen = read_until_end(&mut ws, 2, Duration::from_secs(60)).await;
        server.finished().await.expect("the replay ends");
        server.shutdown().await;
        assert!(seen.frames == recorded, "{factor}x: frames differ");
        // Never early: each frame arrives no sooner than its recorded distance from the first
        // one, divided by the factor. The first frame may itself have been delayed on its way
        // (scheduling on a busy machine), which makes the others look early by as much: 20 ms
        // of slack, small beside the 2 s (1x) and 200 ms (10x) the replays take.
        let (t0, w0) = seen.arrivals[0];
        let mut late = Vec::new();
        for &(ts, at) in &seen.arrivals {
            let due = Duration::from_nanos(((ts - t0) as f64 / factor) as u64);
            let elapsed = at - w0;
            assert!(
                elapsed + SLACK >= due,
                "{factor}x: a frame came {:?} early",
                due - elapsed
            );
            late.push(elapsed - due.min(elapsed));
        }
        late.sort();
        let total = seen.arrivals.last().unwrap().1 - w0;
        let expected = Duration::from_nanos((span_ns as f64 / factor) as u64);
        assert!(total + SLACK >= expected, "{factor}x took {total:?}");
        // A loose tolerance: pacing is measured precisely in BENCHMARKS.md, not here.
        assert!(
            late[late.len() / 2] < Duration::from_millis(100),
            "{factor}x: median lateness {:?}",
            late[late.len() / 2]
        );
        if factor > 1.0 {
            assert!(
                total < Duration::from_nanos(span_ns) / 2,
                "{factor}x took {total:?}, the recording spans {:?}",
                Duration::from_nanos(span_ns)
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_client_gets_the_books_state_then_the_stream_and_filters_apply() {
    let dir = temp_dir("replay", "late");
    let recorded = write_recording(&dir, 3_000, 1_000_000, WriterOptions::default());
    let from = BASE_TS + 500 + 1_000 * 1_000_000;
    let mut config = ReplayConfig::new(&dir, "127.0.0.1:0".parse().unwrap());
    config.symbols = vec!["binance:ETHUSDT".into()];
    config.from = Some(from);
    config.speed = Speed::Factor(20.0);
    let mut server = replay::start(config).await.expect("replay starts");
    let url = server.ws_url();
    let mut first = ws_connect(&url).await;
    send_json(
        &mut first,
        json!({"op": "subscribe", "id": 1, "symbols": ["binance:ETHUSDT"],
               "encoding": "binary", "policy": "lossless", "snapshot": false}),
    )
    .await;
    reply_of(&mut first, "subscribed").await;
    // The second client comes in the middle: it gets a snapshot of the book and the latest
    // quote (from the cache, flagged snapshot), then the live replay from there.
    let reader = tokio::spawn(async move {
        let s = read_until_end(&mut first, 1, Duration::from_secs(60)).await;
        (s, first)
    });
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(
        server
            .stats
            .started
            .load(std::sync::atomic::Ordering::Acquire)
    );
    let mut late = ws_connect(&url).await;
    send_json(
        &mut late,
        json!({"op": "subscribe", "id": 1, "symbols": ["binance:ETHUSDT"],
               "channels": ["book"], "encoding": "json", "policy": "lossless"}),
    )
    .await;
    reply_of(&mut late, "subscribed").await;
    let mut kinds = Vec::new();
    while kinds.len() < 6 {
        let v = next_json(&mut late, Duration::from_secs(10))
            .await
            .expect("frames for the late client");
        if v["type"] != "heartbeat" {
            kinds.push(v);
        }
    }
    let (seen, _ws) = reader.await.unwrap();
    server.finished().await.expect("ends");
    server.shutdown().await;

    let eth = instrument_id(Venue::Binance, "ETHUSDT");
    let expected: Vec<Vec<u8>> = recorded
        .into_iter()
        .filter(|b| {
            let f = tickwire_sdk::wire::access(b).unwrap();
            f.instrument.to_native() == eth && f.ts_publish.to_native() >= from
        })
        .collect();
    assert_eq!(seen.markers, ["replay_start", "replay_end"]);
    assert!(seen.frames == expected, "filtered frames differ");
    let types: Vec<&str> = kinds.iter().map(|v| v["type"].as_str().unwrap()).collect();
    assert_eq!(types[0], "definition", "{types:?}");
    let snap = kinds
        .iter()
        .position(|v| v["type"] == "book_snapshot")
        .expect("a book snapshot on subscribe");
    let snap_seq = kinds[snap]["seq"].as_u64().unwrap();
    let next = kinds[snap + 1..]
        .iter()
        .find(|v| v["type"] == "book_delta")
        .expect("deltas after the snapshot");
    assert_eq!(next["seq"].as_u64().unwrap(), snap_seq + 1, "{kinds:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_block_is_reported_to_clients_and_the_rest_is_replayed() {
    let dir = temp_dir("replay", "damaged");
    let recorded = write_recording(
        &dir,
        1_000,
        1_000_000,
        WriterOptions {
            records_per_block: 50,
            ..WriterOptions::default()
        },
    );
    // Flip a byte in the middle of the segment's payload.
    let seg = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "twrec"))
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&seg, &bytes).unwrap();

    let mut server = replay::start(ReplayConfig::new(&dir, "127.0.0.1:0".parse().unwrap()))
        .await
        .expect("replay starts");
    let mut ws = subscribe_binary(&server.ws_url(), "lossless").await;
    let seen = read_until_end(&mut ws, 2, Duration::from_secs(60)).await;
    server.finished().await.expect("ends");
    assert_eq!(
        server
            .stats
            .damaged
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    server.shutdown().await;
    assert_eq!(
        seen.markers,
        [
            "replay_start",
            "replay_start",
            "gap",
            "gap",
            "replay_end",
            "replay_end"
        ]
    );
    // Every frame the client got is a recorded one, in order; one block's worth is missing.
    let missing = recorded.len() - seen.frames.len();
    assert!((1..=50).contains(&missing), "{missing} frames missing");
    let mut it = recorded.iter();
    for f in &seen.frames {
        assert!(it.any(|r| r == f), "a frame out of order or not recorded");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_replay_requests_say_what_is_wrong() {
    let err = replay::start(ReplayConfig::new(
        "/nonexistent/recording",
        "127.0.0.1:0".parse().unwrap(),
    ))
    .await
    .err()
    .expect("a missing directory is an error");
    assert!(
        format!("{err:#}").contains("/nonexistent/recording"),
        "{err:#}"
    );

    let dir = temp_dir("replay", "bad");
    write_recording(&dir, 10, 1_000_000, WriterOptions::default());
    let mut config = ReplayConfig::new(&dir, "127.0.0.1:0".parse().unwrap());
    config.symbols = vec!["binance:NOPE".into()];
    let err = replay::start(config)
        .await
        .err()
        .expect("an unknown symbol");
    let msg = format!("{err:#}");
    assert!(msg.contains("NOPE") && msg.contains("BTCUSDT"), "{msg}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The command: `tickwire replay DIR --listen 127.0.0.1:0 --exit-at-end` prints its URL,
/// serves one client the whole recording and exits by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_command_serves_a_recording_and_exits_at_its_end() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let dir = temp_dir("replay", "cmd");
    let recorded = write_recording(&dir, 500, 1_000_000, WriterOptions::default());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tickwire"))
        .args(["replay", dir.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .args(["--speed", "max", "--exit-at-end"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("tickwire runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the URL is printed")
        .unwrap()
        .expect("a line");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("ws://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .trim_end_matches(';')
        .to_string();
    let mut ws = subscribe_binary(&url, "lossless").await;
    let seen = read_until_end(&mut ws, 2, Duration::from_secs(60)).await;
    assert!(seen.frames == recorded);
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the command exits at the end of the replay")
        .unwrap();
    assert!(status.success());
    let _ = std::fs::remove_dir_all(&dir);
}
