//! The life of `privlink up` on the host: what a `kill -9` leaves (the next
//! run adopts and removes it), one privlink per namespace and per state dir,
//! a Ctrl-C during start-up, a user without the privileges, and what is left
//! of them once privlink runs. Each test uses namespaces of its own (unique
//! names) and removes what it made, even when it fails. Needs root; skips
//! with a message where it cannot run, fails instead under
//! `PRIVLINK_REQUIRE_NETNS=1`.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddrV4;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    chunk_echo_server, config, left_of, netns_available, unique, up_command, wait_exit, Lab, Leftovers, TempDir,
};
use privlink::edge::netns;
use privlink::lab::probe;

/// These tests carry plain bytes, not TLS: the endpoint must allow that.
const PLAIN: &str = "allow_non_tls = true";
/// The VPC resolver of [`config`]'s 10.0.0.0/16.
const RESOLVER: SocketAddrV4 = SocketAddrV4::new(std::net::Ipv4Addr::new(10, 0, 0, 2), 53);
/// The service's default name, answered from the private zone.
const EC2: &str = "ec2.us-east-1.amazonaws.com";
/// How long a refused or interrupted `privlink up` may take to exit before the test calls it hung.
const EXIT_LIMIT: Duration = Duration::from_secs(30);

/// `config` with `lines` added to its `[vpc]` table.
fn with_vpc(config: &str, ns: &str, lines: &str) -> String {
    config.replace(&format!("netns = \"{ns}\""), &format!("netns = \"{ns}\"\n{lines}"))
}

/// The lab works: each ENI carries a round trip to the echo service and the
/// resolver answers the service's name with the ENIs' addresses.
fn assert_carries(lab: &Lab) {
    for ip in lab.eni_ips() {
        let mut c = probe::tcp_connect(&lab.ns, SocketAddrV4::new(ip.parse().unwrap(), 443), Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect to {ip}: {e}"));
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(b"still here").unwrap();
        let mut back = [0u8; 10];
        c.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"still here", "through {ip}");
    }
    let answer = probe::dns_udp(Some(&lab.ns), RESOLVER, EC2, "A").unwrap();
    let mut got: Vec<String> = answer.ips.iter().map(|ip| ip.to_string()).collect();
    got.sort();
    assert_eq!(got, lab.eni_ips(), "the resolver's answer for {EC2}");
}

/// Runs `cmd` (stderr piped), which must exit by itself; its status and stderr.
fn run_to_exit(cmd: &mut Command) -> (std::process::ExitStatus, String) {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let status = wait_exit(&mut child, EXIT_LIMIT);
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (status, err)
}

#[test]
fn after_kill_9_the_next_run_adopts_what_was_left_and_removes_it() {
    if !netns_available("after_kill_9_the_next_run_adopts_what_was_left_and_removes_it") {
        return;
    }
    let (upstream, _) = chunk_echo_server();
    let ns = unique("plkl");
    let _left = Leftovers(ns.clone());
    let dir = TempDir::new(&ns);
    let cfg = config(&ns, &upstream.to_string(), PLAIN);
    let lab = Lab::start_in(&ns, dir.0.clone(), &cfg);
    let ips = lab.eni_ips();
    lab.kill9();
    let left = left_of(&ns);
    assert!(left.contains(&netns::path(&ns)), "kill -9 leaves the namespace: {left:?}");
    assert!(left.contains(&PathBuf::from(format!("/etc/netns/{ns}"))), "and its resolv.conf: {left:?}");

    let lab = Lab::start_in(&ns, dir.0.clone(), &cfg);
    assert_eq!(lab.eni_ips(), ips);
    assert_carries(&lab);
    // `stop` checks that the namespace is gone: the run adopted it.
    lab.stop();
    assert_eq!(left_of(&ns), Vec::<PathBuf>::new(), "what the adopting run left");
    assert!(!dir.0.join("state/created.json").exists(), "the record outlived what it named");
}

