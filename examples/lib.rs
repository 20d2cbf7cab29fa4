//! Example programs for `pubsub-client`; see the `[[example]]` targets of this package:
//!
//! * `publish` — a service publishing play events, with graceful shutdown and statistics:
//!   `PUBSUB_EMULATOR_HOST=127.0.0.1:8085 cargo run -p examples --example publish -- --events 10000`
//! * `tailer_bench` — read + parse + send throughput of the tailer (MB/s, lines/s, CPU per line)
//!   against a counting ingest sink in a child process; figures in `BENCHMARKS.md`:
//!   `cargo run --release -p examples --example tailer_bench -- --lines 5000000 [--gzip] [--json]`
//! * `export_bench` — export throughput of the exporter (events/s, CPU per event) draining a
//!   pre-filled subscription on the Pub/Sub emulator; figures in `BENCHMARKS.md`:
//!   `cargo run --release -p examples --example export_bench -- --events 200000 [--storage memory] [--json]`
