//! Property-based ("fuzz") tests of the request decoders.
//!
//! Arbitrary bytes, JSON token soup, hostile but structured JSON events, NDJSON and JSON-array
//! bodies, and (mutated) protobuf batches go through [`json_array_items`], [`ndjson_lines`],
//! [`Registry::validate_json`] and [`Registry::validate_event`]. The properties: nothing panics,
//! every rejection carries a reason and a consistent class, every accepted event satisfies the
//! registry's invariants and re-validates to itself (also after a protobuf round trip), and
//! events that are valid by construction are accepted with exactly the values they were built
//! from.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use event_model::{
    DEFAULT_MAX_EVENT_BYTES, Enrichment, Event, EventBatch, FieldKind, MAX_ID_LEN, Registry, RejectKind,
    Rejection, Value, ValueKind, json_array_items, ndjson_lines, parse_rfc3339, timestamp_from_system_time,
};
use proptest::prelude::*;
use prost::Message as _;

// ---------------------------------------------------------------------------------------------
// The registry under test: every field type, some required, and a type without fields.
// ---------------------------------------------------------------------------------------------

const REGISTRY: &str = r#"
[types.play]
version = 3
fields.user = { type = "string", required = true }
fields.ms = { type = "int" }
fields.ratio = { type = "float" }
fields.shuffle = { type = "bool" }
fields.started = { type = "timestamp", required = true }

[types.search]
fields.query = { type = "string" }
fields.hits = { type = "int", required = true }
fields.score = { type = "float", required = true }
fields.safe = { type = "bool", required = true }
fields.at = { type = "timestamp" }

[types.ping]
"#;

static REG: LazyLock<Registry> = LazyLock::new(|| Registry::from_toml_str(REGISTRY).expect("test registry"));

const TYPES: [&str; 3] = ["play", "search", "ping"];

/// Seconds of 10000-01-01T00:00:00Z, the first instant the pipeline refuses.
const MAX_SECS: i64 = 253_402_300_800;

/// `(name, kind, required)` of the fields of `ty`; empty for unknown types.
fn declared(ty: &str) -> Vec<(String, FieldKind, bool)> {
    REG.event_type(ty)
        .map(|t| t.fields.values().map(|f| (f.name.clone(), f.kind, f.required)).collect())
        .unwrap_or_default()
}

fn all_field_names() -> Vec<String> {
    let mut names: Vec<String> = TYPES.iter().flat_map(|t| declared(t)).map(|(n, _, _)| n).collect();
    names.extend(["User", "user ", "", "mood", "type", "id", "fields", "us\u{0}er"].map(String::from));
    names
}

fn config() -> ProptestConfig {
    // No failure persistence: a failing case is printed, nothing is written next to the tests.
    ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
}

// ---------------------------------------------------------------------------------------------
// A JSON model that renders to text, so hostile but well-formed JSON can be generated.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum J {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    /// A finite float, written with `{:?}` (shortest round-trip text, e.g. `1e300`, `-0.0`).
    Float(f64),
    /// A number literal as written: `-0`, `1e400`, `18446744073709551616`, ...
    Num(&'static str),
    /// A string; with the flag every character is written as a `\uXXXX` escape.
    Str(String, bool),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
    /// Syntactically valid but unusual text (lone surrogates, nesting deeper than serde allows).
    Odd(String),
    /// Text that is not JSON.
    Bad(String),
}

impl J {
    fn s(s: impl Into<String>) -> J {
        J::Str(s.into(), false)
    }

    fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    /// Whether the rendering is plain, valid JSON (no [`J::Odd`] or [`J::Bad`] inside).
    fn is_plain(&self) -> bool {
        match self {
            J::Odd(_) | J::Bad(_) => false,
            J::Arr(items) => items.iter().all(J::is_plain),
            J::Obj(entries) => entries.iter().all(|(_, v)| v.is_plain()),
            _ => true,
        }
    }

    fn write(&self, out: &mut String) {
        match self {
            J::Null => out.push_str("null"),
            J::Bool(b) => write!(out, "{b}").expect("write to a String"),
            J::Int(i) => write!(out, "{i}").expect("write to a String"),
            J::UInt(u) => write!(out, "{u}").expect("write to a String"),
            J::Float(f) => write!(out, "{f:?}").expect("write to a String"),
            J::Num(n) => out.push_str(n),
            J::Str(s, all) => write_json_str(out, s, *all),
            J::Arr(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write(out);
                }
                out.push(']');
            }
            J::Obj(entries) => {
                out.push('{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_json_str(out, k, false);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
            J::Odd(t) | J::Bad(t) => out.push_str(t),
        }
    }
}

fn write_json_str(out: &mut String, s: &str, escape_all: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' if !escape_all => out.push_str("\\\""),
            '\\' if !escape_all => out.push_str("\\\\"),
            '\n' if !escape_all => out.push_str("\\n"),
            '\t' if !escape_all => out.push_str("\\t"),
            c if escape_all || u32::from(c) < 0x20 => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(out, "\\u{unit:04x}").expect("write to a String");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

// ---------------------------------------------------------------------------------------------
// Strategies.
// ---------------------------------------------------------------------------------------------

/// Text with control characters, quotes, backslashes and all of Unicode.
fn text() -> BoxedStrategy<String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::char::range('a', 'z'),
            3 => any::<char>(),
            2 => prop::char::range('\0', '\u{1f}'),
            1 => prop::sample::select(vec![
                '"', '\\', '/', ' ', '\u{7f}', '\u{85}', '\u{2028}', '\u{feff}', '\u{10ffff}', 'é', '😀'
            ]),
        ],
        0..24,
    )
    .prop_map(String::from_iter)
    .boxed()
}

fn json_string() -> BoxedStrategy<J> {
    (text(), prop::bool::weighted(0.15)).prop_map(|(s, all)| J::Str(s, all)).boxed()
}

/// A non-empty id of at most [`MAX_ID_LEN`] bytes without control characters.
fn valid_id() -> BoxedStrategy<String> {
    prop::collection::vec(any::<char>().prop_map(|c| if c.is_control() { 'x' } else { c }), 1..140)
        .prop_map(|chars| {
            let mut id = String::new();
            for c in chars {
                if id.len() + c.len_utf8() > MAX_ID_LEN {
                    break;
                }
                id.push(c);
            }
            id
        })
        .boxed()
}

