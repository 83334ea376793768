//! [`Forwarder`]: the VPC resolver's queries to its upstream resolvers
//! (`[dns] forward`), and what each answer, failure or timeout leads to.
//!
//! Heads up: read RFC 5452 (spoofed answers: sections 4, 9.1 and 9.2) and
//! RFC 6891 section 6.1.1 (an OPT record is not forwarded) first.
//!
//! # Theory of operation
//! A query the zone does not answer ([`super::Outcome::Forward`]) is first
//! looked up in the cache ([`Forwarder::cached`]). On a miss,
//! [`Forwarder::start`] records it and returns a [`Outgoing`]: the server to ask
//! and the bytes (the client's question under a fresh random id, our OPT:
//! [`super::forwarded`]), under a [`Token`] that names this one try. The
//! edge sends them from a socket of their own, bound to a random port, so an
//! off-path spoofer must guess the port and the id at once (RFC 5452 section
//! 9.2: the ids come from the edge's randomness, never a counter), and hands
//! back whatever that server sends to that socket ([`Forwarder::answer`]), a
//! network error ([`Forwarder::failed`]), or nothing, and
//! [`Forwarder::handle_timeout`] moves on. A datagram counts as the answer
//! only if it carries our id and our question (section 9.1); anything else
//! is ignored and the try keeps waiting, so a spoofed answer is neither
//! passed on, nor cached, nor able to displace the real one.
//!
//! Failover: the servers are tried in their configured order, each at most
//! once per query. A query goes first to the first server not marked
//! unresponsive. A try unanswered after [`FORWARD_TRY_TIMEOUT`] or a network
//! error moves the query to the next server and marks the one that failed
//! unresponsive for [`SERVER_HOLD_DOWN`], so the queries after it do not
//! each wait for it; any answer from it clears the mark (the marks are this
//! forwarder's: each TUN queue's resolver learns on its own). A SERVFAIL or
//! REFUSED answer moves the query on too, without a mark (the server is up;
//! another may know better), unless no server is left, when it is passed
//! on. After the last server the forwarder gives up ([`Event::GiveUp`]) with
//! a SERVFAIL for the client; the edge sends it to a TCP client and lets a
//! UDP client retry on its own, as before.
//!
//! The answer the client gets, and what the cache keeps, are decided in
//! [`super::forwarded`] and [`ForwardCache`]. A new server list (a reload)
//! takes effect for the next query; a query under way finishes its tries
//! over the list it meets at each failover.
//!
//! # Limits
//! - [`MAX_FORWARDS`] queries waiting for an answer; past it a new one is
//!   refused ([`StartError::Full`]) and the client retries.
//! - [`FORWARD_TRY_TIMEOUT`] per try, so at most that times the number of
//!   servers per query; [`SERVER_HOLD_DOWN`] per unresponsive server.
//! - [`FORWARD_CACHE_ENTRIES`] answers in the cache, see [`ForwardCache`].

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::answer::emit_error;
use super::cache::ForwardCache;
use super::forwarded::{answers, client_answer, finish_response, upstream_query};
use super::hash::FnvMap;
use super::query::{parse_standard_query, Query};
use super::wire::{read_u16, FLAG_TC, RCODE_NOERROR, RCODE_NXDOMAIN, RCODE_REFUSED, RCODE_SERVFAIL};
use super::Transport;

/// Queries waiting for an upstream answer, at most.
pub const MAX_FORWARDS: usize = 4096;
/// How long one server has to answer one try before the next server is asked.
pub const FORWARD_TRY_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a server that timed out or failed is skipped by new queries.
pub const SERVER_HOLD_DOWN: Duration = Duration::from_secs(30);
/// Answers kept in the forward cache.
pub const FORWARD_CACHE_ENTRIES: usize = 4096;

/// One try of one forwarded query: the edge's handle for its socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub u64);

/// What to send, for a try.
#[derive(Debug, PartialEq, Eq)]
pub struct Outgoing<'a> {
    /// Names this try: the edge hands it back with the answer.
    pub token: Token,
    /// The upstream resolver to ask.
    pub server: SocketAddr,
    /// Over UDP or TCP (the transport the client used).
    pub transport: Transport,
    /// The query, as the upstream must see it.
    pub bytes: &'a [u8],
}

