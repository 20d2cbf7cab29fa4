//! `--client raw`: a pre-encoded REST blaster, the ceiling any REST client can reach against a
//! server under the same limits. One publish body (`--batch-messages` messages of
//! `--payload-bytes`, gzipped with `--gzip`) is encoded once before the run; then loops POST
//! that same body, paced by messages like the other clients, each request to a topic picked at
//! the weights and holding one of that topic's `--max-in-flight` slots, the limit pubsub-client
//! runs under (so a loop waiting for a slot of a busy topic holds up the others, as a blocked
//! producer does).
//!
//! It speaks only to plain-http targets (emulator, null sink, `http://` URL): it holds no
//! credentials. A request counts as published for the message ids it gets back.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{Context, bail};
use bytes::Bytes;
use pubsub_client::limits::MAX_MESSAGES_PER_PUBLISH;
use pubsub_client::wire::{self, PublishBody};
use pubsub_client::{Message, PublisherStats};

use crate::cli::PublishOptions;
use crate::generate::{Generated, Setup};
use crate::mix::{Payloads, TopicMix};
use crate::pace::{Pacer, RateFn};
use crate::stats::{Counters, Latency};

/// A topic's publish URL, the pre-encoded body and the topic's in-flight slots.
struct Prepared {
    url: String,
    body: Bytes,
    messages: u64,
    slots: Arc<tokio::sync::Semaphore>,
}

/// The publish body of `n` messages cut from `payloads`, encoded by pubsub-client's own wire
/// format (the bytes its publisher would send for them).
pub fn encode_body(payloads: &Payloads, n: usize) -> Bytes {
    let mut rng = fastrand::Rng::with_seed(11);
    let mut body = PublishBody::new();
    for _ in 0..n {
        body.push(&Message::new(payloads.next(&mut rng)));
    }
    body.finish()
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
    // One body serves every topic; gzipped once when asked.
    let plain = encode_body(&payloads, n);
    let body_bytes = plain.len() as u64;
    let body = if o.gzip { Bytes::from(wire::gzip(&plain, 1)) } else { plain };
    let prepared: Vec<Prepared> = setup
        .topics
        .iter()
        .map(|(topic, _)| Prepared {
            url: format!("http://{host}/v1/projects/{}/topics/{topic}:publish", o.project),
            body: body.clone(),
            messages: n as u64,
            slots: Arc::new(tokio::sync::Semaphore::new(o.max_in_flight.max(1))),
        })
        .collect();
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
    Ok(Generated { stats })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_valid_publish_requests() {
        let p = Payloads::new(150);
        let body = encode_body(&p, 3);
        let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        let msgs = v["messages"].as_array().expect("messages");
        assert_eq!(msgs.len(), 3);
        let data = base64_simd::STANDARD.decode_to_vec(msgs[0]["data"].as_str().expect("data")).expect("b64");
        assert_eq!(data.len(), 150);
    }

    #[test]
    fn answers_are_counted_by_their_ids() {
        assert_eq!(answered_ids(br#"{"messageIds":["1","2","3"]}"#), 3);
        assert_eq!(answered_ids(br#"{"error":{"code":503}}"#), 0);
        assert_eq!(answered_ids(b"not json"), 0);
    }
}
