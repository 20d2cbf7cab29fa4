//! Shared state: the registry, publishers per topic, limits, metrics, readiness.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use event_model::Registry;
use pubsub_client::{Client, Publisher, PublisherConfig, RetryPolicy};
use tokio::sync::Semaphore;

use crate::auth::Tokens;
use crate::config::{Config, PublisherSettings};
use crate::error::ServiceError;
use crate::metrics::Metrics;
use crate::mirror::Mirror;

/// Publishers of one Pub/Sub project, one per topic, created on first use.
#[derive(Debug)]
pub struct Publishers {
    client: Client,
    prefix: String,
    config: PublisherConfig,
    by_topic: Mutex<HashMap<String, Publisher>>,
}

impl Publishers {
    pub(crate) fn new(client: Client, prefix: String, settings: &PublisherSettings) -> Self {
        let mut config = PublisherConfig::default()
            .with_delay(Duration::from_millis(settings.delay_ms))
            .with_max_outstanding_messages(settings.max_outstanding_messages)
            .with_max_outstanding_bytes(settings.max_outstanding_bytes)
            .with_max_in_flight_requests(settings.max_in_flight_requests)
            .with_retry_policy(
                RetryPolicy::default().with_total_timeout(Duration::from_secs(settings.retry_timeout_secs)),
            );
        if let Some(t) = settings.gzip_threshold {
            config = config.with_gzip(t, 1);
        }
        Publishers { client, prefix, config, by_topic: Mutex::new(HashMap::new()) }
    }

    /// The publisher of `topic` (with this set's prefix).
    pub fn get(&self, topic: &str) -> Result<Publisher, pubsub_client::Error> {
        let mut map = self.by_topic.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = map.get(topic) {
            return Ok(p.clone());
        }
        let p = self.client.publisher_with_config(&format!("{}{topic}", self.prefix), self.config.clone())?;
        map.insert(topic.to_owned(), p.clone());
        Ok(p)
    }

    /// Messages queued in all publishers.
    pub fn outstanding(&self) -> u64 {
        let map = self.by_topic.lock().unwrap_or_else(PoisonError::into_inner);
        map.values().map(|p| p.stats().outstanding_messages).sum()
    }

    /// Flushes and stops every publisher.
    pub async fn shutdown(&self) {
        let all: Vec<Publisher> =
            self.by_topic.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect();
        futures::future::join_all(all.iter().map(Publisher::shutdown)).await;
    }
}

/// Everything a request handler needs.
#[derive(Debug)]
pub struct AppState {
    /// The configuration.
    pub config: Config,
    registry: RwLock<Arc<Registry>>,
    /// The Pub/Sub client of the main project.
    pub client: Client,
    /// Publishers of the main project.
    pub publishers: Publishers,
    /// The dark-loading mirror: its own bounded queue in front of its publishers.
    pub mirror: Option<Mirror>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// One permit per request in flight.
    pub request_slots: Semaphore,
    /// One permit per request body byte in flight.
    pub byte_slots: Semaphore,
    /// The ingest tokens with their bindings and rate limiters.
    pub(crate) tokens: Tokens,
    readiness: RwLock<Result<(), String>>,
}

async fn build_client(project: &str, emulator: Option<&String>) -> Result<Client, ServiceError> {
    let mut b = Client::builder().with_project(project);
    if let Some(h) = emulator {
        b = b.with_emulator_host(h);
    }
    Ok(b.build().await?)
}

impl AppState {
    /// Loads the registry and builds the clients. Must run inside a tokio runtime.
    pub async fn new(config: Config) -> Result<Arc<Self>, ServiceError> {
        config.validate()?;
        let registry = Registry::load(&config.registry)?;
        let client = build_client(&config.project, config.emulator_host.as_ref()).await?;
        let publishers = Publishers::new(client.clone(), String::new(), &config.publisher);
        let metrics = Metrics::new();
        let mirror = match &config.mirror {
            Some(m) => {
                let project = m.project.as_deref().unwrap_or(&config.project);
                let emulator = m.emulator_host.as_ref().or(config.emulator_host.as_ref());
                let c = build_client(project, emulator).await?;
                let p = Publishers::new(c, m.topic_prefix.clone(), &config.publisher);
                Some(Mirror::new(p, m, config.publisher.max_outstanding_messages, metrics.clone()))
            }
            None => None,
        };
        let tokens = Tokens::new(&config.auth, &config.limits, &metrics);
        Ok(Arc::new(AppState {
            tokens,
            request_slots: Semaphore::new(config.limits.max_in_flight_requests),
            byte_slots: Semaphore::new(config.limits.max_in_flight_bytes),
            registry: RwLock::new(Arc::new(registry)),
            readiness: RwLock::new(Err("topics not checked yet".into())),
            client,
            publishers,
            mirror,
            metrics,
            config,
        }))
    }

    /// The current registry.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Re-reads the registry file; on error the old registry stays.
    pub fn reload_registry(&self) -> Result<usize, ServiceError> {
        let result = Registry::load(&self.config.registry);
        let label =
            crate::metrics::ResultLabels { result: if result.is_ok() { "ok" } else { "error" }.into() };
        self.metrics.registry_reloads.get_or_create(&label).inc();
        let registry = result?;
        let n = registry.len();
        *self.registry.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(registry);
        self.set_readiness(Err("topics not checked since the registry changed".into()));
        Ok(n)
    }

    /// Whether every topic was reachable at the last check, or why not.
    pub fn readiness(&self) -> Result<(), String> {
        self.readiness.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn set_readiness(&self, r: Result<(), String>) {
        *self.readiness.write().unwrap_or_else(PoisonError::into_inner) = r;
    }

    /// Checks that every topic of the registry (and the dead-letter topic) exists.
    pub async fn check_topics(&self) -> Result<(), String> {
        let registry = self.registry();
        let mut topics: Vec<String> = registry.types().map(|t| t.topic.clone()).collect();
        topics.extend(self.config.dead_letter_topic.clone());
        for t in &topics {
            if let Err(e) = self.client.get_topic(t).await {
                let r = Err(format!("topic {t} is not reachable: {e}"));
                self.set_readiness(r.clone());
                return r;
            }
        }
        self.set_readiness(Ok(()));
        Ok(())
    }
}
