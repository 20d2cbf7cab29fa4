//! Publisher against the real Pub/Sub emulator.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use pubsub_client::wire::{ENVELOPE_LEN, encoded_len};
use pubsub_client::{Error, LimitExceededBehavior, Message, PublisherConfig};
use testkit::{Emulator, FaultProxy};

use common::{client, client_for, count_payloads, drain, topic_and_subscription};

const DRAIN: Duration = Duration::from_secs(60);

/// A long delay so only the count/byte limits and flush seal batches.
const NEVER: Duration = Duration::from_secs(3600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_and_attributes_round_trip_byte_identical() {
    let client = client().await;
    let (topic, sub) = topic_and_subscription(&client, "roundtrip", false).await;
    let publisher = client.publisher(&topic).expect("publisher");
    let tricky = "quote\" back\\slash\nnew\ttab\u{1} é ✓ 🎵";
    let mut sent = Vec::new();
    for i in 0..50u8 {
        let data: Vec<u8> = (0..=i).map(|j| j.wrapping_mul(37) ^ 0xa5).chain([0, 255, b'"']).collect();
        let msg = Message::new(data)
            .with_attribute("seq", i.to_string())
            .with_attribute(format!("{tricky}-{i}"), tricky)
            .with_attribute("empty", "");
        sent.push(msg);
    }
    sent.push(Message::new("").with_attribute("only", "attributes"));
    let mut handles = Vec::new();
    for m in &sent {
        handles.push(publisher.publish(m).await.expect("accepted"));
    }
    let mut ids = Vec::new();
    for h in handles {
        ids.push(h.await.expect("published"));
    }
    let got = drain(&client, &sub, sent.len(), DRAIN).await;
    assert_eq!(got.len(), sent.len(), "every message arrives exactly once");
    let by_id: HashMap<_, _> = got.iter().map(|m| (m.message_id.clone(), m)).collect();
    for (msg, id) in sent.iter().zip(&ids) {
        let r = by_id.get(id).unwrap_or_else(|| panic!("message id {id} was not delivered"));
        assert_eq!(&r.data[..], msg.data());
        let want: HashMap<String, String> = msg.attributes().iter().cloned().collect();
        assert_eq!(r.attributes, want);
    }
    let stats = publisher.stats();
    assert_eq!(stats.messages_published, sent.len() as u64);
    assert_eq!(stats.outstanding_messages, 0);
    assert_eq!(stats.messages_failed, 0);
    publisher.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_split_exactly_at_the_count_limit() {
    let emulator = Emulator::shared();
    let proxy = FaultProxy::start(emulator.addr()).await;
    let client = client_for(&proxy.host()).await;
    let (topic, sub) = topic_and_subscription(&client, "split-count", false).await;
    let publisher = client
        .publisher_with_config(&topic, PublisherConfig::default().with_delay(NEVER))
        .expect("publisher");
    let mut handles = Vec::new();
    for i in 0..2500 {
        handles.push(publisher.publish(&Message::new(format!("m{i}"))).await.expect("accepted"));
    }
    publisher.flush().await;
    for h in handles {
        h.await.expect("published");
    }
    let mut counts: Vec<usize> = proxy.requests().iter().map(|r| messages_in(&r.body).len()).collect();
    counts.sort_unstable();
    assert_eq!(counts, [500, 1000, 1000]);
    assert_eq!(drain(&client, &sub, 2500, DRAIN).await.len(), 2500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_split_exactly_at_the_byte_limit() {
    const LIMIT: usize = 6000;
    let emulator = Emulator::shared();
    let proxy = FaultProxy::start(emulator.addr()).await;
    let client = client_for(&proxy.host()).await;
    let (topic, sub) = topic_and_subscription(&client, "split-bytes", false).await;
    let config = PublisherConfig::default().with_delay(NEVER).with_max_bytes(LIMIT);
    let publisher = client.publisher_with_config(&topic, config).expect("publisher");
    let mut rng = fastrand::Rng::with_seed(7);
    let msgs: Vec<Message> = (0..400)
        .map(|i| {
            let pad = "x".repeat(rng.usize(0..900));
            Message::new(format!("{i:05}{pad}")).with_attribute("n", "\"quoted\"".repeat(rng.usize(0..5)))
        })
        .collect();
    let mut handles = Vec::new();
    for m in &msgs {
        handles.push(publisher.publish(m).await.expect("accepted"));
    }
    publisher.flush().await;
    for h in handles {
        h.await.expect("published");
    }
    // Each request holds a contiguous run of messages; it is within the limit, and the next
    // message would not have fitted.
    let mut runs: Vec<(usize, usize, usize)> = proxy
        .requests()
        .iter()
        .map(|r| {
            let seqs: Vec<usize> = messages_in(&r.body)
                .iter()
                .map(|d| std::str::from_utf8(&d[..5]).expect("ascii").parse().expect("seq"))
                .collect();
            assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "request is not contiguous: {seqs:?}");
            (seqs[0], seqs[seqs.len() - 1], r.body.len())
        })
        .collect();
    runs.sort_unstable();
    assert!(runs.len() > 10, "expected many requests, got {}", runs.len());
    assert_eq!(runs[0].0, 0);
    for pair in runs.windows(2) {
        let ((_, last, len), (next_first, _, _)) = (pair[0], pair[1]);
        assert_eq!(next_first, last + 1, "a message is missing between requests");
        assert!(len <= LIMIT, "request of {len} bytes is over the limit");
        let next_len = encoded_len(&msgs[next_first]);
        assert!(
            len + 1 + next_len > LIMIT,
            "message {next_first} ({next_len} bytes) would have fitted in {len}"
        );
    }
    assert_eq!(runs[runs.len() - 1].1, msgs.len() - 1);
    assert_eq!(drain(&client, &sub, msgs.len(), DRAIN).await.len(), msgs.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_exactly_at_the_request_limit_is_sent_and_one_byte_more_is_refused() {
    let client = client().await;
    let (topic, sub) = topic_and_subscription(&client, "limit", false).await;
    let publisher = client.publisher(&topic).expect("publisher");
    // Find data and attribute sizes whose request body is exactly 10,000,000 bytes.
    let limit = pubsub_client::limits::MAX_PUBLISH_REQUEST_BYTES;
    let at_limit = (0..3)
        .find_map(|pad| {
            let probe = |n: usize| Message::new(vec![b'z'; n]).with_attribute("p", "v".repeat(pad));
            let base = encoded_len(&probe(0)) + ENVELOPE_LEN;
            let n = (limit - base) / 4 * 3;
            let m = probe(n);
            (encoded_len(&m) + ENVELOPE_LEN == limit).then_some(m)
        })
        .expect("some padding reaches the limit exactly");
    let id = publisher.publish(&at_limit).await.expect("accepted").await.expect("emulator takes 10 MB");
    let over = at_limit.clone().with_attribute("q", "");
    let err = publisher.publish(&over).await.expect_err("over the limit");
    assert!(matches!(err, Error::InvalidMessage(_)), "{err:?}");
    assert!(err.to_string().contains("above the publisher's max_bytes of 10000000"), "{err}");
    let got = drain(&client, &sub, 1, DRAIN).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message_id, id);
    assert_eq!(got[0].data.len(), at_limit.data().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_messages_are_refused_before_queueing() {
    let client = client().await;
    let (topic, _sub) = topic_and_subscription(&client, "invalid", false).await;
    let publisher = client.publisher(&topic).expect("publisher");
    let cases = [
        (Message::new(""), "neither data nor attributes"),
        (Message::new(vec![0u8; 10_000_001]), "10000001 bytes"),
        (Message::new(vec![0u8; 8_000_000]), "encodes to"),
        (Message::new("x").with_attributes((0..101).map(|i| (format!("k{i}"), "v"))), "101 attributes"),
        (Message::new("x").with_attribute("k", "v".repeat(1025)), "1025 bytes"),
        (Message::new("x").with_attribute("googkey", "v"), "reserved"),
    ];
    for (msg, reason) in cases {
        let err = publisher.publish(&msg).await.expect_err(reason);
        assert!(err.to_string().contains(reason), "expected {reason:?} in {err}");
    }
    let stats = publisher.stats();
    assert_eq!((stats.outstanding_messages, stats.requests), (0, 0), "nothing may be queued or sent");
    assert!(client.publisher("bad name!").is_err());
    assert!(client.publisher("goog-x").expect_err("reserved").to_string().contains("goog"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_to_a_missing_topic_fails_fast_with_the_servers_message() {
    let client = client().await;
    let publisher = client.publisher(&testkit::unique_name("missing")).expect("publisher");
    let err = publisher.publish(&Message::new("x")).await.expect("accepted").await.expect_err("no topic");
    assert!(err.is_not_found(), "{err:?}");
    assert!(err.to_string().contains("Topic not found"), "{err}");
    assert_eq!(publisher.stats().requests, 1, "a 404 is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_control_fails_fast_at_the_message_limit() {
    let client = client().await;
    let (topic, sub) = topic_and_subscription(&client, "flow-fail", false).await;
    let config = PublisherConfig::default()
        .with_delay(NEVER)
        .with_max_outstanding_messages(5)
        .with_limit_exceeded(LimitExceededBehavior::FailFast);
    let publisher = client.publisher_with_config(&topic, config).expect("publisher");
    let mut handles = Vec::new();
    for i in 0..5 {
        handles.push(publisher.publish(&Message::new(format!("{i}"))).await.expect("within limit"));
    }
    let err = publisher.publish(&Message::new("6th")).await.expect_err("over the limit");
    assert!(matches!(err, Error::FlowControlFull { outstanding_messages: 5, .. }), "{err:?}");
    publisher.flush().await;
    for h in handles {
        h.await.expect("published");
    }
    let after = publisher.publish(&Message::new("after")).await.expect("room again");
    publisher.flush().await;
    after.await.expect("published");
    assert_eq!(drain(&client, &sub, 6, DRAIN).await.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_control_fails_fast_at_the_byte_limit() {
    let client = client().await;
    let (topic, _sub) = topic_and_subscription(&client, "flow-bytes", false).await;
    let msg = Message::new(vec![1u8; 300]);
    let config = PublisherConfig::default()
        .with_delay(NEVER)
        .with_max_outstanding_bytes(encoded_len(&msg) * 3)
        .with_limit_exceeded(LimitExceededBehavior::FailFast);
    let publisher = client.publisher_with_config(&topic, config).expect("publisher");
    for _ in 0..3 {
        drop(publisher.publish(&msg).await.expect("within limit"));
    }
    assert!(matches!(
        publisher.try_publish(&msg),
        Err(Error::FlowControlFull { outstanding_messages: 3, .. })
    ));
    assert_eq!(publisher.stats().outstanding_bytes, encoded_len(&msg) as u64 * 3);
    publisher.shutdown().await;
    assert_eq!(publisher.stats().messages_published, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_control_blocks_and_never_exceeds_its_limit() {
    let client = client().await;
    let (topic, sub) = topic_and_subscription(&client, "flow-block", false).await;
    let config = PublisherConfig::default()
        .with_max_messages(20)
        .with_delay(Duration::from_millis(2))
        .with_max_outstanding_messages(50);
    let publisher = client.publisher_with_config(&topic, config).expect("publisher");
    let mut max_seen = 0;
    let mut handles = Vec::new();
    for i in 0..2000 {
        handles.push(publisher.publish(&Message::new(format!("{i}"))).await.expect("accepted"));
        max_seen = max_seen.max(publisher.stats().outstanding_messages);
    }
    for h in handles {
        h.await.expect("published");
    }
    let stats = publisher.stats();
    assert!(max_seen <= 50, "outstanding reached {max_seen}, limit 50");
    assert!(stats.flow_control_waits > 0, "2000 messages through a limit of 50 must have waited");
    assert_eq!(stats.messages_published, 2000);
    let got = drain(&client, &sub, 2000, DRAIN).await;
    assert!(count_payloads(&got).values().all(|&n| n == 1));
    assert_eq!(got.len(), 2000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_publish_waits_until_room_is_made() {
    let client = client().await;
    let (topic, _sub) = topic_and_subscription(&client, "flow-wait", false).await;
    let config = PublisherConfig::default().with_delay(NEVER).with_max_outstanding_messages(2);
    let publisher = client.publisher_with_config(&topic, config).expect("publisher");
    let first = publisher.publish(&Message::new("1")).await.expect("room");
    let second = publisher.publish(&Message::new("2")).await.expect("room");
    let third_msg = Message::new("3");
    let blocked = publisher.publish(&third_msg);
    tokio::pin!(blocked);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut blocked).await.is_err(),
        "the third publish must wait while two are outstanding"
    );
    publisher.flush().await;
    first.await.expect("published");
    second.await.expect("published");
    let third = blocked.await.expect("admitted once room was made");
    publisher.flush().await;
    third.await.expect("published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_bodies_are_sent_compressed_and_arrive_intact() {
    let emulator = Emulator::shared();
    let proxy = FaultProxy::start(emulator.addr()).await;
    let client = client_for(&proxy.host()).await;
    let (topic, sub) = topic_and_subscription(&client, "gzip", false).await;
    let config = PublisherConfig::default().with_gzip(1024, 6).with_delay(NEVER).with_max_messages(100);
    let publisher = client.publisher_with_config(&topic, config).expect("publisher");
    let mut handles = Vec::new();
    for i in 0..300 {
        let msg = Message::new(format!("{i:04} {}", "play event payload ".repeat(8)))
            .with_attribute("i", i.to_string());
        handles.push(publisher.publish(&msg).await.expect("accepted"));
    }
    drop(publisher.publish(&Message::new("small")).await.expect("accepted"));
    publisher.flush().await;
    for h in handles {
        h.await.expect("published");
    }
    let reqs = proxy.requests();
    assert_eq!(reqs.len(), 4);
    for r in &reqs {
        let big = r.body.len() >= 1024;
        assert_eq!(r.content_encoding.as_deref() == Some("gzip"), big, "gzip iff over the threshold");
        if big {
            assert!(r.wire_len * 3 < r.body.len(), "{} -> {} is not compressed", r.body.len(), r.wire_len);
        }
    }
    let stats = publisher.stats();
    assert!(stats.wire_bytes < stats.body_bytes);
    let got = drain(&client, &sub, 301, DRAIN).await;
    assert_eq!(got.len(), 301);
    for m in got.iter().filter(|m| m.data.len() > 5) {
        let i: usize = std::str::from_utf8(&m.data[..4]).expect("ascii").parse().expect("seq");
        assert_eq!(m.attributes["i"], i.to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_and_then_refuses() {
    let client = client().await;
    let (topic, sub) = topic_and_subscription(&client, "shutdown", false).await;
    let publisher =
        client.publisher_with_config(&topic, PublisherConfig::default().with_delay(NEVER)).expect("p");
    let mut handles = Vec::new();
    for i in 0..10 {
        handles.push(publisher.publish(&Message::new(format!("{i}"))).await.expect("accepted"));
    }
    publisher.shutdown().await;
    for h in handles {
        h.await.expect("drained on shutdown");
    }
    let err = publisher.publish(&Message::new("late")).await.expect_err("shut down");
    assert!(matches!(err, Error::ShutDown(_)), "{err:?}");
    assert_eq!(publisher.stats().outstanding_messages, 0);
    assert_eq!(drain(&client, &sub, 10, DRAIN).await.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_publisher_still_delivers_what_it_accepted() {
    let client = client().await;
    let (topic, sub) = topic_and_subscription(&client, "dropped", false).await;
    let config = PublisherConfig::default().with_delay(Duration::from_millis(20));
    let publisher = client.publisher_with_config(&topic, config).expect("publisher");
    let handle = publisher.publish(&Message::new("orphan")).await.expect("accepted");
    drop(publisher);
    handle.await.expect("sent by the delay timer after the publisher was dropped");
    assert_eq!(drain(&client, &sub, 1, DRAIN).await.len(), 1);
}

/// Payloads of a publish request body.
fn messages_in(body: &[u8]) -> Vec<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_slice(body).expect("publish body is JSON");
    v["messages"]
        .as_array()
        .expect("messages array")
        .iter()
        .map(|m| {
            base64_simd::STANDARD.decode_to_vec(m["data"].as_str().unwrap_or_default()).expect("base64 data")
        })
        .collect()
}
