//! `Replay` on recordings written here with `RecordingWriter`: exactly the selected frames,
//! byte for byte and in order, against a filter computed independently; pacing at 1x and
//! 10x; gaps; a flipped byte; the errors; and one strategy run on a replay and on a live
//! client (a scripted fake server on 127.0.0.1) with the same result.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tickwire_sdk::client::{Client, ClientError, Event};
use tickwire_sdk::recording::format::BLOCK_HEADER_LEN;
use tickwire_sdk::recording::format::{BlockKind, decode_segment_header};
use tickwire_sdk::recording::scan::{Found, scan};
use tickwire_sdk::recording::{Filter, FsyncPolicy, Recording, WriterOptions};
use tickwire_sdk::replay::{Replay, ReplayError, ReplayEvent, Speed};
use tickwire_sdk::source::FrameSource;
use tickwire_sdk::wire::{
    ArchivedBody, BatchWriter, Body, BookDelta, BookSide, BookSnapshot, Channel, Definition, Frame,
    InstrumentInfo, Level, Quote, Side, Status, StatusCode, Trade, TradeId, TradeSummary, Venue,
    encode, flags, instrument_id,
};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

mod common;

use common::{Rng, TempDir, ts_of, write_all};

// ---------------------------------------------------------------------------------------------
// Helpers

const SYMBOLS: [(Venue, &str); 3] = [
    (Venue::Binance, "BTCUSDT"),
    (Venue::Binance, "ETHUSDT"),
    (Venue::Coinbase, "BTC-USD"),
];

const T0: u64 = 1_700_000_000_000_000_000;

fn infos() -> Vec<InstrumentInfo> {
    SYMBOLS
        .iter()
        .map(|(v, s)| InstrumentInfo::new(*v, s, 2, 6))
        .collect()
}

fn small_blocks() -> WriterOptions {
    WriterOptions {
        records_per_block: 16,
        max_segment_bytes: 16 << 10,
        fsync: FsyncPolicy::Never,
        ..WriterOptions::default()
    }
}

fn trade(i: u64) -> Body {
    Body::Trade(Trade {
        price: (60_000 + (i % 50) as i64) * 1_000_000_000,
        qty: 1_000 + i as i64,
        side: if i.is_multiple_of(2) {
            Side::Buy
        } else {
            Side::Sell
        },
        trade_id: TradeId::Num(i),
    })
}

/// `n` frames of every kind over three instruments, plus venue-wide frames (instrument 0),
/// each stream's `seq` without holes, recorded times strictly increasing (1 µs apart plus
/// jitter below that), some filed under `ts_recv` (no `ts_publish`).
fn varied_frames(n: u64) -> Vec<Frame> {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut seqs: HashMap<(u32, Channel), u64> = HashMap::new();
    let mut out = Vec::new();
    for i in 0..n {
        let (venue, symbol) = SYMBOLS[rng.below(3) as usize];
        let mut id = instrument_id(venue, symbol);
        let px = 1_000_000_000 * (100 + rng.below(100) as i64);
        let mut fl = 0;
        let body = match rng.below(24) {
            0..=7 => trade(i),
            8..=11 => Body::Quote(Quote {
                bid_px: px,
                bid_qty: 5,
                ask_px: px + 1,
                ask_qty: 7,
            }),
            12..=17 => {
                fl = flags::LAST;
                Body::BookDelta(BookDelta {
                    side: BookSide::Bid,
                    price: px,
                    qty: rng.below(10) as i64,
                })
            }
            18 => {
                fl = flags::SNAPSHOT | flags::LAST;
                Body::BookSnapshot(BookSnapshot {
                    bids: vec![Level { price: px, qty: 1 }; 5],
                    asks: vec![
                        Level {
                            price: px + 1,
                            qty: 1
                        };
                        5
                    ],
                })
            }
            19 => {
                fl = flags::CONFLATED;
                Body::TradeSummary(Box::new(TradeSummary {
                    count: 3,
                    volume: 3,
                    vwap: px,
                    high: px,
                    low: px,
                    last: Trade {
                        price: px,
                        qty: 1,
                        side: Side::Buy,
                        trade_id: TradeId::None,
                    },
                }))
            }
            20 => Body::Definition(Definition {
                symbol: symbol.into(),
                price_decimals: 2,
                qty_decimals: 6,
            }),
            21 => Body::Status(Status {
                code: StatusCode::Connected,
                detail: String::new(),
            }),
            22 => {
                // Venue-wide: no subscriber gets it.
                id = 0;
                Body::Status(Status {
                    code: StatusCode::Disconnected,
                    detail: "venue-wide".into(),
                })
            }
            _ => {
                id = 0;
                Body::Heartbeat
            }
        };
        let mut f = Frame::new(venue, id, 0, 0, body).with_flags(fl);
        let channel = f.channel();
        if f.kind() != tickwire_sdk::wire::Kind::Heartbeat {
            let s = seqs.entry((id, channel)).or_insert(0);
            *s += 1;
            f.seq = *s;
        }
        let t = T0 + i * 1_000 + rng.below(900);
        if rng.below(4) == 0 {
            f.ts_recv = t;
        } else {
            f.ts_recv = t - 100;
            f.ts_publish = t;
        }
        out.push(f);
    }
    out
}

