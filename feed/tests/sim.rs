//! The exchange simulator over real sockets (127.0.0.1, ephemeral ports): WebSocket streams
//! and requests, REST snapshots consistent with the diff streams, control, slow clients.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tickwire_feed::sim::{self, SimConfig, SimHandle, SimSource};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WAIT: Duration = Duration::from_secs(10);

fn config(sources: Vec<SimSource>) -> SimConfig {
    SimConfig {
        sources,
        ..SimConfig::demo()
    }
}

fn synthetic(rate: f64) -> SimSource {
    SimSource::Synthetic {
        symbols: vec!["ETHUSDT".into(), "SOLUSDT".into()],
        rate,
        seed: 7,
    }
}

async fn start(config: SimConfig) -> SimHandle {
    sim::start(config).await.expect("simulator starts")
}

fn http() -> reqwest::Client {
    tickwire_feed::tls::install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn get(url: &str) -> (u16, Value) {
    let r = http().get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {text}")),
    )
}

async fn post(url: &str) -> (u16, Value) {
    let r = http().post(url).send().await.unwrap();
    let status = r.status().as_u16();
    (
        status,
        serde_json::from_str(&r.text().await.unwrap()).unwrap(),
    )
}

async fn connect(url: &str) -> Ws {
    connect_async(url).await.expect("WebSocket connects").0
}

/// The next text message as JSON (pings are answered by tungstenite while reading).
async fn next_json(ws: &mut Ws) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let msg = timeout(deadline - Instant::now(), ws.next())
            .await
            .expect("a message within the wait")
            .expect("connection open")
            .expect("no error");
        match msg {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
}

/// Sends a request and returns its reply (data messages before it are skipped), keeping to
/// Binance's 5 messages per second.
async fn request(ws: &mut Ws, req: &str) -> Value {
    tokio::time::sleep(Duration::from_millis(220)).await;
    ws.send(Message::text(req)).await.unwrap();
    loop {
        let v = next_json(ws).await;
        if v.get("result").is_some() || v.get("error").is_some() {
            return v;
        }
    }
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

fn sorted(list: &[&str]) -> Vec<String> {
    let mut k: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    k.sort();
    k
}

fn is_decimal8(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.split_once('.').is_some_and(|(i, f)| {
            !i.is_empty() && f.len() == 8 && (i.to_string() + f).bytes().all(|c| c.is_ascii_digit())
        })
    })
}

