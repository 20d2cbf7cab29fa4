//! Avro object container files.
//!
//! Written directly ([`write`](mod@write)): a header with sorted metadata and a sync marker
//! derived from the content (so the same events give the same bytes), records encoded straight
//! from the events (no intermediate `apache_avro::types::Value`s), blocks compressed with
//! apache-avro's codecs. Read by a decoder driven by the schema in the file
//! ([`record`](mod@record)), which turns records into events, or skips everything but the id
//! for [`decode_ids`].

mod record;
mod write;

use std::collections::BTreeMap;

use apache_avro::{Codec, DeflateSettings, ZstandardSettings};
use event_model::Event;
use xxhash_rust::xxh3::Xxh3Default;

use super::FormatError;
use record::{Col, Raw, Role, plan, read_event};
pub(super) use write::encode;

const MAGIC: &[u8; 4] = b"Obj\x01";
const META_CODEC: &str = "avro.codec";
const META_SCHEMA: &str = "avro.schema";
const META_EVENTS: &str = "eventpipe.events";
const META_DIGEST: &str = "eventpipe.xxh3";

/// The digest in the header: xxh3-64 of the schema, the codec name, the sync marker and the
/// blocks, as 16 hex digits.
fn digest(schema: &[u8], codec: &[u8], marker: &[u8], blocks: &[u8]) -> String {
    let mut h = Xxh3Default::new();
    for part in [schema, codec, marker, blocks] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part);
    }
    format!("{:016x}", h.digest())
}

/// A cursor over Avro binary data; errors are reasons for [`FormatError::Corrupt`].
struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn long(&mut self) -> Result<i64, String> {
        let mut z: u64 = 0;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.buf.split_first().ok_or("truncated")?;
            self.buf = rest;
            z |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok((z >> 1) as i64 ^ -((z & 1) as i64));
            }
        }
        Err("variable-length integer longer than 10 bytes".to_owned())
    }

    fn len(&mut self) -> Result<usize, String> {
        let n = self.long()?;
        usize::try_from(n).map_err(|_| format!("negative length {n}"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.buf.len() {
            return Err(format!("truncated: {n} bytes needed, {} left", self.buf.len()));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.len()?;
        self.take(n)
    }

    fn str(&mut self) -> Result<&'a str, String> {
        std::str::from_utf8(self.bytes()?).map_err(|e| format!("invalid UTF-8: {e}"))
    }

    /// The entry count of the next map block (0 at the end), skipping a block's byte size.
    fn map_block(&mut self) -> Result<u64, String> {
        let n = self.long()?;
        if n < 0 {
            self.long()?;
        }
        Ok(n.unsigned_abs())
    }
}

struct Header<'a> {
    schema: &'a str,
    codec: Codec,
    marker: &'a [u8],
    events: Option<u64>,
    blocks: &'a [u8],
}

fn header(bytes: &[u8]) -> Result<Header<'_>, FormatError> {
    let rest = bytes.strip_prefix(MAGIC).ok_or(FormatError::NotAvro)?;
    let corrupt = |e: String| FormatError::Corrupt(format!("header: {e}"));
    let mut r = Cursor { buf: rest };
    let mut meta = BTreeMap::new();
    loop {
        let n = r.map_block().map_err(corrupt)?;
        if n == 0 {
            break;
        }
        for _ in 0..n {
            let k = r.str().map_err(corrupt)?;
            meta.insert(k, r.bytes().map_err(corrupt)?);
        }
    }
    let marker = r.take(16).map_err(corrupt)?;
    let text = |key: &str| -> Result<Option<&str>, FormatError> {
        meta.get(key)
            .map(|v| std::str::from_utf8(v).map_err(|_| corrupt(format!("`{key}` is not UTF-8"))))
            .transpose()
    };
    let schema = text(META_SCHEMA)?.ok_or_else(|| corrupt(format!("no `{META_SCHEMA}`")))?;
    let codec_name = text(META_CODEC)?.unwrap_or("null");
    let codec = match codec_name {
        "null" => Codec::Null,
        "deflate" => Codec::Deflate(DeflateSettings::default()),
        "zstandard" => Codec::Zstandard(ZstandardSettings::default()),
        other => return Err(FormatError::Unsupported(format!("codec `{other}`"))),
    };
    let events = match text(META_EVENTS)? {
        None => None,
        Some(n) => Some(n.parse().map_err(|_| corrupt(format!("`{META_EVENTS}` is `{n}`")))?),
    };
    if let Some(expected) = text(META_DIGEST)? {
        let actual = digest(schema.as_bytes(), codec_name.as_bytes(), marker, r.buf);
        if actual != expected {
            return Err(FormatError::DigestMismatch { expected: expected.to_owned(), actual });
        }
    }
    Ok(Header { schema, codec, marker, events, blocks: r.buf })
}

