//! The fabric: VPC and instance namespaces. Instances of one subnet reach
//! each other and the ENIs through the VPC namespace's proxy ARP, the VPC
//! drops packets an instance sends from an address not its own, and
//! everything made is gone after terminate / remove, also after a `kill -9`.

mod common;

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{add_address, connect_from, netns_available, unique, Leftovers, TempDir};
use privlink::edge::fabric::{self, FabricError, InstanceNet, Records, VpcNet};
use privlink::edge::netns;
use privlink::lab::probe;
use privlink_core::cidr::Cidr;
use socket2::{Domain, Protocol, Socket, Type};

fn hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    getrandom::getrandom(&mut b).unwrap();
    b.iter().map(|x| format!("{:x}", x & 0xf)).collect()
}

fn vpc_id() -> String {
    format!("vpc-{}", hex(17))
}

fn instance_id() -> String {
    format!("i-{}", hex(17))
}

fn addr(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// `ip ARGS…`'s stdout; panics on failure.
fn ip_out(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The word after `key` in `text`.
fn word_after<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.split_whitespace().skip_while(|w| *w != key).nth(1)
}

/// The MAC of device `dev` in namespace `ns`.
fn mac(ns: &str, dev: &str) -> String {
    let out = ip_out(&["-n", ns, "-o", "link", "show", "dev", dev]);
    word_after(&out, "link/ether").unwrap_or_else(|| panic!("no MAC in {out}")).to_string()
}

/// The MAC instance namespace `ns` has for `ip` on eth0, if any.
fn neigh(ns: &str, ip: &str) -> Option<String> {
    word_after(&ip_out(&["-n", ns, "neigh", "show", ip, "dev", "eth0"]), "lladdr").map(str::to_string)
}

/// Packets namespace `ns` dropped by reverse-path filtering (`TcpExt: IPReversePathFilter`).
fn rp_drops(ns: &str) -> u64 {
    let text = netns::run_in(ns, || std::fs::read_to_string("/proc/thread-self/net/netstat").unwrap()).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("TcpExt:")).collect();
    let (names, values) = (lines[0].split_whitespace(), lines[1].split_whitespace());
    names.zip(values).find(|(n, _)| *n == "IPReversePathFilter").map(|(_, v)| v.parse().unwrap()).unwrap()
}

/// A raw TCP socket in a namespace: it gets a copy of every TCP packet the
/// namespace takes in for itself.
struct TcpWatch(Socket);

impl TcpWatch {
    fn open(ns: &str) -> TcpWatch {
        TcpWatch(probe::socket_in(ns, || Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::TCP))).unwrap())
    }

    /// The sources of the SYNs (without ACK: a connection's first packet)
    /// for port `port` seen since the last call.
    fn syns(&self, port: u16) -> Vec<Ipv4Addr> {
        let mut seen = Vec::new();
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 2048];
        self.0.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        loop {
            match self.0.recv(&mut buf) {
                Ok(n) => {
                    // SAFETY: recv initialised the first n bytes.
                    let p: Vec<u8> = buf[..n].iter().map(|b| unsafe { b.assume_init() }).collect();
                    let ihl = usize::from(p[0] & 0x0f) * 4;
                    let syn = p[ihl + 13] & 0x12 == 0x02;
                    if syn && u16::from_be_bytes([p[ihl + 2], p[ihl + 3]]) == port {
                        seen.push(Ipv4Addr::new(p[12], p[13], p[14], p[15]));
                    }
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => return seen,
                Err(e) => panic!("raw socket: {e}"),
            }
        }
    }
}

