//! Connecting to Bybit v5 public streams: URLs, topics, subscribe requests, keepalive.
//!
//! Documented rules honoured (Bybit v5 docs, "WebSocket Stream > Connect"):
//!
//! - endpoints `wss://stream.bybit.com/v5/public/spot` and `.../v5/public/linear`;
//! - subscribe `{"req_id":..,"op":"subscribe","args":[topics]}`; "Spot can input up to 10 args
//!   for each subscription request sent to one connection"; "No args limit for Futures";
//!   "for one public connection, you cannot have length of "args" array over 21,000
//!   characters" (checked by [`BybitSpec::validate`]);
//! - keepalive: `{"op":"ping"}`, "we recommend that you send the ping heartbeat packet every
//!   20 seconds" (the driver's keepalive tick is shorter);
//! - books come from the WebSocket snapshot, so no REST snapshot URL.
//!
//! The docs state no per-connection request rate for public streams (error 20003 "Too frequent
//! requests under the same session" exists); requests are spaced by 100 ms.

use std::time::Duration;

use tickwire_sdk::wire::{Channel, Venue};

use super::{BybitNormalizer, Market};
use crate::normalizer::Normalizer;
use crate::venue::{ChannelSet, VenueSpec};

/// Bybit's public WebSocket base.
pub const WS_BASE: &str = "wss://stream.bybit.com";
/// Most args in one spot subscribe request (documented).
pub const SPOT_ARGS_PER_REQUEST: usize = 10;
/// Args per linear subscribe request (the docs set no limit; this keeps requests small).
pub const LINEAR_ARGS_PER_REQUEST: usize = 100;
/// Longest `args` array of one public connection, in characters (documented).
pub const MAX_ARGS_CHARS: usize = 21_000;
/// Documented orderbook depths, spot and linear alike.
pub const DEPTHS: [u32; 4] = [1, 50, 200, 1000];

/// Where quotes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuoteSource {
    /// `orderbook.1.{symbol}` (10 ms, both markets).
    Orderbook1,
    /// `tickers.{symbol}` bid1/ask1 (linear only, 100 ms; spot tickers carry no bid/ask, so
    /// spot falls back to `orderbook.1`).
    Tickers,
}

/// A Bybit v5 public connection: which market, symbols, channels.
#[derive(Debug, Clone)]
pub struct BybitSpec {
    /// Spot or linear.
    pub market: Market,
    /// WebSocket base (`wss://stream.bybit.com`, or the simulator's `ws://...`).
    pub ws_base: String,
    /// Symbols, any case; Bybit spells them upper case (`BTCUSDT`).
    pub symbols: Vec<String>,
    /// Channels to subscribe.
    pub channels: ChannelSet,
    /// The book topic's depth (50, 200 or 1000; 1 is the quote source).
    pub book_depth: u32,
    /// Where quotes come from.
    pub quotes: QuoteSource,
}

impl BybitSpec {
    /// The real exchange, all channels, `orderbook.50` books, quotes from `orderbook.1`.
    pub fn new(market: Market, symbols: Vec<String>) -> BybitSpec {
        BybitSpec {
            market,
            ws_base: WS_BASE.to_string(),
            symbols,
            channels: ChannelSet::ALL,
            book_depth: 50,
            quotes: QuoteSource::Orderbook1,
        }
    }

    /// Spot.
    pub fn spot(symbols: Vec<String>) -> BybitSpec {
        Self::new(Market::Spot, symbols)
    }

    /// Linear perpetuals and futures.
    pub fn linear(symbols: Vec<String>) -> BybitSpec {
        Self::new(Market::Linear, symbols)
    }

    /// The same, pointed at another WebSocket base (the simulator).
    pub fn at(mut self, ws_base: &str) -> BybitSpec {
        self.ws_base = ws_base.trim_end_matches('/').to_string();
        self
    }

    /// Topics for the configured symbols and channels (`publicTrade.BTCUSDT`...).
    pub fn topics(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.symbols {
            let s = s.to_ascii_uppercase();
            if self.channels.has(Channel::Trades) {
                out.push(format!("publicTrade.{s}"));
            }
            if self.channels.has(Channel::Quotes) {
                match (self.quotes, self.market) {
                    (QuoteSource::Tickers, Market::Linear) => out.push(format!("tickers.{s}")),
                    _ => out.push(format!("orderbook.1.{s}")),
                }
            }
            if self.channels.has(Channel::Book) {
                out.push(format!("orderbook.{}.{s}", self.book_depth));
            }
        }
        out
    }

    /// Checks the documented limits: a known book depth other than 1, and the connection's
    /// `args` within 21,000 characters.
    pub fn validate(&self) -> Result<(), String> {
        if !DEPTHS.contains(&self.book_depth) || self.book_depth == 1 {
            return Err(format!(
                "book depth {} is not one of Bybit's documented depths 50, 200, 1000 (1 is the quote source)",
                self.book_depth
            ));
        }
        let chars: usize = self.topics().iter().map(|t| t.len() + 3).sum::<usize>() + 2;
        if chars > MAX_ARGS_CHARS {
            return Err(format!(
                "{} topics need {chars} characters of args; Bybit allows {MAX_ARGS_CHARS} per public connection: split the symbols over several connections",
                self.topics().len()
            ));
        }
        Ok(())
    }
}

