//! The whole pipeline with real binaries: the `local-pipeline` program (the README's first
//! command) end to end, and bad input of every kind counted without holding up good events.

use std::time::Duration;

use e2e::{Binaries, LogGen, LogOptions, Pipeline, PipelineOptions, Rejections, verify};
use testkit::Emulator;

#[test]
fn local_pipeline_reports_every_event_exactly_once() {
    let bins = Binaries::for_tests().expect("binaries");
    let bin_dir = bins.tailer.parent().expect("bin dir");
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("run");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_local-pipeline"))
        .args(["--events", "3000", "--rate", "0", "--json", "--out"])
        .arg(&out)
        .arg("--bin-dir")
        .arg(bin_dir)
        .args(["--emulator-host", &Emulator::shared().host()])
        .output()
        .expect("local-pipeline runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {}\nstdout:\n{stdout}\nstderr:\n{stderr}", output.status);
    let last = stdout.lines().last().expect("output");
    let json: serde_json::Value = serde_json::from_str(last).expect("last line is JSON");
    assert_eq!(json["events_written"], 3000);
    assert_eq!(json["events_exported"], 3000);
    assert_eq!(json["lost"], 0);
    assert_eq!(json["duplicates"], 0);
    assert_eq!(json["rejections_match"], true);
    assert_eq!(json["rejected"], json["bad_lines_written"]);
    // Two hours of two types, and the empty hours up to the watermark (every hour from a
    // type's first to the watermark is closed).
    let closed = json["buckets_closed"].as_u64().expect("buckets_closed");
    assert!(closed >= 4, "two hours of two types: {last}");
    assert_eq!(json["late"], 0, "every event in its own hour");
    assert!(json["e2e_p50_ms"].as_i64().is_some_and(|v| v > 0), "{last}");
    assert!(json["events_per_sec"].as_f64().is_some_and(|v| v > 0.0), "{last}");
    assert!(stdout.contains("PASS"), "{stdout}");
    // The buckets stay on disk, with a manifest per hour.
    let manifests = walk(&out.join("buckets")).into_iter().filter(|p| p.ends_with("_SUCCESS")).count();
    // (An empty hour may close between the verification and the exporter's stop.)
    assert!(manifests as u64 >= closed, "{manifests} manifests on disk, {closed} verified");
    // A second run may reuse the directory it made, but not a foreign one.
    let foreign = dir.path().join("foreign");
    std::fs::create_dir_all(&foreign).expect("dir");
    std::fs::write(foreign.join("notes.txt"), "mine").expect("file");
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_local-pipeline"))
        .arg("--out")
        .arg(&foreign)
        .output()
        .expect("runs");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("was not made by local-pipeline"));
    assert!(foreign.join("notes.txt").exists());
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

/// Requests without a token, as fast as `concurrency` connections allow; returns how many
/// were answered 401.
async fn flood_without_token(url: String, requests: usize, concurrency: usize) -> usize {
    let client = reqwest::Client::new();
    let body = r#"[{"id":"flood","type":"play","fields":{"user":"x","track":"y","ms_played":1}}]"#;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..concurrency {
        let (client, url) = (client.clone(), url.clone());
        let n = requests / concurrency + usize::from(i < requests % concurrency);
        tasks.spawn(async move {
            let mut unauthorized = 0;
            for _ in 0..n {
                let r = client.post(&url).header("content-type", "application/json").body(body).send().await;
                if r.is_ok_and(|r| r.status() == reqwest::StatusCode::UNAUTHORIZED) {
                    unauthorized += 1;
                }
            }
            unauthorized
        });
    }
    tasks.join_all().await.into_iter().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_counted_and_blocks_no_good_event() {
    let bins = Binaries::for_tests().expect("binaries");
    let dir = tempfile::tempdir().expect("dir");
    let opts = PipelineOptions::new(dir.path()).with_emulator_host(Emulator::shared().host());
    let mut p = Pipeline::start(opts, &bins).await.expect("pipeline");
    let mut opts = LogOptions::new(e2e::sample_first_hour());
    opts.bad_every = 10; // a line in ten is bad: malformed, unknown type, missing field, huge
    opts.invalid_utf8_every = 50;
    let mut log = LogGen::create(&p.log_path(), opts).expect("log");

    let flood = tokio::spawn(flood_without_token(format!("{}/v1/events", p.service_url()), 3000, 16));
    for _ in 0..10 {
        log.write(400).expect("write");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let unauthorized = flood.await.expect("flood");
    p.wait_closed(&log.buckets(), Duration::from_secs(180)).await.expect("every hour closes");

    let v = verify(p.store().as_ref(), log.written(), false).await.expect("verify");
    assert!(v.ok(), "{v:?}");
    assert_eq!(v.events_exported, 4000);
    assert_eq!(v.late, 0, "every event in its own hour");
    assert_eq!(v.repaired_utf8, log.invalid_utf8_written(), "invalid UTF-8 arrives repaired, not dropped");
    let r = Rejections::scrape(&p).await.expect("metrics");
    assert_eq!(log.bad().len(), 444, "4000 good lines, one in ten bad");
    assert!(r.match_written(log.bad()), "{r:?} vs {} bad lines", log.bad().len());
    assert_eq!(unauthorized, 3000, "every request without a token is refused");
    assert_eq!(r.unauthorized_requests, 3000, "and counted");
    dashboards_and_alerts_use_real_metrics(&p).await;
    p.stop().await.expect("clean stop");
}

/// Every metric of the binaries that `deploy/observability` (alert rules, Grafana dashboard)
/// refers to is one the running binaries export.
async fn dashboards_and_alerts_use_real_metrics(p: &Pipeline) {
    let mut exported = String::new();
    for c in [e2e::Component::Tailer, e2e::Component::Service, e2e::Component::Exporter] {
        exported.push_str(&p.metrics_text(c).await.expect("metrics"));
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/observability");
    let mut referenced = std::collections::BTreeSet::new();
    for file in ["alerts.yaml", "grafana-dashboard.json"] {
        let text = std::fs::read_to_string(root.join(file)).expect("deploy/observability file");
        for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if ["tailer_", "exporter_", "event_service_"].iter().any(|p| word.starts_with(p)) {
                referenced.insert(word.to_owned());
            }
        }
    }
    assert!(referenced.len() > 15, "{referenced:?}");
    for name in &referenced {
        let base = ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .fold(name.as_str(), |n, s| n.strip_suffix(s).unwrap_or(n));
        assert!(
            exported.contains(&format!("# TYPE {base} ")),
            "{name} is referenced in deploy/observability but not exported"
        );
    }
}
