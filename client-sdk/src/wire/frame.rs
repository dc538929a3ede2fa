//! The frame schema: one normalized market-data event, archived with rkyv.
//!
//! Every frame has the same header (venue, instrument, flags, per-stream `seq`, three
//! timestamps) and a body per kind. Prices and quantities are `i64` in units of 1e-9
//! (see [`crate::wire::fixed`]); timestamps are `u64` nanoseconds since the Unix epoch
//! (CLOCK_REALTIME), 0 where unknown.

use rkyv::{Archive, Deserialize, Serialize};

use super::ids::{Channel, Venue};

/// Frame flags, as in DBN: bits of [`Frame::flags`].
pub mod flags {
    /// Last frame of an atomic venue event (a book update that changed several levels ends here).
    pub const LAST: u8 = 1 << 7;
    /// Part of a snapshot (book levels from a snapshot rather than an incremental update).
    pub const SNAPSHOT: u8 = 1 << 5;
    /// This frame stands for several venue updates (see [`super::Frame::updates`]).
    pub const CONFLATED: u8 = 1 << 4;
    /// The book may be wrong until the next snapshot (a gap or checksum failure was seen).
    pub const BAD_BOOK: u8 = 1 << 2;

    /// Every flag with its JSON name, in rendering order.
    pub const NAMES: [(u8, &str); 4] = [
        (LAST, "last"),
        (SNAPSHOT, "snapshot"),
        (CONFLATED, "conflated"),
        (BAD_BOOK, "bad_book"),
    ];
}

/// One normalized market-data event.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Frame {
    /// Venue id ([`Venue::id`]).
    pub venue: u16,
    /// Instrument id ([`super::ids::instrument_id`]); 0 for frames about no instrument.
    pub instrument: u32,
    /// Bit set of [`flags`].
    pub flags: u8,
    /// Sequence number within the stream (instrument, channel), gap-free from 1.
    /// 0 until the engine's sequencer assigns it.
    pub seq: u64,
    /// Venue's event time, ns since the Unix epoch; 0 if the venue sent none.
    pub ts_exchange: u64,
    /// When the feed read the venue's message off the socket, ns since the Unix epoch.
    pub ts_recv: u64,
    /// When the engine published the frame, ns since the Unix epoch; 0 before publication.
    pub ts_publish: u64,
    /// How many venue updates this frame stands for: 1, or more when [`flags::CONFLATED`].
    pub updates: u32,
    /// The kind-specific part.
    pub body: Body,
}

/// The kind-specific part of a [`Frame`].
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub enum Body {
    /// A trade.
    Trade(Trade),
    /// Best bid and offer.
    Quote(Quote),
    /// One changed book level.
    BookDelta(BookDelta),
    /// The top levels of a book.
    BookSnapshot(BookSnapshot),
    /// A change of feed or stream state.
    Status(Status),
    /// Liveness, sent when a connection is otherwise idle.
    Heartbeat,
    /// What an instrument id stands for, and how to display its numbers.
    Definition(Definition),
    /// Several trades folded into one (conflated delivery): nothing traded is lost from the
    /// totals. Flagged `CONFLATED`; `updates` is the number of trades. (Boxed: it is the
    /// largest body and the rarest.)
    TradeSummary(Box<TradeSummary>),
}

/// The aggressor side of a trade.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[rkyv(derive(Debug, PartialEq, Eq))]
#[repr(u8)]
pub enum Side {
    /// The buyer took liquidity.
    Buy,
    /// The seller took liquidity.
    Sell,
    /// The venue does not say.
    Unknown,
}

/// A side of the order book.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[rkyv(derive(Debug, PartialEq, Eq))]
#[repr(u8)]
pub enum BookSide {
    /// Bids (buy orders).
    Bid,
    /// Asks (sell orders).
    Ask,
}

/// A venue's trade identifier.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Hash)]
#[rkyv(derive(Debug))]
pub enum TradeId {
    /// The venue sends none.
    None,
    /// A numeric id (Binance, Coinbase, OKX, Kraken v2...).
    Num(u64),
    /// A textual id (UUIDs and the like).
    Text(String),
}

/// A trade.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Trade {
    /// Price, 1e-9 units.
    pub price: i64,
    /// Quantity, 1e-9 units, > 0.
    pub qty: i64,
    /// Aggressor side.
    pub side: Side,
    /// The venue's trade id.
    pub trade_id: TradeId,
}

