//! The sequencer: the single writer of the broadcast ring.
//!
//! It drains every ingest ring and publishes each frame through its [`Publisher`]: a fresh
//! frame gets the next `seq` of its stream (instrument, channel) and `ts_publish` and is
//! encoded once (rkyv); a frame sequenced elsewhere (an ingest node across NATS) goes in as
//! it came. It runs on its own thread: it spins briefly when idle, then parks until a
//! feed pushes (no busy-spinning by default).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam::channel::{Receiver, Sender};
use crossbeam::sync::{Parker, Unparker};
use tickwire_sdk::wire::{Channel, Frame};

use crate::ingest::{Inbound, IngestRing};
use crate::lvc::Lvc;
use crate::publisher::Publisher;
use crate::registry::Registry;
use crate::ring::{Ring, pin};

/// Frames taken from one ingest ring before looking at the others.
const DRAIN_BATCH: usize = 256;
/// Idle loops spent spinning before parking.
const SPIN_LIMIT: u32 = 64;

/// Counters of the sequencer.
#[derive(Debug, Default)]
pub struct SequencerStats {
    /// Frames published into the broadcast ring.
    pub published: AtomicU64,
    /// Times the thread parked for lack of input.
    pub parks: AtomicU64,
    /// Passes over the inputs that found nothing to publish.
    pub idle_passes: AtomicU64,
}

/// Per-stream sequence numbers: the next `seq` of every (instrument, channel).
#[derive(Debug, Default)]
pub struct StreamSeqs {
    next: HashMap<(u32, Channel), u64>,
}

impl StreamSeqs {
    /// The next seq of the frame's stream (1 for the first frame of a stream).
    #[inline]
    pub fn assign(&mut self, frame: &mut Frame) {
        let n = self
            .next
            .entry((frame.instrument, frame.channel()))
            .or_insert(0);
        *n += 1;
        frame.seq = *n;
    }
}

/// Control of a running sequencer thread.
pub struct SequencerHandle {
    thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    unparker: Unparker,
    new_inputs: Sender<Arc<IngestRing>>,
    inputs: Vec<Arc<IngestRing>>,
    ring: Ring,
    lvc: Arc<Lvc>,
    /// Counters.
    pub stats: Arc<SequencerStats>,
}

impl SequencerHandle {
    /// A new ingest ring of `capacity` frames, drained by this sequencer.
    pub fn add_input(&mut self, capacity: usize) -> Arc<IngestRing> {
        let input = Arc::new(IngestRing::new(capacity, self.unparker.clone()));
        // The sequencer holds the receiver until it stops; after that, inputs are moot.
        let _ = self.new_inputs.send(input.clone());
        self.unparker.unpark();
        self.inputs.push(input.clone());
        input
    }

    /// Waits (blocking, at most `limit`) until every frame pushed so far has been published:
    /// all inputs empty and a whole pass over them found nothing. True if it got there.
    pub fn quiesce(&self, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let passes = self.stats.idle_passes.load(Ordering::Acquire);
            if self.inputs.iter().all(|i| i.is_empty()) {
                self.unparker.unpark();
                while std::time::Instant::now() < deadline {
                    if self.stats.idle_passes.load(Ordering::Acquire) > passes + 1 {
                        return true;
                    }
                    self.unparker.unpark();
                    std::thread::sleep(Duration::from_micros(200));
                }
                return false;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// A reader handle on the broadcast ring.
    pub fn ring(&self) -> Ring {
        self.ring.clone()
    }

    /// The last-value cache the sequencer keeps.
    pub fn lvc(&self) -> Arc<Lvc> {
        self.lvc.clone()
    }

    /// Stops the thread after it has drained what is queued.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.unparker.unpark();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SequencerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Starts the sequencer thread over a broadcast ring of `ring_capacity` entries.
pub fn start(ring_capacity: usize, registry: Arc<Registry>) -> SequencerHandle {
    let publisher = Publisher::new(ring_capacity, registry);
    let ring = publisher.ring();
    let lvc = publisher.lvc();
    let parker = Parker::new();
    let unparker = parker.unparker().clone();
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(SequencerStats::default());
    let (new_inputs, inputs_rx) = crossbeam::channel::unbounded();
    let mut seq = Sequencer {
        inputs: Vec::new(),
        inputs_rx,
        publisher,
        stats: stats.clone(),
    };
    let stop2 = stop.clone();
    let thread = std::thread::Builder::new()
        .name("tickwire-sequencer".into())
        .spawn(move || seq.run(parker, stop2))
        .ok();
    SequencerHandle {
        thread,
        stop,
        unparker,
        new_inputs,
        inputs: Vec::new(),
        ring,
        lvc,
        stats,
    }
}

struct Sequencer {
    inputs: Vec<Arc<IngestRing>>,
    inputs_rx: Receiver<Arc<IngestRing>>,
    publisher: Publisher,
    stats: Arc<SequencerStats>,
}

impl Sequencer {
    fn run(&mut self, parker: Parker, stop: Arc<AtomicBool>) {
        let mut idle: u32 = 0;
        loop {
            while let Ok(input) = self.inputs_rx.try_recv() {
                self.inputs.push(input);
            }
            let n = self.drain_once();
            if n > 0 {
                idle = 0;
                self.publisher.wake_readers();
                continue;
            }
            self.stats.idle_passes.fetch_add(1, Ordering::Release);
            if stop.load(Ordering::Acquire) {
                break;
            }
            idle += 1;
            if idle < SPIN_LIMIT {
                std::hint::spin_loop();
            } else if idle < SPIN_LIMIT * 2 {
                std::thread::yield_now();
            } else {
                self.stats.parks.fetch_add(1, Ordering::Relaxed);
                parker.park_timeout(Duration::from_millis(100));
            }
        }
    }

    /// One pass over the inputs; returns frames published.
    fn drain_once(&mut self) -> usize {
        let mut total = 0;
        let guard = pin();
        for k in 0..self.inputs.len() {
            let mut taken = 0;
            while taken < DRAIN_BATCH {
                let Some(inbound) = self.inputs[k].pop() else {
                    break;
                };
                match inbound {
                    Inbound::Fresh(frame) => self.publisher.publish(frame, &guard),
                    Inbound::Encoded(frame, bytes) => {
                        self.publisher.publish_encoded(&frame, bytes, &guard)
                    }
                    Inbound::Define(info) => {
                        self.publisher.define(info);
                        continue;
                    }
                }
                taken += 1;
            }
            total += taken;
        }
        if total > 0 {
            // Hand the overwritten entries to the epoch GC now: left in this thread's bag they
            // pile up (one bag per 64) and are collected late, in big, cache-cold batches
            // (BENCHMARKS.md, "Fan-out ring": 5x slower publishing to one reader).
            guard.flush();
            self.stats
                .published
                .fetch_add(total as u64, Ordering::Relaxed);
        }
        total
    }
}
