//! The broadcast ring: one writer, many readers, each reader a cursor (Disruptor / Aeron
//! style). The writer never waits for a reader.
//!
//! Slots hold immutable [`Entry`]s (an encoded frame and what a reader needs to filter it).
//! Publishing swaps a new entry into the slot and retires the old one through crossbeam's
//! epoch GC, so a reader still looking at an overwritten entry is never left with freed
//! memory. A reader that falls more than the ring's capacity behind finds entries newer than
//! its cursor: it is told it was lapped, and by how much, instead of silently skipping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crossbeam::epoch::{self, Atomic, Guard, Owned};
use tickwire_sdk::wire::{Channel, Frame, InstrumentInfo, Kind};
use tokio::sync::Notify;

use crate::lvc::TradeTotals;

/// One published frame, shared by every reader.
#[derive(Debug)]
pub struct Entry {
    /// Position in the ring's publish order (0, 1, 2...).
    pub pos: u64,
    /// Instrument id of the frame (0 for none).
    pub instrument: u32,
    /// Channel the frame travels on.
    pub channel: Channel,
    /// Kind of the frame.
    pub kind: Kind,
    /// The frame's `seq` in its stream.
    pub seq: u64,
    /// The frame's flags.
    pub flags: u8,
    /// Trades: the instrument's running trade totals including this one.
    pub totals: Option<TradeTotals>,
    /// The frame's rkyv bytes, encoded once.
    pub bytes: Box<[u8]>,
    /// The instrument's definition, for the JSON rendering.
    pub info: Option<Arc<InstrumentInfo>>,
    /// The JSON rendering, made by the first text reader that needs it and shared after.
    json: OnceLock<tokio_tungstenite::tungstenite::Utf8Bytes>,
}

impl Entry {
    /// An entry for `frame`, encoded as `bytes`; `pos` is set by the ring on publish.
    pub fn new(
        frame: &Frame,
        bytes: Box<[u8]>,
        info: Option<Arc<InstrumentInfo>>,
        totals: Option<TradeTotals>,
    ) -> Entry {
        let kind = frame.kind();
        Entry {
            pos: 0,
            instrument: frame.instrument,
            channel: kind.channel(),
            kind,
            seq: frame.seq,
            flags: frame.flags,
            totals,
            bytes,
            info,
            json: OnceLock::new(),
        }
    }

    /// The frame, zero-copy.
    pub fn frame(&self) -> &tickwire_sdk::wire::ArchivedFrame {
        // SAFETY: `bytes` was produced by the engine's own encoder (`Sequencer`), and
        // entries are immutable once published.
        unsafe { tickwire_sdk::wire::codec::access_trusted(&self.bytes) }
    }

    /// The JSON text of this frame, rendered at most once.
    pub fn json(&self) -> &tokio_tungstenite::tungstenite::Utf8Bytes {
        self.json.get_or_init(|| {
            let frame = self.frame();
            let mut out = Vec::with_capacity(self.bytes.len() * 2);
            tickwire_sdk::wire::json::render(
                frame,
                self.info.as_deref(),
                tickwire_sdk::wire::JsonOptions::default(),
                &mut out,
            );
            // The renderer writes UTF-8 only (ASCII plus escaped input strings).
            String::from_utf8(out).unwrap_or_default().into()
        })
    }
}

struct Shared {
    slots: Box<[Atomic<Entry>]>,
    mask: u64,
    /// Next position to publish; entries below it are readable.
    head: AtomicU64,
    notify: Notify,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: we are the last owner of the ring (no reader or writer handle remains), so
        // no guard can still reference an entry.
        let guard = unsafe { epoch::unprotected() };
        for slot in self.slots.iter() {
            let p = slot.swap(epoch::Shared::null(), Ordering::Relaxed, guard);
            if !p.is_null() {
                // SAFETY: as above; each entry is owned by exactly one slot.
                drop(unsafe { p.into_owned() });
            }
        }
    }
}

/// The writing end. There is exactly one (it is not `Clone`).
pub struct RingWriter {
    shared: Arc<Shared>,
    next: u64,
}

/// A handle to create readers from; cheap to clone.
#[derive(Clone)]
pub struct Ring {
    shared: Arc<Shared>,
}

/// What a read found at the cursor.
pub enum Read<'g> {
    /// The next entry; the cursor moved past it.
    Entry(&'g Entry),
    /// Nothing new yet.
    Empty,
    /// The writer overwrote entries this reader had not read: `missed` of them are gone.
    /// The cursor is left where it was; see [`Ring::skip_to_oldest`].
    Lapped {
        /// Entries lost to this reader.
        missed: u64,
    },
}

/// A reader's position in the ring.
#[derive(Debug, Clone)]
pub struct Cursor {
    next: u64,
    /// A head this reader has already seen: entries below it are published, so reads below it
    /// need not touch the writer's (contended) head counter.
    seen: u64,
}

