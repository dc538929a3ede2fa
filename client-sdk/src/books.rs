//! One [`L2Book`] per instrument, kept from the stream of frames.
//!
//! A book is created by the first book frame of its instrument and is valid once a snapshot
//! was applied. It is invalidated, until the next snapshot, by a frame flagged `BAD_BOOK`
//! (a venue gap, a venue disconnect; a venue-wide one, instrument 0, invalidates every book of
//! the venue), by a hole in its book stream's `seq`, and (with [`Books::on_event`]) by the loss
//! of the connection. An invalid book keeps its levels (and keeps applying deltas) so it can
//! still be shown, marked stale; check [`L2Book::is_valid`] before trusting it.
//!
//! ```
//! use tickwire_sdk::books::Books;
//! use tickwire_sdk::wire::Venue;
//!
//! let mut books = Books::new();
//! // for frame in batch.iter() { books.apply(frame); }
//! if let Some(book) = books.get(Venue::Binance, "BTCUSDT").filter(|b| b.is_valid()) {
//!     println!("best bid {:?}", book.best_bid());
//! }
//! ```

use std::collections::HashMap;

use crate::book::L2Book;
use crate::seq::SeqTracker;
use crate::wire::{ArchivedFrame, Kind, Venue, flags, instrument_id};

#[derive(Debug, Clone, Default)]
struct Entry {
    venue: u16,
    book: L2Book,
}

/// The books of every instrument whose book frames were applied.
#[derive(Debug, Clone, Default)]
pub struct Books {
    books: HashMap<u32, Entry>,
    seq: SeqTracker,
}

impl Books {
    /// No books yet.
    pub fn new() -> Books {
        Books::default()
    }

    /// Applies a frame: book snapshots and deltas go to their instrument's book (checking the
    /// book stream's `seq`), a `BAD_BOOK` frame invalidates; everything else is ignored.
    /// Returns true if a book changed or was invalidated.
    pub fn apply(&mut self, frame: &ArchivedFrame) -> bool {
        let id = frame.instrument.to_native();
        let venue = frame.venue.to_native();
        match frame.kind() {
            Kind::BookSnapshot | Kind::BookDelta if id != 0 => {
                let hole = self.seq.check(frame).hole().is_some();
                let entry = self.books.entry(id).or_insert_with(|| Entry {
                    venue,
                    book: L2Book::new(),
                });
                if hole {
                    entry.book.set_valid(false);
                }
                entry.book.apply(frame);
                true
            }
            _ if frame.flags & flags::BAD_BOOK != 0 => {
                if id == 0 {
                    let mut any = false;
                    for e in self.books.values_mut().filter(|e| e.venue == venue) {
                        e.book.set_valid(false);
                        any = true;
                    }
                    any
                } else if let Some(e) = self.books.get_mut(&id) {
                    e.book.set_valid(false);
                    true
                } else {
                    false
                }
            }
            _ => false,
        }
    }

    /// Applies every frame of a received event, and invalidates every book when the event
    /// says the connection was lost (the book cannot be known to be current until the
    /// snapshot that follows a reconnect).
    #[cfg(feature = "client")]
    pub fn on_event(&mut self, event: &crate::client::Event) {
        use crate::client::Event;
        match event {
            Event::Frames(batch) => {
                for f in batch.iter() {
                    self.apply(f);
                }
            }
            Event::Disconnected { .. } | Event::Closed { .. } => self.invalidate_all(),
            _ => {}
        }
    }

    /// The book of `symbol` (as the venue spells it: `BTCUSDT`), valid or not.
    pub fn get(&self, venue: Venue, symbol: &str) -> Option<&L2Book> {
        self.by_id(instrument_id(venue, symbol))
    }

    /// The book of an instrument id, valid or not.
    pub fn by_id(&self, instrument: u32) -> Option<&L2Book> {
        self.books.get(&instrument).map(|e| &e.book)
    }

