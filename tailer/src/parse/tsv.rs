//! TSV payloads: `type<TAB>col<TAB>col...`.
//!
//! The first column is the event type unless the rule fixes it. The remaining columns are
//! positional when the rule lists columns for the type (their count must match), otherwise
//! each is `key=value`. The column or key `event_time` holds the event time (RFC 3339 or
//! integer epoch milliseconds). Empty values are omitted. Nothing is allocated unless the line
//! is malformed.

use super::datetime::{self, Time};
use super::schema::{EVENT_TIME, Schema};
use super::value::typed;
use super::{LineError, Parsed, Slot, excerpt};

/// Parses a TSV `payload`, pushing its fields onto `slots`.
pub(crate) fn parse<'a>(
    payload: &'a str,
    schema: &'a Schema,
    slots: &mut Vec<Slot<'a>>,
) -> Result<Parsed<'a>, LineError> {
    let mut cols = Columns(Some(payload));
    let (event_type, ts, first_col) = match &schema.fixed {
        Some((name, ts)) => (name.as_str(), ts, 1),
        None => match cols.next() {
            Some(ty) if !ty.is_empty() => (ty, schema.get(ty), 2),
            _ => return Err(LineError::Malformed("empty event type in the first column".into())),
        },
    };
    let mut time = None;
    match &ts.columns {
        Some(columns) => {
            let mut got = 0;
            for text in cols {
                let col = columns.get(got);
                got += 1;
                match col {
                    Some(_) if text.is_empty() => {}
                    Some(col) if col.is_event_time => time = Some(event_time(text)?),
                    Some(col) => slots.push((&col.name, typed(text, col.kind))),
                    None => {}
                }
            }
            if got != columns.len() {
                let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
                let after = if schema.fixed.is_some() { "" } else { " after the type" };
                return Err(LineError::Malformed(format!(
                    "type `{event_type}` has {} columns{after} ({}), the line has {got}",
                    columns.len(),
                    names.join(", ")
                )));
            }
        }
        None => {
            for (i, text) in cols.enumerate() {
                // Keys are short: a plain loop beats memchr's setup.
                let eq = text.as_bytes().iter().position(|&b| b == b'=');
                let Some((key, value)) = eq.map(|i| (&text[..i], &text[i + 1..])) else {
                    return Err(LineError::Malformed(format!(
                        "column {} is not `key=value`: `{}`",
                        i + first_col,
                        excerpt(text)
                    )));
                };
                if value.is_empty() {
                    continue;
                }
                if key == EVENT_TIME {
                    time = Some(event_time(value)?);
                } else {
                    slots.push((key, typed(value, ts.kind(key))));
                }
            }
        }
    }
    Ok(Parsed { event_type, time })
}

/// The tab-separated columns of a payload: `str::split`, but with the `memchr` crate's search,
/// faster than the standard library's.
struct Columns<'a>(Option<&'a str>);

impl<'a> Iterator for Columns<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.0?;
        match memchr::memchr(b'\t', rest.as_bytes()) {
            Some(i) => {
                self.0 = Some(&rest[i + 1..]);
                Some(&rest[..i])
            }
            None => {
                self.0 = None;
                Some(rest)
            }
        }
    }
}

