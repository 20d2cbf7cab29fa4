//! A fault-injecting HTTP/1.1 proxy, placed between a client and the emulator to test the
//! client's retry behaviour.
//!
//! Every request whose path matches the proxy's path filter (by default: paths ending in
//! `:publish`) takes the next [`Fault`] from a FIFO queue and is recorded as a
//! [`RecordedRequest`]; when the queue is empty it takes the fault of a running
//! [`blackout`](FaultProxy::blackout), else with a set probability a
//! [random fault](FaultProxy::set_random_faults), else it is forwarded unchanged. Requests that
//! do not match are always forwarded and not recorded.

use std::collections::VecDeque;
use std::fmt;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use flate2::read::MultiGzDecoder;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with one matching request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward the request unchanged and return upstream's answer (what happens when the
    /// queue is empty).
    Forward,
    /// Answer with this status and JSON body without forwarding. See [`Fault::status`].
    Status {
        /// The HTTP status code (100..=999).
        code: u16,
        /// The response body, sent with `content-type: application/json`.
        body: String,
    },
    /// Wait this long, then forward.
    Delay(Duration),
    /// Close the TCP connection without answering and without forwarding.
    DropConnection,
    /// Forward to upstream (which processes the request), then close the connection without
    /// answering.
    DropAfterForward,
    /// Forward to upstream (which processes the request), then answer this error status (with
    /// the body of [`Fault::status`]) instead of upstream's answer.
    StatusAfterForward(u16),
}

impl Fault {
    /// A [`Fault::Status`] with a Google-style JSON error body, e.g. for 503:
    /// `{"error":{"code":503,"message":"injected 503 by testkit FaultProxy","status":"UNAVAILABLE"}}`.
    pub fn status(code: u16) -> Fault {
        Fault::Status { code, body: error_body(code) }
    }

    /// Everything but [`Fault::Forward`] counts as an injected fault.
    fn is_injected(&self) -> bool {
        !matches!(self, Fault::Forward)
    }
}

/// The canonical Google RPC status name for an HTTP status code.
fn rpc_status_name(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        412 => "FAILED_PRECONDITION",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        500 => "INTERNAL",
        501 => "UNIMPLEMENTED",
        502 | 503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "UNKNOWN",
    }
}

/// A Google-style JSON error body for an injected status.
fn error_body(code: u16) -> String {
    serde_json::json!({
        "error": {
            "code": code,
            "message": format!("injected {code} by testkit FaultProxy"),
            "status": rpc_status_name(code),
        }
    })
    .to_string()
}

/// A request that matched the proxy's path filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The request path, without the query.
    pub path: String,
    /// The `content-encoding` request header, if any.
    pub content_encoding: Option<String>,
    /// Length of the body as received on the wire (compressed, if it was).
    pub wire_len: usize,
    /// The body, gunzipped when `content-encoding` is `gzip` (kept as received when it is
    /// not gzip or cannot be decoded).
    pub body: Bytes,
    /// What the proxy did with the request.
    pub fault: Fault,
}

type PathFilter = Arc<dyn Fn(&str) -> bool + Send + Sync>;

fn default_filter() -> PathFilter {
    Arc::new(|path: &str| path.ends_with(":publish") || path.to_ascii_lowercase().ends_with("%3apublish"))
}

struct State {
    faults: VecDeque<Fault>,
    requests: Vec<RecordedRequest>,
    filter: PathFilter,
    /// Record matching requests (off for long runs: the bodies would pile up).
    record: bool,
    /// Until then, matching requests take `blackout_fault` (queued faults go first).
    blackout_until: Option<std::time::Instant>,
    blackout_fault: Fault,
    /// With this probability a matching request takes one of `random_faults`.
    random_probability: f64,
    random_faults: Vec<Fault>,
}

struct Shared {
    upstream: SocketAddr,
    client: reqwest::Client,
    state: Mutex<State>,
    matched: AtomicUsize,
    forwarded: AtomicUsize,
    faults_injected: AtomicUsize,
}

/// An HTTP/1.1 proxy on `127.0.0.1` that injects [`Fault`]s into requests to an upstream
/// HTTP server (the emulator).
///
/// It serves on the tokio runtime it was started on and stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// Dropping the sender stops the accept loop and every open connection.
    _shutdown: watch::Sender<()>,
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .field("pending_faults", &self.pending_faults())
            .field("matched", &self.matched())
            .field("forwarded", &self.forwarded())
            .field("faults_injected", &self.faults_injected())
            .finish_non_exhaustive()
    }
}

