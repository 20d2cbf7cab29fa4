//! Publisher settings with documented defaults.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::limits::{MAX_MESSAGES_PER_PUBLISH, MAX_PUBLISH_REQUEST_BYTES};
use crate::retry::RetryPolicy;
use crate::wire::ENVELOPE_LEN;

/// What `publish` does when flow control is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LimitExceededBehavior {
    /// Wait until enough outstanding messages complete. Default.
    #[default]
    Block,
    /// Return [`Error::FlowControlFull`] at once.
    FailFast,
}

/// Settings of a [`Publisher`](crate::Publisher).
///
/// ```
/// use std::time::Duration;
/// use pubsub_client::PublisherConfig;
///
/// let config = PublisherConfig::default()
///     .with_max_messages(500)
///     .with_delay(Duration::from_millis(5))
///     .with_gzip(4096, 1);
/// assert_eq!(config.max_messages, 500);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PublisherConfig {
    /// Most messages per publish request (1-1000). Default: 1000.
    pub max_messages: usize,
    /// Largest publish request body in bytes, as encoded JSON before compression
    /// (at most 10,000,000). Default: 10,000,000.
    pub max_bytes: usize,
    /// Longest a message waits for its batch to fill before the batch is sent. Zero sends
    /// every message on its own. Default: 10 ms.
    pub delay: Duration,
    /// Most messages published but not yet confirmed or failed. Default: 100,000.
    pub max_outstanding_messages: usize,
    /// Most encoded bytes (base64 JSON, what the publisher holds in memory) published but not
    /// yet confirmed or failed. Default: 128 MiB.
    pub max_outstanding_bytes: usize,
    /// What happens when either outstanding limit is reached. Default: block.
    pub limit_exceeded: LimitExceededBehavior,
    /// Most publish requests in flight at once, retries included. Default: 16.
    pub max_in_flight_requests: usize,
    /// Gzip request bodies of at least this many bytes; `None` disables compression.
    /// Default: `None`.
    pub gzip_threshold: Option<usize>,
    /// Gzip level, 0-9. Default: 1 (fastest).
    pub gzip_level: u32,
    /// Retries of failed publish requests. Default: [`RetryPolicy::default`] (60 s in all).
    pub retry: RetryPolicy,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        PublisherConfig {
            max_messages: MAX_MESSAGES_PER_PUBLISH,
            max_bytes: MAX_PUBLISH_REQUEST_BYTES,
            delay: Duration::from_millis(10),
            max_outstanding_messages: 100_000,
            max_outstanding_bytes: 128 * 1024 * 1024,
            limit_exceeded: LimitExceededBehavior::Block,
            max_in_flight_requests: 16,
            gzip_threshold: None,
            gzip_level: 1,
            retry: RetryPolicy::default(),
        }
    }
}

impl PublisherConfig {
    /// Sets [`max_messages`](Self::max_messages).
    pub fn with_max_messages(mut self, n: usize) -> Self {
        self.max_messages = n;
        self
    }

    /// Sets [`max_bytes`](Self::max_bytes).
    pub fn with_max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n;
        self
    }

    /// Sets [`delay`](Self::delay).
    pub fn with_delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }

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

    /// Sets [`limit_exceeded`](Self::limit_exceeded).
    pub fn with_limit_exceeded(mut self, b: LimitExceededBehavior) -> Self {
        self.limit_exceeded = b;
        self
    }

    /// Sets [`max_in_flight_requests`](Self::max_in_flight_requests).
    pub fn with_max_in_flight_requests(mut self, n: usize) -> Self {
        self.max_in_flight_requests = n;
        self
    }

    /// Enables gzip for bodies of at least `threshold` bytes, at `level` (0-9).
    pub fn with_gzip(mut self, threshold: usize, level: u32) -> Self {
        self.gzip_threshold = Some(threshold);
        self.gzip_level = level;
        self
    }

    /// Sets [`retry`](Self::retry).
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Checks every value against its range and the service limits.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        if !(1..=MAX_MESSAGES_PER_PUBLISH).contains(&self.max_messages) {
            return bad(format!(
                "max_messages is {}; it must be 1-{MAX_MESSAGES_PER_PUBLISH}",
                self.max_messages
            ));
        }
        let min_bytes = ENVELOPE_LEN + 16;
        if !(min_bytes..=MAX_PUBLISH_REQUEST_BYTES).contains(&self.max_bytes) {
            return bad(format!(
                "max_bytes is {}; it must be {min_bytes}-{MAX_PUBLISH_REQUEST_BYTES}",
                self.max_bytes
            ));
        }
        if self.max_outstanding_messages == 0 || self.max_outstanding_bytes == 0 {
            return bad("max_outstanding_messages and max_outstanding_bytes must be at least 1".into());
        }
        if self.max_outstanding_bytes > tokio::sync::Semaphore::MAX_PERMITS {
            return bad(format!(
                "max_outstanding_bytes is {}; that is too large",
                self.max_outstanding_bytes
            ));
        }
        if self.max_in_flight_requests == 0 {
            return bad("max_in_flight_requests must be at least 1".into());
        }
        if self.gzip_level > 9 {
            return bad(format!("gzip_level is {}; it must be 0-9", self.gzip_level));
        }
        self.retry.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_at_the_api_limits() {
        let c = PublisherConfig::default();
        c.validate().expect("defaults are valid");
        assert_eq!(c.max_messages, 1000);
        assert_eq!(c.max_bytes, 10_000_000);
    }

    #[test]
    fn out_of_range_values_name_the_setting() {
        let cases = [
            (PublisherConfig::default().with_max_messages(0), "max_messages"),
            (PublisherConfig::default().with_max_messages(1001), "max_messages"),
            (PublisherConfig::default().with_max_bytes(10_000_001), "max_bytes"),
            (PublisherConfig::default().with_max_bytes(3), "max_bytes"),
            (PublisherConfig::default().with_max_outstanding_messages(0), "max_outstanding"),
            (PublisherConfig::default().with_max_in_flight_requests(0), "max_in_flight"),
            (PublisherConfig::default().with_gzip(0, 10), "gzip_level"),
        ];
        for (c, what) in cases {
            let e = c.validate().expect_err(what).to_string();
            assert!(e.contains(what), "{e}");
        }
    }
}
