//! `privlink up`: build the ENI in the VPC namespace, run the data path, clean up.
//!
//! Everything created is owned by a guard (`Netns`, `Tun`, `Lock`) whose
//! `Drop` removes it, so a return, an error or a panic all leave the host as
//! it was; what a `kill -9` leaves, the next run adopts and removes
//! ([`crate::edge::ownership`]).
//!
//! # Start-up, in order
//!
//! 1. The privileges needed are checked ([`privileges::require`]): nothing
//!    is read or written without them.
//! 2. The state dir's lock, then the namespace's ([`crate::edge::lock`]): a
//!    second `up` on either is refused, naming the first.
//! 3. The state is read and checked against the config (a bad field is
//!    refused, naming the file and the field), the plan made, the state saved.
//! 4. The namespace is adopted, used or created (recorded first), then the
//!    TUN's queues, the router address, the routes, `resolv.conf`, the
//!    resolver's sockets and the flow log.
//! 5. With [`Privileges::Drop`] (the command line), the namespace and the
//!    locks go to the teardown thread and the rest of the process gives up
//!    every privilege ([`crate::edge::privileges`]); then the queue threads
//!    start and the ENI is ready.
//!
//! A SIGINT or SIGTERM during start-up is held until the ENI is ready, then
//! stops it: start-up is a few short steps, and stopping half-way through
//! one is what left half-made namespaces behind.
//!
//! # Queues
//!
//! The TUN has one queue per CPU (or `vpc.queues`), each served by its own
//! thread with a current-thread runtime and a whole [`Stack`]: nothing on the
//! data path is shared but the flow log and the per-endpoint connection
//! counts. The kernel steers each flow to one queue, so one stack sees all of
//! a flow: a new flow goes to the queue its symmetric hash picks, and the
//! flow table the TUN keeps from our writes (a stack writes only its own
//! flows) points the same way. That needs a kernel whose TUN hashes flows
//! symmetrically (commit feec084a7cf4, "tun: use symmetric hash"); before
//! it, a local client's packets carried a per-socket hash that changes after
//! a retransmission timeout, and a flow could move. Every queue's fd is held
//! until every stack has stopped, so the queue count, and with it the
//! steering, never changes while flows run. The first queue runs on the
//! caller's thread, with the reloads. Every queue's stack has its own VPC
//! resolver, UDP and TCP (no host socket serves DNS).

