//! Helpers shared by the SDK's recording and replay tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use tickwire_sdk::recording::{RecordingWriter, WriterOptions, frame_time};
use tickwire_sdk::wire::{Frame, InstrumentInfo};

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh, empty directory named after the test.
    pub fn new(name: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("tickwire-sdk-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A fresh sub-directory.
    pub fn sub(&self, name: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deterministic pseudo-random numbers (xorshift), so a child process makes the same frames.
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A frame's recorded time (the recording's rule).
pub fn ts_of(f: &Frame) -> u64 {
    frame_time(f.ts_publish, f.ts_recv)
}

/// Writes `frames` as a new recording in `dir`, closed.
pub fn write_all(
    dir: &Path,
    options: WriterOptions,
    instruments: &[InstrumentInfo],
    frames: &[Frame],
) {
    let mut w = RecordingWriter::create(dir, options, instruments).unwrap();
    for f in frames {
        w.append_frame(f).unwrap();
    }
    w.close().unwrap();
}
