//! The exporter: pulls events from Pub/Sub, writes them into deduplicated hourly buckets in
//! object storage, acknowledges a message only after the object holding its event is durably
//! written, and closes each hour with a `_SUCCESS` manifest once the watermark has passed it.
//!
//! * Buckets are keyed by (event type, UTC hour of `event_time`): `<type>/<YYYY-MM-DD>/<HH>/`.
//! * Part files (Avro object containers, or gzipped NDJSON) are cut by size and age, sorted by
//!   id, and created with a create-only precondition; their messages are acknowledged after.
//! * Duplicates (redeliveries, re-sent events) are dropped by id within an open hour, across
//!   its part files and restarts, and against closed hours of a recent window (their `_ids`).
//! * Closing merges the hour's part files by id into data files and writes the manifest last;
//!   an event for a closed hour is a late event, written to the earliest open hour of its type.
//!
//! # Quickstart
//!
//! ```no_run
//! use exporter::{Config, Exporter, storage::StorageConfig};
//!
//! # async fn example() -> exporter::Result<()> {
//! let config = Config::new("my-project", "registry.toml", StorageConfig::Local { path: "buckets".into() });
//! let exporter = Exporter::start(config).await?;
//! // ... until asked to stop:
//! exporter.shutdown().await?;
//! # Ok(())
//! # }
//! ```

mod bucket;
mod close;
mod config;
mod core;
mod dedup;
mod error;
mod exporter;
mod fleet;
pub mod format;
mod idcache;
pub mod layout;
pub mod manifest;
mod metrics;
mod seal;
pub mod storage;
mod store;

pub use config::{CloseConfig, Config, FilesConfig, PullConfig};
pub use error::{Error, Result};
pub use exporter::{Exporter, run};
pub use metrics::Metrics;
