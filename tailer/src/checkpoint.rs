//! The durable checkpoint: for every file, the offset up to which every line was acknowledged
//! by the event-service (or deliberately skipped). Written as JSON to a temporary file,
//! fsynced, renamed over the old one and the directory fsynced, so a crash leaves either the
//! old or the new checkpoint, never a torn one.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;

/// File name of the checkpoint inside the data directory.
pub(crate) const CHECKPOINT_FILE: &str = "checkpoint.json";
const VERSION: u32 = 2;
/// Checkpoints written before the inode was part of a file's identity; loaded as entries
/// without an identity, matched once by their first line.
const LEGACY_VERSION: u32 = 1;

/// One file's entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileEntry {
    /// Where the file was last seen.
    pub path: PathBuf,
    /// Every line before this byte offset is done.
    pub offset: u64,
    /// When the file was last seen, in Unix seconds.
    pub last_seen: u64,
    /// How the file is recognised; `None` in a version 1 checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
}

/// How a file is recognised after a restart (see [`crate::identity`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Identity {
    /// Device of the file.
    pub dev: u64,
    /// Inode of the file.
    pub ino: u64,
    /// How many earlier files this inode held while followed (part of the fingerprint).
    pub generation: u32,
    /// Bytes of the file's start that `prefix_hash` covers.
    pub prefix_len: usize,
    /// Hash of the first `prefix_len` bytes.
    pub prefix_hash: u64,
}

impl Identity {
    /// `(dev, ino)`.
    pub(crate) fn inode(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }
}

/// The whole checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    version: u32,
    /// The host name ids were derived with.
    pub host: String,
    /// Entries by fingerprint (16 hex digits).
    #[serde(with = "hex_keys")]
    pub files: BTreeMap<Fingerprint, FileEntry>,
}

impl Checkpoint {
    /// An empty checkpoint for `host`, in the current version.
    pub(crate) fn new(host: &str) -> Self {
        Checkpoint { version: VERSION, host: host.to_owned(), files: BTreeMap::new() }
    }
}

mod hex_keys {
    use std::collections::BTreeMap;

    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    use super::FileEntry;

    pub(super) fn serialize<S: Serializer>(m: &BTreeMap<u64, FileEntry>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(m.iter().map(|(k, v)| (format!("{k:016x}"), v)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<u64, FileEntry>, D::Error> {
        let raw = BTreeMap::<String, FileEntry>::deserialize(d)?;
        raw.into_iter()
            .map(|(k, v)| {
                u64::from_str_radix(&k, 16)
                    .map(|k| (k, v))
                    .map_err(|_| D::Error::custom(format!("fingerprint `{k}` is not 16 hex digits")))
            })
            .collect()
    }
}

/// Reads the checkpoint in `dir`; `None` when there is none yet. A file that exists but
/// cannot be parsed is an error: starting over from offset 0 would re-send everything.
pub(crate) fn load(dir: &Path) -> Result<Option<Checkpoint>> {
    let path = dir.join(CHECKPOINT_FILE);
    let text = match fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let cp: Checkpoint = serde_json::from_slice(&text)
        .map_err(|e| Error::Checkpoint { path: path.clone(), reason: e.to_string() })?;
    if cp.version != VERSION && cp.version != LEGACY_VERSION {
        return Err(Error::Checkpoint { path, reason: format!("unknown version {}", cp.version) });
    }
    Ok(Some(cp))
}

/// Makes `cp` the durable checkpoint in `dir`: write a temporary file, fsync it, rename it
/// over the checkpoint, fsync the directory.
pub(crate) fn save(dir: &Path, cp: &Checkpoint) -> Result<()> {
    // The periodic save and the final one at shutdown share the temporary file name.
    static SAVING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _saving = SAVING.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = dir.join(format!("{CHECKPOINT_FILE}.tmp"));
    let path = dir.join(CHECKPOINT_FILE);
    let body = serde_json::to_vec(cp)
        .map_err(|e| Error::Checkpoint { path: path.clone(), reason: e.to_string() })?;
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| Error::io(&path, e))
}

/// Makes a ledger durable in `dir`, one snapshot at a time, each taken while holding the turn:
/// a save never replaces a newer checkpoint with an older snapshot (the periodic task, the
/// reader after identifying new files and the final save at shutdown all save through it).
#[derive(Debug)]
pub(crate) struct Saver {
    dir: PathBuf,
    ledger: std::sync::Arc<std::sync::Mutex<crate::ledger::Ledger>>,
    turn: std::sync::Mutex<()>,
}

impl Saver {
    /// A saver of `ledger` into `dir`.
    pub(crate) fn new(dir: &Path, ledger: std::sync::Arc<std::sync::Mutex<crate::ledger::Ledger>>) -> Self {
        Saver { dir: dir.to_owned(), ledger, turn: std::sync::Mutex::new(()) }
    }

    /// Saves the ledger as it is now; returns what was saved.
    pub(crate) fn save(&self) -> Result<Checkpoint> {
        let _turn = self.turn.lock().unwrap_or_else(|e| e.into_inner());
        let cp = self.ledger.lock().unwrap_or_else(|e| e.into_inner()).checkpoint();
        save(&self.dir, &cp)?;
        Ok(cp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert_eq!(load(dir.path()).expect("no checkpoint"), None);
        let mut cp = Checkpoint::new("host-a");
        cp.files.insert(
            u64::MAX - 1,
            FileEntry {
                path: "/var/log/a.log".into(),
                offset: 1234,
                last_seen: 1_800_000_000,
                identity: Some(Identity { dev: 1, ino: 2, generation: 3, prefix_len: 4, prefix_hash: 5 }),
            },
        );
        save(dir.path(), &cp).expect("save");
        assert_eq!(load(dir.path()).expect("load"), Some(cp.clone()));
        let text = fs::read_to_string(dir.path().join(CHECKPOINT_FILE)).expect("read");
        assert!(text.contains("fffffffffffffffe"), "{text}");
        assert!(!dir.path().join("checkpoint.json.tmp").exists());

        fs::write(dir.path().join(CHECKPOINT_FILE), b"{\"version\":1,").expect("write");
        let e = load(dir.path()).expect_err("torn file");
        assert!(e.to_string().contains("corrupt"), "{e}");
        fs::write(dir.path().join(CHECKPOINT_FILE), br#"{"version":9,"host":"h","files":{}}"#)
            .expect("write");
        assert!(load(dir.path()).expect_err("version").to_string().contains("version 9"));
        // A version 1 checkpoint loads, its entries without an identity.
        let v1 = br#"{"version":1,"host":"h","files":{"00000000000000ff":{"path":"/a","offset":7,"last_seen":1}}}"#;
        fs::write(dir.path().join(CHECKPOINT_FILE), v1).expect("write");
        let cp = load(dir.path()).expect("v1").expect("some");
        assert_eq!(cp.files.get(&0xff).map(|e| (e.offset, e.identity)), Some((7, None)));
    }

    #[test]
    fn a_failed_save_leaves_the_old_checkpoint() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cp = Checkpoint::new("h");
        save(dir.path(), &cp).expect("save");
        // A directory where the temporary file should go makes the write fail.
        fs::create_dir(dir.path().join("checkpoint.json.tmp")).expect("mkdir");
        let mut newer = Checkpoint::new("h");
        newer.files.insert(1, FileEntry { path: "x".into(), offset: 5, last_seen: 0, identity: None });
        assert!(save(dir.path(), &newer).is_err());
        assert_eq!(load(dir.path()).expect("load"), Some(cp));
    }
}
