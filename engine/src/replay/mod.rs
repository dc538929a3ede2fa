//! Replay over WebSocket: a recording served through the same gateway as live data
//! (`tickwire replay DIR --listen ADDR --speed ...`).
//!
//! A replay thread reads the recording (memory-mapped, filtered by time and instrument),
//! paces it on the recorded times ([`pacer`]) and publishes every frame into a broadcast
//! ring byte for byte, through the same [`Publisher`] the live sequencer uses; the gateway
//! serves that ring exactly as it serves live data (subscriptions, policies, snapshots from
//! the last-value cache). A client can tell a replay from live data only by the two
//! markers: a `replay_start` status before the first replayed frame of each instrument and
//! a `replay_end` status after the last, both with `seq` 0 (part of no stream).
//!
//! One replay session is shared by every client of the server, so they see the same frames
//! at the same time. It starts once `wait_clients` clients have subscribed (so they all see
//! it from its first frame; later clients join as they would join live data: a snapshot,
//! then the stream). At full speed the replay waits for its slowest lossless client rather
//! than lap it (conflating clients are never waited for: they fold what they miss); at 1x
//! or 10x it follows the recorded pace and nobody is waited for.

pub mod pacer;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tracing::{info, warn};

use tickwire_feed::clock::now_ns;
use tickwire_feed::driver::Shutdown;
use tickwire_sdk::recording::{Filter, Recording};
use tickwire_sdk::wire::{Body, Encoder, Frame, Status, StatusCode, Venue, flags};

use crate::gateway::{self, GatewayConfig, GatewayStats};
use crate::publisher::Publisher;
use crate::registry::Registry;
use crate::ring::{Marks, pin};

pub use pacer::{Pacer, Speed};

/// Frames published between two wake-ups of the readers at full speed.
const BATCH: usize = 256;

/// What to replay, how fast, and where to serve it.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    /// The recording directory.
    pub dir: PathBuf,
    /// Address of the client WebSocket server (`127.0.0.1:0` for an ephemeral port).
    pub listen: SocketAddr,
    /// Pace.
    pub speed: Speed,
    /// Only frames recorded at or after this time (ns since the epoch).
    pub from: Option<u64>,
    /// Only frames recorded before this time (ns since the epoch).
    pub to: Option<u64>,
    /// Only these instruments (`venue:SYMBOL`); every instrument when empty.
    pub symbols: Vec<String>,
    /// Start once this many clients have subscribed (0: at once).
    pub wait_clients: u64,
    /// Broadcast ring slots.
    pub ring_capacity: usize,
    /// Gateway limits and timings.
    pub gateway: GatewayConfig,
}

impl ReplayConfig {
    /// Every frame of `dir`, at full speed, once one client has subscribed.
    pub fn new(dir: impl Into<PathBuf>, listen: SocketAddr) -> ReplayConfig {
        ReplayConfig {
            dir: dir.into(),
            listen,
            speed: Speed::Max,
            from: None,
            to: None,
            symbols: Vec::new(),
            wait_clients: 1,
            ring_capacity: 1 << 16,
            gateway: GatewayConfig::default(),
        }
    }
}

/// Progress of a replay.
#[derive(Debug, Default)]
pub struct ReplayStats {
    /// Recorded frames published so far (markers not counted).
    pub frames: AtomicU64,
    /// Damaged blocks skipped (each reported with its file and offset).
    pub damaged: AtomicU64,
    /// Times the replay paused because a lossless client was half a ring behind.
    pub held_back: AtomicU64,
    /// The replay has started (the clients it waited for are subscribed).
    pub started: AtomicBool,
    /// The replay reached its end (the `replay_end` markers are published).
    pub finished: AtomicBool,
}

/// A running replay server.
pub struct ReplayHandle {
    addr: SocketAddr,
    tls: bool,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
    stop_gateway: Shutdown,
    gateway_task: Option<tokio::task::JoinHandle<()>>,
    /// Replay progress.
    pub stats: Arc<ReplayStats>,
    /// Gateway counters.
    pub gateway_stats: Arc<GatewayStats>,
}

