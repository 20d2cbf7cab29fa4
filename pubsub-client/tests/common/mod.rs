//! Helpers shared by this crate's integration tests.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pubsub_client::{Client, ReceivedMessage, Subscription, Topic};
use testkit::Emulator;

pub const PROJECT: &str = "eventpipe-test";

/// A client for the shared emulator of this test binary.
pub async fn client() -> Client {
    client_for(&Emulator::shared().host()).await
}

/// Logs to the test output when `RUST_LOG` is set (e.g. `RUST_LOG=pubsub_client=debug`).
pub fn init_tracing() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        }
    });
}

/// A client for an emulator (or a proxy in front of it) at `host`.
pub async fn client_for(host: &str) -> Client {
    init_tracing();
    Client::builder()
        .with_project(PROJECT)
        .with_emulator_host(host)
        .with_request_timeout(Duration::from_secs(10))
        .build()
        .await
        .expect("client builds")
}

/// Creates a fresh topic and a subscription on it; returns their ids.
pub async fn topic_and_subscription(client: &Client, prefix: &str, ordering: bool) -> (String, String) {
    let topic = testkit::unique_name(prefix);
    let sub = format!("{topic}-sub");
    client.create_topic(&Topic::new(&topic)).await.expect("create topic");
    client
        .create_subscription(
            &Subscription::new(&sub, &topic).with_ack_deadline_seconds(60).with_message_ordering(ordering),
        )
        .await
        .expect("create subscription");
    (topic, sub)
}

/// Pulls and acks until at least `expected` messages arrived and a pull comes back empty, or
/// the deadline passes. Returns everything received, duplicates included.
pub async fn drain(client: &Client, sub: &str, expected: usize, deadline: Duration) -> Vec<ReceivedMessage> {
    let end = Instant::now() + deadline;
    let mut got = Vec::new();
    loop {
        let batch = client.pull_immediately(sub, 1000).await.expect("pull");
        let ids: Vec<String> = batch.iter().map(|m| m.ack_id.clone()).collect();
        if !ids.is_empty() {
            client.acknowledge(sub, &ids).await.expect("ack");
        }
        let empty = batch.is_empty();
        got.extend(batch);
        if empty && got.len() >= expected {
            return got;
        }
        if Instant::now() > end {
            return got;
        }
    }
}

/// Counts how often each payload arrived.
pub fn count_payloads(msgs: &[ReceivedMessage]) -> HashMap<Vec<u8>, usize> {
    let mut counts = HashMap::new();
    for m in msgs {
        *counts.entry(m.data.to_vec()).or_insert(0) += 1;
    }
    counts
}
