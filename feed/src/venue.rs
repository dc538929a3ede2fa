//! How to connect to a venue: URLs, subscriptions and its normalizer. One implementation per
//! venue dialect; the connection driver is the same for all.

use std::time::Duration;

use tickwire_sdk::wire::{Channel, Venue};

use crate::normalizer::Normalizer;

/// A venue's connection recipe.
pub trait VenueSpec: Send + Sync + 'static {
    /// The venue.
    fn venue(&self) -> Venue;

    /// The WebSocket URL to connect to.
    fn ws_url(&self) -> String;

    /// Messages to send once connected, in order (subscriptions).
    fn subscribe_messages(&self) -> Vec<String>;

    /// Least time between two messages we send (the venue's incoming message rate limit).
    fn send_interval(&self) -> Duration;

    /// The REST URL of a book snapshot for `symbol`, for venues that sync books over REST.
    fn snapshot_url(&self, symbol: &str) -> Option<String>;

    /// A fresh normalizer for one connection's lifetime of data (books, symbols).
    fn new_normalizer(&self) -> Box<dyn Normalizer>;

    /// The symbols subscribed, as the venue spells them.
    fn symbols(&self) -> Vec<String>;

    /// The venue's application-level ping, sent instead of a WebSocket ping frame at each
    /// keepalive tick (OKX: the text `ping`; Bybit: `{"op":"ping"}`; Kraken v2:
    /// `{"method":"ping"}`). `None` (the default): WebSocket ping frames.
    fn app_ping(&self) -> Option<String> {
        None
    }
}

/// Which channels to subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelSet {
    bits: u8,
}

impl ChannelSet {
    /// Trades, quotes and book.
    pub const ALL: ChannelSet = ChannelSet {
        bits: Channel::Trades.bit() | Channel::Quotes.bit() | Channel::Book.bit(),
    };

    /// The set of the given channels.
    pub fn of(channels: &[Channel]) -> ChannelSet {
        ChannelSet {
            bits: channels.iter().fold(0, |b, c| b | c.bit()),
        }
    }

    /// True if `c` is in the set.
    pub fn has(self, c: Channel) -> bool {
        self.bits & c.bit() != 0
    }
}