/// Opens the recording, starts the gateway and the replay thread. Returns once the gateway
/// is listening; the replay itself starts when `wait_clients` clients have subscribed.
pub async fn start(mut config: ReplayConfig) -> anyhow::Result<ReplayHandle> {
    tickwire_feed::tls::install_crypto_provider();
    let rec = Recording::open(&config.dir).with_context(|| {
        format!(
            "opening the recording {} (a directory written by `tickwire serve --record` or `tickwire import`)",
            config.dir.display()
        )
    })?;
    let mut filter = Filter::all();
    if let Some(from) = config.from {
        filter = filter.from(from);
    }
    if let Some(to) = config.to {
        filter = filter.to(to);
    }
    let mut instruments = rec.instruments();
    if !config.symbols.is_empty() {
        let ids = rec
            .resolve_all(config.symbols.iter().map(String::as_str))
            .context("--symbols")?;
        instruments.retain(|i| ids.contains(&i.id));
        filter = filter.instruments(ids);
    }
    let tls = match &config.gateway.tls {
        Some(files) => Some(gateway::tls::acceptor(files)?),
        None => None,
    };
    let listener = TcpListener::bind(config.listen).await.with_context(|| {
        format!(
            "cannot listen on {} (is another server running there? pass --listen)",
            config.listen
        )
    })?;
    let addr = listener.local_addr()?;

    let registry = Arc::new(Registry::new());
    let mut publisher = Publisher::new(config.ring_capacity, registry.clone());
    for info in &instruments {
        registry.configure(info.venue, &info.symbol);
        publisher.define(info.clone());
    }
    let marks = Arc::new(Marks::new());
    if config.speed == Speed::Max {
        config.gateway.marks = Some(marks.clone());
    }
    let (stop_gateway, gateway_rx) = Shutdown::new();
    let gateway_stats = Arc::new(GatewayStats::default());
    let gateway_task = tokio::spawn(gateway::serve(
        listener,
        tls,
        publisher.ring(),
        registry,
        publisher.lvc(),
        config.gateway.clone(),
        gateway_stats.clone(),
        gateway_rx,
    ));
    let stats = Arc::new(ReplayStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let player = Player {
        markers: instruments.iter().map(|i| (i.venue, i.id)).collect(),
        pacer: Pacer::new(config.speed),
        publisher,
        marks,
        gateway: gateway_stats.clone(),
        wait_clients: config.wait_clients,
        stats: stats.clone(),
        stop: stop.clone(),
        what: format!(
            "replay of {} at {} speed{}{}",
            config.dir.display(),
            config.speed,
            config
                .from
                .map(|t| format!(" from {t}"))
                .unwrap_or_default(),
            config.to.map(|t| format!(" to {t}")).unwrap_or_default(),
        ),
    };
    let thread = std::thread::Builder::new()
        .name("tickwire-replay".into())
        .spawn(move || player.run(rec, filter))
        .context("starting the replay thread")?;
    info!(%addr, dir = %config.dir.display(), speed = %config.speed, "replay server listening");
    Ok(ReplayHandle {
        addr,
        tls: config.gateway.tls.is_some(),
        stop,
        thread: Some(thread),
        stop_gateway,
        gateway_task: Some(gateway_task),
        stats,
        gateway_stats,
    })
}

impl ReplayHandle {
    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://ADDR/ws` (`wss://` with TLS).
    pub fn ws_url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}/ws", self.addr)
    }

    /// Waits until the replay has published its end markers (or failed).
    pub async fn finished(&mut self) -> anyhow::Result<()> {
        while !self.stats.finished.load(Ordering::Acquire) {
            if self.thread.as_ref().is_none_or(|t| t.is_finished()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        match self.thread.take() {
            Some(t) => match tokio::task::spawn_blocking(move || t.join()).await {
                Ok(Ok(r)) => r,
                _ => anyhow::bail!("the replay thread panicked"),
            },
            None => Ok(()),
        }
    }

    /// Stops the replay where it is; every client gets what is in the ring for it, then a
    /// close with 1001.
    pub async fn shutdown(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        self.stop_gateway.trigger();
        if let Some(t) = self.gateway_task.take() {
            let _ = t.await;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while self.gateway_stats.active.load(Ordering::Relaxed) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The replay thread's state.
struct Player {
    /// (venue, instrument) of every instrument replayed: each gets the start and end markers.
    markers: Vec<(Venue, u32)>,
    pacer: Pacer,
    publisher: Publisher,
    marks: Arc<Marks>,
    gateway: Arc<GatewayStats>,
    wait_clients: u64,
    stats: Arc<ReplayStats>,
    stop: Arc<AtomicBool>,
    /// What is played, for the markers' detail.
    what: String,
}

impl Player {
    fn run(mut self, rec: Recording, filter: Filter) -> anyhow::Result<()> {
        while self.gateway.subscribed.load(Ordering::Acquire) < self.wait_clients {
            if self.stop.load(Ordering::Acquire) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        self.stats.started.store(true, Ordering::Release);
        info!("{} starts", self.what);
        let mut encoder = Encoder::new();
        let start = self.what.clone();
        self.markers(&mut encoder, StatusCode::ReplayStart, &start);

        let clock = Instant::now();
        let capacity = self.publisher.ring().capacity();
        let mut guard = pin();
        let mut unwoken = 0usize;
        let mut frames = 0u64;
        for item in rec.frames(filter) {
            let f = match item {
                Ok(f) => f,
                Err(damaged) => {
                    warn!("replay: {damaged}; skipping it");
                    self.stats.damaged.fetch_add(1, Ordering::Relaxed);
                    let detail = format!(
                        "the recording is damaged at {} offset {} ({}): frames there are missing from this replay",
                        damaged.file.display(),
                        damaged.offset,
                        damaged.reason
                    );
                    self.markers(&mut encoder, StatusCode::Gap, &detail);
                    continue;
                }
            };
            let wait = self.pacer.wait(f.ts(), clock.elapsed().as_nanos() as u64);
            if wait > 0 {
                // Everyone gets what is due before the replay sleeps.
                self.publisher.wake_readers();
                unwoken = 0;
                drop(guard);
                std::thread::sleep(Duration::from_nanos(wait));
                guard = pin();
            } else if unwoken >= BATCH {
                self.publisher.wake_readers();
                unwoken = 0;
                guard.flush();
                if self.stop.load(Ordering::Acquire) {
                    break;
                }
                self.hold_back(capacity);
                guard.repin();
            }
            let frame = f.to_frame();
            self.publisher
                .publish_encoded(&frame, f.bytes().into(), &guard);
            unwoken += 1;
            frames += 1;
            if frames.is_multiple_of(64) {
                self.stats.frames.store(frames, Ordering::Relaxed);
            }
        }
        drop(guard);
        self.stats.frames.store(frames, Ordering::Relaxed);
        let end = format!("{} ended: {frames} frames", self.what);
        self.markers(&mut encoder, StatusCode::ReplayEnd, &end);
        info!("{end}");
        self.stats.finished.store(true, Ordering::Release);
        Ok(())
    }

    /// At full speed: waits while a lossless client is half a ring or more behind.
    fn hold_back(&self, capacity: u64) {
        let mut counted = false;
        while let Some(min) = self.marks.min() {
            if self.publisher.published().saturating_sub(min) < capacity / 2
                || self.stop.load(Ordering::Acquire)
            {
                break;
            }
            if !counted {
                self.stats.held_back.fetch_add(1, Ordering::Relaxed);
                counted = true;
            }
            self.publisher.wake_readers();
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Publishes one status marker (`seq` 0) per replayed instrument, and wakes readers.
    fn markers(&mut self, encoder: &mut Encoder, code: StatusCode, detail: &str) {
        let guard = pin();
        let now = now_ns();
        for &(venue, id) in &self.markers {
            let mut f = Frame::new(
                venue,
                id,
                0,
                now,
                Body::Status(Status {
                    code,
                    detail: detail.to_string(),
                }),
            );
            f.ts_publish = now;
            if code == StatusCode::Gap {
                f.flags |= flags::BAD_BOOK;
            }
            let bytes: Box<[u8]> = encoder.encode(&f).into();
            self.publisher.publish_encoded(&f, bytes, &guard);
        }
        drop(guard);
        self.publisher.wake_readers();
    }
}
