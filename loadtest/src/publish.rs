//! `loadtest publish`: the producer load test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::{ClientKind, PublishArgs, PublishOptions};
use crate::generate::{Generated, Setup, generate, setup};
use crate::pace::RateFn;
use crate::stats::{Counters, Latency, Sampler};
use crate::summary::Summary;

/// Samples once a second until `done` resolves.
pub async fn sample_until<F: std::future::Future>(
    done: F,
    offered: impl Fn(Duration) -> f64,
    counters: &Counters,
    publish: &Latency,
    e2e: Option<&Latency>,
    quiet: bool,
) -> (F::Output, Sampler) {
    let mut sampler = Sampler::new(quiet);
    let start = Instant::now();
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    tokio::pin!(done);
    let mut t = 0;
    loop {
        tokio::select! {
            out = &mut done => {
                t += 1;
                sampler.sample(t, offered(start.elapsed()), counters, publish, e2e);
                return (out, sampler);
            }
            _ = tick.tick() => {
                t += 1;
                sampler.sample(t, offered(start.elapsed()), counters, publish, e2e);
            }
        }
    }
}

/// What a run measured, for [`base_summary`].
pub struct Measured<'a> {
    /// The generator's result.
    pub generated: &'a Generated,
    /// The counters.
    pub counters: &'a Counters,
    /// Publish latency.
    pub latency: &'a Latency,
    /// Wall seconds.
    pub seconds: f64,
    /// CPU seconds of this process.
    pub cpu_seconds: f64,
}

/// The summary fields every mode shares.
pub fn base_summary(mode: &str, o: &PublishOptions, setup: &Setup, m: &Measured<'_>) -> Summary {
    let (g, counters, latency, seconds, cpu_seconds) =
        (m.generated, m.counters, m.latency, m.seconds, m.cpu_seconds);
    let (published, failed, _) = counters.get();
    let (p50, p99) = latency.total();
    let s = &g.stats;
    Summary {
        mode: mode.to_owned(),
        client: o.client.name().to_owned(),
        target: setup.target.to_string(),
        topics: setup.topics.iter().map(|(t, _)| t.clone()).collect(),
        offered_rate: o.rate.0.map_or(0.0, f64::from),
        achieved_rate: (published as f64 / seconds.max(1e-9)).round(),
        published,
        failed,
        seconds,
        cpu_seconds,
        cpu_ns_per_msg: (cpu_seconds * 1e9 / published.max(1) as f64).round(),
        sink_cpu_seconds: setup.sink_cpu_seconds(),
        p50_ms: p50,
        p99_ms: p99,
        peak_rss_bytes: crate::proc_stats::peak_rss_bytes(),
        wire_bytes: s.wire_bytes,
        body_bytes: s.body_bytes,
        payload_bytes: published * o.payload_bytes as u64,
        requests: s.requests,
        retries: s.retries,
        flow_control_wait_seconds: s.flow_control_wait.as_secs_f64(),
        request_seconds: s.request_time.as_secs_f64(),
        mean_request_ms: s.request_time.as_secs_f64() * 1000.0 / s.requests.max(1) as f64,
        ..Summary::default()
    }
}

/// Runs the producer test.
pub async fn run(args: PublishArgs) -> anyhow::Result<(Summary, Sampler)> {
    let o = args.publish;
    let setup = setup(&o).await?;
    let counters = Arc::new(Counters::default());
    let latency = Arc::new(Latency::default());
    let rate = o.rate.0.map(f64::from);
    let cpu0 = crate::proc_stats::cpu_seconds();
    let start = Instant::now();
    let rate_at: RateFn = Arc::new(move |_| rate);
    let (c, l) = (counters.clone(), latency.clone());
    let done = async {
        match o.client {
            ClientKind::Ours => generate(&o, &setup, rate_at, c, l, None).await,
            ClientKind::Raw => crate::raw::generate(&o, &setup, rate_at, c, l).await,
            #[cfg(feature = "official")]
            ClientKind::Official => crate::official::generate(&o, &setup, rate_at, c, l).await,
            #[cfg(not(feature = "official"))]
            ClientKind::Official => {
                anyhow::bail!("this loadtest was built without the `official` feature (Google's client)")
            }
        }
    };
    let (g, sampler) = sample_until(done, |_| rate.unwrap_or(0.0), &counters, &latency, None, o.quiet).await;
    let g = g?;
    let seconds = start.elapsed().as_secs_f64();
    let cpu = crate::proc_stats::cpu_seconds() - cpu0;
    let m = Measured { generated: &g, counters: &counters, latency: &latency, seconds, cpu_seconds: cpu };
    let summary = base_summary("publish", &o, &setup, &m);
    if o.cleanup {
        setup.cleanup().await;
    }
    Ok((summary, sampler))
}
