//! The local directory store: `object_store`'s [`LocalFileSystem`], made durable.
//!
//! [`LocalFileSystem`] writes a file (to a temporary name, then renamed or hard-linked into
//! place) and returns without an fsync: after a power loss or kernel crash the object may be
//! missing, empty or partial although the exporter acknowledged its messages. [`DurableLocal`]
//! delegates every call to it and, before a write returns success, fsyncs:
//!
//! * the written file (its data and inode; by path, after the write: the file is opened again
//!   read-only and `fsync`ed, which flushes the inode whichever descriptor wrote it), and
//! * every directory from the file's parent up to and including the store's root directory, so
//!   that the file's name, and the names of any directories the write created on the way
//!   (`LocalFileSystem` creates missing parents on demand), survive a crash. Directories that
//!   already existed are fsynced too: knowing which ones the write created would need a race
//!   free record of what was synced before, and an fsync of a clean directory is cheap next to
//!   the file's. A write costs one file fsync plus one per directory level (about five for
//!   `<type>/<date>/<hour>/<file>`).
//!
//! The writes that are synced: [`put_opts`](ObjectStore::put_opts) in every mode (and so `put`),
//! [`copy`](ObjectStore::copy), [`copy_if_not_exists`](ObjectStore::copy_if_not_exists) (a hard
//! link: the link count and the new name are synced), [`rename`](ObjectStore::rename) (the
//! source's directory is synced as well, for the removed name),
//! [`rename_if_not_exists`](ObjectStore::rename_if_not_exists) (the trait's default: the synced
//! `copy_if_not_exists`, then `delete`), and a multipart upload's
//! [`complete`](MultipartUpload::complete). A create-only put or `copy_if_not_exists` that fails
//! with [`AlreadyExists`](object_store::Error::AlreadyExists) syncs the existing object before
//! returning the error: a caller that then finds the existing bytes are the ones it meant to
//! write counts the write as done, and it may be the leftover of a process that died between
//! its write and its fsync.
//!
//! Not synced: `delete` (a deleted name that comes back after a crash is only work in progress
//! done again) and reads. The file is synced by name after the write: a concurrent overwrite of
//! the same name could make it sync the newer file; the exporter only creates names (create-only
//! puts, `copy_if_not_exists`) and never overwrites one.
//!
//! The fsyncs run on tokio's blocking pool ([`tokio::task::spawn_blocking`]).

use std::fmt;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::path::PathBuf;

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, Result, UploadPart,
};

/// The store name in the errors of a failed sync.
const STORE: &str = "DurableLocal";

/// [`LocalFileSystem`] that fsyncs what it writes before the write returns (see the module
/// documentation).
#[derive(Debug)]
pub(crate) struct DurableLocal {
    inner: LocalFileSystem,
    /// The store's directory, canonical: the last directory synced after a write.
    root: PathBuf,
}

impl DurableLocal {
    /// Opens the directory `path` as a store, creating it (and its missing parents) if needed;
    /// the directories it creates are synced before it returns.
    ///
    /// # Errors
    ///
    /// A message naming the directory: it cannot be created, synced or opened.
    pub(crate) fn open(path: &std::path::Path) -> Result<Self, String> {
        let created: Vec<PathBuf> = path
            .ancestors()
            .take_while(|dir| !dir.as_os_str().is_empty() && !dir.exists())
            .map(std::path::Path::to_path_buf)
            .collect();
        std::fs::create_dir_all(path)
            .map_err(|e| format!("storage: cannot create the directory {}: {e}", path.display()))?;
        for dir in &created {
            let parent = match dir.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent,
                _ => std::path::Path::new("."),
            };
            sync_dir(parent)
                .map_err(|e| format!("storage: cannot sync the directory {}: {e}", parent.display()))?;
        }
        let inner = LocalFileSystem::new_with_prefix(path)
            .map_err(|e| format!("storage: cannot open the directory {}: {e}", path.display()))?;
        let root = std::fs::canonicalize(path)
            .map_err(|e| format!("storage: cannot open the directory {}: {e}", path.display()))?;
        Ok(Self { inner, root })
    }

    /// Syncs the file at `location` and the directories from its parent up to the root.
    async fn sync(&self, location: &Path) -> Result<()> {
        let file = self.inner.path_to_filesystem(location)?;
        sync_blocking(vec![file], self.root.clone()).await
    }

    /// After a write that failed with `error`: if it is `AlreadyExists`, syncs the existing
    /// object at `location` (a sync error replaces `error`). Returns the error to report.
    async fn sync_existing(&self, location: &Path, error: object_store::Error) -> object_store::Error {
        if !matches!(error, object_store::Error::AlreadyExists { .. }) {
            return error;
        }
        match self.sync(location).await {
            Ok(()) => error,
            Err(sync_error) => sync_error,
        }
    }
}

