//! Publisher counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A snapshot of a publisher's counters since it was created.
///
/// Services export these as metrics; the load test reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublisherStats {
    /// Messages the service confirmed.
    pub messages_published: u64,
    /// Messages that finally failed (after retries, or because their ordering key was paused).
    pub messages_failed: u64,
    /// Batches confirmed by the service.
    pub batches_published: u64,
    /// Batches that finally failed.
    pub batches_failed: u64,
    /// HTTP publish requests sent, retries included.
    pub requests: u64,
    /// Requests that were retries of a failed request.
    pub retries: u64,
    /// Body bytes of confirmed batches before compression.
    pub body_bytes: u64,
    /// Body bytes of confirmed batches as sent (after compression, when it applied).
    pub wire_bytes: u64,
    /// Messages accepted but not yet confirmed or failed (the queue depth).
    pub outstanding_messages: u64,
    /// Encoded bytes accepted but not yet confirmed or failed.
    pub outstanding_bytes: u64,
    /// How many publishes waited for flow control.
    pub flow_control_waits: u64,
    /// Total time publishes spent waiting for flow control.
    pub flow_control_wait: Duration,
    /// Total time spent in publish requests (sum over requests, concurrent ones overlap).
    pub request_time: Duration,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) messages_published: AtomicU64,
    pub(crate) messages_failed: AtomicU64,
    pub(crate) batches_published: AtomicU64,
    pub(crate) batches_failed: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) body_bytes: AtomicU64,
    pub(crate) wire_bytes: AtomicU64,
    pub(crate) request_nanos: AtomicU64,
}

pub(crate) fn add(counter: &AtomicU64, n: impl TryInto<u64>) {
    counter.fetch_add(n.try_into().unwrap_or(u64::MAX), Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self, outstanding: (usize, usize), waits: (u64, u64)) -> PublisherStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        PublisherStats {
            messages_published: get(&self.messages_published),
            messages_failed: get(&self.messages_failed),
            batches_published: get(&self.batches_published),
            batches_failed: get(&self.batches_failed),
            requests: get(&self.requests),
            retries: get(&self.retries),
            body_bytes: get(&self.body_bytes),
            wire_bytes: get(&self.wire_bytes),
            outstanding_messages: outstanding.0 as u64,
            outstanding_bytes: outstanding.1 as u64,
            flow_control_waits: waits.0,
            flow_control_wait: Duration::from_nanos(waits.1),
            request_time: Duration::from_nanos(get(&self.request_nanos)),
        }
    }
}
