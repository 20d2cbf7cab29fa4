//! Tests of the data file formats.

use std::collections::BTreeMap;

use apache_avro::Schema;
use apache_avro::types::Value as AvroValue;
use event_model::{Event, EventType, Registry, Value, ValueKind};
use prost::Message as _;
use prost_types::Timestamp;

use super::*;

const REGISTRY: &str = include_str!("../../../config/registry.toml");

/// A type with every kind, and names that cannot be Avro names as they are.
const KINDS: &str = r#"
    [types.kinds-x]
    version = 2
    fields.s = { type = "string", required = true }
    fields.i = { type = "int" }
    fields.f = { type = "float" }
    fields.b = { type = "bool" }
    fields.t = { type = "timestamp" }
    fields.type = { type = "string" }
    fields.page-id = { type = "int" }
    fields.field_a = { type = "string" }
    fields.field-a = { type = "string" }
"#;

const ALL: [(FileFormat, AvroCodec); 3] = [
    (FileFormat::Avro, AvroCodec::Zstd),
    (FileFormat::Avro, AvroCodec::Deflate),
    (FileFormat::NdjsonGzip, AvroCodec::Zstd),
];

fn registry_type(toml: &str, name: &str) -> EventType {
    let r = Registry::from_toml_str(toml).expect("registry parses");
    r.event_type(name).expect("type exists").clone()
}

fn v(kind: ValueKind) -> Value {
    Value { kind: Some(kind) }
}

fn ts(seconds: i64, micros: i32) -> Timestamp {
    Timestamp { seconds, nanos: micros * 1000 }
}

fn event(id: &str, ty: &str, fields: Vec<(&str, ValueKind)>) -> Event {
    Event {
        id: id.to_owned(),
        r#type: ty.to_owned(),
        schema_version: 2,
        event_time: Some(ts(1_795_000_000, 123_456)),
        received_time: Some(ts(1_795_000_001, 999_999)),
        source: "host-1".to_owned(),
        fields: fields.into_iter().map(|(k, kind)| (k.to_owned(), v(kind))).collect(),
    }
}

/// Events of `kinds-x` covering every kind, absent optional fields, undeclared fields and a value
/// of the wrong kind; sorted by id.
fn kinds_events() -> Vec<Event> {
    use ValueKind::*;
    let mut all = event(
        "e1",
        "kinds-x",
        vec![
            ("s", StringValue("Beyoncé — 東京 🎵 \"quoted\"\n".to_owned())),
            ("i", IntValue(i64::MIN)),
            ("f", FloatValue(0.1)),
            ("b", BoolValue(true)),
            ("t", TimestampValue(ts(1_700_000_000, 7))),
            ("type", StringValue("a field called type".to_owned())),
            ("page-id", IntValue(i64::MAX)),
            ("field_a", StringValue("underscore".to_owned())),
            ("field-a", StringValue("hyphen".to_owned())),
        ],
    );
    all.source = "hôte-ü".to_owned();
    let mut sparse = event("e2", "kinds-x", vec![("s", StringValue(String::new()))]);
    sparse.received_time = None;
    let undeclared = event(
        "e3",
        "kinds-x",
        vec![
            ("s", StringValue("x".to_owned())),
            ("f", FloatValue(-2.5e-300)),
            ("legacy", StringValue("ünïcode".to_owned())),
            ("legacy_n", IntValue(-7)),
            ("legacy_f", FloatValue(3.0)),
            ("legacy_b", BoolValue(false)),
            ("legacy_t", TimestampValue(ts(1_600_000_000, 1))),
        ],
    );
    let wrong_kind = event(
        "e4",
        "kinds-x",
        vec![
            ("s", StringValue("y".to_owned())),
            ("i", StringValue("not an int".to_owned())),
            ("t", IntValue(5)),
            ("b", FloatValue(1.5)),
        ],
    );
    vec![all, sparse, undeclared, wrong_kind]
}

