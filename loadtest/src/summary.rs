//! The final summary: printed for people, and as one JSON object with `--json`.

use serde::Serialize;

/// What a run measured. Field names are the documented JSON keys.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// `publish` or `consume`.
    pub mode: String,
    /// `ours`, `official` or `raw`.
    pub client: String,
    /// emulator, null, pubsub or the URL.
    pub target: String,
    /// The topics published to (each with a `<topic>-loadtest` subscription, except on the
    /// null sink).
    pub topics: Vec<String>,
    /// Messages per second offered (the peak for a profile); 0 = unpaced (`max`).
    pub offered_rate: f64,
    /// Messages confirmed per second over the run (until the last confirmation).
    pub achieved_rate: f64,
    /// Messages confirmed by the server.
    pub published: u64,
    /// Messages whose publish failed.
    pub failed: u64,
    /// Seconds from the first publish to the last confirmation.
    pub seconds: f64,
    /// CPU seconds of this process (publisher and, for consume, subscriber).
    pub cpu_seconds: f64,
    /// CPU nanoseconds per confirmed message.
    pub cpu_ns_per_msg: f64,
    /// CPU seconds of the null sink (target null), for reference.
    pub sink_cpu_seconds: Option<f64>,
    /// Publish latency (publish call to confirmation), whole run.
    pub p50_ms: f64,
    /// See `p50_ms`.
    pub p99_ms: f64,
    /// Peak resident memory of this process.
    pub peak_rss_bytes: u64,
    /// Request bytes sent (after gzip).
    pub wire_bytes: u64,
    /// Request bytes before gzip.
    pub body_bytes: u64,
    /// Payload bytes of the confirmed messages.
    pub payload_bytes: u64,
    /// Publish requests made, and retried.
    pub requests: u64,
    /// See `requests`.
    pub retries: u64,
    /// Where the time went: total seconds publish calls waited for flow-control space ...
    pub flow_control_wait_seconds: f64,
    /// ... and the summed duration of publish requests (many run at once).
    pub request_seconds: f64,
    /// Mean duration of one publish request, ms.
    pub mean_request_ms: f64,
    /// Messages received (consume).
    pub received: Option<u64>,
    /// Confirmed messages never received (consume).
    pub lost: Option<u64>,
    /// Extra copies received (consume).
    pub duplicates: Option<u64>,
    /// End-to-end latency (send to receive), ms (consume).
    pub e2e_p50_ms: Option<f64>,
    /// See `e2e_p50_ms`.
    pub e2e_p99_ms: Option<f64>,
}

impl Summary {
    /// The summary for people.
    pub fn render(&self) -> String {
        let mut s = format!(
            "{} {} -> {}: {} published ({} failed) in {:.1} s = {:.0} msg/s (offered {})\n\
             client CPU {:.2} s = {:.0} ns/msg; peak RSS {:.1} MiB; publish latency p50 {:.1} ms, p99 {:.1} ms\n\
             wire {:.1} MB for {:.1} MB of payload in {} requests ({} retried)\n\
             time: waiting for flow-control space {:.1} s, publish requests {:.1} s in total ({:.1} ms each)\n",
            self.mode,
            self.client,
            self.target,
            self.published,
            self.failed,
            self.seconds,
            self.achieved_rate,
            if self.offered_rate > 0.0 {
                format!("{:.0} msg/s", self.offered_rate)
            } else {
                "max".to_owned()
            },
            self.cpu_seconds,
            self.cpu_ns_per_msg,
            self.peak_rss_bytes as f64 / (1 << 20) as f64,
            self.p50_ms,
            self.p99_ms,
            self.wire_bytes as f64 / 1e6,
            self.payload_bytes as f64 / 1e6,
            self.requests,
            self.retries,
            self.flow_control_wait_seconds,
            self.request_seconds,
            self.mean_request_ms,
        );
        if self.flow_control_wait_seconds > self.seconds * 0.5 {
            s.push_str(
                "the producers mostly waited for flow-control space: the server confirms slower than offered, \
                 so it, not the client, is the limit\n",
            );
        }
        if let (Some(r), Some(l), Some(d)) = (self.received, self.lost, self.duplicates) {
            s.push_str(&format!(
                "received {r}, lost {l}, duplicates {d}; end-to-end latency p50 {:.1} ms, p99 {:.1} ms\n",
                self.e2e_p50_ms.unwrap_or(0.0),
                self.e2e_p99_ms.unwrap_or(0.0)
            ));
        }
        s
    }
}
