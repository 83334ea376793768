//! What a user sees at the default log level: every failure a client meets
//! (a security group REJECT, an upstream that refuses, a stream the SNI
//! check resets) is one plain-text line on stderr naming the ENI's id, the
//! rule and the client, and a flood of them prints a bounded number.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::time::{Duration, Instant};

use common::{netns_available, unique, Lab};
use privlink_core::log_limit::LINE_BURST;

const CLIENT: &str = "10.0.1.10";
const REFUSING_ENI: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 49);
const SNI_ENI: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 50);

/// An endpoint in subnet a at `ip` whose group allows TCP 443, relaying to loopback `port`.
fn endpoint(n: u8, service: &str, ip: Ipv4Addr, port: u16, extra: &str) -> String {
    format!(
        r#"
[[endpoint]]
id = "vpce-0obs000000000000{n}"
service = "com.amazonaws.us-east-1.{service}"
subnets = ["subnet-a"]
ips = {{ "subnet-a" = "{ip}" }}
security_groups = ["sg-443"]
upstream = "127.0.0.1:{port}"
{extra}
"#
    )
}

/// Two endpoints: one on ports 443 and 444 (its group allows 443 only)
/// whose upstream refuses, one whose upstream takes connections and whose
/// SNI check resets plain text.
fn config(ns: &str, refusing: u16, taking: u16) -> String {
    format!(
        r#"{}{}{}
[[security_group]]
id = "sg-443"
ingress = [{{ protocol = "tcp", ports = "443", cidr = "10.0.0.0/16" }}]
"#,
        common::vpc(ns, "", ""),
        endpoint(1, "ec2", REFUSING_ENI, refusing, "ports = [443, 444]"),
        endpoint(2, "sts", SNI_ENI, taking, "")
    )
}

/// A loopback listener and its port.
fn loopback() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// The id privlink's plan gives the ENI at `ip`.
fn eni_id(lab: &Lab, ip: Ipv4Addr) -> String {
    let ip = ip.to_string();
    lab.stdout()
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 1 && f[0].starts_with("eni-") && f[1] == ip)
        .map(|f| f[0].to_string())
        .unwrap_or_else(|| panic!("no ENI at {ip} in the plan: {:?}", lab.stdout()))
}

