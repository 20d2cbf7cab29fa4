//! Splitting request bodies into single events, so one bad event never sinks its neighbours.

use serde_json::value::RawValue;

/// The elements of a JSON array body, unparsed. Fails (for the whole body) if the body is not
/// a JSON array.
pub fn json_array_items(body: &[u8]) -> Result<Vec<&RawValue>, String> {
    serde_json::from_slice::<Vec<&RawValue>>(body).map_err(|e| format!("body is not a JSON array: {e}"))
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
    fn ndjson_skips_blank_lines() {
        let lines: Vec<&[u8]> = ndjson_lines(b"{\"a\":1}\r\n\n  \n{\"b\":2}").collect();
        assert_eq!(lines, [b"{\"a\":1}".as_slice(), b"{\"b\":2}".as_slice()]);
    }
}