impl FaultProxy {
    /// Starts a proxy on a free port of `127.0.0.1` in front of `upstream` (plain HTTP).
    ///
    /// The accept loop runs on the current tokio runtime; it and all connections stop when
    /// the returned value is dropped (or the runtime shuts down).
    ///
    /// # Panics
    ///
    /// Panics if it cannot bind a port or is not called within a tokio runtime.
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("FaultProxy: cannot bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("FaultProxy: listener has no local address");
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("FaultProxy: cannot build the upstream HTTP client");
        let shared = Arc::new(Shared {
            upstream,
            client,
            state: Mutex::new(State {
                faults: VecDeque::new(),
                requests: Vec::new(),
                filter: default_filter(),
                record: true,
                blackout_until: None,
                blackout_fault: Fault::DropConnection,
                random_probability: 0.0,
                random_faults: Vec::new(),
            }),
            matched: AtomicUsize::new(0),
            forwarded: AtomicUsize::new(0),
            faults_injected: AtomicUsize::new(0),
        });
        let (shutdown_tx, shutdown_rx) = watch::channel(());
        tokio::spawn(accept_loop(listener, Arc::clone(&shared), shutdown_rx));
        FaultProxy { addr, shared, _shutdown: shutdown_tx }
    }

    /// The address the proxy listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT`, usable as `PUBSUB_EMULATOR_HOST`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The upstream server requests are forwarded to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// Appends faults to the queue; each matching request takes the first one.
    ///
    /// # Panics
    ///
    /// Panics if a fault carries a status code outside 100..=999.
    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        let faults: Vec<Fault> = faults.into_iter().collect();
        for fault in &faults {
            if let Fault::Status { code, .. } | Fault::StatusAfterForward(code) = fault {
                assert!(
                    StatusCode::from_u16(*code).is_ok(),
                    "FaultProxy: invalid HTTP status code {code} in {fault:?}"
                );
            }
        }
        self.shared.lock().faults.extend(faults);
    }

    /// For the next `duration`, every matching request takes `fault` (after any queued faults),
    /// e.g. [`Fault::DropConnection`] for an outage or [`Fault::status`]`(503)`.
    pub fn blackout(&self, duration: Duration, fault: Fault) {
        let mut state = self.shared.lock();
        state.blackout_until = Some(std::time::Instant::now() + duration);
        state.blackout_fault = fault;
    }

    /// Whether a [`blackout`](Self::blackout) is in progress.
    pub fn in_blackout(&self) -> bool {
        self.shared.lock().blackout_until.is_some_and(|u| std::time::Instant::now() < u)
    }

    /// From now on a matching request that finds no queued fault and no blackout takes, with
    /// `probability` (0 turns it off), one of `faults` picked at random.
    ///
    /// # Panics
    ///
    /// Panics if `probability` is outside 0..=1 or `faults` is empty while `probability` > 0.
    pub fn set_random_faults(&self, probability: f64, faults: Vec<Fault>) {
        assert!((0.0..=1.0).contains(&probability), "FaultProxy: probability {probability} outside 0..=1");
        assert!(
            probability == 0.0 || !faults.is_empty(),
            "FaultProxy: random faults need at least one fault"
        );
        let mut state = self.shared.lock();
        state.random_probability = probability;
        state.random_faults = faults;
    }

    /// Turns the recording of matching requests on (the default) or off; counters are kept
    /// either way. Turn it off for long runs, where the recorded bodies would pile up.
    pub fn set_recording(&self, on: bool) {
        self.shared.lock().record = on;
    }

    /// Number of faults still queued.
    pub fn pending_faults(&self) -> usize {
        self.shared.lock().faults.len()
    }

    /// Discards all queued faults.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Replaces the path filter. Only requests whose path (without query) satisfies it take
    /// faults, are recorded and are counted.
    pub fn set_path_filter(&self, filter: impl Fn(&str) -> bool + Send + Sync + 'static) {
        self.shared.lock().filter = Arc::new(filter);
    }

    /// Matches requests whose path contains `needle` (e.g. `":publish"`, `":acknowledge"`,
    /// or `""` for all requests).
    pub fn set_path_contains(&self, needle: impl Into<String>) {
        let needle = needle.into();
        self.set_path_filter(move |path| path.contains(&needle));
    }

    /// All recorded (matching) requests, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Forgets the recorded requests (the counters are not reset).
    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// Number of requests that matched the path filter.
    pub fn matched(&self) -> usize {
        self.shared.matched.load(Ordering::SeqCst)
    }

    /// Number of matching requests forwarded to upstream (plain forwards, delays,
    /// [`Fault::DropAfterForward`] and [`Fault::StatusAfterForward`]). Counted once upstream
    /// has answered.
    pub fn forwarded(&self) -> usize {
        self.shared.forwarded.load(Ordering::SeqCst)
    }

    /// Number of matching requests that took a queued fault other than [`Fault::Forward`].
    pub fn faults_injected(&self) -> usize {
        self.shared.faults_injected.load(Ordering::SeqCst)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies the filter; for a matching request takes the next fault, records the request
    /// and returns the fault.
    fn admit(&self, path: &str, headers: &HeaderMap, wire_body: &Bytes) -> Option<Fault> {
        let filter = Arc::clone(&self.lock().filter);
        if !filter(path) {
            return None;
        }
        let content_encoding =
            headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = decode_body(content_encoding.as_deref(), wire_body);
        let mut state = self.lock();
        let fault = match state.faults.pop_front() {
            Some(f) => f,
            None if state.blackout_until.is_some_and(|u| std::time::Instant::now() < u) => {
                state.blackout_fault.clone()
            }
            None if state.random_probability > 0.0 && fastrand::f64() < state.random_probability => {
                state.random_faults[fastrand::usize(..state.random_faults.len())].clone()
            }
            None => Fault::Forward,
        };
        self.matched.fetch_add(1, Ordering::SeqCst);
        if fault.is_injected() {
            self.faults_injected.fetch_add(1, Ordering::SeqCst);
        }
        if !state.record {
            return Some(fault);
        }
        state.requests.push(RecordedRequest {
            path: path.to_owned(),
            content_encoding,
            wire_len: wire_body.len(),
            body,
            fault: fault.clone(),
        });
        Some(fault)
    }

    /// Sends the request to upstream and converts its answer. Upstream failures become a
    /// `502` with a JSON error body.
    async fn forward(&self, parts: &Parts, body: Bytes, matched: bool) -> Response<Full<Bytes>> {
        let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let url = format!("http://{}{}", self.upstream, path_and_query);
        let mut headers = parts.headers.clone();
        strip_hop_by_hop(&mut headers);
        headers.remove(header::HOST);
        headers.remove(header::CONTENT_LENGTH);
        let result = async {
            let response =
                self.client.request(parts.method.clone(), url).headers(headers).body(body).send().await?;
            let status = response.status();
            let mut headers = response.headers().clone();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers_for_client(&mut headers), body))
        }
        .await;
        match result {
            Ok((status, headers, body)) => {
                if matched {
                    self.forwarded.fetch_add(1, Ordering::SeqCst);
                }
                let mut response = Response::new(Full::new(body));
                *response.status_mut() = status;
                *response.headers_mut() = headers;
                response
            }
            Err(e) => json_response(
                StatusCode::BAD_GATEWAY,
                serde_json::json!({
                    "error": {
                        "code": 502,
                        "message": format!("testkit FaultProxy: upstream request failed: {e}"),
                        "status": "UNAVAILABLE",
                    }
                })
                .to_string(),
            ),
        }
    }
}

