//! A local HTTP server that speaks the event-service ingest API, for testing senders (the
//! tailer) and for measuring their throughput.
//!
//! [`IngestSink`] answers `POST /v1/events` like the event-service (see
//! `event-service/src/ingest.rs`): protobuf `EventBatch`, JSON array and NDJSON bodies,
//! optionally gzipped, optional bearer auth, and the same statuses and JSON answers. Instead of
//! publishing, it records what it accepted, so a test can check that every event arrived
//! exactly once ([`IngestSink::accepted_ids`]). Queued [`SinkResponse`]s inject failures
//! (error statuses, delays, dropped connections) into the next requests.
//!
//! In counting mode ([`SinkOptions::with_record`]`(false)`) it only counts the events of each
//! batch without decoding them, cheap enough to run as the server of a throughput benchmark.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use testkit::{IngestSink, SinkOptions, SinkResponse};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let sink = IngestSink::start(SinkOptions::default()).await;
//! // The first request fails; the sender must retry it.
//! sink.push_responses([SinkResponse::retry_after(503, 1)]);
//!
//! let client = reqwest::Client::builder().no_proxy().build().expect("client");
//! let send = || {
//!     client
//!         .post(sink.url())
//!         .header("content-type", "application/x-ndjson")
//!         .body("{\"id\":\"e1\",\"type\":\"play\"}\n")
//!         .send()
//! };
//! assert_eq!(send().await.expect("first").status(), 503);
//! assert_eq!(send().await.expect("retry").status(), 200);
//!
//! assert!(sink.wait_until(Duration::from_secs(5), |stats| stats.unique_ids == 1).await);
//! assert_eq!(sink.accepted_ids()["e1"], 1);
//! assert_eq!(sink.stats().canned, 1);
//! # }
//! ```

mod decode;
mod server;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use event_model::{Event, Registry, RejectKind};
use hyper::StatusCode;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

/// The path of the ingest endpoint.
const INGEST_PATH: &str = "/v1/events";

/// How an [`IngestSink`] checks, records and bounds requests.
///
/// The default ([`SinkOptions::default`]) accepts every event that decodes, without a
/// registry and without authentication, records every accepted event, and allows bodies of up
/// to [`SinkOptions::DEFAULT_MAX_BODY_BYTES`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SinkOptions {
    registry: Option<Registry>,
    token: Option<String>,
    record: bool,
    max_body_bytes: usize,
}

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions {
            registry: None,
            token: None,
            record: true,
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
        }
    }
}

impl SinkOptions {
    /// The default body limit, 10 MiB, the event-service's default.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

    /// The same as [`SinkOptions::default`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates every event against `registry` exactly like the event-service
    /// ([`Registry::validate_event`] for protobuf, [`Registry::validate_json`] for JSON, with
    /// [`Enrichment::new`](event_model::Enrichment::new) at the time of the request): invalid
    /// events are rejected with the registry's reason and kind, valid ones are recorded
    /// enriched (a missing id is generated, `received_time` is set).
    ///
    /// Without a registry every event that decodes is accepted and recorded as sent. In
    /// counting mode the registry is not consulted, since events are not decoded.
    pub fn with_registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Requires `Authorization: Bearer <token>`; requests without it, or with another token,
    /// get `401` with `WWW-Authenticate: Bearer` and are not processed.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// `true` (the default) decodes and records every accepted event. `false` is counting
    /// mode: the events of each batch are counted without being decoded (for a protobuf body
    /// only the batch's entry headers are read), nothing is recorded, nothing is rejected, and
    /// [`IngestSink::accepted_ids`], [`IngestSink::accepted_events`] and
    /// [`IngestSink::rejections`] stay empty.
    pub fn with_record(mut self, record: bool) -> Self {
        self.record = record;
        self
    }

    /// The largest body accepted, in bytes, both as received and after gzip decompression;
    /// larger bodies get `413`.
    pub fn with_max_body_bytes(mut self, max_body_bytes: usize) -> Self {
        self.max_body_bytes = max_body_bytes;
        self
    }
}

