//! Recordings on real files in a temporary directory: round trips across blocks and segments,
//! torn tails at every offset, a writer process killed with SIGKILL, flipped bytes, bad headers,
//! filters against a naive filter, and arbitrary bytes as a segment file.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use tickwire_sdk::recording::format::{BLOCK_HEADER_LEN, BlockKind, decode_segment_header};
use tickwire_sdk::recording::scan::{Found, scan};
use tickwire_sdk::recording::{
    CorruptBlock, Filter, FsyncPolicy, Recording, RecordingError, RecordingWriter, TimeRange,
    WriterOptions,
};
use tickwire_sdk::wire::{
    Body, BookDelta, BookSide, BookSnapshot, Definition, Frame, InstrumentInfo, Level, Quote, Side,
    Status, StatusCode, Trade, TradeId, TradeSummary, Venue, encode, flags, instrument_id,
};

mod common;

use common::{Rng, TempDir, ts_of, write_all};

// ---------------------------------------------------------------------------------------------
// Helpers

const SYMBOLS: [(Venue, &str); 5] = [
    (Venue::Binance, "BTCUSDT"),
    (Venue::Binance, "ETHUSDT"),
    (Venue::Coinbase, "BTC-USD"),
    (Venue::Kraken, "XBT/USD"),
    (Venue::Okx, "BTC-USDT-SWAP"),
];

fn instruments() -> Vec<InstrumentInfo> {
    SYMBOLS[..3]
        .iter()
        .map(|(v, s)| InstrumentInfo::new(*v, s, 2, 6))
        .collect()
}

/// Frame `i` of a varied stream: every kind, several venues and instruments, timestamps that
/// mostly go forward (by `ts_publish`, or `ts_recv` when unpublished) with some jitter.
fn varied_frame(rng: &mut Rng, i: u64, ts: u64) -> Frame {
    let (venue, symbol) = SYMBOLS[rng.below(SYMBOLS.len() as u64) as usize];
    let id = instrument_id(venue, symbol);
    let px = 1_000_000_000 * (100 + rng.below(1000) as i64);
    let body = match rng.below(20) {
        0..=5 => Body::Trade(Trade {
            price: px,
            qty: 1 + rng.below(1 << 40) as i64,
            side: [Side::Buy, Side::Sell, Side::Unknown][rng.below(3) as usize],
            trade_id: match rng.below(3) {
                0 => TradeId::None,
                1 => TradeId::Num(i),
                _ => TradeId::Text(format!("t-{i:x}-{}", rng.next())),
            },
        }),
        6..=9 => Body::Quote(Quote {
            bid_px: px,
            bid_qty: 5,
            ask_px: px + 1,
            ask_qty: 7,
        }),
        10..=14 => Body::BookDelta(BookDelta {
            side: if rng.below(2) == 0 {
                BookSide::Bid
            } else {
                BookSide::Ask
            },
            price: px,
            qty: rng.below(100) as i64,
        }),
        15 => Body::BookSnapshot(BookSnapshot {
            bids: (0..rng.below(40))
                .map(|l| Level {
                    price: px - l as i64,
                    qty: 1,
                })
                .collect(),
            asks: (0..rng.below(40))
                .map(|l| Level {
                    price: px + l as i64,
                    qty: 2,
                })
                .collect(),
        }),
        16 => Body::Status(Status {
            code: StatusCode::Gap,
            detail: format!("missing {i}"),
        }),
        17 => Body::Heartbeat,
        18 => Body::Definition(Definition {
            symbol: symbol.to_string(),
            price_decimals: (i % 9) as u8,
            qty_decimals: 4,
        }),
        _ => Body::TradeSummary(Box::new(TradeSummary {
            count: 3,
            volume: 1 << 70,
            vwap: px,
            high: px + 5,
            low: px - 5,
            last: Trade {
                price: px,
                qty: 1,
                side: Side::Buy,
                trade_id: TradeId::Num(i),
            },
        })),
    };
    let mut f = Frame::new(venue, id, ts.saturating_sub(500), ts, body);
    f.seq = i + 1;
    if rng.below(4) != 0 {
        f.ts_publish = ts + rng.below(50);
    }
    if rng.below(7) == 0 {
        f = f.with_flags(flags::LAST);
    }
    f
}

