//! The upstream connection driver: the thin tokio shell around a sans-IO normalizer.
//!
//! One driver task per venue connection: connect, send the subscriptions (paced to the
//! venue's rate limit), read messages and stamp their receive time, feed the normalizer,
//! perform its actions (REST snapshots, sends), push frames into the sink, answer pings,
//! ping the venue and watch for silence (`Stale` status, then reconnect), and reconnect with
//! exponential backoff and jitter. Every transition is a status frame.

pub mod backoff;
pub mod sink;
mod snapshot;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tracing::{debug, info, warn};

use crate::clock::now_ns;
use crate::normalizer::{Action, NormalizeError, Normalizer, Output};
use crate::venue::VenueSpec;
pub use backoff::Backoff;
pub use sink::{FrameSink, PushError, RawKind, RawMessage, RawSink};
use snapshot::{SnapshotFetcher, SnapshotReply};

/// Bytes per socket read of the venue connection (see `Driver::session`).
const READ_BUFFER: usize = 16 << 10;

/// Timing and limits of a driver.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// Interval of our WebSocket pings to the venue (each reply proves the link alive).
    pub ping_every: Duration,
    /// Silence (no message at all, pongs included) before `Stale` statuses are emitted.
    pub stale_after: Duration,
    /// Silence before the connection is dropped and re-established.
    pub dead_after: Duration,
    /// First reconnect delay; doubles per failure up to `backoff_max`.
    pub backoff_initial: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// A connection up this long resets the backoff.
    pub stable_after: Duration,
    /// Time allowed for TCP + TLS + WebSocket handshake.
    pub connect_timeout: Duration,
    /// Time allowed for one REST snapshot request.
    pub snapshot_timeout: Duration,
    /// Largest message accepted from the venue, bytes.
    pub max_message_size: usize,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            ping_every: Duration::from_secs(5),
            stale_after: Duration::from_secs(10),
            dead_after: Duration::from_secs(30),
            backoff_initial: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
            stable_after: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            snapshot_timeout: Duration::from_secs(10),
            max_message_size: 16 << 20,
        }
    }
}

/// Live counters of a driver, readable from any thread.
#[derive(Debug, Default)]
pub struct DriverStats {
    /// Messages read from the venue.
    pub messages: AtomicU64,
    /// Payload bytes read.
    pub bytes: AtomicU64,
    /// Frames pushed into the sink.
    pub frames: AtomicU64,
    /// Messages the normalizer could not read.
    pub errors: AtomicU64,
    /// Connections established.
    pub connects: AtomicU64,
    /// Connections lost or dropped.
    pub disconnects: AtomicU64,
    /// Times the sink was full and the driver had to wait.
    pub sink_full: AtomicU64,
    /// REST snapshots received.
    pub snapshots: AtomicU64,
    /// Raw messages the raw sink (a recorder of raw data) had no room for. Each loss is
    /// logged and marked where it happened in the raw data (see [`RawMessage::lost_before`]).
    pub raw_lost: AtomicU64,
}

/// Handle to stop a driver.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Sender<bool>);

impl Shutdown {
    /// A new, untriggered shutdown signal and its receiving side.
    pub fn new() -> (Shutdown, watch::Receiver<bool>) {
        let (tx, rx) = watch::channel(false);
        (Shutdown(tx), rx)
    }

    /// Asks every driver holding the receiver to close its connection and return.
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }
}

/// Runs one venue connection until `shutdown` fires. Never returns early on venue errors:
/// it reconnects.
pub async fn run(
    spec: Arc<dyn VenueSpec>,
    sink: Arc<dyn FrameSink>,
    config: DriverConfig,
    stats: Arc<DriverStats>,
    shutdown: watch::Receiver<bool>,
) {
    run_with_raw(spec, sink, None, config, stats, shutdown).await
}

