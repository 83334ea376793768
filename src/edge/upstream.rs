//! The service side of a relayed stream: what the relay needs of an upstream
//! connection, and how one is opened.
//!
//! The relay moves bytes between smoltcp's rings and the upstream without a
//! buffer of its own, so it needs exactly the non-blocking calls a tokio
//! `TcpStream` has: try to read or write now, and register a waker for when
//! that would succeed. [`UpstreamIo`] names those; the host's TCP socket is
//! one implementation, and the in-memory pipe of `lab::memory` the other, so
//! tests drive the whole data path without a socket.
//!
//! Opening is a [`Connector`]'s job: it starts an attempt and reports the
//! result on a channel the stack polls, so a slow service never blocks the
//! queue. The TCP connector resolves the service's name with the host's
//! resolver and connects within the endpoint's `connect_timeout`.

use std::io;
use std::task::{Context, Poll};
use std::time::Duration;

use privlink_core::flow::FlowKey;
use privlink_core::model::Upstream;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// An open upstream connection, used without blocking.
pub trait UpstreamIo {
    /// Reads what is there now: `WouldBlock` if nothing, `Ok(0)` at EOF.
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes what fits now: `WouldBlock` if nothing does.
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
    /// Ready to read, or the waker in `cx` is registered for when it is.
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Ready to write, or the waker in `cx` is registered for when it is.
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Sends EOF (the client's FIN, relayed).
    fn shutdown_write(&self);
    /// Makes closing send a reset instead of EOF (the client's RST, relayed).
    fn reset_on_close(&self);
}

impl UpstreamIo for TcpStream {
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        TcpStream::try_read(self, buf)
    }
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        TcpStream::try_write(self, buf)
    }
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_read_ready(self, cx)
    }
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_write_ready(self, cx)
    }
    fn shutdown_write(&self) {
        let _ = socket2::SockRef::from(self).shutdown(std::net::Shutdown::Write);
    }
    fn reset_on_close(&self) {
        // SO_LINGER 0: close() sends an RST.
        let _ = socket2::SockRef::from(self).set_linger(Some(Duration::ZERO));
    }
}

/// What a finished connect attempt reports.
pub struct Connected<S> {
    /// The client's flow the attempt was for.
    pub flow: FlowKey,
    /// The connection, or why there is none.
    pub result: io::Result<S>,
}

/// Opens upstream connections for new flows.
pub trait Connector {
    /// The connections it opens.
    type Stream: UpstreamIo;
    /// Starts connecting `flow` to `upstream` within `timeout`; the result
    /// arrives on `done` (at most one per call).
    fn start(
        &mut self,
        flow: FlowKey,
        upstream: &Upstream,
        timeout: Duration,
        done: mpsc::Sender<Connected<Self::Stream>>,
    );
}

/// Connects over the host's network, one tokio task per attempt.
#[derive(Debug, Default, Clone, Copy)]
pub struct TcpConnector;

impl Connector for TcpConnector {
    type Stream = TcpStream;
    fn start(
        &mut self,
        flow: FlowKey,
        upstream: &Upstream,
        timeout: Duration,
        done: mpsc::Sender<Connected<TcpStream>>,
    ) {
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let result = connect(&upstream, timeout).await;
            let _ = done.send(Connected { flow, result }).await;
        });
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
