//! The async client: connect to a tickwire server, subscribe, and read batches of zero-copy
//! frame views.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tickwire_sdk::client::ClientError> {
//! use tickwire_sdk::client::{Client, Event};
//! use tickwire_sdk::wire::{ArchivedBody, Channel};
//!
//! let mut client = Client::connect("ws://127.0.0.1:9100/ws").await?;
//! client.subscribe(&["binance:BTCUSDT"], &[Channel::Trades]).await?;
//! while let Some(event) = client.next().await {
//!     if let Event::Frames(batch) = event? {
//!         for frame in batch.iter() {
//!             if let ArchivedBody::Trade(t) = &frame.body {
//!                 println!("{} @ {}", t.qty.to_native(), t.price.to_native());
//!             }
//!         }
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Staying connected
//!
//! [`Client::builder`] makes a client that reconnects by itself (exponential backoff with
//! jitter, see [`crate::backoff`]), re-sends every active subscription on the new connection,
//! checks every stream's `seq` (see [`crate::seq`]) and asks the server for a fresh snapshot
//! when a `book` or `quotes` stream has a hole. What happened is told as events, in order with
//! the data:
//!
//! ```no_run
//! # async fn demo() -> Result<(), tickwire_sdk::client::ClientError> {
//! use tickwire_sdk::books::Books;
//! use tickwire_sdk::client::{Client, Event, Policy, SubscribeOptions};
//! use tickwire_sdk::wire::{Channel, Venue};
//!
//! let mut client = Client::builder("ws://127.0.0.1:9100/ws")
//!     .token("s3cret")
//!     .reconnect(true)
//!     .connect()
//!     .await?;
//! let opts = SubscribeOptions::new().policy(Policy::Lossless).depth(50);
//! client.subscribe_with(&["binance:BTCUSDT"], &[Channel::Book], &opts).await?;
//! let mut books = Books::new();
//! while let Some(event) = client.next().await {
//!     let event = event?;
//!     books.on_event(&event);
//!     match event {
//!         Event::Gap { instrument, channel, expected, got } => {
//!             eprintln!("hole in {instrument:08x}/{}: {expected} due, {got} came", channel.name())
//!         }
//!         Event::Reconnected { attempt, downtime } => {
//!             eprintln!("back after {downtime:?} ({attempt} attempts)")
//!         }
//!         _ => {}
//!     }
//!     if let Some(book) = books.get(Venue::Binance, "BTCUSDT").filter(|b| b.is_valid()) {
//!         let _ = book.best_bid();
//!     }
//! }
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::poll_fn;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use thiserror::Error;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header::AUTHORIZATION};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::backoff::{Backoff, BackoffConfig};
use crate::seq::{Hole, SeqCheck, SeqTracker};
use crate::symbol::Symbol;
use crate::wire::{ArchivedBody, ArchivedFrame, Batch, Channel, Instruments, WireError};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why the client failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The WebSocket connection failed.
    #[error("connection: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    /// The server sent bytes that are not a valid batch.
    #[error("invalid batch from server: {0}")]
    Wire(#[from] WireError),
    /// The server refused a request.
    #[error("server refused request: {code}: {message}")]
    Refused {
        /// The error code (`unknown_symbol`...).
        code: String,
        /// The server's explanation.
        message: String,
    },
    /// The server sent text that is not a JSON reply.
    #[error("unexpected message from server: {0}")]
    Protocol(String),
    /// The connection closed before the reply arrived.
    #[error("connection closed")]
    Closed,
    /// The server refused the connection: the token is missing or wrong. Not retried.
    #[error(
        "the server refused the connection with HTTP {status}: {message} (set the token it expects with ClientBuilder::token)"
    )]
    Unauthorized {
        /// The HTTP status (401 or 403).
        status: u16,
        /// The response body, if any.
        message: String,
    },
    /// Connecting took longer than [`ClientConfig::connect_timeout`].
    #[error("connecting to {url} took longer than {after:?}")]
    Timeout {
        /// The server URL.
        url: String,
        /// The time allowed.
        after: Duration,
    },
    /// The configuration cannot work (a token that is not a valid header value...).
    #[error("bad client configuration: {0}")]
    Config(String),
    /// Reconnecting failed [`ClientConfig::max_attempts`] times in a row.
    #[error("gave up reconnecting after {attempts} attempts; last error: {last}")]
    GaveUp {
        /// Attempts made in this outage.
        attempts: u32,
        /// Why the last one failed.
        last: String,
    },
    /// A damaged block in a recording being replayed (`replay::Replay`, feature
    /// `recording`): its frames are skipped, and the next `next()` goes on with the next block.
    #[error(
        "corrupt block in {} at byte {offset}: {reason}; its frames are skipped and the replay \
         goes on with the next block",
        file.display()
    )]
    Corrupt {
        /// The segment file.
        file: std::path::PathBuf,
        /// File offset of the damaged block (or record).
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

impl ClientError {
    /// True for errors that retrying cannot fix (a refused token, a bad configuration).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            ClientError::Unauthorized { .. } | ClientError::Config(_) | ClientError::GaveUp { .. }
        )
    }
}

