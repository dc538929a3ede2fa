//! Recordings made without a live venue, and recordings normalized again:
//!
//! - `tickwire import` of the Binance capture gives the frames the live path (simulator
//!   replaying the same capture -> server -> recorder) gives;
//! - import of every shipped capture format, and refusal of a wrong `--format` or garbage;
//! - `serve --record-raw`: the raw records, normalized again, give the recorded frames;
//! - `tickwire record --duration` leaves a closed recording;
//! - the recording shipped in replay-data/ is what import makes of the capture today.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use tickwire_engine::cli::import::{self, ImportArgs, ImportFormat};
use tickwire_engine::recorder::{RawQueue, RecorderConfig};
use tickwire_feed::driver::{self, RawMessage, RawSink};
use tickwire_sdk::recording::{Filter, RawEvent, Recording, TimeRange, WriterOptions};
use tickwire_sdk::wire::{Body, BookSide, Channel, Frame, Venue, flags};

const TICKWIRE: &str = env!("CARGO_BIN_EXE_tickwire");
const CAPTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../replay-data/captures");
const BTCUSDT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../replay-data/captures/binance_spot/depth100ms_bookTicker_trade_restSnapshot/btcusdt_20240808.gz"
);
/// The recording shipped in replay-data/, and how it was made (see its ATTRIBUTION.md).
const SHIPPED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../replay-data/binance_btcusdt_20240808"
);
const SHIPPED_SECONDS: u64 = 50;