fn finite_f64() -> BoxedStrategy<f64> {
    any::<f64>().prop_filter("finite", |f| f.is_finite()).boxed()
}

fn edge_i64() -> BoxedStrategy<i64> {
    prop_oneof![
        3 => any::<i64>(),
        1 => prop::sample::select(vec![
            0,
            -1,
            1,
            i64::MIN,
            i64::MAX,
            253_402_300_799_999,
            253_402_300_800_000,
            1_795_457_000_123,
            i64::from(u32::MAX),
            i64::from(u32::MAX) + 1,
        ]),
    ]
    .boxed()
}

const ODD_NUMBERS: [&str; 13] = [
    "-0",
    "0.0",
    "-0.0",
    "1e400",
    "-1e400",
    "1e-400",
    "1E2",
    "1.5e+3",
    "18446744073709551616",
    "9223372036854775808",
    "-9223372036854775809",
    "123456789012345678901234567890",
    "0.000000000000000000000000000001",
];

fn number() -> BoxedStrategy<J> {
    prop_oneof![
        edge_i64().prop_map(J::Int),
        any::<u64>().prop_map(J::UInt),
        finite_f64().prop_map(J::Float),
        prop::sample::select(ODD_NUMBERS.to_vec()).prop_map(J::Num),
    ]
    .boxed()
}

/// A fraction of a second: `""`, or `.` and 1 to 11 digits.
fn fraction() -> BoxedStrategy<String> {
    prop_oneof![
        Just(String::new()),
        prop::collection::vec(0u8..10, 1..12)
            .prop_map(|ds| format!(".{}", ds.iter().map(|d| char::from(b'0' + d)).collect::<String>())),
    ]
    .boxed()
}

/// RFC 3339-ish text whose components may be out of range (month 13, hour 24, offset +25:00, ...).
fn loose_rfc3339() -> BoxedStrategy<String> {
    let offset = prop_oneof![
        prop::sample::select(vec!["Z", "z", "", "UTC"]).prop_map(String::from),
        (any::<bool>(), 0u32..=25, 0u32..=60)
            .prop_map(|(neg, h, m)| format!("{}{h:02}:{m:02}", if neg { '-' } else { '+' })),
    ];
    (
        0u32..=10000,
        0u32..=13,
        0u32..=32,
        0u32..=24,
        0u32..=60,
        0u32..=61,
        fraction(),
        offset,
        prop::sample::select(vec!["T", "t", " ", "_", "é"]),
    )
        .prop_map(|(y, mo, d, h, mi, s, frac, off, sep)| {
            format!("{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}{frac}{off}")
        })
        .boxed()
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A valid RFC 3339 time within 1971-9998 (so any offset keeps it in range), with the
/// `(seconds, nanos)` it denotes, computed independently of the crate.
fn valid_rfc3339() -> BoxedStrategy<(String, i64, i32)> {
    (
        (1971i64..=9998, 1i64..=12, 1i64..=28),
        (0i64..24, 0i64..60, 0i64..60),
        prop::collection::vec(0u8..10, 0..=9),
        prop::option::of((any::<bool>(), 0i64..24, 0i64..60)),
        any::<bool>(),
    )
        .prop_map(|((y, mo, d), (h, mi, s), frac, offset, lower)| {
            let mut text =
                format!("{y:04}-{mo:02}-{d:02}{}{h:02}:{mi:02}:{s:02}", if lower { 't' } else { 'T' });
            let mut nanos = 0i32;
            if !frac.is_empty() {
                text.push('.');
                for (i, &digit) in frac.iter().enumerate() {
                    text.push(char::from(b'0' + digit));
                    nanos += i32::from(digit) * 10i32.pow(8 - i as u32);
                }
            }
            let mut secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s;
            match offset {
                None => text.push(if lower { 'z' } else { 'Z' }),
                Some((neg, oh, om)) => {
                    write!(text, "{}{oh:02}:{om:02}", if neg { '-' } else { '+' })
                        .expect("write to a String");
                    let off = oh * 3600 + om * 60;
                    // local = UTC + offset
                    secs -= if neg { -off } else { off };
                }
            }
            (text, secs, nanos)
        })
        .boxed()
}

fn time_string() -> BoxedStrategy<String> {
    prop_oneof![3 => valid_rfc3339().prop_map(|(s, _, _)| s), 2 => loose_rfc3339()].boxed()
}

fn millis() -> BoxedStrategy<i64> {
    prop_oneof![3 => 0..MAX_SECS * 1000, 1 => edge_i64()].boxed()
}

fn key() -> BoxedStrategy<String> {
    prop_oneof![
        2 => prop::sample::select(all_field_names()),
        1 => prop::sample::select(vec!["id", "type", "schema_version", "event_time", "source", "fields"])
            .prop_map(String::from),
        2 => text(),
    ]
    .boxed()
}

/// Any plain JSON value, nested up to 4 levels.
fn any_json() -> BoxedStrategy<J> {
    let leaf = prop_oneof![
        1 => Just(J::Null),
        1 => any::<bool>().prop_map(J::Bool),
        3 => number(),
        3 => json_string(),
        1 => time_string().prop_map(J::s),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(J::Arr),
            prop::collection::vec((key(), inner), 0..6).prop_map(J::Obj),
        ]
    })
    .boxed()
}

/// Fragments that are not JSON, whatever surrounds them in an array or an object.
const INVALID: [&str; 17] = [
    "tru",
    "nul",
    "+1",
    "01",
    "-",
    "1.",
    ".5",
    "[1,]",
    "{\"a\":1,}",
    "{\"a\"}",
    "'x'",
    "\"\u{1}\"",
    "NaN",
    "Infinity",
    "{\"a\" 1}",
    "[1 2]",
    "\"\\x41\"",
];

