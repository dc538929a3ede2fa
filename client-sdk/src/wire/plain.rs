//! The fast validation of plain frames: the frames that hold no pointer (a trade with no id
//! or a numeric one, a quote, a book delta, a heartbeat), which are most of any stream.
//!
//! rkyv's validator walks every frame through a generic context that tracks subtrees and
//! pointers, ~8-13 ns per frame. A plain frame has none: it is exactly
//! `size_of::<ArchivedFrame>()` bytes, and the only bytes that can make it invalid are its
//! enum tags (the body's kind, a trade's side and id kind, a delta's side); every other
//! field is an integer, valid in any bit pattern. [`plain`] checks those tags and nothing
//! else; anything else (a longer record, a snapshot, a status, a text trade id, a bad tag)
//! goes to rkyv, which gives the verdict and the error message.
//!
//! The offsets come from the archived types (`offset_of!`) and rkyv's documented enum layout
//! (a `repr(u8)` tag, then the variant's fields); unit tests check them against encoded
//! frames, and a property test checks that whatever this accepts, rkyv accepts too.

use std::mem::{offset_of, size_of};

use super::frame::{ArchivedBookDelta, ArchivedFrame, ArchivedTrade, Kind};

/// Bytes of a frame that holds no pointer.
pub(crate) const PLAIN_LEN: usize = size_of::<ArchivedFrame>();

/// Where the body's tag is.
const BODY: usize = offset_of!(ArchivedFrame, body);
/// Where a variant's fields start in the body: after the one-byte tag (all archived types
/// are 1-aligned with rkyv's `unaligned` format).
const FIELDS: usize = BODY + 1;
/// A trade's side tag.
const TRADE_SIDE: usize = FIELDS + offset_of!(ArchivedTrade, side);
/// A trade's id tag.
const TRADE_ID: usize = FIELDS + offset_of!(ArchivedTrade, trade_id);
/// A delta's side tag.
const DELTA_SIDE: usize = FIELDS + offset_of!(ArchivedBookDelta, side);

// Tags, in declaration order (rkyv numbers archived enum variants from 0).
const TAG_TRADE: u8 = 0;
const TAG_QUOTE: u8 = 1;
const TAG_DELTA: u8 = 2;
const TAG_HEARTBEAT: u8 = 5;
/// `Side` has three variants, `BookSide` two.
const SIDES: u8 = 3;
const BOOK_SIDES: u8 = 2;
/// `TradeId::None` and `TradeId::Num` hold no pointer (`Text` does).
const ID_NONE_OR_NUM: u8 = 2;

// The archived types must be 1-aligned, or a frame at an odd offset would need checking for
// alignment too.
const _: () = assert!(align_of::<ArchivedFrame>() == 1);

