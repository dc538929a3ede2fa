//! Bybit v5 public market data: spot (`Venue::Bybit`) and linear USDT/USDC perpetuals and
//! futures (`Venue::BybitLinear`), one dialect parameterised by the [`Market`].
//!
//! - [`normalizer`]: messages -> frames (sans-IO).
//! - [`book`]: one orderbook topic's book and its documented integrity rule.
//! - [`spec`]: how to connect, subscribe and keep the connection alive.

pub mod book;
pub mod normalizer;
pub mod spec;

pub use book::{BookEvent, EventKind, Outcome, TopicBook};
pub use normalizer::{BybitNormalizer, Market};
pub use spec::{BybitSpec, QuoteSource};
