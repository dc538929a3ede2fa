//! Coinbase Advanced Trade (`wss://advanced-trade-ws.coinbase.com`, public channels).
//!
//! - [`normalizer`]: messages -> frames (sans-IO), with the level2 books.
//! - [`spec`]: how to connect and subscribe.
//!
//! Shares the RFC 3339 parser and the pushed-snapshot book with [`crate::coinbase`].

pub mod normalizer;
pub mod spec;

pub use normalizer::CoinbaseAdvancedNormalizer;
pub use spec::CoinbaseAdvancedTrade;
