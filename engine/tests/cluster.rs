//! The NATS scale-out with real processes: `tickwire serve --role ingest|gateway` nodes, a real
//! `nats-server` (one, or a 3-node cluster) on loopback, the built-in simulator replaying the
//! BTCUSDT capture as the venue, and stock WebSocket clients. An embedded server
//! (`--role all`) on the same simulator gives the reference output.
//!
//! Needs `nats-server` (Debian package); `.ci/run` installs it and sets
//! TICKWIRE_REQUIRE_NATS=1, so there these tests cannot be skipped.

mod common;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use serde_json::json;
use tickwire_engine::cluster::nats_server::{NatsCluster, NatsServer, find_server};
use tickwire_feed::sim::SimHandle;
use tickwire_sdk::wire::{Batch, Channel, Frame, StatusCode, flags, to_owned};
use tickwire_sdk::{L2Book, wire::TradeId};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

fn nats_bin() -> Option<std::path::PathBuf> {
    let bin = find_server();
    if bin.is_none() {
        assert!(
            std::env::var_os("TICKWIRE_REQUIRE_NATS").is_none(),
            "nats-server is not installed (apt-get install nats-server)"
        );
        eprintln!("SKIPPED: nats-server is not installed (apt-get install nats-server)");
    }
    bin
}

/// A `tickwire serve` process; killed (SIGKILL) on drop.
struct Node {
    child: Child,
    url: Option<String>,
}

/// Starts `tickwire serve ARGS` and waits for its first line (the URL, for serving nodes).
/// With TICKWIRE_TEST_LOGS=DIR set, each node's log goes to DIR/<node or pid>.log.
async fn node(args: &[&str]) -> Node {
    let stderr = match std::env::var_os("TICKWIRE_TEST_LOGS") {
        Some(dir) => {
            let name = args
                .iter()
                .position(|a| *a == "--node")
                .map(|i| args[i + 1].to_string())
                .unwrap_or_else(|| "embedded".into());
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = std::path::Path::new(&dir).join(format!("{n:02}-{name}.log"));
            Stdio::from(std::fs::File::create(path).expect("a log file"))
        }
        None => Stdio::null(),
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_tickwire"))
        .arg("serve")
        .args(args)
        .env("RUST_LOG", "info,tickwire_engine=debug")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .expect("tickwire runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("tickwire serve {args:?} printed nothing in 30 s"))
        .unwrap()
        .unwrap_or_else(|| panic!("tickwire serve {args:?} exited at start"));
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("ws://"))
        .map(str::to_string);
    // Keep draining stdout so the process never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Node { child, url }
}

impl Node {
    fn url(&self) -> &str {
        self.url.as_deref().expect("a serving node")
    }
}

async fn ingest(nats: &str, name: &str, sim: &SimHandle) -> Node {
    node(&[
        "--role",
        "ingest",
        "--nats",
        nats,
        "--node",
        name,
        "--venue",
        "binance",
        "--symbols",
        "btcusdt",
        "--ws-url",
        &sim.ws_url(),
        "--rest-url",
        &sim.rest_url(),
    ])
    .await
}

async fn embedded(sim: &SimHandle) -> Node {
    node(&[
        "--listen",
        "127.0.0.1:0",
        "--venue",
        "binance",
        "--symbols",
        "btcusdt",
        "--ws-url",
        &sim.ws_url(),
        "--rest-url",
        &sim.rest_url(),
    ])
    .await
}

async fn gateway(nats: &str, name: &str) -> Node {
    node(&[
        "--role",
        "gateway",
        "--nats",
        nats,
        "--node",
        name,
        "--listen",
        "127.0.0.1:0",
    ])
    .await
}

/// A binary client of every BTCUSDT channel.
async fn client(url: &str, policy: &str, snapshot: bool) -> Ws {
    let mut ws = ws_connect(url).await;
    send_json(
        &mut ws,
        json!({"op": "subscribe", "id": 1, "symbols": ["binance:BTCUSDT"],
               "encoding": "binary", "policy": policy, "snapshot": snapshot}),
    )
    .await;
    let r = reply_of(&mut ws, "subscribed").await;
    assert_eq!(r["type"], "subscribed", "{r}");
    ws
}

/// What one client got: every frame (bytes), in order.
#[derive(Default)]
struct Got {
    frames: Vec<Vec<u8>>,
}

impl Got {
    fn frames(&self) -> impl Iterator<Item = Frame> + '_ {
        self.frames
            .iter()
            .map(|b| to_owned(tickwire_sdk::wire::access(b).expect("valid")))
    }

    /// Data frames: no heartbeats, no markers (seq 0), no state sent on subscribe.
    fn data(&self) -> Vec<Frame> {
        self.frames()
            .filter(|f| f.seq > 0 && f.kind() != tickwire_sdk::wire::Kind::Heartbeat)
            .collect()
    }

    fn markers(&self) -> Vec<StatusCode> {
        self.frames()
            .filter(|f| f.seq == 0)
            .filter_map(|f| match f.body {
                tickwire_sdk::wire::Body::Status(s) => Some(s.code),
                _ => None,
            })
            .collect()
    }
}

