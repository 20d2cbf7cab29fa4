//! Service configuration: a TOML file with documented defaults; unknown keys are errors that
//! name the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::ServiceError;

/// Highest `server.max_connections` accepted.
const MAX_CONNECTIONS_LIMIT: usize = 1_000_000;

/// Everything the service needs to run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct Config {
    /// Address to listen on. Default: `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Google Cloud project of the topics. Default: `eventpipe-local`.
    pub project: String,
    /// The event-type registry file (relative paths are relative to the config file).
    /// Default: `registry.toml`.
    pub registry: PathBuf,
    /// Pub/Sub emulator `host:port`; when unset `PUBSUB_EMULATOR_HOST` is honoured, else the
    /// real service is used with application default credentials. Default: unset.
    pub emulator_host: Option<String>,
    /// Topic that receives rejected events (with their reason) so nothing is silently dropped.
    /// Default: unset (rejections are only reported to the sender and counted).
    pub dead_letter_topic: Option<String>,
    /// Longest graceful shutdown: in-flight requests are drained within it. Default: 30 s.
    pub shutdown_timeout_secs: u64,
    /// Ingest authentication.
    pub auth: AuthConfig,
    /// Connection handling: header-read and idle timeouts, the connection cap.
    pub server: ServerConfig,
    /// Request limits.
    pub limits: LimitsConfig,
    /// Publisher settings (per topic).
    pub publisher: PublisherSettings,
    /// Dark-loading: mirror every accepted event to another project or topic prefix.
    pub mirror: Option<MirrorConfig>,
    /// TLS on the listener. Default: unset (plain HTTP).
    pub tls: Option<TlsConfig>,
}

/// Certificate and key for TLS on the listener (PEM files).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TlsConfig {
    /// Certificate chain, PEM.
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1), PEM.
    pub key: PathBuf,
}

impl MirrorConfig {
    /// Mirrors to `topic_prefix` + topic in the service's own project.
    pub fn new(topic_prefix: impl Into<String>) -> Self {
        MirrorConfig { project: None, topic_prefix: topic_prefix.into(), emulator_host: None }
    }

    /// Mirrors into another project.
    pub fn with_project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
        self
    }
}

impl TlsConfig {
    /// A TLS config from certificate and key files.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        TlsConfig { cert: cert.into(), key: key.into() }
    }
}

/// Bearer-token authentication of `POST /v1/events`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct AuthConfig {
    /// Accepted tokens; `EVENT_SERVICE_TOKENS` (comma-separated) adds more. Default: none.
    pub tokens: Vec<String>,
    /// Accept requests without a token (only for local use). Default: false; with no tokens
    /// and this false, the service refuses to start.
    pub allow_unauthenticated: bool,
}

/// How connections are handled (`[server]`): clients that send their request headers too
/// slowly or keep a connection open without using it are disconnected, and the number of open
/// connections is capped.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Longest time from the moment a connection is ready (TCP accepted, TLS handshake done) or
    /// a new HTTP/1 request's first byte arrives until the request's headers are complete; the
    /// connection is closed after it (slowloris). Default: 10 s.
    pub header_read_timeout_secs: u64,
    /// Longest a connection may stay open with no request in flight (HTTP/1 keep-alive and
    /// HTTP/2 alike); then it is closed (HTTP/2 with a GOAWAY). Default: 60 s. Senders should
    /// drop pooled connections sooner than this.
    pub idle_timeout_secs: u64,
    /// Most connections open at once (TLS handshakes included). At the cap the service stops
    /// accepting until a connection closes; new connections wait in the kernel's listen
    /// backlog. Keep it below the process's open-file limit. Default: 10,000.
    pub max_connections: usize,
}

