//! The TOML configuration: the user-facing contract (the README's config reference).
//!
//! Parsing happens in two steps. `serde` + `toml` read the file into `Raw*`
//! structs (unknown keys and ill-typed values are refused there, with the
//! line toml reports). [`Config::from_toml`] then checks what one value alone
//! cannot tell (a subnet outside the VPC, an unknown subnet name, an IP in a
//! reserved slot) and names the file, line and key at fault. Nothing touches
//! the system before this succeeds.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::catalog::{self, ServiceInfo};
use crate::cidr::Cidr;
use crate::filter::{
    ConntrackTimeouts, GroupMembers, NaclEntry, NetworkAcl, PortRange, PrefixList, Protocol, RuleAction, RuleNumber,
    RuleSet, RuleSetConfig, SecurityGroup, SgPeer, SgRule, DEFAULT_GROUP_ID,
};
use crate::model::{Bandwidth, EndpointSettings, Subnet, Vpc};
use crate::policy::{PolicyDocument, SniPolicy};
use crate::shaper::{ByteSize, Rate};

/// The largest MTU a TUN carries (the kernel's limit for an IPv4 TUN payload as pasta uses).
pub const MAX_MTU: u32 = 65520;
/// Below this, a TCP segment with options no longer fits the IPv4 minimum.
pub const MIN_MTU: u32 = 576;
/// AWS: "VPC endpoints support a maximum transmission unit (MTU) of 8500 bytes."
pub const DEFAULT_MTU: u32 = 8500;
/// Most TUN queues (`vpc.queues`), each served by its own thread and stack.
pub const MAX_QUEUES: usize = 16;
/// How long a client's SYN waits for the upstream connection before it gets an RST.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A configuration error, located in the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Read {
        /// Path as given.
        file: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for the schema, or a value is ill-formed.
    #[error("{file}:{line}: {msg}")]
    Syntax {
        /// Path as given.
        file: String,
        /// 1-based line.
        line: usize,
        /// What toml said.
        msg: String,
    },
    /// A value is well-formed but not acceptable with the rest of the file.
    #[error("{file}:{line}: {key}: {msg}")]
    Invalid {
        /// Path as given.
        file: String,
        /// 1-based line (0 when no span is known).
        line: usize,
        /// The key at fault, e.g. `subnet[1].cidr`.
        key: String,
        /// What is wrong.
        msg: String,
    },
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The VPC the namespace plays.
    pub vpc: Vpc,
    /// Subnets, in file order.
    pub subnets: Vec<Subnet>,
    /// Interface endpoints, in file order.
    pub endpoints: Vec<EndpointSpec>,
    /// The VPC resolver.
    pub dns: Dns,
    /// Security groups, network ACLs, prefix lists and group members, as the filter takes them
    /// (the ENIs are filled in by the plan).
    pub rules: RuleSetConfig,
    /// Connection tracking timeouts.
    pub conntrack: ConntrackTimeouts,
    /// `[flow_logs]`, when present.
    pub flow_logs: Option<FlowLogs>,
    /// `[[instance]]`: lab instances, in file order (members of their groups;
    /// with `[api]`, instances of the API's model).
    pub instances: Vec<InstanceSpec>,
}

/// `[[instance]]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSpec {
    /// Its id as written.
    pub id: String,
    /// Its private IP.
    pub ip: Ipv4Addr,
    /// Its groups.
    pub security_groups: Vec<String>,
}

/// `[flow_logs]`: VPC Flow Logs of every ENI, AWS default format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowLogs {
    /// File the records are appended to.
    pub file: Option<std::path::PathBuf>,
    /// Also print records on stdout.
    pub stdout: bool,
    /// Seconds per aggregation window.
    pub interval: u32,
    /// The account id written in every record.
    pub account_id: String,
}

/// `[dns]`: what the VPC resolver does with names outside the private zones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dns {
    /// Upstream resolvers. `None`: the host's `/etc/resolv.conf`; empty: privacy
    /// mode, where such names are REFUSED and nothing leaks.
    pub forward: Option<Vec<SocketAddr>>,
}

