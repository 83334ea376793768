//! Random packet loss for teaching: a seeded generator, so runs repeat.

/// Random packet loss with a seeded xorshift64 generator (reproducible runs).
#[derive(Debug, Clone)]
pub struct LossModel {
    state: u64,
    per_million: u32,
}

impl LossModel {
    /// Drops `per_million` of 1 000 000 packets on average; `seed` 0 is replaced.
    pub fn new(per_million: u32, seed: u64) -> LossModel {
        LossModel {
            state: if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed },
            per_million: per_million.min(1_000_000),
        }
    }

    /// Whether to drop the next packet.
    pub fn should_drop(&mut self) -> bool {
        if self.per_million == 0 {
            return false;
        }
        // xorshift64 (Marsaglia 2003): fast, good enough for a coin toss.
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x % 1_000_000 < self.per_million as u64
    }
}
