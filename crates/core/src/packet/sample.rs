//! Sample packets, built with etherparse, for tests and benchmarks across
//! the workspace: a client in subnet a, an ENI, and one builder per kind.

use std::net::Ipv4Addr;

use etherparse::PacketBuilder;

use super::{proto, tcp_flags, PacketMeta};

/// The client of the samples: 10.0.1.10, in subnet a.
pub const CLIENT: [u8; 4] = [10, 0, 1, 10];
/// The ENI of the samples: 10.0.1.49.
pub const ENI: [u8; 4] = [10, 0, 1, 49];

/// What [`super::parse`] reads from `tcp(CLIENT, ENI, 40000, 443, true, &[])`:
/// a template for hand-made packets (change fields with struct-update syntax).
pub const SYN: PacketMeta = PacketMeta {
    src: Ipv4Addr::new(CLIENT[0], CLIENT[1], CLIENT[2], CLIENT[3]),
    dst: Ipv4Addr::new(ENI[0], ENI[1], ENI[2], ENI[3]),
    protocol: proto::TCP,
    src_port: 40000,
    dst_port: 443,
    tcp_flags: tcp_flags::SYN,
    seq: 1000,
    ack: 0,
    window: 65535,
    len: 40,
    payload_start: 40,
    payload_end: 40,
};

/// A TCP packet: a SYN when `syn`, else an ACK carrying `payload`.
pub fn tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, syn: bool, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ipv4(src, dst, 64).tcp(sport, dport, 1000, 65535);
    let b = if syn { b.syn() } else { b.ack(1) };
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

/// A UDP datagram.
pub fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(src, dst, 64).udp(sport, dport).write(&mut v, payload).unwrap();
    v
}

/// An ICMP echo request.
pub fn icmp_echo(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(src, dst, 64).icmpv4_echo_request(7, 1).write(&mut v, b"ping").unwrap();
    v
}

/// An IPv6 TCP SYN.
pub fn ipv6_tcp() -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv6([0xfd; 16], [0xfe; 16], 64).tcp(5000, 443, 1, 100).syn().write(&mut v, &[]).unwrap();
    v
}
