//! The data files of an hourly bucket: a batch of events of one type, sorted by id, as one
//! complete file, and back.
//!
//! # Formats
//!
//! * [`FileFormat::Avro`] (the default): an Avro object container file whose schema is
//!   [`avro_schema`] of the event type, its blocks compressed with the [`AvroCodec`] (zstd by
//!   default). Any Avro reader can read it; [`decode_file`] needs no registry, the schema is in
//!   the file.
//! * [`FileFormat::NdjsonGzip`]: gzipped newline-delimited JSON, one event per line in the API
//!   shape `{"id","type","schema_version","event_time","received_time","source","fields":{..}}`,
//!   times as RFC 3339 text in UTC.
//!
//! # Values
//!
//! * Times keep microseconds in both formats (Avro `timestamp-micros`; RFC 3339 text with six
//!   fractional digits); finer digits are dropped (rounded towards the past).
//! * A field value with no kind (an empty protobuf `Value`) is absent, as if not sent.
//! * Avro: a value goes in its field's column when the registry declares the field with the
//!   value's kind. Anything else (a field the registry does not declare, possible when the
//!   registry changed; a value of another kind) goes in the `extra` map under its field name, as
//!   JSON text: a string, number or `true`/`false`, `{"timestamp":"<RFC 3339>"}` for a time and
//!   `{"float":"NaN"}` (or `"Infinity"`, `"-Infinity"`) for a non-finite float. So nothing is
//!   lost, and [`decode_file`] restores the value with its kind.
//! * NDJSON: every field is in `fields` as plain JSON; a time is RFC 3339 text and a non-finite
//!   float is the text `"NaN"`, `"Infinity"` or `"-Infinity"`, so without the registry
//!   [`decode_file`] gives those back as strings; [`decode_file_typed`] restores them for the
//!   fields the registry declares as `timestamp` and `float`.
//!
//! # Integrity and determinism
//!
//! * [`EncodedFile::checksum`] is the xxh3-64 hash of the whole file as 16 lowercase hex
//!   digits ([`checksum`]), for manifests and for checking a download.
//! * An Avro file also carries, in its header metadata, the number of events
//!   (`eventpipe.events`) and an xxh3-64 digest of its schema, codec, sync marker and data blocks
//!   (`eventpipe.xxh3`); [`decode_file`] and [`decode_ids`] check both when present, so a
//!   corrupted file is an error, never silently different events. Gzip has its own CRC.
//! * The same events always encode to the same bytes (the sync marker is derived from the
//!   content, header metadata is sorted, the gzip header has no time), so the checksum of a
//!   retried or re-done write is the same.

mod avro;
mod ndjson;
mod schema;
#[cfg(test)]
mod tests;

use bytes::Bytes;
use event_model::{Event, EventType, FieldKind, ValueKind};
use prost_types::Timestamp;
use serde::Deserialize;

pub use schema::avro_schema;

/// The file format of data files. Deserializes from config as `"avro"` (the default) or
/// `"ndjson-gzip"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileFormat {
    /// Avro object container files, blocks compressed with an [`AvroCodec`].
    #[default]
    Avro,
    /// Gzipped newline-delimited JSON, one event per line in the API shape.
    NdjsonGzip,
}

impl FileFormat {
    /// The file name extension, with its leading dot: `.avro` or `.ndjson.gz`.
    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Avro => ".avro",
            FileFormat::NdjsonGzip => ".ndjson.gz",
        }
    }
}

/// The compression codec of Avro blocks. Deserializes from config as `"zstd"` (the default) or
/// `"deflate"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AvroCodec {
    /// Zstandard at level 3 (Avro codec name `zstandard`): smaller and faster than deflate.
    #[default]
    Zstd,
    /// Deflate at the default level, the codec every Avro reader supports.
    Deflate,
}

/// One complete data file.
#[derive(Debug, Clone)]
pub struct EncodedFile {
    /// The file's bytes.
    pub bytes: Bytes,
    /// [`checksum`] of `bytes`: xxh3-64, 16 lowercase hex digits.
    pub checksum: String,
    /// Number of events in the file.
    pub events: usize,
}

