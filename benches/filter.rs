//! ns per packet through `filter::Filter`.
//!
//! - `tracked`: a packet of an established flow (one conntrack lookup plus
//!   the stateless NACL scan, 20 entries, matching the last one).
//! - `new_flow_full_quota`: a SYN of a new flow against the full AWS quota:
//!   5 groups × 60 inbound rules with only the very last one matching, and
//!   20 NACL entries with the allow last; includes the conntrack insert.
//! - `evaluate_full_quota`: the same decision without conntrack.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use privlink_core::cidr::Cidr;
use privlink_core::filter::*;
use privlink_core::flow::Direction;
use privlink_core::packet::{sample, PacketMeta};

const ENI_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 49);

fn cidr(s: &str) -> Cidr {
    s.parse().unwrap()
}

fn sg_rule(protocol: Protocol, ports: PortRange, c: &str) -> SgRule {
    SgRule { protocol, ports, peer: SgPeer::Cidr(cidr(c)) }
}

fn nacl_entry(rule: u32, ports: PortRange, c: &str, action: RuleAction) -> NaclEntry {
    NaclEntry { rule: RuleNumber::new(rule).unwrap(), protocol: Protocol::Tcp, ports, cidr: cidr(c), action }
}

/// The full default quota, with the only matching rules last.
fn full_quota() -> RuleSetConfig {
    let mut groups = Vec::new();
    for g in 0..5 {
        let mut ingress: Vec<SgRule> =
            (0..60).map(|i| sg_rule(Protocol::Tcp, PortRange::single(1000 + g * 60 + i), "10.0.0.0/16")).collect();
        let mut egress: Vec<SgRule> =
            (0..60).map(|i| sg_rule(Protocol::Tcp, PortRange::single(2000 + g * 60 + i), "10.0.0.0/16")).collect();
        if g == 4 {
            ingress[59] = sg_rule(Protocol::Tcp, PortRange::single(443), "10.0.2.0/24");
            egress[59] = sg_rule(Protocol::Tcp, PortRange::new(1024, 65535).unwrap(), "10.0.0.0/16");
        }
        groups.push(SecurityGroup { id: format!("sg-{g}"), ingress, egress });
    }
    let deny = |i: u32| nacl_entry(i * 10, PortRange::single(7000 + i as u16), "10.0.0.0/8", RuleAction::Deny);
    let mut ingress: Vec<NaclEntry> = (1..20).map(deny).collect();
    ingress.push(nacl_entry(200, PortRange::single(443), "10.0.0.0/16", RuleAction::Allow));
    let mut egress: Vec<NaclEntry> = (1..20).map(deny).collect();
    egress.push(nacl_entry(200, PortRange::new(1024, 65535).unwrap(), "10.0.0.0/16", RuleAction::Allow));
    RuleSetConfig {
        enis: vec![EniRules {
            index: 0,
            ip: ENI_IP,
            subnet: cidr("10.0.1.0/24"),
            security_groups: groups.iter().map(|g| g.id.clone()).collect(),
            network_acl: Some("acl-full".into()),
        }],
        security_groups: groups,
        network_acls: vec![NetworkAcl { id: "acl-full".into(), ingress, egress }],
        ..RuleSetConfig::default()
    }
}

fn syn(i: u32) -> PacketMeta {
    PacketMeta {
        src: Ipv4Addr::new(10, 0, 2, (i / 60_000) as u8),
        dst: ENI_IP,
        src_port: 1024 + (i % 60_000) as u16,
        dst_port: 443,
        ..sample::SYN
    }
}

fn bench(c: &mut Criterion) {
    let rules = Arc::new(RuleSet::build(&full_quota()).unwrap());
    assert_eq!(rules.compiled_sg_len(0, Direction::Ingress), Some(300));
    let now = Instant::now();

    // (a) tracked flow
    let mut f = Filter::new(rules.clone(), FilterConfig::default()).unwrap();
    let first = syn(0);
    assert!(f.handle_packet(now, 0, Direction::Ingress, &first).is_accept());
    let ack = PacketMeta { tcp_flags: TCP_ACK, len: 1500, ..first };
    let back = PacketMeta { src: first.dst, dst: first.src, src_port: 443, dst_port: first.src_port, ..ack };
    assert!(f.handle_packet(now, 0, Direction::Egress, &back).is_accept());
    assert_eq!(f.handle_packet(now, 0, Direction::Ingress, &ack).reason, Reason::Tracked);
    c.bench_function("tracked_ingress", |b| {
        b.iter(|| f.handle_packet(black_box(now), 0, Direction::Ingress, black_box(&ack)))
    });
    c.bench_function("tracked_egress", |b| {
        b.iter(|| f.handle_packet(black_box(now), 0, Direction::Egress, black_box(&back)))
    });

    // The same flow where the subnet has the default NACL: conntrack alone.
    let mut cfg = full_quota();
    cfg.enis[0].network_acl = None;
    let mut f = Filter::new(Arc::new(RuleSet::build(&cfg).unwrap()), FilterConfig::default()).unwrap();
    assert!(f.handle_packet(now, 0, Direction::Ingress, &first).is_accept());
    c.bench_function("tracked_ingress_default_nacl", |b| {
        b.iter(|| f.handle_packet(black_box(now), 0, Direction::Ingress, black_box(&ack)))
    });

    // (b) new flow, full quota, match last. Each packet is a new 5-tuple;
    // the table is refilled from empty in chunks (setup not timed), so the
    // chunk size is the table size the insert sees: 4k stays in L2, 50k
    // makes every insert an L3 access, as a busy endpoint would.
    let packets: Vec<PacketMeta> = (0..50_000).map(syn).collect();
    let d = Filter::new(rules.clone(), FilterConfig::default()).unwrap().handle_packet(
        now,
        0,
        Direction::Ingress,
        &packets[1],
    );
    assert_eq!(d.reason.to_string(), "security group sg-4 ingress rule #59 allows (flow tracked)");
    for (name, chunk) in [("new_flow_full_quota/table_4k", 4_096u64), ("new_flow_full_quota/table_50k", 50_000)] {
        c.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(chunk);
                    let cfg = FilterConfig { max_entries: chunk as usize, ..FilterConfig::default() };
                    let mut f = Filter::new(rules.clone(), cfg).unwrap();
                    let start = Instant::now();
                    for p in &packets[..n as usize] {
                        black_box(f.handle_packet(now, 0, Direction::Ingress, black_box(p)));
                    }
                    total += start.elapsed();
                    left -= n;
                }
                total
            })
        });
    }
    c.bench_function("evaluate_full_quota", |b| {
        b.iter(|| rules.evaluate(0, Direction::Ingress, black_box(&packets[1])))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
