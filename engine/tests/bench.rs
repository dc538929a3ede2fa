//! `tickwire bench` as a user runs it: a real process, the quick smoke run. Asserts only that
//! the harness works and its report is well formed (speed is for BENCHMARKS.md, not tests).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn tickwire() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tickwire"))
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tickwire-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn assert_hgrm(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        text.starts_with("       Value     Percentile"),
        "{}",
        path.display()
    );
    let mut last = (0.0f64, 0.0f64, 0u64);
    let mut rows = 0;
    for line in text
        .lines()
        .skip(2)
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (v, q, n): (f64, f64, u64) = (
            cols[0].parse().unwrap(),
            cols[1].parse().unwrap(),
            cols[2].parse().unwrap(),
        );
        assert!(
            v >= last.0 && q >= last.1 && n >= last.2,
            "not monotone in {}: {line}",
            path.display()
        );
        last = (v, q, n);
        rows += 1;
    }
    assert!(rows > 0, "{} has no rows", path.display());
    assert!(
        (last.1 - 1.0).abs() < 1e-9,
        "{} does not reach the 100th percentile",
        path.display()
    );
    assert!(text.contains("#[Max"), "{}", path.display());
}

#[test]
fn quick_bench_runs_both_peers_and_writes_a_well_formed_report() {
    let out = temp_dir("quick");
    let run = tickwire()
        .args(["bench", "--quick", "--peers", "tickwire,naive", "--out"])
        .arg(&out)
        .output()
        .expect("run tickwire bench");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "tickwire bench --quick failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("tickwire@2000/s") && stdout.contains("naive@2000/s"),
        "{stdout}"
    );
    assert!(stdout.contains("end to end"), "{stdout}");

    let report: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).expect("report.json"))
            .expect("report.json is JSON");
    assert_eq!(report["version"], 1);
    assert!(report["machine"]["cpus"].as_u64().unwrap() >= 1);
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "{report:#}");
    for (run, peer) in runs.iter().zip(["tickwire", "naive"]) {
        assert_eq!(run["peer"], peer);
        assert_eq!(run["rate"], 2000.0);
        assert_eq!(run["fast_clients"], 10);
        assert!(run["ticks_in_per_s"].as_f64().unwrap() > 0.0, "{run:#}");
        assert!(run["deliveries_per_s"].as_f64().unwrap() > 0.0, "{run:#}");
        assert!(run["sustained"].is_boolean());
        let hops = run["hops"].as_array().unwrap();
        let names: Vec<&str> = hops.iter().map(|h| h["hop"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "exchange_to_recv",
                "recv_to_publish",
                "publish_to_client",
                "end_to_end"
            ]
        );
        for h in hops {
            assert!(h["count"].as_u64().unwrap() > 0, "{h:#}");
            let p: Vec<f64> = ["p50", "p90", "p99", "p99_9", "p99_99", "max"]
                .iter()
                .map(|k| h[k].as_f64().unwrap())
                .collect();
            assert!(p.windows(2).all(|w| w[0] <= w[1]) && p[0] > 0.0, "{h:#}");
        }
        // The end-to-end figure covers the frames with a venue time: at least their
        // publish -> client deliveries.
        assert!(hops[3]["count"].as_u64() <= hops[2]["count"].as_u64());
        for hop in [
            "exchange_to_recv",
            "recv_to_publish",
            "publish_to_client",
            "end_to_end",
            "sim_lateness",
        ] {
            assert_hgrm(&out.join(format!("{peer}-2000-{hop}.hgrm")));
        }
    }
    assert_eq!(report["ratios"][0]["peer"], "naive");
    let goals = report["goals"].as_array().expect("goals");
    assert_eq!(goals.len(), 6, "{report:#}");
    // No tickwire-rec run: the recording goal is there, not measured.
    assert!(goals[5]["measured"].is_null(), "{:#}", goals[5]);
    assert_eq!(report["overheads"].as_array().map(Vec::len), Some(0));
    assert!(
        goals
            .iter()
            .all(|g| g["goal"].is_string() && g["target"].is_number())
    );
    let svg = std::fs::read_to_string(out.join("latency-2000.svg")).expect("the plot");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(
        svg.matches("<polyline").count() >= 2,
        "one line per peer at least"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn bench_refuses_bad_settings_with_a_message_naming_them() {
    for (args, expect) in [
        (
            &["--slow", "0.8", "--stalled", "0.5"][..],
            "--slow and --stalled",
        ),
        (&["--rate", "0"][..], "--rate"),
        (&["--clients", "0"][..], "--clients"),
    ] {
        let out = tickwire()
            .arg("bench")
            .args(args)
            .arg("--out")
            .arg(temp_dir("bad"))
            .output()
            .expect("run tickwire bench");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
    }
}

/// The NATS peer needs `nats-server` (Debian package). `.ci/run` installs it and sets
/// TICKWIRE_REQUIRE_NATS=1, so there this test cannot be skipped; elsewhere it says it skipped.
#[test]
fn quick_bench_with_the_nats_peer_measures_a_real_nats_server() {
    if tickwire_engine::bench::nats::find_server().is_none() {
        assert!(
            std::env::var_os("TICKWIRE_REQUIRE_NATS").is_none(),
            "nats-server is not installed (apt-get install nats-server)"
        );
        eprintln!("SKIPPED: nats-server is not installed (apt-get install nats-server)");
        return;
    }
    let out = temp_dir("nats");
    let run = tickwire()
        .args(["bench", "--quick", "--peers", "tickwire,nats", "--out"])
        .arg(&out)
        .output()
        .expect("run tickwire bench");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let nats = &report["runs"][1];
    assert_eq!(nats["peer"], "nats");
    assert!(nats["deliveries_per_s"].as_f64().unwrap() > 0.0, "{nats:#}");
    assert!(nats["hops"][3]["count"].as_u64().unwrap() > 0, "{nats:#}");
    assert_eq!(report["ratios"][0]["peer"], "nats");
    assert_hgrm(&out.join("nats-2000-end_to_end.hgrm"));
    let _ = std::fs::remove_dir_all(&out);
}

/// Runs `tickwire bench ARGS --out OUT` and returns its report (panics with its output if it
/// fails).
fn bench_report(args: &[&str], out: &Path) -> Value {
    let run = tickwire()
        .arg("bench")
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .expect("run tickwire bench");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "tickwire bench {args:?} failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    serde_json::from_slice(&std::fs::read(out.join("report.json")).expect("report.json"))
        .expect("report.json is JSON")
}

/// An overhead entry (what a peer adds to tickwire's latency) is complete: positive figures,
/// a ratio and a difference per percentile.
fn assert_overhead(o: &Value, peer: &str) {
    assert_eq!(o["peer"], peer, "{o:#}");
    assert_eq!(o["rate"], 2000.0);
    assert_eq!(o["repeats"], 1);
    assert!(o["both_kept_up"].is_boolean());
    for p in ["p50", "p99", "p99_9"] {
        let a = &o[p];
        for k in ["tickwire_us", "peer_us", "ratio"] {
            assert!(a[k].as_f64().unwrap() > 0.0, "{p}.{k}: {o:#}");
        }
        let diff = a["peer_us"].as_f64().unwrap() - a["tickwire_us"].as_f64().unwrap();
        assert!(
            (a["added_us"].as_f64().unwrap() - diff).abs() < 1e-6,
            "{p}: with one repeat the difference is of the two figures: {o:#}"
        );
        assert_eq!(a["ratios"].as_array().unwrap().len(), 1, "{o:#}");
    }
}

#[test]
fn quick_bench_measures_the_recording_overhead_and_keeps_the_recording_only_when_asked() {
    let out = temp_dir("rec");
    let report = bench_report(&["--quick", "--peers", "tickwire,tickwire-rec"], &out);
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "{report:#}");
    assert!(runs[0]["recorder"].is_null(), "{:#}", runs[0]);
    let rec = &runs[1];
    assert_eq!(rec["peer"], "tickwire-rec");
    assert!(rec["deliveries_per_s"].as_f64().unwrap() > 0.0, "{rec:#}");
    assert!(rec["hops"][3]["count"].as_u64().unwrap() > 0, "{rec:#}");
    let r = &rec["recorder"];
    assert!(r["frames"].as_u64().unwrap() > 0, "{rec:#}");
    assert_eq!(r["lost"], 0, "{rec:#}");
    assert_eq!(r["errors"], 0, "{rec:#}");
    assert!(r["bytes"].as_u64().unwrap() > 0, "{rec:#}");
    assert!(r["kept"].is_null(), "{rec:#}");
    assert!(
        !out.join("recording-2000").exists(),
        "the recording is deleted after the run"
    );
    assert_hgrm(&out.join("tickwire-rec-2000-end_to_end.hgrm"));
    let overheads = report["overheads"].as_array().expect("overheads");
    assert_eq!(overheads.len(), 1, "{report:#}");
    assert_overhead(&overheads[0], "tickwire-rec");
    let goal = report["goals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| {
            g["goal"]
                .as_str()
                .unwrap()
                .starts_with("recording overhead")
        })
        .expect("the recording goal");
    assert!(goal["measured"].is_number(), "{goal:#}");
    assert_eq!(goal["unit"], "%");
    assert!(goal["met"].is_boolean(), "{goal:#}");
    let _ = std::fs::remove_dir_all(&out);

    // --keep-recording: the recording stays, whole and readable.
    let out = temp_dir("rec-keep");
    let report = bench_report(
        &["--quick", "--peers", "tickwire-rec", "--keep-recording"],
        &out,
    );
    let r = &report["runs"][0]["recorder"];
    let dir = out.join("recording-2000");
    assert_eq!(r["kept"].as_str(), Some(dir.to_str().unwrap()), "{r:#}");
    let recording =
        tickwire_sdk::recording::Recording::open(&dir).expect("the kept recording opens");
    let mut frames = 0u64;
    for f in recording.frames(tickwire_sdk::recording::Filter::all()) {
        f.expect("no damaged block");
        frames += 1;
    }
    assert_eq!(frames, r["frames"].as_u64().unwrap(), "{r:#}");
    // No tickwire run to compare with: no overhead.
    assert_eq!(report["overheads"].as_array().map(Vec::len), Some(0));
    let _ = std::fs::remove_dir_all(&out);
}

