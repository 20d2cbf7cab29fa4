//! What has been acknowledged, per file, in order.
//!
//! Batches hold lines of several files and may be acknowledged out of order (requests run
//! concurrently and retry independently). A file's checkpoint offset only moves to the end of
//! a batch's lines once that batch and every earlier batch holding lines of the same file are
//! acknowledged, so a crash can never skip a line.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use crate::checkpoint::{Checkpoint, FileEntry};
use crate::fingerprint::Fingerprint;

#[derive(Debug)]
struct Pending {
    batch: u64,
    end: u64,
    acked: bool,
}

/// One file's progress.
#[derive(Debug)]
pub(crate) struct FileProgress {
    /// Where the file was last seen.
    pub path: PathBuf,
    /// Every line before this offset is acknowledged or skipped.
    pub acked: u64,
    /// The file's size when last read, for the lag metric.
    pub size: u64,
    /// When the file was last seen, in Unix seconds.
    pub last_seen: u64,
    pending: VecDeque<Pending>,
}

/// Per-file acknowledged offsets; the in-memory form of the checkpoint.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    host: String,
    files: HashMap<Fingerprint, FileProgress>,
}

impl Ledger {
    /// A ledger starting from a loaded checkpoint.
    pub(crate) fn from_checkpoint(cp: Checkpoint) -> Self {
        let files = cp
            .files
            .into_iter()
            .map(|(fp, e)| {
                let progress = FileProgress {
                    path: e.path,
                    acked: e.offset,
                    size: e.offset,
                    last_seen: e.last_seen,
                    pending: VecDeque::new(),
                };
                (fp, progress)
            })
            .collect();
        Ledger { host: cp.host, files }
    }

    /// The file with `fp`, if known.
    pub(crate) fn get(&self, fp: Fingerprint) -> Option<&FileProgress> {
        self.files.get(&fp)
    }

    /// Starts or resumes tracking `fp` seen at `path`; returns the offset to read from.
    pub(crate) fn track(&mut self, fp: Fingerprint, path: &Path, now: u64) -> u64 {
        let p = self.files.entry(fp).or_insert_with(|| FileProgress {
            path: path.to_owned(),
            acked: 0,
            size: 0,
            last_seen: now,
            pending: VecDeque::new(),
        });
        p.path = path.to_owned();
        p.last_seen = now;
        p.acked
    }

    /// Notes that `fp` was seen at `path` with `size` bytes.
    pub(crate) fn seen(&mut self, fp: Fingerprint, path: &Path, size: u64, now: u64) {
        if let Some(p) = self.files.get_mut(&fp) {
            if p.path != path {
                p.path = path.to_owned();
            }
            p.size = size;
            p.last_seen = now;
        }
    }

    /// Records that batch `batch` holds lines of `fp` ending at `end`. Batch ids must grow.
    pub(crate) fn add(&mut self, fp: Fingerprint, batch: u64, end: u64) {
        if let Some(p) = self.files.get_mut(&fp) {
            p.pending.push_back(Pending { batch, end, acked: false });
        }
    }

    /// Marks `batch` acknowledged for each of its files and advances their offsets as far as
    /// every earlier batch allows.
    pub(crate) fn ack(&mut self, batch: u64, files: impl IntoIterator<Item = Fingerprint>) {
        for fp in files {
            let Some(p) = self.files.get_mut(&fp) else { continue };
            if let Ok(i) = p.pending.binary_search_by_key(&batch, |x| x.batch) {
                p.pending[i].acked = true;
            }
            while p.pending.front().is_some_and(|x| x.acked) {
                if let Some(done) = p.pending.pop_front() {
                    p.acked = p.acked.max(done.end);
                }
            }
        }
    }

    /// Batches not yet acknowledged, over all files.
    pub(crate) fn pending(&self) -> usize {
        self.files.values().map(|p| p.pending.iter().filter(|x| !x.acked).count()).sum()
    }

    /// Drops files not seen since `before` (Unix seconds) that have nothing pending.
    pub(crate) fn forget(&mut self, before: u64) -> usize {
        let n = self.files.len();
        self.files.retain(|_, p| p.last_seen >= before || !p.pending.is_empty());
        n - self.files.len()
    }

    /// Bytes not yet acknowledged, per path.
    pub(crate) fn lag(&self) -> impl Iterator<Item = (&Path, u64)> {
        self.files.values().map(|p| (p.path.as_path(), p.size.saturating_sub(p.acked)))
    }

    /// The durable form.
    pub(crate) fn checkpoint(&self) -> Checkpoint {
        let mut cp = Checkpoint::new(&self.host);
        for (fp, p) in &self.files {
            cp.files.insert(*fp, FileEntry { path: p.path.clone(), offset: p.acked, last_seen: p.last_seen });
        }
        cp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_advance_only_over_contiguous_acks() {
        let mut l = Ledger::from_checkpoint(Checkpoint::new("h"));
        assert_eq!(l.track(1, Path::new("/a"), 0), 0);
        assert_eq!(l.track(2, Path::new("/b"), 0), 0);
        l.add(1, 10, 100);
        l.add(2, 10, 50);
        l.add(1, 11, 200);
        l.add(1, 12, 300);
        l.ack(11, [1]);
        assert_eq!(l.get(1).map(|p| p.acked), Some(0), "batch 10 is still out");
        l.ack(12, [1]);
        assert_eq!(l.get(1).map(|p| p.acked), Some(0));
        assert_eq!(l.pending(), 2);
        l.ack(10, [1, 2]);
        assert_eq!(l.get(1).map(|p| p.acked), Some(300));
        assert_eq!(l.get(2).map(|p| p.acked), Some(50));
        assert_eq!(l.pending(), 0);
        // A checkpoint round trip resumes from the acknowledged offsets.
        let mut again = Ledger::from_checkpoint(l.checkpoint());
        assert_eq!(again.track(1, Path::new("/a.1"), 5), 300);
        assert_eq!(again.get(1).map(|p| p.path.clone()), Some(PathBuf::from("/a.1")));
    }

    #[test]
    fn forgets_only_idle_files_without_pending_batches() {
        let mut l = Ledger::from_checkpoint(Checkpoint::new("h"));
        l.track(1, Path::new("/a"), 10);
        l.track(2, Path::new("/b"), 10);
        l.add(2, 1, 10);
        l.track(3, Path::new("/c"), 100);
        assert_eq!(l.forget(50), 1);
        assert!(l.get(1).is_none() && l.get(2).is_some() && l.get(3).is_some());
    }
}
