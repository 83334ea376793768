//! Security groups, network ACLs and flow logs, as a client in the VPC sees
//! them: a table of scenarios, each a connection from a chosen source address
//! to an ENI port, and whether it opens or meets silence (AWS drops; it never
//! resets). Every lab is a namespace made by its test.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpListener, TcpStream};
use std::time::Duration;

use common::{netns_available, unique, Lab};

/// Source addresses a test client can use, all inside the VPC namespace.
const ROUTER: &str = "10.0.0.1"; // the VPC router: the TUN's own address
const IN_A: &str = "10.0.1.10"; // subnet-a, where ENI 0 lives
const IN_B: &str = "10.0.2.10"; // subnet-b, where ENI 1 lives
const IN_VPC: &str = "10.0.3.10"; // the VPC, no endpoint subnet
const IN_FAR: &str = "10.0.4.10"; // the VPC, outside the NACL test's 10.0.0.0/22
const OUTSIDE: &str = "192.168.7.7"; // outside the VPC CIDR: no client of the VPC, dropped before the guards
const ENI: [&str; 2] = ["10.0.1.49", "10.0.2.49"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Open,
    Silent,
}
use Seen::{Open, Silent};

/// One scenario: from `src` to ENI `eni`, port `port`.
struct Case {
    name: &'static str,
    src: &'static str,
    eni: usize,
    port: u16,
    want: Seen,
}

const fn case(name: &'static str, src: &'static str, eni: usize, port: u16, want: Seen) -> Case {
    Case { name, src, eni, port, want }
}

fn echo_server() -> (String, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let h = std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 256];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, h)
}

/// A lab: the endpoint (ports 443 and 8443) in subnets a and b, with `rules`
/// (security groups, NACLs, …) and `endpoint_extra` lines in the endpoint.
fn lab_config(
    ns: &str,
    upstream: &str,
    endpoint_extra: &str,
    subnet_a: &str,
    subnet_b: &str,
    rules: &str,
    flow_log: &str,
) -> String {
    format!(
        r#"{}
[[endpoint]]
id = "vpce-0sec0000000000001"
service = "com.amazonaws.us-east-1.ec2"
subnets = ["subnet-a", "subnet-b"]
ips = {{ "subnet-a" = "{}", "subnet-b" = "{}" }}
ports = [443, 8443]
upstream = "{upstream}"
allow_non_tls = true
{endpoint_extra}

[flow_logs]
file = "{flow_log}"
interval = 1

{rules}
"#,
        common::vpc(ns, subnet_a, subnet_b),
        ENI[0],
        ENI[1]
    )
}

fn add_sources(ns: &str) {
    for src in [IN_A, IN_B, IN_VPC, IN_FAR, OUTSIDE] {
        common::add_address(ns, src);
    }
}

/// Connects from `src` inside `ns`; `None` on silence (no SYN-ACK within the wait).
fn connect_from(ns: &str, src: &str, eni: usize, port: u16) -> Option<TcpStream> {
    let dst = SocketAddrV4::new(ENI[eni].parse().unwrap(), port);
    match common::connect_from(ns, src, dst, Duration::from_millis(900)) {
        Ok(s) => Some(s),
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut || e.kind() == std::io::ErrorKind::WouldBlock => None,
        Err(e) => panic!("connect {src} -> {dst}: {e} (AWS never resets)"),
    }
}

fn echo(s: &mut TcpStream, msg: &[u8]) -> bool {
    echo_within(s, msg, Duration::from_millis(900))
}

/// Whether `msg` comes back whole within `wait`.
fn echo_within(s: &mut TcpStream, msg: &[u8], wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = vec![0u8; msg.len()];
    s.write_all(msg).is_ok() && s.read_exact(&mut buf).is_ok() && buf == msg
}

