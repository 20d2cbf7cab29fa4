//! The publisher: batching, flow control, compression, retries and ordering keys.
//!
//! Life of a message: [`Publisher::publish`] validates it and computes its encoded size, waits
//! for (or is refused by) flow control, then encodes it straight into the body of the batch of
//! its lane (unordered, or its ordering key). A batch is sealed when the next message would
//! break the count or byte limit, or when its delay expires, and is then sent by a task of its
//! own that holds one of `max_in_flight_requests` permits and retries per the
//! [`RetryPolicy`](crate::RetryPolicy). Unordered batches go out concurrently; batches of one
//! ordering key go one at a time, in order, and a final failure pauses the key. Flow-control
//! permits are returned when a batch completes, so memory is bounded by configuration.

mod batch;
mod config;
mod flow;
mod outcome;
mod send;
mod stats;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::runtime::Handle;
use tokio::sync::Semaphore;

pub use config::{LimitExceededBehavior, PublisherConfig};
pub use outcome::PublishHandle;
pub use stats::PublisherStats;

use batch::{Batch, KeyLane};
use flow::FlowController;
use outcome::BatchOutcome;
use stats::Counters;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::message::Message;
use crate::names::TopicName;
use crate::wire::{ENVELOPE_LEN, encoded_len};

/// Publishes messages to one topic. Cheap to clone; clones share batches and limits.
///
/// ```no_run
/// # async fn run() -> pubsub_client::Result<()> {
/// use pubsub_client::{Client, Message};
///
/// let client = Client::builder().with_project("my-project").build().await?;
/// let publisher = client.publisher("events-play")?;
/// let handle = publisher.publish(&Message::new("hello")).await?;
/// let id = handle.await?;
/// publisher.shutdown().await;
/// # let _ = id; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    client: Client,
    topic: TopicName,
    publish_path: String,
    config: PublisherConfig,
    flow: FlowController,
    state: Mutex<State>,
    in_flight: Semaphore,
    counters: Counters,
    runtime: Handle,
}

#[derive(Debug, Default)]
struct State {
    unordered: Option<Batch>,
    keyed: HashMap<String, KeyLane>,
    /// Every batch created and not yet completed, for `flush`.
    pending: HashMap<u64, Arc<BatchOutcome>>,
    next_id: u64,
    closed: bool,
}

/// Batches sealed while a message was appended (at most two: the full one it did not fit in,
/// and its own when it filled it).
type Sealed = [Option<Batch>; 2];

impl Publisher {
    pub(crate) fn new(client: Client, topic: TopicName, config: PublisherConfig) -> Result<Self> {
        config.validate()?;
        let runtime = Handle::try_current()
            .map_err(|_| Error::InvalidConfig("a publisher must be created inside a tokio runtime".into()))?;
        let flow = FlowController::new(
            config.max_outstanding_messages,
            config.max_outstanding_bytes,
            config.limit_exceeded,
        );
        let inner = Inner {
            publish_path: format!("{topic}:publish"),
            client,
            topic,
            flow,
            state: Mutex::new(State::default()),
            in_flight: Semaphore::new(config.max_in_flight_requests),
            counters: Counters::default(),
            runtime,
            config,
        };
        Ok(Publisher { inner: Arc::new(inner) })
    }

    /// The topic this publisher sends to.
    pub fn topic(&self) -> &TopicName {
        &self.inner.topic
    }

    /// The publisher's settings.
    pub fn config(&self) -> &PublisherConfig {
        &self.inner.config
    }

    /// Queues a message for publishing.
    ///
    /// The message is validated first ([`Error::InvalidMessage`] names what is wrong; nothing is
    /// queued then). If flow control is full this waits for room, or fails with
    /// [`Error::FlowControlFull`] when configured to fail fast. Once this returns `Ok` the
    /// message is accepted: it will be sent, and the returned handle resolves to its message
    /// id or to the final error.
    pub async fn publish(&self, msg: &Message) -> Result<PublishHandle> {
        let len = self.inner.prepare(msg)?;
        self.inner.flow.acquire(len).await?;
        self.inner.enqueue(msg, len)
    }

