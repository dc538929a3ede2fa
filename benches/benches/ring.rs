//! In-process fan-out: frames delivered per second by tickwire's broadcast ring to 1, 10, 100
//! and 1,000 readers, beside `tokio::sync::broadcast` and a `crossbeam::channel` per
//! subscriber, with the same frames, the same count and the same threads.
//!
//! Set-up, as in the server: the writer is one OS thread (the sequencer's place) that
//! publishes in bursts of [`BURST`] frames with one wake-up per burst; the readers are tokio
//! tasks on a 2-worker multi-thread runtime, as gateway sessions are. The frames are made
//! before the clock starts, as the sequencer makes them (per-stream `seq`, `ts_publish`, one
//! rkyv encode each): `Box<[u8]>` for the ring, `Arc<[u8]>` for the others, handed over by
//! move. Each reader really consumes each frame (adds one byte of it to a sum that is
//! `black_box`ed) and counts what it got and what it lost.
//!
//! `tickwire_ring` drives the ring exactly as `Sequencer::drain_once` does: one epoch pin per
//! burst, and `Guard::flush` after it, which lets crossbeam's epoch GC keep up with the
//! retired entries (without it they pile up: see BENCHMARKS.md).
//!
//! Nobody may be lapped: the writer publishes burst `j` only once every reader has finished
//! burst `j - WINDOW`, and `WINDOW * BURST` equals the capacity of every contender, so at most
//! a full ring is ever unread. A reader that lost frames anyway (lapped, lagged, a full
//! channel) fails the benchmark. See BENCHMARKS.md ("Fan-out ring") for the method and figures.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use benches::synth::{Producer, Synth};
use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use crossbeam::channel::TryRecvError;
use crossbeam::sync::{Parker, Unparker};
use crossbeam::utils::CachePadded;
use tickwire_engine::ring::{self, Entry, Read};
use tickwire_sdk::wire::Frame;
use tokio::runtime::Runtime;
use tokio::sync::{Notify, broadcast};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Slots of the tickwire ring, capacity of the tokio broadcast channel, bound of each
/// crossbeam channel.
const CAPACITY: usize = 4096;
/// Frames per writer burst: one wake-up each (the sequencer's drain batch).
const BURST: usize = 256;
/// Bursts the writer may have in flight (unread by the slowest reader).
const WINDOW: usize = CAPACITY / BURST;
/// Instruments the frames cycle through.
const INSTRUMENTS: usize = 10;
/// Byte of the payload each reader adds up (in the frame's header, which every frame has).
const PROBE: usize = 40;

const READERS: [usize; 4] = [1, 10, 100, 1_000];

/// Frames per run: about 2M deliveries (4M at 1,000 readers), whole bursts.
fn frames_for(readers: usize) -> usize {
    let target = if readers >= 1_000 { 4 << 20 } else { 2 << 20 };
    let frames = (target / readers).clamp(4 * CAPACITY, 1 << 18);
    frames / BURST * BURST
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Contender {
    Tickwire,
    TokioBroadcast,
    CrossbeamPerReader,
}

impl Contender {
    fn name(self) -> &'static str {
        match self {
            Contender::Tickwire => "tickwire_ring",
            Contender::TokioBroadcast => "tokio_broadcast",
            Contender::CrossbeamPerReader => "crossbeam_per_reader",
        }
    }
}

/// The writer's flow control and the run's clock, shared with every reader.
struct Pace {
    readers: usize,
    frames: u64,
    /// Readers done with burst `j`, at `j % WINDOW`.
    done: Vec<CachePadded<AtomicUsize>>,
    writer: Unparker,
    /// Readers waiting for their first frame (all must be before the clock starts).
    ready: AtomicUsize,
    /// Readers that received every frame.
    finished: AtomicUsize,
    base: Instant,
    start_ns: AtomicU64,
    end_ns: AtomicU64,
}

impl Pace {
    fn new(readers: usize, frames: u64, writer: Unparker) -> Pace {
        Pace {
            readers,
            frames,
            done: (0..WINDOW)
                .map(|_| CachePadded::new(AtomicUsize::new(0)))
                .collect(),
            writer,
            ready: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            base: Instant::now(),
            start_ns: AtomicU64::new(0),
            end_ns: AtomicU64::new(0),
        }
    }

