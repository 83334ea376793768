//! The API's model made real: for every VPC a namespace with its resolver
//! device, an instance namespace per instance, a device per endpoint.
//!
//! [`Region::apply`] compares what runs with the model after a call and
//! changes only the difference, in an order that keeps every name and rule
//! consistent with the packets: instances and endpoints that went are
//! stopped first, then VPCs that went are removed, then new VPCs,
//! instances and endpoints start, and last the VPCs' rules and private
//! zones are replaced (a watch each: the next packet and query meet them).
//! An endpoint whose addresses, upstream or policy changed restarts on its
//! own device; one whose groups or private DNS changed keeps its flows
//! (untracked flows are judged again, as a SIGHUP reload does).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

use crate::edge::daemon::{random_id_bytes, DaemonError};
use crate::edge::data_path::DataPath;
use crate::edge::fabric::{FabricError, InstanceNet, Records, VpcNet};
use crate::edge::queue::report::Report;
use crate::edge::resolver::ResolverSettings;
use privlink_core::api::ec2::plan::{Upstreams, VpcPlan};
use privlink_core::api::ec2::Ec2;
use privlink_core::filter::{FilterConfig, RuleSet, RuleSetError};
use privlink_core::model::Plan;

/// Why the model could not be made real.
#[derive(Debug, thiserror::Error)]
pub enum RealizeError {
    /// A namespace or veth could not be made or removed.
    #[error(transparent)]
    Fabric(#[from] FabricError),
    /// A device or its stack could not start.
    #[error(transparent)]
    DataPath(#[from] DaemonError),
    /// The groups and NACLs do not compile (a quota).
    #[error("security groups / network ACLs of {vpc}: {source}")]
    Rules {
        /// The VPC.
        vpc: String,
        /// Why.
        source: RuleSetError,
    },
    /// The private zone does not build.
    #[error("private DNS of {vpc}: {source}")]
    Zone {
        /// The VPC.
        vpc: String,
        /// Why.
        source: privlink_core::dns::DnsError,
    },
}

/// The device name of the VPC resolver, in every VPC namespace.
const RESOLVER_DEVICE: &str = "dns0";

/// An endpoint's device name: `e` and the last 14 characters of its id (IFNAMSIZ is 16).
pub fn endpoint_device(id: &str) -> String {
    format!("e{}", &id[id.len().saturating_sub(14)..])
}

struct RunningEndpoint {
    plan: Plan,
    rules: watch::Sender<Arc<RuleSet>>,
    path: DataPath,
}

struct RunningVpc {
    net: VpcNet,
    settings: watch::Sender<Arc<ResolverSettings>>,
    resolver: DataPath,
    instances: BTreeMap<String, InstanceNet>,
    endpoints: BTreeMap<String, RunningEndpoint>,
}

/// Everything the API's model runs.
pub struct Region {
    records: Records,
    upstreams: Upstreams,
    forward: Vec<SocketAddr>,
    vpcs: BTreeMap<String, RunningVpc>,
}

impl Region {
    /// Nothing running yet.
    pub fn new(records: Records, upstreams: Upstreams, forward: Vec<SocketAddr>) -> Region {
        Region { records, upstreams, forward, vpcs: BTreeMap::new() }
    }

    fn filter() -> FilterConfig {
        FilterConfig {
            hash_seed: u64::from_ne_bytes(random_id_bytes()[..8].try_into().expect("8 bytes")),
            ..FilterConfig::default()
        }
    }

    /// Makes what runs match `ec2`.
    pub async fn apply(&mut self, ec2: &Ec2) -> Result<(), RealizeError> {
        // What went: endpoints and instances first, then whole VPCs.
        let gone: Vec<String> = self.vpcs.keys().filter(|v| !ec2.vpcs.contains_key(*v)).cloned().collect();
        for (_, running) in self.vpcs.iter_mut() {
            let ids: Vec<String> =
                running.endpoints.keys().filter(|e| !ec2.endpoints.contains_key(*e)).cloned().collect();
            for id in ids {
                if let Some(e) = running.endpoints.remove(&id) {
                    log_reports(&id, e.path.stop());
                }
            }
            let ids: Vec<String> =
                running.instances.keys().filter(|i| !ec2.instances.contains_key(*i)).cloned().collect();
            for id in ids {
                if let Some(i) = running.instances.remove(&id) {
                    i.terminate()?;
                }
            }
        }
        for id in gone {
            if let Some(v) = self.vpcs.remove(&id) {
                stop_vpc(v)?;
            }
        }
        for vpc_id in ec2.vpcs.keys() {
            let rules = ec2.rule_set_config(vpc_id);
            let vp = ec2.vpc_plan(vpc_id, &self.upstreams, rules).expect("a VPC of the model");
            let zone = vp.plan.zone().map_err(|source| RealizeError::Zone { vpc: vpc_id.clone(), source })?;
            let settings = Arc::new(ResolverSettings { zone: Arc::new(zone), forward: self.forward.clone() });
            if !self.vpcs.contains_key(vpc_id) {
                let running = self.start_vpc(&vp, settings.clone()).await?;
                self.vpcs.insert(vpc_id.clone(), running);
            }
            let running = self.vpcs.get_mut(vpc_id).expect("just made");
            for i in ec2.instances.values().filter(|i| &i.vpc == vpc_id) {
                if running.instances.contains_key(&i.id) {
                    continue;
                }
                let subnet = &ec2.subnets[&i.subnet];
                let resolver = vp.plan.vpc.resolvers()[0];
                let net = InstanceNet::launch(&running.net, &i.id, i.ip, subnet.cidr, resolver)?;
                running.instances.insert(i.id.clone(), net);
            }
            for e in &vp.plan.endpoints {
                let plan = vp.endpoint_plan(&e.id, &endpoint_device(&e.id)).expect("an endpoint of the plan");
                let rules = plan.rule_set().map_err(|source| RealizeError::Rules { vpc: vpc_id.clone(), source })?;
                match running.endpoints.get(&e.id) {
                    Some(r) if same_data_path(&r.plan, &plan) => {
                        r.rules.send_replace(Arc::new(rules));
                    }
                    _ => {
                        if let Some(old) = running.endpoints.remove(&e.id) {
                            log_reports(&e.id, old.path.stop());
                        }
                        let (rules_tx, rules_rx) = watch::channel(Arc::new(rules));
                        let addresses: Vec<_> = plan.eni_ips().map(|(ip, _)| ip).collect();
                        let path = DataPath::start(
                            &plan,
                            &addresses,
                            false,
                            running.settings.subscribe(),
                            rules_rx,
                            Self::filter(),
                        )
                        .await?;
                        tracing::debug!("endpoint {} on {} ({:?})", e.id, path.device(), addresses);
                        running.endpoints.insert(e.id.clone(), RunningEndpoint { plan, rules: rules_tx, path });
                    }
                }
            }
            // Published last: a name resolves once its ENI answers.
            running.settings.send_replace(settings);
        }
        Ok(())
    }

    async fn start_vpc(&self, vp: &VpcPlan, settings: Arc<ResolverSettings>) -> Result<RunningVpc, RealizeError> {
        let net = VpcNet::create(&self.records, &vp.plan.vpc.id)?;
        let (settings_tx, settings_rx) = watch::channel(settings);
        let plan = vp.resolver_plan(RESOLVER_DEVICE);
        let rules = plan.rule_set().map_err(|source| RealizeError::Rules { vpc: plan.vpc.id.clone(), source })?;
        let (_rules_tx, rules_rx) = watch::channel(Arc::new(rules));
        // The first device: it holds the VPC router's address.
        let resolver =
            DataPath::start(&plan, &plan.vpc.resolvers(), true, settings_rx, rules_rx, Self::filter()).await?;
        Ok(RunningVpc { net, settings: settings_tx, resolver, instances: BTreeMap::new(), endpoints: BTreeMap::new() })
    }

    /// Stops everything and removes every namespace made; returns each
    /// device's counters, by endpoint id (the resolver's by VPC id).
    pub fn stop(&mut self) -> Result<Vec<(String, Report)>, RealizeError> {
        let (mut first, mut reports) = (Ok(()), Vec::new());
        for (_, v) in std::mem::take(&mut self.vpcs) {
            match stop_vpc(v) {
                Ok(r) => reports.extend(r),
                Err(e) => {
                    tracing::warn!("{e}");
                    first = first.and(Err(e));
                }
            }
        }
        first.map(|()| reports)
    }
}

/// Whether `next` runs on `current`'s device unchanged: the same ENIs,
/// ports, upstream and policy.
fn same_data_path(current: &Plan, next: &Plan) -> bool {
    let policy = |p: &Plan| p.endpoints.first().map(|e| e.settings.policy.text().to_string());
    privlink_core::reload::check(current, next).is_ok() && policy(current) == policy(next)
}

fn stop_vpc(mut v: RunningVpc) -> Result<Vec<(String, Report)>, RealizeError> {
    let mut reports = Vec::new();
    for (id, e) in std::mem::take(&mut v.endpoints) {
        reports.extend(log_reports(&id, e.path.stop()).into_iter().map(|r| (id.clone(), r)));
    }
    for (_, i) in std::mem::take(&mut v.instances) {
        i.terminate()?;
    }
    let name = v.net.name().to_string();
    reports.extend(log_reports(&name, v.resolver.stop()).into_iter().map(|r| (name.clone(), r)));
    v.net.remove()?;
    Ok(reports)
}

/// Logs a device's reports; returns the good ones.
fn log_reports(what: &str, reports: Vec<Result<Report, DaemonError>>) -> Vec<Report> {
    let mut kept = Vec::new();
    for r in reports {
        match r {
            Ok(r) => {
                tracing::debug!("{what} stopped: {}", r.counters);
                kept.push(r);
            }
            Err(e) => tracing::warn!("{what} stopped with an error: {e}"),
        }
    }
    kept
}
