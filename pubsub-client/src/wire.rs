//! The REST wire format of publish requests, built for speed.
//!
//! A publish request is `{"messages":[FRAGMENT,FRAGMENT,...]}` where each fragment is one
//! message as JSON with base64 data. The publisher encodes each message's fragment exactly once,
//! straight into the body of the batch that will carry it, and computes the fragment's length
//! beforehand without encoding, so batches are split exactly at the byte limit. The same
//! functions are public so load generators and benchmarks can build identical bodies.
//!
//! ```
//! use pubsub_client::{Message, wire::PublishBody};
//!
//! let mut body = PublishBody::new();
//! body.push(&Message::new("hello").with_attribute("k", "v"));
//! assert_eq!(
//!     &body.finish()[..],
//!     br#"{"messages":[{"data":"aGVsbG8=","attributes":{"k":"v"}}]}"#
//! );
//! ```

use std::io::Write;

use base64_simd::STANDARD;
use bytes::Bytes;

use crate::message::Message;

/// Bytes that open a publish request body.
pub const BODY_PREFIX: &[u8] = b"{\"messages\":[";
/// Bytes that close a publish request body.
pub const BODY_SUFFIX: &[u8] = b"]}";
/// Size of an empty body's envelope (prefix plus suffix).
pub const ENVELOPE_LEN: usize = BODY_PREFIX.len() + BODY_SUFFIX.len();

const DATA_OPEN: &[u8] = b"{\"data\":\"";
const DATA_CLOSE: &[u8] = b"\"";
const ATTRS_OPEN: &[u8] = b",\"attributes\":{";
const ATTRS_CLOSE: &[u8] = b"}";
const KEY_OPEN: &[u8] = b",\"orderingKey\":\"";
const KEY_CLOSE: &[u8] = b"\"";
const MESSAGE_CLOSE: &[u8] = b"}";

/// Length of `n` bytes once base64 encoded (standard alphabet, padded).
pub fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// Length of a message's JSON fragment, computed without encoding it.
pub fn encoded_len(msg: &Message) -> usize {
    let mut len = DATA_OPEN.len() + base64_len(msg.data().len()) + DATA_CLOSE.len();
    let attrs = msg.attributes();
    if !attrs.is_empty() {
        len += ATTRS_OPEN.len() + ATTRS_CLOSE.len() + attrs.len() - 1;
        for (k, v) in attrs {
            len += json_string_len(k) + 1 + json_string_len(v);
        }
    }
    if !msg.ordering_key().is_empty() {
        len += KEY_OPEN.len() + escaped_len(msg.ordering_key()) + KEY_CLOSE.len();
    }
    len + MESSAGE_CLOSE.len()
}

/// Appends a message's JSON fragment to `out`; it adds exactly [`encoded_len`] bytes.
pub fn encode_message(msg: &Message, out: &mut Vec<u8>) {
    out.extend_from_slice(DATA_OPEN);
    STANDARD.encode_append(msg.data(), out);
    out.extend_from_slice(DATA_CLOSE);
    let attrs = msg.attributes();
    if !attrs.is_empty() {
        out.extend_from_slice(ATTRS_OPEN);
        for (i, (k, v)) in attrs.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_json_string(k, out);
            out.push(b':');
            write_json_string(v, out);
        }
        out.extend_from_slice(ATTRS_CLOSE);
    }
    if !msg.ordering_key().is_empty() {
        out.extend_from_slice(KEY_OPEN);
        write_escaped(msg.ordering_key(), out);
        out.extend_from_slice(KEY_CLOSE);
    }
    out.extend_from_slice(MESSAGE_CLOSE);
}

/// A publish request body under construction.
#[derive(Debug, Clone)]
pub struct PublishBody {
    buf: Vec<u8>,
    count: usize,
}

impl Default for PublishBody {
    fn default() -> Self {
        Self::new()
    }
}

impl PublishBody {
    /// An empty body.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty body with room for `bytes` bytes before it reallocates.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes.max(ENVELOPE_LEN));
        buf.extend_from_slice(BODY_PREFIX);
        PublishBody { buf, count: 0 }
    }

    /// Number of messages in the body.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Whether no message was added yet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Length of the finished body as it is now.
    pub fn len(&self) -> usize {
        self.buf.len() + BODY_SUFFIX.len()
    }

    /// Length of the finished body if a fragment of `fragment_len` bytes were added.
    pub fn len_with(&self, fragment_len: usize) -> usize {
        self.len() + fragment_len + usize::from(self.count > 0)
    }

    /// Encodes a message straight into the body.
    pub fn push(&mut self, msg: &Message) {
        self.separator();
        encode_message(msg, &mut self.buf);
    }

    /// Appends an already encoded fragment (as produced by [`encode_message`]).
    pub fn push_encoded(&mut self, fragment: &[u8]) {
        self.separator();
        self.buf.extend_from_slice(fragment);
    }

    fn separator(&mut self) {
        if self.count > 0 {
            self.buf.push(b',');
        }
        self.count += 1;
    }

    /// Closes the body and hands it over without copying.
    pub fn finish(mut self) -> Bytes {
        self.buf.extend_from_slice(BODY_SUFFIX);
        Bytes::from(self.buf)
    }
}

