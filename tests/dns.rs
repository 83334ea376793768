//! The VPC resolver, end to end: queries from inside a namespace made by each
//! test to the resolver addresses on the TUN, answered from the private zone
//! or forwarded to loopback stand-ins for the public DNS: one that plays a
//! few names, one that ignores size limits, one that records where its
//! queries come from, one that never answers. Forwarding goes to the list in
//! order, with failover, from a random port and id per query.

mod common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{config, counter, netns_available, unique, Lab};
use privlink::lab::probe::{self, DnsAnswer};
use privlink::lab::standin::PublicDns;

const EC2: &str = "ec2.us-east-1.amazonaws.com";
const PUBLIC_EC2: Ipv4Addr = Ipv4Addr::new(52, 46, 154, 170);
const OTHER: &str = "sts.us-east-1.amazonaws.com";
const PUBLIC_OTHER: Ipv4Addr = Ipv4Addr::new(52, 46, 136, 4);
const RESOLVER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 53);
const LINK_LOCAL: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(169, 254, 169, 253), 53);

struct Fixture {
    _rt: tokio::runtime::Runtime,
    public: SocketAddrV4,
    _dns: PublicDns,
}

fn public_dns() -> Fixture {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dns = rt.block_on(PublicDns::start(&[(EC2, PUBLIC_EC2), (OTHER, PUBLIC_OTHER)])).unwrap();
    let SocketAddr::V4(public) = dns.addr else { unreachable!() };
    Fixture { _rt: rt, public, _dns: dns }
}

/// One endpoint in two AZs with fixed IPs and a fixed id, forwarding to `forward`.
fn dns_config(ns: &str, forward: &str, extra: &str) -> String {
    let mut c = config(
        ns,
        "127.0.0.1:9",
        &format!("id = \"vpce-0123456789abcdef0\"\nips = {{ \"subnet-a\" = \"10.0.1.49\", \"subnet-b\" = \"10.0.2.49\" }}\n{extra}"),
    );
    c.push_str(&format!("\n[dns]\nforward = [{forward}]\n"));
    c
}

fn ask(ns: &str, server: SocketAddrV4, name: &str, rtype: &str) -> DnsAnswer {
    probe::dns_udp(Some(ns), server, name, rtype).unwrap_or_else(|e| panic!("{name} {rtype}: {e}"))
}

fn ips(list: &[&str]) -> Vec<Ipv4Addr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

/// The endpoint-specific names carry a suffix kept in the state dir: read them from the plan.
fn specific_names(lab: &Lab) -> Vec<String> {
    lab.stdout().iter().filter_map(|l| l.trim().strip_prefix("dns vpce-").map(|n| format!("vpce-{n}"))).collect()
}

