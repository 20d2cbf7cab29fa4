//! The running pipeline: the emulator (or the caller's), optional fault proxies, and the
//! event-service, one or more exporter replicas and the tailer as separate processes wired to
//! each other.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use testkit::{Emulator, FaultProxy};

use crate::bins::Binaries;
use crate::config::{
    ConfigFiles, PipelineOptions, StorageKind, Wiring, replica_file, service_ingest_url, tailer_toml,
    write_configs,
};
use crate::error::{Error, Result};
use crate::process::Proc;

/// How long a component may take to answer its health check after a start.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Grace period of a `SIGTERM`: above the components' own shutdown timeouts.
const STOP_GRACE: Duration = Duration::from_secs(20);
/// Polling interval of the waits.
const POLL: Duration = Duration::from_millis(100);

/// One of the three component processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Component {
    /// The log tailer.
    Tailer,
    /// The event-service.
    Service,
    /// The exporter: its first replica, where a pipeline runs several
    /// ([`PipelineOptions::replicas`]; the `*_exporter` methods address each).
    Exporter,
}

impl Component {
    /// All three, in the order they are stopped (sources first).
    pub const ALL: [Component; 3] = [Component::Tailer, Component::Service, Component::Exporter];

    /// Its name, e.g. `event-service`.
    pub fn name(self) -> &'static str {
        match self {
            Component::Tailer => "tailer",
            Component::Service => "event-service",
            Component::Exporter => "exporter",
        }
    }
}

/// The whole pipeline, running. Dropping it kills every process it started.
#[derive(Debug)]
pub struct Pipeline {
    opts: PipelineOptions,
    files: ConfigFiles,
    emulator_host: String,
    tailer: Proc,
    service: Proc,
    /// One per replica, in the order of [`PipelineOptions::replicas`].
    exporters: Vec<Proc>,
    service_port: u16,
    tailer_metrics_port: u16,
    exporter_metrics_ports: Vec<u16>,
    http: reqwest::Client,
    store: Arc<dyn ObjectStore>,
    // Dropped after the processes (fields drop in declaration order).
    pubsub_proxy: Option<FaultProxy>,
    gcs_proxy: Option<FaultProxy>,
    _emulator: Option<Emulator>,
}

impl Pipeline {
    /// Writes the configs, starts the emulator if none was given, creates the topics and
    /// subscriptions with `event-service registry apply`, and starts the event-service, the
    /// exporter replicas (unless [`PipelineOptions::defer_exporters`]) and the tailer, each
    /// answering its health check.
    pub async fn start(opts: PipelineOptions, bins: &Binaries) -> Result<Pipeline> {
        std::fs::create_dir_all(&opts.dir).map_err(|e| Error::io(&opts.dir, e))?;
        let emulator = match &opts.emulator_host {
            Some(_) => None,
            None => Some(Emulator::start()),
        };
        let emulator_host = match (&opts.emulator_host, &emulator) {
            (Some(h), _) => h.clone(),
            (None, Some(e)) => e.host(),
            (None, None) => unreachable!("an emulator was started"),
        };
        let pubsub_proxy = match opts.pubsub_proxy {
            true => Some(proxy_to(&emulator_host).await?),
            false => None,
        };
        let gcs_proxy = match (&opts.storage, opts.gcs_proxy) {
            (StorageKind::Gcs { endpoint, .. }, true) => Some(proxy_to(endpoint).await?),
            _ => None,
        };
        let wiring = Wiring {
            service_port: free_port()?,
            tailer_metrics_port: free_port()?,
            exporter_metrics_ports: opts.replicas.iter().map(|_| free_port()).collect::<Result<_>>()?,
            pubsub_host: pubsub_proxy.as_ref().map_or_else(|| emulator_host.clone(), FaultProxy::host),
            gcs_endpoint: match &opts.storage {
                StorageKind::Gcs { endpoint, .. } => {
                    Some(gcs_proxy.as_ref().map_or_else(|| endpoint.clone(), FaultProxy::base_url))
                }
                StorageKind::Local => None,
            },
        };
        let files = write_configs(&opts, &wiring)?;
        apply_registry(bins, &files, &emulator_host, &opts.dir)?;

        let store = open_store(&opts, &files)?;
        let arg = |p: &Path| p.display().to_string();
        let proc = |name: &str, bin: &Path, args: &[&str]| {
            Proc::new(name, bin, args, &opts.dir.join(format!("{name}.log")))
                .without_env("PUBSUB_EMULATOR_HOST")
                .with_env("RUST_LOG", "info")
        };
        let service_cfg = arg(&files.service);
        let tailer_cfg = arg(&files.tailer);
        let mut pipeline = Pipeline {
            service: proc("event-service", &bins.event_service, &["--config", &service_cfg]),
            exporters: files
                .exporters
                .iter()
                .enumerate()
                .map(|(i, cfg)| {
                    let name = replica_file(i, "log");
                    let name = name.trim_end_matches(".log");
                    proc(name, &bins.exporter, &["--config", &arg(cfg)])
                })
                .collect(),
            tailer: proc("tailer", &bins.tailer, &["--config", &tailer_cfg]),
            service_port: wiring.service_port,
            tailer_metrics_port: wiring.tailer_metrics_port,
            exporter_metrics_ports: wiring.exporter_metrics_ports.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .map_err(|e| Error::Process(format!("http client: {e}")))?,
            store,
            opts,
            files,
            emulator_host,
            pubsub_proxy,
            gcs_proxy,
            _emulator: emulator,
        };
        pipeline.start_component(Component::Service).await?;
        if !pipeline.opts.defer_exporters {
            pipeline.start_exporters().await?;
        }
        pipeline.start_component(Component::Tailer).await?;
        Ok(pipeline)
    }

