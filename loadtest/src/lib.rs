//! `loadtest`: capacity planning for the event pipeline.
//!
//! * `loadtest publish`: the producer test (offered rate, topics at weights, payload size,
//!   batching, gzip) against the emulator, a null sink in a child process, real Pub/Sub or a URL,
//!   with `--client ours`, `official` (Google's Rust client over gRPC, the `official` feature)
//!   or `raw` (a pre-encoded REST blaster), so the three can be compared in one session
//!   (`scripts/bench-publish` does that).
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
pub mod mix;
pub mod null_sink;
#[cfg(feature = "official")]
pub mod official;
pub mod pace;
pub mod pipeline;
pub mod proc_stats;
pub mod publish;
pub mod raw;
pub mod report;
pub mod stats;
pub mod summary;
