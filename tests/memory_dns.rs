//! The VPC resolver in the memory lab: DNS over TCP to the resolver address
//! from a client socket (floods of spoofed SYNs and of silent clients, the
//! idle timeout, pipelining behind a slow upstream) and forwarding with
//! failover, on lab time: a 30 s timeout takes no wall-clock time, and every
//! run is the same.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use etherparse::PacketBuilder;
use privlink::lab::memory::dns::MemoryDns;
use privlink::lab::memory::lab::MemoryLab;
use privlink::lab::probe::{self, DnsAnswer};
use privlink_core::config::DEMO_CONFIG;
use privlink_core::dns::{
    FORWARD_TRY_TIMEOUT, MAX_TCP_SESSIONS, MAX_TCP_SESSIONS_PER_SOURCE, TCP_IDLE_TIMEOUT, TCP_QUERY_TIMEOUT,
};
use privlink_core::packet::{self, sample, tcp_flags};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::State;

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 10);
const EC2: &str = "ec2.us-east-1.amazonaws.com";
const PUBLIC: &str = "www.example.com";
const PUBLIC_IP: Ipv4Addr = Ipv4Addr::new(93, 184, 215, 14);
const UPSTREAM_A: &str = "192.0.2.53:53";
const UPSTREAM_B: &str = "198.51.100.53:53";

/// The demo's VPC: an EC2 endpoint with private DNS in two subnets.
fn config() -> &'static str {
    DEMO_CONFIG
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn resolver(lab: &MemoryLab) -> SocketAddrV4 {
    SocketAddrV4::new(lab.plan.vpc.resolvers()[0], 53)
}

/// A length-prefixed query.
fn framed(id: u16, name: &str) -> Vec<u8> {
    let q = probe::dns_query_bytes(id, name, "A", None).unwrap();
    [(q.len() as u16).to_be_bytes().to_vec(), q].concat()
}

/// Connects a client socket to the resolver's TCP port.
fn connect(lab: &mut MemoryLab, src: Ipv4Addr) -> SocketHandle {
    let to = resolver(lab);
    let h = lab.connect(src, to);
    lab.run_until("connected to the resolver", |lab| lab.socket(h).may_send());
    h
}

/// Reads `n` answers off `h`, with the lab time each was complete at.
fn answers(lab: &mut MemoryLab, h: SocketHandle, n: usize) -> Vec<(Duration, u16, DnsAnswer)> {
    let (mut buf, mut got) = (Vec::new(), Vec::new());
    lab.run_until("the answers", |lab| {
        let mut chunk = [0u8; 4096];
        while let Ok(k) = lab.socket(h).recv_slice(&mut chunk) {
            if k == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..k]);
        }
        while buf.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
            if buf.len() < 2 + len {
                break;
            }
            let msg: Vec<u8> = buf.drain(..2 + len).skip(2).collect();
            let id = u16::from_be_bytes([msg[0], msg[1]]);
            got.push((lab.elapsed(), id, probe::dns_answer(&msg).unwrap()));
        }
        got.len() >= n
    });
    got
}

/// A query over UDP from the client; the answer.
fn ask_udp(lab: &mut MemoryLab, id: u16, name: &str) -> DnsAnswer {
    let q = probe::dns_query_bytes(id, name, "A", None).unwrap();
    let to = resolver(lab).ip().octets();
    lab.inject(sample::udp(sample::CLIENT, to, 5353, 53, &q));
    lab.run_until("a UDP answer", |lab| !lab.udp.is_empty());
    let pkt = lab.udp.pop_front().unwrap();
    probe::dns_answer(&pkt[28..]).unwrap()
}

fn enis(lab: &MemoryLab) -> Vec<Ipv4Addr> {
    let mut ips: Vec<Ipv4Addr> = (0..2).map(|i| *lab.eni(0, i, 443).ip()).collect();
    ips.sort();
    ips
}

/// A private query over TCP from a real client: the answer, and the lab time it took.
fn private_over_tcp(lab: &mut MemoryLab, src: Ipv4Addr) -> (DnsAnswer, Duration) {
    let start = lab.elapsed();
    let h = connect(lab, src);
    lab.socket(h).send_slice(&framed(0x600d, EC2)).unwrap();
    let (at, id, a) = answers(lab, h, 1).remove(0);
    assert_eq!(id, 0x600d);
    (a, at - start)
}

/// The `n`th spoofed source: 10.0.4.0 and up, addresses no client has.
fn spoofed(n: usize) -> [u8; 4] {
    (Ipv4Addr::new(10, 0, 4, 0).to_bits() + n as u32).to_be_bytes()
}

