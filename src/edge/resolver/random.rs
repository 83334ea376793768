//! The forwarder's query ids: the OS's randomness (`getrandom`), read a
//! block at a time so a forwarded query costs no system call of its own.
//! Never a counter and never a seeded generator whose state the ids would
//! reveal (RFC 5452 section 9.2).

/// Bytes read from the OS at a time: 256 ids.
const BLOCK: usize = 512;

/// Random 16-bit ids from the OS.
pub struct RandomIds {
    block: [u8; BLOCK],
    used: usize,
}

impl Default for RandomIds {
    fn default() -> Self {
        RandomIds { block: [0; BLOCK], used: BLOCK }
    }
}

impl RandomIds {
    /// The next id.
    pub fn next_id(&mut self) -> u16 {
        if self.used + 2 > BLOCK {
            getrandom::getrandom(&mut self.block).expect("the OS has randomness");
            self.used = 0;
        }
        let id = u16::from_be_bytes([self.block[self.used], self.block[self.used + 1]]);
        self.used += 2;
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_not_a_sequence_and_spread_over_the_range() {
        let mut ids = RandomIds::default();
        let seen: Vec<u16> = (0..1000).map(|_| ids.next_id()).collect();
        let steps_of_one = seen.windows(2).filter(|w| w[1] == w[0].wrapping_add(1)).count();
        assert!(steps_of_one < 5, "{steps_of_one} consecutive ids");
        let mut distinct = seen.clone();
        distinct.sort_unstable();
        distinct.dedup();
        // 1,000 draws from 65,536 values: about 8 collisions expected.
        assert!(distinct.len() > 950, "{}", distinct.len());
        assert!(seen.iter().any(|&i| i >= 0x8000) && seen.iter().any(|&i| i < 0x8000));
    }
}