/// What an answer, a failure or a timeout leads to.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a, O> {
    /// The client's response is in the caller's `out`; the try `cancel` is over.
    Reply {
        /// The try that answered.
        cancel: Token,
        /// Where the response goes.
        origin: O,
    },
    /// Forget the try `cancel` (its socket) and send this try instead.
    Retry {
        /// The try that is over.
        cancel: Token,
        /// The next one.
        send: Outgoing<'a>,
    },
    /// Every server was tried: a SERVFAIL for the client is in `out`.
    GiveUp {
        /// The last try.
        cancel: Token,
        /// Where the response would go.
        origin: O,
    },
    /// Not an answer to that try (or no such try): keep waiting.
    Ignored,
}

/// Why [`Forwarder::start`] sent nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartError {
    /// `[dns] forward = []`: nowhere to send it.
    NoServers,
    /// [`MAX_FORWARDS`] queries are waiting already.
    Full,
    /// Not a standard query (the responder would not have forwarded it).
    NotAQuery,
}

/// What the forwarder counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwardCounters {
    /// Tries sent upstream (first tries and failovers).
    pub sent: u64,
    /// Answers relayed back.
    pub answered: u64,
    /// Answers served from the cache.
    pub cached: u64,
    /// Queries not forwarded: too many waiting, or no server.
    pub dropped: u64,
    /// Tries moved on to the next server (timeout, error, SERVFAIL, REFUSED).
    pub failovers: u64,
    /// Datagrams that did not answer their try (wrong id or question: spoofed, or late).
    pub ignored: u64,
    /// Queries no server answered.
    pub gave_up: u64,
}

crate::counters_add!(ForwardCounters { sent, answered, cached, dropped, failovers, ignored, gave_up });

/// Writes into `out` (cleared first) a SERVFAIL for the client's `query`:
/// what a TCP client gets when its query cannot be forwarded, rather than
/// silence. Nothing if `query` is not a standard query.
pub fn servfail(query: &[u8], out: &mut Vec<u8>) {
    out.clear();
    if let Some(q) = parse_standard_query(query) {
        emit_error(out, q.id, q.flags, RCODE_SERVFAIL, q.edns);
    }
}

/// A query waiting for an upstream answer.
#[derive(Debug)]
struct Pending<O> {
    origin: O,
    /// The client's query, as it sent it.
    query: Box<[u8]>,
    parsed: Query,
    transport: Transport,
    /// Our id for the current try.
    id: u16,
    /// The server of the current try, an index into the list.
    server: usize,
    /// Servers tried so far, the current one included.
    tried: usize,
    deadline: Instant,
}

/// The forwarded queries of one resolver and the cache of their answers.
/// `O` says where an answer goes (the edge's client address, or its TCP session).
#[derive(Debug)]
pub struct Forwarder<O> {
    servers: Vec<SocketAddr>,
    /// Until when each server is skipped by new queries.
    unresponsive_until: Vec<Option<Instant>>,
    pending: FnvMap<Token, Pending<O>>,
    /// Try deadlines; an entry whose try is gone is stale and skipped.
    deadlines: BinaryHeap<Reverse<(Instant, Token)>>,
    next_token: u64,
    cache: ForwardCache,
    /// The bytes of the last [`Outgoing`].
    sending: Vec<u8>,
    counters: ForwardCounters,
}

impl<O: Copy> Forwarder<O> {
    /// A forwarder to `servers`, in order (empty: privacy mode, nothing is forwarded).
    pub fn new(servers: Vec<SocketAddr>) -> Forwarder<O> {
        Forwarder {
            unresponsive_until: vec![None; servers.len()],
            servers,
            pending: FnvMap::default(),
            deadlines: BinaryHeap::new(),
            next_token: 0,
            cache: ForwardCache::new(FORWARD_CACHE_ENTRIES),
            sending: Vec::new(),
            counters: ForwardCounters::default(),
        }
    }

    /// The servers, in the order they are tried.
    pub fn servers(&self) -> &[SocketAddr] {
        &self.servers
    }

