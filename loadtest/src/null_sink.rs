//! `loadtest null-sink`: just enough of the Pub/Sub publish API to measure a publisher without
//! an emulator in the way. Each publish body is parsed (gunzipped when it is gzip), its messages
//! counted and as many ids answered; topic and subscription admin calls succeed.
//!
//! `--target null` runs it as a child process ([`NullSink::spawn`]), so the CPU figures of the
//! publishing process are its own.

use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[derive(Default)]
struct Counters {
    messages: AtomicU64,
    requests: AtomicU64,
}

/// Serves on `127.0.0.1:port` (0 = any), prints the address on stdout, and runs until stdin
/// closes (the parent is gone) or SIGTERM; then prints its totals as JSON.
pub async fn serve(port: u16) -> anyhow::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.context("binding the null sink")?;
    println!("{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    let counters = Arc::new(Counters::default());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        let _ = stop_tx.send(());
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let accept = async {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            let counters = counters.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| answer(req, counters.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    };
    tokio::select! {
        () = accept => {}
        _ = stop_rx => {}
        _ = term.recv() => {}
    }
    let totals = serde_json::json!({
        "messages": counters.messages.load(Ordering::Relaxed),
        "requests": counters.requests.load(Ordering::Relaxed),
        "cpu_seconds": crate::proc_stats::cpu_seconds(),
    });
    println!("{totals}");
    Ok(())
}

fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

async fn answer(
    req: Request<Incoming>,
    counters: Arc<Counters>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let gzip =
        req.headers().get(CONTENT_ENCODING).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let method = req.method().clone();
    if method == Method::POST && (path.ends_with(":publish") || path.ends_with("%3Apublish")) {
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return Ok(json(StatusCode::BAD_REQUEST, format!("{{\"error\":\"{e}\"}}"))),
        };
        let body = if gzip {
            let mut out = Vec::with_capacity(body.len() * 4);
            if let Err(e) = flate2::read::MultiGzDecoder::new(&body[..]).read_to_end(&mut out) {
                return Ok(json(StatusCode::BAD_REQUEST, format!("{{\"error\":\"bad gzip: {e}\"}}")));
            }
            Bytes::from(out)
        } else {
            body
        };
        let n = count_messages(&body);
        let first = counters.messages.fetch_add(n as u64, Ordering::Relaxed);
        counters.requests.fetch_add(1, Ordering::Relaxed);
        return Ok(json(StatusCode::OK, message_ids(first, n)));
    }
    // Admin calls (create/get topic or subscription): echo the name.
    if path.starts_with("/v1/projects/") && (method == Method::GET || method == Method::PUT) {
        let name = path.trim_start_matches("/v1/");
        return Ok(json(StatusCode::OK, format!("{{\"name\":\"{name}\"}}")));
    }
    Ok(json(StatusCode::NOT_FOUND, r#"{"error":{"code":404,"status":"NOT_FOUND"}}"#))
}

/// Messages in a publish body. Every message of pubsub-client's (and Google's) JSON starts
/// with `{"data":` and base64 never contains `{`; the count also checks the body's shape.
pub fn count_messages(body: &[u8]) -> usize {
    const OPEN: &[u8] = b"{\"data\":";
    memchr::memchr_iter(b'{', body).filter(|&i| body[i..].starts_with(OPEN)).count()
}

/// `{"messageIds":["<first+1>",...]}` with `n` ids.
pub fn message_ids(first: u64, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + n * 12);
    out.extend_from_slice(b"{\"messageIds\":[");
    for i in 0..n as u64 {
        if i > 0 {
            out.push(b',');
        }
        let _ = write!(out, "\"{}\"", first + i + 1);
    }
    out.extend_from_slice(b"]}");
    out
}

/// A null sink running as a child process of this one.
pub struct NullSink {
    child: Child,
    addr: SocketAddr,
    /// Kept open, so the sink can print its totals when it stops.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl NullSink {
    /// Starts `<this exe> null-sink --port 0` and reads the address it listens on.
    pub fn spawn() -> anyhow::Result<NullSink> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .args(["null-sink", "--port", "0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the null sink")?;
        let stdout = child.stdout.take().context("null sink stdout")?;
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        reader.read_line(&mut line).context("reading the null sink's address")?;
        let addr = line.trim().parse().with_context(|| format!("null sink printed {line:?}"))?;
        Ok(NullSink { child, addr, _stdout: reader })
    }

    /// `127.0.0.1:PORT`, usable as an emulator host.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The sink process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for NullSink {
    fn drop(&mut self) {
        // Closing its stdin stops it; make sure.
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_messages_and_answers_ids() {
        let body = br#"{"messages":[{"data":"YQ==","attributes":{"k":"{v}"}},{"data":"Yg=="}]}"#;
        assert_eq!(count_messages(body), 2);
        assert_eq!(count_messages(b"{\"messages\":[]}"), 0);
        assert_eq!(message_ids(5, 2), br#"{"messageIds":["6","7"]}"#);
    }
}
