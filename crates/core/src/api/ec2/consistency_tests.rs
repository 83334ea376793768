//! A property test: random sequences of API calls leave Describe* and the
//! data plane's own tables in agreement.
//!
//! Each case starts with one or two VPCs (hostnames on) and a few subnets,
//! then runs 20–60 calls drawn from the actions that change the model
//! (VPCs and their attributes, subnets, instances, security groups and
//! their rules, network ACLs, their entries and associations, endpoints
//! with ClientToken repeats, managed prefix lists and rules naming them,
//! tags), naming ids the model holds and
//! sometimes unknown or malformed ones, with about one field value in
//! sixteen invalid. Every call either succeeds or fails with an `ApiError`;
//! a refused call (and one that answers `ReadOnly`) must leave the model as
//! it was.
//!
//! After every step that changed the model (one that did not was checked
//! already) the Describe answers are read back as XML and compared
//! with each other and with what the edge builds the data plane from
//! (`src/edge/api/region.rs`): [`Ec2::vpc_plan`] (ENIs, names, groups), its
//! `zone()` (asked through a [`Responder`], as the VPC resolver would be),
//! each endpoint's and the resolver's `rule_set()`, and
//! [`Ec2::rule_set_config`]: its prefix lists are the ones the VPC's
//! groups name, with the blocks GetManagedPrefixListEntries answers, and
//! each endpoint's compiled rules admit, from every such block, what the
//! rule naming it allows.
//!
//! The regular tests at the end are the cases the property test found (and
//! one found reading the code it drives), shrunk, kept with their fixes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use proptest::prelude::*;

use super::plan::{Upstreams, VpcPlan};
use super::{Ec2, Effect, IdKind};
use crate::api::error::ApiError;
use crate::api::query::Params;
use crate::api::xml::tests::texts;
use crate::catalog;
use crate::cidr::Cidr;
use crate::dns::{ForwardMode, Outcome, Responder, Transport};

// -------------------------------------------------------------------
// Driving the model
// -------------------------------------------------------------------

const VPC_CIDRS: [&str; 5] = ["10.0.0.0/16", "10.1.0.0/16", "172.16.0.0/20", "10.2.0.0/24", "192.168.0.0/28"];
const SERVICES: [&str; 5] = ["ec2", "sts", "s3", "ssm", "logs"];
const AZS: [&str; 6] = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1e", "us-east-1f"];
const RULE_CIDRS: [&str; 5] = ["10.0.0.0/16", "0.0.0.0/0", "192.0.2.0/24", "10.0.1.0/24", "10.0.0.0/33"];
/// Prefix list entries; the last is invalid (host bits set).
const LIST_CIDRS: [&str; 6] =
    ["10.0.2.0/24", "192.0.2.0/28", "198.51.100.0/24", "10.1.0.0/16", "0.0.0.0/0", "10.0.0.1/24"];
/// MaxEntries; the last is invalid.
const LIST_SIZES: [&str; 6] = ["1", "2", "3", "5", "30", "0"];
/// Seconds an [`Op::Wait`] lets pass: short of, at and past a deleted endpoint's retention.
const WAITS: [u64; 4] = [60, 1800, super::endpoint::DELETED_RETENTION - 1, super::endpoint::DELETED_RETENTION];
const POLICY: &str = r#"{"Statement":[{"Action":"ec2:Describe*","Effect":"Allow","Principal":"*","Resource":"*"}]}"#;

/// A model, counter randomness, and what the checks remember between steps.
struct Driver {
    ec2: Ec2,
    counter: u64,
    /// The last CreateVpcEndpoint's parameters, to repeat (ClientToken reuse).
    last_endpoint: Option<Vec<(String, String)>>,
    /// Endpoint-specific names the zones answered after the previous step, by VPC.
    names: BTreeSet<(String, String)>,
    /// Steps run, for the page size of the pagination check.
    steps: usize,
    /// Whether the last call changed the model.
    changed: bool,
    /// The calls' time, which [`Op::Wait`] moves on.
    now: u64,
    /// The catalog's facts of [`SERVICES`].
    services: Vec<catalog::ServiceInfo>,
}

impl Driver {
    fn new() -> Driver {
        Driver {
            ec2: Ec2::new("us-east-1"),
            counter: 0,
            last_endpoint: None,
            names: BTreeSet::new(),
            steps: 0,
            changed: false,
            now: super::testkit::START,
            services: SERVICES
                .iter()
                .map(|s| catalog::lookup(&format!("com.amazonaws.us-east-1.{s}")).expect("a catalog service"))
                .collect(),
        }
    }