fn odd_json() -> BoxedStrategy<J> {
    prop_oneof![
        prop::sample::select(vec!["\"\\ud800\"", "\"\\udc00x\"", "\"\\ud83d\\ude00\"", "\"\\u0000\""])
            .prop_map(|s| J::Odd(s.to_owned())),
        (100usize..300).prop_map(|n| J::Odd(format!("{}{}", "[".repeat(n), "]".repeat(n)))),
        (100usize..300).prop_map(|n| J::Odd(format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n)))),
    ]
    .boxed()
}

fn bad_json() -> BoxedStrategy<J> {
    prop::sample::select(INVALID.to_vec()).prop_map(|s| J::Bad(s.to_owned())).boxed()
}

/// A JSON value that is usually plain, sometimes odd and sometimes not JSON.
fn hostile_value() -> BoxedStrategy<J> {
    prop_oneof![8 => any_json(), 1 => odd_json(), 1 => bad_json()].boxed()
}

fn good_time() -> BoxedStrategy<(J, Want)> {
    prop_oneof![
        valid_rfc3339().prop_map(|(s, secs, nanos)| (J::s(s), Want::Ts(secs, nanos))),
        (0..MAX_SECS * 1000).prop_map(|ms| {
            (J::Int(ms), Want::Ts(ms.div_euclid(1000), (ms.rem_euclid(1000) * 1_000_000) as i32))
        }),
    ]
    .boxed()
}

/// What a well-typed JSON field value must become.
#[derive(Debug, Clone, PartialEq)]
enum Want {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Ts(i64, i32),
}

/// A JSON value of the right type for `kind`, and what it must become.
fn good_value(kind: FieldKind) -> BoxedStrategy<(J, Want)> {
    match kind {
        FieldKind::String => (text(), prop::bool::weighted(0.15))
            .prop_map(|(s, all)| (J::Str(s.clone(), all), Want::Str(s)))
            .boxed(),
        FieldKind::Int => edge_i64().prop_map(|i| (J::Int(i), Want::Int(i))).boxed(),
        FieldKind::Float => prop_oneof![
            finite_f64().prop_map(|f| (J::Float(f), Want::Float(f))),
            edge_i64().prop_map(|i| (J::Int(i), Want::Float(i as f64))),
            any::<u64>().prop_map(|u| (J::UInt(u), Want::Float(u as f64))),
        ]
        .boxed(),
        FieldKind::Bool => any::<bool>().prop_map(|b| (J::Bool(b), Want::Bool(b))).boxed(),
        FieldKind::Timestamp => good_time(),
    }
}

fn hostile_field_value(kind: FieldKind) -> BoxedStrategy<J> {
    prop_oneof![
        12 => good_value(kind).prop_map(|(j, _)| j),
        1 => Just(J::Null),
        2 => hostile_value(),
    ]
    .boxed()
}

/// The `fields` object for type `ty`: its declared fields (required ones nearly always), with
/// values usually of the right type, sometimes undeclared names; rarely not an object at all.
fn hostile_fields(ty: &str) -> BoxedStrategy<J> {
    let entries: Vec<BoxedStrategy<Option<(String, J)>>> = declared(ty)
        .into_iter()
        .map(|(name, kind, required)| {
            prop::option::weighted(if required { 0.95 } else { 0.6 }, hostile_field_value(kind))
                .prop_map(move |v| v.map(|v| (name.clone(), v)))
                .boxed()
        })
        .collect();
    let extra = prop_oneof![
        12 => Just(Vec::new()),
        1 => prop::collection::vec((key(), hostile_value()), 1..3),
    ];
    prop_oneof![
        24 => (entries, extra)
            .prop_map(|(e, x)| e.into_iter().flatten().chain(x).collect::<Vec<_>>())
            .prop_shuffle()
            .prop_map(J::Obj),
        1 => hostile_value(),
    ]
    .boxed()
}

/// A JSON event object mixing the known keys with random values of every JSON kind.
fn hostile_event() -> BoxedStrategy<J> {
    let ty = prop_oneof![
        16 => prop::sample::select(TYPES.to_vec()).prop_map(J::s),
        1 => prop::sample::select(vec!["", "Play", "stop", "play ", "pla\u{0}y"]).prop_map(J::s),
        1 => Just(J::Str("play".into(), true)),
        1 => hostile_value(),
    ];
    ty.prop_flat_map(|ty| {
        let name = match &ty {
            J::Str(s, _) => s.clone(),
            _ => String::new(),
        };
        let version = REG.event_type(&name).map_or(1, |t| t.version);
        let id = prop_oneof![
            8 => valid_id().prop_map(J::s),
            1 => json_string(),
            1 => prop::sample::select(vec![
                "i".repeat(MAX_ID_LEN + 1),
                "é".repeat(MAX_ID_LEN / 2),
                "é".repeat(MAX_ID_LEN / 2 + 1),
                String::new(),
                " ".into(),
            ])
            .prop_map(J::s),
            1 => hostile_value(),
        ];
        let schema_version = prop_oneof![
            8 => prop::sample::select(vec![0, i64::from(version)]).prop_map(J::Int),
            2 => prop::sample::select(vec![1, 2, 4, i64::from(u32::MAX), i64::from(u32::MAX) + 1, -1])
                .prop_map(J::Int),
            1 => hostile_value(),
        ];
        let event_time = prop_oneof![
            5 => time_string().prop_map(J::s),
            4 => millis().prop_map(J::Int),
            1 => Just(J::Null),
            1 => hostile_value(),
        ];
        let source = prop_oneof![8 => json_string(), 1 => hostile_value()];
        let extra = prop_oneof![
            24 => Just(Vec::new()),
            1 => prop::collection::vec((key(), hostile_value()), 1..3),
        ];
        (
            prop::option::weighted(0.97, Just(ty)),
            prop::option::weighted(0.5, id),
            prop::option::weighted(0.3, schema_version),
            prop::option::weighted(0.6, event_time),
            prop::option::weighted(0.4, source),
            prop::option::weighted(0.95, hostile_fields(&name)),
            extra,
        )
            .prop_map(|(ty, id, version, time, source, fields, extra)| {
                let known = [
                    ("type", ty),
                    ("id", id),
                    ("schema_version", version),
                    ("event_time", time),
                    ("source", source),
                    ("fields", fields),
                ];
                known
                    .into_iter()
                    .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
                    .chain(extra)
                    .collect::<Vec<_>>()
            })
            .prop_shuffle()
            .prop_map(J::Obj)
    })
    .boxed()
}

