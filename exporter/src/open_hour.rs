//! One open hour of one event type: events buffered for the next part file (with the
//! Pub/Sub deliveries to acknowledge once it is written), part files being written, and the
//! ids already written (the in-memory cache of what its part files hold).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use event_model::Event;
use pubsub_client::Delivery;

use crate::idcache::IdCache;

/// An event waiting for its part file, and every delivery that carried its id.
#[derive(Debug)]
pub(crate) struct Pending {
    pub event: Event,
    pub deliveries: Vec<Delivery>,
    pub received: Instant,
    /// Placed in its own hour (it holds the watermark back until written); late and
    /// out-of-bounds events never do.
    pub on_time: bool,
}

impl Pending {
    /// A new event with the delivery that brought it.
    pub(crate) fn new(event: Event, delivery: Delivery) -> Self {
        Pending { event, deliveries: vec![delivery], received: Instant::now(), on_time: true }
    }
}

/// What happened to an event offered to an open hour.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Offer {
    /// Buffered for the next part file.
    Buffered,
    /// Its id is already buffered; the delivery waits for that file.
    DuplicateBuffered,
    /// Its id is already written: acknowledge now.
    DuplicateWritten,
}

/// An open hour.
#[derive(Debug)]
pub(crate) struct OpenHour {
    pub buffer: Vec<Pending>,
    buffered: HashMap<String, usize>,
    pub bytes: usize,
    pub first_at: Option<Instant>,
    /// Recent ids of this hour's part files (loaded from storage on first use), bounded:
    /// the merge at close drops whatever duplicate it no longer knows.
    pub written: IdCache,
    pub loaded: bool,
    /// Part files being written, or durable and waiting for the hour's seal to resolve:
    /// their oldest on-time event time (seconds), if any, and whether they are durable yet
    /// (a durable part no longer holds the watermark: its fate is the hour's commit).
    pub in_flight: HashMap<u64, (Option<i64>, Arc<AtomicBool>)>,
    pub duplicates: u64,
}

impl OpenHour {
    /// An empty open hour remembering up to `cached_ids` written ids.
    pub(crate) fn new(cached_ids: usize) -> Self {
        OpenHour {
            buffer: Vec::new(),
            buffered: HashMap::new(),
            bytes: 0,
            first_at: None,
            written: IdCache::new(cached_ids),
            loaded: false,
            in_flight: HashMap::new(),
            duplicates: 0,
        }
    }

    /// Offers an event. Returns its deliveries back when the caller must acknowledge them now.
    pub(crate) fn offer(&mut self, p: Pending, size: usize) -> (Offer, Vec<Delivery>) {
        if self.written.contains(&p.event.id) {
            self.duplicates += 1;
            return (Offer::DuplicateWritten, p.deliveries);
        }
        if let Some(&i) = self.buffered.get(&p.event.id) {
            self.duplicates += 1;
            self.buffer[i].deliveries.extend(p.deliveries);
            return (Offer::DuplicateBuffered, Vec::new());
        }
        self.buffered.insert(p.event.id.clone(), self.buffer.len());
        self.buffer.push(p);
        self.bytes += size;
        self.first_at.get_or_insert_with(Instant::now);
        (Offer::Buffered, Vec::new())
    }

    /// Takes the buffer for a part file.
    pub(crate) fn take(&mut self) -> Vec<Pending> {
        self.buffered.clear();
        self.bytes = 0;
        self.first_at = None;
        std::mem::take(&mut self.buffer)
    }

    /// Oldest on-time event time (seconds) buffered or being written.
    pub(crate) fn low(&self) -> Option<i64> {
        let buffered = self
            .buffer
            .iter()
            .filter(|p| p.on_time)
            .filter_map(|p| p.event.event_time.map(|t| t.seconds))
            .min();
        let writing = self.in_flight.values().filter(|(_, durable)| !durable.load(Ordering::Relaxed));
        buffered.into_iter().chain(writing.filter_map(|(low, _)| *low)).min()
    }

    /// Whether nothing is buffered or being written.
    pub(crate) fn is_idle(&self) -> bool {
        self.buffer.is_empty() && self.in_flight.is_empty()
    }

    /// When the oldest buffered event was received.
    pub(crate) fn oldest_received(&self) -> Option<Instant> {
        self.buffer.iter().map(|p| p.received).min()
    }
}
