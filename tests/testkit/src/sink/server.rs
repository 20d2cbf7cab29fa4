//! The HTTP side of [`IngestSink`](super::IngestSink): accepting connections, routing,
//! canned answers, bounded body reading, and processing an ingest request into its answer.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use event_model::ingest;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::decode::{self, Encoding, GunzipError};
use super::{INGEST_PATH, Shared, SinkRejection, SinkResponse};

/// The answer to a body whose `Content-Type` is not one of the service's.
const UNSUPPORTED_MEDIA_TYPE: &str =
    "Content-Type must be application/json (array), application/x-ndjson or application/x-protobuf";

impl Shared {
    /// Authenticates, decodes, checks and records one ingest request, and returns its answer.
    fn process(&self, headers: &HeaderMap, body: Result<Bytes, BodyTooLarge>) -> Response<Full<Bytes>> {
        let options = &self.options;
        if let Some(token) = &options.token
            && bearer_token(headers) != Some(token.as_str())
        {
            let mut response = error(StatusCode::UNAUTHORIZED, "missing or invalid bearer token");
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
        let Some(encoding) = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(Encoding::from_content_type)
        else {
            return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, UNSUPPORTED_MEDIA_TYPE);
        };
        let limit = options.max_body_bytes;
        let Ok(raw) = body else {
            return error(StatusCode::PAYLOAD_TOO_LARGE, format!("body is larger than {limit} bytes"));
        };
        let gzipped = headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
        let body = if gzipped {
            match decode::gunzip(&raw, limit) {
                Ok(body) => Bytes::from(body),
                Err(GunzipError::TooLarge) => {
                    let message = format!("decompressed body is larger than {limit} bytes");
                    return error(StatusCode::PAYLOAD_TOO_LARGE, message);
                }
                Err(GunzipError::Corrupt(e)) => {
                    return error(StatusCode::BAD_REQUEST, format!("invalid gzip body: {e}"));
                }
            }
        } else {
            raw
        };
        if !options.record {
            return match decode::count_events(&body, encoding) {
                Ok(count) => {
                    self.update(|state| {
                        state.stats.requests_ok += 1;
                        state.stats.events_accepted += count as u64;
                    });
                    accepted(count, &[], request_id(headers))
                }
                Err(reason) => error(StatusCode::BAD_REQUEST, reason),
            };
        }
        let events = match decode::split_body(&body, encoding) {
            Ok(events) => events,
            Err(reason) => return error(StatusCode::BAD_REQUEST, reason),
        };
        let checked = decode::check(options.registry.as_ref(), events);
        let response = accepted(checked.accepted.len(), &checked.rejected, request_id(headers));
        self.update(|state| {
            state.stats.requests_ok += 1;
            state.stats.events_accepted += checked.accepted.len() as u64;
            state.stats.events_rejected += checked.rejected.len() as u64;
            for event in checked.accepted {
                let count = state.ids.entry(event.id.clone()).or_insert(0);
                *count += 1;
                if *count == 1 {
                    state.events.push(event);
                }
            }
            state.stats.unique_ids = state.ids.len() as u64;
            state.rejections.extend(checked.rejected.into_iter().map(|(_, rejection)| rejection));
        });
        response
    }
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer "))?;
    Some(token.trim())
}

/// Makes hyper close the connection without sending a response.
#[derive(Debug)]
struct DropConnection;

impl fmt::Display for DropConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("testkit IngestSink: connection dropped on purpose")
    }
}

impl std::error::Error for DropConnection {}

/// A body over the limit (declared or received).
#[derive(Debug)]
struct BodyTooLarge;

pub(super) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<()>,
) {
    loop {
        let stream = tokio::select! {
            // Err once the IngestSink (the sender) is dropped; nothing is ever sent.
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
    let connection = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service);
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
    let is_ingest = parts.uri.path() == INGEST_PATH && parts.method == Method::POST;
    let canned = shared.update(|state| {
        state.stats.requests += 1;
        let canned = if is_ingest { state.responses.pop_front() } else { None };
        state.stats.canned += u64::from(canned.is_some());
        canned
    });
    if !is_ingest {
        return Ok(other_route(&parts.method, parts.uri.path()));
    }
    let limit = shared.options.max_body_bytes;
    let (wire_len, body) = read_body(body, &parts.headers, limit).await;
    shared.update(|state| state.stats.bytes_received += wire_len as u64);
    // A client that gives up while sending: nothing sensible to answer.
    let body = body?;
    match canned {
        Some(SinkResponse::Status { code, retry_after_secs }) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = error(status, format!("injected {code} by testkit IngestSink"));
            if let Some(secs) = retry_after_secs {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            Ok(response)
        }
        Some(SinkResponse::DropConnection) => Err(DropConnection),
        Some(SinkResponse::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            Ok(shared.process(&parts.headers, body))
        }
        Some(SinkResponse::ProcessThenDrop) => {
            let _ = shared.process(&parts.headers, body);
            Err(DropConnection)
        }
        None => Ok(shared.process(&parts.headers, body)),
    }
}

/// Reads a request body of at most `limit` bytes. Returns the bytes read off the wire and the
/// body; a body over the limit (a larger `Content-Length` is not read at all) is
/// [`BodyTooLarge`], a client that goes away while sending is [`DropConnection`].
async fn read_body(
    mut body: Incoming,
    headers: &HeaderMap,
    limit: usize,
) -> (usize, Result<Result<Bytes, BodyTooLarge>, DropConnection>) {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return (0, Ok(Err(BodyTooLarge)));
    }
    let mut data = Vec::with_capacity(declared.unwrap_or(0));
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return (data.len(), Err(DropConnection));
        };
        if let Ok(chunk) = frame.into_data() {
            data.extend_from_slice(&chunk);
            if data.len() > limit {
                return (data.len(), Ok(Err(BodyTooLarge)));
            }
        }
    }
    (data.len(), Ok(Ok(Bytes::from(data))))
}

/// The answer to a request that is not `POST /v1/events`.
fn other_route(method: &Method, path: &str) -> Response<Full<Bytes>> {
    match (path, method) {
        ("/healthz" | "/readyz", &Method::GET) => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            response
        }
        (INGEST_PATH, _) => {
            let mut response = error(StatusCode::METHOD_NOT_ALLOWED, format!("use POST {INGEST_PATH}"));
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
            response
        }
        _ => error(StatusCode::NOT_FOUND, format!("no route for {method} {path}")),
    }
}

/// The service's error body ([`ingest::ErrorBody`]).
fn error(status: StatusCode, message: impl Into<String>) -> Response<Full<Bytes>> {
    json(status, serde_json::to_string(&ingest::ErrorBody { error: message.into() }))
}

/// The `200` answer: `{"accepted": N, "rejected": [{"index", "reason", "kind"}, ...]}`.
/// The request's id, echoed in the answer as the event-service does.
fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get(ingest::REQUEST_ID_HEADER)
        .and_then(|v| ingest::echoable_request_id(v.as_bytes()))
        .map(str::to_owned)
}

fn accepted(
    count: usize,
    rejected: &[(usize, SinkRejection)],
    request_id: Option<String>,
) -> Response<Full<Bytes>> {
    let rejected =
        rejected.iter().map(|(index, r)| ingest::Rejected::new(*index, &r.reason, r.kind.as_str())).collect();
    json(
        StatusCode::OK,
        serde_json::to_string(
            &ingest::Answer::new(count as u64).with_rejected(rejected).with_request_id(request_id),
        ),
    )
}

fn json(status: StatusCode, body: serde_json::Result<String>) -> Response<Full<Bytes>> {
    let text = body.unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
