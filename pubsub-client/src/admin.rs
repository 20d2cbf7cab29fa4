//! Admin calls: create, get, delete and list topics and subscriptions.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::limits::{MAX_ACK_DEADLINE_SECS, MIN_ACK_DEADLINE_SECS};
use crate::transport::Body;

/// A topic. `name` is a short id or a full path when creating; the service returns the full
/// path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Topic {
    /// `projects/{project}/topics/{id}` (or a short id before creation).
    pub name: String,
    /// Labels. Default: none.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub labels: HashMap<String, String>,
    /// How long the topic keeps messages for replay. Default: unset (no topic retention).
    #[serde(default, with = "duration_opt", skip_serializing_if = "Option::is_none")]
    pub message_retention_duration: Option<Duration>,
}

impl Topic {
    /// A topic with this id or path and no options.
    pub fn new(name: impl Into<String>) -> Self {
        Topic { name: name.into(), ..Default::default() }
    }

    /// Adds a label.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Sets the topic's message retention.
    pub fn with_message_retention(mut self, d: Duration) -> Self {
        self.message_retention_duration = Some(d);
        self
    }
}

/// Where messages that could not be delivered go.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DeadLetterPolicy {
    /// Full name of the dead-letter topic.
    pub dead_letter_topic: String,
    /// Delivery attempts before a message is dead-lettered (5-100).
    #[serde(default)]
    pub max_delivery_attempts: i32,
}

impl DeadLetterPolicy {
    /// A policy sending messages to `topic` after `max_delivery_attempts` attempts.
    pub fn new(topic: impl Into<String>, max_delivery_attempts: i32) -> Self {
        DeadLetterPolicy { dead_letter_topic: topic.into(), max_delivery_attempts }
    }
}

/// A subscription. `name` and `topic` may be short ids when creating.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Subscription {
    /// `projects/{project}/subscriptions/{id}` (or a short id before creation).
    pub name: String,
    /// The topic it receives from.
    pub topic: String,
    /// Seconds a pulled message stays leased before redelivery (10-600). Default: 10 (the
    /// service's default) when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ack_deadline_seconds: u32,
    /// How long unacknowledged messages are kept. Default: the service's 7 days.
    #[serde(default, with = "duration_opt", skip_serializing_if = "Option::is_none")]
    pub message_retention_duration: Option<Duration>,
    /// Keep acknowledged messages for replay. Default: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retain_acked_messages: bool,
    /// Deliver messages with the same ordering key in order. Default: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enable_message_ordering: bool,
    /// Only deliver messages matching this filter expression. Default: all.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub filter: String,
    /// Dead-letter policy. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_policy: Option<DeadLetterPolicy>,
    /// Labels. Default: none.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub labels: HashMap<String, String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Subscription {
    /// A subscription `name` on `topic` with the service's defaults.
    pub fn new(name: impl Into<String>, topic: impl Into<String>) -> Self {
        Subscription { name: name.into(), topic: topic.into(), ..Default::default() }
    }

    /// Sets the ack deadline in seconds (10-600).
    pub fn with_ack_deadline_seconds(mut self, secs: u32) -> Self {
        self.ack_deadline_seconds = secs;
        self
    }

    /// Sets the retention of unacknowledged messages.
    pub fn with_message_retention(mut self, d: Duration) -> Self {
        self.message_retention_duration = Some(d);
        self
    }

    /// Keeps acknowledged messages too.
    pub fn with_retain_acked_messages(mut self, retain: bool) -> Self {
        self.retain_acked_messages = retain;
        self
    }

    /// Enables ordered delivery per ordering key.
    pub fn with_message_ordering(mut self, enabled: bool) -> Self {
        self.enable_message_ordering = enabled;
        self
    }

    /// Sets a filter expression on attributes.
    pub fn with_filter(mut self, filter: impl Into<String>) -> Self {
        self.filter = filter.into();
        self
    }

    /// Sets a dead-letter policy.
    pub fn with_dead_letter_policy(mut self, policy: DeadLetterPolicy) -> Self {
        self.dead_letter_policy = Some(policy);
        self
    }

    /// Adds a label.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    fn validate(&self) -> Result<()> {
        let d = self.ack_deadline_seconds;
        if d != 0 && !(MIN_ACK_DEADLINE_SECS..=MAX_ACK_DEADLINE_SECS).contains(&d) {
            return Err(Error::InvalidConfig(format!(
                "ack deadline of subscription {:?} is {d} s; it must be {MIN_ACK_DEADLINE_SECS}-{MAX_ACK_DEADLINE_SECS} s",
                self.name
            )));
        }
        if let Some(p) = &self.dead_letter_policy
            && !(5..=100).contains(&p.max_delivery_attempts)
        {
            return Err(Error::InvalidConfig(format!(
                "max_delivery_attempts of subscription {:?} is {}; it must be 5-100",
                self.name, p.max_delivery_attempts
            )));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TopicPage {
    #[serde(default)]
    topics: Vec<Topic>,
    #[serde(default)]
    next_page_token: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionPage {
    #[serde(default)]
    subscriptions: Vec<Subscription>,
    #[serde(default)]
    next_page_token: String,
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Protocol(format!("cannot decode {what}: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Body> {
    serde_json::to_vec(value)
        .map(Body::json)
        .map_err(|e| Error::Protocol(format!("cannot encode request: {e}")))
}

impl Client {
    /// Creates a topic; fails with [`Error::is_already_exists`] if it exists.
    pub async fn create_topic(&self, topic: &Topic) -> Result<Topic> {
        let name = self.topic_name(&topic.name)?;
        let mut body = topic.clone();
        body.name = name.to_string();
        let bytes = self.call_with_retry(Method::PUT, name.as_str(), Some(encode(&body)?)).await?;
        decode(&bytes, "topic")
    }

    /// Fetches a topic by id or path.
    pub async fn get_topic(&self, topic: &str) -> Result<Topic> {
        let name = self.topic_name(topic)?;
        decode(&self.call_with_retry(Method::GET, name.as_str(), None).await?, "topic")
    }

    /// Deletes a topic by id or path.
    pub async fn delete_topic(&self, topic: &str) -> Result<()> {
        let name = self.topic_name(topic)?;
        self.call_with_retry(Method::DELETE, name.as_str(), None).await.map(drop)
    }

    /// Lists all topics of the client's project, following pages.
    pub async fn list_topics(&self) -> Result<Vec<Topic>> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let path = format!("projects/{}/topics?pageSize=1000&pageToken={token}", self.project());
            let page: TopicPage =
                decode(&self.call_with_retry(Method::GET, &path, None).await?, "topic list")?;
            out.extend(page.topics);
            if page.next_page_token.is_empty() {
                return Ok(out);
            }
            token = page.next_page_token;
        }
    }

    /// Creates a subscription; fails with [`Error::is_already_exists`] if it exists.
    pub async fn create_subscription(&self, subscription: &Subscription) -> Result<Subscription> {
        subscription.validate()?;
        let name = self.subscription_name(&subscription.name)?;
        let mut body = subscription.clone();
        body.name = name.to_string();
        body.topic = self.topic_name(&subscription.topic)?.to_string();
        if let Some(p) = &mut body.dead_letter_policy {
            p.dead_letter_topic = self.topic_name(&p.dead_letter_topic)?.to_string();
        }
        let bytes = self.call_with_retry(Method::PUT, name.as_str(), Some(encode(&body)?)).await?;
        decode(&bytes, "subscription")
    }

    /// Fetches a subscription by id or path.
    pub async fn get_subscription(&self, subscription: &str) -> Result<Subscription> {
        let name = self.subscription_name(subscription)?;
        decode(&self.call_with_retry(Method::GET, name.as_str(), None).await?, "subscription")
    }

    /// Deletes a subscription by id or path.
    pub async fn delete_subscription(&self, subscription: &str) -> Result<()> {
        let name = self.subscription_name(subscription)?;
        self.call_with_retry(Method::DELETE, name.as_str(), None).await.map(drop)
    }

    /// Lists all subscriptions of the client's project, following pages.
    pub async fn list_subscriptions(&self) -> Result<Vec<Subscription>> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let path = format!("projects/{}/subscriptions?pageSize=1000&pageToken={token}", self.project());
            let page: SubscriptionPage =
                decode(&self.call_with_retry(Method::GET, &path, None).await?, "subscription list")?;
            out.extend(page.subscriptions);
            if page.next_page_token.is_empty() {
                return Ok(out);
            }
            token = page.next_page_token;
        }
    }
}

