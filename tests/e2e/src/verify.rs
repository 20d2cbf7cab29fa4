//! Checks the buckets against the sample log: every valid event exactly once in a closed hour,
//! nothing else, every manifest matching its files; the hour folders as a folder reader (Spark,
//! Hive, BigQuery external tables, DuckDB) reads them; and the end-to-end latency from a line's
//! write to the durable write of the part file holding its event.
//!
//! Objects under a top-level prefix starting with `_` (such as `_staging/`, work in progress)
//! are no part of the output and are ignored by both checks.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use event_model::{Event, ValueKind};
use exporter::format::{FileFormat, checksum, decode_file};
use exporter::manifest::{MANIFEST, Manifest};
use futures::TryStreamExt;
use object_store::{ObjectMeta, ObjectStore};

use crate::error::{Error, Result};
use crate::loggen::{HOUR, Written};

/// At most this many lost sequence numbers are listed.
const EXAMPLES: usize = 10;

/// The result of checking the buckets.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Verification {
    /// Valid events written to the log.
    pub events_written: u64,
    /// Of those, the ones found in closed buckets.
    pub events_exported: u64,
    /// Valid events in no closed bucket.
    pub lost: u64,
    /// Extra copies: a sample event or an event id found more than once.
    pub duplicates: u64,
    /// Events in closed buckets that the sample never wrote.
    pub unexpected: u64,
    /// Events in a bucket of another type or an earlier hour, or more events of earlier hours
    /// in a bucket than its manifest counts as late.
    pub misplaced: u64,
    /// Late events counted by the manifests.
    pub late: u64,
    /// Exported sample events with a U+FFFD replacement character in a field (from invalid
    /// UTF-8 in their line).
    pub repaired_utf8: u64,
    /// Closed buckets (manifests).
    pub buckets_closed: u64,
    /// Data files the manifests list, and their bytes.
    pub files: u64,
    /// Bytes of the listed data files.
    pub bytes: u64,
    /// What is wrong with manifests: sizes, checksums, counts, unreadable files.
    pub manifest_errors: Vec<String>,
    /// Some sequence numbers of lost events.
    pub lost_examples: Vec<u64>,
    /// Where the example lost events are, if anywhere: the staging objects (parts, late
    /// records, a closer's output) that hold them, e.g. of an hour that is still open.
    pub lost_whereabouts: Vec<String>,
    /// Per exported event, milliseconds from its line's write to the first part file holding
    /// it, sorted. Empty unless asked for.
    pub latencies_ms: Vec<i64>,
    /// When the last part file holding a sample event was written, Unix milliseconds.
    pub last_durable_ms: Option<i64>,
    /// Folder reader: sample events read from the closed hour folders, every file whose name
    /// does not start with `_` or `.` (not only the files the manifests list), copies included.
    pub folder_events: u64,
    /// Folder reader: extra copies of a sample event or an event id across all hour folders.
    pub folder_duplicates: u64,
    /// Folder reader: valid sample events in no closed hour folder.
    pub folder_lost: u64,
    /// Folder reader: files in a closed hour folder that its manifest does not list (e.g. part
    /// files left beside the data files).
    pub extra_files: Vec<String>,
    /// Folder reader: folders whose files hold another number of events than their manifest's
    /// `event_count`, and files it could not decode.
    pub folder_errors: Vec<String>,
    /// Hours without a `_SUCCESS` between the first and the last closed hour of a type.
    pub missing_hours: Vec<String>,
}

impl Verification {
    /// Nothing lost, duplicated, unexpected or misplaced, every manifest consistent, a folder
    /// reader sees every event once and nothing the manifests do not list, and no hour between
    /// a type's first and last closed hour lacks its `_SUCCESS`.
    pub fn ok(&self) -> bool {
        self.lost == 0
            && self.duplicates == 0
            && self.unexpected == 0
            && self.misplaced == 0
            && self.manifest_errors.is_empty()
            && self.folder_ok()
    }

    /// The folder reader's part of [`ok`](Self::ok): every sample event read exactly once
    /// from the closed hour folders, no file a manifest does not list, per-folder counts equal
    /// to the manifests', and no hour missing between a type's first and last closed hour.
    pub fn folder_ok(&self) -> bool {
        self.folder_duplicates == 0
            && self.folder_lost == 0
            && self.extra_files.is_empty()
            && self.folder_errors.is_empty()
            && self.missing_hours.is_empty()
    }

