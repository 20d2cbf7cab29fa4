//! Changing an existing subscription: [`SubscriptionUpdate`] and [`Client::update_subscription`].

use std::collections::HashMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::subscription::validate_ack_deadline;
use super::{
    DeadLetterPolicy, DeliveryRetryPolicy, ExpirationPolicy, Subscription, decode, duration_opt, encode,
};
use crate::client::Client;
use crate::error::{Error, Result};

/// The fields of a subscription to change with [`Client::update_subscription`]; only the
/// fields set here are sent and named in the request's `updateMask`, the others keep their
/// values.
///
/// Default: no field set (an update with no field is refused before any request). The topic,
/// the filter and message ordering cannot be changed after creation.
///
/// ```
/// use pubsub_client::SubscriptionUpdate;
///
/// let update = SubscriptionUpdate::new().with_ack_deadline_seconds(120).with_retain_acked_messages(true);
/// assert_eq!(update.update_mask(), "ackDeadlineSeconds,retainAckedMessages");
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
#[must_use]
pub struct SubscriptionUpdate {
    ack_deadline_seconds: Option<u32>,
    message_retention_duration: Option<Duration>,
    retain_acked_messages: Option<bool>,
    enable_exactly_once_delivery: Option<bool>,
    dead_letter_policy: Option<Option<DeadLetterPolicy>>,
    retry_policy: Option<Option<DeliveryRetryPolicy>>,
    expiration_policy: Option<ExpirationPolicy>,
    labels: Option<HashMap<String, String>>,
}

impl SubscriptionUpdate {
    /// An update that changes nothing yet.
    pub fn new() -> Self {
        SubscriptionUpdate::default()
    }

    /// Sets the ack deadline in seconds (10-600).
    pub fn with_ack_deadline_seconds(mut self, secs: u32) -> Self {
        self.ack_deadline_seconds = Some(secs);
        self
    }

    /// Sets how long messages are kept (10 minutes to 7 days).
    pub fn with_message_retention(mut self, d: Duration) -> Self {
        self.message_retention_duration = Some(d);
        self
    }

    /// Keeps (or stops keeping) acknowledged messages.
    pub fn with_retain_acked_messages(mut self, retain: bool) -> Self {
        self.retain_acked_messages = Some(retain);
        self
    }

    /// Turns exactly-once delivery on or off.
    pub fn with_exactly_once_delivery(mut self, enabled: bool) -> Self {
        self.enable_exactly_once_delivery = Some(enabled);
        self
    }

    /// Sets the dead-letter policy.
    pub fn with_dead_letter_policy(mut self, policy: DeadLetterPolicy) -> Self {
        self.dead_letter_policy = Some(Some(policy));
        self
    }

    /// Removes the dead-letter policy.
    pub fn without_dead_letter_policy(mut self) -> Self {
        self.dead_letter_policy = Some(None);
        self
    }

    /// Sets the redelivery backoff.
    pub fn with_retry_policy(mut self, policy: DeliveryRetryPolicy) -> Self {
        self.retry_policy = Some(Some(policy));
        self
    }

    /// Removes the redelivery backoff (messages are redelivered at once).
    pub fn without_retry_policy(mut self) -> Self {
        self.retry_policy = Some(None);
        self
    }

    /// Sets when the subscription expires for inactivity.
    pub fn with_expiration_policy(mut self, policy: ExpirationPolicy) -> Self {
        self.expiration_policy = Some(policy);
        self
    }

    /// Replaces all labels with `labels` (an empty map removes them all).
    pub fn with_labels(mut self, labels: HashMap<String, String>) -> Self {
        self.labels = Some(labels);
        self
    }

    /// Adds a label to the labels this update sets. The update replaces all of the
    /// subscription's labels: include the ones to keep.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.get_or_insert_with(HashMap::new).insert(key.into(), value.into());
        self
    }

    /// True when no field is set.
    pub fn is_empty(&self) -> bool {
        self.paths().is_empty()
    }

    /// The `updateMask` this update sends: the REST field names of the set fields, in a fixed
    /// order, comma-separated.
    pub fn update_mask(&self) -> String {
        self.paths().join(",")
    }

    fn paths(&self) -> Vec<&'static str> {
        let set = [
            (self.ack_deadline_seconds.is_some(), "ackDeadlineSeconds"),
            (self.message_retention_duration.is_some(), "messageRetentionDuration"),
            (self.retain_acked_messages.is_some(), "retainAckedMessages"),
            (self.enable_exactly_once_delivery.is_some(), "enableExactlyOnceDelivery"),
            (self.dead_letter_policy.is_some(), "deadLetterPolicy"),
            (self.retry_policy.is_some(), "retryPolicy"),
            (self.expiration_policy.is_some(), "expirationPolicy"),
            (self.labels.is_some(), "labels"),
        ];
        set.into_iter().filter_map(|(is_set, path)| is_set.then_some(path)).collect()
    }

    fn validate(&self, name: &str) -> Result<()> {
        if self.is_empty() {
            return Err(Error::InvalidConfig(format!("the update of subscription {name} sets no field")));
        }
        if let Some(secs) = self.ack_deadline_seconds {
            if secs == 0 {
                return Err(Error::InvalidConfig(format!(
                    "ack deadline of subscription {name:?} is 0 s; it must be 10-600 s"
                )));
            }
            validate_ack_deadline(name, secs)?;
        }
        if let Some(Some(p)) = &self.dead_letter_policy {
            p.validate(name)?;
        }
        if let Some(Some(p)) = &self.retry_policy {
            p.validate(name)?;
        }
        if let Some(p) = &self.expiration_policy {
            p.validate(name)?;
        }
        Ok(())
    }

    /// The PATCH body for the subscription `name`; `dead_letter_topic` is the policy's topic
    /// already resolved to a full name.
    fn body(&self, name: &str, dead_letter_topic: Option<&str>) -> Result<Value> {
        let mut s = Map::new();
        s.insert("name".into(), json!(name));
        if let Some(secs) = self.ack_deadline_seconds {
            s.insert("ackDeadlineSeconds".into(), json!(secs));
        }
        if let Some(d) = self.message_retention_duration {
            s.insert("messageRetentionDuration".into(), json!(duration_opt::to_json(d)));
        }
        if let Some(retain) = self.retain_acked_messages {
            s.insert("retainAckedMessages".into(), json!(retain));
        }
        if let Some(on) = self.enable_exactly_once_delivery {
            s.insert("enableExactlyOnceDelivery".into(), json!(on));
        }
        if let Some(Some(p)) = &self.dead_letter_policy {
            let mut p = p.clone();
            if let Some(topic) = dead_letter_topic {
                topic.clone_into(&mut p.dead_letter_topic);
            }
            s.insert("deadLetterPolicy".into(), to_value(&p)?);
        }
        if let Some(Some(p)) = &self.retry_policy {
            s.insert("retryPolicy".into(), to_value(p)?);
        }
        if let Some(p) = &self.expiration_policy {
            s.insert("expirationPolicy".into(), to_value(p)?);
        }
        if let Some(labels) = &self.labels {
            s.insert("labels".into(), json!(labels));
        }
        Ok(json!({ "subscription": s, "updateMask": self.update_mask() }))
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| Error::Protocol(format!("cannot encode request: {e}")))
}

