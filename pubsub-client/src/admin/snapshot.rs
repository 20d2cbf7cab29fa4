//! Snapshots: a subscription's acknowledgement state kept under a name, to seek back to.

use std::collections::HashMap;
use std::time::SystemTime;

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::time::timestamp_opt;
use super::{LIST_PAGE_SIZE, decode, encode, page_query};
use crate::client::Client;
use crate::error::Result;
use crate::names::SnapshotName;

/// A snapshot as the service describes it.
///
/// It holds the messages that were unacknowledged in its subscription when it was created,
/// and every message published to the topic after that, until it expires.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Snapshot {
    /// `projects/{project}/snapshots/{id}`.
    pub name: String,
    /// The topic of the subscription it was taken from.
    #[serde(default)]
    pub topic: String,
    /// When the service deletes it: at most 7 days after creation, sooner when the oldest
    /// unacknowledged message it holds would leave the subscription's retention.
    #[serde(default, with = "timestamp_opt", skip_serializing_if = "Option::is_none")]
    pub expire_time: Option<SystemTime>,
    /// Labels.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub labels: HashMap<String, String>,
}

/// What [`Client::create_snapshot`] creates: a snapshot `name` of `subscription`.
///
/// Both may be short ids (resolved in the client's project) or full paths. Default labels:
/// none.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
#[must_use]
pub struct CreateSnapshot {
    /// The snapshot's id or path.
    pub name: String,
    /// The subscription whose acknowledgement state it captures.
    pub subscription: String,
    /// Labels. Default: none.
    pub labels: HashMap<String, String>,
}

impl CreateSnapshot {
    /// A snapshot `name` of `subscription`, without labels.
    pub fn new(name: impl Into<String>, subscription: impl Into<String>) -> Self {
        CreateSnapshot { name: name.into(), subscription: subscription.into(), labels: HashMap::new() }
    }

    /// Adds a label.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
}

#[derive(Serialize)]
struct CreateSnapshotBody<'a> {
    subscription: &'a str,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    labels: &'a HashMap<String, String>,
}

/// One page of [`Client::list_snapshots_page`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SnapshotPage {
    /// The snapshots of this page.
    #[serde(default)]
    pub snapshots: Vec<Snapshot>,
    /// The token of the next page; empty on the last page.
    #[serde(default)]
    pub next_page_token: String,
}

impl Client {
    /// Resolves a snapshot id or full path in this client's project.
    pub fn snapshot_name(&self, snapshot: &str) -> Result<SnapshotName> {
        SnapshotName::parse(self.project(), snapshot)
    }

    /// Creates a snapshot of a subscription's acknowledgement state; fails with
    /// [`Error::is_already_exists`](crate::Error::is_already_exists) if the name is taken and
    /// [`Error::is_not_found`](crate::Error::is_not_found) if the subscription does not exist.
    pub async fn create_snapshot(&self, snapshot: &CreateSnapshot) -> Result<Snapshot> {
        let name = self.snapshot_name(&snapshot.name)?;
        let subscription = self.subscription_name(&snapshot.subscription)?;
        let body =
            encode(&CreateSnapshotBody { subscription: subscription.as_str(), labels: &snapshot.labels })?;
        decode(&self.call_with_retry(Method::PUT, name.as_str(), Some(body)).await?, "snapshot")
    }

    /// Fetches a snapshot by id or path.
    pub async fn get_snapshot(&self, snapshot: &str) -> Result<Snapshot> {
        let name = self.snapshot_name(snapshot)?;
        decode(&self.call_with_retry(Method::GET, name.as_str(), None).await?, "snapshot")
    }

    /// Deletes a snapshot by id or path.
    pub async fn delete_snapshot(&self, snapshot: &str) -> Result<()> {
        let name = self.snapshot_name(snapshot)?;
        self.call_with_retry(Method::DELETE, name.as_str(), None).await.map(drop)
    }

    /// One page of the snapshots of the client's project: at most `page_size` of them (0: the
    /// service's default), starting at `page_token` (empty: the first page).
    pub async fn list_snapshots_page(&self, page_size: u32, page_token: &str) -> Result<SnapshotPage> {
        let path = format!("projects/{}/snapshots?{}", self.project(), page_query(page_size, page_token));
        decode(&self.call_with_retry(Method::GET, &path, None).await?, "snapshot list")
    }

    /// Lists all snapshots of the client's project, following pages.
    pub async fn list_snapshots(&self) -> Result<Vec<Snapshot>> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let page = self.list_snapshots_page(LIST_PAGE_SIZE, &token).await?;
            out.extend(page.snapshots);
            if page.next_page_token.is_empty() {
                return Ok(out);
            }
            token = page.next_page_token;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn snapshots_decode_as_the_emulator_writes_them() {
        let s: Snapshot = serde_json::from_str(
            r#"{"name":"projects/p/snapshots/s1","topic":"projects/p/topics/t1",
                "expireTime":"2026-12-10T22:59:13.334Z","labels":{"reason":"replay"}}"#,
        )
        .expect("decodes");
        assert_eq!(s.expire_time, Some(UNIX_EPOCH + Duration::from_millis(1_796_943_553_334)));
        assert_eq!(s.labels["reason"], "replay");
        let page: SnapshotPage =
            serde_json::from_str(r#"{"snapshots":[{"name":"projects/p/snapshots/s1"}],"nextPageToken":"x"}"#)
                .expect("decodes");
        assert_eq!((page.snapshots.len(), page.next_page_token.as_str()), (1, "x"));
        assert!(serde_json::from_str::<Snapshot>(r#"{"name":"n","expireTime":"tomorrow"}"#).is_err());
    }

    #[test]
    fn create_requests_name_the_subscription_and_labels() {
        let labels = HashMap::from([("reason".to_owned(), "replay".to_owned())]);
        let body = CreateSnapshotBody { subscription: "projects/p/subscriptions/s", labels: &labels };
        assert_eq!(
            serde_json::to_value(&body).expect("encodes"),
            serde_json::json!({"subscription": "projects/p/subscriptions/s", "labels": {"reason": "replay"}})
        );
        let none = HashMap::new();
        let body = CreateSnapshotBody { subscription: "projects/p/subscriptions/s", labels: &none };
        assert_eq!(
            serde_json::to_value(&body).expect("encodes"),
            serde_json::json!({"subscription": "projects/p/subscriptions/s"})
        );
    }
}