/// Something the server sent, or something that happened to the connection.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// A batch of frames, validated once; read them with [`Batch::iter`] (zero-copy).
    Frames(Batch<Bytes>),
    /// A control reply that no pending request was waiting for.
    Reply(Value),
    /// The server closed the connection, and the client will not reconnect (reconnecting
    /// clients get [`Event::Disconnected`] instead). No event follows.
    Closed {
        /// Close code (4001 = slow consumer).
        code: u16,
        /// The server's reason.
        reason: String,
    },
    /// The connection was lost; a reconnecting client is trying again (with backoff).
    /// Data received before this may be stale: books should be marked invalid.
    Disconnected {
        /// The server's close code, if it sent a close frame (4001 = slow consumer,
        /// 1001 = server shutting down).
        code: Option<u16>,
        /// The server's reason, or what went wrong.
        reason: String,
    },
    /// A new connection is up and every active subscription was sent again (with
    /// snapshots). Trades missed meanwhile show as an [`Event::Gap`] on the trades stream.
    Reconnected {
        /// Attempts this took (1 = the first succeeded).
        attempt: u32,
        /// From losing the connection to having a new one.
        downtime: Duration,
    },
    /// A hole in a stream's `seq`: frame `got` arrived where `expected` was due. Comes just
    /// before the [`Event::Frames`] that holds frame `got`. For `book` and `quotes` streams
    /// the client asks the server for a snapshot (unless
    /// [`ClientConfig::repair_gaps`] is off); trades cannot be sent again.
    Gap {
        /// Instrument id of the stream.
        instrument: u32,
        /// Channel of the stream.
        channel: Channel,
        /// The `seq` that was due.
        expected: u64,
        /// The `seq` that arrived.
        got: u64,
    },
    /// The server refused a request the client made by itself: a subscription sent again
    /// after a reconnect, or a snapshot asked for after a gap.
    Refused {
        /// The request's op (`subscribe`, `snapshot`).
        op: String,
        /// The error code.
        code: String,
        /// The server's explanation.
        message: String,
    },
}

/// Per-hop latency histograms, in ns. Recorded for every data frame received (trades and
/// trade summaries, quotes, book); a hop whose start time is unknown (0) is skipped.
#[derive(Debug, Clone)]
pub struct Latency {
    /// Venue event time -> feed socket read (wire + venue; needs synchronized clocks).
    pub exchange_to_recv: Histogram<u64>,
    /// Feed socket read -> engine publish (tickwire's pipeline).
    pub recv_to_publish: Histogram<u64>,
    /// Engine publish -> this client's socket read (fan-out).
    pub publish_to_client: Histogram<u64>,
    /// Venue event time (or feed read when the venue sends no time) -> this client.
    pub end_to_end: Histogram<u64>,
    /// Frames whose clocks ran backwards on some hop (skew between hosts).
    pub negative: u64,
}

impl Default for Latency {
    fn default() -> Self {
        // 1 ns to 1 hour at 3 significant digits: constant, valid bounds.
        let h =
            || Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds");
        Latency {
            exchange_to_recv: h(),
            recv_to_publish: h(),
            publish_to_client: h(),
            end_to_end: h(),
            negative: 0,
        }
    }
}

impl Latency {
    /// Records the hops of `frame`, received at `now` (ns since the epoch).
    pub fn record(&mut self, frame: &ArchivedFrame, now: u64) {
        if !matches!(
            frame.body,
            ArchivedBody::Trade(_)
                | ArchivedBody::TradeSummary(_)
                | ArchivedBody::Quote(_)
                | ArchivedBody::BookDelta(_)
                | ArchivedBody::BookSnapshot(_)
        ) {
            return;
        }
        let ex = frame.ts_exchange.to_native();
        let recv = frame.ts_recv.to_native();
        let publish = frame.ts_publish.to_native();
        let mut hop = |h: &mut Histogram<u64>, from: u64, to: u64| {
            if from == 0 || to == 0 {
                return;
            }
            match to.checked_sub(from) {
                Some(d) => h.saturating_record(d.max(1)),
                None => self.negative += 1,
            }
        };
        hop(&mut self.exchange_to_recv, ex, recv);
        hop(&mut self.recv_to_publish, recv, publish);
        hop(&mut self.publish_to_client, publish, now);
        hop(&mut self.end_to_end, if ex != 0 { ex } else { recv }, now);
    }

    /// Clears every histogram.
    pub fn reset(&mut self) {
        self.exchange_to_recv.reset();
        self.recv_to_publish.reset();
        self.publish_to_client.reset();
        self.end_to_end.reset();
        self.negative = 0;
    }
}

/// Now, ns since the Unix epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// How the server delivers a subscription when the client falls behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Policy {
    /// Every frame; a client that falls a whole ring behind is closed (4001).
    Lossless,
    /// Every frame while the client keeps up; when it falls behind, the latest state per
    /// stream, flagged `CONFLATED` (the server's default).
    #[default]
    Conflate,
    /// At most one update per stream per interval (sent as `interval_ms`).
    Interval(Duration),
}