/// `[[endpoint]]`, validated.
#[derive(Debug, Clone)]
pub struct EndpointSpec {
    /// `vpce-…` id when given; else one is generated once and kept in the state dir.
    pub id: Option<String>,
    /// Service name, e.g. `com.amazonaws.us-east-1.ec2`.
    pub service: String,
    /// Indexes into [`Config::subnets`], one per AZ.
    pub subnets: Vec<usize>,
    /// Private DNS on.
    pub private_dns: bool,
    /// The service's names, from the catalog (or `dns_names` for a custom service).
    pub service_info: ServiceInfo,
    /// Fixed ENI IPs by subnet index.
    pub ips: BTreeMap<usize, Ipv4Addr>,
    /// Where the real service is (`host:port`); `None`: its public DNS name, port 443.
    pub upstream: Option<String>,
    /// How its streams are carried.
    pub settings: EndpointSettings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    vpc: RawVpc,
    #[serde(default)]
    subnet: Vec<RawSubnet>,
    #[serde(default)]
    endpoint: Vec<RawEndpoint>,
    dns: Option<RawDns>,
    #[serde(default)]
    security_group: Vec<RawSecurityGroup>,
    #[serde(default)]
    network_acl: Vec<RawNetworkAcl>,
    #[serde(default)]
    prefix_list: Vec<RawPrefixList>,
    #[serde(default)]
    instance: Vec<RawInstance>,
    flow_logs: Option<RawFlowLogs>,
    // Read by the API's settings, which share the file.
    #[serde(default, rename = "api")]
    _api: Option<toml::Value>,
    #[serde(default, rename = "upstreams")]
    _upstreams: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecurityGroup {
    id: Spanned<String>,
    #[serde(default)]
    ingress: Vec<Spanned<RawSgRule>>,
    #[serde(default)]
    egress: Vec<Spanned<RawSgRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSgRule {
    protocol: Protocol,
    ports: Option<PortRange>,
    #[serde(default, deserialize_with = "rule_cidr::optional")]
    cidr: Option<Cidr>,
    group: Option<String>,
    prefix_list: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetworkAcl {
    id: Spanned<String>,
    #[serde(default)]
    ingress: Vec<Spanned<RawNaclEntry>>,
    #[serde(default)]
    egress: Vec<Spanned<RawNaclEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNaclEntry {
    rule: u32,
    protocol: Protocol,
    ports: Option<PortRange>,
    #[serde(deserialize_with = "rule_cidr::one")]
    cidr: Cidr,
    action: RuleAction,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrefixList {
    id: String,
    #[serde(deserialize_with = "rule_cidr::many")]
    cidrs: Vec<Cidr>,
}

/// Rule CIDRs (security group rules, NACL entries, prefix lists) are read
/// with the filter's parser, so a bad one gets the rule error
/// ([`crate::filter::ParseRuleError::Cidr`]), as every rule field does.
mod rule_cidr {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer};

    use crate::cidr::Cidr;
    use crate::filter::parse_rule_cidr;

    pub(super) fn one<'de, D: Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        parse_rule_cidr(&String::deserialize(d)?).map_err(D::Error::custom)
    }

    pub(super) fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cidr>, D::Error> {
        Option::<String>::deserialize(d)?.map(|s| parse_rule_cidr(&s).map_err(D::Error::custom)).transpose()
    }

    pub(super) fn many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Cidr>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        texts.iter().map(|s| parse_rule_cidr(s).map_err(D::Error::custom)).collect()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInstance {
    id: String,
    ip: Ipv4Addr,
    #[serde(default)]
    security_groups: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlowLogs {
    file: Option<std::path::PathBuf>,
    #[serde(default)]
    stdout: bool,
    interval: Option<Spanned<u32>>,
    account_id: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDns {
    forward: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVpc {
    id: Option<Spanned<String>>,
    cidr: Spanned<Cidr>,
    region: Spanned<String>,
    #[serde(default = "default_netns")]
    netns: Spanned<String>,
    #[serde(default = "default_tun")]
    tun: Spanned<String>,
    #[serde(default = "yes")]
    dns_support: bool,
    #[serde(default = "yes")]
    dns_hostnames: bool,
    mtu: Option<Spanned<u32>>,
    queues: Option<Spanned<usize>>,
    router: Option<Spanned<Ipv4Addr>>,
    tcp_established_timeout: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubnet {
    id: Spanned<String>,
    cidr: Spanned<Cidr>,
    az: Spanned<String>,
    network_acl: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEndpoint {
    id: Option<Spanned<String>>,
    service: Spanned<String>,
    subnets: Spanned<Vec<Spanned<String>>>,
    private_dns: Option<Spanned<bool>>,
    dns_names: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    ips: BTreeMap<Spanned<String>, Spanned<Ipv4Addr>>,
    upstream: Option<Spanned<String>>,
    ports: Option<Spanned<Vec<u16>>>,
    security_groups: Option<Spanned<Vec<Spanned<String>>>>,
    bandwidth: Option<Spanned<String>>,
    burst: Option<Spanned<String>>,
    max_bandwidth: Option<Spanned<String>>,
    #[serde(default)]
    allowed_sni: Vec<Spanned<String>>,
    #[serde(default)]
    allow_non_tls: bool,
    policy: Option<Spanned<String>>,
    hello_timeout: Option<Spanned<String>>,
    connect_timeout: Option<Spanned<String>>,
    max_connections: Option<Spanned<usize>>,
}

fn yes() -> bool {
    true
}
fn default_netns() -> Spanned<String> {
    Spanned::new(0..0, "plk-vpc".into())
}
fn default_tun() -> Spanned<String> {
    Spanned::new(0..0, "eni0".into())
}

/// Locates errors: turns byte spans into line numbers of one file.
struct Source<'a> {
    file: &'a str,
    text: &'a str,
}

impl Source<'_> {
    fn line(&self, span: Range<usize>) -> usize {
        if span.start == 0 && span.end == 0 {
            return 0;
        }
        let end = span.start.min(self.text.len());
        self.text[..end].bytes().filter(|&b| b == b'\n').count() + 1
    }

    fn invalid<T>(&self, span: Range<usize>, key: impl fmt::Display, msg: impl fmt::Display) -> Result<T, ConfigError> {
        Err(ConfigError::Invalid {
            file: self.file.to_string(),
            line: self.line(span),
            key: key.to_string(),
            msg: msg.to_string(),
        })
    }
}

impl Config {
    /// Validates configuration text; `file` is only used in error messages.
    pub fn from_toml(file: &str, text: &str) -> Result<Config, ConfigError> {
        let src = Source { file, text };
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            file: file.to_string(),
            line: e.span().map(|s| src.line(s)).unwrap_or(0),
            msg: e.message().trim().to_string(),
        })?;
        let conntrack = validate_conntrack(&src, raw.vpc.tcp_established_timeout.as_ref())?;
        let vpc = validate_vpc(&src, raw.vpc)?;
        let instances = raw
            .instance
            .iter()
            .map(|i| InstanceSpec {
                id: i.id.clone(),
                ip: i.ip,
                security_groups: i.security_groups.iter().map(|g| g.get_ref().clone()).collect(),
            })
            .collect();
        let mut rules = validate_rules(&src, raw.security_group, raw.network_acl, raw.prefix_list, raw.instance)?;
        let subnets = validate_subnets(&src, &vpc, &rules, raw.subnet)?;
        let endpoints = raw
            .endpoint
            .into_iter()
            .enumerate()
            .map(|(i, e)| validate_endpoint(&src, &vpc, &subnets, &rules, i, e))
            .collect::<Result<Vec<_>, _>>()?;
        let dns = validate_dns(&src, raw.dns)?;
        let flow_logs = validate_flow_logs(&src, raw.flow_logs)?;
        // Quotas and the rest of the filter's checks, on the ENIs as they will be
        // (the addresses do not matter here; the subnet base stands in).
        rules.enis = endpoints
            .iter()
            .flat_map(|e| e.subnets.iter().map(move |&si| (e, si)))
            .enumerate()
            .map(|(index, (e, si))| {
                let subnet = &subnets[si];
                subnet.eni_rules(index, subnet.cidr.nth(4).unwrap_or(subnet.cidr.base()), &e.settings.security_groups)
            })
            .collect();
        if let Err(e) = RuleSet::build(&rules) {
            return src.invalid(0..0, "security_group/network_acl", e);
        }
        rules.enis.clear();
        check_unique_ips(&src, &endpoints, &subnets)?;
        let mut keys = HashSet::new();
        for (i, e) in endpoints.iter().enumerate() {
            if !keys.insert(e.state_key()) {
                return src.invalid(
                    0..0,
                    format!("endpoint[{i}].id"),
                    "two endpoints of the same service need explicit ids to be told apart",
                );
            }
        }
        Ok(Config { vpc, subnets, endpoints, dns, rules, conntrack, flow_logs, instances })
    }
}

impl EndpointSpec {
    /// The key under which the state dir remembers this endpoint's ids and IPs.
    pub fn state_key(&self) -> String {
        self.id.clone().unwrap_or_else(|| self.service.clone())
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Longest AZ name: it ends the first label of an endpoint's zonal DNS name,
/// `vpce-ID-SUFFIX-AZ`, and a label holds at most 63 bytes (22 + 1 + 8 + 1 + 31).
const MAX_AZ_LEN: usize = 31;

/// A region or AZ name as it goes into the endpoint's DNS names: lowercase
/// letters, digits and '-' (AWS's own names, e.g. `us-west-2-lax-1a`), so the
/// private zone built from them later cannot fail.
fn is_dns_word(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn validate_vpc(src: &Source, raw: RawVpc) -> Result<Vpc, ConfigError> {
    let cidr = *raw.cidr.get_ref();
    if !(16..=28).contains(&cidr.prefix()) {
        // AWS: "The allowed block size is between a /16 netmask and /28 netmask."
        return src.invalid(raw.cidr.span(), "vpc.cidr", "AWS allows VPC CIDRs from /16 to /28");
    }
    let netns = raw.netns.get_ref();
    if !is_name(netns) || netns.contains('/') {
        return src.invalid(raw.netns.span(), "vpc.netns", "a namespace name: letters, digits, '-', '_', '.'");
    }
    let tun = raw.tun.get_ref();
    if tun.is_empty() || tun.len() > 15 || !is_name(tun) {
        return src.invalid(raw.tun.span(), "vpc.tun", "an interface name of 1 to 15 letters, digits, '-', '_', '.'");
    }
    let region = raw.region.get_ref();
    if !is_dns_word(region) || region.len() >= MAX_AZ_LEN {
        return src.invalid(raw.region.span(), "vpc.region", "a region name like us-east-1");
    }
    let mtu = match raw.mtu {
        None => DEFAULT_MTU,
        Some(m) if (MIN_MTU..=MAX_MTU).contains(m.get_ref()) => *m.get_ref(),
        Some(m) => return src.invalid(m.span(), "vpc.mtu", format!("must be {MIN_MTU} to {MAX_MTU}")),
    };
    let queues = match raw.queues {
        None => None,
        Some(q) if (1..=MAX_QUEUES).contains(q.get_ref()) => Some(*q.get_ref()),
        Some(q) => return src.invalid(q.span(), "vpc.queues", format!("must be 1 to {MAX_QUEUES}")),
    };
    let router = match raw.router {
        None => cidr.nth(1).expect("prefix <= 28"),
        Some(r) if cidr.contains(*r.get_ref()) => *r.get_ref(),
        Some(r) => return src.invalid(r.span(), "vpc.router", format!("must be inside {cidr}")),
    };
    let id = match raw.id {
        Some(id) if !id.get_ref().starts_with("vpc-") || !is_name(id.get_ref()) => {
            return src.invalid(id.span(), "vpc.id", "must look like vpc-0123456789abcdef0");
        }
        Some(id) => id.into_inner(),
        None => "vpc-0lab0000000000001".to_string(),
    };
    Ok(Vpc {
        id,
        cidr,
        region: region.clone(),
        netns: netns.clone(),
        tun: tun.clone(),
        dns_support: raw.dns_support,
        dns_hostnames: raw.dns_hostnames,
        mtu,
        queues,
        router,
    })
}

fn validate_subnets(
    src: &Source,
    vpc: &Vpc,
    rules: &RuleSetConfig,
    raw: Vec<RawSubnet>,
) -> Result<Vec<Subnet>, ConfigError> {
    let mut out: Vec<Subnet> = Vec::with_capacity(raw.len());
    for (i, s) in raw.into_iter().enumerate() {
        let cidr = *s.cidr.get_ref();
        if !vpc.cidr.contains_cidr(&cidr) {
            return src.invalid(
                s.cidr.span(),
                format!("subnet[{i}].cidr"),
                format!("{cidr} is not inside the VPC {}", vpc.cidr),
            );
        }
        if !(16..=28).contains(&cidr.prefix()) {
            return src.invalid(s.cidr.span(), format!("subnet[{i}].cidr"), "AWS allows subnets from /16 to /28");
        }
        if let Some(other) = out.iter().find(|o| o.cidr.overlaps(&cidr)) {
            return src.invalid(
                s.cidr.span(),
                format!("subnet[{i}].cidr"),
                format!("{cidr} overlaps {} ({})", other.id, other.cidr),
            );
        }
        if out.iter().any(|o| o.id == *s.id.get_ref()) {
            return src.invalid(
                s.id.span(),
                format!("subnet[{i}].id"),
                format!("duplicate subnet id {}", s.id.get_ref()),
            );
        }
        if !is_name(s.id.get_ref()) {
            return src.invalid(s.id.span(), format!("subnet[{i}].id"), "letters, digits, '-', '_', '.'");
        }
        let az = s.az.get_ref();
        if !az.starts_with(vpc.region.as_str())
            || az.len() == vpc.region.len()
            || az.len() > MAX_AZ_LEN
            || !is_dns_word(az)
        {
            return src.invalid(
                s.az.span(),
                format!("subnet[{i}].az"),
                format!(
                    "an AZ of {} (e.g. {}a): lowercase letters, digits, '-', at most {MAX_AZ_LEN}",
                    vpc.region, vpc.region
                ),
            );
        }
        if let Some(acl) = &s.network_acl {
            if !rules.network_acls.iter().any(|a| a.id == *acl.get_ref()) {
                return src.invalid(
                    acl.span(),
                    format!("subnet[{i}].network_acl"),
                    format!("no [[network_acl]] with id {}", acl.get_ref()),
                );
            }
        }
        out.push(Subnet {
            id: s.id.into_inner(),
            cidr,
            az: s.az.into_inner(),
            network_acl: s.network_acl.map(Spanned::into_inner),
        });
    }
    Ok(out)
}

fn validate_endpoint(
    src: &Source,
    vpc: &Vpc,
    subnets: &[Subnet],
    rules: &RuleSetConfig,
    i: usize,
    raw: RawEndpoint,
) -> Result<EndpointSpec, ConfigError> {
    let key = |k: &str| format!("endpoint[{i}].{k}");
    let service = raw.service.get_ref();
    if !is_name(service) || !service.contains('.') {
        return src.invalid(raw.service.span(), key("service"), "a service name like com.amazonaws.us-east-1.ec2");
    }
    let custom = !service.starts_with("com.amazonaws.") || service.starts_with("com.amazonaws.vpce.");
    let service_info = match (&raw.dns_names, custom) {
        (Some(n), false) => {
            return src.invalid(n.span(), key("dns_names"), "only a custom (non-AWS) service names its own DNS names");
        }
        (names, true) => {
            let names = names.as_ref().map(|n| n.get_ref().clone()).unwrap_or_default();
            ServiceInfo::custom(service, &vpc.region, &names)
        }
        (None, false) => catalog::lookup(service),
    };
    let service_info = match service_info {
        Ok(info) => info,
        Err(e) => return src.invalid(raw.service.span(), key("service"), e),
    };
    if !custom && service_info.region != vpc.region {
        // AWS: interface endpoints connect to services in the same Region only.
        return src.invalid(
            raw.service.span(),
            key("service"),
            format!(
                "the service is in {}, the VPC in {}: endpoints are same-Region only",
                service_info.region, vpc.region
            ),
        );
    }
    let private_dns = match raw.private_dns {
        None => service_info.private_dns_supported && vpc.dns_support && vpc.dns_hostnames,
        Some(p) => {
            let on = *p.get_ref();
            if let Err(e) = service_info.check_private_dns(on) {
                return src.invalid(p.span(), key("private_dns"), e);
            }
            if on && !(vpc.dns_support && vpc.dns_hostnames) {
                return src.invalid(
                    p.span(),
                    key("private_dns"),
                    format!(
                        "enabling private DNS requires both enableDnsSupport and enableDnsHostnames VPC attributes set to true for {} (vpc.dns_support, vpc.dns_hostnames)",
                        vpc.id
                    ),
                );
            }
            on
        }
    };
    let id = match raw.id {
        Some(id) if !is_vpce_id(id.get_ref()) => {
            return src.invalid(id.span(), key("id"), "must be vpce- followed by 17 lowercase hex digits or letters");
        }
        Some(id) => Some(id.into_inner()),
        None => None,
    };
    if raw.subnets.get_ref().is_empty() {
        return src.invalid(raw.subnets.span(), key("subnets"), "an endpoint needs at least one subnet");
    }
    let mut idx = Vec::new();
    for name in raw.subnets.get_ref() {
        let Some(pos) = subnets.iter().position(|s| s.id == *name.get_ref()) else {
            return src.invalid(name.span(), key("subnets"), format!("no [[subnet]] with id {}", name.get_ref()));
        };
        if idx.iter().any(|&j: &usize| subnets[j].az == subnets[pos].az) {
            // AWS: "You can specify one subnet per Availability Zone."
            return src.invalid(
                name.span(),
                key("subnets"),
                format!("two subnets in {}: AWS allows one per AZ", subnets[pos].az),
            );
        }
        idx.push(pos);
    }
    let mut ips = BTreeMap::new();
    for (sub, ip) in raw.ips {
        let Some(pos) = idx.iter().copied().find(|&j| subnets[j].id == *sub.get_ref()) else {
            return src.invalid(
                sub.span(),
                key("ips"),
                format!("{} is not one of this endpoint's subnets", sub.get_ref()),
            );
        };
        let ip_v = *ip.get_ref();
        let cidr = subnets[pos].cidr;
        if !cidr.contains(ip_v) {
            return src.invalid(ip.span(), key("ips"), format!("{ip_v} is not inside {} ({cidr})", subnets[pos].id));
        }
        if cidr.is_reserved(ip_v) {
            return src.invalid(
                ip.span(),
                key("ips"),
                format!("{ip_v} is one of the five addresses AWS reserves in {cidr}"),
            );
        }
        ips.insert(pos, ip_v);
    }
    let ports = match raw.ports {
        None => vec![443],
        Some(p) => {
            let v = p.get_ref().clone();
            if v.is_empty() || v.contains(&0) {
                return src.invalid(p.span(), key("ports"), "a non-empty list of TCP ports 1-65535");
            }
            v
        }
    };
    let connect_timeout = match raw.connect_timeout {
        None => DEFAULT_CONNECT_TIMEOUT,
        Some(t) => match parse_duration(t.get_ref()) {
            Some(d) if d > Duration::ZERO && d <= Duration::from_secs(300) => d,
            _ => {
                return src.invalid(
                    t.span(),
                    key("connect_timeout"),
                    "a duration like \"500ms\" or \"10s\", at most 300s",
                )
            }
        },
    };
    let mut security_groups = Vec::new();
    for g in raw.security_groups.iter().flat_map(|g| g.get_ref()) {
        if !rules.security_groups.iter().any(|sg| sg.id == *g.get_ref()) {
            return src.invalid(
                g.span(),
                key("security_groups"),
                format!("no [[security_group]] with id {}", g.get_ref()),
            );
        }
        security_groups.push(g.get_ref().clone());
    }
    let rate = |v: &Option<Spanned<String>>, k: &str| -> Result<Option<Rate>, ConfigError> {
        match v {
            None => Ok(None),
            Some(t) => t.get_ref().parse::<Rate>().map(Some).or_else(|e| src.invalid(t.span(), key(k), e)),
        }
    };
    let bandwidth = match (rate(&raw.bandwidth, "bandwidth")?, &raw.burst, rate(&raw.max_bandwidth, "max_bandwidth")?) {
        (None, None, None) => None,
        (None, _, _) => return src.invalid(0..0, key("bandwidth"), "burst and max_bandwidth need a bandwidth"),
        (Some(rate), burst, max) => {
            // Default burst: 10 ms at the rate, at least 64 KiB, so bursts of a
            // window do not stall while the average stays exact.
            let burst = match burst {
                None => ByteSize::new(
                    std::num::NonZeroU64::new((rate.bytes_per_sec() / 100).max(64 << 10)).expect("non-zero"),
                ),
                Some(b) => match b.get_ref().parse::<ByteSize>() {
                    Ok(v) => v,
                    Err(e) => return src.invalid(b.span(), key("burst"), e),
                },
            };
            if max.is_some_and(|m| m.bits_per_sec() < rate.bits_per_sec()) {
                return src.invalid(0..0, key("max_bandwidth"), "must be at least the bandwidth");
            }
            Some(Bandwidth { rate, burst, max })
        }
    };
    let hello_timeout = match raw.hello_timeout {
        None => crate::policy::DEFAULT_HELLO_TIMEOUT,
        Some(t) => match parse_duration(t.get_ref()) {
            Some(d) if d > Duration::ZERO && d <= Duration::from_secs(300) => d,
            _ => return src.invalid(t.span(), key("hello_timeout"), "a duration like \"10s\", at most 300s"),
        },
    };
    let policy = match &raw.policy {
        None => PolicyDocument::full_access(),
        Some(p) => match PolicyDocument::parse(p.get_ref()) {
            Ok(doc) => doc,
            Err(e) => return src.invalid(p.span(), key("policy"), e),
        },
    };
    let max_connections = match raw.max_connections {
        None => 10_000,
        Some(m) if (1..=1_000_000).contains(m.get_ref()) => *m.get_ref(),
        Some(m) => return src.invalid(m.span(), key("max_connections"), "1 to 1000000"),
    };
    for (j, p) in raw.allowed_sni.iter().enumerate() {
        if let Err(e) = SniPolicy::check_pattern(p.get_ref()) {
            return src.invalid(p.span(), key(&format!("allowed_sni[{j}]")), e);
        }
    }
    if let Some(u) = &raw.upstream {
        if parse_host_port(u.get_ref()).is_none() {
            return src.invalid(u.span(), key("upstream"), "host:port, e.g. 127.0.0.1:8443 or api.example.com:443");
        }
    }
    Ok(EndpointSpec {
        id,
        service: service.clone(),
        subnets: idx,
        private_dns,
        service_info,
        ips,
        upstream: raw.upstream.map(Spanned::into_inner),
        settings: EndpointSettings {
            ports,
            security_groups,
            bandwidth,
            allowed_sni: raw.allowed_sni.into_iter().map(Spanned::into_inner).collect(),
            allow_non_tls: raw.allow_non_tls,
            hello_timeout,
            policy,
            connect_timeout,
            max_connections,
        },
    })
}

fn validate_conntrack(src: &Source, established: Option<&Spanned<u64>>) -> Result<ConntrackTimeouts, ConfigError> {
    let mut t = ConntrackTimeouts::default();
    if let Some(secs) = established {
        // AWS: "Min: 60 seconds. Max: 432000 seconds (5 days)."
        if !(60..=432_000).contains(secs.get_ref()) {
            return src.invalid(secs.span(), "vpc.tcp_established_timeout", "60 to 432000 seconds, as AWS allows");
        }
        t.tcp_established = Duration::from_secs(*secs.get_ref());
    }
    Ok(t)
}

fn sg_rule(
    src: &Source,
    key: &str,
    known_groups: &[String],
    lists: &[PrefixList],
    r: Spanned<RawSgRule>,
) -> Result<SgRule, ConfigError> {
    let span = r.span();
    let r = r.into_inner();
    let peer = match (r.cidr, r.group, r.prefix_list) {
        (Some(c), None, None) => SgPeer::Cidr(c),
        (None, Some(g), None) => {
            if !known_groups.contains(&g) && g != DEFAULT_GROUP_ID {
                return src.invalid(span, key, format!("no [[security_group]] with id {g}"));
            }
            SgPeer::Group(g)
        }
        (None, None, Some(p)) => {
            if !lists.iter().any(|l| l.id == p) {
                return src.invalid(span, key, format!("no [[prefix_list]] with id {p}"));
            }
            SgPeer::PrefixList(p)
        }
        _ => return src.invalid(span, key, "give exactly one of cidr, group or prefix_list"),
    };
    Ok(SgRule { protocol: r.protocol, ports: r.ports.unwrap_or(PortRange::ALL), peer })
}

fn validate_rules(
    src: &Source,
    groups: Vec<RawSecurityGroup>,
    acls: Vec<RawNetworkAcl>,
    lists: Vec<RawPrefixList>,
    instances: Vec<RawInstance>,
) -> Result<RuleSetConfig, ConfigError> {
    let prefix_lists: Vec<PrefixList> = lists.into_iter().map(|l| PrefixList { id: l.id, cidrs: l.cidrs }).collect();
    let known: Vec<String> = groups.iter().map(|g| g.id.get_ref().clone()).collect();
    let mut security_groups = Vec::with_capacity(groups.len());
    for (i, g) in groups.into_iter().enumerate() {
        let mut sg = SecurityGroup { id: g.id.get_ref().clone(), ingress: Vec::new(), egress: Vec::new() };
        for (j, r) in g.ingress.into_iter().enumerate() {
            sg.ingress.push(sg_rule(src, &format!("security_group[{i}].ingress[{j}]"), &known, &prefix_lists, r)?);
        }
        for (j, r) in g.egress.into_iter().enumerate() {
            sg.egress.push(sg_rule(src, &format!("security_group[{i}].egress[{j}]"), &known, &prefix_lists, r)?);
        }
        security_groups.push(sg);
    }
    let mut network_acls = Vec::with_capacity(acls.len());
    for (i, a) in acls.into_iter().enumerate() {
        let mut acl = NetworkAcl { id: a.id.get_ref().clone(), ingress: Vec::new(), egress: Vec::new() };
        for (dir, entries) in [("ingress", a.ingress), ("egress", a.egress)] {
            for (j, e) in entries.into_iter().enumerate() {
                let span = e.span();
                let e = e.into_inner();
                let rule = match RuleNumber::new(e.rule) {
                    Ok(n) => n,
                    Err(err) => return src.invalid(span, format!("network_acl[{i}].{dir}[{j}].rule"), err),
                };
                let entry = NaclEntry {
                    rule,
                    protocol: e.protocol,
                    ports: e.ports.unwrap_or(PortRange::ALL),
                    cidr: e.cidr,
                    action: e.action,
                };
                if dir == "ingress" {
                    acl.ingress.push(entry)
                } else {
                    acl.egress.push(entry)
                }
            }
        }
        network_acls.push(acl);
    }
    let mut group_members: Vec<GroupMembers> = Vec::new();
    for inst in instances {
        for g in inst.security_groups {
            if !known.contains(g.get_ref()) && g.get_ref() != DEFAULT_GROUP_ID {
                return src.invalid(
                    g.span(),
                    "instance.security_groups",
                    format!("no [[security_group]] with id {}", g.get_ref()),
                );
            }
            match group_members.iter_mut().find(|m| m.group == *g.get_ref()) {
                Some(m) => m.ips.push(inst.ip),
                None => group_members.push(GroupMembers { group: g.into_inner(), ips: vec![inst.ip] }),
            }
        }
    }
    Ok(RuleSetConfig { security_groups, network_acls, prefix_lists, group_members, ..RuleSetConfig::default() })
}

fn validate_flow_logs(src: &Source, raw: Option<RawFlowLogs>) -> Result<Option<FlowLogs>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let interval = match raw.interval {
        None => 60,
        Some(i) if (1..=600).contains(i.get_ref()) => *i.get_ref(),
        Some(i) => return src.invalid(i.span(), "flow_logs.interval", "1 to 600 seconds (AWS offers 60 and 600)"),
    };
    let account_id = match raw.account_id {
        None => "123456789012".to_string(),
        Some(a) if a.get_ref().len() == 12 && a.get_ref().bytes().all(|b| b.is_ascii_digit()) => a.into_inner(),
        Some(a) => return src.invalid(a.span(), "flow_logs.account_id", "12 digits, like an AWS account id"),
    };
    if raw.file.is_none() && !raw.stdout {
        return src.invalid(0..0, "flow_logs", "give a file, or stdout = true");
    }
    Ok(Some(FlowLogs { file: raw.file, stdout: raw.stdout, interval, account_id }))
}

fn validate_dns(src: &Source, raw: Option<RawDns>) -> Result<Dns, ConfigError> {
    let Some(forward) = raw.and_then(|d| d.forward) else { return Ok(Dns { forward: None }) };
    let mut out = Vec::with_capacity(forward.len());
    for f in forward {
        let text = f.get_ref();
        let addr = text
            .parse::<SocketAddr>()
            .ok()
            .or_else(|| text.parse::<Ipv4Addr>().ok().map(|ip| SocketAddr::from((ip, 53))));
        match addr {
            Some(a) => out.push(a),
            None => {
                return src.invalid(
                    f.span(),
                    "dns.forward",
                    format!("{text:?} is not an address like 1.1.1.1 or 127.0.0.1:5353"),
                )
            }
        }
    }
    Ok(Dns { forward: Some(out) })
}

fn check_unique_ips(src: &Source, endpoints: &[EndpointSpec], subnets: &[Subnet]) -> Result<(), ConfigError> {
    let mut seen = HashSet::new();
    for (i, e) in endpoints.iter().enumerate() {
        for (&sub, ip) in &e.ips {
            if !seen.insert(*ip) {
                return src.invalid(
                    0..0,
                    format!("endpoint[{i}].ips"),
                    format!("{ip} in {} is already used by another endpoint", subnets[sub].id),
                );
            }
        }
    }
    Ok(())
}

/// `vpce-` followed by 8 to 17 lowercase alphanumerics (AWS ids are hex; labs like letters).
pub fn is_vpce_id(s: &str) -> bool {
    s.strip_prefix("vpce-")
        .is_some_and(|r| (8..=17).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()))
}

/// Parses `"250ms"`, `"10s"`, `"2m"`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = num.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        _ => None,
    }
}

/// Splits `host:port` (host may be a name or an IPv4 address).
pub fn parse_host_port(s: &str) -> Option<(&str, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
    let ok = !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b));
    ok.then_some((host, port))
}

/// The embedded default configuration that `privlink demo` runs.
pub const DEMO_CONFIG: &str = include_str!("demo.toml");

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[vpc]
cidr = "10.0.0.0/16"
region = "us-east-1"
netns = "plk-test"

[[subnet]]
id = "subnet-a"
cidr = "10.0.1.0/24"
az = "us-east-1a"

[[subnet]]
id = "subnet-b"
cidr = "10.0.2.0/24"
az = "us-east-1b"

[[endpoint]]
service = "com.amazonaws.us-east-1.ec2"
subnets = ["subnet-a", "subnet-b"]
ips = { "subnet-a" = "10.0.1.49" }
upstream = "127.0.0.1:8443"
"#;

    fn err(text: &str) -> String {
        Config::from_toml("lab.toml", text).unwrap_err().to_string()
    }

    #[test]
    fn good_config_has_defaults() {
        let c = Config::from_toml("lab.toml", GOOD).unwrap();
        assert_eq!(c.vpc.mtu, 8500);
        assert_eq!(c.vpc.router, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(c.vpc.resolvers(), [Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(169, 254, 169, 253)]);
        assert_eq!(c.vpc.tun, "eni0");
        let e = &c.endpoints[0];
        assert_eq!(e.settings.ports, vec![443]);
        assert_eq!(e.subnets, vec![0, 1]);
        assert_eq!(e.ips.get(&0), Some(&Ipv4Addr::new(10, 0, 1, 49)));
        assert_eq!(e.settings.connect_timeout, Duration::from_secs(10));
        assert!(e.private_dns);
    }

    #[test]
    fn unknown_key_names_the_line() {
        let text = GOOD.replace("region = \"us-east-1\"", "region = \"us-east-1\"\ncolour = \"blue\"");
        let e = err(&text);
        assert!(e.starts_with("lab.toml:5:"), "{e}");
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn bad_cidr_names_the_line() {
        let e = err(&GOOD.replace("10.0.2.0/24", "10.0.2.0/33"));
        assert!(e.starts_with("lab.toml:14:"), "{e}");
    }

    #[test]
    fn subnet_outside_vpc() {
        let e = err(&GOOD.replace("10.0.2.0/24", "10.1.2.0/24"));
        assert_eq!(e, "lab.toml:14: subnet[1].cidr: 10.1.2.0/24 is not inside the VPC 10.0.0.0/16");
    }

    #[test]
    fn unknown_subnet_reference() {
        let e = err(&GOOD.replace("subnets = [\"subnet-a\", \"subnet-b\"]", "subnets = [\"subnet-a\", \"subnet-z\"]"));
        assert_eq!(e, "lab.toml:19: endpoint[0].subnets: no [[subnet]] with id subnet-z");
    }

    #[test]
    fn reserved_ip_refused() {
        for ip in ["10.0.1.0", "10.0.1.1", "10.0.1.2", "10.0.1.3", "10.0.1.255"] {
            let e = err(&GOOD.replace("10.0.1.49", ip));
            assert!(e.contains("five addresses AWS reserves"), "{e}");
        }
        let e = err(&GOOD.replace("10.0.1.49", "10.0.2.49"));
        assert!(e.contains("is not inside subnet-a"), "{e}");
    }

    #[test]
    fn mtu_and_timeout_ranges() {
        let e = err(&GOOD.replace("netns = \"plk-test\"", "netns = \"plk-test\"\nmtu = 70000"));
        assert!(e.contains("vpc.mtu"), "{e}");
        for bad in ["0", "17"] {
            let e = err(&GOOD.replace("netns = \"plk-test\"", &format!("netns = \"plk-test\"\nqueues = {bad}")));
            assert!(e.starts_with("lab.toml:") && e.contains("vpc.queues: must be 1 to 16"), "{e}");
        }
        let c = Config::from_toml("x", &GOOD.replace("netns = \"plk-test\"", "netns = \"plk-test\"\nqueues = 2"));
        assert_eq!(c.unwrap().vpc.queues, Some(2));
        assert_eq!(Config::from_toml("x", GOOD).unwrap().vpc.queues, None);
        let e = err(&GOOD.replace("upstream =", "connect_timeout = \"ten\"\nupstream ="));
        assert!(e.contains("endpoint[0].connect_timeout"), "{e}");
        let c = Config::from_toml("x", &GOOD.replace("upstream =", "connect_timeout = \"750ms\"\nupstream =")).unwrap();
        assert_eq!(c.endpoints[0].settings.connect_timeout, Duration::from_millis(750));
    }

    #[test]
    fn two_subnets_in_one_az_refused() {
        let e = err(&GOOD.replace("us-east-1b", "us-east-1a"));
        assert!(e.contains("AWS allows one per AZ"), "{e}");
    }

    #[test]
    fn durations_and_host_ports() {
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_host_port("127.0.0.1:8443"), Some(("127.0.0.1", 8443)));
        assert_eq!(parse_host_port("ec2.us-east-1.amazonaws.com:443"), Some(("ec2.us-east-1.amazonaws.com", 443)));
        assert_eq!(parse_host_port("nohost"), None);
        assert_eq!(parse_host_port("h:0"), None);
    }

    #[test]
    fn private_dns_rules() {
        let e = err(&GOOD
            .replace("upstream =", "private_dns = true\nupstream =")
            .replace("region = \"us-east-1\"", "region = \"us-east-1\"\ndns_hostnames = false"));
        assert!(e.contains("enableDnsSupport and enableDnsHostnames"), "{e}");
        let s3 = GOOD.replace("com.amazonaws.us-east-1.ec2", "com.amazonaws.us-east-1.s3");
        let c = Config::from_toml("x", &s3).unwrap();
        assert!(!c.endpoints[0].private_dns, "S3 defaults to private DNS off");
        let e = err(&s3.replace("upstream =", "private_dns = true\nupstream ="));
        assert!(e.contains("does not provide a private DNS name"), "{e}");
        let e = err(&GOOD.replace("us-east-1.ec2", "us-east-1.ec3"));
        assert!(e.contains("The Vpc Endpoint Service 'com.amazonaws.us-east-1.ec3' does not exist"), "{e}");
        let e = err(&GOOD.replace("us-east-1.ec2", "eu-west-1.ec2"));
        assert!(e.contains("same-Region only"), "{e}");
        let custom = GOOD
            .replace("com.amazonaws.us-east-1.ec2", "com.example.api")
            .replace("upstream =", "dns_names = [\"api.example.com\"]\nupstream =");
        let c = Config::from_toml("x", &custom).unwrap();
        assert_eq!(c.endpoints[0].service_info.default_dns_names, ["api.example.com"]);
        assert!(c.endpoints[0].private_dns);
    }

    #[test]
    fn regions_and_azs_are_names_the_zone_can_hold() {
        // Found by fuzz/ (config target): such an AZ passed `check` and failed the private zone in `up`.
        for bad in ["us-east-1|", "us-east-1c[x]", "us-east-1A", "us-east-1", &format!("us-east-1{}", "a".repeat(23))] {
            let e = err(&GOOD.replace("az = \"us-east-1a\"", &format!("az = {bad:?}")));
            assert!(e.contains("subnet[0].az"), "{bad}: {e}");
        }
        Config::from_toml("x", &GOOD.replace("az = \"us-east-1a\"", "az = \"us-east-1-lax-1a\"")).unwrap();
        for bad in ["US-EAST-1", "us_east_1", &"r".repeat(31)] {
            let e = err(&GOOD.replace("region = \"us-east-1\"", &format!("region = {bad:?}")));
            assert!(e.contains("vpc.region"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_bad_allowed_sni_pattern_is_refused_with_its_line() {
        // Found by fuzz/ (config target): such a pattern passed `check` and failed `up` once the TUN existed.
        for bad in ["*uexample.com", "*.example.c]m", "a.*.example.com", "."] {
            let e =
                err(&GOOD.replace("upstream =", &format!("allowed_sni = [\"ok.example.com\", {bad:?}]\nupstream =")));
            assert!(e.contains("allowed_sni[1]") && e.contains(bad), "{bad}: {e}");
        }
        Config::from_toml("x", &GOOD.replace("upstream =", "allowed_sni = [\"*.example.com\"]\nupstream =")).unwrap();
    }

    #[test]
    fn dns_forward() {
        let c = Config::from_toml("x", GOOD).unwrap();
        assert_eq!(c.dns.forward, None);
        let c = Config::from_toml("x", &format!("{GOOD}\n[dns]\nforward = []\n")).unwrap();
        assert_eq!(c.dns.forward, Some(vec![]));
        let c =
            Config::from_toml("x", &format!("{GOOD}\n[dns]\nforward = [\"127.0.0.1:5353\", \"9.9.9.9\"]\n")).unwrap();
        assert_eq!(c.dns.forward.unwrap()[1], "9.9.9.9:53".parse().unwrap());
        let e = err(&format!("{GOOD}\n[dns]\nforward = [\"nope\"]\n"));
        assert!(e.contains("dns.forward"), "{e}");
    }

    #[test]
    fn security_rules_are_checked_with_lines_and_quotas() {
        let with = |endpoint: &str, rules: &str| GOOD.replace("upstream =", &format!("{endpoint}\nupstream =")) + rules;
        let sg = "\n[[security_group]]\nid = \"sg-a\"\ningress = [{ protocol = \"tcp\", ports = \"443\", cidr = \"10.0.0.0/16\" }]\n";
        Config::from_toml("x", &with("security_groups = [\"sg-a\"]", sg)).unwrap();
        let e = err(&with("security_groups = [\"sg-b\"]", sg));
        assert!(e.contains("endpoint[0].security_groups: no [[security_group]] with id sg-b"), "{e}");
        let e = err(&with("", &sg.replace("cidr = \"10.0.0.0/16\"", "group = \"sg-nope\"")));
        assert!(e.contains("security_group[0].ingress[0]: no [[security_group]] with id sg-nope"), "{e}");
        let e = err(&with("", &sg.replace("ports = \"443\"", "ports = \"70000\"")));
        assert!(e.contains("port"), "{e}");
        // AWS quotas: 60 inbound rules per group, 5 groups per ENI.
        let rules: Vec<String> = (0..61)
            .map(|i| format!("{{ protocol = \"tcp\", ports = \"{}\", cidr = \"10.0.0.0/16\" }}", 1000 + i))
            .collect();
        let big = format!("\n[[security_group]]\nid = \"sg-a\"\ningress = [{}]\n", rules.join(", "));
        let e = err(&with("security_groups = [\"sg-a\"]", &big));
        assert!(e.contains("the quota is 60"), "{e}");
        let six: String = (0..6).map(|i| format!("\n[[security_group]]\nid = \"sg-{i}\"\n")).collect();
        let names: Vec<String> = (0..6).map(|i| format!("\"sg-{i}\"")).collect();
        let e = err(&with(&format!("security_groups = [{}]", names.join(", ")), &six));
        assert!(e.contains("the quota is 5"), "{e}");
        let nacl = "\n[[network_acl]]\nid = \"acl-x\"\ningress = [{ rule = 40000, protocol = \"all\", cidr = \"0.0.0.0/0\", action = \"allow\" }]\n";
        let e = err(&(GOOD.replace("az = \"us-east-1a\"", "az = \"us-east-1a\"\nnetwork_acl = \"acl-x\"") + nacl));
        assert!(e.contains("network_acl[0].ingress[0].rule"), "{e}");
        let e = err(&GOOD.replace("az = \"us-east-1a\"", "az = \"us-east-1a\"\nnetwork_acl = \"acl-y\""));
        assert!(e.contains("subnet[0].network_acl: no [[network_acl]] with id acl-y"), "{e}");
        let e = err(&GOOD.replace("region = \"us-east-1\"", "region = \"us-east-1\"\ntcp_established_timeout = 30"));
        assert!(e.contains("60 to 432000"), "{e}");
    }

    #[test]
    fn bad_rule_cidrs_get_the_rule_error_and_line() {
        // The filter's rule message, on the line toml names: the value's, or
        // for a list the key's (`at`).
        let check = |rules: &str, bad: &str, at: &str| {
            let text = format!("{GOOD}{rules}");
            let line = text[..text.find(at).unwrap()].matches('\n').count() + 1;
            let want = format!("invalid CIDR block {bad:?}: expected a.b.c.d/n (n ≤ 32) with no host bits set");
            assert_eq!(err(&text), format!("lab.toml:{line}: {want}"));
        };
        let sg = "\n[[security_group]]\nid = \"sg-a\"\ningress = [{ protocol = \"tcp\", cidr = \"10.0.0.1/16\" }]\n";
        check(sg, "10.0.0.1/16", "ingress = [");
        let acl = r#"
[[network_acl]]
id = "acl-x"
ingress = [{ rule = 100, protocol = "all", cidr = "10.0.0.0/33", action = "allow" }]
"#;
        check(acl, "10.0.0.0/33", "ingress = [");
        let list = r#"
[[prefix_list]]
id = "pl-a"
cidrs = [
  "10.0.0.0/8",
  "x/8",
]
"#;
        check(list, "x/8", "cidrs = [");
        // The VPC's and subnets' blocks keep their own, more specific, message.
        assert!(err(&GOOD.replace("10.0.2.0/24", "10.0.2.1/24")).contains("did you mean 10.0.2.0/24"));
    }

    #[test]
    fn demo_config_is_valid() {
        Config::from_toml("demo.toml", DEMO_CONFIG).unwrap();
    }
}
