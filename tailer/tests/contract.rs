//! What counts as an acknowledgement: the tailer against small local HTTP servers that answer
//! with something other than the event-service's own answer for the request (`200 {}`, a `200`
//! covering only part of the batch, a complete answer to another request, an HTML `400`, a
//! proxy's `413`, a truncated answer, `401`, `403`). None of them acknowledges a line: nothing is checkpointed, the requests are retried,
//! and once the server turns into a correct one every line arrives exactly once.

mod common;

use std::collections::HashMap;
use std::io::Read as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::{Fixture, LogWriter, checkpoint_offsets, wait_for};
use event_model::EventBatch;
use event_model::ingest::{Answer, Retryable};
use prost::Message as _;
use tailer::Tailer;

const T: Duration = Duration::from_secs(30);

/// How the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `200 {}`, what any JSON server might say.
    EmptyObject,
    /// The service's answer, but for only the first half of the events sent.
    Partial,
    /// An HTML `400`, as a TLS port spoken to in plain HTTP answers.
    Html400,
    /// A proxy's HTML `413`.
    Proxy413,
    /// The service's answer cut short.
    Truncated,
    /// `401` with a plain-text body.
    Unauthorized,
    /// `403` with a plain-text body.
    Forbidden,
    /// The service's own, complete answer: every event accepted.
    Correct,
    /// The service's answer with every second event retryable the first time it arrives
    /// (its topic failing), the others accepted.
    HalfRetryable,
    /// A complete answer, but to another request (a stale or cached copy: another id).
    Stale,
}

#[derive(Default)]
struct State {
    mode: Option<Mode>,
    /// Requests answered in each mode.
    answered: HashMap<String, u64>,
    /// Ids accepted in `Correct` mode, with how often each arrived.
    accepted: HashMap<String, u32>,
    /// Events accepted in `Correct` mode.
    events: Vec<event_model::Event>,
    /// Ids answered as retryable in `HalfRetryable` mode.
    retryable: std::collections::HashSet<String>,
}

#[derive(Clone)]
struct Server {
    url: String,
    state: Arc<Mutex<State>>,
}

impl Server {
    async fn start(mode: Mode) -> Server {
        let state = Arc::new(Mutex::new(State { mode: Some(mode), ..State::default() }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/v1/events", listener.local_addr().expect("addr"));
        let app = axum::Router::new().route(
            "/v1/events",
            axum::routing::post({
                let state = state.clone();
                move |headers: HeaderMap, body: Bytes| {
                    let state = state.clone();
                    async move { answer(&state, &headers, &body) }
                }
            }),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Server { url, state }
    }

    fn set_mode(&self, mode: Mode) {
        self.state.lock().expect("state").mode = Some(mode);
    }

    fn answered(&self, mode: Mode) -> u64 {
        self.state.lock().expect("state").answered.get(&format!("{mode:?}")).copied().unwrap_or(0)
    }

    fn accepted(&self) -> HashMap<String, u32> {
        self.state.lock().expect("state").accepted.clone()
    }

    fn events(&self) -> Vec<event_model::Event> {
        self.state.lock().expect("state").events.clone()
    }
}

fn decode(headers: &HeaderMap, body: &[u8]) -> EventBatch {
    let gzipped = headers.get(header::CONTENT_ENCODING).is_some_and(|v| v.as_bytes() == b"gzip");
    let raw = if gzipped {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(body).read_to_end(&mut out).expect("gunzip");
        out
    } else {
        body.to_vec()
    };
    EventBatch::decode(raw.as_slice()).expect("an EventBatch")
}

fn html(status: StatusCode, title: &str) -> Response {
    let body = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    );
    (status, [(header::CONTENT_TYPE, "text/html")], body).into_response()
}

fn answer(state: &Mutex<State>, headers: &HeaderMap, body: &[u8]) -> Response {
    let batch = decode(headers, body);
    let id =
        headers.get(event_model::ingest::REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut s = state.lock().expect("state");
    let mode = s.mode.unwrap_or(Mode::Correct);
    *s.answered.entry(format!("{mode:?}")).or_default() += 1;
    let n = batch.events.len();
    match mode {
        Mode::EmptyObject => {
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], "{}").into_response()
        }
        Mode::Html400 => html(StatusCode::BAD_REQUEST, "400 The plain HTTP request was sent to HTTPS port"),
        Mode::Proxy413 => html(StatusCode::PAYLOAD_TOO_LARGE, "413 Request Entity Too Large"),
        Mode::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized").into_response(),
        Mode::Forbidden => (StatusCode::FORBIDDEN, "forbidden").into_response(),
        Mode::Partial => service_answer(n / 2, id),
        Mode::Stale => service_answer(n, Some("an-earlier-request".into())),
        Mode::Truncated => {
            let full = answer_body(n, id);
            let cut = full[..full.len() / 2].to_owned();
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], cut).into_response()
        }
        Mode::HalfRetryable => {
            let mut retryable = Vec::new();
            for (i, e) in batch.events.iter().enumerate() {
                if i % 2 == 1 && s.retryable.insert(e.id.clone()) {
                    retryable.push(Retryable::new(i, "publishing to topic `play` failed: 503"));
                } else {
                    *s.accepted.entry(e.id.clone()).or_default() += 1;
                    s.events.push(e.clone());
                }
            }
            let answer =
                Answer::new((n - retryable.len()) as u64).with_retryable(retryable).with_request_id(id);
            let body = serde_json::to_vec(&answer).expect("json");
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Mode::Correct => {
            for e in &batch.events {
                *s.accepted.entry(e.id.clone()).or_default() += 1;
            }
            s.events.extend(batch.events.iter().cloned());
            service_answer(n, id)
        }
    }
}