impl Policy {
    /// The `policy` field of a subscribe request.
    pub const fn name(self) -> &'static str {
        match self {
            Policy::Lossless => "lossless",
            Policy::Conflate => "conflate",
            Policy::Interval(_) => "interval",
        }
    }
}

/// The optional fields of a subscribe request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubscribeOptions {
    /// Delivery policy (default [`Policy::Conflate`]).
    pub policy: Policy,
    /// Levels per side in book snapshots (`None`: the server's default, the whole book).
    pub depth: Option<u32>,
    /// Send the current state first: definition, latest status, latest quote, book snapshot
    /// (default true). Subscriptions sent again after a reconnect always ask for it.
    pub snapshot: bool,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        SubscribeOptions {
            policy: Policy::Conflate,
            depth: None,
            snapshot: true,
        }
    }
}

impl SubscribeOptions {
    /// The defaults: conflate, the server's depth, snapshot first.
    pub fn new() -> SubscribeOptions {
        SubscribeOptions::default()
    }

    /// With this delivery policy.
    pub fn policy(mut self, policy: Policy) -> SubscribeOptions {
        self.policy = policy;
        self
    }

    /// With this many levels per side in book snapshots.
    pub fn depth(mut self, levels: u32) -> SubscribeOptions {
        self.depth = Some(levels);
        self
    }

    /// With or without the initial snapshot.
    pub fn snapshot(mut self, snapshot: bool) -> SubscribeOptions {
        self.snapshot = snapshot;
        self
    }

    /// Writes the options into a subscribe request.
    fn write(&self, req: &mut Value) {
        req["policy"] = json!(self.policy.name());
        if let Policy::Interval(every) = self.policy {
            req["interval_ms"] = json!(every.as_millis() as u64);
        }
        if let Some(depth) = self.depth {
            req["depth"] = json!(depth);
        }
        req["snapshot"] = json!(self.snapshot);
    }
}

/// Bytes per socket read (tungstenite's `read_buffer_size`).
const READ_BUFFER: usize = 16 << 10;

/// How a [`Client`] connects and how it behaves when things go wrong.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Server URL (`ws://HOST:PORT/ws`).
    pub url: String,
    /// Sent as `Authorization: Bearer <token>` on every connect.
    pub token: Option<String>,
    /// Reconnect when the connection is lost, and re-send the subscriptions (default false).
    pub reconnect: bool,
    /// Delays between reconnect attempts.
    pub backoff: BackoffConfig,
    /// Give up after this many failed attempts in a row (`None`: never give up).
    pub max_attempts: Option<u32>,
    /// Ask for a snapshot when a `book` or `quotes` stream has a hole (default true).
    pub repair_gaps: bool,
    /// A snapshot request unanswered for this long may be sent again (default 5 s).
    pub snapshot_timeout: Duration,
    /// Time allowed for one connect, TCP and WebSocket handshake (default 10 s).
    pub connect_timeout: Duration,
    /// With `reconnect`: a connection silent this long is dead (the client pings at half of
    /// it; a subscribed server sends a heartbeat every second). Default 10 s.
    pub idle_timeout: Duration,
}

impl ClientConfig {
    /// The defaults for `url`: no token, no reconnect, gaps repaired.
    pub fn new(url: impl Into<String>) -> ClientConfig {
        ClientConfig {
            url: url.into(),
            token: None,
            reconnect: false,
            backoff: BackoffConfig::default(),
            max_attempts: None,
            repair_gaps: true,
            snapshot_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
        }
    }
}

/// Builds a [`ClientConfig`] and connects with it (see [`Client::builder`]).
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    config: ClientConfig,
}

impl ClientBuilder {
    /// Sends `Authorization: Bearer <token>` on every connect.
    pub fn token(mut self, token: impl Into<String>) -> ClientBuilder {
        self.config.token = Some(token.into());
        self
    }

    /// Reconnects (and re-subscribes) when the connection is lost.
    pub fn reconnect(mut self, reconnect: bool) -> ClientBuilder {
        self.config.reconnect = reconnect;
        self
    }

    /// Sets the reconnect delays.
    pub fn backoff(mut self, backoff: BackoffConfig) -> ClientBuilder {
        self.config.backoff = backoff;
        self
    }

    /// Gives up after `attempts` failed reconnect attempts in a row.
    pub fn max_attempts(mut self, attempts: u32) -> ClientBuilder {
        self.config.max_attempts = Some(attempts);
        self
    }

    /// Asks (or not) for a snapshot when a `book` or `quotes` stream has a hole.
    pub fn repair_gaps(mut self, repair: bool) -> ClientBuilder {
        self.config.repair_gaps = repair;
        self
    }

