//! One recorded block, read into the spans of the frames a replay delivers, and cut into
//! zero-copy batches.

use std::collections::VecDeque;

use bytes::Bytes;

use super::select::Selection;
use crate::recording::format::BLOCK_HEADER_LEN;
use crate::recording::{
    BlockRecords, CorruptBlock, Payload, Recording, Step, TimeRange, frame_time,
};
use crate::seq::{Hole, SeqCheck, SeqTracker};
use crate::wire::{ArchivedFrame, Batch, Instruments, Kind, access};

/// The selected frames of one block: spans into its payload, which `bytes` holds (a slice of
/// the segment's map), and the damage found among its records, in order.
pub(crate) struct Block {
    bytes: Bytes,
    /// `(offset, len)` in `bytes` of each selected frame, validated.
    spans: Vec<(u32, u32)>,
    /// Recorded time of each span (only when paced).
    ts: Vec<u64>,
    /// Damage to report before span `.0`.
    damage: VecDeque<(usize, CorruptBlock)>,
    /// Holes in `seq` found at span `.0`, to report before the batch holding it.
    holes: VecDeque<(usize, Hole)>,
    /// First span not handed out yet.
    next: usize,
}

/// What comes next out of a [`Block`].
pub(crate) enum Cut {
    /// Damage, reported before the frames after it.
    Damage(CorruptBlock),
    /// Frames `[start, end)` may go out (`end` is at the next damage, or the block's end).
    Frames { start: usize, end: usize },
    /// Nothing left.
    Done,
}

/// What [`read_block`] reads with and what it updates.
pub(crate) struct Reader<'a> {
    pub(crate) rec: &'a Recording,
    /// `segments[i]` is segment `i`'s map as `Bytes`.
    pub(crate) segments: &'a [Bytes],
    pub(crate) range: &'a TimeRange,
    pub(crate) select: &'a Selection,
    /// Keep each frame's recorded time (to pace).
    pub(crate) keep_ts: bool,
    /// Checks each selected frame's `seq`, as the live client does on receipt.
    pub(crate) seq: &'a mut SeqTracker,
    /// Learns the selected Definition frames.
    pub(crate) instruments: &'a mut Instruments,
}

/// Reads a sound block (found by [`Recording::next_frames_block`], its CRC checked) into a
/// [`Block`]: its selected frames, validated. They are checked (`seq`, definitions) here, in
/// the one pass over the block, as the live client checks a batch on receipt.
pub(crate) fn read_block(r: Reader<'_>, payload: Payload<'_>) -> Block {
    let segment = payload.segment;
    let start = payload.offset + BLOCK_HEADER_LEN;
    let mut pick = Pick {
        base: payload.bytes.as_ptr() as usize,
        // Every frame is in the range when the block's times are (the usual case).
        all_in_range: r.range.contains(payload.header.first_ts)
            && r.range.contains(payload.header.last_ts),
        last: Last {
            id: 0,
            kinds: Selection::kinds(r.select.mask(0)),
            slot: None,
        },
        spans: Vec::with_capacity(payload.header.count as usize),
        ts: Vec::new(),
        holes: VecDeque::new(),
        bytes: r.segments[segment].slice(start..start + payload.bytes.len()),
        r,
    };
    let mut damage = VecDeque::new();
    let mut records = BlockRecords::new(payload);
    loop {
        // Most records hold plain frames: validated by their tags, without the step below.
        if let Some((bytes, frame, kind)) = records.next_plain() {
            pick.keep(frame, bytes, kind);
            continue;
        }
        match records.step() {
            Step::Record { file_offset, bytes } => match access(bytes) {
                Ok(frame) => pick.keep(frame, bytes, frame.kind()),
                Err(e) => damage.push_back((
                    pick.spans.len(),
                    pick.r.rec.corrupt(
                        segment,
                        file_offset,
                        format!("record is not a valid frame: {e}"),
                    ),
                )),
            },
            Step::Damage {
                file_offset,
                reason,
            } => damage.push_back((
                pick.spans.len(),
                pick.r.rec.corrupt(segment, file_offset, reason),
            )),
            Step::Done => break,
        }
    }
    Block {
        bytes: pick.bytes,
        spans: pick.spans,
        ts: pick.ts,
        damage,
        holes: pick.holes,
        next: 0,
    }
}

