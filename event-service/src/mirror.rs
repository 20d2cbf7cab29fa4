//! The dark-loading mirror: every accepted event is also offered to a second set of publishers
//! (another project or topic prefix), without ever holding up production ingest.
//!
//! [`Mirror::offer`] never waits: it puts the event in the mirror's own bounded queue
//! (`mirror.queue_events` events and `mirror.queue_bytes` bytes of payload and attributes) or,
//! when the queue is full, drops it from the mirror and counts it in
//! `event_service_mirror_dropped_total`. One background task drains the queue into the mirror's
//! publishers (there it may wait for their flow control: a slow or stalled mirror target fills
//! the queue, never the ingest path) and awaits the confirmations, at most
//! `publisher.max_outstanding_messages` at once, counting `event_service_events_mirrored_total`
//! and `event_service_mirror_failures_total`. [`Mirror::shutdown`] drains the queue and flushes
//! the publishers within a deadline.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use pubsub_client::{Message, PublishHandle};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::MirrorConfig;
use crate::metrics::Metrics;
use crate::state::Publishers;

/// One event waiting to be mirrored: its topic, payload and attributes packed into one
/// allocation. A queue of thousands of `Message`s (eight small allocations each) held for as
/// long as the mirror target stalls fragments the allocator's free lists and slows every
/// allocation of the ingest path; one block per event does not (BENCHMARKS.md, "With a
/// stalled dark-loading mirror").
#[derive(Debug)]
struct Queued {
    packed: Box<[u8]>,
    size: usize,
}

impl Queued {
    /// Packs `msg` for `topic`; `size` is what it counts against `mirror.queue_bytes`.
    fn pack(topic: &str, msg: &Message, size: usize) -> Queued {
        let parts = std::iter::once(topic.as_bytes())
            .chain(std::iter::once(msg.data()))
            .chain(msg.attributes().iter().flat_map(|(k, v)| [k.as_bytes(), v.as_bytes()]));
        let len: usize = parts.clone().map(|p| 4 + p.len()).sum();
        let mut packed = Vec::with_capacity(len);
        for p in parts {
            // Pub/Sub limits (10 MB per message, 1024 bytes per attribute) keep each part
            // far below u32::MAX; a longer one could not be published anyway.
            let n = u32::try_from(p.len()).unwrap_or(u32::MAX);
            packed.extend_from_slice(&n.to_le_bytes());
            packed.extend_from_slice(&p[..n as usize]);
        }
        Queued { packed: packed.into_boxed_slice(), size }
    }

    /// The topic and the message again.
    fn unpack(&self) -> (&str, Message) {
        let mut parts = Parts(&self.packed);
        let topic = std::str::from_utf8(parts.next().unwrap_or_default()).unwrap_or_default();
        let mut msg = Message::new(bytes::Bytes::copy_from_slice(parts.next().unwrap_or_default()));
        while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
            msg = msg.with_attribute(String::from_utf8_lossy(k), String::from_utf8_lossy(v));
        }
        (topic, msg)
    }
}

/// The length-prefixed parts of a [`Queued`] block.
struct Parts<'a>(&'a [u8]);

impl<'a> Iterator for Parts<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let (len, rest) = self.0.split_first_chunk::<4>()?;
        let (part, rest) = rest.split_at_checked(u32::from_le_bytes(*len) as usize)?;
        self.0 = rest;
        Some(part)
    }
}

/// Counts shared by [`Mirror`] and its drain task.
#[derive(Debug, Default)]
struct Counts {
    /// Bytes (`Message::size`) of the events in the queue.
    queued_bytes: AtomicUsize,
    /// Events taken into the queue and not yet confirmed or failed.
    pending: AtomicUsize,
}

