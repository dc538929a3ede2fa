//! The harness's WebSocket clients: identical code for every peer but the message format (a
//! tickwire batch, or one naive frame per message). Each reads, validates, checks `seq` per
//! stream and records every live frame's hops; a slow client sleeps after each message; a
//! stalled one never reads.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use tickwire_feed::clock::now_ns;
use tickwire_sdk::wire::{ArchivedFrame, Batch, access, flags};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::hops::{Hops, Seen};

/// Which server a client talks to: decides the handshake and the message format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// tickwire: a subscribe message, then batches of frames.
    Tickwire,
    /// The naive peer: no subscribe, one frame per message.
    Naive,
    /// NATS: a subscription, one frame per message.
    Nats,
}

/// How a client reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Reads as fast as it can.
    Fast,
    /// Sleeps this long after every message it reads.
    Slow(Duration),
    /// Connects, subscribes, and never reads again.
    Stalled,
}

/// The measurement window shared by every client: frames whose venue time is in
/// `[from_ns, to_ns)` count (both `u64::MAX` until set).
#[derive(Debug)]
pub struct Window {
    /// Start, ns since the epoch.
    pub from_ns: AtomicU64,
    /// End, ns since the epoch.
    pub to_ns: AtomicU64,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            from_ns: AtomicU64::new(u64::MAX),
            to_ns: AtomicU64::new(u64::MAX),
        }
    }
}

/// One client's results, read by the orchestrator.
#[derive(Debug, Default)]
pub struct Slot {
    /// Data frames received in the window (live ones and conflated ones).
    pub frames: AtomicU64,
    /// Of those, frames flagged `CONFLATED`.
    pub conflated: AtomicU64,
    /// Frames missing inside a stream (`seq` jumped), in or out of the window.
    pub gaps: AtomicU64,
    /// Messages that failed validation.
    pub invalid: AtomicU64,
    /// 0 while open; the close code the server sent; 1 for a connection that just ended.
    pub closed: AtomicU32,
    /// Per-hop histograms of the frames in the window.
    pub hops: Mutex<Hops>,
}

impl Slot {
    /// The close code, if closed.
    pub fn closed(&self) -> Option<u16> {
        match self.closed.load(Ordering::Acquire) {
            0 => None,
            c => Some(c as u16),
        }
    }
}

type Ws = WebSocketStream<TcpStream>;

/// Connects to `url` at `addr` and, for tickwire, sends `subscribe` and waits for the
/// `subscribed` reply.
pub async fn connect(
    url: &str,
    addr: SocketAddr,
    protocol: Protocol,
    subscribe: &str,
) -> anyhow::Result<Ws> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    // As the SDK client: a 16 KiB read buffer (tungstenite zero-fills it before each read).
    let config = WebSocketConfig::default().read_buffer_size(16 << 10);
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await?;
    if protocol == Protocol::Tickwire {
        subscribe_and_wait(&mut ws, subscribe).await?;
    }
    Ok(ws)
}

/// Sends a tickwire `subscribe` request and waits for its `subscribed` reply (an error reply,
/// or the connection closing first, is an error).
pub async fn subscribe_and_wait<S>(
    ws: &mut WebSocketStream<S>,
    subscribe: &str,
) -> anyhow::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ws.send(Message::text(subscribe)).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str())?;
                if v["type"] == "subscribed" {
                    return Ok(());
                }
                bail!("subscribe refused: {t}");
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => bail!("closed before the subscribe reply"),
        }
    }
}

/// Per-client frame accounting: validation, `seq` per stream, hops in the window.
struct Reader {
    slot: Arc<Slot>,
    window: Arc<Window>,
    next_seq: HashMap<(u32, u8), u64>,
}

impl Reader {
    fn new(slot: Arc<Slot>, window: Arc<Window>) -> Reader {
        Reader {
            slot,
            window,
            next_seq: HashMap::new(),
        }
    }

