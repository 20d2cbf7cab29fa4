//! The exporter's configuration: a TOML file, every key optional, unknown keys refused with the
//! key named. Relative paths are relative to the directory of the config file.
//!
//! ```toml
//! project = "eventpipe-local"
//! registry = "registry.toml"
//! subscription_suffix = "exporter"      # reads "<topic>-exporter" of every type
//! [storage]
//! kind = "local"
//! path = "buckets"
//! [files]
//! max_events = 50000
//! max_age_ms = 10000
//! [close]
//! allowed_lateness_secs = 300
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::format::{AvroCodec, FileFormat};
use crate::storage::StorageConfig;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// Google Cloud project of the subscriptions. Default: `eventpipe-local`.
    #[serde(default = "default_project")]
    pub project: String,
    /// Pub/Sub emulator `host:port`; `PUBSUB_EMULATOR_HOST` works too. Default: none.
    #[serde(default)]
    pub emulator_host: Option<String>,
    /// The event-type registry (the event-service's file). Default: `registry.toml`.
    #[serde(default = "default_registry")]
    pub registry: PathBuf,
    /// The exporter reads subscription `<topic>-<suffix>` of every registry type. Default:
    /// `exporter` (what `event-service registry apply` creates).
    #[serde(default = "default_suffix")]
    pub subscription_suffix: String,
    /// Name of this replica in object names and logs. Every object name also carries a fresh
    /// random incarnation id per process start, so a fixed name (a StatefulSet's pod name) is
    /// safe across restarts and even if two processes share it. Default: the hostname.
    #[serde(default)]
    pub replica: Option<String>,
    /// Address for `/metrics` and `/healthz`. Default: none.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// Where buckets are written. Default: the local directory `buckets`.
    #[serde(default = "default_storage")]
    pub storage: StorageConfig,
    /// Data files.
    #[serde(default)]
    pub files: FilesConfig,
    /// Closing hours.
    #[serde(default)]
    pub close: CloseConfig,
    /// Pulling.
    #[serde(default)]
    pub pull: PullConfig,
    /// How long a graceful shutdown may take, in seconds. Default: 30.
    #[serde(default = "default_shutdown_secs")]
    pub shutdown_timeout_secs: u64,
}

/// When a data file is cut. TOML table `[files]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FilesConfig {
    /// `avro` (object container files) or `ndjson-gzip`. Default: `avro`.
    #[serde(default)]
    pub format: FileFormat,
    /// Avro codec: `zstd` or `deflate`. Default: `zstd`.
    #[serde(default)]
    pub codec: AvroCodec,
    /// Most events in one part file. Default: 50000.
    #[serde(default = "default_max_events")]
    pub max_events: usize,
    /// Most payload bytes in one part file. Default: 64 MiB.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// Longest an event waits before its file is cut, in milliseconds. Default: 10000.
    #[serde(default = "default_max_age_ms")]
    pub max_age_ms: u64,
    /// First retry delay of a failed write, in milliseconds (doubles up to 30 s). Default: 200.
    #[serde(default = "default_retry_ms")]
    pub retry_initial_ms: u64,
}

