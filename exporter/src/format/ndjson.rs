//! Gzipped NDJSON: one event per line in the API shape.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{Read, Write};

use event_model::{Event, EventType, Value, ValueKind, parse_rfc3339};
use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use super::{FormatError, json_to_kind, non_finite_name, rfc3339_micros};

#[derive(Serialize)]
struct LineOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    schema_version: u32,
    event_time: String,
    received_time: Option<String>,
    source: &'a str,
    fields: FieldsOut<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum JsonOut<'a> {
    Str(&'a str),
    Int(i64),
    Float(f64),
    Bool(bool),
    Time(String),
}

struct FieldsOut<'a>(Vec<(&'a str, JsonOut<'a>)>);

impl Serialize for FieldsOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

fn line_out<'a>(ev: &'a Event) -> Result<LineOut<'a>, FormatError> {
    let out_of_range =
        |field: &str| FormatError::TimeOutOfRange { id: ev.id.clone(), field: field.to_owned() };
    let event_time =
        ev.event_time.as_ref().ok_or_else(|| FormatError::MissingEventTime { id: ev.id.clone() })?;
    let mut fields = Vec::with_capacity(ev.fields.len());
    for (name, v) in &ev.fields {
        let Some(kind) = &v.kind else { continue };
        let json = match kind {
            ValueKind::StringValue(s) => JsonOut::Str(s),
            ValueKind::IntValue(i) => JsonOut::Int(*i),
            ValueKind::FloatValue(f) if f.is_finite() => JsonOut::Float(*f),
            ValueKind::FloatValue(f) => JsonOut::Str(non_finite_name(*f)),
            ValueKind::BoolValue(b) => JsonOut::Bool(*b),
            ValueKind::TimestampValue(t) => {
                JsonOut::Time(rfc3339_micros(t).ok_or_else(|| out_of_range(name))?)
            }
        };
        fields.push((name.as_str(), json));
    }
    Ok(LineOut {
        id: &ev.id,
        event_type: &ev.r#type,
        schema_version: ev.schema_version,
        event_time: rfc3339_micros(event_time).ok_or_else(|| out_of_range("event_time"))?,
        received_time: match &ev.received_time {
            None => None,
            Some(t) => Some(rfc3339_micros(t).ok_or_else(|| out_of_range("received_time"))?),
        },
        source: &ev.source,
        fields: FieldsOut(fields),
    })
}

pub(super) fn encode(et: &EventType, events: &[Event]) -> Result<Vec<u8>, FormatError> {
    let gzip = |e: std::io::Error| FormatError::Encode(format!("gzip: {e}"));
    // The default header has no file name and time 0: the same events give the same bytes.
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    let mut line = Vec::with_capacity(1024);
    for ev in events {
        if ev.r#type != et.name {
            return Err(FormatError::MixedTypes {
                id: ev.id.clone(),
                found: ev.r#type.clone(),
                expected: et.name.clone(),
            });
        }
        line.clear();
        serde_json::to_writer(&mut line, &line_out(ev)?)
            .map_err(|e| FormatError::Encode(format!("event `{}`: {e}", ev.id)))?;
        line.push(b'\n');
        gz.write_all(&line).map_err(gzip)?;
    }
    gz.finish().map_err(gzip)
}

#[derive(Deserialize)]
struct LineIn {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    schema_version: u32,
    #[serde(default)]
    event_time: Option<String>,
    #[serde(default)]
    received_time: Option<String>,
    #[serde(default)]
    source: String,
    #[serde(default)]
    fields: BTreeMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct IdOnly<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
}

fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, FormatError> {
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(4));
    MultiGzDecoder::new(bytes).read_to_end(&mut out).map_err(FormatError::Gzip)?;
    Ok(out)
}

/// The non-blank lines with their 1-based numbers.
fn lines(data: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    data.split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
}

fn event(line: &[u8], n: usize, et: Option<&EventType>) -> Result<Event, FormatError> {
    let j: LineIn = serde_json::from_slice(line).map_err(|source| FormatError::Json { line: n, source })?;
    let bad = |field: &str, reason: String| FormatError::BadValue {
        id: j.id.clone(),
        field: field.to_owned(),
        reason: format!("line {n}: {reason}"),
    };
    let time = |field: &str, text: &Option<String>| {
        text.as_deref()
            .map(|s| parse_rfc3339(s).ok_or_else(|| bad(field, format!("`{s}` is not an RFC 3339 time"))))
            .transpose()
    };
    let event_time = time("event_time", &j.event_time)?;
    let received_time = time("received_time", &j.received_time)?;
    let mut fields = BTreeMap::new();
    for (name, v) in &j.fields {
        let declared = et.and_then(|t| t.fields.get(name)).map(|f| f.kind);
        if let Some(kind) = json_to_kind(v, declared).map_err(|reason| bad(name, reason))? {
            fields.insert(name.clone(), Value { kind: Some(kind) });
        }
    }
    Ok(Event {
        id: j.id,
        r#type: j.event_type,
        schema_version: j.schema_version,
        event_time,
        received_time,
        source: j.source,
        fields,
    })
}

pub(super) fn decode(bytes: &[u8], et: Option<&EventType>) -> Result<Vec<Event>, FormatError> {
    let data = gunzip(bytes)?;
    lines(&data).map(|(n, line)| event(line, n, et)).collect()
}

pub(super) fn decode_ids(bytes: &[u8]) -> Result<Vec<String>, FormatError> {
    let data = gunzip(bytes)?;
    lines(&data)
        .map(|(n, line)| {
            serde_json::from_slice::<IdOnly<'_>>(line)
                .map(|j| j.id.into_owned())
                .map_err(|source| FormatError::Json { line: n, source })
        })
        .collect()
}
