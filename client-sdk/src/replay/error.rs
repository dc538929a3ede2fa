//! Why a replay could not start.

use std::path::PathBuf;

use thiserror::Error;

use crate::recording::RecordingError;

/// Why a [`Replay`](super::Replay) could not be opened or a selection not be made. Damage
/// found while reading is not one of these: it comes as a
/// [`CorruptBlock`](crate::recording::CorruptBlock) item in the stream, and reading goes on.
#[derive(Debug, Error)]
pub enum ReplayError {
    /// The path is not a recording directory.
    #[error(
        "no recording at {}: {reason}; pass the directory a recording was written to (the DIR of \
         `tickwire serve --record DIR`, holding seg-*.twrec files)",
        dir.display()
    )]
    NotFound {
        /// The path given.
        dir: PathBuf,
        /// What is there instead ("the directory does not exist", ...).
        reason: String,
    },
    /// The recording could not be read (a bad segment header, an unknown `venue:SYMBOL`
    /// with the list of what the recording holds, ...).
    #[error(transparent)]
    Recording(#[from] RecordingError),
    /// A [`Speed::Factor`](super::Speed::Factor) that is not a positive number.
    #[error(
        "replay speed factor {0} is not a positive number; use Speed::Max, or Speed::Factor(f) \
         with f > 0 (1.0 = recorded time, 10.0 = ten times faster)"
    )]
    BadSpeed(f64),
}