    /// Like [`publish`](Self::publish) but never waits: fails with
    /// [`Error::FlowControlFull`] when there is no room, whatever the configured behaviour.
    pub fn try_publish(&self, msg: &Message) -> Result<PublishHandle> {
        let len = self.inner.prepare(msg)?;
        self.inner.flow.try_acquire(len)?;
        self.inner.enqueue(msg, len)
    }

    /// Sends every batch now and waits until all messages accepted before the call are
    /// confirmed or failed. Errors are reported through the handles and [`stats`](Self::stats).
    pub async fn flush(&self) {
        let (ready, waits) = {
            let mut st = self.inner.lock();
            let mut ready: Vec<Batch> = st.unordered.take().into_iter().collect();
            for lane in st.keyed.values_mut() {
                if let Some(b) = lane.current.take() {
                    ready.extend(lane.seal(b));
                }
            }
            (ready, st.pending.values().cloned().collect::<Vec<_>>())
        };
        for b in ready {
            self.inner.dispatch(b);
        }
        for w in waits {
            w.done().await;
        }
    }

    /// Stops accepting messages ([`Error::ShutDown`] from then on), sends everything queued and
    /// waits for it. Retries still follow the retry policy, so this ends within its deadline.
    pub async fn shutdown(&self) {
        self.inner.lock().closed = true;
        self.flush().await;
        tracing::debug!(topic = %self.inner.topic, "publisher shut down");
    }

    /// Lets an ordering key that was paused by a failed publish take messages again.
    pub fn resume_publish(&self, ordering_key: &str) {
        let mut st = self.inner.lock();
        if let Some(lane) = st.keyed.get_mut(ordering_key) {
            lane.paused = false;
            if lane.is_idle() {
                st.keyed.remove(ordering_key);
            }
        }
    }

