//! The real `tickwire` binary, run as child processes: `sim` and `serve` as two processes with
//! clients in the test, `normalize` on the shipped captures, bad input at the command line, and
//! `demo`. Every child is killed when its handle drops, listens on 127.0.0.1 ephemeral ports,
//! and every wait has a deadline that fails with a message (and the child's stderr).

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tickwire_sdk::client::{Client, Event};
use tickwire_sdk::wire::{ArchivedBody, Body, Channel, Side, TradeId, decimal_string, to_owned};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// The binary under test.
const TICKWIRE: &str = env!("CARGO_BIN_EXE_tickwire");

/// hftbacktest capture: Binance spot BTCUSDT depth, bookTicker, trades and a REST snapshot
/// (the same bytes the simulator embeds).
const BTCUSDT_CAPTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../replay-data/captures/binance_spot/depth100ms_bookTicker_trade_restSnapshot/btcusdt_20240808.gz"
);

/// cryptofeed capture: the WebSocket side (depth, bookTicker, kline, aggTrade of 4 symbols).
const CRYPTOFEED_WS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../replay-data/captures/binance_spot/depth100ms_bookTicker_kline1m_aggTrade/BINANCE.ws.1.0"
);

/// cryptofeed capture: the REST depth snapshots for the same session.
const CRYPTOFEED_HTTP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../replay-data/captures/binance_spot/rest_depth_snapshot/BINANCE.http.0.0"
);

/// The fields of a trade that the server and `normalize` must agree on (timestamps differ:
/// the simulator stamps its own event times, and each path its own receive time).
const TRADE_FIELDS: [&str; 8] = [
    "type", "venue", "symbol", "seq", "price", "qty", "side", "trade_id",
];

// ----------------------------------------------------------------------------------------------
// Child process harness
// ----------------------------------------------------------------------------------------------

/// A long-running `tickwire` child (`sim`, `serve`). Killed (SIGKILL) when dropped; stdout lines
/// arrive on a channel and stderr is collected, both drained continuously so the child never
/// blocks on a full pipe.
struct Proc {
    name: &'static str,
    child: Child,
    stdout: mpsc::UnboundedReceiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    fn spawn(name: &'static str, args: &[&str]) -> Proc {
        let mut child = Command::new(TICKWIRE)
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning `tickwire {}`: {e}", args.join(" ")));
        let (tx, stdout) = mpsc::unbounded_channel();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx.send(line);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        tokio::spawn(collect(child.stderr.take().unwrap(), stderr.clone()));
        Proc {
            name,
            child,
            stdout,
            stderr,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("the child is still running")
    }

    /// What the child wrote to stderr so far (its logs), for failure messages.
    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The first stdout line starting with `prefix`, within `limit`.
    async fn line_starting(&mut self, prefix: &str, limit: Duration) -> String {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.stdout.recv()).await {
                Ok(Some(line)) if line.starts_with(prefix) => return line,
                Ok(Some(_)) => continue,
                Ok(None) => panic!(
                    "{} closed stdout before printing {prefix:?}; exit: {:?}; stderr:\n{}",
                    self.name,
                    self.child.try_wait(),
                    self.stderr()
                ),
                Err(_) => panic!(
                    "{} printed no {prefix:?} line within {limit:?}; stderr:\n{}",
                    self.name,
                    self.stderr()
                ),
            }
        }
    }

    /// Sends SIGINT, as Ctrl-C in a terminal does.
    async fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.pid().to_string()])
            .status()
            .await
            .expect("running kill");
        assert!(status.success(), "kill -INT {} failed", self.name);
    }

    /// Waits for the child to exit, within `limit`.
    async fn exit_within(&mut self, limit: Duration) -> ExitStatus {
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => status.expect("waiting for the child"),
            Err(_) => panic!(
                "{} did not exit within {limit:?}; stderr:\n{}",
                self.name,
                self.stderr()
            ),
        }
    }
}

