//! The tailer's configuration: a TOML file, every key optional but `[[sources]]`, unknown keys
//! refused with the key named.
//!
//! ```toml
//! host = "web-1"                          # default: this machine's hostname; --host / TAILER_HOST override
//! data_dir = "/var/lib/eventpipe-tailer"  # checkpoints and the lock file
//! registry = "registry.toml"              # optional: types TSV/JSON values by the registry
//! metrics_listen = "127.0.0.1:9102"       # optional: /metrics and /healthz
//!
//! [service]
//! url = "http://127.0.0.1:8080/v1/events"
//! token = "..."                           # or TAILER_TOKEN in the environment
//!
//! [[sources]]
//! include = ["/var/log/app/events.log*"]
//! exclude = ["*.gz"]
//! [sources.parse]
//! format = "syslog"
//! payload = "tsv"
//! ```
//!
//! Relative paths are relative to the directory of the config file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::limits;
use crate::parse::ParseRule;

/// The environment variable that supplies the bearer token when the file has none.
pub const TOKEN_ENV: &str = "TAILER_TOKEN";

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// Name of this host: the events' `source` and part of every event id. Default: the
    /// machine's hostname. The binary's `--host` / `TAILER_HOST` override it; keep it stable
    /// for the machine whose files are read (in Kubernetes the node name: a pod's hostname is
    /// its pod name, and a re-created pod would give re-sent lines new ids).
    #[serde(default = "default_host")]
    pub host: String,
    /// Directory for the checkpoint file and the lock that keeps a second tailer out.
    /// Default: `/var/lib/eventpipe-tailer`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The event-type registry (the event-service's file). Optional: when given, TSV and JSON
    /// values are typed by it (ints, floats, bools, timestamps); without it they are sent as
    /// text (TSV) or as their JSON type.
    #[serde(default)]
    pub registry: Option<PathBuf>,
    /// Address for `/metrics` (Prometheus text) and `/healthz`. Default: none.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// Where events go.
    #[serde(default)]
    pub service: ServiceConfig,
    /// How events are batched.
    #[serde(default)]
    pub batch: BatchConfig,
    /// How files are found and read.
    #[serde(default)]
    pub read: ReadConfig,
    /// The files to tail and how their lines are parsed. At least one.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
}

/// The event-service endpoint. TOML table `[service]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ServiceConfig {
    /// URL of the ingest route. Default: `http://127.0.0.1:8080/v1/events`.
    #[serde(default = "default_url")]
    pub url: String,
    /// Bearer token; [`TOKEN_ENV`] is used when unset. Default: none.
    #[serde(default)]
    pub token: Option<String>,
    /// A PEM file of extra root certificates trusted for `https` URLs (a private CA).
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    /// Compress request bodies with gzip. Default: true.
    #[serde(default = "yes")]
    pub gzip: bool,
    /// Timeout of one request, in seconds. Default: 45. Keep it longer than the
    /// event-service's publish deadline (`publisher.retry_timeout_secs`, 30 s by default), or
    /// requests the service would still answer time out here and are sent again.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// First retry delay in milliseconds; it doubles up to `retry_max_ms`. Default: 100.
    #[serde(default = "default_retry_initial_ms")]
    pub retry_initial_ms: u64,
    /// Longest retry delay in milliseconds. Default: 30000.
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
}

/// Batching. TOML table `[batch]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BatchConfig {
    /// Most events in one request. Default: 1000; at most 10000 (the service's limit).
    #[serde(default = "default_max_events")]
    pub max_events: usize,
    /// Most encoded bytes in one request (before gzip). Default: 1 MiB; at most 10 MiB.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// Longest a line waits in a batch that is not full while more lines keep coming, in
    /// milliseconds. A batch is sent at once when there is nothing more to read. Default: 200.
    #[serde(default = "default_max_delay_ms")]
    pub max_delay_ms: u64,
    /// Requests in flight at once; reading pauses while they are all busy. Default: 4.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
}

