//! One TUN device in a VPC namespace with the stack that serves it: an
//! endpoint's ENIs, or the VPC resolver's addresses.
//!
//! The API runs each endpoint on a device of its own (an ENI is an
//! interface), so an endpoint comes and goes without touching another's
//! flows: its device, its routes (a `/32` per address to the device) and its
//! stack's thread start with it and stop with it. When the last descriptor
//! of the device closes, the kernel removes it with its routes.
//!
//! Rules and the private zone arrive on `watch` channels, the same ones a
//! SIGHUP reload uses: a change is seen at the next packet and query.

use std::net::Ipv4Addr;
use std::sync::Arc;

use tokio::sync::watch;

use crate::edge::daemon::{DaemonError, QueueShared, Workers};
use crate::edge::guard::EniGuard;
use crate::edge::netns;
use crate::edge::queue::report::{ConnectionSlots, Report};
use crate::edge::resolver::ResolverSettings;
use crate::edge::tun::Tun;
use privlink_core::filter::{FilterConfig, RuleSet};
use privlink_core::model::Plan;

/// A running device and its stack.
pub struct DataPath {
    device: String,
    workers: Workers,
    held: Option<std::fs::File>,
}

impl DataPath {
    /// Creates `plan.vpc.tun` in namespace `plan.vpc.netns`, routes `addresses`
    /// to it and starts its stack, which carries `plan`'s endpoints. The
    /// VPC router's address goes on the namespace's first device only
    /// (`router_address`): a second copy on each device costs an `addr add`,
    /// the slowest step of a start (10–20 ms here), for nothing.
    ///
    /// Routes name the router as their source, so it must be local already
    /// when `router_address` is false.
    pub async fn start(
        plan: &Plan,
        addresses: &[Ipv4Addr],
        router_address: bool,
        settings: watch::Receiver<Arc<ResolverSettings>>,
        rules: watch::Receiver<Arc<RuleSet>>,
        filter: FilterConfig,
    ) -> Result<DataPath, DaemonError> {
        let (ns, vpc) = (plan.vpc.netns.as_str(), &plan.vpc);
        let (tun, _) = Tun::create(ns, &vpc.tun, vpc.mtu, 1)?;
        let held = tun.hold()?;
        let router = vpc.router.to_string();
        let dev = tun.name();
        let mut lines: Vec<String> =
            router_address.then(|| format!("addr add {router}/32 dev {dev}")).into_iter().collect();
        lines.extend(addresses.iter().map(|ip| format!("route replace {ip}/32 dev {dev} src {router}")));
        netns::ip_batch(ns, &lines)?;
        let eni_ids: Vec<String> = plan.endpoints.iter().flat_map(|e| e.enis.iter().map(|n| n.id.clone())).collect();
        let eni_ips: Vec<Ipv4Addr> = plan.eni_ips().map(|(ip, _)| ip).collect();
        let guard = EniGuard::new(rules, filter, &eni_ids, &eni_ips, None)?;
        let slots = ConnectionSlots::new(plan);
        let mut workers = Workers::new();
        let shared = QueueShared { plan: plan.clone(), settings };
        workers.start(0, tun.into_queue(), shared, guard, slots).await?;
        Ok(DataPath { device: vpc.tun.clone(), workers, held: Some(held) })
    }

    /// The device's name.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// Stops the stack; the device and its routes go with its last descriptor.
    pub fn stop(mut self) -> Vec<Result<Report, DaemonError>> {
        let reports = self.workers.join();
        self.held.take();
        reports
    }
}
