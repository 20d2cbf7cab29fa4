//! Dark-loading mirror against the real Pub/Sub emulator: a stalled mirror target never holds
//! up production ingest, and shutdown flushes what the mirror queued.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use event_model::Event;
use event_service::{Config, MirrorConfig, Service, apply_registry};
use prost::Message as _;
use pubsub_client::{Client, ReceivedMessage, Subscription, Topic};
use testkit::Emulator;
use tokio::net::TcpListener;

const PROJECT: &str = "eventpipe-test";
const TOKEN: &str = "test-token-0123456789";

struct Env {
    service: Service,
    client: Client,
    play: String,
    url: String,
    http: reqwest::Client,
}

async fn start(tweak: impl FnOnce(&mut Config)) -> Env {
    let play = testkit::unique_name("play");
    let registry = std::env::temp_dir().join(format!("{}.toml", testkit::unique_name("registry")));
    std::fs::write(
        &registry,
        format!("[types.play]\ntopic = \"{play}\"\nfields.user = {{ type = \"string\", required = true }}\n"),
    )
    .expect("write registry");
    let mut config = Config::default();
    config.listen = "127.0.0.1:0".parse().expect("addr");
    config.project = PROJECT.into();
    config.registry = PathBuf::from(&registry);
    config.emulator_host = Some(Emulator::shared().host());
    config.auth.tokens = vec![TOKEN.into()];
    config.shutdown_timeout_secs = 10;
    tweak(&mut config);
    let client = Client::builder()
        .with_project(PROJECT)
        .with_emulator_host(Emulator::shared().host())
        .build()
        .await
        .expect("client");
    let loaded = event_model::Registry::load(&config.registry).expect("registry");
    apply_registry(&client, &loaded, None).await.expect("topics");
    let service = Service::start(config).await.expect("service starts");
    let url = format!("http://{}", service.local_addr());
    Env { service, client, play, url, http: reqwest::Client::new() }
}

impl Env {
    /// Posts `n` play events; returns the status and the `accepted` count of the answer.
    async fn post_events(&self, tag: &str, n: usize) -> (u16, Option<u64>) {
        post_events(&self.http, &self.url, tag, n).await
    }
}

/// Pulls and acks until `expected` messages arrived and the subscription is empty, or 60 s.
async fn drain(client: &Client, sub: &str, expected: usize) -> Vec<ReceivedMessage> {
    let end = Instant::now() + Duration::from_secs(60);
    let mut got = Vec::new();
    loop {
        let batch = client.pull_immediately(sub, 1000).await.expect("pull");
        let ids: Vec<String> = batch.iter().map(|m| m.ack_id.clone()).collect();
        if !ids.is_empty() {
            client.acknowledge(sub, &ids).await.expect("ack");
        }
        let empty = batch.is_empty();
        got.extend(batch);
        if (empty && got.len() >= expected) || Instant::now() > end {
            return got;
        }
    }
}

