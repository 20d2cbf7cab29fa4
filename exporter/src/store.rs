//! Object storage as the exporter uses it: create-only writes that count an existing object
//! as written only when it holds the same bytes, reads that tell "absent" from "failed",
//! listings, copies and deletes.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt as _;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::layout::{self, COMMIT, HourKey};
use crate::manifest::Commit;
use crate::metrics::Metrics;

/// Longest wait between retries of a failed write.
pub(crate) const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// Object storage as the exporter uses it.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    pub store: Arc<dyn ObjectStore>,
    pub retry_initial: Duration,
    pub metrics: Arc<Metrics>,
}

/// Whether a create made the object or found it already there with the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Created {
    /// This call created it.
    Now,
    /// It existed with exactly these bytes (a retry whose first attempt had succeeded).
    Existed,
}

impl Store {
    /// Creates `path` with `bytes` unless it exists (`ifGenerationMatch=0` on GCS). An existing
    /// object counts only if its bytes are the same; otherwise [`Error::Conflict`].
    pub(crate) async fn create(&self, path: &Path, bytes: Bytes) -> Result<Created> {
        let opts = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        match self.store.put_opts(path, PutPayload::from(bytes.clone()), opts).await {
            Ok(_) => {
                self.metrics.bytes_written.inc_by(bytes.len() as u64);
                Ok(Created::Now)
            }
            Err(object_store::Error::AlreadyExists { .. }) => match self.get(path).await? {
                Some(existing) if existing == bytes => Ok(Created::Existed),
                Some(_) => Err(Error::Conflict { path: path.to_string() }),
                // Deleted in between: try again.
                None => Box::pin(self.create(path, bytes)).await,
            },
            Err(e) => {
                self.metrics.write_failures.inc();
                Err(e.into())
            }
        }
    }

    /// [`create`](Self::create), retrying failures with backoff until it succeeds or
    /// conflicts.
    pub(crate) async fn create_retrying(&self, path: &Path, bytes: Bytes) -> Result<Created> {
        let mut delay = self.retry_initial;
        loop {
            match self.create(path, bytes.clone()).await {
                Ok(c) => return Ok(c),
                Err(e @ Error::Conflict { .. }) => return Err(e),
                Err(e) => {
                    tracing::warn!(%path, error = %e, delay_ms = delay.as_millis() as u64, "write failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_RETRY_DELAY);
                }
            }
        }
    }

    /// Writes `path`, replacing what is there (heartbeats and cursors only).
    pub(crate) async fn overwrite(&self, path: &Path, bytes: Bytes) -> Result<()> {
        self.store.put(path, PutPayload::from(bytes)).await?;
        Ok(())
    }

    /// The bytes of `path`, `None` when it does not exist.
    pub(crate) async fn get(&self, path: &Path) -> Result<Option<Bytes>> {
        match self.store.get(path).await {
            Ok(r) => Ok(Some(r.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The bytes of `path`, which must exist.
    pub(crate) async fn read(&self, path: &Path) -> Result<Bytes> {
        Ok(self.store.get(path).await?.bytes().await?)
    }

    /// `path` parsed as JSON, `None` when it does not exist.
    pub(crate) async fn get_json<T: DeserializeOwned>(&self, path: &Path) -> Result<Option<T>> {
        let Some(bytes) = self.get(path).await? else { return Ok(None) };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Manifest { path: path.to_string(), reason: e.to_string() })
    }

    /// Names (relative to `prefix`) of every object below `prefix`.
    pub(crate) async fn list(&self, prefix: &Path) -> Result<Vec<String>> {
        let metas: Vec<_> = self.store.list(Some(prefix)).try_collect().await?;
        let base = format!("{prefix}/");
        Ok(metas
            .into_iter()
            .filter_map(|m| m.location.as_ref().strip_prefix(&base).map(str::to_owned))
            .collect())
    }

    /// Deletes `path`; a missing object is not an error.
    pub(crate) async fn delete(&self, path: &Path) -> Result<()> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes every object below `prefix`; returns how many.
    pub(crate) async fn delete_all(&self, prefix: &Path) -> Result<usize> {
        let names = self.list(prefix).await?;
        for name in &names {
            self.delete(&Path::from(format!("{prefix}/{name}"))).await?;
        }
        Ok(names.len())
    }

    /// Copies `from` to `to` unless `to` exists: a server-side copy-if-not-exists where the
    /// store has one, else a read and a create-only write. `to` existing counts as done
    /// (its name is unique to the one commit that lists it). Fails if neither exists.
    pub(crate) async fn copy_create(&self, from: &Path, to: &Path) -> Result<()> {
        match self.store.copy_if_not_exists(from, to).await {
            Ok(()) | Err(object_store::Error::AlreadyExists { .. }) => return Ok(()),
            Err(object_store::Error::NotFound { .. }) => {
                // Published and cleaned up by someone else already?
                return match self.store.head(to).await {
                    Ok(_) => Ok(()),
                    Err(e) => Err(e.into()),
                };
            }
            Err(e) => tracing::debug!(%from, %to, error = %e, "no server-side copy; copying through"),
        }
        let Some(bytes) = self.get(from).await? else {
            return match self.store.head(to).await {
                Ok(_) => Ok(()),
                Err(e) => Err(e.into()),
            };
        };
        let opts = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        match self.store.put_opts(to, PutPayload::from(bytes), opts).await {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The commit record of an hour, if it was committed.
    pub(crate) async fn commit(&self, key: &HourKey) -> Result<Option<Commit>> {
        self.get_json(&layout::hour_object(key, COMMIT)).await
    }

    /// A gzipped newline-separated id list (an id index or a late record); empty when absent.
    pub(crate) async fn read_ids(&self, path: &Path) -> Result<HashSet<String>> {
        let Some(bytes) = self.get(path).await? else { return Ok(HashSet::new()) };
        let mut text = String::new();
        use std::io::Read as _;
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .map_err(|e| Error::Manifest { path: path.to_string(), reason: e.to_string() })?;
        Ok(text.lines().map(str::to_owned).collect())
    }
}

/// Gzipped newline-separated ids, in the order given.
pub(crate) fn encode_ids<'a>(ids: impl IntoIterator<Item = &'a str>) -> Bytes {
    use std::io::Write as _;
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for id in ids {
        let _ = z.write_all(id.as_bytes());
        let _ = z.write_all(b"\n");
    }
    Bytes::from(z.finish().unwrap_or_default())
}
