//! The event model shared by every stage of the pipeline.
//!
//! * [`Event`] — the protobuf envelope (`proto/eventpipe/v1/event.proto`, compiled by protox
//!   and prost at build time, no system `protoc`), and [`EventBatch`], the tailer's transport.
//! * [`Registry`] — the event-type registry: each type's topic, schema version and typed fields,
//!   loaded from TOML. Adding a type is a registry change only.
//! * Validation — [`Registry::validate_json`] and [`Registry::validate_event`] turn raw events
//!   into checked, enriched [`Event`]s or a [`Rejection`] with a precise reason.
//! * [`ingest`] — the HTTP ingest contract: the answer's schema and how a sender checks it.
//! * [`deterministic_event_id`] / [`random_event_id`], and [`HourBucket`], the exporter's
//!   (event type, UTC hour) bucket key.
//!
//! This crate knows nothing of Pub/Sub; [`attributes`] gives the message attributes a
//! publisher should set.
//!
//! # Quickstart
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use event_model::{Enrichment, HourBucket, Registry};
//!
//! let registry = Registry::from_toml_str(r#"
//!     [types.play]
//!     topic = "events-play"
//!     version = 1
//!     fields.user = { type = "string", required = true }
//!     fields.ms_played = { type = "int" }
//! "#)?;
//! let now = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
//! let event = registry
//!     .validate_json(
//!         br#"{"id":"e1","type":"play","event_time":"2026-11-23T18:05:00Z","fields":{"user":"u1","ms_played":5000}}"#,
//!         &Enrichment::new(now),
//!     )
//!     .expect("valid");
//! assert_eq!(registry.topic_of(&event), Some("events-play"));
//! assert_eq!(HourBucket::of(&event).path(), "play/2026-11-23/18");
//!
//! let err = registry.validate_json(br#"{"type":"play","fields":{"ms_played":"long"}}"#, &Enrichment::new(now));
//! assert_eq!(err.unwrap_err().to_string(), "missing field `user`");
//! # Ok::<(), event_model::Error>(())
//! ```

mod bucket;
mod decode;
mod error;
mod id;
pub mod ingest;
mod registry;
mod timefmt;
mod validate;

/// Types generated from `proto/eventpipe/v1/event.proto`.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/eventpipe.v1.rs"));
}

pub use bucket::HourBucket;
pub use decode::{ArrayItemsError, json_array_items, json_array_items_at_most, ndjson_lines};
pub use error::{Error, RejectKind, Rejection};
pub use id::{EventIds, deterministic_event_id, random_event_id};
pub use proto::value::Kind as ValueKind;
pub use proto::{Event, EventBatch, Value};
pub use registry::{EventType, FieldKind, FieldSpec, Registry};
pub use timefmt::{format_rfc3339, parse_rfc3339, timestamp_from_system_time};
pub use validate::{Enrichment, MAX_ID_LEN, attributes};

/// Largest encoded event accepted by default (bytes of the protobuf `Event`).
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1024 * 1024;
