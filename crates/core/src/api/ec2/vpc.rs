//! VPCs, subnets, Availability Zones and tags.
//!
//! A new VPC comes with its default security group (members reach each
//! other, egress to anywhere) and its default network ACL (rule 100 allows
//! all both ways, then the `*` deny), as in EC2; both go with the VPC.
//! A VPC is deleted only when nothing but those lives in it, a subnet only
//! when no instance or ENI is in it (`DependencyViolation`).

use super::describe::{asked, passes, Page};
use super::ids::{IdKind, ACCOUNT_ID};
use super::resources::{NetworkAcl, NetworkAclEntry, RulePeer, SecurityGroup, SecurityGroupRule, Subnet, Vpc};
use super::{Call, Ec2, Effect};
use crate::api::error::ApiError;
use crate::api::xml::Xml;
use crate::cidr::Cidr;

/// The Region's zones: `(ZoneName, ZoneId)`. us-east-1 has six, others three;
/// the ids follow AWS's `use1-az1` scheme (the name-to-id mapping is fixed
/// here, where AWS shuffles it per account).
pub fn availability_zones(region: &str) -> Vec<(String, String)> {
    let count = if region == "us-east-1" { 6 } else { 3 };
    let code = region_code(region);
    (0..count).map(|i| (format!("{region}{}", (b'a' + i as u8) as char), format!("{code}-az{}", i + 1))).collect()
}

/// `us-east-1` → `use1`, `ap-southeast-2` → `apse2`, `eu-central-1` → `euc1`.
fn region_code(region: &str) -> String {
    let parts: Vec<&str> = region.split('-').collect();
    let mut code = parts.first().copied().unwrap_or_default().to_string();
    for p in parts.iter().skip(1) {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            code.push_str(p);
            continue;
        }
        for dir in ["north", "south", "east", "west", "central"] {
            if p.starts_with(dir) || p.ends_with(dir) {
                code.push(dir.as_bytes()[0] as char);
            }
        }
    }
    code
}

/// The id of zone `name` in the Region, if it is one of its zones.
pub fn zone_id(region: &str, name: &str) -> Option<String> {
    availability_zones(region).into_iter().find(|(n, _)| n == name).map(|(_, id)| id)
}

pub(super) fn describe_availability_zones(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    let p = call.params;
    let (names, ids, filters) = (p.list("ZoneName"), p.list("ZoneId"), p.filters()?);
    let region = ec2.region.clone();
    let mut zones = Vec::new();
    for (name, id) in availability_zones(&region) {
        if (!names.is_empty() && !names.contains(&name)) || (!ids.is_empty() && !ids.contains(&id)) {
            continue;
        }
        let keep = passes(&filters, None, |f| match f {
            "zone-name" => Some(vec![name.clone()]),
            "zone-id" => Some(vec![id.clone()]),
            "region-name" => Some(vec![region.clone()]),
            "state" => Some(vec!["available".into()]),
            "zone-type" => Some(vec!["availability-zone".into()]),
            _ => None,
        })?;
        if keep {
            zones.push((name, id));
        }
    }
    for n in &names {
        if !availability_zones(&region).iter().any(|(z, _)| z == n) {
            return Err(ApiError::new("InvalidParameterValue", format!("Invalid availability zone: [{n}]")));
        }
    }
    x.set("availabilityZoneInfo", &zones, |x, (name, id)| {
        x.text("zoneName", name)
            .text("zoneId", id)
            .text("zoneState", "available")
            .text("regionName", &region)
            .text("groupName", &region)
            .text("networkBorderGroup", &region)
            .text("optInStatus", "opt-in-not-required")
            .text("zoneType", "availability-zone")
            .elem("messageSet", |_| {});
    });
    Ok(Effect::ReadOnly)
}

/// A VPC's or subnet's block: a CIDR from /16 to /28.
fn block(value: &str, code: &'static str) -> Result<Cidr, ApiError> {
    let cidr: Cidr = value.parse().map_err(|_| ApiError::new(code, format!("The CIDR '{value}' is invalid.")))?;
    if !(16..=28).contains(&cidr.prefix()) {
        return Err(ApiError::new(code, format!("The CIDR '{value}' is invalid.")));
    }
    Ok(cidr)
}

