//! Accepting and serving connections: the connection cap, TLS handshakes, the header-read and
//! idle timeouts, graceful shutdown.
//!
//! Each connection is served by hyper (HTTP/1.1 or HTTP/2, detected per connection) under a
//! watchdog that knows whether a request is in flight on it:
//!
//! - from the moment the connection is ready (accepted, TLS handshake done) and, on HTTP/1, from
//!   the first byte of each later request, the request's headers must be complete within
//!   `server.header_read_timeout_secs`, else the connection is dropped (slowloris);
//! - with no request in flight for `server.idle_timeout_secs` the connection is asked to close
//!   (HTTP/1: closed; HTTP/2: GOAWAY, streams racing it still finish) and dropped if it is still
//!   open after one more idle timeout.
//!
//! hyper's own `header_read_timeout` is not used: since hyper 1.4 it also runs while an HTTP/1
//! connection waits for its next request, so it would close every idle keep-alive connection at
//! the header timeout and leave nothing for the idle timeout to decide; and hyper has no idle
//! timeout for HTTP/2 (its keep-alive pings only find dead peers).
//!
//! At `server.max_connections` open connections the accept loop stops accepting until one
//! closes: new connections wait in the kernel's listen backlog instead of being accepted and
//! closed at once, so a burst is served late rather than turned into failed requests and
//! retries, and the service spends nothing on connections it cannot serve.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body as AxumBody;
use hyper::body::{Bytes, Frame, Incoming, SizeHint};
use hyper::{Request, Response, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::config::Config;
use crate::metrics::{Metrics, ReasonLabels};
use crate::tls::{HANDSHAKE_TIMEOUT, MAX_HANDSHAKES};

/// Least time between two warnings that the connection cap was reached.
const CAP_WARNING_EVERY: Duration = Duration::from_secs(10);

/// The connection settings, from the config.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    header_read_timeout: Duration,
    idle_timeout: Duration,
    max_connections: usize,
    shutdown_timeout: Duration,
}

impl Limits {
    pub(crate) fn new(config: &Config) -> Self {
        Limits {
            header_read_timeout: config.server.header_read_timeout(),
            idle_timeout: config.server.idle_timeout(),
            max_connections: config.server.max_connections,
            shutdown_timeout: config.shutdown_timeout(),
        }
    }
}

/// What every connection task shares.
struct Shared {
    service: TowerToHyperService<Router>,
    limits: Limits,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
}

/// Accepts connections until `stop` turns true (or its sender is dropped), then closes the
/// listening socket and waits until every connection has ended: idle ones at once, busy ones
/// when their requests finished or at the shutdown timeout.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    limits: Limits,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let max = limits.max_connections;
    metrics.connections_max.set(i64::try_from(max).unwrap_or(i64::MAX));
    let slots = Arc::new(Semaphore::new(max));
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    let shared =
        Arc::new(Shared { service: TowerToHyperService::new(app), limits, metrics, stop: stop.clone() });
    let mut last_cap_warning: Option<Instant> = None;
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                shared.metrics.connection_cap_reached.inc();
                if last_cap_warning.is_none_or(|t| t.elapsed() >= CAP_WARNING_EVERY) {
                    tracing::warn!(
                        max_connections = max,
                        "connection cap reached: not accepting until a connection closes"
                    );
                    last_cap_warning = Some(Instant::now());
                }
                tokio::select! {
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                    _ = stopped(&mut stop) => break,
                }
            }
        };
        let handshake = match &tls {
            Some(acceptor) => tokio::select! {
                permit = handshakes.clone().acquire_owned() => match permit {
                    Ok(permit) => Some((acceptor.clone(), permit)),
                    Err(_) => break,
                },
                _ = stopped(&mut stop) => break,
            },
            None => None,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _open = Open::new(slot, &shared.metrics);
            match handshake {
                None => serve_connection(tcp, peer, &shared).await,
                Some((acceptor, permit)) => {
                    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
                    drop(permit);
                    match tls {
                        Ok(Ok(tls)) => serve_connection(tls, peer, &shared).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    // Every connection holds a slot until it ends.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

/// Resolves once the service is told to stop (or the sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// An open connection: holds its slot under the cap and counts itself in the gauge.
struct Open<'a> {
    _slot: OwnedSemaphorePermit,
    metrics: &'a Metrics,
}

impl<'a> Open<'a> {
    fn new(slot: OwnedSemaphorePermit, metrics: &'a Metrics) -> Self {
        metrics.connections.inc();
        Open { _slot: slot, metrics }
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.metrics.connections.dec();
    }
}

/// Serves one connection under the watchdog until it ends, is closed for a timeout, or the
/// shutdown timeout passes after the service was told to stop.
async fn serve_connection<I>(io: I, peer: SocketAddr, shared: &Shared)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = &shared.limits;
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched { io, activity: activity.clone() });
    let service = {
        let (activity, service) = (activity.clone(), shared.service.clone());
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let request = activity.request_started(req.version() == Version::HTTP_2);
            let answer = hyper::service::Service::call(&service, req);
            async move {
                let resp: Response<AxumBody> = answer.await?;
                Ok::<_, Infallible>(resp.map(|body| Tracked { body, _request: request }))
            }
        })
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The watchdog below times the headers; see the module documentation.
    builder.http1().header_read_timeout(None);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut stop = shared.stop.clone();
    let mut stopping_until: Option<Instant> = None;
    let mut closing_idle = false;
    loop {
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stopped(&mut stop), if stopping_until.is_none() => {
                conn.as_mut().graceful_shutdown();
                stopping_until = Some(Instant::now() + limits.shutdown_timeout);
            }
            _ = tokio::time::sleep_until(stopping_until.unwrap_or_else(Instant::now)),
                if stopping_until.is_some() => {
                tracing::debug!(%peer, "connection still busy at the shutdown timeout: dropped");
                return;
            }
            expired = activity.expired(limits.header_read_timeout, limits.idle_timeout) => match expired {
                Expired::Headers => {
                    shared.metrics.connections_closed.get_or_create(&ReasonLabels::new("header_timeout")).inc();
                    tracing::debug!(%peer, timeout = ?limits.header_read_timeout, "request headers not received in time: connection dropped");
                    return;
                }
                Expired::Idle if !closing_idle => {
                    shared.metrics.connections_closed.get_or_create(&ReasonLabels::new("idle_timeout")).inc();
                    tracing::debug!(%peer, timeout = ?limits.idle_timeout, "idle connection: closing");
                    conn.as_mut().graceful_shutdown();
                    closing_idle = true;
                    activity.restart_idle();
                }
                Expired::Idle => {
                    tracing::debug!(%peer, "idle connection still open after it was asked to close: dropped");
                    return;
                }
            }
        }
    }
}

