//! The load generator shared by `publish` and `consume`: producers offering messages at a rate
//! (governor token buckets, re-set every second so a rate profile can change it), weighted over
//! the topics, and per topic a completion task that waits for each message's confirmation.
//!
//! Memory stays bounded: the publishers' flow control (`--max-outstanding-*`) blocks producers,
//! and the queue from producers to completion tasks holds at most as many handles.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use anyhow::Context;
use pubsub_client::{
    Client, Message, PublishHandle, Publisher, PublisherConfig, PublisherStats, Subscription, Topic,
};
use tokio::sync::mpsc;

use crate::cli::{PublishOptions, Target};
use crate::emulator::Emulator;
use crate::mix::{Payloads, TopicMix};
use crate::null_sink::NullSink;
use crate::pace::{Pacer, RateFn};
use crate::stats::{Confirmations, Counters, Latency};

/// Attributes a `consume` message carries: producer, sequence number, send time (Unix ns).
pub const ATTR_PRODUCER: &str = "lt_producer";
/// See [`ATTR_PRODUCER`].
pub const ATTR_SEQ: &str = "lt_seq";
/// See [`ATTR_PRODUCER`].
pub const ATTR_SENT_NS: &str = "lt_sent_ns";

/// The client, the topics and whatever was started for the target.
pub struct Setup {
    /// The client.
    pub client: Client,
    /// Topic ids and weights.
    pub topics: Vec<(String, u32)>,
    /// The target, for the summary.
    pub target: Target,
    /// `host:port` of a plain-http target (emulator, null sink, `http://` URL); `None` for
    /// real Pub/Sub and `https://` URLs.
    pub plain_host: Option<String>,
    _sink: Option<NullSink>,
    _emulator: Option<Emulator>,
    sink_cpu: Option<Box<dyn Fn() -> f64 + Send + Sync>>,
}

impl Setup {
    /// CPU seconds of the null sink (if the target is `null`).
    pub fn sink_cpu_seconds(&self) -> Option<f64> {
        self.sink_cpu.as_ref().map(|f| f())
    }

    /// Deletes the subscriptions and topics [`setup`] created with a run id (all but real
    /// Pub/Sub's and the null sink's); failures are reported on stderr, not fatal.
    pub async fn cleanup(&self) {
        if matches!(self.target, Target::Pubsub | Target::Null) {
            return;
        }
        for (t, _) in &self.topics {
            let sub = Setup::subscription_of(t);
            if let Err(e) = self.client.delete_subscription(&sub).await {
                eprintln!("could not delete subscription {sub}: {e}");
            }
            if let Err(e) = self.client.delete_topic(t).await {
                eprintln!("could not delete topic {t}: {e}");
            }
        }
    }

    /// The subscription of a topic.
    pub fn subscription_of(topic: &str) -> String {
        format!("{topic}-loadtest")
    }
}