    fn run(&mut self, action: &str, params: &[(String, String)]) -> Result<(String, Effect), ApiError> {
        let params = Params::from_pairs(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        super::testkit::call_at(&mut self.ec2, &mut self.counter, self.now, action, &params)
    }

    /// Runs one step's call: a refused or read-only call must change nothing.
    /// Sets [`Driver::changed`].
    fn apply(&mut self, action: &str, params: &[(String, String)]) -> Result<String, ApiError> {
        let before = self.ec2.clone();
        self.changed = false;
        match self.run(action, params) {
            Ok((doc, Effect::Changed)) => {
                self.changed = self.ec2 != before;
                Ok(doc)
            }
            Ok((doc, Effect::ReadOnly)) => {
                assert_eq!(self.ec2, before, "{action} {params:?} answered ReadOnly but changed the model");
                Ok(doc)
            }
            Err(e) => {
                assert!(!e.code.is_empty(), "{action}: an error without a code");
                assert_eq!(self.ec2, before, "{action} {params:?} failed with {e} but changed the model");
                Err(e)
            }
        }
    }

    /// A Describe call, which must succeed and change nothing.
    fn describe(&mut self, action: &str, params: &[(&str, &str)]) -> String {
        let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let (doc, effect) = self.run(action, &params).unwrap_or_else(|e| panic!("{action} {params:?}: {e}"));
        assert_eq!(effect, Effect::ReadOnly, "{action}");
        doc
    }
}

/// An id a call names: one the model holds (by index), or not.
#[derive(Debug, Clone, Copy)]
enum Pick {
    Known(u8),
    Unknown,
    Malformed,
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![12 => any::<u8>().prop_map(Pick::Known), 1 => Just(Pick::Unknown), 1 => Just(Pick::Malformed)]
}

fn picks(max: usize) -> impl Strategy<Value = Vec<Pick>> {
    proptest::collection::vec(pick(), 0..=max)
}

/// The `n`th of a list of picks: `Known` ones step on, so equal picks name
/// different ids (a list of six can reach six groups) and shrink to that.
fn shift(p: Pick, n: usize) -> Pick {
    match p {
        Pick::Known(i) => Pick::Known(i.wrapping_add(n as u8)),
        other => other,
    }
}

/// One of `list` by `i` (0..16): its last, invalid, element only for 15.
fn choose<T: Copy>(list: &[T], i: u8) -> T {
    match i {
        15 => list[list.len() - 1],
        _ => list[usize::from(i) % (list.len() - 1)],
    }
}

fn resolve(p: Pick, kind: IdKind, pool: &[String]) -> String {
    match p {
        Pick::Known(i) if !pool.is_empty() => pool[usize::from(i) % pool.len()].clone(),
        Pick::Known(_) | Pick::Unknown => format!("{}-deadbeef", kind.prefix()),
        Pick::Malformed => format!("{}-NOPE", kind.prefix()),
    }
}

/// `name.1`, `name.2`, … for the ids `picks` choose from `pool`.
fn numbered(name: &str, picks: &[Pick], kind: IdKind, pool: &[String]) -> Vec<(String, String)> {
    picks.iter().enumerate().map(|(n, i)| kv(format!("{name}.{}", n + 1), resolve(*i, kind, pool))).collect()
}

/// A rule of a security group call.
#[derive(Debug, Clone)]
struct Rule {
    protocol: u8,
    ports: u8,
    /// `Ok`: one of [`RULE_CIDRS`]; `Err`: a group.
    peer: Result<u8, Pick>,
    /// A managed prefix list instead of `peer`.
    list: Option<Pick>,
}

fn rule() -> impl Strategy<Value = Rule> {
    (
        0..16u8,
        0..16u8,
        prop_oneof![(0..16u8).prop_map(Ok), pick().prop_map(Err)],
        proptest::option::weighted(0.25, pick()),
    )
        .prop_map(|(protocol, ports, peer, list)| Rule { protocol, ports, peer, list })
}

/// A network ACL entry call.
#[derive(Debug, Clone)]
struct Entry {
    number: u8,
    egress: bool,
    protocol: u8,
    allow: bool,
    cidr: u8,
    ports: u8,
}

fn entry() -> impl Strategy<Value = Entry> {
    (0..16u8, any::<bool>(), 0..16u8, any::<bool>(), 0..16u8, 0..16u8).prop_map(
        |(number, egress, protocol, allow, cidr, ports)| Entry { number, egress, protocol, allow, cidr, ports },
    )
}

#[derive(Debug, Clone)]
enum Op {
    CreateVpc(u8),
    ModifyVpcAttribute {
        vpc: Pick,
        hostnames: bool,
        on: bool,
    },
    CreateSubnet {
        vpc: Pick,
        prefix: u8,
        index: u8,
        az: u8,
        outside: bool,
    },
    DeleteSubnet(Pick),
    DeleteVpc(Pick),
    RunInstances {
        subnet: Pick,
        min: u8,
        extra: u8,
        ip: Option<u8>,
        groups: Vec<Pick>,
        token: Option<u8>,
    },
    TerminateInstances(Vec<Pick>),
    CreateSecurityGroup {
        vpc: Pick,
        name: u8,
    },
    Authorize {
        egress: bool,
        group: Pick,
        rule: Rule,
        tag: bool,
    },
    Revoke {
        egress: bool,
        group: Pick,
        rule: Rule,
        by_id: Option<Pick>,
    },
    DeleteSecurityGroup(Pick),
    CreateNetworkAcl(Pick),
    NaclEntry {
        action: u8,
        acl: Pick,
        entry: Entry,
    },
    ReplaceNetworkAclAssociation {
        subnet: Pick,
        acl: Pick,
    },
    DeleteNetworkAcl(Pick),
    CreateVpcEndpoint {
        vpc: Pick,
        service: u8,
        subnets: Vec<Pick>,
        groups: Vec<Pick>,
        private_dns: Option<bool>,
        token: Option<u8>,
        policy: bool,
        ip: Option<u8>,
    },
    RepeatCreateVpcEndpoint {
        same: bool,
    },
    ModifyVpcEndpoint {
        endpoint: Pick,
        add: Vec<Pick>,
        remove: Vec<Pick>,
        add_groups: Vec<Pick>,
        remove_groups: Vec<Pick>,
        private_dns: Option<bool>,
        policy: u8,
    },
    DeleteVpcEndpoints(Vec<Pick>),
    CreateTags {
        ids: Vec<Pick>,
        key: u8,
    },
    DeleteTags {
        ids: Vec<Pick>,
        tags: Vec<(Option<u8>, Option<u8>)>,
    },
    CreateManagedPrefixList {
        max: u8,
        cidrs: Vec<u8>,
        token: Option<u8>,
    },
    ModifyManagedPrefixList {
        list: Pick,
        add: Vec<u8>,
        remove: Vec<Pick>,
        max: Option<u8>,
        /// `CurrentVersion`: the list's (`true`) or the next one (`false`).
        version: Option<bool>,
    },
    DeleteManagedPrefixList(Pick),
    /// Time passes (by one of [`WAITS`]): deleted endpoints age.
    Wait(u8),
}

fn op() -> impl Strategy<Value = Op> {
    let vpc = (0..VPC_CIDRS.len() as u8).prop_map(Op::CreateVpc).boxed();
    let attr = (pick(), proptest::bool::weighted(0.7), proptest::bool::weighted(0.8))
        .prop_map(|(vpc, hostnames, on)| Op::ModifyVpcAttribute { vpc, hostnames, on })
        .boxed();
    let subnet = (pick(), 24..=28u8, 0..6u8, 0..7u8, proptest::bool::weighted(0.1))
        .prop_map(|(vpc, prefix, index, az, outside)| Op::CreateSubnet { vpc, prefix, index, az, outside })
        .boxed();
    let run = (
        pick(),
        1..4u8,
        0..12u8,
        proptest::option::weighted(0.3, any::<u8>()),
        picks(3),
        proptest::option::weighted(0.3, 0..3u8),
    )
        .prop_map(|(subnet, min, extra, ip, groups, token)| Op::RunInstances { subnet, min, extra, ip, groups, token })
        .boxed();
    let group = (pick(), 0..8u8).prop_map(|(vpc, name)| Op::CreateSecurityGroup { vpc, name }).boxed();
    let authorize = (any::<bool>(), pick(), rule(), proptest::bool::weighted(0.2))
        .prop_map(|(egress, group, rule, tag)| Op::Authorize { egress, group, rule, tag })
        .boxed();
    let revoke = (any::<bool>(), pick(), rule(), proptest::option::weighted(0.5, pick()))
        .prop_map(|(egress, group, rule, by_id)| Op::Revoke { egress, group, rule, by_id })
        .boxed();
    let nacl_entry =
        (0..3u8, pick(), entry()).prop_map(|(action, acl, entry)| Op::NaclEntry { action, acl, entry }).boxed();
    let assoc = (pick(), pick()).prop_map(|(subnet, acl)| Op::ReplaceNetworkAclAssociation { subnet, acl }).boxed();
    let endpoint = (
        pick(),
        0..11u8,
        prop_oneof![1 => Just(Vec::new()), 12 => proptest::collection::vec(pick(), 1..=3)],
        proptest::collection::vec(pick(), 0..=6),
        proptest::option::of(any::<bool>()),
        proptest::option::weighted(0.4, 0..3u8),
        proptest::bool::weighted(0.2),
        proptest::option::weighted(0.2, any::<u8>()),
    )
        .prop_map(|(vpc, service, subnets, groups, private_dns, token, policy, ip)| Op::CreateVpcEndpoint {
            vpc,
            service,
            subnets,
            groups,
            private_dns,
            token,
            policy,
            ip,
        })
        .boxed();
    let repeat = any::<bool>().prop_map(|same| Op::RepeatCreateVpcEndpoint { same }).boxed();
    let modify = (pick(), picks(2), picks(2), picks(3), picks(2), proptest::option::of(any::<bool>()), 0..6u8)
        .prop_map(|(endpoint, add, remove, add_groups, remove_groups, private_dns, policy)| Op::ModifyVpcEndpoint {
            endpoint,
            add,
            remove,
            add_groups,
            remove_groups,
            private_dns,
            policy,
        })
        .boxed();
    let tags = (picks(3), 0..3u8).prop_map(|(ids, key)| Op::CreateTags { ids, key }).boxed();
    let untag = (
        picks(3),
        proptest::collection::vec(
            (proptest::option::weighted(0.9, 0..3u8), proptest::option::weighted(0.3, 0..3u8)),
            0..3,
        ),
    )
        .prop_map(|(ids, tags)| Op::DeleteTags { ids, tags })
        .boxed();
    let list = (0..16u8, proptest::collection::vec(0..16u8, 0..=3), proptest::option::weighted(0.3, 0..3u8))
        .prop_map(|(max, cidrs, token)| Op::CreateManagedPrefixList { max, cidrs, token })
        .boxed();
    let modify_list = (
        pick(),
        proptest::collection::vec(0..16u8, 0..=2),
        picks(2),
        proptest::option::weighted(0.2, 0..16u8),
        proptest::option::weighted(0.3, proptest::bool::weighted(0.8)),
    )
        .prop_map(|(list, add, remove, max, version)| Op::ModifyManagedPrefixList { list, add, remove, max, version })
        .boxed();
    prop_oneof![
        3 => vpc,
        4 => attr,
        8 => subnet,
        1 => pick().prop_map(Op::DeleteSubnet).boxed(),
        1 => pick().prop_map(Op::DeleteVpc).boxed(),
        4 => run,
        2 => picks(3).prop_map(Op::TerminateInstances).boxed(),
        3 => group,
        4 => authorize,
        3 => revoke,
        1 => pick().prop_map(Op::DeleteSecurityGroup).boxed(),
        2 => pick().prop_map(Op::CreateNetworkAcl).boxed(),
        3 => nacl_entry,
        2 => assoc,
        1 => pick().prop_map(Op::DeleteNetworkAcl).boxed(),
        10 => endpoint,
        2 => repeat,
        5 => modify,
        2 => picks(3).prop_map(Op::DeleteVpcEndpoints).boxed(),
        2 => tags,
        2 => untag,
        3 => list,
        4 => modify_list,
        1 => pick().prop_map(Op::DeleteManagedPrefixList).boxed(),
        2 => (0..WAITS.len() as u8).prop_map(Op::Wait).boxed(),
    ]
}

/// A start that gives the ops something to name: one or two VPCs with DNS
/// hostnames on, and a few subnets (some of which may be refused).
fn setup() -> impl Strategy<Value = Vec<Op>> {
    let subnet = (0..2u8, 24..=28u8, 0..6u8, 0..6u8);
    (proptest::collection::vec(0..VPC_CIDRS.len() as u8, 1..=2), proptest::collection::vec(subnet, 2..=5)).prop_map(
        |(vpcs, subnets)| {
            let mut ops = Vec::new();
            for (n, cidr) in vpcs.iter().enumerate() {
                ops.push(Op::CreateVpc(*cidr));
                let vpc = Pick::Known(n as u8);
                ops.push(Op::ModifyVpcAttribute { vpc, hostnames: true, on: true });
            }
            for (vpc, prefix, index, az) in subnets {
                ops.push(Op::CreateSubnet { vpc: Pick::Known(vpc), prefix, index, az, outside: false });
            }
            ops
        },
    )
}

fn kv(k: impl Into<String>, v: impl Into<String>) -> (String, String) {
    (k.into(), v.into())
}

/// The ids of `pool`'s keys, sorted.
fn ids<T>(pool: &BTreeMap<String, T>) -> Vec<String> {
    pool.keys().cloned().collect()
}

impl Driver {
    /// The subnets of `vpc` (all of them for a `Known` index of 224 and up,
    /// to reach other VPCs' too).
    fn subnet_pool(&self, vpc: &str, p: Pick) -> Vec<String> {
        match p {
            Pick::Known(i) if i >= 224 => ids(&self.ec2.subnets),
            _ => self.ec2.subnets.values().filter(|s| s.vpc == vpc).map(|s| s.id.clone()).collect(),
        }
    }

