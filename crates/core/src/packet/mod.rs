//! A zero-copy view of the IPv4 packets the ENI receives, and the few it builds.
//!
//! A packet is parsed once, here, with etherparse's header slices; the facts
//! ([`PacketMeta`]) flow on with it and nobody re-parses. Everything that is
//! not a well-formed, checksum-correct IPv4 packet becomes a [`DropReason`]:
//! counted and dropped, never a panic.
//!
//! Checksums are verified here (RFC 1071 sums, IPv4 header and TCP/UDP with
//! the pseudo-header), so smoltcp is told not to verify them again.
//!
//! ## Not emulated
//! IPv4 options are accepted and ignored; fragments are dropped (a real ENI
//! reassembles, but the namespace's kernel never fragments below our MTU).

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

pub mod sample;

use etherparse::{Ipv4HeaderSlice, PacketBuilder, TcpHeaderSlice};

use crate::flow::{Direction, FlowKey};

/// IP protocol numbers the ENI cares about.
pub mod proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
}

/// TCP flag bits as they sit in the header's flags byte.
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// Why a packet did not go on. Each reason has its own counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// An IPv6 packet: the endpoint carries IPv4 only.
    Ipv6,
    /// Not TCP (ICMP, UDP not for the resolver, …): the endpoint carries TCP only.
    NotTcp,
    /// Truncated, lying lengths, bad version, fragments.
    Malformed,
    /// An IPv4 or TCP/UDP checksum that does not add up.
    BadChecksum,
    /// Larger than the ENI MTU (AWS drops these and sends no ICMP).
    TooBig,
    /// Destination is neither an ENI nor a resolver address.
    NoRoute,
    /// TCP to an ENI port the endpoint does not carry.
    Port,
    /// A new connection over the endpoint's `max_connections`, or too many half-open.
    ConnectionLimit,
    /// A source no client of the VPC can have: outside the VPC's CIDR, not
    /// unicast, one of AWS's reserved addresses, an ENI's or a resolver's.
    BadSource,
    /// A new connection from a client that has too many half-open already.
    ClientLimit,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 10] = [
        DropReason::Ipv6,
        DropReason::NotTcp,
        DropReason::Malformed,
        DropReason::BadChecksum,
        DropReason::TooBig,
        DropReason::NoRoute,
        DropReason::Port,
        DropReason::ConnectionLimit,
        DropReason::BadSource,
        DropReason::ClientLimit,
    ];

    /// Short snake_case name used in counters and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Ipv6 => "ipv6",
            DropReason::NotTcp => "not_tcp",
            DropReason::Malformed => "malformed",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::TooBig => "too_big",
            DropReason::NoRoute => "no_route",
            DropReason::Port => "port",
            DropReason::ConnectionLimit => "connection_limit",
            DropReason::BadSource => "bad_source",
            DropReason::ClientLimit => "client_limit",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the pipeline, the filter and the flow log need to know about a
/// packet, read once: the one parsed form, passed on by reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketMeta {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// IP protocol number.
    pub protocol: u8,
    /// TCP/UDP source port (0 for other protocols).
    pub src_port: u16,
    /// TCP/UDP destination port (0 for other protocols).
    pub dst_port: u16,
    /// TCP flags byte (0 for other protocols).
    pub tcp_flags: u8,
    /// TCP sequence number (0 for other protocols).
    pub seq: u32,
    /// TCP acknowledgment number, meaningful when the ACK flag is set (0 for other protocols).
    pub ack: u32,
    /// TCP window field as sent, not scaled (0 for other protocols).
    pub window: u16,
    /// IP total length.
    pub len: u16,
    /// Where the transport payload (after the TCP/UDP header) starts in the packet.
    pub payload_start: u16,
    /// Where it ends.
    pub payload_end: u16,
}

impl PacketMeta {
    /// The transport payload of `packet` (the bytes this meta was parsed from).
    pub fn payload<'p>(&self, packet: &'p [u8]) -> &'p [u8] {
        &packet[usize::from(self.payload_start)..usize::from(self.payload_end)]
    }
}

