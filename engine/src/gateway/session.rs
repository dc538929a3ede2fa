//! One client connection: the tokio shell around [`super::delivery::Delivery`].
//!
//! The session task reads the broadcast ring at its own pace with its own cursor and writes
//! what delivery queues in batches: binary clients get one WebSocket message per batch (a
//! `wire` batch of rkyv frames), JSON clients one text message per frame; either way one flush
//! per batch. The flush is never awaited blindly: while the client's socket has not taken the
//! last batch, the session keeps reading the ring and delivery folds (conflate, interval) or,
//! for a lossless client, the session stops reading; a lossless client that falls a whole
//! ring behind is closed with [`CLOSE_SLOW_CONSUMER`] and how far behind it was. A socket
//! that takes nothing for the write timeout is dropped. Nothing a client does slows the ring
//! writer or another client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tracing::{debug, info};

use tickwire_feed::clock::now_ns;
use tickwire_sdk::wire::{Body, Frame};

use std::collections::HashSet;

use tickwire_sdk::wire::{Channel, instrument_id};

use super::GatewayCtx;
use super::delivery::{Delivery, MAX_HELD_BYTES};
use super::protocol::{self, Request, SymbolSpec};
use crate::ring::{Cursor, Mark, Read, pin};

/// Close code sent to a client that fell too far behind (application range 4000-4999).
pub const CLOSE_SLOW_CONSUMER: u16 = 4001;

/// Entries examined per pump before the task yields to others.
const SCAN_LIMIT: usize = 8192;

/// What a client connection runs over: plain TCP or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

type WsSink<S> = SplitSink<WebSocketStream<S>, Message>;

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
pub(crate) async fn run<S: Io>(ws: WebSocketStream<S>, peer: SocketAddr, ctx: Arc<GatewayCtx>) {
    let (sink, stream) = ws.split();
    let (in_tx, in_rx) = mpsc::channel(64);
    let reader = tokio::spawn(read_loop(stream, in_tx));
    let mut session = Session {
        peer,
        cursor: ctx.ring.cursor_at_head(),
        delivery: Delivery::new(ctx.lvc.clone(), ctx.registry.clone()),
        mark: None,
        subscribed: false,
        wanted: HashSet::new(),
        busy_since: None,
        last_send: Instant::now(),
        last_heard: Instant::now(),
        sink,
        ctx,
    };
    let end = session.run(in_rx).await;
    reader.abort();
    session.mark = None;
    if let Some(interest) = &session.ctx.config.interest {
        interest.0.unwant(session.wanted.drain().collect());
    }
    let stats = session.delivery.stats;
    let g = &session.ctx.stats;
    if session.subscribed {
        g.subscribed.fetch_sub(1, Ordering::Relaxed);
    }
    g.active.fetch_sub(1, Ordering::Relaxed);
    g.folded.fetch_add(stats.folded, Ordering::Relaxed);
    g.conflated.fetch_add(stats.conflated, Ordering::Relaxed);
    debug!(%peer, ?end, ?stats, "client session ended");
}

