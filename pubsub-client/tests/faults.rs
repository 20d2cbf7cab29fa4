//! Retries, failures and ordering keys, with a fault-injecting proxy in front of the emulator.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use pubsub_client::{Client, Error, Message, Publisher, PublisherConfig, RetryPolicy};
use testkit::{Emulator, Fault, FaultProxy};

use common::{PROJECT, count_payloads, drain, topic_and_subscription};

const DRAIN: Duration = Duration::from_secs(60);

fn fast_retries() -> RetryPolicy {
    RetryPolicy::default()
        .with_initial_backoff(Duration::from_millis(10))
        .with_max_backoff(Duration::from_millis(100))
        .with_total_timeout(Duration::from_secs(30))
}

async fn proxied_client(proxy: &FaultProxy, timeout: Duration) -> Client {
    Client::builder()
        .with_project(PROJECT)
        .with_emulator_host(proxy.host())
        .with_request_timeout(timeout)
        .build()
        .await
        .expect("client")
}

async fn setup(
    prefix: &str,
    ordering: bool,
    config: PublisherConfig,
) -> (FaultProxy, Client, Publisher, String) {
    let proxy = FaultProxy::start(Emulator::shared().addr()).await;
    let client = proxied_client(&proxy, Duration::from_secs(10)).await;
    let (topic, sub) = topic_and_subscription(&client, prefix, ordering).await;
    let publisher =
        client.publisher_with_config(&topic, config.with_retry_policy(fast_retries())).expect("publisher");
    (proxy, client, publisher, sub)
}

