//! The exporter's rules under what users do: a fixed replica name restarted, event times far
//! in the past or future, an hour only a scaled-in replica saw, a late copy redelivered after
//! the hour it landed in closed, a storage outage longer than a dead-letter policy allows, and
//! an hour whose parts have two formats (a config change mid-hour).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Env, closed_ids, event, h0, hour_folders, manifests, wait_for, with_events};
use exporter::Exporter;
use exporter::format::FileFormat;

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_replica_name_restarted_loses_nothing() {
    let env = Env::new().await;
    let events: Vec<_> = (0..600).map(|i| event(&format!("f{i:05}"), h0() + i * 5)).collect();
    let mut config = env.config().with_replica("fixed");
    // Nothing closes while the two runs write.
    config.close.idle_secs = 3600;
    config.shutdown_timeout_secs = 2;
    env.publish(&events[..300]).await;
    let first = Exporter::start(config.clone()).await.expect("first");
    assert!(wait_for(Duration::from_secs(30), || first.metrics().events_written.get() >= 300).await);
    first.kill();
    // The restart, under the same name, writes new events: its parts must not be taken for
    // the first run's (same name, same sequence numbers).
    env.publish(&events[300..]).await;
    let second = Exporter::start(config.clone()).await.expect("second");
    assert!(wait_for(Duration::from_secs(30), || second.metrics().events_written.get() >= 300).await);
    second.shutdown().await.expect("shutdown");
    config.close.idle_secs = 1;
    let third = Exporter::start(config).await.expect("third");
    let root = env.root();
    assert!(
        wait_for(Duration::from_secs(60), || closed_ids(&root).len() == 600).await,
        "{} of 600 events closed",
        closed_ids(&root).len()
    );
    assert!(closed_ids(&root).values().all(|n| *n == 1), "an id twice");
    third.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_dated_far_back_or_ahead_neither_open_nor_hold_hours() {
    let env = Env::new().await;
    let mut old = event("too-old", now() - 24 * 3600);
    old.received_time = Some(prost_types::Timestamp { seconds: h0() + 10, nanos: 0 });
    let mut future = event("future", now() + 3 * 24 * 3600);
    future.received_time = Some(prost_types::Timestamp { seconds: h0() + 20, nanos: 0 });
    env.publish(&[old, future]).await;
    let events: Vec<_> = (0..600).map(|i| event(&format!("n{i:05}"), h0() + i * 15)).collect();
    env.publish(&events).await;
    let mut config = env.config();
    config.close.max_event_age_hours = 12;
    let exporter = Exporter::start(config).await.expect("start");
    let root = env.root();
    assert!(wait_for(Duration::from_secs(60), || with_events(&root) >= 3).await, "the hours closed");
    let ids = closed_ids(&root);
    assert_eq!(exporter.metrics().events_too_old.get(), 1);
    assert_eq!(exporter.metrics().events_future.get(), 1);
    // The future event is in the hour it was received in, not in a future hour.
    assert_eq!(ids.get("future"), Some(&1));
    let first = event_model::HourBucket::at("play", h0()).path();
    let (_, m) = manifests(&root).into_iter().find(|(d, _)| d.ends_with(&first)).expect("first hour");
    assert!(m.event_count >= 241, "the future event placed at its receive time: {}", m.event_count);
    // Nothing a day back or days ahead: every hour folder is within the events' hours and now.
    for folder in hour_folders(&root) {
        let at = manifests(&root).iter().any(|(d, _)| d.ends_with(&folder));
        assert!(at, "{folder} has no _SUCCESS");
        assert!(folder.as_str() >= first.as_str(), "{folder} opened before the oldest allowed hour");
        assert!(
            folder.as_str() <= event_model::HourBucket::at("play", now()).path().as_str(),
            "{folder} in the future"
        );
    }
    exporter.shutdown().await.expect("shutdown");
    // The old one is not lost: it is a late event of an open hour (the current one), held in
    // staging until that hour closes.
    assert!(env.part_events() >= 1 || ids.contains_key("too-old"), "the old event is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_only_a_scaled_in_replica_saw_is_closed_by_another() {
    let env = Env::new().await;
    let events: Vec<_> = (0..300).map(|i| event(&format!("s{i:05}"), h0() + i * 7)).collect();
    env.publish(&events).await;
    let mut a = env.config().with_replica("going");
    a.close.idle_secs = 3600;
    a.shutdown_timeout_secs = 2;
    let going = Exporter::start(a).await.expect("a");
    assert!(wait_for(Duration::from_secs(30), || going.metrics().events_written.get() >= 300).await);
    going.shutdown().await.expect("scale-in");
    let root = env.root();
    assert_eq!(with_events(&root), 0, "the scaled-in replica closed nothing");
    // The one left never receives an event of that hour; it learns of it from staging.
    let staying = Exporter::start(env.config().with_replica("staying")).await.expect("b");
    assert!(wait_for(Duration::from_secs(30), || with_events(&root) == 1).await, "the hour was stranded");
    assert_eq!(closed_ids(&root).len(), 300);
    staying.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_copy_redelivered_after_its_landing_hour_closed_is_dropped() {
    let env = Env::new().await;
    let events: Vec<_> = (0..300).map(|i| event(&format!("l{i:05}"), h0() + i * 7)).collect();
    env.publish(&events).await;
    // Run 1 keeps the watermark three hours back: the first hours close, the late event lands
    // in a later hour that stays open.
    let mut config = env.config();
    config.close.allowed_lateness_secs = 3 * 3600;
    config.shutdown_timeout_secs = 2;
    let run1 = Exporter::start(config.clone()).await.expect("run 1");
    let root = env.root();
    assert!(wait_for(Duration::from_secs(60), || with_events(&root) == 1).await, "the first hour closed");
    let late = event("late-one", h0() + 60);
    env.publish(std::slice::from_ref(&late)).await;
    assert!(wait_for(Duration::from_secs(30), || run1.metrics().late_events.get() >= 1).await);
    assert!(wait_for(Duration::from_secs(30), || env.part_events() >= 1).await, "the late event is written");
    run1.shutdown().await.expect("shutdown");
    // Run 2 closes the hour the late event landed in; then a copy of it is redelivered.
    config.close.allowed_lateness_secs = 0;
    let run2 = Exporter::start(config).await.expect("run 2");
    assert!(
        wait_for(Duration::from_secs(60), || closed_ids(&root).contains_key("late-one")).await,
        "its hour closed"
    );
    assert!(wait_for(Duration::from_secs(30), || env.part_events() == 0).await, "staging cleaned");
    let before = run2.metrics().duplicates_dropped.get();
    env.publish(std::slice::from_ref(&late)).await;
    assert!(
        wait_for(Duration::from_secs(30), || run2.metrics().duplicates_dropped.get() > before).await,
        "the copy was not recognised by its own hour's dedup record"
    );
    assert_eq!(env.part_events(), 0, "the copy was written to a third hour");
    assert_eq!(closed_ids(&root).get("late-one"), Some(&1));
    run2.shutdown().await.expect("shutdown");
}

/// A local store that fails every request while `down` is set.
#[derive(Debug)]
struct Outage {
    inner: Arc<dyn object_store::ObjectStore>,
    down: Arc<AtomicBool>,
}

impl std::fmt::Display for Outage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outage")
    }
}

impl Outage {
    fn check(&self) -> object_store::Result<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(object_store::Error::Generic {
                store: "outage",
                source: "503 service unavailable".into(),
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl object_store::ObjectStore for Outage {
    async fn put_opts(
        &self,
        location: &object_store::path::Path,
        payload: object_store::PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        self.check()?;
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &object_store::path::Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.check()?;
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &object_store::path::Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        self.check()?;
        self.inner.get_opts(location, options).await
    }
    async fn delete(&self, location: &object_store::path::Path) -> object_store::Result<()> {
        self.check()?;
        self.inner.delete(location).await
    }
    fn list(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        use futures::StreamExt as _;
        if let Err(e) = self.check() {
            return futures::stream::once(async move { Err(e) }).boxed();
        }
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.check()?;
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy(
        &self,
        from: &object_store::path::Path,
        to: &object_store::path::Path,
    ) -> object_store::Result<()> {
        self.check()?;
        self.inner.copy(from, to).await
    }
    async fn copy_if_not_exists(
        &self,
        from: &object_store::path::Path,
        to: &object_store::path::Path,
    ) -> object_store::Result<()> {
        self.check()?;
        self.inner.copy_if_not_exists(from, to).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_outage_holds_deliveries_without_nacking_them() {
    let env = Env::new().await;
    let down = Arc::new(AtomicBool::new(true));
    let local = exporter::storage::open(&exporter::storage::StorageConfig::Local { path: env.root() })
        .expect("local");
    let store = Arc::new(Outage { inner: local, down: down.clone() });
    let mut config = env.config();
    config.files.retry_initial_ms = 100;
    let exporter = Exporter::start_with_store(config, store).await.expect("start");
    let events: Vec<_> = (0..200).map(|i| event(&format!("o{i:05}"), h0() + i * 7)).collect();
    env.publish(&events).await;
    // 25 s of outage: a nack per failed check would bring every message back at once, over
    // and over (with a dead-letter policy of 5 attempts, into the dead-letter topic).
    assert!(wait_for(Duration::from_secs(30), || exporter.metrics().messages_received.get() >= 200).await);
    let outage_end = tokio::time::Instant::now() + Duration::from_secs(25);
    while tokio::time::Instant::now() < outage_end {
        assert!(
            exporter.metrics().messages_received.get() < 400,
            "messages came back during the outage: {} received for 200",
            exporter.metrics().messages_received.get()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(exporter.metrics().events_written.get(), 0, "nothing can be written during the outage");
    down.store(false, Ordering::SeqCst);
    let root = env.root();
    assert!(
        wait_for(Duration::from_secs(60), || closed_ids(&root).len() == 200).await,
        "exported after the outage"
    );
    assert!(closed_ids(&root).values().all(|n| *n == 1));
    exporter.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_with_parts_of_two_formats_closes() {
    let env = Env::new().await;
    let events: Vec<_> = (0..400).map(|i| event(&format!("m{i:05}"), h0() + i * 5)).collect();
    let mut config = env.config();
    config.close.idle_secs = 3600;
    config.shutdown_timeout_secs = 2;
    env.publish(&events[..200]).await;
    let avro = Exporter::start(config.clone()).await.expect("avro");
    assert!(wait_for(Duration::from_secs(30), || avro.metrics().events_written.get() >= 200).await);
    avro.shutdown().await.expect("shutdown");
    // A rollout changes the format mid-hour.
    config.files.format = FileFormat::NdjsonGzip;
    env.publish(&events[200..]).await;
    let ndjson = Exporter::start(config.clone()).await.expect("ndjson");
    assert!(wait_for(Duration::from_secs(30), || ndjson.metrics().events_written.get() >= 200).await);
    ndjson.shutdown().await.expect("shutdown");
    config.close.idle_secs = 1;
    let ndjson = Exporter::start(config).await.expect("closing run");
    let root = env.root();
    assert!(
        wait_for(Duration::from_secs(60), || closed_ids(&root).len() == 400).await,
        "{} of 400 closed ({} close failures)",
        closed_ids(&root).len(),
        ndjson.metrics().close_failures.get()
    );
    assert!(closed_ids(&root).values().all(|n| *n == 1));
    ndjson.shutdown().await.expect("shutdown");
}
