//! End-to-end benchmark: privlink's ENI against the kernel's veth path, in one run.
//!
//! `cargo bench --bench e2e` (root, iperf3 installed). It builds its own
//! namespaces (unique names, removed at the end), runs iperf3 through the ENI
//! to a server on loopback and the same transfer over a plain veth pair
//! between two namespaces, then new connections per second and request
//! latency both ways, the peers where installed (slirp4netns; tun2proxy with
//! a dante SOCKS5 server), and, with `perf` installed, a profile of where
//! privlink's time goes; it writes `benches/RESULTS.md`.
//!
//! `PLK_BENCH_RUNS` (default 3) and `PLK_BENCH_SECS` (default 4) bound the time.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use privlink::edge::netns;

#[path = "support.rs"]
mod support;
use support::Reaped;

const IPERF_PORT: u16 = 5201;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Namespaces removed on drop.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = netns::ip(&["netns", "del", n]);
        }
    }
}

/// Two namespaces joined by a veth pair: the kernel path.
fn veth_lab(tag: &str, mtu: u32) -> (Namespaces, Ipv4Addr) {
    let (a, b) = (format!("plkb{tag}a"), format!("plkb{tag}b"));
    let ns = Namespaces(vec![a.clone(), b.clone()]);
    for n in [&a, &b] {
        netns::ip(&["netns", "add", n]).unwrap();
        netns::ip(&["-n", n, "link", "set", "lo", "up"]).unwrap();
    }
    netns::ip(&["-n", &a, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", &b]).unwrap();
    for (n, dev, addr) in [(&a, "veth0", "10.99.0.1/24"), (&b, "veth1", "10.99.0.2/24")] {
        netns::ip(&["-n", n, "addr", "add", addr, "dev", dev]).unwrap();
        netns::ip(&["-n", n, "link", "set", dev, "mtu", &mtu.to_string(), "up"]).unwrap();
    }
    (ns, Ipv4Addr::new(10, 99, 0, 2))
}

/// A running `privlink up` with one endpoint for iperf3 and one for the echo server.
struct PrivlinkLab {
    child: Reaped,
    dir: std::path::PathBuf,
    ns: String,
}

/// What the lab turns on.
#[derive(Clone, Copy)]
enum Pipeline<'a> {
    /// Security group, a custom NACL, flow logs; `Some(rate)` adds shaping on the iperf endpoint.
    Full(Option<&'a str>),
    /// One security group rule, the default NACL, no flow logs, unshaped.
    Minimal,
}

/// Local ports of the loopback servers the lab's endpoints relay to.
#[derive(Clone, Copy)]
struct Servers {
    echo: u16,
    idle: u16,
}

impl PrivlinkLab {
    fn start(tag: &str, mtu: u32, servers: Servers, pipeline: Pipeline<'_>) -> PrivlinkLab {
        PrivlinkLab::start_with_queues(tag, mtu, servers, pipeline, None)
    }

    /// With `queues`, the TUN's queue count; else privlink's default (one per CPU).
    fn start_with_queues(
        tag: &str,
        mtu: u32,
        servers: Servers,
        pipeline: Pipeline<'_>,
        queues: Option<usize>,
    ) -> PrivlinkLab {
        let queues = queues.map(|q| format!("queues = {q}")).unwrap_or_default();
        let echo_port = servers.echo;
        let idle_port = servers.idle;
        let (acl_line, shaped, extra) = match pipeline {
            Pipeline::Full(rate) => {
                ("network_acl = \"acl-bench\"", rate.map(|r| format!("bandwidth = \"{r}\"")).unwrap_or_default(), true)
            }
            Pipeline::Minimal => ("", String::new(), false),
        };
        let ns = format!("plkb{tag}v");
        let dir = std::env::temp_dir().join(format!("privlink-bench-{tag}"));
        std::fs::create_dir_all(&dir).unwrap();
        let flow = dir.join("flow.log").display().to_string();
        let full = if extra {
            format!(
                r#"
[[network_acl]]
id = "acl-bench"
ingress = [{{ rule = 100, protocol = "tcp", ports = "all", cidr = "10.0.0.0/16", action = "allow" }}]
egress = [{{ rule = 100, protocol = "tcp", ports = "1024-65535", cidr = "10.0.0.0/16", action = "allow" }}]

[flow_logs]
file = "{flow}"
interval = 60
"#
            )
        } else {
            String::new()
        };
        let cfg = format!(
            r#"
[vpc]
cidr = "10.0.0.0/16"
region = "us-east-1"
netns = "{ns}"
mtu = {mtu}
{queues}

[[subnet]]
id = "subnet-a"
cidr = "10.0.1.0/24"
az = "us-east-1a"
{acl_line}

[[endpoint]]
id = "vpce-0bench00000000001"
service = "com.amazonaws.us-east-1.ec2"
subnets = ["subnet-a"]
ips = {{ "subnet-a" = "10.0.1.49" }}
ports = [{IPERF_PORT}]
upstream = "127.0.0.1:{IPERF_PORT}"
security_groups = ["sg-bench"]
allow_non_tls = true
{shaped}

[[endpoint]]
id = "vpce-0bench00000000002"
service = "com.amazonaws.us-east-1.sts"
subnets = ["subnet-a"]
ips = {{ "subnet-a" = "10.0.1.50" }}
ports = [7]
security_groups = ["sg-bench"]
allow_non_tls = true
upstream = "127.0.0.1:{echo_port}"

[[endpoint]]
id = "vpce-0bench00000000003"
service = "com.amazonaws.us-east-1.ssm"
subnets = ["subnet-a"]
ips = {{ "subnet-a" = "10.0.1.51" }}
ports = [9]
security_groups = ["sg-bench"]
allow_non_tls = true
max_connections = 20000
upstream = "127.0.0.1:{idle_port}"

[[security_group]]
id = "sg-bench"
ingress = [{{ protocol = "tcp", ports = "all", cidr = "10.0.0.0/16" }}]
{full}"#
        );
        let path = dir.join("bench.toml");
        std::fs::write(&path, cfg).unwrap();
        let child = support::privlink_up(&path, &dir.join("state"));
        PrivlinkLab { child, dir, ns }
    }

    /// CPU seconds the privlink process has used so far.
    fn cpu_secs(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.0.id())).unwrap_or_default();
        let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks: f64 = f.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
            + f.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
        ticks / 100.0
    }

    fn rss_mib(&self) -> f64 {
        support::rss_mib(self.child.0.id())
    }
}

