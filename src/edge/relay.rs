//! The relay: one client connection (a smoltcp socket on the ENI) spliced to
//! one upstream connection (a tokio `TcpStream` in the host namespace).
//!
//! # Theory of operation
//!
//! Bytes move straight between smoltcp's ring buffers and the kernel socket:
//! `socket.recv(|ring| upstream.try_write(ring))` and
//! `socket.send(|ring| upstream.try_read(ring))`. There is no intermediate
//! buffer and no channel, so a connection's memory is its two smoltcp rings
//! ([`crate::edge::stack::SOCKET_BUFFER`] each) and nothing grows with traffic.
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
//! connection when its rings or state change, tokio when the upstream is
//! ready; both wakers push the connection's id onto the stack's ready list.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

use smoltcp::socket::tcp::{self, State};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use privlink_core::flow::{Direction as ShapeDir, FlowKey};
use privlink_core::model::Upstream;
use privlink_core::policy::{client_hello_sni, SniDeny, SniOutcome, SniPolicy, SniVerdict, MAX_CLIENT_HELLO};
use privlink_core::shaper::{EniShaper, FlowShare, Grant};

/// Index of a connection in the stack's table.
pub type ConnId = usize;

/// Connections with something to do, filled by wakers, drained by the stack.
#[derive(Debug, Default)]
pub struct ReadySet {
    ids: Mutex<Vec<ConnId>>,
    notify: Notify,
}

impl ReadySet {
    /// Queues `id` and wakes the stack.
    fn push(&self, id: ConnId) {
        self.ids.lock().expect("ready list").push(id);
        self.notify.notify_one();
    }

    /// Moves the queued ids into `out` (which the caller reuses).
    pub fn drain_into(&self, out: &mut Vec<ConnId>) {
        std::mem::swap(&mut *self.ids.lock().expect("ready list"), out);
    }

    /// Waits until some connection was queued.
    pub async fn notified(&self) {
        self.notify.notified().await
    }
}

/// The waker of one connection: queues its id once until serviced.
struct ConnWaker {
    id: ConnId,
    queued: AtomicBool,
    ready: Arc<ReadySet>,
}

impl Wake for ConnWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.ready.push(self.id);
        }
    }
}

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

/// Why a connection was reset by the stream layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamDenial {
    /// The SNI policy refused the first flight.
    Sni(SniDeny),
    /// No complete ClientHello within the endpoint's `hello_timeout`.
    HelloTimeout,
}

/// One relayed connection.
pub struct Conn {
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
    upstream: TcpStream,
    waker: Arc<ConnWaker>,
    waker_handle: Waker,
    /// The SNI check still to pass before any byte goes upstream, and its deadline.
    sni: Option<(Arc<SniPolicy>, Instant)>,
    /// Set when the stream layer reset the connection.
    pub denied: Option<StreamDenial>,
    established: bool,
    /// The upstream sent EOF and the socket was closed (FIN queued).
    upstream_eof: bool,
    /// The client sent FIN and the upstream's write side was shut.
    client_eof: bool,
    reset: bool,
    /// The client's FIN was seen (the socket passed through a state after it).
    fin_seen: bool,
    /// Bytes relayed client -> upstream and upstream -> client.
    pub bytes: (u64, u64),
}