/// The event time in a column.
fn event_time(text: &str) -> Result<Time, LineError> {
    datetime::rfc3339_or_millis(text).ok_or_else(|| {
        LineError::Malformed(format!(
            "`event_time` `{}` is neither RFC 3339 nor integer epoch milliseconds",
            excerpt(text)
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
            fields.shuffle = { type = "bool" }
            "#,
        )
        .expect("registry");
        let rule: ParseRule = toml::from_str(rule).expect("rule");
        Schema::compile(&rule, Some(&registry)).expect("schema")
    }

    fn run<'a>(payload: &'a str, schema: &'a Schema) -> Result<(Parsed<'a>, Vec<Slot<'a>>), LineError> {
        let mut slots = Vec::new();
        parse(payload, schema, &mut slots).map(|p| (p, slots))
    }

    fn malformed(payload: &str, schema: &Schema) -> String {
        match run(payload, schema) {
            Err(LineError::Malformed(why)) => why,
            other => panic!("{payload:?}: {other:?}"),
        }
    }

    #[test]
    fn key_value_columns_are_typed_by_the_registry() {
        let s = schema("");
        let (p, slots) = run("play\tuser=u1\tms=5\tshuffle=yes\tother=7\tempty=", &s).expect("parses");
        assert_eq!(p, Parsed { event_type: "play", time: None });
        assert_eq!(
            slots,
            [
                ("user", V::Str("u1".into())),
                ("ms", V::Int(5)),
                ("shuffle", V::Str("yes".into())),
                ("other", V::Str("7".into())),
            ]
        );
        let (p, slots) = run("play\tevent_time=1795457100123\tx=a=b", &s).expect("parses");
        assert_eq!(p.time, Some((1_795_457_100, 123_000_000)));
        assert_eq!(slots, [("x", V::Str("a=b".into()))]);
        let (p, slots) = run("search", &s).expect("a type alone");
        assert_eq!((p.event_type, slots.len()), ("search", 0));
    }

    #[test]
    fn positional_columns() {
        let s = schema("columns.play = [\"user\", \"event_time\", \"ms\"]");
        let (p, slots) = run("play\tu1\t2026-11-23T18:05:00Z\t5", &s).expect("parses");
        assert_eq!(p, Parsed { event_type: "play", time: Some((1_795_457_100, 0)) });
        assert_eq!(slots, [("user", V::Str("u1".into())), ("ms", V::Int(5))]);
        let (p, slots) = run("play\t\t\tx", &s).expect("empty values are omitted");
        assert_eq!((p.time, slots), (None, vec![("ms", V::Str("x".into()))]));
        let (_, slots) = run("search\tq=x", &s).expect("another type is key=value");
        assert_eq!(slots, [("q", V::Str("x".into()))]);
    }

    #[test]
    fn a_fixed_type_makes_every_column_a_field() {
        let s = schema("event_type = \"play\"\ncolumns.play = [\"user\", \"ms\"]");
        let (p, slots) = run("u1\t7", &s).expect("parses");
        assert_eq!((p.event_type, slots), ("play", vec![("user", V::Str("u1".into())), ("ms", V::Int(7))]));
        let why = malformed("u1", &s);
        assert_eq!(why, "type `play` has 2 columns (user, ms), the line has 1");
        let s = schema("event_type = \"play\"");
        let (_, slots) = run("user=u1", &s).expect("parses");
        assert_eq!(slots, [("user", V::Str("u1".into()))]);
        assert_eq!(malformed("user=u1\tms", &s), "column 2 is not `key=value`: `ms`");
    }

    #[test]
    fn malformed_payloads_say_why() {
        let s = schema("columns.play = [\"user\", \"ms\"]");
        assert_eq!(malformed("\tuser=u", &s), "empty event type in the first column");
        assert_eq!(
            malformed("play\tu1", &s),
            "type `play` has 2 columns after the type (user, ms), the line has 1"
        );
        assert_eq!(malformed("play\tu\t1\t2", &s), {
            "type `play` has 2 columns after the type (user, ms), the line has 3"
        });
        assert_eq!(malformed("search\tq=x\tnoequals", &s), "column 3 is not `key=value`: `noequals`");
        assert_eq!(malformed("search\tevent_time=soon", &s), {
            "`event_time` `soon` is neither RFC 3339 nor integer epoch milliseconds"
        });
        let long = format!("search\t{}", "é".repeat(100));
        assert_eq!(malformed(&long, &s), format!("column 2 is not `key=value`: `{}`", "é".repeat(64)));
    }
}
