//! Google's official Pub/Sub emulator, started on a free port.
//!
//! The emulator is a JVM started by a shell script. It is not started directly but through a
//! small `sh` watchdog that runs in its own process group: the watchdog starts the emulator in
//! the background and polls whether the test process is still alive every 0.5 s. As soon as
//! the test process is gone (normal exit, panic, `SIGKILL`), the watchdog kills its whole
//! process group, JVM included. This matters for [`Emulator::shared`], whose instance lives in
//! a `static` and is therefore never dropped.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Environment variable that overrides the emulator binary.
pub const EMULATOR_BIN_ENV: &str = "PUBSUB_EMULATOR_BIN";

/// The emulator binary shipped with the Google Cloud SDK of the machine image, used when
/// [`EMULATOR_BIN_ENV`] is not set.
pub const DEFAULT_EMULATOR_BIN: &str =
    "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator";

/// How long one start attempt may take until the emulator answers `GET /`.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// Pause between two readiness checks.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Retries (each with a new port) after an attempt whose emulator died or lost the port race.
const RETRIES: usize = 3;
/// Lines of the emulator log quoted in a start-up failure.
const LOG_TAIL_LINES: usize = 20;
/// If the emulator answers `GET /` this long without logging that it listens on our port
/// (a custom [`EMULATOR_BIN_ENV`] might log differently), it is considered ready anyway.
const UNCONFIRMED_READY_AFTER: Duration = Duration::from_secs(10);

/// The watchdog. Positional arguments: `$1` test pid, `$2` emulator binary, `$3` port,
/// `$4` log file (removed when the test process is gone).
/// `$$` is the watchdog's pid, which is also the process group id (`process_group(0)`).
/// Exits with the emulator's status when the emulator dies on its own.
/// (dash's `kill` builtin does not accept `--`, hence `kill -9 -$$`.)
const WATCHDOG_SCRIPT: &str = r#"
test_pid=$1
"$2" --host=127.0.0.1 --port="$3" </dev/null &
emulator=$!
while kill -0 "$test_pid" 2>/dev/null; do
    if ! kill -0 "$emulator" 2>/dev/null; then
        wait "$emulator"
        exit $?
    fi
    sleep 0.5
done
rm -f "$4"
kill -9 -$$
"#;

static LOG_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A running Pub/Sub emulator listening on `127.0.0.1` on a free port.
///
/// Point clients at it with `PUBSUB_EMULATOR_HOST=`[`host()`](Emulator::host) or
/// [`base_url()`](Emulator::base_url). Dropping a dedicated instance ([`Emulator::start`])
/// kills it; the [`shared`](Emulator::shared) instance dies with the test process.
#[derive(Debug)]
pub struct Emulator {
    addr: SocketAddr,
    bin: PathBuf,
    log_path: PathBuf,
    /// The watchdog `sh`; its pid is the process group id.
    watchdog: Child,
    /// The watchdog has been reaped: its pid (and group id) may be reused, never signal it.
    reaped: bool,
    /// Keep the log file when dropped (a failed start attempt).
    keep_log: bool,
}

/// Why a start attempt failed.
struct AttemptError {
    message: String,
    /// The emulator died early or could not bind its port: worth another try on a new port.
    retryable: bool,
}

