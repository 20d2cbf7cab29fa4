//! `loadtest`: capacity planning for the event pipeline.
//!
//! * `loadtest publish`: the producer test (offered rate, topics at weights, payload size,
//!   batching, gzip) against the emulator, a null sink in a child process, real Pub/Sub or a URL.
//! * `loadtest consume`: publishers and subscribers together at a constant or diurnal rate;
//!   end-to-end latency, lost messages and duplicates.
//! * `loadtest pipeline`: the whole pipeline at a rate (through `local-pipeline`).
//! * `loadtest null-sink`: the null sink itself.
//!
//! Live progress goes to stderr once a second; `--json` prints one JSON object as the last line
//! of stdout; `--report FILE.html` writes charts over time.

pub mod cli;
pub mod consume;
pub mod emulator;
pub mod generate;
pub mod null_sink;
pub mod pipeline;
pub mod proc_stats;
pub mod publish;
pub mod report;
pub mod stats;
pub mod summary;
