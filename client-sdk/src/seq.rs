//! Sequence checking, sans-IO: feed frames in, get holes out.
//!
//! Every stream (one instrument and channel; status and definition frames share the
//! [`Channel::Control`] stream) numbers its frames from 1 without holes. A [`SeqTracker`]
//! checks that rule on the client side:
//!
//! - the first frame of a stream sets the baseline;
//! - after that, each frame's `seq` must be the previous one plus 1;
//! - a frame flagged [`flags::SNAPSHOT`] or [`flags::CONFLATED`], and a trade summary, reset
//!   the baseline to their `seq`: conflated frames skip seqs by design;
//! - heartbeats, and frames with `seq` 0 (never assigned by the sequencer: frames a gateway
//!   made for this connection only), are not checked;
//! - anything else is a [`Hole`] (a frame with a lower `seq` than expected too), after which
//!   the baseline is the frame's `seq`, so one lost frame is reported once.
//!
//! ```
//! use tickwire_sdk::seq::{SeqCheck, SeqTracker};
//! use tickwire_sdk::wire::Channel;
//!
//! let mut t = SeqTracker::new();
//! assert_eq!(t.check_seq(7, Channel::Trades, 1, 0), SeqCheck::First);
//! assert_eq!(t.check_seq(7, Channel::Trades, 2, 0), SeqCheck::InOrder);
//! let SeqCheck::Hole(hole) = t.check_seq(7, Channel::Trades, 5, 0) else { panic!() };
//! assert_eq!((hole.expected, hole.got, hole.missed()), (3, 5, 2));
//! ```

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::wire::{ArchivedFrame, Channel, Frame, Kind, flags};

/// A break in a stream's sequence: frame `got` arrived where `expected` was due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hole {
    /// Instrument id of the stream.
    pub instrument: u32,
    /// Channel of the stream.
    pub channel: Channel,
    /// The `seq` that was due (previous + 1).
    pub expected: u64,
    /// The `seq` that arrived.
    pub got: u64,
}

impl Hole {
    /// How many frames are missing (0 when `got` is below `expected`: a stream that went
    /// backwards, for example after a server restart).
    pub fn missed(&self) -> u64 {
        self.got.saturating_sub(self.expected)
    }
}

/// What [`SeqTracker::check`] made of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqCheck {
    /// Not sequenced: a heartbeat, or `seq` 0.
    Unchecked,
    /// The first frame of its stream: it sets the baseline.
    First,
    /// The previous `seq` plus 1.
    InOrder,
    /// A snapshot or conflated frame: the baseline is now its `seq`.
    Reset,
    /// A hole; the baseline is now the frame's `seq`.
    Hole(Hole),
}

impl SeqCheck {
    /// The hole, if this is one.
    pub fn hole(self) -> Option<Hole> {
        match self {
            SeqCheck::Hole(h) => Some(h),
            _ => None,
        }
    }
}

/// Flags that make a frame reset its stream's baseline instead of continuing it.
pub const RESET_FLAGS: u8 = flags::SNAPSHOT | flags::CONFLATED;

/// Hasher for instrument ids, looked up once per frame received: they are FNV hashes
/// already, so a multiply-rotate mix (as `rustc-hash`) does, at a fraction of SipHash's cost.
/// The keys come from the server the client chose to trust, so no HashDoS defence is needed.
#[derive(Debug, Default, Clone, Copy)]
struct StreamHasher(u64);

impl StreamHasher {
    #[inline]
    fn add(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0xf135_7aea_2e62_a9c5);
    }
}

impl Hasher for StreamHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.add(b as u64);
        }
    }
    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.add(n as u64);
    }
    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.add(n as u64);
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }
}

