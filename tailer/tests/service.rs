//! The tailer against the real event-service, which publishes to the real Pub/Sub emulator:
//! every valid line arrives in the type's subscription once, under the id derived from its
//! file and offset, with fields typed by the registry; lines the registry refuses are counted
//! by the tailer as rejected and not retried.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::fs::OpenOptions;
use std::io::Write;
use std::time::Duration;

use common::{Fixture, LogWriter, wait_for};
use event_model::{Event, ValueKind};
use event_service::{Service, apply_registry};
use prost::Message as _;
use pubsub_client::Client;
use tailer::Tailer;
use testkit::Emulator;

const PROJECT: &str = "eventpipe-test";

/// The registry file, the client, and a running event-service (with `tls` when given).
async fn service(
    fx: &Fixture,
    tls: Option<event_service::TlsConfig>,
) -> (String, std::path::PathBuf, Client, Service, String) {
    let topic = testkit::unique_name("play");
    let registry = fx.dir.path().join("registry.toml");
    std::fs::write(
        &registry,
        format!(
            "[types.play]\ntopic = \"{topic}\"\nfields.user = {{ type = \"string\", required = true }}\n\
             fields.seq = {{ type = \"int\", required = true }}\n"
        ),
    )
    .expect("registry");
    let client = Client::builder()
        .with_project(PROJECT)
        .with_emulator_host(Emulator::shared().host())
        .build()
        .await
        .expect("client");
    apply_registry(&client, &event_model::Registry::load(&registry).expect("load"), None)
        .await
        .expect("topics");
    let mut sc = event_service::Config::default();
    sc.listen = "127.0.0.1:0".parse().expect("addr");
    sc.project = PROJECT.into();
    sc.registry = registry.clone();
    sc.emulator_host = Some(Emulator::shared().host());
    sc.auth.allow_unauthenticated = true;
    let scheme = if tls.is_some() { "https" } else { "http" };
    sc.tls = tls;
    let service = Service::start(sc).await.expect("service");
    let url = format!("{scheme}://127.0.0.1:{}/v1/events", service.local_addr().port());
    (topic, registry, client, service, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_reach_pubsub_through_the_event_service() {
    let fx = Fixture::new();
    let (topic, registry, client, service, url) = service(&fx, None).await;

    let tailer =
        Tailer::start(fx.config(&url, &["app.log*"]).with_registry(&registry)).await.expect("tailer");
    let mut w = LogWriter::new(0);
    let path = fx.log("app.log");
    w.write(&path, 1500);
    // Two lines the registry refuses: an int field given as text, and an undeclared field.
    let mut f = OpenOptions::new().append(true).open(&path).expect("open");
    f.write_all(b"2026-11-23T18:00:00.000Z h app: play\tuser=x\tseq=not-a-number\n").expect("write");
    f.write_all(b"2026-11-23T18:00:00.000Z h app: play\tuser=x\tseq=1\tcolour=red\n").expect("write");
    drop(f);
    std::fs::rename(&path, fx.log("app.log.1")).expect("rotate");
    w.write(&path, 500);

    assert!(
        wait_for(Duration::from_secs(60), || tailer.metrics().events_acked.get() >= w.written.len() as u64
            && tailer.metrics().events_rejected.get() >= 2)
        .await,
        "acked {} rejected {}",
        tailer.metrics().events_acked.get(),
        tailer.metrics().events_rejected.get()
    );
    assert_eq!(tailer.metrics().events_rejected.get(), 2);
    assert_eq!(tailer.metrics().retries.get(), 0, "rejections are not retried");

    let mut sub = client.subscriber(&format!("{topic}-exporter")).expect("subscriber");
    let mut seen: HashMap<String, Event> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < w.written.len() && tokio::time::Instant::now() < deadline {
        let Ok(Some(Ok(d))) = tokio::time::timeout(Duration::from_secs(5), sub.next()).await else {
            continue;
        };
        let e = Event::decode(d.data()).expect("an Event");
        assert_eq!(d.attributes().get("event_id"), Some(&e.id));
        seen.entry(e.id.clone()).or_insert(e);
        drop(d.ack());
    }
    let seqs: BTreeSet<u64> = seen
        .values()
        .map(|e| match e.fields["seq"].kind {
            Some(ValueKind::IntValue(i)) => i as u64,
            ref other => panic!("seq is typed int by the registry, got {other:?}"),
        })
        .collect();
    assert_eq!(seqs, w.written, "every valid line once");
    assert_eq!(seen.len(), w.written.len(), "one id per line");
    assert!(seen.values().all(|e| e.received_time.is_some() && e.schema_version == 1));
    sub.shutdown(Duration::from_secs(5)).await;
    tailer.shutdown().await.expect("tailer");
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_over_https_trusting_a_private_ca() {
    let fx = Fixture::new();
    let certs = testkit::make_test_certs(fx.dir.path());
    let tls = event_service::TlsConfig::new(certs.cert.clone(), certs.key.clone());
    let (_topic, registry, _client, service, url) = service(&fx, Some(tls)).await;
    assert!(url.starts_with("https://"));
    let mut w = LogWriter::new(0);
    w.write(&fx.log("app.log"), 200);

    // Without the CA the service's certificate is not trusted: nothing is acknowledged.
    let untrusted =
        Tailer::start(fx.config(&url, &["app.log"]).with_registry(&registry)).await.expect("tailer");
    assert!(wait_for(Duration::from_secs(30), || untrusted.metrics().retries.get() >= 3).await);
    assert_eq!(untrusted.metrics().events_acked.get(), 0);
    untrusted.shutdown().await.expect("shutdown");

    let mut config = fx.config(&url, &["app.log"]).with_registry(&registry);
    config.service.ca_cert = Some(certs.ca.clone());
    let tailer = Tailer::start(config).await.expect("tailer");
    assert!(wait_for(Duration::from_secs(30), || tailer.metrics().events_acked.get() >= 200).await);
    tailer.shutdown().await.expect("shutdown");
    service.shutdown().await;
}