/// The stand-in for an ENI: namespace `ns` holding `eni` on the far end of
/// a veth from the VPC namespace, which routes `eni`/32 to it and holds the
/// VPC router address on its end, as it does the TUN's. Its own
/// reverse-path filter is off: only the VPC's judges.
fn eni_standin(vpc: &str, ns: &str, eni: &str, vpc_router: &str) {
    let ip = |args: &[&str]| netns::ip(args).unwrap();
    ip(&["netns", "add", ns]);
    ip(&["-n", ns, "link", "set", "lo", "up"]);
    ip(&["-n", vpc, "link", "add", "eni0", "type", "veth", "peer", "name", "eth0", "netns", ns]);
    ip(&["-n", vpc, "addr", "add", &format!("{vpc_router}/32"), "dev", "eni0"]);
    ip(&["-n", vpc, "link", "set", "eni0", "up"]);
    ip(&["-n", vpc, "route", "add", &format!("{eni}/32"), "dev", "eni0", "src", vpc_router]);
    ip(&["-n", ns, "addr", "add", &format!("{eni}/32"), "dev", "eth0"]);
    ip(&["-n", ns, "link", "set", "eth0", "up"]);
    ip(&["-n", ns, "route", "add", &format!("{vpc_router}/32"), "dev", "eth0"]);
    ip(&["-n", ns, "route", "add", "default", "via", vpc_router, "dev", "eth0"]);
    fabric::set_sysctl(ns, "net.ipv4.conf.all.rp_filter", "0").unwrap();
    fabric::set_sysctl(ns, "net.ipv4.conf.eth0.rp_filter", "0").unwrap();
}

/// A TCP listener inside namespace `ns` at `at`.
fn listen_in(ns: &str, at: SocketAddrV4) -> TcpListener {
    let l = probe::socket_in(ns, move || TcpListener::bind(at)).unwrap();
    l.set_nonblocking(true).unwrap();
    l
}

/// The peer of the next connection `l` accepts within two seconds.
fn accept_peer(l: &TcpListener) -> Option<SocketAddrV4> {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        match l.accept() {
            Ok((_, std::net::SocketAddr::V4(a))) => return Some(a),
            Ok(_) => unreachable!("an IPv4 listener"),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("accept: {e}"),
        }
    }
    None
}

/// What may be left of namespace `ns`: the namespace and `/etc/netns/NS/`.
fn left(ns: &str) -> Vec<String> {
    let mut v = Vec::new();
    if netns::exists(ns) {
        v.push(format!("namespace {ns}"));
    }
    if Path::new("/etc/netns").join(ns).exists() {
        v.push(format!("/etc/netns/{ns}"));
    }
    v
}

