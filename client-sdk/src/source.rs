//! [`FrameSource`]: the stream interface a live [`Client`] and a recording's
//! [`Replay`](crate::replay::Replay) share, so a strategy written once runs live or on a
//! recording (feature `client`; `Replay` also needs `recording`).
//!
//! ```no_run
//! use tickwire_sdk::client::{ClientError, Event};
//! use tickwire_sdk::source::FrameSource;
//! use tickwire_sdk::wire::ArchivedBody;
//!
//! /// Volume-weighted average trade price (1e-9 units) of everything the source delivers.
//! async fn vwap(source: &mut impl FrameSource) -> Result<Option<i128>, ClientError> {
//!     let (mut notional, mut volume) = (0i128, 0i128);
//!     while let Some(event) = source.next().await {
//!         if let Event::Frames(batch) = event? {
//!             for frame in batch.iter() {
//!                 if let ArchivedBody::Trade(t) = &frame.body {
//!                     notional += t.price.to_native() as i128 * t.qty.to_native() as i128;
//!                     volume += t.qty.to_native() as i128;
//!                 }
//!             }
//!         }
//!     }
//!     Ok((volume > 0).then(|| notional / volume))
//! }
//! ```
//!
//! Live, `source` is a subscribed `Client` (the loop runs until the connection ends); on a
//! recording, a subscribed `Replay` (until the recording ends). `examples/backtest.rs` runs a
//! strategy both ways.

use std::future::Future;

use crate::client::{Client, ClientError, Event};
use crate::seq::SeqTracker;
use crate::wire::Instruments;

/// A stream of market-data events: a live [`Client`] or a
/// [`Replay`](crate::replay::Replay) of a recording.
///
/// Subscribing differs (a request to a server, or a selection in a recording) and is done on
/// the concrete type; reading is the same.
pub trait FrameSource {
    /// The next event: [`Event::Frames`] (batches of zero-copy frames), [`Event::Gap`] (a
    /// hole in a stream's `seq`), and for a live client the connection events; `None` when
    /// the source has ended. An error item need not end the stream (a replay reports a
    /// damaged block, then goes on): call again until `None`.
    fn next(&mut self) -> impl Future<Output = Option<Result<Event, ClientError>>> + Send;

    /// What the instrument ids seen so far stand for.
    fn instruments(&self) -> &Instruments;

    /// The sequence state of every stream received.
    fn seq(&self) -> &SeqTracker;
}

impl FrameSource for Client {
    async fn next(&mut self) -> Option<Result<Event, ClientError>> {
        Client::next(self).await
    }

    fn instruments(&self) -> &Instruments {
        Client::instruments(self)
    }

    fn seq(&self) -> &SeqTracker {
        Client::seq(self)
    }
}
