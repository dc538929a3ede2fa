//! The ingest side of the cluster (`serve --role ingest`): every frame the sequencer publishes
//! goes to NATS on its stream's subject, byte for byte, consecutive frames of one stream
//! packed into one message (a wire batch); the node answers snapshot requests from its
//! last-value cache and announces itself and its instruments a few times a second.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::{HeaderMap, Subject};
use bytes::Bytes;
use futures_util::StreamExt;
use tickwire_sdk::wire::{BatchWriter, Channel, Encoder, Kind};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::directory::{Directory, Listed};
use super::subjects;
use crate::lvc::{self, Lvc};
use crate::registry::Registry;
use crate::ring::{Read, Ring, pin};

/// Largest stream message the publisher builds (a batch closes before it would grow past
/// this; one larger frame still goes alone). Well below NATS's default 1 MiB payload limit.
pub const MAX_BATCH_BYTES: usize = 256 << 10;

/// Ring entries read per publishing pass.
const PASS: usize = 1024;

/// How often the node announces itself.
pub const ANNOUNCE_EVERY: Duration = Duration::from_millis(200);

/// Counters of the ingest link.
#[derive(Debug, Default)]
pub struct IngestLinkStats {
    /// Frames published to NATS.
    pub published: AtomicU64,
    /// Stream messages published (each a run of one stream's frames, as a wire batch).
    pub messages: AtomicU64,
    /// Frames lost because the NATS publisher fell a whole ring behind.
    pub lost: AtomicU64,
    /// Snapshot requests answered.
    pub snapshots: AtomicU64,
}

/// The running ingest link.
pub struct IngestLink {
    tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    client: async_nats::Client,
    /// Counters.
    pub stats: Arc<IngestLinkStats>,
}

/// Who this node is.
#[derive(Debug, Clone)]
pub struct NodeId {
    /// Its name, unique in the cluster.
    pub name: String,
    /// Its process start time, ns since the epoch.
    pub epoch: u64,
}

impl NodeId {
    fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(subjects::NODE, self.name.as_str());
        h.insert(subjects::EPOCH, self.epoch.to_string().as_str());
        h
    }
}

/// Starts publishing `ring` to NATS (from its head: start it before the feeds), answering
/// snapshot requests and announcing the node.
pub async fn start(
    client: async_nats::Client,
    ring: Ring,
    lvc: Arc<Lvc>,
    registry: Arc<Registry>,
    node: NodeId,
) -> anyhow::Result<IngestLink> {
    let stats = Arc::new(IngestLinkStats::default());
    let (stop, stop_rx) = watch::channel(false);
    let snaps = client
        .subscribe("md.snap.>")
        .await
        .map_err(|e| anyhow::anyhow!("subscribing to snapshot requests: {e}"))?;
    let dir_requests = client
        .subscribe(subjects::DIR_REQUEST)
        .await
        .map_err(|e| anyhow::anyhow!("subscribing to directory requests: {e}"))?;
    client.flush().await.ok();
    let tasks = vec![
        tokio::spawn(publish(
            client.clone(),
            ring,
            node.clone(),
            stats.clone(),
            stop_rx.clone(),
        )),
        tokio::spawn(answer_snapshots(
            client.clone(),
            snaps,
            lvc,
            registry.clone(),
            node.clone(),
            stats.clone(),
        )),
        tokio::spawn(announce(
            client.clone(),
            dir_requests,
            registry,
            node.clone(),
            stop_rx,
        )),
    ];
    info!(node = %node.name, "ingest node publishing to NATS");
    Ok(IngestLink {
        tasks,
        stop,
        client,
        stats,
    })
}

impl IngestLink {
    /// Publishes what is left in the ring, flushes, and stops.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(p) = self.tasks.first_mut() {
            let _ = tokio::time::timeout(Duration::from_secs(2), p).await;
        }
        for t in &self.tasks {
            t.abort();
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.client.flush()).await;
    }
}

/// The run of frames of one instrument being packed into one message: consecutive frames of
/// one of its streams, in ring order.
struct Run {
    channel: Channel,
    subject: Subject,
    batch: BatchWriter,
}

impl Run {
    /// The finished run as a message: its subject, its payload (one allocation of its exact
    /// size; the writer keeps its buffer for the next run) and its frame count.
    fn close(&mut self) -> (Subject, Bytes, u64) {
        let n = u64::from(self.batch.count());
        let payload = Bytes::copy_from_slice(self.batch.finish());
        self.batch.begin();
        (self.subject.clone(), payload, n)
    }
}