    /// The `q` quantile (0..=1) of the latencies, if any were measured.
    pub fn latency_quantile_ms(&self, q: f64) -> Option<i64> {
        let n = self.latencies_ms.len();
        (n > 0).then(|| self.latencies_ms[((n - 1) as f64 * q).round() as usize])
    }
}

/// The sequence number a sample event carries (`track=t<seq>` or `query=q<seq>`).
pub fn sample_seq(e: &Event) -> Option<u64> {
    let (field, prefix) = match e.r#type.as_str() {
        "play" => ("track", 't'),
        "search" => ("query", 'q'),
        _ => return None,
    };
    match e.fields.get(field)?.kind.as_ref()? {
        ValueKind::StringValue(s) => s.strip_prefix(prefix)?.parse().ok(),
        _ => None,
    }
}

fn format_of(name: &str) -> Option<FileFormat> {
    if name.ends_with(FileFormat::Avro.extension()) {
        Some(FileFormat::Avro)
    } else if name.ends_with(FileFormat::NdjsonGzip.extension()) {
        Some(FileFormat::NdjsonGzip)
    } else {
        None
    }
}

/// Whether an object is hidden from readers by its first path segment (`_staging/...`).
fn outside_output(path: &str) -> bool {
    path.split('/').next().is_some_and(|first| first.starts_with('_') || first.starts_with('.'))
}

/// `play/2026-11-23/18/_SUCCESS` → (`play`, hour start); `None` for an object outside the
/// output (a first segment starting with `_`, e.g. `_staging/play/...`).
fn bucket_of(path: &str) -> Option<(String, i64)> {
    let mut it = path.split('/');
    let t = it.next().filter(|t| !t.starts_with('_') && !t.starts_with('.'))?;
    let date = it.next()?;
    let hh: i64 = it.next()?.parse().ok()?;
    let d = time::Date::parse(date, time::macros::format_description!("[year]-[month]-[day]")).ok()?;
    let midnight = d.midnight().assume_utc().unix_timestamp();
    Some((t.to_owned(), midnight + hh * HOUR))
}

async fn get(store: &dyn ObjectStore, path: &object_store::path::Path) -> Result<bytes::Bytes> {
    let r = store.get(path).await.map_err(|e| Error::Store(format!("get {path}: {e}")))?;
    r.bytes().await.map_err(|e| Error::Store(format!("read {path}: {e}")))
}

/// Checks every closed bucket in `store` against `written`; with `latency`, also decodes the
/// part files to measure end-to-end latency.
pub async fn verify(store: &dyn ObjectStore, written: &[Written], latency: bool) -> Result<Verification> {
    let objects: Vec<ObjectMeta> =
        store.list(None).try_collect().await.map_err(|e| Error::Store(format!("list: {e}")))?;
    let mut v = Verification { events_written: written.len() as u64, ..Verification::default() };
    let mut seen = vec![0u32; written.len()];
    let mut ids: HashMap<String, u32> = HashMap::new();
    let output = || objects.iter().filter(|m| !outside_output(m.location.as_ref()));
    for meta in output().filter(|m| m.location.filename() == Some(MANIFEST)) {
        let loc = meta.location.to_string();
        let Some((btype, bhour)) = bucket_of(&loc) else {
            v.manifest_errors.push(format!("{loc}: not in a <type>/<date>/<hour>/ bucket"));
            continue;
        };
        let manifest: Manifest = match serde_json::from_slice(&get(store, &meta.location).await?) {
            Ok(m) => m,
            Err(e) => {
                v.manifest_errors.push(format!("{loc}: not a manifest: {e}"));
                continue;
            }
        };
        v.buckets_closed += 1;
        v.late += manifest.late_events;
        let dir = loc.trim_end_matches(MANIFEST);
        let (mut count, mut late_here) = (0u64, 0u64);
        for f in &manifest.files {
            let path = object_store::path::Path::from(format!("{dir}{}", f.name));
            let bytes = match get(store, &path).await {
                Ok(b) => b,
                Err(e) => {
                    v.manifest_errors.push(format!("{loc} lists {}: {e}", f.name));
                    continue;
                }
            };
            v.files += 1;
            v.bytes += bytes.len() as u64;
            if bytes.len() as u64 != f.bytes || checksum(&bytes) != f.checksum {
                v.manifest_errors.push(format!("{path}: size or checksum differs from the manifest"));
            }
            let events = match format_of(&f.name).map(|fmt| decode_file(fmt, &bytes)) {
                Some(Ok(e)) => e,
                Some(Err(e)) => {
                    v.manifest_errors.push(format!("{path}: {e}"));
                    continue;
                }
                None => {
                    v.manifest_errors.push(format!("{path}: unknown file format"));
                    continue;
                }
            };
            if events.len() as u64 != f.events {
                v.manifest_errors.push(format!(
                    "{path}: {} events, the manifest says {}",
                    events.len(),
                    f.events
                ));
            }
            count += events.len() as u64;
            for e in events {
                let n = ids.entry(e.id.clone()).or_default();
                *n += 1;
                if *n > 1 {
                    v.duplicates += 1;
                }
                let Some(w) = sample_seq(&e).and_then(|s| written.get(s as usize).map(|w| (s, w))) else {
                    v.unexpected += 1;
                    continue;
                };
                let (seq, w) = w;
                seen[seq as usize] += 1;
                if e.fields
                    .values()
                    .any(|f| matches!(&f.kind, Some(ValueKind::StringValue(s)) if s.contains('\u{FFFD}')))
                {
                    v.repaired_utf8 += 1;
                }
                if seen[seq as usize] > 1 && *n == 1 {
                    // The same line under a second id.
                    v.duplicates += 1;
                }
                if w.event_type != btype || bhour < w.hour {
                    v.misplaced += 1;
                } else if bhour > w.hour {
                    late_here += 1;
                }
            }
        }
        if count != manifest.event_count {
            v.manifest_errors.push(format!(
                "{loc}: files hold {count} events, the manifest says {}",
                manifest.event_count
            ));
        }
        v.misplaced += late_here.saturating_sub(manifest.late_events);
    }
    for (seq, n) in seen.iter().enumerate() {
        if *n == 0 {
            v.lost += 1;
            if v.lost_examples.len() < EXAMPLES {
                v.lost_examples.push(seq as u64);
            }
        } else {
            v.events_exported += 1;
        }
    }
    if !v.lost_examples.is_empty() {
        locate_lost(store, &objects, &mut v).await?;
    }
    read_folders(store, &objects, written, &mut v).await?;
    if latency {
        measure_latency(store, &objects, written, &mut v).await?;
    }
    Ok(v)
}