impl Drop for PrivlinkLab {
    fn drop(&mut self) {
        support::stop_privlink(&mut self.child, &self.ns, &self.dir);
    }
}

/// One iperf3 run from namespace `ns` to `addr`; Gbit/s at the receiver.
fn iperf(ns: &str, addr: Ipv4Addr, secs: u64, reverse: bool, streams: u32) -> f64 {
    iperf_with(ns, addr, secs, reverse, streams, None)
}

/// [`iperf`], with the senders' congestion control set (`-C`, both ends'
/// data sockets) instead of the machine's default.
fn iperf_with(ns: &str, addr: Ipv4Addr, secs: u64, reverse: bool, streams: u32, cc: Option<&str>) -> f64 {
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        ns,
        "iperf3",
        "-J",
        "-c",
        &addr.to_string(),
        "-p",
        &IPERF_PORT.to_string(),
        "-t",
        &secs.to_string(),
    ]);
    cmd.args(["-P", &streams.to_string()]);
    if reverse {
        cmd.arg("-R");
    }
    if let Some(cc) = cc {
        cmd.args(["-C", cc]);
    }
    let out = cmd.output().expect("iperf3");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let bps = v["end"]["sum_received"]["bits_per_second"].as_f64();
    match bps {
        Some(b) => b / 1e9,
        None => {
            eprintln!("iperf3 failed: {}", String::from_utf8_lossy(&out.stdout).chars().take(400).collect::<String>());
            0.0
        }
    }
}

fn iperf_server(ns: Option<&str>, bind: &str) -> Reaped {
    let mut cmd = match ns {
        Some(n) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", n, "iperf3"]);
            c
        }
        None => Command::new("iperf3"),
    };
    let child = cmd
        .args(["-s", "-B", bind, "-p", &IPERF_PORT.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("iperf3 -s");
    std::thread::sleep(Duration::from_millis(300));
    Reaped(child)
}

/// An echo server: each connection echoes until EOF.
fn echo_server(listener: TcpListener) {
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let _ = s.set_nodelay(true);
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
}

/// New connections per second: connect, 16-byte request, echo, close (RST).
fn conns_per_sec(ns: &str, addr: SocketAddrV4, secs: u64) -> f64 {
    let ns = ns.to_string();
    netns::run_in(&ns, move || {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < Duration::from_secs(secs) {
            let Ok(mut s) = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(2)) else { continue };
            let _ = s.set_nodelay(true);
            let mut buf = [0u8; 16];
            if s.write_all(b"0123456789abcdef").is_ok() && s.read_exact(&mut buf).is_ok() {
                n += 1;
            }
            // Close with an RST, as load generators do: thousands of
            // TIME_WAITs a second would exhaust the ephemeral ports mid-run.
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
        }
        n as f64 / start.elapsed().as_secs_f64()
    })
    .unwrap()
}

