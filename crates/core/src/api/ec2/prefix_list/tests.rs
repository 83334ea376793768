use super::*;
use crate::api::ec2::testkit::Lab;
use crate::api::xml::tests::{all, at};

const ROOT: &str = "CreateManagedPrefixListResponse/prefixList";
const LISTED: &str = "DescribeManagedPrefixListsResponse/prefixListSet/item";

/// CreateManagedPrefixList of `name` with `max` entries and `cidrs`.
fn create_params<'a>(name: &'a str, max: &'a str, cidrs: &[&'a str]) -> Vec<(String, String)> {
    let mut p = vec![
        ("PrefixListName".to_string(), name.to_string()),
        ("MaxEntries".to_string(), max.to_string()),
        ("AddressFamily".to_string(), "IPv4".to_string()),
    ];
    for (n, c) in cidrs.iter().enumerate() {
        p.push((format!("Entry.{}.Cidr", n + 1), c.to_string()));
        p.push((format!("Entry.{}.Description", n + 1), format!("entry {n}")));
    }
    p
}

fn refs(p: &[(String, String)]) -> Vec<(&str, &str)> {
    p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn create(lab: &mut Lab, name: &str, max: &str, cidrs: &[&str]) -> String {
    lab.field("CreateManagedPrefixList", &refs(&create_params(name, max, cidrs)), &format!("{ROOT}/prefixListId"))
}

fn entries(lab: &mut Lab, id: &str) -> Vec<String> {
    let doc = lab.ok("GetManagedPrefixListEntries", &[("PrefixListId", id)]);
    all(&doc, "GetManagedPrefixListEntriesResponse/entrySet/item/cidr")
}

fn described(lab: &mut Lab, id: &str, field: &str) -> Option<String> {
    let doc = lab.ok("DescribeManagedPrefixLists", &[("PrefixListId.1", id)]);
    at(&doc, &format!("{LISTED}/{field}"))
}

fn group(lab: &mut Lab, vpc: &str, name: &str) -> String {
    let params = [("VpcId", vpc), ("GroupName", name), ("GroupDescription", "d")];
    lab.field("CreateSecurityGroup", &params, "CreateSecurityGroupResponse/groupId")
}

/// One tcp/443 IpPermission of group `sg` from list `pl`.
fn from_list<'a>(sg: &'a str, pl: &'a str, port: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("GroupId", sg),
        ("IpPermissions.1.IpProtocol", "tcp"),
        ("IpPermissions.1.FromPort", port),
        ("IpPermissions.1.ToPort", port),
        ("IpPermissions.1.PrefixListIds.1.PrefixListId", pl),
        ("IpPermissions.1.PrefixListIds.1.Description", "corp"),
    ]
}

