//! Batches and the lanes that order them.

use std::collections::VecDeque;
use std::sync::Arc;

use super::outcome::BatchOutcome;
use crate::wire::PublishBody;

/// Messages collected for one publish request.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) id: u64,
    pub(crate) body: PublishBody,
    /// Messages in the batch (kept apart from the body, which is taken when sending).
    pub(crate) messages: usize,
    /// Encoded bytes of its messages, as counted by flow control.
    pub(crate) flow_bytes: usize,
    pub(crate) outcome: Arc<BatchOutcome>,
    /// The ordering key all its messages share; empty for unordered messages.
    pub(crate) key: String,
}

impl Batch {
    pub(crate) fn new(id: u64, key: String, capacity: usize) -> Self {
        Batch {
            id,
            body: PublishBody::with_capacity(capacity),
            messages: 0,
            flow_bytes: 0,
            outcome: BatchOutcome::new(),
            key,
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.messages
    }

    /// Encodes a message into the batch.
    pub(crate) fn push(&mut self, msg: &crate::message::Message, encoded_len: usize) {
        self.body.push(msg);
        self.messages += 1;
        self.flow_bytes += encoded_len;
    }
}

/// Batches of one ordering key: at most one in flight, the rest wait their turn.
#[derive(Debug, Default)]
pub(crate) struct KeyLane {
    /// The batch being filled.
    pub(crate) current: Option<Batch>,
    /// Sealed batches waiting for the one in flight.
    pub(crate) queued: VecDeque<Batch>,
    /// Whether a batch of this key is being sent.
    pub(crate) in_flight: bool,
    /// Set when a batch of this key finally failed; cleared by `resume_publish`.
    pub(crate) paused: bool,
}

impl KeyLane {
    /// Hands a sealed batch to the lane; returns it if it may be sent now.
    pub(crate) fn seal(&mut self, batch: Batch) -> Option<Batch> {
        if self.in_flight {
            self.queued.push_back(batch);
            None
        } else {
            self.in_flight = true;
            Some(batch)
        }
    }

    /// Whether the lane holds nothing and may be forgotten.
    pub(crate) fn is_idle(&self) -> bool {
        self.current.is_none() && self.queued.is_empty() && !self.in_flight && !self.paused
    }
}
