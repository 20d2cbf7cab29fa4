//! Counters and latency histograms shared by the load generator's tasks, sampled once a second
//! into the series of the live display, the JSON summary and the HTML report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies are recorded in microseconds, up to an hour, 2 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("constant, valid bounds")
}

/// A latency histogram of the current second and of the whole run.
pub struct Latency {
    inner: Mutex<(Histogram<u64>, Histogram<u64>)>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency { inner: Mutex::new((histogram(), histogram())) }
    }
}

impl Latency {
    /// Records a batch of latencies in microseconds (one lock per batch).
    pub fn record(&self, micros: &[u64]) {
        let mut g = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for &us in micros {
            let us = us.max(1);
            let _ = g.0.record(us);
            let _ = g.1.record(us);
        }
    }

    /// p50 and p99 of the current second in ms (0 when empty), and starts a new second.
    pub fn take_second(&self) -> (f64, f64) {
        let mut g = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let q = quantiles(&g.0);
        g.0.reset();
        q
    }

    /// p50 and p99 of the whole run in ms.
    pub fn total(&self) -> (f64, f64) {
        quantiles(&self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).1)
    }
}

fn quantiles(h: &Histogram<u64>) -> (f64, f64) {
    if h.is_empty() {
        return (0.0, 0.0);
    }
    (h.value_at_quantile(0.5) as f64 / 1000.0, h.value_at_quantile(0.99) as f64 / 1000.0)
}

/// What one completion task saw: confirmations counted into the counters, their latencies
/// handed to the histogram 256 at a time (or when the task's queue is empty), the rest when
/// it is dropped.
pub struct Confirmations {
    counters: Arc<Counters>,
    latency: Arc<Latency>,
    batch: Vec<u64>,
}

impl Confirmations {
    /// A recorder into `counters` and `latency`.
    pub fn new(counters: Arc<Counters>, latency: Arc<Latency>) -> Self {
        Confirmations { counters, latency, batch: Vec::with_capacity(256) }
    }

    /// A message published at `started` was confirmed.
    pub fn confirmed(&mut self, started: Instant) {
        self.counters.published.fetch_add(1, Ordering::Relaxed);
        self.batch.push(started.elapsed().as_micros() as u64);
    }

    /// A message failed for good.
    pub fn failed(&self) {
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the latencies so far when 256 are collected or `idle` (nothing else waiting).
    pub fn flush_if(&mut self, idle: bool) {
        if self.batch.len() >= 256 || idle {
            self.latency.record(&self.batch);
            self.batch.clear();
        }
    }
}

impl Drop for Confirmations {
    fn drop(&mut self) {
        self.latency.record(&self.batch);
    }
}

/// Counters of a run.
#[derive(Default)]
pub struct Counters {
    /// Messages confirmed by the server.
    pub published: AtomicU64,
    /// Messages whose publish failed for good.
    pub failed: AtomicU64,
    /// Messages received (consume).
    pub received: AtomicU64,
}

impl Counters {
    /// (published, failed, received).
    pub fn get(&self) -> (u64, u64, u64) {
        (
            self.published.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.received.load(Ordering::Relaxed),
        )
    }
}

/// One second of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Second {
    /// Seconds since the start.
    pub t: u32,
    /// Rate offered in this second (messages/s), 0 when unpaced.
    pub offered: f64,
    /// Messages confirmed in this second.
    pub published: u64,
    /// Publishes failed in this second.
    pub failed: u64,
    /// Publish latency p50 / p99 (publish call to confirmation), ms.
    pub p50_ms: f64,
    /// See `p50_ms`.
    pub p99_ms: f64,
    /// Messages received in this second (consume).
    pub received: u64,
    /// End-to-end latency p50 / p99 (send to receive), ms (consume).
    pub e2e_p50_ms: f64,
    /// See `e2e_p50_ms`.
    pub e2e_p99_ms: f64,
}

/// Samples the counters once a second into [`Second`]s and prints a progress line.
pub struct Sampler {
    last: (u64, u64, u64),
    /// The series so far.
    pub series: Vec<Second>,
    quiet: bool,
}

impl Sampler {
    /// A sampler; with `quiet` nothing is printed.
    pub fn new(quiet: bool) -> Sampler {
        Sampler { last: (0, 0, 0), series: Vec::new(), quiet }
    }

    /// Takes the sample of second `t`.
    pub fn sample(&mut self, t: u32, offered: f64, c: &Counters, publish: &Latency, e2e: Option<&Latency>) {
        let now = c.get();
        let (p50, p99) = publish.take_second();
        let (e50, e99) = e2e.map_or((0.0, 0.0), Latency::take_second);
        let s = Second {
            t,
            offered,
            published: now.0 - self.last.0,
            failed: now.1 - self.last.1,
            p50_ms: p50,
            p99_ms: p99,
            received: now.2 - self.last.2,
            e2e_p50_ms: e50,
            e2e_p99_ms: e99,
        };
        self.last = now;
        if !self.quiet {
            let mut line = format!(
                "[{t:>4}s] published {:>9}/s  failed {:>5}  publish p50 {:>7.1} ms p99 {:>7.1} ms",
                s.published, s.failed, s.p50_ms, s.p99_ms
            );
            if e2e.is_some() {
                line.push_str(&format!(
                    "  received {:>9}/s  e2e p50 {:>7.1} ms p99 {:>7.1} ms",
                    s.received, e50, e99
                ));
            }
            eprintln!("{line}");
        }
        self.series.push(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_differences_and_quantiles_reset() {
        let c = Counters::default();
        let l = Latency::default();
        let mut s = Sampler::new(true);
        c.published.fetch_add(10, Ordering::Relaxed);
        l.record(&[1000, 2000, 3000]);
        s.sample(1, 0.0, &c, &l, None);
        c.published.fetch_add(5, Ordering::Relaxed);
        s.sample(2, 0.0, &c, &l, None);
        assert_eq!(s.series[0].published, 10);
        assert_eq!(s.series[1].published, 5);
        assert!((s.series[0].p50_ms - 2.0).abs() < 0.1, "{}", s.series[0].p50_ms);
        assert_eq!(s.series[1].p50_ms, 0.0, "a new second starts empty");
        assert!((l.total().1 - 3.0).abs() < 0.1);
    }
}
