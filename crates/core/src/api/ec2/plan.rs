//! The data plane's view of one VPC of the API's model: the same [`Plan`]
//! a config file becomes, so the API's endpoints run on the very data path
//! the config's do.
//!
//! The VPC's plan holds all of its endpoints; it gives the resolver its
//! private zone and the rules their group members. Each endpoint runs on
//! its own TUN device (an ENI is an interface), from
//! [`VpcPlan::endpoint_plan`]: the VPC's plan narrowed to that endpoint, so
//! creating or deleting one endpoint never touches another's flows.

use std::collections::BTreeMap;

use super::endpoint::enis_of;
use super::{Carriage, Ec2};
use crate::catalog;
use crate::config::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_MTU};
use crate::filter::RuleSetConfig;
use crate::model::{self, Endpoint, EndpointSettings, Eni, Plan, Upstream};
use crate::policy::{PolicyDocument, DEFAULT_HELLO_TIMEOUT};

/// Where each service's streams go: `[upstreams]` of the config, by service
/// name; a service not named goes to its public name on port 443.
pub type Upstreams = BTreeMap<String, Upstream>;

/// The concurrent connections an API endpoint carries (the config's default).
pub const MAX_CONNECTIONS: usize = 10_000;

/// One VPC as the data plane runs it.
#[derive(Debug, Clone)]
pub struct VpcPlan {
    /// Every endpoint of the VPC, with its subnets and rules.
    pub plan: Plan,
}

impl VpcPlan {
    /// The VPC's plan narrowed to endpoint `id`, on TUN device `tun`.
    pub fn endpoint_plan(&self, id: &str, tun: &str) -> Option<Plan> {
        let e = self.plan.endpoints.iter().find(|e| e.id == id)?;
        let mut plan = self.plan.clone();
        plan.endpoints = vec![e.clone()];
        plan.vpc.tun = tun.to_string();
        Some(plan)
    }

    /// The VPC's plan with no endpoint, on TUN device `tun`: the resolver's.
    pub fn resolver_plan(&self, tun: &str) -> Plan {
        let mut plan = self.plan.clone();
        plan.endpoints.clear();
        plan.vpc.tun = tun.to_string();
        plan
    }
}

/// How an API-made endpoint carries its streams: port 443, unshaped, any
/// server name, a ClientHello within the hello timeout.
pub fn default_carriage() -> Carriage {
    Carriage {
        ports: vec![443],
        bandwidth: None,
        allowed_sni: Vec::new(),
        allow_non_tls: false,
        hello_timeout: DEFAULT_HELLO_TIMEOUT,
        connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        max_connections: MAX_CONNECTIONS,
    }
}

