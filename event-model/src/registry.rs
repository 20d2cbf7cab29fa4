//! The event-type registry: which types exist, their topics, versions and typed fields.
//!
//! ```toml
//! [types.play]
//! topic = "events-play"          # default: "events-<type>"
//! version = 2                    # default: 1
//! subscriptions = ["exporter"]   # created by `event-service registry apply`; default: ["exporter"]
//! fields.user = { type = "string", required = true }
//! fields.ms_played = { type = "int" }
//! fields.shuffle = { type = "bool" }
//! ```
//!
//! Field types: `string`, `int`, `float`, `bool`, `timestamp`. Unknown keys are errors that
//! name the key.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::Error;

/// The type of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldKind {
    /// UTF-8 text.
    String,
    /// 64-bit signed integer.
    Int,
    /// 64-bit float (integers are accepted and converted).
    Float,
    /// `true` or `false`.
    Bool,
    /// An RFC 3339 time or integer milliseconds since the Unix epoch.
    Timestamp,
}

impl FieldKind {
    /// The name used in the registry and in rejection reasons.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldKind::String => "string",
            FieldKind::Int => "int",
            FieldKind::Float => "float",
            FieldKind::Bool => "bool",
            FieldKind::Timestamp => "timestamp",
        }
    }
}

/// One declared field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    /// Field name.
    pub name: String,
    /// Its type.
    pub kind: FieldKind,
    /// Whether every event must carry it.
    pub required: bool,
}

/// One event type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventType {
    /// Type name.
    pub name: String,
    /// Pub/Sub topic id its events are published to.
    pub topic: String,
    /// Current schema version.
    pub version: u32,
    /// Subscription suffixes to create on the topic (`<topic>-<suffix>`).
    pub subscriptions: Vec<String>,
    /// Declared fields, by name.
    pub fields: BTreeMap<String, FieldSpec>,
}

/// The set of event types.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registry {
    types: BTreeMap<String, EventType>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    #[serde(default)]
    types: BTreeMap<String, RawType>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawType {
    topic: Option<String>,
    version: Option<u32>,
    subscriptions: Option<Vec<String>>,
    #[serde(default)]
    fields: BTreeMap<String, RawField>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    #[serde(rename = "type")]
    kind: FieldKind,
    #[serde(default)]
    required: bool,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn valid_topic(s: &str) -> bool {
    (3..=255).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && !s.starts_with("goog")
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.~+%".contains(c))
}

impl Registry {
    /// Parses a registry from TOML text.
    pub fn from_toml_str(text: &str) -> Result<Self, Error> {
        Self::parse(text, None)
    }

    /// Loads a registry file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| Error::Io { path: path.display().to_string(), source })?;
        Self::parse(&text, Some(path.display().to_string()))
    }

    fn parse(text: &str, path: Option<String>) -> Result<Self, Error> {
        let bad = |reason: String| Error::Registry { path: path.clone(), reason };
        let raw: RawRegistry = toml::from_str(text).map_err(|e| bad(e.to_string().trim().to_owned()))?;
        let mut types = BTreeMap::new();
        for (name, t) in raw.types {
            if !valid_name(&name) {
                return Err(bad(format!(
                    "type name `{name}` must start with a lowercase letter and use only a-z, 0-9, `_`, `-` (at most 64)"
                )));
            }
            let topic = t.topic.unwrap_or_else(|| format!("events-{name}"));
            if !valid_topic(&topic) {
                return Err(bad(format!("topic `{topic}` of type `{name}` is not a valid Pub/Sub topic id")));
            }
            let version = t.version.unwrap_or(1);
            if version == 0 {
                return Err(bad(format!("version of type `{name}` must be at least 1")));
            }
            let mut fields = BTreeMap::new();
            for (fname, f) in t.fields {
                if !valid_name(&fname) {
                    return Err(bad(format!(
                        "field name `{fname}` of type `{name}` must start with a lowercase letter and use only a-z, 0-9, `_`, `-`"
                    )));
                }
                fields.insert(fname.clone(), FieldSpec { name: fname, kind: f.kind, required: f.required });
            }
            let subscriptions = t.subscriptions.unwrap_or_else(|| vec!["exporter".to_owned()]);
            types.insert(name.clone(), EventType { name, topic, version, subscriptions, fields });
        }
        Ok(Registry { types })
    }

    /// The type called `name`.
    pub fn event_type(&self, name: &str) -> Option<&EventType> {
        self.types.get(name)
    }

    /// All types, by name.
    pub fn types(&self) -> impl Iterator<Item = &EventType> {
        self.types.values()
    }

    /// Number of types.
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// Whether there are no types.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// The topic an event goes to, if its type is known.
    pub fn topic_of(&self, event: &crate::Event) -> Option<&str> {
        self.types.get(&event.r#type).map(|t| t.topic.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_registry_parses_with_defaults() {
        let r = Registry::from_toml_str(
            r#"
            [types.play]
            version = 3
            fields.user = { type = "string", required = true }
            fields.ms = { type = "int" }
            [types.search]
            topic = "custom-search"
            subscriptions = ["exporter", "audit"]
            "#,
        )
        .expect("parses");
        let play = r.event_type("play").expect("play");
        assert_eq!((play.topic.as_str(), play.version), ("events-play", 3));
        assert_eq!(play.subscriptions, ["exporter"]);
        assert!(play.fields["user"].required);
        assert_eq!(play.fields["ms"].kind, FieldKind::Int);
        assert_eq!(r.event_type("search").expect("search").topic, "custom-search");
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn mistakes_name_the_key() {
        let cases = [
            ("[types.play]\ntopik = \"x\"", "unknown field `topik`"),
            ("[types.play]\nfields.a = { type = \"integer\" }", "unknown variant `integer`"),
            ("[types.play]\nfields.a = { type = \"int\", requird = true }", "unknown field `requird`"),
            ("[typez.play]", "unknown field `typez`"),
            ("[types.Play]", "type name `Play`"),
            ("[types.play]\ntopic = \"goog-x\"", "topic `goog-x`"),
            ("[types.play]\nversion = 0", "at least 1"),
            ("[types.play]\nfields.A = { type = \"int\" }", "field name `A`"),
        ];
        for (text, want) in cases {
            let e = Registry::from_toml_str(text).expect_err(text).to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn load_names_the_file() {
        let e = Registry::load(Path::new("/nonexistent/registry.toml")).expect_err("missing");
        assert!(e.to_string().contains("/nonexistent/registry.toml"), "{e}");
    }
}