/// [`latency_run`] `runs` times; each quantile is the median over the runs.
fn latency(ns: &str, addr: SocketAddrV4, count: usize, runs: u64) -> (f64, f64, f64) {
    let all: Vec<(f64, f64, f64)> = (0..runs.max(1)).map(|_| latency_run(ns, addr, count)).collect();
    let q = |f: fn(&(f64, f64, f64)) -> f64| stat(all.iter().map(f).collect()).median;
    (q(|r| r.0), q(|r| r.1), q(|r| r.2))
}

/// Round trips of a 64-byte request on one connection at a fixed rate; returns (p50, p99, p99.9) in µs.
fn latency_run(ns: &str, addr: SocketAddrV4, count: usize) -> (f64, f64, f64) {
    let ns = ns.to_string();
    netns::run_in(&ns, move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        let mut buf = [0u8; 64];
        let mut samples = Vec::with_capacity(count);
        for _ in 0..count {
            let t = Instant::now();
            s.write_all(&[7u8; 64]).unwrap();
            s.read_exact(&mut buf).unwrap();
            samples.push(t.elapsed().as_secs_f64() * 1e6);
            // A fixed rate (1000/s), not a flood: latency, not throughput.
            std::thread::sleep(Duration::from_micros(1000).saturating_sub(t.elapsed()));
        }
        samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let q = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
        (q(0.50), q(0.99), q(0.999))
    })
    .unwrap()
}

/// A loopback server that accepts connections and holds them, idle (this
/// binary with `--idle-server`, in a child process: see [`support::server_child`]).
fn run_idle_server() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    println!("{}", l.local_addr().unwrap().port());
    let mut held = Vec::new();
    for s in l.incoming().flatten() {
        held.push(s);
    }
}