/// Trades folded trade-safe: totals, extremes and the last trade of a run of trades.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct TradeSummary {
    /// Number of trades folded.
    pub count: u64,
    /// Sum of their quantities, 1e-9 units.
    pub volume: i128,
    /// Volume-weighted average price, 1e-9 units (rounded to nearest).
    pub vwap: i64,
    /// Highest price, 1e-9 units.
    pub high: i64,
    /// Lowest price, 1e-9 units.
    pub low: i64,
    /// The last trade of the run.
    pub last: Trade,
}

/// Best bid and offer. A side with no level has price and quantity 0.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Quote {
    /// Best bid price, 1e-9 units.
    pub bid_px: i64,
    /// Quantity at the best bid, 1e-9 units.
    pub bid_qty: i64,
    /// Best ask price, 1e-9 units.
    pub ask_px: i64,
    /// Quantity at the best ask, 1e-9 units.
    pub ask_qty: i64,
}

/// One book level changed: `qty` is the new total at `price`; 0 deletes the level.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct BookDelta {
    /// Which side.
    pub side: BookSide,
    /// Level price, 1e-9 units.
    pub price: i64,
    /// New quantity at the level, 1e-9 units; 0 = delete.
    pub qty: i64,
}

/// A price level.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Level {
    /// Price, 1e-9 units.
    pub price: i64,
    /// Quantity, 1e-9 units.
    pub qty: i64,
}

/// The top of a book, best level first on each side.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[rkyv(derive(Debug))]
pub struct BookSnapshot {
    /// Bids, highest price first.
    pub bids: Vec<Level>,
    /// Asks, lowest price first.
    pub asks: Vec<Level>,
}

/// What a status frame reports.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[rkyv(derive(Debug, PartialEq, Eq))]
#[repr(u8)]
pub enum StatusCode {
    /// The venue connection is up and subscribed.
    Connected,
    /// The venue connection is down; data is not flowing.
    Disconnected,
    /// A hole in the venue's sequence (or a checksum failure): the book is flagged bad.
    Gap,
    /// The book was rebuilt from a fresh snapshot and is good again.
    Resynced,
    /// No data arrived for longer than the stale timeout.
    Stale,
    /// Frames were conflated for this subscriber (a summary of what was folded).
    Conflated,
    /// A replay of a recording starts: frames that follow come from the recording (with
    /// their recorded timestamps). `seq` 0: part of no stream. The detail says what is played.
    ReplayStart,
    /// The replay reached the end of the recording (or of its time range); nothing follows.
    /// `seq` 0.
    ReplayEnd,
}

/// A change of feed or stream state.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Status {
    /// What happened.
    pub code: StatusCode,
    /// Human-readable detail (which ids were missing, why the connection dropped...).
    pub detail: String,
}

/// What an instrument id stands for.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Definition {
    /// The venue's own symbol (`BTCUSDT`).
    pub symbol: String,
    /// Fractional digits the venue uses for prices (for display).
    pub price_decimals: u8,
    /// Fractional digits the venue uses for quantities (for display).
    pub qty_decimals: u8,
}

/// The kind of a frame, without its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// [`Body::Trade`].
    Trade,
    /// [`Body::Quote`].
    Quote,
    /// [`Body::BookDelta`].
    BookDelta,
    /// [`Body::BookSnapshot`].
    BookSnapshot,
    /// [`Body::Status`].
    Status,
    /// [`Body::Heartbeat`].
    Heartbeat,
    /// [`Body::Definition`].
    Definition,
    /// [`Body::TradeSummary`].
    TradeSummary,
}

impl Kind {
    /// Every kind, in discriminant order (`Kind::ALL[k as usize] == k`).
    pub const ALL: [Kind; 8] = [
        Kind::Trade,
        Kind::Quote,
        Kind::BookDelta,
        Kind::BookSnapshot,
        Kind::Status,
        Kind::Heartbeat,
        Kind::Definition,
        Kind::TradeSummary,
    ];

    /// The channel frames of this kind travel on.
    pub const fn channel(self) -> Channel {
        match self {
            Kind::Trade | Kind::TradeSummary => Channel::Trades,
            Kind::Quote => Channel::Quotes,
            Kind::BookDelta | Kind::BookSnapshot => Channel::Book,
            Kind::Status | Kind::Heartbeat | Kind::Definition => Channel::Control,
        }
    }

    /// The `type` field of the JSON rendering.
    pub const fn json_name(self) -> &'static str {
        match self {
            Kind::Trade => "trade",
            Kind::Quote => "quote",
            Kind::BookDelta => "book_delta",
            Kind::BookSnapshot => "book_snapshot",
            Kind::Status => "status",
            Kind::Heartbeat => "heartbeat",
            Kind::Definition => "definition",
            Kind::TradeSummary => "trade_summary",
        }
    }
}

