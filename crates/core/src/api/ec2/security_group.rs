//! Security groups and their rules.
//!
//! A group belongs to one VPC. A new one allows nothing in and everything
//! out (one egress rule, all protocols to 0.0.0.0/0), as in EC2. Each rule
//! is stored with a single peer and its own `sgr-` id, the unit
//! DescribeSecurityGroupRules and `SecurityGroupRuleId.N` name; the
//! `IpPermission`s of DescribeSecurityGroups regroup them by protocol and
//! ports, as EC2 shows them.
//!
//! Rules are checked against what the data plane can enforce: IPv4 blocks,
//! groups of the same VPC, and tcp, udp, icmp or all protocols. IPv6 ranges
//! and other protocols are refused rather than stored and ignored. A rule
//! may name a customer-managed prefix list (the prefix list module); it
//! counts as the list's `MaxEntries` rules toward the group's quota, as at
//! AWS, and while a rule names a list the list cannot be deleted.
//!
//! There is no default VPC: a call that names a group only by GroupName
//! (EC2-Classic and default-VPC style) is refused with `VPCIdNotSpecified`.

use super::describe::{asked, passes, Page};
use super::ids::{IdKind, ACCOUNT_ID};
use super::resources::{RulePeer, SecurityGroup, SecurityGroupRule};
use super::{Call, Ec2, Effect};
use crate::api::error::ApiError;
use crate::api::query::Params;
use crate::api::xml::Xml;
use crate::cidr::Cidr;

/// Inbound, and separately outbound, rules per group: AWS's default quota,
/// and the one the data plane enforces, so a model the API accepted always builds.
pub(super) fn rules_per_group() -> usize {
    crate::filter::Quotas::default().rules_per_group
}

/// What a rule with `peer` counts toward its group's quota: a prefix list's
/// `MaxEntries` (AWS's rule), 1 for any other peer.
pub(super) fn rule_weight(ec2: &Ec2, peer: &RulePeer) -> usize {
    match peer {
        RulePeer::PrefixList(id) => ec2.prefix_lists.get(id).map_or(1, |l| l.max_entries as usize),
        _ => 1,
    }
}

fn no_default_vpc() -> ApiError {
    ApiError::new(
        "VPCIdNotSpecified",
        "No default VPC for this user. GroupName is only supported for EC2-Classic and default VPC.",
    )
}

/// The group a call names by `GroupId` (a `GroupName` alone needs a default VPC).
/// A rule's unknown prefix list, as AuthorizeSecurityGroup* and DescribePrefixLists spell it.
pub(super) fn rule_list_not_found(id: &str) -> ApiError {
    ApiError::new("InvalidPrefixListId.NotFound", format!("The prefix list ID '{id}' does not exist"))
}

fn named_group<'a>(ec2: &'a Ec2, p: &Params) -> Result<&'a SecurityGroup, ApiError> {
    match (p.get("GroupId"), p.get("GroupName")) {
        (Some(id), _) => ec2.security_group(id),
        (None, Some(_)) => Err(no_default_vpc()),
        (None, None) => Err(ApiError::new("MissingParameter", "The request must contain the parameter GroupId")),
    }
}

pub(super) fn create_security_group(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    let p = call.params;
    let name = p.required("GroupName")?;
    let description = p.required("GroupDescription")?;
    let vpc = ec2.vpc(p.get("VpcId").ok_or_else(no_default_vpc)?)?.id.clone();
    if name.is_empty() || name.len() > 255 || name.starts_with("sg-") {
        return Err(ApiError::invalid_value("GroupName", name));
    }
    if description.len() > 255 {
        return Err(ApiError::invalid_value("GroupDescription", description));
    }
    // EC2: names are case-insensitive and unique within the VPC.
    if name.eq_ignore_ascii_case("default") {
        return Err(ApiError::new("InvalidGroup.Reserved", "The security group 'default' is reserved"));
    }
    if ec2.security_groups.values().any(|g| g.vpc == vpc && g.name.eq_ignore_ascii_case(name)) {
        return Err(ApiError::new(
            "InvalidGroup.Duplicate",
            format!("The security group '{name}' already exists for VPC '{vpc}'"),
        ));
    }
    let tags = p.tag_specifications("security-group")?;
    let id = call.new_id(IdKind::SecurityGroup);
    let egress = SecurityGroupRule {
        id: call.new_id(IdKind::SecurityGroupRule),
        protocol: "-1".into(),
        from_port: None,
        to_port: None,
        peer: RulePeer::Cidr(Cidr::ANY),
        description: None,
    };
    let group = SecurityGroup {
        id: id.clone(),
        vpc,
        name: name.to_string(),
        description: description.to_string(),
        ingress: Vec::new(),
        egress: vec![egress],
    };
    ec2.security_groups.insert(id.clone(), group);
    ec2.set_tags(&id, &tags);
    x.text("groupId", &id).tag_set(ec2.tags_of(&id)).text("securityGroupArn", &group_arn(ec2, &id));
    Ok(Effect::Changed)
}

fn group_arn(ec2: &Ec2, id: &str) -> String {
    format!("arn:aws:ec2:{}:{ACCOUNT_ID}:security-group/{id}", ec2.region)
}

pub(super) fn delete_security_group(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    let g = named_group(ec2, call.params)?.clone();
    if ec2.vpcs.get(&g.vpc).is_some_and(|v| v.default_security_group == g.id) {
        return Err(ApiError::new(
            "CannotDelete",
            format!("the specified group: \"{}\" name: \"default\" cannot be deleted by a user", g.id),
        ));
    }
    let member = ec2.instances.values().any(|i| i.security_groups.contains(&g.id))
        || ec2.endpoints.values().any(|e| e.security_groups.contains(&g.id));
    // A rule of another group naming this one would be left pointing at nothing.
    let referenced = ec2
        .security_groups
        .values()
        .filter(|o| o.id != g.id)
        .any(|o| o.ingress.iter().chain(&o.egress).any(|r| r.peer == RulePeer::Group(g.id.clone())));
    if member || referenced {
        return Err(ApiError::new("DependencyViolation", format!("resource {} has a dependent object", g.id)));
    }
    for r in g.ingress.iter().chain(&g.egress) {
        ec2.drop_tags(&r.id);
    }
    ec2.drop_tags(&g.id);
    ec2.security_groups.remove(&g.id);
    x.bool("return", true).text("groupId", &g.id);
    Ok(Effect::Changed)
}

/// One rule a call names: a stored rule less its id.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Wanted {
    protocol: &'static str,
    from_port: Option<i32>,
    to_port: Option<i32>,
    peer: RulePeer,
    description: Option<String>,
}

impl Wanted {
    /// Whether `r` is this rule (descriptions aside, as EC2 compares them).
    fn is(&self, r: &SecurityGroupRule) -> bool {
        self.protocol == r.protocol && self.from_port == r.from_port && self.to_port == r.to_port && self.peer == r.peer
    }

    fn same(&self, o: &Wanted) -> bool {
        (self.protocol, self.from_port, self.to_port, &self.peer) == (o.protocol, o.from_port, o.to_port, &o.peer)
    }