#[test]
fn a_second_up_on_the_namespace_or_the_state_dir_is_refused_naming_the_first() {
    if !netns_available("a_second_up_on_the_namespace_or_the_state_dir_is_refused_naming_the_first") {
        return;
    }
    let (upstream, _) = chunk_echo_server();
    let ns = unique("plkl");
    let cfg = with_vpc(&config(&ns, &upstream.to_string(), PLAIN), &ns, "queues = 2");
    let lab = Lab::start(&ns, &cfg);
    let state_dir = lab.dir.join("state");
    let first = format!("privlink pid {} (state dir {}, namespace {ns}", lab.pid(), state_dir.display());

    // The same namespace from another state dir: with another device (it
    // would take the resolver's routes, and remove them when it stops), and
    // with the same one (it would join the device as more queues).
    let other = TempDir::new(&format!("{ns}-other"));
    for tun in ["eni1", "eni0"] {
        let (status, err) = run_to_exit(&mut up_command(&other.0, &with_vpc(&cfg, &ns, &format!("tun = \"{tun}\""))));
        assert_eq!(status.code(), Some(2), "tun {tun}: {err}");
        assert!(err.contains(&format!("namespace {ns} is in use by {first}")), "tun {tun}: {err}");
        assert!(!other.0.join("state/created.json").exists(), "tun {tun}: the refused run recorded something");
    }

    // The same state dir with another namespace.
    let ns2 = unique("plkl");
    let _left = Leftovers(ns2.clone());
    let cfg2 = other.0.join("second.toml");
    std::fs::write(&cfg2, config(&ns2, &upstream.to_string(), PLAIN)).unwrap();
    let mut second = Command::new(env!("CARGO_BIN_EXE_privlink"));
    second.args(["up", "--config"]).arg(&cfg2).arg("--state-dir").arg(&state_dir);
    let (status, err) = run_to_exit(&mut second);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("state dir {} is in use by {first}", state_dir.display())), "{err}");
    assert!(!netns::exists(&ns2), "the refused run made its namespace");

    // The first carries on: its routes, its resolver, its ENIs.
    let routes = Command::new("ip").args(["-n", &ns, "route"]).output().unwrap();
    let routes = String::from_utf8_lossy(&routes.stdout);
    for ip in ["10.0.0.2", "169.254.169.253", "10.0.1.4", "10.0.2.4"] {
        assert!(routes.contains(&format!("{ip} dev eni0")), "route to {ip}: {routes}");
    }
    assert_carries(&lab);
    lab.stop();
}

#[test]
fn a_ctrl_c_during_start_up_leaves_nothing_behind() {
    if !netns_available("a_ctrl_c_during_start_up_leaves_nothing_behind") {
        return;
    }
    // Start-up takes some tens of milliseconds here, most of them in `ip`:
    // the tries spread the signal over all of it, and past it.
    const TRIES: u64 = 10;
    const STEP: Duration = Duration::from_millis(12);
    for i in 0..TRIES {
        let ns = unique("plkl");
        let _left = Leftovers(ns.clone());
        let dir = TempDir::new(&ns);
        let mut cmd = up_command(&dir.0, &config(&ns, "127.0.0.1:9", PLAIN));
        // Its own process group, as a terminal's foreground job: a Ctrl-C goes
        // to the whole group, privlink and any `ip` it runs at that moment.
        let mut child = cmd.process_group(0).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        std::thread::sleep(STEP * i as u32);
        // SAFETY: kill(2) on the group this test just made.
        assert_eq!(unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) }, 0);
        let status = wait_exit(&mut child, EXIT_LIMIT);
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        let at = format!("try {i}, SIGINT after {:?}: {status}", STEP * i as u32);
        // Either it stopped cleanly once started, or the signal came before it had done anything.
        assert!(status.success() || status.signal() == Some(libc::SIGINT), "{at}: {err}");
        assert!(!err.contains("error"), "{at}: {err}");
        assert_eq!(left_of(&ns), Vec::<PathBuf>::new(), "{at}: left behind; {err}");
        for f in ["created.json", "lock"] {
            assert!(!dir.0.join("state").join(f).exists(), "{at}: state/{f} left behind");
        }
    }
}

