//! The hasher of the name maps ([`super::Zone`], [`super::ForwardCache`]).
//!
//! FNV-1a: names in the zone come from the configuration, not from queries,
//! so a keyed (SipHash) hasher buys nothing and costs a third of a lookup.
//! The forward cache's keys do come from clients, who could pick colliding
//! names; its capacity bounds how long a collision chain can get.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a, 64 bits.
pub(super) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// A `HashMap` keyed with [`Fnv`].
pub(super) type FnvMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;
