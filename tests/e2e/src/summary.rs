//! The outcome of a pipeline run: a readable summary and one JSON object.

use serde::Serialize;

use crate::loggen::BadKind;
use crate::pipeline::{Component, Pipeline, metric_sum};
use crate::verify::Verification;

/// What the components counted about the bad input.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Rejections {
    /// Lines the tailer skipped as malformed.
    pub malformed: u64,
    /// Lines the tailer skipped as longer than `max_line_bytes`.
    pub too_long: u64,
    /// Events the event-service rejected (unknown type, missing field).
    pub rejected_by_service: u64,
    /// Requests the event-service refused for a missing or wrong token.
    pub unauthorized_requests: u64,
}

impl Rejections {
    /// Reads the counters from the components' `/metrics`.
    pub async fn scrape(p: &Pipeline) -> crate::Result<Rejections> {
        let tailer = p.metrics_text(Component::Tailer).await?;
        let service = p.metrics_text(Component::Service).await?;
        Ok(Rejections {
            malformed: metric_sum(&tailer, "tailer_lines_skipped_total", Some("reason=\"malformed\"")) as u64,
            too_long: metric_sum(&tailer, "tailer_lines_skipped_total", Some("reason=\"too_long\"")) as u64,
            rejected_by_service: metric_sum(&tailer, "tailer_events_rejected_total", None) as u64,
            unauthorized_requests: metric_sum(
                &service,
                "event_service_http_requests_total",
                Some("status=\"401\""),
            ) as u64,
        })
    }

    /// Lines that did not become exported events.
    pub fn total(&self) -> u64 {
        self.malformed + self.too_long + self.rejected_by_service
    }

    /// Whether these counts match the bad lines the sample wrote, kind by kind.
    pub fn match_written(&self, bad: &[BadKind]) -> bool {
        let n = |k: BadKind| bad.iter().filter(|b| **b == k).count() as u64;
        self.malformed == n(BadKind::Malformed)
            && self.too_long == n(BadKind::Huge)
            && self.rejected_by_service == n(BadKind::UnknownType) + n(BadKind::MissingField)
    }
}

/// The run's summary; its JSON form is the last line of `local-pipeline --json`.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Summary {
    /// Valid events written to the log.
    pub events_written: u64,
    /// Bad lines written to the log.
    pub bad_lines_written: u64,
    /// Valid events found in closed buckets.
    pub events_exported: u64,
    /// Valid events found in no closed bucket.
    pub lost: u64,
    /// Extra copies found.
    pub duplicates: u64,
    /// Events found that were never written.
    pub unexpected: u64,
    /// Events in the wrong bucket and not counted as late.
    pub misplaced: u64,
    /// Bad lines the components counted (skipped or rejected).
    pub rejected: u64,
    /// The same, by reason.
    pub rejections: Rejections,
    /// Whether the rejections match the bad lines written, kind by kind.
    pub rejections_match: bool,
    /// Late events counted by the manifests.
    pub late: u64,
    /// Closed hourly buckets.
    pub buckets_closed: u64,
    /// Data files listed by the manifests.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Manifest inconsistencies.
    pub manifest_errors: Vec<String>,
    /// Whether a folder reader (every file of a closed hour folder not starting with `_` or
    /// `.`) reads every event once and only what the manifests list, with no hour missing.
    pub folder_reader_ok: bool,
    /// Files in closed hour folders that no manifest lists.
    pub extra_files: Vec<String>,
    /// Extra copies a folder reader reads.
    pub folder_duplicates: u64,
    /// Hours without `_SUCCESS` between a type's first and last closed hour.
    pub missing_hours: Vec<String>,
    /// Exported events per second, from the first line written to the last part file written.
    pub events_per_sec: f64,
    /// Median end-to-end latency (line written → part file durably written), ms.
    pub e2e_p50_ms: Option<i64>,
    /// 99th percentile of the same, ms.
    pub e2e_p99_ms: Option<i64>,
    /// Seconds from the start of writing until every hour was closed.
    pub seconds_to_all_closed: f64,
    /// Where the buckets are (local storage).
    pub buckets_dir: String,
    /// Whether the run passed: nothing lost, duplicated, unexpected or misplaced, manifests
    /// consistent, bad lines counted.
    pub ok: bool,
}