pub(super) fn create_vpc(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    let p = call.params;
    let cidr = block(p.required("CidrBlock")?, "InvalidVpc.Range")?;
    if p.get("Ipv6CidrBlock").is_some() || p.bool("AmazonProvidedIpv6CidrBlock")? == Some(true) {
        return Err(ApiError::new("UnsupportedOperation", "privlink VPCs are IPv4 only."));
    }
    let tags = p.tag_specifications("vpc")?;
    let id = call.new_id(IdKind::Vpc);
    let sg = call.new_id(IdKind::SecurityGroup);
    let acl = call.new_id(IdKind::NetworkAcl);
    let all = |call: &mut Call<'_>, peer: RulePeer| SecurityGroupRule {
        id: call.new_id(IdKind::SecurityGroupRule),
        protocol: "-1".into(),
        from_port: None,
        to_port: None,
        peer,
        description: None,
    };
    let group = SecurityGroup {
        id: sg.clone(),
        vpc: id.clone(),
        name: "default".into(),
        description: "default VPC security group".into(),
        ingress: vec![all(call, RulePeer::Group(sg.clone()))],
        egress: vec![all(call, RulePeer::Cidr(Cidr::ANY))],
    };
    let entry = |egress, rule_number, rule_action: &str| NetworkAclEntry {
        rule_number,
        egress,
        protocol: "-1".into(),
        rule_action: rule_action.into(),
        cidr: Cidr::ANY,
        ports: None,
    };
    let nacl = NetworkAcl {
        id: acl.clone(),
        vpc: id.clone(),
        is_default: true,
        entries: vec![
            entry(false, 100, "allow"),
            entry(true, 100, "allow"),
            entry(false, 32767, "deny"),
            entry(true, 32767, "deny"),
        ],
    };
    let vpc = Vpc {
        id: id.clone(),
        cidr,
        dns_support: true,
        dns_hostnames: false,
        default_security_group: sg.clone(),
        default_network_acl: acl.clone(),
    };
    ec2.security_groups.insert(sg, group);
    ec2.network_acls.insert(acl, nacl);
    ec2.vpcs.insert(id.clone(), vpc);
    ec2.set_tags(&id, &tags);
    x.elem("vpc", |x| write_vpc(ec2, x, &ec2.vpcs[&id], "pending"));
    Ok(Effect::Changed)
}

fn write_vpc(ec2: &Ec2, x: &mut Xml, v: &Vpc, state: &str) {
    let cidr = v.cidr.to_string();
    x.text("vpcId", &v.id)
        .text("ownerId", ACCOUNT_ID)
        .text("state", state)
        .text("cidrBlock", &cidr)
        .set("cidrBlockAssociationSet", [&cidr], |x, c| {
            x.text("associationId", &format!("vpc-cidr-assoc-{}", &v.id[4..])).text("cidrBlock", c).elem(
                "cidrBlockState",
                |x| {
                    x.text("state", "associated");
                },
            );
        })
        .text("dhcpOptionsId", "default")
        .text("instanceTenancy", "default")
        .bool("isDefault", false)
        .tag_set(ec2.tags_of(&v.id));
}

pub(super) fn describe_vpcs(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    let p = call.params;
    let (filters, page) = (p.filters()?, Page::read(p, 5, 1000)?);
    let chosen = asked(&p.list("VpcId"), &ec2.vpcs, |i| IdKind::Vpc.check(i), |i| IdKind::Vpc.not_found(i))?;
    let mut kept = Vec::new();
    for (id, v) in chosen {
        let keep = passes(&filters, ec2.tags.get(id), |f| match f {
            "vpc-id" => Some(vec![v.id.clone()]),
            "cidr" | "cidr-block-association.cidr-block" => Some(vec![v.cidr.to_string()]),
            "state" => Some(vec!["available".into()]),
            "is-default" => Some(vec!["false".into()]),
            "owner-id" => Some(vec![ACCOUNT_ID.into()]),
            "dhcp-options-id" => Some(vec!["default".into()]),
            _ => None,
        })?;
        if keep {
            kept.push((id, v));
        }
    }
    let (items, next) = page.cut(kept);
    x.set("vpcSet", items, |x, v| write_vpc(ec2, x, v, "available")).opt("nextToken", next.as_deref());
    Ok(Effect::ReadOnly)
}

