//! End-to-end smoke test of the harness against the real emulator.

use std::io::Write;
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::StatusCode;
use testkit::{Emulator, Fault, FaultProxy, unique_name};

const PROJECT: &str = "testkit-proj";
const PUBLISH_BODY: &str = r#"{"messages":[{"data":"aGVsbG8="}]}"#;

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().expect("reqwest client")
}

async fn create_topic(client: &reqwest::Client, emulator: &Emulator) -> String {
    let topic = unique_name("smoke");
    let response = client
        .put(format!("{}/v1/projects/{PROJECT}/topics/{topic}", emulator.base_url()))
        .send()
        .await
        .expect("create topic");
    let status = response.status();
    let text = response.text().await.expect("create topic body");
    assert_eq!(status, StatusCode::OK, "create topic: {text}");
    assert!(text.contains(&format!("projects/{PROJECT}/topics/{topic}")));
    topic
}

fn publish_url(proxy: &FaultProxy, topic: &str) -> String {
    format!("{}/v1/projects/{PROJECT}/topics/{topic}:publish", proxy.base_url())
}

async fn json_body(response: reqwest::Response) -> serde_json::Value {
    let bytes = response.bytes().await.expect("response body");
    serde_json::from_slice(&bytes).expect("JSON response body")
}

fn assert_message_ids(json: &serde_json::Value) {
    let ids = json["messageIds"].as_array().expect("messageIds");
    assert_eq!(ids.len(), 1, "{json}");
}

#[tokio::test]
async fn publish_through_fault_proxy() {
    let emulator = Emulator::shared();
    let client = client();
    let topic = create_topic(&client, emulator).await;
    let proxy = FaultProxy::start(emulator.addr()).await;
    proxy.push_faults([Fault::status(503), Fault::DropConnection, Fault::Delay(Duration::from_millis(200))]);
    let url = publish_url(&proxy, &topic);
    let publish = || {
        client.post(&url).header(reqwest::header::CONTENT_TYPE, "application/json").body(PUBLISH_BODY).send()
    };

    // 1. Injected 503 with a Google-style error body.
    let response = publish().await.expect("503 response");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let json: serde_json::Value = json_body(response).await;
    assert_eq!(json["error"]["code"], 503);
    assert_eq!(json["error"]["status"], "UNAVAILABLE");

    // 2. Connection dropped: a transport error, not an HTTP status.
    let error = publish().await.expect_err("dropped connection");
    eprintln!("client error for a dropped connection: {error:?}");
    assert!(error.status().is_none(), "got an HTTP status: {error:?}");
    assert!(error.is_request() && !error.is_timeout(), "unexpected error kind: {error:?}");

    // 3. Delayed, then forwarded to the emulator.
    let started = Instant::now();
    let response = publish().await.expect("delayed publish");
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(response.status(), StatusCode::OK);
    assert_message_ids(&json_body(response).await);

    // 4. Queue empty: forwarded unchanged.
    let response = publish().await.expect("plain publish");
    assert_eq!(response.status(), StatusCode::OK);
    assert_message_ids(&json_body(response).await);

    let requests = proxy.requests();
    assert_eq!(requests.len(), 4);
    let faults: Vec<Fault> = requests.iter().map(|r| r.fault.clone()).collect();
    assert_eq!(
        faults,
        [Fault::status(503), Fault::DropConnection, Fault::Delay(Duration::from_millis(200)), Fault::Forward,]
    );
    for request in &requests {
        assert_eq!(request.path, format!("/v1/projects/{PROJECT}/topics/{topic}:publish"));
        assert_eq!(&request.body[..], PUBLISH_BODY.as_bytes());
        assert_eq!(request.wire_len, PUBLISH_BODY.len());
        assert_eq!(request.content_encoding, None);
    }
    assert_eq!(proxy.matched(), 4);
    assert_eq!(proxy.faults_injected(), 3);
    assert_eq!(proxy.forwarded(), 2);
}

#[tokio::test]
async fn gzip_body_is_recorded_decoded() {
    let emulator = Emulator::shared();
    let client = client();
    let topic = create_topic(&client, emulator).await;
    let proxy = FaultProxy::start(emulator.addr()).await;

    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(PUBLISH_BODY.as_bytes()).expect("gzip write");
    let zipped = encoder.finish().expect("gzip finish");

    let response = client
        .post(publish_url(&proxy, &topic))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::CONTENT_ENCODING, "gzip")
        .body(zipped.clone())
        .send()
        .await
        .expect("gzip publish");
    assert_eq!(response.status(), StatusCode::OK);
    assert_message_ids(&json_body(response).await);

    let requests = proxy.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].content_encoding.as_deref(), Some("gzip"));
    assert_eq!(requests[0].wire_len, zipped.len());
    assert_eq!(&requests[0].body[..], PUBLISH_BODY.as_bytes());
    assert_eq!(requests[0].fault, Fault::Forward);
}

#[test]
fn shared_emulator_from_plain_test() {
    let emulator = Emulator::shared();
    assert_eq!(emulator.host(), emulator.addr().to_string());
    assert!(emulator.base_url().starts_with("http://127.0.0.1:"));
}
