//! The EC2 model: the VPC, its subnets, endpoints with their ENIs and IPs:
//! the plan a config becomes, and the one source every run-time view is
//! derived from.
//!
//! The config file declares a [`Vpc`], [`Subnet`]s and endpoint specs; the
//! [`Plan`] ([`Plan::make`]) holds the [`Endpoint`]s with their ids and
//! ENIs. The filter's rules, the private zone and the data path's settings
//! are all read from the plan.
//!
//! AWS: "The first four IP addresses and the last IP address in each subnet
//! CIDR block are not available for you to use." An ENI's private IP comes
//! from its subnet's range and is kept until the endpoint is deleted, so the
//! plan reads and extends a [`State`] that the caller stores between runs.

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::catalog::ServiceInfo;
use crate::cidr::Cidr;
use crate::filter::{EniRules, RuleSet, RuleSetConfig, RuleSetError, SgPeer};
use crate::shaper::{ByteSize, Rate};

mod state;
pub use state::{EndpointState, EniState, State, StateError};

/// The VPC (the config's `[vpc]`): the network namespace plays it.
#[derive(Debug, Clone)]
pub struct Vpc {
    /// `vpc-…` id.
    pub id: String,
    /// The VPC CIDR.
    pub cidr: Cidr,
    /// AWS region, e.g. `us-east-1`.
    pub region: String,
    /// Network namespace that plays the VPC.
    pub netns: String,
    /// Name of the TUN device (the ENI) inside the namespace.
    pub tun: String,
    /// enableDnsSupport.
    pub dns_support: bool,
    /// enableDnsHostnames.
    pub dns_hostnames: bool,
    /// The ENI MTU.
    pub mtu: u32,
    /// TUN queues, each with its own thread and stack; `None`: one per CPU.
    pub queues: Option<usize>,
    /// The namespace side of the TUN: VPC base + 1, the VPC router.
    pub router: Ipv4Addr,
}

impl Vpc {
    /// The Amazon-provided DNS addresses: VPC base + 2 and 169.254.169.253.
    pub fn resolvers(&self) -> [Ipv4Addr; 2] {
        [self.cidr.nth(2).expect("a VPC CIDR has at least 4 addresses"), Ipv4Addr::new(169, 254, 169, 253)]
    }
}

/// A subnet of the VPC (the config's `[[subnet]]`): one AZ's address range.
#[derive(Debug, Clone)]
pub struct Subnet {
    /// Subnet id as written.
    pub id: String,
    /// Its CIDR, inside the VPC's.
    pub cidr: Cidr,
    /// Its availability zone.
    pub az: String,
    /// Its network ACL; `None`: the VPC's default NACL (allows everything).
    pub network_acl: Option<String>,
}

impl Subnet {
    /// The filter's view of an ENI at `ip` in this subnet with `security_groups`:
    /// its address, the subnet's range and network ACL, its groups.
    pub(crate) fn eni_rules(&self, index: usize, ip: Ipv4Addr, security_groups: &[String]) -> EniRules {
        EniRules {
            index,
            ip,
            subnet: self.cidr,
            security_groups: security_groups.to_vec(),
            network_acl: self.network_acl.clone(),
        }
    }
}

/// An endpoint's bandwidth per ENI: AWS gives 10 Gbit/s per AZ, scaling up under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bandwidth {
    /// The rate (and the starting rate when autoscaling).
    pub rate: Rate,
    /// Bytes a connection may send at once above the rate.
    pub burst: ByteSize,
    /// With autoscaling: the most the rate may step up to.
    pub max: Option<Rate>,
}

/// Makes AWS-shaped ids (`vpce-`, `eni-` + 17 hex digits) from caller-supplied randomness.
pub fn make_id(prefix: &str, random: [u8; 9]) -> String {
    let mut s = String::with_capacity(prefix.len() + 18);
    s.push_str(prefix);
    s.push('-');
    for b in random {
        s.push_str(&format!("{b:02x}"));
    }
    s.truncate(prefix.len() + 1 + 17);
    s
}

