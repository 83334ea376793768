//! End to end through a real TUN ENI in a namespace made by each test.
//!
//! What only the kernel shows: offloaded superpackets, TUN queues, the device
//! name, the client's MSS, restarts of `privlink up`. (The rest of the data
//! path runs in memory, without root: `tests/memory_path.rs`.) Each test
//! starts `privlink up` on its own namespace (unique name), talks to a server
//! on loopback playing the public service, and checks what a client inside
//! the VPC sees. Needs root; skips with a message where it cannot run,
//! fails instead under `PRIVLINK_REQUIRE_NETNS=1`.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddrV4, TcpListener, TcpStream};
use std::time::Duration;

use common::{chunk_echo_server, config, counter, netns_available, pattern, unique, Lab, TempDir};

/// These tests carry plain bytes, not TLS: the endpoint must allow that.
const PLAIN: &str = "allow_non_tls = true";
use privlink::lab::probe;
use sha2::{Digest, Sha256};

fn eni(lab: &Lab, i: usize) -> SocketAddrV4 {
    SocketAddrV4::new(lab.eni_ips()[i].parse().unwrap(), 443)
}

/// `privlink up` in a fresh namespace, its one endpoint carrying plain bytes to `upstream`.
fn plain_lab(upstream: impl std::fmt::Display) -> Lab {
    let ns = unique("plkt");
    Lab::start(&ns, &config(&ns, &upstream.to_string(), PLAIN))
}

/// A listener on a free loopback port, playing the service.
fn loopback_listener() -> (TcpListener, std::net::SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

#[test]
fn sixteen_mib_each_way_with_half_close() {
    if !netns_available("sixteen_mib_each_way_with_half_close") {
        return;
    }
    const LEN: usize = 16 << 20;
    let (listener, upstream) = loopback_listener();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut w = s.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            w.write_all(&pattern(2, LEN)).unwrap();
            w.shutdown(Shutdown::Write).unwrap();
        });
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        got
    });
    let lab = plain_lab(upstream);
    let ns = lab.ns.clone();
    let c = probe::tcp_connect(&ns, eni(&lab, 0), Duration::from_secs(5)).unwrap();
    let mut w = c.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        w.write_all(&pattern(1, LEN)).unwrap();
        // The client's FIN must reach the service as EOF while the other direction goes on.
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut got = Vec::new();
    (&c).read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    let server_got = server.join().unwrap();
    let counters = lab.stop();
    assert_eq!(got.len(), LEN, "{counters}");
    assert_eq!(server_got.len(), LEN, "{counters}");
    // A kernel's TCP at full speed (timestamps, SACK, window scaling) meets
    // the RFC 5961 checks and is never judged blind.
    let judged = (counter(&counters, "conn_challenged"), counter(&counters, "conn_rfc5961_dropped"));
    assert_eq!(judged, (0, 0), "{counters}");
    assert_eq!(Sha256::digest(&got), Sha256::digest(pattern(2, LEN)), "service -> client bytes differ");
    assert_eq!(Sha256::digest(&server_got), Sha256::digest(pattern(1, LEN)), "client -> service bytes differ");
}

