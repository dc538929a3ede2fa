//! Layouts of format version 1: constants, and encoders/decoders of the segment header, block
//! headers, records, the index and the footer. Pure functions over byte slices, no I/O.
//!
//! The normative description is in the [module docs](super); this file implements it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::wire::plain::{PLAIN_LEN, plain};
use crate::wire::{ArchivedFrame, InstrumentInfo, Kind, Venue};

/// First 8 bytes of every segment file (`TWREC`, then CR LF and ^Z, which catch text-mode
/// transfers and stop `type` on Windows, as PNG's magic does).
pub const SEGMENT_MAGIC: [u8; 8] = *b"TWREC\r\n\x1a";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Segment flag: raw exchange frames (block kind 1) may appear in this segment.
pub const SEGMENT_FLAG_RAW: u16 = 1;
/// Bytes of the segment header before the metadata (magic, version, flags, metadata length).
pub const SEGMENT_HEADER_FIXED_LEN: usize = 16;
/// Largest metadata accepted (a segment header claiming more is corrupt).
pub const MAX_METADATA_LEN: usize = 16 << 20;

/// First 4 bytes of every block.
pub const BLOCK_MAGIC: [u8; 4] = *b"TWBK";
/// Size of a block header; payloads start 8-aligned after it.
pub const BLOCK_HEADER_LEN: usize = 40;
/// Largest block payload accepted; a block header claiming more is corrupt.
pub const MAX_BLOCK_PAYLOAD: usize = 64 << 20;
/// Largest record accepted (a record and its length prefix fit in one maximal block).
pub const MAX_RECORD_LEN: usize = MAX_BLOCK_PAYLOAD - 8;
/// Bytes in a raw record before the raw message: `u64 ts_recv`, `u16 venue`.
pub const RAW_RECORD_PREFIX: usize = 10;

/// Bytes of the fixed part of an index payload.
pub const INDEX_FIXED_LEN: usize = 16;
/// Bytes of one index entry.
pub const INDEX_ENTRY_LEN: usize = 32;

/// Last 4 bytes of a cleanly closed segment.
pub const FOOTER_MAGIC: [u8; 4] = *b"TWFT";
/// Size of the footer.
pub const FOOTER_LEN: usize = 16;

/// Everything in a segment after its header is aligned to this many bytes.
pub const ALIGN: usize = 8;

/// Rounds `n` up to a multiple of [`ALIGN`].
pub const fn align_up(n: usize) -> usize {
    (n + (ALIGN - 1)) & !(ALIGN - 1)
}

/// What a block holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum BlockKind {
    /// Normalized frames: each record is the rkyv bytes of one `Frame`.
    Frames = 0,
    /// Raw exchange messages: each record is `u64 ts_recv`, `u16 venue`, the message.
    Raw = 1,
    /// The segment's index (written when the segment is closed).
    Index = 2,
}

impl BlockKind {
    /// The kind for a stored byte, if it is one of the kinds of version 1.
    pub fn from_u8(b: u8) -> Option<BlockKind> {
        match b {
            0 => Some(BlockKind::Frames),
            1 => Some(BlockKind::Raw),
            2 => Some(BlockKind::Index),
            _ => None,
        }
    }
}

/// The timestamp a frame is filed under: `ts_publish` when set, else `ts_recv`.
///
/// Block times, index times and time filters all use this one rule. A frame the engine
/// published is filed by when clients saw it; a frame recorded before publication (straight
/// from the feed) by when the feed read it.
#[inline]
pub const fn frame_time(ts_publish: u64, ts_recv: u64) -> u64 {
    if ts_publish != 0 { ts_publish } else { ts_recv }
}

// ---------------------------------------------------------------------------------------------
// Segment header

/// What a segment header's JSON metadata says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SegmentMeta {
    /// When the segment was created, ns since the Unix epoch (wall clock).
    pub created_ns: u64,
    /// The writer that made it (`tickwire-sdk 0.1.0`).
    pub writer: String,
    /// The instruments known when the segment was started. Entries whose venue this build
    /// does not know are left out.
    pub instruments: Vec<InstrumentInfo>,
}

#[derive(Serialize, Deserialize)]
struct MetaJson {
    #[serde(default)]
    created_ns: u64,
    #[serde(default)]
    writer: String,
    #[serde(default)]
    instruments: Vec<InstrumentJson>,
}

