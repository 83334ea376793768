//! [`TcpSessions`]: the DNS-over-TCP connections of one TUN queue's
//! resolver, their limits and their deadlines, sans-IO.
//!
//! # Theory of operation
//! Every connection to the resolver's TCP port gets a [`TcpSession`] here,
//! with the edge's handle for its stream (`T`). A new connection is never
//! turned away: a full table makes room instead, so no flood can lock the
//! resolver out (the old design held a slot per SYN for smoltcp's 300 s,
//! and 1,024 spoofed SYNs or silent clients took them all). Room is made by
//! resetting the connection that has been quiet longest (least recent byte
//! read or written): a spoofed SYN that never completed, a client that
//! announced a query and went silent, an idle connection. A client that
//! brings its query within the time a flood needs to cycle through the
//! whole table is served; the flood only evicts itself.
//!
//! - [`MAX_TCP_SESSIONS_PER_SOURCE`] per client address: a source at its cap
//!   makes room among its own connections, so one address (or a spoofer
//!   using it) cannot evict anyone else's.
//! - [`MAX_TCP_SESSIONS`] in all: past it, the least recent of all goes.
//!
//! Deadlines sit in a heap with at most a few entries per session: an entry
//! is pushed only when a session's deadline moves earlier than the one it
//! has queued; when an entry comes due, the session's real deadline decides
//! (it is handled, or queued again for later). Finding the connection to
//! evict scans the table: only when it is full, at most
//! [`MAX_TCP_SESSIONS`] entries.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::Ipv4Addr;
use std::time::Instant;

use super::hash::FnvMap;
use super::session::{Expiry, TcpSession};

/// DNS-over-TCP connections one queue's resolver keeps; a new one past it resets the least recent.
pub const MAX_TCP_SESSIONS: usize = 1024;
/// DNS-over-TCP connections one client address keeps per queue; past it its own least recent is reset.
pub const MAX_TCP_SESSIONS_PER_SOURCE: usize = 16;

/// A session's name: its slot and that slot's generation, so a late answer
/// for a connection that is gone never reaches the one that took its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId {
    index: u32,
    generation: u32,
}

/// What a session's deadline led to.
#[derive(Debug, PartialEq, Eq)]
pub enum Expired<T> {
    /// Idle: close it (FIN); it stays until the client closes too.
    Close(SessionId),
    /// Reset it: it is out of the table, here is its stream.
    Reset(T),
}

/// What the sessions counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpCounters {
    /// Connections accepted.
    pub opened: u64,
    /// Reset to make room for a new one.
    pub evicted: u64,
    /// Reset by a deadline (no query, a query never finished, answers not taken, no close after ours).
    pub timed_out: u64,
    /// Closed by the server after the idle timeout.
    pub idle_closed: u64,
    /// Reset for a message length no query has.
    pub invalid: u64,
}

crate::counters_add!(TcpCounters { opened, evicted, timed_out, idle_closed, invalid });

#[derive(Debug)]
struct Entry<T> {
    session: TcpSession,
    source: Ipv4Addr,
    io: T,
    /// The earliest deadline this session has in the heap.
    queued: Option<Instant>,
}

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    entry: Option<Entry<T>>,
}

/// The sessions of one resolver (see the module doc); `T` is the edge's stream.
#[derive(Debug)]
pub struct TcpSessions<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    per_source: FnvMap<Ipv4Addr, usize>,
    live: usize,
    deadlines: BinaryHeap<Reverse<(Instant, SessionId)>>,
    counters: TcpCounters,
}

impl<T> Default for TcpSessions<T> {
    fn default() -> Self {
        TcpSessions {
            slots: Vec::new(),
            free: Vec::new(),
            per_source: FnvMap::default(),
            live: 0,
            deadlines: BinaryHeap::new(),
            counters: TcpCounters::default(),
        }
    }
}

impl<T> TcpSessions<T> {
    /// Sessions open.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// What was counted so far.
    pub fn counters(&self) -> TcpCounters {
        self.counters
    }

