//! Service limits of the Pub/Sub API, in one place.
//!
//! These are the documented quotas of Cloud Pub/Sub that a client must respect. Configuration
//! values are checked against them when a publisher or subscriber is built.

/// Most messages a single publish request may carry.
pub const MAX_MESSAGES_PER_PUBLISH: usize = 1000;

/// Largest publish request body, in bytes, as sent on the wire before compression.
///
/// Over REST the body is JSON with base64 data, so a request holds at most about 7.5 MB of raw
/// payload.
pub const MAX_PUBLISH_REQUEST_BYTES: usize = 10_000_000;

/// Largest message: data plus attribute keys and values plus ordering key, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 10_000_000;

/// Most attributes a message may carry.
pub const MAX_ATTRIBUTES: usize = 100;

/// Longest attribute key, in bytes.
pub const MAX_ATTRIBUTE_KEY_BYTES: usize = 256;

/// Longest attribute value, in bytes.
pub const MAX_ATTRIBUTE_VALUE_BYTES: usize = 1024;

/// Longest ordering key, in bytes.
pub const MAX_ORDERING_KEY_BYTES: usize = 1024;

/// Attribute keys starting with this prefix are reserved by Google.
pub const RESERVED_ATTRIBUTE_PREFIX: &str = "goog";

/// Shortest ack deadline a subscription or a lease extension may ask for, in seconds.
pub const MIN_ACK_DEADLINE_SECS: u32 = 10;

/// Longest ack deadline a subscription or a lease extension may ask for, in seconds.
pub const MAX_ACK_DEADLINE_SECS: u32 = 600;

/// Most ack ids an acknowledge or modifyAckDeadline request carries.
pub const MAX_ACK_IDS_PER_REQUEST: usize = 2500;

/// Most bytes of ack ids (JSON-quoted) an acknowledge or modifyAckDeadline request carries.
///
/// The API caps these requests at 512 KiB; this leaves room for the rest of the body.
pub const MAX_ACK_REQUEST_BYTES: usize = 500_000;

/// Shortest and longest topic or subscription id.
pub const RESOURCE_ID_LEN: std::ops::RangeInclusive<usize> = 3..=255;
