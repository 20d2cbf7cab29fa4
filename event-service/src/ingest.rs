//! `POST /v1/events`: authenticate, bound, decode, validate, publish, answer after Pub/Sub
//! confirmed every accepted event.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use event_model::ingest::{Answer, ErrorBody, REQUEST_ID_HEADER, echoable_request_id};
use event_model::{Enrichment, Event, Rejection};
use prost::Message as _;

use crate::body::{Encoding, GunzipError, RawEvent, SplitError, gunzip, split_body};
use crate::budget::Reservation;
use crate::metrics::StatusLabels;
use crate::publish::{Checked, Statuses, publish};
use crate::state::AppState;

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
            Ok(e) => out.accepted.push((i, e)),
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

/// The request gauge of one request in flight, taken back on drop.
struct InFlight<'a>(&'a AppState);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.metrics.in_flight_requests.dec();
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
    let Some(caller) = crate::auth::authorized(state, &parts.headers) else {
        let mut r = error(StatusCode::UNAUTHORIZED, "missing or invalid bearer token");
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    };
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
    state.metrics.in_flight_requests.inc();
    let _gauge = InFlight(state);
    // The byte budget: the body as sent (as declared, else the most it may be), then the
    // decompressed body as it grows, then a working copy of the decoded events as large as the
    // decompressed body. Bounded by what arrives, never by what the client declares.
    let mut budget = Reservation::new(&state.byte_slots, &state.metrics.in_flight_bytes);
    let busy =
        || retry_later(StatusCode::TOO_MANY_REQUESTS, limits.retry_after_secs, "too many bytes in flight");
    if !budget.grow(declared.unwrap_or(limits.max_body_bytes)) {
        return busy();
    }
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
        match gunzip(&raw, limits.max_body_bytes, &mut budget) {
            Ok(b) => Bytes::from(b),
            Err(GunzipError::TooLarge) => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("decompressed body is larger than {} bytes", limits.max_body_bytes),
                );
            }
            Err(GunzipError::NoBudget) => return busy(),
            Err(GunzipError::Corrupt(e)) => {
                return error(StatusCode::BAD_REQUEST, format!("invalid gzip body: {e}"));
            }
        }
    } else {
        raw
    };
    if !budget.grow(body.len()) {
        return busy();
    }
    let events = match split_body(&body, encoding, limits.max_events_per_request) {
        Ok(e) => e,
        Err(SplitError::Invalid(reason)) => return error(StatusCode::BAD_REQUEST, reason),
        Err(SplitError::TooMany { limit }) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("more than {limit} events in one request, the limit is {limit}"),
            );
        }
    };
    let enrich = Enrichment::new(SystemTime::now()).with_max_event_bytes(limits.max_event_bytes);
    let checked = check(&state.registry(), events, &enrich);
    // The token's sources and rate: the whole request or nothing of it.
    if let Err(refused) = caller.admit(&checked, &state.metrics) {
        return refused.into_response();
    }
    drop(body);
    let request_id = parts
        .headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| echoable_request_id(v.as_bytes()))
        .map(str::to_owned);
    answer(state, publish(state, checked).await, request_id)
}

/// `200` with every event's status and the request's id; `503` when no event could be
/// published or rejected.
fn answer(state: &AppState, s: Statuses, request_id: Option<String>) -> Response {
    let retry_after = state.config.limits.retry_after_secs;
    if s.accepted == 0 && s.rejected.is_empty() && !s.retryable.is_empty() {
        let why = &s.retryable[0].reason;
        return retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            retry_after,
            format!("no event of the request was published, retry the request: {why}"),
        );
    }
    let retry = !s.retryable.is_empty();
    let answer = Answer::new(s.accepted)
        .with_rejected(s.rejected)
        .with_retryable(s.retryable)
        .with_request_id(request_id);
    let body = serde_json::to_string(&answer).unwrap_or_default();
    let mut r =
        (StatusCode::OK, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body)
            .into_response();
    if retry {
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    }
    r
}
