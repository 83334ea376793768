//! Shared harness for the namespace tests: a `privlink up` child process in a
//! namespace unique to the test, always torn down (even on panic).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Whether namespace tests can run here. Where they cannot, a test skips with
/// a message, unless `PRIVLINK_REQUIRE_NETNS=1` (CI), where it fails instead.
pub fn netns_available(test: &str) -> bool {
    let root = unsafe { libc::geteuid() } == 0;
    let tun = std::path::Path::new("/dev/net/tun").exists();
    let ip = Command::new("ip").arg("netns").arg("list").output().map(|o| o.status.success()).unwrap_or(false);
    if root && tun && ip {
        return true;
    }
    let why = format!("needs root, /dev/net/tun and iproute2 (root={root} tun={tun} ip={ip})");
    if std::env::var("PRIVLINK_REQUIRE_NETNS").as_deref() == Ok("1") {
        panic!("{test}: {why}, and PRIVLINK_REQUIRE_NETNS=1");
    }
    eprintln!("SKIPPED {test}: {why}");
    false
}

/// A name unique to this test run: `plkt<pid>x<n>` (short: it is also used for devices).
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}x{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The VPC (10.0.0.0/16 in namespace `ns`) and its two subnets, a in us-east-1a
/// and b in us-east-1b; `subnet_a`/`subnet_b` are extra lines for each (a NACL).
pub fn vpc(ns: &str, subnet_a: &str, subnet_b: &str) -> String {
    format!(
        r#"
[vpc]
cidr = "10.0.0.0/16"
region = "us-east-1"
netns = "{ns}"

[[subnet]]
id = "subnet-a"
cidr = "10.0.1.0/24"
az = "us-east-1a"
{subnet_a}

[[subnet]]
id = "subnet-b"
cidr = "10.0.2.0/24"
az = "us-east-1b"
{subnet_b}
"#
    )
}

/// A config for one endpoint with two subnets whose group allows TCP 443 from the VPC;
/// `extra` is appended to the endpoint table.
pub fn config(ns: &str, upstream: &str, extra: &str) -> String {
    format!(
        r#"{}
[[endpoint]]
service = "com.amazonaws.us-east-1.ec2"
subnets = ["subnet-a", "subnet-b"]
upstream = "{upstream}"
security_groups = ["sg-endpoint"]
{extra}

# AWS: "For HTTPS the groups must allow inbound TCP 443 from the clients."
[[security_group]]
id = "sg-endpoint"
ingress = [{{ protocol = "tcp", ports = "443", cidr = "10.0.0.0/16" }}]
"#,
        vpc(ns, "", "")
    )
}

/// Bytes that differ for every `seed` and offset (a xorshift stream).
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A running `privlink up`.
pub struct Lab {
    pub ns: String,
    pub dir: PathBuf,
    owns_dir: bool,
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
    /// What privlink wrote to stderr, when [`Lab::start_default_logging`] captured it.
    errors: Arc<Mutex<Vec<String>>>,
    ready: mpsc::Receiver<()>,
}

impl Lab {
    /// Writes `config` into a fresh dir and starts `privlink up` on it.
    pub fn start(ns: &str, config: &str) -> Lab {
        let dir = std::env::temp_dir().join(format!("privlink-test-{ns}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut lab = Lab::start_in(ns, dir, config);
        lab.owns_dir = true;
        lab
    }

    /// Starts with config and state in `dir`, which the caller owns and removes.
    pub fn start_in(ns: &str, dir: PathBuf, config: &str) -> Lab {
        Lab::start_with(ns, dir, config, false)
    }

    /// Like [`Lab::start`], at privlink's default log level (`RUST_LOG`
    /// unset), its stderr a pipe (not a terminal) read into [`Lab::stderr`].
    pub fn start_default_logging(ns: &str, config: &str) -> Lab {
        let dir = std::env::temp_dir().join(format!("privlink-test-{ns}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut lab = Lab::start_with(ns, dir, config, true);
        lab.owns_dir = true;
        lab
    }

    fn start_with(ns: &str, dir: PathBuf, config: &str, capture_stderr: bool) -> Lab {
        let mut cmd = up_command(&dir, config);
        cmd.stdout(Stdio::piped());
        if capture_stderr {
            cmd.env_remove("RUST_LOG").stderr(Stdio::piped());
        } else {
            cmd.stderr(Stdio::inherit());
        }
        let mut child = cmd.spawn().expect("spawn privlink");
        let errors = Arc::new(Mutex::new(Vec::new()));
        if let Some(err) = child.stderr.take() {
            let e2 = errors.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    e2.lock().unwrap().push(line);
                }
            });
        }
        let out = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, ready) = mpsc::channel();
        let l2 = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line == "privlink: ready" {
                    let _ = tx.send(());
                }
                l2.lock().unwrap().push(line);
            }
        });
        let mut lab = Lab { ns: ns.to_string(), dir, owns_dir: false, child: Some(child), lines, errors, ready };
        if lab.ready.recv_timeout(Duration::from_secs(20)).is_err() {
            let status = lab.child.as_mut().unwrap().try_wait().unwrap();
            panic!("privlink did not get ready (exit: {status:?}); stdout: {:?}", lab.stdout());
        }
        lab
    }

    /// Rewrites the config, sends SIGHUP and waits until privlink says the
    /// reload was applied (it panics if privlink refuses it).
    pub fn reload(&self, config: &str) {
        let seen = self.stdout().iter().filter(|l| l.starts_with("privlink: reload")).count();
        std::fs::write(self.dir.join("privlink.toml"), config).unwrap();
        let pid = self.child.as_ref().unwrap().id() as i32;
        unsafe { libc::kill(pid, libc::SIGHUP) };
        for _ in 0..500 {
            let lines: Vec<String> = self.stdout().into_iter().filter(|l| l.starts_with("privlink: reload")).collect();
            if let Some(l) = lines.get(seen) {
                assert!(l.starts_with("privlink: reloaded"), "{l}");
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("privlink did not report the reload");
    }

    /// The pid of its `privlink up`.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Kills privlink with SIGKILL and leaves whatever it made where it is
    /// (the caller holds a [`Leftovers`] for the namespace).
    pub fn kill9(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        let _ = child.wait();
        self.ns.clear();
    }

    /// Everything privlink printed so far.
    pub fn stdout(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Everything privlink wrote to stderr so far (captured only by [`Lab::start_default_logging`]).
    pub fn stderr(&self) -> Vec<String> {
        self.errors.lock().unwrap().clone()
    }

    /// The ENI IPs of the plan privlink printed, in order.
    pub fn eni_ips(&self) -> Vec<String> {
        self.stdout()
            .iter()
            .filter(|l| l.trim_start().starts_with("eni-"))
            .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
            .collect()
    }

    /// Sends SIGTERM, expects exit 0 and the namespace gone; returns the
    /// counters, DNS, guard and connection (`conn_*`) lines as one.
    pub fn stop(self) -> String {
        self.stop_inner(true)
    }

    /// Like [`Lab::stop`] for a namespace privlink found already there: it must stay.
    pub fn stop_keeping_netns(self) -> String {
        self.stop_inner(false)
    }

    fn stop_inner(mut self, made_netns: bool) -> String {
        let mut child = self.child.take().unwrap();
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait().unwrap();
        assert!(status.success(), "privlink exited with {status}");
        // Give the reader thread a moment to take the last lines.
        for _ in 0..50 {
            if self.stdout().iter().any(|l| l.starts_with("privlink: connections:")) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let lines = self.stdout();
        let counters = lines.iter().find(|l| l.starts_with("privlink: stopped; counters:")).expect("counters line");
        let dns = lines.iter().find(|l| l.starts_with("privlink: dns:")).map(String::as_str).unwrap_or_default();
        let guard = lines.iter().find(|l| l.starts_with("privlink: guard:")).map(String::as_str).unwrap_or_default();
        let conns =
            lines.iter().find(|l| l.starts_with("privlink: connections:")).map(String::as_str).unwrap_or_default();
        let conns: Vec<String> = conns
            .trim_start_matches("privlink: connections:")
            .split_whitespace()
            .map(|kv| format!("conn_{kv}"))
            .collect();
        let counters = format!(
            "{counters} {} {} {}",
            dns.trim_start_matches("privlink: dns:"),
            guard.replace("privlink: guard: accepted=", "guard_accepted="),
            conns.join(" ")
        );
        assert_eq!(
            !privlink::edge::netns::exists(&self.ns),
            made_netns,
            "namespace {}: privlink removes it iff it made it",
            self.ns
        );
        if !made_netns {
            // Drop must not remove what the test's own lab owns.
            self.ns.clear();
        }
        counters
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if !self.ns.is_empty() {
            remove_leftovers(&self.ns);
        }
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// What privlink may leave of namespace `ns` on the host (the namespace,
/// `/etc/netns/NS/`, its lock file): the paths that exist.
pub fn left_of(ns: &str) -> Vec<PathBuf> {
    [privlink::edge::netns::path(ns), PathBuf::from("/etc/netns").join(ns), privlink::edge::lock::netns_lock_path(ns)]
        .into_iter()
        .filter(|p| p.exists())
        .collect()
}

/// Removes what [`left_of`] finds.
pub fn remove_leftovers(ns: &str) {
    if privlink::edge::netns::exists(ns) {
        let _ = Command::new("ip").args(["netns", "del", ns]).status();
    }
    let _ = std::fs::remove_dir_all(PathBuf::from("/etc/netns").join(ns));
    let _ = std::fs::remove_file(privlink::edge::lock::netns_lock_path(ns));
}

/// Removes, when dropped, whatever privlink left of namespace `ns` (a test that kills it holds one).
pub struct Leftovers(pub String);

impl Drop for Leftovers {
    fn drop(&mut self) {
        remove_leftovers(&self.0);
    }
}

/// `privlink up` with `config` written to `dir/privlink.toml` and state in `dir/state`, not yet spawned.
pub fn up_command(dir: &std::path::Path, config: &str) -> Command {
    let cfg = dir.join("privlink.toml");
    std::fs::write(&cfg, config).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_privlink"));
    cmd.args(["up", "--config"]).arg(cfg).arg("--state-dir").arg(dir.join("state"));
    cmd
}

/// Waits for `child` to exit, for at most `limit` (then kills it and panics:
/// a privlink that should have stopped is still running).
pub fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let step = Duration::from_millis(20);
    for _ in 0..(limit.as_millis() / step.as_millis()).max(1) {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(step);
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("privlink (pid {}) was still running after {limit:?}", child.id());
}

/// A loopback server that echoes each read back at once, for as many
/// connections as come; the receiver hears when each one ends.
pub fn chunk_echo_server() -> (std::net::SocketAddr, mpsc::Receiver<()>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (ended_tx, ended) = mpsc::channel();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let ended_tx = ended_tx.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = s.read(&mut buf) {
                    if s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = ended_tx.send(());
            });
        }
    });
    (addr, ended)
}

/// The value of counter `name` in a counters line.
pub fn counter(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no counter {name} in {line}"))
        .parse()
        .unwrap()
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh dir named after `name`.
    pub fn new(name: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("privlink-test-{name}"));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Gives namespace `ns` the extra local address `ip` (on `lo`), so a client can use it as its source.
pub fn add_address(ns: &str, ip: &str) {
    privlink::edge::netns::ip(&["-n", ns, "addr", "add", &format!("{ip}/32"), "dev", "lo"]).unwrap();
}

/// Connects from source address `src` inside `ns` to `dst`.
pub fn connect_from(
    ns: &str,
    src: &str,
    dst: std::net::SocketAddrV4,
    timeout: Duration,
) -> std::io::Result<std::net::TcpStream> {
    use socket2::{Domain, Socket, Type};
    let src: std::net::Ipv4Addr = src.parse().unwrap();
    let sock = privlink::lab::probe::socket_in(ns, || Socket::new(Domain::IPV4, Type::STREAM, None))?;
    sock.bind(&std::net::SocketAddrV4::new(src, 0).into())?;
    sock.connect_timeout(&dst.into(), timeout)?;
    Ok(sock.into())
}

/// The README's install line for the clients.
pub const INSTALL: &str = "python3 -m venv .venv && .venv/bin/pip install awscli boto3";

/// The virtualenv holding the aws CLI and boto3: `PRIVLINK_AWS_VENV`, else
/// `.venv` in the repository. Never whatever `aws` or `python3` is on PATH.
pub fn aws_venv(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("PRIVLINK_AWS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    let aws = dir.join("bin/aws").is_file();
    let boto3 = Command::new(dir.join("bin/python"))
        .args(["-c", "import boto3"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if aws && boto3 {
        return Some(dir);
    }
    let why = format!(
        "needs the aws CLI and boto3 in the virtualenv {} (aws={aws} boto3={boto3}): make it with the README's \
         install line `{INSTALL}` in the repository, or point PRIVLINK_AWS_VENV at one",
        dir.display()
    );
    if std::env::var("PRIVLINK_REQUIRE_AWS_CLIENTS").as_deref() == Ok("1") {
        panic!("{test}: {why}, and PRIVLINK_REQUIRE_AWS_CLIENTS=1");
    }
    eprintln!("SKIPPED {test}: {why}");
    None
}