/// Limits that keep memory bounded under any load.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct LimitsConfig {
    /// Largest request body, after gzip decompression (413 above). Default: 10 MiB.
    pub max_body_bytes: usize,
    /// Most events per request (413 above). Default: 10,000.
    pub max_events_per_request: usize,
    /// Largest encoded event (rejected above). Default: 1 MiB.
    pub max_event_bytes: usize,
    /// Most requests being processed at once (429 above). Default: 256.
    pub max_in_flight_requests: usize,
    /// The byte budget of all requests in flight together (429 when a request finds no room).
    /// A request holds its body as sent (its declared length, or `max_body_bytes` when none
    /// is declared), its decompressed body as it is decompressed, and a working copy of the
    /// decoded events as large as the decompressed body: at most 3 × `max_body_bytes`, so this
    /// must be at least that. Default: 256 MiB.
    pub max_in_flight_bytes: usize,
    /// `Retry-After` seconds sent with 429 and 503. Default: 1.
    pub retry_after_secs: u64,
}

/// Publisher settings applied to every topic.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct PublisherSettings {
    /// Batch delay in milliseconds. Default: 5.
    pub delay_ms: u64,
    /// Most messages outstanding per topic. Default: 200,000.
    pub max_outstanding_messages: usize,
    /// Most encoded bytes outstanding per topic. Default: 256 MiB.
    pub max_outstanding_bytes: usize,
    /// Most publish requests in flight per topic. Default: 32.
    pub max_in_flight_requests: usize,
    /// Gzip publish bodies of at least this many bytes. Default: unset (off).
    pub gzip_threshold: Option<usize>,
    /// Total time a publish is retried before the request fails with 503. Default: 30 s.
    pub retry_timeout_secs: u64,
}

/// Where mirrored events go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MirrorConfig {
    /// Project of the mirror topics. Default: the service's project.
    #[serde(default)]
    pub project: Option<String>,
    /// Prefix put before each topic id. Default: none.
    #[serde(default)]
    pub topic_prefix: String,
    /// Emulator of the mirror, if any. Default: as for the main project.
    #[serde(default)]
    pub emulator_host: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            project: "eventpipe-local".into(),
            registry: PathBuf::from("registry.toml"),
            emulator_host: None,
            dead_letter_topic: None,
            shutdown_timeout_secs: 30,
            auth: AuthConfig::default(),
            server: ServerConfig::default(),
            limits: LimitsConfig::default(),
            publisher: PublisherSettings::default(),
            mirror: None,
            tls: None,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig { header_read_timeout_secs: 10, idle_timeout_secs: 60, max_connections: 10_000 }
    }
}

impl ServerConfig {
    /// The header-read timeout.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs)
    }

    /// The idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: 10 * 1024 * 1024,
            max_events_per_request: 10_000,
            max_event_bytes: event_model::DEFAULT_MAX_EVENT_BYTES,
            max_in_flight_requests: 256,
            max_in_flight_bytes: 256 * 1024 * 1024,
            retry_after_secs: 1,
        }
    }
}

impl Default for PublisherSettings {
    fn default() -> Self {
        PublisherSettings {
            delay_ms: 5,
            max_outstanding_messages: 200_000,
            max_outstanding_bytes: 256 * 1024 * 1024,
            max_in_flight_requests: 32,
            gzip_threshold: None,
            retry_timeout_secs: 30,
        }
    }
}

