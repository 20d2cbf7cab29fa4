//! JSON payloads: one object per line.
//!
//! Two shapes are accepted:
//!
//! * the HTTP API's, when the object has a `fields` object:
//!   `{"type": "play", "event_time": "...", "fields": {"user": "u1"}}`. `id`, `source` and
//!   `schema_version` may be present and are ignored (the tailer sets the id and source, the
//!   service the version); any other key beside `fields` is an error, as it would be lost.
//! * flat: `{"type": "play", "event_time": 1795457100123, "user": "u1"}`, where every key but
//!   `type` and `event_time` is a field.
//!
//! `type` is required unless the rule fixes the type (a fixed type wins over the payload's).
//! `event_time` is RFC 3339 text or integer epoch milliseconds. Values: strings (typed by the
//! registry like TSV text), numbers (an integer is an int unless the registry says float or
//! timestamp; any other number is a float), booleans; `null` is omitted; arrays and objects
//! are sent as their JSON text.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::datetime::{self, Time};
use super::schema::{EVENT_TIME, Schema, TypeSchema};
use super::value::{json_number, typed};
use super::{LineError, Parsed, Slot, excerpt};
use crate::encode::FieldValue;

/// The keys of the API shape that are not fields and not used.
const IGNORED: [&str; 3] = ["id", "source", "schema_version"];

/// Parses a payload that must be a JSON object.
pub(crate) fn parse_object(payload: &str) -> Result<Map<String, Value>, LineError> {
    serde_json::from_str(payload)
        .map_err(|e| LineError::Malformed(format!("payload is not a JSON object: {e}")))
}

/// Reads the type, the event time and the fields of `doc`, pushing the fields onto `slots`.
pub(crate) fn parse<'a>(
    doc: &'a Map<String, Value>,
    schema: &'a Schema,
    slots: &mut Vec<Slot<'a>>,
) -> Result<Parsed<'a>, LineError> {
    let (event_type, ts) = match &schema.fixed {
        Some((name, ts)) => (name.as_str(), ts),
        None => match doc.get("type") {
            Some(Value::String(ty)) if !ty.is_empty() => (ty.as_str(), schema.get(ty)),
            None | Some(Value::Null) | Some(Value::String(_)) => {
                return Err(LineError::Malformed("missing `type`".into()));
            }
            Some(other) => return Err(LineError::Malformed(format!("`type` must be a string, not {other}"))),
        },
    };
    let time = match doc.get(EVENT_TIME) {
        None | Some(Value::Null) => None,
        Some(v) => Some(event_time(v)?),
    };
    match doc.get("fields") {
        Some(Value::Object(fields)) => {
            if let Some(key) = doc.keys().find(|k| {
                !matches!(k.as_str(), "type" | EVENT_TIME | "fields") && !IGNORED.contains(&k.as_str())
            }) {
                return Err(LineError::Malformed(format!(
                    "unexpected key `{}` beside `fields` (expected `type`, `event_time`, `fields`, and the \
                     ignored `id`, `source`, `schema_version`)",
                    excerpt(key)
                )));
            }
            push_fields(fields.iter(), ts, slots);
        }
        _ => push_fields(doc.iter().filter(|(k, _)| !matches!(k.as_str(), "type" | EVENT_TIME)), ts, slots),
    }
    Ok(Parsed { event_type, time })
}

/// Pushes the non-null `fields` onto `slots`, typed by `ts`.
fn push_fields<'a>(
    fields: impl Iterator<Item = (&'a String, &'a Value)>,
    ts: &TypeSchema,
    slots: &mut Vec<Slot<'a>>,
) {
    for (name, v) in fields {
        let kind = ts.kind(name);
        let value = match v {
            Value::Null => continue,
            Value::String(s) => typed(s, kind),
            Value::Number(n) => json_number(n, kind),
            Value::Bool(b) => FieldValue::Bool(*b),
            Value::Array(_) | Value::Object(_) => FieldValue::Str(Cow::Owned(v.to_string())),
        };
        slots.push((name, value));
    }
}

