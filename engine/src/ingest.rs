//! Ingest rings: one bounded lock-free queue per upstream connection, from a feed driver
//! (tokio task) to the sequencer (its own thread).

use crossbeam::queue::ArrayQueue;
use crossbeam::sync::Unparker;
use tickwire_feed::driver::{FrameSink, PushError};
use tickwire_sdk::wire::Frame;

/// A single-producer, single-consumer frame queue that wakes the sequencer on push.
pub struct IngestRing {
    queue: ArrayQueue<Frame>,
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
    pub fn pop(&self) -> Option<Frame> {
        self.queue.pop()
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
        let r = self.queue.push(frame).map_err(PushError::Full);
        self.wake.unpark();
        r
    }
}
