//! What the producers send: topics picked at their weights, and payloads cut at random offsets
//! of a pool of random bytes (as compressible as real payloads, not the same bytes over and
//! over, and without a copy per message).

use bytes::Bytes;

/// Random bytes the payloads are cut from.
pub const PAYLOAD_POOL: usize = 1 << 20;

/// Topics picked at their weights.
#[derive(Debug, Clone)]
pub struct TopicMix {
    cumulative: Vec<u32>,
}

impl TopicMix {
    /// The mix of `topics` (name, weight).
    pub fn new(topics: &[(String, u32)]) -> TopicMix {
        let cumulative = topics
            .iter()
            .scan(0, |acc, (_, w)| {
                *acc += w;
                Some(*acc)
            })
            .collect();
        TopicMix { cumulative }
    }

    /// The index of a topic, drawn at the weights.
    pub fn pick(&self, rng: &mut fastrand::Rng) -> usize {
        let total = *self.cumulative.last().unwrap_or(&1);
        let x = rng.u32(..total.max(1));
        self.cumulative.iter().position(|c| x < *c).unwrap_or(0)
    }
}

/// Payloads of `payload_bytes` cut from one pool of random bytes.
#[derive(Debug, Clone)]
pub struct Payloads {
    pool: Bytes,
    len: usize,
}

impl Payloads {
    /// A pool for payloads of `len` bytes (the same pool every run: seeded).
    pub fn new(len: usize) -> Payloads {
        let mut rng = fastrand::Rng::with_seed(7);
        Payloads { pool: Bytes::from((0..PAYLOAD_POOL + len).map(|_| rng.u8(..)).collect::<Vec<u8>>()), len }
    }

    /// A payload at a random offset of the pool.
    pub fn next(&self, rng: &mut fastrand::Rng) -> Bytes {
        let at = rng.usize(..PAYLOAD_POOL);
        self.pool.slice(at..at + self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_picked_at_their_weights() {
        let mix = TopicMix::new(&[("play".into(), 7), ("search".into(), 3)]);
        let mut rng = fastrand::Rng::with_seed(1);
        let play = (0..10_000).filter(|_| mix.pick(&mut rng) == 0).count();
        assert!((6_700..7_300).contains(&play), "{play} of 10,000 at 7:3");
    }

    #[test]
    fn payloads_have_the_length_and_differ() {
        let p = Payloads::new(150);
        let mut rng = fastrand::Rng::with_seed(1);
        let (a, b) = (p.next(&mut rng), p.next(&mut rng));
        assert_eq!((a.len(), b.len()), (150, 150));
        assert_ne!(a, b);
    }
}
