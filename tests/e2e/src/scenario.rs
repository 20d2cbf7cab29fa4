//! Fault scenarios: the pipeline under kills, rotations, Pub/Sub blackouts and storage
//! errors, checked for every event exactly once.
//!
//! A scenario writes its events in steps. At chosen steps it kills a component with `SIGKILL`
//! at a random moment (optionally rotating the log while the tailer is down) and starts it
//! again, or starts a blackout of Pub/Sub; random faults (503s, dropped connections, latency)
//! hit Pub/Sub and GCS all along. Then it waits until every hour is closed and checks the
//! buckets.
//!
//! With several exporter replicas ([`Scenario::with_replicas`]) a scenario can also pause a
//! replica with `SIGSTOP` past the ack deadline, kill one (or the one with a fixed name) and
//! start it again, and scale in; with [`Scenario::with_backlog`] its first steps pile up in
//! Pub/Sub before any exporter starts; with [`Scenario::with_moving_window`] the event time
//! moves forward as it writes, so hours close while the disruptions happen.
//!
//! With [`Scenario::with_wrong_endpoint`] the tailer starts with its `service.url` at a
//! [`WrongEndpoint`], a server that is not the event-service, and is moved to the next one and
//! at last to the event-service as an operator fixing the config would: stopped with
//! `SIGTERM`, its config rewritten, started again.

use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;
use testkit::Fault;

use crate::bins::Binaries;
use crate::config::{PipelineOptions, StorageKind};
use crate::error::{Error, Result};
use crate::loggen::{HOUR, LogGen, LogOptions};
use crate::pipeline::{Component, Pipeline};
use crate::verify::{Verification, verify};
use crate::wrong_endpoint::{WrongAnswer, WrongEndpoint};

/// One disruption, done after a step of writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disruption {
    /// `SIGKILL` a component after a random pause of up to 300 ms, then start it again.
    Kill(Component),
    /// Kill the tailer, rotate the log and write a step while it is down, start it again.
    KillTailerAndRotate,
    /// Every request to Pub/Sub fails (connections dropped) for this long.
    PubsubBlackout(Duration),
    /// `SIGSTOP` an exporter replica (best effort: one whose log says within 3 s that it is
    /// closing an hour; otherwise a random running one) and `SIGCONT` it after this long,
    /// while the steps go on.
    PauseExporter(Duration),
    /// `SIGKILL` an exporter replica without a fixed name (best effort: one closing an hour,
    /// as above) and start it again.
    KillExporterReplica,
    /// `SIGKILL` the exporter replica with a fixed `replica` name and start it again under
    /// the same name.
    KillFixedReplica,
    /// Scale in: `SIGTERM` running exporter replicas, the last first, until this many run;
    /// each must exit 0 in time. They do not come back. A paused one is continued at the end
    /// of its pause first.
    ScaleIn(usize),
}

