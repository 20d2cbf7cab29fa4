//! The configuration files of one pipeline run, written into its work directory.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The embedded default registry (`config/registry.toml`): the sample log's types.
const DEFAULT_REGISTRY: &str = include_str!("../../../config/registry.toml");

/// Ack deadline of the run's subscriptions: the shortest Pub/Sub allows, so that what a killed
/// exporter held comes back soon. `idle_secs` and `lateness_secs` must exceed it (the exporter
/// warns otherwise), or such messages find their hour closed.
pub const ACK_DEADLINE_SECS: u32 = 10;

/// Where the exporter writes its buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageKind {
    /// A local directory: `<work dir>/buckets`.
    Local,
    /// A GCS bucket behind an endpoint (fake-gcs-server).
    Gcs {
        /// e.g. `http://127.0.0.1:4443`.
        endpoint: String,
        /// The bucket, which must exist.
        bucket: String,
    },
}

/// Settings of a pipeline run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PipelineOptions {
    /// Work directory: configs, the log, the tailer's checkpoint, the buckets, process logs.
    pub dir: PathBuf,
    /// The Pub/Sub emulator to use (`host:port`); `None` starts one. Default `None`.
    pub emulator_host: Option<String>,
    /// The bucket store. Default [`StorageKind::Local`].
    pub storage: StorageKind,
    /// Put a fault proxy between the event-service and exporter and the emulator. Default false.
    pub pubsub_proxy: bool,
    /// Put a fault proxy between the exporter and GCS (only with [`StorageKind::Gcs`]).
    /// Default false.
    pub gcs_proxy: bool,
    /// Suffix of the topics of this run, so runs on one emulator never share a topic.
    pub run_id: String,
    /// Bearer token the event-service demands and the tailer sends.
    pub token: String,
    /// The exporter's `allowed_lateness_secs`. Default 3600: the sample is up to two hours out
    /// of order (see [`sample_first_hour`](crate::sample_first_hour)).
    pub lateness_secs: u64,
    /// The exporter's `idle_secs`: with nothing arriving for this long, past hours close.
    /// Default 12 (above [`ACK_DEADLINE_SECS`]).
    pub idle_secs: u64,
    /// The tailer's `max_line_bytes`. Default 16384.
    pub max_line_bytes: usize,
    /// The exporter's `files.max_age_ms`. Default 1000.
    pub file_max_age_ms: u64,
    /// One entry per exporter process sharing the subscriptions, each with its own config
    /// (`exporter.toml`, `exporter-1.toml`, ...) and metrics port: `Some(name)` is a fixed
    /// `replica` name (the same at every restart), `None` the exporter's default (new and
    /// random at every start). Default one replica, `None`.
    pub replicas: Vec<Option<String>>,
    /// Start no exporter in [`Pipeline::start`](crate::Pipeline::start), so a backlog can
    /// pile up in Pub/Sub first; [`Pipeline::start_exporters`](crate::Pipeline::start_exporters)
    /// starts them. Default false.
    pub defer_exporters: bool,
    /// The tailer's `service.url` at its first start; `None` (the default) is the
    /// event-service's ingest URL. [`Pipeline::restart_tailer_at`](crate::Pipeline::restart_tailer_at)
    /// changes it.
    pub tailer_url: Option<String>,
}

impl PipelineOptions {
    /// Defaults for a run in `dir`.
    pub fn new(dir: &Path) -> PipelineOptions {
        PipelineOptions {
            dir: dir.to_path_buf(),
            emulator_host: None,
            storage: StorageKind::Local,
            pubsub_proxy: false,
            gcs_proxy: false,
            run_id: format!("{:x}", fastrand::u64(..)),
            token: format!("e2e-token-{:016x}", fastrand::u64(..)),
            lateness_secs: 3600,
            idle_secs: 12,
            max_line_bytes: 16384,
            file_max_age_ms: 1000,
            replicas: vec![None],
            defer_exporters: false,
            tailer_url: None,
        }
    }