/// Makes hyper close the connection without sending a response.
#[derive(Debug)]
struct DropConnection;

impl fmt::Display for DropConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("testkit FaultProxy: connection dropped on purpose")
    }
}

impl std::error::Error for DropConnection {}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut shutdown: watch::Receiver<()>) {
    loop {
        let stream = tokio::select! {
            // Err once the FaultProxy (the sender) is dropped; nothing is ever sent.
            _ = shutdown.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // E.g. EMFILE: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        tokio::spawn(serve_connection(stream, Arc::clone(&shared), shutdown.clone()));
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>, mut shutdown: watch::Receiver<()>) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| handle(Arc::clone(&shared), request));
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    // A service error (DropConnection) ends the connection future with an error; the socket is
    // then closed without a response, which is what we want.
    tokio::select! {
        _ = connection => {}
        _ = shutdown.changed() => {}
    }
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, DropConnection> {
    let (parts, body) = request.into_parts();
    // A client that gives up while sending: nothing sensible to answer.
    let body = body.collect().await.map_err(|_| DropConnection)?.to_bytes();
    let Some(fault) = shared.admit(parts.uri.path(), &parts.headers, &body) else {
        return Ok(shared.forward(&parts, body, false).await);
    };
    match fault {
        Fault::Forward => Ok(shared.forward(&parts, body, true).await),
        Fault::Status { code, body } => Ok(json_response(status_code(code), body)),
        Fault::Delay(delay) => {
            tokio::time::sleep(delay).await;
            Ok(shared.forward(&parts, body, true).await)
        }
        Fault::DropConnection => Err(DropConnection),
        Fault::DropAfterForward => {
            let _ = shared.forward(&parts, body, true).await;
            Err(DropConnection)
        }
        Fault::StatusAfterForward(code) => {
            let _ = shared.forward(&parts, body, true).await;
            Ok(json_response(status_code(code), error_body(code)))
        }
    }
}

/// Validated in [`FaultProxy::push_faults`]; the fallback is unreachable in practice.
fn status_code(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn json_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=UTF-8"));
    response
}

/// Removes hop-by-hop headers, including those named in `Connection`.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

/// Upstream's response headers as sent to the client: without hop-by-hop headers and without
/// `content-length` (hyper computes it from the body).
fn headers_for_client(headers: &mut HeaderMap) -> HeaderMap {
    strip_hop_by_hop(headers);
    headers.remove(header::CONTENT_LENGTH);
    std::mem::take(headers)
}

/// Gunzips a gzip body; any other (or an undecodable) body is returned as received.
fn decode_body(content_encoding: Option<&str>, wire_body: &Bytes) -> Bytes {
    let is_gzip = content_encoding.is_some_and(|encoding| {
        let encoding = encoding.trim();
        encoding.eq_ignore_ascii_case("gzip") || encoding.eq_ignore_ascii_case("x-gzip")
    });
    if !is_gzip {
        return wire_body.clone();
    }
    let mut decoded = Vec::new();
    match MultiGzDecoder::new(&wire_body[..]).read_to_end(&mut decoded) {
        Ok(_) => Bytes::from(decoded),
        Err(_) => wire_body.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).expect("gzip write");
        encoder.finish().expect("gzip finish")
    }

