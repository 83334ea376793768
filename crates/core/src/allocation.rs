//! How a config becomes a [`Plan`]: endpoint ids, DNS suffixes and ENI
//! addresses are allocated once and kept in the [`State`] the caller stores.
//!
//! An ENI keeps its address across runs while its subnet and any fixed `ips`
//! entry still allow it; new ENIs take the lowest address of their subnet
//! that is neither reserved by AWS nor held by another ENI. An endpoint the
//! config no longer names is dropped from the state, which frees its
//! addresses. Randomness for new ids comes from the caller, so the core
//! reads no entropy.

use std::net::Ipv4Addr;

use crate::catalog::random_suffix;
use crate::config::{parse_host_port, Config};
use crate::model::{make_id, Endpoint, Eni, EniState, Plan, PlanError, State, Upstream};

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
                st.suffix = random_suffix(r[..8].try_into().expect("8 bytes"));
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
                    let (h, p) = parse_host_port(u).expect("validated");
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
                settings: spec.settings.clone(),
            });
        }
        Ok(Plan { vpc: config.vpc.clone(), subnets: config.subnets.clone(), endpoints, rules: config.rules.clone() })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Two subnets, an EC2 endpoint in both (one address fixed), an STS endpoint in one.
    pub(crate) const CFG: &str = r#"
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
