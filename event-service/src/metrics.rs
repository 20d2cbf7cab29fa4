//! Prometheus metrics of the service, served at `/metrics` in the text format.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of request counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    /// HTTP status code.
    pub status: u16,
}

/// Labels of event counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabels {
    /// Event type.
    pub event_type: String,
}

/// Labels of rejection counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    /// Event type: a name from the registry, or `unknown` for any other (never a client's
    /// string).
    pub event_type: String,
    /// Rejection class, e.g. `missing_field`.
    pub reason: String,
}

/// Labels of the registry reload counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `ok` or `error`.
    pub result: String,
}

/// Labels of per-token refusals; both values come from the configuration, never a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    /// The token's configured `name`, else `auth.tokens[<index>]`.
    pub token: String,
    /// `source_not_allowed`, `rate_limited` or `over_burst`.
    pub reason: String,
}

impl TokenLabels {
    /// Labels for `token` refused for `reason`.
    pub fn new(token: &str, reason: &str) -> Self {
        TokenLabels { token: token.to_owned(), reason: reason.to_owned() }
    }
}

/// Labels of the connections-closed counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// `header_timeout` or `idle_timeout`.
    pub reason: String,
}

impl ReasonLabels {
    /// Labels for `reason`.
    pub fn new(reason: &str) -> Self {
        ReasonLabels { reason: reason.to_owned() }
    }
}

/// Every metric the service exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests by status code.
    pub requests: Family<StatusLabels, Counter>,
    /// Events accepted (published and confirmed) by type.
    pub accepted: Family<TypeLabels, Counter>,
    /// Events rejected by type and reason class.
    pub rejected: Family<RejectLabels, Counter>,
    /// Events answered as retryable (their publish or dead-letter publish failed), by type.
    pub retryable: Family<TypeLabels, Counter>,
    /// Events sent to the dead-letter topic.
    pub dead_lettered: Counter,
    /// Events mirrored (dark-loading) and mirror failures.
    pub mirrored: Counter,
    /// Mirror publishes that failed.
    pub mirror_failures: Counter,
    /// Events not mirrored because the mirror's queue was full (`mirror.queue_events` or
    /// `mirror.queue_bytes`) or the mirror was shut down.
    pub mirror_dropped: Counter,
    /// Events waiting in the mirror's queue.
    pub mirror_queue: Gauge,
    /// Time from the first publish of a request to Pub/Sub's confirmation of its last event.
    pub publish_latency: Histogram,
    /// Requests being processed.
    pub in_flight_requests: Gauge,
    /// Request body bytes being processed.
    pub in_flight_bytes: Gauge,
    /// Messages accepted by publishers and not yet confirmed (the publish queue depth).
    pub publish_queue: Gauge,
    /// Registry reloads by result.
    pub registry_reloads: Family<ResultLabels, Counter>,
    /// Requests refused for their token's bindings or rate, by token and reason.
    pub token_refusals: Family<TokenLabels, Counter>,
    /// Open connections (TLS handshakes included).
    pub connections: Gauge,
    /// The connection cap (`server.max_connections`).
    pub connections_max: Gauge,
    /// Times the connection cap was reached and accepting paused until a connection closed.
    pub connection_cap_reached: Counter,
    /// Connections the service closed for a timeout, by reason.
    pub connections_closed: Family<ReasonLabels, Counter>,
    /// Topics (registry and dead-letter) that Pub/Sub said do not exist at the last check.
    pub topics_missing: Gauge,
    /// Topics whose last check failed otherwise (no answer, 5xx, permission denied).
    pub topics_check_failed: Gauge,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("event_service");
        let requests = Family::<StatusLabels, Counter>::default();
        registry.register("http_requests", "Ingest requests by status", requests.clone());
        let accepted = Family::<TypeLabels, Counter>::default();
        registry.register("events_accepted", "Events published and confirmed, by type", accepted.clone());
        let rejected = Family::<RejectLabels, Counter>::default();
        registry.register("events_rejected", "Events rejected, by type and reason", rejected.clone());
        let retryable = Family::<TypeLabels, Counter>::default();
        registry.register(
            "events_retryable",
            "Events answered as retryable (publish or dead-letter publish failed), by type",
            retryable.clone(),
        );
        let dead_lettered = Counter::default();
        registry.register(
            "events_dead_lettered",
            "Rejected events sent to the dead-letter topic",
            dead_lettered.clone(),
        );
        let mirrored = Counter::default();
        registry.register("events_mirrored", "Events mirrored to the dark-loading target", mirrored.clone());
        let mirror_failures = Counter::default();
        registry.register("mirror_failures", "Mirror publishes that failed", mirror_failures.clone());
        let mirror_dropped = Counter::default();
        registry.register(
            "mirror_dropped",
            "Events not mirrored because the mirror's queue was full (ingest never waits for the mirror)",
            mirror_dropped.clone(),
        );
        let mirror_queue = Gauge::default();
        registry.register(
            "mirror_queue_events",
            "Events waiting in the mirror's queue",
            mirror_queue.clone(),
        );
        let publish_latency = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "publish_latency_seconds",
            "Time from a request's first publish to the confirmation of its last event",
            publish_latency.clone(),
        );
        let in_flight_requests = Gauge::default();
        registry.register("in_flight_requests", "Requests being processed", in_flight_requests.clone());
        let in_flight_bytes = Gauge::default();
        registry.register("in_flight_bytes", "Request body bytes being processed", in_flight_bytes.clone());
        let publish_queue = Gauge::default();
        registry.register(
            "publish_queue_messages",
            "Messages queued in publishers, not yet confirmed",
            publish_queue.clone(),
        );
        let registry_reloads = Family::<ResultLabels, Counter>::default();
        registry.register("registry_reloads", "Registry reloads by result", registry_reloads.clone());
        let token_refusals = Family::<TokenLabels, Counter>::default();
        registry.register(
            "token_refusals",
            "Requests refused for their token's sources (403), burst (413) or rate (429), by token",
            token_refusals.clone(),
        );
        let connections = Gauge::default();
        registry.register("connections", "Open connections, TLS handshakes included", connections.clone());
        let connections_max = Gauge::default();
        registry.register(
            "connections_max",
            "The connection cap (server.max_connections)",
            connections_max.clone(),
        );
        let connection_cap_reached = Counter::default();
        registry.register(
            "connection_cap_reached",
            "Times the connection cap was reached and accepting paused until a connection closed",
            connection_cap_reached.clone(),
        );
        let connections_closed = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "connections_closed",
            "Connections closed by the service for a timeout, by reason",
            connections_closed.clone(),
        );
        let topics_missing = Gauge::default();
        registry.register(
            "topics_missing",
            "Topics that Pub/Sub said do not exist at the last readiness check",
            topics_missing.clone(),
        );
        let topics_check_failed = Gauge::default();
        registry.register(
            "topics_check_failed",
            "Topics whose last readiness check failed for another reason",
            topics_check_failed.clone(),
        );
        Arc::new(Metrics {
            registry,
            requests,
            accepted,
            rejected,
            retryable,
            dead_lettered,
            mirrored,
            mirror_failures,
            mirror_dropped,
            mirror_queue,
            publish_latency,
            in_flight_requests,
            in_flight_bytes,
            publish_queue,
            registry_reloads,
            token_refusals,
            connections,
            connections_max,
            connection_cap_reached,
            connections_closed,
            topics_missing,
            topics_check_failed,
        })
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
