//! Low-level subscription calls: one pull, acknowledge, modifyAckDeadline.
//!
//! These are single REST calls with the client's retry policy. They are the building blocks of
//! a streaming subscriber and are handy in tests and tools that read a subscription directly.

use std::collections::HashMap;

use base64_simd::STANDARD;
use bytes::Bytes;
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::limits::{MAX_ACK_DEADLINE_SECS, MAX_ACK_IDS_PER_REQUEST, MAX_ACK_REQUEST_BYTES};
use crate::names::SubscriptionName;
use crate::transport::Body;

/// A message as delivered by the service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReceivedMessage {
    /// Id to acknowledge or extend this delivery with.
    pub ack_id: String,
    /// The payload, base64-decoded.
    pub data: Bytes,
    /// Attributes.
    pub attributes: HashMap<String, String>,
    /// Id the service assigned at publish time.
    pub message_id: String,
    /// Publish time, RFC 3339.
    pub publish_time: String,
    /// Ordering key, empty if none.
    pub ordering_key: String,
    /// Delivery attempt (only set when the subscription has a dead-letter policy).
    pub delivery_attempt: i32,
}

impl ReceivedMessage {
    /// Size as flow control counts it: data, attribute keys and values, ordering key.
    pub fn size(&self) -> usize {
        self.data.len()
            + self.attributes.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
            + self.ordering_key.len()
    }
}