    /// Starts the tailer with `service.url = url` rather than the event-service's ingest URL
    /// (see [`tailer_url`](Self::tailer_url)).
    pub fn with_tailer_url(mut self, url: impl Into<String>) -> Self {
        self.tailer_url = Some(url.into());
        self
    }

    /// Runs one exporter process per entry of `replicas` (see [`replicas`](Self::replicas)).
    pub fn with_replicas(mut self, replicas: Vec<Option<String>>) -> Self {
        self.replicas = replicas;
        self
    }

    /// Whether [`Pipeline::start`](crate::Pipeline::start) leaves the exporters stopped.
    pub fn with_deferred_exporters(mut self, defer: bool) -> Self {
        self.defer_exporters = defer;
        self
    }

    /// Uses the emulator at `host`.
    pub fn with_emulator_host(mut self, host: impl Into<String>) -> Self {
        self.emulator_host = Some(host.into());
        self
    }

    /// Sets the bucket store.
    pub fn with_storage(mut self, storage: StorageKind) -> Self {
        self.storage = storage;
        self
    }

    /// Puts fault proxies in front of Pub/Sub and (with GCS storage) GCS.
    pub fn with_proxies(mut self, pubsub: bool, gcs: bool) -> Self {
        self.pubsub_proxy = pubsub;
        self.gcs_proxy = gcs;
        self
    }

    /// Sets the exporter's idle time.
    pub fn with_idle_secs(mut self, secs: u64) -> Self {
        self.idle_secs = secs;
        self
    }

    /// The project of the run.
    pub fn project(&self) -> &'static str {
        "eventpipe-local"
    }
}

/// Addresses the configs point at.
#[derive(Debug, Clone)]
pub(crate) struct Wiring {
    pub service_port: u16,
    pub tailer_metrics_port: u16,
    /// One per exporter replica.
    pub exporter_metrics_ports: Vec<u16>,
    /// Pub/Sub as the event-service and exporter see it (the proxy, when there is one).
    pub pubsub_host: String,
    /// The GCS endpoint as the exporter sees it.
    pub gcs_endpoint: Option<String>,
}

/// Paths of the written configs.
#[derive(Debug, Clone)]
pub(crate) struct ConfigFiles {
    pub registry: PathBuf,
    pub service: PathBuf,
    pub tailer: PathBuf,
    /// One per exporter replica: `exporter.toml`, `exporter-1.toml`, ...
    pub exporters: Vec<PathBuf>,
    pub log_dir: PathBuf,
    pub buckets: PathBuf,
}