/// When hours are closed. TOML table `[close]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CloseConfig {
    /// How far the watermark stays behind the oldest event not yet written, in seconds: an
    /// hour closes once the watermark passes its end. Default: 300.
    #[serde(default = "default_lateness")]
    pub allowed_lateness_secs: u64,
    /// With nothing buffered and no message for this long, the watermark advances with the
    /// clock (minus the lateness). Default: 90.
    ///
    /// Keep it (and the lateness) above the subscription's ack deadline (60 s as
    /// `event-service registry apply` creates them): a message held by a crashed replica, or
    /// whose pull answer was lost, comes back only after that deadline, and must find its hour
    /// still open. The exporter warns at start when it is not.
    #[serde(default = "default_idle")]
    pub idle_secs: u64,
    /// How many hours back an event's own closed hour is checked for a first copy (its dedup
    /// record: the hour's id index and the ids of its events that landed late elsewhere).
    /// Default: 168 (7 days, Pub/Sub's retention: a replay or seek can bring back that much).
    #[serde(default = "default_recent_hours")]
    pub dedup_window_hours: u64,
    /// Ids per open hour kept in memory to drop a duplicate before it is written again (about
    /// 100 bytes each). Beyond it the oldest half is forgotten: a duplicate of a forgotten id
    /// is written to another part file and dropped when the hour closes (the merge by id), so
    /// output stays exactly-once and memory stays bounded for hours of any size. Default:
    /// 500000.
    #[serde(default = "default_dedup_cache_ids")]
    pub dedup_cache_ids: usize,
    /// How often the watermark is evaluated, in milliseconds. Default: 1000.
    #[serde(default = "default_tick_ms")]
    pub tick_ms: u64,
    /// How often this process writes its heartbeat and reads the fleet's, in seconds.
    /// Default: 5.
    #[serde(default = "default_heartbeat_secs")]
    pub heartbeat_secs: u64,
    /// How often the staging folders are listed for hours other processes left (scale-in,
    /// crashes), in seconds. Default: 30.
    #[serde(default = "default_scan_secs")]
    pub scan_secs: u64,
    /// A seal (an hour being closed) is taken over after this many seconds even if its holder
    /// still sends heartbeats; one whose holder went silent is taken over once the
    /// subscription's ack deadline has passed. Default: 1800.
    #[serde(default = "default_seal_timeout_secs")]
    pub seal_timeout_secs: u64,
    /// Hours closed at once by this process. Default: 2.
    #[serde(default = "default_close_concurrency")]
    pub concurrency: usize,
    /// Events dated more than this many seconds after the clock are placed in the hour of
    /// their receive time (or now) and counted (`exporter_events_out_of_bounds_total`); they
    /// never open an hour in the future. Default: 3600.
    #[serde(default = "default_max_future_secs")]
    pub max_future_secs: u64,
    /// Events dated more than this many hours before the clock are placed in the earliest
    /// open hour of their type as late events and counted; they never open or hold an hour.
    /// Default: 168 (Pub/Sub's retention).
    #[serde(default = "default_max_event_age_hours")]
    pub max_event_age_hours: u64,
    /// How long an hour's staging folder (its parts, seals and the closer's output) is kept
    /// after the hour is published, in seconds, counted from the hour's end: for debugging or
    /// measuring (the local pipeline measures latency from the parts). Default: 0 (deleted at
    /// once).
    #[serde(default)]
    pub keep_staging_secs: u64,
    /// Dedup records of closed hours kept in memory (whole hours, least recently used out).
    /// Default: 4.
    #[serde(default = "default_dedup_cache_hours")]
    pub dedup_cache_hours: usize,
}

/// Subscriber flow control. TOML table `[pull]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PullConfig {
    /// Messages outstanding (pulled, not yet acknowledged) per subscription. Must exceed
    /// `files.max_events`. Default: 100000.
    #[serde(default = "default_outstanding")]
    pub max_outstanding_messages: usize,
    /// Bytes outstanding per subscription. Default: 256 MiB.
    #[serde(default = "default_outstanding_bytes")]
    pub max_outstanding_bytes: usize,
}

fn default_project() -> String {
    "eventpipe-local".into()
}
fn default_registry() -> PathBuf {
    PathBuf::from("registry.toml")
}
fn default_suffix() -> String {
    "exporter".into()
}
fn default_storage() -> StorageConfig {
    StorageConfig::Local { path: PathBuf::from("buckets") }
}
fn default_shutdown_secs() -> u64 {
    30
}
fn default_max_events() -> usize {
    50_000
}
fn default_max_bytes() -> usize {
    64 << 20
}
fn default_max_age_ms() -> u64 {
    10_000
}
fn default_retry_ms() -> u64 {
    200
}
fn default_lateness() -> u64 {
    300
}
fn default_idle() -> u64 {
    90
}
fn default_recent_hours() -> u64 {
    7 * 24
}
fn default_heartbeat_secs() -> u64 {
    5
}
fn default_scan_secs() -> u64 {
    30
}
fn default_seal_timeout_secs() -> u64 {
    1800
}
fn default_close_concurrency() -> usize {
    2
}
fn default_max_future_secs() -> u64 {
    3600
}
fn default_max_event_age_hours() -> u64 {
    7 * 24
}
fn default_dedup_cache_hours() -> usize {
    4
}
fn default_dedup_cache_ids() -> usize {
    500_000
}
fn default_tick_ms() -> u64 {
    1000
}
fn default_outstanding() -> usize {
    100_000
}
fn default_outstanding_bytes() -> usize {
    256 << 20
}

impl Default for FilesConfig {
    fn default() -> Self {
        FilesConfig {
            format: FileFormat::default(),
            codec: AvroCodec::default(),
            max_events: default_max_events(),
            max_bytes: default_max_bytes(),
            max_age_ms: default_max_age_ms(),
            retry_initial_ms: default_retry_ms(),
        }
    }
}

