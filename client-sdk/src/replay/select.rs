//! Which recorded frames a replay delivers, routed as the live server routes them.
//!
//! The gateway (`engine/src/gateway/delivery.rs`) sends a frame to a client when the client
//! subscribed the frame's instrument and either the frame's channel ([`Kind::channel`]:
//! trades and trade summaries on `trades`, quotes on `quotes`, deltas and snapshots on
//! `book`) or it is a control frame (status, definition), which goes to every subscriber of
//! the instrument. Frames of instrument 0 (venue-wide status, heartbeats) are not routed to
//! subscribers; heartbeats are made per connection.
//!
//! [`Kind::channel`]: crate::wire::Kind::channel

use crate::wire::{Channel, InstrumentInfo, Kind, Venue};

/// The subscribed channels per instrument, as bits ([`Channel::bit`]): a vector sorted by
/// instrument id, checked once per recorded frame (a backtest subscribes to a few
/// instruments: a scan of a few entries beats hashing).
#[derive(Debug, Clone, Default)]
pub(crate) struct Selection {
    by_id: Vec<(u32, u8)>,
}

impl Selection {
    /// Adds `channels` (as a mask) of `instrument`.
    pub(crate) fn add(&mut self, instrument: u32, mask: u8) {
        if mask == 0 {
            return;
        }
        match self.by_id.binary_search_by_key(&instrument, |e| e.0) {
            Ok(i) => self.by_id[i].1 |= mask,
            Err(i) => self.by_id.insert(i, (instrument, mask)),
        }
    }

    /// Removes `channels` (as a mask) of `instrument`; returns true when nothing of it is
    /// left.
    pub(crate) fn remove(&mut self, instrument: u32, mask: u8) -> bool {
        match self.by_id.binary_search_by_key(&instrument, |e| e.0) {
            Ok(i) => {
                self.by_id[i].1 &= !mask;
                if self.by_id[i].1 == 0 {
                    self.by_id.remove(i);
                    true
                } else {
                    false
                }
            }
            Err(_) => true,
        }
    }

    /// The channel mask of `instrument` (0: not subscribed).
    #[inline]
    pub(crate) fn mask(&self, instrument: u32) -> u8 {
        if self.by_id.len() <= 8 {
            for &(id, mask) in &self.by_id {
                if id == instrument {
                    return mask;
                }
            }
            0
        } else {
            self.by_id
                .binary_search_by_key(&instrument, |e| e.0)
                .map_or(0, |i| self.by_id[i].1)
        }
    }

    /// True when a frame of `instrument` on `channel` is delivered.
    #[cfg(test)]
    fn wants(&self, instrument: u32, channel: Channel) -> bool {
        Selection::admits(self.mask(instrument), channel)
    }

    /// The kinds delivered of an instrument with channel mask `mask` (see [`Self::mask`]), as
    /// bits: bit `k as u8` for [`Kind`] `k`. One test per frame instead of a channel lookup.
    pub(crate) fn kinds(mask: u8) -> u8 {
        Kind::ALL
            .iter()
            .filter(|k| Selection::admits(mask, k.channel()))
            .fold(0, |bits, k| bits | 1 << *k as u8)
    }

    /// True when a frame on `channel` of an instrument with channel mask `mask` (see
    /// [`Self::mask`]) is delivered.
    #[inline]
    pub(crate) fn admits(mask: u8, channel: Channel) -> bool {
        mask != 0 && (channel == Channel::Control || mask & channel.bit() != 0)
    }

    /// False when none of `ids` is subscribed.
    pub(crate) fn may_match_any(&self, ids: &[u32]) -> bool {
        ids.iter().any(|&id| self.mask(id) != 0)
    }

    /// The subscribed (instrument, channel mask) pairs, by instrument id.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, u8)> + '_ {
        self.by_id.iter().copied()
    }
}

/// The channel mask for a subscribe request's channels: every data channel when none is
/// named, as the server does; `control` is implied by any subscription and adds nothing.
pub(crate) fn channel_mask(channels: &[Channel]) -> u8 {
    let chans: &[Channel] = if channels.is_empty() {
        &Channel::SUBSCRIBABLE
    } else {
        channels
    };
    chans
        .iter()
        .filter(|c| **c != Channel::Control)
        .fold(0, |m, c| m | c.bit())
}