/// Appends everything `from` yields to `into` (lossy UTF-8), until EOF.
async fn collect(mut from: impl AsyncRead + Unpin, into: Arc<Mutex<String>>) {
    let mut buf = vec![0u8; 8192];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        into.lock()
            .unwrap()
            .push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

/// Runs `tickwire args` to completion within `limit`, capturing stdout and stderr. The child is
/// killed if the deadline passes.
async fn run(args: &[&str], limit: Duration) -> Output {
    // What a user sees: no backtraces (RUST_BACKTRACE may be set for the test run).
    let child = Command::new(TICKWIRE)
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawning `tickwire {}`: {e}", args.join(" ")));
    match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(out) => out.expect("collecting the child's output"),
        Err(_) => panic!(
            "`tickwire {}` did not finish within {limit:?}",
            args.join(" ")
        ),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `run`, then asserts the exit status is `success` (with both streams in the message).
async fn run_expecting(args: &[&str], limit: Duration, success: bool) -> (String, String) {
    let out = run(args, limit).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.success(),
        success,
        "`tickwire {}` exited with {}; stderr:\n{stderr}",
        args.join(" "),
        out.status
    );
    (stdout, stderr)
}

/// The text between `start` and `end` in `line` (both must be present).
fn between<'a>(line: &'a str, start: &str, end: &str) -> &'a str {
    let from = line
        .find(start)
        .unwrap_or_else(|| panic!("no {start:?} in {line:?}"))
        + start.len();
    let len = line[from..]
        .find(end)
        .unwrap_or_else(|| panic!("no {end:?} after {start:?} in {line:?}"));
    &line[from..from + len]
}

/// A simulator process; returns it with its (WebSocket, REST) base URLs.
async fn spawn_sim(args: &[&str]) -> (Proc, String, String) {
    let mut all = vec!["sim", "--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let mut sim = Proc::spawn("tickwire sim", &all);
    // `simulator listening: WebSocket ws://127.0.0.1:PORT/stream, REST http://127.0.0.1:PORT/api/v3/depth`
    let line = sim
        .line_starting("simulator listening:", Duration::from_secs(20))
        .await;
    let ws = between(&line, "WebSocket ", "/stream").to_string();
    let rest = between(&line, "REST ", "/api/v3/depth").to_string();
    assert!(ws.starts_with("ws://127.0.0.1:"), "{line}");
    assert!(rest.starts_with("http://127.0.0.1:"), "{line}");
    (sim, ws, rest)
}

/// A server process; returns it with its client URL (`ws://127.0.0.1:PORT/ws`).
async fn spawn_serve(args: &[&str]) -> (Proc, String) {
    let mut all = vec!["serve", "--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let mut serve = Proc::spawn("tickwire serve", &all);
    // `tickwire serving on ws://127.0.0.1:PORT/ws  (try: tickwire watch --url ...)`
    let line = serve
        .line_starting("tickwire serving on ", Duration::from_secs(20))
        .await;
    let url = line["tickwire serving on ".len()..]
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(
        url.starts_with("ws://127.0.0.1:") && url.ends_with("/ws"),
        "{line}"
    );
    (serve, url)
}

/// `GET url` as JSON.
async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    let resp = http
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let bytes = resp
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
}

/// Runs `tickwire normalize --venue binance files...` (exit 0 expected); returns the parsed
/// stdout lines and stderr.
async fn normalize(files: &[&str]) -> (Vec<Value>, String) {
    let mut args = vec!["normalize", "--venue", "binance"];
    args.extend_from_slice(files);
    let (stdout, stderr) = run_expecting(&args, Duration::from_secs(60), true).await;
    let lines = stdout
        .lines()
        .enumerate()
        .map(|(k, l)| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("stdout line {} is not JSON ({e}): {l}", k + 1))
        })
        .collect();
    (lines, stderr)
}

fn of_type<'a>(lines: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    lines.iter().filter(move |v| v["type"] == kind)
}

/// Asserts JSON trade lines equal the raw trades, in order, with seq 1, 2, ...
fn assert_trades_match(what: &str, got: &[&Value], expected: &[(u64, String, String, bool)]) {
    assert_eq!(got.len(), expected.len(), "{what}: number of trades");
    for (k, (v, (id, p, q, maker))) in got.iter().zip(expected).enumerate() {
        let side = if *maker { "sell" } else { "buy" };
        assert_eq!(
            (
                &v["seq"],
                &v["venue"],
                &v["symbol"],
                &v["trade_id"],
                &v["price"],
                &v["qty"],
                &v["side"],
            ),
            (
                &json!(k + 1),
                &json!("binance"),
                &json!("BTCUSDT"),
                &json!(id.to_string()),
                &json!(p),
                &json!(q),
                &json!(side),
            ),
            "{what}: trade #{}",
            k + 1
        );
    }
}