/// Reads the closed hour folders the way a folder reader does: in every `<type>/<date>/<HH>/`
/// with a `_SUCCESS`, every file whose name (and every path segment below the hour) does not
/// start with `_` or `.`, whatever the manifest lists. Counts each sample event across all
/// folders, compares each folder's count with its manifest's `event_count`, names the files
/// the manifest does not list, and the hours without a `_SUCCESS` between a type's first and
/// last closed hour.
async fn read_folders(
    store: &dyn ObjectStore,
    objects: &[ObjectMeta],
    written: &[Written],
    v: &mut Verification,
) -> Result<()> {
    /// Per hour folder: its manifest, and the visible files in it.
    #[derive(Default)]
    struct Folder {
        manifest: Option<object_store::path::Path>,
        files: Vec<(String, object_store::path::Path)>,
    }
    let mut folders: BTreeMap<(String, i64), Folder> = BTreeMap::new();
    for meta in objects {
        let loc = meta.location.as_ref();
        let Some(key) = bucket_of(loc) else { continue };
        // Below `<type>/<date>/<HH>/`: the file's name, possibly in subfolders.
        let inner: Vec<&str> = loc.split('/').skip(3).collect();
        let folder = folders.entry(key).or_default();
        if inner == [MANIFEST] {
            folder.manifest = Some(meta.location.clone());
        } else if !inner.is_empty() && !inner.iter().any(|s| s.starts_with('_') || s.starts_with('.')) {
            folder.files.push((inner.join("/"), meta.location.clone()));
        }
    }
    let mut seen = vec![0u32; written.len()];
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut closed: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for ((btype, bhour), folder) in &folders {
        let Some(manifest_path) = &folder.manifest else { continue };
        closed.entry(btype.clone()).or_default().insert(*bhour);
        let name = event_model::HourBucket::at(btype, *bhour).path();
        let manifest: Option<Manifest> = serde_json::from_slice(&get(store, manifest_path).await?).ok();
        let listed: BTreeSet<&str> =
            manifest.iter().flat_map(|m| m.files.iter().map(|f| f.name.as_str())).collect();
        let mut count = 0u64;
        for (file, path) in &folder.files {
            if !listed.contains(file.as_str()) {
                v.extra_files.push(path.to_string());
            }
            let bytes = get(store, path).await?;
            let events = match format_of(file).map(|fmt| decode_file(fmt, &bytes)) {
                Some(Ok(e)) => e,
                Some(Err(e)) => {
                    v.folder_errors.push(format!("{path}: a folder reader cannot decode it: {e}"));
                    continue;
                }
                None => {
                    v.folder_errors.push(format!("{path}: a folder reader reads it, of unknown format"));
                    continue;
                }
            };
            count += events.len() as u64;
            for e in events {
                let n = ids.entry(e.id.clone()).or_default();
                *n += 1;
                let Some(seq) = sample_seq(&e).filter(|s| (*s as usize) < written.len()) else {
                    if *n > 1 {
                        v.folder_duplicates += 1;
                    }
                    continue;
                };
                v.folder_events += 1;
                seen[seq as usize] += 1;
                if *n > 1 || seen[seq as usize] > 1 {
                    v.folder_duplicates += 1;
                }
            }
        }
        match &manifest {
            Some(m) if m.event_count != count => v.folder_errors.push(format!(
                "{name}/: a folder reader reads {count} events, the manifest says {}",
                m.event_count
            )),
            Some(_) => {}
            None => v.folder_errors.push(format!("{name}/{MANIFEST}: not a manifest")),
        }
    }
    v.folder_lost = seen.iter().filter(|n| **n == 0).count() as u64;
    for (t, hours) in &closed {
        let (Some(first), Some(last)) = (hours.first(), hours.last()) else { continue };
        let mut h = *first;
        while h < *last {
            if !hours.contains(&h) {
                v.missing_hours.push(event_model::HourBucket::at(t, h).path());
            }
            h += HOUR;
        }
    }
    Ok(())
}