/// [`run`], also handing everything given to the normalizer (venue messages, REST snapshot
/// bodies, connection events) to `raw`, when there is one (`serve --record-raw`). Without a
/// raw sink this costs one branch per message.
pub async fn run_with_raw(
    spec: Arc<dyn VenueSpec>,
    sink: Arc<dyn FrameSink>,
    raw: Option<Arc<dyn RawSink>>,
    config: DriverConfig,
    stats: Arc<DriverStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut driver = Driver {
        raw,
        raw_lost_pending: 0,
        raw_logged: RateLimit::new(Duration::from_secs(1)),
        normalizer: spec.new_normalizer(),
        out: Output::new(),
        sink,
        stats,
        fetcher: SnapshotFetcher::new(config.snapshot_timeout),
        config,
        spec,
        errors_logged: RateLimit::new(Duration::from_secs(1)),
        sink_closed: false,
    };
    let mut backoff = Backoff::new(driver.config.backoff_initial, driver.config.backoff_max);
    let mut generation: u64 = 0;
    loop {
        if *shutdown.borrow() {
            break;
        }
        generation += 1;
        let started = Instant::now();
        let reason = driver.session(generation, &mut shutdown).await;
        let stopping = *shutdown.borrow() || driver.sink_closed;
        driver.stats.disconnects.fetch_add(1, Ordering::Relaxed);
        let ts = now_ns();
        driver
            .tap_final(ts, RawKind::Disconnect(reason.clone()))
            .await;
        driver
            .normalizer
            .on_disconnect(ts, &reason, &mut driver.out);
        let _ = driver.flush().await;
        if stopping {
            info!(venue = %driver.spec.venue(), sink_closed = driver.sink_closed, "feed stopped");
            break;
        }
        if started.elapsed() >= driver.config.stable_after {
            backoff.reset();
        }
        let delay = backoff.next_delay(rand::random::<f64>());
        warn!(venue = %driver.spec.venue(), %reason, attempt = backoff.attempts(), ?delay, "venue connection lost; reconnecting");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => {}
        }
    }
}

struct Driver {
    spec: Arc<dyn VenueSpec>,
    normalizer: Box<dyn Normalizer>,
    out: Output,
    sink: Arc<dyn FrameSink>,
    stats: Arc<DriverStats>,
    config: DriverConfig,
    fetcher: SnapshotFetcher,
    errors_logged: RateLimit,
    /// The sink has no reader any more.
    sink_closed: bool,
    /// Where raw venue data goes, when it is recorded.
    raw: Option<Arc<dyn RawSink>>,
    /// Raw messages refused by `raw` since the last one it took.
    raw_lost_pending: u64,
    raw_logged: RateLimit,
}