/// Rendered hostile text: usually an event object, sometimes another value, with junk around.
fn hostile_body() -> BoxedStrategy<String> {
    (
        prop_oneof![20 => hostile_event(), 1 => hostile_value()],
        prop_oneof![
            12 => Just(""),
            1 => prop::sample::select(vec![" ", "\n", "\u{feff}", "\t\r\n", "x"]),
        ],
        prop_oneof![
            12 => Just(""),
            1 => prop::sample::select(vec![" ", "\n", "\r\n", "x", "{}", "\0", ",", "]"]),
        ],
    )
        .prop_map(|(j, pre, post)| format!("{pre}{}{post}", j.render()))
        .boxed()
}

/// An event that is valid by construction, with everything it must be accepted as.
#[derive(Debug, Clone)]
struct ValidCase {
    json: String,
    ty: String,
    id: Option<String>,
    source: Option<String>,
    event_time: Option<(i64, i32)>,
    fields: BTreeMap<String, Want>,
}

fn valid_event() -> BoxedStrategy<ValidCase> {
    prop::sample::select(TYPES.to_vec())
        .prop_flat_map(|ty| {
            let version = REG.event_type(ty).expect("a registry type").version;
            type Field = Option<(String, J, Option<Want>)>;
            let fields: Vec<BoxedStrategy<Field>> = declared(ty)
                .into_iter()
                .map(|(name, kind, required)| {
                    let n = name.clone();
                    let good = good_value(kind).prop_map(move |(j, w)| Some((n.clone(), j, Some(w))));
                    if required {
                        good.boxed()
                    } else {
                        prop_oneof![
                            2 => Just(None),
                            1 => Just(Some((name, J::Null, None))),
                            3 => good,
                        ]
                        .boxed()
                    }
                })
                .collect();
            let event_time = prop_oneof![
                1 => Just(None),
                1 => Just(Some(None)),
                3 => good_time().prop_map(|t| Some(Some(t))),
            ];
            (
                Just(ty),
                prop::option::of(valid_id()),
                prop::sample::select(vec![None, Some(0), Some(version)]),
                event_time,
                prop::option::of(text()),
                fields,
                any::<usize>(),
            )
        })
        .prop_map(|(ty, id, version, event_time, source, fields, shuffle)| {
            let mut entries = vec![("type".to_owned(), J::s(ty))];
            if let Some(id) = &id {
                entries.push(("id".into(), J::s(id.clone())));
            }
            if let Some(v) = version {
                entries.push(("schema_version".into(), J::Int(i64::from(v))));
            }
            let mut want_time = None;
            match &event_time {
                None => {}
                Some(None) => entries.push(("event_time".into(), J::Null)),
                Some(Some((j, Want::Ts(s, n)))) => {
                    entries.push(("event_time".into(), j.clone()));
                    want_time = Some((*s, *n));
                }
                Some(Some((_, other))) => unreachable!("good_time gave {other:?}"),
            }
            if let Some(s) = &source {
                entries.push(("source".into(), J::s(s.clone())));
            }
            let mut want_fields = BTreeMap::new();
            let mut field_entries = Vec::new();
            for (name, j, want) in fields.into_iter().flatten() {
                if let Some(w) = want {
                    want_fields.insert(name.clone(), w);
                }
                field_entries.push((name, j));
            }
            let n = field_entries.len().max(1);
            field_entries.rotate_left(shuffle % n);
            entries.push(("fields".into(), J::Obj(field_entries)));
            let n = entries.len();
            entries.rotate_left((shuffle / 7) % n);
            if shuffle % 2 == 1 {
                entries.reverse();
            }
            ValidCase {
                json: J::Obj(entries).render(),
                ty: ty.to_owned(),
                id,
                source,
                event_time: want_time,
                fields: want_fields,
            }
        })
        .boxed()
}

/// A receive time in 1970-9999. Outside that range the defaulted `event_time` is itself out of
/// range and re-validation fails (see `received_time_outside_1970_9999_breaks_idempotence`).
fn received_time() -> BoxedStrategy<SystemTime> {
    prop_oneof![
        1 => Just(UNIX_EPOCH + Duration::from_secs(1_795_457_100)),
        2 => (0..MAX_SECS as u64, 0u32..1_000_000_000).prop_map(|(s, n)| UNIX_EPOCH + Duration::new(s, n)),
    ]
    .boxed()
}

/// Enrichment at a receive time in 1970-9999, usually with the default size limit.
fn enrichment() -> BoxedStrategy<Enrichment> {
    (received_time(), prop_oneof![3 => Just(DEFAULT_MAX_EVENT_BYTES), 1 => 0usize..400])
        .prop_map(|(t, max)| Enrichment::new(t).with_max_event_bytes(max))
        .boxed()
}

/// Tokens that glue into almost-JSON, to reach deeper into the parser than random bytes.
fn token_soup() -> BoxedStrategy<Vec<u8>> {
    let tokens = vec![
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        " ",
        "\n",
        "\r\n",
        "\"id\"",
        "\"type\"",
        "\"play\"",
        "\"search\"",
        "\"ping\"",
        "\"fields\"",
        "\"user\"",
        "\"started\"",
        "\"hits\"",
        "\"score\"",
        "\"safe\"",
        "\"event_time\"",
        "\"schema_version\"",
        "\"source\"",
        "1",
        "-1",
        "0",
        "3",
        "1.5",
        "1e400",
        "true",
        "false",
        "null",
        "\"x\"",
        "\"\\u0000\"",
        "\"\\ud800\"",
        "\"2026-11-23T18:05:00Z\"",
        "1795457000123",
        "\"",
        "\\",
        "\u{feff}",
    ];
    prop::collection::vec(prop::sample::select(tokens), 0..64).prop_map(|t| t.concat().into_bytes()).boxed()
}

