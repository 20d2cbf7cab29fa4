//! The crate's one error type.

/// Everything that can go wrong in the exporter.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid; the message names the key and what was wrong.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The event-type registry could not be loaded.
    #[error("event-type registry: {0}")]
    Registry(#[from] event_model::Error),
    /// Pub/Sub failed.
    #[error("Pub/Sub: {0}")]
    PubSub(#[from] pubsub_client::Error),
    /// Object storage failed.
    #[error("object storage: {0}")]
    Storage(#[from] object_store::Error),
    /// A data file could not be encoded or decoded.
    #[error("data file: {0}")]
    Format(#[from] crate::format::FormatError),
    /// An object that must be created once already exists with other bytes: another process
    /// wrote the same name, which the naming (incarnation ids) rules out, so it is never taken
    /// as written.
    #[error("{path} already exists with other content")]
    Conflict {
        /// The object's path.
        path: String,
    },
    /// A manifest, commit record, heartbeat or id index could not be read.
    #[error("manifest {path}: {reason}")]
    Manifest {
        /// The manifest's object path.
        path: String,
        /// What was wrong.
        reason: String,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