/// `n` varied frames starting at `t0`, about 1 µs apart.
fn varied_frames(seed: u64, n: usize, t0: u64) -> Vec<Frame> {
    let mut rng = Rng(seed | 1);
    let mut ts = t0;
    (0..n as u64)
        .map(|i| {
            ts += 500 + rng.below(1000);
            varied_frame(&mut rng, i, ts)
        })
        .collect()
}

fn small_options() -> WriterOptions {
    WriterOptions {
        max_segment_bytes: 48 << 10,
        max_segment_age: None,
        records_per_block: 40,
        max_block_bytes: 6 << 10,
        keep_raw: false,
        fsync: FsyncPolicy::Never,
    }
}

/// Every item of `frames(filter)`: the frames' bytes, and the damage reported.
fn read(dir: &Path, filter: Filter) -> (Vec<Vec<u8>>, Vec<CorruptBlock>) {
    let rec = Recording::open(dir).unwrap();
    let mut ok = vec![];
    let mut bad = vec![];
    for item in rec.frames(filter) {
        match item {
            Ok(f) => ok.push(f.bytes().to_vec()),
            Err(c) => bad.push(c),
        }
    }
    (ok, bad)
}

/// Asserts two frame lists are equal, printing where they differ rather than every byte.
#[track_caller]
fn same(got: &(Vec<Vec<u8>>, Vec<CorruptBlock>), want: &[Vec<u8>], ctx: &str) {
    assert_eq!(got.1, vec![], "{ctx}: damage reported");
    let first_diff = got.0.iter().zip(want).position(|(a, b)| a != b);
    assert!(
        got.0.len() == want.len() && first_diff.is_none(),
        "{ctx}: got {} frames, want {}, first difference at {first_diff:?}",
        got.0.len(),
        want.len()
    );
}

fn encoded(frames: &[Frame]) -> Vec<Vec<u8>> {
    frames.iter().map(encode).collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "twrec"))
        .collect();
    v.sort();
    v
}