/// The event time of a JSON value.
fn event_time(v: &Value) -> Result<Time, LineError> {
    let time = match v {
        Value::String(s) => datetime::rfc3339(s),
        Value::Number(n) => n.as_i64().map(datetime::from_millis),
        _ => None,
    };
    time.ok_or_else(|| {
        let text = v.to_string();
        LineError::Malformed(format!(
            "`event_time` {} is neither RFC 3339 text nor integer epoch milliseconds",
            excerpt(&text)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::FieldValue as V;
    use crate::parse::ParseRule;

    fn schema(rule: &str) -> Schema {
        let registry = event_model::Registry::from_toml_str(
            r#"
            [types.play]
            fields.user = { type = "string" }
            fields.ms = { type = "int" }
            fields.ratio = { type = "float" }
            fields.at = { type = "timestamp" }
            "#,
        )
        .expect("registry");
        let rule: ParseRule = toml::from_str(&format!("payload = \"json\"\n{rule}")).expect("rule");
        Schema::compile(&rule, Some(&registry)).expect("schema")
    }

    /// The type, the event time and the fields (owned) of a payload.
    type Fields = (String, Option<Time>, Vec<(String, V<'static>)>);

    fn fields(payload: &str, schema: &Schema) -> Result<Fields, LineError> {
        let doc = parse_object(payload)?;
        let mut slots = Vec::new();
        let p = parse(&doc, schema, &mut slots)?;
        let owned = slots.into_iter().map(|(k, v)| (k.to_owned(), into_owned(v))).collect();
        Ok((p.event_type.to_owned(), p.time, owned))
    }

    fn into_owned(v: V<'_>) -> V<'static> {
        match v {
            V::Str(s) => V::Str(Cow::Owned(s.into_owned())),
            V::Int(i) => V::Int(i),
            V::Float(f) => V::Float(f),
            V::Bool(b) => V::Bool(b),
            V::Time(s, n) => V::Time(s, n),
        }
    }

    fn malformed(payload: &str, schema: &Schema) -> String {
        match fields(payload, schema) {
            Err(LineError::Malformed(why)) => why,
            other => panic!("{payload}: {other:?}"),
        }
    }

    fn f(name: &str, v: V<'static>) -> (String, V<'static>) {
        (name.to_owned(), v)
    }

    #[test]
    fn flat_objects() {
        let s = schema("");
        let (ty, time, got) = fields(
            r#"{"type":"play","event_time":1795457100123,"user":"ü","ms":"42","ratio":2,"at":1000,
                "n":-3,"x":1.5,"b":false,"gone":null,"arr":[1,"a"],"obj":{"k":true}}"#,
            &s,
        )
        .expect("parses");
        assert_eq!((ty.as_str(), time), ("play", Some((1_795_457_100, 123_000_000))));
        assert_eq!(
            got,
            [
                f("arr", V::Str(r#"[1,"a"]"#.into())),
                f("at", V::Time(1, 0)),
                f("b", V::Bool(false)),
                f("ms", V::Int(42)),
                f("n", V::Int(-3)),
                f("obj", V::Str(r#"{"k":true}"#.into())),
                f("ratio", V::Float(2.0)),
                f("user", V::Str("ü".into())),
                f("x", V::Float(1.5)),
            ]
        );
    }

    #[test]
    fn the_api_shape() {
        let s = schema("");
        let (ty, time, got) = fields(
            r#"{"id":"x","source":"y","schema_version":3,"type":"play","event_time":"2026-11-23T18:05:00Z",
                "fields":{"ms":"long","type":"t","at":"2026-11-23T18:05:00.5Z"}}"#,
            &s,
        )
        .expect("parses");
        assert_eq!((ty.as_str(), time), ("play", Some((1_795_457_100, 0))));
        assert_eq!(
            got,
            [
                f("at", V::Time(1_795_457_100, 500_000_000)),
                f("ms", V::Str("long".into())),
                f("type", V::Str("t".into())),
            ]
        );
        let (_, _, got) = fields(r#"{"type":"play","fields":"not an object"}"#, &s).expect("flat");
        assert_eq!(got, [f("fields", V::Str("not an object".into()))]);
    }

    #[test]
    fn a_fixed_type_wins() {
        let s = schema("event_type = \"play\"");
        let (ty, _, got) = fields(r#"{"type":"other","ms":"5"}"#, &s).expect("parses");
        assert_eq!((ty.as_str(), got), ("play", vec![f("ms", V::Int(5))]));
        let (ty, _, _) = fields(r#"{"ms":5}"#, &s).expect("no type needed");
        assert_eq!(ty, "play");
    }

    #[test]
    fn malformed_payloads_say_why() {
        let s = schema("");
        let cases = [
            ("[1,2]", "payload is not a JSON object: invalid type: sequence, expected a map"),
            ("{\"type\":", "payload is not a JSON object: EOF while parsing"),
            ("{} trailing", "payload is not a JSON object: trailing characters"),
            (r#"{"user":"u"}"#, "missing `type`"),
            (r#"{"type":""}"#, "missing `type`"),
            (r#"{"type":null}"#, "missing `type`"),
            (r#"{"type":5}"#, "`type` must be a string, not 5"),
            (
                r#"{"type":"play","event_time":"yesterday"}"#,
                "`event_time` \"yesterday\" is neither RFC 3339 text nor integer epoch milliseconds",
            ),
            (r#"{"type":"play","event_time":1.5}"#, "`event_time` 1.5 is neither"),
            (r#"{"type":"play","event_time":true}"#, "`event_time` true is neither"),
            (r#"{"type":"play","fields":{},"user":"u"}"#, "unexpected key `user` beside `fields`"),
        ];
        for (payload, want) in cases {
            let why = malformed(payload, &s);
            assert!(why.starts_with(want), "{payload}: {why}");
        }
    }
}