/// File discovery and reading. TOML table `[read]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ReadConfig {
    /// Longest line; a longer one is skipped, logged and counted. Default: 100 KiB.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// Bytes read from one file before moving to the next. Default: 256 KiB.
    #[serde(default = "default_read_chunk_bytes")]
    pub read_chunk_bytes: usize,
    /// How long to wait when no file had new data, in milliseconds. Default: 100.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// How often the globs are expanded again, in milliseconds. Default: 1000.
    #[serde(default = "default_glob_interval_ms")]
    pub glob_interval_ms: u64,
    /// How long a file no longer matched by the globs (rotated away or deleted) must stay
    /// at its end without growing before it is let go, in milliseconds. Default: 5000.
    #[serde(default = "default_rotated_idle_ms")]
    pub rotated_idle_ms: u64,
    /// How often the checkpoint is made durable, in milliseconds. Default: 1000.
    #[serde(default = "default_checkpoint_interval_ms")]
    pub checkpoint_interval_ms: u64,
    /// How long the checkpoint remembers a file let go (rotated out of the globs or deleted,
    /// read to its end) and no longer seen, in seconds. A file still followed is never
    /// forgotten, however long back-pressure holds reading up. Default: 86400.
    #[serde(default = "default_forget_after_secs")]
    pub forget_after_secs: u64,
    /// How long a graceful shutdown waits for requests in flight, in seconds. Default: 10.
    #[serde(default = "default_shutdown_timeout_secs")]
    pub shutdown_timeout_secs: u64,
}

/// One set of files and how to parse them. TOML array `[[sources]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SourceConfig {
    /// Glob patterns of files to tail, e.g. `/var/log/app/*.log*`. Include the rotated names
    /// (`*.log.1`) so that lines written just before a copytruncate rotation are read from the copy.
    pub include: Vec<String>,
    /// Glob patterns (matched against the full path) of files to leave alone, e.g. `*.gz`.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// How each line becomes an event. TOML table `[sources.parse]`.
    #[serde(default)]
    pub parse: ParseRule,
}

fn default_host() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/eventpipe-tailer")
}
fn default_url() -> String {
    "http://127.0.0.1:8080/v1/events".into()
}
fn yes() -> bool {
    true
}
fn default_timeout_secs() -> u64 {
    45
}
fn default_retry_initial_ms() -> u64 {
    100
}
fn default_retry_max_ms() -> u64 {
    30_000
}
fn default_max_events() -> usize {
    1000
}
fn default_max_bytes() -> usize {
    1 << 20
}
fn default_max_delay_ms() -> u64 {
    200
}
fn default_max_in_flight() -> usize {
    4
}
fn default_max_line_bytes() -> usize {
    100 * 1024
}
fn default_read_chunk_bytes() -> usize {
    256 * 1024
}
fn default_poll_interval_ms() -> u64 {
    100
}
fn default_glob_interval_ms() -> u64 {
    1000
}
fn default_rotated_idle_ms() -> u64 {
    5000
}
fn default_checkpoint_interval_ms() -> u64 {
    1000
}
fn default_forget_after_secs() -> u64 {
    86_400
}
fn default_shutdown_timeout_secs() -> u64 {
    10
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            url: default_url(),
            token: None,
            ca_cert: None,
            gzip: true,
            timeout_secs: default_timeout_secs(),
            retry_initial_ms: default_retry_initial_ms(),
            retry_max_ms: default_retry_max_ms(),
        }
    }
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_events: default_max_events(),
            max_bytes: default_max_bytes(),
            max_delay_ms: default_max_delay_ms(),
            max_in_flight: default_max_in_flight(),
        }
    }
}

impl Default for ReadConfig {
    fn default() -> Self {
        ReadConfig {
            max_line_bytes: default_max_line_bytes(),
            read_chunk_bytes: default_read_chunk_bytes(),
            poll_interval_ms: default_poll_interval_ms(),
            glob_interval_ms: default_glob_interval_ms(),
            rotated_idle_ms: default_rotated_idle_ms(),
            checkpoint_interval_ms: default_checkpoint_interval_ms(),
            forget_after_secs: default_forget_after_secs(),
            shutdown_timeout_secs: default_shutdown_timeout_secs(),
        }
    }
}

