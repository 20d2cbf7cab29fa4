//! The event-service against the real Pub/Sub emulator.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use event_model::{Event, EventBatch, ValueKind};
use event_service::{Config, MirrorConfig, Service, apply_registry};
use prost::Message as _;
use pubsub_client::{Client, ReceivedMessage};
use testkit::{Emulator, Fault, FaultProxy};

const PROJECT: &str = "eventpipe-test";
const TOKEN: &str = "test-token-0123456789";

struct Env {
    service: Service,
    client: Client,
    play: String,
    search: String,
    dlq: String,
    url: String,
    http: reqwest::Client,
}

fn registry_file(play: &str, search: &str, extra: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("{}.toml", testkit::unique_name("registry")));
    let text = format!(
        r#"
        [types.play]
        topic = "{play}"
        fields.user = {{ type = "string", required = true }}
        fields.ms_played = {{ type = "int" }}
        [types.search]
        topic = "{search}"
        fields.query = {{ type = "string", required = true }}
        {extra}
        "#
    );
    std::fs::write(&path, text).expect("write registry");
    path
}

async fn start(pubsub_host: &str, tweak: impl FnOnce(&mut Config)) -> Env {
    let play = testkit::unique_name("play");
    let search = testkit::unique_name("search");
    let dlq = testkit::unique_name("dead");
    let mut config = Config::default();
    config.listen = "127.0.0.1:0".parse().expect("addr");
    config.project = PROJECT.into();
    config.registry = registry_file(&play, &search, "");
    config.emulator_host = Some(pubsub_host.to_owned());
    config.dead_letter_topic = Some(dlq.clone());
    config.auth.tokens = vec![TOKEN.into()];
    config.shutdown_timeout_secs = 10;
    tweak(&mut config);
    let client = Client::builder()
        .with_project(PROJECT)
        .with_emulator_host(Emulator::shared().host())
        .build()
        .await
        .expect("client");
    let registry = event_model::Registry::load(&config.registry).expect("registry");
    apply_registry(&client, &registry, Some(&dlq)).await.expect("topics");
    let service = Service::start(config).await.expect("service starts");
    let url = format!("http://{}", service.local_addr());
    Env { service, client, play, search, dlq, url, http: reqwest::Client::new() }
}

impl Env {
    async fn post(
        &self,
        content_type: &str,
        body: Vec<u8>,
        gzip: bool,
    ) -> (u16, serde_json::Value, reqwest::header::HeaderMap) {
        let mut req = self
            .http
            .post(format!("{}/v1/events", self.url))
            .bearer_auth(TOKEN)
            .header("content-type", content_type);
        let body = if gzip {
            req = req.header("content-encoding", "gzip");
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut enc, &body).expect("gzip");
            enc.finish().expect("gzip")
        } else {
            body
        };
        let resp = req.body(body).send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)), headers)
    }

    async fn drain(&self, sub: &str, expected: usize) -> Vec<ReceivedMessage> {
        let end = Instant::now() + Duration::from_secs(30);
        let mut got = Vec::new();
        loop {
            let batch = self.client.pull_immediately(sub, 1000).await.expect("pull");
            let ids: Vec<String> = batch.iter().map(|m| m.ack_id.clone()).collect();
            if !ids.is_empty() {
                self.client.acknowledge(sub, &ids).await.expect("ack");
            }
            let empty = batch.is_empty();
            got.extend(batch);
            if (empty && got.len() >= expected) || Instant::now() > end {
                return got;
            }
        }
    }
}

fn play_json(user: &str) -> serde_json::Value {
    serde_json::json!({"type": "play", "event_time": "2026-11-23T18:05:00.250Z", "fields": {"user": user, "ms_played": 1234}})
}

