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
        MirrorConfig {
            project: None,
            topic_prefix: topic_prefix.into(),
            emulator_host: None,
            queue_events: default_mirror_queue_events(),
            queue_bytes: default_mirror_queue_bytes(),
        }
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
    /// Accepted tokens, each a plain string (any source, no rate limit) or a table
    /// `{ token, name, sources, events_per_sec, burst_events }` (see [`TokenConfig`]);
    /// `EVENT_SERVICE_TOKENS` (comma-separated) adds more, unbound, after these. Default: none.
    pub tokens: Vec<TokenConfig>,
    /// Accept requests without a token (only for local use). Default: false; with no tokens
    /// and this false, the service refuses to start.
    pub allow_unauthenticated: bool,
}

/// One accepted bearer token, what it may send for and how fast.
///
/// In TOML either a plain string (the token, bound to nothing) or a table:
/// `{ token = "...", name = "web", sources = ["web-1", "web-*"], events_per_sec = 5000,
/// burst_events = 20000 }`. Its `Debug` output never shows the token.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenConfig {
    /// The bearer token, at least 16 characters.
    pub token: String,
    /// A name for messages and the `token` label of metrics (letters, digits, `-`, `_`, `.`;
    /// at most 64). Default: unset, the token is then called `auth.tokens[<index>]`.
    pub name: Option<String>,
    /// Sources the token may send for: exact names, or a prefix ending in `*` (`web-*`; `*`
    /// alone is any non-empty source). A request with an event of another source, or of none,
    /// is refused whole with 403. Default: unset, any source (an empty one too).
    pub sources: Option<Vec<String>>,
    /// Most events per second the token may send, all its requests together, counted per
    /// service instance (429 with `Retry-After` above). Default: unset, no limit.
    pub events_per_sec: Option<u32>,
    /// Most events the token may send at once before `events_per_sec` applies; a request with
    /// more events than this is refused with 413 (a sender splits it). Only with
    /// `events_per_sec`. Default: the larger of `events_per_sec` and
    /// `limits.max_events_per_request`, so every request within the limits fits.
    pub burst_events: Option<u32>,
}

impl TokenConfig {
    /// A token bound to nothing: any source, no rate limit.
    pub fn new(token: impl Into<String>) -> Self {
        TokenConfig {
            token: token.into(),
            name: None,
            sources: None,
            events_per_sec: None,
            burst_events: None,
        }
    }

    /// Names the token in messages and metrics.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Binds the token to these source names or `prefix*` patterns.
    pub fn with_sources<S: Into<String>>(mut self, sources: impl IntoIterator<Item = S>) -> Self {
        self.sources = Some(sources.into_iter().map(Into::into).collect());
        self
    }

    /// Limits the token to `events_per_sec`, with bursts of up to `burst_events` (default as
    /// documented on [`TokenConfig::burst_events`]).
    pub fn with_rate(mut self, events_per_sec: u32, burst_events: Option<u32>) -> Self {
        self.events_per_sec = Some(events_per_sec);
        self.burst_events = burst_events;
        self
    }

