//! The compiled, immutable rule set: validated once, read lock-free per packet.
//!
//! Building does all the work that does not depend on the packet: quotas and
//! references are checked, the VPC default group is synthesized, group and
//! prefix-list peers are expanded into address blocks, NACL entries are
//! sorted, and everything is split by protocol into flat vectors of 12-byte
//! [`super::matcher::Match`]es. A new-flow check is then one tight scan per layer.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use super::matcher::Match;
use super::nacl::CompiledNacl;
use super::sg::{CompiledSgDir, SgMatch};
use super::{Decision, NetworkAcl, ParseRuleError, PortRange, Protocol, Reason, SecurityGroup, SgPeer, SgRule};
use crate::cidr::Cidr;
use crate::flow::Direction;
use crate::packet::PacketMeta;

/// Id of the VPC default security group when [`RuleSetConfig`] names none.
pub const DEFAULT_GROUP_ID: &str = "sg-default";

/// The filtering view of one ENI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EniRules {
    /// Index the data plane uses in [`super::Filter::handle_packet`].
    pub index: usize,
    /// The ENI's private IP.
    pub ip: Ipv4Addr,
    /// The subnet's block; NACLs apply only to traffic crossing it.
    pub subnet: Cidr,
    /// Security group ids; empty means the VPC default group.
    pub security_groups: Vec<String>,
    /// The subnet's NACL id; `None` is the default NACL (allow all both ways).
    pub network_acl: Option<String>,
}

/// Declared members of a group besides the ENIs that name it (lab instances).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupMembers {
    /// The security group id.
    pub group: String,
    /// Private IPs of instances in that group.
    pub ips: Vec<Ipv4Addr>,
}

/// A managed prefix list (`pl-...`): a named set of blocks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrefixList {
    /// The prefix list id.
    pub id: String,
    /// Its blocks.
    pub cidrs: Vec<Cidr>,
}

/// AWS quotas enforced at build time (defaults are AWS's defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quotas {
    /// Inbound, and separately outbound, rules per security group (AWS: 60).
    pub rules_per_group: usize,
    /// Security groups per network interface (AWS: 5).
    pub groups_per_eni: usize,
    /// Entries per NACL per direction (AWS: 20, adjustable to 40).
    pub nacl_entries_per_direction: usize,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas { rules_per_group: 60, groups_per_eni: 5, nacl_entries_per_direction: 20 }
    }
}

/// Everything a [`RuleSet`] is built from, in EC2 terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSetConfig {
    /// The ENIs to filter for.
    pub enis: Vec<EniRules>,
    /// Security groups (the default group may be listed to override its rules).
    pub security_groups: Vec<SecurityGroup>,
    /// Custom network ACLs.
    pub network_acls: Vec<NetworkAcl>,
    /// Extra members per group, for group-referencing rules.
    pub group_members: Vec<GroupMembers>,
    /// Managed prefix lists.
    pub prefix_lists: Vec<PrefixList>,
    /// Id of the VPC default group (used by ENIs that name no group).
    pub default_group_id: String,
    /// Quotas to enforce.
    pub quotas: Quotas,
}

impl Default for RuleSetConfig {
    fn default() -> Self {
        RuleSetConfig {
            enis: Vec::new(),
            security_groups: Vec::new(),
            network_acls: Vec::new(),
            group_members: Vec::new(),
            prefix_lists: Vec::new(),
            default_group_id: DEFAULT_GROUP_ID.to_owned(),
            quotas: Quotas::default(),
        }
    }
}

