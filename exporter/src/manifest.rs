//! Object names of an hourly bucket and its `_SUCCESS` manifest.
//!
//! ```text
//! <type>/<YYYY-MM-DD>/<HH>/part-<replica>-<seq>.avro   written while the hour is open (sorted by id)
//! <type>/<YYYY-MM-DD>/<HH>/data-<replica>-<n>.avro     written when the hour closes (merged, deduplicated)
//! <type>/<YYYY-MM-DD>/<HH>/_ids-<replica>             sorted ids of the closed hour (late-duplicate check)
//! <type>/<YYYY-MM-DD>/<HH>/_SUCCESS                    the manifest, written last; lists the data files
//! ```
//! Readers trust only the files the manifest lists.

use event_model::HourBucket;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

/// Name of the manifest object.
pub const MANIFEST: &str = "_SUCCESS";
/// Name prefix of the id index of a closed hour (`_ids-<replica>`, named by the manifest).
pub const IDS_PREFIX: &str = "_ids-";

/// (event type, hour start in Unix seconds).
pub type BucketKey = (String, i64);

/// The prefix of a bucket, e.g. `play/2026-11-23/18`.
pub fn prefix(key: &BucketKey) -> String {
    HourBucket::at(&key.0, key.1).path()
}

/// The path of `name` inside a bucket.
pub fn object(key: &BucketKey, name: &str) -> Path {
    Path::from(format!("{}/{name}", prefix(key)))
}

/// One data file listed by a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Object name inside the bucket.
    pub name: String,
    /// Events in it.
    pub events: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// xxh3-64 of its bytes, 16 hex digits.
    pub checksum: String,
}

/// The `_SUCCESS` manifest of a closed hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Start of the hour, RFC 3339.
    pub hour: String,
    /// Events in the listed files (unique ids).
    pub event_count: u64,
    /// The data files.
    pub files: Vec<FileEntry>,
    /// The gzipped, newline-separated, sorted ids of the listed files.
    pub ids_index: String,
    /// Part files merged into the data files.
    pub parts_merged: Vec<String>,
    /// Duplicates dropped: seen by the closing replica since its start plus removed by the merge.
    pub duplicates_dropped: u64,
    /// Events in this hour whose event time lies in an earlier, already closed hour.
    pub late_events: u64,
    /// The watermark when the hour closed, RFC 3339.
    pub watermark: String,
    /// When the manifest was written, RFC 3339.
    pub closed_at: String,
    /// The replica that closed the hour.
    pub closed_by: String,
}