    /// A tiny upstream that answers every request with 200 and echoes method, path and body.
    async fn echo_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind");
        let addr = listener.local_addr().expect("local_addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let counter = Arc::clone(&counter);
                        async move {
                            counter.fetch_add(1, Ordering::SeqCst);
                            let (parts, body) = request.into_parts();
                            let body = body.collect().await?.to_bytes();
                            let echo = format!(
                                "{} {} {} ct={:?}",
                                parts.method,
                                parts.uri,
                                String::from_utf8_lossy(&body),
                                parts.headers.get(header::CONTENT_TYPE),
                            );
                            let mut response = Response::new(Full::new(Bytes::from(echo)));
                            response
                                .headers_mut()
                                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                            Ok::<_, hyper::Error>(response)
                        }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        (addr, hits)
    }

    #[test]
    fn status_helper_builds_google_error() {
        let Fault::Status { code, body } = Fault::status(503) else {
            panic!("not a Status fault");
        };
        assert_eq!(code, 503);
        let json: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(json["error"]["code"], 503);
        assert_eq!(json["error"]["status"], "UNAVAILABLE");
        assert!(json["error"]["message"].as_str().expect("message").contains("injected"));
        assert_eq!(rpc_status_name(429), "RESOURCE_EXHAUSTED");
        assert_eq!(rpc_status_name(504), "DEADLINE_EXCEEDED");
    }

    #[test]
    fn default_filter_matches_publish_only() {
        let filter = default_filter();
        assert!(filter("/v1/projects/p/topics/t:publish"));
        assert!(filter("/v1/projects/p/topics/t%3Apublish"));
        assert!(!filter("/v1/projects/p/topics/t"));
        assert!(!filter("/v1/projects/p/subscriptions/s:pull"));
    }

    #[test]
    fn decode_body_gunzips() {
        let raw = Bytes::from_static(b"{\"messages\":[]}");
        let zipped = Bytes::from(gzip(&raw));
        assert_eq!(decode_body(Some("gzip"), &zipped), raw);
        assert_eq!(decode_body(Some(" GZIP "), &zipped), raw);
        assert_eq!(decode_body(None, &raw), raw);
        assert_eq!(decode_body(Some("identity"), &raw), raw);
        // Not really gzip: kept as received.
        assert_eq!(decode_body(Some("gzip"), &raw), raw);
    }