#[test]
fn inside_the_vpc_the_name_is_private_outside_public() {
    if !netns_available("inside_the_vpc_the_name_is_private_outside_public") {
        return;
    }
    let fx = public_dns();
    let ns = unique("plkd");
    let lab = Lab::start(&ns, &dns_config(&ns, &format!("\"{}\"", fx.public), ""));

    let outside = probe::dns_udp(None, fx.public, EC2, "A").unwrap();
    assert_eq!(outside.ips, [PUBLIC_EC2]);
    for server in [RESOLVER, LINK_LOCAL] {
        let inside = ask(&ns, server, EC2, "A");
        assert_eq!(inside.rcode, "NoError");
        assert_eq!(inside.ips, ips(&["10.0.1.49", "10.0.2.49"]), "all ENI IPs, one per AZ");
        assert!(inside.authoritative);
    }
    // A name with no endpoint is forwarded: the public answer, inside too.
    assert_eq!(ask(&ns, RESOLVER, OTHER, "A").ips, [PUBLIC_OTHER]);

    // Endpoint-specific names: regional = all IPs, zonal = that AZ's.
    let names = specific_names(&lab);
    assert_eq!(names.len(), 3, "{names:?}");
    let regional = names.iter().find(|n| !n.contains("-us-east-1a") && !n.contains("-us-east-1b")).unwrap();
    assert!(
        regional.starts_with("vpce-0123456789abcdef0-") && regional.ends_with(".ec2.us-east-1.vpce.amazonaws.com"),
        "{regional}"
    );
    assert_eq!(ask(&ns, RESOLVER, regional, "A").ips, ips(&["10.0.1.49", "10.0.2.49"]));
    let zonal_b = names.iter().find(|n| n.contains("-us-east-1b.")).unwrap();
    assert_eq!(ask(&ns, RESOLVER, zonal_b, "A").ips, ips(&["10.0.2.49"]));

    // The private zone shadows the public one: a name under it with no record is NXDOMAIN.
    let shadow = ask(&ns, RESOLVER, &format!("nothing-here.{EC2}"), "A");
    assert_eq!((shadow.rcode.as_str(), shadow.soa), ("NXDomain", true));
    // IPv4-only endpoint: AAAA is NODATA (NOERROR, no answer, SOA), never NXDOMAIN.
    let aaaa = ask(&ns, RESOLVER, EC2, "AAAA");
    assert_eq!((aaaa.rcode.as_str(), aaaa.ips.len(), aaaa.other_answers, aaaa.soa), ("NoError", 0, 0, true));

    // The same answers over TCP, through the ENI's connect-first relay.
    let tcp = probe::dns_tcp(&ns, RESOLVER, EC2, "A").unwrap();
    assert_eq!(tcp.ips, ips(&["10.0.1.49", "10.0.2.49"]));
    assert_eq!(probe::dns_tcp(&ns, RESOLVER, OTHER, "A").unwrap().ips, [PUBLIC_OTHER], "forwarded over TCP");

    // `ip netns exec` programs find the resolver: privlink wrote resolv.conf for the namespace it made.
    let resolv = std::fs::read_to_string(format!("/etc/netns/{ns}/resolv.conf")).unwrap();
    assert!(resolv.contains("nameserver 10.0.0.2"), "{resolv}");

    let counters = lab.stop();
    // The queries above, UDP and TCP: 5 answered from the zone, 2 forwarded, 1 NXDOMAIN, 1 NODATA.
    assert_eq!(counter(&counters, "queries"), 9, "{counters}");
    assert_eq!(counter(&counters, "answered"), 5, "{counters}");
    assert_eq!(counter(&counters, "forwarded"), 2, "{counters}");
    assert_eq!(counter(&counters, "nxdomain"), 1, "{counters}");
    assert_eq!(counter(&counters, "nodata"), 1, "{counters}");
    assert!(!std::path::Path::new(&format!("/etc/netns/{ns}")).exists(), "resolv.conf left behind");
}

#[test]
fn privacy_mode_refuses_everything_else() {
    if !netns_available("privacy_mode_refuses_everything_else") {
        return;
    }
    let ns = unique("plkd");
    let lab = Lab::start(&ns, &dns_config(&ns, "", ""));
    assert_eq!(ask(&ns, RESOLVER, EC2, "A").ips, ips(&["10.0.1.49", "10.0.2.49"]));
    for name in [OTHER, "example.com", "leak.test"] {
        let a = ask(&ns, RESOLVER, name, "A");
        assert_eq!((a.rcode.as_str(), a.ips.len()), ("Refused", 0), "{name}");
    }
    // DNS over TCP is served from inside the VPC, and nothing of privlink's
    // listens outside it for any local process to ask the private zone.
    assert_eq!(probe::dns_tcp(&ns, RESOLVER, EC2, "A").unwrap().ips.len(), 2);
    let ports = listening_tcp_ports(lab.pid());
    assert!(ports.is_empty(), "privlink listens on the host on TCP {ports:?}");
    let counters = lab.stop();
    assert_eq!(counter(&counters, "forwarded"), 0, "{counters}");
    assert_eq!(counter(&counters, "refused"), 3, "{counters}");
}