    /// The options it was started with.
    pub fn options(&self) -> &PipelineOptions {
        &self.opts
    }

    /// The log file the tailer follows (`<dir>/logs/events.log`; rotated copies beside it).
    pub fn log_path(&self) -> PathBuf {
        self.files.log_dir.join("events.log")
    }

    /// The local bucket directory (with [`StorageKind::Local`]).
    pub fn buckets_dir(&self) -> &Path {
        &self.files.buckets
    }

    /// The emulator's `host:port` (not the proxy's).
    pub fn emulator_host(&self) -> &str {
        &self.emulator_host
    }

    /// The event-service's base URL, e.g. `http://127.0.0.1:8080`.
    pub fn service_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.service_port)
    }

    /// The proxy in front of the emulator, if the options asked for one.
    pub fn pubsub_proxy(&self) -> Option<&FaultProxy> {
        self.pubsub_proxy.as_ref()
    }

    /// The proxy in front of GCS, if the options asked for one.
    pub fn gcs_proxy(&self) -> Option<&FaultProxy> {
        self.gcs_proxy.as_ref()
    }

    /// The bucket store as the exporter writes it (read directly, not through a proxy).
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// The process of a component (of [`Component::Exporter`]: the first replica).
    pub fn process(&self, c: Component) -> &Proc {
        self.slot(Slot::of(c))
    }

    /// Exporter replicas the pipeline runs (started or not).
    pub fn exporter_count(&self) -> usize {
        self.exporters.len()
    }

    /// The process of exporter replica `i` (`i < exporter_count()`).
    pub fn exporter(&self, i: usize) -> &Proc {
        &self.exporters[i]
    }

    /// The fixed `replica` name of exporter replica `i`, if it has one.
    pub fn replica_name(&self, i: usize) -> Option<&str> {
        self.opts.replicas.get(i).and_then(|r| r.as_deref())
    }

    /// `SIGKILL`s of all exporter replicas together.
    pub fn exporter_kills(&self) -> u32 {
        self.exporters.iter().map(Proc::kills).sum()
    }

    /// The exporter replicas running and not paused, by index.
    pub fn running_exporters(&mut self) -> Vec<usize> {
        (0..self.exporters.len())
            .filter(|i| self.exporters[*i].is_running() && !self.exporters[*i].is_paused())
            .collect()
    }

    /// Whether exporter replica `i` is running (paused or not).
    pub fn exporter_alive(&mut self, i: usize) -> bool {
        self.exporters[i].is_running()
    }

    fn slot(&self, s: Slot) -> &Proc {
        match s {
            Slot::Tailer => &self.tailer,
            Slot::Service => &self.service,
            Slot::Exporter(i) => &self.exporters[i],
        }
    }

    fn slot_mut(&mut self, s: Slot) -> &mut Proc {
        match s {
            Slot::Tailer => &mut self.tailer,
            Slot::Service => &mut self.service,
            Slot::Exporter(i) => &mut self.exporters[i],
        }
    }

    fn process_mut(&mut self, c: Component) -> &mut Proc {
        self.slot_mut(Slot::of(c))
    }

    fn url(&self, s: Slot, path: &str) -> String {
        match s {
            Slot::Tailer => format!("http://127.0.0.1:{}/{path}", self.tailer_metrics_port),
            Slot::Service => format!("{}/{path}", self.service_url()),
            Slot::Exporter(i) => format!("http://127.0.0.1:{}/{path}", self.exporter_metrics_ports[i]),
        }
    }

    /// Starts a component (it must not be running) and waits for its health check.
    pub async fn start_component(&mut self, c: Component) -> Result<()> {
        self.start_slot(Slot::of(c)).await
    }

    /// Starts every exporter replica that is not running, each answering its health check.
    pub async fn start_exporters(&mut self) -> Result<()> {
        for i in 0..self.exporters.len() {
            if !self.exporters[i].is_running() {
                self.start_exporter(i).await?;
            }
        }
        Ok(())
    }

    /// Starts exporter replica `i` (it must not be running) and waits for its health check.
    pub async fn start_exporter(&mut self, i: usize) -> Result<()> {
        self.start_slot(Slot::Exporter(i)).await
    }

    /// Kills exporter replica `i` with `SIGKILL` and starts it again (with a fixed `replica`
    /// name, under the same name).
    pub async fn kill_and_restart_exporter(&mut self, i: usize) -> Result<()> {
        self.exporters[i].kill();
        self.start_exporter(i).await
    }

    /// Stops exporter replica `i` with `SIGSTOP` (see [`Proc::pause`]).
    pub fn pause_exporter(&mut self, i: usize) {
        self.exporters[i].pause();
    }

    /// Continues exporter replica `i` with `SIGCONT`.
    pub fn resume_exporter(&mut self, i: usize) {
        self.exporters[i].resume();
    }

    /// Stops exporter replica `i` gracefully with `SIGTERM`, as a scale-in does; an error
    /// when it does not exit 0 within the grace period.
    pub async fn terminate_exporter(&mut self, i: usize) -> Result<()> {
        let p = &mut self.exporters[i];
        match p.terminate(STOP_GRACE).await? {
            s if s.success() => Ok(()),
            s => Err(Error::Process(format!(
                "{} exited with {s} on SIGTERM; its log ends with:\n{}",
                p.name(),
                p.log_tail(20)
            ))),
        }
    }

    /// Best effort: the first of the exporter replicas `among` whose log gains a line about
    /// closing an hour (any line containing `clos`) within `within`, or `None`.
    pub async fn wait_exporter_closing(&self, among: &[usize], within: Duration) -> Option<usize> {
        let from: Vec<(usize, u64)> = among.iter().map(|i| (*i, self.exporters[*i].log_len())).collect();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            for (i, offset) in &from {
                if self.exporters[*i].log_since(*offset).lines().any(|l| l.contains("clos")) {
                    return Some(*i);
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn start_slot(&mut self, s: Slot) -> Result<()> {
        self.slot_mut(s).start()?;
        let url = self.url(s, "readyz");
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if matches!(self.http.get(&url).send().await, Ok(r) if r.status().is_success()) {
                return Ok(());
            }
            let p = self.slot_mut(s);
            if let Some(status) = p.exited() {
                return Err(Error::Process(format!(
                    "{} exited at start ({status}); its log ends with:\n{}",
                    p.name(),
                    p.log_tail(20)
                )));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Timeout(format!("{} did not answer {url}", p.name())));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The tailer's `service.url` now: [`PipelineOptions::tailer_url`] or the event-service's
    /// ingest URL.
    pub fn tailer_url(&self) -> String {
        self.opts.tailer_url.clone().unwrap_or_else(|| service_ingest_url(self.service_port))
    }

    /// What an operator does after fixing the tailer's `service.url`: stops the tailer with
    /// `SIGTERM` (it must exit 0 within the grace period), rewrites its config with
    /// `service.url = url` (`None`: the event-service's ingest URL) and starts it again,
    /// waiting for its health check.
    pub async fn restart_tailer_at(&mut self, url: Option<&str>) -> Result<()> {
        if self.tailer.is_running() {
            let status = self.tailer.terminate(STOP_GRACE).await?;
            if !status.success() {
                return Err(Error::Process(format!(
                    "the tailer exited with {status} on SIGTERM; its log ends with:\n{}",
                    self.tailer.log_tail(20)
                )));
            }
        }
        self.opts.tailer_url = url.map(str::to_owned);
        let text = tailer_toml(&self.opts, self.tailer_metrics_port, &self.tailer_url(), &self.files.log_dir);
        std::fs::write(&self.files.tailer, text).map_err(|e| Error::io(&self.files.tailer, e))?;
        self.start_component(Component::Tailer).await
    }

    /// Kills a component with `SIGKILL`.
    pub fn kill(&mut self, c: Component) {
        self.process_mut(c).kill();
    }

    /// Kills a component with `SIGKILL` and starts it again.
    pub async fn kill_and_restart(&mut self, c: Component) -> Result<()> {
        self.kill(c);
        self.start_component(c).await
    }

    /// An error naming the first component (or exporter replica) that exited on its own,
    /// with its log's end.
    pub fn check_alive(&mut self) -> Result<()> {
        for s in self.slots() {
            let p = self.slot_mut(s);
            if p.starts() > 0
                && let Some(status) = p.exited()
            {
                return Err(Error::Process(format!(
                    "{} exited on its own ({status}); its log ends with:\n{}",
                    p.name(),
                    p.log_tail(30)
                )));
            }
        }
        Ok(())
    }

    /// The sum of every series of a metric (e.g. `tailer_events_acked_total`), 0 when absent.
    pub async fn metric(&self, c: Component, name: &str) -> Result<f64> {
        let text = self.metrics_text(c).await?;
        Ok(metric_sum(&text, name, None))
    }

    /// The Prometheus text of a component's `/metrics` (of the exporter: its first replica).
    pub async fn metrics_text(&self, c: Component) -> Result<String> {
        let url = self.url(Slot::of(c), "metrics");
        let resp = self.http.get(&url).send().await.map_err(|e| Error::Process(format!("GET {url}: {e}")))?;
        resp.text().await.map_err(|e| Error::Process(format!("GET {url}: {e}")))
    }

    /// The buckets of `buckets` without a `_SUCCESS` manifest yet.
    pub async fn open_hours(&self, buckets: &BTreeSet<(&'static str, i64)>) -> Vec<(&'static str, i64)> {
        let mut open = Vec::new();
        for (t, h) in buckets {
            let path = object_store::path::Path::from(format!(
                "{}/{}",
                event_model::HourBucket::at(t, *h).path(),
                exporter::manifest::MANIFEST
            ));
            if self.store.head(&path).await.is_err() {
                open.push((*t, *h));
            }
        }
        open
    }

    /// Waits until every bucket in `buckets` has its `_SUCCESS` manifest, checking meanwhile
    /// that no component died.
    pub async fn wait_closed(
        &mut self,
        buckets: &BTreeSet<(&'static str, i64)>,
        timeout: Duration,
    ) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.check_alive()?;
            let open = self.open_hours(buckets).await;
            if open.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let names: Vec<String> =
                    open.iter().map(|(t, h)| event_model::HourBucket::at(t, *h).path()).collect();
                return Err(Error::Timeout(format!(
                    "hours still open after {timeout:?}: {}",
                    names.join(", ")
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Tailer, event-service, then each exporter replica: the order of [`Pipeline::stop`].
    fn slots(&self) -> Vec<Slot> {
        let mut v = vec![Slot::Tailer, Slot::Service];
        v.extend((0..self.exporters.len()).map(Slot::Exporter));
        v
    }

    /// Stops every running component (every exporter replica) with `SIGTERM`, sources first;
    /// an error names a component that did not exit 0 in time.
    pub async fn stop(&mut self) -> Result<()> {
        let mut first_error = None;
        for s in self.slots() {
            let p = self.slot_mut(s);
            if !p.is_running() {
                continue;
            }
            match p.terminate(STOP_GRACE).await {
                Ok(st) if st.success() => {}
                Ok(st) => {
                    first_error
                        .get_or_insert(Error::Process(format!("{} exited with {st} on SIGTERM", p.name())));
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// A process of the pipeline: [`Component`] with the exporter's replica index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Tailer,
    Service,
    Exporter(usize),
}

impl Slot {
    fn of(c: Component) -> Slot {
        match c {
            Component::Tailer => Slot::Tailer,
            Component::Service => Slot::Service,
            Component::Exporter => Slot::Exporter(0),
        }
    }
}

/// Sum of the samples of `name` in Prometheus text, optionally only those whose labels contain
/// `label` (e.g. `reason="malformed"`).
pub fn metric_sum(text: &str, name: &str, label: Option<&str>) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (labels, value) = match rest.as_bytes().first()? {
                b'{' => rest.split_once('}')?,
                b' ' => ("", rest),
                _ => return None,
            };
            if label.is_some_and(|want| !labels.contains(want)) {
                return None;
            }
            value.split_whitespace().next()?.parse::<f64>().ok()
        })
        .sum()
}

async fn proxy_to(host_or_url: &str) -> Result<FaultProxy> {
    let hostport = host_or_url.trim_start_matches("http://").trim_end_matches('/');
    let addr: SocketAddr = match hostport.parse() {
        Ok(a) => a,
        Err(_) => tokio::net::lookup_host(hostport)
            .await
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| Error::Process(format!("cannot resolve {hostport}")))?,
    };
    let proxy = FaultProxy::start(addr).await;
    // Faults apply to every request, not only publishes.
    proxy.set_path_filter(|_| true);
    Ok(proxy)
}

fn apply_registry(bins: &Binaries, files: &ConfigFiles, emulator_host: &str, dir: &Path) -> Result<()> {
    let out = Command::new(&bins.event_service)
        .args(["registry", "apply", "--config"])
        .arg(&files.service)
        .args(["--emulator-host", emulator_host])
        .args(["--ack-deadline-secs", &crate::config::ACK_DEADLINE_SECS.to_string()])
        .env_remove("PUBSUB_EMULATOR_HOST")
        .current_dir(dir)
        .output()
        .map_err(|e| Error::Process(format!("event-service registry apply: {e}")))?;
    if !out.status.success() {
        return Err(Error::Process(format!(
            "event-service registry apply failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

fn open_store(opts: &PipelineOptions, files: &ConfigFiles) -> Result<Arc<dyn ObjectStore>> {
    let cfg = match &opts.storage {
        StorageKind::Local => exporter::storage::StorageConfig::Local { path: files.buckets.clone() },
        StorageKind::Gcs { endpoint, bucket } => exporter::storage::StorageConfig::Gcs {
            bucket: bucket.clone(),
            endpoint: Some(endpoint.clone()),
            prefix: None,
        },
    };
    exporter::storage::open(&cfg).map_err(Error::Store)
}

fn free_port() -> Result<u16> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::Process(format!("cannot find a free port: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sum_adds_series_and_filters_labels() {
        let text =
            "# HELP x\nfoo_total{reason=\"a\"} 2\nfoo_total{reason=\"b\"} 3\nfoo_total_other 9\nfoo 1\n";
        assert_eq!(metric_sum(text, "foo_total", None), 5.0);
        assert_eq!(metric_sum(text, "foo_total", Some("reason=\"b\"")), 3.0);
        assert_eq!(metric_sum(text, "foo", None), 1.0);
        assert_eq!(metric_sum(text, "bar", None), 0.0);
    }
}
