//! The HTTP ingest contract between a sender (the tailer, or any client) and the event-service:
//! the route, the content types, the answer's schema and how a sender recognizes it.
//!
//! The event-service serializes [`Answer`] and [`ErrorBody`]; senders check what came back
//! with [`verify_answer`] and [`service_error`], so neither side re-declares the schema.
//!
//! A sender takes an answer for an acknowledgement only when it is the service's own,
//! well-formed answer covering exactly the events sent: a `200` whose JSON body gives every
//! event of the request one status — accepted (counted), rejected (listed by index with a
//! reason: permanently invalid, the sender drops it) or retryable (listed by index: e.g. its
//! topic is failing; the sender re-sends only those) — adding up to the number sent. Anything
//! else (`200 {}` from another server, an answer for part of the batch, an HTML error page, a
//! body cut short) acknowledges nothing: the sender retries the whole request.
//!
//! When no event of a request could be published or rejected (every one is retryable), the
//! service answers `503` with an [`ErrorBody`] and `Retry-After` instead, which senders that
//! predate the `retryable` list also retry.
//!
//! Every answer of `POST` [`PATH`], and what a sender does with it:
//!
//! | status | body | meaning | the sender |
//! |---|---|---|---|
//! | `200` | [`Answer`] echoing [`REQUEST_ID_HEADER`] | every event accepted, rejected or retryable | drops the rejected (logged, counted), re-sends only the retryable, after `Retry-After` when given |
//! | `400` | [`ErrorBody`] | the body as a whole is unreadable (framing, gzip) | splits the batch; a single event so refused is dropped |
//! | `413` | [`ErrorBody`] | over the body limit (after decompression), the event count, or the token's burst | splits the batch; a single event so refused is dropped |
//! | `401` / `403` | [`ErrorBody`] | no valid token / the token may not send for an event's source | retries (and says so): an operator fixes the configuration |
//! | `415` | [`ErrorBody`] | unsupported `Content-Type` | retries |
//! | `429` / `503` | [`ErrorBody`], `Retry-After` | overloaded, over the token's rate / nothing could be published | retries after `Retry-After` |
//! | anything else, or any of these without the service's body | — | not the event-service's answer | retries; nothing is acknowledged |
//!
//! ```
//! use event_model::ingest::{Answer, Rejected, Retryable, verify_answer};
//!
//! let answer = Answer::new(1)
//!     .with_rejected(vec![Rejected::new(1, "missing field `user`", "missing_field")])
//!     .with_retryable(vec![Retryable::new(2, "publishing to topic `search` failed")]);
//! let body = serde_json::to_vec(&answer).unwrap();
//! assert_eq!(verify_answer(Some("application/json"), &body, 3).unwrap(), answer);
//! assert!(verify_answer(Some("application/json"), b"{}", 3).is_err());
//! ```

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The ingest route.
pub const PATH: &str = "/v1/events";
/// Content type of a protobuf `EventBatch` body (the tailer's).
pub const CONTENT_TYPE_PROTOBUF: &str = "application/x-protobuf";
/// Content type of a JSON array of events.
pub const CONTENT_TYPE_JSON: &str = "application/json";
/// Content type of newline-delimited JSON events.
pub const CONTENT_TYPE_NDJSON: &str = "application/x-ndjson";
/// The request header naming a request; the service echoes it in its [`Answer`] as
/// `request_id`, so a sender can tell the answer to this request from any other (a stale or
/// cached answer with the same count).
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Longest request id the service echoes, in bytes.
pub const MAX_REQUEST_ID_BYTES: usize = 128;

/// The request id a service echoes: `value` when it is 1 to [`MAX_REQUEST_ID_BYTES`] visible
/// ASCII characters, else `None` (not echoed).
pub fn echoable_request_id(value: &[u8]) -> Option<&str> {
    let ok = !value.is_empty()
        && value.len() <= MAX_REQUEST_ID_BYTES
        && value.iter().all(|b| b.is_ascii_graphic());
    ok.then(|| std::str::from_utf8(value).ok()).flatten()
}

