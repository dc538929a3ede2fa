//! Binance: spot (and USD-M futures, which shares the dialect).
//!
//! - [`normalizer`]: messages -> frames (sans-IO).
//! - [`spec`]: how to connect and subscribe.
//! - [`depth_sync`]: the documented local order book procedure, per symbol.

pub mod depth_sync;
pub mod normalizer;
pub mod spec;

pub use depth_sync::{DepthEvent, DepthSnapshot, DepthSync, SyncRule};
pub use normalizer::BinanceNormalizer;
pub use spec::{BinanceMarket, BinanceSpot};