async fn publish_all(publisher: &Publisher, msgs: &[Message]) -> Vec<Result<String, Error>> {
    let mut handles = Vec::new();
    for m in msgs {
        handles.push(publisher.publish(m).await.expect("accepted"));
    }
    publisher.flush().await;
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_retryable_status_is_retried_and_the_message_lands_once() {
    let (proxy, client, publisher, sub) = setup("retry-codes", false, PublisherConfig::default()).await;
    let codes = [429, 499, 500, 502, 503, 504, 409];
    proxy.push_faults(codes.map(Fault::status));
    let results = publish_all(&publisher, &[Message::new("survivor")]).await;
    results[0].as_ref().expect("published after retries");
    assert_eq!(proxy.matched(), codes.len() + 1, "one attempt per injected fault plus the success");
    assert_eq!(publisher.stats().retries, codes.len() as u64);
    let got = drain(&client, &sub, 1, DRAIN).await;
    assert_eq!(got.len(), 1, "retries of refused requests must not duplicate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_and_slow_answers_lose_and_duplicate_nothing() {
    let config = PublisherConfig::default().with_max_messages(10).with_delay(Duration::from_millis(1));
    let (proxy, client, publisher, sub) = setup("retry-mix", false, config).await;
    let mut faults = Vec::new();
    for i in 0..30 {
        faults.push(match i % 5 {
            0 => Fault::status(503),
            1 => Fault::DropConnection,
            2 => Fault::Delay(Duration::from_millis(200)),
            3 => Fault::status(429),
            _ => Fault::Forward,
        });
    }
    proxy.push_faults(faults);
    let msgs: Vec<Message> = (0..500).map(|i| Message::new(format!("msg-{i}"))).collect();
    let results = publish_all(&publisher, &msgs).await;
    assert!(
        results.iter().all(Result::is_ok),
        "every message is published: {:?}",
        results.iter().find(|r| r.is_err())
    );
    assert!(proxy.faults_injected() >= 24, "faults were exercised: {}", proxy.faults_injected());
    let got = drain(&client, &sub, msgs.len(), DRAIN).await;
    let counts = count_payloads(&got);
    assert_eq!(counts.len(), msgs.len(), "no message lost");
    assert!(
        counts.values().all(|&n| n == 1),
        "a message arrived twice although the server refused the first try"
    );
    assert!(publisher.stats().retries >= 18);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failures_fail_fast_with_the_servers_message() {
    let (proxy, _client, publisher, _sub) = setup("permanent", false, PublisherConfig::default()).await;
    for code in [400, 403, 404] {
        let before = proxy.matched();
        proxy.push_faults([Fault::status(code)]);
        let err = publish_all(&publisher, &[Message::new("doomed")]).await.remove(0).expect_err("fails");
        assert_eq!(err.http_status(), Some(code));
        assert!(!err.is_retryable());
        assert!(err.to_string().contains(&format!("injected {code} by testkit FaultProxy")), "{err}");
        assert_eq!(proxy.matched() - before, 1, "{code} must not be retried");
    }
    assert_eq!(publisher.stats().messages_failed, 3);
    assert_eq!(publisher.stats().outstanding_messages, 0, "failed messages release flow control");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_lost_after_the_server_stored_the_batch_is_retried_at_least_once() {
    let (proxy, client, publisher, sub) = setup("lost-answer", false, PublisherConfig::default()).await;
    proxy.push_faults([Fault::DropAfterForward, Fault::StatusAfterForward(503)]);
    let results = publish_all(&publisher, &[Message::new("twice-stored")]).await;
    results[0].as_ref().expect("published");
    let got = drain(&client, &sub, 1, DRAIN).await;
    // The server stored it on the first two attempts too; the client could not know.
    assert_eq!(got.len(), 3, "at-least-once: each stored attempt is a copy");
    assert!(got.iter().all(|m| &m.data[..] == b"twice-stored"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_timeout_is_retried_and_nothing_is_lost() {
    let proxy = FaultProxy::start(Emulator::shared().addr()).await;
    let client = common::client().await;
    let (topic, sub) = topic_and_subscription(&client, "timeout", false).await;
    let impatient = proxied_client(&proxy, Duration::from_millis(500)).await;
    let publisher = impatient
        .publisher_with_config(&topic, PublisherConfig::default().with_retry_policy(fast_retries()))
        .expect("publisher");
    proxy.push_faults([Fault::Delay(Duration::from_secs(2))]);
    let results = publish_all(&publisher, &[Message::new("slow")]).await;
    results[0].as_ref().expect("published by a retry");
    assert!(publisher.stats().retries >= 1);
    let got = drain(&client, &sub, 1, DRAIN).await;
    assert!(!got.is_empty() && got.iter().all(|m| &m.data[..] == b"slow"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stop_at_the_total_deadline() {
    let retry = RetryPolicy::default()
        .with_initial_backoff(Duration::from_millis(10))
        .with_max_backoff(Duration::from_millis(50))
        .with_total_timeout(Duration::from_millis(500));
    let proxy = FaultProxy::start(Emulator::shared().addr()).await;
    let client = proxied_client(&proxy, Duration::from_secs(10)).await;
    let (topic, _sub) = topic_and_subscription(&client, "deadline", false).await;
    let publisher = client
        .publisher_with_config(&topic, PublisherConfig::default().with_retry_policy(retry))
        .expect("publisher");
    proxy.push_faults(std::iter::repeat_n(Fault::status(503), 1000));
    let err = publish_all(&publisher, &[Message::new("never")]).await.remove(0).expect_err("gives up");
    match &err {
        Error::RetriesExhausted { attempts, last, .. } => {
            assert!(*attempts > 2, "{attempts}");
            assert_eq!(last.http_status(), Some(503));
        }
        other => panic!("expected RetriesExhausted, got {other:?}"),
    }
    assert_eq!(publisher.stats().messages_failed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordering_keys_stay_in_order_through_retries() {
    let config = PublisherConfig::default().with_max_messages(7).with_delay(Duration::from_millis(1));
    let (proxy, client, publisher, sub) = setup("ordered", true, config).await;
    let faults = (0..40).map(|i| match i % 4 {
        0 => Fault::status(503),
        1 => Fault::DropConnection,
        2 => Fault::Delay(Duration::from_millis(50)),
        _ => Fault::Forward,
    });
    proxy.push_faults(faults);
    let keys = ["alpha", "beta", "gamma"];
    let msgs: Vec<Message> = (0..450)
        .map(|i| {
            let key = keys[i % 3];
            Message::new(format!("{key}:{:04}", i / 3)).with_ordering_key(key)
        })
        .collect();
    let results = publish_all(&publisher, &msgs).await;
    // The emulator numbers messages in the order it stores them.
    let mut last: HashMap<&str, u64> = HashMap::new();
    for (m, r) in msgs.iter().zip(&results) {
        let id: u64 = r.as_ref().expect("published").parse().expect("numeric id");
        let prev = last.insert(m.ordering_key(), id);
        assert!(prev.is_none_or(|p| p < id), "key {} stored out of order", m.ordering_key());
    }
    assert!(proxy.faults_injected() >= 30);
    let got = drain(&client, &sub, msgs.len(), DRAIN).await;
    assert_eq!(count_payloads(&got).len(), msgs.len());
}

/// On a current-thread runtime the send tasks only run once the test yields, so all three
/// keyed messages are queued before the first request is answered.
#[tokio::test]
async fn a_failed_ordering_key_pauses_until_resumed() {
    let config = PublisherConfig::default().with_max_messages(1).with_delay(Duration::ZERO);
    let (proxy, client, publisher, sub) = setup("paused", true, config).await;
    proxy.push_faults([Fault::status(400)]);
    let mut keyed = Vec::new();
    for i in 0..3 {
        keyed.push(
            publisher.publish(&Message::new(format!("k{i}")).with_ordering_key("k")).await.expect("accepted"),
        );
    }
    let mut results = Vec::new();
    for h in keyed {
        results.push(h.await);
    }
    assert_eq!(results[0].as_ref().expect_err("first fails").http_status(), Some(400));
    for r in &results[1..] {
        assert!(matches!(r, Err(Error::OrderingKeyPaused { key }) if key == "k"), "{r:?}");
    }
    let refused = publisher.publish(&Message::new("k3").with_ordering_key("k")).await.expect_err("paused");
    assert!(matches!(refused, Error::OrderingKeyPaused { .. }), "{refused:?}");
    publisher
        .publish(&Message::new("other").with_ordering_key("other"))
        .await
        .expect("other keys go on")
        .await
        .expect("ok");
    publisher.resume_publish("k");
    publisher
        .publish(&Message::new("k4").with_ordering_key("k"))
        .await
        .expect("resumed")
        .await
        .expect("published");
    let got = drain(&client, &sub, 2, DRAIN).await;
    let mut payloads: Vec<_> = got.iter().map(|m| String::from_utf8_lossy(&m.data).into_owned()).collect();
    payloads.sort();
    assert_eq!(payloads, ["k4", "other"]);
    assert_eq!(publisher.stats().outstanding_messages, 0);
}
