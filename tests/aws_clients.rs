//! The aws CLI and boto3, from the virtualenv the README's install section
//! makes, run the seed's steps against the API (namespace test, root); after
//! each step an instance checks the data plane: the name resolves to the ENIs
//! inside and the public address outside, HTTPS goes through, a revoked rule
//! stops new connections, a removed subnet's ENI stops answering.
//!
//! Without the virtualenv each test skips with a message, unless
//! `PRIVLINK_REQUIRE_AWS_CLIENTS=1` (CI), where it fails instead.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use privlink::edge::netns;
use privlink::lab::{probe, standin};
use privlink_core::api::settings::ApiSettings;
use serde_json::{json, Value};

const STS: &str = "sts.us-east-1.amazonaws.com";
const SERVICE: &str = "com.amazonaws.us-east-1.sts";
/// What a lookup of [`STS`] outside the VPC answers (the public-DNS stand-in).
const PUBLIC_STS: Ipv4Addr = Ipv4Addr::new(52, 94, 24, 110);
/// `program` (in namespace `ns` when given) with dummy credentials and nothing
/// of the caller's AWS configuration, proxies or Python paths.
fn client_command(program: &Path, ns: Option<&str>) -> Command {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(program);
            c
        }
        None => Command::new(program),
    };
    for v in [
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_CA_BUNDLE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_EC2",
        "AWS_ENDPOINT_URL_STS",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "PYTHONPATH",
        "PYTHONHOME",
    ] {
        cmd.env_remove(v);
    }
    cmd.env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    cmd
}

/// A client running the seed's steps.
trait Client {
    fn name(&self) -> &'static str;
    /// Runs `step` with `args` against `endpoint` (from inside namespace `ns`
    /// when given): what the client parsed, or `{"Error": {"Code", "Message"}}`
    /// for an AWS error. Panics on anything else (a response it cannot parse).
    fn run(&self, ns: Option<&str>, endpoint: &str, step: &str, args: &Value) -> Value;
}

/// The aws CLI: `aws --endpoint-url … --output json ec2 STEP …`.
struct Cli {
    aws: PathBuf,
}

fn arg(a: &Value, key: &str) -> String {
    a[key].as_str().unwrap_or_else(|| panic!("no string {key} in {a}")).to_string()
}

fn list(a: &Value, key: &str) -> Vec<String> {
    a[key].as_array().unwrap_or_else(|| panic!("no list {key} in {a}")).iter().map(text).collect()
}

impl Cli {
    fn aws(&self, ns: Option<&str>, endpoint: &str, argv: &[String]) -> Value {
        let out = client_command(&self.aws, ns)
            .args(["--endpoint-url", endpoint, "--output", "json"])
            .args(argv)
            .output()
            .expect("run aws");
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if out.status.success() {
            if stdout.trim().is_empty() {
                return json!({});
            }
            return serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("aws {argv:?}: {e}: {stdout}"));
        }
        // "An error occurred (DependencyViolation) when calling the DeleteVpc operation: …"
        let code = stderr.split_once("An error occurred (").and_then(|(_, rest)| rest.split_once(')')).map(|(c, _)| c);
        match code {
            Some(code) => json!({"Error": {"Code": code, "Message": stderr.trim()}}),
            None => panic!("aws {argv:?} failed ({}) without an AWS error: {stderr}{stdout}", out.status),
        }
    }
}

