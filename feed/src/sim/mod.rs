//! The exchange simulator: a venue's WebSocket (+ REST) endpoint on 127.0.0.1, so tickwire's
//! feed connects to it exactly as to the real exchange (only the URL differs), fully offline.
//! Binance spot and USD-M futures are built into the server (below); every other venue speaks
//! through its [`dialect`] (Coinbase Exchange and Advanced Trade, Kraken v2, OKX v5, Bybit v5
//! spot and linear) over the same simulated market.
//!
//! # Endpoints
//!
//! - WebSocket `/stream?streams=a/b/c` (combined payloads `{"stream":..,"data":..}`), `/ws` and
//!   `/ws/<stream>` (raw payloads). Live `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`,
//!   `SET_PROPERTY`/`GET_PROPERTY` (`combined`) requests with Binance's replies and error codes
//!   ([`protocol`]). `timeUnit=MICROSECOND` in the URL gives `E`/`T` in microseconds;
//!   `timeUnit=NANOSECOND` (our extension) in nanoseconds; the default is milliseconds.
//!   Server pings every [`SimConfig::ping_interval`]; a connection with no pong for three
//!   intervals is closed; more than 5 incoming messages per second close it too (Binance's
//!   limit); a connection that does not read its queue is closed as a slow consumer.
//! - Streams `<symbol>@trade`, `@aggTrade`, `@bookTicker`, `@depth` (1 s) and `@depth@100ms`
//!   (lower-case symbol in names, upper case in `"s"`). Captures: depth updates go out on
//!   `@depth@100ms` and, merged per second, on `@depth`; a capture with trades but no aggTrades
//!   gets one aggTrade per trade; a capture with aggTrades only sends nothing on `@trade`.
//!   Other Binance streams (klines, tickers, partial depth) are refused as invalid streams.
//! - Time fields (`E`, `T`) carry the event's scheduled send time in wall-clock time
//!   (CLOCK_REALTIME), not the capture's old times, so exchange-to-receive latency is
//!   measurable. Pacing is open loop: item i is due at start + (t_i - t_0) / speed.
//! - REST `GET /api/v3/depth?symbol=BTCUSDT&limit=N` (default 100, values above 5000 give 5000),
//!   consistent with the diff streams: `lastUpdateId` is the `u` of the last depth event
//!   handed to the connections. `GET /api/v3/exchangeInfo`, `/api/v3/ping`, `/api/v3/time`.
//! - Control: `POST /sim/start` (`?events=N`: run N more items, then pause), `POST /sim/pause`,
//!   `GET /sim/status`.
//!
//! # Structure
//!
//! Sans-IO core: [`stream`] (names, catalog), [`market`] (events, book consistency),
//! [`capture_source`] and [`synthetic`] (the sources), [`sources`] (merging them in simulated
//! time), [`render`] (Binance JSON), [`protocol`] (per-connection requests, rate limit,
//! heartbeat), [`fanout`] (delivery and pacing clock). The tokio/axum shell is the private
//! `server` and `runner` modules.

pub mod capture_source;
pub mod dialect;
pub mod fanout;
pub mod market;
pub mod protocol;
pub mod render;
mod runner;
mod server;
pub mod sources;
pub mod stream;
pub mod synthetic;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

use tickwire_sdk::wire::Venue;

use crate::binance::BinanceMarket;
use crate::capture::CaptureReader;
use fanout::{CloseReason, PaceClock, Registry};
use server::{Control, Shared, lock};
use sources::SimCore;

pub use server::{DEPTH_DEFAULT_LIMIT, DEPTH_MAX_LIMIT, SNAPSHOT_WAIT};

/// The embedded demo capture: Binance spot BTCUSDT depth@100ms, bookTicker, trades and a REST
/// snapshot, 346 s recorded on 2024-08-08 (hftbacktest, MIT; see replay-data's ATTRIBUTION.md).
pub const DEMO_CAPTURE: &[u8] = include_bytes!(
    "../../../replay-data/captures/binance_spot/depth100ms_bookTicker_trade_restSnapshot/btcusdt_20240808.gz"
);

/// Binance's server ping interval.
pub const BINANCE_PING_INTERVAL: Duration = Duration::from_secs(20);