/// Why a [`RuleSetConfig`] cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleSetError {
    /// A rule field failed to parse.
    #[error(transparent)]
    Rule(#[from] ParseRuleError),
    /// Two ENIs share an index.
    #[error("ENI index {index} is listed twice")]
    DuplicateEni {
        /// The index.
        index: usize,
    },
    /// The ENI's IP is not in its subnet.
    #[error("ENI {index}: address {ip} is outside its subnet {subnet}")]
    EniOutsideSubnet {
        /// The ENI index.
        index: usize,
        /// Its IP.
        ip: Ipv4Addr,
        /// Its subnet.
        subnet: Cidr,
    },
    /// Two security groups share an id.
    #[error("security group {group} is defined twice")]
    DuplicateGroup {
        /// The id.
        group: String,
    },
    /// Two NACLs share an id.
    #[error("network ACL {acl} is defined twice")]
    DuplicateNetworkAcl {
        /// The id.
        acl: String,
    },
    /// Two prefix lists share an id.
    #[error("prefix list {list} is defined twice")]
    DuplicatePrefixList {
        /// The id.
        list: String,
    },
    /// A reference to a security group that does not exist.
    #[error("unknown security group {group} (referenced by {by})")]
    UnknownGroup {
        /// The missing id.
        group: String,
        /// Where the reference is, e.g. `ENI 0` or `sg-a ingress rule #2`.
        by: String,
    },
    /// An ENI names a NACL that does not exist.
    #[error("unknown network ACL {acl} (referenced by ENI {eni})")]
    UnknownNetworkAcl {
        /// The missing id.
        acl: String,
        /// The ENI index.
        eni: usize,
    },
    /// A rule names a prefix list that does not exist.
    #[error("unknown prefix list {list} (referenced by {by})")]
    UnknownPrefixList {
        /// The missing id.
        list: String,
        /// Where the reference is.
        by: String,
    },
    /// Two entries of one NACL direction share a rule number.
    #[error("network ACL {acl}: {dir} rule number {rule} is used twice")]
    DuplicateRuleNumber {
        /// The NACL id.
        acl: String,
        /// Which entry list.
        dir: Direction,
        /// The number.
        rule: u16,
    },
    /// An ENI lists the same group twice.
    #[error("ENI {eni} lists security group {group} twice")]
    GroupListedTwice {
        /// The ENI index.
        eni: usize,
        /// The group id.
        group: String,
    },
    /// Over the rules-per-group quota.
    #[error("security group {group} has {count} {dir} rules; the quota is {limit}")]
    TooManyRules {
        /// The group id.
        group: String,
        /// Which list.
        dir: Direction,
        /// Rules given.
        count: usize,
        /// The quota.
        limit: usize,
    },
    /// Over the groups-per-ENI quota.
    #[error("ENI {eni} has {count} security groups; the quota is {limit}")]
    TooManyGroups {
        /// The ENI index.
        eni: usize,
        /// Groups given.
        count: usize,
        /// The quota.
        limit: usize,
    },
    /// Over the NACL-entries-per-direction quota.
    #[error("network ACL {acl} has {count} {dir} entries; the quota is {limit}")]
    TooManyNaclEntries {
        /// The NACL id.
        acl: String,
        /// Which list.
        dir: Direction,
        /// Entries given.
        count: usize,
        /// The quota.
        limit: usize,
    },
}

/// One ENI, compiled.
#[derive(Debug)]
pub(crate) struct CompiledEni {
    subnet_addr: u32,
    subnet_mask: u32,
    nacl: Option<usize>,
    sg: [CompiledSgDir; 2],
}

/// Compiled, immutable SG/NACL rules for every ENI; share it behind an `Arc`.
#[derive(Debug)]
pub struct RuleSet {
    enis: Vec<Option<CompiledEni>>,
    nacls: Vec<CompiledNacl>,
    groups: Vec<Arc<str>>,
}

