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
        .env("RUST_LOG", std::env::var("EXPORTER_TEST_LOG").unwrap_or_else(|_| "warn".into()))
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
    // Three hours with events; empty hours up to the watermark are closed too.
    let closed = wait_for(Duration::from_secs(120), || {
        with_events(&root) == 3 && closed_ids(&root).len() == n as usize
    })
    .await;
    kill9(&mut child);
    let ids = closed_ids(&root);
    assert!(closed, "{}", not_closed(&root, &ids, n as usize, env.part_events()));
    assert_eq!(ids.len(), n as usize);
    assert!(ids.values().all(|c| *c == 1), "an id twice");
}

/// What a failed wait found: each closed hour's count, the staged part events, and the hours
/// (from their event times, 3 s apart from `h0`) of the ids in no closed hour.
fn not_closed(
    root: &std::path::Path,
    ids: &std::collections::HashMap<String, usize>,
    n: usize,
    parts: usize,
) -> String {
    let hours: Vec<String> = manifests(root)
        .iter()
        .map(|(dir, m)| format!("{}: {} events ({} late)", dir.display(), m.event_count, m.late_events))
        .collect();
    let mut missing: std::collections::BTreeMap<usize, usize> = std::collections::BTreeMap::new();
    for i in 0..n {
        if !ids.contains_key(&format!("k{i:05}")) {
            *missing.entry(i * 3 / 3600).or_default() += 1;
        }
    }
    format!(
        "{} ids in closed hours of {n}; closed hours: {hours:?}; events in staged parts: {parts}; \
         missing ids by hour after h0: {missing:?}",
        ids.len()
    )
}

/// Closed hours holding events.
fn with_events(root: &std::path::Path) -> usize {
    manifests(root).iter().filter(|(_, m)| m.event_count > 0).count()
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
    // Kill as soon as the close has staged its first merged file.
    let closing =
        wait_for_fast(Duration::from_secs(120), || !files_starting(&root, "merged-").is_empty()).await;
    kill9(&mut child);
    assert!(closing, "the hour never started closing");
    let staged_at_kill = files_starting(&root, "merged-").len();
    assert!(with_events(&root) == 0, "the close finished before the kill ({staged_at_kill} files staged)");
    assert!(staged_at_kill < 300, "all data files were staged before the kill");
    assert!(files_starting(&root, "data-").is_empty(), "nothing reaches the hour folder before the commit");

    let mut child = spawn(&config);
    let closed = wait_for(Duration::from_secs(60), || with_events(&root) == 1).await;
    // Staging is deleted right after `_SUCCESS`.
    let cleaned = wait_for(Duration::from_secs(30), || files_starting(&root, "merged-").is_empty()).await;
    kill9(&mut child);
    assert!(closed, "the restarted exporter did not close the hour");
    let ids = closed_ids(&root); // checks the manifest against its files
    assert_eq!(ids.len(), n as usize);
    assert!(ids.values().all(|c| *c == 1), "an id twice");
    let (dir, m) = manifests(&root).into_iter().find(|(_, m)| m.event_count > 0).expect("the hour");
    assert_eq!(m.event_count, n as u64);
    assert_eq!(m.files.len(), 300);
    // The hour folder holds exactly the listed files plus `_` metadata: what the killed close
    // staged never reaches it, and its staging is gone.
    let listed: std::collections::HashSet<&str> = m.files.iter().map(|f| f.name.as_str()).collect();
    let in_folder: Vec<String> = std::fs::read_dir(&dir)
        .expect("hour folder")
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('_') && !n.starts_with('.'))
        .collect();
    assert_eq!(in_folder.len(), listed.len(), "only listed files: {in_folder:?}");
    assert!(in_folder.iter().all(|n| listed.contains(n.as_str())));
    assert!(cleaned, "the staging of the closed hour is deleted");
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