/// The dark-loading mirror: a bounded queue in front of the mirror's publishers, drained by a
/// background task.
#[derive(Debug)]
pub struct Mirror {
    tx: mpsc::Sender<Queued>,
    max_bytes: usize,
    counts: Arc<Counts>,
    metrics: Arc<Metrics>,
    publishers: Arc<Publishers>,
    stop: watch::Sender<bool>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Mirror {
    /// Starts the drain task; must run inside a tokio runtime. At most `max_unconfirmed`
    /// mirrored events are awaited at once.
    pub(crate) fn new(
        publishers: Publishers,
        config: &MirrorConfig,
        max_unconfirmed: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(config.queue_events.max(1));
        let (stop, stopped) = watch::channel(false);
        let counts = Arc::new(Counts::default());
        let publishers = Arc::new(publishers);
        let worker = tokio::spawn(drain(Drain {
            rx,
            stopped,
            publishers: publishers.clone(),
            counts: counts.clone(),
            metrics: metrics.clone(),
            max_unconfirmed: max_unconfirmed.max(1),
        }));
        Mirror {
            tx,
            max_bytes: config.queue_bytes,
            counts,
            metrics,
            publishers,
            stop,
            worker: Mutex::new(Some(worker)),
        }
    }

    /// Offers an event for mirroring to `topic` (the mirror's prefix is added). Never waits:
    /// returns `false`, and counts the event in `event_service_mirror_dropped_total`, when the
    /// queue is full (by events or bytes) or the mirror was shut down.
    pub fn offer(&self, topic: &str, msg: Message) -> bool {
        // A full queue (the usual state while the mirror target is stalled) drops at once,
        // before anything is sized, counted or allocated.
        if self.tx.capacity() == 0 {
            self.metrics.mirror_dropped.inc();
            return false;
        }
        let size = msg.size();
        let reserved = self
            .counts
            .queued_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                b.checked_add(size).filter(|total| *total <= self.max_bytes)
            })
            .is_ok();
        if !reserved {
            self.metrics.mirror_dropped.inc();
            return false;
        }
        // Counted before the drain task can see the event, so `pending` never goes below zero.
        self.counts.pending.fetch_add(1, Ordering::AcqRel);
        match self.tx.try_send(Queued::pack(topic, &msg, size)) {
            Ok(()) => true,
            Err(_) => {
                self.counts.queued_bytes.fetch_sub(size, Ordering::AcqRel);
                self.counts.pending.fetch_sub(1, Ordering::AcqRel);
                self.metrics.mirror_dropped.inc();
                false
            }
        }
    }

    /// Events waiting in the queue (not yet handed to a publisher).
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Events offered and taken that are not yet confirmed or failed: queued, being published,
    /// or awaiting Pub/Sub's confirmation.
    pub fn pending(&self) -> usize {
        self.counts.pending.load(Ordering::Acquire)
    }

    /// Stops taking events (later offers are dropped and counted), mirrors everything queued
    /// and waits for its confirmations, then flushes the publishers, all within `deadline`.
    /// Returns how many events were still not mirrored at the deadline (0 when all were
    /// confirmed or failed); those are abandoned and logged.
    pub async fn shutdown(&self, deadline: Duration) -> usize {
        self.stop.send_replace(true);
        let worker = self.worker.lock().unwrap_or_else(PoisonError::into_inner).take();
        let abort = worker.as_ref().map(JoinHandle::abort_handle);
        let flush = async {
            if let Some(w) = worker
                && let Err(e) = w.await
            {
                tracing::error!(error = %e, "mirror drain task failed");
            }
            self.publishers.shutdown().await;
        };
        if tokio::time::timeout(deadline, flush).await.is_err() {
            if let Some(a) = abort {
                a.abort();
            }
            let left = self.pending();
            tracing::warn!(
                ?deadline,
                unmirrored = left,
                "the mirror did not drain within the shutdown deadline; its remaining events are not mirrored"
            );
            return left;
        }
        self.pending()
    }
}

/// What the drain task owns.
struct Drain {
    rx: mpsc::Receiver<Queued>,
    stopped: watch::Receiver<bool>,
    publishers: Arc<Publishers>,
    counts: Arc<Counts>,
    metrics: Arc<Metrics>,
    max_unconfirmed: usize,
}

