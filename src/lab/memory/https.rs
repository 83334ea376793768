//! HTTPS over the in-memory data path: a service that answers like the
//! public service's stand-in, and a client request from inside the VPC.
//! TLS runs end to end between the two (rustls on both sides); privlink in
//! between sees only the bytes, as on the wire.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use smoltcp::socket::tcp;

use super::lab::{MemoryLab, Service};
use crate::edge::pipe::MemoryPeer;
use crate::lab::probe::client_config;
use crate::lab::standin::aws_reply::{self, StandIn};
use crate::lab::standin::http::{self, Parse};

/// Answers one request per connection as the stand-in of the public
/// service does ([`aws_reply::answer`]: a `GET` gets `200 OK` and a line
/// naming the service, a Query or JSON call an AWS reply), then closes.
/// Request ids count up from 1 in the process, not from the OS's randomness,
/// as everything in the memory lab is made the same every run.
pub struct Https {
    tls: rustls::ServerConnection,
    standin: StandIn,
    request: Vec<u8>,
    answered: bool,
}

impl Https {
    /// A service for `name` presenting the certificate of `config`.
    pub fn new(config: Arc<rustls::ServerConfig>, name: &str) -> Https {
        let tls = rustls::ServerConnection::new(config).expect("a server config rustls takes");
        let greeting = format!("hello from {name} (the public service's stand-in, in memory)\n");
        let standin = StandIn { name: name.to_string(), greeting };
        Https { tls, standin, request: Vec::new(), answered: false }
    }

    /// The answer to the request read so far, once it is whole (or cannot be read).
    fn answer(&self) -> Option<Vec<u8>> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let id = || aws_reply::request_id(u128::from(NEXT_ID.fetch_add(1, Ordering::Relaxed)).to_be_bytes());
        match http::parse(&self.request) {
            Ok(Parse::Partial { .. }) => None,
            Ok(Parse::Complete { request, .. }) => {
                Some(aws_reply::answer(&request, &self.standin, &id()).encode(false, request.method == "HEAD"))
            }
            Err(e) => {
                let (status, reason) = e.status();
                Some(aws_reply::refusal(status, reason, &e.to_string(), &id()).encode(false, false))
            }
        }
    }
}

impl Service for Https {
    fn serve(&mut self, peer: &mut MemoryPeer) -> bool {
        loop {
            match self.tls.read_tls(peer) {
                Ok(0) => return false,
                Ok(_) => {
                    if self.tls.process_new_packets().is_err() {
                        // The alert goes out, then the connection ends.
                        let _ = self.tls.write_tls(peer);
                        return false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return false,
            }
        }
        let mut buf = [0u8; 4096];
        // Past the bound, parse refuses the request: no need to hold more.
        while self.request.len() <= http::MAX_REQUEST_BYTES {
            match self.tls.reader().read(&mut buf) {
                Ok(n) if n > 0 => self.request.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        if !self.answered {
            if let Some(resp) = self.answer() {
                self.tls.writer().write_all(&resp).expect("rustls buffers plaintext");
                self.tls.send_close_notify();
                self.answered = true;
            }
        }
        while self.tls.wants_write() {
            match self.tls.write_tls(peer) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
        if self.answered {
            peer.shutdown();
            return false;
        }
        true
    }
}

/// What an HTTPS request through the lab saw.
#[derive(Debug)]
pub struct HttpsReply {
    /// The certificate chain the server presented (leaf first).
    pub peer_certs: Vec<CertificateDer<'static>>,
    /// The whole HTTP response.
    pub response: String,
}

/// A client socket as a non-blocking byte stream, for rustls.
struct SocketIo<'a, 'b>(&'a mut tcp::Socket<'b>);

impl Read for SocketIo<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.recv_slice(buf) {
            Ok(0) => Err(io::ErrorKind::WouldBlock.into()),
            Ok(n) => Ok(n),
            Err(tcp::RecvError::Finished) => Ok(0),
            Err(e) => Err(io::Error::new(io::ErrorKind::ConnectionReset, format!("{e:?}"))),
        }
    }
}

impl Write for SocketIo<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0.send_slice(buf) {
            Ok(0) => Err(io::ErrorKind::WouldBlock.into()),
            Ok(n) => Ok(n),
            Err(e) => Err(io::Error::new(io::ErrorKind::BrokenPipe, format!("{e:?}"))),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl MemoryLab {
    /// `GET /` over HTTPS from `src` to `dst` with SNI `name`, verifying the
    /// server against `ca`. Errors: the TLS failure, or the connection ending
    /// (refused, reset) before a response.
    pub fn https_get(
        &mut self,
        src: Ipv4Addr,
        dst: SocketAddrV4,
        name: &str,
        ca: &CertificateDer<'static>,
    ) -> io::Result<HttpsReply> {
        let server_name = ServerName::try_from(name.to_string()).map_err(io::Error::other)?;
        let mut tls = rustls::ClientConnection::new(client_config(ca)?, server_name).map_err(io::Error::other)?;
        let request = format!("GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n");
        tls.writer().write_all(request.as_bytes())?;
        let h = self.connect(src, dst);
        let mut response = Vec::new();
        let mut outcome: Option<io::Result<()>> = None;
        self.run_until("an HTTPS exchange", |lab| {
            let sock = lab.socket(h);
            while tls.wants_write() && sock.can_send() {
                if tls.write_tls(&mut SocketIo(sock)).is_err() {
                    break;
                }
            }
            while sock.can_recv() {
                if tls.read_tls(&mut SocketIo(sock)).is_err() {
                    break;
                }
                if let Err(e) = tls.process_new_packets() {
                    outcome = Some(Err(io::Error::other(e)));
                    return true;
                }
            }
            // The server's FIN (or a reset) once the handshake has begun: tell rustls.
            let ended = !sock.may_recv() && !matches!(sock.state(), tcp::State::SynSent | tcp::State::SynReceived);
            if ended {
                let _ = tls.read_tls(&mut io::empty());
                if let Err(e) = tls.process_new_packets() {
                    outcome = Some(Err(io::Error::other(e)));
                    return true;
                }
            }
            let mut buf = [0u8; 4096];
            loop {
                match tls.reader().read(&mut buf) {
                    Ok(0) => {
                        outcome = Some(Ok(()));
                        return true;
                    }
                    Ok(n) => response.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock && !ended => return false,
                    Err(e) => {
                        outcome = Some(Err(e));
                        return true;
                    }
                }
            }
        });
        self.socket(h).close();
        outcome.unwrap_or(Ok(()))?;
        let peer_certs = tls.peer_certificates().unwrap_or_default().iter().map(|c| c.clone().into_owned()).collect();
        Ok(HttpsReply { peer_certs, response: String::from_utf8_lossy(&response).into_owned() })
    }
}
