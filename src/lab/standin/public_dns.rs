//! A loopback DNS server playing the public internet's answers for a few
//! names, so a lab can show what a client outside the VPC would resolve.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use privlink_core::dns::{ForwardMode, Outcome, Responder, Transport, Zone, ZoneApex, ZoneEntry, ZoneSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

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
