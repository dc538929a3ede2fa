//! Recording files: writing frames into segments, and reading them back memory-mapped.
//!
//! The frames are real: everything the Binance normalizer makes of the shipped capture (up to
//! [`MAX_FRAMES`]), each stamped with a `seq` and a `ts_publish` as the engine would, encoded
//! once. One criterion iteration handles all of them; throughput is in frames.
//!
//! - `write`: `RecordingWriter::append_encoded` of every frame into a new directory, then
//!   `close` (default options, no fsync: the page cache, not the disk, is measured).
//! - `read_all`: `Recording::open`, then every frame through `frames(Filter::all())`
//!   (validated zero-copy access per record, CRC per block), reading one field of each.
//! - `read_1pct`: the same for a time range of 1% of the recording's span (throughput in the
//!   frames it returns): blocks outside it are skipped by their index times, unread.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tickwire_feed::binance::BinanceNormalizer;
use tickwire_feed::capture::{CaptureReader, RecordKind};
use tickwire_feed::{Normalizer, Output};
use tickwire_sdk::recording::{
    Filter, FsyncPolicy, Recording, RecordingWriter, WriterOptions, frame_time,
};
use tickwire_sdk::wire::{Encoder, Frame};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CAPTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../replay-data/captures/binance_spot/depth100ms_bookTicker_trade_restSnapshot/btcusdt_20240808.gz"
);

/// At most this many frames per iteration.
const MAX_FRAMES: usize = 200_000;

fn real_frames() -> Vec<Frame> {
    let records = CaptureReader::open(CAPTURE)
        .expect("open the capture")
        .read_all()
        .expect("read the capture");
    let mut n = BinanceNormalizer::spot(&["BTCUSDT".to_string()]);
    let (mut buf, mut out) = (Vec::new(), Output::new());
    let mut frames = Vec::new();
    for r in &records {
        if r.kind != RecordKind::Received {
            continue;
        }
        buf.clear();
        buf.extend_from_slice(&r.payload);
        out.clear();
        n.on_message(&buf, r.ts_ns.unwrap_or(0), &mut out)
            .expect("the capture normalizes");
        frames.append(&mut out.frames);
        if frames.len() >= MAX_FRAMES {
            break;
        }
    }
    frames.truncate(MAX_FRAMES);
    for (i, f) in frames.iter_mut().enumerate() {
        f.seq = i as u64 + 1;
        f.ts_publish = f.ts_recv + 20_000;
    }
    frames
}

fn options() -> WriterOptions {
    WriterOptions {
        fsync: FsyncPolicy::Never,
        ..WriterOptions::default()
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tickwire-bench-recording-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn recording(c: &mut Criterion) {
    let frames = real_frames();
    let mut enc = Encoder::new();
    let encoded: Vec<Vec<u8>> = frames.iter().map(|f| enc.encode(f).to_vec()).collect();
    let n = encoded.len() as u64;
    let bytes: usize = encoded.iter().map(Vec::len).sum();
    eprintln!(
        "recording bench: {n} frames, {bytes} encoded bytes ({} per frame)",
        bytes / encoded.len().max(1)
    );

    let write = |dir: &PathBuf| {
        let mut w = RecordingWriter::create(dir, options(), &[]).expect("create");
        for e in &encoded {
            w.append_encoded(black_box(e)).expect("append");
        }
        w.close().expect("close");
    };

    let mut g = c.benchmark_group("recording");
    g.throughput(Throughput::Elements(n));
    g.bench_function("write", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = scratch("write");
                let t = Instant::now();
                write(&dir);
                total += t.elapsed();
                let _ = std::fs::remove_dir_all(&dir);
            }
            total
        })
    });

    let dir = scratch("read");
    write(&dir);
    let rec = Recording::open(&dir).expect("open");
    let read = |filter: Filter| {
        let rec = Recording::open(&dir).expect("open");
        let mut sum = 0u64;
        for f in rec.frames(filter) {
            sum = sum.wrapping_add(f.expect("sound recording").seq.to_native());
        }
        black_box(sum)
    };
    assert_eq!(rec.frames(Filter::all()).count() as u64, n);
    g.bench_function("read_all", |b| b.iter(|| read(Filter::all())));

    let ts = |f: &Frame| frame_time(f.ts_publish, f.ts_recv);
    let (first, last) = (ts(&frames[0]), ts(&frames[frames.len() - 1]));
    let mid = first + (last - first) / 2;
    let narrow = Filter::all().time(mid..mid + (last - first) / 100);
    let picked = rec.frames(narrow.clone()).count();
    eprintln!("recording bench: read_1pct picks {picked} frames");
    g.finish();
    // Throughput in the frames it returns.
    let mut g = c.benchmark_group("recording");
    g.throughput(Throughput::Elements(picked as u64));
    g.bench_function("read_1pct", |b| b.iter(|| read(narrow.clone())));
    g.finish();
    drop(rec);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, recording);
criterion_main!(benches);
