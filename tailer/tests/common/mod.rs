//! Shared helpers of the tailer's integration tests: a log writer whose every line carries a
//! unique sequence number, a fast test configuration, and the check that every line written
//! arrived at the sink exactly once by id.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::{BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use event_model::ValueKind;
use tailer::{BatchConfig, Config, ReadConfig, ServiceConfig, SourceConfig};
use testkit::IngestSink;

/// Host name used by every test tailer.
pub const HOST: &str = "test-host";

/// A temporary directory with `logs/` and `data/`.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub logs: PathBuf,
    pub data: PathBuf,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let logs = dir.path().join("logs");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&logs).expect("logs dir");
        Fixture { dir, logs, data }
    }

    pub fn log(&self, name: &str) -> PathBuf {
        self.logs.join(name)
    }

    /// A config following `logs/<include>` with every interval short.
    pub fn config(&self, url: &str, include: &[&str]) -> Config {
        let include: Vec<String> =
            include.iter().map(|p| self.logs.join(p).to_string_lossy().into_owned()).collect();
        let source = SourceConfig::new(include).with_exclude(["*.gz"]);
        Config::new(url, &self.data, vec![source])
            .with_host(HOST)
            .with_service(fast_service(url))
            .with_batch(fast_batch())
            .with_read(fast_read())
    }
}

pub fn fast_service(url: &str) -> ServiceConfig {
    let mut s = ServiceConfig::default();
    s.url = url.into();
    s.retry_initial_ms = 10;
    s.retry_max_ms = 200;
    s.timeout_secs = 5;
    s
}

pub fn fast_batch() -> BatchConfig {
    let mut b = BatchConfig::default();
    b.max_events = 100;
    b.max_delay_ms = 20;
    b
}

pub fn fast_read() -> ReadConfig {
    let mut r = ReadConfig::default();
    r.poll_interval_ms = 10;
    r.glob_interval_ms = 50;
    r.rotated_idle_ms = 300;
    r.checkpoint_interval_ms = 50;
    r.shutdown_timeout_secs = 5;
    r
}

/// Writes syslog lines `... app: play<TAB>user=uN<TAB>seq=N`, each with a unique `seq`.
pub struct LogWriter {
    next: u64,
    pub written: BTreeSet<u64>,
}

impl LogWriter {
    pub fn new(first_seq: u64) -> Self {
        LogWriter { next: first_seq, written: BTreeSet::new() }
    }

    pub fn line(&mut self) -> String {
        let seq = self.next;
        self.next += 1;
        self.written.insert(seq);
        format!(
            "2026-11-23T18:{:02}:{:02}.000Z {HOST} app: play\tuser=u{}\tseq={seq}\n",
            seq / 60 % 60,
            seq % 60,
            seq % 7
        )
    }

    /// Appends `n` lines to `path` (opened for each call, as a logger that reopens would).
    pub fn write(&mut self, path: &Path, n: usize) {
        let mut f = OpenOptions::new().create(true).append(true).open(path).expect("open log");
        self.write_to(&mut f, n);
    }

    /// Appends `n` lines to an open file.
    pub fn write_to(&mut self, f: &mut File, n: usize) {
        let mut buf = String::new();
        for _ in 0..n {
            buf.push_str(&self.line());
        }
        f.write_all(buf.as_bytes()).expect("write log");
    }
}

/// What arrived at the sink compared with what was written.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Lines written that never arrived.
    pub missing: Vec<u64>,
    /// Sequence numbers that arrived but were never written.
    pub unexpected: Vec<u64>,
    /// Lines that arrived under more than one id (the exporter could not drop the copy).
    pub under_two_ids: Vec<u64>,
    /// Re-sends of an id already accepted (dropped downstream by id).
    pub resent: u64,
    /// Distinct ids accepted.
    pub unique: usize,
}

impl Verdict {
    /// Every line arrived, under one id, and nothing else did.
    pub fn complete(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.under_two_ids.is_empty()
    }
}

pub fn seq_of(e: &event_model::Event) -> Option<u64> {
    match e.fields.get("seq")?.kind.as_ref()? {
        ValueKind::StringValue(s) => s.parse().ok(),
        ValueKind::IntValue(i) => u64::try_from(*i).ok(),
        _ => None,
    }
}

pub fn verdict(sink: &IngestSink, written: &BTreeSet<u64>) -> Verdict {
    let ids = sink.accepted_ids();
    let mut by_seq: HashMap<u64, Vec<String>> = HashMap::new();
    let mut unexpected = Vec::new();
    for e in sink.accepted_events() {
        match seq_of(&e) {
            Some(s) => by_seq.entry(s).or_default().push(e.id.clone()),
            None => unexpected.push(u64::MAX),
        }
    }
    unexpected.extend(by_seq.keys().filter(|s| !written.contains(s)));
    Verdict {
        missing: written.iter().filter(|s| !by_seq.contains_key(s)).copied().collect(),
        unexpected,
        under_two_ids: by_seq.iter().filter(|(_, v)| v.len() > 1).map(|(s, _)| *s).collect(),
        resent: ids.values().map(|n| u64::from(n.saturating_sub(1))).sum(),
        unique: ids.len(),
    }
}

/// Waits until every written line arrived (or the deadline passes) and returns the verdict.
pub async fn settle(sink: &IngestSink, written: &BTreeSet<u64>, timeout: Duration) -> Verdict {
    let want = written.len() as u64;
    sink.wait_until(timeout, |s| s.unique_ids >= want).await;
    verdict(sink, written)
}

/// Waits for `cond` with a deadline, polling.
pub async fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The checkpointed offset of every file, by path, read from the data directory.
pub fn checkpoint_offsets(data: &Path) -> HashMap<PathBuf, u64> {
    let Ok(text) = std::fs::read(data.join("checkpoint.json")) else { return HashMap::new() };
    let v: serde_json::Value = serde_json::from_slice(&text).expect("checkpoint is JSON");
    v["files"]
        .as_object()
        .map(|m| {
            m.values()
                .map(|f| {
                    (PathBuf::from(f["path"].as_str().unwrap_or_default()), f["offset"].as_u64().unwrap_or(0))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits for `cond` with a deadline on the wall clock (for tests on tokio's paused clock,
/// where the runtime's time runs ahead whenever it is idle while a real thread works).
pub async fn wait_for_wall(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