/// One instrument as the JSON of headers and indexes spells it.
#[derive(Serialize, Deserialize)]
struct InstrumentJson {
    id: u32,
    venue: String,
    symbol: String,
    #[serde(default)]
    price_decimals: u8,
    #[serde(default)]
    qty_decimals: u8,
}

fn instruments_to_json(list: &[InstrumentInfo]) -> Vec<InstrumentJson> {
    list.iter()
        .map(|i| InstrumentJson {
            id: i.id,
            venue: i.venue.name().to_string(),
            symbol: i.symbol.clone(),
            price_decimals: i.price_decimals,
            qty_decimals: i.qty_decimals,
        })
        .collect()
}

fn instruments_from_json(list: Vec<InstrumentJson>) -> Vec<InstrumentInfo> {
    list.into_iter()
        .filter_map(|i| {
            let venue: Venue = i.venue.parse().ok()?;
            Some(InstrumentInfo {
                id: i.id,
                venue,
                symbol: i.symbol,
                price_decimals: i.price_decimals,
                qty_decimals: i.qty_decimals,
            })
        })
        .collect()
}

/// A decoded segment header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Format version (1).
    pub version: u16,
    /// Bit set of `SEGMENT_FLAG_*`.
    pub flags: u16,
    /// The metadata.
    pub meta: SegmentMeta,
    /// Bytes of the header, CRC included.
    pub len: usize,
}

impl SegmentHeader {
    /// Whether raw exchange frames may appear in the segment.
    pub fn has_raw(&self) -> bool {
        self.flags & SEGMENT_FLAG_RAW != 0
    }

    /// File offset of the first block: the header's end rounded up to 8.
    pub fn data_start(&self) -> usize {
        align_up(self.len)
    }
}

/// Why bytes are not a segment header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderDefect {
    /// The file ends inside the header (a segment torn while being created).
    Truncated {
        /// Bytes the header needs.
        need: usize,
        /// Bytes the file has.
        have: usize,
    },
    /// The first 8 bytes are not [`SEGMENT_MAGIC`].
    BadMagic,
    /// A version this build does not read.
    Version(u16),
    /// Something else is wrong, at a byte offset.
    Invalid {
        /// Offset in the file.
        offset: usize,
        /// What.
        reason: String,
    },
}

impl std::fmt::Display for HeaderDefect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderDefect::Truncated { need, have } => {
                write!(f, "file ends inside the header ({have} of {need} bytes)")
            }
            HeaderDefect::BadMagic => f.write_str("no TWREC magic: not a tickwire segment file"),
            HeaderDefect::Version(v) => write!(f, "format version {v}"),
            HeaderDefect::Invalid { offset, reason } => write!(f, "at byte {offset}: {reason}"),
        }
    }
}

