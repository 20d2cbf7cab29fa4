//! `exporter`: Pub/Sub to deduplicated hourly buckets in object storage.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

/// Pulls events from Pub/Sub and writes them into deduplicated hourly buckets.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The configuration file (TOML).
    #[arg(long, short, env = "EXPORTER_CONFIG", default_value = "/etc/eventpipe/exporter.toml")]
    config: PathBuf,
    /// Overrides `emulator_host` (also read from PUBSUB_EMULATOR_HOST by the client).
    #[arg(long)]
    emulator_host: Option<String>,
    /// Overrides `replica`.
    #[arg(long)]
    replica: Option<String>,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if args.log_json {
        logs.json().init();
    } else {
        logs.init();
    }
    let mut config = exporter::Config::load(&args.config)?;
    if let Some(h) = args.emulator_host {
        config.emulator_host = Some(h);
    }
    if let Some(r) = args.replica {
        config.replica = Some(r);
    }
    config.validate()?;
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
    };
    exporter::run(config, shutdown).await.context("exporter failed")
}