#[test]
fn a_new_list_is_answered_in_progress_and_described_complete() {
    let mut lab = Lab::new();
    let mut p = create_params("corp", "5", &["10.2.0.0/16", "10.1.0.0/16"]);
    p.extend([
        ("TagSpecification.1.ResourceType".to_string(), "prefix-list".to_string()),
        ("TagSpecification.1.Tag.1.Key".to_string(), "Name".to_string()),
        ("TagSpecification.1.Tag.1.Value".to_string(), "corp".to_string()),
    ]);
    let doc = lab.ok("CreateManagedPrefixList", &refs(&p));
    let id = at(&doc, &format!("{ROOT}/prefixListId")).unwrap();
    assert!(IdKind::PrefixList.is_well_formed(&id) && id.len() == "pl-".len() + 17, "{id}");
    assert_eq!(at(&doc, &format!("{ROOT}/state")).unwrap(), "create-in-progress");
    assert_eq!(at(&doc, &format!("{ROOT}/version")).unwrap(), "1");
    assert_eq!(at(&doc, &format!("{ROOT}/maxEntries")).unwrap(), "5");
    assert_eq!(at(&doc, &format!("{ROOT}/addressFamily")).unwrap(), "IPv4");
    assert_eq!(at(&doc, &format!("{ROOT}/ownerId")).unwrap(), ACCOUNT_ID);
    assert_eq!(at(&doc, &format!("{ROOT}/tagSet/item/value")).unwrap(), "corp");
    assert_eq!(
        at(&doc, &format!("{ROOT}/prefixListArn")).unwrap(),
        format!("arn:aws:ec2:us-east-1:{ACCOUNT_ID}:prefix-list/{id}")
    );
    assert_eq!(described(&mut lab, &id, "state").unwrap(), "create-complete");
    assert_eq!(described(&mut lab, &id, "prefixListName").unwrap(), "corp");
    assert_eq!(entries(&mut lab, &id), ["10.1.0.0/16", "10.2.0.0/16"], "in block order");
    let doc = lab.ok("GetManagedPrefixListEntries", &[("PrefixListId", &id)]);
    assert_eq!(
        all(&doc, "GetManagedPrefixListEntriesResponse/entrySet/item/description"),
        ["entry 1", "entry 0"],
        "each block keeps its description"
    );
    let tags = lab.ok("DescribeTags", &[("Filter.1.Name", "resource-id"), ("Filter.1.Value.1", &id)]);
    assert_eq!(all(&tags, "DescribeTagsResponse/tagSet/item/resourceType"), ["prefix-list"]);
    // An empty list is a list.
    let empty = create(&mut lab, "empty", "1", &[]);
    assert!(entries(&mut lab, &empty).is_empty());
}

#[test]
fn creation_is_validated() {
    let mut lab = Lab::new();
    let base = create_params("corp", "2", &["10.0.0.0/16"]);
    let with = |k: &str, v: &str| -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = base.iter().filter(|(n, _)| n != k).cloned().collect();
        if !v.is_empty() {
            p.push((k.to_string(), v.to_string()));
        }
        p
    };
    let over: Vec<String> = (0..101).map(|i| format!("10.{i}.0.0/16")).collect();
    let over_refs: Vec<&str> = over.iter().map(String::as_str).collect();
    let cases: Vec<(Vec<(String, String)>, &str)> = vec![
        (with("PrefixListName", ""), "MissingParameter"),
        (with("PrefixListName", "com.amazonaws.us-east-1.s3"), "InvalidParameterValue"),
        (with("PrefixListName", &"n".repeat(256)), "InvalidParameterValue"),
        (with("MaxEntries", ""), "MissingParameter"),
        (with("MaxEntries", "0"), "InvalidParameterValue"),
        (with("MaxEntries", "1001"), "InvalidParameterValue"),
        (with("MaxEntries", "many"), "InvalidParameterValue"),
        (with("AddressFamily", ""), "MissingParameter"),
        (with("AddressFamily", "IPv6"), "InvalidParameterValue"),
        (with("AddressFamily", "ipx"), "InvalidParameterValue"),
        (with("Entry.1.Cidr", "10.0.0.1/16"), "InvalidParameterValue"),
        (with("Entry.1.Cidr", "2001:db8::/32"), "InvalidParameterValue"),
        (with("Entry.1.Description", &"d".repeat(256)), "InvalidParameterValue"),
        (create_params("corp", "2", &["10.0.0.0/16", "10.0.0.0/16"]), "InvalidParameterValue"),
        (create_params("corp", "2", &["10.0.0.0/16", "10.1.0.0/16", "10.2.0.0/16"]), "PrefixListMaxEntriesExceeded"),
        (create_params("corp", "1000", &over_refs), "InvalidParameterValue"),
    ];
    for (params, code) in &cases {
        assert_eq!(lab.err("CreateManagedPrefixList", &refs(params)).code, *code, "{params:?}");
    }
    assert!(lab.ec2.prefix_lists.is_empty());
}