fn decode(m: &ReceivedMessage) -> Event {
    let e = Event::decode(m.data.as_ref()).expect("payload is a protobuf Event");
    assert_eq!(m.attributes["event_id"], e.id);
    assert_eq!(m.attributes["event_type"], e.r#type);
    let t = e.event_time.as_ref().expect("event time");
    assert_eq!(m.attributes["event_time"], event_model::format_rfc3339(t));
    assert!(e.received_time.is_some());
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_three_encodings_reach_their_topics_decodable_with_attributes() {
    let env = start(&Emulator::shared().host(), |_| {}).await;
    let array =
        serde_json::json!([play_json("a"), {"type":"search","fields":{"query":"jazz"}}, play_json("b")]);
    let (s, body, _) = env.post("application/json", array.to_string().into_bytes(), false).await;
    assert_eq!((s, body["accepted"].as_u64()), (200, Some(3)), "{body}");
    let ndjson = format!(
        "{}\n{}\n",
        play_json("c"),
        serde_json::json!({"id":"fixed-id-1","type":"search","fields":{"query":"rock"}})
    );
    let (s, body, _) = env.post("application/x-ndjson", ndjson.into_bytes(), true).await;
    assert_eq!((s, body["accepted"].as_u64()), (200, Some(2)), "{body}");
    let mut proto_event = Event { id: "proto-1".into(), r#type: "play".into(), ..Default::default() };
    proto_event
        .fields
        .insert("user".into(), event_model::Value { kind: Some(ValueKind::StringValue("p".into())) });
    let batch = EventBatch { events: vec![proto_event] };
    let (s, body, _) = env.post("application/x-protobuf", batch.encode_to_vec(), false).await;
    assert_eq!((s, body["accepted"].as_u64()), (200, Some(1)), "{body}");

    let plays: Vec<Event> =
        env.drain(&format!("{}-exporter", env.play), 4).await.iter().map(decode).collect();
    let searches: Vec<Event> =
        env.drain(&format!("{}-exporter", env.search), 2).await.iter().map(decode).collect();
    assert_eq!(plays.len(), 4);
    assert_eq!(searches.len(), 2);
    assert!(plays.iter().all(|e| e.r#type == "play" && e.schema_version == 1));
    let mut users: Vec<String> = plays
        .iter()
        .map(|e| match &e.fields["user"].kind {
            Some(ValueKind::StringValue(s)) => s.clone(),
            other => panic!("user is {other:?}"),
        })
        .collect();
    users.sort();
    assert_eq!(users, ["a", "b", "c", "p"]);
    assert!(plays.iter().any(|e| e.id == "proto-1"));
    assert!(searches.iter().any(|e| e.id == "fixed-id-1"));
    assert!(
        plays
            .iter()
            .filter(|e| e.id != "proto-1")
            .all(|e| e.event_time.as_ref().map(|t| t.nanos) == Some(250_000_000))
    );
    env.service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_batch_names_each_rejection_and_delivers_the_rest() {
    let env = start(&Emulator::shared().host(), |_| {}).await;
    let batch = serde_json::json!([
        play_json("ok-1"),
        {"type": "stop", "fields": {}},
        {"type": "play", "fields": {"ms_played": 5}},
        {"type": "play", "fields": {"user": "u", "ms_played": "long"}},
        5,
        play_json("ok-2"),
        {"type": "play", "event_time": "yesterday", "fields": {"user": "u"}},
    ]);
    let (s, body, _) = env.post("application/json", batch.to_string().into_bytes(), false).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["accepted"], 2);
    let rejected = body["rejected"].as_array().expect("rejected list");
    let got: Vec<(u64, &str)> = rejected
        .iter()
        .map(|r| (r["index"].as_u64().unwrap_or(99), r["reason"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(got.len(), 5);
    assert_eq!(got[0], (1, "unknown event type `stop`"));
    assert_eq!(got[1], (2, "missing field `user`"));
    assert_eq!(got[2], (3, "field `ms_played` is not an int"));
    assert_eq!(got[3].0, 4);
    assert!(got[3].1.contains("not a valid event"), "{}", got[3].1);
    assert_eq!(got[4].0, 6);
    assert!(got[4].1.contains("unparseable"), "{}", got[4].1);
    assert_eq!(env.drain(&format!("{}-exporter", env.play), 2).await.len(), 2);
    let dead = env.drain(&format!("{}-inspect", env.dlq), 5).await;
    assert_eq!(dead.len(), 5, "every rejected event goes to the dead-letter topic");
    let mut kinds: Vec<&str> = dead.iter().map(|m| m.attributes["reject_kind"].as_str()).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["bad_time", "malformed", "missing_field", "unknown_type", "wrong_type"]);
    let stop = dead.iter().find(|m| m.attributes["reject_kind"] == "unknown_type").expect("stop event");
    assert_eq!(&stop.data[..], br#"{"fields":{},"type":"stop"}"#);
    env.service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_waits_for_the_publish_confirmation() {
    let proxy = FaultProxy::start(Emulator::shared().addr()).await;
    let env = start(&proxy.host(), |_| {}).await;
    proxy.push_faults([Fault::Delay(Duration::from_millis(1500))]);
    let before = proxy.forwarded();
    let (s, body, _) = env
        .post("application/json", serde_json::json!([play_json("slow")]).to_string().into_bytes(), false)
        .await;
    assert_eq!(s, 200, "{body}");
    // The proxy counts a publish as forwarded once the emulator answered it; the service's
    // answer came after that.
    assert_eq!(proxy.forwarded() - before, 1, "the service answered before Pub/Sub confirmed the publish");
    env.service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_publish_answers_503_so_the_sender_retries() {
    let proxy = FaultProxy::start(Emulator::shared().addr()).await;
    let env = start(&proxy.host(), |_| {}).await;
    proxy.push_faults([Fault::status(403)]);
    let (s, body, headers) = env
        .post("application/json", serde_json::json!([play_json("x")]).to_string().into_bytes(), false)
        .await;
    assert_eq!(s, 503, "{body}");
    assert_eq!(headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    assert!(body["error"].as_str().unwrap_or("").contains("403"), "{body}");
    env.service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_valid_token_get_401_and_publish_nothing() {
    let env = start(&Emulator::shared().host(), |_| {}).await;
    let body = serde_json::json!([play_json("intruder")]).to_string();
    for auth in [None, Some("Bearer wrong-token-0123456789"), Some("Basic abc")] {
        let mut req =
            env.http.post(format!("{}/v1/events", env.url)).header("content-type", "application/json");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.body(body.clone()).send().await.expect("request");
        assert_eq!(resp.status().as_u16(), 401, "{auth:?}");
        assert_eq!(resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"));
    }
    let (s, _, _) = env.post("application/json", body.clone().into_bytes(), false).await;
    assert_eq!(s, 200);
    assert_eq!(env.drain(&format!("{}-exporter", env.play), 1).await.len(), 1, "only the authorized event");
    env.service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_refused_with_retry_after_and_limits_hold() {
    let proxy = FaultProxy::start(Emulator::shared().addr()).await;
    let env = start(&proxy.host(), |c| {
        c.limits.max_in_flight_requests = 1;
        c.limits.max_body_bytes = 10_000;
        c.limits.max_in_flight_bytes = 30_000;
        c.limits.max_events_per_request = 3;
        c.limits.retry_after_secs = 2;
    })
    .await;
    proxy.push_faults([Fault::Delay(Duration::from_secs(2))]);
    let slow_body = serde_json::json!([play_json("slow")]).to_string().into_bytes();
    let slow = {
        let (http, url) = (env.http.clone(), env.url.clone());
        tokio::spawn(async move {
            http.post(format!("{url}/v1/events"))
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .body(slow_body)
                .send()
                .await
                .expect("request")
                .status()
                .as_u16()
        })
    };
    // Wait until the slow request holds the only slot (its publish reached the proxy).
    let end = Instant::now() + Duration::from_secs(30);
    while proxy.matched() == 0 && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(proxy.matched(), 1, "the slow request is publishing");
    let (s, _, headers) = env
        .post("application/json", serde_json::json!([play_json("b")]).to_string().into_bytes(), false)
        .await;
    assert_eq!(s, 429);
    assert_eq!(headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("2"));
    assert_eq!(slow.await.expect("join"), 200);
    let big = vec![b' '; 20_000];
    assert_eq!(env.post("application/json", big, false).await.0, 413);
    let many =
        serde_json::json!([play_json("1"), play_json("2"), play_json("3"), play_json("4")]).to_string();
    let (s, body, _) = env.post("application/json", many.into_bytes(), false).await;
    assert_eq!(s, 413, "{body}");
    let bomb = vec![b' '; 50_000];
    assert_eq!(env.post("application/json", bomb, true).await.0, 413, "decompressed size counts");
    let metrics = env
        .http
        .get(format!("{}/metrics", env.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("event_service_http_requests_total{status=\"429\"} 1"), "{metrics}");
    assert!(metrics.contains("event_service_in_flight_bytes 0"), "{metrics}");
    env.service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_metrics_and_registry_reload() {
    let env = start(&Emulator::shared().host(), |_| {}).await;
    let get = |path: &str| {
        let (http, url) = (env.http.clone(), format!("{}{path}", env.url));
        async move {
            let r = http.get(url).send().await.expect("get");
            (r.status().as_u16(), r.text().await.expect("text"))
        }
    };
    assert_eq!(get("/healthz").await, (200, "ok".to_owned()));
    let end = Instant::now() + Duration::from_secs(30);
    while get("/readyz").await.0 != 200 && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get("/readyz").await, (200, "ready".to_owned()));
    let (s, body, _) = env
        .post(
            "application/json",
            serde_json::json!([{"type":"click","fields":{}}]).to_string().into_bytes(),
            false,
        )
        .await;
    assert_eq!((s, body["accepted"].as_u64()), (200, Some(0)));
    // A new type is a registry change only.
    let click = testkit::unique_name("click");
    let path = registry_file(&env.play, &env.search, &format!("[types.click]\ntopic = \"{click}\""));
    std::fs::copy(&path, &env.service.state().config.registry).expect("replace registry");
    let registry = event_model::Registry::load(&path).expect("registry");
    apply_registry(&env.client, &registry, None).await.expect("apply");
    assert_eq!(env.service.state().reload_registry().expect("reload"), 3);
    let (s, body, _) = env
        .post(
            "application/json",
            serde_json::json!([{"type":"click","fields":{}}]).to_string().into_bytes(),
            false,
        )
        .await;
    assert_eq!((s, body["accepted"].as_u64()), (200, Some(1)), "{body}");
    let (_, metrics) = get("/metrics").await;
    for want in [
        "event_service_events_accepted_total{event_type=\"click\"} 1",
        // Rejected while the registry did not know it: not a label value of its own.
        "event_service_events_rejected_total{event_type=\"unknown\",reason=\"unknown_type\"} 1",
        "event_service_registry_reloads_total{result=\"ok\"} 1",
        "event_service_publish_latency_seconds_bucket",
    ] {
        assert!(metrics.contains(want), "missing {want} in\n{metrics}");
    }
    env.service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dark_loading_mirrors_every_accepted_event() {
    let env = start(&Emulator::shared().host(), |c| c.mirror = Some(MirrorConfig::new("shadow-"))).await;
    let shadow = format!("shadow-{}", env.play);
    env.client.create_topic(&pubsub_client::Topic::new(&shadow)).await.expect("shadow topic");
    env.client
        .create_subscription(&pubsub_client::Subscription::new(format!("{shadow}-sub"), &shadow))
        .await
        .expect("shadow sub");
    let batch = serde_json::json!([play_json("m1"), play_json("m2"), {"type": "play", "fields": {}}]);
    let (s, body, _) = env.post("application/json", batch.to_string().into_bytes(), false).await;
    assert_eq!((s, body["accepted"].as_u64()), (200, Some(2)), "{body}");
    let main: Vec<String> =
        env.drain(&format!("{}-exporter", env.play), 2).await.iter().map(|m| decode(m).id).collect();
    let mut mirrored: Vec<String> =
        env.drain(&format!("{shadow}-sub"), 2).await.iter().map(|m| decode(m).id).collect();
    let mut main = main;
    main.sort();
    mirrored.sort();
    assert_eq!(main.len(), 2);
    assert_eq!(mirrored, main, "the mirror gets the same events, ids included");
    env.service.shutdown().await;
}

fn search_json(query: &str) -> serde_json::Value {
    serde_json::json!({"type": "search", "fields": {"query": query}})
}

fn indices(body: &serde_json::Value, list: &str) -> Vec<u64> {
    body[list].as_array().map(|a| a.iter().filter_map(|r| r["index"].as_u64()).collect()).unwrap_or_default()
}

/// Pub/Sub refuses every publish to `topic` (403, not retried by the publisher) until
/// `blackout(Duration::ZERO, ..)`.
fn fail_topic(proxy: &FaultProxy, topic: &str) {
    proxy.set_path_contains(format!("/topics/{topic}:publish"));
    proxy.blackout(Duration::from_secs(600), Fault::status(403));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_topic_makes_only_its_events_retryable() {
    let proxy = FaultProxy::start(Emulator::shared().addr()).await;
    let env = start(&proxy.host(), |_| {}).await;
    fail_topic(&proxy, &env.search);
    let batch = serde_json::json!([play_json("a"), search_json("q1"), play_json("b"), search_json("q2")]);
    let (s, body, headers) = env.post("application/json", batch.to_string().into_bytes(), false).await;
    assert_eq!(s, 200, "a healthy topic's events are answered for: {body}");
    assert_eq!(body["accepted"], 2, "{body}");
    assert_eq!(indices(&body, "retryable"), [1, 3], "{body}");
    assert_eq!(indices(&body, "rejected"), Vec::<u64>::new(), "{body}");
    assert!(body["retryable"][0]["reason"].as_str().unwrap_or("").contains(&env.search), "{body}");
    assert_eq!(headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    // The sender re-sends only those, once the topic works again.
    proxy.blackout(Duration::ZERO, Fault::Forward);
    let again = serde_json::json!([search_json("q1"), search_json("q2")]);
    let (s, body, headers) = env.post("application/json", again.to_string().into_bytes(), false).await;
    assert_eq!((s, body["accepted"].as_u64()), (200, Some(2)), "{body}");
    assert!(body.get("retryable").is_none() && headers.get("retry-after").is_none(), "{body}");
    // Every event published once.
    let plays = env.drain(&format!("{}-exporter", env.play), 2).await;
    let users: Vec<String> =
        plays.iter().map(|m| decode(m).fields["user"].kind.clone()).map(|k| format!("{k:?}")).collect();
    assert_eq!(plays.len(), 2, "the healthy events were published once: {users:?}");
    assert_eq!(env.drain(&format!("{}-exporter", env.search), 2).await.len(), 2);
    let text = env.service.state().metrics.render();
    assert!(text.contains("event_service_events_retryable_total{event_type=\"search\"} 2"), "{text}");
    env.service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_dead_letter_topic_makes_the_rejected_event_retryable() {
    let proxy = FaultProxy::start(Emulator::shared().addr()).await;
    let env = start(&proxy.host(), |_| {}).await;
    fail_topic(&proxy, &env.dlq);
    let invalid = serde_json::json!({"type": "play", "fields": {"ms_played": 1}});
    let batch = serde_json::json!([play_json("a"), invalid]);
    let (s, body, _) = env.post("application/json", batch.to_string().into_bytes(), false).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["accepted"], 1, "{body}");
    assert_eq!(
        indices(&body, "rejected"),
        Vec::<u64>::new(),
        "not rejected while it is kept nowhere: {body}"
    );
    assert_eq!(indices(&body, "retryable"), [1], "{body}");
    // Every event of a request failing so: 503, as for any publish failure.
    let (s, body, _) =
        env.post("application/json", serde_json::json!([invalid]).to_string().into_bytes(), false).await;
    assert_eq!(s, 503, "{body}");
    proxy.blackout(Duration::ZERO, Fault::Forward);
    let (s, body, _) =
        env.post("application/json", serde_json::json!([invalid]).to_string().into_bytes(), false).await;
    assert_eq!((s, indices(&body, "rejected")), (200, vec![0]), "{body}");
    let dead = env.drain(&format!("{}-inspect", env.dlq), 1).await;
    assert_eq!(dead.len(), 1, "dead-lettered once the topic works");
    env.service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_types_never_become_label_values_or_oversized_attributes() {
    let env = start(&Emulator::shared().host(), |c| c.limits.max_events_per_request = 5_000).await;
    // 10,000 distinct type names no registry declares, one of them 3,000 bytes long.
    for round in 0..2 {
        let events: Vec<serde_json::Value> = (0..5_000)
            .map(|i| {
                let name =
                    if round == 0 && i == 0 { "é".repeat(1_500) } else { format!("type-{round}-{i}") };
                serde_json::json!({"type": name, "fields": {}})
            })
            .collect();
        let (s, body, _) =
            env.post("application/json", serde_json::to_vec(&events).expect("json"), true).await;
        assert_eq!(s, 200, "{body}");
        assert_eq!(indices(&body, "rejected").len(), 5_000, "{}", &body.to_string()[..200]);
        assert!(
            body["rejected"][0]["reason"].as_str().is_some_and(|r| r.len() <= 1024),
            "reasons are bounded"
        );
    }
    let text = env.service.state().metrics.render();
    let series = text.lines().filter(|l| l.starts_with("event_service_events_rejected_total{")).count();
    assert_eq!(series, 1, "one series for every unknown type:\n{}", &text[..text.len().min(2000)]);
    assert!(text.contains(
        r#"event_service_events_rejected_total{event_type="unknown",reason="unknown_type"} 10000"#
    ));
    // Every one was dead-lettered, the long name cut to Pub/Sub's attribute limit.
    let dead = env.drain(&format!("{}-inspect", env.dlq), 10_000).await;
    assert_eq!(dead.len(), 10_000);
    let longest = dead.iter().map(|m| m.attributes["event_type"].len()).max().unwrap_or(0);
    assert!((1_000..=1_024).contains(&longest), "the long type name, cut: {longest} bytes");
    assert!(dead.iter().all(|m| m.attributes.values().all(|v| v.len() <= 1_024)));
    env.service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_echoes_the_request_id() {
    let env = start(&Emulator::shared().host(), |_| {}).await;
    let send = |id: String| {
        let (http, url) = (env.http.clone(), env.url.clone());
        async move {
            let r = http
                .post(format!("{url}/v1/events"))
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .header("x-request-id", id)
                .body(serde_json::json!([play_json("u")]).to_string())
                .send()
                .await
                .expect("request");
            let text = r.text().await.expect("body");
            serde_json::from_str::<event_model::ingest::Answer>(&text).expect("the service's answer")
        }
    };
    assert_eq!(send("tailer-7f3a".into()).await.request_id.as_deref(), Some("tailer-7f3a"));
    // Not an id the service echoes: too long. The answer then names no request.
    assert_eq!(send("x".repeat(129)).await.request_id, None);
    env.service.shutdown().await;
}
