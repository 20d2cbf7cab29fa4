//! The real `exporter` binary killed with SIGKILL at random moments (mid-file, between a
//! write and its acknowledgement, mid-close) and restarted: every event still ends in exactly
//! one closed bucket, once, and every manifest matches its files.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Env, H10, closed_ids, event, manifests, wait_for};

fn spawn(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_exporter"))
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn exporter")
}

fn kill9(child: &mut Child) {
    let _ = Command::new("kill").arg("-KILL").arg(child.id().to_string()).status();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    let env = Env::new().await;
    // A lateness of an hour keeps every hour open until the exporter has been idle for 15 s
    // (longer than a redelivery after a kill takes), so every event lands in its own hour.
    let config = env.config_file(3600, 15);
    let root = env.root();
    let n = 3000;
    let events: Vec<_> = (0..n).map(|i| event(&format!("k{i:05}"), H10 + i * 3)).collect();
    env.publish(&events).await;
    // Re-published copies, as a re-sending tailer would produce.
    env.publish(&events[1000..1300]).await;
    let mut child = spawn(&config);
    for _ in 0..5 {
        // Kill after a random number of further events were written: mid-file, between a
        // write and its acknowledgement, or (last round) while hours are being closed.
        let target = env.part_events() + fastrand::usize(100..700);
        wait_for(Duration::from_secs(30), || env.part_events() >= target || !manifests(&root).is_empty())
            .await;
        kill9(&mut child);
        child = spawn(&config);
    }
    let closed = wait_for(Duration::from_secs(120), || {
        manifests(&root).len() == 3 && closed_ids(&root).len() == n as usize
    })
    .await;
    kill9(&mut child);
    let ids = closed_ids(&root);
    assert!(closed, "{} manifests, {} ids", manifests(&root).len(), ids.len());
    assert_eq!(ids.len(), n as usize);
    assert!(ids.values().all(|c| *c == 1), "an id twice");
}