impl fmt::Display for DurableLocal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DurableLocal({})", self.inner)
    }
}

/// Runs [`sync_paths`] on the blocking pool.
async fn sync_blocking(files: Vec<PathBuf>, root: PathBuf) -> Result<()> {
    tokio::task::spawn_blocking(move || sync_paths(&files, &root))
        .await
        .map_err(|e| object_store::Error::Generic { store: STORE, source: Box::new(e) })?
}

/// Fsyncs each of `files`, then each directory from its parent up to and including `root`
/// (each directory once). A path that is not below `root` has only its parent synced.
fn sync_paths(files: &[PathBuf], root: &std::path::Path) -> Result<()> {
    let error = |path: &std::path::Path, e: io::Error| object_store::Error::Generic {
        store: STORE,
        source: format!("cannot fsync {}: {e}", path.display()).into(),
    };
    let mut dirs: Vec<&std::path::Path> = Vec::new();
    for file in files {
        File::open(file).and_then(|f| f.sync_all()).map_err(|e| error(file, e))?;
        let mut dir = file.parent();
        while let Some(d) = dir {
            if !dirs.contains(&d) {
                dirs.push(d);
            }
            if d == root || !d.starts_with(root) {
                break;
            }
            dir = d.parent();
        }
    }
    for dir in dirs {
        sync_dir(dir).map_err(|e| error(dir, e))?;
    }
    Ok(())
}

