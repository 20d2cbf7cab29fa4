//! `--client official`: the same producer test with Google's official Rust client
//! (`google-cloud-pubsub`, gRPC), so both clients are measured side by side against the same
//! emulator in the same session.
//!
//! The official publisher has no flow control of its own (its queue is unbounded), so a
//! producer reserves a place in its topic's bounded queue to the completion task before it
//! publishes: at most `--max-outstanding-messages` per topic are accepted but not yet
//! confirmed, memory stays bounded and the time spent waiting for a place is reported as
//! flow-control wait, as for ours. Batching follows the same settings
//! (`--batch-messages`, `--batch-delay`, at most 10 MB a request). Its gRPC channel speaks
//! plain HTTP/2 to the emulator (anonymous credentials) and, with application default
//! credentials, TLS to real Pub/Sub.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use google_cloud_pubsub::client::{BasePublisher, Publisher};
use google_cloud_pubsub::model::Message;
use google_cloud_pubsub::publisher::PublishFuture;
use pubsub_client::PublisherStats;
use pubsub_client::limits::{MAX_MESSAGES_PER_PUBLISH, MAX_PUBLISH_REQUEST_BYTES};
use tokio::sync::mpsc;

use crate::cli::{PublishOptions, Target};
use crate::generate::{Generated, Setup};
use crate::mix::{Payloads, TopicMix};
use crate::pace::{Pacer, RateFn};
use crate::stats::{Confirmations, Counters, Latency};

struct Pending {
    started: Instant,
    future: PublishFuture,
}

/// The gRPC endpoint of the target: `Some(http://host:port)` for plain targets, `None` for
/// Google's default endpoint.
fn endpoint(target: &Target, plain_host: Option<&str>) -> anyhow::Result<Option<String>> {
    match (target, plain_host) {
        (Target::Null, _) => bail!(
            "--client official speaks gRPC and the null sink only REST: use --target emulator (or pubsub) \
             for the official client, and --target null for ours or raw"
        ),
        (_, Some(host)) => Ok(Some(format!("http://{host}"))),
        (Target::Url(u), None) => Ok(Some(u.clone())),
        _ => Ok(None),
    }
}

async fn base_publisher(setup: &Setup) -> anyhow::Result<BasePublisher> {
    // The crate's own default TLS provider (aws-lc) is not built; use ring, as the workspace does.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = BasePublisher::builder();
    if let Some(e) = endpoint(&setup.target, setup.plain_host.as_deref())? {
        if e.starts_with("http://") {
            b = b.with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build());
        }
        b = b.with_endpoint(e);
    }
    b.build().await.context("building Google's official publisher client")
}

/// Publishes for `o.duration` at `rate_at(elapsed)` messages/s with the official client.
pub async fn generate(
    o: &PublishOptions,
    setup: &Setup,
    rate_at: RateFn,
    counters: Arc<Counters>,
    latency: Arc<Latency>,
) -> anyhow::Result<Generated> {
    let base = base_publisher(setup).await?;
    let producers = o.producers.max(1);
    let mut publishers: Vec<Publisher> = Vec::new();
    let mut senders = Vec::new();
    let mut completions = tokio::task::JoinSet::new();
    for (topic, _) in &setup.topics {
        let p = base
            .publisher(format!("projects/{}/topics/{topic}", o.project))
            .set_message_count_threshold(o.batch_messages.clamp(1, MAX_MESSAGES_PER_PUBLISH) as u32)
            .set_byte_threshold(MAX_PUBLISH_REQUEST_BYTES as u32)
            .set_delay_threshold(o.batch_delay)
            .build();
        publishers.push(p);
        let (tx, mut rx) = mpsc::channel::<Pending>(o.max_outstanding_messages.max(1));
        senders.push(tx);
        let mut done = Confirmations::new(counters.clone(), latency.clone());
        completions.spawn(async move {
            while let Some(p) = rx.recv().await {
                match p.future.await {
                    Ok(_) => done.confirmed(p.started),
                    Err(_) => done.failed(),
                }
                done.flush_if(rx.is_empty());
            }
        });
    }
    let mix = TopicMix::new(&setup.topics);
    let payloads = Payloads::new(o.payload_bytes);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..producers {
        let (publishers, senders) = (publishers.clone(), senders.clone());
        let (mix, payloads, rate_at, duration) = (mix.clone(), payloads.clone(), rate_at.clone(), o.duration);
        tasks.spawn(async move {
            let mut rng = fastrand::Rng::new();
            let mut pacer = Pacer::new(rate_at, start, duration, producers);
            let (mut waits, mut waited) = (0u64, Duration::ZERO);
            while let Some(chunk) = pacer.next().await {
                for _ in 0..chunk {
                    let i = mix.pick(&mut rng);
                    let started = Instant::now();
                    // The place in the queue is the flow-control permit: taken before publishing.
                    let place = match senders[i].try_reserve() {
                        Ok(place) => place,
                        Err(mpsc::error::TrySendError::Full(())) => {
                            let Ok(place) = senders[i].reserve().await else { return (waits, waited) };
                            waits += 1;
                            waited += started.elapsed();
                            place
                        }
                        Err(mpsc::error::TrySendError::Closed(())) => return (waits, waited),
                    };
                    let future = publishers[i].publish(Message::new().set_data(payloads.next(&mut rng)));
                    place.send(Pending { started, future });
                }
            }
            (waits, waited)
        });
    }
    let mut stats = PublisherStats::default();
    while let Some(r) = tasks.join_next().await {
        let (waits, waited) = r.context("a producer task")?;
        stats.flow_control_waits += waits;
        stats.flow_control_wait += waited;
    }
    drop(senders);
    for p in &publishers {
        p.flush().await;
    }
    while completions.join_next().await.is_some() {}
    Ok(Generated { stats })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_null_sink_is_refused_with_the_reason() {
        let err = endpoint(&Target::Null, Some("127.0.0.1:1")).expect_err("null is REST only").to_string();
        assert!(err.contains("gRPC") && err.contains("--target emulator"), "{err}");
        let e = endpoint(&Target::Emulator, Some("127.0.0.1:8085")).expect("emulator");
        assert_eq!(e.as_deref(), Some("http://127.0.0.1:8085"));
        assert_eq!(endpoint(&Target::Pubsub, None).expect("pubsub"), None, "Google's default endpoint");
        let u = "https://pubsub.example.com".to_owned();
        assert_eq!(endpoint(&Target::Url(u.clone()), None).expect("url"), Some(u));
    }
}
