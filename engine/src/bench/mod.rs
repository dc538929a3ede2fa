//! `tickwire bench`: the end-to-end latency harness (also `cargo run --release -p benches
//! --bin e2e`).
//!
//! One process, three runtimes on loopback: the exchange simulator (Binance dialect,
//! synthetic market at a fixed open-loop rate, [`Pacing::Precise`]), a server under test, and
//! N clients (a chosen share slow or stalled). Every venue message carries its *intended*
//! send time (`E`/`T`, microseconds), so latency is measured from the schedule and a stall
//! counts for every message behind it (no coordinated omission).
//!
//! Peers, each on the same simulator load and the same client code:
//! - `tickwire`: the whole server ([`crate::server`]): feed driver, ingest ring, sequencer,
//!   broadcast ring, gateway with batching and per-client policy;
//! - `tickwire-rec`: the same server with the recorder on (`serve --record`), recording into
//!   a directory under `--out` that is deleted after the run unless `--keep-recording`; the
//!   report gives its latency over `tickwire`'s at the same load (the recording overhead);
//! - `naive`: the same feed driver feeding [`naive`]: `tokio::sync::broadcast`, one message
//!   and one flush per frame per client;
//! - `nats`: the same feed driver publishing one NATS message per frame, a NATS connection
//!   per client ([`nats`]);
//! - `cluster`: the NATS scale-out ([`crate::cluster`]): a `nats-server`, one ingest server
//!   on the simulator's feed and `--gateways` gateway servers (2 by default) fed from NATS,
//!   the clients split evenly between the gateways. Frames keep the ingest node's
//!   `ts_publish`, so publish -> client includes the NATS hop and the gateway; the report
//!   gives its latency over the embedded `tickwire`'s at the same load.
//!
//! Output: a table per run on the terminal, `report.json`, one `.hgrm` percentile
//! distribution per hop and run, and `latency-<rate>.svg` plots, in `--out`.

pub mod clients;
pub mod hops;
pub mod naive;
pub mod nats;
pub mod plot;
pub mod report;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tickwire_feed::binance::BinanceSpot;
use tickwire_feed::clock::now_ns;
use tickwire_feed::driver::{self, DriverConfig, DriverStats, Shutdown};
use tickwire_feed::sim::{self, Pacing, SimConfig, SimSource};
use tickwire_feed::venue::VenueSpec;
use tokio::runtime::Runtime;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::cluster::{ClusterConfig, Role};
use crate::recorder::RecorderConfig;
use crate::server::{self, ServerConfig};
use clients::{Behaviour, Protocol, Slot, Window};
use hops::{Hop, Hops, Percentiles};
use report::{HopStats, Machine, Report, Run};
use tickwire_sdk::recording::WriterOptions;

/// A server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Peer {
    /// tickwire's own server.
    Tickwire,
    /// tickwire's own server with the recorder on (`serve --record`).
    TickwireRec,
    /// tokio-tungstenite + `tokio::sync::broadcast`, one flush per frame.
    Naive,
    /// A `nats-server` child process, one NATS message per frame, one connection per client.
    Nats,
    /// tickwire scaled out over NATS: one ingest node, `--gateways` gateway nodes.
    Cluster,
}

impl Peer {
    /// Name in reports and file names.
    pub const fn name(self) -> &'static str {
        match self {
            Peer::Tickwire => "tickwire",
            Peer::TickwireRec => "tickwire-rec",
            Peer::Naive => "naive",
            Peer::Nats => "nats",
            Peer::Cluster => "cluster",
        }
    }

    /// Needs a `nats-server` binary.
    const fn needs_nats(self) -> bool {
        matches!(self, Peer::Nats | Peer::Cluster)
    }
}

/// Delivery policy of tickwire's clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientPolicy {
    /// Every frame; a client past its bound is closed.
    Lossless,
    /// Every frame while it keeps up; conflated state when it falls behind.
    Conflate,
}

