//! The exporter's state machine, owned by one task: deliveries in, part files out, hours
//! closed. See ARCHITECTURE.md ("exporter") for the protocol.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use event_model::{Event, Registry};
use futures::StreamExt;
use prost::Message as _;
use pubsub_client::Delivery;
use tokio::task::JoinSet;

use crate::bucket::{Bucket, Offer, Pending};
use crate::config::Config;
use crate::error::Result;
use crate::format;
use crate::manifest::{self, BucketKey};
use crate::metrics::Metrics;
use crate::store::{Buckets, Created};

const HOUR: i64 = 3600;
/// Hour listings in flight at once when looking for hours left open at start.
const RECOVER_LISTINGS: usize = 32;

/// A part file written (or found written).
pub(crate) struct WriteDone {
    key: BucketKey,
    part: u64,
    name: String,
    events: Vec<Pending>,
    /// Why the events could not be written as a data file (they were kept under `_rejected/`).
    rejected: Option<String>,
}

/// The exporter's state.
pub(crate) struct Core {
    pub cfg: Arc<Config>,
    pub registry: Registry,
    pub replica: String,
    pub buckets: Buckets,
    pub metrics: Arc<Metrics>,
    pub open: BTreeMap<BucketKey, Bucket>,
    pub closed: HashMap<BucketKey, Option<HashSet<String>>>,
    pub known_open: HashSet<BucketKey>,
    pub watermark: i64,
    last_message: Instant,
    pub writes: JoinSet<WriteDone>,
    next_part: u64,
}

pub(crate) fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn hour_of(t: i64) -> i64 {
    t.div_euclid(HOUR) * HOUR
}

fn ack_all(deliveries: Vec<Delivery>) {
    for d in deliveries {
        drop(d.ack());
    }
}

impl Core {
    pub(crate) fn new(
        cfg: Arc<Config>,
        registry: Registry,
        replica: String,
        buckets: Buckets,
        metrics: Arc<Metrics>,
    ) -> Self {
        Core {
            cfg,
            registry,
            replica,
            buckets,
            metrics,
            open: BTreeMap::new(),
            closed: HashMap::new(),
            known_open: HashSet::new(),
            watermark: i64::MIN,
            last_message: Instant::now(),
            writes: JoinSet::new(),
            next_part: 0,
        }
    }

    /// Finds hours of the last `recover_hours` left open by an earlier run (parts without
    /// manifest), so they are closed even if no new event arrives for them.
    pub(crate) async fn recover(&mut self) -> Result<()> {
        let now = now_secs();
        let close = &self.cfg.close;
        let window = close.recover_hours.max(close.dedup_window_hours) as i64 * HOUR;
        let cached = close.dedup_cache_ids;
        let mut keys = Vec::new();
        for t in self.registry.types() {
            let mut hour = hour_of(now - window);
            while hour <= now {
                keys.push((t.name.clone(), hour));
                hour += HOUR;
            }
        }
        // A week of hours per type: listed RECOVER_LISTINGS at a time (GCS answers each in tens
        // of milliseconds).
        let buckets = &self.buckets;
        let listed: Vec<(BucketKey, Result<Vec<String>>)> = futures::stream::iter(keys)
            .map(|key| async move {
                let names = buckets.list(&key).await;
                (key, names)
            })
            .buffer_unordered(RECOVER_LISTINGS)
            .collect()
            .await;
        for (key, names) in listed {
            let names = names?;
            if names.iter().any(|n| n == manifest::MANIFEST) {
                self.closed.insert(key, None);
            } else if names.iter().any(|n| n.starts_with("part-")) {
                tracing::info!(bucket = %manifest::prefix(&key), "open hour found from an earlier run");
                self.open.entry(key).or_insert_with(|| Bucket::new(cached));
            }
        }
        Ok(())
    }

