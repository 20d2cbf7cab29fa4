//! The files being followed: discovery by glob, identity by fingerprint, rotation and
//! truncation.
//!
//! * A path matched by the globs whose inode is already followed is the same file, perhaps
//!   renamed by a rotation; only its path is updated.
//! * An unknown inode is fingerprinted (see [`crate::fingerprint`]). A fingerprint already in
//!   the checkpoint resumes at the checkpointed offset; a new one starts at offset 0. A file
//!   whose first line is unfinished waits for the next scan.
//! * A followed file whose inode is no longer matched (renamed out of the globs, deleted) is
//!   read to its end and let go once it has not grown for `rotated_idle_ms`.
//! * A followed file that became shorter than what was read, or whose first line changed, was
//!   truncated (copytruncate): it is detached, and its remaining lines are read from the copy
//!   when a file with its fingerprint shows up; the truncated inode is then a new file.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Instant;

use crate::fingerprint::{Fingerprint, fingerprint};
use crate::ledger::Ledger;
use crate::metrics::Metrics;

/// (device, inode) of a file.
pub(crate) type InodeKey = (u64, u64);

/// One followed file.
#[derive(Debug)]
pub(crate) struct Tracked {
    /// Content identity.
    pub fp: Fingerprint,
    /// Last path it was seen at.
    pub path: PathBuf,
    /// Index of the source whose rule parses it.
    pub source: usize,
    /// The open file; `None` once let go or while detached after a truncation.
    pub file: Option<File>,
    /// Inode of `file`.
    pub inode: InodeKey,
    /// Next byte to read.
    pub offset: u64,
    /// Bytes of the unfinished line that starts at `line_start`.
    pub carry: Vec<u8>,
    /// Offset of the first byte of `carry` (the next line).
    pub line_start: u64,
    /// Inside a line longer than the limit: skip up to the next newline.
    pub discarding: bool,
    /// Matched by the globs in the last scan.
    pub matched: bool,
    /// At its end (or detached) since then.
    pub idle_since: Option<Instant>,
    /// Let go: read to the end and closed.
    pub released: bool,
}

impl Tracked {
    fn new(fp: Fingerprint, path: PathBuf, source: usize, file: File, inode: InodeKey, offset: u64) -> Self {
        Tracked {
            fp,
            path,
            source,
            file: Some(file),
            inode,
            offset,
            carry: Vec::new(),
            line_start: offset,
            discarding: false,
            matched: true,
            idle_since: None,
            released: false,
        }
    }
}

/// A source's globs.
#[derive(Debug)]
pub(crate) struct Globs {
    include: Vec<String>,
    exclude: Vec<glob::Pattern>,
}

impl Globs {
    /// Compiles a source's patterns (validated with the config).
    pub(crate) fn new(include: &[String], exclude: &[String]) -> Self {
        Globs {
            include: include.to_vec(),
            exclude: exclude.iter().filter_map(|p| glob::Pattern::new(p).ok()).collect(),
        }
    }

    fn paths(&self) -> impl Iterator<Item = PathBuf> + '_ {
        self.include
            .iter()
            .filter_map(|p| glob::glob(p).ok())
            .flatten()
            .filter_map(Result::ok)
            .filter(|p| !self.exclude.iter().any(|x| x.matches_path(p)))
    }
}

/// Every followed file, by fingerprint and by inode.
#[derive(Debug, Default)]
pub(crate) struct Files {
    /// Followed files by fingerprint.
    pub by_fp: HashMap<Fingerprint, Tracked>,
    by_inode: HashMap<InodeKey, Fingerprint>,
    collisions: HashSet<(Fingerprint, InodeKey)>,
}

