//! The ENI's packet pipeline: what happens to a packet before the TCP stack.
//!
//! Order (the data path in the crate map): size against the MTU, parse (IPv6,
//! malformed, bad checksums drop), source ([`VpcSources`], else
//! `bad_source`), destination (an ENI or a resolver address, else
//! `no_route`), protocol (DNS to a resolver goes to the responder, other
//! non-TCP drops), then the ENI's ports. What passes goes to the stack with
//! its [`PacketMeta`], parsed once.
//!
//! The source comes first because everything after it answers: a resolver
//! reply, a SYN-ACK, an upstream connection. A packet whose source no client
//! of the VPC can have (spoofed, or a reflection aimed at a third party, a
//! broadcast or the ENI itself) gets nothing.
//!
//! The pipeline is sans-IO: bytes in, a [`Verdict`] out, counters kept.
//!
//! ## Not emulated
//! AWS answers nothing for ICMP to an interface endpoint either; we match that.

use std::fmt;
use std::net::Ipv4Addr;

use crate::cidr::Cidr;
use crate::packet::{self, proto, DropReason, PacketMeta};

/// What to do with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// TCP for an ENI port: hand to the stack. `endpoint` indexes the plan's endpoints.
    ToStack {
        /// Parsed facts.
        meta: PacketMeta,
        /// The endpoint owning the destination ENI.
        endpoint: usize,
        /// The ENI: its index in the list given to [`Pipeline::new`].
        eni: usize,
    },
    /// UDP port 53 to a resolver address (TCP 53 is a stream like any other: `ToStack`).
    ToDns(PacketMeta),
    /// Dropped and counted.
    Drop(DropReason),
}

/// One ENI address as the pipeline sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EniRoute {
    /// The ENI's private IP.
    pub ip: Ipv4Addr,
    /// The endpoint it belongs to.
    pub endpoint: usize,
    /// TCP ports it carries.
    pub ports: Vec<u16>,
}

impl crate::model::Plan {
    /// The pipeline's routes, as every stack builds them: each ENI of each
    /// endpoint, then the VPC resolver's addresses as one more endpoint
    /// (index `endpoints.len()`, port 53: DNS over TCP). The second value is
    /// how many come first as ENIs (the guarded ones).
    pub fn eni_routes(&self) -> (Vec<EniRoute>, usize) {
        let mut routes: Vec<EniRoute> = self
            .endpoints
            .iter()
            .enumerate()
            .flat_map(|(i, e)| {
                e.enis.iter().map(move |n| EniRoute { ip: n.ip, endpoint: i, ports: e.settings.ports.clone() })
            })
            .collect();
        let guarded = routes.len();
        let dns_endpoint = self.endpoints.len();
        routes.extend(self.vpc.resolvers().into_iter().map(|ip| EniRoute {
            ip,
            endpoint: dns_endpoint,
            ports: vec![53],
        }));
        (routes, guarded)
    }

    /// The sources a client of this VPC may send from.
    pub fn vpc_sources(&self) -> VpcSources {
        VpcSources {
            cidr: self.vpc.cidr,
            router: self.vpc.router,
            subnets: self.subnets.iter().map(|s| s.cidr).collect(),
        }
    }
}

/// The addresses a client of the VPC may send from: unicast, inside the
/// VPC's CIDR, none of AWS's reserved addresses (five per subnet and five of
/// the VPC's block: network, router, DNS, reserved, broadcast). ENI and
/// resolver addresses are refused by the pipeline, which knows them.
///
/// One exception: the VPC router's address (base + 1) is the namespace's own,
/// the source of every client that runs in the VPC namespace itself (the
/// tests, `privlink probe`), so it passes like an instance's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpcSources {
    /// The VPC's CIDR.
    pub cidr: Cidr,
    /// The VPC router's address, let through.
    pub router: Ipv4Addr,
    /// The subnets' CIDRs.
    pub subnets: Vec<Cidr>,
}

impl VpcSources {
    /// Whether `src` may be a client's address (ENIs and resolvers aside).
    #[inline]
    pub fn allows(&self, src: Ipv4Addr) -> bool {
        if !self.cidr.contains(src) || src.is_broadcast() || src.is_multicast() || src.is_unspecified() {
            return false;
        }
        src == self.router
            || !(self.cidr.is_reserved(src) || self.subnets.iter().any(|s| s.contains(src) && s.is_reserved(src)))
    }
}