    fn group_pool(&self, vpc: &str, p: Pick) -> Vec<String> {
        match p {
            Pick::Known(i) if i >= 224 => ids(&self.ec2.security_groups),
            _ => self.ec2.security_groups.values().filter(|g| g.vpc == vpc).map(|g| g.id.clone()).collect(),
        }
    }

    fn subnet_in(&self, vpc: &str, p: Pick) -> String {
        resolve(p, IdKind::Subnet, &self.subnet_pool(vpc, p))
    }

    fn group_in(&self, vpc: &str, p: Pick) -> String {
        resolve(p, IdKind::SecurityGroup, &self.group_pool(vpc, p))
    }

    fn taggable(&self) -> Vec<String> {
        let e = &self.ec2;
        [ids(&e.vpcs), ids(&e.subnets), ids(&e.security_groups), ids(&e.network_acls), ids(&e.instances)]
            .into_iter()
            .chain([ids(&e.endpoints), ids(&e.deleted_endpoints), ids(&e.network_interfaces), ids(&e.prefix_lists)])
            .flatten()
            .collect()
    }

    fn rule_params(&self, group: &str, rule: &Rule) -> Vec<(String, String)> {
        let vpc = self.ec2.security_groups.get(group).map(|g| g.vpc.clone()).unwrap_or_default();
        let protocol = choose(&["tcp", "udp", "icmp", "-1", "gre"], rule.protocol);
        let (from, to) = match protocol {
            "icmp" => choose(&[("8", "0"), ("-1", "-1"), ("3", "4"), ("0", "0"), ("300", "0")], rule.ports),
            _ => choose(&[("22", "22"), ("443", "443"), ("1000", "2000"), ("0", "65535"), ("500", "100")], rule.ports),
        };
        let mut p = vec![
            kv("GroupId", group),
            kv("IpPermissions.1.IpProtocol", protocol),
            kv("IpPermissions.1.FromPort", from),
            kv("IpPermissions.1.ToPort", to),
        ];
        let lists = ids(&self.ec2.prefix_lists);
        match (rule.list, rule.peer) {
            (Some(l), _) => {
                p.push(kv("IpPermissions.1.PrefixListIds.1.PrefixListId", resolve(l, IdKind::PrefixList, &lists)))
            }
            (None, Ok(c)) => p.push(kv("IpPermissions.1.IpRanges.1.CidrIp", choose(&RULE_CIDRS, c))),
            (None, Err(g)) => p.push(kv("IpPermissions.1.Groups.1.GroupId", self.group_in(&vpc, g))),
        }
        p
    }