/// Runs every case at once (silence costs a wait) and reports all mismatches together.
fn run_cases(ns: &str, cases: &[Case]) {
    let results: Vec<(String, Seen, Seen)> = std::thread::scope(|sc| {
        let handles: Vec<_> = cases
            .iter()
            .map(|c| {
                sc.spawn(move || {
                    let seen = match connect_from(ns, c.src, c.eni, c.port) {
                        Some(mut s) => {
                            assert!(echo(&mut s, c.name.as_bytes()), "{}: connected but no echo", c.name);
                            Open
                        }
                        None => Silent,
                    };
                    (c.name.to_string(), c.want, seen)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wrong: Vec<_> = results.iter().filter(|(_, want, seen)| want != seen).collect();
    assert!(wrong.is_empty(), "scenarios that went the other way (name, want, seen): {wrong:#?}");
}

struct Scenario {
    _dir: common::TempDir,
    lab: Lab,
    flow_log: std::path::PathBuf,
}

fn start(endpoint_extra: &str, subnet_a: &str, subnet_b: &str, rules: &str) -> Scenario {
    let ns = unique("plks");
    let dir = common::TempDir::new(&ns);
    let flow_log = dir.0.join("flow.log");
    let (upstream, _echo) = echo_server();
    let cfg = lab_config(&ns, &upstream, endpoint_extra, subnet_a, subnet_b, rules, &flow_log.display().to_string());
    let lab = Lab::start_in(&ns, dir.0.clone(), &cfg);
    add_sources(&ns);
    Scenario { _dir: dir, lab, flow_log }
}

#[test]
fn security_groups_allow_only_what_their_rules_say() {
    if !netns_available("security_groups_allow_only_what_their_rules_say") {
        return;
    }
    let sc = start(
        r#"security_groups = ["sg-endpoint"]"#,
        "",
        "",
        r#"
[[security_group]]
id = "sg-endpoint"
ingress = [
  { protocol = "tcp", ports = "443", cidr = "10.0.0.0/16" },
  { protocol = "tcp", ports = "8443", group = "sg-clients" },
]

[[security_group]]
id = "sg-clients"

[[instance]]
id = "i-0client000000000b"
ip = "10.0.2.10"
security_groups = ["sg-clients"]
"#,
    );
    run_cases(
        &sc.lab.ns,
        &[
            case("443 from the VPC router, inside the VPC CIDR", ROUTER, 0, 443, Open),
            case("443 from subnet a", IN_A, 0, 443, Open),
            case("443 from the VPC, no subnet", IN_VPC, 1, 443, Open),
            case("443 from outside the VPC CIDR", OUTSIDE, 0, 443, Silent),
            case("8443 from a non-member of the referenced group", IN_A, 0, 8443, Silent),
            case("8443 from a member of the referenced group", IN_B, 0, 8443, Open),
            case("8443 from a member, other AZ's ENI", IN_B, 1, 8443, Open),
            case("8443 from outside, referenced group only", OUTSIDE, 1, 8443, Silent),
            case("port 80 is not carried by the endpoint", IN_A, 0, 80, Silent),
            case("443 from subnet b to the ENI in subnet a", IN_B, 0, 443, Open),
            case("8443 from the router, not a member", ROUTER, 1, 8443, Silent),
        ],
    );
    let counters = sc.lab.stop();
    assert!(counters.contains("to_stack="), "{counters}");
    assert!(common::counter(&counters, "bad_source") >= 2, "the outside sources were dropped as such: {counters}");
}

#[test]
fn no_group_named_means_the_vpc_default_group() {
    if !netns_available("no_group_named_means_the_vpc_default_group") {
        return;
    }
    // AWS: the default group allows inbound traffic from its own members only.
    let sc = start(
        "",
        "",
        "",
        r#"
[[instance]]
id = "i-0member00000000a"
ip = "10.0.1.10"
security_groups = ["sg-default"]
"#,
    );
    run_cases(
        &sc.lab.ns,
        &[
            case("default group: a member", IN_A, 0, 443, Open),
            case("default group: the router is not a member", ROUTER, 0, 443, Silent),
            case("default group: another VPC address", IN_VPC, 1, 443, Silent),
            case("default group: outside", OUTSIDE, 0, 8443, Silent),
        ],
    );
    sc.lab.stop();
}

#[test]
fn network_acls_are_numbered_stateless_and_guard_the_subnet_boundary() {
    if !netns_available("network_acls_are_numbered_stateless_and_guard_the_subnet_boundary") {
        return;
    }
    let sc = start(
        r#"security_groups = ["sg-open-in"]"#,
        r#"network_acl = "acl-a""#,
        r#"network_acl = "acl-b""#,
        r#"
[[security_group]]
id = "sg-open-in"
ingress = [{ protocol = "tcp", ports = "all", cidr = "0.0.0.0/0" }]

# Subnet a: a deny numbered before an allow wins; the ephemeral-port egress
# rule covers 10.0.0.0/22 only, so replies to clients beyond it are dropped.
[[network_acl]]
id = "acl-a"
ingress = [
  { rule = 90, protocol = "all", cidr = "10.0.1.0/24", action = "deny" },
  { rule = 100, protocol = "tcp", ports = "443", cidr = "10.0.3.0/24", action = "deny" },
  { rule = 110, protocol = "tcp", ports = "all", cidr = "0.0.0.0/0", action = "allow" },
]
egress = [{ rule = 100, protocol = "tcp", ports = "1024-65535", cidr = "10.0.0.0/22", action = "allow" }]

# Subnet b: an allow numbered before a deny wins; nothing else is allowed.
[[network_acl]]
id = "acl-b"
ingress = [
  { rule = 100, protocol = "tcp", ports = "443", cidr = "10.0.3.0/24", action = "allow" },
  { rule = 110, protocol = "tcp", ports = "all", cidr = "10.0.3.0/24", action = "deny" },
]
egress = [{ rule = 100, protocol = "all", cidr = "0.0.0.0/0", action = "allow" }]
"#,
    );
    run_cases(
        &sc.lab.ns,
        &[
            case("acl-a: deny 100 before allow 110", IN_VPC, 0, 443, Silent),
            case("acl-a: deny 100 covers 443 only", IN_VPC, 0, 8443, Open),
            case("acl-a: allow 110 for the router", ROUTER, 0, 443, Open),
            case("acl-a: no egress rule for the reply (ephemeral ports)", IN_FAR, 0, 443, Silent),
            case("acl-a: same subnet skips the NACL (deny 90 not applied)", IN_A, 0, 443, Open),
            case("acl-b: allow 100 before deny 110", IN_VPC, 1, 443, Open),
            case("acl-b: deny 110 for other ports", IN_VPC, 1, 8443, Silent),
            case("acl-b: the final * rule denies", ROUTER, 1, 443, Silent),
            case("acl-b: same subnet skips the NACL", IN_B, 1, 8443, Open),
            case("acl-a: 8443 from the router, allow 110", ROUTER, 0, 8443, Open),
            case("acl-b: no numbered rule, the final * rule", IN_FAR, 1, 443, Silent),
        ],
    );
    sc.lab.stop();

    // The flow log shows the ephemeral-port gotcha: the request ACCEPTed, the
    // reply REJECTed (judged before anything was connected: no SYN-ACK left).
    let log = std::fs::read_to_string(&sc.flow_log).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    let far_in = lines
        .iter()
        .any(|l| l.contains(&format!(" {IN_FAR} {} ", ENI[0])) && l.contains(" 443 6 ") && l.ends_with("ACCEPT OK"));
    let reply_out = lines.iter().any(|l| l.contains(&format!(" {} {IN_FAR} 443 ", ENI[0])) && l.ends_with("REJECT OK"));
    assert!(far_in && reply_out, "flow log lacks the ACCEPT request / REJECT reply pair:\n{log}");
    assert!(lines.iter().any(|l| l.contains(&format!(" {IN_VPC} {} ", ENI[0])) && l.ends_with("REJECT OK")), "{log}");
    for l in &lines {
        let f: Vec<&str> = l.split(' ').collect();
        assert_eq!(f.len(), 14, "version 2 default format has 14 fields: {l}");
        assert_eq!(f[0], "2");
        assert!(f[2].starts_with("eni-"), "{l}");
    }
}

#[test]
fn prefix_lists_and_protocols() {
    if !netns_available("prefix_lists_and_protocols") {
        return;
    }
    let sc = start(
        r#"security_groups = ["sg-pl", "sg-udp"]"#,
        "",
        "",
        r#"
[[prefix_list]]
id = "pl-0corp"
cidrs = ["10.0.3.0/24"]

[[security_group]]
id = "sg-pl"
ingress = [{ protocol = "tcp", ports = "443", prefix_list = "pl-0corp" }]

# A UDP rule does not open TCP.
[[security_group]]
id = "sg-udp"
ingress = [{ protocol = "udp", ports = "8443", cidr = "0.0.0.0/0" }]
"#,
    );
    run_cases(
        &sc.lab.ns,
        &[
            case("prefix list member", IN_VPC, 0, 443, Open),
            case("not in the prefix list", ROUTER, 0, 443, Silent),
            case("a udp rule does not allow tcp", IN_VPC, 0, 8443, Silent),
            case("two groups: the union, both ENIs", IN_VPC, 1, 443, Open),
        ],
    );
    sc.lab.stop();
}

/// ENI 0 (endpoint 1, subnet a) in a group with `tracked_in`; ENI 1 (endpoint 2,
/// subnet b) in a group whose rules are `untracked_in` and `untracked_out`
/// (open to all traffic both ways: AWS does not track its flows).
fn live_config(ns: &str, upstream: &str, flow: &str, tracked_in: &str, untracked: [&str; 2]) -> String {
    format!(
        r#"{vpc}
[[endpoint]]
id = "vpce-0sec0000000000001"
service = "com.amazonaws.us-east-1.ec2"
subnets = ["subnet-a"]
ips = {{ "subnet-a" = "{eni0}" }}
upstream = "{upstream}"
allow_non_tls = true
security_groups = ["sg-tracked"]

[[endpoint]]
id = "vpce-0sec0000000000002"
service = "com.amazonaws.us-east-1.sts"
subnets = ["subnet-b"]
ips = {{ "subnet-b" = "{eni1}" }}
upstream = "{upstream}"
allow_non_tls = true
security_groups = ["sg-untracked"]

[[security_group]]
id = "sg-tracked"
ingress = [{tracked_in}]

[[security_group]]
id = "sg-untracked"
ingress = [{untracked_in}]
egress = [{untracked_out}]

[flow_logs]
file = "{flow}"
interval = 1
"#,
        vpc = common::vpc(ns, "", ""),
        eni0 = ENI[0],
        eni1 = ENI[1],
        untracked_in = untracked[0],
        untracked_out = untracked[1],
    )
}

#[test]
fn removing_a_rule_keeps_tracked_flows_and_cuts_untracked_ones() {
    if !netns_available("removing_a_rule_keeps_tracked_flows_and_cuts_untracked_ones") {
        return;
    }
    let ns = unique("plks");
    let dir = common::TempDir::new(&ns);
    let flow = dir.0.join("flow.log").display().to_string();
    let (upstream, _echo) = echo_server();
    let open_443 = r#"{ protocol = "tcp", ports = "443", cidr = "10.0.0.0/16" }"#;
    let open_all = r#"{ protocol = "all", cidr = "0.0.0.0/0" }"#;
    // Narrowed to a block without the client.
    let narrow = r#"{ protocol = "all", cidr = "10.9.0.0/16" }"#;
    let open = [open_all, open_all];
    let lab = Lab::start_in(&ns, dir.0.clone(), &live_config(&ns, &upstream, &flow, open_443, open));
    add_sources(&ns);

    let mut tracked = connect_from(&ns, IN_VPC, 0, 443).expect("tracked flow opens");
    assert!(echo(&mut tracked, b"before"));
    // AWS: "An untracked flow of traffic is immediately interrupted if the rule
    // that enables the flow is removed or modified": the inbound rule, the
    // outbound one, or both. The flow's next packet either way must not open a
    // tracked flow that would let the other side's through as its replies, so
    // the wait is past the stack's 1 s minimum retransmission timeout.
    for (case, untracked) in
        [("inbound", [narrow, open_all]), ("outbound", [open_all, narrow]), ("both", [narrow, narrow])]
    {
        lab.reload(&live_config(&ns, &upstream, &flow, open_443, open));
        let mut s = connect_from(&ns, IN_VPC, 1, 443).expect("untracked flow opens");
        assert!(echo(&mut s, b"before"), "{case}");
        lab.reload(&live_config(&ns, &upstream, &flow, open_443, untracked));
        assert!(!echo_within(&mut s, b"after", Duration::from_millis(2500)), "{case} narrowed: the flow was not cut");
    }

    // Remove the rule that let the tracked flow in (port 9 matches nothing here).
    let closed = r#"{ protocol = "tcp", ports = "9", cidr = "10.0.0.0/16" }"#;
    lab.reload(&live_config(&ns, &upstream, &flow, closed, open));
    assert!(connect_from(&ns, IN_VPC, 0, 443).is_none(), "new connections to ENI 0 meet silence once the rule is gone");
    assert!(echo(&mut tracked, b"after"), "a tracked flow survives the removal of its rule");
    let counters = lab.stop();
    assert!(common::counter(&counters, "sg_ingress") >= 1, "{counters}");
}