/// Gzips a request body at the given level (0-9).
pub fn gzip(body: &[u8], level: u32) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        flate2::Compression::new(level.min(9)),
    );
    enc.write_all(body).unwrap_or_else(|_| unreachable!("writing to a Vec cannot fail"));
    enc.finish().unwrap_or_else(|_| unreachable!("writing to a Vec cannot fail"))
}

fn json_string_len(s: &str) -> usize {
    escaped_len(s) + 2
}

fn write_json_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    write_escaped(s, out);
    out.push(b'"');
}

#[inline]
fn escape_width(b: u8) -> usize {
    match b {
        b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
        0..=0x1f => 6,
        _ => 1,
    }
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Whether any byte of the word is a control character, `"` or `\\` (word-at-a-time).
#[inline]
fn word_needs_escape(w: u64) -> bool {
    let has_zero = |v: u64| v.wrapping_sub(LO) & !v & HI;
    // Bytes below 0x20: subtracting 0x20 borrows into the high bit (ignoring bytes >= 0x80).
    let control = w.wrapping_sub(LO * 0x20) & !w & HI;
    (control | has_zero(w ^ (LO * u64::from(b'"'))) | has_zero(w ^ (LO * u64::from(b'\\')))) != 0
}

/// Whether a string can be copied into JSON as it is.
#[inline]
fn is_plain(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        if word_needs_escape(w) {
            return false;
        }
    }
    chunks.remainder().iter().all(|&b| escape_width(b) == 1)
}

fn escaped_len(s: &str) -> usize {
    if is_plain(s.as_bytes()) { s.len() } else { s.bytes().map(escape_width).sum() }
}

fn write_escaped(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    if is_plain(bytes) {
        out.extend_from_slice(bytes);
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if escape_width(b) == 1 {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn roundtrip(msg: &Message) -> Value {
        let mut out = Vec::new();
        encode_message(msg, &mut out);
        assert_eq!(out.len(), encoded_len(msg), "encoded_len must be exact");
        serde_json::from_slice(&out).expect("fragment is valid JSON")
    }

    #[test]
    fn fragments_are_valid_json_with_exact_lengths() {
        let tricky = "quote\" back\\slash\nnew\ttab\u{1}ctl\u{1f} é ✓ \u{7f}";
        let msg = Message::new(vec![0u8, 1, 2, 255, 254])
            .with_attribute(tricky, tricky)
            .with_attribute("plain", "")
            .with_ordering_key(tricky);
        let v = roundtrip(&msg);
        assert_eq!(v["data"], "AAEC//4=");
        assert_eq!(v["attributes"][tricky], tricky);
        assert_eq!(v["attributes"]["plain"], "");
        assert_eq!(v["orderingKey"], tricky);
    }

    #[test]
    fn base64_lengths_cover_every_remainder() {
        for n in 0..10 {
            let msg = Message::new(vec![7u8; n]);
            let v = roundtrip(&msg);
            let decoded = STANDARD.decode_to_vec(v["data"].as_str().expect("string")).expect("base64");
            assert_eq!(decoded, vec![7u8; n]);
        }
    }

    #[test]
    fn bodies_join_fragments_and_predict_their_length() {
        let mut body = PublishBody::new();
        assert_eq!(body.len(), ENVELOPE_LEN);
        let msgs: Vec<Message> = (0..5).map(|i| Message::new(format!("m{i}"))).collect();
        for m in &msgs {
            let expected = body.len_with(encoded_len(m));
            body.push(m);
            assert_eq!(body.len(), expected);
        }
        assert_eq!(body.count(), 5);
        let len = body.len();
        let bytes = body.finish();
        assert_eq!(bytes.len(), len);
        let v: Value = serde_json::from_slice(&bytes).expect("valid JSON");
        assert_eq!(v["messages"].as_array().map(Vec::len), Some(5));
        assert_eq!(v["messages"][4]["data"], STANDARD.encode_to_string("m4"));
    }

    #[test]
    fn pre_encoded_fragments_give_the_same_body() {
        let msg = Message::new("abc").with_attribute("k", "v");
        let mut frag = Vec::new();
        encode_message(&msg, &mut frag);
        let mut a = PublishBody::new();
        let mut b = PublishBody::new();
        for _ in 0..3 {
            a.push(&msg);
            b.push_encoded(&frag);
        }
        assert_eq!(a.finish(), b.finish());
    }

    #[test]
    fn the_word_scan_agrees_with_the_byte_scan() {
        for b in 0..=255u8 {
            for pos in 0..12 {
                let mut v = vec![b'a'; 12];
                v[pos] = b;
                if let Ok(s) = std::str::from_utf8(&v) {
                    let slow = s.bytes().all(|c| escape_width(c) == 1);
                    assert_eq!(is_plain(s.as_bytes()), slow, "byte {b:#x} at {pos}");
                }
            }
        }
        assert!(is_plain("é ✓ \u{7f} plain text longer than eight".as_bytes()));
    }

    #[test]
    fn gzip_round_trips() {
        let data = vec![b'a'; 10_000];
        let packed = gzip(&data, 1);
        assert!(packed.len() < 200);
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&packed[..]), &mut out).expect("gunzip");
        assert_eq!(out, data);
    }
}