    /// Turns an op into a call on the current model.
    fn call_of(&mut self, op: &Op) -> (&'static str, Vec<(String, String)>) {
        let e = &self.ec2;
        let vpcs = ids(&e.vpcs);
        let vpc_of = |p: Pick| resolve(p, IdKind::Vpc, &vpcs);
        match op {
            Op::CreateVpc(i) => ("CreateVpc", vec![kv("CidrBlock", VPC_CIDRS[usize::from(*i)])]),
            Op::ModifyVpcAttribute { vpc, hostnames, on } => {
                let attr = if *hostnames { "EnableDnsHostnames.Value" } else { "EnableDnsSupport.Value" };
                ("ModifyVpcAttribute", vec![kv("VpcId", vpc_of(*vpc)), kv(attr, on.to_string())])
            }
            Op::CreateSubnet { vpc, prefix, index, az, outside } => {
                let id = vpc_of(*vpc);
                let base = e.vpcs.get(&id).map_or(Ipv4Addr::new(10, 0, 0, 0), |v| v.cidr.base());
                let size = 1u32 << (32 - u32::from(*prefix));
                let cidr = if *outside {
                    ["192.0.2.0/24", "10.0.0.0/29", "10.0.0.0/15", "10.0.0.1/33"][usize::from(*index) % 4].to_string()
                } else {
                    format!("{}/{prefix}", Ipv4Addr::from(u32::from(base) + u32::from(*index) * size))
                };
                let mut p = vec![kv("VpcId", id), kv("CidrBlock", cidr)];
                if let Some(az) = AZS.get(usize::from(*az)) {
                    p.push(kv("AvailabilityZone", *az));
                } else {
                    p.push(kv("AvailabilityZone", "us-west-2a"));
                }
                ("CreateSubnet", p)
            }
            Op::DeleteSubnet(s) => {
                ("DeleteSubnet", vec![kv("SubnetId", resolve(*s, IdKind::Subnet, &ids(&e.subnets)))])
            }
            Op::DeleteVpc(v) => ("DeleteVpc", vec![kv("VpcId", vpc_of(*v))]),
            Op::RunInstances { subnet, min, extra, ip, groups, token } => {
                let id = resolve(*subnet, IdKind::Subnet, &ids(&e.subnets));
                let max = u32::from(*min) + u32::from(*extra);
                let mut p = vec![
                    kv("ImageId", "ami-12345678"),
                    kv("MinCount", min.to_string()),
                    kv("MaxCount", max.to_string()),
                    kv("SubnetId", id.clone()),
                ];
                let s = e.subnets.get(&id);
                let vpc = s.map(|s| s.vpc.clone()).unwrap_or_default();
                for (n, g) in groups.iter().enumerate() {
                    p.push(kv(format!("SecurityGroupId.{}", n + 1), self.group_in(&vpc, *g)));
                }
                if let (Some(k), Some(s)) = (ip, s) {
                    let ip = Ipv4Addr::from(u32::from(s.cidr.base()) + u32::from(*k) % (s.cidr.size() as u32 + 2));
                    p.push(kv("PrivateIpAddress", ip.to_string()));
                }
                if let Some(t) = token {
                    p.push(kv("ClientToken", format!("token-{t}")));
                }
                ("RunInstances", p)
            }
            Op::TerminateInstances(list) => {
                let pool = ids(&e.instances);
                let p = numbered("InstanceId", list, IdKind::Instance, &pool);
                ("TerminateInstances", p)
            }
            Op::CreateSecurityGroup { vpc, name } => {
                let name = ["web", "db", "Web", "default", "app", "cache", "queue", "logs"][usize::from(*name)];
                let p = vec![kv("VpcId", vpc_of(*vpc)), kv("GroupName", name), kv("GroupDescription", "a group")];
                ("CreateSecurityGroup", p)
            }
            Op::Authorize { egress, group, rule, tag } => {
                let g = resolve(*group, IdKind::SecurityGroup, &ids(&e.security_groups));
                let mut p = self.rule_params(&g, rule);
                if *tag {
                    p.push(kv("TagSpecification.1.ResourceType", "security-group-rule"));
                    p.push(kv("TagSpecification.1.Tag.1.Key", "Name"));
                    p.push(kv("TagSpecification.1.Tag.1.Value", "rule"));
                }
                (if *egress { "AuthorizeSecurityGroupEgress" } else { "AuthorizeSecurityGroupIngress" }, p)
            }
            Op::Revoke { egress, group, rule, by_id } => {
                let g = resolve(*group, IdKind::SecurityGroup, &ids(&e.security_groups));
                let p = match by_id {
                    Some(r) => {
                        let rules: Vec<String> = e
                            .security_groups
                            .get(&g)
                            .map(|sg| if *egress { &sg.egress } else { &sg.ingress })
                            .into_iter()
                            .flatten()
                            .map(|r| r.id.clone())
                            .collect();
                        vec![
                            kv("GroupId", g),
                            kv("SecurityGroupRuleId.1", resolve(*r, IdKind::SecurityGroupRule, &rules)),
                        ]
                    }
                    None => self.rule_params(&g, rule),
                };
                (if *egress { "RevokeSecurityGroupEgress" } else { "RevokeSecurityGroupIngress" }, p)
            }
            Op::DeleteSecurityGroup(g) => (
                "DeleteSecurityGroup",
                vec![kv("GroupId", resolve(*g, IdKind::SecurityGroup, &ids(&e.security_groups)))],
            ),
            Op::CreateNetworkAcl(v) => ("CreateNetworkAcl", vec![kv("VpcId", vpc_of(*v))]),
            Op::NaclEntry { action, acl, entry } => {
                let acl = resolve(*acl, IdKind::NetworkAcl, &ids(&e.network_acls));
                let number = choose(&["100", "110", "200", "32767"], entry.number);
                let mut p =
                    vec![kv("NetworkAclId", acl), kv("RuleNumber", number), kv("Egress", entry.egress.to_string())];
                let name =
                    ["CreateNetworkAclEntry", "ReplaceNetworkAclEntry", "DeleteNetworkAclEntry"][usize::from(*action)];
                if *action < 2 {
                    let protocol = choose(&["tcp", "udp", "icmp", "-1", "47"], entry.protocol);
                    p.push(kv("Protocol", protocol));
                    p.push(kv("RuleAction", if entry.allow { "allow" } else { "deny" }));
                    p.push(kv("CidrBlock", choose(&RULE_CIDRS, entry.cidr)));
                    let (from, to) = choose(
                        &[("443", "443"), ("0", "65535"), ("1024", "2048"), ("53", "53"), ("9", "1")],
                        entry.ports,
                    );
                    p.push(kv("PortRange.From", from));
                    p.push(kv("PortRange.To", to));
                    if protocol == "icmp" {
                        p.push(kv("Icmp.Type", "-1"));
                        p.push(kv("Icmp.Code", "-1"));
                    }
                }
                (name, p)
            }
            Op::ReplaceNetworkAclAssociation { subnet, acl } => {
                let assocs: Vec<String> = e.subnets.values().map(|s| s.network_acl_association.clone()).collect();
                let assoc = resolve(*subnet, IdKind::NetworkAclAssociation, &assocs);
                let vpc = e.subnets.values().find(|s| s.network_acl_association == assoc).map(|s| s.vpc.clone());
                let pool: Vec<String> = match (acl, vpc) {
                    (Pick::Known(i), Some(v)) if *i < 224 => {
                        e.network_acls.values().filter(|a| a.vpc == v).map(|a| a.id.clone()).collect()
                    }
                    _ => ids(&e.network_acls),
                };
                let p = vec![kv("AssociationId", assoc), kv("NetworkAclId", resolve(*acl, IdKind::NetworkAcl, &pool))];
                ("ReplaceNetworkAclAssociation", p)
            }
            Op::DeleteNetworkAcl(a) => {
                ("DeleteNetworkAcl", vec![kv("NetworkAclId", resolve(*a, IdKind::NetworkAcl, &ids(&e.network_acls)))])
            }
            Op::CreateVpcEndpoint { vpc, service, subnets, groups, private_dns, token, policy, ip } => {
                let vpc = vpc_of(*vpc);
                let service = match service {
                    0..10 => format!("com.amazonaws.us-east-1.{}", SERVICES[usize::from(*service) % SERVICES.len()]),
                    _ => "com.amazonaws.eu-west-1.ec2".to_string(),
                };
                let mut p =
                    vec![kv("VpcId", vpc.clone()), kv("ServiceName", service), kv("VpcEndpointType", "Interface")];
                let subnets: Vec<String> = subnets.iter().map(|s| self.subnet_in(&vpc, *s)).collect();
                for (n, s) in subnets.iter().enumerate() {
                    p.push(kv(format!("SubnetId.{}", n + 1), s.clone()));
                }
                for (n, g) in groups.iter().enumerate() {
                    p.push(kv(format!("SecurityGroupId.{}", n + 1), self.group_in(&vpc, shift(*g, n))));
                }
                if let Some(on) = private_dns {
                    p.push(kv("PrivateDnsEnabled", on.to_string()));
                }
                if let Some(t) = token {
                    p.push(kv("ClientToken", format!("token-{t}")));
                }
                if *policy {
                    p.push(kv("PolicyDocument", POLICY));
                }
                if let (Some(k), Some(s)) = (ip, subnets.first().and_then(|s| e.subnets.get(s))) {
                    let ip = Ipv4Addr::from(u32::from(s.cidr.base()) + u32::from(*k) % (s.cidr.size() as u32));
                    p.push(kv("SubnetConfiguration.1.SubnetId", s.id.clone()));
                    p.push(kv("SubnetConfiguration.1.Ipv4", ip.to_string()));
                }
                self.last_endpoint = Some(p.clone());
                ("CreateVpcEndpoint", p)
            }
            Op::RepeatCreateVpcEndpoint { same } => {
                let mut p = self.last_endpoint.clone().unwrap_or_else(|| vec![kv("VpcEndpointType", "Interface")]);
                if !p.iter().any(|(k, _)| k == "ClientToken") {
                    p.push(kv("ClientToken", "token-0"));
                }
                if !*same {
                    p.push(kv("TagSpecification.1.Tag.1.Key", "again"));
                }
                ("CreateVpcEndpoint", p)
            }
            Op::ModifyVpcEndpoint { endpoint, add, remove, add_groups, remove_groups, private_dns, policy } => {
                let id = resolve(*endpoint, IdKind::VpcEndpoint, &self.endpoint_pool());
                let ep = e.endpoints.get(&id);
                let vpc = ep.map(|ep| ep.vpc.clone()).unwrap_or_default();
                let mut p = vec![kv("VpcEndpointId", id.clone())];
                for (n, s) in add.iter().enumerate() {
                    p.push(kv(format!("AddSubnetId.{}", n + 1), self.subnet_in(&vpc, *s)));
                }
                let own: Vec<String> = ep.map(|ep| ep.subnets.clone()).unwrap_or_default();
                for (n, s) in remove.iter().enumerate() {
                    let pool =
                        if matches!(s, Pick::Known(i) if *i >= 224) { self.subnet_pool(&vpc, *s) } else { own.clone() };
                    p.push(kv(format!("RemoveSubnetId.{}", n + 1), resolve(*s, IdKind::Subnet, &pool)));
                }
                for (n, g) in add_groups.iter().enumerate() {
                    p.push(kv(format!("AddSecurityGroupId.{}", n + 1), self.group_in(&vpc, shift(*g, n))));
                }
                let own: Vec<String> = ep.map(|ep| ep.security_groups.clone()).unwrap_or_default();
                for (n, g) in remove_groups.iter().enumerate() {
                    p.push(kv(format!("RemoveSecurityGroupId.{}", n + 1), resolve(*g, IdKind::SecurityGroup, &own)));
                }
                if let Some(on) = private_dns {
                    p.push(kv("PrivateDnsEnabled", on.to_string()));
                }
                match policy {
                    1 => p.push(kv("PolicyDocument", POLICY)),
                    2 => p.push(kv("ResetPolicy", "true")),
                    3 => p.push(kv("PolicyDocument", "{not json")),
                    _ => {}
                }
                ("ModifyVpcEndpoint", p)
            }
            Op::DeleteVpcEndpoints(list) => {
                let pool = self.endpoint_pool();
                let p = numbered("VpcEndpointId", list, IdKind::VpcEndpoint, &pool);
                ("DeleteVpcEndpoints", p)
            }
            Op::CreateTags { ids: list, key } => {
                let pool = self.taggable();
                let mut p = numbered("ResourceId", list, IdKind::Vpc, &pool);
                p.push(kv("Tag.1.Key", ["Name", "env", "aws:bad"][usize::from(*key)]));
                p.push(kv("Tag.1.Value", "v"));
                ("CreateTags", p)
            }
            Op::DeleteTags { ids: list, tags } => {
                let pool = self.taggable();
                let mut p = numbered("ResourceId", list, IdKind::Vpc, &pool);
                for (n, (key, value)) in tags.iter().enumerate() {
                    if let Some(k) = key {
                        p.push(kv(format!("Tag.{}.Key", n + 1), ["Name", "env", "other"][usize::from(*k)]));
                    }
                    if let Some(v) = value {
                        p.push(kv(format!("Tag.{}.Value", n + 1), ["v", "rule", "x"][usize::from(*v)]));
                    }
                }
                ("DeleteTags", p)
            }
            Op::CreateManagedPrefixList { max, cidrs, token } => {
                let mut p = vec![
                    kv("PrefixListName", "list"),
                    kv("MaxEntries", choose(&LIST_SIZES, *max)),
                    kv("AddressFamily", "IPv4"),
                ];
                for (n, c) in cidrs.iter().enumerate() {
                    p.push(kv(format!("Entry.{}.Cidr", n + 1), choose(&LIST_CIDRS, *c)));
                }
                if let Some(t) = token {
                    p.push(kv("ClientToken", format!("list-token-{t}")));
                }
                ("CreateManagedPrefixList", p)
            }
            Op::ModifyManagedPrefixList { list, add, remove, max, version } => {
                let id = resolve(*list, IdKind::PrefixList, &ids(&e.prefix_lists));
                let l = e.prefix_lists.get(&id);
                let mut p = vec![kv("PrefixListId", id.clone())];
                for (n, c) in add.iter().enumerate() {
                    p.push(kv(format!("AddEntry.{}.Cidr", n + 1), choose(&LIST_CIDRS, *c)));
                }
                let have: Vec<String> =
                    l.map(|l| l.entries.iter().map(|e| e.cidr.to_string()).collect()).unwrap_or_default();
                for (n, r) in remove.iter().enumerate() {
                    let cidr = match r {
                        Pick::Known(i) if !have.is_empty() => have[usize::from(*i) % have.len()].clone(),
                        Pick::Known(_) | Pick::Unknown => "203.0.113.0/24".to_string(),
                        Pick::Malformed => "nope".to_string(),
                    };
                    p.push(kv(format!("RemoveEntry.{}.Cidr", n + 1), cidr));
                }
                if let Some(m) = max {
                    p.push(kv("MaxEntries", choose(&LIST_SIZES, *m)));
                }
                if let Some(right) = version {
                    let v = l.map_or(1, |l| l.version) + u64::from(!right);
                    p.push(kv("CurrentVersion", v.to_string()));
                }
                ("ModifyManagedPrefixList", p)
            }
            Op::DeleteManagedPrefixList(l) => (
                "DeleteManagedPrefixList",
                vec![kv("PrefixListId", resolve(*l, IdKind::PrefixList, &ids(&e.prefix_lists)))],
            ),
            Op::Wait(_) => ("DescribeVpcEndpoints", Vec::new()),
        }
    }