/// Reads until the simulator has stopped and nothing came for `quiet`.
async fn read_until_quiet(ws: &mut Ws, sim: &SimHandle, got: &mut Got, quiet: Duration) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still reading after 180 s"
        );
        match tokio::time::timeout(quiet, ws.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => {
                let batch = Batch::new(&b[..]).expect("a valid batch");
                for i in 0..batch.len() {
                    got.frames
                        .push(batch.frame_bytes(i).expect("in range").to_vec());
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!("the client's connection ended: {other:?}"),
            Err(_) => {
                if sim.status()["running"] == false {
                    return;
                }
            }
        }
    }
}

/// Reads until the client has the trade `last_id` (a failover pauses a stream for about the
/// node timeout, longer than any quiet period a reader could wait for).
async fn read_until_trade(ws: &mut Ws, got: &mut Got, last_id: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !trades(got).iter().any(|t| t.0 >= last_id) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "trade {last_id} never came: {} trades",
            trades(got).len()
        );
        read_for(ws, got, Duration::from_millis(200)).await;
    }
    // The book's failover (a snapshot asked of the standby) may finish a little after.
    read_for(ws, got, Duration::from_millis(1_500)).await;
}

/// Reads until the client's book has `expected`'s top levels (a gateway behind a backlog gets
/// there later), for 60 s at most; the caller asserts.
async fn read_until_book(ws: &mut Ws, got: &mut Got, expected: &L2Book) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let want = top(expected);
    while top(&book_of(&got.frames().collect::<Vec<_>>())) != want
        && tokio::time::Instant::now() < deadline
    {
        read_for(ws, got, Duration::from_millis(300)).await;
    }
}

/// Reads for `d` at most.
async fn read_for(ws: &mut Ws, got: &mut Got, d: Duration) {
    let deadline = tokio::time::Instant::now() + d;
    while let Ok(m) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let Some(Ok(Message::Binary(b))) = m {
            let batch = Batch::new(&b[..]).expect("a valid batch");
            for i in 0..batch.len() {
                got.frames
                    .push(batch.frame_bytes(i).expect("in range").to_vec());
            }
        }
    }
}

/// A frame without its timestamps of receipt and publication (which differ per process).
fn content(f: &Frame) -> Frame {
    let mut f = f.clone();
    f.ts_recv = 0;
    f.ts_publish = 0;
    f
}

/// Asserts that wherever a stream's seq jumps (but at a snapshot, a new baseline), a `stale`
/// or `gap` status came first; with `monotone`, also that seq never goes back (a state sent
/// on subscribe may repeat the seq it stands at).
fn assert_no_silent_hole(got: &Got, monotone: bool) {
    let mut last: HashMap<(u32, u8), u64> = HashMap::new();
    let mut told = false;
    for f in got.frames() {
        if f.seq == 0 {
            if let tickwire_sdk::wire::Body::Status(s) = &f.body
                && matches!(s.code, StatusCode::Stale | StatusCode::Gap)
            {
                told = true;
            }
            continue;
        }
        let key = (f.instrument, f.channel() as u8);
        let snapshot = f.flags & flags::SNAPSHOT != 0;
        if let Some(prev) = last.insert(key, f.seq) {
            if monotone {
                assert!(
                    f.seq > prev || snapshot && f.seq == prev,
                    "seq went back on {key:?}: {prev} -> {}",
                    f.seq
                );
            }
            if f.seq != prev + 1 && !snapshot {
                assert!(
                    told,
                    "seq {prev} -> {} on {key:?} with no status before",
                    f.seq
                );
            }
        }
    }
}

