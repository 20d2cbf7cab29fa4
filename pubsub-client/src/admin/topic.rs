//! Topics: the resource, create / get / update / delete / list.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{LIST_PAGE_SIZE, decode, duration_opt, encode, page_query};
use crate::client::Client;
use crate::error::{Error, Result};

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
    /// How long the topic keeps messages, acknowledged or not, so that subscriptions (also ones
    /// created later) can seek back into them (10 minutes to 31 days). Default: unset (no
    /// topic retention).
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

/// The fields of a topic to change with [`Client::update_topic`]; only the fields set here
/// are sent and named in the request's `updateMask`, the others keep their values.
///
/// Default: no field set (an update with no field is refused before any request).
///
/// ```
/// use pubsub_client::TopicUpdate;
/// use std::time::Duration;
///
/// let update = TopicUpdate::new()
///     .with_label("team", "data-platform")
///     .with_message_retention(Duration::from_secs(7 * 24 * 3600));
/// assert_eq!(update.update_mask(), "labels,messageRetentionDuration");
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
#[must_use]
pub struct TopicUpdate {
    labels: Option<HashMap<String, String>>,
    message_retention_duration: Option<Option<Duration>>,
}

impl TopicUpdate {
    /// An update that changes nothing yet.
    pub fn new() -> Self {
        TopicUpdate::default()
    }

    /// Replaces all labels with `labels` (an empty map removes them all).
    pub fn with_labels(mut self, labels: HashMap<String, String>) -> Self {
        self.labels = Some(labels);
        self
    }

    /// Adds a label to the labels this update sets. The update replaces all of the topic's
    /// labels: include the ones to keep.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.get_or_insert_with(HashMap::new).insert(key.into(), value.into());
        self
    }

    /// Sets the topic's message retention (10 minutes to 31 days).
    pub fn with_message_retention(mut self, d: Duration) -> Self {
        self.message_retention_duration = Some(Some(d));
        self
    }

    /// Removes the topic's message retention.
    pub fn without_message_retention(mut self) -> Self {
        self.message_retention_duration = Some(None);
        self
    }

    /// True when no field is set.
    pub fn is_empty(&self) -> bool {
        self.update_mask().is_empty()
    }

    /// The `updateMask` this update sends: the REST field names of the set fields, in a fixed
    /// order, comma-separated.
    pub fn update_mask(&self) -> String {
        let mut paths = Vec::new();
        if self.labels.is_some() {
            paths.push("labels");
        }
        if self.message_retention_duration.is_some() {
            paths.push("messageRetentionDuration");
        }
        paths.join(",")
    }

    /// The PATCH body for the topic `name`.
    fn body(&self, name: &str) -> Value {
        let mut topic = Map::new();
        topic.insert("name".into(), json!(name));
        if let Some(labels) = &self.labels {
            topic.insert("labels".into(), json!(labels));
        }
        if let Some(Some(d)) = self.message_retention_duration {
            topic.insert("messageRetentionDuration".into(), json!(duration_opt::to_json(d)));
        }
        json!({ "topic": topic, "updateMask": self.update_mask() })
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

    /// Changes the fields set in `update` of a topic (by id or path) and returns the topic as
    /// the service now has it.
    ///
    /// Fails with [`Error::InvalidConfig`] before any request when `update` sets no field.
    pub async fn update_topic(&self, topic: &str, update: &TopicUpdate) -> Result<Topic> {
        let name = self.topic_name(topic)?;
        if update.is_empty() {
            return Err(Error::InvalidConfig(format!("the update of topic {name} sets no field")));
        }
        let body = encode(&update.body(name.as_str()))?;
        decode(&self.call_with_retry(Method::PATCH, name.as_str(), Some(body)).await?, "topic")
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
            let path = format!("projects/{}/topics?{}", self.project(), page_query(LIST_PAGE_SIZE, &token));
            let page: TopicPage =
                decode(&self.call_with_retry(Method::GET, &path, None).await?, "topic list")?;
            out.extend(page.topics);
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
    fn fractional_durations_parse() {
        let t: Topic = serde_json::from_str(r#"{"name":"x","messageRetentionDuration":"1.5s"}"#).expect("ok");
        assert_eq!(t.message_retention_duration, Some(Duration::from_millis(1500)));
        assert!(serde_json::from_str::<Topic>(r#"{"name":"x","messageRetentionDuration":"soon"}"#).is_err());
    }

    #[test]
    fn only_set_fields_are_sent_and_masked() {
        let labels_only = TopicUpdate::new().with_label("team", "dp").with_label("tier", "1");
        assert_eq!(
            labels_only.body("projects/p/topics/t"),
            json!({"topic": {"name": "projects/p/topics/t", "labels": {"team": "dp", "tier": "1"}},
                   "updateMask": "labels"})
        );
        let retention = TopicUpdate::new().with_message_retention(Duration::from_secs(3600));
        assert_eq!(
            retention.body("projects/p/topics/t"),
            json!({"topic": {"name": "projects/p/topics/t", "messageRetentionDuration": "3600s"},
                   "updateMask": "messageRetentionDuration"})
        );
        // Clearing: named in the mask, absent from the topic.
        let clear = TopicUpdate::new().without_message_retention().with_labels(HashMap::new());
        assert_eq!(
            clear.body("projects/p/topics/t"),
            json!({"topic": {"name": "projects/p/topics/t", "labels": {}},
                   "updateMask": "labels,messageRetentionDuration"})
        );
        assert!(TopicUpdate::new().is_empty());
    }
}