impl Emulator {
    /// Returns the emulator shared by all tests of this test process, starting it on first use.
    ///
    /// Blocking and independent of any async runtime, so it can be called from any test,
    /// including `#[tokio::test]` ones. A failed start is remembered: later callers panic with
    /// the same message instead of waiting for the emulator again.
    ///
    /// # Panics
    ///
    /// Panics if the emulator cannot be started (see [`Emulator::start`]).
    #[track_caller]
    pub fn shared() -> &'static Emulator {
        static SHARED: OnceLock<Result<Emulator, String>> = OnceLock::new();
        match SHARED.get_or_init(Emulator::try_start) {
            Ok(emulator) => emulator,
            Err(message) => panic!("{message}"),
        }
    }

    /// Starts a dedicated emulator, for tests that need an empty or exclusive instance.
    ///
    /// Blocks until the emulator answers HTTP requests (the JVM takes a few seconds). Dropping
    /// the returned value kills the emulator.
    ///
    /// # Panics
    ///
    /// Panics if the binary does not exist, or the emulator is not ready within 90 s, or it
    /// died on every attempt; the message names the binary and quotes the end of its log.
    #[track_caller]
    pub fn start() -> Emulator {
        match Emulator::try_start() {
            Ok(emulator) => emulator,
            Err(message) => panic!("{message}"),
        }
    }

    /// `127.0.0.1:PORT`, the value for `PUBSUB_EMULATOR_HOST`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The socket address the emulator listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, the base of the REST API (`{base_url}/v1/projects/...`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The file receiving the emulator's stdout and stderr. It is deleted when the emulator
    /// is shut down (dropped, or the test process is gone); the logs of failed start attempts
    /// are kept.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The emulator binary (or start script) this instance runs.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    fn try_start() -> Result<Emulator, String> {
        let bin = std::env::var_os(EMULATOR_BIN_ENV)
            .map_or_else(|| PathBuf::from(DEFAULT_EMULATOR_BIN), PathBuf::from);
        if !bin.is_file() {
            return Err(format!(
                "Pub/Sub emulator binary {} does not exist (set {EMULATOR_BIN_ENV} to override)",
                bin.display()
            ));
        }
        let mut attempt = 0;
        loop {
            match Emulator::start_attempt(&bin) {
                Ok(emulator) => return Ok(emulator),
                Err(e) if e.retryable && attempt < RETRIES => attempt += 1,
                Err(e) => {
                    return Err(format!(
                        "failed to start the Pub/Sub emulator {} (attempt {} of {}): {}",
                        bin.display(),
                        attempt + 1,
                        RETRIES + 1,
                        e.message
                    ));
                }
            }
        }
    }

    fn start_attempt(bin: &Path) -> Result<Emulator, AttemptError> {
        let port = free_port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let log_path = std::env::temp_dir().join(format!(
            "testkit-pubsub-emulator-{}-{}-{port}.log",
            std::process::id(),
            LOG_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let fatal = |message: String| AttemptError { message, retryable: false };
        let log = File::create(&log_path)
            .map_err(|e| fatal(format!("cannot create log {}: {e}", log_path.display())))?;
        let log_err = log.try_clone().map_err(|e| fatal(format!("cannot clone log handle: {e}")))?;
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("testkit-emulator-watchdog") // $0
            .arg(std::process::id().to_string()) // $1
            .arg(bin) // $2
            .arg(port.to_string()) // $3
            .arg(&log_path) // $4
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0)
            .spawn()
            .map_err(|e| fatal(format!("cannot spawn the watchdog `sh`: {e}")))?;

        let mut emulator =
            Emulator { addr, bin: bin.to_path_buf(), log_path, watchdog, reaped: false, keep_log: false };
        match emulator.wait_ready() {
            Ok(()) => Ok(emulator),
            Err(mut e) => {
                emulator.kill();
                e.message = format!(
                    "{}; log {}, last lines:\n{}",
                    e.message,
                    emulator.log_path.display(),
                    log_tail(&emulator.log_path, LOG_TAIL_LINES)
                );
                // Keep the log of a failed attempt for post-mortem debugging.
                emulator.keep_log = true;
                Err(e)
            }
        }
    }

    /// Waits until the emulator answers `GET /` with `200 Ok` and (normally) has logged that
    /// it listens on our port, so that an emulator of another process that won the race for
    /// the port is not mistaken for ours.
    fn wait_ready(&mut self) -> Result<(), AttemptError> {
        let port = self.addr.port();
        let listening_line = format!("listening on {port}");
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut answering_since: Option<Instant> = None;
        loop {
            match self.watchdog.try_wait() {
                Ok(Some(status)) => {
                    self.reaped = true;
                    return Err(AttemptError {
                        message: format!("the emulator exited early ({status})"),
                        retryable: true,
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(AttemptError {
                        message: format!("cannot check the emulator process: {e}"),
                        retryable: false,
                    });
                }
            }
            let log = fs::read_to_string(&self.log_path).unwrap_or_default();
            // On a port race the JVM logs a BindException but does not exit.
            if log.contains("BindException") || log.contains("Address already in use") {
                return Err(AttemptError {
                    message: format!("port {port} is already in use"),
                    retryable: true,
                });
            }
            if probe(self.addr) {
                let confirmed = log.lines().any(|line| line.trim_end().ends_with(&listening_line));
                let since = *answering_since.get_or_insert_with(Instant::now);
                if confirmed || since.elapsed() >= UNCONFIRMED_READY_AFTER {
                    return Ok(());
                }
            } else {
                answering_since = None;
            }
            if Instant::now() >= deadline {
                return Err(AttemptError {
                    message: format!(
                        "the emulator did not answer GET / on {} within {READY_TIMEOUT:?}",
                        self.addr
                    ),
                    retryable: false,
                });
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Kills the whole process group (watchdog and JVM) and reaps the watchdog.
    fn kill(&mut self) {
        if self.reaped {
            return;
        }
        kill_process_group(&mut self.watchdog);
        self.reaped = true;
    }
}

/// Kills the process group led by `leader` (a child spawned with `process_group(0)`, such as a
/// watchdog `sh`) with `SIGKILL` and reaps the leader. Call it at most once per child: after
/// the reap its pid (and group id) may be reused.
pub(crate) fn kill_process_group(leader: &mut Child) {
    let pgid = leader.id();
    // procps `kill`; a negative pid addresses the process group.
    let status = Command::new("kill")
        .arg("-9")
        .arg("--")
        .arg(format!("-{pgid}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        // The group is gone already, or `kill` is missing: at least kill the leader.
        let _ = leader.kill();
    }
    let _ = leader.wait();
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.kill();
        if !self.keep_log {
            let _ = fs::remove_file(&self.log_path);
        }
    }
}

/// A port that was free a moment ago. Another process may take it before the emulator binds
/// it; [`Emulator::start_attempt`] detects that and the caller retries.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("cannot bind 127.0.0.1:0 to find a free port")
}

/// One readiness check: a raw HTTP/1.0 `GET /`, which the emulator answers with `200` and the
/// body `Ok`. The emulator keeps the connection open despite HTTP/1.0, so the answer is read
/// up to its `content-length` rather than to EOF.
fn probe(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let timeout = Some(Duration::from_secs(2));
    if stream.set_read_timeout(timeout).is_err() || stream.set_write_timeout(timeout).is_err() {
        return false;
    }
    if stream.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut response = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(ok) = parse_probe_response(&response, false) {
            return ok;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return parse_probe_response(&response, true).unwrap_or(false),
            Ok(n) if response.len() < 64 * 1024 => response.extend_from_slice(&chunk[..n]),
            Ok(_) | Err(_) => return false,
        }
    }
}

/// Judges a (possibly partial) answer to the readiness probe: `None` while more bytes are
/// needed, else whether it is `200` with the body `Ok`.
fn parse_probe_response(response: &[u8], eof: bool) -> Option<bool> {
    let text = String::from_utf8_lossy(response);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return if eof { Some(false) } else { None };
    };
    let mut lines = head.lines();
    let status_ok =
        lines.next().is_some_and(|line| line.starts_with("HTTP/1.") && line.split(' ').nth(1) == Some("200"));
    if !status_ok {
        return Some(false);
    }
    let content_length = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if name.trim().eq_ignore_ascii_case("content-length") {
            value.trim().parse::<usize>().ok()
        } else {
            None
        }
    });
    match content_length {
        Some(len) if body.len() >= len => Some(body[..len].trim() == "Ok"),
        Some(_) | None if !eof => None,
        Some(_) | None => Some(body.trim() == "Ok"),
    }
}

