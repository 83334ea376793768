//! The relay: one client connection (a smoltcp socket on the ENI) spliced to
//! one upstream connection (a tokio `TcpStream` in the host namespace, or any
//! other [`UpstreamIo`]).
//!
//! # Theory of operation
//!
//! Bytes move straight between smoltcp's ring buffers and the kernel socket:
//! `socket.recv(|ring| upstream.try_write(ring))` and
//! `socket.send(|ring| upstream.try_read(ring))`. There is no intermediate
//! buffer and no channel, so a connection's memory is its two smoltcp rings
//! (the stack's `SOCKET_BUFFER` each) and nothing grows with traffic.
//!
//! Backpressure falls out of that: when the upstream cannot take more, bytes
//! stay in the socket's rx ring and smoltcp's advertised window closes, so
//! the client slows; when the client is slow to ACK, the tx ring stays full,
//! we stop reading the upstream, its kernel buffer fills and the service
//! slows.
//!
//! Half-close travels each way on its own: the client's FIN (smoltcp's
//! `!may_recv()` once the ring is drained) becomes `shutdown(Write)` on the
//! upstream; the upstream's EOF becomes `close()` on the socket, a FIN after
//! the buffered bytes. Resets travel too: an upstream error aborts the socket
//! (RST to the client); a client RST (socket closed before both directions
//! ended) closes the upstream with `SO_LINGER` 0, which sends an RST.
//!
//! The relay never blocks: it is driven by wakers. smoltcp wakes the
//! connection when its rings or state change, the upstream when it is ready;
//! both wakers push the connection's id onto the stack's ready list.
//!
//! A connection's life is a [`ConnState`]: the client's handshake, then
//! relaying with each direction closing on its own ([`Half`]), or a reset.
//! Before the first byte goes upstream the stream may have to pass the
//! endpoint's SNI check, a [`FirstFlight`] gate decided in the core; its
//! deadline is the stack's to keep ([`Conn::hello_deadline`]).

use std::io;
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use crate::edge::ready::{IdWaker, ReadySet};
use crate::edge::upstream::UpstreamIo;

use smoltcp::socket::tcp::{self, State};

use privlink_core::flow::Direction;
use privlink_core::flow::FlowKey;
use privlink_core::policy::{FirstFlight, Gate, SniPolicy, StreamDenial, MAX_CLIENT_HELLO};
use privlink_core::shaper::{EniShaper, FlowShare, Grant};

/// Index of a connection in the stack's table.
pub type ConnId = usize;

/// What a service pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Nothing moved; wait for a wake-up.
    Idle,
    /// Bytes or state moved: the socket may have segments to emit.
    Moved,
    /// The connection is over; the socket may be removed once it is `Closed`
    /// with no pending RST, or in `TimeWait`.
    Finished,
}

/// The stream layer's part in one service pass: the ENI's shaper and this
/// connection's share of it, and the clock.
pub struct Shaping<'a> {
    /// The ENI's shaper.
    pub shaper: &'a mut EniShaper,
    /// This connection's share.
    pub flow: FlowShare,
}

/// One direction of a relayed stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    /// Bytes flow.
    Open,
    /// The sender's FIN arrived; bytes before it may still be in the ring.
    Draining,
    /// The FIN was passed on: nothing more flows this way.
    Closed,
}

/// Where a relayed connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    /// The client's handshake with smoltcp is not complete.
    Handshake,
    /// Bytes flow; each direction closes on its own. `to_client` goes from
    /// `Open` straight to `Closed`: smoltcp sends its ring out before the FIN.
    Relaying {
        /// Client → service.
        to_service: Half,
        /// Service → client.
        to_client: Half,
    },
    /// Reset, by either side or by the stream policy: nothing more moves.
    Reset,
}

impl ConnState {
    /// The client's FIN has arrived.
    fn client_fin(self) -> bool {
        matches!(self, ConnState::Relaying { to_service: Half::Draining | Half::Closed, .. })
    }

    /// Nothing more goes upstream: the client's FIN was passed on, or a reset.
    fn to_service_done(self) -> bool {
        matches!(self, ConnState::Relaying { to_service: Half::Closed, .. } | ConnState::Reset)
    }

