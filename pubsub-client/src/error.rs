//! The crate's error type and its retry classification.

use std::sync::Arc;
use std::time::Duration;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in this crate.
///
/// Errors are cheap to clone (a failed batch hands the same error to every message in it). Use
/// [`Error::is_retryable`] to decide whether an operation may be tried again; the client's own
/// retries follow [`RetryPolicy`](crate::RetryPolicy) and already use it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A message failed validation before it was queued; nothing was sent.
    #[error("invalid message: {0}")]
    InvalidMessage(String),

    /// A project, topic or subscription name is malformed.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A configuration value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// The service answered with an error status.
    #[error("Pub/Sub API error: HTTP {code} {status}: {message}")]
    Api {
        /// HTTP status code.
        code: u16,
        /// The canonical status string from the error body (e.g. `UNAVAILABLE`), if any.
        status: String,
        /// The server's message.
        message: String,
    },

    /// The request did not complete: connection refused or reset, timeout, broken body.
    #[error("transport error: {0}")]
    Transport(#[source] Arc<reqwest::Error>),

    /// Obtaining an access token failed.
    #[error("authentication failed: {0}")]
    Auth(#[source] Arc<gcp_auth::Error>),

    /// Flow control is full and the publisher was configured to fail fast.
    #[error(
        "publisher flow control is full ({outstanding_messages} messages / {outstanding_bytes} bytes outstanding)"
    )]
    FlowControlFull {
        /// Messages outstanding when the publish was refused.
        outstanding_messages: usize,
        /// Encoded bytes outstanding when the publish was refused.
        outstanding_bytes: usize,
    },

    /// An earlier publish with this ordering key failed; the key is paused until
    /// [`Publisher::resume_publish`](crate::Publisher::resume_publish) is called.
    #[error("ordering key {key:?} is paused after a failed publish; call resume_publish to continue")]
    OrderingKeyPaused {
        /// The paused ordering key.
        key: String,
    },

    /// The publisher or subscriber has been shut down.
    #[error("{0} has been shut down")]
    ShutDown(&'static str),

    /// Retries ran out of time or attempts; `last` is the final failure.
    #[error("gave up after {attempts} attempts in {elapsed:?}: {last}")]
    RetriesExhausted {
        /// How many attempts were made.
        attempts: u32,
        /// Time spent from the first attempt to giving up.
        elapsed: Duration,
        /// The last error seen.
        last: Box<Error>,
    },

    /// The service answered with something this client cannot understand.
    #[error("unexpected response from Pub/Sub: {0}")]
    Protocol(String),
}

impl Error {
    /// Whether the failed operation may succeed if tried again unchanged.
    ///
    /// True for transport errors and for the HTTP statuses Pub/Sub documents as retryable:
    /// 409 `ABORTED`, 429, 499, 500, 502, 503, 504 (a 409 `ALREADY_EXISTS` is not retryable).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport(e) => !e.is_builder() && !e.is_redirect(),
            Error::Auth(_) => true,
            Error::Api { code, status, .. } => match status.as_str() {
                "ABORTED" | "CANCELLED" | "DEADLINE_EXCEEDED" | "INTERNAL" | "RESOURCE_EXHAUSTED"
                | "UNAVAILABLE" => true,
                "ALREADY_EXISTS"
                | "INVALID_ARGUMENT"
                | "NOT_FOUND"
                | "PERMISSION_DENIED"
                | "UNAUTHENTICATED"
                | "FAILED_PRECONDITION"
                | "OUT_OF_RANGE"
                | "UNIMPLEMENTED" => false,
                _ => matches!(code, 409 | 429 | 499 | 500 | 502 | 503 | 504),
            },
            _ => false,
        }
    }

    /// The HTTP status code, when the service answered with an error.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Error::Api { code, .. } => Some(*code),
            Error::RetriesExhausted { last, .. } => last.http_status(),
            _ => None,
        }
    }

    /// True when the service said the resource does not exist (HTTP 404).
    pub fn is_not_found(&self) -> bool {
        self.http_status() == Some(404)
    }

    /// True when the service said the resource already exists (HTTP 409 `ALREADY_EXISTS`).
    pub fn is_already_exists(&self) -> bool {
        matches!(self, Error::Api { code: 409, status, .. } if status != "ABORTED")
    }
}

impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Self {
        Error::Transport(Arc::new(e.without_url()))
    }
}

impl From<gcp_auth::Error> for Error {
    fn from(e: gcp_auth::Error) -> Self {
        Error::Auth(Arc::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, status: &str) -> Error {
        Error::Api { code, status: status.into(), message: "m".into() }
    }

    #[test]
    fn retryable_statuses_follow_the_documented_list() {
        for code in [429, 499, 500, 502, 503, 504] {
            assert!(api(code, "").is_retryable(), "{code} should be retryable");
        }
        assert!(api(409, "ABORTED").is_retryable());
        assert!(api(409, "").is_retryable());
        for code in [400, 401, 403, 404, 413] {
            assert!(!api(code, "").is_retryable(), "{code} must not be retryable");
        }
    }

    #[test]
    fn already_exists_is_not_retryable_but_aborted_is() {
        let exists = api(409, "ALREADY_EXISTS");
        assert!(!exists.is_retryable());
        assert!(exists.is_already_exists());
        assert!(!api(409, "ABORTED").is_already_exists());
    }

    #[test]
    fn local_errors_are_not_retryable() {
        assert!(!Error::InvalidMessage("x".into()).is_retryable());
        assert!(!Error::ShutDown("publisher").is_retryable());
        assert!(!Error::OrderingKeyPaused { key: "k".into() }.is_retryable());
    }

    #[test]
    fn exhausted_retries_keep_the_status_of_the_last_error() {
        let e = Error::RetriesExhausted {
            attempts: 3,
            elapsed: Duration::from_secs(1),
            last: Box::new(api(503, "UNAVAILABLE")),
        };
        assert_eq!(e.http_status(), Some(503));
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("3 attempts"), "{e}");
    }
}
