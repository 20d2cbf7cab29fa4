//! The `loadtest` binary end to end: a short producer run against the null sink, the three
//! clients (ours, Google's official one, the raw blaster) against the emulator with every
//! confirmed message found in the topics' subscriptions, a short consumer run with its HTML
//! report, and bad arguments.

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

/// A pubsub-client on the shared emulator, in the loadtest's default project.
async fn emulator_client() -> pubsub_client::Client {
    pubsub_client::Client::builder()
        .with_project("eventpipe-loadtest")
        .with_emulator_host(Emulator::shared().host())
        .build()
        .await
        .expect("client")
}

/// Pulls and acknowledges `<topic>-loadtest` of every topic in the summary `j` until `want`
/// messages of `payload` bytes have come (or a deadline passes); returns how many came.
fn drain_topics(j: &serde_json::Value, want: u64, payload: usize) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let client = emulator_client().await;
        let subs: Vec<String> = j["topics"]
            .as_array()
            .expect("topics in the summary")
            .iter()
            .map(|t| format!("{}-loadtest", t.as_str().expect("topic")))
            .collect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut got = 0u64;
        while got < want && std::time::Instant::now() < deadline {
            for sub in &subs {
                let msgs = client.pull_immediately(sub, 1000).await.expect("pull");
                assert!(msgs.iter().all(|m| m.data.len() == payload), "payloads of {payload} bytes");
                got += msgs.len() as u64;
                let ids: Vec<String> = msgs.into_iter().map(|m| m.ack_id).collect();
                if !ids.is_empty() {
                    client.acknowledge(sub, &ids).await.expect("ack");
                }
            }
        }
        got
    })
}

#[test]
fn every_client_publishes_to_the_emulator_and_the_messages_arrive() {
    for client in ["official", "raw", "ours"] {
        let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
            .args(["publish", "--client", client, "--target", "emulator", "--duration", "2s"])
            .args(["--rate", "3000", "--batch-messages", "100", "--payload-bytes", "64", "--json"])
            .env("PUBSUB_EMULATOR_HOST", Emulator::shared().host())
            .output()
            .expect("runs");
        assert!(out.status.success(), "{client}: {}", String::from_utf8_lossy(&out.stderr));
        let j = last_json(&out);
        assert_eq!(j["client"], client);
        assert_eq!(j["failed"], 0, "{j}");
        let published = j["published"].as_u64().expect("published");
        assert!(published > 0 && published <= 6_100, "{client} paced at 3000/s for 2 s: {j}");
        assert!(j["cpu_ns_per_msg"].as_f64().is_some_and(|c| c > 0.0), "{j}");
        // Every confirmed message is in the topics' subscriptions (and nothing more).
        assert_eq!(drain_topics(&j, published, 64), published, "{client}: {j}");
    }
}

#[test]
fn cleanup_deletes_what_the_run_created() {
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args([
            "publish",
            "--target",
            "emulator",
            "--duration",
            "1s",
            "--rate",
            "1000",
            "--cleanup",
            "--json",
        ])
        .env("PUBSUB_EMULATOR_HOST", Emulator::shared().host())
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j = last_json(&out);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let client = emulator_client().await;
        for t in j["topics"].as_array().expect("topics") {
            let t = t.as_str().expect("topic");
            let err = client.get_topic(t).await.expect_err("topic deleted");
            assert!(err.is_not_found(), "{t}: {err}");
            let sub = format!("{t}-loadtest");
            let err = client.get_subscription(&sub).await.expect_err("subscription deleted");
            assert!(err.is_not_found(), "{sub}: {err}");
        }
    });
}

#[test]
fn the_raw_blaster_sends_whole_pre_encoded_batches() {
    let out = loadtest(&[
        "publish",
        "--client",
        "raw",
        "--target",
        "null",
        "--duration",
        "1s",
        "--batch-messages",
        "500",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j = last_json(&out);
    let (published, requests) = (j["published"].as_u64().expect("n"), j["requests"].as_u64().expect("r"));
    assert!(requests > 0 && published == requests * 500, "{j}");
    assert_eq!(j["wire_bytes"], j["body_bytes"], "no gzip: {j}");
}

#[test]
fn bad_arguments_are_named() {
    let out = loadtest(&["publish", "--topics", "play=x"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("weight \"x\" of topic \"play\""));
    let out = loadtest(&["consume", "--target", "null", "--rate", "10"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("consume needs a target that delivers messages"));
    let out = loadtest(&["publish", "--client", "official", "--target", "null", "--duration", "1s"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("speaks gRPC and the null sink only REST"));
    let out = loadtest(&["consume", "--client", "raw", "--rate", "10"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("consume runs pubsub-client only"));
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(testkit::unique_name("loadtest"));
    std::fs::create_dir_all(&d).expect("dir");
    d
}
