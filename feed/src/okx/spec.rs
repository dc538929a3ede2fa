//! Connecting to OKX v5: the public endpoint, subscribe requests, the text keepalive.
//!
//! Documented rules followed (<https://www.okx.com/docs-v5/en/#overview-websocket>):
//!
//! - public market data on `wss://ws.okx.com:8443/ws/v5/public`, no login;
//! - `{"op":"subscribe","args":[{"channel":..,"instId":..},..]}`; the args of one request must
//!   stay within a length limit (64 KB in the current docs, 4096 bytes in earlier versions:
//!   requests are packed up to [`MAX_REQUEST_BYTES`], the stricter one);
//! - at most 480 subscribe/unsubscribe/login requests an hour per connection (few large
//!   requests; the normalizer bounds its resyncs), 3 connection requests a second per IP;
//! - the venue closes a connection with no data for 30 s: send the text `ping` (not JSON) when
//!   idle, expect the text `pong` ([`VenueSpec::app_ping`]).
//!
//! Channels: trades -> `trades`; quotes -> `tickers` (default) or `bbo-tbt`; book -> `books`
//! (400 levels, updates every 100 ms). Symbols are OKX instIds as OKX spells them
//! (`BTC-USDT`, `BTC-USDT-SWAP`, `BTC-USD-220527`). Books sync over the WebSocket, so there is
//! no REST snapshot.

use std::time::Duration;

use tickwire_sdk::wire::{Channel, Venue};

use super::normalizer::{BookChannel, OkxNormalizer};
use crate::normalizer::Normalizer;
use crate::venue::{ChannelSet, VenueSpec};

/// OKX's WebSocket host.
pub const OKX_WS: &str = "wss://ws.okx.com:8443";
/// The public channels' path.
pub const PUBLIC_PATH: &str = "/ws/v5/public";
/// Most bytes in one subscribe request.
pub const MAX_REQUEST_BYTES: usize = 4096;

/// Which channel feeds quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuoteChannel {
    /// `tickers`: best bid/ask with the last trade and 24 h stats, at most every 100 ms.
    Tickers,
    /// `bbo-tbt`: the best level, tick by tick (every 10 ms when it changes).
    BboTbt,
}

impl QuoteChannel {
    /// The channel name.
    pub fn name(self) -> &'static str {
        match self {
            QuoteChannel::Tickers => "tickers",
            QuoteChannel::BboTbt => "bbo-tbt",
        }
    }
}

/// An OKX public connection: where, which instruments, which channels.
#[derive(Debug, Clone)]
pub struct OkxSpec {
    /// WebSocket base (`wss://ws.okx.com:8443`, or the simulator's `ws://...`).
    pub ws_base: String,
    /// instIds (`BTC-USDT`); upper-cased.
    pub symbols: Vec<String>,
    /// Channels to subscribe.
    pub channels: ChannelSet,
    /// The quote channel.
    pub quotes: QuoteChannel,
    /// The book channel (`books`; the tick-by-tick ones need a VIP login).
    pub book: BookChannel,
}

impl OkxSpec {
    /// The real venue, all channels, quotes from `tickers`, books from `books`.
    pub fn new(symbols: Vec<String>) -> OkxSpec {
        OkxSpec {
            ws_base: OKX_WS.to_string(),
            symbols,
            channels: ChannelSet::ALL,
            quotes: QuoteChannel::Tickers,
            book: BookChannel::Books,
        }
    }

    /// The same, pointed at another WebSocket base (the simulator); the path stays
    /// `/ws/v5/public`.
    pub fn at(mut self, ws_base: &str) -> OkxSpec {
        self.ws_base = ws_base.trim_end_matches('/').to_string();
        self
    }

    /// The same with quotes from `quotes`.
    pub fn with_quotes(mut self, quotes: QuoteChannel) -> OkxSpec {
        self.quotes = quotes;
        self
    }

    /// The subscription args, one JSON object per (channel, instId).
    pub fn args(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in self.symbols() {
            let s = serde_json::Value::String(s).to_string();
            let mut push = |channel: &str| {
                out.push(format!("{{\"channel\":\"{channel}\",\"instId\":{s}}}"));
            };
            if self.channels.has(Channel::Trades) {
                push("trades");
            }
            if self.channels.has(Channel::Quotes) {
                push(self.quotes.name());
            }
            if self.channels.has(Channel::Book) {
                push(self.book.name());
            }
        }
        out
    }
}

