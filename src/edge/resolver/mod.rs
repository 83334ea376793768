//! The VPC resolver ("Amazon-provided DNS") at VPC base + 2 and 169.254.169.253.
//!
//! # Theory of operation
//! Each TUN queue's stack owns one resolver; the decisions are the core's
//! (`privlink_core::dns`), this module moves bytes.
//!
//! **UDP.** Queries arrive as packets on the TUN: the stack's device hands
//! them to [`Resolver::handle_udp`], which answers from the private zone at
//! once (the reply packet goes straight to the TUN), from the forward cache,
//! or forwards the query ([`Forwarder`]): to the `[dns] forward` servers in
//! order, with failover, each try from a socket of its own on a random port
//! with a random id ([`network`]); the answer leaves through the TUN from the
//! resolver address the client asked.
//!
//! **TCP.** DNS over TCP is one more endpoint of the stack, served in
//! process: for a SYN to port 53 of a resolver address the stack asks
//! [`Resolver::open_tcp`] for a stream (an in-memory pipe, [`crate::edge::pipe`])
//! and relays the client's socket to it as to any service. The resolver
//! serves the other end (`tcp`): each connection is a core
//! [`privlink_core::dns::TcpSession`] (framing, pipelining, deadlines) kept
//! by [`TcpSessions`] (a per-source cap, and room made by resetting the
//! quietest connection, never a refusal). No socket listens on the host, so
//! the private zone is not reachable from outside the VPC's data path.
//!
//! **Turns.** The stack's turn calls [`Resolver::turn`]: forwarded answers
//! that arrived, forwarder and session deadlines that came, sessions whose
//! stream moved; [`Resolver::poll_timeout`] says when it is due next. The
//! connections the resolver resets are handed back as flows for the stack to
//! abort, since a stream reset before the client's handshake completed is
//! not seen by the relay.
//!
//! **Names asked.** Every query whose question parses is noted, with what
//! the responder decided, in a bounded [`AskedNames`] (the first 64 names):
//! the report `privlink run --summary` prints.
//!
//! **Settings.** The zone and the forwarder list ([`ResolverSettings`]) come
//! on a `watch` channel and are taken up per query: the next query after a
//! reload meets them, whichever queue answers it.
//!
//! # Timers and limits
//! The core's, named there: [`privlink_core::dns::FORWARD_TRY_TIMEOUT`],
//! `SERVER_HOLD_DOWN`, `MAX_FORWARDS`, `FORWARD_CACHE_ENTRIES`,
//! `TCP_QUERY_TIMEOUT`, `TCP_IDLE_TIMEOUT`, `MAX_TCP_PIPELINE`,
//! `MAX_TCP_BACKLOG`, `MAX_TCP_SESSIONS`, `MAX_TCP_SESSIONS_PER_SOURCE`;
//! and [`network`]'s per-try socket lifetime.

pub mod network;
pub mod random;
mod tcp;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::task::Context;
use std::time::Instant;

use tokio::sync::watch;

use self::network::{ForwardNet, Reply};
use self::random::RandomIds;
use self::tcp::SessionIo;
use crate::edge::queue::link::Link;
use crate::edge::ready::ReadySet;
pub use privlink_core::dns::ForwardCounters;
use privlink_core::dns::{
    AskedNames, DnsCounters, Event, ForwardMode, Forwarder, Outcome, Responder, SessionId, TcpCounters, TcpSessions,
    Transport, Zone,
};
use privlink_core::flow::FlowKey;
use privlink_core::packet::{self, PacketMeta};

/// The upstream resolvers from `/etc/resolv.conf` (port 53).
pub fn host_resolvers() -> Vec<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// What a resolver answers from and forwards to; swapped whole on reload.
#[derive(Debug, Clone)]
pub struct ResolverSettings {
    /// The private zone.
    pub zone: Arc<Zone>,
    /// The upstream resolvers, in order (`[dns] forward`); empty: privacy mode.
    pub forward: Vec<SocketAddr>,
}