/// Connects to the target and creates the topics (each with a subscription, except for the
/// null sink).
pub async fn setup(o: &PublishOptions) -> anyhow::Result<Setup> {
    let run = format!("{:06x}", fastrand::u32(..0xff_ffff));
    let mut b = Client::builder().with_project(&o.project);
    let (mut sink, mut emulator, mut plain_host) = (None, None, None);
    match &o.target {
        Target::Null => {
            let s = NullSink::spawn()?;
            plain_host = Some(s.host().to_owned());
            sink = Some(s);
        }
        Target::Emulator => {
            let e = Emulator::from_env_or_start()?;
            plain_host = Some(e.host().to_owned());
            emulator = Some(e);
        }
        Target::Pubsub => {}
        Target::Url(u) => match u.strip_prefix("http://") {
            Some(host) => plain_host = Some(host.trim_end_matches('/').to_owned()),
            None => b = b.with_endpoint(u),
        },
    }
    if let Some(host) = &plain_host {
        b = b.with_emulator_host(host);
    }
    let client = b.build().await.context("building the Pub/Sub client")?;
    let topics: Vec<(String, u32)> = match o.target {
        // Real Pub/Sub: the topics as named (created if missing).
        Target::Pubsub => o.topics.0.clone(),
        _ => o.topics.0.iter().map(|(n, w)| (format!("loadtest-{n}-{run}"), *w)).collect(),
    };
    if o.target != Target::Null {
        for (t, _) in &topics {
            match client.create_topic(&Topic::new(t)).await {
                Ok(_) => {}
                Err(e) if e.is_already_exists() => {}
                Err(e) => return Err(e).with_context(|| format!("creating topic {t}")),
            }
            let sub = Setup::subscription_of(t);
            match client.create_subscription(&Subscription::new(&sub, t).with_ack_deadline_seconds(60)).await
            {
                Ok(_) => {}
                Err(e) if e.is_already_exists() => {}
                Err(e) => return Err(e).with_context(|| format!("creating subscription {sub}")),
            }
        }
    }
    let sink_cpu: Option<Box<dyn Fn() -> f64 + Send + Sync>> = sink.as_ref().map(|s| {
        let stat = format!("/proc/{}/stat", s.pid());
        Box::new(move || crate::proc_stats::cpu_seconds_of(std::path::Path::new(&stat)).unwrap_or(f64::NAN))
            as Box<dyn Fn() -> f64 + Send + Sync>
    });
    Ok(Setup {
        client,
        topics,
        target: o.target.clone(),
        plain_host,
        _sink: sink,
        _emulator: emulator,
        sink_cpu,
    })
}

/// The publisher settings of the options.
pub fn publisher_config(o: &PublishOptions) -> PublisherConfig {
    let mut c = PublisherConfig::default()
        .with_max_messages(o.batch_messages)
        .with_delay(o.batch_delay)
        .with_max_in_flight_requests(o.max_in_flight)
        .with_max_outstanding_messages(o.max_outstanding_messages)
        .with_max_outstanding_bytes(o.max_outstanding_bytes);
    if o.gzip {
        c = c.with_gzip(1024, 1);
    }
    c
}

/// Which sequence numbers were confirmed and received, per producer (`consume`). One byte per
/// message sent.
#[derive(Default)]
pub struct Tracker {
    /// `confirmed[p][seq]`: the publish of producer `p`'s message `seq` was confirmed.
    pub confirmed: Vec<Vec<bool>>,
    /// `received[p][seq]`: how often it was received.
    pub received: Vec<Vec<u8>>,
}

impl Tracker {
    fn confirm(&mut self, p: usize, seq: u64) {
        let v = &mut self.confirmed[p];
        if v.len() <= seq as usize {
            v.resize(seq as usize + 1, false);
        }
        v[seq as usize] = true;
    }

    /// Records a delivery; false if the attributes are not a loadtest message's.
    pub fn receive(&mut self, p: usize, seq: u64) -> bool {
        let Some(v) = self.received.get_mut(p) else { return false };
        if seq > 1 << 40 {
            return false;
        }
        if v.len() <= seq as usize {
            v.resize(seq as usize + 1, 0);
        }
        v[seq as usize] = v[seq as usize].saturating_add(1);
        true
    }

    /// (confirmed, confirmed but never received, extra copies received).
    pub fn tally(&self) -> (u64, u64, u64) {
        let (mut confirmed, mut lost, mut dups) = (0, 0, 0);
        for (c, r) in self.confirmed.iter().zip(&self.received) {
            for (seq, ok) in c.iter().enumerate() {
                let n = r.get(seq).copied().unwrap_or(0);
                if *ok {
                    confirmed += 1;
                    lost += u64::from(n == 0);
                }
                dups += u64::from(n.saturating_sub(1));
            }
        }
        (confirmed, lost, dups)
    }
}

/// What one generation run produced.
pub struct Generated {
    /// Stats of every topic's publisher, summed.
    pub stats: PublisherStats,
}

