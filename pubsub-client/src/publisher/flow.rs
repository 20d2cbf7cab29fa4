//! Flow control: bounds on messages and bytes published but not yet completed.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use tokio::sync::Semaphore;

use super::config::LimitExceededBehavior;
use crate::error::{Error, Result};

/// Two counting semaphores, one for messages and one for encoded bytes. Permits are taken when
/// a message is accepted and given back when its batch completes, so everything the publisher
/// holds in memory is covered.
#[derive(Debug)]
pub(crate) struct FlowController {
    messages: Semaphore,
    bytes: Semaphore,
    max_bytes: usize,
    behavior: LimitExceededBehavior,
    outstanding_messages: AtomicUsize,
    outstanding_bytes: AtomicUsize,
    waits: AtomicU64,
    wait_nanos: AtomicU64,
}

impl FlowController {
    pub(crate) fn new(max_messages: usize, max_bytes: usize, behavior: LimitExceededBehavior) -> Self {
        FlowController {
            messages: Semaphore::new(max_messages),
            bytes: Semaphore::new(max_bytes),
            max_bytes,
            behavior,
            outstanding_messages: AtomicUsize::new(0),
            outstanding_bytes: AtomicUsize::new(0),
            waits: AtomicU64::new(0),
            wait_nanos: AtomicU64::new(0),
        }
    }

    /// Admits one message of `bytes` encoded bytes, waiting if configured to block.
    pub(crate) async fn acquire(&self, bytes: usize) -> Result<()> {
        match self.behavior {
            LimitExceededBehavior::FailFast => self.try_acquire(bytes),
            LimitExceededBehavior::Block => {
                if self.try_acquire(bytes).is_ok() {
                    return Ok(());
                }
                let start = Instant::now();
                let n = self.permits(bytes)?;
                let m = self.messages.acquire().await.map_err(|_| Error::ShutDown("publisher"))?;
                let b = self.bytes.acquire_many(n).await.map_err(|_| Error::ShutDown("publisher"))?;
                m.forget();
                b.forget();
                self.admitted(bytes);
                self.waits.fetch_add(1, Ordering::Relaxed);
                let waited = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
                self.wait_nanos.fetch_add(waited, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    /// Admits one message without waiting, or fails with [`Error::FlowControlFull`].
    pub(crate) fn try_acquire(&self, bytes: usize) -> Result<()> {
        let n = self.permits(bytes)?;
        let full = || Error::FlowControlFull {
            outstanding_messages: self.outstanding_messages.load(Ordering::Relaxed),
            outstanding_bytes: self.outstanding_bytes.load(Ordering::Relaxed),
        };
        let m = self.messages.try_acquire().map_err(|_| full())?;
        let b = self.bytes.try_acquire_many(n).map_err(|_| full())?;
        m.forget();
        b.forget();
        self.admitted(bytes);
        Ok(())
    }

    fn permits(&self, bytes: usize) -> Result<u32> {
        if bytes > self.max_bytes {
            return Err(Error::InvalidMessage(format!(
                "message encodes to {bytes} bytes, more than max_outstanding_bytes ({}); it could never be admitted",
                self.max_bytes
            )));
        }
        u32::try_from(bytes)
            .map_err(|_| Error::InvalidMessage(format!("message of {bytes} bytes is too large")))
    }

    fn admitted(&self, bytes: usize) {
        self.outstanding_messages.fetch_add(1, Ordering::Relaxed);
        self.outstanding_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Gives back the permits of `messages` completed messages holding `bytes` bytes.
    pub(crate) fn release(&self, messages: usize, bytes: usize) {
        self.outstanding_messages.fetch_sub(messages, Ordering::Relaxed);
        self.outstanding_bytes.fetch_sub(bytes, Ordering::Relaxed);
        self.messages.add_permits(messages);
        self.bytes.add_permits(bytes);
    }

    pub(crate) fn outstanding(&self) -> (usize, usize) {
        (self.outstanding_messages.load(Ordering::Relaxed), self.outstanding_bytes.load(Ordering::Relaxed))
    }

    /// How often a publish had to wait, and for how long in all.
    pub(crate) fn waits(&self) -> (u64, u64) {
        (self.waits.load(Ordering::Relaxed), self.wait_nanos.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn fail_fast_refuses_at_either_limit() {
        let f = FlowController::new(2, 100, LimitExceededBehavior::FailFast);
        f.acquire(40).await.expect("first");
        f.acquire(40).await.expect("second");
        assert!(matches!(f.acquire(1).await, Err(Error::FlowControlFull { outstanding_messages: 2, .. })));
        f.release(2, 80);
        f.acquire(90).await.expect("fits alone");
        assert!(matches!(
            f.acquire(20).await,
            Err(Error::FlowControlFull { outstanding_messages: 1, outstanding_bytes: 90 })
        ));
        assert_eq!(f.outstanding(), (1, 90));
        assert!(f.acquire(101).await.expect_err("never fits").to_string().contains("never be admitted"));
    }

    #[tokio::test(start_paused = true)]
    async fn block_waits_for_a_release() {
        let f = Arc::new(FlowController::new(1, 100, LimitExceededBehavior::Block));
        f.acquire(10).await.expect("first");
        let waiter = tokio::spawn({
            let f = f.clone();
            async move { f.acquire(10).await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiter.is_finished(), "must block while the limit is reached");
        f.release(1, 10);
        waiter.await.expect("join").expect("admitted after release");
        assert_eq!(f.outstanding(), (1, 10));
        assert_eq!(f.waits().0, 1);
    }
}
