//! The `event-service` binary as operators run it: config file, `registry apply`, SIGHUP
//! reloads, TLS, and a clean exit on SIGTERM.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use testkit::Emulator;

const BIN: &str = env!("CARGO_BIN_EXE_event-service");
const TOKEN: &str = "binary-test-token-0123";

/// Kills the child if the test fails before it stops it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn workdir() -> PathBuf {
    let dir = std::env::temp_dir().join(testkit::unique_name("event-service"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

fn write_registry(dir: &Path, play_topic: &str, extra: &str) {
    let text = format!(
        "[types.play]\ntopic = \"{play_topic}\"\nfields.user = {{ type = \"string\", required = true }}\n{extra}"
    );
    std::fs::write(dir.join("registry.toml"), text).expect("registry");
}

fn write_config(dir: &Path, port: u16, extra: &str) -> PathBuf {
    let text = format!(
        "listen = \"127.0.0.1:{port}\"\nproject = \"eventpipe-test\"\nregistry = \"registry.toml\"\n\
         emulator_host = \"{}\"\nshutdown_timeout_secs = 10\n[auth]\ntokens = [\"{TOKEN}\"]\n{extra}",
        Emulator::shared().host()
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).expect("config");
    path
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill").args([sig, &child.id().to_string()]).status().expect("kill").success();
    assert!(ok, "kill {sig} failed");
}

async fn post(http: &reqwest::Client, url: &str, body: &str) -> u16 {
    match http
        .post(format!("{url}/v1/events"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/x-ndjson")
        .body(body.to_owned())
        .send()
        .await
    {
        Ok(r) => {
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            match (status, text.contains("\"accepted\":1")) {
                (200, true) => 200,
                (200, false) => 299, // answered, but the event was rejected
                (s, _) => s,
            }
        }
        Err(_) => 0,
    }
}

async fn wait_until_ready(http: &reqwest::Client, url: &str) {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(format!("{url}/readyz")).send().await
            && r.status().as_u16() == 200
        {
            return;
        }
        assert!(Instant::now() < end, "service at {url} never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn run_to_end(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().expect("run event-service")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applies_the_registry_serves_reloads_on_sighup_and_exits_cleanly_on_sigterm() {
    let dir = workdir();
    let play = testkit::unique_name("bin-play");
    write_registry(&dir, &play, "");
    let port = free_port();
    let config = write_config(&dir, port, "");
    let cfg = config.to_str().expect("utf-8 path");
    let out = run_to_end(&["--config", cfg, "registry", "apply"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("created topic {play}")), "{stdout}");
    assert!(stdout.contains(&format!("created subscription {play}-exporter")), "{stdout}");

    let child = Running(
        Command::new(BIN)
            .args(["--config", cfg])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    wait_until_ready(&http, &url).await;
    assert_eq!(post(&http, &url, r#"{"type":"play","fields":{"user":"u"}}"#).await, 200);
    let click = r#"{"type":"click","fields":{}}"#;
    assert_ne!(post(&http, &url, click).await, 200, "click is not a type yet");

    // Adding a type is a registry change: apply it, then SIGHUP the running service.
    let click_topic = testkit::unique_name("bin-click");
    write_registry(&dir, &play, &format!("[types.click]\ntopic = \"{click_topic}\"\n"));
    assert!(run_to_end(&["--config", cfg, "registry", "apply"]).status.success());
    signal(&child.0, "-HUP");
    let end = Instant::now() + Duration::from_secs(30);
    while post(&http, &url, click).await != 200 {
        assert!(Instant::now() < end, "the reloaded registry never accepted click events");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut child = child;
    signal(&child.0, "-TERM");
    let end = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.0.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < end, "no exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_when_tls_is_configured() {
    let dir = workdir();
    let cert = testkit::make_test_certs(&dir).ca;
    let play = testkit::unique_name("tls-play");
    write_registry(&dir, &play, "");
    let port = free_port();
    let config = write_config(&dir, port, "[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n");
    let cfg = config.to_str().expect("utf-8 path");
    assert!(run_to_end(&["--config", cfg, "registry", "apply"]).status.success());
    let _child = Running(
        Command::new(BIN)
            .args(["--config", cfg])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    let pem = std::fs::read(&cert).expect("cert");
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"))
        .build()
        .expect("client");
    let url = format!("https://127.0.0.1:{port}");
    wait_until_ready(&https, &url).await;
    assert_eq!(post(&https, &url, r#"{"type":"play","fields":{"user":"u"}}"#).await, 200);
    let plain = post(&reqwest::Client::new(), &format!("http://127.0.0.1:{port}"), "{}").await;
    assert_eq!(plain, 0, "plain HTTP must not be served on the TLS port");
}

#[test]
fn bad_configuration_stops_the_start_with_the_problem_named() {
    let dir = workdir();
    let port = free_port();
    write_registry(&dir, "bad-cfg-play", "");
    let config = write_config(&dir, port, "listn = \"x\"\n");
    let out = run_to_end(&["--config", config.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown field `listn`"), "{stderr}");
    let config = write_config(&dir, port, "[tls]\ncert = \"missing.pem\"\nkey = \"missing.pem\"\n");
    let out = run_to_end(&["--config", config.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.pem"));
}

/// The peak resident set of process `pid`, in bytes (`VmHWM`).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM");
    kb * 1024
}

/// A gzip flood: 10 KiB requests that decompress to 10 MB of empty protobuf entries (five
/// million events), 50 at a time. The budget is decompressed bytes, the event count is checked
/// while splitting: the service's peak RSS stays within its byte budget (plus its own size),
/// every request is refused (413 or 429), and a real request is served afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_flood_stays_within_the_byte_budget() {
    const BUDGET: u64 = 48 * 1024 * 1024;
    let concurrency: usize =
        std::env::var("FLOOD_CONCURRENCY").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let dir = workdir();
    let play = testkit::unique_name("flood-play");
    write_registry(&dir, &play, "");
    let port = free_port();
    let config = write_config(&dir, port, &format!("[limits]\nmax_in_flight_bytes = {BUDGET}\n"));
    let cfg = config.to_str().expect("utf-8 path");
    assert!(run_to_end(&["--config", cfg, "registry", "apply"]).status.success());
    let child = Running(
        Command::new(BIN)
            .args(["--config", cfg])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    wait_until_ready(&http, &url).await;
    assert_eq!(post(&http, &url, r#"{"type":"play","fields":{"user":"u"}}"#).await, 200);
    let before = peak_rss(child.0.id());

    let bomb = {
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut z, &[0x0a, 0x00].repeat(5_000_000)).expect("gzip");
        bytes::Bytes::from(z.finish().expect("gzip"))
    };
    assert!(bomb.len() < 64 * 1024, "a small body: {} bytes", bomb.len());
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for _round in 0..3 {
        let requests = (0..concurrency).map(|_| {
            let (http, url, bomb) = (http.clone(), url.clone(), bomb.clone());
            tokio::spawn(async move {
                let r = http
                    .post(format!("{url}/v1/events"))
                    .bearer_auth(TOKEN)
                    .header("content-type", "application/x-protobuf")
                    .header("content-encoding", "gzip")
                    .body(bomb)
                    .send()
                    .await
                    .expect("request");
                r.status().as_u16()
            })
        });
        for s in futures::future::join_all(requests).await {
            *statuses.entry(s.expect("join")).or_default() += 1;
        }
    }
    let peak = peak_rss(child.0.id());
    assert!(statuses.keys().all(|s| [413, 429].contains(s)), "every flood request refused: {statuses:?}");
    assert!(statuses.get(&413).is_some_and(|n| *n > 0), "some were read and found too many: {statuses:?}");
    assert!(
        peak <= before + BUDGET + 16 * 1024 * 1024,
        "peak RSS {} MiB, {} MiB before the flood, budget {} MiB",
        peak >> 20,
        before >> 20,
        BUDGET >> 20
    );
    eprintln!("gzip flood: peak RSS {} MiB ({} MiB before), statuses {statuses:?}", peak >> 20, before >> 20);
    assert_eq!(post(&http, &url, r#"{"type":"play","fields":{"user":"u"}}"#).await, 200);
}
