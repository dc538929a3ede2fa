//! The recorder: a lossless reader of the broadcast ring that writes every published frame,
//! byte for byte, to a recording (`tickwire_sdk::recording`), on its own thread.
//!
//! It reads at its own cursor like any client, so it never slows the writer. If it ever falls
//! a whole ring behind (the disk cannot keep up), it says so: an error log, the `lost`
//! counter, and a `Gap` status frame written into the recording at the place of the loss. It
//! never drops data silently. Blocks are handed to the OS when full and whenever the ring has
//! been quiet for [`IDLE_FLUSH`], so a crash loses at most that much.
//!
//! With raw data on ([`WriterOptions::keep_raw`], `serve --record-raw`), each feed driver also
//! hands it everything its normalizer was given (venue messages, REST snapshot bodies,
//! connection events) through a bounded [`RawQueue`]; the recorder writes them as raw records
//! (see `tickwire_sdk::recording`, "Raw records and feed events"), so `tickwire import
//! --format recording` can normalize the recording again. The driver never waits for the
//! queue: when it is full the message is lost, counted (`raw_lost` here and in the driver's
//! stats), logged, and marked by a `gap` record in the raw data at the place of the loss.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam::queue::ArrayQueue;
use tickwire_feed::clock::now_ns;
use tickwire_feed::driver::{RawKind, RawMessage, RawSink};
use tickwire_sdk::recording::{RawEvent, RecordingWriter, WriterOptions};
use tickwire_sdk::wire::{Body, Frame, Status, StatusCode, Venue};
use tracing::{error, info};

use crate::ring::{Read, Ring, pin};

/// Longest a written frame waits in the writer's block while the ring is quiet.
pub const IDLE_FLUSH: Duration = Duration::from_millis(100);
/// Entries read per pass before checking the clock and the stop flag.
const PASS: usize = 4096;
/// Raw messages a feed may have waiting for the recorder (`serve --record-raw`).
pub const RAW_QUEUE_CAPACITY: usize = 1 << 15;

/// Where and how to record.
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    /// The recording directory: a new recording is started there, or an existing one is
    /// continued (its torn tail, if any, cut first).
    pub dir: PathBuf,
    /// Segment and block sizes, rotation, fsync.
    pub options: WriterOptions,
}

/// Counters of a recorder.
#[derive(Debug, Default)]
pub struct RecorderStats {
    /// Frames written.
    pub frames: AtomicU64,
    /// Frames lost because the recorder fell a whole ring behind (each loss is also a `Gap`
    /// status in the recording and an error in the log).
    pub lost: AtomicU64,
    /// Write errors (the recorder stops at the first one; see the log).
    pub errors: AtomicU64,
    /// Raw records written (venue messages and feed events).
    pub raw: AtomicU64,
    /// Raw messages lost because a raw queue was full (each loss is a `gap` record in the raw
    /// data and an error in the log; the frames are complete).
    pub raw_lost: AtomicU64,
}

/// A bounded queue of raw venue data from one feed driver to the recorder.
pub struct RawQueue {
    queue: ArrayQueue<RawMessage>,
}

impl RawQueue {
    /// A queue of `capacity` messages.
    pub fn new(capacity: usize) -> RawQueue {
        RawQueue {
            queue: ArrayQueue::new(capacity.max(1)),
        }
    }
}

impl RawSink for RawQueue {
    #[inline]
    fn try_push_raw(&self, message: RawMessage) -> Result<(), RawMessage> {
        self.queue.push(message)
    }
}

/// A raw message as a recording's raw record holds it.
pub fn raw_event(message: &RawMessage) -> RawEvent<'_> {
    match &message.kind {
        RawKind::Message => RawEvent::Message(&message.bytes),
        RawKind::Connect(symbols) => RawEvent::Connect { symbols },
        RawKind::Snapshot(symbol) => RawEvent::Snapshot {
            symbol,
            body: &message.bytes,
        },
        RawKind::Stale(detail) => RawEvent::Stale { detail },
        RawKind::Disconnect(reason) => RawEvent::Disconnect { reason },
    }
}

/// A running recorder.
pub struct RecorderHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
    /// Its counters.
    pub stats: Arc<RecorderStats>,
}

impl RecorderHandle {
    /// Stops after writing everything published so far, closes the recording (segment index
    /// written) and returns the first write error, if any.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Release);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => anyhow::bail!("the recorder thread panicked"),
            None => Ok(()),
        }
    }
}

