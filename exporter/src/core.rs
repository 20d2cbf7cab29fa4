//! The exporter's state machine, owned by one task: deliveries in, part files out, hours
//! handed to close tasks. See ARCHITECTURE.md ("exporter", "The close protocol").

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use event_model::{Event, Registry};
use prost::Message as _;
use pubsub_client::Delivery;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::close::{CloseJob, Closed, format_of};
use crate::config::Config;
use crate::dedup::Records;
use crate::error::{Error, Result};
use crate::fleet::{Fleet, FleetView, Heartbeat, TypeBeat};
use crate::format;
use crate::layout::{self, HourKey, PART_PREFIX};
use crate::manifest::Commit;
use crate::metrics::Metrics;
use crate::open_hour::{Offer, OpenHour, Pending};
use crate::seal::{self, HourState, Staleness};
use crate::store::{MAX_RETRY_DELAY, Store};

pub(crate) const HOUR: i64 = 3600;
/// A due hour still busy here is closed anyway after this long (its writes then
/// find the seal and re-route).
const DUE_GRACE: Duration = Duration::from_secs(60);

pub(crate) fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

pub(crate) fn hour_of(t: i64) -> i64 {
    t.div_euclid(HOUR) * HOUR
}

fn ack_all(deliveries: Vec<Delivery>) {
    for d in deliveries {
        drop(d.ack());
    }
}

/// A part file written and its fate settled.
pub(crate) struct WriteDone {
    key: HourKey,
    part: u64,
    name: String,
    events: Vec<Pending>,
    outcome: Outcome,
}

enum Outcome {
    /// The part is certain to be in the hour's output: acknowledge.
    Listed,
    /// The hour was committed without it: re-route its events.
    NotListed(Box<Commit>),
    /// The events cannot be encoded (kept under `_rejected/`).
    Rejected,
}

/// Per event type.
#[derive(Debug)]
struct TypeState {
    /// This process's watermark, never decreasing.
    local: i64,
    /// The fleet watermark as seen here, never decreasing.
    fleet: i64,
    last_delivery: Instant,
    /// Hours known closed, at or after the cursor.
    done: BTreeSet<i64>,
    /// Every hour before it is closed.
    cursor: Option<i64>,
}

/// An event held while a storage check it needs fails (its lease is kept extended).
struct Parked {
    p: Pending,
    size: usize,
    attempts: u32,
    at: Instant,
}

/// The exporter's state.
pub(crate) struct Core {
    pub cfg: Arc<Config>,
    pub registry: Registry,
    /// This process: `<replica>-<incarnation>`.
    pub me: String,
    pub replica: String,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub fleet: Fleet,
    pub open: BTreeMap<HourKey, OpenHour>,
    types: HashMap<String, TypeState>,
    records: Records,
    parked: VecDeque<Parked>,
    pub writes: JoinSet<WriteDone>,
    pub closes: JoinSet<(HourKey, Result<Closed>)>,
    pub chores: JoinSet<()>,
    closing: BTreeSet<HourKey>,
    /// Hours not to try closing before the instant (busy, fenced or failing), with failures.
    wait: HashMap<HourKey, (Instant, u32)>,
    due_since: HashMap<HourKey, Instant>,
    /// Hours behind the cursor whose staging leftovers were handled by this process.
    swept: std::collections::HashSet<HourKey>,
    /// Kept staging folders deleted by this process.
    cleaned: std::collections::HashSet<HourKey>,
    view: watch::Receiver<FleetView>,
    beat: watch::Sender<Heartbeat>,
    next_part: u64,
    attempts: u64,
}

