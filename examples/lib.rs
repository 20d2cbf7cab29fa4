//! Example programs for `pubsub-client`; see the `[[example]]` targets of this package:
//!
//! * `publish` — a service publishing play events, with graceful shutdown and statistics:
//!   `PUBSUB_EMULATOR_HOST=127.0.0.1:8085 cargo run -p examples --example publish -- --events 10000`
