//! `POST /v1/events`: authenticate, bound, decode, validate, publish, answer after Pub/Sub
//! confirmed every accepted event.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use event_model::ingest::{
    Answer, CONTENT_TYPE_JSON, CONTENT_TYPE_NDJSON, CONTENT_TYPE_PROTOBUF, ErrorBody, Rejected,
};
use event_model::{Enrichment, Event, Rejection, attributes, json_array_items, ndjson_lines};
use prost::Message as _;
use pubsub_client::{Message, PublishHandle, Publisher};

use crate::metrics::{RejectLabels, StatusLabels, TypeLabels};
use crate::state::AppState;

/// How a request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/json`: a JSON array of events.
    JsonArray,
    /// `application/x-ndjson`: one JSON event per line.
    Ndjson,
    /// `application/x-protobuf`: an `EventBatch`.
    Protobuf,
}

impl Encoding {
    /// The encoding named by a `Content-Type`, if supported.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        match ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase().as_str() {
            CONTENT_TYPE_JSON => Some(Encoding::JsonArray),
            CONTENT_TYPE_NDJSON | "application/ndjson" | "application/jsonl" | "application/x-jsonlines" => {
                Some(Encoding::Ndjson)
            }
            CONTENT_TYPE_PROTOBUF | "application/protobuf" => Some(Encoding::Protobuf),
            _ => None,
        }
    }
}

/// One event as it arrived, undecoded: its bytes are what goes to the dead-letter topic when
/// it is rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawEvent<'a> {
    /// A JSON event.
    Json(&'a [u8]),
    /// A protobuf `Event` (one `events` entry of an `EventBatch`).
    Proto(&'a [u8]),
}

/// The outcome of validating one request's events.
#[derive(Debug, Default)]
pub struct Checked {
    /// Valid, enriched events.
    pub accepted: Vec<Event>,
    /// Index in the request, the rejection, and the event's original bytes.
    pub rejected: Vec<(usize, Rejection, Bytes)>,
}

/// Splits a decoded body into events. Fails for the whole body only when its framing is
/// broken (not a JSON array, not an `EventBatch`).
pub fn split_body(body: &[u8], encoding: Encoding) -> Result<Vec<RawEvent<'_>>, String> {
    match encoding {
        Encoding::JsonArray => {
            Ok(json_array_items(body)?.into_iter().map(|r| RawEvent::Json(r.get().as_bytes())).collect())
        }
        Encoding::Ndjson => Ok(ndjson_lines(body).map(RawEvent::Json).collect()),
        Encoding::Protobuf => batch_entries(body)
            .map(|entries| entries.into_iter().map(RawEvent::Proto).collect())
            .map_err(|e| format!("body is not a protobuf EventBatch: {e}")),
    }
}

/// The bytes of each `events` entry (field 1) of an `EventBatch`, without decoding them, so a
/// bad event is rejected on its own and a rejected one keeps its original bytes for free.
fn batch_entries(mut body: &[u8]) -> Result<Vec<&[u8]>, String> {
    use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};
    let mut out = Vec::new();
    while !body.is_empty() {
        let (tag, wire_type) = decode_key(&mut body).map_err(|e| e.to_string())?;
        if tag == 1 && wire_type == WireType::LengthDelimited {
            let len =
                usize::try_from(decode_varint(&mut body).map_err(|e| e.to_string())?).unwrap_or(usize::MAX);
            if len > body.len() {
                return Err("an event runs past the end of the body".into());
            }
            let (entry, rest) = body.split_at(len);
            out.push(entry);
            body = rest;
        } else {
            skip_field(wire_type, tag, &mut body, DecodeContext::default()).map_err(|e| e.to_string())?;
        }
    }
    Ok(out)
}

/// Validates every event against the registry.
pub fn check(registry: &event_model::Registry, events: Vec<RawEvent<'_>>, enrich: &Enrichment) -> Checked {
    let mut out = Checked::default();
    for (i, raw) in events.into_iter().enumerate() {
        let result = match raw {
            RawEvent::Json(bytes) => registry.validate_json(bytes, enrich),
            RawEvent::Proto(bytes) => match Event::decode(bytes) {
                Ok(e) => registry.validate_event(e, enrich),
                Err(e) => Err(Rejection {
                    kind: event_model::RejectKind::Malformed,
                    reason: format!("not a valid protobuf Event: {e}"),
                    event_type: None,
                }),
            },
        };
        match result {
            Ok(e) => out.accepted.push(e),
            Err(r) => {
                let (RawEvent::Json(bytes) | RawEvent::Proto(bytes)) = raw;
                out.rejected.push((i, r, Bytes::copy_from_slice(bytes)));
            }
        }
    }
    out
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = serde_json::to_string(&ErrorBody { error: message.into() }).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

fn retry_later(status: StatusCode, secs: u64, message: impl Into<String>) -> Response {
    let mut r = error(status, message);
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    r
}

/// Compares in time independent of where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    let auth = &state.config.auth;
    if auth.allow_unauthenticated && auth.tokens.is_empty() {
        return true;
    }
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
    else {
        return auth.allow_unauthenticated;
    };
    auth.tokens.iter().any(|t| constant_time_eq(t.as_bytes(), token.trim().as_bytes()))
}

