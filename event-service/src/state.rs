//! Shared state: the registry, publishers per topic, limits, metrics, readiness.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use event_model::Registry;
use futures::StreamExt as _;
use pubsub_client::{Client, Publisher, PublisherConfig, RetryPolicy};
use tokio::sync::{Notify, Semaphore};

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
    readiness: RwLock<Readiness>,
    recheck: Notify,
}

/// Topics checked at once by [`AppState::check_topics`].
const TOPIC_CHECKS_AT_ONCE: usize = 8;

/// What the last topic check found; `/readyz` answers from it.
///
/// The service is ready once Pub/Sub answered: a topic that does not exist (or that the
/// service may not look at) is reported, in the `/readyz` body, the `event_service_topics_*`
/// gauges and a warning, but only events of its type are affected, so it must not take every
/// replica out of the load balancer. Not ready before the first check finished and when no
/// topic check got an answer from Pub/Sub (transport errors, 5xx, no token).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Readiness {
    /// No check has finished yet.
    NotChecked,
    /// Pub/Sub answered at least one check.
    Ready {
        /// Topics Pub/Sub said do not exist.
        missing: Vec<String>,
        /// Topics whose check failed otherwise, each with its error.
        failing: Vec<String>,
    },
    /// No check got an answer from Pub/Sub; the first error.
    Unreachable(String),
}

impl Readiness {
    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        matches!(self, Readiness::Ready { .. })
    }

    /// Whether every topic was found.
    pub fn all_found(&self) -> bool {
        matches!(self, Readiness::Ready { missing, failing } if missing.is_empty() && failing.is_empty())
    }

    /// The readiness from each topic's check result.
    pub fn from_checks<'a>(
        checks: impl IntoIterator<Item = (&'a str, Result<(), &'a pubsub_client::Error>)>,
    ) -> Self {
        let (mut answered, mut missing, mut failing, mut first_error) = (0, Vec::new(), Vec::new(), None);
        for (topic, result) in checks {
            match result {
                Ok(()) => answered += 1,
                Err(e) if e.is_not_found() => {
                    answered += 1;
                    missing.push(topic.to_owned());
                }
                Err(e) => {
                    // Any 4xx is Pub/Sub's answer about this topic (permission denied, quota);
                    // 5xx, transport and token errors are no answer at all.
                    if e.http_status().is_some_and(|c| (400..500).contains(&c)) {
                        answered += 1;
                    }
                    first_error.get_or_insert_with(|| format!("topic {topic}: {e}"));
                    failing.push(format!("{topic} ({e})"));
                }
            }
        }
        match first_error {
            Some(e) if answered == 0 => Readiness::Unreachable(e),
            _ => Readiness::Ready { missing, failing },
        }
    }
}