/// Encodes a segment header. The JSON is padded with trailing spaces so the header ends on a
/// multiple of 8 bytes.
pub fn encode_segment_header(flags: u16, meta: &SegmentMeta) -> Vec<u8> {
    let json = MetaJson {
        created_ns: meta.created_ns,
        writer: meta.writer.clone(),
        instruments: instruments_to_json(&meta.instruments),
    };
    // Serializing plain structs of strings and integers to a Vec cannot fail.
    let mut meta_bytes = serde_json::to_vec(&json).unwrap_or_else(|_| b"{}".to_vec());
    while !(SEGMENT_HEADER_FIXED_LEN + meta_bytes.len() + 4).is_multiple_of(ALIGN) {
        meta_bytes.push(b' ');
    }
    let mut out = Vec::with_capacity(SEGMENT_HEADER_FIXED_LEN + meta_bytes.len() + 4);
    out.extend_from_slice(&SEGMENT_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&(meta_bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&meta_bytes);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes the segment header at the start of `bytes` (a whole segment file, or its start).
pub fn decode_segment_header(bytes: &[u8]) -> Result<SegmentHeader, HeaderDefect> {
    let truncated = |need: usize| HeaderDefect::Truncated {
        need,
        have: bytes.len(),
    };
    if bytes.len() < SEGMENT_MAGIC.len() {
        // A prefix of the magic is a torn header; anything else is not ours.
        return if SEGMENT_MAGIC.starts_with(bytes) {
            Err(truncated(SEGMENT_HEADER_FIXED_LEN + 4))
        } else {
            Err(HeaderDefect::BadMagic)
        };
    }
    if bytes[..8] != SEGMENT_MAGIC {
        return Err(HeaderDefect::BadMagic);
    }
    if bytes.len() < SEGMENT_HEADER_FIXED_LEN {
        return Err(truncated(SEGMENT_HEADER_FIXED_LEN + 4));
    }
    let version = u16_at(bytes, 8);
    if version != FORMAT_VERSION {
        return Err(HeaderDefect::Version(version));
    }
    let flags = u16_at(bytes, 10);
    let meta_len = u32_at(bytes, 12) as usize;
    if meta_len > MAX_METADATA_LEN {
        return Err(HeaderDefect::Invalid {
            offset: 12,
            reason: format!("metadata length {meta_len} exceeds the {MAX_METADATA_LEN}-byte limit"),
        });
    }
    let len = SEGMENT_HEADER_FIXED_LEN + meta_len + 4;
    if bytes.len() < len {
        return Err(truncated(len));
    }
    let stored = u32_at(bytes, len - 4);
    let computed = crc32c::crc32c(&bytes[..len - 4]);
    if stored != computed {
        return Err(HeaderDefect::Invalid {
            offset: len - 4,
            reason: format!(
                "header CRC32C mismatch (stored {stored:08x}, computed {computed:08x})"
            ),
        });
    }
    let meta_bytes = &bytes[SEGMENT_HEADER_FIXED_LEN..len - 4];
    let json: MetaJson = serde_json::from_slice(meta_bytes).map_err(|e| HeaderDefect::Invalid {
        offset: SEGMENT_HEADER_FIXED_LEN,
        reason: format!("metadata is not the expected JSON: {e}"),
    })?;
    Ok(SegmentHeader {
        version,
        flags,
        meta: SegmentMeta {
            created_ns: json.created_ns,
            writer: json.writer,
            instruments: instruments_from_json(json.instruments),
        },
        len,
    })
}

// ---------------------------------------------------------------------------------------------
// Blocks

/// A decoded block header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    /// What the block holds.
    pub kind: BlockKind,
    /// Bytes of payload after the header (a multiple of 8).
    pub payload_len: u32,
    /// Records in the payload (for an index: entries).
    pub count: u32,
    /// Smallest record timestamp in the block (the first one when timestamps do not go back).
    pub first_ts: u64,
    /// Largest record timestamp in the block.
    pub last_ts: u64,
    /// CRC32C of the header (this field as zero) and the payload.
    pub crc: u32,
}

impl BlockHeader {
    /// Bytes of the whole block, header included.
    pub fn block_len(&self) -> usize {
        BLOCK_HEADER_LEN + self.payload_len as usize
    }

    /// Encodes the header (with the stored `crc`).
    pub fn encode(&self) -> [u8; BLOCK_HEADER_LEN] {
        let mut h = [0u8; BLOCK_HEADER_LEN];
        h[0..4].copy_from_slice(&BLOCK_MAGIC);
        h[4] = self.kind as u8;
        h[8..12].copy_from_slice(&self.payload_len.to_le_bytes());
        h[12..16].copy_from_slice(&self.count.to_le_bytes());
        h[16..24].copy_from_slice(&self.first_ts.to_le_bytes());
        h[24..32].copy_from_slice(&self.last_ts.to_le_bytes());
        h[32..36].copy_from_slice(&self.crc.to_le_bytes());
        h
    }

    /// Decodes a block header from the first [`BLOCK_HEADER_LEN`] bytes of `bytes`, checking
    /// its structure (magic, kind, reserved bytes, length limits) but not the CRC.
    pub fn decode(bytes: &[u8]) -> Result<BlockHeader, String> {
        if bytes.len() < BLOCK_HEADER_LEN {
            return Err(format!(
                "block header needs {BLOCK_HEADER_LEN} bytes, only {} left in the file",
                bytes.len()
            ));
        }
        if bytes[0..4] != BLOCK_MAGIC {
            return Err(format!("no block magic (found {:02x?})", &bytes[0..4]));
        }
        let kind = BlockKind::from_u8(bytes[4])
            .ok_or_else(|| format!("unknown block kind {}", bytes[4]))?;
        if bytes[5..8] != [0; 3] || bytes[36..40] != [0; 4] {
            return Err("reserved bytes of the block header are not zero".to_string());
        }
        let payload_len = u32_at(bytes, 8);
        let count = u32_at(bytes, 12);
        let first_ts = u64_at(bytes, 16);
        let last_ts = u64_at(bytes, 24);
        let crc = u32_at(bytes, 32);
        if payload_len as usize > MAX_BLOCK_PAYLOAD {
            return Err(format!(
                "payload length {payload_len} exceeds the {MAX_BLOCK_PAYLOAD}-byte limit"
            ));
        }
        if !(payload_len as usize).is_multiple_of(ALIGN) {
            return Err(format!(
                "payload length {payload_len} is not a multiple of {ALIGN}"
            ));
        }
        let min_record = match kind {
            BlockKind::Frames | BlockKind::Raw => ALIGN as u64,
            BlockKind::Index => INDEX_ENTRY_LEN as u64,
        };
        if count as u64 * min_record > payload_len as u64 {
            return Err(format!(
                "{count} records cannot fit in a {payload_len}-byte payload"
            ));
        }
        if first_ts > last_ts {
            return Err(format!(
                "first timestamp {first_ts} is after the last {last_ts}"
            ));
        }
        Ok(BlockHeader {
            kind,
            payload_len,
            count,
            first_ts,
            last_ts,
            crc,
        })
    }
}

/// The CRC32C of a block: over its header with the CRC field taken as zero, then its payload.
pub fn block_crc(header: &[u8], payload: &[u8]) -> u32 {
    let mut h = [0u8; BLOCK_HEADER_LEN];
    h.copy_from_slice(&header[..BLOCK_HEADER_LEN]);
    h[32..36].fill(0);
    crc32c::crc32c_append(crc32c::crc32c(&h), payload)
}

/// Checks the block at `offset` of a segment: header structure, payload inside the file, CRC.
/// Returns the header, or why the bytes there are not a sound block.
pub fn check_block(segment: &[u8], offset: usize) -> Result<BlockHeader, String> {
    let rest = segment.get(offset..).unwrap_or_default();
    let header = BlockHeader::decode(rest)?;
    if header.block_len() > rest.len() {
        return Err(format!(
            "block of {} bytes runs past the end of the file ({} bytes left)",
            header.block_len(),
            rest.len()
        ));
    }
    let computed = block_crc(rest, &rest[BLOCK_HEADER_LEN..header.block_len()]);
    if computed != header.crc {
        return Err(format!(
            "CRC32C mismatch (stored {:08x}, computed {computed:08x})",
            header.crc
        ));
    }
    Ok(header)
}

/// Builds one block in a reused buffer: `push` records, then `finish` to get the bytes of the
/// whole block (header and payload, ready for a single write), then `clear`.
#[derive(Debug)]
pub struct BlockBuilder {
    kind: BlockKind,
    buf: Vec<u8>,
    count: u32,
    first_ts: u64,
    last_ts: u64,
}

impl BlockBuilder {
    /// An empty builder for blocks of `kind`.
    pub fn new(kind: BlockKind) -> BlockBuilder {
        let mut b = BlockBuilder {
            kind,
            buf: Vec::new(),
            count: 0,
            first_ts: u64::MAX,
            last_ts: 0,
        };
        b.clear();
        b
    }

    /// Bytes a record of `len` bytes takes in a payload: its length prefix, itself, padding.
    pub const fn record_size(len: usize) -> usize {
        align_up(4 + len)
    }

    /// Appends one record made of `parts` (concatenated), filed under `ts`.
    pub fn push(&mut self, ts: u64, parts: &[&[u8]]) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        self.buf.extend_from_slice(&(len as u32).to_le_bytes());
        for p in parts {
            self.buf.extend_from_slice(p);
        }
        self.buf.resize(align_up(self.buf.len()), 0);
        self.count += 1;
        self.first_ts = self.first_ts.min(ts);
        self.last_ts = self.last_ts.max(ts);
    }

    /// Records pushed since the last `clear`.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// True when no record was pushed since the last `clear`.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Payload bytes so far.
    pub fn payload_len(&self) -> usize {
        self.buf.len() - BLOCK_HEADER_LEN
    }

    /// Fills in the header and returns the whole block and its header.
    pub fn finish(&mut self) -> (&[u8], BlockHeader) {
        let (first_ts, last_ts) = if self.count == 0 {
            (0, 0)
        } else {
            (self.first_ts, self.last_ts)
        };
        let mut header = BlockHeader {
            kind: self.kind,
            payload_len: self.payload_len() as u32,
            count: self.count,
            first_ts,
            last_ts,
            crc: 0,
        };
        self.buf[..BLOCK_HEADER_LEN].copy_from_slice(&header.encode());
        header.crc = block_crc(&self.buf, &self.buf[BLOCK_HEADER_LEN..]);
        self.buf[32..36].copy_from_slice(&header.crc.to_le_bytes());
        (&self.buf, header)
    }

    /// Starts a new, empty block.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.buf.resize(BLOCK_HEADER_LEN, 0);
        self.count = 0;
        self.first_ts = u64::MAX;
        self.last_ts = 0;
    }
}

