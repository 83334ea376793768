//! Clients that run inside a namespace: what an instance in the VPC would do.
//!
//! Used by `privlink demo` and by the tests. Each call runs on a thread that
//! entered the namespace, so its sockets belong to that namespace's network.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use socket2::{Domain, Protocol, Socket, Type};

use crate::edge::netns;

/// What an HTTPS request through the ENI saw.
#[derive(Debug, Clone)]
pub struct HttpsReply {
    /// The TLS version negotiated.
    pub tls_version: String,
    /// The certificate chain the server presented (leaf first).
    pub peer_certs: Vec<CertificateDer<'static>>,
    /// The whole HTTP response.
    pub response: String,
    /// Time from connect to the last byte.
    pub elapsed: Duration,
}

fn io_other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// TLS client config trusting only `ca`.
pub fn client_config(ca: &CertificateDer<'static>) -> io::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).map_err(io_other)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io_other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// `GET path` over HTTPS to `addr` with SNI `name`, verifying the server
/// against `ca`, from inside namespace `ns`.
pub fn https_get(
    ns: &str,
    addr: SocketAddrV4,
    name: &str,
    ca: &CertificateDer<'static>,
    path: &str,
) -> io::Result<HttpsReply> {
    let cfg = client_config(ca)?;
    let server_name = ServerName::try_from(name.to_string()).map_err(io_other)?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n");
    netns::run_in(ns, move || -> io::Result<HttpsReply> {
        let start = Instant::now();
        let tcp = TcpStream::connect_timeout(&SocketAddr::V4(addr), Duration::from_secs(5))?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        let conn = rustls::ClientConnection::new(cfg, server_name).map_err(io_other)?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        tls.write_all(request.as_bytes())?;
        let mut response = String::new();
        tls.read_to_string(&mut response)?;
        let peer_certs =
            tls.conn.peer_certificates().unwrap_or_default().iter().map(|c| c.clone().into_owned()).collect();
        let tls_version = tls.conn.protocol_version().map(|v| format!("{v:?}")).unwrap_or_default();
        Ok(HttpsReply { tls_version, peer_certs, response, elapsed: start.elapsed() })
    })
    .map_err(io_other)?
}

/// Opens a TCP connection to `addr` from inside `ns` and returns it; the
/// socket stays in that namespace and works from any thread.
pub fn tcp_connect(ns: &str, addr: SocketAddrV4, timeout: Duration) -> io::Result<TcpStream> {
    netns::run_in(ns, move || TcpStream::connect_timeout(&SocketAddr::V4(addr), timeout)).map_err(io_other)?
}

/// Makes a socket inside `ns` with `make` and hands it back.
pub fn socket_in<T: Send + 'static>(ns: &str, make: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    netns::run_in(ns, make).map_err(io_other)?
}