/// The default registry with every `topic = "x"` renamed to `x-<run_id>`.
pub(crate) fn registry_text(run_id: &str) -> String {
    DEFAULT_REGISTRY
        .lines()
        .map(|l| match l.trim_start().strip_prefix("topic = \"").and_then(|r| r.strip_suffix('"')) {
            Some(topic) => format!("topic = \"{topic}-{run_id}\""),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

pub(crate) fn write_configs(o: &PipelineOptions, w: &Wiring) -> Result<ConfigFiles> {
    let d = &o.dir;
    let log_dir = d.join("logs");
    for sub in [&log_dir, &d.join("tailer-data"), &d.join("buckets")] {
        std::fs::create_dir_all(sub).map_err(|e| Error::io(sub, e))?;
    }
    let files = ConfigFiles {
        registry: d.join("registry.toml"),
        service: d.join("event-service.toml"),
        tailer: d.join("tailer.toml"),
        exporters: (0..w.exporter_metrics_ports.len()).map(|i| d.join(replica_file(i, "toml"))).collect(),
        buckets: d.join("buckets"),
        log_dir,
    };
    write(&files.registry, &registry_text(&o.run_id))?;
    write(
        &files.service,
        &format!(
            "listen = \"127.0.0.1:{port}\"\nproject = \"{project}\"\nregistry = \"registry.toml\"\n\
             emulator_host = \"{pubsub}\"\ndead_letter_topic = \"events-dead-letter-{run}\"\n\
             shutdown_timeout_secs = 10\n\
             [auth]\ntokens = [\"{token}\"]\n\
             [publisher]\nretry_timeout_secs = 10\n",
            port = w.service_port,
            project = o.project(),
            pubsub = w.pubsub_host,
            run = o.run_id,
            token = o.token,
        ),
    )?;
    let url = o.tailer_url.clone().unwrap_or_else(|| service_ingest_url(w.service_port));
    write(&files.tailer, &tailer_toml(o, w.tailer_metrics_port, &url, &files.log_dir))?;
    let storage = match (&o.storage, &w.gcs_endpoint) {
        (StorageKind::Gcs { bucket, .. }, Some(endpoint)) => {
            format!("[storage]\nkind = \"gcs\"\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\n")
        }
        _ => "[storage]\nkind = \"local\"\npath = \"buckets\"\n".to_owned(),
    };
    for (i, (path, mport)) in files.exporters.iter().zip(&w.exporter_metrics_ports).enumerate() {
        let replica = match o.replicas.get(i).cloned().flatten() {
            Some(name) => format!("replica = \"{name}\"\n"),
            None => String::new(),
        };
        write(
            path,
            &format!(
                "project = \"{project}\"\nemulator_host = \"{pubsub}\"\nregistry = \"registry.toml\"\n\
                 {replica}metrics_listen = \"127.0.0.1:{mport}\"\nshutdown_timeout_secs = 5\n{storage}\
                 [files]\nmax_age_ms = {age}\nretry_initial_ms = 100\n\
                 [close]\nallowed_lateness_secs = {lateness}\nidle_secs = {idle}\ntick_ms = 200\n\
                 keep_staging_secs = 86400\n",
                project = o.project(),
                pubsub = w.pubsub_host,
                age = o.file_max_age_ms,
                lateness = o.lateness_secs,
                idle = o.idle_secs,
            ),
        )?;
    }
    Ok(files)
}

/// The event-service's ingest URL on `port`.
pub(crate) fn service_ingest_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}{}", event_model::ingest::PATH)
}

/// The tailer's config: metrics on `metrics_port`, sending to `url`, following
/// `<log_dir>/events.log*`.
pub(crate) fn tailer_toml(o: &PipelineOptions, metrics_port: u16, url: &str, log_dir: &Path) -> String {
    format!(
        "host = \"e2e-host\"\ndata_dir = \"tailer-data\"\nregistry = \"registry.toml\"\n\
         metrics_listen = \"127.0.0.1:{metrics_port}\"\n\
         [service]\nurl = \"{url}\"\ntoken = \"{token}\"\n\
         timeout_secs = 10\nretry_initial_ms = 50\nretry_max_ms = 1000\n\
         [batch]\nmax_delay_ms = 100\n\
         [read]\nmax_line_bytes = {max_line}\nrotated_idle_ms = 2000\nshutdown_timeout_secs = 5\n\
         [[sources]]\ninclude = [\"{logs}/events.log*\"]\n\
         [sources.parse]\nformat = \"syslog\"\npayload = \"tsv\"\ntag = \"eventlog\"\n",
        token = o.token,
        max_line = o.max_line_bytes,
        logs = log_dir.display(),
    )
}

/// The name of exporter replica `i`'s config (`ext` `toml`) or log (`log`): `exporter.<ext>`
/// for the first, `exporter-<i>.<ext>` for the others.
pub(crate) fn replica_file(i: usize, ext: &str) -> String {
    match i {
        0 => format!("exporter.{ext}"),
        i => format!("exporter-{i}.{ext}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_topics_get_the_run_suffix() {
        let text = registry_text("r1");
        let reg = event_model::Registry::from_toml_str(&text).expect("valid registry");
        assert_eq!(reg.event_type("play").map(|t| t.topic.as_str()), Some("events-play-r1"));
        assert_eq!(reg.event_type("search").map(|t| t.topic.as_str()), Some("events-search-r1"));
    }
}