async fn wait_paused(sim: &SimHandle) {
    let deadline = Instant::now() + WAIT;
    while sim.status()["running"] == true {
        assert!(Instant::now() < deadline, "the run budget ends");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn now_us() -> u64 {
    tickwire_feed::clock::now_ns() / 1000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_streams_have_the_documented_shapes() {
    let sim = start(config(vec![synthetic(400.0)])).await;
    let url = format!(
        "{}/stream?streams=ethusdt@trade/ethusdt@aggTrade/ethusdt@bookTicker/ethusdt@depth@100ms/ethusdt@depth&timeUnit=MICROSECOND",
        sim.ws_url()
    );
    let mut ws = connect(&url).await;
    let mut seen = BTreeMap::new();
    while seen.len() < 5 {
        let v = next_json(&mut ws).await;
        let stream = v["stream"].as_str().unwrap().to_string();
        let d = &v["data"];
        assert_eq!(d["s"], "ETHUSDT");
        match stream.as_str() {
            "ethusdt@trade" => {
                assert_eq!(
                    keys(d),
                    sorted(&["e", "E", "s", "t", "p", "q", "T", "m", "M"])
                );
                assert_eq!(d["e"], "trade");
                assert!(is_decimal8(&d["p"]) && is_decimal8(&d["q"]), "{d}");
                let e = d["E"].as_u64().unwrap();
                assert!(
                    e.abs_diff(now_us()) < 5_000_000,
                    "E in microseconds near now: {e}"
                );
                assert!(d["T"].as_u64().unwrap() <= e);
            }
            "ethusdt@aggTrade" => {
                assert_eq!(
                    keys(d),
                    sorted(&["e", "E", "s", "a", "p", "q", "f", "l", "T", "m", "M"])
                );
            }
            "ethusdt@bookTicker" => {
                assert_eq!(keys(d), sorted(&["u", "s", "b", "B", "a", "A"]));
                assert!(is_decimal8(&d["b"]) && is_decimal8(&d["A"]));
            }
            "ethusdt@depth@100ms" | "ethusdt@depth" => {
                assert_eq!(keys(d), sorted(&["e", "E", "s", "U", "u", "b", "a"]));
                assert_eq!(d["e"], "depthUpdate");
                assert!(d["U"].as_u64().unwrap() <= d["u"].as_u64().unwrap());
                for l in d["b"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .chain(d["a"].as_array().unwrap())
                {
                    assert!(is_decimal8(&l[0]) && is_decimal8(&l[1]), "{l}");
                }
            }
            other => panic!("unexpected stream {other}"),
        }
        seen.insert(stream, ());
    }
    // Raw format on /ws/<stream>, milliseconds by default.
    let mut raw = connect(&format!("{}/ws/solusdt@trade", sim.ws_url())).await;
    let v = next_json(&mut raw).await;
    assert_eq!(v["e"], "trade");
    assert_eq!(v["s"], "SOLUSDT");
    assert!(v.get("stream").is_none());
    assert!(v["E"].as_u64().unwrap().abs_diff(now_us() / 1000) < 5_000);
    // Our nanosecond extension.
    let mut ns = connect(&format!(
        "{}/ws/solusdt@trade?timeUnit=NANOSECOND",
        sim.ws_url()
    ))
    .await;
    let v = next_json(&mut ns).await;
    assert!(v["E"].as_u64().unwrap() > 1_000_000_000_000_000_000);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_requests_and_errors_keep_the_connection() {
    let sim = start(config(vec![synthetic(200.0)])).await;
    let mut ws = connect(&format!("{}/ws", sim.ws_url())).await;
    assert_eq!(
        request(
            &mut ws,
            r#"{"method":"SUBSCRIBE","params":["ethusdt@trade","solusdt@bookTicker"],"id":1}"#
        )
        .await,
        json!({"result": null, "id": 1})
    );
    let v = next_json(&mut ws).await;
    assert!(v.get("stream").is_none(), "raw payloads on /ws: {v}");
    assert_eq!(
        request(&mut ws, r#"{"method":"LIST_SUBSCRIPTIONS","id":3}"#).await,
        json!({"result": ["ethusdt@trade", "solusdt@bookTicker"], "id": 3})
    );
    // Malformed JSON: Binance's code 3, connection stays open.
    let v = request(
        &mut ws,
        r#"{"method":"SUBSCRIBE","params":["ethusdt@trade"]"#,
    )
    .await;
    assert_eq!(v["error"]["code"], 3, "{v}");
    let v = request(&mut ws, r#"{"method":"SUBSCRIBEE","params":[],"id":4}"#).await;
    assert_eq!(v["error"]["code"], 2, "{v}");
    assert!(
        v["error"]["msg"]
            .as_str()
            .unwrap()
            .contains("unknown variant")
    );
    let v = request(
        &mut ws,
        r#"{"method":"SUBSCRIBE","params":["xrpusdt@trade"],"id":5}"#,
    )
    .await;
    assert_eq!(v["error"]["code"], 2);
    assert_eq!(v["id"], 5);
    assert_eq!(
        request(
            &mut ws,
            r#"{"method":"UNSUBSCRIBE","params":["solusdt@bookTicker"],"id":6}"#
        )
        .await,
        json!({"result": null, "id": 6})
    );
    assert_eq!(
        request(
            &mut ws,
            r#"{"method":"SET_PROPERTY","params":["combined",true],"id":7}"#
        )
        .await,
        json!({"result": null, "id": 7})
    );
    let v = request(
        &mut ws,
        r#"{"method":"GET_PROPERTY","params":["combined"],"id":"q8"}"#,
    )
    .await;
    assert_eq!(v, json!({"result": true, "id": "q8"}));
    // Still working, now combined, only the remaining stream.
    for _ in 0..5 {
        let v = next_json(&mut ws).await;
        assert_eq!(v["stream"], "ethusdt@trade", "{v}");
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_urls_and_rest_requests() {
    let sim = start(config(vec![synthetic(50.0)])).await;
    let err = connect_async(format!("{}/stream?streams=xrpusdt@trade", sim.ws_url()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("400"), "{err}");
    let err = connect_async(format!("{}/ws/ethusdt@trade?timeUnit=SECOND", sim.ws_url()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("400"), "{err}");
    let rest = sim.rest_url();
    assert_eq!(
        get(&format!("{rest}/api/v3/depth?symbol=XRPUSDT")).await,
        (400, json!({"code": -1121, "msg": "Invalid symbol."}))
    );
    assert_eq!(get(&format!("{rest}/api/v3/depth")).await.1["code"], -1102);
    assert_eq!(
        get(&format!("{rest}/api/v3/depth?symbol=ethusdt")).await.1["code"],
        -1100
    );
    assert_eq!(
        get(&format!("{rest}/api/v3/depth?symbol=ETHUSDT&limit=x"))
            .await
            .0,
        400
    );
    let (status, v) = get(&format!("{rest}/api/v3/nope")).await;
    assert_eq!(status, 404);
    assert!(v["msg"].as_str().unwrap().contains("/api/v3/depth"));
    assert_eq!(get(&format!("{rest}/api/v3/ping")).await, (200, json!({})));
    let (status, v) = get(&format!("{rest}/api/v3/depth?symbol=ETHUSDT&limit=5")).await;
    assert_eq!(status, 200);
    assert_eq!(v["bids"].as_array().unwrap().len(), 5);
    assert_eq!(v["asks"].as_array().unwrap().len(), 5);
    let bid: f64 = v["bids"][0][0].as_str().unwrap().parse().unwrap();
    let ask: f64 = v["asks"][0][0].as_str().unwrap().parse().unwrap();
    assert!(bid < ask);
    let (_, v) = get(&format!("{rest}/api/v3/depth?symbol=ETHUSDT")).await;
    assert!(
        v["bids"].as_array().unwrap().len() >= 50,
        "synthetic books hold >= 50 levels"
    );
    let (_, info) = get(&format!("{rest}/api/v3/exchangeInfo")).await;
    let names: Vec<&str> = info["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["symbol"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ETHUSDT", "SOLUSDT"]);
    assert_eq!(info["symbols"][0]["filters"][0]["tickSize"], "0.01000000");
    sim.shutdown().await;
}

/// A client's book, kept as Binance documents ("How to manage a local order book correctly"):
/// buffer diffs, apply the snapshot, drop `u <= lastUpdateId`, bridge, then `U == prev u + 1`.
#[derive(Default)]
struct Follower {
    bids: BTreeMap<String, String>,
    asks: BTreeMap<String, String>,
    last_u: Option<u64>,
    bridged: bool,
    buffer: Vec<Value>,
}

fn zero(q: &str) -> bool {
    q.bytes().all(|c| c == b'0' || c == b'.')
}

impl Follower {
    fn apply_levels(&mut self, d: &Value) {
        for (side, key) in [(&mut self.bids, "b"), (&mut self.asks, "a")] {
            for l in d[key].as_array().unwrap() {
                let (p, q) = (l[0].as_str().unwrap(), l[1].as_str().unwrap());
                if zero(q) {
                    side.remove(p);
                } else {
                    side.insert(p.to_string(), q.to_string());
                }
            }
        }
    }

    fn on_diff(&mut self, d: &Value) {
        let Some(last) = self.last_u else {
            self.buffer.push(d.clone());
            return;
        };
        let (first, u) = (d["U"].as_u64().unwrap(), d["u"].as_u64().unwrap());
        if u <= last {
            return;
        }
        if self.bridged {
            assert_eq!(first, last + 1, "contiguous diffs: {d}");
        } else {
            assert!(
                first <= last + 1 && u > last,
                "first diff bridges the snapshot: {d}"
            );
            self.bridged = true;
        }
        self.apply_levels(d);
        self.last_u = Some(u);
    }

    fn on_snapshot(&mut self, s: &Value) {
        for (side, key) in [(&mut self.bids, "bids"), (&mut self.asks, "asks")] {
            side.clear();
            for l in s[key].as_array().unwrap() {
                side.insert(l[0].as_str().unwrap().into(), l[1].as_str().unwrap().into());
            }
        }
        self.last_u = Some(s["lastUpdateId"].as_u64().unwrap());
        for d in std::mem::take(&mut self.buffer) {
            self.on_diff(&d);
        }
    }

    fn same_as(&self, s: &Value) -> bool {
        let side = |key: &str| -> BTreeMap<String, String> {
            s[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| (l[0].as_str().unwrap().into(), l[1].as_str().unwrap().into()))
                .collect()
        };
        self.bids == side("bids") && self.asks == side("asks")
    }
}

/// Reads the connection, feeding `<symbol>@depth@100ms` diffs to `f`, until `f` reached `u`.
async fn follow_until(ws: &mut Ws, f: &mut Follower, stream: &str, u: u64) -> Vec<Value> {
    let mut others = Vec::new();
    while f.last_u.is_none_or(|l| l < u) {
        let v = next_json(ws).await;
        if v["stream"] == stream {
            f.on_diff(&v["data"]);
        } else {
            others.push(v);
        }
    }
    assert_eq!(
        f.last_u,
        Some(u),
        "lastUpdateId is the u of a diff that was sent"
    );
    others
}

async fn sync_and_check(sim: &SimHandle, symbol: &str, mut ws: Ws, bursts: &[u64]) -> Vec<Value> {
    let lower = symbol.to_ascii_lowercase();
    let stream = format!("{lower}@depth@100ms");
    let mut f = Follower::default();
    let mut others = Vec::new();
    // The snapshot is fetched while the replay runs flat out.
    sim.run_items(bursts[0]);
    let url = format!("{}/api/v3/depth?symbol={symbol}&limit=5000", sim.rest_url());
    let (status, snap) = get(&url).await;
    assert_eq!(status, 200, "{snap}");
    wait_paused(sim).await;
    for &n in &bursts[1..] {
        sim.run_items(n);
        wait_paused(sim).await;
    }
    let (_, end) = get(&url).await;
    let end_u = end["lastUpdateId"].as_u64().unwrap();
    // Diffs sent before the snapshot arrive first; buffer them as Binance says.
    while f.buffer.is_empty() && f.last_u.is_none() {
        let v = next_json(&mut ws).await;
        if v["stream"] == stream.as_str() {
            f.on_diff(&v["data"]);
            f.on_snapshot(&snap);
        } else {
            others.push(v);
        }
    }
    others.extend(follow_until(&mut ws, &mut f, &stream, end_u).await);
    assert!(f.same_as(&end), "the client's book is the simulator's book");
    assert!(!f.bids.is_empty() && !f.asks.is_empty());
    others
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthetic_snapshot_plus_diffs_is_the_book() {
    let sim = start(SimConfig {
        speed: f64::INFINITY,
        paused: true,
        ..config(vec![synthetic(1000.0)])
    })
    .await;
    let ws = connect(&format!(
        "{}/stream?streams=ethusdt@depth@100ms/ethusdt@trade",
        sim.ws_url()
    ))
    .await;
    let others = sync_and_check(&sim, "ETHUSDT", ws, &[1500, 1500, 1500]).await;
    let trades: Vec<u64> = others
        .iter()
        .filter(|v| v["stream"] == "ethusdt@trade")
        .map(|v| v["data"]["t"].as_u64().unwrap())
        .collect();
    assert!(trades.len() > 100);
    assert!(
        trades.windows(2).all(|w| w[1] == w[0] + 1),
        "trade ids without holes"
    );
    sim.shutdown().await;
}

fn capture_file() -> PathBuf {
    let t0 = 1_723_161_253_000_000_000u64;
    let depth = |dt: u64, first: u64, last: u64, b: &str, a: &str| {
        format!(
            r#"{} {{"stream":"btcusdt@depth@100ms","data":{{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":{first},"u":{last},"b":[{b}],"a":[{a}]}}}}"#,
            t0 + dt * 1_000_000
        )
    };
    let lines = [
        depth(0, 100, 104, r#"["99.00000000","1.00000000"]"#, ""),
        depth(
            100,
            105,
            110,
            r#"["100.00000000","2.00000000"]"#,
            r#"["101.00000000","0.00000000"]"#,
        ),
        format!(
            r#"{} {{"lastUpdateId":107,"bids":[["100.00000000","1.00000000"],["99.00000000","1.00000000"]],"asks":[["101.00000000","3.00000000"],["102.00000000","4.00000000"]]}}"#,
            t0 + 150_000_000
        ),
        format!(
            r#"{} {{"stream":"btcusdt@trade","data":{{"e":"trade","E":1,"s":"BTCUSDT","t":5000,"p":"102.00000000","q":"0.50000000","T":1,"m":false,"M":true}}}}"#,
            t0 + 160_000_000
        ),
        format!(
            r#"{} {{"stream":"btcusdt@bookTicker","data":{{"u":111,"s":"BTCUSDT","b":"100.00000000","B":"2.00000000","a":"102.00000000","A":"3.50000000"}}}}"#,
            t0 + 170_000_000
        ),
        depth(
            200,
            111,
            113,
            r#"["98.00000000","5.00000000"]"#,
            r#"["102.00000000","3.50000000"]"#,
        ),
        depth(
            300,
            114,
            116,
            r#"["100.00000000","0.00000000"],["97.50000000","1.00000000"]"#,
            r#"["103.00000000","1.00000000"]"#,
        ),
        format!(
            r#"{} {{"stream":"btcusdt@trade","data":{{"e":"trade","E":1,"s":"BTCUSDT","t":5001,"p":"99.00000000","q":"0.25000000","T":1,"m":true,"M":true}}}}"#,
            t0 + 350_000_000
        ),
        depth(400, 117, 117, r#"["99.00000000","0.75000000"]"#, ""),
    ];
    // One file per call: tests run in parallel.
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tickwire-sim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("btcusdt-{n}.gz"));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all((lines.join("\n") + "\n").as_bytes()).unwrap();
    std::fs::write(&path, gz.finish().unwrap()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_books_stay_exact_across_loops() {
    let file = capture_file();
    let sim = start(SimConfig {
        speed: f64::INFINITY,
        paused: true,
        looping: true,
        ..config(vec![SimSource::CaptureFiles(vec![file.clone()])])
    })
    .await;
    let _ = std::fs::remove_file(&file); // loaded at start
    let ws = connect(&format!(
        "{}/stream?streams=btcusdt@depth@100ms/btcusdt@trade/btcusdt@bookTicker",
        sim.ws_url()
    ))
    .await;
    // 3 items reach the snapshot; then about five loops of 6 items (+ bridges and 1 s flushes).
    let others = sync_and_check(&sim, "BTCUSDT", ws, &[3, 20, 20]).await;
    assert!(
        sim.status()["loops_completed"].as_u64().unwrap() >= 3,
        "{}",
        sim.status()
    );
    let trades: Vec<u64> = others
        .iter()
        .filter(|v| v["stream"] == "btcusdt@trade")
        .map(|v| v["data"]["t"].as_u64().unwrap())
        .collect();
    assert!(trades.len() >= 6, "{trades:?}");
    assert!(trades.windows(2).all(|w| w[1] == w[0] + 1), "{trades:?}");
    let tickers: Vec<u64> = others
        .iter()
        .filter(|v| v["stream"] == "btcusdt@bookTicker")
        .map(|v| v["data"]["u"].as_u64().unwrap())
        .collect();
    assert!(tickers.windows(2).all(|w| w[1] > w[0]), "{tickers:?}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_capture_loops_with_exact_books() {
    let sim = start(SimConfig {
        speed: f64::INFINITY,
        paused: true,
        ..config(vec![SimSource::CaptureBytes {
            name: "demo".into(),
            bytes: sim::DEMO_CAPTURE,
        }])
    })
    .await;
    let len = sim.status()["sources"][0]["length"].as_u64().unwrap();
    let ws = connect(&format!("{}/ws/btcusdt@depth@100ms", sim.ws_url())).await;
    let mut ws = ws;
    // Raw streams: switch to combined so the helper can tell streams apart.
    assert_eq!(
        request(
            &mut ws,
            r#"{"method":"SET_PROPERTY","params":["combined",true],"id":1}"#
        )
        .await,
        json!({"result": null, "id": 1})
    );
    sync_and_check(&sim, "BTCUSDT", ws, &[20, len, 500]).await;
    assert_eq!(sim.status()["loops_completed"], 1);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_waits_for_a_book_that_is_not_known_yet() {
    let file = capture_file();
    let sim = start(SimConfig {
        speed: f64::INFINITY,
        paused: true,
        ..config(vec![SimSource::CaptureFiles(vec![file.clone()])])
    })
    .await;
    let _ = std::fs::remove_file(&file); // loaded at start
    let url = format!("{}/api/v3/depth?symbol=BTCUSDT", sim.rest_url());
    let pending = tokio::spawn(async move { get(&url).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!pending.is_finished(), "held while the book is unknown");
    let (status, v) = post(&format!("{}/sim/start?events=3", sim.rest_url())).await;
    assert_eq!(status, 200, "{v}");
    let (status, snap) = timeout(WAIT, pending).await.unwrap().unwrap();
    assert_eq!(status, 200);
    assert_eq!(snap["lastUpdateId"], 110);
    assert_eq!(snap["bids"][0], json!(["100.00000000", "2.00000000"]));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_does_not_stop_others() {
    let sim = start(config(vec![synthetic(20_000.0)])).await;
    let all = "ethusdt@trade/ethusdt@aggTrade/ethusdt@bookTicker/ethusdt@depth@100ms/solusdt@trade/solusdt@aggTrade/solusdt@bookTicker/solusdt@depth@100ms";
    let _stalled = connect(&format!("{}/stream?streams={all}", sim.ws_url())).await;
    let mut reader = connect(&format!("{}/ws/ethusdt@trade", sim.ws_url())).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut received = 0u64;
    while sim.status()["clients_closed_slow"] == 0 {
        assert!(Instant::now() < deadline, "the stalled client is closed");
        for _ in 0..100 {
            next_json(&mut reader).await;
            received += 1;
        }
    }
    // The reader keeps receiving after the stalled client was dropped.
    for _ in 0..500 {
        next_json(&mut reader).await;
    }
    assert!(received >= 100);
    assert_eq!(sim.status()["connected_clients"], 1);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_pongs_and_silent_clients() {
    let sim = start(SimConfig {
        ping_interval: Duration::from_millis(300),
        ..config(vec![synthetic(20.0)])
    })
    .await;
    let mut alive = connect(&format!("{}/ws/ethusdt@trade", sim.ws_url())).await;
    let mut silent = connect(&format!("{}/ws/ethusdt@trade", sim.ws_url())).await;
    alive
        .send(Message::Ping(b"hi".to_vec().into()))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut pong = false;
    let mut pings = 0;
    while Instant::now() < deadline {
        if let Ok(Some(Ok(m))) = timeout(deadline - Instant::now(), alive.next()).await {
            match m {
                Message::Pong(p) if p.as_ref() == b"hi" => pong = true,
                Message::Ping(_) => pings += 1,
                Message::Close(c) => panic!("closed: {c:?}"),
                _ => {}
            }
        }
    }
    assert!(pong, "the server answers client pings");
    assert!(pings >= 3, "the server pings every interval ({pings})");
    // The silent client never answered (it never read): closed after 3 intervals.
    let close = loop {
        match timeout(WAIT, silent.next()).await.unwrap() {
            Some(Ok(Message::Close(c))) => break c,
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    let close = close.expect("a close frame with a reason");
    assert_eq!(u16::from(close.code), 1008);
    assert!(close.reason.contains("pong"), "{}", close.reason);
    assert!(
        sim.status()["clients_closed_pong_timeout"]
            .as_u64()
            .unwrap()
            >= 1
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_three_symbols_and_control_works() {
    let sim = start(SimConfig::demo()).await;
    let rest = sim.rest_url();
    let (_, info) = get(&format!("{rest}/api/v3/exchangeInfo")).await;
    assert_eq!(info["symbols"].as_array().unwrap().len(), 3);
    for s in ["BTCUSDT", "ETHUSDT", "SOLUSDT"] {
        let (status, v) = get(&format!("{rest}/api/v3/depth?symbol={s}&limit=10")).await;
        assert_eq!(status, 200, "{s}: {v}");
        assert_eq!(v["bids"].as_array().unwrap().len(), 10);
    }
    let (_, v) = post(&format!("{rest}/sim/pause")).await;
    assert_eq!(v["running"], false);
    let (_, v) = post(&format!("{rest}/sim/start")).await;
    assert_eq!(v["running"], true);
    let (_, v) = get(&format!("{rest}/sim/status")).await;
    assert!(v["events_sent"]["bookTicker"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["sources"].as_array().unwrap().len(), 2);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_violations_close_with_the_fitting_code() {
    let sim = start(config(vec![synthetic(20.0)])).await;
    let mut big = connect(&format!("{}/ws?timeUnit=microsecond", sim.ws_url())).await;
    big.send(Message::text("x".repeat(100_000))).await.unwrap();
    let close = loop {
        match timeout(WAIT, big.next()).await.unwrap() {
            Some(Ok(Message::Close(c))) => break c.expect("a close frame with a reason"),
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 1009);
    // Binance's limit: more than 5 incoming messages per second closes the connection.
    let mut chatty = connect(&format!("{}/ws", sim.ws_url())).await;
    for i in 0..6 {
        let req = format!(r#"{{"method":"LIST_SUBSCRIPTIONS","id":{i}}}"#);
        chatty.send(Message::text(req)).await.unwrap();
    }
    let close = loop {
        match timeout(WAIT, chatty.next()).await.unwrap() {
            Some(Ok(Message::Close(c))) => break c.expect("a close frame with a reason"),
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 1008);
    assert!(
        close.reason.contains("5 incoming messages"),
        "{}",
        close.reason
    );
    sim.shutdown().await;
}