/// The stderr lines that contain every one of `parts`, once at least one does (5 s at most).
fn lines_with(lab: &Lab, parts: &[&str]) -> Vec<String> {
    let matching =
        || -> Vec<String> { lab.stderr().into_iter().filter(|l| parts.iter().all(|p| l.contains(p))).collect() };
    for _ in 0..250 {
        let found = matching();
        if !found.is_empty() {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    matching()
}

/// Opens `n` sockets in `ns` from `CLIENT` and starts a connect on each to
/// `dst` without waiting: `n` SYNs, one per new flow.
fn syn_flood(ns: &str, dst: SocketAddrV4, n: usize) -> Vec<socket2::Socket> {
    privlink::edge::netns::run_in(ns, move || {
        (0..n)
            .map(|_| {
                let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
                s.bind(&SocketAddrV4::new(CLIENT.parse().unwrap(), 0).into()).unwrap();
                s.set_nonblocking(true).unwrap();
                let _ = s.connect(&dst.into());
                s
            })
            .collect()
    })
    .unwrap()
}

#[test]
fn failures_print_one_plain_line_each_at_the_default_level_and_a_flood_a_bounded_number() {
    if !netns_available("failures_print_one_plain_line_each_at_the_default_level_and_a_flood_a_bounded_number") {
        return;
    }
    // Nobody listens on the refusing port once its listener is gone.
    let refusing_port = loopback().1;
    let (taking, taking_port) = loopback();
    let ns = unique("plko");
    let lab = Lab::start_default_logging(&ns, &config(&ns, refusing_port, taking_port));
    common::add_address(&ns, CLIENT);
    let (eni, sni_eni) = (eni_id(&lab, REFUSING_ENI), eni_id(&lab, SNI_ENI));

    // A security group REJECT: port 444 is the endpoint's, not the group's.
    // One SYN (the kernel retransmits after 1 s): one line.
    let port_444 = SocketAddrV4::new(REFUSING_ENI, 444);
    let silent = common::connect_from(&ns, CLIENT, port_444, Duration::from_millis(300));
    assert!(silent.is_err(), "the group drops port 444");
    let rejects = lines_with(&lab, &["REJECT", &format!("-> {port_444}")]);
    assert_eq!(rejects.len(), 1, "{:#?}", lab.stderr());
    let line = &rejects[0];
    for part in [&format!("{eni}: "), "INFO", "ingress client 10.0.1.10:", "no security group ingress rule"] {
        assert!(line.contains(part), "{part:?} in {line}");
    }

    // An upstream that refuses: the client gets an RST, stderr one line.
    let port_443 = SocketAddrV4::new(REFUSING_ENI, 443);
    let refused = common::connect_from(&ns, CLIENT, port_443, Duration::from_secs(5));
    assert_eq!(refused.err().map(|e| e.kind()), Some(std::io::ErrorKind::ConnectionRefused));
    let resets = lines_with(&lab, &["RESET", &format!("-> {port_443}")]);
    assert_eq!(resets.len(), 1, "{:#?}", lab.stderr());
    for part in [&format!("{eni}: "), "client 10.0.1.10:", &format!("upstream 127.0.0.1:{refusing_port}")] {
        assert!(resets[0].contains(part), "{part:?} in {}", resets[0]);
    }

    // A stream the SNI check resets: plain text where a ClientHello must come.
    let _held = std::thread::spawn(move || taking.incoming().map_while(Result::ok).collect::<Vec<_>>());
    let mut plain = common::connect_from(&ns, CLIENT, SocketAddrV4::new(SNI_ENI, 443), Duration::from_secs(5)).unwrap();
    plain.write_all(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n").unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    assert!(!matches!(plain.read(&mut buf), Ok(n) if n > 0), "the stream is reset, nothing comes back");
    let sni = lines_with(&lab, &["RESET", "SNI check", &sni_eni]);
    assert_eq!(sni.len(), 1, "{:#?}", lab.stderr());
    assert!(sni[0].contains("client 10.0.1.10:"), "{}", sni[0]);

    // A flood: a SYN from each of 300 sockets to port 444, and after a pause
    // 300 more. Each queue's guard prints its burst, then a line a second,
    // which says how many it held back.
    let start = Instant::now();
    let first = syn_flood(&ns, port_444, 300);
    std::thread::sleep(Duration::from_millis(1500));
    let second = syn_flood(&ns, port_444, 300);
    std::thread::sleep(Duration::from_millis(500));
    drop((first, second));
    let elapsed = start.elapsed().as_secs() + 1;
    let lines = lines_with(&lab, &["REJECT", &format!("-> {port_444}")]);
    // privlink says "N TUN queues" when it runs more than one.
    let queues: u64 = lab
        .stderr()
        .iter()
        .find_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let at = words.iter().position(|w| *w == "TUN")?;
            words.get(at.checked_sub(1)?)?.parse().ok()
        })
        .unwrap_or(1);
    let bound = queues * (u64::from(LINE_BURST) + elapsed) + 1;
    assert!(
        (lines.len() as u64) <= bound,
        "{} REJECT lines for 600+ rejects; at most {bound} ({queues} queues, {elapsed} s)",
        lines.len()
    );
    assert!(lines.iter().any(|l| l.contains("more like it not logged")), "{lines:#?}");

    // Plain text: no escape sequences (stderr is a pipe).
    let all = lab.stderr();
    assert!(all.iter().all(|l| !l.contains('\u{1b}')), "{all:#?}");
    lab.stop();
}
