//! [`TcpSession`]: one DNS-over-TCP connection to the VPC resolver, as
//! bytes in, bytes out and one deadline (RFC 7766), sans-IO.
//!
//! # Theory of operation
//! The edge reads the client's stream straight into [`TcpSession::read_buf`],
//! which is exactly the bytes still missing from the current message: its
//! 2-byte length, then its body. [`TcpSession::filled`] says when a whole
//! query is there ([`Framed::Query`]); the edge answers it (the responder,
//! the cache, or a forward) and takes it ([`TcpSession::take_query`]), and
//! the next one is read at once, before any answer: queries are pipelined
//! (section 6.2.1.1), so a slow forwarded answer delays no other query, and
//! answers go out as they are ready, out of order (section 7; each carries
//! its query's id). A length that no query has (under a header, over
//! [`MAX_QUERY_LEN`]) is [`Framed::Invalid`]: the edge resets the
//! connection rather than wait for 64 KiB that will not come.
//!
//! Answers are framed into one output buffer the edge drains
//! ([`TcpSession::output`], [`TcpSession::wrote`]). No more queries are read
//! while [`MAX_TCP_PIPELINE`] are being forwarded or [`MAX_TCP_BACKLOG`]
//! bytes of answers wait for the client: TCP's window then slows it down.
//!
//! # Timers (one deadline at a time, [`TcpSession::deadline`])
//! - [`TCP_QUERY_TIMEOUT`] (5 s): a new connection must bring its first
//!   query within it, a query begun must be complete within it of its first
//!   byte, answers waiting for the client must move within it, and after our
//!   FIN the client must close within it. Past it the connection is reset:
//!   a spoofed SYN, a client that announced a query and went silent, or one
//!   that does not read, holds its place for 5 s, not 300.
//! - [`TCP_IDLE_TIMEOUT`] (30 s, as unbound's `tcp-idle-timeout`; RFC 7766
//!   section 6.2.3 asks servers to close idle connections): after it with
//!   nothing in progress, the server closes (FIN), and the client that wants
//!   more opens a new connection.
//! - None while queries are being forwarded: the forwarder's own timeouts
//!   end each of them with an answer or a SERVFAIL.

use std::time::{Duration, Instant};

use super::wire::HEADER_LEN;
use super::MAX_QUERY_LEN;

/// How long a connection has for its first query, the rest of a query it began,
/// taking its answers, and closing after our FIN.
pub const TCP_QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection with nothing in progress stays open.
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Queries of one connection being forwarded at once; past it, no more are read.
pub const MAX_TCP_PIPELINE: usize = 16;
/// Answer bytes waiting for the client before no more queries are read.
pub const MAX_TCP_BACKLOG: usize = 16 << 10;

/// The length prefix of a DNS message over TCP.
const PREFIX: usize = 2;

/// What the bytes just read made of the current message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framed {
    /// Not complete yet.
    Partial,
    /// A whole query: [`TcpSession::query`].
    Query,
    /// A length no query has: reset the connection.
    Invalid,
}

/// What a session's deadline calls for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// Idle: close it (FIN); it lingers [`TCP_QUERY_TIMEOUT`] for the client to close.
    Close,
    /// Reset it.
    Reset,
}

/// One DNS-over-TCP connection (see the module doc).
#[derive(Debug)]
pub struct TcpSession {
    /// The current message: length prefix, then body.
    frame: Box<[u8]>,
    /// Bytes of `frame` received.
    have: usize,
    query_ready: bool,
    /// Framed answers; `out[sent..]` is still to be written.
    out: Vec<u8>,
    sent: usize,
    /// Queries being forwarded.
    in_flight: usize,
    opened: Instant,
    /// The last byte read or written.
    last_activity: Instant,
    /// The first byte of the current message, while it is incomplete.
    frame_started: Option<Instant>,
    /// Queries taken so far.
    queries: u64,
    /// The client closed its side (EOF).
    peer_closed: bool,
    /// When we closed ours (FIN), after the idle timeout.
    closing: Option<Instant>,
}

impl TcpSession {
    /// A session for a connection accepted at `now`.
    pub fn new(now: Instant) -> TcpSession {
        TcpSession {
            frame: vec![0; PREFIX + MAX_QUERY_LEN].into_boxed_slice(),
            have: 0,
            query_ready: false,
            out: Vec::new(),
            sent: 0,
            in_flight: 0,
            opened: now,
            last_activity: now,
            frame_started: None,
            queries: 0,
            peer_closed: false,
            closing: None,
        }
    }

    /// Whether it may read now: not closed by the client, no query waiting
    /// to be taken, and room in the pipeline and the backlog.
    pub fn may_read(&self) -> bool {
        !self.peer_closed
            && !self.query_ready
            && (self.closing.is_some()
                || self.in_flight < MAX_TCP_PIPELINE && self.out.len() - self.sent < MAX_TCP_BACKLOG)
    }