#[test]
fn without_the_privileges_the_message_says_what_is_needed_and_nothing_is_written() {
    if !netns_available("without_the_privileges_the_message_says_what_is_needed_and_nothing_is_written") {
        return;
    }
    let ns = unique("plkl");
    let _left = Leftovers(ns.clone());
    let dir = TempDir::new(&ns);
    // Writable by nobody: a privlink that wrote its state before checking could.
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let cfg = dir.0.join("privlink.toml");
    std::fs::write(&cfg, config(&ns, "127.0.0.1:9", PLAIN)).unwrap();
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", env!("CARGO_BIN_EXE_privlink"), "up", "--config"])
        .arg(&cfg)
        .arg("--state-dir")
        .arg(dir.0.join("state"));
    let (status, err) = run_to_exit(&mut cmd);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains("`privlink up` needs root, or CAP_NET_ADMIN and CAP_SYS_ADMIN")
            && err.contains("(uid 65534) lacks CAP_NET_ADMIN and CAP_SYS_ADMIN"),
        "{err}"
    );
    assert!(!dir.0.join("state").exists(), "state written without the privileges: {err}");
    assert_eq!(left_of(&ns), Vec::<PathBuf>::new(), "{err}");
}

/// The `key:` line of a `/proc/…/status`, its value trimmed.
fn status_field(status: &str, key: &str) -> String {
    let line = status.lines().find(|l| l.starts_with(&format!("{key}:"))).unwrap_or_else(|| panic!("no {key}"));
    line[key.len() + 1..].trim().to_string()
}

#[test]
fn once_running_only_the_teardown_thread_keeps_a_privilege() {
    if !netns_available("once_running_only_the_teardown_thread_keeps_a_privilege") {
        return;
    }
    let (upstream, _) = chunk_echo_server();
    let ns = unique("plkl");
    let lab = Lab::start(&ns, &with_vpc(&config(&ns, &upstream.to_string(), PLAIN), &ns, "queues = 2"));
    // Without privileges the data path carries and answers.
    assert_carries(&lab);

    let pid = lab.pid();
    let main = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let none = "0000000000000000";
    for key in ["CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"] {
        assert_eq!(status_field(&main, key), none, "{key} of privlink up");
    }
    assert_eq!(status_field(&main, "NoNewPrivs"), "1");
    assert_eq!(status_field(&main, "Uid"), "65534\t65534\t65534\t65534");
    assert_eq!(status_field(&main, "Groups"), "");

    // Every thread (the queues' too); one keeps what removing the namespace needs.
    let sys_admin = format!("{:016x}", 1u64 << privlink::edge::privileges::CAP_SYS_ADMIN);
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let name = std::fs::read_to_string(task.join("comm")).unwrap().trim().to_string();
        let status = std::fs::read_to_string(task.join("status")).unwrap();
        let (caps, uid) = if name == "privlink-clean" {
            (sys_admin.as_str(), "0\t0\t0\t0")
        } else {
            (none, "65534\t65534\t65534\t65534")
        };
        for key in ["CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"] {
            let want = if key == "CapInh" || key == "CapAmb" { none } else { caps };
            assert_eq!(status_field(&status, key), want, "{key} of thread {name}");
        }
        assert_eq!(status_field(&status, "NoNewPrivs"), "1", "thread {name}");
        assert_eq!(status_field(&status, "Uid"), uid, "thread {name}");
        threads.push(name);
    }
    threads.sort();
    assert_eq!(threads.iter().filter(|n| *n == "privlink-clean").count(), 1, "{threads:?}");
    assert!(threads.iter().any(|n| n == "privlink-q1"), "the second queue's thread: {threads:?}");
    // And the teardown still removes the namespace (`stop` checks).
    lab.stop();
    assert_eq!(left_of(&ns), Vec::<PathBuf>::new());
}
