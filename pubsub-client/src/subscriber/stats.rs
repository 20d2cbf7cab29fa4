//! Subscriber counters.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// A snapshot of a subscriber's counters since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriberStats {
    /// Messages received from pulls.
    pub received: u64,
    /// Messages acked by the caller.
    pub acked: u64,
    /// Messages nacked (by the caller, by dropping a delivery, or at shutdown).
    pub nacked: u64,
    /// Acks whose acknowledge request finally failed (those messages will be redelivered).
    pub ack_failures: u64,
    /// Nacks and lease extensions whose modifyAckDeadline request finally failed.
    pub modack_failures: u64,
    /// Lease extensions sent (message count).
    pub extensions: u64,
    /// Leases given up after the maximum extension.
    pub expired: u64,
    /// Pull requests answered.
    pub pulls: u64,
    /// Pull requests that failed.
    pub pull_errors: u64,
    /// Messages received and not yet acked or nacked.
    pub outstanding_messages: u64,
    /// Bytes received and not yet acked or nacked.
    pub outstanding_bytes: u64,
    /// Highest `outstanding_messages` seen.
    pub peak_outstanding_messages: u64,
    /// Highest `outstanding_bytes` seen.
    pub peak_outstanding_bytes: u64,
    /// The ack deadline currently asked for (adapts to processing times).
    pub ack_deadline: Duration,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) received: AtomicU64,
    pub(crate) received_bytes: AtomicU64,
    pub(crate) acked: AtomicU64,
    pub(crate) nacked: AtomicU64,
    pub(crate) ack_failures: AtomicU64,
    pub(crate) modack_failures: AtomicU64,
    pub(crate) extensions: AtomicU64,
    pub(crate) expired: AtomicU64,
    pub(crate) pulls: AtomicU64,
    pub(crate) pull_errors: AtomicU64,
    pub(crate) outstanding_messages: AtomicUsize,
    pub(crate) outstanding_bytes: AtomicUsize,
    pub(crate) peak_messages: AtomicUsize,
    pub(crate) peak_bytes: AtomicUsize,
}

pub(crate) fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

impl Counters {
    /// Counts `n` messages of `bytes` bytes as received and outstanding.
    pub(crate) fn admit(&self, n: usize, bytes: usize) {
        add(&self.received, n);
        add(&self.received_bytes, bytes);
        let m = self.outstanding_messages.fetch_add(n, Ordering::Relaxed) + n;
        let b = self.outstanding_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak_messages.fetch_max(m, Ordering::Relaxed);
        self.peak_bytes.fetch_max(b, Ordering::Relaxed);
    }

    /// Counts `n` messages of `bytes` bytes as no longer outstanding.
    pub(crate) fn release(&self, n: usize, bytes: usize) {
        self.outstanding_messages.fetch_sub(n, Ordering::Relaxed);
        self.outstanding_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Average size of the messages received so far; `None` before the first.
    pub(crate) fn average_size(&self) -> Option<usize> {
        let n = self.received.load(Ordering::Relaxed);
        (n > 0).then(|| {
            usize::try_from(self.received_bytes.load(Ordering::Relaxed) / n).unwrap_or(usize::MAX).max(1)
        })
    }

    pub(crate) fn snapshot(&self, ack_deadline: Duration) -> SubscriberStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let getu = |c: &AtomicUsize| c.load(Ordering::Relaxed) as u64;
        SubscriberStats {
            received: get(&self.received),
            acked: get(&self.acked),
            nacked: get(&self.nacked),
            ack_failures: get(&self.ack_failures),
            modack_failures: get(&self.modack_failures),
            extensions: get(&self.extensions),
            expired: get(&self.expired),
            pulls: get(&self.pulls),
            pull_errors: get(&self.pull_errors),
            outstanding_messages: getu(&self.outstanding_messages),
            outstanding_bytes: getu(&self.outstanding_bytes),
            peak_outstanding_messages: getu(&self.peak_messages),
            peak_outstanding_bytes: getu(&self.peak_bytes),
            ack_deadline,
        }
    }
}
