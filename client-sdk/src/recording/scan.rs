//! Finding the blocks of a segment: from its index when the segment was closed cleanly, else by
//! walking block to block with resync after damage; and deciding what recovery cuts. Pure
//! functions over the bytes of one segment file, no I/O.

use super::format::{
    ALIGN, BLOCK_HEADER_LEN, BLOCK_MAGIC, BlockHeader, BlockKind, FOOTER_LEN, Index, IndexEntry,
    check_block, decode_footer, decode_index_payload,
};

/// One thing found in a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// A block whose structure (and, when found by scanning, CRC) checked out.
    Block {
        /// File offset of the block.
        offset: usize,
        /// Its header.
        header: BlockHeader,
    },
    /// Bytes that are not a sound block, followed by a sound block further on.
    Corrupt {
        /// File offset where the damage starts.
        offset: usize,
        /// Bytes skipped up to the next sound block.
        len: usize,
        /// What was wrong at `offset`.
        reason: String,
        /// The kind the damaged block claims, if its header says one.
        claimed: Option<BlockKind>,
    },
}

/// The blocks of a segment, in file order, and how the segment ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Blocks and damaged regions, in file order.
    pub found: Vec<Found>,
    /// File offset of the index block, when a sound footer pointing at it follows it: the
    /// segment was closed.
    pub sealed: Option<usize>,
    /// Bytes after the last sound block (or after the footer) that hold no sound block: a
    /// write torn by a crash, or garbage appended. Offset of their first byte, and why they are
    /// not a block.
    pub torn_tail: Option<(usize, String)>,
}

impl Scan {
    /// The sound blocks, as index entries.
    pub fn entries(&self) -> impl Iterator<Item = IndexEntry> + '_ {
        self.found.iter().filter_map(|f| match f {
            Found::Block { offset, header } => Some(IndexEntry::of(*offset as u64, header)),
            Found::Corrupt { .. } => None,
        })
    }

    /// True when some region in the middle of the segment is damaged.
    pub fn has_corruption(&self) -> bool {
        self.found
            .iter()
            .any(|f| matches!(f, Found::Corrupt { .. }))
    }
}

/// Walks a segment from `data_start` block by block, checking each block's CRC.
///
/// Where the bytes at the expected offset are not a sound block, it searches the following
/// 8-aligned offsets for the next block magic whose header and CRC verify, and reports the
/// region in between as [`Found::Corrupt`]. If no sound block follows, the region is the
/// segment's torn tail. A sound footer pointing at the index block just before it ends the
/// segment ([`Scan::sealed`]); bytes after it are a torn tail too.
pub fn scan(segment: &[u8], data_start: usize) -> Scan {
    let mut found = Vec::new();
    let mut pos = data_start;
    let mut last_index: Option<usize> = None;
    let mut sealed = None;
    let mut torn_tail = None;
    while pos < segment.len() {
        if let Some(index_offset) = last_index
            && segment.len() - pos >= FOOTER_LEN
            && decode_footer(&segment[pos..pos + FOOTER_LEN]) == Some(index_offset as u64)
        {
            let after = pos + FOOTER_LEN;
            if after == segment.len() {
                sealed = Some(index_offset);
                break;
            }
            match find_next_block(segment, after) {
                // Blocks after a footer: not something a writer does, but never drop sound
                // blocks; read on as if the footer were not there.
                Some(next) => {
                    last_index = None;
                    pos = next;
                    continue;
                }
                None => {
                    sealed = Some(index_offset);
                    torn_tail = Some((
                        after,
                        format!("{} bytes after the footer", segment.len() - after),
                    ));
                    break;
                }
            }
        }
        match check_block(segment, pos) {
            Ok(header) => {
                last_index = (header.kind == BlockKind::Index).then_some(pos);
                found.push(Found::Block {
                    offset: pos,
                    header,
                });
                pos += header.block_len();
            }
            Err(reason) => match find_next_block(segment, pos + ALIGN) {
                Some(next) => {
                    found.push(Found::Corrupt {
                        offset: pos,
                        len: next - pos,
                        reason,
                        claimed: claimed_kind(&segment[pos..]),
                    });
                    last_index = None;
                    pos = next;
                }
                None => {
                    torn_tail = Some((pos, reason));
                    break;
                }
            },
        }
    }
    Scan {
        found,
        sealed,
        torn_tail,
    }
}

