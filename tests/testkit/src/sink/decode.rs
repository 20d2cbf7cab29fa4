//! Request-body decoding for [`IngestSink`](super::IngestSink): content types, gzip, batch
//! framing and per-event validation, following `event-service/src/ingest.rs`.

use std::io::Read;
use std::time::SystemTime;

use event_model::{
    Enrichment, Event, Registry, RejectKind, Rejection, Value, ValueKind, json_array_items, ndjson_lines,
    parse_rfc3339,
};
use prost::Message as _;

use super::SinkRejection;

/// How a request body is encoded, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Encoding {
    /// `application/json`: a JSON array of events.
    JsonArray,
    /// `application/x-ndjson` (and aliases): one JSON event per line.
    Ndjson,
    /// `application/x-protobuf`: an `EventBatch`.
    Protobuf,
}

impl Encoding {
    /// The encoding named by a `Content-Type` (parameters ignored), if the service supports it.
    pub(super) fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/json" => Some(Encoding::JsonArray),
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines" => Some(Encoding::Ndjson),
            "application/x-protobuf" | "application/protobuf" => Some(Encoding::Protobuf),
            _ => None,
        }
    }
}

/// Why a gzip body cannot be used.
#[derive(Debug)]
pub(super) enum GunzipError {
    /// It decompresses to more than the limit.
    TooLarge,
    /// It is not valid gzip.
    Corrupt(std::io::Error),
}

/// Decompresses (all members of) a gzip body, at most `limit` bytes of output; more is
/// [`GunzipError::TooLarge`], so a small bomb cannot fill memory.
pub(super) fn gunzip(data: &[u8], limit: usize) -> Result<Vec<u8>, GunzipError> {
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(limit));
    let mut reader = flate2::read::MultiGzDecoder::new(data).take((limit as u64).saturating_add(1));
    reader.read_to_end(&mut out).map_err(GunzipError::Corrupt)?;
    if out.len() > limit {
        return Err(GunzipError::TooLarge);
    }
    Ok(out)
}

/// One event of a request as it arrived, undecoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RawEvent<'a> {
    /// A JSON event (an array element or an NDJSON line).
    Json(&'a [u8]),
    /// The bytes of one `events` entry of an `EventBatch`.
    Proto(&'a [u8]),
}

/// Splits a decoded body into its events. Fails for the whole body only when its framing is
/// broken (not a JSON array, not an `EventBatch`), with the service's message.
pub(super) fn split_body(body: &[u8], encoding: Encoding) -> Result<Vec<RawEvent<'_>>, String> {
    match encoding {
        Encoding::JsonArray => {
            Ok(json_array_items(body)?.into_iter().map(|raw| RawEvent::Json(raw.get().as_bytes())).collect())
        }
        Encoding::Ndjson => Ok(ndjson_lines(body).map(RawEvent::Json).collect()),
        Encoding::Protobuf => {
            let mut events = Vec::new();
            for_each_entry(body, |entry| events.push(RawEvent::Proto(entry)))?;
            Ok(events)
        }
    }
}

/// Counts the events of a decoded body without decoding any of them (counting mode).
pub(super) fn count_events(body: &[u8], encoding: Encoding) -> Result<usize, String> {
    match encoding {
        Encoding::JsonArray => Ok(json_array_items(body)?.len()),
        Encoding::Ndjson => Ok(ndjson_lines(body).count()),
        Encoding::Protobuf => {
            let mut count = 0;
            for_each_entry(body, |_| count += 1)?;
            Ok(count)
        }
    }
}

/// Calls `f` with the bytes of each `events` entry (field 1, length-delimited) of an
/// `EventBatch`, skipping other fields, without decoding the events.
fn for_each_entry<'a>(mut body: &'a [u8], mut f: impl FnMut(&'a [u8])) -> Result<(), String> {
    use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};
    let not_a_batch = |e: &dyn std::fmt::Display| format!("body is not a protobuf EventBatch: {e}");
    while !body.is_empty() {
        let (tag, wire_type) = decode_key(&mut body).map_err(|e| not_a_batch(&e))?;
        if tag == 1 && wire_type == WireType::LengthDelimited {
            let len = decode_varint(&mut body).map_err(|e| not_a_batch(&e))?;
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if len > body.len() {
                return Err(not_a_batch(&"an event runs past the end of the body"));
            }
            let (entry, rest) = body.split_at(len);
            f(entry);
            body = rest;
        } else {
            skip_field(wire_type, tag, &mut body, DecodeContext::default()).map_err(|e| not_a_batch(&e))?;
        }
    }
    Ok(())
}

