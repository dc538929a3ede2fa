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
//!
//! Group `replay` (throughput in bytes of segment files, so the two read the same bytes; the
//! frames are the same with `seq` numbered per stream, as the engine numbers them):
//!
//! - `plain_read`: every segment file read sequentially with `read` into a reused 256 KiB
//!   buffer, summing its bytes as little-endian u64s (from the page cache: the files were
//!   just written and are read again every iteration).
//! - `replay_max`: `Replay::open`, subscribe to the instrument's every channel, then every
//!   event through `next_blocking` at `Speed::Max`, reading `seq` of each frame (block CRC,
//!   validated access, routing and the per-stream `seq` check included).
//! - `replay_max_one_thread`: the same with read-ahead off (`ReplayBuilder::read_ahead`).
//! - `replay_async`: the same through `next().await` on a current-thread tokio runtime.
//!
//! `REPLAY_ROUNDS=N` runs the replay group's first three as `N` interleaved rounds instead
//! (see [`interleaved`]): the steadier way to compare them on a noisy VM.

use std::collections::HashMap;
use std::hint::black_box;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tickwire_feed::binance::BinanceNormalizer;
use tickwire_feed::capture::{CaptureReader, RecordKind};
use tickwire_feed::{Normalizer, Output};
use tickwire_sdk::client::Event;
use tickwire_sdk::recording::{
    Filter, FsyncPolicy, Recording, RecordingWriter, WriterOptions, frame_time,
};
use tickwire_sdk::replay::{Replay, ReplayEvent};
use tickwire_sdk::wire::{Channel, Encoder, Frame, InstrumentInfo, Venue};

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

/// Reads every segment file of `dir` with plain sequential `read`s into `buf`, summing the
/// bytes as little-endian u64s (so the read cannot be optimised away).
fn plain_read(dir: &Path, buf: &mut [u8]) -> u64 {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let mut sum = 0u64;
    for path in files {
        let mut f = std::fs::File::open(&path).expect("open");
        loop {
            let n = f.read(buf).expect("read");
            if n == 0 {
                break;
            }
            // Records are 8-aligned and reads come in whole pages but for the file's end:
            // the odd tail bytes of a file, if any, are not summed.
            for w in buf[..n].chunks_exact(8) {
                sum = sum.wrapping_add(u64::from_le_bytes(w.try_into().unwrap_or([0; 8])));
            }
        }
    }
    sum
}

fn replay(c: &mut Criterion) {
    // The capture's frames, with `seq` per stream (instrument, channel) as the engine numbers
    // them, so a replay sees no hole; the instrument in the segment headers so it can be
    // subscribed by name.
    let mut frames = real_frames();
    let mut seqs: HashMap<(u32, Channel), u64> = HashMap::new();
    for f in &mut frames {
        let s = seqs.entry((f.instrument, f.channel())).or_insert(0);
        *s += 1;
        f.seq = *s;
    }
    let n = frames.len() as u64;
    let info = InstrumentInfo::new(Venue::Binance, "BTCUSDT", 2, 8);
    let dir = scratch("replay");
    let mut w =
        RecordingWriter::create(&dir, options(), std::slice::from_ref(&info)).expect("create");
    for f in &frames {
        w.append_frame(f).expect("append");
    }
    w.close().expect("close");
    let file_bytes: u64 = std::fs::read_dir(&dir)
        .expect("list")
        .map(|e| e.expect("entry").metadata().expect("metadata").len())
        .sum();
    eprintln!(
        "replay bench: {n} frames, {file_bytes} bytes of segment files ({} per frame)",
        file_bytes / n.max(1)
    );

    let open_with = |read_ahead: bool| {
        let mut r = Replay::builder(&dir)
            .read_ahead(read_ahead)
            .open()
            .expect("open");
        r.subscribe(&["binance:BTCUSDT"], &[]).expect("subscribe");
        r
    };
    // The default: read-ahead on a second core.
    let open = || open_with(true);
    // Replay delivers every frame, without a hole.
    let mut r = open();
    let mut delivered = 0;
    while let Some(e) = r.next_blocking() {
        match e.expect("sound recording") {
            ReplayEvent::Frames(b) => delivered += b.len() as u64,
            ReplayEvent::Gap { .. } => panic!("no hole expected"),
        }
    }
    assert_eq!(delivered, n);

    let mut buf = vec![0u8; 256 << 10];
    let replay_all = |read_ahead: bool| {
        let mut r = open_with(read_ahead);
        let mut sum = 0u64;
        while let Some(e) = r.next_blocking() {
            if let ReplayEvent::Frames(batch) = e.expect("sound recording") {
                for f in batch.iter() {
                    sum = sum.wrapping_add(f.seq.to_native());
                }
            }
        }
        sum
    };
    if let Some(rounds) = std::env::var("REPLAY_ROUNDS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        interleaved(rounds, file_bytes, &mut buf, &dir, &replay_all);
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }

    let mut g = c.benchmark_group("replay");
    g.throughput(Throughput::Bytes(file_bytes));
    g.bench_function("plain_read", |b| {
        b.iter(|| black_box(plain_read(&dir, &mut buf)))
    });
    for (name, read_ahead) in [("replay_max", true), ("replay_max_one_thread", false)] {
        g.bench_function(name, |b| b.iter(|| black_box(replay_all(read_ahead))));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    g.bench_function("replay_async", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut r = open();
                let mut sum = 0u64;
                while let Some(e) = r.next().await {
                    if let Event::Frames(batch) = e.expect("sound recording") {
                        for f in batch.iter() {
                            sum = sum.wrapping_add(f.seq.to_native());
                        }
                    }
                }
                black_box(sum)
            })
        })
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `REPLAY_ROUNDS=N`: instead of criterion, `N` rounds of a plain read, a replay with
/// read-ahead and one without, interleaved (so that the VM's slow and fast periods fall on
/// all three alike); prints each one's fastest, 10th percentile and median time, and the
/// replays' throughput as a share of the plain read's at each.
fn interleaved(
    rounds: usize,
    file_bytes: u64,
    buf: &mut [u8],
    dir: &Path,
    replay_all: &dyn Fn(bool) -> u64,
) {
    let mut times: [Vec<Duration>; 3] = Default::default();
    for _ in 0..rounds {
        let t = Instant::now();
        black_box(plain_read(dir, buf));
        times[0].push(t.elapsed());
        for (i, ahead) in [(1, true), (2, false)] {
            let t = Instant::now();
            black_box(replay_all(ahead));
            times[i].push(t.elapsed());
        }
    }
    for t in &mut times {
        t.sort();
    }
    let at = |t: &Vec<Duration>, q: f64| t[((t.len() - 1) as f64 * q) as usize];
    println!("replay interleaved: {rounds} rounds of {file_bytes} bytes");
    for (name, q) in [("min", 0.0), ("p10", 0.1), ("median", 0.5)] {
        let plain = at(&times[0], q);
        let share = |i: usize| plain.as_secs_f64() / at(&times[i], q).as_secs_f64() * 100.0;
        println!(
            "  {name:>6}: plain_read {:.3} ms ({:.0} MB/s) | replay_max {:.3} ms ({:.0}%) | \
             replay_max_one_thread {:.3} ms ({:.0}%)",
            plain.as_secs_f64() * 1e3,
            file_bytes as f64 / plain.as_secs_f64() / 1e6,
            at(&times[1], q).as_secs_f64() * 1e3,
            share(1),
            at(&times[2], q).as_secs_f64() * 1e3,
            share(2),
        );
    }
}

criterion_group!(benches, recording, replay);
criterion_main!(benches);
