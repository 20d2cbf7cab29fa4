//! Publishing one request's checked events and deciding each event's status: accepted once
//! Pub/Sub confirmed it, rejected once it is dead-lettered (or when there is no dead-letter
//! topic), retryable when its publish or its dead-letter publish failed.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use event_model::ingest::{Rejected, Retryable};
use event_model::{Event, Rejection, attributes};
use prost::Message as _;
use pubsub_client::limits::MAX_ATTRIBUTE_VALUE_BYTES;
use pubsub_client::{Message, PublishHandle, Publisher};

use crate::metrics::{RejectLabels, TypeLabels};
use crate::state::AppState;

/// The outcome of validating one request's events.
#[derive(Debug, Default)]
pub struct Checked {
    /// Valid, enriched events, with their index in the request.
    pub accepted: Vec<(usize, Event)>,
    /// Index in the request, the rejection, and the event's original bytes.
    pub rejected: Vec<(usize, Rejection, Bytes)>,
}

/// Every event's status after publishing.
#[derive(Debug, Default)]
pub(crate) struct Statuses {
    pub(crate) accepted: u64,
    pub(crate) rejected: Vec<Rejected>,
    pub(crate) retryable: Vec<Retryable>,
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub(crate) fn truncate_to(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The longest reason given back in an answer or a dead-letter attribute, in bytes.
const MAX_REASON_BYTES: usize = MAX_ATTRIBUTE_VALUE_BYTES;

/// One publisher per topic for the whole request.
struct Topics<'a> {
    state: &'a AppState,
    by_topic: HashMap<String, Result<Publisher, String>>,
}

impl Topics<'_> {
    fn get(&mut self, topic: &str) -> Result<&Publisher, &str> {
        if !self.by_topic.contains_key(topic) {
            let p =
                self.state.publishers.get(topic).map_err(|e| format!("no publisher for topic {topic}: {e}"));
            self.by_topic.insert(topic.to_owned(), p);
        }
        match &self.by_topic[topic] {
            Ok(p) => Ok(p),
            Err(e) => Err(e),
        }
    }
}

