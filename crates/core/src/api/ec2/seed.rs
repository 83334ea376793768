//! A config file that holds `[api]` and a VPC: the VPC seeds the API's
//! model, so the config's objects and the API's live in one model.
//!
//! # Theory of operation
//!
//! **Made by API calls.** The file's `[vpc]`, `[[network_acl]]`,
//! `[[subnet]]`, `[[prefix_list]]`, `[[security_group]]`, `[[instance]]`
//! and `[[endpoint]]` are made with the calls a user would send (CreateVpc,
//! CreateSubnet, CreateManagedPrefixList, AuthorizeSecurityGroupIngress,
//! RunInstances, CreateVpcEndpoint, …), in
//! that order, so they are checked as API input is and become ordinary
//! resources: Describe shows them, Modify and Delete change them, the
//! state dir keeps them. A security group of the file holds exactly the
//! file's rules (the egress rule a new group gets is revoked first); the
//! file's `sg-default` is the VPC's default group.
//!
//! **Once.** The model keeps the fingerprint of the file's VPC part (every
//! table but `[api]`, `[upstreams]` and `[dns]`; see
//! [`crate::api::settings::vpc_part_fingerprint`]). A restart with the same
//! part seeds nothing, so what the API changed since is kept; a changed
//! part is refused before anything changes, since the model and the file
//! would disagree on what is true.
//!
//! **Ids.** A file's id of AWS's shape (`subnet-` and 8 or 17 hex digits)
//! is the resource's id. Any other (`subnet-lab-a`) cannot be named in an
//! API call, so the resource gets an AWS-shaped id and keeps the file's id
//! as its `Name` tag: `--filters Name=tag:Name,Values=subnet-lab-a`.
//!
//! **What the API has no field for.** An endpoint's own knobs (`ports`,
//! `bandwidth`, `allowed_sni`, `allow_non_tls`, `hello_timeout`,
//! `connect_timeout`, `max_connections`) ride with it in the model
//! ([`Carriage`]): the data plane honours them, no API call shows or
//! changes them. What shapes a whole VPC differently from an API VPC (which
//! runs in the namespace its id names, one single-queue device per
//! endpoint, AWS's MTU and timeouts: `vpc.netns`, `vpc.queues`, `vpc.mtu`,
//! `[flow_logs]`, …) is refused, naming the key.
//!
//! **All or nothing.** The calls run on a copy of the model, which replaces
//! it only when every call succeeded.

use std::collections::BTreeMap;

use super::plan::{default_carriage, Upstreams};
use super::{Call, Carriage, Ec2, IdKind};
use crate::api::error::ApiError;
use crate::api::query::Params;
use crate::api::xml::first_text;
use crate::config::{parse_host_port, Config, DEFAULT_MTU};
use crate::filter::{ConntrackTimeouts, Protocol, RuleAction, SgPeer, SgRule, DEFAULT_GROUP_ID};
use crate::model::Upstream;
use crate::policy::PolicyDocument;

/// Why the file's VPC could not seed the model: the key at fault and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct SeedError {
    /// The config key, e.g. `endpoint[0].subnets`.
    pub key: String,
    /// What is wrong (an API refusal keeps its code).
    pub message: String,
}

fn refused(key: impl Into<String>, message: impl Into<String>) -> SeedError {
    SeedError { key: key.into(), message: message.into() }
}

fn not_with_api(key: &str, why: &str) -> SeedError {
    refused(key, format!("not with [api]: {why}; remove it, or serve this file without [api]"))
}

/// Where the file's endpoints send their streams (`endpoint.upstream`), by service.
pub fn upstreams(config: &Config) -> Result<Upstreams, SeedError> {
    let mut map = Upstreams::new();
    for (i, e) in config.endpoints.iter().enumerate() {
        let Some(to) = &e.upstream else { continue };
        let key = format!("endpoint[{i}].upstream");
        let (host, port) = parse_host_port(to).ok_or_else(|| refused(&key, "host:port, e.g. 127.0.0.1:8443"))?;
        let upstream = Upstream { host: host.to_string(), port };
        match map.get(&e.service) {
            Some(other) if *other != upstream => {
                return Err(refused(key, format!("{} already goes to {other}: one upstream per service", e.service)))
            }
            _ => {
                map.insert(e.service.clone(), upstream);
            }
        }
    }
    Ok(map)
}