/// Everything a blocking replay delivers: frame bytes, and the events in order (as text).
fn drain_blocking(replay: &mut Replay) -> (Vec<Vec<u8>>, Vec<String>) {
    let mut frames = Vec::new();
    let mut events = Vec::new();
    for e in replay.blocking() {
        match e {
            Ok(ReplayEvent::Frames(batch)) => {
                events.push(format!("frames {}", batch.len()));
                for i in 0..batch.len() {
                    frames.push(batch.frame_bytes(i).unwrap().to_vec());
                }
            }
            Ok(ReplayEvent::Gap { expected, got, .. }) => {
                events.push(format!("gap {expected} {got}"))
            }
            Err(c) => events.push(format!("corrupt {}", c.offset)),
        }
    }
    (frames, events)
}

/// The same through `next().await`.
async fn drain_async(replay: &mut Replay) -> (Vec<Vec<u8>>, Vec<String>) {
    let mut frames = Vec::new();
    let mut events = Vec::new();
    while let Some(e) = replay.next().await {
        match e {
            Ok(Event::Frames(batch)) => {
                events.push(format!("frames {}", batch.len()));
                for i in 0..batch.len() {
                    frames.push(batch.frame_bytes(i).unwrap().to_vec());
                }
            }
            Ok(Event::Gap { expected, got, .. }) => events.push(format!("gap {expected} {got}")),
            Ok(other) => panic!("a replay gives frames and gaps only, got {other:?}"),
            Err(ClientError::Corrupt { offset, .. }) => events.push(format!("corrupt {offset}")),
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    (frames, events)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Selection

#[test]
fn max_speed_gives_exactly_the_selected_frames_byte_for_byte_in_order() {
    let tmp = TempDir::new("select");
    let frames = varied_frames(6_000);
    write_all(tmp.path(), small_blocks(), &infos(), &frames);
    let rec = Recording::open(tmp.path()).unwrap();
    assert!(rec.segments().len() > 3, "several segments");
    drop(rec);

    let (from, to) = (ts_of(&frames[700]), ts_of(&frames[5_100]));
    let cases: Vec<(Vec<&str>, Vec<Channel>)> = vec![
        (vec!["binance:BTCUSDT"], vec![Channel::Trades]),
        (
            vec!["binance:BTCUSDT", "coinbase:BTC-USD"],
            vec![Channel::Book, Channel::Quotes],
        ),
        (vec!["binance:ETHUSDT"], vec![]),
        (vec!["binance:*"], vec![Channel::Trades, Channel::Control]),
        (vec!["*"], vec![Channel::Book]),
    ];
    for (symbols, channels) in cases {
        // The filter, computed here from the frames as written.
        let ids: HashSet<u32> = SYMBOLS
            .iter()
            .filter(|(v, s)| {
                symbols.iter().any(|name| {
                    *name == "*"
                        || *name == format!("{}:*", v.name())
                        || name.eq_ignore_ascii_case(&format!("{}:{s}", v.name()))
                })
            })
            .map(|(v, s)| instrument_id(*v, s))
            .collect();
        let data: Vec<Channel> = if channels.is_empty() {
            Channel::SUBSCRIBABLE.to_vec()
        } else {
            channels.clone()
        };
        let expected: Vec<Vec<u8>> = frames
            .iter()
            .filter(|f| {
                ids.contains(&f.instrument)
                    && (f.channel() == Channel::Control || data.contains(&f.channel()))
                    && (from..to).contains(&ts_of(f))
            })
            .map(encode)
            .collect();
        assert!(expected.len() > 100, "{symbols:?} {channels:?}");

        let mut replay = Replay::builder(tmp.path())
            .from(from)
            .to(to)
            .open()
            .unwrap();
        replay.subscribe(&symbols, &channels).unwrap();
        let (got, events) = drain_blocking(&mut replay);
        assert_eq!(got.len(), expected.len(), "{symbols:?} {channels:?}");
        assert!(
            got == expected,
            "{symbols:?} {channels:?}: same bytes, same order"
        );
        assert!(
            events.iter().all(|e| e.starts_with("frames ")),
            "no gap, no damage: {events:?}"
        );
        assert_eq!(replay.delivered(), expected.len() as u64);
        assert_eq!(replay.seq().holes(), 0);

        // The async interface gives the same.
        replay.rewind();
        let (again, _) = runtime().block_on(drain_async(&mut replay));
        assert!(again == expected, "{symbols:?} {channels:?}: async");
    }
}

#[test]
fn batches_point_into_the_recordings_map() {
    let tmp = TempDir::new("zerocopy");
    let frames = varied_frames(500);
    write_all(tmp.path(), small_blocks(), &infos(), &frames);
    let mut replay = Replay::open(tmp.path()).unwrap();
    replay.subscribe(&["*"], &[]).unwrap();
    let mapped: Vec<usize> = replay
        .recording()
        .frames(Filter::all())
        .map(|f| f.unwrap())
        .filter(|f| f.instrument() != 0)
        .map(|f| f.bytes().as_ptr() as usize)
        .collect();
    let mut seen = Vec::new();
    while let Some(e) = replay.next_blocking() {
        if let ReplayEvent::Frames(batch) = e.unwrap() {
            for i in 0..batch.len() {
                seen.push(batch.frame_bytes(i).unwrap().as_ptr() as usize);
            }
        }
    }
    assert_eq!(seen, mapped, "every frame is read in place, not copied");
}

#[test]
fn subscriptions_change_and_rewind() {
    let tmp = TempDir::new("resub");
    let frames = varied_frames(2_000);
    write_all(tmp.path(), small_blocks(), &infos(), &frames);
    let btc = instrument_id(Venue::Binance, "BTCUSDT");
    let mut replay = Replay::open(tmp.path()).unwrap();
    replay
        .subscribe(&["binance:btcusdt", "binance:ETHUSDT"], &[Channel::Trades])
        .unwrap();
    let mut subs: Vec<(u32, Channel)> = replay.subscriptions().collect();
    subs.sort();
    assert_eq!(subs.len(), 2);
    let (both, _) = drain_blocking(&mut replay);
    replay.rewind();
    replay
        .unsubscribe(&["binance:ETHUSDT"], &[Channel::Trades])
        .unwrap();
    assert_eq!(
        replay.subscriptions().collect::<Vec<_>>(),
        vec![(btc, Channel::Trades)]
    );
    let (one, _) = drain_blocking(&mut replay);
    let expected_one = frames
        .iter()
        .filter(|f| {
            f.instrument == btc && matches!(f.channel(), Channel::Trades | Channel::Control)
        })
        .count();
    assert_eq!(one.len(), expected_one);
    assert!(both.len() > one.len());
    assert_eq!(replay.seq().holes(), 0);
    // Definitions in the recording's lists, and learned from frames.
    assert_eq!(
        replay.instruments().get(btc).map(|i| i.qualified()),
        Some("binance:BTCUSDT".to_string())
    );
}

// ---------------------------------------------------------------------------------------------
// Pacing

/// Trades of one instrument, `every` apart in recorded time.
fn evenly_spaced(n: u64, every: Duration) -> Vec<Frame> {
    let btc = instrument_id(Venue::Binance, "BTCUSDT");
    (0..n)
        .map(|i| {
            let mut f = Frame::new(Venue::Binance, btc, 0, 0, trade(i));
            f.seq = i + 1;
            f.ts_recv = T0 + i * every.as_nanos() as u64;
            f.ts_publish = f.ts_recv + 10_000;
            f
        })
        .collect()
}

/// Checks delivery times of a paced replay: never earlier than recorded time over the
/// factor allows (90% of the span, measured from before the first frame was asked for),
/// frame to frame in order; the upper bound is only a sanity bound of many seconds.
fn check_pacing(start: Instant, deliveries: &[Instant], span: Duration, factor: f64) {
    let least = span.mul_f64(0.9 / factor);
    let took = deliveries.last().unwrap().duration_since(start);
    assert!(took >= least, "took {took:?}, at least {least:?} expected");
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert!(
        deliveries.windows(2).all(|w| w[0] <= w[1]),
        "delivery times are monotone"
    );
}

#[test]
fn paced_at_1x_follows_recorded_time() {
    let tmp = TempDir::new("pace1");
    // 31 frames 10 ms apart: 300 ms of recorded time, across blocks of 4.
    let frames = evenly_spaced(31, Duration::from_millis(10));
    let options = WriterOptions {
        records_per_block: 4,
        ..small_blocks()
    };
    write_all(tmp.path(), options, &infos(), &frames);
    let mut replay = Replay::builder(tmp.path())
        .speed(Speed::Factor(1.0))
        .open()
        .unwrap();
    replay.subscribe(&["binance:BTCUSDT"], &[]).unwrap();
    let rt = runtime();
    let (deliveries, got, start) = rt.block_on(async {
        let start = Instant::now();
        let mut deliveries = Vec::new();
        let mut got = Vec::new();
        while let Some(e) = replay.next().await {
            if let Event::Frames(batch) = e.unwrap() {
                let now = Instant::now();
                for i in 0..batch.len() {
                    deliveries.push(now);
                    got.push(batch.frame_bytes(i).unwrap().to_vec());
                }
            }
        }
        (deliveries, got, start)
    });
    assert_eq!(got, frames.iter().map(encode).collect::<Vec<_>>());
    check_pacing(start, &deliveries, Duration::from_millis(300), 1.0);
}

#[test]
fn paced_at_10x_follows_recorded_time_without_a_runtime() {
    let tmp = TempDir::new("pace10");
    // 201 frames 10 ms apart: 2 s of recorded time, 200 ms at 10x.
    let frames = evenly_spaced(201, Duration::from_millis(10));
    write_all(tmp.path(), small_blocks(), &infos(), &frames);
    let mut replay = Replay::builder(tmp.path())
        .speed(Speed::Factor(10.0))
        .open()
        .unwrap();
    assert_eq!(replay.speed(), Speed::Factor(10.0));
    replay
        .subscribe(&["binance:BTCUSDT"], &[Channel::Trades])
        .unwrap();
    let start = Instant::now();
    let mut deliveries = Vec::new();
    let mut n = 0;
    for e in replay.blocking() {
        if let ReplayEvent::Frames(batch) = e.unwrap() {
            let now = Instant::now();
            n += batch.len();
            deliveries.extend(std::iter::repeat_n(now, batch.len()));
        }
    }
    assert_eq!(n, frames.len());
    check_pacing(start, &deliveries, Duration::from_secs(2), 10.0);
}

// ---------------------------------------------------------------------------------------------
// Gaps and damage

#[test]
fn a_seq_hole_gives_a_gap_before_the_batch_that_holds_it() {
    let tmp = TempDir::new("gap");
    let mut frames = evenly_spaced(6, Duration::from_micros(1));
    // seq 1 2 3 5 6 7: frame 4 was lost before it was recorded.
    for f in &mut frames[3..] {
        f.seq += 1;
    }
    let options = WriterOptions {
        records_per_block: 2,
        ..small_blocks()
    };
    write_all(tmp.path(), options, &infos(), &frames);
    let mut replay = Replay::open(tmp.path()).unwrap();
    replay
        .subscribe(&["binance:BTCUSDT"], &[Channel::Trades])
        .unwrap();
    let (got, events) = drain_blocking(&mut replay);
    assert_eq!(got.len(), 6);
    assert_eq!(
        events,
        ["frames 2", "gap 4 5", "frames 2", "frames 2"],
        "the gap comes just before the batch holding seq 5"
    );
    assert_eq!(replay.seq().holes(), 1);

    // The live client's event, through the async interface.
    replay.rewind();
    let rt = runtime();
    let gap = rt.block_on(async {
        loop {
            match replay.next().await.expect("a gap comes").unwrap() {
                Event::Gap {
                    instrument,
                    channel,
                    expected,
                    got,
                } => break (instrument, channel, expected, got),
                _ => continue,
            }
        }
    });
    assert_eq!(
        gap,
        (
            instrument_id(Venue::Binance, "BTCUSDT"),
            Channel::Trades,
            4,
            5
        )
    );
}

/// File offsets of the frames blocks of a segment, found by scanning it.
fn frames_blocks(segment: &Path) -> Vec<usize> {
    let bytes = std::fs::read(segment).unwrap();
    let header = decode_segment_header(&bytes).unwrap();
    scan(&bytes, header.data_start())
        .found
        .iter()
        .filter_map(|f| match f {
            Found::Block { offset, header } if header.kind == BlockKind::Frames => Some(*offset),
            _ => None,
        })
        .collect()
}

#[test]
fn a_flipped_byte_is_reported_with_its_offset_and_the_other_blocks_still_come() {
    let tmp = TempDir::new("flip");
    let frames = evenly_spaced(64, Duration::from_micros(1));
    let options = WriterOptions {
        records_per_block: 8,
        ..WriterOptions::default()
    };
    write_all(tmp.path(), options, &infos(), &frames);
    let segment = Recording::open(tmp.path())
        .unwrap()
        .segments()
        .next()
        .unwrap()
        .path
        .clone();
    let blocks = frames_blocks(&segment);
    assert_eq!(blocks.len(), 8);
    let damaged = blocks[2];
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[damaged + BLOCK_HEADER_LEN + 20] ^= 0x40;
    std::fs::write(&segment, &bytes).unwrap();

    let expected: Vec<Vec<u8>> = frames
        .iter()
        .enumerate()
        .filter(|(i, _)| !(16..24).contains(i))
        .map(|(_, f)| encode(f))
        .collect();
    let mut replay = Replay::open(tmp.path()).unwrap();
    replay.subscribe(&["binance:BTCUSDT"], &[]).unwrap();
    // The error item names the file and the block's offset.
    let mut errors = Vec::new();
    for e in replay.blocking() {
        if let Err(c) = e {
            errors.push(c);
        }
    }
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].file, segment);
    assert_eq!(errors[0].offset, damaged as u64);
    assert!(
        errors[0]
            .to_string()
            .contains(&segment.display().to_string()),
        "{}",
        errors[0]
    );

    replay.rewind();
    let (got, events) = drain_blocking(&mut replay);
    assert!(got == expected, "every other block comes");
    assert_eq!(
        events,
        [
            "frames 8",
            "frames 8",
            &format!("corrupt {damaged}"),
            "gap 17 25",
            "frames 8",
            "frames 8",
            "frames 8",
            "frames 8",
            "frames 8"
        ]
    );
    // The async interface reports it as the client's error, then goes on.
    replay.rewind();
    let (got, events) = runtime().block_on(drain_async(&mut replay));
    assert!(got == expected);
    assert!(events.contains(&format!("corrupt {damaged}")));
}

/// The events of `replay` as text (frames by their bytes), `n` of them or up to the end.
fn log_events(replay: &mut Replay, n: usize, log: &mut Vec<String>) {
    for _ in 0..n {
        match replay.next_blocking() {
            None => return,
            Some(Ok(ReplayEvent::Frames(batch))) => {
                log.push(format!("frames {}", batch.len()));
                for i in 0..batch.len() {
                    log.push(format!("{:?}", batch.frame_bytes(i).unwrap()));
                }
            }
            Some(Ok(ReplayEvent::Gap { expected, got, .. })) => {
                log.push(format!("gap {expected} {got}"))
            }
            Some(Err(c)) => log.push(format!("corrupt {} {}", c.file.display(), c.offset)),
        }
    }
}

#[test]
fn read_ahead_gives_the_same_events_as_reading_in_place() {
    let tmp = TempDir::new("ahead");
    let btc = instrument_id(Venue::Binance, "BTCUSDT");
    // The first segments hold only BTCUSDT, so a replay of ETHUSDT skips them whole.
    let frames: Vec<Frame> = varied_frames(4_000)
        .into_iter()
        .enumerate()
        .filter(|(i, f)| *i >= 1_500 || f.instrument == btc)
        .map(|(_, f)| f)
        .collect();
    write_all(tmp.path(), small_blocks(), &infos(), &frames);
    let segments: Vec<_> = Recording::open(tmp.path())
        .unwrap()
        .segments()
        .map(|s| s.path.clone())
        .collect();
    assert!(segments.len() > 6, "{} segments", segments.len());
    // A damaged block in a later segment (one that holds every instrument).
    let damaged = &segments[segments.len() - 3];
    let block = frames_blocks(damaged)[1];
    let mut bytes = std::fs::read(damaged).unwrap();
    bytes[block + BLOCK_HEADER_LEN + 12] ^= 0x01;
    std::fs::write(damaged, &bytes).unwrap();

    // Subscriptions change between reads, and a rewind: the read-ahead thread is restarted
    // from where the replay stands each time.
    let script = |read_ahead: bool| {
        let mut replay = Replay::builder(tmp.path())
            .read_ahead(read_ahead)
            .open()
            .unwrap();
        let mut log = Vec::new();
        replay.subscribe(&["binance:ETHUSDT"], &[]).unwrap();
        log_events(&mut replay, 3, &mut log);
        replay
            .subscribe(&["binance:BTCUSDT"], &[Channel::Trades])
            .unwrap();
        log_events(&mut replay, 5, &mut log);
        replay.unsubscribe(&["binance:ETHUSDT"], &[]).unwrap();
        log_events(&mut replay, 4, &mut log);
        replay.rewind();
        replay.subscribe(&["*"], &[Channel::Book]).unwrap();
        log_events(&mut replay, usize::MAX, &mut log);
        assert!(replay.next_blocking().is_none(), "the end stays the end");
        (log, replay.delivered())
    };
    let (ahead, delivered) = script(true);
    assert_eq!((ahead.clone(), delivered), script(false));
    let corrupt = format!("corrupt {} {block}", damaged.display());
    assert_eq!(
        ahead.iter().filter(|e| **e == corrupt).count(),
        1,
        "reported once"
    );
    assert!(delivered > 1_000, "{delivered} frames");

    // Dropped mid-way, with the thread blocked on a full queue: the drop stops the thread
    // and returns (on another thread, so that a hang fails the test instead of stalling it).
    let dir = tmp.path().to_path_buf();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut replay = Replay::builder(&dir).read_ahead(true).open().unwrap();
        replay.subscribe(&["*"], &[]).unwrap();
        assert!(replay.next_blocking().is_some());
        std::thread::sleep(Duration::from_millis(50));
        drop(replay);
        done_tx.send(()).unwrap();
    });
    done_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("dropping a replay stops its read-ahead thread");
}

