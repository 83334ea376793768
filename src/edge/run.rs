//! `privlink run --service ec2 … -- CMD`: one command that reaches only the
//! named AWS services, by their usual names, and leaks nothing.
//!
//! # Theory of operation
//!
//! The sandbox is an ordinary API-built VPC
//! ([`privlink_core::api::ec2::sandbox`]): a VPC namespace, one subnet, one
//! instance namespace, an interface endpoint per service. It is realized by
//! the same [`Region`] the API uses, with the VPC resolver in privacy mode
//! (`forward = []`): a name without an endpoint is REFUSED, and nothing is
//! forwarded. The instance has no route out but through the VPC namespace,
//! and the VPC namespace has none out at all: a public address, the host's
//! loopback, UDP and ICMP reach nothing. Only privlink's own upstream
//! sockets, in the host's network, leave.
//!
//! CMD runs on the instance (`ip netns exec`, which also binds the
//! instance's `resolv.conf`) as the invoking user (`SUDO_UID`/`SUDO_GID`
//! under sudo, or `--user`), with stdin, stdout, stderr and the terminal
//! inherited. privlink exits with CMD's status (128 + N for signal N).
//!
//! **Signals.** A terminal's Ctrl-C reaches CMD itself (same process
//! group); privlink only waits for it to exit. SIGTERM and SIGHUP sent to
//! privlink are passed on to CMD. When CMD has exited, everything is removed.
//!
//! **After a kill -9.** Each run records what it makes under
//! `/run/privlink/run/<pid>/`; a later run removes what a run whose process
//! is gone left behind, before it builds its own.
//!
//! **Rootless.** Run by an ordinary user, privlink is root of user, mount
//! and PID namespaces of its own ([`rootless`], entered in `main`): the same
//! sandbox is built there, CMD enters the instance itself and runs as the
//! caller, and a kill -9 leaves nothing to clean up. privlink is PID 1 of
//! its PID namespace, where a signal without a handler is dropped, so
//! SIGINT, SIGTERM and SIGHUP are blocked from the start (held, not
//! dropped) and its handlers go in before the sandbox is built: one that
//! comes before CMD has started ends the run without starting it (exit
//! 128 + N), as it would have ended a root run.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use crate::edge::api::region::{RealizeError, Region};
use crate::edge::daemon::random_id_bytes;
use crate::edge::fabric::{FabricError, Records};
use crate::edge::guard::MAX_REJECT_RULES;
use crate::edge::privileges::{self, PrivilegeError};
use crate::edge::queue::report::Report;
use crate::edge::rootless::{self, Caller, RootlessError};
use privlink_core::api::ec2::plan::Upstreams;
use privlink_core::api::ec2::sandbox::{self, Sandbox};
use privlink_core::api::error::ApiError;
use privlink_core::config::parse_host_port;
use privlink_core::dns::MAX_NAMES;
use privlink_core::filter::Reason;
use privlink_core::model::Upstream;
use privlink_core::packet::DropReason;

/// Where runs record what they make.
pub const RUN_DIR: &str = "/run/privlink/run";

/// What `privlink run` was asked.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Services, short or full names.
    pub services: Vec<String>,
    /// The Region.
    pub region: String,
    /// `SERVICE=HOST:PORT` overrides of where a service's streams go.
    pub upstreams: Vec<String>,
    /// `(uid, gid)` to run CMD as; `None`: as privlink runs.
    pub user: Option<(u32, u32)>,
    /// A rootless run ([`rootless::enter`] done): CMD runs as this caller.
    pub rootless: Option<Caller>,
    /// Print what CMD reached and was refused, at exit.
    pub summary: bool,
    /// CMD and its arguments.
    pub command: Vec<String>,
}

