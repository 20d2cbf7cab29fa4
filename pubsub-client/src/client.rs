//! The client handle and its builder.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;

use crate::auth::{Authorizer, Credentials};
use crate::error::{Error, Result};
use crate::names::{SubscriptionName, TopicName, validate_project};
use crate::publisher::{Publisher, PublisherConfig};
use crate::retry::RetryPolicy;
use crate::transport::{Body, HttpSettings, Transport};

/// The production endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://pubsub.googleapis.com";

/// Environment variable that points every Google client at a Pub/Sub emulator (`host:port`).
pub const EMULATOR_HOST_ENV: &str = "PUBSUB_EMULATOR_HOST";

/// Environment variables consulted, in order, for the project when none is configured.
pub const PROJECT_ENV: [&str; 3] = ["PUBSUB_PROJECT_ID", "GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT"];

/// A Pub/Sub client: admin calls, low-level pull/ack calls, and a factory for publishers.
///
/// Cheap to clone; clones share the HTTP connection pool and credentials.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

#[derive(Debug)]
struct ClientInner {
    project: String,
    transport: Transport,
    retry: RetryPolicy,
}

/// Builds a [`Client`].
///
/// Defaults: endpoint [`DEFAULT_ENDPOINT`], application default credentials, 30 s request
/// timeout, 10 s connect timeout, 64 idle connections kept per host, [`RetryPolicy::default`]
/// for admin and pull calls. When `PUBSUB_EMULATOR_HOST` is set (or
/// [`with_emulator_host`](Self::with_emulator_host) is used) the client talks plain HTTP to that
/// host without credentials, as Google's clients do; the emulator wins over any endpoint.
#[derive(Debug, Clone)]
#[must_use]
pub struct ClientBuilder {
    project: Option<String>,
    endpoint: String,
    emulator_host: Option<String>,
    use_env_emulator: bool,
    credentials: Credentials,
    http: HttpSettings,
    retry: RetryPolicy,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            project: None,
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            emulator_host: None,
            use_env_emulator: true,
            credentials: Credentials::default(),
            http: HttpSettings {
                request_timeout: Duration::from_secs(30),
                connect_timeout: Duration::from_secs(10),
                pool_max_idle_per_host: 64,
                user_agent: concat!("eventpipe-pubsub-client/", env!("CARGO_PKG_VERSION")).to_owned(),
            },
            retry: RetryPolicy::default(),
        }
    }
}

impl ClientBuilder {
    /// The project topics and subscriptions are resolved in. If unset, the environment
    /// ([`PROJECT_ENV`]) and then the credentials are asked.
    pub fn with_project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
        self
    }

    /// The API endpoint, e.g. a regional one (`https://europe-west1-pubsub.googleapis.com`).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into();
        self
    }

    /// Talk to an emulator at `host:port` over plain HTTP without credentials.
    pub fn with_emulator_host(mut self, host: impl Into<String>) -> Self {
        self.emulator_host = Some(host.into());
        self
    }

    /// Whether `PUBSUB_EMULATOR_HOST` is honoured. Default: true.
    pub fn with_env_emulator(mut self, honour: bool) -> Self {
        self.use_env_emulator = honour;
        self
    }

    /// Where credentials come from. Default: [`Credentials::ApplicationDefault`].
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// Time limit of one HTTP request, response body included. Default: 30 s.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.http.request_timeout = timeout;
        self
    }

    /// Time limit for establishing a connection. Default: 10 s.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.http.connect_timeout = timeout;
        self
    }

    /// Idle connections kept open per host. Default: 64.
    pub fn with_pool_max_idle_per_host(mut self, n: usize) -> Self {
        self.http.pool_max_idle_per_host = n;
        self
    }

    /// Retry policy for admin and pull/ack calls (publishers have their own). Default:
    /// [`RetryPolicy::default`].
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Resolves credentials and builds the client.
    pub async fn build(self) -> Result<Client> {
        self.retry.validate()?;
        let emulator = self.emulator_host.clone().or_else(|| {
            self.use_env_emulator
                .then(|| std::env::var(EMULATOR_HOST_ENV).ok())
                .flatten()
                .filter(|h| !h.trim().is_empty())
        });
        let (endpoint, auth) = match emulator {
            Some(host) => {
                let host = host.trim().trim_start_matches("http://").trim_end_matches('/').to_owned();
                tracing::debug!(%host, "using the Pub/Sub emulator");
                (format!("http://{host}"), None)
            }
            None => {
                (self.endpoint.clone(), self.credentials.clone().into_provider().await?.map(Authorizer::new))
            }
        };
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(Error::InvalidConfig(format!(
                "endpoint {endpoint:?} must start with http:// or https://"
            )));
        }
        let project = match self.project.clone() {
            Some(p) => p,
            None => match PROJECT_ENV.iter().find_map(|v| std::env::var(v).ok().filter(|p| !p.is_empty())) {
                Some(p) => p,
                None => match &auth {
                    Some(a) => a.project_id().await.ok_or_else(no_project)?,
                    None => return Err(no_project()),
                },
            },
        };
        validate_project(&project)?;
        let transport = Transport::new(&endpoint, auth, &self.http)?;
        Ok(Client { inner: Arc::new(ClientInner { project, transport, retry: self.retry }) })
    }
}

