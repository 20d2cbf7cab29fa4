//! The result of one batch, shared by the handles of all its messages.
//!
//! Handles hold the batch's completion and their index in it; a message id becomes a `String`
//! only when its handle is awaited.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use serde::Deserialize;

use crate::completion::Completion;
use crate::error::{Error, Result};

/// Message ids of a published batch, as spans of the response body.
#[derive(Debug)]
pub(crate) struct MessageIds {
    body: Bytes,
    spans: Vec<(u32, u32)>,
}

#[derive(Deserialize)]
struct PublishResponse<'a> {
    #[serde(borrow, rename = "messageIds", default)]
    message_ids: Vec<std::borrow::Cow<'a, str>>,
}

impl MessageIds {
    /// Parses a publish response, expecting exactly `expected` ids.
    pub(crate) fn parse(body: Bytes, expected: usize) -> Result<Self> {
        let resp: PublishResponse<'_> = serde_json::from_slice(&body)
            .map_err(|e| Error::Protocol(format!("cannot decode publish response: {e}")))?;
        if resp.message_ids.len() != expected {
            return Err(Error::Protocol(format!(
                "publish response has {} message ids for {expected} messages",
                resp.message_ids.len()
            )));
        }
        let base = body.as_ptr() as usize;
        let all_borrowed = resp.message_ids.iter().all(|id| matches!(id, std::borrow::Cow::Borrowed(_)));
        if all_borrowed {
            let spans = resp
                .message_ids
                .iter()
                .map(|id| {
                    let start = id.as_ptr() as usize - base;
                    (start as u32, (start + id.len()) as u32)
                })
                .collect();
            return Ok(MessageIds { body, spans });
        }
        let mut joined = Vec::new();
        let mut spans = Vec::with_capacity(expected);
        for id in &resp.message_ids {
            let start = joined.len() as u32;
            joined.extend_from_slice(id.as_bytes());
            spans.push((start, joined.len() as u32));
        }
        Ok(MessageIds { body: Bytes::from(joined), spans })
    }

    fn get(&self, index: usize) -> String {
        let (s, e) = self.spans[index];
        String::from_utf8_lossy(&self.body[s as usize..e as usize]).into_owned()
    }
}

/// Completion of one publish batch.
pub(crate) type BatchOutcome = Completion<Arc<MessageIds>>;

/// A future of the message id assigned by Pub/Sub to one published message.
///
/// Resolves once the batch holding the message was confirmed (`Ok(id)`) or finally failed
/// (`Err`). Dropping the handle does not cancel the publish.
#[must_use = "a PublishHandle resolves to the message id or the publish error"]
#[derive(Debug)]
pub struct PublishHandle {
    outcome: Arc<BatchOutcome>,
    index: usize,
    slot: Option<usize>,
}

impl PublishHandle {
    pub(crate) fn new(outcome: Arc<BatchOutcome>, index: usize) -> Self {
        PublishHandle { outcome, index, slot: None }
    }
}

impl Future for PublishHandle {
    type Output = Result<String>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.outcome.poll_with(&mut this.slot, cx).map(|r| r.map(|ids| ids.get(this.index)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_read_from_pretty_printed_responses() {
        let body = Bytes::from_static(b"{\n  \"messageIds\": [\"11\", \"12\",\"13\"]\n}\n");
        let ids = MessageIds::parse(body, 3).expect("parses");
        assert_eq!((ids.get(0), ids.get(2)), ("11".to_owned(), "13".to_owned()));
    }

    #[test]
    fn escaped_ids_are_supported() {
        let ids =
            MessageIds::parse(Bytes::from_static(br#"{"messageIds":["a\u0041","b"]}"#), 2).expect("parses");
        assert_eq!(ids.get(0), "aA");
        assert_eq!(ids.get(1), "b");
    }

    #[test]
    fn a_wrong_count_is_a_protocol_error() {
        let err = MessageIds::parse(Bytes::from_static(br#"{"messageIds":["1"]}"#), 2).expect_err("mismatch");
        assert!(err.to_string().contains("1 message ids for 2 messages"), "{err}");
        assert!(MessageIds::parse(Bytes::from_static(b"<html>"), 1).is_err());
    }

    #[tokio::test]
    async fn every_handle_sees_the_batch_result() {
        let outcome: Arc<BatchOutcome> = Completion::new();
        let handles: Vec<_> = (0..3).map(|i| PublishHandle::new(outcome.clone(), i)).collect();
        let waiters: Vec<_> = handles.into_iter().map(tokio::spawn).collect();
        let done = tokio::spawn(outcome.clone().done());
        tokio::task::yield_now().await;
        outcome.complete(
            MessageIds::parse(Bytes::from_static(br#"{"messageIds":["a","b","c"]}"#), 3).map(Arc::new),
        );
        let mut got = Vec::new();
        for w in waiters {
            got.push(w.await.expect("join").expect("ok"));
        }
        assert_eq!(got, ["a", "b", "c"]);
        done.await.expect("done resolves");
        // A second completion is ignored.
        outcome.complete(Err(Error::ShutDown("x")));
        assert_eq!(PublishHandle::new(outcome, 1).await.expect("still ok"), "b");
    }
}
