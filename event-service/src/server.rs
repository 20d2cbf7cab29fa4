//! The HTTP server: routes, graceful shutdown, registry reloads, readiness checks. Connections
//! are accepted and served in `listener.rs` (the connection cap, header-read and idle timeouts).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::error::ServiceError;
use crate::ingest::ingest;
use crate::state::AppState;

/// The service's routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(event_model::ingest::PATH, post(ingest))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let readiness = state.readiness();
    let status = if readiness.is_ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, readiness.to_string())
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let queued = state.publishers.outstanding();
    state.metrics.publish_queue.set(i64::try_from(queued).unwrap_or(i64::MAX));
    if let Some(m) = &state.mirror {
        state.metrics.mirror_queue.set(i64::try_from(m.queued()).unwrap_or(i64::MAX));
    }
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        state.metrics.render(),
    )
}

/// A running service.
#[derive(Debug)]
pub struct Service {
    addr: SocketAddr,
    state: Arc<AppState>,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
    background: Vec<JoinHandle<()>>,
}

impl Service {
    /// Loads the registry, binds the listener and starts serving.
    pub async fn start(config: Config) -> Result<Self, ServiceError> {
        let listener = TcpListener::bind(config.listen).await?;
        Self::start_on(listener, config).await
    }

    /// Like [`start`](Self::start) on a listener the caller bound.
    pub async fn start_on(listener: TcpListener, config: Config) -> Result<Self, ServiceError> {
        let addr = listener.local_addr()?;
        let acceptor = config.tls.as_ref().map(crate::tls::acceptor).transpose()?;
        let state = AppState::new(config).await?;
        let (stop, stopped) = watch::channel(false);
        let app = router(state.clone());
        let limits = crate::listener::Limits::new(&state.config);
        let server = tokio::spawn(crate::listener::serve(
            listener,
            acceptor,
            app,
            limits,
            state.metrics.clone(),
            stopped,
        ));
        let background =
            vec![tokio::spawn(readiness_loop(state.clone())), tokio::spawn(reload_on_sighup(state.clone()))];
        let tls = state.config.tls.is_some();
        tracing::info!(%addr, tls, types = state.registry().len(), "event-service listening");
        Ok(Service { addr, state, stop, server, background })
    }

    /// The address the service listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state (registry, metrics, publishers).
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Graceful shutdown: stop accepting, let requests in flight finish (within the configured
    /// shutdown timeout), flush the publishers and the mirror's queue (each within it too).
    pub async fn shutdown(self) {
        let timeout = self.state.config.shutdown_timeout();
        self.stop.send_replace(true);
        for h in &self.background {
            h.abort();
        }
        let mut server = self.server;
        match tokio::time::timeout(timeout, &mut server).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "server task failed"),
            Err(_) => {
                tracing::warn!(?timeout, "requests still in flight at the shutdown timeout");
                server.abort();
            }
        }
        // The main publishers and the mirror flush side by side, each within the timeout.
        let main = async {
            if tokio::time::timeout(timeout, self.state.publishers.shutdown()).await.is_err() {
                tracing::warn!("publishers did not drain within the shutdown timeout");
            }
        };
        let mirror = async {
            if let Some(m) = &self.state.mirror {
                m.shutdown(timeout).await;
            }
        };
        tokio::join!(main, mirror);
        tracing::info!("event-service stopped");
    }
}

/// Runs the service until `shutdown` resolves, then shuts it down gracefully.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ServiceError> {
    let service = Service::start(config).await?;
    shutdown.await;
    service.shutdown().await;
    Ok(())
}

/// Checks the topics every 2 s until Pub/Sub answered, then every 30 s (10 s while a topic is
/// missing or failing its check), and at once after a registry reload. Missing topics are
/// logged as a warning whenever the report changes.
async fn readiness_loop(state: Arc<AppState>) {
    let mut reported = String::new();
    loop {
        let readiness = state.check_topics().await;
        let text = readiness.to_string();
        let wait = if readiness.all_found() {
            if reported != text {
                tracing::info!("{text}: every topic found");
            }
            Duration::from_secs(30)
        } else {
            if reported != text {
                tracing::warn!("{text}");
            }
            if readiness.is_ready() { Duration::from_secs(10) } else { Duration::from_secs(2) }
        };
        reported = text;
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = state.recheck_requested() => {}
        }
    }
}

/// Reloads the registry on SIGHUP.
async fn reload_on_sighup(state: Arc<AppState>) {
    #[cfg(unix)]
    {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            match state.reload_registry() {
                Ok(n) => tracing::info!(types = n, "registry reloaded"),
                Err(e) => tracing::error!(error = %e, "registry reload failed; keeping the previous one"),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = state;
}
