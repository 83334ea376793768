//! Connection churn: does privlink's memory follow the connections it holds,
//! round after round, or does it keep what the last round left?
//!
//! `cargo bench --bench churn` (root). It starts `privlink up` (its own
//! namespace, removed at the end) with one endpoint whose upstream is a
//! loopback server that closes each connection when its client does, and
//! then, `PLK_CHURN_ROUNDS` times (default 10): opens `PLK_CHURN_CONNS`
//! (1,000) handshake-only connections from the VPC namespace, holds them
//! `PLK_CHURN_HOLD_SECS` (6 s), closes them, waits until privlink has let go
//! of every upstream socket, and reads privlink's RSS. Last, it opens
//! `PLK_CHURN_IDLE` (10,000) idle connections at once, on the heap the
//! rounds left. It prints each figure and rewrites its section of
//! `benches/RESULTS.md`. The goals: back within 64 MiB of the idle baseline
//! after every round, and 10,000 idle connections in at most 256 MiB.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

#[path = "support.rs"]
mod support;
// The test labs' VPC: one definition of it.
#[path = "../tests/common/mod.rs"]
mod common;
use support::Reaped;

/// The endpoint's ENI address and port.
const ENI: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 1, 51), 9);

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A running `privlink up`, stopped (and its namespace removed) on drop.
struct Lab {
    child: Reaped,
    dir: PathBuf,
    ns: String,
}

impl Lab {
    fn start(tag: &str, upstream_port: u16) -> Lab {
        let ns = format!("plkc{tag}v");
        let dir = std::env::temp_dir().join(format!("privlink-churn-{tag}"));
        std::fs::create_dir_all(&dir).unwrap();
        let flow = dir.join("flow.log").display().to_string();
        let cfg = format!(
            r#"{}
[[endpoint]]
id = "vpce-0churn0000000001"
service = "com.amazonaws.us-east-1.ssm"
subnets = ["subnet-a"]
ips = {{ "subnet-a" = "10.0.1.51" }}
ports = [9]
security_groups = ["sg-churn"]
allow_non_tls = true
hello_timeout = "300s"
max_connections = 20000
upstream = "127.0.0.1:{upstream_port}"

[[security_group]]
id = "sg-churn"
ingress = [{{ protocol = "tcp", ports = "all", cidr = "10.0.0.0/16" }}]

[flow_logs]
file = "{flow}"
interval = 60
"#,
            common::vpc(&ns, "", "")
        );
        let path = dir.join("churn.toml");
        std::fs::write(&path, cfg).unwrap();
        let child = support::privlink_up(&path, &dir.join("state"));
        Lab { child, dir, ns }
    }

    fn pid(&self) -> u32 {
        self.child.0.id()
    }

    fn rss(&self) -> f64 {
        support::rss_mib(self.pid())
    }

    /// Descriptors privlink holds: one per carried connection (its upstream socket) beside a fixed few.
    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map(|d| d.count()).unwrap_or(0)
    }

    /// Waits until privlink holds no more descriptors than `baseline`, at most `limit`; whether it got there.
    fn wait_closed(&self, baseline: usize, limit: Duration) -> bool {
        let start = Instant::now();
        while self.fds() > baseline {
            if start.elapsed() > limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        true
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        support::stop_privlink(&mut self.child, &self.ns, &self.dir);
    }
}

/// A loopback server that holds each connection until its client closes,
/// then closes it too (this binary with `--closing-server`, in a child
/// process: see [`support::server_child`]).
fn run_closing_server() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    println!("{}", listener.local_addr().unwrap().port());
    listener.set_nonblocking(true).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("a listener");
        loop {
            let mut s = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    eprintln!("churn upstream: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if std::env::args().any(|a| a == "--closing-server") {
        return run_closing_server();
    }
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("churn bench: needs root (it makes a namespace and a TUN); skipped");
        return;
    }
    let rounds = env_num("PLK_CHURN_ROUNDS", 10);
    let per_round = env_num("PLK_CHURN_CONNS", 1000) as usize;
    let hold = Duration::from_secs(env_num("PLK_CHURN_HOLD_SECS", 6));
    let idle = env_num("PLK_CHURN_IDLE", 10_000) as usize;
    // 10,000 connections: that many descriptors here, in the server and in privlink.
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit on a valid struct; failure only limits the connection counts.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }

    let tag = format!("{}", std::process::id() % 100000);
    let (upstream, _server) = support::server_child("--closing-server");
    let lab = Lab::start(&tag, upstream);
    std::thread::sleep(Duration::from_secs(1));
    let (baseline, fds) = (lab.rss(), lab.fds());
    let mut out = String::new();
    let mut say = |line: String| {
        eprintln!("{line}");
        let _ = writeln!(out, "{line}");
    };
    say(format!("privlink RSS with no connection yet: {baseline:.1} MiB"));
    say(String::new());
    say("| round | connections open | opened in | RSS with them open | RSS after they closed | above the baseline |"
        .into());
    say("|---|---|---|---|---|---|".into());
    let mut worst: f64 = 0.0;
    for round in 1..=rounds {
        let pid = lab.pid();
        let (opened, took, open_rss) = support::open_hold(&lab.ns, ENI, per_round, hold, move || support::rss_mib(pid));
        let closed = lab.wait_closed(fds, Duration::from_secs(30));
        let after = lab.rss();
        worst = worst.max(after - baseline);
        say(format!(
            "| {round} | {opened} | {:.2} s | {open_rss:.1} MiB | {after:.1} MiB{} | {:+.1} MiB |",
            took.as_secs_f64(),
            if closed { "" } else { " (privlink still holds some)" },
            after - baseline
        ));
    }
    let pid = lab.pid();
    let (opened, took, open_rss) =
        support::open_hold(&lab.ns, ENI, idle, Duration::from_millis(500), move || support::rss_mib(pid));
    lab.wait_closed(fds, Duration::from_secs(60));
    let after = lab.rss();
    say(String::new());
    say(format!(
        "After the rounds: {idle} idle connections at once, {opened} open in {:.1} s: RSS {open_rss:.1} MiB with them open (goal ≤ 256 MiB), {after:.1} MiB after they closed.",
        took.as_secs_f64()
    ));
    say(format!("Worst RSS after a round: {worst:+.1} MiB above the baseline (goal ≤ 64 MiB)."));
    drop(lab);
    let body = format!(
        "Written by `cargo bench --bench churn` on {}: {rounds} rounds of {per_round} handshake-only connections, each held {} s and closed by the client; then {idle} idle connections at once.\n\n{out}",
        support::date_utc(),
        hold.as_secs()
    );
    support::write_section("## Connection churn: memory after each round", &body);
}
