//! The real `exporter` binary killed with SIGKILL at random moments (mid-file, between a
//! write and its acknowledgement, mid-close) and restarted: every event still ends in exactly
//! one closed bucket, once, and every manifest matches its files.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Env, closed_ids, event, h0, manifests, wait_for};

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
    let events: Vec<_> = (0..n).map(|i| event(&format!("k{i:05}"), h0() + i * 3)).collect();
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

/// Names of the files under `root` whose name starts with `prefix`.
fn files_starting(root: &std::path::Path, prefix: &str) -> Vec<String> {
    common::files_named(root, prefix)
        .iter()
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_close_is_repaired_by_the_next_start() {
    let env = Env::new().await;
    // Ten events per file: closing the hour writes 300 data files, a window wide enough to
    // kill the exporter in.
    let config = env.config_file(0, 1);
    let text =
        std::fs::read_to_string(&config).expect("config").replace("max_events = 300", "max_events = 10");
    std::fs::write(&config, text).expect("config");
    let root = env.root();
    let n = 3000;
    let events: Vec<_> = (0..n).map(|i| event(&format!("c{i:05}"), h0() + i)).collect();
    env.publish(&events).await;
    let mut child = spawn(&config);
    // Kill as soon as the first data file of the close appears.
    let closing =
        wait_for_fast(Duration::from_secs(120), || !files_starting(&root, "data-").is_empty()).await;
    kill9(&mut child);
    assert!(closing, "the hour never started closing");
    let data_at_kill = files_starting(&root, "data-").len();
    assert!(manifests(&root).is_empty(), "the close finished before the kill ({data_at_kill} data files)");
    assert!(data_at_kill < 300, "all data files were written before the kill");

    let mut child = spawn(&config);
    let closed = wait_for(Duration::from_secs(60), || manifests(&root).len() == 1).await;
    kill9(&mut child);
    assert!(closed, "the restarted exporter did not close the hour");
    let ids = closed_ids(&root); // checks the manifest against its files
    assert_eq!(ids.len(), n as usize);
    assert!(ids.values().all(|c| *c == 1), "an id twice");
    let (_, m) = &manifests(&root)[0];
    assert_eq!(m.event_count, n as u64);
    assert_eq!(m.files.len(), 300);
    // What the killed close left is not listed: readers never see it.
    let listed: std::collections::HashSet<&str> = m.files.iter().map(|f| f.name.as_str()).collect();
    let unlisted =
        files_starting(&root, "data-").into_iter().filter(|n| !listed.contains(n.as_str())).count();
    assert_eq!(unlisted, data_at_kill, "the first attempt's files stay unlisted");
}

/// Like `wait_for`, polling every millisecond (a close takes a fraction of a second).
async fn wait_for_fast(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    cond()
}
