//! The event-service's connection handling against the real Pub/Sub emulator: slow request
//! headers and idle connections are closed after their timeouts, the connection cap holds new
//! connections back until one closes, and a missing topic does not make the service unready.

use std::path::PathBuf;
use std::time::Duration;

use event_service::{Config, Service, apply_registry};
use pubsub_client::Client;
use testkit::Emulator;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

const PROJECT: &str = "eventpipe-test";
const TOKEN: &str = "limits-test-token-0123456789";
/// How long a test waits for something that should happen within a second or two.
const DEADLINE: Duration = Duration::from_secs(20);

struct Env {
    service: Service,
    client: Client,
    url: String,
    http: reqwest::Client,
}

fn write_registry(play: &str, extra: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("{}.toml", testkit::unique_name("registry")));
    let text = format!(
        "[types.play]\ntopic = \"{play}\"\nfields.user = {{ type = \"string\", required = true }}\n{extra}"
    );
    std::fs::write(&path, text).expect("write registry");
    path
}

/// Starts a service whose registry has a `play` type (its topic created) plus `unapplied`
/// registry text whose topics are not created.
async fn start(unapplied: &str, tweak: impl FnOnce(&mut Config)) -> Env {
    let play = testkit::unique_name("limits-play");
    let client = Client::builder()
        .with_project(PROJECT)
        .with_emulator_host(Emulator::shared().host())
        .build()
        .await
        .expect("client");
    let applied = event_model::Registry::load(&write_registry(&play, "")).expect("registry");
    apply_registry(&client, &applied, None).await.expect("topics");
    let mut config = Config::default();
    config.listen = "127.0.0.1:0".parse().expect("addr");
    config.project = PROJECT.into();
    config.registry = write_registry(&play, unapplied);
    config.emulator_host = Some(Emulator::shared().host());
    config.auth.tokens = vec![TOKEN.into()];
    config.shutdown_timeout_secs = 10;
    tweak(&mut config);
    let service = Service::start(config).await.expect("service starts");
    let url = format!("http://{}", service.local_addr());
    Env { service, client, url, http: reqwest::Client::new() }
}

