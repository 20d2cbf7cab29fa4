//! Turning raw events (JSON or protobuf) into checked, enriched events.

use std::collections::BTreeMap;
use std::time::SystemTime;

use prost::Message as _;
use serde::Deserialize;

use crate::error::{RejectKind, Rejection};
use crate::id::random_event_id;
use crate::proto::value::Kind;
use crate::proto::{Event, Value};
use crate::registry::{EventType, FieldKind, Registry};
use crate::timefmt::{
    format_rfc3339, in_range, parse_rfc3339, timestamp_from_millis, timestamp_from_system_time,
};

/// Longest event id accepted.
pub const MAX_ID_LEN: usize = 128;

/// What the service adds to every event it accepts, and its size limit.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Enrichment {
    /// Set as `received_time`, and as `event_time` when the event has none.
    pub received_time: SystemTime,
    /// Largest encoded event accepted. Default: [`DEFAULT_MAX_EVENT_BYTES`](crate::DEFAULT_MAX_EVENT_BYTES).
    pub max_event_bytes: usize,
}

impl Enrichment {
    /// Enrichment with `received_time` and the default size limit.
    pub fn new(received_time: SystemTime) -> Self {
        Enrichment { received_time, max_event_bytes: crate::DEFAULT_MAX_EVENT_BYTES }
    }

    /// Sets [`max_event_bytes`](Self::max_event_bytes).
    pub fn with_max_event_bytes(mut self, n: usize) -> Self {
        self.max_event_bytes = n;
        self
    }
}

/// An event as JSON: `{"id", "type", "schema_version", "event_time", "source", "fields"}`;
/// only `type` is required. `event_time` is RFC 3339 text or integer epoch milliseconds.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonEvent {
    #[serde(default)]
    id: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    event_time: Option<serde_json::Value>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    fields: BTreeMap<String, serde_json::Value>,
}

fn reject(kind: RejectKind, reason: impl Into<String>) -> Rejection {
    Rejection::new(kind, reason)
}

fn article(kind: FieldKind) -> &'static str {
    if kind == FieldKind::Int { "an" } else { "a" }
}

fn json_time(v: &serde_json::Value) -> Option<prost_types::Timestamp> {
    let ts = match v {
        serde_json::Value::String(s) => parse_rfc3339(s)?,
        serde_json::Value::Number(n) => timestamp_from_millis(n.as_i64()?),
        _ => return None,
    };
    in_range(&ts).then_some(ts)
}

fn json_value(name: &str, kind: FieldKind, v: &serde_json::Value) -> Result<Value, Rejection> {
    use serde_json::Value as J;
    let wrong = || {
        reject(RejectKind::WrongType, format!("field `{name}` is not {} {}", article(kind), kind.as_str()))
    };
    let kind = match (kind, v) {
        (FieldKind::String, J::String(s)) => Kind::StringValue(s.clone()),
        (FieldKind::Int, J::Number(n)) => Kind::IntValue(n.as_i64().ok_or_else(wrong)?),
        (FieldKind::Float, J::Number(n)) => Kind::FloatValue(n.as_f64().ok_or_else(wrong)?),
        (FieldKind::Bool, J::Bool(b)) => Kind::BoolValue(*b),
        (FieldKind::Timestamp, v @ (J::String(_) | J::Number(_))) => {
            Kind::TimestampValue(json_time(v).ok_or_else(wrong)?)
        }
        _ => return Err(wrong()),
    };
    Ok(Value { kind: Some(kind) })
}

fn check_required(spec: &EventType, has: impl Fn(&str) -> bool) -> Result<(), Rejection> {
    match spec.fields.values().find(|f| f.required && !has(&f.name)) {
        Some(f) => Err(reject(RejectKind::MissingField, format!("missing field `{}`", f.name))),
        None => Ok(()),
    }
}

fn undeclared(name: &str, spec: &EventType) -> Rejection {
    reject(RejectKind::UnknownField, format!("field `{name}` is not declared for type `{}`", spec.name))
}

impl Registry {
    fn spec_of(&self, event_type: &str) -> Result<&EventType, Rejection> {
        self.event_type(event_type)
            .ok_or_else(|| reject(RejectKind::UnknownType, format!("unknown event type `{event_type}`")))
    }