/// The cluster peer needs `nats-server`, as the NATS peer's test above.
#[test]
fn quick_bench_with_the_cluster_peer_measures_ingest_nats_and_two_gateways() {
    if tickwire_engine::bench::nats::find_server().is_none() {
        assert!(
            std::env::var_os("TICKWIRE_REQUIRE_NATS").is_none(),
            "nats-server is not installed (apt-get install nats-server)"
        );
        eprintln!("SKIPPED: nats-server is not installed (apt-get install nats-server)");
        return;
    }
    let out = temp_dir("cluster");
    let report = bench_report(&["--quick", "--peers", "tickwire,cluster"], &out);
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "{report:#}");
    let cluster = &runs[1];
    assert_eq!(cluster["peer"], "cluster");
    assert_eq!(cluster["gateways"], 2, "{cluster:#}");
    assert_eq!(cluster["fast_clients"], 10);
    assert!(
        cluster["ticks_in_per_s"].as_f64().unwrap() > 0.0,
        "{cluster:#}"
    );
    assert!(
        cluster["frames_published_per_s"].as_f64().unwrap() > 0.0,
        "{cluster:#}"
    );
    assert!(
        cluster["deliveries_per_s"].as_f64().unwrap() > 0.0,
        "{cluster:#}"
    );
    // Every hop measured, the ingest node's two and the one through NATS and a gateway.
    for h in cluster["hops"].as_array().unwrap() {
        assert!(h["count"].as_u64().unwrap() > 0, "{h:#}");
    }
    assert_eq!(cluster["fast_lost"], 0, "{cluster:#}");
    assert_eq!(report["ratios"][0]["peer"], "cluster");
    let overheads = report["overheads"].as_array().expect("overheads");
    assert_eq!(overheads.len(), 1, "{report:#}");
    assert_overhead(&overheads[0], "cluster");
    for hop in ["publish_to_client", "end_to_end"] {
        assert_hgrm(&out.join(format!("cluster-2000-{hop}.hgrm")));
    }
    let _ = std::fs::remove_dir_all(&out);
}
