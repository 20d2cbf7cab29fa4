//! Publish body encoding: messages/s and bytes/s for 150-byte and 1 KiB payloads, with and
//! without gzip, side by side with two baselines in the same run:
//!
//! * `serde_json`: the straightforward REST encoding (a struct per message with base64 data,
//!   serialized with serde_json), as a generic REST client would do it;
//! * `protobuf`: the gRPC encoding used by Google's official clients (a `PublishRequest`
//!   encoded with prost, same fields as google.pubsub.v1).
//!
//! Run: `cargo bench -p pubsub-client --bench encode`. Results are in BENCHMARKS.md.

use std::collections::HashMap;
use std::hint::black_box;

use base64_simd::STANDARD;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pubsub_client::Message;
use pubsub_client::wire::{PublishBody, gzip};
use serde::Serialize;

const BATCH: usize = 1000;

/// Event-like messages: a payload of `size` bytes and the three attributes the pipeline sets.
fn messages(size: usize) -> Vec<Message> {
    let mut rng = fastrand::Rng::with_seed(42);
    (0..BATCH)
        .map(|i| {
            let data: Vec<u8> = (0..size).map(|_| rng.alphanumeric() as u8).collect();
            Message::new(data)
                .with_attribute("event_id", format!("host-7f3a9c-{i:012}"))
                .with_attribute("event_type", "play")
                .with_attribute("event_time", "2026-11-23T18:05:00.123Z")
        })
        .collect()
}

fn ours(msgs: &[Message]) -> bytes::Bytes {
    let mut body = PublishBody::with_capacity(256 * 1024);
    for m in msgs {
        body.push(m);
    }
    body.finish()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonMessage {
    data: String,
    attributes: HashMap<String, String>,
}

#[derive(Serialize)]
struct JsonRequest {
    messages: Vec<JsonMessage>,
}

fn serde_baseline(msgs: &[Message]) -> Vec<u8> {
    let req = JsonRequest {
        messages: msgs
            .iter()
            .map(|m| JsonMessage {
                data: STANDARD.encode_to_string(m.data()),
                attributes: m.attributes().iter().cloned().collect(),
            })
            .collect(),
    };
    serde_json::to_vec(&req).expect("serializes")
}

#[derive(Clone, PartialEq, prost::Message)]
struct PbMessage {
    #[prost(bytes = "bytes", tag = "1")]
    data: bytes::Bytes,
    #[prost(map = "string, string", tag = "2")]
    attributes: HashMap<String, String>,
    #[prost(string, tag = "5")]
    ordering_key: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PbRequest {
    #[prost(string, tag = "1")]
    topic: String,
    #[prost(message, repeated, tag = "2")]
    messages: Vec<PbMessage>,
}

fn protobuf_baseline(msgs: &[Message]) -> Vec<u8> {
    let req = PbRequest {
        topic: "projects/p/topics/events-play".into(),
        messages: msgs
            .iter()
            .map(|m| PbMessage {
                data: bytes::Bytes::copy_from_slice(m.data()),
                attributes: m.attributes().iter().cloned().collect(),
                ordering_key: String::new(),
            })
            .collect(),
    };
    prost::Message::encode_to_vec(&req)
}

fn bench(c: &mut Criterion) {
    for size in [150usize, 1024] {
        let msgs = messages(size);
        let payload_bytes = (size * BATCH) as u64;
        let mut group = c.benchmark_group(format!("encode_{size}B"));
        group.throughput(Throughput::Elements(BATCH as u64));
        group.bench_function(BenchmarkId::new("ours", "plain"), |b| {
            b.iter(|| black_box(ours(black_box(&msgs))))
        });
        group.bench_function(BenchmarkId::new("ours", "gzip1"), |b| {
            b.iter(|| black_box(gzip(&ours(black_box(&msgs)), 1)))
        });
        group.bench_function(BenchmarkId::new("serde_json", "plain"), |b| {
            b.iter(|| black_box(serde_baseline(black_box(&msgs))))
        });
        group.bench_function(BenchmarkId::new("protobuf", "plain"), |b| {
            b.iter(|| black_box(protobuf_baseline(black_box(&msgs))))
        });
        group.finish();
        let body = ours(&msgs);
        let packed = gzip(&body, 1);
        println!(
            "encode_{size}B: payload {payload_bytes} B, JSON body {} B ({:.2}x payload), gzip-1 {} B ({:.1}% of body)",
            body.len(),
            body.len() as f64 / payload_bytes as f64,
            packed.len(),
            100.0 * packed.len() as f64 / body.len() as f64
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
