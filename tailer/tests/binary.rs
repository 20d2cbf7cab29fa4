//! The real `tailer` binary as a separate process: killed with SIGKILL mid-stream and
//! restarted, again and again, while a writer keeps writing and rotating; every line still
//! arrives, under one id. SIGTERM exits 0 with a checkpoint.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Fixture, LogWriter, checkpoint_offsets, settle, wait_for};
use testkit::{IngestSink, SinkOptions};

const T: Duration = Duration::from_secs(60);

fn write_config(fx: &Fixture, url: &str) -> std::path::PathBuf {
    let path = fx.dir.path().join("tailer.toml");
    let text = format!(
        r#"
host = "{host}"
data_dir = "data"

[service]
url = "{url}"
retry_initial_ms = 10
retry_max_ms = 200

[batch]
max_events = 200
max_delay_ms = 20

[read]
poll_interval_ms = 10
glob_interval_ms = 50
rotated_idle_ms = 300
checkpoint_interval_ms = 100
shutdown_timeout_secs = 2

[[sources]]
include = ["logs/app.log*"]
exclude = ["*.gz"]
"#,
        host = common::HOST
    );
    std::fs::write(&path, text).expect("write config");
    path
}

fn spawn(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tailer"))
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn tailer")
}

fn signal(child: &Child, sig: &str) {
    let status =
        Command::new("kill").arg(format!("-{sig}")).arg(child.id().to_string()).status().expect("kill");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_and_restart_mid_stream_loses_nothing() {
    let fx = Fixture::new();
    let sink = IngestSink::start(SinkOptions::default()).await;
    let config = write_config(&fx, &sink.url());
    let path = fx.log("app.log");
    let mut w = LogWriter::new(0);
    let mut child = spawn(&config);
    for round in 0..5 {
        // Write while the tailer runs, then kill it at a moment that depends on its progress.
        let target = w.written.len() + 2000;
        for _ in 0..10 {
            w.write(&path, 300);
        }
        let kill_at = target - fastrand::usize(0..1500);
        sink.wait_until(T, |s| s.unique_ids as usize >= kill_at).await;
        signal(&child, "KILL");
        let _ = child.wait();
        // Rotate while it is down every other round.
        if round % 2 == 1 {
            std::fs::rename(&path, fx.log(&format!("app.log.{round}"))).expect("rotate");
        }
        w.write(&path, 500);
        child = spawn(&config);
    }
    let v = settle(&sink, &w.written, T).await;
    signal(&child, "TERM");
    let status = child.wait().expect("wait");
    assert!(v.complete(), "{v:?}");
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0");
    let size = std::fs::metadata(&path).expect("stat").len();
    assert_eq!(checkpoint_offsets(&fx.dir.path().join("data")).get(&path), Some(&size), "final checkpoint");
}

#[test]
fn a_bad_config_is_refused_with_the_key_named() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[[sources]]\ninclude = ['x']\n[batch]\nmax_evnts = 5\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_tailer")).arg("--config").arg(&path).output().expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_evnts"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_the_service_is_down_exits_within_the_grace_period() {
    let fx = Fixture::new();
    // Nothing listens at this URL: every request fails and is retried.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let config = write_config(&fx, &format!("http://127.0.0.1:{port}/v1/events"));
    let mut w = LogWriter::new(0);
    w.write(&fx.log("app.log"), 100);
    let child = spawn(&config);
    // The tailer follows the file (its checkpoint lists it) and is retrying the sends.
    let log = fx.log("app.log");
    assert!(wait_for(T, || checkpoint_offsets(&fx.dir.path().join("data")).contains_key(&log)).await);
    signal(&child, "TERM");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0));
    // Nothing was acknowledged, so nothing is checkpointed past the start.
    let cp = checkpoint_offsets(&fx.dir.path().join("data"));
    assert!(!cp.is_empty(), "the shutdown wrote a checkpoint");
    assert!(cp.values().all(|o| *o == 0), "{cp:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tailer_host_and_the_host_flag_override_the_configured_host() {
    let fx = Fixture::new();
    let sink = IngestSink::start(SinkOptions::default()).await;
    let config = write_config(&fx, &sink.url());
    let mut w = LogWriter::new(0);
    w.write(&fx.log("app.log"), 5);
    // As the DaemonSet does: TAILER_HOST from the node name.
    let mut child = Command::new(env!("CARGO_BIN_EXE_tailer"))
        .arg("--config")
        .arg(&config)
        .env("TAILER_HOST", "node-7")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn tailer");
    let v = settle(&sink, &w.written, T).await;
    signal(&child, "TERM");
    let _ = child.wait();
    assert!(v.complete(), "{v:?}");
    assert!(sink.accepted_events().iter().all(|e| e.source == "node-7"), "source from TAILER_HOST");
    let cp: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fx.dir.path().join("data/checkpoint.json")).expect("checkpoint"),
    )
    .expect("json");
    assert_eq!(cp["host"], "node-7");
    // The flag wins over the environment.
    w.write(&fx.log("app.log"), 5);
    child = Command::new(env!("CARGO_BIN_EXE_tailer"))
        .args(["--host", "node-8", "--config"])
        .arg(&config)
        .env("TAILER_HOST", "node-7")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn tailer");
    let v = settle(&sink, &w.written, T).await;
    signal(&child, "TERM");
    let _ = child.wait();
    assert!(v.complete(), "{v:?}");
    assert_eq!(sink.accepted_events().iter().filter(|e| e.source == "node-8").count(), 5);
}
