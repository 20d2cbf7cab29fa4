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
    /// Hours open here (events buffered, being written, or written and not yet closed).
    pub open_hours: Gauge,
    /// Written ids held in memory by the open hours' dedup caches (bounded by
    /// `close.dedup_cache_ids` per bucket).
    pub dedup_cached_ids: Gauge,
    /// Seconds the watermark is behind the clock.
    pub watermark_lag_seconds: Gauge,
    /// Age in seconds of the oldest message received and not yet acknowledged.
    pub oldest_unacked_seconds: Gauge,
    /// Messages received from the subscriptions (redeliveries included).
    pub messages_received: Counter,
    /// Events whose time was more than `close.max_future_secs` ahead of the clock.
    pub events_future: Counter,
    /// Events whose time was more than `close.max_event_age_hours` behind the clock.
    pub events_too_old: Counter,
    /// Events of a part an hour was closed without (written after its seal), re-routed as
    /// late events.
    pub events_rerouted: Counter,
    /// Closes that failed (retried with backoff; other hours go on).
    pub close_failures: Counter,
    /// Hours whose last close failed.
    pub hours_failing: Gauge,
    /// Deliveries held (lease extended) while a storage check they need fails.
    pub deliveries_parked: Gauge,
    /// Heartbeats that could not be written or read.
    pub heartbeat_failures: Counter,
    /// Live exporter processes, this one included.
    pub fleet_processes: Gauge,
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
            open_hours: reg!(
                "open_hours",
                "Hours open here (buffered, being written, or written and not closed)",
                Gauge::default()
            ),
            dedup_cached_ids: reg!(
                "dedup_cached_ids",
                "Written ids held in memory by the open hours' dedup caches",
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
            messages_received: reg!("messages_received", "Messages received", Counter::default()),
            events_future: reg!(
                "events_future",
                "Events dated too far ahead, placed at their receive time",
                Counter::default()
            ),
            events_too_old: reg!(
                "events_too_old",
                "Events dated too far back, placed as late events",
                Counter::default()
            ),
            events_rerouted: reg!(
                "events_rerouted",
                "Events of a part left out of its closed hour, re-routed as late",
                Counter::default()
            ),
            close_failures: reg!("close_failures", "Failed closes (retried)", Counter::default()),
            hours_failing: reg!("hours_failing", "Hours whose last close failed", Gauge::default()),
            deliveries_parked: reg!(
                "deliveries_parked",
                "Deliveries held while a storage check fails",
                Gauge::default()
            ),
            heartbeat_failures: reg!(
                "heartbeat_failures",
                "Heartbeats not written or read",
                Counter::default()
            ),
            fleet_processes: reg!("fleet_processes", "Live exporter processes", Gauge::default()),
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
