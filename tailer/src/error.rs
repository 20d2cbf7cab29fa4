//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in the tailer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid; the message names the key and what was wrong.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The event-type registry could not be loaded.
    #[error("event-type registry: {0}")]
    Registry(#[from] event_model::Error),
    /// The checkpoint file exists but cannot be understood.
    #[error("checkpoint {path} is corrupt: {reason}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// Another tailer holds the data directory.
    #[error("data directory {0} is in use by another tailer")]
    Locked(PathBuf),
    /// The HTTP client could not be built (e.g. an unreadable CA certificate).
    #[error("HTTP client: {0}")]
    Http(String),
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
