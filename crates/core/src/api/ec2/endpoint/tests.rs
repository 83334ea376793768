use super::DELETED_RETENTION;
use crate::api::ec2::testkit::Lab;
use crate::api::xml::tests::{all, at};

/// A VPC with DNS hostnames on and subnets in two AZs, plus one more in the first AZ.
fn lab() -> (Lab, String, [String; 3]) {
    let mut lab = Lab::new();
    let vpc = lab.vpc("10.0.0.0/16");
    lab.ok("ModifyVpcAttribute", &[("VpcId", &vpc), ("EnableDnsHostnames.Value", "true")]);
    let a = lab.subnet(&vpc, "10.0.1.0/24", "us-east-1a");
    let b = lab.subnet(&vpc, "10.0.2.0/24", "us-east-1b");
    let a2 = lab.subnet(&vpc, "10.0.3.0/24", "us-east-1a");
    (lab, vpc, [a, b, a2])
}

fn create<'a>(vpc: &'a str, service: &'a str, subnets: &[&'a str]) -> Vec<(&'a str, &'a str)> {
    let keys = ["SubnetId.1", "SubnetId.2", "SubnetId.3"];
    let mut p = vec![("VpcId", vpc), ("ServiceName", service), ("VpcEndpointType", "Interface")];
    p.extend(keys.iter().copied().zip(subnets.iter().copied()));
    p
}

#[test]
fn an_endpoint_gets_one_eni_per_subnet_inside_it_and_its_names() {
    let (mut lab, vpc, [a, b, _]) = lab();
    let doc = lab.ok("CreateVpcEndpoint", &create(&vpc, "com.amazonaws.us-east-1.ec2", &[&a, &b]));
    let root = "CreateVpcEndpointResponse/vpcEndpoint";
    assert_eq!(at(&doc, &format!("{root}/state")).unwrap(), "pending");
    assert_eq!(at(&doc, &format!("{root}/privateDnsEnabled")).unwrap(), "true");
    let default_sg = lab.ec2.vpcs[&vpc].default_security_group.clone();
    assert_eq!(all(&doc, &format!("{root}/groupSet/item/groupId")), [default_sg]);
    let names = all(&doc, &format!("{root}/dnsEntrySet/item/dnsName"));
    let id = at(&doc, &format!("{root}/vpcEndpointId")).unwrap();
    assert_eq!(names.len(), 4, "regional, two zonal, the private name: {names:?}");
    assert!(names[0].starts_with(&format!("{id}-")) && names[0].ends_with(".ec2.us-east-1.vpce.amazonaws.com"));
    assert!(names[1].contains("-us-east-1a.ec2.us-east-1.vpce.amazonaws.com"));
    assert_eq!(names[3], "ec2.us-east-1.amazonaws.com");
    let enis = lab.ok("DescribeNetworkInterfaces", &[("Filter.1.Name", "vpc-id"), ("Filter.1.Value.1", &vpc)]);
    let item = "DescribeNetworkInterfacesResponse/networkInterfaceSet/item";
    assert_eq!(all(&enis, &format!("{item}/privateIpAddress")), ["10.0.1.4", "10.0.2.4"]);
    assert_eq!(at(&enis, &format!("{item}/interfaceType")).unwrap(), "vpc_endpoint");
    assert_eq!(at(&enis, &format!("{item}/requesterManaged")).unwrap(), "true");
    assert_eq!(at(&enis, &format!("{item}/description")).unwrap(), format!("VPC Endpoint Interface {id}"));
    let described = lab.ok("DescribeVpcEndpoints", &[("VpcEndpointId.1", &id)]);
    assert_eq!(at(&described, "DescribeVpcEndpointsResponse/vpcEndpointSet/item/state").unwrap(), "available");
    let eni = all(&enis, &format!("{item}/networkInterfaceId"));
    assert_eq!(lab.err("DeleteNetworkInterface", &[("NetworkInterfaceId", &eni[0])]).code, "OperationNotPermitted");
    assert_eq!(lab.err("DeleteSubnet", &[("SubnetId", &a)]).code, "DependencyViolation");
}

