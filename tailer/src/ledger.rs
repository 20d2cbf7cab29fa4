//! What has been acknowledged, per file, in order.
//!
//! Batches hold lines of several files and may be acknowledged out of order (requests run
//! concurrently and retry independently). A file's checkpoint offset only moves to the end of
//! a batch's lines once that batch and every earlier batch holding lines of the same file are
//! acknowledged, so a crash can never skip a line.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use crate::checkpoint::{Checkpoint, FileEntry, Identity};
use crate::fingerprint::{Fingerprint, InodeKey};

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
    /// How it is recognised after a restart; `None` for an entry of a version 1 checkpoint
    /// not yet matched.
    pub identity: Option<Identity>,
    /// Followed by the reader (open, or truncated and waiting for its copy): never forgotten,
    /// however long reading is held up.
    pub followed: bool,
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
                    identity: e.identity,
                    followed: false,
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

    /// Starts or resumes following `fp` seen at `path`, recognised by `identity`; returns the
    /// offset to read from.
    pub(crate) fn track(&mut self, fp: Fingerprint, path: &Path, identity: Identity, now: u64) -> u64 {
        let p = self.files.entry(fp).or_insert_with(|| FileProgress {
            path: path.to_owned(),
            acked: 0,
            size: 0,
            last_seen: now,
            identity: None,
            followed: true,
            pending: VecDeque::new(),
        });
        p.path = path.to_owned();
        p.last_seen = now;
        p.identity = Some(identity);
        p.followed = true;
        p.acked
    }

    /// Updates how `fp` is recognised (its head grew, or its rest is read from a copy).
    pub(crate) fn identify(&mut self, fp: Fingerprint, identity: Identity) {
        if let Some(p) = self.files.get_mut(&fp) {
            p.identity = Some(identity);
        }
    }

    /// Notes whether the reader follows `fp` (a file let go may be forgotten once idle).
    pub(crate) fn set_followed(&mut self, fp: Fingerprint, followed: bool) {
        if let Some(p) = self.files.get_mut(&fp) {
            p.followed = followed;
        }
    }

    /// The latest file known at `inode` (highest generation).
    pub(crate) fn at_inode(&self, inode: InodeKey) -> Option<Fingerprint> {
        self.files
            .iter()
            .filter_map(|(fp, p)| p.identity.map(|i| (fp, i)))
            .filter(|(_, i)| (i.dev, i.ino) == inode)
            .max_by_key(|(_, i)| i.generation)
            .map(|(fp, _)| *fp)
    }

    /// Entries with an identity, as `(fingerprint, identity, acknowledged offset)`.
    pub(crate) fn identified(&self) -> impl Iterator<Item = (Fingerprint, Identity, u64)> + '_ {
        self.files.iter().filter_map(|(fp, p)| p.identity.map(|i| (*fp, i, p.acked)))
    }

    /// The generation of the next file at `inode`.
    pub(crate) fn next_generation(&self, inode: InodeKey) -> u32 {
        self.at_inode(inode)
            .and_then(|fp| self.files.get(&fp)?.identity)
            .map_or(0, |i| i.generation.saturating_add(1))
    }

    /// Whether `fp` is an entry of a version 1 checkpoint not yet matched to a file.
    pub(crate) fn is_legacy(&self, fp: Fingerprint) -> bool {
        self.files.get(&fp).is_some_and(|p| p.identity.is_none())
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

    /// Drops files really gone: not followed, not seen since `before` (Unix seconds), nothing
    /// pending.
    pub(crate) fn forget(&mut self, before: u64) -> usize {
        let n = self.files.len();
        self.files.retain(|_, p| p.followed || p.last_seen >= before || !p.pending.is_empty());
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
            cp.files.insert(
                *fp,
                FileEntry {
                    path: p.path.clone(),
                    offset: p.acked,
                    last_seen: p.last_seen,
                    identity: p.identity,
                },
            );
        }
        cp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ino: u64) -> Identity {
        Identity { dev: 1, ino, generation: 0, prefix_len: 1, prefix_hash: 0 }
    }

    #[test]
    fn offsets_advance_only_over_contiguous_acks() {
        let mut l = Ledger::from_checkpoint(Checkpoint::new("h"));
        assert_eq!(l.track(1, Path::new("/a"), id(1), 0), 0);
        assert_eq!(l.track(2, Path::new("/b"), id(2), 0), 0);
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
        assert_eq!(again.track(1, Path::new("/a.1"), id(1), 5), 300);
        assert_eq!(again.get(1).map(|p| p.path.clone()), Some(PathBuf::from("/a.1")));
    }

    #[test]
    fn forgets_only_idle_files_without_pending_batches() {
        let mut l = Ledger::from_checkpoint(Checkpoint::new("h"));
        l.track(1, Path::new("/a"), id(1), 10);
        l.track(2, Path::new("/b"), id(2), 10);
        l.add(2, 1, 10);
        l.track(3, Path::new("/c"), id(3), 100);
        l.track(4, Path::new("/d"), id(4), 10);
        for fp in [1, 2, 3] {
            l.set_followed(fp, false);
        }
        // 4 is still followed (reading held up by back-pressure): kept however old.
        assert_eq!(l.forget(50), 1);
        assert!(l.get(1).is_none() && l.get(2).is_some() && l.get(3).is_some() && l.get(4).is_some());
        assert_eq!(l.checkpoint().files.get(&4).and_then(|e| e.identity), Some(id(4)));
    }
}
