//! The Kraken exact-layout fast path against the scanner path: every capture message and
//! documented layout through both, frames, actions, errors and counters compared exactly
//! after every message, and mutated messages (byte flips, truncations, reordered keys,
//! escapes, exponents, spaces) giving the same result on both paths, without panics.

use std::collections::BTreeMap;

use tickwire_feed::capture::{CaptureReader, RecordKind};
use tickwire_feed::kraken::KrakenNormalizer;
use tickwire_feed::{Normalizer, Output};

const CAPTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../replay-data/captures/kraken_spot_v1"
);

fn received(path: &str) -> Vec<Vec<u8>> {
    CaptureReader::open(format!("{CAPTURES}/{path}"))
        .unwrap()
        .read_all()
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == RecordKind::Received)
        .map(|r| r.payload.to_vec())
        .collect()
}

fn normalizer(v2: bool, fast: bool) -> KrakenNormalizer {
    let mut n = if v2 {
        KrakenNormalizer::v2(&["BTC/USD".to_string()], 10)
    } else {
        KrakenNormalizer::v1(&[], 10)
    };
    n.set_fast_path(fast);
    n
}

/// Everything one message did: result, frames, actions, and the counters after it.
fn step(n: &mut KrakenNormalizer, raw: &[u8], ts: u64, out: &mut Output) -> String {
    out.clear();
    let r = n.on_message(raw, ts, out);
    format!("{r:?} {:?} {:?} {:?}", out.frames, out.actions, n.stats())
}

/// Runs `messages` through both paths, comparing after every message; returns the fast
/// path's hits.
fn same_on_both_paths(name: &str, v2: bool, messages: &[Vec<u8>]) -> u64 {
    let mut slow = normalizer(v2, false);
    let mut fast = normalizer(v2, true);
    let mut out = Output::new();
    for (k, m) in messages.iter().enumerate() {
        let a = step(&mut slow, m, 1_000 + k as u64, &mut out);
        let b = step(&mut fast, m, 1_000 + k as u64, &mut out);
        assert_eq!(
            a,
            b,
            "{name}: message {k} differs between the paths: {}",
            String::from_utf8_lossy(m)
        );
    }
    assert_eq!(slow.fast_hits(), 0);
    fast.fast_hits()
}

fn is_channel_message(m: &[u8]) -> bool {
    m.first() == Some(&b'[')
}

#[test]
fn fast_path_gives_the_scanner_frames_on_every_capture_message() {
    // (file, data messages, of which the scanner path reads): the XBT/CHF snapshot holds an
    // ask at 9,999,999,997 CHF, beyond the fixed-point i64 the fast path reads; the scanner
    // path keeps it in i128.
    for (file, data, scanner) in [
        ("book_1000/KRAKEN.ws.50.0", 10 + 4_269, 1),
        ("trade/KRAKEN.ws.48.0", 8, 0),
        ("ticker/KRAKEN.ws.49.0", 18, 0),
    ] {
        let messages = received(file);
        let hits = same_on_both_paths(file, false, &messages);
        let channel = messages.iter().filter(|m| is_channel_message(m)).count() as u64;
        assert_eq!(channel, data, "{file}");
        assert_eq!(
            hits,
            data - scanner,
            "{file}: the data messages take the fast path"
        );
    }
}

/// BTC/USD precisions (shape of the v2 `instrument` doc page).
const INSTRUMENT: &str = r#"{"channel":"instrument","type":"snapshot","data":{"assets":[{"id":"BTC","status":"enabled","precision":10,"precision_display":5,"borrowable":true,"collateral_value":1.0,"margin_rate":0.01}],"pairs":[{"symbol":"BTC/USD","base":"BTC","quote":"USD","status":"online","qty_precision":8,"qty_increment":0.00000001,"price_precision":1,"cost_precision":5,"marginable":true,"has_index":true,"cost_min":0.5,"margin_initial":0.2,"position_limit_long":250,"position_limit_short":200,"tick_size":0.1,"price_increment":0.1,"qty_min":0.0001}]}}"#;
const ACK: &str = r#"{"method":"subscribe","result":{"channel":"book","depth":10,"snapshot":true,"symbol":"BTC/USD"},"success":true,"time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z"}"#;