/// The records of a block payload, in order: `(offset in the payload, bytes)` each, or why
/// the payload cannot be split into records (then iteration ends).
#[derive(Debug, Clone)]
pub struct Records<'a> {
    payload: &'a [u8],
    pos: usize,
}

impl<'a> Records<'a> {
    /// Splits `payload` into records.
    pub fn new(payload: &'a [u8]) -> Records<'a> {
        Records { payload, pos: 0 }
    }

    /// The next record if it holds a plain frame (a frame with no pointer inside: see
    /// `wire::plain`), validated: its bytes, the frame and its kind. `None`, and nothing
    /// consumed, for anything else (another record, a defect, the end), which
    /// [`Iterator::next`] then reads. The fast path of a replay: most records are plain.
    #[inline]
    pub(crate) fn next_plain(&mut self) -> Option<(&'a [u8], &'a ArchivedFrame, Kind)> {
        const RECORD: usize = BlockBuilder::record_size(PLAIN_LEN);
        let at = self.pos;
        let record: &'a [u8; RECORD] = self.payload.get(at..at + RECORD)?.try_into().ok()?;
        let (len, rest) = record.split_first_chunk::<4>()?;
        if u32::from_le_bytes(*len) as usize != PLAIN_LEN {
            return None;
        }
        let bytes = &rest[..PLAIN_LEN];
        let (frame, kind) = plain(bytes)?;
        self.pos = at + RECORD;
        Some((bytes, frame, kind))
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<(usize, &'a [u8]), String>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let at = self.pos;
        let rest = self.payload.get(at..)?;
        let Some((len, after)) = rest.split_first_chunk::<4>() else {
            if rest.is_empty() {
                return None;
            }
            // A defect ends the iteration.
            self.pos = self.payload.len();
            return Some(Err(short_length(at)));
        };
        let len = u32::from_le_bytes(*len) as usize;
        match after.get(..len) {
            Some(record) if len <= MAX_RECORD_LEN => {
                self.pos = at + BlockBuilder::record_size(len).min(rest.len());
                Some(Ok((at + 4, record)))
            }
            _ => {
                self.pos = self.payload.len();
                Some(Err(long_record(at, len, after.len())))
            }
        }
    }
}

#[cold]
fn short_length(at: usize) -> String {
    format!("payload ends inside a record length at payload byte {at}")
}

#[cold]
fn long_record(at: usize, len: usize, left: usize) -> String {
    format!("record at payload byte {at} claims {len} bytes, only {left} left")
}

/// One raw exchange message as stored in a raw record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecord<'a> {
    /// When the feed read the message, ns since the Unix epoch.
    pub ts_recv: u64,
    /// Venue id.
    pub venue: u16,
    /// The message bytes as the venue sent them.
    pub bytes: &'a [u8],
}

/// Decodes a raw record, if it is long enough to be one.
pub fn decode_raw(record: &[u8]) -> Option<RawRecord<'_>> {
    if record.len() < RAW_RECORD_PREFIX {
        return None;
    }
    Some(RawRecord {
        ts_recv: u64_at(record, 0),
        venue: u16_at(record, 8),
        bytes: &record[RAW_RECORD_PREFIX..],
    })
}