/// A pattern as the server takes them: `*`, `venue:*`, `*:SYMBOL`; `None` for an exact
/// `venue:SYMBOL`. The venue of `venue:*` must be known.
pub(crate) enum Pattern {
    /// `*`: every instrument.
    All,
    /// `venue:*`.
    Venue(Venue),
    /// `*:SYMBOL`.
    Symbol(String),
}

impl Pattern {
    /// Parses a pattern; `Ok(None)` for a name that is not one.
    pub(crate) fn parse(name: &str) -> Result<Option<Pattern>, String> {
        if name == "*" || name == "*:*" {
            return Ok(Some(Pattern::All));
        }
        if let Some(symbol) = name.strip_prefix("*:") {
            return Ok(Some(Pattern::Symbol(symbol.to_string())));
        }
        if let Some(venue) = name.strip_suffix(":*") {
            return venue
                .parse()
                .map(|v| Some(Pattern::Venue(v)))
                .map_err(|e| format!("{e}"));
        }
        Ok(None)
    }

    /// True if the pattern covers `info`.
    pub(crate) fn matches(&self, info: &InstrumentInfo) -> bool {
        match self {
            Pattern::All => true,
            Pattern::Venue(v) => info.venue == *v,
            Pattern::Symbol(s) => info.symbol.eq_ignore_ascii_case(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_as_the_server_does() {
        let mut s = Selection::default();
        s.add(7, channel_mask(&[Channel::Trades]));
        assert!(s.wants(7, Channel::Trades));
        assert!(
            s.wants(7, Channel::Control),
            "status and definitions go along"
        );
        assert!(!s.wants(7, Channel::Book) && !s.wants(8, Channel::Trades));
        assert!(
            !s.wants(0, Channel::Control),
            "venue-wide frames are not routed"
        );
        s.add(7, channel_mask(&[]));
        assert!(s.wants(7, Channel::Book) && s.wants(7, Channel::Quotes));
        assert!(!s.remove(7, channel_mask(&[Channel::Book, Channel::Control])));
        assert!(!s.wants(7, Channel::Book) && s.wants(7, Channel::Control));
        assert!(s.remove(7, channel_mask(&[])));
        assert!(!s.wants(7, Channel::Control));
        assert!(!s.may_match_any(&[7]));
        assert_eq!(channel_mask(&[Channel::Control]), 0);
        // Many instruments: searched, not scanned.
        for id in (1..100u32).rev() {
            s.add(id * 7919, channel_mask(&[Channel::Quotes]));
        }
        assert!(s.wants(7919 * 42, Channel::Quotes) && !s.wants(7919 * 42, Channel::Book));
        assert!(!s.wants(7919 * 42 + 1, Channel::Control));
        assert!(s.iter().map(|e| e.0).is_sorted());
    }

    #[test]
    fn kinds_follow_the_channels() {
        for (i, k) in Kind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i);
        }
        let bits = |kinds: &[Kind]| kinds.iter().fold(0u8, |b, k| b | 1 << *k as u8);
        let control = [Kind::Status, Kind::Heartbeat, Kind::Definition];
        let trades = channel_mask(&[Channel::Trades]);
        assert_eq!(
            Selection::kinds(trades),
            bits(&[Kind::Trade, Kind::TradeSummary]) | bits(&control)
        );
        let book = channel_mask(&[Channel::Book]);
        assert_eq!(
            Selection::kinds(book),
            bits(&[Kind::BookDelta, Kind::BookSnapshot]) | bits(&control)
        );
        assert_eq!(Selection::kinds(channel_mask(&[])), 0xff);
        assert_eq!(Selection::kinds(0), 0, "not subscribed: nothing");
    }

    #[test]
    fn patterns() {
        let btc = InstrumentInfo::new(Venue::Binance, "BTCUSDT", 2, 5);
        let okx = InstrumentInfo::new(Venue::Okx, "BTC-USDT", 2, 5);
        let p = |s: &str| Pattern::parse(s).unwrap().unwrap();
        assert!(p("*").matches(&btc) && p("*").matches(&okx));
        assert!(p("okx:*").matches(&okx) && !p("okx:*").matches(&btc));
        assert!(p("*:btcusdt").matches(&btc) && !p("*:btcusdt").matches(&okx));
        assert!(Pattern::parse("binance:BTCUSDT").unwrap().is_none());
        assert!(Pattern::parse("nyse:*").is_err());
    }
}
