//! `event-service registry apply`: create the topics and subscriptions the registry needs.

use event_model::Registry;
use pubsub_client::{Client, Subscription, Topic};

use crate::error::ServiceError;

/// What `apply_registry` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    /// Topics and subscriptions created.
    pub created: Vec<String>,
    /// Topics and subscriptions that already existed.
    pub existing: Vec<String>,
}

/// Ack deadline of the subscriptions [`apply_registry`] creates, in seconds.
///
/// A message pulled by a consumer that then crashes (or whose pull answer is lost) comes back
/// only after this long; the exporter's `close.idle_secs` and `close.allowed_lateness_secs`
/// must be longer, or such a message finds its hour closed and becomes a late event.
pub const DEFAULT_ACK_DEADLINE_SECS: u32 = 60;

/// Creates every missing topic of the registry, a `<topic>-<suffix>` subscription for each of a
/// type's `subscriptions` (ack deadline [`DEFAULT_ACK_DEADLINE_SECS`]), and the dead-letter
/// topic with a `<topic>-inspect` subscription (so rejected events are kept). Existing ones are
/// left as they are.
pub async fn apply_registry(
    client: &Client,
    registry: &Registry,
    dead_letter_topic: Option<&str>,
) -> Result<ApplyReport, ServiceError> {
    apply_registry_with(client, registry, dead_letter_topic, DEFAULT_ACK_DEADLINE_SECS).await
}

/// [`apply_registry`] with another ack deadline (10..=600 s) for new subscriptions.
pub async fn apply_registry_with(
    client: &Client,
    registry: &Registry,
    dead_letter_topic: Option<&str>,
    ack_deadline_secs: u32,
) -> Result<ApplyReport, ServiceError> {
    let mut report = ApplyReport::default();
    let mut wanted: Vec<(String, Vec<String>)> =
        registry.types().map(|t| (t.topic.clone(), t.subscriptions.clone())).collect();
    if let Some(dlq) = dead_letter_topic {
        wanted.push((dlq.to_owned(), vec!["inspect".to_owned()]));
    }
    for (topic, subs) in wanted {
        match client.create_topic(&Topic::new(&topic)).await {
            Ok(_) => report.created.push(format!("topic {topic}")),
            Err(e) if e.is_already_exists() => report.existing.push(format!("topic {topic}")),
            Err(e) => return Err(e.into()),
        }
        for suffix in subs {
            let name = format!("{topic}-{suffix}");
            match client
                .create_subscription(
                    &Subscription::new(&name, &topic).with_ack_deadline_seconds(ack_deadline_secs),
                )
                .await
            {
                Ok(_) => report.created.push(format!("subscription {name}")),
                Err(e) if e.is_already_exists() => report.existing.push(format!("subscription {name}")),
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(report)
}
