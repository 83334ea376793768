//! The DNS responder target: the private zone of the fixture's plan, a
//! message or a DNS-over-TCP stream from the input, as the edge's resolver
//! serves them (`src/edge/resolver/`).
//!
//! The first byte chooses: bit 0 TCP (else UDP), bit 1 privacy mode
//! (`forward = []`: REFUSED, else names outside the zone are forwarded),
//! bit 2 a TCP stream read through [`TcpSession`] in chunks of the size bits
//! 3 to 5 pick (else one message). The rest is the message or the stream.
//!
//! Invariants besides "never panics": a response parses back (hickory, an
//! independent parser), is a response with the query's id, fits UDP's limit
//! (512 bytes without EDNS, 1,232 with); the same query gets the same bytes
//! twice; `Forward` only when forwarding is on and `Drop` leaves nothing to
//! send; the stream's output is whole length-prefixed answers, one per query.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType};
use privlink_core::dns::{servfail, ForwardMode, Framed, Outcome, Responder, TcpSession, Transport, MAX_QUERY_LEN};

use crate::fixture;

/// UDP's limit with EDNS (the responder caps what a client asks for here).
const MAX_UDP: usize = 1232;
/// UDP's limit without EDNS (RFC 1035).
const PLAIN_UDP: usize = 512;
/// Read sizes bits 3 to 5 pick for a stream: single bytes up to "all at once".
const CHUNKS: [usize; 8] = [1, 2, 3, 7, 13, 64, 512, usize::MAX];

fn responders() -> &'static [Responder; 2] {
    static R: OnceLock<[Responder; 2]> = OnceLock::new();
    R.get_or_init(|| {
        let zone = Arc::new(fixture::plan().zone().expect("the fixture's zone builds"));
        [Responder::new(zone.clone(), ForwardMode::Forward), Responder::new(zone, ForwardMode::Refuse)]
    })
}

/// Builds the fixture (see [`crate::warm_up`]).
pub(crate) fn warm_up() {
    responders();
}

/// Runs one input (see the module doc). Panics if an invariant breaks.
pub fn dns_responder(data: &[u8]) {
    let Some((&control, rest)) = data.split_first() else { return };
    let transport = if control & 1 != 0 { Transport::Tcp } else { Transport::Udp };
    let responder = &responders()[usize::from(control >> 1 & 1)];
    if control & 4 != 0 {
        stream(responder, rest, CHUNKS[usize::from(control >> 3) & 7]);
    } else {
        message(responder, rest, transport);
    }
}

/// One message: the outcome and, for a response, its bytes checked.
fn message(responder: &Responder, query: &[u8], transport: Transport) -> Outcome {
    let mut out = Vec::new();
    let outcome = responder.handle_query(query, transport, &mut out);
    match outcome {
        Outcome::Respond => check_response(query, &out, transport),
        Outcome::Forward => {
            assert_eq!(responder.forward_mode(), ForwardMode::Forward, "forwarded in privacy mode");
            assert!(out.is_empty());
        }
        Outcome::Drop(_) => assert!(out.is_empty(), "a drop sends nothing"),
    }
    let mut again = Vec::new();
    assert_eq!(responder.handle_query(query, transport, &mut again), outcome, "the same query, the same outcome");
    assert_eq!(again, out, "the same query, the same bytes");
    outcome
}

fn check_response(query: &[u8], out: &[u8], transport: Transport) {
    assert!(out.len() >= 12, "a response has a header");
    assert_eq!(out[..2], query[..2], "the response carries the query's id");
    let msg = Message::from_vec(out).unwrap_or_else(|e| panic!("the response does not parse: {e}: {out:02x?}"));
    assert_eq!(msg.metadata.message_type, MessageType::Response);
    if transport == Transport::Udp {
        let limit = if msg.edns.is_some() { MAX_UDP } else { PLAIN_UDP };
        assert!(out.len() <= limit, "a UDP response of {} bytes over {limit}", out.len());
    }
}

/// A DNS-over-TCP stream read `chunk` bytes at a time, as the edge's TCP
/// resolver loop reads a connection; the client then closes its side.
fn stream(responder: &Responder, bytes: &[u8], chunk: usize) {
    let mut now = fixture::epoch();
    let mut session = TcpSession::new(now);
    let (mut pos, mut answers, mut written) = (0, 0usize, Vec::new());
    let mut out = Vec::new();
    while pos < bytes.len() {
        now += Duration::from_millis(10);
        let buf = session.read_buf();
        if buf.is_empty() {
            // Answers wait (backlog full): the client reads them.
            let n = session.output().len();
            assert!(n > 0, "a session that may not read has answers to write");
            written.extend_from_slice(session.output());
            session.wrote(now, n);
            continue;
        }
        let n = buf.len().min(chunk).min(bytes.len() - pos);
        buf[..n].copy_from_slice(&bytes[pos..pos + n]);
        pos += n;
        match session.filled(now, n) {
            Framed::Partial => continue,
            Framed::Invalid => return, // reset
            Framed::Query => {}
        }
        let query = session.query().to_vec();
        assert!((12..=MAX_QUERY_LEN).contains(&query.len()), "a framed query of {} bytes", query.len());
        match responder.handle_query(&query, Transport::Tcp, &mut out) {
            Outcome::Respond => check_response(&query, &out, Transport::Tcp),
            Outcome::Drop(_) => return, // on a stream there is no staying silent: reset
            // No upstream here: the forward fails, as when every server is down.
            Outcome::Forward => servfail(&query, &mut out),
        }
        session.push_answer(now, &out, false);
        session.take_query(false);
        answers += 1;
    }
    session.peer_closed();
    written.extend_from_slice(session.output());
    let n = session.output().len();
    session.wrote(now, n);
    assert!(session.finished(), "closed and written: finished");
    let mut rest = &written[..];
    let mut framed = 0;
    while let [hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        assert!(len <= tail.len(), "a whole answer");
        Message::from_vec(&tail[..len]).expect("each framed answer parses");
        rest = &tail[len..];
        framed += 1;
    }
    assert!(rest.is_empty() && framed == answers, "{framed} answers framed of {answers}");
}
