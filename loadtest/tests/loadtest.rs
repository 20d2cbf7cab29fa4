//! The `loadtest` binary end to end: a short producer run against the null sink, a short
//! consumer run against the emulator with its HTML report, and bad arguments.

use std::process::Command;

use testkit::Emulator;

fn loadtest(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(args)
        .env_remove("PUBSUB_EMULATOR_HOST")
        .output()
        .expect("runs")
}

fn last_json(out: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| {
        panic!("last line is not JSON ({e}):\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr))
    })
}

#[test]
fn publish_to_the_null_sink_reports_every_field() {
    let out =
        loadtest(&["publish", "--target", "null", "--duration", "2s", "--rate", "20000", "--gzip", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j = last_json(&out);
    for key in [
        "client",
        "target",
        "offered_rate",
        "achieved_rate",
        "published",
        "failed",
        "cpu_seconds",
        "cpu_ns_per_msg",
        "p50_ms",
        "p99_ms",
        "peak_rss_bytes",
        "wire_bytes",
        "payload_bytes",
    ] {
        assert!(!j[key].is_null(), "{key} missing in {j}");
    }
    assert_eq!(j["client"], "ours");
    assert_eq!(j["target"], "null");
    assert_eq!(j["offered_rate"], 20000.0);
    assert_eq!(j["failed"], 0);
    let published = j["published"].as_f64().expect("published");
    // Paced at 20k/s for 2 s: never above the offer plus the buckets' bursts (how far below it a
    // loaded machine falls is a matter for the benchmarks, not this test).
    assert!(published > 0.0 && published <= 41_000.0, "{published}");
    let achieved = j["achieved_rate"].as_f64().expect("rate");
    let seconds = j["seconds"].as_f64().expect("seconds");
    assert!((achieved - published / seconds).abs() <= 1.0, "{j}");
    assert_eq!(j["payload_bytes"].as_f64(), Some(published * 150.0));
    let (wire, body) = (j["wire_bytes"].as_f64().expect("wire"), j["body_bytes"].as_f64().expect("body"));
    assert!(wire > 0.0 && wire < body, "gzip shrinks the bodies: {wire} vs {body}");
    assert!(j["sink_cpu_seconds"].as_f64().is_some(), "the sink is a separate process");
    assert!(j["peak_rss_bytes"].as_u64().is_some_and(|b| b > 1 << 20));
}

#[test]
fn consume_against_the_emulator_loses_nothing_and_reports() {
    let dir = tempfile_dir();
    let report = dir.join("consume.html");
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args([
            "consume",
            "--target",
            "emulator",
            "--duration",
            "3s",
            "--rate",
            "500",
            "--profile",
            "diurnal",
        ])
        .args(["--drain", "30s", "--json", "--report"])
        .arg(&report)
        .env("PUBSUB_EMULATOR_HOST", Emulator::shared().host())
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j = last_json(&out);
    assert_eq!(j["lost"], 0, "{j}");
    assert!(j["published"].as_u64().is_some_and(|p| p > 300), "{j}");
    assert!(j["received"].as_u64() >= j["published"].as_u64(), "{j}");
    assert!(j["e2e_p50_ms"].as_f64().is_some_and(|v| v > 0.0), "{j}");
    let html = std::fs::read_to_string(&report).expect("report written");
    let data = loadtest::report::embedded_data(&html).expect("embedded data");
    let series = data["series"].as_array().expect("series");
    assert!(series.len() >= 3, "{} seconds", series.len());
    let received: u64 = series.iter().filter_map(|s| s["received"].as_u64()).sum();
    assert_eq!(Some(received), j["received"].as_u64(), "the series add up to the summary");
    assert!(html.contains("End-to-end latency") && html.contains("<polyline"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_arguments_are_named() {
    let out = loadtest(&["publish", "--topics", "play=x"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("weight \"x\" of topic \"play\""));
    let out = loadtest(&["consume", "--target", "null", "--rate", "10"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("consume needs a target that delivers messages"));
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(testkit::unique_name("loadtest"));
    std::fs::create_dir_all(&d).expect("dir");
    d
}