impl Cursor {
    /// The position of the next entry to read.
    pub fn position(&self) -> u64 {
        self.next
    }
}

/// Creates a ring of at least `capacity` slots (rounded up to a power of two).
pub fn ring(capacity: usize) -> (RingWriter, Ring) {
    let cap = capacity.max(2).next_power_of_two();
    let slots: Vec<Atomic<Entry>> = (0..cap).map(|_| Atomic::null()).collect();
    let shared = Arc::new(Shared {
        slots: slots.into_boxed_slice(),
        mask: cap as u64 - 1,
        head: AtomicU64::new(0),
        notify: Notify::new(),
    });
    (
        RingWriter {
            shared: shared.clone(),
            next: 0,
        },
        Ring { shared },
    )
}

impl RingWriter {
    /// Publishes an entry. Never waits: the oldest entry is overwritten. Readers are not
    /// woken until [`Self::wake_readers`], so a burst costs one wake-up.
    pub fn publish(&mut self, mut entry: Entry, guard: &Guard) {
        let pos = self.next;
        entry.pos = pos;
        let slot = &self.shared.slots[(pos & self.shared.mask) as usize];
        let old = slot.swap(Owned::new(entry), Ordering::AcqRel, guard);
        if !old.is_null() {
            // SAFETY: the old entry is unreachable from the ring now; readers that loaded it
            // hold a guard, and the epoch GC frees it only after they unpin.
            unsafe { guard.defer_destroy(old) };
        }
        self.next = pos + 1;
        self.shared.head.store(pos + 1, Ordering::Release);
    }

    /// Wakes readers waiting for entries.
    pub fn wake_readers(&self) {
        self.shared.notify.notify_waiters();
    }

    /// Entries published so far.
    pub fn published(&self) -> u64 {
        self.next
    }

    /// A reader handle on this ring.
    pub fn ring(&self) -> Ring {
        Ring {
            shared: self.shared.clone(),
        }
    }
}

impl Ring {
    /// Number of slots.
    pub fn capacity(&self) -> u64 {
        self.shared.mask + 1
    }

    /// Position the next published entry will have.
    pub fn head(&self) -> u64 {
        self.shared.head.load(Ordering::Acquire)
    }

    /// A cursor at the head: it reads what is published from now on.
    pub fn cursor_at_head(&self) -> Cursor {
        let head = self.head();
        Cursor {
            next: head,
            seen: head,
        }
    }

    /// The notifier readers wait on when they have caught up. Create the `notified()` future
    /// and `enable()` it before the final check for entries, so no wake-up is lost.
    pub fn notify(&self) -> &Notify {
        &self.shared.notify
    }

    /// Reads the entry at `cursor` and advances it.
    #[inline]
    pub fn read<'g>(&self, cursor: &mut Cursor, guard: &'g Guard) -> Read<'g> {
        let cap = self.shared.mask + 1;
        if cursor.next >= cursor.seen {
            // Caught up with what we knew: look at the writer's head (once per run of reads).
            let head = self.shared.head.load(Ordering::Acquire);
            if cursor.next >= head {
                return Read::Empty;
            }
            if head - cursor.next > cap {
                return Read::Lapped {
                    missed: head - cap - cursor.next,
                };
            }
            cursor.seen = head;
        }
        let slot = &self.shared.slots[(cursor.next & self.shared.mask) as usize];
        let p = slot.load(Ordering::Acquire, guard);
        // SAFETY: non-null entries stay valid while `guard` is pinned (epoch GC); entries
        // are immutable after publication.
        let Some(entry) = (unsafe { p.as_ref() }) else {
            return Read::Empty;
        };
        if entry.pos == cursor.next {
            cursor.next += 1;
            Read::Entry(entry)
        } else if entry.pos > cursor.next {
            // Overwritten since we last looked at the head: the writer lapped us.
            Read::Lapped {
                missed: entry.pos.saturating_sub(cap).saturating_sub(cursor.next) + 1,
            }
        } else {
            Read::Empty
        }
    }

    /// Moves a lapped cursor to the oldest entry still in the ring; returns how many it
    /// skipped. (While the writer is mid-publish the head can lag the slots by one entry, so a
    /// reader racing the writer may be told it is lapped again on the next read.)
    pub fn skip_to_oldest(&self, cursor: &mut Cursor) -> u64 {
        let head = self.head();
        let oldest = head.saturating_sub(self.capacity());
        let skipped = oldest.saturating_sub(cursor.next);
        cursor.next = cursor.next.max(oldest);
        cursor.seen = cursor.next;
        skipped
    }

    /// Moves a cursor to the head; returns how many entries it skipped.
    pub fn skip_to_head(&self, cursor: &mut Cursor) -> u64 {
        let head = self.head();
        let skipped = head.saturating_sub(cursor.next);
        cursor.next = head;
        cursor.seen = head;
        skipped
    }
}

