//! The VPC resolver ("Amazon-provided DNS") at VPC base + 2 and 169.254.169.253.
//!
//! UDP queries arrive as packets on the TUN: the stack's device hands them to
//! [`Resolver::handle_udp`], which answers from the private zone at once
//! (writing the reply packet straight to the TUN) or forwards the query from a
//! host-side UDP socket. Replies to forwarded queries come back on that socket
//! and leave through the TUN from the resolver address the client asked.
//!
//! DNS over TCP is a stream like any other: the pipeline routes TCP port 53 to
//! a loopback server ([`serve_tcp`]) through the same connect-first relay as
//! an endpoint, so it shares every mechanism the ENI has.
//!
//! The zone is an immutable [`Zone`] behind an `Arc`; a new one arrives on a
//! `watch` channel when the config changes, and answers switch at once.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;

use crate::edge::tun;
use privlink_core::dns::{DnsCounters, ForwardCache, ForwardMode, Outcome, Responder, Transport, Zone};
use privlink_core::packet::{self, PacketMeta};

/// Forwarded queries waiting for an answer, at most.
const MAX_PENDING: usize = 4096;
/// A forwarded query unanswered for this long is forgotten (the client retries).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
/// Answers kept from upstream resolvers.
const CACHE_ENTRIES: usize = 4096;

/// The upstream resolvers from `/etc/resolv.conf` (port 53).
pub fn host_resolvers() -> Vec<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// Resolver counters beyond the responder's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwardCounters {
    /// Queries sent upstream.
    pub sent: u64,
    /// Answers relayed back.
    pub answered: u64,
    /// Answers served from the cache.
    pub cached: u64,
    /// Queries dropped: too many pending, or the send failed.
    pub dropped: u64,
}

privlink_core::counters_add!(ForwardCounters { sent, answered, cached, dropped });

struct Pending {
    client: SocketAddrV4,
    resolver: Ipv4Addr,
    id: u16,
    sent: Instant,
    query: Vec<u8>,
}

struct Forwarder {
    sock: UdpSocket,
    server: SocketAddr,
    next_id: u16,
    pending: HashMap<u16, Pending>,
}

/// The UDP side of the VPC resolver.
pub struct Resolver {
    responder: Responder,
    zone: watch::Receiver<Arc<Zone>>,
    out: Vec<u8>,
    cache: ForwardCache,
    forwarder: Option<Forwarder>,
    /// Forwarding counters.
    pub forward: ForwardCounters,
}

impl Resolver {
    /// A resolver answering from `zone` and forwarding to `forward` (empty: privacy mode).
    pub async fn new(zone: watch::Receiver<Arc<Zone>>, forward: &[SocketAddr]) -> io::Result<Resolver> {
        let mode = if forward.is_empty() { ForwardMode::Refuse } else { ForwardMode::Forward };
        let forwarder = match forward.first() {
            None => None,
            Some(&server) => {
                let bind: SocketAddr =
                    if server.is_ipv4() { "0.0.0.0:0".parse() } else { "[::]:0".parse() }.expect("addr");
                Some(Forwarder { sock: UdpSocket::bind(bind).await?, server, next_id: 1, pending: HashMap::new() })
            }
        };
        let current = zone.borrow().clone();
        Ok(Resolver {
            responder: Responder::new(current, mode),
            zone,
            out: Vec::with_capacity(privlink_core::dns::MAX_UDP_RESPONSE),
            cache: ForwardCache::new(CACHE_ENTRIES),
            forwarder,
            forward: ForwardCounters::default(),
        })
    }

    /// The responder's counters.
    pub fn counters(&self) -> DnsCounters {
        self.responder.counters()
    }

    /// Takes a new zone if one was published: one atomic load when none was.
    /// Done per query, so the next query after a reload meets the new zone
    /// whichever queue's thread answers it.
    fn refresh_zone(&mut self) {
        if self.zone.has_changed().unwrap_or(false) {
            let z = self.zone.borrow_and_update().clone();
            self.responder.set_zone(z);
        }
    }

    /// Answers or forwards one UDP query that arrived on the TUN.
    pub fn handle_udp(&mut self, now: Instant, meta: &PacketMeta, query: &[u8], fd: RawFd, tx: &mut [u8]) {
        self.refresh_zone();
        let client = SocketAddrV4::new(meta.src, meta.src_port);
        let resolver = meta.dst;
        match self.responder.handle_query(query, Transport::Udp, &mut self.out) {
            Outcome::Respond => reply(fd, tx, resolver, client, &self.out),
            Outcome::Drop(_) => {}
            Outcome::Forward => {
                if self.cache.get(now, query, Transport::Udp, &mut self.out) {
                    self.forward.cached += 1;
                    reply(fd, tx, resolver, client, &self.out);
                } else if let Some(f) = self.forwarder.as_mut() {
                    if f.send(now, query, client, resolver) {
                        self.forward.sent += 1;
                    } else {
                        self.forward.dropped += 1;
                    }
                }
            }
        }
    }

    /// Waits until the forwarding socket has an answer (never, in privacy mode).
    pub async fn forward_readable(&self) -> io::Result<()> {
        match &self.forwarder {
            Some(f) => f.sock.readable().await,
            None => std::future::pending().await,
        }
    }

