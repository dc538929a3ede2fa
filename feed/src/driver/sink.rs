//! Where a driver puts frames (the engine's ingest ring, or a channel in tests) and, when
//! raw data is recorded, the raw venue messages.

use bytes::Bytes;
use tickwire_sdk::wire::{Frame, Venue};

/// Why a sink did not take a frame.
#[derive(Debug)]
pub enum PushError {
    /// The sink is full for now: the frame is given back; the driver waits and retries (it
    /// never drops a frame).
    Full(Frame),
    /// Nobody reads the sink any more: the driver stops.
    Closed,
}

/// A bounded, non-blocking destination for frames.
pub trait FrameSink: Send + Sync + 'static {
    /// Offers one frame.
    fn try_push(&self, frame: Frame) -> Result<(), PushError>;
}

impl FrameSink for crossbeam::channel::Sender<Frame> {
    fn try_push(&self, frame: Frame) -> Result<(), PushError> {
        self.try_send(frame).map_err(|e| match e {
            crossbeam::channel::TrySendError::Full(f) => PushError::Full(f),
            crossbeam::channel::TrySendError::Disconnected(_) => PushError::Closed,
        })
    }
}

/// What a raw record taken off a venue connection is (see [`RawMessage`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawKind {
    /// A WebSocket message from the venue.
    Message,
    /// The connection was opened and subscribed; the feed's configured symbols,
    /// comma-separated, as the venue spells them.
    Connect(String),
    /// A REST book snapshot body for this symbol.
    Snapshot(String),
    /// No message for a while (the detail).
    Stale(String),
    /// The connection ended (the reason).
    Disconnect(String),
}

/// One thing the driver gave its normalizer, for a recorder of raw venue data: the venue's
/// messages and REST snapshot bodies exactly as received, and the connection events around
/// them, in the order the normalizer saw them.
#[derive(Debug, Clone)]
pub struct RawMessage {
    /// The venue.
    pub venue: Venue,
    /// The time given to the normalizer with it (the socket read time for a message), ns.
    pub ts_recv: u64,
    /// What it is.
    pub kind: RawKind,
    /// The message or snapshot body (shared with the driver's buffer, not copied); empty for
    /// the other kinds.
    pub bytes: Bytes,
    /// Raw messages of this feed dropped just before this one because the sink was full.
    pub lost_before: u64,
}

/// A bounded, non-blocking destination for raw venue data (a recorder's queue). The driver
/// never waits for it: a message it refuses is counted as lost (and the next one accepted
/// carries the count), never dropped silently.
pub trait RawSink: Send + Sync + 'static {
    /// Offers one message; gives it back if there is no room.
    fn try_push_raw(&self, message: RawMessage) -> Result<(), RawMessage>;
}
