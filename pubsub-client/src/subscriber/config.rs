//! Subscriber settings with documented defaults.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::limits::{MAX_ACK_DEADLINE_SECS, MIN_ACK_DEADLINE_SECS};

/// Settings of a [`Subscriber`](crate::Subscriber).
///
/// ```
/// use std::time::Duration;
/// use pubsub_client::SubscriberConfig;
///
/// let config = SubscriberConfig::default()
///     .with_max_outstanding_messages(5000)
///     .with_max_lease_extension(Duration::from_secs(600));
/// assert_eq!(config.pull_concurrency, 4);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SubscriberConfig {
    /// Most messages received and not yet acked or nacked (buffered or held by the caller).
    /// Pulling pauses at the limit; each pull asks for at most the free room. Default: 1000.
    pub max_outstanding_messages: usize,
    /// Most bytes (data, attributes, ordering key) received and not yet acked or nacked.
    /// Pulling pauses while the limit is reached; one pull answer may pass it, so the bound is
    /// this plus one pull's worth. Default: 100 MiB.
    pub max_outstanding_bytes: usize,
    /// Pull requests kept in flight. Default: 4.
    pub pull_concurrency: usize,
    /// Most messages one pull asks for (1-1000). Default: 1000.
    pub max_messages_per_pull: u32,
    /// Time limit of one long-poll pull; when it passes without messages the next pull starts.
    /// Default: 30 s.
    pub pull_timeout: Duration,
    /// Longest a message's lease is extended in all, counted from its receipt; after that it is
    /// left to expire and the service redelivers it. Default: 60 min.
    pub max_lease_extension: Duration,
    /// Lower bound of the ack deadline the client asks for (at least 10 s). Default: 10 s.
    pub min_ack_deadline: Duration,
    /// Upper bound of the ack deadline the client asks for (at most 600 s). Default: 600 s.
    ///
    /// Between the bounds the deadline follows the 99th percentile of observed processing
    /// times (receipt to ack), so leases are extended less often when processing is slow.
    pub max_ack_deadline: Duration,
    /// How often batched acks, nacks and lease extensions are sent. Default: 100 ms.
    pub ack_flush_interval: Duration,
}

impl Default for SubscriberConfig {
    fn default() -> Self {
        SubscriberConfig {
            max_outstanding_messages: 1000,
            max_outstanding_bytes: 100 * 1024 * 1024,
            pull_concurrency: 4,
            max_messages_per_pull: 1000,
            pull_timeout: Duration::from_secs(30),
            max_lease_extension: Duration::from_secs(3600),
            min_ack_deadline: Duration::from_secs(u64::from(MIN_ACK_DEADLINE_SECS)),
            max_ack_deadline: Duration::from_secs(u64::from(MAX_ACK_DEADLINE_SECS)),
            ack_flush_interval: Duration::from_millis(100),
        }
    }
}

impl SubscriberConfig {
    /// Sets [`max_outstanding_messages`](Self::max_outstanding_messages).
    pub fn with_max_outstanding_messages(mut self, n: usize) -> Self {
        self.max_outstanding_messages = n;
        self
    }

    /// Sets [`max_outstanding_bytes`](Self::max_outstanding_bytes).
    pub fn with_max_outstanding_bytes(mut self, n: usize) -> Self {
        self.max_outstanding_bytes = n;
        self
    }

    /// Sets [`pull_concurrency`](Self::pull_concurrency).
    pub fn with_pull_concurrency(mut self, n: usize) -> Self {
        self.pull_concurrency = n;
        self
    }

    /// Sets [`max_messages_per_pull`](Self::max_messages_per_pull).
    pub fn with_max_messages_per_pull(mut self, n: u32) -> Self {
        self.max_messages_per_pull = n;
        self
    }

    /// Sets [`pull_timeout`](Self::pull_timeout).
    pub fn with_pull_timeout(mut self, d: Duration) -> Self {
        self.pull_timeout = d;
        self
    }

    /// Sets [`max_lease_extension`](Self::max_lease_extension).
    pub fn with_max_lease_extension(mut self, d: Duration) -> Self {
        self.max_lease_extension = d;
        self
    }

    /// Sets the bounds of the adaptive ack deadline.
    pub fn with_ack_deadline_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.min_ack_deadline = min;
        self.max_ack_deadline = max;
        self
    }

    /// Sets [`ack_flush_interval`](Self::ack_flush_interval).
    pub fn with_ack_flush_interval(mut self, d: Duration) -> Self {
        self.ack_flush_interval = d;
        self
    }

    /// Checks every value against its range and the service limits.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        if self.max_outstanding_messages == 0 || self.max_outstanding_bytes == 0 {
            return bad("max_outstanding_messages and max_outstanding_bytes must be at least 1".into());
        }
        if self.max_outstanding_messages > tokio::sync::Semaphore::MAX_PERMITS {
            return bad(format!(
                "max_outstanding_messages is {}; that is too large",
                self.max_outstanding_messages
            ));
        }
        if self.pull_concurrency == 0 {
            return bad("pull_concurrency must be at least 1".into());
        }
        if !(1..=1000).contains(&self.max_messages_per_pull) {
            return bad(format!(
                "max_messages_per_pull is {}; it must be 1-1000",
                self.max_messages_per_pull
            ));
        }
        let (lo, hi) = (
            Duration::from_secs(u64::from(MIN_ACK_DEADLINE_SECS)),
            Duration::from_secs(u64::from(MAX_ACK_DEADLINE_SECS)),
        );
        if self.min_ack_deadline < lo
            || self.max_ack_deadline > hi
            || self.min_ack_deadline > self.max_ack_deadline
        {
            return bad(format!(
                "ack deadline bounds are {:?}..{:?}; they must lie within 10-600 s, min <= max",
                self.min_ack_deadline, self.max_ack_deadline
            ));
        }
        if self.pull_timeout.is_zero() || self.ack_flush_interval.is_zero() {
            return bad("pull_timeout and ack_flush_interval must be above zero".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        SubscriberConfig::default().validate().expect("valid");
    }

    #[test]
    fn out_of_range_values_name_the_setting() {
        let s = Duration::from_secs;
        let cases = [
            (SubscriberConfig::default().with_max_outstanding_messages(0), "max_outstanding"),
            (SubscriberConfig::default().with_pull_concurrency(0), "pull_concurrency"),
            (SubscriberConfig::default().with_max_messages_per_pull(1001), "max_messages_per_pull"),
            (SubscriberConfig::default().with_ack_deadline_bounds(s(5), s(60)), "10-600"),
            (SubscriberConfig::default().with_ack_deadline_bounds(s(60), s(601)), "10-600"),
            (SubscriberConfig::default().with_ack_deadline_bounds(s(60), s(30)), "min <= max"),
            (SubscriberConfig::default().with_pull_timeout(Duration::ZERO), "pull_timeout"),
        ];
        for (c, what) in cases {
            let e = c.validate().expect_err(what).to_string();
            assert!(e.contains(what), "{e}");
        }
    }
}