/// The last `n` lines of a log file, or a note why it cannot be read.
pub(crate) fn log_tail(path: &Path, n: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("<cannot read log: {e}>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_is_nonzero() {
        assert_ne!(free_port(), 0);
    }

    #[test]
    fn probe_fails_without_server() {
        let port = free_port();
        assert!(!probe(SocketAddr::from((Ipv4Addr::LOCALHOST, port))));
    }

    #[test]
    fn probe_accepts_ok_and_rejects_other_answers() {
        fn serve_once(answer: &'static [u8]) -> SocketAddr {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
            let addr = listener.local_addr().expect("local_addr");
            thread::spawn(move || {
                let (mut stream, _) = listener.accept().expect("accept");
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf);
                stream.write_all(answer).expect("write");
            });
            addr
        }
        assert!(probe(serve_once(b"HTTP/1.0 200 OK\r\ncontent-length: 3\r\n\r\nOk\n")));
        assert!(!probe(serve_once(b"HTTP/1.0 404 Not Found\r\ncontent-length: 9\r\n\r\nNot Found")));
        assert!(!probe(serve_once(b"HTTP/1.0 200 OK\r\ncontent-length: 5\r\n\r\nHello")));
    }

    #[test]
    fn log_tail_returns_last_lines() {
        let path = std::env::temp_dir().join(format!(
            "testkit-log-tail-{}-{}.log",
            std::process::id(),
            LOG_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let text: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        fs::write(&path, text).expect("write log");
        let tail = log_tail(&path, 3);
        fs::remove_file(&path).expect("remove log");
        assert_eq!(tail, "line 28\nline 29\nline 30");
        assert!(log_tail(&path, 3).starts_with("<cannot read log"));
    }

    #[test]
    fn shared_emulator_answers() {
        let emulator = Emulator::shared();
        assert!(probe(emulator.addr()));
        assert_eq!(emulator.host(), format!("127.0.0.1:{}", emulator.addr().port()));
        assert_eq!(emulator.base_url(), format!("http://{}", emulator.host()));
        // Same instance on every call.
        assert!(std::ptr::eq(emulator, Emulator::shared()));
    }

    #[test]
    fn dedicated_emulator_is_killed_on_drop() {
        let emulator = Emulator::start();
        let addr = emulator.addr();
        let log_path = emulator.log_path().to_path_buf();
        assert_ne!(addr, Emulator::shared().addr());
        assert!(probe(addr));
        drop(emulator);
        assert!(!probe(addr), "emulator still answers after drop");
        assert!(!log_path.exists(), "log not removed on drop");
    }
}