    /// Parses and checks one JSON event and enriches it (id if absent, schema version if
    /// absent, `received_time`, `event_time` if absent). The rejection names the first problem:
    /// unparseable JSON, missing or unknown type, a missing required field, an undeclared field,
    /// a field of the wrong type, an unparseable event time, a bad id, another schema version,
    /// or an encoded size over the limit.
    pub fn validate_json(&self, raw: &[u8], enrich: &Enrichment) -> Result<Event, Rejection> {
        let j: JsonEvent = serde_json::from_slice(raw)
            .map_err(|e| reject(RejectKind::Malformed, format!("not a valid event: {e}")))?;
        let ty = j
            .event_type
            .filter(|t| !t.is_empty())
            .ok_or_else(|| reject(RejectKind::Malformed, "missing `type`"))?;
        let spec = self.spec_of(&ty).map_err(|r| r.of_type(&ty))?;
        let checked = (|| {
            check_required(spec, |n| j.fields.get(n).is_some_and(|v| !v.is_null()))?;
            let mut fields = BTreeMap::new();
            for (name, v) in &j.fields {
                let f = spec.fields.get(name).ok_or_else(|| undeclared(name, spec))?;
                if !v.is_null() {
                    fields.insert(name.clone(), json_value(name, f.kind, v)?);
                }
            }
            let event_time = match &j.event_time {
                None | Some(serde_json::Value::Null) => None,
                Some(v) => Some(json_time(v).ok_or_else(|| {
                    reject(RejectKind::BadTime, format!("event time {v} is unparseable or out of range"))
                })?),
            };
            let event = Event {
                id: j.id.unwrap_or_default(),
                r#type: ty.clone(),
                schema_version: j.schema_version.unwrap_or(0),
                event_time,
                received_time: None,
                source: j.source.unwrap_or_default(),
                fields,
            };
            finish(spec, event, enrich)
        })();
        checked.map_err(|r| r.of_type(&ty))
    }

    /// Checks and enriches an event that arrived as protobuf, like
    /// [`validate_json`](Self::validate_json). An int is accepted for a float field.
    pub fn validate_event(&self, mut event: Event, enrich: &Enrichment) -> Result<Event, Rejection> {
        if event.r#type.is_empty() {
            return Err(reject(RejectKind::Malformed, "missing `type`"));
        }
        let ty = event.r#type.clone();
        let spec = self.spec_of(&ty).map_err(|r| r.of_type(&ty))?;
        let checked = (|| {
            check_required(spec, |n| event.fields.get(n).is_some_and(|v| v.kind.is_some()))?;
            for (name, v) in event.fields.iter_mut() {
                let f = spec.fields.get(name).ok_or_else(|| undeclared(name, spec))?;
                let wrong = || {
                    reject(
                        RejectKind::WrongType,
                        format!("field `{name}` is not {} {}", article(f.kind), f.kind.as_str()),
                    )
                };
                match (&v.kind, f.kind) {
                    (None, _)
                    | (Some(Kind::StringValue(_)), FieldKind::String)
                    | (Some(Kind::IntValue(_)), FieldKind::Int)
                    | (Some(Kind::FloatValue(_)), FieldKind::Float)
                    | (Some(Kind::BoolValue(_)), FieldKind::Bool) => {}
                    (Some(Kind::TimestampValue(t)), FieldKind::Timestamp) if in_range(t) => {}
                    (Some(Kind::IntValue(i)), FieldKind::Float) => v.kind = Some(Kind::FloatValue(*i as f64)),
                    _ => return Err(wrong()),
                }
            }
            event.fields.retain(|_, v| v.kind.is_some());
            if let Some(t) = &event.event_time
                && !in_range(t)
            {
                return Err(reject(RejectKind::BadTime, "event time is out of range"));
            }
            finish(spec, event, enrich)
        })();
        checked.map_err(|r| r.of_type(&ty))
    }
}