/// The keys the EC2 API has no field for, refused before anything is made.
fn check_api_can_carry(config: &Config) -> Result<(), SeedError> {
    let vpc = &config.vpc;
    let namespace = "an API VPC runs in the namespace its id names, one device per endpoint";
    if vpc.netns != "plk-vpc" {
        return Err(not_with_api("vpc.netns", namespace));
    }
    if vpc.tun != "eni0" {
        return Err(not_with_api("vpc.tun", namespace));
    }
    if vpc.queues.is_some() {
        return Err(not_with_api("vpc.queues", "an API endpoint's device has one queue"));
    }
    if vpc.mtu != DEFAULT_MTU {
        return Err(not_with_api("vpc.mtu", "API endpoints have AWS's MTU of 8500"));
    }
    if Some(vpc.router) != vpc.cidr.nth(1) {
        return Err(not_with_api("vpc.router", "the VPC router is the base of the block + 1, as at AWS"));
    }
    if config.conntrack != ConntrackTimeouts::default() {
        return Err(not_with_api("vpc.tcp_established_timeout", "API VPCs track flows with AWS's timeouts"));
    }
    if config.flow_logs.is_some() {
        return Err(not_with_api("flow_logs", "flow logs are written for VPCs of a file without [api]"));
    }
    Ok(())
}

/// The model being seeded, and the file's ids as the model names them.
struct Seeder<'r> {
    ec2: Ec2,
    now: u64,
    random: &'r mut dyn FnMut() -> [u8; 9],
    ids: BTreeMap<String, String>,
}

type Pairs = Vec<(String, String)>;

/// One parameter.
fn kv(key: impl Into<String>, value: impl ToString) -> (String, String) {
    (key.into(), value.to_string())
}

impl Seeder<'_> {
    /// Runs `action`; `chosen` is the file's id of what it makes.
    fn call(&mut self, key: &str, action: &str, chosen: Option<&str>, pairs: Pairs) -> Result<String, SeedError> {
        let params = Params::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let mut call = Call {
            params: &params,
            request_id: "privlink-seed",
            now: self.now,
            random: self.random,
            chosen_id: chosen,
        };
        let (doc, _) = self.ec2.call(action, &mut call).map_err(|e| api_refused(key, action, e))?;
        Ok(doc)
    }

    /// Makes one resource and records its id; `field` is where the answer names it.
    fn make(
        &mut self,
        key: &str,
        kind: IdKind,
        action: &str,
        file_id: &str,
        pairs: Pairs,
        field: &str,
    ) -> Result<String, SeedError> {
        let chosen = kind.is_well_formed(file_id).then_some(file_id);
        if chosen.is_some_and(|id| self.ec2.exists(id)) {
            return Err(refused(key, format!("{file_id} exists in the state dir's model already")));
        }
        let doc = self.call(key, action, chosen, pairs)?;
        let id = first_text(&doc, field).ok_or_else(|| refused(key, format!("{action} answered no {field}")))?;
        if id != file_id {
            let tag = vec![kv("ResourceId.1", &id), kv("Tag.1.Key", "Name"), kv("Tag.1.Value", file_id)];
            self.call(key, "CreateTags", None, tag)?;
        }
        self.ids.insert(file_id.to_string(), id.clone());
        Ok(id)
    }

    /// The model's id of the file's `id`.
    fn id(&self, key: &str, id: &str) -> Result<String, SeedError> {
        self.ids.get(id).cloned().ok_or_else(|| refused(key, format!("{id} is not made by this file")))
    }
}

fn api_refused(key: &str, action: &str, e: ApiError) -> SeedError {
    refused(key, format!("{action} refused it: {}: {}", e.code, e.message))
}

/// `IpProtocol`, `FromPort` and `ToPort` of a rule, as EC2 takes them.
fn ip_permission(r: &SgRule) -> Pairs {
    let (protocol, ports) = match r.protocol {
        Protocol::Tcp => ("tcp", Some((r.ports.lo().to_string(), r.ports.hi().to_string()))),
        Protocol::Udp => ("udp", Some((r.ports.lo().to_string(), r.ports.hi().to_string()))),
        Protocol::Icmp => ("icmp", Some(("-1".to_string(), "-1".to_string()))),
        Protocol::All => ("-1", None),
    };
    let mut pairs = vec![kv("IpPermissions.1.IpProtocol", protocol)];
    if let Some((from, to)) = ports {
        pairs.push(kv("IpPermissions.1.FromPort", from));
        pairs.push(kv("IpPermissions.1.ToPort", to));
    }
    pairs
}

