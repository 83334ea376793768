//! `privlink run` as an ordinary user (rootless): the command reaches the
//! named services by their usual names and nothing else, runs as the caller,
//! gets its exit status back, and a `kill -9` of privlink leaves no process
//! and no namespace.
//!
//! The test (root) runs the built binary as a uid that is neither root nor
//! nobody, without supplementary groups. Such a user may open `/dev/net/tun`
//! only where it is mode 0666 (udev's usual rule); here it may be 0600, so
//! each run gets a device node of its own for the same device, owned by that
//! uid, bound over `/dev/net/tun` in a mount namespace made for that run
//! alone: nothing on the host changes.

mod common;

use std::io::BufRead;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use privlink::edge::rootless;
use privlink::lab::standin;

/// The caller: an id with no name, so `id -u` inside can only print it if the
/// mapping is right (nobody's 65534 is also what an unmapped id shows as).
const UID: u32 = 45678;
const GID: u32 = 45679;

/// Whether rootless runs can be tested here: root (to become `UID`), the
/// namespace tools, and a kernel that lets unprivileged users make user
/// namespaces. Where the kernel does not, the test skips with a message, also
/// under `PRIVLINK_REQUIRE_NETNS=1` (that is a setting of the host, reported
/// by privlink's own error, tested in its unit tests).
fn rootless_testable(test: &str) -> bool {
    if !common::netns_available(test) {
        return false;
    }
    let tools = ["unshare", "setpriv", "mknod"]
        .iter()
        .all(|t| Command::new(t).arg("--version").output().is_ok_and(|o| o.status.success()));
    if !tools {
        let why = "needs unshare, setpriv and mknod (util-linux, coreutils)";
        if std::env::var("PRIVLINK_REQUIRE_NETNS").as_deref() == Ok("1") {
            panic!("{test}: {why}, and PRIVLINK_REQUIRE_NETNS=1");
        }
        eprintln!("SKIPPED {test}: {why}");
        return false;
    }
    if let Err(e) = rootless::check_user_namespaces(&rootless::probe(), UID) {
        eprintln!("SKIPPED {test}: unprivileged user namespaces are off here: {e}");
        return false;
    }
    true
}

/// A place for one test's files, and its own `/dev/net/tun` node for `UID`.
struct Caller {
    dir: common::TempDir,
    tun: PathBuf,
}

