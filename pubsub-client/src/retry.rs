//! Retry policy: which failures are retried, how long to wait between attempts, when to give up.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Result};

/// Exponential backoff with jitter for retryable failures, within a total deadline.
///
/// Only errors for which [`Error::is_retryable`] is true are retried. The n-th wait is drawn
/// uniformly from `[d/2, d]` where `d = min(initial_backoff * multiplier^n, max_backoff)`, and
/// no attempt starts after `total_timeout` has passed since the first.
///
/// ```
/// use std::time::Duration;
/// use pubsub_client::RetryPolicy;
///
/// let policy = RetryPolicy::default()
///     .with_initial_backoff(Duration::from_millis(50))
///     .with_total_timeout(Duration::from_secs(30));
/// assert_eq!(policy.max_attempts, None);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Wait before the first retry. Default: 100 ms.
    pub initial_backoff: Duration,
    /// Longest wait between two attempts. Default: 10 s.
    pub max_backoff: Duration,
    /// Growth of the wait per attempt. Default: 2.0.
    pub multiplier: f64,
    /// Time after the first attempt when no further attempt is started. Default: 60 s.
    pub total_timeout: Duration,
    /// Most attempts in all, including the first; `None` means only the deadline limits them.
    /// Default: `None`.
    pub max_attempts: Option<u32>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            multiplier: 2.0,
            total_timeout: Duration::from_secs(60),
            max_attempts: None,
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn never() -> Self {
        RetryPolicy { max_attempts: Some(1), ..Self::default() }
    }

    /// Sets [`initial_backoff`](Self::initial_backoff).
    pub fn with_initial_backoff(mut self, d: Duration) -> Self {
        self.initial_backoff = d;
        self
    }

    /// Sets [`max_backoff`](Self::max_backoff).
    pub fn with_max_backoff(mut self, d: Duration) -> Self {
        self.max_backoff = d;
        self
    }

    /// Sets [`multiplier`](Self::multiplier).
    pub fn with_multiplier(mut self, m: f64) -> Self {
        self.multiplier = m;
        self
    }

    /// Sets [`total_timeout`](Self::total_timeout).
    pub fn with_total_timeout(mut self, d: Duration) -> Self {
        self.total_timeout = d;
        self
    }

    /// Sets [`max_attempts`](Self::max_attempts).
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n.max(1));
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            return Err(Error::InvalidConfig(format!(
                "retry multiplier must be a finite number >= 1.0, got {}",
                self.multiplier
            )));
        }
        if self.max_backoff < self.initial_backoff {
            return Err(Error::InvalidConfig(format!(
                "retry max_backoff ({:?}) is below initial_backoff ({:?})",
                self.max_backoff, self.initial_backoff
            )));
        }
        Ok(())
    }

    /// The longest wait before retry number `retry` (0-based), before jitter.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let factor = self.multiplier.powi(i32::try_from(retry).unwrap_or(i32::MAX));
        let secs = self.initial_backoff.as_secs_f64() * factor;
        if !secs.is_finite() || secs >= self.max_backoff.as_secs_f64() {
            self.max_backoff
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// The wait before retry number `retry` (0-based), with jitter applied.
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self.backoff_ceiling(retry);
        let half = ceiling / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// Runs `op` until it succeeds, fails with a non-retryable error, or the policy gives up.
    ///
    /// `on_retry` is called before each wait with the failed attempt's error. When the policy
    /// gives up after more than one attempt the error is [`Error::RetriesExhausted`].
    pub(crate) async fn run<T, F, Fut>(&self, mut op: F, mut on_retry: impl FnMut(&Error, u32)) -> Result<T>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let start = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            let err = match op(attempt).await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            attempt += 1;
            if !err.is_retryable() {
                return Err(err);
            }
            let wait = self.backoff(attempt - 1);
            let out_of_attempts = self.max_attempts.is_some_and(|max| attempt >= max);
            let out_of_time = start.elapsed() + wait > self.total_timeout;
            if out_of_attempts || out_of_time {
                if attempt == 1 {
                    return Err(err);
                }
                return Err(Error::RetriesExhausted {
                    attempts: attempt,
                    elapsed: start.elapsed(),
                    last: Box::new(err),
                });
            }
            on_retry(&err, attempt);
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn unavailable() -> Error {
        Error::Api { code: 503, status: "UNAVAILABLE".into(), message: "down".into() }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff_ceiling(0), Duration::from_millis(100));
        assert_eq!(p.backoff_ceiling(1), Duration::from_millis(200));
        assert_eq!(p.backoff_ceiling(3), Duration::from_millis(800));
        assert_eq!(p.backoff_ceiling(20), Duration::from_secs(10));
        assert_eq!(p.backoff_ceiling(u32::MAX), Duration::from_secs(10));
        for retry in 0..10 {
            let d = p.backoff(retry);
            let ceiling = p.backoff_ceiling(retry);
            assert!(d >= ceiling / 2 && d <= ceiling, "{d:?} outside [{:?}, {ceiling:?}]", ceiling / 2);
        }
    }

    #[test]
    fn bad_policies_are_rejected() {
        assert!(RetryPolicy::default().with_multiplier(0.5).validate().is_err());
        assert!(RetryPolicy::default().with_multiplier(f64::NAN).validate().is_err());
        let inverted = RetryPolicy::default()
            .with_initial_backoff(Duration::from_secs(5))
            .with_max_backoff(Duration::from_secs(1));
        assert!(inverted.validate().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn retries_until_success() {
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let mut retries = Vec::new();
        let out = RetryPolicy::default()
            .run(
                |attempt| {
                    let c = c.clone();
                    async move {
                        c.fetch_add(1, Ordering::SeqCst);
                        if attempt < 3 { Err(unavailable()) } else { Ok(attempt) }
                    }
                },
                |_, n| retries.push(n),
            )
            .await;
        assert_eq!(out.expect("succeeds on the fourth attempt"), 3);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert_eq!(retries, vec![1, 2, 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_fail_at_once() {
        let calls = AtomicU32::new(0);
        let out: Result<()> = RetryPolicy::default()
            .run(
                |_| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async {
                        Err(Error::Api {
                            code: 403,
                            status: "PERMISSION_DENIED".into(),
                            message: "no".into(),
                        })
                    }
                },
                |_, _| {},
            )
            .await;
        assert_eq!(out.expect_err("fails").http_status(), Some(403));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_at_the_deadline() {
        let start = Instant::now();
        let policy = RetryPolicy::default().with_total_timeout(Duration::from_secs(5));
        let out: Result<()> = policy.run(|_| async { Err(unavailable()) }, |_, _| {}).await;
        match out {
            Err(Error::RetriesExhausted { attempts, last, .. }) => {
                assert!(attempts > 3, "only {attempts} attempts");
                assert_eq!(last.http_status(), Some(503));
            }
            other => panic!("expected RetriesExhausted, got {other:?}"),
        }
        assert!(start.elapsed() <= Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_attempts() {
        let calls = AtomicU32::new(0);
        let out: Result<()> = RetryPolicy::default()
            .with_max_attempts(2)
            .run(
                |_| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async { Err(unavailable()) }
                },
                |_, _| {},
            )
            .await;
        assert!(matches!(out, Err(Error::RetriesExhausted { attempts: 2, .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