/// Every frame of a recording, owned, in recording order (damage fails the test).
fn frames_of(dir: &Path) -> Vec<Frame> {
    let rec = Recording::open(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    rec.frames(Filter::all())
        .map(|r| r.expect("no damaged block").to_frame())
        .collect()
}

/// `tickwire args` to completion (no backtraces, as a user sees it), within a minute.
fn tickwire(args: &[&str]) -> Output {
    let mut child = Command::new(TICKWIRE)
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tickwire");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("`tickwire {}` did not finish within 60 s", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn import_in_process(format: ImportFormat, inputs: &[&Path], out: &Path) -> import::ImportSummary {
    let args = ImportArgs::new(
        Some(Venue::Binance),
        format,
        inputs.iter().map(|p| p.to_path_buf()).collect(),
        out.to_path_buf(),
    );
    import::run(&args).expect("import")
}

/// A book built from a recording's BookSnapshot and BookDelta frames.
#[derive(Default, Clone, PartialEq, Eq, Debug)]
struct Book {
    bids: BTreeMap<i64, i64>,
    asks: BTreeMap<i64, i64>,
    /// A snapshot has been applied and no frame since said the book may be wrong.
    synced: bool,
    /// Complete venue updates (LAST-flagged deltas) applied since the last snapshot.
    updates_since_snapshot: u64,
}

impl Book {
    fn apply(&mut self, f: &Frame) {
        match &f.body {
            Body::BookSnapshot(s) => {
                self.bids = s.bids.iter().map(|l| (l.price, l.qty)).collect();
                self.asks = s.asks.iter().map(|l| (l.price, l.qty)).collect();
                self.synced = f.flags & flags::BAD_BOOK == 0;
                self.updates_since_snapshot = 0;
            }
            Body::BookDelta(d) => {
                let side = match d.side {
                    BookSide::Bid => &mut self.bids,
                    BookSide::Ask => &mut self.asks,
                };
                if d.qty == 0 {
                    side.remove(&d.price);
                } else {
                    side.insert(d.price, d.qty);
                }
                if f.flags & flags::BAD_BOOK != 0 {
                    self.synced = false;
                }
                if f.flags & flags::LAST != 0 {
                    self.updates_since_snapshot += 1;
                }
            }
            _ => {}
        }
    }
}

/// The frames of one stream kind per instrument, without timestamps: (seq, flags, body).
fn stream(frames: &[Frame], channel: Channel) -> HashMap<u32, Vec<(u64, u8, Body)>> {
    let mut out: HashMap<u32, Vec<(u64, u8, Body)>> = HashMap::new();
    for f in frames.iter().filter(|f| f.channel() == channel) {
        out.entry(f.instrument)
            .or_default()
            .push((f.seq, f.flags, f.body.clone()));
    }
    out
}

/// For each trade (by trade id): the book just before it, once the book is comparable (see
/// the test).
fn books_at_trades(frames: &[Frame]) -> BTreeMap<String, Book> {
    let mut book = Book::default();
    let mut out = BTreeMap::new();
    for f in frames {
        book.apply(f);
        if let Body::Trade(t) = &f.body
            && book.synced
            && book.updates_since_snapshot > 0
        {
            out.insert(format!("{:?}", t.trade_id), book.clone());
        }
    }
    out
}

/// Importing the Binance capture gives the frames that the live path gives for the same
/// capture: the simulator replaying it over WebSocket and REST, the server (feed driver,
/// normalizer, sequencer) publishing, and `--record` writing what it published.
///
/// What is compared, and why:
/// - Trades and quotes: identical per instrument in content, `seq` and flags, in order,
///   every one of them. Timestamps are not compared: the simulator stamps its own event
///   times (`ts_exchange`), each path its own receive time, and import sets `ts_publish` to
///   `ts_recv`.
/// - The book: not frame by frame. The live path's snapshot is the simulator's REST book at
///   the time the feed asked for it (the capture's snapshot plus the diffs replayed so far,
///   possibly including diffs still in flight to the feed), while import uses the capture's
///   own REST snapshot at the place it was captured: the two snapshot frames differ and sit at
///   different places in the stream. So the book state (every level) is compared just before
///   each trade, at trades where both paths are synced (a snapshot applied, no `BAD_BOOK`
///   since) and have applied at least one whole venue update after their snapshot: from that
///   update on, both books are "capture snapshot + every diff up to the same message", so they
///   must be equal level for level. The live path's books must be compared at most trades.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importing_the_binance_capture_gives_the_frames_of_the_live_path() {
    let live_dir = temp_dir("import", "live");
    let sim = capture_sim().await;
    let d = live_dir.clone();
    let server = server_for(&sim, &["btcusdt"], move |c| {
        c.record = Some(RecorderConfig {
            dir: d,
            options: WriterOptions::default(),
        })
    })
    .await;
    wait_subscribed(&sim, 3).await;
    sim.start();
    wait_for(
        "the simulator to replay the whole capture",
        Duration::from_secs(120),
        || sim.status()["running"] == false,
    )
    .await;
    // Then until the server has published everything the feed read.
    let mut last = u64::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let p = server.published();
        if p == last {
            break;
        }
        last = p;
    }
    let lost = server
        .recorder_stats()
        .expect("recording")
        .lost
        .load(std::sync::atomic::Ordering::Relaxed);
    server.shutdown().await;
    sim.shutdown().await;
    assert_eq!(lost, 0, "the recorder lost frames");

    let import_dir = temp_dir("import", "capture");
    let summary = import_in_process(
        ImportFormat::Hftbacktest,
        &[Path::new(BTCUSDT)],
        &import_dir,
    );
    assert_eq!(summary.errors, 0);
    let live = frames_of(&live_dir);
    let imported = frames_of(&import_dir);

    for (channel, what) in [(Channel::Trades, "trades"), (Channel::Quotes, "quotes")] {
        let (a, b) = (stream(&live, channel), stream(&imported, channel));
        assert_eq!(a.len(), 1, "{what}: one instrument");
        for (id, want) in &b {
            let got = a
                .get(id)
                .unwrap_or_else(|| panic!("{what}: no live stream {id}"));
            assert_eq!(got.len(), want.len(), "{what} of {id}: count");
            for (k, (g, w)) in got.iter().zip(want).enumerate() {
                assert_eq!(g, w, "{what} of {id}: frame #{} differs", k + 1);
            }
        }
    }
    assert_eq!(
        stream(&imported, Channel::Trades)
            .values()
            .next()
            .unwrap()
            .len(),
        9_757
    );

    let (live_books, import_books) = (books_at_trades(&live), books_at_trades(&imported));
    let mut compared = 0;
    for (trade, book) in &live_books {
        if let Some(other) = import_books.get(trade) {
            assert_eq!(book.bids, other.bids, "bids before trade {trade}");
            assert_eq!(book.asks, other.asks, "asks before trade {trade}");
            compared += 1;
        }
    }
    assert!(
        compared > 9_000,
        "books compared at only {compared} of 9,757 trades (live synced at {}, import at {})",
        live_books.len(),
        import_books.len()
    );
    let _ = std::fs::remove_dir_all(&live_dir);
    let _ = std::fs::remove_dir_all(&import_dir);
}

