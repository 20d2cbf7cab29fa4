//! Line parsing and event encoding, the tailer's per-line hot path: lines/s and MB/s of
//! [`LineParser::encode`] for 200-byte lines, typed by the repo's event-type registry
//! (`config/registry.toml`):
//!
//! * `syslog_tsv_kv`: an RFC 3164 syslog line with a TSV `key=value` payload and an
//!   `event_time` column;
//! * `syslog_tsv_positional`: the same with positional columns (`columns.play`);
//! * `raw_json`: a flat JSON object per line.
//!
//! Each iteration encodes one line into a buffer that is cleared first, as the reader does.
//!
//! Run: `CARGO_TARGET_DIR=/work/target cargo bench -p tailer --bench parse`.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use event_model::Registry;
use tailer::parse::{LineMeta, LineParser, ParseRule};

/// The length of every benchmarked line.
const LINE_LEN: usize = 200;

/// `template` with `{pad}` replaced by as many `x` as make it [`LINE_LEN`] bytes long.
fn line(template: &str) -> String {
    let pad = (LINE_LEN + "{pad}".len()).checked_sub(template.len()).expect("the template fits");
    let line = template.replace("{pad}", &"x".repeat(pad));
    assert_eq!(line.len(), LINE_LEN);
    line
}

fn parser(rule: &str, registry: &Registry) -> LineParser {
    let rule: ParseRule = toml::from_str(rule).expect("rule");
    LineParser::new(&rule, Some(registry)).expect("parser")
}

fn bench(c: &mut Criterion) {
    let registry = Registry::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/registry.toml"))
        .expect("registry");
    let cases = [
        (
            "syslog_tsv_kv",
            parser("tag = \"playsvc\"", &registry),
            line(
                "Nov 23 18:05:00 web-17.prod.example.net playsvc[12345]: play\tuser=u_{pad}\t\
                 track=spotify:track:4uLU6hMCjMI75M1A2tKUQC\tms_played=184233\tshuffle=true\t\
                 event_time=2026-11-23T18:04:59.123Z",
            ),
        ),
        (
            "syslog_tsv_positional",
            parser(
                "tag = \"playsvc\"\ncolumns.play = [\"user\", \"track\", \"ms_played\", \"shuffle\", \"event_time\"]",
                &registry,
            ),
            line(
                "Nov 23 18:05:00 web-17.prod.example.net playsvc[12345]: play\tu_{pad}\t\
                 spotify:track:4uLU6hMCjMI75M1A2tKUQC\t184233\ttrue\t2026-11-23T18:04:59.123Z",
            ),
        ),
        (
            "raw_json",
            parser("format = \"raw\"\npayload = \"json\"", &registry),
            line(
                r#"{"type":"play","event_time":"2026-11-23T18:04:59.123Z","user":"u_{pad}","track":"spotify:track:4uLU6hMCjMI75M1A2tKUQC","ms_played":184233,"shuffle":true}"#,
            ),
        ),
    ];
    let meta = LineMeta {
        id: "5f0c3e0a9d2b4c71a8e6f1d2c3b4a596",
        source: "web-17.prod.example.net",
        read_time: (1_795_464_000, 0),
    };
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::ElementsAndBytes { elements: 1, bytes: LINE_LEN as u64 });
    for (name, mut parser, line) in cases {
        let mut out = Vec::with_capacity(1024);
        parser.encode(&line, &meta, &mut out).expect("the line is an event");
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                parser.encode(black_box(&line), black_box(&meta), &mut out).expect("event");
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
