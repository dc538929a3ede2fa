//! A whole tickwire server in one process: feed drivers, sequencer, gateway, and optionally
//! the recorder.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::info;

use tickwire_feed::driver::{self, DriverConfig, DriverStats, Shutdown};
use tickwire_feed::venue::VenueSpec;

use crate::cluster::{self, ClusterConfig, Role};
use crate::gateway::{self, GatewayConfig, GatewayStats, InterestHandle};
use crate::recorder::{self, RawQueue, RecorderConfig, RecorderHandle};
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
    /// Record every published frame to this recording (None: no recording). With
    /// `options.keep_raw`, every feed's raw venue data is recorded too.
    pub record: Option<RecorderConfig>,
    /// Run as one node of a NATS cluster (None: the embedded single process).
    pub cluster: Option<ClusterConfig>,
    /// Run the client gateway (the default). False for a record-only process
    /// (`tickwire record`) and for an ingest node: nothing listens, and
    /// [`ServerHandle::addr`] is `listen` unbound.
    pub serve_clients: bool,
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
            record: None,
            cluster: None,
            serve_clients: true,
        }
    }
}

/// A running server.
pub struct ServerHandle {
    addr: SocketAddr,
    tls: bool,
    stop_feeds: Shutdown,
    stop_gateway: Shutdown,
    sequencer: Option<SequencerHandle>,
    feed_tasks: Vec<JoinHandle<()>>,
    gateway_task: Option<JoinHandle<()>>,
    recorder: Option<RecorderHandle>,
    ingest_link: Option<cluster::ingest::IngestLink>,
    edge: Option<Arc<cluster::edge::Edge>>,
    /// The instruments served.
    pub registry: Arc<Registry>,
    /// Per-feed driver counters, in feed order.
    pub feed_stats: Vec<Arc<DriverStats>>,
    /// Gateway counters.
    pub gateway_stats: Arc<GatewayStats>,
}