    /// Runs one op, then checks every invariant. A call that left the model
    /// as it was (checked equal) needs no check: every invariant is a function
    /// of the model, and this one passed them after the step that made it.
    fn step(&mut self, op: &Op) {
        if let Op::Wait(w) = op {
            // Nothing changes but what Describe lists.
            self.now += WAITS[usize::from(*w)];
            self.steps += 1;
            self.check();
            return;
        }
        let (action, params) = self.call_of(op);
        let _ = self.apply(action, &params);
        self.steps += 1;
        if self.changed {
            self.check();
        }
    }

    /// The endpoints a call may name: live and deleted ones (the model's, listed or not).
    fn endpoint_pool(&self) -> Vec<String> {
        let mut pool = ids(&self.ec2.endpoints);
        pool.extend(ids(&self.ec2.deleted_endpoints));
        pool.sort();
        pool
    }
}

// -------------------------------------------------------------------
// Reading Describe answers
// -------------------------------------------------------------------

/// One item of a Describe set: its text nodes, paths relative to the item.
struct Item(Vec<(String, String)>);

impl Item {
    fn get(&self, path: &str) -> &str {
        self.0.iter().find(|(p, _)| p == path).map(|(_, t)| t.as_str()).unwrap_or_else(|| panic!("no {path}"))
    }

