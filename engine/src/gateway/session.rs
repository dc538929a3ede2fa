//! One client connection: control messages in, frames out from its own ring cursor.
//!
//! The session task reads the broadcast ring at its own pace, keeps the frames its
//! subscriptions want, and writes them in batches: binary clients get one WebSocket message
//! per batch (a `wire` batch of rkyv frames), JSON clients one text message per frame; either
//! way one flush per batch. A client that stops reading only stalls its own task: the ring
//! writer never waits, and when the client falls a whole ring behind it is closed with
//! [`CLOSE_SLOW_CONSUMER`] and a reason saying how far behind it was.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tracing::{debug, info};

use tickwire_feed::clock::now_ns;
use tickwire_sdk::wire::{BatchWriter, Body, Encoder, Frame, JsonOptions, instrument_id, json};

use super::GatewayCtx;
use super::protocol::{self, Encoding, Request, RequestError};
use super::subscriptions::Subscriptions;
use crate::ring::{Cursor, Read, pin};

/// Close code sent to a client that fell too far behind (application range 4000-4999).
pub const CLOSE_SLOW_CONSUMER: u16 = 4001;

/// Entries examined per pump before the task yields to others.
const SCAN_LIMIT: usize = 8192;

type WsSink = SplitSink<WebSocketStream<TcpStream>, Message>;

/// What the reader task passes to the session.
enum Incoming {
    /// A control message.
    Text(Utf8Bytes),
    /// The client pinged us (tungstenite queued the pong; it needs a flush).
    Ping,
    /// Any sign of life (pong).
    Alive,
    /// The client sent a close frame (tungstenite queued the echo).
    Close,
    /// A protocol violation: close with this code and reason.
    Violation(CloseCode, String),
    /// The connection failed.
    Gone(String),
}

/// Runs a session over an accepted WebSocket until it ends.
pub(crate) async fn run(ws: WebSocketStream<TcpStream>, peer: SocketAddr, ctx: Arc<GatewayCtx>) {
    let (sink, stream) = ws.split();
    let (in_tx, in_rx) = mpsc::channel(64);
    let reader = tokio::spawn(read_loop(stream, in_tx));
    let mut session = Session {
        peer,
        cursor: ctx.ring.cursor_at_head(),
        subs: Subscriptions::new(),
        encoding: Encoding::Json,
        batch: BatchWriter::with_capacity(64 << 10),
        texts: Vec::new(),
        encoder: Encoder::new(),
        scratch: Vec::new(),
        last_send: Instant::now(),
        last_heard: Instant::now(),
        sink,
        ctx,
    };
    let end = session.run(in_rx).await;
    reader.abort();
    session.ctx.stats.active.fetch_sub(1, Ordering::Relaxed);
    debug!(%peer, ?end, "client session ended");
}

async fn read_loop(
    mut stream: SplitStream<WebSocketStream<TcpStream>>,
    tx: mpsc::Sender<Incoming>,
) {
    while let Some(msg) = stream.next().await {
        let incoming = match msg {
            Ok(Message::Text(t)) => Incoming::Text(t),
            Ok(Message::Binary(_)) => Incoming::Violation(
                CloseCode::Unsupported,
                "binary messages are not accepted: send JSON text control messages".into(),
            ),
            Ok(Message::Ping(_)) => Incoming::Ping,
            Ok(Message::Pong(_)) | Ok(Message::Frame(_)) => Incoming::Alive,
            Ok(Message::Close(_)) => Incoming::Close,
            Err(WsError::Capacity(e)) => {
                Incoming::Violation(CloseCode::Size, format!("message too big: {e}"))
            }
            Err(WsError::Utf8(e)) => {
                Incoming::Violation(CloseCode::Invalid, format!("text is not valid UTF-8: {e}"))
            }
            Err(WsError::Protocol(e)) => {
                Incoming::Violation(CloseCode::Protocol, format!("protocol error: {e}"))
            }
            Err(e) => Incoming::Gone(e.to_string()),
        };
        let last = matches!(
            incoming,
            Incoming::Close | Incoming::Violation(..) | Incoming::Gone(_)
        );
        if tx.send(incoming).await.is_err() || last {
            return;
        }
    }
    let _ = tx.send(Incoming::Gone("connection closed".into())).await;
}