/// Why a file could not be written or read. Messages name the event, field, block or line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// An event of another type than the file's.
    #[error("event `{id}` is of type `{found}`, but the file is for type `{expected}`")]
    MixedTypes {
        /// The event's id.
        id: String,
        /// Its type.
        found: String,
        /// The type of the file.
        expected: String,
    },
    /// An event without an event time (the service always sets one).
    #[error("event `{id}` has no event_time")]
    MissingEventTime {
        /// The event's id.
        id: String,
    },
    /// A time that cannot be written: outside the years 0000-9999 (RFC 3339) or the range of
    /// microseconds in an `i64`.
    #[error("event `{id}`: the time in `{field}` is out of range")]
    TimeOutOfRange {
        /// The event's id.
        id: String,
        /// `event_time`, `received_time` or the field name.
        field: String,
    },
    /// Compression failed while writing.
    #[error("cannot write the file: {0}")]
    Encode(String),
    /// The bytes do not start like an Avro object container file.
    #[error("not an Avro object container file (bad magic bytes)")]
    NotAvro,
    /// The Avro file is damaged: truncated, a bad block, a record that does not decode.
    #[error("corrupt Avro file: {0}")]
    Corrupt(String),
    /// The Avro file's content does not match the digest in its header.
    #[error("corrupt Avro file: its content hashes to {actual}, the header says {expected}")]
    DigestMismatch {
        /// The digest in the header.
        expected: String,
        /// The digest of the content.
        actual: String,
    },
    /// A valid Avro file this reader cannot turn into events: another codec or record shape.
    #[error("unsupported Avro file: {0}")]
    Unsupported(String),
    /// The schema in the Avro file's header does not parse.
    #[error("the Avro schema in the file does not parse: {0}")]
    Schema(#[source] apache_avro::Error),
    /// The gzip stream is damaged or truncated.
    #[error("corrupt gzip stream: {0}")]
    Gzip(#[source] std::io::Error),
    /// A line of an NDJSON file is not an event.
    #[error("line {line}: not an event: {source}")]
    Json {
        /// 1-based line number in the decompressed file.
        line: usize,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A value that does not decode into a field value.
    #[error("event `{id}`: field `{field}`: {reason}")]
    BadValue {
        /// The event's id.
        id: String,
        /// The field.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

/// The checksum of a file: xxh3-64 of `bytes` as 16 lowercase hex digits.
pub fn checksum(bytes: &[u8]) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(bytes))
}

/// Encodes `events`, all of type `event_type` and sorted by id by the caller, into one complete
/// file. `codec` applies to Avro only. An empty slice gives a valid file without events.
///
/// Errors (all deterministic, so retrying the same events gives the same error): an event of
/// another type, an event without `event_time`, a time that cannot be represented.
pub fn encode_file(
    format: FileFormat,
    codec: AvroCodec,
    event_type: &EventType,
    events: &[Event],
) -> Result<EncodedFile, FormatError> {
    let bytes = match format {
        FileFormat::Avro => avro::encode(codec, event_type, events)?,
        FileFormat::NdjsonGzip => ndjson::encode(event_type, events)?,
    };
    Ok(EncodedFile { checksum: checksum(&bytes), events: events.len(), bytes: Bytes::from(bytes) })
}

/// Reads a file written by [`encode_file`] back into events, in file order. For Avro, the
/// values in `extra` are put back into `fields` with their kinds. For NDJSON, times and
/// non-finite floats in `fields` come back as strings, as the file has no types; use
/// [`decode_file_typed`] to restore them.
pub fn decode_file(format: FileFormat, bytes: &[u8]) -> Result<Vec<Event>, FormatError> {
    match format {
        FileFormat::Avro => avro::decode(bytes),
        FileFormat::NdjsonGzip => ndjson::decode(bytes, None),
    }
}

/// [`decode_file`], with the registry entry of the file's type: for NDJSON, the text of a field
/// declared `timestamp` becomes a time and `"NaN"`/`"Infinity"`/`"-Infinity"` in a field
/// declared `float` a float. Avro files are typed by their own schema, so this is the same as
/// [`decode_file`] for them.
pub fn decode_file_typed(
    format: FileFormat,
    event_type: &EventType,
    bytes: &[u8],
) -> Result<Vec<Event>, FormatError> {
    match format {
        FileFormat::Avro => avro::decode(bytes),
        FileFormat::NdjsonGzip => ndjson::decode(bytes, Some(event_type)),
    }
}

/// The events of a file written by [`encode_file`], in file order, decoded lazily: an Avro
/// file one block (about 256 KiB of encoded records) at a time, so reading a file needs its bytes plus
/// one decoded block. (Gzipped NDJSON is decoded whole.) The file's framing and digest are
/// checked before the first event.
pub fn read_events(format: FileFormat, bytes: &[u8]) -> Result<EventReader<'_>, FormatError> {
    let inner = match format {
        FileFormat::Avro => ReaderInner::Avro(avro::blocks_of(bytes)?, Vec::new().into_iter()),
        FileFormat::NdjsonGzip => ReaderInner::Whole(ndjson::decode(bytes, None)?.into_iter()),
    };
    Ok(EventReader { inner })
}

/// Iterator of [`read_events`].
pub struct EventReader<'a> {
    inner: ReaderInner<'a>,
}

enum ReaderInner<'a> {
    Avro(avro::Blocks<'a>, std::vec::IntoIter<Event>),
    Whole(std::vec::IntoIter<Event>),
}