#[test]
fn a_client_token_makes_one_list_and_the_region_holds_a_hundred() {
    let mut lab = Lab::new();
    let mut p = create_params("corp", "2", &["10.0.0.0/16"]);
    p.push(("ClientToken".into(), "tok".into()));
    let first = lab.field("CreateManagedPrefixList", &refs(&p), &format!("{ROOT}/prefixListId"));
    let again = lab.ok("CreateManagedPrefixList", &refs(&p));
    assert_eq!(at(&again, &format!("{ROOT}/prefixListId")).unwrap(), first);
    assert_eq!(at(&again, &format!("{ROOT}/state")).unwrap(), "create-complete", "the list as it is now");
    assert_eq!(lab.ec2.prefix_lists.len(), 1);
    p[0].1 = "other".into();
    assert_eq!(lab.err("CreateManagedPrefixList", &refs(&p)).code, "IdempotentParameterMismatch");
    for i in 1..MAX_PREFIX_LISTS {
        create(&mut lab, &format!("l{i}"), "1", &[]);
    }
    let last = create_params("one-too-many", "1", &[]);
    assert_eq!(lab.err("CreateManagedPrefixList", &refs(&last)).code, "PrefixListLimitExceeded");
}

#[test]
fn describe_filters_pages_and_tells_unknown_from_malformed() {
    let mut lab = Lab::new();
    let a = create(&mut lab, "corp-a", "2", &[]);
    let b = create(&mut lab, "corp-b", "2", &[]);
    let c = create(&mut lab, "vendor", "2", &[]);
    lab.ok("CreateTags", &[("ResourceId.1", &c), ("Tag.1.Key", "env"), ("Tag.1.Value", "prod")]);
    let by = |lab: &mut Lab, name: &str, value: &str| {
        let doc = lab.ok("DescribeManagedPrefixLists", &[("Filter.1.Name", name), ("Filter.1.Value.1", value)]);
        all(&doc, &format!("{LISTED}/prefixListId"))
    };
    let mut corp = vec![a.clone(), b.clone()];
    corp.sort();
    assert_eq!(by(&mut lab, "prefix-list-name", "corp-*"), corp);
    assert_eq!(by(&mut lab, "prefix-list-id", &b), [b.as_str()]);
    assert_eq!(by(&mut lab, "owner-id", ACCOUNT_ID).len(), 3);
    assert!(by(&mut lab, "owner-id", "AWS").is_empty(), "no AWS-managed lists");
    assert_eq!(by(&mut lab, "tag:env", "prod"), [c.as_str()]);
    let bad = [("Filter.1.Name", "max-entries"), ("Filter.1.Value.1", "2")];
    assert_eq!(lab.err("DescribeManagedPrefixLists", &bad).code, "InvalidParameterValue");
    let doc = lab.ok("DescribeManagedPrefixLists", &[("PrefixListId.1", &c), ("PrefixListId.2", &a)]);
    assert_eq!(all(&doc, &format!("{LISTED}/prefixListId")).len(), 2);
    let unknown = [("PrefixListId.1", "pl-0123456789abcdef0")];
    assert_eq!(lab.err("DescribeManagedPrefixLists", &unknown).code, "InvalidPrefixListID.NotFound");
    assert_eq!(
        lab.err("DescribeManagedPrefixLists", &[("PrefixListId.1", "pl-xyz")]).code,
        "InvalidPrefixListId.Malformed"
    );
    assert_eq!(lab.err("DescribeManagedPrefixLists", &[("MaxResults", "101")]).code, "InvalidParameterValue");
    let first = lab.ok("DescribeManagedPrefixLists", &[("MaxResults", "2")]);
    assert_eq!(all(&first, &format!("{LISTED}/prefixListId")).len(), 2);
    let token = at(&first, "DescribeManagedPrefixListsResponse/nextToken").unwrap();
    let rest = lab.ok("DescribeManagedPrefixLists", &[("MaxResults", "2"), ("NextToken", &token)]);
    assert_eq!(all(&rest, &format!("{LISTED}/prefixListId")).len(), 1);
    assert_eq!(at(&rest, "DescribeManagedPrefixListsResponse/nextToken"), None);
}