impl Client for Cli {
    fn name(&self) -> &'static str {
        "cli"
    }

    fn run(&self, ns: Option<&str>, endpoint: &str, step: &str, a: &Value) -> Value {
        let s = |k: &str| arg(a, k);
        // A step boto3 names apart is one aws CLI command with other arguments.
        let command = step.strip_suffix("-from-list").unwrap_or(step);
        let mut argv: Vec<String> = vec!["ec2".into(), command.into()];
        let mut add = |xs: &[&str]| argv.extend(xs.iter().map(|x| x.to_string()));
        match step {
            "create-vpc" => add(&["--cidr-block", &s("cidr")]),
            "modify-vpc-attribute" => add(&["--vpc-id", &s("vpc"), "--enable-dns-hostnames", r#"{"Value":true}"#]),
            "create-subnet" => {
                add(&["--vpc-id", &s("vpc"), "--cidr-block", &s("cidr"), "--availability-zone", &s("az")])
            }
            "create-security-group" => {
                add(&["--vpc-id", &s("vpc"), "--group-name", &s("name"), "--description", "443 from the VPC"])
            }
            "authorize-security-group-ingress" | "revoke-security-group-ingress" => {
                add(&["--group-id", &s("group"), "--protocol", "tcp", "--port", "443", "--cidr", &s("cidr")])
            }
            "authorize-security-group-ingress-from-list" => {
                let permission =
                    format!("IpProtocol=tcp,FromPort=443,ToPort=443,PrefixListIds=[{{PrefixListId={}}}]", s("list"));
                add(&["--group-id", &s("group"), "--ip-permissions", &permission])
            }
            "create-managed-prefix-list" => add(&[
                "--prefix-list-name",
                &s("name"),
                "--max-entries",
                "2",
                "--address-family",
                "IPv4",
                "--entries",
                &format!("Cidr={}", s("cidr")),
            ]),
            "modify-managed-prefix-list" => add(&[
                "--prefix-list-id",
                &s("list"),
                "--current-version",
                &a["version"].to_string(),
                "--remove-entries",
                &format!("Cidr={}", s("cidr")),
            ]),
            "get-managed-prefix-list-entries" => add(&["--prefix-list-id", &s("list")]),
            "run-instances" => add(&["--image-id", "ami-12345678", "--subnet-id", &s("subnet"), "--count", "1"]),
            "create-vpc-endpoint" => {
                let dns = if a["private_dns"] == true { "--private-dns-enabled" } else { "--no-private-dns-enabled" };
                let tags = format!("ResourceType=vpc-endpoint,Tags=[{{Key=Name,Value={}}}]", s("name"));
                add(&["--vpc-id", &s("vpc"), "--vpc-endpoint-type", "Interface", "--service-name", &s("service")]);
                add(&[dns, "--client-token", &s("token"), "--tag-specifications", &tags, "--subnet-ids"]);
                argv.extend(list(a, "subnets"));
                argv.push("--security-group-ids".into());
                argv.extend(list(a, "groups"));
            }
            "describe-vpc-endpoints" => {
                let filter = format!("Name=vpc-id,Values={}", s("vpc"));
                let page = |extra: &[&str]| {
                    let mut v: Vec<String> = ["ec2", step, "--filters", &filter].map(String::from).to_vec();
                    v.extend(extra.iter().map(|x| x.to_string()));
                    self.aws(ns, endpoint, &v)
                };
                // --max-results turns the CLI's own paging off; --page-size pages
                // through NextToken and merges the pages.
                return json!({"Max5": page(&["--max-results", "5"]), "Paged": page(&["--page-size", "1"])});
            }
            "describe-network-interfaces" => add(&["--filters", &format!("Name=vpc-id,Values={}", s("vpc"))]),
            "modify-vpc-endpoint" => add(&["--vpc-endpoint-id", &s("endpoint"), "--remove-subnet-ids", &s("subnet")]),
            "delete-vpc-endpoints" => {
                add(&["--vpc-endpoint-ids"]);
                argv.extend(list(a, "endpoints"));
            }
            "terminate-instances" => add(&["--instance-ids", &s("instance")]),
            "delete-security-group" => add(&["--group-id", &s("group")]),
            "delete-subnet" => add(&["--subnet-id", &s("subnet")]),
            "delete-vpc" => add(&["--vpc-id", &s("vpc")]),
            "describe-vpcs" => add(&["--vpc-ids", &s("vpc")]),
            "get-caller-identity" => argv = ["--ca-bundle", &s("ca"), "sts", step].map(String::from).to_vec(),
            _ => panic!("no step {step}"),
        }
        self.aws(ns, endpoint, &argv)
    }
}

/// boto3: one `tests/clients/seed.py ENDPOINT` taking the steps on stdin
/// (and one `seed.py ENDPOINT STEP ARGS` for a step inside a namespace).
struct Boto3 {
    python: PathBuf,
    /// The running script and its endpoint.
    seed: Mutex<Option<(Child, BufReader<ChildStdout>, String)>>,
    /// Its stderr, for the panic message when it fails.
    log: common::TempDir,
}

impl Boto3 {
    fn new(python: PathBuf) -> Boto3 {
        Boto3 { python, seed: Mutex::new(None), log: common::TempDir::new(&common::unique("boto3")) }
    }

    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/seed.py")
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.log.0.join("stderr")).unwrap_or_default()
    }
}