impl Env {
    async fn get(&self, path: &str) -> (u16, String) {
        let r = self.http.get(format!("{}{path}", self.url)).send().await.expect("get");
        (r.status().as_u16(), r.text().await.expect("text"))
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.service.local_addr()).await.expect("connect")
    }

    /// Waits until the metrics contain `want`, read without opening a connection.
    async fn wait_for_metric_in_state(&self, want: &str) {
        let end = Instant::now() + DEADLINE;
        loop {
            let metrics = self.service.state().metrics.render();
            if metrics.contains(want) {
                return;
            }
            assert!(Instant::now() < end, "no {want} in\n{metrics}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `/metrics` contains `want`.
    async fn wait_for_metric(&self, want: &str) {
        let end = Instant::now() + DEADLINE;
        loop {
            let (_, metrics) = self.get("/metrics").await;
            if metrics.contains(want) {
                return;
            }
            assert!(Instant::now() < end, "no {want} in\n{metrics}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Sends a GET on a kept-alive HTTP/1.1 connection.
async fn send_get(stream: &mut TcpStream, path: &str) {
    let req = format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("write request");
}

/// Reads one HTTP/1.1 response (with a `content-length`): its status and body.
async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.expect("read response");
        assert!(n > 0, "connection closed before a response: {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status line");
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("content-length");
    while buf.len() < head_end + len {
        let n = stream.read(&mut chunk).await.expect("read body");
        assert!(n > 0, "connection closed in the body");
        buf.extend_from_slice(&chunk[..n]);
    }
    (status, String::from_utf8_lossy(&buf[head_end..head_end + len]).into_owned())
}

/// Waits until the server closes `stream` (EOF or reset), failing after [`DEADLINE`].
async fn wait_closed(stream: &mut TcpStream, what: &str) {
    let mut chunk = [0u8; 1024];
    match timeout(DEADLINE, stream.read(&mut chunk)).await {
        Ok(Ok(0) | Err(_)) => {}
        Ok(Ok(n)) => panic!("{what}: unexpected bytes {:?}", String::from_utf8_lossy(&chunk[..n])),
        Err(_) => panic!("{what}: still open after {DEADLINE:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_request_headers_are_disconnected_after_the_header_read_timeout() {
    let env = start("", |c| {
        c.server.header_read_timeout_secs = 1;
        c.server.idle_timeout_secs = 600;
    })
    .await;
    // Connects and sends nothing.
    let mut silent = env.connect().await;
    // Sends half a request line and headers, then nothing.
    let mut slow = env.connect().await;
    slow.write_all(b"POST /v1/events HTTP/1.1\r\nhost: test\r\ncontent-ty").await.expect("write");
    // A kept-alive connection: one request served, then half of the next one.
    let mut kept = env.connect().await;
    send_get(&mut kept, "/healthz").await;
    assert_eq!(read_response(&mut kept).await, (200, "ok".to_owned()));
    kept.write_all(b"GET /heal").await.expect("write");

    wait_closed(&mut silent, "a connection that sent nothing").await;
    wait_closed(&mut slow, "a connection that sent half its headers").await;
    wait_closed(&mut kept, "a kept-alive connection that sent half its next request").await;
    env.wait_for_metric("event_service_connections_closed_total{reason=\"header_timeout\"} 3").await;
    assert_eq!(env.get("/healthz").await, (200, "ok".to_owned()), "others are still served");
    env.service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed_after_the_idle_timeout_http1_and_http2() {
    let env = start("", |c| {
        c.server.header_read_timeout_secs = 600;
        c.server.idle_timeout_secs = 1;
    })
    .await;
    // HTTP/1.1: two requests on one kept-alive connection, then nothing.
    let mut h1 = env.connect().await;
    for _ in 0..2 {
        send_get(&mut h1, "/healthz").await;
        assert_eq!(read_response(&mut h1).await, (200, "ok".to_owned()));
    }
    // HTTP/2 (prior knowledge): one request, then nothing; the connection ends when the
    // server closes it.
    let io = hyper_util::rt::TokioIo::new(env.connect().await);
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io).await.expect("h2");
    let h2_conn = tokio::spawn(conn);
    let req = hyper::Request::get(format!("{}/healthz", env.url))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let resp = send.send_request(req).await.expect("h2 response");
    assert_eq!(resp.status().as_u16(), 200);
    drop(resp);

    wait_closed(&mut h1, "an idle HTTP/1.1 connection").await;
    match timeout(DEADLINE, h2_conn).await {
        Ok(joined) => joined.expect("join").expect("the HTTP/2 connection ends cleanly"),
        Err(_) => panic!("an idle HTTP/2 connection: still open after {DEADLINE:?}"),
    }
    env.wait_for_metric("event_service_connections_closed_total{reason=\"idle_timeout\"} 2").await;
    env.service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_a_new_connection_waits_until_one_closes() {
    let env = start("", |c| c.server.max_connections = 2).await;
    let mut a = env.connect().await;
    let mut b = env.connect().await;
    for s in [&mut a, &mut b] {
        send_get(s, "/healthz").await;
        assert_eq!(read_response(s).await, (200, "ok".to_owned()));
    }
    // The third connection's TCP handshake completes in the kernel's backlog, but the service
    // does not take it while two are open.
    let mut c = env.connect().await;
    send_get(&mut c, "/healthz").await;
    let mut byte = [0u8; 1];
    let early = timeout(Duration::from_secs(1), c.read(&mut byte)).await;
    assert!(early.is_err(), "the third connection was served at the cap: {early:?}");
    send_get(&mut a, "/metrics").await;
    let (_, metrics) = read_response(&mut a).await;
    assert!(metrics.contains("event_service_connections 2\n"), "{metrics}");
    assert!(metrics.contains("event_service_connections_max 2\n"), "{metrics}");

    drop(b);
    match timeout(DEADLINE, read_response(&mut c)).await {
        Ok(answer) => assert_eq!(answer, (200, "ok".to_owned())),
        Err(_) => panic!("the waiting connection was not served after another closed"),
    }
    send_get(&mut a, "/metrics").await;
    let (_, metrics) = read_response(&mut a).await;
    assert!(metrics.contains("event_service_connections 2\n"), "{metrics}");
    let reached: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("event_service_connection_cap_reached_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(reached >= 1, "the cap was reached but not counted:\n{metrics}");
    drop((a, c));
    env.service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_topic_is_reported_but_does_not_make_the_service_unready() {
    let ghost_topic = testkit::unique_name("limits-ghost");
    let ghost = format!("[types.ghost]\ntopic = \"{ghost_topic}\"\n");
    let env = start(&ghost, |_| {}).await;
    let end = Instant::now() + DEADLINE;
    let (status, body) = loop {
        let (status, body) = env.get("/readyz").await;
        if status == 200 || Instant::now() > end {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, 200, "one missing topic made the service unready: {body}");
    assert!(body.contains("missing topics") && body.contains(&ghost_topic), "{body}");
    env.wait_for_metric("event_service_topics_missing 1\n").await;

    let r = env
        .http
        .post(format!("{}/v1/events", env.url))
        .bearer_auth(TOKEN)
        .header("content-type", "application/x-ndjson")
        .body("{\"type\":\"play\",\"fields\":{\"user\":\"u\"}}\n{\"type\":\"ghost\",\"fields\":{}}\n")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 200);
    let answer: serde_json::Value = serde_json::from_str(&r.text().await.expect("body")).expect("json");
    assert_eq!(answer["accepted"], 1, "{answer}");
    assert_eq!(answer["retryable"][0]["index"], 1, "the missing topic's event is retryable: {answer}");

    // Once the topic exists, a reload re-checks at once and the report clears.
    env.client.create_topic(&pubsub_client::Topic::new(&ghost_topic)).await.expect("create ghost topic");
    env.service.state().reload_registry().expect("reload");
    let end = Instant::now() + DEADLINE;
    while env.get("/readyz").await != (200, "ready".to_owned()) {
        assert!(Instant::now() < end, "still reported missing: {:?}", env.get("/readyz").await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    env.wait_for_metric("event_service_topics_missing 0\n").await;
    env.service.shutdown().await;
}

/// A TLS client that trusts the test CA and offers `alpn`.
fn tls_connector(ca: &std::path::Path, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca).expect("ca") {
        roots.add(cert.expect("ca cert")).expect("add ca");
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
}

/// Reads an open-connections gauge without opening a connection.
fn open_connections(env: &Env) -> String {
    let metrics = env.service.state().metrics.render();
    metrics.lines().find(|l| l.starts_with("event_service_connections ")).unwrap_or("").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_slow_headers_are_disconnected_and_connections_count_against_the_cap() {
    let dir = std::env::temp_dir().join(testkit::unique_name("limits-tls"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let certs = testkit::make_test_certs(&dir);
    let env = start("", |c| {
        c.tls = Some(event_service::TlsConfig::new(&certs.cert, &certs.key));
        c.server.header_read_timeout_secs = 1;
        c.server.idle_timeout_secs = 600;
        c.server.max_connections = 2;
    })
    .await;
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");

    // HTTP/2 by ALPN is served; the connection ends when the client drops it.
    let h2 =
        tls_connector(&certs.ca, &[b"h2"]).connect(name.clone(), env.connect().await).await.expect("tls");
    assert_eq!(h2.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(h2),
    )
    .await
    .expect("h2");
    let h2_conn = tokio::spawn(conn);
    let req = hyper::Request::get("https://localhost/healthz")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    assert_eq!(send.send_request(req).await.expect("h2 response").status().as_u16(), 200);
    drop(send);
    timeout(DEADLINE, h2_conn).await.expect("h2 connection ends").expect("join").expect("clean end");

    // Handshake done, then half a request line: dropped after the header timeout.
    let connector = tls_connector(&certs.ca, &[]);
    let mut slow = connector.connect(name.clone(), env.connect().await).await.expect("handshake");
    slow.write_all(b"GET /heal").await.expect("write");
    slow.flush().await.expect("flush");
    let mut chunk = [0u8; 256];
    match timeout(DEADLINE, slow.read(&mut chunk)).await {
        Ok(Ok(0) | Err(_)) => {}
        Ok(Ok(n)) => panic!("unexpected bytes {:?}", String::from_utf8_lossy(&chunk[..n])),
        Err(_) => panic!("a TLS connection with half a request line: still open after {DEADLINE:?}"),
    }
    drop(slow);
    let end = Instant::now() + DEADLINE;
    while open_connections(&env) != "event_service_connections 0" {
        assert!(Instant::now() < end, "connections still open: {}", open_connections(&env));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Two TLS connections at a cap of two: a third is not taken (not even its handshake)
    // until one closes.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = connector.connect(name.clone(), env.connect().await).await.expect("handshake");
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n").await.expect("write");
        let n = s.read(&mut chunk).await.expect("read");
        assert!(String::from_utf8_lossy(&chunk[..n]).starts_with("HTTP/1.1 200"), "served");
        held.push(s);
    }
    let mut third = tokio::spawn({
        let (connector, name, tcp) = (connector.clone(), name.clone(), env.connect().await);
        async move { connector.connect(name, tcp).await.map(drop) }
    });
    let early = timeout(Duration::from_secs(1), &mut third).await;
    assert!(early.is_err(), "the third TLS connection was taken at the cap: {early:?}");
    drop(held.pop());
    match timeout(DEADLINE, third).await {
        Ok(Ok(Ok(()))) => {}
        other => panic!("the waiting TLS connection was not taken after another closed: {other:?}"),
    }
    env.wait_for_metric_in_state("event_service_connections_closed_total{reason=\"header_timeout\"} 1").await;
    drop(held);
    env.service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_accepting_and_lets_a_request_in_flight_finish() {
    let proxy = testkit::FaultProxy::start(Emulator::shared().addr()).await;
    let env = start("", |c| c.emulator_host = Some(proxy.host())).await;
    proxy.push_faults([testkit::Fault::Delay(Duration::from_secs(2))]);
    let slow = {
        let (http, url) = (env.http.clone(), env.url.clone());
        tokio::spawn(async move {
            let r = http
                .post(format!("{url}/v1/events"))
                .bearer_auth(TOKEN)
                .header("content-type", "application/x-ndjson")
                .body(r#"{"type":"play","fields":{"user":"u"}}"#)
                .send()
                .await
                .expect("the request in flight is answered");
            (r.status().as_u16(), r.text().await.expect("body"))
        })
    };
    let end = Instant::now() + DEADLINE;
    while proxy.matched() == 0 {
        assert!(Instant::now() < end, "the request's publish never reached Pub/Sub");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let addr = env.service.local_addr();
    let shutdown = tokio::spawn(env.service.shutdown());
    let end = Instant::now() + DEADLINE;
    while TcpStream::connect(addr).await.is_ok() {
        assert!(Instant::now() < end, "still accepting after shutdown began");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = slow.await.expect("join");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"accepted\":1"), "{body}");
    timeout(DEADLINE, shutdown).await.expect("shutdown finishes").expect("join");
}
