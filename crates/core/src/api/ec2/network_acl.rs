//! Network ACLs, their numbered entries and their subnet associations.
//!
//! A custom NACL starts with only its `*` entries (rule 32767, deny, both
//! ways), so it denies everything until entries allow traffic, as in EC2.
//! The `*` entries are stored like the others, for Describe, and can be
//! neither replaced nor deleted. Protocols are stored as EC2 shows them,
//! numbers (`6`, not `tcp`). A NACL's associations are not stored on it:
//! each subnet names its NACL and its association id, so a subnet always has
//! exactly one.
//!
//! Only what the data plane enforces is accepted: IPv4 blocks and tcp, udp,
//! icmp or all protocols. An ICMP entry's type and code are checked but not
//! kept (the filter matches every ICMP message); Describe shows -1 for both.

use super::describe::{asked, passes, Page};
use super::ids::{IdKind, ACCOUNT_ID};
use super::resources::{NetworkAcl, NetworkAclEntry};
use super::{Call, Ec2, Effect};
use crate::api::error::ApiError;
use crate::api::query::Params;
use crate::api::xml::Xml;
use crate::cidr::Cidr;

/// The `*` entry's number.
const LAST_RULE: u16 = 32767;

/// The NACL `id`, checked: `InvalidNetworkAclID.Malformed` / `.NotFound`.
fn network_acl<'a>(ec2: &'a Ec2, id: &str) -> Result<&'a NetworkAcl, ApiError> {
    IdKind::NetworkAcl.check(id)?;
    ec2.network_acls.get(id).ok_or_else(|| IdKind::NetworkAcl.not_found(id))
}

pub(super) fn create_network_acl(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    let p = call.params;
    let vpc = ec2.vpc(p.required("VpcId")?)?.id.clone();
    let tags = p.tag_specifications("network-acl")?;
    let deny_all = |egress| NetworkAclEntry {
        rule_number: LAST_RULE,
        egress,
        protocol: "-1".into(),
        rule_action: "deny".into(),
        cidr: Cidr::ANY,
        ports: None,
    };
    let id = call.new_id(IdKind::NetworkAcl);
    let acl = NetworkAcl { id: id.clone(), vpc, is_default: false, entries: vec![deny_all(false), deny_all(true)] };
    ec2.network_acls.insert(id.clone(), acl);
    ec2.set_tags(&id, &tags);
    x.elem("networkAcl", |x| write_acl(ec2, x, &ec2.network_acls[&id])).opt("clientToken", p.get("ClientToken"));
    Ok(Effect::Changed)
}

fn write_acl(ec2: &Ec2, x: &mut Xml, a: &NetworkAcl) {
    // EC2 lists outbound entries first, each direction by rule number.
    let mut entries: Vec<&NetworkAclEntry> = a.entries.iter().collect();
    entries.sort_by_key(|e| (!e.egress, e.rule_number));
    x.text("networkAclId", &a.id)
        .text("vpcId", &a.vpc)
        .bool("default", a.is_default)
        .set("entrySet", entries, |x, e| {
            x.num("ruleNumber", e.rule_number)
                .text("protocol", &e.protocol)
                .text("ruleAction", &e.rule_action)
                .bool("egress", e.egress)
                .text("cidrBlock", &e.cidr.to_string());
            if e.protocol == "1" {
                x.elem("icmpTypeCode", |x| {
                    x.num("code", -1).num("type", -1);
                });
            }
            if let Some((from, to)) = e.ports {
                x.elem("portRange", |x| {
                    x.num("from", from).num("to", to);
                });
            }
        })
        .set("associationSet", ec2.subnets.values().filter(|s| s.network_acl == a.id), |x, s| {
            x.text("networkAclAssociationId", &s.network_acl_association)
                .text("networkAclId", &a.id)
                .text("subnetId", &s.id);
        })
        .tag_set(ec2.tags_of(&a.id))
        .text("ownerId", ACCOUNT_ID);
}

