//! What privlink remembers between runs (the state dir's `state.json`), and
//! the check a state read back must pass before anything uses it.
//!
//! The file is privlink's own, but it sits on a disk where an edit, a bad
//! restore or damage can change it, and what it says is served: its ENI IPs
//! become routes and DNS answers, its ids land in DNS names, flow logs and
//! the printed plan. [`State::check`] refuses a bad value, naming the file
//! and the field (`state.json: endpoints["…"].enis["subnet-a"].ip: …`),
//! before the plan is made and so before anything on the host changes:
//!
//! - an endpoint id is a `vpce-` id ([`is_vpce_id`]), an ENI id `eni-` and 17
//!   lowercase hex digits (as [`super::make_id`] makes them), a DNS suffix
//!   empty (allocated on the next run) or 8 lowercase letters and digits; no
//!   key holds a control character (a NUL included);
//! - an ENI the plan keeps (its endpoint and subnet are still in the config)
//!   sits inside its subnet, on none of the five addresses AWS reserves, on
//!   no address another such ENI holds and on none the config fixes for
//!   another endpoint. An address outside the subnet is refused, not
//!   replaced: AWS never changes a subnet's range, so the file is wrong, and
//!   an ENI silently moving breaks every client that cached its address.
//!
//! Entries the plan drops (an endpoint or subnet the config no longer names)
//! have their ids checked, since damage anywhere is damage, but not their
//! addresses: they are freed.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::config::{is_vpce_id, Config};

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
    /// By the endpoint's state key: its id when the config gives one, else its service name.
    pub endpoints: BTreeMap<String, EndpointState>,
}

/// A state file's value that must not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {field}: {reason}")]
pub struct StateError {
    /// The state file, as the caller names it.
    pub file: String,
    /// The field at fault, e.g. `endpoints["com.amazonaws.us-east-1.ec2"].enis["subnet-a"].ip`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl State {
    /// Checks every field against the rules above and `config`; `file` names
    /// the state file in the error.
    pub fn check(&self, file: &str, config: &Config) -> Result<(), StateError> {
        let fail = |field: String, reason: String| Err(StateError { file: file.to_string(), field, reason });
        // Addresses of the ENIs the plan keeps, with the field holding each.
        let mut held: Vec<(Ipv4Addr, String)> = Vec::new();
        for (key, ep) in &self.endpoints {
            let at = format!("endpoints[{key:?}]");
            if !is_key(key) {
                return fail(at, "not a service name or endpoint id".into());
            }
            if !is_vpce_id(&ep.id) {
                return fail(
                    format!("{at}.id"),
                    format!("{:?} is not an endpoint id (vpce- and 8 to 17 lowercase letters or digits)", ep.id),
                );
            }
            if !ep.suffix.is_empty() && !is_dns_suffix(&ep.suffix) {
                return fail(format!("{at}.suffix"), format!("{:?} is not 8 lowercase letters or digits", ep.suffix));
            }
            let spec = config.endpoints.iter().find(|e| e.state_key() == *key);
            for (subnet_id, eni) in &ep.enis {
                let at = format!("{at}.enis[{subnet_id:?}]");
                if !is_key(subnet_id) {
                    return fail(at, "not a subnet id".into());
                }
                if !is_eni_id(&eni.id) {
                    return fail(format!("{at}.id"), format!("{:?} is not an ENI id (eni- and 17 hex digits)", eni.id));
                }
                let kept =
                    spec.and_then(|s| s.subnets.iter().map(|&i| &config.subnets[i]).find(|s| s.id == *subnet_id));
                let Some(subnet) = kept else { continue };
                let (ip, cidr, field) = (eni.ip, subnet.cidr, format!("{at}.ip"));
                if !cidr.contains(ip) {
                    return fail(
                        field,
                        format!(
                            "{ip} is outside subnet {subnet_id} ({cidr}); a subnet's range never changes, so remove \
                             this ENI from the file to have a new address allocated"
                        ),
                    );
                }
                if cidr.is_reserved(ip) {
                    return fail(
                        field,
                        format!("{ip} is one of the five addresses AWS reserves in subnet {subnet_id} ({cidr})"),
                    );
                }
                if let Some((_, other)) = held.iter().find(|(h, _)| *h == ip) {
                    return fail(field, format!("{ip} is also held by {other}"));
                }
                let fixed_elsewhere =
                    config.endpoints.iter().find(|e| e.state_key() != *key && e.ips.values().any(|&f| f == ip));
                if let Some(other) = fixed_elsewhere {
                    return fail(field, format!("{ip} is fixed in the config for endpoint {}", other.state_key()));
                }
                held.push((ip, field));
            }
        }
        Ok(())
    }
}

/// A map key: not empty, no control characters.
fn is_key(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(char::is_control)
}

