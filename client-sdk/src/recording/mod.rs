//! Recordings: segment files of frames, written crash-safe and read memory-mapped, zero-copy.
//!
//! - [`RecordingWriter`]: appends frames (and optionally the raw exchange messages they came
//!   from) in CRC-checked blocks, rotates segments by size and by recorded time, writes an
//!   index when a segment is closed, and on reopen cuts a tail torn by a crash.
//! - [`Recording`]: opens a recording directory, maps its segments, and iterates frames
//!   filtered by time and instrument as `&ArchivedFrame` views (the same types as live data),
//!   reporting damaged blocks as [`CorruptBlock`] items and reading on.
//! - [`format`](mod@format) and [`scan`]: the layouts and the block finding, as pure functions over bytes.
//!
//! Built with the `recording` feature (on by default); needs no async runtime.
//!
//! # Format, version 1 (normative)
//!
//! All integers are little-endian. Timestamps are `u64` ns since the Unix epoch.
//!
//! ## Directory
//!
//! A recording is a directory of segment files named `seg-<N>-<first_ts>.twrec`, where `N` is
//! the segment number, zero-padded to at least 6 digits, and `first_ts` the timestamp of the
//! segment's first record. Segments are read in increasing `N`; other files are ignored.
//!
//! ## Segment header
//!
//! ```text
//! offset  size  field
//! 0       8     magic        b"TWREC\r\n\x1a"
//! 8       2     version      u16 = 1
//! 10      2     flags        u16; bit 0: raw exchange messages (block kind 1) may appear
//! 12      4     meta_len     u32, at most 16 MiB
//! 16      L     metadata     UTF-8 JSON, L = meta_len
//! 16+L    4     crc          u32 CRC32C of bytes [0, 16+L)
//! ```
//!
//! The metadata is an object: `created_ns` (u64), `writer` (string), `instruments`: an array
//! of `{id, venue, symbol, price_decimals, qty_decimals}` (`venue` by name, as in
//! `binance:BTCUSDT`), the instruments known when the segment was started. Readers ignore
//! fields they do not know. Writers pad the JSON with trailing spaces so the header's length
//! is a multiple of 8. The first block starts at the header's length rounded up to 8.
//!
//! ## Blocks
//!
//! After the header come blocks, back to back; every block starts and ends 8-aligned.
//!
//! ```text
//! offset  size  field
//! 0       4     magic        b"TWBK"
//! 4       1     kind         0 = frames, 1 = raw exchange messages, 2 = index
//! 5       3     reserved     zero
//! 8       4     payload_len  u32, a multiple of 8, at most 64 MiB
//! 12      4     count        u32, records in the payload (index: entries)
//! 16      8     first_ts     u64, smallest record timestamp in the block
//! 24      8     last_ts      u64, largest record timestamp in the block
//! 32      4     crc          u32 CRC32C of the 40 header bytes (this field as zero),
//!                            then the payload
//! 36      4     reserved     zero
//! 40      payload_len        payload
//! ```
//!
//! `first_ts`/`last_ts` are the smallest and largest timestamps, which are the first and the
//! last when timestamps never go back; so a block can be skipped by its header alone for any
//! time range that excludes `[first_ts, last_ts]`.
//!
//! The payload of frames and raw blocks is a sequence of records, each `u32 len`, then `len`
//! bytes, then zero bytes up to the next multiple of 8, so every record's length starts
//! 8-aligned. A record is at most 64 MiB - 8 bytes.
//!
//! - Frame record: the rkyv bytes of one `wire::Frame`, exactly as `wire::encode` produces
//!   them (replay returns them byte for byte). Its timestamp is `ts_publish` when non-zero,
//!   else `ts_recv` ([`format::frame_time`]); block times, the index and time filters all use
//!   this rule.
//! - Raw record: `u64 ts_recv`, `u16 venue` id, then the message bytes as the venue sent
//!   them. Its timestamp is `ts_recv`.
//!
//! ## Raw records and feed events
//!
//! Raw records are kept so that a recording can be normalized again (after a parser fix); a
//! normalizer needs, besides the venue's messages, the other events its feed gave it, in the
//! same order. A raw record whose `venue` field has bit 15 set ([`RAW_EVENT_FLAG`]) is such a
//! feed event of the venue in bits 0-14; its bytes are one UTF-8 line (no newline at the end):
//!
//! ```text
//! connect SYMBOLS      the connection was opened and subscribed; SYMBOLS: the ones the feed
//!                      was configured for, comma-separated, as the venue spells them
//! snapshot SYMBOL      then `\n` and the body of the REST book snapshot requested for SYMBOL
//! stale DETAIL         no message arrived for a while
//! disconnect REASON    the connection ended
//! gap N                N raw records are missing here (the recorder fell behind the feed)
//! ```
//!
//! Readers that only want venue messages skip records with bit 15 set. [`RawEvent`] reads
//! and writes them.
//!
//! ## Index and footer
//!
//! When a segment is closed (rotation, `close`, or recovery of a sound segment), its last
//! block is an index (kind 2), followed by a 16-byte footer. The index payload:
//!
//! ```text
//! 0     4     entries      u32 (= the block's count)
//! 4     4     ids          u32
//! 8     4     json_len     u32
//! 12    4     reserved     zero
//! 16    32 x entries       {u64 offset, u64 first_ts, u64 last_ts, u32 count, u8 kind, 3 zero}
//!             one per block before the index, in file order
//! ...   4 x ids            u32 instrument ids of the segment's frames, ascending
//! ...   json_len           JSON array of the instruments known at close (as in the header)
//! ...                      zero padding to a multiple of 8
//! ```
//!
//! Its `first_ts`/`last_ts` span the frames blocks (0, 0 if none). The footer:
//! `u64 index_offset`, `u32` CRC32C of those 8 bytes, magic `b"TWFT"`.
//!
//! A reader uses the index only if it agrees with the file: a sound footer at the very end,
//! pointing at a sound index block that ends where the footer starts, whose entries tile the
//! bytes from the first block to the index exactly (each block's length is the distance to the
//! next entry). Otherwise (and for a segment without an index, left by a crash) it scans.
//! Opening a closed segment thus reads only its header, index and footer. Each block's header
//! is compared with its entry, and its CRC checked, when the block is read; a block that fails
//! is reported as damaged, and reading goes on at the next entry.
//!
//! ## Scanning, damage, torn tails
//!
//! Scanning walks from block to block, checking each block's structure and CRC. Where the
//! bytes are not a sound block, it searches the following 8-aligned offsets for a block magic
//! whose header and CRC verify and resumes there; the bytes skipped are one damaged region,
//! reported with its file and offset. Lengths are checked against the limits and the bytes
//! left in the file before anything is read or allocated.
//!
//! Bytes at the end of a segment that hold no sound block (and are not its footer), or any
//! bytes after its footer, are its torn tail: a block whose write was cut short by a crash, or
//! garbage. In the last segment
//! readers skip it silently (it may also be a write in progress); `RecordingWriter::open`
//! cuts it off. Everything before it is kept. Damage followed by sound blocks is never cut:
//! it is reported by readers, and the rest of the segment stays readable.
//!
//! # Crash safety
//!
//! A block is written with one `write` of its header and payload, after the block before it.
//! A writer killed at any point leaves a file whose blocks are all sound except possibly the
//! last one, which recovery cuts. [`RecordingWriter::flush`] hands the pending block to the OS,
//! so everything appended before a `flush` returned survives the process being killed;
//! surviving power loss needs an fsync ([`FsyncPolicy`]).

mod error;
mod files;
mod filter;
pub mod format;
mod raw;
mod reader;
pub mod scan;
mod writer;

pub use error::{CorruptBlock, RecordingError};
pub use files::{parse_segment_name, segment_name};
pub use filter::{Filter, TimeRange};
pub use format::{FORMAT_VERSION, RawRecord, SegmentHeader, SegmentMeta, frame_time};
pub use raw::{RAW_EVENT_FLAG, RawEvent};
#[allow(unused_imports)] // used by `replay` only
pub(crate) use reader::{BlockAt, BlockPos, BlockRecords, Payload, Step};
pub use reader::{FrameRef, Frames, RawFrames, Recording, SegmentInfo, TornTail};
pub use writer::{Cut, FsyncPolicy, RecordingWriter, Recovery, WRITER_NAME, WriterOptions};