#[test]
fn a_flood_of_spoofed_syns_does_not_lock_dns_over_tcp_out() {
    for (what, source) in [("1,100 sources", spoofed as fn(usize) -> [u8; 4]), ("one source", |_| spoofed(0))] {
        let mut lab = MemoryLab::new("demo.toml", config());
        let to = resolver(&lab).ip().octets();
        // 1,100 SYNs, more than the 1,024 half-open slots the old design had; nobody ACKs.
        for i in 0..1100 {
            lab.inject(sample::tcp(source(i), to, 20000 + i as u16, 53, true, &[]));
        }
        lab.run_until("the flood taken in", |lab| lab.report().dns_tcp.opened == 1100);
        let tcp = lab.report().dns_tcp;
        let kept = if what == "one source" { MAX_TCP_SESSIONS_PER_SOURCE } else { MAX_TCP_SESSIONS };
        assert_eq!(tcp.evicted, (1100 - kept) as u64, "{what}: {tcp:?}");
        // The UDP path is untouched, and a real client over TCP is answered at once.
        let mut udp = ask_udp(&mut lab, 7, EC2).ips;
        udp.sort();
        assert_eq!(udp, enis(&lab), "{what}: UDP");
        let (a, took) = private_over_tcp(&mut lab, CLIENT);
        let mut ips = a.ips.clone();
        ips.sort();
        assert_eq!(ips, enis(&lab), "{what}: TCP");
        assert!(took < Duration::from_millis(100), "{what}: answered after {took:?} of lab time");
        // The half-open ones are reset at the query timeout, not smoltcp's 300 s.
        lab.wait(TCP_QUERY_TIMEOUT + Duration::from_secs(1));
        let open = lab.open_connections();
        assert!(open <= 1, "{what}: {open} connections still open after {TCP_QUERY_TIMEOUT:?}");
    }
}

/// A client made of raw packets from `src`: its handshake, then `payload`, then silence.
fn silent_client(lab: &mut MemoryLab, src: [u8; 4], port: u16, payload: &[u8]) {
    let to = resolver(lab).ip().octets();
    lab.seen.clear();
    lab.inject(sample::tcp(src, to, port, 53, true, &[]));
    let mut isn = None;
    lab.run_until("a SYN-ACK", |lab| {
        isn = lab.seen.iter().find_map(|p| {
            let m = packet::parse(p, false).ok()?;
            let synack = m.tcp_flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN | tcp_flags::ACK;
            (m.dst.octets() == src && m.dst_port == port && synack).then_some(m.seq)
        });
        isn.is_some()
    });
    let mut ack = Vec::new();
    // sample::tcp's SYN has seq 1000: the first byte is 1001.
    PacketBuilder::ipv4(src, to, 64)
        .tcp(port, 53, 1001, 65535)
        .ack(isn.unwrap().wrapping_add(1))
        .write(&mut ack, payload)
        .unwrap();
    lab.inject(ack);
}

