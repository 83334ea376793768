//! Stand-ins for the public side, on loopback: a TLS server playing the
//! real service (a certificate for its name, signed by a CA made at start)
//! and a DNS server playing the internet's answers. The demo and the
//! namespace tests use them; nothing here leaves the host.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use privlink_core::dns::{ForwardMode, Outcome, Responder, Transport, Zone, ZoneApex, ZoneEntry, ZoneSpec};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

/// A CA and a leaf certificate for one service name.
pub struct ServiceCert {
    /// The CA certificate clients trust.
    pub ca: CertificateDer<'static>,
    /// The CA certificate in PEM, for `curl --cacert`.
    pub ca_pem: String,
    /// The leaf certificate the service presents.
    pub leaf: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl ServiceCert {
    /// Makes a fresh CA and a leaf for `name`.
    pub fn generate(name: &str) -> Result<ServiceCert, rcgen::Error> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "privlink demo CA");
        let ca = ca_params.self_signed(&ca_key)?;
        let leaf_key = KeyPair::generate()?;
        let mut leaf_params = CertificateParams::new(vec![name.to_string()])?;
        leaf_params.distinguished_name.push(DnType::CommonName, name);
        let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key)?;
        Ok(ServiceCert {
            ca: ca.der().clone(),
            ca_pem: ca.pem(),
            leaf: leaf.der().clone(),
            key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
        })
    }

    /// A rustls server config presenting the leaf.
    pub fn server_config(&self) -> io::Result<Arc<rustls::ServerConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(vec![self.leaf.clone()], PrivateKeyDer::Pkcs8(self.key.clone_key()))
            .map_err(io::Error::other)?;
        Ok(Arc::new(cfg))
    }
}

/// A loopback HTTPS server playing the public service: answers every request
/// with `200 OK` and a line naming itself.
pub struct TlsStandIn {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its certificates.
    pub cert: ServiceCert,
    task: tokio::task::JoinHandle<()>,
}

impl TlsStandIn {
    /// Starts the stand-in for `name` on 127.0.0.1 (port 0: any free port).
    pub async fn start(name: &str, port: u16) -> io::Result<TlsStandIn> {
        let cert = ServiceCert::generate(name).map_err(io::Error::other)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(cert.server_config()?);
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
        let addr = listener.local_addr()?;
        let body = format!("hello from {name} (the public service's stand-in on {addr})\n");
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, body) = (acceptor.clone(), body.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16384 {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    let resp = format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                    let _ = tls.write_all(resp.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Ok(TlsStandIn { addr, cert, task })
    }
}

impl Drop for TlsStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A loopback DNS server playing the public internet's answers for a few
/// names (UDP and TCP on the same port); everything else is REFUSED.
pub struct PublicDns {
    /// Where it listens.
    pub addr: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl PublicDns {
    /// Starts it on 127.0.0.1 with `records` (name, public address).
    pub async fn start(records: &[(&str, Ipv4Addr)]) -> io::Result<PublicDns> {
        let mut spec = ZoneSpec::default();
        for (name, ip) in records {
            spec.apexes.push(ZoneApex { name: name.to_string(), private_dns: true });
            spec.entries.push(ZoneEntry { name: name.to_string(), ips: vec![*ip], private_dns: true });
        }
        let zone = Arc::new(Zone::build(&spec).map_err(io::Error::other)?);
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = tcp.local_addr()?;
        let udp = UdpSocket::bind(addr).await?;
        let z = zone.clone();
        let udp_task = tokio::spawn(async move {
            let responder = Responder::new(z, ForwardMode::Refuse);
            let (mut buf, mut out) = (vec![0u8; 2048], Vec::new());
            while let Ok((n, from)) = udp.recv_from(&mut buf).await {
                if responder.handle_query(&buf[..n], Transport::Udp, &mut out) == Outcome::Respond {
                    let _ = udp.send_to(&out, from).await;
                }
            }
        });
        let tcp_task = tokio::spawn(async move {
            while let Ok((mut s, _)) = tcp.accept().await {
                let zone = zone.clone();
                tokio::spawn(async move {
                    let responder = Responder::new(zone, ForwardMode::Refuse);
                    let mut out = Vec::new();
                    while let Ok(len) = s.read_u16().await {
                        let mut q = vec![0u8; usize::from(len)];
                        if s.read_exact(&mut q).await.is_err()
                            || responder.handle_query(&q, Transport::Tcp, &mut out) != Outcome::Respond
                        {
                            return;
                        }
                        let _ = s.write_u16(out.len() as u16).await;
                        let _ = s.write_all(&out).await;
                    }
                });
            }
        });
        Ok(PublicDns { addr, tasks: vec![udp_task, tcp_task] })
    }
}

impl Drop for PublicDns {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
