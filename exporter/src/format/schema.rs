//! The Avro schema of an event type, and the Avro name of each registry field.

use std::collections::{BTreeMap, HashSet};

use apache_avro::Schema;
use apache_avro::schema::{MapSchema, Name, RecordField, RecordFieldOrder, RecordSchema, UnionSchema};
use event_model::{EventType, FieldKind, FieldSpec};

/// Namespace of every record schema.
pub(super) const NAMESPACE: &str = "eventpipe.v1";
/// Field attribute holding the registry name of a field whose Avro name differs from it.
pub(super) const NAME_ATTR: &str = "eventpipe.name";
/// Prefix of the Avro name of a registry field that cannot keep its own name.
const PREFIX: &str = "field_";

/// Envelope field names, which registry fields never use as their Avro names.
pub(super) const ID: &str = "id";
pub(super) const TYPE: &str = "type";
pub(super) const SCHEMA_VERSION: &str = "schema_version";
pub(super) const EVENT_TIME: &str = "event_time";
pub(super) const RECEIVED_TIME: &str = "received_time";
pub(super) const SOURCE: &str = "source";
pub(super) const EXTRA: &str = "extra";
const ENVELOPE: [&str; 7] = [ID, TYPE, SCHEMA_VERSION, EVENT_TIME, RECEIVED_TIME, SOURCE, EXTRA];

/// One registry field and its Avro name, in the order of the record's fields.
pub(super) struct Column<'a> {
    /// The registry field.
    pub(super) spec: &'a FieldSpec,
    /// Its name in the Avro record.
    pub(super) avro_name: String,
}

fn is_avro_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `s` with every character Avro names do not allow replaced by `_`.
fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

/// The registry fields of `event_type` in registry (name) order, with their Avro names.
///
/// A field keeps its own name when that is a valid Avro name, is not an envelope name and does
/// not start with `field_`. Otherwise its Avro name is `field_` followed by the name with every
/// character outside `[A-Za-z0-9_]` replaced by `_`, and `_2`, `_3`, ... appended if that is
/// already taken. Prefixed names therefore never clash with kept names or the envelope.
pub(super) fn columns(event_type: &EventType) -> Vec<Column<'_>> {
    let keeps = |name: &str| is_avro_name(name) && !ENVELOPE.contains(&name) && !name.starts_with(PREFIX);
    let mut used: HashSet<String> = ENVELOPE.iter().map(|s| (*s).to_owned()).collect();
    used.extend(event_type.fields.keys().filter(|n| keeps(n)).cloned());
    event_type
        .fields
        .values()
        .map(|spec| {
            let avro_name = if keeps(&spec.name) {
                spec.name.clone()
            } else {
                let base = format!("{PREFIX}{}", sanitize(&spec.name));
                let mut name = base.clone();
                let mut n = 2;
                while used.contains(&name) {
                    name = format!("{base}_{n}");
                    n += 1;
                }
                used.insert(name.clone());
                name
            };
            Column { spec, avro_name }
        })
        .collect()
}

/// The Avro name of the record of `type_name`: the type name, with characters Avro does not
/// allow replaced by `_` (registry type names may contain `-`).
fn record_name(type_name: &str) -> String {
    let name = sanitize(type_name);
    if is_avro_name(&name) { name } else { format!("_{name}") }
}

/// `["null", t]`.
fn nullable(t: Schema) -> Schema {
    // `UnionSchema::new` only refuses nested unions and duplicate branches; `t` is never a
    // union nor null, so the fallback is unreachable.
    UnionSchema::new(vec![Schema::Null, t.clone()]).map_or(t, Schema::Union)
}

fn field_schema(kind: FieldKind) -> Schema {
    match kind {
        FieldKind::String => Schema::String,
        FieldKind::Int => Schema::Long,
        FieldKind::Float => Schema::Double,
        FieldKind::Bool => Schema::Boolean,
        FieldKind::Timestamp => Schema::TimestampMicros,
    }
}

fn field(
    name: &str,
    schema: Schema,
    default: Option<serde_json::Value>,
    attrs: BTreeMap<String, serde_json::Value>,
) -> RecordField {
    RecordField {
        name: name.to_owned(),
        doc: None,
        aliases: None,
        default,
        schema,
        order: RecordFieldOrder::Ascending,
        position: 0,
        custom_attributes: attrs,
    }
}

/// The Avro schema of the data files of `event_type`.
///
/// A record named after the type (characters outside `[A-Za-z0-9_]` replaced by `_`) in the
/// namespace `eventpipe.v1`, with the fields, in this order:
///
/// | field | Avro type |
/// |---|---|
/// | `id`, `type` | `string` |
/// | `schema_version` | `long` |
/// | `event_time` | `long` (`timestamp-micros`) |
/// | `received_time` | `["null", long timestamp-micros]`, default `null` |
/// | `source` | `string` |
/// | one per registry field, in name order | `["null", T]`, default `null` |
/// | `extra` | `map<string>`, default `{}` |
///
/// `T` is `string`, `long`, `double`, `boolean` or `long` (`timestamp-micros`) for the registry
/// kinds `string`, `int`, `float`, `bool`, `timestamp`. A registry field keeps its own name if
/// that is a valid Avro name, not one of the envelope names above and does not start with
/// `field_`; otherwise it is called `field_<name>` with characters outside `[A-Za-z0-9_]`
/// replaced by `_` (and `_2`, `_3`, ... appended in the unlikely case of a clash), and the
/// field carries its registry name in the attribute `eventpipe.name`. So `user` stays `user`,
/// `type` becomes `field_type` and `page-id` becomes `field_page_id`.
///
/// `extra` holds what has no column (see [`encode_file`](super::encode_file)): values of fields
/// the registry does not declare (it changed since the event was accepted) and values whose kind
/// is not the declared one, keyed by field name, as JSON text.
pub fn avro_schema(event_type: &EventType) -> apache_avro::Schema {
    let micros = Schema::TimestampMicros;
    let mut fields = vec![
        field(ID, Schema::String, None, BTreeMap::new()),
        field(TYPE, Schema::String, None, BTreeMap::new()),
        field(SCHEMA_VERSION, Schema::Long, None, BTreeMap::new()),
        field(EVENT_TIME, micros.clone(), None, BTreeMap::new()),
        field(RECEIVED_TIME, nullable(micros), Some(serde_json::Value::Null), BTreeMap::new()),
        field(SOURCE, Schema::String, None, BTreeMap::new()),
    ];
    for col in columns(event_type) {
        let mut attrs = BTreeMap::new();
        if col.avro_name != col.spec.name {
            attrs.insert(NAME_ATTR.to_owned(), serde_json::Value::String(col.spec.name.clone()));
        }
        let schema = nullable(field_schema(col.spec.kind));
        fields.push(field(&col.avro_name, schema, Some(serde_json::Value::Null), attrs));
    }
    let extra = Schema::Map(MapSchema { types: Box::new(Schema::String), attributes: BTreeMap::new() });
    fields.push(field(EXTRA, extra, Some(serde_json::json!({})), BTreeMap::new()));
    let mut lookup = BTreeMap::new();
    for (i, f) in fields.iter_mut().enumerate() {
        f.position = i;
        lookup.insert(f.name.clone(), i);
    }
    Schema::Record(RecordSchema {
        name: Name { name: record_name(&event_type.name), namespace: Some(NAMESPACE.to_owned()) },
        aliases: None,
        doc: Some(format!(
            "Events of type `{}`, schema version {}, written by the eventpipe exporter",
            event_type.name, event_type.version
        )),
        fields,
        lookup,
        attributes: BTreeMap::new(),
    })
}