    /// A snapshot of the publisher's counters.
    pub fn stats(&self) -> PublisherStats {
        self.inner.counters.snapshot(self.inner.flow.outstanding(), self.inner.flow.waits())
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Validates a message and returns its encoded length.
    fn prepare(&self, msg: &Message) -> Result<usize> {
        msg.validate()?;
        let len = encoded_len(msg);
        if len + ENVELOPE_LEN > self.config.max_bytes {
            return Err(Error::InvalidMessage(format!(
                "message encodes to {len} bytes of JSON; in a request that is {} bytes, above the \
                 publisher's max_bytes of {} (the API allows at most {} per request)",
                len + ENVELOPE_LEN,
                self.config.max_bytes,
                crate::limits::MAX_PUBLISH_REQUEST_BYTES
            )));
        }
        Ok(len)
    }

    /// Appends an admitted message to its lane's batch. On refusal, gives its permits back.
    fn enqueue(self: &Arc<Self>, msg: &Message, len: usize) -> Result<PublishHandle> {
        let key = msg.ordering_key();
        let mut ready: Vec<Batch> = Vec::new();
        let (handle, timer) = {
            let mut guard = self.lock();
            let State { unordered, keyed, pending, next_id, closed } = &mut *guard;
            let refused = if *closed {
                Some(Error::ShutDown("publisher"))
            } else if !key.is_empty() && keyed.get(key).is_some_and(|l| l.paused) {
                Some(Error::OrderingKeyPaused { key: key.to_owned() })
            } else {
                None
            };
            if let Some(err) = refused {
                drop(guard);
                self.flow.release(1, len);
                return Err(err);
            }
            if key.is_empty() {
                let (handle, sealed, timer) = self.append(unordered, msg, len, next_id, pending);
                ready.extend(sealed.into_iter().flatten());
                (handle, timer)
            } else {
                if !keyed.contains_key(key) {
                    keyed.insert(key.to_owned(), KeyLane::default());
                }
                let Some(lane) = keyed.get_mut(key) else { unreachable!("lane inserted above") };
                let (handle, sealed, timer) = self.append(&mut lane.current, msg, len, next_id, pending);
                for b in sealed.into_iter().flatten() {
                    ready.extend(lane.seal(b));
                }
                (handle, timer)
            }
        };
        for b in ready {
            self.dispatch(b);
        }
        if let Some(id) = timer {
            self.arm_timer(key.to_owned(), id);
        }
        Ok(handle)
    }

    /// Encodes `msg` into the lane's current batch, sealing batches as the limits require.
    /// Returns the handle, the sealed batches and the id of a new batch that needs a timer.
    fn append(
        &self,
        current: &mut Option<Batch>,
        msg: &Message,
        len: usize,
        next_id: &mut u64,
        pending: &mut HashMap<u64, Arc<BatchOutcome>>,
    ) -> (PublishHandle, Sealed, Option<u64>) {
        let cfg = &self.config;
        let mut sealed: Sealed = [None, None];
        if current
            .as_ref()
            .is_some_and(|b| b.count() >= cfg.max_messages || b.body.len_with(len) > cfg.max_bytes)
        {
            sealed[0] = current.take();
        }
        let mut new_id = None;
        let batch = match current {
            Some(b) => b,
            None => {
                let id = *next_id;
                *next_id += 1;
                let capacity =
                    len.saturating_mul(cfg.max_messages).saturating_add(ENVELOPE_LEN).min(cfg.max_bytes);
                let b = Batch::new(id, msg.ordering_key().to_owned(), capacity);
                pending.insert(id, b.outcome.clone());
                new_id = Some(id);
                current.insert(b)
            }
        };
        let index = batch.count();
        batch.push(msg, len);
        let handle = PublishHandle::new(batch.outcome.clone(), index);
        if batch.count() >= cfg.max_messages || cfg.delay.is_zero() {
            sealed[1] = current.take();
            new_id = None;
        }
        (handle, sealed, new_id)
    }

    /// Seals the batch `id` of lane `key` when its delay expires, if it is still filling.
    fn arm_timer(self: &Arc<Self>, key: String, id: u64) {
        let inner = Arc::clone(self);
        let delay = self.config.delay;
        self.runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            let ready = {
                let mut guard = inner.lock();
                let st = &mut *guard;
                if key.is_empty() {
                    if st.unordered.as_ref().is_some_and(|b| b.id == id) { st.unordered.take() } else { None }
                } else {
                    st.keyed.get_mut(&key).and_then(|lane| {
                        if lane.current.as_ref().is_some_and(|b| b.id == id) {
                            lane.current.take().and_then(|b| lane.seal(b))
                        } else {
                            None
                        }
                    })
                }
            };
            if let Some(b) = ready {
                inner.dispatch(b);
            }
        });
    }

    fn dispatch(self: &Arc<Self>, batch: Batch) {
        self.runtime.spawn(send::send_batch(Arc::clone(self), batch));
    }

    /// Records the end of a batch: wakes its handles, returns its permits, and moves its
    /// ordering key on (next batch) or pauses it (failure).
    fn finish_batch(self: &Arc<Self>, batch: Batch, result: Result<Arc<outcome::MessageIds>>) {
        let ok = result.is_ok();
        // Permits first, so the room is there by the time a handle resolves.
        self.flow.release(batch.count(), batch.flow_bytes);
        batch.outcome.complete(result);
        let mut next = None;
        let mut cancelled = Vec::new();
        {
            let mut guard = self.lock();
            let st = &mut *guard;
            st.pending.remove(&batch.id);
            if !batch.key.is_empty()
                && let Some(lane) = st.keyed.get_mut(&batch.key)
            {
                if ok {
                    next = lane.queued.pop_front();
                    lane.in_flight = next.is_some();
                } else {
                    lane.paused = true;
                    lane.in_flight = false;
                    cancelled.extend(lane.queued.drain(..));
                    cancelled.extend(lane.current.take());
                    for b in &cancelled {
                        st.pending.remove(&b.id);
                    }
                }
                if lane.is_idle() {
                    st.keyed.remove(&batch.key);
                }
            }
        }
        if let Some(b) = next {
            self.dispatch(b);
        }
        for b in cancelled {
            stats::add(&self.counters.messages_failed, b.count());
            stats::add(&self.counters.batches_failed, 1u64);
            self.flow.release(b.count(), b.flow_bytes);
            b.outcome.complete(Err(Error::OrderingKeyPaused { key: b.key.clone() }));
        }
    }
}
