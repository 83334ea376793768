//! The EC2 model: CIDRs, ids, ENIs and their IPs, and the plan a config becomes.
//!
//! AWS: "The first four IP addresses and the last IP address in each subnet
//! CIDR block are not available for you to use." An ENI's private IP comes
//! from its subnet's range and is kept until the endpoint is deleted, so the
//! plan reads and extends a [`State`] that the caller stores between runs.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::catalog::ServiceInfo;
use crate::cidr::Cidr;
use crate::config::{Config, Subnet, Vpc};

/// The filter's view of one ENI: its address, its subnet (and the subnet's NACL), its groups.
pub fn eni_rules(index: usize, ip: Ipv4Addr, subnet: &Subnet, security_groups: &[String]) -> crate::filter::EniRules {
    crate::filter::EniRules {
        index,
        ip,
        subnet: crate::filter::Ipv4Cidr::new(subnet.cidr.base(), subnet.cidr.prefix()).expect("a valid CIDR"),
        security_groups: security_groups.to_vec(),
        network_acl: subnet.network_acl.clone(),
    }
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

/// What the state dir keeps for one endpoint between runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct EndpointState {
    /// The endpoint id.
    pub id: String,
    /// The 8-character suffix of its endpoint-specific DNS names.
    #[serde(default)]
    pub suffix: String,
    /// ENIs by subnet id.
    pub enis: BTreeMap<String, EniState>,
}

/// What the state dir keeps for one ENI.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EniState {
    /// `eni-…` id.
    pub id: String,
    /// Its private IP.
    pub ip: Ipv4Addr,
}

/// Everything privlink remembers between runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct State {
    /// By [`crate::config::EndpointSpec::state_key`].
    pub endpoints: BTreeMap<String, EndpointState>,
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
    /// TCP ports carried.
    pub ports: Vec<u16>,
    /// Security groups on its ENIs (empty: the VPC default group).
    pub security_groups: Vec<String>,
    /// Shaping per ENI, if any.
    pub bandwidth: Option<crate::config::Bandwidth>,
    /// Server names accepted besides the endpoint's own.
    pub allowed_sni: Vec<String>,
    /// Carry streams that do not start with a TLS ClientHello.
    pub allow_non_tls: bool,
    /// How long a client may take to send its whole ClientHello.
    pub hello_timeout: Duration,
    /// The endpoint policy.
    pub policy: crate::policy::PolicyDocument,
    /// Upstream connect timeout.
    pub connect_timeout: Duration,
    /// Concurrent connection cap.
    pub max_connections: usize,
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
    /// Security groups, NACLs, prefix lists, group members (ENIs not filled in).
    pub rules: crate::filter::RuleSetConfig,
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
            &self.allowed_sni,
            self.allow_non_tls,
        )
    }
}

impl Plan {
    /// Turns a config into a plan, reusing and extending `state` (ids and IPs are
    /// allocated once and kept). `random` supplies fresh randomness for new ids.
    pub fn make(config: &Config, state: &mut State, mut random: impl FnMut() -> [u8; 9]) -> Result<Plan, PlanError> {
        // Drop what the config no longer names, so a deleted endpoint frees its IPs.
        let keys: Vec<String> = config.endpoints.iter().map(|e| e.state_key()).collect();
        state.endpoints.retain(|k, _| keys.contains(k));

        let mut taken: Vec<Ipv4Addr> = config.endpoints.iter().flat_map(|e| e.ips.values().copied()).collect();
        for es in state.endpoints.values() {
            taken.extend(es.enis.values().map(|e| e.ip));
        }

        let mut endpoints = Vec::with_capacity(config.endpoints.len());
        for spec in &config.endpoints {
            let st = state.endpoints.entry(spec.state_key()).or_default();
            if let Some(id) = &spec.id {
                st.id = id.clone();
            } else if st.id.is_empty() {
                st.id = make_id("vpce", random());
            }
            if st.suffix.is_empty() {
                let r = random();
                st.suffix = crate::catalog::random_suffix(r[..8].try_into().expect("8 bytes"));
            }
            let mut enis = Vec::with_capacity(spec.subnets.len());
            for &si in &spec.subnets {
                let subnet = &config.subnets[si];
                let fixed = spec.ips.get(&si).copied();
                let kept =
                    st.enis.get(&subnet.id).filter(|e| subnet.cidr.contains(e.ip) && fixed.is_none_or(|f| f == e.ip));
                let eni = match kept {
                    Some(e) => e.clone(),
                    None => {
                        let ip = match fixed {
                            Some(ip) => ip,
                            None => subnet.cidr.assignable().find(|ip| !taken.contains(ip)).ok_or_else(|| {
                                PlanError::SubnetFull {
                                    subnet: subnet.id.clone(),
                                    cidr: subnet.cidr,
                                    endpoint: st.id.clone(),
                                }
                            })?,
                        };
                        taken.push(ip);
                        let old_id = st.enis.get(&subnet.id).map(|e| e.id.clone());
                        EniState { id: old_id.unwrap_or_else(|| make_id("eni", random())), ip }
                    }
                };
                st.enis.insert(subnet.id.clone(), eni.clone());
                enis.push(Eni {
                    id: eni.id,
                    subnet: subnet.id.clone(),
                    subnet_cidr: subnet.cidr,
                    az: subnet.az.clone(),
                    ip: eni.ip,
                });
            }
            let names: Vec<&String> = spec.subnets.iter().map(|&si| &config.subnets[si].id).collect();
            st.enis.retain(|k, _| names.contains(&k));

            let upstream = match &spec.upstream {
                Some(u) => {
                    let (h, p) = crate::config::parse_host_port(u).expect("validated");
                    Upstream { host: h.to_string(), port: p }
                }
                None => Upstream {
                    host: spec
                        .service_info
                        .default_dns_names
                        .iter()
                        .find(|n| !n.starts_with('*'))
                        .ok_or_else(|| PlanError::NoUpstream {
                            endpoint: st.id.clone(),
                            service: spec.service.clone(),
                        })?
                        .clone(),
                    port: 443,
                },
            };
            endpoints.push(Endpoint {
                id: st.id.clone(),
                service: spec.service.clone(),
                private_dns: spec.private_dns,
                service_info: spec.service_info.clone(),
                dns_suffix: st.suffix.clone(),
                enis,
                upstream,
                ports: spec.ports.clone(),
                security_groups: spec.security_groups.clone(),
                bandwidth: spec.bandwidth,
                allowed_sni: spec.allowed_sni.clone(),
                allow_non_tls: spec.allow_non_tls,
                hello_timeout: spec.hello_timeout,
                policy: spec.policy.clone(),
                connect_timeout: spec.connect_timeout,
                max_connections: spec.max_connections,
            });
        }
        Ok(Plan { vpc: config.vpc.clone(), subnets: config.subnets.clone(), endpoints, rules: config.rules.clone() })
    }

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

