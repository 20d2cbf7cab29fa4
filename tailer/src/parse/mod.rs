//! From a log line to an encoded event, by configurable rules.
//!
//! A [`ParseRule`] (the `[sources.parse]` table of the tailer config) says how the lines of a
//! source look: a syslog header or none ([`LineFormat`]), then a TSV or JSON payload
//! ([`PayloadFormat`]) that names the event type and its fields. A [`LineParser`] compiled from a
//! rule (and, optionally, the event-type registry, which types the field values) turns each line
//! into the protobuf bytes of one [`event_model::Event`], ready for an `EventBatch`.
//!
//! ```
//! use tailer::parse::{LineMeta, LineParser, ParseRule};
//!
//! let rule: ParseRule = toml::from_str(r#"
//!     tag = "playsvc"
//!     columns.play = ["user", "track", "ms_played"]
//! "#).expect("rule");
//! let mut parser = LineParser::new(&rule, None)?;
//! let meta = LineMeta { id: "0f3a", source: "web-1", read_time: (1_795_464_000, 0) };
//! let mut out = Vec::new();
//! parser.encode("Nov 23 18:05:00 web-1 playsvc[42]: play\tu1\tt9\t5000", &meta, &mut out).expect("an event");
//! assert!(parser.encode("Nov 23 18:05:00 web-1 cron[7]: x", &meta, &mut out).is_err()); // skipped
//! # Ok::<(), tailer::Error>(())
//! ```
//!
//! The event time is the payload's `event_time` if it has one, else the syslog header's time,
//! else the time the line was read. Field values are typed by the registry where it knows the
//! field; text that does not convert is sent as text, so the event-service rejects the event
//! with a precise reason (and dead-letters it) instead of the tailer dropping it. The parser
//! itself refuses only lines it cannot turn into an event at all ([`LineError`]).

mod datetime;
mod json;
mod names;
mod schema;
mod syslog;
mod tsv;
mod value;

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use crate::encode::{FieldValue, encode_event};
use schema::Schema;

/// How the lines of a source are parsed: the `[sources.parse]` table of the tailer config.
///
/// ```toml
/// [sources.parse]
/// format = "syslog"          # or "raw"                      (default: "syslog")
/// payload = "tsv"            # or "json"                     (default: "tsv")
/// event_type = "play"        # fixed type of every line      (default: read from the payload)
/// tag = "playsvc"            # syslog only: lines of other programs are skipped (default: all)
/// columns.play = ["user", "track", "ms_played"]   # TSV: positional columns of type `play`
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ParseRule {
    /// The shape of the line around the payload. Default: [`LineFormat::Syslog`].
    pub format: LineFormat,
    /// The shape of the payload. Default: [`PayloadFormat::Tsv`].
    pub payload: PayloadFormat,
    /// The type of every event of this source. `None` (the default): read from the payload, the
    /// first TSV column or the JSON `type` key.
    pub event_type: Option<String>,
    /// TSV only: per event type, the names of its positional columns after the type column (or
    /// of all columns when `event_type` is fixed). A column named `event_time` holds the event
    /// time. For a type without an entry (the default for all), the columns are `key=value`.
    pub columns: BTreeMap<String, Vec<String>>,
    /// Syslog only: only lines whose program tag (without `[pid]`) equals this become events;
    /// others are skipped. `None` (the default): every line.
    pub tag: Option<String>,
}

/// The shape of a line around its payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum LineFormat {
    /// A syslog header (`Nov 23 18:05:00 host app[123]: `, RFC 3339 or RFC 5424), then the
    /// payload. The default.
    #[default]
    Syslog,
    /// The whole line is the payload; there is no header time.
    Raw,
}

/// The shape of a payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum PayloadFormat {
    /// Tab-separated columns: the type (unless fixed), then positional or `key=value` columns.
    /// The default.
    #[default]
    Tsv,
    /// One JSON object: `{"type", "event_time", "fields": {..}}` or flat `{"type", key: value..}`.
    Json,
}

/// What the tailer knows about a line besides its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineMeta<'a> {
    /// The event id (deterministic: host, file fingerprint, offset).
    pub id: &'a str,
    /// The event source, the host name.
    pub source: &'a str,
    /// When the line was read: seconds and nanoseconds since the Unix epoch. The event time when
    /// the line has none, and the reference for the year of RFC 3164 dates.
    pub read_time: (i64, i32),
}