/// The event-service's answer to request `id` accepting `n` events, by the contract's own type.
fn answer_body(n: usize, id: Option<String>) -> Vec<u8> {
    serde_json::to_vec(&Answer::new(n as u64).with_request_id(id)).expect("json")
}

fn service_answer(n: usize, id: Option<String>) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], answer_body(n, id)).into_response()
}

/// Checks that `mode` acknowledges nothing, then that a correct server gets every line once.
async fn nothing_is_acknowledged_by(mode: Mode) {
    let fx = Fixture::new();
    let server = Server::start(mode).await;
    let tailer = Tailer::start(fx.config(&server.url, &["app.log"])).await.expect("start");
    let mut w = LogWriter::new(0);
    let path = fx.log("app.log");
    w.write(&path, 50);
    let m = tailer.metrics();
    // Retried with backoff; what is not the service's answer is counted as a non-answer (a
    // 401 or 403 is an answer, refusing the token: retried, not counted).
    let refusal = matches!(mode, Mode::Unauthorized | Mode::Forbidden);
    let retried = wait_for(T, || {
        server.answered(mode) >= 3 && m.retries.get() >= 3 && (refusal || m.non_answers.get() >= 3)
    })
    .await;
    assert!(retried, "{mode:?} retried");
    assert_eq!(m.events_acked.get(), 0, "{mode:?}");
    assert_eq!(m.events_rejected.get(), 0, "{mode:?}: nothing dropped as refused");
    // Two checkpoints made after that (it is rewritten at least every second, as files are
    // seen): the file is still at offset 0.
    let writes = m.checkpoint_writes.get();
    assert!(wait_for(T, || m.checkpoint_writes.get() >= writes + 2).await);
    assert_eq!(checkpoint_offsets(&fx.data).get(&path), Some(&0), "{mode:?}: no line checkpointed");
    assert!(tailer.pending_batches() > 0);

    // The right server: every line once, then checkpointed.
    server.set_mode(Mode::Correct);
    assert!(wait_for(T, || server.accepted().len() >= 50).await, "{mode:?}: delivered after the switch");
    let size = std::fs::metadata(&path).expect("stat").len();
    assert!(wait_for(T, || checkpoint_offsets(&fx.data).get(&path) == Some(&size)).await);
    let accepted = server.accepted();
    assert!(accepted.values().all(|n| *n == 1), "{mode:?}: exactly once: {accepted:?}");
    let seqs: std::collections::BTreeSet<u64> = server.events().iter().filter_map(common::seq_of).collect();
    assert_eq!(seqs, w.written, "{mode:?}");
    tailer.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_json_object_acknowledges_nothing() {
    nothing_is_acknowledged_by(Mode::EmptyObject).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_for_part_of_the_batch_acknowledges_nothing() {
    nothing_is_acknowledged_by(Mode::Partial).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_html_400_acknowledges_nothing_and_drops_nothing() {
    nothing_is_acknowledged_by(Mode::Html400).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_413_acknowledges_nothing_and_drops_nothing() {
    nothing_is_acknowledged_by(Mode::Proxy413).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_answer_acknowledges_nothing() {
    nothing_is_acknowledged_by(Mode::Truncated).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_to_another_request_acknowledges_nothing() {
    nothing_is_acknowledged_by(Mode::Stale).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_acknowledges_nothing() {
    nothing_is_acknowledged_by(Mode::Unauthorized).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_403_acknowledges_nothing() {
    nothing_is_acknowledged_by(Mode::Forbidden).await;
}

/// An answer with retryable events: only those are sent again, the accepted ones never twice,
/// and the lines are checkpointed once every event was accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_retryable_events_are_sent_again() {
    let fx = Fixture::new();
    let server = Server::start(Mode::HalfRetryable).await;
    let tailer = Tailer::start(fx.config(&server.url, &["app.log"])).await.expect("start");
    let mut w = LogWriter::new(0);
    let path = fx.log("app.log");
    w.write(&path, 50);
    let size = std::fs::metadata(&path).expect("stat").len();
    assert!(wait_for(T, || checkpoint_offsets(&fx.data).get(&path) == Some(&size)).await, "checkpointed");
    let accepted = server.accepted();
    assert!(accepted.values().all(|n| *n == 1), "no accepted event was sent again: {accepted:?}");
    let seqs: std::collections::BTreeSet<u64> = server.events().iter().filter_map(common::seq_of).collect();
    assert_eq!(seqs, w.written, "every line accepted once");
    let m = tailer.metrics();
    let retried = server.state.lock().expect("state").retryable.len() as u64;
    assert!(retried >= 25, "half of the events were answered as retryable once: {retried}");
    assert_eq!(m.events_retryable.get(), retried);
    assert_eq!(m.events_acked.get(), 50);
    assert_eq!(m.non_answers.get(), 0, "answers with retryable events are answers");
    tailer.shutdown().await.expect("shutdown");
}