/// (offset, block length, header) of the sound blocks of a segment file, by scanning.
fn blocks_of(path: &Path, kind: BlockKind) -> Vec<(usize, usize, u64, u64)> {
    let bytes = std::fs::read(path).unwrap();
    let header = decode_segment_header(&bytes).unwrap();
    scan(&bytes, header.data_start())
        .found
        .iter()
        .filter_map(|f| match f {
            Found::Block { offset, header } if header.kind == kind => {
                Some((*offset, header.block_len(), header.first_ts, header.last_ts))
            }
            _ => None,
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for p in segment_files(from) {
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

fn flip(path: &Path, at: usize, mask: u8) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= mask;
    std::fs::write(path, bytes).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Round trip

#[test]
fn round_trip_across_blocks_and_segments_is_byte_identical() {
    let tmp = TempDir::new("roundtrip");
    let mut frames = varied_frames(7, 3000, 1_700_000_000_000_000_000);
    // A two-second pause in the middle: the age limit (1 s) must start a new segment there.
    let jump_at = 2000;
    for f in &mut frames[jump_at..] {
        f.ts_recv += 2_000_000_000;
        f.ts_exchange += 2_000_000_000;
        if f.ts_publish != 0 {
            f.ts_publish += 2_000_000_000;
        }
    }
    let options = WriterOptions {
        max_segment_age: Some(Duration::from_secs(1)),
        keep_raw: true,
        ..small_options()
    };
    let mut w = RecordingWriter::create(tmp.path(), options.clone(), &instruments()).unwrap();
    let mut raws = vec![];
    for (i, f) in frames.iter().enumerate() {
        // Both ways in: frames, and bytes encoded elsewhere.
        if i % 2 == 0 {
            w.append_frame(f).unwrap();
        } else {
            w.append_encoded(&encode(f)).unwrap();
        }
        if i % 10 == 0 {
            let raw = format!("{{\"e\":\"trade\",\"i\":{i}}}").into_bytes();
            w.append_raw(f.venue, f.ts_recv, &raw).unwrap();
            raws.push((f.ts_recv, f.venue, raw));
        }
        if i % 777 == 0 {
            w.flush().unwrap();
        }
    }
    w.close().unwrap();

    let rec = Recording::open(tmp.path()).unwrap();
    let segments: Vec<_> = rec.segments().cloned().collect();
    assert!(segments.len() >= 3, "{} segments", segments.len());
    assert!(
        segments.iter().all(|s| s.indexed),
        "every segment has its index after close"
    );
    assert!(
        segments
            .iter()
            .all(|s| s.corrupt_blocks == 0 && s.torn_tail.is_none())
    );
    assert_eq!(
        segments.iter().map(|s| s.frames).sum::<u64>(),
        frames.len() as u64
    );
    // Rotation by size: segments before the pause end once they pass the size limit.
    let before_jump = &segments[..segments.len() - 1];
    assert!(
        before_jump
            .iter()
            .filter(|s| s.bytes >= options.max_segment_bytes)
            .count()
            >= 2
    );
    // Rotation by time: a segment starts exactly at the first frame after the pause.
    let jump_ts = ts_of(&frames[jump_at]);
    let starts: Vec<u64> = segments
        .iter()
        .map(|s| {
            let name = s.path.file_name().unwrap().to_str().unwrap();
            tickwire_sdk::recording::parse_segment_name(name).unwrap().1
        })
        .collect();
    assert!(starts.contains(&jump_ts), "{starts:?} lacks {jump_ts}");
    assert_eq!(starts[0], ts_of(&frames[0]));

    // Byte-identical, in order, and the same frames as owned values.
    let got: Vec<_> = rec.frames(Filter::all()).map(Result::unwrap).collect();
    assert_eq!(got.len(), frames.len());
    for (g, f) in got.iter().zip(&frames) {
        assert_eq!(g.bytes(), &encode(f)[..]);
        assert_eq!(&g.to_frame(), f);
        assert_eq!(g.ts(), ts_of(f));
        assert_eq!(g.instrument(), f.instrument);
    }
    let raw_got: Vec<_> = rec
        .raw_frames(TimeRange::ALL)
        .map(|r| {
            let r = r.unwrap();
            (r.ts_recv, r.venue, r.bytes.to_vec())
        })
        .collect();
    assert_eq!(raw_got, raws);

    // Definitions seen while recording reach the following headers and the index.
    let defined: HashSet<u32> = frames
        .iter()
        .filter(|f| matches!(f.body, Body::Definition(_)))
        .map(|f| f.instrument)
        .collect();
    let known: HashSet<u32> = rec.instruments().iter().map(|i| i.id).collect();
    assert!(defined.is_subset(&known));
    let last_header = segments.last().unwrap().header.as_ref().unwrap();
    assert!(last_header.meta.instruments.len() > instruments().len());
    assert!(last_header.has_raw());
}

// ---------------------------------------------------------------------------------------------
// Torn tails

#[test]
fn torn_tail_at_every_offset_of_the_last_block_is_cut_and_appending_continues() {
    let tmp = TempDir::new("torn");
    let src = tmp.sub("src");
    let frames = varied_frames(11, 70, 1_000_000);
    let options = WriterOptions {
        max_segment_bytes: 4 << 10,
        records_per_block: 5,
        ..small_options()
    };
    write_all(&src, options.clone(), &instruments(), &frames);
    let files = segment_files(&src);
    assert!(files.len() >= 2);
    let last = files.last().unwrap();
    let last_len = std::fs::metadata(last).unwrap().len() as usize;
    let blocks = blocks_of(last, BlockKind::Frames);
    let &(last_block, last_block_len, _, _) = blocks.last().unwrap();
    let all = encoded(&frames);
    let in_last_block = {
        let rec = Recording::open(&src).unwrap();
        let last_segment = rec.segments().len() - 1;
        rec.frames(Filter::all())
            .map(Result::unwrap)
            .filter(|f| f.segment() == last_segment && f.offset() as usize >= last_block)
            .count()
    };
    assert!(in_last_block > 0);

    let work = tmp.path().join("work");
    let more = varied_frames(12, 3, 5_000_000);
    // Every offset inside the last frames block, its index and its footer.
    for cut in last_block..last_len {
        copy_dir(&src, &work);
        let seg = work.join(last.file_name().unwrap());
        std::fs::OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(cut as u64)
            .unwrap();
        let complete = if cut >= last_block + last_block_len {
            all.clone()
        } else {
            all[..all.len() - in_last_block].to_vec()
        };
        // Readers skip a torn tail of the last segment even before recovery.
        same(
            &read(&work, Filter::all()),
            &complete,
            &format!("cut {cut}"),
        );

        let mut w = RecordingWriter::open(&work, options.clone()).unwrap();
        let report = &w.recovery()[0];
        assert!(report.corrupt.is_empty(), "cut {cut}: {report}");
        let boundaries = [last_block, last_block + last_block_len, last_len - 16];
        if boundaries.contains(&cut) {
            // At a block boundary: nothing torn, the segment just lacks its footer.
            assert_eq!(report.cut, None, "cut {cut}");
        } else {
            let c = report.cut.as_ref().unwrap();
            assert!(
                c.bytes > 0 && c.offset + c.bytes == cut as u64,
                "cut {cut}: {report}"
            );
        }
        assert!(
            report.sealed,
            "cut {cut}: the recovered segment gets its index"
        );
        same(
            &read(&work, Filter::all()),
            &complete,
            &format!("cut {cut}"),
        );
        let rec = Recording::open(&work).unwrap();
        assert!(rec.segments().all(|s| s.indexed && s.torn_tail.is_none()));
        drop(rec);

        // Appending after recovery: the new frames follow, in a new segment.
        if cut % 16 == 0 || cut == last_block + 1 || cut == last_len - 1 {
            for f in &more {
                w.append_frame(f).unwrap();
            }
            w.close().unwrap();
            let mut expect = complete.clone();
            expect.extend(encoded(&more));
            same(
                &read(&work, Filter::all()),
                &expect,
                &format!("cut {cut}, appended"),
            );
            assert_eq!(segment_files(&work).len(), files.len() + 1);
        }
    }
}

#[test]
fn garbage_after_the_end_is_cut_exactly() {
    let tmp = TempDir::new("garbage");
    let frames = varied_frames(13, 200, 1_000_000);
    for (close, garbage) in [
        (true, vec![0x5Au8; 1000]),
        (true, vec![0u8; 333]),
        (false, b"TWBK garbage that starts like a block".to_vec()),
    ] {
        let dir = tmp.sub(&format!("g{close}{}", garbage.len()));
        let mut w = RecordingWriter::create(&dir, small_options(), &[]).unwrap();
        for f in &frames {
            w.append_frame(f).unwrap();
        }
        if close {
            w.close().unwrap();
        } else {
            // Dropped: pending frames are written, no index (as after a crash).
            drop(w);
        }
        let last = segment_files(&dir).pop().unwrap();
        let len = std::fs::metadata(&last).unwrap().len();
        let mut bytes = std::fs::read(&last).unwrap();
        bytes.extend_from_slice(&garbage);
        std::fs::write(&last, bytes).unwrap();
        same(&read(&dir, Filter::all()), &encoded(&frames), "garbage");

        let w = RecordingWriter::open(&dir, small_options()).unwrap();
        let report = w.recovery()[0].clone();
        let cut = report.cut.unwrap();
        assert_eq!((cut.offset, cut.bytes), (len, garbage.len() as u64));
        assert_eq!(report.sealed, !close);
        w.close().unwrap();
        same(&read(&dir, Filter::all()), &encoded(&frames), "garbage");
        // A closed, clean recording needs nothing the next time.
        let w = RecordingWriter::open(&dir, small_options()).unwrap();
        assert!(w.recovery()[0].is_clean(), "{}", w.recovery()[0]);
    }
}

// ---------------------------------------------------------------------------------------------
// A writer killed with SIGKILL

const CHILD_ENV: &str = "TICKWIRE_RECORDING_CHILD_DIR";
const CHILD_SEED: u64 = 99;
const CHILD_T0: u64 = 1_000_000_000;

/// Not a test of its own: the writer process of `killed_writer_keeps_every_flushed_frame`
/// (this test binary, run again with `CHILD_ENV` set). Without it, it does nothing.
#[test]
fn recording_writer_child_process() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let options = WriterOptions {
        max_segment_bytes: 256 << 10,
        records_per_block: 64,
        ..small_options()
    };
    let mut w = RecordingWriter::create(&dir, options, &instruments()).unwrap();
    let mut rng = Rng(CHILD_SEED);
    let mut ts = CHILD_T0;
    let started = Instant::now();
    // Bounded, in case the parent never kills it.
    for i in 0..1_000_000u64 {
        ts += 500 + rng.below(1000);
        w.append_frame(&varied_frame(&mut rng, i, ts)).unwrap();
        if i % 37 == 36 {
            w.flush().unwrap();
            println!("flushed {}", i + 1);
        }
        if started.elapsed() > Duration::from_secs(20) {
            break;
        }
    }
}

#[test]
fn killed_writer_keeps_every_flushed_frame() {
    let tmp = TempDir::new("killed");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "recording_writer_child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut flushed = 0u64;
    let mut killed = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        // (The last line may be cut short by the kill.)
        if let Some(n) = line.strip_prefix("flushed ").and_then(|n| n.parse().ok()) {
            flushed = flushed.max(n);
            // Killed while it keeps appending: mid-block, or mid-write.
            if flushed >= 4000 && !killed {
                child.kill().unwrap();
                killed = true;
            }
        }
    }
    child.wait().unwrap();
    assert!(
        killed,
        "the child ended before it was killed (flushed {flushed})"
    );

    let w = RecordingWriter::open(tmp.path(), small_options()).unwrap();
    for r in w.recovery() {
        assert!(r.corrupt.is_empty(), "{r}");
    }
    w.close().unwrap();
    let (got, bad) = read(tmp.path(), Filter::all());
    assert_eq!(bad, vec![]);
    assert!(
        got.len() as u64 >= flushed,
        "{} frames read, {flushed} reported flushed",
        got.len()
    );
    // What is there is exactly the child's stream, in order.
    let mut rng = Rng(CHILD_SEED);
    let mut ts = CHILD_T0;
    for (i, g) in got.iter().enumerate() {
        ts += 500 + rng.below(1000);
        assert_eq!(
            g,
            &encode(&varied_frame(&mut rng, i as u64, ts)),
            "frame {i}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Damage

/// Writes 600 frames in blocks of 40 (one segment), closed or not; returns the segment file.
fn one_segment(dir: &Path, frames: &[Frame], close: bool) -> PathBuf {
    let options = WriterOptions {
        max_segment_bytes: 1 << 30,
        ..small_options()
    };
    let mut w = RecordingWriter::create(dir, options, &[]).unwrap();
    for f in frames {
        w.append_frame(f).unwrap();
    }
    if close {
        w.close().unwrap();
    } else {
        drop(w);
    }
    segment_files(dir).pop().unwrap()
}

/// The frames of `frames` whose records lie outside `[start, end)` of the file.
fn outside(dir: &Path, start: usize, end: usize) -> Vec<Vec<u8>> {
    let rec = Recording::open(dir).unwrap();
    rec.frames(Filter::all())
        .map(Result::unwrap)
        .filter(|f| !(start..end).contains(&(f.offset() as usize)))
        .map(|f| f.bytes().to_vec())
        .collect()
}

#[test]
fn flipped_payload_byte_reports_one_corrupt_block_and_the_rest_is_read() {
    let tmp = TempDir::new("flip");
    let frames = varied_frames(21, 600, 1_000_000);
    for close in [true, false] {
        let dir = tmp.sub(&format!("c{close}"));
        let seg = one_segment(&dir, &frames, close);
        let blocks = blocks_of(&seg, BlockKind::Frames);
        assert!(blocks.len() >= 10);
        let (off, len, _, _) = blocks[blocks.len() / 2];
        let expect = outside(&dir, off, off + len);
        assert!(expect.len() < frames.len());

        flip(&seg, off + BLOCK_HEADER_LEN + len / 3, 0x20);
        let (got, bad) = read(&dir, Filter::all());
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert_eq!(
            (bad[0].file.as_path(), bad[0].offset),
            (seg.as_path(), off as u64)
        );
        let msg = bad[0].to_string();
        assert!(msg.contains(seg.to_str().unwrap()) && msg.contains(&off.to_string()));
        same(&(got, vec![]), &expect, "flipped payload");
        // Recovery leaves damage in the middle alone (nothing is cut).
        let w = RecordingWriter::open(&dir, small_options()).unwrap();
        let r = &w.recovery()[0];
        assert_eq!(r.cut, None);
        assert_eq!(r.corrupt.len(), 1, "{r}");
        assert!(!r.sealed, "a damaged segment is left for readers to scan");
        drop(w);
        let (got, bad) = read(&dir, Filter::all());
        assert_eq!(bad.len(), 1);
        same(&(got, vec![]), &expect, "after recovery");
    }
}

#[test]
fn flipped_length_field_is_reported_and_the_reader_resyncs() {
    let tmp = TempDir::new("flip-len");
    let frames = varied_frames(22, 600, 1_000_000);
    // Low byte (a small shift), a middle byte (past the end of the file), the top bit.
    for (i, (at, mask)) in [(8, 0x08u8), (10, 0x01), (11, 0x80), (9, 0x01)]
        .into_iter()
        .enumerate()
    {
        let dir = tmp.sub(&format!("l{i}"));
        let seg = one_segment(&dir, &frames, true);
        let blocks = blocks_of(&seg, BlockKind::Frames);
        let (off, len, _, _) = blocks[3];
        let expect = outside(&dir, off, off + len);
        flip(&seg, off + at, mask);
        let (got, bad) = read(&dir, Filter::all());
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert_eq!(bad[0].offset, off as u64);
        same(&(got, vec![]), &expect, &format!("flip {at}"));
    }
}

#[test]
fn time_filter_skips_blocks_without_reading_their_payload() {
    let tmp = TempDir::new("skip");
    let frames = varied_frames(23, 600, 1_000_000);
    let seg = one_segment(tmp.path(), &frames, true);
    let blocks = blocks_of(&seg, BlockKind::Frames);
    let (off, len, _, last_ts) = blocks[2];
    flip(&seg, off + BLOCK_HEADER_LEN + 8, 0xFF);
    // Frames after that block's last timestamp: its payload is never read, so its damage
    // does not show (and nothing else is lost).
    let later = Filter::all().from(last_ts + 1);
    let (got, bad) = read(tmp.path(), later.clone());
    let expect: Vec<Vec<u8>> = frames
        .iter()
        .filter(|f| ts_of(f) > last_ts)
        .map(encode)
        .collect();
    same(&(got, bad), &expect, "later");
    // A range that covers it reads it and reports it.
    let (_, bad) = read(tmp.path(), Filter::all().to(last_ts + 1));
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].offset, off as u64);
    let _ = len;
}

#[test]
fn bad_segment_header_is_an_error_naming_the_file() {
    let tmp = TempDir::new("header");
    let frames = varied_frames(24, 400, 1_000_000);
    let src = tmp.sub("src");
    write_all(&src, small_options(), &instruments(), &frames);
    let files = segment_files(&src);
    assert!(files.len() >= 2);
    let name = files[0].file_name().unwrap();
    let work = tmp.path().join("work");

    // A flipped metadata byte: the header CRC fails.
    copy_dir(&src, &work);
    flip(&work.join(name), 30, 0x01);
    let err = Recording::open(&work).unwrap_err();
    assert!(matches!(err, RecordingError::BadHeader { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(name.to_str().unwrap()), "{msg}");
    assert!(msg.contains("move the file"), "{msg}");
    assert!(matches!(
        RecordingWriter::open(&work, small_options()),
        Ok(_) | Err(RecordingError::BadHeader { .. })
    ));

    // A future version.
    copy_dir(&src, &work);
    flip(&work.join(name), 8, 0x02);
    let err = Recording::open(&work).unwrap_err();
    assert!(
        matches!(err, RecordingError::UnsupportedVersion { found: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains(name.to_str().unwrap()));

    // Not a segment at all.
    copy_dir(&src, &work);
    std::fs::write(work.join(name), b"hello, world").unwrap();
    let err = Recording::open(&work).unwrap_err();
    assert!(err.to_string().contains(name.to_str().unwrap()), "{err}");

    // The last segment cut inside its header (torn while being created): readers skip it,
    // recovery removes it.
    copy_dir(&src, &work);
    let last = work.join(files.last().unwrap().file_name().unwrap());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(20)
        .unwrap();
    let rec = Recording::open(&work).unwrap();
    assert!(rec.segments().last().unwrap().torn_tail.is_some());
    let before = rec.frames(Filter::all()).count();
    drop(rec);
    let w = RecordingWriter::open(&work, small_options()).unwrap();
    assert!(w.recovery()[0].removed);
    assert!(w.recovery()[1].is_clean());
    drop(w);
    assert!(!last.exists());
    let (got, bad) = read(&work, Filter::all());
    assert_eq!((got.len(), bad.len()), (before, 0));
}

#[test]
fn a_torn_tail_in_a_segment_that_is_not_the_last_is_reported() {
    let tmp = TempDir::new("torn-middle");
    let frames = varied_frames(25, 400, 1_000_000);
    let options = WriterOptions {
        max_segment_bytes: 16 << 10,
        ..small_options()
    };
    write_all(tmp.path(), options, &instruments(), &frames);
    let files = segment_files(tmp.path());
    assert!(files.len() >= 2);
    let first = &files[0];
    let &(off, len, _, _) = blocks_of(first, BlockKind::Frames).last().unwrap();
    let expect = {
        let rec = Recording::open(tmp.path()).unwrap();
        rec.frames(Filter::all())
            .map(Result::unwrap)
            .filter(|f| f.segment() != 0 || (f.offset() as usize) < off)
            .map(|f| f.bytes().to_vec())
            .collect::<Vec<_>>()
    };
    // Cut inside the first segment's last block: its index and footer go too.
    std::fs::OpenOptions::new()
        .write(true)
        .open(first)
        .unwrap()
        .set_len((off + len / 2) as u64)
        .unwrap();
    let (got, bad) = read(tmp.path(), Filter::all());
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(
        (bad[0].file.as_path(), bad[0].offset),
        (first.as_path(), off as u64)
    );
    assert!(bad[0].reason.contains("torn tail"), "{}", bad[0]);
    same(&(got, vec![]), &expect, "torn middle segment");
}

// ---------------------------------------------------------------------------------------------
// Directory handling and names

#[test]
fn create_and_open_refuse_the_wrong_directory() {
    let tmp = TempDir::new("dirs");
    let empty = tmp.sub("empty");
    let err = RecordingWriter::open(&empty, small_options()).unwrap_err();
    assert!(matches!(err, RecordingError::NoRecording { .. }), "{err}");
    assert_eq!(
        Recording::open(&empty)
            .unwrap()
            .frames(Filter::all())
            .count(),
        0
    );

    let full = tmp.sub("full");
    write_all(
        &full,
        small_options(),
        &instruments(),
        &varied_frames(1, 10, 1),
    );
    let err = RecordingWriter::create(&full, small_options(), &[]).unwrap_err();
    assert!(matches!(err, RecordingError::AlreadyExists { .. }), "{err}");

    let bad = WriterOptions {
        records_per_block: 0,
        ..small_options()
    };
    assert!(matches!(
        RecordingWriter::create(tmp.sub("x"), bad, &[]),
        Err(RecordingError::BadOptions(_))
    ));
    // A writer that records nothing leaves no file.
    let none = tmp.sub("none");
    RecordingWriter::create(&none, small_options(), &[])
        .unwrap()
        .close()
        .unwrap();
    assert!(segment_files(&none).is_empty());
}

#[test]
fn names_resolve_through_the_instrument_lists() {
    let tmp = TempDir::new("names");
    // One segment; a Definition arrives mid-stream, after the header was written.
    let okx = instrument_id(Venue::Okx, "BTC-USDT-SWAP");
    let mut frames = varied_frames(2, 50, 1_000);
    frames.retain(|f| !matches!(f.body, Body::Definition(_)));
    frames.push(Frame::new(
        Venue::Okx,
        okx,
        0,
        1_000_000_000,
        Body::Definition(Definition {
            symbol: "BTC-USDT-SWAP".into(),
            price_decimals: 1,
            qty_decimals: 2,
        }),
    ));
    write_all(tmp.path(), small_options(), &instruments(), &frames);
    let rec = Recording::open(tmp.path()).unwrap();
    assert_eq!(rec.segments().len(), 1);
    assert_eq!(
        rec.resolve("binance:BTCUSDT").unwrap(),
        instrument_id(Venue::Binance, "BTCUSDT")
    );
    assert_eq!(rec.resolve("okx:btc-usdt-swap").unwrap(), okx);
    let err = rec.resolve("kraken:XBT/USD").unwrap_err();
    assert!(err.to_string().contains("binance:BTCUSDT"), "{err}");
    assert!(rec.resolve("nonsense").is_err());

    let ids = rec
        .resolve_all(["binance:BTCUSDT", "coinbase:BTC-USD"])
        .unwrap();
    let (got, _) = read(tmp.path(), Filter::all().instruments(ids.iter().copied()));
    let expect: Vec<Vec<u8>> = frames
        .iter()
        .filter(|f| ids.contains(&f.instrument))
        .map(encode)
        .collect();
    assert!(!expect.is_empty());
    same(&(got, vec![]), &expect, "by name");
}

// ---------------------------------------------------------------------------------------------
// Properties

fn naive(frames: &[Frame], filter: &Filter) -> Vec<Vec<u8>> {
    frames
        .iter()
        .filter(|f| filter.matches(ts_of(f), f.instrument))
        .map(encode)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn filters_return_exactly_what_a_naive_filter_returns(
        seed in any::<u64>(),
        n in 1usize..250,
        per_block in 1u32..20,
        seg_kib in 2u64..16,
        shuffle in any::<bool>(),
        filters in proptest::collection::vec(
            (
                proptest::option::of(0u64..300_000),
                proptest::option::of(0u64..200_000),
                proptest::option::of(proptest::collection::vec(0usize..6, 1..4)),
            ),
            4,
        ),
    ) {
        let tmp = TempDir::new("prop-filter");
        let mut frames = varied_frames(seed, n, 0);
        if shuffle {
            // Timestamps out of order: block times are minimum and maximum, not first and last.
            let mut rng = Rng(seed | 1);
            for i in (1..frames.len()).rev() {
                frames.swap(i, rng.below(i as u64 + 1) as usize);
            }
        }
        let options = WriterOptions {
            records_per_block: per_block,
            max_segment_bytes: seg_kib << 10,
            max_segment_age: Some(Duration::from_micros(150)),
            ..small_options()
        };
        write_all(tmp.path(), options, &instruments(), &frames);
        for (from, len, set) in filters {
            let mut filter = Filter::all();
            let to = len.map(|len| from.unwrap_or(0) + len);
            filter.time = TimeRange { from, to };
            if let Some(set) = set {
                // Index 5 is an id no frame has.
                filter = filter.instruments(set.into_iter().map(|i| {
                    SYMBOLS.get(i).map_or(12345, |(v, s)| instrument_id(*v, s))
                }));
            }
            let (got, bad) = read(tmp.path(), filter.clone());
            let want = naive(&frames, &filter);
            prop_assert!(bad.is_empty(), "{:?}", bad);
            prop_assert!(got == want, "got {} frames, want {}", got.len(), want.len());
        }
    }

    #[test]
    fn arbitrary_bytes_as_a_segment_file_never_panic(
        kind in 0u8..3,
        noise in proptest::collection::vec(any::<u8>(), 0..1500),
        at in any::<proptest::sample::Index>(),
        cut in any::<proptest::sample::Index>(),
    ) {
        static GOOD: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let good = GOOD.get_or_init(|| {
            let src = TempDir::new("prop-bytes-src");
            write_all(src.path(), small_options(), &instruments(), &varied_frames(5, 60, 1));
            std::fs::read(segment_files(src.path()).pop().unwrap()).unwrap()
        });
        let tmp = TempDir::new("prop-bytes");
        let bytes = match kind {
            // Anything.
            0 => noise.clone(),
            // A sound header, then anything.
            1 => {
                let h = decode_segment_header(good).unwrap();
                let mut b = good[..h.data_start()].to_vec();
                b.extend_from_slice(&noise);
                b
            }
            // A sound segment with bytes overwritten, then cut somewhere.
            _ => {
                let mut b = good.clone();
                let i = at.index(b.len());
                for (j, x) in noise.iter().take(16).enumerate() {
                    if let Some(y) = b.get_mut(i + j) { *y = *x; }
                }
                let n = cut.index(b.len() + 1);
                b.truncate(n.max(b.len() / 2));
                b
            }
        };
        let dir = tmp.sub("rec");
        std::fs::write(dir.join("seg-000001-1.twrec"), &bytes).unwrap();
        let drain = |dir: &Path| {
            if let Ok(rec) = Recording::open(dir) {
                let _ = rec.segments().count();
                let _ = rec.instruments();
                for f in rec.frames(Filter::all()).flatten() {
                    let _ = f.to_frame();
                }
                let _ = rec.raw_frames(TimeRange::ALL).count();
            }
        };
        drain(&dir);
        if let Ok(w) = RecordingWriter::open(&dir, small_options()) {
            let _ = w.close();
        }
        drain(&dir);
    }
}
