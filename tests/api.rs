//! The EC2 API against a live privlink: every call takes effect before it
//! returns, and the data plane shows it (namespace test, root).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use privlink::lab::api_client::{self, texts, LocalApi};
use privlink::lab::{probe, standin};
use privlink_core::api::settings::ApiSettings;

fn call(api: SocketAddr, params: &[(&str, &str)]) -> (u16, String) {
    api_client::call(api, params).unwrap()
}

/// `params` after `Version`, form-encoded.
fn form(params: &[(&str, &str)]) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("Version", "2016-11-15");
    for (k, v) in params {
        form.append_pair(k, v);
    }
    form.finish()
}

/// POSTs `body` with `extra` header lines; returns (status, body).
fn post(api: SocketAddr, body: &str, extra: &str) -> (u16, String) {
    let mut s = TcpStream::connect(api).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: {api}\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\n\
         {extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// The same POST signed with SigV4 for ec2 in us-east-1, now: a signer of
/// its own (HMAC over sha2), so the test does not check privlink against
/// itself.
fn signed_call(api: SocketAddr, params: &[(&str, &str)], key: &str, secret: &str) -> (u16, String) {
    use sha2::{Digest, Sha256};
    fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut k = [0u8; 64];
        k[..key.len()].copy_from_slice(key); // every key here is shorter than 64 bytes
        let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
        let inner = Sha256::new().chain_update(pad(0x36)).chain_update(data).finalize();
        Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().to_vec()
    }
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let stamp: String =
        privlink_core::api::time::iso8601(secs)[..19].chars().filter(|c| *c != '-' && *c != ':').collect();
    let stamp = format!("{stamp}Z");
    let date = &stamp[..8];
    let body = form(params);
    let canonical = format!(
        "POST\n/\n\ncontent-type:application/x-www-form-urlencoded; charset=utf-8\nhost:{api}\nx-amz-date:{stamp}\n\ncontent-type;host;x-amz-date\n{}",
        hex(&Sha256::digest(&body))
    );
    let scope = format!("{date}/us-east-1/ec2/aws4_request");
    let to_sign = format!("AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}", hex(&Sha256::digest(&canonical)));
    let mut k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    for part in ["us-east-1", "ec2", "aws4_request"] {
        k = hmac(&k, part.as_bytes());
    }
    let signature = hex(&hmac(&k, to_sign.as_bytes()));
    let extra = format!(
        "X-Amz-Date: {stamp}\r\nAuthorization: AWS4-HMAC-SHA256 Credential={key}/{scope}, SignedHeaders=content-type;host;x-amz-date, Signature={signature}\r\n"
    );
    post(api, &body, &extra)
}

fn ok(api: SocketAddr, params: &[(&str, &str)], field: &str) -> String {
    api_client::field(api, params, field).unwrap()
}

fn start_api(settings: ApiSettings, state_dir: std::path::PathBuf) -> LocalApi {
    LocalApi::start(settings, state_dir).expect("the API starts")
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
    let api = start_api(settings.clone(), dir.0.clone());
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
    let api = start_api(settings, dir.0.clone());
    let a = api.addr;
    let answer = probe::dns_udp(Some(&instance), resolver, name, "A").unwrap();
    assert_eq!(answer.ips, [eni_ip], "after the restart: {answer:?}");
    let reply = probe::https_get(&instance, SocketAddrV4::new(eni_ip, 443), name, &service.cert.ca, "/").unwrap();
    assert!(reply.response.contains("hello from"), "{}", reply.response);

    // Deleting the endpoint removes its name and its ENI at once, and resets its connections.
    let mut open = probe::tcp_connect(&instance, SocketAddrV4::new(eni_ip, 443), Duration::from_secs(2)).unwrap();
    open.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (status, body) = call(a, &[("Action", "DeleteVpcEndpoints"), ("VpcEndpointId.1", &endpoint)]);
    assert_eq!(status, 200, "{body}");
    assert!(texts(&body, "resourceId").is_empty(), "{body}");
    let read = open.read(&mut [0u8; 16]);
    assert_eq!(
        read.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset),
        "told at once, not left to time out"
    );
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
    let api = start_api(ApiSettings::from_toml("api.toml", &text).unwrap(), dir.0.clone());
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

#[test]
fn with_credentials_only_a_request_signed_with_them_changes_anything() {
    if !common::netns_available("with_credentials_only_a_request_signed_with_them_changes_anything") {
        return;
    }
    let dir = common::TempDir::new(&common::unique("api"));
    let (key, secret) = ("AKIAPRIVLINKTEST0001", "privlink/test+secret/0123456789abcdefGHIJ");
    let text = format!(
        "[api]\nlisten = \"127.0.0.1:0\"\naccess_key_id = \"{key}\"\nsecret_access_key = \"{secret}\"\n[dns]\nforward = []\n"
    );
    let api = start_api(ApiSettings::from_toml("api.toml", &text).unwrap(), dir.0.clone());
    let a = api.addr;
    let create = [("Action", "CreateVpc"), ("CidrBlock", "10.0.0.0/16")];
    for (status, body, code) in [
        (call(a, &create), "IncompleteSignature"),
        (signed_call(a, &create, key, "wrong"), "SignatureDoesNotMatch"),
        (signed_call(a, &create, "AKIAOTHER", secret), "AuthFailure"),
        (post(a, &form(&create), ""), "MissingAuthenticationToken"),
    ]
    .map(|((s, b), c)| (s, b, c))
    {
        assert!(status >= 400, "{code}: {body}");
        assert_eq!(texts(&body, "Code"), [code], "{body}");
    }
    let (status, body) = signed_call(a, &[("Action", "DescribeVpcs")], key, secret);
    assert_eq!((status, texts(&body, "vpcId").len()), (200, 0), "nothing was made by the refused calls: {body}");
    let (status, body) = signed_call(a, &create, key, secret);
    assert_eq!(status, 200, "{body}");
    let vpc = texts(&body, "vpcId").remove(0);
    assert!(privlink::edge::netns::exists(&vpc), "the signed CreateVpc made namespace {vpc}");
    drop(api);
    assert!(!privlink::edge::netns::exists(&vpc));
}

#[test]
fn a_files_vpc_seeds_the_model_once_and_the_api_changes_it_live() {
    if !common::netns_available("a_files_vpc_seeds_the_model_once_and_the_api_changes_it_live") {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let name = "ec2.us-east-1.amazonaws.com";
    let service = rt.block_on(standin::TlsStandIn::start(name, 0)).unwrap();
    let dir = common::TempDir::new(&common::unique("seed"));
    // Ids that are not AWS-shaped (so every run's namespaces are its own):
    // each resource gets an AWS-shaped id and keeps the file's as its Name tag.
    let text = format!(
        r#"[api]
listen = "127.0.0.1:0"
[dns]
forward = []

[vpc]
id = "vpc-lab"
cidr = "10.0.0.0/16"
region = "us-east-1"

[[subnet]]
id = "subnet-lab-a"
cidr = "10.0.1.0/24"
az = "us-east-1a"

[[security_group]]
id = "sg-endpoint"
ingress = [{{ protocol = "tcp", ports = "443", cidr = "10.0.0.0/16" }}]

[[instance]]
id = "i-lab"
ip = "10.0.1.10"

[[endpoint]]
service = "com.amazonaws.us-east-1.ec2"
subnets = ["subnet-lab-a"]
ips = {{ "subnet-lab-a" = "10.0.1.49" }}
upstream = "{}"
security_groups = ["sg-endpoint"]
max_connections = 2
"#,
        service.addr
    );
    let path = dir.0.join("lab.toml");
    std::fs::write(&path, &text).unwrap();
    let file = privlink::edge::config_file::load_api(&path).unwrap().expect("an [api] file");
    let state = dir.0.join("state");
    let api = LocalApi::start_file(file.clone(), state.clone()).expect("the API starts");
    let a = api.addr;
    let tagged = |action: &str, name: &str, field: &str| {
        let params = [("Action", action), ("Filter.1.Name", "tag:Name"), ("Filter.1.Value.1", name)];
        ok(a, &params, field)
    };

    // The file's objects are the API's: Describe finds them by their file ids.
    let vpc = tagged("DescribeVpcs", "vpc-lab", "vpcId");
    let instance = tagged("DescribeInstances", "i-lab", "instanceId");
    let group = tagged("DescribeSecurityGroups", "sg-endpoint", "groupId");
    let (_, body) =
        call(a, &[("Action", "DescribeVpcEndpoints"), ("Filter.1.Name", "vpc-id"), ("Filter.1.Value.1", &vpc)]);
    let endpoint = texts(&body, "vpcEndpointId").pop().expect("the file's endpoint");
    assert_eq!(texts(&body, "state"), ["available"], "{body}");
    let eni = SocketAddrV4::new(Ipv4Addr::new(10, 0, 1, 49), 443);
    let resolver = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 53);
    let answer = probe::dns_udp(Some(&instance), resolver, name, "A").unwrap();
    assert_eq!(answer.ips, [*eni.ip()], "{answer:?}");
    let reply = probe::https_get(&instance, eni, name, &service.cert.ca, "/").unwrap();
    assert!(reply.response.contains("hello from"), "{}", reply.response);

    // The endpoint's own knob (no API field) rides with it: two connections at a time.
    // (A closed connection frees its slot once privlink has closed its side: try until then.)
    let connect = || {
        (0..50)
            .find_map(|_| probe::tcp_connect(&instance, eni, Duration::from_millis(200)).ok())
            .expect("a connection once a slot is free")
    };
    let held = [connect(), connect()];
    assert!(probe::tcp_connect(&instance, eni, Duration::from_millis(1500)).is_err(), "max_connections = 2");
    drop(held);
    // The slots come back as privlink closes its side.
    drop(connect());

    // The API changes them live: the file's rule revoked, a new connection is not answered.
    let revoke = [
        ("Action", "RevokeSecurityGroupIngress"),
        ("GroupId", group.as_str()),
        ("IpPermissions.1.IpProtocol", "tcp"),
        ("IpPermissions.1.FromPort", "443"),
        ("IpPermissions.1.ToPort", "443"),
        ("IpPermissions.1.IpRanges.1.CidrIp", "10.0.0.0/16"),
    ];
    ok(a, &revoke, "return");
    // 3 s: the SYN's retries at 1 s and 3 s would find a slot the closing connections left.
    assert!(probe::tcp_connect(&instance, eni, Duration::from_secs(3)).is_err(), "revoked");

    // A restart with the same file seeds nothing: the API's change stays.
    drop(api);
    assert!(!privlink::edge::netns::exists(&vpc));
    let api = LocalApi::start_file(file, state.clone()).expect("the API restarts");
    let a = api.addr;
    let (_, body) = call(a, &[("Action", "DescribeVpcEndpoints")]);
    assert_eq!(texts(&body, "vpcEndpointId"), [endpoint], "one endpoint, the same: {body}");
    assert!(probe::tcp_connect(&instance, eni, Duration::from_millis(1500)).is_err(), "still revoked");
    drop(api);

    // A changed VPC part is refused before anything runs, naming the file.
    std::fs::write(&path, text.replace("10.0.1.49", "10.0.1.50")).unwrap();
    let changed = privlink::edge::config_file::load_api(&path).unwrap().unwrap();
    let e = LocalApi::start_file(changed, state).err().expect("refused").to_string();
    assert!(e.contains("lab.toml: vpc: the file's VPC part changed"), "{e}");
    assert!(!privlink::edge::netns::exists(&vpc) && !privlink::edge::netns::exists(&instance));
}

#[test]
fn check_seeds_a_copy_of_the_model_and_names_what_the_api_cannot_carry() {
    // No kernel needed: `check` only reads.
    let dir = common::TempDir::new(&common::unique("seedcheck"));
    let file = dir.0.join("lab.toml");
    let state = dir.0.join("state");
    let vpc = "[vpc]\ncidr = \"10.0.0.0/16\"\nregion = \"us-east-1\"\n\n[[subnet]]\nid = \"subnet-lab-a\"\ncidr = \"10.0.1.0/24\"\naz = \"us-east-1a\"\n\n[[endpoint]]\nservice = \"com.amazonaws.us-east-1.ec2\"\nsubnets = [\"subnet-lab-a\"]\n";
    let check = |text: &str| {
        std::fs::write(&file, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_privlink"))
            .args(["check", "--config"])
            .arg(&file)
            .arg("--state-dir")
            .arg(&state)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = check(&format!("[api]\n{vpc}"));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("seeds the model (subnets 1, instances 0, endpoints 1)"), "{out}");
    assert!(!state.exists(), "check wrote the state dir");
    let (code, out, err) = check(&format!(
        "[api]\n{}",
        vpc.replace("region = \"us-east-1\"\n", "region = \"us-east-1\"\nnetns = \"lab\"\n")
    ));
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(err.contains("lab.toml: vpc.netns: not with [api]"), "{err}");
    let (code, out, err) = check("[api]\n[dns]\nforward = []\n");
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("no [vpc]: every VPC comes through the API"), "{out}");
}