/// Where upstream connections go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// How an endpoint carries its streams: what the config says of it and the
/// plan keeps as it is, one definition for both.
#[derive(Debug, Clone)]
pub struct EndpointSettings {
    /// TCP ports the ENI carries.
    pub ports: Vec<u16>,
    /// Security groups on the ENIs; empty: the VPC's default group.
    pub security_groups: Vec<String>,
    /// Shaping per ENI (per AZ), both directions; `None`: unshaped.
    pub bandwidth: Option<Bandwidth>,
    /// Server names accepted besides the endpoint's own.
    pub allowed_sni: Vec<String>,
    /// Carry streams that do not start with a TLS ClientHello.
    pub allow_non_tls: bool,
    /// How long a client may take to send its whole ClientHello.
    pub hello_timeout: Duration,
    /// The endpoint policy (the full-access default when none was given).
    pub policy: crate::policy::PolicyDocument,
    /// Upstream connect timeout.
    pub connect_timeout: Duration,
    /// Concurrent connections carried before new SYNs are dropped.
    pub max_connections: usize,
}

/// One ENI of an endpoint: one per subnet (AZ).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eni {
    /// `eni-…` id.
    pub id: String,
    /// Subnet id.
    pub subnet: String,
    /// The subnet's CIDR.
    pub subnet_cidr: Cidr,
    /// Availability zone.
    pub az: String,
    /// Private IP.
    pub ip: Ipv4Addr,
}

/// An interface endpoint as planned: ids, ENIs, where its traffic goes.
///
/// This is the one authoritative endpoint. The config's endpoint spec is
/// only its input (what the file says, before ids and IPs are allocated);
/// every other view of an endpoint (the filter's ENI rules from
/// [`Plan::eni_rules`], the private zone's records, the data path's
/// per-endpoint settings) is derived from this one and never edited apart.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `vpce-…` id.
    pub id: String,
    /// Service name.
    pub service: String,
    /// Private DNS on.
    pub private_dns: bool,
    /// The service's DNS facts.
    pub service_info: ServiceInfo,
    /// Suffix of the endpoint-specific names, kept for the endpoint's life.
    pub dns_suffix: String,
    /// One per subnet.
    pub enis: Vec<Eni>,
    /// The real service.
    pub upstream: Upstream,
    /// How its streams are carried: the same settings the config gave.
    pub settings: EndpointSettings,
}

/// The whole lab as it will run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The VPC.
    pub vpc: Vpc,
    /// Subnets.
    pub subnets: Vec<Subnet>,
    /// Endpoints with their ENIs.
    pub endpoints: Vec<Endpoint>,
    /// Security groups, NACLs, prefix lists, group members (ENIs not filled
    /// in: [`Plan::eni_rules`] derives them).
    pub rules: RuleSetConfig,
}

/// Why a plan cannot be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// The subnet has no free address left.
    #[error("subnet {subnet} ({cidr}) has no free address left for endpoint {endpoint}")]
    SubnetFull {
        /// Subnet id.
        subnet: String,
        /// Its CIDR.
        cidr: Cidr,
        /// The endpoint that wanted one.
        endpoint: String,
    },
    /// The service name does not follow `com.amazonaws.REGION.SERVICE` and has no upstream.
    #[error("endpoint {endpoint}: no `upstream` given and {service} has no public DNS name to resolve")]
    NoUpstream {
        /// Endpoint id.
        endpoint: String,
        /// Service name.
        service: String,
    },
}

impl Endpoint {
    /// The endpoint's DNS names: regional, zonal, and the default ones when private DNS is on.
    pub fn dns_names(&self) -> Vec<String> {
        let azs: Vec<String> = self.enis.iter().map(|e| e.az.clone()).collect();
        let info = &self.service_info;
        let (regional, zonal) =
            crate::catalog::endpoint_dns_names(&self.id, &self.dns_suffix, &info.vpce_dns_part, &info.region, &azs);
        let mut names = vec![regional];
        names.extend(zonal.into_iter().map(|(_, n)| n));
        if self.private_dns {
            names.extend(info.default_dns_names.iter().cloned());
        }
        names
    }
}

