//! `serve --record`: the recorder is a lossless reader of the broadcast ring; the recording
//! holds every published frame, byte for byte, in publish order, with contiguous `seq`.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use serde_json::json;
use tickwire_engine::recorder::RecorderConfig;
use tickwire_sdk::recording::{Filter, Recording, WriterOptions};
use tickwire_sdk::wire::{Batch, flags};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recording_holds_every_published_frame_byte_for_byte_as_a_client_got_them() {
    let dir = temp_dir("rec", "serve");
    let sim = capture_sim().await;
    let d = dir.clone();
    let server = server_for(&sim, &["btcusdt"], move |c| {
        c.record = Some(RecorderConfig {
            dir: d,
            // Small blocks and segments: the run spans many of both.
            options: WriterOptions {
                records_per_block: 64,
                max_segment_bytes: 256 << 10,
                ..WriterOptions::default()
            },
        })
    })
    .await;
    wait_subscribed(&sim, 3).await;
    let mut ws = ws_connect(&server.ws_url()).await;
    send_json(
        &mut ws,
        json!({"op": "subscribe", "id": 1, "symbols": ["binance:BTCUSDT"],
               "channels": ["trades", "quotes", "book"], "encoding": "binary",
               "policy": "lossless", "snapshot": false}),
    )
    .await;
    reply_of(&mut ws, "subscribed").await;

    sim.run_items(4_000);
    // Read until the run is over and the server has published everything.
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut last_published = u64::MAX;
    loop {
        match tokio::time::timeout(Duration::from_millis(700), ws.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => {
                let batch = Batch::new(&b[..]).expect("a valid batch");
                for (i, f) in batch.iter().enumerate() {
                    if f.flags & flags::SNAPSHOT == 0 {
                        got.push(batch.frame_bytes(i).expect("in range").to_vec());
                    }
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(_) => panic!("the server closed the client"),
            Err(_) => {
                let p = server.published();
                if p == last_published && sim.status()["running"] == false {
                    break;
                }
                last_published = p;
            }
        }
    }
    let published = server.published();
    let stats = server.recorder_stats().expect("recording");
    server.shutdown().await;
    sim.shutdown().await;
    assert_eq!(stats.lost.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert!(got.len() > 1_000, "the client got {} frames", got.len());

    let rec = Recording::open(&dir).expect("the recording opens");
    assert!(rec.segments().len() >= 2, "rotation by size happened");
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let mut next: HashMap<(u32, u8), u64> = HashMap::new();
    for r in rec.frames(Filter::all()) {
        let r = r.expect("no damaged block");
        let f = r.frame();
        let key = (f.instrument.to_native(), f.channel() as u8);
        let seq = f.seq.to_native();
        if let Some(n) = next.insert(key, seq + 1) {
            assert_eq!(seq, n, "seq hole in stream {key:?} of the recording");
        }
        frames.push(r.bytes().to_vec());
    }
    // Everything published since the recorder started (it starts before the feed), and then
    // what shutdown publishes: the feed's `disconnected` status.
    assert!(
        frames.len() as u64 > published,
        "{} frames recorded, {published} published",
        frames.len()
    );
    for extra in &frames[published as usize..] {
        let f = tickwire_sdk::wire::access(extra).unwrap();
        assert!(
            matches!(f.body, tickwire_sdk::wire::ArchivedBody::Status(_)),
            "{f:?}"
        );
    }
    // The client's frames are the recording's data frames of its instrument, same bytes, same
    // order: a subsequence of the recording.
    let mut it = frames.iter();
    for (i, g) in got.iter().enumerate() {
        assert!(
            it.any(|f| f == g),
            "client frame {i} of {} is missing from the recording, or out of order",
            got.len()
        );
    }
    assert_eq!(
        rec.instruments()
            .iter()
            .map(|i| i.symbol.as_str())
            .collect::<Vec<_>>(),
        ["BTCUSDT"]
    );
    replay_writes_exactly_the_filtered_frames(&dir, &rec);
    let _ = std::fs::remove_dir_all(&dir);
}

fn tickwire(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tickwire"))
        .args(args)
        .output()
        .expect("run tickwire")
}

/// `tickwire replay DIR --out FILE`: JSON lines and frame bytes, filtered by symbol and time,
/// equal to what the SDK reader returns for the same filter; bad arguments are refused.
fn replay_writes_exactly_the_filtered_frames(dir: &std::path::Path, rec: &Recording) {
    let d = dir.to_str().unwrap();
    let btc = rec.resolve("binance:BTCUSDT").unwrap();
    let all: Vec<(u64, u32, Vec<u8>)> = rec
        .frames(Filter::all())
        .map(|r| {
            let r = r.unwrap();
            (r.ts(), r.instrument(), r.bytes().to_vec())
        })
        .collect();
    let (t0, t1) = (all[all.len() / 3].0, all[2 * all.len() / 3].0);
    let want: Vec<&Vec<u8>> = all
        .iter()
        .filter(|(ts, id, _)| *id == btc && *ts >= t0 && *ts < t1)
        .map(|(_, _, b)| b)
        .collect();
    assert!(!want.is_empty());

    let frames_out = dir.with_extension("frames");
    let (from, to) = (t0.to_string(), t1.to_string());
    let out = tickwire(&[
        "replay",
        d,
        "--format",
        "frames",
        "--symbols",
        "binance:BTCUSDT",
        "--from",
        &from,
        "--to",
        &to,
        "--out",
        frames_out.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&frames_out).unwrap();
    let mut got = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let n = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        got.push(bytes[at + 4..at + 4 + n].to_vec());
        at += 4 + n;
    }
    assert_eq!(got.len(), want.len());
    assert!(
        got.iter().zip(&want).all(|(a, b)| a == *b),
        "replayed bytes differ"
    );

    let jsonl = dir.with_extension("jsonl");
    let out = tickwire(&["replay", d, "--out", jsonl.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&jsonl).unwrap();
    assert_eq!(text.lines().count(), all.len());
    for line in text.lines().take(200) {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        assert!(v["type"].is_string() && v["ts_publish"].is_u64(), "{line}");
    }
    assert!(
        text.contains("\"symbol\":\"BTCUSDT\""),
        "symbols come from the recording's definitions"
    );

    for (args, expect) in [
        (
            vec!["replay", d, "--symbols", "binance:NOPE", "--out", "-"],
            "--symbols",
        ),
        (
            vec!["replay", "/nonexistent/recording", "--out", "-"],
            "/nonexistent/recording",
        ),
        (
            vec!["replay", d, "--from", "1", "--to", "2", "--out", "-"],
            "no frame of the recording matched",
        ),
    ] {
        let out = tickwire(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(expect),
            "{args:?}: {err}"
        );
    }
    let _ = std::fs::remove_file(frames_out);
    let _ = std::fs::remove_file(jsonl);
}
