//! Which config changes a running privlink takes without a restart.
//!
//! A reload (SIGHUP) swaps the private zone and the rule set: private DNS on
//! or off, security groups and network ACLs change at the next packet and
//! query. What the data path itself is built from cannot change under it:
//! the endpoints (ids, ENI addresses, ports, upstreams) and the VPC's
//! namespace, TUN device, MTU and queue count. A reload that changes any of
//! those is refused, naming the first thing that changed, and the running
//! config stays.

use crate::model::Plan;

/// A reloaded config changes what only a restart can.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} changed; restart privlink for that")]
pub struct NeedsRestart(pub String);

/// `Ok` when `next` can replace `current` live.
pub fn check(current: &Plan, next: &Plan) -> Result<(), NeedsRestart> {
    let (v, w) = (&current.vpc, &next.vpc);
    let vpc = [
        ("the VPC's netns", v.netns != w.netns),
        ("the VPC's tun", v.tun != w.tun),
        ("the VPC's mtu", v.mtu != w.mtu),
        ("the VPC's queues", v.queues != w.queues),
        ("the endpoint count", current.endpoints.len() != next.endpoints.len()),
    ];
    if let Some((what, _)) = vpc.iter().find(|(_, changed)| *changed) {
        return Err(NeedsRestart(what.to_string()));
    }
    for (a, b) in current.endpoints.iter().zip(&next.endpoints) {
        let changed = if a.id != b.id {
            "its id"
        } else if a.enis.iter().map(|n| n.ip).ne(b.enis.iter().map(|n| n.ip)) {
            "its ENIs"
        } else if a.settings.ports != b.settings.ports {
            "its ports"
        } else if a.upstream != b.upstream {
            "its upstream"
        } else {
            continue;
        };
        return Err(NeedsRestart(format!("endpoint {}: {changed}", a.id)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, DEMO_CONFIG};
    use crate::model::State;

    fn plan(edit: impl Fn(&str) -> String) -> Plan {
        let config = Config::from_toml("demo.toml", &edit(DEMO_CONFIG)).unwrap();
        Plan::make(&config, &mut State::default(), || [7; 9]).unwrap()
    }

    #[test]
    fn dns_and_rules_change_live() {
        let now = plan(str::to_string);
        let dns_off = plan(|c| c.replace("private_dns = true", "private_dns = false"));
        assert_eq!(check(&now, &dns_off), Ok(()));
        let narrower = plan(|c| c.replace(r#"cidr = "10.0.0.0/16" }]"#, r#"cidr = "10.0.1.0/24" }]"#));
        assert_eq!(check(&now, &narrower), Ok(()));
    }

    #[test]
    fn the_data_path_shape_needs_a_restart_and_says_what_changed() {
        let now = plan(str::to_string);
        let cases = [
            (plan(|c| c.replace("127.0.0.1:8443", "127.0.0.1:9443")), "endpoint vpce-0lab00000000000a1: its upstream"),
            (plan(|c| c.replace("10.0.2.49", "10.0.2.50")), "endpoint vpce-0lab00000000000a1: its ENIs"),
            (
                plan(|c| c.replace("upstream = ", "ports = [443, 8443]\nupstream = ")),
                "endpoint vpce-0lab00000000000a1: its ports",
            ),
            (plan(|c| c.replace(r#"tun = "eni0""#, r#"tun = "eni1""#)), "the VPC's tun"),
            (plan(|c| c.replace(r#"tun = "eni0""#, "tun = \"eni0\"\nmtu = 1500")), "the VPC's mtu"),
        ];
        for (next, what) in cases {
            assert_eq!(check(&now, &next), Err(NeedsRestart(what.to_string())));
        }
    }
}