/// Which timeout ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expired {
    /// A request's headers did not arrive within the header-read timeout.
    Headers,
    /// No request was in flight for the idle timeout.
    Idle,
}

/// What the watchdog knows about a connection.
#[derive(Debug)]
struct Activity {
    state: Mutex<ActivityState>,
    changed: Notify,
}

#[derive(Debug)]
struct ActivityState {
    /// Requests whose headers arrived and whose response has not been sent completely.
    in_flight: usize,
    /// When the last request ended (or the connection started).
    idle_since: Instant,
    /// Since when the headers of the next request are awaited: the connection's start, or the
    /// first byte read while idle (HTTP/1 only: HTTP/2 sends pings and window updates between
    /// requests, and each stream's headers arrive in one frame burst).
    head_since: Option<Instant>,
    /// The connection speaks HTTP/2.
    http2: bool,
}

impl Activity {
    fn new() -> Self {
        let now = Instant::now();
        Activity {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                idle_since: now,
                head_since: Some(now),
                http2: false,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes were read from the client.
    fn on_read(&self) {
        let mut s = self.lock();
        if s.in_flight == 0 && s.head_since.is_none() && !s.http2 {
            s.head_since = Some(Instant::now());
            drop(s);
            self.changed.notify_one();
        }
    }

    fn request_started(self: &Arc<Self>, http2: bool) -> InFlight {
        let mut s = self.lock();
        s.in_flight += 1;
        s.head_since = None;
        s.http2 |= http2;
        drop(s);
        self.changed.notify_one();
        InFlight(self.clone())
    }

    fn request_ended(&self) {
        let mut s = self.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
        if s.in_flight == 0 {
            s.idle_since = Instant::now();
            s.head_since = None;
        }
        drop(s);
        self.changed.notify_one();
    }

    fn restart_idle(&self) {
        self.lock().idle_since = Instant::now();
    }

    fn deadline(&self, header_timeout: Duration, idle_timeout: Duration) -> Option<(Instant, Expired)> {
        let s = self.lock();
        if s.in_flight > 0 {
            None
        } else if let Some(t) = s.head_since {
            Some((t + header_timeout, Expired::Headers))
        } else {
            Some((s.idle_since + idle_timeout, Expired::Idle))
        }
    }

    /// Resolves when a timeout ran out.
    async fn expired(&self, header_timeout: Duration, idle_timeout: Duration) -> Expired {
        loop {
            let changed = self.changed.notified();
            match self.deadline(header_timeout, idle_timeout) {
                Some((at, why)) if at <= Instant::now() => return why,
                Some((at, _)) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }
}

/// A request in flight; it ends when dropped (its response body sent, or the request given up).
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// A response body that keeps its request in flight until it has been sent.
struct Tracked {
    body: AxumBody,
    _request: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The connection's stream, telling the watchdog when bytes arrive.
struct Watched<I> {
    io: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.on_read();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_times_headers_then_idleness() {
        let (header, idle) = (Duration::from_secs(10), Duration::from_secs(60));
        let a = Arc::new(Activity::new());
        let start = Instant::now();
        assert_eq!(a.deadline(header, idle), Some((start + header, Expired::Headers)), "first request");
        let req = a.request_started(false);
        assert_eq!(a.deadline(header, idle), None, "nothing times out with a request in flight");
        tokio::time::advance(Duration::from_secs(100)).await;
        drop(req);
        let ended = Instant::now();
        assert_eq!(a.deadline(header, idle), Some((ended + idle, Expired::Idle)));
        tokio::time::advance(Duration::from_secs(30)).await;
        a.on_read();
        assert_eq!(a.deadline(header, idle), Some((Instant::now() + header, Expired::Headers)), "next head");
        assert_eq!(a.expired(header, idle).await, Expired::Headers);

        let h2 = Arc::new(Activity::new());
        drop(h2.request_started(true));
        h2.on_read();
        assert_eq!(
            h2.deadline(header, idle).map(|d| d.1),
            Some(Expired::Idle),
            "HTTP/2 bytes are not a head"
        );
        assert_eq!(h2.expired(header, idle).await, Expired::Idle);
    }
}
