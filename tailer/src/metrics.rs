//! Prometheus metrics of the tailer (prefix `tailer_`), served at `/metrics` when
//! `metrics_listen` is set, and readable in-process through [`Tailer::metrics`](crate::Tailer::metrics).

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels naming why lines were skipped or events rejected.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// `too_long`, `malformed`, `tag_mismatch` (another program's line), `blank_line`,
    /// `empty_payload`; for rejections the
    /// service's rejection kind, e.g. `missing_field`.
    pub reason: String,
}

/// Labels of request counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    /// HTTP status code, or `error` for a transport error or timeout.
    pub status: String,
}

/// Labels of per-file gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathLabels {
    /// The file's path.
    pub path: String,
}

/// Every metric the tailer exports.
#[derive(Debug)]
#[non_exhaustive]
pub struct Metrics {
    registry: Registry,
    /// Complete lines read.
    pub lines_read: Counter,
    /// Bytes read from files.
    pub bytes_read: Counter,
    /// Lines that did not become events, by reason.
    pub lines_skipped: Family<ReasonLabels, Counter>,
    /// Lines with invalid UTF-8, sent with U+FFFD in place of the bad bytes.
    pub lines_invalid_utf8: Counter,
    /// Unfinished last lines of rotated or deleted files, sent as lines.
    pub partial_lines: Counter,
    /// Events handed to the sender (each once, however often it is retried).
    pub events_sent: Counter,
    /// Events the service accepted.
    pub events_acked: Counter,
    /// Events the service answered as retryable, each time (sent again on their own).
    pub events_retryable: Counter,
    /// Events the service rejected.
    pub events_rejected: Counter,
    /// Events the service rejected, by rejection kind.
    pub events_rejected_by_kind: Family<ReasonLabels, Counter>,
    /// Requests by status.
    pub requests: Family<StatusLabels, Counter>,
    /// Requests retried.
    pub retries: Counter,
    /// Answers that were not the event-service's own for the request (`200 {}`, an HTML
    /// page, a proxy's error, a partial or truncated answer): nothing acknowledged, retried.
    pub non_answers: Counter,
    /// Request latency, seconds.
    pub request_seconds: Histogram,
    /// Requests in flight.
    pub in_flight_requests: Gauge,
    /// Seconds reading was paused because every request slot was busy (service push-back).
    pub read_paused_seconds: Counter<f64, AtomicU64>,
    /// Files being read.
    pub files_watched: Gauge,
    /// Expansions of the globs (one every `read.glob_interval_ms`, and one after a truncation).
    pub scans: Counter,
    /// Files that left their path (rotated by rename, deleted) and were read to their end.
    pub files_released: Counter,
    /// Truncations detected (copytruncate or a truncated file).
    pub truncations: Counter,
    /// Files that start like a followed file and were left undecided (a copy being made, or a
    /// new file so far equal to the start of another), each counted once.
    pub fingerprint_collisions: Counter,
    /// Copies (copytruncate) no longer than what was read of their original: nothing new in them.
    pub short_copies: Counter,
    /// Bytes of each file not yet acknowledged.
    pub lag_bytes: Family<PathLabels, Gauge>,
    /// Checkpoints made durable.
    pub checkpoint_writes: Counter,
    /// Checkpoint writes that failed (e.g. a full disk); retried at the next interval.
    pub checkpoint_failures: Counter,
    lag_paths: Mutex<HashSet<String>>,
}

