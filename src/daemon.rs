//! `privlink up`: build the ENI in the VPC namespace, run the data path, clean up.
//!
//! Everything created is owned by a guard (`Netns`, `Tun`) whose `Drop`
//! removes it, so a return, an error or a panic all leave the host as it was.

use std::future::Future;
use std::path::Path;

use crate::config::Config;
use crate::model::{Plan, PlanError};
use crate::netns::{self, Netns, NetnsError};
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
/// plan once the ENI answers.
pub async fn up(
    config: &Config,
    state_dir: &Path,
    on_ready: impl FnOnce(&Plan),
    shutdown: impl Future<Output = ()>,
) -> Result<Report, DaemonError> {
    let store = StateDir::new(state_dir);
    let mut state = store.load()?;
    let plan = Plan::make(config, &mut state, random_id_bytes)?;
    store.save(&state)?;

    let vpc = &plan.vpc;
    let ns = Netns::ensure(&vpc.netns)?;
    let tun = Tun::create(ns.name(), &vpc.tun, vpc.mtu)?;
    let n = ns.name();
    // The router address alone, as a /32: subnets may live on other links in the
    // namespace, so every ENI and resolver address gets its own route to the TUN.
    netns::ip(&["-n", n, "addr", "add", &format!("{}/32", vpc.router), "dev", tun.name()])?;
    let resolvers = vpc.resolvers();
    let targets = plan.eni_ips().map(|(ip, _)| ip).chain(resolvers);
    for ip in targets {
        netns::ip(&[
            "-n",
            n,
            "route",
            "replace",
            &format!("{ip}/32"),
            "dev",
            tun.name(),
            "src",
            &vpc.router.to_string(),
        ])?;
    }

    let stack = Stack::new(&plan, tun);
    on_ready(&plan);
    let report = stack.run(shutdown).await?;
    // The stack (and with it the TUN fd) is gone: the kernel removed the device and its routes.
    drop(ns);
    Ok(report)
}