    /// Where the next bytes go: exactly what is missing from the current
    /// message (after our FIN, anything: it is discarded). Empty when it may not read.
    pub fn read_buf(&mut self) -> &mut [u8] {
        if !self.may_read() {
            return &mut [];
        }
        if self.closing.is_some() {
            return &mut self.frame[..];
        }
        let end = if self.have < PREFIX { PREFIX } else { PREFIX + self.body_len() };
        &mut self.frame[self.have..end]
    }

    fn body_len(&self) -> usize {
        usize::from(u16::from_be_bytes([self.frame[0], self.frame[1]]))
    }

    /// `n` bytes were read into [`TcpSession::read_buf`] at `now`.
    pub fn filled(&mut self, now: Instant, n: usize) -> Framed {
        if n == 0 {
            return Framed::Partial;
        }
        self.last_activity = now;
        if self.closing.is_some() {
            return Framed::Partial;
        }
        if self.have == 0 {
            self.frame_started = Some(now);
        }
        self.have += n;
        if self.have < PREFIX {
            return Framed::Partial;
        }
        let len = self.body_len();
        if !(HEADER_LEN..=MAX_QUERY_LEN).contains(&len) {
            return Framed::Invalid;
        }
        if self.have < PREFIX + len {
            return Framed::Partial;
        }
        self.query_ready = true;
        self.frame_started = None;
        Framed::Query
    }

    /// The whole query, while [`Framed::Query`] has not been taken.
    pub fn query(&self) -> &[u8] {
        if self.query_ready {
            &self.frame[PREFIX..self.have]
        } else {
            &[]
        }
    }

    /// Done with the query: the next message may be read. `forwarded`: its
    /// answer comes later, through [`TcpSession::push_answer`].
    pub fn take_query(&mut self, forwarded: bool) {
        self.query_ready = false;
        self.have = 0;
        self.queries += 1;
        self.in_flight += usize::from(forwarded);
    }

    /// Queues `msg` (at most 65,535 bytes) for the client; `forwarded`: the
    /// answer to a query taken as forwarded.
    pub fn push_answer(&mut self, now: Instant, msg: &[u8], forwarded: bool) {
        if forwarded {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
        }
        let len = u16::try_from(msg.len()).unwrap_or(u16::MAX);
        self.out.extend_from_slice(&len.to_be_bytes());
        self.out.extend_from_slice(&msg[..usize::from(len)]);
        self.last_activity = now;
    }

    /// Framed answers still to be written.
    pub fn output(&self) -> &[u8] {
        &self.out[self.sent..]
    }