async fn read_loop<S: Io>(mut stream: SplitStream<WebSocketStream<S>>, tx: mpsc::Sender<Incoming>) {
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

/// What woke the session up.
enum Wake {
    Ring,
    Shutdown,
    Incoming(Option<Incoming>),
    Flushed(Result<(), WsError>),
    Tick,
    Due,
}

struct Session<S: Io> {
    peer: SocketAddr,
    ctx: Arc<GatewayCtx>,
    sink: WsSink<S>,
    cursor: Cursor,
    delivery: Delivery,
    /// This session's ring position for a writer that waits for lossless readers (replay).
    mark: Option<Mark>,
    /// Counted in `GatewayStats::subscribed`.
    subscribed: bool,
    /// Streams asked of the gateway's [`super::Interest`] (a cluster gateway node).
    wanted: HashSet<(u32, Channel)>,
    /// When the write still outstanding started (the socket has not taken it yet).
    busy_since: Option<Instant>,
    last_send: Instant,
    last_heard: Instant,
}

impl<S: Io> Session<S> {
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
            if self.busy_since.is_some() {
                match self.sink.flush().now_or_never() {
                    Some(Ok(())) => self.busy_since = None,
                    Some(Err(e)) => {
                        debug!(peer = %self.peer, error = %e, "write failed");
                        return End::Gone;
                    }
                    None => {}
                }
            }
            if let Some(since) = self.busy_since
                && since.elapsed() > self.ctx.config.write_timeout
            {
                self.ctx.stats.slow_closed.fetch_add(1, Ordering::Relaxed);
                info!(peer = %self.peer, timeout = ?self.ctx.config.write_timeout, "client socket not writable; dropping it (slow consumer)");
                return End::SlowConsumer;
            }
            let busy = self.busy_since.is_some();
            let read = match self.read_ring(busy).await {
                Ok(n) => n,
                Err(end) => return end,
            };
            let mut wrote = false;
            if busy {
                self.ctx
                    .stats
                    .max_held_bytes
                    .fetch_max(self.delivery.queued_bytes() as u64, Ordering::Relaxed);
            }
            if !busy {
                self.delivery.emit_due(Instant::now());
                if self.delivery.has_output() {
                    if let Err(end) = self.write_out() {
                        return end;
                    }
                    wrote = true;
                }
            } else if self.delivery.queued_bytes() > MAX_HELD_BYTES {
                self.ctx.stats.slow_closed.fetch_add(1, Ordering::Relaxed);
                info!(peer = %self.peer, "client not reading while control frames pile up; dropping it (slow consumer)");
                return End::SlowConsumer;
            }
            if read > 0 || wrote {
                tokio::task::yield_now().await;
                continue;
            }
            // Nothing to do: wait for the ring, the client, the socket or a timer.
            let busy = self.busy_since.is_some();
            let read_ring = !(busy && self.delivery.subs.is_lossless());
            let notified = ring.notify().notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if read_ring && ring.head() > self.cursor.position() {
                continue;
            }
            let due = self.delivery.interval_wait(Instant::now());
            let wake = {
                let sink = &mut self.sink;
                tokio::select! {
                    _ = &mut notified, if read_ring => Wake::Ring,
                    _ = shutdown.changed() => Wake::Shutdown,
                    m = incoming.recv() => Wake::Incoming(m),
                    r = std::future::poll_fn(|cx| sink.poll_flush_unpin(cx)), if busy => Wake::Flushed(r),
                    _ = tick.tick() => Wake::Tick,
                    _ = tokio::time::sleep(due.unwrap_or_default()), if due.is_some() => Wake::Due,
                }
            };
            match wake {
                Wake::Ring | Wake::Shutdown | Wake::Due => {}
                Wake::Incoming(None) => return End::Gone,
                Wake::Incoming(Some(m)) => {
                    if let Some(end) = self.on_incoming(m).await {
                        return end;
                    }
                }
                Wake::Flushed(Ok(())) => self.busy_since = None,
                Wake::Flushed(Err(e)) => {
                    debug!(peer = %self.peer, error = %e, "write failed");
                    return End::Gone;
                }
                Wake::Tick => {
                    if let Some(end) = self.on_tick().await {
                        return end;
                    }
                }
            }
        }
    }

    /// Reads what the ring has for this client (up to a batch), unless it is lossless and its
    /// socket is busy. Returns entries read.
    async fn read_ring(&mut self, busy: bool) -> Result<usize, End> {
        let lossless = self.delivery.subs.is_lossless();
        if busy && lossless {
            let behind = self.ctx.ring.head().saturating_sub(self.cursor.position());
            if behind > self.ctx.ring.capacity() {
                return Err(self.slow_consumer(behind - self.ctx.ring.capacity()).await);
            }
            return Ok(0);
        }
        let max_frames = self.ctx.config.max_batch_frames;
        let max_bytes = self.ctx.config.max_batch_bytes;
        let mut read = 0;
        let mut lapped = None;
        {
            let guard = pin();
            let now = Instant::now();
            for _ in 0..SCAN_LIMIT {
                match self.ctx.ring.read(&mut self.cursor, &guard) {
                    Read::Entry(e) => {
                        read += 1;
                        self.delivery.on_entry(e, busy, now);
                        if !busy
                            && (self.delivery.queued() >= max_frames
                                || self.delivery.queued_bytes() >= max_bytes)
                        {
                            break;
                        }
                    }
                    Read::Empty => break,
                    Read::Lapped { missed } => {
                        if lossless {
                            lapped = Some(missed);
                            break;
                        }
                        let skipped = self.ctx.ring.skip_to_oldest(&mut self.cursor);
                        self.delivery.lapped(skipped);
                        self.ctx.stats.lapped.fetch_add(skipped, Ordering::Relaxed);
                    }
                }
            }
        }
        if let Some(missed) = lapped {
            return Err(self.slow_consumer(missed).await);
        }
        if let Some(mark) = &self.mark {
            mark.set(self.cursor.position());
        }
        Ok(read)
    }

    /// On a cluster gateway node: before a subscribe is handled, makes its streams flow and
    /// waits until their state is in the local cache, so the client gets the same snapshot
    /// the embedded server would send.
    async fn want_requested(&mut self, text: &str) {
        let Some(interest) = self.ctx.config.interest.clone() else {
            return;
        };
        let Ok(Request::Subscribe {
            symbols, channels, ..
        }) = protocol::parse(text)
        else {
            return;
        };
        let served = self.ctx.registry.served_instruments();
        let mut ids = Vec::new();
        for spec in &symbols {
            match spec {
                SymbolSpec::Exact(s) => ids.push(instrument_id(s.venue, &s.symbol)),
                SymbolSpec::Pattern { .. } => ids.extend(
                    served
                        .iter()
                        .filter(|(v, s)| spec.matches(*v, s))
                        .map(|(v, s)| instrument_id(*v, s)),
                ),
            }
        }
        let new: Vec<(u32, Channel)> = ids
            .into_iter()
            .filter(|id| self.ctx.registry.is_served(*id))
            .flat_map(|id| {
                channels
                    .iter()
                    .copied()
                    .chain([Channel::Control])
                    .map(move |c| (id, c))
            })
            .filter(|k| self.wanted.insert(*k))
            .collect();
        if !new.is_empty() {
            interest.0.want(new).await;
        }
    }

    /// On a cluster gateway node: keeps what this session asked of the interest equal to what
    /// it is subscribed to (patterns include instruments announced since).
    fn sync_interest(&mut self) {
        let Some(interest) = self.ctx.config.interest.clone() else {
            return;
        };
        let subs = &self.delivery.subs;
        let mut current: HashSet<(u32, Channel)> = subs.streams().collect();
        let patterns: Vec<(SymbolSpec, Vec<Channel>)> = subs
            .patterns()
            .map(|(s, c)| (s.clone(), c.to_vec()))
            .collect();
        if !patterns.is_empty() {
            for (v, s) in self.ctx.registry.served_instruments() {
                for (spec, channels) in &patterns {
                    if spec.matches(v, &s) {
                        let id = instrument_id(v, &s);
                        current
                            .extend(channels.iter().chain(&[Channel::Control]).map(|c| (id, *c)));
                    }
                }
            }
        }
        let gone: Vec<(u32, Channel)> = self.wanted.difference(&current).copied().collect();
        let new: Vec<(u32, Channel)> = current.difference(&self.wanted).copied().collect();
        self.wanted = current;
        if !gone.is_empty() {
            interest.0.unwant(gone);
        }
        if !new.is_empty() {
            tokio::spawn(interest.0.want(new));
        }
    }

    /// After a control request: keeps `GatewayStats::subscribed` and this session's ring
    /// mark (only lossless sessions hold a writer that waits for readers) up to date.
    fn update_counts(&mut self) {
        let subscribed = !self.delivery.subs.is_empty();
        if subscribed != self.subscribed {
            self.subscribed = subscribed;
            let g = &self.ctx.stats.subscribed;
            if subscribed {
                g.fetch_add(1, Ordering::Relaxed);
            } else {
                g.fetch_sub(1, Ordering::Relaxed);
            }
        }
        match (&self.ctx.config.marks, self.delivery.subs.is_lossless()) {
            (Some(marks), true) if self.mark.is_none() => {
                self.mark = Some(marks.register(self.cursor.position()));
            }
            (_, false) => self.mark = None,
            _ => {}
        }
    }

    /// Feeds what delivery queued and starts one flush; if the socket does not take it all at
    /// once, the session is busy until it does.
    fn write_out(&mut self) -> Result<(), End> {
        let frames = self.delivery.queued() as u64;
        let messages = self.delivery.take_output();
        let n = messages.len() as u64;
        for m in messages {
            // The sink's buffer is empty here (not busy), so feeding completes at once.
            match self.sink.feed(m).now_or_never() {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    debug!(peer = %self.peer, error = %e, "write failed");
                    return Err(End::Gone);
                }
                None => {
                    // The buffer filled up mid-batch: the rest waits in tungstenite's buffer
                    // state; treat the socket as busy.
                    self.busy_since.get_or_insert_with(Instant::now);
                }
            }
        }
        self.ctx
            .stats
            .frames_sent
            .fetch_add(frames, Ordering::Relaxed);
        self.ctx.stats.messages_sent.fetch_add(n, Ordering::Relaxed);
        self.last_send = Instant::now();
        match self.sink.flush().now_or_never() {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                debug!(peer = %self.peer, error = %e, "write failed");
                return Err(End::Gone);
            }
            None => {
                self.busy_since.get_or_insert_with(Instant::now);
            }
        }
        Ok(())
    }

    /// Waits (bounded) for the outstanding write to complete.
    async fn drain_writes(&mut self, limit: Duration) -> bool {
        if self.busy_since.is_none() {
            return true;
        }
        match tokio::time::timeout(limit, self.sink.flush()).await {
            Ok(Ok(())) => {
                self.busy_since = None;
                true
            }
            _ => false,
        }
    }

    /// Server shutdown: deliver what the ring still holds for this client (the feeds' final
    /// statuses among it), then close with 1001.
    async fn going_away(&mut self) -> End {
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if !self.drain_writes(Duration::from_secs(1)).await {
                break;
            }
            match self.read_ring(false).await {
                Ok(_) => {}
                Err(end) => return end,
            }
            self.delivery.emit_due(Instant::now());
            if !self.delivery.has_output() {
                break;
            }
            if let Err(end) = self.write_out() {
                return end;
            }
        }
        self.drain_writes(Duration::from_secs(1)).await;
        self.close(CloseCode::Away, "server shutting down".to_string())
            .await;
        End::ServerShutdown
    }

    async fn slow_consumer(&mut self, missed: u64) -> End {
        self.ctx.stats.slow_closed.fetch_add(1, Ordering::Relaxed);
        let reason = format!(
            "slow consumer: {missed} frames behind (ring holds {}); read faster or use policy conflate",
            self.ctx.ring.capacity()
        );
        info!(peer = %self.peer, %reason, "closing client");
        // The close frame queues behind what the client has not read yet: give it the write
        // timeout to read up to it, so it learns why.
        let frame = CloseFrame {
            code: CloseCode::from(CLOSE_SLOW_CONSUMER),
            reason: clip_reason(reason).into(),
        };
        let _ = tokio::time::timeout(
            self.ctx.config.write_timeout,
            self.sink.send(Message::Close(Some(frame))),
        )
        .await;
        End::SlowConsumer
    }

    async fn close(&mut self, code: CloseCode, reason: String) {
        let frame = CloseFrame {
            code,
            reason: clip_reason(reason).into(),
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
                self.want_requested(t.as_str()).await;
                self.delivery.on_request(
                    t.as_str(),
                    self.ctx.config.max_subscriptions,
                    Instant::now(),
                );
                self.update_counts();
                self.sync_interest();
                // Replies go out with the next write (at once unless the socket is busy).
                None
            }
            Incoming::Ping => {
                // tungstenite queued the pong; it goes out with the next flush.
                if self.busy_since.is_none() {
                    self.busy_since = Some(Instant::now());
                }
                None
            }
            Incoming::Alive => None,
            Incoming::Close => {
                // tungstenite queued the echo of the client's close frame; send it.
                let _ = tokio::time::timeout(Duration::from_secs(1), self.sink.flush()).await;
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

    async fn on_tick(&mut self) -> Option<End> {
        let ctx = self.ctx.clone();
        let cfg = &ctx.config;
        if cfg.interest.is_some() && self.delivery.subs.patterns().next().is_some() {
            self.sync_interest();
        }
        if self.last_heard.elapsed() > cfg.idle_timeout {
            let reason = format!(
                "idle for {:?}: no message or pong from the client",
                cfg.idle_timeout
            );
            self.close(CloseCode::Policy, reason).await;
            return Some(End::Gone);
        }
        if self.busy_since.is_some() {
            return None;
        }
        if !self.delivery.subs.is_empty() && self.last_send.elapsed() >= cfg.heartbeat_every {
            let now = now_ns();
            let f = Frame {
                venue: 0,
                instrument: 0,
                flags: 0,
                seq: 0,
                ts_exchange: 0,
                ts_recv: now,
                ts_publish: now,
                updates: 1,
                body: Body::Heartbeat,
            };
            self.delivery.push_frame(&f, None);
        }
        // A WebSocket ping now and then keeps middleboxes and the client's idle timer happy.
        if self.last_heard.elapsed() > cfg.ping_every {
            self.delivery_ping();
        }
        if self.delivery.has_output()
            && let Err(end) = self.write_out()
        {
            return Some(end);
        }
        None
    }

    fn delivery_ping(&mut self) {
        if self
            .sink
            .feed(Message::Ping(Vec::new().into()))
            .now_or_never()
            .is_none()
        {
            self.busy_since.get_or_insert_with(Instant::now);
        }
    }
}

/// A close reason fits a control frame: at most 123 bytes (RFC 6455 5.5), cut on a char
/// boundary.
fn clip_reason(mut reason: String) -> String {
    if reason.len() > 123 {
        let mut end = 120;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        reason.push_str("...");
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::clip_reason;

    #[test]
    fn close_reasons_fit_a_control_frame() {
        assert_eq!(clip_reason("short".into()), "short");
        let long = clip_reason("é".repeat(100));
        assert!(long.len() <= 123 && long.ends_with("..."));
    }
}
