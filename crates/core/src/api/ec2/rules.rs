//! The data plane's rules of one VPC, derived from the model: its security
//! groups and network ACLs in the filter's types ([`crate::filter`]), and
//! the managed prefix lists its groups' rules name, with their current
//! entries (a ModifyManagedPrefixList is in the next config built).
//!
//! The API stores only what the filter can enforce (IPv4 blocks; tcp, udp,
//! icmp or all; ports within 0–65535), so every stored rule and entry
//! converts. One that would not, in a model the API did not write, is left
//! out: the conversion has no error to report and must not panic.
//!
//! Three things differ in form, not meaning:
//! - the `*` entries (rule 32767) are dropped: the filter's NACL denies
//!   what no numbered entry matches by itself, and 32767 is not a
//!   [`RuleNumber`];
//! - an ICMP rule's type and code are not kept: the filter matches every
//!   ICMP message (see its "Not emulated");
//! - a group's members are declared: the instances in it and the endpoint
//!   ENIs whose endpoint has it. The plan fills the ENIs in; an ENI there
//!   also joins its groups, which only repeats an address.

use std::net::Ipv4Addr;

use super::resources::{NetworkAclEntry, RulePeer, SecurityGroupRule};
use super::Ec2;
use crate::filter::{
    GroupMembers, NaclEntry, NetworkAcl, PortRange, PrefixList, Protocol, RuleAction, RuleNumber, RuleSetConfig,
    SecurityGroup, SgPeer, SgRule, DEFAULT_GROUP_ID,
};

impl Ec2 {
    /// The rules of VPC `vpc` for [`crate::filter::RuleSet::build`], with no ENIs
    /// (the plan adds them). An unknown VPC has no groups and no NACLs.
    pub fn rule_set_config(&self, vpc: &str) -> RuleSetConfig {
        let groups: Vec<&super::SecurityGroup> = self.security_groups.values().filter(|g| g.vpc == vpc).collect();
        let security_groups = groups
            .iter()
            .map(|g| SecurityGroup {
                id: g.id.clone(),
                ingress: g.ingress.iter().filter_map(sg_rule).collect(),
                egress: g.egress.iter().filter_map(sg_rule).collect(),
            })
            .collect();
        let network_acls = self
            .network_acls
            .values()
            .filter(|a| a.vpc == vpc)
            .map(|a| NetworkAcl {
                id: a.id.clone(),
                ingress: a.entries.iter().filter(|e| !e.egress).filter_map(nacl_entry).collect(),
                egress: a.entries.iter().filter(|e| e.egress).filter_map(nacl_entry).collect(),
            })
            .collect();
        let group_members = groups
            .iter()
            .filter_map(|g| {
                let ips = self.members(vpc, &g.id);
                (!ips.is_empty()).then(|| GroupMembers { group: g.id.clone(), ips })
            })
            .collect();
        RuleSetConfig {
            enis: Vec::new(),
            security_groups,
            network_acls,
            group_members,
            prefix_lists: self.prefix_lists_of(&groups),
            default_group_id: self
                .vpcs
                .get(vpc)
                .map_or_else(|| DEFAULT_GROUP_ID.to_string(), |v| v.default_security_group.clone()),
            quotas: Default::default(),
        }
    }

    /// The prefix lists `groups`' rules name, with their current blocks, in id order.
    fn prefix_lists_of(&self, groups: &[&super::SecurityGroup]) -> Vec<PrefixList> {
        let named: std::collections::BTreeSet<&String> = groups
            .iter()
            .flat_map(|g| g.ingress.iter().chain(&g.egress))
            .filter_map(|r| if let RulePeer::PrefixList(id) = &r.peer { Some(id) } else { None })
            .collect();
        named
            .into_iter()
            .filter_map(|id| self.prefix_lists.get(id))
            .map(|l| PrefixList { id: l.id.clone(), cidrs: l.entries.iter().map(|e| e.cidr).collect() })
            .collect()
    }