/// Where a forwarded query's answer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// A UDP client, and the resolver address it asked.
    Udp { client: SocketAddrV4, resolver: Ipv4Addr },
    /// A DNS-over-TCP session.
    Tcp(SessionId),
}

fn forward_mode(servers: &[SocketAddr]) -> ForwardMode {
    if servers.is_empty() {
        ForwardMode::Refuse
    } else {
        ForwardMode::Forward
    }
}

/// One queue's VPC resolver, UDP and TCP.
pub struct Resolver {
    responder: Responder,
    settings: watch::Receiver<Arc<ResolverSettings>>,
    forwarder: Forwarder<Origin>,
    net: Box<dyn ForwardNet>,
    ids: RandomIds,
    /// The response being built (reused: the hot path does not allocate).
    out: Vec<u8>,
    sessions: TcpSessions<SessionIo>,
    /// Sessions whose stream moved, queued by their wakers.
    ready: Arc<ReadySet<SessionId>>,
    /// Sessions to service in this turn (reused).
    due: Vec<SessionId>,
    /// The names asked (both transports), bounded: for `privlink run --summary`.
    asked: AskedNames,
}

impl Resolver {
    /// A resolver on `settings`, forwarding over `net`.
    pub fn new(settings: watch::Receiver<Arc<ResolverSettings>>, net: Box<dyn ForwardNet>) -> Resolver {
        let current = settings.borrow().clone();
        Resolver {
            responder: Responder::new(current.zone.clone(), forward_mode(&current.forward)),
            settings,
            forwarder: Forwarder::new(current.forward.clone()),
            net,
            ids: RandomIds::default(),
            out: Vec::with_capacity(privlink_core::dns::MAX_UDP_RESPONSE),
            sessions: TcpSessions::default(),
            ready: Arc::new(ReadySet::default()),
            due: Vec::new(),
            asked: AskedNames::default(),
        }
    }

    /// The responder's counters (both transports).
    pub fn counters(&self) -> DnsCounters {
        self.responder.counters()
    }

    /// The forwarder's counters.
    pub fn forward_counters(&self) -> ForwardCounters {
        self.forwarder.counters()
    }

    /// The names asked so far and what they were answered.
    pub fn asked(&self) -> &AskedNames {
        &self.asked
    }

    /// The DNS-over-TCP sessions' counters.
    pub fn tcp_counters(&self) -> TcpCounters {
        self.sessions.counters()
    }

    /// Takes new settings if some were published: one atomic load when none
    /// were. Done per query, so the next query after a reload meets them.
    fn refresh(&mut self) {
        if !self.settings.has_changed().unwrap_or(false) {
            return;
        }
        let s = self.settings.borrow_and_update().clone();
        self.responder.set_zone(s.zone.clone());
        if self.forwarder.servers() != s.forward.as_slice() {
            self.responder.set_forward_mode(forward_mode(&s.forward));
            self.forwarder.set_servers(s.forward.clone());
        }
    }

    /// Answers or forwards one UDP query that arrived on the TUN.
    pub fn handle_udp(&mut self, now: Instant, meta: &PacketMeta, query: &[u8], link: &mut impl Link, tx: &mut [u8]) {
        self.refresh();
        let client = SocketAddrV4::new(meta.src, meta.src_port);
        let resolver = meta.dst;
        match self.responder.handle_query_noting(query, Transport::Udp, &mut self.out, &mut self.asked) {
            Outcome::Respond => reply(link, tx, resolver, client, &self.out),
            Outcome::Drop(_) => {}
            Outcome::Forward => {
                if self.forwarder.cached(now, query, Transport::Udp, &mut self.out) {
                    reply(link, tx, resolver, client, &self.out);
                    return;
                }
                let ids = &mut self.ids;
                let origin = Origin::Udp { client, resolver };
                match self.forwarder.start(now, origin, query, Transport::Udp, &mut || ids.next_id()) {
                    Ok(o) => self.net.send(now, o.token, o.server, o.transport, o.bytes),
                    Err(e) => tracing::debug!(%client, "not forwarded: {e:?}"),
                }
            }
        }
    }

