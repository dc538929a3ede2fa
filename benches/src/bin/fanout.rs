//! Loopback WebSocket fan-out: tickwire's gateway against a naive server, in one process.
//!
//! ```text
//! ulimit -n 20000   # 1,000 clients need ~4,000 descriptors (client and server ends)
//! cargo run --release -p benches --bin fanout -- --mode all
//! ```
//!
//! Two servers on 127.0.0.1 ephemeral ports, each fed at a fixed, open-loop rate by its own
//! synthetic source (the same frames: `benches::synth`):
//!
//! - **tickwire**: the engine's own pipeline pieces: an ingest ring (`sequencer.add_input`)
//!   fed by the source thread, the sequencer thread (seq, `ts_publish`, encode once, publish
//!   into the broadcast ring) and `gateway::serve` with its default configuration.
//! - **naive**: tokio-tungstenite and `tokio::sync::broadcast`: the source does the sequencer's
//!   work (seq, `ts_publish`, encode) and `send`s each frame's bytes to the channel; one task
//!   per client `recv`s and `send`s one WebSocket message per frame (one flush per frame).
//!   A receiver that falls a whole channel behind skips ahead (`RecvError::Lagged`): those
//!   frames are counted as lost.
//!
//! Both servers run on one 2-worker tokio runtime; the clients run on another 2-worker runtime
//! in the same process. Client code is identical for both servers: read a message, validate
//! it (a tickwire batch with `Batch::new`, a naive frame with `wire::access`), count the data
//! frames, check each stream's `seq`, and record publish -> receive latency per frame.
//!
//! Modes:
//! - `throughput`: for each client count and server, a ramp of offered rates (x`--growth`
//!   per step, then `--refine` bisection steps) until the server stops keeping up, then a
//!   sustained run at the highest rate it kept up with. Between steps the source pauses and
//!   every client must catch up (lossless delivery is checked frame by frame).
//! - `isolation`: fast clients' publish -> receive latency with 10% of clients stalled
//!   (connected, subscribed, not reading) against none stalled, alternating A B A B.
//!
//! Every phase is bounded in time; `--max-secs` stops the whole process regardless.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use benches::synth::{Producer, Synth};
use clap::{Parser, ValueEnum};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use tickwire_engine::bench::naive::{self, NaiveStats};
use tickwire_engine::gateway::{self, GatewayConfig, GatewayStats};
use tickwire_engine::ingest::IngestRing;
use tickwire_engine::registry::Registry;
use tickwire_engine::sequencer::{self, SequencerHandle};
use tickwire_feed::clock::now_ns;
use tickwire_feed::driver::{FrameSink, PushError};
use tickwire_sdk::wire::{ArchivedBody, ArchivedFrame, Batch, access};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Bytes, Message};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Loopback WebSocket fan-out: tickwire's gateway vs a naive tokio-tungstenite +
/// tokio::sync::broadcast server (see BENCHMARKS.md, "Loopback WebSocket fan-out").
#[derive(Parser, Debug)]
#[command(name = "fanout")]
struct Args {
    /// What to run.
    #[arg(long, value_enum, default_value_t = Mode::All)]
    mode: Mode,
    /// Client counts, each run in turn.
    #[arg(long, value_delimiter = ',', default_values_t = [100usize, 1000])]
    clients: Vec<usize>,
    /// Servers, each run in turn for every client count.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [ServerKind::Naive, ServerKind::Tickwire])]
    servers: Vec<ServerKind>,
    /// Seconds per ramp step.
    #[arg(long, default_value_t = 1.5)]
    step_secs: f64,
    /// Seconds of the sustained run at the highest rate a server kept up with.
    #[arg(long, default_value_t = 5.0)]
    run_secs: f64,
    /// Offered deliveries per second (frame rate x clients) of the ramp's first step.
    #[arg(long, default_value_t = 50_000.0)]
    start_deliveries: f64,
    /// Rate factor between ramp steps until the server stops keeping up.
    #[arg(long, default_value_t = 2.0)]
    growth: f64,
    /// Bisection steps between the last rate kept up with and the first one not.
    #[arg(long, default_value_t = 2)]
    refine: u32,
    /// Microseconds between the source's bursts in throughput runs.
    #[arg(long, default_value_t = DEFAULT_TICK_US)]
    tick_us: u64,
    /// Sustained runs tried, each at 0.8x the rate of the one before, until one keeps up.
    #[arg(long, default_value_t = 3)]
    sustain_attempts: u32,
    /// Highest frame rate the ramp tries.
    #[arg(long, default_value_t = 2_000_000.0)]
    max_rate: f64,
    /// A step is kept up with when nothing was lost, clients received at least this share of
    /// what was offered during it, and they caught up within --max-drain of the source pausing.
    #[arg(long, default_value_t = 0.9)]
    keep_up: f64,
    /// Longest catch-up after a step that still counts as keeping up, as a share of the step.
    #[arg(long, default_value_t = 0.15)]
    max_drain: f64,
    /// Instruments the source cycles through (clients subscribe to all of them).
    #[arg(long, default_value_t = 10)]
    instruments: usize,
    /// tickwire broadcast ring slots, and the naive server's broadcast channel capacity.
    #[arg(long, default_value_t = 1 << 16)]
    ring: usize,
    /// Isolation runs, each `server:clients:frames_per_second[:tick_us]`. The source emits a
    /// burst every tick; fewer, larger bursts keep the machine below saturation, where tail
    /// latency is dominated by the scheduler rather than by the servers.
    #[arg(long, value_delimiter = ',', default_values_t = [
        IsoSpec { kind: ServerKind::Tickwire, clients: 100, rate: 20_000.0, tick_us: 5_000 },
        IsoSpec { kind: ServerKind::Tickwire, clients: 1_000, rate: 2_000.0, tick_us: 20_000 },
        IsoSpec { kind: ServerKind::Naive, clients: 100, rate: 350.0, tick_us: 5_000 },
    ])]
    iso: Vec<IsoSpec>,
    /// Isolation: A/B phase pairs per run (A = none stalled, B = some stalled).
    #[arg(long, default_value_t = 3)]
    iso_pairs: usize,
    /// Isolation: seconds per phase.
    #[arg(long, default_value_t = 5.0)]
    iso_secs: f64,
    /// Isolation: share of clients stalled in B phases.
    #[arg(long, default_value_t = 0.1)]
    stalled: f64,
    /// Isolation: SO_RCVBUF of every client socket, bytes (the kernel doubles it), so that a
    /// stalled client's backlog reaches the server within a phase instead of sitting in up to
    /// 32 MB of autotuned receive buffer. Keep it above the loopback MSS (64 KiB): smaller
    /// windows make TCP itself stall a reading client.
    #[arg(long, default_value_t = 256 << 10)]
    iso_rcvbuf: u32,
    /// Hard bound on the whole run: the process exits after this many seconds.
    #[arg(long, default_value_t = 600)]
    max_secs: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    Throughput,
    Isolation,
    All,
}