impl Conn {
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
        upstream: TcpStream,
        ready: Arc<ReadySet>,
        sni: Option<(Arc<SniPolicy>, Duration)>,
        now: Instant,
    ) -> Conn {
        let waker = Arc::new(ConnWaker { id, queued: AtomicBool::new(false), ready });
        let waker_handle = Waker::from(waker.clone());
        if let Some((_, timeout)) = sni {
            // Come back at the deadline, in case the client never finishes its hello.
            let w = waker_handle.clone();
            tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                w.wake();
            });
        }
        Conn {
            handle,
            flow,
            endpoint,
            eni,
            share: None,
            upstream,
            waker,
            waker_handle,
            sni: sni.map(|(p, timeout)| (p, now + timeout)),
            denied: None,
            established: false,
            upstream_eof: false,
            client_eof: false,
            reset: false,
            fin_seen: false,
            bytes: (0, 0),
        }
    }

    /// Moves what can move, in both directions, without blocking. `shaping`
    /// is the ENI's shaper when the endpoint is shaped; a grant for later
    /// leaves the bytes in the rings (TCP's window does the slowing) and the
    /// shaper's timer brings the connection back.
    pub fn service(&mut self, sock: &mut tcp::Socket<'_>, mut shaping: Option<Shaping<'_>>, now: Instant) -> Progress {
        // Clear first: a wake-up from here on queues the connection again.
        self.waker.queued.store(false, Ordering::Release);
        let state = sock.state();
        // States in which the client's FIN has been received.
        if matches!(state, State::CloseWait | State::LastAck | State::Closing | State::TimeWait) {
            self.fin_seen = true;
        }
        if state == State::Established || self.fin_seen {
            self.established = true;
        }
        if state == State::Closed && !self.fin_seen && !self.reset {
            // Closed without a FIN from the client: it reset the connection (or
            // smoltcp timed it out). Reset the upstream too.
            self.reset_upstream();
        }
        if self.reset {
            return Progress::Finished;
        }
        if self.sni.is_some() && !self.check_first_flight(sock, now) {
            // Nothing goes upstream before the first flight passes; the service
            // may still speak (or fail) first, and the client must hear it.
            let moved = !self.reset && self.upstream_to_client(sock, shaping.as_mut(), now);
            if self.reset {
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
        if self.reset || (matches!(sock.state(), State::Closed | State::TimeWait) && self.client_eof) {
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

    /// Reads the first flight on a copy and asks the SNI policy. `true`: carry on.
    fn check_first_flight(&mut self, sock: &mut tcp::Socket<'_>, now: Instant) -> bool {
        let Some((policy, deadline)) = &self.sni else { return true };
        let queued = sock.recv_queue().min(MAX_CLIENT_HELLO);
        // The first flight starts the ring, so it is one contiguous region:
        // read it in place, no copy.
        let outcome = match sock.peek(queued) {
            Ok(first) if !first.is_empty() => client_hello_sni(first),
            _ => SniOutcome::NeedMore,
        };
        match policy.check(&outcome) {
            SniVerdict::Allow => {
                tracing::debug!(flow = %self.flow, ?outcome, "first flight allowed");
                self.sni = None;
                true
            }
            SniVerdict::Wait if now < *deadline && !self.fin_seen => false,
            // Where non-TLS streams are carried, a client that has sent nothing
            // yet is simply idle (or waits for a service that speaks first):
            // only a started, unfinished ClientHello times out.
            SniVerdict::Wait if queued == 0 && policy.allow_non_tls && !self.fin_seen => false,
            SniVerdict::Wait => self.deny(sock, StreamDenial::HelloTimeout),
            SniVerdict::Deny(why) => self.deny(sock, StreamDenial::Sni(why)),
        }
    }

    fn deny(&mut self, sock: &mut tcp::Socket<'_>, why: StreamDenial) -> bool {
        tracing::info!(flow = %self.flow, "REJECT: {why:?}; resetting the stream");
        sock.abort();
        self.reset_upstream();
        self.denied = Some(why);
        false
    }

    fn reset_upstream(&mut self) {
        let _ = socket2::SockRef::from(&self.upstream).set_linger(Some(Duration::ZERO));
        self.reset = true;
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
        while !self.client_eof {
            if sock.can_recv() {
                let up = &self.upstream;
                let mut later = false;
                let sh = shaping.as_deref_mut();
                match sock.recv(|ring| {
                    let allowed = grant(sh, now, ShapeDir::Ingress, ring.len(), &mut later);
                    if allowed == 0 {
                        return (0, Ok((0, 0)));
                    }
                    match up.try_write(&ring[..allowed]) {
                        Ok(n) => (n, Ok((n, allowed))),
                        Err(e) => (0, Err((e, allowed))),
                    }
                }) {
                    Ok(Ok(n)) => {
                        refund(shaping.as_deref_mut(), ShapeDir::Ingress, n.1 - n.0);
                        if later {
                            break;
                        }
                        self.bytes.0 += n.0 as u64;
                        moved = true
                    }
                    Ok(Err((e, allowed))) => {
                        refund(shaping.as_deref_mut(), ShapeDir::Ingress, allowed);
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
                if self.established && !sock.may_recv() {
                    let _ = socket2::SockRef::from(&self.upstream).shutdown(std::net::Shutdown::Write);
                    self.client_eof = true;
                    moved = true;
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
        while !self.upstream_eof && sock.can_send() {
            // Ask the shaper only when the upstream has bytes: a grant never
            // used would mark this connection as wanting more than it does.
            if shaping.is_some() && self.upstream.poll_read_ready(&mut cx).is_pending() {
                break;
            }
            let up = &self.upstream;
            let mut later = false;
            let sh = shaping.as_deref_mut();
            match sock.send(|ring| {
                let allowed = grant(sh, now, ShapeDir::Egress, ring.len(), &mut later);
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
                    refund(shaping.as_deref_mut(), ShapeDir::Egress, allowed - n);
                    if n == 0 {
                        sock.close();
                        self.upstream_eof = true;
                    } else {
                        self.bytes.1 += n as u64;
                    }
                    moved = true;
                    if later {
                        break;
                    }
                }
                Ok(Err((e, allowed))) => {
                    refund(shaping.as_deref_mut(), ShapeDir::Egress, allowed);
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
        self.reset = true;
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
fn refund(shaping: Option<&mut Shaping<'_>>, dir: ShapeDir, unused: usize) {
    if let Some(s) = shaping {
        s.shaper.refund(s.flow, dir, unused);
    }
}

/// Bytes the shaper lets move now (all of `want` when unshaped); sets `later`
/// when it said to come back.
fn grant(shaping: Option<&mut Shaping<'_>>, now: Instant, dir: ShapeDir, want: usize, later: &mut bool) -> usize {
    let Some(s) = shaping else { return want };
    match s.shaper.poll_grant(now, s.flow, dir, want) {
        Grant::Now(n) => n,
        Grant::Later(_) => {
            *later = true;
            0
        }
    }
}

/// Opens the upstream connection for a new flow: resolve (the host's resolver,
/// unless `host` is an address) and connect, within `timeout`.
pub async fn connect(upstream: &Upstream, timeout: Duration) -> io::Result<TcpStream> {
    let attempt = async {
        let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{} resolves to no address", upstream.host));
        for addr in tokio::net::lookup_host((upstream.host.as_str(), upstream.port)).await? {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    s.set_nodelay(true)?;
                    return Ok(s);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => {
            Err(io::Error::new(io::ErrorKind::TimedOut, format!("connect to {upstream} timed out after {timeout:?}")))
        }
    }
}
