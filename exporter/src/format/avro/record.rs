//! Decoding the records of an Avro file, driven by the file's schema.

use apache_avro::Schema;
use event_model::{Event, Value, ValueKind};
use prost_types::Timestamp;

use super::super::schema::{EVENT_TIME, EXTRA, ID, NAME_ATTR, RECEIVED_TIME, SCHEMA_VERSION, SOURCE, TYPE};
use super::super::{FormatError, from_micros, json_to_kind};
use super::Cursor;

/// How a field of the file's record is stored.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Prim {
    Str,
    Long,
    Int,
    Double,
    Float,
    Bool,
    Micros,
    Millis,
    StrMap,
}

/// What a field of the file's record is.
pub(super) enum Role {
    Id,
    Type,
    SchemaVersion,
    EventTime,
    ReceivedTime,
    Source,
    Extra,
    Field(String),
}

/// One field of the file's record.
pub(super) struct Col {
    pub(super) name: String,
    pub(super) role: Role,
    prim: Prim,
    /// For `["null", T]` or `[T, "null"]`: the branch index of null.
    null_branch: Option<i64>,
}

fn prim_of(schema: &Schema) -> Option<Prim> {
    Some(match schema {
        Schema::String => Prim::Str,
        Schema::Long => Prim::Long,
        Schema::Int => Prim::Int,
        Schema::Double => Prim::Double,
        Schema::Float => Prim::Float,
        Schema::Boolean => Prim::Bool,
        Schema::TimestampMicros => Prim::Micros,
        Schema::TimestampMillis => Prim::Millis,
        Schema::Map(m) if matches!(*m.types, Schema::String) => Prim::StrMap,
        _ => return None,
    })
}

/// The fields of the record in `schema` (the file's writer schema), in order.
pub(super) fn plan(schema: &str) -> Result<Vec<Col>, FormatError> {
    let schema = Schema::parse_str(schema).map_err(FormatError::Schema)?;
    let Schema::Record(record) = &schema else {
        return Err(FormatError::Unsupported("the schema is not a record".to_owned()));
    };
    let mut cols = Vec::with_capacity(record.fields.len());
    for f in &record.fields {
        let (prim, null_branch) = match &f.schema {
            Schema::Union(u) => match u.variants() {
                [Schema::Null, t] => (prim_of(t), Some(0)),
                [t, Schema::Null] => (prim_of(t), Some(1)),
                _ => (None, None),
            },
            t => (prim_of(t), None),
        };
        let role = match f.name.as_str() {
            ID => Role::Id,
            TYPE => Role::Type,
            SCHEMA_VERSION => Role::SchemaVersion,
            EVENT_TIME => Role::EventTime,
            RECEIVED_TIME => Role::ReceivedTime,
            SOURCE => Role::Source,
            EXTRA => Role::Extra,
            name => Role::Field(
                f.custom_attributes.get(NAME_ATTR).and_then(|v| v.as_str()).unwrap_or(name).to_owned(),
            ),
        };
        let fits = prim.is_some_and(|p| match role {
            Role::Id | Role::Type | Role::Source => p == Prim::Str,
            Role::SchemaVersion => matches!(p, Prim::Long | Prim::Int),
            Role::EventTime | Role::ReceivedTime => matches!(p, Prim::Micros | Prim::Millis),
            Role::Extra => p == Prim::StrMap,
            Role::Field(_) => p != Prim::StrMap,
        });
        match prim {
            Some(prim) if fits => cols.push(Col { name: f.name.clone(), role, prim, null_branch }),
            _ => {
                return Err(FormatError::Unsupported(format!(
                    "field `{}` has the Avro type {}",
                    f.name,
                    serde_json::to_string(&f.schema).unwrap_or_default()
                )));
            }
        }
    }
    if !cols.iter().any(|c| matches!(c.role, Role::Id)) {
        return Err(FormatError::Unsupported("the record has no `id` field".to_owned()));
    }
    Ok(cols)
}

/// One decoded field.
pub(super) enum Raw<'a> {
    Null,
    Str(&'a str),
    Long(i64),
    Double(f64),
    Bool(bool),
    Time(Timestamp),
    Map(Vec<(&'a str, &'a str)>),
}

impl<'a> Cursor<'a> {
    /// The union branch of `col`: whether a value follows.
    fn present(&mut self, col: &Col) -> Result<bool, String> {
        let Some(null) = col.null_branch else { return Ok(true) };
        match self.long()? {
            b if b == null => Ok(false),
            b if b == 1 - null => Ok(true),
            b => Err(format!("union branch {b} does not exist")),
        }
    }

