//! Delivery to WebSocket connections: the registry of connections with what each listens to,
//! and the pacing clock that maps simulated time to wall-clock time.
//!
//! Each connection has a bounded queue. An event is rendered at most once per (time unit,
//! combined) variant and the same bytes are queued to every connection that wants that
//! variant. A queue that is full means a client that does not keep up: it is closed (1008,
//! "slow consumer") and never slows the replay or anyone else.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use super::dialect::{self, BookSource, Ctx, Session};
use super::market::Emitted;
use super::render;
use super::stream::{Catalog, TimeUnit};
use crate::clock::now_ns;

/// Messages a connection may have queued before it is closed as a slow consumer.
pub const QUEUE_CAPACITY: usize = 8192;

fn slow_consumer() -> CloseReason {
    CloseReason::new(
        1008,
        format!(
            "slow consumer: {QUEUE_CAPACITY} messages queued and unread; read faster or subscribe to less"
        ),
    )
}

/// Why the server closes a connection: a WebSocket close code and a reason (<= 123 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// RFC 6455 close code.
    pub code: u16,
    /// Human-readable reason.
    pub reason: String,
}

impl CloseReason {
    /// A close reason, the text cut to the 123 bytes a close frame can carry.
    pub fn new(code: u16, reason: impl Into<String>) -> CloseReason {
        let mut reason = reason.into();
        if reason.len() > 123 {
            let mut cut = 123;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
        }
        CloseReason { code, reason }
    }
}

struct Conn {
    id: u64,
    peer: SocketAddr,
    tx: mpsc::Sender<Utf8Bytes>,
    kill: Option<oneshot::Sender<CloseReason>>,
    masks: Vec<u8>,
    unit: TimeUnit,
    combined: bool,
    /// A venue dialect's session (the connection is not a Binance one then).
    session: Option<Box<dyn Session>>,
}

/// The connections and what each listens to.
#[derive(Default)]
pub struct Registry {
    conns: Vec<Conn>,
    next_id: u64,
    /// Messages queued to connections so far.
    pub messages: u64,
    /// Connections closed because their queue overflowed.
    pub closed_slow: u64,
}

/// What [`Registry::register`] needs to know about a new connection.
pub struct NewConn {
    /// Peer address (for logs).
    pub peer: SocketAddr,
    /// Its queue.
    pub tx: mpsc::Sender<Utf8Bytes>,
    /// Fired when the server decides to close it.
    pub kill: oneshot::Sender<CloseReason>,
    /// Per-symbol subscription masks.
    pub masks: Vec<u8>,
    /// Time unit of `E`/`T`.
    pub unit: TimeUnit,
    /// Combined-stream envelope on or off.
    pub combined: bool,
    /// A venue dialect's session, for connections on a dialect's paths.
    pub session: Option<Box<dyn Session>>,
}

impl Registry {
    /// Adds a connection; returns its id.
    pub fn register(&mut self, c: NewConn) -> u64 {
        self.next_id += 1;
        self.conns.push(Conn {
            id: self.next_id,
            peer: c.peer,
            tx: c.tx,
            kill: Some(c.kill),
            masks: c.masks,
            unit: c.unit,
            combined: c.combined,
            session: c.session,
        });
        self.next_id
    }

    /// Runs `f` on connection `id`'s dialect session and queues what it produced. Returns
    /// `Err` with the reason if the session asked to close the connection or its queue is full;
    /// `Ok(false)` if there is no such connection or session.
    pub fn with_session(
        &mut self,
        id: u64,
        f: impl FnOnce(&mut dyn Session, &mut Vec<String>) -> Result<(), CloseReason>,
    ) -> Result<bool, CloseReason> {
        let Some(c) = self.conns.iter_mut().find(|c| c.id == id) else {
            return Ok(false);
        };
        let Some(session) = c.session.as_mut() else {
            return Ok(false);
        };
        let mut out = Vec::new();
        let result = f(session.as_mut(), &mut out);
        for m in out {
            if c.tx.try_send(Utf8Bytes::from(m)).is_err() {
                return Err(slow_consumer());
            }
            self.messages += 1;
        }
        result.map(|()| true)
    }

