//! Tokens bound to source names and per-token rate limits, against the real Pub/Sub emulator.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use event_model::{Event, EventBatch};
use event_service::{Config, Service, apply_registry};
use prost::Message as _;
use pubsub_client::Client;
use testkit::Emulator;

const PROJECT: &str = "eventpipe-test";
const UNBOUND: &str = "unbound-token-0123456789";
const WEB: &str = "web-token-0123456789";
const LIMITED: &str = "limited-token-0123456789";
const OTHER: &str = "other-token-0123456789";

/// The `[auth]` table of every test: both forms of `auth.tokens`.
fn auth_toml() -> String {
    format!(
        r#"
        [auth]
        tokens = [
            "{UNBOUND}",
            {{ token = "{WEB}", name = "web", sources = ["web-1", "app-*"] }},
            {{ token = "{LIMITED}", events_per_sec = 10, burst_events = 10 }},
            {{ token = "{OTHER}", events_per_sec = 10, burst_events = 10 }},
        ]
        "#
    )
}

struct Env {
    service: Service,
    client: Client,
    play: String,
    url: String,
    http: reqwest::Client,
}

async fn start() -> Env {
    let play = testkit::unique_name("play");
    let registry = std::env::temp_dir().join(format!("{}.toml", testkit::unique_name("registry")));
    std::fs::write(
        &registry,
        format!("[types.play]\ntopic = \"{play}\"\nfields.user = {{ type = \"string\", required = true }}\n"),
    )
    .expect("write registry");
    let mut config = Config::from_toml_str(&auth_toml()).expect("both forms of auth.tokens parse");
    config.listen = "127.0.0.1:0".parse().expect("addr");
    config.project = PROJECT.into();
    config.registry = PathBuf::from(&registry);
    config.emulator_host = Some(Emulator::shared().host());
    config.shutdown_timeout_secs = 10;
    let client = Client::builder()
        .with_project(PROJECT)
        .with_emulator_host(Emulator::shared().host())
        .build()
        .await
        .expect("client");
    let reg = event_model::Registry::load(&config.registry).expect("registry");
    apply_registry(&client, &reg, None).await.expect("topics");
    let service = Service::start(config).await.expect("service starts");
    let url = format!("http://{}", service.local_addr());
    Env { service, client, play, url, http: reqwest::Client::new() }
}

fn play(user: &str, source: &str) -> serde_json::Value {
    serde_json::json!({"type": "play", "source": source, "fields": {"user": user}})
}

struct Answer {
    status: u16,
    body: serde_json::Value,
    text: String,
    retry_after: Option<String>,
}

impl Env {
    async fn post(&self, token: &str, events: &[serde_json::Value]) -> Answer {
        let body = serde_json::Value::Array(events.to_vec()).to_string();
        self.send(token, "application/json", body.into_bytes()).await
    }

    async fn send(&self, token: &str, content_type: &str, body: Vec<u8>) -> Answer {
        let resp = self
            .http
            .post(format!("{}/v1/events", self.url))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        Answer { status, body, text, retry_after }
    }

    /// Pulls until `expected` messages arrived and the subscription is empty, or 30 s passed.
    async fn published(&self, expected: usize) -> Vec<Event> {
        let sub = format!("{}-exporter", self.play);
        let end = Instant::now() + Duration::from_secs(30);
        let mut got = Vec::new();
        loop {
            let batch = self.client.pull_immediately(&sub, 1000).await.expect("pull");
            let ids: Vec<String> = batch.iter().map(|m| m.ack_id.clone()).collect();
            if !ids.is_empty() {
                self.client.acknowledge(&sub, &ids).await.expect("ack");
            }
            let empty = batch.is_empty();
            got.extend(batch.iter().map(|m| Event::decode(m.data.as_ref()).expect("an Event")));
            if (empty && got.len() >= expected) || Instant::now() > end {
                return got;
            }
        }
    }

    async fn metrics(&self) -> String {
        let r = self.http.get(format!("{}/metrics", self.url)).send().await.expect("metrics");
        r.text().await.expect("text")
    }
}

