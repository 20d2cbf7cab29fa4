//! The one error type of the harness.

use std::path::PathBuf;

/// What went wrong while running or checking the pipeline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A binary could not be found, built or started, or it exited when it should not have.
    #[error("{0}")]
    Process(String),
    /// A condition was not reached before its deadline.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The bucket store could not be read or holds something unreadable.
    #[error("bucket store: {0}")]
    Store(String),
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { path: path.into(), source }
    }
}

/// The harness's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
