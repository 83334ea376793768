//! The data path in memory: a client TCP stack in the VPC, one queue's stack
//! on the ENI (pipeline, security groups, NACLs, DNS responder, relay) and
//! in-process services. No root, no TUN, no clock: these run everywhere, and
//! lab time makes 10 s timeouts instant and every run the same.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use common::pattern;
use privlink::edge::pipe::MemoryPeer;
use privlink::lab::memory::https::Https;
use privlink::lab::memory::lab::{Download, Echo, MemoryLab};
use privlink::lab::probe;
use privlink::lab::standin::ServiceCert;
use privlink_core::packet::{self, sample, tcp_flags, DropReason, PacketMeta};
use smoltcp::socket::tcp::State;

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 10);
const UPSTREAM: &str = "127.0.0.1:8443";
const EC2: &str = "ec2.us-east-1.amazonaws.com";

/// The namespace tests' config (two subnets, an EC2 endpoint in both,
/// relaying to [`UPSTREAM`]); `extra` goes into the endpoint's table. The
/// memory lab makes no namespace: the name is only read.
fn config(extra: &str) -> String {
    common::config("plk-memory", UPSTREAM, extra)
}

/// A lab whose endpoint carries any TCP stream (no SNI check) to an echo service.
fn echo_lab() -> MemoryLab {
    let mut lab = MemoryLab::new("memory.toml", &config("allow_non_tls = true"));
    lab.serve(UPSTREAM, || Box::new(Echo::default()));
    lab
}

/// Sends `data` on `h`, then FIN, and reads until the other side's FIN.
fn exchange(lab: &mut MemoryLab, h: smoltcp::iface::SocketHandle, data: &[u8]) -> Vec<u8> {
    let (mut sent, mut back, mut fin) = (0, Vec::new(), false);
    lab.run_until("an exchange", |lab| {
        let s = lab.socket(h);
        if s.can_send() && sent < data.len() {
            sent += s.send_slice(&data[sent..]).unwrap();
        }
        if sent == data.len() && !fin && s.may_send() {
            s.close();
            fin = true;
        }
        while s.can_recv() {
            s.recv(|b| {
                back.extend_from_slice(b);
                (b.len(), ())
            })
            .unwrap();
        }
        fin && !s.may_recv() && !s.can_recv()
    });
    back
}

#[test]
fn tls_handshake_sees_the_service_certificate() {
    let mut lab = MemoryLab::new("memory.toml", &config(""));
    let cert = ServiceCert::generate(EC2).unwrap();
    let server = cert.server_config().unwrap();
    lab.serve(UPSTREAM, move || Box::new(Https::new(server.clone(), EC2)));
    for i in 0..2 {
        let eni = lab.eni(0, i, 443);
        let reply = lab.https_get(CLIENT, eni, EC2, &cert.ca).unwrap();
        assert_eq!(reply.peer_certs.first(), Some(&cert.leaf), "the client sees the service's own certificate");
        assert!(reply.response.starts_with("HTTP/1.1 200 OK"), "{}", reply.response);
        assert!(reply.response.contains("hello from ec2.us-east-1.amazonaws.com"), "{}", reply.response);
    }
    // A name the certificate does not cover fails verification: TLS is not
    // terminated by privlink. (sts is not the endpoint's name either: the SNI
    // check resets the stream, which fails the handshake too.)
    let eni = lab.eni(0, 0, 443);
    let wrong = lab.https_get(CLIENT, eni, "sts.us-east-1.amazonaws.com", &cert.ca);
    assert!(wrong.is_err(), "{wrong:?}");
    let r = lab.report();
    assert_eq!(r.conns.accepted, 3, "{:?}", r.conns);
    assert_eq!(r.conns.sni_denied, 1, "the sts stream was refused by the SNI check: {:?}", r.conns);
}