/// The last `seq` of every stream seen, and the count of holes found.
///
/// Kept per instrument, with one slot per channel (0 = no baseline: seq 0 is never
/// checked), so a lookup finds the instrument and the channel is an index; the instrument
/// checked last is remembered, so a run of frames of one instrument (whatever their
/// channels) is checked without hashing.
#[derive(Debug, Clone, Default)]
pub struct SeqTracker {
    /// Instrument id -> its index in `slots`.
    index: HashMap<u32, usize, BuildHasherDefault<StreamHasher>>,
    /// Per instrument ever seen (until `clear`): the last `seq` of each channel.
    slots: Vec<(u32, [u64; Channel::COUNT])>,
    /// Index in `slots` of the instrument checked last (none if out of range).
    recent: usize,
    streams: usize,
    holes: u64,
}

/// The channel of slot `i`.
const CHANNELS: [Channel; Channel::COUNT] = [
    Channel::Trades,
    Channel::Quotes,
    Channel::Book,
    Channel::Control,
];

impl SeqTracker {
    /// A tracker that has seen nothing.
    pub fn new() -> SeqTracker {
        SeqTracker::default()
    }

    /// Checks one received frame.
    #[inline]
    pub fn check(&mut self, frame: &ArchivedFrame) -> SeqCheck {
        let kind = frame.kind();
        if kind == Kind::Heartbeat {
            return SeqCheck::Unchecked;
        }
        self.check_seq(
            frame.instrument.to_native(),
            kind.channel(),
            frame.seq.to_native(),
            frame.flags | kind_flags(kind),
        )
    }

    /// Checks an owned frame (same rules as [`Self::check`]).
    pub fn check_owned(&mut self, frame: &Frame) -> SeqCheck {
        let kind = frame.kind();
        if kind == Kind::Heartbeat {
            return SeqCheck::Unchecked;
        }
        self.check_seq(
            frame.instrument,
            kind.channel(),
            frame.seq,
            frame.flags | kind_flags(kind),
        )
    }

    /// Checks a frame given by its header fields (for frames read from JSON, say): `flags`
    /// as on the wire; a frame that stands for several (a trade summary) should carry
    /// [`flags::CONFLATED`].
    #[inline]
    pub fn check_seq(
        &mut self,
        instrument: u32,
        channel: Channel,
        seq: u64,
        flags: u8,
    ) -> SeqCheck {
        if seq == 0 {
            return SeqCheck::Unchecked;
        }
        let slot = self.slot(instrument);
        self.check_in(slot, instrument, channel, seq, flags)
    }

    /// The slot of `instrument`'s streams (made if new), for [`Self::check_frame_in`]. Valid
    /// until [`Self::clear`].
    #[inline]
    pub(crate) fn slot(&mut self, instrument: u32) -> usize {
        match self.slots.get(self.recent) {
            Some((id, _)) if *id == instrument => self.recent,
            _ => self.slot_of(instrument),
        }
    }

    /// [`Self::check`] for a frame of kind `kind` of the instrument whose
    /// [`slot`](Self::slot) the caller has.
    #[inline]
    pub(crate) fn check_frame_in(
        &mut self,
        slot: usize,
        frame: &ArchivedFrame,
        kind: Kind,
    ) -> SeqCheck {
        let seq = frame.seq.to_native();
        if kind == Kind::Heartbeat || seq == 0 {
            return SeqCheck::Unchecked;
        }
        let flags = frame.flags | kind_flags(kind);
        self.check_in(
            slot,
            frame.instrument.to_native(),
            kind.channel(),
            seq,
            flags,
        )
    }

    /// Checks `seq` (not 0) on `channel` of the instrument in `slot`.
    #[inline]
    fn check_in(
        &mut self,
        slot: usize,
        instrument: u32,
        channel: Channel,
        seq: u64,
        flags: u8,
    ) -> SeqCheck {
        let prev = std::mem::replace(&mut self.slots[slot].1[channel.index()], seq);
        // The usual case, inlined: the next in order (`prev + 1` cannot wrap to a non-zero
        // `seq`), no reset.
        if prev != 0 && prev.wrapping_add(1) == seq && flags & RESET_FLAGS == 0 {
            return SeqCheck::InOrder;
        }
        self.unusual(instrument, channel, prev, seq, flags)
    }