/// Fsyncs a directory: makes the names in it durable.
fn sync_dir(dir: &std::path::Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[async_trait]
impl ObjectStore for DurableLocal {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        match self.inner.put_opts(location, payload, opts).await {
            Ok(result) => {
                self.sync(location).await?;
                Ok(result)
            }
            Err(e) => Err(self.sync_existing(location, e).await),
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let file = self.inner.path_to_filesystem(location)?;
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(DurableUpload { inner, file, root: self.root.clone() }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_range(&self, location: &Path, range: Range<u64>) -> Result<bytes::Bytes> {
        self.inner.get_range(location, range).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    async fn head(&self, location: &Path) -> Result<ObjectMeta> {
        self.inner.head(location).await
    }

    async fn delete(&self, location: &Path) -> Result<()> {
        self.inner.delete(location).await
    }

    fn delete_stream<'a>(&'a self, locations: BoxStream<'a, Result<Path>>) -> BoxStream<'a, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy(&self, from: &Path, to: &Path) -> Result<()> {
        self.inner.copy(from, to).await?;
        self.sync(to).await
    }

    async fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let source = self.inner.path_to_filesystem(from)?;
        let target = self.inner.path_to_filesystem(to)?;
        self.inner.rename(from, to).await?;
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            sync_paths(&[target], &root)?;
            // The source's name is gone: sync its directory too (once more if it is the same).
            match source.parent() {
                Some(dir) => sync_dir(dir).map_err(|e| object_store::Error::Generic {
                    store: STORE,
                    source: format!("cannot fsync {}: {e}", dir.display()).into(),
                }),
                None => Ok(()),
            }
        })
        .await
        .map_err(|e| object_store::Error::Generic { store: STORE, source: Box::new(e) })?
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> Result<()> {
        match self.inner.copy_if_not_exists(from, to).await {
            Ok(()) => self.sync(to).await,
            Err(e) => Err(self.sync_existing(to, e).await),
        }
    }
}

/// A [`LocalFileSystem`] multipart upload whose [`complete`](MultipartUpload::complete) syncs
/// the file it put in place, and its directories up to the root.
#[derive(Debug)]
struct DurableUpload {
    inner: Box<dyn MultipartUpload>,
    /// Where the upload ends up.
    file: PathBuf,
    /// The store's directory.
    root: PathBuf,
}

#[async_trait]
impl MultipartUpload for DurableUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let result = self.inner.complete().await?;
        sync_blocking(vec![self.file.clone()], self.root.clone()).await?;
        Ok(result)
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt as _;
    use object_store::{PutMode, PutPayload};

    use super::super::tests::{create, exercise, path, read};
    use super::super::{StorageConfig, open};
    use super::*;

    #[tokio::test]
    async fn local_store_creates_its_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("not/yet/there");
        let store = open(&StorageConfig::Local { path: path.clone() }).expect("open local");
        exercise(store.as_ref()).await;
        assert_eq!(std::fs::read(path.join("clicks/2024-01-01/05/_SUCCESS")).expect("file on disk"), b"{}");
    }

    #[test]
    fn local_dir_that_cannot_be_created_is_an_error() {
        let file = tempfile::NamedTempFile::new().expect("tempfile");
        let err = open(&StorageConfig::Local { path: file.path().join("sub") }).expect_err("error");
        assert!(err.contains("cannot create the directory"), "{err}");
    }

    /// What the close protocol uses beyond [`exercise`]: `copy_if_not_exists` (create-only),
    /// `delete`, `list_with_delimiter`, and the other writes, all through the wrapper.
    #[tokio::test]
    async fn copies_renames_multipart_deletes_and_listing_work_through_the_wrapper() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&StorageConfig::Local { path: dir.path().to_owned() }).expect("open local");
        assert!(store.to_string().starts_with("DurableLocal(LocalFileSystem("), "{store}");
        let staged = "_staging/clicks/2024-01-01/05/final-1.avro";
        let published = "clicks/2024-01-01/05/part-0.avro";
        create(store.as_ref(), staged, b"merged").await.expect("create staged");

        store.copy_if_not_exists(&path(staged), &path(published)).await.expect("copy_if_not_exists");
        assert_eq!(read(store.as_ref(), published).await.expect("get published"), "merged");
        create(store.as_ref(), "_staging/other", b"different").await.expect("create other");
        match store.copy_if_not_exists(&path("_staging/other"), &path(published)).await {
            Err(object_store::Error::AlreadyExists { .. }) => {}
            other => {
                panic!("copy_if_not_exists onto an existing object: expected AlreadyExists, got {other:?}")
            }
        }
        assert_eq!(read(store.as_ref(), published).await.expect("published kept"), "merged");

        store.copy(&path("_staging/other"), &path("_staging/copied")).await.expect("copy");
        store.rename(&path("_staging/copied"), &path("_staging/moved/here")).await.expect("rename");
        assert_eq!(read(store.as_ref(), "_staging/moved/here").await.expect("get renamed"), "different");
        assert!(matches!(
            read(store.as_ref(), "_staging/copied").await,
            Err(object_store::Error::NotFound { .. })
        ));
        store
            .rename_if_not_exists(&path("_staging/moved/here"), &path("_staging/moved/again"))
            .await
            .expect("rename_if_not_exists");

        let mut upload = store.put_multipart(&path("_staging/big/upload")).await.expect("multipart");
        upload.put_part(PutPayload::from_static(b"one,")).await.expect("part 1");
        upload.put_part(PutPayload::from_static(b"two")).await.expect("part 2");
        upload.complete().await.expect("complete");
        assert_eq!(read(store.as_ref(), "_staging/big/upload").await.expect("get multipart"), "one,two");

        let listing = store.list_with_delimiter(Some(&path("_staging"))).await.expect("list_with_delimiter");
        let mut prefixes: Vec<String> = listing.common_prefixes.iter().map(ToString::to_string).collect();
        prefixes.sort();
        assert_eq!(prefixes, ["_staging/big", "_staging/clicks", "_staging/moved"]);
        let objects: Vec<String> = listing.objects.iter().map(|m| m.location.to_string()).collect();
        assert_eq!(objects, ["_staging/other"]);

        store.delete(&path(staged)).await.expect("delete");
        let under: Vec<ObjectMeta> =
            store.list(Some(&path("_staging/clicks"))).try_collect().await.expect("list");
        assert!(under.is_empty(), "{under:?}");
        // The published copy is a hard link: deleting the staged name keeps it.
        assert_eq!(read(store.as_ref(), published).await.expect("published after delete"), "merged");
        assert!(matches!(store.delete(&path(staged)).await, Err(object_store::Error::NotFound { .. })));
    }

    #[tokio::test]
    async fn update_puts_are_still_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DurableLocal::open(dir.path()).expect("open");
        let opts = PutOptions {
            mode: PutMode::Update(object_store::UpdateVersion { e_tag: None, version: None }),
            ..PutOptions::default()
        };
        let err = store.put_opts(&path("a"), PutPayload::from_static(b"x"), opts).await.expect_err("update");
        assert!(matches!(err, object_store::Error::NotImplemented), "{err:?}");
    }

    #[test]
    fn sync_paths_stops_at_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        std::fs::create_dir_all(root.join("a/b")).expect("mkdir");
        std::fs::write(root.join("a/b/f"), b"x").expect("write");
        sync_paths(&[root.join("a/b/f")], &root).expect("sync");
        let err = sync_paths(&[root.join("a/missing")], &root).expect_err("missing file");
        assert!(err.to_string().contains("cannot fsync"), "{err}");
    }
}
