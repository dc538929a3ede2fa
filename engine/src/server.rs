//! A whole tickwire server in one process: feed drivers, sequencer, gateway.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::info;

use tickwire_feed::driver::{self, DriverConfig, DriverStats, Shutdown};
use tickwire_feed::venue::VenueSpec;

use crate::gateway::{self, GatewayConfig, GatewayStats};
use crate::registry::Registry;
use crate::sequencer::{self, SequencerHandle};

/// What to run.
#[derive(Clone)]
pub struct ServerConfig {
    /// Address of the client WebSocket server (`127.0.0.1:0` for an ephemeral port).
    pub listen: SocketAddr,
    /// One feed driver per venue connection.
    pub feeds: Vec<Arc<dyn VenueSpec>>,
    /// Broadcast ring slots (a client more than this many frames behind is lapped).
    pub ring_capacity: usize,
    /// Ingest ring slots per feed.
    pub ingest_capacity: usize,
    /// Feed driver timings.
    pub driver: DriverConfig,
    /// Gateway limits and timings.
    pub gateway: GatewayConfig,
}

impl ServerConfig {
    /// Defaults for everything but the address and the feeds.
    pub fn new(listen: SocketAddr, feeds: Vec<Arc<dyn VenueSpec>>) -> ServerConfig {
        ServerConfig {
            listen,
            feeds,
            ring_capacity: 1 << 16,
            ingest_capacity: 1 << 14,
            driver: DriverConfig::default(),
            gateway: GatewayConfig::default(),
        }
    }
}

/// A running server.
pub struct ServerHandle {
    addr: SocketAddr,
    shutdown: Shutdown,
    sequencer: Option<SequencerHandle>,
    tasks: Vec<JoinHandle<()>>,
    /// The instruments served.
    pub registry: Arc<Registry>,
    /// Per-feed driver counters, in feed order.
    pub feed_stats: Vec<Arc<DriverStats>>,
    /// Gateway counters.
    pub gateway_stats: Arc<GatewayStats>,
}

/// Starts feeds, sequencer and gateway. Returns once the gateway is listening.
pub async fn start(config: ServerConfig) -> anyhow::Result<ServerHandle> {
    tickwire_feed::tls::install_crypto_provider();
    let listener = TcpListener::bind(config.listen).await.with_context(|| {
        format!(
            "cannot listen on {} (is another server running there? pass --listen)",
            config.listen
        )
    })?;
    let addr = listener.local_addr()?;
    let registry = Arc::new(Registry::new());
    for spec in &config.feeds {
        for s in spec.symbols() {
            registry.configure(spec.venue(), &s);
        }
    }
    let sequencer = sequencer::start(config.ring_capacity, registry.clone());
    let (shutdown, shutdown_rx) = Shutdown::new();
    let mut tasks = Vec::new();
    let mut feed_stats = Vec::new();
    for spec in &config.feeds {
        let ingest = sequencer.add_input(config.ingest_capacity);
        let stats = Arc::new(DriverStats::default());
        feed_stats.push(stats.clone());
        info!(venue = %spec.venue(), url = %spec.ws_url(), symbols = ?spec.symbols(), "starting feed");
        tasks.push(tokio::spawn(driver::run(
            spec.clone(),
            ingest,
            config.driver.clone(),
            stats,
            shutdown_rx.clone(),
        )));
    }
    let gateway_stats = Arc::new(GatewayStats::default());
    tasks.push(tokio::spawn(gateway::serve(
        listener,
        sequencer.ring(),
        registry.clone(),
        config.gateway.clone(),
        gateway_stats.clone(),
        shutdown_rx,
    )));
    Ok(ServerHandle {
        addr,
        shutdown,
        sequencer: Some(sequencer),
        tasks,
        registry,
        feed_stats,
        gateway_stats,
    })
}

impl ServerHandle {
    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://ADDR/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Frames published by the sequencer so far.
    pub fn published(&self) -> u64 {
        self.sequencer.as_ref().map_or(0, |s| {
            s.stats.published.load(std::sync::atomic::Ordering::Relaxed)
        })
    }

    /// Stops feeds (with their disconnect statuses), gateway and sequencer.
    pub async fn shutdown(mut self) {
        self.shutdown.trigger();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        if let Some(s) = self.sequencer.take() {
            let _ = tokio::task::spawn_blocking(move || s.stop()).await;
        }
    }
}