    /// How the token is called in messages and metrics: its name, else `auth.tokens[<index>]`.
    pub fn label(&self, index: usize) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => format!("auth.tokens[{index}]"),
        }
    }

    /// The burst size in effect under `limits`, when the token is rate-limited.
    pub fn effective_burst(&self, limits: &LimitsConfig) -> Option<u32> {
        let rate = self.events_per_sec?;
        let per_request = u32::try_from(limits.max_events_per_request).unwrap_or(u32::MAX);
        Some(self.burst_events.unwrap_or(rate.max(per_request)))
    }

    fn validate(&self, index: usize) -> Result<(), String> {
        let at = format!("auth.tokens[{index}]");
        if self.token.len() < 16 {
            return Err(format!("{at}: every token must be at least 16 characters"));
        }
        if let Some(name) = &self.name
            && (name.is_empty()
                || name.len() > 64
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(format!("{at}: name `{name}` must be 1 to 64 letters, digits, `-`, `_` or `.`"));
        }
        if let Some(sources) = &self.sources {
            if sources.is_empty() {
                return Err(format!(
                    "{at}: sources is empty; list the source names it may send for, or leave sources out for any source"
                ));
            }
            for p in sources {
                if p.is_empty() {
                    return Err(format!("{at}: an empty source pattern in sources"));
                }
                if p.trim_end_matches('*').contains('*') || p.ends_with("**") {
                    return Err(format!(
                        "{at}: source pattern `{p}`: `*` only at the end (a prefix), as in `web-*`"
                    ));
                }
            }
        }
        match (self.events_per_sec, self.burst_events) {
            (Some(0), _) => {
                Err(format!("{at}: events_per_sec must be at least 1 (leave it out for no limit)"))
            }
            (Some(_), Some(0)) => Err(format!("{at}: burst_events must be at least 1")),
            (None, Some(_)) => Err(format!("{at}: burst_events needs events_per_sec")),
            _ => Ok(()),
        }
    }
}

impl From<&str> for TokenConfig {
    fn from(token: &str) -> Self {
        TokenConfig::new(token)
    }
}

impl From<String> for TokenConfig {
    fn from(token: String) -> Self {
        TokenConfig::new(token)
    }
}

impl std::fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("token", &format_args!("<{} characters>", self.token.len()))
            .field("name", &self.name)
            .field("sources", &self.sources)
            .field("events_per_sec", &self.events_per_sec)
            .field("burst_events", &self.burst_events)
            .finish()
    }
}

/// The table form of a token; unknown keys are errors that name the key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenTable {
    token: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    sources: Option<Vec<String>>,
    #[serde(default)]
    events_per_sec: Option<u32>,
    #[serde(default)]
    burst_events: Option<u32>,
}

impl<'de> Deserialize<'de> for TokenConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> serde::de::Visitor<'de> for Either {
            type Value = TokenConfig;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a token string or a table { token, name, sources, events_per_sec, burst_events }",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TokenConfig, E> {
                Ok(TokenConfig::new(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<TokenConfig, A::Error> {
                let t = TokenTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(TokenConfig {
                    token: t.token,
                    name: t.name,
                    sources: t.sources,
                    events_per_sec: t.events_per_sec,
                    burst_events: t.burst_events,
                })
            }
        }
        d.deserialize_any(Either)
    }
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
    /// Most events waiting in the mirror's own queue for its publishers. Ingest never waits
    /// for the mirror: an event offered while the queue is full is dropped from the mirror
    /// (only) and counted in `event_service_mirror_dropped_total`. The mirror's publishers hold at
    /// most as many (and as many bytes as `queue_bytes`), so a stalled mirror target keeps at
    /// most twice these limits in memory. Default: 10,000.
    #[serde(default = "default_mirror_queue_events")]
    pub queue_events: usize,
    /// Most bytes (payload and attributes) of the events in the mirror's queue; above it events
    /// are dropped from the mirror as for `queue_events`. Default: 16 MiB.
    #[serde(default = "default_mirror_queue_bytes")]
    pub queue_bytes: usize,
}

fn default_mirror_queue_events() -> usize {
    10_000
}

