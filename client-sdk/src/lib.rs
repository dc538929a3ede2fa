//! tickwire's client SDK.
//!
//! - [`wire`]: the frame contract (schema, batch codec, JSON rendering). No tokio.
//! - [`book`]: a client-side L2 book kept from snapshot and delta frames; [`books`]: one per
//!   instrument, kept from the stream.
//! - [`seq`]: per-stream sequence checking (sans-IO).
//! - [`backoff`]: reconnect delays (sans-IO).
//! - [`symbol`]: `venue:SYMBOL` names.
//! - `client` (feature `client`, on by default): connect to a tickwire server, subscribe, and
//!   read a stream of zero-copy frame views; optionally reconnecting, re-subscribing and
//!   repairing books after a gap.
//! - `recording` (feature `recording`, on by default): segment files of frames, written
//!   crash-safe and read memory-mapped and zero-copy. No tokio.
//! - `replay` (feature `recording`): a recording delivered as the stream a live subscription
//!   gives (same frames, batches, gaps), at full speed or paced; blocking, or async with the
//!   `client` feature.
//! - `source` (feature `client`): `FrameSource`, the stream interface `Client` and `Replay`
//!   share, so a strategy runs live or on a recording.

pub mod backoff;
pub mod book;
pub mod books;
#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "recording")]
pub mod recording;
#[cfg(feature = "recording")]
pub mod replay;
pub mod seq;
#[cfg(feature = "client")]
pub mod source;
pub mod symbol;
pub mod wire;

pub use book::L2Book;
pub use books::Books;
pub use seq::{Hole, SeqCheck, SeqTracker};
pub use symbol::Symbol;
