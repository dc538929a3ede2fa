//! Segment file names and the listing of a recording directory.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::error::RecordingError;

/// The file name of segment `number` whose first record is filed under `first_ts`:
/// `seg-<number, 6 digits or more>-<first_ts>.twrec`.
pub fn segment_name(number: u64, first_ts: u64) -> String {
    format!("seg-{number:06}-{first_ts}.twrec")
}

/// Parses a segment file name into (number, first_ts).
pub fn parse_segment_name(name: &str) -> Option<(u64, u64)> {
    let rest = name.strip_prefix("seg-")?.strip_suffix(".twrec")?;
    let (number, ts) = rest.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(number) || !digits(ts) {
        return None;
    }
    Some((number.parse().ok()?, ts.parse().ok()?))
}

/// The segment files of a recording directory, in number order. Other files are ignored.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, RecordingError> {
    let mut by_number: BTreeMap<u64, PathBuf> = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(RecordingError::io("list", dir))?;
    for entry in entries {
        let entry = entry.map_err(RecordingError::io("list", dir))?;
        let name = entry.file_name();
        let Some((number, _)) = name.to_str().and_then(parse_segment_name) else {
            continue;
        };
        let path = entry.path();
        if let Some(first) = by_number.insert(number, path.clone()) {
            return Err(RecordingError::DuplicateSegment {
                number,
                first,
                second: path,
            });
        }
    }
    Ok(by_number.into_iter().collect())
}

/// Maps a segment file read-only (`None` for an empty file, which cannot be mapped).
pub fn map_file(file: &File, len: u64, path: &Path) -> Result<Option<Mmap>, RecordingError> {
    if len == 0 {
        return Ok(None);
    }
    // SAFETY: the map is only ever read, as `&[u8]`. Segment files are append-only: writers
    // never change bytes already written, they only add bytes after them (which this map does
    // not cover). The one exception is `RecordingWriter::open`, which may cut a torn tail off
    // the last segment; its docs forbid running it while a reader has the recording open.
    // Truncation or rewriting by another program while mapped is outside what any mmap reader
    // can defend against; short of that, every byte read through the map is still treated as
    // untrusted (lengths bounded, CRCs checked, frames validated).
    let map = unsafe { Mmap::map(file) }.map_err(RecordingError::io("memory-map", path))?;
    Ok(Some(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_roundtrip() {
        assert_eq!(segment_name(3, 17), "seg-000003-17.twrec");
        assert_eq!(parse_segment_name("seg-000003-17.twrec"), Some((3, 17)));
        assert_eq!(
            parse_segment_name(&segment_name(12_345_678, u64::MAX)),
            Some((12_345_678, u64::MAX))
        );
        for bad in [
            "seg-1.twrec",
            "seg--1.twrec",
            "seg-1-x.twrec",
            "seg-1-2.twrec.tmp",
            "seg-+1-2.twrec",
        ] {
            assert_eq!(parse_segment_name(bad), None, "{bad}");
        }
    }
}