    /// A reader has consumed up to `pos` (exclusive) after having consumed up to `prev`.
    #[inline]
    fn progress(&self, prev: u64, pos: u64) {
        let b = BURST as u64;
        for j in prev / b..pos / b {
            let slot = &self.done[(j % WINDOW as u64) as usize];
            if slot.fetch_add(1, Ordering::AcqRel) + 1 == self.readers {
                self.writer.unpark();
            }
        }
    }

    /// The writer waits until every reader has finished burst `j`.
    fn wait_burst(&self, j: usize, parker: &Parker) {
        let slot = &self.done[j % WINDOW];
        let mut spins = 0u32;
        while slot.load(Ordering::Acquire) < self.readers {
            if spins < 64 {
                std::hint::spin_loop();
                spins += 1;
            } else {
                parker.park_timeout(Duration::from_millis(1));
            }
        }
        slot.store(0, Ordering::Release);
    }

    fn start(&self) {
        self.start_ns
            .store(self.base.elapsed().as_nanos() as u64, Ordering::Release);
    }

    fn finish(&self) {
        let t = self.base.elapsed().as_nanos() as u64;
        if self.finished.fetch_add(1, Ordering::AcqRel) + 1 == self.readers {
            self.end_ns.store(t, Ordering::Release);
        }
    }

    fn elapsed(&self) -> Duration {
        Duration::from_nanos(
            self.end_ns.load(Ordering::Acquire) - self.start_ns.load(Ordering::Acquire),
        )
    }
}

/// The ring entry for `frame`, encoded as `bytes`, as the sequencer publishes it (no
/// instrument definition, no trade totals: the readers here need neither).
#[inline]
fn entry(frame: &Frame, bytes: Box<[u8]>) -> Entry {
    Entry::new(frame, bytes, None, None)
}

/// What one reader saw.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    got: u64,
    lost: u64,
}

