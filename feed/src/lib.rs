//! tickwire's feed: where exchange ticks enter.
//!
//! - [`normalizer`]: the sans-IO interface every venue adapter implements.
//! - [`binance`]: Binance spot: normalizer and book sync.
//! - [`okx`]: OKX v5: normalizer, `books` builder with seqId and checksum checks.
//! - [`book`]: the L2 order book the adapters keep.
//! - [`capture`]: reading captured raw frames from files.
//! - [`driver`]: the tokio shell around a normalizer: connect, subscribe, ping, reconnect,
//!   watchdog, REST snapshots.
//! - [`sim`]: the exchange simulator (a Binance-compatible endpoint on 127.0.0.1).

pub mod binance;
pub mod book;
pub mod capture;
pub mod clock;
pub mod driver;
pub mod json;
pub mod normalizer;
pub mod okx;
pub mod sim;
pub mod symbols;
pub mod tls;
pub mod venue;

pub use normalizer::{Action, NormalizeError, Normalizer, Output, Stats};
