//! Where a driver puts frames: the engine's ingest ring, or a channel in tests.

use tickwire_sdk::wire::Frame;

/// Why a sink did not take a frame.
#[derive(Debug)]
pub enum PushError {
    /// The sink is full for now: the frame is given back; the driver waits and retries (it
    /// never drops a frame).
    Full(Frame),
    /// Nobody reads the sink any more: the driver stops.
    Closed,
}

/// A bounded, non-blocking destination for frames.
pub trait FrameSink: Send + Sync + 'static {
    /// Offers one frame.
    fn try_push(&self, frame: Frame) -> Result<(), PushError>;
}

impl FrameSink for crossbeam::channel::Sender<Frame> {
    fn try_push(&self, frame: Frame) -> Result<(), PushError> {
        self.try_send(frame).map_err(|e| match e {
            crossbeam::channel::TrySendError::Full(f) => PushError::Full(f),
            crossbeam::channel::TrySendError::Disconnected(_) => PushError::Closed,
        })
    }
}
