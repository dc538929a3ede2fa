//! The live client's interface on a replay (feature `client`): `next().await` gives
//! [`Event`]s, and [`FrameSource`] is implemented.

use std::time::Instant;

use super::{Next, Replay, ReplayEvent};
use crate::client::{ClientError, Event};
use crate::recording::CorruptBlock;
use crate::seq::SeqTracker;
use crate::source::FrameSource;
use crate::wire::Instruments;

impl From<ReplayEvent> for Event {
    fn from(e: ReplayEvent) -> Event {
        match e {
            ReplayEvent::Frames(batch) => Event::Frames(batch),
            ReplayEvent::Gap {
                instrument,
                channel,
                expected,
                got,
            } => Event::Gap {
                instrument,
                channel,
                expected,
                got,
            },
        }
    }
}

impl From<CorruptBlock> for ClientError {
    fn from(c: CorruptBlock) -> ClientError {
        ClientError::Corrupt {
            file: c.file,
            offset: c.offset,
            reason: c.reason,
        }
    }
}

impl Replay {
    /// The next event, as the live [`Client::next`](crate::client::Client::next) gives them:
    /// [`Event::Frames`] and [`Event::Gap`]; a damaged block is a [`ClientError::Corrupt`]
    /// item (the next call goes on); `None` at the end of the recording or time range.
    ///
    /// Paced, it waits with `tokio::time::sleep_until`. At full speed it never waits, but
    /// yields to the tokio scheduler now and then (its cooperative budget) so other tasks
    /// run. Cancel-safe: dropping the future loses no event.
    pub async fn next(&mut self) -> Option<Result<Event, ClientError>> {
        loop {
            tokio::task::coop::consume_budget().await;
            match self.advance(Instant::now()) {
                Next::Event(e) => return Some(e.map(Event::from).map_err(ClientError::from)),
                Next::End => return None,
                Next::Wait(until) => tokio::time::sleep_until(until.into()).await,
            }
        }
    }
}

impl FrameSource for Replay {
    async fn next(&mut self) -> Option<Result<Event, ClientError>> {
        Replay::next(self).await
    }

    fn instruments(&self) -> &Instruments {
        Replay::instruments(self)
    }

    fn seq(&self) -> &SeqTracker {
        Replay::seq(self)
    }
}