impl SourceConfig {
    /// A source of the files matching `include`, parsed with the default rule.
    pub fn new(include: impl IntoIterator<Item = impl Into<String>>) -> Self {
        SourceConfig {
            include: include.into_iter().map(Into::into).collect(),
            exclude: Vec::new(),
            parse: ParseRule::default(),
        }
    }

    /// Adds exclude patterns.
    pub fn with_exclude(mut self, exclude: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.exclude.extend(exclude.into_iter().map(Into::into));
        self
    }

    /// Sets how lines are parsed.
    pub fn with_parse(mut self, parse: ParseRule) -> Self {
        self.parse = parse;
        self
    }
}

impl Config {
    /// A configuration sending to `url`, keeping its state in `data_dir`, with the given
    /// sources and every other setting at its default.
    pub fn new(url: impl Into<String>, data_dir: impl Into<PathBuf>, sources: Vec<SourceConfig>) -> Self {
        Config {
            host: default_host(),
            data_dir: data_dir.into(),
            registry: None,
            metrics_listen: None,
            service: ServiceConfig { url: url.into(), ..ServiceConfig::default() },
            batch: BatchConfig::default(),
            read: ReadConfig::default(),
            sources,
        }
    }

    /// Sets [`host`](Self::host).
    pub fn with_host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// Sets [`registry`](Self::registry).
    pub fn with_registry(mut self, path: impl Into<PathBuf>) -> Self {
        self.registry = Some(path.into());
        self
    }

    /// Sets [`metrics_listen`](Self::metrics_listen).
    pub fn with_metrics_listen(mut self, addr: SocketAddr) -> Self {
        self.metrics_listen = Some(addr);
        self
    }

    /// Replaces the `[service]` settings.
    pub fn with_service(mut self, service: ServiceConfig) -> Self {
        self.service = service;
        self
    }

    /// Replaces the `[batch]` settings.
    pub fn with_batch(mut self, batch: BatchConfig) -> Self {
        self.batch = batch;
        self
    }

    /// Replaces the `[read]` settings.
    pub fn with_read(mut self, read: ReadConfig) -> Self {
        self.read = read;
        self
    }

