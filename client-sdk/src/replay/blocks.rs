//! One recorded block, read into the spans of the frames a replay delivers, and cut into
//! zero-copy batches.

use std::collections::VecDeque;

use bytes::Bytes;

use super::select::Selection;
use crate::recording::format::BLOCK_HEADER_LEN;
use crate::recording::{
    BlockPos, BlockRecords, CorruptBlock, Recording, Step, TimeRange, frame_time,
};
use crate::seq::{Hole, SeqCheck, SeqTracker};
use crate::wire::{Batch, Instruments, Kind, access};

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

/// Where [`read_block`] reads from and what it updates.
pub(crate) struct Reader<'a> {
    pub(crate) rec: &'a Recording,
    /// `segments[i]` is segment `i`'s map as `Bytes`.
    pub(crate) segments: &'a [Bytes],
    pub(crate) pos: &'a mut BlockPos,
    pub(crate) range: &'a TimeRange,
    pub(crate) select: &'a Selection,
    /// Keep each frame's recorded time (to pace).
    pub(crate) keep_ts: bool,
    /// Checks each selected frame's `seq`, as the live client does on receipt.
    pub(crate) seq: &'a mut SeqTracker,
    /// Learns the selected Definition frames.
    pub(crate) instruments: &'a mut Instruments,
}

/// Reads the next block that may hold selected frames into a [`Block`]; `None` at the end of
/// the recording, an error in place of a damaged block. The selected frames are checked
/// (`seq`, definitions) here, in the one pass over the block, as the live client checks a
/// batch on receipt.
pub(crate) fn read_block(r: Reader<'_>) -> Option<Result<Block, CorruptBlock>> {
    let Reader {
        rec,
        segments,
        pos,
        range,
        select,
        keep_ts,
        seq,
        instruments,
    } = r;
    let payload = match rec.next_frames_block(pos, range, |ids| !select.may_match_any(ids))? {
        Ok(p) => p,
        Err(damage) => return Some(Err(damage)),
    };
    let segment = payload.segment;
    let start = payload.offset + BLOCK_HEADER_LEN;
    let base = payload.bytes.as_ptr() as usize;
    let bytes = segments[segment].slice(start..start + payload.bytes.len());
    let mut spans = Vec::with_capacity(payload.header.count as usize);
    let mut ts_list = Vec::new();
    let mut damage = VecDeque::new();
    let mut holes = VecDeque::new();
    // Every frame is in the range when the block's times are (the usual case).
    let all_in_range =
        range.contains(payload.header.first_ts) && range.contains(payload.header.last_ts);
    let mut records = BlockRecords::new(payload);
    loop {
        match records.step() {
            Step::Record { file_offset, bytes } => match access(bytes) {
                Ok(frame) => {
                    let ts = frame_time(frame.ts_publish.to_native(), frame.ts_recv.to_native());
                    let kind = frame.kind();
                    if !(all_in_range || range.contains(ts))
                        || !select.wants(frame.instrument.to_native(), kind.channel())
                    {
                        continue;
                    }
                    if kind == Kind::Definition {
                        instruments.observe(frame);
                    }
                    if let SeqCheck::Hole(h) = seq.check_kind(frame, kind) {
                        holes.push_back((spans.len(), h));
                    }
                    // A payload is at most 64 MiB: offsets and lengths fit in u32.
                    spans.push(((bytes.as_ptr() as usize - base) as u32, bytes.len() as u32));
                    if keep_ts {
                        ts_list.push(ts);
                    }
                }
                Err(e) => damage.push_back((
                    spans.len(),
                    rec.corrupt(
                        segment,
                        file_offset,
                        format!("record is not a valid frame: {e}"),
                    ),
                )),
            },
            Step::Damage {
                file_offset,
                reason,
            } => damage.push_back((spans.len(), rec.corrupt(segment, file_offset, reason))),
            Step::Done => break,
        }
    }
    Some(Ok(Block {
        bytes,
        spans,
        ts: ts_list,
        damage,
        holes,
        next: 0,
    }))
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
