//! Reading a recording: segments memory-mapped, frames handed out zero-copy.

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::ops::Deref;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::error::{CorruptBlock, RecordingError};
use super::files::{list_segments, map_file};
use super::filter::{Filter, TimeRange};
use super::format::{
    BLOCK_HEADER_LEN, BlockHeader, BlockKind, HeaderDefect, RawRecord, Records, SegmentHeader,
    decode_raw, decode_segment_header, frame_time, merge_instruments,
};
use super::scan::{Found, check_indexed_block, indexed, scan};
use crate::symbol::Symbol;
use crate::wire::{ArchivedFrame, Frame, InstrumentInfo, Kind, access, to_owned};

/// The error for a segment header defect.
pub(crate) fn header_error(path: &Path, defect: HeaderDefect) -> RecordingError {
    match defect {
        HeaderDefect::Version(found) => RecordingError::UnsupportedVersion {
            path: path.to_path_buf(),
            found,
        },
        HeaderDefect::Invalid { offset, reason } => RecordingError::BadHeader {
            path: path.to_path_buf(),
            offset: offset as u64,
            reason,
        },
        other => RecordingError::BadHeader {
            path: path.to_path_buf(),
            offset: 0,
            reason: other.to_string(),
        },
    }
}

/// Bytes at the end of the last segment that are not a complete block: a write in progress,
/// or one torn by a crash (which `RecordingWriter::open` cuts). Readers skip them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// File offset of the first byte of the tail.
    pub offset: u64,
    /// Bytes in the tail.
    pub bytes: u64,
    /// Why they are not a block.
    pub reason: String,
}

/// What a segment holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The file.
    pub path: PathBuf,
    /// Its number (order in the recording).
    pub number: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its header; `None` for a last segment that ends inside its header (being created, or
    /// torn while being created).
    pub header: Option<SegmentHeader>,
    /// Whether its blocks were found from its index (it was closed cleanly) rather than by
    /// scanning.
    pub indexed: bool,
    /// Sound frames and raw blocks.
    pub blocks: usize,
    /// Frames in sound blocks (from their headers).
    pub frames: u64,
    /// Raw exchange messages in sound blocks (from their headers).
    pub raw_frames: u64,
    /// Earliest frame timestamp, if any frame.
    pub first_ts: Option<u64>,
    /// Latest frame timestamp, if any frame.
    pub last_ts: Option<u64>,
    /// The instrument ids of its frames, from the index (`None` without an index).
    pub instrument_ids: Option<Vec<u32>>,
    /// Damaged regions found while opening (blocks whose damage only shows when their payload
    /// is read are reported by the iterators, not counted here).
    pub corrupt_blocks: usize,
    /// A torn tail (last segment only).
    pub torn_tail: Option<TornTail>,
}

struct Segment {
    info: SegmentInfo,
    map: Option<Mmap>,
    found: Vec<Found>,
    /// Instruments the index lists (known when the segment was closed).
    index_instruments: Vec<InstrumentInfo>,
}

impl Segment {
    fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or_default()
    }

    fn has_raw(&self) -> bool {
        self.info.header.as_ref().is_some_and(|h| h.has_raw())
    }
}

/// A recording opened for reading: every segment memory-mapped, blocks located.
///
/// Frames are read in place: [`frames`](Self::frames) validates each record once with
/// `wire::access` and hands out `&ArchivedFrame` views into the map, and the exact bytes the
/// writer stored. Damaged blocks are reported as [`CorruptBlock`] items and skipped; the rest
/// stays readable.
pub struct Recording {
    dir: PathBuf,
    segments: Vec<Segment>,
}

impl fmt::Debug for Recording {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recording")
            .field("dir", &self.dir)
            .field("segments", &self.segments.len())
            .finish()
    }
}

