//! The OKX hot path allocates nothing once warm: books updates, trades and tickers are
//! normalized with reused buffers (counted by a global allocator, on this thread only).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use tickwire_feed::capture::{CaptureReader, RecordKind};
use tickwire_feed::okx::OkxNormalizer;
use tickwire_feed::{Normalizer, Output};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steady_state_messages_allocate_nothing() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../replay-data/captures/okx_v5/books_trades_tickers/OKX.ws.1.0"
    );
    let records: Vec<Vec<u8>> = CaptureReader::open(path)
        .unwrap()
        .read_all()
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == RecordKind::Received)
        .map(|r| r.payload)
        .collect();
    let mut n = OkxNormalizer::new(&[]);
    let mut out = Output::new();
    // Warm up: every buffer reaches its size, every instrument and stats key exists.
    // Twice, so that first-seen counters (`trades:duplicate`) exist too.
    for raw in records.iter().chain(&records) {
        out.clear();
        n.on_message(raw, 1, &mut out).unwrap();
    }
    out.clear();
    n.on_message(b"pong", 1, &mut out).unwrap();
    // Again: updates chain on (checksums verify), trades are duplicates, tickers repeat.
    let mut counted = 0;
    for raw in &records {
        // Snapshots carry their whole book in the frame (a Vec): not steady state.
        let snapshot = raw.windows(19).any(|w| w == br#""action":"snapshot""#);
        out.clear();
        COUNTING.with(|c| c.set(!snapshot));
        let r = n.on_message(raw, 2, &mut out);
        COUNTING.with(|c| c.set(false));
        r.unwrap();
        if std::env::var("OKX_ALLOC_DEBUG").is_ok() && ALLOCS.with(Cell::get) > 0 {
            eprintln!(
                "{} {}",
                ALLOCS.with(Cell::get),
                String::from_utf8_lossy(&raw[..80.min(raw.len())])
            );
            ALLOCS.with(|a| a.set(0));
        }
        if !snapshot {
            counted += 1;
        }
    }
    assert_eq!(counted, 407);
    // bbo-tbt, books5 (its 5-level snapshot body aside) and fresh trades, warm then counted.
    let bbo = br#"{"arg":{"channel":"bbo-tbt","instId":"BCH-USDT-SWAP"},"data":[{"asks":[["111.06","55154","0","2"]],"bids":[["111.05","57745","0","2"]],"ts":"1670324386802","seqId":363996337}]}"#;
    let trades: Vec<Vec<u8>> = (0..20)
        .map(|k| format!(r#"{{"arg":{{"channel":"trades","instId":"BTC-USDT"}},"data":[{{"instId":"BTC-USDT","tradeId":"{}","px":"30243.5","sz":"0.001","side":"buy","ts":"1652459226050","count":"2"}}]}}"#, 338_476_400 + 2 * k).into_bytes())
        .collect();
    for (k, raw) in trades.iter().enumerate() {
        out.clear();
        n.on_message(bbo, 3, &mut out).unwrap();
        out.clear();
        COUNTING.with(|c| c.set(k > 0));
        let r = n.on_message(raw, 3, &mut out).and_then(|_| {
            out.clear();
            n.on_message(bbo, 3, &mut out)
        });
        COUNTING.with(|c| c.set(false));
        r.unwrap();
    }
    assert_eq!(ALLOCS.with(Cell::get), 0, "allocations on the hot path");
    // The synthetic trades start past the capture's last id (one trade gap); books chained.
    assert_eq!(n.stats().gaps, 1);
    assert_eq!(n.stats().get("checksum:ok"), 870);
    assert_eq!(n.stats().get("checksum:mismatch"), 0);
}