    /// The rule as EC2's messages spell it.
    fn describe(&self) -> String {
        let peer = match &self.peer {
            RulePeer::Cidr(c) => c.to_string(),
            RulePeer::Group(g) | RulePeer::PrefixList(g) => g.clone(),
        };
        let port = |p: Option<i32>| p.map_or("-1".to_string(), |p| p.to_string());
        format!(
            "peer: {peer}, {}, from port: {}, to port: {}, ALLOW",
            self.protocol.to_ascii_uppercase(),
            port(self.from_port),
            port(self.to_port)
        )
    }
}

/// An `IpProtocol` as stored: `tcp`, `udp`, `icmp` or `-1`, from names or numbers.
fn ip_protocol(value: &str) -> Result<&'static str, ApiError> {
    match value.to_ascii_lowercase().as_str() {
        "tcp" | "6" => Ok("tcp"),
        "udp" | "17" => Ok("udp"),
        "icmp" | "1" => Ok("icmp"),
        "-1" | "all" => Ok("-1"),
        _ => Err(ApiError::new(
            "InvalidParameterValue",
            format!("Invalid value '{value}' for IP protocol. privlink filters tcp, udp, icmp and -1 (all)."),
        )),
    }
}

/// FromPort and ToPort for `protocol`: both needed for TCP and UDP; ICMP's
/// type and code default to -1 (all); ignored for all protocols, as EC2 does.
fn ports(protocol: &str, p: &Params) -> Result<(Option<i32>, Option<i32>), ApiError> {
    let (from, to) = (p.int("FromPort")?, p.int("ToPort")?);
    match protocol {
        "tcp" | "udp" => {
            let (Some(f), Some(t)) = (from, to) else {
                return Err(ApiError::new(
                    "InvalidParameterValue",
                    "Invalid value 'Must specify both from and to ports with TCP/UDP.' for portRange.",
                ));
            };
            if !(0..=65535).contains(&f) || !(0..=65535).contains(&t) || f > t {
                return Err(ApiError::new("InvalidParameterValue", format!("Invalid TCP/UDP port range {f}-{t}")));
            }
            Ok((Some(f as i32), Some(t as i32)))
        }
        "icmp" => {
            let (ty, code) = (from.unwrap_or(-1), to.unwrap_or(-1));
            if !(-1..=255).contains(&ty) || !(-1..=255).contains(&code) {
                return Err(ApiError::new("InvalidParameterValue", format!("Invalid ICMP type {ty} or code {code}")));
            }
            Ok((Some(ty as i32), Some(code as i32)))
        }
        _ => Ok((None, None)),
    }
}

/// The rules of one `IpPermission`: one per peer.
fn permission(ec2: &Ec2, group: &SecurityGroup, p: &Params) -> Result<Vec<Wanted>, ApiError> {
    let protocol = ip_protocol(p.required("IpProtocol")?)?;
    let (from_port, to_port) = ports(protocol, p)?;
    if p.has("Ipv6Ranges") {
        return Err(ApiError::new("InvalidParameterValue", "IPv6 ranges are not supported: privlink is IPv4 only."));
    }
    let description = |s: &Params| -> Result<Option<String>, ApiError> {
        match s.get("Description") {
            Some(d) if d.len() > 255 => Err(ApiError::invalid_value("Description", d)),
            d => Ok(d.map(str::to_string)),
        }
    };
    let mut peers = Vec::new();
    for r in p.structs("IpRanges") {
        let c = r.required("CidrIp")?;
        let cidr: Cidr =
            c.parse().map_err(|_| ApiError::new("InvalidParameterValue", format!("CIDR block {c} is malformed")))?;
        peers.push((RulePeer::Cidr(cidr), description(&r)?));
    }
    // botocore sends UserIdGroupPairs as `Groups`; older clients spell the member out.
    for g in p.structs("Groups").into_iter().chain(p.structs("UserIdGroupPairs")) {
        let id = match (g.get("GroupId"), g.get("GroupName")) {
            (Some(id), _) => {
                let other = ec2.security_group(id)?;
                if other.vpc != group.vpc {
                    return Err(ApiError::new(
                        "InvalidGroup.NotFound",
                        format!("The security group '{id}' does not exist in VPC '{}'", group.vpc),
                    ));
                }
                other.id.clone()
            }
            (None, Some(name)) => ec2
                .security_groups
                .values()
                .find(|o| o.vpc == group.vpc && o.name.eq_ignore_ascii_case(name))
                .map(|o| o.id.clone())
                .ok_or_else(|| {
                    ApiError::new(
                        "InvalidGroup.NotFound",
                        format!("The security group '{name}' does not exist in VPC '{}'", group.vpc),
                    )
                })?,
            (None, None) => {
                return Err(ApiError::new("MissingParameter", "The request must contain the parameter GroupId"))
            }
        };
        peers.push((RulePeer::Group(id), description(&g)?));
    }
    for pl in p.structs("PrefixListIds") {
        let id = pl.required("PrefixListId")?;
        IdKind::PrefixList.check(id)?;
        if !ec2.prefix_lists.contains_key(id) {
            return Err(rule_list_not_found(id));
        }
        peers.push((RulePeer::PrefixList(id.to_string()), description(&pl)?));
    }
    if peers.is_empty() {
        return Err(ApiError::new(
            "MissingParameter",
            "The request must contain the parameter ipRanges, groups or prefixListIds",
        ));
    }
    Ok(peers
        .into_iter()
        .map(|(peer, description)| Wanted { protocol, from_port, to_port, peer, description })
        .collect())
}

/// The rules a call names: `IpPermissions.N`, or the legacy flat
/// `IpProtocol`/`FromPort`/`ToPort` with `CidrIp` or `SourceSecurityGroupName`.
fn wanted(ec2: &Ec2, group: &SecurityGroup, p: &Params) -> Result<Vec<Wanted>, ApiError> {
    let flat = ["IpProtocol", "FromPort", "ToPort", "CidrIp", "SourceSecurityGroupName"];
    let perms = p.structs("IpPermissions");
    if !flat.iter().any(|n| p.get(n).is_some()) {
        if perms.is_empty() {
            return Err(ApiError::new("MissingParameter", "The request must contain the parameter IpPermissions"));
        }
        let mut out = Vec::new();
        for perm in &perms {
            out.extend(permission(ec2, group, perm)?);
        }
        return Ok(out);
    }
    if !perms.is_empty() {
        return Err(ApiError::combination("The parameter 'ipPermissions' may not be used in combination with 'cidrIp', 'ipProtocol', 'fromPort', 'toPort' or 'sourceSecurityGroupName'"));
    }
    let mut pairs = vec![("IpProtocol", p.get("IpProtocol").unwrap_or("-1"))];
    for port in ["FromPort", "ToPort"] {
        if let Some(v) = p.get(port) {
            pairs.push((port, v));
        }
    }
    match (p.get("CidrIp"), p.get("SourceSecurityGroupName")) {
        (Some(_), Some(_)) => {
            return Err(ApiError::combination(
                "The parameter 'cidrIp' may not be used in combination with 'sourceSecurityGroupName'",
            ))
        }
        (Some(c), None) => pairs.push(("IpRanges.1.CidrIp", c)),
        (None, Some(n)) => pairs.push(("Groups.1.GroupName", n)),
        (None, None) => {
            return Err(ApiError::new(
                "MissingParameter",
                "The request must contain the parameter CidrIp or SourceSecurityGroupName",
            ))
        }
    }
    permission(ec2, group, &Params::from_pairs(pairs))
}

