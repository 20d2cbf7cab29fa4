//! Splitting request bodies into single events, so one bad event never sinks its neighbours.

use std::cell::Cell;

use serde::Deserializer as _;
use serde::de::{Error as _, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// The elements of a JSON array body, unparsed. Fails (for the whole body) if the body is not
/// a JSON array.
pub fn json_array_items(body: &[u8]) -> Result<Vec<&RawValue>, String> {
    json_array_items_at_most(body, usize::MAX).map_err(|e| e.to_string())
}

/// Why [`json_array_items_at_most`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArrayItemsError {
    /// The body is not a JSON array.
    #[error("body is not a JSON array: {0}")]
    NotAnArray(String),
    /// The array has more items than the limit; parsing stopped at the first one past it.
    #[error("more than {0} events in one request")]
    TooMany(usize),
}

/// Like [`json_array_items`], holding at most `max` items: parsing stops at the first item
/// past the limit, so a small body of many tiny items never becomes a large vector.
pub fn json_array_items_at_most(body: &[u8], max: usize) -> Result<Vec<&RawValue>, ArrayItemsError> {
    let too_many = Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(body);
    let items = de.deserialize_seq(AtMost { max, too_many: &too_many }).and_then(|v| de.end().map(|()| v));
    items.map_err(|e| {
        if too_many.get() {
            ArrayItemsError::TooMany(max)
        } else {
            ArrayItemsError::NotAnArray(e.to_string())
        }
    })
}

struct AtMost<'c> {
    max: usize,
    too_many: &'c Cell<bool>,
}

impl<'de> Visitor<'de> for AtMost<'_> {
    type Value = Vec<&'de RawValue>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            if out.len() == self.max {
                self.too_many.set(true);
                return Err(A::Error::custom("too many items"));
            }
            out.push(item);
        }
        Ok(out)
    }
}

/// The non-empty lines of an NDJSON body (a trailing `\r` is dropped).
pub fn ndjson_lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    body.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_split_into_raw_items_even_when_items_are_odd() {
        let items = json_array_items(br#"[{"a":1}, 5, "x", {"b":[1,2]}]"#).expect("array");
        let raw: Vec<&str> = items.iter().map(|r| r.get()).collect();
        assert_eq!(raw, [r#"{"a":1}"#, "5", r#""x""#, r#"{"b":[1,2]}"#]);
        assert!(json_array_items(b"{}").is_err());
        assert!(json_array_items(b"[1,").is_err());
    }

    #[test]
    fn arrays_past_the_limit_stop_at_the_first_item_too_many() {
        assert_eq!(json_array_items_at_most(b"[1,2,3]", 3).expect("three").len(), 3);
        assert_eq!(json_array_items_at_most(b"[1,2,3]", 2).err(), Some(ArrayItemsError::TooMany(2)));
        // The error comes before the rest of the body is read.
        assert_eq!(
            json_array_items_at_most(b"[1,2,3, this is not json", 2).err(),
            Some(ArrayItemsError::TooMany(2))
        );
        assert!(matches!(json_array_items_at_most(b"[1,2] x", 5), Err(ArrayItemsError::NotAnArray(_))));
        assert!(matches!(json_array_items_at_most(b"{}", 5), Err(ArrayItemsError::NotAnArray(_))));
        let e = json_array_items(b"{}").expect_err("object");
        assert!(e.starts_with("body is not a JSON array: "), "{e}");
    }

    #[test]
    fn ndjson_skips_blank_lines() {
        let lines: Vec<&[u8]> = ndjson_lines(b"{\"a\":1}\r\n\n  \n{\"b\":2}").collect();
        assert_eq!(lines, [b"{\"a\":1}".as_slice(), b"{\"b\":2}".as_slice()]);
    }
}
