//! `venue:SYMBOL` names, as clients subscribe with them.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::wire::{Venue, instrument_id};

/// An instrument named as in subscribe messages: `binance:BTCUSDT`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Symbol {
    /// The venue.
    pub venue: Venue,
    /// The venue's symbol, upper case (the server upper-cases it too).
    pub symbol: String,
}

/// A name that is not `venue:SYMBOL`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0:?} is not \"venue:SYMBOL\" with a known venue, e.g. \"binance:BTCUSDT\"")]
pub struct BadSymbol(pub String);

impl Symbol {
    /// The instrument id frames carry for this symbol.
    pub fn id(&self) -> u32 {
        instrument_id(self.venue, &self.symbol)
    }
}

impl FromStr for Symbol {
    type Err = BadSymbol;
    /// Parses `venue:SYMBOL` (venue case-insensitive, symbol upper-cased).
    fn from_str(s: &str) -> Result<Symbol, BadSymbol> {
        let bad = || BadSymbol(s.to_string());
        let (venue, symbol) = s.split_once(':').ok_or_else(bad)?;
        let venue: Venue = venue.parse().map_err(|_| bad())?;
        if symbol.is_empty() || symbol.chars().any(char::is_whitespace) {
            return Err(bad());
        }
        Ok(Symbol {
            venue,
            symbol: symbol.to_ascii_uppercase(),
        })
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.venue.name(), self.symbol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_venue_symbol() {
        let s: Symbol = "Binance:btcusdt".parse().unwrap();
        assert_eq!(s.venue, Venue::Binance);
        assert_eq!(s.to_string(), "binance:BTCUSDT");
        assert_eq!(s.id(), instrument_id(Venue::Binance, "BTCUSDT"));
        for bad in ["BTCUSDT", "nyse:IBM", "binance:", "binance:BTC USDT"] {
            assert!(bad.parse::<Symbol>().is_err(), "{bad}");
        }
    }
}
