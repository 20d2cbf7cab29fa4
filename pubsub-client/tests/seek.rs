//! Seek and snapshots against the real Pub/Sub emulator: replaying messages by time and by
//! snapshot, and managing snapshots.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime};

use pubsub_client::admin::format_rfc3339;
use pubsub_client::{
    Client, CreateSnapshot, Error, Message, ReceivedMessage, SeekTarget, Subscription, Topic,
};
use serde_json::{Value, json};
use testkit::{Emulator, FaultProxy};

use common::{PROJECT, client, client_for, drain};

/// Creates a topic and a subscription (60 s ack deadline) on it; returns their ids.
async fn topic_and_subscription(client: &Client, prefix: &str, retain_acked: bool) -> (String, String) {
    let topic = testkit::unique_name(prefix);
    let sub = format!("{topic}-sub");
    client.create_topic(&Topic::new(&topic)).await.expect("create topic");
    let wanted = Subscription::new(&sub, &topic)
        .with_ack_deadline_seconds(60)
        .with_retain_acked_messages(retain_acked);
    let created = client.create_subscription(&wanted).await.expect("create subscription");
    assert_eq!(created.retain_acked_messages, retain_acked);
    (topic, sub)
}

/// Publishes `payloads` and waits for every message id.
async fn publish(client: &Client, topic: &str, payloads: &[&str]) {
    let publisher = client.publisher(topic).expect("publisher");
    let mut handles = Vec::new();
    for p in payloads {
        handles.push(publisher.publish(&Message::new(p.to_string())).await.expect("queued"));
    }
    for h in handles {
        h.await.expect("published");
    }
    publisher.shutdown().await;
}

/// Pulls without acknowledging until `n` messages arrived or 10 s passed.
async fn pull_n(client: &Client, sub: &str, n: usize) -> Vec<ReceivedMessage> {
    let end = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < end {
        got.extend(client.pull_immediately(sub, 100).await.expect("pull"));
    }
    got
}

