//! The files being followed: discovery by glob, identity (see [`crate::identity`]), rotation
//! and truncation.
//!
//! * A path whose inode is followed is that file, perhaps renamed by a rotation; only its
//!   path is updated. Whether the inode still holds it is checked on every read
//!   ([`Files::check`]).
//! * An inode not followed is read at its start. After a restart it is recognised by the
//!   checkpoint's identity (device, inode, hash of its first bytes) and resumed at the
//!   checkpointed offset; one whose content changed while the tailer was down holds a new file.
//! * A file at a new inode is compared with every followed file: the copy of a truncated file
//!   (copytruncate) yields that file's rest; a file that may still be a copy being made waits for
//!   the next scan; every other file, however equal its first line, is a new file read from 0
//!   under a fingerprint of its own.
//! * A copy no longer than what was read of its original holds nothing new: it is noted once and
//!   left alone (no rescan, no warning per turn) until it leaves the globs.
//! * A followed file whose inode is no longer matched (renamed out of the globs, deleted) is read
//!   to its end and let go once it has not grown for `rotated_idle_ms`; so is a truncated file
//!   whose copy did not show up.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Instant;

use crate::checkpoint::Identity;
use crate::fingerprint::{
    Fingerprint, InodeKey, fingerprint, first_line, legacy_fingerprint, prefix_hash, read_head,
};
use crate::identity::{AtInode, Known, Other, State, at_inode, at_other_inode};
use crate::ledger::Ledger;
use crate::limits::FINGERPRINT_MAX_BYTES;
use crate::metrics::Metrics;

/// One followed file.
#[derive(Debug)]
pub(crate) struct Tracked {
    /// Its name in event ids and the checkpoint.
    pub fp: Fingerprint,
    /// Last path it was seen at.
    pub path: PathBuf,
    /// Index of the source whose rule parses it.
    pub source: usize,
    /// The open file; `None` once let go or while detached after a truncation.
    pub file: Option<File>,
    /// Inode of `file` (or of the file last read).
    pub inode: InodeKey,
    /// Part of the fingerprint.
    pub generation: u32,
    /// The file's first bytes as last read (empty when known only by `prefix` from the
    /// checkpoint).
    pub head: Vec<u8>,
    /// `(len, hash)` of the known start of the file.
    pub prefix: (usize, u64),
    /// Next byte to read.
    pub offset: u64,
    /// Modification time when last checked; a change without growth is checked too.
    pub mtime: Option<std::time::SystemTime>,
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
    /// Truncated: its inode lost its content and its rest may come from a copy.
    pub detached: bool,
    /// Let go: read to the end and closed.
    pub released: bool,
}

impl Tracked {
    fn identity(&self) -> Identity {
        Identity {
            dev: self.inode.0,
            ino: self.inode.1,
            generation: self.generation,
            prefix_len: self.prefix.0,
            prefix_hash: self.prefix.1,
        }
    }

