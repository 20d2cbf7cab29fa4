//! The running exporter: one pulling task per subscription feeding the core task, the metrics
//! endpoint, and an orderly shutdown that writes what is buffered before it stops.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use pubsub_client::{Client, Delivery, SubscriberConfig};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::core::Core;
use crate::error::{Error, Result};
use crate::fleet::{Fleet, FleetView, Heartbeat};
use crate::metrics::Metrics;
use crate::storage;
use crate::store::Store;
use object_store::ObjectStore;

/// A running exporter.
#[derive(Debug)]
pub struct Exporter {
    metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
    core: tokio::task::JoinHandle<Result<()>>,
    pullers: JoinSet<()>,
    replica: String,
    me: String,
}

impl Exporter {
    /// Loads the registry, opens the storage `config` names and the subscriptions, joins the
    /// fleet (heartbeats, staged hours) and starts exporting.
    pub async fn start(config: Config) -> Result<Exporter> {
        config.validate()?;
        let store = storage::open(&config.storage).map_err(Error::Config)?;
        Self::start_with_store(config, store).await
    }

    /// Like [`start`](Self::start), writing to `store` (any `object_store` implementation:
    /// S3, Azure, a wrapper of your own) instead of the one `config.storage` names. Every
    /// replica of a fleet must see the same store.
    pub async fn start_with_store(config: Config, store: Arc<dyn ObjectStore>) -> Result<Exporter> {
        config.validate()?;
        let config = Arc::new(config);
        let registry = event_model::Registry::load(&config.registry)?;
        let metrics = Arc::new(Metrics::new());
        let replica = config.replica.clone().unwrap_or_else(|| {
            std::env::var("HOSTNAME")
                .ok()
                .filter(|h| !h.is_empty() && !h.contains('/'))
                .unwrap_or_else(|| "exporter".into())
        });
        // A fresh incarnation per process start: no two processes ever write the same name.
        let me = format!("{replica}-{:016x}", fastrand::u64(..));
        let store = Store {
            store,
            retry_initial: Duration::from_millis(config.files.retry_initial_ms.max(1)),
            metrics: metrics.clone(),
        };
        let mut builder = Client::builder().with_project(&config.project);
        if let Some(host) = &config.emulator_host {
            builder = builder.with_emulator_host(host);
        }
        let client = builder.build().await?;

        let mut subs = Vec::new();
        let mut longest = MIN_LEASE;
        for t in registry.types() {
            let sub_name = format!("{}-{}", t.topic, config.subscription_suffix);
            let deadline = subscription_deadline(&client, &sub_name, &config.close).await;
            longest = longest.max(deadline);
            let sub_config = SubscriberConfig::default()
                .with_max_outstanding_messages(config.pull.max_outstanding_messages)
                .with_max_outstanding_bytes(config.pull.max_outstanding_bytes)
                // A lease never outlasts the subscription's deadline, so what a crashed replica
                // held comes back within it.
                .with_ack_deadline_bounds(MIN_LEASE, deadline.max(MIN_LEASE));
            subs.push(client.subscriber_with_config(&sub_name, sub_config)?);
        }

        let heartbeat = Duration::from_secs(config.close.heartbeat_secs);
        let fleet = Fleet {
            store: store.clone(),
            me: me.clone(),
            types: registry.types().map(|t| t.name.clone()).collect(),
            silent_secs: (longest + heartbeat * 2).as_secs() as i64,
            interval: heartbeat,
            scan_every: Duration::from_secs(config.close.scan_secs),
        };
        // What the fleet knows before this process takes part: its watermarks, staged hours.
        let mut view = FleetView::default();
        if let Err(e) = fleet.read(&mut view).await {
            tracing::warn!(error = %e, "cannot read the fleet's heartbeats at start; starting from the oldest allowed hour");
        }
        if let Err(e) = fleet.scan(&mut view).await {
            tracing::warn!(error = %e, "cannot list the staging folders at start; retried");
        }
        let (view_tx, view_rx) = watch::channel(view);
        let (beat_tx, beat_rx) = watch::channel(Heartbeat::default());
        let core = Core::new(
            config.clone(),
            registry.clone(),
            replica.clone(),
            me.clone(),
            store,
            metrics.clone(),
            fleet.clone(),
            view_rx,
            beat_tx,
        );

        let (stop, stop_rx) = watch::channel(false);
        let (tx, rx) = mpsc::channel::<Delivery>(1024);
        let mut pullers = JoinSet::new();
        for sub in subs {
            pullers.spawn(pull(
                sub,
                tx.clone(),
                stop_rx.clone(),
                Duration::from_secs(config.shutdown_timeout_secs),
            ));
        }
        drop(tx);
        if let Some(addr) = config.metrics_listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| Error::Config(format!("metrics_listen {addr}: {e}")))?;
            pullers.spawn(serve_metrics(listener, metrics.clone(), stop_rx.clone()));
        }
        let heartbeats = tokio::spawn(crate::fleet::run(
            fleet.clone(),
            beat_rx,
            view_tx,
            metrics.clone(),
            stop_rx.clone(),
        ));
        let core = tokio::spawn(run_core(core, rx, stop_rx, heartbeats, fleet));
        tracing::info!(process = %me, types = registry.len(), "exporter started");
        Ok(Exporter { metrics, stop, core, pullers, replica, me })
    }

    /// The exporter's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// This replica's name.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// This process's name in object names and heartbeats: `<replica>-<incarnation>`.
    pub fn process(&self) -> &str {
        &self.me
    }

    /// Stops pulling, writes and acknowledges everything buffered, and stops.
    pub async fn shutdown(mut self) -> Result<()> {
        let _ = self.stop.send(true);
        let result = (&mut self.core).await.unwrap_or(Ok(()));
        while self.pullers.join_next().await.is_some() {}
        result
    }

    /// Stops at once, as a crash would (buffered messages are redelivered later).
    pub fn kill(mut self) {
        self.core.abort();
        self.pullers.abort_all();
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.core.abort();
    }
}