pub(super) fn authorize_ingress(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    authorize(ec2, call, x, false)
}

pub(super) fn authorize_egress(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    authorize(ec2, call, x, true)
}

fn authorize(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml, egress: bool) -> Result<Effect, ApiError> {
    let p = call.params;
    let group = named_group(ec2, p)?.clone();
    let wanted = wanted(ec2, &group, p)?;
    let tags = p.tag_specifications("security-group-rule")?;
    let have = if egress { &group.egress } else { &group.ingress };
    for (i, w) in wanted.iter().enumerate() {
        if have.iter().any(|r| w.is(r)) || wanted[..i].iter().any(|o| o.same(w)) {
            return Err(ApiError::new(
                "InvalidPermission.Duplicate",
                format!("the specified rule \"{}\" already exists", w.describe()),
            ));
        }
    }
    let weight = |peers: &mut dyn Iterator<Item = &RulePeer>| peers.map(|p| rule_weight(ec2, p)).sum::<usize>();
    if weight(&mut have.iter().map(|r| &r.peer)) + weight(&mut wanted.iter().map(|w| &w.peer)) > rules_per_group() {
        return Err(ApiError::new(
            "RulesPerSecurityGroupLimitExceeded",
            "The maximum number of rules per security group has been reached.",
        ));
    }
    let rules: Vec<SecurityGroupRule> = wanted
        .into_iter()
        .map(|w| SecurityGroupRule {
            id: call.new_id(IdKind::SecurityGroupRule),
            protocol: w.protocol.to_string(),
            from_port: w.from_port,
            to_port: w.to_port,
            peer: w.peer,
            description: w.description,
        })
        .collect();
    let g = ec2.security_groups.get_mut(&group.id).expect("checked");
    if egress { &mut g.egress } else { &mut g.ingress }.extend(rules.iter().cloned());
    for r in &rules {
        ec2.set_tags(&r.id, &tags);
    }
    x.bool("return", true).set("securityGroupRuleSet", &rules, |x, r| write_rule(ec2, x, &group.id, egress, r));
    Ok(Effect::Changed)
}

pub(super) fn revoke_ingress(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    revoke(ec2, call, x, false)
}

pub(super) fn revoke_egress(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    revoke(ec2, call, x, true)
}

fn revoke(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml, egress: bool) -> Result<Effect, ApiError> {
    let p = call.params;
    let group = named_group(ec2, p)?.clone();
    let have = if egress { &group.egress } else { &group.ingress };
    let ids = p.list("SecurityGroupRuleId");
    let mut gone: Vec<String> = Vec::new();
    if ids.is_empty() {
        for w in wanted(ec2, &group, p)? {
            let r = have.iter().find(|r| w.is(r)).ok_or_else(|| {
                ApiError::new(
                    "InvalidPermission.NotFound",
                    format!("The specified rule \"{}\" does not exist in this security group.", w.describe()),
                )
            })?;
            gone.push(r.id.clone());
        }
    } else {
        if p.has("IpPermissions") || p.get("IpProtocol").is_some() || p.get("CidrIp").is_some() {
            return Err(ApiError::combination(
                "The parameter 'SecurityGroupRuleId' may not be used in combination with 'IpPermissions'",
            ));
        }
        for id in ids {
            IdKind::SecurityGroupRule.check(&id)?;
            if !have.iter().any(|r| r.id == id) {
                return Err(IdKind::SecurityGroupRule.not_found(&id));
            }
            gone.push(id);
        }
    }
    let revoked: Vec<SecurityGroupRule> = have.iter().filter(|r| gone.contains(&r.id)).cloned().collect();
    let g = ec2.security_groups.get_mut(&group.id).expect("checked");
    if egress { &mut g.egress } else { &mut g.ingress }.retain(|r| !gone.contains(&r.id));
    for id in &gone {
        ec2.drop_tags(id);
    }
    x.bool("return", true).set("revokedSecurityGroupRuleSet", &revoked, |x, r| {
        x.text("securityGroupRuleId", &r.id)
            .text("groupId", &group.id)
            .bool("isEgress", egress)
            .text("ipProtocol", &r.protocol)
            .num("fromPort", r.from_port.unwrap_or(-1))
            .num("toPort", r.to_port.unwrap_or(-1));
        match &r.peer {
            RulePeer::Cidr(c) => x.text("cidrIpv4", &c.to_string()),
            RulePeer::Group(g) => x.text("referencedGroupId", g),
            RulePeer::PrefixList(l) => x.text("prefixListId", l),
        };
        x.opt("description", r.description.as_deref());
    });
    Ok(Effect::Changed)
}

/// One `SecurityGroupRule` (Authorize's answer, DescribeSecurityGroupRules).
fn write_rule(ec2: &Ec2, x: &mut Xml, group: &str, egress: bool, r: &SecurityGroupRule) {
    x.text("securityGroupRuleId", &r.id)
        .text("groupId", group)
        .text("groupOwnerId", ACCOUNT_ID)
        .bool("isEgress", egress)
        .text("ipProtocol", &r.protocol)
        .num("fromPort", r.from_port.unwrap_or(-1))
        .num("toPort", r.to_port.unwrap_or(-1));
    match &r.peer {
        RulePeer::Cidr(c) => x.text("cidrIpv4", &c.to_string()),
        RulePeer::Group(g) => x.elem("referencedGroupInfo", |x| {
            x.text("groupId", g).text("userId", ACCOUNT_ID);
        }),
        RulePeer::PrefixList(l) => x.text("prefixListId", l),
    };
    x.opt("description", r.description.as_deref())
        .tag_set(ec2.tags_of(&r.id))
        .text("securityGroupRuleArn", &format!("arn:aws:ec2:{}:{ACCOUNT_ID}:security-group-rule/{}", ec2.region, r.id));
}

/// `ipPermissions` / `ipPermissionsEgress`: the rules grouped by protocol and
/// ports, first-seen order, one `IpPermission` per group with every peer.
fn write_permissions(x: &mut Xml, name: &str, rules: &[SecurityGroupRule]) {
    let key = |r: &SecurityGroupRule| (r.protocol.clone(), r.from_port, r.to_port);
    let mut keys = Vec::new();
    for r in rules {
        if !keys.contains(&key(r)) {
            keys.push(key(r));
        }
    }
    x.set(name, keys, |x, k| {
        let same: Vec<&SecurityGroupRule> = rules.iter().filter(|r| key(r) == k).collect();
        let (protocol, from, to) = k;
        x.text("ipProtocol", &protocol);
        // EC2 leaves the ports out of an all-protocols permission.
        if protocol != "-1" {
            x.num("fromPort", from.unwrap_or(-1)).num("toPort", to.unwrap_or(-1));
        }
        let peers = |want: fn(&RulePeer) -> Option<String>| {
            same.iter().filter_map(move |r| want(&r.peer).map(|v| (v, r.description.as_deref()))).collect::<Vec<_>>()
        };
        let group = |p: &RulePeer| if let RulePeer::Group(g) = p { Some(g.clone()) } else { None };
        let cidr = |p: &RulePeer| if let RulePeer::Cidr(c) = p { Some(c.to_string()) } else { None };
        let list = |p: &RulePeer| if let RulePeer::PrefixList(l) = p { Some(l.clone()) } else { None };
        x.set("groups", peers(group), |x, (g, d)| {
            x.opt("description", d).text("userId", ACCOUNT_ID).text("groupId", &g);
        })
        .set("ipRanges", peers(cidr), |x, (c, d)| {
            x.opt("description", d).text("cidrIp", &c);
        })
        .elem("ipv6Ranges", |_| {})
        .set("prefixListIds", peers(list), |x, (l, d)| {
            x.opt("description", d).text("prefixListId", &l);
        });
    });
}