    /// The private IPs in group `group` of VPC `vpc`: instances, and the ENIs
    /// of endpoints that have the group; sorted.
    fn members(&self, vpc: &str, group: &str) -> Vec<Ipv4Addr> {
        let instances =
            self.instances.values().filter(|i| i.vpc == vpc && i.security_groups.iter().any(|g| g == group));
        let enis = self.network_interfaces.values().filter(|n| {
            self.endpoints
                .get(&n.endpoint)
                .is_some_and(|e| e.vpc == vpc && e.security_groups.iter().any(|g| g == group))
        });
        let mut ips: Vec<Ipv4Addr> = instances.map(|i| i.ip).chain(enis.map(|n| n.ip)).collect();
        ips.sort_unstable();
        ips.dedup();
        ips
    }
}

/// A TCP or UDP range as stored; `None` when it is not one.
fn port_range(from: i64, to: i64) -> Option<PortRange> {
    PortRange::new(u16::try_from(from).ok()?, u16::try_from(to).ok()?).ok()
}

fn sg_rule(r: &SecurityGroupRule) -> Option<SgRule> {
    let protocol: Protocol = r.protocol.parse().ok()?;
    let ports =
        if protocol.has_ports() { port_range(i64::from(r.from_port?), i64::from(r.to_port?))? } else { PortRange::ALL };
    let peer = match &r.peer {
        RulePeer::Cidr(c) => SgPeer::Cidr(*c),
        RulePeer::Group(g) => SgPeer::Group(g.clone()),
        RulePeer::PrefixList(l) => SgPeer::PrefixList(l.clone()),
    };
    Some(SgRule { protocol, ports, peer })
}