/// The harness's settings.
#[derive(clap::Args, Debug, Clone, Serialize)]
pub struct BenchArgs {
    /// Servers to measure, in order [default: tickwire,naive, and nats when `nats-server` is
    /// installed]. `tickwire-rec` (recorder on) and `cluster` (NATS scale-out) are measured
    /// against `tickwire` at the same load, so list `tickwire` with them.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub peers: Vec<Peer>,
    /// Offered market actions per second (trades and book changes over all symbols), one
    /// run per rate and peer. Book changes leave as 100 ms depth diffs, so venue messages in
    /// per second are fewer than actions; the report gives both.
    #[arg(long, value_delimiter = ',', default_values_t = [10_000.0])]
    pub rate: Vec<f64>,
    /// Clients per run.
    #[arg(long, default_value_t = 100)]
    pub clients: usize,
    /// Share of clients that are slow (sleep `--slow-delay-ms` after every message), 0..1.
    #[arg(long, default_value_t = 0.0)]
    pub slow: f64,
    /// Share of clients that never read after subscribing, 0..1.
    #[arg(long, default_value_t = 0.0)]
    pub stalled: f64,
    /// A slow client's pause after each message, ms.
    #[arg(long, default_value_t = 5)]
    pub slow_delay_ms: u64,
    /// Synthetic symbols (BTCUSDT, ETHUSDT, ...); every client subscribes to all of them.
    #[arg(long, default_value_t = 4)]
    pub symbols: usize,
    /// tickwire clients' delivery policy.
    #[arg(long, value_enum, default_value_t = ClientPolicy::Conflate)]
    pub policy: ClientPolicy,
    /// Seconds measured per run (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of load before measuring (connections settle, books sync).
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Worker threads of the server's runtime (the sequencer has its own thread besides).
    #[arg(long, default_value_t = 2)]
    pub server_threads: usize,
    /// Worker threads of the clients' runtime.
    #[arg(long, default_value_t = 2)]
    pub client_threads: usize,
    /// Seed of the synthetic market (same seed, same market for every peer).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Directory for report.json, the .hgrm files and the plots.
    #[arg(long, default_value = "bench-report")]
    pub out: PathBuf,
    /// A smoke run of a few seconds: 10 clients, 2,000 actions/s, 1.5 s per peer.
    #[arg(long)]
    pub quick: bool,
    /// Stop starting runs after this many seconds in total.
    #[arg(long, default_value_t = 1800.0)]
    pub max_secs: f64,
    /// Runs per (rate, peer), the peers alternating within each repeat, so that two peers'
    /// ratios can be taken from runs seconds apart and summarized over repeats.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Keep the `tickwire-rec` peer's recordings (`<out>/recording-<rate>[-r<i>]`) instead
    /// of deleting them after each run.
    #[arg(long)]
    pub keep_recording: bool,
    /// Gateway nodes of the `cluster` peer (the clients are split evenly between them).
    #[arg(long, default_value_t = 2)]
    pub gateways: usize,
}

impl BenchArgs {
    fn effective(mut self) -> anyhow::Result<BenchArgs> {
        if self.quick {
            self.clients = self.clients.min(10);
            self.rate = vec![2_000.0];
            self.duration = 1.5;
            self.warmup = 0.5;
        }
        if self.peers.is_empty() {
            self.peers = vec![Peer::Tickwire, Peer::Naive];
            if nats::find_server().is_some() {
                self.peers.push(Peer::Nats);
            }
        }
        if let Some(p) = self.peers.iter().find(|p| p.needs_nats())
            && nats::find_server().is_none()
        {
            bail!(
                "--peers {} needs nats-server on PATH (Debian: apt-get install nats-server)",
                p.name()
            );
        }
        if self.repeat == 0 || self.gateways == 0 {
            bail!("--repeat and --gateways must be at least 1");
        }
        if self.rate.iter().any(|r| !r.is_finite() || *r <= 0.0) {
            bail!("--rate: every rate must be a positive number of actions per second");
        }
        if !(0.0..=1.0).contains(&self.slow)
            || !(0.0..=1.0).contains(&self.stalled)
            || self.slow + self.stalled > 1.0
        {
            bail!("--slow and --stalled are shares between 0 and 1 that add up to at most 1");
        }
        if self.clients == 0 || self.symbols == 0 {
            bail!("--clients and --symbols must be at least 1");
        }
        if self.duration <= 0.0 || self.warmup < 0.0 {
            bail!("--duration must be above 0 and --warmup at least 0 (seconds)");
        }
        Ok(self)
    }