impl Endpoint {
    /// The server names its streams may ask for: the service's default names,
    /// its endpoint-specific names and the names under them (S3's, from
    /// [`crate::catalog::ServiceInfo::endpoint_sub_names`], the list the
    /// private zone answers too) and `allowed_sni`.
    pub fn sni_policy(&self) -> Result<crate::policy::SniPolicy, crate::policy::SniPatternError> {
        let mut specific = self.dns_names();
        specific.retain(|n| !self.service_info.default_dns_names.contains(n));
        let sub_names: Vec<String> = specific.iter().flat_map(|n| self.service_info.endpoint_sub_names(n)).collect();
        specific.extend(sub_names);
        crate::policy::SniPolicy::new(
            &self.service_info.default_dns_names,
            &specific,
            &self.settings.allowed_sni,
            self.settings.allow_non_tls,
        )
    }
}

impl Plan {
    /// The private hosted zones of every endpoint, compiled for the resolver.
    pub fn zone(&self) -> Result<crate::dns::Zone, crate::dns::DnsError> {
        let mut spec = crate::dns::ZoneSpec::default();
        for e in &self.endpoints {
            let enis: Vec<(String, Ipv4Addr)> = e.enis.iter().map(|n| (n.az.clone(), n.ip)).collect();
            spec.add_endpoint(&crate::dns::EndpointDns {
                service: &e.service_info,
                endpoint_id: &e.id,
                suffix: &e.dns_suffix,
                enis: &enis,
                private_dns: e.private_dns,
            });
        }
        crate::dns::Zone::build(&spec)
    }

    /// The filter's view of every ENI: its address, its subnet's range and
    /// network ACL, its endpoint's security groups. ENI `i` is the `i`th of
    /// [`Plan::eni_ips`].
    pub fn eni_rules(&self) -> Vec<EniRules> {
        let enis = self.endpoints.iter().flat_map(|e| e.enis.iter().map(move |n| (e, n)));
        enis.enumerate()
            .map(|(index, (e, n))| {
                let subnet = self.subnets.iter().find(|s| s.id == n.subnet).expect("ENIs are in known subnets");
                subnet.eni_rules(index, n.ip, &e.settings.security_groups)
            })
            .collect()
    }

    /// The compiled security groups and NACLs of every ENI (of [`Plan::eni_rules`]).
    pub fn rule_set(&self) -> Result<RuleSet, RuleSetError> {
        RuleSet::build(&RuleSetConfig { enis: self.eni_rules(), ..self.rules.clone() })
    }