/// A canned answer for one request to [`IngestSink`], queued with
/// [`IngestSink::push_responses`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkResponse {
    /// Answer this status with a JSON error body (`{"error": "..."}`) without processing the
    /// request. See [`SinkResponse::status`] and [`SinkResponse::retry_after`].
    Status {
        /// The HTTP status code (100..=999).
        code: u16,
        /// Sent as the `Retry-After` header (in seconds) when set.
        retry_after_secs: Option<u64>,
    },
    /// Wait this long, then process the request normally.
    Delay(Duration),
    /// Close the connection without answering and without processing the request.
    DropConnection,
    /// Process and record the request, then close the connection without answering. A
    /// sender that re-sends the batch makes its ids count twice.
    ProcessThenDrop,
}

impl SinkResponse {
    /// A [`SinkResponse::Status`] without `Retry-After`.
    pub fn status(code: u16) -> Self {
        SinkResponse::Status { code, retry_after_secs: None }
    }

    /// A [`SinkResponse::Status`] with `Retry-After: secs`, e.g. `retry_after(429, 1)`.
    pub fn retry_after(code: u16, secs: u64) -> Self {
        SinkResponse::Status { code, retry_after_secs: Some(secs) }
    }
}

/// Counters of an [`IngestSink`], a snapshot taken by [`IngestSink::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkStats {
    /// Every HTTP request received, on any path, whatever its answer.
    pub requests: u64,
    /// Requests processed into a `200` answer (including [`SinkResponse::ProcessThenDrop`],
    /// whose answer is never sent).
    pub requests_ok: u64,
    /// Requests that took a [`SinkResponse`] from the queue, of any kind.
    pub canned: u64,
    /// Events accepted, counting every re-sent copy.
    pub events_accepted: u64,
    /// Events rejected.
    pub events_rejected: u64,
    /// Request body bytes received, as sent on the wire (compressed, if they were).
    pub bytes_received: u64,
    /// Distinct ids among the accepted events (always 0 in counting mode).
    pub unique_ids: u64,
}

/// An event that an [`IngestSink`] rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkRejection {
    /// The event's id as sent; empty when it had none or could not be decoded.
    pub id: String,
    /// The event type; empty when it could not be read.
    pub event_type: String,
    /// The reason, as the event-service would answer it.
    pub reason: String,
    /// The class of the rejection (the answer's `kind` is [`RejectKind::as_str`]).
    pub kind: RejectKind,
}

#[derive(Default)]
struct State {
    responses: VecDeque<SinkResponse>,
    stats: SinkStats,
    ids: HashMap<String, u32>,
    events: Vec<Event>,
    rejections: Vec<SinkRejection>,
}

struct Shared {
    options: SinkOptions,
    state: Mutex<State>,
    /// Woken after every change of the state, for [`IngestSink::wait_until`].
    changed: Notify,
}

/// A local HTTP/1.1 server that answers the event-service ingest API (`POST /v1/events`) and
/// records what it accepts.
///
/// Connections are kept alive and served concurrently on the tokio runtime the sink was
/// started on. Besides the ingest endpoint it answers `GET /healthz` and `GET /readyz` with
/// `200 ok`, and anything else with `404`. Dropping the sink stops the server and closes every
/// open connection.
pub struct IngestSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// Dropping the sender stops the accept loop and every open connection.
    _shutdown: watch::Sender<()>,
}