/// The raw trades in `records`, as `capture_trades` gives them.
fn trades_of(records: &[tickwire_feed::capture::Record]) -> Vec<(u64, String, String, bool)> {
    records
        .iter()
        .filter_map(|r| {
            let v: Value = serde_json::from_slice(&r.payload).ok()?;
            let d = &v["data"];
            (d["e"] == "trade").then(|| {
                (
                    d["t"].as_u64().unwrap(),
                    d["p"].as_str().unwrap().to_string(),
                    d["q"].as_str().unwrap().to_string(),
                    d["m"].as_bool().unwrap(),
                )
            })
        })
        .collect()
}

/// Writes `lines` to a fresh file under the test target's temp dir.
fn temp_capture(name: &str, lines: &[String]) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("processes-{}-{name}", std::process::id()));
    std::fs::write(&path, lines.join("\n") + "\n").expect("writing a temp capture");
    path
}

// ----------------------------------------------------------------------------------------------
// 1. sim + serve as two processes
// ----------------------------------------------------------------------------------------------

/// Reads an SDK client until it has `n` trades; returns (seq, trade) in arrival order.
async fn sdk_trades(c: &mut Client, n: usize) -> Vec<(u64, tickwire_sdk::wire::Trade)> {
    let mut out = Vec::new();
    while out.len() < n {
        let ev = tokio::time::timeout(Duration::from_secs(30), c.next())
            .await
            .unwrap_or_else(|_| panic!("SDK client: no data for 30 s after {} trades", out.len()))
            .unwrap_or_else(|| panic!("SDK client: connection gone after {} trades", out.len()))
            .expect("SDK client: valid data");
        match ev {
            Event::Frames(batch) => {
                for f in batch.iter() {
                    if let ArchivedBody::Trade(_) = &f.body {
                        let owned = to_owned(f);
                        let Body::Trade(t) = owned.body else {
                            unreachable!()
                        };
                        out.push((owned.seq, t));
                    }
                }
            }
            Event::Closed { code, reason } => {
                panic!(
                    "SDK client closed after {} trades: {code} {reason}",
                    out.len()
                )
            }
            _ => {}
        }
    }
    out.truncate(n);
    out
}

/// Reads a raw JSON client until it has `n` trade objects.
async fn json_trades(ws: &mut Ws, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    while out.len() < n {
        let v = next_json(ws, Duration::from_secs(30))
            .await
            .unwrap_or_else(|| {
                panic!(
                    "JSON client: no message for 30 s (or closed) after {} trades",
                    out.len()
                )
            });
        if v["type"] == "trade" {
            out.push(v);
        }
    }
    out
}