#[test]
fn instances_reach_each_other_and_the_eni_and_cannot_spoof() {
    if !netns_available("instances_reach_each_other_and_the_eni_and_cannot_spoof") {
        return;
    }
    let (v, ia, ib, ic, standin) = (vpc_id(), instance_id(), instance_id(), instance_id(), unique("plkf"));
    let _guards: Vec<Leftovers> = [&v, &ia, &ib, &ic, &standin].map(|n| Leftovers(n.to_string())).into();
    let state = TempDir::new(&unique("plkf"));
    let records = Records::in_state_dir(&state.0);
    let (vpc_cidr, sub1, sub2): (Cidr, Cidr, Cidr) =
        ("10.77.0.0/16".parse().unwrap(), "10.77.1.0/24".parse().unwrap(), "10.77.2.0/24".parse().unwrap());
    let resolver = fabric::vpc_resolver(vpc_cidr);

    let vpc = VpcNet::create(&records, &v).unwrap();
    assert_eq!(vpc.name(), v);
    for (key, want) in [
        ("net.ipv4.ip_forward", "1"),
        ("net.ipv4.conf.all.send_redirects", "0"),
        ("net.ipv4.conf.default.send_redirects", "0"),
        ("net.ipv4.conf.all.rp_filter", "0"),
    ] {
        assert_eq!(fabric::get_sysctl(&v, key).unwrap(), want, "{key} in {v}");
    }
    assert!(ip_out(&["-n", &v, "link", "show", "lo"]).contains("UP"), "lo is up in {v}");
    assert!(matches!(VpcNet::create(&records, &v), Err(FabricError::Exists { .. })), "a second VPC of one id");

    let eni = "10.77.1.49";
    eni_standin(&v, &standin, eni, "10.77.0.1");
    // A local address of the VPC namespace as a second kind of stand-in (on
    // `lo`: not every kernel has the dummy device).
    add_address(&v, "10.77.1.50");

    let a = InstanceNet::launch(&vpc, &ia, addr("10.77.1.10"), sub1, resolver).unwrap();
    let b = InstanceNet::launch(&vpc, &ib, addr("10.77.1.11"), sub1, resolver).unwrap();
    let c = InstanceNet::launch(&vpc, &ic, addr("10.77.2.10"), sub2, resolver).unwrap();
    assert_eq!(records.left_behind().unwrap(), {
        let mut ids = vec![ia.clone(), ib.clone(), ic.clone(), v.clone()];
        ids.sort();
        ids
    });
    let router_mac = mac(&v, a.vpc_side());
    let x = a.vpc_side();
    for (key, want) in [
        (format!("net.ipv4.conf.{x}.rp_filter"), "1"),
        (format!("net.ipv4.conf.{x}.proxy_arp"), "1"),
        (format!("net.ipv4.conf.{x}.send_redirects"), "0"),
        (format!("net.ipv4.neigh.{x}.proxy_delay"), "0"),
        (format!("net.ipv6.conf.{x}.disable_ipv6"), "1"),
    ] {
        assert_eq!(fabric::get_sysctl(&v, &key).unwrap(), want, "{key} in {v}");
    }
    assert_eq!(fabric::get_sysctl(&ia, "net.ipv6.conf.eth0.disable_ipv6").unwrap(), "1");
    assert_eq!(ip_out(&["-n", &ia, "-6", "addr", "show", "dev", "eth0"]), "", "no IPv6 on {ia}'s eth0");
    let vpc_addr = ip_out(&["-n", &v, "-o", "-4", "addr", "show", "dev", x]);
    assert!(vpc_addr.contains("inet 10.77.1.1/32"), "{vpc_addr}");
    let to_a = ip_out(&["-n", &v, "route", "show", "10.77.1.10"]);
    assert!(to_a.contains(&format!("dev {x}")) && to_a.contains("src 10.77.1.1"), "{to_a}");
    assert!(a.vpc_side().len() <= 15 && a.vpc_side().starts_with('i'), "{}", a.vpc_side());

    // The instance's side: its address in the subnet, the subnet router as its gateway, the VPC resolver.
    let eth0 = ip_out(&["-n", &ia, "-o", "-4", "addr", "show", "dev", "eth0"]);
    assert!(eth0.contains("inet 10.77.1.10/24"), "{eth0}");
    let route = ip_out(&["-n", &ia, "route", "show", "default"]);
    assert!(route.contains("default via 10.77.1.1 dev eth0"), "{route}");
    let resolv = std::fs::read_to_string(format!("/etc/netns/{ia}/resolv.conf")).unwrap();
    assert!(resolv.lines().any(|l| l == "nameserver 10.77.0.2"), "{resolv}");
    let inside = Command::new("ip").args(["netns", "exec", &ia, "cat", "/etc/resolv.conf"]).output().unwrap();
    assert!(String::from_utf8_lossy(&inside.stdout).contains("nameserver 10.77.0.2"), "{inside:?}");

    // A reaches B in its own subnet: it ARPs for B and the VPC side answers with its own MAC.
    assert_eq!(neigh(&ia, "10.77.1.11"), None, "nothing known of B before");
    assert!(probe::icmp_echo(&ia, addr("10.77.1.11"), Duration::from_secs(3)).unwrap(), "A pings B");
    assert_eq!(neigh(&ia, "10.77.1.11").as_deref(), Some(router_mac.as_str()), "B at the VPC side's MAC");
    assert!(probe::icmp_echo(&ib, addr("10.77.1.10"), Duration::from_secs(3)).unwrap(), "B pings A");
    // And C in the other subnet, through its gateway; and the routers.
    assert!(probe::icmp_echo(&ia, addr("10.77.2.10"), Duration::from_secs(3)).unwrap(), "A pings C");
    assert!(probe::icmp_echo(&ic, addr("10.77.2.1"), Duration::from_secs(3)).unwrap(), "C pings its router");

    // A reaches the ENI stand-in the VPC routes elsewhere, by TCP, under its own address.
    let watch = TcpWatch::open(&standin);
    let port = 4049;
    let listener = listen_in(&standin, SocketAddrV4::new(addr(eni), port));
    let conn = connect_from(&ia, "10.77.1.10", SocketAddrV4::new(addr(eni), port), Duration::from_secs(3));
    assert!(conn.is_ok(), "A connects to the ENI stand-in: {conn:?}");
    assert_eq!(accept_peer(&listener).map(|p| *p.ip()), Some(addr("10.77.1.10")));
    assert_eq!(neigh(&ia, eni).as_deref(), Some(router_mac.as_str()), "the ENI at the VPC side's MAC");
    assert!(watch.syns(port).contains(&addr("10.77.1.10")), "the watch sees A's SYN");
    drop(conn);
    // And an address local to the VPC namespace.
    let local = listen_in(&v, SocketAddrV4::new(addr("10.77.1.50"), port));
    let conn = connect_from(&ia, "10.77.1.10", SocketAddrV4::new(addr("10.77.1.50"), port), Duration::from_secs(3));
    assert!(conn.is_ok(), "A connects to 10.77.1.50 in the VPC namespace: {conn:?}");
    assert_eq!(accept_peer(&local).map(|p| *p.ip()), Some(addr("10.77.1.10")));
    drop(conn);

    // Source/dest check: A sends SYNs as B and as an address nobody has; none arrives.
    netns::ip(&["-n", &ia, "addr", "add", "10.77.1.11/32", "dev", "eth0"]).unwrap();
    add_address(&ia, "192.0.2.7");
    let before = rp_drops(&v);
    for src in ["10.77.1.11", "192.0.2.7"] {
        let spoofed = connect_from(&ia, src, SocketAddrV4::new(addr(eni), port), Duration::from_secs(1));
        assert!(spoofed.is_err(), "a connection from {src}: {spoofed:?}");
    }
    let seen = watch.syns(port);
    assert!(seen.is_empty(), "the ENI saw spoofed packets from {seen:?}");
    assert_eq!(accept_peer(&listener), None);
    let dropped = rp_drops(&v) - before;
    assert!(dropped >= 2, "{v} counted {dropped} reverse-path drops, want one SYN at least per source");

    // What strict mode is for: loose (systemd's `all` on many hosts, which the
    // kernel would take over the device's 1) lets A pose as B.
    fabric::set_sysctl(&v, "net.ipv4.conf.all.rp_filter", "2").unwrap();
    let spoofed = connect_from(&ia, "10.77.1.11", SocketAddrV4::new(addr(eni), port), Duration::from_secs(1));
    assert!(spoofed.is_err(), "{spoofed:?}");
    let seen = watch.syns(port);
    fabric::set_sysctl(&v, "net.ipv4.conf.all.rp_filter", "0").unwrap();
    assert!(seen.contains(&addr("10.77.1.11")), "in loose mode B's address gets through: {seen:?}");

    // Launches that cannot be: nothing of them is left.
    let id = instance_id();
    let _g = Leftovers(id.clone());
    let e = InstanceNet::launch(&vpc, &ia, addr("10.77.1.12"), sub1, resolver).unwrap_err();
    assert!(matches!(e, FabricError::Exists { .. }), "{e}");
    let e = InstanceNet::launch(&vpc, &id, addr("10.77.2.12"), sub1, resolver).unwrap_err();
    assert!(e.to_string().contains("10.77.2.12 is outside subnet 10.77.1.0/24"), "{e}");
    let e = InstanceNet::launch(&vpc, &id, addr("10.77.1.1"), sub1, resolver).unwrap_err();
    assert!(e.to_string().contains("reserves"), "{e}");
    // One whose VPC-side name collides with A's fails at the veth, naming it, and is removed.
    let twin = format!("i-fffff{}", &ia[ia.len() - 12..]);
    let _t = Leftovers(twin.clone());
    let e = InstanceNet::launch(&vpc, &twin, addr("10.77.1.13"), sub1, resolver).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(a.vpc_side()) && msg.contains("ip -n") && msg.contains("exists"), "{msg}");
    for n in [&id, &twin] {
        assert!(left(n).is_empty(), "a failed launch left {:?}", left(n));
        assert!(!records.dir().join(n).exists(), "a failed launch left its record");
    }

    // Terminate: namespace, both veth ends, /etc/netns and the record go.
    let sides: Vec<String> = [&a, &b, &c].iter().map(|i| i.vpc_side().to_string()).collect();
    a.terminate().unwrap();
    b.terminate().unwrap();
    drop(c);
    for (n, side) in [&ia, &ib, &ic].into_iter().zip(&sides) {
        assert!(left(n).is_empty(), "{n}: {:?}", left(n));
        let links = ip_out(&["-n", &v, "-o", "link", "show"]);
        assert!(!links.contains(&format!(" {side}@")), "{side} left in {v}: {links}");
    }
    let routes = ip_out(&["-n", &v, "route", "show"]);
    assert!(!routes.contains("10.77.1.10") && !routes.contains("10.77.2.10"), "{routes}");
    assert_eq!(records.left_behind().unwrap(), vec![v.clone()]);
    vpc.remove().unwrap();
    assert!(left(&v).is_empty(), "{:?}", left(&v));
    assert_eq!(records.left_behind().unwrap(), Vec::<String>::new());
    netns::ip(&["netns", "del", &standin]).unwrap();
}