/// Where a process's time goes: `perf record -e cpu-clock -g -p PID` for
/// `secs` while `load` runs on another thread, summed by kind. `None` without perf.
fn profile(pid: u32, secs: u64, load: impl FnOnce() + Send + 'static) -> Option<[f64; 6]> {
    let data = std::env::temp_dir().join(format!("privlink-bench-perf-{pid}.data"));
    let load = std::thread::spawn(load);
    std::thread::sleep(Duration::from_secs(1));
    let rec = Command::new("perf")
        .args(["record", "-q", "-e", "cpu-clock", "-g", "-p", &pid.to_string(), "-o"])
        .arg(&data)
        .args(["--", "sleep", &secs.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = load.join();
    if !rec.map(|s| s.success()).unwrap_or(false) {
        return None;
    }
    let out = Command::new("perf")
        .args(["report", "--stdio", "--no-children", "--sort", "dso,sym", "-g", "none", "-i"])
        .arg(&data)
        .output()
        .ok()?;
    let _ = std::fs::remove_file(&data);
    let mut kinds = [0.0f64; 6];
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut f = line.split_whitespace();
        let Some(pct) = f.next().and_then(|p| p.strip_suffix('%')).and_then(|p| p.parse::<f64>().ok()) else {
            continue;
        };
        let dso = f.next().unwrap_or("");
        let _kind = f.next();
        let sym = f.collect::<Vec<_>>().join(" ");
        kinds[profile_kind(dso, sym.trim_start_matches('<'))] += pct;
    }
    Some(kinds)
}

/// The rows of [`profile`]'s summary, in its order.
const PROFILE_KINDS: [&str; 6] = [
    "kernel: copying payload (TUN read/write, upstream send/recv)",
    "kernel: TCP/IP, TUN, loopback, syscalls, wake-ups",
    "libc: memmove into and out of smoltcp's rings",
    "smoltcp: TCP",
    "privlink: pipeline, guard, flow logs, relay, loop",
    "tokio and the rest",
];

fn profile_kind(dso: &str, sym: &str) -> usize {
    if dso.contains("kernel") {
        if sym.contains("copy") || sym.contains("memcpy") || sym.contains("movs") {
            0
        } else {
            1
        }
    } else if dso.starts_with("libc") {
        if sym.contains("memmove") || sym.contains("memcpy") {
            2
        } else {
            5
        }
    } else if sym.starts_with("smoltcp::") {
        3
    } else if sym.starts_with("privlink::") {
        4
    } else {
        5
    }
}

/// tun2proxy (crates.io) on a TUN at MTU 1500 in one namespace, relaying
/// through a dante SOCKS5 server in a second one to an iperf3 server there:
/// the usual topology of a userspace SOCKS-over-TUN peer. `None` unless both are installed.
/// tun2proxy and the kernel path in turn: ((kernel, peer) up, (kernel, peer) down).
type PeerStats = ((Stat, Stat), (Stat, Stat));

fn tun2proxy_peer(tag: &str, runs: u64, secs: u64, kernel: &Kernel) -> Option<PeerStats> {
    let have = |c: &str, a: &str| Command::new(c).arg(a).output().is_ok();
    if !have("tun2proxy-bin", "--version") || !have("danted", "-v") {
        return None;
    }
    // The SOCKS server's namespace holds the veth's far end, 10.99.0.2.
    let (ns, _) = veth_lab(&format!("{tag}t"), 1500);
    let (client, server) = (ns.0[0].clone(), ns.0[1].clone());
    // The target sits behind the proxy; only the TUN routes to it.
    let target = Ipv4Addr::new(10, 98, 1, 1);
    netns::ip(&["-n", &server, "addr", "add", "10.98.1.1/32", "dev", "lo"]).unwrap();
    let conf = std::env::temp_dir().join(format!("privlink-bench-danted-{tag}.conf"));
    std::fs::write(
        &conf,
        "logoutput: /dev/null\ninternal: 10.99.0.2 port = 1080\nexternal: 10.99.0.2\nsocksmethod: none\n\
         clientmethod: none\nuser.privileged: root\nuser.unprivileged: nobody\n\
         client pass { from: 0.0.0.0/0 to: 0.0.0.0/0 }\nsocks pass { from: 0.0.0.0/0 to: 0.0.0.0/0 }\n",
    )
    .unwrap();
    let spawn_in = |n: &str, args: &[&str]| {
        Reaped(
            Command::new("ip")
                .args(["netns", "exec", n])
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn"),
        )
    };
    let _socks = spawn_in(&server, &["danted", "-f", conf.to_str().unwrap()]);
    let _iperf = iperf_server(Some(&server), "10.98.1.1");
    // Its MSS option set to the MTU's (without it clients fall back to 536 bytes).
    let _proxy = spawn_in(
        &client,
        &["tun2proxy-bin", "--tun", "t2p0", "--proxy", "socks5://10.99.0.2:1080", "--mtu", "1500", "--tcp-mss", "1460"],
    );
    let up = (0..30).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        netns::ip(&["-n", &client, "link", "show", "t2p0"]).is_ok()
    });
    let _ = std::fs::remove_file(&conf);
    if !up {
        eprintln!("tun2proxy did not create its TUN; skipped");
        return None;
    }
    netns::ip(&["-n", &client, "addr", "add", "10.0.99.1/24", "dev", "t2p0"]).unwrap();
    netns::ip(&["-n", &client, "link", "set", "t2p0", "up"]).unwrap();
    netns::ip(&["-n", &client, "route", "add", "10.98.1.1/32", "dev", "t2p0"]).unwrap();
    let up = in_turn(runs, || kernel.iperf(secs, false, 1), || iperf(&client, target, secs, false, 1));
    let down = in_turn(runs, || kernel.iperf(secs, true, 1), || iperf(&client, target, secs, true, 1));
    Some((up, down))
}

/// Median and spread of repeated runs.
struct Stat {
    median: f64,
    min: f64,
    max: f64,
}

fn stat(mut v: Vec<f64>) -> Stat {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Stat { median: v[v.len() / 2], min: v[0], max: v[v.len() - 1] }
}

/// The kernel path at MTU 1500, the reference for every ratio: a veth pair
/// with an iperf3 and an echo server on its far side, up for the whole run.
struct Kernel {
    ns: Namespaces,
    addr: Ipv4Addr,
    _iperf: Reaped,
}

impl Kernel {
    fn start(tag: &str) -> Kernel {
        let (ns, addr) = veth_lab(&format!("{tag}k"), 1500);
        let iperf = iperf_server(Some(&ns.0[1]), "10.99.0.2");
        echo_server(netns::run_in(&ns.0[1], || TcpListener::bind("10.99.0.2:7")).unwrap().unwrap());
        Kernel { ns, addr, _iperf: iperf }
    }

    fn iperf(&self, secs: u64, reverse: bool, streams: u32) -> f64 {
        iperf(&self.ns.0[0], self.addr, secs, reverse, streams)
    }

    fn echo(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.addr, 7)
    }
}

/// `runs` rounds of the kernel path and then privlink: the shared machine's
/// drift (its speed moves by a third within minutes) weighs on both alike.
fn in_turn(runs: u64, mut kernel: impl FnMut() -> f64, mut privlink: impl FnMut() -> f64) -> (Stat, Stat) {
    let (mut k, mut p) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        k.push(kernel());
        p.push(privlink());
    }
    (stat(k), stat(p))
}