pub(super) fn describe_network_acls(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    let p = call.params;
    let (filters, page) = (p.filters()?, Page::read(p, 5, 1000)?);
    let chosen = asked(
        &p.list("NetworkAclId"),
        &ec2.network_acls,
        |i| IdKind::NetworkAcl.check(i),
        |i| IdKind::NetworkAcl.not_found(i),
    )?;
    let mut kept = Vec::new();
    for (id, a) in chosen {
        let subnets: Vec<_> = ec2.subnets.values().filter(|s| s.network_acl == a.id).collect();
        let entries = |f: fn(&NetworkAclEntry) -> Option<String>| Some(a.entries.iter().filter_map(f).collect());
        let keep = passes(&filters, ec2.tags.get(id), |f| match f {
            "network-acl-id" => Some(vec![a.id.clone()]),
            "vpc-id" => Some(vec![a.vpc.clone()]),
            "default" => Some(vec![a.is_default.to_string()]),
            "owner-id" => Some(vec![ACCOUNT_ID.into()]),
            "association.subnet-id" => Some(subnets.iter().map(|s| s.id.clone()).collect()),
            "association.association-id" => Some(subnets.iter().map(|s| s.network_acl_association.clone()).collect()),
            "association.network-acl-id" => Some(subnets.iter().map(|s| s.network_acl.clone()).collect()),
            "entry.rule-number" => entries(|e| Some(e.rule_number.to_string())),
            "entry.cidr" => entries(|e| Some(e.cidr.to_string())),
            "entry.protocol" => entries(|e| Some(e.protocol.clone())),
            "entry.rule-action" => entries(|e| Some(e.rule_action.clone())),
            "entry.egress" => entries(|e| Some(e.egress.to_string())),
            "entry.port-range.from" => entries(|e| e.ports.map(|p| p.0.to_string())),
            "entry.port-range.to" => entries(|e| e.ports.map(|p| p.1.to_string())),
            _ => None,
        })?;
        if keep {
            kept.push((id, a));
        }
    }
    let (items, next) = page.cut(kept);
    x.set("networkAclSet", items, |x, a| write_acl(ec2, x, a)).opt("nextToken", next.as_deref());
    Ok(Effect::ReadOnly)
}

pub(super) fn delete_network_acl(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    let a = network_acl(ec2, call.params.required("NetworkAclId")?)?;
    let id = a.id.clone();
    if a.is_default {
        return Err(ApiError::new("InvalidParameterValue", format!("cannot delete default network ACL {id}")));
    }
    if ec2.subnets.values().any(|s| s.network_acl == id) {
        return Err(ApiError::dependency(&id, "networkAcl"));
    }
    ec2.network_acls.remove(&id);
    ec2.drop_tags(&id);
    x.bool("return", true);
    Ok(Effect::Changed)
}

/// `RuleNumber` (1–32766: the `*` entry cannot be named) and `Egress` of an entry call.
fn entry_key(p: &Params) -> Result<(u16, bool), ApiError> {
    let given = p.required("RuleNumber")?;
    let n = p.int("RuleNumber")?.unwrap_or_default();
    if !(1..=i64::from(crate::filter::RuleNumber::MAX)).contains(&n) {
        return Err(ApiError::new(
            "InvalidParameterValue",
            format!("Value ({given}) for parameter ruleNumber is invalid. Rule numbers run from 1 to 32766."),
        ));
    }
    p.required("Egress")?;
    let egress = p.bool("Egress")?.unwrap_or_default();
    Ok((n as u16, egress))
}