/// The frames of one block picked so far, and what picking them needs.
struct Pick<'a> {
    r: Reader<'a>,
    /// Address of the block's payload (spans are offsets from it).
    base: usize,
    /// The block's time span is inside the range.
    all_in_range: bool,
    /// The instrument seen last, its subscription and its `seq` slot once needed (runs of
    /// one instrument are common).
    last: Last,
    bytes: Bytes,
    spans: Vec<(u32, u32)>,
    ts: Vec<u64>,
    holes: VecDeque<(usize, Hole)>,
}

/// See [`Pick::last`].
struct Last {
    id: u32,
    /// The kinds delivered ([`Selection::kinds`]).
    kinds: u8,
    slot: Option<usize>,
}

impl Pick<'_> {
    /// Keeps `frame` (validated; `bytes` are its bytes in the payload) if it is selected,
    /// checking its `seq`.
    #[inline(always)]
    fn keep(&mut self, frame: &ArchivedFrame, bytes: &[u8], kind: Kind) {
        let ts = frame_time(frame.ts_publish.to_native(), frame.ts_recv.to_native());
        let id = frame.instrument.to_native();
        if id != self.last.id {
            self.last = Last {
                id,
                kinds: Selection::kinds(self.r.select.mask(id)),
                slot: None,
            };
        }
        if !(self.all_in_range || self.r.range.contains(ts))
            || self.last.kinds & 1 << kind as u8 == 0
        {
            return;
        }
        if kind == Kind::Definition {
            self.r.instruments.observe(frame);
        }
        let slot = match self.last.slot {
            Some(slot) => slot,
            None => *self.last.slot.insert(self.r.seq.slot(id)),
        };
        if let SeqCheck::Hole(h) = self.r.seq.check_frame_in(slot, frame, kind) {
            self.holes.push_back((self.spans.len(), h));
        }
        // A payload is at most 64 MiB: offsets and lengths fit in u32.
        let offset = (bytes.as_ptr() as usize - self.base) as u32;
        self.spans.push((offset, bytes.len() as u32));
        if self.r.keep_ts {
            self.ts.push(ts);
        }
    }
}

impl Block {
    /// What comes next.
    pub(crate) fn cut(&mut self) -> Cut {
        match self.damage.front() {
            Some((at, _)) if *at == self.next => {
                let Some((_, d)) = self.damage.pop_front() else {
                    return Cut::Done;
                };
                Cut::Damage(d)
            }
            Some((at, _)) => Cut::Frames {
                start: self.next,
                end: *at,
            },
            None if self.next < self.spans.len() => Cut::Frames {
                start: self.next,
                end: self.spans.len(),
            },
            None => Cut::Done,
        }
    }

    /// The next hole found at a span before `end`, in order.
    pub(crate) fn hole_before(&mut self, end: usize) -> Option<Hole> {
        match self.holes.front() {
            Some((at, _)) if *at < end => self.holes.pop_front().map(|(_, h)| h),
            _ => None,
        }
    }

    /// Recorded time of span `i` (paced blocks only).
    pub(crate) fn ts(&self, i: usize) -> u64 {
        self.ts[i]
    }

    /// The frames `[start, end)` as a batch over the block's bytes; they are handed out.
    pub(crate) fn take(&mut self, start: usize, end: usize) -> Batch<Bytes> {
        let spans = if start == 0 && end == self.spans.len() && self.damage.is_empty() {
            // The whole block (the usual case at full speed): no copy of the spans either.
            self.next = 0;
            std::mem::take(&mut self.spans)
        } else {
            self.next = end;
            self.spans[start..end].to_vec()
        };
        // SAFETY: every span was made in `read_block` from a record that `access` accepted,
        // as an offset into `self.bytes`; `Bytes` is read-only and the segment map under it
        // is never written (see `recording::files::map_file`).
        unsafe { Batch::from_validated(self.bytes.clone(), spans) }
    }
}
