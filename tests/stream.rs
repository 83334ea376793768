//! The stream layer end to end: SNI policy on the first flight, the endpoint
//! policy at connection time, and bandwidth shaping, through a real ENI in a
//! namespace made by each test.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddrV4, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{config, connect_from, netns_available, unique, Lab};
use privlink::lab::probe;
use privlink::lab::standin::TlsStandIn;

const EC2: &str = "ec2.us-east-1.amazonaws.com";

fn eni(lab: &Lab) -> SocketAddrV4 {
    SocketAddrV4::new(lab.eni_ips()[0].parse().unwrap(), 443)
}

/// The ClientHello a real rustls client sends for `name`.
fn client_hello(name: &str, ca: &rustls::pki_types::CertificateDer<'static>) -> Vec<u8> {
    let cfg = probe::client_config(ca).unwrap();
    let mut conn = rustls::ClientConnection::new(cfg, name.to_string().try_into().unwrap()).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

/// Whether the stream was reset: a read ends in ECONNRESET (or, racing it, EOF).
fn was_reset(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Err(e) => e.kind() == ErrorKind::ConnectionReset,
        Ok(0) => true,
        Ok(_) => false,
    }
}

#[test]
fn sni_policy_reads_the_client_hello_without_terminating_tls() {
    if !netns_available("sni_policy_reads_the_client_hello_without_terminating_tls") {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let standin = rt.block_on(TlsStandIn::start(EC2, 0)).unwrap();
    let partner = rt.block_on(TlsStandIn::start("api.partner.example", 0)).unwrap();
    let ns = unique("plkq");
    // Two endpoints: ec2 (its own names only) and a custom service that also accepts api.partner.example.
    let mut cfg = config(&ns, &standin.addr.to_string(), "hello_timeout = \"1s\"");
    cfg.push_str(&format!(
        "\n[[endpoint]]\nid = \"vpce-0partner000000001\"\nservice = \"com.example.partner\"\ndns_names = [\"partner.example\"]\nsubnets = [\"subnet-a\"]\nips = {{ \"subnet-a\" = \"10.0.1.77\" }}\nupstream = \"{}\"\nsecurity_groups = [\"sg-endpoint\"]\nallowed_sni = [\"api.partner.example\"]\n",
        partner.addr
    ));
    let lab = Lab::start(&ns, &cfg);
    let ec2 = eni(&lab);
    let partner_eni = SocketAddrV4::new([10, 0, 1, 77].into(), 443);

    // The service's own name passes and the client sees the service's certificate.
    let ok = probe::https_get(&ns, ec2, EC2, &standin.cert.ca, "/").unwrap();
    assert_eq!(ok.peer_certs.first(), Some(&standin.cert.leaf));
    // A name in allowed_sni passes.
    let ok = probe::https_get(&ns, partner_eni, "api.partner.example", &partner.cert.ca, "/").unwrap();
    assert!(ok.response.starts_with("HTTP/1.1 200"), "{}", ok.response);

    // Another name: the stream is reset before a byte reaches the service.
    let mut c = probe::tcp_connect(&ns, ec2, Duration::from_secs(5)).unwrap();
    c.write_all(&client_hello("evil.example.com", &standin.cert.ca)).unwrap();
    assert!(was_reset(&mut c), "a foreign SNI must be reset");
    let mut c = probe::tcp_connect(&ns, partner_eni, Duration::from_secs(5)).unwrap();
    c.write_all(&client_hello(EC2, &partner.cert.ca)).unwrap();
    assert!(was_reset(&mut c), "ec2's name is not the partner endpoint's");

    // A ClientHello split over many segments still works.
    let hello = client_hello(EC2, &standin.cert.ca);
    let mut c = probe::tcp_connect(&ns, ec2, Duration::from_secs(5)).unwrap();
    c.set_nodelay(true).unwrap();
    for chunk in hello.chunks(hello.len() / 7 + 1) {
        c.write_all(chunk).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut first = [0u8; 1];
    c.read_exact(&mut first).unwrap();
    assert_eq!(first[0], 0x16, "the service answered with a TLS handshake record");

    // Not TLS: reset (allow_non_tls is off).
    let mut c = probe::tcp_connect(&ns, ec2, Duration::from_secs(5)).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(was_reset(&mut c), "plain HTTP must be reset");

    // A hello that never completes times out (hello_timeout = 1s here).
    let mut c = probe::tcp_connect(&ns, ec2, Duration::from_secs(5)).unwrap();
    c.write_all(&hello[..3]).unwrap();
    let t = Instant::now();
    assert!(was_reset(&mut c), "an incomplete hello must be reset");
    assert!(t.elapsed() >= Duration::from_millis(500), "reset before the hello timeout");
    lab.stop();
}

#[test]
fn endpoint_policy_allows_and_denies_by_source_ip() {
    if !netns_available("endpoint_policy_allows_and_denies_by_source_ip") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            drop(s);
        }
    });
    let policy = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Principal":"*","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:VpcSourceIp":"10.0.0.0/16"}}},
        {"Effect":"Deny","Principal":"*","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:VpcSourceIp":"10.0.3.0/24"}}}]}"#;
    let ns = unique("plkq");
    let lab = Lab::start(&ns, &config(&ns, &upstream, &format!("allow_non_tls = true\npolicy = '''{policy}'''")));
    for src in ["10.0.1.10", "10.0.3.10"] {
        common::add_address(&ns, src);
    }
    let dst = eni(&lab);
    assert!(connect_from(&ns, "10.0.1.10", dst, Duration::from_secs(3)).is_ok(), "allowed by the Allow statement");
    assert!(connect_from(&ns, "10.0.0.1", dst, Duration::from_secs(3)).is_ok(), "the router is in the VPC CIDR");
    let denied = connect_from(&ns, "10.0.3.10", dst, Duration::from_secs(3)).unwrap_err();
    assert_eq!(denied.kind(), ErrorKind::ConnectionRefused, "an explicit Deny wins: {denied}");
    lab.stop();
}