/// Every shipped capture format imports without an error, and into the frames its messages
/// stand for; several cryptofeed files (WebSocket + REST) merge by receive time.
#[test]
fn import_reads_every_capture_format() {
    let cases: [(&str, &str, &[&str], &str); 6] = [
        (
            "binance",
            "hftbacktest",
            &["binance_spot/depth100ms_bookTicker_trade_restSnapshot/btcusdt_20240808.gz"],
            "trade",
        ),
        (
            "binance",
            "cryptofeed",
            &[
                "binance_spot/depth100ms_bookTicker_kline1m_aggTrade/BINANCE.ws.1.0",
                "binance_spot/rest_depth_snapshot/BINANCE.http.0.0",
            ],
            "book_snapshot",
        ),
        (
            "coinbase",
            "cryptofeed",
            &["coinbase_exchange_legacy/level2_ticker_matches/COINBASE.ws.28.0"],
            "trade",
        ),
        (
            "kraken",
            "cryptofeed",
            &["kraken_spot_v1/book_1000/KRAKEN.ws.50.0"],
            "book_delta",
        ),
        (
            "kraken",
            "cryptofeed",
            &[
                "kraken_spot_v1/trade/KRAKEN.ws.48.0",
                "kraken_spot_v1/ticker/KRAKEN.ws.49.0",
            ],
            "trade",
        ),
        (
            "okx",
            "cryptofeed",
            &["okx_v5/books_trades_tickers/OKX.ws.1.0"],
            "trade",
        ),
    ];
    for (k, (venue, format, files, must_have)) in cases.iter().enumerate() {
        let out_dir = temp_dir("import", &format!("format-{k}"));
        let mut args = vec!["import", "--venue", venue, "--format", format, "--strict"];
        let paths: Vec<String> = files.iter().map(|f| format!("{CAPTURES}/{f}")).collect();
        args.extend(paths.iter().map(String::as_str));
        let out_arg = out_dir.to_string_lossy().into_owned();
        args.extend(["--out", &out_arg]);
        let out = tickwire(&args);
        let err = stderr(&out);
        assert!(out.status.success(), "{args:?}:\n{err}");
        assert!(
            err.contains("imported ") && err.contains("errors (skipped): 0"),
            "{args:?}: the summary:\n{err}"
        );
        let frames = frames_of(&out_dir);
        let kinds: BTreeMap<&str, usize> = frames.iter().fold(BTreeMap::new(), |mut m, f| {
            *m.entry(import::kind_name(&f.body)).or_default() += 1;
            m
        });
        assert!(kinds.contains_key(must_have), "{args:?}: {kinds:?}");
        assert!(kinds.contains_key("definition"), "{args:?}: {kinds:?}");
        // As published: contiguous seq per stream, frame time = ts_publish = ts_recv, never
        // going back.
        let mut next: HashMap<(u32, Channel), u64> = HashMap::new();
        let mut last_ts = 0;
        for f in &frames {
            let n = next.entry((f.instrument, f.channel())).or_insert(1);
            assert_eq!(f.seq, *n, "{args:?}: seq of {f:?}");
            *n += 1;
            assert_eq!(f.ts_publish, f.ts_recv, "{args:?}: {f:?}");
            assert!(
                f.ts_recv >= last_ts && f.ts_recv > 1_500_000_000_000_000_000,
                "{f:?}"
            );
            last_ts = f.ts_recv;
        }
        let _ = std::fs::remove_dir_all(&out_dir);
    }
}

