//! `tailer`: follows log files and forwards their lines to the event-service.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

/// Follows log files and forwards each line, as an event, to the event-service.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The configuration file (TOML).
    #[arg(long, short, env = "TAILER_CONFIG", default_value = "/etc/eventpipe/tailer.toml")]
    config: PathBuf,
    /// Overrides `service.url`.
    #[arg(long)]
    url: Option<String>,
    /// Overrides `data_dir`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Overrides `host`: the events' source and part of every event id. Keep it stable for the
    /// machine whose files are read (in Kubernetes the node name, not the pod name), so lines
    /// re-sent by a re-created tailer keep their ids.
    #[arg(long, env = "TAILER_HOST")]
    host: Option<String>,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if args.log_json {
        logs.json().init();
    } else {
        logs.init();
    }
    let mut config = tailer::Config::load(&args.config)?;
    if let Some(url) = args.url {
        config.service.url = url;
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(host) = args.host {
        config.host = host;
    }
    config.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = int.recv() => tracing::info!("SIGINT: shutting down"),
            }
        };
        tailer::run(config, shutdown).await.context("tailer failed")
    })
}
