//! Filter tests, by section: parsing, SG ingress, NACL ordering, conntrack
//! return traffic, timeouts, untracked, quotas, and a property test against
//! a reference model.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::cidr::Cidr;
use crate::flow::Direction;
use crate::packet::{sample, PacketMeta};

// ---- fixtures -------------------------------------------------------------

/// The endpoint ENI: 10.0.1.49 in subnet 10.0.1.0/24 of VPC 10.0.0.0/16.
const ENI_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 49);
/// A client in another subnet of the VPC: crosses the NACL.
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 10);
/// A client in the ENI's own subnet: never meets the NACL.
const NEIGHBOUR: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 20);
/// Outside the VPC.
const STRANGER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);

/// A client SYN to the ENI's HTTPS port; adjust with struct-update syntax.
const FLOW_TEMPL: PacketMeta = PacketMeta { src: CLIENT, dst: ENI_IP, ..sample::SYN };

fn syn(src: Ipv4Addr, dst_port: u16) -> PacketMeta {
    PacketMeta { src, dst_port, ..FLOW_TEMPL }
}

/// The ENI's answer to `p`, with `flags`.
fn reply(p: &PacketMeta, flags: u8) -> PacketMeta {
    PacketMeta { src: p.dst, dst: p.src, src_port: p.dst_port, dst_port: p.src_port, tcp_flags: flags, ..*p }
}

fn with_flags(p: &PacketMeta, flags: u8) -> PacketMeta {
    PacketMeta { tcp_flags: flags, ..*p }
}

fn cidr(s: &str) -> Cidr {
    s.parse().unwrap()
}

fn rule(protocol: &str, ports: &str, peer: SgPeer) -> SgRule {
    SgRule { protocol: protocol.parse().unwrap(), ports: ports.parse().unwrap(), peer }
}

fn from(c: &str) -> SgPeer {
    SgPeer::Cidr(cidr(c))
}

fn group(id: &str, ingress: Vec<SgRule>, egress: Vec<SgRule>) -> SecurityGroup {
    SecurityGroup { id: id.into(), ingress, egress }
}

fn entry(rule: u32, protocol: &str, ports: &str, c: &str, action: RuleAction) -> NaclEntry {
    NaclEntry {
        rule: RuleNumber::new(rule).unwrap(),
        protocol: protocol.parse().unwrap(),
        ports: ports.parse().unwrap(),
        cidr: cidr(c),
        action,
    }
}

fn eni(groups: &[&str], nacl: Option<&str>) -> EniRules {
    EniRules {
        index: 0,
        ip: ENI_IP,
        subnet: cidr("10.0.1.0/24"),
        security_groups: groups.iter().map(|s| s.to_string()).collect(),
        network_acl: nacl.map(str::to_owned),
    }
}

/// The design's example: HTTPS in from the VPC, all out.
fn endpoint_group() -> SecurityGroup {
    group("sg-endpoint", vec![rule("tcp", "443", from("10.0.0.0/16"))], vec![rule("all", "all", from("0.0.0.0/0"))])
}

/// The design's strict NACL: HTTPS in, ephemeral ports out.
fn strict_acl() -> NetworkAcl {
    NetworkAcl {
        id: "acl-strict".into(),
        ingress: vec![entry(100, "tcp", "443", "10.0.0.0/16", RuleAction::Allow)],
        egress: vec![entry(100, "tcp", "1024-65535", "10.0.0.0/16", RuleAction::Allow)],
    }
}

fn config(enis: Vec<EniRules>, groups: Vec<SecurityGroup>, acls: Vec<NetworkAcl>) -> RuleSetConfig {
    RuleSetConfig { enis, security_groups: groups, network_acls: acls, ..RuleSetConfig::default() }
}

#[track_caller]
fn rules(cfg: &RuleSetConfig) -> Arc<RuleSet> {
    Arc::new(RuleSet::build(cfg).unwrap())
}

#[track_caller]
fn filter(cfg: &RuleSetConfig) -> Filter {
    Filter::new(rules(cfg), FilterConfig::default()).unwrap()
}

