//! Kraken spot: WebSocket v2 (the current API) and v1, one normalizer for both.
//!
//! - [`normalizer`]: messages -> frames (sans-IO), checksum-verified books.
//! - [`book`]: the depth-limited book and its CRC32.
//! - [`scan`]: a zero-copy JSON reader that keeps the text of numbers (v2 checksums).
//! - [`spec`]: how to connect and subscribe.

pub mod book;
pub mod normalizer;
pub mod scan;
pub mod spec;

pub use book::{ChecksumFormat, KrakenBook};
pub use normalizer::{Dialect, KrakenNormalizer};
pub use spec::KrakenSpot;
