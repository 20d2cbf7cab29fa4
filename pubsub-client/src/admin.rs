//! Admin calls: topics, subscriptions, snapshots and seek.
//!
//! * Topics ([`Topic`], [`TopicUpdate`]): create, get, update, delete, list.
//! * Subscriptions ([`Subscription`], [`SubscriptionUpdate`]): create, get, update, delete, list;
//!   their policies are [`DeadLetterPolicy`], [`DeliveryRetryPolicy`] and [`ExpirationPolicy`].
//! * Snapshots ([`Snapshot`], [`CreateSnapshot`]): create from a subscription, get, delete, list
//!   with paging ([`SnapshotPage`]).
//! * Seek ([`SeekTarget`]): move a subscription's acknowledgement state to a time or to a
//!   snapshot, which is how operators replay messages (see the README's "Replaying an hour").
//!
//! Every call takes a short id (resolved in the client's project) or a full path, checks it
//! locally and uses the client's [`RetryPolicy`](crate::RetryPolicy).
//!
//! # Replaying
//!
//! A seek can deliver acknowledged messages again only if they are retained: turn retention on
//! ahead of need (it keeps messages published from then on), then seek to a time or a snapshot.
//! `examples/replay_hour.rs` replays one hour through a fresh subscription.
//!
//! ```no_run
//! use pubsub_client::{Client, CreateSnapshot, SeekTarget, SubscriptionUpdate, TopicUpdate};
//! use std::time::Duration;
//!
//! # async fn run(client: &Client) -> pubsub_client::Result<()> {
//! let week = Duration::from_secs(7 * 24 * 3600);
//! client.update_topic("events-play", &TopicUpdate::new().with_message_retention(week)).await?;
//! let keep = SubscriptionUpdate::new().with_retain_acked_messages(true).with_message_retention(week);
//! client.update_subscription("events-play-exporter", &keep).await?;
//!
//! // Before a risky change: remember where the subscription is.
//! let snapshot = CreateSnapshot::new("exporter-before-deploy", "events-play-exporter");
//! client.create_snapshot(&snapshot).await?;
//! // ... and go back to it, or to a time.
//! client.seek_to_snapshot("events-play-exporter", "exporter-before-deploy").await?;
//! client.seek("events-play-exporter", &SeekTarget::rfc3339("2026-12-03T13:50:00Z")?).await?;
//! client.delete_snapshot("exporter-before-deploy").await?;
//! # Ok(()) }
//! ```

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::transport::Body;

mod policy;
mod seek;
mod snapshot;
mod subscription;
mod subscription_update;
mod time;
mod topic;

pub use policy::{DeadLetterPolicy, DeliveryRetryPolicy, ExpirationPolicy};
pub use seek::SeekTarget;
pub use snapshot::{CreateSnapshot, Snapshot, SnapshotPage};
pub use subscription::Subscription;
pub use subscription_update::SubscriptionUpdate;
pub use time::{format_rfc3339, parse_rfc3339};
pub use topic::{Topic, TopicUpdate};

/// Page size asked for when a `list_*` call follows all pages.
const LIST_PAGE_SIZE: u32 = 1000;

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Protocol(format!("cannot decode {what}: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Body> {
    serde_json::to_vec(value)
        .map(Body::json)
        .map_err(|e| Error::Protocol(format!("cannot encode request: {e}")))
}

/// The query string of one list call: `pageSize=N&pageToken=T`, the token percent-encoded
/// (service tokens may hold `+`, `/` and `=`).
fn page_query(page_size: u32, page_token: &str) -> String {
    let mut q = format!("pageSize={page_size}");
    if !page_token.is_empty() {
        q.push_str("&pageToken=");
        for b in page_token.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                q.push(char::from(b));
            } else {
                q.push_str(&format!("%{b:02X}"));
            }
        }
    }
    q
}

/// Protobuf JSON durations: `"604800s"`, `"1.5s"`.
mod duration_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn to_json(d: Duration) -> String {
        if d.subsec_nanos() == 0 {
            format!("{}s", d.as_secs())
        } else {
            format!("{}.{:09}s", d.as_secs(), d.subsec_nanos())
        }
    }

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&to_json(*d)),
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
    fn page_tokens_are_percent_encoded() {
        assert_eq!(page_query(1000, ""), "pageSize=1000");
        assert_eq!(page_query(2, "a+b/c=="), "pageSize=2&pageToken=a%2Bb%2Fc%3D%3D");
        assert_eq!(page_query(2, "Ab-9._~"), "pageSize=2&pageToken=Ab-9._~");
    }

    #[test]
    fn durations_are_written_as_protobuf_json() {
        use std::time::Duration;
        assert_eq!(duration_opt::to_json(Duration::from_secs(600)), "600s");
        assert_eq!(duration_opt::to_json(Duration::from_millis(1500)), "1.500000000s");
    }
}
