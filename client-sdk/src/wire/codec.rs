//! Binary codecs: one frame as rkyv bytes, and the batch that carries many frames in one
//! WebSocket message.
//!
//! Batch layout (little endian):
//!
//! ```text
//! offset 0  magic   b"TW"
//!        2  version u8   (WIRE_VERSION)
//!        3  reserved u8  (0)
//!        4  count   u32  number of frames
//!        8  count x { len u32, rkyv frame bytes[len] }
//! ```
//!
//! Frames are archived with rkyv's `unaligned` format, so they can be accessed in place at any
//! offset of any buffer. Untrusted bytes are validated (bytecheck) once, when a [`Batch`] is
//! built; after that every access is zero-copy and free.

use rkyv::rancor;
use rkyv::ser::allocator::Arena;
use thiserror::Error;

use super::frame::{ArchivedFrame, Frame};

/// First two bytes of every batch.
pub const BATCH_MAGIC: [u8; 2] = *b"TW";
/// Version of the frame schema and batch layout. Bumped on any incompatible change.
pub const WIRE_VERSION: u8 = 1;
/// Size of the batch header.
pub const BATCH_HEADER_LEN: usize = 8;
/// Largest frame accepted by the decoder (a deep book snapshot stays well below this).
pub const MAX_FRAME_LEN: usize = 16 << 20;

/// Why bytes could not be read as frames.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// Fewer bytes than the layout requires.
    #[error("truncated: needed {need} bytes at offset {offset}, only {have} left")]
    Truncated {
        /// Byte offset where reading stopped.
        offset: usize,
        /// Bytes required.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// The batch does not start with `TW`.
    #[error(
        "not a tickwire batch (bad magic {0:02x?}); is the peer speaking the tickwire binary protocol?"
    )]
    BadMagic([u8; 2]),
    /// The batch was written by an incompatible version.
    #[error(
        "wire version {0} is not supported (this build speaks {WIRE_VERSION}); upgrade the side that is older"
    )]
    Version(u8),
    /// A frame length is larger than [`MAX_FRAME_LEN`].
    #[error("frame {index} claims {len} bytes, more than the {MAX_FRAME_LEN}-byte limit")]
    FrameTooLarge {
        /// Index of the frame in the batch.
        index: usize,
        /// Claimed length.
        len: usize,
    },
    /// The frame bytes do not pass validation.
    #[error("frame {index} at offset {offset} is invalid: {reason}")]
    Invalid {
        /// Index of the frame in the batch (0 for a lone frame).
        index: usize,
        /// Byte offset of the frame in the batch.
        offset: usize,
        /// What the validator found.
        reason: String,
    },
    /// Bytes remain after the last frame the header announced.
    #[error("{0} unexpected bytes after the last frame")]
    Trailing(usize),
}

/// Serializes frames into rkyv bytes, reusing its buffers between calls.
#[derive(Default)]
pub struct Encoder {
    arena: Arena,
    buf: Vec<u8>,
}

impl Encoder {
    /// A new encoder.
    pub fn new() -> Encoder {
        Encoder::default()
    }

    /// Encodes `frame`; the bytes are valid until the next call.
    pub fn encode(&mut self, frame: &Frame) -> &[u8] {
        let buf = std::mem::take(&mut self.buf);
        self.buf = encode_into(&mut self.arena, frame, buf);
        &self.buf
    }

    /// Encodes `frame`, appending its bytes to `out` (which may hold other data before).
    pub fn encode_append(&mut self, frame: &Frame, out: &mut Vec<u8>) {
        let bytes = self.encode(frame);
        out.extend_from_slice(bytes);
    }
}

fn encode_into(arena: &mut Arena, frame: &Frame, mut buf: Vec<u8>) -> Vec<u8> {
    buf.clear();
    // Serializing an owned, well-formed value into a Vec cannot fail: no I/O, no shared
    // pointers, sizes far below u32::MAX (pointer_width_32). Should it ever, the result is an
    // empty buffer, which every reader rejects as truncated.
    rkyv::api::high::to_bytes_in_with_alloc::<_, _, rancor::Error>(frame, buf, arena.acquire())
        .unwrap_or_default()
}

