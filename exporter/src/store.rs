//! The bucket operations the exporter needs from object storage: create-only writes with
//! retries, listing a bucket, reading manifests and id indexes.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt as _;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};

use crate::error::{Error, Result};
use crate::manifest::{self, BucketKey, MANIFEST, Manifest};
use crate::metrics::Metrics;

/// Longest wait between retries of a failed write.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// Object storage as the exporter uses it.
#[derive(Debug, Clone)]
pub(crate) struct Buckets {
    pub store: Arc<dyn ObjectStore>,
    pub retry_initial: Duration,
    pub metrics: Arc<Metrics>,
}

/// Whether a write created the object or found it already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Created {
    /// This call created it.
    Now,
    /// It existed (a retry whose first attempt had succeeded, or another replica).
    Existed,
}

impl Buckets {
    /// Creates `path` with `bytes` unless it exists (ifGenerationMatch=0 on GCS), retrying
    /// other failures with backoff until it succeeds.
    pub(crate) async fn create(&self, path: &Path, bytes: Bytes) -> Created {
        let mut delay = self.retry_initial;
        loop {
            let opts = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
            match self.store.put_opts(path, PutPayload::from(bytes.clone()), opts).await {
                Ok(_) => {
                    self.metrics.bytes_written.inc_by(bytes.len() as u64);
                    return Created::Now;
                }
                Err(object_store::Error::AlreadyExists { .. }) => return Created::Existed,
                Err(e) => {
                    self.metrics.write_failures.inc();
                    tracing::warn!(%path, error = %e, delay_ms = delay.as_millis() as u64, "write failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_RETRY_DELAY);
                }
            }
        }
    }

    /// Names (last path segment) of the objects of a bucket.
    pub(crate) async fn list(&self, key: &BucketKey) -> Result<Vec<String>> {
        let prefix = Path::from(manifest::prefix(key));
        let metas: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        Ok(metas.into_iter().filter_map(|m| m.location.filename().map(str::to_owned)).collect())
    }

    /// Reads an object.
    pub(crate) async fn read(&self, path: &Path) -> Result<Bytes> {
        Ok(self.store.get(path).await?.bytes().await?)
    }

    /// The manifest of a bucket, if it is closed.
    pub(crate) async fn manifest(&self, key: &BucketKey) -> Result<Option<Manifest>> {
        let path = manifest::object(key, MANIFEST);
        match self.store.get(&path).await {
            Ok(r) => {
                let bytes = r.bytes().await?;
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| Error::Manifest { path: path.to_string(), reason: e.to_string() })
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The ids of a closed bucket (the id index its manifest names), empty when it has none.
    pub(crate) async fn closed_ids(&self, key: &BucketKey) -> Result<HashSet<String>> {
        let Some(m) = self.manifest(key).await? else { return Ok(HashSet::new()) };
        let path = manifest::object(key, &m.ids_index);
        match self.store.get(&path).await {
            Ok(r) => {
                let bytes = r.bytes().await?;
                let mut text = String::new();
                use std::io::Read as _;
                flate2::read::GzDecoder::new(&bytes[..])
                    .read_to_string(&mut text)
                    .map_err(|e| Error::Manifest { path: path.to_string(), reason: e.to_string() })?;
                Ok(text.lines().map(str::to_owned).collect())
            }
            Err(object_store::Error::NotFound { .. }) => Ok(HashSet::new()),
            Err(e) => Err(e.into()),
        }
    }
}