/// Publishes the accepted events to their topics and the rejected ones to the dead-letter
/// topic (when configured), and waits for Pub/Sub's answer for each.
pub(crate) async fn publish(state: &AppState, checked: Checked) -> Statuses {
    let metrics = &state.metrics;
    let start = Instant::now();
    let registry = state.registry();
    let mut topics = Topics { state, by_topic: HashMap::new() };
    let mut out = Statuses::default();
    let mut pending: Vec<(usize, String, &str, PublishHandle)> = Vec::with_capacity(checked.accepted.len());
    for (index, event) in &checked.accepted {
        let Some(topic) = registry.topic_of(event) else {
            // Cannot happen for a validated event; retry rather than drop if it does.
            out.retryable.push(Retryable::new(*index, format!("type `{}` has no topic", event.r#type)));
            continue;
        };
        let msg = Message::new(event.encode_to_vec()).with_attributes(attributes(event));
        let publisher = match topics.get(topic) {
            Ok(p) => p,
            Err(e) => {
                out.retryable.push(Retryable::new(*index, e));
                continue;
            }
        };
        match publisher.publish(&msg).await {
            Ok(h) => pending.push((*index, event.r#type.clone(), topic, h)),
            Err(e) => {
                out.retryable.push(Retryable::new(*index, format!("publish to topic {topic} refused: {e}")))
            }
        }
        if let Some(mirror) = &state.mirror {
            mirror.offer(topic, msg); // never waits; a full mirror queue drops and counts it
        }
    }
    let dead_letter = dead_letter(state, &mut topics, &checked.rejected, &mut out).await;
    // The answer waits for Pub/Sub to confirm every accepted event.
    let mut failed_topics: HashMap<&str, String> = HashMap::new();
    for (index, event_type, topic, h) in pending {
        match h.await {
            Ok(_) => {
                out.accepted += 1;
                metrics.accepted.get_or_create(&TypeLabels { event_type }).inc();
            }
            Err(e) => {
                let why = failed_topics
                    .entry(topic)
                    .or_insert_with(|| format!("publishing to topic {topic} failed: {e}"));
                out.retryable.push(Retryable::new(index, why.clone()));
                metrics.retryable.get_or_create(&TypeLabels { event_type }).inc();
            }
        }
    }
    for (topic, why) in &failed_topics {
        tracing::warn!(topic, error = %why, "publish failed; its events are answered as retryable");
    }
    let mut dead_letter_failure = None;
    for (index, r, h) in dead_letter {
        match h {
            Some(h) => match h.await {
                Ok(_) => {
                    metrics.dead_lettered.inc();
                    rejected(state, &registry, &mut out, index, r);
                }
                Err(e) => {
                    let why = format!("the dead-letter publish of this rejected event failed: {e}");
                    dead_letter_failure.get_or_insert_with(|| why.clone());
                    out.retryable.push(Retryable::new(index, why));
                    let event_type = type_label(&registry, r.event_type.as_deref());
                    metrics.retryable.get_or_create(&TypeLabels { event_type }).inc();
                }
            },
            None => rejected(state, &registry, &mut out, index, r),
        }
    }
    if let Some(why) = dead_letter_failure {
        tracing::warn!(error = %why, "dead-letter publish failed; those events are answered as retryable");
    }
    metrics.publish_latency.observe(start.elapsed().as_secs_f64());
    out.retryable.sort_by_key(|r| r.index);
    out
}

/// Publishes each rejected event to the dead-letter topic; `None` as its handle when there is
/// no dead-letter topic (the event is rejected at once). A publish that cannot even be queued
/// makes the event retryable.
async fn dead_letter<'r>(
    state: &AppState,
    topics: &mut Topics<'_>,
    rejected: &'r [(usize, Rejection, Bytes)],
    out: &mut Statuses,
) -> Vec<(usize, &'r Rejection, Option<PublishHandle>)> {
    let mut handles = Vec::with_capacity(rejected.len());
    let Some(dlq) = &state.config.dead_letter_topic else {
        handles.extend(rejected.iter().map(|(i, r, _)| (*i, r, None)));
        return handles;
    };
    for (index, r, bytes) in rejected {
        let publisher = match topics.get(dlq) {
            Ok(p) => p,
            Err(e) => {
                out.retryable.push(Retryable::new(*index, format!("dead-letter topic: {e}")));
                continue;
            }
        };
        let msg = Message::new(bytes.clone())
            .with_attribute("reject_reason", truncate_to(&r.reason, MAX_REASON_BYTES))
            .with_attribute("reject_kind", r.kind.as_str())
            .with_attribute(
                "event_type",
                truncate_to(r.event_type.as_deref().unwrap_or_default(), MAX_ATTRIBUTE_VALUE_BYTES),
            )
            .with_attribute("request_index", index.to_string());
        match publisher.publish(&msg).await {
            Ok(h) => handles.push((*index, r, Some(h))),
            Err(e) => out
                .retryable
                .push(Retryable::new(*index, format!("the dead-letter publish was refused: {e}"))),
        }
    }
    handles
}

/// Records event `index` as rejected: in the answer, and counted under its type when the
/// registry knows the type (`unknown` otherwise, so clients cannot create label values).
fn rejected(
    state: &AppState,
    registry: &event_model::Registry,
    out: &mut Statuses,
    index: usize,
    r: &Rejection,
) {
    let labels = RejectLabels {
        event_type: type_label(registry, r.event_type.as_deref()),
        reason: r.kind.as_str().into(),
    };
    state.metrics.rejected.get_or_create(&labels).inc();
    out.rejected.push(Rejected::new(index, truncate_to(&r.reason, MAX_REASON_BYTES), r.kind.as_str()));
}

/// The metric label of an event type: its name when the registry knows it, `unknown` for
/// anything else, so clients cannot create label values.
fn type_label(registry: &event_model::Registry, event_type: Option<&str>) -> String {
    event_type.filter(|t| registry.event_type(t).is_some()).unwrap_or("unknown").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate_to("abc", 5), "abc");
        assert_eq!(truncate_to("abcdef", 3), "abc");
        // 'é' is two bytes: a cut inside it drops it.
        assert_eq!(truncate_to("aé", 2), "a");
        let long = "€".repeat(1000);
        let t = truncate_to(&long, MAX_ATTRIBUTE_VALUE_BYTES);
        assert!(t.len() <= MAX_ATTRIBUTE_VALUE_BYTES && t.len() > MAX_ATTRIBUTE_VALUE_BYTES - 3);
    }
}
