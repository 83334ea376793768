//! The VPC resolver, end to end: queries from inside a namespace made by each
//! test to the resolver addresses on the TUN, answered from the private zone
//! or forwarded to a loopback stand-in for the public DNS (or one that
//! ignores size limits).

mod common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
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
    // The UDP queries above: 4 answered from the zone, 1 forwarded, 1 NXDOMAIN, 1 NODATA.
    assert_eq!(counter(&counters, "queries"), 7, "{counters}");
    assert_eq!(counter(&counters, "answered"), 4, "{counters}");
    assert_eq!(counter(&counters, "forwarded"), 1, "{counters}");
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