/// How to run a simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to listen; `127.0.0.1:0` picks a free port ([`SimHandle::addr`] tells which).
    pub listen: SocketAddr,
    /// The market data sources; each drives its own symbols (a symbol in two sources is an
    /// error).
    pub sources: Vec<SimSource>,
    /// Replay speed factor (> 0): 1.0 = real time, 10.0 = ten times faster,
    /// `f64::INFINITY` = as fast as possible.
    pub speed: f64,
    /// Captures start over at their end (ids and times keep increasing, books stay exact).
    pub looping: bool,
    /// Start paused; `POST /sim/start` or [`SimHandle::start`] runs it.
    pub paused: bool,
    /// Interval of the server's WebSocket ping frames (Binance: 20 s). A connection is
    /// closed when no pong answered them for three intervals.
    pub ping_interval: Duration,
    /// Whose dialect to speak. Binance spot (the default; `/api/v3/depth`, `@trade`) and USD-M
    /// futures (`/fapi/v1/depth`, `pu` in depth events, `T` in book tickers, no `@trade`) are
    /// built in; other venues speak through their [`dialect`] on the venue's own WebSocket
    /// paths (REST depth and the `/sim/*` control endpoints stay, as simulator extensions).
    pub venue: Venue,
    /// How the replay keeps its schedule: [`Pacing::Timer`] (the default) or
    /// [`Pacing::Precise`] for latency benchmarks.
    pub pacing: Pacing,
}

/// How the replay keeps its open-loop schedule. Either way an item's time fields carry its
/// scheduled (intended) send time, so any lateness of the replay counts as latency downstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pacing {
    /// A task on the tokio runtime sleeping on tokio timers (1 ms resolution): cheapest;
    /// items due within the same millisecond leave together, up to ~1 ms after their time.
    #[default]
    Timer,
    /// A dedicated thread sleeping on the kernel's fine-grained timers (on Linux with its
    /// timer slack lowered to 1 us): items leave within tens of microseconds of their time.
    /// It sleeps between items (no spinning) and sees pause/resume within 5 ms.
    Precise,
}

/// Where market data comes from.
#[derive(Clone)]
pub enum SimSource {
    /// Binance spot capture file(s) (plain or gzip; hftbacktest `<ns> <frame>` lines or
    /// cryptofeed format; several files are merged by receive time; REST snapshot records
    /// seed the books).
    CaptureFiles(Vec<PathBuf>),
    /// A capture held in memory (the embedded demo capture).
    CaptureBytes {
        /// A name for logs and status.
        name: String,
        /// The capture, plain or gzip.
        bytes: &'static [u8],
    },
    /// A synthetic seeded random walk: `rate` events per second in total across `symbols`
    /// (see [`synthetic`]).
    Synthetic {
        /// Symbols, like `ETHUSDT`.
        symbols: Vec<String>,
        /// Market actions per second over all the symbols (> 0).
        rate: f64,
        /// Seed: the same seed gives the same market.
        seed: u64,
    },
}

impl fmt::Debug for SimSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimSource::CaptureFiles(p) => f.debug_tuple("CaptureFiles").field(p).finish(),
            SimSource::CaptureBytes { name, bytes } => f
                .debug_struct("CaptureBytes")
                .field("name", name)
                .field("len", &bytes.len())
                .finish(),
            SimSource::Synthetic {
                symbols,
                rate,
                seed,
            } => f
                .debug_struct("Synthetic")
                .field("symbols", symbols)
                .field("rate", rate)
                .field("seed", seed)
                .finish(),
        }
    }
}

impl SimConfig {
    /// The built-in venue: the embedded BTCUSDT capture plus synthetic ETHUSDT and SOLUSDT
    /// (40 events/s, seed 42), real-time speed, looping, running, precise pacing, on
    /// `127.0.0.1:0`.
    pub fn demo() -> SimConfig {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            sources: vec![
                SimSource::CaptureBytes {
                    name: "btcusdt_20240808 (embedded)".to_string(),
                    bytes: DEMO_CAPTURE,
                },
                SimSource::Synthetic {
                    symbols: vec!["ETHUSDT".to_string(), "SOLUSDT".to_string()],
                    rate: 40.0,
                    seed: 42,
                },
            ],
            speed: 1.0,
            looping: true,
            paused: false,
            ping_interval: BINANCE_PING_INTERVAL,
            venue: Venue::Binance,
            // Each item leaves within tens of microseconds of its time (not up to 1 ms late),
            // so the demo's exchange -> recv latency is the pipeline's, not the timer's.
            pacing: Pacing::Precise,
        }
    }
}