/// Protobuf JSON durations: `"604800s"`, `"1.5s"`.
mod duration_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) if d.subsec_nanos() == 0 => s.serialize_str(&format!("{}s", d.as_secs())),
            Some(d) => s.serialize_str(&format!("{}.{:09}s", d.as_secs(), d.subsec_nanos())),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let Some(s) = Option::<String>::deserialize(d)? else { return Ok(None) };
        let secs = s
            .strip_suffix('s')
            .and_then(|n| n.parse::<f64>().ok())
            .filter(|n| n.is_finite() && *n >= 0.0)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid duration {s:?}")))?;
        Ok(Some(Duration::from_secs_f64(secs)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_serialize_like_the_rest_api() {
        let s = Subscription::new("projects/p/subscriptions/s1", "projects/p/topics/t1")
            .with_ack_deadline_seconds(30)
            .with_message_retention(Duration::from_secs(3600))
            .with_message_ordering(true)
            .with_filter("attributes.type = \"play\"")
            .with_dead_letter_policy(DeadLetterPolicy::new("projects/p/topics/dlq", 5));
        let v = serde_json::to_value(&s).expect("serializes");
        assert_eq!(v["ackDeadlineSeconds"], 30);
        assert_eq!(v["messageRetentionDuration"], "3600s");
        assert_eq!(v["enableMessageOrdering"], true);
        assert_eq!(v["deadLetterPolicy"]["maxDeliveryAttempts"], 5);
        assert!(v.get("retainAckedMessages").is_none());
        let back: Subscription = serde_json::from_value(v).expect("deserializes");
        assert_eq!(back, s);
    }

    #[test]
    fn fractional_durations_parse() {
        let t: Topic = serde_json::from_str(r#"{"name":"x","messageRetentionDuration":"1.5s"}"#).expect("ok");
        assert_eq!(t.message_retention_duration, Some(Duration::from_millis(1500)));
        assert!(serde_json::from_str::<Topic>(r#"{"name":"x","messageRetentionDuration":"soon"}"#).is_err());
    }

    #[test]
    fn out_of_range_settings_are_rejected() {
        assert!(Subscription::new("s", "t").with_ack_deadline_seconds(5).validate().is_err());
        assert!(Subscription::new("s", "t").with_ack_deadline_seconds(601).validate().is_err());
        assert!(Subscription::new("s", "t").with_ack_deadline_seconds(600).validate().is_ok());
        let dl = Subscription::new("s", "t").with_dead_letter_policy(DeadLetterPolicy::new("d", 2));
        assert!(dl.validate().expect_err("2 attempts").to_string().contains("5-100"));
    }
}
