//! The frame contract: schema, binary codecs and JSON rendering.
//!
//! Builds without tokio, so the feed and the engine take the schema without the client.
//!
//! - [`frame`]: the [`Frame`] record and its kinds, archived with rkyv.
//! - [`fixed`]: i64 fixed-point decimals in units of 1e-9.
//! - [`codec`]: one frame as bytes, and the batch that carries many in one WebSocket message.
//! - [`json`]: the JSON text rendering (the public text protocol).
//! - [`ids`]: venues, instrument ids, channels.
//! - [`instruments`]: what instrument ids stand for.

pub mod codec;
pub mod fixed;
pub mod frame;
pub mod ids;
pub mod instruments;
pub mod json;
pub(crate) mod plain;

pub use codec::{Batch, BatchWriter, Encoder, WireError, access, encode, to_owned};
pub use fixed::{DecimalError, Parsed, SCALE, decimal_string, parse_decimal, write_decimal};
pub use frame::{
    ArchivedBody, ArchivedFrame, ArchivedTrade, ArchivedTradeId, Body, BookDelta, BookSide,
    BookSnapshot, Definition, Frame, Kind, Level, Quote, Side, Status, StatusCode, Trade, TradeId,
    TradeSummary, flags,
};
pub use ids::{Channel, UnknownVenue, Venue, instrument_id};
pub use instruments::{InstrumentInfo, Instruments};
pub use json::{JsonOptions, render, render_string};