fn fmt_stat(s: &Stat, unit: &str) -> String {
    format!("{:.2} {unit} ({:.2}–{:.2})", s.median, s.min, s.max)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if std::env::args().any(|a| a == "--idle-server") {
        return run_idle_server();
    }
    let runs = env_num("PLK_BENCH_RUNS", 3);
    let secs = env_num("PLK_BENCH_SECS", 4);
    if unsafe { libc::geteuid() } != 0 || Command::new("iperf3").arg("--version").output().is_err() {
        eprintln!("e2e bench: needs root and iperf3 (apt-get install iperf3); skipped");
        return;
    }
    // 10,000 connections need 20,000 descriptors in privlink and 10,000 here.
    let lim = libc::rlimit { rlim_cur: 65536, rlim_max: 65536 };
    // SAFETY: setrlimit with a valid struct; failure only limits the idle-connections figure.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    let tag = format!("{}", std::process::id() % 100000);
    let echo = TcpListener::bind("127.0.0.1:0").unwrap();
    let echo_port = echo.local_addr().unwrap().port();
    echo_server(echo);
    let _iperf_host = iperf_server(None, "127.0.0.1");

    let kernel = Kernel::start(&tag);

    let (idle_port, _idle) = support::server_child("--idle-server");
    let servers = Servers { echo: echo_port, idle: idle_port };
    let mut rows = Vec::new();
    let mut cpu_rows = Vec::new();
    let mut extra = String::new();
    let mut profile_rows = String::new();
    for mtu in [1500u32, 8500, 65520] {
        eprintln!("privlink MTU {mtu}...");
        let lab = PrivlinkLab::start(&format!("{tag}m{mtu}"), mtu, servers, Pipeline::Full(None));
        let eni = Ipv4Addr::new(10, 0, 1, 49);
        // privlink idles while the kernel path runs: its CPU over its own runs' time.
        let timed = |reverse: bool, busy: &mut f64| {
            let t = Instant::now();
            let v = iperf(&lab.ns, eni, secs, reverse, 1);
            *busy += t.elapsed().as_secs_f64();
            v
        };
        let (c0, mut busy) = (lab.cpu_secs(), 0.0);
        let (k_up, up) = in_turn(runs, || kernel.iperf(secs, false, 1), || timed(false, &mut busy));
        let cpu_up = (lab.cpu_secs() - c0) / busy;
        let (c0, mut busy) = (lab.cpu_secs(), 0.0);
        let (k_down, down) = in_turn(runs, || kernel.iperf(secs, true, 1), || timed(true, &mut busy));
        let cpu_down = (lab.cpu_secs() - c0) / busy;
        rows.push((
            format!("single stream, client → service, MTU {mtu}"),
            fmt_stat(&up, "Gbit/s"),
            fmt_stat(&k_up, "Gbit/s"),
            up.median / k_up.median,
        ));
        rows.push((
            format!("single stream, service → client, MTU {mtu}"),
            fmt_stat(&down, "Gbit/s"),
            fmt_stat(&k_down, "Gbit/s"),
            down.median / k_down.median,
        ));
        cpu_rows.push(format!("| {mtu} | {cpu_up:.2} | {cpu_down:.2} |"));
        if mtu == 8500 {
            let (k_p8, p8) = in_turn(runs, || kernel.iperf(secs, false, 8), || iperf(&lab.ns, eni, secs, false, 8));
            rows.push((
                "8 parallel streams, client → service, MTU 8500".into(),
                fmt_stat(&p8, "Gbit/s"),
                fmt_stat(&k_p8, "Gbit/s"),
                p8.median / k_p8.median,
            ));
            let echo_eni = SocketAddrV4::new(Ipv4Addr::new(10, 0, 1, 50), 7);
            let (k_cps, cps) = in_turn(
                runs,
                || conns_per_sec(&kernel.ns.0[0], kernel.echo(), secs.min(3)),
                || conns_per_sec(&lab.ns, echo_eni, secs.min(3)),
            );
            rows.push((
                "new connections per second (connect, 16 B echo, close with RST)".into(),
                fmt_stat(&cps, "/s"),
                fmt_stat(&k_cps, "/s"),
                cps.median / k_cps.median,
            ));
            let k_lat = latency(&kernel.ns.0[0], kernel.echo(), 2000, runs);
            let lat = latency(&lab.ns, echo_eni, 2000, runs);
            let _ = writeln!(
                extra,
                "| 64 B request/response at 1000/s, 2000 per run, median of {runs} runs | {:.0} / {:.0} / {:.0} µs | {:.0} / {:.0} / {:.0} µs | +{:.0} / +{:.0} / +{:.0} µs |",
                lat.0, lat.1, lat.2, k_lat.0, k_lat.1, k_lat.2, lat.0 - k_lat.0, lat.1 - k_lat.1, lat.2 - k_lat.2
            );
            let _ = writeln!(extra, "\nprivlink RSS after the MTU 8500 runs: {:.1} MiB", lab.rss_mib());
            let pid = lab.child.0.id();
            let load = |reverse: bool| {
                let ns = lab.ns.clone();
                move || {
                    iperf(&ns, eni, secs + 2, reverse, 1);
                }
            };
            let cps_load = {
                let ns = lab.ns.clone();
                move || {
                    conns_per_sec(&ns, echo_eni, secs + 2);
                }
            };
            if let (Some(up), Some(down), Some(cps)) =
                (profile(pid, secs, load(false)), profile(pid, secs, load(true)), profile(pid, secs, cps_load))
            {
                profile_rows = PROFILE_KINDS
                    .iter()
                    .enumerate()
                    .map(|(i, k)| format!("| {k} | {:.1} % | {:.1} % | {:.1} % |\n", up[i], down[i], cps[i]))
                    .collect();
            }
        }
    }

    // What the pipeline costs: the same transfer with SG + NACL + flow logs
    // (+ a shaper set above what the path can do) and with a minimal pipeline.
    eprintln!("pipeline cost and shaping...");
    let eni = Ipv4Addr::new(10, 0, 1, 49);
    let mut cost = String::new();
    {
        // Three labs up at once, measured in turn, run after run: a drift of
        // the shared machine then weighs on all three alike.
        let variants = [
            ("minimal: one SG rule, default NACL, no flow logs, unshaped", "min", Pipeline::Minimal),
            ("full: SG + custom NACL + flow logs", "full", Pipeline::Full(None)),
            ("full + shaper at 100 Gbit/s (above the path)", "big", Pipeline::Full(Some("100Gbit"))),
        ];
        let labs: Vec<PrivlinkLab> =
            variants.iter().map(|(_, t, p)| PrivlinkLab::start(&format!("{tag}{t}"), 8500, servers, *p)).collect();
        let mut samples = vec![(Vec::new(), Vec::new()); labs.len()];
        for _ in 0..runs {
            for (lab, s) in labs.iter().zip(&mut samples) {
                s.0.push(iperf(&lab.ns, eni, secs, false, 1));
            }
            for (lab, s) in labs.iter().zip(&mut samples) {
                s.1.push(iperf(&lab.ns, eni, secs, true, 1));
            }
        }
        let stats: Vec<(Stat, Stat)> = samples.into_iter().map(|(u, d)| (stat(u), stat(d))).collect();
        for ((name, _, _), (up, down)) in variants.iter().zip(&stats) {
            let _ = writeln!(
                cost,
                "| {name} | {} | {} | {:.2} / {:.2} |",
                fmt_stat(up, "Gbit/s"),
                fmt_stat(down, "Gbit/s"),
                up.median / stats[0].0.median,
                down.median / stats[0].1.median
            );
        }
    }
    // One TUN queue against the default (one per CPU), the labs measured in turn.
    eprintln!("queues...");
    let mut queues_md = String::new();
    {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let labs = [
            PrivlinkLab::start_with_queues(&format!("{tag}q1"), 8500, servers, Pipeline::Full(None), Some(1)),
            PrivlinkLab::start_with_queues(&format!("{tag}qn"), 8500, servers, Pipeline::Full(None), None),
        ];
        let echo_eni = SocketAddrV4::new(Ipv4Addr::new(10, 0, 1, 50), 7);
        // The kernel path first, then each lab, round after round.
        let mut samples = vec![[Vec::new(), Vec::new(), Vec::new()]; 3];
        for _ in 0..runs {
            let paths = [
                (&kernel.ns.0[0], kernel.addr, kernel.echo()),
                (&labs[0].ns, eni, echo_eni),
                (&labs[1].ns, eni, echo_eni),
            ];
            for ((ns, addr, echo), s) in paths.into_iter().zip(&mut samples) {
                s[0].push(iperf(ns, addr, secs, false, 8));
                s[1].push(iperf(ns, addr, secs, false, 1));
                s[2].push(conns_per_sec(ns, echo, secs.min(3)));
            }
        }
        let stats: Vec<[Stat; 3]> = samples.into_iter().map(|s| s.map(stat)).collect();
        let names = [
            "kernel veth, MTU 1500".to_string(),
            "privlink, 1 queue".into(),
            format!("privlink, {cores} queues (the default here)"),
        ];
        for (name, st) in names.iter().zip(&stats) {
            let k = &stats[0];
            let _ = writeln!(
                queues_md,
                "| {name} | {} ({:.2}) | {} ({:.2}) | {} ({:.2}) |",
                fmt_stat(&st[0], "Gbit/s"),
                st[0].median / k[0].median,
                fmt_stat(&st[1], "Gbit/s"),
                st[1].median / k[1].median,
                fmt_stat(&st[2], "/s"),
                st[2].median / k[2].median
            );
        }
    }
    // Much of the kernel path's spread is its senders' congestion control:
    // both paths under bbr and under cubic, in turn.
    eprintln!("congestion control...");
    let mut cc_md = String::new();
    {
        let lab = PrivlinkLab::start(&format!("{tag}cc"), 8500, servers, Pipeline::Full(None));
        for cc in ["bbr", "cubic"] {
            let mut cells = Vec::new();
            for reverse in [false, true] {
                let (k, p) = in_turn(
                    runs,
                    || iperf_with(&kernel.ns.0[0], kernel.addr, secs, reverse, 1, Some(cc)),
                    || iperf_with(&lab.ns, eni, secs, reverse, 1, Some(cc)),
                );
                cells.push((k, p));
            }
            let _ = writeln!(
                cc_md,
                "| {cc} | {} | {} | {:.2} | {} | {} | {:.2} |",
                fmt_stat(&cells[0].0, "Gbit/s"),
                fmt_stat(&cells[0].1, "Gbit/s"),
                cells[0].1.median / cells[0].0.median,
                fmt_stat(&cells[1].0, "Gbit/s"),
                fmt_stat(&cells[1].1, "Gbit/s"),
                cells[1].1.median / cells[1].0.median,
            );
        }
    }
    let mut shaping = String::new();
    for rate in ["10Mbit", "100Mbit", "1Gbit"] {
        let lab = PrivlinkLab::start(&format!("{tag}s{}", rate.len()), 8500, servers, Pipeline::Full(Some(rate)));
        let want: f64 = rate.trim_end_matches("bit").replace('M', "e6").replace('G', "e9").parse().unwrap();
        let down = iperf(&lab.ns, eni, 10, true, 1) * 1e9;
        let up = iperf(&lab.ns, eni, 10, false, 1) * 1e9;
        let _ = writeln!(
            shaping,
            "| {rate} | {:.1} Mbit/s ({:+.1} %) | {:.1} Mbit/s ({:+.1} %) |",
            down / 1e6,
            (down / want - 1.0) * 100.0,
            up / 1e6,
            (up / want - 1.0) * 100.0
        );
    }
    eprintln!("10,000 idle connections...");
    let idle = {
        let lab = PrivlinkLab::start(&format!("{tag}idle"), 8500, servers, Pipeline::Full(None));
        let before = lab.rss_mib();
        let pid = lab.child.0.id();
        let (opened, took, after) = support::open_hold(
            &lab.ns,
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 1, 51), 9),
            10_000,
            Duration::from_millis(500),
            move || support::rss_mib(pid),
        );
        let alive = std::fs::metadata(format!("/proc/{pid}")).is_ok();
        format!(
            "10,000 idle connections: {opened} open in {:.1} s; privlink RSS {before:.1} MiB before, {after:.1} MiB with them open{}.",
            took.as_secs_f64(),
            if alive { "" } else { " (privlink is gone!)" }
        )
    };

    // The best userspace peer measured here: slirp4netns, where Debian has it.
    let peer = if Command::new("slirp4netns").arg("--version").output().is_ok() {
        eprintln!("slirp4netns...");
        let ns = Namespaces(vec![format!("plkb{tag}slirp")]);
        netns::ip(&["netns", "add", &ns.0[0]]).unwrap();
        let slirp = Reaped(
            Command::new("slirp4netns")
                .args(["--configure", "--mtu=65520", "--netns-type=path"])
                .arg(netns::path(&ns.0[0]))
                .arg("tap0")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("slirp4netns"),
        );
        std::thread::sleep(Duration::from_millis(700));
        let gw = Ipv4Addr::new(10, 0, 2, 2); // slirp's address for the host's loopback
        let (k_up, up) = in_turn(runs, || kernel.iperf(secs, false, 1), || iperf(&ns.0[0], gw, secs, false, 1));
        let (k_down, down) = in_turn(runs, || kernel.iperf(secs, true, 1), || iperf(&ns.0[0], gw, secs, true, 1));
        drop(slirp);
        format!(
            "| slirp4netns 1.2, MTU 65520 (host loopback iperf3 server) | {} | {} | {:.2} / {:.2} |\n",
            fmt_stat(&up, "Gbit/s"),
            fmt_stat(&down, "Gbit/s"),
            up.median / k_up.median,
            down.median / k_down.median
        )
    } else {
        "| slirp4netns | not installed (apt-get install slirp4netns) | | |\n".to_string()
    };

    eprintln!("tun2proxy...");
    let t2p = match tun2proxy_peer(&tag, runs, secs, &kernel) {
        Some(((k_up, up), (k_down, down))) => format!(
            "| tun2proxy 0.8.7 + dante 1.4 SOCKS5, MTU 1500, `--tcp-mss 1460` | {} | {} | {:.2} / {:.2} |\n",
            fmt_stat(&up, "Gbit/s"),
            fmt_stat(&down, "Gbit/s"),
            up.median / k_up.median,
            down.median / k_down.median
        ),
        None => "| tun2proxy + SOCKS5 | not installed (`cargo install tun2proxy --locked`, `apt-get install dante-server`) | | |\n"
            .to_string(),
    };

    let mut md = String::new();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name\t: ").map(str::to_string))
        .unwrap_or_default();
    let iperf_v = Command::new("iperf3")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").to_string())
        .unwrap_or_default();
    let date = support::date_utc();
    let default_cc = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control").unwrap_or_default();
    let _ = writeln!(md, "Written by `cargo bench --bench e2e` on {date}. Machine: {} cores, {cpu}, Linux {}, TCP congestion control {}; {iperf_v}; privlink {} (release build).", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), kernel.trim(), default_cc.trim(), env!("CARGO_PKG_VERSION"));
    let _ = writeln!(md, "Median of {runs} runs of {secs} s (min–max in brackets), receiver side. Every ratio is privlink over the kernel veth path at MTU 1500, the two measured in turn, run after run (the kernel column is its median over the runs beside that row's). privlink runs with its default TUN queues (one per CPU) unless a row says otherwise.\n");
    let _ = writeln!(md, "| figure | privlink | kernel veth, MTU 1500 | ratio |\n|---|---|---|---|");
    for (name, p, k, r) in &rows {
        let _ = writeln!(md, "| {name} | {p} | {k} | {r:.2} |");
    }
    let _ =
        writeln!(md, "\n| latency p50 / p99 / p99.9 | privlink | kernel veth | privlink − kernel |\n|---|---|---|---|");
    md.push_str(&extra);
    let _ = writeln!(md, "\nPeers, each measured in turn with the kernel veth path (ratio against it, up / down):\n\n| peer | client → service | service → client | ratio |\n|---|---|---|---|");
    md.push_str(&peer);
    md.push_str(&t2p);
    let _ = writeln!(md, "\nWhat the pipeline costs, single stream at MTU 8500, the three labs measured in turn within each run (ratio: against the minimal pipeline):\n\n| pipeline | client → service | service → client | ratio |\n|---|---|---|---|");
    md.push_str(&cost);
    let _ = writeln!(md, "\nTUN queues, each with its own thread and stack, at MTU 8500 with the full pipeline; the kernel path and the two labs measured in turn within each run (ratio against the kernel veth path):\n\n| path | 8 streams up | 1 stream up | new connections |\n|---|---|---|---|");
    md.push_str(&queues_md);
    let _ = writeln!(md, "\nThe senders' congestion control (iperf3 `-C`: both ends' data sockets; privlink's upstream socket keeps the machine's default), single stream at MTU 8500 with the full pipeline, the kernel path and privlink in turn:\n\n| congestion control | kernel, client → service | privlink | ratio | kernel, service → client | privlink | ratio |\n|---|---|---|---|---|---|---|");
    md.push_str(&cc_md);
    let _ = writeln!(md, "\nShaping accuracy, one iperf3 stream for 10 s through an ENI shaped at the rate (receiver side):\n\n| bandwidth | service → client | client → service |\n|---|---|---|");
    md.push_str(&shaping);
    let _ = writeln!(md, "\n{idle}");
    let _ = writeln!(md, "\nprivlink CPU (cores busy) during the single-stream runs:\n\n| MTU | client → service | service → client |\n|---|---|---|");
    for r in cpu_rows {
        let _ = writeln!(md, "{r}");
    }
    if !profile_rows.is_empty() {
        let _ = writeln!(md, "\nWhere privlink's time goes at MTU 8500 (`perf record -e cpu-clock -g -p`, {secs} s, share of privlink's samples; one stream each way, and the connections/s load):\n\n| kind | client → service | service → client | new connections |\n|---|---|---|---|");
        md.push_str(&profile_rows);
    }
    support::write_section("## End to end: the ENI against the kernel path", &md);
    println!("{md}");
}