    /// One message from a subscription.
    pub(crate) async fn on_delivery(&mut self, d: Delivery) -> Result<()> {
        self.last_message = Instant::now();
        let size = d.data().len();
        let mut event = match Event::decode(d.data()) {
            Ok(e) if self.registry.event_type(&e.r#type).is_some() && !e.id.is_empty() => e,
            Ok(e) => {
                self.undecodable(d, &format!("event of unregistered type `{}` or without id", e.r#type));
                return Ok(());
            }
            Err(e) => {
                self.undecodable(d, &format!("not a protobuf Event: {e}"));
                return Ok(());
            }
        };
        if event.event_time.is_none() {
            // The event-service always sets it; an event from elsewhere takes its receive time.
            event.event_time =
                event.received_time.or(Some(prost_types::Timestamp { seconds: now_secs(), nanos: 0 }));
        }
        let t = event.event_time.map_or_else(now_secs, |t| t.seconds);
        let mut key = (event.r#type.clone(), hour_of(t));
        if self.is_closed(&key).await? {
            if self.closed_ids(&key).await?.is_some_and(|ids| ids.contains(&event.id)) {
                self.metrics.duplicates_dropped.inc();
                drop(d.ack());
                return Ok(());
            }
            key = self.earliest_open(&event.r#type, key.1).await?;
            self.metrics.late_events.inc();
        }
        self.offer(key, event, d, size).await
    }

    fn undecodable(&self, d: Delivery, why: &str) {
        self.metrics.undecodable.inc();
        tracing::error!(
            message_id = d.message_id(),
            why,
            "message is not an exportable event; acknowledged and dropped"
        );
        drop(d.ack());
    }

    async fn offer(&mut self, key: BucketKey, event: Event, d: Delivery, size: usize) -> Result<()> {
        self.load(&key).await?;
        let Some(b) = self.open.get_mut(&key) else { return Ok(()) };
        match b.offer(event, d, size) {
            (Offer::Buffered, _) => {}
            (_, ack) => {
                self.metrics.duplicates_dropped.inc();
                if let Some(d) = ack {
                    drop(d.ack());
                }
            }
        }
        if b.buffer.len() >= self.cfg.files.max_events || b.bytes >= self.cfg.files.max_bytes {
            self.cut(&key);
        }
        Ok(())
    }

    /// Opens `key` and loads the ids of its existing part files (written before a restart or
    /// by another replica).
    async fn load(&mut self, key: &BucketKey) -> Result<()> {
        if self.open.get(key).is_some_and(|b| b.loaded) {
            return Ok(());
        }
        let (cached, fmt) = (self.cfg.close.dedup_cache_ids, self.cfg.files.format);
        let names = self.buckets.list(key).await?;
        let b = self.open.entry(key.clone()).or_insert_with(|| Bucket::new(cached));
        // One part file at a time; the cache keeps the newest ids of an hour of any size.
        for name in names.iter().filter(|n| n.starts_with("part-")) {
            let bytes = self.buckets.read(&manifest::object(key, name)).await?;
            b.written.extend(format::decode_ids(fmt, &bytes)?);
        }
        b.loaded = true;
        Ok(())
    }

    async fn is_closed(&mut self, key: &BucketKey) -> Result<bool> {
        if self.closed.contains_key(key) {
            return Ok(true);
        }
        if self.open.contains_key(key) || self.known_open.contains(key) {
            return Ok(false);
        }
        if self.buckets.manifest(key).await?.is_some() {
            self.closed.insert(key.clone(), None);
            return Ok(true);
        }
        self.known_open.insert(key.clone());
        Ok(false)
    }

    /// The ids of a closed hour within the dedup window.
    async fn closed_ids(&mut self, key: &BucketKey) -> Result<Option<&HashSet<String>>> {
        let window = self.cfg.close.dedup_window_hours as i64 * HOUR;
        if key.1 < now_secs() - window {
            return Ok(None);
        }
        if matches!(self.closed.get(key), Some(None)) {
            let ids = self.buckets.closed_ids(key).await?;
            self.closed.insert(key.clone(), Some(ids));
        }
        Ok(self.closed.get(key).and_then(Option::as_ref))
    }

    /// The earliest open hour of `event_type` after the closed hour `after`.
    async fn earliest_open(&mut self, event_type: &str, after: i64) -> Result<BucketKey> {
        if let Some((k, _)) = self.open.iter().find(|(k, _)| k.0 == event_type && k.1 > after) {
            return Ok(k.clone());
        }
        let mut hour = (after + HOUR).max(hour_of(self.watermark.max(0)));
        loop {
            let key = (event_type.to_owned(), hour);
            if !self.is_closed(&key).await? {
                return Ok(key);
            }
            hour += HOUR;
        }
    }

    /// Starts writing the buffer of `key` as a part file.
    pub(crate) fn cut(&mut self, key: &BucketKey) {
        let Some(b) = self.open.get_mut(key) else { return };
        if b.buffer.is_empty() {
            return;
        }
        let mut events = b.take();
        events.sort_unstable_by(|a, b| a.event.id.cmp(&b.event.id));
        let part = self.next_part;
        self.next_part += 1;
        let low = events.iter().filter_map(|p| p.event.event_time.map(|t| t.seconds)).min().unwrap_or(key.1);
        b.in_flight.insert(part, low);
        let name = format!("part-{}-{part:06}{}", self.replica, self.cfg.files.format.extension());
        let (fmt, codec) = (self.cfg.files.format, self.cfg.files.codec);
        let Some(spec) = self.registry.event_type(&key.0).cloned() else { return };
        let buckets = self.buckets.clone();
        let key = key.clone();
        let replica = self.replica.clone();
        self.writes.spawn(async move {
            let path = manifest::object(&key, &name);
            // The events move to the encoder and come back, rather than being copied.
            let evs: Vec<Event> = events.iter_mut().map(|p| std::mem::take(&mut p.event)).collect();
            let encoded = tokio::task::spawn_blocking(move || {
                let file = format::encode_file(fmt, codec, &spec, &evs);
                (file, evs)
            })
            .await;
            let (result, evs) = match encoded {
                Ok((file, evs)) => (file.map_err(|e| e.to_string()), evs),
                Err(e) => (Err(format!("encoder task failed: {e}")), Vec::new()),
            };
            let rejected = match result {
                Ok(file) => {
                    if buckets.create(&path, file.bytes).await == Created::Existed {
                        tracing::debug!(%path, "part file already written");
                    }
                    None
                }
                Err(e) => {
                    // Retrying cannot help: keep the events, as an EventBatch, for inspection.
                    let batch = event_model::EventBatch { events: evs.clone() }.encode_to_vec();
                    let at = object_store::path::Path::from(format!("_rejected/{}/{replica}-{part:06}.pb", key.0));
                    tracing::error!(%path, error = %e, rejected = %at, "events cannot be encoded; kept as protobuf");
                    buckets.create(&at, batch.into()).await;
                    Some(e)
                }
            };
            for (p, e) in events.iter_mut().zip(evs) {
                p.event = e;
            }
            WriteDone { key, part, name, events, rejected }
        });
    }

    /// A part file is durable: acknowledge its events, unless another replica closed the
    /// hour without it, in which case its events are late events of a later hour.
    pub(crate) async fn on_written(&mut self, done: WriteDone) -> Result<()> {
        let WriteDone { key, part, name, events, rejected } = done;
        if let Some(b) = self.open.get_mut(&key) {
            b.in_flight.remove(&part);
        }
        if rejected.is_some() {
            self.metrics.undecodable.inc_by(events.len() as u64);
            for p in events {
                ack_all(p.deliveries);
            }
            return Ok(());
        }
        let mut check = self.buckets.manifest(&key).await;
        for _ in 0..5 {
            if check.is_ok() {
                break;
            }
            tokio::time::sleep(self.buckets.retry_initial).await;
            check = self.buckets.manifest(&key).await;
        }
        let closed_without_it = match check {
            Ok(m) => m.is_some_and(|m| !m.parts_merged.contains(&name)),
            Err(e) => {
                // The part is durable. Only another replica closing this very hour in the same
                // moment could leave it unlisted; holding the acknowledgements would not help.
                tracing::warn!(bucket = %manifest::prefix(&key), error = %e, "cannot check the manifest after a write");
                false
            }
        };
        if closed_without_it {
            tracing::warn!(bucket = %manifest::prefix(&key), part = %name, "hour closed by another replica without this part; its events are re-routed as late events");
            self.open.remove(&key);
            self.closed.insert(key.clone(), None);
            for p in events {
                let late = self.earliest_open(&key.0, key.1).await?;
                self.metrics.late_events.inc();
                let mut deliveries = p.deliveries.into_iter();
                if let Some(first) = deliveries.next() {
                    let size = p.event.encoded_len();
                    self.offer(late.clone(), p.event, first, size).await?;
                }
                ack_all(deliveries.collect());
            }
            return Ok(());
        }
        self.metrics.events_written.inc_by(events.len() as u64);
        let cached = self.cfg.close.dedup_cache_ids;
        let b = self.open.entry(key).or_insert_with(|| Bucket::new(cached));
        for p in events {
            b.written.insert(p.event.id);
            ack_all(p.deliveries);
        }
        Ok(())
    }

    /// Cuts aged files, advances the watermark and closes the hours it passed.
    pub(crate) async fn tick(&mut self) -> Result<()> {
        let max_age = std::time::Duration::from_millis(self.cfg.files.max_age_ms);
        let aged: Vec<BucketKey> = self
            .open
            .iter()
            .filter(|(_, b)| b.first_at.is_some_and(|t| t.elapsed() >= max_age))
            .map(|(k, _)| k.clone())
            .collect();
        for k in aged {
            self.cut(&k);
        }
        let now = now_secs();
        let lateness = self.cfg.close.allowed_lateness_secs as i64;
        let low = self.open.values().filter_map(Bucket::low).min();
        let candidate = match low {
            Some(l) => Some(l - lateness),
            None if self.last_message.elapsed().as_secs() >= self.cfg.close.idle_secs => Some(now - lateness),
            None => None,
        };
        if let Some(c) = candidate {
            self.watermark = self.watermark.max(c);
        }
        let due: Vec<BucketKey> =
            self.open.keys().filter(|k| k.1 + HOUR <= self.watermark).cloned().collect();
        for k in due {
            let idle = self.open.get(&k).is_some_and(Bucket::is_idle);
            if idle {
                self.close(&k).await?;
            } else {
                self.cut(&k);
            }
        }
        // Closed hours older than the dedup window are no longer checked: forget their ids.
        let horizon = now - self.cfg.close.dedup_window_hours as i64 * HOUR - HOUR;
        self.closed.retain(|k, _| k.1 >= horizon);
        self.known_open.retain(|k| k.1 >= horizon);
        self.gauges(now);
        Ok(())
    }

    fn gauges(&self, now: i64) {
        let m = &self.metrics;
        m.open_buckets.set(self.open.len() as i64);
        m.dedup_cached_ids.set(self.open.values().map(|b| b.written.len() as i64).sum());
        if self.watermark > i64::MIN {
            m.watermark_lag_seconds.set(now - self.watermark);
        }
        let oldest = self.open.values().filter_map(Bucket::oldest_received).min();
        m.oldest_unacked_seconds.set(oldest.map_or(0, |t| t.elapsed().as_secs() as i64));
        let overdue = self.open.keys().map(|k| now - (k.1 + HOUR)).max().unwrap_or(0).max(0);
        m.oldest_open_hour_overdue_seconds.set(overdue);
    }

    /// Writes everything buffered (at shutdown).
    pub(crate) fn cut_all(&mut self) {
        let keys: Vec<BucketKey> = self.open.keys().cloned().collect();
        for k in keys {
            self.cut(&k);
        }
    }
}