#[test]
fn entries_page_and_earlier_versions_stay_readable() {
    let mut lab = Lab::new();
    let id = create(&mut lab, "corp", "10", &["10.0.0.0/16", "192.0.2.0/24", "10.1.0.0/16"]);
    let doc = lab.ok("GetManagedPrefixListEntries", &[("PrefixListId", &id), ("MaxResults", "2")]);
    let base = "GetManagedPrefixListEntriesResponse";
    assert_eq!(all(&doc, &format!("{base}/entrySet/item/cidr")), ["10.0.0.0/16", "10.1.0.0/16"]);
    let token = at(&doc, &format!("{base}/nextToken")).unwrap();
    let rest = lab.ok("GetManagedPrefixListEntries", &[("PrefixListId", &id), ("NextToken", &token)]);
    assert_eq!(all(&rest, &format!("{base}/entrySet/item/cidr")), ["192.0.2.0/24"]);
    lab.ok("ModifyManagedPrefixList", &[("PrefixListId", &id), ("RemoveEntry.1.Cidr", "10.1.0.0/16")]);
    let v1 = lab.ok("GetManagedPrefixListEntries", &[("PrefixListId", &id), ("TargetVersion", "1")]);
    assert_eq!(all(&v1, &format!("{base}/entrySet/item/cidr")).len(), 3);
    let v2 = lab.ok("GetManagedPrefixListEntries", &[("PrefixListId", &id), ("TargetVersion", "2")]);
    assert_eq!(all(&v2, &format!("{base}/entrySet/item/cidr")), ["10.0.0.0/16", "192.0.2.0/24"]);
    for v in ["3", "0", "-1"] {
        let p = [("PrefixListId", id.as_str()), ("TargetVersion", v)];
        assert_eq!(lab.err("GetManagedPrefixListEntries", &p).code, "InvalidParameterValue", "{v}");
    }
    let p = [("PrefixListId", "pl-12345678")];
    assert_eq!(lab.err("GetManagedPrefixListEntries", &p).code, "InvalidPrefixListID.NotFound");
    assert_eq!(lab.err("GetManagedPrefixListEntries", &[]).code, "MissingParameter");
}

