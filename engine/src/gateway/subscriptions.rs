//! A client's subscription set: which (instrument, channel) pairs it receives. Checked for
//! every frame in the ring, so the lookup is a hash of an id that already is a hash.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use tickwire_sdk::wire::{Channel, instrument_id};

use super::protocol::Symbol;

/// Hasher for instrument ids, which are FNV hashes already: passes them through.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | b as u64;
        }
    }
    fn write_u32(&mut self, n: u32) {
        // Spread the bits so hashbrown's top-7-bit tags vary.
        self.0 = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// What one client receives.
#[derive(Debug, Default)]
pub struct Subscriptions {
    by_id: HashMap<u32, (u8, Symbol), BuildHasherDefault<IdHasher>>,
}

impl Subscriptions {
    /// No subscriptions.
    pub fn new() -> Subscriptions {
        Subscriptions::default()
    }

    /// Number of instruments subscribed.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True when nothing is subscribed.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Adds `channels` of `symbol`.
    pub fn add(&mut self, symbol: &Symbol, channels: &[Channel]) {
        let id = instrument_id(symbol.venue, &symbol.symbol);
        let mask = channels.iter().fold(0u8, |m, c| m | c.bit());
        self.by_id
            .entry(id)
            .and_modify(|(m, _)| *m |= mask)
            .or_insert((mask, symbol.clone()));
    }

    /// Removes `channels` of `symbol` (the instrument entirely once no channel is left).
    pub fn remove(&mut self, symbol: &Symbol, channels: &[Channel]) {
        let id = instrument_id(symbol.venue, &symbol.symbol);
        let mask = channels.iter().fold(0u8, |m, c| m | c.bit());
        if let Some((m, _)) = self.by_id.get_mut(&id) {
            *m &= !mask;
            if *m == 0 {
                self.by_id.remove(&id);
            }
        }
    }

    /// True if a frame of `instrument` on `channel` goes to this client. Control frames
    /// (status, definitions) go to every subscriber of the instrument.
    #[inline]
    pub fn wants(&self, instrument: u32, channel: Channel) -> bool {
        match self.by_id.get(&instrument) {
            Some((mask, _)) => channel == Channel::Control || mask & channel.bit() != 0,
            None => false,
        }
    }

    /// The subscribed instrument ids.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.by_id.keys().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickwire_sdk::wire::Venue;

    #[test]
    fn add_remove_and_control_lane() {
        let btc = Symbol {
            venue: Venue::Binance,
            symbol: "BTCUSDT".into(),
        };
        let id = instrument_id(Venue::Binance, "BTCUSDT");
        let mut s = Subscriptions::new();
        s.add(&btc, &[Channel::Trades]);
        assert!(s.wants(id, Channel::Trades));
        assert!(s.wants(id, Channel::Control));
        assert!(!s.wants(id, Channel::Book));
        assert!(!s.wants(id + 1, Channel::Trades));
        s.add(&btc, &[Channel::Book]);
        assert!(s.wants(id, Channel::Book));
        s.remove(&btc, &[Channel::Trades]);
        assert!(!s.wants(id, Channel::Trades));
        assert!(s.wants(id, Channel::Control));
        s.remove(&btc, &[Channel::Book]);
        assert!(s.is_empty());
    }
}
