//! Event ids.

use xxhash_rust::xxh3::xxh3_128;

/// The id of the line at `offset` of the file with `fingerprint` on `host`: the same inputs
/// always give the same id, so a line re-sent after a crash is recognisable downstream.
/// 32 lowercase hex characters.
pub fn deterministic_event_id(host: &str, fingerprint: u64, offset: u64) -> String {
    let mut key = Vec::with_capacity(host.len() + 17);
    key.extend_from_slice(host.as_bytes());
    key.push(0);
    key.extend_from_slice(&fingerprint.to_le_bytes());
    key.extend_from_slice(&offset.to_le_bytes());
    format!("{:032x}", xxh3_128(&key))
}

/// Generates [`deterministic_event_id`]s for one host without allocating: the hot path of
/// the tailer, which gives every line an id.
#[derive(Debug, Clone)]
pub struct EventIds {
    key: Vec<u8>,
    host_len: usize,
}

impl EventIds {
    /// A generator for `host`.
    pub fn new(host: &str) -> Self {
        let mut key = Vec::with_capacity(host.len() + 17);
        key.extend_from_slice(host.as_bytes());
        key.push(0);
        EventIds { host_len: key.len(), key }
    }

    /// The id of the line at `offset` of the file with `fingerprint`, as 32 lowercase hex
    /// ASCII bytes; equal to [`deterministic_event_id`] of the same inputs.
    pub fn id(&mut self, fingerprint: u64, offset: u64) -> [u8; 32] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.key.truncate(self.host_len);
        self.key.extend_from_slice(&fingerprint.to_le_bytes());
        self.key.extend_from_slice(&offset.to_le_bytes());
        let h = xxh3_128(&self.key);
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = HEX[((h >> (124 - 4 * i)) & 0xf) as usize];
        }
        out
    }
}

/// A random id for events that arrive without one. 32 lowercase hex characters.
pub fn random_event_id() -> String {
    format!("{:032x}", fastrand::u128(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_ids_depend_on_every_input() {
        let a = deterministic_event_id("host-a", 7, 100);
        assert_eq!(a, deterministic_event_id("host-a", 7, 100));
        assert_eq!(a.len(), 32);
        assert_ne!(a, deterministic_event_id("host-b", 7, 100));
        assert_ne!(a, deterministic_event_id("host-a", 8, 100));
        assert_ne!(a, deterministic_event_id("host-a", 7, 101));
        // The separator keeps host and fingerprint apart.
        assert_ne!(deterministic_event_id("a", 0x62, 0), deterministic_event_id("ab", 0, 0));
    }

    #[test]
    fn the_generator_matches_the_function() {
        let mut ids = EventIds::new("web-1");
        for (fp, off) in [(0, 0), (7, 100), (u64::MAX, u64::MAX), (0x0123_4567_89ab_cdef, 42)] {
            let id = ids.id(fp, off);
            assert_eq!(std::str::from_utf8(&id).expect("ascii"), deterministic_event_id("web-1", fp, off));
        }
    }

    #[test]
    fn random_ids_differ() {
        assert_ne!(random_event_id(), random_event_id());
        assert_eq!(random_event_id().len(), 32);
    }
}
