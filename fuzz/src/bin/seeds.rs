//! Writes the seed inputs of every target into `DIR/<target>/` (run it with
//! `cargo run -p privlink-fuzz --features seeds --bin seeds -- DIR`): real
//! packets (etherparse) and whole TCP conversations in the pipeline's record
//! format, real DNS queries for the fixture's names, real ClientHellos
//! (rustls writing into a `Vec`), and the repo's configs with variants.
//!
//! Seeds only start AFL off; the committed corpus is AFL's minimized queue
//! (`afl-cmin`) after a run, which keeps whatever of these still adds coverage.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use etherparse::{PacketBuilder, TcpOptionElement};
use privlink_core::config::DEMO_CONFIG;
use privlink_fuzz::fixture;
use privlink_fuzz::records::encode;

/// Pipeline control bits (see the target's doc).
const IN: u8 = 0;
const OUT: u8 = 1;
const TRUSTED: u8 = 2;
/// A superpacket of GSO size 8460 (index 3).
const GSO_8460: u8 = 4 | 3 << 3;

const CLIENT: [u8; 4] = [10, 0, 1, 10];
const INSTANCE: [u8; 4] = [10, 0, 2, 10];
const RESOLVER: [u8; 4] = [10, 0, 0, 2];

fn main() {
    let dir = std::env::args().nth(1).expect("usage: seeds DIR");
    let dir = Path::new(&dir);
    let hellos = client_hellos();
    write(dir, "pipeline", pipeline_seeds(&hellos));
    write(dir, "dns_responder", dns_seeds());
    write(dir, "client_hello", hello_seeds(&hellos));
    write(dir, "config", config_seeds());
}

fn write(dir: &Path, target: &str, seeds: Vec<(String, Vec<u8>)>) {
    let d = dir.join(target);
    fs::create_dir_all(&d).expect("the seed directory can be made");
    for (name, bytes) in &seeds {
        fs::write(d.join(name), bytes).expect("a seed file can be written");
    }
    println!("{target}: {} seeds in {}", seeds.len(), d.display());
}

/// ENI addresses of the fixture: the demo endpoint's (subnets a, b), then the custom one's (c, a).
fn enis() -> Vec<[u8; 4]> {
    fixture::plan().eni_ips().map(|(ip, _)| ip.octets()).collect()
}

struct Tcp {
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
}

impl Tcp {
    /// A segment of this flow (reversed when `out`): flags, seq, ack, payload.
    fn seg(&self, out: bool, flags: &str, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
        let (s, d, sp, dp) = if out {
            (self.dst, self.src, self.dport, self.sport)
        } else {
            (self.src, self.dst, self.sport, self.dport)
        };
        let mut b = PacketBuilder::ipv4(s, d, 64).tcp(sp, dp, seq, 64240);
        for f in flags.chars() {
            b = match f {
                'S' => b.syn(),
                'A' => b.ack(ack),
                'R' => b.rst(),
                'F' => b.fin(),
                'P' => b.psh(),
                _ => unreachable!("a flag letter"),
            };
        }
        if flags.contains('S') {
            b = b
                .options(&[TcpOptionElement::MaximumSegmentSize(1460), TcpOptionElement::WindowScale(7)])
                .expect("options fit");
        }
        let mut v = Vec::new();
        b.write(&mut v, payload).expect("a packet builds");
        v
    }
}

fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(src, dst, 64).udp(sport, dport).write(&mut v, payload).expect("a packet builds");
    v
}

fn records(rs: &[(u8, u8, Vec<u8>)]) -> Vec<u8> {
    let mut v = Vec::new();
    for (c, s, b) in rs {
        encode(&mut v, *c, *s, b);
    }
    v
}