/// Moves queued events into the mirror's publishers and counts their outcomes, until the
/// mirror is shut down (or dropped) and everything taken is confirmed or failed.
async fn drain(d: Drain) {
    let Drain { mut rx, mut stopped, publishers, counts, metrics, max_unconfirmed } = d;
    let mut unconfirmed: FuturesUnordered<PublishHandle> = FuturesUnordered::new();
    let (mut stopping, mut received_all) = (false, false);
    let done = |ok: bool| {
        if ok {
            metrics.mirrored.inc()
        } else {
            metrics.mirror_failures.inc()
        };
        counts.pending.fetch_sub(1, Ordering::AcqRel);
    };
    loop {
        tokio::select! {
            // Shut down (or dropped): stop taking new events; what is queued is still received below.
            _ = stopped.changed(), if !stopping => {
                stopping = true;
                rx.close();
            }
            Some(result) = unconfirmed.next(), if !unconfirmed.is_empty() => done(result.is_ok()),
            item = rx.recv(), if !received_all && unconfirmed.len() < max_unconfirmed => {
                let Some(q) = item else {
                    received_all = true;
                    continue;
                };
                counts.queued_bytes.fetch_sub(q.size, Ordering::AcqRel);
                let (topic, msg) = q.unpack();
                let published = match publishers.get(topic) {
                    // May wait for the mirror publisher's flow control: the queue takes it.
                    Ok(p) => p.publish(&msg).await,
                    Err(e) => Err(e),
                };
                match published {
                    Ok(h) => unconfirmed.push(h),
                    Err(e) => {
                        tracing::debug!(topic, error = %e, "mirror publish refused");
                        done(false);
                    }
                }
            }
            else => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PublisherSettings;
    use tokio::net::TcpListener;

    /// A mirror whose publishers talk to a server that accepts connections and never answers,
    /// with room for one unconfirmed message per topic.
    async fn stalled_mirror(queue_events: usize, queue_bytes: usize) -> (Mirror, Arc<Metrics>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let host = listener.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let client = pubsub_client::Client::builder()
            .with_project("mirror-test")
            .with_emulator_host(host)
            .build()
            .await
            .expect("client");
        let settings = PublisherSettings { max_outstanding_messages: 1, ..PublisherSettings::default() };
        let publishers = Publishers::new(client, "shadow-".into(), &settings);
        let mut config = MirrorConfig::new("shadow-");
        config.queue_events = queue_events;
        config.queue_bytes = queue_bytes;
        let metrics = Metrics::new();
        (Mirror::new(publishers, &config, 1, metrics.clone()), metrics)
    }

    fn event(i: usize) -> Message {
        Message::new(vec![b'x'; 100]).with_attribute("event_id", format!("{i:04}"))
    }

    #[tokio::test]
    async fn offer_never_waits_and_drops_what_does_not_fit() {
        let (mirror, metrics) = stalled_mirror(10, 1 << 20).await;
        // No await between the offers: on this single-threaded runtime the drain task cannot
        // run, so the queue fills and every later offer must return at once, dropped.
        let taken = (0..1000).filter(|i| mirror.offer("play", event(*i))).count();
        assert_eq!(taken, 10);
        assert_eq!(metrics.mirror_dropped.get(), 990);
        assert_eq!((mirror.queued(), mirror.pending()), (10, 10));
        // The drain task takes an event into the publisher (room for one), then waits for the
        // stalled target; shutdown gives up at its deadline and says what was left.
        let left = tokio::time::timeout(Duration::from_secs(30), mirror.shutdown(Duration::from_millis(300)))
            .await
            .expect("shutdown keeps its deadline");
        assert_eq!(left, 10);
        assert!(!mirror.offer("play", event(0)), "a shut-down mirror takes nothing");
        assert_eq!(metrics.mirror_dropped.get(), 991);
        assert_eq!((metrics.mirrored.get(), metrics.mirror_failures.get()), (0, 0));
    }

    #[test]
    fn a_packed_event_unpacks_to_the_same_topic_and_message() {
        let msg = Message::new(vec![0, 1, 2, 255])
            .with_attribute("event_id", "é-1")
            .with_attribute("event_type", "")
            .with_attribute("event_time", "2026-12-03T22:00:00Z");
        let q = Queued::pack("play", &msg, msg.size());
        let (topic, back) = q.unpack();
        assert_eq!(topic, "play");
        assert_eq!(back.data(), msg.data());
        assert_eq!(back.attributes(), msg.attributes());
        let empty = Queued::pack("", &Message::new(Vec::new()), 0);
        let (topic, back) = empty.unpack();
        assert_eq!((topic, back.data(), back.attributes().len()), ("", &[][..], 0));
    }

    #[tokio::test]
    async fn the_byte_limit_bounds_the_queue_too() {
        let size = event(0).size();
        let (mirror, metrics) = stalled_mirror(1000, 3 * size + size / 2).await;
        let taken = (0..10).filter(|i| mirror.offer("play", event(*i))).count();
        assert_eq!(taken, 3);
        assert_eq!(metrics.mirror_dropped.get(), 7);
        let _ = mirror.shutdown(Duration::from_millis(1)).await;
    }
}