#[test]
fn two_queues_keep_each_flow_whole_and_share_the_connection_limit() {
    if !netns_available("two_queues_keep_each_flow_whole_and_share_the_connection_limit") {
        return;
    }
    // Enough flows that the kernel's hash puts some on each queue (all 25 on one: 1 in 2^24).
    const LIMIT: usize = 25;
    let (upstream, ended) = chunk_echo_server();
    let ns = unique("plkt");
    let dir = TempDir::new(&format!("{ns}-flow"));
    let flow_log = dir.0.join("flow.log");
    let cfg = config(&ns, &upstream.to_string(), &format!("{PLAIN}\nmax_connections = {LIMIT}"))
        .replace(&format!("netns = \"{ns}\""), &format!("netns = \"{ns}\"\nqueues = 2"))
        + &format!("\n[flow_logs]\nfile = \"{}\"\ninterval = 60\n", flow_log.display());
    let lab = Lab::start(&ns, &cfg);
    // A flow is its ENI address and client port: the kernel may give two
    // connections to different ENIs the same ephemeral port.
    let mut flows = Vec::new();
    let echo = |c: &mut TcpStream, seed: u64| {
        let sent = pattern(seed, 3000);
        c.write_all(&sent).unwrap();
        let mut back = vec![0u8; sent.len()];
        c.read_exact(&mut back).unwrap();
        assert!(back == sent, "connection {seed}: the echo differs");
    };
    let mut conns: Vec<TcpStream> = (0..LIMIT)
        .map(|i| {
            let mut c = probe::tcp_connect(&ns, eni(&lab, i % 2), Duration::from_secs(5)).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            echo(&mut c, i as u64);
            flows.push((c.peer_addr().unwrap(), c.local_addr().unwrap().port()));
            c
        })
        .collect();
    // The limit is the endpoint's, not each queue's: one more is not answered.
    let extra = probe::tcp_connect(&ns, eni(&lab, 0), Duration::from_millis(1500));
    assert!(extra.is_err(), "connection {} past max_connections = {LIMIT} was accepted", LIMIT + 1);
    // The TUN forgets a flow's queue after 3 s idle; the flow's hash must lead back to the same stack.
    std::thread::sleep(Duration::from_secs(4));
    for (i, c) in conns.iter_mut().enumerate() {
        echo(c, 100 + i as u64);
    }
    // A slot given back on one queue can be taken on the other (the client retries its SYN).
    drop(conns.pop());
    ended.recv_timeout(Duration::from_secs(10)).unwrap();
    for i in 0..4 {
        let mut c = probe::tcp_connect(&ns, eni(&lab, i % 2), Duration::from_secs(5)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        echo(&mut c, 200 + i as u64);
        flows.push((c.peer_addr().unwrap(), c.local_addr().unwrap().port()));
        drop(c);
        ended.recv_timeout(Duration::from_secs(10)).unwrap();
    }
    drop(conns);
    let counters = lab.stop();
    let per_queue: Vec<u64> = counters
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("conn_accepted_per_queue="))
        .expect("per-queue counts")
        .split(',')
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(per_queue.len(), 2, "{counters}");
    assert!(per_queue.iter().all(|&n| n > 0), "a queue took no flow: {counters}");
    assert_eq!(per_queue.iter().sum::<u64>(), (LIMIT + 4) as u64, "{counters}");
    assert!(counter(&counters, "connection_limit") >= 1, "{counters}");
    assert_eq!(counter(&counters, "conn_refused"), 0, "{counters}");
    // Both queues' guards feed one flow log: every flow has its inbound
    // record, and never two in one capture window (windows are aligned to
    // the minute, so a flow crossing one has a record in each).
    let log = std::fs::read_to_string(&flow_log).unwrap();
    for (eni_address, port) in flows {
        let windows: Vec<&str> = log
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .filter(|f| {
                f.len() == 14 && f[4] == eni_address.ip().to_string() && f[5] == port.to_string() && f[6] == "443"
            })
            .map(|f| f[10])
            .collect();
        let mut unique = windows.clone();
        unique.sort();
        unique.dedup();
        assert!(
            !windows.is_empty() && unique.len() == windows.len(),
            "flow {port} -> {eni_address}: inbound records in windows {windows:?} of\n{log}"
        );
    }
}

#[test]
fn a_syn_smoltcp_refuses_leaves_no_listener_behind() {
    if !netns_available("a_syn_smoltcp_refuses_leaves_no_listener_behind") {
        return;
    }
    // SYN|FIN passes as a new flow's SYN, so its upstream is connected and a
    // socket listens for it; smoltcp then refuses the packet (no segment may
    // carry both). The listener is removed and recycled: the next connections
    // must get working sockets. (A SYN|RST would connect nothing: it opens no
    // tracked flow, so its SYN-ACK could not leave.)
    let (upstream, ended) = chunk_echo_server();
    let lab = plain_lab(upstream);
    let ns = lab.ns.clone();
    let target = eni(&lab, 0);
    let raw = probe::socket_in(&ns, || {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::RAW, Some(socket2::Protocol::TCP))?;
        s.set_header_included_v4(true)?;
        Ok(s)
    })
    .unwrap();
    let mut syn_fin = Vec::new();
    etherparse::PacketBuilder::ipv4([10, 0, 0, 1], target.ip().octets(), 64)
        .tcp(40000, 443, 7, 65535)
        .syn()
        .fin()
        .write(&mut syn_fin, &[])
        .unwrap();
    raw.send_to(&syn_fin, &std::net::SocketAddr::V4(target).into()).unwrap();
    // privlink connected the upstream, smoltcp refused the SYN, and the
    // connection was removed (its upstream closed): the listener is a spare now.
    ended.recv_timeout(Duration::from_secs(10)).expect("the SYN|FIN's upstream connection was never closed");
    // The other ENI first: a listener left open refuses to listen elsewhere.
    for i in 0..3 {
        let mut c = probe::tcp_connect(&ns, eni(&lab, 1 - i % 2), Duration::from_secs(5)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(format!("round {i}").as_bytes()).unwrap();
        let mut back = [0u8; 7];
        c.read_exact(&mut back).unwrap();
        assert_eq!(&back, format!("round {i}").as_bytes());
    }
    lab.stop();
}

