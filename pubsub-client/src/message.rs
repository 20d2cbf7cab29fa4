//! The message a publisher sends, and its validation against the service limits.

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::limits::{
    MAX_ATTRIBUTE_KEY_BYTES, MAX_ATTRIBUTE_VALUE_BYTES, MAX_ATTRIBUTES, MAX_MESSAGE_BYTES,
    MAX_ORDERING_KEY_BYTES, RESERVED_ATTRIBUTE_PREFIX,
};

/// A message to publish: data, attributes and an optional ordering key.
///
/// ```
/// use pubsub_client::Message;
///
/// let msg = Message::new("a song was played")
///     .with_attribute("event_type", "play")
///     .with_ordering_key("user-42");
/// assert_eq!(msg.data(), b"a song was played".as_slice());
/// assert_eq!(msg.attribute("event_type"), Some("play"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    data: Bytes,
    attributes: Vec<(String, String)>,
    ordering_key: String,
}

impl Message {
    /// A message with this payload and no attributes.
    pub fn new(data: impl Into<Bytes>) -> Self {
        Message { data: data.into(), attributes: Vec::new(), ordering_key: String::new() }
    }

    /// Adds an attribute. Keys must be unique within a message; a repeated key is reported
    /// when the message is published.
    pub fn with_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.push((key.into(), value.into()));
        self
    }

    /// Adds several attributes.
    pub fn with_attributes<K, V>(mut self, attrs: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        self.attributes.extend(attrs.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Sets the ordering key: messages with the same key are published, and delivered to
    /// subscriptions with ordering enabled, in the order they were published.
    pub fn with_ordering_key(mut self, key: impl Into<String>) -> Self {
        self.ordering_key = key.into();
        self
    }

    /// The payload.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The attributes, in the order they were added.
    pub fn attributes(&self) -> &[(String, String)] {
        &self.attributes
    }

    /// The value of one attribute.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The ordering key; empty when the message is unordered.
    pub fn ordering_key(&self) -> &str {
        &self.ordering_key
    }

    /// Size as the service counts it: data, attribute keys and values, and ordering key.
    pub fn size(&self) -> usize {
        self.data.len()
            + self.attributes.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
            + self.ordering_key.len()
    }

    /// Checks the message against the service limits, naming the first problem found.
    pub fn validate(&self) -> Result<()> {
        if self.data.is_empty() && self.attributes.is_empty() {
            return Err(invalid("message has neither data nor attributes"));
        }
        if self.attributes.len() > MAX_ATTRIBUTES {
            return Err(invalid(format!(
                "message has {} attributes, the limit is {MAX_ATTRIBUTES}",
                self.attributes.len()
            )));
        }
        for (i, (key, value)) in self.attributes.iter().enumerate() {
            if key.is_empty() {
                return Err(invalid(format!("attribute #{i} has an empty key")));
            }
            if key.len() > MAX_ATTRIBUTE_KEY_BYTES {
                return Err(invalid(format!(
                    "attribute key {:?}... is {} bytes, the limit is {MAX_ATTRIBUTE_KEY_BYTES}",
                    truncate(key),
                    key.len()
                )));
            }
            if key.starts_with(RESERVED_ATTRIBUTE_PREFIX) {
                return Err(invalid(format!(
                    "attribute key {key:?} starts with the reserved prefix {RESERVED_ATTRIBUTE_PREFIX:?}"
                )));
            }
            if value.len() > MAX_ATTRIBUTE_VALUE_BYTES {
                return Err(invalid(format!(
                    "value of attribute {key:?} is {} bytes, the limit is {MAX_ATTRIBUTE_VALUE_BYTES}",
                    value.len()
                )));
            }
            if self.attributes[..i].iter().any(|(k, _)| k == key) {
                return Err(invalid(format!("attribute key {key:?} appears more than once")));
            }
        }
        if self.ordering_key.len() > MAX_ORDERING_KEY_BYTES {
            return Err(invalid(format!(
                "ordering key is {} bytes, the limit is {MAX_ORDERING_KEY_BYTES}",
                self.ordering_key.len()
            )));
        }
        let size = self.size();
        if size > MAX_MESSAGE_BYTES {
            return Err(invalid(format!(
                "message is {size} bytes (data, attributes and ordering key), the limit is {MAX_MESSAGE_BYTES}"
            )));
        }
        Ok(())
    }
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidMessage(reason.into())
}

fn truncate(s: &str) -> &str {
    let mut end = s.len().min(32);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(m: &Message) -> String {
        m.validate().expect_err("should be invalid").to_string()
    }

    #[test]
    fn data_or_attributes_is_enough() {
        assert!(Message::new("x").validate().is_ok());
        assert!(Message::new("").with_attribute("k", "v").validate().is_ok());
        assert!(reason(&Message::new("")).contains("neither data nor attributes"));
    }

    #[test]
    fn size_limits_are_exact() {
        assert!(Message::new(vec![0u8; MAX_MESSAGE_BYTES]).validate().is_ok());
        let too_big = Message::new(vec![0u8; MAX_MESSAGE_BYTES + 1]);
        assert!(reason(&too_big).contains("10000001 bytes"));
        let with_attr = Message::new(vec![0u8; MAX_MESSAGE_BYTES - 2]).with_attribute("k", "vv");
        assert!(reason(&with_attr).contains("limit is 10000000"));
    }

    #[test]
    fn attribute_rules_name_the_offender() {
        let many = Message::new("x").with_attributes((0..=MAX_ATTRIBUTES).map(|i| (format!("k{i}"), "v")));
        assert!(reason(&many).contains("101 attributes"));
        let long_key = Message::new("x").with_attribute("k".repeat(257), "v");
        assert!(reason(&long_key).contains("257 bytes"));
        let long_value = Message::new("x").with_attribute("big", "v".repeat(1025));
        assert!(reason(&long_value).contains("\"big\" is 1025 bytes"));
        let reserved = Message::new("x").with_attribute("googfoo", "v");
        assert!(reason(&reserved).contains("reserved"));
        let dup = Message::new("x").with_attribute("a", "1").with_attribute("a", "2");
        assert!(reason(&dup).contains("more than once"));
        let empty = Message::new("x").with_attribute("", "1");
        assert!(reason(&empty).contains("empty key"));
        let key = Message::new("x").with_ordering_key("o".repeat(1025));
        assert!(reason(&key).contains("ordering key is 1025 bytes"));
    }

    #[test]
    fn limits_at_the_boundary_are_accepted() {
        let m = Message::new("x")
            .with_attributes((0..MAX_ATTRIBUTES).map(|i| (format!("k{i}"), "v".repeat(1024))))
            .with_attribute("x".repeat(0), "")
            .with_ordering_key("o".repeat(1024));
        // The empty key makes this one invalid; drop it and the rest is at the limits.
        assert!(m.validate().is_err());
        let ok = Message::new("x")
            .with_attributes((0..MAX_ATTRIBUTES).map(|i| (format!("{i:0>256}"), "v".repeat(1024))))
            .with_ordering_key("o".repeat(1024));
        assert!(ok.validate().is_ok());
    }
}