    /// The slot of `instrument`, made if new; remembered as the recent one.
    #[cold]
    fn slot_of(&mut self, instrument: u32) -> usize {
        let slots = &mut self.slots;
        let i = *self.index.entry(instrument).or_insert_with(|| {
            slots.push((instrument, [0; Channel::COUNT]));
            slots.len() - 1
        });
        self.recent = i;
        i
    }

    /// The outcome when `seq` came after `prev` and that is not simply the next in order.
    #[cold]
    fn unusual(
        &mut self,
        instrument: u32,
        channel: Channel,
        prev: u64,
        seq: u64,
        flags: u8,
    ) -> SeqCheck {
        match prev {
            0 => {
                self.streams += 1;
                SeqCheck::First
            }
            _ if flags & RESET_FLAGS != 0 => SeqCheck::Reset,
            prev if prev.checked_add(1) == Some(seq) => SeqCheck::InOrder,
            prev => {
                self.holes += 1;
                SeqCheck::Hole(Hole {
                    instrument,
                    channel,
                    expected: prev.saturating_add(1),
                    got: seq,
                })
            }
        }
    }

    /// The last `seq` seen on a stream.
    pub fn last(&self, instrument: u32, channel: Channel) -> Option<u64> {
        let seq = self.slots[*self.index.get(&instrument)?].1[channel.index()];
        (seq != 0).then_some(seq)
    }

    /// Forgets a stream: its next frame sets a new baseline (after an unsubscribe, say).
    pub fn forget(&mut self, instrument: u32, channel: Channel) {
        if let Some(&i) = self.index.get(&instrument) {
            let slot = &mut self.slots[i].1[channel.index()];
            if *slot != 0 {
                *slot = 0;
                self.streams -= 1;
            }
        }
    }

    /// Keeps only the streams for which `keep(instrument, channel)` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(u32, Channel) -> bool) {
        for (i, slots) in &mut self.slots {
            for (slot, c) in slots.iter_mut().zip(CHANNELS) {
                if *slot != 0 && !keep(*i, c) {
                    *slot = 0;
                    self.streams -= 1;
                }
            }
        }
    }

    /// Forgets every stream (the hole count stays).
    pub fn clear(&mut self) {
        self.index.clear();
        self.slots.clear();
        self.streams = 0;
    }

    /// Number of streams with a baseline.
    pub fn streams(&self) -> usize {
        self.streams
    }

    /// Holes found since this tracker was made.
    pub fn holes(&self) -> u64 {
        self.holes
    }
}