impl Drop for RecorderHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Opens (or creates) the recording and starts recording everything published from now on,
/// and the raw data pushed into `raw` (one queue per feed; empty unless
/// [`WriterOptions::keep_raw`]).
pub fn start(
    ring: Ring,
    config: RecorderConfig,
    raw: Vec<Arc<RawQueue>>,
) -> anyhow::Result<RecorderHandle> {
    let has_segments = std::fs::read_dir(&config.dir)
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".twrec"))
        })
        .unwrap_or(false);
    let writer = if has_segments {
        let w = RecordingWriter::open(&config.dir, config.options.clone())
            .with_context(|| format!("continuing the recording in {}", config.dir.display()))?;
        for r in w.recovery() {
            info!(recovery = %r, "recording recovered");
        }
        w
    } else {
        RecordingWriter::create(&config.dir, config.options.clone(), &[])
            .with_context(|| format!("starting a recording in {}", config.dir.display()))?
    };
    let cursor = ring.cursor_at_head();
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(RecorderStats::default());
    let (stop2, stats2) = (stop.clone(), stats.clone());
    let thread = std::thread::Builder::new()
        .name("tickwire-recorder".into())
        .spawn(move || run(ring, cursor, raw, writer, stop2, stats2))
        .context("starting the recorder thread")?;
    info!(dir = %config.dir.display(), "recording");
    Ok(RecorderHandle {
        stop,
        thread: Some(thread),
        stats,
    })
}

fn gap_frame(missed: u64) -> Frame {
    let now = now_ns();
    let mut f = Frame::new(
        Venue::Binance,
        0,
        0,
        now,
        Body::Status(Status {
            code: StatusCode::Gap,
            detail: format!(
                "recorder: {missed} frames lost here (the recorder fell a whole ring behind; the disk did not keep up)"
            ),
        }),
    );
    f.ts_publish = now;
    f
}

/// Writes up to `PASS` messages of each raw queue; returns how many.
fn drain_raw(
    raw: &[Arc<RawQueue>],
    writer: &mut RecordingWriter,
    scratch: &mut Vec<u8>,
    stats: &RecorderStats,
) -> Result<usize, tickwire_sdk::recording::RecordingError> {
    let mut n = 0;
    for q in raw {
        for _ in 0..PASS {
            let Some(m) = q.queue.pop() else {
                break;
            };
            let venue = m.venue.id();
            if m.lost_before > 0 {
                stats.raw_lost.fetch_add(m.lost_before, Ordering::Relaxed);
                error!(lost = m.lost_before, venue = %m.venue, "raw venue messages lost (the raw queue was full); a gap record marks the place");
                let gap = RawEvent::Gap {
                    lost: m.lost_before,
                };
                writer.append_raw_event(venue, m.ts_recv, &gap, scratch)?;
            }
            writer.append_raw_event(venue, m.ts_recv, &raw_event(&m), scratch)?;
            n += 1;
        }
    }
    stats.raw.fetch_add(n as u64, Ordering::Relaxed);
    Ok(n)
}

fn run(
    ring: Ring,
    mut cursor: crate::ring::Cursor,
    raw: Vec<Arc<RawQueue>>,
    mut writer: RecordingWriter,
    stop: Arc<AtomicBool>,
    stats: Arc<RecorderStats>,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .context("the recorder's timer")?;
    let result = rt.block_on(async {
        let mut pending = false;
        let mut last_write = Instant::now();
        let mut scratch = Vec::new();
        loop {
            let stopping = stop.load(Ordering::Acquire);
            let raw_read = drain_raw(&raw, &mut writer, &mut scratch, &stats)?;
            let mut read = 0;
            {
                let guard = pin();
                while read < PASS {
                    match ring.read(&mut cursor, &guard) {
                        Read::Entry(e) => {
                            writer.append_encoded(&e.bytes)?;
                            read += 1;
                        }
                        Read::Empty => break,
                        Read::Lapped { missed } => {
                            let skipped = ring.skip_to_oldest(&mut cursor);
                            let lost = missed.max(skipped);
                            stats.lost.fetch_add(lost, Ordering::Relaxed);
                            error!(lost, "recorder fell a whole ring behind; a Gap status marks the loss in the recording");
                            writer.append_frame(&gap_frame(lost))?;
                        }
                    }
                }
            }
            if read > 0 || raw_read > 0 {
                stats.frames.fetch_add(read as u64, Ordering::Relaxed);
                pending = true;
                last_write = Instant::now();
                continue;
            }
            if stopping {
                break;
            }
            if pending && last_write.elapsed() >= IDLE_FLUSH {
                writer.flush()?;
                pending = false;
            }
            let notified = ring.notify().notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if ring.head() > cursor.position() {
                continue;
            }
            let wait = if pending { IDLE_FLUSH } else { Duration::from_millis(250) };
            let _ = tokio::time::timeout(wait, notified).await;
        }
        Ok::<_, tickwire_sdk::recording::RecordingError>(())
    });
    match result {
        Ok(()) => writer.close().context("closing the recording"),
        Err(e) => {
            stats.errors.fetch_add(1, Ordering::Relaxed);
            error!(error = %e, "recording stopped");
            Err(e).context("writing the recording")
        }
    }
}