/// Splits ack ids into request-sized chunks: at most [`MAX_ACK_IDS_PER_REQUEST`] ids and
/// [`MAX_ACK_REQUEST_BYTES`] bytes of quoted ids each.
pub(crate) fn ack_chunks(ids: &[String]) -> impl Iterator<Item = &[String]> {
    let mut rest = ids;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let mut n = 0;
        while n < rest.len() && n < MAX_ACK_IDS_PER_REQUEST {
            let len = rest[n].len() + 3;
            if n > 0 && bytes + len > MAX_ACK_REQUEST_BYTES {
                break;
            }
            bytes += len;
            n += 1;
        }
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PullResponse {
    #[serde(default)]
    received_messages: Vec<WireReceived>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireReceived {
    ack_id: String,
    message: WireMessage,
    #[serde(default)]
    delivery_attempt: i32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMessage {
    #[serde(default)]
    data: String,
    #[serde(default)]
    attributes: HashMap<String, String>,
    #[serde(default)]
    message_id: String,
    #[serde(default)]
    publish_time: String,
    #[serde(default)]
    ordering_key: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PullRequest {
    max_messages: u32,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    return_immediately: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AckRequest<'a> {
    ack_ids: &'a [String],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModifyAckDeadlineRequest<'a> {
    ack_ids: &'a [String],
    ack_deadline_seconds: u32,
}

fn decode_pull(bytes: &[u8]) -> Result<Vec<ReceivedMessage>> {
    let resp: PullResponse = serde_json::from_slice(bytes)
        .map_err(|e| Error::Protocol(format!("cannot decode pull response: {e}")))?;
    resp.received_messages
        .into_iter()
        .map(|r| {
            let data = STANDARD.decode_to_vec(r.message.data.as_bytes()).map_err(|e| {
                Error::Protocol(format!("message {} has invalid base64 data: {e}", r.message.message_id))
            })?;
            Ok(ReceivedMessage {
                ack_id: r.ack_id,
                data: Bytes::from(data),
                attributes: r.message.attributes,
                message_id: r.message.message_id,
                publish_time: r.message.publish_time,
                ordering_key: r.message.ordering_key,
                delivery_attempt: r.delivery_attempt,
            })
        })
        .collect()
}

fn json<T: Serialize>(v: &T) -> Result<Body> {
    serde_json::to_vec(v).map(Body::json).map_err(|e| Error::Protocol(format!("cannot encode request: {e}")))
}

impl Client {
    /// Pulls up to `max_messages` messages, waiting for some to arrive (a long poll).
    ///
    /// Returns an empty list when the request timeout of the client passes without messages.
    /// This is one attempt: other failures are returned for the caller's loop to retry.
    pub async fn pull(&self, subscription: &str, max_messages: u32) -> Result<Vec<ReceivedMessage>> {
        let name = self.subscription_name(subscription)?;
        self.pull_once(&name, max_messages, None).await
    }

    /// One long-poll pull with an optional time limit; a timeout is an empty answer.
    pub(crate) async fn pull_once(
        &self,
        name: &SubscriptionName,
        max_messages: u32,
        timeout: Option<std::time::Duration>,
    ) -> Result<Vec<ReceivedMessage>> {
        let path = format!("{name}:pull");
        let body = json(&PullRequest { max_messages: max_messages.max(1), return_immediately: false })?;
        match self.transport().call_with_timeout(Method::POST, &path, Some(body), timeout).await {
            Ok(bytes) => decode_pull(&bytes),
            Err(Error::Transport(e)) if e.is_timeout() => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Pulls up to `max_messages` messages without waiting: an empty list means none were
    /// available right now. Retried per the client's retry policy.
    pub async fn pull_immediately(
        &self,
        subscription: &str,
        max_messages: u32,
    ) -> Result<Vec<ReceivedMessage>> {
        let name = self.subscription_name(subscription)?;
        let path = format!("{name}:pull");
        let body = json(&PullRequest { max_messages: max_messages.max(1), return_immediately: true })?;
        decode_pull(&self.call_with_retry(Method::POST, &path, Some(body)).await?)
    }

    /// Acknowledges deliveries, in requests of at most [`MAX_ACK_IDS_PER_REQUEST`] ids and
    /// [`MAX_ACK_REQUEST_BYTES`] bytes, each retried per the client's retry policy.
    pub async fn acknowledge(&self, subscription: &str, ack_ids: &[String]) -> Result<()> {
        let name = self.subscription_name(subscription)?;
        self.acknowledge_ids(&name, ack_ids).await
    }

    pub(crate) async fn acknowledge_ids(&self, name: &SubscriptionName, ack_ids: &[String]) -> Result<()> {
        let path = format!("{name}:acknowledge");
        for chunk in ack_chunks(ack_ids) {
            self.call_with_retry(Method::POST, &path, Some(json(&AckRequest { ack_ids: chunk })?)).await?;
        }
        Ok(())
    }

    /// Sets the ack deadline of deliveries to `seconds` from now (0 = nack, redeliver soon;
    /// at most 600), in request-sized chunks like [`acknowledge`](Self::acknowledge).
    pub async fn modify_ack_deadline(
        &self,
        subscription: &str,
        ack_ids: &[String],
        seconds: u32,
    ) -> Result<()> {
        let name = self.subscription_name(subscription)?;
        self.modify_ack_deadline_ids(&name, ack_ids, seconds).await
    }

    pub(crate) async fn modify_ack_deadline_ids(
        &self,
        name: &SubscriptionName,
        ack_ids: &[String],
        seconds: u32,
    ) -> Result<()> {
        if seconds > MAX_ACK_DEADLINE_SECS {
            return Err(Error::InvalidConfig(format!(
                "ack deadline of {seconds} s is above the maximum of {MAX_ACK_DEADLINE_SECS} s"
            )));
        }
        let path = format!("{name}:modifyAckDeadline");
        for chunk in ack_chunks(ack_ids) {
            let body = json(&ModifyAckDeadlineRequest { ack_ids: chunk, ack_deadline_seconds: seconds })?;
            self.call_with_retry(Method::POST, &path, Some(body)).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_chunks_respect_count_and_bytes() {
        let short: Vec<String> = (0..6000).map(|i| format!("id{i}")).collect();
        let sizes: Vec<usize> = ack_chunks(&short).map(<[String]>::len).collect();
        assert_eq!(sizes, [2500, 2500, 1000]);
        let long: Vec<String> = (0..5000).map(|i| format!("{i:0>197}")).collect();
        let chunks: Vec<&[String]> = ack_chunks(&long).collect();
        assert_eq!(chunks.iter().map(|c| c.len()).sum::<usize>(), 5000);
        for c in &chunks {
            assert!(c.iter().map(|s| s.len() + 3).sum::<usize>() <= MAX_ACK_REQUEST_BYTES);
        }
        assert_eq!(chunks[0].len(), MAX_ACK_REQUEST_BYTES / 200);
        assert_eq!(ack_chunks(&[]).count(), 0);
    }
}