impl Body {
    /// This body's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Body::Trade(_) => Kind::Trade,
            Body::Quote(_) => Kind::Quote,
            Body::BookDelta(_) => Kind::BookDelta,
            Body::BookSnapshot(_) => Kind::BookSnapshot,
            Body::Status(_) => Kind::Status,
            Body::Heartbeat => Kind::Heartbeat,
            Body::Definition(_) => Kind::Definition,
            Body::TradeSummary(_) => Kind::TradeSummary,
        }
    }
}

impl ArchivedBody {
    /// This body's kind.
    pub fn kind(&self) -> Kind {
        match self {
            ArchivedBody::Trade(_) => Kind::Trade,
            ArchivedBody::Quote(_) => Kind::Quote,
            ArchivedBody::BookDelta(_) => Kind::BookDelta,
            ArchivedBody::BookSnapshot(_) => Kind::BookSnapshot,
            ArchivedBody::Status(_) => Kind::Status,
            ArchivedBody::Heartbeat => Kind::Heartbeat,
            ArchivedBody::Definition(_) => Kind::Definition,
            ArchivedBody::TradeSummary(_) => Kind::TradeSummary,
        }
    }
}

impl Frame {
    /// A frame with the given header fields, `seq`/`ts_publish` unset, `updates` 1.
    pub fn new(venue: Venue, instrument: u32, ts_exchange: u64, ts_recv: u64, body: Body) -> Frame {
        Frame {
            venue: venue.id(),
            instrument,
            flags: 0,
            seq: 0,
            ts_exchange,
            ts_recv,
            ts_publish: 0,
            updates: 1,
            body,
        }
    }

    /// The same frame with `flags` added.
    pub fn with_flags(mut self, flags: u8) -> Frame {
        self.flags |= flags;
        self
    }

    /// This frame's kind.
    pub fn kind(&self) -> Kind {
        self.body.kind()
    }

    /// The channel this frame travels on.
    pub fn channel(&self) -> Channel {
        self.kind().channel()
    }
}

impl ArchivedFrame {
    /// This frame's kind.
    pub fn kind(&self) -> Kind {
        self.body.kind()
    }

    /// The channel this frame travels on.
    pub fn channel(&self) -> Channel {
        self.kind().channel()
    }

    /// The venue, if the id is known to this build.
    pub fn venue(&self) -> Option<Venue> {
        Venue::from_id(self.venue.to_native())
    }
}

impl From<&ArchivedSide> for Side {
    fn from(s: &ArchivedSide) -> Side {
        match s {
            ArchivedSide::Buy => Side::Buy,
            ArchivedSide::Sell => Side::Sell,
            ArchivedSide::Unknown => Side::Unknown,
        }
    }
}

impl From<&ArchivedBookSide> for BookSide {
    fn from(s: &ArchivedBookSide) -> BookSide {
        match s {
            ArchivedBookSide::Bid => BookSide::Bid,
            ArchivedBookSide::Ask => BookSide::Ask,
        }
    }
}

impl From<&ArchivedStatusCode> for StatusCode {
    fn from(s: &ArchivedStatusCode) -> StatusCode {
        match s {
            ArchivedStatusCode::Connected => StatusCode::Connected,
            ArchivedStatusCode::Disconnected => StatusCode::Disconnected,
            ArchivedStatusCode::Gap => StatusCode::Gap,
            ArchivedStatusCode::Resynced => StatusCode::Resynced,
            ArchivedStatusCode::Stale => StatusCode::Stale,
            ArchivedStatusCode::Conflated => StatusCode::Conflated,
            ArchivedStatusCode::ReplayStart => StatusCode::ReplayStart,
            ArchivedStatusCode::ReplayEnd => StatusCode::ReplayEnd,
        }
    }
}

impl StatusCode {
    /// The `status` field of the JSON rendering.
    pub const fn json_name(self) -> &'static str {
        match self {
            StatusCode::Connected => "connected",
            StatusCode::Disconnected => "disconnected",
            StatusCode::Gap => "gap",
            StatusCode::Resynced => "resynced",
            StatusCode::Stale => "stale",
            StatusCode::Conflated => "conflated",
            StatusCode::ReplayStart => "replay_start",
            StatusCode::ReplayEnd => "replay_end",
        }
    }
}

impl Side {
    /// The `side` field of the JSON rendering.
    pub const fn json_name(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
            Side::Unknown => "unknown",
        }
    }
}

impl BookSide {
    /// The `side` field of the JSON rendering.
    pub const fn json_name(self) -> &'static str {
        match self {
            BookSide::Bid => "bid",
            BookSide::Ask => "ask",
        }
    }
}
