//! A normalizer's instruments: venue symbol -> instrument id and display precision, and the
//! Definition frames that announce them.

use std::collections::HashMap;

use tickwire_sdk::wire::{Body, Frame, Status, StatusCode, Venue, flags, instrument_id};

use crate::normalizer::Output;

/// One instrument as a normalizer knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instrument {
    /// Instrument id.
    pub id: u32,
    /// The venue's symbol.
    pub symbol: String,
    /// Fractional digits seen in prices so far (the most seen).
    pub price_decimals: u8,
    /// Fractional digits seen in quantities so far (the most seen).
    pub qty_decimals: u8,
    /// Whether the current Definition has been emitted.
    announced: bool,
}

/// Index of an instrument in its [`SymbolTable`].
pub type SymbolIndex = usize;

/// Instruments of one venue, indexed densely for per-instrument state arrays.
#[derive(Debug)]
pub struct SymbolTable {
    venue: Venue,
    by_symbol: HashMap<String, SymbolIndex>,
    list: Vec<Instrument>,
    /// The last symbol looked up: most messages repeat it, so it is checked before hashing.
    last: SymbolIndex,
}

impl SymbolTable {
    /// An empty table for `venue`.
    pub fn new(venue: Venue) -> SymbolTable {
        SymbolTable {
            venue,
            by_symbol: HashMap::new(),
            list: Vec::new(),
            last: 0,
        }
    }

    /// The venue.
    pub fn venue(&self) -> Venue {
        self.venue
    }

    /// The index of `symbol`, adding it if new (its Definition is emitted by [`Self::announce`]).
    pub fn intern(&mut self, symbol: &str) -> SymbolIndex {
        if let Some(inst) = self.list.get(self.last)
            && inst.symbol == symbol
        {
            return self.last;
        }
        if let Some(&i) = self.by_symbol.get(symbol) {
            self.last = i;
            return i;
        }
        let i = self.list.len();
        self.list.push(Instrument {
            id: instrument_id(self.venue, symbol),
            symbol: symbol.to_string(),
            price_decimals: 0,
            qty_decimals: 0,
            announced: false,
        });
        self.by_symbol.insert(symbol.to_string(), i);
        i
    }

    /// The index of `symbol`, if known.
    pub fn find(&self, symbol: &str) -> Option<SymbolIndex> {
        self.by_symbol.get(symbol).copied()
    }

    /// The instrument at `i`.
    pub fn get(&self, i: SymbolIndex) -> &Instrument {
        &self.list[i]
    }

    /// Number of instruments.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// All instruments, by index.
    pub fn iter(&self) -> impl Iterator<Item = &Instrument> {
        self.list.iter()
    }

    /// Records the precision seen in a message for instrument `i` and emits its Definition
    /// if it was never announced or its precision grew. Returns the instrument id.
    #[inline]
    pub fn announce(
        &mut self,
        i: SymbolIndex,
        price_decimals: u8,
        qty_decimals: u8,
        ts_recv: u64,
        out: &mut Output,
    ) -> u32 {
        let venue = self.venue;
        let inst = &mut self.list[i];
        if price_decimals > inst.price_decimals {
            inst.price_decimals = price_decimals;
            inst.announced = false;
        }
        if qty_decimals > inst.qty_decimals {
            inst.qty_decimals = qty_decimals;
            inst.announced = false;
        }
        if !inst.announced {
            inst.announced = true;
            out.frames.push(Frame::new(
                venue,
                inst.id,
                0,
                ts_recv,
                Body::Definition(tickwire_sdk::wire::Definition {
                    symbol: inst.symbol.clone(),
                    price_decimals: inst.price_decimals,
                    qty_decimals: inst.qty_decimals,
                }),
            ));
        }
        inst.id
    }

    /// Emits a status frame for instrument `i` (announcing it first if needed).
    pub fn status(
        &mut self,
        i: SymbolIndex,
        code: StatusCode,
        detail: String,
        bad_book: bool,
        ts: u64,
        out: &mut Output,
    ) {
        let id = self.announce(i, 0, 0, ts, out);
        let frame = Frame::new(self.venue, id, 0, ts, Body::Status(Status { code, detail }));
        out.frames.push(if bad_book {
            frame.with_flags(flags::BAD_BOOK)
        } else {
            frame
        });
    }

    /// A status frame of `code` for every symbol (connected, stale: connection-wide news).
    pub fn status_all(&mut self, code: StatusCode, detail: &str, ts: u64, out: &mut Output) {
        for i in 0..self.len() {
            self.status(i, code, detail.to_string(), false, ts, out);
        }
    }
}
