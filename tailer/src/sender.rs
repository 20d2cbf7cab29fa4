//! Sending batches to the event-service, with the retry policy of [`crate::retry`].
//!
//! What counts as an acknowledgement is the ingest contract of [`event_model::ingest`]:
//!
//! * `200` with the service's own answer to this attempt (it echoes the attempt's
//!   `x-request-id`) covering exactly the events sent: every event was
//!   published, rejected or is retryable; rejections are logged with the file and offset of
//!   their line and counted, never retried. Only the retryable events (their topic or the
//!   dead-letter topic is failing) are sent again, after backoff and `Retry-After`, and
//!   counted as `tailer_events_retryable_total`; the batch is acknowledged once none is left.
//! * `413` or `400` with the service's own error body (the batch is too large or unreadable
//!   as a whole): the batch is split in halves and each is sent; a single event still refused
//!   that way is logged, counted as rejected and acknowledged.
//! * Anything else acknowledges nothing and is retried with backoff for as long as it takes,
//!   honouring `Retry-After`: `429`, `5xx`, `401`/`403`, `404`, connection errors, timeouts,
//!   and every answer that is not the service's (`200 {}`, an answer for part of the batch, an
//!   HTML page, a proxy's `413`, a body cut short; counted as `tailer_non_answers_total` and
//!   logged with the URL, the status, the content type and the start of the body). The lines
//!   stay unacknowledged, so reading pauses once every request slot is busy.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use event_model::ingest::{self, Answer};
use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};

use crate::batch::{Batch, Origin};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::ledger::Ledger;
use crate::metrics::{Metrics, ReasonLabels, StatusLabels};
use crate::retry::Backoff;

/// Sends batches; shared by the request tasks.
#[derive(Debug)]
pub(crate) struct Sender {
    client: reqwest::Client,
    url: reqwest::Url,
    token: Option<String>,
    gzip: bool,
    backoff: Backoff,
    ledger: Arc<Mutex<Ledger>>,
    metrics: Arc<Metrics>,
}

enum Outcome {
    Done(Answer, Option<Duration>),
    Split(String),
    Retry { reason: String, after: Option<Duration> },
}