    /// Relays every answer waiting on the forwarding socket back through the TUN.
    pub fn handle_forward_replies(&mut self, now: Instant, fd: RawFd, tx: &mut [u8]) {
        let Some(f) = self.forwarder.as_mut() else { return };
        let mut buf = [0u8; 4096];
        loop {
            let (n, from) = match f.sock.try_recv_from(&mut buf) {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::debug!("forwarder socket: {e}");
                    return;
                }
            };
            if from != f.server || n < 12 {
                tracing::debug!(%from, n, "forwarder: ignored a datagram");
                continue;
            }
            let answer = &mut buf[..n];
            let id = u16::from_be_bytes([answer[0], answer[1]]);
            tracing::trace!(id, n, "forwarder: answer");
            let Some(p) = f.pending.remove(&id) else { continue };
            answer[..2].copy_from_slice(&p.id.to_be_bytes());
            self.cache.insert(now, &p.query, answer);
            if answer.len() > privlink_core::dns::PLAIN_UDP_LIMIT && !has_edns(&p.query) {
                // The upstream answered bigger than this client can take over UDP:
                // send the header with TC so it retries over TCP.
                let mut tc = answer[..12].to_vec();
                tc[2] |= 0x02;
                tc[6..12].fill(0);
                let qlen = question_len(&p.query);
                tc[5] = p.query[5];
                tc.extend_from_slice(&p.query[12..12 + qlen]);
                reply(fd, tx, p.resolver, p.client, &tc);
            } else {
                reply(fd, tx, p.resolver, p.client, answer);
            }
            self.forward.answered += 1;
        }
    }
}

impl Forwarder {
    fn send(&mut self, now: Instant, query: &[u8], client: SocketAddrV4, resolver: Ipv4Addr) -> bool {
        if self.pending.len() >= MAX_PENDING {
            self.pending.retain(|_, p| now.duration_since(p.sent) < FORWARD_TIMEOUT);
            if self.pending.len() >= MAX_PENDING {
                return false;
            }
        }
        // A fresh id per forwarded query, so answers cannot be confused between clients.
        let mut id = self.next_id;
        while self.pending.contains_key(&id) {
            id = id.wrapping_add(1);
        }
        self.next_id = id.wrapping_add(1);
        let mut q = query.to_vec();
        let orig = u16::from_be_bytes([q[0], q[1]]);
        q[..2].copy_from_slice(&id.to_be_bytes());
        // The syscall itself, not tokio's `try_send_to`: that one refuses with
        // WouldBlock until the runtime has seen the socket's first writable
        // event, which drops the first queries of a fresh resolver.
        if let Err(e) = socket2::SockRef::from(&self.sock).send_to(&q, &self.server.into()) {
            tracing::debug!(server = %self.server, "forwarder: send failed: {e}");
            return false;
        }
        tracing::trace!(id, server = %self.server, "forwarder: query sent");
        q[..2].copy_from_slice(&orig.to_be_bytes());
        self.pending.insert(id, Pending { client, resolver, id: orig, sent: now, query: q });
        true
    }
}

fn reply(fd: RawFd, tx: &mut [u8], resolver: Ipv4Addr, client: SocketAddrV4, msg: &[u8]) {
    if let Some(n) = packet::emit_udp(SocketAddrV4::new(resolver, 53), client, msg, tx) {
        if let Err(e) = tun::write_packet(fd, &tx[..n]) {
            tracing::debug!("TUN write (DNS reply): {e}");
        }
    }
}

/// Whether a query carries an EDNS OPT record (so it accepts answers over 512 bytes).
fn has_edns(query: &[u8]) -> bool {
    query.len() >= 12 && u16::from_be_bytes([query[10], query[11]]) > 0
}

/// Length of the (single) question section of a query the responder accepted.
fn question_len(query: &[u8]) -> usize {
    let mut i = 12;
    while i < query.len() && query[i] != 0 {
        i += 1 + usize::from(query[i]);
    }
    (i + 5).min(query.len()) - 12
}

/// Serves DNS over TCP on `listener` (loopback): the TUN's TCP port 53 is
/// relayed here. Each connection carries length-prefixed queries (RFC 7766).
pub async fn serve_tcp(listener: TcpListener, zone: watch::Receiver<Arc<Zone>>, forward: Vec<SocketAddr>) {
    while let Ok((stream, _)) = listener.accept().await {
        let zone = zone.clone();
        let forward = forward.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_tcp_conn(stream, zone, &forward).await {
                tracing::debug!("DNS over TCP: {e}");
            }
        });
    }
}

async fn serve_tcp_conn(
    mut stream: TcpStream,
    zone: watch::Receiver<Arc<Zone>>,
    forward: &[SocketAddr],
) -> io::Result<()> {
    let mode = if forward.is_empty() { ForwardMode::Refuse } else { ForwardMode::Forward };
    let mut out = Vec::new();
    loop {
        let len = match stream.read_u16().await {
            Ok(l) => usize::from(l),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut query = vec![0u8; len];
        stream.read_exact(&mut query).await?;
        let responder = Responder::new(zone.borrow().clone(), mode);
        match responder.handle_query(&query, Transport::Tcp, &mut out) {
            Outcome::Respond => {}
            Outcome::Drop(_) => return Ok(()),
            Outcome::Forward => out = forward_tcp(forward[0], &query).await?,
        }
        stream.write_u16(out.len() as u16).await?;
        stream.write_all(&out).await?;
    }
}

async fn forward_tcp(server: SocketAddr, query: &[u8]) -> io::Result<Vec<u8>> {
    let exchange = async {
        let mut up = TcpStream::connect(server).await?;
        up.write_u16(query.len() as u16).await?;
        up.write_all(query).await?;
        let n = usize::from(up.read_u16().await?);
        let mut answer = vec![0u8; n];
        up.read_exact(&mut answer).await?;
        Ok(answer)
    };
    tokio::time::timeout(FORWARD_TIMEOUT, exchange)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "upstream resolver"))?
}
