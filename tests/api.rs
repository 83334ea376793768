//! The EC2 API against a live privlink: every call takes effect before it
//! returns, and the data plane shows it (namespace test, root).

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::time::Duration;

use privlink::lab::{probe, standin};
use privlink_core::api::settings::ApiSettings;

/// A form POST to the API, as botocore sends it; returns (status, body).
fn call(api: SocketAddr, params: &[(&str, &str)]) -> (u16, String) {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("Version", "2016-11-15");
    for (k, v) in params {
        form.append_pair(k, v);
    }
    let body = form.finish();
    let mut s = TcpStream::connect(api).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: {api}\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=AKID/20261202/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// The texts of every `<name>` element.
fn texts(doc: &str, name: &str) -> Vec<String> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    doc.split(&open).skip(1).filter_map(|s| s.split(&close).next()).map(str::to_string).collect()
}

fn ok(api: SocketAddr, params: &[(&str, &str)], field: &str) -> String {
    let (status, body) = call(api, params);
    assert_eq!(status, 200, "{params:?}: {body}");
    texts(&body, field).into_iter().next().unwrap_or_else(|| panic!("no {field} in {body}"))
}

#[test]
fn api_calls_build_a_vpc_whose_endpoint_works_at_once_and_survives_a_restart() {
    if !common::netns_available("api_calls_build_a_vpc_whose_endpoint_works_at_once_and_survives_a_restart") {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let name = "ec2.us-east-1.amazonaws.com";
    let service = rt.block_on(standin::TlsStandIn::start(name, 0)).unwrap();
    let dir = common::TempDir::new(&common::unique("api"));
    let text = format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n[upstreams]\n\"com.amazonaws.us-east-1.ec2\" = \"{}\"\n[dns]\nforward = []\n",
        service.addr
    );
    let settings = ApiSettings::from_toml("api.toml", &text).unwrap();
    let api = common::Api::start(settings.clone(), dir.0.clone());
    let a = api.addr;

    let vpc = ok(a, &[("Action", "CreateVpc"), ("CidrBlock", "10.0.0.0/16")], "vpcId");
    assert!(privlink::edge::netns::exists(&vpc), "CreateVpc made namespace {vpc}");
    ok(a, &[("Action", "ModifyVpcAttribute"), ("VpcId", &vpc), ("EnableDnsHostnames.Value", "true")], "return");
    let subnet = ok(
        a,
        &[
            ("Action", "CreateSubnet"),
            ("VpcId", &vpc),
            ("CidrBlock", "10.0.1.0/24"),
            ("AvailabilityZone", "us-east-1a"),
        ],
        "subnetId",
    );
    let instance = ok(
        a,
        &[
            ("Action", "RunInstances"),
            ("ImageId", "ami-12345678"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("SubnetId", &subnet),
        ],
        "instanceId",
    );
    assert!(privlink::edge::netns::exists(&instance), "RunInstances made namespace {instance}");
    let resolver = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 53);
    let public = probe::dns_udp(Some(&instance), resolver, name, "A").unwrap();
    assert_eq!(public.rcode, "Refused", "no endpoint yet, privacy mode: {public:?}");

    let endpoint = ok(
        a,
        &[
            ("Action", "CreateVpcEndpoint"),
            ("VpcId", &vpc),
            ("ServiceName", "com.amazonaws.us-east-1.ec2"),
            ("VpcEndpointType", "Interface"),
            ("SubnetId.1", &subnet),
        ],
        "vpcEndpointId",
    );
    let (_, enis) = call(a, &[("Action", "DescribeNetworkInterfaces")]);
    let eni_ip: Ipv4Addr = texts(&enis, "privateIpAddress")[0].parse().unwrap();
    assert_eq!(eni_ip, Ipv4Addr::new(10, 0, 1, 5), "the instance holds .4, the ENI the next free address");
    // At once: the name resolves to the ENI inside the VPC and HTTPS goes through.
    let answer = probe::dns_udp(Some(&instance), resolver, name, "A").unwrap();
    assert_eq!(answer.ips, [eni_ip], "{answer:?}");
    let reply = probe::https_get(&instance, SocketAddrV4::new(eni_ip, 443), name, &service.cert.ca, "/").unwrap();
    assert!(reply.response.contains("hello from"), "{}", reply.response);

    // A restart rebuilds the namespaces, the ENI and the name from the stored model.
    drop(api);
    assert!(!privlink::edge::netns::exists(&vpc) && !privlink::edge::netns::exists(&instance));
    let api = common::Api::start(settings, dir.0.clone());
    let a = api.addr;
    let answer = probe::dns_udp(Some(&instance), resolver, name, "A").unwrap();
    assert_eq!(answer.ips, [eni_ip], "after the restart: {answer:?}");
    let reply = probe::https_get(&instance, SocketAddrV4::new(eni_ip, 443), name, &service.cert.ca, "/").unwrap();
    assert!(reply.response.contains("hello from"), "{}", reply.response);

    // Deleting the endpoint removes its name and its ENI at once.
    let (status, body) = call(a, &[("Action", "DeleteVpcEndpoints"), ("VpcEndpointId.1", &endpoint)]);
    assert_eq!(status, 200, "{body}");
    assert!(texts(&body, "resourceId").is_empty(), "{body}");
    let answer = probe::dns_udp(Some(&instance), resolver, name, "A").unwrap();
    assert_eq!(answer.rcode, "Refused", "{answer:?}");
    assert!(probe::tcp_connect(&instance, SocketAddrV4::new(eni_ip, 443), Duration::from_secs(1)).is_err());

    // Bad input is refused with AWS's codes, never a 500.
    let (status, body) = call(a, &[("Action", "DeleteVpc"), ("VpcId", &vpc)]);
    assert_eq!((status, texts(&body, "Code")), (400, vec!["DependencyViolation".to_string()]), "{body}");
    let (status, body) = call(a, &[("Action", "DescribeVpcs"), ("VpcId.1", "vpc-nothex")]);
    assert_eq!((status, texts(&body, "Code")), (400, vec!["InvalidVpcID.Malformed".to_string()]), "{body}");

    ok(a, &[("Action", "TerminateInstances"), ("InstanceId.1", &instance)], "instanceId");
    assert!(!privlink::edge::netns::exists(&instance));
    ok(a, &[("Action", "DeleteSubnet"), ("SubnetId", &subnet)], "return");
    ok(a, &[("Action", "DeleteVpc"), ("VpcId", &vpc)], "return");
    assert!(!privlink::edge::netns::exists(&vpc), "DeleteVpc removed the namespace");
    drop(api);
    assert!(!std::path::Path::new(&format!("/etc/netns/{instance}")).exists());
}

