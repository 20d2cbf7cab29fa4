//! The local directory store fsyncs a written file, and its directories up to the store's
//! root, before the write is reported done.
//!
//! The test runs this test binary again, as a child under `strace -f -y` tracing `fsync`,
//! `fdatasync` and `openat`; the child ([`fsync_child`]) writes through
//! `exporter::storage::open(&StorageConfig::Local { .. })` and, after each write returns, opens
//! a marker name that does not exist (an `openat` in the trace). strace's `-y` prints the path
//! behind every descriptor (`fsync(7</dir/file>) = 0`), which maps each fsync to the file
//! `openat` opened. Between one marker and the next, the written file and each directory from
//! its parent up to the root must have been fsynced with success: a sync that returns after
//! the marker did not happen before the write returned (the thread that ran it is stopped by
//! strace until its exit is printed, and only then can the write's future complete).
//!
//! Without strace the test is skipped with a message, unless `CI=true`: then it fails.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use exporter::storage::{self, StorageConfig};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};

/// Set in the child: the store's directory.
const CHILD_ENV: &str = "EXPORTER_FSYNC_CHILD_STORE";
/// What the child prints when it has done every write.
const CHILD_DONE: &str = "fsync-child: all writes done";

/// The writes of the child, in order: (marker, object written, what it is).
const WRITES: [(&str, &str, &str); 5] = [
    ("put", "clicks/2024-01-01/05/part-a.avro", "an overwriting put_opts"),
    ("create", "_staging/clicks/2024-01-01/05/final-1.avro", "a create-only put_opts"),
    ("copy_if_not_exists", "clicks/2024-01-01/06/part-0.avro", "copy_if_not_exists"),
    ("multipart", "_staging/big/upload", "a completed multipart upload"),
    ("rename", "_staging/moved/upload", "rename"),
];

/// The marker opened after the write `name` returned: a name that does not exist, next to the
/// store's directory.
fn marker(store_dir: &Path, name: &str) -> PathBuf {
    store_dir.with_file_name(format!("fsync-marker-{name}"))
}

/// Leaves `name` in the trace: an `openat` of a marker that fails with `ENOENT`.
fn mark(store_dir: &Path, name: &str) {
    assert!(std::fs::File::open(marker(store_dir, name)).is_err(), "the marker must not exist");
}

/// The child: does the writes of [`WRITES`] when run by [`writes_are_fsynced_before_they_return`],
/// nothing otherwise.
#[test]
fn fsync_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV).map(PathBuf::from) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let store = storage::open(&StorageConfig::Local { path: dir.clone() }).expect("open the store");
        let path = |name: &str| ObjectPath::parse(name).expect("object path");
        mark(&dir, "start");

        let [put, create, copy, multipart, rename] = WRITES.map(|(_, name, _)| name);
        store
            .put_opts(&path(put), PutPayload::from_static(b"alpha"), PutOptions::default())
            .await
            .expect("put");
        mark(&dir, "put");

        let opts = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        store.put_opts(&path(create), PutPayload::from_static(b"merged"), opts).await.expect("create");
        mark(&dir, "create");

        store.copy_if_not_exists(&path(create), &path(copy)).await.expect("copy_if_not_exists");
        mark(&dir, "copy_if_not_exists");

        let mut upload = store.put_multipart(&path(multipart)).await.expect("multipart");
        upload.put_part(PutPayload::from_static(b"one,")).await.expect("part 1");
        upload.put_part(PutPayload::from_static(b"two")).await.expect("part 2");
        upload.complete().await.expect("complete");
        mark(&dir, "multipart");

        store.rename(&path(multipart), &path(rename)).await.expect("rename");
        mark(&dir, "rename");
    });
    println!("{CHILD_DONE}");
}

/// What the trace shows, in order.
#[derive(Debug, PartialEq)]
enum Event {
    /// A successful `fsync` or `fdatasync` of the descriptor of this path returned.
    Synced(PathBuf),
    /// The child opened the marker of this write.
    Marker(String),
}

/// The path in `-y` notation after the first `(` of `line`: `fsync(7</a/b>) = 0` -> `/a/b`.
fn descriptor_path(line: &str) -> Option<PathBuf> {
    let args = &line[line.find('(')? + 1..];
    let start = args.find('<')? + 1;
    let len = args[start..].find('>')?;
    Some(PathBuf::from(&args[start..start + len]))
}

/// Whether a finished syscall line (`... = 0`) returned 0.
fn returned_zero(line: &str) -> bool {
    line.rsplit_once(" = ").is_some_and(|(_, result)| result.trim() == "0")
}

