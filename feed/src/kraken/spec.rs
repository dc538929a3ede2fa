//! Connecting to Kraken spot: endpoints, subscribe requests, keepalive.
//!
//! Documented (docs.kraken.com, "Spot WebSocket v2": `book`, `trade`, `ticker`, `instrument`,
//! `ping`; "Spot WebSocket v1"; "Spot Websockets introduction"):
//!
//! - endpoints `wss://ws.kraken.com/v2` (v2, the default here) and `wss://ws.kraken.com` (v1);
//! - v2 requests: `{"method":"subscribe","params":{"channel":..,"symbol":[..],..},"req_id":n}`;
//!   book `depth` one of 10, 25, 100, 500, 1000 (default 10); ticker `event_trigger` `bbo`
//!   publishes on every best-bid-offer change (the default, `trades`, only on trades);
//!   `instrument` gives each pair's `price_precision` and `qty_precision`, which the v2 book
//!   checksum needs, so it is subscribed first;
//! - v1 requests: `{"event":"subscribe","pair":[..],"subscription":{"name":..,"depth":..}}`;
//! - keepalive: the client pings with `{"method":"ping"}` (v1: `{"event":"ping"}`); the server
//!   answers `pong` and sends heartbeats about once a second while subscribed;
//! - rate: the message rate limit is dynamic and undocumented in numbers (the server answers
//!   `Exceeded msg rate`), so requests are few (one per channel, symbols batched) and spaced.

use std::time::Duration;

use tickwire_sdk::wire::{Channel, Venue};

use super::normalizer::{Dialect, KrakenNormalizer};
use crate::normalizer::Normalizer;
use crate::venue::{ChannelSet, VenueSpec};

/// Kraken's public WebSocket host.
pub const WS_BASE: &str = "wss://ws.kraken.com";
/// Depths the `book` channel accepts.
pub const DEPTHS: [u32; 5] = [10, 25, 100, 500, 1000];
/// Symbols per subscribe request (a conservative batch: Kraken states no number).
pub const SYMBOLS_PER_REQUEST: usize = 50;

/// A Kraken spot connection: where, which dialect, which pairs and channels.
#[derive(Debug, Clone)]
pub struct KrakenSpot {
    /// WebSocket base (`wss://ws.kraken.com`, or the simulator's `ws://127.0.0.1:port`);
    /// v2 adds the `/v2` path.
    pub ws_base: String,
    /// v2 (default) or v1.
    pub dialect: Dialect,
    /// Pairs as the venue spells them: `BTC/USD` (v2), `XBT/USD` (v1).
    pub symbols: Vec<String>,
    /// Channels to subscribe.
    pub channels: ChannelSet,
    /// Book depth: one of [`DEPTHS`].
    pub depth: u32,
}

impl KrakenSpot {
    /// The real exchange, v2, all channels, 1000-level books.
    pub fn new(symbols: Vec<String>) -> KrakenSpot {
        KrakenSpot {
            ws_base: WS_BASE.to_string(),
            dialect: Dialect::V2,
            symbols,
            channels: ChannelSet::ALL,
            depth: 1000,
        }
    }

    /// The same over the v1 API.
    pub fn v1(symbols: Vec<String>) -> KrakenSpot {
        KrakenSpot {
            dialect: Dialect::V1,
            ..KrakenSpot::new(symbols)
        }
    }

    /// The same, pointed at another endpoint (the simulator).
    pub fn at(mut self, ws_base: &str) -> KrakenSpot {
        self.ws_base = ws_base.trim_end_matches('/').to_string();
        self
    }

    /// A book depth Kraken accepts: the smallest documented one at or above `depth`.
    pub fn with_depth(mut self, depth: u32) -> KrakenSpot {
        self.depth = DEPTHS.into_iter().find(|&d| d >= depth).unwrap_or(1000);
        self
    }

    fn symbol_lists(&self) -> Vec<String> {
        self.symbols
            .chunks(SYMBOLS_PER_REQUEST)
            .map(|c| serde_json::to_string(c).unwrap_or_else(|_| "[]".into()))
            .collect()
    }

    fn v2_messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut req = 0;
        let mut push = |params: String| {
            req += 1;
            out.push(format!(
                "{{\"method\":\"subscribe\",\"params\":{params},\"req_id\":{req}}}"
            ));
        };
        if self.channels.has(Channel::Book) {
            // Precisions first: the book checksum is computed with them.
            push("{\"channel\":\"instrument\",\"snapshot\":true}".into());
        }
        for list in self.symbol_lists() {
            if self.channels.has(Channel::Book) {
                push(format!(
                    "{{\"channel\":\"book\",\"symbol\":{list},\"depth\":{},\"snapshot\":true}}",
                    self.depth
                ));
            }
            if self.channels.has(Channel::Trades) {
                push(format!(
                    "{{\"channel\":\"trade\",\"symbol\":{list},\"snapshot\":false}}"
                ));
            }
            if self.channels.has(Channel::Quotes) {
                push(format!(
                    "{{\"channel\":\"ticker\",\"symbol\":{list},\"event_trigger\":\"bbo\",\"snapshot\":true}}"
                ));
            }
        }
        out
    }

    fn v1_messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for list in self.symbol_lists() {
            let mut push = |sub: String| {
                out.push(format!(
                    "{{\"event\":\"subscribe\",\"pair\":{list},\"subscription\":{sub}}}"
                ));
            };
            if self.channels.has(Channel::Book) {
                push(format!("{{\"name\":\"book\",\"depth\":{}}}", self.depth));
            }
            if self.channels.has(Channel::Trades) {
                push("{\"name\":\"trade\"}".into());
            }
            if self.channels.has(Channel::Quotes) {
                push("{\"name\":\"ticker\"}".into());
            }
        }
        out
    }
}