    /// Adds the connection `io` from `source`, accepted at `now`. Returns its
    /// id and, if room had to be made, the stream of the session reset for it.
    pub fn open(&mut self, now: Instant, source: Ipv4Addr, io: T) -> (SessionId, Option<T>) {
        let own = self.per_source.get(&source).copied().unwrap_or(0);
        let victim = if own >= MAX_TCP_SESSIONS_PER_SOURCE {
            self.least_recent(Some(source))
        } else if self.live >= MAX_TCP_SESSIONS {
            self.least_recent(None)
        } else {
            None
        };
        let evicted = victim.and_then(|id| self.remove(id));
        self.counters.evicted += u64::from(evicted.is_some());
        let index = self.free.pop().unwrap_or_else(|| {
            self.slots.push(Slot { generation: 0, entry: None });
            (self.slots.len() - 1) as u32
        });
        let slot = &mut self.slots[index as usize];
        slot.entry = Some(Entry { session: TcpSession::new(now), source, io, queued: None });
        let id = SessionId { index, generation: slot.generation };
        *self.per_source.entry(source).or_default() += 1;
        self.live += 1;
        self.counters.opened += 1;
        self.touched(id);
        (id, evicted)
    }

    /// The session that has been quiet longest, of `source` or of all.
    fn least_recent(&self, source: Option<Ipv4Addr>) -> Option<SessionId> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.entry.as_ref().map(|e| (i, s.generation, e)))
            .filter(|(_, _, e)| source.is_none_or(|src| e.source == src))
            .min_by_key(|(_, _, e)| e.session.last_activity())
            .map(|(i, generation, _)| SessionId { index: i as u32, generation })
    }

    fn entry_mut(&mut self, id: SessionId) -> Option<&mut Entry<T>> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.entry.as_mut()
    }

    /// A session and its stream, if it is still open.
    pub fn get_mut(&mut self, id: SessionId) -> Option<(&mut TcpSession, &mut T)> {
        self.entry_mut(id).map(|e| (&mut e.session, &mut e.io))
    }

    /// Takes a session out (finished, or reset by the edge); returns its stream.
    pub fn remove(&mut self, id: SessionId) -> Option<T> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        let entry = slot.entry.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(id.index);
        self.live -= 1;
        if let Some(n) = self.per_source.get_mut(&entry.source) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&entry.source);
            }
        }
        Some(entry.io)
    }

    /// Resets a session whose client sent a length no query has; returns its stream.
    pub fn refuse(&mut self, id: SessionId) -> Option<T> {
        let io = self.remove(id);
        self.counters.invalid += u64::from(io.is_some());
        io
    }

    /// After the caller changed a session: keeps a heap entry no later than its deadline.
    pub fn touched(&mut self, id: SessionId) {
        let Some(entry) = self.entry_mut(id) else { return };
        let Some(at) = entry.session.deadline() else { return };
        if entry.queued.is_none_or(|q| at < q) {
            entry.queued = Some(at);
            self.deadlines.push(Reverse((at, id)));
        }
    }

    /// When a deadline may be due next (possibly early: see the module doc).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.peek().map(|Reverse((at, _))| *at)
    }

    /// Handles one session whose deadline has come at `now`; call until `None`.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Expired<T>> {
        while let Some(&Reverse((at, id))) = self.deadlines.peek() {
            if at > now {
                return None;
            }
            self.deadlines.pop();
            let Some(entry) = self.entry_mut(id) else { continue };
            if entry.queued == Some(at) {
                entry.queued = None;
            }
            match entry.session.deadline() {
                Some(due) if due <= now => {}
                _ => {
                    self.touched(id);
                    continue;
                }
            }
            match entry.session.expire(now) {
                Expiry::Close => {
                    self.counters.idle_closed += 1;
                    self.touched(id);
                    return Some(Expired::Close(id));
                }
                Expiry::Reset => {
                    self.counters.timed_out += 1;
                    return self.remove(id).map(Expired::Reset);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::session::{Framed, TCP_IDLE_TIMEOUT, TCP_QUERY_TIMEOUT};
    use std::time::Duration;

    fn source(i: usize) -> Ipv4Addr {
        Ipv4Addr::from(0x0a00_0000 + i as u32)
    }

    /// A whole query on session `id` at `now`, answered at once.
    fn query_and_answer(s: &mut TcpSessions<usize>, id: SessionId, now: Instant) {
        let (session, _) = s.get_mut(id).unwrap();
        session.read_buf().copy_from_slice(&[0, 12]);
        assert_eq!(session.filled(now, 2), Framed::Partial);
        session.read_buf().fill(0);
        assert_eq!(session.filled(now, 12), Framed::Query);
        session.take_query(false);
        session.push_answer(now, &[0; 12], false);
        session.wrote(now, 14);
        s.touched(id);
    }

    #[test]
    fn a_full_table_resets_the_quietest_session_for_a_new_one() {
        let t0 = Instant::now();
        let mut s = TcpSessions::default();
        let mut ids = Vec::new();
        for i in 0..MAX_TCP_SESSIONS {
            // A flood from as many sources as there are slots, a microsecond apart.
            let (id, evicted) = s.open(t0 + Duration::from_micros(i as u64), source(i), i);
            assert_eq!(evicted, None);
            ids.push(id);
        }
        // The oldest half-open one goes first, for a client from a new address.
        let late = t0 + Duration::from_secs(1);
        let (client, evicted) = s.open(late, Ipv4Addr::new(10, 9, 9, 9), 9999);
        assert_eq!(evicted, Some(0));
        assert_eq!(s.len(), MAX_TCP_SESSIONS);
        assert!(s.get_mut(ids[0]).is_none(), "its id is dead: a late answer cannot reach another");
        // A session that was active recently outlives the flood after it.
        query_and_answer(&mut s, client, late);
        for i in 0..MAX_TCP_SESSIONS - 1 {
            let (_, evicted) = s.open(late + Duration::from_micros(1 + i as u64), source(5000 + i), 0);
            assert!(evicted.is_some_and(|e| e != 9999), "the active client was evicted");
        }
        assert!(s.get_mut(client).is_some());
        assert_eq!(s.counters().evicted, MAX_TCP_SESSIONS as u64);
    }

    #[test]
    fn one_source_at_its_cap_makes_room_among_its_own() {
        let t0 = Instant::now();
        let mut s = TcpSessions::default();
        let other = s.open(t0, source(1), 1).0;
        let spoofed = source(2);
        for i in 0..MAX_TCP_SESSIONS_PER_SOURCE {
            assert_eq!(s.open(t0 + Duration::from_micros(1 + i as u64), spoofed, 100 + i).1, None);
        }
        for i in 0..1100 {
            let (_, evicted) = s.open(t0 + Duration::from_millis(1 + i), spoofed, 0);
            assert!(evicted.is_some());
        }
        assert_eq!(s.len(), 1 + MAX_TCP_SESSIONS_PER_SOURCE);
        assert!(s.get_mut(other).is_some(), "another address's session was evicted");
    }

    #[test]
    fn deadlines_reset_silent_sessions_and_close_idle_ones() {
        let t0 = Instant::now();
        let mut s = TcpSessions::default();
        let silent = s.open(t0, source(1), 1).0;
        let talker = s.open(t0, source(2), 2).0;
        query_and_answer(&mut s, talker, t0);
        assert_eq!(s.poll_timeout(), Some(t0 + TCP_QUERY_TIMEOUT));
        assert_eq!(s.handle_timeout(t0 + TCP_QUERY_TIMEOUT - Duration::from_millis(1)), None);
        assert_eq!(s.handle_timeout(t0 + TCP_QUERY_TIMEOUT), Some(Expired::Reset(1)));
        assert!(s.get_mut(silent).is_none());
        // The talker's first entry (its first-query deadline) was stale: it waits for its idle timeout.
        assert_eq!(s.handle_timeout(t0 + TCP_QUERY_TIMEOUT), None);
        assert_eq!(s.poll_timeout(), Some(t0 + TCP_IDLE_TIMEOUT));
        assert_eq!(s.handle_timeout(t0 + TCP_IDLE_TIMEOUT), Some(Expired::Close(talker)));
        assert_eq!(s.handle_timeout(t0 + TCP_IDLE_TIMEOUT + TCP_QUERY_TIMEOUT), Some(Expired::Reset(2)));
        assert!(s.is_empty());
        let c = s.counters();
        assert_eq!((c.opened, c.timed_out, c.idle_closed), (2, 2, 1));
    }
}