#[test]
fn creation_is_validated_as_ec2_validates_it() {
    let (mut lab, vpc, [a, b, a2]) = lab();
    let other_vpc = lab.vpc("10.1.0.0/16");
    let other_subnet = lab.subnet(&other_vpc, "10.1.1.0/24", "us-east-1c");
    let ec2 = "com.amazonaws.us-east-1.ec2";
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (create(&vpc, "com.amazonaws.us-east-1.nope", &[&a]), "InvalidServiceName"),
        (create(&vpc, "com.amazonaws.us-west-2.ec2", &[&a]), "InvalidServiceName"),
        (create(&vpc, ec2, &[&a, &a2]), "DuplicateSubnetsInSameZone"),
        (create(&vpc, ec2, &[&other_subnet]), "InvalidParameter"),
        (create(&vpc, ec2, &["subnet-zz"]), "InvalidSubnetID.Malformed"),
        (create(&vpc, ec2, &["subnet-12345678"]), "InvalidSubnetID.NotFound"),
        ([create(&vpc, ec2, &[&a]), vec![("SecurityGroupId.1", "sg-12345678")]].concat(), "InvalidGroup.NotFound"),
        ([create(&vpc, ec2, &[&a]), vec![("IpAddressType", "dualstack")]].concat(), "InvalidParameterValue"),
        ([create(&vpc, ec2, &[&a]), vec![("PolicyDocument", "{not json")]].concat(), "InvalidPolicyDocument"),
        (
            create(&vpc, "com.amazonaws.us-east-1.s3", &[&a])
                .into_iter()
                .chain([("PrivateDnsEnabled", "true")])
                .collect(),
            "InvalidParameter",
        ),
        (vec![("VpcId", vpc.as_str()), ("ServiceName", ec2)], "InvalidParameter"),
    ];
    for (params, code) in &cases {
        assert_eq!(lab.err("CreateVpcEndpoint", params).code, *code, "{params:?}");
    }
    let s3 = lab.ok("CreateVpcEndpoint", &create(&vpc, "com.amazonaws.us-east-1.s3", &[&b]));
    assert_eq!(at(&s3, "CreateVpcEndpointResponse/vpcEndpoint/privateDnsEnabled").unwrap(), "false", "S3 has none");
    lab.ok("CreateVpcEndpoint", &create(&vpc, ec2, &[&a]));
    let clash = lab.err("CreateVpcEndpoint", &create(&vpc, ec2, &[&b]));
    assert_eq!(clash.code, "InvalidParameter", "{clash}");
    assert!(clash.message.contains("conflicting DNS domain"));
    // Without DNS hostnames in the VPC, private DNS is refused, as at AWS.
    lab.ok("ModifyVpcAttribute", &[("VpcId", &other_vpc), ("EnableDnsHostnames.Value", "false")]);
    assert_eq!(lab.err("CreateVpcEndpoint", &create(&other_vpc, ec2, &[&other_subnet])).code, "InvalidParameter");
}

#[test]
fn a_client_token_makes_one_endpoint() {
    let (mut lab, vpc, [a, b, _]) = lab();
    let mut p = create(&vpc, "com.amazonaws.us-east-1.sts", &[&a]);
    p.push(("ClientToken", "tok-1"));
    let first = lab.field("CreateVpcEndpoint", &p, "CreateVpcEndpointResponse/vpcEndpoint/vpcEndpointId");
    let again = lab.field("CreateVpcEndpoint", &p, "CreateVpcEndpointResponse/vpcEndpoint/vpcEndpointId");
    assert_eq!(first, again);
    assert_eq!(lab.ec2.endpoints.len(), 1);
    let mut other = create(&vpc, "com.amazonaws.us-east-1.sts", &[&b]);
    other.push(("ClientToken", "tok-1"));
    assert_eq!(lab.err("CreateVpcEndpoint", &other).code, "IdempotentParameterMismatch");
}