pub(super) fn modify_vpc_attribute(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    let p = call.params;
    let id = p.required("VpcId")?.to_string();
    ec2.vpc(&id)?;
    let support = p.sub("EnableDnsSupport").bool("Value")?;
    let hostnames = p.sub("EnableDnsHostnames").bool("Value")?;
    if support.is_some() == hostnames.is_some() {
        return Err(ApiError::combination(
            "Fields for multiple attribute types specified: enableDnsSupport, enableDnsHostnames; give exactly one",
        ));
    }
    let v = ec2.vpcs.get_mut(&id).expect("checked");
    if let Some(s) = support {
        v.dns_support = s;
    }
    if let Some(h) = hostnames {
        if h && !v.dns_support {
            return Err(ApiError::new(
                "InvalidParameterValue",
                "enableDnsHostnames requires enableDnsSupport to be true",
            ));
        }
        v.dns_hostnames = h;
    }
    x.bool("return", true);
    Ok(Effect::Changed)
}

pub(super) fn delete_vpc(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    let id = call.params.required("VpcId")?.to_string();
    let v = ec2.vpc(&id)?.clone();
    let busy = ec2.subnets.values().any(|s| s.vpc == id)
        || ec2.endpoints.values().any(|e| e.vpc == id)
        || ec2.security_groups.values().any(|g| g.vpc == id && g.id != v.default_security_group)
        || ec2.network_acls.values().any(|a| a.vpc == id && a.id != v.default_network_acl);
    if busy {
        return Err(ApiError::dependency(&id, "vpc"));
    }
    for gone in [&v.default_security_group, &v.default_network_acl, &id] {
        ec2.drop_tags(gone);
    }
    // The default group's rules go with it, and their tags (as DeleteSecurityGroup drops them).
    let rules: Vec<String> = ec2
        .security_groups
        .get(&v.default_security_group)
        .map_or_else(Vec::new, |g| g.ingress.iter().chain(&g.egress).map(|r| r.id.clone()).collect());
    for r in &rules {
        ec2.drop_tags(r);
    }
    ec2.security_groups.remove(&v.default_security_group);
    ec2.network_acls.remove(&v.default_network_acl);
    ec2.vpcs.remove(&id);
    x.bool("return", true);
    Ok(Effect::Changed)
}

pub(super) fn create_subnet(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    let p = call.params;
    let vpc = ec2.vpc(p.required("VpcId")?)?.clone();
    let cidr = block(p.required("CidrBlock")?, "InvalidSubnet.Range")?;
    if !vpc.cidr.contains_cidr(&cidr) {
        return Err(ApiError::new("InvalidSubnet.Range", format!("The CIDR '{cidr}' is invalid.")));
    }
    if ec2.subnets.values().any(|s| s.vpc == vpc.id && s.cidr.overlaps(&cidr)) {
        return Err(ApiError::new(
            "InvalidSubnet.Conflict",
            format!("The CIDR '{cidr}' conflicts with another subnet"),
        ));
    }
    let zones = availability_zones(&ec2.region);
    let az = match (p.get("AvailabilityZone"), p.get("AvailabilityZoneId")) {
        (Some(_), Some(_)) => {
            return Err(ApiError::combination("Only one of AvailabilityZone or AvailabilityZoneId may be given"))
        }
        (Some(name), None) => zones.iter().find(|(n, _)| n == name).map(|(n, _)| n.clone()),
        (None, Some(zid)) => zones.iter().find(|(_, i)| i == zid).map(|(n, _)| n.clone()),
        (None, None) => zones.first().map(|(n, _)| n.clone()),
    };
    let az = az.ok_or_else(|| {
        let given = p.get("AvailabilityZone").or(p.get("AvailabilityZoneId")).unwrap_or_default();
        let names: Vec<&str> = zones.iter().map(|(n, _)| n.as_str()).collect();
        ApiError::new(
            "InvalidParameterValue",
            format!(
                "Value ({given}) for parameter availabilityZone is invalid. Subnets can currently only be created in the following availability zones: {}.",
                names.join(", ")
            ),
        )
    })?;
    let tags = p.tag_specifications("subnet")?;
    let subnet = Subnet {
        id: call.new_id(IdKind::Subnet),
        vpc: vpc.id.clone(),
        cidr,
        az,
        network_acl: vpc.default_network_acl.clone(),
        network_acl_association: call.new_id(IdKind::NetworkAclAssociation),
    };
    let id = subnet.id.clone();
    ec2.subnets.insert(id.clone(), subnet);
    ec2.set_tags(&id, &tags);
    x.elem("subnet", |x| write_subnet(ec2, x, &ec2.subnets[&id], "pending"));
    Ok(Effect::Changed)
}