/// Why a session ended.
#[derive(Debug)]
enum End {
    ClientClosed,
    ServerShutdown,
    Violation,
    SlowConsumer,
    Gone,
}

struct Session {
    peer: SocketAddr,
    ctx: Arc<GatewayCtx>,
    sink: WsSink,
    cursor: Cursor,
    subs: Subscriptions,
    encoding: Encoding,
    batch: BatchWriter,
    texts: Vec<Utf8Bytes>,
    encoder: Encoder,
    scratch: Vec<u8>,
    last_send: Instant,
    last_heard: Instant,
}

impl Session {
    async fn run(&mut self, mut incoming: mpsc::Receiver<Incoming>) -> End {
        let mut tick = tokio::time::interval(self.ctx.config.heartbeat_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let ring = self.ctx.ring.clone();
        let mut shutdown = self.ctx.shutdown.clone();
        loop {
            if *shutdown.borrow() {
                return self.going_away().await;
            }
            while let Ok(m) = incoming.try_recv() {
                if let Some(end) = self.on_incoming(m).await {
                    return end;
                }
            }
            match self.pump().await {
                Ok(0) => {}
                Ok(_) => continue,
                Err(end) => return end,
            }
            let notified = ring.notify().notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if ring.head() > self.cursor.position() {
                continue;
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = shutdown.changed() => {}
                m = incoming.recv() => match m {
                    Some(m) => if let Some(end) = self.on_incoming(m).await { return end },
                    None => return End::Gone,
                },
                _ = tick.tick() => {
                    if let Some(end) = self.on_tick().await {
                        return end;
                    }
                }
            }
        }
    }

    /// Moves what the subscriptions want from the ring to the socket, one batch.
    /// Returns frames sent.
    async fn pump(&mut self) -> Result<usize, End> {
        let max_frames = self.ctx.config.max_batch_frames;
        let max_bytes = self.ctx.config.max_batch_bytes;
        let mut frames = 0;
        let mut bytes = 0;
        let mut lapped = None;
        {
            let guard = pin();
            for _ in 0..SCAN_LIMIT {
                match self.ctx.ring.read(&mut self.cursor, &guard) {
                    Read::Entry(e) => {
                        if !self.subs.wants(e.instrument, e.channel) {
                            continue;
                        }
                        match self.encoding {
                            Encoding::Binary => self.batch.push(&e.bytes),
                            Encoding::Json => self.texts.push(e.json().clone()),
                        }
                        frames += 1;
                        bytes += e.bytes.len();
                        if frames >= max_frames || bytes >= max_bytes {
                            break;
                        }
                    }
                    Read::Empty => break,
                    Read::Lapped { missed } => {
                        lapped = Some(missed);
                        break;
                    }
                }
            }
        }
        if let Some(missed) = lapped {
            return Err(self.slow_consumer(missed).await);
        }
        if frames == 0 {
            return Ok(0);
        }
        self.send_pending().await?;
        self.ctx
            .stats
            .frames_sent
            .fetch_add(frames as u64, Ordering::Relaxed);
        Ok(frames)
    }

    /// Writes the pending batch (binary) or texts (JSON), then one flush, within the write
    /// timeout.
    async fn send_pending(&mut self) -> Result<(), End> {
        let write = async {
            if !self.batch.is_empty() {
                let bytes = self.batch.take();
                self.sink.feed(Message::Binary(bytes.into())).await?;
                self.ctx.stats.messages_sent.fetch_add(1, Ordering::Relaxed);
            }
            let n = self.texts.len() as u64;
            for t in self.texts.drain(..) {
                self.sink.feed(Message::Text(t)).await?;
            }
            self.ctx.stats.messages_sent.fetch_add(n, Ordering::Relaxed);
            self.sink.flush().await
        };
        match tokio::time::timeout(self.ctx.config.write_timeout, write).await {
            Ok(Ok(())) => {
                self.last_send = Instant::now();
                Ok(())
            }
            Ok(Err(e)) => {
                debug!(peer = %self.peer, error = %e, "write failed");
                Err(End::Gone)
            }
            Err(_) => {
                self.ctx.stats.slow_closed.fetch_add(1, Ordering::Relaxed);
                info!(peer = %self.peer, timeout = ?self.ctx.config.write_timeout, "client socket not writable; dropping it (slow consumer)");
                Err(End::SlowConsumer)
            }
        }
    }

    /// Server shutdown: deliver what the ring still holds for this client (the feeds' final
    /// statuses among it), then close with 1001.
    async fn going_away(&mut self) -> End {
        loop {
            match self.pump().await {
                Ok(0) => break,
                Ok(_) => continue,
                Err(end) => return end,
            }
        }
        self.close(CloseCode::Away, "server shutting down".to_string())
            .await;
        End::ServerShutdown
    }

    async fn slow_consumer(&mut self, missed: u64) -> End {
        self.ctx.stats.slow_closed.fetch_add(1, Ordering::Relaxed);
        let reason = format!(
            "slow consumer: {missed} frames behind (the server keeps {}); reconnect and read faster or subscribe to less",
            self.ctx.ring.capacity()
        );
        info!(peer = %self.peer, %reason, "closing client");
        self.close(CloseCode::from(CLOSE_SLOW_CONSUMER), reason)
            .await;
        End::SlowConsumer
    }

    async fn close(&mut self, code: CloseCode, reason: String) {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            self.sink.send(Message::Close(Some(frame))),
        )
        .await;
    }

