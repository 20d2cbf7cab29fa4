//! Interop with Google's official Python client (`google-cloud-pubsub`, gRPC) through the
//! emulator: what one publishes, the other reads back intact.
//!
//! The Python interpreter is `$EVENTPIPE_PYTHON` (set by `scripts/test` to a virtualenv that
//! has `google-cloud-pubsub`), else `python3`.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use base64_simd::STANDARD;
use pubsub_client::{Message, PublisherConfig};
use testkit::Emulator;

use common::{PROJECT, client, drain, topic_and_subscription};

const TEXT: &str = "é ✓ \"quoted\" \\ back\nnew";

fn python() -> String {
    std::env::var("EVENTPIPE_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop").join(name)
}

/// Runs a Python interop script against the shared emulator and returns its stdout.
async fn run_python(args: Vec<String>) -> String {
    let host = Emulator::shared().host();
    let py = python();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&py).args(&args).env("PUBSUB_EMULATOR_HOST", host).output().unwrap_or_else(|e| {
            panic!(
                "cannot run {py}: {e}; run scripts/test, which installs google-cloud-pubsub in a virtualenv"
            )
        })
    })
    .await
    .expect("join");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python script failed ({}); if google.cloud.pubsub is missing, run scripts/test or \
         `pip install google-cloud-pubsub`:\n{stderr}",
        out.status
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn python_data(i: usize) -> Vec<u8> {
    (0..=(i % 300)).map(|j| ((j * 31 + i) % 256) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_published_by_the_official_python_client_are_read_intact() {
    let client = client().await;
    let (topic, sub) = topic_and_subscription(&client, "from-python", true).await;
    const N: usize = 120;
    let out = run_python(vec![
        script("py_publish.py").display().to_string(),
        PROJECT.into(),
        topic.clone(),
        N.to_string(),
    ])
    .await;
    let ids: Vec<String> = serde_json::from_str(out.trim()).expect("ids as JSON");
    assert_eq!(ids.len(), N);
    let got = drain(&client, &sub, N, std::time::Duration::from_secs(60)).await;
    assert_eq!(got.len(), N);
    for m in &got {
        let i: usize = m.attributes["seq"].parse().expect("seq");
        assert_eq!(m.message_id, ids[i]);
        assert_eq!(m.data.to_vec(), python_data(i), "payload of message {i}");
        assert_eq!(m.attributes["origin"], "python");
        assert_eq!(m.attributes["text"], TEXT);
        assert_eq!(m.attributes.len(), 3);
        let key = if i.is_multiple_of(3) { format!("key-{}", i % 2) } else { String::new() };
        assert_eq!(m.ordering_key, key);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_published_by_this_client_are_read_intact_by_the_official_python_client() {
    let client = client().await;
    let (topic, sub) = topic_and_subscription(&client, "to-python", true).await;
    let publisher = client
        .publisher_with_config(&topic, PublisherConfig::default().with_gzip(512, 1))
        .expect("publisher");
    const N: usize = 150;
    let mut sent = HashMap::new();
    let mut handles = Vec::new();
    for i in 0..N {
        let data: Vec<u8> = (0..(i * 7 % 500 + 1)).map(|j| (j * 13 + i) as u8).collect();
        let mut msg =
            Message::new(data.clone()).with_attribute("seq", i.to_string()).with_attribute("text", TEXT);
        if i.is_multiple_of(4) {
            msg = msg.with_ordering_key(format!("k{}", i % 3));
        }
        handles.push(publisher.publish(&msg).await.expect("accepted"));
        sent.insert(i.to_string(), msg);
    }
    let mut ids = HashMap::new();
    for (i, h) in handles.into_iter().enumerate() {
        ids.insert(i.to_string(), h.await.expect("published"));
    }
    let out = run_python(vec![
        script("py_pull.py").display().to_string(),
        PROJECT.into(),
        sub,
        N.to_string(),
        "60".into(),
    ])
    .await;
    let lines: Vec<serde_json::Value> =
        out.lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect();
    assert_eq!(lines.len(), N);
    for v in lines {
        let seq = v["attributes"]["seq"].as_str().expect("seq attribute").to_owned();
        let msg = &sent[&seq];
        assert_eq!(v["message_id"], ids[&seq].as_str());
        let data = STANDARD.decode_to_vec(v["data"].as_str().expect("data")).expect("base64");
        assert_eq!(data, msg.data(), "payload of message {seq}");
        assert_eq!(v["attributes"]["text"], TEXT);
        assert_eq!(v["ordering_key"], msg.ordering_key());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subscriber_consumes_messages_of_the_official_python_client_intact() {
    let client = client().await;
    let (topic, sub) = topic_and_subscription(&client, "py-to-subscriber", true).await;
    const N: usize = 300;
    let out = run_python(vec![
        script("py_publish.py").display().to_string(),
        PROJECT.into(),
        topic.clone(),
        N.to_string(),
    ])
    .await;
    let ids: Vec<String> = serde_json::from_str(out.trim()).expect("ids as JSON");
    let mut subscriber = client.subscriber(&sub).expect("subscriber");
    let mut seen = HashMap::new();
    let mut acks = Vec::new();
    while seen.len() < N {
        let d = tokio::time::timeout(std::time::Duration::from_secs(60), subscriber.next())
            .await
            .expect("messages keep coming")
            .expect("stream open")
            .expect("delivery");
        let i: usize = d.attributes()["seq"].parse().expect("seq");
        assert_eq!(d.message_id(), ids[i]);
        assert_eq!(d.data(), python_data(i).as_slice(), "payload of message {i}");
        assert_eq!(d.attributes()["text"], TEXT);
        let key = if i.is_multiple_of(3) { format!("key-{}", i % 2) } else { String::new() };
        assert_eq!(d.ordering_key(), key);
        seen.insert(i, d.message_id().to_owned());
        acks.push(d.ack());
    }
    for a in acks {
        a.await.expect("ack confirmed");
    }
    let stats = subscriber.shutdown(std::time::Duration::from_secs(5)).await;
    assert_eq!(stats.acked as usize, N);
}
