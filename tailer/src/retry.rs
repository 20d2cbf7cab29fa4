//! The retry policy: exponential backoff with jitter, never shorter than the server's
//! `Retry-After`.

use std::time::Duration;

/// Longest `Retry-After` honoured; a larger value is capped so a misconfigured proxy cannot
/// stall the tailer for hours.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Exponential backoff: `initial * 2^attempt`, capped at `max`, with "equal jitter" (a random
/// delay between half and all of it), and at least the server's `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
}

impl Backoff {
    /// A policy starting at `initial` and growing to `max`.
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Backoff { initial, max: max.max(initial) }
    }

    /// The wait before retry number `attempt` (0 for the first retry).
    pub(crate) fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self.initial.saturating_mul(1u32 << attempt.min(20)).min(self.max);
        let jittered = exp / 2 + exp.mul_f64(fastrand::f64() / 2.0);
        jittered.max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_honours_retry_after() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        for _ in 0..100 {
            let d0 = b.delay(0, None);
            assert!(d0 >= Duration::from_millis(50) && d0 <= Duration::from_millis(100), "{d0:?}");
            let d3 = b.delay(3, None);
            assert!(d3 >= Duration::from_millis(400) && d3 <= Duration::from_millis(800), "{d3:?}");
            let big = b.delay(40, None);
            assert!(big >= Duration::from_secs(1) && big <= Duration::from_secs(2), "{big:?}");
            assert!(b.delay(0, Some(Duration::from_secs(3))) >= Duration::from_secs(3));
            assert_eq!(b.delay(0, Some(Duration::from_secs(100_000))), MAX_RETRY_AFTER);
        }
    }
}