fn no_project() -> Error {
    Error::InvalidConfig(format!(
        "no project configured: use ClientBuilder::with_project or set one of {}",
        PROJECT_ENV.join(", ")
    ))
}

impl Client {
    /// A builder with the documented defaults.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// The project short names are resolved in.
    pub fn project(&self) -> &str {
        &self.inner.project
    }

    /// The base URL requests go to, e.g. `https://pubsub.googleapis.com/v1/`.
    pub fn base_url(&self) -> &str {
        self.inner.transport.base()
    }

    /// Resolves a topic id or full path in this client's project.
    pub fn topic_name(&self, topic: &str) -> Result<TopicName> {
        TopicName::parse(&self.inner.project, topic)
    }

    /// Resolves a subscription id or full path in this client's project.
    pub fn subscription_name(&self, subscription: &str) -> Result<SubscriptionName> {
        SubscriptionName::parse(&self.inner.project, subscription)
    }

    /// A publisher for one topic with the default [`PublisherConfig`].
    pub fn publisher(&self, topic: &str) -> Result<Publisher> {
        self.publisher_with_config(topic, PublisherConfig::default())
    }

    /// A publisher for one topic. Must be called inside a tokio runtime; its background
    /// tasks run there.
    pub fn publisher_with_config(&self, topic: &str, config: PublisherConfig) -> Result<Publisher> {
        Publisher::new(self.clone(), self.topic_name(topic)?, config)
    }

    pub(crate) fn transport(&self) -> &Transport {
        &self.inner.transport
    }

    /// One call with the client's retry policy.
    pub(crate) async fn call_with_retry(
        &self,
        method: Method,
        path: &str,
        body: Option<Body>,
    ) -> Result<bytes::Bytes> {
        let transport = &self.inner.transport;
        self.inner
            .retry
            .run(
                |_| transport.call(method.clone(), path, body.clone()),
                |err, attempt| tracing::debug!(%path, attempt, error = %err, "retrying Pub/Sub call"),
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn explicit_emulator_host_means_plain_http_without_auth() {
        let c = Client::builder()
            .with_project("proj")
            .with_endpoint("https://ignored.example")
            .with_emulator_host("127.0.0.1:8085")
            .build()
            .await
            .expect("builds");
        assert_eq!(c.base_url(), "http://127.0.0.1:8085/v1/");
        assert!(c.transport().authorizer().is_none());
        assert_eq!(c.topic_name("t-1").expect("ok").as_str(), "projects/proj/topics/t-1");
    }

    #[tokio::test]
    async fn bad_settings_are_reported() {
        let err = Client::builder()
            .with_project("Bad_Project")
            .with_emulator_host("127.0.0.1:1")
            .build()
            .await
            .expect_err("invalid project");
        assert!(err.to_string().contains("Bad_Project"), "{err}");
        let err = Client::builder()
            .with_project("p")
            .with_env_emulator(false)
            .with_endpoint("ftp://x")
            .with_credentials(Credentials::Anonymous)
            .build()
            .await
            .expect_err("bad scheme");
        assert!(err.to_string().contains("http://"), "{err}");
    }
}