/// A wrong `--format`, a garbage file, a missing file, a directory given as a capture, a
/// recording without raw records: each is refused with a message naming the input (and the
/// line), and no recording is written.
#[test]
fn a_wrong_format_or_garbage_is_refused_and_nothing_is_written() {
    let garbage = std::env::temp_dir().join(format!("tickwire-garbage-{}", std::process::id()));
    let mut bytes: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    bytes[0] = b'#';
    std::fs::write(&garbage, &bytes).unwrap();
    let garbage = garbage.to_string_lossy().into_owned();
    let cf = format!("{CAPTURES}/okx_v5/books_trades_tickers/OKX.ws.1.0");
    let no_raw = temp_dir("import", "no-raw");
    import_in_process(ImportFormat::Hftbacktest, &[Path::new(BTCUSDT)], &no_raw);
    let no_raw_arg = no_raw.to_string_lossy().into_owned();
    let out_dir = temp_dir("import", "refused");
    let out_arg = out_dir.to_string_lossy().into_owned();
    let cases: Vec<(Vec<&str>, Vec<String>)> = vec![
        (
            vec!["--venue", "binance", "--format", "cryptofeed", BTCUSDT],
            vec![
                format!("{BTCUSDT}:1:"),
                "--format cryptofeed".into(),
                "use --format hftbacktest".into(),
            ],
        ),
        (
            vec!["--venue", "okx", "--format", "hftbacktest", &cf],
            vec![format!("{cf}:1:"), "use --format cryptofeed".into()],
        ),
        (
            vec!["--venue", "binance", "--format", "hftbacktest", &garbage],
            vec![
                format!("{garbage}:1:"),
                "not a capture line".into(),
                "formats:".into(),
            ],
        ),
        (
            vec!["--venue", "binance", "--format", "recording", &garbage],
            vec![garbage.clone(), "not a recording directory".into()],
        ),
        (
            vec![
                "--venue",
                "binance",
                "--format",
                "hftbacktest",
                "/nonexistent/capture.gz",
            ],
            vec!["/nonexistent/capture.gz".into()],
        ),
        (
            vec!["--venue", "binance", "--format", "hftbacktest", &no_raw_arg],
            vec!["is a directory".into(), "--format recording".into()],
        ),
        (
            vec!["--format", "recording", &no_raw_arg],
            vec!["holds no raw records".into(), "--record-raw".into()],
        ),
        (
            vec!["--format", "hftbacktest", BTCUSDT],
            vec!["needs --venue".into()],
        ),
    ];
    for (args, expect) in cases {
        let mut all = vec!["import"];
        all.extend(&args);
        all.extend(["--out", &out_arg]);
        let out = tickwire(&all);
        let err = stderr(&out);
        assert!(!out.status.success(), "{all:?} succeeded");
        for e in &expect {
            assert!(err.contains(e.as_str()), "{all:?}: no {e:?} in:\n{err}");
        }
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            !out_dir.exists(),
            "{all:?}: {} was created",
            out_dir.display()
        );
    }
    // An unknown format is refused by the command line, listing the formats.
    let out = tickwire(&[
        "import", "--venue", "binance", "--format", "csv", BTCUSDT, "--out", &out_arg,
    ]);
    let err = stderr(&out);
    assert!(
        !out.status.success() && err.contains("hftbacktest") && err.contains("cryptofeed"),
        "{err}"
    );
    let _ = std::fs::remove_file(&garbage);
    let _ = std::fs::remove_dir_all(&no_raw);
}

