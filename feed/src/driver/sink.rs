//! Where a driver puts frames: the engine's ingest ring, or a channel in tests.

use tickwire_sdk::wire::Frame;

/// A bounded, non-blocking destination for frames.
pub trait FrameSink: Send + Sync + 'static {
    /// Offers one frame; gives it back if the sink is full (the driver waits and retries;
    /// it never drops a frame).
    fn try_push(&self, frame: Frame) -> Result<(), Frame>;
}

impl FrameSink for crossbeam::channel::Sender<Frame> {
    fn try_push(&self, frame: Frame) -> Result<(), Frame> {
        self.try_send(frame).map_err(|e| e.into_inner())
    }
}