/// Sends one ICMP echo request to `dst` from inside `ns`; returns whether any
/// echo reply came back within `wait`.
pub fn icmp_echo(ns: &str, dst: Ipv4Addr, wait: Duration) -> io::Result<bool> {
    let sock = socket_in(ns, || Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)))?;
    let mut echo = [8u8, 0, 0, 0, 0x12, 0x34, 0, 1, b'p', b'l', b'k', b'!'];
    let sum = !privlink_core::packet::fold(privlink_core::packet::sum(&echo, 0));
    echo[2..4].copy_from_slice(&sum.to_be_bytes());
    sock.send_to(&echo, &SocketAddr::V4(SocketAddrV4::new(dst, 0)).into())?;
    let deadline = Instant::now() + wait;
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1500];
    while let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) {
        sock.set_read_timeout(Some(left))?;
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                // SAFETY: recv_from initialised the first n bytes.
                let pkt: Vec<u8> = buf[..n].iter().map(|b| unsafe { b.assume_init() }).collect();
                let ihl = usize::from(pkt.first().copied().unwrap_or(0x45) & 0x0f) * 4;
                let is_reply = pkt.get(ihl) == Some(&0) && from.as_socket_ipv4().map(|a| *a.ip()) == Some(dst);
                if is_reply {
                    return Ok(true);
                }
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Sends one UDP datagram to `dst` from inside `ns`; returns whether anything came back within `wait`.
pub fn udp_exchange(ns: &str, dst: SocketAddrV4, payload: &[u8], wait: Duration) -> io::Result<Option<Vec<u8>>> {
    let sock = socket_in(ns, || UdpSocket::bind("0.0.0.0:0"))?;
    sock.set_read_timeout(Some(wait))?;
    sock.send_to(payload, dst)?;
    let mut buf = vec![0u8; 4096];
    match sock.recv_from(&mut buf) {
        Ok((n, _)) => Ok(Some(buf[..n].to_vec())),
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => Ok(None),
        Err(e) => Err(e),
    }
}

/// What a DNS query saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsAnswer {
    /// The response code, e.g. `NoError`, `NXDomain`, `Refused`.
    pub rcode: String,
    /// The A records, in order.
    pub ips: Vec<Ipv4Addr>,
    /// Any record of another type in the answer section.
    pub other_answers: usize,
    /// Whether the TC bit was set.
    pub truncated: bool,
    /// Whether the answer is authoritative.
    pub authoritative: bool,
    /// Whether the authority section carries an SOA.
    pub soa: bool,
}

/// Builds a query message for `name` and `rtype` ("A", "AAAA", …) with an optional EDNS size.
pub fn dns_query_bytes(id: u16, name: &str, rtype: &str, edns: Option<u16>) -> io::Result<Vec<u8>> {
    use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
    use hickory_proto::rr::{Name, RecordType};
    let rt: RecordType = rtype.parse().map_err(io_other)?;
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_ascii(name).map_err(io_other)?, rt));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        msg.edns = Some(e);
    }
    msg.to_vec().map_err(io_other)
}

/// Reads a DNS response.
pub fn dns_answer(bytes: &[u8]) -> io::Result<DnsAnswer> {
    use hickory_proto::op::Message;
    use hickory_proto::rr::{RData, RecordType};
    let msg = Message::from_vec(bytes).map_err(io_other)?;
    let ips =
        msg.answers.iter().filter_map(|r| if let RData::A(a) = &r.data { Some(a.0) } else { None }).collect::<Vec<_>>();
    Ok(DnsAnswer {
        rcode: format!("{:?}", msg.metadata.response_code),
        other_answers: msg.answers.len() - ips.len(),
        ips,
        truncated: msg.metadata.truncation,
        authoritative: msg.metadata.authoritative,
        soa: msg.authorities.iter().any(|r| r.record_type() == RecordType::SOA),
    })
}

/// Asks `server` (UDP) for `name`/`rtype` from inside `ns` (or the host when `ns` is `None`).
pub fn dns_udp(ns: Option<&str>, server: SocketAddrV4, name: &str, rtype: &str) -> io::Result<DnsAnswer> {
    let q = dns_query_bytes(0x5a5a, name, rtype, None)?;
    let reply = match ns {
        Some(ns) => udp_exchange(ns, server, &q, Duration::from_secs(3))?,
        None => {
            let s = UdpSocket::bind("127.0.0.1:0")?;
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            s.send_to(&q, server)?;
            let mut buf = vec![0u8; 4096];
            s.recv_from(&mut buf).ok().map(|(n, _)| buf[..n].to_vec())
        }
    };
    dns_answer(&reply.ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, format!("no DNS answer from {server}")))?)
}

/// Asks `server` over TCP (RFC 7766 framing) from inside `ns`.
pub fn dns_tcp(ns: &str, server: SocketAddrV4, name: &str, rtype: &str) -> io::Result<DnsAnswer> {
    let q = dns_query_bytes(0x6b6b, name, rtype, None)?;
    let mut s = tcp_connect(ns, server, Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    s.write_all(&framed)?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut reply)?;
    dns_answer(&reply)
}