/// Gauges and permits of one request in flight, given back on drop.
struct InFlight<'a> {
    state: &'a AppState,
    bytes: i64,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.state.metrics.in_flight_requests.dec();
        self.state.metrics.in_flight_bytes.dec_by(self.bytes);
    }
}

/// The handler of `POST /v1/events`.
pub(crate) async fn ingest(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let response = handle(&state, req).await;
    state.metrics.requests.get_or_create(&StatusLabels { status: response.status().as_u16() }).inc();
    response
}

async fn handle(state: &AppState, req: Request) -> Response {
    let limits = &state.config.limits;
    let (parts, body) = req.into_parts();
    if !authorized(state, &parts.headers) {
        let mut r = error(StatusCode::UNAUTHORIZED, "missing or invalid bearer token");
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    let Some(encoding) = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(Encoding::from_content_type)
    else {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json (array), application/x-ndjson or application/x-protobuf",
        );
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes) {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body is larger than {} bytes", limits.max_body_bytes),
        );
    }
    // Bounded work: a slot per request and its body's bytes, or 429 at once.
    let Ok(_request_slot) = state.request_slots.try_acquire() else {
        return retry_later(
            StatusCode::TOO_MANY_REQUESTS,
            limits.retry_after_secs,
            "too many requests in flight",
        );
    };
    let reserve = declared.unwrap_or(limits.max_body_bytes);
    let Ok(_byte_slots) = state.byte_slots.try_acquire_many(u32::try_from(reserve).unwrap_or(u32::MAX))
    else {
        return retry_later(
            StatusCode::TOO_MANY_REQUESTS,
            limits.retry_after_secs,
            "too many bytes in flight",
        );
    };
    state.metrics.in_flight_requests.inc();
    state.metrics.in_flight_bytes.inc_by(reserve as i64);
    let _gauges = InFlight { state, bytes: reserve as i64 };

    let raw = match axum::body::to_bytes(Body::new(body), limits.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("cannot read a body of at most {} bytes: {e}", limits.max_body_bytes),
            );
        }
    };
    let gzipped = parts
        .headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
    let body = if gzipped {
        match gunzip(&raw, limits.max_body_bytes) {
            Ok(b) => Bytes::from(b),
            Err(GunzipError::TooLarge) => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("decompressed body is larger than {} bytes", limits.max_body_bytes),
                );
            }
            Err(GunzipError::Corrupt(e)) => {
                return error(StatusCode::BAD_REQUEST, format!("invalid gzip body: {e}"));
            }
        }
    } else {
        raw
    };
    let events = match split_body(&body, encoding) {
        Ok(e) => e,
        Err(reason) => return error(StatusCode::BAD_REQUEST, reason),
    };
    if events.len() > limits.max_events_per_request {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{} events in one request, the limit is {}", events.len(), limits.max_events_per_request),
        );
    }
    let enrich = Enrichment::new(SystemTime::now()).with_max_event_bytes(limits.max_event_bytes);
    let checked = check(&state.registry(), events, &enrich);
    publish_and_answer(state, checked).await
}

enum GunzipError {
    TooLarge,
    Corrupt(std::io::Error),
}

/// Decompresses at most `limit` bytes; more is an error, so a small bomb cannot fill memory.
fn gunzip(data: &[u8], limit: usize) -> Result<Vec<u8>, GunzipError> {
    let mut out = Vec::with_capacity((data.len() * 4).min(limit));
    let mut reader = flate2::read::MultiGzDecoder::new(data).take(limit as u64 + 1);
    reader.read_to_end(&mut out).map_err(GunzipError::Corrupt)?;
    if out.len() > limit {
        return Err(GunzipError::TooLarge);
    }
    Ok(out)
}