impl VenueSpec for OkxSpec {
    fn venue(&self) -> Venue {
        Venue::Okx
    }

    fn ws_url(&self) -> String {
        format!("{}{PUBLIC_PATH}", self.ws_base)
    }

    fn subscribe_messages(&self) -> Vec<String> {
        const HEAD: &str = "{\"op\":\"subscribe\",\"args\":[";
        const TAIL: &str = "]}";
        let mut out = Vec::new();
        let mut cur = String::from(HEAD);
        for arg in self.args() {
            let empty = cur.len() == HEAD.len();
            if !empty && cur.len() + 1 + arg.len() + TAIL.len() > MAX_REQUEST_BYTES {
                cur.push_str(TAIL);
                out.push(std::mem::replace(&mut cur, String::from(HEAD)));
            }
            if cur.len() > HEAD.len() {
                cur.push(',');
            }
            cur.push_str(&arg);
        }
        if cur.len() > HEAD.len() {
            cur.push_str(TAIL);
            out.push(cur);
        }
        out
    }

    fn send_interval(&self) -> Duration {
        // No per-second rule for subscriptions beyond 480 an hour; stay near the documented
        // 3 requests a second of the connect limit.
        Duration::from_millis(350)
    }

    fn snapshot_url(&self, _symbol: &str) -> Option<String> {
        None
    }

    fn new_normalizer(&self) -> Box<dyn Normalizer> {
        Box::new(OkxNormalizer::new(&self.symbols()))
    }

    fn symbols(&self) -> Vec<String> {
        self.symbols
            .iter()
            .map(|s| s.to_ascii_uppercase())
            .collect()
    }

    fn app_ping(&self) -> Option<String> {
        Some("ping".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_follow_the_documented_shape() {
        let spec = OkxSpec::new(vec!["btc-usdt".into(), "BTC-USDT-SWAP".into()]);
        assert_eq!(spec.ws_url(), "wss://ws.okx.com:8443/ws/v5/public");
        assert_eq!(spec.app_ping().as_deref(), Some("ping"));
        assert_eq!(spec.snapshot_url("BTC-USDT"), None);
        let msgs = spec.subscribe_messages();
        assert_eq!(msgs.len(), 1);
        // The request example of "WS / Order book channel", args in our order.
        let v: serde_json::Value = serde_json::from_str(&msgs[0]).unwrap();
        assert_eq!(v["op"], "subscribe");
        let args = v["args"].as_array().unwrap();
        assert_eq!(args.len(), 6);
        assert_eq!(
            args[0],
            serde_json::json!({"channel": "trades", "instId": "BTC-USDT"})
        );
        assert_eq!(
            args[1],
            serde_json::json!({"channel": "tickers", "instId": "BTC-USDT"})
        );
        assert_eq!(
            args[2],
            serde_json::json!({"channel": "books", "instId": "BTC-USDT"})
        );
        assert_eq!(args[5]["instId"], "BTC-USDT-SWAP");
        let bbo = spec.clone().with_quotes(QuoteChannel::BboTbt);
        assert!(
            bbo.subscribe_messages()[0]
                .contains("{\"channel\":\"bbo-tbt\",\"instId\":\"BTC-USDT\"}")
        );
        let sim = spec.at("ws://127.0.0.1:9000/");
        assert_eq!(sim.ws_url(), "ws://127.0.0.1:9000/ws/v5/public");
    }

    #[test]
    fn many_instruments_are_split_into_requests_within_the_length_limit() {
        let spec = OkxSpec::new((0..300).map(|i| format!("COIN{i}-USDT-SWAP")).collect());
        let msgs = spec.subscribe_messages();
        assert!(msgs.len() > 1);
        let mut total = 0;
        for m in &msgs {
            assert!(m.len() <= MAX_REQUEST_BYTES, "{}", m.len());
            let v: serde_json::Value = serde_json::from_str(m).unwrap();
            total += v["args"].as_array().unwrap().len();
        }
        assert_eq!(total, 900);
        // Few requests: far below the 480 an hour allowed per connection.
        assert!(msgs.len() < 20, "{}", msgs.len());
    }
}
