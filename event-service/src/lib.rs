//! The event-service: stateless HTTP ingest in front of Pub/Sub.
//!
//! `POST /v1/events` takes a batch of events as a JSON array, NDJSON or a protobuf
//! `EventBatch` (optionally gzipped), checks each against the event-type registry, publishes
//! the valid ones to their type's topic with the attributes `event_id`, `event_type` and
//! `event_time`, and answers only when Pub/Sub confirmed every one it calls accepted: 200 with
//! the number accepted, each rejected event's index and reason, and each retryable event's
//! index (its topic's publish, or its dead-letter publish, failed: the sender re-sends only
//! those), or 503 when no event could be published, so the sender retries the request
//! ([`event_model::ingest`] is the contract). Limits on body size (decompressed), events per
//! request (counted while splitting) and bytes in flight keep memory bounded (413 / 429 with
//! `Retry-After`); timeouts on request headers and idle connections and a cap on open
//! connections keep slow or idle clients from holding the service (`[server]`). `/healthz`,
//! `/readyz` (ready once Pub/Sub answered the topic checks; a missing topic is reported there
//! and in a gauge, not made fatal) and `/metrics` (Prometheus) serve operators.
//!
//! ```no_run
//! # async fn run() -> Result<(), event_service::ServiceError> {
//! use event_service::{Config, Service};
//!
//! let mut config = Config::default();
//! config.auth.allow_unauthenticated = true;
//! let service = Service::start(config).await?;
//! println!("listening on {}", service.local_addr());
//! service.shutdown().await;
//! # Ok(()) }
//! ```

mod admin;
mod auth;
mod body;
mod budget;
mod config;
mod error;
mod ingest;
mod listener;
mod metrics;
mod mirror;
mod publish;
mod server;
mod state;
mod tls;

pub use admin::{ApplyReport, DEFAULT_ACK_DEADLINE_SECS, apply_registry, apply_registry_with};
pub use body::{Encoding, RawEvent, SplitError, split_body};
pub use config::{
    AuthConfig, Config, LimitsConfig, MirrorConfig, PublisherSettings, ServerConfig, TlsConfig, TokenConfig,
};
pub use error::ServiceError;
pub use ingest::check;
pub use metrics::Metrics;
pub use mirror::Mirror;
pub use publish::Checked;
pub use server::{Service, router, run};
pub use state::{AppState, Readiness};
pub use tls::{HANDSHAKE_TIMEOUT, MAX_HANDSHAKES};
