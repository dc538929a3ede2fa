//! tickwire's feed: where exchange ticks enter.
//!
//! - [`normalizer`]: the sans-IO interface every venue adapter implements.
//! - [`binance`]: Binance spot and USD-M futures: normalizer and book sync.
//! - [`bybit`]: Bybit v5 spot and linear: normalizer and books.
//! - [`coinbase`]: Coinbase Exchange: normalizer and level2 books.
//! - [`coinbase_advanced`]: Coinbase Advanced Trade: normalizer and level2 books.
//! - [`layout`]: exact-layout message reading, the normalizers' fast path.
//! - [`kraken`]: Kraken spot, WebSocket v2 and v1: normalizer and checksum-verified books.
//! - [`okx`]: OKX v5: normalizer, `books` builder with seqId and checksum checks.
//! - [`book`]: the L2 order book the adapters keep.
//! - [`capture`]: reading captured raw frames from files.
//! - [`driver`]: the tokio shell around a normalizer: connect, subscribe, ping, reconnect,
//!   watchdog, REST snapshots.
//! - [`sim`]: the exchange simulator (every venue's dialect, on 127.0.0.1).
//! - [`venues`]: the registry from a venue to its normalizer and connection recipe.

pub mod binance;
pub mod book;
pub mod bybit;
pub mod capture;
pub mod clock;
pub mod coinbase;
pub mod coinbase_advanced;
pub mod driver;
pub mod json;
pub mod kraken;
pub mod layout;
pub mod normalizer;
pub mod okx;
pub mod sim;
pub mod symbols;
pub mod tls;
pub mod venue;
pub mod venues;

pub use normalizer::{Action, NormalizeError, Normalizer, Output, Stats};
