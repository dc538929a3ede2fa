//! The server's instruments: what the feeds are configured for, and what their Definition
//! frames said. Written by the sequencer (rarely), read by gateway sessions on subscribe.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tickwire_sdk::wire::{InstrumentInfo, Venue, instrument_id};

/// Instruments known to this server.
#[derive(Debug, Default)]
pub struct Registry {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// (venue, symbol) the feeds subscribe to, by id.
    configured: HashMap<u32, (Venue, String)>,
    /// Latest definition per id.
    defined: HashMap<u32, Arc<InstrumentInfo>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Declares that a feed subscribes to `symbol` on `venue` (venue spelling).
    pub fn configure(&self, venue: Venue, symbol: &str) {
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        g.configured
            .insert(instrument_id(venue, symbol), (venue, symbol.to_string()));
    }

    /// Records a definition; returns the shared entry.
    pub fn define(&self, info: InstrumentInfo) -> Arc<InstrumentInfo> {
        let info = Arc::new(info);
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        g.configured
            .entry(info.id)
            .or_insert_with(|| (info.venue, info.symbol.clone()));
        g.defined.insert(info.id, info.clone());
        info
    }

    /// The definition of `id`, if one was seen.
    pub fn definition(&self, id: u32) -> Option<Arc<InstrumentInfo>> {
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        g.defined.get(&id).cloned()
    }

    /// True if a feed serves `id`.
    pub fn is_served(&self, id: u32) -> bool {
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        g.configured.contains_key(&id)
    }

    /// Every served instrument, sorted.
    pub fn served_instruments(&self) -> Vec<(Venue, String)> {
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<(Venue, String)> = g.configured.values().cloned().collect();
        v.sort();
        v
    }

    /// Every served instrument as `venue:SYMBOL`, sorted.
    pub fn served(&self) -> Vec<String> {
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<String> = g
            .configured
            .values()
            .map(|(venue, s)| format!("{}:{s}", venue.name()))
            .collect();
        v.sort();
        v
    }
}
