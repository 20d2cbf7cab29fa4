//! The policies a subscription carries: dead-lettering, redelivery backoff, expiration.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration_opt;
use crate::error::{Error, Result};

/// Where messages that could not be delivered go.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DeadLetterPolicy {
    /// The dead-letter topic: a short id (resolved in the client's project) or a full name.
    /// The service returns the full name.
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

    pub(super) fn validate(&self, subscription: &str) -> Result<()> {
        if !(5..=100).contains(&self.max_delivery_attempts) {
            return Err(Error::InvalidConfig(format!(
                "max_delivery_attempts of subscription {subscription:?} is {}; it must be 5-100",
                self.max_delivery_attempts
            )));
        }
        Ok(())
    }
}

/// How soon the service redelivers a message that was nacked or whose lease expired: an
/// exponential backoff between the two bounds, per message (the subscription's `retryPolicy`,
/// not to be confused with the client's own [`RetryPolicy`](crate::RetryPolicy)).
///
/// Without one, the service redelivers at once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DeliveryRetryPolicy {
    /// The first delay (0-600 s). Default: unset, the service's 10 s.
    #[serde(default, with = "duration_opt", skip_serializing_if = "Option::is_none")]
    pub minimum_backoff: Option<Duration>,
    /// The largest delay (0-600 s). Default: unset, the service's 600 s.
    #[serde(default, with = "duration_opt", skip_serializing_if = "Option::is_none")]
    pub maximum_backoff: Option<Duration>,
}

impl DeliveryRetryPolicy {
    /// A backoff from `minimum` up to `maximum`.
    pub fn new(minimum: Duration, maximum: Duration) -> Self {
        DeliveryRetryPolicy { minimum_backoff: Some(minimum), maximum_backoff: Some(maximum) }
    }

    pub(super) fn validate(&self, subscription: &str) -> Result<()> {
        let max = Duration::from_secs(600);
        for (what, d) in
            [("minimum_backoff", self.minimum_backoff), ("maximum_backoff", self.maximum_backoff)]
        {
            if let Some(d) = d
                && d > max
            {
                return Err(Error::InvalidConfig(format!(
                    "{what} of subscription {subscription:?} is {d:?}; it must be 0-600 s"
                )));
            }
        }
        if let (Some(min), Some(max)) = (self.minimum_backoff, self.maximum_backoff)
            && min > max
        {
            return Err(Error::InvalidConfig(format!(
                "minimum_backoff of subscription {subscription:?} ({min:?}) is above its maximum_backoff ({max:?})"
            )));
        }
        Ok(())
    }
}

/// When an inactive subscription is deleted by the service.
///
/// A subscription created without one expires after 31 days without activity (the service's
/// default); [`ExpirationPolicy::never`] keeps it forever.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ExpirationPolicy {
    /// Inactivity after which the subscription is deleted (at least 1 day). `None`: never.
    #[serde(default, with = "duration_opt", skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Duration>,
}

impl ExpirationPolicy {
    /// Deleted after `ttl` without activity.
    pub fn after(ttl: Duration) -> Self {
        ExpirationPolicy { ttl: Some(ttl) }
    }

    /// Never deleted for inactivity.
    pub fn never() -> Self {
        ExpirationPolicy { ttl: None }
    }

    pub(super) fn validate(&self, subscription: &str) -> Result<()> {
        if let Some(ttl) = self.ttl
            && ttl < Duration::from_secs(86_400)
        {
            return Err(Error::InvalidConfig(format!(
                "expiration ttl of subscription {subscription:?} is {ttl:?}; it must be at least 1 day"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_serialize_like_the_rest_api() {
        let r = DeliveryRetryPolicy::new(Duration::from_secs(5), Duration::from_secs(60));
        let v = serde_json::to_value(&r).expect("serializes");
        assert_eq!(v, serde_json::json!({"minimumBackoff": "5s", "maximumBackoff": "60s"}));
        assert_eq!(serde_json::to_value(ExpirationPolicy::never()).expect("ok"), serde_json::json!({}));
        let e = ExpirationPolicy::after(Duration::from_secs(2 * 86_400));
        assert_eq!(serde_json::to_value(&e).expect("ok"), serde_json::json!({"ttl": "172800s"}));
    }

    #[test]
    fn out_of_range_policies_are_rejected() {
        let r = DeliveryRetryPolicy::new(Duration::from_secs(30), Duration::from_secs(10));
        assert!(r.validate("s").expect_err("min above max").to_string().contains("above"));
        let r = DeliveryRetryPolicy::new(Duration::from_secs(1), Duration::from_secs(601));
        assert!(r.validate("s").expect_err("too long").to_string().contains("0-600"));
        assert!(DeliveryRetryPolicy::new(Duration::ZERO, Duration::from_secs(600)).validate("s").is_ok());
        assert!(ExpirationPolicy::after(Duration::from_secs(3600)).validate("s").is_err());
        assert!(ExpirationPolicy::never().validate("s").is_ok());
        assert!(DeadLetterPolicy::new("d", 101).validate("s").is_err());
    }
}