/// Flags implied by the kind: a trade summary stands for several trades even if a server
/// forgot to flag it.
#[inline]
fn kind_flags(kind: Kind) -> u8 {
    match kind {
        Kind::TradeSummary => flags::CONFLATED,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{
        Body, BookDelta, BookSide, BookSnapshot, Quote, Status, StatusCode, Trade, TradeId, Venue,
        encode, instrument_id,
    };

    const BOOK: u32 = 11;

    fn check(t: &mut SeqTracker, f: &Frame) -> SeqCheck {
        // Through the archived form, as a client sees it.
        let bytes = encode(f);
        let archived = crate::wire::access(&bytes).unwrap();
        let mut twin = t.clone();
        let got = t.check(archived);
        assert_eq!(twin.check_owned(f), got, "owned and archived agree");
        got
    }

    fn frame(instrument: u32, seq: u64, flags: u8, body: Body) -> Frame {
        let mut f = Frame::new(Venue::Binance, instrument, 0, 0, body).with_flags(flags);
        f.seq = seq;
        f
    }

    fn trade(instrument: u32, seq: u64) -> Frame {
        frame(
            instrument,
            seq,
            0,
            Body::Trade(Trade {
                price: 1,
                qty: 1,
                side: crate::wire::Side::Buy,
                trade_id: TradeId::None,
            }),
        )
    }

    fn delta(seq: u64, flags: u8) -> Frame {
        frame(
            BOOK,
            seq,
            flags,
            Body::BookDelta(BookDelta {
                side: BookSide::Bid,
                price: 1,
                qty: 1,
            }),
        )
    }

    fn snapshot(seq: u64) -> Frame {
        frame(
            BOOK,
            seq,
            flags::SNAPSHOT | flags::LAST,
            Body::BookSnapshot(BookSnapshot::default()),
        )
    }

    fn status(instrument: u32, seq: u64) -> Frame {
        frame(
            instrument,
            seq,
            0,
            Body::Status(Status {
                code: StatusCode::Connected,
                detail: String::new(),
            }),
        )
    }

    #[test]
    fn first_frame_sets_the_baseline_then_seq_must_grow_by_one() {
        let mut t = SeqTracker::new();
        // The baseline need not be 1: a client subscribes mid-stream.
        assert_eq!(check(&mut t, &trade(1, 40)), SeqCheck::First);
        assert_eq!(check(&mut t, &trade(1, 41)), SeqCheck::InOrder);
        assert_eq!(check(&mut t, &trade(1, 42)), SeqCheck::InOrder);
        assert_eq!(t.last(1, Channel::Trades), Some(42));
        assert_eq!(t.holes(), 0);
    }

    #[test]
    fn a_skipped_seq_is_a_hole_reported_once() {
        let mut t = SeqTracker::new();
        check(&mut t, &trade(1, 1));
        let hole = check(&mut t, &trade(1, 4)).hole().expect("a hole");
        assert_eq!(
            hole,
            Hole {
                instrument: 1,
                channel: Channel::Trades,
                expected: 2,
                got: 4
            }
        );
        assert_eq!(hole.missed(), 2);
        // The baseline moved to the frame after the hole.
        assert_eq!(check(&mut t, &trade(1, 5)), SeqCheck::InOrder);
        assert_eq!(t.holes(), 1);
    }

    #[test]
    fn repeated_and_backwards_seqs_are_holes() {
        let mut t = SeqTracker::new();
        check(&mut t, &trade(1, 10));
        let dup = check(&mut t, &trade(1, 10)).hole().expect("a duplicate");
        assert_eq!((dup.expected, dup.got, dup.missed()), (11, 10, 0));
        let back = check(&mut t, &trade(1, 3)).hole().expect("backwards");
        assert_eq!((back.expected, back.got), (11, 3));
        assert_eq!(check(&mut t, &trade(1, 4)), SeqCheck::InOrder);
    }

    #[test]
    fn snapshot_and_conflated_frames_reset_the_baseline() {
        let mut t = SeqTracker::new();
        assert_eq!(check(&mut t, &snapshot(100)), SeqCheck::First);
        assert_eq!(check(&mut t, &delta(101, 0)), SeqCheck::InOrder);
        // A fresh snapshot may jump anywhere, forwards or back.
        assert_eq!(check(&mut t, &snapshot(250)), SeqCheck::Reset);
        assert_eq!(check(&mut t, &delta(251, flags::LAST)), SeqCheck::InOrder);
        assert_eq!(check(&mut t, &snapshot(7)), SeqCheck::Reset);
        assert_eq!(check(&mut t, &delta(8, 0)), SeqCheck::InOrder);
        // A conflated frame stands for several: it skips seqs by design.
        assert_eq!(check(&mut t, &delta(20, flags::CONFLATED)), SeqCheck::Reset);
        assert_eq!(check(&mut t, &delta(21, 0)), SeqCheck::InOrder);
        let mut conflated_trade = trade(2, 9);
        conflated_trade.flags = flags::CONFLATED;
        conflated_trade.updates = 5;
        check(&mut t, &trade(2, 3));
        assert_eq!(check(&mut t, &conflated_trade), SeqCheck::Reset);
        assert_eq!(check(&mut t, &trade(2, 10)), SeqCheck::InOrder);
        // A trade summary resets even unflagged.
        let summary = frame(
            2,
            30,
            0,
            Body::TradeSummary(Box::new(crate::wire::TradeSummary {
                count: 4,
                volume: 4,
                vwap: 1,
                high: 1,
                low: 1,
                last: Trade {
                    price: 1,
                    qty: 1,
                    side: crate::wire::Side::Sell,
                    trade_id: TradeId::Num(8),
                },
            })),
        );
        assert_eq!(check(&mut t, &summary), SeqCheck::Reset);
        assert_eq!(
            t.last(2, Channel::Trades),
            Some(30),
            "a summary is on the trades stream"
        );
        assert_eq!(check(&mut t, &trade(2, 31)), SeqCheck::InOrder);
        // After a reset, a hole is still a hole.
        assert!(check(&mut t, &delta(23, 0)).hole().is_some());
        assert_eq!(t.holes(), 1);
    }

    #[test]
    fn streams_are_per_instrument_and_channel() {
        let mut t = SeqTracker::new();
        let quote = |seq| {
            frame(
                1,
                seq,
                0,
                Body::Quote(Quote {
                    bid_px: 1,
                    bid_qty: 1,
                    ask_px: 2,
                    ask_qty: 1,
                }),
            )
        };
        check(&mut t, &trade(1, 5));
        assert_eq!(check(&mut t, &quote(77)), SeqCheck::First);
        assert_eq!(check(&mut t, &trade(2, 900)), SeqCheck::First);
        assert_eq!(check(&mut t, &trade(1, 6)), SeqCheck::InOrder);
        assert_eq!(check(&mut t, &quote(78)), SeqCheck::InOrder);
        assert_eq!(check(&mut t, &trade(2, 901)), SeqCheck::InOrder);
        assert_eq!(t.streams(), 3);
    }

    #[test]
    fn status_and_definition_share_the_control_stream() {
        let mut t = SeqTracker::new();
        let id = instrument_id(Venue::Binance, "BTCUSDT");
        let def = |seq| {
            frame(
                id,
                seq,
                0,
                Body::Definition(crate::wire::Definition {
                    symbol: "BTCUSDT".into(),
                    price_decimals: 2,
                    qty_decimals: 5,
                }),
            )
        };
        assert_eq!(check(&mut t, &def(1)), SeqCheck::First);
        assert_eq!(check(&mut t, &status(id, 2)), SeqCheck::InOrder);
        assert_eq!(check(&mut t, &def(3)), SeqCheck::InOrder);
        let hole = check(&mut t, &status(id, 5)).hole().unwrap();
        assert_eq!(hole.channel, Channel::Control);
        assert_eq!(t.last(id, Channel::Control), Some(5));
    }

    #[test]
    fn heartbeats_and_unsequenced_frames_are_not_checked() {
        let mut t = SeqTracker::new();
        let hb = |seq| frame(0, seq, 0, Body::Heartbeat);
        assert_eq!(check(&mut t, &hb(0)), SeqCheck::Unchecked);
        assert_eq!(check(&mut t, &hb(0)), SeqCheck::Unchecked);
        // Even a sequenced heartbeat is not checked.
        assert_eq!(check(&mut t, &hb(17)), SeqCheck::Unchecked);
        // seq 0: a frame the gateway made for this connection (a definition on subscribe).
        check(&mut t, &status(3, 4));
        assert_eq!(check(&mut t, &status(3, 0)), SeqCheck::Unchecked);
        assert_eq!(check(&mut t, &status(3, 5)), SeqCheck::InOrder);
        assert_eq!(t.streams(), 1);
    }

    #[test]
    fn forgetting_a_stream_takes_a_new_baseline() {
        let mut t = SeqTracker::new();
        check(&mut t, &trade(1, 5));
        check(&mut t, &trade(2, 5));
        check(&mut t, &snapshot(9));
        t.forget(1, Channel::Trades);
        assert_eq!(check(&mut t, &trade(1, 50)), SeqCheck::First);
        t.retain(|_, c| c != Channel::Book);
        assert_eq!(check(&mut t, &delta(30, 0)), SeqCheck::First);
        assert_eq!(check(&mut t, &trade(2, 6)), SeqCheck::InOrder);
        t.clear();
        assert_eq!(t.streams(), 0);
        assert_eq!(check(&mut t, &trade(2, 60)), SeqCheck::First);
        assert_eq!(t.holes(), 0);
    }
}