impl Summary {
    /// Puts the pieces together.
    pub fn new(
        v: &Verification,
        bad: &[BadKind],
        rejections: Rejections,
        first_write_ms: i64,
        seconds_to_all_closed: f64,
        buckets_dir: String,
    ) -> Summary {
        let span = v.last_durable_ms.map(|l| (l - first_write_ms).max(1) as f64 / 1000.0);
        let rejections_match = rejections.match_written(bad);
        Summary {
            events_written: v.events_written,
            bad_lines_written: bad.len() as u64,
            events_exported: v.events_exported,
            lost: v.lost,
            duplicates: v.duplicates,
            unexpected: v.unexpected,
            misplaced: v.misplaced,
            rejected: rejections.total(),
            rejections_match,
            rejections,
            late: v.late,
            buckets_closed: v.buckets_closed,
            files: v.files,
            bytes: v.bytes,
            manifest_errors: v.manifest_errors.clone(),
            folder_reader_ok: v.folder_ok(),
            extra_files: v.extra_files.clone(),
            folder_duplicates: v.folder_duplicates,
            missing_hours: v.missing_hours.clone(),
            events_per_sec: span.map_or(0.0, |s| (v.events_exported as f64 / s).round()),
            e2e_p50_ms: v.latency_quantile_ms(0.5),
            e2e_p99_ms: v.latency_quantile_ms(0.99),
            seconds_to_all_closed,
            buckets_dir,
            ok: v.ok() && rejections_match,
        }
    }

    /// The summary for people.
    pub fn render(&self) -> String {
        let ms = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| format!("{:.2} s", v as f64 / 1000.0));
        let r = &self.rejections;
        let mut out = format!(
            "{verdict}\n\
             written   {w} events (+{b} bad lines)\n\
             exported  {e} events in {c} closed hourly buckets ({f} files, {mb:.1} MB)\n\
             lost {l}   duplicates {d}   unexpected {u}   misplaced {m}   late {late}\n\
             rejected  {rej} lines: malformed {rm}, too long {rt}, refused by the event-service {rs}{rmatch}\n\
             speed     {eps} events/s; end-to-end latency (line written -> part file written) p50 {p50}, p99 {p99}\n\
             all hours closed {closed:.1} s after writing started\n\
             buckets   {dir}  (each hour's _SUCCESS manifest lists its files)\n",
            verdict = if self.ok { "PASS: every event exactly once in a closed hour" } else { "FAIL" },
            w = self.events_written,
            b = self.bad_lines_written,
            e = self.events_exported,
            c = self.buckets_closed,
            f = self.files,
            mb = self.bytes as f64 / 1e6,
            l = self.lost,
            d = self.duplicates,
            u = self.unexpected,
            m = self.misplaced,
            late = self.late,
            rej = self.rejected,
            rm = r.malformed,
            rt = r.too_long,
            rs = r.rejected_by_service,
            rmatch = if self.rejections_match { "" } else { "  (does NOT match the bad lines written)" },
            eps = self.events_per_sec,
            p50 = ms(self.e2e_p50_ms),
            p99 = ms(self.e2e_p99_ms),
            closed = self.seconds_to_all_closed,
            dir = self.buckets_dir,
        );
        for e in &self.manifest_errors {
            out.push_str(&format!("manifest error: {e}\n"));
        }
        if !self.folder_reader_ok {
            out.push_str(&format!(
                "folder reader (every file of a closed hour folder): {} duplicates, {} files no manifest lists, \
                 {} hours without _SUCCESS\n",
                self.folder_duplicates,
                self.extra_files.len(),
                self.missing_hours.len()
            ));
        }
        out
    }
}