/// Reads an SDK client until its connection ends; returns how it ended.
async fn sdk_until_end(c: &mut Client, limit: Duration) -> String {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, c.next()).await {
            Err(_) => panic!("SDK client: the connection did not end within {limit:?}"),
            Ok(None) => return "end of stream".into(),
            Ok(Some(Err(e))) => return format!("error: {e}"),
            Ok(Some(Ok(Event::Closed { code, reason }))) => {
                return format!("close {code} {reason}");
            }
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// Reads a raw client until its connection ends; returns how it ended and the last status
/// frame it saw.
async fn ws_until_end(ws: &mut Ws, limit: Duration) -> (String, Option<Value>) {
    use tokio_tungstenite::tungstenite::Message;
    let deadline = tokio::time::Instant::now() + limit;
    let mut last_status = None;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!("JSON client: the connection did not end within {limit:?}"),
            Ok(None) => return ("end of stream".into(), last_status),
            Ok(Some(Err(e))) => return (format!("error: {e}"), last_status),
            Ok(Some(Ok(Message::Close(f)))) => {
                let code = f.map_or(1005, |f| u16::from(f.code));
                return (format!("close {code}"), last_status);
            }
            Ok(Some(Ok(Message::Text(t)))) => {
                if let Ok(v) = serde_json::from_str::<Value>(t.as_str())
                    && v["type"] == "status"
                {
                    last_status = Some(v);
                }
            }
            Ok(Some(Ok(_))) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_and_serve_processes_deliver_the_capture_and_serve_stops_on_ctrl_c() {
    let started = Instant::now();
    // What `normalize` makes of the same capture: the reference for the JSON client.
    let (normalized, _) = normalize(&[BTCUSDT_CAPTURE]).await;
    let reference: Vec<&Value> = of_type(&normalized, "trade").take(500).collect();
    assert_eq!(reference.len(), 500);

    let (mut sim, sim_ws, sim_rest) = spawn_sim(&["--paused", "--no-loop", "--speed", "30"]).await;
    let (mut serve, url) = spawn_serve(&[
        "--venue",
        "binance",
        "--symbols",
        "btcusdt",
        "--ws-url",
        &sim_ws,
        "--rest-url",
        &sim_rest,
    ])
    .await;

    tickwire_feed::tls::install_crypto_provider();
    let http = reqwest::Client::new();
    let status_url = format!("{sim_rest}/sim/status");
    let wait_start = Instant::now();
    loop {
        let status = get_json(&http, &status_url).await;
        if status["streams_subscribed"].as_u64().unwrap_or(0) >= 3 {
            break;
        }
        assert!(
            wait_start.elapsed() < Duration::from_secs(30),
            "the server did not subscribe its 3 streams at the simulator within 30 s; \
             sim status: {status}\nserve stderr:\n{}",
            serve.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut sdk = Client::connect(&url).await.expect("SDK client connects");
    let lossless = tickwire_sdk::client::SubscribeOptions {
        policy: tickwire_sdk::client::Policy::Lossless,
        ..Default::default()
    };
    sdk.subscribe_with(&["binance:BTCUSDT"], &[Channel::Trades], &lossless)
        .await
        .expect("SDK client subscribes");
    let mut raw = ws_connect(&url).await;
    send_json(
        &mut raw,
        json!({"op":"subscribe","id":1,"symbols":["binance:BTCUSDT"],"channels":["trades"],"encoding":"json","policy":"lossless"}),
    )
    .await;
    let ack = reply_of(&mut raw, "subscribed").await;
    assert_eq!(ack["type"], "subscribed", "{ack}");

    let resp = http
        .post(format!("{sim_rest}/sim/start"))
        .send()
        .await
        .expect("POST /sim/start");
    assert!(
        resp.status().is_success(),
        "POST /sim/start: {}",
        resp.status()
    );

    // Both clients read at once, so neither one's socket fills while the other is read.
    let (got, got_json) = tokio::join!(sdk_trades(&mut sdk, 2_000), json_trades(&mut raw, 500));
    let expected = capture_trades();
    assert_eq!(expected.len(), 9_757);
    for (k, ((seq, t), (id, p, q, maker))) in got.iter().zip(&expected).enumerate() {
        assert_eq!(*seq, k as u64 + 1, "SDK trade #{}: seq", k + 1);
        assert_eq!(t.trade_id, TradeId::Num(*id), "SDK trade #{}: id", k + 1);
        assert_eq!(
            decimal_string(t.price, 8),
            *p,
            "SDK trade #{}: price",
            k + 1
        );
        assert_eq!(decimal_string(t.qty, 8), *q, "SDK trade #{}: qty", k + 1);
        assert_eq!(t.side == Side::Sell, *maker, "SDK trade #{}: side", k + 1);
    }
    // The JSON a client receives is `normalize`'s line for the same frame, but for times.
    for (k, (live, offline)) in got_json.iter().zip(&reference).enumerate() {
        for field in TRADE_FIELDS {
            assert_eq!(
                live[field],
                offline[field],
                "JSON trade #{}: {field} differs from normalize's\n live: {live}\n normalize: {offline}",
                k + 1
            );
        }
        assert!(
            live["ts_publish"].is_u64(),
            "a live trade has ts_publish: {live}"
        );
    }

    // Ctrl-C: the server shuts down gracefully, and its clients see their connections end.
    serve.interrupt().await;
    let (status, sdk_end, raw_end) = tokio::join!(
        serve.exit_within(Duration::from_secs(10)),
        sdk_until_end(&mut sdk, Duration::from_secs(20)),
        ws_until_end(&mut raw, Duration::from_secs(20)),
    );
    assert!(
        status.success(),
        "serve exited with {status} after SIGINT; stderr:\n{}",
        serve.stderr()
    );
    assert!(!serve.stderr().contains("panicked"), "{}", serve.stderr());
    // Clients are told: the feed's last status says it disconnected for the shutdown, then
    // the server closes with 1001 (going away), not a reset.
    let (raw_end, last_status) = raw_end;
    assert!(
        sdk_end.starts_with("close 1001"),
        "SDK client saw {sdk_end}"
    );
    assert_eq!(raw_end, "close 1001", "JSON client saw {raw_end}");
    let last_status = last_status.expect("a status frame before the close");
    assert_eq!(last_status["status"], "disconnected", "{last_status}");
    assert_eq!(last_status["detail"], "shutdown", "{last_status}");

    // The simulator stops on Ctrl-C too.
    sim.interrupt().await;
    let status = sim.exit_within(Duration::from_secs(10)).await;
    assert!(
        status.success(),
        "sim exited with {status} after SIGINT; stderr:\n{}",
        sim.stderr()
    );
    eprintln!("sim + serve test took {:?}", started.elapsed());
}

// ----------------------------------------------------------------------------------------------
// 2. normalize
// ----------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normalize_turns_the_hftbacktest_capture_into_the_clients_json_lines() {
    let (lines, stderr) = normalize(&[BTCUSDT_CAPTURE]).await;
    for (k, v) in lines.iter().enumerate() {
        assert!(
            v.get("ts_publish").is_none(),
            "line {}: normalize has no publish time: {v}",
            k + 1
        );
    }
    let trades: Vec<&Value> = of_type(&lines, "trade").collect();
    assert_trades_match("normalize", &trades, &capture_trades());
    assert_eq!(trades.len(), 9_757);
    assert_eq!(of_type(&lines, "quote").count(), 28_040, "quotes");
    assert_eq!(
        of_type(&lines, "book_snapshot").count(),
        1,
        "book snapshots"
    );
    assert!(
        stderr.contains("normalized ") && stderr.contains(" messages into "),
        "the summary goes to stderr:\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normalize_merges_cryptofeed_ws_and_rest_files_into_one_snapshot_per_symbol() {
    let (lines, stderr) = normalize(&[CRYPTOFEED_WS, CRYPTOFEED_HTTP]).await;
    let snapshots: Vec<&Value> = of_type(&lines, "book_snapshot").collect();
    let symbols: BTreeSet<&str> = snapshots
        .iter()
        .map(|v| v["symbol"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        (snapshots.len(), symbols.len()),
        (4, 4),
        "one book snapshot per symbol: {symbols:?}\nstderr:\n{stderr}"
    );
    assert!(lines.iter().all(|v| v.get("ts_publish").is_none()));
}

// ----------------------------------------------------------------------------------------------
// 3. Bad input at the command line
// ----------------------------------------------------------------------------------------------

/// The capture's first 200 lines in its own format, `<ns> <frame>`.
fn first_capture_lines() -> (Vec<tickwire_feed::capture::Record>, Vec<String>) {
    let records: Vec<_> = tickwire_feed::capture::CaptureReader::open(BTCUSDT_CAPTURE)
        .unwrap()
        .take(200)
        .map(|r| r.unwrap())
        .collect();
    let lines = records
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r.ts_ns.unwrap(),
                String::from_utf8_lossy(&r.payload)
            )
        })
        .collect();
    (records, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normalize_reports_a_missing_file_and_a_line_in_no_capture_format() {
    let limit = Duration::from_secs(30);
    let (_, stderr) = run_expecting(
        &["normalize", "--venue", "binance", "/nonexistent"],
        limit,
        false,
    )
    .await;
    assert!(stderr.contains("/nonexistent"), "names the file:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // A line in no known format stops the run before any output, naming file and line.
    let (_, good) = first_capture_lines();
    let mut lines = good[..100].to_vec();
    lines.push("hello world".into());
    lines.extend_from_slice(&good[100..]);
    let path = temp_capture("garbage", &lines);
    let file = path.to_str().unwrap();
    let (stdout, stderr) =
        run_expecting(&["normalize", "--venue", "binance", file], limit, false).await;
    std::fs::remove_file(&path).ok();
    assert!(
        stderr.contains(&format!("{file}:101:")) && stderr.contains("hello world"),
        "names the file, the line number and the line:\n{stderr}"
    );
    assert!(stdout.is_empty(), "nothing normalized: {stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normalize_skips_a_malformed_frame_and_strict_makes_it_fatal() {
    let limit = Duration::from_secs(30);
    let (records, good) = first_capture_lines();
    let expected = trades_of(&records);
    assert!(
        trades_of(&records[100..]).len() >= 10,
        "trades after the bad line"
    );
    let mut lines = good[..100].to_vec();
    lines.push(r#"1723161253937085768 {"stream":"btcusdt@trade","data":{"e":"trade""#.into());
    lines.extend_from_slice(&good[100..]);
    let path = temp_capture("malformed", &lines);
    let file = path.to_str().unwrap();

    let (stdout, stderr) =
        run_expecting(&["normalize", "--venue", "binance", file], limit, true).await;
    assert!(
        stderr.contains(&format!("{file}:101: skipped")),
        "the skipped line is named with its file on stderr:\n{stderr}"
    );
    let out: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let trades: Vec<&Value> = of_type(&out, "trade").collect();
    assert_trades_match("normalize past a malformed frame", &trades, &expected);

    let (_, stderr) = run_expecting(
        &["normalize", "--venue", "binance", "--strict", file],
        limit,
        false,
    )
    .await;
    std::fs::remove_file(&path).ok();
    assert!(
        stderr.contains(&format!("{file}:101: skipped")) && stderr.contains("--strict"),
        "--strict fails, saying why:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The value after `flag` in a command line.
fn arg_after<'a>(line: &'a str, flag: &str) -> &'a str {
    let mut words = line.split_whitespace();
    words.find(|w| *w == flag);
    words
        .next()
        .unwrap_or_else(|| panic!("no {flag} in {line:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_venue_dialect_from_sim_process_to_serve_process_to_a_json_client() {
    for venue in [
        "binance-futures",
        "coinbase",
        "coinbase-advanced",
        "kraken",
        "okx",
        "bybit",
        "bybit-linear",
    ] {
        let mut sim = Proc::spawn(
            "tickwire sim",
            &[
                "sim",
                "--venue",
                venue,
                "--listen",
                "127.0.0.1:0",
                "--speed",
                "20",
            ],
        );
        // `  connect tickwire to it: tickwire serve --venue V --symbols S --ws-url W --rest-url R`
        let line = sim
            .line_starting("  connect tickwire to it:", Duration::from_secs(20))
            .await;
        let symbols = arg_after(&line, "--symbols").to_string();
        let (serve, url) = spawn_serve(&[
            "--venue",
            venue,
            "--symbols",
            &symbols,
            "--ws-url",
            arg_after(&line, "--ws-url"),
            "--rest-url",
            arg_after(&line, "--rest-url"),
        ])
        .await;
        let mut ws = ws_connect(&url).await;
        send_json(
            &mut ws,
            json!({"op":"subscribe","id":1,"symbols":[format!("{venue}:*")],
                   "channels":["trades","quotes","book"],"encoding":"json"}),
        )
        .await;
        let ack = reply_of(&mut ws, "subscribed").await;
        assert_eq!(ack["type"], "subscribed", "{venue}: {ack}");
        // Every kind of data from every symbol, no gap, within 30 s.
        let wanted = ["trade", "quote", "book_snapshot", "book_delta"];
        let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        let n_symbols = symbols.split(',').count();
        while seen.len() < wanted.len() * n_symbols {
            assert!(
                Instant::now() < deadline,
                "{venue}: after 30 s saw only {seen:?}\nserve stderr:\n{}\nsim stderr:\n{}",
                serve.stderr(),
                sim.stderr()
            );
            let Some(v) = next_json(&mut ws, Duration::from_secs(30)).await else {
                panic!(
                    "{venue}: the server closed or went silent\n{}",
                    serve.stderr()
                );
            };
            let kind = v["type"].as_str().unwrap_or_default().to_string();
            assert_eq!(v["venue"].as_str().unwrap_or(venue), venue, "{v}");
            if kind == "status" {
                assert_ne!(v["status"], "gap", "{venue}: {v}");
            }
            if wanted.contains(&kind.as_str()) {
                seen.insert((v["symbol"].as_str().unwrap_or_default().to_string(), kind));
            }
        }
        drop(serve);
        drop(sim);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_and_sim_refuse_bad_arguments_with_a_message() {
    let limit = Duration::from_secs(30);
    let (_, stderr) = run_expecting(
        &["serve", "--listen", "127.0.0.1:0", "--venue", "okx"],
        limit,
        false,
    )
    .await;
    assert!(
        stderr.contains("--symbols") && stderr.contains("BTC-USDT"),
        "says which symbols to give, in the venue's spelling:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    let (_, stderr) = run_expecting(
        &["serve", "--listen", "127.0.0.1:0", "--venue", "nasdaq"],
        limit,
        false,
    )
    .await;
    assert!(
        stderr.contains("nasdaq") && stderr.contains("bybit-linear"),
        "names the venues there are:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    let (_, stderr) = run_expecting(
        &["sim", "--listen", "127.0.0.1:0", "--speed", "0"],
        limit,
        false,
    )
    .await;
    assert!(
        stderr.contains("--speed") && stderr.contains("positive"),
        "says what --speed takes:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

// ----------------------------------------------------------------------------------------------
// 4. demo
// ----------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_for_its_duration_and_shows_symbols_and_latency() {
    let (stdout, stderr) =
        run_expecting(&["demo", "--duration", "3"], Duration::from_secs(60), true).await;
    assert!(
        stdout.contains("binance:BTCUSDT") && stdout.contains("latency"),
        "the table and the latency block:\n{stdout}\nstderr:\n{stderr}"
    );
}

/// `serve --record` killed with SIGKILL while recording: the recording opens with no error,
/// every frame before the torn tail reads back with contiguous `seq`, and reopening it for
/// appending cuts only the torn tail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serve_process_killed_mid_recording_leaves_a_readable_recording() {
    use tickwire_sdk::recording::{Filter, Recording, RecordingWriter, WriterOptions};
    let dir = std::env::temp_dir().join(format!("tickwire-kill-rec-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (_sim, ws, rest) = spawn_sim(&["--speed", "20"]).await;
    let dir_arg = dir.to_string_lossy().into_owned();
    let (mut serve, _url) = spawn_serve(&[
        "--venue",
        "binance",
        "--symbols",
        "btcusdt,ethusdt",
        "--ws-url",
        &ws,
        "--rest-url",
        &rest,
        "--record",
        &dir_arg,
    ])
    .await;
    // Let blocks reach the disk (full blocks, or the recorder's 100 ms idle flush).
    tokio::time::sleep(Duration::from_secs(3)).await;
    serve.child.start_kill().expect("SIGKILL the server");
    let _ = serve.child.wait().await;

    let read = |dir: &std::path::Path| -> Vec<Vec<u8>> {
        let rec = Recording::open(dir).expect("the killed recording opens");
        let mut next: HashMap<(u32, u8), u64> = HashMap::new();
        let mut out = Vec::new();
        for r in rec.frames(Filter::all()) {
            let r = r.expect("no damaged block before the torn tail");
            let key = (r.frame().instrument.to_native(), r.frame().channel() as u8);
            let seq = r.frame().seq.to_native();
            if let Some(n) = next.insert(key, seq + 1) {
                assert_eq!(seq, n, "seq hole in stream {key:?}");
            }
            out.push(r.bytes().to_vec());
        }
        out
    };
    let before = read(&dir);
    assert!(
        before.len() > 100,
        "only {} frames were recorded in 3 s",
        before.len()
    );
    let writer =
        RecordingWriter::open(&dir, WriterOptions::default()).expect("reopens for appending");
    assert!(!writer.recovery().is_empty());
    writer.close().expect("closes");
    let after = read(&dir);
    assert_eq!(
        after, before,
        "recovery kept every frame before the torn tail"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