#[test]
fn modify_adds_and_removes_enis_groups_dns_and_policy() {
    let (mut lab, vpc, [a, b, a2]) = lab();
    let id = lab.field(
        "CreateVpcEndpoint",
        &create(&vpc, "com.amazonaws.us-east-1.ec2", &[&a]),
        "CreateVpcEndpointResponse/vpcEndpoint/vpcEndpointId",
    );
    let first_ip = lab.ec2.network_interfaces.values().next().unwrap().ip;
    lab.ok("ModifyVpcEndpoint", &[("VpcEndpointId", &id), ("AddSubnetId.1", &b)]);
    assert_eq!(lab.ec2.network_interfaces.len(), 2);
    assert_eq!(
        lab.ec2.network_interfaces.values().find(|n| n.subnet == a).unwrap().ip,
        first_ip,
        "an ENI keeps its address while its subnet stays"
    );
    assert_eq!(
        lab.err("ModifyVpcEndpoint", &[("VpcEndpointId", &id), ("AddSubnetId.1", &a2)]).code,
        "DuplicateSubnetsInSameZone"
    );
    lab.ok("ModifyVpcEndpoint", &[("VpcEndpointId", &id), ("RemoveSubnetId.1", &a), ("AddSubnetId.1", &a2)]);
    let subnets: Vec<&str> = lab.ec2.network_interfaces.values().map(|n| n.subnet.as_str()).collect();
    assert_eq!(subnets.len(), 2);
    assert!(subnets.contains(&b.as_str()) && subnets.contains(&a2.as_str()));
    lab.ok("ModifyVpcEndpoint", &[("VpcEndpointId", &id), ("PrivateDnsEnabled", "false")]);
    assert!(!lab.ec2.endpoints[&id].private_dns);
    let policy = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"ec2:Describe*","Resource":"*"}]}"#;
    lab.ok("ModifyVpcEndpoint", &[("VpcEndpointId", &id), ("PolicyDocument", policy)]);
    assert_eq!(lab.ec2.endpoints[&id].policy.as_deref(), Some(policy));
    let both = [("VpcEndpointId", id.as_str()), ("PolicyDocument", policy), ("ResetPolicy", "true")];
    assert_eq!(lab.err("ModifyVpcEndpoint", &both).code, "InvalidParameterCombination");
    lab.ok("ModifyVpcEndpoint", &[("VpcEndpointId", &id), ("ResetPolicy", "true")]);
    assert_eq!(lab.ec2.endpoints[&id].policy, None);
    let default_sg = lab.ec2.vpcs[&vpc].default_security_group.clone();
    assert_eq!(
        lab.err("ModifyVpcEndpoint", &[("VpcEndpointId", &id), ("RemoveSecurityGroupId.1", &default_sg)]).code,
        "InvalidParameter",
        "an endpoint keeps a group"
    );
}