    /// Sets the time allowed for one connect.
    pub fn connect_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.config.connect_timeout = timeout;
        self
    }

    /// Sets how long a reconnecting client waits on a silent connection before dropping it.
    pub fn idle_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.config.idle_timeout = timeout;
        self
    }

    /// The configuration so far.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Connects once (a first connect that fails is an error, not retried).
    pub async fn connect(self) -> Result<Client, ClientError> {
        Client::with_config(self.config).await
    }
}

/// A request the client made by itself; its reply is not an event.
#[derive(Debug)]
enum AutoRequest {
    Resubscribe,
    Snapshot(Vec<(u32, Channel)>),
}

/// A connection to a tickwire server, in binary mode.
pub struct Client {
    config: ClientConfig,
    ws: Option<Ws>,
    /// Connections made so far (a request sent on an older one is lost).
    generation: u64,
    /// The connect attempt under way while disconnected (a task, so that dropping a
    /// `next()` future, as `select!` does, loses no progress).
    connecting: Option<JoinHandle<Result<Ws, ClientError>>>,
    down_since: Option<Instant>,
    outage_attempts: u32,
    last_error: String,
    /// No more events will come.
    finished: bool,
    backoff: Backoff,
    next_id: u64,
    pending: VecDeque<Event>,
    outbox: VecDeque<Message>,
    needs_flush: bool,
    awaiting: Option<u64>,
    reply: Option<(u64, Value)>,
    auto: HashMap<u64, AutoRequest>,
    snapshots_in_flight: HashMap<(u32, Channel), Instant>,
    snapshot_op_supported: bool,
    /// Active subscriptions: (symbol, channel) -> options.
    subs: BTreeMap<(Symbol, Channel), SubscribeOptions>,
    names: HashMap<u32, String>,
    seq: SeqTracker,
    instruments: Instruments,
    latency: Latency,
    last_rx: Instant,
    pinged: bool,
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(task) = self.connecting.take() {
            task.abort();
        }
    }
}

/// How one read ended.
enum Read {
    Msg(Message),
    Lost(Option<u16>, String, Option<ClientError>),
    PingDue,
}

impl Client {
    /// Connects to `url` (`ws://HOST:PORT/ws`): no token, no reconnect.
    pub async fn connect(url: &str) -> Result<Client, ClientError> {
        Client::with_config(ClientConfig::new(url)).await
    }