impl Caller {
    fn new(name: &str) -> Caller {
        let dir = common::TempDir::new(&common::unique(name));
        let tun = dir.0.join("tun");
        let st = Command::new("mknod").args(["-m", "0600"]).arg(&tun).args(["c", "10", "200"]).status().unwrap();
        assert!(st.success(), "mknod");
        std::os::unix::fs::chown(&tun, Some(UID), Some(GID)).unwrap();
        Caller { dir, tun }
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.dir.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// `privlink ARGS` as `UID:GID`, its `/dev/net/tun` the node made for it.
    fn privlink(&self, args: &[&str]) -> Command {
        self.privlink_with_tun(Some(&self.tun), args)
    }

    /// `privlink ARGS` as `UID:GID` with `/dev/net/tun` as `tun` gives it
    /// (`None`: the host's). The pid is privlink's: each wrapper execs the next.
    fn privlink_with_tun(&self, tun: Option<&Path>, args: &[&str]) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.args(["-m", "--propagation", "private", "--", "sh", "-c"]);
        match tun {
            Some(node) => cmd.arg(r#"mount --bind "$0" /dev/net/tun && exec "$@""#).arg(node),
            None => cmd.args([r#"exec "$@""#, "sh"]),
        };
        cmd.args(["setpriv", &format!("--reuid={UID}"), &format!("--regid={GID}"), "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_privlink"))
            .args(args)
            .env("HOME", &self.dir.0)
            .env_remove("RUST_LOG");
        cmd
    }
}

/// Asks the nameserver of `/etc/resolv.conf` for each name's A record over
/// UDP; prints `SERVER NAME rcode=N answers=M` per name (Perl: on every Debian).
const DNS_PROBE: &str = r#"
use IO::Socket::INET;
open(my $f, '<', '/etc/resolv.conf') or die "resolv.conf: $!";
my ($ns) = map { /^nameserver\s+(\S+)/ ? ($1) : () } <$f>;
for my $name (@ARGV) {
    my $s = IO::Socket::INET->new(PeerAddr => $ns, PeerPort => 53, Proto => 'udp') or die "socket: $!";
    my $q = pack('n6', 0x5a5a, 0x0100, 1, 0, 0, 0)
        . join('', map { chr(length($_)) . $_ } split(/\./, $name)) . "\0" . pack('n2', 1, 1);
    $s->send($q) or die "send: $!";
    my $r = '';
    local $SIG{ALRM} = sub { die "no answer from $ns for $name\n" };
    alarm 5;
    defined($s->recv($r, 4096)) or die "recv: $!";
    alarm 0;
    my ($id, $flags, $qd, $an) = unpack('n4', $r);
    printf "%s %s rcode=%d answers=%d\n", $ns, $name, $flags & 15, $an;
}
"#;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn as_an_ordinary_user_a_command_reaches_its_service_by_name_as_itself_and_nothing_else() {
    let test = "as_an_ordinary_user_a_command_reaches_its_service_by_name_as_itself_and_nothing_else";
    if !rootless_testable(test) {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let name = "ec2.us-east-1.amazonaws.com";
    let service = rt.block_on(standin::TlsStandIn::start(name, 0)).unwrap();
    let caller = Caller::new("rootless");
    let ca = caller.file("ca.pem", service.cert.ca_pem.as_bytes());
    let upstream = format!("ec2={}", service.addr);

    // By its usual name, through privlink's upstream socket in the caller's
    // network (the stand-in is on the host's 127.0.0.1).
    let out = caller
        .privlink(&["run", "--service", "ec2", "--upstream", &upstream, "--"])
        .args(["curl", "-sS", "--cacert", ca.to_str().unwrap(), &format!("https://{name}/")])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", text(&out.stderr));
    assert!(stdout.starts_with("hello from ec2.us-east-1.amazonaws.com"), "only CMD's output: {stdout:?}");
    assert!(out.stderr.is_empty(), "privlink printed: {}", text(&out.stderr));

    // The VPC resolver in privacy mode: the endpoint's name answered, any other REFUSED.
    let out = caller
        .privlink(&["run", "--service", "ec2", "--upstream", &upstream, "--"])
        .args(["perl", "-e", DNS_PROBE, name, "sts.us-east-1.amazonaws.com"])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("10.200.0.2 "), "the VPC resolver is CMD's nameserver: {stdout}");
    assert!(lines[0].ends_with(&format!("{name} rcode=0 answers=1")), "{stdout}");
    assert!(lines[1].ends_with("sts.us-east-1.amazonaws.com rcode=5 answers=0"), "REFUSED: {stdout}");

    // CMD is the caller as it sees itself; its status comes back.
    let out = caller.privlink(&["run", "--service", "ec2", "--", "sh", "-c", "id -u; id -g"]).output().unwrap();
    assert_eq!(text(&out.stdout), format!("{UID}\n{GID}\n"), "{}", text(&out.stderr));
    let status = caller.privlink(&["run", "--service", "ec2", "--", "sh", "-c", "exit 7"]).status().unwrap();
    assert_eq!(status.code(), Some(7));
    let status = caller.privlink(&["run", "--service", "ec2", "--", "sh", "-c", "kill -9 $$"]).status().unwrap();
    assert_eq!(status.code(), Some(128 + 9), "a killed CMD");

    // Nothing else: the host's loopback (the stand-in itself) is out of reach,
    // and CMD cannot change the instance's network (no capability over it).
    let direct = format!("https://{}/", service.addr);
    let out =
        caller.privlink(&["run", "--service", "ec2", "--", "curl", "-sS", "-m", "3", "-k", &direct]).output().unwrap();
    assert!(!out.status.success(), "the host's loopback was reachable: {}", text(&out.stdout));
    let out = caller
        .privlink(&["run", "--service", "ec2", "--", "ip", "route", "add", "127.0.0.0/8", "dev", "eth0"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "CMD changed the instance's routes");

    // Everything it made lived in its own namespaces: the instance's name
    // (seen inside) names nothing on the host.
    let out = caller.privlink(&["run", "--service", "ec2", "--", "ip", "netns", "identify"]).output().unwrap();
    let instance = text(&out.stdout).trim().to_string();
    assert!(instance.starts_with("i-"), "{instance:?} {}", text(&out.stderr));
    assert!(!privlink::edge::netns::exists(&instance), "{instance} on the host");
    assert!(!Path::new("/etc/netns").join(&instance).exists(), "/etc/netns/{instance} on the host");

    // Only the caller can be CMD's user.
    let out = caller.privlink(&["run", "--service", "ec2", "--user", "0:0", "--", "id", "-u"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("--user 0:0") && err.contains(&format!("({UID}:{GID})")), "{err}");
    assert!(out.stdout.is_empty(), "CMD ran: {}", text(&out.stdout));
}

#[test]
fn without_access_to_the_tun_device_it_says_what_to_change_and_touches_nothing() {
    let test = "without_access_to_the_tun_device_it_says_what_to_change_and_touches_nothing";
    if !rootless_testable(test) {
        return;
    }
    let meta = std::fs::metadata("/dev/net/tun").unwrap();
    if meta.mode() & 0o006 == 0o006 {
        eprintln!("SKIPPED {test}: /dev/net/tun is open to everyone here (mode {:o})", meta.mode() & 0o7777);
        return;
    }
    let caller = Caller::new("rootlesstun");
    let out = caller.privlink_with_tun(None, &["run", "--service", "ec2", "--", "echo", "ran"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains(&format!("uid {UID} (not root) opens /dev/net/tun")), "{err}");
    assert!(err.contains("chmod 0666 /dev/net/tun") && err.contains("sudo"), "{err}");
    assert!(err.contains("nothing was touched"), "{err}");
    assert!(out.stdout.is_empty(), "CMD ran: {}", text(&out.stdout));
}

/// The pids of the processes whose namespace `kind` (`net`, `user`) is `inode` (as `readlink` shows it).
fn in_namespace(kind: &str, inode: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).is_ok_and(|l| l.to_string_lossy() == inode))
        .collect()
}

/// The children of `pid` (from each process's `stat`: its parent is the
/// fourth field, after the command name in parentheses).
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            after.split_whitespace().nth(1).and_then(|pp| pp.parse::<u32>().ok()) == Some(pid)
        })
        .collect()
}