    /// Every book, by instrument id, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &L2Book)> {
        self.books.iter().map(|(&id, e)| (id, &e.book))
    }

    /// Marks one book invalid until its next snapshot.
    pub fn invalidate(&mut self, instrument: u32) {
        if let Some(e) = self.books.get_mut(&instrument) {
            e.book.set_valid(false);
        }
    }

    /// Marks every book invalid until its next snapshot.
    pub fn invalidate_all(&mut self) {
        for e in self.books.values_mut() {
            e.book.set_valid(false);
        }
    }

    /// Drops an instrument's book (after unsubscribing from it).
    pub fn remove(&mut self, instrument: u32) -> Option<L2Book> {
        self.seq.forget(instrument, crate::wire::Channel::Book);
        self.books.remove(&instrument).map(|e| e.book)
    }

    /// Number of books.
    pub fn len(&self) -> usize {
        self.books.len()
    }

    /// True when there is no book.
    pub fn is_empty(&self) -> bool {
        self.books.is_empty()
    }

    /// Holes found in the book streams so far.
    pub fn holes(&self) -> u64 {
        self.seq.holes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{
        Body, BookDelta, BookSide, BookSnapshot, Frame, Level, Status, StatusCode, access, encode,
    };

    const SYM: &str = "BTCUSDT";

    fn id() -> u32 {
        instrument_id(Venue::Binance, SYM)
    }

    fn apply(books: &mut Books, f: &Frame) -> bool {
        let bytes = encode(f);
        books.apply(access(&bytes).unwrap())
    }

    fn frame(instrument: u32, seq: u64, fl: u8, body: Body) -> Frame {
        let mut f = Frame::new(Venue::Binance, instrument, 0, 0, body).with_flags(fl);
        f.seq = seq;
        f
    }

    fn snapshot(seq: u64, bid: i64, ask: i64) -> Frame {
        frame(
            id(),
            seq,
            flags::SNAPSHOT | flags::LAST,
            Body::BookSnapshot(BookSnapshot {
                bids: vec![Level { price: bid, qty: 1 }],
                asks: vec![Level { price: ask, qty: 1 }],
            }),
        )
    }

    fn delta(seq: u64, price: i64, qty: i64) -> Frame {
        frame(
            id(),
            seq,
            flags::LAST,
            Body::BookDelta(BookDelta {
                side: BookSide::Bid,
                price,
                qty,
            }),
        )
    }

    fn bad_status(instrument: u32) -> Frame {
        frame(
            instrument,
            3,
            flags::BAD_BOOK,
            Body::Status(Status {
                code: StatusCode::Gap,
                detail: "ids missing".into(),
            }),
        )
    }

    #[test]
    fn keeps_a_book_per_instrument_from_snapshot_and_deltas() {
        let mut books = Books::new();
        assert!(books.get(Venue::Binance, SYM).is_none());
        apply(&mut books, &snapshot(10, 100, 102));
        apply(&mut books, &delta(11, 101, 5));
        let b = books.get(Venue::Binance, SYM).unwrap();
        assert!(b.is_valid());
        assert_eq!(b.best_bid(), Some(Level { price: 101, qty: 5 }));
        assert_eq!(books.len(), 1);
        // Other kinds do not make books.
        apply(
            &mut books,
            &bad_status(instrument_id(Venue::Binance, "ETHUSDT")),
        );
        assert_eq!(books.len(), 1);
    }

    #[test]
    fn a_hole_invalidates_until_the_next_snapshot() {
        let mut books = Books::new();
        apply(&mut books, &snapshot(10, 100, 102));
        apply(&mut books, &delta(11, 101, 5));
        apply(&mut books, &delta(13, 99, 1)); // 12 lost
        let b = books.by_id(id()).unwrap();
        assert!(!b.is_valid(), "a hole makes the book untrustworthy");
        assert_eq!(b.depth(), (3, 1), "levels are kept for display");
        apply(&mut books, &delta(14, 98, 1));
        assert!(!books.by_id(id()).unwrap().is_valid(), "still bad");
        apply(&mut books, &snapshot(30, 200, 201));
        let b = books.by_id(id()).unwrap();
        assert!(b.is_valid());
        assert_eq!(b.depth(), (1, 1));
        apply(&mut books, &delta(31, 199, 1));
        assert!(books.by_id(id()).unwrap().is_valid());
        assert_eq!(books.holes(), 1);
    }

    #[test]
    fn bad_book_frames_invalidate_one_or_all_books_of_the_venue() {
        let mut books = Books::new();
        apply(&mut books, &snapshot(1, 100, 102));
        assert!(apply(&mut books, &bad_status(id())));
        assert!(!books.by_id(id()).unwrap().is_valid());
        apply(&mut books, &snapshot(2, 100, 102));
        assert!(books.by_id(id()).unwrap().is_valid());
        // A venue-wide BAD_BOOK (instrument 0) reaches every book of the venue.
        assert!(apply(&mut books, &bad_status(0)));
        assert!(!books.by_id(id()).unwrap().is_valid());
        apply(&mut books, &snapshot(3, 100, 102));
        let mut other_venue = bad_status(0);
        other_venue.venue = Venue::Kraken.id();
        assert!(!apply(&mut books, &other_venue));
        assert!(books.by_id(id()).unwrap().is_valid());
        // A snapshot flagged BAD_BOOK is applied but not trusted.
        let mut bad_snap = snapshot(4, 100, 102);
        bad_snap.flags |= flags::BAD_BOOK;
        apply(&mut books, &bad_snap);
        assert!(!books.by_id(id()).unwrap().is_valid());
    }

    #[test]
    fn invalidate_and_remove() {
        let mut books = Books::new();
        apply(&mut books, &snapshot(1, 100, 102));
        books.invalidate_all();
        assert!(!books.by_id(id()).unwrap().is_valid());
        apply(&mut books, &snapshot(2, 100, 102));
        books.invalidate(id());
        assert!(!books.by_id(id()).unwrap().is_valid());
        assert!(books.remove(id()).is_some());
        assert!(books.is_empty());
        // The stream was forgotten: a later delta sets a new baseline, no hole.
        apply(&mut books, &delta(50, 1, 1));
        assert_eq!(books.holes(), 0);
        assert!(!books.by_id(id()).unwrap().is_valid(), "no snapshot yet");
    }
}
