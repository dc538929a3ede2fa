//! Writing a recording: blocks appended to segment files with one write each, rotation by size
//! and by age, an index when a segment is closed, and recovery of a torn tail on reopen.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::error::{CorruptBlock, RecordingError};
use super::files::{list_segments, map_file, segment_name};
use super::format::{
    BLOCK_HEADER_LEN, BlockBuilder, BlockKind, HeaderDefect, Index, IndexEntry, MAX_BLOCK_PAYLOAD,
    MAX_RECORD_LEN, RAW_RECORD_PREFIX, Records, SEGMENT_FLAG_RAW, SegmentMeta,
    decode_index_payload, decode_segment_header, encode_footer, encode_index_block,
    encode_segment_header, frame_time, merge_instruments,
};
use super::scan::{Found, plan_recovery};
use crate::wire::{
    ArchivedBody, ArchivedFrame, Body, Encoder, Frame, InstrumentInfo, Venue, access,
};

/// What the writer puts in each segment header's `writer` field.
pub const WRITER_NAME: &str = concat!("tickwire-sdk ", env!("CARGO_PKG_VERSION"));

/// A segment is closed once its index would list this many blocks.
const MAX_INDEX_ENTRIES: usize = 1 << 20;
/// A segment is closed once its frames carry this many distinct instrument ids.
const MAX_INDEX_IDS: usize = 1 << 22;

/// When the writer asks the OS to put written bytes on disk (`fsync`).
///
/// Whatever the policy, a block is handed to the OS in one write when it is complete or on
/// [`RecordingWriter::flush`], so it survives the writer process being killed; the policy only
/// matters for a machine that loses power.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// Never: the OS writes back when it likes.
    Never,
    /// After every block (slow: one fsync per block).
    EveryBlock,
    /// When a segment is created or closed (rotation and [`RecordingWriter::close`]).
    #[default]
    OnRotate,
}

/// How a [`RecordingWriter`] cuts blocks and segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterOptions {
    /// A segment is closed once it holds this many bytes (it may exceed it by up to one block
    /// and its index). Default 256 MiB.
    pub max_segment_bytes: u64,
    /// A segment is closed when a record arrives whose timestamp is this much later than the
    /// segment's first record's: rotation follows the recorded time, not the wall clock.
    /// `None`: no time-based rotation. Default one hour.
    pub max_segment_age: Option<Duration>,
    /// A block is written once it holds this many records. Default 1024.
    pub records_per_block: u32,
    /// A block is written once its payload reaches this many bytes (and before a record that
    /// would take it past this). Default 1 MiB; at most 64 MiB.
    pub max_block_bytes: usize,
    /// Keep raw exchange messages given to [`RecordingWriter::append_raw`]; when false they are
    /// dropped. Default false.
    pub keep_raw: bool,
    /// When to fsync. Default [`FsyncPolicy::OnRotate`].
    pub fsync: FsyncPolicy,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            max_segment_bytes: 256 << 20,
            max_segment_age: Some(Duration::from_secs(3600)),
            records_per_block: 1024,
            max_block_bytes: 1 << 20,
            keep_raw: false,
            fsync: FsyncPolicy::OnRotate,
        }
    }
}

impl WriterOptions {
    fn validate(&self) -> Result<(), RecordingError> {
        let bad = |m: &str| Err(RecordingError::BadOptions(m.to_string()));
        if self.records_per_block == 0 {
            return bad("records_per_block must be at least 1");
        }
        if self.max_block_bytes < 64 || self.max_block_bytes > MAX_BLOCK_PAYLOAD {
            return bad("max_block_bytes must be between 64 bytes and 64 MiB");
        }
        if self.max_segment_bytes == 0 {
            return bad("max_segment_bytes must be at least 1");
        }
        if self.max_segment_age == Some(Duration::ZERO) {
            return bad("max_segment_age must be longer than zero (or None)");
        }
        Ok(())
    }

    fn max_age_ns(&self) -> Option<u64> {
        self.max_segment_age
            .map(|a| u64::try_from(a.as_nanos()).unwrap_or(u64::MAX))
    }
}

/// What opening a recording for append did to one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The segment file.
    pub segment: PathBuf,
    /// The torn tail that was cut off, if any.
    pub cut: Option<Cut>,
    /// The file was removed: it ended inside its header (torn while being created), so it
    /// held no record.
    pub removed: bool,
    /// An index and footer were written: the segment had not been closed.
    pub sealed: bool,
    /// Damaged blocks in the middle of the segment. They are left in place (readers report
    /// them and read on); the segment is then not sealed.
    pub corrupt: Vec<CorruptBlock>,
}