/// One isolation run: which server, how many clients, what frame rate, and how often the
/// source emits (microseconds between bursts).
#[derive(Clone, Copy, Debug, PartialEq)]
struct IsoSpec {
    kind: ServerKind,
    clients: usize,
    rate: f64,
    tick_us: u64,
}

impl std::str::FromStr for IsoSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<IsoSpec, String> {
        let bad = || {
            format!("{s:?}: expected server:clients:rate[:tick_us], e.g. tickwire:100:20000:1000")
        };
        let f: Vec<&str> = s.split(':').collect();
        if !(3..=4).contains(&f.len()) {
            return Err(bad());
        }
        Ok(IsoSpec {
            kind: ServerKind::from_str(f[0], true).map_err(|_| bad())?,
            clients: f[1].parse().map_err(|_| bad())?,
            rate: f[2].parse().map_err(|_| bad())?,
            tick_us: match f.get(3) {
                Some(t) => t.parse().map_err(|_| bad())?,
                None => DEFAULT_TICK_US,
            },
        })
    }
}

impl std::fmt::Display for IsoSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}",
            self.kind.name(),
            self.clients,
            self.rate,
            self.tick_us
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ServerKind {
    Naive,
    Tickwire,
}

impl ServerKind {
    fn name(self) -> &'static str {
        match self {
            ServerKind::Naive => "naive",
            ServerKind::Tickwire => "tickwire",
        }
    }
}

// ---------------------------------------------------------------------------------------
// Sources: an open-loop schedule at a settable rate.

/// Microseconds between a source's bursts, unless told otherwise.
const DEFAULT_TICK_US: u64 = 250;

/// Control of a source thread.
#[derive(Default)]
struct SourceCtl {
    /// Microseconds between bursts (0 = the default).
    tick_us: AtomicU64,
    /// Frames per second (f64 bits); 0 = paused.
    rate: AtomicU64,
    /// Data frames emitted so far.
    published: AtomicU64,
    /// Times the source found its sink full and had to wait.
    full_waits: AtomicU64,
    stop: AtomicBool,
}

impl SourceCtl {
    fn set_rate(&self, r: f64) {
        self.rate.store(r.to_bits(), Ordering::Release);
    }
    fn published(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }
}

/// Runs `emit` on its own thread at the rate in `ctl`: every tick (250 us by default) it
/// emits whatever the schedule says is due since the rate was set (open loop: a late tick
/// catches up).
fn spawn_source(
    name: &str,
    ctl: Arc<SourceCtl>,
    mut emit: impl FnMut(&SourceCtl) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let mut current = 0.0f64;
            let mut t0 = Instant::now();
            let mut sent = 0u64;
            while !ctl.stop.load(Ordering::Acquire) {
                let rate = f64::from_bits(ctl.rate.load(Ordering::Acquire));
                if rate != current {
                    current = rate;
                    t0 = Instant::now();
                    sent = 0;
                }
                if rate <= 0.0 {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                let due = (t0.elapsed().as_secs_f64() * rate) as u64;
                while sent < due {
                    emit(&ctl);
                    sent += 1;
                    ctl.published.fetch_add(1, Ordering::AcqRel);
                }
                let tick = match ctl.tick_us.load(Ordering::Acquire) {
                    0 => DEFAULT_TICK_US,
                    t => t,
                };
                std::thread::sleep(Duration::from_micros(tick));
            }
        })
        .expect("spawn a source thread")
}

// ---------------------------------------------------------------------------------------
// The servers.

struct TickwireServer {
    addr: SocketAddr,
    source: Arc<SourceCtl>,
    stats: Arc<GatewayStats>,
    stop: watch::Sender<bool>,
    _sequencer: SequencerHandle,
}