/// The service's answer to a request it handled (`200`): every event of the request is
/// accepted (published and confirmed by Pub/Sub), rejected, or retryable. `accepted` and
/// `rejected` are required; `retryable` may be absent (an older service's answer, or none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Answer {
    /// Events published and confirmed: every event not listed in `rejected` or `retryable`.
    pub accepted: u64,
    /// Events permanently invalid, by their index in the request.
    pub rejected: Vec<Rejected>,
    /// Events neither published nor rejected, by their index in the request: the sender
    /// sends them again (after `Retry-After`, when given).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retryable: Vec<Retryable>,
    /// The request's [`REQUEST_ID_HEADER`], echoed; absent when the request had none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl Answer {
    /// An answer accepting `accepted` events, rejecting none, with none to retry.
    pub fn new(accepted: u64) -> Self {
        Answer { accepted, rejected: Vec::new(), retryable: Vec::new(), request_id: None }
    }

    /// Sets the echoed request id.
    pub fn with_request_id(mut self, request_id: Option<String>) -> Self {
        self.request_id = request_id;
        self
    }

    /// Sets the rejected events.
    pub fn with_rejected(mut self, rejected: Vec<Rejected>) -> Self {
        self.rejected = rejected;
        self
    }

    /// Sets the events to send again.
    pub fn with_retryable(mut self, retryable: Vec<Retryable>) -> Self {
        self.retryable = retryable;
        self
    }
}

/// One event of an [`Answer`] that the sender should send again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retryable {
    /// Index of the event in the request (0-based).
    pub index: usize,
    /// Why it was not published, for people.
    pub reason: String,
}

impl Retryable {
    /// Event `index` is to be sent again.
    pub fn new(index: usize, reason: impl Into<String>) -> Self {
        Retryable { index, reason: reason.into() }
    }
}

/// One rejected event of an [`Answer`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// Index of the event in the request (0-based).
    pub index: usize,
    /// Why, for people.
    pub reason: String,
    /// The class of the reason ([`crate::RejectKind::as_str`]), for metrics.
    pub kind: String,
}

impl Rejected {
    /// A rejection of event `index`.
    pub fn new(index: usize, reason: impl Into<String>, kind: impl Into<String>) -> Self {
        Rejected { index, reason: reason.into(), kind: kind.into() }
    }
}

/// The body of every answer other than `200`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What was wrong.
    pub error: String,
}

/// Checks that a `200` answer is the service's own answer covering exactly `events_sent`
/// events: a JSON [`Answer`] whose accepted, rejected and retryable counts add up to
/// `events_sent`, each listed index within the request and named once.
///
/// # Errors
/// [`Error::NotAnAnswer`] naming what is wrong (and the start of the body).
pub fn verify_answer(content_type: Option<&str>, body: &[u8], events_sent: usize) -> Result<Answer, Error> {
    let not = |why: String| Error::NotAnAnswer(format!("{why}; the body starts `{}`", head(body)));
    if !is_json(content_type) {
        return Err(not(format!("content type `{}` is not JSON", content_type.unwrap_or(""))));
    }
    let answer: Answer =
        serde_json::from_slice(body).map_err(|e| not(format!("not the event-service's answer: {e}")))?;
    let covered = answer
        .accepted
        .saturating_add(answer.rejected.len() as u64)
        .saturating_add(answer.retryable.len() as u64);
    if covered != events_sent as u64 {
        return Err(not(format!(
            "it covers {covered} events ({} accepted, {} rejected, {} retryable), {events_sent} were sent",
            answer.accepted,
            answer.rejected.len(),
            answer.retryable.len()
        )));
    }
    let mut seen = vec![false; events_sent];
    let listed = answer.rejected.iter().map(|r| ("rejected", r.index));
    for (what, index) in listed.chain(answer.retryable.iter().map(|r| ("retryable", r.index))) {
        match seen.get_mut(index) {
            Some(s) if !*s => *s = true,
            _ => return Err(not(format!("{what} index {index} is out of range or repeated"))),
        }
    }
    Ok(answer)
}

/// [`verify_answer`] for a request sent with `request_id` in its [`REQUEST_ID_HEADER`]: the
/// answer must also echo that id, so an answer to any other request (a stale copy, a cache's)
/// is not taken for this one's.
///
/// # Errors
/// [`Error::NotAnAnswer`] as for [`verify_answer`], or naming the id that came back.
pub fn verify_answer_to(
    request_id: &str,
    content_type: Option<&str>,
    body: &[u8],
    events_sent: usize,
) -> Result<Answer, Error> {
    let answer = verify_answer(content_type, body, events_sent)?;
    if answer.request_id.as_deref() != Some(request_id) {
        return Err(Error::NotAnAnswer(format!(
            "it answers request {}, this was request {request_id} (a stale or cached answer, or an event-service that does not echo `{REQUEST_ID_HEADER}`)",
            answer.request_id.as_deref().unwrap_or("(none)")
        )));
    }
    Ok(answer)
}