/// The book of docs.kraken.com "Spot Websockets (v2) Book Checksum" (checksum 3310070434).
const DOC_BIDS: [(&str, &str); 10] = [
    ("45283.5", "0.1"),
    ("45283.4", "1.54582015"),
    ("45282.1", "0.1"),
    ("45281", "0.1"),
    ("45280.3", "1.54592586"),
    ("45279", "0.0799"),
    ("45277.6", "0.03310103"),
    ("45277.5", "0.3"),
    ("45277.3", "1.54602737"),
    ("45276.6", "0.15445238"),
];
const DOC_ASKS: [(&str, &str); 10] = [
    ("45285.2", "0.001"),
    ("45286.4", "1.54571953"),
    ("45286.6", "1.54571109"),
    ("45289.6", "1.54560911"),
    ("45290.2", "0.1589066"),
    ("45291.8", "1.54553491"),
    ("45294.7", "0.04454749"),
    ("45296.1", "0.3538"),
    ("45297.5", "0.09945542"),
    ("45299.5", "0.18772827"),
];

fn fx(s: &str) -> i64 {
    let (i, f) = s.split_once('.').unwrap_or((s, ""));
    let f = format!("{f:0<9}");
    i.parse::<i64>().unwrap() * 1_000_000_000 + f[..9].parse::<i64>().unwrap()
}

