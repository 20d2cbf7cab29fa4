//! Pacing of one producer: governor token buckets at the producer's share of the offered rate,
//! re-set once a second so a rate profile can change it, handing out permission in chunks of
//! about 5 ms worth of messages (so the bucket is consulted ~200 times a second, not once per
//! message).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// The offered rate (messages/s) at a time since the start; `None` = unpaced.
pub type RateFn = Arc<dyn Fn(Duration) -> Option<f64> + Send + Sync>;

/// Messages handed out per call when unpaced.
pub const UNPACED_CHUNK: u32 = 1000;

/// Paces one of `producers` producers sharing the offered rate.
pub struct Pacer {
    rate_at: RateFn,
    start: Instant,
    duration: Duration,
    producers: usize,
    /// The second the bucket was set for, the chunk and the bucket.
    limiter: Option<(u64, NonZeroU32, DefaultDirectRateLimiter)>,
}

impl Pacer {
    /// A pacer for one of `producers` producers, running for `duration` from `start`.
    pub fn new(rate_at: RateFn, start: Instant, duration: Duration, producers: usize) -> Pacer {
        Pacer { rate_at, start, duration, producers: producers.max(1), limiter: None }
    }

    /// Waits until the next chunk of messages may be sent and returns its size; `None` once
    /// the run's duration is over.
    pub async fn next(&mut self) -> Option<u32> {
        let elapsed = self.start.elapsed();
        if elapsed >= self.duration {
            return None;
        }
        let Some(rate) = (self.rate_at)(elapsed) else { return Some(UNPACED_CHUNK) };
        let second = elapsed.as_secs();
        if self.limiter.as_ref().is_none_or(|(s, _, _)| *s != second) {
            let mine = (rate / self.producers as f64).max(1.0);
            let chunk = NonZeroU32::new(((mine / 200.0) as u32).max(1)).unwrap_or(NonZeroU32::MIN);
            let q =
                Quota::per_second(NonZeroU32::new(mine as u32).unwrap_or(NonZeroU32::MIN)).allow_burst(chunk);
            self.limiter = Some((second, chunk, RateLimiter::direct(q)));
        }
        let (_, chunk, l) = self.limiter.as_ref()?;
        // The chunk never exceeds the burst, so this only waits.
        let _ = l.until_n_ready(*chunk).await;
        Some(chunk.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unpaced_hands_out_fixed_chunks_until_the_end() {
        let mut p = Pacer::new(Arc::new(|_| None), Instant::now(), Duration::from_millis(50), 2);
        assert_eq!(p.next().await, Some(UNPACED_CHUNK));
        let mut p = Pacer::new(Arc::new(|_| None), Instant::now(), Duration::ZERO, 2);
        assert_eq!(p.next().await, None, "a finished run hands out nothing");
    }

    #[tokio::test]
    async fn paced_chunks_are_five_ms_of_the_producers_share() {
        // 400,000/s over 2 producers = 200,000/s each = 1,000 per 5 ms.
        let mut p = Pacer::new(Arc::new(|_| Some(400_000.0)), Instant::now(), Duration::from_secs(5), 2);
        assert_eq!(p.next().await, Some(1000));
        // A tiny rate still hands out whole messages.
        let mut p = Pacer::new(Arc::new(|_| Some(3.0)), Instant::now(), Duration::from_secs(5), 4);
        assert_eq!(p.next().await, Some(1));
    }
}