// ---------------------------------------------------------------------------------------------
// Index and footer

/// One block as the index lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// File offset of the block.
    pub offset: u64,
    /// The block's first (smallest) timestamp.
    pub first_ts: u64,
    /// The block's last (largest) timestamp.
    pub last_ts: u64,
    /// Records in the block.
    pub count: u32,
    /// The block's kind.
    pub kind: BlockKind,
}

impl IndexEntry {
    /// The entry describing the block with `header` at `offset`.
    pub fn of(offset: u64, header: &BlockHeader) -> IndexEntry {
        IndexEntry {
            offset,
            first_ts: header.first_ts,
            last_ts: header.last_ts,
            count: header.count,
            kind: header.kind,
        }
    }

    /// True when `header` says what this entry says.
    pub fn matches(&self, header: &BlockHeader) -> bool {
        self.kind == header.kind
            && self.count == header.count
            && self.first_ts == header.first_ts
            && self.last_ts == header.last_ts
    }
}

/// A segment's index: every block before it, the instrument ids of its frames, and the
/// instruments known when it was closed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Index {
    /// Every block of the segment before the index, in file order.
    pub entries: Vec<IndexEntry>,
    /// Instrument ids of the segment's frames, ascending, each once.
    pub instrument_ids: Vec<u32>,
    /// The instruments known when the segment was closed (its header's, plus Definitions).
    pub instruments: Vec<InstrumentInfo>,
}