fn levels(l: &[(i64, i64)]) -> String {
    let num = |v: i64| {
        let t = format!("{}.{:09}", v / 1_000_000_000, v % 1_000_000_000);
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    l.iter()
        .map(|(p, q)| format!(r#"{{"price":{},"qty":{}}}"#, num(*p), num(*q)))
        .collect::<Vec<_>>()
        .join(",")
}

/// The v2 checksum at precisions 1 and 8, written here independently.
fn v2_checksum(bids: &BTreeMap<i64, i64>, asks: &BTreeMap<i64, i64>) -> u32 {
    let f = |v: i64, dec: u32| (v / 10i64.pow(9 - dec)).to_string();
    let mut s = String::new();
    for (p, q) in asks.iter().take(10) {
        s += &f(*p, 1);
        s += &f(*q, 8);
    }
    for (p, q) in bids.iter().rev().take(10) {
        s += &f(*p, 1);
        s += &f(*q, 8);
    }
    crc32fast::hash(s.as_bytes())
}

/// A v2 session in the documented shapes: instrument, ack, the doc snapshot, then book
/// updates (checksums computed over the book), trades and tickers.
fn v2_messages() -> Vec<Vec<u8>> {
    let mut bids: BTreeMap<i64, i64> = DOC_BIDS.iter().map(|(p, q)| (fx(p), fx(q))).collect();
    let mut asks: BTreeMap<i64, i64> = DOC_ASKS.iter().map(|(p, q)| (fx(p), fx(q))).collect();
    let snap_b: Vec<_> = bids.iter().rev().map(|(p, q)| (*p, *q)).collect();
    let snap_a: Vec<_> = asks.iter().map(|(p, q)| (*p, *q)).collect();
    let mut m = vec![
        INSTRUMENT.to_string(),
        ACK.to_string(),
        format!(
            r#"{{"channel":"book","type":"snapshot","data":[{{"symbol":"BTC/USD","bids":[{}],"asks":[{}],"checksum":{},"timestamp":"2023-10-06T17:35:55.440295Z"}}]}}"#,
            levels(&snap_b),
            levels(&snap_a),
            v2_checksum(&bids, &asks)
        ),
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    for k in 0..60u64 {
        // A changed, a new or a deleted level per side; depth 10.
        let mut change = |book: &mut BTreeMap<i64, i64>, base: i64, dir: i64| {
            let price = base + dir * (rnd(30) as i64) * 100_000_000;
            let qty = if rnd(4) == 0 {
                0
            } else {
                (1 + rnd(300_000_000) as i64) * 10
            };
            if qty == 0 {
                book.remove(&price);
            } else {
                book.insert(price, qty);
            }
            (price, qty)
        };
        let b = change(&mut bids, fx("45283.5"), -1);
        let a = change(&mut asks, fx("45285.2"), 1);
        while bids.len() > 10 {
            let w = *bids.keys().next().unwrap();
            bids.remove(&w);
        }
        while asks.len() > 10 {
            let w = *asks.keys().next_back().unwrap();
            asks.remove(&w);
        }
        m.push(format!(
            r#"{{"channel":"book","type":"update","data":[{{"symbol":"BTC/USD","bids":[{}],"asks":[{}],"checksum":{},"timestamp":"2023-10-06T17:35:{:02}.440295Z"}}]}}"#,
            levels(&[b]),
            levels(&[a]),
            v2_checksum(&bids, &asks),
            k % 60
        ));
        if k % 3 == 0 {
            m.push(format!(
                r#"{{"channel":"trade","type":"update","data":[{{"symbol":"BTC/USD","side":"{}","price":45283.5,"qty":0.0{}1,"ord_type":"market","trade_id":{},"timestamp":"2023-09-25T07:49:37.708706Z"}}]}}"#,
                if k % 2 == 0 { "buy" } else { "sell" },
                k,
                4_665_906 + k / 3
            ));
        }
        if k % 5 == 0 {
            m.push(format!(
                r#"{{"channel":"ticker","type":"update","data":[{{"symbol":"BTC/USD","bid":45283.4,"bid_qty":1.5458201{},"ask":45285.2,"ask_qty":0.001,"last":45285.2,"volume":1254.4632,"vwap":45312.1,"low":45001.0,"high":45609.8,"change":-23.1,"change_pct":-0.05,"timestamp":"2023-09-25T07:49:38.000001Z"}}]}}"#,
                k % 10
            ));
        }
    }
    m.push(r#"{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy","price":45283.5,"qty":0.001,"ord_type":"market","trade_id":4665926,"timestamp":"2023-09-25T07:49:37.708706Z"},{"symbol":"BTC/USD","side":"sell","price":45283.4,"qty":1.2,"ord_type":"limit","trade_id":4665927,"timestamp":"2023-09-25T07:49:37.708706Z"}]}"#.into());
    m.push(r#"{"channel":"trade","type":"snapshot","data":[{"symbol":"BTC/USD","side":"buy","price":45283.5,"qty":0.001,"ord_type":"market","trade_id":4665928,"timestamp":"2023-09-25T07:49:37.708706Z"}]}"#.into());
    m.push(r#"{"channel":"ticker","type":"snapshot","data":[{"symbol":"BTC/USD","bid":45283.4,"bid_qty":1.54582015,"ask":45285.2,"ask_qty":0.001,"last":45285.2,"volume":1254.4632,"vwap":45312.1,"low":45001.0,"high":45609.8,"change":-23.1,"change_pct":-0.05}]}"#.into());
    m.into_iter().map(String::into_bytes).collect()
}

#[test]
fn fast_path_reads_the_documented_v2_layouts_like_the_scanner() {
    let messages = v2_messages();
    let data = messages.len() as u64 - 2; // all but the instrument and the ack
    let hits = same_on_both_paths("v2 documented", true, &messages);
    assert_eq!(hits, data);
    // And the books verified: every book message's checksum held on the fast path.
    let mut n = normalizer(true, true);
    let mut out = Output::new();
    for m in &messages {
        out.clear();
        n.on_message(m, 1, &mut out).unwrap();
    }
    let books = messages
        .iter()
        .filter(|m| String::from_utf8_lossy(m).contains("\"checksum\":"))
        .count() as u64;
    assert_eq!(n.stats().get("checksum:ok"), books);
    assert_eq!(n.stats().gaps, 0);
}

/// v1 layouts the captures lack: an update with both sides (two objects, the checksum in the
/// second), republished levels (`"r"`), a trade with a trade id, and near misses that must
/// fall back.
#[test]
fn fast_path_reads_the_documented_v1_layouts_like_the_scanner() {
    let snapshot = r#"[0,{"as":[["0.05005","0.00000500","1582905487.684110"],["0.05235","0.00000500","1582905486.188209"],["0.05240","0.00000500","1582905486.828745"]],"bs":[["0.05000","0.00000500","1582905487.439814"],["0.04765","0.00000500","1582905486.193188"],["0.04700","0.00000500","1582905486.188209"]]},"book-10","BTC/USD"]"#;
    let lines = [
        snapshot,
        // The v1 checksum guide's update (its checksum is over the guide's own book: a
        // mismatch here, resync requested, on both paths alike).
        r#"[0,{"a":[["0.05120","0.00000500","1582905486.493008"],["0.05275","0.00000500","1582905486.493034"]]},{"b":[["0.04765","0.00000500","1582905486.493008"],["0.04940","0.00000500","1582905486.493034"]],"c":"974947235"},"book-10","BTC/USD"]"#,
        snapshot,
        r#"[0,{"a":[["0.05005","0.00000400","1582905487.684110","r"]],"c":"1"},"book-10","BTC/USD"]"#,
        snapshot,
        r#"[0,{"b":[["0.05001","0.00000100","1582905488.000001"]]},{"a":[["0.05230","0","1582905488.000002","r"]],"c":"2"},"book-10","BTC/USD"]"#,
        r#"[337,[["5541.20000","0.15850568","1534614057.321597","s","l","",12345]],"trade","XBT/USD"]"#,
        r#"[337,[["5541.20000","0.15850568","1534614057.321597","s","l",""],["6060.00000","0.02455000","1534614057.324998","b","l",""]],"trade","XBT/USD"]"#,
        r#"[340,{"a":["5525.40000",1,"1.000"],"b":["5525.10000",1,"1.000"],"c":["5525.10000","0.00398963"],"v":["2634.11501494","3591.17907851"],"p":["5631.44067","5653.78939"],"t":[11493,16267],"l":["5505.00000","5505.00000"],"h":["5783.00000","5783.00000"],"o":["5760.70000","5763.40000"]},"ticker","XBT/USD"]"#,
    ];
    let messages: Vec<Vec<u8>> = lines.iter().map(|l| l.as_bytes().to_vec()).collect();
    let hits = same_on_both_paths("v1 documented", false, &messages);
    assert_eq!(hits, lines.len() as u64);

    let misses = [
        // Three payload objects, a `"c"` as a number, a 5th level element that is not "r".
        r#"[0,{"a":[["0.05120","0.00000500","1582905486.493008"]]},{"b":[["0.04765","0.00000500","1582905486.493008"]]},{"b":[],"c":"1"},"book-10","BTC/USD"]"#,
        r#"[0,{"a":[["0.05120","0.00000500","1582905486.493008"]],"c":1},"book-10","BTC/USD"]"#,
        r#"[0,{"a":[["0.05120","0.00000500","1582905486.493008","x"]],"c":"1"},"book-10","BTC/USD"]"#,
        // A name that does not match the payload, a spaced layout, an escaped pair.
        r#"[337,[["5541.20000","0.15850568","1534614057.321597","s","l",""]],"book-10","XBT/USD"]"#,
        r#"[337, [["5541.20000","0.15850568","1534614057.321597","s","l",""]],"trade","XBT/USD"]"#,
        r#"[337,[["5541.20000","0.15850568","1534614057.321597","s","l",""]],"trade","XBT\/USD"]"#,
        // A zero price, a checksum beyond u32.
        r#"[0,{"a":[["0","0.00000500","1582905486.493008"]],"c":"1"},"book-10","BTC/USD"]"#,
        r#"[0,{"a":[["0.05120","0.00000500","1582905486.493008"]],"c":"4294967296"},"book-10","BTC/USD"]"#,
        // An exponent inside a decimal string: read by both paths through the same general
        // decimal parser (`Cursor::dec` defers to it), so it counts as a hit.
        r#"[0,{"a":[["5.1e-2","0.00000500","1582905486.493008"]],"c":"1"},"book-10","BTC/USD"]"#,
    ];
    let mut all = messages.clone();
    all.extend(misses.iter().map(|l| l.as_bytes().to_vec()));
    let hits = same_on_both_paths("v1 near misses", false, &all);
    assert_eq!(hits, lines.len() as u64 + 1);
}

mod fast_path_props {
    use super::*;
    use proptest::prelude::*;

    struct Set {
        v2: bool,
        prime: Vec<Vec<u8>>,
        samples: Vec<Vec<u8>>,
    }

    fn sets() -> &'static [Set] {
        static SETS: std::sync::OnceLock<Vec<Set>> = std::sync::OnceLock::new();
        SETS.get_or_init(|| {
            let book = received("book_1000/KRAKEN.ws.50.0");
            let mut trade = received("trade/KRAKEN.ws.48.0");
            trade.retain(|m| is_channel_message(m));
            let mut ticker = received("ticker/KRAKEN.ws.49.0");
            ticker.retain(|m| is_channel_message(m));
            let v2 = v2_messages();
            let mut v1_samples: Vec<Vec<u8>> = book[40..120]
                .iter()
                .filter(|m| is_channel_message(m))
                .cloned()
                .collect();
            v1_samples.extend(trade);
            v1_samples.extend(ticker);
            vec![
                Set {
                    v2: false,
                    prime: book[..40].to_vec(),
                    samples: v1_samples,
                },
                Set {
                    v2: true,
                    prime: v2[..3].to_vec(),
                    samples: v2[3..].to_vec(),
                },
            ]
        })
    }

    /// Structural edits: what a venue could change, or a sloppy proxy could do.
    fn restructure(raw: &[u8], kind: u8) -> Vec<u8> {
        let s = String::from_utf8_lossy(raw).into_owned();
        let t = match kind {
            // Reordered keys.
            0 => s
                .replacen(
                    r#""channel":"book","type":"update""#,
                    r#""type":"update","channel":"book""#,
                    1,
                )
                .replacen(r#"{"a":"#, r#"{"c":"0","a":"#, 1),
            1 => {
                // Swap a level's price and quantity keys (v2), or a ticker's a and b (v1).
                let v = s.replacen(r#"{"price":"#, r#"{"qty":"#, 1);
                let v = v.replacen(r#","qty":"#, r#","price":"#, 1);
                v.replacen(r#"{"a":["#, r#"{"b":["#, 1)
            }
            // Escapes.
            2 => s.replacen("USD", r"U\u0053D", 1).replacen("/", r"\/", 1),
            // Exponents and other number forms.
            3 => s
                .replacen(".5,", ".5e0,", 1)
                .replacen("\"0.0", "\"0.00e1", 1),
            4 => s.replacen(":4", ":04", 1).replacen(":0.", ":-0.", 1),
            // Whitespace.
            5 => s.replacen(',', ", ", 1).replacen(':', " :", 1),
            // A republish flag, a trade id, an extra key.
            6 => s
                .replacen("\"]]", "\",\"r\"]]", 1)
                .replacen("\"\"]]", "\"\",7]]", 1)
                .replacen(r#""timestamp":"#, r#""extra":[1],"timestamp":"#, 1),
            _ => s,
        };
        t.into_bytes()
    }

    /// The mutated message after a primed prefix, then a few real messages, on both paths.
    fn both(set: &Set, raw: &[u8], after: &[Vec<u8>]) -> (Vec<String>, Vec<String>) {
        let mut out = Output::new();
        let mut run = |fast: bool| {
            let mut n = normalizer(set.v2, fast);
            for m in &set.prime {
                out.clear();
                let _ = n.on_message(m, 1, &mut out);
            }
            let mut seen = vec![step(&mut n, raw, 2, &mut out)];
            for m in after {
                seen.push(step(&mut n, m, 3, &mut out));
            }
            seen
        };
        (run(false), run(true))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("KRAKEN_FAST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(384)
        ))]

        #[test]
        fn mutated_messages_give_the_same_result_on_both_paths(
            which in 0usize..2,
            pick in any::<prop::sample::Index>(),
            kind in 0u8..10,
            edits in proptest::collection::vec(
                (any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 0..4),
        ) {
            let set = &sets()[which];
            let k = pick.index(set.samples.len());
            let mut raw = restructure(&set.samples[k], kind);
            for (at, byte, op) in edits {
                if raw.is_empty() {
                    break;
                }
                let i = at.index(raw.len());
                match op {
                    0 => raw[i] = byte,
                    1 => {
                        raw.remove(i);
                    }
                    2 => raw.insert(i, byte),
                    _ => raw.truncate(i),
                }
            }
            let after: Vec<Vec<u8>> = set.samples.iter().skip(k + 1).take(3).cloned().collect();
            let (slow, fast) = both(set, &raw, &after);
            prop_assert_eq!(slow, fast, "input: {:?}", String::from_utf8_lossy(&raw));
        }
    }
}