#[track_caller]
fn filter_with(cfg: &RuleSetConfig, fc: FilterConfig) -> Filter {
    Filter::new(rules(cfg), fc).unwrap()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn sg_reason(group: &str, dir: Direction, index: u16) -> Reason {
    Reason::SgRule { group: group.into(), dir, index }
}

/// Sends `p` and checks the action; returns the decision for more checks.
#[track_caller]
fn send(f: &mut Filter, now: Instant, dir: Direction, p: &PacketMeta, want: Action) -> Decision {
    let d = f.handle_packet(now, 0, dir, p);
    assert_eq!(d.action, want, "{dir} {p:?} → {d}");
    d
}

use Action::{Accept, Reject};
use Direction::{Egress, Ingress};

// ---- parsing --------------------------------------------------------------

#[test]
fn port_range_parse() {
    let cases: &[(&str, Option<(u16, u16)>)] = &[
        ("443", Some((443, 443))),
        ("1024-65535", Some((1024, 65535))),
        ("all", Some((0, 65535))),
        ("ALL", Some((0, 65535))),
        ("-1", Some((0, 65535))),
        (" 80 - 81 ", Some((80, 81))),
        ("0", Some((0, 0))),
        ("65536", None),
        ("2-1", None),
        ("", None),
        ("http", None),
        ("1-2-3", None),
    ];
    for (s, want) in cases {
        let got = s.parse::<PortRange>().ok().map(|r| (r.lo(), r.hi()));
        assert_eq!(got, *want, "{s:?}");
    }
    assert_eq!(PortRange::ALL.to_string(), "all");
    assert_eq!("1024-65535".parse::<PortRange>().unwrap().to_string(), "1024-65535");
    assert_eq!(PortRange::single(443).to_string(), "443");
}

#[test]
fn protocol_parse() {
    let cases = [("tcp", Protocol::Tcp), ("UDP", Protocol::Udp), ("icmp", Protocol::Icmp), ("all", Protocol::All)];
    for (s, p) in cases {
        assert_eq!(s.parse::<Protocol>().unwrap(), p);
    }
    assert_eq!("-1".parse::<Protocol>().unwrap(), Protocol::All);
    assert_eq!("6".parse::<Protocol>().unwrap(), Protocol::Tcp);
    assert!("gre".parse::<Protocol>().is_err());
}

#[test]
fn rule_cidr_parse() {
    assert_eq!(parse_rule_cidr(" 10.0.0.0/16 "), Ok(cidr("10.0.0.0/16")));
    let bad = ["10.0.0.1/16", "10.0.0.0/33", "10.0.0.0", "10.0.0/8", "x/8", "10.0.0.0/-1"];
    for s in bad {
        assert_eq!(parse_rule_cidr(s), Err(ParseRuleError::Cidr(s.to_owned())), "{s} should be rejected");
    }
    assert_eq!(
        parse_rule_cidr("10.0.0.1/16").unwrap_err().to_string(),
        "invalid CIDR block \"10.0.0.1/16\": expected a.b.c.d/n (n ≤ 32) with no host bits set"
    );
}

#[test]
fn config_deserializes_from_design_spelling() {
    #[derive(serde::Deserialize)]
    struct Row {
        rule: RuleNumber,
        protocol: Protocol,
        ports: PortRange,
        cidr: Cidr,
        action: RuleAction,
    }
    let r: Row = serde_json::from_str(
        r#"{"rule":100,"protocol":"tcp","ports":"1024-65535","cidr":"10.0.0.0/16","action":"allow"}"#,
    )
    .unwrap();
    assert_eq!(
        (r.rule.get(), r.protocol, r.ports, r.cidr, r.action),
        (100, Protocol::Tcp, PortRange::new(1024, 65535).unwrap(), cidr("10.0.0.0/16"), RuleAction::Allow)
    );
    assert!(serde_json::from_str::<RuleNumber>("0").is_err());
    assert!(serde_json::from_str::<RuleNumber>("32767").is_err());
}

// ---- SG ingress -----------------------------------------------------------

#[test]
fn sg_allows_443_from_vpc_cidr_only() {
    let cfg = config(vec![eni(&["sg-endpoint"], None)], vec![endpoint_group()], vec![]);
    let now = Instant::now();
    let cases: &[(Ipv4Addr, u8, u16, Action)] = &[
        (CLIENT, PROTO_TCP, 443, Accept),
        (NEIGHBOUR, PROTO_TCP, 443, Accept),
        (STRANGER, PROTO_TCP, 443, Reject), // outside the VPC CIDR
        (CLIENT, PROTO_TCP, 80, Reject),    // SG without that port
        (CLIENT, PROTO_TCP, 444, Reject),   // boundary
        (CLIENT, PROTO_TCP, 442, Reject),   // boundary
        (CLIENT, PROTO_UDP, 443, Reject),   // tcp rule, udp packet
        (CLIENT, PROTO_ICMP, 0, Reject),
    ];
    for &(src, protocol, dst_port, want) in cases {
        let mut f = filter(&cfg);
        let p = PacketMeta { src, protocol, dst_port, ..FLOW_TEMPL };
        let d = send(&mut f, now, Ingress, &p, want);
        let want_reason = match want {
            Accept => sg_reason("sg-endpoint", Ingress, 0),
            Reject => Reason::SgNoMatch { dir: Ingress },
        };
        assert_eq!(d.reason, want_reason, "{p:?}");
    }
}

#[test]
fn sg_rules_union_across_groups_names_the_matching_group() {
    let a = group("sg-a", vec![rule("tcp", "22", from("10.0.0.0/16"))], vec![]);
    let b =
        group("sg-b", vec![rule("tcp", "80", from("10.0.0.0/16")), rule("tcp", "443", from("10.0.2.0/24"))], vec![]);
    let cfg = config(vec![eni(&["sg-a", "sg-b"], None)], vec![a, b], vec![]);
    let now = Instant::now();
    for (port, want) in [(22, Some(("sg-a", 0))), (80, Some(("sg-b", 0))), (443, Some(("sg-b", 1))), (8080, None)] {
        let d = filter(&cfg).handle_packet(now, 0, Ingress, &syn(CLIENT, port));
        match want {
            Some((g, i)) => assert_eq!(d, Decision { action: Accept, reason: sg_reason(g, Ingress, i) }, "port {port}"),
            None => assert_eq!(d, Decision { action: Reject, reason: Reason::SgNoMatch { dir: Ingress } }),
        }
    }
}

#[test]
fn referenced_group_admits_members_only() {
    // sg-endpoint admits 443 from members of sg-clients: the ENIs naming it
    // (none here) and the declared lab instances.
    let ep = group("sg-endpoint", vec![rule("tcp", "443", SgPeer::Group("sg-clients".into()))], vec![]);
    let clients = group("sg-clients", vec![], vec![rule("all", "all", from("0.0.0.0/0"))]);
    let mut cfg = config(vec![eni(&["sg-endpoint"], None)], vec![ep, clients], vec![]);
    cfg.group_members = vec![GroupMembers { group: "sg-clients".into(), ips: vec![CLIENT] }];
    let now = Instant::now();
    send(&mut filter(&cfg), now, Ingress, &syn(CLIENT, 443), Accept);
    send(&mut filter(&cfg), now, Ingress, &syn(NEIGHBOUR, 443), Reject);
    send(&mut filter(&cfg), now, Ingress, &syn(Ipv4Addr::new(10, 0, 2, 11), 443), Reject);
}

#[test]
fn group_membership_includes_enis_naming_the_group() {
    // Two ENIs in sg-mesh, which admits everything from its own members.
    let mesh = group("sg-mesh", vec![rule("all", "all", SgPeer::Group("sg-mesh".into()))], vec![]);
    let other =
        EniRules { index: 1, ip: Ipv4Addr::new(10, 0, 2, 49), subnet: cidr("10.0.2.0/24"), ..eni(&["sg-mesh"], None) };
    let cfg = config(vec![eni(&["sg-mesh"], None), other], vec![mesh], vec![]);
    let now = Instant::now();
    send(&mut filter(&cfg), now, Ingress, &syn(Ipv4Addr::new(10, 0, 2, 49), 443), Accept);
    send(&mut filter(&cfg), now, Ingress, &syn(CLIENT, 443), Reject);
}

#[test]
fn prefix_list_peer_expands_to_its_blocks() {
    let ep = group("sg-endpoint", vec![rule("tcp", "443", SgPeer::PrefixList("pl-corp".into()))], vec![]);
    let mut cfg = config(vec![eni(&["sg-endpoint"], None)], vec![ep], vec![]);
    cfg.prefix_lists =
        vec![PrefixList { id: "pl-corp".into(), cidrs: vec![cidr("10.0.2.0/24"), cidr("192.0.2.0/28")] }];
    let now = Instant::now();
    send(&mut filter(&cfg), now, Ingress, &syn(CLIENT, 443), Accept);
    send(&mut filter(&cfg), now, Ingress, &syn(STRANGER, 443), Accept);
    send(&mut filter(&cfg), now, Ingress, &syn(Ipv4Addr::new(192, 0, 2, 16), 443), Reject);
    send(&mut filter(&cfg), now, Ingress, &syn(NEIGHBOUR, 443), Reject);
}

#[test]
fn default_group_admits_its_members_and_allows_all_out() {
    // No groups named: the VPC default group. Its members: this ENI and the
    // declared instance CLIENT.
    let mut cfg = config(vec![eni(&[], None)], vec![], vec![]);
    cfg.group_members = vec![GroupMembers { group: "sg-default".into(), ips: vec![CLIENT] }];
    let now = Instant::now();
    let d = send(&mut filter(&cfg), now, Ingress, &syn(CLIENT, 443), Accept);
    assert_eq!(d.reason, sg_reason("sg-default", Ingress, 0));
    send(&mut filter(&cfg), now, Ingress, &syn(NEIGHBOUR, 8443), Reject);
    // Outbound: all, to anyone.
    let out =
        PacketMeta { src: ENI_IP, dst: STRANGER, src_port: 50000, dst_port: 53, protocol: PROTO_UDP, ..FLOW_TEMPL };
    let d = send(&mut filter(&cfg), now, Egress, &out, Accept);
    assert_eq!(d.reason, sg_reason("sg-default", Egress, 0));
}

#[test]
fn default_group_rules_can_be_overridden() {
    let custom = group("sg-default", vec![rule("tcp", "443", from("0.0.0.0/0"))], vec![]);
    let cfg = config(vec![eni(&[], None)], vec![custom], vec![]);
    let now = Instant::now();
    send(&mut filter(&cfg), now, Ingress, &syn(STRANGER, 443), Accept);
    send(&mut filter(&cfg), now, Ingress, &syn(STRANGER, 22), Reject);
}

#[test]
fn all_protocol_rule_ignores_ports_and_covers_other_protocols() {
    let g = group("sg-any", vec![rule("all", "443", from("10.0.0.0/16"))], vec![]);
    let cfg = config(vec![eni(&["sg-any"], None)], vec![g], vec![]);
    let now = Instant::now();
    for (protocol, port) in [(PROTO_TCP, 22), (PROTO_UDP, 53), (PROTO_ICMP, 0), (47, 0)] {
        let p = PacketMeta { protocol, dst_port: port, ..FLOW_TEMPL };
        send(&mut filter(&cfg), now, Ingress, &p, Accept);
    }
}

#[test]
fn unknown_eni_is_rejected() {
    let cfg = config(vec![eni(&["sg-endpoint"], None)], vec![endpoint_group()], vec![]);
    let d = filter(&cfg).handle_packet(Instant::now(), 7, Ingress, &FLOW_TEMPL);
    assert_eq!(d, Decision { action: Reject, reason: Reason::UnknownEni });
}

#[test]
fn reasons_display_the_deciding_rule() {
    let acl: Arc<str> = "acl-strict".into();
    let cases = [
        (
            Reason::NaclRule { acl: acl.clone(), rule: RuleNumber::new(90).unwrap(), dir: Ingress },
            "network ACL acl-strict ingress rule 90 denies",
        ),
        (
            Reason::NaclDefaultDeny { acl, dir: Egress },
            "network ACL acl-strict egress rule * denies (no numbered rule matched)",
        ),
        (sg_reason("sg-endpoint", Ingress, 2), "security group sg-endpoint ingress rule #2 allows (flow tracked)"),
        (Reason::SgNoMatch { dir: Egress }, "no security group egress rule on the ENI allows it"),
        (Reason::Tracked, "tracked flow (return or ongoing traffic)"),
        (Reason::ConntrackFull, "connection tracking table full"),
    ];
    for (r, s) in cases {
        assert_eq!(r.to_string(), s);
    }
    let d = Decision { action: Reject, reason: Reason::SgNoMatch { dir: Ingress } };
    assert_eq!(d.to_string(), "REJECT: no security group ingress rule on the ENI allows it");
}

// ---- NACL ordering --------------------------------------------------------

fn acl_cfg(ingress: Vec<NaclEntry>, egress: Vec<NaclEntry>) -> RuleSetConfig {
    // Wide in (the whole VPC, every port), ephemeral out: tracked, since
    // neither direction is open to 0.0.0.0/0 on every port.
    let open = group(
        "sg-open",
        vec![rule("tcp", "all", from("10.0.0.0/16"))],
        vec![rule("tcp", "1024-65535", from("0.0.0.0/0"))],
    );
    let acl = NetworkAcl { id: "acl-x".into(), ingress, egress };
    config(vec![eni(&["sg-open"], Some("acl-x"))], vec![open], vec![acl])
}

#[test]
fn nacl_lowest_rule_number_decides() {
    use RuleAction::{Allow, Deny};
    let now = Instant::now();
    let all_out = vec![entry(100, "all", "all", "0.0.0.0/0", Allow)];
    // (entries, expected action, expected deciding rule)
    let cases: Vec<(Vec<NaclEntry>, Action, Option<u16>)> = vec![
        // Deny numbered before an allow wins, whatever the listing order.
        (
            vec![entry(200, "tcp", "443", "10.0.0.0/16", Allow), entry(100, "tcp", "443", "10.0.2.0/24", Deny)],
            Reject,
            Some(100),
        ),
        // Allow numbered before a deny wins.
        (
            vec![entry(100, "tcp", "443", "10.0.0.0/16", Allow), entry(200, "tcp", "443", "10.0.2.0/24", Deny)],
            Accept,
            None,
        ),
        // A non-matching deny (other port) before the allow does nothing.
        (vec![entry(50, "tcp", "22", "0.0.0.0/0", Deny), entry(100, "tcp", "443", "10.0.0.0/16", Allow)], Accept, None),
        // A non-matching deny (other source) before the allow does nothing.
        (
            vec![entry(50, "tcp", "443", "10.0.3.0/24", Deny), entry(100, "tcp", "443", "10.0.0.0/16", Allow)],
            Accept,
            None,
        ),
        // Deny on protocol all beats a later tcp allow.
        (
            vec![entry(1, "all", "all", "10.0.2.10/32", Deny), entry(2, "tcp", "443", "0.0.0.0/0", Allow)],
            Reject,
            Some(1),
        ),
        // Nothing matches: the * rule.
        (vec![entry(100, "udp", "443", "0.0.0.0/0", Allow)], Reject, None),
        // Highest legal number still evaluated.
        (vec![entry(32766, "tcp", "443", "0.0.0.0/0", Allow)], Accept, None),
    ];
    for (i, (ingress, want, rule_no)) in cases.into_iter().enumerate() {
        let mut f = filter(&acl_cfg(ingress, all_out.clone()));
        let d = f.handle_packet(now, 0, Ingress, &FLOW_TEMPL);
        assert_eq!(d.action, want, "case {i}: {d}");
        match (want, rule_no) {
            (Reject, Some(n)) => assert_eq!(
                d.reason,
                Reason::NaclRule { acl: "acl-x".into(), rule: RuleNumber::new(n.into()).unwrap(), dir: Ingress },
                "case {i}"
            ),
            (Reject, None) => {
                assert_eq!(d.reason, Reason::NaclDefaultDeny { acl: "acl-x".into(), dir: Ingress }, "case {i}")
            }
            (Accept, _) => assert_eq!(d.reason, sg_reason("sg-open", Ingress, 0), "case {i}"),
        }
    }
}

#[test]
fn nacl_without_ephemeral_egress_rule_rejects_reply_but_accepted_request() {
    // Ingress allows 443, egress allows only 443 (a classic mistake).
    let cfg = config(
        vec![eni(&["sg-endpoint"], Some("acl-x"))],
        vec![endpoint_group()],
        vec![NetworkAcl {
            id: "acl-x".into(),
            ingress: vec![entry(100, "tcp", "443", "10.0.0.0/16", RuleAction::Allow)],
            egress: vec![entry(100, "tcp", "443", "10.0.0.0/16", RuleAction::Allow)],
        }],
    );
    let mut f = filter(&cfg);
    let now = Instant::now();
    send(&mut f, now, Ingress, &FLOW_TEMPL, Accept);
    let d = send(&mut f, now, Egress, &reply(&FLOW_TEMPL, TCP_SYN | TCP_ACK), Reject);
    assert_eq!(d.reason, Reason::NaclDefaultDeny { acl: "acl-x".into(), dir: Egress });

    // With the ephemeral range out, the reply passes by state.
    let mut f =
        filter(&config(vec![eni(&["sg-endpoint"], Some("acl-strict"))], vec![endpoint_group()], vec![strict_acl()]));
    send(&mut f, now, Ingress, &FLOW_TEMPL, Accept);
    let d = send(&mut f, now, Egress, &reply(&FLOW_TEMPL, TCP_SYN | TCP_ACK), Accept);
    assert_eq!(d.reason, Reason::Tracked);
}

#[test]
fn traffic_within_the_subnet_skips_the_nacl() {
    let deny_all = NetworkAcl { id: "acl-empty".into(), ..NetworkAcl::default() };
    let cfg = config(vec![eni(&["sg-endpoint"], Some("acl-empty"))], vec![endpoint_group()], vec![deny_all]);
    let mut f = filter(&cfg);
    let now = Instant::now();
    let p = syn(NEIGHBOUR, 443);
    send(&mut f, now, Ingress, &p, Accept);
    send(&mut f, now, Egress, &reply(&p, TCP_SYN | TCP_ACK), Accept);
    // The same from another subnet crosses the boundary.
    send(&mut f, now, Ingress, &syn(CLIENT, 443), Reject);
}

#[test]
fn default_nacl_allows_all() {
    let cfg = config(vec![eni(&["sg-endpoint"], None)], vec![endpoint_group()], vec![]);
    let mut f = filter(&cfg);
    let now = Instant::now();
    send(&mut f, now, Ingress, &FLOW_TEMPL, Accept);
    // Any port back out: only the SG matters.
    send(&mut f, now, Egress, &reply(&FLOW_TEMPL, TCP_SYN | TCP_ACK), Accept);
}

#[test]
fn custom_nacl_with_no_rules_denies_all() {
    let empty = NetworkAcl { id: "acl-new".into(), ..NetworkAcl::default() };
    let cfg = config(vec![eni(&["sg-endpoint"], Some("acl-new"))], vec![endpoint_group()], vec![empty]);
    let now = Instant::now();
    let d = send(&mut filter(&cfg), now, Ingress, &FLOW_TEMPL, Reject);
    assert_eq!(d.reason, Reason::NaclDefaultDeny { acl: "acl-new".into(), dir: Ingress });
    let out = PacketMeta { src: ENI_IP, dst: STRANGER, ..FLOW_TEMPL };
    let d = send(&mut filter(&cfg), now, Egress, &out, Reject);
    assert_eq!(d.reason, Reason::NaclDefaultDeny { acl: "acl-new".into(), dir: Egress });
}

#[test]
fn nacl_applies_to_every_packet_of_a_tracked_flow() {
    // AWS: "Adding a network ACL that blocks traffic in either direction
    // breaks existing connections."
    let cfg = config(vec![eni(&["sg-endpoint"], Some("acl-strict"))], vec![endpoint_group()], vec![strict_acl()]);
    let mut f = filter(&cfg);
    let now = Instant::now();
    send(&mut f, now, Ingress, &FLOW_TEMPL, Accept);
    let mut blocking = strict_acl();
    blocking.ingress.insert(0, entry(10, "tcp", "443", "10.0.2.10/32", RuleAction::Deny));
    f.set_rules(rules(&config(
        vec![eni(&["sg-endpoint"], Some("acl-strict"))],
        vec![endpoint_group()],
        vec![blocking],
    )));
    let d = send(&mut f, now, Ingress, &with_flags(&FLOW_TEMPL, TCP_ACK), Reject);
    assert_eq!(d.reason.label(), "nacl");
    // The reply direction is still allowed by the NACL and by state.
    send(&mut f, now, Egress, &reply(&FLOW_TEMPL, TCP_ACK), Accept);
}

#[test]
fn egress_sg_is_judged_before_egress_nacl() {
    // The ENI starts a flow its SG forbids: the SG decides, the NACL is not reached.
    let cfg = config(
        vec![eni(&["sg-in"], Some("acl-new"))],
        vec![group("sg-in", vec![rule("tcp", "443", from("0.0.0.0/0"))], vec![])],
        vec![NetworkAcl { id: "acl-new".into(), ..NetworkAcl::default() }],
    );
    let out = PacketMeta { src: ENI_IP, dst: STRANGER, ..FLOW_TEMPL };
    let d = filter(&cfg).handle_packet(Instant::now(), 0, Egress, &out);
    assert_eq!(d.reason, Reason::SgNoMatch { dir: Egress });
}

// ---- conntrack return traffic ---------------------------------------------

fn inbound_only() -> RuleSetConfig {
    // 443 in from the VPC; no outbound rules at all.
    let g = group("sg-in", vec![rule("tcp", "443", from("10.0.0.0/16"))], vec![]);
    config(vec![eni(&["sg-in"], None)], vec![g], vec![])
}

#[test]
fn return_traffic_passes_without_an_egress_rule() {
    let mut f = filter(&inbound_only());
    let now = Instant::now();
    send(&mut f, now, Ingress, &FLOW_TEMPL, Accept);
    let d = send(&mut f, now, Egress, &reply(&FLOW_TEMPL, TCP_SYN | TCP_ACK), Accept);
    assert_eq!(d.reason, Reason::Tracked);
    let d = send(&mut f, now, Ingress, &with_flags(&FLOW_TEMPL, TCP_ACK), Accept);
    assert_eq!(d.reason, Reason::Tracked);
    assert_eq!(f.flow_state(0, Ingress, &FLOW_TEMPL), Some(EntryState::TcpEstablished));
    assert_eq!(f.conntrack_len(), 1);
    // A flow the ENI starts itself has no rule: rejected.
    let out = PacketMeta { src: ENI_IP, dst: CLIENT, src_port: 41000, dst_port: 443, ..FLOW_TEMPL };
    let d = send(&mut f, now, Egress, &out, Reject);
    assert_eq!(d.reason, Reason::SgNoMatch { dir: Egress });
    // Another client port is another flow, judged by the rules (and allowed).
    let d = send(&mut f, now, Ingress, &PacketMeta { src_port: 40001, ..FLOW_TEMPL }, Accept);
    assert_eq!(d.reason, sg_reason("sg-in", Ingress, 0));
}

#[test]
fn flow_started_outbound_admits_its_return_inbound() {
    let g = group("sg-out", vec![], vec![rule("udp", "53", from("0.0.0.0/0"))]);
    let mut f = filter(&config(vec![eni(&["sg-out"], None)], vec![g], vec![]));
    let now = Instant::now();
    let q = PacketMeta {
        src: ENI_IP,
        dst: STRANGER,
        protocol: PROTO_UDP,
        src_port: 5353,
        dst_port: 53,
        tcp_flags: 0,
        ..FLOW_TEMPL
    };
    send(&mut f, now, Egress, &q, Accept);
    let d = send(&mut f, now, Ingress, &reply(&q, 0), Accept);
    assert_eq!(d.reason, Reason::Tracked);
    // Same remote, other local port: not the tracked flow.
    send(&mut f, now, Ingress, &PacketMeta { dst_port: 5354, ..reply(&q, 0) }, Reject);
}

#[test]
fn rule_removal_keeps_a_tracked_flow() {
    let mut f = filter(&inbound_only());
    let now = Instant::now();
    send(&mut f, now, Ingress, &FLOW_TEMPL, Accept);
    send(&mut f, now, Egress, &reply(&FLOW_TEMPL, TCP_SYN | TCP_ACK), Accept);
    // The 443 rule is removed.
    let none = group("sg-in", vec![], vec![]);
    f.set_rules(rules(&config(vec![eni(&["sg-in"], None)], vec![none], vec![])));
    let d = send(&mut f, now + secs(1), Ingress, &with_flags(&FLOW_TEMPL, TCP_ACK), Accept);
    assert_eq!(d.reason, Reason::Tracked);
    send(&mut f, now + secs(1), Egress, &reply(&FLOW_TEMPL, TCP_ACK), Accept);
    // New flows follow the new rules.
    send(&mut f, now + secs(1), Ingress, &PacketMeta { src_port: 40001, ..FLOW_TEMPL }, Reject);
}

#[test]
fn rst_alone_is_not_tracked_and_closed_flow_reuse_is_rejudged() {
    let mut f = filter(&inbound_only());
    let now = Instant::now();
    send(&mut f, now, Ingress, &with_flags(&FLOW_TEMPL, TCP_RST), Accept);
    assert_eq!(f.conntrack_len(), 0);

    send(&mut f, now, Ingress, &FLOW_TEMPL, Accept);
    send(&mut f, now, Egress, &reply(&FLOW_TEMPL, TCP_RST | TCP_ACK), Accept);
    assert_eq!(f.flow_state(0, Ingress, &FLOW_TEMPL), Some(EntryState::TcpClosed));
    // The 443 rule goes away; a new SYN on the same 5-tuple is a new flow.
    f.set_rules(rules(&config(vec![eni(&["sg-in"], None)], vec![group("sg-in", vec![], vec![])], vec![])));
    let d = send(&mut f, now + secs(1), Ingress, &FLOW_TEMPL, Reject);
    assert_eq!(d.reason, Reason::SgNoMatch { dir: Ingress });
}

#[test]
fn tcp_state_machine_walks_handshake_close() {
    let mut f = filter(&inbound_only());
    let now = Instant::now();
    let st = |f: &Filter| f.flow_state(0, Ingress, &FLOW_TEMPL);
    send(&mut f, now, Ingress, &FLOW_TEMPL, Accept);
    assert_eq!(st(&f), Some(EntryState::TcpHandshake));
    send(&mut f, now, Egress, &reply(&FLOW_TEMPL, TCP_SYN | TCP_ACK), Accept);
    assert_eq!(st(&f), Some(EntryState::TcpHandshake));
    send(&mut f, now, Ingress, &with_flags(&FLOW_TEMPL, TCP_ACK), Accept);
    assert_eq!(st(&f), Some(EntryState::TcpEstablished));
    send(&mut f, now, Egress, &reply(&FLOW_TEMPL, TCP_FIN | TCP_ACK), Accept);
    assert_eq!(st(&f), Some(EntryState::TcpClosing));
    send(&mut f, now, Ingress, &with_flags(&FLOW_TEMPL, TCP_FIN | TCP_ACK), Accept);
    assert_eq!(st(&f), Some(EntryState::TcpClosed));
    send(&mut f, now, Egress, &reply(&FLOW_TEMPL, TCP_ACK), Accept);
}

#[test]
fn full_table_refuses_new_flows_with_a_distinct_reason() {
    let fc = FilterConfig { max_entries: 2, ..FilterConfig::default() };
    let mut f = filter_with(&inbound_only(), fc);
    let now = Instant::now();
    send(&mut f, now, Ingress, &PacketMeta { src_port: 1, ..FLOW_TEMPL }, Accept);
    send(&mut f, now, Ingress, &PacketMeta { src_port: 2, ..FLOW_TEMPL }, Accept);
    let d = send(&mut f, now, Ingress, &PacketMeta { src_port: 3, ..FLOW_TEMPL }, Reject);
    assert_eq!(d.reason, Reason::ConntrackFull);
    // Tracked flows still pass.
    send(&mut f, now, Egress, &reply(&PacketMeta { src_port: 1, ..FLOW_TEMPL }, TCP_SYN | TCP_ACK), Accept);
    // Once the half-open flows time out, a new one fits (collected on demand).
    send(&mut f, now + secs(60), Ingress, &PacketMeta { src_port: 3, ..FLOW_TEMPL }, Accept);
    assert_eq!(f.conntrack_len(), 1);
}

// ---- timeouts -------------------------------------------------------------

/// Opens an established flow at `now` through `inbound_only`.
fn established(fc: FilterConfig, now: Instant) -> Filter {
    let mut f = filter_with(&inbound_only(), fc);
    send(&mut f, now, Ingress, &FLOW_TEMPL, Accept);
    send(&mut f, now, Egress, &reply(&FLOW_TEMPL, TCP_SYN | TCP_ACK), Accept);
    send(&mut f, now, Ingress, &with_flags(&FLOW_TEMPL, TCP_ACK), Accept);
    assert_eq!(f.flow_state(0, Ingress, &FLOW_TEMPL), Some(EntryState::TcpEstablished));
    f
}

#[test]
fn tcp_established_idle_timeout_default_is_five_days() {
    let now = Instant::now();
    let data = reply(&FLOW_TEMPL, TCP_ACK);
    let mut f = established(FilterConfig::default(), now);
    send(&mut f, now + secs(431_999), Egress, &data, Accept);
    // Activity refreshes: another 431999 s later still alive.
    send(&mut f, now + secs(2 * 431_999), Egress, &data, Accept);

    let mut f = established(FilterConfig::default(), now);
    // Idle for exactly the timeout: gone; with no egress rule the reply is rejected.
    let d = send(&mut f, now + secs(432_000), Egress, &data, Reject);
    assert_eq!(d.reason, Reason::SgNoMatch { dir: Egress });
}

#[test]
fn tcp_established_timeout_is_configurable() {
    let now = Instant::now();
    let fc = FilterConfig {
        timeouts: ConntrackTimeouts { tcp_established: secs(60), ..ConntrackTimeouts::default() },
        ..FilterConfig::default()
    };
    let data = reply(&FLOW_TEMPL, TCP_ACK);
    let mut f = established(fc.clone(), now);
    send(&mut f, now + secs(59), Egress, &data, Accept);
    let mut f = established(fc, now);
    send(&mut f, now + secs(60), Egress, &data, Reject);
}

#[test]
fn short_timeouts_for_other_states() {
    let t = ConntrackTimeouts::default();
    let now = Instant::now();
    // (state reached, its timeout, packets to reach it: (dir, facts))
    let udp = PacketMeta { protocol: PROTO_UDP, tcp_flags: 0, dst_port: 443, ..FLOW_TEMPL };
    let icmp = PacketMeta { protocol: PROTO_ICMP, tcp_flags: 0, src_port: 0, dst_port: 0, ..FLOW_TEMPL };
    let gre = PacketMeta { protocol: 47, tcp_flags: 0, src_port: 0, dst_port: 0, ..FLOW_TEMPL };
    type Steps = Vec<(Direction, PacketMeta)>;
    let cases: Vec<(EntryState, Duration, Steps)> = vec![
        (EntryState::TcpHandshake, t.tcp_handshake, vec![(Ingress, FLOW_TEMPL)]),
        (
            EntryState::TcpClosing,
            t.tcp_closing,
            vec![
                (Ingress, FLOW_TEMPL),
                (Egress, reply(&FLOW_TEMPL, TCP_SYN | TCP_ACK)),
                (Ingress, with_flags(&FLOW_TEMPL, TCP_FIN | TCP_ACK)),
            ],
        ),
        (EntryState::TcpClosed, t.tcp_closed, vec![(Ingress, FLOW_TEMPL), (Ingress, with_flags(&FLOW_TEMPL, TCP_RST))]),
        (EntryState::UdpSingle, t.udp, vec![(Ingress, udp), (Egress, reply(&udp, 0))]),
        (EntryState::UdpStream, t.udp_stream, vec![(Ingress, udp), (Egress, reply(&udp, 0)), (Ingress, udp)]),
        (EntryState::Icmp, t.icmp, vec![(Ingress, icmp)]),
        (EntryState::Other, t.other, vec![(Ingress, gre)]),
    ];
    // Everything in from the VPC, nothing out: the reply lives on state alone.
    let g = group("sg-in", vec![rule("all", "all", from("10.0.0.0/16"))], vec![]);
    let cfg = config(vec![eni(&["sg-in"], None)], vec![g], vec![]);
    for (state, timeout, packets) in cases {
        assert!(timeout < t.tcp_established, "{state}");
        for (alive, at) in [(true, timeout - secs(1)), (false, timeout)] {
            let mut f = filter(&cfg);
            for (dir, p) in &packets {
                send(&mut f, now, *dir, p, Accept);
            }
            let (_, first) = packets[0];
            assert_eq!(f.flow_state(0, Ingress, &first), Some(state));
            let back = reply(&first, TCP_ACK);
            let want = if alive { Accept } else { Reject };
            let d = f.handle_packet(now + at, 0, Egress, &back);
            assert_eq!(d.action, want, "{state} after {at:?}: {d}");
        }
    }
}

#[test]
fn handle_timeout_expires_and_poll_timeout_tracks_the_earliest() {
    let mut f = filter(&inbound_only());
    let now = Instant::now();
    assert_eq!(f.poll_timeout(), None);
    send(&mut f, now, Ingress, &FLOW_TEMPL, Accept); // handshake: 60 s
    let other = PacketMeta { src_port: 40001, ..FLOW_TEMPL };
    send(&mut f, now + secs(10), Ingress, &other, Accept); // due at 70 s
    assert_eq!(f.poll_timeout(), Some(now + secs(60)));
    // The first flow is refreshed at 30 s: its real deadline is 90 s.
    send(&mut f, now + secs(30), Ingress, &FLOW_TEMPL, Accept);
    f.handle_timeout(now + secs(60));
    assert_eq!(f.conntrack_len(), 2, "refreshed flow must survive its stale deadline");
    assert_eq!(f.poll_timeout(), Some(now + secs(70)));
    f.handle_timeout(now + secs(70));
    assert_eq!(f.conntrack_len(), 1);
    assert_eq!(f.poll_timeout(), Some(now + secs(90)));
    f.handle_timeout(now + secs(90));
    assert_eq!(f.conntrack_len(), 0);
    assert_eq!(f.poll_timeout(), None);
}

#[test]
fn shortening_state_change_reschedules_earlier() {
    let now = Instant::now();
    let mut f = established(FilterConfig::default(), now);
    assert_eq!(f.poll_timeout(), Some(now + secs(60)), "the handshake deadline is still queued");
    f.handle_timeout(now + secs(60));
    assert_eq!(f.poll_timeout(), Some(now + secs(432_000)));
    send(&mut f, now + secs(100), Ingress, &with_flags(&FLOW_TEMPL, TCP_RST), Accept);
    assert_eq!(f.poll_timeout(), Some(now + secs(110)));
    f.handle_timeout(now + secs(110));
    assert_eq!(f.conntrack_len(), 0);
}

#[test]
fn timeout_validation() {
    let bad = [
        ConntrackTimeouts { tcp_established: secs(59), ..Default::default() },
        ConntrackTimeouts { tcp_established: secs(432_001), ..Default::default() },
        ConntrackTimeouts { udp: secs(29), ..Default::default() },
        ConntrackTimeouts { udp: secs(61), ..Default::default() },
        ConntrackTimeouts { udp_stream: secs(181), ..Default::default() },
        ConntrackTimeouts { tcp_closed: secs(0), ..Default::default() },
    ];
    for t in bad {
        let fc = FilterConfig { timeouts: t, ..FilterConfig::default() };
        assert!(matches!(Filter::new(rules(&inbound_only()), fc), Err(FilterConfigError::Timeout { .. })), "{t:?}");
    }
    let e = ConntrackTimeouts { tcp_established: secs(59), ..Default::default() }.validate().unwrap_err();
    assert_eq!(e.to_string(), "conntrack timeout tcp_established = 59 s is outside 60..=432000 s");
    let fc = FilterConfig { max_entries: 0, ..FilterConfig::default() };
    assert!(matches!(Filter::new(rules(&inbound_only()), fc), Err(FilterConfigError::ZeroMaxEntries)));
}

// ---- untracked ------------------------------------------------------------

fn open_both_ways() -> SecurityGroup {
    group("sg-open", vec![rule("all", "all", from("0.0.0.0/0"))], vec![rule("all", "all", from("0.0.0.0/0"))])
}

#[test]
fn open_both_ways_flows_are_untracked_and_cut_by_rule_removal() {
    let cfg = config(vec![eni(&["sg-open"], None)], vec![open_both_ways()], vec![]);
    let mut f = filter(&cfg);
    let now = Instant::now();
    let d = send(&mut f, now, Ingress, &FLOW_TEMPL, Accept);
    assert_eq!(d.reason, Reason::Untracked { group: "sg-open".into(), dir: Ingress, index: 0 });
    send(&mut f, now, Egress, &reply(&FLOW_TEMPL, TCP_SYN | TCP_ACK), Accept);
    assert_eq!(f.conntrack_len(), 0);
    // Inbound rule removed: the flow is cut at once, both ways (outbound
    // still open, but the client's packets no longer get in).
    let closed_in = group("sg-open", vec![], vec![rule("all", "all", from("0.0.0.0/0"))]);
    f.set_rules(rules(&config(vec![eni(&["sg-open"], None)], vec![closed_in], vec![])));
    let d = send(&mut f, now, Ingress, &with_flags(&FLOW_TEMPL, TCP_ACK), Reject);
    assert_eq!(d.reason, Reason::SgNoMatch { dir: Ingress });
}

#[test]
fn aws_example_narrow_inbound_is_tracked_open_inbound_is_not() {
    // AWS's example: TCP 22 from 203.0.113.1/32 (tracked), TCP 80 from
    // 0.0.0.0/0 (untracked), ICMP from 0.0.0.0/0 (always tracked), all out.
    let admin = Ipv4Addr::new(203, 0, 113, 1);
    let g = group(
        "sg-web",
        vec![
            rule("tcp", "22", from("203.0.113.1/32")),
            rule("tcp", "80", from("0.0.0.0/0")),
            rule("icmp", "all", from("0.0.0.0/0")),
        ],
        vec![rule("all", "all", from("0.0.0.0/0"))],
    );
    let cfg = config(vec![eni(&["sg-web"], None)], vec![g], vec![]);
    let now = Instant::now();
    let cases = [
        (syn(admin, 22), "sg", 1),
        (syn(STRANGER, 80), "untracked", 0),
        (
            PacketMeta { src: STRANGER, protocol: PROTO_ICMP, src_port: 0, dst_port: 0, tcp_flags: 0, ..FLOW_TEMPL },
            "sg",
            1,
        ),
    ];
    for (p, label, tracked) in cases {
        let mut f = filter(&cfg);
        let d = send(&mut f, now, Ingress, &p, Accept);
        assert_eq!((d.reason.label(), f.conntrack_len()), (label, tracked), "{p:?}");
    }
    // Without the open outbound rule, port 80 is tracked too.
    let g = group("sg-web", vec![rule("tcp", "80", from("0.0.0.0/0"))], vec![rule("tcp", "443", from("0.0.0.0/0"))]);
    let mut f = filter(&config(vec![eni(&["sg-web"], None)], vec![g], vec![]));
    assert_eq!(send(&mut f, now, Ingress, &syn(STRANGER, 80), Accept).reason.label(), "sg");
}

#[test]
fn reply_of_an_untracked_flow_stays_untracked_and_is_cut_with_its_rule() {
    // AWS: "An untracked flow of traffic is immediately interrupted if the
    // rule that enables the flow is removed or modified."
    let web = |ingress| {
        let g = group("sg-web", ingress, vec![rule("all", "all", from("0.0.0.0/0"))]);
        config(vec![eni(&["sg-web"], None)], vec![g], vec![])
    };
    let mut f = filter(&web(vec![rule("tcp", "80", from("0.0.0.0/0"))]));
    let now = Instant::now();
    let req = syn(STRANGER, 80);
    assert_eq!(send(&mut f, now, Ingress, &req, Accept).reason.label(), "untracked");
    let d = send(&mut f, now, Egress, &reply(&req, TCP_SYN | TCP_ACK), Accept);
    assert_eq!(d.reason.label(), "untracked", "the response must not start a tracked flow");
    assert_eq!(f.conntrack_len(), 0);
    f.set_rules(rules(&web(vec![])));
    send(&mut f, now, Ingress, &with_flags(&req, TCP_ACK), Reject);
    // A flow the ENI starts itself (to 443, from an ephemeral port no 0/0
    // inbound rule covers) is tracked as usual.
    let mut f = filter(&web(vec![rule("tcp", "80", from("0.0.0.0/0"))]));
    let out = PacketMeta { src: ENI_IP, dst: STRANGER, src_port: 50000, dst_port: 443, ..FLOW_TEMPL };
    assert_eq!(send(&mut f, now, Egress, &out, Accept).reason.label(), "sg");
    assert_eq!(f.conntrack_len(), 1);
}

#[test]
fn narrowing_either_rule_of_an_untracked_flow_cuts_it() {
    // AWS: "An untracked flow of traffic is immediately interrupted if the
    // rule that enables the flow is removed or modified." A download runs on
    // an untracked flow (all open both ways); then the inbound rule, the
    // outbound rule or both are narrowed to a block without the client. The
    // download's next two packets, in either order: the ENI's data segment
    // and the client's ACK. Whichever comes first must not open a tracked
    // flow that lets the other through as its reply.
    let all = || rule("all", "all", from("0.0.0.0/0"));
    let narrow = || rule("all", "all", from("10.9.0.0/16"));
    let cfg = |ingress, egress| config(vec![eni(&["sg-open"], None)], vec![group("sg-open", ingress, egress)], vec![]);
    let data = reply(&FLOW_TEMPL, TCP_ACK);
    let ack = with_flags(&FLOW_TEMPL, TCP_ACK);
    let now = Instant::now();
    for (case, ingress, egress) in [
        ("inbound narrowed", vec![narrow()], vec![all()]),
        ("outbound narrowed", vec![all()], vec![narrow()]),
        ("both narrowed", vec![narrow()], vec![narrow()]),
    ] {
        let (data_passes, ack_passes) = (case == "inbound narrowed", case == "outbound narrowed");
        for data_first in [true, false] {
            let mut f = filter(&cfg(vec![all()], vec![all()]));
            for (dir, p) in [(Ingress, FLOW_TEMPL), (Egress, reply(&FLOW_TEMPL, TCP_SYN | TCP_ACK)), (Ingress, ack)] {
                assert_eq!(send(&mut f, now, dir, &p, Accept).reason.label(), "untracked", "{case}");
            }
            f.set_rules(rules(&cfg(ingress.clone(), egress.clone())));
            let order = if data_first { [(Egress, data), (Ingress, ack)] } else { [(Ingress, ack), (Egress, data)] };
            for (dir, p) in order {
                let want = if dir == Egress { data_passes } else { ack_passes };
                let d = f.handle_packet(now, 0, dir, &p);
                assert_eq!(d.is_accept(), want, "{case}, data first: {data_first}: {dir} → {d}");
            }
            assert_eq!(f.conntrack_len(), 0, "{case}: nothing was tracked");
        }
    }
}

#[test]
fn only_a_syn_opens_a_tracked_tcp_flow() {
    // 443 in from the VPC, nothing out: an ACK, data, a FIN or an RST of no
    // tracked flow passes the inbound rule and opens nothing, so the ENI's
    // reply needs a rule of its own (there is none).
    let now = Instant::now();
    for flags in [TCP_ACK, TCP_ACK | TCP_FIN, TCP_RST, TCP_RST | TCP_ACK, TCP_SYN | TCP_ACK] {
        let mut f = filter(&inbound_only());
        let d = send(&mut f, now, Ingress, &with_flags(&FLOW_TEMPL, flags), Accept);
        assert_eq!(d.reason, Reason::MidFlow { group: "sg-in".into(), dir: Ingress, index: 0 }, "flags {flags:#x}");
        assert_eq!(f.conntrack_len(), 0, "flags {flags:#x}");
        send(&mut f, now, Egress, &reply(&FLOW_TEMPL, TCP_ACK), Reject);
    }
    let mut f = filter(&inbound_only());
    send(&mut f, now, Ingress, &FLOW_TEMPL, Accept);
    assert_eq!(f.conntrack_len(), 1);
    send(&mut f, now, Egress, &reply(&FLOW_TEMPL, TCP_SYN | TCP_ACK), Accept);
}

#[test]
fn peek_judges_without_tracking_anything() {
    let cfg = config(vec![eni(&["sg-endpoint"], Some("acl-strict"))], vec![endpoint_group()], vec![strict_acl()]);
    let mut f = filter(&cfg);
    let now = Instant::now();
    let syn_ack = reply(&FLOW_TEMPL, TCP_SYN | TCP_ACK);
    // Before the SYN: the outbound rule allows the reply, as a new flow; nothing is tracked.
    assert_eq!(f.peek(now, 0, Egress, &syn_ack), f.rules().evaluate(0, Egress, &syn_ack));
    assert_eq!(f.conntrack_len(), 0);
    send(&mut f, now, Ingress, &FLOW_TEMPL, Accept);
    assert_eq!(f.peek(now, 0, Egress, &syn_ack), Decision::accept(Reason::Tracked));
    // Peeking advanced nothing: the flow is still in its handshake, and expires on time.
    assert_eq!(f.flow_state(0, Ingress, &FLOW_TEMPL), Some(EntryState::TcpHandshake));
    assert!(!f.peek(now + secs(60), 0, Egress, &syn_ack).reason.eq(&Reason::Tracked));
    // The NACL still judges a tracked flow's reply: a client port below 1024 has no egress entry.
    let low = PacketMeta { src_port: 1000, ..FLOW_TEMPL };
    send(&mut f, now, Ingress, &low, Accept);
    let d = f.peek(now, 0, Egress, &reply(&low, TCP_SYN | TCP_ACK));
    assert_eq!(d.reason, Reason::NaclDefaultDeny { acl: "acl-strict".into(), dir: Egress });
    assert_eq!(f.flow_state(0, Ingress, &low), Some(EntryState::TcpHandshake), "the reject advanced nothing");
}

#[test]
fn untracked_needs_the_open_rule_to_match_not_just_exist() {
    // 443 from the VPC (narrow) and 22 from anywhere; all out. A 443 flow
    // from the VPC is allowed by the narrow rule only: tracked.
    let g = group(
        "sg-mix",
        vec![rule("tcp", "443", from("10.0.0.0/16")), rule("tcp", "22", from("0.0.0.0/0"))],
        vec![rule("all", "all", from("0.0.0.0/0"))],
    );
    let cfg = config(vec![eni(&["sg-mix"], None)], vec![g], vec![]);
    let now = Instant::now();
    let mut f = filter(&cfg);
    assert_eq!(send(&mut f, now, Ingress, &syn(CLIENT, 443), Accept).reason.label(), "sg");
    assert_eq!(send(&mut f, now, Ingress, &syn(CLIENT, 22), Accept).reason.label(), "untracked");
}

#[test]
fn always_track_tracks_open_flows() {
    let cfg = config(vec![eni(&["sg-open"], None)], vec![open_both_ways()], vec![]);
    let mut f = filter_with(&cfg, FilterConfig { always_track: true, ..FilterConfig::default() });
    let now = Instant::now();
    let d = send(&mut f, now, Ingress, &FLOW_TEMPL, Accept);
    assert_eq!(d.reason, sg_reason("sg-open", Ingress, 0));
    assert_eq!(f.conntrack_len(), 1);
}

// ---- quotas and validation ------------------------------------------------

fn n_rules(n: usize) -> Vec<SgRule> {
    (0..n).map(|i| rule("tcp", &(1000 + i).to_string(), from("10.0.0.0/16"))).collect()
}

#[test]
fn quota_and_reference_errors() {
    let ok = || config(vec![eni(&["sg-endpoint"], Some("acl-strict"))], vec![endpoint_group()], vec![strict_acl()]);
    RuleSet::build(&ok()).unwrap();
    type Mutate = fn(&mut RuleSetConfig);
    let cases: Vec<(&str, Mutate, &str)> = vec![
        (
            "61 inbound rules",
            |c| c.security_groups[0].ingress = n_rules(61),
            "security group sg-endpoint has 61 ingress rules; the quota is 60",
        ),
        (
            "61 outbound rules",
            |c| c.security_groups[0].egress = n_rules(61),
            "security group sg-endpoint has 61 egress rules; the quota is 60",
        ),
        (
            "6 groups on one ENI",
            |c| {
                for i in 0..5 {
                    c.security_groups.push(group(&format!("sg-{i}"), vec![], vec![]));
                    c.enis[0].security_groups.push(format!("sg-{i}"));
                }
            },
            "ENI 0 has 6 security groups; the quota is 5",
        ),
        (
            "21 NACL entries",
            |c| {
                c.network_acls[0].ingress =
                    (1..=21).map(|i| entry(i, "tcp", "443", "10.0.0.0/16", RuleAction::Allow)).collect()
            },
            "network ACL acl-strict has 21 ingress entries; the quota is 20",
        ),
        (
            "duplicate rule number",
            |c| c.network_acls[0].egress.push(entry(100, "udp", "53", "0.0.0.0/0", RuleAction::Deny)),
            "network ACL acl-strict: egress rule number 100 is used twice",
        ),
        (
            "unknown group on ENI",
            |c| c.enis[0].security_groups = vec!["sg-nope".into()],
            "unknown security group sg-nope (referenced by ENI 0)",
        ),
        (
            "unknown group in rule",
            |c| c.security_groups[0].ingress.push(rule("tcp", "443", SgPeer::Group("sg-gone".into()))),
            "unknown security group sg-gone (referenced by sg-endpoint ingress rule #1)",
        ),
        (
            "unknown group in members",
            |c| c.group_members.push(GroupMembers { group: "sg-ghost".into(), ips: vec![] }),
            "unknown security group sg-ghost (referenced by group_members)",
        ),
        (
            "unknown NACL",
            |c| c.enis[0].network_acl = Some("acl-nope".into()),
            "unknown network ACL acl-nope (referenced by ENI 0)",
        ),
        (
            "unknown prefix list",
            |c| c.security_groups[0].egress.push(rule("tcp", "443", SgPeer::PrefixList("pl-x".into()))),
            "unknown prefix list pl-x (referenced by sg-endpoint egress rule #1)",
        ),
        (
            "duplicate group",
            |c| c.security_groups.push(endpoint_group()),
            "security group sg-endpoint is defined twice",
        ),
        ("duplicate NACL", |c| c.network_acls.push(strict_acl()), "network ACL acl-strict is defined twice"),
        (
            "duplicate prefix list",
            |c| c.prefix_lists = vec![PrefixList { id: "pl-a".into(), cidrs: vec![] }; 2],
            "prefix list pl-a is defined twice",
        ),
        ("duplicate ENI", |c| c.enis.push(c.enis[0].clone()), "ENI index 0 is listed twice"),
        (
            "group listed twice",
            |c| c.enis[0].security_groups.push("sg-endpoint".into()),
            "ENI 0 lists security group sg-endpoint twice",
        ),
        ("ENI outside subnet", |c| c.enis[0].ip = CLIENT, "ENI 0: address 10.0.2.10 is outside its subnet 10.0.1.0/24"),
    ];
    for (name, mutate, want) in cases {
        let mut c = ok();
        mutate(&mut c);
        let err = RuleSet::build(&c).expect_err(name);
        assert_eq!(err.to_string(), want, "{name}");
    }
}

#[test]
fn quotas_are_adjustable_and_exact_limits_pass() {
    let mut c = config(vec![eni(&["sg-big"], None)], vec![group("sg-big", n_rules(60), n_rules(60))], vec![]);
    RuleSet::build(&c).unwrap();
    c.security_groups[0].ingress = n_rules(61);
    assert!(RuleSet::build(&c).is_err());
    c.quotas = Quotas { rules_per_group: 100, ..Quotas::default() };
    RuleSet::build(&c).unwrap();
    // NACL: 20 is fine, 40 with the raised quota.
    let acl = |n: u32| NetworkAcl {
        id: "acl-big".into(),
        ingress: (1..=n).map(|i| entry(i, "tcp", "443", "10.0.0.0/16", RuleAction::Allow)).collect(),
        egress: vec![],
    };
    let mut c = config(vec![eni(&["sg-endpoint"], Some("acl-big"))], vec![endpoint_group()], vec![acl(20)]);
    RuleSet::build(&c).unwrap();
    c.network_acls = vec![acl(40)];
    assert!(RuleSet::build(&c).is_err());
    c.quotas.nacl_entries_per_direction = 40;
    RuleSet::build(&c).unwrap();
}

#[test]
fn rule_number_out_of_range_is_a_clear_error() {
    let e = RuleNumber::new(40000).unwrap_err();
    assert_eq!(e.to_string(), "network ACL rule number 40000 out of range 1..=32766");
    let as_set: RuleSetError = e.into();
    assert_eq!(as_set.to_string(), "network ACL rule number 40000 out of range 1..=32766");
}

#[test]
fn evaluate_is_a_stateless_reachability_check() {
    let rs =
        rules(&config(vec![eni(&["sg-endpoint"], Some("acl-strict"))], vec![endpoint_group()], vec![strict_acl()]));
    assert_eq!(
        rs.evaluate(0, Ingress, &FLOW_TEMPL),
        Decision { action: Accept, reason: sg_reason("sg-endpoint", Ingress, 0) }
    );
    // Without state a reply is a new egress flow: SG egress allows, NACL egress allows the ephemeral port.
    assert!(rs.evaluate(0, Egress, &reply(&FLOW_TEMPL, TCP_ACK)).is_accept());
    assert_eq!(rs.compiled_sg_len(0, Ingress), Some(1));
    assert!(!rs.contains_eni(1));
}

// ---- property: compiled filter vs reference model ------------------------

mod property {
    use super::*;
    use proptest::prelude::*;

    /// Addresses the generators draw from: ENI subnet, other subnets, outside.
    const POOL: [Ipv4Addr; 6] = [
        Ipv4Addr::new(10, 0, 1, 20),
        Ipv4Addr::new(10, 0, 1, 200),
        Ipv4Addr::new(10, 0, 2, 10),
        Ipv4Addr::new(10, 0, 3, 77),
        Ipv4Addr::new(192, 0, 2, 7),
        Ipv4Addr::new(198, 51, 100, 1),
    ];
    const CIDRS: [&str; 7] =
        ["0.0.0.0/0", "10.0.0.0/16", "10.0.1.0/24", "10.0.2.0/24", "10.0.2.10/32", "192.0.2.0/24", "192.0.2.8/29"];
    const PORTS: [u16; 5] = [22, 80, 443, 1024, 40000];
    const RANGES: [&str; 6] = ["443", "80", "all", "1024-65535", "22-443", "40000"];
    const PROTOS: [&str; 4] = ["tcp", "udp", "icmp", "all"];
    const GROUPS: [&str; 3] = ["sg-0", "sg-1", "sg-2"];

    fn sg_rule() -> impl Strategy<Value = SgRule> {
        (0..4usize, 0..6usize, 0..10usize).prop_map(|(p, r, peer)| SgRule {
            protocol: PROTOS[p].parse().unwrap(),
            ports: RANGES[r].parse().unwrap(),
            peer: match peer {
                0..=6 => SgPeer::Cidr(cidr(CIDRS[peer])),
                7 => SgPeer::Group("sg-0".into()),
                8 => SgPeer::Group("sg-default".into()),
                _ => SgPeer::PrefixList("pl-a".into()),
            },
        })
    }

    fn nacl_entries() -> impl Strategy<Value = Vec<NaclEntry>> {
        proptest::collection::vec((1..40u32, 0..4usize, 0..6usize, 0..7usize, any::<bool>()), 0..6).prop_map(|v| {
            let mut seen = std::collections::HashSet::new();
            v.into_iter()
                .filter(|(n, ..)| seen.insert(*n))
                .map(|(n, p, r, c, allow)| NaclEntry {
                    rule: RuleNumber::new(n * 10).unwrap(),
                    protocol: PROTOS[p].parse().unwrap(),
                    ports: RANGES[r].parse().unwrap(),
                    cidr: cidr(CIDRS[c]),
                    action: if allow { RuleAction::Allow } else { RuleAction::Deny },
                })
                .collect()
        })
    }

    prop_compose! {
        fn arb_config()(
            groups in proptest::collection::vec(
                (proptest::collection::vec(sg_rule(), 0..5), proptest::collection::vec(sg_rule(), 0..5)), 3),
            on_eni in proptest::sample::subsequence(vec![0usize, 1, 2], 0..=3),
            nacl in proptest::option::of((nacl_entries(), nacl_entries())),
            members in proptest::collection::vec((0..3usize, 0..6usize), 0..4),
        ) -> RuleSetConfig {
            let security_groups = groups.into_iter().enumerate()
                .map(|(i, (ingress, egress))| group(GROUPS[i], ingress, egress)).collect();
            let mut e = eni(&on_eni.iter().map(|&i| GROUPS[i]).collect::<Vec<_>>(), None);
            let mut network_acls = vec![];
            if let Some((ingress, egress)) = nacl {
                e.network_acl = Some("acl-p".into());
                network_acls.push(NetworkAcl { id: "acl-p".into(), ingress, egress });
            }
            let mut group_members: Vec<GroupMembers> = members.into_iter()
                .map(|(g, a)| GroupMembers { group: GROUPS[g].into(), ips: vec![POOL[a]] }).collect();
            group_members.push(GroupMembers { group: "sg-default".into(), ips: vec![POOL[2]] });
            RuleSetConfig {
                enis: vec![e],
                security_groups,
                network_acls,
                group_members,
                prefix_lists: vec![PrefixList { id: "pl-a".into(), cidrs: vec![cidr("10.0.3.0/24"), cidr("198.51.100.0/30")] }],
                ..RuleSetConfig::default()
            }
        }
    }

    fn arb_packet() -> impl Strategy<Value = (Direction, PacketMeta)> {
        (any::<bool>(), 0..6usize, prop_oneof![Just(1u8), Just(6u8), Just(17u8), Just(47u8)], 0..5usize, 0..5usize)
            .prop_map(|(ingress, a, protocol, sp, dp)| {
                let (sport, dport) = if protocol == 6 || protocol == 17 { (PORTS[sp], PORTS[dp]) } else { (0, 0) };
                let (dir, src, dst) = if ingress { (Ingress, POOL[a], ENI_IP) } else { (Egress, ENI_IP, POOL[a]) };
                (dir, PacketMeta { src, dst, protocol, src_port: sport, dst_port: dport, ..FLOW_TEMPL })
            })
    }

    /// The obviously-correct model: loops over the uncompiled rules.
    fn reference(cfg: &RuleSetConfig, dir: Direction, p: &PacketMeta) -> (Action, Reason) {
        let e = &cfg.enis[0];
        let remote = if dir == Ingress { p.src } else { p.dst };
        let nacl = || -> Option<Reason> {
            let acl = cfg.network_acls.iter().find(|a| Some(&a.id) == e.network_acl.as_ref())?;
            if e.subnet.contains(remote) {
                return None;
            }
            let mut entries = if dir == Ingress { acl.ingress.clone() } else { acl.egress.clone() };
            entries.sort_by_key(|x| x.rule);
            for x in &entries {
                if x.matches(p.protocol, remote, p.dst_port) {
                    return match x.action {
                        RuleAction::Allow => None,
                        RuleAction::Deny => Some(Reason::NaclRule { acl: acl.id.as_str().into(), rule: x.rule, dir }),
                    };
                }
            }
            Some(Reason::NaclDefaultDeny { acl: acl.id.as_str().into(), dir })
        };
        let default_group = group(
            "sg-default",
            vec![rule("all", "all", SgPeer::Group("sg-default".into()))],
            vec![rule("all", "all", from("0.0.0.0/0"))],
        );
        let lookup = |id: &str| {
            cfg.security_groups.iter().find(|g| g.id == id).cloned().unwrap_or_else(|| default_group.clone())
        };
        let members = |id: &str| -> Vec<Ipv4Addr> {
            let mut m: Vec<Ipv4Addr> =
                cfg.group_members.iter().filter(|gm| gm.group == id).flat_map(|gm| gm.ips.clone()).collect();
            let on_eni = if e.security_groups.is_empty() {
                id == "sg-default"
            } else {
                e.security_groups.iter().any(|g| g == id)
            };
            if on_eni {
                m.push(e.ip);
            }
            m
        };
        let peer_has = |peer: &SgPeer| match peer {
            SgPeer::Cidr(c) => c.contains(remote),
            SgPeer::Group(id) => members(id).contains(&remote),
            SgPeer::PrefixList(id) => cfg
                .prefix_lists
                .iter()
                .filter(|pl| &pl.id == id)
                .flat_map(|pl| pl.cidrs.iter())
                .any(|c| c.contains(remote)),
        };
        let rule_allows = |r: &SgRule| {
            r.protocol.matches(p.protocol)
                && (!r.protocol.has_ports() || r.ports.contains(p.dst_port))
                && peer_has(&r.peer)
        };
        let names: Vec<String> =
            if e.security_groups.is_empty() { vec!["sg-default".into()] } else { e.security_groups.clone() };
        let sg = || -> Option<Reason> {
            for id in &names {
                let g = lookup(id);
                let list = if dir == Ingress { &g.ingress } else { &g.egress };
                for (i, r) in list.iter().enumerate() {
                    if rule_allows(r) {
                        return Some(sg_reason(id, dir, i as u16));
                    }
                }
            }
            None
        };
        if dir == Ingress {
            if let Some(r) = nacl() {
                return (Reject, r);
            }
        }
        let Some(allowed) = sg() else {
            return (Reject, Reason::SgNoMatch { dir });
        };
        if dir == Egress {
            if let Some(r) = nacl() {
                return (Reject, r);
            }
        }
        (Accept, allowed)
    }

    /// AWS's untracked condition, straight from the uncompiled rules: a 0/0
    /// rule allows the packet (or its reverse) and the other direction is
    /// open to 0/0 on every port. TCP and UDP only.
    fn reference_untracked(cfg: &RuleSetConfig, dir: Direction, p: &PacketMeta) -> bool {
        let e = &cfg.enis[0];
        let names: Vec<String> =
            if e.security_groups.is_empty() { vec!["sg-default".into()] } else { e.security_groups.clone() };
        let covers_world = |peer: &SgPeer| match peer {
            SgPeer::Cidr(c) => c.prefix() == 0,
            SgPeer::PrefixList(id) => cfg
                .prefix_lists
                .iter()
                .filter(|pl| &pl.id == id)
                .flat_map(|pl| pl.cidrs.iter())
                .any(|c| c.prefix() == 0),
            SgPeer::Group(_) => false,
        };
        let world_rules = |d: Direction| -> Vec<SgRule> {
            let mut out = vec![];
            for id in &names {
                let g = cfg.security_groups.iter().find(|g| &g.id == id);
                let list = match (g, d) {
                    (Some(g), Ingress) => g.ingress.clone(),
                    (Some(g), Egress) => g.egress.clone(),
                    (None, Ingress) => vec![], // the default group: inbound from itself only
                    (None, Egress) => vec![rule("all", "all", from("0.0.0.0/0"))],
                };
                out.extend(list.into_iter().filter(|r| covers_world(&r.peer) && r.protocol.matches(p.protocol)));
            }
            out
        };
        let open_all = |d| world_rules(d).iter().any(|r| !r.protocol.has_ports() || r.ports == PortRange::ALL);
        let allows = |d, port| world_rules(d).iter().any(|r| !r.protocol.has_ports() || r.ports.contains(port));
        let rev = dir.reverse();
        (p.protocol == PROTO_TCP || p.protocol == PROTO_UDP)
            && ((open_all(rev) && allows(dir, p.dst_port)) || (open_all(dir) && allows(rev, p.src_port)))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn new_flow_decision_matches_reference(cfg in arb_config(), pkts in proptest::collection::vec(arb_packet(), 1..8)) {
            let rs = rules(&cfg);
            for (dir, p) in &pkts {
                let (action, reason) = reference(&cfg, *dir, p);
                // Fresh filter per packet: every packet is a new flow.
                let mut f = Filter::new(rs.clone(), FilterConfig { always_track: true, ..FilterConfig::default() }).unwrap();
                let got = f.handle_packet(Instant::now(), 0, *dir, p);
                prop_assert_eq!(&got, &Decision { action, reason: reason.clone() }, "{} {:?}", dir, p);
                // The stateless evaluation agrees, and labels untracked flows as AWS would.
                let stateless = rs.evaluate(0, *dir, p);
                if stateless.is_accept() {
                    let untracked = matches!(stateless.reason, Reason::Untracked { .. });
                    prop_assert_eq!(untracked, reference_untracked(&cfg, *dir, p), "untracked? {} {:?}", dir, p);
                }
                let relabel = match stateless.reason {
                    Reason::Untracked { group, dir, index } => Reason::SgRule { group, dir, index },
                    r => r,
                };
                prop_assert_eq!(Decision { action: stateless.action, reason: relabel }, Decision { action, reason });
            }
        }
    }
}
