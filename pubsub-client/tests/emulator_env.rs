//! `PUBSUB_EMULATOR_HOST` switches the client to the emulator, as with Google's clients.
//!
//! Setting an environment variable inside a multi-threaded test process is unsound, so the test
//! re-runs itself as a child process with the variable set.

mod common;

use std::process::Command;

use pubsub_client::{Client, Credentials, Message, Topic};
use testkit::Emulator;

const CHILD: &str = "EVENTPIPE_TEST_CHILD";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_host_variable_switches_to_plain_http_without_credentials() {
    if std::env::var_os(CHILD).is_some() {
        // Child: nothing but the environment says where the emulator is, and the default
        // credentials would fail here if they were looked up.
        let client = Client::builder()
            .with_project(common::PROJECT)
            .with_credentials(Credentials::ApplicationDefault)
            .build()
            .await
            .expect("builds without credentials");
        assert!(client.base_url().starts_with("http://127.0.0.1:"), "{}", client.base_url());
        let topic = testkit::unique_name("env");
        client.create_topic(&Topic::new(&topic)).await.expect("topic on the emulator");
        let publisher = client.publisher(&topic).expect("publisher");
        let id =
            publisher.publish(&Message::new("via env")).await.expect("accepted").await.expect("published");
        println!("CHILD-PUBLISHED {id}");
        return;
    }
    let host = Emulator::shared().host();
    let exe = std::env::current_exe().expect("test binary path");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(exe)
            .args([
                "--exact",
                "the_emulator_host_variable_switches_to_plain_http_without_credentials",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .env("PUBSUB_EMULATOR_HOST", host)
            .env("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/credentials.json")
            .output()
            .expect("child runs")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("CHILD-PUBLISHED"),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
