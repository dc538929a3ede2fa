//! Binance: spot (and USD-M futures, which shares the dialect).
//!
//! - [`normalizer`]: messages -> frames (sans-IO).
//! - [`depth_sync`]: the documented local order book procedure, per symbol.

pub mod depth_sync;
pub mod normalizer;

pub use depth_sync::{DepthEvent, DepthSnapshot, DepthSync, SyncRule};
pub use normalizer::BinanceNormalizer;