#[test]
fn four_mib_each_way_with_half_close() {
    let mut lab = echo_lab();
    let data = pattern(1, 4 << 20);
    let h = lab.connect(CLIENT, lab.eni(0, 1, 443));
    let back = exchange(&mut lab, h, &data);
    assert_eq!(back.len(), data.len());
    assert!(back == data, "the echo differs from what was sent");
    let r = lab.report();
    assert_eq!((r.conns.accepted, r.counters.dropped(DropReason::TooBig)), (1, 0), "{:?}", r.conns);
    assert_eq!((r.conns.challenged, r.conns.rfc5961_dropped), (0, 0), "a normal stream is never judged blind");
}

#[test]
fn a_hundred_concurrent_connections() {
    let mut lab = echo_lab();
    let hs: Vec<_> = (0..100).map(|i| lab.connect(CLIENT, lab.eni(0, i % 2, 443))).collect();
    let msgs: Vec<Vec<u8>> = (0..100).map(|i| pattern(i, 3000 + i as usize * 17)).collect();
    let mut sent = [false; 100];
    let mut back: Vec<Vec<u8>> = vec![Vec::new(); 100];
    lab.run_until("a hundred echoes", |lab| {
        for (i, &h) in hs.iter().enumerate() {
            let s = lab.socket(h);
            if !sent[i] && s.can_send() {
                assert_eq!(s.send_slice(&msgs[i]).unwrap(), msgs[i].len());
                sent[i] = true;
            }
            while s.can_recv() {
                s.recv(|b| {
                    back[i].extend_from_slice(b);
                    (b.len(), ())
                })
                .unwrap();
            }
        }
        back.iter().zip(&msgs).all(|(b, m)| b.len() == m.len())
    });
    assert!(back == msgs, "an echo went to the wrong connection");
    assert_eq!(lab.open_connections(), 100);
}

#[test]
fn recycled_sockets_carry_only_their_own_bytes() {
    // More rounds than spare sockets, ended by FIN and by RST in turn, so
    // every socket is reused after both kinds of ending.
    const ROUNDS: usize = 3 * privlink::edge::queue::SPARE_SOCKETS;
    let mut lab = echo_lab();
    for i in 0..ROUNDS {
        let h = lab.connect(CLIENT, lab.eni(0, i % 2, 443));
        let sent = pattern(i as u64, 1000 + i * 4099);
        if i % 2 == 0 {
            let back = exchange(&mut lab, h, &sent);
            assert!(back == sent, "round {i}: the echo differs from what was sent");
        } else {
            lab.run_until("established", |lab| lab.socket(h).may_send());
            lab.socket(h).send_slice(&pattern(!(i as u64), 64 << 10)).unwrap();
            lab.socket(h).abort();
        }
        lab.run_until("the connection reaped", |lab| lab.open_connections() == 0);
    }
    assert_eq!(lab.report().conns.closed, ROUNDS as u64);
}

#[test]
fn upstream_down_means_connection_refused() {
    // Nothing listens on the upstream address.
    let mut lab = MemoryLab::new("memory.toml", &config("allow_non_tls = true"));
    let h = lab.connect(CLIENT, lab.eni(0, 0, 443));
    lab.run_until("the client's socket closed", |lab| lab.socket(h).state() == State::Closed);
    let r = lab.report();
    assert_eq!((r.conns.refused, r.conns.accepted), (1, 0), "an RST, not a silent drop: {:?}", r.conns);
    assert!(lab.elapsed() < Duration::from_secs(1), "refused at once, not after a retransmission");
}

/// A client connection to ENI a, established, and the service's end of it.
fn connected(lab: &mut MemoryLab) -> (smoltcp::iface::SocketHandle, MemoryPeer) {
    let h = lab.connect(CLIENT, lab.eni(0, 0, 443));
    let mut peer = None;
    lab.run_until("the service accepted", |lab| {
        if peer.is_none() {
            peer = lab.accept(UPSTREAM);
        }
        peer.is_some() && lab.socket(h).may_send()
    });
    (h, peer.expect("accepted"))
}

