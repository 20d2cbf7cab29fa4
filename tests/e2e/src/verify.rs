//! Checks the buckets against the sample log: every valid event exactly once in a closed hour,
//! nothing else, every manifest matching its files; and the end-to-end latency from a line's
//! write to the durable write of the part file holding its event.

use std::collections::HashMap;

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
    /// Per exported event, milliseconds from its line's write to the first part file holding
    /// it, sorted. Empty unless asked for.
    pub latencies_ms: Vec<i64>,
    /// When the last part file holding a sample event was written, Unix milliseconds.
    pub last_durable_ms: Option<i64>,
}

impl Verification {
    /// Nothing lost, duplicated, unexpected or misplaced, and every manifest consistent.
    pub fn ok(&self) -> bool {
        self.lost == 0
            && self.duplicates == 0
            && self.unexpected == 0
            && self.misplaced == 0
            && self.manifest_errors.is_empty()
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

/// `play/2026-11-23/18/_SUCCESS` → (`play`, hour start).
fn bucket_of(path: &str) -> Option<(String, i64)> {
    let mut it = path.split('/');
    let t = it.next()?;
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
    for meta in objects.iter().filter(|m| m.location.filename() == Some(MANIFEST)) {
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
    if latency {
        measure_latency(store, &objects, written, &mut v).await?;
    }
    Ok(v)
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
    }

    #[test]
    fn quantiles() {
        let v = Verification { latencies_ms: (1..=100).collect(), ..Verification::default() };
        assert_eq!(v.latency_quantile_ms(0.5), Some(51));
        assert_eq!(v.latency_quantile_ms(0.99), Some(99));
        assert_eq!(Verification::default().latency_quantile_ms(0.5), None);
    }
}
