//! Fault scenarios: the pipeline under kills, rotations, Pub/Sub blackouts and storage
//! errors, checked for every event exactly once.
//!
//! A scenario writes its events in steps. At chosen steps it kills a component with `SIGKILL`
//! at a random moment (optionally rotating the log while the tailer is down) and starts it
//! again, or starts a blackout of Pub/Sub; random faults (503s, dropped connections, latency)
//! hit Pub/Sub and GCS all along. Then it waits until every hour is closed and checks the
//! buckets.

use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;
use testkit::Fault;

use crate::bins::Binaries;
use crate::config::{PipelineOptions, StorageKind};
use crate::error::Result;
use crate::loggen::{LogGen, LogOptions};
use crate::pipeline::{Component, Pipeline};
use crate::verify::{Verification, verify};

/// One disruption, done after a step of writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disruption {
    /// `SIGKILL` a component after a random pause of up to 300 ms, then start it again.
    Kill(Component),
    /// Kill the tailer, rotate the log and write a step while it is down, start it again.
    KillTailerAndRotate,
    /// Every request to Pub/Sub fails (connections dropped) for this long.
    PubsubBlackout(Duration),
}

/// A fault scenario.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Scenario {
    /// Its name in the report.
    pub name: String,
    /// Valid events to write.
    pub events: u64,
    /// Steps the writing is split into.
    pub steps: u32,
    /// Disruptions, each after the step with the given index.
    pub disruptions: Vec<(u32, Disruption)>,
    /// Probability of a random fault per request to Pub/Sub.
    pub pubsub_fault_rate: f64,
    /// Probability of a random fault per request to GCS (with GCS storage).
    pub gcs_fault_rate: f64,
    /// The exporter writes to this fake-gcs-server bucket: (endpoint, bucket).
    pub gcs: Option<(String, String)>,
    /// The exporter's idle time before it closes past hours.
    pub idle_secs: u64,
    /// How long the hours may take to close after the writing.
    pub close_timeout: Duration,
}

impl Scenario {
    /// `events` events in `steps` steps with no disruption, local storage.
    pub fn new(name: &str, events: u64, steps: u32) -> Scenario {
        Scenario {
            name: name.to_owned(),
            events,
            steps,
            disruptions: Vec::new(),
            pubsub_fault_rate: 0.0,
            gcs_fault_rate: 0.0,
            gcs: None,
            idle_secs: 20,
            close_timeout: Duration::from_secs(240),
        }
    }

    /// Adds `count` disruptions spread at random over the first three quarters of the steps.
    pub fn with_disruptions(mut self, count: u32, d: Disruption) -> Self {
        let last = (self.steps * 3 / 4).max(1);
        for _ in 0..count {
            self.disruptions.push((fastrand::u32(0..last), d));
        }
        self
    }

    /// Random faults on Pub/Sub requests with this probability.
    pub fn with_pubsub_faults(mut self, rate: f64) -> Self {
        self.pubsub_fault_rate = rate;
        self
    }

    /// Storage on fake-gcs-server, with random faults at this rate.
    pub fn with_gcs(mut self, endpoint: &str, bucket: &str, fault_rate: f64) -> Self {
        self.gcs = Some((endpoint.to_owned(), bucket.to_owned()));
        self.gcs_fault_rate = fault_rate;
        self
    }
}

/// What a scenario did and found.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ScenarioReport {
    /// The scenario.
    pub name: String,
    /// Valid events written.
    pub events: u64,
    /// `SIGKILL`s of the tailer, event-service and exporter.
    pub kills: [u32; 3],
    /// Log rotations.
    pub rotations: u32,
    /// Blackouts of Pub/Sub.
    pub blackouts: u32,
    /// Faults injected into Pub/Sub requests (blackouts included).
    pub pubsub_faults: usize,
    /// Faults injected into GCS requests.
    pub gcs_faults: usize,
    /// Lost events.
    pub lost: u64,
    /// Duplicated events.
    pub duplicated: u64,
    /// Unexpected or misplaced events, and manifest errors.
    pub other_errors: u64,
    /// Late events counted by the manifests.
    pub late: u64,
    /// Seconds the scenario took.
    pub seconds: f64,
    /// Why the hours did not all close in time, if they did not.
    pub error: Option<String>,
    /// The full check.
    #[serde(skip)]
    pub verification: Verification,
}

impl ScenarioReport {
    /// Nothing lost, duplicated or otherwise wrong.
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.verification.ok()
    }
}