/// `eni-` and 17 lowercase hex digits.
fn is_eni_id(s: &str) -> bool {
    s.strip_prefix("eni-").is_some_and(|r| r.len() == 17 && r.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// 8 lowercase letters or digits, as [`crate::catalog::random_suffix`] makes them.
fn is_dns_suffix(s: &str) -> bool {
    s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEMO_CONFIG;
    use crate::model::Plan;

    /// The demo's endpoint (ENIs fixed at .49) and two more in subnet a, allocated .4 and .5.
    fn config() -> Config {
        let more = "[[endpoint]]\nservice = \"com.amazonaws.us-east-1.sts\"\nsubnets = [\"subnet-0lab000000000000a\"]\n\
                    [[endpoint]]\nservice = \"com.amazonaws.us-east-1.ssm\"\nsubnets = [\"subnet-0lab000000000000a\"]\n";
        Config::from_toml("demo.toml", &format!("{DEMO_CONFIG}\n{more}")).unwrap()
    }
    const EC2: &str = "vpce-0lab00000000000a1";
    const STS: &str = "com.amazonaws.us-east-1.sts";
    const SSM: &str = "com.amazonaws.us-east-1.ssm";
    const A: &str = "subnet-0lab000000000000a";

    /// The state a first run writes for [`config`].
    fn good() -> State {
        let mut state = State::default();
        let mut n = 0u8;
        Plan::make(&config(), &mut state, || {
            n += 1;
            [n; 9]
        })
        .unwrap();
        state
    }

    fn eni<'a>(state: &'a mut State, key: &str, subnet: &str) -> &'a mut EniState {
        state.endpoints.get_mut(key).unwrap().enis.get_mut(subnet).unwrap()
    }

    fn check(state: &State) -> Result<(), StateError> {
        let e = state.check("/var/lib/privlink/state.json", &config());
        if let Err(e) = &e {
            assert!(e.to_string().starts_with(&format!("/var/lib/privlink/state.json: {}: ", e.field)), "{e}");
        }
        e
    }

    #[test]
    fn what_the_plan_writes_passes() {
        let mut state = good();
        assert_eq!(eni(&mut state, STS, A).ip, Ipv4Addr::new(10, 0, 1, 4));
        assert_eq!(eni(&mut state, SSM, A).ip, Ipv4Addr::new(10, 0, 1, 5));
        check(&state).unwrap();
        check(&State::default()).unwrap();
    }

    #[test]
    fn a_reserved_address_is_refused() {
        let mut state = good();
        eni(&mut state, STS, A).ip = Ipv4Addr::new(10, 0, 1, 1);
        let e = check(&state).unwrap_err();
        assert_eq!(e.field, format!("endpoints[{STS:?}].enis[{A:?}].ip"));
        assert!(e.reason.contains(&format!("10.0.1.1 is one of the five addresses AWS reserves in subnet {A}")), "{e}");
        for last in [0, 2, 3, 255] {
            eni(&mut state, STS, A).ip = Ipv4Addr::new(10, 0, 1, last);
            assert!(check(&state).unwrap_err().reason.contains("reserves"), "10.0.1.{last}");
        }
    }

    #[test]
    fn a_nul_in_an_id_is_refused() {
        let mut state = good();
        let ep = state.endpoints.get_mut(STS).unwrap();
        ep.id.replace_range(6..7, "\0");
        let e = check(&state).unwrap_err();
        assert_eq!(e.field, format!("endpoints[{STS:?}].id"));
        assert!(e.reason.contains("\\0") && e.reason.contains("is not an endpoint id"), "{e}");

        let mut state = good();
        eni(&mut state, EC2, A).id.replace_range(5..6, "\0");
        let e = check(&state).unwrap_err();
        assert_eq!(e.field, format!("endpoints[{EC2:?}].enis[{A:?}].id"));
        assert!(e.reason.contains("is not an ENI id"), "{e}");

        let mut state = good();
        let ep = state.endpoints.remove(STS).unwrap();
        state.endpoints.insert(format!("{STS}\0"), ep);
        assert_eq!(check(&state).unwrap_err().field, format!("endpoints[\"{STS}\\0\"]"));
    }

    #[test]
    fn an_address_outside_its_subnet_is_refused_not_replaced() {
        let mut state = good();
        eni(&mut state, STS, A).ip = Ipv4Addr::new(10, 0, 2, 9);
        let e = check(&state).unwrap_err();
        assert_eq!(e.field, format!("endpoints[{STS:?}].enis[{A:?}].ip"));
        assert!(e.reason.contains(&format!("10.0.2.9 is outside subnet {A} (10.0.1.0/24)")), "{e}");
    }

    #[test]
    fn other_bad_fields_are_named() {
        let mut state = good();
        state.endpoints.get_mut(STS).unwrap().suffix = "ABCDEFGH".into();
        assert_eq!(check(&state).unwrap_err().field, format!("endpoints[{STS:?}].suffix"));

        // Two ENIs on one address.
        let mut state = good();
        eni(&mut state, STS, A).ip = Ipv4Addr::new(10, 0, 1, 5);
        let e = check(&state).unwrap_err();
        assert!(e.reason.contains(&format!("also held by endpoints[{SSM:?}].enis[{A:?}].ip")), "{e}");

        // An address the config fixes for another endpoint (not allocated yet).
        let mut state = good();
        state.endpoints.remove(EC2);
        eni(&mut state, SSM, A).ip = Ipv4Addr::new(10, 0, 1, 49);
        let e = check(&state).unwrap_err();
        assert!(e.reason.contains(&format!("fixed in the config for endpoint {EC2}")), "{e}");
    }

    #[test]
    fn entries_the_plan_drops_have_their_ids_checked_not_their_addresses() {
        let mut state = good();
        let mut gone = state.endpoints[STS].clone();
        gone.enis.get_mut(A).unwrap().ip = Ipv4Addr::new(192, 0, 2, 1);
        state.endpoints.insert("com.amazonaws.us-east-1.kms".into(), gone.clone());
        check(&state).unwrap();
        gone.enis.get_mut(A).unwrap().id = "eni-x".into();
        state.endpoints.insert("com.amazonaws.us-east-1.kms".into(), gone);
        let field = check(&state).unwrap_err().field;
        assert_eq!(field, format!("endpoints[\"com.amazonaws.us-east-1.kms\"].enis[{A:?}].id"));
    }
}