/// tickwire's pipeline without a venue: the source thread pushes frames into an ingest ring
/// as a feed driver does; the sequencer and gateway are the engine's.
fn start_tickwire(rt: &Runtime, args: &Args) -> anyhow::Result<TickwireServer> {
    let mut synth = Synth::new(args.instruments);
    let registry = Arc::new(Registry::new());
    for i in synth.instruments() {
        registry.configure(i.venue, &i.symbol);
    }
    let mut sequencer = sequencer::start(args.ring, registry.clone());
    let ingest: Arc<IngestRing> = sequencer.add_input(1 << 14);
    for f in synth.definitions() {
        if ingest.try_push(f).is_err() {
            bail!("the ingest ring refused a definition");
        }
    }
    if !sequencer.quiesce(Duration::from_secs(2)) {
        bail!("the sequencer did not publish the definitions");
    }
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let stats = Arc::new(GatewayStats::default());
    let (stop, stop_rx) = watch::channel(false);
    rt.spawn(gateway::serve(
        listener,
        None, // plain ws://
        sequencer.ring(),
        registry,
        sequencer.lvc(),
        GatewayConfig::default(),
        stats.clone(),
        stop_rx,
    ));
    let source = Arc::new(SourceCtl::default());
    spawn_source("src-tickwire", source.clone(), move |ctl| {
        let mut frame = synth.next_frame(now_ns());
        loop {
            match ingest.try_push(frame) {
                Ok(()) => return,
                Err(PushError::Full(back)) => {
                    frame = back;
                    ctl.full_waits.fetch_add(1, Ordering::Relaxed);
                    std::thread::yield_now();
                }
                Err(PushError::Closed) => return,
            }
        }
    });
    Ok(TickwireServer {
        addr,
        source,
        stats,
        stop,
        _sequencer: sequencer,
    })
}

struct NaiveServer {
    addr: SocketAddr,
    source: Arc<SourceCtl>,
    stats: Arc<NaiveStats>,
    stop: watch::Sender<bool>,
}

/// The naive peer of DESIGN.md's facts: tokio::sync::broadcast, one WebSocket message and
/// one flush (`SinkExt::send`) per frame per client.
fn start_naive(rt: &Runtime, args: &Args) -> anyhow::Result<NaiveServer> {
    let (tx, _) = broadcast::channel::<Bytes>(args.ring);
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let stats = Arc::new(NaiveStats::default());
    let (stop, stop_rx) = watch::channel(false);
    rt.spawn(naive::serve(listener, tx.clone(), stats.clone(), stop_rx));
    let source = Arc::new(SourceCtl::default());
    let mut producer = Producer::new(Synth::new(args.instruments));
    spawn_source("src-naive", source.clone(), move |_| {
        let (_, bytes) = producer.produce();
        let _ = tx.send(Bytes::copy_from_slice(bytes));
    });
    Ok(NaiveServer {
        addr,
        source,
        stats,
        stop,
    })
}

/// Either server, as the benchmark drives it.
struct Target {
    kind: ServerKind,
    url: String,
    addr: SocketAddr,
    source: Arc<SourceCtl>,
    active: Box<dyn Fn() -> u64>,
    /// Frames the server itself reports lost (naive: skipped by lagging receivers).
    server_lost: Box<dyn Fn() -> u64>,
}

// ---------------------------------------------------------------------------------------
// Clients.

/// One client's counters, read by the orchestrator.
struct Slot {
    /// Data frames received.
    frames: AtomicU64,
    /// Frames missing inside a stream (`seq` jumped).
    gaps: AtomicU64,
    /// Messages that failed validation.
    invalid: AtomicU64,
    /// 0 while open; the close code the server sent; 1 for a connection that just ended.
    closed: AtomicU32,
    /// While set, the client does not read its socket.
    stall: AtomicBool,
    /// publish -> receive, ns, per data frame.
    latency: Mutex<Histogram<u64>>,
}

fn histogram() -> Histogram<u64> {
    // 1 ns to 100 s at 2 significant digits (1% resolution; 1,000 of these stay small).
    Histogram::new_with_bounds(1, 100_000_000_000, 2).expect("valid histogram bounds")
}

impl Slot {
    fn new() -> Slot {
        Slot {
            frames: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            invalid: AtomicU64::new(0),
            closed: AtomicU32::new(0),
            stall: AtomicBool::new(false),
            latency: Mutex::new(histogram()),
        }
    }
    fn frames(&self) -> u64 {
        self.frames.load(Ordering::Acquire)
    }
    fn is_open(&self) -> bool {
        self.closed.load(Ordering::Acquire) == 0
    }
}

/// Passes ids through a multiply (keys are already well spread).
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type Ws = WebSocketStream<TcpStream>;

async fn connect(
    t_url: &str,
    addr: SocketAddr,
    kind: ServerKind,
    subscribe: &str,
    rcvbuf: Option<u32>,
) -> anyhow::Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    if let Some(b) = rcvbuf {
        socket.set_recv_buffer_size(b)?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut ws, _) = tokio_tungstenite::client_async(t_url, stream).await?;
    if kind == ServerKind::Tickwire {
        tickwire_engine::bench::clients::subscribe_and_wait(&mut ws, subscribe).await?;
    }
    Ok(ws)
}

