//! The whole pipeline as real processes, for `scripts/local-pipeline` and the end-to-end
//! fault suite in `tests/`.
//!
//! [`Pipeline::start`] writes the configs into a work directory, starts the Pub/Sub emulator
//! (or uses one), optionally puts [`testkit::FaultProxy`]s in front of Pub/Sub and GCS, creates
//! the topics with `event-service registry apply`, and starts the event-service, one or more
//! exporter replicas and the tailer binary as separate processes that can be killed, paused
//! and restarted. [`LogGen`] writes the
//! sample log the tailer follows and remembers every event; [`verify`] checks the closed
//! buckets against it; [`Summary`] reports.
//!
//! ```no_run
//! # async fn demo() -> e2e::Result<()> {
//! use e2e::{Binaries, LogGen, LogOptions, Pipeline, PipelineOptions};
//! let dir = tempfile::tempdir().expect("dir");
//! let mut p = Pipeline::start(PipelineOptions::new(dir.path()), &Binaries::for_tests()?).await?;
//! let hour = e2e::sample_first_hour();
//! let mut log = LogGen::create(&p.log_path(), LogOptions::new(hour))?;
//! log.write(1000)?;
//! p.wait_closed(&log.buckets(), std::time::Duration::from_secs(120)).await?;
//! let v = e2e::verify(p.store().as_ref(), log.written(), false).await?;
//! assert!(v.ok(), "{v:?}");
//! # Ok(()) }
//! ```

mod bins;
mod config;
mod error;
mod loggen;
mod pipeline;
mod process;
mod scenario;
mod summary;
mod verify;
mod wrong_endpoint;

pub use bins::Binaries;
pub use config::{ACK_DEADLINE_SECS, PipelineOptions, StorageKind};
pub use error::{Error, Result};
pub use loggen::{BadKind, HOUR, LogGen, LogOptions, Written, unix_ms};
pub use pipeline::{Component, Pipeline, metric_sum};
pub use process::Proc;
pub use scenario::{Disruption, Scenario, ScenarioReport, WRONG_ENDPOINT_REQUESTS, run_scenario};
pub use summary::{Rejections, Summary};
pub use verify::{Verification, sample_seq, verify};
pub use wrong_endpoint::{WrongAnswer, WrongEndpoint};

/// The first of the sample's two event-time hours: four hours ago. The sample's events are
/// shuffled over both hours, so up to two hours out of order; with the exporter's lateness of
/// an hour ([`PipelineOptions::lateness_secs`]) no hour closes before the writing is done, and
/// once the exporter is idle both are past `now - lateness` and close.
pub fn sample_first_hour() -> i64 {
    current_hour() - 4 * HOUR
}

/// Start of the current UTC hour, Unix seconds.
pub fn current_hour() -> i64 {
    let now = unix_ms(std::time::SystemTime::now()) / 1000;
    now - now.rem_euclid(HOUR)
}
