//! The tailer: the agent on every service host that follows log files and forwards each line,
//! as an event, to the event-service. Its responsibility for a line ends when the service
//! acknowledges it; it never skips a line and survives crashes, restarts and log rotation.
//!
//! * Files are found by glob ([`SourceConfig`]) and identified by device/inode together with
//!   their first bytes, so a file renamed by rotation is recognised and read on, a new file at
//!   the same path (even one starting with the same header line) is read from the start under
//!   ids of its own, and the copy made by copytruncate yields the lines the truncation took away.
//! * Each line becomes an event by its source's [`ParseRule`] (syslog or raw lines, TSV or
//!   JSON payloads), with an id derived from (host, fingerprint of the file, byte offset), so a line re-sent
//!   after a crash carries the same id and is dropped downstream as a duplicate.
//! * Events travel in protobuf batches (gzip by default) to the event-service; failures are
//!   retried with backoff for as long as it takes, and reading pauses while the service pushes
//!   back, so memory stays bounded.
//! * The checkpoint (per file: the offset up to which every line was acknowledged, in order)
//!   is made durable every second and at shutdown; a restart resumes from it.
//!
//! # Quickstart
//!
//! ```no_run
//! use tailer::{Config, ParseRule, SourceConfig, Tailer};
//!
//! # async fn example() -> tailer::Result<()> {
//! let config = Config::new(
//!     "http://127.0.0.1:8080/v1/events",
//!     "/var/lib/eventpipe-tailer",
//!     vec![SourceConfig::new(["/var/log/app/events.log*"]).with_exclude(["*.gz"])],
//! );
//! let tailer = Tailer::start(config).await?;
//! // ... until the process is asked to stop:
//! tailer.shutdown().await?;
//! # Ok(())
//! # }
//! ```

mod batch;
mod checkpoint;
mod config;
mod encode;
mod error;
mod files;
mod fingerprint;
mod identity;
mod ledger;
pub mod limits;
mod metrics;
pub mod parse;
mod reader;
mod retry;
mod sender;
mod tailer;

pub use config::{BatchConfig, Config, ReadConfig, ServiceConfig, SourceConfig, TOKEN_ENV};
pub use error::{Error, Result};
pub use metrics::{Metrics, PathLabels, ReasonLabels, StatusLabels};
pub use parse::{LineFormat, ParseRule, PayloadFormat};
pub use tailer::{Tailer, run};