#[test]
fn kill_9_of_a_rootless_run_leaves_no_process_and_no_namespace_and_signals_pass_on() {
    let test = "kill_9_of_a_rootless_run_leaves_no_process_and_no_namespace_and_signals_pass_on";
    if !rootless_testable(test) {
        return;
    }
    let caller = Caller::new("rootlesskill");
    // CMD says which namespaces it is in, then waits in a child of its own
    // (which a parent-death signal alone would leave running).
    let script = "readlink /proc/self/ns/net /proc/self/ns/user; sleep 300 & wait";
    let mut child =
        caller.privlink(&["run", "--service", "ec2", "--", "sh", "-c", script]).stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let net = lines.next().unwrap().unwrap();
    let user = lines.next().unwrap().unwrap();
    assert!(net.starts_with("net:[") && user.starts_with("user:["), "{net} {user}");
    // privlink (the waiting parent), its PID 1, and privlink's own user namespace.
    let pid1 = children(child.id());
    assert_eq!(pid1.len(), 1, "privlink's parent has one child: {pid1:?}");
    let privlink_user = std::fs::read_link(format!("/proc/{}/ns/user", pid1[0])).unwrap();
    let privlink_user = privlink_user.to_string_lossy().into_owned();
    let host_user = std::fs::read_link("/proc/self/ns/user").unwrap().to_string_lossy().into_owned();
    assert_ne!(privlink_user, host_user, "privlink is in a user namespace of its own");
    assert!(in_namespace("net", &net).len() >= 2, "sh and sleep are in the instance");

    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let left = || {
        let mut v = in_namespace("net", &net);
        v.extend(in_namespace("user", &user));
        v.extend(in_namespace("user", &privlink_user));
        v
    };
    while !left().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(left().is_empty(), "processes left in privlink's namespaces: {:?}", left());
    assert!(!Path::new(&format!("/proc/{}", pid1[0])).exists(), "privlink's PID 1 is gone");

    // SIGTERM to privlink reaches CMD, whose status comes back.
    let script = "trap 'exit 42' TERM; echo ready; while :; do sleep 0.05; done";
    let mut child =
        caller.privlink(&["run", "--service", "ec2", "--", "sh", "-c", script]).stdout(Stdio::piped()).spawn().unwrap();
    let mut ready = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut ready).unwrap();
    assert_eq!(ready, "ready\n");
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = common::wait_exit(&mut child, Duration::from_secs(20));
    assert_eq!(status.code(), Some(42), "CMD's trap ran and its status came back");
}
