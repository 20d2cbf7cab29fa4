//! A message handed to the caller, and the handle of its ack or nack.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::time::Instant;

use super::Inner;
use crate::completion::Completion;
use crate::error::Result;
use crate::pull::ReceivedMessage;

/// Whether a message was processed or should be redelivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settle {
    Ack,
    Nack,
}

/// A received message. Call [`ack`](Self::ack) once it is processed, or
/// [`nack`](Self::nack) to have it redelivered; dropping it without either nacks it.
///
/// Until then its lease is extended in the background (up to the subscriber's
/// `max_lease_extension`) and it counts against flow control.
#[must_use = "ack or nack the delivery; dropping it nacks the message"]
#[derive(Debug)]
pub struct Delivery {
    msg: ReceivedMessage,
    bytes: usize,
    received: Instant,
    inner: Option<Arc<Inner>>,
}

impl Delivery {
    pub(crate) fn new(msg: ReceivedMessage, bytes: usize, received: Instant, inner: Arc<Inner>) -> Self {
        Delivery { msg, bytes, received, inner: Some(inner) }
    }

    /// The message as received.
    pub fn message(&self) -> &ReceivedMessage {
        &self.msg
    }

    /// The payload.
    pub fn data(&self) -> &[u8] {
        &self.msg.data
    }

    /// The attributes.
    pub fn attributes(&self) -> &HashMap<String, String> {
        &self.msg.attributes
    }

    /// The id the service assigned at publish time.
    pub fn message_id(&self) -> &str {
        &self.msg.message_id
    }

    /// The ordering key, empty if none.
    pub fn ordering_key(&self) -> &str {
        &self.msg.ordering_key
    }

    /// The id of this delivery.
    pub fn ack_id(&self) -> &str {
        &self.msg.ack_id
    }

    /// Confirms the message was processed. The returned handle resolves when the service
    /// confirmed the acknowledgement, or to the error if it finally failed (the message will
    /// then be redelivered); it may be dropped if the caller does not care.
    pub fn ack(mut self) -> AckHandle {
        self.settle(Settle::Ack)
    }

    /// Asks for the message to be redelivered soon (ack deadline 0).
    pub fn nack(mut self) -> AckHandle {
        self.settle(Settle::Nack)
    }

    fn settle(&mut self, how: Settle) -> AckHandle {
        match self.inner.take() {
            Some(inner) => {
                let ack_id = std::mem::take(&mut self.msg.ack_id);
                inner.settle(ack_id, self.bytes, self.received, how)
            }
            None => AckHandle::ready(Ok(())),
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if self.inner.is_some() {
            drop(self.settle(Settle::Nack));
        }
    }
}

/// Resolves when the acknowledge (or nack) request carrying a delivery is confirmed or
/// finally failed.
#[must_use = "an AckHandle resolves to whether the service confirmed the ack"]
#[derive(Debug)]
pub struct AckHandle {
    done: Arc<Completion<()>>,
    slot: Option<usize>,
}

impl AckHandle {
    pub(crate) fn new(done: Arc<Completion<()>>) -> Self {
        AckHandle { done, slot: None }
    }

    pub(crate) fn ready(result: Result<()>) -> Self {
        let done = Completion::new();
        done.complete(result);
        AckHandle::new(done)
    }
}

impl Future for AckHandle {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.done.poll_with(&mut this.slot, cx)
    }
}