/// Seeds `ec2` with `config`'s VPC, unless `fingerprint` seeded it already;
/// `now` (Unix seconds) is the resources' creation and launch time.
/// Returns whether the model changed. `Err` leaves `ec2` as it was.
pub fn seed(
    ec2: &mut Ec2,
    config: &Config,
    fingerprint: &str,
    now: u64,
    random: &mut dyn FnMut() -> [u8; 9],
) -> Result<bool, SeedError> {
    match &ec2.seeded_from {
        Some(f) if f == fingerprint => return Ok(false),
        Some(_) => {
            return Err(refused(
                "vpc",
                "the file's VPC part changed since it seeded the state dir's model: change the VPC through the API \
                 (the model is the truth once seeded), or start from an empty --state-dir",
            ))
        }
        None => {}
    }
    check_api_can_carry(config)?;
    if config.vpc.region != ec2.region {
        return Err(refused("vpc.region", format!("the API serves {} (api.region)", ec2.region)));
    }
    let mut s = Seeder { ec2: ec2.clone(), now, random, ids: BTreeMap::new() };
    let v = &config.vpc;
    let cidr = kv("CidrBlock", v.cidr);
    let vpc = s.make("vpc", IdKind::Vpc, "CreateVpc", &v.id, vec![cidr], "vpcId")?;
    let default_group = s.ec2.vpcs[&vpc].default_security_group.clone();
    s.ids.insert(DEFAULT_GROUP_ID.to_string(), default_group);
    for (attribute, on) in [("EnableDnsSupport.Value", v.dns_support), ("EnableDnsHostnames.Value", v.dns_hostnames)] {
        s.call("vpc", "ModifyVpcAttribute", None, vec![kv("VpcId", &vpc), kv(attribute, on)])?;
    }
    for (i, acl) in config.rules.network_acls.iter().enumerate() {
        let key = format!("network_acl[{i}]");
        let id =
            s.make(&key, IdKind::NetworkAcl, "CreateNetworkAcl", &acl.id, vec![kv("VpcId", &vpc)], "networkAclId")?;
        for (dir, entries) in [("ingress", &acl.ingress), ("egress", &acl.egress)] {
            for (j, e) in entries.iter().enumerate() {
                let action = if e.action == RuleAction::Allow { "allow" } else { "deny" };
                let protocol = match e.protocol {
                    Protocol::Tcp => "6",
                    Protocol::Udp => "17",
                    Protocol::Icmp => "1",
                    Protocol::All => "-1",
                };
                let mut pairs = vec![
                    kv("NetworkAclId", &id),
                    kv("RuleNumber", e.rule.get()),
                    kv("Protocol", protocol),
                    kv("RuleAction", action),
                    kv("Egress", dir == "egress"),
                    kv("CidrBlock", e.cidr),
                ];
                if e.protocol.has_ports() {
                    pairs.push(kv("PortRange.From", e.ports.lo()));
                    pairs.push(kv("PortRange.To", e.ports.hi()));
                }
                s.call(&format!("{key}.{dir}[{j}]"), "CreateNetworkAclEntry", None, pairs)?;
            }
        }
    }
    for (i, sub) in config.subnets.iter().enumerate() {
        let key = format!("subnet[{i}]");
        let pairs = vec![kv("VpcId", &vpc), kv("CidrBlock", sub.cidr), kv("AvailabilityZone", &sub.az)];
        let id = s.make(&key, IdKind::Subnet, "CreateSubnet", &sub.id, pairs, "subnetId")?;
        if let Some(acl) = &sub.network_acl {
            let key = format!("{key}.network_acl");
            let association = s.ec2.subnets[&id].network_acl_association.clone();
            let pairs = vec![kv("AssociationId", association), kv("NetworkAclId", s.id(&key, acl)?)];
            s.call(&key, "ReplaceNetworkAclAssociation", None, pairs)?;
        }
    }
    for (i, list) in config.rules.prefix_lists.iter().enumerate() {
        let key = format!("prefix_list[{i}]");
        let mut pairs = vec![
            kv("PrefixListName", format!("config-{}", list.id)),
            kv("MaxEntries", list.cidrs.len().max(1)),
            kv("AddressFamily", "IPv4"),
        ];
        for (n, c) in list.cidrs.iter().enumerate() {
            pairs.push(kv(format!("Entry.{}.Cidr", n + 1), c));
        }
        s.make(&key, IdKind::PrefixList, "CreateManagedPrefixList", &list.id, pairs, "prefixListId")?;
    }
    seed_groups(&mut s, config, &vpc)?;
    for (i, inst) in config.instances.iter().enumerate() {
        let key = format!("instance[{i}]");
        let subnet = config
            .subnets
            .iter()
            .find(|sub| sub.cidr.contains(inst.ip))
            .ok_or_else(|| refused(format!("{key}.ip"), format!("{} is in no [[subnet]]", inst.ip)))?;
        let mut pairs = vec![
            kv("ImageId", "ami-00000000"),
            kv("MinCount", 1),
            kv("MaxCount", 1),
            kv("SubnetId", s.id(&key, &subnet.id)?),
            kv("PrivateIpAddress", inst.ip),
        ];
        for (n, g) in inst.security_groups.iter().enumerate() {
            pairs.push(kv(format!("SecurityGroupId.{}", n + 1), s.id(&key, g)?));
        }
        s.make(&key, IdKind::Instance, "RunInstances", &inst.id, pairs, "instanceId")?;
    }
    for (i, e) in config.endpoints.iter().enumerate() {
        let key = format!("endpoint[{i}]");
        let mut pairs = vec![
            kv("VpcId", &vpc),
            kv("VpcEndpointType", "Interface"),
            kv("ServiceName", &e.service),
            kv("PrivateDnsEnabled", e.private_dns),
        ];
        let mut fixed = 0;
        for (n, &si) in e.subnets.iter().enumerate() {
            let subnet = s.id(&key, &config.subnets[si].id)?;
            if let Some(ip) = e.ips.get(&si) {
                fixed += 1;
                pairs.push(kv(format!("SubnetConfiguration.{fixed}.SubnetId"), &subnet));
                pairs.push(kv(format!("SubnetConfiguration.{fixed}.Ipv4"), ip));
            }
            pairs.push(kv(format!("SubnetId.{}", n + 1), subnet));
        }
        for (n, g) in e.settings.security_groups.iter().enumerate() {
            pairs.push(kv(format!("SecurityGroupId.{}", n + 1), s.id(&key, g)?));
        }
        if e.settings.policy.text() != PolicyDocument::full_access().text() {
            pairs.push(kv("PolicyDocument", e.settings.policy.text()));
        }
        let file_id = e.id.clone().unwrap_or_default();
        let id = s.make(&key, IdKind::VpcEndpoint, "CreateVpcEndpoint", &file_id, pairs, "vpcEndpointId")?;
        // What the API has no field for rides with the endpoint.
        let c = &e.settings;
        let carriage = Carriage {
            ports: c.ports.clone(),
            bandwidth: c.bandwidth,
            allowed_sni: c.allowed_sni.clone(),
            allow_non_tls: c.allow_non_tls,
            hello_timeout: c.hello_timeout,
            connect_timeout: c.connect_timeout,
            max_connections: c.max_connections,
        };
        if carriage != default_carriage() {
            s.ec2.endpoints.get_mut(&id).expect("just made").carriage = Some(carriage);
        }
    }
    s.ec2.seeded_from = Some(fingerprint.to_string());
    *ec2 = s.ec2;
    Ok(true)
}