/// The kind a damaged block's header claims, if it starts with the block magic.
fn claimed_kind(bytes: &[u8]) -> Option<BlockKind> {
    if bytes.len() > 4 && bytes[0..4] == BLOCK_MAGIC {
        BlockKind::from_u8(bytes[4])
    } else {
        None
    }
}

/// The first offset at or after `from` (rounded up to 8) where a sound block starts.
pub fn find_next_block(segment: &[u8], from: usize) -> Option<usize> {
    let mut p = from.next_multiple_of(ALIGN);
    while p + BLOCK_HEADER_LEN <= segment.len() {
        if segment[p..p + 4] == BLOCK_MAGIC && check_block(segment, p).is_ok() {
            return Some(p);
        }
        p += ALIGN;
    }
    None
}

/// A closed segment's blocks as its index lists them, if the footer and the index agree
/// with the file. Only the footer and the index are read (not the block headers, nor the
/// payloads), so this costs the same for any number of blocks.
///
/// Agreement means: a sound footer at the very end points at a sound index block that ends
/// where the footer starts, and the entries tile the bytes from `data_start` to the index
/// exactly, each with a payload length (up to the next entry) and a count within the limits.
///
/// The headers returned are built from the entries, with `crc` 0: the block headers in the
/// file are compared with them, and their CRCs checked, by [`check_indexed_block`] when each
/// block is read.
pub fn indexed(segment: &[u8], data_start: usize) -> Option<(Vec<Found>, Index)> {
    let footer_at = segment.len().checked_sub(FOOTER_LEN)?;
    if footer_at < data_start {
        return None;
    }
    let index_offset = usize::try_from(decode_footer(&segment[footer_at..])?).ok()?;
    if index_offset < data_start || index_offset > footer_at {
        return None;
    }
    let header = check_block(segment, index_offset).ok()?;
    if header.kind != BlockKind::Index || index_offset + header.block_len() != footer_at {
        return None;
    }
    let payload = &segment[index_offset + BLOCK_HEADER_LEN..footer_at];
    let index = decode_index_payload(payload).ok()?;
    if index.entries.len() != header.count as usize {
        return None;
    }
    let mut found = Vec::with_capacity(index.entries.len());
    let mut pos = data_start as u64;
    for (i, e) in index.entries.iter().enumerate() {
        let end = index
            .entries
            .get(i + 1)
            .map_or(index_offset as u64, |next| next.offset);
        if e.offset != pos || end < pos + BLOCK_HEADER_LEN as u64 {
            return None;
        }
        let header = BlockHeader {
            kind: e.kind,
            payload_len: u32::try_from(end - pos - BLOCK_HEADER_LEN as u64).ok()?,
            count: e.count,
            first_ts: e.first_ts,
            last_ts: e.last_ts,
            crc: 0,
        };
        // The same structural checks as a block header in the file gets.
        BlockHeader::decode(&header.encode()).ok()?;
        found.push(Found::Block {
            offset: pos as usize,
            header,
        });
        pos = end;
    }
    (pos == index_offset as u64).then_some((found, index))
}

/// Checks a block listed by an index when it is read: its header in the file must say what
/// the index says (`expected`, from [`indexed`]), and its CRC must match. Returns the header
/// read from the file.
pub fn check_indexed_block(
    segment: &[u8],
    offset: usize,
    expected: &BlockHeader,
) -> Result<BlockHeader, String> {
    let header = check_block(segment, offset)?;
    if (BlockHeader { crc: 0, ..header }) != *expected {
        return Err(format!(
            "block header disagrees with the segment index (header {header:?}, index {expected:?})"
        ));
    }
    Ok(header)
}

/// What opening a segment for append must do to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryPlan {
    /// The segment's blocks.
    pub scan: Scan,
    /// Cut the file to this length (the start of a torn tail), and why.
    pub truncate: Option<(usize, String)>,
    /// Write an index and footer after the last block: the segment is sound but was not
    /// closed. (A segment with damage in the middle is left without an index, so that readers
    /// scan it and report the damage.)
    pub seal: bool,
}

