//! Binance's documented local order book procedure, as a sans-IO state machine per symbol.
//!
//! Spot ("How to manage a local order book correctly"):
//!
//! 1. buffer diff events from connection start;
//! 2. fetch a REST snapshot;
//! 3. if the snapshot's `lastUpdateId` is older than the first buffered event, fetch again;
//! 4. drop buffered events with `u <= lastUpdateId`;
//! 5. apply the rest, then live events: an event with `u <= book id` is ignored; an event
//!    with `U > book id + 1` is a hole: discard the book and start over from step 2.
//!
//! USD-M futures differ: the first applied event has `U <= lastUpdateId <= u`, and every later
//! event's `pu` must equal the previous event's `u`.
//!
//! A hole, or a book that crosses after an update, is reported as [`Outcome::Gap`]; the
//! machine then buffers again and asks for a new snapshot. Nothing is ever repaired silently.

use std::collections::VecDeque;

use tickwire_sdk::wire::{BookSide, Level};

use crate::book::OrderBook;

/// Which of Binance's continuity rules applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncRule {
    /// Spot: `U`/`u` chain (`U` of an event = previous `u` + 1).
    Spot,
    /// USD-M futures: `pu` of an event = previous `u`.
    Futures,
}

/// One diff depth event (`depthUpdate`), parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DepthEvent {
    /// `U`: first update id in the event.
    pub first_id: u64,
    /// `u`: final update id in the event.
    pub last_id: u64,
    /// `pu`: final update id of the previous event (futures only).
    pub prev_last_id: Option<u64>,
    /// Event time, ns since the epoch (0 if absent).
    pub ts_exchange: u64,
    /// When the message was read off the socket, ns.
    pub ts_recv: u64,
    /// Changed bid levels: absolute quantities, 0 = delete.
    pub bids: Vec<Level>,
    /// Changed ask levels: absolute quantities, 0 = delete.
    pub asks: Vec<Level>,
}

impl DepthEvent {
    /// Applies the levels to `book`.
    pub fn apply_to(&self, book: &mut OrderBook) {
        for l in &self.bids {
            book.set(BookSide::Bid, l.price, l.qty);
        }
        for l in &self.asks {
            book.set(BookSide::Ask, l.price, l.qty);
        }
    }
}

/// A REST depth snapshot, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DepthSnapshot {
    /// `lastUpdateId`.
    pub last_update_id: u64,
    /// Bids, best first.
    pub bids: Vec<Level>,
    /// Asks, best first.
    pub asks: Vec<Level>,
}

/// What the caller must do after feeding an event or a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The event was applied to the live book: emit its levels as deltas.
    Applied,
    /// Held until the book is synced. `request_snapshot`: ask the driver for a snapshot now.
    Buffered {
        /// True if a snapshot should be requested now.
        request_snapshot: bool,
    },
    /// Already covered by the book (older than its update id): nothing to do.
    Ignored,
    /// The book was (re)built from a snapshot plus buffered events: emit a full snapshot.
    Synced {
        /// Update id the book is now at.
        last_id: u64,
        /// Number of buffered events applied on top of the snapshot.
        replayed: usize,
    },
    /// The snapshot is older than the buffered events: request another one.
    SnapshotTooOld {
        /// The snapshot's `lastUpdateId`.
        snapshot_id: u64,
        /// First update id still buffered.
        first_buffered: u64,
    },
    /// The snapshot was kept; the book syncs when the first event after it arrives.
    SnapshotHeld,
    /// A snapshot arrived while the book was live (a late reply): dropped.
    SnapshotUnexpected,
    /// Continuity broke. The book is no longer trusted; events are buffered from here and a
    /// new snapshot must be requested.
    Gap {
        /// What broke, for the status frame.
        detail: String,
        /// True when the event was applied (and must be emitted) before the break showed
        /// (a crossed book).
        applied: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Not synced: events are buffered until a snapshot bridges them.
    Buffering {
        /// A snapshot is on its way.
        requested: bool,
        /// A snapshot newer than every buffered event, waiting for the event that bridges it.
        held: Option<DepthSnapshot>,
    },
    /// Synced: the book is at update id `last_id`.
    Live { last_id: u64 },
}

/// Buffered events kept at most while waiting for a snapshot; older ones are dropped (safe:
/// a snapshot older than what remains is refused and fetched again).
pub const MAX_BUFFERED: usize = 20_000;

