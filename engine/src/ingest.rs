//! Ingest rings: one bounded lock-free queue per upstream connection, from a feed driver
//! (tokio task) to the sequencer (its own thread).

use crossbeam::queue::ArrayQueue;
use crossbeam::sync::Unparker;
use tickwire_feed::driver::{FrameSink, PushError};
use tickwire_sdk::wire::Frame;

/// What a source hands the sequencer.
#[derive(Debug)]
pub enum Inbound {
    /// A frame from a feed: the sequencer gives it its `seq` and `ts_publish` and encodes it.
    Fresh(Frame),
    /// A frame sequenced and encoded elsewhere (an ingest node across NATS), with its rkyv
    /// bytes: published as it came.
    Encoded(Frame, Box<[u8]>),
    /// An instrument announced before any of its frames (a gateway node learns the cluster's
    /// instruments from the ingest nodes' directories).
    Define(tickwire_sdk::wire::InstrumentInfo),
}

/// A single-producer, single-consumer frame queue that wakes the sequencer on push.
pub struct IngestRing {
    queue: ArrayQueue<Inbound>,
    wake: Unparker,
}

impl IngestRing {
    /// A ring of `capacity` frames that unparks `wake` (the sequencer) when fed.
    pub fn new(capacity: usize, wake: Unparker) -> IngestRing {
        IngestRing {
            queue: ArrayQueue::new(capacity.max(1)),
            wake,
        }
    }

    /// Takes the oldest frame.
    #[inline]
    pub fn pop(&self) -> Option<Inbound> {
        self.queue.pop()
    }

    /// Queues any item; gives it back if the ring is full.
    #[inline]
    pub fn try_push_inbound(&self, item: Inbound) -> Result<(), Inbound> {
        let r = self.queue.push(item);
        self.wake.unpark();
        r
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when no frame is waiting.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

impl FrameSink for IngestRing {
    #[inline]
    fn try_push(&self, frame: Frame) -> Result<(), PushError> {
        // What comes back from a full queue is the fresh frame just pushed.
        let r = match self.queue.push(Inbound::Fresh(frame)) {
            Ok(()) => Ok(()),
            Err(Inbound::Fresh(f) | Inbound::Encoded(f, _)) => Err(PushError::Full(f)),
            Err(Inbound::Define(_)) => Ok(()),
        };
        self.wake.unpark();
        r
    }
}