    /// Every ENI IP with the index of its endpoint.
    pub fn eni_ips(&self) -> impl Iterator<Item = (Ipv4Addr, usize)> + '_ {
        self.endpoints.iter().enumerate().flat_map(|(i, e)| e.enis.iter().map(move |n| (n.ip, i)))
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = &self.vpc;
        writeln!(
            f,
            "VPC {} {} ({}) in namespace {}, ENI device {} MTU {}",
            v.id, v.cidr, v.region, v.netns, v.tun, v.mtu
        )?;
        let [r1, r2] = v.resolvers();
        writeln!(f, "  router {}  resolvers {r1}, {r2}", v.router)?;
        for s in &self.subnets {
            writeln!(f, "  subnet {} {} {}", s.id, s.cidr, s.az)?;
        }
        for e in &self.endpoints {
            let ports: Vec<String> = e.settings.ports.iter().map(u16::to_string).collect();
            writeln!(f, "endpoint {} {} (Interface)", e.id, e.service)?;
            writeln!(
                f,
                "  ports tcp/{}  private DNS {}  upstream {}",
                ports.join(","),
                if e.private_dns { "on" } else { "off" },
                e.upstream
            )?;
            writeln!(
                f,
                "  connect timeout {:?}  max connections {}",
                e.settings.connect_timeout, e.settings.max_connections
            )?;
            for n in &e.enis {
                writeln!(f, "  {} {} in {} ({})", n.id, n.ip, n.subnet, n.az)?;
            }
            for name in e.dns_names() {
                writeln!(f, "  dns {name}")?;
            }
            let groups = if e.settings.security_groups.is_empty() {
                "sg-default (the VPC's default group)".to_string()
            } else {
                e.settings.security_groups.join(", ")
            };
            writeln!(f, "  security groups {groups}")?;
            if let Some(b) = &e.settings.bandwidth {
                let max = b.max.map(|m| format!(", autoscaling to {m}")).unwrap_or_default();
                writeln!(f, "  bandwidth {} per ENI, burst {}{max}", b.rate, b.burst)?;
            }
            if !e.settings.allowed_sni.is_empty() || e.settings.allow_non_tls {
                writeln!(
                    f,
                    "  allowed SNI {:?}  non-TLS {}",
                    e.settings.allowed_sni,
                    if e.settings.allow_non_tls { "carried" } else { "reset" }
                )?;
            }
        }
        for g in &self.rules.security_groups {
            writeln!(f, "security group {}", g.id)?;
            for (dir, rules) in [("ingress", &g.ingress), ("egress", &g.egress)] {
                for r in rules {
                    let peer = match &r.peer {
                        SgPeer::Cidr(c) => c.to_string(),
                        SgPeer::Group(g) => g.clone(),
                        SgPeer::PrefixList(p) => p.clone(),
                    };
                    writeln!(
                        f,
                        "  {dir} allow {} {} {} {peer}",
                        r.protocol,
                        r.ports,
                        if dir == "ingress" { "from" } else { "to" }
                    )?;
                }
            }
        }
        for acl in &self.rules.network_acls {
            let subnets: Vec<&str> = self
                .subnets
                .iter()
                .filter(|s| s.network_acl.as_deref() == Some(acl.id.as_str()))
                .map(|s| s.id.as_str())
                .collect();
            writeln!(f, "network ACL {} on {}", acl.id, subnets.join(", "))?;
            for (dir, entries) in [("ingress", &acl.ingress), ("egress", &acl.egress)] {
                let mut sorted: Vec<_> = entries.iter().collect();
                sorted.sort_by_key(|e| e.rule);
                for e in sorted {
                    writeln!(f, "  {dir} {} {} {} {} {}", e.rule, e.action, e.protocol, e.ports, e.cidr)?;
                }
                writeln!(f, "  {dir} * deny all")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_like_aws() {
        let id = make_id("vpce", [0xab; 9]);
        assert_eq!(id, "vpce-ababababababababa");
        assert!(crate::config::is_vpce_id(&id));
        assert_eq!(make_id("eni", [1; 9]).len(), 4 + 17);
    }

    #[test]
    fn the_filters_view_of_each_eni_is_read_from_the_plan() {
        // The allocation tests' lab, with a NACL on subnet a and a group on the EC2 endpoint.
        let text = crate::allocation::tests::CFG
            .replace("az = \"us-east-1a\"", "az = \"us-east-1a\"\nnetwork_acl = \"acl-a\"")
            .replace("ips = { \"a\" = \"10.0.1.4\" }", "ips = { \"a\" = \"10.0.1.4\" }\nsecurity_groups = [\"sg-x\"]")
            + "[[security_group]]\nid = \"sg-x\"\n[[network_acl]]\nid = \"acl-a\"\n";
        let config = crate::config::Config::from_toml("t", &text).unwrap();
        let plan = Plan::make(&config, &mut State::default(), || [7; 9]).unwrap();
        let got: Vec<_> = plan
            .eni_rules()
            .into_iter()
            .map(|r| (r.index, r.ip, r.subnet.to_string(), r.network_acl, r.security_groups))
            .collect();
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let x = vec!["sg-x".to_string()];
        assert_eq!(
            got,
            [
                (0, ip("10.0.1.4"), "10.0.1.0/24".into(), Some("acl-a".into()), x.clone()),
                (1, ip("10.0.2.4"), "10.0.2.0/28".into(), None, x),
                (2, ip("10.0.1.5"), "10.0.1.0/24".into(), Some("acl-a".into()), vec![]),
            ]
        );
        let ips: Vec<Ipv4Addr> = plan.eni_ips().map(|(ip, _)| ip).collect();
        assert_eq!(ips, got.iter().map(|r| r.1).collect::<Vec<_>>(), "ENI i is the ith of eni_ips");
        assert!(plan.rule_set().unwrap().contains_eni(2));
    }
}
