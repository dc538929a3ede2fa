//! Connecting to Binance spot and USD-M futures: stream names, SUBSCRIBE requests, REST
//! snapshot URLs.
//!
//! Documented limits honoured: at most 1024 streams per connection on both markets; at most 5
//! incoming messages per second on spot and 10 on futures (pings, pongs and requests all
//! count); spot time fields in microseconds when `timeUnit=MICROSECOND` is in the URL (futures
//! has no such option: milliseconds). Futures has no raw `@trade` stream: trades come from
//! `@aggTrade`.

use std::time::Duration;

use tickwire_sdk::wire::{Channel, Venue};

use super::BinanceNormalizer;
use crate::normalizer::Normalizer;
use crate::venue::{ChannelSet, VenueSpec};

/// Binance spot's public market data endpoint.
pub const SPOT_WS: &str = "wss://stream.binance.com:9443";
/// Binance spot's REST endpoint.
pub const SPOT_REST: &str = "https://api.binance.com";
/// Binance USD-M futures' public market data endpoint.
pub const FUTURES_WS: &str = "wss://fstream.binance.com";
/// Binance USD-M futures' REST endpoint.
pub const FUTURES_REST: &str = "https://fapi.binance.com";
/// Most streams one connection may carry.
pub const MAX_STREAMS: usize = 1024;
/// Streams per SUBSCRIBE request.
const STREAMS_PER_REQUEST: usize = 200;

/// Which Binance market.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BinanceMarket {
    /// Spot (`stream.binance.com`, `/api/v3/depth`).
    #[default]
    Spot,
    /// USD-M futures (`fstream.binance.com`, `/fapi/v1/depth`, the `pu` continuity rule).
    UsdFutures,
}

/// A Binance connection: which market, where, which symbols, which channels.
#[derive(Debug, Clone)]
pub struct BinanceSpot {
    /// Spot or USD-M futures.
    pub market: BinanceMarket,
    /// WebSocket base URL (`wss://stream.binance.com:9443`, or the simulator's `ws://...`).
    pub ws_base: String,
    /// REST base URL (`https://api.binance.com`, or the simulator's).
    pub rest_base: String,
    /// Symbols, any case (`btcusdt`); Binance spells them upper case.
    pub symbols: Vec<String>,
    /// Channels to subscribe.
    pub channels: ChannelSet,
    /// Levels requested in REST snapshots (Binance allows up to 5000).
    pub snapshot_depth: u32,
}

impl BinanceSpot {
    /// The real exchange, all channels, 1000-level snapshots.
    pub fn new(symbols: Vec<String>) -> BinanceSpot {
        BinanceSpot {
            market: BinanceMarket::Spot,
            ws_base: SPOT_WS.to_string(),
            rest_base: SPOT_REST.to_string(),
            symbols,
            channels: ChannelSet::ALL,
            snapshot_depth: 1000,
        }
    }

    /// The real USD-M futures exchange, all channels, 1000-level snapshots (the most
    /// `/fapi/v1/depth` serves).
    pub fn usd_futures(symbols: Vec<String>) -> BinanceSpot {
        BinanceSpot {
            market: BinanceMarket::UsdFutures,
            ws_base: FUTURES_WS.to_string(),
            rest_base: FUTURES_REST.to_string(),
            ..BinanceSpot::new(symbols)
        }
    }

    /// The same, pointed at other endpoints (the simulator).
    pub fn at(mut self, ws_base: &str, rest_base: &str) -> BinanceSpot {
        self.ws_base = ws_base.trim_end_matches('/').to_string();
        self.rest_base = rest_base.trim_end_matches('/').to_string();
        self
    }

    /// Stream names for the configured symbols and channels (`btcusdt@trade`...).
    pub fn streams(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.symbols {
            let s = s.to_ascii_lowercase();
            if self.channels.has(Channel::Trades) {
                out.push(match self.market {
                    BinanceMarket::Spot => format!("{s}@trade"),
                    BinanceMarket::UsdFutures => format!("{s}@aggTrade"),
                });
            }
            if self.channels.has(Channel::Quotes) {
                out.push(format!("{s}@bookTicker"));
            }
            if self.channels.has(Channel::Book) {
                out.push(format!("{s}@depth@100ms"));
            }
        }
        out
    }
}