    /// `n` bytes of [`TcpSession::output`] were written at `now`.
    pub fn wrote(&mut self, now: Instant, n: usize) {
        self.sent = (self.sent + n).min(self.out.len());
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
        }
        if n > 0 {
            self.last_activity = now;
        }
    }

    /// The client closed its side: answers still due are written, then the session ends.
    pub fn peer_closed(&mut self) {
        self.peer_closed = true;
        self.frame_started = None;
    }

    /// Whether it is over: the client closed (or we did, and it followed), and
    /// nothing is left to answer or write. The edge then closes its side.
    pub fn finished(&self) -> bool {
        self.peer_closed && (self.closing.is_some() || self.in_flight == 0 && self.output().is_empty())
    }

    /// When it must be looked at again, if ever (see the module doc).
    pub fn deadline(&self) -> Option<Instant> {
        if let Some(since) = self.closing {
            return Some(since + TCP_QUERY_TIMEOUT);
        }
        if self.peer_closed && self.output().is_empty() {
            return None;
        }
        if !self.output().is_empty() {
            return Some(self.last_activity + TCP_QUERY_TIMEOUT);
        }
        if let Some(started) = self.frame_started {
            return Some(started + TCP_QUERY_TIMEOUT);
        }
        if self.in_flight > 0 || self.query_ready {
            return None;
        }
        if self.queries == 0 {
            return Some(self.opened + TCP_QUERY_TIMEOUT);
        }
        Some(self.last_activity + TCP_IDLE_TIMEOUT)
    }

    /// Its deadline came at `now`: what to do. An idle session starts closing.
    pub fn expire(&mut self, now: Instant) -> Expiry {
        let idle = self.closing.is_none()
            && self.queries > 0
            && self.frame_started.is_none()
            && self.in_flight == 0
            && self.output().is_empty();
        if idle {
            self.closing = Some(now);
            Expiry::Close
        } else {
            Expiry::Reset
        }
    }

    /// The last byte read or written (the least recent is evicted first).
    pub fn last_activity(&self) -> Instant {
        self.last_activity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(msg: &[u8]) -> Vec<u8> {
        let mut f = (msg.len() as u16).to_be_bytes().to_vec();
        f.extend_from_slice(msg);
        f
    }

    /// Feeds `bytes` as the edge does, a read at a time; returns what each complete read made.
    fn feed(s: &mut TcpSession, now: Instant, mut bytes: &[u8]) -> Vec<Framed> {
        let mut seen = Vec::new();
        while !bytes.is_empty() {
            let buf = s.read_buf();
            if buf.is_empty() {
                break;
            }
            let n = buf.len().min(bytes.len());
            buf[..n].copy_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            match s.filled(now, n) {
                Framed::Partial => {}
                f => seen.push(f),
            }
        }
        seen
    }

    #[test]
    fn pipelined_queries_are_read_one_message_at_a_time() {
        let t0 = Instant::now();
        let mut s = TcpSession::new(t0);
        let (q1, q2) = ([1u8; 20], [2u8; 30]);
        let stream = [framed(&q1), framed(&q2)].concat();
        assert_eq!(feed(&mut s, t0, &stream[..21]), []);
        assert_eq!(feed(&mut s, t0, &stream[21..22]), [Framed::Query]);
        assert_eq!(s.query(), q1);
        assert!(s.read_buf().is_empty(), "nothing more until it is taken");
        s.take_query(true);
        assert_eq!(feed(&mut s, t0, &stream[22..]), [Framed::Query]);
        assert_eq!(s.query(), q2, "read before the first query's answer");
        s.take_query(false);
        s.push_answer(t0, b"second", false);
        s.push_answer(t0, b"first", true);
        assert_eq!(s.output(), [&[0, 6][..], b"second", &[0, 5], b"first"].concat());
        s.wrote(t0, 3);
        assert_eq!(s.output().len(), 12);
        s.wrote(t0, 12);
        assert!(s.output().is_empty());
    }

    #[test]
    fn a_length_no_query_has_is_invalid_at_once() {
        let t0 = Instant::now();
        for len in [0u16, 11, MAX_QUERY_LEN as u16 + 1, u16::MAX] {
            let mut s = TcpSession::new(t0);
            assert_eq!(feed(&mut s, t0, &len.to_be_bytes()), [Framed::Invalid], "{len}");
        }
    }

    #[test]
    fn the_pipeline_and_the_backlog_are_bounded() {
        let t0 = Instant::now();
        let mut s = TcpSession::new(t0);
        for _ in 0..MAX_TCP_PIPELINE {
            assert!(s.may_read());
            assert_eq!(feed(&mut s, t0, &framed(&[0; 12])), [Framed::Query]);
            s.take_query(true);
        }
        assert!(!s.may_read() && s.read_buf().is_empty());
        s.push_answer(t0, &[0; 12], true);
        assert!(s.may_read());
        s.push_answer(t0, &vec![0; MAX_TCP_BACKLOG], false);
        assert!(!s.may_read(), "the client does not take its answers");
    }

    #[test]
    fn deadlines_follow_what_the_session_waits_for() {
        let t0 = Instant::now();
        let mut s = TcpSession::new(t0);
        assert_eq!(s.deadline(), Some(t0 + TCP_QUERY_TIMEOUT), "the first query");
        let t1 = t0 + Duration::from_secs(1);
        feed(&mut s, t1, &[0, 12, 1, 2]);
        assert_eq!(s.deadline(), Some(t1 + TCP_QUERY_TIMEOUT), "the rest of a begun query");
        let t2 = t1 + Duration::from_secs(1);
        feed(&mut s, t2, &[0; 10]);
        s.take_query(true);
        assert_eq!(s.deadline(), None, "the forwarder ends it");
        let t3 = t2 + Duration::from_secs(1);
        s.push_answer(t3, &[0; 12], true);
        assert_eq!(s.deadline(), Some(t3 + TCP_QUERY_TIMEOUT), "the client must take its answer");
        s.wrote(t3, 14);
        assert_eq!(s.deadline(), Some(t3 + TCP_IDLE_TIMEOUT), "idle");
        assert_eq!(s.expire(t3 + TCP_IDLE_TIMEOUT), Expiry::Close);
        assert_eq!(s.deadline(), Some(t3 + TCP_IDLE_TIMEOUT + TCP_QUERY_TIMEOUT), "the client's turn to close");
        assert_eq!(s.expire(t3 + TCP_IDLE_TIMEOUT + TCP_QUERY_TIMEOUT), Expiry::Reset);
        // A connection that never brings a query is reset, not closed.
        let mut silent = TcpSession::new(t0);
        assert_eq!(silent.expire(t0 + TCP_QUERY_TIMEOUT), Expiry::Reset);
    }

    #[test]
    fn the_client_closing_finishes_the_session_once_its_answers_are_out() {
        let t0 = Instant::now();
        let mut s = TcpSession::new(t0);
        feed(&mut s, t0, &framed(&[0; 12]));
        s.take_query(true);
        s.peer_closed();
        assert!(!s.finished(), "an answer is still due");
        s.push_answer(t0, &[0; 12], true);
        assert!(!s.finished());
        s.wrote(t0, 14);
        assert!(s.finished());
        assert_eq!(s.deadline(), None);
    }
}
