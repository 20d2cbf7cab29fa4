//! Prometheus metrics of the exporter (prefix `exporter_`), served at `/metrics` when
//! `metrics_listen` is set.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Every metric the exporter exports.
#[derive(Debug)]
#[non_exhaustive]
pub struct Metrics {
    registry: Registry,
    /// Events written to part files (each id once per bucket).
    pub events_written: Counter,
    /// Duplicates dropped (redeliveries and re-sends of an id already buffered or written).
    pub duplicates_dropped: Counter,
    /// Events for an hour already closed, written to the earliest open hour of their type.
    pub late_events: Counter,
    /// Bytes of part and data files written.
    pub bytes_written: Counter,
    /// Part-file writes that failed and were retried.
    pub write_failures: Counter,
    /// Hours closed (manifests written by this replica).
    pub hours_closed: Counter,
    /// Messages that were not a valid event of a registered type (acknowledged and logged),
    /// or events that could not be encoded (kept as protobuf under `_rejected/`).
    pub undecodable: Counter,
    /// Buckets open (events buffered, being written, or written and not yet closed).
    pub open_buckets: Gauge,
    /// Written ids held in memory by the open buckets' dedup caches (bounded by
    /// `close.dedup_cache_ids` per bucket).
    pub dedup_cached_ids: Gauge,
    /// Seconds the watermark is behind the clock.
    pub watermark_lag_seconds: Gauge,
    /// Age in seconds of the oldest message received and not yet acknowledged.
    pub oldest_unacked_seconds: Gauge,
    /// Seconds since the end of the oldest hour not yet closed (alert when it is far above
    /// the allowed lateness: late data, the reference team's first early warning).
    pub oldest_open_hour_overdue_seconds: Gauge,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut r = Registry::with_prefix("exporter");
        macro_rules! reg {
            ($name:literal, $help:literal, $m:expr) => {{
                let m = $m;
                r.register($name, $help, m.clone());
                m
            }};
        }
        Metrics {
            events_written: reg!("events_written", "Events written to part files", Counter::default()),
            duplicates_dropped: reg!("duplicates_dropped", "Duplicate events dropped", Counter::default()),
            late_events: reg!("late_events", "Events for closed hours, written late", Counter::default()),
            bytes_written: reg!("bytes_written", "Bytes of files written", Counter::default()),
            write_failures: reg!("write_failures", "Failed writes, retried", Counter::default()),
            hours_closed: reg!("hours_closed", "Hours closed by this replica", Counter::default()),
            undecodable: reg!(
                "undecodable_messages",
                "Messages that were not valid events",
                Counter::default()
            ),
            open_buckets: reg!("open_buckets", "Buckets not yet closed", Gauge::default()),
            dedup_cached_ids: reg!(
                "dedup_cached_ids",
                "Written ids held in memory by the open buckets' dedup caches",
                Gauge::default()
            ),
            watermark_lag_seconds: reg!(
                "watermark_lag_seconds",
                "Watermark behind the clock",
                Gauge::default()
            ),
            oldest_unacked_seconds: reg!(
                "oldest_unacked_seconds",
                "Age of the oldest unacknowledged message",
                Gauge::default()
            ),
            oldest_open_hour_overdue_seconds: reg!(
                "oldest_open_hour_overdue_seconds",
                "Seconds since the end of the oldest hour not yet closed",
                Gauge::default()
            ),
            registry: r,
        }
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