#[test]
fn modify_makes_versions_and_checks_what_it_is_given() {
    let mut lab = Lab::new();
    let id = create(&mut lab, "corp", "3", &["10.0.0.0/16"]);
    let add = [
        ("PrefixListId", id.as_str()),
        ("CurrentVersion", "1"),
        ("AddEntry.1.Cidr", "10.1.0.0/16"),
        ("AddEntry.1.Description", "b"),
    ];
    let doc = lab.ok("ModifyManagedPrefixList", &add);
    let root = "ModifyManagedPrefixListResponse/prefixList";
    assert_eq!(at(&doc, &format!("{root}/state")).unwrap(), "modify-in-progress");
    assert_eq!(at(&doc, &format!("{root}/version")).unwrap(), "1", "AWS answers the version it started from");
    assert_eq!(described(&mut lab, &id, "state").unwrap(), "modify-complete");
    assert_eq!(described(&mut lab, &id, "version").unwrap(), "2");
    assert_eq!(entries(&mut lab, &id), ["10.0.0.0/16", "10.1.0.0/16"]);
    // Refused, each changing nothing.
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (add.to_vec(), "PrefixListVersionMismatch"),
        (vec![("PrefixListId", &id), ("AddEntry.1.Cidr", "10.0.0.0/16")], "InvalidPrefixListModification"),
        (vec![("PrefixListId", &id), ("RemoveEntry.1.Cidr", "10.9.0.0/16")], "InvalidPrefixListModification"),
        (
            vec![("PrefixListId", &id), ("AddEntry.1.Cidr", "10.2.0.0/16"), ("AddEntry.2.Cidr", "10.3.0.0/16")],
            "PrefixListMaxEntriesExceeded",
        ),
        (
            vec![("PrefixListId", &id), ("AddEntry.1.Cidr", "10.2.0.0/16"), ("MaxEntries", "5")],
            "InvalidParameterCombination",
        ),
        (vec![("PrefixListId", &id), ("MaxEntries", "1")], "InvalidParameterValue"),
        (vec![("PrefixListId", &id), ("MaxEntries", "1001")], "InvalidParameterValue"),
        (vec![("PrefixListId", &id), ("AddEntry.1.Cidr", "10.2.0.1/16")], "InvalidParameterValue"),
        (vec![("PrefixListId", &id), ("PrefixListName", "com.amazonaws.x")], "InvalidParameterValue"),
        (vec![("PrefixListId", &id)], "MissingParameter"),
        (vec![("PrefixListId", "pl-12345678"), ("PrefixListName", "x")], "InvalidPrefixListID.NotFound"),
        (vec![("PrefixListId", "pl-12"), ("PrefixListName", "x")], "InvalidPrefixListId.Malformed"),
    ];
    for (params, code) in &cases {
        assert_eq!(lab.err("ModifyManagedPrefixList", params).code, *code, "{params:?}");
    }
    let many: Vec<(String, String)> =
        (0..101).map(|i| (format!("RemoveEntry.{}.Cidr", i + 1), "10.0.0.0/16".into())).collect();
    let mut p = vec![("PrefixListId", id.as_str())];
    p.extend(refs(&many));
    assert_eq!(lab.err("ModifyManagedPrefixList", &p).code, "InvalidParameterValue");
    // Removals come first: one call replaces a description.
    let replace = [
        ("PrefixListId", id.as_str()),
        ("RemoveEntry.1.Cidr", "10.1.0.0/16"),
        ("AddEntry.1.Cidr", "10.1.0.0/16"),
        ("AddEntry.1.Description", "renamed"),
    ];
    lab.ok("ModifyManagedPrefixList", &replace);
    assert_eq!(lab.ec2.prefix_lists[&id].entries[1].description.as_deref(), Some("renamed"));
    assert_eq!(lab.ec2.prefix_lists[&id].version, 3);
    // A rename and a resize make no version.
    lab.ok("ModifyManagedPrefixList", &[("PrefixListId", &id), ("PrefixListName", "corp-2")]);
    lab.ok("ModifyManagedPrefixList", &[("PrefixListId", &id), ("MaxEntries", "2"), ("CurrentVersion", "3")]);
    let l = &lab.ec2.prefix_lists[&id];
    assert_eq!((l.name.as_str(), l.max_entries, l.version), ("corp-2", 2, 3));
}