/// The payloads of `msgs`, as a set of strings.
fn payloads(msgs: &[ReceivedMessage]) -> BTreeSet<String> {
    msgs.iter().map(|m| String::from_utf8_lossy(&m.data).into_owned()).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Drains (pulls and acks) the subscription until `expected` messages arrived and a pull came
/// back empty (or 10 s passed); returns their payloads. With `expected` 0 it returns at the
/// first empty pull.
async fn redelivered(client: &Client, sub: &str, expected: &[&str]) -> BTreeSet<String> {
    payloads(&drain(client, sub, expected.len(), Duration::from_secs(10)).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeking_back_to_a_time_redelivers_acked_messages() {
    let client = client().await;
    let (topic, sub) = topic_and_subscription(&client, "seek-time", true).await;
    let before = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let all = ["t0", "t1", "t2", "t3", "t4"];
    publish(&client, &topic, &all).await;
    assert_eq!(payloads(&drain(&client, &sub, all.len(), Duration::from_secs(10)).await), set(&all));
    assert_eq!(redelivered(&client, &sub, &[]).await, set(&[]), "all acked");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after = SystemTime::now();

    // After the last publish: nothing comes back.
    client.seek_to_time(&sub, after).await.expect("seek after");
    assert_eq!(redelivered(&client, &sub, &[]).await, set(&[]));

    // Before the first publish: everything comes back, given as RFC 3339.
    let target = SeekTarget::rfc3339(&format_rfc3339(before)).expect("valid time");
    client.seek(&sub, &target).await.expect("seek before");
    assert_eq!(redelivered(&client, &sub, &all).await, set(&all));
    assert_eq!(redelivered(&client, &sub, &[]).await, set(&[]), "acked again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeking_to_a_time_splits_at_the_publish_time() {
    let client = client().await;
    let (topic, sub) = topic_and_subscription(&client, "seek-split", true).await;
    publish(&client, &topic, &["early-0", "early-1"]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let between = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(100)).await;
    publish(&client, &topic, &["late-0", "late-1"]).await;
    assert_eq!(drain(&client, &sub, 4, Duration::from_secs(10)).await.len(), 4);
    client.seek_to_time(&sub, between).await.expect("seek");
    assert_eq!(redelivered(&client, &sub, &["late-0", "late-1"]).await, set(&["late-0", "late-1"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_retained_acks_seeking_back_redelivers_nothing_and_a_future_seek_acks_all() {
    let client = client().await;
    let (topic, sub) = topic_and_subscription(&client, "seek-noretain", false).await;
    let before = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    publish(&client, &topic, &["n0", "n1"]).await;
    assert_eq!(drain(&client, &sub, 2, Duration::from_secs(10)).await.len(), 2);
    client.seek_to_time(&sub, before).await.expect("seek back");
    assert_eq!(redelivered(&client, &sub, &[]).await, set(&[]), "acked messages were not retained");

    publish(&client, &topic, &["n2", "n3"]).await;
    client.seek_to_time(&sub, SystemTime::now() + Duration::from_secs(3600)).await.expect("seek ahead");
    assert_eq!(redelivered(&client, &sub, &[]).await, set(&[]), "a seek ahead acknowledges the backlog");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeking_to_a_snapshot_redelivers_what_was_unacked_when_it_was_taken() {
    // Through a recording proxy, to check the create request's labels (the emulator does not
    // keep snapshot labels).
    let proxy = FaultProxy::start(Emulator::shared().addr()).await;
    proxy.set_path_contains("/snapshots/");
    let client = client_for(&proxy.host()).await;
    let (topic, sub) = topic_and_subscription(&client, "seek-snap", false).await;
    publish(&client, &topic, &["s0", "s1", "s2", "s3"]).await;
    let held = pull_n(&client, &sub, 4).await;
    assert_eq!(payloads(&held), set(&["s0", "s1", "s2", "s3"]));
    let (first, rest): (Vec<_>, Vec<_>) = held.iter().partition(|m| matches!(&m.data[..], b"s0" | b"s1"));
    let ids = |ms: &[&ReceivedMessage]| ms.iter().map(|m| m.ack_id.clone()).collect::<Vec<_>>();
    client.acknowledge(&sub, &ids(&first)).await.expect("ack s0 s1");

    let snap_id = format!("{sub}-snap");
    let created = client
        .create_snapshot(&CreateSnapshot::new(&snap_id, &sub).with_label("reason", "replay"))
        .await
        .expect("create snapshot");
    let snap_path = format!("projects/{PROJECT}/snapshots/{snap_id}");
    assert_eq!(created.name, snap_path);
    assert_eq!(created.topic, format!("projects/{PROJECT}/topics/{topic}"));
    let requests = proxy.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let body: Value = serde_json::from_slice(&requests[0].body).expect("JSON body");
    assert_eq!(
        body,
        json!({"subscription": format!("projects/{PROJECT}/subscriptions/{sub}"), "labels": {"reason": "replay"}})
    );
    let expires = created.expire_time.expect("expire time");
    let week = Duration::from_secs(7 * 86_400);
    assert!(expires > SystemTime::now() && expires <= SystemTime::now() + week + Duration::from_secs(60));
    assert_eq!(client.get_snapshot(&snap_id).await.expect("get"), created);

    // Acked after the snapshot, then a message published after it.
    client.acknowledge(&sub, &ids(&rest)).await.expect("ack s2 s3");
    publish(&client, &topic, &["s4"]).await;
    assert_eq!(redelivered(&client, &sub, &["s4"]).await, set(&["s4"]));
    assert_eq!(redelivered(&client, &sub, &[]).await, set(&[]));

    client.seek_to_snapshot(&sub, &snap_path).await.expect("seek to snapshot");
    // s2 and s3 were unacked when it was taken, s4 was published after it; s0 and s1 were
    // acked before it.
    assert_eq!(redelivered(&client, &sub, &["s2", "s3", "s4"]).await, set(&["s2", "s3", "s4"]));
    client.delete_snapshot(&snap_id).await.expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_listed_page_by_page_and_deleted() {
    let client = client().await;
    let (_topic, sub) = topic_and_subscription(&client, "snap-list", false).await;
    let ids: Vec<String> = (0..3).map(|i| format!("{sub}-snap-{i}")).collect();
    for id in &ids {
        client.create_snapshot(&CreateSnapshot::new(id, &sub)).await.expect("create");
    }
    let again = client.create_snapshot(&CreateSnapshot::new(&ids[0], &sub)).await.expect_err("exists");
    assert!(again.is_already_exists(), "{again:?}");
    let wanted: BTreeSet<String> =
        ids.iter().map(|id| format!("projects/{PROJECT}/snapshots/{id}")).collect();

    // One per page, following the tokens.
    let mut paged = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = client.list_snapshots_page(1, &token).await.expect("page");
        assert!(page.snapshots.len() <= 1, "{page:?}");
        paged.extend(page.snapshots.into_iter().map(|s| s.name));
        pages += 1;
        assert!(pages < 1000, "paging does not end");
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert!(pages >= 3, "{pages} pages");
    let paged: BTreeSet<String> = paged.into_iter().collect();
    assert!(wanted.is_subset(&paged), "{wanted:?} not all in {paged:?}");
    let all: BTreeSet<String> =
        client.list_snapshots().await.expect("list").into_iter().map(|s| s.name).collect();
    assert!(wanted.is_subset(&all), "{wanted:?} not all in {all:?}");

    client.delete_snapshot(&ids[1]).await.expect("delete");
    assert!(client.get_snapshot(&ids[1]).await.expect_err("deleted").is_not_found());
    assert!(client.delete_snapshot(&ids[1]).await.expect_err("deleted twice").is_not_found());
    let all: BTreeSet<String> =
        client.list_snapshots().await.expect("list").into_iter().map(|s| s.name).collect();
    assert!(!all.contains(&format!("projects/{PROJECT}/snapshots/{}", ids[1])), "{all:?}");
    assert!(all.contains(&format!("projects/{PROJECT}/snapshots/{}", ids[0])), "{all:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_seeks_and_snapshots_are_reported() {
    let client = client().await;
    let (_topic, sub) = topic_and_subscription(&client, "seek-bad", false).await;
    let err = client.seek_to_snapshot(&sub, &format!("{sub}-never-taken")).await.expect_err("no snapshot");
    assert!(err.is_not_found(), "{err:?}");
    let err = client.seek_to_snapshot(&sub, "projects/p/topics/not-a-snapshot").await.expect_err("bad name");
    assert!(matches!(err, Error::InvalidName { .. }), "{err:?}");
    let err = client
        .create_snapshot(&CreateSnapshot::new(format!("{sub}-snap"), format!("{sub}-missing")))
        .await
        .expect_err("no subscription");
    assert!(err.is_not_found(), "{err:?}");
    let err = SeekTarget::rfc3339("yesterday").expect_err("not a time");
    assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
}