/// The sync state machine and the book it keeps, for one symbol.
#[derive(Debug, Clone)]
pub struct DepthSync {
    rule: SyncRule,
    state: State,
    buffer: VecDeque<DepthEvent>,
    book: OrderBook,
    /// Events dropped from a full buffer since the last sync.
    pub dropped: u64,
}

impl DepthSync {
    /// A machine that starts unsynced.
    pub fn new(rule: SyncRule) -> DepthSync {
        DepthSync {
            rule,
            state: State::Buffering {
                requested: false,
                held: None,
            },
            buffer: VecDeque::new(),
            book: OrderBook::new(),
            dropped: 0,
        }
    }

    /// The book (only trustworthy when [`Self::is_live`]).
    pub fn book(&self) -> &OrderBook {
        &self.book
    }

    /// True when the book is synced.
    pub fn is_live(&self) -> bool {
        matches!(self.state, State::Live { .. })
    }

    /// The update id the live book is at.
    pub fn last_id(&self) -> Option<u64> {
        match self.state {
            State::Live { last_id } => Some(last_id),
            State::Buffering { .. } => None,
        }
    }

    /// Forgets everything (connection lost): the next event starts a fresh sync.
    pub fn reset(&mut self) {
        self.state = State::Buffering {
            requested: false,
            held: None,
        };
        self.buffer.clear();
        self.book.clear();
    }

    /// The driver could not deliver the requested snapshot; a new request is allowed.
    pub fn snapshot_failed(&mut self) {
        if let State::Buffering { requested, .. } = &mut self.state {
            *requested = false;
        }
    }

    /// Feeds one diff event.
    pub fn on_event(&mut self, ev: &DepthEvent) -> Outcome {
        match &mut self.state {
            State::Live { last_id } => {
                let last = *last_id;
                if let Some(detail) = self.continuity_break(last, ev) {
                    return self.break_to_buffering(ev, detail, false);
                }
                if ev.last_id <= last {
                    return Outcome::Ignored;
                }
                ev.apply_to(&mut self.book);
                self.state = State::Live {
                    last_id: ev.last_id,
                };
                if self.book.is_crossed() {
                    let detail = format!(
                        "book crossed after update {}..={} (best bid {:?} >= best ask {:?})",
                        ev.first_id,
                        ev.last_id,
                        self.book.best_bid().map(|l| l.price),
                        self.book.best_ask().map(|l| l.price)
                    );
                    self.state = State::Buffering {
                        requested: true,
                        held: None,
                    };
                    self.buffer.clear();
                    return Outcome::Gap {
                        detail,
                        applied: true,
                    };
                }
                Outcome::Applied
            }
            State::Buffering { requested, held } => {
                if let Some(snap) = held.take() {
                    // A snapshot is waiting for the event that bridges it.
                    let id = snap.last_update_id;
                    if covered(self.rule, id, ev) {
                        *held = Some(snap);
                        return Outcome::Ignored;
                    }
                    if !bridges(self.rule, id, ev) {
                        *requested = true;
                        return Outcome::SnapshotTooOld {
                            snapshot_id: id,
                            first_buffered: ev.first_id,
                        };
                    }
                    self.buffer.push_back(ev.clone());
                    return self.sync_from(snap);
                }
                if self.buffer.len() >= MAX_BUFFERED {
                    self.buffer.pop_front();
                    self.dropped += 1;
                }
                self.buffer.push_back(ev.clone());
                let request_snapshot = !*requested;
                *requested = true;
                Outcome::Buffered { request_snapshot }
            }
        }
    }

    /// Feeds a REST snapshot.
    pub fn on_snapshot(&mut self, snap: DepthSnapshot) -> Outcome {
        let State::Buffering { requested, held } = &mut self.state else {
            return Outcome::SnapshotUnexpected;
        };
        *requested = false;
        *held = None;
        let id = snap.last_update_id;
        // Step 4: drop what the snapshot already covers.
        let rule = self.rule;
        while self.buffer.front().is_some_and(|ev| covered(rule, id, ev)) {
            self.buffer.pop_front();
        }
        match self.buffer.front() {
            None => {
                *held = Some(snap);
                Outcome::SnapshotHeld
            }
            Some(first) if !bridges(self.rule, id, first) => {
                *requested = true;
                Outcome::SnapshotTooOld {
                    snapshot_id: id,
                    first_buffered: first.first_id,
                }
            }
            Some(_) => self.sync_from(snap),
        }
    }

