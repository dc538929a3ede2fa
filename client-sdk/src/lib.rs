//! tickwire's client SDK.
//!
//! - [`wire`]: the frame contract (schema, batch codec, JSON rendering). No tokio.
//! - `client` (feature `client`, on by default): connect to a tickwire server, subscribe, and
//!   read a stream of zero-copy frame views.

pub mod wire;