    fn known(&self) -> Known<'_> {
        if self.head.is_empty() {
            Known::Hash { len: self.prefix.0, hash: self.prefix.1 }
        } else {
            Known::Bytes(&self.head)
        }
    }

    fn set_head(&mut self, head: Vec<u8>) {
        self.prefix = (head.len(), prefix_hash(&head, head.len()).unwrap_or(0));
        self.head = head;
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

/// A file found by a scan whose inode is not followed.
struct Found {
    source: usize,
    path: PathBuf,
    key: InodeKey,
    size: u64,
    file: File,
    head: Vec<u8>,
}

/// Every followed file, by fingerprint and by inode.
#[derive(Debug, Default)]
pub(crate) struct Files {
    /// Followed files by fingerprint.
    pub by_fp: HashMap<Fingerprint, Tracked>,
    by_inode: HashMap<InodeKey, Fingerprint>,
    /// Inodes left undecided (possibly a copy being made), warned about once.
    undecided: HashSet<InodeKey>,
    /// Copies that hold nothing past what was read of their original.
    spent: HashSet<InodeKey>,
    /// A file was newly followed, moved to a copy, or its known head grew: its identity should
    /// be made durable before (more of) its lines are sent.
    pub identities_changed: bool,
}

fn inode_of(meta: &std::fs::Metadata) -> InodeKey {
    (meta.dev(), meta.ino())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn lock(ledger: &std::sync::Mutex<Ledger>) -> std::sync::MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(|e| e.into_inner())
}

impl Files {
    /// Expands the globs and updates what is followed. Returns how many files are open.
    pub(crate) fn scan(
        &mut self,
        globs: &[Globs],
        ledger: &std::sync::Mutex<Ledger>,
        metrics: &Metrics,
    ) -> usize {
        metrics.scans.inc();
        let now = unix_now();
        for t in self.by_fp.values_mut() {
            t.matched = false;
        }
        let mut seen = HashSet::new();
        let mut found = Vec::new();
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
                if let Some(f) = self.visit_known(source, path, key, meta.len(), ledger, metrics, now) {
                    found.push(f);
                }
            }
        }
        self.spent.retain(|k| seen.contains(k));
        self.undecided.retain(|k| seen.contains(k));
        for f in found {
            self.visit_new(f, ledger, metrics, now);
        }
        let open = self.by_fp.values().filter(|t| t.file.is_some()).count();
        metrics.files_watched.set(open as i64);
        open
    }

    /// Handles a path whose inode is followed or in the checkpoint; returns it as [`Found`]
    /// when it holds a file not followed yet.
    #[allow(clippy::too_many_arguments)]
    fn visit_known(
        &mut self,
        source: usize,
        path: PathBuf,
        key: InodeKey,
        size: u64,
        ledger: &std::sync::Mutex<Ledger>,
        metrics: &Metrics,
        now: u64,
    ) -> Option<Found> {
        let mut ledger = lock(ledger);
        if let Some(fp) = self.by_inode.get(&key).copied()
            && let Some(t) = self.by_fp.get_mut(&fp)
        {
            if t.path != path {
                tracing::info!(from = %t.path.display(), to = %path.display(), "file renamed");
                t.path = path.clone();
            }
            t.matched = true;
            ledger.seen(fp, &path, size, now);
            return None;
        }
        if self.spent.contains(&key) {
            return None;
        }
        let file = File::open(&path).ok()?;
        let head = match read_head(&file) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the start of the file");
                return None;
            }
        };
        let found = Found { source, path, key, size, file, head };
        let Some(fp) = ledger.at_inode(key) else { return Some(found) };
        if let Some(t) = self.by_fp.get_mut(&fp) {
            // Let go earlier (or detached) and back in view: the same file if it still holds
            // what was read.
            if !t.detached && at_inode(t.known(), t.offset, &found.head, size) == AtInode::Same {
                tracing::info!(path = %found.path.display(), offset = t.offset, "file back in view");
                attach(t, found.file, key, found.path.clone());
                self.by_inode.insert(key, fp);
                ledger.set_followed(fp, true);
                ledger.seen(fp, &found.path, size, now);
                return None;
            }
            return Some(found);
        }
        // Known from the checkpoint only (a restart).
        let entry = ledger.get(fp)?;
        let id = entry.identity?;
        let known = Known::Hash { len: id.prefix_len, hash: id.prefix_hash };
        let mut t = Tracked::new(fp, found.path.clone(), source, None, key, id.generation, entry.acked);
        t.prefix = (id.prefix_len, id.prefix_hash);
        if at_inode(known, entry.acked, &found.head, size) == AtInode::Same {
            tracing::info!(path = %found.path.display(), offset = entry.acked, "resuming file");
            t.set_head(found.head);
            t.file = Some(found.file);
            ledger.track(fp, &found.path, t.identity(), now);
            ledger.seen(fp, &found.path, size, now);
            self.by_fp.insert(fp, t);
            self.by_inode.insert(key, fp);
            return None;
        }
        // Its content changed while the tailer was down (copytruncate, a rewrite): its rest
        // may be in a copy; the inode holds a new file.
        metrics.truncations.inc();
        tracing::warn!(path = %found.path.display(), offset = entry.acked,
            "file truncated or replaced while the tailer was down; its remaining lines are read from a copy if one appears");
        t.detached = true;
        t.matched = false;
        t.idle_since = Some(Instant::now());
        ledger.set_followed(fp, true);
        self.by_fp.insert(fp, t);
        Some(found)
    }

    /// Decides what a file at an inode not followed is.
    fn visit_new(&mut self, f: Found, ledger: &std::sync::Mutex<Ledger>, metrics: &Metrics, now: u64) {
        let Some(line) = first_line(&f.head) else { return };
        let mut copy_of = None;
        let mut undecided = None;
        for t in self.by_fp.values_mut() {
            if t.released || (t.detached && t.inode == f.key) {
                // A file is never the copy of what its own inode held.
                continue;
            }
            let state = if t.detached {
                State::Truncated
            } else if let Some(file) = &t.file {
                // Compare with the original's head as it is now (it may have grown since it was
                // last read); one whose start changed was truncated.
                if t.head.len() < FINGERPRINT_MAX_BYTES
                    && let Ok(now_head) = read_head(file)
                    && now_head.starts_with(&t.head)
                {
                    t.set_head(now_head);
                }
                State::Holding
            } else {
                continue;
            };
            match at_other_inode(t.known(), state, &f.head) {
                Other::Copy => copy_of = copy_of.or(Some(t.fp)),
                Other::Undecided => undecided = undecided.or(Some(t.fp)),
                Other::Distinct => {}
            }
        }
        let mut ledger = lock(ledger);
        if copy_of.is_none() && undecided.is_none() {
            // A file of the checkpoint whose inode was not seen (gone, or renamed away just as
            // the directory was read): a file starting with its known head is its copy or the
            // file itself moved (e.g. copytruncate while the tailer was down).
            let entry = ledger
                .identified()
                .filter(|(fp, ..)| !self.by_fp.contains_key(fp))
                .find(|(_, id, _)| prefix_hash(&f.head, id.prefix_len) == Some(id.prefix_hash));
            if let Some((fp, id, acked)) = entry {
                let mut t =
                    Tracked::new(fp, f.path.clone(), f.source, None, id.inode(), id.generation, acked);
                t.prefix = (id.prefix_len, id.prefix_hash);
                t.detached = true;
                t.matched = false;
                t.idle_since = Some(Instant::now());
                ledger.set_followed(fp, true);
                self.by_fp.insert(fp, t);
                copy_of = Some(fp);
            }
        }
        if let Some(fp) = copy_of
            && let Some(t) = self.by_fp.get_mut(&fp)
        {
            if f.size < t.offset {
                // The copy was taken before the end of what was read (the app wrote between
                // logrotate's copy and its truncate): it holds nothing new. Noted once.
                metrics.short_copies.inc();
                tracing::warn!(copy = %f.path.display(), size = f.size, of = %t.path.display(), offset = t.offset,
                    "copy shorter than what was read of its original: it holds nothing new (lines written \
                     between the copy and the truncation were lost by copytruncate)");
                self.spent.insert(f.key);
                t.detached = false;
                ledger.set_followed(fp, false);
                return;
            }
            tracing::info!(copy = %f.path.display(), of = %t.path.display(), offset = t.offset,
                "reading the remaining lines of a truncated file from its copy");
            attach(t, f.file, f.key, f.path.clone());
            self.by_inode.insert(f.key, fp);
            self.identities_changed = true;
            ledger.identify(fp, t.identity());
            ledger.set_followed(fp, true);
            ledger.seen(fp, &f.path, f.size, now);
            return;
        }
        if let Some(fp) = undecided {
            if self.undecided.insert(f.key) {
                metrics.fingerprint_collisions.inc();
                let same_as = self.by_fp.get(&fp).map(|t| t.path.display().to_string());
                tracing::info!(path = %f.path.display(), same_as,
                    "file starts like a followed file: a copy being made or a new file with the same \
                     header; decided when it grows");
            }
            return;
        }
        self.undecided.remove(&f.key);
        // A file from a version 1 checkpoint, known by its first line alone.
        let legacy = legacy_fingerprint(line);
        let (fp, generation) = if ledger.is_legacy(legacy) && !self.by_fp.contains_key(&legacy) {
            (legacy, 0)
        } else {
            // A fingerprint no file has had: the inode may have held files with this first line
            // whose entries moved on (to their copies).
            let mut generation = ledger.next_generation(f.key);
            let mut fp = fingerprint(line, f.key, generation);
            while ledger.get(fp).is_some() || self.by_fp.contains_key(&fp) {
                generation = generation.wrapping_add(1);
                fp = fingerprint(line, f.key, generation);
            }
            (fp, generation)
        };
        let mut t = Tracked::new(fp, f.path.clone(), f.source, Some(f.file), f.key, generation, 0);
        t.set_head(f.head);
        let start = ledger.track(fp, &f.path, t.identity(), now);
        ledger.seen(fp, &f.path, f.size, now);
        t.offset = start;
        t.line_start = start;
        tracing::info!(path = %f.path.display(), fingerprint = format_args!("{fp:016x}"), offset = start, "following file");
        self.by_fp.insert(fp, t);
        self.by_inode.insert(f.key, fp);
        self.identities_changed = true;
    }

    /// Whether `fp`'s open file, now `size` bytes long, still holds the content it is followed
    /// for; a head that grew is noted (given to the ledger, and [`Files::identities_changed`]
    /// set).
    pub(crate) fn check(&mut self, fp: Fingerprint, size: u64, ledger: &std::sync::Mutex<Ledger>) -> bool {
        let Some(t) = self.by_fp.get_mut(&fp) else { return false };
        let Some(file) = &t.file else { return false };
        let Ok(head) = read_head(file) else { return true };
        if at_inode(t.known(), t.offset, &head, size) != AtInode::Same {
            return false;
        }
        if head.len() > t.head.len() {
            t.set_head(head);
            lock(ledger).identify(fp, t.identity());
            // Lines past the old head are about to be sent under this file's ids: the head
            // that tells it from a rewrite with the same start must be durable first.
            self.identities_changed = true;
        }
        true
    }

    /// Stops following `t`'s inode after a truncation; its rest may come from a copy.
    pub(crate) fn detach(&mut self, fp: Fingerprint) {
        if let Some(t) = self.by_fp.get_mut(&fp) {
            self.by_inode.remove(&t.inode);
            t.file = None;
            t.detached = true;
            t.idle_since = Some(Instant::now());
        }
    }

    /// Closes a file read to its end that left the globs (or whose copy never came).
    pub(crate) fn release(&mut self, fp: Fingerprint, ledger: &std::sync::Mutex<Ledger>) {
        if let Some(t) = self.by_fp.get_mut(&fp) {
            if t.file.take().is_some() {
                self.by_inode.remove(&t.inode);
            }
            t.released = true;
            t.detached = false;
            t.carry = Vec::new();
        }
        lock(ledger).set_followed(fp, false);
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

impl Tracked {
    fn new(
        fp: Fingerprint,
        path: PathBuf,
        source: usize,
        file: Option<File>,
        inode: InodeKey,
        generation: u32,
        offset: u64,
    ) -> Self {
        Tracked {
            fp,
            path,
            source,
            file,
            inode,
            generation,
            head: Vec::new(),
            prefix: (0, 0),
            offset,
            mtime: None,
            carry: Vec::new(),
            line_start: offset,
            discarding: false,
            matched: true,
            idle_since: None,
            detached: false,
            released: false,
        }
    }
}

fn attach(t: &mut Tracked, file: File, key: InodeKey, path: PathBuf) {
    t.file = Some(file);
    t.mtime = None;
    t.inode = key;
    t.path = path;
    t.matched = true;
    t.released = false;
    t.detached = false;
    t.idle_since = None;
}