/// Id, schema version, times and the size check, common to both encodings.
fn finish(spec: &EventType, mut event: Event, enrich: &Enrichment) -> Result<Event, Rejection> {
    if event.id.is_empty() {
        event.id = random_event_id();
    } else if event.id.len() > MAX_ID_LEN || event.id.chars().any(char::is_control) {
        return Err(reject(
            RejectKind::BadId,
            format!("id must be at most {MAX_ID_LEN} bytes without control characters"),
        ));
    }
    if event.schema_version == 0 {
        event.schema_version = spec.version;
    } else if event.schema_version != spec.version {
        return Err(reject(
            RejectKind::VersionMismatch,
            format!(
                "schema version {} of type `{}` is not the registry's version {}",
                event.schema_version, spec.name, spec.version
            ),
        ));
    }
    let received = timestamp_from_system_time(enrich.received_time);
    if !in_range(&received) {
        return Err(reject(RejectKind::BadTime, "the receive time (this host's clock) is outside 1970-9999"));
    }
    if event.event_time.is_none() {
        event.event_time = Some(received);
    }
    event.received_time = Some(received);
    let size = event.encoded_len();
    if size > enrich.max_event_bytes {
        return Err(reject(
            RejectKind::TooLarge,
            format!("event is {size} bytes encoded, the limit is {}", enrich.max_event_bytes),
        ));
    }
    Ok(event)
}

