//! The exporter writing to fake-gcs-server (GCS's API) through a fault-injecting proxy that
//! fails some writes (503s, dropped connections, answers lost after the write): no message is
//! acknowledged without its event written, and nothing is lost or duplicated.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Env, event, h0};
use exporter::Exporter;
use exporter::format::{FileFormat, decode_file};
use exporter::manifest::Manifest;
use exporter::storage::{self, StorageConfig};
use futures::TryStreamExt as _;
use object_store::ObjectStore;
use testkit::{FakeGcs, Fault, FaultProxy};

/// Ids in the data files the manifests of `store` list, checking each manifest.
async fn closed_ids(store: &dyn ObjectStore) -> (usize, HashMap<String, usize>) {
    let all: Vec<_> = store.list(None).try_collect().await.expect("list");
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut manifests = 0;
    for meta in all.iter().filter(|m| m.location.filename() == Some("_SUCCESS")) {
        manifests += 1;
        let bytes = store.get(&meta.location).await.expect("get").bytes().await.expect("body");
        let m: Manifest = serde_json::from_slice(&bytes).expect("manifest");
        let dir = meta.location.as_ref().trim_end_matches("_SUCCESS").to_owned();
        let mut n = 0;
        for f in &m.files {
            let path = object_store::path::Path::from(format!("{dir}{}", f.name));
            let data = store.get(&path).await.expect("listed file").bytes().await.expect("body");
            assert_eq!(f.checksum, exporter::format::checksum(&data));
            for e in decode_file(FileFormat::Avro, &data).expect("decodes") {
                *ids.entry(e.id).or_default() += 1;
                n += 1;
            }
        }
        assert_eq!(m.event_count, n);
    }
    (manifests, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_failures_lose_and_duplicate_nothing() {
    let env = Env::new().await;
    let gcs = FakeGcs::shared();
    let bucket = gcs.create_unique_bucket("exports");
    let proxy = FaultProxy::start(gcs.addr()).await;
    // Any request may be faulted: uploads, reads, listings, manifest checks.
    proxy.set_path_contains("");
    proxy.push_faults([
        Fault::status(503),
        Fault::DropConnection,
        Fault::DropAfterForward,
        Fault::status(500),
        Fault::Delay(Duration::from_millis(500)),
        Fault::StatusAfterForward(503),
        Fault::status(429),
        Fault::DropAfterForward,
    ]);
    let mut config = env.config();
    config.storage =
        StorageConfig::Gcs { bucket: bucket.clone(), endpoint: Some(proxy.base_url()), prefix: None };
    config.close.allowed_lateness_secs = 3600;
    config.close.idle_secs = 3;
    let events: Vec<_> = (0..1500).map(|i| event(&format!("g{i:05}"), h0() + i * 5)).collect();
    env.publish(&events).await;
    env.publish(&events[..200]).await;
    let exporter = Exporter::start(config).await.expect("start");
    let direct = storage::open(&StorageConfig::Gcs { bucket, endpoint: Some(gcs.endpoint()), prefix: None })
        .expect("store");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let (last, done) = loop {
        let now = closed_ids(direct.as_ref()).await;
        // Three hours with events, and the empty hours up to the watermark.
        let done = now.0 >= 3 && now.1.len() == 1500;
        if done || tokio::time::Instant::now() > deadline {
            break (now, done);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(done, "{} manifests, {} ids", last.0, last.1.len());
    assert!(last.1.values().all(|n| *n == 1), "an id twice");
    assert_eq!(proxy.pending_faults(), 0, "every fault was injected");
    assert_eq!(proxy.faults_injected(), 8);
    let paths: Vec<String> = proxy.requests().into_iter().map(|r| r.path).collect();
    assert!(paths.iter().any(|p| p.contains("upload")), "uploads went through the proxy: {paths:?}");
    exporter.shutdown().await.expect("shutdown");
}
