//! The last-value cache: per instrument, the current state the stream has built so far
//! (latest quote, full book, running trade totals, latest status), kept by the sequencer as it
//! publishes and read by gateway sessions for snapshots on subscribe and for conflation.
//!
//! Every value is tagged with the `seq` of the frame that made it, so a session that sends a
//! state knows which later frames of the stream it has already covered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use tickwire_sdk::L2Book;
use tickwire_sdk::wire::{
    Body, BookSnapshot, Channel, Frame, InstrumentInfo, Quote, Status, Trade, flags,
};

/// The three timestamps of the frame a value came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stamp {
    /// Venue time, ns.
    pub exchange: u64,
    /// Feed receive time, ns.
    pub recv: u64,
    /// Engine publish time, ns.
    pub publish: u64,
}

impl Stamp {
    fn of(f: &Frame) -> Stamp {
        Stamp {
            exchange: f.ts_exchange,
            recv: f.ts_recv,
            publish: f.ts_publish,
        }
    }
}

/// Running totals of an instrument's trades since the server started: a session that knows
/// the totals at the last trade it delivered can tell exactly how much it has not delivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TradeTotals {
    /// Trades so far.
    pub count: u64,
    /// Sum of quantities, 1e-9 units.
    pub volume: i128,
    /// Sum of price x quantity, 1e-18 units.
    pub notional: i128,
}

impl TradeTotals {
    /// Adds one trade.
    pub fn add(&mut self, price: i64, qty: i64) {
        self.count += 1;
        self.volume += qty as i128;
        self.notional += price as i128 * qty as i128;
    }
}

/// What the cache holds for one instrument.
#[derive(Debug, Default)]
pub struct InstrumentState {
    /// Venue id of the instrument.
    pub venue: u16,
    /// Its definition, once seen.
    pub info: Option<Arc<InstrumentInfo>>,
    /// The book built from snapshots and deltas.
    pub book: L2Book,
    /// Seq of the last book frame applied (0: none yet).
    pub book_seq: u64,
    /// The book is flagged bad (a gap or disconnect was reported and no snapshot came since).
    pub book_bad: bool,
    /// Stamp of the last book frame.
    pub book_stamp: Stamp,
    /// The latest quote, its seq and stamp.
    pub quote: Option<(Quote, u64, Stamp)>,
    /// Totals of all trades so far.
    pub totals: TradeTotals,
    /// The last trade, its seq and stamp.
    pub last_trade: Option<(Trade, u64, Stamp)>,
    /// The latest status frame (flags included).
    pub status: Option<(Status, u64, u8, Stamp)>,
    /// Seq of the control lane (status and definition frames) so far.
    pub control_seq: u64,
}

impl InstrumentState {
    /// Folds a frame just published into the state.
    pub fn apply(&mut self, f: &Frame) {
        self.venue = f.venue;
        match &f.body {
            Body::Trade(t) => {
                self.totals.add(t.price, t.qty);
                self.last_trade = Some((t.clone(), f.seq, Stamp::of(f)));
            }
            Body::Quote(q) => self.quote = Some((*q, f.seq, Stamp::of(f))),
            Body::BookDelta(_) | Body::BookSnapshot(_) => {
                self.book.apply_owned(f);
                self.book_seq = f.seq;
                self.book_stamp = Stamp::of(f);
                if matches!(f.body, Body::BookSnapshot(_)) {
                    self.book_bad = f.flags & flags::BAD_BOOK != 0;
                } else if f.flags & flags::BAD_BOOK != 0 {
                    self.book_bad = true;
                }
            }
            Body::Status(s) => {
                if f.flags & flags::BAD_BOOK != 0 {
                    self.book_bad = true;
                }
                self.status = Some((s.clone(), f.seq, f.flags, Stamp::of(f)));
                self.control_seq = f.seq;
            }
            Body::Definition(_) => self.control_seq = f.seq,
            Body::TradeSummary(_) | Body::Heartbeat => {}
        }
    }

    /// The current top-`depth` book as a snapshot frame (seq = the book stream's seq).
    pub fn book_frame(&self, instrument: u32, depth: usize, extra_flags: u8) -> Frame {
        let mut f = self.frame(
            instrument,
            self.book_seq,
            self.book_stamp,
            Body::BookSnapshot(if self.book_seq == 0 {
                BookSnapshot::default()
            } else {
                self.book.snapshot(Some(depth))
            }),
        );
        f.flags = flags::SNAPSHOT | flags::LAST | extra_flags;
        if self.book_bad || self.book_seq == 0 {
            f.flags |= flags::BAD_BOOK;
        }
        f
    }

    /// The latest quote as a frame, if any.
    pub fn quote_frame(&self, instrument: u32, extra_flags: u8) -> Option<Frame> {
        let (q, seq, stamp) = self.quote.as_ref()?;
        let mut f = self.frame(instrument, *seq, *stamp, Body::Quote(*q));
        f.flags |= extra_flags;
        Some(f)
    }