#[test]
fn what_a_killed_run_left_is_removed_by_id_and_only_if_ours() {
    if !netns_available("what_a_killed_run_left_is_removed_by_id_and_only_if_ours") {
        return;
    }
    let (v, i, foreign) = (vpc_id(), instance_id(), vpc_id());
    let _guards: Vec<Leftovers> = [&v, &i, &foreign].map(|n| Leftovers(n.to_string())).into();
    let state = TempDir::new(&unique("plkf"));
    let records = Records::in_state_dir(&state.0);

    let vpc = VpcNet::create(&records, &v).unwrap();
    let inst =
        InstanceNet::launch(&vpc, &i, addr("10.9.0.20"), "10.9.0.0/24".parse().unwrap(), addr("10.9.0.2")).unwrap();
    // kill -9: nothing runs the guards.
    std::mem::forget(inst);
    std::mem::forget(vpc);
    assert!(netns::exists(&v) && netns::exists(&i));
    assert!(Path::new("/etc/netns").join(&i).exists());

    // The next run (a fresh handle on the same state dir) finds and removes them.
    let records = Records::in_state_dir(&state.0);
    assert_eq!(records.left_behind().unwrap(), vec![i.clone(), v.clone()]);
    assert_eq!(records.remove_left_behind().unwrap(), vec![i.clone(), v.clone()]);
    for n in [&i, &v] {
        assert!(left(n).is_empty(), "{n}: {:?}", left(n));
    }
    assert!(records.left_behind().unwrap().is_empty());
    fabric::remove_instance(&records, &i).unwrap();
    fabric::remove_vpc(&records, &v).unwrap();

    // A namespace of that shape someone else made is neither taken nor removed.
    netns::ip(&["netns", "add", &foreign]).unwrap();
    let e = VpcNet::create(&records, &foreign).unwrap_err();
    assert!(matches!(e, FabricError::Exists { .. }), "{e}");
    fabric::remove_vpc(&records, &foreign).unwrap();
    assert!(netns::exists(&foreign), "someone else's namespace was removed");
    netns::ip(&["netns", "del", &foreign]).unwrap();
    let e = fabric::remove_vpc(&records, "vpc-../../x").unwrap_err();
    assert!(e.to_string().contains("not a well-formed VPC id"), "{e}");
}