    /// Nothing more goes to the client: the service's EOF was passed on, or a reset.
    fn to_client_done(self) -> bool {
        matches!(self, ConnState::Relaying { to_client: Half::Closed, .. } | ConnState::Reset)
    }
}

/// One relayed connection.
pub struct Conn<U> {
    /// The smoltcp socket on the ENI.
    pub handle: smoltcp::iface::SocketHandle,
    /// Client and ENI addresses.
    pub flow: FlowKey,
    /// Endpoint index.
    pub endpoint: usize,
    /// ENI index.
    pub eni: usize,
    /// The connection's share of its ENI's shaper, when the endpoint is shaped.
    pub share: Option<FlowShare>,
    upstream: U,
    waker: Arc<IdWaker<ConnId>>,
    waker_handle: Waker,
    /// The SNI check still to pass before any byte goes upstream.
    gate: Option<FirstFlight>,
    /// Set when the stream layer reset the connection.
    pub denied: Option<StreamDenial>,
    state: ConnState,
    /// Bytes relayed client -> upstream and upstream -> client.
    pub bytes: (u64, u64),
}

impl<U: UpstreamIo> Conn<U> {
    /// A connection for socket `handle`, relaying to `upstream`; `sni` is the
    /// policy its first flight must pass (checked on a copy; the bytes go
    /// upstream untouched), `None` to carry anything.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: ConnId,
        handle: smoltcp::iface::SocketHandle,
        flow: FlowKey,
        endpoint: usize,
        eni: usize,
        upstream: U,
        ready: Arc<ReadySet<ConnId>>,
        sni: Option<(Arc<SniPolicy>, Duration)>,
        now: Instant,
    ) -> Conn<U> {
        let (waker, waker_handle) = IdWaker::new(id, ready);
        Conn {
            handle,
            flow,
            endpoint,
            eni,
            share: None,
            upstream,
            waker,
            waker_handle,
            gate: sni.map(|(policy, timeout)| FirstFlight::new(policy, now, timeout)),
            denied: None,
            state: ConnState::Handshake,
            bytes: (0, 0),
        }
    }

    /// When the first flight must have passed, while it has not: the stack
    /// services the connection then, in case the client never finishes its hello.
    pub fn hello_deadline(&self) -> Option<Instant> {
        self.gate.as_ref().map(FirstFlight::deadline)
    }

    /// Where the connection stands.
    pub fn state(&self) -> ConnState {
        self.state
    }

    /// Moves what can move, in both directions, without blocking. `shaping`
    /// is the ENI's shaper when the endpoint is shaped; a grant for later
    /// leaves the bytes in the rings (TCP's window does the slowing) and the
    /// shaper's timer brings the connection back.
    pub fn service(&mut self, sock: &mut tcp::Socket<'_>, mut shaping: Option<Shaping<'_>>, now: Instant) -> Progress {
        // Clear first: a wake-up from here on queues the connection again.
        self.waker.rearm();
        self.follow_socket(sock.state());
        if self.state == ConnState::Reset {
            return Progress::Finished;
        }
        if self.gate.is_some() && !self.check_first_flight(sock, now) {
            // Nothing goes upstream before the first flight passes; the service
            // may still speak (or fail) first, and the client must hear it.
            let moved = self.state != ConnState::Reset && self.upstream_to_client(sock, shaping.as_mut(), now);
            if self.state == ConnState::Reset {
                return Progress::Finished;
            }
            sock.register_recv_waker(&self.waker_handle);
            sock.register_send_waker(&self.waker_handle);
            return if moved { Progress::Moved } else { Progress::Idle };
        }
        // Even in TimeWait or Closed the rx ring may still hold the client's last
        // bytes: they go upstream before the connection counts as finished.
        let moved =
            self.client_to_upstream(sock, shaping.as_mut(), now) | self.upstream_to_client(sock, shaping.as_mut(), now);
        if self.state == ConnState::Reset
            || (matches!(sock.state(), State::Closed | State::TimeWait) && self.state.to_service_done())
        {
            return Progress::Finished;
        }
        sock.register_recv_waker(&self.waker_handle);
        sock.register_send_waker(&self.waker_handle);
        if moved {
            Progress::Moved
        } else {
            Progress::Idle
        }
    }

    /// Follows what the socket's state says of the client: its handshake
    /// done, its FIN, or its reset (closed without a FIN).
    fn follow_socket(&mut self, sock: State) {
        // States in which the client's FIN has been received.
        let fin = matches!(sock, State::CloseWait | State::LastAck | State::Closing | State::TimeWait);
        match &mut self.state {
            ConnState::Reset => {}
            ConnState::Handshake if sock == State::Established || fin => {
                let to_service = if fin { Half::Draining } else { Half::Open };
                self.state = ConnState::Relaying { to_service, to_client: Half::Open };
            }
            ConnState::Relaying { to_service: to_service @ Half::Open, .. } if fin => *to_service = Half::Draining,
            _ => {}
        }
        if sock == State::Closed && !self.state.client_fin() && self.state != ConnState::Reset {
            // Closed without a FIN from the client: it reset the connection (or
            // smoltcp timed it out). Reset the upstream too.
            self.reset_upstream();
        }
    }

    /// Reads the first flight in place and asks the gate. `true`: carry on.
    fn check_first_flight(&mut self, sock: &mut tcp::Socket<'_>, now: Instant) -> bool {
        let Some(gate) = &self.gate else { return true };
        let queued = sock.recv_queue();
        // The first flight starts the ring, so it is one contiguous region:
        // read it in place, no copy.
        let first = sock.peek(queued.min(MAX_CLIENT_HELLO)).unwrap_or(&[]);
        match gate.judge(first, queued, now, self.state.client_fin()) {
            Gate::Pass => {
                tracing::debug!(flow = %self.flow, "first flight allowed");
                self.gate = None;
                true
            }
            Gate::Wait => false,
            Gate::Reset(why) => self.deny(sock, why),
        }
    }

    fn deny(&mut self, sock: &mut tcp::Socket<'_>, why: StreamDenial) -> bool {
        // The stack logs it (`denied`), within its line budget.
        sock.abort();
        self.reset_upstream();
        self.denied = Some(why);
        false
    }

    fn reset_upstream(&mut self) {
        self.upstream.reset_on_close();
        self.state = ConnState::Reset;
    }

    fn client_to_upstream(
        &mut self,
        sock: &mut tcp::Socket<'_>,
        mut shaping: Option<&mut Shaping<'_>>,
        now: Instant,
    ) -> bool {
        let mut moved = false;
        let waker = self.waker_handle.clone();
        let mut cx = Context::from_waker(&waker);
        while !self.state.to_service_done() {
            if sock.can_recv() {
                let up = &self.upstream;
                let mut later = false;
                let sh = shaping.as_deref_mut();
                match sock.recv(|ring| {
                    let allowed = grant(sh, now, Direction::Ingress, ring.len(), &mut later);
                    if allowed == 0 {
                        return (0, Ok((0, 0)));
                    }
                    match up.try_write(&ring[..allowed]) {
                        Ok(n) => (n, Ok((n, allowed))),
                        Err(e) => (0, Err((e, allowed))),
                    }
                }) {
                    Ok(Ok(n)) => {
                        refund(shaping.as_deref_mut(), Direction::Ingress, n.1 - n.0);
                        if later {
                            break;
                        }
                        self.bytes.0 += n.0 as u64;
                        moved = true
                    }
                    Ok(Err((e, allowed))) => {
                        refund(shaping.as_deref_mut(), Direction::Ingress, allowed);
                        let blocked = e.kind() == io::ErrorKind::WouldBlock;
                        match self.after_error(
                            sock,
                            &e,
                            blocked && self.upstream.poll_write_ready(&mut cx).is_pending(),
                        ) {
                            AfterError::Retry => {}
                            AfterError::Wait => break,
                            AfterError::Failed => return true,
                        }
                    }
                    Err(_) => break,
                }
            } else {
                // `!may_recv()` is also true before the handshake ends: only a FIN after it counts.
                if let ConnState::Relaying { to_service, .. } = &mut self.state {
                    if !sock.may_recv() {
                        self.upstream.shutdown_write();
                        *to_service = Half::Closed;
                        moved = true;
                    }
                }
                break;
            }
        }
        moved
    }

    fn upstream_to_client(
        &mut self,
        sock: &mut tcp::Socket<'_>,
        mut shaping: Option<&mut Shaping<'_>>,
        now: Instant,
    ) -> bool {
        let mut moved = false;
        let waker = self.waker_handle.clone();
        let mut cx = Context::from_waker(&waker);
        while !self.state.to_client_done() && sock.can_send() {
            // Ask the shaper only when the upstream has bytes: a grant never
            // used would mark this connection as wanting more than it does.
            if shaping.is_some() && self.upstream.poll_read_ready(&mut cx).is_pending() {
                break;
            }
            let up = &self.upstream;
            let mut later = false;
            let sh = shaping.as_deref_mut();
            match sock.send(|ring| {
                let allowed = grant(sh, now, Direction::Egress, ring.len(), &mut later);
                if allowed == 0 {
                    return (0, Ok((usize::MAX, 0)));
                }
                match up.try_read(&mut ring[..allowed]) {
                    Ok(n) => (n, Ok((n, allowed))),
                    Err(e) => (0, Err((e, allowed))),
                }
            }) {
                Ok(Ok((usize::MAX, _))) => break,
                Ok(Ok((n, allowed))) => {
                    refund(shaping.as_deref_mut(), Direction::Egress, allowed - n);
                    if n == 0 {
                        sock.close();
                        if let ConnState::Relaying { to_client, .. } = &mut self.state {
                            *to_client = Half::Closed;
                        }
                    } else {
                        self.bytes.1 += n as u64;
                    }
                    moved = true;
                    if later {
                        break;
                    }
                }
                Ok(Err((e, allowed))) => {
                    refund(shaping.as_deref_mut(), Direction::Egress, allowed);
                    let blocked = e.kind() == io::ErrorKind::WouldBlock;
                    match self.after_error(sock, &e, blocked && self.upstream.poll_read_ready(&mut cx).is_pending()) {
                        AfterError::Retry => {}
                        AfterError::Wait => break,
                        AfterError::Failed => return true,
                    }
                }
                Err(_) => break,
            }
        }
        moved
    }

    /// After an upstream read or write error: `WouldBlock` either retries (the
    /// socket became ready meanwhile) or waits (`pending`, the waker is set);
    /// anything else resets the client.
    fn after_error(&mut self, sock: &mut tcp::Socket<'_>, e: &io::Error, pending: bool) -> AfterError {
        if e.kind() != io::ErrorKind::WouldBlock {
            self.upstream_failed(sock, e);
            AfterError::Failed
        } else if pending {
            AfterError::Wait
        } else {
            AfterError::Retry
        }
    }

    fn upstream_failed(&mut self, sock: &mut tcp::Socket<'_>, e: &io::Error) {
        tracing::debug!(flow = %self.flow, "upstream failed: {e}; resetting the client");
        sock.abort();
        self.state = ConnState::Reset;
    }
}

/// What a direction's loop does after an upstream error.
enum AfterError {
    /// Ready again: try once more.
    Retry,
    /// Not ready: the waker will bring the connection back.
    Wait,
    /// The upstream failed; the client was reset.
    Failed,
}

/// Gives back to the shaper bytes it granted that did not move.
fn refund(shaping: Option<&mut Shaping<'_>>, dir: Direction, unused: usize) {
    if let Some(s) = shaping {
        s.shaper.refund(s.flow, dir, unused);
    }
}

/// Bytes the shaper lets move now (all of `want` when unshaped); sets `later`
/// when it said to come back.
fn grant(shaping: Option<&mut Shaping<'_>>, now: Instant, dir: Direction, want: usize, later: &mut bool) -> usize {
    let Some(s) = shaping else { return want };
    match s.shaper.poll_grant(now, s.flow, dir, want) {
        Grant::Now(n) => n,
        Grant::Later(_) => {
            *later = true;
            0
        }
    }
}