/// The ring reader. Per pass over what the ring holds, each instrument's frames go out in ring
/// order as runs of one stream, each run one message (a wire batch) on that stream's subject:
/// a gateway subscribed to the instrument (`md.<venue>.<symbol>.*`) sees its frames in the
/// order the ingest published them, at a fraction of the per-message cost.
async fn publish(
    client: async_nats::Client,
    ring: Ring,
    node: NodeId,
    stats: Arc<IngestLinkStats>,
    mut stop: watch::Receiver<bool>,
) {
    let headers = node.headers();
    let mut cursor = ring.cursor_at_head();
    let mut subjects: HashMap<(u32, Channel), Subject> = HashMap::new();
    let mut runs: HashMap<u32, Run> = HashMap::new();
    // Closed runs, in the order they must go out (per instrument).
    let mut ready: Vec<(Subject, Bytes, u64)> = Vec::with_capacity(256);
    loop {
        let notified = ring.notify().notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let guard = pin();
            for _ in 0..PASS {
                match ring.read(&mut cursor, &guard) {
                    Read::Entry(e) => {
                        if e.instrument == 0 || e.kind == Kind::Heartbeat {
                            continue;
                        }
                        let Some(info) = &e.info else {
                            continue;
                        };
                        let mut subject_of = |channel| {
                            subjects
                                .entry((e.instrument, channel))
                                .or_insert_with(|| {
                                    Subject::from(subjects::stream(
                                        info.venue,
                                        &info.symbol,
                                        channel,
                                    ))
                                })
                                .clone()
                        };
                        let run = runs.entry(e.instrument).or_insert_with(|| Run {
                            channel: e.channel,
                            subject: subject_of(e.channel),
                            batch: BatchWriter::with_capacity(4096),
                        });
                        if !run.batch.is_empty()
                            && (run.channel != e.channel
                                || run.batch.len() + 4 + e.bytes.len() > MAX_BATCH_BYTES)
                        {
                            ready.push(run.close());
                        }
                        if run.channel != e.channel {
                            run.channel = e.channel;
                            run.subject = subject_of(e.channel);
                        }
                        run.batch.push(&e.bytes);
                    }
                    Read::Empty => break,
                    Read::Lapped { missed } => {
                        stats.lost.fetch_add(missed, Ordering::Relaxed);
                        warn!(
                            missed,
                            "the NATS publisher fell a whole ring behind; gateways will see the hole and resync"
                        );
                        ring.skip_to_oldest(&mut cursor);
                    }
                }
            }
        }
        for run in runs.values_mut() {
            if !run.batch.is_empty() {
                ready.push(run.close());
            }
        }
        if !ready.is_empty() {
            let (mut frames, messages) = (0, ready.len() as u64);
            for (subject, payload, n) in ready.drain(..) {
                if let Err(e) = client
                    .publish_with_headers(subject, headers.clone(), payload)
                    .await
                {
                    debug!(error = %e, "NATS publish failed");
                }
                frames += n;
            }
            stats.published.fetch_add(frames, Ordering::Relaxed);
            stats.messages.fetch_add(messages, Ordering::Relaxed);
            continue;
        }
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = stop.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

/// Answers `md.snap.<venue>.<symbol>` (when this node serves the instrument) and
/// `md.snap.<node>.<venue>.<symbol>` (when addressed to this node) with the instrument's
/// current state: a binary batch of its latest status, quote and full book, each with the
/// `seq` it stands at.
async fn answer_snapshots(
    client: async_nats::Client,
    mut requests: async_nats::Subscriber,
    lvc: Arc<Lvc>,
    registry: Arc<Registry>,
    node: NodeId,
    stats: Arc<IngestLinkStats>,
) {
    let headers = node.headers();
    let me = subjects::token(&node.name);
    let mut encoder = Encoder::new();
    while let Some(msg) = requests.next().await {
        let Some(reply) = msg.reply.clone() else {
            continue;
        };
        let tokens: Vec<&str> = msg.subject.as_str().split('.').collect();
        let (addressed, venue, symbol) = match tokens.as_slice() {
            ["md", "snap", venue, symbol] => (false, *venue, *symbol),
            ["md", "snap", n, venue, symbol] if *n == me => (true, *venue, *symbol),
            _ => continue,
        };
        let Some(info) = registry
            .served_instruments()
            .into_iter()
            .find(|(v, s)| v.name() == venue && subjects::token(s) == symbol)
        else {
            if addressed {
                let _ = client
                    .publish_with_headers(reply, headers.clone(), Bytes::new())
                    .await;
            }
            continue;
        };
        let id = tickwire_sdk::wire::instrument_id(info.0, &info.1);
        let mut batch = BatchWriter::with_capacity(4096);
        if let Some(slot) = lvc.get(id) {
            let state = lvc::lock(&slot);
            if let Some(f) = state.status_frame(id) {
                batch.push(encoder.encode(&f));
            }
            if let Some(f) = state.quote_frame(id, 0) {
                batch.push(encoder.encode(&f));
            }
            if state.book_seq > 0 {
                batch.push(encoder.encode(&state.book_frame(id, usize::MAX, 0)));
            }
        }
        stats.snapshots.fetch_add(1, Ordering::Relaxed);
        let payload = Bytes::from(batch.take());
        if let Err(e) = client
            .publish_with_headers(reply, headers.clone(), payload)
            .await
        {
            debug!(error = %e, "snapshot reply failed");
        }
    }
}

/// Publishes the directory every [`ANNOUNCE_EVERY`] (a heartbeat too) and answers `md.dir`.
async fn announce(
    client: async_nats::Client,
    mut requests: async_nats::Subscriber,
    registry: Arc<Registry>,
    node: NodeId,
    mut stop: watch::Receiver<bool>,
) {
    let subject = subjects::node(&node.name);
    let headers = node.headers();
    let mut tick = tokio::time::interval(ANNOUNCE_EVERY);
    let directory = || {
        Directory {
            node: node.name.clone(),
            epoch: node.epoch,
            instruments: registry
                .served_instruments()
                .into_iter()
                .filter_map(|(v, s)| registry.definition(tickwire_sdk::wire::instrument_id(v, &s)))
                .map(|i| Listed::of(&i))
                .collect(),
        }
        .to_json()
    };
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let _ = client
                    .publish_with_headers(subject.clone(), headers.clone(), directory().into())
                    .await;
            }
            Some(msg) = requests.next() => {
                if let Some(reply) = msg.reply {
                    let _ = client
                        .publish_with_headers(reply, headers.clone(), directory().into())
                        .await;
                }
            }
            _ = stop.changed() => return,
        }
    }
}
