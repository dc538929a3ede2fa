//! The NATS peer: a real `nats-server` (child process on a loopback port) fanning out the same
//! frames. The feed driver's frames are sequenced, stamped and encoded inline (as the naive
//! peer does) and published one NATS message per frame to `md.<venue>.<symbol>.<channel>`;
//! each client is its own NATS connection subscribed to `md.<venue>.>`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tickwire_feed::clock::now_ns;
use tickwire_feed::driver::{FrameSink, PushError};
use tickwire_sdk::wire::{Body, Encoder, Frame, Venue};
use tokio::sync::mpsc;

use super::naive::NaiveStats;
use crate::sequencer::StreamSeqs;

pub use crate::cluster::nats_server::{NatsServer, find_server};

#[derive(Default)]
struct State {
    seqs: StreamSeqs,
    encoder: Encoder,
    symbols: HashMap<u32, String>,
    subjects: HashMap<(u32, u8), async_nats::Subject>,
}

/// A [`FrameSink`] that does the sequencer's work inline and hands (subject, bytes) to the
/// publishing task ([`publish`]).
pub struct NatsSink {
    tx: mpsc::UnboundedSender<(async_nats::Subject, Bytes)>,
    state: Mutex<State>,
    stats: Arc<NaiveStats>,
}

impl NatsSink {
    /// A sink feeding `tx`, counting into `stats`.
    pub fn new(
        tx: mpsc::UnboundedSender<(async_nats::Subject, Bytes)>,
        stats: Arc<NaiveStats>,
    ) -> NatsSink {
        NatsSink {
            tx,
            state: Mutex::new(State::default()),
            stats,
        }
    }
}

/// `md.<venue>.<symbol>.<channel>` (the instrument id until its definition is seen).
fn subject(state: &mut State, frame: &Frame) -> async_nats::Subject {
    let channel = frame.channel();
    let key = (frame.instrument, channel as u8);
    if let Some(s) = state.subjects.get(&key) {
        return s.clone();
    }
    let venue = Venue::from_id(frame.venue).map_or("unknown", |v| v.name());
    let symbol = state
        .symbols
        .get(&frame.instrument)
        .cloned()
        .unwrap_or_else(|| frame.instrument.to_string());
    let s = async_nats::Subject::from(format!("md.{venue}.{symbol}.{}", channel.name()));
    if state.symbols.contains_key(&frame.instrument) {
        state.subjects.insert(key, s.clone());
    }
    s
}

impl FrameSink for NatsSink {
    fn try_push(&self, mut frame: Frame) -> Result<(), PushError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Body::Definition(d) = &frame.body {
            state.symbols.insert(frame.instrument, d.symbol.clone());
        }
        state.seqs.assign(&mut frame);
        frame.ts_publish = now_ns();
        let subject = subject(&mut state, &frame);
        let bytes = Bytes::copy_from_slice(state.encoder.encode(&frame));
        drop(state);
        if self.tx.send((subject, bytes)).is_err() {
            return Err(PushError::Closed);
        }
        self.stats.published.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Publishes what the sink queues until the sink is dropped (async-nats batches the writes).
pub async fn publish(
    client: async_nats::Client,
    mut rx: mpsc::UnboundedReceiver<(async_nats::Subject, Bytes)>,
) {
    let mut batch = Vec::with_capacity(256);
    while rx.recv_many(&mut batch, 256).await > 0 {
        for (subject, bytes) in batch.drain(..) {
            if client.publish(subject, bytes).await.is_err() {
                return;
            }
        }
    }
}