impl Disruption {
    /// Whether it `SIGKILL`s a running process of `c` (the tailer, the event-service, or any
    /// exporter replica).
    pub fn kills(self, c: Component) -> bool {
        match self {
            Disruption::Kill(k) => k == c,
            Disruption::KillTailerAndRotate => c == Component::Tailer,
            Disruption::KillExporterReplica | Disruption::KillFixedReplica => c == Component::Exporter,
            Disruption::PubsubBlackout(_) | Disruption::PauseExporter(_) | Disruption::ScaleIn(_) => false,
        }
    }
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
    /// The exporter replicas ([`PipelineOptions::replicas`]). Default one, default name.
    pub replicas: Vec<Option<String>>,
    /// Steps written (and delivered into Pub/Sub) before any exporter starts. Default 0.
    pub backlog_steps: u32,
    /// Consecutive event-time hours of the sample; the first is `hours + 2` hours before the
    /// current one. Default 2.
    pub hours: u32,
    /// With `Some(w)`, each step writes events of only `w` consecutive hours, the window
    /// moving from the first hour to the last over the steps. Default `None` (every step
    /// spreads over all hours).
    pub window_hours: Option<u32>,
    /// Pause after each step. Default 200 ms.
    pub step_pause: Duration,
    /// Phases of a misconfigured tailer, in order: `(last_step, answer)`. The tailer starts
    /// with its `service.url` at a [`WrongEndpoint`] answering the first entry's way; after
    /// the entry's last step is written and the server has answered
    /// [`WRONG_ENDPOINT_REQUESTS`] requests (each counted by the tailer as a non-answer, and
    /// its log naming the URL), the tailer is stopped with `SIGTERM` and started again at the
    /// next entry's server, after the last entry at the event-service. Default none.
    pub wrong_endpoints: Vec<(u32, WrongAnswer)>,
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
            replicas: vec![None],
            backlog_steps: 0,
            hours: 2,
            window_hours: None,
            step_pause: Duration::from_millis(200),
            wrong_endpoints: Vec::new(),
        }
    }

    /// Adds a phase of a misconfigured tailer ending after step `last_step`: its
    /// `service.url` at a server answering every request with `answer` (see
    /// [`Scenario::wrong_endpoints`]). Phases run in the order added; the first starts with
    /// the pipeline.
    pub fn with_wrong_endpoint(mut self, last_step: u32, answer: WrongAnswer) -> Self {
        self.wrong_endpoints.push((last_step, answer));
        self
    }

    /// Adds disruption `d` after step `step`.
    pub fn with_disruption_at(mut self, step: u32, d: Disruption) -> Self {
        self.disruptions.push((step, d));
        self
    }

    /// One exporter process per entry, `Some(name)` with a fixed `replica` name.
    pub fn with_replicas(mut self, replicas: Vec<Option<String>>) -> Self {
        self.replicas = replicas;
        self
    }

    /// The first `steps` steps are written and delivered into Pub/Sub before any exporter
    /// starts.
    pub fn with_backlog(mut self, steps: u32) -> Self {
        self.backlog_steps = steps;
        self
    }

    /// Event times over `hours` hours, each step writing `window` of them, the window moving
    /// forward over the steps.
    pub fn with_moving_window(mut self, hours: u32, window: u32) -> Self {
        self.hours = hours;
        self.window_hours = Some(window.clamp(1, hours.max(1)));
        self
    }

    /// Pause after each step.
    pub fn with_step_pause(mut self, pause: Duration) -> Self {
        self.step_pause = pause;
        self
    }

    /// The exporter's idle time before it closes past hours ([`Scenario::idle_secs`]).
    pub fn with_idle_secs(mut self, secs: u64) -> Self {
        self.idle_secs = secs;
        self
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
    /// `SIGKILL`s of the tailer, event-service and exporter (all replicas).
    pub kills: [u32; 3],
    /// Exporter replicas it started with.
    pub replicas: usize,
    /// `SIGSTOP`s of exporter replicas.
    pub pauses: u32,
    /// Exporter replicas stopped for good by a scale-in.
    pub scaled_in: u32,
    /// What each exporter-replica disruption did, e.g. `step 10: SIGSTOP exporter-2 (closing)
    /// for 14s`; `(closing)` when its log said it was closing an hour just before.
    pub actions: Vec<String>,
    /// Log rotations.
    pub rotations: u32,
    /// Blackouts of Pub/Sub.
    pub blackouts: u32,
    /// Faults injected into Pub/Sub requests (blackouts included).
    pub pubsub_faults: usize,
    /// Faults injected into GCS requests.
    pub gcs_faults: usize,
    /// Phases the tailer spent pointed at a [`WrongEndpoint`].
    pub wrong_phases: u32,
    /// Requests the wrong endpoints answered.
    pub wrong_requests: u64,
    /// Answers the tailer counted as not the event-service's (`tailer_non_answers_total`)
    /// while pointed at the wrong endpoints, summed over the phases.
    pub non_answers: u64,
    /// Phases in which the tailer's log said that the wrong endpoint's URL did not answer as
    /// the event-service does.
    pub wrong_urls_logged: u32,
    /// Events the tailer counted as acknowledged (`tailer_events_acked_total`) while pointed
    /// at the wrong endpoints: 0 unless it took their answers for acknowledgements.
    pub acked_by_wrong: u64,
    /// Events the tailer counted as rejected by the service and dropped
    /// (`tailer_events_rejected_total`) while pointed at the wrong endpoints: 0 unless it took
    /// their errors for the service's.
    pub rejected_by_wrong: u64,
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
            "scenario {}: {} events, kills tailer/service/exporter {}/{}/{}, exporter replicas {} \
             (pauses {}, scaled in {}), rotations {}, blackouts {}, faults pubsub {} gcs {}, lost {}, \
             duplicated {}, other errors {}, late {}, {:.0} s: {}",
            self.name,
            self.events,
            self.kills[0],
            self.kills[1],
            self.kills[2],
            self.replicas,
            self.pauses,
            self.scaled_in,
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
        if self.wrong_phases > 0 {
            write!(
                f,
                "\n  wrong endpoints: {} phases, {} requests answered, tailer non-answers {}, URL logged in {} \
                 phases, events acknowledged meanwhile {}, rejected meanwhile {}",
                self.wrong_phases,
                self.wrong_requests,
                self.non_answers,
                self.wrong_urls_logged,
                self.acked_by_wrong,
                self.rejected_by_wrong
            )?;
        }
        for a in &self.actions {
            write!(f, "\n  {a}")?;
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

/// How long a replica about to be paused or killed is watched for a line about closing.
const CLOSING_WATCH: Duration = Duration::from_secs(3);
/// How long the backlog may take to be acknowledged by the event-service.
const BACKLOG_TIMEOUT: Duration = Duration::from_secs(60);
/// Requests a [`WrongEndpoint`] answers (and the tailer counts as non-answers) before the
/// tailer is moved on from it ([`Scenario::wrong_endpoints`]).
pub const WRONG_ENDPOINT_REQUESTS: u64 = 8;
/// What the tailer logs (with the URL) about an answer that is not the event-service's.
const NON_ANSWER_LOG: &str = "did not answer as the event-service does";
/// How long a wrong-endpoint phase may take to reach [`WRONG_ENDPOINT_REQUESTS`].
const WRONG_ENDPOINT_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `s` in `dir` against the emulator at `emulator_host`.
pub async fn run_scenario(
    s: &Scenario,
    bins: &Binaries,
    emulator_host: &str,
    dir: &std::path::Path,
) -> Result<ScenarioReport> {
    let started = Instant::now();
    let mut wrong = Vec::new();
    for (last_step, answer) in &s.wrong_endpoints {
        wrong.push((*last_step, WrongEndpoint::start(*answer).await?));
    }
    let mut opts = PipelineOptions::new(dir)
        .with_emulator_host(emulator_host)
        .with_idle_secs(s.idle_secs)
        .with_proxies(true, s.gcs.is_some())
        .with_replicas(s.replicas.clone())
        .with_deferred_exporters(s.backlog_steps > 0);
    if let Some((endpoint, bucket)) = &s.gcs {
        opts = opts.with_storage(StorageKind::Gcs { endpoint: endpoint.clone(), bucket: bucket.clone() });
    }
    if let Some((_, w)) = wrong.first() {
        opts = opts.with_tailer_url(w.url());
    }
    let mut p = Pipeline::start(opts, bins).await?;
    let mut phases = WrongPhases::default();
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
    let hours = s.hours.max(1);
    let first_hour = crate::current_hour() - i64::from(hours + 2) * HOUR;
    let mut log_opts = LogOptions::new(first_hour);
    log_opts.hours = hours;
    let mut log = LogGen::create(&p.log_path(), log_opts)?;
    let per_step = s.events.div_ceil(u64::from(s.steps.max(1)));
    let mut blackouts = 0;
    let mut scaled_in = 0;
    let mut actions = Vec::new();
    // Paused replicas and when to continue them.
    let mut paused: Vec<(usize, tokio::time::Instant)> = Vec::new();
    for step in 0..s.steps {
        if let Some(w) = s.window_hours {
            let moves = u64::from(hours - w);
            let off = moves * u64::from(step) / u64::from(s.steps.saturating_sub(1).max(1));
            log.set_window(first_hour + off as i64 * HOUR, w);
        }
        let n = per_step.min(s.events.saturating_sub(log.written().len() as u64));
        log.write(n)?;
        p.check_alive()?;
        if s.backlog_steps > 0 && step + 1 == s.backlog_steps {
            wait_acked(&p, log.written().len() as u64, BACKLOG_TIMEOUT).await?;
            p.start_exporters().await?;
        }
        let now = tokio::time::Instant::now();
        paused.retain(|(i, until)| {
            let due = *until <= now;
            if due {
                p.resume_exporter(*i);
                actions.push(format!("step {step}: SIGCONT {}", p.exporter(*i).name()));
            }
            !due
        });
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
                Disruption::PauseExporter(d) => {
                    let among = p.running_exporters();
                    if let Some((i, c)) = pick_closing(&p, &among).await {
                        p.pause_exporter(i);
                        paused.push((i, tokio::time::Instant::now() + d));
                        actions.push(format!(
                            "step {step}: SIGSTOP {}{} for {d:?}",
                            p.exporter(i).name(),
                            closing(c)
                        ));
                    }
                }
                Disruption::KillExporterReplica => {
                    let among: Vec<usize> =
                        p.running_exporters().into_iter().filter(|i| p.replica_name(*i).is_none()).collect();
                    if let Some((i, c)) = pick_closing(&p, &among).await {
                        actions.push(format!(
                            "step {step}: SIGKILL {}{}, restarted",
                            p.exporter(i).name(),
                            closing(c)
                        ));
                        p.kill_and_restart_exporter(i).await?;
                    }
                }
                Disruption::KillFixedReplica => {
                    let fixed = (0..p.exporter_count()).find(|i| p.replica_name(*i).is_some());
                    if let Some(i) = fixed.filter(|i| p.exporter(*i).starts() > 0) {
                        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..300))).await;
                        actions.push(format!(
                            "step {step}: SIGKILL {} (fixed name), restarted",
                            p.exporter(i).name()
                        ));
                        p.kill_and_restart_exporter(i).await?;
                    }
                }
                Disruption::ScaleIn(keep) => {
                    let mut running: Vec<usize> =
                        (0..p.exporter_count()).filter(|i| p.exporter_alive(*i)).collect();
                    while running.len() > keep {
                        let Some(i) = running.pop() else { break };
                        // A paused replica first gets its whole pause.
                        if let Some(at) = paused.iter().position(|(j, _)| *j == i) {
                            let (_, until) = paused.remove(at);
                            tokio::time::sleep_until(until).await;
                            p.resume_exporter(i);
                            actions.push(format!("step {step}: SIGCONT {}", p.exporter(i).name()));
                        }
                        p.terminate_exporter(i).await?;
                        actions.push(format!(
                            "step {step}: SIGTERM {} (scale-in), exited 0",
                            p.exporter(i).name()
                        ));
                        scaled_in += 1;
                    }
                }
            }
        }
        while wrong.get(phases.done).is_some_and(|(last, _)| *last <= step) {
            let next = wrong.get(phases.done + 1).map(|(_, w)| w.url());
            phases
                .end(&mut p, &wrong[phases.done].1, next.as_deref(), &format!("step {step}"), &mut actions)
                .await?;
        }
        // Spread the steps over time, so disruptions meet traffic in flight.
        tokio::time::sleep(s.step_pause).await;
    }
    // Phases planned past the last step end now.
    while phases.done < wrong.len() {
        let next = wrong.get(phases.done + 1).map(|(_, w)| w.url());
        phases.end(&mut p, &wrong[phases.done].1, next.as_deref(), "after the steps", &mut actions).await?;
    }
    if s.backlog_steps >= s.steps {
        p.start_exporters().await?;
    }
    // Paused replicas continue at their time, before the hours are awaited.
    for (i, until) in paused.drain(..) {
        tokio::time::sleep_until(until).await;
        p.resume_exporter(i);
        actions.push(format!("after the steps: SIGCONT {}", p.exporter(i).name()));
    }
    let closed = p.wait_closed(&log.buckets(), s.close_timeout).await;
    let v = verify(p.store().as_ref(), log.written(), false).await?;
    let kills =
        [p.process(Component::Tailer).kills(), p.process(Component::Service).kills(), p.exporter_kills()];
    let pauses = (0..p.exporter_count()).map(|i| p.exporter(i).pauses()).sum();
    let report = ScenarioReport {
        name: s.name.clone(),
        events: log.written().len() as u64,
        kills,
        replicas: p.exporter_count(),
        pauses,
        scaled_in,
        actions,
        rotations: log.rotations(),
        blackouts,
        pubsub_faults: p.pubsub_proxy().map_or(0, testkit::FaultProxy::faults_injected),
        gcs_faults: p.gcs_proxy().map_or(0, testkit::FaultProxy::faults_injected),
        wrong_phases: phases.done as u32,
        wrong_requests: wrong.iter().map(|(_, w)| w.requests()).sum(),
        non_answers: phases.non_answers,
        wrong_urls_logged: phases.urls_logged,
        acked_by_wrong: phases.acked,
        rejected_by_wrong: phases.rejected,
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

/// Best effort: the replica of `among` that says first (within [`CLOSING_WATCH`]) that it is
/// closing an hour (`true`), else a random one (`false`); `None` when `among` is empty.
async fn pick_closing(p: &Pipeline, among: &[usize]) -> Option<(usize, bool)> {
    if among.is_empty() {
        return None;
    }
    match p.wait_exporter_closing(among, CLOSING_WATCH).await {
        Some(i) => Some((i, true)),
        None => among.get(fastrand::usize(..among.len())).map(|i| (*i, false)),
    }
}

fn closing(c: bool) -> &'static str {
    if c { " (closing)" } else { "" }
}