impl PacketMeta {
    /// A SYN without ACK: the first packet of a new connection.
    pub fn is_syn(&self) -> bool {
        self.protocol == proto::TCP && self.tcp_flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN
    }
    /// The flow this packet belongs to when it crosses the ENI in `dir`.
    #[inline]
    pub fn flow_in(&self, dir: Direction) -> FlowKey {
        FlowKey::new(dir, self.protocol, (self.src, self.src_port), (self.dst, self.dst_port))
    }
    /// The flow of a packet toward the ENI (what the TUN reads): the client is its source.
    pub fn flow(&self) -> FlowKey {
        self.flow_in(Direction::Ingress)
    }
}

/// Parses an IP packet from the TUN. `verify_checksums` is off only when the
/// kernel vouches for them (offloaded packets carry partial checksums).
pub fn parse(buf: &[u8], verify_checksums: bool) -> Result<PacketMeta, DropReason> {
    match buf.first().map(|b| b >> 4) {
        Some(4) => {}
        Some(6) => return Err(DropReason::Ipv6),
        _ => return Err(DropReason::Malformed),
    }
    let ip = Ipv4HeaderSlice::from_slice(buf).map_err(|_| DropReason::Malformed)?;
    let hlen = usize::from(ip.ihl()) * 4;
    let total = usize::from(ip.total_len());
    if total < hlen || total > buf.len() {
        return Err(DropReason::Malformed);
    }
    if ip.is_fragmenting_payload() {
        return Err(DropReason::Malformed);
    }
    if verify_checksums && fold(sum(ip.slice(), 0)) != 0xffff {
        return Err(DropReason::BadChecksum);
    }
    let src = ip.source_addr();
    let dst = ip.destination_addr();
    let protocol = ip.protocol().0;
    let payload = &buf[hlen..total];
    let end = total as u16;
    let mut meta = PacketMeta {
        src,
        dst,
        protocol,
        src_port: 0,
        dst_port: 0,
        tcp_flags: 0,
        seq: 0,
        ack: 0,
        window: 0,
        len: end,
        payload_start: end,
        payload_end: end,
    };
    match protocol {
        proto::TCP => {
            let tcp = TcpHeaderSlice::from_slice(payload).map_err(|_| DropReason::Malformed)?;
            meta.src_port = tcp.source_port();
            meta.dst_port = tcp.destination_port();
            meta.tcp_flags = tcp.slice()[13];
            meta.seq = tcp.sequence_number();
            meta.ack = tcp.acknowledgment_number();
            meta.window = tcp.window_size();
            meta.payload_start = (hlen + tcp.slice().len()) as u16;
        }
        proto::UDP => {
            if payload.len() < 8 {
                return Err(DropReason::Malformed);
            }
            let ulen = usize::from(u16::from_be_bytes([payload[4], payload[5]]));
            if ulen < 8 || ulen > payload.len() {
                return Err(DropReason::Malformed);
            }
            meta.src_port = u16::from_be_bytes([payload[0], payload[1]]);
            meta.dst_port = u16::from_be_bytes([payload[2], payload[3]]);
            meta.payload_start = (hlen + 8) as u16;
            meta.payload_end = (hlen + ulen) as u16;
            // A zero UDP checksum means "not computed" (RFC 768).
            let unchecked = payload[6] == 0 && payload[7] == 0;
            if verify_checksums && !unchecked && !transport_checksum_ok(src, dst, protocol, &payload[..ulen]) {
                return Err(DropReason::BadChecksum);
            }
            return Ok(meta);
        }
        _ => return Ok(meta),
    }
    if verify_checksums && !transport_checksum_ok(src, dst, protocol, payload) {
        return Err(DropReason::BadChecksum);
    }
    Ok(meta)
}

