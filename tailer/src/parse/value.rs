//! Typing field text by the registry: `"5000"` becomes an int when the registry says the field
//! is an int.
//!
//! A value that does not convert is sent as text: the event-service then rejects the event
//! with a precise reason (``field `ms_played` is not an int``) and dead-letters it, so nothing
//! is lost silently. The tailer only refuses lines it cannot turn into an event at all.

use std::borrow::Cow;

use event_model::FieldKind;

use super::datetime;
use crate::encode::FieldValue;

/// The value of field text of `kind` (`None`: a field the registry does not declare).
///
/// * int: an `i64` in decimal;
/// * float: a finite `f64` (`1`, `-2.5`, `1e3`);
/// * bool: `true` or `false`;
/// * timestamp: RFC 3339 or integer epoch milliseconds;
/// * string, undeclared, or text that does not convert: the text as is.
pub(crate) fn typed(text: &str, kind: Option<FieldKind>) -> FieldValue<'_> {
    let converted = match kind {
        None | Some(FieldKind::String) => None,
        Some(FieldKind::Int) => text.parse().ok().map(FieldValue::Int),
        Some(FieldKind::Float) => text.parse::<f64>().ok().filter(|f| f.is_finite()).map(FieldValue::Float),
        Some(FieldKind::Bool) => match text {
            "true" => Some(FieldValue::Bool(true)),
            "false" => Some(FieldValue::Bool(false)),
            _ => None,
        },
        Some(FieldKind::Timestamp) => datetime::rfc3339_or_millis(text).map(|(s, n)| FieldValue::Time(s, n)),
    };
    converted.unwrap_or(FieldValue::Str(Cow::Borrowed(text)))
}

/// The value of a JSON number for a field of `kind`: an integer stays an int unless the field
/// is a float (then a float) or a timestamp (then epoch milliseconds); any other number is a
/// float.
pub(crate) fn json_number(n: &serde_json::Number, kind: Option<FieldKind>) -> FieldValue<'static> {
    match (n.as_i64(), kind) {
        (Some(i), Some(FieldKind::Float)) => FieldValue::Float(i as f64),
        (Some(ms), Some(FieldKind::Timestamp)) => {
            let (s, n) = datetime::from_millis(ms);
            FieldValue::Time(s, n)
        }
        (Some(i), _) => FieldValue::Int(i),
        // serde_json numbers are finite; a u64 above i64::MAX lands here too.
        (None, _) => FieldValue::Float(n.as_f64().unwrap_or(f64::NAN)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_typed_by_kind() {
        use FieldKind as K;
        use FieldValue as V;
        let cases = [
            ("42", Some(K::Int), V::Int(42)),
            ("-7", Some(K::Int), V::Int(-7)),
            ("0", Some(K::Int), V::Int(0)),
            ("4.2", Some(K::Int), V::Str("4.2".into())),
            ("99999999999999999999", Some(K::Int), V::Str("99999999999999999999".into())),
            ("2.5", Some(K::Float), V::Float(2.5)),
            ("3", Some(K::Float), V::Float(3.0)),
            ("NaN", Some(K::Float), V::Str("NaN".into())),
            ("inf", Some(K::Float), V::Str("inf".into())),
            ("true", Some(K::Bool), V::Bool(true)),
            ("false", Some(K::Bool), V::Bool(false)),
            ("yes", Some(K::Bool), V::Str("yes".into())),
            ("2026-11-23T18:05:00Z", Some(K::Timestamp), V::Time(1_795_457_100, 0)),
            ("1795457100001", Some(K::Timestamp), V::Time(1_795_457_100, 1_000_000)),
            ("later", Some(K::Timestamp), V::Str("later".into())),
            ("42", Some(K::String), V::Str("42".into())),
            ("42", None, V::Str("42".into())),
        ];
        for (text, kind, want) in cases {
            assert_eq!(typed(text, kind), want, "{text} as {kind:?}");
        }
    }

    #[test]
    fn json_numbers_follow_the_registry() {
        let n = |s: &str| serde_json::from_str::<serde_json::Number>(s).expect("number");
        assert_eq!(json_number(&n("5"), None), FieldValue::Int(5));
        assert_eq!(json_number(&n("5"), Some(FieldKind::String)), FieldValue::Int(5));
        assert_eq!(json_number(&n("5"), Some(FieldKind::Float)), FieldValue::Float(5.0));
        assert_eq!(json_number(&n("1.5"), Some(FieldKind::Int)), FieldValue::Float(1.5));
        assert_eq!(json_number(&n("1795457100123"), Some(FieldKind::Timestamp)), {
            FieldValue::Time(1_795_457_100, 123_000_000)
        });
        assert_eq!(json_number(&n("18446744073709551615"), None), FieldValue::Float(18446744073709551615.0));
    }
}
