//! The subscriber: pulls in flight, flow control, lease management, batched acks.
//!
//! Background tasks per subscriber: `pull_concurrency` pull loops ([`puller`]), one lease task
//! ([`lease`]) and one ack sender ([`acker`]). Pull loops take one flow-control permit per
//! message they ask for, so received-but-unsettled messages never exceed
//! `max_outstanding_messages`; received messages wait in a buffer for [`Subscriber::next`].
//! Every received message gets a lease that is extended before it runs out, with a deadline
//! that follows the 99th percentile of observed processing times, until it is acked, nacked,
//! or held for `max_lease_extension`.

mod acker;
mod config;
mod delivery;
mod lease;
mod puller;
mod stats;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use config::SubscriberConfig;
pub use delivery::{AckHandle, Delivery};
pub use stats::SubscriberStats;

use acker::AckQueue;
use delivery::Settle;
use lease::{AckLatencies, Leases};
use stats::Counters;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::names::SubscriptionName;
use crate::pull::ReceivedMessage;
use crate::retry::RetryPolicy;

/// Receives messages from one subscription.
///
/// ```no_run
/// # async fn run() -> pubsub_client::Result<()> {
/// use std::time::Duration;
/// use pubsub_client::Client;
///
/// let client = Client::builder().with_project("my-project").build().await?;
/// let mut subscriber = client.subscriber("events-play-export")?;
/// while let Some(delivery) = subscriber.next().await {
///     let delivery = delivery?;
///     println!("got {} bytes", delivery.data().len());
///     delivery.ack();
/// #   break;
/// }
/// subscriber.shutdown(Duration::from_secs(10)).await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Subscriber {
    inner: Arc<Inner>,
}

/// A cloneable handle to a [`Subscriber`], e.g. to shut it down from a signal handler while
/// another task reads from it.
#[derive(Debug, Clone)]
pub struct SubscriberHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Buffered {
    msg: ReceivedMessage,
    bytes: usize,
    received: Instant,
}

#[derive(Debug)]
pub(crate) struct Inner {
    client: Client,
    name: SubscriptionName,
    config: SubscriberConfig,
    /// One permit per message that may still be received.
    permits: Semaphore,
    byte_room: Notify,
    buffer: Mutex<VecDeque<Buffered>>,
    buffered: Notify,
    leases: Mutex<Leases>,
    latencies: Mutex<AckLatencies>,
    acks: Mutex<AckQueue>,
    ack_wake: Notify,
    /// Bytes that pulls in flight expect to receive (their share of the byte limit).
    reserved_bytes: AtomicUsize,
    /// Deliveries handed to the caller and not yet settled.
    handed_out: AtomicUsize,
    settled: Notify,
    /// No more deliveries are handed out.
    closed: AtomicBool,
    finished: AtomicBool,
    fatal: Mutex<Option<Error>>,
    stop_pulling: watch::Sender<bool>,
    abort_pulls: watch::Sender<bool>,
    stop_all: watch::Sender<bool>,
    pull_tasks: Mutex<Vec<JoinHandle<()>>>,
    background: Mutex<Vec<JoinHandle<()>>>,
    shutdown_lock: tokio::sync::Mutex<()>,
    counters: Counters,
    backoff: RetryPolicy,
    runtime: Handle,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Client {
    /// A subscriber with the default [`SubscriberConfig`]; it starts pulling at once.
    pub fn subscriber(&self, subscription: &str) -> Result<Subscriber> {
        self.subscriber_with_config(subscription, SubscriberConfig::default())
    }

    /// A subscriber; it starts pulling at once. Must be called inside a tokio runtime.
    pub fn subscriber_with_config(&self, subscription: &str, config: SubscriberConfig) -> Result<Subscriber> {
        Subscriber::start(self.clone(), self.subscription_name(subscription)?, config)
    }
}

impl Subscriber {
    fn start(client: Client, name: SubscriptionName, config: SubscriberConfig) -> Result<Self> {
        config.validate()?;
        let runtime = Handle::try_current().map_err(|_| {
            Error::InvalidConfig("a subscriber must be created inside a tokio runtime".into())
        })?;
        let (stop_pulling, _) = watch::channel(false);
        let (abort_pulls, _) = watch::channel(false);
        let (stop_all, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            client,
            name,
            permits: Semaphore::new(config.max_outstanding_messages),
            byte_room: Notify::new(),
            buffer: Mutex::new(VecDeque::new()),
            buffered: Notify::new(),
            leases: Mutex::new(Leases::default()),
            latencies: Mutex::new(AckLatencies::default()),
            acks: Mutex::new(AckQueue::default()),
            ack_wake: Notify::new(),
            reserved_bytes: AtomicUsize::new(0),
            handed_out: AtomicUsize::new(0),
            settled: Notify::new(),
            closed: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            fatal: Mutex::new(None),
            stop_pulling,
            abort_pulls,
            stop_all,
            pull_tasks: Mutex::new(Vec::new()),
            background: Mutex::new(Vec::new()),
            shutdown_lock: tokio::sync::Mutex::new(()),
            counters: Counters::default(),
            backoff: RetryPolicy::default()
                .with_initial_backoff(Duration::from_millis(100))
                .with_max_backoff(Duration::from_secs(10)),
            runtime,
            config,
        });
        let pulls = (0..inner.config.pull_concurrency)
            .map(|_| {
                let (stop, abort) = (inner.stop_pulling.subscribe(), inner.abort_pulls.subscribe());
                inner.runtime.spawn(puller::run(inner.clone(), stop, abort))
            })
            .collect();
        *lock(&inner.pull_tasks) = pulls;
        *lock(&inner.background) = vec![
            inner.runtime.spawn(lease::run(inner.clone(), inner.stop_all.subscribe())),
            inner.runtime.spawn(acker::run(inner.clone(), inner.stop_all.subscribe())),
        ];
        Ok(Subscriber { inner })
    }

