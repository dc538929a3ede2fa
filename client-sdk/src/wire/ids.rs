//! Identifiers: venues, instruments and channels.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A trading venue. The `u16` value is what frames carry in `venue`; it never changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u16)]
pub enum Venue {
    /// Binance spot.
    Binance = 1,
    /// Binance USD-M futures.
    BinanceFutures = 2,
    /// Coinbase Exchange (the former Coinbase Pro feed).
    Coinbase = 3,
    /// Coinbase Advanced Trade.
    CoinbaseAdvanced = 4,
    /// Kraken spot.
    Kraken = 5,
    /// OKX v5.
    Okx = 6,
    /// Bybit v5 spot.
    Bybit = 7,
    /// Bybit v5 linear (USDT/USDC perpetuals and futures).
    BybitLinear = 8,
}

impl Venue {
    /// Every venue, in id order.
    pub const ALL: [Venue; 8] = [
        Venue::Binance,
        Venue::BinanceFutures,
        Venue::Coinbase,
        Venue::CoinbaseAdvanced,
        Venue::Kraken,
        Venue::Okx,
        Venue::Bybit,
        Venue::BybitLinear,
    ];

    /// The venue's wire id.
    pub const fn id(self) -> u16 {
        self as u16
    }

    /// The venue for a wire id, if known.
    pub fn from_id(id: u16) -> Option<Venue> {
        Venue::ALL.iter().copied().find(|v| v.id() == id)
    }

    /// The lowercase name used in symbols (`binance:BTCUSDT`), the CLI and JSON.
    pub const fn name(self) -> &'static str {
        match self {
            Venue::Binance => "binance",
            Venue::BinanceFutures => "binance-futures",
            Venue::Coinbase => "coinbase",
            Venue::CoinbaseAdvanced => "coinbase-advanced",
            Venue::Kraken => "kraken",
            Venue::Okx => "okx",
            Venue::Bybit => "bybit",
            Venue::BybitLinear => "bybit-linear",
        }
    }
}

impl fmt::Display for Venue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A venue name that is not one of [`Venue::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "unknown venue {0:?}; known venues: binance, binance-futures, coinbase, coinbase-advanced, kraken, okx, bybit, bybit-linear"
)]
pub struct UnknownVenue(pub String);

impl FromStr for Venue {
    type Err = UnknownVenue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Venue::ALL
            .iter()
            .copied()
            .find(|v| v.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownVenue(s.to_string()))
    }
}

/// The instrument id frames carry: a stable 32-bit hash of (venue, symbol), the same in every
/// process and every recording. 0 is reserved for "no instrument" (heartbeats, venue-wide status).
///
/// The symbol is the venue's own spelling (`BTCUSDT`, `BTC-USDT`, `XBT/USD`), case-sensitive.
pub fn instrument_id(venue: Venue, symbol: &str) -> u32 {
    // FNV-1a, 32-bit, over the venue id then the symbol bytes.
    let mut h: u32 = 0x811c_9dc5;
    for b in venue.id().to_le_bytes().iter().chain(symbol.as_bytes()) {
        h ^= *b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    if h == 0 { 1 } else { h }
}

/// A class of data a client subscribes to. A stream (the unit of `seq`) is one
/// (instrument, channel) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Channel {
    /// Trades.
    Trades = 0,
    /// Top of book (best bid and offer).
    Quotes = 1,
    /// Order book: snapshots and deltas.
    Book = 2,
    /// Status, definitions and heartbeats: delivered to every subscriber of the instrument,
    /// never conflated.
    Control = 3,
}

impl Channel {
    /// Number of channels (for per-stream arrays).
    pub const COUNT: usize = 4;
    /// The channels a client can subscribe to by name.
    pub const SUBSCRIBABLE: [Channel; 3] = [Channel::Trades, Channel::Quotes, Channel::Book];

    /// The name used in subscribe messages.
    pub const fn name(self) -> &'static str {
        match self {
            Channel::Trades => "trades",
            Channel::Quotes => "quotes",
            Channel::Book => "book",
            Channel::Control => "control",
        }
    }

    /// Bit for this channel in a channel mask.
    pub const fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// Index into per-channel arrays.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl FromStr for Channel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "trades" | "trade" => Ok(Channel::Trades),
            "quotes" | "quote" | "bbo" => Ok(Channel::Quotes),
            "book" | "books" => Ok(Channel::Book),
            other => Err(format!(
                "unknown channel {other:?}; channels are trades, quotes, book"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn venue_names_roundtrip() {
        for v in Venue::ALL {
            assert_eq!(v.name().parse::<Venue>().unwrap(), v);
            assert_eq!(Venue::from_id(v.id()), Some(v));
        }
        assert!("nyse".parse::<Venue>().is_err());
        assert_eq!(Venue::from_id(0), None);
    }

    #[test]
    fn instrument_ids_are_stable_and_distinct() {
        let a = instrument_id(Venue::Binance, "BTCUSDT");
        assert_eq!(a, instrument_id(Venue::Binance, "BTCUSDT"));
        assert_ne!(a, instrument_id(Venue::BinanceFutures, "BTCUSDT"));
        assert_ne!(a, instrument_id(Venue::Binance, "ETHUSDT"));
        assert_ne!(a, 0);
        // Pinned: ids are part of recordings, so the hash must never change.
        assert_eq!(a, 0x788d_4e03);
    }
}