fn default_mirror_queue_bytes() -> usize {
    16 * 1024 * 1024
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

    /// Adds tokens from `EVENT_SERVICE_TOKENS` (comma-separated), unbound, after those of the
    /// file.
    pub fn with_env_tokens(mut self) -> Self {
        if let Ok(v) = std::env::var("EVENT_SERVICE_TOKENS") {
            self.add_unbound_tokens(&v);
        }
        self
    }

    fn add_unbound_tokens(&mut self, list: &str) {
        self.auth
            .tokens
            .extend(list.split(',').map(str::trim).filter(|t| !t.is_empty()).map(TokenConfig::new));
    }

    /// Checks values that serde cannot.
    pub fn validate(&self) -> Result<(), ServiceError> {
        let bad = |m: &str| Err(ServiceError::Config(m.to_owned()));
        if self.auth.tokens.is_empty() && !self.auth.allow_unauthenticated {
            return bad(
                "no ingest tokens configured: set auth.tokens, EVENT_SERVICE_TOKENS, or auth.allow_unauthenticated = true",
            );
        }
        let tokens = &self.auth.tokens;
        for (i, t) in tokens.iter().enumerate() {
            t.validate(i).map_err(ServiceError::Config)?;
            if let Some(j) = tokens[..i].iter().position(|o| o.token == t.token) {
                return Err(ServiceError::Config(format!(
                    "auth.tokens[{j}] and auth.tokens[{i}] are the same token (EVENT_SERVICE_TOKENS follow the file's tokens)"
                )));
            }
            if let Some(name) = &t.name
                && tokens[..i].iter().any(|o| o.name.as_ref() == Some(name))
            {
                return Err(ServiceError::Config(format!("auth.tokens: name `{name}` is used twice")));
            }
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
        if let Some(m) = &self.mirror {
            if m.queue_events == 0 {
                return bad("mirror.queue_events must be at least 1");
            }
            if m.queue_bytes < l.max_event_bytes {
                return bad(&format!(
                    "mirror.queue_bytes ({}) must be at least limits.max_event_bytes ({}), or the largest events could never be mirrored",
                    m.queue_bytes, l.max_event_bytes
                ));
            }
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

    const BOTH_FORMS: &str = r#"
        [limits]
        max_events_per_request = 500
        [auth]
        tokens = [
            "plain-token-0123456789",
            { token = "web-token-0123456789", name = "web", sources = ["web-1", "web-*"] },
            { token = "fast-token-0123456789", events_per_sec = 5000, burst_events = 20000 },
            { token = "slow-token-0123456789", events_per_sec = 100 },
        ]
    "#;

    #[test]
    fn tokens_are_strings_or_tables() {
        let mut c = Config::from_toml_str(BOTH_FORMS).expect("both forms parse");
        c.validate().expect("and are valid");
        let t = &c.auth.tokens;
        assert_eq!(t.len(), 4);
        assert_eq!(t[0], TokenConfig::new("plain-token-0123456789"));
        assert_eq!(
            t[1],
            TokenConfig::new("web-token-0123456789").with_name("web").with_sources(["web-1", "web-*"])
        );
        assert_eq!((t[2].events_per_sec, t[2].effective_burst(&c.limits)), (Some(5000), Some(20000)));
        // burst_events defaults to the larger of the rate and the most events per request.
        assert_eq!(t[3].effective_burst(&c.limits), Some(500));
        assert_eq!(TokenConfig::new("x").with_rate(800, None).effective_burst(&c.limits), Some(800));
        assert_eq!(t[0].effective_burst(&c.limits), None, "unset = no limit");
        assert_eq!((t[0].label(0), t[1].label(1)), ("auth.tokens[0]".to_owned(), "web".to_owned()));
        assert!(!format!("{c:?}").contains("token-0123456789"), "Debug never shows a token");
        // EVENT_SERVICE_TOKENS adds unbound tokens after the file's.
        c.add_unbound_tokens(" env-token-0123456789 ,, other-env-token-0123 ");
        assert_eq!(c.auth.tokens.len(), 6);
        assert_eq!(c.auth.tokens[4], TokenConfig::new("env-token-0123456789"));
        assert_eq!(c.auth.tokens[5].sources, None);
        c.validate().expect("still valid");
    }

    #[test]
    fn unknown_keys_of_a_token_table_are_named() {
        let text = "[auth]\ntokens = [{ token = \"web-token-0123456789\", sorces = [\"web-1\"] }]";
        let e = Config::from_toml_str(text).expect_err("unknown key").to_string();
        assert!(e.contains("unknown field `sorces`"), "{e}");
        let e = Config::from_toml_str("[auth]\ntokens = [{ sources = [\"web-1\"] }]").expect_err("no token");
        assert!(e.to_string().contains("missing field `token`"), "{e}");
        let e = Config::from_toml_str("[auth]\ntokens = [5]").expect_err("a number").to_string();
        assert!(e.contains("a token string or a table"), "{e}");
    }

    #[test]
    fn bad_token_tables_are_refused_with_the_reason() {
        for (table, want) in [
            ("{ token = \"web-token-0123456789\", sources = [] }", "auth.tokens[0]: sources is empty"),
            ("{ token = \"web-token-0123456789\", sources = [\"\"] }", "empty source pattern"),
            ("{ token = \"web-token-0123456789\", sources = [\"w*b\"] }", "`*` only at the end"),
            ("{ token = \"web-token-0123456789\", events_per_sec = 0 }", "events_per_sec must be at least 1"),
            (
                "{ token = \"web-token-0123456789\", events_per_sec = 5, burst_events = 0 }",
                "burst_events must be at least 1",
            ),
            ("{ token = \"web-token-0123456789\", burst_events = 5 }", "burst_events needs events_per_sec"),
            ("{ token = \"short\", sources = [\"a\"] }", "16 characters"),
            ("{ token = \"web-token-0123456789\", name = \"a b\" }", "auth.tokens[0]: name `a b`"),
        ] {
            let c = Config::from_toml_str(&format!("[auth]\ntokens = [{table}]")).expect(table);
            let e = c.validate().expect_err(table).to_string();
            assert!(e.contains(want), "{table}: {e}");
            assert!(!e.contains("web-token-0123456789"), "the token is never in a message: {e}");
        }
        let dup = "[auth]\ntokens = [\"same-token-0123456789\", { token = \"same-token-0123456789\", sources = [\"a\"] }]";
        let e = Config::from_toml_str(dup).expect("parses").validate().expect_err("duplicate").to_string();
        assert!(e.contains("auth.tokens[0] and auth.tokens[1] are the same token"), "{e}");
        let names = "[auth]\ntokens = [{ token = \"one-token-0123456789\", name = \"web\" }, { token = \"two-token-0123456789\", name = \"web\" }]";
        let e = Config::from_toml_str(names).expect("parses").validate().expect_err("same name").to_string();
        assert!(e.contains("name `web` is used twice"), "{e}");
    }

    #[test]
    fn the_commented_token_example_of_the_shipped_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/event-service.toml");
        let text = std::fs::read_to_string(path).expect("config/event-service.toml");
        let example: String = text
            .lines()
            .skip_while(|l| !l.starts_with("# tokens = ["))
            .take_while(|l| l.starts_with("# "))
            .map(|l| format!("{}\n", &l[2..]))
            .collect();
        assert!(example.ends_with("]\n"), "the example is there: {example}");
        let c = Config::from_toml_str(&format!("[auth]\n{example}")).expect("the example parses");
        c.validate().expect("and is valid");
        assert_eq!(c.auth.tokens.len(), 2);
        assert_eq!(c.auth.tokens[1].effective_burst(&c.limits), Some(20000));
    }

    #[test]
    fn mirror_queue_limits_have_defaults_and_are_checked() {
        let c =
            Config::from_toml_str("[auth]\nallow_unauthenticated = true\n[mirror]\ntopic_prefix = \"x-\"")
                .expect("parses");
        let m = c.mirror.as_ref().expect("mirror");
        assert_eq!((m.queue_events, m.queue_bytes), (10_000, 16 * 1024 * 1024));
        c.validate().expect("valid");
        for (text, what) in [
            ("queue_events = 0", "mirror.queue_events must be at least 1"),
            ("queue_bytes = 1000", "mirror.queue_bytes (1000) must be at least limits.max_event_bytes"),
        ] {
            let c = Config::from_toml_str(&format!("[auth]\nallow_unauthenticated = true\n[mirror]\n{text}"))
                .expect("parses");
            let e = c.validate().expect_err(text).to_string();
            assert!(e.contains(what), "{e}");
        }
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
