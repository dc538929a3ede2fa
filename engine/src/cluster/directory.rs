//! What an ingest node announces on `md.node.<node>`: who it is and what it serves (sans-IO).

use serde::{Deserialize, Serialize};
use tickwire_sdk::wire::{InstrumentInfo, Venue};

/// One ingest node's announcement, sent a few times a second (it doubles as a heartbeat).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    /// The node's name (unique in the cluster).
    pub node: String,
    /// Start time of the node's process, ns since the epoch: a new value means a restart.
    pub epoch: u64,
    /// The instruments it serves (those with a definition so far).
    pub instruments: Vec<Listed>,
}

/// One instrument in a [`Directory`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listed {
    /// Venue name (`binance`).
    pub venue: String,
    /// The venue's symbol.
    pub symbol: String,
    /// Fractional digits of prices.
    pub price_decimals: u8,
    /// Fractional digits of quantities.
    pub qty_decimals: u8,
}

impl Listed {
    /// The listing of `info`.
    pub fn of(info: &InstrumentInfo) -> Listed {
        Listed {
            venue: info.venue.name().to_string(),
            symbol: info.symbol.clone(),
            price_decimals: info.price_decimals,
            qty_decimals: info.qty_decimals,
        }
    }

    /// The instrument, if its venue is known to this build.
    pub fn info(&self) -> Option<InstrumentInfo> {
        let venue: Venue = self.venue.parse().ok()?;
        Some(InstrumentInfo::new(
            venue,
            &self.symbol,
            self.price_decimals,
            self.qty_decimals,
        ))
    }
}

impl Directory {
    /// The JSON payload.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a payload; an error says what is wrong.
    pub fn from_json(bytes: &[u8]) -> Result<Directory, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("bad directory message: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_round_trip_and_bad_ones_are_errors() {
        let d = Directory {
            node: "ingest-a".into(),
            epoch: 42,
            instruments: vec![Listed::of(&InstrumentInfo::new(
                Venue::Okx,
                "BTC-USDT",
                1,
                8,
            ))],
        };
        let back = Directory::from_json(&d.to_json()).unwrap();
        assert_eq!(back, d);
        assert_eq!(back.instruments[0].info().unwrap().venue, Venue::Okx);
        assert!(Directory::from_json(b"{").is_err());
        let unknown = Listed {
            venue: "nyse".into(),
            ..d.instruments[0].clone()
        };
        assert!(unknown.info().is_none());
    }
}
