//! The end-to-end fault suite: the real tailer, event-service and exporter binaries as
//! separate processes, the Pub/Sub emulator and fake-gcs-server behind fault-injecting proxies,
//! and in each scenario every event written must end exactly once in a closed hourly bucket,
//! with nothing extra and every manifest consistent.
//!
//! Short by default (CI); `EVENTPIPE_E2E_EVENTS=100000 cargo test -p e2e --test faults --release
//! -- --nocapture` is the long variant (RELIABILITY.md). Each scenario prints its summary.

use std::time::Duration;

use e2e::{Binaries, Component, Disruption, Scenario, run_scenario};
use testkit::{Emulator, FakeGcs};
use tokio::sync::Semaphore;

/// Scenarios running at once: each is three processes plus proxies on a 2-core machine.
static SLOTS: Semaphore = Semaphore::const_new(2);

fn events() -> u64 {
    std::env::var("EVENTPIPE_E2E_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(6000)
}

async fn check(s: Scenario) {
    let _slot = SLOTS.acquire().await.expect("semaphore");
    let bins = Binaries::for_tests().expect("binaries");
    let dir = tempfile::tempdir().expect("dir");
    let report = run_scenario(&s, &bins, &Emulator::shared().host(), dir.path()).await.expect("scenario ran");
    eprintln!("{report}");
    assert!(report.ok(), "{report}\nlost examples: {:?}", report.verification.lost_examples);
    assert_eq!(report.events, s.events, "events written");
    let planned = |c: Component| {
        s.disruptions
            .iter()
            .filter(|(_, d)| {
                *d == Disruption::Kill(c) || (c == Component::Tailer && *d == Disruption::KillTailerAndRotate)
            })
            .count() as u32
    };
    assert_eq!(
        report.kills,
        [planned(Component::Tailer), planned(Component::Service), planned(Component::Exporter)],
        "every planned kill hit a running process"
    );
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