fn pipeline_seeds(hellos: &[(String, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    let e = enis();
    let ec2 = Tcp { src: CLIENT, dst: e[0], sport: 40000, dport: 443 };
    let hello = &hellos[0].1;
    let mut seeds = vec![
        ("syn".to_string(), records(&[(IN, 0, ec2.seg(false, "S", 1000, 0, &[]))])),
        (
            "conversation".into(),
            records(&[
                (IN, 0, ec2.seg(false, "S", 1000, 0, &[])),
                (OUT, 1, ec2.seg(true, "SA", 5000, 1001, &[])),
                (IN, 8, ec2.seg(false, "A", 1001, 5001, &[])),
                (IN, 8, ec2.seg(false, "PA", 1001, 5001, hello)),
                (OUT, 8, ec2.seg(true, "A", 5001, 1001 + hello.len() as u32, &[])),
                (IN, 8, ec2.seg(false, "R", 1001 + hello.len() as u32 + 100, 0, &[])),
                (IN, 8, ec2.seg(false, "SA", 7, 5001, &[])),
                (IN, 8, ec2.seg(false, "A", 1001 + hello.len() as u32, 9_000_000, &[])),
                (IN, 8, ec2.seg(false, "FA", 1001 + hello.len() as u32, 5001, &[])),
                (IN, 8, ec2.seg(false, "R", 1002 + hello.len() as u32, 0, &[])),
            ]),
        ),
        (
            "expired".into(),
            records(&[
                (IN, 0, ec2.seg(false, "S", 1000, 0, &[])),
                (OUT, 1, ec2.seg(true, "SA", 5000, 1001, &[])),
                (IN, 255, ec2.seg(false, "A", 1001, 5001, &[])),
                (OUT, 200, ec2.seg(true, "A", 5001, 1001, b"late")),
            ]),
        ),
        ("superpacket".into(), records(&[(IN | TRUSTED | GSO_8460, 0, ec2.seg(false, "A", 1, 1, &vec![0x17; 20000]))])),
    ];
    // The custom endpoint: the NACL of subnet c, the group rule for the instance, its second port.
    let api_c = Tcp { src: INSTANCE, dst: e[2], sport: 50000, dport: 8443 };
    let api_a = Tcp { src: CLIENT, dst: e[2], sport: 50001, dport: 8443 };
    let api_443 = Tcp { src: [10, 0, 1, 77], dst: e[3], sport: 50002, dport: 443 };
    seeds.push((
        "custom_endpoint".into(),
        records(&[
            (IN, 0, api_c.seg(false, "S", 1, 0, &[])),
            (OUT, 1, api_c.seg(true, "SA", 9, 2, &[])),
            (IN, 1, api_a.seg(false, "S", 1, 0, &[])),
            (IN, 1, api_443.seg(false, "S", 1, 0, &[])),
        ]),
    ));
    let dns = Tcp { src: CLIENT, dst: RESOLVER, sport: 40001, dport: 53 };
    seeds.push(("dns_tcp".into(), records(&[(IN, 0, dns.seg(false, "S", 1, 0, &[]))])));
    let query = query(&fixture::plan().endpoints[0].dns_names()[0], 1, None);
    seeds.push(("dns_udp".into(), records(&[(IN, 0, udp(CLIENT, RESOLVER, 5353, 53, &query))])));
    seeds.push(("udp_to_eni".into(), records(&[(IN, 0, udp(CLIENT, e[0], 5353, 443, b"x"))])));
    let mut icmp = Vec::new();
    PacketBuilder::ipv4(CLIENT, e[0], 64).icmpv4_echo_request(7, 1).write(&mut icmp, b"ping").unwrap();
    seeds.push(("icmp".into(), records(&[(IN, 0, icmp)])));
    let mut v6 = Vec::new();
    PacketBuilder::ipv6([0xfd; 16], [0xfe; 16], 64).tcp(5000, 443, 1, 100).syn().write(&mut v6, &[]).unwrap();
    seeds.push(("ipv6".into(), records(&[(IN, 0, v6)])));
    let mut frag = ec2.seg(false, "A", 1, 1, b"fragment");
    frag[6] |= 0x20; // more fragments
    seeds.push(("fragment".into(), records(&[(IN, 0, frag)])));
    let mut bad = ec2.seg(false, "A", 1, 1, b"abc");
    let n = bad.len() - 1;
    bad[n] ^= 1;
    seeds.push(("bad_checksum".into(), records(&[(IN, 0, bad.clone()), (IN | TRUSTED, 0, bad)])));
    let spoof = Tcp { src: [198, 51, 100, 7], dst: e[0], sport: 1, dport: 443 };
    seeds.push(("spoofed".into(), records(&[(IN, 0, spoof.seg(false, "S", 1, 0, &[]))])));
    let port80 = Tcp { src: CLIENT, dst: e[0], sport: 1, dport: 80 };
    seeds.push(("port80".into(), records(&[(IN, 0, port80.seg(false, "S", 1, 0, &[]))])));
    seeds
}

/// A DNS query: id 0x1234, RD, one question; `edns` the OPT's UDP size.
fn query(name: &str, qtype: u16, edns: Option<u16>) -> Vec<u8> {
    let mut v = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())];
    for label in name.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        v.push(label.len() as u8);
        v.extend_from_slice(label.as_bytes());
    }
    v.push(0);
    v.extend_from_slice(&qtype.to_be_bytes());
    v.extend_from_slice(&1u16.to_be_bytes());
    if let Some(size) = edns {
        v.extend_from_slice(&[0, 0, 41]);
        v.extend_from_slice(&size.to_be_bytes());
        v.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
    v
}