#[test]
fn the_client_segment_is_a_whole_number_of_window_units() {
    if !netns_available("the_client_segment_is_a_whole_number_of_window_units") {
        return;
    }
    let (_listener, upstream) = loopback_listener();
    let lab = plain_lab(upstream);
    let ns = lab.ns.clone();
    let c = probe::tcp_connect(&ns, eni(&lab, 0), Duration::from_secs(5)).unwrap();
    // What the client's kernel took from the ENI's SYN-ACK.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `info`.
    let rc = unsafe {
        libc::getsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&c),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    // The ENI's window scale: the low nibble of a C bitfield (little-endian).
    let wscale = info.tcpi_snd_rcv_wscale & 0x0f;
    assert!(wscale >= 4, "the window must reach past 64 KiB; scale {wscale}");
    // Full segments that end on a window unit keep the window's right edge in
    // place (smoltcp rounds its window down to a unit).
    let unit = 1u32 << wscale;
    assert_eq!(info.tcpi_snd_mss % unit, 0, "MSS {} is not a multiple of {unit}", info.tcpi_snd_mss);
    assert!(info.tcpi_snd_mss > 8500 - 40 - unit, "MSS {} for MTU 8500", info.tcpi_snd_mss);
    drop(c);
    lab.stop();
}

#[test]
fn restart_keeps_the_allocated_ips_and_ids() {
    if !netns_available("restart_keeps_the_allocated_ips_and_ids") {
        return;
    }
    let ns = unique("plkt");
    let cfg = config(&ns, "127.0.0.1:9", PLAIN);
    let dir = TempDir::new(&ns);
    let lab = Lab::start_in(&ns, dir.0.clone(), &cfg);
    let ids: Vec<String> =
        lab.stdout().into_iter().filter(|l| l.trim_start().starts_with("eni-") || l.starts_with("endpoint ")).collect();
    assert_eq!(lab.eni_ips(), ["10.0.1.4", "10.0.2.4"], "lowest assignable addresses, the five reserved skipped");
    lab.stop();

    let lab = Lab::start_in(&ns, dir.0.clone(), &cfg);
    let again: Vec<String> =
        lab.stdout().into_iter().filter(|l| l.trim_start().starts_with("eni-") || l.starts_with("endpoint ")).collect();
    assert_eq!(again, ids, "same endpoint id, ENI ids and IPs after a restart");
    lab.stop();
}

#[test]
fn bad_config_is_refused_before_anything_is_touched() {
    let ns = unique("plkt");
    let dir = TempDir::new(&ns);
    let cfg = dir.0.join("bad.toml");
    std::fs::write(&cfg, config(&ns, "127.0.0.1:9", "").replace("10.0.2.0/24", "10.9.2.0/24")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_privlink"))
        .args(["up", "--config"])
        .arg(&cfg)
        .arg("--state-dir")
        .arg(dir.0.join("state"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:15: subnet[1].cidr: 10.9.2.0/24 is not inside the VPC 10.0.0.0/16"), "{err}");
    assert!(!privlink::edge::netns::exists(&ns), "a bad config created the namespace");
    assert!(!dir.0.join("state").exists(), "a bad config wrote state");
}

#[test]
fn check_prints_the_plan_without_touching_anything() {
    let ns = unique("plkt");
    let dir = TempDir::new(&ns);
    let cfg = dir.0.join("lab.toml");
    std::fs::write(&cfg, config(&ns, "127.0.0.1:9", "ips = { \"subnet-b\" = \"10.0.2.77\" }")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_privlink"))
        .args(["check", "--config"])
        .arg(&cfg)
        .arg("--state-dir")
        .arg(dir.0.join("state"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text} {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("10.0.1.4 in subnet-a (us-east-1a)"), "{text}");
    assert!(text.contains("10.0.2.77 in subnet-b (us-east-1b)"), "{text}");
    assert!(text.contains("upstream 127.0.0.1:9"), "{text}");
    assert!(text.contains("security group sg-endpoint\n  ingress allow tcp 443 from 10.0.0.0/16"), "{text}");
    assert!(text.contains("dns ec2.us-east-1.amazonaws.com"), "{text}");
    assert!(!privlink::edge::netns::exists(&ns));
    assert!(!dir.0.join("state").exists(), "check wrote state");
}