impl Default for CloseConfig {
    fn default() -> Self {
        CloseConfig {
            allowed_lateness_secs: default_lateness(),
            idle_secs: default_idle(),
            dedup_window_hours: default_recent_hours(),
            dedup_cache_ids: default_dedup_cache_ids(),
            tick_ms: default_tick_ms(),
            heartbeat_secs: default_heartbeat_secs(),
            scan_secs: default_scan_secs(),
            seal_timeout_secs: default_seal_timeout_secs(),
            concurrency: default_close_concurrency(),
            max_future_secs: default_max_future_secs(),
            max_event_age_hours: default_max_event_age_hours(),
            dedup_cache_hours: default_dedup_cache_hours(),
            keep_staging_secs: 0,
        }
    }
}

impl Default for PullConfig {
    fn default() -> Self {
        PullConfig {
            max_outstanding_messages: default_outstanding(),
            max_outstanding_bytes: default_outstanding_bytes(),
        }
    }
}

impl Config {
    /// A configuration reading `registry`'s subscriptions and writing to `storage`, every
    /// other setting at its default.
    pub fn new(project: impl Into<String>, registry: impl Into<PathBuf>, storage: StorageConfig) -> Self {
        Config {
            project: project.into(),
            emulator_host: None,
            registry: registry.into(),
            subscription_suffix: default_suffix(),
            replica: None,
            metrics_listen: None,
            storage,
            files: FilesConfig::default(),
            close: CloseConfig::default(),
            pull: PullConfig::default(),
            shutdown_timeout_secs: default_shutdown_secs(),
        }
    }

    /// Sets [`emulator_host`](Self::emulator_host).
    pub fn with_emulator_host(mut self, host: impl Into<String>) -> Self {
        self.emulator_host = Some(host.into());
        self
    }

    /// Sets [`replica`](Self::replica).
    pub fn with_replica(mut self, name: impl Into<String>) -> Self {
        self.replica = Some(name.into());
        self
    }

    /// Parses TOML text; relative paths are resolved against `base_dir`.
    pub fn from_toml_str(text: &str, base_dir: &Path) -> Result<Self> {
        let mut c: Config = toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        c.registry = base_dir.join(&c.registry);
        if let StorageConfig::Local { path } = &mut c.storage {
            *path = base_dir.join(&*path);
        }
        c.validate()?;
        Ok(c)
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        Self::from_toml_str(&text, path.parent().unwrap_or(Path::new(".")))
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// Checks every value, naming the first wrong one.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(m.to_owned()));
        if self.files.max_events == 0 || self.files.max_bytes == 0 || self.files.max_age_ms == 0 {
            return bad("files.max_events, files.max_bytes and files.max_age_ms must be > 0");
        }
        if self.pull.max_outstanding_messages <= self.files.max_events {
            return bad(
                "pull.max_outstanding_messages must exceed files.max_events (a file could never fill)",
            );
        }
        if self.pull.max_outstanding_bytes <= self.files.max_bytes {
            return bad("pull.max_outstanding_bytes must exceed files.max_bytes");
        }
        if self.replica.as_deref().is_some_and(|r| r.is_empty() || r.contains('/')) {
            return bad("replica must be non-empty and without '/'");
        }
        if self.subscription_suffix.is_empty() {
            return bad("subscription_suffix is empty");
        }
        if self.close.dedup_cache_ids < 2 {
            return bad("close.dedup_cache_ids must be at least 2");
        }
        if self.close.heartbeat_secs == 0 || self.close.scan_secs == 0 || self.close.concurrency == 0 {
            return bad("close.heartbeat_secs, close.scan_secs and close.concurrency must be > 0");
        }
        if self.close.max_event_age_hours == 0 {
            return bad("close.max_event_age_hours must be > 0");
        }
        Ok(())
    }

    pub(crate) fn tick(&self) -> Duration {
        Duration::from_millis(self.close.tick_ms.max(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_paths_and_errors() {
        let c = Config::from_toml_str("", Path::new("/etc/x")).expect("defaults");
        assert_eq!(c.registry, Path::new("/etc/x/registry.toml"));
        assert_eq!(c.storage, StorageConfig::Local { path: "/etc/x/buckets".into() });
        assert_eq!(c.close.allowed_lateness_secs, 300);
        let e = Config::from_toml_str("[files]\nmax_evnts = 3", Path::new(".")).expect_err("typo");
        assert!(e.to_string().contains("max_evnts"), "{e}");
        let e = Config::from_toml_str("[files]\nmax_events = 200000", Path::new(".")).expect_err("flow");
        assert!(e.to_string().contains("pull.max_outstanding_messages"), "{e}");
    }

    #[test]
    fn the_example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/exporter.toml");
        Config::load(&path).expect("config/exporter.toml is valid");
    }
}