    /// Parses TOML text; relative paths are resolved against `base_dir`.
    pub fn from_toml_str(text: &str, base_dir: &Path) -> Result<Self> {
        let mut config: Config = toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        config.data_dir = base_dir.join(&config.data_dir);
        config.registry = config.registry.map(|r| base_dir.join(r));
        if let Some(ca) = config.service.ca_cert.take() {
            config.service.ca_cert = Some(base_dir.join(ca));
        }
        for source in &mut config.sources {
            for p in source.include.iter_mut().chain(source.exclude.iter_mut()) {
                if !Path::new(p.as_str()).is_absolute() && !p.starts_with('*') {
                    *p = base_dir.join(p.as_str()).to_string_lossy().into_owned();
                }
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_toml_str(&text, base).map_err(|e| match e {
            Error::Config(m) => Error::Config(format!("{}: {m}", path.display())),
            e => e,
        })
    }

    /// The bearer token: the file's, else [`TOKEN_ENV`]'s, else none.
    pub fn token(&self) -> Option<String> {
        self.service.token.clone().or_else(|| std::env::var(TOKEN_ENV).ok()).filter(|t| !t.is_empty())
    }

    /// Checks every value, naming the first wrong one.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.host.is_empty() {
            return bad("`host` is empty".into());
        }
        if self.sources.is_empty() {
            return bad("no `[[sources]]`: nothing to tail".into());
        }
        for (i, s) in self.sources.iter().enumerate() {
            if s.include.is_empty() {
                return bad(format!("sources[{i}].include is empty"));
            }
            for p in s.include.iter().chain(&s.exclude) {
                if let Err(e) = glob::Pattern::new(p) {
                    return bad(format!("sources[{i}]: `{p}` is not a valid glob pattern: {e}"));
                }
            }
        }
        match reqwest::Url::parse(&self.service.url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            Ok(u) => return bad(format!("service.url must be http or https, not `{}`", u.scheme())),
            Err(e) => return bad(format!("service.url `{}` is not a URL: {e}", self.service.url)),
        }
        let b = &self.batch;
        if b.max_events == 0 || b.max_events > limits::MAX_EVENTS_PER_REQUEST {
            return bad(format!("batch.max_events must be 1..={}", limits::MAX_EVENTS_PER_REQUEST));
        }
        if b.max_bytes > limits::MAX_REQUEST_BYTES {
            return bad(format!("batch.max_bytes must be at most {}", limits::MAX_REQUEST_BYTES));
        }
        if b.max_in_flight == 0 {
            return bad("batch.max_in_flight must be at least 1".into());
        }
        let r = &self.read;
        if r.max_line_bytes == 0 || r.max_line_bytes + limits::EVENT_OVERHEAD_BYTES > b.max_bytes {
            return bad(format!(
                "read.max_line_bytes must be 1..={} (batch.max_bytes minus {} bytes of event envelope)",
                b.max_bytes.saturating_sub(limits::EVENT_OVERHEAD_BYTES),
                limits::EVENT_OVERHEAD_BYTES
            ));
        }
        if r.read_chunk_bytes < 4096 {
            return bad("read.read_chunk_bytes must be at least 4096".into());
        }
        if self.service.retry_initial_ms == 0 || self.service.retry_max_ms < self.service.retry_initial_ms {
            return bad("service.retry_initial_ms must be > 0 and <= service.retry_max_ms".into());
        }
        if self.service.timeout_secs == 0 {
            return bad("service.timeout_secs must be > 0".into());
        }
        Ok(())
    }

    pub(crate) fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.read.poll_interval_ms.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::from_toml_str(text, Path::new("/etc/tailer"))
    }

    #[test]
    fn defaults_and_relative_paths() {
        let c = parse(
            r#"
            data_dir = "state"
            registry = "registry.toml"
            [[sources]]
            include = ["logs/*.log"]
            "#,
        )
        .expect("valid");
        assert_eq!(c.data_dir, Path::new("/etc/tailer/state"));
        assert_eq!(c.registry.as_deref(), Some(Path::new("/etc/tailer/registry.toml")));
        assert_eq!(c.sources[0].include, ["/etc/tailer/logs/*.log"]);
        assert_eq!(c.batch.max_events, 1000);
        assert!(c.service.gzip);
        assert!(!c.host.is_empty());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = parse("colour = 1\n[[sources]]\ninclude=['a']").expect_err("unknown key");
        assert!(e.to_string().contains("colour"), "{e}");
        let e = parse("[[sources]]\ninclude=['a']\n[batch]\nmax_events = 20000").expect_err("limit");
        assert!(e.to_string().contains("batch.max_events"), "{e}");
        let e = parse("").expect_err("no sources");
        assert!(e.to_string().contains("sources"), "{e}");
        let e = parse("[service]\nurl='ftp://x'\n[[sources]]\ninclude=['a']").expect_err("scheme");
        assert!(e.to_string().contains("service.url"), "{e}");
        let e = parse("[[sources]]\ninclude=['a[']").expect_err("glob");
        assert!(e.to_string().contains("glob"), "{e}");
        let e = parse("[[sources]]\ninclude=['a']\n[read]\nmax_line_bytes = 2000000").expect_err("line");
        assert!(e.to_string().contains("read.max_line_bytes"), "{e}");
    }

    #[test]
    fn the_example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/tailer.toml");
        let c = Config::load(&path).expect("config/tailer.toml is valid");
        assert!(!c.sources.is_empty());
    }
}
