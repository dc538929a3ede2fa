//! What instrument ids stand for: venue, symbol, display precision.

use std::collections::HashMap;
use std::sync::Arc;

use super::frame::{ArchivedBody, ArchivedFrame, Definition};
use super::ids::{Venue, instrument_id};

/// One instrument: the venue's symbol and how many decimals it shows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InstrumentInfo {
    /// Instrument id ([`instrument_id`] of venue and symbol).
    pub id: u32,
    /// The venue.
    pub venue: Venue,
    /// The venue's symbol, as the venue spells it.
    pub symbol: String,
    /// Fractional digits of prices as the venue sends them.
    pub price_decimals: u8,
    /// Fractional digits of quantities as the venue sends them.
    pub qty_decimals: u8,
}

impl InstrumentInfo {
    /// An instrument with its id derived from venue and symbol.
    pub fn new(venue: Venue, symbol: &str, price_decimals: u8, qty_decimals: u8) -> InstrumentInfo {
        InstrumentInfo {
            id: instrument_id(venue, symbol),
            venue,
            symbol: symbol.to_string(),
            price_decimals,
            qty_decimals,
        }
    }

    /// `venue:SYMBOL`, the name clients subscribe with.
    pub fn qualified(&self) -> String {
        format!("{}:{}", self.venue.name(), self.symbol)
    }

    /// The Definition body that announces this instrument.
    pub fn definition(&self) -> Definition {
        Definition {
            symbol: self.symbol.clone(),
            price_decimals: self.price_decimals,
            qty_decimals: self.qty_decimals,
        }
    }
}

/// A table of instruments, keyed by id, kept from Definition frames (client side) or filled by
/// the feed (server side).
#[derive(Debug, Default, Clone)]
pub struct Instruments {
    by_id: HashMap<u32, Arc<InstrumentInfo>>,
}

impl Instruments {
    /// An empty table.
    pub fn new() -> Instruments {
        Instruments::default()
    }

    /// The instrument with this id.
    pub fn get(&self, id: u32) -> Option<&Arc<InstrumentInfo>> {
        self.by_id.get(&id)
    }

    /// Adds or replaces an instrument; returns the shared entry.
    pub fn insert(&mut self, info: InstrumentInfo) -> Arc<InstrumentInfo> {
        let info = Arc::new(info);
        self.by_id.insert(info.id, info.clone());
        info
    }

    /// Learns from a frame if it is a Definition; returns true if it was.
    pub fn observe(&mut self, frame: &ArchivedFrame) -> bool {
        let ArchivedBody::Definition(d) = &frame.body else {
            return false;
        };
        let Some(venue) = frame.venue() else {
            return true;
        };
        let info = InstrumentInfo {
            id: frame.instrument.to_native(),
            venue,
            symbol: d.symbol.as_str().to_string(),
            price_decimals: d.price_decimals,
            qty_decimals: d.qty_decimals,
        };
        self.insert(info);
        true
    }

    /// Finds an instrument by venue and symbol.
    pub fn find(&self, venue: Venue, symbol: &str) -> Option<&Arc<InstrumentInfo>> {
        self.get(instrument_id(venue, symbol))
            .filter(|i| i.venue == venue && i.symbol == symbol)
    }

    /// All instruments, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<InstrumentInfo>> {
        self.by_id.values()
    }

    /// Number of instruments.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}
