//! DNS queries per second: privlink's VPC resolver beside dnsmasq serving the
//! same records, loaded by the same dnsperf from the same namespace, in one run.
//!
//! `cargo bench --bench dns_qps` (root; `apt-get install dnsperf dnsmasq-base`).
//! privlink answers at 10.0.0.2 through its TUN (its real data path); dnsmasq
//! listens on an address of the same namespace's loopback. The load generator
//! and the servers are pinned to separate cores. Writes a section of
//! `benches/RESULTS.md`. `PLK_BENCH_SECS` (default 10) bounds each run.

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use privlink::edge::netns;

#[path = "support.rs"]
mod support;
use support::Reaped;

const NAME: &str = "ec2.us-east-1.amazonaws.com";

fn pin(pid: u32, core: u32) {
    let _ = Command::new("taskset").args(["-a", "-p", "-c", &core.to_string(), &pid.to_string()]).output();
}

/// Runs dnsperf from `ns` against `server`; returns (queries/s, lost).
fn dnsperf(ns: &str, server: &str, queries: &std::path::Path, secs: u64) -> (f64, u64) {
    let out = Command::new("taskset")
        .args([
            "-c",
            "1",
            "ip",
            "netns",
            "exec",
            ns,
            "dnsperf",
            "-s",
            server,
            "-l",
            &secs.to_string(),
            "-c",
            "8",
            "-T",
            "1",
            "-d",
        ])
        .arg(queries)
        .output()
        .expect("dnsperf");
    let text = String::from_utf8_lossy(&out.stdout);
    let qps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Queries per second:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    let lost = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Queries lost:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    if qps == 0.0 {
        eprintln!("dnsperf against {server}: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    (qps, lost)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let secs: u64 = std::env::var("PLK_BENCH_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let have = |c: &str| Command::new("which").arg(c).output().map(|o| o.status.success()).unwrap_or(false);
    if unsafe { libc::geteuid() } != 0 || !have("dnsperf") || !have("dnsmasq") {
        eprintln!("dns_qps bench: needs root, dnsperf and dnsmasq (apt-get install dnsperf dnsmasq-base); skipped");
        return;
    }
    let ns = format!("plkbq{}", std::process::id() % 100000);
    let dir = std::env::temp_dir().join(format!("privlink-dnsbench-{ns}"));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = format!(
        r#"
[vpc]
cidr = "10.0.0.0/16"
region = "us-east-1"
netns = "{ns}"

[[subnet]]
id = "subnet-a"
cidr = "10.0.1.0/24"
az = "us-east-1a"

[[subnet]]
id = "subnet-b"
cidr = "10.0.2.0/24"
az = "us-east-1b"

[[endpoint]]
id = "vpce-0dnsbench0000001"
service = "com.amazonaws.us-east-1.ec2"
subnets = ["subnet-a", "subnet-b"]
ips = {{ "subnet-a" = "10.0.1.49", "subnet-b" = "10.0.2.49" }}
upstream = "127.0.0.1:9"

[dns]
forward = []
"#
    );
    std::fs::write(dir.join("dns.toml"), cfg).unwrap();
    let privlink = support::privlink_up(&dir.join("dns.toml"), &dir.join("state"));
    pin(privlink.0.id(), 0);

    netns::ip(&["-n", &ns, "addr", "add", "10.0.9.53/32", "dev", "lo"]).unwrap();
    let dnsmasq = Reaped(
        Command::new("taskset")
            .args([
                "-c",
                "0",
                "ip",
                "netns",
                "exec",
                &ns,
                "dnsmasq",
                "-k",
                "-C",
                "/dev/null",
                "--no-resolv",
                "--no-hosts",
            ])
            .args(["--bind-interfaces", "--listen-address=10.0.9.53", "--port=53", "--user=root", "--pid-file"])
            .arg(format!("--host-record={NAME},10.0.1.49"))
            .arg(format!("--host-record={NAME},10.0.2.49"))
            .arg("--local=/ec2.us-east-1.amazonaws.com/")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq"),
    );
    std::thread::sleep(Duration::from_millis(500));

    let a_only = dir.join("a.txt");
    std::fs::write(&a_only, format!("{NAME} A\n")).unwrap();
    let mix = dir.join("mix.txt");
    std::fs::write(&mix, format!("{NAME} A\n{NAME} AAAA\n{NAME} A\nnothing-here.{NAME} A\n")).unwrap();

    let mut rows = String::new();
    for (label, file) in [("A only", &a_only), ("mix: 50% A, 25% AAAA, 25% unknown name", &mix)] {
        let (p_qps, p_lost) = dnsperf(&ns, "10.0.0.2", file, secs);
        let (d_qps, d_lost) = dnsperf(&ns, "10.0.9.53", file, secs);
        let _ = writeln!(
            rows,
            "| {label} | {p_qps:.0} (lost {p_lost}) | {d_qps:.0} (lost {d_lost}) | {:.2} |",
            p_qps / d_qps.max(1.0)
        );
    }
    drop(dnsmasq);
    unsafe { libc::kill(privlink.0.id() as i32, libc::SIGTERM) };
    std::thread::sleep(Duration::from_millis(500));
    drop(privlink);
    if netns::exists(&ns) {
        let _ = netns::ip(&["netns", "del", &ns]);
    }
    let _ = std::fs::remove_dir_all(&dir);

    let version = |cmd: &str, arg: &str| {
        Command::new(cmd)
            .arg(arg)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    let date = support::date_utc();
    let body = format!(
        "Written by `cargo bench --bench dns_qps` on {date}: dnsperf ({}), 8 clients, {secs} s per run, load pinned to core 1 and the server to core 0, queries from inside the VPC namespace. privlink answers at 10.0.0.2 through its TUN (its real path); dnsmasq ({}) serves the same two A records on the namespace's loopback.\n\n| load | privlink q/s | dnsmasq q/s | ratio |\n|---|---|---|---|\n{rows}",
        version("dnsperf", "-V").trim(),
        version("dnsmasq", "--version").trim()
    );
    support::write_section("## DNS: the VPC resolver against dnsmasq", &body);
    println!("{body}");
}
