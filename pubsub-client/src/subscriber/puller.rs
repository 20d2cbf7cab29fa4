//! The pull loop: waits for flow-control room, pulls, hands messages over, retries failures.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::watch;

use super::Inner;
use super::stats::add;

/// Pulls until told to stop or a permanent error ends the subscriber. `stop` means start no
/// new pull; `abort` also gives up a pull in flight (whose messages, if the service already
/// answered, then come back only when their ack deadline passes).
pub(crate) async fn run(
    inner: Arc<Inner>,
    mut stop: watch::Receiver<bool>,
    mut abort: watch::Receiver<bool>,
) {
    let cfg = &inner.config;
    let mut failures: u32 = 0;
    loop {
        tokio::select! {
            _ = inner.wait_for_byte_room() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let first = tokio::select! {
            p = inner.permits.acquire() => p,
            _ = stop.wait_for(|s| *s) => return,
        };
        let Ok(first) = first else { return };
        first.forget();
        let mut n: u32 = 1;
        // Ask for what fits in the byte room by the average size so far (one message before
        // anything was received), and reserve it so concurrent pulls do not count it twice.
        let avg = inner.counters.average_size();
        let by_bytes = avg.map_or(1, |a| (inner.byte_room() / a).max(1));
        let by_bytes = u32::try_from(by_bytes).unwrap_or(u32::MAX);
        let extra = (cfg.max_messages_per_pull - 1)
            .min(u32::try_from(inner.permits.available_permits()).unwrap_or(u32::MAX))
            .min(by_bytes - 1);
        if extra > 0
            && let Ok(p) = inner.permits.try_acquire_many(extra)
        {
            p.forget();
            n += extra;
        }
        let reserved = avg.unwrap_or(0) * n as usize;
        inner.reserve_bytes(reserved);
        let result = tokio::select! {
            r = inner.client.pull_once(&inner.name, n, Some(cfg.pull_timeout)) => r,
            _ = abort.wait_for(|s| *s) => {
                inner.permits.add_permits(n as usize);
                inner.unreserve_bytes(reserved);
                return;
            }
        };
        add(&inner.counters.pulls, 1);
        tracing::trace!(subscription = %inner.name, asked = n, result = ?result.as_ref().map(Vec::len), "pull answered");
        match result {
            Ok(msgs) => {
                failures = 0;
                let unused = (n as usize).saturating_sub(msgs.len());
                inner.permits.add_permits(unused);
                inner.receive(msgs);
                inner.unreserve_bytes(reserved);
            }
            Err(e) => {
                inner.permits.add_permits(n as usize);
                inner.unreserve_bytes(reserved);
                add(&inner.counters.pull_errors, 1);
                if !e.is_retryable() {
                    tracing::error!(subscription = %inner.name, error = %e, "pull failed permanently; the subscriber stops");
                    inner.fail(e);
                    return;
                }
                let wait = inner.retry_backoff(failures);
                failures = failures.saturating_add(1);
                tracing::warn!(subscription = %inner.name, error = %e, retry_in = ?wait, "pull failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        }
        if inner.closed.load(Ordering::Acquire) {
            return;
        }
    }
}
