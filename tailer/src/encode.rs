//! Direct protobuf encoding of [`event_model::Event`] and of `EventBatch` entries.
//!
//! The tailer's hot path turns about a million lines per second into events, so it writes the
//! wire bytes straight from borrowed text instead of building prost structs (which would mean a
//! `String` per id, type, source and field plus a `BTreeMap` per event). The output decodes with
//! prost into exactly the `Event` the same values would build; the tests check that.
//!
//! Written by hand (one-byte keys, inline varints, into a buffer with room for the largest
//! encoding, nested lengths written after their bodies) rather than with prost's encoding
//! helpers, which push byte by byte onto the `Vec` and need every length computed first.
//!
//! Field numbers follow `event-model/proto/eventpipe/v1/event.proto`. `schema_version` is never
//! written (0 tells the event-service to fill in the registry's version) and neither is
//! `received_time` (the service sets it).

use std::borrow::Cow;

/// The value of one event field: the `Value` oneof of the envelope.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FieldValue<'a> {
    /// `string_value` (1).
    Str(Cow<'a, str>),
    /// `int_value` (2).
    Int(i64),
    /// `float_value` (3).
    Float(f64),
    /// `bool_value` (4).
    Bool(bool),
    /// `timestamp_value` (5): seconds and nanoseconds since the Unix epoch.
    Time(i64, i32),
}

// Wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const DELIMITED: u8 = 2;

/// The one-byte key of field `number` (below 16, as all of them are) with `wire_type`.
const fn key(number: u8, wire_type: u8) -> u8 {
    (number << 3) | wire_type
}

// `Event`.
const EVENT_ID: u8 = key(1, DELIMITED);
const EVENT_TYPE: u8 = key(2, DELIMITED);
const EVENT_TIME: u8 = key(4, DELIMITED);
const EVENT_SOURCE: u8 = key(6, DELIMITED);
const EVENT_FIELDS: u8 = key(7, DELIMITED);
// An entry of the `fields` map.
const ENTRY_KEY: u8 = key(1, DELIMITED);
const ENTRY_VALUE: u8 = key(2, DELIMITED);
// `Value`.
const VALUE_STRING: u8 = key(1, DELIMITED);
const VALUE_INT: u8 = key(2, VARINT);
const VALUE_FLOAT: u8 = key(3, FIXED64);
const VALUE_BOOL: u8 = key(4, VARINT);
const VALUE_TIMESTAMP: u8 = key(5, DELIMITED);
// `google.protobuf.Timestamp`.
const TS_SECONDS: u8 = key(1, VARINT);
const TS_NANOS: u8 = key(2, VARINT);
// `EventBatch`.
const BATCH_EVENTS: u8 = key(1, DELIMITED);

/// The most bytes a key and a varint length prefix take.
const MAX_PREFIX: usize = 1 + 10;
/// The most bytes a `Timestamp` field takes: prefix, then two keys and varints.
const MAX_TIMESTAMP: usize = MAX_PREFIX + 2 * MAX_PREFIX;

