//! Unique resource names for tests.

use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Returns a Pub/Sub resource id (topic, subscription, ...) that is unique within this process
/// and across concurrently running test processes: `{prefix}-{pid}-{counter}`.
///
/// The result is a valid topic/subscription id as long as `prefix` is: it must start with an
/// ASCII letter, consist of ASCII letters, digits, `-` and `_` only, and must not start with
/// `goog`.
///
/// # Panics
///
/// Panics if `prefix` does not satisfy these rules (a bug in the calling test).
pub fn unique_name(prefix: &str) -> String {
    assert!(
        prefix.starts_with(|c: char| c.is_ascii_alphabetic()),
        "unique_name: prefix {prefix:?} must start with an ASCII letter"
    );
    assert!(
        prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "unique_name: prefix {prefix:?} may only contain [A-Za-z0-9-_]"
    );
    assert!(
        !prefix.to_ascii_lowercase().starts_with("goog"),
        "unique_name: prefix {prefix:?} must not start with \"goog\""
    );
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("{prefix}-{}-{n}", std::process::id());
    assert!(name.len() <= 255, "unique_name: prefix {prefix:?} is too long for a Pub/Sub id");
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_valid() {
        let names: Vec<String> = (0..100).map(|_| unique_name("topic")).collect();
        let set: HashSet<&String> = names.iter().collect();
        assert_eq!(set.len(), names.len());
        for name in &names {
            assert!(name.starts_with("topic-"));
            assert!(name.contains(&format!("-{}-", std::process::id())));
            assert!((3..=255).contains(&name.len()));
            assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        }
    }

    #[test]
    fn short_prefix_gives_valid_length() {
        assert!(unique_name("a").len() >= 3);
    }

    #[test]
    #[should_panic(expected = "must start with an ASCII letter")]
    fn rejects_prefix_starting_with_digit() {
        let _ = unique_name("1topic");
    }

    #[test]
    #[should_panic(expected = "may only contain")]
    fn rejects_invalid_characters() {
        let _ = unique_name("top/ic");
    }
}
