//! The resolver's end of its DNS-over-TCP streams: the bytes between each
//! in-process pipe and its core session.
//!
//! A session is serviced when its pipe wakes it (the relay wrote the
//! client's bytes, or made room for ours) or when an answer for it arrives:
//! answers are written out, then queries read one message at a time, each
//! answered at once from the zone or the cache, or forwarded, and the next
//! one read without waiting (pipelining). What the core session decides
//! (invalid length, deadlines, the end) becomes a reset, a FIN or the
//! session's removal here; a reset names the flow for the stack to abort.

use std::io;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use privlink_core::dns::{servfail, Expired, Framed, Outcome, SessionId, Transport};
use privlink_core::flow::FlowKey;

use super::{Origin, Resolver};
use crate::edge::pipe::{pipe, MemoryPeer, MemoryStream};
use crate::edge::ready::IdWaker;

/// The resolver's side of one DNS-over-TCP connection.
pub(super) struct SessionIo {
    peer: MemoryPeer,
    flow: FlowKey,
    /// Queues the session when its pipe moves; set once the session has its id.
    waker: Option<(Arc<IdWaker<SessionId>>, Waker)>,
}

/// What a service pass ended with.
enum Ending {
    /// Waiting for the pipe or for answers.
    Open,
    /// Over, cleanly: our side is shut, the session removed.
    Finished,
    /// Reset: the flow must be aborted.
    Reset,
    /// The stack's end is gone or reset it: nothing to do but forget it.
    Gone,
}

impl Resolver {
    /// A stream for a new DNS-over-TCP connection `flow` at `now`, and the
    /// flow of a connection reset to make room for it, if one was.
    pub fn open_tcp(&mut self, now: Instant, flow: FlowKey) -> (MemoryStream, Option<FlowKey>) {
        let (stream, peer) = pipe();
        let (id, evicted) = self.sessions.open(now, flow.client.0, SessionIo { peer, flow, waker: None });
        if let Some((_, io)) = self.sessions.get_mut(id) {
            let (w, waker) = IdWaker::new(id, self.ready.clone());
            // Nothing to read yet: this registers the waker for the client's first bytes.
            let _ = io.peer.poll_read_ready(&mut Context::from_waker(&waker));
            io.waker = Some((w, waker));
        }
        let evicted = evicted.map(|mut io| {
            tracing::debug!(flow = %io.flow, "DNS over TCP: reset to make room");
            io.peer.reset();
            io.flow
        });
        (stream, evicted)
    }

    /// Handles the session deadlines due at `now`. Returns whether any was.
    pub(super) fn expire_sessions(&mut self, now: Instant, resets: &mut Vec<FlowKey>) -> bool {
        let mut moved = false;
        while let Some(expired) = self.sessions.handle_timeout(now) {
            moved = true;
            match expired {
                Expired::Close(id) => {
                    if let Some((_, io)) = self.sessions.get_mut(id) {
                        tracing::debug!(flow = %io.flow, "DNS over TCP: idle, closing");
                        io.peer.shutdown();
                    }
                }
                Expired::Reset(mut io) => {
                    tracing::debug!(flow = %io.flow, "DNS over TCP: timed out, resetting");
                    io.peer.reset();
                    resets.push(io.flow);
                }
            }
        }
        moved
    }

    /// Services the sessions that were woken or got an answer.
    pub(super) fn serve_sessions(&mut self, now: Instant, resets: &mut Vec<FlowKey>) -> bool {
        let mut due = std::mem::take(&mut self.due);
        self.ready.drain_into(&mut due);
        let moved = !due.is_empty();
        for &id in &due {
            self.serve(id, now, resets);
        }
        due.clear();
        self.due = due;
        moved
    }

    /// One service pass of session `id`.
    fn serve(&mut self, id: SessionId, now: Instant, resets: &mut Vec<FlowKey>) {
        let ending = self.serve_pass(id, now);
        let flow = self.sessions.get_mut(id).map(|(_, io)| io.flow);
        match ending {
            Ending::Open => self.sessions.touched(id),
            Ending::Finished | Ending::Gone => {
                if let Some(mut io) = self.sessions.remove(id) {
                    io.peer.shutdown();
                }
            }
            Ending::Reset => {
                if let Some(mut io) = self.sessions.refuse(id) {
                    io.peer.reset();
                }
                resets.extend(flow);
            }
        }
    }

    fn serve_pass(&mut self, id: SessionId, now: Instant) -> Ending {
        let Resolver { sessions, responder, forwarder, net, ids, out, asked, .. } = self;
        let Some((session, io)) = sessions.get_mut(id) else { return Ending::Gone };
        let Some((w, waker)) = &io.waker else { return Ending::Gone };
        w.rearm();
        let mut cx = Context::from_waker(waker);
        loop {
            while !session.output().is_empty() {
                match io.peer.write(session.output()) {
                    Ok(n) => session.wrote(now, n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if io.peer.poll_write_ready(&mut cx).is_pending() {
                            break;
                        }
                    }
                    Err(_) => return Ending::Gone,
                }
            }
            if session.finished() {
                return Ending::Finished;
            }
            let buf = session.read_buf();
            if buf.is_empty() {
                // Waiting for answers (pipeline or backlog full): they bring the session back.
                return Ending::Open;
            }
            let n = match io.peer.read(buf) {
                Ok(0) => {
                    session.peer_closed();
                    continue;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => match io.peer.poll_read_ready(&mut cx) {
                    Poll::Ready(_) => continue,
                    Poll::Pending => return Ending::Open,
                },
                Err(_) => return Ending::Gone,
            };
            match session.filled(now, n) {
                Framed::Partial => continue,
                Framed::Invalid => {
                    tracing::debug!(flow = %io.flow, "DNS over TCP: not a query length; resetting");
                    return Ending::Reset;
                }
                Framed::Query => {}
            }
            let query = session.query();
            let forwarded = match responder.handle_query_noting(query, Transport::Tcp, out, asked) {
                Outcome::Respond => false,
                // Not a query at all: on a stream there is no staying silent.
                Outcome::Drop(_) => return Ending::Reset,
                Outcome::Forward if forwarder.cached(now, query, Transport::Tcp, out) => false,
                Outcome::Forward => {
                    let next = &mut || ids.next_id();
                    match forwarder.start(now, Origin::Tcp(id), query, Transport::Tcp, next) {
                        Ok(o) => {
                            net.send(now, o.token, o.server, o.transport, o.bytes);
                            true
                        }
                        Err(e) => {
                            tracing::debug!(flow = %io.flow, "not forwarded: {e:?}");
                            servfail(query, out);
                            false
                        }
                    }
                }
            };
            if !forwarded {
                session.push_answer(now, out, false);
            }
            session.take_query(forwarded);
        }
    }
}
