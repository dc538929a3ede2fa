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
    assert_eq!(goals.len(), 5, "{report:#}");
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