impl Recording {
    /// Opens the recording in `dir`: maps every segment, checks its header, and locates its
    /// blocks (from its index when it was closed cleanly and the index agrees with the block
    /// headers, else by scanning, which checks every block's CRC and resyncs past damage).
    ///
    /// A segment whose header is unreadable is an error naming the file; damaged blocks are
    /// not (they are reported while iterating). An empty directory is an empty recording.
    pub fn open(dir: impl AsRef<Path>) -> Result<Recording, RecordingError> {
        let dir = dir.as_ref().to_path_buf();
        let list = list_segments(&dir)?;
        let n = list.len();
        let segments = list
            .into_iter()
            .enumerate()
            .map(|(i, (number, path))| open_segment(number, path, i + 1 == n))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Recording { dir, segments })
    }

    /// The recording directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The segments, in order, with what they hold.
    pub fn segments(&self) -> impl ExactSizeIterator<Item = &SegmentInfo> {
        self.segments.iter().map(|s| &s.info)
    }

    /// Every instrument the segment headers and indexes list, by id (a later segment's entry
    /// replaces an earlier one's).
    pub fn instruments(&self) -> Vec<InstrumentInfo> {
        merge_instruments(self.segments.iter().flat_map(|s| {
            let header = s.info.header.iter().flat_map(|h| &h.meta.instruments);
            header.chain(&s.index_instruments)
        }))
    }

    /// The instrument id of a `venue:SYMBOL` name, looked up in [`instruments`](Self::instruments)
    /// (the symbol as the venue spells it; case is ignored when that is unambiguous).
    pub fn resolve(&self, name: &str) -> Result<u32, RecordingError> {
        let wanted: Symbol = name.parse()?;
        let all = self.instruments();
        let same_venue = || all.iter().filter(|i| i.venue == wanted.venue);
        if let Some(i) = same_venue().find(|i| i.symbol == wanted.symbol) {
            return Ok(i.id);
        }
        let mut folded = same_venue().filter(|i| i.symbol.eq_ignore_ascii_case(&wanted.symbol));
        if let (Some(i), None) = (folded.next(), folded.next()) {
            return Ok(i.id);
        }
        let mut known: Vec<String> = all.iter().take(20).map(|i| i.qualified()).collect();
        if all.len() > known.len() {
            known.push(format!("and {} more", all.len() - known.len()));
        }
        Err(RecordingError::UnknownInstrument {
            name: name.to_string(),
            known: if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            },
        })
    }

    /// Instrument ids of `venue:SYMBOL` names (see [`resolve`](Self::resolve)), for
    /// [`Filter::instruments`].
    pub fn resolve_all<'n>(
        &self,
        names: impl IntoIterator<Item = &'n str>,
    ) -> Result<HashSet<u32>, RecordingError> {
        names.into_iter().map(|n| self.resolve(n)).collect()
    }

    /// The frames that pass `filter`, in recording order (segment, block, record), each a
    /// zero-copy view; or, in place of a damaged block's frames, one [`CorruptBlock`].
    ///
    /// Blocks entirely outside the time range are skipped by the times in their headers (or
    /// the index) without reading their payload, and closed segments none of whose
    /// instruments pass by their index.
    pub fn frames(&self, filter: Filter) -> Frames<'_> {
        Frames {
            walk: Walk::new(self, BlockKind::Frames),
            filter,
            block: None,
        }
    }

    /// The next frames block from `pos` that may hold frames in `time`, or damage to report
    /// (as [`frames`](Self::frames) walks them); closed segments for whose instrument ids
    /// `skip_segment` is true are passed over whole.
    pub(crate) fn next_frames_block(
        &self,
        pos: &mut BlockPos,
        time: &TimeRange,
        skip_segment: impl Fn(&[u32]) -> bool,
    ) -> Option<Result<Payload<'_>, CorruptBlock>> {
        let mut walk = Walk {
            rec: self,
            kind: BlockKind::Frames,
            segment: pos.segment,
            next: pos.next,
        };
        let found = walk.next_block(time, skip_segment);
        *pos = BlockPos {
            segment: walk.segment,
            next: walk.next,
        };
        found
    }

    /// The bytes of segment `i` (empty for an unmapped, empty file).
    pub(crate) fn segment_bytes(&self, i: usize) -> &[u8] {
        self.segments.get(i).map(Segment::bytes).unwrap_or_default()
    }

    /// A [`CorruptBlock`] at `offset` of segment `segment`.
    pub(crate) fn corrupt(&self, segment: usize, offset: usize, reason: String) -> CorruptBlock {
        Walk::new(self, BlockKind::Frames).corrupt(segment, offset, reason)
    }

    /// The raw exchange messages filed in `range` (by `ts_recv`), in recording order; or, in
    /// place of a damaged block's messages, one [`CorruptBlock`].
    pub fn raw_frames(&self, range: impl Into<TimeRange>) -> RawFrames<'_> {
        RawFrames {
            walk: Walk::new(self, BlockKind::Raw),
            range: range.into(),
            block: None,
        }
    }
}

