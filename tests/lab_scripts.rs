//! netns-scripts/: the hand-built lab is idempotent, routes instances through
//! the VPC namespace to the ENI, and comes down completely.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddrV4, TcpListener};
use std::process::Command;
use std::time::Duration;

use common::{config, netns_available, unique, Lab};
use privlink::edge::netns;
use privlink::lab::probe;

fn script(name: &str, prefix: &str) -> String {
    let out = Command::new("bash")
        .arg(format!("{}/netns-scripts/{name}", env!("CARGO_MANIFEST_DIR")))
        .env("PLK_LAB_PREFIX", prefix)
        .output()
        .unwrap();
    assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Removes the lab even if the test panics.
struct LabGuard(String);

impl Drop for LabGuard {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(format!("{}/netns-scripts/lab-down.sh", env!("CARGO_MANIFEST_DIR")))
            .env("PLK_LAB_PREFIX", &self.0)
            .output();
    }
}

#[test]
fn lab_is_idempotent_routes_to_the_eni_and_cleans_up() {
    if !netns_available("lab_is_idempotent_routes_to_the_eni_and_cleans_up") {
        return;
    }
    let p = unique("plkl");
    let guard = LabGuard(p.clone());
    let first = script("lab-up.sh", &p);
    assert!(first.contains(&format!("created namespace {p}-vpc")), "{first}");
    let second = script("lab-up.sh", &p);
    assert!(!second.contains("created"), "second run changed something: {second}");
    let names = [format!("{p}-vpc"), format!("{p}-a"), format!("{p}-b")];
    for n in &names {
        assert!(netns::exists(n), "{n} missing");
    }

    // privlink in the lab's VPC namespace; an instance in subnet b reaches the ENI in subnet a.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = listener.local_addr().unwrap().to_string();
    let vpc = &names[0];
    let lab = Lab::start(
        vpc,
        &config(
            vpc,
            &upstream,
            "ips = { \"subnet-a\" = \"10.0.1.49\", \"subnet-b\" = \"10.0.2.49\" }\nallow_non_tls = true",
        ),
    );
    let mut c =
        probe::tcp_connect(&names[2], SocketAddrV4::new([10, 0, 1, 49].into(), 443), Duration::from_secs(5)).unwrap();
    let (mut s, peer) = listener.accept().unwrap();
    assert!(peer.ip().is_loopback(), "the service sees privlink's host-side socket");
    c.write_all(b"from instance b").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut got = String::new();
    s.read_to_string(&mut got).unwrap();
    assert_eq!(got, "from instance b");
    drop(s);
    // An instance in subnet a reaches the ENI of its own subnet: the router answers ARP for it.
    let mut c =
        probe::tcp_connect(&names[1], SocketAddrV4::new([10, 0, 1, 49].into(), 443), Duration::from_secs(5)).unwrap();
    let (mut s, _) = listener.accept().unwrap();
    c.write_all(b"from instance a").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut got = String::new();
    s.read_to_string(&mut got).unwrap();
    assert_eq!(got, "from instance a");
    drop(s);
    // privlink found the namespace there, so it must leave it there.
    lab.stop_keeping_netns();
    let routes = Command::new("ip").args(["-n", vpc, "route"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&routes.stdout).contains("eni0"), "the ENI's routes outlived privlink");

    let down = script("lab-down.sh", &p);
    assert!(down.contains(&format!("removed namespace {p}-vpc")), "{down}");
    script("lab-down.sh", &p);
    for n in &names {
        assert!(!netns::exists(n), "{n} left behind");
        assert!(!std::path::Path::new(&format!("/etc/netns/{n}")).exists(), "/etc/netns/{n} left behind");
    }
    drop(guard);
}
