//! Opening the object store the buckets are written to: a local directory, Google Cloud
//! Storage (or fake-gcs-server, its emulator), or memory.
//!
//! ```toml
//! [storage]
//! kind = "gcs"
//! bucket = "events"
//! prefix = "exports"                     # optional
//! # endpoint = "http://127.0.0.1:4443"   # fake-gcs-server; no credentials are sent
//! ```
//!
//! * `local`: `DurableLocal` (`storage/local.rs`), `object_store`'s `LocalFileSystem` that fsyncs every
//!   file it writes, and its directories, before the write returns.
//! * `gcs` without an `endpoint`: `object_store`'s GCS client, requests to
//!   `https://storage.googleapis.com` unchanged.
//! * `gcs` with an `endpoint`: the same client with the upload adapter of `storage/emulator.rs` for
//!   fake-gcs-server.
//! * `memory`: `object_store`'s `InMemory`.

mod emulator;
mod local;

use std::path::PathBuf;
use std::sync::Arc;

use object_store::gcp::{GoogleCloudStorage, GoogleCloudStorageBuilder};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, RetryConfig};

/// Where buckets are written. Parsed from the exporter config (`[storage]`, `kind = ...`).
#[derive(Debug, Clone, serde::Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum StorageConfig {
    /// A local directory (the default for the local pipeline), created if missing.
    Local {
        /// The directory; object names are paths below it.
        path: PathBuf,
    },
    /// Google Cloud Storage.
    ///
    /// Credentials: `object_store`'s defaults from the environment
    /// (`GOOGLE_APPLICATION_CREDENTIALS`, `GOOGLE_SERVICE_ACCOUNT[_KEY]`, gcloud's application
    /// default credentials, else the metadata server: workload identity). With `endpoint`
    /// (fake-gcs-server) none are needed and none are sent.
    Gcs {
        /// The bucket name.
        bucket: String,
        /// Base URL of a GCS emulator such as fake-gcs-server, e.g. `http://127.0.0.1:4443`.
        #[serde(default)]
        endpoint: Option<String>,
        /// Object names are written below this prefix of the bucket (e.g. `exports/v1`).
        #[serde(default)]
        prefix: Option<String>,
    },
    /// In memory, lost when the process ends (tests).
    Memory,
}

/// Opens the store `config` describes. No request is made: a missing bucket or bad credentials
/// show with the first read or write.
///
/// # Errors
///
/// A message naming what was wrong: the directory cannot be created or synced, an empty bucket name, an
/// `endpoint` that is not an `http(s)://` URL, a `prefix` that is not a valid object path, or
/// `object_store` refusing the GCS configuration.
pub fn open(config: &StorageConfig) -> Result<Arc<dyn ObjectStore>, String> {
    match config {
        StorageConfig::Local { path } => Ok(Arc::new(local::DurableLocal::open(path)?)),
        StorageConfig::Gcs { bucket, endpoint, prefix } => {
            open_gcs(bucket, endpoint.as_deref(), prefix.as_deref(), RetryConfig::default())
        }
        StorageConfig::Memory => Ok(Arc::new(InMemory::new())),
    }
}

/// [`open`] for [`StorageConfig::Gcs`], with the retry policy of `object_store`'s client.
fn open_gcs(
    bucket: &str,
    endpoint: Option<&str>,
    prefix: Option<&str>,
    retry: RetryConfig,
) -> Result<Arc<dyn ObjectStore>, String> {
    if bucket.is_empty() {
        return Err("storage: gcs: the bucket name is empty".to_owned());
    }
    let prefix = prefix.map(parse_prefix).transpose()?.flatten();
    let builder = match endpoint {
        None => GoogleCloudStorageBuilder::from_env(),
        Some(endpoint) => emulator::emulator_builder(endpoint)?,
    };
    let store = builder
        .with_bucket_name(bucket)
        .with_retry(retry)
        .build()
        .map_err(|e| format!("storage: gcs bucket {bucket:?}: {e}"))?;
    Ok(with_prefix(store, prefix))
}