/// The window scale option of a TCP packet `parse` accepted (a SYN or a
/// SYN-ACK carries it), capped at 14 as RFC 7323 says; `None` without one.
/// Read only for handshake segments: no other packet needs its options.
pub fn window_scale(pkt: &[u8]) -> Option<u8> {
    let ip = Ipv4HeaderSlice::from_slice(pkt).ok()?;
    let tcp = TcpHeaderSlice::from_slice(pkt.get(usize::from(ip.ihl()) * 4..)?).ok()?;
    tcp.options_iterator().find_map(|o| match o {
        Ok(etherparse::TcpOptionElement::WindowScale(s)) => Some(s.min(14)),
        _ => None,
    })
}

fn transport_checksum_ok(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, segment: &[u8]) -> bool {
    fold(sum(segment, pseudo_header_sum(src, dst, protocol, segment.len()))) == 0xffff
}

fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: usize) -> u64 {
    let s = u32::from(src);
    let d = u32::from(dst);
    u64::from(s >> 16)
        + u64::from(s & 0xffff)
        + u64::from(d >> 16)
        + u64::from(d & 0xffff)
        + u64::from(protocol)
        + len as u64
}

/// RFC 1071 sum of big-endian 16-bit words, unfolded. Words are taken four at
/// a time into a 64-bit accumulator: a 64 KiB segment cannot overflow it, and
/// the loop vectorizes.
pub fn sum(data: &[u8], initial: u64) -> u64 {
    let mut acc = initial;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes(c.try_into().expect("8 bytes"));
        acc += (w >> 48) + ((w >> 32) & 0xffff) + ((w >> 16) & 0xffff) + (w & 0xffff);
    }
    let mut rest = chunks.remainder().chunks_exact(2);
    for c in &mut rest {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = rest.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Folds a sum to 16 bits.
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Prepares an IPv4 TCP packet for checksum offload: writes the pseudo-header
/// sum (folded, not complemented) into the TCP checksum field, which is what
/// a device finishing the checksum expects there (it sums from the TCP header
/// to the end and stores the complement). Returns where the TCP header starts
/// and the length of the IP and TCP headers together; `None` (packet left
/// alone) if it is not a well-formed IPv4 TCP packet.
pub fn tcp_partial_checksum(pkt: &mut [u8]) -> Option<(usize, usize)> {
    if pkt.len() < 20 || pkt[0] >> 4 != 4 || pkt[9] != proto::TCP {
        return None;
    }
    let hlen = usize::from(pkt[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([pkt[2], pkt[3]]));
    if hlen < 20 || total > pkt.len() || total < hlen + 20 {
        return None;
    }
    let thlen = usize::from(pkt[hlen + 12] >> 4) * 4;
    if thlen < 20 || hlen + thlen > total {
        return None;
    }
    let src = Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
    let dst = Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]);
    let partial = fold(pseudo_header_sum(src, dst, proto::TCP, total - hlen));
    pkt[hlen + 16..hlen + 18].copy_from_slice(&partial.to_be_bytes());
    Some((hlen, hlen + thlen))
}

/// Writes a UDP datagram from `src` to `dst` carrying `payload` into `out`;
/// returns its length, or `None` if `out` is too small.
pub fn emit_udp(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8], out: &mut [u8]) -> Option<usize> {
    let builder = PacketBuilder::ipv4(src.ip().octets(), dst.ip().octets(), 64).udp(src.port(), dst.port());
    let len = builder.size(payload.len());
    if len > out.len() {
        return None;
    }
    let mut w = &mut out[..];
    builder.write(&mut w, payload).ok()?;
    Some(len)
}

/// Writes the RST|ACK that refuses `syn` (upstream refused or timed out) into
/// `out`, from the ENI to the client; returns its length (40 bytes).
pub fn emit_rst(syn: &PacketMeta, out: &mut [u8]) -> usize {
    let builder = PacketBuilder::ipv4(syn.dst.octets(), syn.src.octets(), 64)
        .tcp(syn.dst_port, syn.src_port, 0, 0)
        .rst()
        .ack(syn.seq.wrapping_add(1));
    let len = builder.size(0);
    let mut w = &mut out[..];
    builder.write(&mut w, &[]).expect("out holds a 40-byte packet");
    len
}