impl SimConfig {
    /// The symbols the sources drive (upper case, source order, no duplicates). Captures are
    /// scanned for them (decompressed and searched, not parsed: about as long as reading the
    /// file); unreadable captures contribute nothing here and fail [`start`] with the reason.
    /// Once started, [`SimHandle::symbols`] gives the same list without a scan.
    pub fn symbols(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for source in &self.sources {
            let found = match source {
                SimSource::Synthetic { symbols, .. } => {
                    symbols.iter().map(|s| s.to_ascii_uppercase()).collect()
                }
                SimSource::CaptureBytes { name, bytes } => {
                    capture_source::scan_symbols(vec![CaptureReader::from_bytes(name, bytes)])
                }
                SimSource::CaptureFiles(paths) => capture_source::scan_symbols(
                    paths
                        .iter()
                        .filter_map(|p| CaptureReader::open(p).ok())
                        .collect(),
                ),
            };
            for s in found {
                if !out.contains(&s) {
                    out.push(s);
                }
            }
        }
        out
    }
}

/// A running simulator. Dropping it stops the simulator (without waiting); prefer
/// [`SimHandle::shutdown`].
pub struct SimHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Option<(JoinHandle<()>, JoinHandle<()>)>,
}

impl SimHandle {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:PORT` (append `/stream?streams=...` or `/ws/<stream>`).
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT` (append `/api/v3/depth?...`).
    pub fn rest_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The WebSocket URL a client of the simulated venue connects to: `/stream` for Binance,
    /// the dialect's first path otherwise.
    pub fn venue_ws_url(&self) -> String {
        match &self.shared.dialect {
            Some(d) => format!(
                "{}{}",
                self.ws_url(),
                d.paths().first().copied().unwrap_or("/")
            ),
            None => format!("{}/stream", self.ws_url()),
        }
    }

    /// The symbols served, spelled as the simulated venue spells them (`BTC-USDT` on OKX).
    pub fn venue_symbols(&self) -> Vec<String> {
        self.shared
            .catalog
            .iter()
            .map(|(_, s)| match &self.shared.dialect {
                Some(d) => d.symbol(s),
                None => s.symbol.to_ascii_lowercase(),
            })
            .collect()
    }

    /// Runs the replay (same as `POST /sim/start`).
    pub fn start(&self) {
        server::set_running(&self.shared, true, None);
    }

    /// Runs the replay for `items` more scheduled items (a capture line, a synthetic action
    /// or a depth flush), then pauses (same as `POST /sim/start?events=N`). Handy for tests
    /// and step-by-step debugging; `items` 0 does nothing.
    pub fn run_items(&self, items: u64) {
        if items > 0 {
            server::set_running(&self.shared, true, Some(items));
        }
    }

    /// Pauses the replay (same as `POST /sim/pause`). Simulated time does not advance while
    /// paused, so a resume does not send a burst.
    pub fn pause(&self) {
        server::set_running(&self.shared, false, None);
    }

    /// The symbols it serves (upper case, in source order).
    pub fn symbols(&self) -> Vec<String> {
        self.shared
            .catalog
            .iter()
            .map(|(_, s)| s.symbol.clone())
            .collect()
    }

    /// How late the replay handed items to the connections, ns after each item's scheduled
    /// time (the pacing's own error, before any socket write), since start or the last
    /// [`SimHandle::reset_lateness`].
    pub fn lateness(&self) -> hdrhistogram::Histogram<u64> {
        lock(&self.shared.lateness).clone()
    }

    /// Clears [`SimHandle::lateness`] (e.g. after a warm-up).
    pub fn reset_lateness(&self) {
        lock(&self.shared.lateness).reset();
    }