/// Asserts two books' tops are equal, showing only the levels that differ.
fn assert_same_top(a: &L2Book, b: &L2Book, what: &str) {
    let (ta, tb) = (top(a), top(b));
    if ta == tb {
        return;
    }
    let diff = |x: &[tickwire_sdk::wire::Level], y: &[tickwire_sdk::wire::Level]| {
        x.iter()
            .filter(|l| !y.contains(l))
            .take(5)
            .map(|l| (l.price, l.qty))
            .collect::<Vec<_>>()
    };
    panic!(
        "{what}: bids only in the first {:?}, only in the second {:?}; asks only in the first {:?}, only in the second {:?}",
        diff(&ta.bids, &tb.bids),
        diff(&tb.bids, &ta.bids),
        diff(&ta.asks, &tb.asks),
        diff(&tb.asks, &ta.asks)
    );
}

/// The top 100 levels a side: what two venue connections agree on. (Each joins the diff stream
/// with its own REST snapshot of the top 1,000 levels, so deeper levels may differ.)
fn top(book: &L2Book) -> tickwire_sdk::wire::BookSnapshot {
    book.snapshot(Some(100))
}

fn book_of(frames: &[Frame]) -> L2Book {
    let mut book = L2Book::default();
    for f in frames {
        if matches!(
            f.body,
            tickwire_sdk::wire::Body::BookDelta(_) | tickwire_sdk::wire::Body::BookSnapshot(_)
        ) {
            book.apply_owned(f);
        }
    }
    book
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_ingest_two_gateways_give_clients_the_same_frames_as_the_embedded_server() {
    let Some(bin) = nats_bin() else { return };
    let nats = NatsServer::start(&bin).expect("nats-server starts");
    let sim = capture_sim().await;
    let reference = embedded(&sim).await;
    let _ingest = ingest(&nats.url(), "ingest-a", &sim).await;
    wait_subscribed(&sim, 6).await;
    let g1 = gateway(&nats.url(), "gw-1").await;
    let g2 = gateway(&nats.url(), "gw-2").await;
    let mut c0 = client(reference.url(), "lossless", false).await;
    let mut c1 = client(g1.url(), "lossless", false).await;
    let mut c2 = client(g2.url(), "lossless", false).await;
    // A pattern subscription on a gateway: the instruments it matches are fetched too.
    let mut c3 = ws_connect(g2.url()).await;
    send_json(
        &mut c3,
        json!({"op": "subscribe", "id": 1, "symbols": ["binance:*"],
               "encoding": "binary", "policy": "lossless"}),
    )
    .await;
    assert_eq!(reply_of(&mut c3, "subscribed").await["type"], "subscribed");

    sim.run_items(3_000);
    let (mut a, mut b, mut c, mut d) = (
        Got::default(),
        Got::default(),
        Got::default(),
        Got::default(),
    );
    let q = Duration::from_millis(800);
    tokio::join!(
        read_until_quiet(&mut c0, &sim, &mut a, q),
        read_until_quiet(&mut c1, &sim, &mut b, q),
        read_until_quiet(&mut c2, &sim, &mut c, q),
        read_until_quiet(&mut c3, &sim, &mut d, q),
    );
    let skip_state = |g: &Got| -> Vec<Frame> {
        g.frames()
            .skip_while(|f| f.flags & flags::SNAPSHOT != 0)
            .filter(|f| f.seq > 0)
            .collect()
    };
    let (da, db) = (skip_state(&a), skip_state(&b));
    assert!(
        da.len() > 1_000,
        "the embedded client got {} frames",
        da.len()
    );
    // The two gateways: the same frames, byte for byte (seq as the ingest node assigned it).
    // (What a session sends on subscribe, before the first data frame, is made locally.)
    let bytes = |g: &Got| -> Vec<Vec<u8>> {
        g.frames
            .iter()
            .skip_while(|b| {
                let f = tickwire_sdk::wire::access(b).unwrap();
                f.flags & flags::SNAPSHOT != 0
            })
            .filter(|b| {
                let f = tickwire_sdk::wire::access(b).unwrap();
                f.seq.to_native() > 0
            })
            .cloned()
            .collect()
    };
    let (bb, bc) = (bytes(&b), bytes(&c));
    if bb != bc {
        let i = bb
            .iter()
            .zip(&bc)
            .position(|(x, y)| x != y)
            .unwrap_or(bb.len().min(bc.len()));
        let show = |v: &Vec<Vec<u8>>| {
            v.iter()
                .skip(i.saturating_sub(2))
                .take(5)
                .map(|x| {
                    let f = to_owned(tickwire_sdk::wire::access(x).unwrap());
                    format!("{:?} seq {} flags {:#x}", f.kind(), f.seq, f.flags)
                })
                .collect::<Vec<_>>()
        };
        panic!(
            "the gateways' clients got different bytes: {} and {} frames, first difference at {i}: {:?} vs {:?}; markers {:?} {:?}",
            bb.len(),
            bc.len(),
            show(&bb),
            show(&bc),
            b.markers(),
            c.markers()
        );
    }
    // And the embedded server, which has its own venue connection: the same trades and
    // quotes, seq included, and the same book. (Book frames can differ in number: each
    // connection joins the REST snapshot to the diff stream at its own update id.)
    let stream = |d: &[Frame], ch: Channel| -> Vec<Frame> {
        d.iter()
            .filter(|f| f.channel() == ch)
            .map(content)
            .collect()
    };
    for ch in [Channel::Trades, Channel::Quotes] {
        assert_eq!(stream(&da, ch), stream(&db, ch), "{ch:?} differ");
    }
    assert_eq!(top(&book_of(&da)), top(&book_of(&db)), "the books differ");
    assert!(
        bytes(&d) == bytes(&c),
        "the pattern subscriber's frames differ"
    );
    assert!(b.markers().is_empty(), "{:?}", b.markers());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_started_late_serves_the_current_book_on_subscribe() {
    let Some(bin) = nats_bin() else { return };
    let nats = NatsServer::start(&bin).expect("nats-server starts");
    let sim = capture_sim().await;
    let reference = embedded(&sim).await;
    let _ingest = ingest(&nats.url(), "ingest-a", &sim).await;
    wait_subscribed(&sim, 6).await;
    // An early gateway's client follows the stream from the start: the reference for what
    // the ingest node's book is (an embedded server has its own venue connection, whose book
    // stream may be numbered differently).
    let early = gateway(&nats.url(), "gw-early").await;
    let mut e1 = client(early.url(), "lossless", false).await;
    sim.run_items(1_500);
    let mut y = Got::default();
    read_until_quiet(&mut e1, &sim, &mut y, Duration::from_millis(800)).await;
    let followed: Vec<Frame> = y.data();
    let last_book = followed
        .iter()
        .rev()
        .find(|f| f.channel() == Channel::Book)
        .expect("book frames")
        .seq;

    // Now a gateway starts, and both servers get a subscriber wanting the current state.
    let late = gateway(&nats.url(), "gw-late").await;
    let mut c0 = client(reference.url(), "lossless", true).await;
    let mut c1 = client(late.url(), "lossless", true).await;
    let (mut a, mut b) = (Got::default(), Got::default());
    let q = Duration::from_millis(300);
    tokio::join!(read_for(&mut c0, &mut a, q), read_for(&mut c1, &mut b, q));
    let snap = |g: &Got| {
        g.frames()
            .find(|f| matches!(f.body, tickwire_sdk::wire::Body::BookSnapshot(_)))
            .expect("a book snapshot on subscribe")
    };
    let (sa, sb) = (snap(&a), snap(&b));
    assert!(
        sb.flags & flags::BAD_BOOK == 0,
        "the late gateway's book is flagged bad"
    );
    assert_eq!(
        sb.seq, last_book,
        "the snapshot is not at the stream's last book frame"
    );
    let mut from_snapshot = L2Book::default();
    from_snapshot.apply_owned(&sb);
    assert_eq!(
        from_snapshot,
        book_of(&followed),
        "the late snapshot is not the ingest's book"
    );
    // The embedded server has its own venue connection and REST snapshot: levels beyond the
    // snapshot's 1,000 may differ; the top agrees.
    assert_eq!(
        top(&from_snapshot),
        top(&book_of(std::slice::from_ref(&sa))),
        "the late snapshot's top is not the embedded server's"
    );
    assert!(from_snapshot.bids().count() > 10, "a real book");

    // Then both go on alike, and the early client too.
    sim.run_items(1_000);
    let q = Duration::from_millis(800);
    tokio::join!(
        read_until_quiet(&mut c0, &sim, &mut a, q),
        read_until_quiet(&mut c1, &sim, &mut b, q),
        read_until_quiet(&mut e1, &sim, &mut y, q),
    );
    let (fa, fb, fy): (Vec<Frame>, Vec<Frame>, Vec<Frame>) = (
        a.frames().collect(),
        b.frames().collect(),
        y.frames().collect(),
    );
    assert_eq!(
        book_of(&fb),
        book_of(&fy),
        "the late and early gateways' books differ"
    );
    assert_eq!(
        top(&book_of(&fa)),
        top(&book_of(&fb)),
        "the books differ after the second run"
    );
    let deltas_after = |fs: &[Frame]| -> Vec<Frame> {
        fs.iter()
            .filter(|f| f.seq > sb.seq && f.channel() == Channel::Book)
            .map(content)
            .collect()
    };
    assert_eq!(deltas_after(&fb), deltas_after(&fy));
    sim.shutdown().await;
}

/// Trade ids the client got, in order, and the seq of each.
fn trades(g: &Got) -> Vec<(u64, u64)> {
    g.data()
        .iter()
        .filter_map(|f| match &f.body {
            tickwire_sdk::wire::Body::Trade(t) => match t.trade_id {
                TradeId::Num(n) => Some((n, f.seq)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ingest_nodes_on_one_feed_one_killed_and_clients_see_every_trade_once() {
    let Some(bin) = nats_bin() else { return };
    let nats = NatsServer::start(&bin).expect("nats-server starts");
    let sim = capture_sim().await;
    let reference = embedded(&sim).await;
    let mut a = ingest(&nats.url(), "ingest-a", &sim).await;
    wait_subscribed(&sim, 6).await;
    let _b = ingest(&nats.url(), "ingest-b", &sim).await;
    wait_subscribed(&sim, 9).await;
    let gw = gateway(&nats.url(), "gw").await;
    let mut c0 = client(reference.url(), "lossless", false).await;
    let mut c1 = client(gw.url(), "lossless", false).await;

    sim.run_items(8_000);
    let (mut ga, mut gb) = (Got::default(), Got::default());
    // A third of the way in, ingest node A (whichever the gateway follows first) dies.
    read_for(&mut c1, &mut gb, Duration::from_secs(2)).await;
    a.child.start_kill().expect("kill -9");
    let q = Duration::from_millis(900);
    read_until_quiet(&mut c0, &sim, &mut ga, q).await;
    let last = trades(&ga).last().expect("trades").0;
    read_until_trade(&mut c1, &mut gb, last).await;
    read_until_book(&mut c1, &mut gb, &book_of(&ga.frames().collect::<Vec<_>>())).await;
    let (ta, tb) = (trades(&ga), trades(&gb));
    assert!(tb.len() > 100, "{} trades", tb.len());
    // Every trade once, in order: the capture's trade ids have no gaps, so consecutive ids.
    for w in tb.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1, "trade ids jump or repeat: {w:?}");
        assert_eq!(w[1].1, w[0].1 + 1, "trade seq jumps or repeats: {w:?}");
    }
    let (ia, ib): (Vec<u64>, Vec<u64>) = (
        ta.iter().map(|t| t.0).collect(),
        tb.iter().map(|t| t.0).collect(),
    );
    assert!(
        ia == ib,
        "the gateway's trades differ from the embedded server's: {} vs {}, first {:?} vs {:?}, last {:?} vs {:?}",
        ia.len(),
        ib.len(),
        ia.first(),
        ib.first(),
        ia.last(),
        ib.last()
    );
    // The book ends equal to the embedded server's.
    let (fa, fb): (Vec<Frame>, Vec<Frame>) = (ga.frames().collect(), gb.frames().collect());
    let book_seqs = |fs: &[Frame]| -> Vec<(u64, u8, bool)> {
        fs.iter()
            .filter(|f| f.channel() == Channel::Book)
            .map(|f| {
                (
                    f.seq,
                    f.flags,
                    matches!(f.body, tickwire_sdk::wire::Body::BookSnapshot(_)),
                )
            })
            .collect()
    };
    let (sa, sb) = (book_seqs(&fa), book_seqs(&fb));
    assert_same_top(
        &book_of(&fa),
        &book_of(&fb),
        &format!(
            "the books differ ({} and {} book frames, last {:?} and {:?}, gateway snapshots at {:?}, markers {:?})",
            sa.len(),
            sb.len(),
            sa.last(),
            sb.last(),
            sb.iter().filter(|x| x.2).map(|x| x.0).collect::<Vec<_>>(),
            gb.markers()
        ),
    );
    let gaps: Vec<StatusCode> = gb
        .markers()
        .into_iter()
        .filter(|c| *c != StatusCode::Resynced)
        .collect();
    assert!(gaps.is_empty(), "markers after a clean failover: {gaps:?}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_gateways_nats_node_of_a_three_node_cluster_leaves_no_silent_hole() {
    let Some(bin) = nats_bin() else { return };
    let mut cluster = NatsCluster::start(&bin, 3).expect("a 3-node NATS cluster");
    let urls: Vec<String> = cluster.nodes.iter().map(|n| n.url()).collect();
    let sim = capture_sim().await;
    let reference = embedded(&sim).await;
    // The ingest node lives on NATS node 0, the gateway on node 1 (node 2 its fallback).
    let _ingest = ingest(&format!("{},{}", urls[0], urls[2]), "ingest-a", &sim).await;
    wait_subscribed(&sim, 6).await;
    let gw = gateway(&format!("{},{}", urls[1], urls[2]), "gw").await;
    let mut c0 = client(reference.url(), "lossless", false).await;
    let mut c1 = client(gw.url(), "lossless", false).await;

    sim.run_items(8_000);
    let (mut ga, mut gb) = (Got::default(), Got::default());
    // Kill while the feed still runs: once the client has a first part of the data.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while gb.data().len() < 2_000 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no data through the gateway"
        );
        read_for(&mut c1, &mut gb, Duration::from_millis(20)).await;
    }
    assert_eq!(
        sim.status()["running"],
        true,
        "the feed ended before the NATS node could be killed mid-run"
    );
    let before = gb.data().len();
    cluster.nodes[1].kill();
    let q = Duration::from_millis(900);
    tokio::join!(
        read_until_quiet(&mut c0, &sim, &mut ga, q),
        read_until_quiet(&mut c1, &sim, &mut gb, q),
    );
    let data = gb.data();
    assert!(
        data.len() > before + 500,
        "the client stopped receiving after the kill: {before} then {}",
        data.len()
    );
    // No silent hole: wherever a stream's seq jumps, a stale or gap marker came first.
    assert_no_silent_hole(&gb, false);
    let markers = gb.markers();
    let stale = markers.iter().position(|c| *c == StatusCode::Stale);
    let resynced = markers.iter().rposition(|c| *c == StatusCode::Resynced);
    if let Some(s) = stale {
        assert!(
            resynced.is_some_and(|r| r > s),
            "stale without resynced: {markers:?}"
        );
    }
    let (fa, fb): (Vec<Frame>, Vec<Frame>) = (ga.frames().collect(), gb.frames().collect());
    assert_eq!(
        top(&book_of(&fa)),
        top(&book_of(&fb)),
        "the books differ at the end"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingest_node_restart_is_detected_and_clients_are_told_then_resynced() {
    let Some(bin) = nats_bin() else { return };
    let nats = NatsServer::start(&bin).expect("nats-server starts");
    let sim = capture_sim().await;
    let reference = embedded(&sim).await;
    let mut a = ingest(&nats.url(), "ingest-a", &sim).await;
    wait_subscribed(&sim, 6).await;
    let gw = gateway(&nats.url(), "gw").await;
    let mut c0 = client(reference.url(), "lossless", false).await;
    let mut c1 = client(gw.url(), "lossless", false).await;

    sim.run_items(4_000);
    let (mut ga, mut gb) = (Got::default(), Got::default());
    read_for(&mut c1, &mut gb, Duration::from_secs(2)).await;
    a.child.start_kill().expect("kill -9");
    let _ = a.child.wait().await;
    // (Quiet means under the 1 s heartbeat of an idle connection.)
    let q = Duration::from_millis(900);
    tokio::join!(
        read_until_quiet(&mut c0, &sim, &mut ga, q),
        read_until_quiet(&mut c1, &sim, &mut gb, q),
    );
    // The same node comes back: a new process, a new epoch, seq from 1 again.
    let _a2 = ingest(&nats.url(), "ingest-a", &sim).await;
    wait_subscribed(&sim, 6).await;
    sim.run_items(3_000);
    tokio::join!(
        read_until_quiet(&mut c0, &sim, &mut ga, q),
        read_until_quiet(&mut c1, &sim, &mut gb, q),
    );
    let markers = gb.markers();
    let stale = markers
        .iter()
        .position(|c| matches!(c, StatusCode::Stale | StatusCode::Gap))
        .unwrap_or_else(|| panic!("no stale or gap status: {markers:?}"));
    assert!(
        markers[stale..].contains(&StatusCode::Resynced),
        "no resynced after the restart: {markers:?}"
    );
    // seq never goes back on any stream, and every jump was announced.
    assert_no_silent_hole(&gb, true);
    // The restarted node's book comes from a new REST snapshot of the top 1,000 levels; the
    // embedded server's still holds deeper levels from its first one. The top must agree.
    let (fa, fb): (Vec<Frame>, Vec<Frame>) = (ga.frames().collect(), gb.frames().collect());
    assert_eq!(
        top(&book_of(&fa)),
        top(&book_of(&fb)),
        "the books' top levels differ at the end"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_on_a_stream_subject_are_skipped_and_the_stream_goes_on() {
    let Some(bin) = nats_bin() else { return };
    let nats = NatsServer::start(&bin).expect("nats-server starts");
    let sim = capture_sim().await;
    let reference = embedded(&sim).await;
    let _ingest = ingest(&nats.url(), "ingest-a", &sim).await;
    wait_subscribed(&sim, 6).await; // both feeds, three streams each
    let gw = gateway(&nats.url(), "gw").await;
    let mut c0 = client(reference.url(), "lossless", false).await;
    let mut c1 = client(gw.url(), "lossless", false).await;

    // What a broken or hostile publisher could put on the gateway's stream subjects: no
    // source headers, bytes that are no frame, a batch cut short, a batch whose frame is
    // garbage, a batch header with a huge count. Each is skipped whole, nothing else changes.
    let nc = async_nats::connect(nats.url())
        .await
        .expect("connect to NATS");
    let subject = tickwire_engine::cluster::subjects::stream(
        tickwire_sdk::wire::Venue::Binance,
        "BTCUSDT",
        Channel::Trades,
    );
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(tickwire_engine::cluster::subjects::NODE, "ingest-a");
    headers.insert(tickwire_engine::cluster::subjects::EPOCH, "1");
    let mut garbage_frame = b"TW\x01\x00\x01\x00\x00\x00\x4c\x00\x00\x00".to_vec();
    garbage_frame.extend((0..76u8).map(|i| i.wrapping_mul(37)));
    let payloads: Vec<Vec<u8>> = vec![
        (0..200u8).collect(),
        b"TW\x01\x00\x03\x00\x00\x00\x10\x00".to_vec(),
        garbage_frame,
        b"TW\x01\x00\xff\xff\xff\xff".to_vec(),
        Vec::new(),
    ];
    nc.publish(subject.clone(), b"no headers".to_vec().into())
        .await
        .expect("publish");
    for p in payloads {
        nc.publish_with_headers(subject.clone(), headers.clone(), p.into())
            .await
            .expect("publish");
    }
    nc.flush().await.expect("flush");

    sim.run_items(2_000);
    let (mut a, mut b) = (Got::default(), Got::default());
    let q = Duration::from_millis(800);
    tokio::join!(
        read_until_quiet(&mut c0, &sim, &mut a, q),
        read_until_quiet(&mut c1, &sim, &mut b, q),
    );
    let (ta, tb) = (trades(&a), trades(&b));
    assert!(ta.len() > 50, "the embedded client got {} trades", ta.len());
    assert_eq!(
        tb, ta,
        "the gateway's trades (id, seq) are the embedded server's"
    );
    assert!(b.markers().is_empty(), "markers: {:?}", b.markers());
    assert_no_silent_hole(&b, true);
}
