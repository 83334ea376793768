//! Where forwarded queries go: [`ForwardNet`], and [`HostNetwork`], the
//! host's sockets (the memory lab has its own, on lab time).
//!
//! Each try ([`Token`]) gets a socket of its own. Over UDP it is bound to
//! port 0, so the kernel picks a random ephemeral port for every try (RFC
//! 5452 section 9.2: with the random id, an off-path spoofer must guess both
//! at once), and connected to its server, so only that address's datagrams
//! reach it and an ICMP "port unreachable" comes back as an error at once
//! (the forwarder then fails over without waiting). Every datagram it
//! receives goes to the forwarder, which keeps only the one that answers the
//! try; the socket lives until the forwarder is done with the try
//! ([`ForwardNet::cancel`]). Over TCP (a client that asked over TCP) it
//! connects, sends the length-prefixed query and reads one answer.
//!
//! A try's task stops by itself after [`TRY_LIFETIME`] or
//! [`MAX_DATAGRAMS_PER_TRY`] datagrams, should the forwarder never cancel
//! it; replies wait in a channel of [`MAX_FORWARDS`] (more are dropped: the
//! try then times out like a lost datagram).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use privlink_core::dns::{Token, Transport, FORWARD_TRY_TIMEOUT, MAX_FORWARDS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

/// The longest a try's socket lives without being cancelled.
pub const TRY_LIFETIME: Duration = Duration::from_secs(4);
/// Datagrams one try's socket passes on, at most.
pub const MAX_DATAGRAMS_PER_TRY: usize = 16;
/// The largest UDP answer read: over the 1,232 bytes we advertise, so an
/// upstream that ignores it is still read whole (and then truncated for the
/// client); a longer datagram is cut, fails to parse and is ignored.
const MAX_UDP_ANSWER: usize = 4096;

/// What came back for a try.
#[derive(Debug)]
pub struct Reply {
    /// The try.
    pub token: Token,
    /// A datagram (or TCP message) from its server, or why there is none.
    pub result: io::Result<Vec<u8>>,
}

/// Carries the forwarder's tries to the upstream resolvers and their replies back.
pub trait ForwardNet: Send {
    /// Sends `query` for the try `token` to `server` over `transport`, at `now`.
    fn send(&mut self, now: Instant, token: Token, server: SocketAddr, transport: Transport, query: &[u8]);
    /// The try is over: close its socket; anything more it receives is not wanted.
    fn cancel(&mut self, token: Token);
    /// A reply that has arrived by `now`, if any.
    fn try_recv(&mut self, now: Instant) -> Option<Reply>;
    /// When a reply is due without any I/O to wait for (the memory lab's); `None` otherwise.
    fn poll_at(&self) -> Option<Instant>;
    /// Ready when [`ForwardNet::try_recv`] has something; registers `cx`'s waker otherwise.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()>;
}

/// The host's network: a tokio task and a socket per try (see the module doc).
pub struct HostNetwork {
    tx: mpsc::Sender<Reply>,
    rx: mpsc::Receiver<Reply>,
    /// A reply taken by `poll_ready`, for the next `try_recv`.
    peeked: Option<Reply>,
    tries: HashMap<Token, AbortHandle>,
}

impl Default for HostNetwork {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(MAX_FORWARDS);
        HostNetwork { tx, rx, peeked: None, tries: HashMap::new() }
    }
}

impl ForwardNet for HostNetwork {
    fn send(&mut self, _now: Instant, token: Token, server: SocketAddr, transport: Transport, query: &[u8]) {
        let (tx, query) = (self.tx.clone(), query.to_vec());
        let task = tokio::spawn(async move {
            let report = |result| {
                // Full: the try times out, as if the datagram were lost.
                let _ = tx.try_send(Reply { token, result });
            };
            let work = async {
                match transport {
                    Transport::Udp => udp_try(server, &query, &report).await,
                    Transport::Tcp => tcp_try(server, &query).await.map(|answer| report(Ok(answer))),
                }
            };
            // Past its lifetime a try just ends: the forwarder has moved on by then.
            if let Ok(Err(e)) = tokio::time::timeout(TRY_LIFETIME, work).await {
                report(Err(e));
            }
        });
        self.tries.insert(token, task.abort_handle());
    }

    fn cancel(&mut self, token: Token) {
        if let Some(task) = self.tries.remove(&token) {
            task.abort();
        }
    }

    fn try_recv(&mut self, _now: Instant) -> Option<Reply> {
        self.peeked.take().or_else(|| self.rx.try_recv().ok())
    }

    fn poll_at(&self) -> Option<Instant> {
        None
    }

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.peeked.is_some() {
            return Poll::Ready(());
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(reply)) => {
                self.peeked = Some(reply);
                Poll::Ready(())
            }
            // The sender lives in `self`: the channel never closes.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }
}

/// One UDP try: a fresh socket on a random port, connected to `server`;
/// every datagram from it is reported, up to [`MAX_DATAGRAMS_PER_TRY`].
async fn udp_try(server: SocketAddr, query: &[u8], report: &impl Fn(io::Result<Vec<u8>>)) -> io::Result<()> {
    let bind: SocketAddr = if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let sock = UdpSocket::bind(bind).await?;
    sock.connect(server).await?;
    sock.send(query).await?;
    let mut buf = [0u8; MAX_UDP_ANSWER];
    for _ in 0..MAX_DATAGRAMS_PER_TRY {
        let n = sock.recv(&mut buf).await?;
        report(Ok(buf[..n].to_vec()));
    }
    Ok(())
}

/// One TCP try: connect within [`FORWARD_TRY_TIMEOUT`], send the framed query, read one framed answer.
async fn tcp_try(server: SocketAddr, query: &[u8]) -> io::Result<Vec<u8>> {
    let mut up = tokio::time::timeout(FORWARD_TRY_TIMEOUT, TcpStream::connect(server))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("connect to {server}")))??;
    let mut framed = Vec::with_capacity(2 + query.len());
    framed.extend_from_slice(&(query.len() as u16).to_be_bytes());
    framed.extend_from_slice(query);
    up.write_all(&framed).await?;
    let n = usize::from(up.read_u16().await?);
    let mut answer = vec![0u8; n];
    up.read_exact(&mut answer).await?;
    Ok(answer)
}