async fn post_events(http: &reqwest::Client, url: &str, tag: &str, n: usize) -> (u16, Option<u64>) {
    let events: Vec<serde_json::Value> = (0..n)
        .map(|i| serde_json::json!({"type": "play", "fields": {"user": format!("{tag}-{i}")}}))
        .collect();
    let resp = http
        .post(format!("{url}/v1/events"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(serde_json::Value::Array(events).to_string())
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    (status, body["accepted"].as_u64())
}

/// The value of an unlabelled metric in the service's `/metrics` text.
fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

/// A TCP server that accepts every connection and never answers (nor closes): a mirror
/// target that has stalled.
async fn stalled_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_mirror_never_holds_up_production_ingest() {
    const REQUESTS: usize = 200;
    const PER_REQUEST: usize = 50;
    const QUEUE: usize = 100;
    const WINDOW: usize = 100;
    let stalled = stalled_server().await;
    let env = start(|c| {
        let mut m = MirrorConfig::new("shadow-");
        m.emulator_host = Some(stalled);
        m.queue_events = QUEUE;
        c.mirror = Some(m);
        // The publishers' flow control (main and mirror) holds at most this many unconfirmed
        // messages, so a publish into the stalled mirror waits once it holds that many.
        c.publisher.max_outstanding_messages = WINDOW;
    })
    .await;

    // Production ingest answers every request, whatever the mirror does. The deadline is only a
    // bound on waiting for the answers (they take a few seconds), not a performance assertion.
    let answered = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for s in 0..4 {
        let (http, url, answered) = (env.http.clone(), env.url.clone(), answered.clone());
        senders.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for r in (s..REQUESTS).step_by(4) {
                statuses.push(post_events(&http, &url, &format!("r{r}"), PER_REQUEST).await);
                answered.fetch_add(1, Ordering::Relaxed);
            }
            statuses
        }));
    }
    let all = async {
        let mut statuses = Vec::new();
        for s in senders {
            statuses.extend(s.await.expect("sender"));
        }
        statuses
    };
    let Ok(statuses) = tokio::time::timeout(Duration::from_secs(120), all).await else {
        panic!(
            "production ingest stalled behind the stalled mirror: {} of {REQUESTS} requests answered in 120 s",
            answered.load(Ordering::Relaxed)
        );
    };
    assert_eq!(statuses.len(), REQUESTS);
    assert!(
        statuses.iter().all(|s| *s == (200, Some(PER_REQUEST as u64))),
        "every request answers 200 with all its events accepted: {statuses:?}"
    );

    let main = drain(&env.client, &format!("{}-exporter", env.play), REQUESTS * PER_REQUEST).await;
    let ids: HashSet<String> =
        main.iter().map(|m| Event::decode(m.data.as_ref()).expect("an Event").id).collect();
    assert_eq!(ids.len(), REQUESTS * PER_REQUEST, "every accepted event is on the main subscription");

    let text = env.http.get(format!("{}/metrics", env.url)).send().await.expect("metrics");
    let text = text.text().await.expect("metrics text");
    let dropped = metric(&text, "event_service_mirror_dropped_total").expect("dropped counter");
    // At most the queue, the mirror publisher's window and the one event the drain task holds
    // while it waits for that window got past the full queue; every other event was dropped.
    assert!(
        dropped as usize >= REQUESTS * PER_REQUEST - QUEUE - WINDOW - 1,
        "dropped {dropped} of {} with a queue of {QUEUE}\n{text}",
        REQUESTS * PER_REQUEST
    );
    assert_eq!(
        metric(&text, "event_service_mirror_queue_events"),
        Some(QUEUE as u64),
        "the queue is full\n{text}"
    );
    assert_eq!(metric(&text, "event_service_events_mirrored_total"), Some(0), "{text}");

    // Shutdown gives up on the stalled mirror at the shutdown timeout (10 s here).
    tokio::time::timeout(Duration::from_secs(60), env.service.shutdown())
        .await
        .expect("shutdown ends although the mirror is stalled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_every_event_the_mirror_queued() {
    let env = start(|c| c.mirror = Some(MirrorConfig::new("shadow-"))).await;
    let shadow = format!("shadow-{}", env.play);
    env.client.create_topic(&Topic::new(&shadow)).await.expect("shadow topic");
    env.client
        .create_subscription(&Subscription::new(format!("{shadow}-sub"), &shadow))
        .await
        .expect("shadow sub");
    for r in 0..3 {
        assert_eq!(env.post_events(&format!("r{r}"), 50).await, (200, Some(50)));
    }
    let Env { service, client, play, .. } = env;
    let state = service.state().clone();
    // Straight after the answers: the mirror may still hold events in its queue.
    service.shutdown().await;
    let text = state.metrics.render();
    assert_eq!(metric(&text, "event_service_events_mirrored_total"), Some(150), "{text}");
    assert_eq!(metric(&text, "event_service_mirror_dropped_total"), Some(0), "{text}");
    let mirrored = drain(&client, &format!("{shadow}-sub"), 150).await;
    let main = drain(&client, &format!("{play}-exporter"), 150).await;
    let ids = |ms: &[ReceivedMessage]| -> HashSet<String> {
        ms.iter().map(|m| Event::decode(m.data.as_ref()).expect("an Event").id).collect()
    };
    assert_eq!(ids(&mirrored).len(), 150);
    assert_eq!(ids(&mirrored), ids(&main), "the mirror got every accepted event");
}
