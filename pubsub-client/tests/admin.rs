//! Admin calls against the real Pub/Sub emulator.

mod common;

use std::time::Duration;

use pubsub_client::{DeadLetterPolicy, Error, Subscription, Topic};

use common::{PROJECT, client};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_are_created_listed_fetched_and_deleted() {
    let client = client().await;
    let id = testkit::unique_name("admin-topic");
    let created =
        client.create_topic(&Topic::new(&id).with_label("team", "data-platform")).await.expect("create");
    assert_eq!(created.name, format!("projects/{PROJECT}/topics/{id}"));
    let again = client.create_topic(&Topic::new(&id)).await.expect_err("exists");
    assert!(again.is_already_exists(), "{again:?}");
    assert!(!again.is_retryable());
    let fetched = client.get_topic(&created.name).await.expect("get by full name");
    assert_eq!(fetched.name, created.name);
    let names: Vec<String> = client.list_topics().await.expect("list").into_iter().map(|t| t.name).collect();
    assert!(names.contains(&created.name), "{names:?}");
    client.delete_topic(&id).await.expect("delete");
    let gone = client.get_topic(&id).await.expect_err("deleted");
    assert!(gone.is_not_found(), "{gone:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_keep_their_settings() {
    let client = client().await;
    let topic = testkit::unique_name("admin-sub-topic");
    let dead = format!("{topic}-dead");
    client.create_topic(&Topic::new(&topic)).await.expect("topic");
    client.create_topic(&Topic::new(&dead)).await.expect("dead-letter topic");
    let id = format!("{topic}-sub");
    let wanted = Subscription::new(&id, &topic)
        .with_ack_deadline_seconds(45)
        .with_message_retention(Duration::from_secs(2 * 3600))
        .with_message_ordering(true)
        .with_retain_acked_messages(true)
        .with_filter("attributes.event_type = \"play\"")
        .with_dead_letter_policy(DeadLetterPolicy::new(&dead, 7));
    let created = client.create_subscription(&wanted).await.expect("create");
    let got = client.get_subscription(&id).await.expect("get");
    assert_eq!(got, created);
    assert_eq!(got.name, format!("projects/{PROJECT}/subscriptions/{id}"));
    assert_eq!(got.topic, format!("projects/{PROJECT}/topics/{topic}"));
    assert_eq!(got.ack_deadline_seconds, 45);
    assert_eq!(got.message_retention_duration, Some(Duration::from_secs(7200)));
    assert!(got.enable_message_ordering);
    assert!(got.retain_acked_messages);
    assert_eq!(got.filter, "attributes.event_type = \"play\"");
    let dl = got.dead_letter_policy.expect("dead-letter policy kept");
    assert_eq!(dl.dead_letter_topic, format!("projects/{PROJECT}/topics/{dead}"));
    assert_eq!(dl.max_delivery_attempts, 7);
    let names: Vec<String> =
        client.list_subscriptions().await.expect("list").into_iter().map(|s| s.name).collect();
    assert!(names.contains(&got.name));
    client.delete_subscription(&id).await.expect("delete");
    assert!(client.get_subscription(&id).await.expect_err("deleted").is_not_found());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_admin_input_is_refused_before_any_request() {
    let client = client().await;
    let err = client
        .create_subscription(&Subscription::new("sub-x", "topic-x").with_ack_deadline_seconds(601))
        .await;
    assert!(matches!(err, Err(Error::InvalidConfig(ref m)) if m.contains("10-600")), "{err:?}");
    let err = client.create_topic(&Topic::new("x")).await.expect_err("too short");
    assert!(matches!(err, Error::InvalidName { .. }), "{err:?}");
    let err = client.modify_ack_deadline("sub-x", &["a".into()], 601).await.expect_err("too long");
    assert!(err.to_string().contains("600"), "{err}");
}