fn sources(events: &[Event]) -> Vec<String> {
    let mut s: Vec<String> = events.iter().map(|e| e.source.clone()).collect();
    s.sort();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_token_sends_only_for_its_sources() {
    let env = start().await;
    // Its exact source and a name matching its prefix pattern.
    let a = env.post(WEB, &[play("u1", "web-1"), play("u2", "app-7")]).await;
    assert_eq!((a.status, a.body["accepted"].as_u64()), (200, Some(2)), "{}", a.text);
    // The tailer's protobuf batches carry the source in the Event too.
    let event = Event {
        r#type: "play".into(),
        source: "app-eu-3".into(),
        fields: [(
            "user".to_owned(),
            event_model::Value { kind: Some(event_model::ValueKind::StringValue("p".into())) },
        )]
        .into(),
        ..Default::default()
    };
    let batch = EventBatch { events: vec![event.clone()] }.encode_to_vec();
    let a = env.send(WEB, "application/x-protobuf", batch).await;
    assert_eq!((a.status, a.body["accepted"].as_u64()), (200, Some(1)), "{}", a.text);

    // One event of another source refuses the whole request; nothing of it is published.
    let a = env.post(WEB, &[play("u3", "web-1"), play("u4", "db-1")]).await;
    assert_eq!(a.status, 403, "{}", a.text);
    let error = a.body["error"].as_str().expect("a JSON ErrorBody");
    assert!(error.contains("`web`") && error.contains("`db-1`"), "{error}");
    assert!(!a.text.contains(WEB), "the token itself is never echoed: {}", a.text);
    // `web-10` is not `web-1`: exact names are exact.
    assert_eq!(env.post(WEB, &[play("u5", "web-10")]).await.status, 403);
    let mut foreign = event.clone();
    foreign.source = "db-1".into();
    let batch = EventBatch { events: vec![foreign] }.encode_to_vec();
    assert_eq!(env.send(WEB, "application/x-protobuf", batch).await.status, 403);
    // An event without a source is refused for a bound token.
    let a = env.post(WEB, &[serde_json::json!({"type": "play", "fields": {"user": "u6"}})]).await;
    assert_eq!(a.status, 403, "{}", a.text);
    assert!(a.body["error"].as_str().unwrap_or("").contains("no source"), "{}", a.text);

    // An unbound token still sends for any source, and for none.
    let a = env
        .post(UNBOUND, &[play("u7", "db-1"), serde_json::json!({"type": "play", "fields": {"user": "u8"}})])
        .await;
    assert_eq!((a.status, a.body["accepted"].as_u64()), (200, Some(2)), "{}", a.text);

    let published = env.published(5).await;
    assert_eq!(sources(&published), ["", "app-7", "app-eu-3", "db-1", "web-1"]);
    let metrics = env.metrics().await;
    for want in [
        "event_service_token_refusals_total{token=\"web\",reason=\"source_not_allowed\"} 4",
        "event_service_http_requests_total{status=\"403\"} 4",
    ] {
        assert!(metrics.contains(want), "missing {want} in\n{metrics}");
    }
    assert!(!metrics.contains("db-1"), "client input never becomes a label:\n{metrics}");
    env.service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_over_its_rate_gets_429_with_retry_after_and_other_tokens_are_unaffected() {
    let env = start().await;
    let ten: Vec<serde_json::Value> = (0..10).map(|i| play(&format!("u{i}"), "web-1")).collect();
    let a = env.post(LIMITED, &ten).await;
    assert_eq!((a.status, a.body["accepted"].as_u64()), (200, Some(10)), "{}", a.text);
    // 10 events/s with a burst of 10: the next 10 right after are over the rate.
    let a = env.post(LIMITED, &ten).await;
    assert_eq!(a.status, 429, "{}", a.text);
    let secs: u64 = a.retry_after.as_deref().and_then(|v| v.parse().ok()).expect("Retry-After in seconds");
    assert!(secs >= 1, "Retry-After is at least 1 s, got {secs}");
    assert!(a.body["error"].as_str().unwrap_or("").contains("auth.tokens[2]"), "{}", a.text);
    // Another limited token and an unbound one have limiters of their own.
    let a = env.post(OTHER, &ten).await;
    assert_eq!((a.status, a.body["accepted"].as_u64()), (200, Some(10)), "{}", a.text);
    let a = env.post(UNBOUND, &ten).await;
    assert_eq!((a.status, a.body["accepted"].as_u64()), (200, Some(10)), "{}", a.text);
    // More events than the burst can never pass: 413, which makes the tailer split the batch.
    let eleven: Vec<serde_json::Value> = (0..11).map(|i| play(&format!("v{i}"), "web-1")).collect();
    let a = env.post(OTHER, &eleven).await;
    assert_eq!(a.status, 413, "{}", a.text);
    assert!(a.body["error"].as_str().unwrap_or("").contains("burst_events"), "{}", a.text);

    assert_eq!(env.published(30).await.len(), 30, "nothing of the refused requests is published");
    let metrics = env.metrics().await;
    for want in [
        "event_service_token_refusals_total{token=\"auth.tokens[2]\",reason=\"rate_limited\"} 1",
        "event_service_token_refusals_total{token=\"auth.tokens[3]\",reason=\"over_burst\"} 1",
        "event_service_http_requests_total{status=\"429\"} 1",
    ] {
        assert!(metrics.contains(want), "missing {want} in\n{metrics}");
    }
    env.service.shutdown().await;
}