impl fmt::Debug for IngestSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IngestSink")
            .field("addr", &self.addr)
            .field("record", &self.shared.options.record)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl IngestSink {
    /// Starts a sink on a free port of `127.0.0.1`.
    ///
    /// # Panics
    ///
    /// Panics if it cannot bind a port or is not called within a tokio runtime.
    pub async fn start(options: SinkOptions) -> IngestSink {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("IngestSink: cannot bind 127.0.0.1:0");
        Self::start_on(listener, options).await
    }

    /// Starts a sink on an already bound listener, e.g. on a chosen port in a benchmark's
    /// child process.
    ///
    /// # Panics
    ///
    /// Panics if the listener has no local address or this is not called within a tokio
    /// runtime.
    pub async fn start_on(listener: TcpListener, options: SinkOptions) -> IngestSink {
        let addr = listener.local_addr().expect("IngestSink: listener has no local address");
        let shared = Arc::new(Shared { options, state: Mutex::default(), changed: Notify::new() });
        let (shutdown_tx, shutdown_rx) = watch::channel(());
        tokio::spawn(server::accept_loop(listener, Arc::clone(&shared), shutdown_rx));
        IngestSink { addr, shared, _shutdown: shutdown_tx }
    }

    /// The address the sink listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The ingest endpoint, `http://127.0.0.1:PORT/v1/events` (a listener on an unspecified
    /// address is reached through the loopback address).
    pub fn url(&self) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}{INGEST_PATH}", SocketAddr::new(ip, self.addr.port()))
    }

    /// Appends canned answers for the next ingest requests. Each `POST /v1/events` takes the
    /// first one before it is processed; a [`SinkResponse::Status`] or
    /// [`SinkResponse::DropConnection`] request is then neither processed nor recorded, so the
    /// client must retry it. Requests to other paths take none.
    ///
    /// # Panics
    ///
    /// Panics if a [`SinkResponse::Status`] carries a code outside 100..=999.
    pub fn push_responses(&self, responses: impl IntoIterator<Item = SinkResponse>) {
        let responses: Vec<SinkResponse> = responses.into_iter().collect();
        for response in &responses {
            if let SinkResponse::Status { code, .. } = response {
                assert!(
                    StatusCode::from_u16(*code).is_ok(),
                    "IngestSink: invalid HTTP status code {code} in {response:?}"
                );
            }
        }
        self.shared.lock().responses.extend(responses);
    }

    /// Number of canned answers still queued.
    pub fn pending_responses(&self) -> usize {
        self.shared.lock().responses.len()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> SinkStats {
        self.shared.lock().stats
    }

    /// How many times each id was accepted (record mode). A count above 1 means the id was
    /// delivered more than once.
    pub fn accepted_ids(&self) -> HashMap<String, u32> {
        self.shared.lock().ids.clone()
    }

    /// The first accepted copy of each id, in arrival order (record mode).
    pub fn accepted_events(&self) -> Vec<Event> {
        self.shared.lock().events.clone()
    }

    /// Every rejected event, in arrival order (record mode).
    pub fn rejections(&self) -> Vec<SinkRejection> {
        self.shared.lock().rejections.clone()
    }

    /// Waits until `cond` holds for the counters or `timeout` has passed, and returns whether
    /// it held. `cond` is checked at once and again after every change of the counters.
    pub async fn wait_until(&self, timeout: Duration, cond: impl Fn(&SinkStats) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before the check, so a change between check and wait is not missed.
            let mut changed = pin!(self.shared.changed.notified());
            changed.as_mut().enable();
            if cond(&self.stats()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return cond(&self.stats());
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `f` to the state and wakes [`IngestSink::wait_until`].
    fn update<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let result = f(&mut self.lock());
        self.changed.notify_waiters();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use event_model::{EventBatch, Value, ValueKind};
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use hyper::header::{self, HeaderMap};
    use prost::Message as _;
    use std::io::Write;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    const PROTOBUF: &str = "application/x-protobuf";

    fn registry() -> Registry {
        Registry::from_toml_str(
            r#"
            [types.play]
            topic = "events-play"
            version = 1
            fields.user = { type = "string", required = true }
            fields.ms_played = { type = "int" }
            "#,
        )
        .expect("registry")
    }

    fn play(id: &str, ms_played: ValueKind) -> Event {
        let fields = [
            ("user".to_owned(), Value { kind: Some(ValueKind::StringValue("u1".into())) }),
            ("ms_played".to_owned(), Value { kind: Some(ms_played) }),
        ];
        Event {
            id: id.into(),
            r#type: "play".into(),
            fields: fields.into_iter().collect(),
            ..Event::default()
        }
    }

    fn batch(ids: &[&str]) -> Vec<u8> {
        EventBatch { events: ids.iter().map(|id| play(id, ValueKind::IntValue(5))).collect() }.encode_to_vec()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).expect("gzip write");
        encoder.finish().expect("gzip finish")
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder().no_proxy().build().expect("client")
    }

    /// Posts `body` and returns the status, the headers and the JSON answer.
    async fn post(
        sink: &IngestSink,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, HeaderMap, serde_json::Value) {
        let mut request = client().post(sink.url()).body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("response");
        let (status, headers) = (response.status(), response.headers().clone());
        let body = response.bytes().await.expect("body");
        let json = serde_json::from_slice(&body).expect("JSON answer");
        (status, headers, json)
    }

    /// Reads one HTTP/1.1 response with a `content-length`: its head and its body.
    async fn read_response(stream: &mut TcpStream) -> (String, Vec<u8>) {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().expect("content-length"))
                    .expect("a content-length");
                if data.len() >= end + 4 + len {
                    return (head, data[end + 4..end + 4 + len].to_vec());
                }
            }
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "connection closed in a response: {:?}", String::from_utf8_lossy(&data));
            data.extend_from_slice(&buf[..n]);
        }
    }

    #[tokio::test]
    async fn protobuf_batch_is_validated_against_the_registry() {
        let sink = IngestSink::start(SinkOptions::new().with_registry(registry())).await;
        assert!(sink.url().starts_with("http://127.0.0.1:") && sink.url().ends_with("/v1/events"));
        let events = vec![
            play("a", ValueKind::IntValue(1)),
            play("b", ValueKind::StringValue("x".into())),
            play("c", ValueKind::IntValue(3)),
        ];
        let body = EventBatch { events }.encode_to_vec();
        let wire_len = body.len() as u64;
        let (status, headers, json) = post(&sink, &[("content-type", PROTOBUF)], body).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            json,
            serde_json::json!({
                "accepted": 2,
                "rejected": [
                    { "index": 1, "reason": "field `ms_played` is not an int", "kind": "wrong_type" },
                ],
            })
        );
        let stats = sink.stats();
        assert_eq!((stats.requests, stats.requests_ok, stats.canned), (1, 1, 0));
        assert_eq!((stats.events_accepted, stats.events_rejected, stats.unique_ids), (2, 1, 2));
        assert_eq!(stats.bytes_received, wire_len);
        assert_eq!(sink.accepted_ids(), HashMap::from([("a".to_owned(), 1), ("c".to_owned(), 1)]));
        let accepted = sink.accepted_events();
        assert_eq!(accepted.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["a", "c"]);
        assert!(accepted.iter().all(|e| e.schema_version == 1 && e.received_time.is_some()), "enriched");
        let rejections = sink.rejections();
        assert_eq!(rejections.len(), 1);
        assert_eq!((rejections[0].id.as_str(), rejections[0].event_type.as_str()), ("b", "play"));
        assert_eq!(rejections[0].kind, RejectKind::WrongType);

        let (status, _, json) = post(&sink, &[("content-type", PROTOBUF)], vec![0xff, 0xff]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(json["error"].as_str().expect("error").starts_with("body is not a protobuf EventBatch"));
        assert_eq!(sink.stats().requests_ok, 1);
    }

    #[tokio::test]
    async fn gzip_json_array_and_ndjson() {
        let sink = IngestSink::start(SinkOptions::default()).await;
        let array = gzip(br#"[{"id":"a","type":"play","fields":{"user":"u"}}, {"id":"b","type":"play"}]"#);
        let wire_len = array.len() as u64;
        let headers = [("content-type", "application/json"), ("content-encoding", "gzip")];
        let (status, _, json) = post(&sink, &headers, array).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(json, serde_json::json!({ "accepted": 2, "rejected": [] }));
        assert_eq!(sink.stats().bytes_received, wire_len);

        let ndjson = "{\"id\":\"c\",\"type\":\"play\"}\n\n{\"id\":\"a\",\"type\":\"play\"}\r\n[]\n";
        let (status, _, json) = post(&sink, &[("content-type", "application/x-ndjson")], ndjson).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(json["accepted"], 2);
        assert_eq!(json["rejected"][0]["index"], 2);
        assert_eq!(json["rejected"][0]["kind"], "malformed");
        let ids = sink.accepted_ids();
        assert_eq!((ids["a"], ids["b"], ids["c"]), (2, 1, 1));
        assert_eq!(sink.accepted_events()[0].fields["user"].kind, Some(ValueKind::StringValue("u".into())));
        assert_eq!(sink.stats().unique_ids, 3);

        let (status, _, _) = post(&sink, &headers, &b"not gzip"[..]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _, _) = post(&sink, &[("content-type", "application/json")], "{}").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn body_limit_applies_on_the_wire_and_after_gzip() {
        let sink = IngestSink::start(SinkOptions::default().with_max_body_bytes(1000)).await;
        let ndjson = [("content-type", "application/x-ndjson")];
        let (status, _, _) = post(&sink, &ndjson, vec![b' '; 1001]).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        let bomb = gzip(&[b'\n'; 5000]);
        assert!(bomb.len() < 1000);
        let (status, _, json) = post(&sink, &[ndjson[0], ("content-encoding", "gzip")], bomb).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(json["error"].as_str().expect("error").contains("decompressed"));
        // A chunked body (no Content-Length) is cut off at the limit.
        let mut stream = TcpStream::connect(sink.addr()).await.expect("connect");
        let head = "POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-ndjson\r\n\
                    transfer-encoding: chunked\r\n\r\n";
        stream.write_all(head.as_bytes()).await.expect("write head");
        for _ in 0..2 {
            stream.write_all(format!("258\r\n{}\r\n", " ".repeat(600)).as_bytes()).await.expect("chunk");
        }
        stream.write_all(b"0\r\n\r\n").await.expect("last chunk");
        let (head, _) = read_response(&mut stream).await;
        assert!(head.starts_with("http/1.1 413"), "{head}");
        assert_eq!(sink.stats().requests_ok, 0);
    }

    #[tokio::test]
    async fn canned_status_then_normal_processing() {
        let sink = IngestSink::start(SinkOptions::default()).await;
        sink.push_responses([SinkResponse::retry_after(503, 7), SinkResponse::status(429)]);
        assert_eq!(sink.pending_responses(), 2);
        let body = batch(&["a"]);
        let (status, headers, json) = post(&sink, &[("content-type", PROTOBUF)], body.clone()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers[header::RETRY_AFTER], "7");
        assert!(json["error"].as_str().expect("error").contains("injected 503"));
        let (status, headers, _) = post(&sink, &[("content-type", PROTOBUF)], body.clone()).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert!(headers.get(header::RETRY_AFTER).is_none());
        assert!(sink.accepted_ids().is_empty(), "canned requests are not processed");
        let (status, _, json) = post(&sink, &[("content-type", PROTOBUF)], body.clone()).await;
        assert_eq!((status, json["accepted"].as_u64()), (StatusCode::OK, Some(1)));
        let stats = sink.stats();
        assert_eq!((stats.requests, stats.requests_ok, stats.canned), (3, 1, 2));
        assert_eq!(stats.bytes_received, 3 * body.len() as u64);
        assert_eq!(sink.accepted_ids()["a"], 1);
        assert_eq!(sink.pending_responses(), 0);
    }

    #[tokio::test]
    async fn dropped_connections_and_delays() {
        let sink = IngestSink::start(SinkOptions::default()).await;
        sink.push_responses([
            SinkResponse::ProcessThenDrop,
            SinkResponse::DropConnection,
            SinkResponse::Delay(Duration::from_millis(100)),
        ]);
        let send =
            || client().post(sink.url()).header("content-type", PROTOBUF).body(batch(&["a", "b"])).send();
        let error = send().await.expect_err("processed, then dropped");
        assert!(error.status().is_none(), "got an HTTP status: {error:?}");
        assert_eq!(sink.accepted_ids()["a"], 1, "processed before the drop");
        let error = send().await.expect_err("dropped");
        assert!(error.status().is_none(), "got an HTTP status: {error:?}");
        assert_eq!(sink.accepted_ids()["a"], 1, "not processed");
        let started = Instant::now();
        assert_eq!(send().await.expect("delayed").status(), StatusCode::OK);
        assert!(started.elapsed() >= Duration::from_millis(100));
        // The batch of the dropped answer was re-sent: its ids count twice.
        assert_eq!(sink.accepted_ids(), HashMap::from([("a".to_owned(), 2), ("b".to_owned(), 2)]));
        let stats = sink.stats();
        assert_eq!((stats.requests, stats.requests_ok, stats.canned), (3, 2, 3));
        assert_eq!((stats.events_accepted, stats.unique_ids), (4, 2));
        assert_eq!(sink.accepted_events().len(), 2);
    }

    #[tokio::test]
    async fn counting_mode_counts_without_recording() {
        let options = SinkOptions::default().with_record(false).with_registry(registry());
        let sink = IngestSink::start(options).await;
        let mut invalid = EventBatch { events: vec![play("x", ValueKind::BoolValue(true))] }.encode_to_vec();
        invalid.extend(batch(&["a", "b", "a"])); // concatenated batches are one batch
        let (status, _, json) =
            post(&sink, &[("content-type", PROTOBUF), ("content-encoding", "gzip")], gzip(&invalid)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(json, serde_json::json!({ "accepted": 4, "rejected": [] }));
        let (_, _, json) = post(&sink, &[("content-type", "application/x-ndjson")], "{}\n{}\n").await;
        assert_eq!(json["accepted"], 2);
        let stats = sink.stats();
        assert_eq!((stats.requests_ok, stats.events_accepted, stats.events_rejected), (2, 6, 0));
        assert_eq!(stats.unique_ids, 0);
        assert!(sink.accepted_ids().is_empty() && sink.accepted_events().is_empty());
        assert!(sink.rejections().is_empty());
        let (status, _, _) = post(&sink, &[("content-type", PROTOBUF)], vec![0x0a, 0x05, 1]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "a truncated batch is still refused");
    }

    #[tokio::test]
    async fn bearer_token_and_content_type_are_checked() {
        let sink = IngestSink::start(SinkOptions::default().with_token("s3cret")).await;
        for auth in [None, Some("Bearer wrong"), Some("s3cret")] {
            let mut headers = vec![("content-type", PROTOBUF)];
            headers.extend(auth.map(|value| ("authorization", value)));
            let (status, response_headers, json) = post(&sink, &headers, batch(&["a"])).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
            assert_eq!(response_headers[header::WWW_AUTHENTICATE], "Bearer");
            assert_eq!(json["error"], "missing or invalid bearer token");
        }
        let auth = ("authorization", "Bearer s3cret");
        let (status, _, json) = post(&sink, &[("content-type", "text/plain"), auth], batch(&["a"])).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(json["error"].as_str().expect("error").starts_with("Content-Type must be"));
        let (status, _, _) = post(&sink, &[auth], batch(&["a"])).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "no content type");
        let (status, _, _) = post(&sink, &[("content-type", PROTOBUF), auth], batch(&["a"])).await;
        assert_eq!(status, StatusCode::OK);
        let stats = sink.stats();
        assert_eq!((stats.requests, stats.requests_ok, stats.unique_ids), (6, 1, 1));
    }

    #[tokio::test]
    async fn wait_until_gives_up_at_the_deadline() {
        let sink = IngestSink::start(SinkOptions::default()).await;
        let started = Instant::now();
        assert!(!sink.wait_until(Duration::from_millis(150), |stats| stats.requests > 0).await);
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(150) && elapsed < Duration::from_secs(5), "{elapsed:?}");
        assert!(sink.wait_until(Duration::ZERO, |stats| stats.requests == 0).await, "holds at once");

        // Woken by a request that arrives while waiting.
        let url = sink.url();
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            client().post(url).header("content-type", PROTOBUF).body(batch(&["late"])).send().await
        });
        assert!(sink.wait_until(Duration::from_secs(10), |stats| stats.unique_ids == 1).await);
        assert_eq!(sender.await.expect("join").expect("sent").status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn concurrent_connections_and_keep_alive() {
        let sink = IngestSink::start(SinkOptions::default()).await;
        let url = sink.url();
        let senders: Vec<_> = (0..32)
            .map(|i| {
                let url = url.clone();
                tokio::spawn(async move {
                    let body = batch(&[&format!("id-{i}")]);
                    client().post(url).header("content-type", PROTOBUF).body(body).send().await
                })
            })
            .collect();
        for sender in senders {
            assert_eq!(sender.await.expect("join").expect("sent").status(), StatusCode::OK);
        }
        assert_eq!(sink.stats().unique_ids, 32);

        // Three requests on one connection.
        let mut stream = TcpStream::connect(sink.addr()).await.expect("connect");
        for (i, path) in ["/v1/events", "/healthz", "/v1/events"].into_iter().enumerate() {
            let body = format!("{{\"id\":\"keep-{i}\",\"type\":\"play\"}}");
            let request = format!(
                "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-ndjson\r\n\
                 content-length: {}\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(request.as_bytes()).await.expect("write");
            let (head, _) = read_response(&mut stream).await;
            let expected = if path == "/healthz" { "http/1.1 404" } else { "http/1.1 200" };
            assert!(head.starts_with(expected), "{path}: {head}");
        }
        assert_eq!(sink.stats().unique_ids, 34);
        assert_eq!(sink.stats().requests, 35);
    }

    #[tokio::test]
    async fn other_routes() {
        let sink = IngestSink::start(SinkOptions::default()).await;
        sink.push_responses([SinkResponse::status(500)]);
        let base = format!("http://{}", sink.addr());
        let health = client().get(format!("{base}/healthz")).send().await.expect("healthz");
        assert_eq!(health.status(), StatusCode::OK);
        let get = client().get(sink.url()).send().await.expect("get");
        assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
        let other = client().post(format!("{base}/v2/events")).send().await.expect("other");
        assert_eq!(other.status(), StatusCode::NOT_FOUND);
        assert_eq!(sink.pending_responses(), 1, "only ingest requests take canned answers");
        assert_eq!(sink.stats().requests, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "invalid HTTP status code")]
    async fn rejects_invalid_status() {
        IngestSink::start(SinkOptions::default()).await.push_responses([SinkResponse::status(42)]);
    }

    #[tokio::test]
    async fn start_on_a_given_listener_and_stop_when_dropped() {
        let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).await.expect("bind");
        let port = listener.local_addr().expect("local addr").port();
        let sink = IngestSink::start_on(listener, SinkOptions::default()).await;
        assert_eq!(sink.url(), format!("http://127.0.0.1:{port}/v1/events"));
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        stream.write_all(b"GET /readyz HTTP/1.1\r\nhost: x\r\n\r\n").await.expect("write");
        let (head, body) = read_response(&mut stream).await;
        assert!(head.starts_with("http/1.1 200") && body == b"ok", "{head}");
        drop(sink);
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "connection not closed after drop");
        assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err(), "still accepting");
    }
}