/// Why a line did not become an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// The line is not meant to be an event. The reason is a short snake_case label, fit for
    /// a metric: `blank_line`, `tag_mismatch` (another program's syslog line), `empty_payload`.
    Skipped(&'static str),
    /// The line cannot be turned into an event; the reason names what was expected.
    Malformed(String),
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::Skipped(why) => write!(f, "skipped: {why}"),
            LineError::Malformed(why) => write!(f, "malformed line: {why}"),
        }
    }
}

impl std::error::Error for LineError {}

/// One field of the event being built: its name and value, borrowed from the line.
pub(crate) type Slot<'a> = (&'a str, FieldValue<'a>);

/// What a payload parser found besides the fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parsed<'a> {
    /// The event type.
    pub(crate) event_type: &'a str,
    /// The payload's `event_time`, if any.
    pub(crate) time: Option<datetime::Time>,
}

/// Turns lines into encoded events by a [`ParseRule`]; build once per source, reuse for every
/// line (it keeps its scratch space, so the TSV path does not allocate per line).
#[derive(Debug, Clone)]
pub struct LineParser {
    format: LineFormat,
    payload: PayloadFormat,
    tag: Option<String>,
    schema: Schema,
    dates: datetime::DateCache,
    /// Always empty between calls; kept for its allocation.
    slots: Vec<Slot<'static>>,
}

impl LineParser {
    /// Compiles `rule`, checking it against `registry` when one is given (which also types
    /// field values). Fails with [`Error::Config`](crate::Error::Config) naming the problem: an
    /// empty or duplicate column name, a fixed `event_type` or `columns` entry for a type the
    /// registry lacks, a column the registry does not declare for its type, `columns` for a
    /// type other than the fixed one or with a JSON payload, `tag` with `format = "raw"`.
    pub fn new(rule: &ParseRule, registry: Option<&event_model::Registry>) -> crate::Result<Self> {
        Ok(LineParser {
            format: rule.format,
            payload: rule.payload,
            tag: rule.tag.clone(),
            schema: Schema::compile(rule, registry)?,
            dates: datetime::DateCache::default(),
            slots: Vec::with_capacity(16),
        })
    }

    /// Parses `line` (without its newline; a trailing `\r` is ignored) and appends one encoded
    /// `Event` (not length-delimited) with `meta`'s id and source to `out`. On error `out` is
    /// left exactly as it was.
    pub fn encode(&mut self, line: &str, meta: &LineMeta<'_>, out: &mut Vec<u8>) -> Result<(), LineError> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if is_blank(line) {
            return Err(LineError::Skipped("blank_line"));
        }
        let (header_time, payload) = match self.format {
            LineFormat::Syslog => {
                let h = syslog::parse(line, meta.read_time.0, &mut self.dates)
                    .map_err(|e| LineError::Malformed(e.into()))?;
                if self.tag.as_deref().is_some_and(|tag| tag != h.tag) {
                    return Err(LineError::Skipped("tag_mismatch"));
                }
                (h.time, h.payload)
            }
            LineFormat::Raw => (None, line),
        };
        if is_blank(payload) {
            return Err(LineError::Skipped("empty_payload"));
        }
        let doc;
        let mut slots = recycle(std::mem::take(&mut self.slots));
        let parsed = match self.payload {
            PayloadFormat::Tsv => tsv::parse(payload, &self.schema, &mut slots),
            PayloadFormat::Json => match json::parse_object(payload) {
                Ok(d) => {
                    doc = d;
                    json::parse(&doc, &self.schema, &mut slots)
                }
                Err(e) => Err(e),
            },
        };
        if let Ok(p) = &parsed {
            let time = p.time.or(header_time).unwrap_or(meta.read_time);
            encode_event(out, meta.id, p.event_type, time, meta.source, &slots);
        }
        self.slots = recycle(slots);
        parsed.map(drop)
    }
}

/// Whether `s` is empty or only ASCII whitespace.
fn is_blank(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_whitespace())
}

/// Empties `slots` and gives its allocation a new lifetime. (The standard library collects a
/// `Vec`'s `into_iter` into a `Vec` of a same-sized type in place, so nothing is allocated.)
fn recycle<'b>(mut slots: Vec<Slot<'_>>) -> Vec<Slot<'b>> {
    slots.clear();
    slots.into_iter().map(|_| unreachable!("the vector was just cleared")).collect()
}

/// At most the first 64 characters of `s`, for error messages.
pub(crate) fn excerpt(s: &str) -> &str {
    s.char_indices().nth(64).map_or(s, |(i, _)| &s[..i])
}

#[cfg(test)]
mod tests;