/// The client: read, validate, count, check `seq`, record latency. Identical for both
/// servers but for the message format (a tickwire batch, or one naive frame).
async fn client_loop(mut ws: Ws, kind: ServerKind, slot: Arc<Slot>, unstall: Arc<Notify>) {
    let mut next_seq: HashMap<u64, u64, BuildHasherDefault<KeyHasher>> = HashMap::default();
    loop {
        if slot.stall.load(Ordering::Acquire) {
            let woken = unstall.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if slot.stall.load(Ordering::Acquire) {
                woken.await;
            }
            continue;
        }
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
            Message::Binary(bytes) => {
                let now = now_ns();
                let mut frames = 0u64;
                let mut gaps = 0u64;
                let mut hist = slot.latency.lock().unwrap_or_else(|e| e.into_inner());
                let mut on_frame = |f: &ArchivedFrame| {
                    if !matches!(
                        f.body,
                        ArchivedBody::Trade(_)
                            | ArchivedBody::Quote(_)
                            | ArchivedBody::BookDelta(_)
                    ) {
                        return;
                    }
                    frames += 1;
                    hist.saturating_record(now.saturating_sub(f.ts_publish.to_native()).max(1));
                    let key = (u64::from(f.instrument.to_native()) << 8) | f.channel() as u64;
                    let seq = f.seq.to_native();
                    let next = next_seq.entry(key).or_insert(seq);
                    if seq > *next {
                        gaps += seq - *next;
                    }
                    *next = seq + 1;
                };
                let valid = match kind {
                    ServerKind::Tickwire => match Batch::new(&bytes[..]) {
                        Ok(batch) => {
                            batch.iter().for_each(&mut on_frame);
                            true
                        }
                        Err(_) => false,
                    },
                    ServerKind::Naive => match access(&bytes) {
                        Ok(f) => {
                            on_frame(f);
                            true
                        }
                        Err(_) => false,
                    },
                };
                drop(hist);
                if !valid {
                    slot.invalid.fetch_add(1, Ordering::Relaxed);
                }
                if gaps > 0 {
                    slot.gaps.fetch_add(gaps, Ordering::Relaxed);
                }
                slot.frames.fetch_add(frames, Ordering::AcqRel);
            }
            Message::Close(frame) => {
                let code = frame.map(|f| u16::from(f.code)).unwrap_or(1005);
                slot.closed.store(u32::from(code), Ordering::Release);
                return;
            }
            _ => {}
        }
    }
}

struct Client {
    slot: Arc<Slot>,
    task: JoinHandle<()>,
}

/// A set of clients of one server.
struct Clients {
    list: Vec<Client>,
    unstall: Arc<Notify>,
}

impl Clients {
    fn abort_all(&mut self) {
        for c in self.list.drain(..) {
            c.task.abort();
        }
    }
}

fn subscribe_message(instruments: usize) -> String {
    serde_json::json!({
        "op": "subscribe",
        "id": 1,
        "symbols": Synth::new(instruments).qualified(),
        "channels": ["trades", "quotes", "book"],
        "encoding": "binary",
        "policy": "lossless",
    })
    .to_string()
}

/// Connects `n` clients, 100 at a time; returns once every one is connected (and, for
/// tickwire, subscribed).
async fn connect_clients(
    t: &Target,
    n: usize,
    args: &Args,
    rcvbuf: Option<u32>,
    unstall: Arc<Notify>,
) -> anyhow::Result<Vec<Client>> {
    let subscribe = Arc::new(subscribe_message(args.instruments));
    let mut out = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        let chunk = (n - i).min(100);
        let mut pending = Vec::with_capacity(chunk);
        for _ in 0..chunk {
            let (url, addr, kind, sub) = (t.url.clone(), t.addr, t.kind, subscribe.clone());
            pending.push(tokio::spawn(async move {
                tokio::time::timeout(
                    Duration::from_secs(20),
                    connect(&url, addr, kind, &sub, rcvbuf),
                )
                .await
                .context("connect timed out")?
            }));
        }
        for p in pending {
            let ws = p.await??;
            let slot = Arc::new(Slot::new());
            let task = tokio::spawn(client_loop(ws, t.kind, slot.clone(), unstall.clone()));
            out.push(Client { slot, task });
        }
        i += chunk;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// CPU accounting per thread group, from /proc/self/task/*/schedstat (ns on CPU).

#[derive(Debug, Default, Clone, Copy)]
struct Cpu {
    /// Server runtime workers, the sequencer and the sources.
    server_ns: u64,
    /// Client runtime workers.
    client_ns: u64,
    /// Busy time of the whole machine (all processes), ns (from /proc/stat, 10 ms ticks).
    machine_ns: u64,
    /// This process, ns (from /proc/self/stat, 10 ms ticks).
    process_ns: u64,
}

/// Sum of clock ticks (USER_HZ = 100) in the given fields, as ns.
fn ticks_ns<'a>(fields: impl Iterator<Item = &'a str>) -> u64 {
    fields.filter_map(|v| v.parse::<u64>().ok()).sum::<u64>() * 10_000_000
}

fn cpu_now() -> Cpu {
    let mut cpu = Cpu::default();
    if let Ok(stat) = std::fs::read_to_string("/proc/stat")
        && let Some(line) = stat.lines().next()
    {
        // cpu  user nice system idle iowait irq softirq steal: all but idle and iowait.
        let f: Vec<&str> = line.split_whitespace().skip(1).collect();
        if f.len() >= 8 {
            cpu.machine_ns = ticks_ns([f[0], f[1], f[2], f[5], f[6], f[7]].into_iter());
        }
    }
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
        && let Some((_, rest)) = stat.rsplit_once(')')
    {
        // Fields after the command: state is 3rd; utime, stime are 14th and 15th.
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 13 {
            cpu.process_ns = ticks_ns([f[11], f[12]].into_iter());
        }
    }
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return cpu;
    };
    for task in dir.flatten() {
        let p = task.path();
        let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        let ns: u64 = std::fs::read_to_string(p.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
            .unwrap_or(0);
        let comm = comm.trim();
        if comm.starts_with("srv-") || comm.starts_with("src-") || comm.starts_with("tickwire-seq")
        {
            cpu.server_ns += ns;
        } else if comm.starts_with("cli-") {
            cpu.client_ns += ns;
        }
    }
    cpu
}

// ---------------------------------------------------------------------------------------
// Steps and phases.