    /// The next message; `None` once the subscriber is shut down. A permanent pull failure
    /// (e.g. the subscription does not exist) is returned once as `Err`, then the stream ends;
    /// transient ones are retried with backoff.
    pub async fn next(&mut self) -> Option<Result<Delivery>> {
        let inner = &self.inner;
        loop {
            if let Some(e) = lock(&inner.fatal).take() {
                return Some(Err(e));
            }
            let item = lock(&inner.buffer).pop_front();
            if let Some(b) = item {
                inner.handed_out.fetch_add(1, Ordering::AcqRel);
                return Some(Ok(Delivery::new(b.msg, b.bytes, b.received, inner.clone())));
            }
            if inner.closed.load(Ordering::Acquire) {
                return None;
            }
            inner.buffered.notified().await;
        }
    }

    /// The subscriber as a `Stream` of deliveries.
    pub fn into_stream(self) -> impl futures::Stream<Item = Result<Delivery>> {
        futures::stream::unfold(self, |mut s| async move { s.next().await.map(|d| (d, s)) })
    }

    /// A cloneable handle for shutting down and reading statistics.
    pub fn handle(&self) -> SubscriberHandle {
        SubscriberHandle { inner: self.inner.clone() }
    }

    /// The subscription this subscriber reads.
    pub fn subscription(&self) -> &SubscriptionName {
        &self.inner.name
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> SubscriberStats {
        self.inner.stats()
    }

    /// Shuts down gracefully; see [`SubscriberHandle::shutdown`].
    pub async fn shutdown(self, grace: Duration) -> SubscriberStats {
        self.inner.shutdown(grace).await;
        self.inner.stats()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        if !self.inner.finished.load(Ordering::Acquire) {
            let inner = self.inner.clone();
            self.inner.runtime.spawn(async move { inner.shutdown(Duration::ZERO).await });
        }
    }
}

impl SubscriberHandle {
    /// Shuts the subscriber down: starts no new pull and lets pulls in flight finish within
    /// `grace` (giving them up after it), nacks messages not yet handed out, waits until
    /// `grace` has passed for handed-out ones to be acked or nacked, nacks the rest, sends every
    /// queued ack, and stops the background tasks. [`Subscriber::next`] returns `None` afterwards; acks
    /// of deliveries that were nacked here resolve to [`Error::ShutDown`]. Calling it again
    /// waits for the first call to finish.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.shutdown(grace).await;
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> SubscriberStats {
        self.inner.stats()
    }
}

impl Inner {
    pub(crate) fn lock_acks(&self) -> MutexGuard<'_, AckQueue> {
        lock(&self.acks)
    }