/// Packet counters by outcome. Plain integers: the pipeline is single-threaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets handed to the stack.
    pub to_stack: u64,
    /// Packets handed to the DNS responder.
    pub to_dns: u64,
    /// Drops, indexed like [`DropReason::ALL`].
    pub dropped: [u64; DropReason::ALL.len()],
}

impl Counters {
    /// Counts one drop.
    pub fn drop(&mut self, reason: DropReason) {
        self.dropped[reason as usize] += 1;
    }
    /// The count for one reason.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize]
    }
    /// Adds `o`'s counts (another queue's pipeline) to these.
    pub fn add(&mut self, o: &Counters) {
        let Counters { to_stack, to_dns, dropped } = o;
        self.to_stack += to_stack;
        self.to_dns += to_dns;
        for (a, b) in self.dropped.iter_mut().zip(dropped) {
            *a += b;
        }
    }
}

impl fmt::Display for Counters {
    /// `to_stack=N to_dns=N ipv6=N not_tcp=N …` on one line, for logs and tests.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "to_stack={} to_dns={}", self.to_stack, self.to_dns)?;
        for r in DropReason::ALL {
            write!(f, " {}={}", r, self.dropped(r))?;
        }
        Ok(())
    }
}

/// The ingress pipeline for one VPC's ENIs.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// In the order given: their index is the ENI's index everywhere.
    enis: Vec<EniRoute>,
    /// (IP, index) sorted by IP for binary search.
    by_ip: Vec<(Ipv4Addr, usize)>,
    resolvers: [Ipv4Addr; 2],
    sources: VpcSources,
    mtu: usize,
    /// Counters by outcome.
    pub counters: Counters,
}

impl Pipeline {
    /// A pipeline for these ENIs and resolver addresses, taking packets from
    /// `sources`. UDP to a resolver's port 53 goes to the DNS responder; for
    /// DNS over TCP, list the resolver addresses among `enis` with port 53,
    /// like an endpoint.
    pub fn new(enis: Vec<EniRoute>, resolvers: [Ipv4Addr; 2], sources: VpcSources, mtu: u32) -> Pipeline {
        let mut by_ip: Vec<(Ipv4Addr, usize)> = enis.iter().map(|e| e.ip).zip(0..).collect();
        by_ip.sort();
        Pipeline { enis, by_ip, resolvers, sources, mtu: mtu as usize, counters: Counters::default() }
    }

    /// Classifies one packet read from the TUN. `verify_checksums`: see [`packet::parse`].
    pub fn handle_packet(&mut self, buf: &[u8], verify_checksums: bool) -> Verdict {
        self.handle_segmented(buf, verify_checksums, 0)
    }

    /// Like [`Pipeline::handle_packet`], for a TCP superpacket the kernel built
    /// from segments of `gso_size` payload bytes each (TUN offload; 0: not a
    /// superpacket). The MTU applies to those segments, the packets a wire
    /// would have carried, not to the superpacket.
    pub fn handle_segmented(&mut self, buf: &[u8], verify_checksums: bool, gso_size: u16) -> Verdict {
        let v = self.classify(buf, verify_checksums, gso_size);
        match v {
            Verdict::ToStack { .. } => self.counters.to_stack += 1,
            Verdict::ToDns(_) => self.counters.to_dns += 1,
            Verdict::Drop(r) => self.counters.drop(r),
        }
        v
    }

