//! Closing an hour (a task of its own, beside pulling and acknowledging): seal it, list its
//! staged parts, merge them by id (dropping duplicates, and late copies already in their own
//! hour's dedup record) into data files written under staging, check the seal is still held,
//! create the commit record, publish it (copy the files into the hour folder, `_SUCCESS` last)
//! and delete the hour's staging folder. See ARCHITECTURE.md ("The close protocol").

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

use event_model::{Event, EventType, format_rfc3339};
use object_store::path::Path;
use prost_types::Timestamp;

use crate::core::now_secs;
use crate::dedup;
use crate::error::{Error, Result};
use crate::format::{self, AvroCodec, FileFormat};
use crate::layout::{self, COMMIT, HourKey, PART_PREFIX};
use crate::manifest::{Commit, Copy, FileEntry, Manifest};
use crate::seal::{self, Sealing, Staleness};
use crate::store::{Created, Store, encode_ids};

const HOUR: i64 = 3600;

pub(crate) fn rfc3339(seconds: i64) -> String {
    format_rfc3339(&Timestamp { seconds, nanos: 0 })
}

/// Everything a close needs, owned by its task.
pub(crate) struct CloseJob {
    pub key: HourKey,
    pub spec: Arc<EventType>,
    pub format: FileFormat,
    pub codec: AvroCodec,
    pub max_events: usize,
    /// This process (`<replica>-<incarnation>`).
    pub me: String,
    /// A number unique to this close attempt within the process (in object names).
    pub attempt: u64,
    /// The fleet watermark that made the hour due.
    pub watermark: i64,
    /// Duplicates this replica dropped for the hour before they were written.
    pub duplicates_seen: u64,
    pub stale: Staleness,
    /// The staging folder is kept until this long after the hour's end.
    pub keep_staging_secs: i64,
    pub store: Store,
}

/// How a close ended.
#[derive(Debug)]
pub(crate) enum Closed {
    /// The hour is closed (`_SUCCESS` exists); `by_me` when this task wrote its commit.
    Done { by_me: bool, events: u64 },
    /// Another live closer holds the seal.
    Busy(String),
    /// The seal was taken over while this task worked; it published nothing.
    Fenced,
}

impl CloseJob {
    /// Runs the close.
    pub(crate) async fn run(self) -> Result<Closed> {
        let key = self.key.clone();
        if let Some(commit) = self.store.commit(&key).await? {
            self.finish(&commit).await?;
            return Ok(Closed::Done { by_me: false, events: commit.manifest.event_count });
        }
        let generation = match seal::acquire(&self.store, &key, &self.me, &self.stale).await? {
            Sealing::Held(g) => g,
            Sealing::Busy(holder) => return Ok(Closed::Busy(holder)),
        };
        // Listing only after the seal exists: a part made durable before it is listed; one
        // made durable after it sees the seal and waits for the commit.
        let staging = Path::from(layout::staging_dir(&key));
        let mut parts: Vec<String> =
            self.store.list(&staging).await?.into_iter().filter(|n| n.starts_with(PART_PREFIX)).collect();
        parts.sort();
        let (commit, mine) = self.merge(&parts, generation).await?;
        if !seal::still_holds(&self.store, &key, generation).await? {
            tracing::warn!(hour = %layout::hour_dir(&key), "seal taken over while closing; publishing nothing");
            self.delete_own(&mine).await;
            return Ok(Closed::Fenced);
        }
        let body = bytes::Bytes::from(serde_json::to_vec_pretty(&commit).unwrap_or_default());
        let commit_path = layout::hour_object(&key, COMMIT);
        let (commit, by_me) = match self.store.create(&commit_path, body).await {
            Ok(Created::Now | Created::Existed) => (commit, true),
            Err(Error::Conflict { .. }) => {
                // Another closer committed first: its record is the hour's output.
                self.delete_own(&mine).await;
                let theirs = self.store.commit(&key).await?.ok_or_else(|| Error::Manifest {
                    path: commit_path.to_string(),
                    reason: "vanished".into(),
                })?;
                (theirs, false)
            }
            Err(e) => return Err(e),
        };
        self.finish(&commit).await?;
        Ok(Closed::Done { by_me, events: commit.manifest.event_count })
    }

    /// Publishes `commit` and deletes the hour's staging folder.
    async fn finish(&self, commit: &Commit) -> Result<()> {
        seal::publish(&self.store, &self.key, commit).await?;
        if self.key.1 + HOUR + self.keep_staging_secs > now_secs() {
            return Ok(());
        }
        let n = self.store.delete_all(&Path::from(layout::staging_dir(&self.key))).await?;
        tracing::debug!(hour = %layout::hour_dir(&self.key), deleted = n, "staging deleted");
        Ok(())
    }

    async fn delete_own(&self, names: &[Path]) {
        for p in names {
            if let Err(e) = self.store.delete(p).await {
                tracing::debug!(path = %p, error = %e, "cannot delete an abandoned close output");
            }
        }
    }