#[test]
fn a_revoked_rule_and_a_removed_subnet_take_effect_before_the_call_returns() {
    if !common::netns_available("a_revoked_rule_and_a_removed_subnet_take_effect_before_the_call_returns") {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let name = "sts.us-east-1.amazonaws.com";
    let service = rt.block_on(standin::TlsStandIn::start(name, 0)).unwrap();
    let dir = common::TempDir::new(&common::unique("api"));
    let text = format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n[upstreams]\n\"com.amazonaws.us-east-1.sts\" = \"{}\"\n[dns]\nforward = []\n",
        service.addr
    );
    let api = common::Api::start(ApiSettings::from_toml("api.toml", &text).unwrap(), dir.0.clone());
    let a = api.addr;
    let vpc = ok(a, &[("Action", "CreateVpc"), ("CidrBlock", "10.0.0.0/16")], "vpcId");
    let subnet = |cidr: &str, az: &str| {
        ok(a, &[("Action", "CreateSubnet"), ("VpcId", &vpc), ("CidrBlock", cidr), ("AvailabilityZone", az)], "subnetId")
    };
    let (sa, sb) = (subnet("10.0.1.0/24", "us-east-1a"), subnet("10.0.2.0/24", "us-east-1b"));
    let sg = ok(
        a,
        &[
            ("Action", "CreateSecurityGroup"),
            ("GroupName", "endpoint"),
            ("GroupDescription", "443 from the VPC"),
            ("VpcId", &vpc),
        ],
        "groupId",
    );
    let rule = [
        ("GroupId", sg.as_str()),
        ("IpPermissions.1.IpProtocol", "tcp"),
        ("IpPermissions.1.FromPort", "443"),
        ("IpPermissions.1.ToPort", "443"),
        ("IpPermissions.1.IpRanges.1.CidrIp", "10.0.0.0/16"),
    ];
    ok(a, &[&[("Action", "AuthorizeSecurityGroupIngress")], &rule[..]].concat(), "return");
    let instance = ok(
        a,
        &[
            ("Action", "RunInstances"),
            ("ImageId", "ami-12345678"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("SubnetId", &sa),
        ],
        "instanceId",
    );
    let endpoint = ok(
        a,
        &[
            ("Action", "CreateVpcEndpoint"),
            ("VpcId", &vpc),
            ("ServiceName", "com.amazonaws.us-east-1.sts"),
            ("VpcEndpointType", "Interface"),
            ("PrivateDnsEnabled", "false"),
            ("SubnetId.1", &sa),
            ("SubnetId.2", &sb),
            ("SecurityGroupId.1", &sg),
        ],
        "vpcEndpointId",
    );
    let (_, enis) = call(a, &[("Action", "DescribeNetworkInterfaces")]);
    let mut ips: Vec<Ipv4Addr> = texts(&enis, "privateIpAddress").iter().map(|s| s.parse().unwrap()).collect();
    ips.dedup(); // each ENI's address shows twice: privateIpAddress and its privateIpAddressesSet
    assert_eq!(ips.len(), 2, "{enis}");
    let get = |ip: Ipv4Addr| probe::https_get(&instance, SocketAddrV4::new(ip, 443), name, &service.cert.ca, "/");
    for ip in &ips {
        assert!(get(*ip).unwrap().response.contains("hello from"), "through the ENI at {ip}");
    }
    // Revoked: the next connection's SYN is dropped by the group.
    ok(a, &[&[("Action", "RevokeSecurityGroupIngress")], &rule[..]].concat(), "return");
    let connect = |ip: Ipv4Addr| probe::tcp_connect(&instance, SocketAddrV4::new(ip, 443), Duration::from_millis(1500));
    assert!(connect(ips[0]).is_err(), "the revoked rule still let a connection in");
    ok(a, &[&[("Action", "AuthorizeSecurityGroupIngress")], &rule[..]].concat(), "return");
    assert!(get(ips[0]).unwrap().response.contains("hello from"), "authorized again");
    // A removed subnet's ENI stops answering; the other one keeps serving.
    ok(a, &[("Action", "ModifyVpcEndpoint"), ("VpcEndpointId", &endpoint), ("RemoveSubnetId.1", &sb)], "return");
    let b_ip = *ips.iter().find(|ip| ip.octets()[2] == 2).unwrap();
    let a_ip = *ips.iter().find(|ip| ip.octets()[2] == 1).unwrap();
    assert!(connect(b_ip).is_err(), "the removed subnet's ENI still answers");
    assert!(get(a_ip).unwrap().response.contains("hello from"));
    let (_, enis) = call(a, &[("Action", "DescribeNetworkInterfaces")]);
    let mut left = texts(&enis, "privateIpAddress");
    left.dedup();
    assert_eq!(left, [a_ip.to_string()]);
    ok(a, &[("Action", "DeleteVpcEndpoints"), ("VpcEndpointId.1", &endpoint)], "unsuccessful");
    ok(a, &[("Action", "TerminateInstances"), ("InstanceId.1", &instance)], "instanceId");
    drop(api);
    assert!(!privlink::edge::netns::exists(&vpc) && !privlink::edge::netns::exists(&instance));
}
