//! Upstream resolvers in memory, on lab time: a [`ForwardNet`] whose
//! servers answer from a few records after a delay of their own, or never
//! (a server that is not there). The memory lab's resolver forwards to it,
//! so forwarding, failover and a slow upstream behind a pipelined TCP query
//! run without a socket and take no wall-clock time.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use privlink_core::dns::{ForwardMode, Outcome, Responder, Token, Transport, Zone, ZoneApex, ZoneEntry, ZoneSpec};

use crate::edge::resolver::network::{ForwardNet, Reply};

/// One upstream resolver.
struct Server {
    responder: Responder,
    delay: Duration,
}

/// A query an upstream received: when, on which transport, the bytes.
#[derive(Debug, Clone)]
pub struct Received {
    /// Lab time it arrived.
    pub at: Instant,
    /// The server it went to.
    pub server: SocketAddr,
    /// UDP or TCP.
    pub transport: Transport,
    /// The query as the upstream saw it.
    pub bytes: Vec<u8>,
}

/// Upstream resolvers in memory (see the module doc).
#[derive(Default)]
pub struct MemoryDns {
    servers: HashMap<SocketAddr, Server>,
    /// Answers on their way back: when, for which try.
    due: Vec<(Instant, Token, Vec<u8>)>,
    /// Every query any server received, for a test to look at.
    received: Arc<Mutex<Vec<Received>>>,
}

impl MemoryDns {
    /// Adds a server at `addr` that answers `records` (name, address; other
    /// names REFUSED) after `delay`. An address no server was added for never answers.
    pub fn server(mut self, addr: SocketAddr, records: &[(&str, Ipv4Addr)], delay: Duration) -> MemoryDns {
        let mut spec = ZoneSpec::default();
        for (name, ip) in records {
            spec.apexes.push(ZoneApex { name: name.to_string(), private_dns: true });
            spec.entries.push(ZoneEntry { name: name.to_string(), ips: vec![*ip], private_dns: true });
        }
        let zone = Arc::new(Zone::build(&spec).unwrap_or_else(|e| panic!("{e}")));
        self.servers.insert(addr, Server { responder: Responder::new(zone, ForwardMode::Refuse), delay });
        self
    }

    /// What the servers received so far, shared: it keeps filling after the lab takes `self`.
    pub fn received(&self) -> Arc<Mutex<Vec<Received>>> {
        self.received.clone()
    }
}

impl ForwardNet for MemoryDns {
    fn send(&mut self, now: Instant, token: Token, server: SocketAddr, transport: Transport, query: &[u8]) {
        let received = Received { at: now, server, transport, bytes: query.to_vec() };
        self.received.lock().unwrap_or_else(|e| e.into_inner()).push(received);
        let Some(s) = self.servers.get(&server) else { return };
        let mut out = Vec::new();
        if s.responder.handle_query(query, transport, &mut out) == Outcome::Respond {
            self.due.push((now + s.delay, token, out));
        }
    }

    fn cancel(&mut self, token: Token) {
        self.due.retain(|(_, t, _)| *t != token);
    }

    fn try_recv(&mut self, now: Instant) -> Option<Reply> {
        let (i, _) = self.due.iter().enumerate().filter(|(_, (at, _, _))| *at <= now).min_by_key(|(_, d)| d.0)?;
        let (_, token, bytes) = self.due.swap_remove(i);
        Some(Reply { token, result: Ok::<_, io::Error>(bytes) })
    }

    fn poll_at(&self) -> Option<Instant> {
        self.due.iter().map(|(at, _, _)| *at).min()
    }

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<()> {
        // The lab steps the stack itself; nothing here wakes a runtime.
        Poll::Pending
    }
}
