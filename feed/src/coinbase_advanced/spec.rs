//! Connecting to Coinbase Advanced Trade market data: endpoint, subscribe messages, pacing.
//!
//! Documented rules followed (docs.cdp.coinbase.com/coinbase-app/advanced-trade-apis/
//! websocket/websocket-overview, .../websocket-channels, .../websocket-rate-limits):
//!
//! - endpoint `wss://advanced-trade-ws.coinbase.com`; the public channels need no JWT;
//! - one channel per subscribe: `{"type":"subscribe","product_ids":[..],"channel":".."}`;
//! - unauthenticated messages are limited to 8 per second per IP: requests go 150 ms apart;
//! - "most channels close within 60-90 seconds if no updates are sent": the `heartbeats`
//!   channel (one message per second, no products needed) is subscribed first to keep the
//!   subscriptions open; there is no application-level ping, so WebSocket ping frames are
//!   used for the connection itself;
//! - books come as a `snapshot` event on the WebSocket: no REST snapshot.

use std::time::Duration;

use tickwire_sdk::wire::{Channel, Venue};

use super::CoinbaseAdvancedNormalizer;
use crate::coinbase::common::json_product;
use crate::normalizer::Normalizer;
use crate::venue::{ChannelSet, VenueSpec};

/// Coinbase Advanced Trade's public market data endpoint.
pub const ADVANCED_WS: &str = "wss://advanced-trade-ws.coinbase.com";
/// Products per subscribe request (our choice: the docs give no limit).
pub const PRODUCTS_PER_REQUEST: usize = 100;

/// A Coinbase Advanced Trade connection: where, which products, which channels.
#[derive(Debug, Clone)]
pub struct CoinbaseAdvancedTrade {
    /// WebSocket URL (or the simulator's `ws://...`).
    pub ws_base: String,
    /// Product ids (`BTC-USD`), any case; Coinbase spells them upper case.
    pub products: Vec<String>,
    /// Channels to subscribe.
    pub channels: ChannelSet,
}

impl CoinbaseAdvancedTrade {
    /// The real endpoint, all channels.
    pub fn new(products: Vec<String>) -> CoinbaseAdvancedTrade {
        CoinbaseAdvancedTrade {
            ws_base: ADVANCED_WS.to_string(),
            products,
            channels: ChannelSet::ALL,
        }
    }

    /// The same, pointed at another endpoint (the simulator).
    pub fn at(mut self, ws_base: &str) -> CoinbaseAdvancedTrade {
        self.ws_base = ws_base.trim_end_matches('/').to_string();
        self
    }
}

/// `{"type":<kind>,"product_ids":[..],"channel":<channel>}`.
pub fn request(kind: &str, products: &[String], channel: &str) -> String {
    let ids: Vec<String> = products
        .iter()
        .map(|p| format!("\"{}\"", json_product(&p.to_ascii_uppercase())))
        .collect();
    format!(
        "{{\"type\":\"{kind}\",\"product_ids\":[{}],\"channel\":\"{channel}\"}}",
        ids.join(",")
    )
}

impl VenueSpec for CoinbaseAdvancedTrade {
    fn venue(&self) -> Venue {
        Venue::CoinbaseAdvanced
    }

    fn ws_url(&self) -> String {
        self.ws_base.clone()
    }

    fn subscribe_messages(&self) -> Vec<String> {
        let mut out = vec![r#"{"type":"subscribe","channel":"heartbeats"}"#.to_string()];
        let mut channels = Vec::new();
        if self.channels.has(Channel::Trades) {
            channels.push("market_trades");
        }
        if self.channels.has(Channel::Quotes) {
            channels.push("ticker");
        }
        if self.channels.has(Channel::Book) {
            channels.push("level2");
        }
        for channel in channels {
            for chunk in self.products.chunks(PRODUCTS_PER_REQUEST) {
                out.push(request("subscribe", chunk, channel));
            }
        }
        out
    }

    fn send_interval(&self) -> Duration {
        // 8 unauthenticated messages per second per IP.
        Duration::from_millis(150)
    }

    fn snapshot_url(&self, _symbol: &str) -> Option<String> {
        None
    }

    fn new_normalizer(&self) -> Box<dyn Normalizer> {
        Box::new(CoinbaseAdvancedNormalizer::new(&self.products))
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
    fn one_channel_per_subscribe_heartbeats_first() {
        let spec = CoinbaseAdvancedTrade::new(vec!["eth-usd".into(), "ETH-EUR".into()]);
        assert_eq!(spec.ws_url(), "wss://advanced-trade-ws.coinbase.com");
        let v: Vec<serde_json::Value> = spec
            .subscribe_messages()
            .iter()
            .map(|m| serde_json::from_str(m).unwrap())
            .collect();
        assert_eq!(v.len(), 4);
        assert_eq!(
            v[0],
            serde_json::json!({"type": "subscribe", "channel": "heartbeats"})
        );
        // As the docs' example: {"type":"subscribe","product_ids":[..],"channel":".."}.
        let channels: Vec<&str> = v[1..]
            .iter()
            .map(|m| m["channel"].as_str().unwrap())
            .collect();
        assert_eq!(channels, ["market_trades", "ticker", "level2"]);
        for m in &v[1..] {
            assert_eq!(m["type"], "subscribe");
            assert_eq!(m["product_ids"], serde_json::json!(["ETH-USD", "ETH-EUR"]));
        }
        assert!(spec.snapshot_url("ETH-USD").is_none());
        assert!(spec.app_ping().is_none());
        assert!(spec.send_interval() >= Duration::from_millis(125));
        assert_eq!(
            spec.clone().at("ws://127.0.0.1:1/").ws_url(),
            "ws://127.0.0.1:1"
        );
    }
}
