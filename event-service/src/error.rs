//! The service library's error type.

/// Errors starting or running the service.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The registry could not be loaded.
    #[error(transparent)]
    Registry(#[from] event_model::Error),
    /// A Pub/Sub call failed.
    #[error("Pub/Sub: {0}")]
    PubSub(#[from] pubsub_client::Error),
    /// Binding or serving failed.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}