/// Fills `lost_whereabouts`: the staging objects that hold each example lost event.
async fn locate_lost(store: &dyn ObjectStore, objects: &[ObjectMeta], v: &mut Verification) -> Result<()> {
    let examples: BTreeSet<u64> = v.lost_examples.iter().copied().collect();
    let mut found: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for meta in objects.iter().filter(|m| outside_output(m.location.as_ref())) {
        let Some(fmt) = meta.location.filename().and_then(format_of) else { continue };
        let Ok(events) = decode_file(fmt, &get(store, &meta.location).await?) else { continue };
        for seq in events.iter().filter_map(sample_seq).filter(|s| examples.contains(s)) {
            found.entry(seq).or_default().push(meta.location.to_string());
        }
    }
    v.lost_whereabouts = examples
        .iter()
        .map(|seq| match found.get(seq) {
            Some(at) => format!("{seq}: staged in {}", at.join(", ")),
            None => format!("{seq}: in no stored object"),
        })
        .collect();
    Ok(())
}

/// The first part file (by modification time) holding each sample event gives its latency.
async fn measure_latency(
    store: &dyn ObjectStore,
    objects: &[ObjectMeta],
    written: &[Written],
    v: &mut Verification,
) -> Result<()> {
    let mut durable: Vec<Option<i64>> = vec![None; written.len()];
    for meta in objects.iter().filter(|m| m.location.filename().is_some_and(|n| n.starts_with("part-"))) {
        let Some(fmt) = meta.location.filename().and_then(format_of) else { continue };
        let at = meta.last_modified.timestamp_millis();
        let Ok(events) = decode_file(fmt, &get(store, &meta.location).await?) else { continue };
        for e in events {
            if let Some(slot) = sample_seq(&e).and_then(|s| durable.get_mut(s as usize)) {
                *slot = Some(slot.map_or(at, |t| t.min(at)));
            }
        }
    }
    v.latencies_ms = durable.iter().zip(written).filter_map(|(d, w)| d.map(|d| d - w.written_ms)).collect();
    v.latencies_ms.sort_unstable();
    v.last_durable_ms = durable.iter().flatten().max().copied();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_paths_parse() {
        assert_eq!(bucket_of("play/2026-11-23/10/_SUCCESS"), Some(("play".to_owned(), 1_795_428_000)));
        assert_eq!(bucket_of("play/x/10/_SUCCESS"), None);
        assert_eq!(bucket_of("_staging/play/2026-11-23/10/part-a.avro"), None);
        assert!(outside_output("_staging/play/2026-11-23/10/part-a.avro"));
        assert!(!outside_output("play/2026-11-23/10/part-a.avro"));
    }

    use event_model::Value;
    use exporter::format::AvroCodec;
    use exporter::manifest::FileEntry;
    use object_store::PutPayload;
    use object_store::memory::InMemory;
    use object_store::path::Path;

    /// Sample event `seq` of `play`.
    fn play(seq: u64) -> Event {
        let s = |x: String| Value { kind: Some(ValueKind::StringValue(x)) };
        Event {
            id: format!("id-{seq}"),
            r#type: "play".to_owned(),
            fields: [
                ("user".to_owned(), s("u1".to_owned())),
                ("track".to_owned(), s(format!("t{seq}"))),
                ("ms_played".to_owned(), Value { kind: Some(ValueKind::IntValue(1)) }),
            ]
            .into_iter()
            .collect(),
            event_time: Some(event_model::timestamp_from_system_time(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(H as u64),
            )),
            received_time: Some(event_model::timestamp_from_system_time(std::time::SystemTime::now())),
            ..Event::default()
        }
    }

    /// Writes a closed `play` hour at `hour` holding `seqs` in one data file, and the same
    /// events in a part file at `part_at` (a path inside the store).
    async fn closed_hour(store: &InMemory, hour: i64, seqs: &[u64], part_at: Option<String>) {
        let registry = event_model::Registry::from_toml_str(DEFAULT).expect("registry");
        let spec = registry.event_type("play").expect("play");
        let events: Vec<Event> = seqs.iter().map(|s| play(*s)).collect();
        let f = exporter::format::encode_file(FileFormat::Avro, AvroCodec::default(), spec, &events)
            .expect("encode");
        let dir = event_model::HourBucket::at("play", hour).path();
        let put = |p: String, b: bytes::Bytes| async move {
            store.put(&Path::from(p), PutPayload::from(b)).await.expect("put");
        };
        put(format!("{dir}/data-a-00000.avro"), f.bytes.clone()).await;
        if let Some(p) = part_at {
            put(p, f.bytes.clone()).await;
        }
        let m = Manifest {
            event_type: "play".to_owned(),
            hour: String::new(),
            event_count: events.len() as u64,
            files: vec![FileEntry {
                name: "data-a-00000.avro".to_owned(),
                events: events.len() as u64,
                bytes: f.bytes.len() as u64,
                checksum: f.checksum.clone(),
            }],
            ids_index: "_ids-a".to_owned(),
            parts_merged: Vec::new(),
            duplicates_dropped: 0,
            late_events: 0,
            watermark: String::new(),
            closed_at: String::new(),
            closed_by: "a".to_owned(),
        };
        put(format!("{dir}/{MANIFEST}"), serde_json::to_vec(&m).expect("json").into()).await;
    }

    const DEFAULT: &str = include_str!("../../../config/registry.toml");
    const H: i64 = 1_795_428_000;

    fn written(n: usize) -> Vec<Written> {
        vec![Written { event_type: "play", hour: H, written_ms: 0 }; n]
    }

    #[tokio::test(flavor = "current_thread")]
    async fn folder_reader_ignores_staging_and_passes() {
        let store = InMemory::new();
        let part = format!("_staging/{}/part-a-000000.avro", event_model::HourBucket::at("play", H).path());
        closed_hour(&store, H, &[0, 1], Some(part)).await;
        let v = verify(&store, &written(2), false).await.expect("verify");
        assert!(v.ok(), "{v:?}");
        assert_eq!(v.folder_events, 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn folder_reader_counts_a_part_file_beside_the_data_twice() {
        let store = InMemory::new();
        let part = format!("{}/part-a-000000.avro", event_model::HourBucket::at("play", H).path());
        closed_hour(&store, H, &[0, 1], Some(part.clone())).await;
        let v = verify(&store, &written(2), false).await.expect("verify");
        // The manifest walk alone passes: the manifest lists only the data file.
        assert_eq!((v.lost, v.duplicates, v.manifest_errors.len()), (0, 0, 0), "{v:?}");
        assert!(!v.ok());
        assert_eq!(v.folder_events, 4);
        assert_eq!(v.folder_duplicates, 2);
        assert_eq!(v.extra_files, vec![part]);
        assert_eq!(v.folder_errors.len(), 1, "{:?}", v.folder_errors);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn folder_reader_names_a_missing_hour() {
        let store = InMemory::new();
        closed_hour(&store, H, &[0], None).await;
        closed_hour(&store, H + 2 * HOUR, &[1], None).await;
        let mut w = written(2);
        w[1].hour = H + 2 * HOUR;
        let v = verify(&store, &w, false).await.expect("verify");
        assert_eq!(v.missing_hours, vec![event_model::HourBucket::at("play", H + HOUR).path()]);
        assert!(!v.ok());
    }

    #[test]
    fn quantiles() {
        let v = Verification { latencies_ms: (1..=100).collect(), ..Verification::default() };
        assert_eq!(v.latency_quantile_ms(0.5), Some(51));
        assert_eq!(v.latency_quantile_ms(0.99), Some(99));
        assert_eq!(Verification::default().latency_quantile_ms(0.5), None);
    }
}