impl RuleSet {
    /// Validates `config` against references and quotas and compiles it.
    pub fn build(config: &RuleSetConfig) -> Result<RuleSet, RuleSetError> {
        let q = config.quotas;
        // u16 tags index groups and rules on the hot path.
        let rule_limit = q.rules_per_group.min(usize::from(u16::MAX));

        // Groups, with the VPC default group synthesized unless overridden.
        // AWS: the default group allows "inbound traffic from network
        // interfaces (and their associated instances) that are assigned to
        // the same security group" and "all outbound traffic".
        let synthesized;
        let mut groups: Vec<&SecurityGroup> = config.security_groups.iter().collect();
        if !groups.iter().any(|g| g.id == config.default_group_id) {
            synthesized = SecurityGroup {
                id: config.default_group_id.clone(),
                ingress: vec![SgRule {
                    protocol: Protocol::All,
                    ports: PortRange::ALL,
                    peer: SgPeer::Group(config.default_group_id.clone()),
                }],
                egress: vec![SgRule { protocol: Protocol::All, ports: PortRange::ALL, peer: SgPeer::Cidr(Cidr::ANY) }],
            };
            groups.push(&synthesized);
        }
        if groups.len() > usize::from(u16::MAX) {
            return Err(RuleSetError::TooManyGroups { eni: 0, count: groups.len(), limit: usize::from(u16::MAX) });
        }
        let mut group_idx: HashMap<&str, usize> = HashMap::new();
        for (i, g) in groups.iter().enumerate() {
            if group_idx.insert(g.id.as_str(), i).is_some() {
                return Err(RuleSetError::DuplicateGroup { group: g.id.clone() });
            }
            for (dir, rules) in [(Direction::Ingress, &g.ingress), (Direction::Egress, &g.egress)] {
                if rules.len() > rule_limit {
                    return Err(RuleSetError::TooManyRules {
                        group: g.id.clone(),
                        dir,
                        count: rules.len(),
                        limit: rule_limit,
                    });
                }
            }
        }

        let mut prefix_lists: HashMap<&str, &[Cidr]> = HashMap::new();
        for pl in &config.prefix_lists {
            if prefix_lists.insert(pl.id.as_str(), &pl.cidrs).is_some() {
                return Err(RuleSetError::DuplicatePrefixList { list: pl.id.clone() });
            }
        }

        // Every reference in every group must resolve, used or not, as EC2
        // validates a rule when it is authorized.
        for g in &groups {
            for (dir, rules) in [(Direction::Ingress, &g.ingress), (Direction::Egress, &g.egress)] {
                for (i, r) in rules.iter().enumerate() {
                    let by = || format!("{} {dir} rule #{i}", g.id);
                    match &r.peer {
                        SgPeer::Cidr(_) => {}
                        SgPeer::Group(id) if !group_idx.contains_key(id.as_str()) => {
                            return Err(RuleSetError::UnknownGroup { group: id.clone(), by: by() })
                        }
                        SgPeer::PrefixList(id) if !prefix_lists.contains_key(id.as_str()) => {
                            return Err(RuleSetError::UnknownPrefixList { list: id.clone(), by: by() })
                        }
                        _ => {}
                    }
                }
            }
        }

        let mut nacl_idx: HashMap<&str, usize> = HashMap::new();
        let mut nacls = Vec::with_capacity(config.network_acls.len());
        for acl in &config.network_acls {
            if nacl_idx.insert(acl.id.as_str(), nacls.len()).is_some() {
                return Err(RuleSetError::DuplicateNetworkAcl { acl: acl.id.clone() });
            }
            for (dir, entries) in [(Direction::Ingress, &acl.ingress), (Direction::Egress, &acl.egress)] {
                if entries.len() > q.nacl_entries_per_direction {
                    return Err(RuleSetError::TooManyNaclEntries {
                        acl: acl.id.clone(),
                        dir,
                        count: entries.len(),
                        limit: q.nacl_entries_per_direction,
                    });
                }
                let mut seen: Vec<u16> = entries.iter().map(|e| e.rule.get()).collect();
                seen.sort_unstable();
                if let Some(w) = seen.windows(2).find(|w| w[0] == w[1]) {
                    return Err(RuleSetError::DuplicateRuleNumber { acl: acl.id.clone(), dir, rule: w[0] });
                }
            }
            nacls.push(CompiledNacl::compile(acl));
        }

        // ENIs: effective groups, NACL, and group membership by ENI address.
        let default_idx = group_idx[config.default_group_id.as_str()];
        let mut members: Vec<Vec<Ipv4Addr>> = vec![Vec::new(); groups.len()];
        let mut eni_groups: Vec<Vec<usize>> = Vec::with_capacity(config.enis.len());
        let mut eni_nacl: Vec<Option<usize>> = Vec::with_capacity(config.enis.len());
        let mut seen_index: HashMap<usize, ()> = HashMap::new();
        for e in &config.enis {
            if seen_index.insert(e.index, ()).is_some() {
                return Err(RuleSetError::DuplicateEni { index: e.index });
            }
            if !e.subnet.contains(e.ip) {
                return Err(RuleSetError::EniOutsideSubnet { index: e.index, ip: e.ip, subnet: e.subnet });
            }
            if e.security_groups.len() > q.groups_per_eni {
                return Err(RuleSetError::TooManyGroups {
                    eni: e.index,
                    count: e.security_groups.len(),
                    limit: q.groups_per_eni,
                });
            }
            let mut gs = Vec::with_capacity(e.security_groups.len().max(1));
            for id in &e.security_groups {
                let Some(&gi) = group_idx.get(id.as_str()) else {
                    return Err(RuleSetError::UnknownGroup { group: id.clone(), by: format!("ENI {}", e.index) });
                };
                if gs.contains(&gi) {
                    return Err(RuleSetError::GroupListedTwice { eni: e.index, group: id.clone() });
                }
                gs.push(gi);
            }
            if gs.is_empty() {
                gs.push(default_idx);
            }
            for &gi in &gs {
                members[gi].push(e.ip);
            }
            eni_groups.push(gs);
            eni_nacl.push(match &e.network_acl {
                None => None,
                Some(id) => match nacl_idx.get(id.as_str()) {
                    Some(&n) => Some(n),
                    None => return Err(RuleSetError::UnknownNetworkAcl { acl: id.clone(), eni: e.index }),
                },
            });
        }
        for gm in &config.group_members {
            let Some(&gi) = group_idx.get(gm.group.as_str()) else {
                return Err(RuleSetError::UnknownGroup { group: gm.group.clone(), by: "group_members".to_owned() });
            };
            members[gi].extend_from_slice(&gm.ips);
        }

        // Compile.
        let slots = config.enis.iter().map(|e| e.index + 1).max().unwrap_or(0);
        let mut enis: Vec<Option<CompiledEni>> = (0..slots).map(|_| None).collect();
        for ((e, gs), nacl) in config.enis.iter().zip(&eni_groups).zip(eni_nacl) {
            let mut sg = [CompiledSgDir::default(), CompiledSgDir::default()];
            for &gi in gs {
                let g = groups[gi];
                for (dir, rules) in [(Direction::Ingress, &g.ingress), (Direction::Egress, &g.egress)] {
                    for (ri, r) in rules.iter().enumerate() {
                        let mut push = |cidr: Cidr| {
                            sg[dir.index()].push(
                                Match::new(cidr, r.protocol, r.ports),
                                r.protocol,
                                gi as u16,
                                ri as u16,
                            )
                        };
                        match &r.peer {
                            SgPeer::Cidr(c) => push(*c),
                            SgPeer::Group(id) => {
                                members[group_idx[id.as_str()]].iter().for_each(|ip| push(Cidr::host(*ip)))
                            }
                            SgPeer::PrefixList(id) => prefix_lists[id.as_str()].iter().for_each(|c| push(*c)),
                        }
                    }
                }
            }
            enis[e.index] =
                Some(CompiledEni { subnet_addr: u32::from(e.subnet.base()), subnet_mask: e.subnet.mask(), nacl, sg });
        }

        Ok(RuleSet { enis, nacls, groups: groups.iter().map(|g| Arc::from(g.id.as_str())).collect() })
    }

