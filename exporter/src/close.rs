//! Closing an hour: merge its part files by id (dropping duplicates), write the data files
//! and the id index, then the `_SUCCESS` manifest, last. Every object is created with a
//! create-only precondition, so a retry after a crash or a second replica racing to close the
//! same hour never overwrites anything: the manifest that exists first wins, and data files
//! it does not list are ignored by readers.

use std::collections::HashSet;

use event_model::{Event, format_rfc3339};
use prost_types::Timestamp;

use crate::core::{Core, now_secs};
use crate::error::Result;
use crate::format;
use crate::manifest::{self, BucketKey, FileEntry, IDS_PREFIX, MANIFEST, Manifest};
use crate::store::{Created, ids_index};

fn rfc3339(seconds: i64) -> String {
    format_rfc3339(&Timestamp { seconds, nanos: 0 })
}

impl Core {
    /// Closes `key`, whose events are all written (nothing buffered or in flight).
    pub(crate) async fn close(&mut self, key: &BucketKey) -> Result<()> {
        let names = self.buckets.list(key).await?;
        if names.iter().any(|n| n == MANIFEST) {
            self.open.remove(key);
            self.closed.insert(key.clone(), None);
            return Ok(());
        }
        let fmt = self.cfg.files.format;
        let mut parts: Vec<String> = names.into_iter().filter(|n| n.starts_with("part-")).collect();
        parts.sort();
        let mut events: Vec<Event> = Vec::new();
        for name in &parts {
            let bytes = self.buckets.read(&manifest::object(key, name)).await?;
            events.extend(format::decode_file(fmt, &bytes)?);
        }
        events.sort_by(|a, b| a.id.cmp(&b.id));
        let before = events.len();
        events.dedup_by(|a, b| a.id == b.id);
        let merged_duplicates = (before - events.len()) as u64;
        let late = events
            .iter()
            .filter(|e| e.event_time.is_some_and(|t| t.seconds.div_euclid(3600) * 3600 != key.1))
            .count() as u64;
        let Some(spec) = self.registry.event_type(&key.0).cloned() else { return Ok(()) };
        let mut files = Vec::new();
        for (n, chunk) in events.chunks(self.cfg.files.max_events.max(1)).enumerate() {
            let name = format!("data-{}-{n:05}{}", self.replica, fmt.extension());
            let encoded = format::encode_file(fmt, self.cfg.files.codec, &spec, chunk)?;
            let bytes = encoded.bytes.len() as u64;
            self.buckets.create(&manifest::object(key, &name), encoded.bytes).await;
            files.push(FileEntry { name, events: chunk.len() as u64, bytes, checksum: encoded.checksum });
        }
        let ids_name = format!("{IDS_PREFIX}{}", self.replica);
        self.buckets
            .create(&manifest::object(key, &ids_name), ids_index(events.iter().map(|e| e.id.as_str())))
            .await;
        let duplicates = merged_duplicates + self.open.get(key).map_or(0, |b| b.duplicates);
        let m = Manifest {
            event_type: key.0.clone(),
            hour: rfc3339(key.1),
            event_count: events.len() as u64,
            files,
            ids_index: ids_name,
            parts_merged: parts,
            duplicates_dropped: duplicates,
            late_events: late,
            watermark: rfc3339(self.watermark),
            closed_at: rfc3339(now_secs()),
            closed_by: self.replica.clone(),
        };
        let body = serde_json::to_vec_pretty(&m).unwrap_or_default();
        match self.buckets.create(&manifest::object(key, MANIFEST), body.into()).await {
            Created::Now => {
                self.metrics.hours_closed.inc();
                tracing::info!(bucket = %manifest::prefix(key), events = m.event_count, duplicates, late, "hour closed");
            }
            Created::Existed => {
                tracing::info!(bucket = %manifest::prefix(key), "hour closed by another replica first")
            }
        }
        self.open.remove(key);
        let ids: HashSet<String> = events.into_iter().map(|e| e.id).collect();
        self.closed.insert(key.clone(), Some(ids));
        Ok(())
    }
}