#[test]
fn clients_that_announce_a_query_and_go_silent_do_not_lock_dns_over_tcp_out() {
    let mut lab = MemoryLab::new("demo.toml", config());
    lab.tap(true);
    // 1,024 clients ask for a 65,535-byte query that no query is: each is reset at once.
    for i in 0..1024 {
        silent_client(&mut lab, spoofed(i), 30000, &[0xFF, 0xFF]);
    }
    lab.run_until("the liars reset", |lab| lab.report().dns_tcp.invalid == 1024);
    // 1,024 more announce a plausible 64-byte query, send 10 bytes of it and stop.
    for i in 0..1024 {
        silent_client(&mut lab, spoofed(i), 30001, &[0, 64, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    }
    lab.tap(false);
    lab.seen.clear();
    lab.run_until("the silent ones held", |lab| lab.report().dns_tcp.opened == 2048);
    let (a, took) = private_over_tcp(&mut lab, CLIENT);
    assert_eq!(a.ips.len(), 2, "{a:?}");
    assert!(took < Duration::from_millis(100), "answered after {took:?} of lab time");
    assert_eq!(lab.report().dns_tcp.evicted, 1, "room made for the real client: {:?}", lab.report().dns_tcp);
    // Their query never completes: each is reset at the query timeout.
    lab.wait(TCP_QUERY_TIMEOUT + Duration::from_secs(1));
    let tcp = lab.report().dns_tcp;
    assert_eq!(tcp.timed_out, 1023, "{tcp:?}");
}

#[test]
fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let mut lab = MemoryLab::new("demo.toml", config());
    let h = connect(&mut lab, CLIENT);
    lab.socket(h).send_slice(&framed(1, EC2)).unwrap();
    let (answered, _, _) = answers(&mut lab, h, 1).remove(0);
    lab.wait(TCP_IDLE_TIMEOUT - Duration::from_secs(1));
    assert_eq!(lab.socket(h).state(), State::Established, "closed before the idle timeout");
    lab.run_until("the server's FIN", |lab| lab.socket(h).state() == State::CloseWait);
    let idle = lab.elapsed() - answered;
    assert!(idle >= TCP_IDLE_TIMEOUT && idle < TCP_IDLE_TIMEOUT + Duration::from_secs(1), "closed after {idle:?}");
    lab.socket(h).close();
    lab.run_until("closed both ways", |lab| lab.open_connections() == 0);
    let tcp = lab.report().dns_tcp;
    assert_eq!((tcp.idle_closed, tcp.timed_out), (1, 0), "{tcp:?}");
}

/// Names the upstream B answers, all with [`PUBLIC_IP`].
const B_NAMES: [&str; 3] = [PUBLIC, "other.example.com", "tcp.example.com"];

/// A lab forwarding to `forward` over in-memory upstreams: B answers
/// [`B_NAMES`] after `delay`; A is not there unless `a_answers`.
fn forwarding_lab(forward: &[&str], delay: Duration, a_answers: bool) -> MemoryLab {
    let records: Vec<(&str, Ipv4Addr)> = B_NAMES.iter().map(|n| (*n, PUBLIC_IP)).collect();
    let mut dns = MemoryDns::default().server(addr(UPSTREAM_B), &records, delay);
    if a_answers {
        dns = dns.server(addr(UPSTREAM_A), &[(PUBLIC, Ipv4Addr::new(192, 0, 2, 80))], Duration::ZERO);
    }
    let forward: Vec<SocketAddr> = forward.iter().map(|s| addr(s)).collect();
    MemoryLab::with_upstream_dns("demo.toml", config(), &forward, dns)
}

#[test]
fn pipelined_queries_are_answered_as_they_are_ready() {
    const SLOW: Duration = Duration::from_millis(1500);
    let mut lab = forwarding_lab(&[UPSTREAM_B], SLOW, false);
    let h = connect(&mut lab, CLIENT);
    let sent = lab.elapsed();
    // A forwarded query whose upstream takes 1.5 s, then a private one, in one write.
    let both = [framed(1, PUBLIC), framed(2, EC2)].concat();
    lab.socket(h).send_slice(&both).unwrap();
    let got = answers(&mut lab, h, 2);
    let order: Vec<u16> = got.iter().map(|(_, id, _)| *id).collect();
    assert_eq!(order, [2, 1], "the private answer waits for the slow one");
    let private = got[0].0 - sent;
    let forwarded = got[1].0 - sent;
    assert!(private < Duration::from_millis(100), "private answer after {private:?}");
    assert!(forwarded >= SLOW && forwarded < SLOW + Duration::from_millis(100), "forwarded after {forwarded:?}");
    assert_eq!(got[1].2.ips, [PUBLIC_IP]);
    assert_eq!(got[0].2.ips.len(), 2);
}

#[test]
fn forwarding_uses_the_list_in_order_and_fails_over() {
    // A never answers: the query goes to B after one try timeout, and the next one to B at once.
    let mut lab = forwarding_lab(&[UPSTREAM_A, UPSTREAM_B], Duration::ZERO, false);
    let start = lab.elapsed();
    let a = ask_udp(&mut lab, 1, PUBLIC);
    assert_eq!(a.ips, [PUBLIC_IP]);
    let first = lab.elapsed() - start;
    assert!(first >= FORWARD_TRY_TIMEOUT && first < FORWARD_TRY_TIMEOUT + Duration::from_millis(100), "{first:?}");
    let start = lab.elapsed();
    assert_eq!(ask_udp(&mut lab, 2, B_NAMES[1]).ips, [PUBLIC_IP]);
    assert!(lab.elapsed() - start < Duration::from_millis(100), "A, held down, was asked again");
    // Over TCP too.
    let h = connect(&mut lab, CLIENT);
    lab.socket(h).send_slice(&framed(3, B_NAMES[2])).unwrap();
    assert_eq!(answers(&mut lab, h, 1)[0].2.ips, [PUBLIC_IP]);
    let f = lab.report().forward;
    assert_eq!((f.failovers, f.answered), (1, 3), "{f:?}");

    // When A answers, it is the only one asked.
    let mut lab = forwarding_lab(&[UPSTREAM_A, UPSTREAM_B], Duration::ZERO, true);
    assert_eq!(ask_udp(&mut lab, 1, PUBLIC).ips, [Ipv4Addr::new(192, 0, 2, 80)]);
    assert_eq!(lab.report().forward.failovers, 0);
}

#[test]
fn forwarded_queries_carry_random_ids_not_the_clients() {
    let dns = MemoryDns::default().server(addr(UPSTREAM_B), &[(PUBLIC, PUBLIC_IP)], Duration::ZERO);
    let received = dns.received();
    let mut lab = MemoryLab::with_upstream_dns("demo.toml", config(), &[addr(UPSTREAM_B)], dns);
    for i in 0..64u16 {
        // Names the cache has not seen, each from id 0x0100 + i.
        let name = format!("n{i}.{PUBLIC}");
        let q = probe::dns_query_bytes(0x0100 + i, &name, "A", Some(1232)).unwrap();
        let to = resolver(&lab).ip().octets();
        lab.inject(sample::udp(sample::CLIENT, to, 5353, 53, &q));
        lab.run_until("an answer", |lab| !lab.udp.is_empty());
        lab.udp.clear();
    }
    let ids: Vec<u16> = received.lock().unwrap().iter().map(|r| u16::from_be_bytes([r.bytes[0], r.bytes[1]])).collect();
    assert_eq!(ids.len(), 64);
    // A counter, whatever its step, repeats one difference; random ids almost never do.
    let mut steps: Vec<u16> = ids.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
    steps.sort_unstable();
    steps.dedup();
    assert!(steps.len() >= 55, "ids that follow a pattern: {ids:?}");
}