impl Sender {
    /// A sender configured by `[service]`.
    pub(crate) fn new(config: &Config, ledger: Arc<Mutex<Ledger>>, metrics: Arc<Metrics>) -> Result<Self> {
        let s = &config.service;
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(s.timeout_secs))
            .connect_timeout(Duration::from_secs(s.timeout_secs.min(10)))
            .pool_max_idle_per_host(config.batch.max_in_flight * 2)
            // Shorter than the event-service's `server.idle_timeout_secs` (60 s), so a pooled
            // connection is not reused just as the service closes it.
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("eventpipe-tailer/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &s.ca_cert {
            let pem = std::fs::read(ca).map_err(|e| Error::io(ca, e))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| Error::Http(format!("{}: not a PEM certificate bundle: {e}", ca.display())))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build().map_err(|e| Error::Http(e.to_string()))?;
        let url = reqwest::Url::parse(&s.url).map_err(|e| Error::Config(format!("service.url: {e}")))?;
        Ok(Sender {
            client,
            url,
            token: config.token(),
            gzip: s.gzip,
            backoff: Backoff::new(
                Duration::from_millis(s.retry_initial_ms),
                Duration::from_millis(s.retry_max_ms),
            ),
            ledger,
            metrics,
        })
    }

    /// Delivers `batch` (retrying for as long as it takes) and acknowledges it in the ledger.
    pub(crate) async fn deliver(&self, mut batch: Batch) {
        self.metrics.in_flight_requests.inc();
        let body = Bytes::from(std::mem::take(&mut batch.body));
        self.deliver_part(body, &batch.origins, &batch).await;
        self.metrics.in_flight_requests.dec();
        self.ledger.lock().unwrap_or_else(|e| e.into_inner()).ack(batch.id, batch.files.iter().map(|f| f.fp));
    }

    /// Delivers events `body` whose lines are `origins` (of `batch`).
    async fn deliver_part(&self, mut body: Bytes, origins: &[Origin], batch: &Batch) {
        // The events still to deliver: all of them at first, then those the service answered
        // as retryable.
        let mut origins: std::borrow::Cow<'_, [Origin]> = origins.into();
        let mut wire = self.wire(&body).await;
        let mut attempt = 0u32;
        loop {
            let (reason, after) = match self
                .post(wire.clone().unwrap_or_else(|| body.clone()), wire.is_some(), origins.len())
                .await
            {
                Outcome::Done(answer, after) => {
                    self.rejections(&answer, &origins, batch);
                    let done = origins.len() - answer.retryable.len();
                    let rejected = answer.rejected.len().min(done);
                    self.metrics.events_acked.inc_by((done - rejected) as u64);
                    if answer.retryable.is_empty() {
                        return;
                    }
                    // Only the retryable events are sent again.
                    let entries = entry_ranges(&body);
                    if entries.len() != origins.len() {
                        // Cannot happen for a body this sender built; send it all again.
                        (String::from("cannot cut the retryable events out of the batch"), None)
                    } else {
                        let first = answer.retryable[0].reason.clone();
                        let mut again = Vec::with_capacity(answer.retryable.len());
                        let mut kept = Vec::with_capacity(answer.retryable.len());
                        for r in &answer.retryable {
                            let (start, end) = entries[r.index];
                            again.extend_from_slice(&body[start..end]);
                            kept.push(origins[r.index]);
                        }
                        self.metrics.events_retryable.inc_by(kept.len() as u64);
                        let reason = format!(
                            "the service answered {} of {} events as retryable ({first}); sending those again",
                            kept.len(),
                            origins.len()
                        );
                        body = Bytes::from(again);
                        origins = kept.into();
                        wire = self.wire(&body).await;
                        (reason, after)
                    }
                }
                Outcome::Split(reason) if origins.len() > 1 => {
                    let entries = entry_ranges(&body);
                    if entries.len() == origins.len() {
                        let mid = entries.len() / 2;
                        let (a, b) = (entries[mid - 1].1, entries[entries.len() - 1].1);
                        Box::pin(self.deliver_part(body.slice(..a), &origins[..mid], batch)).await;
                        Box::pin(self.deliver_part(body.slice(a..b), &origins[mid..], batch)).await;
                        return;
                    }
                    (format!("{reason} (and the batch cannot be split)"), None)
                }
                Outcome::Split(reason) => {
                    let o = origins.first().copied().unwrap_or(Origin { file: 0, offset: 0 });
                    self.rejected_one(batch, o, "refused", &reason);
                    return;
                }
                Outcome::Retry { reason, after } => (reason, after),
            };
            let delay = self.backoff.delay(attempt, after);
            if attempt < 3 || attempt.is_power_of_two() {
                tracing::warn!(%reason, attempt, delay_ms = delay.as_millis() as u64, "send failed; retrying");
            }
            self.metrics.retries.inc();
            tokio::time::sleep(delay).await;
            attempt = attempt.saturating_add(1);
        }
    }

    /// The gzipped body, when gzip is on.
    async fn wire(&self, body: &Bytes) -> Option<Bytes> {
        if !self.gzip {
            return None;
        }
        let raw = body.clone();
        tokio::task::spawn_blocking(move || gzip(&raw)).await.ok().map(Bytes::from)
    }

    /// One attempt of a body holding `events` events.
    async fn post(&self, body: Bytes, gzipped: bool, events: usize) -> Outcome {
        let started = Instant::now();
        // A new id for every attempt: only the answer to this attempt acknowledges it.
        let request_id = event_model::random_event_id();
        let mut req = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, ingest::CONTENT_TYPE_PROTOBUF)
            .header(ingest::REQUEST_ID_HEADER, &request_id)
            .body(body);
        if gzipped {
            req = req.header(CONTENT_ENCODING, "gzip");
        }
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let result = req.send().await;
        self.metrics.request_seconds.observe(started.elapsed().as_secs_f64());
        let resp = match result {
            Ok(r) => r,
            Err(e) => {
                self.count("error");
                return Outcome::Retry { reason: format!("request failed: {e}"), after: None };
            }
        };
        let status = resp.status();
        self.count(status.as_str());
        let after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let content_type = resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let ct = content_type.as_deref();
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return self.not_an_answer(format!("{status}, reading the answer failed: {e}"), after);
            }
        };
        match status {
            StatusCode::OK => match ingest::verify_answer_to(&request_id, ct, &body, events) {
                Ok(a) => Outcome::Done(a, after),
                Err(e) => self.not_an_answer(format!("{status}: {e}"), after),
            },
            StatusCode::PAYLOAD_TOO_LARGE | StatusCode::BAD_REQUEST => match ingest::service_error(ct, &body)
            {
                Some(error) => Outcome::Split(format!("{status}: {error}")),
                None => self.not_an_answer(
                    format!(
                        "{status} ({}) without the event-service's error body; the body starts `{}`",
                        ct.unwrap_or("no content type"),
                        ingest::head(&body)
                    ),
                    after,
                ),
            },
            _ => {
                let why = ingest::service_error(ct, &body).unwrap_or_else(|| ingest::head(&body));
                Outcome::Retry { reason: format!("{} answered {status}: {why}", self.url), after }
            }
        }
    }

    /// An answer that is not the service's: nothing is acknowledged, the request is retried.
    fn not_an_answer(&self, what: String, after: Option<Duration>) -> Outcome {
        self.metrics.non_answers.inc();
        Outcome::Retry {
            reason: format!(
                "{} did not answer as the event-service does ({what}); nothing is acknowledged; is service.url right?",
                self.url
            ),
            after,
        }
    }

    fn count(&self, status: &str) {
        self.metrics.requests.get_or_create(&StatusLabels { status: status.into() }).inc();
    }

    fn rejections(&self, answer: &Answer, origins: &[Origin], batch: &Batch) {
        for (n, r) in answer.rejected.iter().enumerate() {
            let Some(o) = origins.get(r.index).copied() else { continue };
            self.metrics.events_rejected.inc();
            let kind = if r.kind.is_empty() { "other" } else { r.kind.as_str() };
            self.metrics.events_rejected_by_kind.get_or_create(&ReasonLabels { reason: kind.into() }).inc();
            if n < 20 {
                let path = batch.files.get(o.file as usize).map(|f| f.path.display().to_string());
                tracing::warn!(path, offset = o.offset, kind, reason = %r.reason, "event rejected by the service");
            }
        }
    }

    fn rejected_one(&self, batch: &Batch, o: Origin, kind: &str, reason: &str) {
        self.metrics.events_rejected.inc();
        self.metrics.events_rejected_by_kind.get_or_create(&ReasonLabels { reason: kind.into() }).inc();
        let path = batch.files.get(o.file as usize).map(|f| f.path.display().to_string());
        tracing::error!(
            path,
            offset = o.offset,
            reason,
            "the service refused this event on its own; dropped"
        );
    }
}

/// `(start, end)` of each `events` entry of an `EventBatch` body.
fn entry_ranges(body: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let start = body.len() - rest.len();
        let Ok((tag, wt)) = decode_key(&mut rest) else { break };
        if tag == 1 && wt == WireType::LengthDelimited {
            let Ok(len) = decode_varint(&mut rest) else { break };
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if len > rest.len() {
                break;
            }
            rest = &rest[len..];
            out.push((start, body.len() - rest.len()));
        } else if skip_field(wt, tag, &mut rest, DecodeContext::default()).is_err() {
            break;
        }
    }
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut z =
        flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 4), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = z.write_all(data);
    z.finish().unwrap_or_default()
}