impl Config {
    /// Reads a config file; the registry path is resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Self, ServiceError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ServiceError::Config(format!("cannot read {}: {e}", path.display())))?;
        let mut cfg = Self::from_toml_str(&text)
            .map_err(|e| ServiceError::Config(format!("{}: {e}", path.display())))?;
        if let Some(dir) = path.parent() {
            let resolve = |p: &mut PathBuf| {
                if p.is_relative() {
                    *p = dir.join(&*p);
                }
            };
            resolve(&mut cfg.registry);
            if let Some(tls) = &mut cfg.tls {
                resolve(&mut tls.cert);
                resolve(&mut tls.key);
            }
        }
        Ok(cfg)
    }

    /// Parses config text.
    pub fn from_toml_str(text: &str) -> Result<Self, ServiceError> {
        toml::from_str(text).map_err(|e| ServiceError::Config(e.to_string().trim().to_owned()))
    }

    /// Adds tokens from `EVENT_SERVICE_TOKENS` (comma-separated).
    pub fn with_env_tokens(mut self) -> Self {
        if let Ok(v) = std::env::var("EVENT_SERVICE_TOKENS") {
            self.auth.tokens.extend(v.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned));
        }
        self
    }

    /// Checks values that serde cannot.
    pub fn validate(&self) -> Result<(), ServiceError> {
        let bad = |m: &str| Err(ServiceError::Config(m.to_owned()));
        if self.auth.tokens.is_empty() && !self.auth.allow_unauthenticated {
            return bad(
                "no ingest tokens configured: set auth.tokens, EVENT_SERVICE_TOKENS, or auth.allow_unauthenticated = true",
            );
        }
        if self.auth.tokens.iter().any(|t| t.len() < 16) {
            return bad("auth.tokens: every token must be at least 16 characters");
        }
        let l = &self.limits;
        if l.max_body_bytes == 0 || l.max_events_per_request == 0 || l.max_in_flight_requests == 0 {
            return bad(
                "limits: max_body_bytes, max_events_per_request and max_in_flight_requests must be at least 1",
            );
        }
        if l.max_in_flight_bytes / 3 < l.max_body_bytes {
            return bad(
                "limits.max_in_flight_bytes must be at least 3 × limits.max_body_bytes (a request holds its body as sent, decompressed, and decoded)",
            );
        }
        let s = &self.server;
        if s.header_read_timeout_secs == 0 || s.idle_timeout_secs == 0 {
            return bad("server: header_read_timeout_secs and idle_timeout_secs must be at least 1");
        }
        if s.max_connections == 0 || s.max_connections > MAX_CONNECTIONS_LIMIT {
            return Err(ServiceError::Config(format!(
                "server.max_connections must be between 1 and {MAX_CONNECTIONS_LIMIT}, not {}",
                s.max_connections
            )));
        }
        Ok(())
    }

    /// The shutdown timeout.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_from_an_empty_file_but_need_tokens() {
        let c = Config::from_toml_str("").expect("empty file is fine");
        assert_eq!(c.listen.port(), 8080);
        assert!(c.validate().expect_err("no tokens").to_string().contains("no ingest tokens"));
        let c = Config::from_toml_str("[auth]\nallow_unauthenticated = true").expect("parses");
        c.validate().expect("valid");
    }

    #[test]
    fn unknown_keys_are_named() {
        for (text, key) in [
            ("lisen = \"x\"", "lisen"),
            ("[limits]\nmax_body = 5", "max_body"),
            ("[auth]\ntoken = []", "token"),
            ("[mirror]\nprefix = \"x\"", "prefix"),
        ] {
            let e = Config::from_toml_str(text).expect_err(text).to_string();
            assert!(e.contains(&format!("unknown field `{key}`")), "{e}");
        }
    }

    #[test]
    fn the_shipped_example_config_and_registry_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        let c = Config::load(&dir.join("event-service.toml")).expect("config/event-service.toml parses");
        c.validate().expect("and is valid");
        let r = event_model::Registry::load(&c.registry).expect("config/registry.toml loads");
        assert!(r.event_type("play").is_some() && r.event_type("search").is_some());
    }

    #[test]
    fn server_settings_have_defaults_and_bad_values_are_named() {
        let c = Config::from_toml_str("[auth]\nallow_unauthenticated = true").expect("parses");
        assert_eq!(
            (c.server.header_read_timeout_secs, c.server.idle_timeout_secs, c.server.max_connections),
            (10, 60, 10_000)
        );
        for (text, want) in [
            ("header_read_timeout_secs = 0", "header_read_timeout_secs"),
            ("idle_timeout_secs = 0", "idle_timeout_secs"),
            ("max_connections = 0", "server.max_connections must be between 1 and 1000000, not 0"),
        ] {
            let c = Config::from_toml_str(&format!("[auth]\nallow_unauthenticated = true\n[server]\n{text}"))
                .expect("parses");
            let e = c.validate().expect_err(text).to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn short_tokens_are_refused() {
        let c = Config::from_toml_str("[auth]\ntokens = [\"short\"]").expect("parses");
        assert!(c.validate().expect_err("short").to_string().contains("16 characters"));
    }
}