/// Addresses of `s` still free: its size less AWS's five and what instances and ENIs hold.
pub fn available_ip_count(ec2: &Ec2, s: &Subnet) -> u64 {
    s.cidr.size().saturating_sub(5).saturating_sub(ec2.taken_ips(&s.id).len() as u64)
}

fn write_subnet(ec2: &Ec2, x: &mut Xml, s: &Subnet, state: &str) {
    x.text("subnetId", &s.id)
        .text("subnetArn", &format!("arn:aws:ec2:{}:{ACCOUNT_ID}:subnet/{}", ec2.region, s.id))
        .text("state", state)
        .text("vpcId", &s.vpc)
        .text("ownerId", ACCOUNT_ID)
        .text("cidrBlock", &s.cidr.to_string())
        .num("availableIpAddressCount", available_ip_count(ec2, s))
        .text("availabilityZone", &s.az)
        .opt("availabilityZoneId", zone_id(&ec2.region, &s.az).as_deref())
        .bool("defaultForAz", false)
        .bool("mapPublicIpOnLaunch", false)
        .bool("assignIpv6AddressOnCreation", false)
        .tag_set(ec2.tags_of(&s.id));
}

pub(super) fn describe_subnets(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    let p = call.params;
    let (filters, page) = (p.filters()?, Page::read(p, 5, 1000)?);
    let chosen =
        asked(&p.list("SubnetId"), &ec2.subnets, |i| IdKind::Subnet.check(i), |i| IdKind::Subnet.not_found(i))?;
    let mut kept = Vec::new();
    for (id, s) in chosen {
        let keep = passes(&filters, ec2.tags.get(id), |f| match f {
            "subnet-id" => Some(vec![s.id.clone()]),
            "vpc-id" => Some(vec![s.vpc.clone()]),
            "cidr-block" | "cidr" | "cidrBlock" => Some(vec![s.cidr.to_string()]),
            "availability-zone" | "availabilityZone" => Some(vec![s.az.clone()]),
            "availability-zone-id" => Some(zone_id(&ec2.region, &s.az).into_iter().collect()),
            "state" => Some(vec!["available".into()]),
            "default-for-az" => Some(vec!["false".into()]),
            "owner-id" => Some(vec![ACCOUNT_ID.into()]),
            _ => None,
        })?;
        if keep {
            kept.push((id, s));
        }
    }
    let (items, next) = page.cut(kept);
    x.set("subnetSet", items, |x, s| write_subnet(ec2, x, s, "available")).opt("nextToken", next.as_deref());
    Ok(Effect::ReadOnly)
}

pub(super) fn delete_subnet(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    let id = call.params.required("SubnetId")?.to_string();
    ec2.subnet(&id)?;
    if !ec2.taken_ips(&id).is_empty() || ec2.endpoints.values().any(|e| e.subnets.contains(&id)) {
        return Err(ApiError::dependency(&id, "subnet"));
    }
    ec2.subnets.remove(&id);
    ec2.drop_tags(&id);
    x.bool("return", true);
    Ok(Effect::Changed)
}