/// The service's own error message, when an answer other than `200` carries an
/// [`ErrorBody`]; `None` for anything else (an HTML page, a proxy's text).
pub fn service_error(content_type: Option<&str>, body: &[u8]) -> Option<String> {
    if !is_json(content_type) {
        return None;
    }
    serde_json::from_slice::<ErrorBody>(body).ok().map(|b| b.error)
}

/// At most 120 characters of `body`, for error messages.
pub fn head(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(120)]);
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| c.trim().eq_ignore_ascii_case(CONTENT_TYPE_JSON))
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: Option<&str> = Some("application/json");

    fn body(accepted: u64, rejected: &[usize]) -> Vec<u8> {
        with_retryable(accepted, rejected, &[])
    }

    fn with_retryable(accepted: u64, rejected: &[usize], retryable: &[usize]) -> Vec<u8> {
        let rejected = rejected.iter().map(|i| Rejected::new(*i, "bad", "malformed")).collect();
        let retryable = retryable.iter().map(|i| Retryable::new(*i, "topic failing")).collect();
        serde_json::to_vec(&Answer::new(accepted).with_rejected(rejected).with_retryable(retryable))
            .expect("json")
    }

    #[test]
    fn retryable_events_count_toward_the_events_covered() {
        let a = verify_answer(JSON, &with_retryable(1, &[0], &[2, 3]), 4).expect("answer");
        assert_eq!(a.retryable.iter().map(|r| r.index).collect::<Vec<_>>(), [2, 3]);
        // An older service's answer has no `retryable` list.
        let old = br#"{"accepted":4,"rejected":[]}"#;
        assert!(verify_answer(JSON, old, 4).expect("answer").retryable.is_empty());
        // No list is written when nothing is retryable, so older senders read the answer.
        assert!(!String::from_utf8(body(4, &[])).expect("utf8").contains("retryable"));
        for (b, why) in [
            (with_retryable(2, &[], &[3]), "it covers 3 events"),
            (with_retryable(2, &[1], &[1]), "retryable index 1 is out of range or repeated"),
            (with_retryable(3, &[], &[9]), "retryable index 9"),
        ] {
            let e = verify_answer(JSON, &b, 4).expect_err(why).to_string();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn the_services_answer_for_every_event_sent_is_one() {
        let a = verify_answer(Some("application/json; charset=utf-8"), &body(3, &[1]), 4).expect("answer");
        assert_eq!((a.accepted, a.rejected.len()), (3, 1));
    }

    #[test]
    fn anything_else_is_not_an_answer() {
        for (ct, b, why) in [
            (JSON, b"{}".to_vec(), "missing field"),
            (JSON, body(2, &[]), "it covers 2 events"),
            (JSON, body(3, &[4]), "out of range"),
            (JSON, body(2, &[1, 1]), "repeated"),
            (Some("text/html"), b"<html>ok</html>".to_vec(), "is not JSON"),
            (None, body(4, &[]), "is not JSON"),
            (JSON, body(4, &[])[..10].to_vec(), "EOF"),
        ] {
            let e = verify_answer(ct, &b, 4).expect_err(why).to_string();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn an_answer_to_another_request_is_not_this_ones() {
        let answer = |id: Option<&str>| {
            serde_json::to_vec(&Answer::new(2).with_request_id(id.map(str::to_owned))).expect("json")
        };
        assert!(verify_answer_to("r-1", JSON, &answer(Some("r-1")), 2).is_ok());
        for (id, why) in [(Some("r-0"), "answers request r-0"), (None, "answers request (none)")] {
            let e = verify_answer_to("r-1", JSON, &answer(id), 2).expect_err(why).to_string();
            assert!(e.contains(why), "{e}");
        }
        assert_eq!(echoable_request_id(b"tailer-3f2a"), Some("tailer-3f2a"));
        for bad in [&b""[..], b"a b", b"a\nb", &[b'x'; 129][..], "é".as_bytes()] {
            assert_eq!(echoable_request_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_the_services_error_body_is_its_error() {
        let e =
            serde_json::to_vec(&ErrorBody { error: "body is larger than 10 bytes".into() }).expect("json");
        assert_eq!(service_error(JSON, &e).as_deref(), Some("body is larger than 10 bytes"));
        assert_eq!(service_error(Some("text/html"), b"<html>413</html>"), None);
        assert_eq!(service_error(JSON, b"{}"), None);
    }
}