// ---------------------------------------------------------------------------------------------
// Protobuf strategies. `prost_types::Timestamp` cannot be named here (not a dependency of the
// tests), so timestamps are made from one the crate parses.
// ---------------------------------------------------------------------------------------------

fn ts_value(seconds: i64, nanos: i32) -> Value {
    let mut t = parse_rfc3339("1970-01-01T00:00:00Z").expect("the epoch parses");
    t.seconds = seconds;
    t.nanos = nanos;
    Value { kind: Some(ValueKind::TimestampValue(t)) }
}

fn set_times(e: &mut Event, event_time: Option<(i64, i32)>, received_time: Option<(i64, i32)>) {
    let ts = |(s, n): (i64, i32)| match ts_value(s, n).kind {
        Some(ValueKind::TimestampValue(t)) => Some(t),
        _ => None,
    };
    e.event_time = event_time.and_then(ts);
    e.received_time = received_time.and_then(ts);
}

fn in_range(seconds: i64, nanos: i32) -> bool {
    (0..MAX_SECS).contains(&seconds) && (0..1_000_000_000).contains(&nanos)
}

fn pb_seconds() -> BoxedStrategy<i64> {
    prop_oneof![
        4 => 0..MAX_SECS,
        1 => prop::sample::select(vec![-1, 0, MAX_SECS - 1, MAX_SECS, i64::MIN, i64::MAX]),
        1 => any::<i64>(),
    ]
    .boxed()
}

fn pb_nanos() -> BoxedStrategy<i32> {
    prop_oneof![
        4 => 0..1_000_000_000,
        1 => prop::sample::select(vec![-1, 0, 999_999_999, 1_000_000_000, i32::MIN, i32::MAX]),
    ]
    .boxed()
}

fn pb_any_value() -> BoxedStrategy<Value> {
    prop_oneof![
        1 => Just(Value { kind: None }),
        2 => text().prop_map(|s| Value { kind: Some(ValueKind::StringValue(s)) }),
        2 => edge_i64().prop_map(|i| Value { kind: Some(ValueKind::IntValue(i)) }),
        2 => any::<f64>().prop_map(|f| Value { kind: Some(ValueKind::FloatValue(f)) }),
        1 => any::<bool>().prop_map(|b| Value { kind: Some(ValueKind::BoolValue(b)) }),
        2 => (pb_seconds(), pb_nanos()).prop_map(|(s, n)| ts_value(s, n)),
    ]
    .boxed()
}

fn pb_good_value(kind: FieldKind) -> BoxedStrategy<Value> {
    let kind = match kind {
        FieldKind::String => text().prop_map(ValueKind::StringValue).boxed(),
        FieldKind::Int => edge_i64().prop_map(ValueKind::IntValue).boxed(),
        FieldKind::Float => prop_oneof![
            any::<f64>().prop_map(ValueKind::FloatValue),
            edge_i64().prop_map(ValueKind::IntValue),
        ]
        .boxed(),
        FieldKind::Bool => any::<bool>().prop_map(ValueKind::BoolValue).boxed(),
        FieldKind::Timestamp => {
            return prop_oneof![
                3 => (0..MAX_SECS, 0..1_000_000_000).prop_map(|(s, n)| ts_value(s, n)),
                1 => (pb_seconds(), pb_nanos()).prop_map(|(s, n)| ts_value(s, n)),
            ]
            .boxed();
        }
    };
    kind.prop_map(|k| Value { kind: Some(k) }).boxed()
}

/// A protobuf event: mostly well-formed for its type, with every kind of mistake now and then.
fn pb_event() -> BoxedStrategy<Event> {
    let ty = prop_oneof![
        8 => prop::sample::select(TYPES.to_vec()).prop_map(String::from),
        1 => prop::sample::select(vec!["", "Play", "stop"]).prop_map(String::from),
        1 => text(),
    ];
    ty.prop_flat_map(|ty| {
        let version = REG.event_type(&ty).map_or(1, |t| t.version);
        let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = declared(&ty)
            .into_iter()
            .map(|(name, kind, required)| {
                let value = prop_oneof![
                    8 => pb_good_value(kind),
                    1 => Just(Value { kind: None }),
                    1 => pb_any_value(),
                ];
                prop::option::weighted(if required { 0.95 } else { 0.6 }, value)
                    .prop_map(move |v| v.map(|v| (name.clone(), v)))
                    .boxed()
            })
            .collect();
        let extra = prop_oneof![
            8 => Just(Vec::new()),
            1 => prop::collection::vec((key(), pb_any_value()), 1..3),
        ];
        let id = prop_oneof![
            2 => Just(String::new()),
            4 => valid_id(),
            1 => text(),
            1 => Just("i".repeat(MAX_ID_LEN + 1)),
        ];
        let schema_version = prop_oneof![
            6 => prop::sample::select(vec![0, version]),
            2 => prop::sample::select(vec![1, 2, version + 1, 4]),
            1 => any::<u32>(),
        ];
        (
            Just(ty),
            id,
            schema_version,
            prop::option::weighted(0.7, (pb_seconds(), pb_nanos())),
            prop::option::weighted(0.2, (pb_seconds(), pb_nanos())),
            text(),
            fields,
            extra,
        )
            .prop_map(
                |(ty, id, schema_version, event_time, received_time, source, fields, extra)| {
                    let mut e = Event {
                        id,
                        r#type: ty,
                        schema_version,
                        event_time: None,
                        received_time: None,
                        source,
                        fields: fields.into_iter().flatten().chain(extra).collect(),
                    };
                    set_times(&mut e, event_time, received_time);
                    e
                },
            )
    })
    .boxed()
}

// ---------------------------------------------------------------------------------------------
// Checks shared by the properties.
// ---------------------------------------------------------------------------------------------

fn is_random_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Units in the last place between two floats of the same sign (`u64::MAX` otherwise).
fn ulps(a: f64, b: f64) -> u64 {
    if a == b {
        return 0;
    }
    if a.is_sign_negative() != b.is_sign_negative() {
        return u64::MAX;
    }
    a.to_bits().abs_diff(b.to_bits())
}

