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
use crate::limits::{MAX_ACK_DEADLINE_SECS, MAX_ACK_IDS_PER_REQUEST};
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
        let path = format!("{name}:pull");
        let body = json(&PullRequest { max_messages: max_messages.max(1), return_immediately: false })?;
        match self.transport().call(Method::POST, &path, Some(body)).await {
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

    /// Acknowledges deliveries, in requests of at most [`MAX_ACK_IDS_PER_REQUEST`] ids.
    pub async fn acknowledge(&self, subscription: &str, ack_ids: &[String]) -> Result<()> {
        let name = self.subscription_name(subscription)?;
        let path = format!("{name}:acknowledge");
        for chunk in ack_ids.chunks(MAX_ACK_IDS_PER_REQUEST) {
            self.call_with_retry(Method::POST, &path, Some(json(&AckRequest { ack_ids: chunk })?)).await?;
        }
        Ok(())
    }

    /// Sets the ack deadline of deliveries to `seconds` from now (0 = nack, redeliver soon;
    /// at most 600), in requests of at most [`MAX_ACK_IDS_PER_REQUEST`] ids.
    pub async fn modify_ack_deadline(
        &self,
        subscription: &str,
        ack_ids: &[String],
        seconds: u32,
    ) -> Result<()> {
        if seconds > MAX_ACK_DEADLINE_SECS {
            return Err(Error::InvalidConfig(format!(
                "ack deadline of {seconds} s is above the maximum of {MAX_ACK_DEADLINE_SECS} s"
            )));
        }
        let name = self.subscription_name(subscription)?;
        let path = format!("{name}:modifyAckDeadline");
        for chunk in ack_ids.chunks(MAX_ACK_IDS_PER_REQUEST) {
            let body = json(&ModifyAckDeadlineRequest { ack_ids: chunk, ack_deadline_seconds: seconds })?;
            self.call_with_retry(Method::POST, &path, Some(body)).await?;
        }
        Ok(())
    }
}
