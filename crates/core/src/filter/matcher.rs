//! The hot-path form of rules: flat, protocol-bucketed match lists that a
//! new flow's check scans without branches.
//!
//! Security groups and NACLs both compile to [`Match`]es (address block and
//! destination-port range) kept in one [`MatchList`] per protocol bucket, so
//! the protocol is decided once per packet and each rule costs a masked
//! compare and a range test. Lists keep declaration order: "first match" is
//! the first rule a person would find.

use super::{PortRange, Protocol, PROTO_ICMP, PROTO_TCP, PROTO_UDP};
use crate::cidr::Cidr;

/// Protocol buckets: TCP, UDP, ICMP, everything else.
pub(crate) const BUCKETS: usize = 4;
/// Bucket of TCP packets.
pub(crate) const BUCKET_TCP: usize = 0;
/// Bucket of UDP packets.
pub(crate) const BUCKET_UDP: usize = 1;
const BUCKET_ICMP: usize = 2;

/// The bucket a packet's protocol number falls in.
#[inline]
pub(crate) fn bucket_of(protocol: u8) -> usize {
    match protocol {
        PROTO_TCP => BUCKET_TCP,
        PROTO_UDP => BUCKET_UDP,
        PROTO_ICMP => BUCKET_ICMP,
        _ => 3,
    }
}

/// The hot-path form of one rule: address block and destination-port range.
/// The protocol is implied by the bucket the match sits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Match {
    addr: u32,
    mask: u32,
    lo: u16,
    /// `hi - lo`, so the port test is one wrapping subtraction and compare.
    span: u16,
}

impl Match {
    pub(crate) fn new(cidr: Cidr, protocol: Protocol, ports: PortRange) -> Match {
        let ports = if protocol.has_ports() { ports } else { PortRange::ALL };
        Match { addr: u32::from(cidr.base()), mask: cidr.mask(), lo: ports.lo(), span: ports.hi() - ports.lo() }
    }

    /// Non-short-circuit `&` keeps the loop branch-light.
    #[inline(always)]
    pub(crate) fn matches(&self, ip: u32, port: u16) -> bool {
        (ip & self.mask == self.addr) & (port.wrapping_sub(self.lo) <= self.span)
    }

    pub(crate) fn is_any_addr(&self) -> bool {
        self.mask == 0
    }

    pub(crate) fn is_all_ports(&self) -> bool {
        self.lo == 0 && self.span == u16::MAX
    }

    pub(crate) fn protocol_in_bucket(protocol: Protocol, bucket: usize) -> bool {
        match protocol {
            Protocol::Tcp => bucket == BUCKET_TCP,
            Protocol::Udp => bucket == BUCKET_UDP,
            Protocol::Icmp => bucket == BUCKET_ICMP,
            Protocol::All => true,
        }
    }
}

/// Lanes per [`MatchList`] block: eight u32 lanes, two SSE2 registers per field.
const LANES: usize = 8;
/// A `lo` no u16 port reaches: padding lanes never match.
const NEVER: u32 = 0x1_0000;

/// Eight matches, field by field, so they are tested in SIMD.
#[derive(Clone, Copy, Debug)]
struct Block {
    addr: [u32; LANES],
    mask: [u32; LANES],
    lo: [u32; LANES],
    span: [u32; LANES],
}

const EMPTY_BLOCK: Block = Block { addr: [0; LANES], mask: [0; LANES], lo: [NEVER; LANES], span: [0; LANES] };

/// An ordered list of [`Match`]es laid out for a branch-light scan: each
/// block of eight is tested without early exit (the compiler vectorizes the
/// SSE2 on x86_64), then the first set bit gives the first match. It keeps
/// declaration order, so "first match" is exact.
#[derive(Clone, Debug, Default)]
pub(crate) struct MatchList {
    blocks: Vec<Block>,
    len: usize,
}