/// A rejection has a reason, shows it, and has a class consistent with its event type.
fn check_rejection(r: &Rejection) -> Result<(), TestCaseError> {
    prop_assert!(!r.reason.trim().is_empty(), "rejection without a reason: {r:?}");
    prop_assert_eq!(r.to_string(), r.reason.clone());
    match (&r.kind, &r.event_type) {
        (RejectKind::Malformed, t) => prop_assert!(t.is_none(), "malformed but typed: {r:?}"),
        (RejectKind::UnknownType, Some(t)) => {
            prop_assert!(REG.event_type(t).is_none(), "unknown type that is known: {r:?}");
        }
        (_, Some(t)) => prop_assert!(REG.event_type(t).is_some(), "typed rejection of unknown type: {r:?}"),
        (_, None) => prop_assert!(false, "rejection after the type was read has no type: {r:?}"),
    }
    Ok(())
}

/// Every invariant of an accepted event, idempotence, the protobuf round trip and the size limit.
fn check_accepted(e: &Event, enrich: &Enrichment) -> Result<(), TestCaseError> {
    let Some(spec) = REG.event_type(&e.r#type) else {
        return Err(TestCaseError::fail(format!("accepted an event of unknown type: {e:?}")));
    };
    prop_assert!(!e.id.is_empty(), "empty id: {e:?}");
    prop_assert!(e.id.len() <= MAX_ID_LEN, "id of {} bytes", e.id.len());
    prop_assert!(!e.id.chars().any(char::is_control), "control character in id {:?}", e.id);
    prop_assert_eq!(e.schema_version, spec.version);
    prop_assert_eq!(e.received_time, Some(timestamp_from_system_time(enrich.received_time)));
    let time_ok = e.event_time.as_ref().is_some_and(|t| in_range(t.seconds, t.nanos));
    prop_assert!(time_ok, "event time missing or out of range: {:?}", e.event_time);
    for (name, v) in &e.fields {
        let Some(f) = spec.fields.get(name) else {
            return Err(TestCaseError::fail(format!("undeclared field `{name}` accepted: {e:?}")));
        };
        let matches = match (f.kind, &v.kind) {
            (FieldKind::String, Some(ValueKind::StringValue(_)))
            | (FieldKind::Int, Some(ValueKind::IntValue(_)))
            | (FieldKind::Float, Some(ValueKind::FloatValue(_)))
            | (FieldKind::Bool, Some(ValueKind::BoolValue(_))) => true,
            (FieldKind::Timestamp, Some(ValueKind::TimestampValue(t))) => in_range(t.seconds, t.nanos),
            _ => false,
        };
        prop_assert!(matches, "field `{}` ({:?}) holds {:?}", name, f.kind, v.kind);
    }
    for f in spec.fields.values().filter(|f| f.required) {
        prop_assert!(e.fields.contains_key(&f.name), "required field `{}` missing: {:?}", f.name, e);
    }
    let size = e.encoded_len();
    prop_assert!(size <= enrich.max_event_bytes, "{} bytes accepted, limit {}", size, enrich.max_event_bytes);

    // Idempotence. Events are compared by encoding, so that a NaN float compares equal to itself.
    let bytes = e.encode_to_vec();
    match REG.validate_event(e.clone(), enrich) {
        Ok(again) => prop_assert!(again.encode_to_vec() == bytes, "re-validation changed {e:?} to {again:?}"),
        Err(r) => return Err(TestCaseError::fail(format!("re-validation of {e:?} failed: {r:?}"))),
    }

    // Through a protobuf batch and back.
    let batch = EventBatch { events: vec![e.clone(), e.clone()] }.encode_to_vec();
    let decoded = EventBatch::decode(batch.as_slice());
    prop_assert!(decoded.is_ok(), "batch does not decode: {decoded:?}");
    let decoded = decoded.expect("checked").events;
    prop_assert_eq!(decoded.len(), 2);
    for d in decoded {
        prop_assert!(d.encode_to_vec() == bytes, "protobuf round trip changed {e:?} to {d:?}");
        let again = REG.validate_event(d, enrich).map(|a| a.encode_to_vec());
        prop_assert!(again.as_ref() == Ok(&bytes), "decoded event re-validates to {again:?}");
    }

    // The size limit is exact.
    let at_limit = REG.validate_event(e.clone(), &enrich.clone().with_max_event_bytes(size));
    prop_assert!(at_limit.is_ok(), "rejected at its own size {size}: {at_limit:?}");
    if size > 0 {
        let below = REG.validate_event(e.clone(), &enrich.clone().with_max_event_bytes(size - 1));
        prop_assert!(
            matches!(&below, Err(r) if r.kind == RejectKind::TooLarge),
            "accepted one byte over the limit: {below:?}"
        );
    }
    Ok(())
}

fn check_json(raw: &[u8], enrich: &Enrichment) -> Result<(), TestCaseError> {
    match REG.validate_json(raw, enrich) {
        Ok(e) => check_accepted(&e, enrich),
        Err(r) => check_rejection(&r),
    }
}

fn check_protobuf(raw: &[u8], enrich: &Enrichment) -> Result<(), TestCaseError> {
    match EventBatch::decode(raw) {
        Ok(batch) => {
            for event in batch.events {
                match REG.validate_event(event, enrich) {
                    Ok(e) => check_accepted(&e, enrich)?,
                    Err(r) => check_rejection(&r)?,
                }
            }
        }
        Err(e) => prop_assert!(!e.to_string().is_empty(), "decode error without a message"),
    }
    Ok(())
}

/// Runs a body through every decoder.
fn check_all_decoders(body: &[u8], enrich: &Enrichment) -> Result<(), TestCaseError> {
    match json_array_items(body) {
        Ok(items) => {
            for item in items {
                check_json(item.get().as_bytes(), enrich)?;
            }
        }
        Err(reason) => {
            prop_assert!(reason.len() > "body is not a JSON array: ".len(), "bare reason {reason:?}")
        }
    }
    for line in ndjson_lines(body) {
        prop_assert!(!line.contains(&b'\n'), "a line with a newline: {line:?}");
        prop_assert!(!line.iter().all(u8::is_ascii_whitespace), "a blank line: {line:?}");
        check_json(line, enrich)?;
    }
    check_json(body, enrich)?;
    check_protobuf(body, enrich)
}