impl Client {
    /// Changes the fields set in `update` of a subscription (by id or path) and returns the
    /// subscription as the service now has it.
    ///
    /// Fails with [`Error::InvalidConfig`] before any request when `update` sets no field or
    /// a value out of range; a dead-letter topic given as a short id is resolved in the
    /// client's project.
    pub async fn update_subscription(
        &self,
        subscription: &str,
        update: &SubscriptionUpdate,
    ) -> Result<Subscription> {
        let name = self.subscription_name(subscription)?;
        update.validate(name.as_str())?;
        let dead_letter_topic = match &update.dead_letter_policy {
            Some(Some(p)) => Some(self.topic_name(&p.dead_letter_topic)?),
            _ => None,
        };
        let body = update.body(name.as_str(), dead_letter_topic.as_ref().map(|t| t.as_str()))?;
        decode(
            &self.call_with_retry(Method::PATCH, name.as_str(), Some(encode(&body)?)).await?,
            "subscription",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "projects/p/subscriptions/s";

    #[test]
    fn only_set_fields_are_sent_and_masked() {
        let u = SubscriptionUpdate::new().with_ack_deadline_seconds(42);
        assert_eq!(
            u.body(NAME, None).expect("body"),
            json!({"subscription": {"name": NAME, "ackDeadlineSeconds": 42}, "updateMask": "ackDeadlineSeconds"})
        );
        let u = SubscriptionUpdate::new()
            .with_label("team", "dp")
            .with_message_retention(Duration::from_secs(7200))
            .with_retain_acked_messages(false)
            .with_exactly_once_delivery(true)
            .with_retry_policy(DeliveryRetryPolicy::new(Duration::from_secs(1), Duration::from_secs(20)))
            .with_expiration_policy(ExpirationPolicy::never())
            .with_dead_letter_policy(DeadLetterPolicy::new("dlq", 9));
        assert_eq!(
            u.body(NAME, Some("projects/p/topics/dlq")).expect("body"),
            json!({"subscription": {
                "name": NAME,
                "messageRetentionDuration": "7200s",
                "retainAckedMessages": false,
                "enableExactlyOnceDelivery": true,
                "deadLetterPolicy": {"deadLetterTopic": "projects/p/topics/dlq", "maxDeliveryAttempts": 9},
                "retryPolicy": {"minimumBackoff": "1s", "maximumBackoff": "20s"},
                "expirationPolicy": {},
                "labels": {"team": "dp"},
            },
            "updateMask": "messageRetentionDuration,retainAckedMessages,enableExactlyOnceDelivery,\
                           deadLetterPolicy,retryPolicy,expirationPolicy,labels"})
        );
    }

    #[test]
    fn removed_policies_are_masked_but_not_sent() {
        let u = SubscriptionUpdate::new().without_dead_letter_policy().without_retry_policy();
        assert_eq!(
            u.body(NAME, None).expect("body"),
            json!({"subscription": {"name": NAME}, "updateMask": "deadLetterPolicy,retryPolicy"})
        );
    }

    #[test]
    fn empty_and_out_of_range_updates_are_refused() {
        let err = SubscriptionUpdate::new().validate(NAME).expect_err("empty");
        assert!(err.to_string().contains("sets no field"), "{err}");
        for bad in [0, 9, 601] {
            let err =
                SubscriptionUpdate::new().with_ack_deadline_seconds(bad).validate(NAME).expect_err("range");
            assert!(err.to_string().contains("10-600"), "{bad}: {err}");
        }
        let dl = SubscriptionUpdate::new().with_dead_letter_policy(DeadLetterPolicy::new("d", 4));
        assert!(dl.validate(NAME).is_err());
        assert!(SubscriptionUpdate::new().with_ack_deadline_seconds(600).validate(NAME).is_ok());
    }
}