    /// Loads the snapshot, replays the buffer on it, goes live.
    fn sync_from(&mut self, snap: DepthSnapshot) -> Outcome {
        self.book.clear();
        for l in &snap.bids {
            self.book.set(BookSide::Bid, l.price, l.qty);
        }
        for l in &snap.asks {
            self.book.set(BookSide::Ask, l.price, l.qty);
        }
        let mut last = snap.last_update_id;
        let mut first = true;
        let mut replayed = 0;
        while let Some(ev) = self.buffer.pop_front() {
            if !first && let Some(detail) = self.continuity_break(last, &ev) {
                // The buffer itself has a hole: start over from this event.
                self.buffer.push_front(ev);
                self.state = State::Buffering {
                    requested: true,
                    held: None,
                };
                return Outcome::Gap {
                    detail: format!("{detail} (while replaying buffered updates)"),
                    applied: false,
                };
            }
            first = false;
            if ev.last_id <= last && self.rule == SyncRule::Spot {
                continue;
            }
            ev.apply_to(&mut self.book);
            last = ev.last_id;
            replayed += 1;
        }
        self.dropped = 0;
        self.state = State::Live { last_id: last };
        Outcome::Synced {
            last_id: last,
            replayed,
        }
    }

    /// The continuity rule: `Some(why)` if `ev` cannot follow a book at `last`.
    fn continuity_break(&self, last: u64, ev: &DepthEvent) -> Option<String> {
        match self.rule {
            SyncRule::Spot => (ev.first_id > last + 1).then(|| {
                format!(
                    "update ids {}..={} missing (book at {last}, next event starts at {})",
                    last + 1,
                    ev.first_id - 1,
                    ev.first_id
                )
            }),
            SyncRule::Futures => match ev.prev_last_id {
                Some(pu) if pu == last => None,
                Some(pu) => Some(format!(
                    "event pu={pu} does not follow the book's last update id {last}"
                )),
                None => Some("futures depth event without `pu`".to_string()),
            },
        }
    }

    fn break_to_buffering(&mut self, ev: &DepthEvent, detail: String, applied: bool) -> Outcome {
        self.buffer.clear();
        self.buffer.push_back(ev.clone());
        self.state = State::Buffering {
            requested: true,
            held: None,
        };
        Outcome::Gap { detail, applied }
    }
}

/// True when a snapshot at `id` already contains all of `ev`
/// (spot: `u <= lastUpdateId`; futures: `u < lastUpdateId`).
fn covered(rule: SyncRule, id: u64, ev: &DepthEvent) -> bool {
    match rule {
        SyncRule::Spot => ev.last_id <= id,
        SyncRule::Futures => ev.last_id < id,
    }
}