// ---------------------------------------------------------------------------------------------
// Errors

#[test]
fn errors_say_what_is_wrong_and_what_to_pass() {
    let tmp = TempDir::new("errors");
    let missing = tmp.path().join("nope");
    let e = Replay::open(&missing).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, ReplayError::NotFound { .. }), "{e:?}");
    assert!(
        text.contains("does not exist") && text.contains("pass the directory"),
        "{text}"
    );

    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let text = Replay::open(&empty).unwrap_err().to_string();
    assert!(text.contains("holds no seg-*.twrec file"), "{text}");

    let rec = tmp.path().join("rec");
    write_all(&rec, small_blocks(), &infos(), &varied_frames(50));
    let segment = Recording::open(&rec)
        .unwrap()
        .segments()
        .next()
        .unwrap()
        .path
        .clone();
    let text = Replay::open(&segment).unwrap_err().to_string();
    assert!(
        text.contains("is a file") && text.contains(&rec.display().to_string()),
        "{text}"
    );

    let mut replay = Replay::open(&rec).unwrap();
    let text = replay
        .subscribe(&["binance:SOLUSDT"], &[Channel::Trades])
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("binance:SOLUSDT")
            && text.contains("binance:BTCUSDT")
            && text.contains("coinbase:BTC-USD"),
        "names what the recording holds: {text}"
    );
    let text = replay.subscribe(&["okx:*"], &[]).unwrap_err().to_string();
    assert!(
        text.contains("okx:*") && text.contains("binance:ETHUSDT"),
        "{text}"
    );
    assert!(replay.subscribe(&["BTCUSDT"], &[]).is_err());
    assert_eq!(
        replay.subscriptions().count(),
        0,
        "nothing of a failed request"
    );

    for bad in [0.0, -1.0, f64::NAN] {
        let e = Replay::builder(&rec)
            .speed(Speed::Factor(bad))
            .open()
            .unwrap_err();
        assert!(matches!(e, ReplayError::BadSpeed(_)), "{e:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// One strategy, live and on a recording

/// What the strategy computes: trades, volume, the last mid price, holes, frames.
#[derive(Debug, Default, PartialEq, Eq)]
struct Outcome {
    trades: u64,
    volume: i64,
    last_mid: Option<i64>,
    gaps: u64,
    frames: u64,
}

/// A strategy written once against the trait.
async fn strategy(source: &mut impl FrameSource) -> Outcome {
    let mut out = Outcome::default();
    while let Some(event) = source.next().await {
        match event {
            Ok(Event::Frames(batch)) => {
                for f in batch.iter() {
                    out.frames += 1;
                    match &f.body {
                        ArchivedBody::Trade(t) => {
                            out.trades += 1;
                            out.volume += t.qty.to_native();
                        }
                        ArchivedBody::Quote(q) => {
                            out.last_mid = Some((q.bid_px.to_native() + q.ask_px.to_native()) / 2)
                        }
                        _ => {}
                    }
                }
            }
            Ok(Event::Gap { .. }) => out.gaps += 1,
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(source.seq().holes(), out.gaps);
    out
}

#[test]
fn one_strategy_gives_the_same_result_on_a_replay_and_live() {
    let tmp = TempDir::new("strategy");
    let mut frames = varied_frames(3_000);
    // A hole in BTCUSDT's trades, to be seen both ways.
    let btc = instrument_id(Venue::Binance, "BTCUSDT");
    let victim = frames
        .iter()
        .position(|f| f.instrument == btc && f.channel() == Channel::Trades && f.seq > 10)
        .unwrap();
    frames.remove(victim);
    write_all(tmp.path(), small_blocks(), &infos(), &frames);
    let symbols = ["binance:BTCUSDT"];
    let channels = [Channel::Trades, Channel::Quotes];

    let rt = runtime();
    let on_replay = rt.block_on(async {
        let mut replay = Replay::open(tmp.path()).unwrap();
        replay.subscribe(&symbols, &channels).unwrap();
        strategy(&mut replay).await
    });
    assert_eq!(on_replay.gaps, 1);
    assert!(on_replay.trades > 100 && on_replay.last_mid.is_some());

    // Live: a fake server sends the same frames as the gateway would (batches of them),
    // then closes.
    let live = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/ws", listener.local_addr().unwrap());
        let selected: Vec<Frame> = frames
            .iter()
            .filter(|f| {
                f.instrument == btc
                    && matches!(
                        f.channel(),
                        Channel::Trades | Channel::Quotes | Channel::Control
                    )
            })
            .cloned()
            .collect();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            let req: Value = loop {
                match ws.next().await.unwrap().unwrap() {
                    Message::Text(t) => break serde_json::from_str(t.as_str()).unwrap(),
                    _ => continue,
                }
            };
            assert_eq!(req["op"], "subscribe");
            ws.send(Message::text(
                json!({"type": "subscribed", "id": req["id"], "symbols": req["symbols"],
                       "channels": req["channels"], "encoding": "binary"})
                .to_string(),
            ))
            .await
            .unwrap();
            for chunk in selected.chunks(37) {
                let mut w = BatchWriter::with_capacity(4096);
                for f in chunk {
                    w.push(&encode(f));
                }
                ws.send(Message::binary(w.take())).await.unwrap();
            }
            ws.send(Message::Close(Some(CloseFrame {
                code: 1000.into(),
                reason: "done".into(),
            })))
            .await
            .unwrap();
            // Answer the client's close.
            while let Some(Ok(_)) = ws.next().await {}
        });
        let mut client = Client::connect(&url).await.unwrap();
        client.subscribe(&symbols, &channels).await.unwrap();
        let outcome = tokio::time::timeout(Duration::from_secs(10), strategy(&mut client))
            .await
            .expect("the live run ends");
        server.await.unwrap();
        outcome
    });
    assert_eq!(live, on_replay);
}