async fn publish_and_answer(state: &AppState, checked: Checked) -> Response {
    let metrics = &state.metrics;
    let start = Instant::now();
    let mut handles: Vec<(String, PublishHandle)> = Vec::with_capacity(checked.accepted.len());
    // One registry snapshot and one publisher lookup per topic for the whole request.
    let registry = state.registry();
    let mut publishers: HashMap<&str, Publisher> = HashMap::new();
    for event in &checked.accepted {
        let Some(topic) = registry.topic_of(event) else { continue };
        let msg = Message::new(event.encode_to_vec()).with_attributes(attributes(event));
        let publisher = match publishers.get(topic) {
            Some(p) => p.clone(),
            None => match state.publishers.get(topic) {
                Ok(p) => publishers.entry(topic).or_insert(p).clone(),
                Err(e) => {
                    return error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("no publisher for topic {topic}: {e}"),
                    );
                }
            },
        };
        match publisher.publish(&msg).await {
            Ok(h) => handles.push((event.r#type.clone(), h)),
            Err(e) => {
                return retry_later(
                    StatusCode::SERVICE_UNAVAILABLE,
                    state.config.limits.retry_after_secs,
                    format!("publish refused: {e}"),
                );
            }
        }
        if let Some(mirror) = &state.mirror {
            mirror.offer(topic, msg); // never waits; a full mirror queue drops and counts it
        }
    }
    let mut dead_letter = Vec::new();
    if let Some(dlq) = &state.config.dead_letter_topic
        && let Ok(p) = state.publishers.get(dlq)
    {
        for (i, r, bytes) in &checked.rejected {
            let msg = Message::new(bytes.clone())
                .with_attribute("reject_reason", r.reason.chars().take(1000).collect::<String>())
                .with_attribute("reject_kind", r.kind.as_str())
                .with_attribute("event_type", r.event_type.clone().unwrap_or_default())
                .with_attribute("request_index", i.to_string());
            if let Ok(h) = p.publish(&msg).await {
                dead_letter.push(h);
            }
        }
    }
    // The answer waits for Pub/Sub to confirm every accepted event.
    let mut failure = None;
    for (event_type, h) in handles {
        match h.await {
            Ok(_) => {
                metrics.accepted.get_or_create(&TypeLabels { event_type }).inc();
            }
            Err(e) => failure = Some(e),
        }
    }
    for h in dead_letter {
        if h.await.is_ok() {
            metrics.dead_lettered.inc();
        }
    }
    metrics.publish_latency.observe(start.elapsed().as_secs_f64());
    for (_, r, _) in &checked.rejected {
        let labels = RejectLabels {
            event_type: r.event_type.clone().unwrap_or_else(|| "unknown".into()),
            reason: r.kind.as_str().into(),
        };
        metrics.rejected.get_or_create(&labels).inc();
    }
    if let Some(e) = failure {
        tracing::warn!(error = %e, "publish failed; answering 503 so the sender retries");
        return retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            state.config.limits.retry_after_secs,
            format!("publishing to Pub/Sub failed, retry the request: {e}"),
        );
    }
    let answer = Answer {
        accepted: checked.accepted.len() as u64,
        rejected: checked
            .rejected
            .iter()
            .map(|(i, r, _)| Rejected::new(*i, &r.reason, r.kind.as_str()))
            .collect(),
    };
    let body = serde_json::to_string(&answer).unwrap_or_default();
    (StatusCode::OK, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body)
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_map_to_encodings() {
        assert_eq!(Encoding::from_content_type("application/json; charset=utf-8"), Some(Encoding::JsonArray));
        assert_eq!(Encoding::from_content_type("application/x-ndjson"), Some(Encoding::Ndjson));
        assert_eq!(Encoding::from_content_type("Application/X-Protobuf"), Some(Encoding::Protobuf));
        assert_eq!(Encoding::from_content_type("text/plain"), None);
    }

    #[test]
    fn batch_entries_are_the_events_own_bytes() {
        use event_model::EventBatch;
        let events: Vec<Event> = (0..3)
            .map(|i| Event { id: format!("e{i}"), r#type: "play".into(), ..Default::default() })
            .collect();
        let body = EventBatch { events: events.clone() }.encode_to_vec();
        let entries = batch_entries(&body).expect("valid batch");
        assert_eq!(entries.len(), 3);
        for (entry, e) in entries.iter().zip(&events) {
            assert_eq!(*entry, e.encode_to_vec().as_slice());
        }
        assert!(batch_entries(&body[..body.len() - 1]).is_err(), "a truncated body is refused");
        assert_eq!(batch_entries(&[]).expect("empty").len(), 0);
    }

    #[test]
    fn gzip_bombs_stop_at_the_limit() {
        let data = vec![0u8; 100_000];
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut enc, &data).expect("write");
        let packed = enc.finish().expect("finish");
        assert!(matches!(gunzip(&packed, 1000), Err(GunzipError::TooLarge)));
        assert_eq!(gunzip(&packed, 100_000).ok().map(|v| v.len()), Some(100_000));
        assert!(matches!(gunzip(b"not gzip", 1000), Err(GunzipError::Corrupt(_))));
    }

    #[test]
    fn token_comparison_is_exact() {
        assert!(constant_time_eq(b"secret-token-123", b"secret-token-123"));
        assert!(!constant_time_eq(b"secret-token-123", b"secret-token-124"));
        assert!(!constant_time_eq(b"secret", b"secret-token"));
    }
}
