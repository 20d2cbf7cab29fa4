//! Project, topic, subscription and snapshot names, validated once.

use std::fmt;

use crate::error::{Error, Result};
use crate::limits::RESOURCE_ID_LEN;

/// The kind of resource a name refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Topic,
    Subscription,
    Snapshot,
}

impl Kind {
    fn collection(self) -> &'static str {
        match self {
            Kind::Topic => "topics",
            Kind::Subscription => "subscriptions",
            Kind::Snapshot => "snapshots",
        }
    }
}

/// A fully qualified topic name, `projects/{project}/topics/{topic}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(String);

/// A fully qualified subscription name, `projects/{project}/subscriptions/{subscription}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionName(String);

/// A fully qualified snapshot name, `projects/{project}/snapshots/{snapshot}`.
///
/// Snapshot ids follow the same rules as topic and subscription ids.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SnapshotName(String);

macro_rules! resource_name {
    ($ty:ident, $kind:expr) => {
        impl $ty {
            /// Parses either a short id (`my-topic`, resolved in `project`) or a full path
            /// (`projects/p/topics/my-topic`), checking it against Pub/Sub's naming rules.
            pub fn parse(project: &str, name: &str) -> Result<Self> {
                parse_name(project, name, $kind).map($ty)
            }

            /// The full path, `projects/{project}/{collection}/{id}`.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The project part of the name.
            pub fn project(&self) -> &str {
                self.0.split('/').nth(1).unwrap_or_default()
            }

            /// The short id, the last segment of the name.
            pub fn id(&self) -> &str {
                self.0.rsplit('/').next().unwrap_or_default()
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

resource_name!(TopicName, Kind::Topic);
resource_name!(SubscriptionName, Kind::Subscription);
resource_name!(SnapshotName, Kind::Snapshot);

fn invalid(name: &str, reason: impl Into<String>) -> Error {
    Error::InvalidName { name: name.to_owned(), reason: reason.into() }
}

fn parse_name(project: &str, name: &str, kind: Kind) -> Result<String> {
    let (project, id) = match name.strip_prefix("projects/") {
        Some(rest) => {
            let mut parts = rest.split('/');
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(p), Some(c), Some(id), None) if c == kind.collection() => (p, id),
                _ => {
                    return Err(invalid(
                        name,
                        format!("expected projects/{{project}}/{}/{{id}}", kind.collection()),
                    ));
                }
            }
        }
        None => (project, name),
    };
    validate_project(project)?;
    validate_id(id)?;
    Ok(format!("projects/{project}/{}/{id}", kind.collection()))
}

/// Checks a project id: non-empty, lowercase letters, digits, `-`, and for domain-scoped
/// projects `.` and `:`.
pub(crate) fn validate_project(project: &str) -> Result<()> {
    if project.is_empty() {
        return Err(invalid(project, "project id is empty"));
    }
    if let Some(c) = project
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | ':')))
    {
        return Err(invalid(project, format!("project id contains {c:?}")));
    }
    Ok(())
}

/// Checks a topic, subscription or snapshot id against Pub/Sub's rules: 3-255 characters, starting with a
/// letter, made of letters, digits and `-_.~+%`, not starting with `goog`.
fn validate_id(id: &str) -> Result<()> {
    if !RESOURCE_ID_LEN.contains(&id.len()) {
        return Err(invalid(
            id,
            format!(
                "must be {}-{} characters long, is {}",
                RESOURCE_ID_LEN.start(),
                RESOURCE_ID_LEN.end(),
                id.len()
            ),
        ));
    }
    if !id.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(invalid(id, "must start with a letter"));
    }
    if id.to_ascii_lowercase().starts_with("goog") {
        return Err(invalid(id, "must not start with \"goog\""));
    }
    if let Some(c) =
        id.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '+' | '%')))
    {
        return Err(invalid(id, format!("contains {c:?}; allowed are letters, digits and -_.~+%")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_resolve_in_the_project() {
        let t = TopicName::parse("my-proj", "events-play").expect("valid");
        assert_eq!(t.as_str(), "projects/my-proj/topics/events-play");
        assert_eq!(t.project(), "my-proj");
        assert_eq!(t.id(), "events-play");
    }

    #[test]
    fn full_paths_keep_their_own_project() {
        let s = SubscriptionName::parse("ignored", "projects/other/subscriptions/sub.1").expect("valid");
        assert_eq!(s.as_str(), "projects/other/subscriptions/sub.1");
        assert_eq!(s.project(), "other");
    }

    #[test]
    fn bad_names_are_rejected_with_a_reason() {
        let cases = [
            ("ab", "3-255"),
            ("1abc", "start with a letter"),
            ("goog-topic", "goog"),
            ("has space", "' '"),
            ("projects/p/subscriptions/x12", "expected projects/{project}/topics/{id}"),
            ("projects/p/topics/a/b", "expected"),
        ];
        for (name, reason) in cases {
            let err = TopicName::parse("p", name).expect_err(name).to_string();
            assert!(err.contains(reason), "{name}: {err}");
        }
        let long = "a".repeat(256);
        assert!(TopicName::parse("p", &long).is_err());
        assert!(TopicName::parse("p", &"a".repeat(255)).is_ok());
    }

    #[test]
    fn snapshot_names_parse_like_the_others() {
        let s = SnapshotName::parse("proj", "replay-2026-12-03T14").expect("valid");
        assert_eq!(s.as_str(), "projects/proj/snapshots/replay-2026-12-03T14");
        assert_eq!((s.project(), s.id()), ("proj", "replay-2026-12-03T14"));
        let full = SnapshotName::parse("ignored", "projects/other/snapshots/snap-1").expect("valid");
        assert_eq!(full.project(), "other");
        let err = SnapshotName::parse("p", "projects/p/subscriptions/sub-1").expect_err("wrong kind");
        assert!(err.to_string().contains("projects/{project}/snapshots/{id}"), "{err}");
        assert!(SnapshotName::parse("p", "goog-snap").is_err());
    }

    #[test]
    fn bad_projects_are_rejected() {
        assert!(TopicName::parse("", "topic").is_err());
        assert!(TopicName::parse("My_Proj", "topic").is_err());
        assert!(TopicName::parse("example.com:proj-1", "topic").is_ok());
    }
}