#[test]
fn private_dns_switched_off_at_run_time() {
    if !netns_available("private_dns_switched_off_at_run_time") {
        return;
    }
    let fx = public_dns();
    let ns = unique("plkd");
    let forward = format!("\"{}\"", fx.public);
    let lab = Lab::start(&ns, &dns_config(&ns, &forward, "private_dns = true"));
    assert_eq!(ask(&ns, RESOLVER, EC2, "A").ips, ips(&["10.0.1.49", "10.0.2.49"]));
    let regional =
        specific_names(&lab).into_iter().find(|n| !n.contains("-us-east-1a.") && !n.contains("-us-east-1b.")).unwrap();

    lab.reload(&dns_config(&ns, &forward, "private_dns = false"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut answer = ask(&ns, RESOLVER, EC2, "A");
    while answer.ips != [PUBLIC_EC2] && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        answer = ask(&ns, RESOLVER, EC2, "A");
    }
    assert_eq!(answer.ips, [PUBLIC_EC2], "with private DNS off the default name gets the public answer");
    assert_eq!(
        ask(&ns, RESOLVER, &regional, "A").ips,
        ips(&["10.0.1.49", "10.0.2.49"]),
        "endpoint-specific names stay"
    );

    // And back on.
    lab.reload(&dns_config(&ns, &forward, "private_dns = true"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while ask(&ns, RESOLVER, EC2, "A").ips != ips(&["10.0.1.49", "10.0.2.49"]) {
        assert!(Instant::now() < deadline, "private DNS did not come back on");
        std::thread::sleep(Duration::from_millis(50));
    }
    lab.stop();
}

#[test]
fn truncated_over_udp_whole_over_tcp() {
    if !netns_available("truncated_over_udp_whole_over_tcp") {
        return;
    }
    // A custom service in 40 AZs: its name has 40 A records, more than 512 bytes.
    const AZS: usize = 40;
    let ns = unique("plkd");
    let mut c = format!("[vpc]\ncidr = \"10.0.0.0/16\"\nregion = \"us-east-1\"\nnetns = \"{ns}\"\n");
    let mut subnets = Vec::new();
    for i in 0..AZS {
        c.push_str(&format!("[[subnet]]\nid = \"s{i}\"\ncidr = \"10.0.{}.0/28\"\naz = \"us-east-1-az{i}\"\n", i + 10));
        subnets.push(format!("\"s{i}\""));
    }
    c.push_str(&format!(
        "[[endpoint]]\nservice = \"com.example.api\"\ndns_names = [\"api.example.com\"]\nsubnets = [{}]\nupstream = \"127.0.0.1:9\"\n[dns]\nforward = []\n",
        subnets.join(", ")
    ));
    let lab = Lab::start(&ns, &c);
    let udp = ask(&ns, RESOLVER, "api.example.com", "A");
    assert!(udp.truncated, "{udp:?}");
    assert!(udp.ips.is_empty(), "a truncated answer carries no partial record set");
    let tcp = probe::dns_tcp(&ns, RESOLVER, "api.example.com", "A").unwrap();
    assert!(!tcp.truncated);
    assert_eq!(tcp.ips.len(), AZS);
    let counters = lab.stop();
    assert!(counter(&counters, "truncated") >= 1, "{counters}");
}

/// A stand-in upstream resolver that ignores the client's size limit: every
/// UDP query gets `n` A records, EDNS or not. Lives until the test process ends.
fn oversized_upstream(n: u8) -> SocketAddrV4 {
    use hickory_proto::op::{Message, OpCode};
    use hickory_proto::rr::{rdata::A, RData, Record};
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let SocketAddr::V4(addr) = sock.local_addr().unwrap() else { unreachable!() };
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((len, from)) = sock.recv_from(&mut buf) {
            let Ok(query) = Message::from_vec(&buf[..len]) else { continue };
            let mut answer = Message::response(query.metadata.id, OpCode::Query);
            answer.metadata.recursion_desired = query.metadata.recursion_desired;
            answer.metadata.recursion_available = true;
            answer.edns = query.edns.clone();
            let name = query.queries[0].name().clone();
            answer.add_query(query.queries[0].clone());
            for i in 0..n {
                answer.add_answer(Record::from_rdata(name.clone(), 60, RData::A(A::new(198, 51, 100, i))));
            }
            let _ = sock.send_to(&answer.to_vec().unwrap(), from);
        }
    });
    addr
}

#[test]
fn an_oversized_forwarded_answer_is_truncated_for_a_client_without_edns() {
    if !netns_available("an_oversized_forwarded_answer_is_truncated_for_a_client_without_edns") {
        return;
    }
    const RECORDS: u8 = 40;
    let upstream = oversized_upstream(RECORDS);
    let ns = unique("plkd");
    let lab = Lab::start(&ns, &dns_config(&ns, &format!("\"{upstream}\""), ""));

    // Without EDNS: the header with TC and the question, no records, so the client retries over TCP.
    let plain = ask(&ns, RESOLVER, OTHER, "A");
    assert!(plain.truncated, "{plain:?}");
    assert_eq!((plain.rcode.as_str(), plain.ips.len()), ("NoError", 0));

    // With EDNS the answer passes whole: the upstream saw the client's size and chose.
    let q = probe::dns_query_bytes(0x7c7c, OTHER, "A", Some(1232)).unwrap();
    let reply = probe::udp_exchange(&ns, RESOLVER, &q, Duration::from_secs(3)).unwrap().expect("an answer");
    let whole = probe::dns_answer(&reply).unwrap();
    assert!(!whole.truncated, "{whole:?}");
    assert_eq!(whole.ips.len(), usize::from(RECORDS));

    let counters = lab.stop();
    assert_eq!(counter(&counters, "forwarded"), 2, "{counters}");
}

/// Where each UDP query a stand-in received came from, and its id.
type Seen = Arc<Mutex<Vec<(SocketAddr, u16)>>>;

/// A stand-in upstream that answers every A query with `ip`, over UDP and
/// TCP on one port, and records the source address and id of each UDP
/// query. Lives until the test process ends.
fn recording_upstream(ip: Ipv4Addr) -> (SocketAddrV4, Seen) {
    use hickory_proto::op::{Message, OpCode};
    use hickory_proto::rr::{rdata::A, RData, Record};
    use std::io::{Read, Write};
    fn answer(query: &[u8], ip: Ipv4Addr) -> Option<(u16, Vec<u8>)> {
        let query = Message::from_vec(query).ok()?;
        let mut answer = Message::response(query.metadata.id, OpCode::Query);
        answer.metadata.recursion_desired = query.metadata.recursion_desired;
        answer.metadata.recursion_available = true;
        answer.edns = query.edns.clone();
        answer.add_query(query.queries[0].clone());
        answer.add_answer(Record::from_rdata(query.queries[0].name().clone(), 60, RData::A(A(ip))));
        Some((query.metadata.id, answer.to_vec().ok()?))
    }
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let SocketAddr::V4(addr) = tcp.local_addr().unwrap() else { unreachable!() };
    let sock = UdpSocket::bind(addr).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((len, from)) = sock.recv_from(&mut buf) {
            let Some((id, reply)) = answer(&buf[..len], ip) else { continue };
            log.lock().unwrap().push((from, id));
            let _ = sock.send_to(&reply, from);
        }
    });
    std::thread::spawn(move || {
        for mut s in tcp.incoming().map_while(Result::ok) {
            let mut len = [0u8; 2];
            let mut query = Vec::new();
            if s.read_exact(&mut len).is_ok() {
                query.resize(usize::from(u16::from_be_bytes(len)), 0);
            }
            if let Some((_, reply)) = s.read_exact(&mut query).ok().and_then(|()| answer(&query, ip)) {
                let _ = s.write_all(&[(reply.len() as u16).to_be_bytes().as_slice(), &reply].concat());
            }
        }
    });
    (addr, seen)
}