    fn symbol_names(&self) -> Vec<String> {
        const KNOWN: [&str; 8] = [
            "BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT",
            "AVAXUSDT",
        ];
        (0..self.symbols)
            .map(|i| match KNOWN.get(i) {
                Some(s) => s.to_string(),
                None => format!("SYM{i}USDT"),
            })
            .collect()
    }
}

/// Runs the harness: every rate for every peer, then the report. Blocking; builds its own
/// runtimes (call it outside any tokio runtime).
pub fn main(args: BenchArgs) -> anyhow::Result<Report> {
    let args = args.effective()?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating the report directory {}", args.out.display()))?;
    let started = Instant::now();
    let mut runs = Vec::new();
    'all: for &rate in &args.rate {
        for repeat in 0..args.repeat {
            for &peer in &args.peers {
                if started.elapsed().as_secs_f64() > args.max_secs {
                    eprintln!(
                        "--max-secs {} reached: the remaining runs are skipped",
                        args.max_secs
                    );
                    break 'all;
                }
                let run = run_one(peer, rate, repeat, &args)
                    .with_context(|| format!("{} at {rate} actions/s", peer.name()))?;
                println!("{}", report::table(&run));
                runs.push(run);
            }
        }
    }
    let ratios = report::ratios(&runs);
    if !ratios.is_empty() {
        print!("{}", report::ratio_lines(&ratios));
    }
    let overheads = report::overheads(&runs);
    if !overheads.is_empty() {
        print!("{}", report::overhead_lines(&overheads));
    }
    let goals = report::goals(&runs, &ratios, &overheads);
    print!("{}", report::goal_lines(&goals));
    write_files(&args, &runs)?;
    let report = Report {
        version: 1,
        started: format!(
            "{} s since the Unix epoch",
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        ),
        machine: Machine::this(),
        settings: serde_json::to_value(&args)?,
        runs,
        ratios,
        overheads,
        goals,
    };
    let path = args.out.join("report.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!(
        "report: {} (with .hgrm percentile files and latency-*.svg plots beside it)",
        path.display()
    );
    Ok(report)
}

