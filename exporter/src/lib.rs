//! The exporter: pulls events from Pub/Sub, writes them into deduplicated hourly buckets in
//! object storage, acknowledges a message only after the object holding its event is durable
//! and certain to be part of its hour's output, and closes each hour with a `_SUCCESS`
//! manifest once the fleet's watermark has passed it. Any number of replicas share one
//! subscription.
//!
//! * An hour of a type is the folder `<type>/<YYYY-MM-DD>/<HH>/` (see [`layout`] for every
//!   object name). Once `_SUCCESS` exists it holds exactly the data files the manifest lists,
//!   plus `_`-prefixed metadata: a reader may glob it.
//! * Work in progress (parts sorted by id, seals, a closer's output, heartbeats) lives under
//!   `_staging/` and is deleted once its hour is published.
//! * Closing: a create-only seal, the listing of the hour's parts, a merge by id into staged
//!   data files, a create-only commit record, then the copy into the hour folder and
//!   `_SUCCESS` last. Writers acknowledge only when their part is certain to be listed;
//!   otherwise its events become late events of the earliest open hour.
//! * Duplicates are dropped by id within an open hour and, for a week, against the dedup
//!   record of an event's own closed hour, wherever its first copy landed.
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
mod open_hour;
mod seal;
pub mod storage;
mod store;

pub use config::{CloseConfig, Config, FilesConfig, PullConfig};
pub use error::{Error, Result};
pub use exporter::{Exporter, run};
pub use metrics::Metrics;