#[cfg(test)]
mod tests {
    use super::sample::*;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn partial_checksum_completes_to_the_full_one() {
        for len in [0usize, 1, 7, 1460, 8000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let full = tcp(CLIENT, ENI, 40000, 443, false, &payload);
            let mut p = full.clone();
            p[36] = 0xde;
            p[37] = 0xad;
            assert_eq!(tcp_partial_checksum(&mut p), Some((20, 40)));
            // What the device does: sum from csum_start, store the complement.
            let done = !fold(sum(&p[20..], 0));
            p[36..38].copy_from_slice(&done.to_be_bytes());
            assert_eq!(p, full, "payload {len}");
        }
        assert_eq!(tcp_partial_checksum(&mut udp(CLIENT, ENI, 1, 2, b"x")), None);
        assert_eq!(tcp_partial_checksum(&mut ipv6_tcp()), None);
        assert_eq!(tcp_partial_checksum(&mut [0x45, 0, 0]), None);
    }

    #[test]
    fn tcp_syn_facts() {
        let p = tcp(CLIENT, ENI, 40000, 443, true, &[]);
        let m = parse(&p, true).unwrap();
        assert_eq!(m.src, Ipv4Addr::from(CLIENT));
        assert_eq!(m.dst, Ipv4Addr::from(ENI));
        assert_eq!((m.src_port, m.dst_port, m.protocol), (40000, 443, proto::TCP));
        assert!(m.is_syn());
        assert_eq!(m.seq, 1000);
        assert_eq!(usize::from(m.len), p.len());
        assert_eq!(m.flow().to_string(), "10.0.1.10:40000 -> 10.0.1.49:443");
        assert_eq!(m, SYN);
        let reply = parse(&tcp(ENI, CLIENT, 443, 40000, false, &[]), true).unwrap();
        assert_eq!(reply.flow_in(Direction::Egress), m.flow());
        let data = parse(&tcp(CLIENT, ENI, 40000, 443, false, b"hello"), true).unwrap();
        assert!(!data.is_syn());
    }

    #[test]
    fn other_protocols() {
        assert_eq!(parse(&ipv6_tcp(), true), Err(DropReason::Ipv6));
        let u = parse(&udp(CLIENT, ENI, 5353, 53, b"q"), true).unwrap();
        assert_eq!((u.protocol, u.dst_port), (proto::UDP, 53));
        let i = parse(&icmp_echo(CLIENT, ENI), true).unwrap();
        assert_eq!((i.protocol, i.dst_port), (proto::ICMP, 0));
    }

    #[test]
    fn truncated_and_lying_headers() {
        let p = tcp(CLIENT, ENI, 40000, 443, false, b"hello world");
        assert_eq!(parse(&[], true), Err(DropReason::Malformed));
        assert_eq!(parse(&[0x45], true), Err(DropReason::Malformed));
        for cut in [1, 10, 19, 20, 30, p.len() - 1] {
            assert!(parse(&p[..cut], true).is_err(), "cut at {cut}");
        }
        // Total length larger than the buffer.
        let mut lie = p.clone();
        lie[2..4].copy_from_slice(&((p.len() + 10) as u16).to_be_bytes());
        assert_eq!(parse(&lie, false), Err(DropReason::Malformed));
        // Total length smaller than the header.
        let mut lie = p.clone();
        lie[2..4].copy_from_slice(&12u16.to_be_bytes());
        assert_eq!(parse(&lie, false), Err(DropReason::Malformed));
        // IHL below 5.
        let mut lie = p.clone();
        lie[0] = 0x44;
        assert_eq!(parse(&lie, false), Err(DropReason::Malformed));
        // TCP data offset pointing past the segment.
        let mut lie = p.clone();
        lie[20 + 12] = 0xf0;
        assert_eq!(parse(&lie[..44], false), Err(DropReason::Malformed));
        // Version 5.
        let mut lie = p.clone();
        lie[0] = 0x55;
        assert_eq!(parse(&lie, false), Err(DropReason::Malformed));
        // A fragment.
        let mut frag = p.clone();
        frag[6] = 0x20; // more fragments
        assert_eq!(parse(&frag, false), Err(DropReason::Malformed));
        // UDP length lying.
        let mut u = udp(CLIENT, ENI, 1, 53, b"abc");
        u[24..26].copy_from_slice(&200u16.to_be_bytes());
        assert_eq!(parse(&u, false), Err(DropReason::Malformed));
    }