/// `events` as [`decode_file_typed`] gives them back from `format`: NDJSON has no types for
/// fields the registry does not declare, so their times and non-finite floats come back as text.
fn as_decoded(format: FileFormat, et: &EventType, events: &[Event]) -> Vec<Event> {
    let mut events = events.to_vec();
    if format == FileFormat::NdjsonGzip {
        for e in &mut events {
            for (name, value) in e.fields.iter_mut().filter(|(n, _)| !et.fields.contains_key(*n)) {
                let text = match &value.kind {
                    Some(ValueKind::TimestampValue(t)) => rfc3339_micros(t).expect("in range"),
                    Some(ValueKind::FloatValue(f)) if !f.is_finite() => non_finite_name(*f).to_owned(),
                    _ => continue,
                };
                eprintln!("{}: `{name}` comes back as the text {text:?}", e.id);
                value.kind = Some(ValueKind::StringValue(text));
            }
        }
    }
    events
}

fn ids(events: &[Event]) -> Vec<String> {
    events.iter().map(|e| e.id.clone()).collect()
}

/// A small deterministic generator, so tests need no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// `n` realistic `play` events of one hour, sorted by id.
fn play_events(n: usize) -> Vec<Event> {
    use ValueKind::*;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let start = 1_795_000_000 / 3600 * 3600;
    let mut events: Vec<Event> = (0..n)
        .map(|i| {
            let host = rng.next(16);
            let at = start + (i as i64 * 3600) / n as i64;
            let micros = rng.next(1_000) as i32 * 1000;
            let mut fields = BTreeMap::from([
                ("user".to_owned(), v(StringValue(format!("user-{:06}", rng.next(50_000))))),
                ("track".to_owned(), v(StringValue(format!("spotify:track:{:022}", rng.next(200_000))))),
                ("ms_played".to_owned(), v(IntValue(rng.next(300_000) as i64))),
            ]);
            if rng.next(2) == 0 {
                fields.insert("shuffle".to_owned(), v(BoolValue(rng.next(2) == 0)));
            }
            Event {
                id: event_model::deterministic_event_id(&format!("web-{host:02}"), host, i as u64 * 120),
                r#type: "play".to_owned(),
                schema_version: 1,
                event_time: Some(ts(at, micros)),
                received_time: Some(ts(at + 1, micros)),
                source: format!("web-{host:02}"),
                fields,
            }
        })
        .collect();
    events.sort_by(|a, b| a.id.cmp(&b.id));
    events
}

fn field_names(schema: &Schema) -> Vec<String> {
    match schema {
        Schema::Record(r) => r.fields.iter().map(|f| f.name.clone()).collect(),
        other => panic!("not a record: {other:?}"),
    }
}