/// The Pub/Sub attributes every published event carries: `event_id`, `event_type` and
/// `event_time` (RFC 3339, UTC, milliseconds), so consumers can route and deduplicate without
/// decoding the payload.
pub fn attributes(event: &Event) -> [(&'static str, String); 3] {
    [
        ("event_id", event.id.clone()),
        ("event_type", event.r#type.clone()),
        ("event_time", event.event_time.as_ref().map(format_rfc3339).unwrap_or_default()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn registry() -> Registry {
        Registry::from_toml_str(
            r#"
            [types.play]
            version = 2
            fields.user = { type = "string", required = true }
            fields.ms = { type = "int" }
            fields.ratio = { type = "float" }
            fields.shuffle = { type = "bool" }
            fields.started = { type = "timestamp" }
            "#,
        )
        .expect("registry")
    }

    fn now() -> Enrichment {
        Enrichment::new(UNIX_EPOCH + Duration::from_secs(1_795_457_100))
    }

    fn reason(json: &str) -> (RejectKind, String) {
        let r = registry().validate_json(json.as_bytes(), &now()).expect_err(json);
        (r.kind, r.reason)
    }

    #[test]
    fn a_full_event_is_typed_and_enriched() {
        let e = registry()
            .validate_json(
                br#"{"id":"abc","type":"play","event_time":1795457000123,"source":"h1",
                     "fields":{"user":"u","ms":5,"ratio":1,"shuffle":true,"started":"2026-11-23T18:00:00Z"}}"#,
                &now(),
            )
            .expect("valid");
        assert_eq!(e.id, "abc");
        assert_eq!(e.schema_version, 2);
        assert_eq!(e.event_time.as_ref().map(|t| t.seconds), Some(1_795_457_000));
        assert_eq!(e.received_time.as_ref().map(|t| t.seconds), Some(1_795_457_100));
        assert_eq!(e.fields["ms"].kind, Some(Kind::IntValue(5)));
        assert_eq!(e.fields["ratio"].kind, Some(Kind::FloatValue(1.0)));
        assert_eq!(e.fields["shuffle"].kind, Some(Kind::BoolValue(true)));
        assert!(matches!(e.fields["started"].kind, Some(Kind::TimestampValue(_))));
        let attrs = attributes(&e);
        assert_eq!(attrs[2], ("event_time", "2026-11-23T18:03:20.123Z".to_owned()));
    }

    #[test]
    fn defaults_fill_in_what_is_missing() {
        let e = registry()
            .validate_json(br#"{"type":"play","fields":{"user":"u","ms":null}}"#, &now())
            .expect("valid");
        assert_eq!(e.id.len(), 32);
        assert_eq!(e.event_time, e.received_time);
        assert!(!e.fields.contains_key("ms"));
    }

    #[test]
    fn every_problem_has_a_precise_reason() {
        let cases = [
            ("not json", RejectKind::Malformed, "not a valid event"),
            (r#"{"fields":{}}"#, RejectKind::Malformed, "missing `type`"),
            (r#"{"type":"play","extra":1}"#, RejectKind::Malformed, "unknown field `extra`"),
            (r#"{"type":"stop"}"#, RejectKind::UnknownType, "unknown event type `stop`"),
            (r#"{"type":"play","fields":{"ms":1}}"#, RejectKind::MissingField, "missing field `user`"),
            (
                r#"{"type":"play","fields":{"user":"u","ms":"5"}}"#,
                RejectKind::WrongType,
                "field `ms` is not an int",
            ),
            (
                r#"{"type":"play","fields":{"user":"u","ms":1.5}}"#,
                RejectKind::WrongType,
                "field `ms` is not an int",
            ),
            (r#"{"type":"play","fields":{"user":7}}"#, RejectKind::WrongType, "field `user` is not a string"),
            (
                r#"{"type":"play","fields":{"user":"u","shuffle":1}}"#,
                RejectKind::WrongType,
                "field `shuffle` is not a bool",
            ),
            (
                r#"{"type":"play","fields":{"user":"u","started":"soon"}}"#,
                RejectKind::WrongType,
                "`started` is not a timestamp",
            ),
            (
                r#"{"type":"play","fields":{"user":"u","mood":"x"}}"#,
                RejectKind::UnknownField,
                "field `mood` is not declared for type `play`",
            ),
            (
                r#"{"type":"play","event_time":"yesterday","fields":{"user":"u"}}"#,
                RejectKind::BadTime,
                "event time \"yesterday\" is unparseable",
            ),
            (
                r#"{"type":"play","event_time":-5,"fields":{"user":"u"}}"#,
                RejectKind::BadTime,
                "unparseable or out of range",
            ),
            (
                r#"{"type":"play","schema_version":1,"fields":{"user":"u"}}"#,
                RejectKind::VersionMismatch,
                "schema version 1 of type `play` is not the registry's version 2",
            ),
        ];
        for (json, kind, want) in cases {
            let (k, r) = reason(json);
            assert_eq!(k, kind, "{json}: {r}");
            assert!(r.contains(want), "{json}: {r}");
        }
        let long_id = format!(r#"{{"id":"{}","type":"play","fields":{{"user":"u"}}}}"#, "i".repeat(129));
        assert_eq!(reason(&long_id).0, RejectKind::BadId);
    }

    #[test]
    fn the_size_limit_counts_the_encoded_event() {
        let big = format!(r#"{{"type":"play","fields":{{"user":"{}"}}}}"#, "u".repeat(2000));
        let r =
            registry().validate_json(big.as_bytes(), &now().with_max_event_bytes(1000)).expect_err("too big");
        assert_eq!(r.kind, RejectKind::TooLarge);
        assert!(r.reason.contains("the limit is 1000"), "{}", r.reason);
        assert_eq!(r.event_type.as_deref(), Some("play"));
    }

    #[test]
    fn protobuf_events_get_the_same_checks() {
        let reg = registry();
        let mut e = Event { r#type: "play".into(), ..Default::default() };
        e.fields.insert("user".into(), Value { kind: Some(Kind::StringValue("u".into())) });
        e.fields.insert("ratio".into(), Value { kind: Some(Kind::IntValue(2)) });
        let ok = reg.validate_event(e.clone(), &now()).expect("valid");
        assert_eq!(ok.fields["ratio"].kind, Some(Kind::FloatValue(2.0)));
        assert_eq!(ok.schema_version, 2);
        let mut wrong = e.clone();
        wrong.fields.insert("ms".into(), Value { kind: Some(Kind::StringValue("x".into())) });
        assert_eq!(reg.validate_event(wrong, &now()).expect_err("wrong").reason, "field `ms` is not an int");
        let mut missing = e.clone();
        missing.fields.remove("user");
        assert_eq!(reg.validate_event(missing, &now()).expect_err("missing").kind, RejectKind::MissingField);
        let unknown = Event { r#type: "nope".into(), ..Default::default() };
        assert_eq!(reg.validate_event(unknown, &now()).expect_err("unknown").kind, RejectKind::UnknownType);
    }
}