fn write_group(ec2: &Ec2, x: &mut Xml, g: &SecurityGroup) {
    x.text("ownerId", ACCOUNT_ID)
        .text("groupId", &g.id)
        .text("groupName", &g.name)
        .text("groupDescription", &g.description)
        .text("vpcId", &g.vpc);
    write_permissions(x, "ipPermissions", &g.ingress);
    write_permissions(x, "ipPermissionsEgress", &g.egress);
    x.text("securityGroupArn", &group_arn(ec2, &g.id)).tag_set(ec2.tags_of(&g.id));
}

/// A filter's values over one direction's rules (`cidr`, `protocol`, …), `None` for a name it does not know.
fn rule_values(rules: &[SecurityGroupRule], what: &str) -> Option<Vec<String>> {
    let port = |p: Option<i32>| p.unwrap_or(-1).to_string();
    let peer = |f: fn(&RulePeer) -> Option<String>| rules.iter().filter_map(|r| f(&r.peer)).collect();
    Some(match what {
        "cidr" => peer(|p| if let RulePeer::Cidr(c) = p { Some(c.to_string()) } else { None }),
        "group-id" => peer(|p| if let RulePeer::Group(g) = p { Some(g.clone()) } else { None }),
        "prefix-list-id" => peer(|p| if let RulePeer::PrefixList(l) = p { Some(l.clone()) } else { None }),
        "protocol" => rules.iter().map(|r| r.protocol.clone()).collect(),
        "from-port" => rules.iter().map(|r| port(r.from_port)).collect(),
        "to-port" => rules.iter().map(|r| port(r.to_port)).collect(),
        _ => return None,
    })
}

pub(super) fn describe_security_groups(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    let p = call.params;
    let (filters, page) = (p.filters()?, Page::read(p, 5, 1000)?);
    let chosen = asked(
        &p.list("GroupId"),
        &ec2.security_groups,
        |i| IdKind::SecurityGroup.check(i),
        |i| IdKind::SecurityGroup.not_found(i),
    )?;
    // Without a default VPC, a GroupName matches that name in any VPC.
    let names = p.list("GroupName");
    if let Some(n) = names.iter().find(|n| !ec2.security_groups.values().any(|g| &g.name == *n)) {
        return Err(ApiError::new("InvalidGroup.NotFound", format!("The security group '{n}' does not exist")));
    }
    let mut kept = Vec::new();
    for (id, g) in chosen {
        if !names.is_empty() && !names.contains(&g.name) {
            continue;
        }
        let keep = passes(&filters, ec2.tags.get(id), |f| match f {
            "group-id" => Some(vec![g.id.clone()]),
            "group-name" => Some(vec![g.name.clone()]),
            "vpc-id" => Some(vec![g.vpc.clone()]),
            "description" => Some(vec![g.description.clone()]),
            "owner-id" => Some(vec![ACCOUNT_ID.into()]),
            f => match (f.strip_prefix("ip-permission."), f.strip_prefix("egress.ip-permission.")) {
                (Some(what), _) => rule_values(&g.ingress, what),
                (_, Some(what)) => rule_values(&g.egress, what),
                _ => None,
            },
        })?;
        if keep {
            kept.push((id, g));
        }
    }
    let (items, next) = page.cut(kept);
    x.set("securityGroupInfo", items, |x, g| write_group(ec2, x, g)).opt("nextToken", next.as_deref());
    Ok(Effect::ReadOnly)
}