    /// A builder for a client with a token, reconnects and the rest of [`ClientConfig`].
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            config: ClientConfig::new(url),
        }
    }

    /// Connects with `config` (once: a first connect that fails is an error).
    pub async fn with_config(config: ClientConfig) -> Result<Client, ClientError> {
        let ws = open(
            config.url.clone(),
            config.token.clone(),
            config.connect_timeout,
        )
        .await?;
        let mut client = Client {
            backoff: Backoff::new(config.backoff),
            config,
            ws: None,
            generation: 0,
            connecting: None,
            down_since: None,
            outage_attempts: 0,
            last_error: String::new(),
            finished: false,
            next_id: 1,
            pending: VecDeque::new(),
            outbox: VecDeque::new(),
            needs_flush: false,
            awaiting: None,
            reply: None,
            auto: HashMap::new(),
            snapshots_in_flight: HashMap::new(),
            snapshot_op_supported: true,
            subs: BTreeMap::new(),
            names: HashMap::new(),
            seq: SeqTracker::new(),
            instruments: Instruments::new(),
            latency: Latency::default(),
            last_rx: Instant::now(),
            pinged: false,
        };
        client.install(ws);
        Ok(client)
    }

    /// Subscribes to `channels` of `symbols` (`venue:SYMBOL`) with the default options;
    /// returns the server's ack.
    pub async fn subscribe(
        &mut self,
        symbols: &[&str],
        channels: &[Channel],
    ) -> Result<Value, ClientError> {
        self.subscribe_with(symbols, channels, &SubscribeOptions::default())
            .await
    }

    /// Subscribes to `channels` of `symbols` with `options`; returns the server's ack. The
    /// subscription is remembered and sent again after a reconnect.
    pub async fn subscribe_with(
        &mut self,
        symbols: &[&str],
        channels: &[Channel],
        options: &SubscribeOptions,
    ) -> Result<Value, ClientError> {
        let chans: Vec<&str> = channels.iter().map(|c| c.name()).collect();
        let mut req =
            json!({"op": "subscribe", "symbols": symbols, "channels": chans, "encoding": "binary"});
        options.write(&mut req);
        let ack = self.request(req).await?;
        // The ack names what the server subscribed, spelled its way; else what was asked.
        let acked = |key: &str| -> Option<Vec<String>> {
            let list: Vec<String> = ack[key]
                .as_array()?
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            (!list.is_empty()).then_some(list)
        };
        let syms =
            acked("symbols").unwrap_or_else(|| symbols.iter().map(|s| s.to_string()).collect());
        let chans: Vec<Channel> = acked("channels")
            .map(|l| l.iter().filter_map(|c| c.parse().ok()).collect())
            .unwrap_or_else(|| {
                if channels.is_empty() {
                    Channel::SUBSCRIBABLE.to_vec()
                } else {
                    channels.to_vec()
                }
            });
        for s in syms.iter().filter_map(|s| s.parse::<Symbol>().ok()) {
            self.names.insert(s.id(), s.to_string());
            for &c in &chans {
                self.subs.insert((s.clone(), c), *options);
            }
        }
        Ok(ack)
    }

    /// Unsubscribes (every channel if `channels` is empty); returns the server's ack.
    pub async fn unsubscribe(
        &mut self,
        symbols: &[&str],
        channels: &[Channel],
    ) -> Result<Value, ClientError> {
        let chans: Vec<&str> = channels.iter().map(|c| c.name()).collect();
        let ack = self
            .request(json!({"op": "unsubscribe", "symbols": symbols, "channels": chans}))
            .await?;
        let channels: &[Channel] = if channels.is_empty() {
            &Channel::SUBSCRIBABLE
        } else {
            channels
        };
        for s in symbols.iter().filter_map(|s| s.parse::<Symbol>().ok()) {
            let id = s.id();
            for &c in channels {
                self.subs.remove(&(s.clone(), c));
                self.seq.forget(id, c);
                self.snapshots_in_flight.remove(&(id, c));
            }
            if !self.subs.keys().any(|(sym, _)| *sym == s) {
                self.seq.forget(id, Channel::Control);
            }
        }
        Ok(ack)
    }

    /// Asks the server to send the snapshots of `channels` of `symbols` again (they must be
    /// subscribed); returns its reply, which comes after the snapshot frames.
    pub async fn snapshot(
        &mut self,
        symbols: &[&str],
        channels: &[Channel],
    ) -> Result<Value, ClientError> {
        let chans: Vec<&str> = channels.iter().map(|c| c.name()).collect();
        self.request(json!({"op": "snapshot", "symbols": symbols, "channels": chans}))
            .await
    }

    /// The `venue:SYMBOL`s the server serves.
    pub async fn list(&mut self) -> Result<Vec<String>, ClientError> {
        let reply = self.request(json!({"op": "list"})).await?;
        Ok(reply["symbols"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Sends a request with a fresh id and waits for its reply; events received meanwhile are
    /// kept for [`Self::next`]. A reconnecting client sends it again (once) if the connection
    /// is lost before the reply.
    async fn request(&mut self, req: Value) -> Result<Value, ClientError> {
        let mut retried = false;
        loop {
            while self.ws.is_none() {
                if self.finished || !self.config.reconnect {
                    return Err(ClientError::Closed);
                }
                self.step().await?;
            }
            let id = self.fresh_id();
            let mut req = req.clone();
            req["id"] = json!(id);
            self.outbox.push_back(Message::text(req.to_string()));
            self.awaiting = Some(id);
            let generation = self.generation;
            let reply = loop {
                if let Some((rid, v)) = self.reply.take() {
                    if rid == id {
                        break Some(v);
                    }
                    self.pending.push_back(Event::Reply(v));
                }
                if self.ws.is_none() || self.generation != generation {
                    break None;
                }
                if let Err(e) = self.step().await {
                    self.awaiting = None;
                    return Err(e);
                }
            };
            self.awaiting = None;
            match reply {
                Some(v) if v["type"] == "error" => {
                    return Err(ClientError::Refused {
                        code: v["code"].as_str().unwrap_or("").to_string(),
                        message: v["message"].as_str().unwrap_or("").to_string(),
                    });
                }
                Some(v) => return Ok(v),
                None if self.config.reconnect && !self.finished && !retried => retried = true,
                None => return Err(ClientError::Closed),
            }
        }
    }

    /// The next event; `None` once the connection is gone for good (closed without
    /// reconnect, or after a fatal error).
    ///
    /// Cancel-safe: dropping the future (in `select!`) loses no event, and a reconnect under
    /// way goes on.
    pub async fn next(&mut self) -> Option<Result<Event, ClientError>> {
        // No request runs while `next` has `&mut self`: a reply still awaited belongs to a
        // request whose future was dropped, so it is an ordinary event now.
        self.awaiting = None;
        if let Some((_, v)) = self.reply.take() {
            self.pending.push_back(Event::Reply(v));
        }
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(Ok(e));
            }
            if self.finished && self.ws.is_none() {
                return None;
            }
            if let Err(e) = self.step().await {
                return Some(Err(e));
            }
        }
    }

    /// One unit of work: reconnect if down, send what is queued, read one message.
    async fn step(&mut self) -> Result<(), ClientError> {
        if self.ws.is_none() {
            return self.reconnect_step().await;
        }
        let flushed = if self.config.reconnect {
            // A peer that stopped reading must not hold the client up past the idle limit.
            let deadline = self.last_rx + self.config.idle_timeout;
            match tokio::time::timeout_at(deadline.into(), self.flush_outbox()).await {
                Ok(r) => r.map_err(|e| (e.to_string(), Some(e.into()))),
                Err(_) => Err((
                    format!("the server took nothing for {:?}", self.config.idle_timeout),
                    None,
                )),
            }
        } else {
            self.flush_outbox()
                .await
                .map_err(|e| (e.to_string(), Some(e.into())))
        };
        if let Err((reason, err)) = flushed {
            return self.lost(None, reason, err);
        }
        match self.read().await {
            Read::PingDue => {
                self.pinged = true;
                self.outbox.push_back(Message::Ping(Bytes::new()));
                Ok(())
            }
            Read::Lost(code, reason, err) => self.lost(code, reason, err),
            Read::Msg(msg) => {
                self.last_rx = Instant::now();
                self.pinged = false;
                match msg {
                    Message::Binary(bytes) => self.on_batch(bytes),
                    Message::Text(t) => self.on_text(t.as_str()),
                    Message::Close(frame) => {
                        let (code, reason) = frame
                            .map(|f| (u16::from(f.code), f.reason.to_string()))
                            .unwrap_or((1005, String::new()));
                        self.lost(Some(code), reason, None)
                    }
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(()),
                }
            }
        }
    }

    /// Reads one message (cancel-safe). A reconnecting client watches for silence.
    async fn read(&mut self) -> Read {
        let Some(ws) = self.ws.as_mut() else {
            return Read::Lost(None, "not connected".into(), None);
        };
        let next = if self.config.reconnect {
            let idle = self.config.idle_timeout;
            let deadline = self.last_rx + if self.pinged { idle } else { idle / 2 };
            match tokio::time::timeout_at(deadline.into(), ws.next()).await {
                Ok(next) => next,
                Err(_) if self.pinged => {
                    return Read::Lost(
                        None,
                        format!("no message from the server for {idle:?}"),
                        None,
                    );
                }
                Err(_) => return Read::PingDue,
            }
        } else {
            ws.next().await
        };
        match next {
            None => Read::Lost(None, "connection ended".into(), None),
            Some(Err(e)) => Read::Lost(None, e.to_string(), Some(e.into())),
            Some(Ok(m)) => Read::Msg(m),
        }
    }

    /// Sends the queued messages (cancel-safe: a message leaves the queue only once the
    /// socket took it).
    async fn flush_outbox(&mut self) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        let Some(ws) = self.ws.as_mut() else {
            return Ok(());
        };
        while !self.outbox.is_empty() {
            poll_fn(|cx| ws.poll_ready_unpin(cx)).await?;
            if let Some(m) = self.outbox.pop_front() {
                ws.start_send_unpin(m)?;
                self.needs_flush = true;
            }
        }
        if self.needs_flush {
            poll_fn(|cx| ws.poll_flush_unpin(cx)).await?;
            self.needs_flush = false;
        }
        Ok(())
    }

    fn on_batch(&mut self, bytes: Bytes) -> Result<(), ClientError> {
        let now = now_ns();
        let batch = Batch::new(bytes)?;
        let mut holes: Vec<Hole> = Vec::new();
        for f in batch.iter() {
            self.instruments.observe(f);
            self.latency.record(f, now);
            if let SeqCheck::Hole(h) = self.seq.check(f) {
                holes.push(h);
            }
        }
        for h in &holes {
            self.pending.push_back(Event::Gap {
                instrument: h.instrument,
                channel: h.channel,
                expected: h.expected,
                got: h.got,
            });
        }
        if !holes.is_empty() {
            self.request_snapshots(&holes);
        }
        self.pending.push_back(Event::Frames(batch));
        Ok(())
    }

    /// Queues a `snapshot` request for the book and quotes streams with a hole, at most one
    /// in flight per stream.
    fn request_snapshots(&mut self, holes: &[Hole]) {
        if !self.config.repair_gaps || !self.snapshot_op_supported {
            return;
        }
        let now = Instant::now();
        for channel in [Channel::Book, Channel::Quotes] {
            let mut streams = Vec::new();
            let mut symbols = Vec::new();
            for h in holes.iter().filter(|h| h.channel == channel) {
                let key = (h.instrument, channel);
                let in_flight = self
                    .snapshots_in_flight
                    .get(&key)
                    .is_some_and(|at| now.duration_since(*at) < self.config.snapshot_timeout);
                if in_flight || streams.contains(&key) {
                    continue;
                }
                let Some(name) = self.name_of(h.instrument) else {
                    tracing::warn!(
                        instrument = h.instrument,
                        "hole in a stream of an unknown instrument: cannot ask for its snapshot"
                    );
                    continue;
                };
                streams.push(key);
                symbols.push(name);
            }
            if symbols.is_empty() {
                continue;
            }
            for &key in &streams {
                self.snapshots_in_flight.insert(key, now);
            }
            let id = self.fresh_id();
            self.auto.insert(id, AutoRequest::Snapshot(streams));
            self.outbox.push_back(Message::text(
                json!({"op": "snapshot", "id": id, "symbols": symbols, "channels": [channel.name()]})
                    .to_string(),
            ));
        }
    }

    fn name_of(&self, instrument: u32) -> Option<String> {
        self.names
            .get(&instrument)
            .cloned()
            .or_else(|| self.instruments.get(instrument).map(|i| i.qualified()))
    }

    fn on_text(&mut self, text: &str) -> Result<(), ClientError> {
        let v: Value = serde_json::from_str(text)
            .map_err(|_| ClientError::Protocol(text.chars().take(200).collect()))?;
        if let Some(id) = v["id"].as_u64() {
            if let Some(req) = self.auto.remove(&id) {
                self.on_auto_reply(req, v);
                return Ok(());
            }
            if self.awaiting == Some(id) {
                self.reply = Some((id, v));
                return Ok(());
            }
        }
        self.pending.push_back(Event::Reply(v));
        Ok(())
    }

    fn on_auto_reply(&mut self, req: AutoRequest, v: Value) {
        let op = match req {
            AutoRequest::Resubscribe => "subscribe",
            AutoRequest::Snapshot(streams) => {
                for key in streams {
                    self.snapshots_in_flight.remove(&key);
                }
                "snapshot"
            }
        };
        if v["type"] != "error" {
            return;
        }
        let code = v["code"].as_str().unwrap_or("").to_string();
        if op == "snapshot" && code == "unknown_op" {
            // An older server: do not ask again on this connection.
            self.snapshot_op_supported = false;
        }
        self.pending.push_back(Event::Refused {
            op: op.to_string(),
            code,
            message: v["message"].as_str().unwrap_or("").to_string(),
        });
    }

    /// The connection is gone: either the end (no reconnect) or the start of an outage.
    fn lost(
        &mut self,
        code: Option<u16>,
        reason: String,
        err: Option<ClientError>,
    ) -> Result<(), ClientError> {
        if let Some(ws) = self.ws.take() {
            retire(ws);
        }
        self.outbox.clear();
        self.needs_flush = false;
        self.auto.clear();
        self.snapshots_in_flight.clear();
        if !self.config.reconnect {
            self.finished = true;
            if let Some(code) = code {
                self.pending.push_back(Event::Closed { code, reason });
            }
            return err.map_or(Ok(()), Err);
        }
        let now = Instant::now();
        tracing::warn!(url = %self.config.url, ?code, %reason, "connection lost; reconnecting");
        self.backoff.disconnected(now);
        self.down_since = Some(now);
        self.outage_attempts = 0;
        self.last_error = reason.clone();
        // Book, quote and control streams restart from the snapshots the new connection
        // brings; trades are never re-sent, so their baseline stays and the trades missed
        // meanwhile show as a gap.
        self.seq.retain(|_, c| c == Channel::Trades);
        self.pending.push_back(Event::Disconnected { code, reason });
        Ok(())
    }

    /// One reconnect attempt (after its backoff delay). Cancel-safe: the attempt runs as a
    /// task and is picked up by the next call.
    async fn reconnect_step(&mut self) -> Result<(), ClientError> {
        if self.finished {
            return Err(ClientError::Closed);
        }
        if self.connecting.is_none() {
            if let Some(max) = self.config.max_attempts
                && self.outage_attempts >= max
            {
                self.finished = true;
                return Err(ClientError::GaveUp {
                    attempts: self.outage_attempts,
                    last: self.last_error.clone(),
                });
            }
            let delay = self.backoff.next_delay();
            self.outage_attempts += 1;
            let (url, token, timeout) = (
                self.config.url.clone(),
                self.config.token.clone(),
                self.config.connect_timeout,
            );
            tracing::debug!(
                attempt = self.outage_attempts,
                ?delay,
                "reconnect scheduled"
            );
            self.connecting = Some(tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                open(url, token, timeout).await
            }));
        }
        let Some(task) = self.connecting.as_mut() else {
            return Ok(());
        };
        let result = task.await;
        self.connecting = None;
        match result {
            Ok(Ok(ws)) => {
                let downtime = self
                    .down_since
                    .take()
                    .map_or(Duration::ZERO, |t| t.elapsed());
                let attempt = self.outage_attempts;
                tracing::info!(url = %self.config.url, attempt, ?downtime, "reconnected");
                self.install(ws);
                self.resubscribe();
                self.pending
                    .push_back(Event::Reconnected { attempt, downtime });
                Ok(())
            }
            Ok(Err(e)) if e.is_fatal() => {
                self.finished = true;
                Err(e)
            }
            Ok(Err(e)) => {
                tracing::warn!(url = %self.config.url, attempt = self.outage_attempts, error = %e, "reconnect failed");
                self.last_error = e.to_string();
                Ok(())
            }
            Err(join) => {
                self.last_error = format!("connect task: {join}");
                Ok(())
            }
        }
    }

    fn install(&mut self, ws: Ws) {
        let now = Instant::now();
        self.ws = Some(ws);
        self.generation += 1;
        self.last_rx = now;
        self.pinged = false;
        self.snapshot_op_supported = true;
        self.backoff.connected(now);
    }

    /// Queues every active subscription again, grouped into as few requests as the options
    /// and channel sets allow, each asking for snapshots.
    fn resubscribe(&mut self) {
        // symbol -> its (options, channels)
        let mut per_symbol: BTreeMap<&Symbol, Vec<(SubscribeOptions, Vec<Channel>)>> =
            BTreeMap::new();
        for ((sym, ch), opts) in &self.subs {
            let opts = opts.snapshot(true);
            let list = per_symbol.entry(sym).or_default();
            match list.iter_mut().find(|(o, _)| *o == opts) {
                Some((_, chans)) => chans.push(*ch),
                None => list.push((opts, vec![*ch])),
            }
        }
        let mut groups: Vec<(SubscribeOptions, Vec<Channel>, Vec<String>)> = Vec::new();
        for (sym, list) in per_symbol {
            for (opts, chans) in list {
                match groups
                    .iter_mut()
                    .find(|(o, c, _)| *o == opts && *c == chans)
                {
                    Some((_, _, syms)) => syms.push(sym.to_string()),
                    None => groups.push((opts, chans, vec![sym.to_string()])),
                }
            }
        }
        for (opts, chans, syms) in groups {
            let id = self.fresh_id();
            let chans: Vec<&str> = chans.iter().map(|c| c.name()).collect();
            let mut req = json!({"op": "subscribe", "id": id, "symbols": syms, "channels": chans, "encoding": "binary"});
            opts.write(&mut req);
            self.auto.insert(id, AutoRequest::Resubscribe);
            self.outbox.push_back(Message::text(req.to_string()));
        }
    }

    fn fresh_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// What the instrument ids seen so far stand for.
    pub fn instruments(&self) -> &Instruments {
        &self.instruments
    }

    /// Per-hop latency of the frames received so far.
    pub fn latency(&self) -> &Latency {
        &self.latency
    }

    /// Per-hop latency, to read and reset between reporting intervals.
    pub fn latency_mut(&mut self) -> &mut Latency {
        &mut self.latency
    }

    /// The sequence state of every stream received (holes found so far: `seq().holes()`).
    pub fn seq(&self) -> &SeqTracker {
        &self.seq
    }

    /// The active subscriptions, as (symbol, channel, options).
    pub fn subscriptions(&self) -> impl Iterator<Item = (&Symbol, Channel, &SubscribeOptions)> {
        self.subs.iter().map(|((s, c), o)| (s, *c, o))
    }

    /// True while a connection is up.
    pub fn is_connected(&self) -> bool {
        self.ws.is_some()
    }

    /// The configuration this client runs with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Closes the connection politely (and stops reconnecting).
    pub async fn close(mut self) -> Result<(), ClientError> {
        if let Some(task) = self.connecting.take() {
            task.abort();
        }
        if let Some(ws) = self.ws.as_mut() {
            ws.close(None).await?;
        }
        Ok(())
    }
}