#[test]
fn registry_schemas_are_valid_and_round_trip_through_canonical_form() {
    let registry = Registry::from_toml_str(REGISTRY).expect("registry parses");
    for name in ["play", "search"] {
        let schema = avro_schema(registry.event_type(name).expect("type"));
        let canonical = schema.canonical_form();
        let parsed = Schema::parse_str(&canonical).expect("canonical form parses");
        // The canonical form drops logical types, and apache-avro 0.20 writes the bare
        // timestamp-micros long as {"type":"long"} (not "long") before parsing, so compare once
        // both are parsed.
        let reparsed = Schema::parse_str(&parsed.canonical_form()).expect("parses again");
        assert_eq!(reparsed.canonical_form(), parsed.canonical_form());
        assert_eq!(canonical.replace(r#"{"type":"long"}"#, r#""long""#), parsed.canonical_form());
        // The full form, which files carry, keeps everything.
        let full = serde_json::to_string(&schema).expect("serializes");
        let from_full = Schema::parse_str(&full).expect("full form parses");
        assert_eq!(from_full, schema);
        assert_eq!(serde_json::to_string(&from_full).expect("serializes"), full);
        assert!(canonical.contains(&format!(r#""name":"eventpipe.v1.{name}""#)), "{canonical}");
    }
    let play = avro_schema(registry.event_type("play").expect("play"));
    assert_eq!(
        field_names(&play),
        [
            "id",
            "type",
            "schema_version",
            "event_time",
            "received_time",
            "source",
            "ms_played",
            "shuffle",
            "track",
            "user",
            "extra"
        ]
    );
    let json: serde_json::Value = serde_json::to_value(&play).expect("json");
    let fields = json["fields"].as_array().expect("fields");
    assert_eq!(fields[3]["type"], serde_json::json!({"type": "long", "logicalType": "timestamp-micros"}));
    assert_eq!(
        fields[4]["type"],
        serde_json::json!(["null", {"type": "long", "logicalType": "timestamp-micros"}])
    );
    assert_eq!(fields[6]["type"], serde_json::json!(["null", "long"]));
    assert_eq!(fields[6]["default"], serde_json::Value::Null);
    assert_eq!(fields[7]["type"], serde_json::json!(["null", "boolean"]));
    assert_eq!(fields[9]["type"], serde_json::json!(["null", "string"]));
    assert_eq!(fields[10]["type"], serde_json::json!({"type": "map", "values": "string"}));
    assert_eq!(fields[10]["default"], serde_json::json!({}));
}

#[test]
fn fields_keep_their_names_unless_they_cannot() {
    let et = registry_type(KINDS, "kinds-x");
    let schema = avro_schema(&et);
    assert_eq!(
        field_names(&schema),
        [
            "id",
            "type",
            "schema_version",
            "event_time",
            "received_time",
            "source",
            "b",
            "f",
            "field_field_a",
            "field_field_a_2",
            "i",
            "field_page_id",
            "s",
            "t",
            "field_type",
            "extra"
        ]
    );
    let Schema::Record(r) = &schema else { panic!("record") };
    assert_eq!(r.name.name, "kinds_x");
    let original = |avro: &str| {
        r.fields
            .iter()
            .find(|f| f.name == avro)
            .and_then(|f| f.custom_attributes.get("eventpipe.name"))
            .cloned()
    };
    assert_eq!(original("field_type"), Some("type".into()));
    assert_eq!(original("field_page_id"), Some("page-id".into()));
    assert_eq!(original("field_field_a"), Some("field-a".into()));
    assert_eq!(original("field_field_a_2"), Some("field_a".into()));
    assert_eq!(original("s"), None);
    Schema::parse_str(&schema.canonical_form()).expect("valid");
}

#[test]
fn every_format_and_codec_round_trips() {
    let et = registry_type(KINDS, "kinds-x");
    let events = kinds_events();
    for (format, codec) in ALL {
        let file = encode_file(format, codec, &et, &events).expect("encodes");
        assert_eq!(file.events, events.len());
        assert_eq!(file.checksum, checksum(&file.bytes));
        assert_eq!(file.checksum.len(), 16);
        let back = decode_file_typed(format, &et, &file.bytes).expect("decodes");
        assert_eq!(back, as_decoded(format, &et, &events), "{format:?} {codec:?}");
        assert_eq!(decode_ids(format, &file.bytes).expect("ids"), ids(&events), "{format:?} {codec:?}");
        if format == FileFormat::Avro {
            assert_eq!(decode_file(format, &file.bytes).expect("decodes"), events);
        }
    }
}

#[test]
fn ndjson_without_the_registry_gives_times_back_as_text() {
    let et = registry_type(KINDS, "kinds-x");
    let mut events = kinds_events();
    events[1].fields.insert("f".to_owned(), v(ValueKind::FloatValue(f64::NEG_INFINITY)));
    let file = encode_file(FileFormat::NdjsonGzip, AvroCodec::Zstd, &et, &events).expect("encodes");
    let back = decode_file(FileFormat::NdjsonGzip, &file.bytes).expect("decodes");
    let text = |e: &Event, f: &str| e.fields[f].kind.clone();
    assert_eq!(text(&back[0], "t"), Some(ValueKind::StringValue("2023-11-14T22:13:20.000007Z".to_owned())));
    assert_eq!(text(&back[1], "f"), Some(ValueKind::StringValue("-Infinity".to_owned())));
    let typed = decode_file_typed(FileFormat::NdjsonGzip, &et, &file.bytes).expect("decodes");
    assert_eq!(typed, as_decoded(FileFormat::NdjsonGzip, &et, &events));
    assert_eq!(text(&typed[0], "t"), Some(ValueKind::TimestampValue(ts(1_700_000_000, 7))));
    assert_eq!(text(&typed[1], "f"), Some(ValueKind::FloatValue(f64::NEG_INFINITY)));

    let mut gz = flate2::read::MultiGzDecoder::new(&file.bytes[..]);
    let mut lines = String::new();
    std::io::Read::read_to_string(&mut gz, &mut lines).expect("gunzips");
    let first: serde_json::Value = serde_json::from_str(lines.lines().next().expect("line")).expect("json");
    assert_eq!(first["event_time"], "2026-11-18T11:06:40.123456Z");
    assert_eq!(first["schema_version"], 2);
    assert_eq!(first["fields"]["page-id"], i64::MAX);
    assert_eq!(first["fields"]["f"], 0.1);
    assert_eq!(lines.lines().nth(1).map(|l| l.contains(r#""received_time":null"#)), Some(true));
}

#[test]
fn avro_puts_what_has_no_column_in_extra() {
    let et = registry_type(KINDS, "kinds-x");
    let events = kinds_events();
    let file = encode_file(FileFormat::Avro, AvroCodec::Zstd, &et, &events).expect("encodes");
    let records: Vec<AvroValue> = apache_avro::Reader::new(&file.bytes[..])
        .expect("apache-avro reads the header")
        .collect::<Result<_, _>>()
        .expect("apache-avro reads the records");
    assert_eq!(records.len(), events.len());
    let field = |r: &AvroValue, name: &str| match r {
        AvroValue::Record(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()),
        _ => None,
    };
    let extra = |r: &AvroValue| match field(r, "extra") {
        Some(AvroValue::Map(m)) => m.into_iter().collect::<BTreeMap<String, AvroValue>>(),
        other => panic!("extra is {other:?}"),
    };
    let s = |text: &str| AvroValue::String(text.to_owned());
    assert_eq!(field(&records[0], "event_time"), Some(AvroValue::TimestampMicros(1_795_000_000_123_456)));
    assert_eq!(
        field(&records[0], "field_page_id"),
        Some(AvroValue::Union(1, Box::new(AvroValue::Long(i64::MAX))))
    );
    assert_eq!(field(&records[1], "received_time"), Some(AvroValue::Union(0, Box::new(AvroValue::Null))));
    assert_eq!(field(&records[1], "i"), Some(AvroValue::Union(0, Box::new(AvroValue::Null))));
    assert!(extra(&records[0]).is_empty());
    assert_eq!(
        extra(&records[2]),
        BTreeMap::from([
            ("legacy".to_owned(), s(r#""ünïcode""#)),
            ("legacy_b".to_owned(), s("false")),
            ("legacy_f".to_owned(), s("3.0")),
            ("legacy_n".to_owned(), s("-7")),
            ("legacy_t".to_owned(), s(r#"{"timestamp":"2020-09-13T12:26:40.000001Z"}"#)),
        ])
    );
    assert_eq!(
        extra(&records[3]),
        BTreeMap::from([
            ("b".to_owned(), s("1.5")),
            ("i".to_owned(), s(r#""not an int""#)),
            ("t".to_owned(), s("5")),
        ])
    );
}

#[test]
fn files_written_by_apache_avro_decode() {
    let et = registry_type(REGISTRY, "play");
    let schema = avro_schema(&et);
    let events = play_events(50);
    let mut w = apache_avro::Writer::with_codec(&schema, Vec::new(), apache_avro::Codec::Null);
    for e in &events {
        let micros = |t: &Option<Timestamp>| to_micros(t.as_ref().expect("time")).expect("fits");
        let col = |name: &str| match e.fields.get(name).and_then(|v| v.kind.clone()) {
            None => AvroValue::Union(0, Box::new(AvroValue::Null)),
            Some(ValueKind::StringValue(s)) => AvroValue::Union(1, Box::new(AvroValue::String(s))),
            Some(ValueKind::IntValue(i)) => AvroValue::Union(1, Box::new(AvroValue::Long(i))),
            Some(ValueKind::BoolValue(b)) => AvroValue::Union(1, Box::new(AvroValue::Boolean(b))),
            Some(other) => panic!("{other:?}"),
        };
        let record = AvroValue::Record(vec![
            ("id".into(), AvroValue::String(e.id.clone())),
            ("type".into(), AvroValue::String(e.r#type.clone())),
            ("schema_version".into(), AvroValue::Long(e.schema_version.into())),
            ("event_time".into(), AvroValue::TimestampMicros(micros(&e.event_time))),
            (
                "received_time".into(),
                AvroValue::Union(1, Box::new(AvroValue::TimestampMicros(micros(&e.received_time)))),
            ),
            ("source".into(), AvroValue::String(e.source.clone())),
            ("ms_played".into(), col("ms_played")),
            ("shuffle".into(), col("shuffle")),
            ("track".into(), col("track")),
            ("user".into(), col("user")),
            ("extra".into(), AvroValue::Map(Default::default())),
        ]);
        w.append(record).expect("apache-avro writes");
    }
    let bytes = w.into_inner().expect("flushes");
    assert_eq!(decode_file(FileFormat::Avro, &bytes).expect("decodes"), events);
    assert_eq!(decode_ids(FileFormat::Avro, &bytes).expect("ids"), ids(&events));
}

#[test]
fn times_keep_microseconds_and_drop_finer_digits() {
    let et = registry_type(KINDS, "kinds-x");
    let mut e =
        event("n", "kinds-x", vec![("t", ValueKind::TimestampValue(Timestamp { seconds: -1, nanos: 999 }))]);
    e.event_time = Some(Timestamp { seconds: 1_795_000_000, nanos: 123_456_789 });
    for (format, codec) in ALL {
        let file = encode_file(format, codec, &et, std::slice::from_ref(&e)).expect("encodes");
        let back = decode_file_typed(format, &et, &file.bytes).expect("decodes");
        assert_eq!(back[0].event_time, Some(ts(1_795_000_000, 123_456)), "{format:?}");
        // Before 1970 too: rounded towards the past.
        assert_eq!(back[0].fields["t"], v(ValueKind::TimestampValue(ts(-1, 0))), "{format:?}");
    }
}

#[test]
fn non_finite_floats_survive() {
    let et = registry_type(KINDS, "kinds-x");
    let e = event(
        "nan",
        "kinds-x",
        vec![("f", ValueKind::FloatValue(f64::NAN)), ("g", ValueKind::FloatValue(f64::INFINITY))],
    );
    for (format, codec) in ALL {
        let file = encode_file(format, codec, &et, std::slice::from_ref(&e)).expect("encodes");
        let back = decode_file_typed(format, &et, &file.bytes).expect("decodes");
        let float = |name: &str| match back[0].fields[name].kind {
            Some(ValueKind::FloatValue(f)) => f,
            ref other => panic!("{format:?} {name}: {other:?}"),
        };
        assert!(float("f").is_nan(), "{format:?}");
        if format == FileFormat::Avro {
            // Undeclared, so in `extra` as {"float":"Infinity"}; NDJSON cannot know its kind.
            assert_eq!(float("g"), f64::INFINITY);
        }
    }
}

#[test]
fn empty_batches_give_valid_empty_files() {
    let et = registry_type(REGISTRY, "search");
    for (format, codec) in ALL {
        let file = encode_file(format, codec, &et, &[]).expect("encodes");
        assert_eq!(file.events, 0);
        assert!(decode_file(format, &file.bytes).expect("decodes").is_empty());
        assert!(decode_ids(format, &file.bytes).expect("ids").is_empty());
    }
}

#[test]
fn the_same_events_give_the_same_bytes() {
    let et = registry_type(KINDS, "kinds-x");
    let mut events = kinds_events();
    // Several extra entries, whose order must not depend on hashing.
    events[2].fields.insert("zz".to_owned(), v(ValueKind::IntValue(1)));
    for (format, codec) in ALL {
        let a = encode_file(format, codec, &et, &events).expect("encodes");
        let b = encode_file(format, codec, &et, &events).expect("encodes");
        assert_eq!(a.bytes, b.bytes, "{format:?} {codec:?}");
        assert_eq!(a.checksum, b.checksum);
    }
}

#[test]
fn bad_batches_are_errors_that_name_the_event() {
    let et = registry_type(REGISTRY, "play");
    let mut other = play_events(1);
    other[0].r#type = "search".to_owned();
    let mut no_time = play_events(1);
    no_time[0].event_time = None;
    let mut far = play_events(1);
    far[0].received_time = Some(Timestamp { seconds: i64::MAX / 2, nanos: 0 });
    for format in [FileFormat::Avro, FileFormat::NdjsonGzip] {
        let err = |events: &[Event]| {
            encode_file(format, AvroCodec::Zstd, &et, events).expect_err("must fail").to_string()
        };
        let id = &other[0].id;
        assert_eq!(err(&other), format!("event `{id}` is of type `search`, but the file is for type `play`"));
        assert_eq!(err(&no_time), format!("event `{}` has no event_time", no_time[0].id));
        assert_eq!(err(&far), format!("event `{}`: the time in `received_time` is out of range", far[0].id));
    }
}

/// Every corruption is an error or, where the damage is in bytes no check covers (gzip header
/// fields, names of optional metadata), gives the same events; it never panics.
#[test]
fn corrupted_files_are_errors_not_panics() {
    let et = registry_type(KINDS, "kinds-x");
    let mut events = kinds_events();
    events.extend((0..100).map(|i| {
        event(&format!("f{i:03}"), "kinds-x", vec![("s", ValueKind::StringValue(format!("value {i}")))])
    }));
    for (format, codec) in ALL {
        let file = encode_file(format, codec, &et, &events).expect("encodes");
        let bytes = file.bytes.to_vec();
        let (mut errors, mut same) = (0, 0);
        let mut check = |damaged: &[u8], what: &str| match decode_file(format, damaged) {
            Err(e) => {
                assert!(!e.to_string().is_empty());
                if let Ok(damaged_ids) = decode_ids(format, damaged) {
                    assert_eq!(damaged_ids, ids(&events), "{format:?} {codec:?}: {what} gave other ids");
                }
                errors += 1;
            }
            Ok(back) => {
                let reference = decode_file(format, &bytes).expect("intact file decodes");
                assert_eq!(back, reference, "{format:?} {codec:?}: {what} decoded into other events");
                same += 1;
            }
        };
        for len in 0..bytes.len() {
            check(&bytes[..len], &format!("truncated to {len}"));
        }
        for i in 0..bytes.len() {
            for flip in [0x01, 0x80] {
                let mut damaged = bytes.clone();
                damaged[i] ^= flip;
                check(&damaged, &format!("byte {i} ^ {flip:#x}"));
            }
        }
        assert!(errors > 50 * same, "{format:?} {codec:?}: {errors} errors, {same} harmless");
    }
    let junk: [&[u8]; 6] = [b"", b"Obj\x01", b"Obj\x01\x02", b"\x1f\x8b", b"{\"id\":1}\n", &[0xff; 64]];
    for junk in junk {
        assert!(decode_file(FileFormat::Avro, junk).is_err());
        assert!(decode_ids(FileFormat::Avro, junk).is_err());
        if !junk.is_empty() {
            assert!(decode_file(FileFormat::NdjsonGzip, junk).is_err(), "{junk:?}");
        }
    }
    assert_eq!(
        decode_file(FileFormat::Avro, b"PAR1").expect_err("not avro").to_string(),
        FormatError::NotAvro.to_string()
    );
}

#[test]
fn zstd_files_are_much_smaller_than_the_protobuf_events() {
    let et = registry_type(REGISTRY, "play");
    let events = play_events(10_000);
    let raw: usize = events.iter().map(|e| e.encoded_len()).sum();
    let mut sizes = Vec::new();
    for (format, codec) in ALL {
        let file = encode_file(format, codec, &et, &events).expect("encodes");
        assert_eq!(decode_file(format, &file.bytes).expect("decodes"), events, "{format:?} {codec:?}");
        assert_eq!(decode_ids(format, &file.bytes).expect("ids"), ids(&events));
        sizes.push((format, codec, file.bytes.len()));
    }
    eprintln!("10,000 play events: protobuf {raw} bytes; {sizes:?}");
    let zstd = sizes[0].2;
    assert!(zstd * 2 < raw, "zstd file is {zstd} bytes, protobuf {raw}");
}

#[test]
fn formats_come_from_config_text() {
    let format = |s: &str| serde_json::from_value::<FileFormat>(serde_json::json!(s));
    let codec = |s: &str| serde_json::from_value::<AvroCodec>(serde_json::json!(s));
    assert_eq!(format("avro").expect("avro"), FileFormat::Avro);
    assert_eq!(format("ndjson-gzip").expect("ndjson"), FileFormat::NdjsonGzip);
    assert!(format("parquet").is_err());
    assert_eq!(codec("zstd").expect("zstd"), AvroCodec::Zstd);
    assert_eq!(codec("deflate").expect("deflate"), AvroCodec::Deflate);
    assert!(codec("snappy").is_err());
    assert_eq!((FileFormat::default(), AvroCodec::default()), (FileFormat::Avro, AvroCodec::Zstd));
    assert_eq!(FileFormat::Avro.extension(), ".avro");
    assert_eq!(FileFormat::NdjsonGzip.extension(), ".ndjson.gz");
}

#[test]
fn errors_cross_threads() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<FormatError>();
    send_sync::<EncodedFile>();
}
