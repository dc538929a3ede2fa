//! The recorder: a lossless reader of the broadcast ring that writes every published frame,
//! byte for byte, to a recording (`tickwire_sdk::recording`), on its own thread.
//!
//! It reads at its own cursor like any client, so it never slows the writer. If it ever falls
//! a whole ring behind (the disk cannot keep up), it says so: an error log, the `lost`
//! counter, and a `Gap` status frame written into the recording at the place of the loss. It
//! never drops data silently. Blocks are handed to the OS when full and whenever the ring has
//! been quiet for [`IDLE_FLUSH`], so a crash loses at most that much.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use tickwire_feed::clock::now_ns;
use tickwire_sdk::recording::{RecordingWriter, WriterOptions};
use tickwire_sdk::wire::{Body, Frame, Status, StatusCode, Venue};
use tracing::{error, info};

use crate::ring::{Read, Ring, pin};

/// Longest a written frame waits in the writer's block while the ring is quiet.
pub const IDLE_FLUSH: Duration = Duration::from_millis(100);
/// Entries read per pass before checking the clock and the stop flag.
const PASS: usize = 4096;

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

/// Opens (or creates) the recording and starts recording everything published from now on.
pub fn start(ring: Ring, config: RecorderConfig) -> anyhow::Result<RecorderHandle> {
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
        .spawn(move || run(ring, cursor, writer, stop2, stats2))
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

fn run(
    ring: Ring,
    mut cursor: crate::ring::Cursor,
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
        loop {
            let stopping = stop.load(Ordering::Acquire);
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
            if read > 0 {
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
