//! The OKX exact-layout fast path against the simd-json tape path: every capture message and
//! documented layout through both, frames, actions, errors and stats compared exactly, and
//! mutated messages giving the same result on both.

use tickwire_feed::capture::{CaptureReader, Record, RecordKind};
use tickwire_feed::okx::OkxNormalizer;
use tickwire_feed::{Normalizer, Output};

const CAPTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../replay-data/captures/okx_v5/books_trades_tickers/OKX.ws.1.0"
);

fn received() -> Vec<Vec<u8>> {
    CaptureReader::open(CAPTURE)
        .unwrap()
        .read_all()
        .unwrap()
        .into_iter()
        .filter(|r: &Record| r.kind == RecordKind::Received)
        .map(|r| r.payload.to_vec())
        .collect()
}

/// Every frame, action and error of `messages`, then the stats; and the fast path's hits.
fn run_paths(messages: &[Vec<u8>], fast: bool) -> (Vec<String>, u64) {
    let mut n = OkxNormalizer::new(&[]);
    n.set_fast_path(fast);
    let mut out = Output::new();
    let mut seen = Vec::new();
    for (k, m) in messages.iter().enumerate() {
        out.clear();
        let res = n.on_message(m, 1_000 + k as u64, &mut out);
        seen.push(format!("{res:?} {:?} {:?}", out.frames, out.actions));
    }
    seen.push(format!("{:?}", n.stats()));
    (seen, n.fast_hits())
}

fn same_on_both_paths(name: &str, messages: &[Vec<u8>]) -> (u64, String) {
    let (tape, zero) = run_paths(messages, false);
    let (fast, hits) = run_paths(messages, true);
    assert_eq!(zero, 0);
    assert_eq!(tape.len(), fast.len());
    for (k, (a, b)) in tape.iter().zip(&fast).enumerate() {
        assert_eq!(a, b, "{name}: message {k} differs between the paths");
    }
    (hits, fast.last().unwrap().clone())
}

fn is_data(m: &[u8]) -> bool {
    let p = String::from_utf8_lossy(m);
    p.contains("\"data\":[")
        && ["\"books\"", "\"trades\"", "\"tickers\"", "\"trades-all\""]
            .iter()
            .any(|k| p.contains(k))
}

#[test]
fn fast_path_gives_the_tape_path_frames_on_every_capture_message() {
    let messages = received();
    let (hits, stats) = same_on_both_paths("capture", &messages);
    let data = messages.iter().filter(|m| is_data(m)).count() as u64;
    // 74 trades, 28 tickers, 3 books snapshots, 287 books updates.
    assert_eq!(data, 74 + 28 + 3 + 287, "capture data messages: {stats}");
    assert_eq!(hits, data, "every data message takes the fast path");
}

#[test]
fn the_checksum_verifies_on_every_capture_books_message_on_both_paths() {
    let messages = received();
    for fast in [false, true] {
        let mut n = OkxNormalizer::new(&[]);
        n.set_fast_path(fast);
        let mut out = Output::new();
        for m in &messages {
            out.clear();
            n.on_message(m, 1, &mut out).unwrap();
        }
        let books = messages
            .iter()
            .filter(|m| String::from_utf8_lossy(m).contains("\"checksum\":"))
            .count() as u64;
        assert_eq!(n.stats().get("checksum:ok"), books, "fast {fast}");
        assert_eq!(n.stats().get("checksum:mismatch"), 0, "fast {fast}");
        assert_eq!(n.stats().gaps, 0, "fast {fast}");
    }
}

