//! Errors of the recording module. Each names the file (and byte offset, where there is one)
//! and says what to do.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use super::format::FORMAT_VERSION;
use crate::symbol::BadSymbol;
use crate::wire::WireError;

/// Why a recording could not be opened, written or queried.
#[derive(Debug, Error)]
pub enum RecordingError {
    /// A file-system operation failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("open", "write to", "truncate"...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A segment file does not start with a sound header.
    #[error(
        "{}: not a readable tickwire segment ({reason}, at byte {offset}); move the file out of \
         the recording directory or restore it from a copy, then retry",
        path.display()
    )]
    BadHeader {
        /// The segment file.
        path: PathBuf,
        /// Where the defect is.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A segment file was written by a format version this build does not read.
    #[error(
        "{}: recording format version {found}, this build reads version {FORMAT_VERSION}; read it \
         with a tickwire release that supports version {found}",
        path.display()
    )]
    UnsupportedVersion {
        /// The segment file.
        path: PathBuf,
        /// The version it declares.
        found: u16,
    },
    /// Two segment files carry the same number.
    #[error(
        "segment number {number} appears twice ({} and {}); move the one that does not belong \
         out of the recording directory",
        first.display(),
        second.display()
    )]
    DuplicateSegment {
        /// The number.
        number: u64,
        /// One file.
        first: PathBuf,
        /// The other.
        second: PathBuf,
    },
    /// `RecordingWriter::open` on a directory with no segment file.
    #[error(
        "no recording in {}: it has no seg-*.twrec file; start one with RecordingWriter::create",
        dir.display()
    )]
    NoRecording {
        /// The directory.
        dir: PathBuf,
    },
    /// `RecordingWriter::create` on a directory that already holds segment files.
    #[error(
        "{} already holds a recording ({segments} segment files); append to it with \
         RecordingWriter::open, or choose an empty directory",
        dir.display()
    )]
    AlreadyExists {
        /// The directory.
        dir: PathBuf,
        /// How many segment files it holds.
        segments: usize,
    },
    /// The bytes given to `append_encoded` are not one valid frame.
    #[error(
        "cannot record invalid frame bytes ({0}); append_encoded takes the bytes of one frame as \
         wire::encode or wire::Encoder produce them"
    )]
    InvalidFrame(#[source] WireError),
    /// A record larger than the format allows.
    #[error("a record of {len} bytes is larger than the recording format's {max}-byte limit")]
    RecordTooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Writer options that cannot work.
    #[error("invalid recording writer options: {0}")]
    BadOptions(String),
    /// A `venue:SYMBOL` name that is not in the recording's instrument lists.
    #[error("{name} is not in this recording's instrument lists; known instruments: {known}")]
    UnknownInstrument {
        /// The name asked for.
        name: String,
        /// The names the recording knows (possibly shortened).
        known: String,
    },
    /// A name that is not `venue:SYMBOL`.
    #[error(transparent)]
    BadSymbol(#[from] BadSymbol),
}

impl RecordingError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| RecordingError::Io {
            action,
            path,
            source,
        }
    }
}

/// A block whose bytes are damaged: reported in place of its records while reading, and
/// reading goes on with the next sound block.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "corrupt block in {} at byte {offset}: {reason}; its records are skipped and reading goes on \
     with the next block (restore the file from a copy to get them back)",
    file.display()
)]
pub struct CorruptBlock {
    /// The segment file.
    pub file: PathBuf,
    /// File offset of the damaged block (or of the damaged record inside a sound block).
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}
