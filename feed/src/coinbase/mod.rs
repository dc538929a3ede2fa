//! Coinbase Exchange (the former Coinbase Pro feed, `wss://ws-feed.exchange.coinbase.com`).
//!
//! - [`normalizer`]: messages -> frames (sans-IO), with the level2 books.
//! - [`spec`]: how to connect and subscribe.
//! - [`common`]: what Exchange and Advanced Trade share (RFC 3339 times, the pushed-snapshot
//!   L2 book).

pub mod common;
pub mod normalizer;
pub mod spec;

pub use normalizer::CoinbaseNormalizer;
pub use spec::CoinbaseExchange;