impl Metrics {
    /// Creates and registers every metric.
    pub(crate) fn new() -> Self {
        let mut r = Registry::with_prefix("tailer");
        macro_rules! reg {
            ($name:literal, $help:literal, $metric:expr) => {{
                let m = $metric;
                r.register($name, $help, m.clone());
                m
            }};
        }
        let lines_read = reg!("lines_read", "Complete lines read", Counter::default());
        let bytes_read = reg!("bytes_read", "Bytes read from files", Counter::default());
        let lines_skipped =
            reg!("lines_skipped", "Lines that did not become events, by reason", Family::default());
        let lines_invalid_utf8 =
            reg!("lines_invalid_utf8", "Lines with invalid UTF-8 (sent with U+FFFD)", Counter::default());
        let partial_lines =
            reg!("partial_lines", "Unfinished last lines of released files, sent", Counter::default());
        let events_sent = reg!("events_sent", "Events handed to the sender", Counter::default());
        let events_acked = reg!("events_acked", "Events accepted by the event-service", Counter::default());
        let events_retryable = reg!(
            "events_retryable",
            "Events the event-service answered as retryable (sent again on their own)",
            Counter::default()
        );
        let events_rejected =
            reg!("events_rejected", "Events rejected by the event-service", Counter::default());
        let events_rejected_by_kind = reg!(
            "events_rejected_by_kind",
            "Events rejected by the event-service, by rejection kind",
            Family::default()
        );
        let requests = reg!("requests", "Requests to the event-service by status", Family::default());
        let retries = reg!("retries", "Requests retried", Counter::default());
        let non_answers = reg!(
            "non_answers",
            "Answers not the event-service's own for the request (retried)",
            Counter::default()
        );
        let request_seconds =
            reg!("request_seconds", "Request latency", Histogram::new(exponential_buckets(0.001, 2.0, 16)));
        let in_flight_requests = reg!("in_flight_requests", "Requests in flight", Gauge::default());
        let read_paused_seconds = reg!(
            "read_paused_seconds",
            "Seconds reading waited for a free request slot",
            Counter::<f64, AtomicU64>::default()
        );
        let files_watched = reg!("files_watched", "Files being read", Gauge::default());
        let scans = reg!("scans", "Expansions of the globs", Counter::default());
        let files_released =
            reg!("files_released", "Files that left their path and were read to the end", Counter::default());
        let truncations = reg!("truncations", "Truncations detected", Counter::default());
        let fingerprint_collisions = reg!(
            "fingerprint_collisions",
            "Files starting like a followed file, left undecided until they grow",
            Counter::default()
        );
        let short_copies = reg!(
            "short_copies",
            "Copies of truncated files no longer than what was read of them (nothing new)",
            Counter::default()
        );
        let lag_bytes = reg!("lag_bytes", "Bytes of a file not yet acknowledged", Family::default());
        let checkpoint_writes = reg!("checkpoint_writes", "Checkpoints made durable", Counter::default());
        let checkpoint_failures =
            reg!("checkpoint_failures", "Checkpoint writes that failed", Counter::default());
        Metrics {
            registry: r,
            lines_read,
            bytes_read,
            lines_skipped,
            lines_invalid_utf8,
            partial_lines,
            events_sent,
            events_acked,
            events_retryable,
            events_rejected,
            events_rejected_by_kind,
            requests,
            retries,
            non_answers,
            request_seconds,
            in_flight_requests,
            read_paused_seconds,
            files_watched,
            scans,
            files_released,
            truncations,
            fingerprint_collisions,
            short_copies,
            lag_bytes,
            checkpoint_writes,
            checkpoint_failures,
            lag_paths: Mutex::new(HashSet::new()),
        }
    }

    /// Counts a skipped line.
    pub(crate) fn skipped(&self, reason: &str, n: u64) {
        if n > 0 {
            self.lines_skipped.get_or_create(&ReasonLabels { reason: reason.into() }).inc_by(n);
        }
    }

    /// Lines skipped for `reason` so far.
    pub fn skipped_count(&self, reason: &str) -> u64 {
        self.lines_skipped.get_or_create(&ReasonLabels { reason: reason.into() }).get()
    }

    /// Replaces the per-file lag gauges.
    pub(crate) fn set_lag<'a>(&self, lag: impl Iterator<Item = (&'a std::path::Path, u64)>) {
        let mut known = self.lag_paths.lock().unwrap_or_else(|e| e.into_inner());
        let mut now = HashSet::new();
        for (path, bytes) in lag {
            let path = path.to_string_lossy().into_owned();
            self.lag_bytes.get_or_create(&PathLabels { path: path.clone() }).set(bytes as i64);
            now.insert(path);
        }
        for gone in known.difference(&now) {
            self.lag_bytes.remove(&PathLabels { path: gone.clone() });
        }
        *known = now;
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