/// The sync and marker events of an `strace -f -y` trace. A call split across lines
/// (`<unfinished ...>`, then `<... fsync resumed>`) counts where it returned.
fn parse_trace(trace: &str, marker_prefix: &str) -> Vec<Event> {
    let mut events = Vec::new();
    // Per thread: the path of its fsync in progress.
    let mut pending: HashMap<String, PathBuf> = HashMap::new();
    for line in trace.lines() {
        let (pid, call) = match line.split_once(' ') {
            Some((pid, rest)) if pid.bytes().all(|b| b.is_ascii_digit()) => {
                (pid.to_owned(), rest.trim_start())
            }
            _ => (String::new(), line),
        };
        let is_sync = call.starts_with("fsync(") || call.starts_with("fdatasync(");
        if is_sync && call.ends_with("<unfinished ...>") {
            if let Some(path) = descriptor_path(call) {
                pending.insert(pid, path);
            }
        } else if is_sync {
            if let Some(path) = descriptor_path(call).filter(|_| returned_zero(call)) {
                events.push(Event::Synced(path));
            }
        } else if call.starts_with("<... fsync resumed>") || call.starts_with("<... fdatasync resumed>") {
            if let Some(path) = pending.remove(&pid).filter(|_| returned_zero(call)) {
                events.push(Event::Synced(path));
            }
        } else if call.starts_with("openat(") {
            let quoted = format!("\"{marker_prefix}");
            if let Some(start) = call.find(&quoted) {
                let rest = &call[start + quoted.len()..];
                if let Some(end) = rest.find('"') {
                    events.push(Event::Marker(rest[..end].to_owned()));
                }
            }
        }
    }
    events
}

/// Whether strace can be run; a missing strace fails the test under CI.
fn strace_available() -> bool {
    let found = Command::new("strace").arg("-V").output().is_ok_and(|out| out.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "strace is not installed (CI=true: not skipping); scripts/test installs it"
        );
        eprintln!(
            "SKIPPED writes_are_fsynced_before_they_return: strace is not installed (apt-get install strace)"
        );
    }
    found
}

#[test]
fn writes_are_fsynced_before_they_return() {
    if !strace_available() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = std::fs::canonicalize(tmp.path()).expect("canonical tempdir");
    let store_dir = base.join("store");
    let trace_file = base.join("strace.txt");
    let exe = std::env::current_exe().expect("the test binary");
    // `timeout` bounds a child that hangs under strace.
    let output = Command::new("timeout")
        .args(["--kill-after=10", "300", "strace", "-f", "-qq", "-y"])
        .args(["-e", "trace=fsync,fdatasync,openat", "-o"])
        .arg(&trace_file)
        .arg(&exe)
        .args(["--exact", "fsync_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &store_dir)
        .output()
        .expect("run strace");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the child under strace failed: {}\n{stdout}\n{stderr}", output.status);
    assert!(stdout.contains(CHILD_DONE), "the child did not do its writes:\n{stdout}\n{stderr}");

    let trace = std::fs::read_to_string(&trace_file).expect("read the trace");
    let marker_prefix = marker(&store_dir, "").to_string_lossy().into_owned();
    let events = parse_trace(&trace, &marker_prefix);
    let position = |name: &str| {
        events
            .iter()
            .position(|e| *e == Event::Marker(name.to_owned()))
            .unwrap_or_else(|| panic!("no marker {name:?} in the trace:\n{trace}"))
    };

    let mut previous = position("start");
    let mut failures = Vec::new();
    for (name, object, what) in WRITES {
        let at = position(name);
        assert!(at > previous, "marker {name:?} before the previous one");
        let synced: Vec<&Path> = events[previous..at]
            .iter()
            .filter_map(|e| match e {
                Event::Synced(path) => Some(path.as_path()),
                Event::Marker(_) => None,
            })
            .collect();
        let file = store_dir.join(object);
        let dirs = file.ancestors().skip(1).take_while(|dir| dir.starts_with(&store_dir));
        for path in std::iter::once(file.as_path()).chain(dirs) {
            if !synced.contains(&path) {
                failures.push(format!("{what}: {} was not fsynced before it returned", path.display()));
            }
        }
        previous = at;
    }
    assert!(failures.is_empty(), "{}\n\nsyncs seen: {events:#?}", failures.join("\n"));
}

#[test]
fn trace_parsing() {
    let trace = "\
100 openat(AT_FDCWD</w>, \"/t/fsync-marker-start\", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)
101 fsync(7</t/store/a/f> <unfinished ...>
102 fsync(8</t/store/b>) = 0
102 fsync(9</t/store/c>) = -1 EIO (Input/output error)
101 <... fsync resumed>) = 0
101 fdatasync(3</t/store/d>) = 0
100 openat(AT_FDCWD</w>, \"/t/fsync-marker-put\", O_RDONLY|O_CLOEXEC <unfinished ...>
openat(AT_FDCWD</w>, \"/t/other\", O_RDONLY) = 3</t/other>
";
    assert_eq!(
        parse_trace(trace, "/t/fsync-marker-"),
        [
            Event::Marker("start".into()),
            Event::Synced("/t/store/b".into()),
            Event::Synced("/t/store/a/f".into()),
            Event::Synced("/t/store/d".into()),
            Event::Marker("put".into()),
        ]
    );
}