/// One run: `frames` frames to `readers` readers. Returns the time from the writer's first
/// publish to the last reader's last frame.
fn run_once(rt: &Runtime, contender: Contender, readers: usize, frames: usize) -> Duration {
    let parker = Parker::new();
    let pace = Arc::new(Pace::new(readers, frames as u64, parker.unparker().clone()));
    // The frames, sequenced, stamped and encoded as the sequencer does, before the clock
    // starts: the run measures handing them to the readers, not making them.
    let mut producer = Producer::new(Synth::new(INSTRUMENTS));
    let mut made = (0..frames).map(|_| {
        let (frame, bytes) = producer.produce();
        (frame.clone(), bytes.to_vec())
    });
    let (handles, writer): (Vec<_>, Box<dyn FnOnce() -> u64 + Send>) = match contender {
        Contender::Tickwire => {
            let (mut w, r) = ring::ring(CAPACITY);
            let mut frames_in: Vec<(Frame, Box<[u8]>)> = made
                .by_ref()
                .map(|(f, b)| (f, b.into_boxed_slice()))
                .collect();
            frames_in.reverse();
            let handles = (0..readers)
                .map(|_| rt.spawn(ring_reader(r.clone(), r.cursor_at_head(), pace.clone())))
                .collect();
            let pace = pace.clone();
            let writer = Box::new(move || {
                pace.start();
                for j in 0..frames / BURST {
                    if j >= WINDOW {
                        pace.wait_burst(j - WINDOW, &parker);
                    }
                    let guard = ring::pin();
                    for _ in 0..BURST {
                        let (frame, bytes) = frames_in.pop().expect("a frame");
                        w.publish(entry(&frame, bytes), &guard);
                    }
                    // Hand this burst's retired entries to the epoch GC and collect now.
                    guard.flush();
                    w.wake_readers();
                }
                0
            });
            (handles, writer)
        }
        Contender::TokioBroadcast => {
            let (tx, _) = broadcast::channel::<Arc<[u8]>>(CAPACITY);
            let mut frames_in = made
                .by_ref()
                .map(|(_, b)| Arc::<[u8]>::from(b))
                .collect::<Vec<_>>()
                .into_iter();
            let handles = (0..readers)
                .map(|_| rt.spawn(broadcast_reader(tx.subscribe(), pace.clone())))
                .collect();
            let pace = pace.clone();
            let writer = Box::new(move || {
                pace.start();
                for j in 0..frames / BURST {
                    if j >= WINDOW {
                        pace.wait_burst(j - WINDOW, &parker);
                    }
                    for frame in frames_in.by_ref().take(BURST) {
                        let _ = tx.send(frame);
                    }
                }
                0
            });
            (handles, writer)
        }
        Contender::CrossbeamPerReader => {
            let notify = Arc::new(Notify::new());
            let mut frames_in = made
                .by_ref()
                .map(|(_, b)| Arc::<[u8]>::from(b))
                .collect::<Vec<_>>()
                .into_iter();
            let (txs, handles): (Vec<_>, Vec<_>) = (0..readers)
                .map(|_| {
                    let (tx, rx) = crossbeam::channel::bounded::<Arc<[u8]>>(CAPACITY);
                    (
                        tx,
                        rt.spawn(crossbeam_reader(rx, notify.clone(), pace.clone())),
                    )
                })
                .unzip();
            let pace = pace.clone();
            let writer = Box::new(move || {
                pace.start();
                let mut full = 0u64;
                for j in 0..frames / BURST {
                    if j >= WINDOW {
                        pace.wait_burst(j - WINDOW, &parker);
                    }
                    for frame in frames_in.by_ref().take(BURST) {
                        // A clone for each reader; the last one takes the writer's reference.
                        let (last, rest) = txs.split_last().expect("a reader");
                        for tx in rest {
                            if tx.try_send(frame.clone()).is_err() {
                                full += 1;
                            }
                        }
                        if last.try_send(frame).is_err() {
                            full += 1;
                        }
                    }
                    notify.notify_waiters();
                }
                full
            });
            (handles, writer)
        }
    };
    // Every reader is subscribed (above) and parked on its first wait before the clock starts.
    while pace.ready.load(Ordering::Acquire) < readers {
        std::thread::sleep(Duration::from_micros(100));
    }
    let writer = std::thread::Builder::new()
        .name("ring-writer".into())
        .spawn(writer)
        .expect("spawn the writer");
    let seen: Vec<Seen> = rt.block_on(async {
        let mut seen = Vec::with_capacity(handles.len());
        for h in handles {
            seen.push(h.await.expect("reader"));
        }
        seen
    });
    let writer_lost = writer.join().expect("writer");
    let lost: u64 = seen.iter().map(|s| s.lost).sum::<u64>() + writer_lost;
    let short = seen.iter().filter(|s| s.got != frames as u64).count();
    assert!(
        lost == 0 && short == 0,
        "{}: {readers} readers lost {lost} frames ({short} readers short): the run is invalid",
        contender.name()
    );
    pace.elapsed()
}

/// A gateway session's read loop, minus the socket: drain from the cursor, then wait on the
/// ring's `Notify` (enabled before the final check, as the session does).
async fn ring_reader(r: ring::Ring, mut cursor: ring::Cursor, pace: Arc<Pace>) -> Seen {
    let mut seen = Seen::default();
    let mut sum = 0u64;
    let mut first = true;
    loop {
        let before = cursor.position();
        {
            let guard = ring::pin();
            loop {
                match r.read(&mut cursor, &guard) {
                    Read::Entry(e) => {
                        sum = sum.wrapping_add(u64::from(e.bytes[PROBE]));
                        seen.got += 1;
                    }
                    Read::Empty => break,
                    Read::Lapped { missed } => {
                        seen.lost += missed;
                        r.skip_to_oldest(&mut cursor);
                    }
                }
            }
        }
        pace.progress(before, cursor.position());
        if cursor.position() >= pace.frames {
            break;
        }
        let notified = r.notify().notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if first {
            pace.ready.fetch_add(1, Ordering::AcqRel);
            first = false;
        }
        if r.head() > cursor.position() {
            continue;
        }
        notified.await;
    }
    black_box(sum);
    pace.finish();
    seen
}