/// Appends the encoding of one `Event` (not length-delimited) to `out`.
///
/// `event_time` is always written (the tailer always knows a time); empty `id`, `event_type` and
/// `source` are omitted as proto3 requires. Each field becomes one entry of the `fields` map, in
/// the order given; a name given twice decodes as its last value.
pub(crate) fn encode_event(
    out: &mut Vec<u8>,
    id: &str,
    event_type: &str,
    event_time: (i64, i32),
    source: &str,
    fields: &[(&str, FieldValue<'_>)],
) {
    // Room for the largest encoding; what is not used is cut off at the end.
    let bound = 3 * MAX_PREFIX
        + id.len()
        + event_type.len()
        + source.len()
        + MAX_TIMESTAMP
        + fields.iter().map(|(name, value)| 3 * MAX_PREFIX + name.len() + value.max_len()).sum::<usize>();
    let start = out.len();
    out.resize(start + bound, 0);
    let mut w = Writer { buf: &mut out[start..], pos: 0 };
    w.str_field(EVENT_ID, id);
    w.str_field(EVENT_TYPE, event_type);
    w.timestamp(EVENT_TIME, event_time.0, event_time.1);
    w.str_field(EVENT_SOURCE, source);
    for (name, value) in fields {
        w.byte(EVENT_FIELDS);
        let entry = w.open();
        w.str_field(ENTRY_KEY, name);
        w.byte(ENTRY_VALUE);
        let body = w.open();
        w.value(value);
        w.close(body);
        w.close(entry);
    }
    let len = w.pos;
    out.truncate(start + len);
}

/// Appends one `events` entry (field 1, length-delimited) of an `EventBatch` holding the
/// encoded `event` (as written by [`encode_event`]) to `batch`.
pub(crate) fn append_batch_entry(batch: &mut Vec<u8>, event: &[u8]) {
    let mut prefix = [0; MAX_PREFIX];
    let mut w = Writer { buf: &mut prefix, pos: 0 };
    w.byte(BATCH_EVENTS);
    w.varint(event.len() as u64);
    let len = w.pos;
    batch.reserve(len + event.len());
    batch.extend_from_slice(&prefix[..len]);
    batch.extend_from_slice(event);
}

impl FieldValue<'_> {
    /// The most bytes the body of its `Value` message takes.
    fn max_len(&self) -> usize {
        match self {
            FieldValue::Str(s) => MAX_PREFIX + s.len(),
            FieldValue::Int(_) | FieldValue::Float(_) | FieldValue::Bool(_) => MAX_PREFIX,
            FieldValue::Time(..) => MAX_TIMESTAMP,
        }
    }
}

/// Bytes of `v` as a varint.
#[inline]
fn varint_len(v: u64) -> usize {
    // 1 byte per started group of 7 significant bits (`v | 1`: zero takes one byte).
    (((v | 1).ilog2() * 9 + 73) / 64) as usize
}

/// Writes into a buffer with room for everything written. (Faster than pushing onto the `Vec`:
/// a byte written through the `Vec` may alias its length, which must then be reloaded after
/// every byte.) A nested message is written with a one-byte length prefix that is widened
/// afterwards in the rare case it is 128 bytes or more, so no length is computed twice.
struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Writer<'_> {
    /// One byte.
    #[inline]
    fn byte(&mut self, b: u8) {
        self.buf[self.pos] = b;
        self.pos += 1;
    }

    /// A varint.
    #[inline]
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.byte(v as u8 | 0x80);
            v >>= 7;
        }
        self.byte(v as u8);
    }

    /// Starts a length-delimited body (after its key): the position where the body starts.
    #[inline]
    fn open(&mut self) -> usize {
        self.pos += 1;
        self.pos
    }

    /// Writes the length of the body started at `body` (by [`open`](Self::open)), which ends
    /// here, into its prefix, moving the body when the length needs more than one byte.
    #[inline]
    fn close(&mut self, body: usize) {
        let len = self.pos - body;
        if len < 0x80 {
            self.buf[body - 1] = len as u8;
        } else {
            let extra = varint_len(len as u64) - 1;
            self.buf.copy_within(body..self.pos, body + extra);
            self.pos = body - 1;
            self.varint(len as u64);
            self.pos += len;
        }
    }

    /// A length-delimited field, written even when empty (a oneof member).
    #[inline]
    fn str(&mut self, key: u8, s: &[u8]) {
        self.byte(key);
        self.varint(s.len() as u64);
        self.buf[self.pos..self.pos + s.len()].copy_from_slice(s);
        self.pos += s.len();
    }

    /// A proto3 string field, omitted when empty.
    #[inline]
    fn str_field(&mut self, key: u8, s: &str) {
        if !s.is_empty() {
            self.str(key, s.as_bytes());
        }
    }

    /// A `Timestamp` message field (always present, even for the epoch; zero seconds and
    /// nanos are omitted inside it).
    fn timestamp(&mut self, key: u8, seconds: i64, nanos: i32) {
        self.byte(key);
        let body = self.open();
        if seconds != 0 {
            self.byte(TS_SECONDS);
            self.varint(seconds as u64);
        }
        if nanos != 0 {
            self.byte(TS_NANOS);
            // int32 is sign-extended to 64 bits on the wire.
            self.varint(i64::from(nanos) as u64);
        }
        self.close(body);
    }

    /// The body of a `Value` message: its one oneof member, always written.
    fn value(&mut self, value: &FieldValue<'_>) {
        match value {
            FieldValue::Str(s) => self.str(VALUE_STRING, s.as_bytes()),
            FieldValue::Int(i) => {
                self.byte(VALUE_INT);
                self.varint(*i as u64);
            }
            FieldValue::Float(f) => {
                self.byte(VALUE_FLOAT);
                self.buf[self.pos..self.pos + 8].copy_from_slice(&f.to_bits().to_le_bytes());
                self.pos += 8;
            }
            FieldValue::Bool(b) => {
                self.byte(VALUE_BOOL);
                self.byte(u8::from(*b));
            }
            FieldValue::Time(s, n) => self.timestamp(VALUE_TIMESTAMP, *s, *n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use event_model::proto::value::Kind;
    use event_model::{Event, EventBatch, Value};
    use proptest::prelude::*;
    use prost::Message as _;
    use prost_types::Timestamp;

    fn expected(
        id: &str,
        ty: &str,
        time: (i64, i32),
        source: &str,
        fields: &[(&str, FieldValue<'_>)],
    ) -> Event {
        let mut e = Event {
            id: id.into(),
            r#type: ty.into(),
            event_time: Some(Timestamp { seconds: time.0, nanos: time.1 }),
            source: source.into(),
            ..Default::default()
        };
        for (name, v) in fields {
            let kind = match v {
                FieldValue::Str(s) => Kind::StringValue(s.to_string()),
                FieldValue::Int(i) => Kind::IntValue(*i),
                FieldValue::Float(f) => Kind::FloatValue(*f),
                FieldValue::Bool(b) => Kind::BoolValue(*b),
                FieldValue::Time(s, n) => Kind::TimestampValue(Timestamp { seconds: *s, nanos: *n }),
            };
            e.fields.insert((*name).into(), Value { kind: Some(kind) });
        }
        e
    }

    fn round_trip(id: &str, ty: &str, time: (i64, i32), source: &str, fields: &[(&str, FieldValue<'_>)]) {
        let mut out = Vec::new();
        encode_event(&mut out, id, ty, time, source, fields);
        let want = expected(id, ty, time, source, fields);
        assert_eq!(Event::decode(out.as_slice()).expect("decodes"), want);
        // Same bytes as prost, when prost would write the same fields in the same order.
        assert_eq!(out.len(), want.encoded_len());
    }

    #[test]
    fn every_value_kind_round_trips() {
        let fields = [
            ("a_str", FieldValue::Str("héllo wörld ✓ 日本".into())),
            ("b_int", FieldValue::Int(184_233)),
            ("c_neg", FieldValue::Int(-42)),
            ("d_min", FieldValue::Int(i64::MIN)),
            ("e_float", FieldValue::Float(-1.5e300)),
            ("f_bool", FieldValue::Bool(true)),
            ("g_time", FieldValue::Time(1_795_457_100, 123_456_789)),
            ("h_old", FieldValue::Time(-86_400, 1)),
        ];
        round_trip("0123456789abcdef0123456789abcdef", "play", (1_795_457_100, 5), "web-1", &fields);
    }

    #[test]
    fn zero_and_empty_values_keep_their_presence() {
        let fields = [
            ("empty", FieldValue::Str("".into())),
            ("zero", FieldValue::Int(0)),
            ("zero_f", FieldValue::Float(0.0)),
            ("no", FieldValue::Bool(false)),
            ("epoch", FieldValue::Time(0, 0)),
        ];
        let mut out = Vec::new();
        encode_event(&mut out, "id", "t", (0, 0), "", &fields);
        let e = Event::decode(out.as_slice()).expect("decodes");
        assert_eq!(e, expected("id", "t", (0, 0), "", &fields));
        assert_eq!(e.event_time, Some(Timestamp::default()), "an epoch event time is still present");
        for (name, _) in &fields {
            assert!(e.fields[*name].kind.is_some(), "{name} lost its value");
        }
    }

    #[test]
    fn empty_top_level_strings_are_omitted() {
        let mut out = Vec::new();
        encode_event(&mut out, "", "", (1, 0), "", &[]);
        assert_eq!(out, [0x22, 0x02, 0x08, 0x01], "only event_time {{seconds: 1}}");
        assert_eq!(Event::decode(out.as_slice()).expect("decodes"), expected("", "", (1, 0), "", &[]));
    }

    #[test]
    fn long_values_need_multi_byte_lengths() {
        for len in [126, 127, 128, 16_380, 16_384, 2_100_000] {
            let long = "x".repeat(len);
            let fields = [("long", FieldValue::Str(long.as_str().into())), ("after", FieldValue::Int(-1))];
            round_trip(&long, "t", (1, 2), "s", &fields);
        }
    }

    #[test]
    fn batch_entries_decode_as_an_event_batch() {
        let mut batch = Vec::new();
        let mut want = EventBatch::default();
        for i in 0..3 {
            let mut event = Vec::new();
            let fields = [("n", FieldValue::Int(i))];
            encode_event(&mut event, &format!("id{i}"), "play", (i, 0), "h", &fields);
            append_batch_entry(&mut batch, &event);
            want.events.push(expected(&format!("id{i}"), "play", (i, 0), "h", &fields));
        }
        assert_eq!(EventBatch::decode(batch.as_slice()).expect("decodes"), want);
        assert_eq!(batch, want.encode_to_vec());
    }

    proptest! {
        #[test]
        fn varints_match_prost(v in any::<u64>()) {
            let mut out = vec![0; 10];
            let mut w = Writer { buf: &mut out, pos: 0 };
            w.varint(v);
            let written = w.pos;
            out.truncate(written);
            prop_assert_eq!(varint_len(v), prost::encoding::encoded_len_varint(v));
            prop_assert_eq!(out.len(), varint_len(v));
            prop_assert_eq!(prost::encoding::decode_varint(&mut out.as_slice()).expect("decodes"), v);
        }
    }

    fn field_value() -> impl Strategy<Value = FieldValue<'static>> {
        prop_oneof![
            ".{0,20}".prop_map(|s| FieldValue::Str(s.into())),
            any::<i64>().prop_map(FieldValue::Int),
            any::<f64>().prop_filter("NaN != NaN", |f| !f.is_nan()).prop_map(FieldValue::Float),
            any::<bool>().prop_map(FieldValue::Bool),
            (any::<i64>(), any::<i32>()).prop_map(|(s, n)| FieldValue::Time(s, n)),
        ]
    }

    proptest! {
        #[test]
        fn any_event_round_trips(
            id in ".{0,40}",
            ty in "[a-z_]{0,12}",
            time in (any::<i64>(), any::<i32>()),
            source in ".{0,20}",
            fields in proptest::collection::btree_map("[a-z_]{0,8}", field_value(), 0..8),
        ) {
            let fields: Vec<(&str, FieldValue<'_>)> =
                fields.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            let mut out = Vec::new();
            encode_event(&mut out, &id, &ty, time, &source, &fields);
            let want = expected(&id, &ty, time, &source, &fields);
            prop_assert_eq!(Event::decode(out.as_slice()).expect("decodes"), want);
        }
    }
}