#[test]
fn describe_filters_pages_and_delete_reports_unknown_ids() {
    let (mut lab, vpc, [a, b, _]) = lab();
    let mut ids = Vec::new();
    for (i, service) in ["sts", "ssm", "logs", "kms", "sqs"].iter().enumerate() {
        let name = format!("com.amazonaws.us-east-1.{service}");
        let mut p = create(&vpc, &name, &[if i % 2 == 0 { &a } else { &b }]);
        let tag_value = format!("ep-{i}");
        p.extend([
            ("TagSpecification.1.ResourceType", "vpc-endpoint"),
            ("TagSpecification.1.Tag.1.Key", "Name"),
            ("TagSpecification.1.Tag.1.Value", &tag_value),
        ]);
        ids.push(lab.field("CreateVpcEndpoint", &p, "CreateVpcEndpointResponse/vpcEndpoint/vpcEndpointId"));
    }
    let by_service = lab
        .ok("DescribeVpcEndpoints", &[("Filter.1.Name", "service-name"), ("Filter.1.Value.1", "com.amazonaws.*.s?s")]);
    assert_eq!(
        all(&by_service, "DescribeVpcEndpointsResponse/vpcEndpointSet/item/serviceName").len(),
        2,
        "sts and sqs"
    );
    let by_tag = lab.ok("DescribeVpcEndpoints", &[("Filter.1.Name", "tag:Name"), ("Filter.1.Value.1", "ep-3")]);
    assert_eq!(all(&by_tag, "DescribeVpcEndpointsResponse/vpcEndpointSet/item/vpcEndpointId"), [ids[3].clone()]);
    let page = lab.ok("DescribeVpcEndpoints", &[("MaxResults", "2")]);
    let token = at(&page, "DescribeVpcEndpointsResponse/nextToken").expect("more pages");
    let rest = lab.ok("DescribeVpcEndpoints", &[("MaxResults", "10"), ("NextToken", &token)]);
    assert_eq!(all(&rest, "DescribeVpcEndpointsResponse/vpcEndpointSet/item/vpcEndpointId").len(), 3);
    let doc = lab.ok(
        "DeleteVpcEndpoints",
        &[("VpcEndpointId.1", &ids[0]), ("VpcEndpointId.2", "vpce-12345678"), ("VpcEndpointId.3", "bogus")],
    );
    assert_eq!(all(&doc, "DeleteVpcEndpointsResponse/unsuccessful/item/resourceId"), ["vpce-12345678", "bogus"]);
    assert_eq!(
        all(&doc, "DeleteVpcEndpointsResponse/unsuccessful/item/error/code"),
        ["InvalidVpcEndpointId.NotFound", "InvalidVpcEndpointId.Malformed"]
    );
    assert!(!lab.ec2.endpoints.contains_key(&ids[0]));
    assert_eq!(lab.ec2.network_interfaces.len(), 4, "its ENI went with it");
}

#[test]
fn the_service_catalog_is_described_with_its_zones() {
    let mut lab = Lab::new();
    let doc = lab.ok("DescribeVpcEndpointServices", &[("ServiceName.1", "com.amazonaws.us-east-1.ec2")]);
    let item = "DescribeVpcEndpointServicesResponse/serviceDetailSet/item";
    assert_eq!(at(&doc, &format!("{item}/privateDnsName")).unwrap(), "ec2.us-east-1.amazonaws.com");
    assert_eq!(all(&doc, &format!("{item}/availabilityZoneSet/item")).len(), 6);
    let all_services = lab.ok("DescribeVpcEndpointServices", &[]);
    assert!(all(&all_services, "DescribeVpcEndpointServicesResponse/serviceNameSet/item").len() > 10);
    assert_eq!(
        lab.err("DescribeVpcEndpointServices", &[("ServiceName.1", "com.amazonaws.us-east-1.nope")]).code,
        "InvalidServiceName"
    );
}

const ITEM: &str = "DescribeVpcEndpointsResponse/vpcEndpointSet/item";

fn listed(lab: &mut Lab, params: &[(&str, &str)]) -> Vec<String> {
    all(&lab.ok("DescribeVpcEndpoints", params), &format!("{ITEM}/vpcEndpointId"))
}

