//! The relay: one client connection (a smoltcp socket on the ENI) spliced to
//! one upstream connection (a tokio `TcpStream` in the host namespace).
//!
//! # Theory of operation
//!
//! Bytes move straight between smoltcp's ring buffers and the kernel socket:
//! `socket.recv(|ring| upstream.try_write(ring))` and
//! `socket.send(|ring| upstream.try_read(ring))`. There is no intermediate
//! buffer and no channel, so a connection's memory is its two smoltcp rings
//! ([`crate::stack::SOCKET_BUFFER`] each) and nothing grows with traffic.
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
use std::time::Duration;

use smoltcp::socket::tcp::{self, State};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::model::Upstream;
use crate::packet::FlowKey;

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

/// One relayed connection.
pub struct Conn {
    /// The smoltcp socket on the ENI.
    pub handle: smoltcp::iface::SocketHandle,
    /// Client and ENI addresses.
    pub flow: FlowKey,
    /// Endpoint index.
    pub endpoint: usize,
    upstream: TcpStream,
    waker: Arc<ConnWaker>,
    waker_handle: Waker,
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
    /// A connection for socket `handle`, relaying to `upstream`.
    pub fn new(
        id: ConnId,
        handle: smoltcp::iface::SocketHandle,
        flow: FlowKey,
        endpoint: usize,
        upstream: TcpStream,
        ready: Arc<ReadySet>,
    ) -> Conn {
        let waker = Arc::new(ConnWaker { id, queued: AtomicBool::new(false), ready });
        let waker_handle = Waker::from(waker.clone());
        Conn {
            handle,
            flow,
            endpoint,
            upstream,
            waker,
            waker_handle,
            established: false,
            upstream_eof: false,
            client_eof: false,
            reset: false,
            fin_seen: false,
            bytes: (0, 0),
        }
    }

    /// Moves what can move, in both directions, without blocking.
    pub fn service(&mut self, sock: &mut tcp::Socket<'_>) -> Progress {
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
            let _ = socket2::SockRef::from(&self.upstream).set_linger(Some(Duration::ZERO));
            self.reset = true;
        }
        if self.reset {
            return Progress::Finished;
        }
        // Even in TimeWait or Closed the rx ring may still hold the client's last
        // bytes: they go upstream before the connection counts as finished.
        let moved = self.client_to_upstream(sock) | self.upstream_to_client(sock);
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

    fn client_to_upstream(&mut self, sock: &mut tcp::Socket<'_>) -> bool {
        let mut moved = false;
        let mut cx = Context::from_waker(&self.waker_handle);
        while !self.client_eof {
            if sock.can_recv() {
                let up = &self.upstream;
                match sock.recv(|ring| match up.try_write(ring) {
                    Ok(n) => (n, Ok(n)),
                    Err(e) => (0, Err(e)),
                }) {
                    Ok(Ok(n)) => {
                        self.bytes.0 += n as u64;
                        moved = true
                    }
                    Ok(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                        if self.upstream.poll_write_ready(&mut cx).is_pending() {
                            break;
                        }
                    }
                    Ok(Err(e)) => {
                        self.upstream_failed(sock, &e);
                        return true;
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

    fn upstream_to_client(&mut self, sock: &mut tcp::Socket<'_>) -> bool {
        let mut moved = false;
        let mut cx = Context::from_waker(&self.waker_handle);
        while !self.upstream_eof && sock.can_send() {
            let up = &self.upstream;
            match sock.send(|ring| match up.try_read(ring) {
                Ok(n) => (n, Ok(n)),
                Err(e) => (0, Err(e)),
            }) {
                Ok(Ok(0)) => {
                    sock.close();
                    self.upstream_eof = true;
                    moved = true;
                }
                Ok(Ok(n)) => {
                    self.bytes.1 += n as u64;
                    moved = true
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.upstream.poll_read_ready(&mut cx).is_pending() {
                        break;
                    }
                }
                Ok(Err(e)) => {
                    self.upstream_failed(sock, &e);
                    return true;
                }
                Err(_) => break,
            }
        }
        moved
    }

    fn upstream_failed(&mut self, sock: &mut tcp::Socket<'_>, e: &io::Error) {
        tracing::debug!(flow = %self.flow, "upstream failed: {e}; resetting the client");
        sock.abort();
        self.reset = true;
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