use std::future::Future;
use std::path::Path;

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::edge::guard::{EniGuard, GuardError};
use crate::edge::lock::{self, Holder, Lock, LockError};
use crate::edge::netns::{self, Netns, NetnsError};
use crate::edge::ownership::CreatedRecord;
use crate::edge::privileges::{self, PrivilegeError, Privileges, Teardown};
use crate::edge::queue::report::{ConnectionSlots, Report};
use crate::edge::queue::Stack;
use crate::edge::resolver::network::HostNetwork;
use crate::edge::resolver::{self, Resolver, ResolverSettings};
use crate::edge::store::{StateDir, StoreError};
use crate::edge::tun::{Tun, TunError, TunQueue};
use crate::edge::upstream::TcpConnector;
use privlink_core::config::{Config, MAX_QUEUES};
use privlink_core::dns::DnsError;
use privlink_core::filter::{FilterConfig, RuleSet, RuleSetError};
use privlink_core::model::{Plan, PlanError, State};

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The process lacks what start-up needs, or could not give it up after.
    #[error(transparent)]
    Privileges(#[from] PrivilegeError),
    /// Another privlink runs on the namespace or the state dir.
    #[error(transparent)]
    Lock(#[from] LockError),
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
    Sni(#[from] privlink_core::policy::SniPatternError),
    /// The private DNS zone could not be built.
    #[error("private DNS zone: {0}")]
    Dns(#[from] DnsError),
    /// The data path failed.
    #[error("data path: {0}")]
    Io(#[from] std::io::Error),
    /// A queue's thread panicked.
    #[error("TUN queue {0}: its thread panicked")]
    QueuePanicked(usize),
}

/// Random bytes for new ids.
pub fn random_id_bytes() -> [u8; 9] {
    let mut b = [0u8; 9];
    getrandom::getrandom(&mut b).expect("the OS has randomness");
    b
}

/// Plans `config` against the state in `state_dir` without writing anything.
pub fn plan_readonly(config: &Config, state_dir: &Path) -> Result<Plan, DaemonError> {
    let mut state = StateDir::new(state_dir).load_checked(config)?;
    Ok(Plan::make(config, &mut state, random_id_bytes)?)
}

/// Runs the endpoint until `shutdown` resolves. `on_ready` is called with the
/// plan once the ENI answers. Configs arriving on `reload` (SIGHUP) are applied
/// if they change only what can change live (private DNS, `[dns] forward`,
/// security groups and NACLs), and the line printed says what changed;
/// otherwise they are refused, naming what needs a restart. `privileges`
/// says whether the process gives up its privileges once the ENI exists.
pub async fn up(
    config: &Config,
    state_dir: &Path,
    privileges: Privileges,
    on_ready: impl FnOnce(&Plan),
    shutdown: impl Future<Output = ()>,
    reload: Option<mpsc::Receiver<Config>>,
) -> Result<Report, DaemonError> {
    privileges::require()?;
    let holder = Holder {
        pid: std::process::id(),
        state_dir: std::path::absolute(state_dir).unwrap_or_else(|_| state_dir.to_path_buf()).display().to_string(),
        netns: config.vpc.netns.clone(),
        tun: config.vpc.tun.clone(),
    };
    let what = format!("state dir {}", holder.state_dir);
    let state_lock = Lock::acquire(&state_dir.join("lock"), &what, "--state-dir", &holder)?;
    let what = format!("namespace {}", holder.netns);
    let netns_lock = Lock::acquire(&lock::netns_lock_path(&holder.netns), &what, "vpc.netns", &holder)?;
    let store = StateDir::new(state_dir);
    let mut state = store.load_checked(config)?;
    let plan = Plan::make(config, &mut state, random_id_bytes)?;
    let zone = plan.zone()?;
    let rules = plan.rule_set()?;
    store.save(&state)?;

    for e in &plan.endpoints {
        for w in e.settings.policy.warnings() {
            tracing::warn!("endpoint {} policy: {w}", e.id);
        }
    }
    let vpc = &plan.vpc;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let queues = queue_count(&plan, cpus);
    if plan.vpc.queues.is_some_and(|q| q > queues) {
        tracing::warn!("vpc.queues ignored: an endpoint has a bandwidth limit, which takes one queue");
    }
    let record = CreatedRecord::in_dir(state_dir);
    remove_left_behind(&record, &holder)?;
    let ns = Netns::ensure(&vpc.netns, record)?;
    let (tun, more_queues) = Tun::create(ns.name(), &vpc.tun, vpc.mtu, queues)?;
    // Every queue stays attached until every stack has stopped: a queue that
    // went early would have its flows dealt out to stacks that do not know them.
    let held: Vec<std::fs::File> =
        std::iter::once(tun.hold()).chain(more_queues.iter().map(TunQueue::hold)).collect::<Result<_, _>>()?;
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
    let (settings_tx, settings_rx) = watch::channel(Arc::new(ResolverSettings { zone: Arc::new(zone), forward }));
    let (rules_tx, rules_rx) = watch::channel(Arc::new(rules));
    let filter = FilterConfig {
        timeouts: config.conntrack,
        hash_seed: u64::from_ne_bytes(random_id_bytes()[..8].try_into().expect("8 bytes")),
        ..FilterConfig::default()
    };
    let eni_ids: Vec<String> = plan.endpoints.iter().flat_map(|e| e.enis.iter().map(|n| n.id.clone())).collect();
    let eni_ips: Vec<std::net::Ipv4Addr> = plan.eni_ips().map(|(ip, _)| ip).collect();
    let guard = EniGuard::new(rules_rx, filter, &eni_ids, &eni_ips, config.flow_logs.as_ref())?;
    let slots = ConnectionSlots::new(&plan);
    // Removed at the end in this order: the namespace, its lock, the state dir's.
    let owned = (ns, netns_lock, state_lock);
    let (kept, teardown) = match privileges {
        Privileges::Keep => (Some(owned), None),
        Privileges::Drop => {
            let sys_admin = owned.0.created();
            let teardown = Teardown::start(owned, sys_admin)?;
            privileges::drop_all()?;
            (None, Some(teardown))
        }
    };
    let mut workers = Workers::new();
    for (i, queue) in more_queues.into_iter().enumerate() {
        let guard = guard.for_another_queue()?;
        let shared = QueueShared { plan: plan.clone(), settings: settings_rx.clone() };
        workers.start(i + 1, queue, shared, guard, slots.clone()).await?;
    }
    let reload_task = reload.map(|rx| tokio::spawn(apply_reloads(rx, plan.clone(), state, settings_tx, rules_tx)));

    let resolver = Resolver::new(settings_rx, Box::new(HostNetwork::default()));
    let stack = Stack::new(&plan, tun, resolver, guard, slots, TcpConnector, std::time::Instant::now())?;
    if queues > 1 {
        tracing::info!("{queues} TUN queues, one stack and thread each");
    }
    on_ready(&plan);
    let mut stopped = workers.stop.subscribe();
    let report = stack
        .run(async {
            // A queue that stops on its own (an error) stops them all: its flows would have nowhere to go.
            tokio::select! {
                _ = shutdown => {}
                _ = stopped.wait_for(|s| *s) => {}
            }
        })
        .await;
    if let Some(t) = reload_task {
        t.abort();
    }
    let mut report = report?;
    for r in workers.join() {
        report.add(&r?);
    }
    // The stacks are gone; with the last of the TUN's fds the kernel removes the device and its routes.
    drop(held);
    drop(kept);
    drop(teardown);
    Ok(report)
}

/// Removes the namespace an earlier run from this state dir created under
/// another name (the config's `vpc.netns` changed since) and left behind,
/// unless a privlink runs on it now.
fn remove_left_behind(record: &CreatedRecord, holder: &Holder) -> Result<(), DaemonError> {
    let record_err = |source| NetnsError::Record { path: record.path().display().to_string(), source };
    let Some(old) = record.load().map_err(record_err)?.filter(|c| c.netns != holder.netns) else { return Ok(()) };
    let what = format!("namespace {}", old.netns);
    match Lock::acquire(&lock::netns_lock_path(&old.netns), &what, "vpc.netns", holder) {
        Ok(_lock) => Netns::remove_left_behind(record, &old)?,
        Err(e) => {
            tracing::warn!("namespace {}, made by an earlier run from this state dir, is left: {e}", old.netns);
            record.clear().map_err(record_err)?;
        }
    }
    Ok(())
}

/// How many TUN queues to run: `vpc.queues`, else one per CPU (of `cpus`);
/// one when an endpoint is shaped, since its shaper shares the ENI's rate
/// among all of its connections in one place.
fn queue_count(plan: &Plan, cpus: usize) -> usize {
    if plan.endpoints.iter().any(|e| e.settings.bandwidth.is_some()) {
        return 1;
    }
    plan.vpc.queues.unwrap_or(cpus.clamp(1, MAX_QUEUES))
}

/// What every queue's stack is built from.
pub(crate) struct QueueShared {
    pub(crate) plan: Plan,
    pub(crate) settings: watch::Receiver<Arc<ResolverSettings>>,
}

/// The threads serving TUN queues 1.., and the flag that stops them all.
pub(crate) struct Workers {
    threads: Vec<(usize, std::thread::JoinHandle<Result<Report, DaemonError>>)>,
    stop: watch::Sender<bool>,
}

impl Workers {
    pub(crate) fn new() -> Workers {
        Workers { threads: Vec::new(), stop: watch::channel(false).0 }
    }

    /// Starts a thread with its own runtime and stack for `queue`; returns once
    /// the stack is built (or could not be).
    pub(crate) async fn start(
        &mut self,
        index: usize,
        queue: TunQueue,
        shared: QueueShared,
        guard: EniGuard,
        slots: ConnectionSlots,
    ) -> Result<(), DaemonError> {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (stop, mut stopped) = (self.stop.clone(), self.stop.subscribe());
        let thread = std::thread::Builder::new().name(format!("privlink-q{index}")).spawn(move || {
            // However this thread ends, a panic included, every queue stops.
            let _stop_all = StopOnDrop(stop);
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let result = rt.block_on(async move {
                let built = async {
                    let tun = queue.register()?;
                    let resolver = Resolver::new(shared.settings, Box::new(HostNetwork::default()));
                    Ok::<_, DaemonError>(Stack::new(
                        &shared.plan,
                        tun,
                        resolver,
                        guard,
                        slots,
                        TcpConnector,
                        std::time::Instant::now(),
                    )?)
                };
                // Dropping `ready_tx` unsent tells the caller the stack could not be built.
                let stack = built.await?;
                let _ = ready_tx.send(());
                let report = stack
                    .run(async {
                        let _ = stopped.wait_for(|s| *s).await;
                    })
                    .await;
                Ok(report?)
            });
            result
        })?;
        self.threads.push((index, thread));
        match ready_rx.await {
            Ok(()) => Ok(()),
            // The thread is gone; its error comes back from `join`.
            Err(_) => match self.join().into_iter().find_map(Result::err) {
                Some(e) => Err(e),
                None => Err(DaemonError::QueuePanicked(index)),
            },
        }
    }

    /// Stops every queue's thread and collects their reports.
    pub(crate) fn join(&mut self) -> Vec<Result<Report, DaemonError>> {
        self.stop.send_replace(true);
        self.threads.drain(..).map(|(i, t)| t.join().unwrap_or(Err(DaemonError::QueuePanicked(i)))).collect()
    }
}

/// Sets the stop flag when dropped.
struct StopOnDrop(watch::Sender<bool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

impl Drop for Workers {
    /// On an early return (an error) the threads still stop before the namespace goes.
    fn drop(&mut self) {
        self.join();
    }
}

/// Applies reloaded configs: a new zone, forwarder list and rules when only
/// DNS settings, security groups or NACLs changed; says what changed.
async fn apply_reloads(
    mut rx: mpsc::Receiver<Config>,
    mut current: Plan,
    state: State,
    settings_tx: watch::Sender<Arc<ResolverSettings>>,
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
        if let Err(e) = privlink_core::reload::check(&current, &plan) {
            println!("privlink: reload refused: {e}");
            continue;
        }
        match plan
            .zone()
            .map_err(|e| e.to_string())
            .and_then(|z| plan.rule_set().map(|r| (z, r)).map_err(|e| e.to_string()))
        {
            Ok((zone, rules)) => {
                let forward = config.dns.forward.clone().unwrap_or_else(resolver::host_resolvers);
                let changes = reload_changes(&current, &plan, &settings_tx.borrow().forward, &forward);
                settings_tx.send_replace(Arc::new(ResolverSettings { zone: Arc::new(zone), forward }));
                rules_tx.send_replace(Arc::new(rules));
                // Printed once the new settings and rules are published: the next packet meets them.
                println!("privlink: reloaded: {changes}");
                current = plan;
            }
            Err(e) => println!("privlink: reload refused: {e}"),
        }
    }
}

/// What a reload from `current` to `next` changes, for the log line.
fn reload_changes(
    current: &Plan,
    next: &Plan,
    forward: &[std::net::SocketAddr],
    next_forward: &[std::net::SocketAddr],
) -> String {
    let list = |l: &[std::net::SocketAddr]| {
        if l.is_empty() {
            "none (privacy mode)".to_string()
        } else {
            l.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        }
    };
    let mut changes: Vec<String> = current
        .endpoints
        .iter()
        .zip(&next.endpoints)
        .filter(|(a, b)| a.private_dns != b.private_dns)
        .map(|(_, b)| format!("{} private DNS {}", b.id, if b.private_dns { "on" } else { "off" }))
        .collect();
    if forward != next_forward {
        changes.push(format!("dns.forward {} -> {}", list(forward), list(next_forward)));
    }
    if current.rules != next.rules {
        changes.push("security groups and NACLs updated".to_string());
    }
    if changes.is_empty() {
        "nothing changed".to_string()
    } else {
        changes.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use privlink_core::config::DEMO_CONFIG;

    fn plan(edit: impl Fn(&str) -> String) -> Plan {
        let config = Config::from_toml("demo.toml", &edit(DEMO_CONFIG)).unwrap();
        Plan::make(&config, &mut State::default(), random_id_bytes).unwrap()
    }

    #[test]
    fn one_queue_per_cpu_unless_configured_or_shaped() {
        let default = plan(str::to_string);
        assert_eq!(queue_count(&default, 2), 2);
        assert_eq!(queue_count(&default, 0), 1);
        assert_eq!(queue_count(&default, 64), MAX_QUEUES);
        let three = plan(|c| c.replace("netns = \"plk-demo\"", "netns = \"plk-demo\"\nqueues = 3"));
        assert_eq!(queue_count(&three, 2), 3);
        let shaped = |c: &str| c.replacen("upstream = ", "bandwidth = \"1Gbit\"\nupstream = ", 1);
        assert_eq!(queue_count(&plan(shaped), 8), 1);
        let shaped_three = plan(|c| shaped(c).replace("netns = \"plk-demo\"", "netns = \"plk-demo\"\nqueues = 3"));
        assert_eq!(queue_count(&shaped_three, 8), 1, "a shaper takes one queue, whatever vpc.queues says");
    }

    #[test]
    fn a_reload_says_what_changed() {
        let now = plan(str::to_string);
        let a: Vec<std::net::SocketAddr> = vec!["127.0.0.1:5301".parse().unwrap()];
        let b: Vec<std::net::SocketAddr> = vec!["127.0.0.1:5302".parse().unwrap(), "127.0.0.1:5303".parse().unwrap()];
        assert_eq!(reload_changes(&now, &now, &a, &a), "nothing changed");
        assert_eq!(reload_changes(&now, &now, &a, &b), "dns.forward 127.0.0.1:5301 -> 127.0.0.1:5302, 127.0.0.1:5303");
        assert_eq!(reload_changes(&now, &now, &a, &[]), "dns.forward 127.0.0.1:5301 -> none (privacy mode)");
        let off = plan(|c| c.replace("private_dns = true", "private_dns = false"));
        let narrower = plan(|c| c.replace(r#"cidr = "10.0.0.0/16" }]"#, r#"cidr = "10.0.1.0/24" }]"#));
        let id = &now.endpoints[0].id;
        assert_eq!(reload_changes(&now, &off, &a, &a), format!("{id} private DNS off"));
        assert_eq!(reload_changes(&now, &narrower, &a, &b).matches("; ").count(), 1);
        assert!(reload_changes(&now, &narrower, &a, &a).contains("security groups and NACLs updated"));
    }
}