/// True when `ev` is the first event to apply on a snapshot at `id`
/// (spot: `U <= lastUpdateId + 1 <= u`; futures: `U <= lastUpdateId <= u`).
fn bridges(rule: SyncRule, id: u64, ev: &DepthEvent) -> bool {
    match rule {
        SyncRule::Spot => ev.first_id <= id + 1 && ev.last_id > id,
        SyncRule::Futures => ev.first_id <= id && ev.last_id >= id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(first: u64, last: u64, bid: Option<(i64, i64)>, ask: Option<(i64, i64)>) -> DepthEvent {
        DepthEvent {
            first_id: first,
            last_id: last,
            prev_last_id: None,
            ts_exchange: 0,
            ts_recv: 0,
            bids: bid
                .map(|(price, qty)| Level { price, qty })
                .into_iter()
                .collect(),
            asks: ask
                .map(|(price, qty)| Level { price, qty })
                .into_iter()
                .collect(),
        }
    }

    fn snap(id: u64) -> DepthSnapshot {
        DepthSnapshot {
            last_update_id: id,
            bids: vec![Level { price: 100, qty: 1 }],
            asks: vec![Level { price: 110, qty: 1 }],
        }
    }

    #[test]
    fn buffers_then_syncs_dropping_covered_events() {
        let mut s = DepthSync::new(SyncRule::Spot);
        assert_eq!(
            s.on_event(&ev(10, 12, Some((99, 5)), None)),
            Outcome::Buffered {
                request_snapshot: true
            }
        );
        assert_eq!(
            s.on_event(&ev(13, 15, Some((98, 5)), None)),
            Outcome::Buffered {
                request_snapshot: false
            }
        );
        // Snapshot at 14 bridges the event 13..=15; 10..=12 is covered.
        assert_eq!(
            s.on_snapshot(snap(14)),
            Outcome::Synced {
                last_id: 15,
                replayed: 1
            }
        );
        assert!(s.is_live());
        assert_eq!(s.book().depth(), (2, 1)); // 100 from snapshot, 98 from the event; 99 dropped
        assert_eq!(
            s.on_event(&ev(16, 16, None, Some((111, 2)))),
            Outcome::Applied
        );
        assert_eq!(s.on_event(&ev(12, 16, None, None)), Outcome::Ignored);
        assert_eq!(s.last_id(), Some(16));
    }

    #[test]
    fn old_snapshot_is_refetched() {
        let mut s = DepthSync::new(SyncRule::Spot);
        s.on_event(&ev(10, 12, None, None));
        assert_eq!(
            s.on_snapshot(snap(5)),
            Outcome::SnapshotTooOld {
                snapshot_id: 5,
                first_buffered: 10
            }
        );
        assert!(!s.is_live());
        assert!(matches!(
            s.on_snapshot(snap(11)),
            Outcome::Synced { last_id: 12, .. }
        ));
    }

    #[test]
    fn snapshot_ahead_of_events_waits_for_its_bridge() {
        let mut s = DepthSync::new(SyncRule::Spot);
        s.on_event(&ev(10, 12, None, None));
        assert_eq!(s.on_snapshot(snap(20)), Outcome::SnapshotHeld);
        assert_eq!(s.on_event(&ev(13, 20, None, None)), Outcome::Ignored);
        assert!(matches!(
            s.on_event(&ev(21, 22, Some((101, 1)), None)),
            Outcome::Synced { last_id: 22, .. }
        ));
        // A held snapshot the stream has jumped past is refused.
        let mut s = DepthSync::new(SyncRule::Spot);
        s.on_event(&ev(10, 12, None, None));
        s.on_snapshot(snap(20));
        assert!(matches!(
            s.on_event(&ev(25, 26, None, None)),
            Outcome::SnapshotTooOld { .. }
        ));
    }

    #[test]
    fn hole_is_a_gap_then_resync() {
        let mut s = DepthSync::new(SyncRule::Spot);
        s.on_event(&ev(10, 12, None, None));
        s.on_snapshot(snap(11));
        let out = s.on_event(&ev(14, 15, None, None));
        assert!(
            matches!(out, Outcome::Gap { applied: false, .. }),
            "{out:?}"
        );
        assert!(!s.is_live());
        // The event after the hole is kept: a snapshot at 14 resyncs with it.
        assert!(matches!(
            s.on_snapshot(snap(14)),
            Outcome::Synced { last_id: 15, .. }
        ));
    }

    #[test]
    fn crossed_book_is_a_gap() {
        let mut s = DepthSync::new(SyncRule::Spot);
        s.on_event(&ev(10, 12, None, None));
        s.on_snapshot(snap(11));
        let out = s.on_event(&ev(13, 13, Some((120, 1)), None));
        assert!(matches!(out, Outcome::Gap { applied: true, .. }), "{out:?}");
        assert!(!s.is_live());
    }

    #[test]
    fn late_snapshot_while_live_is_dropped() {
        let mut s = DepthSync::new(SyncRule::Spot);
        s.on_event(&ev(10, 12, None, None));
        s.on_snapshot(snap(11));
        assert_eq!(s.on_snapshot(snap(11)), Outcome::SnapshotUnexpected);
    }

    #[test]
    fn futures_rule_uses_pu() {
        let mut s = DepthSync::new(SyncRule::Futures);
        let mut e1 = ev(10, 15, None, None);
        e1.prev_last_id = Some(9);
        s.on_event(&e1);
        assert!(matches!(
            s.on_snapshot(snap(12)),
            Outcome::Synced { last_id: 15, .. }
        ));
        let mut e2 = ev(17, 20, None, None);
        e2.prev_last_id = Some(15);
        assert_eq!(s.on_event(&e2), Outcome::Applied);
        let mut e3 = ev(22, 25, None, None);
        e3.prev_last_id = Some(21);
        assert!(matches!(s.on_event(&e3), Outcome::Gap { .. }));
    }

    #[test]
    fn buffer_is_bounded() {
        let mut s = DepthSync::new(SyncRule::Spot);
        for i in 0..(MAX_BUFFERED as u64 + 10) {
            s.on_event(&ev(i * 2 + 1, i * 2 + 2, None, None));
        }
        assert_eq!(s.dropped, 10);
        // A snapshot from before the kept events is refused.
        assert!(matches!(
            s.on_snapshot(snap(5)),
            Outcome::SnapshotTooOld { .. }
        ));
    }
}