/// One line of DescribeTags.
struct TagRow<'a> {
    id: &'a str,
    ty: &'a str,
    key: &'a str,
    value: &'a str,
}

/// The resource type DescribeTags shows for an id.
fn resource_type(kind: IdKind) -> &'static str {
    match kind {
        IdKind::Vpc => "vpc",
        IdKind::Subnet => "subnet",
        IdKind::SecurityGroup => "security-group",
        IdKind::SecurityGroupRule => "security-group-rule",
        IdKind::NetworkAcl => "network-acl",
        IdKind::Instance => "instance",
        IdKind::VpcEndpoint => "vpc-endpoint",
        IdKind::NetworkInterface => "network-interface",
        IdKind::Reservation => "reservation",
        IdKind::NetworkAclAssociation => "network-acl-association",
        IdKind::PrefixList => "prefix-list",
    }
}

/// The ids of a CreateTags or DeleteTags call, each checked to exist.
fn tagged_ids(ec2: &Ec2, call: &Call<'_>) -> Result<Vec<String>, ApiError> {
    let ids = call.params.list("ResourceId");
    if ids.is_empty() {
        return Err(ApiError::new("MissingParameter", "The request must contain the parameter resourceIdSet"));
    }
    for id in &ids {
        let kind = IdKind::of(id)
            .filter(|k| k.is_well_formed(id))
            .ok_or_else(|| ApiError::new("InvalidID", format!("The ID '{id}' is not valid")))?;
        if !ec2.exists(id) {
            return Err(kind.not_found(id));
        }
    }
    Ok(ids)
}

pub(super) fn create_tags(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    let ids = tagged_ids(ec2, call)?;
    let tags = call.params.tags("Tag")?;
    if let Some(t) = tags.iter().find(|t| t.key.is_empty() || t.key.len() > 128 || t.key.starts_with("aws:")) {
        return Err(ApiError::new("InvalidParameterValue", format!("Tag key '{}' is not valid", t.key)));
    }
    for id in &ids {
        let have = ec2.tags.get(id).map_or(0, |t| t.len());
        let new = tags.iter().filter(|t| !ec2.tags.get(id).is_some_and(|m| m.contains_key(&t.key))).count();
        if have + new > 50 {
            return Err(ApiError::new(
                "TagLimitExceeded",
                format!("The maximum number of tags (50) for {id} was exceeded"),
            ));
        }
    }
    for id in &ids {
        ec2.set_tags(id, &tags);
    }
    x.bool("return", true);
    Ok(Effect::Changed)
}

pub(super) fn delete_tags(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    let ids = tagged_ids(ec2, call)?;
    let given = call.params.structs("Tag");
    // Checked before any tag goes: a refused call changes nothing.
    for g in &given {
        g.required("Key")?;
    }
    for id in &ids {
        let Some(t) = ec2.tags.get_mut(id) else { continue };
        if given.is_empty() {
            t.clear();
        }
        for g in &given {
            let key = g.required("Key")?;
            // With a Value, only a tag of that value goes (EC2's rule).
            if g.get("Value").is_none_or(|v| t.get(key).is_some_and(|have| have == v)) {
                t.remove(key);
            }
        }
        if t.is_empty() {
            ec2.tags.remove(id);
        }
    }
    x.bool("return", true);
    Ok(Effect::Changed)
}

