//! Tests of the whole parser: a line in, the decoded `Event` out.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use event_model::proto::value::Kind;
use event_model::{Enrichment, Event, Registry};
use prost::Message as _;
use prost_types::Timestamp;

use super::*;

/// 2026-11-23T20:00:00Z.
const READ: (i64, i32) = (1_795_464_000, 7);
/// 2026-11-23T18:05:00Z.
const T: i64 = 1_795_457_100;
const META: LineMeta<'static> = LineMeta { id: "id-1", source: "web-1", read_time: READ };

fn rule(text: &str) -> ParseRule {
    toml::from_str(text).expect("rule")
}

fn repo_registry() -> Registry {
    Registry::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/registry.toml")).expect("registry")
}

fn parser(text: &str) -> LineParser {
    LineParser::new(&rule(text), Some(&repo_registry())).expect("parser")
}

fn event(p: &mut LineParser, line: &str) -> Event {
    let mut out = Vec::new();
    p.encode(line, &META, &mut out).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    Event::decode(out.as_slice()).expect("decodes")
}

fn err(p: &mut LineParser, line: &str) -> LineError {
    let mut out = b"earlier events".to_vec();
    let e = p.encode(line, &META, &mut out).expect_err(line);
    assert_eq!(out, b"earlier events", "{line:?}: the output changed");
    e
}

fn time(seconds: i64, nanos: i32) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos })
}

fn kinds(e: &Event) -> Vec<(&str, &Kind)> {
    e.fields.iter().filter_map(|(k, v)| v.kind.as_ref().map(|kind| (k.as_str(), kind))).collect()
}