/// Runs an exporter until `shutdown` completes, then stops it gracefully.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<()> {
    let exporter = Exporter::start(config).await?;
    shutdown.await;
    exporter.shutdown().await
}

async fn pull(
    mut sub: pubsub_client::Subscriber,
    tx: mpsc::Sender<Delivery>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) {
    loop {
        let next = tokio::select! {
            n = sub.next() => n,
            _ = stop.wait_for(|s| *s) => break,
        };
        match next {
            Some(Ok(d)) => {
                if tx.send(d).await.is_err() {
                    break;
                }
            }
            Some(Err(e)) => tracing::warn!(error = %e, "pull failed; the subscriber retries"),
            None => break,
        }
    }
    sub.shutdown(grace).await;
}

async fn run_core(
    mut core: Core,
    mut rx: mpsc::Receiver<Delivery>,
    mut stop: watch::Receiver<bool>,
    heartbeats: tokio::task::JoinHandle<()>,
    fleet: Fleet,
) -> Result<()> {
    let mut tick = tokio::time::interval(core.cfg.tick());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            d = rx.recv() => match d {
                Some(d) => core.on_delivery(d).await,
                None => break,
            },
            Some(done) = core.writes.join_next() => {
                if let Ok(done) = done {
                    core.on_written(done).await;
                }
            }
            Some(closed) = core.closes.join_next() => {
                if let Ok((key, result)) = closed {
                    core.on_closed(key, result);
                }
            }
            Some(_) = core.chores.join_next() => {}
            _ = tick.tick() => core.tick().await,
            _ = stop.changed() => break,
        }
    }
    // Write what is buffered so it is acknowledged now rather than redelivered; closes in
    // progress are abandoned (any replica finishes them: every step is create-only).
    core.closes.abort_all();
    core.cut_all();
    let grace = Duration::from_secs(core.cfg.shutdown_timeout_secs);
    let drained = tokio::time::timeout(grace, async {
        while let Some(done) = core.writes.join_next().await {
            if let Ok(done) = done {
                core.on_written(done).await;
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("parts still unsettled at the end of the grace period; their messages come back");
    }
    while core.chores.join_next().await.is_some() {}
    let _ = heartbeats.await;
    // Nobody has to wait for this process's watermark any more.
    if let Err(e) = fleet.leave().await {
        tracing::warn!(error = %e, "cannot delete the heartbeat; it expires");
    }
    Ok(())
}

/// The shortest lease the exporter asks for (Pub/Sub's minimum ack deadline).
const MIN_LEASE: Duration = Duration::from_secs(pubsub_client::limits::MIN_ACK_DEADLINE_SECS as u64);

/// The ack deadline of `sub` (60 s when it cannot be read), with a warning when the close
/// settings do not outlast it: messages a crashed replica held would then arrive after their
/// hour closed, as late events.
async fn subscription_deadline(client: &Client, sub: &str, close: &crate::CloseConfig) -> Duration {
    let secs = match client.get_subscription(sub).await {
        Ok(s) if s.ack_deadline_seconds > 0 => u64::from(s.ack_deadline_seconds),
        Ok(_) => 10,
        Err(e) => {
            tracing::warn!(subscription = sub, error = %e, "cannot read the subscription's ack deadline; assuming 60 s");
            60
        }
    };
    if close.idle_secs <= secs || close.allowed_lateness_secs <= secs {
        tracing::warn!(
            subscription = sub,
            ack_deadline_secs = secs,
            idle_secs = close.idle_secs,
            allowed_lateness_secs = close.allowed_lateness_secs,
            "close.idle_secs and close.allowed_lateness_secs should exceed the ack deadline: messages held by a crashed replica come back only after it, and would be late events"
        );
    }
    Duration::from_secs(secs)
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
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
}