impl Driver {
    /// One connection, from connect to loss. Returns why it ended.
    async fn session(&mut self, generation: u64, shutdown: &mut watch::Receiver<bool>) -> String {
        let url = self.spec.ws_url();
        let mut ws_config = WebSocketConfig::default();
        ws_config.max_message_size = Some(self.config.max_message_size);
        ws_config.max_frame_size = Some(self.config.max_message_size);
        // tungstenite zero-fills `read_buffer_size` bytes before every socket read (128 KiB by
        // default: ~4 us per read). Larger messages still arrive whole, over several reads.
        ws_config.read_buffer_size = READ_BUFFER;
        let connect = tokio_tungstenite::connect_async_with_config(&url, Some(ws_config), true);
        let ws = tokio::select! {
            r = tokio::time::timeout(self.config.connect_timeout, connect) => match r {
                Ok(Ok((ws, _response))) => ws,
                Ok(Err(e)) => return format!("connect to {url} failed: {e}"),
                Err(_) => return format!("connect to {url} timed out after {:?}", self.config.connect_timeout),
            },
            _ = shutdown.changed() => return "shutdown".to_string(),
        };
        self.stats.connects.fetch_add(1, Ordering::Relaxed);
        info!(venue = %self.spec.venue(), %url, "connected");
        let (mut write, mut read) = ws.split();

        // Subscriptions, paced to the venue's incoming message limit.
        let interval = self.spec.send_interval();
        for (i, msg) in self.spec.subscribe_messages().into_iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(interval).await;
            }
            if let Err(e) = write.send(Message::text(msg)).await {
                return format!("subscribe failed: {e}");
            }
        }
        let ts = now_ns();
        self.tap_connect(ts);
        self.normalizer.on_connect(ts, &mut self.out);
        if !self.flush().await {
            return "nobody reads this feed any more".to_string();
        }

        let (snap_tx, mut snap_rx) = mpsc::unbounded_channel::<SnapshotReply>();
        let mut ping = tokio::time::interval(self.config.ping_every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        let mut last_rx = Instant::now();
        let mut stale = false;
        let reason = loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    let _ = write.send(Message::Close(None)).await;
                    break "shutdown".to_string();
                }
                msg = read.next() => {
                    let ts = now_ns();
                    last_rx = Instant::now();
                    if stale {
                        stale = false;
                        self.tap_connect(ts);
                        self.normalizer.on_connect(ts, &mut self.out);
                    }
                    match msg {
                        Some(Ok(Message::Text(t))) => {
                            self.tap(ts, RawKind::Message, || Bytes::from(t.clone()));
                            self.on_payload(t.as_bytes(), ts)
                        }
                        Some(Ok(Message::Binary(b))) => {
                            self.tap(ts, RawKind::Message, || b.clone());
                            self.on_payload(&b, ts)
                        }
                        Some(Ok(Message::Ping(_))) => {
                            // tungstenite queued the pong; push it out now.
                            if let Err(e) = write.flush().await {
                                break format!("pong failed: {e}");
                            }
                        }
                        Some(Ok(Message::Pong(_))) | Some(Ok(Message::Frame(_))) => {}
                        Some(Ok(Message::Close(frame))) => {
                            break match frame {
                                Some(f) => format!("venue closed the connection: {} {}", f.code, f.reason),
                                None => "venue closed the connection".to_string(),
                            };
                        }
                        Some(Err(e)) => break format!("read failed: {e}"),
                        None => break "connection closed".to_string(),
                    }
                }
                Some(reply) = snap_rx.recv() => {
                    self.on_snapshot_reply(reply, generation, &snap_tx);
                }
                _ = ping.tick() => {
                    let silent = last_rx.elapsed();
                    if silent >= self.config.dead_after {
                        break format!("no message for {silent:.1?}: connection presumed dead");
                    }
                    if silent >= self.config.stale_after && !stale {
                        stale = true;
                        let (ts, detail) = (now_ns(), format!("no message for {silent:.1?}"));
                        self.tap(ts, RawKind::Stale(detail.clone()), Bytes::new);
                        self.normalizer.on_stale(ts, &detail, &mut self.out);
                    }
                    let ping = match self.spec.app_ping() {
                        Some(text) => Message::text(text),
                        None => Message::Ping(Vec::new().into()),
                    };
                    if let Err(e) = write.send(ping).await {
                        break format!("ping failed: {e}");
                    }
                }
            }
            // Actions first (a snapshot request must not wait behind a full sink).
            let mut reconnect = None;
            for action in std::mem::take(&mut self.out.actions) {
                match action {
                    Action::FetchSnapshot { symbol } => match self.spec.snapshot_url(&symbol) {
                        Some(url) => self.fetcher.fetch(symbol, url, generation, snap_tx.clone()),
                        None => debug!(%symbol, "venue has no REST snapshot; ignoring request"),
                    },
                    Action::Send(text) => {
                        if let Err(e) = write.send(Message::text(text)).await {
                            warn!(error = %e, "send to venue failed");
                        }
                    }
                    Action::Reconnect { reason } => reconnect = Some(reason),
                }
            }
            if !self.flush().await {
                let _ = write.send(Message::Close(None)).await;
                break "nobody reads this feed any more".to_string();
            }
            if let Some(reason) = reconnect {
                let _ = write.send(Message::Close(None)).await;
                break reason;
            }
        };
        self.fetcher.cancel_all();
        reason
    }

    fn on_payload(&mut self, payload: &[u8], ts: u64) {
        self.stats.messages.fetch_add(1, Ordering::Relaxed);
        self.stats
            .bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        if let Err(e) = self.normalizer.on_message(payload, ts, &mut self.out) {
            self.on_error(e, payload);
        }
    }

    fn on_snapshot_reply(
        &mut self,
        reply: SnapshotReply,
        generation: u64,
        snap_tx: &mpsc::UnboundedSender<SnapshotReply>,
    ) {
        if reply.generation != generation {
            return; // for a connection that is gone
        }
        match reply.body {
            Ok(body) => {
                self.stats.snapshots.fetch_add(1, Ordering::Relaxed);
                let body = Bytes::from(body);
                self.tap(
                    reply.ts_recv,
                    RawKind::Snapshot(reply.symbol.clone()),
                    || body.clone(),
                );
                if let Err(e) =
                    self.normalizer
                        .on_snapshot(&reply.symbol, &body, reply.ts_recv, &mut self.out)
                {
                    self.on_error(e, b"");
                }
            }
            Err(e) => {
                warn!(symbol = %reply.symbol, error = %e, "book snapshot request failed; retrying");
                if let Some(url) = self.spec.snapshot_url(&reply.symbol) {
                    self.fetcher
                        .retry(reply.symbol, url, generation, snap_tx.clone());
                }
            }
        }
    }

    /// Hands one raw record to the raw sink, if there is one. Never waits: a refused record
    /// is counted and logged, and the next record taken carries the count.
    #[inline]
    fn tap(&mut self, ts_recv: u64, kind: RawKind, bytes: impl FnOnce() -> Bytes) {
        let Some(raw) = &self.raw else {
            return;
        };
        let message = self.raw_message(ts_recv, kind, bytes());
        match raw.try_push_raw(message) {
            Ok(()) => self.raw_lost_pending = 0,
            Err(_) => self.raw_lost(),
        }
    }

    /// [`Self::tap`] for a connection's last record: waits up to a second for room, so the
    /// raw data ends with its disconnect and the count of any loss before it.
    async fn tap_final(&mut self, ts_recv: u64, kind: RawKind) {
        let Some(raw) = self.raw.clone() else {
            return;
        };
        let mut message = self.raw_message(ts_recv, kind, Bytes::new());
        for _ in 0..200 {
            match raw.try_push_raw(message) {
                Ok(()) => {
                    self.raw_lost_pending = 0;
                    return;
                }
                Err(back) => message = back,
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.raw_lost();
    }

    fn tap_connect(&mut self, ts_recv: u64) {
        if self.raw.is_some() {
            let symbols = self.spec.symbols().join(",");
            self.tap(ts_recv, RawKind::Connect(symbols), Bytes::new);
        }
    }

    fn raw_message(&self, ts_recv: u64, kind: RawKind, bytes: Bytes) -> RawMessage {
        RawMessage {
            venue: self.spec.venue(),
            ts_recv,
            kind,
            bytes,
            lost_before: self.raw_lost_pending,
        }
    }

    #[cold]
    fn raw_lost(&mut self) {
        self.raw_lost_pending += 1;
        self.stats.raw_lost.fetch_add(1, Ordering::Relaxed);
        if let Some(suppressed) = self.raw_logged.allow() {
            tracing::error!(
                venue = %self.spec.venue(),
                suppressed,
                "raw recording queue full: a raw venue message was lost (the recording marks the gap; its frames are complete)"
            );
        }
    }

    fn on_error(&mut self, e: NormalizeError, payload: &[u8]) {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        if let Some(suppressed) = self.errors_logged.allow() {
            let snippet = String::from_utf8_lossy(&payload[..payload.len().min(200)]);
            warn!(venue = %self.spec.venue(), error = %e, suppressed, message = %snippet, "venue message skipped");
        }
    }

    /// Pushes pending frames into the sink, waiting while it is full (never dropping).
    /// Returns false if the sink is closed (nobody reads it: the driver should stop).
    async fn flush(&mut self) -> bool {
        let mut waited = false;
        for frame in self.out.frames.drain(..) {
            let mut frame = frame;
            loop {
                match self.sink.try_push(frame) {
                    Ok(()) => break,
                    Err(PushError::Full(back)) => {
                        frame = back;
                        if !waited {
                            waited = true;
                            self.stats.sink_full.fetch_add(1, Ordering::Relaxed);
                        }
                        tokio::time::sleep(Duration::from_micros(200)).await;
                    }
                    Err(PushError::Closed) => {
                        self.sink_closed = true;
                        return false;
                    }
                }
            }
            self.stats.frames.fetch_add(1, Ordering::Relaxed);
        }
        true
    }
}

/// Lets one event through per period and counts the ones held back.
struct RateLimit {
    period: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimit {
    fn new(period: Duration) -> RateLimit {
        RateLimit {
            period,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n held back since the last one)` if this event may be logged.
    fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < self.period => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}