/// Encodes one frame into a new buffer (convenience; use [`Encoder`] on hot paths).
pub fn encode(frame: &Frame) -> Vec<u8> {
    let mut arena = Arena::new();
    encode_into(&mut arena, frame, Vec::new())
}

/// Validates `bytes` as one archived frame and gives zero-copy access to it.
///
/// Plain frames (trades, quotes, deltas, heartbeats: no pointer inside) are checked by their
/// tags alone; the others by rkyv's validator.
#[inline]
pub fn access(bytes: &[u8]) -> Result<&ArchivedFrame, WireError> {
    access_at(bytes, 0, 0)
}

#[inline]
fn access_at(bytes: &[u8], index: usize, offset: usize) -> Result<&ArchivedFrame, WireError> {
    match super::plain::plain(bytes) {
        Some((frame, _)) => Ok(frame),
        None => access_checked(bytes, index, offset),
    }
}

/// rkyv's validation, for frames that are not plain (and to say what is wrong).
fn access_checked(bytes: &[u8], index: usize, offset: usize) -> Result<&ArchivedFrame, WireError> {
    rkyv::access::<ArchivedFrame, rancor::Error>(bytes).map_err(|e| WireError::Invalid {
        index,
        offset,
        reason: e.to_string(),
    })
}

/// Accesses trusted bytes without validation (bytes this process encoded itself).
///
/// # Safety
/// `bytes` must be exactly the output of [`Encoder::encode`] / [`encode`] for one frame.
pub unsafe fn access_trusted(bytes: &[u8]) -> &ArchivedFrame {
    // SAFETY: the caller guarantees `bytes` is a frame archived by this crate's encoder.
    unsafe { rkyv::access_unchecked::<ArchivedFrame>(bytes) }
}

/// Deserializes an archived frame into an owned [`Frame`].
pub fn to_owned(frame: &ArchivedFrame) -> Frame {
    // Deserializing a validated archive into owned std types cannot fail.
    rkyv::deserialize::<Frame, rancor::Error>(frame).unwrap_or_else(|_| unreachable_frame())
}

#[cold]
fn unreachable_frame() -> Frame {
    Frame::new(
        super::ids::Venue::Binance,
        0,
        0,
        0,
        super::frame::Body::Heartbeat,
    )
}

/// Builds a batch in a reused buffer: `begin`, `push` encoded frames, `finish`.
#[derive(Debug, Default)]
pub struct BatchWriter {
    buf: Vec<u8>,
    count: u32,
}

impl BatchWriter {
    /// A writer with room for `capacity` bytes before it grows.
    pub fn with_capacity(capacity: usize) -> BatchWriter {
        let mut w = BatchWriter {
            buf: Vec::with_capacity(capacity.max(BATCH_HEADER_LEN)),
            count: 0,
        };
        w.begin();
        w
    }

    /// Starts a new, empty batch (discarding any unfinished one).
    pub fn begin(&mut self) {
        self.buf.clear();
        self.buf.extend_from_slice(&BATCH_MAGIC);
        self.buf.push(WIRE_VERSION);
        self.buf.push(0);
        self.buf.extend_from_slice(&0u32.to_le_bytes());
        self.count = 0;
    }