impl Core {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        cfg: Arc<Config>,
        registry: Registry,
        replica: String,
        me: String,
        store: Store,
        metrics: Arc<Metrics>,
        fleet: Fleet,
        view: watch::Receiver<FleetView>,
        beat: watch::Sender<Heartbeat>,
    ) -> Self {
        let now = now_secs();
        let floor = hour_of(now - cfg.close.max_event_age_hours as i64 * HOUR);
        let v = view.borrow().clone();
        let types = registry
            .types()
            .map(|t| {
                let learned = v.learned.get(&t.name).copied().unwrap_or(i64::MIN).max(floor);
                let state = TypeState {
                    local: learned,
                    fleet: learned,
                    last_delivery: Instant::now(),
                    done: BTreeSet::new(),
                    cursor: v.cursors.get(&t.name).copied(),
                };
                (t.name.clone(), state)
            })
            .collect();
        Core {
            records: Records::new(cfg.close.dedup_cache_hours),
            cfg,
            registry,
            me,
            replica,
            store,
            metrics,
            fleet,
            open: BTreeMap::new(),
            types,
            parked: VecDeque::new(),
            writes: JoinSet::new(),
            closes: JoinSet::new(),
            chores: JoinSet::new(),
            closing: BTreeSet::new(),
            wait: HashMap::new(),
            due_since: HashMap::new(),
            swept: std::collections::HashSet::new(),
            cleaned: std::collections::HashSet::new(),
            view,
            beat,
            next_part: 0,
            attempts: 0,
        }
    }

    /// One message from a subscription.
    pub(crate) async fn on_delivery(&mut self, d: Delivery) {
        self.metrics.messages_received.inc();
        let size = d.data().len();
        let mut event = match Event::decode(d.data()) {
            Ok(e) if self.registry.event_type(&e.r#type).is_some() && !e.id.is_empty() => e,
            Ok(e) => {
                self.undecodable(d, &format!("event of unregistered type `{}` or without id", e.r#type));
                return;
            }
            Err(e) => {
                self.undecodable(d, &format!("not a protobuf Event: {e}"));
                return;
            }
        };
        if event.event_time.is_none() {
            // The event-service always sets it; an event from elsewhere takes its receive time.
            event.event_time =
                event.received_time.or(Some(prost_types::Timestamp { seconds: now_secs(), nanos: 0 }));
        }
        if let Some(ts) = self.types.get_mut(&event.r#type) {
            ts.last_delivery = Instant::now();
        }
        self.route(Pending::new(event, d), size, None).await;
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

    /// Places an event: in its own hour while that is ahead of the fleet watermark, else (a
    /// late event) after a check of its own hour's dedup record, in the earliest open hour.
    /// `closed` is an hour known closed that the event must not go to (a re-route).
    async fn route(&mut self, mut p: Pending, size: usize, closed: Option<i64>) {
        match self.place(&p, closed).await {
            Ok(None) => {
                self.metrics.duplicates_dropped.inc();
                ack_all(std::mem::take(&mut p.deliveries));
            }
            Ok(Some((key, on_time))) => {
                p.on_time = on_time;
                if let Err(e) = self.load(&key).await {
                    self.park(p, size, &e);
                    return;
                }
                self.offer(key, p, size);
            }
            Err(e) => self.park(p, size, &e),
        }
    }

    /// Where `p` goes (`None`: it is a duplicate) and whether it is on time there.
    async fn place(&mut self, p: &Pending, closed: Option<i64>) -> Result<Option<(HourKey, bool)>> {
        let now = now_secs();
        let close = &self.cfg.close;
        let t = p.event.event_time.map_or(now, |t| t.seconds);
        let oldest = now - close.max_event_age_hours as i64 * HOUR;
        let newest = now + close.max_future_secs as i64;
        let event_type = p.event.r#type.clone();
        let fleet = self.types.get(&event_type).map_or(i64::MIN, |s| s.fleet);
        if t > newest {
            if closed.is_none() {
                self.metrics.events_future.inc();
            }
            let received = p.event.received_time.map_or(now, |r| r.seconds);
            let at = if (oldest..=newest).contains(&received) { received } else { now };
            let hour = hour_of(at);
            if hour + HOUR > fleet && closed != Some(hour) {
                return Ok(Some(((event_type, hour), false)));
            }
            return Ok(Some((self.late_target(&event_type), false)));
        }
        if t < oldest {
            if closed.is_none() {
                self.metrics.events_too_old.inc();
            }
            return Ok(Some((self.late_target(&event_type), false)));
        }
        let own = (event_type.clone(), hour_of(t));
        if closed.is_none() && !self.is_done(&own) {
            // Its own hour, even behind the watermark while nobody closed it yet (a
            // redelivery after a crash): the seal check after the write decides. Only an
            // hour ahead of the watermark is held back by it.
            return Ok(Some((own.clone(), own.1 + HOUR > fleet)));
        }
        // Late: its own hour is closed (or closing). Is its first copy there, or in the late
        // record of another hour?
        let window = close.dedup_window_hours as i64 * HOUR;
        if own.1 >= now - window && self.records.contains(&self.store, &own, &p.event.id).await? {
            return Ok(None);
        }
        self.metrics.late_events.inc();
        Ok(Some((self.late_target(&event_type), false)))
    }

    fn is_done(&self, key: &HourKey) -> bool {
        self.closing.contains(key)
            || self
                .types
                .get(&key.0)
                .is_some_and(|s| s.done.contains(&key.1) || s.cursor.is_some_and(|c| key.1 < c))
    }

    /// The earliest open hour of `event_type`: the earliest one open here ahead of the fleet
    /// watermark, else the watermark's hour (the clock's, minus the lateness, while the
    /// watermark knows nothing yet: a late event never opens an hour in the past).
    fn late_target(&self, event_type: &str) -> HourKey {
        let now = now_secs();
        let fleet = self.types.get(event_type).map_or(i64::MIN, |s| s.fleet);
        let base = hour_of(fleet.max(0));
        if let Some((k, _)) =
            self.open.iter().find(|(k, _)| k.0 == event_type && k.1 >= base && !self.is_done(k))
        {
            return k.clone();
        }
        let floor = hour_of(now - self.cfg.close.max_event_age_hours as i64 * HOUR);
        let mut hour = if fleet <= floor + HOUR {
            hour_of(now - self.cfg.close.allowed_lateness_secs as i64).max(base)
        } else {
            base
        };
        loop {
            let key = (event_type.to_owned(), hour);
            if !self.is_done(&key) {
                return key;
            }
            hour += HOUR;
        }
    }

    fn park(&mut self, p: Pending, size: usize, e: &Error) {
        tracing::warn!(event_id = %p.event.id, error = %e, "storage check failed; the event is held and retried");
        self.parked.push_back(Parked { p, size, attempts: 0, at: Instant::now() + self.store.retry_initial });
        self.metrics.deliveries_parked.set(self.parked.len() as i64);
    }

    fn offer(&mut self, key: HourKey, p: Pending, size: usize) {
        let cached = self.cfg.close.dedup_cache_ids;
        let b = self.open.entry(key.clone()).or_insert_with(|| OpenHour::new(cached));
        let (offer, ack) = b.offer(p, size);
        if offer != Offer::Buffered {
            self.metrics.duplicates_dropped.inc();
        }
        ack_all(ack);
        if b.buffer.len() >= self.cfg.files.max_events || b.bytes >= self.cfg.files.max_bytes {
            self.cut(&key);
        }
    }

    /// Opens `key` and loads the ids of its staged parts (written before a restart or by
    /// another replica), each part by the format its name says, to drop redelivered copies
    /// of their events.
    ///
    /// Only while no seal exists after the listing: a part staged after a closer's listing
    /// (by a writer that died waiting for the commit) is in no output, and its events, once
    /// redelivered here, are no duplicates. With a seal, nothing staged is trusted: the
    /// events are written again and the check after the write settles them.
    async fn load(&mut self, key: &HourKey) -> Result<()> {
        if self.open.get(key).is_some_and(|b| b.loaded) {
            return Ok(());
        }
        let staging = object_store::path::Path::from(layout::staging_dir(key));
        let names = self.store.list(&staging).await?;
        let mut ids = Vec::new();
        for name in names.iter().filter(|n| n.starts_with(PART_PREFIX)) {
            let Some(fmt) = format_of(name) else { continue };
            let bytes = self.store.read(&layout::staging_object(key, name)).await?;
            ids.extend(format::decode_ids(fmt, &bytes)?);
        }
        if !ids.is_empty() && !matches!(seal::hour_state(&self.store, key).await?, HourState::Open) {
            tracing::debug!(hour = %layout::hour_dir(key), "hour sealed: its staged parts are not taken as copies");
            ids.clear();
        }
        let cached = self.cfg.close.dedup_cache_ids;
        let b = self.open.entry(key.clone()).or_insert_with(|| OpenHour::new(cached));
        // The cache keeps the newest ids of an hour of any size.
        b.written.extend(ids);
        b.loaded = true;
        Ok(())
    }

    /// Starts writing the buffer of `key` as a part file.
    pub(crate) fn cut(&mut self, key: &HourKey) {
        let Some(b) = self.open.get_mut(key) else { return };
        if b.buffer.is_empty() {
            return;
        }
        let Some(spec) = self.registry.event_type(&key.0).cloned() else { return };
        let mut events = b.take();
        events.sort_unstable_by(|a, b| a.event.id.cmp(&b.event.id));
        let part = self.next_part;
        self.next_part += 1;
        let low =
            events.iter().filter(|p| p.on_time).filter_map(|p| p.event.event_time.map(|t| t.seconds)).min();
        let durable = Arc::new(std::sync::atomic::AtomicBool::new(false));
        b.in_flight.insert(part, (low, durable.clone()));
        let (fmt, codec) = (self.cfg.files.format, self.cfg.files.codec);
        let name = format!("{PART_PREFIX}{}-{part:06}{}", self.me, fmt.extension());
        let store = self.store.clone();
        let key = key.clone();
        let me = self.me.clone();
        self.writes.spawn(async move {
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
            let (outcome, name) = match result {
                Ok(file) => write_part(&store, &key, &name, file.bytes, &durable).await,
                Err(e) => {
                    // Retrying cannot help: keep the events, as an EventBatch, for inspection.
                    let batch = event_model::EventBatch { events: evs.clone() }.encode_to_vec();
                    let at = object_store::path::Path::from(format!("_rejected/{}/{me}-{part:06}.pb", key.0));
                    tracing::error!(hour = %layout::hour_dir(&key), error = %e, rejected = %at, "events cannot be encoded; kept as protobuf");
                    if let Err(e) = store.create_retrying(&at, batch.into()).await {
                        tracing::error!(rejected = %at, error = %e, "cannot keep the rejected events");
                    }
                    (Outcome::Rejected, name)
                }
            };
            for (p, e) in events.iter_mut().zip(evs) {
                p.event = e;
            }
            WriteDone { key, part, name, events, outcome }
        });
    }

    /// A part's fate is settled: acknowledge its events, or re-route them when the hour was
    /// committed without the part.
    pub(crate) async fn on_written(&mut self, done: WriteDone) {
        let WriteDone { key, part, name, events, outcome } = done;
        if let Some(b) = self.open.get_mut(&key) {
            b.in_flight.remove(&part);
        }
        match outcome {
            Outcome::Rejected => {
                self.metrics.undecodable.inc_by(events.len() as u64);
                for p in events {
                    ack_all(p.deliveries);
                }
            }
            Outcome::Listed => {
                self.metrics.events_written.inc_by(events.len() as u64);
                let cached = self.cfg.close.dedup_cache_ids;
                let b = self.open.entry(key).or_insert_with(|| OpenHour::new(cached));
                for p in events {
                    b.written.insert(p.event.id);
                    ack_all(p.deliveries);
                }
            }
            Outcome::NotListed(commit) => {
                tracing::warn!(hour = %layout::hour_dir(&key), part = %name, closed_by = %commit.manifest.closed_by, "hour committed without this part; its events are re-routed as late events");
                self.metrics.events_rerouted.inc_by(events.len() as u64);
                self.mark_done(&key);
                // The commit is newer than any cached record of the hour.
                self.records.forget(&key);
                let store = self.store.clone();
                let path = layout::staging_object(&key, &name);
                self.chores.spawn(async move {
                    let _ = store.delete(&path).await;
                });
                for p in events {
                    let size = p.event.encoded_len();
                    self.route(p, size, Some(key.1)).await;
                }
            }
        }
    }

    /// Records that `key` is closed (at least as far as the fleet watermark goes).
    fn mark_done(&mut self, key: &HourKey) {
        if let Some(ts) = self.types.get_mut(&key.0) {
            ts.done.insert(key.1);
            ts.fleet = ts.fleet.max(key.1 + HOUR);
            ts.local = ts.local.max(ts.fleet.min(ts.local.max(key.1 + HOUR)));
        }
        if self.open.get(key).is_some_and(|b| b.is_idle()) {
            self.open.remove(key);
        }
    }

    /// A close task ended.
    pub(crate) fn on_closed(&mut self, key: HourKey, result: Result<Closed>) {
        self.closing.remove(&key);
        match result {
            Ok(Closed::Done { by_me, events }) => {
                if by_me {
                    self.metrics.hours_closed.inc();
                    tracing::info!(hour = %layout::hour_dir(&key), events, "hour closed");
                }
                self.wait.remove(&key);
                self.mark_done(&key);
                self.advance_cursor(&key.0);
            }
            Ok(Closed::Busy(holder)) => {
                tracing::debug!(hour = %layout::hour_dir(&key), %holder, "hour sealed by another closer");
                self.wait.insert(key, (Instant::now() + self.fleet.interval, 0));
            }
            Ok(Closed::Fenced) => {
                self.wait.insert(key, (Instant::now() + self.fleet.interval, 0));
            }
            Err(e) => {
                self.metrics.close_failures.inc();
                let n = self.wait.get(&key).map_or(0, |w| w.1) + 1;
                let delay =
                    (self.store.retry_initial * 2u32.saturating_pow(n.min(16))).min(MAX_RETRY_DELAY * 10);
                tracing::error!(hour = %layout::hour_dir(&key), error = %e, failures = n, retry_in_ms = delay.as_millis() as u64, "cannot close the hour; other hours go on");
                self.wait.insert(key, (Instant::now() + delay, n));
            }
        }
        self.metrics.hours_failing.set(self.wait.values().filter(|w| w.1 > 0).count() as i64);
    }

    fn advance_cursor(&mut self, event_type: &str) {
        // Without a cursor yet, the type's first hour is the earliest one anybody knows of.
        let view = self.view.borrow().clone();
        let known = view
            .staging
            .get(event_type)
            .into_iter()
            .flatten()
            .chain(view.open.get(event_type).into_iter().flatten())
            .copied()
            .chain(self.open.keys().filter(|k| k.0 == event_type).map(|k| k.1))
            .chain(self.closing.iter().filter(|k| k.0 == event_type).map(|k| k.1))
            .min();
        let Some(ts) = self.types.get_mut(event_type) else { return };
        let first = match (ts.done.first().copied(), known) {
            (Some(d), Some(k)) => Some(d.min(k)),
            (d, k) => d.or(k),
        };
        let Some(mut c) = ts.cursor.or(first) else { return };
        let before = ts.cursor;
        while ts.done.contains(&c) {
            ts.done.remove(&c);
            c += HOUR;
        }
        if before == Some(c) {
            return;
        }
        ts.cursor = Some(c);
        let fleet = self.fleet.clone();
        let t = event_type.to_owned();
        self.chores.spawn(async move {
            if let Err(e) = fleet.advance_cursor(&t, c).await {
                tracing::warn!(event_type = %t, error = %e, "cannot write the closed-hours cursor");
            }
        });
    }

    /// Cuts aged files, retries held events, moves the watermarks, tells the fleet, and
    /// starts closing the hours the fleet watermark has passed.
    pub(crate) async fn tick(&mut self) {
        let max_age = Duration::from_millis(self.cfg.files.max_age_ms);
        let aged: Vec<HourKey> = self
            .open
            .iter()
            .filter(|(_, b)| b.first_at.is_some_and(|t| t.elapsed() >= max_age))
            .map(|(k, _)| k.clone())
            .collect();
        for k in aged {
            self.cut(&k);
        }
        self.retry_parked().await;
        let now = now_secs();
        self.watermarks(now);
        self.start_closes();
        self.gauges(now);
    }

    async fn retry_parked(&mut self) {
        let n = self.parked.len();
        for _ in 0..n {
            let Some(mut item) = self.parked.pop_front() else { break };
            if item.at > Instant::now() {
                self.parked.push_back(item);
                continue;
            }
            match self.place(&item.p, None).await {
                Ok(None) => {
                    self.metrics.duplicates_dropped.inc();
                    ack_all(std::mem::take(&mut item.p.deliveries));
                }
                Ok(Some((key, on_time))) => match self.load(&key).await {
                    Ok(()) => {
                        item.p.on_time = on_time;
                        self.offer(key, item.p, item.size);
                    }
                    Err(e) => self.repark(item, &e),
                },
                Err(e) => self.repark(item, &e),
            }
        }
        self.metrics.deliveries_parked.set(self.parked.len() as i64);
    }

    fn repark(&mut self, mut item: Parked, e: &Error) {
        item.attempts += 1;
        let delay =
            (self.store.retry_initial * 2u32.saturating_pow(item.attempts.min(16))).min(MAX_RETRY_DELAY);
        tracing::debug!(event_id = %item.p.event.id, error = %e, attempts = item.attempts, "storage check still failing");
        item.at = Instant::now() + delay;
        self.parked.push_back(item);
    }

    /// This process's watermark per type, the fleet's, and the heartbeat that tells them.
    fn watermarks(&mut self, now: i64) {
        let close = &self.cfg.close;
        let lateness = close.allowed_lateness_secs as i64;
        let floor = hour_of(now - close.max_event_age_hours as i64 * HOUR);
        let view = self.view.borrow().clone();
        let mut beat = Heartbeat {
            replica: self.replica.clone(),
            writer: self.me.clone(),
            written_at: now,
            last_delivery_at: None,
            types: BTreeMap::new(),
        };
        let mut lows: HashMap<&str, i64> = HashMap::new();
        let mut hours: HashMap<&str, Vec<i64>> = HashMap::new();
        for (k, b) in &self.open {
            if let Some(l) = b.low() {
                let e = lows.entry(k.0.as_str()).or_insert(l);
                *e = (*e).min(l);
            }
            hours.entry(k.0.as_str()).or_default().push(k.1);
        }
        let parked_low: HashMap<&str, i64> =
            self.parked.iter().filter(|p| p.p.on_time).fold(HashMap::new(), |mut m, p| {
                if let Some(t) = p.p.event.event_time {
                    let e = m.entry(p.p.event.r#type.as_str()).or_insert(t.seconds);
                    *e = (*e).min(t.seconds);
                }
                m
            });
        for (t, ts) in &mut self.types {
            let low = match (lows.get(t.as_str()), parked_low.get(t.as_str())) {
                (Some(a), Some(b)) => Some(*a.min(b)),
                (a, b) => a.or(b).copied(),
            };
            let idle = ts.last_delivery.elapsed().as_secs() >= close.idle_secs;
            let candidate = match low {
                Some(l) => Some(l - lateness),
                None if idle => Some(now - lateness),
                None => None,
            };
            ts.local = ts.local.max(floor);
            if let Some(c) = candidate {
                ts.local = ts.local.max(c);
            }
            // What this process promises: nothing it holds on time is older.
            let reported = low.map_or(ts.local, |l| ts.local.min(l - lateness));
            let others = view.others.get(t).copied().unwrap_or(i64::MAX);
            ts.fleet = ts.fleet.max(reported.min(others));
            if let Some(c) = view.cursors.get(t) {
                ts.cursor = Some(ts.cursor.map_or(*c, |m| m.max(*c)));
            }
            beat.types.insert(
                t.clone(),
                TypeBeat {
                    watermark: reported,
                    fleet: ts.fleet,
                    low,
                    idle,
                    open_hours: hours.get(t.as_str()).cloned().unwrap_or_default(),
                },
            );
        }
        let _ = self.beat.send(beat);
    }

    /// Starts close tasks for hours behind the fleet watermark: staged hours, hours open here
    /// or elsewhere, and every hour from the type's first to the watermark (empty ones too).
    fn start_closes(&mut self) {
        let view = self.view.borrow().clone();
        let mut due: BTreeSet<HourKey> = BTreeSet::new();
        for (t, ts) in &self.types {
            if ts.fleet == i64::MIN {
                continue;
            }
            let last = hour_of(ts.fleet) - HOUR;
            let mut known: BTreeSet<i64> = BTreeSet::new();
            known.extend(view.staging.get(t).into_iter().flatten().copied());
            known.extend(view.open.get(t).into_iter().flatten().copied());
            known.extend(self.open.keys().filter(|k| &k.0 == t).map(|k| k.1));
            let first = known.iter().next().copied().into_iter().chain(ts.cursor).min();
            let keep = self.cfg.close.keep_staging_secs as i64;
            if keep > 0 {
                // Kept staging folders of published hours, once their time is up.
                let now = now_secs();
                for h in view.staging.get(t).into_iter().flatten().copied() {
                    let key = (t.clone(), h);
                    if ts.done.contains(&h) && h + HOUR + keep <= now && self.cleaned.insert(key.clone()) {
                        let store = self.store.clone();
                        self.chores.spawn(async move {
                            let dir = object_store::path::Path::from(layout::staging_dir(&key));
                            if let Err(e) = store.delete_all(&dir).await {
                                tracing::warn!(%dir, error = %e, "cannot delete a kept staging folder");
                            }
                        });
                    }
                }
            }
            for h in known.iter().copied().filter(|h| *h <= last) {
                let key = (t.clone(), h);
                // A closed hour's leftovers (a part that landed after its cleanup) are swept
                // once per process; a closed hour is never closed again.
                if !ts.done.contains(&h) && (ts.cursor.is_none_or(|c| h >= c) || !self.swept.contains(&key)) {
                    due.insert(key);
                }
            }
            if let Some(first) = first {
                let mut h = first.max(ts.cursor.unwrap_or(first));
                while h <= last && due.len() < 10_000 {
                    if !ts.done.contains(&h) {
                        due.insert((t.clone(), h));
                    }
                    h += HOUR;
                }
            }
        }
        let now = Instant::now();
        for key in due {
            if self.closes.len() >= self.cfg.close.concurrency {
                break;
            }
            if self.closing.contains(&key) || self.wait.get(&key).is_some_and(|w| w.0 > now) {
                continue;
            }
            if let Some(b) = self.open.get(&key)
                && !b.is_idle()
            {
                let since = *self.due_since.entry(key.clone()).or_insert(now);
                self.cut(&key);
                if since.elapsed() < DUE_GRACE {
                    continue;
                }
            }
            self.due_since.remove(&key);
            self.swept.insert(key.clone());
            self.spawn_close(key);
        }
    }

    fn spawn_close(&mut self, key: HourKey) {
        let Some(spec) = self.registry.event_type(&key.0).cloned() else { return };
        self.attempts += 1;
        let fleet = self.types.get(&key.0).map_or(i64::MIN, |s| s.fleet);
        let job = CloseJob {
            key: key.clone(),
            spec: Arc::new(spec),
            format: self.cfg.files.format,
            codec: self.cfg.files.codec,
            max_events: self.cfg.files.max_events,
            me: self.me.clone(),
            attempt: self.attempts,
            watermark: fleet,
            duplicates_seen: self.open.get(&key).map_or(0, |b| b.duplicates),
            stale: Staleness {
                live: self.view.borrow().live.clone(),
                silent_secs: self.fleet.silent_secs,
                timeout_secs: self.cfg.close.seal_timeout_secs as i64,
            },
            keep_staging_secs: self.cfg.close.keep_staging_secs as i64,
            store: self.store.clone(),
        };
        self.closing.insert(key.clone());
        self.closes.spawn(async move {
            let result = job.run().await;
            (key, result)
        });
    }

    fn gauges(&self, now: i64) {
        let m = &self.metrics;
        m.open_hours.set(self.open.len() as i64);
        m.dedup_cached_ids.set(self.open.values().map(|b| b.written.len() as i64).sum());
        if let Some(w) = self.types.values().map(|s| s.fleet).filter(|w| *w > i64::MIN).min() {
            m.watermark_lag_seconds.set(now - w);
        }
        let oldest = self.open.values().filter_map(OpenHour::oldest_received).min();
        m.oldest_unacked_seconds.set(oldest.map_or(0, |t| t.elapsed().as_secs() as i64));
        let overdue = self.open.keys().map(|k| now - (k.1 + HOUR)).max().unwrap_or(0).max(0);
        m.oldest_open_hour_overdue_seconds.set(overdue);
        let _ = self.records.len();
    }

    /// Writes everything buffered (at shutdown).
    pub(crate) fn cut_all(&mut self) {
        let keys: Vec<HourKey> = self.open.keys().cloned().collect();
        for k in keys {
            self.cut(&k);
        }
    }
}

/// Writes a part (create-only, retried until it succeeds), then settles its fate: listed
/// (no seal, or the commit lists it), or not listed (committed without it). A failed check
/// is retried, never read as "not closed"; a seal without commit is waited out.
async fn write_part(
    b: &Store,
    key: &HourKey,
    name: &str,
    bytes: bytes::Bytes,
    durable: &std::sync::atomic::AtomicBool,
) -> (Outcome, String) {
    let mut name = name.to_owned();
    let mut retry = 0;
    loop {
        let path = layout::staging_object(key, &name);
        match b.create_retrying(&path, bytes.clone()).await {
            Ok(_) => break,
            Err(e) => {
                // Only another process writing this very name could cause it, which
                // incarnation ids rule out; never take it as written: write under another name.
                tracing::error!(%path, error = %e, "part name taken with other content; writing it under another name");
                retry += 1;
                name = format!(
                    "{}-r{retry}{}",
                    name.trim_end_matches(crate::close::format_of(&name).map_or("", |f| f.extension())),
                    crate::close::format_of(&name).map_or("", |f| f.extension())
                );
            }
        }
    }
    durable.store(true, std::sync::atomic::Ordering::Relaxed);
    let name = name.as_str();
    let mut delay = b.retry_initial;
    loop {
        match seal::hour_state(b, key).await {
            Ok(HourState::Open) => return (Outcome::Listed, name.to_owned()),
            Ok(HourState::Committed(c)) => {
                if c.manifest.parts_merged.iter().any(|p| p == name) {
                    return (Outcome::Listed, name.to_owned());
                }
                return (Outcome::NotListed(c), name.to_owned());
            }
            Ok(HourState::Sealed) => {
                tracing::debug!(hour = %layout::hour_dir(key), part = %name, "hour sealed; waiting for its commit");
            }
            Err(e) => {
                tracing::warn!(hour = %layout::hour_dir(key), error = %e, "cannot check the hour after a write; holding the acknowledgements");
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}