    /// When [`Resolver::turn`] has work next, if nothing arrives before.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.forwarder.poll_timeout(), self.sessions.poll_timeout(), self.net.poll_at()].into_iter().flatten().min()
    }

    /// Waits until a forwarded answer (or a try's failure) has arrived.
    pub async fn forward_ready(&mut self) {
        std::future::poll_fn(|cx: &mut Context<'_>| self.net.poll_ready(cx)).await
    }

    /// Does what is due at `now`: forwarded answers, deadlines, sessions
    /// that moved. The flows of connections it reset go in `resets`, for the
    /// stack to abort. Returns whether anything moved.
    pub fn turn(&mut self, now: Instant, link: &mut impl Link, tx: &mut [u8], resets: &mut Vec<FlowKey>) -> bool {
        self.refresh();
        let mut moved = false;
        while let Some(Reply { token, result }) = self.net.try_recv(now) {
            moved = true;
            let ids = &mut self.ids;
            let event = match &result {
                Ok(answer) => self.forwarder.answer(now, token, answer, &mut || ids.next_id(), &mut self.out),
                Err(e) => {
                    tracing::debug!(?token, "forwarded try failed: {e}");
                    self.forwarder.failed(now, token, &mut || ids.next_id(), &mut self.out)
                }
            };
            let d =
                Delivery { now, net: &mut *self.net, sessions: &mut self.sessions, due: &mut self.due, out: &self.out };
            d.deliver(event, link, tx);
        }
        loop {
            let ids = &mut self.ids;
            let Some(event) = self.forwarder.handle_timeout(now, &mut || ids.next_id(), &mut self.out) else { break };
            moved = true;
            let d =
                Delivery { now, net: &mut *self.net, sessions: &mut self.sessions, due: &mut self.due, out: &self.out };
            d.deliver(event, link, tx);
        }
        moved |= self.expire_sessions(now, resets);
        moved |= self.serve_sessions(now, resets);
        moved
    }
}

/// Where a forwarder event's answer goes, and what it asks of the network.
struct Delivery<'a> {
    now: Instant,
    net: &'a mut dyn ForwardNet,
    sessions: &'a mut TcpSessions<SessionIo>,
    /// Sessions that got an answer, to be serviced in this turn.
    due: &'a mut Vec<SessionId>,
    /// The client's response, for `Reply` and `GiveUp`.
    out: &'a [u8],
}

impl Delivery<'_> {
    /// Acts on `event` (an ignored datagram was counted by the forwarder).
    fn deliver(self, event: Event<'_, Origin>, link: &mut impl Link, tx: &mut [u8]) {
        match event {
            Event::Ignored => {}
            Event::Retry { cancel, send } => {
                self.net.cancel(cancel);
                self.net.send(self.now, send.token, send.server, send.transport, send.bytes);
            }
            Event::Reply { cancel, origin } => {
                self.net.cancel(cancel);
                self.answer(origin, link, tx);
            }
            Event::GiveUp { cancel, origin } => {
                self.net.cancel(cancel);
                // A UDP client retries on its own; a TCP client would wait for nothing.
                if let Origin::Tcp(_) = origin {
                    self.answer(origin, link, tx);
                }
            }
        }
    }

    fn answer(self, origin: Origin, link: &mut impl Link, tx: &mut [u8]) {
        match origin {
            Origin::Udp { client, resolver } => reply(link, tx, resolver, client, self.out),
            Origin::Tcp(id) => {
                if let Some((session, _)) = self.sessions.get_mut(id) {
                    session.push_answer(self.now, self.out, true);
                    self.due.push(id);
                }
            }
        }
    }
}

fn reply(link: &mut impl Link, tx: &mut [u8], resolver: Ipv4Addr, client: SocketAddrV4, msg: &[u8]) {
    if let Some(n) = packet::emit_udp(SocketAddrV4::new(resolver, 53), client, msg, tx) {
        if let Err(e) = link.write_packet(&tx[..n]) {
            tracing::debug!("link write (DNS reply): {e}");
        }
    }
}