#[test]
fn a_deleted_endpoint_leaves_the_data_plane_and_is_listed_as_deleted() {
    let (mut lab, vpc, [a, b, _]) = lab();
    let web = lab.field(
        "CreateSecurityGroup",
        &[("VpcId", &vpc), ("GroupName", "web"), ("GroupDescription", "d")],
        "CreateSecurityGroupResponse/groupId",
    );
    let mut p = create(&vpc, "com.amazonaws.us-east-1.ec2", &[&a, &b]);
    p.extend([("SecurityGroupId.1", web.as_str()), ("TagSpecification.1.ResourceType", "vpc-endpoint")]);
    p.extend([("TagSpecification.1.Tag.1.Key", "Name"), ("TagSpecification.1.Tag.1.Value", "api")]);
    let id = lab.field("CreateVpcEndpoint", &p, "CreateVpcEndpointResponse/vpcEndpoint/vpcEndpointId");
    let doc = lab.ok("DeleteVpcEndpoints", &[("VpcEndpointId.1", &id)]);
    assert!(all(&doc, "DeleteVpcEndpointsResponse/unsuccessful/item/resourceId").is_empty());
    // Gone from the data plane at once.
    let plan = lab.ec2.vpc_plan(&vpc, &Default::default(), lab.ec2.rule_set_config(&vpc)).unwrap();
    assert!(plan.plan.endpoints.is_empty());
    assert!(lab.ec2.network_interfaces.is_empty() && lab.ec2.endpoints.is_empty());
    assert!(all(
        &lab.ok("DescribeNetworkInterfaces", &[]),
        "DescribeNetworkInterfacesResponse/networkInterfaceSet/item"
    )
    .is_empty());
    // Listed as deleted, with nothing of its own but its tags.
    let doc = lab.ok("DescribeVpcEndpoints", &[("VpcEndpointId.1", &id)]);
    assert_eq!(at(&doc, &format!("{ITEM}/state")).unwrap(), "deleted");
    assert_eq!(at(&doc, &format!("{ITEM}/vpcId")).unwrap(), vpc);
    assert_eq!(at(&doc, &format!("{ITEM}/serviceName")).unwrap(), "com.amazonaws.us-east-1.ec2");
    for empty in ["networkInterfaceIdSet/item", "dnsEntrySet/item/dnsName", "subnetIdSet/item", "groupSet/item/groupId"]
    {
        assert!(all(&doc, &format!("{ITEM}/{empty}")).is_empty(), "{empty}: {doc}");
    }
    assert_eq!(at(&doc, &format!("{ITEM}/tagSet/item/value")).unwrap(), "api");
    let state = |s: &str| [("Filter.1.Name", "vpc-endpoint-state".to_string()), ("Filter.1.Value.1", s.to_string())];
    let by_state = |lab: &mut Lab, s: &str| {
        let p = state(s);
        listed(lab, &[(p[0].0, p[0].1.as_str()), (p[1].0, p[1].1.as_str())])
    };
    assert_eq!(by_state(&mut lab, "deleted"), [id.as_str()]);
    assert!(by_state(&mut lab, "available").is_empty());
    assert_eq!(listed(&mut lab, &[("Filter.1.Name", "tag:Name"), ("Filter.1.Value.1", "api")]), [id.as_str()]);
    assert!(lab.ec2.tags.is_empty(), "DescribeTags no longer has it: {:?}", lab.ec2.tags);
    // No longer a resource.
    let modify = [("VpcEndpointId", id.as_str()), ("PrivateDnsEnabled", "false")];
    assert_eq!(lab.err("ModifyVpcEndpoint", &modify).code, "InvalidVpcEndpointId.NotFound");
    assert_eq!(
        lab.err("CreateTags", &[("ResourceId.1", &id), ("Tag.1.Key", "k")]).code,
        "InvalidVpcEndpointId.NotFound"
    );
    assert_eq!(lab.err("DeleteTags", &[("ResourceId.1", &id)]).code, "InvalidVpcEndpointId.NotFound");
    let before = lab.ec2.clone();
    let doc = lab.ok("DeleteVpcEndpoints", &[("VpcEndpointId.1", &id)]);
    assert_eq!(all(&doc, "DeleteVpcEndpointsResponse/unsuccessful/item/error/code"), ["InvalidVpcEndpointId.NotFound"]);
    assert_eq!(lab.ec2, before, "a second delete changes nothing");
    // Nothing depends on it: its group, subnets and VPC go.
    lab.ok("DeleteSecurityGroup", &[("GroupId", &web)]);
    for s in lab.ec2.subnets.keys().cloned().collect::<Vec<_>>() {
        lab.ok("DeleteSubnet", &[("SubnetId", &s)]);
    }
    lab.ok("DeleteVpc", &[("VpcId", &vpc)]);
    assert_eq!(listed(&mut lab, &[]), [id.as_str()], "listed after its VPC went, as at AWS");
}

