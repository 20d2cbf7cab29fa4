//! Admin calls against the real Pub/Sub emulator.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use pubsub_client::{
    DeadLetterPolicy, DeliveryRetryPolicy, Error, ExpirationPolicy, Subscription, SubscriptionUpdate, Topic,
    TopicUpdate,
};
use serde_json::{Value, json};
use testkit::{Emulator, Fault, FaultProxy};

use common::{PROJECT, client, client_for};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_delivery_is_created_and_read_back() {
    let client = client().await;
    let topic = testkit::unique_name("admin-eod");
    client.create_topic(&Topic::new(&topic)).await.expect("topic");
    let on = format!("{topic}-on");
    let off = format!("{topic}-off");
    let created =
        client.create_subscription(&Subscription::new(&on, &topic).with_exactly_once_delivery(true)).await;
    assert!(created.expect("create").enable_exactly_once_delivery);
    assert!(client.get_subscription(&on).await.expect("get").enable_exactly_once_delivery);
    client.create_subscription(&Subscription::new(&off, &topic)).await.expect("create");
    assert!(!client.get_subscription(&off).await.expect("get").enable_exactly_once_delivery);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_updates_change_only_the_masked_fields() {
    let client = client().await;
    let topic = testkit::unique_name("admin-upd");
    let dead = format!("{topic}-dead");
    client.create_topic(&Topic::new(&topic)).await.expect("topic");
    client.create_topic(&Topic::new(&dead)).await.expect("dead-letter topic");
    let id = format!("{topic}-sub");
    client
        .create_subscription(
            &Subscription::new(&id, &topic)
                .with_ack_deadline_seconds(20)
                .with_message_retention(Duration::from_secs(3600))
                .with_exactly_once_delivery(true)
                .with_label("team", "data-platform"),
        )
        .await
        .expect("create");

    // The ack deadline alone: everything else stays.
    let updated = client
        .update_subscription(&id, &SubscriptionUpdate::new().with_ack_deadline_seconds(42))
        .await
        .expect("update ack deadline");
    assert_eq!(updated.ack_deadline_seconds, 42);
    let got = client.get_subscription(&id).await.expect("get");
    assert_eq!(got, updated);
    assert_eq!(got.ack_deadline_seconds, 42);
    assert_eq!(got.message_retention_duration, Some(Duration::from_secs(3600)));
    assert!(got.enable_exactly_once_delivery);
    assert_eq!(got.labels.get("team").map(String::as_str), Some("data-platform"));

    // Several fields, a dead-letter topic by short id.
    let update = SubscriptionUpdate::new()
        .with_message_retention(Duration::from_secs(7200))
        .with_retain_acked_messages(true)
        .with_exactly_once_delivery(false)
        .with_retry_policy(DeliveryRetryPolicy::new(Duration::from_secs(2), Duration::from_secs(30)))
        .with_dead_letter_policy(DeadLetterPolicy::new(&dead, 9));
    client.update_subscription(&id, &update).await.expect("update");
    let got = client.get_subscription(&id).await.expect("get");
    assert_eq!(got.ack_deadline_seconds, 42, "not in the mask, kept");
    assert_eq!(got.message_retention_duration, Some(Duration::from_secs(7200)));
    assert!(got.retain_acked_messages);
    assert!(!got.enable_exactly_once_delivery);
    let retry = got.retry_policy.expect("retry policy set");
    assert_eq!(retry.minimum_backoff, Some(Duration::from_secs(2)));
    assert_eq!(retry.maximum_backoff, Some(Duration::from_secs(30)));
    let dl = got.dead_letter_policy.expect("dead-letter policy set");
    assert_eq!(dl.dead_letter_topic, format!("projects/{PROJECT}/topics/{dead}"));
    assert_eq!(dl.max_delivery_attempts, 9);

    // Removing the policies.
    let update = SubscriptionUpdate::new().without_dead_letter_policy().without_retry_policy();
    client.update_subscription(&id, &update).await.expect("remove policies");
    let got = client.get_subscription(&id).await.expect("get");
    assert_eq!(got.dead_letter_policy, None);
    assert_eq!(got.retry_policy, None);
    assert!(got.retain_acked_messages, "not in the mask, kept");

    // Refused before any request.
    let err = client.update_subscription(&id, &SubscriptionUpdate::new()).await.expect_err("empty update");
    assert!(matches!(err, Error::InvalidConfig(ref m) if m.contains("sets no field")), "{err:?}");
    let err = client
        .update_subscription(&id, &SubscriptionUpdate::new().with_ack_deadline_seconds(5))
        .await
        .expect_err("out of range");
    assert!(matches!(err, Error::InvalidConfig(ref m) if m.contains("10-600")), "{err:?}");
    let missing = format!("{topic}-missing");
    let err = client
        .update_subscription(&missing, &SubscriptionUpdate::new().with_ack_deadline_seconds(30))
        .await
        .expect_err("missing");
    assert!(err.is_not_found(), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_retention_is_updated_and_read_back() {
    let client = client().await;
    let topic = testkit::unique_name("admin-topic-upd");
    client.create_topic(&Topic::new(&topic).with_label("team", "data-platform")).await.expect("topic");
    let day = Duration::from_secs(86_400);
    let updated = client
        .update_topic(&topic, &TopicUpdate::new().with_message_retention(day))
        .await
        .expect("update retention");
    assert_eq!(updated.message_retention_duration, Some(day));
    let got = client.get_topic(&topic).await.expect("get");
    assert_eq!(got.message_retention_duration, Some(day));
    assert_eq!(got.labels.get("team").map(String::as_str), Some("data-platform"), "labels kept");
    let err = client.update_topic(&topic, &TopicUpdate::new()).await.expect_err("empty update");
    assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
}

fn recorded_body(proxy: &FaultProxy) -> Value {
    let requests = proxy.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    serde_json::from_slice(&requests[0].body).expect("JSON body")
}

/// The emulator refuses `labels` (and `expirationPolicy`) in an update mask, so the request is
/// checked as recorded by the fault proxy, and the answer comes from the proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_and_expiration_updates_send_only_their_fields() {
    let proxy = FaultProxy::start(Emulator::shared().addr()).await;
    let client = client_for(&proxy.host()).await;
    let topic = testkit::unique_name("admin-labels");
    let sub = format!("{topic}-sub");
    client.create_topic(&Topic::new(&topic).with_label("team", "old")).await.expect("topic");
    client.create_subscription(&Subscription::new(&sub, &topic)).await.expect("subscription");
    let topic_path = format!("projects/{PROJECT}/topics/{topic}");
    let sub_path = format!("projects/{PROJECT}/subscriptions/{sub}");
    let (t, s) = (topic_path.clone(), sub_path.clone());
    proxy.set_path_filter(move |p| p.ends_with(&t) || p.ends_with(&s));

    // Forwarded: what the emulator says.
    let update = TopicUpdate::new().with_label("team", "data-platform").with_label("tier", "1");
    let err = client.update_topic(&topic, &update).await.expect_err("the emulator refuses labels");
    assert_eq!(err.http_status(), Some(400), "{err:?}");
    assert!(err.to_string().contains("labels is not a known Topic field"), "{err}");
    assert!(!err.is_retryable());
    assert_eq!(
        recorded_body(&proxy),
        json!({"topic": {"name": topic_path, "labels": {"team": "data-platform", "tier": "1"}},
               "updateMask": "labels"})
    );

    // Answered by the proxy as the service would.
    proxy.clear_requests();
    let answer = json!({"name": topic_path, "labels": {"team": "data-platform", "tier": "1"}});
    proxy.push_faults([Fault::Status { code: 200, body: answer.to_string() }]);
    let updated = client.update_topic(&topic, &update).await.expect("update");
    assert_eq!(
        updated.labels,
        HashMap::from([("team".into(), "data-platform".into()), ("tier".into(), "1".into())])
    );
    assert_eq!(recorded_body(&proxy)["updateMask"], "labels");

    proxy.clear_requests();
    let answer = json!({"name": sub_path, "topic": topic_path, "ackDeadlineSeconds": 10,
                        "labels": {"owner": "exporter"}, "expirationPolicy": {}});
    proxy.push_faults([Fault::Status { code: 200, body: answer.to_string() }]);
    let update = SubscriptionUpdate::new()
        .with_label("owner", "exporter")
        .with_expiration_policy(ExpirationPolicy::never());
    let updated = client.update_subscription(&sub, &update).await.expect("update");
    assert_eq!(updated.labels.get("owner").map(String::as_str), Some("exporter"));
    assert_eq!(updated.expiration_policy, Some(ExpirationPolicy::never()));
    assert_eq!(
        recorded_body(&proxy),
        json!({"subscription": {"name": sub_path, "labels": {"owner": "exporter"}, "expirationPolicy": {}},
               "updateMask": "expirationPolicy,labels"})
    );

    // Forwarded: the emulator refuses both fields.
    proxy.clear_requests();
    let err = client
        .update_subscription(&sub, &SubscriptionUpdate::new().with_label("owner", "exporter"))
        .await
        .expect_err("the emulator refuses labels");
    assert!(err.to_string().contains("labels is not a known Subscription field"), "{err}");
    let err = client
        .update_subscription(
            &sub,
            &SubscriptionUpdate::new().with_expiration_policy(ExpirationPolicy::never()),
        )
        .await
        .expect_err("the emulator refuses expirationPolicy");
    assert!(err.to_string().contains("unsupported in the Pub/Sub Emulator"), "{err}");
}
