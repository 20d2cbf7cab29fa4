//! Lease bookkeeping: which received messages to extend, when, and by how much.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// A received message the client holds a lease on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lease {
    /// When the message was received.
    pub(crate) received: Instant,
    /// When the lease runs out unless extended.
    pub(crate) expires: Instant,
}

/// Leases by ack id.
#[derive(Debug, Default)]
pub(crate) struct Leases {
    map: HashMap<String, Lease>,
}

/// What the lease task should do after a look at the leases.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Ack ids to extend, grouped by the deadline in seconds to ask for.
    pub(crate) extend: Vec<(u32, Vec<String>)>,
    /// Ack ids given up on after the maximum extension; the service will redeliver them.
    pub(crate) expired: Vec<String>,
}

impl Leases {
    pub(crate) fn insert(&mut self, ack_id: String, now: Instant, deadline: Duration) {
        self.map.insert(ack_id, Lease { received: now, expires: now + deadline });
    }

    pub(crate) fn remove(&mut self, ack_id: &str) -> Option<Lease> {
        self.map.remove(ack_id)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn drain_ids(&mut self) -> Vec<String> {
        self.map.drain().map(|(k, _)| k).collect()
    }

    /// Extends every lease that runs out within `margin`, to `deadline` from now but not past
    /// `max_extension` after receipt (and never below the API's 10 s minimum); gives up on
    /// leases held for `max_extension` already.
    pub(crate) fn plan(
        &mut self,
        now: Instant,
        deadline: Duration,
        margin: Duration,
        max_extension: Duration,
    ) -> Plan {
        let mut by_secs: HashMap<u32, Vec<String>> = HashMap::new();
        let mut expired = Vec::new();
        self.map.retain(|id, lease| {
            let limit = lease.received + max_extension;
            if now >= limit {
                expired.push(id.clone());
                return false;
            }
            if lease.expires > now + margin {
                return true;
            }
            let wanted = deadline.min(limit - now);
            let secs = u32::try_from(wanted.as_secs()).unwrap_or(u32::MAX).clamp(10, 600);
            lease.expires = now + Duration::from_secs(u64::from(secs));
            by_secs.entry(secs).or_default().push(id.clone());
            true
        });
        let mut extend: Vec<(u32, Vec<String>)> = by_secs.into_iter().collect();
        extend.sort_unstable_by_key(|(s, _)| *s);
        Plan { extend, expired }
    }
}

/// How long messages take from receipt to ack, in whole seconds up to 600.
#[derive(Debug, Clone)]
pub(crate) struct AckLatencies {
    buckets: Vec<u64>,
    total: u64,
}

impl Default for AckLatencies {
    fn default() -> Self {
        AckLatencies { buckets: vec![0; 601], total: 0 }
    }
}

impl AckLatencies {
    pub(crate) fn record(&mut self, latency: Duration) {
        let secs = latency.as_secs() + u64::from(latency.subsec_nanos() > 0);
        let i = usize::try_from(secs).unwrap_or(usize::MAX).min(self.buckets.len() - 1);
        self.buckets[i] += 1;
        self.total += 1;
    }

    /// The 99th percentile clamped to `[min, max]`; `min` before anything was recorded.
    pub(crate) fn deadline(&self, min: Duration, max: Duration) -> Duration {
        if self.total == 0 {
            return min;
        }
        let rank = (self.total * 99).div_ceil(100);
        let mut seen = 0;
        for (secs, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Duration::from_secs(secs as u64).clamp(min, max);
            }
        }
        max
    }
}

/// How often the lease task looks at the leases.
pub(crate) const LEASE_TICK: Duration = Duration::from_secs(1);

/// Extends leases that are about to run out and gives up on those held too long, until told
/// to stop.
pub(crate) async fn run(inner: std::sync::Arc<super::Inner>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(LEASE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let deadline = inner.ack_deadline();
        let plan = inner.lock_leases().plan(
            Instant::now(),
            deadline,
            extension_margin(deadline),
            inner.config.max_lease_extension,
        );
        if !plan.expired.is_empty() {
            super::stats::add(&inner.counters.expired, plan.expired.len());
            tracing::warn!(
                subscription = %inner.name,
                messages = plan.expired.len(),
                "messages held past max_lease_extension; the service will redeliver them"
            );
        }
        if !plan.extend.is_empty() {
            let mut q = inner.lock_acks();
            for (secs, ids) in plan.extend {
                super::stats::add(&inner.counters.extensions, ids.len());
                q.extend(secs, ids);
            }
        }
    }
}

/// How long before a lease runs out it is extended: half the deadline, at most 5 s, so an
/// extension has time to reach the service.
pub(crate) fn extension_margin(deadline: Duration) -> Duration {
    (deadline / 2).min(Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[tokio::test(start_paused = true)]
    async fn leases_are_extended_shortly_before_they_run_out() {
        let mut leases = Leases::default();
        let t0 = Instant::now();
        leases.insert("a".into(), t0, S(10));
        assert_eq!(leases.plan(t0 + S(4), S(10), S(5), S(3600)), Plan::default());
        let plan = leases.plan(t0 + S(6), S(10), S(5), S(3600));
        assert_eq!(plan.extend, vec![(10, vec!["a".to_owned()])]);
        // Extended to t0 + 16 s: nothing to do until 11 s.
        assert_eq!(leases.plan(t0 + S(10), S(10), S(5), S(3600)), Plan::default());
        assert_eq!(leases.plan(t0 + S(12), S(30), S(5), S(3600)).extend, vec![(30, vec!["a".to_owned()])]);
    }

    #[tokio::test(start_paused = true)]
    async fn extensions_stop_at_the_maximum() {
        let mut leases = Leases::default();
        let t0 = Instant::now();
        leases.insert("a".into(), t0, S(10));
        // 25 s max: at 6 s the remaining 19 s allow a full 10 s extension.
        assert_eq!(leases.plan(t0 + S(6), S(10), S(5), S(25)).extend, vec![(10, vec!["a".to_owned()])]);
        // At 12 s only 13 s remain of the maximum; at 20 s only 5 s, but never below 10 s.
        assert_eq!(leases.plan(t0 + S(12), S(60), S(5), S(25)).extend, vec![(13, vec!["a".to_owned()])]);
        assert_eq!(leases.plan(t0 + S(21), S(60), S(5), S(25)).extend, vec![(10, vec!["a".to_owned()])]);
        let plan = leases.plan(t0 + S(25), S(10), S(5), S(25));
        assert_eq!(plan.expired, vec!["a".to_owned()]);
        assert_eq!(leases.len(), 0);
    }

    #[test]
    fn the_deadline_follows_the_99th_percentile() {
        let mut l = AckLatencies::default();
        assert_eq!(l.deadline(S(10), S(600)), S(10));
        for _ in 0..98 {
            l.record(Duration::from_millis(300));
        }
        l.record(S(45));
        l.record(S(900));
        assert_eq!(l.deadline(S(10), S(600)), S(45));
        for _ in 0..5 {
            l.record(S(900));
        }
        assert_eq!(l.deadline(S(10), S(600)), S(600));
        let mut fast = AckLatencies::default();
        fast.record(Duration::from_millis(5));
        assert_eq!(fast.deadline(S(10), S(600)), S(10), "never below the minimum");
    }

    #[test]
    fn the_margin_leaves_time_for_the_request() {
        assert_eq!(extension_margin(S(10)), S(5));
        assert_eq!(extension_margin(S(600)), S(5));
    }
}