impl VenueSpec for BinanceSpot {
    fn venue(&self) -> Venue {
        match self.market {
            BinanceMarket::Spot => Venue::Binance,
            BinanceMarket::UsdFutures => Venue::BinanceFutures,
        }
    }

    fn ws_url(&self) -> String {
        match self.market {
            BinanceMarket::Spot => format!("{}/stream?timeUnit=MICROSECOND", self.ws_base),
            BinanceMarket::UsdFutures => format!("{}/stream", self.ws_base),
        }
    }

    fn subscribe_messages(&self) -> Vec<String> {
        self.streams()
            .chunks(STREAMS_PER_REQUEST)
            .enumerate()
            .map(|(i, chunk)| {
                let params: Vec<String> = chunk.iter().map(|s| format!("\"{s}\"")).collect();
                format!(
                    "{{\"method\":\"SUBSCRIBE\",\"params\":[{}],\"id\":{}}}",
                    params.join(","),
                    i + 1
                )
            })
            .collect()
    }

    fn send_interval(&self) -> Duration {
        // 5 (spot) or 10 (futures) messages per second allowed; leave room for pings and pongs.
        match self.market {
            BinanceMarket::Spot => Duration::from_millis(250),
            BinanceMarket::UsdFutures => Duration::from_millis(150),
        }
    }

    fn snapshot_url(&self, symbol: &str) -> Option<String> {
        self.channels.has(Channel::Book).then(|| {
            let path = match self.market {
                BinanceMarket::Spot => "/api/v3/depth",
                BinanceMarket::UsdFutures => "/fapi/v1/depth",
            };
            format!(
                "{}{path}?symbol={}&limit={}",
                self.rest_base,
                symbol.to_ascii_uppercase(),
                self.snapshot_depth
            )
        })
    }

    fn new_normalizer(&self) -> Box<dyn Normalizer> {
        let symbols = self.symbols();
        Box::new(match self.market {
            BinanceMarket::Spot => BinanceNormalizer::spot(&symbols),
            BinanceMarket::UsdFutures => BinanceNormalizer::usd_futures(&symbols),
        })
    }

    fn symbols(&self) -> Vec<String> {
        self.symbols
            .iter()
            .map(|s| s.to_ascii_uppercase())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_follow_the_documented_shape() {
        let spec = BinanceSpot::new(vec!["btcusdt".into(), "ETHUSDT".into()]);
        assert_eq!(spec.streams().len(), 6);
        let msgs = spec.subscribe_messages();
        assert_eq!(msgs.len(), 1);
        let v: serde_json::Value = serde_json::from_str(&msgs[0]).unwrap();
        assert_eq!(v["method"], "SUBSCRIBE");
        assert_eq!(v["params"][0], "btcusdt@trade");
        assert_eq!(v["params"][5], "ethusdt@depth@100ms");
        assert_eq!(v["id"], 1);
        assert_eq!(
            spec.snapshot_url("btcusdt").unwrap(),
            "https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=1000"
        );
        let many = BinanceSpot::new((0..300).map(|i| format!("s{i}")).collect());
        assert_eq!(many.subscribe_messages().len(), 5); // 900 streams, 200 per request
    }

    #[test]
    fn futures_use_fstream_aggtrade_and_fapi() {
        let spec = BinanceSpot::usd_futures(vec!["btcusdt".into()]);
        assert_eq!(spec.venue(), Venue::BinanceFutures);
        assert_eq!(spec.ws_url(), "wss://fstream.binance.com/stream");
        assert_eq!(
            spec.streams(),
            [
                "btcusdt@aggTrade",
                "btcusdt@bookTicker",
                "btcusdt@depth@100ms"
            ]
        );
        assert_eq!(
            spec.snapshot_url("btcusdt").unwrap(),
            "https://fapi.binance.com/fapi/v1/depth?symbol=BTCUSDT&limit=1000"
        );
        assert!(spec.send_interval() >= Duration::from_millis(100));
    }
}
