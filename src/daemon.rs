//! `privlink up`: build the ENI in the VPC namespace, run the data path, clean up.
//!
//! Everything created is owned by a guard (`Netns`, `Tun`) whose `Drop`
//! removes it, so a return, an error or a panic all leave the host as it was.

use std::future::Future;
use std::path::Path;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::dns::{DnsError, Zone};
use crate::filter::{FilterConfig, RuleSet, RuleSetError};
use crate::guard::{EniGuard, GuardError};
use crate::model::{Plan, PlanError, State};
use crate::netns::{self, Netns, NetnsError};
use crate::resolver::{self, Resolver};
use crate::stack::{Report, Stack};
use crate::store::{StateDir, StoreError};
use crate::tun::{Tun, TunError};

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The state dir could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The config cannot be planned (no free IP, no upstream).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Namespace or `ip` setup failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// The TUN could not be created.
    #[error(transparent)]
    Tun(#[from] TunError),
    /// Security groups or NACLs could not be compiled.
    #[error("security groups / network ACLs: {0}")]
    Rules(#[from] RuleSetError),
    /// The guard (conntrack, flow logs) could not start.
    #[error(transparent)]
    Guard(#[from] GuardError),
    /// An SNI name in the config is not a valid pattern.
    #[error("allowed_sni: {0}")]
    Sni(#[from] crate::policy::SniPatternError),
    /// The private DNS zone could not be built.
    #[error("private DNS zone: {0}")]
    Dns(#[from] DnsError),
    /// The data path failed.
    #[error("data path: {0}")]
    Io(#[from] std::io::Error),
}

/// Random bytes for new ids.
pub fn random_id_bytes() -> [u8; 9] {
    let mut b = [0u8; 9];
    getrandom::getrandom(&mut b).expect("the OS has randomness");
    b
}

/// Plans `config` against the state in `state_dir` without writing anything.
pub fn plan_readonly(config: &Config, state_dir: &Path) -> Result<Plan, DaemonError> {
    let mut state = StateDir::new(state_dir).load()?;
    Ok(Plan::make(config, &mut state, random_id_bytes)?)
}

/// Runs the endpoint until `shutdown` resolves. `on_ready` is called with the
/// plan once the ENI answers. Configs arriving on `reload` (SIGHUP) are applied
/// if they change only what can change live (private DNS); otherwise they are
/// refused with a warning naming what needs a restart.
pub async fn up(
    config: &Config,
    state_dir: &Path,
    on_ready: impl FnOnce(&Plan),
    shutdown: impl Future<Output = ()>,
    reload: Option<mpsc::Receiver<Config>>,
) -> Result<Report, DaemonError> {
    let store = StateDir::new(state_dir);
    let mut state = store.load()?;
    let plan = Plan::make(config, &mut state, random_id_bytes)?;
    let zone = plan.zone()?;
    let rules = plan.rule_set()?;
    store.save(&state)?;

    for e in &plan.endpoints {
        for w in e.policy.warnings() {
            tracing::warn!("endpoint {} policy: {w}", e.id);
        }
    }
    let vpc = &plan.vpc;
    let ns = Netns::ensure(&vpc.netns)?;
    let tun = Tun::create(ns.name(), &vpc.tun, vpc.mtu)?;
    let n = ns.name();
    // The router address alone, as a /32: subnets may live on other links in the
    // namespace, so every ENI and resolver address gets its own route to the TUN.
    netns::ip(&["-n", n, "addr", "add", &format!("{}/32", vpc.router), "dev", tun.name()])?;
    let resolvers = vpc.resolvers();
    let router = vpc.router.to_string();
    for ip in plan.eni_ips().map(|(ip, _)| ip).chain(resolvers) {
        netns::ip(&["-n", n, "route", "replace", &format!("{ip}/32"), "dev", tun.name(), "src", &router])?;
    }
    ns.write_resolv_conf(resolvers[0])?;

    let forward = config.dns.forward.clone().unwrap_or_else(resolver::host_resolvers);
    let (zone_tx, zone_rx) = watch::channel(Arc::new(zone));
    let udp = Resolver::new(zone_rx.clone(), &forward).await?;
    let dns_tcp = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
    let dns_tcp_addr = dns_tcp.local_addr()?;
    let dns_tcp_task = tokio::spawn(resolver::serve_tcp(dns_tcp, zone_rx, forward));
    let (rules_tx, rules_rx) = watch::channel(Arc::new(rules));
    let filter = FilterConfig {
        timeouts: config.conntrack,
        hash_seed: u64::from_ne_bytes(random_id_bytes()[..8].try_into().expect("8 bytes")),
        ..FilterConfig::default()
    };
    let eni_ids: Vec<String> = plan.endpoints.iter().flat_map(|e| e.enis.iter().map(|n| n.id.clone())).collect();
    let eni_ips: Vec<std::net::Ipv4Addr> = plan.eni_ips().map(|(ip, _)| ip).collect();
    let guard = EniGuard::new(rules_rx, filter, &eni_ids, &eni_ips, plan.vpc.mtu, config.flow_logs.as_ref())?;
    let reload_task = reload.map(|rx| tokio::spawn(apply_reloads(rx, plan.clone(), state, zone_tx, rules_tx)));

    let stack = Stack::new(&plan, tun, udp, dns_tcp_addr, guard)?;
    on_ready(&plan);
    let report = stack.run(shutdown).await;
    dns_tcp_task.abort();
    if let Some(t) = reload_task {
        t.abort();
    }
    // The stack (and with it the TUN fd) is gone: the kernel removed the device and its routes.
    drop(ns);
    Ok(report?)
}

/// Applies reloaded configs: new zone and rules when only DNS settings, security
/// groups or NACLs changed.
async fn apply_reloads(
    mut rx: mpsc::Receiver<Config>,
    mut current: Plan,
    state: State,
    zone_tx: watch::Sender<Arc<Zone>>,
    rules_tx: watch::Sender<Arc<RuleSet>>,
) {
    while let Some(config) = rx.recv().await {
        let mut st = state.clone();
        let plan = match Plan::make(&config, &mut st, random_id_bytes) {
            Ok(p) => p,
            Err(e) => {
                println!("privlink: reload refused: {e}");
                continue;
            }
        };
        if plan.data_path_shape() != current.data_path_shape() || plan.vpc.netns != current.vpc.netns {
            println!(
                "privlink: reload refused: endpoints, ENIs, ports or upstreams changed; restart privlink for that"
            );
            continue;
        }
        match plan
            .zone()
            .map_err(|e| e.to_string())
            .and_then(|z| plan.rule_set().map(|r| (z, r)).map_err(|e| e.to_string()))
        {
            Ok((zone, rules)) => {
                zone_tx.send_replace(Arc::new(zone));
                rules_tx.send_replace(Arc::new(rules));
                let dns: Vec<String> = plan
                    .endpoints
                    .iter()
                    .map(|e| format!("{} private DNS {}", e.id, if e.private_dns { "on" } else { "off" }))
                    .collect();
                // Printed once the new zone and rules are published: the next packet meets them.
                println!("privlink: reloaded: {}; security groups and NACLs updated", dns.join(", "));
                current = plan;
            }
            Err(e) => println!("privlink: reload refused: {e}"),
        }
    }
}