/// Positions of the readers a writer chooses to wait for. The live engine never waits for a
/// reader; a replay at full speed does wait for its lossless clients (so a backtest over
/// WebSocket gets every frame instead of being lapped), through these marks.
#[derive(Debug, Default)]
pub struct Marks {
    marks: std::sync::Mutex<Vec<std::sync::Weak<AtomicU64>>>,
}

/// One reader's published position (see [`Marks`]); dropping it withdraws the reader.
#[derive(Debug)]
pub struct Mark(Arc<AtomicU64>);

impl Mark {
    /// Declares that the reader has read everything before `pos`.
    #[inline]
    pub fn set(&self, pos: u64) {
        self.0.store(pos, Ordering::Release);
    }
}

impl Marks {
    /// No readers.
    pub fn new() -> Marks {
        Marks::default()
    }

    /// Adds a reader positioned at `pos`.
    pub fn register(&self, pos: u64) -> Mark {
        let mark = Arc::new(AtomicU64::new(pos));
        let mut g = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        g.retain(|w| w.strong_count() > 0);
        g.push(Arc::downgrade(&mark));
        Mark(mark)
    }

    /// The lowest position of the readers still there; `None` when there are none.
    pub fn min(&self) -> Option<u64> {
        let g = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        g.iter()
            .filter_map(|w| w.upgrade())
            .map(|m| m.load(Ordering::Acquire))
            .min()
    }
}

/// Pins the current thread for a batch of reads or writes.
#[inline]
pub fn pin() -> Guard {
    epoch::pin()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickwire_sdk::wire::{Body, Venue};

    fn entry(i: u64) -> Entry {
        let f = Frame::new(Venue::Binance, i as u32, 0, 0, Body::Heartbeat);
        Entry::new(&f, i.to_le_bytes().to_vec().into_boxed_slice(), None, None)
    }

    fn value(e: &Entry) -> u64 {
        u64::from_le_bytes(e.bytes[..8].try_into().unwrap())
    }

    #[test]
    fn readers_see_every_entry_in_order() {
        let (mut w, r) = ring(8);
        let mut c1 = r.cursor_at_head();
        let mut c2 = r.cursor_at_head();
        let g = pin();
        for i in 0..5 {
            w.publish(entry(i), &g);
        }
        for c in [&mut c1, &mut c2] {
            for i in 0..5 {
                match r.read(c, &g) {
                    Read::Entry(e) => assert_eq!((e.pos, value(e)), (i, i)),
                    _ => panic!("expected entry {i}"),
                }
            }
            assert!(matches!(r.read(c, &g), Read::Empty));
        }
    }

    #[test]
    fn a_lapped_reader_is_told_how_far_behind() {
        let (mut w, r) = ring(4);
        let mut c = r.cursor_at_head();
        let g = pin();
        for i in 0..10 {
            w.publish(entry(i), &g);
        }
        match r.read(&mut c, &g) {
            Read::Lapped { missed } => assert_eq!(missed, 6),
            _ => panic!("expected lapped"),
        }
        assert_eq!(r.skip_to_oldest(&mut c), 6);
        match r.read(&mut c, &g) {
            Read::Entry(e) => assert_eq!(e.pos, 6),
            _ => panic!("expected entry 6"),
        }
        assert_eq!(r.skip_to_head(&mut c), 3);
        assert!(matches!(r.read(&mut c, &g), Read::Empty));
    }

    #[test]
    fn concurrent_readers_never_see_torn_or_reordered_entries() {
        let (mut w, r) = ring(64);
        const N: u64 = 200_000;
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let r = r.clone();
                let mut c = r.cursor_at_head();
                std::thread::spawn(move || {
                    let mut last: Option<u64> = None;
                    let mut seen = 0u64;
                    let mut skipped = 0u64;
                    while last != Some(N - 1) {
                        let g = pin();
                        match r.read(&mut c, &g) {
                            Read::Entry(e) => {
                                assert_eq!(value(e), e.pos, "entry content matches its position");
                                if let Some(l) = last {
                                    assert!(e.pos > l, "positions only increase");
                                }
                                last = Some(e.pos);
                                seen += 1;
                            }
                            Read::Empty => std::hint::spin_loop(),
                            Read::Lapped { missed } => {
                                assert!(missed >= 1);
                                // The head may lag the slot we saw by a publish or two:
                                // skipping can take more than one step.
                                skipped += r.skip_to_oldest(&mut c);
                            }
                        }
                    }
                    (seen, skipped)
                })
            })
            .collect();
        for i in 0..N {
            let g = pin();
            w.publish(entry(i), &g);
        }
        for h in readers {
            let (seen, skipped) = h.join().unwrap();
            assert_eq!(seen + skipped, N, "every entry was read or reported lost");
        }
    }
}
