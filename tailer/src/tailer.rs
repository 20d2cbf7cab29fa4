//! The running tailer: the reading thread, the sender tasks, the checkpoint task and the
//! metrics endpoint, and their orderly (or abrupt) end.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::batch::Batch;
use crate::checkpoint::{self, Checkpoint, Saver};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::parse::LineParser;
use crate::reader::Reader;
use crate::sender::Sender;

/// Name of the lock file in the data directory.
const LOCK_FILE: &str = "lock";

/// A running tailer. Stop it with [`shutdown`](Tailer::shutdown); dropping it stops it like
/// [`kill`](Tailer::kill).
#[derive(Debug)]
pub struct Tailer {
    config: Arc<Config>,
    ledger: Arc<Mutex<Ledger>>,
    metrics: Arc<Metrics>,
    stop_reader: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
    stop_tasks: watch::Sender<bool>,
    sender: Option<tokio::task::JoinHandle<()>>,
    background: JoinSet<()>,
    saver: Arc<Saver>,
    _lock: File,
}

impl Tailer {
    /// Validates the configuration, takes the data directory's lock, loads the checkpoint and
    /// the registry, and starts following files.
    pub async fn start(config: Config) -> Result<Tailer> {
        config.validate()?;
        let config = Arc::new(config);
        std::fs::create_dir_all(&config.data_dir).map_err(|e| Error::io(&config.data_dir, e))?;
        let lock_path = config.data_dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        lock.try_lock().map_err(|_| Error::Locked(config.data_dir.clone()))?;
        let registry = match &config.registry {
            Some(p) => Some(event_model::Registry::load(p)?),
            None => None,
        };
        let parsers = config
            .sources
            .iter()
            .enumerate()
            .map(|(i, s)| {
                LineParser::new(&s.parse, registry.as_ref())
                    .map_err(|e| Error::Config(format!("sources[{i}].parse: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let cp = checkpoint::load(&config.data_dir)?.unwrap_or_else(|| Checkpoint::new(&config.host));
        if cp.host != config.host {
            tracing::warn!(was = %cp.host, now = %config.host, "host name changed: re-sent lines get new ids");
        }
        let ledger = Arc::new(Mutex::new(Ledger::from_checkpoint(cp)));
        let saver = Arc::new(Saver::new(&config.data_dir, ledger.clone()));
        let metrics = Arc::new(Metrics::new());
        let sender = Arc::new(Sender::new(&config, ledger.clone(), metrics.clone())?);

        let (stop_tasks, stop_rx) = watch::channel(false);
        let mut background = JoinSet::new();
        if let Some(addr) = config.metrics_listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| Error::io(format!("metrics_listen {addr}"), e))?;
            background.spawn(serve_metrics(listener, metrics.clone(), stop_rx.clone()));
        }
        background.spawn(checkpoint_loop(
            config.clone(),
            ledger.clone(),
            saver.clone(),
            metrics.clone(),
            stop_rx.clone(),
        ));

        let (tx, rx) = mpsc::channel::<Batch>(1);
        let sender_task = tokio::spawn(send_loop(rx, sender, config.batch.max_in_flight, stop_rx));
        let stop_reader = Arc::new(AtomicBool::new(false));
        let reader = Reader::new(
            config.clone(),
            parsers,
            ledger.clone(),
            metrics.clone(),
            tx,
            stop_reader.clone(),
            saver.clone(),
        );
        let reader = std::thread::Builder::new()
            .name("tailer-reader".into())
            .spawn(move || reader.run())
            .map_err(|e| Error::io("reader thread", e))?;
        tracing::info!(sources = config.sources.len(), url = %config.service.url, "tailer started");
        Ok(Tailer {
            config,
            ledger,
            metrics,
            stop_reader,
            reader: Some(reader),
            stop_tasks,
            sender: Some(sender_task),
            background,
            saver,
            _lock: lock,
        })
    }

    /// The tailer's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Batches sent but not yet acknowledged.
    pub fn pending_batches(&self) -> usize {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner()).pending()
    }

    /// Stops reading, waits up to `read.shutdown_timeout_secs` for requests in flight, and
    /// makes the checkpoint durable. Lines not acknowledged by then are read again at the next
    /// start (with the same ids).
    pub async fn shutdown(mut self) -> Result<()> {
        self.stop_reader_thread().await;
        let _ = self.stop_tasks.send(true);
        if let Some(sender) = self.sender.take() {
            let grace = Duration::from_secs(self.config.read.shutdown_timeout_secs);
            let abort = sender.abort_handle();
            if tokio::time::timeout(grace, sender).await.is_err() {
                tracing::warn!(
                    "requests still in flight at the shutdown timeout; their lines are re-sent at the next start"
                );
                abort.abort();
            }
        }
        // The background tasks end on the stop signal, a checkpoint save under way first.
        while self.background.join_next().await.is_some() {}
        let saver = self.saver.clone();
        tokio::task::spawn_blocking(move || saver.save())
            .await
            .map_err(|e| Error::io("checkpoint", std::io::Error::other(e)))??;
        tracing::info!("tailer stopped; checkpoint saved");
        Ok(())
    }

    /// Stops at once without a final checkpoint, as a crash would (for tests).
    pub async fn kill(mut self) {
        if let Some(s) = self.sender.take() {
            s.abort();
        }
        self.stop_reader_thread().await;
        // A save under way completes (as it would have before a crash); no other follows.
        let _ = self.stop_tasks.send(true);
        while self.background.join_next().await.is_some() {}
    }

    async fn stop_reader_thread(&mut self) {
        self.stop_reader.store(true, Ordering::Relaxed);
        if let Some(reader) = self.reader.take() {
            reader.thread().unpark();
            // The reader may be waiting for a request slot; closing the sender's queue frees it.
            let _ = self.stop_tasks.send(true);
            let _ = tokio::task::spawn_blocking(move || reader.join()).await;
        }
    }
}

impl Drop for Tailer {
    fn drop(&mut self) {
        self.stop_reader.store(true, Ordering::Relaxed);
        let _ = self.stop_tasks.send(true);
        if let Some(s) = self.sender.take() {
            s.abort();
        }
        if let Some(r) = &self.reader {
            r.thread().unpark();
        }
    }
}

/// Runs a tailer until `shutdown` completes, then stops it gracefully.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<()> {
    let tailer = Tailer::start(config).await?;
    shutdown.await;
    tailer.shutdown().await
}

/// Takes batches from the reader and delivers up to `max_in_flight` at once. On stop it takes
/// no more batches and waits for the requests in flight.
async fn send_loop(
    mut rx: mpsc::Receiver<Batch>,
    sender: Arc<Sender>,
    max_in_flight: usize,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(max_in_flight));
    let mut tasks = JoinSet::new();
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p,
            _ = stop.wait_for(|s| *s) => break,
        };
        let Ok(permit) = permit else { break };
        let batch = tokio::select! {
            b = rx.recv() => b,
            _ = stop.wait_for(|s| *s) => break,
        };
        let Some(batch) = batch else { break };
        let sender = sender.clone();
        tasks.spawn(async move {
            sender.deliver(batch).await;
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    rx.close();
    while tasks.join_next().await.is_some() {}
}

async fn checkpoint_loop(
    config: Arc<Config>,
    ledger: Arc<Mutex<Ledger>>,
    saver: Arc<Saver>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let every = Duration::from_millis(config.read.checkpoint_interval_ms.max(10));
    let mut last: Option<Checkpoint> = None;
    // Unix time on the runtime's clock: the wall clock at the start plus the time elapsed since.
    let started = tokio::time::Instant::now();
    let started_unix = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let cp = {
            let mut l = ledger.lock().unwrap_or_else(|e| e.into_inner());
            let now = started_unix + started.elapsed().as_secs();
            l.forget(now.saturating_sub(config.read.forget_after_secs));
            metrics.set_lag(l.lag());
            l.checkpoint()
        };
        if last.as_ref() == Some(&cp) {
            continue;
        }
        let saver = saver.clone();
        match tokio::task::spawn_blocking(move || saver.save()).await {
            Ok(Ok(saved)) => {
                metrics.checkpoint_writes.inc();
                last = Some(saved);
            }
            Ok(Err(e)) => {
                metrics.checkpoint_failures.inc();
                tracing::error!(error = %e, "checkpoint not saved; retrying at the next interval");
            }
            Err(_) => return,
        }
    }
}

async fn serve_metrics(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = metrics.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        m.render(),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        // Served from the end of the start (state recovered, work running) until shutdown
        // begins, when the listener closes: a readiness probe sees exactly that window.
        .route("/readyz", get(|| async { "ready" }));
    let shutdown = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
        tracing::error!(error = %e, "metrics endpoint failed");
    }
}
