//! Seek: moving a subscription's acknowledgement state to a time or to a snapshot.

use std::time::SystemTime;

use reqwest::Method;
use serde_json::json;

use super::{encode, format_rfc3339, parse_rfc3339};
use crate::client::Client;
use crate::error::Result;

/// Where [`Client::seek`] moves a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SeekTarget {
    /// Messages published before this time count as acknowledged, the others as
    /// unacknowledged and are delivered (again). Acknowledged messages can be delivered again
    /// only if they are still retained: by the subscription's `retain_acked_messages` or the
    /// topic's message retention. A time in the future acknowledges everything published
    /// until then.
    Time(SystemTime),
    /// The acknowledgement state captured by this snapshot (id or path): what was
    /// unacknowledged when it was taken, and everything published after, is delivered (again).
    /// The snapshot must be of the same topic.
    Snapshot(String),
}

impl SeekTarget {
    /// A seek to an RFC 3339 time such as `2026-12-03T14:00:00Z`.
    pub fn rfc3339(time: &str) -> Result<SeekTarget> {
        parse_rfc3339(time).map(SeekTarget::Time)
    }
}

impl Client {
    /// Moves a subscription (by id or path) to `target`. Messages outstanding when it is called
    /// may still be acknowledged by their holders, so stop the subscription's consumers first
    /// when every replayed message must arrive again.
    pub async fn seek(&self, subscription: &str, target: &SeekTarget) -> Result<()> {
        let name = self.subscription_name(subscription)?;
        let body = match target {
            SeekTarget::Time(t) => json!({ "time": format_rfc3339(*t) }),
            SeekTarget::Snapshot(s) => json!({ "snapshot": self.snapshot_name(s)?.as_str() }),
        };
        let path = format!("{name}:seek");
        self.call_with_retry(Method::POST, &path, Some(encode(&body)?)).await.map(drop)
    }

    /// Moves a subscription to a time; see [`SeekTarget::Time`].
    pub async fn seek_to_time(&self, subscription: &str, time: SystemTime) -> Result<()> {
        self.seek(subscription, &SeekTarget::Time(time)).await
    }

    /// Moves a subscription to a snapshot (by id or path); see [`SeekTarget::Snapshot`].
    pub async fn seek_to_snapshot(&self, subscription: &str, snapshot: &str) -> Result<()> {
        self.seek(subscription, &SeekTarget::Snapshot(snapshot.to_owned())).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn rfc3339_targets_parse() {
        assert_eq!(
            SeekTarget::rfc3339("1970-01-01T01:00:00+01:00").expect("valid"),
            SeekTarget::Time(UNIX_EPOCH)
        );
        assert_eq!(
            SeekTarget::rfc3339("2026-12-03T14:00:00Z").expect("valid"),
            SeekTarget::Time(UNIX_EPOCH + Duration::from_secs(1_796_306_400))
        );
        assert!(SeekTarget::rfc3339("14:00").is_err());
    }
}
