//! The exporter against the real Pub/Sub emulator and a local directory: events with known
//! ids, re-published duplicates, several hours and late events end up once each in closed
//! hourly buckets whose manifests match their files.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Env, closed_ids, event, h0, manifests, wait_for, with_events};
use event_model::Event;
use exporter::Exporter;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_end_once_in_closed_hourly_buckets() {
    let env = Env::new().await;
    // 1200 events over three hours, plus 200 re-published copies of some of them.
    let events: Vec<Event> = (0..1200).map(|i| event(&format!("e{i:05}"), h0() + i * 9)).collect();
    env.publish(&events).await;
    env.publish(&events[100..300]).await;
    let exporter = Exporter::start(env.config()).await.expect("start");
    let root = env.root();
    assert!(wait_for(Duration::from_secs(60), || with_events(&root) == 3).await, "three hours closed");
    let ids = closed_ids(&root);
    assert_eq!(ids.len(), 1200, "every event once");
    if !ids.values().all(|n| *n == 1) {
        // Say where the copies are before failing.
        let dups: Vec<_> = ids.iter().filter(|(_, n)| **n > 1).map(|(k, _)| k.clone()).collect();
        for (dir, m) in manifests(&root) {
            eprintln!(
                "{} files {:?} late {} dups {}",
                dir.display(),
                m.files.iter().map(|f| (&f.name, f.events)).collect::<Vec<_>>(),
                m.late_events,
                m.duplicates_dropped
            );
            for f in &m.files {
                let bytes = std::fs::read(dir.join(&f.name)).expect("read");
                let evs =
                    exporter::format::decode_ids(exporter::format::FileFormat::Avro, &bytes).expect("ids");
                let hits: Vec<_> = evs.iter().filter(|i| dups.contains(i)).take(5).collect();
                eprintln!("  {} has {:?}", f.name, hits);
            }
        }
        panic!("no id twice: {} dups, e.g. {:?}", dups.len(), &dups[..dups.len().min(5)]);
    }
    let want: HashSet<String> = events.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids.keys().cloned().collect::<HashSet<_>>(), want);
    let hours: Vec<String> =
        (0..3).map(|i| event_model::HourBucket::at("play", h0() + i * 3600).path()).collect();
    for (dir, m) in manifests(&root).into_iter().filter(|(_, m)| m.event_count > 0) {
        let hour = dir.strip_prefix(&root).expect("under root").to_string_lossy().into_owned();
        assert!(hours.contains(&hour), "{hour} not in {hours:?}");
        assert_eq!(m.late_events, 0);
    }
    assert!(exporter.metrics().duplicates_dropped.get() >= 200);
    // Three hours with events, and the empty hours up to the watermark.
    assert!(exporter.metrics().hours_closed.get() >= 3);
    let text = exporter.metrics().render();
    for name in [
        "exporter_events_written_total",
        "exporter_hours_closed_total",
        "exporter_oldest_open_hour_overdue_seconds",
    ] {
        assert!(text.contains(name), "{name} in {text}");
    }

    // Late events for a closed hour, and a late duplicate of an exported event.
    let late: Vec<Event> = (0..10).map(|i| event(&format!("late{i}"), h0() + 60)).collect();
    env.publish(&late).await;
    env.publish(&events[5..6]).await;
    assert!(wait_for(Duration::from_secs(30), || exporter.metrics().late_events.get() >= 10).await);
    assert!(wait_for(Duration::from_secs(30), || exporter.metrics().events_written.get() >= 1210).await);
    exporter.shutdown().await.expect("shutdown");
    // Late events went to the earliest open hour of the type (the current one), not to the
    // closed first hour.
    assert_eq!(closed_ids(&root).len(), 1200, "closed hours are immutable");
    assert_eq!(with_events(&root), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_subscription_write_each_event_once() {
    let env = Env::new().await;
    let events: Vec<Event> = (0..2000).map(|i| event(&format!("r{i:05}"), h0() + i * 3)).collect();
    env.publish(&events).await;
    env.publish(&events[500..900]).await;
    let config = |name: &str| {
        let mut c = env.config().with_replica(name);
        // Hours close once both replicas have been idle for a while, not while the other
        // replica may still hold events of the hour.
        c.close.allowed_lateness_secs = 3600;
        c.close.idle_secs = 3;
        c
    };
    let a = Exporter::start(config("replica-a")).await.expect("a");
    let b = Exporter::start(config("replica-b")).await.expect("b");
    let root = env.root();
    assert!(
        wait_for(Duration::from_secs(90), || with_events(&root) == 2 && closed_ids(&root).len() == 2000)
            .await,
        "{} manifests, {} ids",
        manifests(&root).len(),
        closed_ids(&root).len()
    );
    let ids = closed_ids(&root);
    assert!(ids.values().all(|n| *n == 1), "an id twice");
    // Both replicas wrote part files, with their own names.
    let parts: Vec<String> = manifests(&root).into_iter().flat_map(|(_, m)| m.parts_merged).collect();
    assert!(parts.iter().any(|p| p.starts_with("part-replica-a-")), "{parts:?}");
    assert!(parts.iter().any(|p| p.starts_with("part-replica-b-")), "{parts:?}");
    a.shutdown().await.expect("a");
    b.shutdown().await.expect("b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_id_cache_still_writes_each_event_once() {
    let env = Env::new().await;
    // 900 events over one hour, then 300 copies: with two ids cached per hour almost every
    // copy is written again, and the merge at close must drop it.
    let events: Vec<Event> = (0..900).map(|i| event(&format!("t{i:05}"), h0() + i * 3)).collect();
    env.publish(&events).await;
    let mut config = env.config();
    config.close.dedup_cache_ids = 2;
    // Idle long enough for the copies to arrive while the hour is open.
    config.close.idle_secs = 10;
    let exporter = Exporter::start(config).await.expect("start");
    assert!(wait_for(Duration::from_secs(30), || exporter.metrics().events_written.get() >= 900).await);
    env.publish(&events[300..600]).await;
    let root = env.root();
    assert!(wait_for(Duration::from_secs(60), || with_events(&root) == 1).await, "the hour closed");
    let ids = closed_ids(&root);
    assert_eq!(ids.len(), 900, "every event");
    assert!(ids.values().all(|n| *n == 1), "no id twice");
    // The cache had forgotten the copies' ids, so they were written to part files and the
    // merge by id dropped them.
    let before_write = exporter.metrics().duplicates_dropped.get();
    assert!(before_write < 300, "the copies reached part files: only {before_write} dropped before a write");
    let (_, m) = manifests(&root).into_iter().find(|(_, m)| m.event_count > 0).expect("the hour");
    assert!(m.duplicates_dropped >= 300, "the copies are counted: {}", m.duplicates_dropped);
    exporter.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_left_open_days_ago_is_closed_at_the_next_start() {
    let env = Env::new().await;
    // Three days back: outside the 48-hour dedup window, inside the week Pub/Sub keeps messages.
    let old = h0() - 67 * 3600;
    let events: Vec<Event> = (0..300).map(|i| event(&format!("o{i:05}"), old + i * 7)).collect();
    env.publish(&events).await;
    // The first run writes the parts but never goes idle long enough to close the hour.
    let mut first = env.config();
    first.close.idle_secs = 3600;
    // Its shutdown writes what is buffered; a pull still waiting on the emulator is not
    // worth the default grace period.
    first.shutdown_timeout_secs = 2;
    let exporter = Exporter::start(first).await.expect("start");
    assert!(wait_for(Duration::from_secs(30), || exporter.metrics().events_written.get() >= 300).await);
    exporter.shutdown().await.expect("shutdown");
    let root = env.root();
    assert!(manifests(&root).is_empty(), "the first run closed nothing");
    assert!(env.part_events() >= 300, "its parts are written");
    // The next run gets no event for that hour; it must find it open and close it.
    let exporter = Exporter::start(env.config()).await.expect("restart");
    assert!(wait_for(Duration::from_secs(30), || with_events(&root) == 1).await, "closed at restart");
    let ids = closed_ids(&root);
    assert_eq!(ids.len(), 300);
    assert!(ids.values().all(|n| *n == 1));
    let hour = event_model::HourBucket::at("play", old).path();
    let (dir, _) = manifests(&root).into_iter().find(|(_, m)| m.event_count > 0).expect("the hour");
    assert!(dir.ends_with(&hour), "in {hour}");
    // Every hour from the type's first to the watermark gets a `_SUCCESS`, empty ones too:
    // a job waiting for an hour without events does not wait forever.
    let last = h0() + 3 * 3600;
    assert!(
        wait_for(Duration::from_secs(60), || {
            let closed: std::collections::HashSet<_> = manifests(&root).into_iter().map(|(d, _)| d).collect();
            (0..)
                .map(|i| old + i * 3600)
                .take_while(|h| *h <= last)
                .all(|h| closed.contains(&root.join(event_model::HourBucket::at("play", h).path())))
        })
        .await,
        "an hour between the first and the watermark has no _SUCCESS"
    );
    exporter.shutdown().await.expect("shutdown");
}