/// A stand-in upstream that takes every query and answers none; counts them.
fn black_hole() -> (SocketAddrV4, Arc<Mutex<usize>>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let SocketAddr::V4(addr) = sock.local_addr().unwrap() else { unreachable!() };
    let count = Arc::new(Mutex::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while sock.recv_from(&mut buf).is_ok() {
            *c.lock().unwrap() += 1;
        }
    });
    (addr, count)
}

/// A loopback port nobody listens on (UDP or TCP): bound, then let go.
fn closed_port() -> SocketAddrV4 {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let SocketAddr::V4(addr) = sock.local_addr().unwrap() else { unreachable!() };
    addr
}

/// Asks over UDP with a wait long enough for any failover (a bound, not a measurement).
fn ask_patiently(ns: &str, name: &str) -> DnsAnswer {
    let q = probe::dns_query_bytes(0x4a4a, name, "A", None).unwrap();
    let reply = probe::udp_exchange(ns, RESOLVER, &q, Duration::from_secs(15)).unwrap();
    probe::dns_answer(&reply.unwrap_or_else(|| panic!("no answer for {name}"))).unwrap()
}

#[test]
fn forwarded_queries_come_from_a_random_port_and_id_each() {
    if !netns_available("forwarded_queries_come_from_a_random_port_and_id_each") {
        return;
    }
    const QUERIES: usize = 20;
    let (upstream, seen) = recording_upstream(PUBLIC_OTHER);
    let ns = unique("plkd");
    let lab = Lab::start(&ns, &dns_config(&ns, &format!("\"{upstream}\""), ""));
    for i in 0..QUERIES {
        // A name per query, so none is answered from the cache.
        assert_eq!(ask(&ns, RESOLVER, &format!("q{i}.example.net"), "A").ips, [PUBLIC_OTHER]);
    }
    lab.stop();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), QUERIES, "{seen:?}");
    let mut ports: Vec<u16> = seen.iter().map(|(from, _)| from.port()).collect();
    ports.sort_unstable();
    ports.dedup();
    // Random ports from a range of thousands: a repeat among 20 is rare, many would not be.
    assert!(ports.len() >= QUERIES - 2, "{} source ports for {QUERIES} queries: {seen:?}", ports.len());
    let ids: Vec<u16> = seen.iter().map(|(_, id)| *id).collect();
    // A counter, whatever its step, repeats one difference; random ids almost never do.
    let mut steps: Vec<u16> = ids.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
    steps.sort_unstable();
    steps.dedup();
    assert!(steps.len() >= QUERIES - 3, "ids that follow a pattern: {ids:?}");
    assert!(!ids.contains(&0x5a5a), "the client's own id went upstream: {ids:?}");
}