/// The textbook tokio fan-out reader: `recv().await` per frame.
async fn broadcast_reader(mut rx: broadcast::Receiver<Arc<[u8]>>, pace: Arc<Pace>) -> Seen {
    let mut seen = Seen::default();
    let mut sum = 0u64;
    pace.ready.fetch_add(1, Ordering::AcqRel);
    while seen.got + seen.lost < pace.frames {
        let before = seen.got + seen.lost;
        match rx.recv().await {
            Ok(frame) => {
                sum = sum.wrapping_add(u64::from(frame[PROBE]));
                seen.got += 1;
            }
            Err(broadcast::error::RecvError::Lagged(n)) => seen.lost += n,
            Err(broadcast::error::RecvError::Closed) => break,
        }
        pace.progress(before, seen.got + seen.lost);
    }
    black_box(sum);
    pace.finish();
    seen
}

/// A channel per subscriber: drain it with `try_recv`, then wait on a shared `Notify` that
/// the writer fires once per burst (the same wake-up scheme as the ring's).
async fn crossbeam_reader(
    rx: crossbeam::channel::Receiver<Arc<[u8]>>,
    notify: Arc<Notify>,
    pace: Arc<Pace>,
) -> Seen {
    let mut seen = Seen::default();
    let mut sum = 0u64;
    let mut first = true;
    loop {
        let before = seen.got;
        let mut gone = false;
        loop {
            match rx.try_recv() {
                Ok(frame) => {
                    sum = sum.wrapping_add(u64::from(frame[PROBE]));
                    seen.got += 1;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    gone = true;
                    break;
                }
            }
        }
        pace.progress(before, seen.got);
        if seen.got >= pace.frames || gone {
            break;
        }
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if first {
            pace.ready.fetch_add(1, Ordering::AcqRel);
            first = false;
        }
        if !rx.is_empty() {
            continue;
        }
        notified.await;
    }
    black_box(sum);
    pace.finish();
    seen
}

fn fanout(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("ring-reader")
        .enable_all()
        .build()
        .expect("tokio runtime");
    for readers in READERS {
        let frames = frames_for(readers);
        let mut g = c.benchmark_group(format!("ring_fanout/{readers}_readers"));
        g.sampling_mode(SamplingMode::Flat);
        g.sample_size(10);
        g.throughput(Throughput::Elements((frames * readers) as u64));
        for contender in [
            Contender::Tickwire,
            Contender::TokioBroadcast,
            Contender::CrossbeamPerReader,
        ] {
            g.bench_function(BenchmarkId::from_parameter(contender.name()), |b| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| run_once(&rt, contender, readers, frames))
                        .sum()
                })
            });
        }
        g.finish();
    }
}

/// The reader's floor: one thread, no writer running, the entries of a full ring (published
/// over `laps` laps, so their memory went through the epoch GC as in a live run) read by 100
/// cursors in turn. What a delivery costs when nothing is moving between cores; the gap to
/// `ring_fanout` is the price of reading what another core is writing.
fn reader_floor(c: &mut Criterion) {
    let mut g = c.benchmark_group("ring_reader_floor");
    for laps in [1usize, 4] {
        let (mut w, r) = ring::ring(CAPACITY);
        let mut producer = Producer::new(Synth::new(INSTRUMENTS));
        let mut start = r.cursor_at_head();
        for j in 0..laps * CAPACITY / BURST {
            if j == (laps - 1) * CAPACITY / BURST {
                start = r.cursor_at_head(); // the last lap is what stays in the ring
            }
            let guard = ring::pin();
            for _ in 0..BURST {
                let (f, b) = producer.produce();
                let f = f.clone();
                w.publish(entry(&f, b.to_vec().into_boxed_slice()), &guard);
            }
            guard.flush();
        }
        g.throughput(Throughput::Elements((CAPACITY * 100) as u64));
        g.bench_function(format!("100_cursors_after_{laps}_laps"), |b| {
            b.iter(|| {
                let guard = ring::pin();
                let mut sum = 0u64;
                let mut got = 0;
                for _ in 0..100 {
                    let mut c = start.clone();
                    while let Read::Entry(e) = r.read(&mut c, &guard) {
                        sum = sum.wrapping_add(u64::from(e.bytes[PROBE]));
                        got += 1;
                    }
                }
                assert_eq!(got, CAPACITY * 100, "every cursor read the whole ring");
                black_box(sum)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, fanout, reader_floor);
criterion_main!(benches);