    /// Appends one encoded frame.
    #[inline]
    pub fn push(&mut self, frame_bytes: &[u8]) {
        self.buf
            .extend_from_slice(&(frame_bytes.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(frame_bytes);
        self.count += 1;
    }

    /// Frames pushed since `begin`.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// True when no frame was pushed since `begin`.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes of the batch so far, header included.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Writes the count into the header and returns the finished batch.
    pub fn finish(&mut self) -> &[u8] {
        self.buf[4..8].copy_from_slice(&self.count.to_le_bytes());
        &self.buf
    }

    /// Finishes the batch and hands its buffer over, leaving this writer empty.
    pub fn take(&mut self) -> Vec<u8> {
        self.finish();
        let out = std::mem::take(&mut self.buf);
        self.begin();
        out
    }
}

/// A batch whose frames were all validated once; after that, zero-copy access is free.
///
/// `B` is whatever owns the bytes (`Vec<u8>`, `bytes::Bytes`, `&[u8]`...).
#[derive(Debug, Clone)]
pub struct Batch<B> {
    bytes: B,
    /// (offset, len) of each frame.
    spans: Vec<(u32, u32)>,
}

impl<B: AsRef<[u8]>> Batch<B> {
    /// Parses and validates a batch. Any defect (truncation, bad magic or version, an invalid
    /// frame, trailing bytes) is an error: a batch is accepted whole or not at all.
    pub fn new(bytes: B) -> Result<Batch<B>, WireError> {
        let spans = validate(bytes.as_ref())?;
        Ok(Batch { bytes, spans })
    }

    /// A batch over frames that were validated already, without validating them again: `spans`
    /// are the `(offset, len)` of each frame in `bytes`, in order. For readers that validated
    /// every frame on their own (a recording read memory-mapped, say) and want the batch
    /// interface without a copy. [`as_bytes`](Self::as_bytes) then gives the buffer the spans
    /// point into, which need not be a wire batch.
    ///
    /// # Safety
    /// Every span must lie inside `bytes`, and its bytes must be ones [`access`] accepted
    /// (they were validated) and must not change while the batch lives (`B` gives shared,
    /// read-only access).
    pub unsafe fn from_validated(bytes: B, spans: Vec<(u32, u32)>) -> Batch<B> {
        debug_assert!(spans.iter().all(|&(off, len)| {
            let (off, len) = (off as usize, len as usize);
            bytes
                .as_ref()
                .get(off..off + len)
                .is_some_and(|b| access(b).is_ok())
        }));
        Batch { bytes, spans }
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when the batch holds no frame.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The `i`th frame, if any.
    pub fn get(&self, i: usize) -> Option<&ArchivedFrame> {
        let &(off, len) = self.spans.get(i)?;
        let bytes = &self.bytes.as_ref()[off as usize..(off + len) as usize];
        // SAFETY: every span was validated by `validate` in `Batch::new`, and `B` gives
        // shared access only, so the bytes have not changed since.
        Some(unsafe { rkyv::access_unchecked::<ArchivedFrame>(bytes) })
    }

    /// The encoded bytes of the `i`th frame (to forward or record it without re-encoding).
    pub fn frame_bytes(&self, i: usize) -> Option<&[u8]> {
        let &(off, len) = self.spans.get(i)?;
        Some(&self.bytes.as_ref()[off as usize..(off + len) as usize])
    }

    /// The frames, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &ArchivedFrame> + '_ {
        let bytes = self.bytes.as_ref();
        self.spans.iter().map(move |&(off, len)| {
            // SAFETY: every span was validated by `validate` in `Batch::new`, and `B` gives
            // shared access only, so the bytes have not changed since.
            unsafe {
                rkyv::access_unchecked::<ArchivedFrame>(&bytes[off as usize..(off + len) as usize])
            }
        })
    }

    /// The whole batch as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.as_ref()
    }

    /// Gives the bytes back.
    pub fn into_inner(self) -> B {
        self.bytes
    }
}

fn take(bytes: &[u8], offset: usize, need: usize) -> Result<&[u8], WireError> {
    let have = bytes.len().saturating_sub(offset);
    if have < need {
        return Err(WireError::Truncated { offset, need, have });
    }
    Ok(&bytes[offset..offset + need])
}

fn validate(bytes: &[u8]) -> Result<Vec<(u32, u32)>, WireError> {
    let header = take(bytes, 0, BATCH_HEADER_LEN)?;
    if header[0..2] != BATCH_MAGIC {
        return Err(WireError::BadMagic([header[0], header[1]]));
    }
    if header[2] != WIRE_VERSION {
        return Err(WireError::Version(header[2]));
    }
    let count = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    // Each frame needs at least its 4-byte length: bound the allocation by the input size.
    let mut spans = Vec::with_capacity(count.min(bytes.len() / 4));
    let mut offset = BATCH_HEADER_LEN;
    for index in 0..count {
        let len_bytes = take(bytes, offset, 4)?;
        let len =
            u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
        if len > MAX_FRAME_LEN {
            return Err(WireError::FrameTooLarge { index, len });
        }
        offset += 4;
        let frame = take(bytes, offset, len)?;
        access_at(frame, index, offset)?;
        spans.push((offset as u32, len as u32));
        offset += len;
    }
    if offset != bytes.len() {
        return Err(WireError::Trailing(bytes.len() - offset));
    }
    Ok(spans)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::frame::*;
    use crate::wire::ids::{Venue, instrument_id};
    use proptest::prelude::*;

    pub(crate) fn sample_frames() -> Vec<Frame> {
        let id = instrument_id(Venue::Binance, "BTCUSDT");
        vec![
            Frame::new(
                Venue::Binance,
                id,
                1,
                2,
                Body::Trade(Trade {
                    price: 61_837_630_000_000,
                    qty: 20_000_000,
                    side: Side::Sell,
                    trade_id: TradeId::Num(3_735_683_259),
                }),
            ),
            Frame::new(
                Venue::Binance,
                id,
                0,
                3,
                Body::Quote(Quote {
                    bid_px: 1,
                    bid_qty: 2,
                    ask_px: 3,
                    ask_qty: 4,
                }),
            ),
            Frame::new(
                Venue::Binance,
                id,
                5,
                6,
                Body::BookDelta(BookDelta {
                    side: BookSide::Ask,
                    price: 7,
                    qty: 0,
                }),
            )
            .with_flags(flags::LAST),
            Frame::new(
                Venue::Binance,
                id,
                5,
                6,
                Body::BookSnapshot(BookSnapshot {
                    bids: vec![Level { price: 2, qty: 1 }; 30],
                    asks: vec![Level { price: 3, qty: 1 }; 30],
                }),
            )
            .with_flags(flags::SNAPSHOT | flags::LAST),
            Frame::new(
                Venue::Kraken,
                0,
                0,
                9,
                Body::Status(Status {
                    code: StatusCode::Gap,
                    detail: "missing update ids 10..12".into(),
                }),
            ),
            Frame::new(Venue::Okx, 0, 0, 10, Body::Heartbeat),
            Frame::new(
                Venue::Bybit,
                instrument_id(Venue::Bybit, "ETHUSDT"),
                0,
                11,
                Body::Definition(Definition {
                    symbol: "ETHUSDT".into(),
                    price_decimals: 2,
                    qty_decimals: 5,
                }),
            ),
            Frame::new(
                Venue::Bybit,
                1,
                1,
                1,
                Body::Trade(Trade {
                    price: -5,
                    qty: 1,
                    side: Side::Unknown,
                    trade_id: TradeId::Text("20f43950-d8dd-5b31-9112-a178eb6023af".into()),
                }),
            ),
        ]
    }

    fn batch_of(frames: &[Frame]) -> Vec<u8> {
        let mut enc = Encoder::new();
        let mut w = BatchWriter::with_capacity(64);
        for f in frames {
            w.push(enc.encode(f));
        }
        w.take()
    }

    #[test]
    fn frames_roundtrip_through_a_batch() {
        let frames = sample_frames();
        let bytes = batch_of(&frames);
        let batch = Batch::new(bytes).unwrap();
        assert_eq!(batch.len(), frames.len());
        for (archived, original) in batch.iter().zip(&frames) {
            assert_eq!(&to_owned(archived), original);
            assert_eq!(archived.kind(), original.kind());
        }
    }

    #[test]
    fn lone_frame_roundtrips() {
        for f in sample_frames() {
            let bytes = encode(&f);
            assert_eq!(to_owned(access(&bytes).unwrap()), f);
        }
    }

    #[test]
    fn a_batch_over_validated_spans_reads_those_frames() {
        let frames = sample_frames();
        // Frames at 8-aligned offsets with a length prefix and padding, as in a recording.
        let mut buf = Vec::new();
        let mut spans = Vec::new();
        for f in &frames {
            let bytes = encode(f);
            buf.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            spans.push((buf.len() as u32, bytes.len() as u32));
            access(&bytes).unwrap();
            buf.extend_from_slice(&bytes);
            buf.resize(buf.len().next_multiple_of(8), 0);
        }
        // Every other frame, as a filter would pick them.
        let picked: Vec<(u32, u32)> = spans.iter().copied().step_by(2).collect();
        // SAFETY: each span holds the bytes of one frame that `access` accepted.
        let batch = unsafe { Batch::from_validated(&buf[..], picked.clone()) };
        assert_eq!(batch.len(), picked.len());
        for (i, (archived, original)) in batch.iter().zip(frames.iter().step_by(2)).enumerate() {
            assert_eq!(&to_owned(archived), original);
            assert_eq!(batch.frame_bytes(i).unwrap(), &encode(original)[..]);
        }
        assert_eq!(batch.as_bytes(), &buf[..]);
    }

    #[test]
    fn empty_batch_is_valid() {
        let mut w = BatchWriter::default();
        w.begin();
        let b = Batch::new(w.take()).unwrap();
        assert!(b.is_empty());
    }

    #[test]
    fn defects_are_errors() {
        let good = batch_of(&sample_frames());
        assert!(matches!(
            Batch::new(&good[..5]),
            Err(WireError::Truncated { .. })
        ));
        let mut bad = good.clone();
        bad[0] = b'X';
        assert!(matches!(Batch::new(&bad[..]), Err(WireError::BadMagic(_))));
        let mut bad = good.clone();
        bad[2] = 99;
        assert_eq!(Batch::new(&bad[..]).unwrap_err(), WireError::Version(99));
        let mut bad = good.clone();
        bad.push(0);
        assert_eq!(Batch::new(&bad[..]).unwrap_err(), WireError::Trailing(1));
        // A count larger than what follows.
        let mut bad = good.clone();
        bad[4] = 200;
        assert!(matches!(
            Batch::new(&bad[..]),
            Err(WireError::Truncated { .. })
        ));
        // Cut off inside the last frame.
        assert!(Batch::new(&good[..good.len() - 1]).is_err());
        // A huge frame length.
        let mut bad = good.clone();
        bad[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Batch::new(&bad[..]),
            Err(WireError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn corrupt_enum_tag_is_invalid() {
        let f = &sample_frames()[0];
        let mut bytes = encode(f);
        // Scribble over every byte in turn: never a panic, and a changed frame either fails
        // validation or decodes to something (rkyv guarantees memory safety, not semantics).
        for i in 0..bytes.len() {
            let saved = bytes[i];
            bytes[i] = 0xff;
            let _ = access(&bytes).map(to_owned);
            bytes[i] = saved;
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Batch::new(&bytes[..]).map(|b| b.iter().map(to_owned).count());
            let _ = access(&bytes).map(to_owned);
        }

        #[test]
        fn mutated_batches_never_panic(
            idx in any::<prop::sample::Index>(),
            val in any::<u8>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut good = batch_of(&sample_frames());
            let i = idx.index(good.len());
            good[i] = val;
            let n = cut.index(good.len() + 1);
            let _ = Batch::new(&good[..n]).map(|b| b.iter().map(to_owned).count());
            let _ = Batch::new(&good[..]).map(|b| b.iter().map(to_owned).count());
        }
    }
}
