//! One Bybit v5 `orderbook.{depth}.{symbol}` topic's book, as a sans-IO state machine.
//!
//! The documented rules (Bybit v5 docs, "WebSocket Stream > Public > Orderbook"):
//!
//! - after subscribing, a `snapshot` arrives; then `delta` messages whenever the book changes;
//! - "If you receive a new snapshot message, you will have to reset your local orderbook";
//!   Bybit re-sends a snapshot "if there is a problem on Bybit's end";
//! - a delta level with size `0` deletes the price; any other size sets it;
//! - `u` is the update id: "normally this id is continuous" (the zh-TW page: 一般情況下該id是
//!   連續的), so a delta must carry the previous `u` + 1;
//! - "Occasionally, you'll receive "u"=1, which is a snapshot data due to the restart of the
//!   service. So please overwrite your local orderbook";
//! - level 1 is snapshot-only, and is re-sent every 3 s when unchanged "and the field u will
//!   be the same as that in the previous message".
//!
//! A delta whose `u` does not follow, a delta before any snapshot, and a book that is crossed
//! after a delta are breaks ([`Outcome::Break`]): the book is dropped, later deltas are
//! discarded ([`Outcome::Dropped`]) until a fresh snapshot arrives (the caller resubscribes
//! the topic to get one). Nothing is ever repaired silently.

use tickwire_sdk::wire::{BookSide, Level};

use crate::book::OrderBook;

/// `snapshot` or `delta`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventKind {
    /// The whole book (to the topic's depth).
    #[default]
    Snapshot,
    /// Changed levels only.
    Delta,
}

/// One orderbook message, parsed. Reused between messages (its vectors keep their capacity).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BookEvent {
    /// `type`.
    pub kind: EventKind,
    /// `u`: the update id.
    pub u: u64,
    /// `seq`: the cross sequence (not contiguous; kept for the status details).
    pub seq: Option<u64>,
    /// Matching-engine time (`cts`), else the message's `ts`, ns since the epoch (0 if none).
    pub ts_exchange: u64,
    /// When the message was read off the socket, ns.
    pub ts_recv: u64,
    /// Bid levels: absolute sizes, 0 = delete.
    pub bids: Vec<Level>,
    /// Ask levels: absolute sizes, 0 = delete.
    pub asks: Vec<Level>,
}

impl BookEvent {
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

/// What the caller must do after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The book was replaced by a snapshot: emit it whole.
    Replaced {
        /// `u` = 1 while the book was already at a higher id: the venue restarted.
        restart: bool,
        /// Same `u` as the live book (level 1's periodic re-send): nothing changed.
        unchanged: bool,
        /// The book had been broken (gap, disconnect) and is good again: report `Resynced`.
        resynced: bool,
    },
    /// The delta was applied: emit its levels.
    Applied,
    /// A delta while the book waits for a fresh snapshot: discarded.
    Dropped,
    /// Continuity broke: report a gap and resubscribe. The book is dropped; deltas are
    /// discarded until the next snapshot.
    Break {
        /// What broke, for the status frame.
        detail: String,
        /// True when the delta was applied (and must be emitted, flagged bad) before the
        /// break showed (a crossed book).
        applied: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Subscribed (or reconnected): the first snapshot has not arrived yet.
    AwaitSnapshot,
    /// The book is good at update id `u`.
    Live { u: u64 },
    /// Broken; a resubscription is on its way. Deltas are dropped until a snapshot.
    Resyncing,
}

/// The book of one orderbook topic.
#[derive(Debug, Clone)]
pub struct TopicBook {
    /// The topic, as subscribed (`orderbook.50.BTCUSDT`), for the resubscription.
    pub topic: String,
    /// The depth in the topic name.
    pub depth: u32,
    state: State,
    book: OrderBook,
    /// The book broke (or the connection dropped) since it was last good: the next snapshot
    /// is reported as a resync.
    flagged: bool,
}

impl TopicBook {
    /// A book waiting for its first snapshot.
    pub fn new(topic: &str, depth: u32) -> TopicBook {
        TopicBook {
            topic: topic.to_string(),
            depth,
            state: State::AwaitSnapshot,
            book: OrderBook::new(),
            flagged: false,
        }
    }