/// What `validate_event` must do with `input`, computed independently: the accepted event, or
/// `None` for a rejection.
fn expected_pb_outcome(input: &Event, enrich: &Enrichment) -> Option<Event> {
    let spec = REG.event_type(&input.r#type)?;
    let id_ok =
        input.id.is_empty() || (input.id.len() <= MAX_ID_LEN && !input.id.chars().any(char::is_control));
    let version_ok = input.schema_version == 0 || input.schema_version == spec.version;
    let time_ok = input.event_time.as_ref().is_none_or(|t| in_range(t.seconds, t.nanos));
    let required_ok = spec
        .fields
        .values()
        .filter(|f| f.required)
        .all(|f| input.fields.get(&f.name).is_some_and(|v| v.kind.is_some()));
    if !(id_ok && version_ok && time_ok && required_ok) {
        return None;
    }
    let mut fields = BTreeMap::new();
    for (name, v) in &input.fields {
        let kind = spec.fields.get(name)?.kind;
        let out = match (kind, &v.kind) {
            (_, None) => continue,
            (FieldKind::String, Some(k @ ValueKind::StringValue(_)))
            | (FieldKind::Int, Some(k @ ValueKind::IntValue(_)))
            | (FieldKind::Float, Some(k @ ValueKind::FloatValue(_)))
            | (FieldKind::Bool, Some(k @ ValueKind::BoolValue(_))) => k.clone(),
            (FieldKind::Float, Some(ValueKind::IntValue(i))) => ValueKind::FloatValue(*i as f64),
            (FieldKind::Timestamp, Some(k @ ValueKind::TimestampValue(t)))
                if in_range(t.seconds, t.nanos) =>
            {
                k.clone()
            }
            _ => return None,
        };
        fields.insert(name.clone(), Value { kind: Some(out) });
    }
    let received = timestamp_from_system_time(enrich.received_time);
    let out = Event {
        // Placeholder of the length of a random id, replaced by the caller.
        id: if input.id.is_empty() { "0".repeat(32) } else { input.id.clone() },
        r#type: input.r#type.clone(),
        schema_version: spec.version,
        event_time: input.event_time.or(Some(received)),
        received_time: Some(received),
        source: input.source.clone(),
        fields,
    };
    (out.encoded_len() <= enrich.max_event_bytes).then_some(out)
}

// ---------------------------------------------------------------------------------------------
// The properties.
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// 1. Arbitrary bytes through every decoder: no panic, reasons everywhere, invariants hold.
    #[test]
    fn arbitrary_bytes_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..2048),
        enrich in enrichment(),
    ) {
        check_all_decoders(&body, &enrich)?;
    }

    /// 1b. Almost-JSON token soup through every decoder.
    #[test]
    fn json_token_soup_never_panics(body in token_soup(), enrich in enrichment()) {
        check_all_decoders(&body, &enrich)?;
    }

    /// 1c. Protobuf batches of generated events, with bytes flipped and the tail cut off.
    #[test]
    fn mutated_protobuf_batches_never_panic(
        events in prop::collection::vec(pb_event(), 0..4),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in prop::option::weighted(0.3, any::<prop::sample::Index>()),
        enrich in enrichment(),
    ) {
        let mut bytes = EventBatch { events }.encode_to_vec();
        if !bytes.is_empty() {
            for (at, b) in &flips {
                let i = at.index(bytes.len());
                bytes[i] ^= b;
            }
            if let Some(cut) = cut {
                bytes.truncate(cut.index(bytes.len()));
            }
        }
        check_all_decoders(&bytes, &enrich)?;
    }

    /// 2. Hostile but structured JSON events: no panic; accepted events satisfy every invariant
    ///    and re-validate to themselves; rejections carry a reason and a consistent class.
    #[test]
    fn hostile_json_events_are_accepted_only_when_valid(body in hostile_body(), enrich in enrichment()) {
        check_json(body.as_bytes(), &enrich)?;
    }

    /// 2b. Events valid by construction are accepted, with exactly the values they were built from.
    #[test]
    fn valid_json_events_are_accepted_as_written(case in valid_event(), received in received_time()) {
        let enrich = Enrichment::new(received);
        let e = match REG.validate_json(case.json.as_bytes(), &enrich) {
            Ok(e) => e,
            Err(r) => return Err(TestCaseError::fail(format!("valid event {} rejected: {r:?}", case.json))),
        };
        check_accepted(&e, &enrich)?;
        prop_assert_eq!(&e.r#type, &case.ty);
        match &case.id {
            Some(id) => prop_assert_eq!(&e.id, id),
            None => prop_assert!(is_random_id(&e.id), "generated id {:?}", e.id),
        }
        prop_assert_eq!(&e.source, case.source.as_deref().unwrap_or(""));
        let got_time = e.event_time.as_ref().map(|t| (t.seconds, t.nanos));
        match case.event_time {
            Some(want) => prop_assert_eq!(got_time, Some(want), "event time of {}", case.json),
            None => prop_assert_eq!(e.event_time, e.received_time),
        }
        let names: Vec<&String> = e.fields.keys().collect();
        let want_names: Vec<&String> = case.fields.keys().collect();
        prop_assert_eq!(names, want_names, "fields of {}", case.json);
        for (name, want) in &case.fields {
            let got = &e.fields[name].kind;
            let ok = match (want, got) {
                (Want::Str(w), Some(ValueKind::StringValue(g))) => w == g,
                (Want::Int(w), Some(ValueKind::IntValue(g))) => w == g,
                // Exact: event-model parses JSON with serde_json's `float_roundtrip` (without it,
                // `"ratio":2e-30` was stored as 1.9999999999999998e-30).
                (Want::Float(w), Some(ValueKind::FloatValue(g))) => ulps(*w, *g) == 0,
                (Want::Bool(w), Some(ValueKind::BoolValue(g))) => w == g,
                (Want::Ts(s, n), Some(ValueKind::TimestampValue(t))) => (*s, *n) == (t.seconds, t.nanos),
                _ => false,
            };
            prop_assert!(ok, "field `{}`: want {:?}, got {:?} from {}", name, want, got, case.json);
        }
    }

    /// 2c. Protobuf events: `validate_event` accepts exactly what an independent model of the
    ///     rules accepts, and produces the same event.
    #[test]
    fn protobuf_events_follow_the_rules(input in pb_event(), enrich in enrichment()) {
        let got = REG.validate_event(input.clone(), &enrich);
        let want = expected_pb_outcome(&input, &enrich);
        match (got, want) {
            (Ok(e), Some(mut want)) => {
                check_accepted(&e, &enrich)?;
                if input.id.is_empty() {
                    prop_assert!(is_random_id(&e.id), "generated id {:?}", e.id);
                    want.id = e.id.clone();
                }
                prop_assert!(
                    e.encode_to_vec() == want.encode_to_vec(),
                    "accepted as {e:?}, expected {want:?}"
                );
            }
            (Err(r), None) => check_rejection(&r)?,
            (Ok(e), None) => return Err(TestCaseError::fail(format!("accepted {input:?} as {e:?}"))),
            (Err(r), Some(_)) => return Err(TestCaseError::fail(format!("rejected {input:?}: {r:?}"))),
        }
    }

    /// 3. NDJSON: one line per non-blank line, byte for byte, whatever the line endings.
    #[test]
    fn ndjson_yields_one_line_per_non_blank_line(
        lines in prop::collection::vec(
            prop_oneof![
                2 => prop::collection::vec(prop::sample::select(vec![' ', '\t', '\r']), 0..4)
                    .prop_map(|cs| (String::from_iter(cs), true)),
                3 => hostile_event().prop_map(|j| (j.render(), false)),
                2 => valid_event().prop_map(|c| (c.json, false)),
                1 => bad_json().prop_map(|j| (j.render(), false)),
            ]
            .prop_flat_map(|(line, blank)| {
                let pad = prop::sample::select(vec!["", "", " ", "\t", " \t "]);
                (pad.clone(), pad).prop_map(move |(pre, post)| {
                    if blank { (line.clone(), true) } else { (format!("{pre}{line}{post}"), false) }
                })
            }),
            0..12,
        ),
        crlf in any::<bool>(),
        trailing_eol in any::<bool>(),
        enrich in enrichment(),
    ) {
        let eol = if crlf { "\r\n" } else { "\n" };
        let mut body = lines.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>().join(eol);
        if trailing_eol {
            body.push_str(eol);
        }
        let got: Vec<&[u8]> = ndjson_lines(body.as_bytes()).collect();
        let want: Vec<&[u8]> = lines.iter().filter(|(_, blank)| !blank).map(|(l, _)| l.as_bytes()).collect();
        prop_assert_eq!(got.len(), want.len(), "lines of {:?}", body);
        prop_assert_eq!(&got, &want);
        for line in got {
            check_json(line, &enrich)?;
        }
    }

    /// 3b. A JSON array of N valid JSON items yields N items, each exactly its own text.
    #[test]
    fn json_arrays_yield_their_items(
        texts in prop::collection::vec(
            prop_oneof![
                3 => hostile_event().prop_filter("plain JSON", J::is_plain).prop_map(|j| j.render()),
                2 => valid_event().prop_map(|c| c.json),
                2 => any_json().prop_map(|j| j.render()),
            ],
            0..10,
        ),
        sep in prop::sample::select(vec![",", " , ", ",\n", "\t,\r\n "]),
        enrich in enrichment(),
    ) {
        let body = format!("[ {} ]", texts.join(sep));
        let got = json_array_items(body.as_bytes());
        prop_assert!(got.is_ok(), "{:?} from {}", got, body);
        let got = got.expect("checked");
        prop_assert_eq!(got.len(), texts.len());
        for (item, text) in got.iter().zip(&texts) {
            prop_assert_eq!(item.get(), text.as_str());
            check_json(item.get().as_bytes(), &enrich)?;
        }
    }

    /// 3c. One item that is not JSON makes the whole array body fail, with a reason.
    #[test]
    fn json_arrays_with_an_invalid_item_fail(
        items in prop::collection::vec(any_json(), 0..6),
        bad in bad_json(),
        at in any::<prop::sample::Index>(),
    ) {
        let mut texts: Vec<String> = items.iter().map(J::render).collect();
        texts.insert(at.index(texts.len() + 1), bad.render());
        let body = format!("[{}]", texts.join(","));
        match json_array_items(body.as_bytes()) {
            Ok(items) => prop_assert!(false, "{} gave {} items", body, items.len()),
            Err(reason) => prop_assert!(reason.starts_with("body is not a JSON array: ") && reason.len() > 26),
        }
    }
}