impl VenueSpec for BybitSpec {
    fn venue(&self) -> Venue {
        self.market.venue()
    }

    fn ws_url(&self) -> String {
        format!("{}/v5/public/{}", self.ws_base, self.market.path())
    }

    fn subscribe_messages(&self) -> Vec<String> {
        let per = match self.market {
            Market::Spot => SPOT_ARGS_PER_REQUEST,
            Market::Linear => LINEAR_ARGS_PER_REQUEST,
        };
        self.topics()
            .chunks(per)
            .enumerate()
            .map(|(i, chunk)| {
                let args: Vec<String> = chunk.iter().map(|t| format!("\"{t}\"")).collect();
                format!(
                    "{{\"req_id\":\"sub-{}\",\"op\":\"subscribe\",\"args\":[{}]}}",
                    i + 1,
                    args.join(",")
                )
            })
            .collect()
    }

    fn send_interval(&self) -> Duration {
        Duration::from_millis(100)
    }

    fn snapshot_url(&self, _symbol: &str) -> Option<String> {
        None
    }

    fn new_normalizer(&self) -> Box<dyn Normalizer> {
        Box::new(BybitNormalizer::new(self.market, &self.symbols()))
    }

    fn symbols(&self) -> Vec<String> {
        self.symbols
            .iter()
            .map(|s| s.to_ascii_uppercase())
            .collect()
    }

    fn app_ping(&self) -> Option<String> {
        Some("{\"op\":\"ping\"}".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spot_subscriptions_follow_the_documented_shape_and_limit() {
        let spec = BybitSpec::spot(vec!["btcusdt".into(), "ETHUSDT".into()]);
        assert_eq!(
            spec.ws_url(),
            "wss://stream.bybit.com/v5/public/spot",
            "documented spot endpoint"
        );
        assert_eq!(
            spec.topics(),
            [
                "publicTrade.BTCUSDT",
                "orderbook.1.BTCUSDT",
                "orderbook.50.BTCUSDT",
                "publicTrade.ETHUSDT",
                "orderbook.1.ETHUSDT",
                "orderbook.50.ETHUSDT"
            ]
        );
        let msgs = spec.subscribe_messages();
        assert_eq!(msgs.len(), 1);
        let v: serde_json::Value = serde_json::from_str(&msgs[0]).unwrap();
        assert_eq!(v["op"], "subscribe");
        assert_eq!(v["req_id"], "sub-1");
        assert_eq!(v["args"][0], "publicTrade.BTCUSDT");
        assert_eq!(v["args"].as_array().unwrap().len(), 6);
        // 30 symbols x 3 topics: at most 10 args per spot request.
        let many = BybitSpec::spot((0..30).map(|i| format!("S{i}USDT")).collect());
        let msgs = many.subscribe_messages();
        assert_eq!(msgs.len(), 9);
        for m in &msgs {
            let v: serde_json::Value = serde_json::from_str(m).unwrap();
            assert!(v["args"].as_array().unwrap().len() <= 10);
        }
        assert_eq!(spec.app_ping().unwrap(), r#"{"op":"ping"}"#);
        assert_eq!(spec.snapshot_url("BTCUSDT"), None);
        assert_eq!(spec.venue(), Venue::Bybit);
        assert!(spec.validate().is_ok());
    }

    #[test]
    fn linear_subscriptions_tickers_and_simulator() {
        let mut spec = BybitSpec::linear(vec!["BTCUSDT".into()]).at("ws://127.0.0.1:9000/");
        assert_eq!(spec.ws_url(), "ws://127.0.0.1:9000/v5/public/linear");
        assert_eq!(spec.venue(), Venue::BybitLinear);
        spec.quotes = QuoteSource::Tickers;
        spec.book_depth = 200;
        assert_eq!(
            spec.topics(),
            [
                "publicTrade.BTCUSDT",
                "tickers.BTCUSDT",
                "orderbook.200.BTCUSDT"
            ]
        );
        // Linear has no per-request limit: 150 topics in two requests.
        let many = BybitSpec::linear((0..50).map(|i| format!("S{i}USDT")).collect());
        assert_eq!(many.subscribe_messages().len(), 2);
        // Spot tickers have no bid/ask: quotes stay on orderbook.1.
        let mut spot = BybitSpec::spot(vec!["BTCUSDT".into()]);
        spot.quotes = QuoteSource::Tickers;
        assert_eq!(spot.topics()[1], "orderbook.1.BTCUSDT");
    }

    #[test]
    fn validate_checks_depth_and_args_length() {
        let mut spec = BybitSpec::linear(vec!["BTCUSDT".into()]);
        spec.book_depth = 1;
        assert!(spec.validate().is_err());
        spec.book_depth = 500;
        assert!(spec.validate().unwrap_err().contains("500"));
        let huge = BybitSpec::linear((0..1000).map(|i| format!("SYMBOL{i}USDT")).collect());
        assert!(huge.validate().unwrap_err().contains("21000"));
    }
}
