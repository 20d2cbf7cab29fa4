//! Shared helpers of the exporter's integration tests: a registry with one type and its topic
//! and subscription on the shared emulator, a fast config, and readers of the buckets.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use event_model::{Event, Value, ValueKind};
use exporter::Config;
use exporter::format::{FileFormat, decode_file};
use exporter::manifest::Manifest;
use exporter::storage::StorageConfig;
use prost::Message as _;
use prost_types::Timestamp;
use pubsub_client::{Client, Message, Subscription, Topic};
use testkit::Emulator;

pub const PROJECT: &str = "eventpipe-test";
/// The start of the hour five hours ago (fixed for the test binary): the tests' events fall in
/// the three hours from it, all past and well inside the exporter's recent window
/// (`dedup_window_hours`, in which it finds hours left open by a crash), whatever the date.
pub fn h0() -> i64 {
    static H0: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *H0.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs() as i64;
        now - now % 3600 - 5 * 3600
    })
}

/// A topic and its `-exporter` subscription, a registry naming it, and a temp directory.
pub struct Env {
    pub client: Client,
    pub topic: String,
    pub registry: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Env {
    pub async fn new() -> Env {
        let dir = tempfile::tempdir().expect("dir");
        let topic = testkit::unique_name("play");
        let registry = dir.path().join("registry.toml");
        std::fs::write(
            &registry,
            format!(
                "[types.play]\ntopic = \"{topic}\"\nfields.user = {{ type = \"string\", required = true }}\n"
            ),
        )
        .expect("registry");
        let client = Client::builder()
            .with_project(PROJECT)
            .with_emulator_host(Emulator::shared().host())
            .build()
            .await
            .expect("client");
        client.create_topic(&Topic::new(&topic)).await.expect("topic");
        client
            .create_subscription(&Subscription::new(format!("{topic}-exporter"), &topic))
            .await
            .expect("subscription");
        Env { client, topic, registry, dir }
    }

    /// The local bucket root.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("buckets")
    }

    /// A config with short intervals writing to [`root`](Self::root).
    pub fn config(&self) -> Config {
        let mut c = Config::new(PROJECT, &self.registry, StorageConfig::Local { path: self.root() })
            .with_emulator_host(Emulator::shared().host());
        c.files.max_age_ms = 200;
        c.files.max_events = 300;
        c.close.allowed_lateness_secs = 0;
        c.close.idle_secs = 1;
        c.close.tick_ms = 100;
        c
    }

    /// Settings like [`config`](Self::config) as a TOML file for the binary, with the given
    /// lateness and idle time.
    pub fn config_file(&self, lateness_secs: u64, idle_secs: u64) -> PathBuf {
        let path = self.dir.path().join("exporter.toml");
        let text = format!(
            "project = \"{PROJECT}\"\nemulator_host = \"{}\"\nregistry = \"registry.toml\"\nshutdown_timeout_secs = 5\n\
             [storage]\nkind = \"local\"\npath = \"buckets\"\n\
             [files]\nmax_age_ms = 200\nmax_events = 300\nretry_initial_ms = 20\n\
             [close]\nallowed_lateness_secs = {lateness_secs}\nidle_secs = {idle_secs}\ntick_ms = 100\n",
            Emulator::shared().host()
        );
        std::fs::write(&path, text).expect("config");
        path
    }

    pub async fn publish(&self, events: &[Event]) {
        let p = self.client.publisher(&self.topic).expect("publisher");
        let mut handles = Vec::new();
        for e in events {
            let m = Message::new(e.encode_to_vec()).with_attributes(event_model::attributes(e));
            handles.push(p.publish(&m).await.expect("publish"));
        }
        for h in handles {
            h.await.expect("published");
        }
    }

    /// Events in part files so far (counting repeats across files).
    pub fn part_events(&self) -> usize {
        files_named(&self.root(), "part-")
            .iter()
            .filter_map(|p| std::fs::read(p).ok())
            .filter_map(|b| exporter::format::decode_ids(FileFormat::Avro, &b).ok())
            .map(|ids| ids.len())
            .sum()
    }
}

pub fn event(id: &str, t: i64) -> Event {
    Event {
        id: id.into(),
        r#type: "play".into(),
        schema_version: 1,
        event_time: Some(Timestamp { seconds: t, nanos: 0 }),
        received_time: Some(Timestamp { seconds: t + 1, nanos: 0 }),
        source: "test".into(),
        fields: [("user".to_string(), Value { kind: Some(ValueKind::StringValue(format!("u-{id}"))) })]
            .into(),
    }
}

/// Files under `root` whose name starts with `prefix`, leaving out the local store's staging
/// files (`<name>#<n>`, written in full before they are linked to their name, so reading one
/// can see it half written).
pub fn files_named(root: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && !n.contains('#'))
            {
                out.push(p);
            }
        }
    }
    out
}

/// Every manifest under `root` with its directory.
pub fn manifests(root: &Path) -> Vec<(PathBuf, Manifest)> {
    files_named(root, "_SUCCESS")
        .into_iter()
        .map(|p| {
            let m: Manifest =
                serde_json::from_slice(&std::fs::read(&p).expect("read")).expect("manifest JSON");
            (p.parent().expect("dir").to_path_buf(), m)
        })
        .collect()
}

/// Closed hours holding events (empty hours up to the watermark are closed too).
pub fn with_events(root: &Path) -> usize {
    manifests(root).iter().filter(|(_, m)| m.event_count > 0).count()
}

/// Ids in the files the manifests list (with how often each occurs), checking each manifest
/// against its files: sizes, checksums, counts.
pub fn closed_ids(root: &Path) -> HashMap<String, usize> {
    let mut ids: HashMap<String, usize> = HashMap::new();
    for (dir, m) in manifests(root) {
        let mut n = 0;
        for f in &m.files {
            let bytes = std::fs::read(dir.join(&f.name)).expect("listed file exists");
            assert_eq!(f.bytes, bytes.len() as u64, "{}", f.name);
            assert_eq!(f.checksum, format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes)), "{}", f.name);
            let fmt = if f.name.ends_with(".ndjson.gz") { FileFormat::NdjsonGzip } else { FileFormat::Avro };
            let events = decode_file(fmt, &bytes).expect("decodes");
            assert_eq!(events.len() as u64, f.events);
            for e in events {
                *ids.entry(e.id).or_default() += 1;
                n += 1;
            }
        }
        assert_eq!(m.event_count, n, "manifest of {}", dir.display());
    }
    ids
}

pub async fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}

/// Hour folders under `root` (`<type>/<date>/<HH>`), relative, with and without `_SUCCESS`.
pub fn hour_folders(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let name = t.file_name().to_string_lossy().into_owned();
        if name.starts_with('_') {
            continue;
        }
        for d in std::fs::read_dir(t.path()).into_iter().flatten().flatten() {
            for h in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
                out.push(format!(
                    "{name}/{}/{}",
                    d.file_name().to_string_lossy(),
                    h.file_name().to_string_lossy()
                ));
            }
        }
    }
    out
}
