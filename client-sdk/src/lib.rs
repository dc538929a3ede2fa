//! tickwire's client SDK.
//!
//! - [`wire`]: the frame contract (schema, batch codec, JSON rendering). No tokio.
//! - [`book`]: a client-side L2 book kept from snapshot and delta frames.
//! - `client` (feature `client`, on by default): connect to a tickwire server, subscribe, and
//!   read a stream of zero-copy frame views.

pub mod book;
#[cfg(feature = "client")]
pub mod client;
pub mod wire;

pub use book::L2Book;