#[test]
fn forwarding_fails_over_in_order_over_udp_and_tcp() {
    if !netns_available("forwarding_fails_over_in_order_over_udp_and_tcp") {
        return;
    }
    let fx = public_dns();
    let (silent, asked) = black_hole();
    let ns = unique("plkd");
    // The first forwarder takes queries and answers none; the second is the stand-in. One
    // queue: each queue's resolver learns on its own that a forwarder does not answer.
    let config = dns_config(&ns, &format!("\"{silent}\", \"{}\"", fx.public), "")
        .replace(&format!("netns = \"{ns}\""), &format!("netns = \"{ns}\"\nqueues = 1"));
    let lab = Lab::start(&ns, &config);
    assert_eq!(ask_patiently(&ns, OTHER).ips, [PUBLIC_OTHER], "answered by the second forwarder");
    // The silent one is held down: the next queries go to the second at once.
    assert_eq!(ask(&ns, RESOLVER, EC2, "A").ips.len(), 2, "private names never leave");
    let public = ask_patiently(&ns, &format!("nothing-here.{OTHER}"));
    assert_eq!(public.rcode, "NXDomain", "{public:?}");
    assert_eq!(*asked.lock().unwrap(), 1, "the unresponsive forwarder was asked again");
    lab.stop();

    // A forwarder that refuses (nothing listens) fails over at once, over TCP too.
    let closed = closed_port();
    let ns = unique("plkd");
    let lab = Lab::start(&ns, &dns_config(&ns, &format!("\"{closed}\", \"{}\"", fx.public), ""));
    assert_eq!(probe::dns_tcp(&ns, RESOLVER, OTHER, "A").unwrap().ips, [PUBLIC_OTHER], "over TCP");
    assert_eq!(ask_patiently(&ns, &format!("nothing-here.{OTHER}")).rcode, "NXDomain", "over UDP");
    let counters = lab.stop();
    assert!(counter(&counters, "failovers") >= 1, "{counters}");
}

#[test]
fn a_reload_changes_the_forwarders_and_says_so() {
    if !netns_available("a_reload_changes_the_forwarders_and_says_so") {
        return;
    }
    let (first, _) = recording_upstream(Ipv4Addr::new(192, 0, 2, 1));
    let (second, _) = recording_upstream(Ipv4Addr::new(192, 0, 2, 2));
    let ns = unique("plkd");
    let lab = Lab::start(&ns, &dns_config(&ns, &format!("\"{first}\""), ""));
    assert_eq!(ask(&ns, RESOLVER, "before.example.net", "A").ips, [Ipv4Addr::new(192, 0, 2, 1)]);
    lab.reload(&dns_config(&ns, &format!("\"{second}\""), ""));
    let line = lab.stdout().into_iter().rfind(|l| l.starts_with("privlink: reloaded")).unwrap();
    assert_eq!(line, format!("privlink: reloaded: dns.forward {first} -> {second}"));
    assert_eq!(ask(&ns, RESOLVER, "after.example.net", "A").ips, [Ipv4Addr::new(192, 0, 2, 2)], "the new forwarder");
    // Over TCP too (another name: not from the cache).
    let tcp = probe::dns_tcp(&ns, RESOLVER, "tcp.example.net", "A").unwrap();
    assert_eq!(tcp.ips, [Ipv4Addr::new(192, 0, 2, 2)]);
    // And to privacy mode.
    lab.reload(&dns_config(&ns, "", ""));
    assert_eq!(ask(&ns, RESOLVER, "private.example.net", "A").rcode, "Refused");
    lab.stop();
}

/// The TCP ports the process `pid` listens on, in the namespace it runs in (the host's).
fn listening_tcp_ports(pid: u32) -> Vec<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_string))
        .collect();
    let mut ports = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address, rem_address, st (0A: LISTEN), ..., inode (the 10th field).
            if f.len() > 9 && f[3] == "0A" && inodes.iter().any(|i| i == f[9]) {
                let port = f[1].rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
                ports.extend(port);
            }
        }
    }
    ports
}