fn inode_of(meta: &std::fs::Metadata) -> InodeKey {
    (meta.dev(), meta.ino())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Files {
    /// Expands the globs and updates what is followed. Returns how many files are open.
    pub(crate) fn scan(
        &mut self,
        globs: &[Globs],
        ledger: &std::sync::Mutex<Ledger>,
        metrics: &Metrics,
    ) -> usize {
        let now = unix_now();
        for t in self.by_fp.values_mut() {
            t.matched = false;
        }
        let mut seen = HashSet::new();
        for (source, g) in globs.iter().enumerate() {
            for path in g.paths() {
                let Ok(meta) = std::fs::metadata(&path) else { continue };
                if !meta.is_file() {
                    continue;
                }
                let key = inode_of(&meta);
                if !seen.insert(key) {
                    continue;
                }
                self.visit(source, path, key, meta.len(), ledger, metrics, now);
            }
        }
        let open = self.by_fp.values().filter(|t| t.file.is_some()).count();
        metrics.files_watched.set(open as i64);
        open
    }

    #[allow(clippy::too_many_arguments)]
    fn visit(
        &mut self,
        source: usize,
        path: PathBuf,
        key: InodeKey,
        size: u64,
        ledger: &std::sync::Mutex<Ledger>,
        metrics: &Metrics,
        now: u64,
    ) {
        let mut ledger = ledger.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(fp) = self.by_inode.get(&key).copied()
            && let Some(t) = self.by_fp.get_mut(&fp)
        {
            if t.path != path {
                tracing::info!(from = %t.path.display(), to = %path.display(), "file renamed");
                t.path = path.clone();
            }
            t.matched = true;
            ledger.seen(fp, &path, size, now);
            return;
        }
        let Ok(file) = File::open(&path) else { return };
        let fp = match fingerprint(&file) {
            Ok(Some(fp)) => fp,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the start of the file");
                return;
            }
        };
        match self.by_fp.get_mut(&fp) {
            Some(t) if t.file.is_some() => {
                if t.file.as_ref().and_then(|f| f.metadata().ok()).is_some_and(|m| still_ours(t, m.len())) {
                    // A copy being made by copytruncate, or two files with identical first
                    // lines: keep following the original.
                    if self.collisions.insert((fp, key)) {
                        metrics.fingerprint_collisions.inc();
                        tracing::warn!(
                            path = %path.display(), same_as = %t.path.display(),
                            "file starts with the same first line as a followed file; it is treated \
                             as a copy of it (give log lines a timestamp to tell files apart)"
                        );
                    }
                    return;
                }
                // The original was truncated or replaced: this is the copy holding its rest.
                metrics.truncations.inc();
                tracing::warn!(path = %t.path.display(), copy = %path.display(), offset = t.offset,
                    "file truncated; reading its remaining lines from the copy");
                self.by_inode.remove(&t.inode);
                attach(t, file, key, path.clone());
                self.by_inode.insert(key, fp);
                ledger.seen(fp, &path, size, now);
            }
            Some(t) => {
                // Detached by a truncation or let go: its copy, or the same file back in view.
                attach(t, file, key, path.clone());
                self.by_inode.insert(key, fp);
                ledger.track(fp, &path, now);
                ledger.seen(fp, &path, size, now);
            }
            None => {
                let start = ledger.track(fp, &path, now);
                ledger.seen(fp, &path, size, now);
                tracing::info!(path = %path.display(), fingerprint = format_args!("{fp:016x}"), offset = start, "following file");
                self.by_fp.insert(fp, Tracked::new(fp, path, source, file, key, start));
                self.by_inode.insert(key, fp);
            }
        }
    }

    /// Stops following `t`'s inode after a truncation; its rest may come from a copy.
    pub(crate) fn detach(&mut self, fp: Fingerprint) {
        if let Some(t) = self.by_fp.get_mut(&fp) {
            self.by_inode.remove(&t.inode);
            t.file = None;
            t.idle_since = Some(Instant::now());
        }
    }

    /// Closes a file read to its end that left the globs.
    pub(crate) fn release(&mut self, fp: Fingerprint) {
        if let Some(t) = self.by_fp.get_mut(&fp) {
            if t.file.take().is_some() {
                self.by_inode.remove(&t.inode);
            }
            t.released = true;
            t.carry = Vec::new();
        }
    }

    /// Forgets files the ledger no longer knows.
    pub(crate) fn retain_known(&mut self, ledger: &Ledger) {
        let by_inode = &mut self.by_inode;
        self.by_fp.retain(|fp, t| {
            let keep = t.file.is_some() || ledger.get(*fp).is_some();
            if !keep {
                by_inode.remove(&t.inode);
            }
            keep
        });
    }
}

fn attach(t: &mut Tracked, file: File, key: InodeKey, path: PathBuf) {
    t.file = Some(file);
    t.inode = key;
    t.path = path;
    t.matched = true;
    t.released = false;
    t.idle_since = None;
}

/// Whether `t`'s open file, now `size` bytes long, still holds the content it was followed for.
pub(crate) fn still_ours(t: &Tracked, size: u64) -> bool {
    let Some(file) = &t.file else { return false };
    size >= t.offset && matches!(fingerprint(file), Ok(Some(fp)) if fp == t.fp)
}
