//! `--client raw`: a pre-encoded REST blaster, the ceiling any REST client can reach against a
//! server under the same limits. One publish body per topic (`--batch-messages` messages of
//! `--payload-bytes`, gzipped with `--gzip`) is encoded once before the run; then loops POST
//! that same body, paced by messages like the other clients, each request to a topic picked at
//! the weights and holding one of that topic's `--max-in-flight` slots, the limit pubsub-client
//! runs under (so a loop waiting for a slot of a busy topic holds up the others, as a blocked
//! producer does).
//!
//! It speaks only to plain-http targets (emulator, null sink, `http://` URL): it holds no
//! credentials. A request counts as published for the message ids it gets back.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use pubsub_client::PublisherStats;
use pubsub_client::limits::MAX_MESSAGES_PER_PUBLISH;
use serde_json::json;

use crate::cli::PublishOptions;
use crate::generate::{Generated, Setup};
use crate::mix::{Payloads, TopicMix};
use crate::pace::{Pacer, RateFn};
use crate::stats::{Counters, Latency};

/// A topic's publish URL and its pre-encoded body.
struct Prepared {
    url: String,
    body: Bytes,
    messages: u64,
    slots: Arc<tokio::sync::Semaphore>,
}

/// The publish body of `n` messages cut from `payloads`, and gzipped with `gzip`.
pub fn encode_body(payloads: &Payloads, n: usize, gzip: bool) -> anyhow::Result<Bytes> {
    let mut rng = fastrand::Rng::with_seed(11);
    let messages: Vec<_> = (0..n)
        .map(|_| json!({ "data": base64_simd::STANDARD.encode_to_string(payloads.next(&mut rng)) }))
        .collect();
    let body = serde_json::to_vec(&json!({ "messages": messages }))?;
    if !gzip {
        return Ok(body.into());
    }
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(1));
    z.write_all(&body)?;
    Ok(z.finish()?.into())
}

/// How many message ids a publish answer holds.
pub fn answered_ids(answer: &[u8]) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(answer).unwrap_or_default();
    v["messageIds"].as_array().map_or(0, |a| a.len() as u64)
}

/// Blasts the pre-encoded bodies for `o.duration` at `rate_at(elapsed)` messages/s.
pub async fn generate(
    o: &PublishOptions,
    setup: &Setup,
    rate_at: RateFn,
    counters: Arc<Counters>,
    latency: Arc<Latency>,
) -> anyhow::Result<Generated> {
    let Some(host) = setup.plain_host.clone() else {
        bail!(
            "--client raw holds no credentials: use a plain-http target (emulator, null or an http:// URL)"
        );
    };
    let n = o.batch_messages.clamp(1, MAX_MESSAGES_PER_PUBLISH);
    let payloads = Payloads::new(o.payload_bytes);
    let mut prepared = Vec::new();
    let mut body_bytes = 0;
    for (topic, _) in &setup.topics {
        let body = encode_body(&payloads, n, o.gzip)?;
        body_bytes = encode_body(&payloads, n, false)?.len() as u64;
        let url = format!("http://{host}/v1/projects/{}/topics/{topic}:publish", o.project);
        let slots = Arc::new(tokio::sync::Semaphore::new(o.max_in_flight.max(1)));
        prepared.push(Prepared { url, body, messages: n as u64, slots });
    }
    let prepared = Arc::new(prepared);
    let loops = o.max_in_flight.max(1) * setup.topics.len();
    let http = reqwest::Client::builder()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(loops)
        .build()
        .context("building the HTTP client")?;
    let mix = TopicMix::new(&setup.topics);
    let (gzip, start) = (o.gzip, Instant::now());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..loops {
        let (http, prepared, mix, rate_at) = (http.clone(), prepared.clone(), mix.clone(), rate_at.clone());
        let (counters, latency, duration) = (counters.clone(), latency.clone(), o.duration);
        tasks.spawn(async move {
            let mut rng = fastrand::Rng::new();
            let mut pacer = Pacer::new(rate_at, start, duration, loops);
            let mut stats = PublisherStats::default();
            let mut credit = 0u64;
            let mut lat = Vec::new();
            while let Some(chunk) = pacer.next().await {
                credit += u64::from(chunk);
                let p = &prepared[mix.pick(&mut rng)];
                if credit < p.messages {
                    continue;
                }
                credit -= p.messages;
                let Ok(_slot) = p.slots.acquire().await else { break };
                let t0 = Instant::now();
                let mut req =
                    http.post(&p.url).header("content-type", "application/json").body(p.body.clone());
                if gzip {
                    req = req.header("content-encoding", "gzip");
                }
                let ids = match req.send().await {
                    Ok(r) if r.status().is_success() => r.bytes().await.map_or(0, |b| answered_ids(&b)),
                    _ => 0,
                };
                let took = t0.elapsed();
                stats.requests += 1;
                stats.request_time += took;
                stats.wire_bytes += p.body.len() as u64;
                counters.published.fetch_add(ids, Ordering::Relaxed);
                counters.failed.fetch_add(p.messages.saturating_sub(ids), Ordering::Relaxed);
                lat.clear();
                lat.resize(ids as usize, took.as_micros() as u64);
                latency.record(&lat);
            }
            stats
        });
    }
    let mut stats = PublisherStats::default();
    while let Some(r) = tasks.join_next().await {
        let s = r.context("a blaster task")?;
        stats.requests += s.requests;
        stats.request_time += s.request_time;
        stats.wire_bytes += s.wire_bytes;
    }
    stats.body_bytes = body_bytes * stats.requests;
    stats.messages_published = counters.published.load(Ordering::Relaxed);
    stats.messages_failed = counters.failed.load(Ordering::Relaxed);
    stats.flow_control_wait = Duration::ZERO;
    Ok(Generated { stats })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_valid_publish_requests() {
        let p = Payloads::new(150);
        let body = encode_body(&p, 3, false).expect("body");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        let msgs = v["messages"].as_array().expect("messages");
        assert_eq!(msgs.len(), 3);
        let data = base64_simd::STANDARD.decode_to_vec(msgs[0]["data"].as_str().expect("data")).expect("b64");
        assert_eq!(data.len(), 150);
        let gz = encode_body(&p, 3, true).expect("gzip");
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut plain).expect("gunzip");
        assert_eq!(plain, body.to_vec(), "the same body, compressed");
    }

    #[test]
    fn answers_are_counted_by_their_ids() {
        assert_eq!(answered_ids(br#"{"messageIds":["1","2","3"]}"#), 3);
        assert_eq!(answered_ids(br#"{"error":{"code":503}}"#), 0);
        assert_eq!(answered_ids(b"not json"), 0);
    }
}