    /// The book (trustworthy only when [`Self::is_live`]).
    pub fn book(&self) -> &OrderBook {
        &self.book
    }

    /// True when the book is good.
    pub fn is_live(&self) -> bool {
        matches!(self.state, State::Live { .. })
    }

    /// The update id the live book is at.
    pub fn last_u(&self) -> Option<u64> {
        match self.state {
            State::Live { u } => Some(u),
            _ => None,
        }
    }

    /// The connection dropped: forget the book, wait for the snapshot the new subscription
    /// sends, and report that snapshot as a resync. Returns true if there was a book.
    pub fn disconnect(&mut self) -> bool {
        let had = !matches!(self.state, State::AwaitSnapshot) || self.flagged;
        if had {
            self.flagged = true;
        }
        self.state = State::AwaitSnapshot;
        self.book.clear();
        had
    }

    /// Breaks the book from outside (an update that could not be read): returns false if it
    /// was already waiting for a snapshot after a break.
    pub fn force_break(&mut self) -> bool {
        if self.state == State::Resyncing {
            return false;
        }
        self.break_book();
        true
    }

    fn break_book(&mut self) {
        self.state = State::Resyncing;
        self.flagged = true;
        self.book.clear();
    }

    /// Feeds one message.
    pub fn on_event(&mut self, ev: &BookEvent) -> Outcome {
        // `u` = 1 is the documented restart: whatever its type, it carries the whole book.
        if ev.kind == EventKind::Snapshot || ev.u == 1 {
            let prev = self.last_u();
            let restart = ev.u == 1 && prev.is_some_and(|p| p > 1);
            let unchanged = prev == Some(ev.u) && ev.kind == EventKind::Snapshot;
            self.book.clear();
            ev.apply_to(&mut self.book);
            self.book.set_valid(true);
            self.state = State::Live { u: ev.u };
            let resynced = std::mem::take(&mut self.flagged);
            return Outcome::Replaced {
                restart,
                unchanged,
                resynced,
            };
        }
        match self.state {
            State::Resyncing => Outcome::Dropped,
            State::AwaitSnapshot => {
                self.break_book();
                Outcome::Break {
                    detail: format!("{}: delta u={} before any snapshot", self.topic, ev.u),
                    applied: false,
                }
            }
            State::Live { u } => {
                if ev.u != u.wrapping_add(1) {
                    let detail = if ev.u > u {
                        format!(
                            "{}: update ids {}..={} missing (book at u={u}, delta u={})",
                            self.topic,
                            u + 1,
                            ev.u - 1,
                            ev.u
                        )
                    } else {
                        format!(
                            "{}: delta u={} does not follow the book's u={u} (expected {})",
                            self.topic,
                            ev.u,
                            u.wrapping_add(1)
                        )
                    };
                    self.break_book();
                    return Outcome::Break {
                        detail,
                        applied: false,
                    };
                }
                ev.apply_to(&mut self.book);
                self.state = State::Live { u: ev.u };
                if self.book.is_crossed() {
                    let detail = format!(
                        "{}: book crossed after delta u={} (best bid {:?} >= best ask {:?})",
                        self.topic,
                        ev.u,
                        self.book.best_bid().map(|l| l.price),
                        self.book.best_ask().map(|l| l.price)
                    );
                    self.break_book();
                    return Outcome::Break {
                        detail,
                        applied: true,
                    };
                }
                Outcome::Applied
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventKind, u: u64, bids: &[(i64, i64)], asks: &[(i64, i64)]) -> BookEvent {
        let lv = |v: &[(i64, i64)]| v.iter().map(|&(price, qty)| Level { price, qty }).collect();
        BookEvent {
            kind,
            u,
            bids: lv(bids),
            asks: lv(asks),
            ..BookEvent::default()
        }
    }

    use EventKind::{Delta, Snapshot};

    #[test]
    fn snapshot_then_contiguous_deltas() {
        let mut b = TopicBook::new("orderbook.50.X", 50);
        assert!(matches!(
            b.on_event(&ev(Snapshot, 10, &[(100, 1)], &[(110, 1)])),
            Outcome::Replaced {
                restart: false,
                unchanged: false,
                resynced: false
            }
        ));
        assert_eq!(
            b.on_event(&ev(Delta, 11, &[(101, 2)], &[(110, 0)])),
            Outcome::Applied
        );
        assert_eq!(b.book().depth(), (2, 0));
        assert_eq!(b.last_u(), Some(11));
    }

    #[test]
    fn hole_breaks_then_snapshot_resyncs() {
        let mut b = TopicBook::new("orderbook.50.X", 50);
        b.on_event(&ev(Snapshot, 10, &[(100, 1)], &[(110, 1)]));
        let out = b.on_event(&ev(Delta, 12, &[], &[]));
        match out {
            Outcome::Break { detail, applied } => {
                assert!(!applied);
                assert!(detail.contains("11..=11"), "{detail}");
            }
            o => panic!("{o:?}"),
        }
        assert!(!b.is_live());
        assert_eq!(b.on_event(&ev(Delta, 13, &[], &[])), Outcome::Dropped);
        assert!(matches!(
            b.on_event(&ev(Snapshot, 20, &[(100, 1)], &[(110, 1)])),
            Outcome::Replaced { resynced: true, .. }
        ));
        assert_eq!(b.on_event(&ev(Delta, 21, &[], &[])), Outcome::Applied);
    }

    #[test]
    fn repeated_or_backward_u_is_a_break() {
        let mut b = TopicBook::new("t", 50);
        b.on_event(&ev(Snapshot, 10, &[], &[]));
        assert!(matches!(
            b.on_event(&ev(Delta, 10, &[], &[])),
            Outcome::Break { .. }
        ));
    }

    #[test]
    fn delta_before_snapshot_is_a_break() {
        let mut b = TopicBook::new("t", 50);
        assert!(matches!(
            b.on_event(&ev(Delta, 5, &[], &[])),
            Outcome::Break { applied: false, .. }
        ));
        assert_eq!(b.on_event(&ev(Delta, 6, &[], &[])), Outcome::Dropped);
    }

    #[test]
    fn crossed_after_delta_is_a_break() {
        let mut b = TopicBook::new("t", 50);
        b.on_event(&ev(Snapshot, 10, &[(100, 1)], &[(110, 1)]));
        assert!(matches!(
            b.on_event(&ev(Delta, 11, &[(110, 1)], &[])),
            Outcome::Break { applied: true, .. }
        ));
        assert!(!b.is_live());
    }

    #[test]
    fn u_one_is_a_restart_and_replaces() {
        let mut b = TopicBook::new("t", 50);
        b.on_event(&ev(Snapshot, 500, &[(100, 1)], &[(110, 1)]));
        assert!(matches!(
            b.on_event(&ev(Snapshot, 1, &[(90, 1)], &[(95, 1)])),
            Outcome::Replaced { restart: true, .. }
        ));
        assert_eq!(b.book().best_bid().unwrap().price, 90);
        assert_eq!(b.on_event(&ev(Delta, 2, &[], &[])), Outcome::Applied);
    }

    #[test]
    fn level1_resend_with_same_u_is_unchanged() {
        let mut b = TopicBook::new("orderbook.1.X", 1);
        b.on_event(&ev(Snapshot, 7, &[(100, 1)], &[(110, 1)]));
        assert!(matches!(
            b.on_event(&ev(Snapshot, 7, &[(100, 1)], &[(110, 1)])),
            Outcome::Replaced {
                unchanged: true,
                ..
            }
        ));
    }

    #[test]
    fn disconnect_flags_the_next_snapshot() {
        let mut b = TopicBook::new("t", 50);
        assert!(!b.disconnect());
        b.on_event(&ev(Snapshot, 10, &[], &[]));
        assert!(b.disconnect());
        assert!(matches!(
            b.on_event(&ev(Snapshot, 11, &[], &[])),
            Outcome::Replaced { resynced: true, .. }
        ));
    }
}
