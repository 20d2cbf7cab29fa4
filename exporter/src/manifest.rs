//! The `_SUCCESS` manifest of a closed hour and the commit record it is published from.
//!
//! Readers trust an hour folder once `_SUCCESS` exists: it then holds exactly the data files
//! the manifest lists, plus `_`-prefixed metadata. See [`crate::layout`] for every object name.

use serde::{Deserialize, Serialize};

pub use crate::layout::{COMMIT, HourKey, MANIFEST, hour_dir};

/// One data file listed by a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Object name inside the hour folder.
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
    /// The gzipped, newline-separated, sorted ids of the listed files (in the hour folder).
    pub ids_index: String,
    /// Part files (in the hour's staging folder) merged into the data files.
    pub parts_merged: Vec<String>,
    /// Duplicates dropped: by the merge, by the closing replica since its start, and late
    /// copies found in the dedup record of their own hour.
    pub duplicates_dropped: u64,
    /// Events in this hour whose event time lies in an earlier hour (closed before they came).
    #[serde(default)]
    pub late_events: u64,
    /// The fleet watermark when the hour was sealed, RFC 3339.
    pub watermark: String,
    /// When the commit record was written, RFC 3339.
    pub closed_at: String,
    /// The process (`<replica>-<incarnation>`) that closed the hour.
    pub closed_by: String,
}

/// A copy the publication of a commit makes: from the closer's staging output to its final
/// name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Copy {
    /// Source object (under `_staging/`).
    pub from: String,
    /// Destination object (in the hour folder or under `_dedup/`).
    pub to: String,
}

/// The commit record `_commit` of an hour: created once (create-only) by the closer holding
/// the seal; whoever finds it (any replica, after any crash) publishes it by making its copies
/// and then writing its manifest as `_SUCCESS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// The seal generation the closer held.
    pub seal: u32,
    /// The copies to make, data files first.
    pub copies: Vec<Copy>,
    /// The manifest to write last.
    pub manifest: Manifest,
}

impl Commit {
    /// The manifest's bytes as `_SUCCESS` holds them (the same from any publisher).
    pub fn manifest_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(&self.manifest).unwrap_or_default()
    }
}