fn open_segment(number: u64, path: PathBuf, last: bool) -> Result<Segment, RecordingError> {
    let file = File::open(&path).map_err(RecordingError::io("open", &path))?;
    let len = file
        .metadata()
        .map_err(RecordingError::io("read metadata of", &path))?
        .len();
    let map = map_file(&file, len, &path)?;
    let bytes: &[u8] = map.as_deref().unwrap_or_default();
    let mut info = SegmentInfo {
        path,
        number,
        bytes: len,
        header: None,
        indexed: false,
        blocks: 0,
        frames: 0,
        raw_frames: 0,
        first_ts: None,
        last_ts: None,
        instrument_ids: None,
        corrupt_blocks: 0,
        torn_tail: None,
    };
    let header = match decode_segment_header(bytes) {
        Ok(h) => h,
        Err(defect @ HeaderDefect::Truncated { .. }) if last => {
            info.torn_tail = Some(TornTail {
                offset: 0,
                bytes: len,
                reason: defect.to_string(),
            });
            return Ok(Segment {
                info,
                map: None,
                found: Vec::new(),
                index_instruments: Vec::new(),
            });
        }
        Err(defect) => return Err(header_error(&info.path, defect)),
    };
    let data_start = header.data_start();
    let mut index_instruments = Vec::new();
    let found = match indexed(bytes, data_start) {
        Some((found, index)) => {
            info.indexed = true;
            info.instrument_ids = Some(index.instrument_ids);
            index_instruments = index.instruments;
            found
        }
        None => {
            let mut s = scan(bytes, data_start);
            if let Some((offset, reason)) = s.torn_tail {
                if last {
                    info.torn_tail = Some(TornTail {
                        offset: offset as u64,
                        bytes: (bytes.len() - offset) as u64,
                        reason,
                    });
                } else {
                    // Only the last segment can be in the middle of a write.
                    s.found.push(Found::Corrupt {
                        offset,
                        len: bytes.len() - offset,
                        reason: format!("torn tail in a segment that is not the last: {reason}"),
                        claimed: None,
                    });
                }
            }
            s.found
        }
    };
    for f in &found {
        match f {
            Found::Block { header, .. } => {
                match header.kind {
                    BlockKind::Frames => {
                        info.frames += header.count as u64;
                        info.first_ts = Some(
                            info.first_ts
                                .map_or(header.first_ts, |t| t.min(header.first_ts)),
                        );
                        info.last_ts = Some(
                            info.last_ts
                                .map_or(header.last_ts, |t| t.max(header.last_ts)),
                        );
                    }
                    BlockKind::Raw => info.raw_frames += header.count as u64,
                    BlockKind::Index => continue,
                }
                info.blocks += 1;
            }
            Found::Corrupt { .. } => info.corrupt_blocks += 1,
        }
    }
    info.header = Some(header);
    Ok(Segment {
        info,
        map,
        found,
        index_instruments,
    })
}

/// A sound block's payload, ready to split into records.
pub(crate) struct Payload<'a> {
    /// Index of its segment.
    pub(crate) segment: usize,
    /// File offset of the block (its header).
    pub(crate) offset: usize,
    /// Its header.
    pub(crate) header: BlockHeader,
    /// The payload: the bytes after the block header.
    pub(crate) bytes: &'a [u8],
}

impl Payload<'_> {
    /// Where this block is, as an owned value (to pass between threads).
    pub(crate) fn at(&self) -> BlockAt {
        BlockAt {
            segment: self.segment,
            offset: self.offset,
            header: self.header,
        }
    }
}

/// A sound block found by a walk (see [`Payload::at`]), without the borrow of its bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockAt {
    segment: usize,
    offset: usize,
    header: BlockHeader,
}

impl BlockAt {
    /// The block's payload in `rec` (the recording it was found in).
    pub(crate) fn payload(self, rec: &Recording) -> Payload<'_> {
        let start = self.offset + BLOCK_HEADER_LEN;
        Payload {
            segment: self.segment,
            offset: self.offset,
            header: self.header,
            bytes: &rec.segment_bytes(self.segment)[start..self.offset + self.header.block_len()],
        }
    }
}

/// Where a block walk stands, kept by readers that own their [`Recording`] (the SDK's
/// replay) and so cannot hold a borrowing iterator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BlockPos {
    segment: usize,
    next: usize,
}

/// Steps through the blocks of one kind, skipping blocks outside the time range by their
/// header times, checking the CRC of the others, and reporting damage.
struct Walk<'a> {
    rec: &'a Recording,
    kind: BlockKind,
    segment: usize,
    next: usize,
}