/// A loopback service that sends as fast as it can to each connection until it is closed.
fn firehose() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let chunk = Arc::new(vec![0x5au8; 64 << 10]);
        for s in l.incoming().flatten() {
            let chunk = chunk.clone();
            std::thread::spawn(move || {
                let mut s = s;
                while s.write_all(&chunk).is_ok() {}
            });
        }
    });
    addr
}

/// Bytes read on each stream over `secs`, after a warm-up that spends the burst.
fn drain(streams: Vec<TcpStream>, warmup: Duration, secs: Duration) -> Vec<u64> {
    let handles: Vec<_> = streams
        .into_iter()
        .map(|mut s| {
            std::thread::spawn(move || {
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut buf = vec![0u8; 64 << 10];
                let start = Instant::now();
                let mut counted = 0u64;
                while start.elapsed() < warmup + secs {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) if start.elapsed() >= warmup => counted += n as u64,
                        Ok(_) => {}
                    }
                }
                let _ = s.shutdown(Shutdown::Both);
                counted
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn shaping_holds_the_rate_and_shares_it_fairly() {
    if !netns_available("shaping_holds_the_rate_and_shares_it_fairly") {
        return;
    }
    const MBIT: u64 = 80;
    let upstream = firehose();
    let ns = unique("plkq");
    let lab = Lab::start(&ns, &config(&ns, &upstream, &format!("allow_non_tls = true\nbandwidth = \"{MBIT}Mbit\"")));
    let rate = MBIT * 1_000_000 / 8; // bytes per second
    let (warm, secs) = (Duration::from_millis(500), Duration::from_secs(2));

    // One greedy stream: the rate holds (tolerant: the window is short).
    let one = drain(vec![probe::tcp_connect(&ns, eni(&lab), Duration::from_secs(5)).unwrap()], warm, secs);
    let got = one[0] as f64 / secs.as_secs_f64();
    assert!((0.75..1.25).contains(&(got / rate as f64)), "one stream got {got:.0} B/s for a {rate} B/s rate");

    // Four greedy streams share it: each near a quarter, the sum near the rate.
    let streams = (0..4).map(|_| probe::tcp_connect(&ns, eni(&lab), Duration::from_secs(5)).unwrap()).collect();
    let four = drain(streams, warm, secs);
    let total: u64 = four.iter().sum();
    let total_rate = total as f64 / secs.as_secs_f64();
    assert!((0.75..1.25).contains(&(total_rate / rate as f64)), "four streams got {total_rate:.0} B/s in all");
    for (i, &b) in four.iter().enumerate() {
        let share = b as f64 / total as f64;
        assert!((0.15..0.35).contains(&share), "stream {i} got {:.0}% of the rate: {four:?}", share * 100.0);
    }
    lab.stop();
}

#[test]
fn an_idle_client_is_not_a_slow_hello_where_plain_tcp_is_carried() {
    if !netns_available("an_idle_client_is_not_a_slow_hello_where_plain_tcp_is_carried") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let ns = unique("plkq");
    let lab = Lab::start(&ns, &config(&ns, &upstream, "allow_non_tls = true\nhello_timeout = \"1s\""));
    let mut c = probe::tcp_connect(&ns, eni(&lab), Duration::from_secs(5)).unwrap();
    // Silent past the hello timeout: still carried.
    std::thread::sleep(Duration::from_millis(1500));
    c.write_all(b"late but fine").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 13];
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"late but fine");
    lab.stop();
}