/// The outcome of checking one request's events.
#[derive(Debug, Default)]
pub(super) struct Checked {
    /// Accepted events, enriched when a registry checked them.
    pub(super) accepted: Vec<Event>,
    /// Index in the request and rejection of each refused event.
    pub(super) rejected: Vec<(usize, SinkRejection)>,
}

/// Decodes every event and, with a registry, validates and enriches it exactly like the
/// event-service does; without one, every event that decodes is accepted as sent.
pub(super) fn check(registry: Option<&Registry>, events: Vec<RawEvent<'_>>) -> Checked {
    let enrich = Enrichment::new(SystemTime::now());
    let mut out = Checked::default();
    for (index, raw) in events.into_iter().enumerate() {
        let result = match raw {
            RawEvent::Json(bytes) => match registry {
                Some(registry) => registry.validate_json(bytes, &enrich),
                None => json_as_sent(bytes),
            }
            .map_err(|rejection| (json_id(bytes), rejection)),
            RawEvent::Proto(bytes) => match Event::decode(bytes) {
                Ok(event) => match registry {
                    Some(registry) => {
                        let id = event.id.clone();
                        registry.validate_event(event, &enrich).map_err(|rejection| (id, rejection))
                    }
                    None => Ok(event),
                },
                Err(e) => Err((
                    String::new(),
                    Rejection {
                        kind: RejectKind::Malformed,
                        reason: format!("not a valid protobuf Event: {e}"),
                        event_type: None,
                    },
                )),
            },
        };
        match result {
            Ok(event) => out.accepted.push(event),
            Err((id, rejection)) => out.rejected.push((
                index,
                SinkRejection {
                    id,
                    event_type: rejection.event_type.unwrap_or_default(),
                    reason: rejection.reason,
                    kind: rejection.kind,
                },
            )),
        }
    }
    out
}

/// The `id` of a JSON event, or `""` when it has none or is not a JSON object.
fn json_id(raw: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(raw)
        .ok()
        .and_then(|v| v.get("id").and_then(serde_json::Value::as_str).map(str::to_owned))
        .unwrap_or_default()
}