impl fmt::Display for ScenarioReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "scenario {}: {} events, kills tailer/service/exporter {}/{}/{}, rotations {}, blackouts {}, \
             faults pubsub {} gcs {}, lost {}, duplicated {}, other errors {}, late {}, {:.0} s: {}",
            self.name,
            self.events,
            self.kills[0],
            self.kills[1],
            self.kills[2],
            self.rotations,
            self.blackouts,
            self.pubsub_faults,
            self.gcs_faults,
            self.lost,
            self.duplicated,
            self.other_errors,
            self.late,
            self.seconds,
            if self.ok() { "PASS" } else { "FAIL" }
        )?;
        if let Some(e) = &self.error {
            write!(f, " ({e})")?;
        }
        let v = &self.verification;
        if !v.folder_ok() {
            write!(
                f,
                "\n  folder reader: {} sample events read, {} duplicates, {} lost, {} files no manifest lists, \
                 {} count errors, {} hours without _SUCCESS",
                v.folder_events,
                v.folder_duplicates,
                v.folder_lost,
                v.extra_files.len(),
                v.folder_errors.len(),
                v.missing_hours.len()
            )?;
            for x in v.extra_files.iter().take(3) {
                write!(f, "\n    file no manifest lists: {x}")?;
            }
            for x in v.folder_errors.iter().take(3) {
                write!(f, "\n    {x}")?;
            }
            for x in v.missing_hours.iter().take(3) {
                write!(f, "\n    no _SUCCESS: {x}")?;
            }
        }
        Ok(())
    }
}

/// The random faults a proxy injects.
fn random_faults() -> Vec<Fault> {
    vec![
        Fault::status(503),
        Fault::status(500),
        Fault::status(429),
        Fault::DropConnection,
        Fault::DropAfterForward,
        Fault::Delay(Duration::from_millis(300)),
    ]
}

/// Runs `s` in `dir` against the emulator at `emulator_host`.
pub async fn run_scenario(
    s: &Scenario,
    bins: &Binaries,
    emulator_host: &str,
    dir: &std::path::Path,
) -> Result<ScenarioReport> {
    let started = Instant::now();
    let mut opts = PipelineOptions::new(dir)
        .with_emulator_host(emulator_host)
        .with_idle_secs(s.idle_secs)
        .with_proxies(true, s.gcs.is_some());
    if let Some((endpoint, bucket)) = &s.gcs {
        opts = opts.with_storage(StorageKind::Gcs { endpoint: endpoint.clone(), bucket: bucket.clone() });
    }
    let mut p = Pipeline::start(opts, bins).await?;
    if let Some(proxy) = p.pubsub_proxy() {
        proxy.set_recording(false);
        if s.pubsub_fault_rate > 0.0 {
            proxy.set_random_faults(s.pubsub_fault_rate, random_faults());
        }
    }
    if let Some(proxy) = p.gcs_proxy() {
        proxy.set_recording(false);
        if s.gcs_fault_rate > 0.0 {
            proxy.set_random_faults(s.gcs_fault_rate, random_faults());
        }
    }
    let mut log = LogGen::create(&p.log_path(), LogOptions::new(crate::sample_first_hour()))?;
    let per_step = s.events.div_ceil(u64::from(s.steps.max(1)));
    let mut blackouts = 0;
    for step in 0..s.steps {
        let n = per_step.min(s.events.saturating_sub(log.written().len() as u64));
        log.write(n)?;
        p.check_alive()?;
        for (_, d) in s.disruptions.iter().filter(|(at, _)| *at == step) {
            match *d {
                Disruption::Kill(c) => {
                    tokio::time::sleep(Duration::from_millis(fastrand::u64(0..300))).await;
                    p.kill_and_restart(c).await?;
                }
                Disruption::KillTailerAndRotate => {
                    tokio::time::sleep(Duration::from_millis(fastrand::u64(0..300))).await;
                    p.kill(Component::Tailer);
                    log.rotate()?;
                    log.write(per_step / 2)?;
                    p.start_component(Component::Tailer).await?;
                }
                Disruption::PubsubBlackout(d) => {
                    if let Some(proxy) = p.pubsub_proxy() {
                        proxy.blackout(d, Fault::DropConnection);
                        blackouts += 1;
                    }
                }
            }
        }
        // Spread the steps over time, so disruptions meet traffic in flight.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let closed = p.wait_closed(&log.buckets(), s.close_timeout).await;
    let v = verify(p.store().as_ref(), log.written(), false).await?;
    let kills = [Component::Tailer, Component::Service, Component::Exporter].map(|c| p.process(c).kills());
    let report = ScenarioReport {
        name: s.name.clone(),
        events: log.written().len() as u64,
        kills,
        rotations: log.rotations(),
        blackouts,
        pubsub_faults: p.pubsub_proxy().map_or(0, testkit::FaultProxy::faults_injected),
        gcs_faults: p.gcs_proxy().map_or(0, testkit::FaultProxy::faults_injected),
        lost: v.lost,
        duplicated: v.duplicates,
        other_errors: v.unexpected + v.misplaced + v.manifest_errors.len() as u64,
        late: v.late,
        seconds: started.elapsed().as_secs_f64(),
        error: closed.err().map(|e| e.to_string()),
        verification: v,
    };
    let _ = p.stop().await;
    Ok(report)
}