/// Regression test: a JSON float must be stored exactly (found by these properties; fixed by
/// enabling serde_json's `float_roundtrip` feature).
#[test]
fn json_floats_are_parsed_exactly() {
    let raw = br#"{"type":"play","fields":{"user":"u","started":0,"ratio":2e-30}}"#;
    let e = REG.validate_json(raw, &Enrichment::new(UNIX_EPOCH)).expect("a valid event");
    assert_eq!(e.fields["ratio"].kind, Some(ValueKind::FloatValue(2e-30)));
}

/// Regression test for an edge found by these properties: with a receive time before 1970 (or
/// after 9999) `validate_json` used to accept an event without `event_time`, defaulting it to the
/// out-of-range receive time, which `validate_event` then rejected. Now both reject it.
#[test]
fn received_time_outside_1970_9999_breaks_idempotence() {
    for received in [UNIX_EPOCH - Duration::from_millis(1), UNIX_EPOCH + Duration::from_secs(MAX_SECS as u64)]
    {
        let enrich = Enrichment::new(received);
        let outcome = REG.validate_json(br#"{"type":"ping"}"#, &enrich);
        if let Ok(e) = outcome {
            let again = REG.validate_event(e.clone(), &enrich);
            assert_eq!(again, Ok(e), "re-validation at {received:?}");
        }
    }
}
