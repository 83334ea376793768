//! A flow through an ENI, and the two ways its packets cross it: the one
//! definition the packet parser, connection tracking, the flow log and the
//! shaper share.
//!
//! A flow is seen from the ENI: one end is the ENI's address and port, the
//! other the client's (the remote end, whoever sent the first packet in).
//! Its packets cross the ENI one way or the other ([`Direction`]), and both
//! ways give the same [`FlowKey`], so a request and its reply share one key.
//!
//! Maps keyed by flows hash them with `SeededState`: the client's address
//! and port are chosen by whoever sends, so the hash is seeded, and a key
//! hashes as the two words of [`FlowKey::packed`], far cheaper than SipHash
//! over its fields on the per-packet path.

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::Ipv4Addr;

/// Which way a packet crosses the ENI.
///
/// The filter's inbound and outbound rules, the flow log's source and
/// destination, and the shaper's two token buckets all follow it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Toward the ENI: client → service. Inbound rules; the bytes the relay
    /// reads from the client's socket and writes upstream.
    Ingress = 0,
    /// From the ENI: service → client. Outbound rules; the bytes the relay
    /// reads upstream and writes to the client's socket.
    Egress = 1,
}

impl Direction {
    /// Both directions, in [`Direction::index`] order.
    pub const BOTH: [Direction; 2] = [Direction::Ingress, Direction::Egress];

    /// The other direction.
    pub fn reverse(self) -> Direction {
        match self {
            Direction::Ingress => Direction::Egress,
            Direction::Egress => Direction::Ingress,
        }
    }

    /// 0 for ingress, 1 for egress: the index into per-direction arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        })
    }
}

/// One flow through an ENI: protocol, the client's address and port, the
/// ENI's address and port. Ports are 0 for protocols without them.
///
/// Equal for every packet of the flow whichever way it crosses; `Display`
/// writes `client -> eni`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FlowKey {
    /// The client's (remote) address and port.
    pub client: (Ipv4Addr, u16),
    /// The ENI's (local) address and port.
    pub eni: (Ipv4Addr, u16),
    /// IP protocol number.
    pub protocol: u8,
}

impl FlowKey {
    /// The flow of a packet from `src` to `dst` crossing the ENI in `dir`.
    #[inline]
    pub fn new(dir: Direction, protocol: u8, src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)) -> FlowKey {
        match dir {
            Direction::Ingress => FlowKey { client: src, eni: dst, protocol },
            Direction::Egress => FlowKey { client: dst, eni: src, protocol },
        }
    }

    /// Source and destination of this flow's packets crossing in `dir`:
    /// the inverse of [`FlowKey::new`].
    pub fn ends(&self, dir: Direction) -> ((Ipv4Addr, u16), (Ipv4Addr, u16)) {
        match dir {
            Direction::Ingress => (self.client, self.eni),
            Direction::Egress => (self.eni, self.client),
        }
    }

    /// The key in two words: ENI address (high 32 bits) and client address;
    /// then protocol (bits 32..40), ENI port (bits 16..32) and client port.
    /// Bits 40..64 of the second word are always zero: a map that keys by
    /// more than the flow may put its own tag there.
    #[inline]
    pub fn packed(&self) -> [u64; 2] {
        [
            u64::from(u32::from(self.eni.0)) << 32 | u64::from(u32::from(self.client.0)),
            u64::from(self.protocol) << 32 | u64::from(self.eni.1) << 16 | u64::from(self.client.1),
        ]
    }
}

impl Hash for FlowKey {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        let [a, b] = self.packed();
        state.write_u64(a);
        state.write_u64(b);
    }
}

impl fmt::Display for FlowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{} -> {}:{}", self.client.0, self.client.1, self.eni.0, self.eni.1)
    }
}

/// A small seeded multiply-xorshift hash for fixed-size keys: much cheaper
/// than SipHash for two words. Keyed by a seed so remote peers cannot
/// precompute colliding keys without knowing it.
#[derive(Clone, Copy, Debug)]
pub struct SeededState(pub u64);

impl BuildHasher for SeededState {
    type Hasher = SeededHasher;
    fn build_hasher(&self) -> SeededHasher {
        SeededHasher(self.0)
    }
}

/// Hasher of [`SeededState`].
pub struct SeededHasher(u64);

const MUL: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for SeededHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        // Only for keys that are not plain words (not on the hot path).
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn write_u64(&mut self, x: u64) {
        let m = u128::from(self.0 ^ x) * u128::from(MUL);
        self.0 = (m as u64) ^ ((m >> 64) as u64);
    }

    #[inline]
    fn write_u32(&mut self, x: u32) {
        self.write_u64(u64::from(x));
    }

    #[inline]
    fn write_u16(&mut self, x: u16) {
        self.write_u64(u64::from(x));
    }

    #[inline]
    fn write_u8(&mut self, x: u8) {
        self.write_u64(u64::from(x));
    }

    #[inline]
    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // hashbrown takes the top 7 bits as a tag, so mix high bits down and low bits up.
        let x = self.0;
        (x ^ (x >> 29)).wrapping_mul(MUL) ^ (x >> 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: (Ipv4Addr, u16) = (Ipv4Addr::new(10, 0, 2, 10), 40000);
    const ENI: (Ipv4Addr, u16) = (Ipv4Addr::new(10, 0, 1, 49), 443);

    #[test]
    fn a_request_and_its_reply_are_one_flow() {
        let request = FlowKey::new(Direction::Ingress, 6, CLIENT, ENI);
        let reply = FlowKey::new(Direction::Egress, 6, ENI, CLIENT);
        assert_eq!(request, reply);
        assert_eq!((request.client, request.eni), (CLIENT, ENI));
        assert_eq!(request.ends(Direction::Ingress), (CLIENT, ENI));
        assert_eq!(request.ends(Direction::Egress), (ENI, CLIENT));
        assert_eq!(request.to_string(), "10.0.2.10:40000 -> 10.0.1.49:443");
        assert_ne!(request, FlowKey { protocol: 17, ..request });
    }

    #[test]
    fn packed_words_keep_every_field_and_leave_the_tag_bits_free() {
        let k = FlowKey {
            client: (Ipv4Addr::new(1, 2, 3, 4), 0xbeef),
            eni: (Ipv4Addr::new(5, 6, 7, 8), 0xcafe),
            protocol: 0xff,
        };
        assert_eq!(k.packed(), [0x0506_0708_0102_0304, 0x00ff_cafe_beef]);
        let max = FlowKey {
            client: (Ipv4Addr::BROADCAST, u16::MAX),
            eni: (Ipv4Addr::BROADCAST, u16::MAX),
            protocol: u8::MAX,
        };
        assert_eq!(max.packed()[1] >> 40, 0);
    }

    #[test]
    fn directions() {
        assert_eq!(Direction::Ingress.reverse(), Direction::Egress);
        assert_eq!(Direction::BOTH.map(Direction::index), [0, 1]);
        assert_eq!(Direction::Egress.to_string(), "egress");
    }

    #[test]
    fn the_seed_changes_the_hash() {
        let k = FlowKey::new(Direction::Ingress, 6, CLIENT, ENI);
        let h = |seed| SeededState(seed).hash_one(k);
        assert_eq!(h(1), h(1));
        assert_ne!(h(1), h(2));
        assert_ne!(h(1), SeededState(1).hash_one(FlowKey { client: (CLIENT.0, CLIENT.1 + 1), ..k }));
    }
}
