//! OKX v5 public WebSocket (spot, swaps, futures: one dialect).
//!
//! - [`normalizer`]: messages -> frames (sans-IO), with the `books` builder and its
//!   `seqId`/`prevSeqId` and checksum rules.
//! - [`book`]: the order book and the documented CRC32 checksum.
//! - [`spec`]: how to connect and subscribe.

pub mod book;
pub mod normalizer;
pub mod spec;

pub use book::OkxBook;
pub use normalizer::{BookChannel, OkxNormalizer};
pub use spec::{OkxSpec, QuoteChannel};