#[test]
fn resets_travel_both_ways() {
    let mut lab = MemoryLab::new("memory.toml", &config("allow_non_tls = true"));
    lab.listen(UPSTREAM);

    // The service resets: the client's socket is reset (closed without its FIN exchange).
    let (h, mut peer) = connected(&mut lab);
    peer.reset();
    lab.run_until("the client reset", |lab| lab.socket(h).state() == State::Closed);

    // The client resets: the service sees the reset.
    let (h, mut peer) = connected(&mut lab);
    lab.socket(h).send_slice(b"x").unwrap();
    let mut one = [0u8; 1];
    lab.run_until("the byte arrived", |_| peer.read(&mut one).is_ok());
    lab.socket(h).abort();
    lab.run_until("the service saw the reset", |_| peer.was_reset());
}

#[test]
fn udp_icmp_and_ipv6_get_nothing_and_are_counted() {
    let mut lab = echo_lab();
    lab.tap(true);
    let eni = lab.eni(0, 0, 443).ip().octets();
    for _ in 0..5 {
        lab.inject(sample::udp(sample::CLIENT, eni, 5000, 443, b"hello?"));
        lab.inject(sample::icmp_echo(sample::CLIENT, eni));
        lab.inject(sample::ipv6_tcp());
    }
    lab.wait(Duration::from_secs(1));
    assert!(lab.seen.is_empty(), "{} packets came back", lab.seen.len());
    let c = lab.report().counters;
    assert_eq!(c.dropped(DropReason::NotTcp), 10, "{c}");
    assert_eq!(c.dropped(DropReason::Ipv6), 5, "{c}");
    assert_eq!(c.to_stack, 0, "{c}");
}

#[test]
fn the_resolver_answers_the_private_name_with_the_enis_and_refuses_the_rest() {
    let mut lab = echo_lab();
    let resolver = SocketAddrV4::new(lab.plan.vpc.resolvers()[0], 53);
    let ask = |lab: &mut MemoryLab, id: u16, name: &str| {
        let q = probe::dns_query_bytes(id, name, "A", None).unwrap();
        lab.inject(sample::udp(sample::CLIENT, resolver.ip().octets(), 5353, 53, &q));
        lab.run_until("a DNS answer", |lab| !lab.udp.is_empty());
        let pkt = lab.udp.pop_front().unwrap();
        // IPv4 (20) + UDP (8) headers, then the answer.
        probe::dns_answer(&pkt[28..]).unwrap()
    };
    let a = ask(&mut lab, 1, EC2);
    let mut ips = a.ips.clone();
    ips.sort();
    let enis: Vec<Ipv4Addr> = (0..2).map(|i| *lab.eni(0, i, 443).ip()).collect();
    assert_eq!(ips, enis, "inside the VPC the service's usual name is the ENIs: {a:?}");
    let other = ask(&mut lab, 2, "example.com");
    assert_eq!(other.rcode, "Refused", "a resolver forwarding nothing refuses other names: {other:?}");
}

