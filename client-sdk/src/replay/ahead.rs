//! Read-ahead: a thread that finds the next blocks of a replay, checks their CRC and faults
//! their pages in, while the replay walks the block before.
//!
//! Finding a block costs its CRC32C (a pass over every byte) and, the first time a page of
//! the map is read, a page fault; walking it costs a validation, a route and a `seq` check
//! per frame. At full speed those are about half and half, so with a second core a replay
//! delivers up to twice as fast. The thread walks exactly as the replay would
//! ([`Recording::next_frames_block`] with the same time range and subscription), and hands
//! each result over in order through a bounded queue ([`DEPTH`] blocks), with the position
//! after it; the replay keeps that position, so it can stop the thread at any point and go
//! on from there, alone or with a new thread (after a subscription change, which changes
//! which segments may be skipped).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::select::Selection;
use crate::recording::{BlockAt, BlockPos, CorruptBlock, Recording, TimeRange};

/// Blocks found ahead of the one being walked, at most (1,024-frame blocks: ~80 KiB each).
pub(crate) const DEPTH: usize = 16;
/// A thread that waits is woken only once the queue has crossed half of [`DEPTH`] (or at
/// the end): a wake-up costs microseconds on a VM, as much as checking a block, so one per
/// block would eat the gain.
const WAKE_AT: usize = DEPTH / 2;

/// What the thread found next, and the walk position after it.
pub(crate) struct Ahead {
    /// The position after `found`.
    pub(crate) pos: BlockPos,
    /// The next block (or damage in its place); `None` at the end of the recording or range.
    pub(crate) found: Option<Result<BlockAt, CorruptBlock>>,
}

/// The queue between the thread and the replay.
#[derive(Default)]
struct Queue {
    items: VecDeque<Ahead>,
    /// The thread has sent its last item (or is gone).
    finished: bool,
    /// The replay has hung up.
    closed: bool,
    /// Each side waits on its condition variable with this set.
    reader_waits: bool,
    writer_waits: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when items arrive (or the thread finishes).
    items: Condvar,
    /// Signalled when room is made (or the replay hangs up).
    room: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock leaves the queue consistent (every change is one
        // step), so a poisoned lock is used as is.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running read-ahead thread; dropping it stops the thread and waits for it.
pub(crate) struct ReadAhead {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl ReadAhead {
    /// Starts reading ahead from `pos`. `None` if the thread could not be started (then the
    /// replay reads its blocks itself).
    pub(crate) fn start(
        rec: Arc<Recording>,
        pos: BlockPos,
        range: TimeRange,
        select: Selection,
    ) -> Option<ReadAhead> {
        let shared = Arc::new(Shared::default());
        let theirs = shared.clone();
        let thread = std::thread::Builder::new()
            .name("tickwire-replay-ahead".into())
            .spawn(move || {
                // Whatever happens, the replay is told that nothing more comes.
                let _finish = Finish(&theirs);
                run(&rec, pos, &range, &select, &theirs);
            })
            .ok()?;
        Some(ReadAhead {
            shared,
            thread: Some(thread),
        })
    }

    /// The next result, in walk order (waits for the thread). `None` if the thread is gone
    /// before the end (it panicked): the caller goes on by itself from its last position.
    pub(crate) fn next(&self) -> Option<Ahead> {
        let mut q = self.shared.lock();
        loop {
            if let Some(item) = q.items.pop_front() {
                if q.writer_waits && q.items.len() <= WAKE_AT {
                    q.writer_waits = false;
                    self.shared.room.notify_one();
                }
                return Some(item);
            }
            if q.finished {
                return None;
            }
            q.reader_waits = true;
            q = self.shared.items.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        {
            let mut q = self.shared.lock();
            q.closed = true;
            q.items.clear();
        }
        self.shared.room.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Marks the queue finished when the thread ends, by return or by panic.
struct Finish<'a>(&'a Shared);

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        self.0.lock().finished = true;
        self.0.items.notify_one();
    }
}

/// The thread: walk, check, fault in, queue; until the end or until the replay hangs up.
fn run(rec: &Recording, mut pos: BlockPos, range: &TimeRange, select: &Selection, shared: &Shared) {
    loop {
        let found = rec
            .next_frames_block(&mut pos, range, |ids| !select.may_match_any(ids))
            .map(|r| {
                r.map(|payload| {
                    fault_in(payload.bytes);
                    payload.at()
                })
            });
        let end = found.is_none();
        let mut q = shared.lock();
        while q.items.len() >= DEPTH && !q.closed {
            q.writer_waits = true;
            q = shared.room.wait(q).unwrap_or_else(|e| e.into_inner());
        }
        if q.closed {
            return;
        }
        q.items.push_back(Ahead { pos, found });
        if q.reader_waits && (end || q.items.len() >= WAKE_AT) {
            q.reader_waits = false;
            shared.items.notify_one();
        }
        if end {
            return;
        }
    }
}

/// Reads one byte of every page of `bytes`, so that the page faults of a block's first read
/// are taken here (blocks of an indexed segment are read whole by their CRC check already;
/// those of a scanned segment were checked when the recording was opened).
fn fault_in(bytes: &[u8]) {
    const PAGE: usize = 4096;
    let mut sum = 0u8;
    for b in bytes.iter().step_by(PAGE) {
        sum = sum.wrapping_add(*b);
    }
    std::hint::black_box(sum);
}