    /// The latest status as a snapshot frame of the control lane (seq = the lane's current
    /// seq, flagged `SNAPSHOT`), if any.
    pub fn status_frame(&self, instrument: u32) -> Option<Frame> {
        let (s, _, fl, stamp) = self.status.as_ref()?;
        let mut f = self.frame(
            instrument,
            self.control_seq,
            *stamp,
            Body::Status(s.clone()),
        );
        f.flags = *fl | flags::SNAPSHOT;
        Some(f)
    }

    /// The seq of the latest value on `channel` (0 if none).
    pub fn seq(&self, channel: Channel) -> u64 {
        match channel {
            Channel::Trades => self.last_trade.as_ref().map_or(0, |t| t.1),
            Channel::Quotes => self.quote.as_ref().map_or(0, |q| q.1),
            Channel::Book => self.book_seq,
            Channel::Control => self.status.as_ref().map_or(0, |s| s.1),
        }
    }

    fn frame(&self, instrument: u32, seq: u64, stamp: Stamp, body: Body) -> Frame {
        Frame {
            venue: self.venue,
            instrument,
            flags: 0,
            seq,
            ts_exchange: stamp.exchange,
            ts_recv: stamp.recv,
            ts_publish: stamp.publish,
            updates: 1,
            body,
        }
    }
}

/// A handle on one instrument's state.
pub type Slot = Arc<Mutex<InstrumentState>>;

/// The cache: one slot per instrument, created on its first frame.
#[derive(Debug, Default)]
pub struct Lvc {
    slots: RwLock<HashMap<u32, Slot>>,
}

impl Lvc {
    /// An empty cache.
    pub fn new() -> Lvc {
        Lvc::default()
    }

    /// The slot of `instrument`, created if new (the sequencer keeps the handle).
    pub fn slot(&self, instrument: u32) -> Slot {
        if let Some(s) = self.get(instrument) {
            return s;
        }
        let mut g = self.slots.write().unwrap_or_else(|e| e.into_inner());
        g.entry(instrument).or_default().clone()
    }

    /// The slot of `instrument`, if it has had a frame.
    pub fn get(&self, instrument: u32) -> Option<Slot> {
        let g = self.slots.read().unwrap_or_else(|e| e.into_inner());
        g.get(&instrument).cloned()
    }
}

/// Locks a slot, recovering from a poisoned lock (the state is plain data).
pub fn lock(slot: &Slot) -> MutexGuard<'_, InstrumentState> {
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickwire_sdk::wire::{BookDelta, BookSide, Level, Side, StatusCode, TradeId, Venue};

    fn frame(seq: u64, body: Body) -> Frame {
        let mut f = Frame::new(Venue::Binance, 7, 1, 2, body);
        f.seq = seq;
        f.ts_publish = 3;
        f
    }

    #[test]
    fn state_follows_the_stream() {
        let mut s = InstrumentState::default();
        s.apply(&frame(
            1,
            Body::BookSnapshot(BookSnapshot {
                bids: vec![Level { price: 10, qty: 1 }],
                asks: vec![Level { price: 12, qty: 1 }],
            }),
        ));
        s.apply(&frame(
            2,
            Body::BookDelta(BookDelta {
                side: BookSide::Bid,
                price: 11,
                qty: 5,
            }),
        ));
        assert_eq!(s.book_seq, 2);
        let snap = s.book_frame(7, 1, 0);
        let Body::BookSnapshot(b) = &snap.body else {
            panic!()
        };
        assert_eq!(b.bids, vec![Level { price: 11, qty: 5 }]);
        assert_eq!(snap.seq, 2);
        assert_eq!(snap.flags & flags::BAD_BOOK, 0);
        for (seq, price) in [(1, 100), (2, 300)] {
            s.apply(&frame(
                seq,
                Body::Trade(Trade {
                    price,
                    qty: 2,
                    side: Side::Buy,
                    trade_id: TradeId::Num(seq),
                }),
            ));
        }
        assert_eq!(
            s.totals,
            TradeTotals {
                count: 2,
                volume: 4,
                notional: 800
            }
        );
        assert_eq!(s.seq(Channel::Trades), 2);
        let mut gap = frame(
            1,
            Body::Status(Status {
                code: StatusCode::Gap,
                detail: "x".into(),
            }),
        );
        gap.flags = flags::BAD_BOOK;
        s.apply(&gap);
        assert!(s.book_bad);
        assert!(s.book_frame(7, 5, 0).flags & flags::BAD_BOOK != 0);
        assert_eq!(
            s.status_frame(7).unwrap().flags,
            flags::BAD_BOOK | flags::SNAPSHOT
        );
    }
}