impl Recovery {
    /// True when the segment had been closed cleanly and nothing was done.
    pub fn is_clean(&self) -> bool {
        self.cut.is_none() && !self.removed && !self.sealed && self.corrupt.is_empty()
    }
}

impl fmt::Display for Recovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.segment.display())?;
        if self.removed {
            write!(f, "removed (it ended inside its header)")?;
        } else if let Some(cut) = &self.cut {
            write!(
                f,
                "cut {} torn bytes at offset {} ({})",
                cut.bytes, cut.offset, cut.reason
            )?;
        } else {
            write!(f, "no torn tail")?;
        }
        if self.sealed {
            write!(f, "; index written")?;
        }
        if !self.corrupt.is_empty() {
            write!(f, "; {} corrupt blocks left in place", self.corrupt.len())?;
        }
        Ok(())
    }
}

/// Bytes cut off the end of a segment by recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// Where the torn tail started (the file's length after the cut).
    pub offset: u64,
    /// How many bytes were cut.
    pub bytes: u64,
    /// Why those bytes were not a sound block.
    pub reason: String,
}

/// The segment being written.
struct OpenSegment {
    file: File,
    path: PathBuf,
    first_ts: u64,
    len: u64,
    entries: Vec<IndexEntry>,
    ids: BTreeSet<u32>,
}

/// Writes a recording directory: frames (and optionally raw exchange messages) in blocks, in
/// segment files rotated by size and age.
///
/// Segments are created when their first record arrives, so a writer that records nothing
/// leaves no file. Call [`close`](Self::close) at the end: it writes the last segment's index.
/// A writer that is dropped instead writes its pending blocks but no index (like a crash
/// after a flush: readers scan such a segment, and the next [`open`](Self::open) seals it).
pub struct RecordingWriter {
    dir: PathBuf,
    options: WriterOptions,
    instruments: BTreeMap<u32, InstrumentInfo>,
    next_number: u64,
    segment: Option<OpenSegment>,
    frames: BlockBuilder,
    raw: BlockBuilder,
    encoder: Encoder,
    recovery: Vec<Recovery>,
    rotate_due: bool,
}

impl fmt::Debug for RecordingWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordingWriter")
            .field("dir", &self.dir)
            .field("segment", &self.segment.as_ref().map(|s| &s.path))
            .field("next_number", &self.next_number)
            .finish_non_exhaustive()
    }
}

