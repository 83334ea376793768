//! The data path in memory: a client TCP stack in the VPC, one queue's stack
//! on the ENI (pipeline, security groups, NACLs, DNS responder, relay) and
//! in-process services. No root, no TUN, no clock: these run everywhere, and
//! lab time makes 10 s timeouts instant and every run the same.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use common::pattern;
use privlink::lab::memory::https::Https;
use privlink::lab::memory::lab::{Echo, MemoryLab};
use privlink::lab::memory::pipe::MemoryPeer;
use privlink::lab::probe;
use privlink::lab::standin::ServiceCert;
use privlink_core::packet::sample;
use privlink_core::packet::DropReason;
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