/// A JSON event converted without a registry: `id`, `type`, `source`, `schema_version`,
/// `event_time` (RFC 3339 or epoch milliseconds) and the scalar `fields` are taken as sent,
/// nothing is enriched, and other keys are ignored. Only something that cannot be represented
/// as an [`Event`] is rejected.
fn json_as_sent(raw: &[u8]) -> Result<Event, Rejection> {
    use serde_json::Value as J;
    let malformed = |reason: String| Rejection { kind: RejectKind::Malformed, reason, event_type: None };
    let value: J = serde_json::from_slice(raw).map_err(|e| malformed(format!("not a valid event: {e}")))?;
    let J::Object(map) = value else {
        return Err(malformed("not a valid event: not a JSON object".to_owned()));
    };
    let text = |key: &str| map.get(key).and_then(J::as_str).unwrap_or_default().to_owned();
    let event_type = text("type");
    let reject = |kind: RejectKind, reason: String| Rejection {
        kind,
        reason,
        event_type: Some(event_type.clone()).filter(|t| !t.is_empty()),
    };
    let mut event = Event {
        id: text("id"),
        r#type: event_type.clone(),
        source: text("source"),
        schema_version: map
            .get("schema_version")
            .and_then(J::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0),
        ..Event::default()
    };
    let bad_time = |v: &J| reject(RejectKind::BadTime, format!("event time {v} is unparseable"));
    match map.get("event_time") {
        None | Some(J::Null) => {}
        Some(v @ J::String(s)) => event.event_time = Some(parse_rfc3339(s).ok_or_else(|| bad_time(v))?),
        Some(v @ J::Number(n)) => {
            let millis = n.as_i64().ok_or_else(|| bad_time(v))?;
            let time = event.event_time.insert(Default::default());
            time.seconds = millis.div_euclid(1000);
            time.nanos = i32::try_from(millis.rem_euclid(1000) * 1_000_000).unwrap_or_default();
        }
        Some(other) => return Err(bad_time(other)),
    }
    if let Some(fields) = map.get("fields").and_then(J::as_object) {
        for (name, v) in fields {
            let kind = match v {
                J::Null => continue,
                J::String(s) => ValueKind::StringValue(s.clone()),
                J::Bool(b) => ValueKind::BoolValue(*b),
                J::Number(n) => match n.as_i64() {
                    Some(i) => ValueKind::IntValue(i),
                    None => ValueKind::FloatValue(n.as_f64().unwrap_or(f64::NAN)),
                },
                J::Array(_) | J::Object(_) => {
                    return Err(reject(RejectKind::WrongType, format!("field `{name}` is not a scalar")));
                }
            };
            event.fields.insert(name.clone(), Value { kind: Some(kind) });
        }
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use event_model::EventBatch;

    #[test]
    fn content_types_map_to_encodings() {
        assert_eq!(Encoding::from_content_type("application/json; charset=utf-8"), Some(Encoding::JsonArray));
        assert_eq!(Encoding::from_content_type("application/jsonl"), Some(Encoding::Ndjson));
        assert_eq!(Encoding::from_content_type("Application/X-Protobuf"), Some(Encoding::Protobuf));
        assert_eq!(Encoding::from_content_type("text/plain"), None);
    }

    #[test]
    fn batch_entries_are_walked_without_decoding() {
        let events: Vec<Event> = (0..3).map(|i| Event { id: format!("e{i}"), ..Event::default() }).collect();
        let body = EventBatch { events: events.clone() }.encode_to_vec();
        let split = split_body(&body, Encoding::Protobuf).expect("valid batch");
        let expected: Vec<Vec<u8>> = events.iter().map(|e| e.encode_to_vec()).collect();
        let entries: Vec<&[u8]> =
            split.iter().map(|raw| if let RawEvent::Proto(b) = raw { *b } else { &[] }).collect();
        assert_eq!(entries, expected.iter().map(Vec::as_slice).collect::<Vec<_>>());
        assert_eq!(count_events(&body, Encoding::Protobuf), Ok(3));
        let error = count_events(&body[..body.len() - 1], Encoding::Protobuf).expect_err("truncated");
        assert!(error.starts_with("body is not a protobuf EventBatch"), "{error}");
        assert_eq!(count_events(b"", Encoding::Protobuf), Ok(0));
        assert_eq!(count_events(b"{\"a\":1}\n\n{\"b\":2}\n", Encoding::Ndjson), Ok(2));
        assert_eq!(count_events(b"[1, {}, \"x\"]", Encoding::JsonArray), Ok(3));
        assert!(count_events(b"{}", Encoding::JsonArray).is_err());
    }

    #[test]
    fn gzip_is_bounded_by_the_decompressed_size() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut encoder, &[0u8; 100_000]).expect("gzip write");
        let packed = encoder.finish().expect("gzip finish");
        assert!(matches!(gunzip(&packed, 1000), Err(GunzipError::TooLarge)));
        assert_eq!(gunzip(&packed, 100_000).map(|v| v.len()).ok(), Some(100_000));
        assert!(matches!(gunzip(b"not gzip", 1000), Err(GunzipError::Corrupt(_))));
    }

    #[test]
    fn json_without_registry_is_taken_as_sent() {
        let raw = br#"{"id":"a","type":"play","source":"h","schema_version":2,"event_time":1500,
            "fields":{"s":"x","i":-3,"f":1.5,"b":true,"n":null},"extra":1}"#;
        let event = json_as_sent(raw).expect("accepted");
        assert_eq!((event.id.as_str(), event.r#type.as_str(), event.source.as_str()), ("a", "play", "h"));
        assert_eq!(event.schema_version, 2);
        let time = event.event_time.expect("event time");
        assert_eq!((time.seconds, time.nanos), (1, 500_000_000));
        assert_eq!(event.fields.len(), 4);
        assert_eq!(event.fields["i"].kind, Some(ValueKind::IntValue(-3)));
        assert_eq!(event.fields["f"].kind, Some(ValueKind::FloatValue(1.5)));
        let time = json_as_sent(br#"{"event_time":"2026-01-02T03:04:05Z"}"#).expect("rfc 3339");
        assert!(time.event_time.is_some());

        let bad = json_as_sent(br#"{"type":"play","fields":{"a":[1]}}"#).expect_err("array field");
        assert_eq!((bad.kind, bad.event_type.as_deref()), (RejectKind::WrongType, Some("play")));
        let bad = json_as_sent(br#"{"event_time":"yesterday"}"#).expect_err("bad time");
        assert_eq!(bad.kind, RejectKind::BadTime);
        assert_eq!(json_as_sent(b"[1]").expect_err("array").kind, RejectKind::Malformed);
        assert_eq!(json_as_sent(b"{").expect_err("broken").kind, RejectKind::Malformed);
        assert_eq!(json_id(br#"{"id":"x","type":5}"#), "x");
        assert_eq!(json_id(b"nope"), "");
    }
}
