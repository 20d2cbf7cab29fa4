//! Data file encoding and decoding, the exporter's CPU-heavy work per part file and per closed
//! hour: events/s of [`encode_file`] for 10,000 realistic `play` events (one hour, sorted by id,
//! typed by the repo's registry `config/registry.toml`) as Avro with zstd (the default) and
//! deflate, and as gzipped NDJSON; and of [`decode_file`] / [`decode_ids`] of the zstd file.
//!
//! Run: `CARGO_TARGET_DIR=/work/target cargo bench -p exporter --bench format`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use event_model::{Event, Registry, Value, ValueKind, deterministic_event_id};
use exporter::format::{AvroCodec, FileFormat, decode_file, decode_ids, encode_file};
use prost_types::Timestamp;

const EVENTS: usize = 10_000;

/// `n` `play` events spread over one hour from 16 hosts, sorted by id; users, tracks and play
/// times drawn from a fixed-seed xorshift generator.
fn play_events(n: usize) -> Vec<Event> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let start = 1_795_000_000 / 3600 * 3600;
    let mut events: Vec<Event> = (0..n)
        .map(|i| {
            let host = next(16);
            let at = start + (i as i64 * 3600) / n as i64;
            let nanos = next(1_000) as i32 * 1_000_000;
            let v = |kind| Value { kind: Some(kind) };
            let mut fields = BTreeMap::from([
                ("user".to_owned(), v(ValueKind::StringValue(format!("user-{:06}", next(50_000))))),
                (
                    "track".to_owned(),
                    v(ValueKind::StringValue(format!("spotify:track:{:022}", next(200_000)))),
                ),
                ("ms_played".to_owned(), v(ValueKind::IntValue(next(300_000) as i64))),
            ]);
            if next(2) == 0 {
                fields.insert("shuffle".to_owned(), v(ValueKind::BoolValue(next(2) == 0)));
            }
            Event {
                id: deterministic_event_id(&format!("web-{host:02}"), host, i as u64 * 120),
                r#type: "play".to_owned(),
                schema_version: 1,
                event_time: Some(Timestamp { seconds: at, nanos }),
                received_time: Some(Timestamp { seconds: at + 1, nanos }),
                source: format!("web-{host:02}"),
                fields,
            }
        })
        .collect();
    events.sort_by(|a, b| a.id.cmp(&b.id));
    events
}

fn bench(c: &mut Criterion) {
    let registry = Registry::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/registry.toml"))
        .expect("registry");
    let play = registry.event_type("play").expect("play").clone();
    let events = play_events(EVENTS);
    let mut g = c.benchmark_group("format");
    g.throughput(Throughput::Elements(EVENTS as u64));
    for (name, format, codec) in [
        ("encode_avro_zstd", FileFormat::Avro, AvroCodec::Zstd),
        ("encode_avro_deflate", FileFormat::Avro, AvroCodec::Deflate),
        ("encode_ndjson_gzip", FileFormat::NdjsonGzip, AvroCodec::Zstd),
    ] {
        let size = encode_file(format, codec, &play, &events).expect("encodes").bytes.len();
        eprintln!("{name}: {EVENTS} events in {size} bytes");
        g.bench_function(name, |b| b.iter(|| encode_file(format, codec, &play, black_box(&events))));
    }
    let file = encode_file(FileFormat::Avro, AvroCodec::Zstd, &play, &events).expect("encodes").bytes;
    g.bench_function("decode_avro_zstd", |b| b.iter(|| decode_file(FileFormat::Avro, black_box(&file))));
    g.bench_function("decode_ids_avro_zstd", |b| b.iter(|| decode_ids(FileFormat::Avro, black_box(&file))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