pub(super) fn describe_security_group_rules(
    ec2: &mut Ec2,
    call: &mut Call<'_>,
    x: &mut Xml,
) -> Result<Effect, ApiError> {
    let p = call.params;
    let (filters, page) = (p.filters()?, Page::read(p, 5, 1000)?);
    let all: std::collections::BTreeMap<String, (&SecurityGroup, bool, &SecurityGroupRule)> = ec2
        .security_groups
        .values()
        .flat_map(|g| {
            let ingress = g.ingress.iter().map(move |r| (r.id.clone(), (g, false, r)));
            ingress.chain(g.egress.iter().map(move |r| (r.id.clone(), (g, true, r))))
        })
        .collect();
    let chosen = asked(
        &p.list("SecurityGroupRuleId"),
        &all,
        |i| IdKind::SecurityGroupRule.check(i),
        |i| IdKind::SecurityGroupRule.not_found(i),
    )?;
    let mut kept = Vec::new();
    for (id, &(g, egress, r)) in chosen {
        let keep = passes(&filters, ec2.tags.get(id), |f| match f {
            "group-id" => Some(vec![g.id.clone()]),
            "security-group-rule-id" => Some(vec![r.id.clone()]),
            _ => None,
        })?;
        if keep {
            kept.push((id, (g, egress, r)));
        }
    }
    let (items, next) = page.cut(kept);
    x.set("securityGroupRuleSet", items, |x, (g, egress, r)| write_rule(ec2, x, &g.id, egress, r))
        .opt("nextToken", next.as_deref());
    Ok(Effect::ReadOnly)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ec2::testkit::Lab;
    use crate::api::ec2::Instance;
    use crate::api::xml::tests::{all, at};

    fn group(lab: &mut Lab, vpc: &str, name: &str) -> String {
        let params = [("VpcId", vpc), ("GroupName", name), ("GroupDescription", "test group")];
        lab.field("CreateSecurityGroup", &params, "CreateSecurityGroupResponse/groupId")
    }

    /// AuthorizeSecurityGroupIngress of one tcp permission from `cidr`.
    fn tcp_in<'a>(sg: &'a str, port: &'a str, cidr: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("GroupId", sg),
            ("IpPermissions.1.IpProtocol", "tcp"),
            ("IpPermissions.1.FromPort", port),
            ("IpPermissions.1.ToPort", port),
            ("IpPermissions.1.IpRanges.1.CidrIp", cidr),
        ]
    }

    fn with<'a>(base: &[(&'a str, &'a str)], extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut v = base.to_vec();
        v.extend_from_slice(extra);
        v
    }

    #[test]
    fn a_new_group_allows_nothing_in_and_everything_out() {
        let mut lab = Lab::new();
        let vpc = lab.vpc("10.0.0.0/16");
        let params = [
            ("VpcId", vpc.as_str()),
            ("GroupName", "web"),
            ("GroupDescription", "web servers"),
            ("TagSpecification.1.ResourceType", "security-group"),
            ("TagSpecification.1.Tag.1.Key", "Name"),
            ("TagSpecification.1.Tag.1.Value", "w"),
        ];
        let doc = lab.ok("CreateSecurityGroup", &params);
        let id = at(&doc, "CreateSecurityGroupResponse/groupId").unwrap();
        assert!(IdKind::SecurityGroup.is_well_formed(&id), "{id}");
        assert_eq!(
            at(&doc, "CreateSecurityGroupResponse/securityGroupArn").unwrap(),
            format!("arn:aws:ec2:us-east-1:{ACCOUNT_ID}:security-group/{id}")
        );
        assert_eq!(at(&doc, "CreateSecurityGroupResponse/tagSet/item/value").unwrap(), "w");
        let g = &lab.ec2.security_groups[&id];
        assert_eq!((g.name.as_str(), g.description.as_str(), g.vpc.as_str()), ("web", "web servers", vpc.as_str()));
        assert!(g.ingress.is_empty());
        assert_eq!(g.egress.len(), 1);
        let e = &g.egress[0];
        assert_eq!((e.protocol.as_str(), e.from_port, &e.peer), ("-1", None, &RulePeer::Cidr(Cidr::ANY)));
        assert!(IdKind::SecurityGroupRule.is_well_formed(&e.id));
        // The same name in another VPC is another group.
        let other = lab.vpc("10.1.0.0/16");
        group(&mut lab, &other, "web");
    }

    #[test]
    fn create_security_group_refusals() {
        let mut lab = Lab::new();
        let vpc = lab.vpc("10.0.0.0/16");
        group(&mut lab, &vpc, "web");
        let v = vpc.as_str();
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("GroupName", "a"), ("GroupDescription", "d")], "VPCIdNotSpecified"),
            (&[("VpcId", v), ("GroupName", "default"), ("GroupDescription", "d")], "InvalidGroup.Reserved"),
            (&[("VpcId", v), ("GroupName", "Default"), ("GroupDescription", "d")], "InvalidGroup.Reserved"),
            (&[("VpcId", v), ("GroupName", "web"), ("GroupDescription", "d")], "InvalidGroup.Duplicate"),
            (&[("VpcId", v), ("GroupName", "WEB"), ("GroupDescription", "d")], "InvalidGroup.Duplicate"),
            (&[("VpcId", v), ("GroupName", "sg-1"), ("GroupDescription", "d")], "InvalidParameterValue"),
            (&[("VpcId", v), ("GroupName", "a")], "MissingParameter"),
            (&[("VpcId", v), ("GroupDescription", "d")], "MissingParameter"),
            (&[("VpcId", "vpc-12345678"), ("GroupName", "a"), ("GroupDescription", "d")], "InvalidVpcID.NotFound"),
            (
                &[
                    ("VpcId", v),
                    ("GroupName", "a"),
                    ("GroupDescription", "d"),
                    ("TagSpecification.1.ResourceType", "vpc"),
                ],
                "InvalidParameterValue",
            ),
        ];
        for (params, code) in cases {
            assert_eq!(lab.err("CreateSecurityGroup", params).code, *code, "{params:?}");
        }
    }

    #[test]
    fn authorize_ingress_stores_one_rule_per_peer_and_answers_them() {
        let mut lab = Lab::new();
        let vpc = lab.vpc("10.0.0.0/16");
        let sg = group(&mut lab, &vpc, "web");
        let peer = group(&mut lab, &vpc, "clients");
        let params = [
            ("GroupId", sg.as_str()),
            ("IpPermissions.1.IpProtocol", "6"),
            ("IpPermissions.1.FromPort", "443"),
            ("IpPermissions.1.ToPort", "443"),
            ("IpPermissions.1.IpRanges.1.CidrIp", "10.0.0.0/16"),
            ("IpPermissions.1.IpRanges.1.Description", "vpc"),
            ("IpPermissions.1.IpRanges.2.CidrIp", "192.0.2.0/24"),
            ("IpPermissions.1.Groups.1.GroupId", peer.as_str()),
            ("IpPermissions.2.IpProtocol", "icmp"),
            ("IpPermissions.2.FromPort", "8"),
            ("IpPermissions.2.ToPort", "-1"),
            ("IpPermissions.2.IpRanges.1.CidrIp", "0.0.0.0/0"),
            ("TagSpecification.1.ResourceType", "security-group-rule"),
            ("TagSpecification.1.Tag.1.Key", "k"),
        ];
        let doc = lab.ok("AuthorizeSecurityGroupIngress", &params);
        let base = "AuthorizeSecurityGroupIngressResponse/securityGroupRuleSet/item";
        assert_eq!(at(&doc, "AuthorizeSecurityGroupIngressResponse/return").unwrap(), "true");
        assert_eq!(all(&doc, &format!("{base}/ipProtocol")), ["tcp", "tcp", "tcp", "icmp"], "6 is shown as tcp");
        assert_eq!(all(&doc, &format!("{base}/cidrIpv4")), ["10.0.0.0/16", "192.0.2.0/24", "0.0.0.0/0"]);
        assert_eq!(all(&doc, &format!("{base}/referencedGroupInfo/groupId")), [peer.as_str()]);
        assert_eq!(all(&doc, &format!("{base}/fromPort")), ["443", "443", "443", "8"]);
        assert_eq!(all(&doc, &format!("{base}/toPort")), ["443", "443", "443", "-1"]);
        assert_eq!(all(&doc, &format!("{base}/isEgress")), ["false"; 4]);
        assert_eq!(all(&doc, &format!("{base}/description")), ["vpc"]);
        assert_eq!(all(&doc, &format!("{base}/tagSet/item/key")), ["k"; 4]);
        let g = &lab.ec2.security_groups[&sg];
        assert_eq!(g.ingress.len(), 4);
        let ids = all(&doc, &format!("{base}/securityGroupRuleId"));
        assert_eq!(ids, g.ingress.iter().map(|r| r.id.clone()).collect::<Vec<_>>());
        assert_eq!(g.ingress[0].from_port, Some(443));
        assert_eq!(g.ingress[2].peer, RulePeer::Group(peer));
        assert!(lab.ec2.tags.contains_key(&ids[0]), "the rules carry the specification's tags");
        // The legacy flat form makes one rule too.
        let flat = [
            ("GroupId", sg.as_str()),
            ("IpProtocol", "udp"),
            ("FromPort", "53"),
            ("ToPort", "53"),
            ("CidrIp", "10.0.0.0/16"),
        ];
        lab.ok("AuthorizeSecurityGroupIngress", &flat);
        let last = lab.ec2.security_groups[&sg].ingress.last().unwrap().clone();
        assert_eq!((last.protocol.as_str(), last.from_port, last.to_port), ("udp", Some(53), Some(53)));
    }

    #[test]
    fn authorize_refusals_change_nothing() {
        let mut lab = Lab::new();
        let vpc = lab.vpc("10.0.0.0/16");
        let sg = group(&mut lab, &vpc, "web");
        let elsewhere = lab.vpc("10.1.0.0/16");
        let foreign = group(&mut lab, &elsewhere, "far");
        lab.ok("AuthorizeSecurityGroupIngress", &tcp_in(&sg, "443", "10.0.0.0/16"));
        let base = tcp_in(&sg, "443", "10.0.0.0/16");
        let perm = |k: &'static str, v: &'static str| (k, v);
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (tcp_in(&sg, "443", "10.0.0.0/16"), "InvalidPermission.Duplicate"),
            (
                with(&tcp_in(&sg, "22", "10.0.0.0/16"), &[perm("IpPermissions.1.IpRanges.2.CidrIp", "10.0.0.0/16")]),
                "InvalidPermission.Duplicate",
            ),
            (tcp_in(&sg, "22", "10.0.0.1/16"), "InvalidParameterValue"),
            (tcp_in(&sg, "22", "nope"), "InvalidParameterValue"),
            (tcp_in(&sg, "70000", "10.0.0.0/16"), "InvalidParameterValue"),
            (
                vec![
                    ("GroupId", sg.as_str()),
                    ("IpPermissions.1.IpProtocol", "tcp"),
                    ("IpPermissions.1.IpRanges.1.CidrIp", "10.0.0.0/16"),
                ],
                "InvalidParameterValue",
            ),
            (
                with(
                    &base[..1],
                    &[
                        perm("IpPermissions.1.IpProtocol", "tcp"),
                        perm("IpPermissions.1.FromPort", "90"),
                        perm("IpPermissions.1.ToPort", "80"),
                        perm("IpPermissions.1.IpRanges.1.CidrIp", "10.0.0.0/16"),
                    ],
                ),
                "InvalidParameterValue",
            ),
            (
                with(
                    &base[..1],
                    &[
                        perm("IpPermissions.1.IpProtocol", "50"),
                        perm("IpPermissions.1.IpRanges.1.CidrIp", "10.0.0.0/16"),
                    ],
                ),
                "InvalidParameterValue",
            ),
            (
                with(
                    &base[..1],
                    &[
                        perm("IpPermissions.1.IpProtocol", "-1"),
                        perm("IpPermissions.1.Groups.1.GroupId", "sg-12345678"),
                    ],
                ),
                "InvalidGroup.NotFound",
            ),
            (
                with(
                    &base[..1],
                    &[perm("IpPermissions.1.IpProtocol", "-1"), perm("IpPermissions.1.Groups.1.GroupId", "sg-nothex")],
                ),
                "InvalidGroupId.Malformed",
            ),
            (
                vec![
                    ("GroupId", sg.as_str()),
                    ("IpPermissions.1.IpProtocol", "-1"),
                    ("IpPermissions.1.Groups.1.GroupId", foreign.as_str()),
                ],
                "InvalidGroup.NotFound",
            ),
            (
                with(
                    &base[..1],
                    &[perm("IpPermissions.1.IpProtocol", "-1"), perm("IpPermissions.1.Ipv6Ranges.1.CidrIpv6", "::/0")],
                ),
                "InvalidParameterValue",
            ),
            (
                with(
                    &base[..1],
                    &[
                        perm("IpPermissions.1.IpProtocol", "-1"),
                        perm("IpPermissions.1.PrefixListIds.1.PrefixListId", "pl-12345678"),
                    ],
                ),
                "InvalidPrefixListId.NotFound",
            ),
            (with(&base[..1], &[perm("IpPermissions.1.IpProtocol", "-1")]), "MissingParameter"),
            (base[..1].to_vec(), "MissingParameter"),
            (with(&base, &[perm("CidrIp", "10.0.0.0/8")]), "InvalidParameterCombination"),
            (
                with(&base[..1], &[perm("CidrIp", "10.0.0.0/8"), perm("SourceSecurityGroupName", "web")]),
                "InvalidParameterCombination",
            ),
            (with(&base[1..], &[perm("GroupName", "web")]), "VPCIdNotSpecified"),
            (base[1..].to_vec(), "MissingParameter"),
            (with(&tcp_in("sg-12345678", "22", "10.0.0.0/16"), &[]), "InvalidGroup.NotFound"),
        ];
        for (params, code) in &cases {
            assert_eq!(lab.err("AuthorizeSecurityGroupIngress", params).code, *code, "{params:?}");
        }
        assert_eq!(lab.ec2.security_groups[&sg].ingress.len(), 1);
    }

    #[test]
    fn a_group_holds_at_most_the_quota_of_rules_per_direction() {
        let mut lab = Lab::new();
        let vpc = lab.vpc("10.0.0.0/16");
        let sg = group(&mut lab, &vpc, "web");
        let ports: Vec<String> = (1..=rules_per_group() + 1).map(|p| p.to_string()).collect();
        for p in &ports[..rules_per_group()] {
            lab.ok("AuthorizeSecurityGroupIngress", &tcp_in(&sg, p, "10.0.0.0/16"));
        }
        let over = tcp_in(&sg, &ports[rules_per_group()], "10.0.0.0/16");
        assert_eq!(lab.err("AuthorizeSecurityGroupIngress", &over).code, "RulesPerSecurityGroupLimitExceeded");
        // Egress has its own count (one rule so far).
        let out = [
            ("GroupId", sg.as_str()),
            ("IpPermissions.1.IpProtocol", "tcp"),
            ("IpPermissions.1.FromPort", "1"),
            ("IpPermissions.1.ToPort", "1"),
            ("IpPermissions.1.IpRanges.1.CidrIp", "10.0.0.0/16"),
        ];
        lab.ok("AuthorizeSecurityGroupEgress", &out);
    }

    #[test]
    fn egress_rules_are_their_own_list() {
        let mut lab = Lab::new();
        let vpc = lab.vpc("10.0.0.0/16");
        let sg = group(&mut lab, &vpc, "web");
        let all_out = [
            ("GroupId", sg.as_str()),
            ("IpPermissions.1.IpProtocol", "all"),
            ("IpPermissions.1.IpRanges.1.CidrIp", "0.0.0.0/0"),
        ];
        assert_eq!(lab.err("AuthorizeSecurityGroupEgress", &all_out).code, "InvalidPermission.Duplicate");
        // The same rule inbound is new.
        lab.ok("AuthorizeSecurityGroupIngress", &all_out);
        let to_self = [
            ("GroupId", sg.as_str()),
            ("IpPermissions.1.IpProtocol", "-1"),
            ("IpPermissions.1.Groups.1.GroupId", sg.as_str()),
        ];
        let doc = lab.ok("AuthorizeSecurityGroupEgress", &to_self);
        assert_eq!(
            at(&doc, "AuthorizeSecurityGroupEgressResponse/securityGroupRuleSet/item/isEgress").unwrap(),
            "true"
        );
        let g = &lab.ec2.security_groups[&sg];
        assert_eq!((g.ingress.len(), g.egress.len()), (1, 2));
        assert_eq!(g.egress[1].peer, RulePeer::Group(sg.clone()));
    }

    #[test]
    fn revoke_by_permission_or_by_rule_id() {
        let mut lab = Lab::new();
        let vpc = lab.vpc("10.0.0.0/16");
        let sg = group(&mut lab, &vpc, "web");
        lab.ok("AuthorizeSecurityGroupIngress", &tcp_in(&sg, "443", "10.0.0.0/16"));
        lab.ok("AuthorizeSecurityGroupIngress", &tcp_in(&sg, "22", "10.0.0.0/16"));
        let rule = lab.ec2.security_groups[&sg].ingress[0].clone();
        let egress_rule = lab.ec2.security_groups[&sg].egress[0].id.clone();
        let mut spelled = tcp_in(&sg, "443", "10.0.0.0/16");
        spelled[1].1 = "6";
        let doc = lab.ok("RevokeSecurityGroupIngress", &spelled);
        let base = "RevokeSecurityGroupIngressResponse/revokedSecurityGroupRuleSet/item";
        assert_eq!(at(&doc, &format!("{base}/securityGroupRuleId")).unwrap(), rule.id);
        assert_eq!(at(&doc, &format!("{base}/cidrIpv4")).unwrap(), "10.0.0.0/16");
        assert_eq!(at(&doc, &format!("{base}/fromPort")).unwrap(), "443");
        assert_eq!(lab.ec2.security_groups[&sg].ingress.len(), 1);
        assert_eq!(lab.err("RevokeSecurityGroupIngress", &spelled).code, "InvalidPermission.NotFound");
        let by_id = |id: &'static str| vec![("GroupId", sg.clone()), ("SecurityGroupRuleId.1", id.to_string())];
        let run_err = |lab: &mut Lab, action: &str, params: Vec<(&str, String)>| {
            let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            lab.err(action, &p).code
        };
        assert_eq!(
            run_err(&mut lab, "RevokeSecurityGroupIngress", by_id("sgr-12345678")),
            "InvalidSecurityGroupRuleId.NotFound"
        );
        assert_eq!(
            run_err(&mut lab, "RevokeSecurityGroupIngress", by_id("sgr-x")),
            "InvalidSecurityGroupRuleId.Malformed"
        );
        let wrong_way = vec![("GroupId", sg.clone()), ("SecurityGroupRuleId.1", egress_rule.clone())];
        assert_eq!(run_err(&mut lab, "RevokeSecurityGroupIngress", wrong_way), "InvalidSecurityGroupRuleId.NotFound");
        let both = vec![
            ("GroupId", sg.clone()),
            ("SecurityGroupRuleId.1", egress_rule.clone()),
            ("IpPermissions.1.IpProtocol", "-1".into()),
        ];
        assert_eq!(run_err(&mut lab, "RevokeSecurityGroupEgress", both), "InvalidParameterCombination");
        let doc = lab.ok("RevokeSecurityGroupEgress", &[("GroupId", &sg), ("SecurityGroupRuleId.1", &egress_rule)]);
        assert_eq!(
            at(&doc, "RevokeSecurityGroupEgressResponse/revokedSecurityGroupRuleSet/item/isEgress").unwrap(),
            "true"
        );
        assert!(lab.ec2.security_groups[&sg].egress.is_empty());
        assert_eq!(lab.ec2.security_groups[&sg].ingress.len(), 1, "ingress untouched");
    }

    #[test]
    fn describe_groups_shows_permissions_grouped_and_filters() {
        let mut lab = Lab::new();
        let vpc = lab.vpc("10.0.0.0/16");
        let default = lab.ec2.vpcs[&vpc].default_security_group.clone();
        let sg = group(&mut lab, &vpc, "web");
        lab.ok("AuthorizeSecurityGroupIngress", &tcp_in(&sg, "443", "10.0.0.0/16"));
        lab.ok("AuthorizeSecurityGroupIngress", &tcp_in(&sg, "443", "192.0.2.0/24"));
        lab.ok("AuthorizeSecurityGroupIngress", &tcp_in(&sg, "22", "10.0.0.0/16"));
        let doc = lab.ok("DescribeSecurityGroups", &[("GroupId.1", &sg)]);
        let base = "DescribeSecurityGroupsResponse/securityGroupInfo/item";
        assert_eq!(all(&doc, &format!("{base}/groupId")), [sg.as_str()]);
        assert_eq!(at(&doc, &format!("{base}/groupName")).unwrap(), "web");
        assert_eq!(at(&doc, &format!("{base}/groupDescription")).unwrap(), "test group");
        assert_eq!(at(&doc, &format!("{base}/vpcId")).unwrap(), vpc);
        assert_eq!(all(&doc, &format!("{base}/ipPermissions/item/fromPort")), ["443", "22"], "one permission per port");
        assert_eq!(
            all(&doc, &format!("{base}/ipPermissions/item/ipRanges/item/cidrIp")),
            ["10.0.0.0/16", "192.0.2.0/24", "10.0.0.0/16"]
        );
        assert_eq!(all(&doc, &format!("{base}/ipPermissionsEgress/item/ipProtocol")), ["-1"]);
        assert!(all(&doc, &format!("{base}/ipPermissionsEgress/item/fromPort")).is_empty(), "-1 has no ports");
        // The default group's members-reach-each-other rule is a group pair.
        let doc = lab.ok("DescribeSecurityGroups", &[("GroupName.1", "default")]);
        assert_eq!(all(&doc, &format!("{base}/ipPermissions/item/groups/item/groupId")), [default.as_str()]);
        assert_eq!(lab.err("DescribeSecurityGroups", &[("GroupName.1", "nope")]).code, "InvalidGroup.NotFound");
        assert_eq!(lab.err("DescribeSecurityGroups", &[("GroupId.1", "sg-12345678")]).code, "InvalidGroup.NotFound");
        let by = |lab: &mut Lab, name: &str, value: &str| {
            let doc = lab.ok("DescribeSecurityGroups", &[("Filter.1.Name", name), ("Filter.1.Value.1", value)]);
            all(&doc, &format!("{base}/groupId"))
        };
        assert_eq!(by(&mut lab, "ip-permission.cidr", "192.0.2.0/24"), [sg.as_str()]);
        assert_eq!(by(&mut lab, "ip-permission.from-port", "22"), [sg.as_str()]);
        assert_eq!(by(&mut lab, "ip-permission.protocol", "tcp"), [sg.as_str()]);
        assert_eq!(by(&mut lab, "ip-permission.group-id", &default), [default.as_str()]);
        assert_eq!(by(&mut lab, "egress.ip-permission.cidr", "0.0.0.0/0").len(), 2);
        assert_eq!(by(&mut lab, "group-name", "w*"), [sg.as_str()]);
        assert_eq!(by(&mut lab, "vpc-id", &vpc).len(), 2);
        assert_eq!(by(&mut lab, "description", "test group"), [sg.as_str()]);
        assert!(by(&mut lab, "owner-id", "1").is_empty());
        lab.ok("CreateTags", &[("ResourceId.1", &sg), ("Tag.1.Key", "tier"), ("Tag.1.Value", "front")]);
        assert_eq!(by(&mut lab, "tag:tier", "front"), [sg.as_str()]);
        assert_eq!(by(&mut lab, "tag-key", "tier"), [sg.as_str()]);
        let bad = [("Filter.1.Name", "ip-permission.nope"), ("Filter.1.Value.1", "x")];
        assert_eq!(lab.err("DescribeSecurityGroups", &bad).code, "InvalidParameterValue");
        assert_eq!(lab.err("DescribeSecurityGroups", &[("MaxResults", "4")]).code, "InvalidParameterValue");
    }

    #[test]
    fn describe_groups_pages() {
        let mut lab = Lab::new();
        let vpc = lab.vpc("10.0.0.0/16");
        for i in 0..6 {
            group(&mut lab, &vpc, &format!("g{i}"));
        }
        let base = "DescribeSecurityGroupsResponse";
        let first = lab.ok("DescribeSecurityGroups", &[("MaxResults", "5")]);
        assert_eq!(all(&first, &format!("{base}/securityGroupInfo/item/groupId")).len(), 5);
        let token = at(&first, &format!("{base}/nextToken")).unwrap();
        let rest = lab.ok("DescribeSecurityGroups", &[("MaxResults", "5"), ("NextToken", &token)]);
        assert_eq!(all(&rest, &format!("{base}/securityGroupInfo/item/groupId")).len(), 2);
        assert_eq!(at(&rest, &format!("{base}/nextToken")), None);
    }

    #[test]
    fn describe_rules_by_id_group_and_tag() {
        let mut lab = Lab::new();
        let vpc = lab.vpc("10.0.0.0/16");
        let sg = group(&mut lab, &vpc, "web");
        let peer = group(&mut lab, &vpc, "peer");
        let mut tagged = tcp_in(&sg, "443", "10.0.0.0/16");
        tagged.extend([
            ("IpPermissions.1.Groups.1.GroupId", peer.as_str()),
            ("TagSpecification.1.Tag.1.Key", "Name"),
            ("TagSpecification.1.Tag.1.Value", "https"),
        ]);
        lab.ok("AuthorizeSecurityGroupIngress", &tagged);
        let ids: Vec<String> = lab.ec2.security_groups[&sg].ingress.iter().map(|r| r.id.clone()).collect();
        let base = "DescribeSecurityGroupRulesResponse/securityGroupRuleSet/item";
        let doc = lab.ok("DescribeSecurityGroupRules", &[("SecurityGroupRuleId.1", &ids[1])]);
        assert_eq!(all(&doc, &format!("{base}/securityGroupRuleId")), [ids[1].as_str()]);
        assert_eq!(at(&doc, &format!("{base}/groupId")).unwrap(), sg);
        assert_eq!(at(&doc, &format!("{base}/groupOwnerId")).unwrap(), ACCOUNT_ID);
        assert_eq!(at(&doc, &format!("{base}/isEgress")).unwrap(), "false");
        assert_eq!(at(&doc, &format!("{base}/ipProtocol")).unwrap(), "tcp");
        assert_eq!(at(&doc, &format!("{base}/referencedGroupInfo/groupId")).unwrap(), peer);
        assert_eq!(at(&doc, &format!("{base}/cidrIpv4")), None);
        let by = |lab: &mut Lab, name: &str, value: &str| {
            let doc = lab.ok("DescribeSecurityGroupRules", &[("Filter.1.Name", name), ("Filter.1.Value.1", value)]);
            all(&doc, &format!("{base}/securityGroupRuleId"))
        };
        let mut of_sg = by(&mut lab, "group-id", &sg);
        of_sg.sort();
        let mut want: Vec<String> = ids.clone();
        want.push(lab.ec2.security_groups[&sg].egress[0].id.clone());
        want.sort();
        assert_eq!(of_sg, want);
        let mut https = by(&mut lab, "tag:Name", "https");
        https.sort();
        let mut sorted_ids = ids.clone();
        sorted_ids.sort();
        assert_eq!(https, sorted_ids);
        assert_eq!(by(&mut lab, "security-group-rule-id", &ids[0]), [ids[0].as_str()]);
        let unknown = [("SecurityGroupRuleId.1", "sgr-12345678")];
        assert_eq!(lab.err("DescribeSecurityGroupRules", &unknown).code, "InvalidSecurityGroupRuleId.NotFound");
        let bad = [("Filter.1.Name", "cidr"), ("Filter.1.Value.1", "x")];
        assert_eq!(lab.err("DescribeSecurityGroupRules", &bad).code, "InvalidParameterValue");
        let page = lab.ok("DescribeSecurityGroupRules", &[("MaxResults", "5")]);
        assert_eq!(all(&page, &format!("{base}/securityGroupRuleId")).len(), 5);
        assert!(at(&page, "DescribeSecurityGroupRulesResponse/nextToken").is_some());
    }

    #[test]
    fn delete_refuses_the_default_group_and_groups_in_use() {
        let mut lab = Lab::new();
        let vpc = lab.vpc("10.0.0.0/16");
        let default = lab.ec2.vpcs[&vpc].default_security_group.clone();
        assert_eq!(lab.err("DeleteSecurityGroup", &[("GroupId", &default)]).code, "CannotDelete");
        let sg = group(&mut lab, &vpc, "web");
        let other = group(&mut lab, &vpc, "other");
        // A rule of another group naming it.
        let refer = [
            ("GroupId", other.as_str()),
            ("IpPermissions.1.IpProtocol", "-1"),
            ("IpPermissions.1.Groups.1.GroupId", sg.as_str()),
        ];
        lab.ok("AuthorizeSecurityGroupIngress", &refer);
        assert_eq!(lab.err("DeleteSecurityGroup", &[("GroupId", &sg)]).code, "DependencyViolation");
        lab.ok("RevokeSecurityGroupIngress", &refer);
        // An instance in it.
        let subnet = lab.subnet(&vpc, "10.0.1.0/24", "us-east-1a");
        let instance = Instance {
            id: "i-12345678".into(),
            reservation: "r-12345678".into(),
            vpc: vpc.clone(),
            subnet,
            ip: "10.0.1.10".parse().unwrap(),
            security_groups: vec![sg.clone()],
            image_id: "ami-12345678".into(),
            instance_type: "t3.micro".into(),
            launch_time: 0,
        };
        lab.ec2.instances.insert(instance.id.clone(), instance);
        assert_eq!(lab.err("DeleteSecurityGroup", &[("GroupId", &sg)]).code, "DependencyViolation");
        lab.ec2.instances.clear();
        // A rule naming itself does not hold it.
        let to_self = [
            ("GroupId", sg.as_str()),
            ("IpPermissions.1.IpProtocol", "-1"),
            ("IpPermissions.1.Groups.1.GroupId", sg.as_str()),
        ];
        lab.ok("AuthorizeSecurityGroupIngress", &to_self);
        lab.ok("CreateTags", &[("ResourceId.1", &sg), ("Tag.1.Key", "k")]);
        assert_eq!(lab.err("DeleteSecurityGroup", &[("GroupName", "web")]).code, "VPCIdNotSpecified");
        assert_eq!(lab.err("DeleteSecurityGroup", &[("GroupId", "sg-12345678")]).code, "InvalidGroup.NotFound");
        let doc = lab.ok("DeleteSecurityGroup", &[("GroupId", &sg)]);
        assert_eq!(at(&doc, "DeleteSecurityGroupResponse/groupId").unwrap(), sg);
        assert!(!lab.ec2.security_groups.contains_key(&sg) && !lab.ec2.tags.contains_key(&sg));
        lab.ok("DeleteSecurityGroup", &[("GroupId", &other)]);
        let subnet = lab.ec2.subnets.keys().next().unwrap().clone();
        lab.ok("DeleteSubnet", &[("SubnetId", &subnet)]);
        lab.ok("DeleteVpc", &[("VpcId", &vpc)]);
    }
}
