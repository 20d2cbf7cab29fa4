//! The ids an open hour has written, kept in memory to drop a redelivered or re-sent event
//! before it is written a second time. It is a cache, bounded whatever the size of the hour:
//! the record is the part files, whose merge by id when the hour closes drops any duplicate
//! the cache no longer knew (see `close.rs`).
//!
//! Two generations of at most half the capacity each: when the current one is full it becomes
//! the previous one and the older previous one is forgotten, so the most recent ids (the ones
//! a redelivery after an ack deadline or a re-sending tailer brings back) are the ones kept.

use std::collections::HashSet;

/// A bounded set of recently written ids.
#[derive(Debug)]
pub(crate) struct IdCache {
    half: usize,
    current: HashSet<String>,
    previous: HashSet<String>,
    forgotten: u64,
}

impl IdCache {
    /// A cache of at most `capacity` ids (at least 2).
    pub(crate) fn new(capacity: usize) -> Self {
        IdCache {
            half: (capacity / 2).max(1),
            current: HashSet::new(),
            previous: HashSet::new(),
            forgotten: 0,
        }
    }

    /// Whether `id` was inserted and not forgotten since.
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.current.contains(id) || self.previous.contains(id)
    }

    /// Remembers `id`, forgetting the older generation when the current one is full.
    pub(crate) fn insert(&mut self, id: String) {
        if self.contains(&id) {
            return;
        }
        if self.current.len() >= self.half {
            self.forgotten += self.previous.len() as u64;
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(id);
    }

    /// Ids held now.
    pub(crate) fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    /// Ids forgotten so far to stay within the capacity.
    #[cfg(test)]
    pub(crate) fn forgotten(&self) -> u64 {
        self.forgotten
    }
}

impl Extend<String> for IdCache {
    fn extend<I: IntoIterator<Item = String>>(&mut self, ids: I) {
        for id in ids {
            self.insert(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_within_its_capacity_and_keeps_the_newest_ids() {
        let mut c = IdCache::new(10);
        c.extend((0..100).map(|i| format!("e{i}")));
        assert!(c.len() <= 10, "{} ids held", c.len());
        assert_eq!(c.forgotten() as usize + c.len(), 100, "every id is held or counted as forgotten");
        assert!(c.contains("e99") && c.contains("e95"), "the newest are kept");
        assert!(!c.contains("e0") && !c.contains("e50"), "the oldest are forgotten");
    }

    #[test]
    fn a_repeated_id_takes_no_room() {
        let mut c = IdCache::new(4);
        for _ in 0..10 {
            c.insert("same".into());
        }
        assert_eq!((c.len(), c.forgotten()), (1, 0));
        c.extend(["a".to_owned(), "b".to_owned()]);
        assert!(c.contains("same") && c.contains("a") && c.contains("b"));
    }
}