    /// The `GET /sim/status` document.
    pub fn status(&self) -> serde_json::Value {
        server::status(&self.shared)
    }

    /// Stops the simulator: closes every connection (1001), stops the replay and the server.
    pub async fn shutdown(mut self) {
        self.signal_shutdown();
        if let Some((runner, server)) = self.tasks.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), runner).await;
            let abort = server.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), server)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    fn signal_shutdown(&self) {
        self.shared.control.send_modify(|c| c.shutdown = true);
        lock(&self.shared.registry)
            .close_all(&CloseReason::new(1001, "the simulator is shutting down"));
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if self.tasks.is_some() {
            self.signal_shutdown();
        }
    }
}

/// Loads the sources, binds the listener and starts serving (and replaying, unless
/// `config.paused`). Errors say what to fix (bad speed, unreadable capture, port in use...).
pub async fn start(config: SimConfig) -> anyhow::Result<SimHandle> {
    if config.speed.is_nan() || config.speed <= 0.0 {
        bail!(
            "simulator speed must be above 0 (1.0 = real time, f64::INFINITY = as fast as possible), not {}",
            config.speed
        );
    }
    if config.ping_interval.is_zero() {
        bail!("simulator ping_interval must be above 0 (Binance uses 20 s)");
    }
    let sources = config.sources.clone();
    let looping = config.looping;
    let core = tokio::task::spawn_blocking(move || SimCore::build(&sources, looping))
        .await
        .context("loading the simulator's sources")??;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("simulator: cannot listen on {}", config.listen))?;
    let addr = listener
        .local_addr()
        .context("simulator: reading the bound address")?;
    let mut catalog = stream::Catalog::clone(core.catalog());
    catalog.set_market(match config.venue {
        Venue::BinanceFutures => BinanceMarket::UsdFutures,
        _ => BinanceMarket::Spot,
    });
    let dialect = match config.venue {
        Venue::Binance | Venue::BinanceFutures => None,
        other => Some(
            dialect::for_venue(other)
                .with_context(|| format!("the simulator does not speak {other}'s dialect yet"))?,
        ),
    };
    let catalog = Arc::new(catalog);
    let (control, _) = watch::channel(Control {
        running: !config.paused,
        ..Control::default()
    });
    let (books, _) = watch::channel(0u64);
    let shared = Arc::new(Shared {
        core: Mutex::new(core),
        catalog,
        clock: Mutex::new(PaceClock::new(config.speed)),
        registry: Mutex::new(Registry::default()),
        control,
        books,
        speed: config.speed,
        looping: config.looping,
        ping_interval: config.ping_interval,
        closed_timeout: AtomicU64::new(0),
        closed_rate: AtomicU64::new(0),
        dialect,
        lateness: Mutex::new(runner::lateness_histogram()),
    });
    let app = server::router(shared.clone());
    let mut stop = shared.control.subscribe();
    let server = tokio::spawn(async move {
        // TCP_NODELAY, as a venue's gateway: with Nagle a small message waits for the
        // previous one's ACK, which the receiver may delay by ~40 ms.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let serve = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|c| c.shutdown).await;
        });
        if let Err(e) = serve.await {
            tracing::error!("simulator: server error: {e}");
        }
    });
    let runner = match config.pacing {
        Pacing::Timer => tokio::spawn(runner::run(shared.clone())),
        Pacing::Precise => {
            let shared = shared.clone();
            tokio::task::spawn_blocking(move || runner::run_precise(shared))
        }
    };
    let symbols: Vec<String> = shared
        .catalog
        .iter()
        .map(|(_, s)| s.symbol.clone())
        .collect();
    let ws_path = match &shared.dialect {
        Some(d) => d.paths().first().copied().unwrap_or("/"),
        None => "/stream",
    };
    info!(
        %addr,
        venue = %config.venue,
        symbols = %symbols.join(","),
        speed = config.speed,
        looping = config.looping,
        paused = config.paused,
        "simulator: listening (ws://{addr}{ws_path}, http://{addr}/api/v3/depth)"
    );
    Ok(SimHandle {
        addr,
        shared,
        tasks: Some((runner, server)),
    })
}
