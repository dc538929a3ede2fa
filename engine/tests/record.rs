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

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tickwire-rec-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recording_holds_every_published_frame_byte_for_byte_as_a_client_got_them() {
    let dir = temp_dir("serve");
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
    let _ = std::fs::remove_dir_all(&dir);
}