    fn list(&self, path: &str) -> Vec<String> {
        self.0.iter().filter(|(p, _)| p == path).map(|(_, t)| t.clone()).collect()
    }
}

/// The items under `set` (`…Response/vpcSet/item/`), each starting at its `first` field.
fn items(doc: &str, set: &str, first: &str) -> Vec<Item> {
    let mut out: Vec<Item> = Vec::new();
    for (path, text) in texts(doc) {
        let Some(rel) = path.strip_prefix(set) else { continue };
        if rel == first {
            out.push(Item(Vec::new()));
        }
        out.last_mut().expect("the first field comes first").0.push((rel.to_string(), text));
    }
    out
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap_or_else(|_| panic!("not an address: {s}"))
}

/// The A records the zone answers for `name`, `None` when it does not answer
/// (forwarded, or a response without addresses).
fn ask(r: &Responder, name: &str) -> Option<Vec<Ipv4Addr>> {
    let mut msg = Message::new(7, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let mut out = Vec::new();
    match r.handle_query(&msg.to_vec().unwrap(), Transport::Tcp, &mut out) {
        Outcome::Respond => {}
        Outcome::Forward => return None,
        Outcome::Drop(reason) => panic!("{name}: dropped ({reason:?})"),
    }
    let answer = Message::from_vec(&out).expect("the response parses");
    let mut ips: Vec<Ipv4Addr> = answer
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    ips.sort_unstable();
    (!ips.is_empty()).then_some(ips)
}

// -------------------------------------------------------------------
// The invariants
// -------------------------------------------------------------------

impl Driver {
    fn check(&mut self) {
        let vpcs_doc = self.describe("DescribeVpcs", &[]);
        let subnets_doc = self.describe("DescribeSubnets", &[]);
        let groups_doc = self.describe("DescribeSecurityGroups", &[]);
        let acls_doc = self.describe("DescribeNetworkAcls", &[]);
        let instances_doc = self.describe("DescribeInstances", &[]);
        let enis_doc = self.describe("DescribeNetworkInterfaces", &[]);
        let endpoints_doc = self.describe("DescribeVpcEndpoints", &[]);
        let tags_doc = self.describe("DescribeTags", &[]);

        let vpcs = items(&vpcs_doc, "DescribeVpcsResponse/vpcSet/item/", "vpcId");
        let subnets = items(&subnets_doc, "DescribeSubnetsResponse/subnetSet/item/", "subnetId");
        let groups = items(&groups_doc, "DescribeSecurityGroupsResponse/securityGroupInfo/item/", "ownerId");
        let acls = items(&acls_doc, "DescribeNetworkAclsResponse/networkAclSet/item/", "networkAclId");
        let instances =
            items(&instances_doc, "DescribeInstancesResponse/reservationSet/item/instancesSet/item/", "instanceId");
        let enis =
            items(&enis_doc, "DescribeNetworkInterfacesResponse/networkInterfaceSet/item/", "networkInterfaceId");
        let endpoints = items(&endpoints_doc, "DescribeVpcEndpointsResponse/vpcEndpointSet/item/", "vpcEndpointId");
        let tags = items(&tags_doc, "DescribeTagsResponse/tagSet/item/", "resourceId");

        // DescribeVpcs lists exactly the model's VPCs.
        let vpc_ids: Vec<String> = vpcs.iter().map(|v| v.get("vpcId").to_string()).collect();
        assert_eq!(vpc_ids, ids(&self.ec2.vpcs), "DescribeVpcs");

        // Every VPC has its default group and NACL; every group and NACL is of a VPC.
        for v in &vpc_ids {
            let defaults: Vec<&Item> =
                groups.iter().filter(|g| g.get("vpcId") == v && g.get("groupName") == "default").collect();
            assert_eq!(defaults.len(), 1, "{v}: one default group");
            assert_eq!(defaults[0].get("groupId"), self.ec2.vpcs[v].default_security_group);
            let defaults: Vec<&Item> =
                acls.iter().filter(|a| a.get("vpcId") == v && a.get("default") == "true").collect();
            assert_eq!(defaults.len(), 1, "{v}: one default NACL");
            assert_eq!(defaults[0].get("networkAclId"), self.ec2.vpcs[v].default_network_acl);
        }
        for g in &groups {
            assert!(vpc_ids.iter().any(|v| v == g.get("vpcId")), "group {} of no VPC", g.get("groupId"));
        }
        for a in &acls {
            assert!(vpc_ids.iter().any(|v| v == a.get("vpcId")), "NACL {} of no VPC", a.get("networkAclId"));
        }

        // Subnets: in a VPC, associated with exactly one NACL of it.
        let subnet_of: BTreeMap<String, &Item> = subnets.iter().map(|s| (s.get("subnetId").to_string(), s)).collect();
        for (id, s) in &subnet_of {
            assert!(vpc_ids.iter().any(|v| v == s.get("vpcId")), "subnet {id} of no VPC");
            let with: Vec<&Item> =
                acls.iter().filter(|a| a.list("associationSet/item/subnetId").contains(id)).collect();
            assert_eq!(with.len(), 1, "subnet {id}: associated with {} NACLs", with.len());
            assert_eq!(with[0].get("vpcId"), s.get("vpcId"), "subnet {id}: a NACL of another VPC");
            let assoc = with[0].list("associationSet/item/subnetId").iter().filter(|x| *x == id).count();
            assert_eq!(assoc, 1, "subnet {id}: listed twice in its NACL");
        }

        // Addresses: instances' and ENIs', each assignable in its subnet and unique there.
        let mut taken: BTreeMap<String, Vec<Ipv4Addr>> = BTreeMap::new();
        let holders =
            instances
                .iter()
                .map(|i| (i.get("instanceId"), i.get("subnetId"), i.get("privateIpAddress"), i.get("vpcId")))
                .chain(enis.iter().map(|n| {
                    (n.get("networkInterfaceId"), n.get("subnetId"), n.get("privateIpAddress"), n.get("vpcId"))
                }));
        for (id, subnet, addr, vpc) in holders {
            let s = subnet_of.get(subnet).unwrap_or_else(|| panic!("{id} in unknown subnet {subnet}"));
            assert_eq!(s.get("vpcId"), vpc, "{id}: its subnet is of another VPC");
            let cidr: Cidr = s.get("cidrBlock").parse().unwrap();
            let addr = ip(addr);
            assert!(cidr.contains(addr), "{id}: {addr} outside {cidr}");
            let off = u32::from(addr) - u32::from(cidr.base());
            assert!(off > 3 && u64::from(off) != cidr.size() - 1, "{id}: {addr} is reserved in {cidr}");
            let list = taken.entry(subnet.to_string()).or_default();
            assert!(!list.contains(&addr), "{id}: {addr} taken twice in {subnet}");
            list.push(addr);
        }
        for (id, s) in &subnet_of {
            let cidr: Cidr = s.get("cidrBlock").parse().unwrap();
            let used = taken.get(id).map_or(0, Vec::len) as u64;
            let count: u64 = s.get("availableIpAddressCount").parse().unwrap();
            assert_eq!(count, cidr.size() - 5 - used, "subnet {id}: availableIpAddressCount");
        }

        // The data plane, per VPC.
        let upstreams = Upstreams::new();
        let plans: BTreeMap<String, VpcPlan> = vpc_ids
            .iter()
            .map(|v| {
                let plan = self.ec2.vpc_plan(v, &upstreams, self.ec2.rule_set_config(v)).expect("a VPC of the model");
                (v.clone(), plan)
            })
            .collect();

        // DescribeNetworkInterfaces lists exactly the plans' ENIs.
        let mut described: Vec<(String, Ipv4Addr, String)> = enis
            .iter()
            .map(|n| (n.get("networkInterfaceId").into(), ip(n.get("privateIpAddress")), n.get("subnetId").into()))
            .collect();
        let mut planned: Vec<(String, Ipv4Addr, String)> = plans
            .values()
            .flat_map(|vp| vp.plan.endpoints.iter().flat_map(|e| e.enis.iter()))
            .map(|n| (n.id.clone(), n.ip, n.subnet.clone()))
            .collect();
        described.sort();
        planned.sort();
        assert_eq!(described, planned, "DescribeNetworkInterfaces and the plans' ENIs");
        for vp in plans.values() {
            let mut eni_ips: Vec<Ipv4Addr> = vp.plan.eni_ips().map(|(ip, _)| ip).collect();
            let mut want: Vec<Ipv4Addr> = vp.plan.endpoints.iter().flat_map(|e| e.enis.iter().map(|n| n.ip)).collect();
            eni_ips.sort_unstable();
            want.sort_unstable();
            assert_eq!(eni_ips, want, "{}: eni_ips", vp.plan.vpc.id);
        }

        // Deleted endpoints: listed, as `deleted` with nothing of their own,
        // until their retention ends; in no plan.
        let (deleted, live): (Vec<&Item>, Vec<&Item>) = endpoints.iter().partition(|e| e.get("state") == "deleted");
        let listed_deleted: Vec<&str> = deleted.iter().map(|d| d.get("vpcEndpointId")).collect();
        let want_deleted: Vec<&str> = self
            .ec2
            .deleted_endpoints
            .keys()
            .filter(|id| self.ec2.deleted_endpoint(id, self.now).is_some())
            .map(String::as_str)
            .collect();
        assert_eq!(listed_deleted, want_deleted, "DescribeVpcEndpoints' deleted endpoints at {}", self.now);
        for d in &deleted {
            let id = d.get("vpcEndpointId");
            assert!(d.list("networkInterfaceIdSet/item").is_empty(), "{id}: a deleted endpoint's ENIs");
            assert!(d.list("dnsEntrySet/item/dnsName").is_empty(), "{id}: a deleted endpoint's names");
            assert!(d.list("subnetIdSet/item").is_empty() && d.list("groupSet/item/groupId").is_empty(), "{id}");
            assert!(!self.ec2.endpoints.contains_key(id), "{id}: deleted and live");
            for vp in plans.values() {
                assert!(vp.plan.endpoints.iter().all(|e| e.id != id), "{id}: deleted but in a plan");
            }
        }
        let doc = self.describe(
            "DescribeVpcEndpoints",
            &[("Filter.1.Name", "vpc-endpoint-state"), ("Filter.1.Value.1", "deleted")],
        );
        let by_state = items(&doc, "DescribeVpcEndpointsResponse/vpcEndpointSet/item/", "vpcEndpointId");
        let by_state: Vec<&str> = by_state.iter().map(|e| e.get("vpcEndpointId")).collect();
        assert_eq!(by_state, listed_deleted, "vpc-endpoint-state=deleted");

        // DescribeVpcEndpoints' live endpoints and the plans' endpoints.
        let planned_endpoints: usize = plans.values().map(|vp| vp.plan.endpoints.len()).sum();
        assert_eq!(live.len(), planned_endpoints, "DescribeVpcEndpoints and the plans' endpoints");
        assert_eq!(live.len(), self.ec2.endpoints.len(), "DescribeVpcEndpoints and the model");
        let mut private: BTreeSet<(String, String)> = BTreeSet::new();
        for d in live {
            let id = d.get("vpcEndpointId");
            let vpc = d.get("vpcId");
            let vp = plans.get(vpc).unwrap_or_else(|| panic!("{id} in unknown VPC {vpc}"));
            let pe = vp.plan.endpoints.iter().find(|e| e.id == id).unwrap_or_else(|| panic!("{id} not in its plan"));
            assert_eq!(d.get("state"), "available", "{id}");
            assert_eq!(d.get("serviceName"), pe.service, "{id}");
            let subnets_of: Vec<String> = pe.enis.iter().map(|n| n.subnet.clone()).collect();
            assert_eq!(d.list("subnetIdSet/item"), subnets_of, "{id}: one ENI per subnet");
            let enis_of: Vec<String> = pe.enis.iter().map(|n| n.id.clone()).collect();
            assert_eq!(d.list("networkInterfaceIdSet/item"), enis_of, "{id}: networkInterfaceIdSet");
            let mut azs: Vec<&str> = pe.enis.iter().map(|n| n.az.as_str()).collect();
            for n in &pe.enis {
                assert_eq!(subnet_of[&n.subnet].get("availabilityZone"), n.az, "{id}: ENI {} AZ", n.id);
            }
            azs.sort_unstable();
            let before = azs.len();
            azs.dedup();
            assert_eq!(azs.len(), before, "{id}: one subnet per AZ");
            let group_ids = d.list("groupSet/item/groupId");
            assert_eq!(group_ids, pe.settings.security_groups, "{id}: groupSet");
            assert!(!group_ids.is_empty(), "{id}: no group");
            for g in &group_ids {
                assert!(
                    groups.iter().any(|x| x.get("groupId") == g && x.get("vpcId") == vpc),
                    "{id}: group {g} is not a group of {vpc}"
                );
            }
            let dns_on = d.get("privateDnsEnabled") == "true";
            let dns_support = self.ec2.vpcs[vpc].dns_support;
            assert_eq!(pe.private_dns, dns_on && dns_support, "{id}: the plan's private DNS");
            let mut names = pe.dns_names();
            if dns_on && !dns_support {
                names.extend(pe.service_info.default_dns_names.iter().cloned());
            }
            assert_eq!(d.list("dnsEntrySet/item/dnsName"), names, "{id}: dnsEntrySet");
            if dns_on {
                assert!(
                    private.insert((vpc.to_string(), pe.service.clone())),
                    "{id}: a second private DNS {}",
                    pe.service
                );
            }
        }

        // The zones: each plan endpoint's names answer its ENI IPs, and nothing else answers.
        let mut names_now: BTreeSet<(String, String)> = BTreeSet::new();
        for (vpc, vp) in &plans {
            let zone = vp.plan.zone().unwrap_or_else(|e| panic!("{vpc}: the zone does not build: {e}"));
            let r = Responder::new(Arc::new(zone), ForwardMode::Forward);
            for pe in &vp.plan.endpoints {
                let mut all: Vec<Ipv4Addr> = pe.enis.iter().map(|n| n.ip).collect();
                all.sort_unstable();
                let azs: Vec<String> = pe.enis.iter().map(|n| n.az.clone()).collect();
                let info = &pe.service_info;
                let (regional, zonal) =
                    catalog::endpoint_dns_names(&pe.id, &pe.dns_suffix, &info.vpce_dns_part, &info.region, &azs);
                let want = (!all.is_empty()).then(|| all.clone());
                assert_eq!(ask(&r, &regional), want, "{vpc}: {regional}");
                names_now.insert((vpc.clone(), regional));
                for (az, name) in zonal {
                    let ips: Vec<Ipv4Addr> = pe.enis.iter().filter(|n| n.az == az).map(|n| n.ip).collect();
                    assert_eq!(ask(&r, &name), Some(ips), "{vpc}: {name}");
                    names_now.insert((vpc.clone(), name));
                }
                if pe.private_dns {
                    for name in info.default_dns_names.iter().filter(|n| !n.starts_with('*')) {
                        assert_eq!(ask(&r, name), want, "{vpc}: {name} of {}", pe.id);
                    }
                }
            }
            for info in &self.services {
                if vp.plan.endpoints.iter().any(|e| e.private_dns && e.service == info.service_name) {
                    continue;
                }
                for name in info.default_dns_names.iter().filter(|n| !n.starts_with('*')) {
                    assert_eq!(ask(&r, name), None, "{vpc}: {name} answers without a private DNS endpoint");
                }
            }
            for (_, name) in self.names.iter().filter(|(v, n)| v == vpc && !names_now.contains(&(v.clone(), n.clone())))
            {
                assert_eq!(ask(&r, name), None, "{vpc}: {name} answers after its endpoint or ENI went");
            }
        }
        self.names = names_now;

        // The rules: every endpoint's and the resolver's rule set builds, from the Describe answers.
        for (vpc, vp) in &plans {
            for pe in &vp.plan.endpoints {
                let plan = vp.endpoint_plan(&pe.id, "t").expect("an endpoint of the plan");
                if let Err(e) = plan.rule_set() {
                    panic!("{}: the rule set does not build: {e}", pe.id);
                }
            }
            if let Err(e) = vp.resolver_plan("r").rule_set() {
                panic!("{vpc}: the resolver's rule set does not build: {e}");
            }
            let cfg = self.ec2.rule_set_config(vpc);
            let mut have: Vec<&str> = cfg.security_groups.iter().map(|g| g.id.as_str()).collect();
            let mut want: Vec<&str> =
                groups.iter().filter(|g| g.get("vpcId") == vpc).map(|g| g.get("groupId")).collect();
            have.sort_unstable();
            want.sort_unstable();
            assert_eq!(have, want, "{vpc}: rule_set_config's groups");
            let mut have: Vec<&str> = cfg.network_acls.iter().map(|a| a.id.as_str()).collect();
            let mut want: Vec<&str> =
                acls.iter().filter(|a| a.get("vpcId") == vpc).map(|a| a.get("networkAclId")).collect();
            have.sort_unstable();
            want.sort_unstable();
            assert_eq!(have, want, "{vpc}: rule_set_config's NACLs");
            let mut members: BTreeMap<String, BTreeSet<Ipv4Addr>> = BTreeMap::new();
            for i in instances.iter().filter(|i| i.get("vpcId") == vpc) {
                for g in i.list("groupSet/item/groupId") {
                    members.entry(g).or_default().insert(ip(i.get("privateIpAddress")));
                }
            }
            for n in enis.iter().filter(|n| n.get("vpcId") == vpc) {
                for g in n.list("groupSet/item/groupId") {
                    members.entry(g).or_default().insert(ip(n.get("privateIpAddress")));
                }
            }
            let have: BTreeMap<String, BTreeSet<Ipv4Addr>> =
                cfg.group_members.iter().map(|m| (m.group.clone(), m.ips.iter().copied().collect())).collect();
            assert_eq!(have, members, "{vpc}: group members");
        }

        // Prefix lists: the data plane expands each list a VPC's groups name
        // into the blocks GetManagedPrefixListEntries answers.
        let lists_doc = self.describe("DescribeManagedPrefixLists", &[]);
        let lists = items(&lists_doc, "DescribeManagedPrefixListsResponse/prefixListSet/item/", "prefixListId");
        let list_ids: Vec<String> = lists.iter().map(|l| l.get("prefixListId").to_string()).collect();
        assert_eq!(list_ids, ids(&self.ec2.prefix_lists), "DescribeManagedPrefixLists");
        let mut blocks: BTreeMap<String, Vec<Cidr>> = BTreeMap::new();
        for l in &lists {
            let id = l.get("prefixListId");
            let state = l.get("state");
            assert!(
                ["create-complete", "modify-complete", "modify-failed", "delete-failed"].contains(&state),
                "{id}: state {state}"
            );
            let doc = self.describe("GetManagedPrefixListEntries", &[("PrefixListId", id)]);
            let cidrs: Vec<Cidr> = items(&doc, "GetManagedPrefixListEntriesResponse/entrySet/item/", "cidr")
                .iter()
                .map(|e| e.get("cidr").parse().unwrap())
                .collect();
            let max: usize = l.get("maxEntries").parse().unwrap();
            assert!(cidrs.len() <= max, "{id}: {} entries of at most {max}", cidrs.len());
            blocks.insert(id.to_string(), cidrs);
        }
        for (vpc, vp) in &plans {
            let named: BTreeSet<String> = groups
                .iter()
                .filter(|g| g.get("vpcId") == vpc)
                .flat_map(|g| {
                    let mut l = g.list("ipPermissions/item/prefixListIds/item/prefixListId");
                    l.extend(g.list("ipPermissionsEgress/item/prefixListIds/item/prefixListId"));
                    l
                })
                .collect();
            let have: BTreeMap<String, Vec<Cidr>> =
                vp.plan.rules.prefix_lists.iter().map(|l| (l.id.clone(), l.cidrs.clone())).collect();
            let want: BTreeMap<String, Vec<Cidr>> = named
                .iter()
                .map(|id| {
                    (
                        id.clone(),
                        blocks
                            .get(id)
                            .unwrap_or_else(|| panic!("{vpc}: a rule names {id}, which is not listed"))
                            .clone(),
                    )
                })
                .collect();
            assert_eq!(have, want, "{vpc}: the plan's prefix lists");
            // Each ENI's compiled rules admit, from each block of a list an
            // inbound TCP rule names, that rule's port (the NACL may still deny).
            for pe in &vp.plan.endpoints {
                let rules =
                    vp.endpoint_plan(&pe.id, "t").expect("an endpoint of the plan").rule_set().expect("built above");
                for (index, eni) in pe.enis.iter().enumerate() {
                    for g in &pe.settings.security_groups {
                        for r in &self.ec2.security_groups[g].ingress {
                            let super::RulePeer::PrefixList(id) = &r.peer else { continue };
                            if r.protocol != "tcp" && r.protocol != "-1" {
                                continue;
                            }
                            for c in &blocks[id] {
                                let syn = crate::packet::PacketMeta {
                                    src: c.base(),
                                    dst: eni.ip,
                                    dst_port: r.from_port.map_or(443, |p| p as u16),
                                    ..crate::packet::sample::SYN
                                };
                                let d = rules.evaluate(index, crate::flow::Direction::Ingress, &syn);
                                assert!(
                                    d.is_accept()
                                        || matches!(
                                            d.reason,
                                            crate::filter::Reason::NaclRule { .. }
                                                | crate::filter::Reason::NaclDefaultDeny { .. }
                                        ),
                                    "{}: {c} of {id} to port {} of {g}: {d}",
                                    pe.id,
                                    syn.dst_port
                                );
                            }
                        }
                    }
                }
            }
        }

        // Tags are only on resources that exist.
        let mut exist: BTreeSet<&str> = BTreeSet::new();
        exist.extend(vpcs.iter().map(|v| v.get("vpcId")));
        exist.extend(subnets.iter().map(|s| s.get("subnetId")));
        exist.extend(groups.iter().map(|g| g.get("groupId")));
        exist.extend(acls.iter().map(|a| a.get("networkAclId")));
        exist.extend(instances.iter().map(|i| i.get("instanceId")));
        exist.extend(enis.iter().map(|n| n.get("networkInterfaceId")));
        exist.extend(endpoints.iter().map(|e| e.get("vpcEndpointId")));
        exist.extend(list_ids.iter().map(String::as_str));
        // Rules only when a tag is on one (their answer is the longest).
        let rules_doc = match tags.iter().any(|t| t.get("resourceId").starts_with("sgr-")) {
            true => self.describe("DescribeSecurityGroupRules", &[]),
            false => String::new(),
        };
        let set = "DescribeSecurityGroupRulesResponse/securityGroupRuleSet/item/";
        let rules = items(&rules_doc, set, "securityGroupRuleId");
        exist.extend(rules.iter().map(|r| r.get("securityGroupRuleId")));
        for t in &tags {
            assert!(exist.contains(t.get("resourceId")), "a tag on {}, which does not exist", t.get("resourceId"));
        }

        // Pagination: pages of k follow NextToken to the same ids, in order, once each.
        let k = (1 + self.steps % 3).to_string();
        let all_ids: Vec<String> = endpoints.iter().map(|e| e.get("vpcEndpointId").to_string()).collect();
        let mut paged: Vec<String> = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..=all_ids.len() {
            let mut params = vec![("MaxResults", k.as_str())];
            if let Some(t) = &token {
                params.push(("NextToken", t.as_str()));
            }
            let doc = self.describe("DescribeVpcEndpoints", &params);
            let page = items(&doc, "DescribeVpcEndpointsResponse/vpcEndpointSet/item/", "vpcEndpointId");
            assert!(page.len() <= k.parse().unwrap(), "a page longer than MaxResults");
            paged.extend(page.iter().map(|e| e.get("vpcEndpointId").to_string()));
            token = crate::api::xml::tests::at(&doc, "DescribeVpcEndpointsResponse/nextToken");
            if token.is_none() {
                break;
            }
        }
        assert!(token.is_none(), "NextToken never ends");
        assert_eq!(paged, all_ids, "DescribeVpcEndpoints by pages of {k}");
    }
}

proptest! {
    // 256 cases (proptest's default; PROPTEST_CASES overrides it).
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_calls_keep_describe_and_the_data_plane_in_agreement(
        start in setup(),
        ops in proptest::collection::vec(op(), 20..=60),
    ) {
        let mut d = Driver::new();
        d.check();
        for op in start.iter().chain(&ops) {
            d.step(op);
        }
    }
}

// -------------------------------------------------------------------
// Sequences the property test found, shrunk
// -------------------------------------------------------------------

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter().map(|(k, v)| kv(*k, *v)).collect()
}

/// Runs a call that must succeed; returns its answer.
fn ok(d: &mut Driver, action: &str, p: &[(&str, &str)]) -> String {
    d.apply(action, &pairs(p)).unwrap_or_else(|e| panic!("{action}: {e}"))
}

fn field(doc: &str, path: &str) -> String {
    crate::api::xml::tests::at(doc, path).unwrap_or_else(|| panic!("no {path} in {doc}"))
}

#[test]
fn deleting_a_vpc_drops_the_tags_of_its_default_groups_rules() {
    let mut d = Driver::new();
    let vpc = field(&ok(&mut d, "CreateVpc", &[("CidrBlock", "10.0.0.0/16")]), "CreateVpcResponse/vpc/vpcId");
    let sg = d.ec2.vpcs[&vpc].default_security_group.clone();
    let rule = [
        ("GroupId", sg.as_str()),
        ("IpPermissions.1.IpProtocol", "tcp"),
        ("IpPermissions.1.FromPort", "443"),
        ("IpPermissions.1.ToPort", "443"),
        ("IpPermissions.1.IpRanges.1.CidrIp", "10.0.0.0/16"),
        ("TagSpecification.1.ResourceType", "security-group-rule"),
        ("TagSpecification.1.Tag.1.Key", "Name"),
    ];
    ok(&mut d, "AuthorizeSecurityGroupIngress", &rule);
    ok(&mut d, "DeleteVpc", &[("VpcId", &vpc)]);
    assert!(d.ec2.tags.is_empty(), "{:?}", d.ec2.tags);
    d.check();
}

/// A VPC with DNS hostnames on and one subnet; `(vpc, subnet)`.
fn vpc_with_subnet(d: &mut Driver) -> (String, String) {
    let vpc = field(&ok(d, "CreateVpc", &[("CidrBlock", "10.0.0.0/16")]), "CreateVpcResponse/vpc/vpcId");
    ok(d, "ModifyVpcAttribute", &[("VpcId", &vpc), ("EnableDnsHostnames.Value", "true")]);
    let p = [("VpcId", vpc.as_str()), ("CidrBlock", "10.0.1.0/24"), ("AvailabilityZone", "us-east-1a")];
    let subnet = field(&ok(d, "CreateSubnet", &p), "CreateSubnetResponse/subnet/subnetId");
    (vpc, subnet)
}

#[test]
fn an_endpoint_naming_a_group_twice_has_it_once() {
    let mut d = Driver::new();
    let (vpc, subnet) = vpc_with_subnet(&mut d);
    let sg = d.ec2.vpcs[&vpc].default_security_group.clone();
    let p = [
        ("VpcId", vpc.as_str()),
        ("ServiceName", "com.amazonaws.us-east-1.ec2"),
        ("VpcEndpointType", "Interface"),
        ("SubnetId.1", &subnet),
        ("SecurityGroupId.1", &sg),
        ("SecurityGroupId.2", &sg),
    ];
    let doc = ok(&mut d, "CreateVpcEndpoint", &p);
    let id = field(&doc, "CreateVpcEndpointResponse/vpcEndpoint/vpcEndpointId");
    assert_eq!(d.ec2.endpoints[&id].security_groups, std::slice::from_ref(&sg));
    d.check();
    let web = [("VpcId", vpc.as_str()), ("GroupName", "web"), ("GroupDescription", "d")];
    let web = field(&ok(&mut d, "CreateSecurityGroup", &web), "CreateSecurityGroupResponse/groupId");
    let p = [("VpcEndpointId", id.as_str()), ("AddSecurityGroupId.1", &web), ("AddSecurityGroupId.2", &web)];
    ok(&mut d, "ModifyVpcEndpoint", &p);
    // Removed and added back in one call, beside another: still once.
    let p = [
        ("VpcEndpointId", id.as_str()),
        ("RemoveSecurityGroupId.1", &sg),
        ("AddSecurityGroupId.1", &sg),
        ("AddSecurityGroupId.2", &web),
    ];
    let _ = d.apply("ModifyVpcEndpoint", &pairs(&p));
    let groups = &d.ec2.endpoints[&id].security_groups;
    assert_eq!(groups.iter().collect::<BTreeSet<_>>().len(), groups.len(), "{groups:?}");
    d.check();
}

#[test]
fn an_endpoint_keeps_at_least_one_subnet() {
    let mut d = Driver::new();
    let (vpc, subnet) = vpc_with_subnet(&mut d);
    let mut p =
        vec![("VpcId", vpc.as_str()), ("ServiceName", "com.amazonaws.us-east-1.ec2"), ("VpcEndpointType", "Interface")];
    assert_eq!(d.apply("CreateVpcEndpoint", &pairs(&p)).unwrap_err().code, "MissingParameter");
    p.push(("SubnetId.1", &subnet));
    let id = field(&ok(&mut d, "CreateVpcEndpoint", &p), "CreateVpcEndpointResponse/vpcEndpoint/vpcEndpointId");
    let remove = [("VpcEndpointId", id.as_str()), ("RemoveSubnetId.1", &subnet)];
    assert_eq!(d.apply("ModifyVpcEndpoint", &pairs(&remove)).unwrap_err().code, "InvalidParameter");
    d.check();
}

#[test]
fn an_enis_tags_go_with_it() {
    let mut d = Driver::new();
    let (vpc, a) = vpc_with_subnet(&mut d);
    let p = [("VpcId", vpc.as_str()), ("CidrBlock", "10.0.2.0/24"), ("AvailabilityZone", "us-east-1b")];
    let b = field(&ok(&mut d, "CreateSubnet", &p), "CreateSubnetResponse/subnet/subnetId");
    let p = [
        ("VpcId", vpc.as_str()),
        ("ServiceName", "com.amazonaws.us-east-1.ec2"),
        ("VpcEndpointType", "Interface"),
        ("SubnetId.1", &a),
        ("SubnetId.2", &b),
    ];
    let id = field(&ok(&mut d, "CreateVpcEndpoint", &p), "CreateVpcEndpointResponse/vpcEndpoint/vpcEndpointId");
    let enis: Vec<String> = d.ec2.network_interfaces.keys().cloned().collect();
    for eni in &enis {
        ok(&mut d, "CreateTags", &[("ResourceId.1", eni), ("Tag.1.Key", "Name")]);
    }
    // A subnet's ENI leaves with its tags...
    ok(&mut d, "ModifyVpcEndpoint", &[("VpcEndpointId", &id), ("RemoveSubnetId.1", &b)]);
    assert_eq!(d.ec2.tags.len(), 1, "{:?}", d.ec2.tags);
    d.check();
    // ...and so do the endpoint's.
    ok(&mut d, "DeleteVpcEndpoints", &[("VpcEndpointId.1", &id)]);
    assert!(d.ec2.tags.is_empty(), "{:?}", d.ec2.tags);
    d.check();
}

#[test]
fn delete_tags_refused_for_a_tag_without_key_removes_none() {
    let mut d = Driver::new();
    let (vpc, _) = vpc_with_subnet(&mut d);
    ok(&mut d, "CreateTags", &[("ResourceId.1", &vpc), ("Tag.1.Key", "env"), ("Tag.1.Value", "v")]);
    let p = [("ResourceId.1", vpc.as_str()), ("Tag.1.Key", "env"), ("Tag.2.Value", "v")];
    assert_eq!(d.apply("DeleteTags", &pairs(&p)).unwrap_err().code, "MissingParameter");
    assert_eq!(d.ec2.tags[&vpc]["env"], "v");
    d.check();
}

#[test]
fn an_endpoint_has_at_most_five_groups() {
    let mut d = Driver::new();
    let (vpc, subnet) = vpc_with_subnet(&mut d);
    let mut groups = vec![d.ec2.vpcs[&vpc].default_security_group.clone()];
    for name in ["a", "b", "c", "d", "e"] {
        let p = [("VpcId", vpc.as_str()), ("GroupName", name), ("GroupDescription", "d")];
        groups.push(field(&ok(&mut d, "CreateSecurityGroup", &p), "CreateSecurityGroupResponse/groupId"));
    }
    let keys: Vec<String> = (1..=6).map(|n| format!("SecurityGroupId.{n}")).collect();
    let mut p = vec![
        ("VpcId", vpc.as_str()),
        ("ServiceName", "com.amazonaws.us-east-1.ec2"),
        ("VpcEndpointType", "Interface"),
        ("SubnetId.1", &subnet),
    ];
    p.extend(keys.iter().map(String::as_str).zip(groups.iter().map(String::as_str)));
    let e = d.apply("CreateVpcEndpoint", &pairs(&p)).unwrap_err();
    assert_eq!(e.code, "SecurityGroupsPerInterfaceLimitExceeded");
    p.pop();
    let id = field(&ok(&mut d, "CreateVpcEndpoint", &p), "CreateVpcEndpointResponse/vpcEndpoint/vpcEndpointId");
    d.check();
    let add = [("VpcEndpointId", id.as_str()), ("AddSecurityGroupId.1", &groups[5])];
    let e = d.apply("ModifyVpcEndpoint", &pairs(&add)).unwrap_err();
    assert_eq!(e.code, "SecurityGroupsPerInterfaceLimitExceeded");
    d.check();
}