#[test]
fn rules_name_lists_and_count_their_max_entries() {
    let mut lab = Lab::new();
    let vpc = lab.vpc("10.0.0.0/16");
    let sg = group(&mut lab, &vpc, "web");
    let pl = create(&mut lab, "corp", "50", &["192.0.2.0/24"]);
    let doc = lab.ok("AuthorizeSecurityGroupIngress", &from_list(&sg, &pl, "443"));
    let item = "AuthorizeSecurityGroupIngressResponse/securityGroupRuleSet/item";
    assert_eq!(at(&doc, &format!("{item}/prefixListId")).unwrap(), pl);
    assert_eq!(at(&doc, &format!("{item}/description")).unwrap(), "corp");
    let doc = lab.ok("DescribeSecurityGroups", &[("GroupId.1", &sg)]);
    let perm = "DescribeSecurityGroupsResponse/securityGroupInfo/item/ipPermissions/item";
    assert_eq!(all(&doc, &format!("{perm}/prefixListIds/item/prefixListId")), [pl.as_str()]);
    assert_eq!(all(&doc, &format!("{perm}/prefixListIds/item/description")), ["corp"]);
    let by = [("Filter.1.Name", "ip-permission.prefix-list-id"), ("Filter.1.Value.1", pl.as_str())];
    let doc = lab.ok("DescribeSecurityGroups", &by);
    assert_eq!(all(&doc, "DescribeSecurityGroupsResponse/securityGroupInfo/item/groupId"), [sg.as_str()]);
    let rule = lab.ec2.security_groups[&sg].ingress[0].id.clone();
    let doc = lab.ok("DescribeSecurityGroupRules", &[("SecurityGroupRuleId.1", &rule)]);
    let r = "DescribeSecurityGroupRulesResponse/securityGroupRuleSet/item";
    assert_eq!(at(&doc, &format!("{r}/prefixListId")).unwrap(), pl);
    assert_eq!(at(&doc, &format!("{r}/cidrIpv4")), None);
    assert_eq!(
        lab.err("AuthorizeSecurityGroupIngress", &from_list(&sg, &pl, "443")).code,
        "InvalidPermission.Duplicate"
    );
    let unknown = from_list(&sg, "pl-0123456789abcdef0", "22");
    assert_eq!(lab.err("AuthorizeSecurityGroupIngress", &unknown).code, "InvalidPrefixListId.NotFound");
    let malformed = from_list(&sg, "pl-nope", "22");
    assert_eq!(lab.err("AuthorizeSecurityGroupIngress", &malformed).code, "InvalidPrefixListId.Malformed");
    // The list weighs 50 of the 60: ten more rules fit, the eleventh does not.
    for port in 1..=10 {
        let port = port.to_string();
        let p = [
            ("GroupId", sg.as_str()),
            ("IpPermissions.1.IpProtocol", "tcp"),
            ("IpPermissions.1.FromPort", &port),
            ("IpPermissions.1.ToPort", &port),
            ("IpPermissions.1.IpRanges.1.CidrIp", "10.0.0.0/16"),
        ];
        lab.ok("AuthorizeSecurityGroupIngress", &p);
    }
    assert_eq!(
        lab.err("AuthorizeSecurityGroupIngress", &from_list(&sg, &pl, "22")).code,
        "RulesPerSecurityGroupLimitExceeded"
    );
    // Egress has its own count.
    let mut out = from_list(&sg, &pl, "22");
    out[0] = ("GroupId", &sg);
    lab.ok("AuthorizeSecurityGroupEgress", &out);
    // Revoked by naming the list.
    lab.ok("RevokeSecurityGroupEgress", &out);
    assert_eq!(lab.ec2.security_groups[&sg].egress.len(), 1);
}

#[test]
fn a_resize_a_referencing_group_cannot_take_fails_as_a_state() {
    let mut lab = Lab::new();
    let vpc = lab.vpc("10.0.0.0/16");
    let sg = group(&mut lab, &vpc, "web");
    let pl = create(&mut lab, "corp", "10", &["192.0.2.0/24"]);
    lab.ok("AuthorizeSecurityGroupIngress", &from_list(&sg, &pl, "443"));
    lab.ok("AuthorizeSecurityGroupIngress", &from_list(&sg, &pl, "22"));
    // Two rules of the list: 2 × 30 = 60 fits, 2 × 31 does not.
    lab.ok("ModifyManagedPrefixList", &[("PrefixListId", &pl), ("MaxEntries", "30")]);
    assert_eq!(lab.ec2.prefix_lists[&pl].max_entries, 30);
    let doc =
        lab.ok("ModifyManagedPrefixList", &[("PrefixListId", &pl), ("MaxEntries", "31"), ("PrefixListName", "x")]);
    assert_eq!(at(&doc, "ModifyManagedPrefixListResponse/prefixList/state").unwrap(), "modify-in-progress");
    assert_eq!(described(&mut lab, &pl, "state").unwrap(), "modify-failed");
    assert!(described(&mut lab, &pl, "stateMessage").unwrap().contains(&sg));
    let l = &lab.ec2.prefix_lists[&pl];
    assert_eq!((l.max_entries, l.name.as_str()), (30, "corp"), "nothing else changed");
    // Shrinking always fits, and clears the failure.
    lab.ok("ModifyManagedPrefixList", &[("PrefixListId", &pl), ("MaxEntries", "5")]);
    assert_eq!(described(&mut lab, &pl, "state").unwrap(), "modify-complete");
    assert_eq!(described(&mut lab, &pl, "stateMessage"), None);
}