impl<'a> Walk<'a> {
    fn new(rec: &'a Recording, kind: BlockKind) -> Walk<'a> {
        Walk {
            rec,
            kind,
            segment: 0,
            next: 0,
        }
    }

    fn corrupt(&self, segment: usize, offset: usize, reason: String) -> CorruptBlock {
        CorruptBlock {
            file: self.rec.segments[segment].info.path.clone(),
            offset: offset as u64,
            reason,
        }
    }

    /// The next block to read, or damage to report. `skip_segment` says whether a closed
    /// segment can be passed over whole, given its instrument ids.
    fn next_block(
        &mut self,
        time: &TimeRange,
        skip_segment: impl Fn(&[u32]) -> bool,
    ) -> Option<Result<Payload<'a>, CorruptBlock>> {
        loop {
            let seg = self.rec.segments.get(self.segment)?;
            if self.next == 0
                && let Some(ids) = &seg.info.instrument_ids
                && skip_segment(ids)
            {
                self.segment += 1;
                continue;
            }
            let Some(found) = seg.found.get(self.next) else {
                self.segment += 1;
                self.next = 0;
                continue;
            };
            self.next += 1;
            match found {
                Found::Corrupt {
                    offset,
                    reason,
                    claimed,
                    ..
                } => {
                    let ours = match claimed {
                        Some(kind) => {
                            *kind == self.kind
                                || (*kind == BlockKind::Index && self.kind == BlockKind::Frames)
                        }
                        None => self.kind == BlockKind::Frames || seg.has_raw(),
                    };
                    if ours {
                        return Some(Err(self.corrupt(self.segment, *offset, reason.clone())));
                    }
                }
                Found::Block { offset, header } => {
                    if header.kind != self.kind || !time.overlaps(header.first_ts, header.last_ts) {
                        continue;
                    }
                    // Blocks found by scanning had their header and CRC checked then; blocks
                    // listed by an index are checked here, when they are first read.
                    let mut header = *header;
                    if seg.info.indexed {
                        match check_indexed_block(seg.bytes(), *offset, &header) {
                            Ok(h) => header = h,
                            Err(reason) => {
                                return Some(Err(self.corrupt(self.segment, *offset, reason)));
                            }
                        }
                    }
                    let payload =
                        &seg.bytes()[offset + BLOCK_HEADER_LEN..offset + header.block_len()];
                    return Some(Ok(Payload {
                        segment: self.segment,
                        offset: *offset,
                        header,
                        bytes: payload,
                    }));
                }
            }
        }
    }
}

/// Splits one block's payload into records, counting them against the header.
pub(crate) struct BlockRecords<'a> {
    segment: usize,
    offset: usize,
    expected: u32,
    seen: u32,
    records: Records<'a>,
}

/// One step of [`BlockRecords`].
pub(crate) enum Step<'a> {
    Record { file_offset: usize, bytes: &'a [u8] },
    Damage { file_offset: usize, reason: String },
    Done,
}

impl<'a> BlockRecords<'a> {
    pub(crate) fn new(p: Payload<'a>) -> BlockRecords<'a> {
        BlockRecords {
            segment: p.segment,
            offset: p.offset,
            expected: p.header.count,
            seen: 0,
            records: Records::new(p.bytes),
        }
    }

    /// The next record if it holds a plain frame (see [`Records::next_plain`]); `None`
    /// (and nothing consumed) for anything else, which [`Self::step`] then reads.
    #[inline]
    pub(crate) fn next_plain(&mut self) -> Option<(&'a [u8], &'a ArchivedFrame, Kind)> {
        let found = self.records.next_plain()?;
        self.seen += 1;
        Some(found)
    }

    #[inline]
    pub(crate) fn step(&mut self) -> Step<'a> {
        let payload_at = self.offset + BLOCK_HEADER_LEN;
        match self.records.next() {
            Some(Ok((at, bytes))) => {
                self.seen += 1;
                Step::Record {
                    file_offset: payload_at + at - 4,
                    bytes,
                }
            }
            Some(Err(reason)) => {
                self.seen = self.expected;
                Step::Damage {
                    file_offset: self.offset,
                    reason,
                }
            }
            None if self.seen != self.expected => {
                let reason = format!(
                    "block holds {} records, its header says {}",
                    self.seen, self.expected
                );
                self.seen = self.expected;
                Step::Damage {
                    file_offset: self.offset,
                    reason,
                }
            }
            None => Step::Done,
        }
    }
}

