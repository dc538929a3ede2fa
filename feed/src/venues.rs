//! The venue registry: from a [`Venue`] to its normalizer and its connection recipe. The one
//! place the CLI (`normalize`, `serve --venue`) and the tests look venues up.

use std::sync::Arc;

use thiserror::Error;
use tickwire_sdk::wire::Venue;

use crate::binance::{BinanceNormalizer, BinanceSpot, spec::MAX_STREAMS};
use crate::bybit::{BybitNormalizer, BybitSpec};
use crate::coinbase::{CoinbaseExchange, CoinbaseNormalizer};
use crate::coinbase_advanced::{CoinbaseAdvancedNormalizer, CoinbaseAdvancedTrade};
use crate::kraken::{Dialect, KrakenNormalizer, KrakenSpot};
use crate::normalizer::Normalizer;
use crate::okx::{OkxNormalizer, OkxSpec};
use crate::venue::VenueSpec;

/// A connection request that cannot be served as given.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct VenueError(pub String);

/// A fresh normalizer for `venue`'s dialect, learning symbols from the data.
pub fn normalizer(venue: Venue) -> Box<dyn Normalizer> {
    match venue {
        Venue::Binance => Box::new(BinanceNormalizer::spot(&[])),
        Venue::BinanceFutures => Box::new(BinanceNormalizer::usd_futures(&[])),
        // Resyncs go through `level2` (what captures hold); a live connection's spec picks
        // its own channel.
        Venue::Coinbase => Box::new(CoinbaseNormalizer::new(&[], "level2")),
        Venue::CoinbaseAdvanced => Box::new(CoinbaseAdvancedNormalizer::new(&[])),
        // Either dialect is understood on any message; v1 is what public captures hold.
        Venue::Kraken => Box::new(KrakenNormalizer::new(
            Dialect::V1,
            &[],
            crate::kraken::normalizer::DEFAULT_DEPTH,
        )),
        Venue::Okx => Box::new(OkxNormalizer::new(&[])),
        Venue::Bybit => Box::new(BybitNormalizer::spot(&[])),
        Venue::BybitLinear => Box::new(BybitNormalizer::linear(&[])),
    }
}

/// Endpoints to use instead of the venue's own (a simulator's, a proxy's).
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    /// WebSocket base URL, e.g. `ws://127.0.0.1:9200`.
    pub ws: Option<String>,
    /// REST base URL, for venues that sync books over REST.
    pub rest: Option<String>,
}

/// The connection recipe for `symbols` (venue spelling, any case where the venue ignores case)
/// on `venue`, all channels, at the venue's own endpoints unless `endpoints` overrides them.
pub fn spec(
    venue: Venue,
    symbols: Vec<String>,
    endpoints: &Endpoints,
) -> Result<Arc<dyn VenueSpec>, VenueError> {
    if symbols.is_empty() {
        return Err(VenueError(format!(
            "--venue {venue} needs --symbols, e.g. --symbols {}",
            example_symbols(venue)
        )));
    }
    match venue {
        Venue::Binance | Venue::BinanceFutures => {
            let mut spec = match venue {
                Venue::Binance => BinanceSpot::new(symbols),
                _ => BinanceSpot::usd_futures(symbols),
            };
            if let Some(ws) = &endpoints.ws {
                spec.ws_base = ws.trim_end_matches('/').to_string();
            }
            if let Some(rest) = &endpoints.rest {
                spec.rest_base = rest.trim_end_matches('/').to_string();
            }
            if spec.streams().len() > MAX_STREAMS {
                return Err(VenueError(format!(
                    "Binance allows at most {MAX_STREAMS} streams per connection; pass fewer symbols"
                )));
            }
            Ok(Arc::new(spec))
        }
        Venue::Coinbase => {
            let mut spec = CoinbaseExchange::new(symbols);
            if let Some(ws) = &endpoints.ws {
                spec = spec.at(ws);
            }
            Ok(Arc::new(spec))
        }
        Venue::CoinbaseAdvanced => {
            let mut spec = CoinbaseAdvancedTrade::new(symbols);
            if let Some(ws) = &endpoints.ws {
                spec = spec.at(ws);
            }
            Ok(Arc::new(spec))
        }
        Venue::Kraken => {
            let mut spec = KrakenSpot::new(symbols);
            if let Some(ws) = &endpoints.ws {
                spec = spec.at(ws);
            }
            Ok(Arc::new(spec))
        }
        Venue::Okx => {
            let mut spec = OkxSpec::new(symbols);
            if let Some(ws) = &endpoints.ws {
                spec = spec.at(ws);
            }
            Ok(Arc::new(spec))
        }
        Venue::Bybit | Venue::BybitLinear => {
            let mut spec = match venue {
                Venue::Bybit => BybitSpec::spot(symbols),
                _ => BybitSpec::linear(symbols),
            };
            if let Some(ws) = &endpoints.ws {
                spec = spec.at(ws);
            }
            spec.validate().map_err(VenueError)?;
            Ok(Arc::new(spec))
        }
    }
}

/// Example symbols in the venue's spelling, for help and error messages.
pub fn example_symbols(venue: Venue) -> &'static str {
    match venue {
        Venue::Binance | Venue::BinanceFutures => "btcusdt,ethusdt",
        Venue::Coinbase | Venue::CoinbaseAdvanced => "BTC-USD,ETH-USD",
        Venue::Kraken => "BTC/USD,ETH/USD",
        Venue::Okx => "BTC-USDT,ETH-USDT",
        Venue::Bybit | Venue::BybitLinear => "BTCUSDT,ETHUSDT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_venue_has_a_normalizer_and_a_spec() {
        for v in Venue::ALL {
            assert_eq!(normalizer(v).venue(), v);
            let symbol = example_symbols(v).split(',').next().unwrap().to_string();
            let s = spec(v, vec![symbol], &Endpoints::default()).unwrap();
            assert_eq!(s.venue(), v);
            assert_eq!(s.new_normalizer().venue(), v);
            assert!(!s.subscribe_messages().is_empty(), "{v}");
            let local = spec(
                v,
                vec![example_symbols(v).split(',').next().unwrap().to_string()],
                &Endpoints {
                    ws: Some("ws://127.0.0.1:9".into()),
                    rest: Some("http://127.0.0.1:9".into()),
                },
            )
            .unwrap();
            assert!(
                local.ws_url().starts_with("ws://127.0.0.1:9"),
                "{v}: {}",
                local.ws_url()
            );
        }
    }

    #[test]
    fn a_request_without_symbols_says_what_to_do() {
        let e = spec(Venue::Okx, vec![], &Endpoints::default())
            .err()
            .unwrap();
        assert!(e.to_string().contains("--symbols BTC-USDT"), "{e}");
    }
}