/// Today's documented layouts (compact, as sent): books with `prevSeqId`/`seqId`, trades with
/// `count`/`source`/`seqId`, trades-all, tickers with an empty side; and near misses that
/// must fall back.
#[test]
fn fast_path_reads_the_documented_layouts_like_the_tape() {
    let lines = [
        r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{"asks":[["8476.98","415","0","13"],["8477","7","0","2"]],"bids":[["8476.97","256","0","12"],["8475.55","101","0","1"]],"ts":"1597026383085","checksum":0,"prevSeqId":-1,"seqId":123456}]}"#,
        r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[["8476.98","0","0","0"],["8477.5","3","0","1"]],"bids":[["8476.97","250","0","11"]],"ts":"1597026383086","checksum":0,"prevSeqId":123456,"seqId":123457}]}"#,
        r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[],"bids":[],"ts":"1597026383087","checksum":0,"prevSeqId":123457,"seqId":123457}]}"#,
        // Does not follow: a gap and a resubscription, on both paths alike.
        r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[],"bids":[["8476.9","1","0","1"]],"ts":"1597026383088","checksum":0,"prevSeqId":9,"seqId":10}]}"#,
        r#"{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"130639474","px":"42219.9","sz":"0.12060306","side":"buy","ts":"1630048897897","count":"3","source":"0","seqId":1234}]}"#,
        r#"{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"130639474","px":"42219.9","sz":"0.1","side":"sell","ts":"1630048897898","count":"1","source":"0","seqId":1235}]}"#,
        r#"{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"130639480","px":"42219.9","sz":"0.1","side":"sell","ts":"1630048897899","count":"2","source":"0","seqId":1236}]}"#,
        r#"{"arg":{"channel":"trades-all","instId":"ETH-USDT"},"data":[{"instId":"ETH-USDT","tradeId":"130639474","px":"4221.9","sz":"0.12060306","side":"buy","source":"0","ts":"1630048897897"}]}"#,
        r#"{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instType":"SPOT","instId":"BTC-USDT","last":"9999.99","lastSz":"0.1","askPx":"9999.99","askSz":"11","bidPx":"8888.88","bidSz":"5","open24h":"9000","high24h":"10000","low24h":"8888.88","volCcy24h":"2222","vol24h":"2222","sodUtc0":"0.1","sodUtc8":"0.1","ts":"1597026383085"}]}"#,
        r#"{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instType":"SPOT","instId":"BTC-USDT","last":"9999.99","lastSz":"0.1","askPx":"","askSz":"","bidPx":"8888.88","bidSz":"5","open24h":"9000","ts":"1597026383086"}]}"#,
    ];
    let messages: Vec<Vec<u8>> = lines.iter().map(|l| l.as_bytes().to_vec()).collect();
    let (hits, _) = same_on_both_paths("documented", &messages);
    assert_eq!(hits, lines.len() as u64);

    // Near misses: each falls back (no hit) and still gives the tape's result.
    let misses = [
        // Two data elements.
        r#"{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"1","px":"1","sz":"1","side":"buy","ts":"1"},{"instId":"BTC-USDT","tradeId":"2","px":"1","sz":"1","side":"buy","ts":"1"}]}"#,
        // A text trade id, a zero count, a ticker key twice, a ts as a number.
        r#"{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"ab1","px":"1","sz":"1","side":"buy","ts":"1"}]}"#,
        r#"{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"5","px":"1","sz":"1","side":"buy","ts":"1","count":"0"}]}"#,
        r#"{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instType":"SPOT","instId":"BTC-USDT","last":"1","lastSz":"1","askPx":"2","askSz":"1","bidPx":"1","bidSz":"1","bidPx":"1.5","ts":"1"}]}"#,
        r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[],"bids":[],"ts":1597026383087,"checksum":0}]}"#,
        // A zero price, an unknown action, a spaced layout.
        r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[["0","1","0","1"]],"bids":[],"ts":"1","checksum":0}]}"#,
        r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"partial","data":[{"asks":[],"bids":[],"ts":"1","checksum":0}]}"#,
        r#"{"arg": {"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"9","px":"1","sz":"1","side":"buy","ts":"1"}]}"#,
    ];
    let mut all = messages.clone();
    all.extend(misses.iter().map(|l| l.as_bytes().to_vec()));
    let (hits, _) = same_on_both_paths("near misses", &all);
    assert_eq!(hits, lines.len() as u64);
}

mod fast_path_props {
    use super::*;
    use proptest::prelude::*;

    fn samples() -> &'static [Vec<u8>] {
        static SAMPLES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
        SAMPLES.get_or_init(|| {
            let messages = received();
            let mut picked = Vec::new();
            for key in [
                "\"channel\":\"trades\"",
                "\"channel\":\"tickers\"",
                "\"action\":\"update\"",
                "\"action\":\"snapshot\"",
            ] {
                picked.extend(
                    messages
                        .iter()
                        .filter(|m| is_data(m) && String::from_utf8_lossy(m).contains(key))
                        .take(15)
                        .cloned(),
                );
            }
            picked
        })
    }

    fn both(raw: &[u8]) -> (String, String) {
        let mut out = Output::new();
        let mut run = |fast: bool| {
            let mut n = OkxNormalizer::new(&[]);
            n.set_fast_path(fast);
            out.clear();
            let r = n.on_message(raw, 1, &mut out);
            format!("{r:?} {:?} {:?} {:?}", out.frames, out.actions, n.stats())
        };
        (run(false), run(true))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn mutated_messages_give_the_same_result_on_both_paths(
            pick in 0usize..60,
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let samples = samples();
            let mut raw = samples[pick % samples.len()].clone();
            for (at, byte) in edits {
                let k = at.index(raw.len());
                raw[k] = byte;
            }
            let (tape, fast) = both(&raw);
            prop_assert_eq!(tape, fast, "input: {:?}", String::from_utf8_lossy(&raw));
        }
    }
}
