//! Batching of acks, nacks and lease extensions, flushed on an interval and at shutdown.

use std::sync::Arc;

use tokio::sync::watch;

use super::Inner;
use super::stats::add;
use crate::completion::Completion;
use crate::error::{Error, Result};
use crate::limits::MAX_ACK_IDS_PER_REQUEST;

/// Ack ids waiting to be sent.
#[derive(Debug)]
pub(crate) struct AckQueue {
    acks: Vec<String>,
    ack_done: Arc<Completion<()>>,
    nacks: Vec<String>,
    nack_done: Arc<Completion<()>>,
    extends: Vec<(u32, Vec<String>)>,
    closed: bool,
}

impl Default for AckQueue {
    fn default() -> Self {
        AckQueue {
            acks: Vec::new(),
            ack_done: Completion::new(),
            nacks: Vec::new(),
            nack_done: Completion::new(),
            extends: Vec::new(),
            closed: false,
        }
    }
}

/// What one flush sends.
struct Flush {
    acks: Vec<String>,
    ack_done: Arc<Completion<()>>,
    nacks: Vec<String>,
    nack_done: Arc<Completion<()>>,
    extends: Vec<(u32, Vec<String>)>,
}

impl AckQueue {
    /// Queues an ack (or nack); returns its completion and whether a request is full.
    pub(crate) fn push(&mut self, ack: bool, ack_id: String) -> Result<(Arc<Completion<()>>, bool)> {
        if self.closed {
            return Err(Error::ShutDown("subscriber"));
        }
        let (ids, done) =
            if ack { (&mut self.acks, &self.ack_done) } else { (&mut self.nacks, &self.nack_done) };
        ids.push(ack_id);
        Ok((done.clone(), ids.len() >= MAX_ACK_IDS_PER_REQUEST))
    }

    /// Queues lease extensions (dropped once closed: the leases are being given back).
    pub(crate) fn extend(&mut self, secs: u32, ids: Vec<String>) {
        if !self.closed && !ids.is_empty() {
            self.extends.push((secs, ids));
        }
    }

    fn take(&mut self) -> Flush {
        Flush {
            acks: std::mem::take(&mut self.acks),
            ack_done: std::mem::replace(&mut self.ack_done, Completion::new()),
            nacks: std::mem::take(&mut self.nacks),
            nack_done: std::mem::replace(&mut self.nack_done, Completion::new()),
            extends: std::mem::take(&mut self.extends),
        }
    }
}

/// Sends queued acks every `ack_flush_interval`, or at once when a request is full; on stop,
/// closes the queue and sends what is left.
pub(crate) async fn run(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(inner.config.ack_flush_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = inner.ack_wake.notified() => false,
            _ = stop.wait_for(|s| *s) => true,
        };
        if stopping {
            let last = {
                let mut q = inner.lock_acks();
                q.closed = true;
                q.take()
            };
            send(&inner, last).await;
            return;
        }
        let batch = inner.lock_acks().take();
        send(&inner, batch).await;
    }
}

async fn send(inner: &Inner, mut f: Flush) {
    // An ack or nack ends a lease: an extension of the same message sent alongside could
    // otherwise land after the nack and delay its redelivery.
    let settling = !f.acks.is_empty() || !f.nacks.is_empty();
    if settling && !f.extends.is_empty() {
        let settled: std::collections::HashSet<&str> =
            f.acks.iter().chain(&f.nacks).map(String::as_str).collect();
        for (_, ids) in &mut f.extends {
            ids.retain(|id| !settled.contains(id.as_str()));
        }
        f.extends.retain(|(_, ids)| !ids.is_empty());
    }
    let client = &inner.client;
    let name = &inner.name;
    let counters = &inner.counters;
    let acks = async {
        let r = if f.acks.is_empty() { Ok(()) } else { client.acknowledge_ids(name, &f.acks).await };
        if let Err(e) = &r {
            add(&counters.ack_failures, f.acks.len());
            tracing::warn!(subscription = %name, acks = f.acks.len(), error = %e, "acknowledge failed; the messages will be redelivered");
        }
        f.ack_done.complete(r);
    };
    let nacks = async {
        let r =
            if f.nacks.is_empty() { Ok(()) } else { client.modify_ack_deadline_ids(name, &f.nacks, 0).await };
        if let Err(e) = &r {
            add(&counters.modack_failures, f.nacks.len());
            tracing::warn!(subscription = %name, nacks = f.nacks.len(), error = %e, "nack failed; the messages will be redelivered when their lease expires");
        }
        f.nack_done.complete(r);
    };
    let extends = futures::future::join_all(f.extends.iter().map(|(secs, ids)| async move {
        if let Err(e) = client.modify_ack_deadline_ids(name, ids, *secs).await {
            add(&counters.modack_failures, ids.len());
            tracing::warn!(subscription = %name, messages = ids.len(), error = %e, "lease extension failed");
        }
    }));
    tokio::join!(acks, nacks, extends);
}