/// Encodes an index as a whole block (header and payload).
pub fn encode_index_block(index: &Index) -> Vec<u8> {
    let json = serde_json::to_vec(&instruments_to_json(&index.instruments))
        .unwrap_or_else(|_| b"[]".to_vec());
    let mut b = Vec::with_capacity(
        BLOCK_HEADER_LEN
            + INDEX_FIXED_LEN
            + INDEX_ENTRY_LEN * index.entries.len()
            + 4 * index.instrument_ids.len()
            + json.len()
            + ALIGN,
    );
    b.resize(BLOCK_HEADER_LEN, 0);
    b.extend_from_slice(&(index.entries.len() as u32).to_le_bytes());
    b.extend_from_slice(&(index.instrument_ids.len() as u32).to_le_bytes());
    b.extend_from_slice(&(json.len() as u32).to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    for e in &index.entries {
        b.extend_from_slice(&e.offset.to_le_bytes());
        b.extend_from_slice(&e.first_ts.to_le_bytes());
        b.extend_from_slice(&e.last_ts.to_le_bytes());
        b.extend_from_slice(&e.count.to_le_bytes());
        b.extend_from_slice(&[e.kind as u8, 0, 0, 0]);
    }
    for id in &index.instrument_ids {
        b.extend_from_slice(&id.to_le_bytes());
    }
    b.extend_from_slice(&json);
    b.resize(align_up(b.len()), 0);
    let frames = index.entries.iter().filter(|e| e.kind == BlockKind::Frames);
    let first_ts = frames.clone().map(|e| e.first_ts).min().unwrap_or(0);
    let last_ts = frames.map(|e| e.last_ts).max().unwrap_or(0);
    let mut header = BlockHeader {
        kind: BlockKind::Index,
        payload_len: (b.len() - BLOCK_HEADER_LEN) as u32,
        count: index.entries.len() as u32,
        first_ts,
        last_ts,
        crc: 0,
    };
    b[..BLOCK_HEADER_LEN].copy_from_slice(&header.encode());
    header.crc = block_crc(&b, &b[BLOCK_HEADER_LEN..]);
    b[32..36].copy_from_slice(&header.crc.to_le_bytes());
    b
}

/// Decodes an index payload (the payload of a block of kind [`BlockKind::Index`]).
pub fn decode_index_payload(payload: &[u8]) -> Result<Index, String> {
    if payload.len() < INDEX_FIXED_LEN {
        return Err("index payload shorter than its fixed part".to_string());
    }
    let n_entries = u32_at(payload, 0) as u64;
    let n_ids = u32_at(payload, 4) as u64;
    let json_len = u32_at(payload, 8) as u64;
    let need = INDEX_FIXED_LEN as u64 + n_entries * INDEX_ENTRY_LEN as u64 + n_ids * 4 + json_len;
    // Bounded by the payload before anything is allocated.
    if need > payload.len() as u64 || payload.len() as u64 - need >= ALIGN as u64 {
        return Err(format!(
            "index claims {need} bytes of content in a {}-byte payload",
            payload.len()
        ));
    }
    let mut pos = INDEX_FIXED_LEN;
    let mut entries = Vec::with_capacity(n_entries as usize);
    for _ in 0..n_entries {
        let e = &payload[pos..pos + INDEX_ENTRY_LEN];
        let kind = BlockKind::from_u8(e[28]).ok_or_else(|| format!("unknown kind {}", e[28]))?;
        entries.push(IndexEntry {
            offset: u64_at(e, 0),
            first_ts: u64_at(e, 8),
            last_ts: u64_at(e, 16),
            count: u32_at(e, 24),
            kind,
        });
        pos += INDEX_ENTRY_LEN;
    }
    let mut instrument_ids = Vec::with_capacity(n_ids as usize);
    for _ in 0..n_ids {
        instrument_ids.push(u32_at(payload, pos));
        pos += 4;
    }
    let json = &payload[pos..pos + json_len as usize];
    let list: Vec<InstrumentJson> = serde_json::from_slice(json)
        .map_err(|e| format!("index instruments are not the expected JSON: {e}"))?;
    Ok(Index {
        entries,
        instrument_ids,
        instruments: instruments_from_json(list),
    })
}

/// Encodes the footer of a closed segment, pointing at its index block.
pub fn encode_footer(index_offset: u64) -> [u8; FOOTER_LEN] {
    let mut f = [0u8; FOOTER_LEN];
    f[0..8].copy_from_slice(&index_offset.to_le_bytes());
    let crc = crc32c::crc32c(&f[0..8]);
    f[8..12].copy_from_slice(&crc.to_le_bytes());
    f[12..16].copy_from_slice(&FOOTER_MAGIC);
    f
}

/// Decodes a footer (exactly [`FOOTER_LEN`] bytes): the index offset, if the footer is sound.
pub fn decode_footer(bytes: &[u8]) -> Option<u64> {
    if bytes.len() != FOOTER_LEN || bytes[12..16] != FOOTER_MAGIC {
        return None;
    }
    (crc32c::crc32c(&bytes[0..8]) == u32_at(bytes, 8)).then(|| u64_at(bytes, 0))
}

/// Merges instrument lists: later entries replace earlier ones with the same id; the result is
/// sorted by id.
pub fn merge_instruments<'a>(
    lists: impl IntoIterator<Item = &'a InstrumentInfo>,
) -> Vec<InstrumentInfo> {
    let mut map = BTreeMap::new();
    for i in lists {
        map.insert(i.id, i.clone());
    }
    map.into_values().collect()
}