/// The file's groups, holding exactly the file's rules.
fn seed_groups(s: &mut Seeder<'_>, config: &Config, vpc: &str) -> Result<(), SeedError> {
    let mut made = Vec::new();
    for (i, g) in config.rules.security_groups.iter().enumerate() {
        let key = format!("security_group[{i}]");
        let id = if g.id == DEFAULT_GROUP_ID {
            s.id(&key, DEFAULT_GROUP_ID)?
        } else {
            // EC2 refuses a GroupName that starts with `sg-`; the Name tag keeps the file's id.
            let name = format!("config-{}", g.id.strip_prefix("sg-").unwrap_or(&g.id));
            let pairs = vec![kv("VpcId", vpc), kv("GroupName", name), kv("GroupDescription", "from the config file")];
            s.make(&key, IdKind::SecurityGroup, "CreateSecurityGroup", &g.id, pairs, "groupId")?
        };
        made.push((key, id, g));
    }
    for (key, id, g) in made {
        let group = s.ec2.security_groups[&id].clone();
        for (action, rules) in
            [("RevokeSecurityGroupIngress", &group.ingress), ("RevokeSecurityGroupEgress", &group.egress)]
        {
            if rules.is_empty() {
                continue;
            }
            let mut pairs = vec![kv("GroupId", &id)];
            pairs.extend(rules.iter().enumerate().map(|(n, r)| kv(format!("SecurityGroupRuleId.{}", n + 1), &r.id)));
            s.call(&key, action, None, pairs)?;
        }
        for (dir, action, rules) in [
            ("ingress", "AuthorizeSecurityGroupIngress", &g.ingress),
            ("egress", "AuthorizeSecurityGroupEgress", &g.egress),
        ] {
            for (j, r) in rules.iter().enumerate() {
                let key = format!("{key}.{dir}[{j}]");
                let mut pairs = vec![kv("GroupId", &id)];
                pairs.extend(ip_permission(r));
                match &r.peer {
                    SgPeer::Cidr(c) => pairs.push(kv("IpPermissions.1.IpRanges.1.CidrIp", c)),
                    SgPeer::Group(other) => pairs.push(kv("IpPermissions.1.Groups.1.GroupId", s.id(&key, other)?)),
                    SgPeer::PrefixList(list) => {
                        pairs.push(kv("IpPermissions.1.PrefixListIds.1.PrefixListId", s.id(&key, list)?))
                    }
                }
                s.call(&key, action, None, pairs)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ec2::testkit::{counter, Lab, START};
    use crate::api::ec2::RulePeer;
    use crate::api::settings::vpc_part_fingerprint;

    const FILE: &str = r#"
[api]
[vpc]
id = "vpc-0123456789abcdef0"
cidr = "10.0.0.0/16"
region = "us-east-1"

[[subnet]]
id = "subnet-0a000000000000001"
cidr = "10.0.1.0/24"
az = "us-east-1a"
network_acl = "acl-lab"

[[subnet]]
id = "subnet-lab-b"
cidr = "10.0.2.0/24"
az = "us-east-1b"

[[network_acl]]
id = "acl-lab"
ingress = [{ rule = 100, protocol = "tcp", ports = "443", cidr = "10.0.0.0/16", action = "allow" }]
egress = [{ rule = 100, protocol = "all", cidr = "0.0.0.0/0", action = "allow" }]

[[security_group]]
id = "sg-endpoint"
ingress = [{ protocol = "tcp", ports = "443", group = "sg-clients" }]

[[prefix_list]]
id = "pl-lab"
cidrs = ["10.0.0.0/16", "192.0.2.0/24"]

[[security_group]]
id = "sg-clients"
egress = [{ protocol = "tcp", ports = "443", cidr = "10.0.0.0/16" }, { protocol = "tcp", ports = "8443", prefix_list = "pl-lab" }]

[[instance]]
id = "i-0a000000000000001"
ip = "10.0.1.10"
security_groups = ["sg-clients"]

[[endpoint]]
id = "vpce-0a000000000000001"
service = "com.amazonaws.us-east-1.ec2"
subnets = ["subnet-0a000000000000001", "subnet-lab-b"]
ips = { "subnet-0a000000000000001" = "10.0.1.49" }
upstream = "127.0.0.1:8443"
security_groups = ["sg-endpoint"]
"#;

    fn config(text: &str) -> Config {
        Config::from_toml("lab.toml", text).unwrap()
    }

    fn seeded(text: &str) -> Result<Ec2, SeedError> {
        let mut ec2 = Ec2::new("us-east-1");
        seed(&mut ec2, &config(text), &vpc_part_fingerprint(text).unwrap(), START, &mut counter())?;
        Ok(ec2)
    }

    fn named(ec2: &Ec2, name: &str) -> String {
        let found = ec2.tags.iter().find(|(_, t)| t.get("Name").map(String::as_str) == Some(name));
        found.map(|(id, _)| id.clone()).unwrap_or_else(|| panic!("nothing is tagged Name={name}"))
    }

    #[test]
    fn the_files_vpc_becomes_api_resources_with_its_ids_and_rules() {
        let ec2 = seeded(FILE).unwrap();
        let vpc = "vpc-0123456789abcdef0";
        assert!(ec2.vpcs[vpc].dns_support && ec2.vpcs[vpc].dns_hostnames, "the file's defaults: both on");
        // An AWS-shaped id is kept; another is the Name tag of an AWS-shaped one.
        let a = &ec2.subnets["subnet-0a000000000000001"];
        let b = named(&ec2, "subnet-lab-b");
        assert!(IdKind::Subnet.is_well_formed(&b) && ec2.subnets[&b].az == "us-east-1b");
        let acl = named(&ec2, "acl-lab");
        assert_eq!(a.network_acl, acl, "associated with the file's NACL");
        assert_eq!(ec2.subnets[&b].network_acl, ec2.vpcs[vpc].default_network_acl);
        let entries: Vec<_> = ec2.network_acls[&acl].entries.iter().filter(|e| e.rule_number == 100).collect();
        assert_eq!(entries.len(), 2);
        assert!(entries.iter().any(|e| !e.egress && e.protocol == "6" && e.ports == Some((443, 443))));
        // A group holds exactly the file's rules: the egress rule a new group gets is gone.
        let (endpoint_sg, clients) = (named(&ec2, "sg-endpoint"), named(&ec2, "sg-clients"));
        let sg = &ec2.security_groups[&endpoint_sg];
        assert!(sg.egress.is_empty(), "{sg:?}");
        assert_eq!(sg.ingress.len(), 1);
        assert_eq!(sg.ingress[0].peer, RulePeer::Group(clients.clone()));
        assert_eq!((sg.ingress[0].from_port, sg.ingress[0].to_port), (Some(443), Some(443)));
        let egress = &ec2.security_groups[&clients].egress;
        let list = named(&ec2, "pl-lab");
        assert_eq!(egress.len(), 2);
        assert_eq!(egress[1].peer, RulePeer::PrefixList(list.clone()));
        assert_eq!(ec2.prefix_lists[&list].entries.len(), 2);
        let i = &ec2.instances["i-0a000000000000001"];
        assert_eq!(i.launch_time, START, "made now, not in 1970");
        assert_eq!((i.ip.to_string().as_str(), i.security_groups.clone()), ("10.0.1.10", vec![clients]));
        let e = &ec2.endpoints["vpce-0a000000000000001"];
        assert_eq!(e.security_groups, vec![endpoint_sg]);
        assert!(e.private_dns);
        let enis: Vec<_> = ec2.network_interfaces.values().filter(|n| n.endpoint == e.id).collect();
        assert_eq!(enis.len(), 2);
        assert!(enis.iter().any(|n| n.subnet == a.id && n.ip.to_string() == "10.0.1.49"), "{enis:?}");
        // The data plane sees them as it sees any API VPC, with the file's upstream.
        let ups = upstreams(&config(FILE)).unwrap();
        let plan = ec2.vpc_plan(vpc, &ups, ec2.rule_set_config(vpc)).unwrap();
        assert_eq!(plan.plan.endpoints[0].upstream.to_string(), "127.0.0.1:8443");
        // And the API answers for them.
        let mut lab = Lab::new();
        lab.ec2 = ec2;
        let doc = lab.ok("DescribeVpcEndpoints", &[("VpcEndpointId.1", "vpce-0a000000000000001")]);
        assert!(doc.contains("<vpcId>vpc-0123456789abcdef0</vpcId>"), "{doc}");
    }

    #[test]
    fn an_endpoints_own_knobs_ride_with_it_to_the_data_plane() {
        let ec2 = seeded(FILE).unwrap();
        assert_eq!(ec2.endpoints["vpce-0a000000000000001"].carriage, None, "the defaults are not stored");
        let knobs = "security_groups = [\"sg-endpoint\"]\nbandwidth = \"10Mbit\"\nallowed_sni = [\"*.amazonaws.com\"]\nmax_connections = 5\nports = [443, 8443]";
        let text = FILE.replace("security_groups = [\"sg-endpoint\"]\n", &format!("{knobs}\n"));
        assert_ne!(text, FILE);
        let ec2 = seeded(&text).unwrap();
        let c = ec2.endpoints["vpce-0a000000000000001"].carriage.clone().expect("stored");
        assert_eq!((c.ports.as_slice(), c.max_connections), (&[443, 8443][..], 5));
        let plan = ec2.vpc_plan("vpc-0123456789abcdef0", &Upstreams::new(), Default::default()).unwrap();
        let s = &plan.plan.endpoints[0].settings;
        assert_eq!(s.bandwidth.map(|b| b.rate.bits_per_sec()), Some(10_000_000));
        assert_eq!(s.allowed_sni, ["*.amazonaws.com"]);
        assert_eq!((s.ports.clone(), s.max_connections), (vec![443, 8443], 5));
        // The model file keeps them; an older one without them loads as the defaults.
        let json = serde_json::to_string(&ec2).unwrap();
        assert_eq!(serde_json::from_str::<Ec2>(&json).unwrap(), ec2);
        let plain = serde_json::to_string(&seeded(FILE).unwrap()).unwrap();
        assert!(!plain.contains("carriage"), "{plain}");
    }

    #[test]
    fn a_model_is_seeded_once_and_a_changed_file_is_refused() {
        let fp = vpc_part_fingerprint(FILE).unwrap();
        let mut ec2 = seeded(FILE).unwrap();
        // The API changes the seeded VPC; a restart with the same file keeps the change.
        ec2.endpoints.get_mut("vpce-0a000000000000001").unwrap().private_dns = false;
        let before = ec2.clone();
        assert_eq!(seed(&mut ec2, &config(FILE), &fp, START, &mut counter()), Ok(false));
        assert_eq!(ec2, before);
        let changed = FILE.replace("10.0.1.49", "10.0.1.50");
        let fp2 = vpc_part_fingerprint(&changed).unwrap();
        let e = seed(&mut ec2, &config(&changed), &fp2, START, &mut counter()).unwrap_err();
        assert_eq!(e.key, "vpc");
        assert!(e.message.contains("--state-dir"), "{e}");
        assert_eq!(ec2, before, "refused: nothing changed");
    }

    #[test]
    fn what_the_api_cannot_carry_is_refused_by_its_key() {
        let cases = [
            ("region = \"us-east-1\"", "region = \"us-east-1\"\nnetns = \"lab\"", "vpc.netns"),
            ("region = \"us-east-1\"", "region = \"us-east-1\"\nqueues = 2", "vpc.queues"),
            ("region = \"us-east-1\"", "region = \"us-east-1\"\nmtu = 1500", "vpc.mtu"),
            ("ip = \"10.0.1.10\"", "ip = \"10.9.1.10\"", "instance[0].ip"),
        ];
        for (from, to, key) in cases {
            let text = FILE.replace(from, to);
            assert_ne!(text, FILE);
            assert_eq!(seeded(&text).unwrap_err().key, key, "{to}");
        }
        let text = format!("{FILE}\n[flow_logs]\nstdout = true\n");
        assert_eq!(seeded(&text).unwrap_err().key, "flow_logs");
        let mut other_region = Ec2::new("eu-west-1");
        let e = seed(&mut other_region, &config(FILE), "fp", START, &mut counter()).unwrap_err();
        assert_eq!(e.key, "vpc.region");
        assert_eq!(other_region, Ec2::new("eu-west-1"));
    }

    #[test]
    fn an_api_refusal_names_the_key_and_changes_nothing() {
        // The config file leaves instance addresses to the API, which keeps a subnet's first four.
        let text = FILE.replace("ip = \"10.0.1.10\"", "ip = \"10.0.1.2\"");
        let e = seeded(&text).unwrap_err();
        assert_eq!(e.key, "instance[0]");
        assert!(e.message.starts_with("RunInstances refused it: "), "{e}");
        // An id the model holds already.
        let mut ec2 = seeded(FILE).unwrap();
        ec2.seeded_from = None;
        let before = ec2.clone();
        let e = seed(&mut ec2, &config(FILE), "fp", START, &mut counter()).unwrap_err();
        assert_eq!(e.key, "vpc");
        assert!(e.message.contains("exists in the state dir's model already"), "{e}");
        assert_eq!(ec2, before);
    }

    #[test]
    fn one_upstream_per_service() {
        let text = FILE.replace("[[endpoint]]", "[[endpoint]]\nid = \"vpce-0a000000000000002\"\nservice = \"com.amazonaws.us-east-1.ec2\"\nsubnets = [\"subnet-lab-b\"]\nprivate_dns = false\nupstream = \"127.0.0.1:9443\"\n\n[[endpoint]]");
        let e = upstreams(&config(&text)).unwrap_err();
        assert_eq!(e.key, "endpoint[1].upstream");
    }
}