/// The prefix as an object path; `None` when it is empty or only slashes.
fn parse_prefix(prefix: &str) -> Result<Option<Path>, String> {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(None);
    }
    Path::parse(trimmed).map(Some).map_err(|e| format!("storage: gcs: invalid prefix {prefix:?}: {e}"))
}

/// `store`, below `prefix` if there is one.
fn with_prefix(store: GoogleCloudStorage, prefix: Option<Path>) -> Arc<dyn ObjectStore> {
    match prefix {
        Some(prefix) => Arc::new(PrefixStore::new(store, prefix)),
        None => Arc::new(store),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures::TryStreamExt as _;
    use object_store::{PutMode, PutOptions, PutPayload};
    use testkit::FakeGcs;

    use super::*;

    /// Checks the name rather than escaping it as `Path::from` does.
    pub(super) fn path(name: &str) -> Path {
        Path::parse(name).expect("valid object path")
    }

    /// A store on fake-gcs-server's `bucket`, below `prefix`.
    pub(super) fn gcs(server: &FakeGcs, bucket: &str, prefix: Option<&str>) -> Arc<dyn ObjectStore> {
        open(&StorageConfig::Gcs {
            bucket: bucket.to_owned(),
            endpoint: Some(server.endpoint()),
            prefix: prefix.map(str::to_owned),
        })
        .expect("open gcs")
    }

    /// The sorted names below `prefix`.
    pub(super) async fn names(store: &dyn ObjectStore, prefix: &str) -> Vec<String> {
        let prefix = path(prefix);
        let metas: Vec<_> = store.list(Some(&prefix)).try_collect().await.expect("list");
        let mut names: Vec<String> = metas.into_iter().map(|m| m.location.to_string()).collect();
        names.sort();
        names
    }

    /// A create-only put.
    pub(super) async fn create(
        store: &dyn ObjectStore,
        name: &str,
        data: &'static [u8],
    ) -> object_store::Result<()> {
        let opts = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        store.put_opts(&path(name), PutPayload::from_static(data), opts).await.map(|_| ())
    }

    /// The content of `name`.
    pub(super) async fn read(store: &dyn ObjectStore, name: &str) -> object_store::Result<Bytes> {
        store.get(&path(name)).await?.bytes().await
    }

    /// What the exporter needs from every store: put, get, list by prefix, create-only puts.
    pub(super) async fn exercise(store: &dyn ObjectStore) {
        let a = "clicks/2024-01-01/05/part-a.avro";
        let b = "clicks/2024-01-01/06/part b=ü.avro";
        store.put(&path(a), PutPayload::from_static(b"alpha")).await.expect("put a");
        store.put(&path(b), PutPayload::from_static(b"beta")).await.expect("put b");
        store
            .put(&path("views/2024-01-01/05/part-c.avro"), PutPayload::from_static(b""))
            .await
            .expect("put c");

        assert_eq!(read(store, a).await.expect("get a"), "alpha");
        assert_eq!(read(store, b).await.expect("get b"), "beta");
        assert_eq!(read(store, "views/2024-01-01/05/part-c.avro").await.expect("get c"), "");
        assert_eq!(store.head(&path(a)).await.expect("head a").size, 5);
        assert!(matches!(read(store, "clicks/missing").await, Err(object_store::Error::NotFound { .. })));

        assert_eq!(names(store, "clicks/2024-01-01/05").await, [a]);
        assert_eq!(names(store, "clicks").await, [a, b]);
        assert_eq!(names(store, "clicks/2024-01-01/07").await, Vec::<String>::new());
        assert_eq!(names(store, "").await.len(), 3);

        // A create-only put of a new name succeeds, of an existing one fails and keeps it.
        let fresh = "clicks/2024-01-01/05/_SUCCESS";
        create(store, fresh, b"{}").await.expect("create a new object");
        assert_eq!(read(store, fresh).await.expect("get created"), "{}");
        match create(store, a, b"overwritten").await {
            Err(object_store::Error::AlreadyExists { .. }) => {}
            other => panic!("create-only put of an existing object: expected AlreadyExists, got {other:?}"),
        }
        match create(store, fresh, b"again").await {
            Err(object_store::Error::AlreadyExists { .. }) => {}
            other => panic!("second create-only put: expected AlreadyExists, got {other:?}"),
        }
        assert_eq!(read(store, a).await.expect("get a after create"), "alpha");
        assert_eq!(read(store, fresh).await.expect("get fresh after create"), "{}");

        // An overwriting put still overwrites.
        store.put(&path(a), PutPayload::from_static(b"alpha2")).await.expect("overwrite a");
        assert_eq!(read(store, a).await.expect("get a after overwrite"), "alpha2");
    }

    #[tokio::test]
    async fn memory_store() {
        exercise(open(&StorageConfig::Memory).expect("open memory").as_ref()).await;
    }

    #[tokio::test]
    async fn gcs_prefix_puts_objects_below_it() {
        let server = FakeGcs::shared();
        let bucket = server.create_unique_bucket("storage");
        let store = gcs(server, &bucket, Some("/exports/v1/"));
        exercise(store.as_ref()).await;
        assert_eq!(server.list_objects_under(&bucket, "clicks"), Vec::<String>::new());
        assert_eq!(server.list_objects(&bucket).len(), 4);
        assert_eq!(
            server.list_objects_under(&bucket, "exports/v1/clicks/2024-01-01/05/"),
            ["exports/v1/clicks/2024-01-01/05/_SUCCESS", "exports/v1/clicks/2024-01-01/05/part-a.avro"]
        );
        // Objects outside the prefix are invisible.
        server.upload_object(&bucket, "elsewhere/x", b"x");
        assert_eq!(names(store.as_ref(), "").await.len(), 4);
    }

    #[test]
    fn gcs_without_endpoint_opens_without_io() {
        let config = StorageConfig::Gcs { bucket: "b".into(), endpoint: None, prefix: Some("p".into()) };
        assert!(open(&config).is_ok());
    }

    #[test]
    fn bad_gcs_configs_are_rejected() {
        let gcs = |bucket: &str, endpoint: Option<&str>, prefix: Option<&str>| {
            open(&StorageConfig::Gcs {
                bucket: bucket.into(),
                endpoint: endpoint.map(str::to_owned),
                prefix: prefix.map(str::to_owned),
            })
            .err()
            .unwrap_or_default()
        };
        assert!(gcs("", None, None).contains("bucket name is empty"));
        assert!(gcs("b", Some("ftp://x"), None).contains("endpoint \"ftp://x\""));
        assert!(gcs("b", Some("127.0.0.1:4443"), None).contains("endpoint"));
        assert!(gcs("b", None, Some("a//b")).contains("invalid prefix \"a//b\""));
        assert!(gcs("b", Some("http://127.0.0.1:4443/"), Some("/")).is_empty());
    }

    #[test]
    fn config_parses_from_toml() {
        #[derive(Debug, serde::Deserialize)]
        struct Wrapper {
            storage: StorageConfig,
        }
        let parse = |text: &str| toml::from_str::<Wrapper>(text).map(|w| w.storage);
        assert_eq!(
            parse("[storage]\nkind = \"local\"\npath = \"buckets\"").expect("local"),
            StorageConfig::Local { path: "buckets".into() }
        );
        assert_eq!(parse("[storage]\nkind = \"memory\"").expect("memory"), StorageConfig::Memory);
        assert_eq!(
            parse("[storage]\nkind = \"gcs\"\nbucket = \"events\"").expect("gcs"),
            StorageConfig::Gcs { bucket: "events".into(), endpoint: None, prefix: None }
        );
        assert_eq!(
            parse("[storage]\nkind = \"gcs\"\nbucket = \"e\"\nendpoint = \"http://127.0.0.1:1\"\nprefix = \"x/y\"")
                .expect("gcs with endpoint"),
            StorageConfig::Gcs {
                bucket: "e".into(),
                endpoint: Some("http://127.0.0.1:1".into()),
                prefix: Some("x/y".into())
            }
        );
        assert!(parse("[storage]\nkind = \"gcs\"").is_err(), "bucket is required");
        assert!(parse("[storage]\nkind = \"gcs\"\nbucket = \"e\"\nregion = \"x\"").is_err(), "unknown field");
        assert!(parse("[storage]\nkind = \"s4\"").is_err(), "unknown kind");
    }
}