    pub(super) fn value(&mut self, col: &Col) -> Result<Raw<'a>, String> {
        if !self.present(col)? {
            return Ok(Raw::Null);
        }
        let time = |micros: Option<i64>| micros.map(from_micros).map(Raw::Time).ok_or("time out of range");
        Ok(match col.prim {
            Prim::Str => Raw::Str(self.str()?),
            Prim::Long | Prim::Int => Raw::Long(self.long()?),
            Prim::Double => Raw::Double(f64::from_le_bytes(self.array()?)),
            Prim::Float => Raw::Double(f64::from(f32::from_le_bytes(self.array()?))),
            Prim::Bool => match self.array::<1>()? {
                [0] => Raw::Bool(false),
                [1] => Raw::Bool(true),
                [b] => return Err(format!("boolean byte {b}")),
            },
            Prim::Micros => time(Some(self.long()?))?,
            Prim::Millis => time(self.long()?.checked_mul(1000))?,
            Prim::StrMap => {
                let mut entries = Vec::new();
                loop {
                    let n = self.map_block()?;
                    if n == 0 {
                        break Raw::Map(entries);
                    }
                    for _ in 0..n {
                        entries.push((self.str()?, self.str()?));
                    }
                }
            }
        })
    }

    pub(super) fn skip(&mut self, col: &Col) -> Result<(), String> {
        if !self.present(col)? {
            return Ok(());
        }
        match col.prim {
            Prim::Str => {
                self.bytes()?;
            }
            Prim::Long | Prim::Int | Prim::Micros | Prim::Millis => {
                self.long()?;
            }
            Prim::Double => {
                self.take(8)?;
            }
            Prim::Float => {
                self.take(4)?;
            }
            Prim::Bool => {
                self.take(1)?;
            }
            Prim::StrMap => loop {
                let n = self.long()?;
                if n == 0 {
                    break;
                }
                if n < 0 {
                    let size = self.len()?;
                    self.take(size)?;
                } else {
                    for _ in 0..n {
                        self.bytes()?;
                        self.bytes()?;
                    }
                }
            },
        }
        Ok(())
    }
}

pub(super) fn read_event(r: &mut Cursor<'_>, plan: &[Col]) -> Result<Event, FormatError> {
    let mut ev = Event::default();
    let mut extra = Vec::new();
    for col in plan {
        let raw = r.value(col).map_err(|e| FormatError::Corrupt(format!("field `{}`: {e}", col.name)))?;
        match (&col.role, raw) {
            (_, Raw::Null) => {}
            (Role::Id, Raw::Str(s)) => ev.id = s.to_owned(),
            (Role::Type, Raw::Str(s)) => ev.r#type = s.to_owned(),
            (Role::Source, Raw::Str(s)) => ev.source = s.to_owned(),
            (Role::SchemaVersion, Raw::Long(n)) => {
                ev.schema_version = u32::try_from(n).map_err(|_| FormatError::BadValue {
                    id: ev.id.clone(),
                    field: col.name.clone(),
                    reason: format!("{n} is not a schema version"),
                })?;
            }
            (Role::EventTime, Raw::Time(t)) => ev.event_time = Some(t),
            (Role::ReceivedTime, Raw::Time(t)) => ev.received_time = Some(t),
            (Role::Extra, Raw::Map(entries)) => extra = entries,
            (Role::Field(name), raw) => {
                let kind = match raw {
                    Raw::Str(s) => ValueKind::StringValue(s.to_owned()),
                    Raw::Long(n) => ValueKind::IntValue(n),
                    Raw::Double(f) => ValueKind::FloatValue(f),
                    Raw::Bool(b) => ValueKind::BoolValue(b),
                    Raw::Time(t) => ValueKind::TimestampValue(t),
                    Raw::Null | Raw::Map(_) => continue,
                };
                ev.fields.insert(name.clone(), Value { kind: Some(kind) });
            }
            // `plan` admits only the combinations above.
            _ => return Err(FormatError::Corrupt(format!("field `{}`: unexpected value", col.name))),
        }
    }
    for (name, text) in extra {
        let bad = |reason: String| FormatError::BadValue {
            id: ev.id.clone(),
            field: name.to_owned(),
            reason: format!("in `extra`: {reason}"),
        };
        let json = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
        if let Some(kind) = json_to_kind(&json, None).map_err(bad)? {
            ev.fields.entry(name.to_owned()).or_insert(Value { kind: Some(kind) });
        }
    }
    Ok(ev)
}