/// `bytes` as a frame, and its kind, if it is a plain frame with valid tags; `None` means
/// "not decided here" (ask rkyv), not "invalid".
#[inline]
pub(crate) fn plain(bytes: &[u8]) -> Option<(&ArchivedFrame, Kind)> {
    let b: &[u8; PLAIN_LEN] = bytes.try_into().ok()?;
    let kind = match b[BODY] {
        TAG_TRADE if b[TRADE_SIDE] < SIDES && b[TRADE_ID] < ID_NONE_OR_NUM => Kind::Trade,
        TAG_QUOTE => Kind::Quote,
        TAG_DELTA if b[DELTA_SIDE] < BOOK_SIDES => Kind::BookDelta,
        TAG_HEARTBEAT => Kind::Heartbeat,
        _ => return None,
    };
    // SAFETY: `b` is exactly one `ArchivedFrame` (1-aligned, checked above) whose body is a
    // trade with a valid side and a pointer-free id, a quote, a delta with a valid side or a
    // heartbeat: every other byte is part of an integer (any bit pattern is valid) or
    // padding. So it is a valid `ArchivedFrame` as rkyv would check it (the tests compare).
    let frame = unsafe { &*(b.as_ptr().cast::<ArchivedFrame>()) };
    debug_assert!(
        rkyv::access::<ArchivedFrame, rkyv::rancor::Error>(bytes).is_ok(),
        "the plain check accepted what rkyv rejects"
    );
    debug_assert_eq!(frame.kind(), kind);
    Some((frame, kind))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::wire::{
        Body, BookDelta, BookSide, BookSnapshot, Frame, Level, Quote, Side, Status, StatusCode,
        Trade, TradeId, Venue, encode,
    };

    fn frame(body: Body) -> Frame {
        let mut f = Frame::new(Venue::Binance, 7, 11, 13, body).with_flags(0x80);
        f.seq = 42;
        f.ts_publish = 17;
        f
    }

    fn trade(side: Side, trade_id: TradeId) -> Frame {
        frame(Body::Trade(Trade {
            price: -3,
            qty: 5,
            side,
            trade_id,
        }))
    }

    fn delta(side: BookSide) -> Frame {
        frame(Body::BookDelta(BookDelta {
            side,
            price: 1,
            qty: 2,
        }))
    }

    fn quote() -> Frame {
        frame(Body::Quote(Quote {
            bid_px: 1,
            bid_qty: 2,
            ask_px: 3,
            ask_qty: 4,
        }))
    }

    /// Every plain frame the encoder makes.
    fn plains() -> Vec<Frame> {
        let mut v = vec![quote(), frame(Body::Heartbeat)];
        for side in [Side::Buy, Side::Sell, Side::Unknown] {
            v.push(trade(side, TradeId::None));
            v.push(trade(side, TradeId::Num(u64::MAX)));
        }
        v.push(delta(BookSide::Bid));
        v.push(delta(BookSide::Ask));
        v
    }

    #[test]
    fn the_offsets_are_where_the_encoder_puts_the_tags() {
        // The body tag and the variant fields, found from encoded bytes: frames that differ
        // only in one tag differ in exactly that byte.
        let diff = |a: &Frame, b: &Frame| {
            let (a, b) = (encode(a), encode(b));
            assert_eq!((a.len(), b.len()), (PLAIN_LEN, PLAIN_LEN));
            let at: Vec<usize> = (0..PLAIN_LEN).filter(|&i| a[i] != b[i]).collect();
            (at, a, b)
        };
        let (at, a, b) = diff(
            &trade(Side::Buy, TradeId::None),
            &trade(Side::Sell, TradeId::None),
        );
        assert_eq!(at, [TRADE_SIDE]);
        assert_eq!((a[TRADE_SIDE], b[TRADE_SIDE]), (0, 1));
        let (at, a, b) = diff(&delta(BookSide::Bid), &delta(BookSide::Ask));
        assert_eq!(at, [DELTA_SIDE]);
        assert_eq!((a[DELTA_SIDE], b[DELTA_SIDE]), (0, 1));
        let (at, a, b) = diff(
            &trade(Side::Buy, TradeId::None),
            &trade(Side::Buy, TradeId::Num(0)),
        );
        assert_eq!(at, [TRADE_ID]);
        assert_eq!((a[TRADE_ID], b[TRADE_ID]), (0, 1));
        for (f, tag) in [
            (trade(Side::Buy, TradeId::None), TAG_TRADE),
            (quote(), TAG_QUOTE),
            (delta(BookSide::Bid), TAG_DELTA),
            (frame(Body::Heartbeat), TAG_HEARTBEAT),
        ] {
            assert_eq!(encode(&f)[BODY], tag, "{:?}", f.kind());
        }
    }

    #[test]
    fn plain_frames_pass_and_others_go_to_rkyv() {
        for f in plains() {
            let bytes = encode(&f);
            let (got, kind) = plain(&bytes).unwrap_or_else(|| panic!("{f:?} is plain"));
            assert_eq!((crate::wire::to_owned(got), kind), (f.clone(), f.kind()));
        }
        let status = frame(Body::Status(Status {
            code: StatusCode::Gap,
            detail: String::new(),
        }));
        let snapshot = frame(Body::BookSnapshot(BookSnapshot {
            bids: vec![Level { price: 1, qty: 1 }],
            asks: vec![],
        }));
        let text_id = trade(Side::Buy, TradeId::Text("x".into()));
        for f in [status, snapshot, text_id] {
            let bytes = encode(&f);
            assert!(plain(&bytes).is_none(), "{f:?} holds a pointer");
            assert!(crate::wire::access(&bytes).is_ok());
        }
        // A plain frame with a byte more or less is not plain.
        let mut bytes = encode(&quote());
        bytes.push(0);
        assert!(plain(&bytes).is_none() && plain(&bytes[1..bytes.len() - 1]).is_none());
        // Each bad tag is refused.
        for (f, at, bad) in [
            (quote(), BODY, 8),
            (trade(Side::Buy, TradeId::None), TRADE_SIDE, SIDES),
            (trade(Side::Buy, TradeId::None), TRADE_ID, 3),
            (delta(BookSide::Ask), DELTA_SIDE, BOOK_SIDES),
        ] {
            let mut bytes = encode(&f);
            bytes[at] = bad;
            assert!(plain(&bytes).is_none());
            assert!(crate::wire::access(&bytes).is_err());
        }
    }

    fn no_wider_than_rkyv(bytes: &[u8]) -> Result<(), TestCaseError> {
        if let Some((f, kind)) = plain(bytes) {
            let checked = rkyv::access::<ArchivedFrame, rkyv::rancor::Error>(bytes);
            prop_assert!(checked.is_ok(), "rkyv rejects what plain accepts");
            let checked = checked.unwrap();
            prop_assert_eq!(kind, checked.kind());
            prop_assert_eq!(crate::wire::to_owned(f), crate::wire::to_owned(checked));
        }
        Ok(())
    }

    proptest! {
        /// Whatever `plain` accepts, rkyv accepts as the same frame: random bytes of the
        /// plain length with the body tag forced into range (else nearly all are refused at
        /// once), and plain frames with bytes changed.
        #[test]
        fn accepts_nothing_rkyv_refuses(
            mut bytes in proptest::collection::vec(any::<u8>(), PLAIN_LEN),
            tag in 0u8..9,
        ) {
            bytes[BODY] = tag;
            no_wider_than_rkyv(&bytes)?;
        }

        #[test]
        fn changed_plain_frames(
            which in 0usize..10,
            edits in proptest::collection::vec((0..PLAIN_LEN, any::<u8>()), 1..4),
        ) {
            let mut bytes = encode(&plains()[which]);
            for (at, v) in edits {
                bytes[at] = v;
            }
            no_wider_than_rkyv(&bytes)?;
        }
    }
}