    /// Whether ENI index `eni` has rules here.
    pub fn contains_eni(&self, eni: usize) -> bool {
        self.eni(eni).is_some()
    }

    /// Compiled SG matches for one ENI and direction (after expanding group
    /// and prefix-list peers): the length of the new-flow scan.
    pub fn compiled_sg_len(&self, eni: usize, dir: Direction) -> Option<usize> {
        self.eni(eni).map(|e| e.sg[dir.index()].len())
    }

    /// What a *new* flow would get, without touching conntrack: the
    /// "reachability check" (which NACL entry or SG rule decides).
    pub fn evaluate(&self, eni: usize, dir: Direction, packet: &PacketMeta) -> Decision {
        let Some(e) = self.eni(eni) else {
            return Decision::reject(Reason::UnknownEni);
        };
        if dir == Direction::Ingress {
            if let Err(r) = self.check_nacl(e, dir, packet) {
                return Decision::reject(r);
            }
        }
        let Some(m) = self.check_sg(e, dir, packet) else {
            return Decision::reject(Reason::SgNoMatch { dir });
        };
        if dir == Direction::Egress {
            if let Err(r) = self.check_nacl(e, dir, packet) {
                return Decision::reject(r);
            }
        }
        let (group, index) = (self.group_id(m.group), m.index);
        Decision::accept(if m.untracked {
            Reason::Untracked { group, dir, index }
        } else {
            Reason::SgRule { group, dir, index }
        })
    }

    #[inline]
    pub(crate) fn eni(&self, eni: usize) -> Option<&CompiledEni> {
        self.enis.get(eni).and_then(Option::as_ref)
    }

    /// The subnet-boundary check: `Ok` if the NACL lets the packet cross, or
    /// if it does not cross (AWS: NACLs apply to traffic entering or leaving
    /// the subnet, not to traffic within it).
    #[inline]
    pub(crate) fn check_nacl(&self, eni: &CompiledEni, dir: Direction, packet: &PacketMeta) -> Result<(), Reason> {
        let Some(n) = eni.nacl else {
            // The default NACL "allows all inbound and outbound IPv4 traffic".
            return Ok(());
        };
        let remote = remote_of(dir, packet);
        if remote & eni.subnet_mask == eni.subnet_addr {
            return Ok(());
        }
        self.nacls[n].check(dir, packet.protocol, remote, packet.dst_port)
    }

    /// The first SG rule allowing a new flow, if any.
    #[inline]
    pub(crate) fn check_sg(&self, eni: &CompiledEni, dir: Direction, packet: &PacketMeta) -> Option<SgMatch> {
        eni.sg[dir.index()].evaluate(
            &eni.sg[dir.reverse().index()],
            packet.protocol,
            remote_of(dir, packet),
            packet.src_port,
            packet.dst_port,
        )
    }

    pub(crate) fn group_id(&self, g: u16) -> Arc<str> {
        self.groups[usize::from(g)].clone()
    }
}

/// The far end of a packet as the ENI sees it (the flow's client): rules match its address.
#[inline]
fn remote_of(dir: Direction, packet: &PacketMeta) -> u32 {
    u32::from(packet.flow_in(dir).client.0)
}