/// `serve --record` with raw data kept: the raw records hold the feed's connect, every venue
/// message and the REST snapshot, in order; normalizing them again (`import --format
/// recording`) gives the recorded frames exactly, but for `ts_publish` (the live sequencer's
/// clock there, `ts_recv` in the re-normalized recording). `ts_recv` and `ts_exchange` are
/// equal: the raw records carry the receive time the normalizer was given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_records_normalized_again_give_the_recorded_frames() {
    let dir = temp_dir("import", "raw");
    let sim = capture_sim().await;
    let d = dir.clone();
    let server = server_for(&sim, &["btcusdt"], move |c| {
        c.record = Some(RecorderConfig {
            dir: d,
            options: WriterOptions {
                keep_raw: true,
                records_per_block: 128,
                ..WriterOptions::default()
            },
        })
    })
    .await;
    wait_subscribed(&sim, 3).await;
    sim.run_items(6_000);
    wait_for(
        "the simulator to send its items",
        Duration::from_secs(60),
        || sim.status()["running"] == false,
    )
    .await;
    let mut last = u64::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let p = server.published();
        if p == last {
            break;
        }
        last = p;
    }
    let stats = server.recorder_stats().expect("recording");
    let raw_lost = server.feed_stats[0]
        .raw_lost
        .load(std::sync::atomic::Ordering::Relaxed);
    server.shutdown().await;
    sim.shutdown().await;
    assert_eq!(raw_lost, 0);
    assert_eq!(stats.raw_lost.load(std::sync::atomic::Ordering::Relaxed), 0);

    // The raw records: connect (with the configured symbols) first, the venue's messages and
    // the REST snapshot, the disconnect last.
    let rec = Recording::open(&dir).unwrap();
    let raw: Vec<(u64, u16, Vec<u8>)> = rec
        .raw_frames(TimeRange::ALL)
        .map(|r| {
            let r = r.expect("no damaged raw block");
            (r.ts_recv, r.venue, r.bytes.to_vec())
        })
        .collect();
    let events: Vec<String> = raw
        .iter()
        .map(|(ts, venue, bytes)| {
            let record = tickwire_sdk::recording::RawRecord {
                ts_recv: *ts,
                venue: *venue,
                bytes,
            };
            match RawEvent::decode(&record).expect("a raw record") {
                (1, RawEvent::Message(_)) => "message".to_string(),
                (1, RawEvent::Snapshot { symbol, .. }) => format!("snapshot {symbol}"),
                (1, e) => format!("{e:?}"),
                (v, e) => panic!("venue {v}: {e:?}"),
            }
        })
        .collect();
    assert_eq!(events[0], "Connect { symbols: \"BTCUSDT\" }");
    assert!(
        events.last().unwrap().starts_with("Disconnect"),
        "{:?}",
        events.last()
    );
    assert_eq!(
        events.iter().filter(|e| *e == "snapshot BTCUSDT").count(),
        1
    );
    assert!(events.iter().filter(|e| *e == "message").count() > 5_000);
    assert_eq!(
        stats.raw.load(std::sync::atomic::Ordering::Relaxed),
        raw.len() as u64
    );

    let again = temp_dir("import", "raw-again");
    let out = tickwire(&[
        "import",
        "--format",
        "recording",
        &dir.to_string_lossy(),
        "--out",
        &again.to_string_lossy(),
        "--strict",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let recorded = frames_of(&dir);
    let renormalized = frames_of(&again);
    assert!(recorded.len() > 10_000, "{} frames", recorded.len());
    assert_eq!(recorded.len(), renormalized.len(), "number of frames");
    for (k, (a, b)) in recorded.iter().zip(&renormalized).enumerate() {
        let mut a = a.clone();
        a.ts_publish = b.ts_publish;
        assert_eq!(&a, b, "frame #{} differs", k + 1);
        assert_eq!(b.ts_publish, b.ts_recv);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&again);
}

/// `import --keep-raw`, then `import --format recording` of the result: the same frames, byte
/// for byte (an import's `ts_publish` is its `ts_recv`, so nothing differs at all).
#[test]
fn an_import_with_raw_records_imports_again_to_the_same_bytes() {
    let (first, second) = (
        temp_dir("import", "keep-raw"),
        temp_dir("import", "keep-raw-again"),
    );
    let files = [
        format!("{CAPTURES}/binance_spot/depth100ms_bookTicker_kline1m_aggTrade/BINANCE.ws.1.0"),
        format!("{CAPTURES}/binance_spot/rest_depth_snapshot/BINANCE.http.0.0"),
    ];
    let mut args = ImportArgs::new(
        Some(Venue::Binance),
        ImportFormat::Cryptofeed,
        files.iter().map(PathBuf::from).collect(),
        first.clone(),
    );
    args.keep_raw = true;
    let one = import::run(&args).expect("import");
    assert_eq!(one.raw, one.messages);
    let two = import_in_process(ImportFormat::Recording, &[&first], &second);
    assert_eq!((two.frames, two.errors), (one.frames, 0));
    let bytes = |dir: &Path| -> Vec<Vec<u8>> {
        let rec = Recording::open(dir).unwrap();
        rec.frames(Filter::all())
            .map(|r| r.unwrap().bytes().to_vec())
            .collect()
    };
    assert_eq!(bytes(&first), bytes(&second));
    let _ = std::fs::remove_dir_all(&first);
    let _ = std::fs::remove_dir_all(&second);
}

/// `tickwire record --duration` against a simulator process: it stops by itself and leaves a
/// closed recording (every segment indexed), with frames and raw records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_process_with_a_duration_leaves_a_closed_recording() {
    let dir = temp_dir("import", "record-process");
    let mut sim = tokio::process::Command::new(TICKWIRE)
        .args(["sim", "--listen", "127.0.0.1:0", "--speed", "10"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn sim");
    let mut lines = tokio::io::BufReader::new(sim.stdout.take().unwrap());
    let mut line = String::new();
    let listening = tokio::time::timeout(Duration::from_secs(30), async {
        use tokio::io::AsyncBufReadExt;
        loop {
            line.clear();
            if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                panic!("the simulator exited");
            }
            if line.starts_with("simulator listening:") {
                break line.clone();
            }
        }
    })
    .await
    .expect("the simulator listens within 30 s");
    // `simulator listening: WebSocket ws://127.0.0.1:PORT/stream, REST http://127.0.0.1:PORT/api/v3/depth ...`
    let between = |start: &str, end: &str| -> String {
        let from = listening.find(start).expect(start) + start.len();
        let len = listening[from..].find(end).expect(end);
        listening[from..from + len].to_string()
    };
    let (base, rest) = (
        between("WebSocket ", "/stream"),
        between("REST ", "/api/v3/depth"),
    );
    let out = tokio::task::spawn_blocking({
        let dir = dir.to_string_lossy().into_owned();
        move || {
            tickwire(&[
                "record",
                "--venue",
                "binance",
                "--symbols",
                "btcusdt,ethusdt",
                "--ws-url",
                &base,
                "--rest-url",
                &rest,
                "--out",
                &dir,
                "--record-raw",
                "--duration",
                "3",
            ])
        }
    })
    .await
    .unwrap();
    let _ = sim.kill().await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", stderr(&out));
    assert!(
        stdout.contains("recording to ") && stdout.contains("recorded "),
        "{stdout}"
    );

    let rec = Recording::open(&dir).expect("the recording opens");
    assert!(rec.segments().len() >= 1);
    for s in rec.segments() {
        assert!(s.indexed, "{} was not closed (no index)", s.path.display());
        assert_eq!(s.corrupt_blocks, 0, "{}", s.path.display());
    }
    let frames = frames_of(&dir);
    assert!(frames.len() > 100, "{} frames", frames.len());
    let symbols: Vec<String> = rec.instruments().into_iter().map(|i| i.symbol).collect();
    assert!(symbols.contains(&"BTCUSDT".to_string()), "{symbols:?}");
    assert!(rec.raw_frames(TimeRange::ALL).count() > 100);
    // The feed's last status, written before the recording was closed.
    let last_status = frames.iter().rev().find_map(|f| match &f.body {
        Body::Status(s) => Some(s.detail.clone()),
        _ => None,
    });
    assert_eq!(last_status.as_deref(), Some("shutdown"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The recording shipped in replay-data/ is what `tickwire import` makes of the first
/// `SHIPPED_SECONDS` of the capture today, frame for frame and byte for byte: a change to
/// the normalizer or the import that changes its frames fails here, and the recording is
/// regenerated with the command in its ATTRIBUTION.md.
#[test]
fn the_shipped_recording_is_what_import_makes_of_the_capture() {
    let dir = temp_dir("import", "shipped");
    let mut args = ImportArgs::new(
        Some(Venue::Binance),
        ImportFormat::Hftbacktest,
        vec![PathBuf::from(BTCUSDT)],
        dir.clone(),
    );
    args.first = Some(Duration::from_secs(SHIPPED_SECONDS));
    import::run(&args).expect("import");
    let bytes = |dir: &Path| -> Vec<Vec<u8>> {
        let rec = Recording::open(dir).unwrap();
        rec.frames(Filter::all())
            .map(|r| r.expect("sound").bytes().to_vec())
            .collect()
    };
    let (fresh, shipped) = (bytes(&dir), bytes(Path::new(SHIPPED)));
    assert_eq!(
        fresh.len(),
        shipped.len(),
        "frames: regenerate {SHIPPED} (see its ATTRIBUTION.md)"
    );
    for (k, (a, b)) in fresh.iter().zip(&shipped).enumerate() {
        assert!(
            a == b,
            "frame #{} differs from the shipped recording's: regenerate it (see its ATTRIBUTION.md)",
            k + 1
        );
    }
    let size: u64 = std::fs::read_dir(SHIPPED)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(size < 2 << 20, "the shipped recording grew to {size} bytes");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A raw sink that refuses the messages whose index is in `refuse`, as a full queue would.
struct Refusing {
    seen: std::sync::atomic::AtomicU64,
    refuse: std::ops::Range<u64>,
    taken: std::sync::Mutex<Vec<RawMessage>>,
}

impl RawSink for Refusing {
    fn try_push_raw(&self, m: RawMessage) -> Result<(), RawMessage> {
        let n = self.seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.refuse.contains(&n) {
            return Err(m);
        }
        self.taken.lock().unwrap().push(m);
        Ok(())
    }
}

/// The raw data is never lost silently: when the raw sink (the recorder's bounded queue) has
/// no room, the feed driver does not wait (the frames go on), counts each lost message, and
/// the next message it hands over carries the count; the recorder writes a `gap` record at
/// that place and counts it; normalizing the recording again flags the book there (a
/// `disconnected` status naming the loss) instead of building on a hole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_raw_queue_is_counted_and_marked_in_the_raw_data() {
    let sim = capture_sim().await;
    let mut spec = tickwire_feed::binance::BinanceSpot::new(vec!["btcusdt".into()])
        .at(&sim.ws_url(), &sim.rest_url());
    spec.snapshot_depth = 5000;
    let sink = std::sync::Arc::new(Refusing {
        seen: Default::default(),
        refuse: 300..350,
        taken: Default::default(),
    });
    let (frames_tx, frames_rx) = crossbeam::channel::unbounded::<Frame>();
    let stats = std::sync::Arc::new(driver::DriverStats::default());
    let (stop, stop_rx) = driver::Shutdown::new();
    let task = tokio::spawn(driver::run_with_raw(
        std::sync::Arc::new(spec),
        std::sync::Arc::new(frames_tx),
        Some(sink.clone() as std::sync::Arc<dyn RawSink>),
        driver::DriverConfig::default(),
        stats.clone(),
        stop_rx,
    ));
    wait_subscribed(&sim, 3).await;
    sim.run_items(1_000);
    wait_for(
        "the simulator to send its items",
        Duration::from_secs(60),
        || sim.status()["running"] == false,
    )
    .await;
    let read = || stats.messages.load(std::sync::atomic::Ordering::Relaxed);
    wait_for("the feed to read them", Duration::from_secs(30), || {
        read() >= 900
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.trigger();
    task.await.unwrap();
    sim.shutdown().await;
    assert_eq!(
        stats.raw_lost.load(std::sync::atomic::Ordering::Relaxed),
        50
    );
    let taken = std::mem::take(&mut *sink.taken.lock().unwrap());
    assert_eq!(
        taken.len() as u64 + 50,
        sink.seen.load(std::sync::atomic::Ordering::Relaxed)
    );
    let marked: Vec<(usize, u64)> = (taken.iter().enumerate())
        .filter(|(_, m)| m.lost_before > 0)
        .map(|(k, m)| (k, m.lost_before))
        .collect();
    assert_eq!(
        marked,
        [(300, 50)],
        "the message after the loss carries its count"
    );
    assert!(frames_rx.len() > 1_000, "the frames were not held back");

    // The recorder turns the count into a gap record, at its place, and counts it.
    let dir = temp_dir("import", "raw-gap");
    let seq = tickwire_engine::sequencer::start(1 << 10, Default::default());
    let queue = std::sync::Arc::new(RawQueue::new(taken.len() + 1));
    let recorder = tickwire_engine::recorder::start(
        seq.ring(),
        RecorderConfig {
            dir: dir.clone(),
            options: WriterOptions {
                keep_raw: true,
                ..WriterOptions::default()
            },
        },
        vec![queue.clone()],
    )
    .unwrap();
    for m in taken {
        queue.try_push_raw(m).expect("room");
    }
    let rstats = recorder.stats.clone();
    recorder.stop().unwrap();
    seq.stop();
    assert_eq!(
        rstats.raw_lost.load(std::sync::atomic::Ordering::Relaxed),
        50
    );
    let rec = Recording::open(&dir).unwrap();
    let gaps: Vec<usize> = (rec.raw_frames(TimeRange::ALL).enumerate())
        .filter_map(|(k, r)| {
            let r = r.unwrap();
            matches!(RawEvent::decode(&r), Ok((1, RawEvent::Gap { lost: 50 }))).then_some(k)
        })
        .collect();
    assert_eq!(gaps, [300]);

    // Normalized again: the book is flagged where the messages are missing.
    let again = temp_dir("import", "raw-gap-again");
    let summary = import_in_process(ImportFormat::Recording, &[&dir], &again);
    assert_eq!(summary.errors, 0);
    let frames = frames_of(&again);
    let at = frames
        .iter()
        .position(|f| matches!(&f.body, Body::Status(s) if s.detail.contains("50 raw venue messages were lost")))
        .expect("a status at the gap");
    // No book frame after it is presented as sound until a new snapshot: here the raw data
    // holds none, so the book stays unsynced (and says so).
    let mut resynced = false;
    for f in frames[at..].iter().filter(|f| f.channel() == Channel::Book) {
        resynced |= matches!(f.body, Body::BookSnapshot(_));
        assert!(
            resynced || f.flags & flags::BAD_BOOK != 0,
            "an unflagged book frame after the gap: {f:?}"
        );
    }
    assert!(
        frames[..at]
            .iter()
            .any(|f| matches!(f.body, Body::BookSnapshot(_))),
        "the book was synced before the gap"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&again);
}