/// Why a run could not start or clean up.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Root without the capabilities.
    #[error("privlink run needs CAP_NET_ADMIN and CAP_SYS_ADMIN to make its namespaces and TUN devices ({0}): run it with sudo, or as an ordinary user (rootless, in a user namespace of its own)")]
    Privileges(#[from] PrivilegeError),
    /// A rootless run cannot start.
    #[error(transparent)]
    Rootless(#[from] RootlessError),
    /// A service or upstream the API refused.
    #[error("{0}")]
    Api(#[from] ApiError),
    /// `--upstream` malformed.
    #[error("--upstream {0}: expected SERVICE=HOST:PORT, e.g. ec2=127.0.0.1:8443")]
    Upstream(String),
    /// Building or removing namespaces.
    #[error(transparent)]
    Fabric(#[from] FabricError),
    /// Realizing the sandbox.
    #[error(transparent)]
    Realize(#[from] RealizeError),
    /// Starting CMD.
    #[error("{cmd}: {source}")]
    Spawn {
        /// The command.
        cmd: String,
        /// Why.
        source: std::io::Error,
    },
    /// The run dir.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The Region as the aws CLI picks it: `AWS_REGION`, then `AWS_DEFAULT_REGION`, else us-east-1.
pub fn region_from_env(flag: Option<String>) -> String {
    flag.or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "us-east-1".into())
}

/// `--user UID[:GID]` (GID defaults to UID).
pub fn parse_user(u: &str) -> Result<(u32, u32), String> {
    let parse = |s: &str| s.parse::<u32>().map_err(|_| format!("--user {s}: expected UID[:GID]"));
    let (uid, gid) = u.split_once(':').unwrap_or((u, u));
    Ok((parse(uid)?, parse(gid)?))
}

/// The user to run CMD as: `--user UID[:GID]`, else sudo's caller.
pub fn user_from(flag: Option<&str>) -> Result<Option<(u32, u32)>, String> {
    let parse = |s: &str| s.parse::<u32>().map_err(|_| format!("--user {s}: expected UID[:GID]"));
    match flag {
        Some(u) => parse_user(u).map(Some),
        None => match (std::env::var("SUDO_UID"), std::env::var("SUDO_GID")) {
            (Ok(u), Ok(g)) => Ok(Some((parse(&u)?, parse(&g)?))),
            _ => Ok(None),
        },
    }
}

fn upstreams(region: &str, flags: &[String]) -> Result<Upstreams, RunError> {
    let mut map = Upstreams::new();
    for f in flags {
        let (service, to) = f.split_once('=').ok_or_else(|| RunError::Upstream(f.clone()))?;
        let (host, port) = parse_host_port(to).ok_or_else(|| RunError::Upstream(f.clone()))?;
        map.insert(sandbox::service_name(region, service)?, Upstream { host: host.into(), port });
    }
    Ok(map)
}

/// Removes what runs whose process is gone left under [`RUN_DIR`].
fn clean_left_behind(run_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(run_dir) else { return };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        // SAFETY: signal 0 only asks whether the process exists.
        let alive =
            unsafe { libc::kill(pid, 0) } == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if alive {
            continue;
        }
        match Records::in_state_dir(&entry.path()).remove_left_behind() {
            Ok(gone) => {
                for ns in gone {
                    tracing::info!("removed {ns}, left by a killed privlink run (pid {pid})");
                }
                let _ = std::fs::remove_dir_all(entry.path());
            }
            Err(e) => tracing::warn!("left by privlink run {pid}: {e}"),
        }
    }
}

/// Builds the sandbox, runs CMD in it, removes it; returns CMD's exit code.
pub async fn run(opts: &RunOptions) -> Result<u8, RunError> {
    privileges::require()?;
    let run_dir = PathBuf::from(RUN_DIR);
    // A rootless run's RUN_DIR is its own (a tmpfs) and nothing outlives it.
    if opts.rootless.is_none() {
        clean_left_behind(&run_dir);
    }
    let upstreams = upstreams(&opts.region, &opts.upstreams)?;
    let mut random = random_id_bytes;
    let sb = sandbox::build(&opts.region, &opts.services, &mut random)?;
    let dir = run_dir.join(std::process::id().to_string());
    std::fs::create_dir_all(&dir).map_err(|source| RunError::Io { path: dir.display().to_string(), source })?;
    let records = match opts.rootless {
        Some(_) => Records::in_state_dir(&dir).with_etc_netns(dir.join("etc-netns")),
        None => Records::in_state_dir(&dir),
    };
    let resolv_conf = records.etc_netns().join(&sb.instance).join("resolv.conf");
    let early = match opts.rootless {
        Some(_) => {
            let s = Signals::install().map_err(|source| RunError::Spawn { cmd: opts.command.join(" "), source })?;
            rootless::unblock_signals();
            Some(s)
        }
        None => None,
    };
    let mut region = Region::new(records, upstreams, Vec::new());
    let outcome = match region.apply(&sb.ec2).await {
        Ok(()) => run_command(&sb, opts, &resolv_conf, early).await,
        Err(e) => Err(e.into()),
    };
    let reports = region.stop();
    let _ = std::fs::remove_dir_all(&dir);
    let status = outcome?;
    let reports = reports?;
    if opts.summary {
        print_summary(&sb, &reports);
    }
    Ok(exit_code(status))
}

/// The signals `run` passes on (or, for SIGINT, leaves to CMD).
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// A signal that came already, if any.
    async fn pending(&mut self) -> Option<i32> {
        tokio::select! {
            biased;
            _ = self.int.recv() => Some(libc::SIGINT),
            _ = self.term.recv() => Some(libc::SIGTERM),
            _ = self.hup.recv() => Some(libc::SIGHUP),
            () = std::future::ready(()) => None,
        }
    }
}

/// Runs CMD and waits for it; `early`: the handlers installed before the
/// sandbox was built (a rootless run), whose signals end the run before CMD starts.
async fn run_command(
    sb: &Sandbox,
    opts: &RunOptions,
    resolv_conf: &Path,
    early: Option<Signals>,
) -> Result<ExitStatus, RunError> {
    use std::os::unix::process::ExitStatusExt;
    let shown = opts.command.join(" ");
    let io = |source| RunError::Spawn { cmd: shown.clone(), source };
    let mut signals = match early {
        Some(mut s) => {
            // One turn for the signal driver, to see what came in the last instant.
            tokio::task::yield_now().await;
            if let Some(sig) = s.pending().await {
                // As if CMD had been killed by it.
                return Ok(ExitStatus::from_raw(sig));
            }
            s
        }
        None => Signals::install().map_err(io)?,
    };
    let mut cmd;
    if let Some(caller) = opts.rootless {
        cmd = tokio::process::Command::new(&opts.command[0]);
        cmd.args(&opts.command[1..]);
        rootless::instance_command(&mut cmd, &sb.instance, resolv_conf, caller)
            .map_err(|source| RunError::Spawn { cmd: shown.clone(), source })?;
    } else {
        cmd = tokio::process::Command::new("ip");
        cmd.args(["netns", "exec", &sb.instance]);
        if let Some((uid, gid)) = opts.user {
            cmd.args(["setpriv", &format!("--reuid={uid}"), &format!("--regid={gid}"), "--clear-groups", "--"]);
        }
        cmd.args(&opts.command);
    }
    cmd.kill_on_drop(true);
    // CMD's SDK picks the sandbox's Region unless the caller set one.
    if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none() {
        cmd.env("AWS_REGION", &opts.region).env("AWS_DEFAULT_REGION", &opts.region);
    }
    let mut child = cmd.spawn().map_err(io)?;
    loop {
        let forward = tokio::select! {
            status = child.wait() => return status.map_err(io),
            // The terminal sent it to CMD too; CMD decides.
            _ = signals.int.recv() => None,
            _ = signals.term.recv() => Some(libc::SIGTERM),
            _ = signals.hup.recv() => Some(libc::SIGHUP),
        };
        if let (Some(sig), Some(pid)) = (forward, child.id()) {
            // SAFETY: a signal to our own child.
            unsafe { libc::kill(pid as i32, sig) };
        }
    }
}

/// CMD's status as a shell shows it: its code, or 128 + the signal that ended it.
pub fn exit_code(status: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => c as u8,
        (None, Some(s)) => (128 + s) as u8,
        _ => 1,
    }
}

fn print_summary(sb: &Sandbox, reports: &[(String, Report)]) {
    eprint!("{}", summary(sb, reports));
}

/// What `--summary` prints (see the README's `privlink run`): the names CMD
/// asked and their answers, then per endpoint the connections it carried
/// with their bytes, and what was dropped, by which rule. A device's queues
/// are added up first.
fn summary(sb: &Sandbox, reports: &[(String, Report)]) -> String {
    use std::fmt::Write;
    let of = |id: &str| {
        let mut sum = Report::default();
        for (_, r) in reports.iter().filter(|(w, _)| w == id) {
            sum.add(r);
        }
        sum
    };
    let plural = |n: u64, one: &str| match (n, one) {
        (1, _) => format!("1 {one}"),
        (_, "query") => format!("{n} queries"),
        _ => format!("{n} {one}s"),
    };
    let mut out = String::from("privlink run: summary\n");
    // The resolver answers on its own device; an endpoint's device has a resolver too, which nobody asks.
    let mut names = of(&sb.vpc).names;
    for (_, id) in &sb.endpoints {
        names.add(&of(id).names);
    }
    let _ = writeln!(out, "  names asked of the VPC resolver (the first {MAX_NAMES} distinct are listed):");
    if names.is_empty() {
        out.push_str("    none\n");
    }
    for (name, s) in names.iter() {
        let _ = write!(out, "    {name}: asked {}", s.asked);
        for ((qtype, answer), n) in s.answers.iter() {
            let _ = write!(out, "; {qtype} {answer} ({n})");
        }
        if s.answers.past_cap() > 0 {
            let _ = write!(out, "; other answers ({})", s.answers.past_cap());
        }
        out.push('\n');
    }
    if names.queries_past_cap() > 0 {
        let _ = writeln!(
            out,
            "    and {} past the first {MAX_NAMES} names, not listed",
            plural(names.queries_past_cap(), "query")
        );
    }
    for (service, id) in &sb.endpoints {
        let r = of(id);
        let c = &r.conns;
        let _ = writeln!(
            out,
            "  endpoint {service} ({id}): connections carried {}, refused {} (service unreachable), closed {}; bytes client->service {}, service->client {}",
            c.accepted, c.refused, c.closed, c.bytes_to_service, c.bytes_to_client
        );
        let groups = sb.ec2.endpoints.get(id).map(|e| e.security_groups.join(", ")).unwrap_or_default();
        let mut dropped = Vec::new();
        for ((eni, reason), n) in r.rejected.iter() {
            let rule = match reason {
                Reason::SgNoMatch { dir } => format!("security group {groups} {dir}: no rule allows it"),
                other => other.to_string(),
            };
            dropped.push(format!("{rule} ({eni}): {}", plural(*n, "connection")));
        }
        if r.rejected.past_cap() > 0 {
            dropped.push(format!(
                "rules past the first {MAX_REJECT_RULES}: {}",
                plural(r.rejected.past_cap(), "connection")
            ));
        }
        for (what, n, unit) in [
            ("SNI check", c.sni_denied, "connection"),
            ("endpoint policy", c.policy_denied, "connection"),
            (
                "connection limit (max_connections, or half-open)",
                r.counters.dropped(DropReason::ConnectionLimit),
                "SYN",
            ),
            ("client limit (half-open per client)", r.counters.dropped(DropReason::ClientLimit), "SYN"),
        ] {
            if n > 0 {
                dropped.push(format!("{what}: {}", plural(n, unit)));
            }
        }
        for reason in DropReason::ALL {
            let n = r.counters.dropped(reason);
            let what = match reason {
                // Counted above, per SYN.
                DropReason::ConnectionLimit | DropReason::ClientLimit => continue,
                DropReason::Port => "a port the endpoint does not carry",
                DropReason::NotTcp => "not TCP",
                DropReason::Ipv6 => "IPv6",
                DropReason::Malformed => "malformed",
                DropReason::BadChecksum => "a bad checksum",
                DropReason::TooBig => "larger than the MTU",
                DropReason::NoRoute => "no route",
                DropReason::BadSource => "a source no client of the VPC can have",
            };
            if n > 0 {
                dropped.push(format!("{what}: {}", plural(n, "packet")));
            }
        }
        if dropped.is_empty() {
            out.push_str("    dropped: none\n");
        }
        for d in dropped {
            let _ = writeln!(out, "    dropped: {d}");
        }
        let g = &r.guard;
        if g.sg_ingress + g.sg_egress + g.nacl_ingress + g.nacl_egress > 0 {
            let _ = writeln!(
                out,
                "    packets rejected: security group {} in, {} out; network ACL {} in, {} out",
                g.sg_ingress, g.sg_egress, g.nacl_ingress, g.nacl_egress
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use privlink_core::dns::Answered;
    use std::sync::Arc;

    #[test]
    fn the_summary_adds_up_the_queues_and_names_each_rule() {
        let mut n = 0u8;
        let mut random = || {
            n += 1;
            [n; 9]
        };
        let sb = sandbox::build("us-east-1", &["ec2".to_string()], &mut random).unwrap();
        let (service, vpce) = sb.endpoints[0].clone();
        let group = sb.ec2.endpoints[&vpce].security_groups.join(", ");
        let mut queue = Report::default();
        queue.conns.accepted = 2;
        queue.conns.closed = 1;
        queue.conns.sni_denied = 1;
        queue.conns.bytes_to_service = 100;
        queue.conns.bytes_to_client = 1000;
        queue.counters.drop(DropReason::ConnectionLimit);
        queue.counters.drop(DropReason::Port);
        let eni: Arc<str> = Arc::from("eni-1");
        let sg = Reason::SgNoMatch { dir: privlink_core::flow::Direction::Ingress };
        *queue.rejected.entry(|_| false, || ((eni.clone(), sg), 0)).unwrap() += 2;
        queue.guard.sg_ingress = 5;
        let mut resolver = Report::default();
        let ip = [[10, 200, 1, 5]];
        resolver.names.note(b"\x03ec2\x09us-east-1\x09amazonaws\x03com\x00", 1, Answered::Addresses(&ip));
        resolver.names.note(b"\x03sts\x00", 1, Answered::Refused);
        let reports = vec![(vpce.clone(), queue.clone()), (vpce.clone(), queue), (sb.vpc.clone(), resolver)];
        let text = summary(&sb, &reports);
        let want = format!(
            "privlink run: summary
  names asked of the VPC resolver (the first 64 distinct are listed):
    ec2.us-east-1.amazonaws.com: asked 1; A 10.200.1.5 (1)
    sts: asked 1; A REFUSED (1)
  endpoint {service} ({vpce}): connections carried 4, refused 0 (service unreachable), closed 2; bytes client->service 200, service->client 2000
    dropped: security group {group} ingress: no rule allows it (eni-1): 4 connections
    dropped: SNI check: 2 connections
    dropped: connection limit (max_connections, or half-open): 2 SYNs
    dropped: a port the endpoint does not carry: 2 packets
    packets rejected: security group 10 in, 0 out; network ACL 0 in, 0 out
"
        );
        assert_eq!(text, want);
        let mut flood = Report::default();
        for i in 0..MAX_NAMES as u8 + 2 {
            flood.names.note(&[1, i, 0], 1, Answered::Refused);
        }
        let text = summary(&sb, &[(sb.vpc.clone(), flood)]);
        assert!(text.contains("\n    \\000: asked 1; A REFUSED (1)\n"), "{text}");
        assert!(text.contains("\n    and 2 queries past the first 64 names, not listed\n"), "{text}");
        let empty = summary(&sb, &[]);
        assert!(
            empty.contains("  names asked of the VPC resolver (the first 64 distinct are listed):\n    none\n"),
            "{empty}"
        );
        assert!(empty.contains("    dropped: none\n"), "{empty}");
    }
}
