//! Rotation by the real `logrotate` (Debian's package), in create mode while a writer keeps
//! writing, and in copytruncate mode: every line arrives once, under one id.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Fixture, LogWriter, settle};
use tailer::Tailer;
use testkit::{IngestSink, SinkOptions};

const T: Duration = Duration::from_secs(30);

fn logrotate() -> &'static str {
    for p in ["/usr/sbin/logrotate", "/sbin/logrotate", "/usr/bin/logrotate"] {
        if Path::new(p).exists() {
            return p;
        }
    }
    panic!("logrotate is not installed (apt-get install logrotate; scripts/test installs it)");
}

fn rotate(fx: &Fixture, mode: &str) {
    let conf = fx.dir.path().join("logrotate.conf");
    let text = format!(
        "{} {{\n    rotate 20\n    {mode}\n    missingok\n    nocompress\n}}\n",
        fx.log("app.log").display()
    );
    std::fs::write(&conf, text).expect("write logrotate.conf");
    let out = Command::new(logrotate())
        .arg("-f")
        .arg("-s")
        .arg(fx.dir.path().join("logrotate.state"))
        .arg(&conf)
        .output()
        .expect("run logrotate");
    assert!(out.status.success(), "logrotate failed: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logrotate_create_mode_while_writing() {
    let fx = Arc::new(Fixture::new());
    let sink = IngestSink::start(SinkOptions::default()).await;
    let tailer = Tailer::start(fx.config(&sink.url(), &["app.log*"])).await.expect("start");
    let writer = Arc::new(Mutex::new(LogWriter::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let bg = {
        let (fx, writer, stop) = (fx.clone(), writer.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                writer.lock().expect("writer").write(&fx.log("app.log"), 50);
                std::thread::yield_now();
            }
        })
    };
    for _ in 0..6 {
        let before = sink.stats().unique_ids;
        // Let some lines through between rotations.
        sink.wait_until(T, |s| s.unique_ids >= before + 200).await;
        rotate(&fx, "create");
    }
    stop.store(true, Ordering::Relaxed);
    bg.join().expect("writer thread");
    let written = writer.lock().expect("writer").written.clone();
    assert!(fx.log("app.log.6").exists(), "logrotate rotated six times");
    let v = settle(&sink, &written, T).await;
    assert!(v.complete(), "{v:?}");
    assert_eq!(v.resent, 0, "{v:?}");
    tailer.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logrotate_copytruncate_mode() {
    let fx = Fixture::new();
    let sink = IngestSink::start(SinkOptions::default()).await;
    let tailer = Tailer::start(fx.config(&sink.url(), &["app.log*"])).await.expect("start");
    let mut w = LogWriter::new(0);
    for round in 0..6 {
        w.write(&fx.log("app.log"), 700);
        if round % 2 == 0 {
            // Sometimes the tailer is caught up, sometimes it is not.
            sink.wait_until(T, |s| s.unique_ids as usize >= w.written.len()).await;
        }
        // copytruncate loses lines written between its copy and its truncation (a documented
        // property of the mode), so the writer pauses while logrotate runs.
        rotate(&fx, "copytruncate");
    }
    w.write(&fx.log("app.log"), 300);
    assert!(fx.log("app.log.6").exists(), "logrotate rotated six times");
    let v = settle(&sink, &w.written, T).await;
    assert!(v.complete(), "{v:?}");
    assert_eq!(v.resent, 0, "{v:?}");
    // Every rotation of content the tailer had caught up with is seen as a truncation.
    assert!(tailer.metrics().truncations.get() >= 3, "{}", tailer.metrics().truncations.get());
    tailer.shutdown().await.expect("shutdown");
}

/// A header line every file of the log starts with (skipped as malformed by the syslog rule).
const HEADER: &str = "#Fields: date time host message\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_starting_with_the_same_header_are_told_apart_through_rename_rotation() {
    let fx = Fixture::new();
    let sink = IngestSink::start(SinkOptions::default()).await;
    let tailer = Tailer::start(fx.config(&sink.url(), &["app.log*"])).await.expect("start");
    let mut w = LogWriter::new(0);
    let path = fx.log("app.log");
    std::fs::write(&path, HEADER).expect("header");
    w.write(&path, 100);
    assert!(sink.wait_until(T, |s| s.unique_ids >= 100).await);
    for round in 1..=3u64 {
        rotate(&fx, "create");
        // The new file first holds only the header (it cannot be told from a copy yet), then
        // lines of its own.
        std::fs::write(&path, HEADER).expect("header");
        let m = tailer.metrics();
        assert!(common::wait_for(T, || m.fingerprint_collisions.get() >= round).await, "seen undecided");
        w.write(&path, 100);
        let v = settle(&sink, &w.written, T).await;
        assert!(v.complete(), "round {round}: {v:?}");
    }
    assert!(fx.log("app.log.3").exists(), "logrotate rotated three times");
    let v = settle(&sink, &w.written, T).await;
    assert!(v.complete(), "{v:?}");
    assert_eq!(v.resent, 0, "no id of an old file reused: {v:?}");
    assert_eq!(v.unique, w.written.len());
    // Each file's checkpoint reaches its end: nothing of any head was skipped.
    let cp = common::checkpoint_offsets(&fx.data);
    for name in ["app.log", "app.log.1", "app.log.2", "app.log.3"] {
        let size = std::fs::metadata(fx.log(name)).expect("stat").len();
        assert!(
            common::wait_for(T, || common::checkpoint_offsets(&fx.data).get(&fx.log(name)) == Some(&size))
                .await,
            "{name}: {cp:?}"
        );
    }
    tailer.shutdown().await.expect("shutdown");
}