    fn classify(&self, buf: &[u8], verify_checksums: bool, gso_size: u16) -> Verdict {
        if gso_size == 0 && buf.len() > self.mtu {
            return Verdict::Drop(DropReason::TooBig);
        }
        let meta = match packet::parse(buf, verify_checksums) {
            Ok(m) => m,
            Err(r) => return Verdict::Drop(r),
        };
        if gso_size != 0 && usize::from(meta.payload_start) + usize::from(gso_size) > self.mtu {
            return Verdict::Drop(DropReason::TooBig);
        }
        if !self.sources.allows(meta.src)
            || self.resolvers.contains(&meta.src)
            || self.by_ip.binary_search_by_key(&meta.src, |&(ip, _)| ip).is_ok()
        {
            return Verdict::Drop(DropReason::BadSource);
        }
        if meta.protocol == proto::UDP && meta.dst_port == 53 && self.resolvers.contains(&meta.dst) {
            return Verdict::ToDns(meta);
        }
        let Ok(pos) = self.by_ip.binary_search_by_key(&meta.dst, |&(ip, _)| ip) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        let i = self.by_ip[pos].1;
        if meta.protocol != proto::TCP {
            return Verdict::Drop(DropReason::NotTcp);
        }
        let eni = &self.enis[i];
        if !eni.ports.contains(&meta.dst_port) {
            return Verdict::Drop(DropReason::Port);
        }
        Verdict::ToStack { meta, endpoint: eni.endpoint, eni: i }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::sample::{icmp_echo, ipv6_tcp, tcp, udp, CLIENT, ENI};

    const RESOLVER: [u8; 4] = [10, 0, 0, 2];
    const LINK_LOCAL_DNS: [u8; 4] = [169, 254, 169, 253];

    fn pipeline() -> Pipeline {
        let enis = vec![
            EniRoute { ip: Ipv4Addr::from(ENI), endpoint: 0, ports: vec![443] },
            EniRoute { ip: Ipv4Addr::new(10, 0, 2, 49), endpoint: 0, ports: vec![443] },
            EniRoute { ip: Ipv4Addr::new(10, 0, 1, 50), endpoint: 1, ports: vec![443, 8443] },
            EniRoute { ip: RESOLVER.into(), endpoint: 2, ports: vec![53] },
            EniRoute { ip: LINK_LOCAL_DNS.into(), endpoint: 2, ports: vec![53] },
        ];
        Pipeline::new(enis, [RESOLVER.into(), LINK_LOCAL_DNS.into()], sources(), 8500)
    }

    /// VPC 10.0.0.0/16, router 10.0.0.1, subnets a and b.
    fn sources() -> VpcSources {
        let c = |s: &str| s.parse::<Cidr>().unwrap();
        VpcSources {
            cidr: c("10.0.0.0/16"),
            router: Ipv4Addr::new(10, 0, 0, 1),
            subnets: vec![c("10.0.1.0/24"), c("10.0.2.0/24")],
        }
    }

    #[test]
    fn only_sources_a_vpc_client_can_have_get_anything() {
        // The sources: replies went to them, SYNs from them got SYN-ACKs.
        let bad: [[u8; 4]; 13] = [
            [198, 51, 100, 7],    // outside the VPC
            [127, 0, 0, 1],       // loopback
            [0, 0, 0, 0],         // unspecified
            [255, 255, 255, 255], // broadcast
            [224, 0, 0, 1],       // multicast
            ENI,                  // the ENI itself
            [10, 0, 2, 49],       // another ENI
            RESOLVER,             // the resolver (VPC base + 2)
            [10, 0, 0, 0],        // the VPC's network address
            [10, 0, 0, 3],        // VPC base + 3
            [10, 0, 255, 255],    // the VPC's broadcast address
            [10, 0, 1, 255],      // subnet a's broadcast
            [10, 0, 2, 1],        // subnet b's router
        ];
        let mut p = pipeline();
        for src in bad {
            let q = p.handle_packet(&udp(src, RESOLVER, 5353, 53, b"q"), true);
            assert_eq!(q, Verdict::Drop(DropReason::BadSource), "DNS from {src:?}");
            let s = p.handle_packet(&tcp(src, ENI, 40000, 443, true, &[]), true);
            assert_eq!(s, Verdict::Drop(DropReason::BadSource), "SYN from {src:?}");
        }
        assert_eq!(p.counters.dropped(DropReason::BadSource), 26);
        // Instances in a subnet or elsewhere in the VPC, and the router (the namespace's own address).
        for src in [CLIENT, [10, 0, 2, 254], [10, 0, 3, 10], [10, 0, 0, 1], [10, 0, 1, 4]] {
            assert!(matches!(p.handle_packet(&udp(src, RESOLVER, 5353, 53, b"q"), true), Verdict::ToDns(_)), "{src:?}");
            let s = p.handle_packet(&tcp(src, ENI, 40000, 443, true, &[]), true);
            assert!(matches!(s, Verdict::ToStack { .. }), "{src:?}: {s:?}");
        }
    }

    #[test]
    fn verdicts_table() {
        let big = tcp(CLIENT, ENI, 1, 443, false, &[0u8; 8500]);
        let cases: Vec<(&str, Vec<u8>, Result<usize, DropReason>)> = vec![
            ("syn to eni", tcp(CLIENT, ENI, 40000, 443, true, &[]), Ok(0)),
            ("data to second eni", tcp(CLIENT, [10, 0, 2, 49], 40000, 443, false, b"x"), Ok(0)),
            ("extra port of endpoint 1", tcp(CLIENT, [10, 0, 1, 50], 1, 8443, true, &[]), Ok(1)),
            ("port not carried", tcp(CLIENT, ENI, 1, 80, true, &[]), Err(DropReason::Port)),
            ("other endpoint's port", tcp(CLIENT, ENI, 1, 8443, true, &[]), Err(DropReason::Port)),
            ("no such address", tcp(CLIENT, [10, 0, 1, 51], 1, 443, true, &[]), Err(DropReason::NoRoute)),
            ("udp to eni", udp(CLIENT, ENI, 1, 443, b"q"), Err(DropReason::NotTcp)),
            ("icmp to eni", icmp_echo(CLIENT, ENI), Err(DropReason::NotTcp)),
            ("ipv6", ipv6_tcp(), Err(DropReason::Ipv6)),
            ("bigger than mtu", big, Err(DropReason::TooBig)),
            ("icmp to resolver", icmp_echo(CLIENT, RESOLVER), Err(DropReason::NotTcp)),
            ("tcp 80 to resolver", tcp(CLIENT, RESOLVER, 1, 80, true, &[]), Err(DropReason::Port)),
            ("garbage", vec![0x45, 0, 0], Err(DropReason::Malformed)),
        ];
        for (name, pkt, want) in cases {
            let got = match pipeline().handle_packet(&pkt, true) {
                Verdict::ToStack { endpoint, meta, .. } => {
                    assert_eq!(meta.dst_port, u16::from_be_bytes([pkt[22], pkt[23]]), "{name}");
                    Ok(endpoint)
                }
                Verdict::ToDns(_) => panic!("{name}: to dns"),
                Verdict::Drop(r) => Err(r),
            };
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn superpackets_are_sized_by_their_segments() {
        let mut p = pipeline();
        let sp = tcp(CLIENT, ENI, 40000, 443, false, &[0u8; 30000]);
        assert!(matches!(p.handle_segmented(&sp, true, 8460), Verdict::ToStack { .. }));
        assert_eq!(p.handle_segmented(&sp, true, 8461), Verdict::Drop(DropReason::TooBig));
        assert_eq!(p.handle_packet(&sp, true), Verdict::Drop(DropReason::TooBig));
    }

    #[test]
    fn dns_goes_to_responder_or_is_counted() {
        let mut p = pipeline();
        for dst in [RESOLVER, LINK_LOCAL_DNS] {
            assert!(matches!(p.handle_packet(&udp(CLIENT, dst, 5000, 53, b"q"), true), Verdict::ToDns(_)));
            let tcp_dns = p.handle_packet(&tcp(CLIENT, dst, 5000, 53, true, &[]), true);
            assert!(matches!(tcp_dns, Verdict::ToStack { endpoint: 2, .. }), "{tcp_dns:?}");
            assert_eq!(p.handle_packet(&udp(CLIENT, dst, 5000, 54, b"q"), true), Verdict::Drop(DropReason::NotTcp));
        }
        assert_eq!(p.counters.to_dns, 2);
        assert_eq!(p.handle_packet(&udp(CLIENT, ENI, 5000, 53, b"q"), true), Verdict::Drop(DropReason::NotTcp));
    }

    #[test]
    fn counters_add_up() {
        let mut p = pipeline();
        p.handle_packet(&tcp(CLIENT, ENI, 40000, 443, true, &[]), true);
        p.handle_packet(&ipv6_tcp(), true);
        p.handle_packet(&ipv6_tcp(), true);
        p.handle_packet(&icmp_echo(CLIENT, ENI), true);
        let mut bad = tcp(CLIENT, ENI, 40000, 443, false, b"abc");
        let n = bad.len() - 1;
        bad[n] ^= 1;
        p.handle_packet(&bad, true);
        assert_eq!(p.counters.to_stack, 1);
        assert_eq!(p.counters.dropped(DropReason::Ipv6), 2);
        assert_eq!(p.counters.dropped(DropReason::NotTcp), 1);
        assert_eq!(p.counters.dropped(DropReason::BadChecksum), 1);
        assert_eq!(
            p.counters.to_string(),
            "to_stack=1 to_dns=0 ipv6=2 not_tcp=1 malformed=0 bad_checksum=1 too_big=0 no_route=0 port=0 connection_limit=0 bad_source=0 client_limit=0"
        );
    }
}
