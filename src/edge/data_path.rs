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
    /// to it and starts its stack, which carries `plan`'s endpoints.
    pub async fn start(
        plan: &Plan,
        addresses: &[Ipv4Addr],
        settings: watch::Receiver<Arc<ResolverSettings>>,
        rules: watch::Receiver<Arc<RuleSet>>,
        filter: FilterConfig,
    ) -> Result<DataPath, DaemonError> {
        let (ns, vpc) = (plan.vpc.netns.as_str(), &plan.vpc);
        let (tun, _) = Tun::create(ns, &vpc.tun, vpc.mtu, 1)?;
        let held = tun.hold()?;
        let router = vpc.router.to_string();
        netns::ip(&["-n", ns, "addr", "add", &format!("{router}/32"), "dev", tun.name()])?;
        for ip in addresses {
            netns::ip(&["-n", ns, "route", "replace", &format!("{ip}/32"), "dev", tun.name(), "src", &router])?;
        }
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
