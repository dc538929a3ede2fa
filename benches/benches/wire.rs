//! The wire codec per frame kind: rkyv encode, validated and unchecked access, a 64-frame
//! batch (build from encoded frames, then `Batch::new` validation), and JSON rendering.
//!
//! The frames are real: the first trade, quote and book delta the Binance normalizer makes of
//! the shipped capture after its book is synced, and the top 20 levels per side of that book,
//! each stamped with a `seq` and `ts_publish` as the engine would. See BENCHMARKS.md.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tickwire_feed::binance::BinanceNormalizer;
use tickwire_feed::capture::{CaptureReader, RecordKind};
use tickwire_feed::{Normalizer, Output};
use tickwire_sdk::wire::codec::access_trusted;
use tickwire_sdk::wire::{
    Batch, BatchWriter, Body, Encoder, Frame, InstrumentInfo, JsonOptions, Kind, Venue, access,
    flags, render,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CAPTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../replay-data/captures/binance_spot/depth100ms_bookTicker_trade_restSnapshot/btcusdt_20240808.gz"
);

const SYMBOL: &str = "BTCUSDT";

/// Frames per batch.
const BATCH: usize = 64;

/// Levels per side in the snapshot frame.
const SNAPSHOT_DEPTH: usize = 20;

/// Real frames of each kind, and the instrument they belong to.
fn real_frames() -> (Vec<(&'static str, Frame)>, InstrumentInfo) {
    let records = CaptureReader::open(CAPTURE)
        .expect("open the capture")
        .read_all()
        .expect("read the capture");
    let mut n = BinanceNormalizer::spot(&[SYMBOL.to_string()]);
    let (mut buf, mut out) = (Vec::new(), Output::new());
    let (mut trade, mut quote, mut delta, mut info) = (None, None, None, None);
    for r in &records {
        if r.kind != RecordKind::Received {
            continue;
        }
        buf.clear();
        buf.extend_from_slice(&r.payload);
        out.clear();
        n.on_message(&buf, r.ts_ns.unwrap_or(0), &mut out)
            .expect("the capture normalizes");
        let live = n.book(SYMBOL).is_some();
        for f in out.frames.drain(..) {
            match &f.body {
                Body::Definition(d) => {
                    info = Some(InstrumentInfo::new(
                        Venue::Binance,
                        &d.symbol,
                        d.price_decimals,
                        d.qty_decimals,
                    ));
                }
                Body::Trade(_) if trade.is_none() => trade = Some(f),
                Body::Quote(_) if quote.is_none() => quote = Some(f),
                Body::BookDelta(_) if live && delta.is_none() => delta = Some(f),
                _ => {}
            }
        }
        if trade.is_some() && quote.is_some() && delta.is_some() {
            break;
        }
    }
    let delta: Frame = delta.expect("a book delta");
    let book = n.book(SYMBOL).expect("the book is live");
    let snapshot = Frame::new(
        Venue::Binance,
        delta.instrument,
        delta.ts_exchange,
        delta.ts_recv,
        Body::BookSnapshot(book.snapshot(Some(SNAPSHOT_DEPTH))),
    )
    .with_flags(flags::SNAPSHOT | flags::LAST);
    let frames = [
        ("trade", trade.expect("a trade")),
        ("quote", quote.expect("a quote")),
        ("book_delta", delta),
        ("book_snapshot20", snapshot),
    ]
    .into_iter()
    .map(|(name, mut f)| {
        // As the engine's sequencer leaves them: a per-stream seq and a publish time.
        f.seq = 1_234_567;
        f.ts_publish = f.ts_recv + 25_000;
        (name, f)
    })
    .collect();
    (frames, info.expect("a definition"))
}

fn wire(c: &mut Criterion) {
    let (frames, info) = real_frames();
    assert!(frames.iter().map(|(_, f)| f.kind()).eq([
        Kind::Trade,
        Kind::Quote,
        Kind::BookDelta,
        Kind::BookSnapshot
    ]));
    let opts = JsonOptions::default();
    let encoded: Vec<Vec<u8>> = frames
        .iter()
        .map(|(_, f)| Encoder::new().encode(f).to_vec())
        .collect();
    for ((name, f), bytes) in frames.iter().zip(&encoded) {
        let archived = access(bytes).expect("valid frame");
        assert_eq!(archived.kind(), f.kind());
        let mut json = Vec::new();
        render(archived, Some(&info), opts, &mut json);
        eprintln!(
            "{name}: {} rkyv bytes, {} JSON bytes: {}",
            bytes.len(),
            json.len(),
            String::from_utf8_lossy(&json[..json.len().min(200)])
        );
    }
    let kinds = || frames.iter().zip(&encoded);

    let mut g = c.benchmark_group("wire/encode");
    for ((name, frame), bytes) in kinds() {
        let mut enc = Encoder::new();
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                black_box(enc.encode(black_box(frame)));
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("wire/access_validated");
    for ((name, _), bytes) in kinds() {
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                let f = access(black_box(bytes)).expect("valid frame");
                black_box(f.ts_recv.to_native())
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("wire/access_unchecked");
    for ((name, _), bytes) in kinds() {
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                // SAFETY: `bytes` is exactly the output of `Encoder::encode` for one frame.
                let f = unsafe { access_trusted(black_box(bytes)) };
                black_box(f.ts_recv.to_native())
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("wire/batch64_build");
    g.throughput(Throughput::Elements(BATCH as u64));
    for ((name, _), bytes) in kinds() {
        let mut w = BatchWriter::with_capacity(BATCH * (bytes.len() + 4) + 8);
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                w.begin();
                for _ in 0..BATCH {
                    w.push(black_box(bytes));
                }
                black_box(w.finish());
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("wire/batch64_validate");
    g.throughput(Throughput::Elements(BATCH as u64));
    for ((name, frame), bytes) in kinds() {
        let mut w = BatchWriter::default();
        w.begin();
        for _ in 0..BATCH {
            w.push(bytes);
        }
        let batch = w.take();
        let check = Batch::new(&batch[..]).expect("valid batch");
        assert_eq!(check.len(), BATCH);
        assert!(check.iter().all(|f| f.kind() == frame.kind()));
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                let batch = Batch::new(black_box(&batch[..])).expect("valid batch");
                black_box(batch.len())
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("wire/json_render");
    for ((name, _), bytes) in kinds() {
        let archived = access(bytes).expect("valid frame");
        let mut out = Vec::with_capacity(4096);
        render(archived, Some(&info), opts, &mut out);
        g.throughput(Throughput::Bytes(out.len() as u64));
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                out.clear();
                render(black_box(archived), Some(&info), opts, &mut out);
                black_box(&out);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, wire);
criterion_main!(benches);