impl MatchList {
    pub(crate) fn push(&mut self, m: Match) {
        let lane = self.len % LANES;
        if lane == 0 {
            self.blocks.push(EMPTY_BLOCK);
        }
        let b = self.blocks.last_mut().expect("pushed above");
        b.addr[lane] = m.addr;
        b.mask[lane] = m.mask;
        b.lo[lane] = u32::from(m.lo);
        b.span[lane] = u32::from(m.span);
        self.len += 1;
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    pub(crate) fn get(&self, i: usize) -> Match {
        let b = &self.blocks[i / LANES];
        let l = i % LANES;
        Match { addr: b.addr[l], mask: b.mask[l], lo: b.lo[l] as u16, span: b.span[l] as u16 }
    }

    /// Index of the first match for (`ip`, `port`).
    #[inline]
    pub(crate) fn first_match(&self, ip: u32, port: u16) -> Option<usize> {
        let port = u32::from(port);
        for (bi, b) in self.blocks.iter().enumerate() {
            let bits = block_hits(b, ip, port);
            if bits != 0 {
                return Some(bi * LANES + bits.trailing_zeros() as usize);
            }
        }
        None
    }
}

/// Bit `l` set if lane `l` of `b` matches. SSE2 is part of the x86_64
/// baseline, so this needs no runtime detection; LLVM did not vectorize the
/// scalar form on its own.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn block_hits(b: &Block, ip: u32, port: u32) -> u32 {
    use std::arch::x86_64::*;
    // SAFETY: the loads read 4 u32 from arrays of 8 at offsets 0 and 4
    // (in bounds; `loadu` has no alignment requirement). The arithmetic
    // intrinsics are SSE2, always present on x86_64.
    unsafe {
        let ipv = _mm_set1_epi32(ip as i32);
        let portv = _mm_set1_epi32(port as i32);
        // Unsigned `d <= span` as signed compare after flipping the sign bit.
        let bias = _mm_set1_epi32(i32::MIN);
        let mut bits = 0u32;
        for half in 0..2 {
            let o = half * 4;
            let mask = _mm_loadu_si128(b.mask.as_ptr().add(o).cast());
            let addr = _mm_loadu_si128(b.addr.as_ptr().add(o).cast());
            let lo = _mm_loadu_si128(b.lo.as_ptr().add(o).cast());
            let span = _mm_loadu_si128(b.span.as_ptr().add(o).cast());
            let addr_ok = _mm_cmpeq_epi32(_mm_and_si128(ipv, mask), addr);
            let d = _mm_xor_si128(_mm_sub_epi32(portv, lo), bias);
            let port_bad = _mm_cmpgt_epi32(d, _mm_xor_si128(span, bias));
            let hit = _mm_andnot_si128(port_bad, addr_ok);
            bits |= (_mm_movemask_ps(_mm_castsi128_ps(hit)) as u32) << o;
        }
        bits
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn block_hits(b: &Block, ip: u32, port: u32) -> u32 {
    block_hits_scalar(b, ip, port)
}

/// The portable form of [`block_hits`] (and its test oracle on x86_64).
#[cfg(any(test, not(target_arch = "x86_64")))]
#[inline(always)]
fn block_hits_scalar(b: &Block, ip: u32, port: u32) -> u32 {
    let mut bits = 0u32;
    for l in 0..LANES {
        // u32 lanes: `port - lo` wraps far above any span when port < lo.
        let hit = (ip & b.mask[l] == b.addr[l]) & (port.wrapping_sub(b.lo[l]) <= b.span[l]);
        bits |= u32::from(hit) << l;
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The SIMD scan and the scalar scan agree lane by lane, padding included.
        #[test]
        fn block_hits_matches_scalar(
            rules in proptest::collection::vec((any::<u32>(), 0..=32u8, any::<u16>(), any::<u16>()), 0..20),
            ip in any::<u32>(),
            port in any::<u16>(),
            pick in any::<prop::sample::Index>(),
        ) {
            let mut list = MatchList::default();
            for &(a, len, p1, p2) in &rules {
                let m = mask_of_len(len);
                let (lo, hi) = (p1.min(p2), p1.max(p2));
                list.push(Match { addr: a & m, mask: m, lo, span: hi - lo });
            }
            // Half the time aim at one rule's block so hits actually happen.
            let ip = if rules.is_empty() || ip % 2 == 0 { ip } else { rules[pick.index(rules.len())].0 };
            for b in &list.blocks {
                prop_assert_eq!(block_hits(b, ip, u32::from(port)), block_hits_scalar(b, ip, u32::from(port)));
            }
            let want = (0..list.len()).position(|i| list.get(i).matches(ip, port));
            prop_assert_eq!(list.first_match(ip, port), want);
        }
    }

    fn mask_of_len(len: u8) -> u32 {
        u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
    }
}