    /// The compiled security groups and NACLs of every ENI; ENI `i` is the
    /// `i`th of [`Plan::eni_ips`].
    pub fn rule_set(&self) -> Result<crate::filter::RuleSet, crate::filter::RuleSetError> {
        let mut cfg = self.rules.clone();
        let mut index = 0;
        for e in &self.endpoints {
            for n in &e.enis {
                let subnet = self.subnets.iter().find(|s| s.id == n.subnet).expect("ENIs are in known subnets");
                cfg.enis.push(eni_rules(index, n.ip, subnet, &e.security_groups));
                index += 1;
            }
        }
        crate::filter::RuleSet::build(&cfg)
    }

    /// What the data path is built from; a reload that changes it needs a restart.
    pub fn data_path_shape(&self) -> Vec<(String, Vec<Ipv4Addr>, Vec<u16>, String)> {
        self.endpoints
            .iter()
            .map(|e| (e.id.clone(), e.enis.iter().map(|n| n.ip).collect(), e.ports.clone(), e.upstream.to_string()))
            .collect()
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
            let ports: Vec<String> = e.ports.iter().map(u16::to_string).collect();
            writeln!(f, "endpoint {} {} (Interface)", e.id, e.service)?;
            writeln!(
                f,
                "  ports tcp/{}  private DNS {}  upstream {}",
                ports.join(","),
                if e.private_dns { "on" } else { "off" },
                e.upstream
            )?;
            writeln!(f, "  connect timeout {:?}  max connections {}", e.connect_timeout, e.max_connections)?;
            for n in &e.enis {
                writeln!(f, "  {} {} in {} ({})", n.id, n.ip, n.subnet, n.az)?;
            }
            for name in e.dns_names() {
                writeln!(f, "  dns {name}")?;
            }
            let groups = if e.security_groups.is_empty() {
                "sg-default (the VPC's default group)".to_string()
            } else {
                e.security_groups.join(", ")
            };
            writeln!(f, "  security groups {groups}")?;
            if let Some(b) = &e.bandwidth {
                let max = b.max.map(|m| format!(", autoscaling to {m}")).unwrap_or_default();
                writeln!(f, "  bandwidth {} per ENI, burst {}{max}", b.rate, b.burst)?;
            }
            if !e.allowed_sni.is_empty() || e.allow_non_tls {
                writeln!(
                    f,
                    "  allowed SNI {:?}  non-TLS {}",
                    e.allowed_sni,
                    if e.allow_non_tls { "carried" } else { "reset" }
                )?;
            }
        }
        for g in &self.rules.security_groups {
            writeln!(f, "security group {}", g.id)?;
            for (dir, rules) in [("ingress", &g.ingress), ("egress", &g.egress)] {
                for r in rules {
                    let peer = match &r.peer {
                        crate::filter::SgPeer::Cidr(c) => c.to_string(),
                        crate::filter::SgPeer::Group(g) => g.clone(),
                        crate::filter::SgPeer::PrefixList(p) => p.clone(),
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

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_parse_and_contains() {
        let c = cidr("10.0.1.0/24");
        assert!(c.contains("10.0.1.200".parse().unwrap()));
        assert!(!c.contains("10.0.2.1".parse().unwrap()));
        assert!(cidr("10.0.0.0/16").contains_cidr(&c));
        assert!(!c.contains_cidr(&cidr("10.0.0.0/16")));
        assert!(c.overlaps(&cidr("10.0.0.0/16")));
        assert!("10.0.1.1/24".parse::<Cidr>().unwrap_err().contains("did you mean 10.0.1.0/24"));
        assert!("10.0.1.0/33".parse::<Cidr>().is_err());
        assert_eq!(cidr("0.0.0.0/0").size(), 1 << 32);
    }

    #[test]
    fn five_reserved_addresses() {
        let c = cidr("10.0.1.0/24");
        let reserved: Vec<_> = (0..256).filter_map(|n| c.nth(n)).filter(|ip| c.is_reserved(*ip)).collect();
        let want: Vec<Ipv4Addr> =
            ["10.0.1.0", "10.0.1.1", "10.0.1.2", "10.0.1.3", "10.0.1.255"].iter().map(|s| s.parse().unwrap()).collect();
        assert_eq!(reserved, want);
        assert_eq!(c.assignable().next(), Some("10.0.1.4".parse().unwrap()));
        assert_eq!(c.assignable().count(), 251);
        assert_eq!(cidr("10.0.1.0/28").assignable().count(), 11);
    }

    #[test]
    fn ids_look_like_aws() {
        let id = make_id("vpce", [0xab; 9]);
        assert_eq!(id, "vpce-ababababababababa");
        assert!(crate::config::is_vpce_id(&id));
        assert_eq!(make_id("eni", [1; 9]).len(), 4 + 17);
    }

    const CFG: &str = r#"
[vpc]
cidr = "10.0.0.0/16"
region = "us-east-1"
[[subnet]]
id = "a"
cidr = "10.0.1.0/24"
az = "us-east-1a"
[[subnet]]
id = "b"
cidr = "10.0.2.0/28"
az = "us-east-1b"
[[endpoint]]
service = "com.amazonaws.us-east-1.ec2"
subnets = ["a", "b"]
ips = { "a" = "10.0.1.4" }
[[endpoint]]
service = "com.amazonaws.us-east-1.sts"
subnets = ["a"]
"#;

    fn counter() -> impl FnMut() -> [u8; 9] {
        let mut n = 0u8;
        move || {
            n += 1;
            [n; 9]
        }
    }

    #[test]
    fn allocation_skips_reserved_and_taken_and_is_kept() {
        let config = Config::from_toml("t", CFG).unwrap();
        let mut state = State::default();
        let plan = Plan::make(&config, &mut state, counter()).unwrap();
        let ips: Vec<String> = plan.eni_ips().map(|(ip, _)| ip.to_string()).collect();
        assert_eq!(ips, ["10.0.1.4", "10.0.2.4", "10.0.1.5"]);
        assert_eq!(plan.endpoints[0].upstream.to_string(), "ec2.us-east-1.amazonaws.com:443");

        // A restart with the same state gives the same ids and IPs, and draws no randomness.
        let mut again = state.clone();
        let plan2 = Plan::make(&config, &mut again, || panic!("no new ids on restart")).unwrap();
        assert_eq!(again, state);
        assert_eq!(plan2.endpoints[1].enis, plan.endpoints[1].enis);
        assert_eq!(plan2.endpoints[0].id, plan.endpoints[0].id);
    }

    #[test]
    fn removed_endpoint_frees_its_ip() {
        let config = Config::from_toml("t", CFG).unwrap();
        let mut state = State::default();
        Plan::make(&config, &mut state, counter()).unwrap();
        let only_sts = CFG.replace(
            "service = \"com.amazonaws.us-east-1.ec2\"\nsubnets = [\"a\", \"b\"]\nips = { \"a\" = \"10.0.1.4\" }",
            "service = \"com.amazonaws.us-east-1.ssm\"\nsubnets = [\"b\"]",
        );
        let config2 = Config::from_toml("t", &only_sts).unwrap();
        Plan::make(&config2, &mut state, counter()).unwrap();
        assert!(!state.endpoints.contains_key("com.amazonaws.us-east-1.ec2"));
        assert_eq!(
            state.endpoints["com.amazonaws.us-east-1.sts"].enis["a"].ip,
            "10.0.1.5".parse::<Ipv4Addr>().unwrap()
        );
    }

    #[test]
    fn full_subnet_is_an_error() {
        let many: String = (0..12)
            .map(|i| format!("[[endpoint]]\nid = \"vpce-0000000000000000{i:x}\"\nservice = \"com.amazonaws.us-east-1.ec2\"\nsubnets = [\"b\"]\n"))
            .collect();
        let text = format!("{}\n{many}", &CFG[..CFG.find("[[endpoint]]").unwrap()]);
        let config = Config::from_toml("t", &text).unwrap();
        let err = Plan::make(&config, &mut State::default(), counter()).unwrap_err();
        assert!(matches!(err, PlanError::SubnetFull { .. }), "{err}");
    }
}