fn dns_seeds() -> Vec<(String, Vec<u8>)> {
    let plan = fixture::plan();
    let mut names: Vec<String> = plan.endpoints.iter().flat_map(|e| e.dns_names()).collect();
    names.extend(["nope.ec2.us-east-1.vpce.amazonaws.com".into(), "example.org".into(), "API.Example.COM".into()]);
    let mut seeds = Vec::new();
    let mut add = |name: String, mode: u8, msg: Vec<u8>| {
        let mut v = vec![mode];
        v.extend_from_slice(&msg);
        seeds.push((name, v));
    };
    for (i, n) in names.iter().enumerate() {
        add(format!("a_{i}"), 0, query(n, 1, None));
    }
    add("aaaa_tcp".into(), 1, query(&names[0], 28, None));
    add("any_edns".into(), 0, query(&names[0], 255, Some(4096)));
    add("soa_apex".into(), 0, query("ec2.us-east-1.amazonaws.com", 6, Some(1232)));
    add("axfr_tcp".into(), 1, query("ec2.us-east-1.amazonaws.com", 252, None));
    add("outside_refused".into(), 2, query("example.org", 1, None));
    let mut ch = query(&names[0], 1, None);
    let n = ch.len();
    ch[n - 1] = 3; // class CH
    add("class_ch".into(), 0, ch);
    let mut badvers = query(&names[0], 1, Some(1232));
    let n = badvers.len();
    badvers[n - 5] = 1; // EDNS version 1
    add("badvers".into(), 0, badvers);
    let mut notify = query(&names[0], 6, None);
    notify[2] = 0x20; // opcode NOTIFY
    add("notimp".into(), 0, notify);
    let mut response = query(&names[0], 1, None);
    response[2] |= 0x80;
    add("response".into(), 0, response);
    let mut pointer = query(&names[0], 1, None);
    pointer.truncate(12);
    pointer.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
    add("pointer".into(), 0, pointer);
    add("short".into(), 0, vec![0x12, 0x34, 1]);
    // Streams: several framed queries in one connection, read in varied pieces.
    let mut stream = Vec::new();
    for q in [query(&names[0], 1, None), query("example.org", 1, None), query(&names[1], 28, Some(512))] {
        stream.extend_from_slice(&(q.len() as u16).to_be_bytes());
        stream.extend_from_slice(&q);
    }
    add("stream_whole".into(), 4 | 7 << 3, stream.clone());
    add("stream_bytes".into(), 4, stream.clone());
    add("stream_privacy".into(), 4 | 2 | 4 << 3, stream);
    add("stream_bad_length".into(), 4, vec![0, 3, 1, 2, 3]);
    seeds
}