/// Starts feeds, sequencer and gateway. Returns once the gateway is listening.
pub async fn start(mut config: ServerConfig) -> anyhow::Result<ServerHandle> {
    tickwire_feed::tls::install_crypto_provider();
    let role = config.cluster.as_ref().map_or(Role::All, |c| c.role);
    anyhow::ensure!(
        role != Role::Gateway || config.feeds.is_empty(),
        "a gateway node runs no feeds (drop --venue/--symbols; ingest nodes run them)"
    );
    let tls = match &config.gateway.tls {
        Some(files) => Some(gateway::tls::acceptor(files)?),
        None => None,
    };
    // An ingest node serves no clients.
    let listener = if config.serve_clients && role != Role::Ingest {
        Some(TcpListener::bind(config.listen).await.with_context(|| {
            format!(
                "cannot listen on {} (is another server running there? pass --listen)",
                config.listen
            )
        })?)
    } else {
        None
    };
    let addr = match &listener {
        Some(l) => l.local_addr()?,
        None => config.listen,
    };
    let link = match &config.cluster {
        Some(c) => Some(cluster::link::connect(&c.nats, &c.node).await?),
        None => None,
    };
    let registry = Arc::new(Registry::new());
    for spec in &config.feeds {
        for s in spec.symbols() {
            registry.configure(spec.venue(), &s);
        }
    }
    let mut sequencer = sequencer::start(config.ring_capacity, registry.clone());
    // One raw queue per feed when raw data is recorded.
    let keep_raw = config.record.as_ref().is_some_and(|r| r.options.keep_raw);
    let raw: Vec<Option<Arc<RawQueue>>> = config
        .feeds
        .iter()
        .map(|_| keep_raw.then(|| Arc::new(RawQueue::new(recorder::RAW_QUEUE_CAPACITY))))
        .collect();
    // Before any feed runs, so the recording starts with their first frames.
    let recorder = match &config.record {
        Some(r) => Some(recorder::start(
            sequencer.ring(),
            r.clone(),
            raw.iter().flatten().cloned().collect(),
        )?),
        None => None,
    };
    let mut ingest_link = None;
    let mut edge = None;
    if let (Some(c), Some((client, events))) = (&config.cluster, link) {
        match c.role {
            Role::Ingest => {
                let node = cluster::ingest::NodeId {
                    name: c.node.clone(),
                    epoch: tickwire_feed::clock::now_ns(),
                };
                ingest_link = Some(
                    cluster::ingest::start(
                        client,
                        sequencer.ring(),
                        sequencer.lvc(),
                        registry.clone(),
                        node,
                    )
                    .await?,
                );
            }
            Role::Gateway => {
                let input = sequencer.add_input(config.ingest_capacity);
                let e =
                    cluster::edge::start(client, events, input, registry.clone(), sequencer.lvc())
                        .await?;
                if !e.wait_directory(Duration::from_secs(3)).await {
                    tracing::warn!(
                        "no ingest node announced itself on NATS yet; clients can subscribe once one does"
                    );
                }
                config.gateway.interest = Some(InterestHandle(e.clone()));
                edge = Some(e);
            }
            Role::All => {}
        }
    }
    let (stop_feeds, feeds_rx) = Shutdown::new();
    let (stop_gateway, gateway_rx) = Shutdown::new();
    let mut feed_tasks = Vec::new();
    let mut feed_stats = Vec::new();
    for (spec, raw) in config.feeds.iter().zip(raw) {
        let ingest = sequencer.add_input(config.ingest_capacity);
        let stats = Arc::new(DriverStats::default());
        feed_stats.push(stats.clone());
        info!(venue = %spec.venue(), url = %spec.ws_url(), symbols = ?spec.symbols(), "starting feed");
        feed_tasks.push(tokio::spawn(driver::run_with_raw(
            spec.clone(),
            ingest,
            raw.map(|q| q as Arc<dyn driver::RawSink>),
            config.driver.clone(),
            stats,
            feeds_rx.clone(),
        )));
    }
    let gateway_stats = Arc::new(GatewayStats::default());
    let gateway_task = listener.map(|listener| {
        tokio::spawn(gateway::serve(
            listener,
            tls,
            sequencer.ring(),
            registry.clone(),
            sequencer.lvc(),
            config.gateway.clone(),
            gateway_stats.clone(),
            gateway_rx,
        ))
    });
    Ok(ServerHandle {
        addr,
        tls: config.gateway.tls.is_some(),
        stop_feeds,
        stop_gateway,
        sequencer: Some(sequencer),
        feed_tasks,
        gateway_task,
        recorder,
        ingest_link,
        edge,
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

    /// `ws://ADDR/ws` (`wss://` with TLS).
    pub fn ws_url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}/ws", self.addr)
    }

    /// The recorder's counters, when recording.
    pub fn recorder_stats(&self) -> Option<Arc<recorder::RecorderStats>> {
        self.recorder.as_ref().map(|r| r.stats.clone())
    }

    /// Frames published by the sequencer so far.
    pub fn published(&self) -> u64 {
        self.sequencer.as_ref().map_or(0, |s| {
            s.stats.published.load(std::sync::atomic::Ordering::Relaxed)
        })
    }

    /// Stops in order, so clients see the end: the feeds close their venue connections and
    /// emit their `disconnected` statuses; the sequencer publishes everything pushed; each
    /// client session delivers what is left for it and closes with 1001; the sequencer stops.
    pub async fn shutdown(mut self) {
        self.stop_feeds.trigger();
        for t in self.feed_tasks.drain(..) {
            let _ = t.await;
        }
        if let Some(seq) = self.sequencer.take() {
            let seq = tokio::task::spawn_blocking(move || {
                seq.quiesce(Duration::from_secs(2));
                seq
            })
            .await
            .ok();
            if let Some(link) = self.ingest_link.take() {
                link.stop().await;
            }
            if let Some(edge) = self.edge.take() {
                edge.stop();
            }
            if let Some(rec) = self.recorder.take() {
                match tokio::task::spawn_blocking(move || rec.stop()).await {
                    Ok(Ok(())) => info!("recording closed"),
                    Ok(Err(e)) => tracing::error!("recording: {e:#}"),
                    Err(e) => tracing::error!("recorder: {e}"),
                }
            }
            self.stop_gateway.trigger();
            if let Some(t) = self.gateway_task.take() {
                let _ = t.await;
            }
            let stats = self.gateway_stats.clone();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
            while stats.active.load(Ordering::Relaxed) > 0 && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if let Some(seq) = seq {
                let _ = tokio::task::spawn_blocking(move || seq.stop()).await;
            }
        }
    }
}
