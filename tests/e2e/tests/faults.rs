//! The end-to-end fault suite: the real tailer, event-service and exporter binaries as
//! separate processes, the Pub/Sub emulator and fake-gcs-server behind fault-injecting proxies,
//! and in each scenario every event written must end exactly once in a closed hourly bucket,
//! with nothing extra and every manifest consistent.
//!
//! Short by default (CI); `EVENTPIPE_E2E_EVENTS=100000 cargo test -p e2e --test faults --release
//! -- --nocapture` is the long variant (RELIABILITY.md). Each scenario prints its summary.

use std::time::Duration;

use e2e::{
    ACK_DEADLINE_SECS, Binaries, Component, Disruption, Scenario, ScenarioReport, WRONG_ENDPOINT_REQUESTS,
    WrongAnswer, run_scenario,
};
use testkit::{Emulator, FakeGcs};
use tokio::sync::Semaphore;

/// Scenarios running at once: each is three processes plus proxies on a 2-core machine.
static SLOTS: Semaphore = Semaphore::const_new(2);

fn events() -> u64 {
    std::env::var("EVENTPIPE_E2E_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(6000)
}

async fn check(s: Scenario) -> ScenarioReport {
    check_in_slots(s, 1).await
}

/// Runs `s` holding `slots` of [`SLOTS`] (a scenario with more processes takes more).
async fn check_in_slots(s: Scenario, slots: u32) -> ScenarioReport {
    let _slot = SLOTS.acquire_many(slots).await.expect("semaphore");
    let bins = Binaries::for_tests().expect("binaries");
    let dir = tempfile::tempdir().expect("dir");
    let report = run_scenario(&s, &bins, &Emulator::shared().host(), dir.path()).await.expect("scenario ran");
    eprintln!("{report}");
    if !report.ok() {
        // The run's files (logs, checkpoints, buckets with their staging) are what explains it.
        let kept = dir.keep();
        panic!(
            "{report}\nlost examples: {:?}\nrun kept in {}",
            report.verification.lost_whereabouts,
            kept.display()
        );
    }
    assert_eq!(report.events, s.events, "events written");
    let planned = |c: Component| s.disruptions.iter().filter(|(_, d)| d.kills(c)).count() as u32;
    assert_eq!(
        report.kills,
        [planned(Component::Tailer), planned(Component::Service), planned(Component::Exporter)],
        "every planned kill hit a running process"
    );
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tailer_killed_and_log_rotated_while_it_is_down() {
    check(
        Scenario::new("tailer", events(), 12)
            .with_disruptions(3, Disruption::Kill(Component::Tailer))
            .with_disruptions(1, Disruption::KillTailerAndRotate),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_service_killed() {
    check(
        Scenario::new("event-service", events(), 12)
            .with_disruptions(3, Disruption::Kill(Component::Service)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporter_killed() {
    check(Scenario::new("exporter", events(), 12).with_disruptions(3, Disruption::Kill(Component::Exporter)))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_blackout_and_flaky_requests() {
    check(
        Scenario::new("pubsub", events(), 12)
            .with_disruptions(1, Disruption::PubsubBlackout(Duration::from_secs(6)))
            .with_pubsub_faults(0.05),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_errors() {
    let gcs = FakeGcs::shared();
    let bucket = gcs.create_unique_bucket("e2e");
    check(Scenario::new("gcs", events(), 12).with_gcs(&gcs.endpoint(), &bucket, 0.2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_at_once() {
    let gcs = FakeGcs::shared();
    let bucket = gcs.create_unique_bucket("e2e-all");
    check(
        Scenario::new("everything", events(), 16)
            .with_gcs(&gcs.endpoint(), &bucket, 0.1)
            .with_pubsub_faults(0.03)
            .with_disruptions(2, Disruption::Kill(Component::Tailer))
            .with_disruptions(1, Disruption::KillTailerAndRotate)
            .with_disruptions(2, Disruption::Kill(Component::Service))
            .with_disruptions(2, Disruption::Kill(Component::Exporter))
            .with_disruptions(1, Disruption::PubsubBlackout(Duration::from_secs(5))),
    )
    .await;
}

/// The tailer's `service.url` at a server that is not the event-service: first one answering
/// every request `200 {}` (a tailer taking any `200` for an acknowledgement lost every line to
/// it), then, after a restart, one answering an HTML `400` page (a TLS port spoken to in plain
/// HTTP; a tailer taking any `400` for the service's "bad batch" split and dropped every
/// event), each while steps are written and until it has answered
/// [`WRONG_ENDPOINT_REQUESTS`] requests; then the tailer is stopped and started at the
/// event-service, as an operator does after fixing the config. Nothing may have been
/// acknowledged meanwhile, so every event still arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tailer_pointed_at_a_wrong_endpoint() {
    let report = check(
        Scenario::new("wrong-endpoint", events(), 12)
            .with_wrong_endpoint(2, WrongAnswer::EmptyObject)
            .with_wrong_endpoint(4, WrongAnswer::Html400),
    )
    .await;
    assert_eq!(report.wrong_phases, 2, "{report}");
    assert_eq!(report.acked_by_wrong, 0, "nothing acknowledged by a wrong endpoint: {report}");
    assert_eq!(report.rejected_by_wrong, 0, "nothing dropped as rejected by a wrong endpoint: {report}");
    assert!(
        report.non_answers >= 2 * WRONG_ENDPOINT_REQUESTS,
        "the tailer counted the non-answers: {report}"
    );
    assert_eq!(report.wrong_urls_logged, 2, "the tailer logged each wrong URL as not answering: {report}");
}

/// Acceptance of "exporter: exactly once with many replicas": three exporter replicas on one
/// subscription (two with the default random name, one named `fixed`), six hours of event
/// time moving forward so hours close during the run, the first fifth written as a backlog
/// before any exporter starts; one replica paused with `SIGSTOP` past the ack deadline
/// (best effort: while it closes an hour), one killed and restarted (same), the fixed one
/// killed and restarted twice under its name, and a scale-in from three to one (`SIGTERM`).
///
/// A run of this scenario found a loss now held deterministically in `exporter/tests/race.rs`
/// (`a_part_staged_after_the_seal_by_a_dead_writer_makes_no_duplicates`): a part staged after
/// a closer's listing, by a writer killed while it waited for the commit, made another
/// replica drop the redelivered events as copies of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas() {
    let pause = Duration::from_secs(u64::from(ACK_DEADLINE_SECS) + 4);
    let report = check_in_slots(
        Scenario::new("replicas", events(), 40)
            .with_replicas(vec![None, None, Some("fixed".to_owned())])
            .with_backlog(8)
            .with_moving_window(6, 2)
            .with_step_pause(Duration::from_millis(600))
            // What a paused or scaled-in replica held comes back after its lease lapses (the
            // ack deadline), and the emulator hands a lapsed message only to a pull started
            // after that (up to the 30 s pull timeout later): with less idle time the last
            // replica closes the past hours first and those events become late events of
            // the clock's hour, still open when the check runs.
            .with_idle_secs(u64::from(ACK_DEADLINE_SECS) + 35)
            // The window moves an hour every ten steps; the first hours close from step 20 on.
            .with_disruption_at(12, Disruption::KillFixedReplica)
            .with_disruption_at(21, Disruption::PauseExporter(pause))
            .with_disruption_at(26, Disruption::KillFixedReplica)
            .with_disruption_at(31, Disruption::KillExporterReplica)
            .with_disruption_at(35, Disruption::ScaleIn(1)),
        2,
    )
    .await;
    assert_eq!(report.replicas, 3);
    assert_eq!(report.pauses, 1, "one replica paused");
    assert_eq!(report.scaled_in, 2, "scaled in from three replicas to one");
    assert!(report.verification.buckets_closed >= 12, "six hours of two types: {report}");
}
