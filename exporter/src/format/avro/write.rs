//! Writing Avro object container files.

use apache_avro::{Codec, DeflateSettings, ZstandardSettings};
use event_model::{Event, EventType, FieldKind, ValueKind};
use xxhash_rust::xxh3::xxh3_128;

use super::super::schema::{Column, EVENT_TIME, RECEIVED_TIME, avro_schema, columns};
use super::super::{AvroCodec, FormatError, extra_text, to_micros};
use super::{MAGIC, META_CODEC, META_DIGEST, META_EVENTS, META_SCHEMA, digest};

/// Uncompressed size after which a block is cut. A reader holds one decompressed block at a
/// time; each block costs a codec context (64 KiB to 1 MiB compress alike for `play` events).
const BLOCK_BYTES: usize = 256 * 1024;
const ZSTD_LEVEL: u8 = 3;

fn put_long(buf: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z > 0x7f {
        buf.push((z & 0x7f) as u8 | 0x80);
        z >>= 7;
    }
    buf.push(z as u8);
}

fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    put_long(buf, b.len() as i64);
    buf.extend_from_slice(b);
}

/// A value that fits its column.
enum Cell<'a> {
    Str(&'a str),
    Long(i64),
    Double(f64),
    Bool(bool),
}

/// `v` as a value of a column of `kind`, if it is of that kind (and a time fits in micros).
fn cell(kind: FieldKind, v: &ValueKind) -> Option<Cell<'_>> {
    match (kind, v) {
        (FieldKind::String, ValueKind::StringValue(s)) => Some(Cell::Str(s)),
        (FieldKind::Int, ValueKind::IntValue(i)) => Some(Cell::Long(*i)),
        (FieldKind::Float, ValueKind::FloatValue(f)) => Some(Cell::Double(*f)),
        (FieldKind::Bool, ValueKind::BoolValue(b)) => Some(Cell::Bool(*b)),
        (FieldKind::Timestamp, ValueKind::TimestampValue(t)) => to_micros(t).map(Cell::Long),
        _ => None,
    }
}

fn put_event(
    columns: &[Column<'_>],
    et: &EventType,
    ev: &Event,
    buf: &mut Vec<u8>,
) -> Result<(), FormatError> {
    let out_of_range =
        |field: &str| FormatError::TimeOutOfRange { id: ev.id.clone(), field: field.to_owned() };
    put_bytes(buf, ev.id.as_bytes());
    put_bytes(buf, ev.r#type.as_bytes());
    put_long(buf, i64::from(ev.schema_version));
    let event_time =
        ev.event_time.as_ref().ok_or_else(|| FormatError::MissingEventTime { id: ev.id.clone() })?;
    put_long(buf, to_micros(event_time).ok_or_else(|| out_of_range(EVENT_TIME))?);
    match &ev.received_time {
        None => put_long(buf, 0),
        Some(t) => {
            put_long(buf, 1);
            put_long(buf, to_micros(t).ok_or_else(|| out_of_range(RECEIVED_TIME))?);
        }
    }
    put_bytes(buf, ev.source.as_bytes());
    for col in columns {
        let value = ev.fields.get(&col.spec.name).and_then(|v| v.kind.as_ref());
        match value.and_then(|v| cell(col.spec.kind, v)) {
            None => put_long(buf, 0),
            Some(c) => {
                put_long(buf, 1);
                match c {
                    Cell::Str(s) => put_bytes(buf, s.as_bytes()),
                    Cell::Long(n) => put_long(buf, n),
                    Cell::Double(f) => buf.extend_from_slice(&f.to_le_bytes()),
                    Cell::Bool(b) => buf.push(u8::from(b)),
                }
            }
        }
    }
    let mut extra = Vec::new();
    for (name, v) in &ev.fields {
        let Some(kind) = &v.kind else { continue };
        if et.fields.get(name).and_then(|spec| cell(spec.kind, kind)).is_none() {
            extra.push((name, extra_text(kind).ok_or_else(|| out_of_range(name))?));
        }
    }
    if !extra.is_empty() {
        put_long(buf, extra.len() as i64);
        for (k, v) in &extra {
            put_bytes(buf, k.as_bytes());
            put_bytes(buf, v.as_bytes());
        }
    }
    put_long(buf, 0);
    Ok(())
}

fn put_block(
    codec: Codec,
    block: &mut Vec<u8>,
    count: usize,
    marker: &[u8; 16],
    data: &mut Vec<u8>,
) -> Result<(), FormatError> {
    codec
        .compress(block)
        .map_err(|e| FormatError::Encode(format!("{} compression failed: {e}", <&str>::from(codec))))?;
    put_long(data, count as i64);
    put_bytes(data, block);
    data.extend_from_slice(marker);
    block.clear();
    Ok(())
}

pub(crate) fn encode(codec: AvroCodec, et: &EventType, events: &[Event]) -> Result<Vec<u8>, FormatError> {
    let schema = serde_json::to_string(&avro_schema(et))
        .map_err(|e| FormatError::Encode(format!("the schema does not serialize: {e}")))?;
    let codec = match codec {
        AvroCodec::Zstd => Codec::Zstandard(ZstandardSettings::new(ZSTD_LEVEL)),
        AvroCodec::Deflate => Codec::Deflate(DeflateSettings::default()),
    };
    let marker = {
        let mut key = schema.clone().into_bytes();
        key.extend_from_slice(&(events.len() as u64).to_le_bytes());
        for ev in [events.first(), events.last()].into_iter().flatten() {
            put_bytes(&mut key, ev.id.as_bytes());
        }
        xxh3_128(&key).to_le_bytes()
    };
    let columns = columns(et);
    let mut data = Vec::new();
    let mut block = Vec::with_capacity(BLOCK_BYTES + BLOCK_BYTES / 4);
    let mut count = 0;
    for ev in events {
        if ev.r#type != et.name {
            return Err(FormatError::MixedTypes {
                id: ev.id.clone(),
                found: ev.r#type.clone(),
                expected: et.name.clone(),
            });
        }
        put_event(&columns, et, ev, &mut block)?;
        count += 1;
        if block.len() >= BLOCK_BYTES {
            put_block(codec, &mut block, count, &marker, &mut data)?;
            count = 0;
        }
    }
    if count > 0 {
        put_block(codec, &mut block, count, &marker, &mut data)?;
    }
    let codec_name = <&str>::from(codec);
    let n_events = events.len().to_string();
    let digest = digest(schema.as_bytes(), codec_name.as_bytes(), &marker, &data);
    // Sorted by key, so the header is the same for the same content.
    let meta = [
        (META_CODEC, codec_name),
        (META_SCHEMA, schema.as_str()),
        (META_EVENTS, n_events.as_str()),
        (META_DIGEST, digest.as_str()),
    ];
    let mut out = Vec::with_capacity(MAGIC.len() + schema.len() + 128 + data.len());
    out.extend_from_slice(MAGIC);
    put_long(&mut out, meta.len() as i64);
    for (k, v) in meta {
        put_bytes(&mut out, k.as_bytes());
        put_bytes(&mut out, v.as_bytes());
    }
    put_long(&mut out, 0);
    out.extend_from_slice(&marker);
    out.extend_from_slice(&data);
    Ok(out)
}