/// Decides how to recover a segment: torn tails are cut, sound unclosed segments are sealed,
/// damage in the middle is left for readers to report.
pub fn plan_recovery(segment: &[u8], data_start: usize) -> RecoveryPlan {
    let scan = scan(segment, data_start);
    let truncate = scan.torn_tail.clone();
    let seal = scan.sealed.is_none() && !scan.has_corruption();
    RecoveryPlan {
        scan,
        truncate,
        seal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::format::{
        BlockBuilder, SegmentMeta, encode_footer, encode_index_block, encode_segment_header,
    };

    /// A segment of `n` frames blocks, each with `per` records; returns the bytes, the data
    /// start and the block offsets.
    fn segment(n: usize, per: usize, seal: bool) -> (Vec<u8>, usize, Vec<usize>) {
        let mut seg = encode_segment_header(0, &SegmentMeta::default());
        let start = seg.len();
        let mut offsets = vec![];
        let mut entries = vec![];
        let mut b = BlockBuilder::new(BlockKind::Frames);
        for i in 0..n {
            for r in 0..per {
                b.push((i * per + r) as u64, &[&[i as u8; 13]]);
            }
            let (bytes, header) = b.finish();
            offsets.push(seg.len());
            entries.push(IndexEntry::of(seg.len() as u64, &header));
            seg.extend_from_slice(bytes);
            b.clear();
        }
        if seal {
            let at = seg.len();
            seg.extend_from_slice(&encode_index_block(&Index {
                entries,
                ..Index::default()
            }));
            seg.extend_from_slice(&encode_footer(at as u64));
        }
        (seg, start, offsets)
    }

    fn blocks(scan: &Scan) -> Vec<usize> {
        scan.entries()
            .filter(|e| e.kind == BlockKind::Frames)
            .map(|e| e.offset as usize)
            .collect()
    }

    #[test]
    fn clean_segments_are_found_by_index_and_by_scan() {
        let (seg, start, offsets) = segment(5, 3, true);
        let s = scan(&seg, start);
        assert_eq!(blocks(&s), offsets);
        assert!(s.sealed.is_some() && s.torn_tail.is_none());
        let (found, index) = indexed(&seg, start).unwrap();
        assert_eq!(found.len(), 5);
        assert_eq!(index.entries.len(), 5);
        let plan = plan_recovery(&seg, start);
        assert_eq!((plan.truncate, plan.seal), (None, false));

        let (seg, start, offsets) = segment(5, 3, false);
        let s = scan(&seg, start);
        assert_eq!(blocks(&s), offsets);
        assert_eq!((s.sealed, s.torn_tail), (None, None));
        assert!(indexed(&seg, start).is_none());
        let plan = plan_recovery(&seg, start);
        assert_eq!((plan.truncate, plan.seal), (None, true));
    }

    #[test]
    fn every_cut_after_the_last_complete_block_is_a_torn_tail() {
        let (seg, start, offsets) = segment(4, 3, true);
        let block_len = offsets[1] - offsets[0];
        let last = offsets[3];
        let index_at = last + block_len;
        let footer_at = seg.len() - FOOTER_LEN;
        for cut in last + 1..seg.len() {
            let plan = plan_recovery(&seg[..cut], start);
            let complete: Vec<usize> = offsets
                .iter()
                .copied()
                .filter(|&o| o + block_len <= cut)
                .collect();
            assert_eq!(blocks(&plan.scan), complete, "cut {cut}");
            let expect_torn = match cut {
                c if c < index_at => Some(last),
                c if c == index_at || c == footer_at => None,
                c if c < footer_at => Some(index_at),
                _ => Some(footer_at),
            };
            assert_eq!(plan.truncate.map(|t| t.0), expect_torn, "cut {cut}");
            assert!(!plan.scan.has_corruption(), "cut {cut}");
            assert!(plan.seal, "cut {cut}");
        }
    }

    #[test]
    fn garbage_after_the_last_block_is_a_torn_tail() {
        for seal in [false, true] {
            let (mut seg, start, offsets) = segment(3, 2, seal);
            let end = seg.len();
            seg.extend_from_slice(&[0xAB; 100]);
            let plan = plan_recovery(&seg, start);
            assert_eq!(plan.truncate.as_ref().map(|t| t.0), Some(end));
            assert_eq!(blocks(&plan.scan), offsets);
            // A closed segment stays closed: only the garbage after its footer goes.
            assert_eq!(plan.seal, !seal);
            // Zeros too (a file extended by the file system without its data).
            seg.truncate(end);
            seg.extend_from_slice(&[0; 4096]);
            assert_eq!(plan_recovery(&seg, start).truncate.map(|t| t.0), Some(end));
        }
    }

    #[test]
    fn blocks_after_a_footer_are_not_dropped() {
        let (mut seg, start, mut offsets) = segment(2, 2, true);
        let (more, _, more_offsets) = segment(1, 2, false);
        let shift = seg.len() - start;
        seg.extend_from_slice(&more[start..]);
        offsets.extend(more_offsets.iter().map(|o| o + shift));
        let s = scan(&seg, start);
        assert_eq!(blocks(&s), offsets);
        assert_eq!((s.sealed, s.torn_tail), (None, None));
    }

    #[test]
    fn damage_in_the_middle_is_skipped_with_resync_and_not_cut() {
        let (seg, start, offsets) = segment(5, 3, true);
        // A flipped payload byte, then a flipped length byte.
        for at in [offsets[2] + BLOCK_HEADER_LEN + 5, offsets[2] + 9] {
            let mut bad = seg.clone();
            bad[at] ^= 0x40;
            let s = scan(&bad, start);
            let corrupt: Vec<usize> = s
                .found
                .iter()
                .filter_map(|f| match f {
                    Found::Corrupt { offset, .. } => Some(*offset),
                    Found::Block { .. } => None,
                })
                .collect();
            assert_eq!(corrupt, vec![offsets[2]]);
            let mut expect = offsets.clone();
            expect.remove(2);
            assert_eq!(blocks(&s), expect);
            assert!(s.sealed.is_some());
            let plan = plan_recovery(&bad, start);
            assert_eq!((plan.truncate.is_some(), plan.seal), (false, false));
        }
    }

    #[test]
    fn index_entries_are_checked_against_headers_when_read() {
        let (seg, start, offsets) = segment(3, 3, true);
        let (found, _) = indexed(&seg, start).unwrap();
        let expected = |i: usize| match &found[i] {
            Found::Block { header, .. } => *header,
            Found::Corrupt { .. } => unreachable!(),
        };
        for (i, &o) in offsets.iter().enumerate() {
            assert!(check_indexed_block(&seg, o, &expected(i)).is_ok());
        }
        // A header field the index also holds, a length field, a payload byte: the index is
        // still used (it is sound), and the block is found damaged when read.
        for at in [
            offsets[1] + 16,
            offsets[1] + 9,
            offsets[1] + BLOCK_HEADER_LEN + 1,
        ] {
            let mut bad = seg.clone();
            bad[at] ^= 1;
            let (found, _) = indexed(&bad, start).unwrap();
            assert_eq!(found.len(), 3);
            assert!(check_indexed_block(&bad, offsets[1], &expected(1)).is_err());
            assert!(check_indexed_block(&bad, offsets[2], &expected(2)).is_ok());
        }
        // A damaged index is not used.
        let index_at = seg.len() - FOOTER_LEN - 8;
        let mut bad = seg.clone();
        bad[index_at] ^= 1;
        assert!(indexed(&bad, start).is_none());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn mutated_segments_never_panic(
            idx in proptest::prelude::any::<proptest::sample::Index>(),
            val in proptest::prelude::any::<u8>(),
            cut in proptest::prelude::any::<proptest::sample::Index>(),
        ) {
            let (mut seg, start, _) = segment(3, 2, true);
            let i = idx.index(seg.len());
            seg[i] = val;
            let n = cut.index(seg.len() + 1);
            let _ = plan_recovery(&seg[..n], start);
            let _ = indexed(&seg[..n], start);
            let _ = plan_recovery(&seg, start);
            let _ = indexed(&seg, start);
        }
    }
}