#[test]
fn a_security_group_drops_clients_outside_its_rule() {
    let only_b = config("allow_non_tls = true").replace(r#"cidr = "10.0.0.0/16" }]"#, r#"cidr = "10.0.2.0/24" }]"#);
    let mut lab = MemoryLab::new("memory.toml", &only_b);
    lab.serve(UPSTREAM, || Box::new(Echo::default()));
    let refused = lab.connect(CLIENT, lab.eni(0, 0, 443));
    lab.wait(Duration::from_secs(10));
    assert_eq!(lab.socket(refused).state(), State::SynSent, "no SYN-ACK, no RST: the group drops it");
    let g = lab.report().guard;
    assert!(g.sg_ingress >= 2, "the SYN and its retransmissions were rejected: {g:?}");
    let b = Ipv4Addr::new(10, 0, 2, 20);
    lab.add_client_address(b, 16);
    let allowed = lab.connect(b, lab.eni(0, 0, 443));
    assert_eq!(exchange(&mut lab, allowed, b"from subnet b"), b"from subnet b");
}

#[test]
fn a_stream_that_never_says_hello_is_reset_at_the_hello_timeout() {
    // The endpoint checks SNI (the default): a client that connects and says
    // nothing has `hello_timeout` (10 s) to send its ClientHello.
    let mut lab = MemoryLab::new("memory.toml", &config(""));
    lab.listen(UPSTREAM);
    let h = lab.connect(CLIENT, lab.eni(0, 0, 443));
    lab.run_until("established", |lab| lab.socket(h).may_send());
    let since = lab.elapsed();
    lab.run_until("the stream reset", |lab| lab.socket(h).state() == State::Closed);
    let waited = lab.elapsed() - since;
    assert!(waited >= Duration::from_secs(10), "reset after {waited:?}, before the deadline");
    assert!(waited < Duration::from_secs(11), "reset after {waited:?}: the deadline's timer was late");
    assert_eq!(lab.report().conns.sni_denied, 1);
    let mut peer = lab.accept(UPSTREAM).expect("the upstream was connected first");
    assert!(peer.was_reset(), "the upstream was reset too, and got no byte");
    assert!(peer.read(&mut [0u8; 1]).is_err());
}

#[test]
fn the_endpoint_policy_refuses_a_client_it_does_not_allow() {
    let policy = r#"policy = '{"Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:VpcSourceIp":"10.0.2.0/24"}}}]}'"#;
    let mut lab = MemoryLab::new("memory.toml", &config(&format!("allow_non_tls = true\n{policy}")));
    lab.serve(UPSTREAM, || Box::new(Echo::default()));
    let h = lab.connect(CLIENT, lab.eni(0, 0, 443));
    lab.run_until("refused", |lab| lab.socket(h).state() == State::Closed);
    let r = lab.report();
    assert_eq!((r.conns.policy_denied, r.conns.accepted), (1, 0), "{:?}", r.conns);
    let b = Ipv4Addr::new(10, 0, 2, 20);
    lab.add_client_address(b, 16);
    let ok = lab.connect(b, lab.eni(0, 1, 443));
    assert_eq!(exchange(&mut lab, ok, b"allowed"), b"allowed");
}

// ---- RFC 5961, spoofed sources, SYN floods, rule changes, the way back ----

/// A TCP segment from `src:sport` to `dst` with `flags`, `seq`, `ack` and `payload`.
fn segment(src: Ipv4Addr, sport: u16, dst: SocketAddrV4, flags: u8, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
    use privlink_core::packet::tcp_flags::{ACK, FIN, RST, SYN};
    let b = etherparse::PacketBuilder::ipv4(src.octets(), dst.ip().octets(), 64).tcp(sport, dst.port(), seq, 65535);
    let b = if flags & SYN != 0 { b.syn() } else { b };
    let b = if flags & RST != 0 { b.rst() } else { b };
    let b = if flags & FIN != 0 { b.fin() } else { b };
    let b = if flags & ACK != 0 { b.ack(ack) } else { b };
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

/// The client's local port on `h`.
fn port_of(lab: &mut MemoryLab, h: smoltcp::iface::SocketHandle) -> u16 {
    lab.socket(h).local_endpoint().expect("a connected socket").port
}

/// The TCP packets the stack sent to `client:port` (of [`MemoryLab::seen`]), parsed.
fn seen_by(lab: &MemoryLab, client: Ipv4Addr, port: u16) -> Vec<(PacketMeta, usize)> {
    lab.seen
        .iter()
        .filter_map(|p| packet::parse(p, true).ok().map(|m| (m, m.payload(p).len())))
        .filter(|(m, _)| m.protocol == packet::proto::TCP && m.dst == client && m.dst_port == port)
        .collect()
}

/// The stack's RCV.NXT and SND.NXT for `client:port`, as its last segment said.
fn eni_numbers(lab: &MemoryLab, client: Ipv4Addr, port: u16) -> (u32, u32) {
    let (m, len) = *seen_by(lab, client, port).last().expect("the stack sent something");
    (m.ack, m.seq.wrapping_add(len as u32))
}

/// Bare ACKs (no payload, no other flag) the stack sent to `client:port`, with their ACK numbers.
fn bare_acks(lab: &MemoryLab, client: Ipv4Addr, port: u16) -> Vec<u32> {
    seen_by(lab, client, port)
        .into_iter()
        .filter(|(m, len)| m.tcp_flags == tcp_flags::ACK && *len == 0)
        .map(|(m, _)| m.ack)
        .collect()
}

/// Reads what `h` has into `got`; `true` once the other side's FIN arrived.
fn drain(lab: &mut MemoryLab, h: smoltcp::iface::SocketHandle, got: &mut Vec<u8>) -> bool {
    let s = lab.socket(h);
    while s.can_recv() {
        s.recv(|b| {
            got.extend_from_slice(b);
            (b.len(), ())
        })
        .unwrap();
    }
    !s.may_recv() && s.state() != State::SynSent && s.state() != State::Closed
}

/// Reads `h` for up to `limit` of lab time, or until the other side's FIN.
fn download(lab: &mut MemoryLab, h: smoltcp::iface::SocketHandle, got: &mut Vec<u8>, limit: Duration) -> bool {
    let until = lab.elapsed() + limit;
    while lab.elapsed() < until {
        if drain(lab, h, got) {
            return true;
        }
        lab.wait(Duration::from_millis(50));
    }
    drain(lab, h, got)
}

/// Sends `msg` on `h` and reads the echo back (the connection stays open).
fn echo_once(lab: &mut MemoryLab, h: smoltcp::iface::SocketHandle, msg: &[u8]) -> Vec<u8> {
    lab.run_until("established", |lab| lab.socket(h).may_send());
    lab.socket(h).send_slice(msg).unwrap();
    let mut back = Vec::new();
    lab.run_until("the echo", |lab| {
        drain(lab, h, &mut back);
        back.len() >= msg.len()
    });
    back
}

/// A live connection of the memory lab's client, and the stack's numbers on it.
struct Live {
    h: smoltcp::iface::SocketHandle,
    eni: SocketAddrV4,
    port: u16,
    rcv_nxt: u32,
    snd_nxt: u32,
}

/// An echo lab with one connection that has echoed once, tapped from then on.
fn live_echo() -> (MemoryLab, Live) {
    let mut lab = echo_lab();
    lab.tap(true);
    let eni = lab.eni(0, 0, 443);
    let h = lab.connect(CLIENT, eni);
    assert_eq!(echo_once(&mut lab, h, b"hello"), b"hello");
    let port = port_of(&mut lab, h);
    let (rcv_nxt, snd_nxt) = eni_numbers(&lab, CLIENT, port);
    lab.seen.clear();
    (lab, Live { h, eni, port, rcv_nxt, snd_nxt })
}

fn is_download(got: &[u8]) -> bool {
    got.iter().enumerate().all(|(i, &b)| b == Download::byte(i))
}

#[test]
fn an_rst_in_the_window_but_not_at_rcv_nxt_does_not_cut_a_download() {
    // RFC 5961 §3.2: only an RST at RCV.NXT resets; one in the window gets a
    // challenge ACK; one outside it is dropped.
    const LEN: usize = 8 << 20;
    let mut lab = MemoryLab::new("memory.toml", &config("allow_non_tls = true"));
    lab.serve(UPSTREAM, || Box::new(Download::new(LEN)));
    lab.tap(true);
    let eni = lab.eni(0, 0, 443);
    let h = lab.connect(CLIENT, eni);
    let mut got = Vec::new();
    lab.run_until("the first MiB", |lab| {
        drain(lab, h, &mut got);
        got.len() >= 1 << 20
    });
    let port = port_of(&mut lab, h);
    let (rcv_nxt, _) = eni_numbers(&lab, CLIENT, port);
    lab.seen.clear();
    use privlink_core::packet::tcp_flags::{ACK, RST};
    for (flags, seq) in [
        (RST, rcv_nxt.wrapping_add(1000)),
        (RST | ACK, rcv_nxt.wrapping_add(5000)),
        (RST, rcv_nxt.wrapping_sub(1)),
        (RST | ACK, rcv_nxt.wrapping_add(1 << 31)),
    ] {
        lab.inject(segment(CLIENT, port, eni, flags, seq, 1, &[]));
    }
    let done = download(&mut lab, h, &mut got, Duration::from_secs(60));
    assert!(done && got.len() == LEN, "the download stopped at {} of {LEN} bytes", got.len());
    assert!(is_download(&got), "the bytes differ from the service's");
    let to_client = seen_by(&lab, CLIENT, port);
    assert!(to_client.iter().all(|(m, _)| m.tcp_flags & RST == 0), "the client was reset");
    assert!(bare_acks(&lab, CLIENT, port).contains(&rcv_nxt), "no challenge ACK at RCV.NXT");
    let c = lab.report().conns;
    assert_eq!((c.challenged, c.rfc5961_dropped), (2, 2), "{c:?}");

    // An RST exactly at RCV.NXT resets: the ENI's side goes, and the upstream is reset.
    let mut lab = MemoryLab::new("memory.toml", &config("allow_non_tls = true"));
    lab.listen(UPSTREAM);
    lab.tap(true);
    let h = lab.connect(CLIENT, eni);
    lab.run_until("established", |lab| lab.socket(h).may_send());
    lab.socket(h).send_slice(b"x").unwrap();
    let mut peer = None;
    lab.run_until("the byte upstream", |lab| {
        peer = peer.take().or_else(|| lab.accept(UPSTREAM));
        peer.as_mut().is_some_and(|p| p.read(&mut [0u8; 1]).is_ok())
    });
    let port = port_of(&mut lab, h);
    let (rcv_nxt, _) = eni_numbers(&lab, CLIENT, port);
    lab.inject(segment(CLIENT, port, eni, RST, rcv_nxt, 0, &[]));
    lab.run_until("the connection gone", |lab| lab.open_connections() == 0);
    assert!(peer.unwrap().was_reset(), "the service saw the reset");
}

#[test]
fn a_syn_on_an_established_connection_gets_a_challenge_ack() {
    // RFC 5961 §4: a SYN on a synchronized connection, whatever its sequence
    // number, gets a challenge ACK and changes nothing.
    let (mut lab, Live { h, eni, port, rcv_nxt, .. }) = live_echo();
    lab.inject(segment(CLIENT, port, eni, tcp_flags::SYN, 0x1234_5678, 0, &[]));
    lab.wait(Duration::from_millis(500));
    assert_eq!(
        bare_acks(&lab, CLIENT, port),
        [rcv_nxt],
        "one challenge ACK at RCV.NXT: {:?}",
        seen_by(&lab, CLIENT, port)
    );
    assert_eq!(echo_once(&mut lab, h, b"still here"), b"still here");
    assert_eq!((lab.open_connections(), lab.report().conns.challenged), (1, 1));
}

#[test]
fn acks_outside_the_acceptable_range_are_discarded_and_answered() {
    // RFC 5961 §5.2: an ACK outside SND.UNA − MAX.SND.WND ..= SND.NXT is
    // discarded, data and all, and answered with an ACK.
    let (mut lab, Live { h, eni, port, rcv_nxt, snd_nxt }) = live_echo();
    use privlink_core::packet::tcp_flags::ACK;
    for (what, ack) in [("beyond SND.NXT", snd_nxt.wrapping_add(100_000)), ("too old", snd_nxt.wrapping_sub(1 << 30))] {
        lab.seen.clear();
        lab.inject(segment(CLIENT, port, eni, ACK, rcv_nxt, ack, b"evil"));
        // Past smoltcp's throttle of one challenge ACK per second.
        lab.wait(Duration::from_millis(1100));
        assert_eq!(bare_acks(&lab, CLIENT, port), [rcv_nxt], "{what}: one ACK, of nothing new");
    }
    assert_eq!(echo_once(&mut lab, h, b"again"), b"again", "the injected bytes were not taken");
    // Both judged before smoltcp (smoltcp alone answers the first, and drops the second silently).
    assert_eq!(lab.report().conns.challenged, 2);
}

#[test]
fn sources_no_vpc_client_can_have_get_no_answer_and_no_connection() {
    let mut lab = MemoryLab::new("memory.toml", &config("allow_non_tls = true"));
    lab.listen(UPSTREAM);
    lab.tap(true);
    let eni = lab.eni(0, 0, 443);
    let resolver = lab.plan.vpc.resolvers()[0];
    let q = probe::dns_query_bytes(7, EC2, "A", None).unwrap();
    let spoofed = [
        Ipv4Addr::new(198, 51, 100, 7),
        Ipv4Addr::LOCALHOST,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::BROADCAST,
        Ipv4Addr::new(224, 0, 0, 1),
        *eni.ip(),
        resolver,
        Ipv4Addr::new(10, 0, 255, 255),
    ];
    for src in spoofed {
        lab.inject(sample::udp(src.octets(), resolver.octets(), 5353, 53, &q));
        lab.inject(segment(src, 40000, eni, tcp_flags::SYN, 1, 0, &[]));
    }
    lab.wait(Duration::from_secs(2));
    assert!(lab.seen.is_empty(), "{} packets went to spoofed sources", lab.seen.len());
    assert!(lab.accept(UPSTREAM).is_none(), "a spoofed SYN opened an upstream connection");
    let c = lab.report().counters;
    assert_eq!((c.dropped(DropReason::BadSource), c.to_dns, c.to_stack), (16, 0, 0), "{c}");
    // A real client still gets both.
    lab.inject(sample::udp(sample::CLIENT, resolver.octets(), 5353, 53, &q));
    lab.run_until("a DNS answer", |lab| !lab.udp.is_empty());
}

#[test]
fn a_syn_flood_from_one_address_leaves_other_clients_served() {
    // 3,000 SYNs from one address that never answers its SYN-ACKs, against an
    // endpoint of 1,000 connections, then 20 clients from another address.
    const FLOOD: u16 = 3000;
    const CLIENTS: usize = 20;
    let mut lab = MemoryLab::new("memory.toml", &config("allow_non_tls = true\nmax_connections = 1000"));
    lab.serve(UPSTREAM, || Box::new(Echo::default()));
    let eni = lab.eni(0, 0, 443);
    let flooder = Ipv4Addr::new(10, 0, 1, 66);
    for i in 0..FLOOD {
        lab.inject(segment(flooder, 1024 + i, eni, tcp_flags::SYN, u32::from(i) * 7919, 0, &[]));
    }
    lab.wait(Duration::from_millis(500));
    let flood_held = lab.half_open();
    let hs: Vec<_> = (0..CLIENTS).map(|_| lab.connect(CLIENT, eni)).collect();
    let mut served = 0;
    for h in hs {
        lab.run_until("the client's SYN answered or given up on", |lab| {
            lab.socket(h).may_send() || lab.elapsed() > Duration::from_secs(10)
        });
        if lab.socket(h).may_send() && echo_once(&mut lab, h, b"served") == b"served" {
            served += 1;
        }
    }
    let c = lab.report().counters;
    assert_eq!(served, CLIENTS, "clients served during the flood; the flood held {flood_held} half-open; {c}");
    assert_eq!(flood_held, privlink_core::admission::MAX_HALF_OPEN_PER_CLIENT, "{c}");
    let dropped = c.dropped(DropReason::ClientLimit);
    assert!(dropped >= u64::from(FLOOD) - flood_held as u64, "{c}");
}

/// The memory config with the endpoint's group open to all traffic both ways
/// (AWS does not track its flows), its rules as `ingress` and `egress`.
fn open_group(ingress: &str, egress: &str) -> String {
    // The group's table comes last in the config: its egress line follows it.
    config("allow_non_tls = true").replace(
        r#"ingress = [{ protocol = "tcp", ports = "443", cidr = "10.0.0.0/16" }]"#,
        &format!("ingress = [{ingress}]\negress = [{egress}]"),
    )
}

#[test]
fn narrowing_a_rule_of_an_untracked_flow_cuts_a_download() {
    // AWS: "An untracked flow of traffic is immediately interrupted if the
    // rule that enables the flow is removed or modified." The inbound rule,
    // the outbound one or both narrowed mid-download to a block without the client.
    const LEN: usize = 8 << 20;
    let all = r#"{ protocol = "all", cidr = "0.0.0.0/0" }"#;
    let narrow = r#"{ protocol = "all", cidr = "10.9.0.0/16" }"#;
    for (case, ingress, egress) in [("inbound", narrow, all), ("outbound", all, narrow), ("both", narrow, narrow)] {
        let mut lab = MemoryLab::new("memory.toml", &open_group(all, all));
        lab.serve(UPSTREAM, || Box::new(Download::new(LEN)));
        let h = lab.connect(CLIENT, lab.eni(0, 0, 443));
        let mut got = Vec::new();
        lab.run_until("the first MiB", |lab| {
            drain(lab, h, &mut got);
            got.len() >= 1 << 20
        });
        lab.set_rules("narrowed.toml", &open_group(ingress, egress));
        let at = got.len();
        download(&mut lab, h, &mut got, Duration::from_secs(30));
        // What was in flight may still arrive; the rest does not.
        assert!(got.len() < LEN, "{case} narrowed: the download finished ({} bytes after the reload)", got.len() - at);
        let g = lab.report().guard;
        assert!(g.sg_ingress + g.sg_egress > 0, "{case}: {g:?}");
    }
}

#[test]
fn a_syn_whose_syn_ack_the_nacl_drops_opens_no_upstream_connection() {
    // Subnet b's NACL lets everything in and nothing out: the SYN-ACK to a
    // client in subnet a could not leave, so nothing is connected upstream.
    let text = config("allow_non_tls = true")
        .replace(r#"az = "us-east-1b""#, "az = \"us-east-1b\"\nnetwork_acl = \"acl-in-only\"")
        + r#"
[[network_acl]]
id = "acl-in-only"
ingress = [{ rule = 100, protocol = "all", cidr = "0.0.0.0/0", action = "allow" }]
"#;
    let mut lab = MemoryLab::new("memory.toml", &text);
    lab.listen(UPSTREAM);
    let h = lab.connect(CLIENT, lab.eni(0, 1, 443));
    lab.wait(Duration::from_secs(5));
    assert_eq!(lab.socket(h).state(), State::SynSent, "the client heard nothing, as AWS's NACL drops the SYN-ACK");
    assert!(lab.accept(UPSTREAM).is_none(), "the service saw a phantom connection");
    let r = lab.report();
    assert_eq!(r.conns.accepted, 0, "{:?}", r.conns);
    assert!(r.guard.nacl_egress >= 2, "each SYN's SYN-ACK is counted as the NACL's reject: {:?}", r.guard);
    assert_eq!(lab.half_open(), 0);
}