impl RecordingWriter {
    /// Starts a new recording in `dir` (created if missing; it must hold no segment file).
    /// `instruments` go into the first segment's header.
    pub fn create(
        dir: impl AsRef<Path>,
        options: WriterOptions,
        instruments: &[InstrumentInfo],
    ) -> Result<RecordingWriter, RecordingError> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(RecordingError::io("create", &dir))?;
        let existing = list_segments(&dir)?;
        if !existing.is_empty() {
            return Err(RecordingError::AlreadyExists {
                dir,
                segments: existing.len(),
            });
        }
        let mut w = RecordingWriter::new(dir, options, 1);
        w.instruments = instruments.iter().map(|i| (i.id, i.clone())).collect();
        Ok(w)
    }

    /// Opens an existing recording to append to it.
    ///
    /// The last segment is recovered first: a torn tail (a partial block, a block whose CRC
    /// fails at the very end, trailing garbage) is cut, and a segment that was not closed gets
    /// its index. Everything before the torn tail is kept. [`recovery`](Self::recovery) says
    /// what was done. New records go to a new segment. The instrument list carries over from
    /// the last segment (its header and the Definitions in it).
    ///
    /// No reader may have the recording open while this runs: cutting a file that another
    /// process has mapped makes that process crash when it reads the cut bytes.
    pub fn open(
        dir: impl AsRef<Path>,
        options: WriterOptions,
    ) -> Result<RecordingWriter, RecordingError> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        let mut segments = list_segments(&dir)?;
        let Some(&(last_number, _)) = segments.last() else {
            return Err(RecordingError::NoRecording { dir });
        };
        let mut w = RecordingWriter::new(dir, options, last_number + 1);
        while let Some((_, path)) = segments.pop() {
            let (report, instruments) = recover_segment(&path)?;
            w.recovery.push(report);
            if let Some(list) = instruments {
                w.instruments = list.into_iter().map(|i| (i.id, i)).collect();
                break;
            }
        }
        Ok(w)
    }

    fn new(dir: PathBuf, options: WriterOptions, next_number: u64) -> RecordingWriter {
        RecordingWriter {
            dir,
            options,
            instruments: BTreeMap::new(),
            next_number,
            segment: None,
            frames: BlockBuilder::new(BlockKind::Frames),
            raw: BlockBuilder::new(BlockKind::Raw),
            encoder: Encoder::new(),
            recovery: Vec::new(),
            rotate_due: false,
        }
    }

    /// What [`open`](Self::open) did to the segments it recovered, last segment first (more
    /// than one only when a segment torn while being created was removed). Empty after
    /// [`create`](Self::create).
    pub fn recovery(&self) -> &[Recovery] {
        &self.recovery
    }

    /// The recording directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The segment file being written, if one is open.
    pub fn current_segment(&self) -> Option<&Path> {
        self.segment.as_ref().map(|s| s.path.as_path())
    }

    /// The instruments the next segment's header will list.
    pub fn instruments(&self) -> impl ExactSizeIterator<Item = &InstrumentInfo> {
        self.instruments.values()
    }

    /// Records one frame (encoded here with `wire::Encoder`, as `wire::encode` would).
    /// A Definition frame also adds its instrument to the list the next headers carry.
    pub fn append_frame(&mut self, frame: &Frame) -> Result<(), RecordingError> {
        let ts = frame_time(frame.ts_publish, frame.ts_recv);
        let definition = match &frame.body {
            Body::Definition(d) => Venue::from_id(frame.venue).map(|venue| InstrumentInfo {
                id: frame.instrument,
                venue,
                symbol: d.symbol.clone(),
                price_decimals: d.price_decimals,
                qty_decimals: d.qty_decimals,
            }),
            _ => None,
        };
        let mut encoder = std::mem::take(&mut self.encoder);
        let bytes = encoder.encode(frame);
        let result = self.push_frame(ts, frame.instrument, definition, bytes);
        self.encoder = encoder;
        result
    }

    /// Records one frame given as its encoded bytes (as `wire::encode` produces them, e.g.
    /// the bytes the engine already broadcasts). The bytes are validated once (the time and
    /// instrument are read from them, so filters always agree with the frame) and stored
    /// unchanged: replay returns them byte for byte.
    pub fn append_encoded(&mut self, bytes: &[u8]) -> Result<(), RecordingError> {
        let frame = access(bytes).map_err(RecordingError::InvalidFrame)?;
        let ts = frame_time(frame.ts_publish.to_native(), frame.ts_recv.to_native());
        let instrument = frame.instrument.to_native();
        self.push_frame(ts, instrument, definition_of(frame), bytes)
    }

    /// Records one raw exchange message (if [`WriterOptions::keep_raw`]; otherwise does
    /// nothing), filed under `ts_recv`.
    pub fn append_raw(
        &mut self,
        venue: u16,
        ts_recv: u64,
        bytes: &[u8],
    ) -> Result<(), RecordingError> {
        if !self.options.keep_raw {
            return Ok(());
        }
        let len = RAW_RECORD_PREFIX + bytes.len();
        if len > MAX_RECORD_LEN {
            return Err(RecordingError::RecordTooLarge {
                len,
                max: MAX_RECORD_LEN,
            });
        }
        self.prepare(ts_recv)?;
        self.push(
            BlockKind::Raw,
            ts_recv,
            &[&ts_recv.to_le_bytes(), &venue.to_le_bytes(), bytes],
        )
    }

    /// Writes the pending blocks, even if not full, so that everything appended so far
    /// survives this process being killed (and, with [`FsyncPolicy::EveryBlock`], the machine
    /// losing power).
    pub fn flush(&mut self) -> Result<(), RecordingError> {
        self.write_block(BlockKind::Frames)?;
        self.write_block(BlockKind::Raw)
    }

    /// Writes the pending blocks and the current segment's index, and closes it.
    pub fn close(mut self) -> Result<(), RecordingError> {
        self.seal_segment()
    }

    fn push_frame(
        &mut self,
        ts: u64,
        instrument: u32,
        definition: Option<InstrumentInfo>,
        bytes: &[u8],
    ) -> Result<(), RecordingError> {
        if bytes.len() > MAX_RECORD_LEN {
            return Err(RecordingError::RecordTooLarge {
                len: bytes.len(),
                max: MAX_RECORD_LEN,
            });
        }
        self.prepare(ts)?;
        if let Some(info) = definition {
            self.instruments.insert(info.id, info);
        }
        if let Some(seg) = &mut self.segment {
            seg.ids.insert(instrument);
            if seg.ids.len() >= MAX_INDEX_IDS {
                self.rotate_due = true;
            }
        }
        self.push(BlockKind::Frames, ts, &[bytes])
    }

    /// Rotates if due and makes sure a segment is open for a record filed under `ts`.
    fn prepare(&mut self, ts: u64) -> Result<(), RecordingError> {
        if let Some(seg) = &self.segment {
            let aged = self
                .options
                .max_age_ns()
                .is_some_and(|age| ts.saturating_sub(seg.first_ts) >= age);
            if self.rotate_due || aged {
                self.seal_segment()?;
            }
        }
        if self.segment.is_none() {
            self.start_segment(ts)?;
        }
        Ok(())
    }

    fn push(&mut self, kind: BlockKind, ts: u64, parts: &[&[u8]]) -> Result<(), RecordingError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let max_bytes = self.options.max_block_bytes;
        let max_records = self.options.records_per_block;
        let builder = self.builder(kind);
        if !builder.is_empty() && builder.payload_len() + BlockBuilder::record_size(len) > max_bytes
        {
            self.write_block(kind)?;
        }
        let builder = self.builder(kind);
        builder.push(ts, parts);
        if builder.count() >= max_records || builder.payload_len() >= max_bytes {
            self.write_block(kind)?;
        }
        Ok(())
    }

    fn builder(&mut self, kind: BlockKind) -> &mut BlockBuilder {
        match kind {
            BlockKind::Raw => &mut self.raw,
            _ => &mut self.frames,
        }
    }

    fn start_segment(&mut self, first_ts: u64) -> Result<(), RecordingError> {
        let path = self.dir.join(segment_name(self.next_number, first_ts));
        let flags = if self.options.keep_raw {
            SEGMENT_FLAG_RAW
        } else {
            0
        };
        let header = encode_segment_header(
            flags,
            &SegmentMeta {
                created_ns: now_ns(),
                writer: WRITER_NAME.to_string(),
                instruments: self.instruments.values().cloned().collect(),
            },
        );
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(RecordingError::io("create", &path))?;
        if let Err(e) = file.write_all(&header) {
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Err(RecordingError::io("write to", &path)(e));
        }
        if self.options.fsync != FsyncPolicy::Never {
            file.sync_all()
                .map_err(RecordingError::io("fsync", &path))?;
            sync_dir(&self.dir)?;
        }
        self.next_number += 1;
        self.segment = Some(OpenSegment {
            file,
            path,
            first_ts,
            len: header.len() as u64,
            entries: Vec::new(),
            ids: BTreeSet::new(),
        });
        Ok(())
    }

    /// Appends the pending block of `kind`, if any, with one write.
    fn write_block(&mut self, kind: BlockKind) -> Result<(), RecordingError> {
        let builder = match kind {
            BlockKind::Raw => &mut self.raw,
            _ => &mut self.frames,
        };
        if builder.is_empty() {
            return Ok(());
        }
        // Records are only pushed after `prepare` opened a segment, and a segment is only
        // closed after its pending blocks were written.
        let Some(seg) = self.segment.as_mut() else {
            return Ok(());
        };
        let (bytes, header) = builder.finish();
        append(seg, bytes)?;
        seg.entries.push(IndexEntry::of(seg.len, &header));
        seg.len += bytes.len() as u64;
        builder.clear();
        if self.options.fsync == FsyncPolicy::EveryBlock {
            seg.file
                .sync_data()
                .map_err(RecordingError::io("fsync", &seg.path))?;
        }
        if seg.len >= self.options.max_segment_bytes || seg.entries.len() >= MAX_INDEX_ENTRIES {
            self.rotate_due = true;
        }
        Ok(())
    }

    /// Writes the pending blocks, the index and the footer, and closes the segment.
    fn seal_segment(&mut self) -> Result<(), RecordingError> {
        self.write_block(BlockKind::Frames)?;
        self.write_block(BlockKind::Raw)?;
        let Some(seg) = self.segment.as_mut() else {
            return Ok(());
        };
        let index = Index {
            entries: seg.entries.clone(),
            instrument_ids: seg.ids.iter().copied().collect(),
            instruments: self.instruments.values().cloned().collect(),
        };
        let mut bytes = encode_index_block(&index);
        bytes.extend_from_slice(&encode_footer(seg.len));
        append(seg, &bytes)?;
        if self.options.fsync != FsyncPolicy::Never {
            seg.file
                .sync_all()
                .map_err(RecordingError::io("fsync", &seg.path))?;
        }
        self.segment = None;
        self.rotate_due = false;
        Ok(())
    }
}