    #[test]
    fn bad_checksums() {
        let p = tcp(CLIENT, ENI, 40000, 443, false, b"hello");
        let mut bad_ip = p.clone();
        bad_ip[10] ^= 0xff;
        assert_eq!(parse(&bad_ip, true), Err(DropReason::BadChecksum));
        let mut bad_tcp = p.clone();
        let last = bad_tcp.len() - 1;
        bad_tcp[last] ^= 0x01;
        assert_eq!(parse(&bad_tcp, true), Err(DropReason::BadChecksum));
        assert!(parse(&bad_tcp, false).is_ok(), "offloaded packets skip verification");
        let mut bad_udp = udp(CLIENT, ENI, 1, 53, b"abc");
        bad_udp[28] ^= 1;
        assert_eq!(parse(&bad_udp, true), Err(DropReason::BadChecksum));
        let mut no_udp_sum = udp(CLIENT, ENI, 1, 53, b"abc");
        no_udp_sum[26] = 0;
        no_udp_sum[27] = 0;
        assert!(parse(&no_udp_sum, true).is_ok());
    }

    #[test]
    fn payload_ranges_and_udp_replies() {
        let p = tcp(CLIENT, ENI, 40000, 443, false, b"hello");
        assert_eq!(parse(&p, true).unwrap().payload(&p), b"hello");
        let u = udp(CLIENT, ENI, 5000, 53, b"query");
        let m = parse(&u, true).unwrap();
        assert_eq!(m.payload(&u), b"query");
        let mut out = [0u8; 64];
        let n =
            emit_udp(SocketAddrV4::new(m.dst, 53), SocketAddrV4::new(m.src, m.src_port), b"answer", &mut out).unwrap();
        let r = parse(&out[..n], true).unwrap();
        assert_eq!((r.src, r.src_port, r.dst, r.dst_port), (m.dst, 53, m.src, 5000));
        assert_eq!(r.payload(&out[..n]), b"answer");
        assert_eq!(emit_udp(SocketAddrV4::new(m.dst, 53), SocketAddrV4::new(m.src, 1), &[0; 64], &mut out), None);
    }

    #[test]
    fn rst_refuses_the_syn() {
        let syn = parse(&tcp(CLIENT, ENI, 40000, 443, true, &[]), true).unwrap();
        let mut out = [0u8; 64];
        let n = emit_rst(&syn, &mut out);
        assert_eq!(n, 40);
        let r = parse(&out[..n], true).unwrap();
        assert_eq!((r.src, r.dst), (syn.dst, syn.src));
        assert_eq!((r.src_port, r.dst_port), (443, 40000));
        assert_eq!(r.tcp_flags, tcp_flags::RST | tcp_flags::ACK);
        let ack = u32::from_be_bytes(out[28..32].try_into().unwrap());
        assert_eq!(ack, 1001);
    }

    #[test]
    fn sum_matches_a_plain_word_sum() {
        let data: Vec<u8> = (0..1001u32).map(|i| (i * 7 + 3) as u8).collect();
        for n in [0, 1, 2, 7, 8, 9, 100, 1001] {
            let plain: u64 =
                data[..n].chunks(2).map(|c| u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
            assert_eq!(fold(sum(&data[..n], 0)), fold(plain), "n={n}");
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&bytes, true);
            let _ = parse(&bytes, false);
        }

        #[test]
        fn mutated_packets_never_panic(flip in 0usize..64, bit in 0u8..8, cut in 0usize..80) {
            let mut p = tcp(CLIENT, ENI, 40000, 443, false, b"0123456789abcdef");
            let i = flip % p.len();
            p[i] ^= 1 << bit;
            let cut = cut.min(p.len());
            let _ = parse(&p[..cut], true);
            // Any single bit flip is caught by one of the checks.
            prop_assert!(parse(&p, true).is_err() || i == 0 && bit < 4);
        }
    }
}