/// Ends a connection that is no longer used without holding anyone up: completes the close
/// handshake (answering the server's close frame) in the background, for at most a second.
fn retire(mut ws: Ws) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
    });
}

/// Opens one WebSocket connection, with the token as a bearer header.
async fn open(url: String, token: Option<String>, timeout: Duration) -> Result<Ws, ClientError> {
    let mut request = url.as_str().into_client_request()?;
    if let Some(token) = token {
        let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            ClientError::Config("the token holds characters an HTTP header cannot carry".into())
        })?;
        request.headers_mut().insert(AUTHORIZATION, value);
    }
    // tungstenite zero-fills `read_buffer_size` bytes before every socket read (128 KiB by
    // default: ~4 us per read, most of a small batch's cost); big batches take several reads.
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let connect = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
    match tokio::time::timeout(timeout, connect).await {
        Err(_) => Err(ClientError::Timeout {
            url,
            after: timeout,
        }),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response)))
            if matches!(response.status().as_u16(), 401 | 403) =>
        {
            let message = response
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).chars().take(200).collect())
                .unwrap_or_default();
            Err(ClientError::Unauthorized {
                status: response.status().as_u16(),
                message,
            })
        }
        Ok(Err(e)) => Err(e.into()),
        Ok(Ok((ws, _))) => Ok(ws),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_options_render_into_the_request() {
        let mut req = json!({"op": "subscribe"});
        SubscribeOptions::default().write(&mut req);
        assert_eq!(
            req,
            json!({"op": "subscribe", "policy": "conflate", "snapshot": true})
        );
        let mut req = json!({});
        SubscribeOptions::new()
            .policy(Policy::Interval(Duration::from_millis(250)))
            .depth(5)
            .snapshot(false)
            .write(&mut req);
        assert_eq!(
            req,
            json!({"policy": "interval", "interval_ms": 250, "depth": 5, "snapshot": false})
        );
        let mut req = json!({});
        SubscribeOptions::new()
            .policy(Policy::Lossless)
            .write(&mut req);
        assert_eq!(req["policy"], "lossless");
    }

    #[test]
    fn fatal_errors_are_not_retried() {
        assert!(
            ClientError::Unauthorized {
                status: 401,
                message: String::new()
            }
            .is_fatal()
        );
        assert!(!ClientError::Closed.is_fatal());
        assert!(
            !ClientError::Timeout {
                url: String::new(),
                after: Duration::ZERO
            }
            .is_fatal()
        );
    }
}