impl Drop for RecordingWriter {
    fn drop(&mut self) {
        // Best effort: what was appended reaches the file; the index is left to `close`
        // (or to recovery on the next open).
        let _ = self.flush();
    }
}

/// Appends `bytes` at the segment's end with one write; on failure, cuts the file back so no
/// partial block is left before the next one.
fn append(seg: &mut OpenSegment, bytes: &[u8]) -> Result<(), RecordingError> {
    if let Err(e) = seg.file.write_all(bytes) {
        let _ = seg.file.set_len(seg.len);
        let _ = seg.file.seek(SeekFrom::Start(seg.len));
        return Err(RecordingError::io("write to", &seg.path)(e));
    }
    Ok(())
}

fn definition_of(frame: &ArchivedFrame) -> Option<InstrumentInfo> {
    let ArchivedBody::Definition(d) = &frame.body else {
        return None;
    };
    Some(InstrumentInfo {
        id: frame.instrument.to_native(),
        venue: frame.venue()?,
        symbol: d.symbol.as_str().to_string(),
        price_decimals: d.price_decimals,
        qty_decimals: d.qty_decimals,
    })
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<(), RecordingError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(RecordingError::io("fsync", dir))
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<(), RecordingError> {
    Ok(())
}

/// Recovers one segment for append. Returns the report and, unless the file was removed, the
/// instruments known at its end (its header's, then its index's or its Definitions').
fn recover_segment(path: &Path) -> Result<(Recovery, Option<Vec<InstrumentInfo>>), RecordingError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(RecordingError::io("open", path))?;
    let len = file
        .metadata()
        .map_err(RecordingError::io("read metadata of", path))?
        .len();
    let mut report = Recovery {
        segment: path.to_path_buf(),
        cut: None,
        removed: false,
        sealed: false,
        corrupt: Vec::new(),
    };
    let map = map_file(&file, len, path)?;
    let bytes: &[u8] = map.as_deref().unwrap_or_default();
    let header = match decode_segment_header(bytes) {
        Ok(h) => h,
        Err(defect @ HeaderDefect::Truncated { .. }) => {
            drop(map);
            drop(file);
            std::fs::remove_file(path).map_err(RecordingError::io("remove", path))?;
            report.removed = true;
            report.cut = Some(Cut {
                offset: 0,
                bytes: len,
                reason: defect.to_string(),
            });
            return Ok((report, None));
        }
        Err(defect) => return Err(super::reader::header_error(path, defect)),
    };
    let plan = plan_recovery(bytes, header.data_start());

    // What the index (or, without one, the frames) say about instruments.
    let mut instruments = header.meta.instruments.clone();
    let mut ids = BTreeSet::new();
    if let Some(index_offset) = plan.scan.sealed
        && let Ok(index) = decode_index_payload(&bytes[index_offset + BLOCK_HEADER_LEN..])
    {
        instruments.extend(index.instruments);
    } else {
        for found in &plan.scan.found {
            let Found::Block { offset, header } = found else {
                continue;
            };
            if header.kind != BlockKind::Frames {
                continue;
            }
            let payload = &bytes[offset + BLOCK_HEADER_LEN..offset + header.block_len()];
            for (_, record) in Records::new(payload).flatten() {
                if let Ok(frame) = access(record) {
                    ids.insert(frame.instrument.to_native());
                    instruments.extend(definition_of(frame));
                }
            }
        }
    }
    let instruments = merge_instruments(&instruments);
    for found in &plan.scan.found {
        if let Found::Corrupt { offset, reason, .. } = found {
            report.corrupt.push(CorruptBlock {
                file: path.to_path_buf(),
                offset: *offset as u64,
                reason: reason.clone(),
            });
        }
    }
    drop(map);

    let mut end = len;
    if let Some((offset, reason)) = &plan.truncate {
        end = *offset as u64;
        file.set_len(end)
            .map_err(RecordingError::io("truncate", path))?;
        report.cut = Some(Cut {
            offset: end,
            bytes: len - end,
            reason: reason.clone(),
        });
    }
    if plan.seal {
        let index = Index {
            entries: plan.scan.entries().collect(),
            instrument_ids: ids.into_iter().collect(),
            instruments: instruments.clone(),
        };
        let mut bytes = encode_index_block(&index);
        bytes.extend_from_slice(&encode_footer(end));
        file.seek(SeekFrom::Start(end))
            .and_then(|_| file.write_all(&bytes))
            .map_err(RecordingError::io("write to", path))?;
        report.sealed = true;
    }
    if report.cut.is_some() || report.sealed {
        file.sync_all().map_err(RecordingError::io("fsync", path))?;
    }
    Ok((report, Some(instruments)))
}