pub(super) fn describe_tags(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    let p = call.params;
    let (filters, page) = (p.filters()?, Page::read(p, 5, 1000)?);
    // One row per (resource, key), keyed `id NUL key` so pages follow that order.
    let mut rows: Vec<(String, TagRow<'_>)> = Vec::new();
    for (id, tags) in &ec2.tags {
        let ty = IdKind::of(id).map_or("", resource_type);
        for (k, v) in tags {
            let keep = passes(&filters, None, |f| match f {
                "resource-id" => Some(vec![id.clone()]),
                "resource-type" => Some(vec![ty.into()]),
                "key" => Some(vec![k.clone()]),
                "value" => Some(vec![v.clone()]),
                _ => None,
            })?;
            if keep {
                rows.push((format!("{id}\u{0}{k}"), TagRow { id, ty, key: k, value: v }));
            }
        }
    }
    let (items, next) = page.cut(rows.iter().map(|(key, row)| (key, row)));
    x.set("tagSet", items, |x, r| {
        x.text("resourceId", r.id).text("resourceType", r.ty).text("key", r.key).text("value", r.value);
    })
    .opt("nextToken", next.as_deref());
    Ok(Effect::ReadOnly)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ec2::testkit::Lab;

    #[test]
    fn zone_ids_follow_the_region_code() {
        assert_eq!(availability_zones("us-east-1")[0], ("us-east-1a".into(), "use1-az1".into()));
        assert_eq!(availability_zones("us-east-1").len(), 6);
        assert_eq!(zone_id("eu-central-1", "eu-central-1b").as_deref(), Some("euc1-az2"));
        assert_eq!(zone_id("ap-southeast-2", "ap-southeast-2c").as_deref(), Some("apse2-az3"));
        assert_eq!(zone_id("us-west-2", "us-east-1a"), None);
    }

    #[test]
    fn a_vpc_comes_with_its_default_group_and_nacl_and_goes_with_them() {
        let mut lab = Lab::new();
        let vpc = lab.vpc("10.0.0.0/16");
        let v = lab.ec2.vpcs[&vpc].clone();
        let sg = &lab.ec2.security_groups[&v.default_security_group];
        assert_eq!(sg.name, "default");
        assert_eq!(sg.ingress[0].peer, RulePeer::Group(sg.id.clone()), "members reach each other");
        assert_eq!(lab.ec2.network_acls[&v.default_network_acl].entries.len(), 4);
        let subnet = lab.subnet(&vpc, "10.0.1.0/24", "us-east-1a");
        assert_eq!(lab.err("DeleteVpc", &[("VpcId", &vpc)]).code, "DependencyViolation");
        lab.ok("DeleteSubnet", &[("SubnetId", &subnet)]);
        lab.ok("DeleteVpc", &[("VpcId", &vpc)]);
        assert!(lab.ec2.security_groups.is_empty() && lab.ec2.network_acls.is_empty());
    }

    #[test]
    fn subnets_are_checked_as_ec2_checks_them() {
        let mut lab = Lab::new();
        let vpc = lab.vpc("10.0.0.0/16");
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("CidrBlock", "10.1.0.0/24")], "InvalidSubnet.Range"),
            (&[("CidrBlock", "10.0.0.0/29")], "InvalidSubnet.Range"),
            (&[("CidrBlock", "10.0.0.1/24")], "InvalidSubnet.Range"),
            (&[("CidrBlock", "10.0.1.0/24"), ("AvailabilityZone", "us-west-2a")], "InvalidParameterValue"),
            (
                &[("CidrBlock", "10.0.1.0/24"), ("AvailabilityZone", "us-east-1a"), ("AvailabilityZoneId", "use1-az1")],
                "InvalidParameterCombination",
            ),
        ];
        for (extra, code) in cases {
            let mut params = vec![("VpcId", vpc.as_str())];
            params.extend_from_slice(extra);
            assert_eq!(lab.err("CreateSubnet", &params).code, *code, "{extra:?}");
        }
        assert_eq!(lab.ec2.subnets.len(), 0, "a refused call changes nothing");
        let id = lab
            .ok("CreateSubnet", &[("VpcId", &vpc), ("CidrBlock", "10.0.2.0/24"), ("AvailabilityZoneId", "use1-az2")]);
        assert_eq!(
            crate::api::xml::tests::at(&id, "CreateSubnetResponse/subnet/availabilityZone").unwrap(),
            "us-east-1b"
        );
        assert_eq!(
            crate::api::xml::tests::at(&id, "CreateSubnetResponse/subnet/availableIpAddressCount").unwrap(),
            "251"
        );
        let conflict = [("VpcId", vpc.as_str()), ("CidrBlock", "10.0.2.128/25")];
        assert_eq!(lab.err("CreateSubnet", &conflict).code, "InvalidSubnet.Conflict");
        assert_eq!(
            lab.err("CreateSubnet", &[("VpcId", "vpc-nothex"), ("CidrBlock", "10.0.3.0/24")]).code,
            "InvalidVpcID.Malformed"
        );
        assert_eq!(
            lab.err("CreateSubnet", &[("VpcId", "vpc-12345678"), ("CidrBlock", "10.0.3.0/24")]).code,
            "InvalidVpcID.NotFound"
        );
    }

    #[test]
    fn describe_filters_pages_and_tags() {
        let mut lab = Lab::new();
        let vpcs: Vec<String> = (0..7).map(|_| lab.vpc("10.0.0.0/16")).collect();
        lab.ok("CreateTags", &[("ResourceId.1", &vpcs[2]), ("Tag.1.Key", "Name"), ("Tag.1.Value", "web")]);
        let doc = lab.ok("DescribeVpcs", &[("Filter.1.Name", "tag:Name"), ("Filter.1.Value.1", "we*")]);
        assert_eq!(crate::api::xml::tests::all(&doc, "DescribeVpcsResponse/vpcSet/item/vpcId"), [vpcs[2].clone()]);
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut params = vec![("MaxResults", "5")];
            if let Some(t) = &token {
                params.push(("NextToken", t));
            }
            let doc = lab.ok("DescribeVpcs", &params);
            seen.extend(crate::api::xml::tests::all(&doc, "DescribeVpcsResponse/vpcSet/item/vpcId"));
            token = crate::api::xml::tests::at(&doc, "DescribeVpcsResponse/nextToken");
            if token.is_none() {
                break;
            }
        }
        let mut sorted = vpcs.clone();
        sorted.sort();
        assert_eq!(seen, sorted);
        assert_eq!(lab.err("DescribeVpcs", &[("MaxResults", "2")]).code, "InvalidParameterValue");
        assert_eq!(
            lab.err("DescribeVpcs", &[("Filter.1.Name", "nope"), ("Filter.1.Value.1", "x")]).code,
            "InvalidParameterValue"
        );
        let tags = lab.ok("DescribeTags", &[("Filter.1.Name", "resource-type"), ("Filter.1.Value.1", "vpc")]);
        assert_eq!(
            crate::api::xml::tests::all(&tags, "DescribeTagsResponse/tagSet/item/resourceId"),
            [vpcs[2].clone()]
        );
        lab.ok("DeleteTags", &[("ResourceId.1", &vpcs[2]), ("Tag.1.Key", "Name"), ("Tag.1.Value", "other")]);
        assert_eq!(lab.ec2.tags[&vpcs[2]]["Name"], "web", "a DeleteTags with another value keeps the tag");
        lab.ok("DeleteTags", &[("ResourceId.1", &vpcs[2]), ("Tag.1.Key", "Name")]);
        assert!(!lab.ec2.tags.contains_key(&vpcs[2]));
        assert_eq!(
            lab.err("CreateTags", &[("ResourceId.1", "vpc-12345678"), ("Tag.1.Key", "a")]).code,
            "InvalidVpcID.NotFound"
        );
    }

    #[test]
    fn modify_vpc_attribute_takes_one_attribute() {
        let mut lab = Lab::new();
        let vpc = lab.vpc("10.0.0.0/16");
        lab.ok("ModifyVpcAttribute", &[("VpcId", &vpc), ("EnableDnsHostnames.Value", "true")]);
        assert!(lab.ec2.vpcs[&vpc].dns_hostnames);
        let both = [("VpcId", vpc.as_str()), ("EnableDnsHostnames.Value", "true"), ("EnableDnsSupport.Value", "true")];
        assert_eq!(lab.err("ModifyVpcAttribute", &both).code, "InvalidParameterCombination");
        lab.ok("ModifyVpcAttribute", &[("VpcId", &vpc), ("EnableDnsHostnames.Value", "false")]);
        lab.ok("ModifyVpcAttribute", &[("VpcId", &vpc), ("EnableDnsSupport.Value", "false")]);
        assert!(!lab.ec2.vpcs[&vpc].dns_support);
    }
}