    pub(crate) fn lock_leases(&self) -> MutexGuard<'_, Leases> {
        lock(&self.leases)
    }

    /// The ack deadline to ask for now.
    pub(crate) fn ack_deadline(&self) -> Duration {
        lock(&self.latencies).deadline(self.config.min_ack_deadline, self.config.max_ack_deadline)
    }

    fn stats(&self) -> SubscriberStats {
        self.counters.snapshot(self.ack_deadline())
    }

    pub(crate) fn retry_backoff(&self, failures: u32) -> Duration {
        self.backoff.backoff(failures)
    }

    /// Bytes of room left under the byte limit, counting what pulls in flight expect.
    pub(crate) fn byte_room(&self) -> usize {
        self.config.max_outstanding_bytes.saturating_sub(
            self.counters.outstanding_bytes.load(Ordering::Acquire)
                + self.reserved_bytes.load(Ordering::Acquire),
        )
    }

    /// Resolves once there is room under the byte limit.
    pub(crate) async fn wait_for_byte_room(&self) {
        loop {
            let notified = self.byte_room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.byte_room() > 0 {
                return;
            }
            notified.await;
        }
    }

    /// Sets aside `bytes` of the byte limit for a pull about to be sent.
    pub(crate) fn reserve_bytes(&self, bytes: usize) {
        self.reserved_bytes.fetch_add(bytes, Ordering::AcqRel);
    }

    /// Returns a pull's reservation once its answer is counted (or it failed).
    pub(crate) fn unreserve_bytes(&self, bytes: usize) {
        self.reserved_bytes.fetch_sub(bytes, Ordering::AcqRel);
        self.byte_room.notify_waiters();
    }

    /// Takes over freshly pulled messages: leases, a receipt extension, the buffer.
    pub(crate) fn receive(&self, msgs: Vec<ReceivedMessage>) {
        if msgs.is_empty() {
            return;
        }
        let now = Instant::now();
        let deadline = self.ack_deadline();
        let ids: Vec<String> = msgs.iter().map(|m| m.ack_id.clone()).collect();
        {
            let mut leases = self.lock_leases();
            for id in &ids {
                leases.insert(id.clone(), now, deadline);
            }
        }
        let secs = u32::try_from(deadline.as_secs()).unwrap_or(600);
        self.lock_acks().extend(secs, ids);
        // Count them as outstanding before anyone can take (and settle) them.
        let sizes: Vec<usize> = msgs.iter().map(ReceivedMessage::size).collect();
        self.counters.admit(msgs.len(), sizes.iter().sum());
        {
            let mut buf = lock(&self.buffer);
            for (msg, bytes) in msgs.into_iter().zip(sizes) {
                buf.push_back(Buffered { msg, bytes, received: now });
            }
        }
        self.buffered.notify_one();
    }

    /// Records a permanent failure and stops pulling.
    pub(crate) fn fail(&self, e: Error) {
        *lock(&self.fatal) = Some(e);
        self.closed.store(true, Ordering::Release);
        self.stop_pulling.send_replace(true);
        self.buffered.notify_one();
    }

    /// Gives a message's flow-control room back.
    fn release(&self, bytes: usize) {
        self.counters.release(1, bytes);
        self.permits.add_permits(1);
        self.byte_room.notify_waiters();
    }

    /// Acks or nacks a handed-out delivery.
    pub(crate) fn settle(&self, ack_id: String, bytes: usize, received: Instant, how: Settle) -> AckHandle {
        self.lock_leases().remove(&ack_id);
        self.release(bytes);
        match how {
            Settle::Ack => {
                lock(&self.latencies).record(received.elapsed());
                stats::add(&self.counters.acked, 1);
            }
            Settle::Nack => stats::add(&self.counters.nacked, 1),
        }
        let handle = match self.lock_acks().push(how == Settle::Ack, ack_id) {
            Ok((done, full)) => {
                if full {
                    self.ack_wake.notify_one();
                }
                AckHandle::new(done)
            }
            Err(e) => AckHandle::ready(Err(e)),
        };
        self.handed_out.fetch_sub(1, Ordering::AcqRel);
        self.settled.notify_waiters();
        handle
    }

    async fn shutdown(&self, grace: Duration) {
        let _one_at_a_time = self.shutdown_lock.lock().await;
        if self.finished.load(Ordering::Acquire) {
            return;
        }
        let end = Instant::now() + grace;
        self.closed.store(true, Ordering::Release);
        self.stop_pulling.send_replace(true);
        self.buffered.notify_one();
        // Pulls in flight may already have been answered: let them finish within the grace
        // period (their messages are nacked below), and only then give them up.
        let mut pulls = std::mem::take(&mut *lock(&self.pull_tasks));
        let all_done = async {
            while let Some(h) = pulls.last_mut() {
                let _ = h.await;
                pulls.pop();
            }
        };
        if tokio::time::timeout_at(end, all_done).await.is_err() {
            self.abort_pulls.send_replace(true);
            for h in pulls {
                let _ = h.await;
            }
        }
        // Messages never handed out go back at once.
        let buffered: Vec<Buffered> = lock(&self.buffer).drain(..).collect();
        for b in buffered {
            self.lock_leases().remove(&b.msg.ack_id);
            self.release(b.bytes);
            stats::add(&self.counters.nacked, 1);
            let _ = self.lock_acks().push(false, b.msg.ack_id);
        }
        // Handed-out messages get the grace period.
        loop {
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if self.handed_out.load(Ordering::Acquire) == 0 {
                break;
            }
            if tokio::time::timeout_at(end, settled).await.is_err() {
                break;
            }
        }
        let unsettled = self.lock_leases().drain_ids();
        if !unsettled.is_empty() {
            tracing::info!(subscription = %self.name, messages = unsettled.len(), "nacking messages still in processing at shutdown");
        }
        {
            let mut q = self.lock_acks();
            for id in unsettled {
                let _ = q.push(false, id);
            }
        }
        self.stop_all.send_replace(true);
        let background = std::mem::take(&mut *lock(&self.background));
        for h in background {
            let _ = h.await;
        }
        self.finished.store(true, Ordering::Release);
        tracing::debug!(subscription = %self.name, "subscriber shut down");
    }
}