impl Iterator for EventReader<'_> {
    type Item = Result<Event, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            ReaderInner::Whole(events) => events.next().map(Ok),
            ReaderInner::Avro(blocks, current) => loop {
                if let Some(e) = current.next() {
                    return Some(Ok(e));
                }
                match blocks.next()? {
                    Ok(block) => *current = block.into_iter(),
                    Err(e) => return Some(Err(e)),
                }
            },
        }
    }
}

/// The ids of a file written by [`encode_file`], in file order. Cheaper than [`decode_file`]:
/// Avro records are skipped over without building values, NDJSON lines are not turned into
/// events (the file is still decompressed and, for Avro, its digest checked).
pub fn decode_ids(format: FileFormat, bytes: &[u8]) -> Result<Vec<String>, FormatError> {
    match format {
        FileFormat::Avro => avro::decode_ids(bytes),
        FileFormat::NdjsonGzip => ndjson::decode_ids(bytes),
    }
}

const MICROS: i64 = 1_000_000;

/// Microseconds since the Unix epoch (finer digits rounded towards the past).
fn to_micros(ts: &Timestamp) -> Option<i64> {
    ts.seconds.checked_mul(MICROS)?.checked_add(i64::from(ts.nanos).div_euclid(1000))
}

fn from_micros(micros: i64) -> Timestamp {
    // rem_euclid is in [0, 1e6), so the nanos fit an i32.
    Timestamp { seconds: micros.div_euclid(MICROS), nanos: (micros.rem_euclid(MICROS) * 1000) as i32 }
}

/// RFC 3339 in UTC with microseconds, `2026-11-23T18:05:00.123456Z`; `None` outside the years
/// 0000-9999.
fn rfc3339_micros(ts: &Timestamp) -> Option<String> {
    let micros = to_micros(ts)?;
    let t = time::OffsetDateTime::from_unix_timestamp(micros.div_euclid(MICROS)).ok()?;
    (0..=9999).contains(&t.year()).then(|| {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            micros.rem_euclid(MICROS)
        )
    })
}

/// The text of a non-finite float.
fn non_finite_name(f: f64) -> &'static str {
    if f.is_nan() {
        "NaN"
    } else if f > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

fn non_finite_value(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// A finite float as JSON text (shortest text that parses back to the same value).
fn json_float(f: f64) -> Option<String> {
    serde_json::Number::from_f64(f).map(|n| n.to_string())
}

/// A value as the JSON text kept in the Avro `extra` map; `None` for a time out of range.
fn extra_text(kind: &ValueKind) -> Option<String> {
    Some(match kind {
        ValueKind::StringValue(s) => serde_json::Value::from(s.as_str()).to_string(),
        ValueKind::IntValue(i) => i.to_string(),
        ValueKind::FloatValue(f) => match json_float(*f) {
            Some(text) => text,
            None => serde_json::json!({ "float": non_finite_name(*f) }).to_string(),
        },
        ValueKind::BoolValue(b) => b.to_string(),
        ValueKind::TimestampValue(t) => serde_json::json!({ "timestamp": rfc3339_micros(t)? }).to_string(),
    })
}

/// A JSON value from a file as a field value: a string, number or boolean as such, the tagged
/// objects of [`extra_text`], `null` as no value. With `declared`, the text of a time or of a
/// non-finite float is turned back into its kind for a field declared so (NDJSON).
fn json_to_kind(v: &serde_json::Value, declared: Option<FieldKind>) -> Result<Option<ValueKind>, String> {
    use serde_json::Value as J;
    let time =
        |s: &str| event_model::parse_rfc3339(s).ok_or_else(|| format!("`{s}` is not an RFC 3339 time"));
    Ok(Some(match v {
        J::Null => return Ok(None),
        J::String(s) => {
            let restored = match declared {
                Some(FieldKind::Timestamp) => event_model::parse_rfc3339(s).map(ValueKind::TimestampValue),
                Some(FieldKind::Float) => non_finite_value(s).map(ValueKind::FloatValue),
                _ => None,
            };
            restored.unwrap_or_else(|| ValueKind::StringValue(s.clone()))
        }
        J::Bool(b) => ValueKind::BoolValue(*b),
        J::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => ValueKind::IntValue(i),
            (None, Some(f)) if n.is_f64() => ValueKind::FloatValue(f),
            _ => return Err(format!("{n} does not fit a 64-bit integer")),
        },
        J::Object(o) if o.len() == 1 => match o.iter().next() {
            Some((k, J::String(s))) if k == "timestamp" => ValueKind::TimestampValue(time(s)?),
            Some((k, J::String(s))) if k == "float" => {
                ValueKind::FloatValue(non_finite_value(s).ok_or_else(|| format!("`{s}` is not a float"))?)
            }
            _ => return Err(format!("unexpected JSON value {v}")),
        },
        _ => return Err(format!("unexpected JSON value {v}")),
    }))
}