#[test]
fn a_deleted_endpoint_is_purged_after_its_retention() {
    let (mut lab, vpc, [a, _, _]) = lab();
    let id = lab.field(
        "CreateVpcEndpoint",
        &create(&vpc, "com.amazonaws.us-east-1.sts", &[&a]),
        "CreateVpcEndpointResponse/vpcEndpoint/vpcEndpointId",
    );
    let deleted_at = lab.now;
    lab.ok("DeleteVpcEndpoints", &[("VpcEndpointId.1", &id)]);
    lab.now = deleted_at + DELETED_RETENTION - 1;
    assert_eq!(listed(&mut lab, &[("VpcEndpointId.1", &id)]), [id.as_str()], "the last second of its retention");
    lab.ok("CreateTags", &[("ResourceId.1", &vpc), ("Tag.1.Key", "k")]);
    assert!(lab.ec2.deleted_endpoints.contains_key(&id), "a change before the end keeps it");
    lab.now = deleted_at + DELETED_RETENTION;
    assert!(listed(&mut lab, &[]).is_empty(), "not listed once its retention is over");
    assert_eq!(lab.err("DescribeVpcEndpoints", &[("VpcEndpointId.1", &id)]).code, "InvalidVpcEndpointId.NotFound");
    assert!(lab.ec2.deleted_endpoints.contains_key(&id), "a Describe changes nothing");
    lab.ok("CreateTags", &[("ResourceId.1", &vpc), ("Tag.1.Key", "k2")]);
    assert!(lab.ec2.deleted_endpoints.is_empty(), "the next change forgets it");
}

#[test]
fn a_client_token_retried_after_a_delete_answers_the_deleted_endpoint_until_it_is_purged() {
    let (mut lab, vpc, [a, _, _]) = lab();
    let mut p = create(&vpc, "com.amazonaws.us-east-1.sts", &[&a]);
    p.push(("ClientToken", "tok-1"));
    let first = lab.field("CreateVpcEndpoint", &p, "CreateVpcEndpointResponse/vpcEndpoint/vpcEndpointId");
    lab.ok("DeleteVpcEndpoints", &[("VpcEndpointId.1", &first)]);
    let before = lab.ec2.clone();
    let again = lab.ok("CreateVpcEndpoint", &p);
    let root = "CreateVpcEndpointResponse/vpcEndpoint";
    assert_eq!(at(&again, &format!("{root}/vpcEndpointId")).unwrap(), first);
    assert_eq!(at(&again, &format!("{root}/state")).unwrap(), "deleted");
    assert_eq!(lab.ec2, before, "nothing made");
    lab.now += DELETED_RETENTION;
    lab.ok("CreateTags", &[("ResourceId.1", &vpc), ("Tag.1.Key", "k")]);
    assert!(lab.ec2.client_tokens.is_empty(), "the token went with the endpoint");
    let new = lab.field("CreateVpcEndpoint", &p, "CreateVpcEndpointResponse/vpcEndpoint/vpcEndpointId");
    assert_ne!(new, first);
    assert_eq!(lab.ec2.endpoints.len(), 1);
}

#[test]
fn a_model_stored_before_deleted_endpoints_still_loads() {
    let (mut lab, vpc, [a, _, _]) = lab();
    lab.ok("CreateVpcEndpoint", &create(&vpc, "com.amazonaws.us-east-1.sts", &[&a]));
    let mut v = serde_json::to_value(&lab.ec2).unwrap();
    assert!(v.as_object_mut().unwrap().remove("deleted_endpoints").is_some());
    let back: crate::api::ec2::Ec2 = serde_json::from_value(v).unwrap();
    assert_eq!(back, lab.ec2);
}
