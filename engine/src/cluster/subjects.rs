//! NATS subject names and message headers of the cluster (sans-IO).
//!
//! - `md.<venue>.<symbol>.<channel>`: the encoded frames of one stream, `channel` one of
//!   `trades`, `quotes`, `book`, `control` (status frames); each message a binary batch of
//!   consecutive frames of the stream (a lone frame is accepted too). Symbols are the
//!   venue's spelling; characters NATS reserves in a token (`.`, `*`, `>`, whitespace)
//!   become `_`.
//! - `md.snap.<venue>.<symbol>`: request-reply: any ingest node serving the instrument answers
//!   with its current state (a binary batch); `md.snap.<node>.<venue>.<symbol>` asks one node.
//! - `md.node.<node>`: every ingest node publishes its [`Directory`](super::directory::Directory)
//!   here a few times a second: the instruments it serves, and a heartbeat.
//! - `md.dir`: request-reply: every ingest node answers with its directory.

use tickwire_sdk::wire::{Channel, Venue};

/// Header naming the ingest node that published a message.
pub const NODE: &str = "Tw-Node";
/// Header with the start time (ns) of the ingest node's process: a new value means the node
/// restarted, and its sequence numbers started again.
pub const EPOCH: &str = "Tw-Epoch";

/// Subject of every ingest node's directory and heartbeat.
pub const NODES: &str = "md.node.*";
/// Subject of the directory request.
pub const DIR_REQUEST: &str = "md.dir";

/// A subject token for a symbol or node name: NATS-reserved characters replaced by `_`.
pub fn token(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '.' | '*' | '>' => '_',
            c if c.is_whitespace() => '_',
            c => c,
        })
        .collect()
}

/// The subject of one stream's frames.
pub fn stream(venue: Venue, symbol: &str, channel: Channel) -> String {
    format!("md.{}.{}.{}", venue.name(), token(symbol), channel.name())
}

/// The subject to ask any ingest node for an instrument's state.
pub fn snapshot(venue: Venue, symbol: &str) -> String {
    format!("md.snap.{}.{}", venue.name(), token(symbol))
}

/// The subject to ask one ingest node for an instrument's state.
pub fn node_snapshot(node: &str, venue: Venue, symbol: &str) -> String {
    format!("md.snap.{}.{}.{}", token(node), venue.name(), token(symbol))
}

/// The subject an ingest node publishes its directory on.
pub fn node(node: &str) -> String {
    format!("md.node.{}", token(node))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_follow_the_documented_scheme_and_escape_reserved_characters() {
        assert_eq!(
            stream(Venue::Binance, "BTCUSDT", Channel::Trades),
            "md.binance.BTCUSDT.trades"
        );
        assert_eq!(
            stream(Venue::Okx, "BTC-USDT", Channel::Control),
            "md.okx.BTC-USDT.control"
        );
        assert_eq!(
            stream(Venue::Kraken, "XBT/USD", Channel::Book),
            "md.kraken.XBT/USD.book"
        );
        assert_eq!(token("a.b*c>d e"), "a_b_c_d_e");
        assert_eq!(snapshot(Venue::Bybit, "BTCUSDT"), "md.snap.bybit.BTCUSDT");
        assert_eq!(
            node_snapshot("ing.a", Venue::Bybit, "BTCUSDT"),
            "md.snap.ing_a.bybit.BTCUSDT"
        );
        assert_eq!(node("ingest-1"), "md.node.ingest-1");
    }
}