    async fn on_incoming(&mut self, m: Incoming) -> Option<End> {
        self.last_heard = Instant::now();
        match m {
            Incoming::Text(t) => {
                let reply = self.on_request(t.as_str());
                for r in reply {
                    if self.sink.feed(Message::text(r)).await.is_err() {
                        return Some(End::Gone);
                    }
                }
                // Replies, then any frames the request queued (definitions), one flush.
                self.send_pending().await.err()
            }
            Incoming::Ping => self.sink.flush().await.err().map(|_| End::Gone),
            Incoming::Alive => None,
            Incoming::Close => {
                // tungstenite queued the echo of the client's close frame; send it.
                let _ = self.sink.flush().await;
                Some(End::ClientClosed)
            }
            Incoming::Violation(code, reason) => {
                info!(peer = %self.peer, %reason, "closing client after a protocol violation");
                self.close(code, reason).await;
                Some(End::Violation)
            }
            Incoming::Gone(why) => {
                debug!(peer = %self.peer, %why, "client connection gone");
                Some(End::Gone)
            }
        }
    }

    /// Handles a control message; returns the text replies, then queues definitions.
    fn on_request(&mut self, text: &str) -> Vec<String> {
        let req = match protocol::parse(text) {
            Ok(r) => r,
            Err(e) => return vec![e.to_json()],
        };
        match req {
            Request::Subscribe {
                id,
                symbols,
                channels,
                encoding,
            } => {
                let unknown: Vec<String> = symbols
                    .iter()
                    .filter(|s| {
                        !self
                            .ctx
                            .registry
                            .is_served(instrument_id(s.venue, &s.symbol))
                    })
                    .map(|s| s.qualified())
                    .collect();
                if !unknown.is_empty() {
                    let served = self.ctx.registry.served();
                    return vec![
                        RequestError {
                            id,
                            code: "unknown_symbol",
                            message: format!(
                                "not served here: {}; this server serves {}",
                                unknown.join(", "),
                                if served.is_empty() {
                                    "nothing yet".to_string()
                                } else {
                                    served.join(", ")
                                }
                            ),
                        }
                        .to_json(),
                    ];
                }
                let new = symbols
                    .iter()
                    .filter(|s| {
                        !self
                            .subs
                            .ids()
                            .any(|id| id == instrument_id(s.venue, &s.symbol))
                    })
                    .count();
                if self.subs.len() + new > self.ctx.config.max_subscriptions {
                    return vec![RequestError {
                        id,
                        code: "too_many_subscriptions",
                        message: format!(
                            "at most {} instruments per connection; unsubscribe some or open another connection",
                            self.ctx.config.max_subscriptions
                        ),
                    }
                    .to_json()];
                }
                if let Some(e) = encoding {
                    self.encoding = e;
                }
                for s in &symbols {
                    self.subs.add(s, &channels);
                }
                let ack = protocol::ack("subscribed", &id, &symbols, &channels, self.encoding);
                // Tell the client what the ids stand for before any data.
                for s in &symbols {
                    if let Some(info) = self
                        .ctx
                        .registry
                        .definition(instrument_id(s.venue, &s.symbol))
                    {
                        let mut f = Frame::new(
                            info.venue,
                            info.id,
                            0,
                            0,
                            Body::Definition(info.definition()),
                        );
                        f.ts_publish = now_ns();
                        self.queue_frame(&f, Some(&info));
                    }
                }
                vec![ack]
            }
            Request::Unsubscribe {
                id,
                symbols,
                channels,
            } => {
                for s in &symbols {
                    self.subs.remove(s, &channels);
                }
                vec![protocol::ack(
                    "unsubscribed",
                    &id,
                    &symbols,
                    &channels,
                    self.encoding,
                )]
            }
            Request::Ping { id } => vec![protocol::pong(&id, now_ns())],
            Request::List { id } => vec![protocol::instruments(&id, &self.ctx.registry.served())],
        }
    }

