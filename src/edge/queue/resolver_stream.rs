//! DNS over TCP as one more endpoint of the stack: a SYN to port 53 of a
//! resolver address gets a stream from the queue's own resolver, in
//! process, instead of an upstream connection, and the relay carries it as
//! any other ([`RelayTarget`]). Nothing is held and nothing connects: the
//! resolver never refuses a stream (it makes room by resetting another), so
//! no flood of SYNs can fill the stack's half-open slots for it. The
//! connections the resolver resets, for room or by a deadline, come back
//! here as flows whose sockets are aborted at once: one reset before the
//! client's handshake completed would otherwise hold its socket until
//! smoltcp's 300 s timeout.

use std::io;
use std::task::{Context, Poll};
use std::time::Instant;

use privlink_core::flow::FlowKey;
use smoltcp::socket::tcp;

use super::device::HeldSyn;
use super::link::Link;
use super::Stack;
use crate::edge::pipe::MemoryStream;
use crate::edge::upstream::{Connector, UpstreamIo};

/// What a connection of the stack is relayed to.
pub enum RelayTarget<S> {
    /// The endpoint's service, through the connector.
    Service(S),
    /// The VPC resolver's DNS over TCP, in process.
    Resolver(MemoryStream),
}

impl<S: UpstreamIo> UpstreamIo for RelayTarget<S> {
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            RelayTarget::Service(s) => s.try_read(buf),
            RelayTarget::Resolver(r) => r.try_read(buf),
        }
    }
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            RelayTarget::Service(s) => s.try_write(buf),
            RelayTarget::Resolver(r) => r.try_write(buf),
        }
    }
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            RelayTarget::Service(s) => s.poll_read_ready(cx),
            RelayTarget::Resolver(r) => r.poll_read_ready(cx),
        }
    }
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            RelayTarget::Service(s) => s.poll_write_ready(cx),
            RelayTarget::Resolver(r) => r.poll_write_ready(cx),
        }
    }
    fn shutdown_write(&self) {
        match self {
            RelayTarget::Service(s) => s.shutdown_write(),
            RelayTarget::Resolver(r) => r.shutdown_write(),
        }
    }
    fn reset_on_close(&self) {
        match self {
            RelayTarget::Service(s) => s.reset_on_close(),
            RelayTarget::Resolver(r) => r.reset_on_close(),
        }
    }
}

impl<L: Link, C: Connector> Stack<L, C> {
    /// Opens the resolver's stream for a SYN to its TCP port.
    pub(super) fn open_resolver_stream(&mut self, syn: HeldSyn, now: Instant) -> io::Result<()> {
        let (stream, evicted) = self.resolver.open_tcp(now, syn.meta.flow());
        if let Some(flow) = evicted {
            self.abort_flow(flow, now);
        }
        // The resolver bounds its connections itself; the slot only keeps the count.
        self.slots.try_take(syn.endpoint, usize::MAX);
        self.open(syn, RelayTarget::Resolver(stream), None, now)
    }

    /// The resolver's turn; aborts the connections it reset.
    pub(super) fn turn_resolver(&mut self, now: Instant) -> bool {
        let mut resets = std::mem::take(&mut self.resolver_resets);
        let moved = self.resolver.turn(now, &mut self.link, &mut self.tx_buf, &mut resets);
        for flow in resets.drain(..) {
            self.abort_flow(flow, now);
        }
        self.resolver_resets = resets;
        moved
    }

    /// Resets `flow`'s socket (an RST to the client) and lets the relay finish it.
    fn abort_flow(&mut self, flow: FlowKey, now: Instant) {
        let Some(id) = self.by_flow.get(&flow).map(|c| c.id) else { return };
        if let Some(conn) = self.conns[id].as_ref() {
            self.sockets.get_mut::<tcp::Socket>(conn.handle).abort();
        }
        self.service(id, now);
    }
}