    /// One binary message: a tickwire batch, or one frame (naive, NATS).
    fn on_message(&mut self, bytes: &[u8], batched: bool) {
        let now = now_ns();
        let (mut frames, mut conflated, mut gaps) = (0u64, 0u64, 0u64);
        let mut hops = self.slot.hops.lock().unwrap_or_else(|e| e.into_inner());
        hops.from_ns = self.window.from_ns.load(Ordering::Acquire);
        hops.to_ns = self.window.to_ns.load(Ordering::Acquire);
        let next_seq = &mut self.next_seq;
        let mut on_frame = |f: &ArchivedFrame| {
            let seen = hops.record(f, now);
            if seen == Seen::Ignored && f.flags & flags::SNAPSHOT != 0 {
                return;
            }
            match seen {
                Seen::Measured => frames += 1,
                Seen::Conflated => {
                    frames += 1;
                    conflated += 1;
                }
                Seen::Ignored => {}
            }
            let seq = f.seq.to_native();
            if seq == 0 {
                return;
            }
            let next = next_seq
                .entry((f.instrument.to_native(), f.channel() as u8))
                .or_insert(seq);
            if seq > *next {
                gaps += seq - *next;
            }
            *next = seq + 1;
        };
        let valid = if batched {
            Batch::new(bytes)
                .map(|b| b.iter().for_each(&mut on_frame))
                .is_ok()
        } else {
            access(bytes).map(&mut on_frame).is_ok()
        };
        drop(hops);
        if !valid {
            self.slot.invalid.fetch_add(1, Ordering::Relaxed);
        }
        self.slot.frames.fetch_add(frames, Ordering::Relaxed);
        self.slot.conflated.fetch_add(conflated, Ordering::Relaxed);
        self.slot.gaps.fetch_add(gaps, Ordering::Relaxed);
    }
}

/// Reads a WebSocket until the connection ends, recording into `slot`.
pub async fn run(
    mut ws: Ws,
    protocol: Protocol,
    behaviour: Behaviour,
    slot: Arc<Slot>,
    window: Arc<Window>,
) {
    if behaviour == Behaviour::Stalled {
        // Hold the socket open without reading until the harness aborts this task.
        std::future::pending::<()>().await;
    }
    let mut reader = Reader::new(slot.clone(), window);
    loop {
        let msg = match ws.next().await {
            Some(Ok(m)) => m,
            Some(Err(_)) | None => {
                let _ = slot
                    .closed
                    .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire);
                return;
            }
        };
        match msg {
            Message::Binary(bytes) => reader.on_message(&bytes, protocol == Protocol::Tickwire),
            Message::Close(frame) => {
                let code = frame.map(|f| u16::from(f.code)).unwrap_or(1005);
                slot.closed.store(u32::from(code), Ordering::Release);
                return;
            }
            _ => {}
        }
        if let Behaviour::Slow(d) = behaviour {
            tokio::time::sleep(d).await;
        }
    }
}

/// Connects to NATS at `url` and subscribes to `subject`.
pub async fn connect_nats(url: &str, subject: &str) -> anyhow::Result<async_nats::Subscriber> {
    let client = async_nats::connect(url)
        .await
        .with_context(|| format!("connecting to NATS at {url}"))?;
    let sub = client
        .subscribe(subject.to_string())
        .await
        .with_context(|| format!("subscribing to {subject}"))?;
    // The subscription's first PING/PONG round trip: the server has registered it.
    client
        .flush()
        .await
        .context("flushing the NATS subscription")?;
    Ok(sub)
}

/// Reads NATS messages (one frame each) until the subscription ends.
pub async fn run_nats(
    mut sub: async_nats::Subscriber,
    behaviour: Behaviour,
    slot: Arc<Slot>,
    window: Arc<Window>,
) {
    if behaviour == Behaviour::Stalled {
        std::future::pending::<()>().await;
    }
    let mut reader = Reader::new(slot.clone(), window);
    while let Some(msg) = sub.next().await {
        reader.on_message(&msg.payload, false);
        if let Behaviour::Slow(d) = behaviour {
            tokio::time::sleep(d).await;
        }
    }
    let _ = slot
        .closed
        .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire);
}
