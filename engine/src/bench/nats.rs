//! The NATS peer: a real `nats-server` (child process on a loopback port) fanning out the same
//! frames. The feed driver's frames are sequenced, stamped and encoded inline (as the naive
//! peer does) and published one NATS message per frame to `md.<venue>.<symbol>.<channel>`;
//! each client is its own NATS connection subscribed to `md.<venue>.>`.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use tickwire_feed::clock::now_ns;
use tickwire_feed::driver::{FrameSink, PushError};
use tickwire_sdk::wire::{Body, Encoder, Frame, Venue};
use tokio::sync::mpsc;

use super::naive::NaiveStats;
use crate::sequencer::StreamSeqs;

/// The `nats-server` binary, if installed (on `PATH`, or `/usr/sbin` where Debian puts it).
pub fn find_server() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
}

/// A `nats-server` child process on 127.0.0.1; killed on drop.
pub struct NatsServer {
    child: Child,
    addr: SocketAddr,
}

impl NatsServer {
    /// Starts `bin` on a free loopback port and waits (up to 10 s) until it accepts
    /// connections.
    pub fn start(bin: &std::path::Path) -> anyhow::Result<NatsServer> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let child = Command::new(bin)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut server = NatsServer { child, addr };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            if let Some(status) = server.child.try_wait()? {
                bail!("nats-server exited at start ({status}); is port {port} free?");
            }
            if Instant::now() > deadline {
                bail!("nats-server did not listen on {addr} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
