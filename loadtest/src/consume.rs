//! `loadtest consume`: publishers and subscribers together, at a constant or diurnal rate;
//! every message carries its producer, sequence number and send time, so the run reports
//! end-to-end latency, lost messages (confirmed but never received) and duplicates.

use std::f64::consts::PI;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::bail;
use tokio::sync::watch;

use crate::cli::{ConsumeArgs, Profile};
use crate::generate::{ATTR_PRODUCER, ATTR_SENT_NS, ATTR_SEQ, Setup, Tracker, generate, setup};
use crate::publish::{Measured, base_summary, sample_until};
use crate::stats::{Counters, Latency, Sampler};
use crate::summary::Summary;

/// The offered rate at `t` of a run of `duration` peaking at `peak`.
pub fn profile_rate(profile: Profile, peak: f64, t: Duration, duration: Duration) -> f64 {
    match profile {
        Profile::Constant => peak,
        Profile::Diurnal => {
            let x = (PI * t.as_secs_f64() / duration.as_secs_f64().max(1e-9)).sin();
            peak * (0.2 + 0.8 * x * x)
        }
    }
}

/// Runs the consumer stability test.
pub async fn run(args: ConsumeArgs) -> anyhow::Result<(Summary, Sampler)> {
    let o = args.publish.clone();
    let Some(peak) = o.rate.0.map(f64::from) else {
        bail!("consume needs a --rate (the peak of the profile); `max` would only measure the backlog");
    };
    if o.client != crate::cli::ClientKind::Ours {
        bail!("consume runs pubsub-client only (--client ours); compare clients with `loadtest publish`");
    }
    if o.target == crate::cli::Target::Null {
        bail!("consume needs a target that delivers messages: emulator, pubsub or a URL");
    }
    let setup = setup(&o).await?;
    let counters = Arc::new(Counters::default());
    let publish_latency = Arc::new(Latency::default());
    let e2e = Arc::new(Latency::default());
    let tracker = Arc::new(Mutex::new(Tracker::default()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut subscribers = tokio::task::JoinSet::new();
    for (topic, _) in &setup.topics {
        let mut sub = setup.client.subscriber(&Setup::subscription_of(topic))?;
        let (counters, e2e, tracker, mut stop) =
            (counters.clone(), e2e.clone(), tracker.clone(), stop_rx.clone());
        subscribers.spawn(async move {
            let mut batch = Vec::with_capacity(256);
            loop {
                let d = tokio::select! {
                    d = sub.next() => d,
                    _ = stop.wait_for(|s| *s) => break,
                };
                let Some(Ok(d)) = d else { continue };
                let a = d.attributes();
                let parsed = (
                    a.get(ATTR_PRODUCER).and_then(|v| v.parse::<usize>().ok()),
                    a.get(ATTR_SEQ).and_then(|v| v.parse::<u64>().ok()),
                    a.get(ATTR_SENT_NS).and_then(|v| v.parse::<u128>().ok()),
                );
                if let (Some(p), Some(seq), Some(sent)) = parsed {
                    let now =
                        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
                    batch.push((now.saturating_sub(sent) / 1000) as u64);
                    if tracker.lock().unwrap_or_else(std::sync::PoisonError::into_inner).receive(p, seq) {
                        counters.received.fetch_add(1, Ordering::Relaxed);
                    }
                }
                drop(d.ack());
                if batch.len() >= 16 {
                    e2e.record(&batch);
                    batch.clear();
                }
            }
            e2e.record(&batch);
            sub.shutdown(Duration::from_secs(5)).await;
        });
    }
    let (profile, duration) = (args.profile, o.duration);
    let rate_at = Arc::new(move |t: Duration| Some(profile_rate(profile, peak, t, duration)));
    let cpu0 = crate::proc_stats::cpu_seconds();
    let start = Instant::now();
    let work = async {
        let g =
            generate(&o, &setup, rate_at, counters.clone(), publish_latency.clone(), Some(tracker.clone()))
                .await?;
        // Drain: wait until every confirmed message arrived, or the drain time is up.
        let deadline = Instant::now() + args.drain;
        loop {
            let (confirmed, lost, _) =
                tracker.lock().unwrap_or_else(std::sync::PoisonError::into_inner).tally();
            if (lost == 0 && confirmed > 0) || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::Ok(g)
    };
    let offered = |t: Duration| if t < duration { profile_rate(profile, peak, t, duration) } else { 0.0 };
    let (g, sampler) = sample_until(work, offered, &counters, &publish_latency, Some(&e2e), o.quiet).await;
    let g = g?;
    let _ = stop_tx.send(true);
    while subscribers.join_next().await.is_some() {}
    let seconds = start.elapsed().as_secs_f64();
    let cpu = crate::proc_stats::cpu_seconds() - cpu0;
    let m =
        Measured { generated: &g, counters: &counters, latency: &publish_latency, seconds, cpu_seconds: cpu };
    let mut s = base_summary("consume", &o, &setup, &m);
    let (_, lost, dups) = tracker.lock().unwrap_or_else(std::sync::PoisonError::into_inner).tally();
    let (e50, e99) = e2e.total();
    s.offered_rate = peak;
    s.received = Some(counters.get().2);
    s.lost = Some(lost);
    s.duplicates = Some(dups);
    s.e2e_p50_ms = Some(e50);
    s.e2e_p99_ms = Some(e99);
    if o.cleanup {
        setup.cleanup().await;
    }
    Ok((s, sampler))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diurnal_profile_peaks_midway() {
        let d = Duration::from_secs(600);
        let at = |s| profile_rate(Profile::Diurnal, 1000.0, Duration::from_secs(s), d);
        assert!((at(0) - 200.0).abs() < 1e-6);
        assert!((at(300) - 1000.0).abs() < 1e-6);
        assert!(at(150) > at(0) && at(150) < at(300));
        assert_eq!(profile_rate(Profile::Constant, 5.0, Duration::ZERO, d), 5.0);
    }

    #[test]
    fn tracker_counts_lost_and_duplicates() {
        let mut t = Tracker { confirmed: vec![Vec::new()], received: vec![Vec::new()] };
        for seq in 0..4 {
            t.confirmed[0].push(true);
            let _ = seq;
        }
        assert!(t.receive(0, 0));
        assert!(t.receive(0, 1));
        assert!(t.receive(0, 1));
        assert!(t.receive(0, 3));
        assert!(!t.receive(5, 0), "unknown producer");
        assert_eq!(t.tally(), (4, 1, 1));
    }
}