#[test]
fn a_referenced_list_is_not_deleted() {
    let mut lab = Lab::new();
    let vpc = lab.vpc("10.0.0.0/16");
    let sg = group(&mut lab, &vpc, "web");
    let pl = create(&mut lab, "corp", "2", &["192.0.2.0/24"]);
    lab.ok("CreateTags", &[("ResourceId.1", &pl), ("Tag.1.Key", "Name")]);
    lab.ok("AuthorizeSecurityGroupIngress", &from_list(&sg, &pl, "443"));
    let doc = lab.ok("DeleteManagedPrefixList", &[("PrefixListId", &pl)]);
    assert_eq!(at(&doc, "DeleteManagedPrefixListResponse/prefixList/state").unwrap(), "delete-in-progress");
    assert_eq!(at(&doc, "DeleteManagedPrefixListResponse/prefixList/stateMessage"), None, "no outcome yet");
    assert_eq!(described(&mut lab, &pl, "state").unwrap(), "delete-failed");
    assert!(described(&mut lab, &pl, "stateMessage").unwrap().contains(&sg));
    assert_eq!(entries(&mut lab, &pl), ["192.0.2.0/24"], "still whole");
    lab.ok("RevokeSecurityGroupIngress", &from_list(&sg, &pl, "443"));
    let doc = lab.ok("DeleteManagedPrefixList", &[("PrefixListId", &pl)]);
    assert_eq!(at(&doc, "DeleteManagedPrefixListResponse/prefixList/prefixListId").unwrap(), pl);
    assert!(lab.ec2.prefix_lists.is_empty() && !lab.ec2.tags.contains_key(&pl));
    assert_eq!(lab.err("DeleteManagedPrefixList", &[("PrefixListId", &pl)]).code, "InvalidPrefixListID.NotFound");
    assert_eq!(lab.err("DeleteManagedPrefixList", &[("PrefixListId", "pl")]).code, "InvalidPrefixListId.Malformed");
    assert_eq!(lab.err("DeleteManagedPrefixList", &[]).code, "MissingParameter");
    // A group that goes takes its references with it.
    let pl = create(&mut lab, "corp", "2", &[]);
    lab.ok("AuthorizeSecurityGroupIngress", &from_list(&sg, &pl, "443"));
    lab.ok("DeleteSecurityGroup", &[("GroupId", &sg)]);
    lab.ok("DeleteManagedPrefixList", &[("PrefixListId", &pl)]);
    assert!(lab.ec2.prefix_lists.is_empty());
}

#[test]
fn there_are_no_aws_managed_lists() {
    let mut lab = Lab::new();
    let own = create(&mut lab, "corp", "2", &[]);
    let doc = lab.ok("DescribePrefixLists", &[]);
    assert!(all(&doc, "DescribePrefixListsResponse/prefixListSet/item/prefixListId").is_empty());
    let named = [("Filter.1.Name", "prefix-list-name"), ("Filter.1.Value.1", "com.amazonaws.us-east-1.s3")];
    assert!(all(&lab.ok("DescribePrefixLists", &named), "DescribePrefixListsResponse/prefixListSet/item").is_empty());
    assert_eq!(lab.err("DescribePrefixLists", &[("PrefixListId.1", &own)]).code, "InvalidPrefixListId.NotFound");
    assert_eq!(lab.err("DescribePrefixLists", &[("PrefixListId.1", "pl-q")]).code, "InvalidPrefixListId.Malformed");
    let bad = [("Filter.1.Name", "cidr"), ("Filter.1.Value.1", "x")];
    assert_eq!(lab.err("DescribePrefixLists", &bad).code, "InvalidParameterValue");
}

#[test]
fn a_model_stored_before_prefix_lists_still_loads() {
    let mut lab = Lab::new();
    lab.vpc("10.0.0.0/16");
    let mut v = serde_json::to_value(&lab.ec2).unwrap();
    assert!(v.as_object_mut().unwrap().remove("prefix_lists").is_some());
    let back: Ec2 = serde_json::from_value(v).unwrap();
    assert_eq!(back, lab.ec2);
}
