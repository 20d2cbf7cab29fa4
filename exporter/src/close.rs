//! Closing an hour: merge its part files by id (dropping duplicates), write the data files
//! and the id index, then the `_SUCCESS` manifest, last. Every object is created with a
//! create-only precondition, so a retry after a crash or a second replica racing to close the
//! same hour never overwrites anything: the manifest that exists first wins, and data files
//! it does not list are ignored by readers.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use event_model::{Event, format_rfc3339};
use prost_types::Timestamp;

use crate::core::{Core, now_secs};
use crate::error::Result;
use crate::format;
use crate::manifest::{self, BucketKey, FileEntry, IDS_PREFIX, MANIFEST, Manifest};
use crate::store::Created;

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
        let Some(spec) = self.registry.event_type(&key.0).cloned() else { return Ok(()) };
        // The parts' bytes (compressed) are held; their events are decoded a block at a time
        // and merged by id, and each data file is written as soon as it is full.
        let mut bytes = Vec::with_capacity(parts.len());
        for name in &parts {
            bytes.push(self.buckets.read(&manifest::object(key, name)).await?);
        }
        let mut merge =
            Merge::new(bytes.iter().map(|b| format::read_events(fmt, b)).collect::<Result<_, _>>()?)?;
        let mut ids = IdsIndex::default();
        let (mut files, mut chunk) = (Vec::new(), Vec::new());
        let (mut count, mut late, mut merged_duplicates) = (0u64, 0u64, 0u64);
        let max = self.cfg.files.max_events.max(1);
        while let Some(e) = merge.next_event()? {
            if ids.last() == Some(e.id.as_str()) {
                merged_duplicates += 1;
                continue;
            }
            ids.push(&e.id);
            count += 1;
            if e.event_time.is_some_and(|t| t.seconds.div_euclid(3600) * 3600 != key.1) {
                late += 1;
            }
            chunk.push(e);
            if chunk.len() == max {
                files.push(self.write_data_file(key, &spec, files.len(), &chunk).await?);
                chunk.clear();
            }
        }
        if !chunk.is_empty() {
            files.push(self.write_data_file(key, &spec, files.len(), &chunk).await?);
        }
        drop(chunk);
        let ids_name = format!("{IDS_PREFIX}{}", self.replica);
        self.buckets.create(&manifest::object(key, &ids_name), ids.finish()).await;
        let duplicates = merged_duplicates + self.open.get(key).map_or(0, |b| b.duplicates);
        // Ids the bounded dedup cache let go of: their duplicates were dropped by the merge.
        let forgotten = self.open.get(key).map_or(0, |b| b.written.forgotten());
        let m = Manifest {
            event_type: key.0.clone(),
            hour: rfc3339(key.1),
            event_count: count,
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
                tracing::info!(
                    bucket = %manifest::prefix(key),
                    events = m.event_count,
                    duplicates,
                    merged_duplicates,
                    forgotten,
                    late,
                    "hour closed"
                );
            }
            Created::Existed => {
                tracing::info!(bucket = %manifest::prefix(key), "hour closed by another replica first")
            }
        }
        self.open.remove(key);
        // The id index is the record; it is read back only if a late event needs it.
        self.closed.insert(key.clone(), None);
        Ok(())
    }

    /// Writes data file number `n` of `key` (create-only) and returns its manifest entry.
    async fn write_data_file(
        &self,
        key: &BucketKey,
        spec: &event_model::EventType,
        n: usize,
        events: &[Event],
    ) -> Result<FileEntry> {
        let fmt = self.cfg.files.format;
        let name = format!("data-{}-{n:05}{}", self.replica, fmt.extension());
        let encoded = format::encode_file(fmt, self.cfg.files.codec, spec, events)?;
        let bytes = encoded.bytes.len() as u64;
        self.buckets.create(&manifest::object(key, &name), encoded.bytes).await;
        Ok(FileEntry { name, events: events.len() as u64, bytes, checksum: encoded.checksum })
    }
}

/// A k-way merge by id of event streams that are each sorted by id.
struct Merge<'a> {
    readers: Vec<format::EventReader<'a>>,
    heads: Vec<Option<Event>>,
    heap: BinaryHeap<Reverse<(String, usize)>>,
}

impl<'a> Merge<'a> {
    fn new(readers: Vec<format::EventReader<'a>>) -> Result<Self> {
        let mut m = Merge { heads: readers.iter().map(|_| None).collect(), readers, heap: BinaryHeap::new() };
        for i in 0..m.readers.len() {
            m.refill(i)?;
        }
        Ok(m)
    }

    fn refill(&mut self, i: usize) -> Result<()> {
        if let Some(e) = self.readers[i].next().transpose()? {
            self.heap.push(Reverse((e.id.clone(), i)));
            self.heads[i] = Some(e);
        }
        Ok(())
    }

    /// The next event in id order (duplicates come one after the other).
    fn next_event(&mut self) -> Result<Option<Event>> {
        let Some(Reverse((_, i))) = self.heap.pop() else { return Ok(None) };
        let e = self.heads[i].take();
        self.refill(i)?;
        Ok(e)
    }
}

/// The gzipped, newline-separated id index, built as sorted ids arrive.
struct IdsIndex {
    z: flate2::write::GzEncoder<Vec<u8>>,
    last: Option<String>,
}

impl Default for IdsIndex {
    fn default() -> Self {
        IdsIndex { z: flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default()), last: None }
    }
}

impl IdsIndex {
    fn last(&self) -> Option<&str> {
        self.last.as_deref()
    }

    fn push(&mut self, id: &str) {
        use std::io::Write as _;
        let _ = self.z.write_all(id.as_bytes());
        let _ = self.z.write_all(b"\n");
        match &mut self.last {
            Some(l) => id.clone_into(l),
            None => self.last = Some(id.to_owned()),
        }
    }

    fn finish(self) -> bytes::Bytes {
        bytes::Bytes::from(self.z.finish().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{AvroCodec, FileFormat, encode_file, read_events};

    fn ev(id: &str) -> Event {
        Event {
            id: id.to_owned(),
            r#type: "play".to_owned(),
            schema_version: 1,
            event_time: Some(Timestamp { seconds: 1_795_428_000, nanos: 0 }),
            ..Event::default()
        }
    }

    #[test]
    fn merges_sorted_files_by_id_with_duplicates_adjacent() {
        let spec = event_model::Registry::from_toml_str("[types.play]\ntopic = \"events-play\"\n")
            .expect("registry")
            .event_type("play")
            .cloned()
            .expect("type");
        let files: Vec<_> = [vec!["a", "c", "e"], vec!["b", "c", "f"], vec![], vec!["a", "d"]]
            .iter()
            .map(|ids| {
                let events: Vec<Event> = ids.iter().map(|i| ev(i)).collect();
                encode_file(FileFormat::Avro, AvroCodec::Zstd, &spec, &events).expect("encode").bytes
            })
            .collect();
        let readers = files.iter().map(|b| read_events(FileFormat::Avro, b)).collect::<Result<Vec<_>, _>>();
        let mut m = Merge::new(readers.expect("readers")).expect("merge");
        let mut out = Vec::new();
        while let Some(e) = m.next_event().expect("next") {
            out.push(e.id);
        }
        assert_eq!(out, ["a", "a", "b", "c", "c", "d", "e", "f"]);

        let mut idx = IdsIndex::default();
        for id in ["a", "b"] {
            idx.push(id);
        }
        assert_eq!(idx.last(), Some("b"));
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&idx.finish()[..]), &mut text)
            .expect("gunzip");
        assert_eq!(text, "a\nb\n");
    }
}