fn write_files(args: &BenchArgs, runs: &[Run]) -> anyhow::Result<()> {
    for run in runs {
        let stem = run.stem();
        if let Some(h) = &run.histograms {
            for hop in Hop::ALL {
                report::write_hgrm(
                    h.get(hop),
                    &args.out.join(format!("{stem}-{}.hgrm", hop.name())),
                )?;
            }
        }
        if let Some(l) = &run.lateness {
            report::write_hgrm(l, &args.out.join(format!("{stem}-sim_lateness.hgrm")))?;
        }
    }
    for &rate in &args.rate {
        // The first repeat of each peer.
        let at: Vec<&Run> = runs
            .iter()
            .filter(|r| r.rate == rate && r.repeat == 0)
            .collect();
        if at.is_empty() {
            continue;
        }
        let mut series = Vec::new();
        for r in &at {
            if let Some(h) = &r.histograms {
                series.push(plot::Series {
                    name: format!("{} end to end", r.peer),
                    hist: h.get(Hop::EndToEnd),
                    dashed: false,
                });
            }
        }
        for r in at.iter().filter(|r| r.peer == Peer::Tickwire.name()) {
            if let Some(h) = &r.histograms {
                for hop in [
                    Hop::ExchangeToRecv,
                    Hop::RecvToPublish,
                    Hop::PublishToClient,
                ] {
                    series.push(plot::Series {
                        name: format!("{} {}", r.peer, hop.label()),
                        hist: h.get(hop),
                        dashed: true,
                    });
                }
            }
        }
        let title = format!(
            "latency at {rate} actions/s, {} clients (loopback, {} CPUs)",
            args.clients,
            Machine::this().cpus
        );
        let path = args.out.join(format!("latency-{rate}.svg"));
        std::fs::write(&path, plot::svg(&title, &series))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn runtime(name: &str, workers: usize) -> anyhow::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .enable_all()
        .build()
        .with_context(|| format!("starting the {name} runtime"))
}

/// A server under test, running.
enum Server {
    Tickwire(Box<server::ServerHandle>),
    Cluster {
        ingest: Box<server::ServerHandle>,
        gateways: Vec<server::ServerHandle>,
        nats: nats::NatsServer,
    },
    Naive {
        addr: SocketAddr,
        stop: watch::Sender<bool>,
        stop_feed: Shutdown,
        feed: Arc<DriverStats>,
        stats: Arc<naive::NaiveStats>,
        task: JoinHandle<()>,
    },
    Nats {
        server: nats::NatsServer,
        stop_feed: Shutdown,
        feed: Arc<DriverStats>,
        stats: Arc<naive::NaiveStats>,
        task: JoinHandle<()>,
        publisher: JoinHandle<()>,
    },
}

impl Server {
    fn feed(&self) -> &DriverStats {
        match self {
            Server::Tickwire(h) => &h.feed_stats[0],
            Server::Cluster { ingest, .. } => &ingest.feed_stats[0],
            Server::Naive { feed, .. } | Server::Nats { feed, .. } => feed,
        }
    }
    fn published(&self) -> u64 {
        match self {
            Server::Tickwire(h) => h.published(),
            Server::Cluster { ingest, .. } => ingest.published(),
            Server::Naive { stats, .. } | Server::Nats { stats, .. } => {
                stats.published.load(Ordering::Relaxed)
            }
        }
    }
    fn recorder_stats(&self) -> Option<Arc<crate::recorder::RecorderStats>> {
        match self {
            Server::Tickwire(h) => h.recorder_stats(),
            _ => None,
        }
    }
    /// Where clients connect: client `i` takes entry `i % len` (the cluster's gateways).
    fn endpoints(&self) -> Vec<(String, SocketAddr)> {
        match self {
            Server::Tickwire(h) => vec![(h.ws_url(), h.addr())],
            Server::Cluster { gateways, .. } => {
                gateways.iter().map(|g| (g.ws_url(), g.addr())).collect()
            }
            Server::Naive { addr, .. } => vec![(format!("ws://{addr}/"), *addr)],
            Server::Nats { server, .. } => vec![(server.url(), ([127, 0, 0, 1], 0).into())],
        }
    }
    async fn shutdown(self) {
        match self {
            Server::Tickwire(h) => h.shutdown().await,
            Server::Cluster {
                ingest,
                gateways,
                nats,
            } => {
                ingest.shutdown().await;
                for g in gateways {
                    g.shutdown().await;
                }
                drop(nats);
            }
            Server::Naive {
                stop,
                stop_feed,
                task,
                ..
            } => {
                stop_feed.trigger();
                let _ = stop.send(true);
                let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
            }
            Server::Nats {
                server,
                stop_feed,
                task,
                publisher,
                ..
            } => {
                stop_feed.trigger();
                let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
                publisher.abort();
                drop(server);
            }
        }
    }
}

/// Broadcast channel slots of the naive peer: the same bound as tickwire's ring.
const NAIVE_CAPACITY: usize = 1 << 16;

/// Waits until the feed of `feed` has connected to the simulator.
async fn feed_connected(feed: &DriverStats) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while feed.connects.load(Ordering::Acquire) == 0 {
        if Instant::now() > deadline {
            bail!("the feed did not connect to the simulator within 15 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

async fn start_server(
    peer: Peer,
    spec: Arc<dyn VenueSpec>,
    record: Option<&std::path::Path>,
    gateways: usize,
) -> anyhow::Result<Server> {
    let listen: SocketAddr = "127.0.0.1:0".parse()?;
    Ok(match peer {
        Peer::Tickwire | Peer::TickwireRec => {
            let mut config = ServerConfig::new(listen, vec![spec]);
            // As `serve --record DIR`.
            config.record = record.map(|dir| RecorderConfig {
                dir: dir.to_path_buf(),
                options: WriterOptions::default(),
            });
            Server::Tickwire(Box::new(server::start(config).await?))
        }
        Peer::Cluster => {
            let bin = nats::find_server()
                .context("nats-server is not installed (Debian: apt-get install nats-server)")?;
            let nats = nats::NatsServer::start(&bin)?;
            let node = |role, name: String| {
                Some(ClusterConfig {
                    role,
                    nats: nats.url(),
                    node: name,
                })
            };
            let mut config = ServerConfig::new(listen, vec![spec]);
            config.cluster = node(Role::Ingest, "bench-ingest".into());
            let ingest = server::start(config).await.context("the ingest node")?;
            // The gateways find the ingest node's directory at start; let it have a feed.
            feed_connected(&ingest.feed_stats[0]).await?;
            let mut gws = Vec::with_capacity(gateways);
            for i in 0..gateways {
                let mut config = ServerConfig::new(listen, vec![]);
                config.cluster = node(Role::Gateway, format!("bench-gateway-{i}"));
                gws.push(
                    server::start(config)
                        .await
                        .with_context(|| format!("gateway node {i}"))?,
                );
            }
            Server::Cluster {
                ingest: Box::new(ingest),
                gateways: gws,
                nats,
            }
        }
        Peer::Naive => {
            let (tx, _) = broadcast::channel(NAIVE_CAPACITY);
            let stats = Arc::new(naive::NaiveStats::default());
            let listener = tokio::net::TcpListener::bind(listen).await?;
            let addr = listener.local_addr()?;
            let (stop, stop_rx) = watch::channel(false);
            tokio::spawn(naive::serve(listener, tx.clone(), stats.clone(), stop_rx));
            let (stop_feed, feed_rx) = Shutdown::new();
            let feed = Arc::new(DriverStats::default());
            let task = tokio::spawn(driver::run(
                spec,
                Arc::new(naive::NaiveSink::new(tx, stats.clone())),
                DriverConfig::default(),
                feed.clone(),
                feed_rx,
            ));
            Server::Naive {
                addr,
                stop,
                stop_feed,
                feed,
                stats,
                task,
            }
        }
        Peer::Nats => {
            let bin = nats::find_server()
                .context("nats-server is not installed (Debian: apt-get install nats-server)")?;
            let server = nats::NatsServer::start(&bin)?;
            let client = async_nats::connect(server.url())
                .await
                .with_context(|| format!("connecting to {}", server.url()))?;
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let publisher = tokio::spawn(nats::publish(client, rx));
            let stats = Arc::new(naive::NaiveStats::default());
            let (stop_feed, feed_rx) = Shutdown::new();
            let feed = Arc::new(DriverStats::default());
            let task = tokio::spawn(driver::run(
                spec,
                Arc::new(nats::NatsSink::new(tx, stats.clone())),
                DriverConfig::default(),
                feed.clone(),
                feed_rx,
            ));
            Server::Nats {
                server,
                stop_feed,
                feed,
                stats,
                task,
                publisher,
            }
        }
    })
}

fn subscribe_message(symbols: &[String], policy: ClientPolicy) -> String {
    let symbols: Vec<String> = symbols.iter().map(|s| format!("binance:{s}")).collect();
    serde_json::json!({
        "op": "subscribe",
        "id": 1,
        "symbols": symbols,
        "channels": ["trades", "quotes", "book"],
        "encoding": "binary",
        "policy": match policy {
            ClientPolicy::Lossless => "lossless",
            ClientPolicy::Conflate => "conflate",
        },
    })
    .to_string()
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let kb: f64 = s
                .lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some(kb / 1024.0)
        })
        .unwrap_or(0.0)
}

enum Conn {
    Ws(Box<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>>),
    Nats(async_nats::Subscriber),
}

struct Client {
    behaviour: Behaviour,
    slot: Arc<Slot>,
    task: JoinHandle<()>,
}

fn progress(label: &str, secs: f64) -> ProgressBar {
    let pb = ProgressBar::new((secs * 10.0).ceil() as u64);
    pb.set_style(
        ProgressStyle::with_template("{prefix:>22} [{bar:30}] {elapsed:>4} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_prefix(label.to_string());
    pb
}

/// CPU time (utime + stime, clock ticks) of this process's threads by thread name (runtimes
/// name their workers `sim`, `server`, `client`; `tickwire-sequen`, `tickwire-record` are the
/// sequencer and recorder threads, as the kernel truncates names), and of its child
/// processes by command (`nats-server`).
fn cpu_ticks() -> Vec<(String, u64)> {
    fn stat(path: &std::path::Path) -> Option<(String, u64)> {
        let s = std::fs::read_to_string(path).ok()?;
        let (open, close) = (s.find('(')?, s.rfind(')')?);
        let name = s[open + 1..close].to_string();
        // After ") ": state is field 3; utime and stime are fields 14 and 15.
        let f: Vec<&str> = s[close + 2..].split_whitespace().collect();
        Some((
            name,
            f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?,
        ))
    }
    let mut out: Vec<(String, u64)> = Vec::new();
    let mut add = |(name, t): (String, u64)| match out.iter_mut().find(|(n, _)| *n == name) {
        Some((_, v)) => *v += t,
        None => out.push((name, t)),
    };
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        if let Some(x) = stat(&task.path().join("stat")) {
            add(x);
        }
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for pid in children.split_whitespace() {
            if let Some(x) = stat(std::path::Path::new(&format!("/proc/{pid}/stat"))) {
                add(x);
            }
        }
    }
    out
}

/// CPU cores used by each thread group between two [`cpu_ticks`] snapshots `seconds` apart.
fn cores_used(
    before: &[(String, u64)],
    after: &[(String, u64)],
    seconds: f64,
) -> Vec<(String, f64)> {
    // USER_HZ: 100 on every Linux architecture tickwire runs on.
    let hz = 100.0;
    let mut out: Vec<(String, f64)> = after
        .iter()
        .map(|(name, t)| {
            let t0 = before.iter().find(|(n, _)| n == name).map_or(0, |x| x.1);
            (
                name.clone(),
                t.saturating_sub(t0) as f64 / hz / seconds.max(1e-9),
            )
        })
        .filter(|(_, c)| *c > 0.0)
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

/// Bytes of the files under `dir` (a recording: its segments).
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// One peer at one rate: start everything, load, measure, stop everything.
fn run_one(peer: Peer, rate: f64, repeat: usize, args: &BenchArgs) -> anyhow::Result<Run> {
    let symbols = args.symbol_names();
    let sim_rt = runtime("sim", 1)?;
    let server_rt = runtime("server", args.server_threads.max(1))?;
    let client_rt = runtime("client", args.client_threads.max(1))?;
    let sim = sim_rt.block_on(sim::start(SimConfig {
        listen: "127.0.0.1:0".parse()?,
        sources: vec![SimSource::Synthetic {
            symbols: symbols.clone(),
            rate,
            seed: args.seed,
        }],
        speed: 1.0,
        looping: false,
        paused: true,
        ping_interval: sim::BINANCE_PING_INTERVAL,
        venue: tickwire_sdk::wire::Venue::Binance,
        pacing: Pacing::Precise,
    }))?;
    let spec: Arc<dyn VenueSpec> =
        Arc::new(BinanceSpot::new(symbols.clone()).at(&sim.ws_url(), &sim.rest_url()));
    let record_dir = (peer == Peer::TickwireRec).then(|| {
        args.out
            .join(format!("recording-{rate}{}", report::repeat_suffix(repeat)))
    });
    if let Some(dir) = &record_dir {
        // A new recording each run (the recorder would continue an old one).
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the recording directory {}", dir.display()))?;
    }
    let server = server_rt.block_on(start_server(
        peer,
        spec,
        record_dir.as_deref(),
        args.gateways,
    ))?;
    server_rt.block_on(feed_connected(server.feed()))?;

    // Clients: stalled first, then slow, then fast.
    let n_stalled = (args.clients as f64 * args.stalled).round() as usize;
    let n_slow = ((args.clients as f64 * args.slow).round() as usize).min(args.clients - n_stalled);
    let window = Arc::new(Window::default());
    let protocol = match peer {
        Peer::Tickwire | Peer::TickwireRec | Peer::Cluster => Protocol::Tickwire,
        Peer::Naive => Protocol::Naive,
        Peer::Nats => Protocol::Nats,
    };
    let endpoints = server.endpoints();
    let subscribe = Arc::new(subscribe_message(&symbols, args.policy));
    let clients: Vec<Client> = client_rt.block_on(async {
        let mut out = Vec::with_capacity(args.clients);
        for chunk in (0..args.clients).collect::<Vec<_>>().chunks(100) {
            let pending: Vec<_> = chunk
                .iter()
                .map(|&i| {
                    let (url, addr) = endpoints[i % endpoints.len()].clone();
                    let sub = subscribe.clone();
                    tokio::spawn(async move {
                        tokio::time::timeout(Duration::from_secs(20), async move {
                            Ok::<_, anyhow::Error>(match protocol {
                                Protocol::Nats => {
                                    Conn::Nats(clients::connect_nats(&url, "md.binance.>").await?)
                                }
                                _ => Conn::Ws(Box::new(
                                    clients::connect(&url, addr, protocol, &sub).await?,
                                )),
                            })
                        })
                        .await
                        .context("connecting a client timed out")?
                    })
                })
                .collect();
            for p in pending {
                let conn = p.await??;
                let i = out.len();
                let behaviour = if i < n_stalled {
                    Behaviour::Stalled
                } else if i < n_stalled + n_slow {
                    Behaviour::Slow(Duration::from_millis(args.slow_delay_ms))
                } else {
                    Behaviour::Fast
                };
                let slot = Arc::new(Slot::default());
                let (s, w) = (slot.clone(), window.clone());
                let task = match conn {
                    Conn::Ws(ws) => tokio::spawn(clients::run(*ws, protocol, behaviour, s, w)),
                    Conn::Nats(sub) => tokio::spawn(clients::run_nats(sub, behaviour, s, w)),
                };
                out.push(Client {
                    behaviour,
                    slot,
                    task,
                });
            }
        }
        anyhow::Ok(out)
    })?;

    // Load: warm-up, then the measured window.
    let label = format!("{} @ {rate}/s", peer.name());
    let pb = progress(&label, args.warmup + args.duration);
    let total_frames = || -> u64 {
        clients
            .iter()
            .map(|c| c.slot.frames.load(Ordering::Relaxed))
            .sum()
    };
    sim.start();
    let t0 = Instant::now();
    let warm = Duration::from_secs_f64(args.warmup);
    let end = warm + Duration::from_secs_f64(args.duration);
    let mut in_window = false;
    let (mut msgs0, mut pub0) = (0u64, 0u64);
    let mut cpu0 = Vec::new();
    let (mut last_frames, mut last_t) = (0u64, Instant::now());
    loop {
        let el = t0.elapsed();
        if !in_window && el >= warm {
            window.from_ns.store(now_ns(), Ordering::Release);
            sim.reset_lateness();
            cpu0 = cpu_ticks();
            msgs0 = server.feed().messages.load(Ordering::Acquire);
            pub0 = server.published();
            in_window = true;
        }
        if el >= end {
            break;
        }
        let f = total_frames();
        let dt = last_t.elapsed().as_secs_f64();
        if dt >= 0.5 {
            pb.set_message(format!("{:.0} deliveries/s", (f - last_frames) as f64 / dt));
            last_frames = f;
            last_t = Instant::now();
        }
        pb.set_position((el.as_secs_f64() * 10.0) as u64);
        std::thread::sleep(Duration::from_millis(100).min(end - el));
    }
    let window_end = now_ns();
    window.to_ns.store(window_end, Ordering::Release);
    let seconds = (window_end - window.from_ns.load(Ordering::Acquire)) as f64 / 1e9;
    let msgs = server.feed().messages.load(Ordering::Acquire) - msgs0;
    let published = server.published() - pub0;
    let lateness = sim.lateness();
    let cpu = cores_used(&cpu0, &cpu_ticks(), seconds);
    sim.pause();
    pb.finish_and_clear();
    // Let the clients read what is still in flight for the window (bounded).
    let drain_until = Instant::now() + Duration::from_secs(3);
    let mut prev = total_frames();
    while Instant::now() < drain_until {
        std::thread::sleep(Duration::from_millis(200));
        let now = total_frames();
        if now == prev {
            break;
        }
        prev = now;
    }

    let mut hops = Hops::default();
    let (mut fast_lost, mut fast_conflated, mut slow_conflated, mut slow_lost) = (0, 0, 0, 0);
    let mut deliveries = 0u64;
    let mut fast_deliveries = 0u64;
    let mut closed: Vec<(u16, usize)> = Vec::new();
    for c in &clients {
        let (conf, gaps) = (
            c.slot.conflated.load(Ordering::Acquire),
            c.slot.gaps.load(Ordering::Acquire),
        );
        deliveries += c.slot.frames.load(Ordering::Acquire);
        if c.behaviour == Behaviour::Fast {
            fast_deliveries += c.slot.frames.load(Ordering::Acquire);
            hops.merge(&c.slot.hops.lock().unwrap_or_else(|e| e.into_inner()));
            fast_conflated += conf;
            fast_lost += gaps;
        } else {
            slow_conflated += conf;
            slow_lost += gaps;
        }
        if let Some(code) = c.slot.closed() {
            match closed.iter_mut().find(|(k, _)| *k == code) {
                Some((_, n)) => *n += 1,
                None => closed.push((code, 1)),
            }
        }
    }
    let fast_closed = clients
        .iter()
        .any(|c| c.behaviour == Behaviour::Fast && c.slot.closed().is_some());
    let rss = rss_mib();
    for c in &clients {
        c.task.abort();
    }
    let recorder_stats = server.recorder_stats();
    server_rt.block_on(server.shutdown());
    // Closed by the shutdown: every frame published is written by now.
    let recorder = record_dir.map(|dir| {
        let stats = recorder_stats.unwrap_or_default();
        let r = report::RecorderRun {
            frames: stats.frames.load(Ordering::Acquire),
            lost: stats.lost.load(Ordering::Acquire),
            errors: stats.errors.load(Ordering::Acquire),
            bytes: dir_bytes(&dir),
            kept: args.keep_recording.then(|| dir.display().to_string()),
        };
        if !args.keep_recording {
            let _ = std::fs::remove_dir_all(&dir);
        }
        r
    });
    sim_rt.block_on(sim.shutdown());
    client_rt.shutdown_timeout(Duration::from_secs(2));
    server_rt.shutdown_timeout(Duration::from_secs(2));
    sim_rt.shutdown_timeout(Duration::from_secs(2));

    let hop_stats: Vec<HopStats> = Hop::ALL
        .iter()
        .map(|&hop| HopStats {
            hop: hop.name(),
            pct: Percentiles::of(hops.get(hop)),
        })
        .collect();
    let e2e = Percentiles::of(hops.get(Hop::EndToEnd));
    let n_fast = args.clients - n_stalled - n_slow;
    let fast_delivered_share = if published == 0 || n_fast == 0 {
        0.0
    } else {
        (fast_deliveries as f64 / (published as f64 * n_fast as f64)).min(1.0)
    };
    let keeps_up = fast_delivered_share >= 0.98
        && fast_lost == 0
        && fast_conflated == 0
        && !fast_closed
        && e2e.count > 0;
    let sustained = keeps_up && e2e.p99 < 10_000.0;
    Ok(Run {
        peer: peer.name().to_string(),
        rate,
        repeat,
        seconds,
        ticks_in_per_s: msgs as f64 / seconds,
        frames_published_per_s: published as f64 / seconds,
        deliveries_per_s: deliveries as f64 / seconds,
        fast_clients: n_fast,
        slow_clients: n_slow,
        stalled_clients: n_stalled,
        hops: hop_stats,
        fast_delivered_share,
        sim_lateness: Percentiles::of(&lateness),
        fast_lost,
        fast_conflated,
        slow_conflated,
        slow_lost,
        closed,
        rss_mib: rss,
        keeps_up,
        sustained,
        recorder,
        gateways: (peer == Peer::Cluster).then_some(args.gateways),
        cpu_cores: cpu,
        histograms: Some(Box::new(hops)),
        lateness: Some(Box::new(lateness)),
    })
}
