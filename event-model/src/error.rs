//! The crate's error type, and the reason an event is rejected.

use std::fmt;

/// Errors loading or using the registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The registry file could not be read.
    #[error("cannot read registry {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The registry is not valid TOML, has unknown keys, or breaks a rule.
    #[error("invalid registry{}: {reason}", path.as_deref().map(|p| format!(" {p}")).unwrap_or_default())]
    Registry {
        /// The file, when loaded from one.
        path: Option<String>,
        /// What is wrong, naming the key.
        reason: String,
    },
    /// What came back from an ingest request is not the event-service's answer for it
    /// ([`crate::ingest::verify_answer`]).
    #[error("not the event-service's answer for this request: {0}")]
    NotAnAnswer(String),
}

/// The class of a rejection, for metrics labels (a small, fixed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectKind {
    /// Not parseable as an event at all.
    Malformed,
    /// The type is not in the registry.
    UnknownType,
    /// A required field is missing.
    MissingField,
    /// A field has the wrong type.
    WrongType,
    /// A field the type does not declare.
    UnknownField,
    /// The event time cannot be parsed or is out of range.
    BadTime,
    /// The id is empty or too long.
    BadId,
    /// The schema version is not the registry's.
    VersionMismatch,
    /// The encoded event is larger than allowed.
    TooLarge,
}

impl RejectKind {
    /// A short snake_case label.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectKind::Malformed => "malformed",
            RejectKind::UnknownType => "unknown_type",
            RejectKind::MissingField => "missing_field",
            RejectKind::WrongType => "wrong_type",
            RejectKind::UnknownField => "unknown_field",
            RejectKind::BadTime => "bad_time",
            RejectKind::BadId => "bad_id",
            RejectKind::VersionMismatch => "version_mismatch",
            RejectKind::TooLarge => "too_large",
        }
    }
}

/// Why one event was rejected: a class and a precise, human-readable reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The class.
    pub kind: RejectKind,
    /// The reason, e.g. ``field `ms_played` is not an int``.
    pub reason: String,
    /// The event type, when it could be read.
    pub event_type: Option<String>,
}

impl Rejection {
    pub(crate) fn new(kind: RejectKind, reason: impl Into<String>) -> Self {
        Rejection { kind, reason: reason.into(), event_type: None }
    }

    pub(crate) fn of_type(mut self, t: &str) -> Self {
        self.event_type = Some(t.to_owned());
        self
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Rejection {}