impl Client for Boto3 {
    fn name(&self) -> &'static str {
        "boto3"
    }

    fn run(&self, ns: Option<&str>, endpoint: &str, step: &str, args: &Value) -> Value {
        if ns.is_some() {
            let out = client_command(&self.python, ns)
                .arg(Boto3::script())
                .args([endpoint, step, &args.to_string()])
                .output()
                .expect("run python");
            let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(out.status.success(), "boto3 {step} {args}: {}: {stderr}{stdout}", out.status);
            let line = stdout.lines().last().unwrap_or_default();
            return serde_json::from_str(line).unwrap_or_else(|e| panic!("boto3 {step}: {e}: {stdout}"));
        }
        let mut seed = self.seed.lock().unwrap();
        if seed.as_ref().is_none_or(|(_, _, url)| url != endpoint) {
            let stderr = std::fs::File::create(self.log.0.join("stderr")).unwrap();
            let mut child = client_command(&self.python, None)
                .arg(Boto3::script())
                .arg(endpoint)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(stderr)
                .spawn()
                .expect("run python");
            let out = BufReader::new(child.stdout.take().unwrap());
            *seed = Some((child, out, endpoint.to_string()));
        }
        let (child, out, _) = seed.as_mut().unwrap();
        let request = json!({"step": step, "args": args});
        let sent = writeln!(child.stdin.as_mut().unwrap(), "{request}");
        let mut line = String::new();
        if sent.is_err() || out.read_line(&mut line).unwrap_or(0) == 0 {
            let status = child.wait();
            panic!("boto3 {step} {args}: seed.py ended ({status:?}): {}", self.stderr());
        }
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("boto3 {step}: {e}: {line} {}", self.stderr()))
    }
}