impl VenueSpec for KrakenSpot {
    fn venue(&self) -> Venue {
        Venue::Kraken
    }

    fn ws_url(&self) -> String {
        match self.dialect {
            Dialect::V2 => format!("{}/v2", self.ws_base),
            Dialect::V1 => self.ws_base.clone(),
        }
    }

    fn subscribe_messages(&self) -> Vec<String> {
        match self.dialect {
            Dialect::V2 => self.v2_messages(),
            Dialect::V1 => self.v1_messages(),
        }
    }

    fn send_interval(&self) -> Duration {
        // The limit is dynamic; a handful of requests spaced like this stays well inside it.
        Duration::from_millis(200)
    }

    fn snapshot_url(&self, _symbol: &str) -> Option<String> {
        // Books come whole over the WebSocket (snapshot on subscribe).
        None
    }

    fn new_normalizer(&self) -> Box<dyn Normalizer> {
        Box::new(KrakenNormalizer::new(
            self.dialect,
            &self.symbols,
            self.depth as usize,
        ))
    }

    fn symbols(&self) -> Vec<String> {
        self.symbols.clone()
    }

    fn app_ping(&self) -> Option<String> {
        Some(match self.dialect {
            Dialect::V2 => "{\"method\":\"ping\"}".into(),
            Dialect::V1 => "{\"event\":\"ping\"}".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn parsed(spec: &KrakenSpot) -> Vec<Value> {
        spec.subscribe_messages()
            .iter()
            .map(|m| serde_json::from_str(m).unwrap())
            .collect()
    }

    #[test]
    fn v2_subscriptions_follow_the_documented_shape() {
        let spec = KrakenSpot::new(vec!["BTC/USD".into(), "ETH/USD".into()]);
        assert_eq!(spec.ws_url(), "wss://ws.kraken.com/v2");
        assert_eq!(spec.app_ping().unwrap(), r#"{"method":"ping"}"#);
        assert!(spec.snapshot_url("BTC/USD").is_none());
        let m = parsed(&spec);
        assert_eq!(m.len(), 4);
        assert_eq!(
            m[0],
            json!({"method":"subscribe","params":{"channel":"instrument","snapshot":true},"req_id":1})
        );
        assert_eq!(
            m[1],
            json!({"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD","ETH/USD"],"depth":1000,"snapshot":true},"req_id":2})
        );
        assert_eq!(
            m[2],
            json!({"method":"subscribe","params":{"channel":"trade","symbol":["BTC/USD","ETH/USD"],"snapshot":false},"req_id":3})
        );
        assert_eq!(
            m[3],
            json!({"method":"subscribe","params":{"channel":"ticker","symbol":["BTC/USD","ETH/USD"],"event_trigger":"bbo","snapshot":true},"req_id":4})
        );
        let sim = KrakenSpot::new(vec!["BTC/USD".into()]).at("ws://127.0.0.1:9000/");
        assert_eq!(sim.ws_url(), "ws://127.0.0.1:9000/v2");
        let many = KrakenSpot::new((0..120).map(|i| format!("S{i}/USD")).collect());
        // instrument once, then 3 channels per batch of 50 symbols.
        assert_eq!(many.subscribe_messages().len(), 1 + 3 * 3);
        assert_eq!(KrakenSpot::new(vec![]).with_depth(30).depth, 100);
    }

    #[test]
    fn v1_subscriptions_match_the_captured_request() {
        let pairs: Vec<String> = ["WAVES/EUR", "XMR/USD"].map(String::from).to_vec();
        let mut spec = KrakenSpot::v1(pairs);
        spec.channels = ChannelSet::of(&[Channel::Book]);
        assert_eq!(spec.ws_url(), "wss://ws.kraken.com");
        assert_eq!(spec.app_ping().unwrap(), r#"{"event":"ping"}"#);
        // As sent in replay-data/captures/kraken_spot_v1/book_1000/KRAKEN.ws.50.0.
        assert_eq!(
            parsed(&spec),
            vec![
                json!({"event":"subscribe","pair":["WAVES/EUR","XMR/USD"],"subscription":{"name":"book","depth":1000}})
            ]
        );
    }
}