/// The blocks of a file (event count, compressed data), with their markers and the total count
/// checked.
fn blocks<'a>(h: &Header<'a>) -> Result<Vec<(usize, &'a [u8])>, FormatError> {
    let mut r = Cursor { buf: h.blocks };
    let mut out = Vec::new();
    let mut total = 0u64;
    while !r.buf.is_empty() {
        let i = out.len();
        let corrupt = |e: String| FormatError::Corrupt(format!("block {i}: {e}"));
        let count = r.len().map_err(corrupt)?;
        let data = r.bytes().map_err(corrupt)?;
        if r.take(16).map_err(corrupt)? != h.marker {
            return Err(corrupt("wrong sync marker".to_owned()));
        }
        total = total.saturating_add(count as u64);
        out.push((count, data));
    }
    match h.events {
        Some(n) if n != total => {
            Err(FormatError::Corrupt(format!("the header says {n} events, the blocks hold {total}")))
        }
        _ => Ok(out),
    }
}

/// Decompresses block `b` and calls `f` on each of its `count` records, appending to `out`.
fn read_block<T>(
    codec: Codec,
    plan: &[Col],
    b: usize,
    count: usize,
    data: &[u8],
    out: &mut Vec<T>,
    f: &mut impl FnMut(&mut Cursor<'_>, &[Col]) -> Result<T, FormatError>,
) -> Result<(), FormatError> {
    let mut raw = data.to_vec();
    codec
        .decompress(&mut raw)
        .map_err(|e| FormatError::Corrupt(format!("block {b}: cannot decompress: {e}")))?;
    let mut r = Cursor { buf: &raw };
    // Every record takes at least a byte (its id's length), so a bad count cannot make this huge.
    out.reserve(count.min(raw.len()));
    for i in 0..count {
        out.push(f(&mut r, plan).map_err(|e| match e {
            FormatError::Corrupt(m) => FormatError::Corrupt(format!("block {b}, record {i}: {m}")),
            other => other,
        })?);
    }
    if !r.buf.is_empty() {
        return Err(FormatError::Corrupt(format!(
            "block {b}: {} bytes left after its {count} records",
            r.buf.len()
        )));
    }
    Ok(())
}

/// Checks a file and calls `f` on each record, in order.
fn read_records<T>(
    bytes: &[u8],
    mut f: impl FnMut(&mut Cursor<'_>, &[Col]) -> Result<T, FormatError>,
) -> Result<Vec<T>, FormatError> {
    let h = header(bytes)?;
    let blocks = blocks(&h)?;
    let plan = plan(h.schema)?;
    let mut out = Vec::new();
    for (b, (count, data)) in blocks.into_iter().enumerate() {
        read_block(h.codec, &plan, b, count, data, &mut out, &mut f)?;
    }
    Ok(out)
}

/// A file's events decoded one block at a time; the header, the digest and the block framing
/// are checked when it is made.
pub(super) struct Blocks<'a> {
    codec: Codec,
    plan: Vec<Col>,
    blocks: std::iter::Enumerate<std::vec::IntoIter<(usize, &'a [u8])>>,
}

impl Iterator for Blocks<'_> {
    type Item = Result<Vec<Event>, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (b, (count, data)) = self.blocks.next()?;
        let mut out = Vec::new();
        Some(read_block(self.codec, &self.plan, b, count, data, &mut out, &mut read_event).map(|()| out))
    }
}

/// The events of `bytes`, one block at a time.
pub(super) fn blocks_of(bytes: &[u8]) -> Result<Blocks<'_>, FormatError> {
    let h = header(bytes)?;
    let blocks = blocks(&h)?;
    let plan = plan(h.schema)?;
    Ok(Blocks { codec: h.codec, plan, blocks: blocks.into_iter().enumerate() })
}

pub(super) fn decode(bytes: &[u8]) -> Result<Vec<Event>, FormatError> {
    read_records(bytes, read_event)
}

pub(super) fn decode_ids(bytes: &[u8]) -> Result<Vec<String>, FormatError> {
    read_records(bytes, |r, plan| {
        let mut id = String::new();
        for col in plan {
            let corrupt = |e: String| FormatError::Corrupt(format!("field `{}`: {e}", col.name));
            if matches!(col.role, Role::Id) {
                if let Raw::Str(s) = r.value(col).map_err(corrupt)? {
                    s.clone_into(&mut id);
                }
            } else {
                r.skip(col).map_err(corrupt)?;
            }
        }
        Ok(id)
    })
}