    /// Merges `parts` into data files, the id index and the late records under staging;
    /// returns the commit record naming them and the staged objects written.
    async fn merge(&self, parts: &[String], generation: u32) -> Result<(Commit, Vec<Path>)> {
        let key = &self.key;
        let tag = format!("{}-a{}", self.me, self.attempt);
        // The parts' bytes (compressed) are held; their events are decoded a block at a time.
        let mut bytes = Vec::with_capacity(parts.len());
        for name in parts {
            bytes.push(self.store.read(&layout::staging_object(key, name)).await?);
        }
        let readers = parts
            .iter()
            .zip(&bytes)
            .map(|(name, b)| format::read_events(format_of(name).unwrap_or(self.format), b))
            .collect::<Result<Vec<_>, _>>()?;
        let mut merge = Merge::new(readers)?;
        let mut probe = dedup::Probe::new(self.store.clone());
        let (mut ids, mut files, mut chunk) = (Vec::<String>::new(), Vec::new(), Vec::new());
        let mut late_by_hour: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        let (mut late, mut merged_duplicates, mut late_duplicates) = (0u64, 0u64, 0u64);
        let (mut copies, mut written) = (Vec::new(), Vec::new());
        let mut last: Option<String> = None;
        let max = self.max_events.max(1);
        while let Some(e) = merge.next_event()? {
            if last.as_deref() == Some(e.id.as_str()) {
                merged_duplicates += 1;
                continue;
            }
            last = Some(e.id.clone());
            let own = e.event_time.map(|t| t.seconds.div_euclid(HOUR) * HOUR);
            if let Some(orig) = own.filter(|h| *h < key.1) {
                // A late event: drop it if its first copy is in the dedup record of its hour.
                if probe.contains(&(key.0.clone(), orig), &e.id).await? {
                    late_duplicates += 1;
                    continue;
                }
                late += 1;
                late_by_hour.entry(orig).or_default().push(e.id.clone());
            }
            ids.push(e.id.clone());
            chunk.push(e);
            if chunk.len() == max {
                files.push(self.stage_data(files.len(), &tag, &chunk, &mut copies, &mut written).await?);
                chunk.clear();
            }
        }
        if !chunk.is_empty() {
            files.push(self.stage_data(files.len(), &tag, &chunk, &mut copies, &mut written).await?);
        }
        drop(chunk);
        let ids_name = format!("_ids-{tag}");
        let staged = layout::staging_object(key, &format!("ids-{tag}"));
        self.store.create(&staged, encode_ids(ids.iter().map(String::as_str))).await?;
        copies.push(Copy { from: staged.to_string(), to: layout::hour_object(key, &ids_name).to_string() });
        written.push(staged);
        for (orig, mut late_ids) in late_by_hour {
            late_ids.sort_unstable();
            let name = format!("late-{}-{tag}", layout::hour_tag(orig));
            let staged = layout::staging_object(key, &name);
            self.store.create(&staged, encode_ids(late_ids.iter().map(String::as_str))).await?;
            let to = format!(
                "{}/late-{}-{tag}",
                layout::dedup_dir(&(key.0.clone(), orig)),
                layout::hour_tag(key.1)
            );
            copies.push(Copy { from: staged.to_string(), to });
            written.push(staged);
        }
        let manifest = Manifest {
            event_type: key.0.clone(),
            hour: rfc3339(key.1),
            event_count: ids.len() as u64,
            files,
            ids_index: ids_name,
            parts_merged: parts.to_vec(),
            duplicates_dropped: merged_duplicates + late_duplicates + self.duplicates_seen,
            late_events: late,
            watermark: rfc3339(self.watermark),
            closed_at: rfc3339(now_secs()),
            closed_by: self.me.clone(),
        };
        Ok((Commit { seal: generation, copies, manifest }, written))
    }

    /// Writes data file `n` under staging and names its copy into the hour folder.
    async fn stage_data(
        &self,
        n: usize,
        tag: &str,
        events: &[Event],
        copies: &mut Vec<Copy>,
        written: &mut Vec<Path>,
    ) -> Result<FileEntry> {
        let ext = self.format.extension();
        let encoded = format::encode_file(self.format, self.codec, &self.spec, events)?;
        let bytes = encoded.bytes.len() as u64;
        let staged = layout::staging_object(&self.key, &format!("merged-{tag}-{n:05}{ext}"));
        self.store.create(&staged, encoded.bytes).await?;
        let name = format!("data-{tag}-{n:05}{ext}");
        copies.push(Copy { from: staged.to_string(), to: layout::hour_object(&self.key, &name).to_string() });
        written.push(staged);
        Ok(FileEntry { name, events: events.len() as u64, bytes, checksum: encoded.checksum })
    }
}

/// The format of a data or part file, by its name.
pub(crate) fn format_of(name: &str) -> Option<FileFormat> {
    [FileFormat::Avro, FileFormat::NdjsonGzip].into_iter().find(|f| name.ends_with(f.extension()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{encode_file, read_events};

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
    fn merges_sorted_files_of_mixed_formats_by_id_with_duplicates_adjacent() {
        let spec = event_model::Registry::from_toml_str("[types.play]\ntopic = \"events-play\"\n")
            .expect("registry")
            .event_type("play")
            .cloned()
            .expect("type");
        let formats = [FileFormat::Avro, FileFormat::NdjsonGzip, FileFormat::Avro, FileFormat::NdjsonGzip];
        let files: Vec<_> = [vec!["a", "c", "e"], vec!["b", "c", "f"], vec![], vec!["a", "d"]]
            .iter()
            .zip(formats)
            .map(|(ids, f)| {
                let events: Vec<Event> = ids.iter().map(|i| ev(i)).collect();
                (f, encode_file(f, AvroCodec::Zstd, &spec, &events).expect("encode").bytes)
            })
            .collect();
        let readers =
            files.iter().map(|(f, b)| read_events(*f, b)).collect::<Result<Vec<_>, _>>().expect("readers");
        let mut m = Merge::new(readers).expect("merge");
        let mut out = Vec::new();
        while let Some(e) = m.next_event().expect("next") {
            out.push(e);
        }
        let ids: Vec<&str> = out.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["a", "a", "b", "c", "c", "d", "e", "f"]);
        assert_eq!(format_of("part-x-1.ndjson.gz"), Some(FileFormat::NdjsonGzip));
        assert_eq!(format_of("part-x-1.avro"), Some(FileFormat::Avro));
        assert_eq!(format_of("part-x-1.csv"), None);
    }
}
