//! Subscriptions: the resource, its builder, create / get / delete / list.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::{
    DeadLetterPolicy, DeliveryRetryPolicy, ExpirationPolicy, LIST_PAGE_SIZE, decode, duration_opt, encode,
    page_query,
};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::limits::{MAX_ACK_DEADLINE_SECS, MIN_ACK_DEADLINE_SECS};

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
    /// How long messages are kept (unacknowledged ones, and acknowledged ones too with
    /// `retain_acked_messages`), 10 minutes to 7 days. Default: the service's 7 days.
    #[serde(default, with = "duration_opt", skip_serializing_if = "Option::is_none")]
    pub message_retention_duration: Option<Duration>,
    /// Keep acknowledged messages for `message_retention_duration`, so that a
    /// [seek to a time](Client::seek_to_time) can deliver them again. Default: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retain_acked_messages: bool,
    /// Deliver messages with the same ordering key in order. Default: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enable_message_ordering: bool,
    /// Exactly-once delivery: an acknowledged message is not redelivered, and acks and lease
    /// extensions of an expired lease fail instead of being silently ignored. Default: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enable_exactly_once_delivery: bool,
    /// Only deliver messages matching this filter expression. Default: all.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub filter: String,
    /// Dead-letter policy. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_policy: Option<DeadLetterPolicy>,
    /// Backoff between redeliveries of one message. Default: none (redelivered at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<DeliveryRetryPolicy>,
    /// When the service deletes the subscription for inactivity. Default: unset, the service's
    /// 31 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_policy: Option<ExpirationPolicy>,
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

    /// Sets how long messages are kept (10 minutes to 7 days).
    pub fn with_message_retention(mut self, d: Duration) -> Self {
        self.message_retention_duration = Some(d);
        self
    }

    /// Keeps acknowledged messages too, so that a seek to a time can replay them.
    pub fn with_retain_acked_messages(mut self, retain: bool) -> Self {
        self.retain_acked_messages = retain;
        self
    }

    /// Enables ordered delivery per ordering key.
    pub fn with_message_ordering(mut self, enabled: bool) -> Self {
        self.enable_message_ordering = enabled;
        self
    }

    /// Enables exactly-once delivery.
    pub fn with_exactly_once_delivery(mut self, enabled: bool) -> Self {
        self.enable_exactly_once_delivery = enabled;
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

    /// Sets the redelivery backoff.
    pub fn with_retry_policy(mut self, policy: DeliveryRetryPolicy) -> Self {
        self.retry_policy = Some(policy);
        self
    }

    /// Sets when the subscription expires for inactivity.
    pub fn with_expiration_policy(mut self, policy: ExpirationPolicy) -> Self {
        self.expiration_policy = Some(policy);
        self
    }

    /// Adds a label.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    pub(super) fn validate(&self) -> Result<()> {
        validate_ack_deadline(&self.name, self.ack_deadline_seconds)?;
        if let Some(p) = &self.dead_letter_policy {
            p.validate(&self.name)?;
        }
        if let Some(p) = &self.retry_policy {
            p.validate(&self.name)?;
        }
        if let Some(p) = &self.expiration_policy {
            p.validate(&self.name)?;
        }
        Ok(())
    }
}

/// Checks an ack deadline: 0 (the service's default) or 10-600 s.
pub(super) fn validate_ack_deadline(subscription: &str, secs: u32) -> Result<()> {
    if secs != 0 && !(MIN_ACK_DEADLINE_SECS..=MAX_ACK_DEADLINE_SECS).contains(&secs) {
        return Err(Error::InvalidConfig(format!(
            "ack deadline of subscription {subscription:?} is {secs} s; it must be {MIN_ACK_DEADLINE_SECS}-{MAX_ACK_DEADLINE_SECS} s"
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionPage {
    #[serde(default)]
    subscriptions: Vec<Subscription>,
    #[serde(default)]
    next_page_token: String,
}

impl Client {
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
            let path =
                format!("projects/{}/subscriptions?{}", self.project(), page_query(LIST_PAGE_SIZE, &token));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_serialize_like_the_rest_api() {
        let s = Subscription::new("projects/p/subscriptions/s1", "projects/p/topics/t1")
            .with_ack_deadline_seconds(30)
            .with_message_retention(Duration::from_secs(3600))
            .with_message_ordering(true)
            .with_exactly_once_delivery(true)
            .with_filter("attributes.type = \"play\"")
            .with_dead_letter_policy(DeadLetterPolicy::new("projects/p/topics/dlq", 5))
            .with_retry_policy(DeliveryRetryPolicy::new(Duration::from_secs(1), Duration::from_secs(30)))
            .with_expiration_policy(ExpirationPolicy::never());
        let v = serde_json::to_value(&s).expect("serializes");
        assert_eq!(v["ackDeadlineSeconds"], 30);
        assert_eq!(v["messageRetentionDuration"], "3600s");
        assert_eq!(v["enableMessageOrdering"], true);
        assert_eq!(v["enableExactlyOnceDelivery"], true);
        assert_eq!(v["deadLetterPolicy"]["maxDeliveryAttempts"], 5);
        assert_eq!(v["retryPolicy"]["minimumBackoff"], "1s");
        assert_eq!(v["expirationPolicy"], serde_json::json!({}));
        assert!(v.get("retainAckedMessages").is_none());
        let back: Subscription = serde_json::from_value(v).expect("deserializes");
        assert_eq!(back, s);
    }

    #[test]
    fn fractional_durations_parse() {
        let s: Subscription =
            serde_json::from_str(r#"{"name":"x","topic":"t","messageRetentionDuration":"1.5s"}"#)
                .expect("ok");
        assert_eq!(s.message_retention_duration, Some(Duration::from_millis(1500)));
        assert!(
            serde_json::from_str::<Subscription>(
                r#"{"name":"x","topic":"t","messageRetentionDuration":"soon"}"#
            )
            .is_err()
        );
    }

    #[test]
    fn out_of_range_settings_are_rejected() {
        assert!(Subscription::new("s", "t").with_ack_deadline_seconds(5).validate().is_err());
        assert!(Subscription::new("s", "t").with_ack_deadline_seconds(601).validate().is_err());
        assert!(Subscription::new("s", "t").with_ack_deadline_seconds(600).validate().is_ok());
        let dl = Subscription::new("s", "t").with_dead_letter_policy(DeadLetterPolicy::new("d", 2));
        assert!(dl.validate().expect_err("2 attempts").to_string().contains("5-100"));
        let rp = Subscription::new("s", "t")
            .with_retry_policy(DeliveryRetryPolicy::new(Duration::from_secs(9), Duration::from_secs(1)));
        assert!(rp.validate().is_err());
        let ep = Subscription::new("s", "t")
            .with_expiration_policy(ExpirationPolicy::after(Duration::from_secs(60)));
        assert!(ep.validate().is_err());
    }
}