    /// Queues a frame made by the session itself (definitions, heartbeats).
    fn queue_frame(&mut self, f: &Frame, info: Option<&tickwire_sdk::wire::InstrumentInfo>) {
        match self.encoding {
            Encoding::Binary => {
                let bytes = self.encoder.encode(f);
                self.batch.push(bytes);
            }
            Encoding::Json => {
                self.scratch.clear();
                let bytes = self.encoder.encode(f).to_vec();
                if let Ok(archived) = tickwire_sdk::wire::access(&bytes) {
                    json::render(archived, info, JsonOptions::default(), &mut self.scratch);
                    self.texts
                        .push(String::from_utf8_lossy(&self.scratch).into_owned().into());
                }
            }
        }
    }

    async fn on_tick(&mut self) -> Option<End> {
        let ctx = self.ctx.clone();
        let cfg = &ctx.config;
        if self.last_heard.elapsed() > cfg.idle_timeout {
            let reason = format!(
                "idle for {:?}: no message or pong from the client",
                cfg.idle_timeout
            );
            self.close(CloseCode::Policy, reason).await;
            return Some(End::Gone);
        }
        if !self.subs.is_empty() && self.last_send.elapsed() >= cfg.heartbeat_every {
            let mut f = Frame {
                venue: 0,
                instrument: 0,
                flags: 0,
                seq: 0,
                ts_exchange: 0,
                ts_recv: 0,
                ts_publish: now_ns(),
                updates: 1,
                body: Body::Heartbeat,
            };
            f.ts_recv = f.ts_publish;
            self.queue_frame(&f, None);
            if let Err(end) = self.send_pending().await {
                return Some(end);
            }
        }
        // A WebSocket ping now and then keeps middleboxes and the client's idle timer happy.
        if self.last_heard.elapsed() > cfg.ping_every
            && self
                .sink
                .send(Message::Ping(Vec::new().into()))
                .await
                .is_err()
        {
            return Some(End::Gone);
        }
        None
    }
}