impl Drop for Boto3 {
    fn drop(&mut self) {
        if let Some((mut child, _, _)) = self.seed.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The API in this process, the service's TLS stand-in and the public DNS.
struct Lab {
    api: privlink::lab::api_client::LocalApi,
    endpoint: String,
    service: standin::TlsStandIn,
    public: SocketAddrV4,
    _public_dns: standin::PublicDns,
    ca: PathBuf,
    _dir: common::TempDir,
    _rt: tokio::runtime::Runtime,
}

impl Lab {
    fn start(client: &str) -> Lab {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let service = rt.block_on(standin::TlsStandIn::start(STS, 0)).unwrap();
        let public_dns = rt.block_on(standin::PublicDns::start(&[(STS, PUBLIC_STS)])).unwrap();
        let SocketAddr::V4(public) = public_dns.addr else { panic!("the public DNS is on IPv4 loopback") };
        let dir = common::TempDir::new(&common::unique(&format!("aws-{client}")));
        let ca = dir.0.join("ca.pem");
        std::fs::write(&ca, &service.cert.ca_pem).unwrap();
        let text = format!(
            "[api]\nlisten = \"127.0.0.1:0\"\n[upstreams]\n\"{SERVICE}\" = \"{}\"\n[dns]\nforward = []\n",
            service.addr
        );
        let api = privlink::lab::api_client::LocalApi::start(
            ApiSettings::from_toml("api.toml", &text).unwrap(),
            dir.0.join("state"),
        )
        .expect("the API starts");
        let endpoint = format!("http://{}", api.addr);
        Lab { api, endpoint, service, public, _public_dns: public_dns, ca, _dir: dir, _rt: rt }
    }

    /// The name looked up outside the VPC: the public address.
    fn outside(&self) -> Vec<Ipv4Addr> {
        let answer = probe::dns_udp(None, self.public, STS, "A").unwrap();
        assert_eq!(answer.rcode, "NoError", "{answer:?}");
        answer.ips
    }

    /// An HTTPS GET from `instance` to the ENI at `ip`, by the service's name.
    fn https(&self, instance: &str, ip: Ipv4Addr) -> std::io::Result<String> {
        probe::https_get(instance, SocketAddrV4::new(ip, 443), STS, &self.service.cert.ca, "/").map(|r| r.response)
    }
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}")).to_string()
}

fn ids(list: &Value, key: &str) -> BTreeSet<String> {
    list.as_array().unwrap_or_else(|| panic!("not a list: {list}")).iter().map(|e| text(&e[key])).collect()
}

fn sorted(mut ips: Vec<Ipv4Addr>) -> Vec<Ipv4Addr> {
    ips.sort();
    ips
}

/// The seed's steps with `client` in VPC 10.`net`.0.0/16, checking the data
/// plane from the instance after each one.
fn seed(client: &dyn Client, net: u8) {
    let lab = Lab::start(client.name());
    let who = client.name();
    let call = |step: &str, args: Value| client.run(None, &lab.endpoint, step, &args);
    let ok = |step: &str, args: Value| {
        let out = call(step, args);
        assert!(out.get("Error").is_none(), "{who} {step}: {out}");
        out
    };
    let error = |step: &str, args: Value| {
        let out = call(step, args);
        out["Error"]["Code"].as_str().unwrap_or_else(|| panic!("{who} {step}: no error in {out}")).to_string()
    };
    let cidr = format!("10.{net}.0.0/16");
    let resolver = SocketAddrV4::new(Ipv4Addr::new(10, net, 0, 2), 53);
    let inside = |instance: &str| probe::dns_udp(Some(instance), resolver, STS, "A").unwrap();
    let connects = |instance: &str, ip: Ipv4Addr| {
        probe::tcp_connect(instance, SocketAddrV4::new(ip, 443), Duration::from_millis(1500)).is_ok()
    };

    // create-vpc: a namespace named by its id; hostnames on, as private DNS needs.
    let out = ok("create-vpc", json!({"cidr": cidr}));
    let vpc = text(&out["Vpc"]["VpcId"]);
    assert_eq!(out["Vpc"]["CidrBlock"], cidr.as_str(), "{out}");
    assert!(netns::exists(&vpc), "{who}: create-vpc made no namespace {vpc}");
    ok("modify-vpc-attribute", json!({"vpc": vpc}));

    // Two subnets, one per zone.
    let subnet = |third: u8, az: &str| {
        let out = ok("create-subnet", json!({"vpc": vpc, "cidr": format!("10.{net}.{third}.0/24"), "az": az}));
        assert_eq!((&out["Subnet"]["VpcId"], &out["Subnet"]["AvailabilityZone"]), (&json!(vpc), &json!(az)), "{out}");
        text(&out["Subnet"]["SubnetId"])
    };
    let (sa, sb) = (subnet(1, "us-east-1a"), subnet(2, "us-east-1b"));

    // The endpoint's group: TCP 443 from the VPC.
    let out = ok("create-security-group", json!({"vpc": vpc, "name": "endpoint"}));
    let sg = text(&out["GroupId"]);
    let rule = json!({"group": sg, "cidr": cidr});
    let out = ok("authorize-security-group-ingress", rule.clone());
    assert_eq!(out["Return"], true, "{out}");

    // run-instances: a namespace with eth0 in subnet a, resolving with the VPC resolver.
    let out = ok("run-instances", json!({"subnet": sa}));
    let instance = text(&out["Instances"][0]["InstanceId"]);
    assert_eq!(out["Instances"][0]["SubnetId"], sa.as_str(), "{out}");
    let ip: Ipv4Addr = text(&out["Instances"][0]["PrivateIpAddress"]).parse().unwrap();
    assert_eq!(ip.octets()[..3], [10, net, 1], "{out}");
    assert!(netns::exists(&instance), "{who}: run-instances made no namespace {instance}");
    let resolv = std::fs::read_to_string(format!("/etc/netns/{instance}/resolv.conf")).unwrap();
    assert!(resolv.contains(&format!("nameserver {}", resolver.ip())), "{resolv}");
    // No endpoint yet: the VPC resolver refuses the name (no forwarder), outside it is public.
    let answer = inside(&instance);
    assert_eq!(answer.rcode, "Refused", "{who}, before the endpoint: {answer:?}");
    assert_eq!(lab.outside(), [PUBLIC_STS]);

    // create-vpc-endpoint, twice with one client token: one endpoint.
    let create = json!({
        "vpc": vpc, "service": SERVICE, "subnets": [sa, sb], "groups": [sg],
        "private_dns": true, "token": format!("seed-{who}-{vpc}"), "name": "seed",
    });
    let first = ok("create-vpc-endpoint", create.clone());
    let e = &first["VpcEndpoint"];
    let endpoint = text(&e["VpcEndpointId"]);
    let again = ok("create-vpc-endpoint", create);
    assert_eq!(again["VpcEndpoint"]["VpcEndpointId"], endpoint.as_str(), "{who}: the same token made another endpoint");
    assert_eq!(
        (&e["VpcEndpointType"], &e["ServiceName"], &e["VpcId"]),
        (&json!("Interface"), &json!(SERVICE), &json!(vpc))
    );
    assert_eq!(e["SubnetIds"], json!([sa, sb]), "{e}");
    assert_eq!(ids(&e["Groups"], "GroupId"), BTreeSet::from([sg.clone()]), "{e}");
    assert_eq!(e["Tags"], json!([{"Key": "Name", "Value": "seed"}]), "{e}");
    assert_eq!(e["PrivateDnsEnabled"], true, "{e}");
    assert!(ids(&e["DnsEntries"], "DnsName").contains(STS), "{e}");
    let eni_ids: BTreeSet<String> = e["NetworkInterfaceIds"].as_array().unwrap().iter().map(text).collect();
    assert_eq!(eni_ids.len(), 2, "{e}");

    // describe-network-interfaces: one requester-managed ENI per subnet.
    let enis_of = |endpoint: &str| -> Vec<(String, String, Ipv4Addr)> {
        let out = ok("describe-network-interfaces", json!({"vpc": vpc}));
        let list = out["NetworkInterfaces"].as_array().unwrap_or_else(|| panic!("{out}"));
        let desc = format!("VPC Endpoint Interface {endpoint}");
        list.iter()
            .filter(|n| n["Description"] == desc.as_str())
            .map(|n| {
                assert_eq!(
                    (&n["InterfaceType"], &n["RequesterManaged"]),
                    (&json!("vpc_endpoint"), &json!(true)),
                    "{n}"
                );
                assert_eq!(n["VpcId"], vpc.as_str(), "{n}");
                (text(&n["NetworkInterfaceId"]), text(&n["SubnetId"]), text(&n["PrivateIpAddress"]).parse().unwrap())
            })
            .collect()
    };
    let enis = enis_of(&endpoint);
    assert_eq!(enis.iter().map(|n| n.0.clone()).collect::<BTreeSet<_>>(), eni_ids, "{enis:?}");
    let ip_in = |subnet: &str| enis.iter().find(|n| n.1 == subnet).unwrap_or_else(|| panic!("no ENI in {subnet}")).2;
    let (a_ip, b_ip) = (ip_in(&sa), ip_in(&sb));
    assert_eq!((&a_ip.octets()[..3], &b_ip.octets()[..3]), (&[10, net, 1][..], &[10, net, 2][..]));

    // The data plane at once: the ENIs inside, the public address outside, HTTPS through both.
    let answer = inside(&instance);
    assert_eq!(sorted(answer.ips.clone()), sorted(vec![a_ip, b_ip]), "{who}, inside: {answer:?}");
    assert_eq!(lab.outside(), [PUBLIC_STS]);
    for ip in [a_ip, b_ip] {
        let reply = lab.https(&instance, ip).unwrap_or_else(|e| panic!("{who}: HTTPS through {ip}: {e}"));
        assert!(reply.contains("hello from"), "{reply}");
    }
    // The client itself, inside the instance, by the public name: through an ENI.
    let ca = lab.ca.to_str().unwrap();
    let me = client.run(Some(&instance), &format!("https://{STS}"), "get-caller-identity", &json!({"ca": ca}));
    assert_eq!(me["Account"], "000000000000", "{who} sts get-caller-identity inside {instance}: {me}");

    // describe-vpc-endpoints by vpc-id: 5 a page, and 1 a page through NextToken.
    let create = json!({
        "vpc": vpc, "service": SERVICE, "subnets": [sa], "groups": [sg],
        "private_dns": false, "token": format!("page-{who}-{vpc}"), "name": "page",
    });
    let second = text(&ok("create-vpc-endpoint", create)["VpcEndpoint"]["VpcEndpointId"]);
    assert_ne!(second, endpoint);
    let out = ok("describe-vpc-endpoints", json!({"vpc": vpc}));
    let both = BTreeSet::from([endpoint.clone(), second.clone()]);
    assert_eq!(ids(&out["Max5"]["VpcEndpoints"], "VpcEndpointId"), both, "{out}");
    assert!(out["Max5"].get("NextToken").is_none(), "{who}: a NextToken after the last page: {out}");
    let paged = out["Paged"]["VpcEndpoints"].as_array().unwrap();
    assert_eq!(paged.len(), 2, "{who}: pages of 1 gave {out}");
    assert_eq!(ids(&out["Paged"]["VpcEndpoints"], "VpcEndpointId"), both, "{out}");
    if let Some(pages) = out["Paged"].get("Pages") {
        assert_eq!(pages.as_u64(), Some(2), "{who}: the paginator's pages: {out}");
    }
    for e in paged {
        assert_eq!((&e["State"], &e["VpcId"]), (&json!("available"), &json!(vpc)), "{e}");
    }
    let out = ok("delete-vpc-endpoints", json!({"endpoints": [second]}));
    assert_eq!(out["Unsuccessful"], json!([]), "{out}");
    // Listed as deleted for a while, as at AWS, without its ENIs.
    let out = ok("describe-vpc-endpoints", json!({"vpc": vpc}));
    let listed = out["Max5"]["VpcEndpoints"].as_array().unwrap();
    let gone = listed.iter().find(|e| e["VpcEndpointId"] == second.as_str()).unwrap_or_else(|| panic!("{out}"));
    assert_eq!(gone["State"], "deleted", "{who}: {gone}");
    assert!(gone.get("NetworkInterfaceIds").is_none_or(|n| n == &json!([])), "{who}: {gone}");
    assert_eq!(sorted(inside(&instance).ips), sorted(vec![a_ip, b_ip]), "{who}: the other endpoint's name stays");

    // A revoked rule stops new connections; authorized again, they go through.
    let out = ok("revoke-security-group-ingress", rule.clone());
    assert_eq!(out["Return"], true, "{out}");
    assert!(!connects(&instance, a_ip), "{who}: the revoked rule still lets a connection in");
    ok("authorize-security-group-ingress", rule.clone());
    assert!(lab.https(&instance, a_ip).unwrap().contains("hello from"), "{who}: authorized again");

    // A rule that names a prefix list admits the list's blocks, and a change to the list is one to the rule.
    let out = ok("create-managed-prefix-list", json!({"name": format!("clients-{who}"), "cidr": cidr}));
    let list = text(&out["PrefixList"]["PrefixListId"]);
    assert_eq!(
        (&out["PrefixList"]["Version"], &out["PrefixList"]["AddressFamily"]),
        (&json!(1), &json!("IPv4")),
        "{out}"
    );
    ok("revoke-security-group-ingress", rule.clone());
    let out = ok("authorize-security-group-ingress-from-list", json!({"group": sg, "list": list}));
    assert_eq!(out["SecurityGroupRules"][0]["PrefixListId"], list.as_str(), "{out}");
    assert!(lab.https(&instance, a_ip).unwrap().contains("hello from"), "{who}: admitted by the prefix list");
    let out = ok("modify-managed-prefix-list", json!({"list": list, "version": 1, "cidr": cidr}));
    assert_eq!(out["PrefixList"]["PrefixListId"], list.as_str(), "{out}");
    let entries = ok("get-managed-prefix-list-entries", json!({"list": list}));
    assert_eq!(entries["Entries"], json!([]), "{who}: {entries}");
    assert!(!connects(&instance, a_ip), "{who}: the block left the list, the rule still lets a connection in");
    ok("authorize-security-group-ingress", rule);

    // A removed subnet's ENI stops answering; the other one keeps serving, and is the only answer.
    let out = ok("modify-vpc-endpoint", json!({"endpoint": endpoint, "subnet": sb}));
    assert_eq!(out["Return"], true, "{out}");
    assert!(!connects(&instance, b_ip), "{who}: the removed subnet's ENI still answers");
    assert!(lab.https(&instance, a_ip).unwrap().contains("hello from"));
    assert_eq!(inside(&instance).ips, [a_ip], "{who}: after removing subnet b");
    let left: Vec<String> = enis_of(&endpoint).into_iter().map(|n| n.1).collect();
    assert_eq!(left, std::slice::from_ref(&sa), "{who}: the ENIs after removing subnet b");

    // Errors parse in the client: AWS's codes.
    assert_eq!(error("delete-vpc", json!({"vpc": vpc})), "DependencyViolation", "{who}: delete-vpc with subnets");
    let unknown = json!({"vpc": "vpc-0123456789abcdef0"});
    assert_eq!(error("describe-vpcs", unknown), "InvalidVpcID.NotFound", "{who}: a well-formed unknown id");

    // delete-vpc-endpoints: the name is refused inside (still public outside), the ENI gone.
    let out = ok("delete-vpc-endpoints", json!({"endpoints": [endpoint]}));
    assert_eq!(out["Unsuccessful"], json!([]), "{out}");
    let answer = inside(&instance);
    assert_eq!(answer.rcode, "Refused", "{who}, after delete-vpc-endpoints: {answer:?}");
    assert_eq!(lab.outside(), [PUBLIC_STS]);
    assert!(!connects(&instance, a_ip), "{who}: the deleted endpoint's ENI still answers");

    // Tear down: no namespace left.
    let out = ok("terminate-instances", json!({"instance": instance}));
    assert_eq!(out["TerminatingInstances"][0]["InstanceId"], instance.as_str(), "{out}");
    assert!(!netns::exists(&instance), "{who}: terminate-instances left namespace {instance}");
    ok("delete-security-group", json!({"group": sg}));
    for s in [&sa, &sb] {
        ok("delete-subnet", json!({"subnet": s}));
    }
    ok("delete-vpc", json!({"vpc": vpc}));
    assert!(!netns::exists(&vpc), "{who}: delete-vpc left namespace {vpc}");
    assert_eq!(error("describe-vpcs", json!({"vpc": vpc})), "InvalidVpcID.NotFound", "{who}: the deleted VPC");
    drop(lab.api);
    for ns in [&vpc, &instance] {
        assert_eq!(common::left_of(ns), Vec::<PathBuf>::new(), "{who}: left of {ns}");
    }
}

#[test]
fn the_aws_cli_runs_the_seed_and_the_data_plane_follows_each_step() {
    let test = "the_aws_cli_runs_the_seed_and_the_data_plane_follows_each_step";
    if !common::netns_available(test) {
        return;
    }
    let Some(venv) = common::aws_venv(test) else { return };
    seed(&Cli { aws: venv.join("bin/aws") }, 20);
}

#[test]
fn boto3_runs_the_seed_and_the_data_plane_follows_each_step() {
    let test = "boto3_runs_the_seed_and_the_data_plane_follows_each_step";
    if !common::netns_available(test) {
        return;
    }
    let Some(venv) = common::aws_venv(test) else { return };
    seed(&Boto3::new(venv.join("bin/python")), 21);
}
