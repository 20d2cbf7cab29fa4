//! One open hourly bucket of one event type: events buffered for the next part file (with the
//! Pub/Sub deliveries to acknowledge once it is written), part files being written, and the
//! ids already written (the in-memory cache of what its part files hold).

use std::collections::HashMap;
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
}

/// What happened to an event offered to a bucket.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Offer {
    /// Buffered for the next part file.
    Buffered,
    /// Its id is already buffered; the delivery waits for that file.
    DuplicateBuffered,
    /// Its id is already written: acknowledge now.
    DuplicateWritten,
}

/// An open bucket.
#[derive(Debug)]
pub(crate) struct Bucket {
    pub buffer: Vec<Pending>,
    buffered: HashMap<String, usize>,
    pub bytes: usize,
    pub first_at: Option<Instant>,
    /// Recent ids of this bucket's part files (loaded from storage on first use), bounded:
    /// the merge at close drops whatever duplicate it no longer knows.
    pub written: IdCache,
    pub loaded: bool,
    /// Part files being written: their oldest event time (seconds) and count.
    pub in_flight: HashMap<u64, i64>,
    pub duplicates: u64,
}

impl Bucket {
    /// An empty bucket remembering up to `cached_ids` written ids.
    pub(crate) fn new(cached_ids: usize) -> Self {
        Bucket {
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

    /// Offers an event. Returns the delivery back when the caller must acknowledge it now.
    pub(crate) fn offer(
        &mut self,
        event: Event,
        delivery: Delivery,
        size: usize,
    ) -> (Offer, Option<Delivery>) {
        if self.written.contains(&event.id) {
            self.duplicates += 1;
            return (Offer::DuplicateWritten, Some(delivery));
        }
        if let Some(&i) = self.buffered.get(&event.id) {
            self.duplicates += 1;
            self.buffer[i].deliveries.push(delivery);
            return (Offer::DuplicateBuffered, None);
        }
        self.buffered.insert(event.id.clone(), self.buffer.len());
        self.buffer.push(Pending { event, deliveries: vec![delivery], received: Instant::now() });
        self.bytes += size;
        self.first_at.get_or_insert_with(Instant::now);
        (Offer::Buffered, None)
    }

    /// Takes the buffer for a part file.
    pub(crate) fn take(&mut self) -> Vec<Pending> {
        self.buffered.clear();
        self.bytes = 0;
        self.first_at = None;
        std::mem::take(&mut self.buffer)
    }

    /// Oldest event time (seconds) buffered or being written.
    pub(crate) fn low(&self) -> Option<i64> {
        let buffered = self.buffer.iter().filter_map(|p| p.event.event_time.map(|t| t.seconds)).min();
        buffered.into_iter().chain(self.in_flight.values().copied()).min()
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