/// What the tailer did while pointed at wrong endpoints, phase by phase.
#[derive(Debug, Default)]
struct WrongPhases {
    /// Phases ended.
    done: usize,
    /// Where the tailer's log stood when the current phase began.
    log_offset: u64,
    non_answers: u64,
    urls_logged: u32,
    acked: u64,
    rejected: u64,
}

impl WrongPhases {
    /// Ends the current phase, the tailer at `w`: waits until `w` has answered
    /// [`WRONG_ENDPOINT_REQUESTS`] requests, the tailer counted as many non-answers and its
    /// log said the URL did not answer as the event-service does, or until the tailer counts
    /// an event acknowledged or rejected (which it must not; the verification then finds what
    /// it lost). Then restarts the tailer at `next` (`None`: the event-service).
    async fn end(
        &mut self,
        p: &mut Pipeline,
        w: &WrongEndpoint,
        next: Option<&str>,
        when: &str,
        actions: &mut Vec<String>,
    ) -> Result<()> {
        let url = w.url();
        let deadline = tokio::time::Instant::now() + WRONG_ENDPOINT_TIMEOUT;
        let (non_answers, acked, rejected, logged) = loop {
            let non_answers = tailer_count(p, "tailer_non_answers_total").await;
            let acked = tailer_count(p, "tailer_events_acked_total").await;
            let rejected = tailer_count(p, "tailer_events_rejected_total").await;
            let logged = p
                .process(Component::Tailer)
                .log_since(self.log_offset)
                .lines()
                .any(|l| l.contains(&url) && l.contains(NON_ANSWER_LOG));
            let retried = w.requests() >= WRONG_ENDPOINT_REQUESTS && non_answers >= WRONG_ENDPOINT_REQUESTS;
            if (retried && logged) || acked > 0 || rejected > 0 {
                break (non_answers, acked, rejected, logged);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Timeout(format!(
                    "the tailer pointed at {url} ({}): after {WRONG_ENDPOINT_TIMEOUT:?} the server answered {} \
                     requests, the tailer counts {non_answers} non-answers (want {WRONG_ENDPOINT_REQUESTS} each), \
                     its log {} the URL",
                    w.answer(),
                    w.requests(),
                    if logged { "names" } else { "does not name" }
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        self.non_answers += non_answers;
        self.acked += acked;
        self.rejected += rejected;
        self.urls_logged += u32::from(logged);
        let to = next.unwrap_or("the event-service");
        actions.push(format!(
            "{when}: tailer at {url} ({}): {} requests answered, {non_answers} non-answers counted, {acked} events \
             acknowledged, {rejected} rejected, URL {}logged as not answering; SIGTERM, restarted at {to}",
            w.answer(),
            w.requests(),
            if logged { "" } else { "not " }
        ));
        self.log_offset = p.process(Component::Tailer).log_len();
        self.done += 1;
        p.restart_tailer_at(next).await
    }
}

/// A counter of the tailer's metrics, 0 when it cannot be read.
async fn tailer_count(p: &Pipeline, name: &str) -> u64 {
    p.metric(Component::Tailer, name).await.unwrap_or(0.0) as u64
}

/// Waits until the tailer counts `events` events acknowledged by the event-service (which
/// acknowledges only what Pub/Sub accepted).
async fn wait_acked(p: &Pipeline, events: u64, timeout: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let acked = p.metric(Component::Tailer, "tailer_events_acked_total").await.unwrap_or(0.0) as u64;
        if acked >= events {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Timeout(format!(
                "the tailer counts {acked} of {events} backlog events acknowledged after {timeout:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