    /// Replaces the server list (a reload); the unresponsive marks start afresh.
    pub fn set_servers(&mut self, servers: Vec<SocketAddr>) {
        self.unresponsive_until = vec![None; servers.len()];
        self.servers = servers;
    }

    /// What was counted so far.
    pub fn counters(&self) -> ForwardCounters {
        self.counters
    }

    /// Queries waiting for an answer.
    pub fn waiting(&self) -> usize {
        self.pending.len()
    }

    /// Writes the cached answer to `query` for `transport` into `out`, if there is one.
    pub fn cached(&mut self, now: Instant, query: &[u8], transport: Transport, out: &mut Vec<u8>) -> bool {
        let hit = self.cache.get(now, query, transport, out);
        self.counters.cached += u64::from(hit);
        hit
    }

    /// Starts forwarding the client's `query` (it arrived over `transport`;
    /// its answer goes to `origin`); `ids` gives random 16-bit numbers.
    pub fn start(
        &mut self,
        now: Instant,
        origin: O,
        query: &[u8],
        transport: Transport,
        ids: &mut impl FnMut() -> u16,
    ) -> Result<Outgoing<'_>, StartError> {
        let refused = if self.servers.is_empty() {
            Some(StartError::NoServers)
        } else if self.pending.len() >= MAX_FORWARDS {
            Some(StartError::Full)
        } else {
            None
        };
        let parsed = match (refused, parse_standard_query(query)) {
            (None, Some(parsed)) => parsed,
            (refused, _) => {
                self.counters.dropped += 1;
                return Err(refused.unwrap_or(StartError::NotAQuery));
            }
        };
        let server =
            (0..self.servers.len()).find(|&i| self.unresponsive_until[i].is_none_or(|until| until <= now)).unwrap_or(0);
        let pending =
            Pending { origin, query: query.into(), parsed, transport, id: 0, server, tried: 1, deadline: now };
        Ok(self.send(now, pending, ids))
    }

    /// Records `pending` under a new token with a new id and writes its bytes.
    fn send(&mut self, now: Instant, mut pending: Pending<O>, ids: &mut impl FnMut() -> u16) -> Outgoing<'_> {
        let token = Token(self.next_token);
        self.next_token += 1;
        pending.id = ids();
        pending.deadline = now + FORWARD_TRY_TIMEOUT;
        upstream_query(&pending.query, &pending.parsed, pending.transport, pending.id, &mut self.sending);
        self.deadlines.push(Reverse((pending.deadline, token)));
        let (server, transport) = (self.servers[pending.server], pending.transport);
        self.pending.insert(token, pending);
        self.counters.sent += 1;
        Outgoing { token, server, transport, bytes: &self.sending }
    }

    /// Handles `reply`, which arrived for the try `token` from its server.
    pub fn answer(
        &mut self,
        now: Instant,
        token: Token,
        reply: &[u8],
        ids: &mut impl FnMut() -> u16,
        out: &mut Vec<u8>,
    ) -> Event<'_, O> {
        let Some(p) = self.pending.get(&token) else {
            self.counters.ignored += 1;
            return Event::Ignored;
        };
        if !answers(&p.query, &p.parsed, p.id, reply) {
            self.counters.ignored += 1;
            return Event::Ignored;
        }
        let Some(ext_rcode) = client_answer(&p.query, &p.parsed, reply, out) else {
            self.counters.ignored += 1;
            return Event::Ignored;
        };
        let p = self.pending.remove(&token).expect("looked up above");
        if let Some(mark) = self.unresponsive_until.get_mut(p.server) {
            *mark = None;
        }
        let rcode = (read_u16(out, 2) & 0x000F) as u8;
        if ext_rcode == 0 && (rcode == RCODE_SERVFAIL || rcode == RCODE_REFUSED) && p.tried < self.servers.len() {
            out.clear();
            return self.fail_over(now, token, p, false, ids, out);
        }
        let clean = ext_rcode == 0 && (rcode == RCODE_NOERROR || rcode == RCODE_NXDOMAIN);
        if clean && read_u16(out, 2) & FLAG_TC == 0 {
            self.cache.insert(now, &p.query, out);
        }
        finish_response(&p.parsed, p.transport, ext_rcode, out);
        self.counters.answered += 1;
        Event::Reply { cancel: token, origin: p.origin }
    }

    /// The try `token` failed on the network (refused, unreachable, reset).
    pub fn failed(
        &mut self,
        now: Instant,
        token: Token,
        ids: &mut impl FnMut() -> u16,
        out: &mut Vec<u8>,
    ) -> Event<'_, O> {
        match self.pending.remove(&token) {
            Some(p) => self.fail_over(now, token, p, true, ids, out),
            None => Event::Ignored,
        }
    }

    /// When the next try times out, if one is waiting.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.peek().map(|Reverse((at, _))| *at)
    }

    /// Handles one try whose time is up at `now`; call until `None`.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        ids: &mut impl FnMut() -> u16,
        out: &mut Vec<u8>,
    ) -> Option<Event<'_, O>> {
        while let Some(&Reverse((at, token))) = self.deadlines.peek() {
            if at > now {
                return None;
            }
            self.deadlines.pop();
            if let Some(p) = self.pending.remove(&token) {
                return Some(self.fail_over(now, token, p, true, ids, out));
            }
        }
        None
    }

    /// Moves `p` (its try `token` is over) to the next server, or gives up;
    /// `mark` marks the server of the try unresponsive.
    fn fail_over(
        &mut self,
        now: Instant,
        token: Token,
        mut p: Pending<O>,
        mark: bool,
        ids: &mut impl FnMut() -> u16,
        out: &mut Vec<u8>,
    ) -> Event<'_, O> {
        if mark {
            if let Some(until) = self.unresponsive_until.get_mut(p.server) {
                *until = Some(now + SERVER_HOLD_DOWN);
            }
        }
        if p.tried >= self.servers.len() {
            self.counters.gave_up += 1;
            out.clear();
            emit_error(out, p.parsed.id, p.parsed.flags, RCODE_SERVFAIL, p.parsed.edns);
            return Event::GiveUp { cancel: token, origin: p.origin };
        }
        self.counters.failovers += 1;
        p.server = (p.server + 1) % self.servers.len();
        p.tried += 1;
        Event::Retry { cancel: token, send: self.send(now, p, ids) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::testkit::*;
    use crate::dns::*;

    const A: &str = "192.0.2.1:53";
    const B: &str = "192.0.2.2:53";

    fn forwarder(servers: &[&str]) -> Forwarder<u32> {
        Forwarder::new(servers.iter().map(|s| s.parse().unwrap()).collect())
    }

    /// Ids from a fixed list, so a test knows them.
    fn ids(list: &'static [u16]) -> impl FnMut() -> u16 {
        let mut i = 0;
        move || {
            i += 1;
            list[(i - 1) % list.len()]
        }
    }

    /// A start instant, a forwarder to `servers`, ids from `list`, an output buffer.
    fn fixture(servers: &[&str], list: &'static [u16]) -> (Instant, Forwarder<u32>, impl FnMut() -> u16, Vec<u8>) {
        (Instant::now(), forwarder(servers), ids(list), Vec::new())
    }

    #[track_caller]
    fn started(f: &mut Forwarder<u32>, t: Instant, origin: u32, q: &[u8], next: &mut impl FnMut() -> u16) -> Token {
        let send = f.start(t, origin, q, Transport::Udp, next).unwrap();
        send.token
    }

    #[test]
    fn ids_are_the_edges_random_numbers_and_the_query_keeps_its_question() {
        let (t0, mut f, mut next, _) = fixture(&[A], &[0xbeef, 0x1234]);
        let q = build_query("WWW.example.com", RecordType::A, |m| m.metadata.id = 7);
        let send = f.start(t0, 1, &q, Transport::Udp, &mut next).unwrap();
        assert_eq!(send.server, A.parse().unwrap());
        let sent = Message::from_vec(send.bytes).unwrap();
        assert_eq!(sent.metadata.id, 0xbeef);
        assert_eq!(sent.queries[0].name().to_ascii(), "WWW.example.com.", "the client's case goes up as it is");
        let second = f.start(t0, 2, &q, Transport::Udp, &mut next).unwrap();
        assert_eq!(Message::from_vec(second.bytes).unwrap().metadata.id, 0x1234);
        assert_eq!(f.waiting(), 2);
    }

    #[test]
    fn only_the_answer_with_our_id_and_question_counts() {
        let (t0, mut f, mut next, _) = fixture(&[A], &[0x4242]);
        let q = build_query("www.example.com", RecordType::A, |m| m.metadata.id = 0x0101);
        let token = started(&mut f, t0, 9, &q, &mut next);
        let mut out = Vec::new();
        let sent =
            upstream_answer(&build_query("www.example.com", RecordType::A, |m| m.metadata.id = 0x4242), 300, |_| {});
        let spoofs = [
            // Right question, wrong id.
            upstream_answer(&q, 300, |m| m.metadata.id = 0x4243),
            // Right id, another name: an answer the spoofer would like cached.
            upstream_answer(&build_query("evil.example.com", RecordType::A, |m| m.metadata.id = 0x4242), 300, |_| {}),
            // Right id and name, another type.
            upstream_answer(&build_query("www.example.com", RecordType::AAAA, |m| m.metadata.id = 0x4242), 300, |_| {}),
            // Not a response.
            build_query("www.example.com", RecordType::A, |m| m.metadata.id = 0x4242),
        ];
        for spoof in &spoofs {
            assert_eq!(f.answer(t0, token, spoof, &mut next, &mut out), Event::Ignored);
        }
        assert_eq!(f.answer(t0, Token(99), &sent, &mut next, &mut out), Event::Ignored, "no such try");
        assert_eq!(f.counters().ignored, 5);
        // The real one, in another case, still gets through: the try kept waiting.
        let real =
            upstream_answer(&build_query("WWW.EXAMPLE.COM", RecordType::A, |m| m.metadata.id = 0x4242), 300, |_| {});
        assert_eq!(f.answer(t0, token, &real, &mut next, &mut out), Event::Reply { cancel: token, origin: 9 });
        let msg = Message::from_vec(&out).unwrap();
        assert_eq!(msg.metadata.id, 0x0101, "the client's id");
        assert_eq!(msg.queries[0].name().to_ascii(), "www.example.com.", "the client's question");
        assert_eq!(f.waiting(), 0);
        // And nothing the spoofs said was cached.
        let evil = query("evil.example.com", RecordType::A);
        assert!(!f.cached(t0, &evil, Transport::Udp, &mut out));
        assert!(f.cached(t0, &q, Transport::Udp, &mut out));
    }

    #[test]
    fn a_silent_server_fails_over_in_order_and_is_skipped_while_held_down() {
        let (t0, mut f, mut next, mut out) = fixture(&[A, B], &[1, 2, 3, 4, 5]);
        let q = query("www.example.com", RecordType::A);
        let first = started(&mut f, t0, 1, &q, &mut next);
        assert_eq!(f.poll_timeout(), Some(t0 + FORWARD_TRY_TIMEOUT));
        assert!(f.handle_timeout(t0 + FORWARD_TRY_TIMEOUT - Duration::from_millis(1), &mut next, &mut out).is_none());
        let t1 = t0 + FORWARD_TRY_TIMEOUT;
        let Some(Event::Retry { cancel, send }) = f.handle_timeout(t1, &mut next, &mut out) else { panic!() };
        assert_eq!((cancel, send.server), (first, B.parse().unwrap()));
        let retry = send.token;
        // B answers; the answer to the timed-out try on A comes too late to matter.
        let reply =
            |id| upstream_answer(&build_query("www.example.com", RecordType::A, |m| m.metadata.id = id), 60, |_| {});
        assert_eq!(f.answer(t1, first, &reply(1), &mut next, &mut out), Event::Ignored);
        assert_eq!(f.answer(t1, retry, &reply(2), &mut next, &mut out), Event::Reply { cancel: retry, origin: 1 });
        // A is held down: the next query goes to B first.
        let q2 = query("other.example.com", RecordType::A);
        let send = f.start(t1, 2, &q2, Transport::Udp, &mut next).unwrap();
        assert_eq!(send.server, B.parse().unwrap());
        let token = send.token;
        assert!(
            matches!(f.failed(t1, token, &mut next, &mut out), Event::Retry { send: Outgoing { server, .. }, .. } if server == A.parse().unwrap())
        );
        // After the hold-down A is first again.
        let later = t1 + SERVER_HOLD_DOWN;
        let q3 = query("third.example.com", RecordType::A);
        assert_eq!(f.start(later, 3, &q3, Transport::Udp, &mut next).unwrap().server, A.parse().unwrap());
        assert_eq!(f.counters().failovers, 2);
    }

    #[test]
    fn after_the_last_server_the_client_gets_servfail_with_its_opt() {
        let (t0, mut f, mut next, mut out) = fixture(&[A], &[1]);
        let q = build_query("www.example.com", RecordType::A, |m| {
            m.metadata.id = 0x7777;
            edns(1232)(m);
        });
        let token = started(&mut f, t0, 5, &q, &mut next);
        assert_eq!(f.failed(t0, token, &mut next, &mut out), Event::GiveUp { cancel: token, origin: 5 });
        let msg = Message::from_vec(&out).unwrap();
        assert_eq!((msg.metadata.id, msg.metadata.response_code), (0x7777, ResponseCode::ServFail));
        assert!(msg.edns.is_some());
        assert_eq!(f.counters().gave_up, 1);
    }

    #[test]
    fn servfail_and_refused_try_the_next_server_but_the_last_one_is_passed_on() {
        let (t0, mut f, mut next, mut out) = fixture(&[A, B], &[10, 11]);
        let q = query("www.example.com", RecordType::A);
        let token = started(&mut f, t0, 1, &q, &mut next);
        let failing = |id, rcode| {
            upstream_answer(&build_query("www.example.com", RecordType::A, |m| m.metadata.id = id), 60, |m| {
                m.answers.clear();
                m.metadata.response_code = rcode;
            })
        };
        let Event::Retry { send, .. } = f.answer(t0, token, &failing(10, ResponseCode::ServFail), &mut next, &mut out)
        else {
            panic!("SERVFAIL from the first server")
        };
        assert_eq!(send.server, B.parse().unwrap());
        let token = send.token;
        assert_eq!(
            f.answer(t0, token, &failing(11, ResponseCode::Refused), &mut next, &mut out),
            Event::Reply { cancel: token, origin: 1 }
        );
        assert_eq!(Message::from_vec(&out).unwrap().metadata.response_code, ResponseCode::Refused);
        // A answered (SERVFAIL): not held down.
        let q2 = query("x.example.com", RecordType::A);
        assert_eq!(f.start(t0, 2, &q2, Transport::Udp, &mut next).unwrap().server, A.parse().unwrap());
    }

    #[test]
    fn nothing_is_forwarded_without_servers_or_room() {
        let t0 = Instant::now();
        let mut next = ids(&[1]);
        let q = query("www.example.com", RecordType::A);
        let mut none = forwarder(&[]);
        assert_eq!(none.start(t0, 1, &q, Transport::Udp, &mut next), Err(StartError::NoServers));
        let mut f = forwarder(&[A]);
        for i in 0..MAX_FORWARDS as u32 {
            f.start(t0, i, &q, Transport::Udp, &mut next).unwrap();
        }
        assert_eq!(f.start(t0, 0, &q, Transport::Udp, &mut next), Err(StartError::Full));
        assert_eq!(f.start(t0, 0, &q[..5], Transport::Udp, &mut next).err(), Some(StartError::Full));
        let mut g = forwarder(&[A]);
        assert_eq!(g.start(t0, 0, &q[..5], Transport::Udp, &mut next), Err(StartError::NotAQuery));
        assert_eq!(f.counters().dropped, 2);
    }

    #[test]
    fn a_new_server_list_is_used_by_the_next_query() {
        let (t0, mut f, mut next, _) = fixture(&[A], &[1]);
        f.set_servers(vec![B.parse().unwrap(), A.parse().unwrap()]);
        let q = query("www.example.com", RecordType::A);
        assert_eq!(f.start(t0, 1, &q, Transport::Udp, &mut next).unwrap().server, B.parse().unwrap());
        assert_eq!(f.servers().len(), 2);
    }
}