/// The entry a Create or Replace call describes.
fn entry(p: &Params) -> Result<NetworkAclEntry, ApiError> {
    let (rule_number, egress) = entry_key(p)?;
    let given = p.required("Protocol")?;
    let protocol = match given.to_ascii_lowercase().as_str() {
        "-1" | "all" => "-1",
        "tcp" | "6" => "6",
        "udp" | "17" => "17",
        "icmp" | "1" => "1",
        _ => {
            return Err(ApiError::new(
                "InvalidParameterValue",
                format!(
                    "Invalid value '{given}' for protocol. privlink filters -1 (all), 6 (tcp), 17 (udp) and 1 (icmp)."
                ),
            ))
        }
    };
    let action = p.required("RuleAction")?;
    let rule_action = match action.to_ascii_lowercase().as_str() {
        "allow" => "allow",
        "deny" => "deny",
        _ => return Err(ApiError::invalid_value("RuleAction", action)),
    };
    if p.get("Ipv6CidrBlock").is_some() {
        return Err(ApiError::new("InvalidParameterValue", "IPv6 entries are not supported: privlink is IPv4 only."));
    }
    let block = p.required("CidrBlock")?;
    let cidr: Cidr = block.parse().map_err(|_| ApiError::invalid_value("CidrBlock", block))?;
    let ports = match protocol {
        "6" | "17" => {
            let range = p.sub("PortRange");
            let (Some(from), Some(to)) = (range.int("From")?, range.int("To")?) else {
                return Err(ApiError::new("MissingParameter", "The request must contain the parameter portRange"));
            };
            if !(0..=65535).contains(&from) || !(0..=65535).contains(&to) || from > to {
                return Err(ApiError::new("InvalidParameterValue", format!("Invalid port range {from}-{to}")));
            }
            Some((from as u16, to as u16))
        }
        _ => None,
    };
    if protocol == "1" {
        let icmp = p.sub("Icmp");
        for (name, v) in [("Icmp.Type", icmp.int("Type")?), ("Icmp.Code", icmp.int("Code")?)] {
            if let Some(v) = v.filter(|v| !(-1..=255).contains(v)) {
                return Err(ApiError::invalid_value(name, &v.to_string()));
            }
        }
    }
    Ok(NetworkAclEntry { rule_number, egress, protocol: protocol.into(), rule_action: rule_action.into(), cidr, ports })
}

fn entry_not_found(rule: u16) -> ApiError {
    ApiError::new(
        "InvalidNetworkAclEntry.NotFound",
        format!("The network acl entry identified by {rule} does not exist."),
    )
}

pub(super) fn create_network_acl_entry(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    let p = call.params;
    let id = network_acl(ec2, p.required("NetworkAclId")?)?.id.clone();
    let e = entry(p)?;
    let a = ec2.network_acls.get_mut(&id).expect("checked");
    if a.entries.iter().any(|o| o.egress == e.egress && o.rule_number == e.rule_number) {
        return Err(ApiError::new(
            "NetworkAclEntryAlreadyExists",
            format!("The network acl entry identified by {} already exists.", e.rule_number),
        ));
    }
    // The data plane's quota, so a NACL the API accepted always builds.
    let limit = crate::filter::Quotas::default().nacl_entries_per_direction;
    if a.entries.iter().filter(|o| o.egress == e.egress && o.rule_number != LAST_RULE).count() >= limit {
        return Err(ApiError::new(
            "NetworkAclEntryLimitExceeded",
            format!("The maximum number of network acl entries ({limit}) has been reached."),
        ));
    }
    a.entries.push(e);
    x.bool("return", true);
    Ok(Effect::Changed)
}

pub(super) fn replace_network_acl_entry(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    let p = call.params;
    let id = network_acl(ec2, p.required("NetworkAclId")?)?.id.clone();
    let e = entry(p)?;
    let a = ec2.network_acls.get_mut(&id).expect("checked");
    let old = a
        .entries
        .iter_mut()
        .find(|o| o.egress == e.egress && o.rule_number == e.rule_number)
        .ok_or_else(|| entry_not_found(e.rule_number))?;
    *old = e;
    x.bool("return", true);
    Ok(Effect::Changed)
}

pub(super) fn delete_network_acl_entry(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    let p = call.params;
    let id = network_acl(ec2, p.required("NetworkAclId")?)?.id.clone();
    let (rule, egress) = entry_key(p)?;
    let a = ec2.network_acls.get_mut(&id).expect("checked");
    let at = a
        .entries
        .iter()
        .position(|o| o.egress == egress && o.rule_number == rule)
        .ok_or_else(|| entry_not_found(rule))?;
    a.entries.remove(at);
    x.bool("return", true);
    Ok(Effect::Changed)
}