    /// Hands `events` to every dialect session, in order, and queues what they produce. A
    /// session whose queue is full is closed as a slow consumer.
    pub fn deliver_sessions(
        &mut self,
        catalog: &Catalog,
        books: &dyn BookSource,
        events: &[Emitted],
        wall_ns: impl Fn(u64) -> u64,
    ) {
        if !self.conns.iter().any(|c| c.session.is_some()) {
            return;
        }
        let ctx = Ctx {
            catalog,
            books,
            now_ns: now_ns(),
        };
        let mut out = Vec::new();
        let mut drop_ids = Vec::new();
        for c in &mut self.conns {
            let Some(session) = c.session.as_mut() else {
                continue;
            };
            if c.kill.is_none() {
                continue;
            }
            for e in events.iter().filter(|e| dialect::mapped(e.key.kind)) {
                session.on_event(e, wall_ns(e.at), &ctx, &mut out);
            }
            for m in out.drain(..) {
                match c.tx.try_send(Utf8Bytes::from(m)) {
                    Ok(()) => self.messages += 1,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        self.closed_slow += 1;
                        warn!(peer = %c.peer, "simulator: closing a slow WebSocket client: {QUEUE_CAPACITY} messages queued and not read");
                        if let Some(kill) = c.kill.take() {
                            let _ = kill.send(slow_consumer());
                        }
                        drop_ids.push(c.id);
                        break;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        drop_ids.push(c.id);
                        break;
                    }
                }
            }
            out.clear();
        }
        if !drop_ids.is_empty() {
            self.conns.retain(|c| !drop_ids.contains(&c.id));
        }
    }

    /// Removes a connection (when its task ends).
    pub fn remove(&mut self, id: u64) {
        self.conns.retain(|c| c.id != id);
    }

    /// Replaces what a connection listens to.
    pub fn update(&mut self, id: u64, masks: Vec<u8>, combined: bool) {
        if let Some(c) = self.conns.iter_mut().find(|c| c.id == id) {
            c.masks = masks;
            c.combined = combined;
        }
    }

    /// Streams subscribed, summed over connections (a stream is one symbol's kind).
    pub fn streams_subscribed(&self) -> u32 {
        self.conns
            .iter()
            .flat_map(|c| c.masks.iter())
            .map(|m| m.count_ones())
            .sum()
    }

    /// Connections currently registered.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether no connection is registered.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Closes every connection with `reason` (shutdown).
    pub fn close_all(&mut self, reason: &CloseReason) {
        for c in &mut self.conns {
            if let Some(kill) = c.kill.take() {
                let _ = kill.send(reason.clone());
            }
        }
        self.conns.clear();
    }

    /// Queues `events` to every connection subscribed to their streams. `wall_ns` maps an
    /// event's simulated time to its wall-clock time (ns since the epoch).
    pub fn deliver(&mut self, catalog: &Catalog, events: &[Emitted], wall_ns: impl Fn(u64) -> u64) {
        if self.conns.is_empty() {
            return;
        }
        let mut drop_ids: Vec<u64> = Vec::new();
        let mut buf = Vec::with_capacity(512);
        for e in events {
            let Some(spec) = catalog.spec(e.key.symbol) else {
                continue;
            };
            let bit = e.key.kind.bit();
            let sym = e.key.symbol as usize;
            let time = wall_ns(e.at);
            let mut cache: [Option<Utf8Bytes>; 6] = Default::default();
            for c in &mut self.conns {
                if c.kill.is_none() || c.masks.get(sym).is_none_or(|m| m & bit == 0) {
                    continue;
                }
                let slot = c.unit.index() * 2 + usize::from(c.combined);
                let msg = cache[slot]
                    .get_or_insert_with(|| {
                        buf.clear();
                        render::event(
                            &mut buf,
                            spec,
                            e.key.kind.suffix(),
                            &e.event,
                            time,
                            c.unit,
                            c.combined,
                            catalog.market(),
                        );
                        Utf8Bytes::from(render::into_string(std::mem::take(&mut buf)))
                    })
                    .clone();
                match c.tx.try_send(msg) {
                    Ok(()) => self.messages += 1,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        self.closed_slow += 1;
                        warn!(
                            peer = %c.peer,
                            "simulator: closing a slow WebSocket client: {QUEUE_CAPACITY} messages queued and not read"
                        );
                        if let Some(kill) = c.kill.take() {
                            let _ = kill.send(CloseReason::new(
                                1008,
                                format!(
                                    "slow consumer: {QUEUE_CAPACITY} messages queued and unread; read faster or subscribe to less"
                                ),
                            ));
                        }
                        drop_ids.push(c.id);
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => drop_ids.push(c.id),
                }
            }
        }
        if !drop_ids.is_empty() {
            self.conns.retain(|c| !drop_ids.contains(&c.id));
        }
    }
}

/// Maps simulated time to wall-clock time at the configured speed, across pauses.
#[derive(Debug, Clone)]
pub struct PaceClock {
    speed: f64,
    /// While running: (instant, wall ns, simulated ns) at the last (re)start.
    anchor: Option<(Instant, u64, u64)>,
    /// Simulated time reached when paused.
    paused_at: u64,
}

impl PaceClock {
    /// A paused clock at simulated time 0. `speed` > 0; infinite = as fast as possible.
    pub fn new(speed: f64) -> PaceClock {
        PaceClock {
            speed,
            anchor: None,
            paused_at: 0,
        }
    }

    /// Whether the clock runs.
    pub fn running(&self) -> bool {
        self.anchor.is_some()
    }

    /// Starts (or resumes) the clock now, continuing from where it paused.
    pub fn resume(&mut self, now: Instant) {
        if self.anchor.is_none() {
            self.anchor = Some((now, now_ns(), self.paused_at));
        }
    }