// ---------------------------------------------------------------------------------------------

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> SegmentMeta {
        SegmentMeta {
            created_ns: 42,
            writer: "test".into(),
            instruments: vec![
                InstrumentInfo::new(Venue::Binance, "BTCUSDT", 2, 5),
                InstrumentInfo::new(Venue::Kraken, "XBT/USD", 1, 8),
            ],
        }
    }

    #[test]
    fn segment_header_roundtrips_and_is_aligned() {
        let bytes = encode_segment_header(SEGMENT_FLAG_RAW, &meta());
        assert_eq!(bytes.len() % ALIGN, 0);
        let h = decode_segment_header(&bytes).unwrap();
        assert_eq!(h.meta, meta());
        assert!(h.has_raw());
        assert_eq!(h.len, bytes.len());
        assert_eq!(h.data_start(), bytes.len());
        // Every proper prefix is a torn header, never a panic or a different error.
        for n in 0..bytes.len() {
            assert!(
                matches!(
                    decode_segment_header(&bytes[..n]),
                    Err(HeaderDefect::Truncated { .. })
                ),
                "prefix {n}"
            );
        }
    }

    #[test]
    fn segment_header_defects() {
        let good = encode_segment_header(0, &meta());
        let mut bad = good.clone();
        bad[0] = b'X';
        assert_eq!(decode_segment_header(&bad), Err(HeaderDefect::BadMagic));
        let mut bad = good.clone();
        bad[8] = 2;
        assert_eq!(decode_segment_header(&bad), Err(HeaderDefect::Version(2)));
        let mut bad = good.clone();
        bad[20] ^= 1;
        assert!(matches!(
            decode_segment_header(&bad),
            Err(HeaderDefect::Invalid { .. })
        ));
        let mut bad = good.clone();
        bad[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_segment_header(&bad),
            Err(HeaderDefect::Invalid { offset: 12, .. })
        ));
    }

    #[test]
    fn blocks_roundtrip_with_aligned_records() {
        let mut b = BlockBuilder::new(BlockKind::Frames);
        let records: Vec<Vec<u8>> = (0..20).map(|n| vec![n as u8; n]).collect();
        for (i, r) in records.iter().enumerate() {
            b.push(100 - i as u64, &[r]);
        }
        let (bytes, header) = b.finish();
        let bytes = bytes.to_vec();
        assert_eq!(bytes.len() % ALIGN, 0);
        assert_eq!(header.count, 20);
        assert_eq!((header.first_ts, header.last_ts), (81, 100));
        assert_eq!(check_block(&bytes, 0).unwrap(), header);
        let got: Vec<&[u8]> = Records::new(&bytes[BLOCK_HEADER_LEN..])
            .map(|r| {
                let (off, rec) = r.unwrap();
                assert_eq!(off % ALIGN, 4, "each length prefix starts 8-aligned");
                rec
            })
            .collect();
        assert_eq!(got, records.iter().map(|r| &r[..]).collect::<Vec<_>>());
        // Any flipped bit is caught.
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(check_block(&bad, 0).is_err(), "flip at {i}");
        }
        // Any truncation is caught.
        for n in 0..bytes.len() {
            assert!(check_block(&bytes[..n], 0).is_err());
        }
    }

    #[test]
    fn raw_records_roundtrip() {
        let mut b = BlockBuilder::new(BlockKind::Raw);
        b.push(7, &[&7u64.to_le_bytes(), &3u16.to_le_bytes(), b"{\"e\":1}"]);
        let (bytes, _) = b.finish();
        let (_, rec) = Records::new(&bytes[BLOCK_HEADER_LEN..])
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(
            decode_raw(rec),
            Some(RawRecord {
                ts_recv: 7,
                venue: 3,
                bytes: b"{\"e\":1}"
            })
        );
        assert_eq!(decode_raw(&rec[..9]), None);
    }

    #[test]
    fn index_and_footer_roundtrip() {
        let index = Index {
            entries: vec![
                IndexEntry {
                    offset: 64,
                    first_ts: 1,
                    last_ts: 9,
                    count: 3,
                    kind: BlockKind::Frames,
                },
                IndexEntry {
                    offset: 200,
                    first_ts: 2,
                    last_ts: 3,
                    count: 1,
                    kind: BlockKind::Raw,
                },
            ],
            instrument_ids: vec![1, 5, 9],
            instruments: meta().instruments,
        };
        let block = encode_index_block(&index);
        let header = check_block(&block, 0).unwrap();
        assert_eq!(header.kind, BlockKind::Index);
        assert_eq!((header.first_ts, header.last_ts), (1, 9));
        assert_eq!(
            decode_index_payload(&block[BLOCK_HEADER_LEN..]).unwrap(),
            index
        );
        let f = encode_footer(1234);
        assert_eq!(decode_footer(&f), Some(1234));
        for i in 0..FOOTER_LEN {
            let mut bad = f;
            bad[i] ^= 1;
            assert_eq!(decode_footer(&bad), None);
        }
        // A count that does not fit is refused before anything is allocated.
        let mut bad = block[BLOCK_HEADER_LEN..].to_vec();
        bad[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_index_payload(&bad).is_err());
    }

    #[test]
    fn malformed_records_end_iteration_with_an_error() {
        let mut payload = vec![0u8; 16];
        payload[0..4].copy_from_slice(&100u32.to_le_bytes());
        let mut it = Records::new(&payload);
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none());
        let mut it = Records::new(&payload[..2]);
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = decode_segment_header(&bytes);
            let _ = BlockHeader::decode(&bytes);
            let _ = check_block(&bytes, 0);
            let _ = check_block(&bytes, 17);
            let _ = decode_index_payload(&bytes);
            let _ = decode_footer(&bytes);
            for (_, rec) in Records::new(&bytes).flatten() {
                let _ = decode_raw(rec);
            }
        }
    }
}
