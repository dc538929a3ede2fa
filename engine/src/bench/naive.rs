//! The naive peer: what one would build first with tokio-tungstenite and
//! `tokio::sync::broadcast`. Each frame is sequenced, stamped and encoded inline by whoever
//! produces it and `send` to a broadcast channel; one task per client `recv`s and sends one
//! WebSocket message per frame (one flush per frame). A client that falls a whole channel
//! behind skips ahead (`RecvError::Lagged`): those frames are lost and counted.
//!
//! Clients get every frame from the moment they connect (no subscribe message, no policy).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tickwire_feed::clock::now_ns;
use tickwire_feed::driver::{FrameSink, PushError};
use tickwire_sdk::wire::{Encoder, Frame};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, watch};
use tokio_tungstenite::tungstenite::{Bytes, Message};

use crate::sequencer::StreamSeqs;

/// Counters of a naive server.
#[derive(Debug, Default)]
pub struct NaiveStats {
    /// Client sessions open now.
    pub active: AtomicU64,
    /// Frames skipped by receivers that fell a whole channel behind (lost to those clients).
    pub lagged_frames: AtomicU64,
    /// Times a receiver was told it lagged.
    pub lagged_events: AtomicU64,
    /// Frames sent into the channel.
    pub published: AtomicU64,
}

/// A [`FrameSink`] that does the sequencer's work inline (per-stream `seq`, `ts_publish`,
/// encode) and sends the bytes to the broadcast channel: a feed driver can push into it.
pub struct NaiveSink {
    tx: broadcast::Sender<Bytes>,
    state: Mutex<(StreamSeqs, Encoder)>,
    stats: Arc<NaiveStats>,
}

impl NaiveSink {
    /// A sink publishing to `tx`, counting into `stats`.
    pub fn new(tx: broadcast::Sender<Bytes>, stats: Arc<NaiveStats>) -> NaiveSink {
        NaiveSink {
            tx,
            state: Mutex::new((StreamSeqs::default(), Encoder::new())),
            stats,
        }
    }
}

impl FrameSink for NaiveSink {
    fn try_push(&self, mut frame: Frame) -> Result<(), PushError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (seqs, encoder) = &mut *state;
        seqs.assign(&mut frame);
        frame.ts_publish = now_ns();
        let bytes = Bytes::copy_from_slice(encoder.encode(&frame));
        drop(state);
        // No receiver yet is not an error: the frame is simply seen by nobody.
        let _ = self.tx.send(bytes);
        self.stats.published.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Accepts WebSocket clients on `listener` until `stop` turns true; each gets every frame sent
/// to `tx` from its connection on, one message and one flush per frame.
pub async fn serve(
    listener: TcpListener,
    tx: broadcast::Sender<Bytes>,
    stats: Arc<NaiveStats>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        // Subscribed at accept: the client gets every frame sent after it connected.
        let rx = tx.subscribe();
        tokio::spawn(session(stream, rx, stats.clone(), stop.clone()));
    }
}

async fn session(
    stream: TcpStream,
    mut rx: broadcast::Receiver<Bytes>,
    stats: Arc<NaiveStats>,
    mut stop: watch::Receiver<bool>,
) {
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    stats.active.fetch_add(1, Ordering::AcqRel);
    let (mut sink, mut incoming) = ws.split();
    // Drain whatever the client sends (nothing, then its close), so a gone client is noticed.
    let reader = tokio::spawn(async move { while let Some(Ok(_)) = incoming.next().await {} });
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                Ok(bytes) => {
                    if sink.send(Message::Binary(bytes)).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    stats.lagged_frames.fetch_add(n, Ordering::Relaxed);
                    stats.lagged_events.fetch_add(1, Ordering::Relaxed);
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = stop.changed() => break,
        }
    }
    reader.abort();
    stats.active.fetch_sub(1, Ordering::AcqRel);
}