fn now_ns() -> u128 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

struct Pending {
    started: Instant,
    producer: usize,
    seq: u64,
    handle: PublishHandle,
}

/// Publishes for `o.duration` at `rate_at(elapsed)` messages/s (None = unpaced), counting into
/// `counters` and `latency`; with a `tracker`, messages carry producer, sequence and send time.
pub async fn generate(
    o: &PublishOptions,
    setup: &Setup,
    rate_at: RateFn,
    counters: Arc<Counters>,
    latency: Arc<Latency>,
    tracker: Option<Arc<Mutex<Tracker>>>,
) -> anyhow::Result<Generated> {
    let cfg = publisher_config(o);
    cfg.validate().context("publisher settings")?;
    let producers = o.producers.max(1);
    if let Some(t) = &tracker {
        let mut t = t.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        t.confirmed = vec![Vec::new(); producers];
        t.received = vec![Vec::new(); producers];
    }
    let mut publishers: Vec<Publisher> = Vec::new();
    let mut senders = Vec::new();
    let mut completions = tokio::task::JoinSet::new();
    for (topic, _) in &setup.topics {
        publishers.push(setup.client.publisher_with_config(topic, cfg.clone())?);
        let (tx, mut rx) = mpsc::channel::<Pending>(o.max_outstanding_messages.max(1));
        senders.push(tx);
        let mut done = Confirmations::new(counters.clone(), latency.clone());
        let tracker = tracker.clone();
        completions.spawn(async move {
            while let Some(p) = rx.recv().await {
                match p.handle.await {
                    Ok(_) => {
                        done.confirmed(p.started);
                        if let Some(t) = &tracker {
                            t.lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .confirm(p.producer, p.seq);
                        }
                    }
                    Err(_) => done.failed(),
                }
                done.flush_if(rx.is_empty());
            }
        });
    }
    let mix = TopicMix::new(&setup.topics);
    let payloads = Payloads::new(o.payload_bytes);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for p in 0..producers {
        let (publishers, senders, mix, payloads) =
            (publishers.clone(), senders.clone(), mix.clone(), payloads.clone());
        let (counters, rate_at, tagged, duration) =
            (counters.clone(), rate_at.clone(), tracker.is_some(), o.duration);
        tasks.spawn(async move {
            let mut rng = fastrand::Rng::new();
            let mut seq = 0u64;
            let mut pacer = Pacer::new(rate_at, start, duration, producers);
            while let Some(chunk) = pacer.next().await {
                for _ in 0..chunk {
                    let i = mix.pick(&mut rng);
                    let mut msg = Message::new(payloads.next(&mut rng));
                    if tagged {
                        msg = msg
                            .with_attribute(ATTR_PRODUCER, p.to_string())
                            .with_attribute(ATTR_SEQ, seq.to_string())
                            .with_attribute(ATTR_SENT_NS, now_ns().to_string());
                    }
                    let started = Instant::now();
                    match publishers[i].publish(&msg).await {
                        Ok(handle) => {
                            if senders[i].send(Pending { started, producer: p, seq, handle }).await.is_err() {
                                return;
                            }
                        }
                        Err(_) => {
                            counters.failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    seq += 1;
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    drop(senders);
    for p in &publishers {
        p.flush().await;
    }
    while completions.join_next().await.is_some() {}
    let mut stats = PublisherStats::default();
    for p in &publishers {
        let s = p.stats();
        stats.messages_published += s.messages_published;
        stats.messages_failed += s.messages_failed;
        stats.requests += s.requests;
        stats.retries += s.retries;
        stats.body_bytes += s.body_bytes;
        stats.wire_bytes += s.wire_bytes;
        stats.flow_control_waits += s.flow_control_waits;
        stats.flow_control_wait += s.flow_control_wait;
        stats.request_time += s.request_time;
        p.shutdown().await;
    }
    Ok(Generated { stats })
}