pub(super) fn replace_network_acl_association(
    ec2: &mut Ec2,
    call: &mut Call<'_>,
    x: &mut Xml,
) -> Result<Effect, ApiError> {
    let p = call.params;
    let association = p.required("AssociationId")?;
    IdKind::NetworkAclAssociation.check(association)?;
    let acl = network_acl(ec2, p.required("NetworkAclId")?)?.clone();
    let subnet = ec2
        .subnets
        .values()
        .find(|s| s.network_acl_association == association)
        .ok_or_else(|| IdKind::NetworkAclAssociation.not_found(association))?
        .id
        .clone();
    if ec2.subnets[&subnet].vpc != acl.vpc {
        return Err(ApiError::new(
            "InvalidParameterValue",
            format!("Network ACL {} and subnet {subnet} belong to different VPCs.", acl.id),
        ));
    }
    let new = call.new_id(IdKind::NetworkAclAssociation);
    let s = ec2.subnets.get_mut(&subnet).expect("found");
    s.network_acl = acl.id;
    s.network_acl_association = new.clone();
    x.text("newAssociationId", &new);
    Ok(Effect::Changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ec2::testkit::Lab;
    use crate::api::xml::tests::{all, at};

    fn acl(lab: &mut Lab, vpc: &str) -> String {
        lab.field("CreateNetworkAcl", &[("VpcId", vpc)], "CreateNetworkAclResponse/networkAcl/networkAclId")
    }

    fn entry<'a>(
        acl: &'a str,
        rule: &'a str,
        egress: &'a str,
        extra: &[(&'a str, &'a str)],
    ) -> Vec<(&'a str, &'a str)> {
        let mut v = vec![
            ("NetworkAclId", acl),
            ("RuleNumber", rule),
            ("Egress", egress),
            ("Protocol", "tcp"),
            ("RuleAction", "allow"),
            ("CidrBlock", "10.0.0.0/16"),
            ("PortRange.From", "443"),
            ("PortRange.To", "443"),
        ];
        for (k, val) in extra {
            match v.iter_mut().find(|(name, _)| name == k) {
                Some(slot) => slot.1 = val,
                None => v.push((k, val)),
            }
        }
        v.retain(|(_, val)| !val.is_empty());
        v
    }

    #[test]
    fn a_new_nacl_denies_all_both_ways() {
        let mut lab = Lab::new();
        let vpc = lab.vpc("10.0.0.0/16");
        let params = [
            ("VpcId", vpc.as_str()),
            ("TagSpecification.1.ResourceType", "network-acl"),
            ("TagSpecification.1.Tag.1.Key", "Name"),
            ("TagSpecification.1.Tag.1.Value", "strict"),
        ];
        let doc = lab.ok("CreateNetworkAcl", &params);
        let base = "CreateNetworkAclResponse/networkAcl";
        let id = at(&doc, &format!("{base}/networkAclId")).unwrap();
        assert!(IdKind::NetworkAcl.is_well_formed(&id));
        assert_eq!(at(&doc, &format!("{base}/vpcId")).unwrap(), vpc);
        assert_eq!(at(&doc, &format!("{base}/default")).unwrap(), "false");
        assert_eq!(all(&doc, &format!("{base}/entrySet/item/ruleNumber")), ["32767", "32767"]);
        assert_eq!(all(&doc, &format!("{base}/entrySet/item/ruleAction")), ["deny", "deny"]);
        assert_eq!(all(&doc, &format!("{base}/entrySet/item/egress")), ["true", "false"]);
        assert_eq!(all(&doc, &format!("{base}/entrySet/item/protocol")), ["-1", "-1"]);
        assert_eq!(at(&doc, &format!("{base}/tagSet/item/value")).unwrap(), "strict");
        assert!(all(&doc, &format!("{base}/associationSet/item/subnetId")).is_empty());
        assert!(!lab.ec2.network_acls[&id].is_default);
        assert_eq!(lab.err("CreateNetworkAcl", &[]).code, "MissingParameter");
        assert_eq!(lab.err("CreateNetworkAcl", &[("VpcId", "vpc-12345678")]).code, "InvalidVpcID.NotFound");
        let wrong = [("VpcId", vpc.as_str()), ("TagSpecification.1.ResourceType", "subnet")];
        assert_eq!(lab.err("CreateNetworkAcl", &wrong).code, "InvalidParameterValue");
    }

    #[test]
    fn entries_are_created_replaced_and_deleted_by_number_and_direction() {
        let mut lab = Lab::new();
        let vpc = lab.vpc("10.0.0.0/16");
        let a = acl(&mut lab, &vpc);
        lab.ok("CreateNetworkAclEntry", &entry(&a, "100", "false", &[]));
        // The same number the other way is another entry.
        lab.ok(
            "CreateNetworkAclEntry",
            &entry(&a, "100", "true", &[("Protocol", "-1"), ("PortRange.From", ""), ("PortRange.To", "")]),
        );
        lab.ok(
            "CreateNetworkAclEntry",
            &entry(&a, "90", "false", &[("Protocol", "icmp"), ("Icmp.Type", "8"), ("Icmp.Code", "-1")]),
        );
        let e = lab.ec2.network_acls[&a].entries.iter().find(|e| e.rule_number == 100 && !e.egress).unwrap().clone();
        assert_eq!((e.protocol.as_str(), e.rule_action.as_str(), e.ports), ("6", "allow", Some((443, 443))));
        let out = lab.ec2.network_acls[&a].entries.iter().find(|e| e.rule_number == 100 && e.egress).unwrap().clone();
        assert_eq!((out.protocol.as_str(), out.ports), ("-1", None), "ports are ignored for all protocols");
        lab.ok(
            "ReplaceNetworkAclEntry",
            &entry(&a, "100", "false", &[("RuleAction", "deny"), ("Protocol", "17"), ("CidrBlock", "192.0.2.0/24")]),
        );
        let e = lab.ec2.network_acls[&a].entries.iter().find(|e| e.rule_number == 100 && !e.egress).unwrap().clone();
        assert_eq!((e.protocol.as_str(), e.rule_action.as_str()), ("17", "deny"));
        assert_eq!(e.cidr.to_string(), "192.0.2.0/24");
        lab.ok("DeleteNetworkAclEntry", &[("NetworkAclId", &a), ("RuleNumber", "100"), ("Egress", "true")]);
        let left: Vec<(u16, bool)> =
            lab.ec2.network_acls[&a].entries.iter().map(|e| (e.rule_number, e.egress)).collect();
        assert_eq!(left.len(), 4);
        assert!(!left.contains(&(100, true)) && left.contains(&(100, false)));
        let doc = lab.ok("DescribeNetworkAcls", &[("NetworkAclId.1", &a)]);
        let base = "DescribeNetworkAclsResponse/networkAclSet/item/entrySet/item";
        assert_eq!(
            all(&doc, &format!("{base}/ruleNumber")),
            ["32767", "90", "100", "32767"],
            "outbound first, by number"
        );
        assert_eq!(all(&doc, &format!("{base}/portRange/from")), ["443"]);
        assert_eq!(all(&doc, &format!("{base}/icmpTypeCode/type")), ["-1"]);
    }

    #[test]
    fn entry_refusals_change_nothing() {
        let mut lab = Lab::new();
        let vpc = lab.vpc("10.0.0.0/16");
        let a = acl(&mut lab, &vpc);
        lab.ok("CreateNetworkAclEntry", &entry(&a, "100", "false", &[]));
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (entry(&a, "100", "false", &[]), "NetworkAclEntryAlreadyExists"),
            (entry(&a, "0", "false", &[]), "InvalidParameterValue"),
            (entry(&a, "32767", "false", &[]), "InvalidParameterValue"),
            (entry(&a, "x", "false", &[]), "InvalidParameterValue"),
            (entry(&a, "", "false", &[]), "MissingParameter"),
            (entry(&a, "101", "", &[]), "MissingParameter"),
            (entry(&a, "101", "false", &[("Protocol", "50")]), "InvalidParameterValue"),
            (entry(&a, "101", "false", &[("RuleAction", "drop")]), "InvalidParameterValue"),
            (entry(&a, "101", "false", &[("CidrBlock", "10.0.0.1/16")]), "InvalidParameterValue"),
            (entry(&a, "101", "false", &[("CidrBlock", ""), ("Ipv6CidrBlock", "::/0")]), "InvalidParameterValue"),
            (entry(&a, "101", "false", &[("CidrBlock", "")]), "MissingParameter"),
            (entry(&a, "101", "false", &[("PortRange.To", "")]), "MissingParameter"),
            (entry(&a, "101", "false", &[("PortRange.From", "444")]), "InvalidParameterValue"),
            (entry(&a, "101", "false", &[("PortRange.To", "65536")]), "InvalidParameterValue"),
            (entry(&a, "101", "false", &[("Protocol", "1"), ("Icmp.Type", "300")]), "InvalidParameterValue"),
            (entry("acl-12345678", "101", "false", &[]), "InvalidNetworkAclID.NotFound"),
            (entry("acl-x", "101", "false", &[]), "InvalidNetworkAclID.Malformed"),
        ];
        for (params, code) in &cases {
            assert_eq!(lab.err("CreateNetworkAclEntry", params).code, *code, "{params:?}");
        }
        assert_eq!(
            lab.err("ReplaceNetworkAclEntry", &entry(&a, "100", "true", &[])).code,
            "InvalidNetworkAclEntry.NotFound"
        );
        assert_eq!(lab.err("ReplaceNetworkAclEntry", &entry(&a, "32767", "false", &[])).code, "InvalidParameterValue");
        let delete = |rule, egress| vec![("NetworkAclId", a.as_str()), ("RuleNumber", rule), ("Egress", egress)];
        assert_eq!(lab.err("DeleteNetworkAclEntry", &delete("100", "true")).code, "InvalidNetworkAclEntry.NotFound");
        assert_eq!(lab.err("DeleteNetworkAclEntry", &delete("32767", "true")).code, "InvalidParameterValue");
        assert_eq!(lab.ec2.network_acls[&a].entries.len(), 3);
    }

    #[test]
    fn a_direction_holds_at_most_the_quota_of_entries() {
        let mut lab = Lab::new();
        let vpc = lab.vpc("10.0.0.0/16");
        let a = acl(&mut lab, &vpc);
        let limit = crate::filter::Quotas::default().nacl_entries_per_direction;
        let numbers: Vec<String> = (1..=limit + 1).map(|n| n.to_string()).collect();
        for n in &numbers[..limit] {
            lab.ok("CreateNetworkAclEntry", &entry(&a, n, "false", &[]));
        }
        let over = entry(&a, &numbers[limit], "false", &[]);
        assert_eq!(lab.err("CreateNetworkAclEntry", &over).code, "NetworkAclEntryLimitExceeded");
        lab.ok("CreateNetworkAclEntry", &entry(&a, "1", "true", &[]));
    }

    #[test]
    fn associations_move_between_nacls_of_the_vpc() {
        let mut lab = Lab::new();
        let vpc = lab.vpc("10.0.0.0/16");
        let default = lab.ec2.vpcs[&vpc].default_network_acl.clone();
        let subnet = lab.subnet(&vpc, "10.0.1.0/24", "us-east-1a");
        let old = lab.ec2.subnets[&subnet].network_acl_association.clone();
        let a = acl(&mut lab, &vpc);
        let doc = lab.ok("DescribeNetworkAcls", &[("NetworkAclId.1", &default)]);
        let assoc = "DescribeNetworkAclsResponse/networkAclSet/item/associationSet/item";
        assert_eq!(all(&doc, &format!("{assoc}/subnetId")), [subnet.as_str()]);
        assert_eq!(all(&doc, &format!("{assoc}/networkAclAssociationId")), [old.as_str()]);
        let doc = lab.ok("ReplaceNetworkAclAssociation", &[("AssociationId", &old), ("NetworkAclId", &a)]);
        let new = at(&doc, "ReplaceNetworkAclAssociationResponse/newAssociationId").unwrap();
        assert_ne!(new, old);
        assert!(IdKind::NetworkAclAssociation.is_well_formed(&new));
        assert_eq!(lab.ec2.subnets[&subnet].network_acl, a);
        assert_eq!(lab.ec2.subnets[&subnet].network_acl_association, new);
        let doc = lab.ok("DescribeNetworkAcls", &[("NetworkAclId.1", &a)]);
        assert_eq!(all(&doc, &format!("{assoc}/subnetId")), [subnet.as_str()]);
        assert_eq!(all(&doc, &format!("{assoc}/networkAclId")), [a.as_str()]);
        // The old association id is gone; a NACL of another VPC is refused.
        let gone = [("AssociationId", old.as_str()), ("NetworkAclId", default.as_str())];
        assert_eq!(lab.err("ReplaceNetworkAclAssociation", &gone).code, "InvalidAssociationID.NotFound");
        let elsewhere = lab.vpc("10.1.0.0/16");
        let far = acl(&mut lab, &elsewhere);
        let cross = [("AssociationId", new.as_str()), ("NetworkAclId", far.as_str())];
        assert_eq!(lab.err("ReplaceNetworkAclAssociation", &cross).code, "InvalidParameterValue");
        let bad = [("AssociationId", "aclassoc-x"), ("NetworkAclId", far.as_str())];
        assert_eq!(lab.err("ReplaceNetworkAclAssociation", &bad).code, "InvalidAssociationID.Malformed");
        let unknown = [("AssociationId", new.as_str()), ("NetworkAclId", "acl-12345678")];
        assert_eq!(lab.err("ReplaceNetworkAclAssociation", &unknown).code, "InvalidNetworkAclID.NotFound");
        lab.ok("ReplaceNetworkAclAssociation", &[("AssociationId", &new), ("NetworkAclId", &default)]);
        assert_eq!(lab.ec2.subnets[&subnet].network_acl, default);
    }

    #[test]
    fn delete_refuses_the_default_and_associated_nacls() {
        let mut lab = Lab::new();
        let vpc = lab.vpc("10.0.0.0/16");
        let default = lab.ec2.vpcs[&vpc].default_network_acl.clone();
        assert_eq!(lab.err("DeleteNetworkAcl", &[("NetworkAclId", &default)]).code, "InvalidParameterValue");
        let subnet = lab.subnet(&vpc, "10.0.1.0/24", "us-east-1a");
        let a = acl(&mut lab, &vpc);
        let assoc = lab.ec2.subnets[&subnet].network_acl_association.clone();
        let moved = lab.field(
            "ReplaceNetworkAclAssociation",
            &[("AssociationId", &assoc), ("NetworkAclId", &a)],
            "ReplaceNetworkAclAssociationResponse/newAssociationId",
        );
        assert_eq!(lab.err("DeleteNetworkAcl", &[("NetworkAclId", &a)]).code, "DependencyViolation");
        lab.ok("ReplaceNetworkAclAssociation", &[("AssociationId", &moved), ("NetworkAclId", &default)]);
        lab.ok("CreateTags", &[("ResourceId.1", &a), ("Tag.1.Key", "k")]);
        assert_eq!(
            lab.err("DeleteNetworkAcl", &[("NetworkAclId", "acl-12345678")]).code,
            "InvalidNetworkAclID.NotFound"
        );
        let doc = lab.ok("DeleteNetworkAcl", &[("NetworkAclId", &a)]);
        assert_eq!(at(&doc, "DeleteNetworkAclResponse/return").unwrap(), "true");
        assert!(!lab.ec2.network_acls.contains_key(&a) && !lab.ec2.tags.contains_key(&a));
    }

    #[test]
    fn describe_nacls_filters_and_pages() {
        let mut lab = Lab::new();
        let vpc = lab.vpc("10.0.0.0/16");
        let default = lab.ec2.vpcs[&vpc].default_network_acl.clone();
        let subnet = lab.subnet(&vpc, "10.0.1.0/24", "us-east-1a");
        let assoc = lab.ec2.subnets[&subnet].network_acl_association.clone();
        let a = acl(&mut lab, &vpc);
        lab.ok(
            "CreateNetworkAclEntry",
            &entry(&a, "120", "true", &[("RuleAction", "deny"), ("CidrBlock", "192.0.2.0/24")]),
        );
        lab.ok("CreateTags", &[("ResourceId.1", &a), ("Tag.1.Key", "Name"), ("Tag.1.Value", "strict")]);
        let base = "DescribeNetworkAclsResponse/networkAclSet/item";
        let by = |lab: &mut Lab, name: &str, value: &str| {
            let doc = lab.ok("DescribeNetworkAcls", &[("Filter.1.Name", name), ("Filter.1.Value.1", value)]);
            all(&doc, &format!("{base}/networkAclId"))
        };
        assert_eq!(by(&mut lab, "network-acl-id", &a), [a.as_str()]);
        assert_eq!(by(&mut lab, "vpc-id", &vpc).len(), 2);
        assert_eq!(by(&mut lab, "default", "true"), [default.as_str()]);
        assert_eq!(by(&mut lab, "default", "false"), [a.as_str()]);
        assert_eq!(by(&mut lab, "association.subnet-id", &subnet), [default.as_str()]);
        assert_eq!(by(&mut lab, "association.association-id", &assoc), [default.as_str()]);
        assert_eq!(by(&mut lab, "entry.rule-number", "120"), [a.as_str()]);
        assert_eq!(by(&mut lab, "entry.rule-number", "100"), [default.as_str()]);
        assert_eq!(by(&mut lab, "entry.cidr", "192.0.2.0/24"), [a.as_str()]);
        assert_eq!(by(&mut lab, "entry.protocol", "6"), [a.as_str()]);
        assert_eq!(by(&mut lab, "entry.rule-action", "allow"), [default.as_str()]);
        assert_eq!(by(&mut lab, "entry.egress", "true").len(), 2);
        assert_eq!(by(&mut lab, "tag:Name", "strict"), [a.as_str()]);
        let doc = lab.ok("DescribeNetworkAcls", &[("NetworkAclId.1", &default)]);
        assert_eq!(at(&doc, &format!("{base}/default")).unwrap(), "true");
        assert_eq!(at(&doc, &format!("{base}/ownerId")).unwrap(), ACCOUNT_ID);
        assert_eq!(all(&doc, &format!("{base}/entrySet/item/ruleNumber")), ["100", "32767", "100", "32767"]);
        let bad = [("Filter.1.Name", "entry.nope"), ("Filter.1.Value.1", "x")];
        assert_eq!(lab.err("DescribeNetworkAcls", &bad).code, "InvalidParameterValue");
        assert_eq!(
            lab.err("DescribeNetworkAcls", &[("NetworkAclId.1", "acl-12345678")]).code,
            "InvalidNetworkAclID.NotFound"
        );
        for _ in 0..4 {
            acl(&mut lab, &vpc);
        }
        let first = lab.ok("DescribeNetworkAcls", &[("MaxResults", "5")]);
        assert_eq!(all(&first, &format!("{base}/networkAclId")).len(), 5);
        let token = at(&first, "DescribeNetworkAclsResponse/nextToken").unwrap();
        let rest = lab.ok("DescribeNetworkAcls", &[("MaxResults", "5"), ("NextToken", &token)]);
        assert_eq!(all(&rest, &format!("{base}/networkAclId")).len(), 1);
    }
}
