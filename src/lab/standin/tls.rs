//! The HTTPS stand-in for a public service on loopback: TLS with the
//! stand-in's own certificate, then HTTP/1.1 answered as AWS answers
//! ([`super::aws_reply`]), several requests per connection as the SDKs send
//! them.
//!
//! What one client can hold is bounded: a request is at most
//! [`super::http::MAX_REQUEST_BYTES`], a connection idle for [`IDLE`] is
//! closed, and at most [`MAX_CONNECTIONS`] are served at once (the rest wait
//! in the listen queue).

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::timeout;

use super::aws_reply::{self, StandIn};
use super::cert::ServiceCert;
use super::http::{self, Parse};

/// How long a connection may sit without a byte from the client (handshake included).
pub const IDLE: Duration = Duration::from_secs(60);

/// How many connections are served at once.
pub const MAX_CONNECTIONS: usize = 256;

/// A loopback HTTPS server playing the public service.
pub struct TlsStandIn {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its certificates.
    pub cert: ServiceCert,
    task: tokio::task::JoinHandle<()>,
}

impl TlsStandIn {
    /// Starts the stand-in for `name` on 127.0.0.1 (port 0: any free port).
    pub async fn start(name: &str, port: u16) -> io::Result<TlsStandIn> {
        TlsStandIn::start_for(&[name], port).await
    }

    /// Starts one stand-in answering for all of `names` (the first is the
    /// certificate's common name and the name its answers give).
    pub async fn start_for<S: AsRef<str>>(names: &[S], port: u16) -> io::Result<TlsStandIn> {
        let cert = ServiceCert::for_names(names).map_err(io::Error::other)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(cert.server_config().map_err(io::Error::other)?);
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
        let addr = listener.local_addr()?;
        let name = cert.names[0].clone();
        let greeting = format!("hello from {name} (the public service's stand-in on {addr})\n");
        let standin = Arc::new(StandIn { name, greeting });
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let task = tokio::spawn(async move {
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let tcp = match listener.accept().await {
                    Ok((tcp, _)) => tcp,
                    // Out of descriptors, or a connection reset while queued: go on.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let (acceptor, standin) = (acceptor.clone(), standin.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    if let Ok(Ok(tls)) = timeout(IDLE, acceptor.accept(tcp)).await {
                        serve(tls, &standin).await;
                    }
                });
            }
        });
        Ok(TlsStandIn { addr, cert, task })
    }
}

impl Drop for TlsStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Answers the requests on one connection, in order, until the client
/// closes, asks to close, idles, or sends what cannot be read (answered,
/// then closed). The buffer never holds more than one bounded request and
/// one read beyond it.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, standin: &StandIn) {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let mut continued = false;
    loop {
        match http::parse(&buf) {
            Ok(Parse::Complete { request, consumed }) => {
                buf.drain(..consumed);
                continued = false;
                let keep_alive = request.keep_alive();
                let reply = aws_reply::answer(&request, standin, &request_id());
                if stream.write_all(&reply.encode(keep_alive, request.method == "HEAD")).await.is_err() {
                    return;
                }
                if !keep_alive {
                    break;
                }
                continue;
            }
            Ok(Parse::Partial { head }) => {
                if !continued && head.is_some_and(|h| h.expects_continue()) {
                    continued = true;
                    if stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                let (status, reason) = e.status();
                let reply = aws_reply::refusal(status, reason, &e.to_string(), &request_id());
                let _ = stream.write_all(&reply.encode(false, false)).await;
                break;
            }
        }
        match timeout(IDLE, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    }
    // close_notify, so the client's read of the answer ends cleanly.
    let _ = stream.shutdown().await;
}

/// A fresh request id from the OS's randomness (a counter if it has none).
fn request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let mut bytes = [0u8; 16];
    if getrandom::getrandom(&mut bytes).is_err() {
        bytes[8..].copy_from_slice(&NEXT.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    }
    aws_reply::request_id(bytes)
}