/// What one step (or run, or phase) measured.
#[derive(Debug, Clone)]
struct Step {
    rate: f64,
    clients: usize,
    /// Frames per second the source actually emitted.
    offered: f64,
    /// Frames received by the measured clients during the window, per second.
    delivered: f64,
    /// Frames lost: missing at lossless clients after the drain (closed ones included), plus
    /// what the server reports skipping.
    lost: u64,
    /// Clients the server closed during the step, with their codes.
    closed: Vec<u32>,
    gaps: u64,
    invalid: u64,
    drained: bool,
    /// Time from pausing the source until every client had everything.
    drain_secs: f64,
    latency: Histogram<u64>,
    server_cores: f64,
    client_cores: f64,
    /// CPU used by other processes on the machine during the step (noise).
    other_cores: f64,
    /// Resident memory of the process after the step, MB.
    rss_mb: f64,
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

impl Step {
    /// Nothing lost, and the backlog left when the source paused was small: at most
    /// `max_drain` seconds of work (a server that falls behind by x% builds x% of the step's
    /// length of backlog), and at least `keep_up` of the offered frames arrived in the step.
    fn kept_up(&self, keep_up: f64, max_drain: f64) -> bool {
        self.lost == 0
            && self.closed.is_empty()
            && self.drained
            && self.drain_secs <= max_drain
            && self.delivered >= keep_up * self.offered * self.clients as f64
    }
    fn server_ns_per_frame(&self) -> f64 {
        if self.delivered <= 0.0 {
            return f64::NAN;
        }
        self.server_cores * 1e9 / self.delivered
    }
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1_000.0
}

fn fmt_rate(r: f64) -> String {
    let r = r.round() as u64;
    let s = r.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn print_step(label: &str, s: &Step) {
    let codes = if s.closed.is_empty() {
        "-".to_string()
    } else {
        let mut m: HashMap<u32, usize> = HashMap::new();
        for c in &s.closed {
            *m.entry(*c).or_default() += 1;
        }
        let mut v: Vec<_> = m.into_iter().collect();
        v.sort();
        v.iter()
            .map(|(c, n)| format!("{n}x{c}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    println!(
        "  {label:<10} rate {:>9} f/s  offered {:>9} f/s  delivered {:>11} f/s ({:>5.1}%)  drain {:>5.3} s  lost {:>8}  closed {:<8}  gaps {}  p50 {:>9.1} us  p99 {:>9.1} us  max {:>10.1} us  server {:.2} cores ({:.0} ns/frame)  clients {:.2} cores  other processes {:.2} cores  rss {:.0} MB{}",
        fmt_rate(s.rate),
        fmt_rate(s.offered),
        fmt_rate(s.delivered),
        100.0 * s.delivered / (s.offered * s.clients as f64).max(1.0),
        s.drain_secs,
        s.lost,
        codes,
        s.gaps,
        us(s.latency.value_at_quantile(0.5)),
        us(s.latency.value_at_quantile(0.99)),
        us(s.latency.max()),
        s.server_cores,
        s.server_ns_per_frame(),
        s.client_cores,
        s.other_cores,
        s.rss_mb,
        if s.drained { "" } else { "  NOT DRAINED" },
    );
    if s.invalid > 0 {
        println!("             {} messages failed validation", s.invalid);
    }
}

/// Runs the source at `rate` for `secs`, measuring the clients in `measured` (indexes into
/// `clients.list`); then pauses it and waits for every open, not stalled client to receive
/// everything published. Clients stalled during the step are not expected to keep up.
async fn step(
    t: &Target,
    clients: &Clients,
    measured: &[usize],
    rate: f64,
    secs: f64,
) -> anyhow::Result<Step> {
    let list = &clients.list;
    let open_before: Vec<bool> = list.iter().map(|c| c.slot.is_open()).collect();
    let f0: Vec<u64> = list.iter().map(|c| c.slot.frames()).collect();
    let g0: u64 = list
        .iter()
        .map(|c| c.slot.gaps.load(Ordering::Acquire))
        .sum();
    let i0: u64 = list
        .iter()
        .map(|c| c.slot.invalid.load(Ordering::Acquire))
        .sum();
    let server_lost0 = (t.server_lost)();
    for &i in measured {
        list[i]
            .slot
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reset();
    }
    let p0 = t.source.published();
    let cpu0 = cpu_now();
    let t0 = Instant::now();
    t.source.set_rate(rate);
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let p1 = t.source.published();
    let f1: Vec<u64> = list.iter().map(|c| c.slot.frames()).collect();
    let cpu1 = cpu_now();
    let elapsed = t0.elapsed().as_secs_f64();
    t.source.set_rate(0.0);
    let mut latency = histogram();
    for &i in measured {
        let h = list[i]
            .slot
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        latency.add(&*h).ok();
    }
    // Let the source see the pause, then wait for the clients to catch up.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let p_end = t.source.published();
    let published = p_end - p0;
    let expect = |i: usize| f0[i] + published;
    let waiting = |i: usize| {
        let s = &list[i].slot;
        open_before[i] && s.is_open() && !s.stall.load(Ordering::Acquire) && s.frames() < expect(i)
    };
    let paused = Instant::now();
    let deadline = paused + Duration::from_secs_f64((2.0 * secs).max(5.0));
    let mut drained = true;
    while (0..list.len()).any(waiting) {
        if Instant::now() > deadline {
            drained = false;
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let drain_secs = paused.elapsed().as_secs_f64();
    let mut lost = (t.server_lost)() - server_lost0;
    let mut closed = Vec::new();
    // Losses and closes count for the measured clients (all of them, except the stalled set
    // in isolation runs).
    for &i in measured {
        let c = &list[i];
        if !open_before[i] || c.slot.stall.load(Ordering::Acquire) {
            continue;
        }
        if !c.slot.is_open() {
            closed.push(c.slot.closed.load(Ordering::Acquire));
        }
        let short = expect(i).saturating_sub(c.slot.frames());
        if short > 0 && std::env::var_os("FANOUT_DEBUG").is_some() {
            eprintln!(
                "    client {i}: short {short} (had {} at start, got {} in the window, {} since), open {}",
                f0[i],
                f1[i] - f0[i],
                c.slot.frames() - f1[i],
                c.slot.is_open(),
            );
        }
        lost += short;
    }
    let delivered: u64 = measured.iter().map(|&i| f1[i] - f0[i]).sum();
    Ok(Step {
        rate,
        clients: measured.len(),
        offered: (p1 - p0) as f64 / elapsed,
        delivered: delivered as f64 / elapsed,
        lost,
        closed,
        gaps: list
            .iter()
            .map(|c| c.slot.gaps.load(Ordering::Acquire))
            .sum::<u64>()
            - g0,
        invalid: list
            .iter()
            .map(|c| c.slot.invalid.load(Ordering::Acquire))
            .sum::<u64>()
            - i0,
        drained,
        drain_secs,
        latency,
        server_cores: (cpu1.server_ns - cpu0.server_ns) as f64 / 1e9 / elapsed,
        client_cores: (cpu1.client_ns - cpu0.client_ns) as f64 / 1e9 / elapsed,
        other_cores: ((cpu1.machine_ns - cpu0.machine_ns) as f64
            - (cpu1.process_ns - cpu0.process_ns) as f64)
            .max(0.0)
            / 1e9
            / elapsed,
        rss_mb: rss_mb(),
    })
}

/// Replaces clients the server closed, so the next step starts with `n` open clients.
async fn replace_closed(
    t: &Target,
    clients: &mut Clients,
    args: &Args,
    rcvbuf: Option<u32>,
) -> anyhow::Result<usize> {
    let closed: Vec<usize> = (0..clients.list.len())
        .filter(|&i| !clients.list[i].slot.is_open())
        .collect();
    if closed.is_empty() {
        return Ok(0);
    }
    let fresh = connect_clients(t, closed.len(), args, rcvbuf, clients.unstall.clone()).await?;
    for (i, c) in closed.iter().zip(fresh) {
        let old = std::mem::replace(&mut clients.list[*i], c);
        old.task.abort();
    }
    Ok(closed.len())
}

async fn wait_disconnected(t: &Target) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while (t.active)() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The result of one server at one client count.
struct Throughput {
    kind: ServerKind,
    clients: usize,
    steps: Vec<Step>,
    /// The sustained run at the highest rate kept up with.
    sustained: Option<Step>,
}

impl Throughput {
    fn saturation(&self) -> f64 {
        self.steps
            .iter()
            .chain(self.sustained.iter())
            .map(|s| s.delivered)
            .fold(0.0, f64::max)
    }
    fn knee(&self) -> Option<&Step> {
        self.sustained.as_ref()
    }
}

async fn throughput(t: &Target, n: usize, args: &Args) -> anyhow::Result<Throughput> {
    println!("\n== throughput: {} server, {n} clients", t.kind.name());
    let t_connect = Instant::now();
    let list = connect_clients(t, n, args, None, Arc::new(Notify::new())).await?;
    let mut clients = Clients {
        list,
        unstall: Arc::new(Notify::new()),
    };
    println!(
        "  {n} clients connected in {:.2} s",
        t_connect.elapsed().as_secs_f64()
    );
    let all: Vec<usize> = (0..n).collect();
    // A short warm-up at the first rate (not reported).
    step(t, &clients, &all, args.start_deliveries / n as f64, 0.5).await?;
    let mut steps = Vec::new();
    let mut rate = args.start_deliveries / n as f64;
    let mut good: Option<f64> = None;
    let mut bad: Option<f64> = None;
    while rate <= args.max_rate {
        let s = step(t, &clients, &all, rate, args.step_secs).await?;
        print_step("ramp", &s);
        let ok = s.kept_up(args.keep_up, args.max_drain * args.step_secs);
        steps.push(s);
        if replace_closed(t, &mut clients, args, None).await? > 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if ok {
            good = Some(rate);
            rate *= args.growth;
        } else {
            bad = Some(rate);
            break;
        }
    }
    if let (Some(mut lo), Some(mut hi)) = (good, bad) {
        for _ in 0..args.refine {
            let mid = (lo * hi).sqrt();
            let s = step(t, &clients, &all, mid, args.step_secs).await?;
            print_step("refine", &s);
            let ok = s.kept_up(args.keep_up, args.max_drain * args.step_secs);
            steps.push(s);
            replace_closed(t, &mut clients, args, None).await?;
            if ok {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        good = Some(lo);
    }
    // The sustained run: at the highest rate kept up with; if it does not hold for the whole
    // run (a step is short, and other work on the machine comes and goes), again at 0.8x.
    let mut sustained = None;
    match good {
        Some(mut rate) => {
            for attempt in 1..=args.sustain_attempts {
                let s = step(t, &clients, &all, rate, args.run_secs).await?;
                print_step("sustained", &s);
                let ok = s.kept_up(args.keep_up, args.max_drain * args.step_secs);
                sustained = Some(s);
                if ok {
                    break;
                }
                if replace_closed(t, &mut clients, args, None).await? > 0 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                if attempt < args.sustain_attempts {
                    rate *= 0.8;
                }
            }
        }
        None => println!("  the server did not keep up even with the first step"),
    }
    clients.abort_all();
    wait_disconnected(t).await;
    Ok(Throughput {
        kind: t.kind,
        clients: n,
        steps,
        sustained,
    })
}

/// Isolation: A (none stalled), B (the last `stalled` share stalled), A, B.
struct Isolation {
    kind: ServerKind,
    tick_us: u64,
    clients: usize,
    stalled: usize,
    /// Close codes the server sent stalled clients (after they resumed reading).
    slow_closed: Vec<u32>,
    rate: f64,
    phases: Vec<(char, Step)>,
}

async fn isolation(t: &Target, spec: IsoSpec, args: &Args) -> anyhow::Result<Isolation> {
    let (n, rate) = (spec.clients, spec.rate);
    let stalled = ((n as f64 * args.stalled).round() as usize).clamp(1, n - 1);
    let frame_bytes = Producer::new(Synth::new(1)).produce().1.len() as f64;
    println!(
        "\n== isolation: {} server, {n} clients ({stalled} stalled in B), {} frames/s in bursts every {} us; a stalled client is offered {:.1} MB per B phase",
        t.kind.name(),
        fmt_rate(rate),
        spec.tick_us,
        rate * frame_bytes * args.iso_secs / 1e6,
    );
    t.source.tick_us.store(spec.tick_us, Ordering::Release);
    let unstall = Arc::new(Notify::new());
    let list = connect_clients(t, n, args, Some(args.iso_rcvbuf), unstall.clone()).await?;
    let mut clients = Clients { list, unstall };
    let mut slow_closed = Vec::new();
    let fast: Vec<usize> = (0..n - stalled).collect();
    let slow: Vec<usize> = (n - stalled..n).collect();
    step(t, &clients, &fast, rate, 1.0).await?;
    let mut phases = Vec::new();
    for phase in (0..args.iso_pairs).flat_map(|_| ['A', 'B']) {
        if phase == 'B' {
            for &i in &slow {
                clients.list[i].slot.stall.store(true, Ordering::Release);
            }
        }
        let s = step(t, &clients, &fast, rate, args.iso_secs).await?;
        print_step(&format!("phase {phase}"), &s);
        if phase == 'B' {
            let open = slow
                .iter()
                .filter(|&&i| clients.list[i].slot.is_open())
                .count();
            for &i in &slow {
                clients.list[i].slot.stall.store(false, Ordering::Release);
            }
            clients.unstall.notify_waiters();
            // Let them catch up (or be closed) before the next A phase.
            let caught_up = Instant::now();
            let target = fast.iter().map(|&i| clients.list[i].slot.frames()).max();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline
                && slow.iter().any(|&i| {
                    let s = &clients.list[i].slot;
                    s.is_open() && Some(s.frames()) < target
                })
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let mut codes: Vec<u32> = slow
                .iter()
                .map(|&i| clients.list[i].slot.closed.load(Ordering::Acquire))
                .filter(|&c| c != 0)
                .collect();
            codes.sort_unstable();
            println!(
                "             stalled clients: {open}/{stalled} still open at the end of the phase; after resuming, {} closed by the server {codes:?}, the rest caught up in {:.2} s",
                codes.len(),
                caught_up.elapsed().as_secs_f64()
            );
            slow_closed.extend(codes);
            replace_closed(t, &mut clients, args, Some(args.iso_rcvbuf)).await?;
        }
        phases.push((phase, s));
    }
    clients.abort_all();
    wait_disconnected(t).await;
    t.source.tick_us.store(args.tick_us, Ordering::Release);
    Ok(Isolation {
        kind: t.kind,
        tick_us: spec.tick_us,
        clients: n,
        stalled,
        slow_closed,
        rate,
        phases,
    })
}

// ---------------------------------------------------------------------------------------

fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let max_clients = args
        .clients
        .iter()
        .copied()
        .chain(args.iso.iter().map(|s| s.clients))
        .max()
        .unwrap_or(0);
    let need = (2 * max_clients + 256) as u64;
    if let Some(limit) = open_files_limit()
        && limit < need
    {
        bail!(
            "{max_clients} clients need about {need} file descriptors (client and server ends) and the limit is {limit}: run `ulimit -n {}` first",
            need.max(20_000)
        );
    }
    let max_secs = args.max_secs;
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(max_secs));
        eprintln!("fanout: --max-secs {max_secs} reached; stopping");
        std::process::exit(2);
    });
    tickwire_feed::tls::install_crypto_provider();
    let srv_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("srv-worker")
        .enable_all()
        .build()?;
    let cli_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("cli-worker")
        .enable_all()
        .build()?;
    let tw = start_tickwire(&srv_rt, &args)?;
    let naive = start_naive(&srv_rt, &args)?;
    for source in [&tw.source, &naive.source] {
        source.tick_us.store(args.tick_us, Ordering::Release);
    }
    let targets: Vec<Target> = [ServerKind::Naive, ServerKind::Tickwire]
        .iter()
        .map(|k| match k {
            ServerKind::Tickwire => {
                let stats = tw.stats.clone();
                Target {
                    kind: *k,
                    url: format!("ws://{}/ws", tw.addr),
                    addr: tw.addr,
                    source: tw.source.clone(),
                    active: Box::new(move || stats.active.load(Ordering::Acquire)),
                    server_lost: Box::new(|| 0),
                }
            }
            ServerKind::Naive => {
                let (a, l) = (naive.stats.clone(), naive.stats.clone());
                Target {
                    kind: *k,
                    url: format!("ws://{}/ws", naive.addr),
                    addr: naive.addr,
                    source: naive.source.clone(),
                    active: Box::new(move || a.active.load(Ordering::Acquire)),
                    server_lost: Box::new(move || l.lagged_frames.load(Ordering::Acquire)),
                }
            }
        })
        .collect();
    println!(
        "fanout: {} instruments, frames of {} bytes, source bursts every {} us, ring/channel capacity {}, step {} s, sustained run {} s; tickwire at ws://{}/ws, naive at ws://{}/ws",
        args.instruments,
        Producer::new(Synth::new(1)).produce().1.len(),
        args.tick_us,
        args.ring,
        args.step_secs,
        args.run_secs,
        tw.addr,
        naive.addr
    );
    let started = Instant::now();
    let (thr, iso) = cli_rt.block_on(async {
        let mut thr = Vec::new();
        let mut iso = Vec::new();
        let target = |k: ServerKind| targets.iter().find(|t| t.kind == k).expect("both servers");
        if args.mode != Mode::Isolation {
            for &n in &args.clients {
                for &k in &args.servers {
                    thr.push(throughput(target(k), n, &args).await?);
                }
            }
        }
        if args.mode != Mode::Throughput {
            for spec in &args.iso {
                iso.push(isolation(target(spec.kind), *spec, &args).await?);
            }
        }
        anyhow::Ok((thr, iso))
    })?;
    println!("\n{}", summary(&thr, &iso, &args));
    println!("total {:.0} s", started.elapsed().as_secs_f64());
    let _ = tw.stop.send(true);
    let _ = naive.stop.send(true);
    tw.source.stop.store(true, Ordering::Release);
    naive.source.stop.store(true, Ordering::Release);
    if tw.source.full_waits.load(Ordering::Relaxed) > 0 {
        println!(
            "(the tickwire source found the ingest ring full {} times)",
            tw.source.full_waits.load(Ordering::Relaxed)
        );
    }
    drop(cli_rt);
    srv_rt.shutdown_timeout(Duration::from_secs(2));
    Ok(())
}

fn summary(thr: &[Throughput], iso: &[Isolation], args: &Args) -> String {
    let mut out = String::new();
    if !thr.is_empty() {
        let _ = writeln!(
            out,
            "| clients | server | sustained rate (frames/s) | delivered (frames/s) | kept up | lost (closed) | p50 / p99 (us) | server CPU (cores, ns/frame) | most delivered in any step (frames/s) |"
        );
        let _ = writeln!(out, "|---:|---|---:|---:|---|---:|---:|---:|---:|");
        for r in thr {
            match r.knee() {
                Some(s) => {
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} | {} | {} | {} ({}) | {:.0} / {:.0} | {:.2}, {:.0} | {} |",
                        r.clients,
                        r.kind.name(),
                        fmt_rate(s.offered),
                        fmt_rate(s.delivered),
                        if s.kept_up(args.keep_up, args.max_drain * args.step_secs) {
                            "yes"
                        } else {
                            "no"
                        },
                        s.lost,
                        s.closed.len(),
                        us(s.latency.value_at_quantile(0.5)),
                        us(s.latency.value_at_quantile(0.99)),
                        s.server_cores,
                        s.server_ns_per_frame(),
                        fmt_rate(r.saturation())
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "| {} | {} | - | - | - | - | - | - | {} |",
                        r.clients,
                        r.kind.name(),
                        fmt_rate(r.saturation())
                    );
                }
            }
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "| clients | tickwire / naive: sustained delivered | most delivered | server CPU per frame (naive / tickwire) |"
        );
        let _ = writeln!(out, "|---:|---:|---:|---:|");
        for &n in &args.clients {
            let get = |k| thr.iter().find(|r| r.clients == n && r.kind == k);
            if let (Some(tw), Some(nv)) = (get(ServerKind::Tickwire), get(ServerKind::Naive)) {
                let sus = match (tw.knee(), nv.knee()) {
                    (Some(a), Some(b)) => format!("{:.1}x", a.delivered / b.delivered),
                    _ => "-".into(),
                };
                let cpu = match (tw.knee(), nv.knee()) {
                    (Some(a), Some(b)) => {
                        format!("{:.1}x", b.server_ns_per_frame() / a.server_ns_per_frame())
                    }
                    _ => "-".into(),
                };
                let _ = writeln!(
                    out,
                    "| {n} | {sus} | {:.1}x | {cpu} |",
                    tw.saturation() / nv.saturation()
                );
            }
        }
    }
    if !iso.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "| server | clients (stalled) | frames/s (burst every) | fast clients p99 (us), phases A B A B.. | p99 B / A: pooled (each pair) | p50 A / B (us) | fast clients: lost, closed | stalled clients closed (codes) |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for r in iso {
            let mut a = histogram();
            let mut b = histogram();
            for (p, s) in &r.phases {
                let _ = if *p == 'A' {
                    a.add(&s.latency)
                } else {
                    b.add(&s.latency)
                };
            }
            let p99s: Vec<String> = r
                .phases
                .iter()
                .map(|(_, s)| format!("{:.0}", us(s.latency.value_at_quantile(0.99))))
                .collect();
            let p99 = |s: &Step| s.latency.value_at_quantile(0.99) as f64;
            let pairs: Vec<String> = r
                .phases
                .chunks(2)
                .filter(|c| c.len() == 2)
                .map(|c| format!("{:.2}", p99(&c[1].1) / p99(&c[0].1)))
                .collect();
            let lost: u64 = r.phases.iter().map(|(_, s)| s.lost).sum();
            let closed: usize = r.phases.iter().map(|(_, s)| s.closed.len()).sum();
            let slow_closed = if r.slow_closed.is_empty() {
                "0".to_string()
            } else {
                format!("{} {:?}", r.slow_closed.len(), r.slow_closed)
            };
            let _ = writeln!(
                out,
                "| {} | {} ({}) | {} ({} us) | {} | {:.2} ({}) | {:.0} / {:.0} | {}, {} | {} |",
                r.kind.name(),
                r.clients,
                r.stalled,
                fmt_rate(r.rate),
                r.tick_us,
                p99s.join(" / "),
                b.value_at_quantile(0.99) as f64 / a.value_at_quantile(0.99) as f64,
                pairs.join(", "),
                us(a.value_at_quantile(0.5)),
                us(b.value_at_quantile(0.5)),
                lost,
                closed,
                slow_closed,
            );
        }
    }
    out
}