impl Ec2 {
    /// The data plane's plan of VPC `vpc_id` (`None`: no such VPC), with
    /// `rules` its groups and NACLs as the filter takes them.
    pub fn vpc_plan(&self, vpc_id: &str, upstreams: &Upstreams, rules: RuleSetConfig) -> Option<VpcPlan> {
        let v = self.vpcs.get(vpc_id)?;
        let vpc = model::Vpc {
            id: v.id.clone(),
            cidr: v.cidr,
            region: self.region.clone(),
            netns: v.id.clone(),
            tun: String::new(),
            dns_support: v.dns_support,
            dns_hostnames: v.dns_hostnames,
            mtu: DEFAULT_MTU,
            queues: Some(1),
            router: v.cidr.nth(1).expect("a VPC block has more than one address"),
        };
        let subnets = self
            .subnets
            .values()
            .filter(|s| s.vpc == v.id)
            .map(|s| model::Subnet {
                id: s.id.clone(),
                cidr: s.cidr,
                az: s.az.clone(),
                network_acl: Some(s.network_acl.clone()),
            })
            .collect();
        let endpoints = self
            .endpoints
            .values()
            .filter(|e| e.vpc == v.id)
            .filter_map(|e| {
                let info = catalog::lookup(&e.service_name).ok()?;
                let enis = enis_of(self, e)
                    .filter_map(|n| {
                        let s = self.subnets.get(&n.subnet)?;
                        Some(Eni {
                            id: n.id.clone(),
                            subnet: s.id.clone(),
                            subnet_cidr: s.cidr,
                            az: s.az.clone(),
                            ip: n.ip,
                        })
                    })
                    .collect();
                let upstream = upstreams.get(&e.service_name).cloned().unwrap_or_else(|| Upstream {
                    host: info.default_dns_names.iter().find(|n| !n.starts_with('*')).cloned().unwrap_or_default(),
                    port: 443,
                });
                let policy = e.policy.as_deref().and_then(|p| PolicyDocument::parse(p).ok());
                let c = e.carriage.clone().unwrap_or_else(default_carriage);
                Some(Endpoint {
                    id: e.id.clone(),
                    service: e.service_name.clone(),
                    // The VPC resolver answers private names only with enableDnsSupport.
                    private_dns: e.private_dns && v.dns_support,
                    service_info: info,
                    dns_suffix: e.dns_suffix.clone(),
                    enis,
                    upstream,
                    settings: EndpointSettings {
                        ports: c.ports,
                        security_groups: e.security_groups.clone(),
                        bandwidth: c.bandwidth,
                        allowed_sni: c.allowed_sni,
                        allow_non_tls: c.allow_non_tls,
                        hello_timeout: c.hello_timeout,
                        policy: policy.unwrap_or_else(PolicyDocument::full_access),
                        connect_timeout: c.connect_timeout,
                        max_connections: c.max_connections,
                    },
                })
            })
            .collect();
        Some(VpcPlan { plan: Plan { vpc, subnets, endpoints, rules } })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ec2::testkit::Lab;

    #[test]
    fn the_plan_is_the_models_vpc_with_its_endpoints_and_upstreams() {
        let mut lab = Lab::new();
        let vpc = lab.vpc("10.0.0.0/16");
        lab.ok("ModifyVpcAttribute", &[("VpcId", &vpc), ("EnableDnsHostnames.Value", "true")]);
        let a = lab.subnet(&vpc, "10.0.1.0/24", "us-east-1a");
        let params = [
            ("VpcId", vpc.as_str()),
            ("ServiceName", "com.amazonaws.us-east-1.ec2"),
            ("VpcEndpointType", "Interface"),
            ("SubnetId.1", &a),
        ];
        let id = lab.field("CreateVpcEndpoint", &params, "CreateVpcEndpointResponse/vpcEndpoint/vpcEndpointId");
        let params = [
            ("VpcId", vpc.as_str()),
            ("ServiceName", "com.amazonaws.us-east-1.sts"),
            ("VpcEndpointType", "Interface"),
            ("SubnetId.1", &a),
        ];
        lab.ok("CreateVpcEndpoint", &params);
        let upstreams: Upstreams =
            [("com.amazonaws.us-east-1.ec2".to_string(), Upstream { host: "127.0.0.1".into(), port: 8443 })].into();
        let vp = lab.ec2.vpc_plan(&vpc, &upstreams, RuleSetConfig::default()).unwrap();
        assert_eq!(vp.plan.vpc.netns, vpc);
        assert_eq!(vp.plan.vpc.router.to_string(), "10.0.0.1");
        assert_eq!(vp.plan.endpoints.len(), 2);
        let ec2 = vp.plan.endpoints.iter().find(|e| e.id == id).unwrap();
        assert_eq!(ec2.upstream.to_string(), "127.0.0.1:8443");
        assert_eq!(ec2.enis[0].ip.to_string(), "10.0.1.4");
        let sts = vp.plan.endpoints.iter().find(|e| e.id != id).unwrap();
        assert_eq!(sts.upstream.to_string(), "sts.us-east-1.amazonaws.com:443", "not named: the public name");
        let zone = vp.plan.zone().unwrap();
        let one = vp.endpoint_plan(&id, "vpce0").unwrap();
        assert_eq!((one.endpoints.len(), one.vpc.tun.as_str()), (1, "vpce0"));
        assert!(vp.resolver_plan("vpcdns").endpoints.is_empty());
        drop(zone);
        assert!(lab.ec2.vpc_plan("vpc-12345678", &upstreams, RuleSetConfig::default()).is_none());
    }
}