/// One recorded frame, read in place.
#[derive(Clone, Copy)]
pub struct FrameRef<'a> {
    frame: &'a ArchivedFrame,
    bytes: &'a [u8],
    ts: u64,
    segment: usize,
    offset: u64,
}

impl<'a> FrameRef<'a> {
    /// The frame (validated, zero-copy).
    pub fn frame(&self) -> &'a ArchivedFrame {
        self.frame
    }

    /// The frame's bytes exactly as recorded (as `wire::encode` produced them).
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The time the frame is filed under: `ts_publish` if set, else `ts_recv`.
    pub fn ts(&self) -> u64 {
        self.ts
    }

    /// The frame's instrument id.
    pub fn instrument(&self) -> u32 {
        self.frame.instrument.to_native()
    }

    /// Index of its segment in [`Recording::segments`].
    pub fn segment(&self) -> usize {
        self.segment
    }

    /// File offset of its record (the record's length prefix) in the segment file.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// An owned copy of the frame.
    pub fn to_frame(&self) -> Frame {
        to_owned(self.frame)
    }
}

impl Deref for FrameRef<'_> {
    type Target = ArchivedFrame;
    fn deref(&self) -> &ArchivedFrame {
        self.frame
    }
}

impl fmt::Debug for FrameRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameRef")
            .field("segment", &self.segment)
            .field("offset", &self.offset)
            .field("ts", &self.ts)
            .field("frame", self.frame)
            .finish()
    }
}

/// Iterator of [`Recording::frames`].
pub struct Frames<'a> {
    walk: Walk<'a>,
    filter: Filter,
    block: Option<BlockRecords<'a>>,
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<FrameRef<'a>, CorruptBlock>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let Some(block) = &mut self.block else {
                let filter = &self.filter;
                match self
                    .walk
                    .next_block(&filter.time, |ids| !filter.may_match_any(ids))?
                {
                    Ok(payload) => self.block = Some(BlockRecords::new(payload)),
                    Err(corrupt) => return Some(Err(corrupt)),
                }
                continue;
            };
            match block.step() {
                Step::Record { file_offset, bytes } => match access(bytes) {
                    Ok(frame) => {
                        let ts =
                            frame_time(frame.ts_publish.to_native(), frame.ts_recv.to_native());
                        if self.filter.matches(ts, frame.instrument.to_native()) {
                            return Some(Ok(FrameRef {
                                frame,
                                bytes,
                                ts,
                                segment: block.segment,
                                offset: file_offset as u64,
                            }));
                        }
                    }
                    Err(e) => {
                        let segment = block.segment;
                        return Some(Err(self.walk.corrupt(
                            segment,
                            file_offset,
                            format!("record is not a valid frame: {e}"),
                        )));
                    }
                },
                Step::Damage {
                    file_offset,
                    reason,
                } => {
                    let segment = block.segment;
                    return Some(Err(self.walk.corrupt(segment, file_offset, reason)));
                }
                Step::Done => self.block = None,
            }
        }
    }
}

/// Iterator of [`Recording::raw_frames`].
pub struct RawFrames<'a> {
    walk: Walk<'a>,
    range: TimeRange,
    block: Option<BlockRecords<'a>>,
}

impl<'a> Iterator for RawFrames<'a> {
    type Item = Result<RawRecord<'a>, CorruptBlock>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let Some(block) = &mut self.block else {
                match self.walk.next_block(&self.range, |_| false)? {
                    Ok(payload) => self.block = Some(BlockRecords::new(payload)),
                    Err(corrupt) => return Some(Err(corrupt)),
                }
                continue;
            };
            match block.step() {
                Step::Record { file_offset, bytes } => match decode_raw(bytes) {
                    Some(raw) if self.range.contains(raw.ts_recv) => return Some(Ok(raw)),
                    Some(_) => {}
                    None => {
                        let segment = block.segment;
                        return Some(Err(self.walk.corrupt(
                            segment,
                            file_offset,
                            "raw record shorter than its 10-byte prefix".to_string(),
                        )));
                    }
                },
                Step::Damage {
                    file_offset,
                    reason,
                } => {
                    let segment = block.segment;
                    return Some(Err(self.walk.corrupt(segment, file_offset, reason)));
                }
                Step::Done => self.block = None,
            }
        }
    }
}
