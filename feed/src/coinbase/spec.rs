//! Connecting to Coinbase Exchange: endpoint, subscribe messages, pacing.
//!
//! Documented rules followed (docs.cdp.coinbase.com/exchange/websocket-feed and
//! .../websocket-feed/rate-limits):
//!
//! - endpoint `wss://ws-feed.exchange.coinbase.com`; a subscribe must arrive within 5 s of
//!   connecting or the server disconnects;
//! - `{"type":"subscribe","product_ids":[..],"channels":[..]}` (and `"unsubscribe"` alike);
//! - at most 8 requests per second per IP (bursts of 20) and 100 client messages per second:
//!   requests are sent 150 ms apart;
//! - no application-level ping exists: WebSocket ping frames keep the connection alive, and
//!   the `heartbeat` channel (one message per product per second) is subscribed with
//!   `matches` so `last_trade_id` can show missed trades;
//! - `level2` now requires an authenticated connection; `level2_batch` (the same messages,
//!   batched every 50 ms) does not, so it is the default book channel here;
//! - books come as a `snapshot` on the WebSocket itself: no REST snapshot.

use std::time::Duration;

use tickwire_sdk::wire::{Channel, Venue};

use super::CoinbaseNormalizer;
use super::common::json_product;
use crate::normalizer::Normalizer;
use crate::venue::{ChannelSet, VenueSpec};

/// Coinbase Exchange's public market data endpoint.
pub const EXCHANGE_WS: &str = "wss://ws-feed.exchange.coinbase.com";
/// Products per subscribe request (our choice: the docs give no limit; this keeps each
/// request small).
pub const PRODUCTS_PER_REQUEST: usize = 100;

/// A Coinbase Exchange connection: where, which products, which channels.
#[derive(Debug, Clone)]
pub struct CoinbaseExchange {
    /// WebSocket URL (`wss://ws-feed.exchange.coinbase.com`, or the simulator's `ws://...`).
    pub ws_base: String,
    /// Product ids (`BTC-USD`), any case; Coinbase spells them upper case.
    pub products: Vec<String>,
    /// Channels to subscribe.
    pub channels: ChannelSet,
    /// The book channel: `level2_batch` (public, the default) or `level2` (authenticated).
    pub book_channel: String,
}

impl CoinbaseExchange {
    /// The real exchange, all channels, books from `level2_batch`.
    pub fn new(products: Vec<String>) -> CoinbaseExchange {
        CoinbaseExchange {
            ws_base: EXCHANGE_WS.to_string(),
            products,
            channels: ChannelSet::ALL,
            book_channel: "level2_batch".to_string(),
        }
    }

    /// The same, pointed at another endpoint (the simulator).
    pub fn at(mut self, ws_base: &str) -> CoinbaseExchange {
        self.ws_base = ws_base.trim_end_matches('/').to_string();
        self
    }

    /// The venue channel names subscribed, in order.
    pub fn venue_channels(&self) -> Vec<&str> {
        let mut out = Vec::new();
        if self.channels.has(Channel::Trades) {
            out.push("matches");
            out.push("heartbeat");
        }
        if self.channels.has(Channel::Quotes) {
            out.push("ticker");
        }
        if self.channels.has(Channel::Book) {
            out.push(self.book_channel.as_str());
        }
        out
    }
}

/// `{"type":<kind>,"product_ids":[..],"channels":[<channel>]}`.
pub fn request(kind: &str, products: &[String], channel: &str) -> String {
    let ids: Vec<String> = products
        .iter()
        .map(|p| format!("\"{}\"", json_product(&p.to_ascii_uppercase())))
        .collect();
    format!(
        "{{\"type\":\"{kind}\",\"product_ids\":[{}],\"channels\":[\"{channel}\"]}}",
        ids.join(",")
    )
}

impl VenueSpec for CoinbaseExchange {
    fn venue(&self) -> Venue {
        Venue::Coinbase
    }

    fn ws_url(&self) -> String {
        self.ws_base.clone()
    }

    fn subscribe_messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for channel in self.venue_channels() {
            for chunk in self.products.chunks(PRODUCTS_PER_REQUEST) {
                out.push(request("subscribe", chunk, channel));
            }
        }
        out
    }

    fn send_interval(&self) -> Duration {
        // 8 requests per second per IP allowed.
        Duration::from_millis(150)
    }

    fn snapshot_url(&self, _symbol: &str) -> Option<String> {
        None
    }

    fn new_normalizer(&self) -> Box<dyn Normalizer> {
        Box::new(CoinbaseNormalizer::new(&self.products, &self.book_channel))
    }

    fn symbols(&self) -> Vec<String> {
        self.products
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
        let spec = CoinbaseExchange::new(vec!["btc-usd".into(), "ETH-EUR".into()]);
        assert_eq!(spec.ws_url(), "wss://ws-feed.exchange.coinbase.com");
        let msgs = spec.subscribe_messages();
        assert_eq!(msgs.len(), 4);
        let v: Vec<serde_json::Value> = msgs
            .iter()
            .map(|m| serde_json::from_str(m).unwrap())
            .collect();
        // As the docs' example: {"type":"subscribe","product_ids":[..],"channels":[..]}.
        for m in &v {
            assert_eq!(m["type"], "subscribe");
            assert_eq!(m["product_ids"], serde_json::json!(["BTC-USD", "ETH-EUR"]));
            assert_eq!(m.as_object().unwrap().len(), 3);
        }
        let channels: Vec<&str> = v
            .iter()
            .map(|m| m["channels"][0].as_str().unwrap())
            .collect();
        assert_eq!(channels, ["matches", "heartbeat", "ticker", "level2_batch"]);
        assert!(spec.snapshot_url("BTC-USD").is_none());
        assert!(spec.app_ping().is_none());
        assert!(spec.send_interval() >= Duration::from_millis(125)); // <= 8 per second
        assert_eq!(spec.symbols(), ["BTC-USD", "ETH-EUR"]);
        let sim = spec.clone().at("ws://127.0.0.1:9000/");
        assert_eq!(sim.ws_url(), "ws://127.0.0.1:9000");
        let many = CoinbaseExchange::new((0..250).map(|i| format!("P{i}-USD")).collect());
        assert_eq!(many.subscribe_messages().len(), 4 * 3);
        let hostile = request("subscribe", &["BTC\"-USD".into()], "ticker");
        let v: serde_json::Value = serde_json::from_str(&hostile).unwrap();
        assert_eq!(v["product_ids"][0], "BTC-USD");
    }
}
