//! The `event-service` binary: parses configuration, sets up logging, runs the service.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use event_service::{Config, Service, apply_registry_with};

#[derive(Parser, Debug)]
#[command(
    name = "event-service",
    version,
    about = "HTTP ingest for events, published to Pub/Sub per event type"
)]
struct Cli {
    /// Config file (TOML); without it the embedded defaults apply.
    #[arg(long, short, env = "EVENT_SERVICE_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Listen address (overrides the config).
    #[arg(long, env = "EVENT_SERVICE_LISTEN", global = true)]
    listen: Option<std::net::SocketAddr>,
    /// Google Cloud project (overrides the config).
    #[arg(long, env = "EVENT_SERVICE_PROJECT", global = true)]
    project: Option<String>,
    /// Registry file (overrides the config).
    #[arg(long, env = "EVENT_SERVICE_REGISTRY", global = true)]
    registry: Option<PathBuf>,
    /// Pub/Sub emulator host:port (overrides the config; PUBSUB_EMULATOR_HOST also works).
    #[arg(long, global = true)]
    emulator_host: Option<String>,
    /// Log as JSON lines.
    #[arg(long, env = "EVENT_SERVICE_LOG_JSON", global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve (the default).
    Run,
    /// Work with the event-type registry.
    Registry {
        #[command(subcommand)]
        action: RegistryAction,
    },
}

#[derive(Subcommand, Debug)]
enum RegistryAction {
    /// Create missing topics and subscriptions for every type (and the dead-letter topic).
    Apply {
        /// Ack deadline of the subscriptions created (10-600 s). The exporter's
        /// `close.idle_secs` and `close.allowed_lateness_secs` must be longer.
        #[arg(long, default_value_t = event_service::DEFAULT_ACK_DEADLINE_SECS)]
        ack_deadline_secs: u32,
    },
    /// Check the registry file and list its types.
    Check,
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let mut config = match &cli.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(l) = cli.listen {
        config.listen = l;
    }
    if let Some(p) = &cli.project {
        config.project.clone_from(p);
    }
    if let Some(r) = &cli.registry {
        config.registry.clone_from(r);
    }
    if let Some(h) = &cli.emulator_host {
        config.emulator_host = Some(h.clone());
    }
    Ok(config.with_env_tokens())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    if cli.log_json {
        tracing_subscriber::fmt().json().with_env_filter(filter).init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let config = load_config(&cli)?;
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => {
            let service = Service::start(config).await.context("starting event-service")?;
            shutdown_signal().await;
            tracing::info!("shutting down: draining requests in flight");
            service.shutdown().await;
        }
        Command::Registry { action: RegistryAction::Check } => {
            let registry = event_model::Registry::load(&config.registry)?;
            for t in registry.types() {
                println!("{} v{} -> topic {} ({} fields)", t.name, t.version, t.topic, t.fields.len());
            }
        }
        Command::Registry { action: RegistryAction::Apply { ack_deadline_secs } } => {
            let registry = event_model::Registry::load(&config.registry)?;
            let mut b = pubsub_client::Client::builder().with_project(&config.project);
            if let Some(h) = &config.emulator_host {
                b = b.with_emulator_host(h);
            }
            let client = b.build().await?;
            let report = apply_registry_with(
                &client,
                &registry,
                config.dead_letter_topic.as_deref(),
                ack_deadline_secs,
            )
            .await?;
            for c in &report.created {
                println!("created {c}");
            }
            for e in &report.existing {
                println!("exists  {e}");
            }
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
