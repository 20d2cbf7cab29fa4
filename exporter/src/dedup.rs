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
use crate::store::Store;

/// The ids of `key`'s own id index (empty when the hour has no commit record).
async fn load_index(b: &Store, key: &HourKey) -> Result<HashSet<String>> {
    let Some(commit) = b.commit(key).await? else { return Ok(HashSet::new()) };
    let index = layout::hour_object(key, &commit.manifest.ids_index);
    // Not published yet: the index is still at its staged name.
    let staged = commit.copies.iter().find(|c| c.to == index.as_ref()).map(|c| Path::from(c.from.as_str()));
    match b.get(&index).await? {
        Some(_) => b.read_ids(&index).await,
        None => match staged {
            Some(from) => b.read_ids(&from).await,
            None => Ok(HashSet::new()),
        },
    }
}

/// Adds to `ids` the late records of `key` not in `seen` yet; returns whether any was new.
async fn load_late(
    b: &Store,
    key: &HourKey,
    ids: &mut HashSet<String>,
    seen: &mut HashSet<String>,
) -> Result<bool> {
    let dir = layout::dedup_dir(key);
    let mut new = false;
    for name in b.list(&dir).await? {
        if seen.insert(name.clone()) {
            ids.extend(b.read_ids(&Path::from(format!("{dir}/{name}"))).await?);
            new = true;
        }
    }
    Ok(new)
}

/// One hour's record as loaded: its ids and the late records read.
struct Loaded {
    ids: HashSet<String>,
    late: HashSet<String>,
    used: u64,
}

impl Loaded {
    async fn load(b: &Store, key: &HourKey) -> Result<Loaded> {
        let mut l = Loaded { ids: load_index(b, key).await?, late: HashSet::new(), used: 0 };
        load_late(b, key, &mut l.ids, &mut l.late).await?;
        Ok(l)
    }

    /// Whether `id` is in the record; a miss looks for late records written since the load
    /// (a later hour closing adds them at any time).
    async fn contains(&mut self, b: &Store, key: &HourKey, id: &str) -> Result<bool> {
        if self.ids.contains(id) {
            return Ok(true);
        }
        if load_late(b, key, &mut self.ids, &mut self.late).await? {
            return Ok(self.ids.contains(id));
        }
        Ok(false)
    }
}

/// Records loaded during one close, each at most once.
pub(crate) struct Probe {
    b: Store,
    loaded: HashMap<HourKey, Loaded>,
}

impl Probe {
    pub(crate) fn new(b: Store) -> Self {
        Probe { b, loaded: HashMap::new() }
    }

    /// Whether `id` is in the dedup record of `key`.
    pub(crate) async fn contains(&mut self, key: &HourKey, id: &str) -> Result<bool> {
        if !self.loaded.contains_key(key) {
            let l = Loaded::load(&self.b, key).await?;
            self.loaded.insert(key.clone(), l);
        }
        Ok(self.loaded.get(key).is_some_and(|l| l.ids.contains(id)))
    }
}

/// A bounded cache of dedup records (least recently used out).
pub(crate) struct Records {
    capacity: usize,
    clock: u64,
    map: HashMap<HourKey, Loaded>,
}

impl Records {
    /// A cache of at most `capacity` hours' records (at least 1).
    pub(crate) fn new(capacity: usize) -> Self {
        Records { capacity: capacity.max(1), clock: 0, map: HashMap::new() }
    }

    /// Whether `id` is in the record of `key`, loading it if it is not cached.
    pub(crate) async fn contains(&mut self, b: &Store, key: &HourKey, id: &str) -> Result<bool> {
        self.clock += 1;
        if !self.map.contains_key(key) {
            let l = Loaded::load(b, key).await?;
            if self.map.len() >= self.capacity
                && let Some(old) = self.map.iter().min_by_key(|(_, l)| l.used).map(|(k, _)| k.clone())
            {
                self.map.remove(&old);
            }
            self.map.insert(key.clone(), l);
        }
        let Some(l) = self.map.get_mut(key) else { return Ok(false) };
        l.used = self.clock;
        l.contains(b, key, id).await
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