/// Real ClientHellos: rustls clients (TLS 1.3 and 1.2, several names, an
/// IP address so no SNI) writing their first flight into a `Vec`.
fn client_hellos() -> Vec<(String, Vec<u8>)> {
    use rustls::pki_types::ServerName;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: [(&str, &[&rustls::SupportedProtocolVersion]); 2] =
        [("tls13", &[&rustls::version::TLS13, &rustls::version::TLS12]), ("tls12", &[&rustls::version::TLS12])];
    let names = ["ec2.us-east-1.amazonaws.com", "api.example.com", "other.example.org", "10.0.1.49"];
    let mut out = Vec::new();
    for (vname, v) in versions {
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(v)
            .expect("ring supports these versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let config = Arc::new(config);
        for name in names {
            let server = ServerName::try_from(name.to_string()).expect("a server name");
            let mut conn = rustls::ClientConnection::new(config.clone(), server).expect("a client connection");
            let mut bytes = Vec::new();
            while conn.wants_write() {
                conn.write_tls(&mut bytes).expect("writes into a Vec");
            }
            out.push((format!("{vname}_{name}"), bytes));
        }
    }
    out
}

fn hello_seeds(hellos: &[(String, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for (i, (name, bytes)) in hellos.iter().enumerate() {
        // Alternate whole flights and pieces, both endpoints, FIN or not.
        let control = [7u8, 0x08 | 7, 2, 0x08 | 0x20 | 3][i % 4];
        let mut v = vec![control];
        v.extend_from_slice(bytes);
        seeds.push((name.clone(), v));
    }
    let mut cut = vec![0x20 | 7];
    cut.extend_from_slice(&hellos[0].1[..hellos[0].1.len() / 2]);
    seeds.push(("truncated_fin".into(), cut));
    seeds.push(("http".into(), b"\x07GET / HTTP/1.1\r\nHost: ec2.us-east-1.amazonaws.com\r\n\r\n".to_vec()));
    seeds.push(("http_non_tls".into(), b"\x17GET / HTTP/1.1\r\n\r\n".to_vec()));
    seeds
}

fn config_seeds() -> Vec<(String, Vec<u8>)> {
    let demo = DEMO_CONFIG.to_string();
    let mut seeds = vec![
        ("demo.toml".to_string(), demo.clone()),
        ("fixture.toml".into(), fixture::config_text()),
        ("lab.toml".into(), include_str!("../../../netns-scripts/lab.toml").to_string()),
        (
            "shaped.toml".into(),
            demo.replace(
                "upstream =",
                "bandwidth = \"1.5Gbit\"\nburst = \"1MiB\"\nmax_bandwidth = \"10Gbit\"\nconnect_timeout = \"500ms\"\nhello_timeout = \"2m\"\nmax_connections = 100\nupstream =",
            ),
        ),
        (
            "flow_logs.toml".into(),
            format!("{demo}\n[dns]\nforward = [\"127.0.0.1:5353\"]\n\n[flow_logs]\nstdout = true\ninterval = 600\naccount_id = \"123456789012\"\n"),
        ),
        ("privacy.toml".into(), format!("{demo}\n[dns]\nforward = []\n")),
        (
            "vpc_knobs.toml".into(),
            demo.replace(
                "tun = \"eni0\"",
                "tun = \"eni0\"\nmtu = 1500\nqueues = 2\ndns_support = true\ndns_hostnames = true\ntcp_established_timeout = 3600\nrouter = \"10.0.0.1\"",
            ),
        ),
        ("no_ids.toml".into(), demo.replace("id = \"vpce-0lab00000000000a1\"\n", "").replace("ips = {", "# ips = {")),
        ("bad_cidr.toml".into(), demo.replace("10.0.2.0/24", "10.1.2.0/24")),
        ("bad_syntax.toml".into(), demo.replace("[[endpoint]]", "[[endpoint]")),
        ("s3.toml".into(), demo.replace("com.amazonaws.us-east-1.ec2", "com.amazonaws.us-east-1.s3")),
    ];
    seeds.iter_mut().for_each(|(_, t)| t.push('\n'));
    seeds.into_iter().map(|(n, t)| (n, t.into_bytes())).collect()
}