    /// Pauses the clock now. `next_due` is the next unprocessed item's time (used at
    /// infinite speed, where simulated time jumps from item to item).
    pub fn pause(&mut self, now: Instant, next_due: Option<u64>) {
        if let Some((at, _, sim)) = self.anchor.take() {
            self.paused_at = if self.speed.is_finite() {
                sim + (now.saturating_duration_since(at).as_nanos() as f64 * self.speed) as u64
            } else {
                next_due.unwrap_or(sim).max(sim)
            };
        }
    }

    /// When an item at simulated time `sim` is due (`None` while paused).
    pub fn due(&self, sim: u64) -> Option<Instant> {
        let (at, _, origin) = self.anchor?;
        if !self.speed.is_finite() {
            return Some(at);
        }
        let wait = (sim.saturating_sub(origin) as f64 / self.speed) as u64;
        Some(at + Duration::from_nanos(wait))
    }

    /// The wall-clock time (ns since the epoch) at which simulated time `sim` is scheduled:
    /// the intended send time. At infinite speed, the current time.
    pub fn wall_ns(&self, sim: u64) -> u64 {
        match self.anchor {
            Some((_, wall, origin)) if self.speed.is_finite() => {
                wall + (sim.saturating_sub(origin) as f64 / self.speed) as u64
            }
            _ => now_ns(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::market::Event;
    use super::super::stream::{StreamKey, StreamKind, SymbolSpec};
    use super::*;

    fn catalog() -> Catalog {
        let mut c = Catalog::new();
        c.add(SymbolSpec::new("BTCUSDT", 10_000_000, 10_000))
            .unwrap();
        c
    }

    fn trade(id: u64) -> Emitted {
        Emitted {
            key: StreamKey {
                symbol: 0,
                kind: StreamKind::Trade,
            },
            at: 0,
            event: Event::Trade {
                id,
                price: 1_000_000_000,
                qty: 1_000_000_000,
                buyer_maker: false,
            },
        }
    }

    fn conn(
        r: &mut Registry,
        cap: usize,
        masks: Vec<u8>,
        combined: bool,
    ) -> (
        u64,
        mpsc::Receiver<Utf8Bytes>,
        oneshot::Receiver<CloseReason>,
    ) {
        let (tx, rx) = mpsc::channel(cap);
        let (kill, kill_rx) = oneshot::channel();
        let id = r.register(NewConn {
            peer: "127.0.0.1:1".parse().unwrap(),
            tx,
            kill,
            masks,
            unit: TimeUnit::Millisecond,
            combined,
            session: None,
        });
        (id, rx, kill_rx)
    }

    #[test]
    fn delivers_by_subscription_and_drops_slow_clients() {
        let c = catalog();
        let mut r = Registry::default();
        let (_, mut fast, _) = conn(&mut r, 100, vec![StreamKind::Trade.bit()], true);
        let (_, mut slow, mut slow_kill) = conn(&mut r, 2, vec![StreamKind::Trade.bit()], false);
        let (_, mut none, _) = conn(&mut r, 100, vec![StreamKind::Depth100ms.bit()], true);
        let events: Vec<Emitted> = (1..=5).map(trade).collect();
        r.deliver(&c, &events, |_| 1_000_000);
        let mut got = Vec::new();
        while let Ok(m) = fast.try_recv() {
            got.push(m);
        }
        assert_eq!(got.len(), 5);
        assert!(
            got[0]
                .as_str()
                .starts_with(r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"#)
        );
        assert!(
            slow.try_recv()
                .unwrap()
                .as_str()
                .starts_with(r#"{"e":"trade""#)
        );
        let reason = slow_kill.try_recv().unwrap();
        assert_eq!(reason.code, 1008);
        assert!(reason.reason.starts_with("slow consumer"));
        assert!(none.try_recv().is_err());
        assert_eq!(r.len(), 2);
        assert_eq!(r.closed_slow, 1);
    }

    #[test]
    fn clock_maps_time_and_pauses() {
        let t0 = Instant::now();
        let mut c = PaceClock::new(2.0);
        assert!(c.due(0).is_none());
        c.resume(t0);
        assert_eq!(c.due(1_000_000_000), Some(t0 + Duration::from_millis(500)));
        c.pause(t0 + Duration::from_millis(100), None);
        c.resume(t0 + Duration::from_secs(10));
        // 100 ms of wall time at 2x = 200 ms simulated before the pause.
        assert_eq!(
            c.due(1_200_000_000),
            Some(t0 + Duration::from_secs(10) + Duration::from_millis(500))
        );
        let mut fast = PaceClock::new(f64::INFINITY);
        fast.resume(t0);
        assert_eq!(fast.due(u64::MAX / 2), Some(t0));
        assert!(CloseReason::new(1000, "x".repeat(300)).reason.len() <= 123);
    }
}
