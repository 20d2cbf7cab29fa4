//! The dedup record of a closed hour, on storage: the id index its commit names (every event
//! the hour holds) and the late records under `_dedup/<type>/<date>/<hour>/` (ids of the hour's
//! events that landed late in a later hour). An event whose own hour is closed is a duplicate
//! when its id is in that record, wherever its first copy landed, for as long as the record is
//! kept (`close.dedup_window_hours`, a week by default: Pub/Sub's retention).
//!
//! Memory: [`Records`] caches the records of at most `close.dedup_cache_hours` hours (least
//! recently used out). A record is loaded whole (a sorted block index probed by range reads
//! is the next step for hours of billions of events).

use std::collections::{HashMap, HashSet};

use object_store::path::Path;

use crate::error::Result;
use crate::layout::{self, HourKey};
use crate::store::Buckets;

/// Loads the dedup record of `key`: empty when the hour has no commit record.
pub(crate) async fn load(b: &Buckets, key: &HourKey) -> Result<HashSet<String>> {
    let mut ids = HashSet::new();
    if let Some(commit) = b.commit(key).await? {
        let index = layout::hour_object(key, &commit.manifest.ids_index);
        // Not published yet: the index is still at its staged name.
        let staged =
            commit.copies.iter().find(|c| c.to == index.as_ref()).map(|c| Path::from(c.from.as_str()));
        ids = match b.get(&index).await? {
            Some(_) => b.read_ids(&index).await?,
            None => match staged {
                Some(from) => b.read_ids(&from).await?,
                None => HashSet::new(),
            },
        };
    }
    let dir = layout::dedup_dir(key);
    for name in b.list(&dir).await? {
        ids.extend(b.read_ids(&Path::from(format!("{dir}/{name}"))).await?);
    }
    Ok(ids)
}

/// Records loaded during one close, each at most once.
pub(crate) struct Probe {
    b: Buckets,
    loaded: HashMap<HourKey, HashSet<String>>,
}

impl Probe {
    pub(crate) fn new(b: Buckets) -> Self {
        Probe { b, loaded: HashMap::new() }
    }

    /// Whether `id` is in the dedup record of `key`.
    pub(crate) async fn contains(&mut self, key: &HourKey, id: &str) -> Result<bool> {
        if !self.loaded.contains_key(key) {
            let ids = load(&self.b, key).await?;
            self.loaded.insert(key.clone(), ids);
        }
        Ok(self.loaded.get(key).is_some_and(|s| s.contains(id)))
    }
}

/// A bounded cache of dedup records (least recently used out).
pub(crate) struct Records {
    capacity: usize,
    clock: u64,
    map: HashMap<HourKey, (HashSet<String>, u64)>,
}

impl Records {
    /// A cache of at most `capacity` hours' records (at least 1).
    pub(crate) fn new(capacity: usize) -> Self {
        Records { capacity: capacity.max(1), clock: 0, map: HashMap::new() }
    }

    /// Whether `id` is in the record of `key`, loading it if it is not cached.
    pub(crate) async fn contains(&mut self, b: &Buckets, key: &HourKey, id: &str) -> Result<bool> {
        self.clock += 1;
        if let Some((ids, used)) = self.map.get_mut(key) {
            *used = self.clock;
            return Ok(ids.contains(id));
        }
        let ids = load(b, key).await?;
        let found = ids.contains(id);
        if self.map.len() >= self.capacity {
            if let Some(old) = self.map.iter().min_by_key(|(_, (_, u))| *u).map(|(k, _)| k.clone()) {
                self.map.remove(&old);
            }
        }
        self.map.insert(key.clone(), (ids, self.clock));
        Ok(found)
    }

    /// Hours cached.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Forgets `key` (its record changed).
    pub(crate) fn forget(&mut self, key: &HourKey) {
        self.map.remove(key);
    }
}
