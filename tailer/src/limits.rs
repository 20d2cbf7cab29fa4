//! Limits of the event-service API and of the tailer's own structures, in one place.

/// Most events the event-service accepts in one request (its `max_events_per_request` default).
pub const MAX_EVENTS_PER_REQUEST: usize = 10_000;

/// Most bytes the event-service accepts in one request body after decompression.
pub const MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;

/// Room left in a batch for the envelope of the longest line (id, type, source, time, keys).
pub const EVENT_OVERHEAD_BYTES: usize = 1024;

/// A file is identified by a hash of its first line, or of its first this many bytes when the
/// first line is longer. A file with a shorter, unfinished first line is not read until the
/// line is finished.
pub const FINGERPRINT_MAX_BYTES: usize = 1024;
