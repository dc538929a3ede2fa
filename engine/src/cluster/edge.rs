//! The gateway side of the cluster (`serve --role gateway`): frames of the streams its clients
//! want come from NATS, go through the [`Arbiter`] (one source per stream, failover, holes
//! made visible) and into the local sequencer as already-sequenced frames; from there the
//! ring, cache and sessions work exactly as in the embedded server.
//!
//! Interest follows subscriptions: a session's subscribe makes the edge subscribe in NATS to
//! the instrument's subjects and fetch its state from an ingest node before the session
//! answers, so a client gets the same snapshot it would get from the embedded server.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::Message;
use futures_util::StreamExt;
use tickwire_feed::clock::now_ns;
use tickwire_sdk::wire::{
    Batch, Body, Channel, Encoder, Frame, InstrumentInfo, Status, Venue, flags,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::arbiter::{Arbiter, Out, Source};
use super::directory::Directory;
use super::subjects;
use crate::gateway::Interest;
use crate::ingest::IngestRing;
use crate::lvc::{self, Lvc};
use crate::registry::Registry;

/// How long a subscribe waits for an instrument's state from the ingest side.
const WARM_UP_LIMIT: Duration = Duration::from_secs(3);
/// How long a snapshot request waits for its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Counters of the edge.
#[derive(Debug, Default)]
pub struct EdgeStats {
    /// Frames received from NATS.
    pub received: AtomicU64,
    /// Frames handed to the local sequencer.
    pub forwarded: AtomicU64,
    /// Frames dropped as duplicates or from lost sources.
    pub dropped: AtomicU64,
    /// Messages that were not valid frames (counted, logged, skipped).
    pub invalid: AtomicU64,
    /// Snapshots requested.
    pub snapshots: AtomicU64,
    /// Markers (stale, gap, resynced) sent to clients.
    pub markers: AtomicU64,
    /// Instruments subscribed in NATS now.
    pub streams: AtomicU64,
}

/// What the merger is told. `at`: when the message came off the NATS connection, ns (a
/// backlog in front of the merger must not make a node look silent).
enum Cmd {
    Frame(Source, Frame, Box<[u8]>, u64),
    Snapshot(Source, u32, Vec<(Frame, Box<[u8]>)>, u64),
    Heartbeat(Source, u64),
    Want(Vec<(u32, Channel)>),
    Unwant(Vec<(u32, Channel)>),
    LinkDown,
    LinkUp,
}

/// The running edge; also the gateway's [`Interest`].
pub struct Edge {
    client: async_nats::Client,
    cmds: mpsc::UnboundedSender<Cmd>,
    registry: Arc<Registry>,
    lvc: Arc<Lvc>,
    /// Per stream: sessions that want it.
    wanted: Mutex<HashMap<(u32, Channel), usize>>,
    /// Per instrument: its NATS subscription task (one wildcard subscription for all its
    /// channels, so they reach the arbiter in the order the ingest node published them).
    subs: Mutex<HashMap<u32, JoinHandle<()>>>,
    /// Streams whose state is in the local cache (not waiting for a snapshot), with the seq
    /// it stands at.
    ready: Arc<Mutex<HashMap<(u32, Channel), u64>>>,
    has_directory: Arc<AtomicBool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Counters.
    pub stats: Arc<EdgeStats>,
}

/// Connects the edge: `client` to the cluster, `input` to the local sequencer.
/// `link_events` carries the NATS connection's ups (true) and downs (false).
pub async fn start(
    client: async_nats::Client,
    link_events: mpsc::UnboundedReceiver<bool>,
    input: Arc<IngestRing>,
    registry: Arc<Registry>,
    lvc: Arc<Lvc>,
) -> anyhow::Result<Arc<Edge>> {
    let (cmds, cmd_rx) = mpsc::unbounded_channel();
    let stats = Arc::new(EdgeStats::default());
    let ready = Arc::new(Mutex::new(HashMap::new()));
    let has_directory = Arc::new(AtomicBool::new(false));
    let nodes = client
        .subscribe(subjects::NODES)
        .await
        .map_err(|e| anyhow::anyhow!("subscribing to {}: {e}", subjects::NODES))?;
    let mut tasks = vec![
        tokio::spawn(directories(
            nodes,
            cmds.clone(),
            input.clone(),
            registry.clone(),
            has_directory.clone(),
        )),
        tokio::spawn(merge(
            cmd_rx,
            client.clone(),
            registry.clone(),
            cmds.clone(),
            input,
            ready.clone(),
            stats.clone(),
        )),
    ];
    let link_cmds = cmds.clone();
    tasks.push(tokio::spawn(async move {
        let mut events = link_events;
        while let Some(up) = events.recv().await {
            let _ = link_cmds.send(if up { Cmd::LinkUp } else { Cmd::LinkDown });
        }
    }));
    // Ask every node for its directory now rather than waiting for the next announcement.
    let c = client.clone();
    tokio::spawn(async move {
        let _ = c.publish(subjects::DIR_REQUEST, "".into()).await;
    });
    Ok(Arc::new(Edge {
        client,
        cmds,
        registry,
        lvc,
        wanted: Mutex::new(HashMap::new()),
        subs: Mutex::new(HashMap::new()),
        ready,
        has_directory,
        tasks: Mutex::new(tasks),
        stats,
    }))
}

impl Edge {
    /// Waits (at most `limit`) until an ingest node has announced itself; true if one did.
    pub async fn wait_directory(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while !self.has_directory.load(Ordering::Acquire) {
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Stops every task.
    pub fn stop(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            t.abort();
        }
        let subs = std::mem::take(&mut *self.subs.lock().unwrap_or_else(|e| e.into_inner()));
        for (_, t) in subs {
            t.abort();
        }
    }

    /// Counts the streams as wanted; subscribes in NATS to the instruments not subscribed
    /// yet and returns once the server has the subscriptions (frames published after this
    /// reach us). Returns the streams wanted for the first time.
    async fn subscribe(&self, streams: &[(u32, Channel)]) -> Vec<(u32, Channel)> {
        let mut new = Vec::new();
        {
            let mut w = self.wanted.lock().unwrap_or_else(|e| e.into_inner());
            for &k in streams {
                let n = w.entry(k).or_insert(0);
                *n += 1;
                if *n == 1 {
                    new.push(k);
                }
            }
        }
        let mut ids: Vec<u32> = new.iter().map(|k| k.0).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut subscribed = false;
        for id in ids {
            if self
                .subs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(&id)
            {
                continue;
            }
            let Some(info) = self.registry.definition(id) else {
                warn!(id, "no definition for a wanted instrument; not subscribing");
                continue;
            };
            let subject = format!(
                "md.{}.{}.*",
                info.venue.name(),
                subjects::token(&info.symbol)
            );
            match self.client.subscribe(subject.clone()).await {
                Ok(sub) => {
                    let task =
                        tokio::spawn(forward_stream(sub, self.cmds.clone(), self.stats.clone()));
                    if let Some(old) = self
                        .subs
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(id, task)
                    {
                        old.abort();
                    }
                    self.stats.streams.fetch_add(1, Ordering::Relaxed);
                    subscribed = true;
                }
                Err(e) => warn!(%subject, error = %e, "NATS subscribe failed"),
            }
        }
        if subscribed {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, self.client.flush()).await;
        }
        new
    }

    /// True once every stream's state is in the local cache.
    fn warm(&self, streams: &[(u32, Channel)]) -> bool {
        let ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        streams
            .iter()
            .all(|&(id, channel)| match ready.get(&(id, channel)) {
                None => false,
                Some(0) => true,
                Some(&seq) => self
                    .lvc
                    .get(id)
                    .is_some_and(|slot| lvc::lock(&slot).seq(channel) >= seq),
            })
    }
}

impl Interest for Edge {
    fn want(
        self: Arc<Self>,
        streams: Vec<(u32, Channel)>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            let new = self.subscribe(&streams).await;
            if !new.is_empty() {
                let _ = self.cmds.send(Cmd::Want(new));
            }
            let deadline = tokio::time::Instant::now() + WARM_UP_LIMIT;
            while !self.warm(&streams) {
                if tokio::time::Instant::now() > deadline {
                    debug!(
                        ?streams,
                        "state not in the cache in time; subscribing anyway"
                    );
                    return;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    }

    fn unwant(&self, streams: Vec<(u32, Channel)>) {
        let mut gone = Vec::new();
        {
            let mut w = self.wanted.lock().unwrap_or_else(|e| e.into_inner());
            for k in streams {
                if let Some(n) = w.get_mut(&k) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        w.remove(&k);
                        gone.push(k);
                    }
                }
            }
            // Instruments no stream of which is wanted any more: leave their subjects.
            let mut subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
            for (id, _) in &gone {
                if !w.keys().any(|(i, _)| i == id)
                    && let Some(t) = subs.remove(id)
                {
                    t.abort();
                    self.stats.streams.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
        if !gone.is_empty() {
            let _ = self.cmds.send(Cmd::Unwant(gone));
        }
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        self.stop();
    }
}

fn source_of(msg: &Message) -> Option<Source> {
    let h = msg.headers.as_ref()?;
    let node = h.get(subjects::NODE)?.as_str();
    let epoch = h.get(subjects::EPOCH)?.as_str().parse().ok()?;
    Some(Source {
        node: node.into(),
        epoch,
    })
}

/// One NATS subscription: decodes each message (a wire batch of one stream's frames, or a
/// single frame) into frames for the merger.
async fn forward_stream(
    mut sub: async_nats::Subscriber,
    cmds: mpsc::UnboundedSender<Cmd>,
    stats: Arc<EdgeStats>,
) {
    while let Some(msg) = sub.next().await {
        let at = now_ns();
        let Some(src) = source_of(&msg) else {
            stats.invalid.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        // A batch (what ingest nodes send); a lone frame is accepted too (its first bytes
        // can only look like a batch header by chance, and then they fail as a batch).
        let batch = if msg
            .payload
            .starts_with(&tickwire_sdk::wire::codec::BATCH_MAGIC)
        {
            Batch::new(&msg.payload[..]).ok()
        } else {
            None
        };
        if let Some(batch) = batch {
            stats
                .received
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            for (i, f) in batch.iter().enumerate() {
                let bytes = batch.frame_bytes(i).unwrap_or_default();
                let cmd = Cmd::Frame(
                    src.clone(),
                    tickwire_sdk::wire::to_owned(f),
                    bytes.into(),
                    at,
                );
                if cmds.send(cmd).is_err() {
                    return;
                }
            }
            continue;
        }
        stats.received.fetch_add(1, Ordering::Relaxed);
        match tickwire_sdk::wire::access(&msg.payload) {
            Ok(f) => {
                let frame = tickwire_sdk::wire::to_owned(f);
                if cmds
                    .send(Cmd::Frame(src, frame, msg.payload.to_vec().into(), at))
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => {
                stats.invalid.fetch_add(1, Ordering::Relaxed);
                warn!(subject = %msg.subject, error = %e, "neither a batch of frames nor a frame on a stream subject; skipped");
            }
        }
    }
}

/// Node announcements: heartbeats for the arbiter, and instruments for the registry.
async fn directories(
    mut nodes: async_nats::Subscriber,
    cmds: mpsc::UnboundedSender<Cmd>,
    input: Arc<IngestRing>,
    registry: Arc<Registry>,
    has_directory: Arc<AtomicBool>,
) {
    let mut known: HashMap<u32, InstrumentInfo> = HashMap::new();
    while let Some(msg) = nodes.next().await {
        let at = now_ns();
        let dir = match Directory::from_json(&msg.payload) {
            Ok(d) => d,
            Err(e) => {
                warn!(subject = %msg.subject, "{e}");
                continue;
            }
        };
        for listed in &dir.instruments {
            let Some(info) = listed.info() else {
                continue;
            };
            if known.get(&info.id) != Some(&info) {
                known.insert(info.id, info.clone());
                registry.configure(info.venue, &info.symbol);
                registry.define(info.clone());
                push(&input, crate::ingest::Inbound::Define(info)).await;
            }
        }
        has_directory.store(true, Ordering::Release);
        let _ = cmds.send(Cmd::Heartbeat(
            Source {
                node: dir.node.as_str().into(),
                epoch: dir.epoch,
            },
            at,
        ));
    }
}

/// Hands one item to the local sequencer, waiting while its input is full (the sequencer
/// drains it continuously; a full input means a burst).
async fn push(input: &IngestRing, item: crate::ingest::Inbound) {
    let mut item = item;
    loop {
        match input.try_push_inbound(item) {
            Ok(()) => return,
            Err(back) => {
                item = back;
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
    }
}

/// The merger: the arbiter and what it decides, in one task.
#[allow(clippy::too_many_arguments)]
async fn merge(
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    client: async_nats::Client,
    registry: Arc<Registry>,
    cmds: mpsc::UnboundedSender<Cmd>,
    input: Arc<IngestRing>,
    ready: Arc<Mutex<HashMap<(u32, Channel), u64>>>,
    stats: Arc<EdgeStats>,
) {
    let mut arbiter = Arbiter::new();
    let mut encoder = Encoder::new();
    let mut out = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    // The latest receive time of anything fed to the arbiter: its clock while a backlog is
    // worked off, so a node is judged silent by what arrived after it, not by how late this
    // task is.
    let mut latest = 0u64;
    loop {
        let now = now_ns();
        // A frame changes which streams wait for a snapshot only when it asks for one.
        let mut frame_only = false;
        tokio::select! {
            cmd = rx.recv() => {
                let Some(cmd) = cmd else { return };
                match cmd {
                    Cmd::Frame(src, f, b, at) => {
                        latest = latest.max(at);
                        frame_only = true;
                        arbiter.on_frame(&src, f, b, at, &mut out);
                    }
                    Cmd::Snapshot(src, id, frames, at) => {
                        latest = latest.max(at);
                        arbiter.on_snapshot(&src, id, frames, at, &mut out)
                    }
                    Cmd::Heartbeat(src, at) => {
                        latest = latest.max(at);
                        arbiter.on_heartbeat(&src, at, &mut out)
                    }
                    Cmd::Want(streams) => {
                        for (id, ch) in streams {
                            arbiter.want(id, ch, now, &mut out);
                        }
                    }
                    Cmd::Unwant(streams) => {
                        let mut r = ready.lock().unwrap_or_else(|e| e.into_inner());
                        for (id, ch) in streams {
                            arbiter.unwant(id, ch);
                            r.remove(&(id, ch));
                        }
                    }
                    Cmd::LinkDown => {
                        warn!("lost the connection to NATS; clients get stale statuses");
                        arbiter.on_link_down(&mut out);
                    }
                    Cmd::LinkUp => {
                        info!("NATS connection back; taking fresh snapshots");
                        arbiter.on_link_up(now, &mut out);
                    }
                }
            }
            // With nothing queued, the wall clock; behind a backlog, the receive time of the
            // latest message handled (a queued heartbeat must not come too late).
            _ = tick.tick() => {
                let clock = if rx.is_empty() { now } else { latest };
                arbiter.tick(clock, true, &mut out)
            }
        }
        let mut forwarded = 0u64;
        for o in out.drain(..) {
            match o {
                Out::Publish(f, b) => {
                    forwarded += 1;
                    push(&input, crate::ingest::Inbound::Encoded(f, b)).await;
                }
                Out::Snapshot { instrument, node } => {
                    frame_only = false;
                    debug!(instrument, ?node, "asking for a snapshot");
                    stats.snapshots.fetch_add(1, Ordering::Relaxed);
                    let client = client.clone();
                    let cmds = cmds.clone();
                    tokio::spawn(request_snapshot(
                        client,
                        registry.clone(),
                        cmds,
                        instrument,
                        node,
                    ));
                }
                Out::Marker {
                    instrument,
                    code,
                    detail,
                    bad_book,
                } => {
                    stats.markers.fetch_add(1, Ordering::Relaxed);
                    info!(instrument, status = code.json_name(), %detail, "status to clients");
                    let venue = registry
                        .definition(instrument)
                        .map_or(Venue::Binance, |i| i.venue);
                    let mut f = Frame::new(
                        venue,
                        instrument,
                        0,
                        now,
                        Body::Status(Status { code, detail }),
                    );
                    if bad_book {
                        f.flags |= flags::BAD_BOOK;
                    }
                    f.ts_publish = now;
                    let b: Box<[u8]> = encoder.encode(&f).into();
                    push(&input, crate::ingest::Inbound::Encoded(f, b)).await;
                }
            }
        }
        stats.forwarded.fetch_add(forwarded, Ordering::Relaxed);
        if !frame_only {
            let mut r = ready.lock().unwrap_or_else(|e| e.into_inner());
            for (id, ch) in arbiter.wanted() {
                if arbiter.is_waiting(id, ch) {
                    r.remove(&(id, ch));
                } else {
                    r.insert((id, ch), arbiter.last_out(id, ch));
                }
            }
        }
    }
}

/// Asks the cluster (or one node) for an instrument's state; the answer goes to the merger.
async fn request_snapshot(
    client: async_nats::Client,
    registry: Arc<Registry>,
    cmds: mpsc::UnboundedSender<Cmd>,
    instrument: u32,
    node: Option<Arc<str>>,
) {
    let Some(info) = registry.definition(instrument) else {
        return;
    };
    let subject = match &node {
        Some(n) => subjects::node_snapshot(n, info.venue, &info.symbol),
        None => subjects::snapshot(info.venue, &info.symbol),
    };
    let reply =
        tokio::time::timeout(REQUEST_TIMEOUT, client.request(subject.clone(), "".into())).await;
    let msg = match reply {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => {
            info!(%subject, error = %e, "snapshot request failed; retried later");
            return;
        }
        Err(_) => {
            info!(%subject, "snapshot request timed out; retried later");
            return;
        }
    };
    let Some(src) = source_of(&msg) else {
        return;
    };
    let mut frames = Vec::new();
    if !msg.payload.is_empty() {
        match Batch::new(&msg.payload[..]) {
            Ok(batch) => {
                for i in 0..batch.len() {
                    if let (Some(f), Some(b)) = (batch.get(i), batch.frame_bytes(i)) {
                        frames.push((tickwire_sdk::wire::to_owned(f), Box::<[u8]>::from(b)));
                    }
                }
            }
            Err(e) => {
                warn!(%subject, error = %e, "bad snapshot answer; retried later");
                return;
            }
        }
    }
    debug!(%subject, frames = frames.len(), node = %src.node, "snapshot answered");
    let _ = cmds.send(Cmd::Snapshot(src, instrument, frames, now_ns()));
}