impl std::fmt::Display for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Readiness::NotChecked => f.write_str("not ready: topics not checked yet"),
            Readiness::Unreachable(e) => write!(f, "not ready: Pub/Sub did not answer: {e}"),
            Readiness::Ready { missing, failing } => {
                f.write_str("ready")?;
                if !missing.is_empty() {
                    write!(f, "; missing topics: {}", missing.join(", "))?;
                }
                if !failing.is_empty() {
                    write!(f, "; topics failing their check: {}", failing.join(", "))?;
                }
                Ok(())
            }
        }
    }
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
                // The mirror's publishers hold at most what its queue holds, so a stalled
                // mirror target keeps at most twice the queue's limits in memory.
                let mut settings = config.publisher.clone();
                settings.max_outstanding_messages = settings.max_outstanding_messages.min(m.queue_events);
                settings.max_outstanding_bytes = settings.max_outstanding_bytes.min(m.queue_bytes);
                let p = Publishers::new(c, m.topic_prefix.clone(), &settings);
                Some(Mirror::new(p, m, settings.max_outstanding_messages, metrics.clone()))
            }
            None => None,
        };
        let tokens = Tokens::new(&config.auth, &config.limits, &metrics);
        Ok(Arc::new(AppState {
            tokens,
            request_slots: Semaphore::new(config.limits.max_in_flight_requests),
            byte_slots: Semaphore::new(config.limits.max_in_flight_bytes),
            registry: RwLock::new(Arc::new(registry)),
            readiness: RwLock::new(Readiness::NotChecked),
            recheck: Notify::new(),
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
        // Pub/Sub's reachability does not change with the registry: the last readiness stands
        // until the new registry's topics are checked, at once.
        self.recheck.notify_one();
        Ok(n)
    }

    /// What the last topic check found.
    pub fn readiness(&self) -> Readiness {
        self.readiness.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Resolves when the topics should be checked again before the usual interval (after a
    /// registry reload).
    pub async fn recheck_requested(&self) {
        self.recheck.notified().await;
    }

    /// Checks every topic of the registry (and the dead-letter topic), a few at once, and
    /// records the result: the readiness and the `event_service_topics_missing` and
    /// `event_service_topics_check_failed` gauges.
    pub async fn check_topics(&self) -> Readiness {
        let registry = self.registry();
        let mut topics: Vec<String> = registry.types().map(|t| t.topic.clone()).collect();
        topics.extend(self.config.dead_letter_topic.clone());
        topics.sort();
        topics.dedup();
        let results: Vec<(String, Result<(), pubsub_client::Error>)> = futures::stream::iter(topics)
            .map(|t| async move {
                let r = self.client.get_topic(&t).await.map(drop);
                (t, r)
            })
            .buffered(TOPIC_CHECKS_AT_ONCE)
            .collect()
            .await;
        let r = Readiness::from_checks(results.iter().map(|(t, r)| (t.as_str(), r.as_ref().map(|_| ()))));
        let (missing, failing) = match &r {
            Readiness::Ready { missing, failing } => (missing.len(), failing.len()),
            _ => (0, results.len()),
        };
        self.metrics.topics_missing.set(i64::try_from(missing).unwrap_or(i64::MAX));
        self.metrics.topics_check_failed.set(i64::try_from(failing).unwrap_or(i64::MAX));
        *self.readiness.write().unwrap_or_else(PoisonError::into_inner) = r.clone();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, status: &str) -> pubsub_client::Error {
        pubsub_client::Error::Api { code, status: status.into(), message: "m".into() }
    }

    #[test]
    fn ready_when_pubsub_answers_with_missing_topics_named() {
        let (not_found, denied, down) =
            (api(404, "NOT_FOUND"), api(403, "PERMISSION_DENIED"), api(503, "UNAVAILABLE"));
        let r = Readiness::from_checks([("a", Ok(())), ("b", Err(&not_found)), ("c", Err(&down))]);
        assert!(r.is_ready() && !r.all_found());
        let text = r.to_string();
        assert!(text.starts_with("ready; missing topics: b; topics failing their check: c ("), "{text}");
        let r = Readiness::from_checks([("b", Err(&not_found))]);
        assert_eq!(
            r,
            Readiness::Ready { missing: vec!["b".into()], failing: vec![] },
            "NOT_FOUND is an answer"
        );
        assert!(
            Readiness::from_checks([("d", Err(&denied)), ("c", Err(&down))]).is_ready(),
            "403 is an answer"
        );
        assert!(Readiness::from_checks([("a", Ok(()))]).all_found());
        assert!(Readiness::from_checks([]).all_found(), "nothing to check");
    }

    #[test]
    fn not_ready_when_no_check_got_an_answer_or_none_finished() {
        let down = api(503, "UNAVAILABLE");
        let r = Readiness::from_checks([("a", Err(&down)), ("b", Err(&down))]);
        assert!(!r.is_ready());
        assert!(r.to_string().starts_with("not ready: Pub/Sub did not answer: topic a: "), "{r}");
        assert!(!Readiness::NotChecked.is_ready());
    }
}