fn nacl_entry(e: &NetworkAclEntry) -> Option<NaclEntry> {
    let rule = RuleNumber::new(u32::from(e.rule_number)).ok()?;
    let protocol: Protocol = e.protocol.parse().ok()?;
    let ports = match (protocol.has_ports(), e.ports) {
        (false, _) => PortRange::ALL,
        (true, Some((from, to))) => port_range(i64::from(from), i64::from(to))?,
        (true, None) => return None,
    };
    let action: RuleAction = e.rule_action.parse().ok()?;
    Some(NaclEntry { rule, protocol, ports, cidr: e.cidr, action })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ec2::testkit::Lab;
    use crate::api::ec2::{Instance, NetworkInterface, VpcEndpoint};
    use crate::cidr::Cidr;
    use crate::filter::{EniRules, Reason, RuleSet};
    use crate::flow::Direction;
    use crate::packet::{sample, PacketMeta};

    fn group(lab: &mut Lab, vpc: &str, name: &str) -> String {
        let params = [("VpcId", vpc), ("GroupName", name), ("GroupDescription", "d")];
        lab.field("CreateSecurityGroup", &params, "CreateSecurityGroupResponse/groupId")
    }

    fn https_from<'a>(sg: &'a str, cidr: &'a str) -> [(&'a str, &'a str); 5] {
        [
            ("GroupId", sg),
            ("IpPermissions.1.IpProtocol", "tcp"),
            ("IpPermissions.1.FromPort", "443"),
            ("IpPermissions.1.ToPort", "443"),
            ("IpPermissions.1.IpRanges.1.CidrIp", cidr),
        ]
    }

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn groups_and_nacls_convert_field_by_field() {
        let mut lab = Lab::new();
        let vpc = lab.vpc("10.0.0.0/16");
        let other_vpc = lab.vpc("10.1.0.0/16");
        group(&mut lab, &other_vpc, "elsewhere");
        let default_sg = lab.ec2.vpcs[&vpc].default_security_group.clone();
        let default_acl = lab.ec2.vpcs[&vpc].default_network_acl.clone();
        let sg = group(&mut lab, &vpc, "web");
        lab.ok("AuthorizeSecurityGroupIngress", &https_from(&sg, "10.0.0.0/16"));
        let more = [
            ("GroupId", sg.as_str()),
            ("IpPermissions.1.IpProtocol", "udp"),
            ("IpPermissions.1.FromPort", "1024"),
            ("IpPermissions.1.ToPort", "2048"),
            ("IpPermissions.1.Groups.1.GroupId", default_sg.as_str()),
            ("IpPermissions.2.IpProtocol", "icmp"),
            ("IpPermissions.2.FromPort", "8"),
            ("IpPermissions.2.ToPort", "0"),
            ("IpPermissions.2.IpRanges.1.CidrIp", "192.0.2.0/24"),
        ];
        lab.ok("AuthorizeSecurityGroupIngress", &more);
        let acl = lab.field("CreateNetworkAcl", &[("VpcId", &vpc)], "CreateNetworkAclResponse/networkAcl/networkAclId");
        let entry = [
            ("NetworkAclId", acl.as_str()),
            ("RuleNumber", "100"),
            ("Egress", "false"),
            ("Protocol", "tcp"),
            ("RuleAction", "allow"),
            ("CidrBlock", "10.0.0.0/16"),
            ("PortRange.From", "443"),
            ("PortRange.To", "443"),
        ];
        lab.ok("CreateNetworkAclEntry", &entry);
        let deny = [
            ("NetworkAclId", acl.as_str()),
            ("RuleNumber", "200"),
            ("Egress", "true"),
            ("Protocol", "-1"),
            ("RuleAction", "deny"),
            ("CidrBlock", "192.0.2.0/24"),
        ];
        lab.ok("CreateNetworkAclEntry", &deny);

        let cfg = lab.ec2.rule_set_config(&vpc);
        assert!(cfg.enis.is_empty() && cfg.prefix_lists.is_empty());
        assert_eq!(cfg.default_group_id, default_sg);
        assert_eq!(cfg.quotas, crate::filter::Quotas::default());
        let ids: Vec<&str> = cfg.security_groups.iter().map(|g| g.id.as_str()).collect();
        let mut want = vec![default_sg.as_str(), sg.as_str()];
        want.sort();
        assert_eq!(ids, want, "the VPC's groups only");
        let web = cfg.security_groups.iter().find(|g| g.id == sg).unwrap();
        assert_eq!(
            web.ingress,
            [
                SgRule {
                    protocol: Protocol::Tcp,
                    ports: PortRange::single(443),
                    peer: SgPeer::Cidr(cidr("10.0.0.0/16"))
                },
                SgRule {
                    protocol: Protocol::Udp,
                    ports: PortRange::new(1024, 2048).unwrap(),
                    peer: SgPeer::Group(default_sg.clone())
                },
                SgRule { protocol: Protocol::Icmp, ports: PortRange::ALL, peer: SgPeer::Cidr(cidr("192.0.2.0/24")) },
            ]
        );
        assert_eq!(
            web.egress,
            [SgRule { protocol: Protocol::All, ports: PortRange::ALL, peer: SgPeer::Cidr(Cidr::ANY) }]
        );
        let dflt = cfg.security_groups.iter().find(|g| g.id == default_sg).unwrap();
        assert_eq!(dflt.ingress[0].peer, SgPeer::Group(default_sg.clone()));

        let custom = cfg.network_acls.iter().find(|a| a.id == acl).unwrap();
        let n = |r| RuleNumber::new(r).unwrap();
        assert_eq!(
            custom.ingress,
            [NaclEntry {
                rule: n(100),
                protocol: Protocol::Tcp,
                ports: PortRange::single(443),
                cidr: cidr("10.0.0.0/16"),
                action: RuleAction::Allow
            }],
            "the * entry is the filter's own"
        );
        assert_eq!(
            custom.egress,
            [NaclEntry {
                rule: n(200),
                protocol: Protocol::All,
                ports: PortRange::ALL,
                cidr: cidr("192.0.2.0/24"),
                action: RuleAction::Deny
            }]
        );
        let dacl = cfg.network_acls.iter().find(|a| a.id == default_acl).unwrap();
        let allow_all = NaclEntry {
            rule: n(100),
            protocol: Protocol::All,
            ports: PortRange::ALL,
            cidr: Cidr::ANY,
            action: RuleAction::Allow,
        };
        assert_eq!(
            (dacl.ingress.as_slice(), dacl.egress.as_slice()),
            ([allow_all.clone()].as_slice(), [allow_all].as_slice())
        );
        assert_eq!(cfg.network_acls.len(), 2);
        assert!(cfg.group_members.is_empty(), "no instance or ENI yet");
        RuleSet::build(&cfg).unwrap();
        assert_eq!(lab.ec2.rule_set_config("vpc-12345678").default_group_id, DEFAULT_GROUP_ID);
    }

    #[test]
    fn members_are_the_instances_and_endpoint_enis_of_each_group() {
        let mut lab = Lab::new();
        let vpc = lab.vpc("10.0.0.0/16");
        let subnet = lab.subnet(&vpc, "10.0.1.0/24", "us-east-1a");
        let sg = group(&mut lab, &vpc, "web");
        let quiet = group(&mut lab, &vpc, "quiet");
        let instance = |id: &str, ip: &str, groups: Vec<String>| Instance {
            id: id.into(),
            reservation: "r-12345678".into(),
            vpc: vpc.clone(),
            subnet: subnet.clone(),
            ip: ip.parse().unwrap(),
            security_groups: groups,
            image_id: "ami-12345678".into(),
            instance_type: "t3.micro".into(),
            launch_time: 0,
        };
        for i in [
            instance("i-00000001", "10.0.1.20", vec![sg.clone()]),
            instance("i-00000002", "10.0.1.10", vec![sg.clone()]),
        ] {
            lab.ec2.instances.insert(i.id.clone(), i);
        }
        let endpoint = VpcEndpoint {
            id: "vpce-12345678".into(),
            vpc: vpc.clone(),
            service_name: "com.amazonaws.us-east-1.ec2".into(),
            state: crate::api::ec2::EndpointState::Available,
            subnets: vec![subnet.clone()],
            security_groups: vec![sg.clone()],
            private_dns: true,
            policy: None,
            dns_suffix: "abcdefgh".into(),
            created: 0,
            carriage: None,
        };
        lab.ec2.endpoints.insert(endpoint.id.clone(), endpoint);
        let eni = NetworkInterface {
            id: "eni-12345678".into(),
            endpoint: "vpce-12345678".into(),
            subnet: subnet.clone(),
            ip: "10.0.1.49".parse().unwrap(),
        };
        lab.ec2.network_interfaces.insert(eni.id.clone(), eni);
        let cfg = lab.ec2.rule_set_config(&vpc);
        assert_eq!(
            cfg.group_members,
            [GroupMembers {
                group: sg.clone(),
                ips: ["10.0.1.10", "10.0.1.20", "10.0.1.49"].iter().map(|s| s.parse().unwrap()).collect()
            }],
            "{quiet} has no members"
        );
        RuleSet::build(&cfg).unwrap();
        // The endpoint holds the group too.
        lab.ec2.instances.clear();
        assert_eq!(lab.err("DeleteSecurityGroup", &[("GroupId", &sg)]).code, "DependencyViolation");
        lab.ec2.endpoints.remove("vpce-12345678");
        lab.ec2.network_interfaces.remove("eni-12345678");
        assert!(lab.ec2.rule_set_config(&vpc).group_members.is_empty(), "a deleted endpoint's ENI is no member");
    }

    /// The plan's view of one ENI at 10.0.1.49 in `subnet`, in `sg`.
    fn with_eni(lab: &Lab, vpc: &str, subnet: &str, sg: &str) -> RuleSet {
        let mut cfg = lab.ec2.rule_set_config(vpc);
        let s = &lab.ec2.subnets[subnet];
        cfg.enis.push(EniRules {
            index: 0,
            ip: "10.0.1.49".parse().unwrap(),
            subnet: s.cidr,
            security_groups: vec![sg.to_string()],
            network_acl: Some(s.network_acl.clone()),
        });
        RuleSet::build(&cfg).unwrap()
    }

    #[test]
    fn authorized_and_revoked_rules_change_the_verdict() {
        let mut lab = Lab::new();
        let vpc = lab.vpc("10.0.0.0/16");
        let subnet = lab.subnet(&vpc, "10.0.1.0/24", "us-east-1a");
        let sg = group(&mut lab, &vpc, "endpoint");
        // A client in another subnet of the VPC: its SYN crosses the NACL.
        let syn = PacketMeta { src: "10.0.2.10".parse().unwrap(), ..sample::SYN };
        let verdict = |lab: &Lab| with_eni(lab, &vpc, &subnet, &sg).evaluate(0, Direction::Ingress, &syn);
        assert_eq!(verdict(&lab).reason, Reason::SgNoMatch { dir: Direction::Ingress }, "a new group lets nothing in");
        lab.ok("AuthorizeSecurityGroupIngress", &https_from(&sg, "10.0.2.0/24"));
        let d = verdict(&lab);
        assert!(d.is_accept(), "{d}");
        lab.ok("RevokeSecurityGroupIngress", &https_from(&sg, "10.0.2.0/24"));
        assert!(!verdict(&lab).is_accept());
        lab.ok("AuthorizeSecurityGroupIngress", &https_from(&sg, "10.0.0.0/16"));
        assert!(verdict(&lab).is_accept());

        // A custom NACL denies all until an entry allows the traffic.
        let acl = lab.field("CreateNetworkAcl", &[("VpcId", &vpc)], "CreateNetworkAclResponse/networkAcl/networkAclId");
        let assoc = lab.ec2.subnets[&subnet].network_acl_association.clone();
        lab.ok("ReplaceNetworkAclAssociation", &[("AssociationId", &assoc), ("NetworkAclId", &acl)]);
        assert_eq!(verdict(&lab).reason, Reason::NaclDefaultDeny { acl: acl.as_str().into(), dir: Direction::Ingress });
        let entry = [
            ("NetworkAclId", acl.as_str()),
            ("RuleNumber", "100"),
            ("Egress", "false"),
            ("Protocol", "6"),
            ("RuleAction", "allow"),
            ("CidrBlock", "10.0.2.0/24"),
            ("PortRange.From", "443"),
            ("PortRange.To", "443"),
        ];
        lab.ok("CreateNetworkAclEntry", &entry);
        assert!(verdict(&lab).is_accept());
        let mut deny = entry;
        deny[4].1 = "deny";
        lab.ok("ReplaceNetworkAclEntry", &deny);
        assert_eq!(
            verdict(&lab).reason,
            Reason::NaclRule { acl: acl.as_str().into(), rule: RuleNumber::new(100).unwrap(), dir: Direction::Ingress }
        );
        lab.ok("DeleteNetworkAclEntry", &[("NetworkAclId", &acl), ("RuleNumber", "100"), ("Egress", "false")]);
        assert_eq!(verdict(&lab).reason, Reason::NaclDefaultDeny { acl: acl.as_str().into(), dir: Direction::Ingress });
    }

    #[test]
    fn a_prefix_list_admits_its_current_blocks() {
        let mut lab = Lab::new();
        let vpc = lab.vpc("10.0.0.0/16");
        let subnet = lab.subnet(&vpc, "10.0.1.0/24", "us-east-1a");
        let sg = group(&mut lab, &vpc, "endpoint");
        let create = [("PrefixListName", "clients"), ("MaxEntries", "4"), ("AddressFamily", "IPv4")];
        let pl =
            lab.field("CreateManagedPrefixList", &create, "CreateManagedPrefixListResponse/prefixList/prefixListId");
        let rule = [
            ("GroupId", sg.as_str()),
            ("IpPermissions.1.IpProtocol", "tcp"),
            ("IpPermissions.1.FromPort", "443"),
            ("IpPermissions.1.ToPort", "443"),
            ("IpPermissions.1.PrefixListIds.1.PrefixListId", pl.as_str()),
        ];
        lab.ok("AuthorizeSecurityGroupIngress", &rule);
        let cfg = lab.ec2.rule_set_config(&vpc);
        assert_eq!(cfg.prefix_lists, [PrefixList { id: pl.clone(), cidrs: vec![] }]);
        let web = cfg.security_groups.iter().find(|g| g.id == sg).unwrap();
        assert_eq!(web.ingress[0].peer, SgPeer::PrefixList(pl.clone()));
        let syn = PacketMeta { src: "10.0.2.10".parse().unwrap(), ..sample::SYN };
        let verdict = |lab: &Lab| with_eni(lab, &vpc, &subnet, &sg).evaluate(0, Direction::Ingress, &syn);
        assert!(!verdict(&lab).is_accept(), "an empty list admits nothing");
        lab.ok("ModifyManagedPrefixList", &[("PrefixListId", &pl), ("AddEntry.1.Cidr", "10.0.2.0/24")]);
        let d = verdict(&lab);
        assert!(d.is_accept(), "{d}");
        assert_eq!(lab.ec2.rule_set_config(&vpc).prefix_lists[0].cidrs, [cidr("10.0.2.0/24")]);
        lab.ok(
            "ModifyManagedPrefixList",
            &[("PrefixListId", &pl), ("RemoveEntry.1.Cidr", "10.0.2.0/24"), ("AddEntry.1.Cidr", "10.0.3.0/24")],
        );
        assert!(!verdict(&lab).is_accept(), "the removed block no longer gets in");
        // Another VPC's rule set does not carry a list its groups do not name.
        let other = lab.vpc("10.1.0.0/16");
        assert!(lab.ec2.rule_set_config(&other).prefix_lists.is_empty());
    }
}