    #[test]
    fn strips_hop_by_hop_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("x-foo, close"));
        headers.insert("x-foo", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("a/b"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key(header::CONTENT_TYPE));
    }

    #[tokio::test]
    #[should_panic(expected = "invalid HTTP status code")]
    async fn rejects_invalid_status() {
        let (upstream, _) = echo_upstream().await;
        let proxy = FaultProxy::start(upstream).await;
        proxy.push_faults([Fault::status(42)]);
    }

    #[tokio::test]
    async fn injects_faults_in_order_and_records() {
        let (upstream, hits) = echo_upstream().await;
        let proxy = FaultProxy::start(upstream).await;
        let client = reqwest::Client::builder().no_proxy().build().expect("client");
        let url = format!("{}/v1/projects/p/topics/t:publish?x=1", proxy.base_url());
        proxy.push_faults([
            Fault::status(429),
            Fault::DropConnection,
            Fault::Delay(Duration::from_millis(50)),
            Fault::StatusAfterForward(500),
            Fault::DropAfterForward,
            Fault::Forward,
        ]);
        assert_eq!(proxy.pending_faults(), 6);
        let send = |body: &'static str| {
            client.post(&url).header(header::CONTENT_TYPE, "application/json").body(body).send()
        };

        let response = send("one").await.expect("429 response");
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let json: serde_json::Value =
            serde_json::from_slice(&response.bytes().await.expect("body")).expect("json body");
        assert_eq!(json["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(hits.load(Ordering::SeqCst), 0);

        let error = send("two").await.expect_err("dropped connection");
        assert!(error.status().is_none(), "got an HTTP status: {error:?}");
        assert_eq!(hits.load(Ordering::SeqCst), 0);

        let started = std::time::Instant::now();
        let response = send("three").await.expect("delayed response");
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.text().await.expect("text"),
            "POST /v1/projects/p/topics/t:publish?x=1 three ct=Some(\"application/json\")"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1);

        let response = send("four").await.expect("500 response");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(hits.load(Ordering::SeqCst), 2);

        let error = send("five").await.expect_err("dropped after forward");
        assert!(error.status().is_none(), "got an HTTP status: {error:?}");
        assert_eq!(hits.load(Ordering::SeqCst), 3);

        for body in ["six", "seven"] {
            let response = send(body).await.expect("forwarded");
            assert_eq!(response.status(), StatusCode::OK);
        }
        assert_eq!(hits.load(Ordering::SeqCst), 5);

        // Not matching the filter: forwarded, not recorded, not counted.
        let response = client
            .get(format!("{}/v1/projects/p/topics/t", proxy.base_url()))
            .send()
            .await
            .expect("plain forward");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(hits.load(Ordering::SeqCst), 6);

        let requests = proxy.requests();
        let faults: Vec<Fault> = requests.iter().map(|r| r.fault.clone()).collect();
        assert_eq!(
            faults,
            vec![
                Fault::status(429),
                Fault::DropConnection,
                Fault::Delay(Duration::from_millis(50)),
                Fault::StatusAfterForward(500),
                Fault::DropAfterForward,
                Fault::Forward,
                Fault::Forward,
            ]
        );
        let bodies: Vec<&[u8]> = requests.iter().map(|r| &r.body[..]).collect();
        assert_eq!(bodies, vec![&b"one"[..], b"two", b"three", b"four", b"five", b"six", b"seven"]);
        assert!(requests.iter().all(|r| r.path == "/v1/projects/p/topics/t:publish"));
        assert_eq!(proxy.matched(), 7);
        assert_eq!(proxy.faults_injected(), 5); // the queued Forward does not count
        assert_eq!(proxy.forwarded(), 5);
        assert_eq!(proxy.pending_faults(), 0);

        proxy.clear_requests();
        assert!(proxy.requests().is_empty());
        assert_eq!(proxy.matched(), 7);
    }

    #[tokio::test]
    async fn blackout_then_random_faults_without_recording() {
        let (upstream, hits) = echo_upstream().await;
        let proxy = FaultProxy::start(upstream).await;
        proxy.set_path_contains("");
        proxy.set_recording(false);
        let client = reqwest::Client::builder().no_proxy().build().expect("client");
        let url = format!("{}/v1/anything", proxy.base_url());

        proxy.blackout(Duration::from_secs(600), Fault::status(503));
        assert!(proxy.in_blackout());
        proxy.push_faults([Fault::status(429)]);
        let statuses = [
            client.get(&url).send().await.expect("queued fault first").status(),
            client.get(&url).send().await.expect("blackout").status(),
        ];
        assert_eq!(statuses, [StatusCode::TOO_MANY_REQUESTS, StatusCode::SERVICE_UNAVAILABLE]);
        assert_eq!(hits.load(Ordering::SeqCst), 0);

        proxy.blackout(Duration::ZERO, Fault::status(503));
        assert!(!proxy.in_blackout());
        proxy.set_random_faults(1.0, vec![Fault::status(502)]);
        assert_eq!(client.get(&url).send().await.expect("random").status(), StatusCode::BAD_GATEWAY);
        proxy.set_random_faults(0.0, Vec::new());
        assert_eq!(client.get(&url).send().await.expect("forwarded").status(), StatusCode::OK);

        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert_eq!(proxy.faults_injected(), 3);
        assert_eq!(proxy.matched(), 4);
        assert!(proxy.requests().is_empty(), "recording was off");
    }

    #[tokio::test]
    async fn path_filter_and_gzip_recording() {
        let (upstream, _) = echo_upstream().await;
        let proxy = FaultProxy::start(upstream).await;
        proxy.set_path_contains(":acknowledge");
        proxy.push_faults([Fault::status(503)]);
        let client = reqwest::Client::builder().no_proxy().build().expect("client");

        let publish = client
            .post(format!("{}/v1/t:publish", proxy.base_url()))
            .body("x")
            .send()
            .await
            .expect("publish");
        assert_eq!(publish.status(), StatusCode::OK);
        assert_eq!(proxy.matched(), 0);

        let raw = b"{\"ackIds\":[\"a\",\"b\"]}";
        let zipped = gzip(raw);
        let ack = client
            .post(format!("{}/v1/s:acknowledge", proxy.base_url()))
            .header(header::CONTENT_ENCODING, "gzip")
            .body(zipped.clone())
            .send()
            .await
            .expect("acknowledge");
        assert_eq!(ack.status(), StatusCode::SERVICE_UNAVAILABLE);
        let requests = proxy.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].content_encoding.as_deref(), Some("gzip"));
        assert_eq!(requests[0].wire_len, zipped.len());
        assert_eq!(&requests[0].body[..], raw);

        proxy.set_path_filter(|path| path.starts_with("/v1/t"));
        let publish = client
            .post(format!("{}/v1/t:publish", proxy.base_url()))
            .body("x")
            .send()
            .await
            .expect("publish");
        assert_eq!(publish.status(), StatusCode::OK);
        assert_eq!(proxy.matched(), 2);
    }

    #[tokio::test]
    async fn raw_client_sees_closed_connection_without_response() {
        let (upstream, _) = echo_upstream().await;
        let proxy = FaultProxy::start(upstream).await;
        proxy.push_faults([Fault::DropConnection]);
        let mut stream = TcpStream::connect(proxy.addr()).await.expect("connect");
        stream
            .write_all(b"POST /t:publish HTTP/1.1\r\nHost: x\r\ncontent-length: 2\r\n\r\n{}")
            .await
            .expect("write");
        let mut answer = Vec::new();
        // EOF (or a reset) without a single byte of response.
        let _ = stream.read_to_end(&mut answer).await;
        assert!(answer.is_empty(), "got {:?}", String::from_utf8_lossy(&answer));
    }

    #[tokio::test]
    async fn upstream_down_gives_502() {
        let upstream = {
            let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
            listener.local_addr().expect("local_addr")
        };
        let proxy = FaultProxy::start(upstream).await;
        let response = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client")
            .post(format!("{}/t:publish", proxy.base_url()))
            .send()
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(proxy.forwarded(), 0);
        assert_eq!(proxy.matched(), 1);
    }

    #[tokio::test]
    async fn stops_when_dropped() {
        let (upstream, _) = echo_upstream().await;
        let proxy = FaultProxy::start(upstream).await;
        let addr = proxy.addr();
        // An open keep-alive connection must be closed as well.
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
        let mut buf = [0u8; 1024];
        let n = stream.read(&mut buf).await.expect("read");
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        drop(proxy);
        // Let the accept loop and the connection task observe the shutdown.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
            .await
            .expect("connection not closed after drop");
    }
}
