//! The compiled form of a [`ParseRule`]: per event type, its positional columns and the kinds
//! of its fields from the registry, checked once when the parser is built.

use std::collections::BTreeSet;

use event_model::{FieldKind, Registry};

use super::names::NameMap;
use super::{LineFormat, ParseRule, PayloadFormat};
use crate::{Error, Result};

/// The name of the column or key that holds the event time rather than a field.
pub(crate) const EVENT_TIME: &str = "event_time";

/// One positional TSV column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Column {
    /// The field it fills.
    pub(crate) name: String,
    /// The field's kind in the registry, if declared.
    pub(crate) kind: Option<FieldKind>,
    /// Whether it is the [`EVENT_TIME`] column.
    pub(crate) is_event_time: bool,
}

/// What the parser knows about one event type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TypeSchema {
    /// Positional TSV columns, when configured; `None` means `key=value` columns.
    pub(crate) columns: Option<Vec<Column>>,
    /// The kinds of the fields the registry declares.
    pub(crate) kinds: NameMap<FieldKind>,
}

impl TypeSchema {
    /// The registry's kind of field `name`.
    #[inline]
    pub(crate) fn kind(&self, name: &str) -> Option<FieldKind> {
        self.kinds.get(name).copied()
    }
}

/// Every type the parser knows about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Schema {
    /// The fixed event type of every line, if configured.
    pub(crate) fixed: Option<(String, TypeSchema)>,
    types: NameMap<TypeSchema>,
    unknown: TypeSchema,
}

impl Schema {
    /// The schema of the type called `name` (empty for a type neither the rule nor the registry
    /// knows).
    pub(crate) fn get(&self, name: &str) -> &TypeSchema {
        self.types.get(name).unwrap_or(&self.unknown)
    }

    /// Compiles and checks `rule` against `registry`.
    pub(crate) fn compile(rule: &ParseRule, registry: Option<&Registry>) -> Result<Schema> {
        let bad = |msg: String| Err(Error::Config(msg));
        match (&rule.tag, rule.format) {
            (Some(tag), _) if tag.is_empty() => return bad("parse.tag must not be empty".into()),
            (Some(_), LineFormat::Raw) => {
                return bad("parse.tag applies only to format = \"syslog\", not to format = \"raw\"".into());
            }
            _ => {}
        }
        if rule.payload == PayloadFormat::Json && !rule.columns.is_empty() {
            return bad("parse.columns applies only to payload = \"tsv\", not to payload = \"json\"".into());
        }
        let known = |ty: &str| registry.is_none_or(|r| r.event_type(ty).is_some());
        if let Some(ty) = &rule.event_type {
            if ty.is_empty() {
                return bad("parse.event_type must not be empty".into());
            }
            if !known(ty) {
                return bad(format!("parse.event_type `{ty}` is not a type of the event-type registry"));
            }
        }
        let mut types: NameMap<TypeSchema> = registry
            .into_iter()
            .flat_map(Registry::types)
            .map(|t| {
                let kinds = t.fields.values().map(|f| (f.name.clone(), f.kind)).collect();
                (t.name.clone(), TypeSchema { columns: None, kinds })
            })
            .collect();
        for (ty, names) in &rule.columns {
            if let Some(fixed) = rule.event_type.as_ref().filter(|f| *f != ty) {
                return bad(format!("parse.columns.{ty} is never used: event_type is fixed to `{fixed}`"));
            }
            if !known(ty) {
                return bad(format!("parse.columns.{ty}: `{ty}` is not a type of the event-type registry"));
            }
            let schema = types.get_or_insert_default(ty);
            let mut seen = BTreeSet::new();
            let mut columns = Vec::with_capacity(names.len());
            for (i, name) in names.iter().enumerate() {
                if name.is_empty() {
                    return bad(format!("parse.columns.{ty}: column {} has an empty name", i + 1));
                }
                if !seen.insert(name.as_str()) {
                    return bad(format!("parse.columns.{ty}: column `{name}` is named twice"));
                }
                let is_event_time = name == EVENT_TIME;
                if registry.is_some() && !is_event_time && schema.kind(name).is_none() {
                    return bad(format!(
                        "parse.columns.{ty}: column `{name}` is not a field of type `{ty}` in the event-type registry"
                    ));
                }
                columns.push(Column { name: name.clone(), kind: schema.kind(name), is_event_time });
            }
            schema.columns = Some(columns);
        }
        let fixed =
            rule.event_type.as_ref().map(|ty| (ty.clone(), types.get(ty).cloned().unwrap_or_default()));
        Ok(Schema { fixed, types, unknown: TypeSchema::default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        Registry::from_toml_str(
            r#"
            [types.play]
            fields.user = { type = "string", required = true }
            fields.ms = { type = "int" }
            "#,
        )
        .expect("registry")
    }

    fn rule(toml_text: &str) -> ParseRule {
        toml::from_str(toml_text).expect("rule")
    }

    #[test]
    fn columns_get_their_kinds_from_the_registry() {
        let s =
            Schema::compile(&rule("columns.play = [\"ms\", \"event_time\", \"user\"]"), Some(&registry()))
                .expect("compiles");
        let cols = s.get("play").columns.as_ref().expect("columns");
        assert_eq!(cols.len(), 3);
        assert_eq!((cols[0].kind, cols[1].is_event_time, cols[2].kind), {
            (Some(FieldKind::Int), true, Some(FieldKind::String))
        });
        assert_eq!(s.get("play").kind("ms"), Some(FieldKind::Int));
        assert_eq!(s.get("other"), &TypeSchema::default());
        assert!(s.fixed.is_none());
    }

    #[test]
    fn without_a_registry_anything_goes() {
        let s =
            Schema::compile(&rule("event_type = \"x\"\ncolumns.x = [\"a\", \"b\"]"), None).expect("compiles");
        let (name, ts) = s.fixed.as_ref().expect("fixed");
        assert_eq!(name, "x");
        assert_eq!(ts.columns.as_ref().map(Vec::len), Some(2));
        assert_eq!(ts.kind("a"), None);
    }

    #[test]
    fn mistakes_are_config_errors_that_name_the_problem() {
        let reg = registry();
        let cases = [
            ("columns.play = [\"user\", \"\"]", "parse.columns.play: column 2 has an empty name"),
            ("columns.play = [\"user\", \"user\"]", "column `user` is named twice"),
            (
                "columns.stop = [\"user\"]",
                "parse.columns.stop: `stop` is not a type of the event-type registry",
            ),
            ("columns.play = [\"mood\"]", "column `mood` is not a field of type `play`"),
            ("event_type = \"stop\"", "parse.event_type `stop` is not a type of the event-type registry"),
            ("event_type = \"\"", "parse.event_type must not be empty"),
            ("event_type = \"play\"\ncolumns.search = []", "parse.columns.search is never used"),
            ("format = \"raw\"\ntag = \"app\"", "parse.tag applies only to format = \"syslog\""),
            ("tag = \"\"", "parse.tag must not be empty"),
            (
                "payload = \"json\"\ncolumns.play = [\"user\"]",
                "parse.columns applies only to payload = \"tsv\"",
            ),
        ];
        for (text, want) in cases {
            let err = Schema::compile(&rule(text), Some(&reg)).expect_err(text);
            assert!(matches!(err, Error::Config(_)), "{text}: {err:?}");
            assert!(err.to_string().contains(want), "{text}: {err}");
        }
    }
}