#[test]
fn a_syslog_tsv_line_becomes_a_typed_event() {
    let mut p = parser("tag = \"playsvc\"");
    let e =
        event(&mut p, "Nov 23 18:05:00 web-9 playsvc[42]: play\tuser=ü\ttrack=t\tms_played=-5\tshuffle=true");
    assert_eq!((e.id.as_str(), e.r#type.as_str(), e.source.as_str()), ("id-1", "play", "web-1"));
    assert_eq!((e.event_time, e.schema_version, e.received_time), (time(T, 0), 0, None));
    assert_eq!(
        kinds(&e),
        [
            ("ms_played", &Kind::IntValue(-5)),
            ("shuffle", &Kind::BoolValue(true)),
            ("track", &Kind::StringValue("t".into())),
            ("user", &Kind::StringValue("ü".into())),
        ]
    );
}

#[test]
fn the_event_time_is_the_payloads_then_the_headers_then_the_read_time() {
    let mut p = parser("");
    let e = event(&mut p, "Nov 23 18:05:00 h a: play\tevent_time=2026-11-23T17:00:00.25+00:00");
    assert_eq!(e.event_time, time(T - 3900, 250_000_000));
    assert_eq!(event(&mut p, "Nov 23 18:05:00 h a: play").event_time, time(T, 0));
    assert_eq!(event(&mut p, "<34>1 - h a - - - play").event_time, time(READ.0, READ.1));
    let mut raw = parser("format = \"raw\"");
    let e = event(&mut raw, "play\tuser=u");
    assert_eq!((e.r#type.as_str(), e.event_time), ("play", time(READ.0, READ.1)));
    assert_eq!(event(&mut raw, "play\tevent_time=1000").event_time, time(1, 0));
}

#[test]
fn december_lines_read_in_january_belong_to_the_previous_year() {
    let mut p = parser("");
    let jan = LineMeta { read_time: (1_798_761_600 + 3600, 0), ..META }; // 2027-01-01T01:00:00Z
    let mut out = Vec::new();
    p.encode("Dec 31 23:30:00 h a: play", &jan, &mut out).expect("parses");
    let e = Event::decode(out.as_slice()).expect("decodes");
    assert_eq!(e.event_time, time(1_798_761_600 - 1800, 0)); // 2026-12-31T23:30:00Z
    out.clear();
    p.encode("Jan  1 00:30:00 h a: play", &jan, &mut out).expect("parses");
    assert_eq!(Event::decode(out.as_slice()).expect("decodes").event_time, time(1_798_761_600 + 1800, 0));
}

#[test]
fn positional_columns_and_a_fixed_type() {
    let mut p = parser("columns.play = [\"user\", \"track\", \"ms_played\", \"event_time\"]");
    let e = event(&mut p, "2026-11-23T19:05:00.123456+01:00 h app: play\tu\tt\t0\t");
    assert_eq!(e.event_time, time(T, 123_456_000));
    assert_eq!(kinds(&e)[0], ("ms_played", &Kind::IntValue(0)));
    let mut fixed = parser("event_type = \"search\"\ncolumns.search = [\"user\", \"query\", \"results\"]");
    let e = event(&mut fixed, "Nov 23 18:05:00 h a: u\tq\t12");
    assert_eq!(e.r#type, "search");
    assert_eq!(kinds(&e)[1], ("results", &Kind::IntValue(12)));
}

#[test]
fn json_payloads() {
    let mut p = parser("format = \"raw\"\npayload = \"json\"");
    let e =
        event(&mut p, r#"{"type":"play","event_time":"2026-11-23T18:05:00Z","user":"u","ms_played":"7"}"#);
    assert_eq!((e.r#type.as_str(), e.event_time), ("play", time(T, 0)));
    assert_eq!(kinds(&e), [("ms_played", &Kind::IntValue(7)), ("user", &Kind::StringValue("u".into()))]);
    let mut p = parser("payload = \"json\"");
    let e = event(&mut p, r#"Nov 23 18:05:00 h a: {"type":"search","fields":{"results":3}}"#);
    assert_eq!((e.r#type.as_str(), e.event_time), ("search", time(T, 0)));
    assert_eq!(kinds(&e), [("results", &Kind::IntValue(3))]);
}

#[test]
fn skipped_lines() {
    let mut p = parser("tag = \"playsvc\"");
    assert_eq!(err(&mut p, ""), LineError::Skipped("blank_line"));
    assert_eq!(err(&mut p, " \t \r"), LineError::Skipped("blank_line"));
    assert_eq!(err(&mut p, "Nov 23 18:05:00 h cron[1]: play"), LineError::Skipped("tag_mismatch"));
    assert_eq!(err(&mut p, "Nov 23 18:05:00 h playsvc: "), LineError::Skipped("empty_payload"));
    assert_eq!(LineError::Skipped("blank_line").to_string(), "skipped: blank_line");
}

#[test]
fn malformed_lines_say_why() {
    let mut p = parser("");
    let cases = [
        ("hello", "expected a syslog time (`Nov 23 18:05:00` or RFC 3339) at the start of the line"),
        ("Nov 23 18:05:00 h no tag", "expected a program tag ending in `:` after the host name"),
        ("Nov 23 18:05:00 h a: \tuser=u", "empty event type in the first column"),
        ("Nov 23 18:05:00 h a: play\tuser", "column 2 is not `key=value`: `user`"),
        ("Nov 23 18:05:00 h a: play\tevent_time=x", "`event_time` `x` is neither RFC 3339"),
    ];
    for (line, want) in cases {
        match err(&mut p, line) {
            LineError::Malformed(why) => assert!(why.starts_with(want), "{line:?}: {why}"),
            other => panic!("{line:?}: {other:?}"),
        }
    }
    let mut json = parser("format = \"raw\"\npayload = \"json\"");
    let e = err(&mut json, "{\"user\":\"u\"}");
    assert_eq!(e.to_string(), "malformed line: missing `type`");
    let mut cols = parser("columns.play = [\"user\", \"track\", \"ms_played\"]");
    assert_eq!(err(&mut cols, "Nov 23 18:05:00 h a: play\tu\tt"), {
        LineError::Malformed(
            "type `play` has 3 columns after the type (user, track, ms_played), the line has 2".into(),
        )
    });
}

#[test]
fn a_crlf_line_loses_its_carriage_return() {
    let mut p = parser("");
    let e = event(&mut p, "Nov 23 18:05:00 h a: play\tuser=u\r");
    assert_eq!(kinds(&e), [("user", &Kind::StringValue("u".into()))]);
}

#[test]
fn events_from_the_repo_registry_pass_validation() {
    let registry = repo_registry();
    let enrich = Enrichment::new(UNIX_EPOCH + Duration::from_secs(1_795_464_000));
    let mut p = LineParser::new(&rule(""), Some(&registry)).expect("parser");
    let ok = event(&mut p, "Nov 23 18:05:00 h a: play\tuser=u1\ttrack=t1\tms_played=5000\tshuffle=false");
    let valid = registry.validate_event(ok, &enrich).expect("valid");
    assert_eq!((valid.schema_version, valid.event_time), (1, time(T, 0)));
    assert_eq!(valid.fields["ms_played"].kind, Some(Kind::IntValue(5000)));
    let bad = event(&mut p, "Nov 23 18:05:00 h a: play\tuser=u1\ttrack=t1\tms_played=long");
    let rejection = registry.validate_event(bad, &enrich).expect_err("rejected");
    assert_eq!(rejection.reason, "field `ms_played` is not an int");
}

#[test]
fn events_append_and_the_scratch_space_is_reused() {
    let mut p = parser("");
    let mut out = Vec::new();
    p.encode("Nov 23 18:05:00 h a: play\tuser=u", &META, &mut out).expect("first");
    let first = out.len();
    let (ptr, cap) = (p.slots.as_ptr(), p.slots.capacity());
    p.encode("Nov 23 18:05:00 h a: search\tquery=q", &META, &mut out).expect("second");
    assert_eq!((p.slots.as_ptr(), p.slots.capacity(), p.slots.len()), (ptr, cap, 0));
    let a = Event::decode(&out[..first]).expect("first decodes");
    let b = Event::decode(&out[first..]).expect("second decodes");
    assert_eq!((a.r#type.as_str(), b.r#type.as_str()), ("play", "search"));
}

#[test]
fn the_rule_reads_from_toml_with_documented_defaults() {
    let r = rule("");
    assert_eq!(r, ParseRule::default());
    assert_eq!(
        (r.format, r.payload, r.event_type, r.tag),
        (LineFormat::Syslog, PayloadFormat::Tsv, None, None)
    );
    assert!(r.columns.is_empty());
    let r = rule("format = \"raw\"\npayload = \"json\"\nevent_type = \"play\"");
    assert_eq!(
        (r.format, r.payload, r.event_type.as_deref()),
        (LineFormat::Raw, PayloadFormat::Json, Some("play"))
    );
    for (text, want) in
        [("formt = \"raw\"", "unknown field `formt`"), ("format = \"Raw\"", "unknown variant `Raw`")]
    {
        let e = toml::from_str::<ParseRule>(text).expect_err(text).to_string();
        assert!(e.contains(want), "{text}: {e}");
    }
    let e = LineParser::new(&rule("columns.play = [\"\"]"), None).expect_err("empty column");
    assert!(matches!(e, crate::Error::Config(_)), "{e:?}");
}
