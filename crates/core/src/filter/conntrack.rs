//! Connection tracking: the memory that makes security groups stateful.
//!
//! # Theory of operation
//! A flow is keyed by the ENI's index and the crate's one
//! [`crate::flow::FlowKey`] (protocol, ENI address/port, client
//! address/port), so a packet and its reply share one key; the entry
//! remembers which direction started the flow. For protocols
//! other than TCP, UDP and ICMP the ports are zeroed: AWS: "For protocols
//! other than TCP, UDP, or ICMP, only the IP address and protocol number is
//! tracked."
//!
//! Each entry has an idle timeout that depends on its [`EntryState`]. Expiry
//! uses a min-heap of scheduled deadlines with lazy rescheduling: a packet
//! only moves `last_seen`, never the heap, unless its state *shortens* the
//! timeout (FIN, RST), so the per-packet cost is one hash lookup. When a
//! heap item falls due and the flow was refreshed meanwhile, it is pushed
//! again with the real deadline. [`Conntrack::next_deadline`] may therefore
//! be early, never late. A packet that finds its entry past the deadline
//! treats it as gone even if `handle_timeout` has not run yet.
//!
//! Limits: `max_entries` flows; when full, expired entries are collected
//! first, then a new flow is refused (the caller rejects the packet).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use super::{FilterConfigError, PROTO_ICMP, PROTO_TCP, PROTO_UDP, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};
use crate::flow::{Direction, SeededState};
use crate::packet::PacketMeta;

/// Idle timeouts per conntrack state.
///
/// The three EC2 exposes in `ConnectionTrackingSpecification` keep EC2's
/// names, ranges and defaults. The others are not configurable at AWS and
/// not documented; the values follow Linux nf_conntrack where it has a
/// counterpart, and are chosen so that half-open and closing flows free
/// their slot much sooner than established ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConntrackTimeouts {
    /// "Timeout (in seconds) for idle TCP connections in an established
    /// state. Min: 60 seconds. Max: 432000 seconds (5 days). Default: 432000."
    pub tcp_established: Duration,
    /// "Timeout (in seconds) for idle UDP flows that have seen traffic only in
    /// a single direction or a single request-response transaction. Min: 30
    /// seconds. Max: 60 seconds. Default: 30 seconds."
    pub udp: Duration,
    /// "Timeout (in seconds) for idle UDP flows classified as streams which
    /// have seen more than one request-response transaction. Min: 60 seconds.
    /// Max: 180 seconds (3 minutes). Default: 180 seconds."
    pub udp_stream: Duration,
    /// Handshake not complete (SYN seen, no final ACK): 60 s, Linux's
    /// `tcp_timeout_syn_recv`; a SYN flood holds each slot for a minute, not
    /// for five days.
    pub tcp_handshake: Duration,
    /// A FIN seen in either direction: 120 s, Linux's `fin_wait`/`time_wait`,
    /// long enough for the other side to finish sending and close.
    pub tcp_closing: Duration,
    /// RST seen, or FINs seen both ways: 10 s, Linux's `tcp_timeout_close`;
    /// room for the last ACK and a retransmitted FIN, then the slot is free.
    pub tcp_closed: Duration,
    /// ICMP (echo and the like): 30 s, Linux's `icmp_timeout`.
    pub icmp: Duration,
    /// Other protocols: 600 s. AWS: "the host sends the same type of traffic
    /// to your instance within 600 seconds" is accepted as response traffic.
    pub other: Duration,
}

impl Default for ConntrackTimeouts {
    fn default() -> Self {
        ConntrackTimeouts {
            tcp_established: Duration::from_secs(432_000),
            udp: Duration::from_secs(30),
            udp_stream: Duration::from_secs(180),
            tcp_handshake: Duration::from_secs(60),
            tcp_closing: Duration::from_secs(120),
            tcp_closed: Duration::from_secs(10),
            icmp: Duration::from_secs(30),
            other: Duration::from_secs(600),
        }
    }
}

impl ConntrackTimeouts {
    /// Checks EC2's ranges for the configurable timeouts; the others must be ≥ 1 s.
    pub fn validate(&self) -> Result<(), FilterConfigError> {
        let check = |name: &'static str, d: Duration, min: u64, max: u64| {
            let secs = d.as_secs();
            if (min..=max).contains(&secs) && d.subsec_nanos() == 0 {
                Ok(())
            } else {
                Err(FilterConfigError::Timeout { name, secs, min, max })
            }
        };
        check("tcp_established", self.tcp_established, 60, 432_000)?;
        check("udp", self.udp, 30, 60)?;
        check("udp_stream", self.udp_stream, 60, 180)?;
        check("tcp_handshake", self.tcp_handshake, 1, 432_000)?;
        check("tcp_closing", self.tcp_closing, 1, 432_000)?;
        check("tcp_closed", self.tcp_closed, 1, 432_000)?;
        check("icmp", self.icmp, 1, 432_000)?;
        check("other", self.other, 1, 432_000)
    }

    /// The idle timeout of `state`.
    pub fn of(&self, state: EntryState) -> Duration {
        match state {
            EntryState::TcpHandshake => self.tcp_handshake,
            EntryState::TcpEstablished => self.tcp_established,
            EntryState::TcpClosing => self.tcp_closing,
            EntryState::TcpClosed => self.tcp_closed,
            EntryState::UdpSingle => self.udp,
            EntryState::UdpStream => self.udp_stream,
            EntryState::Icmp => self.icmp,
            EntryState::Other => self.other,
        }
    }
}

/// Where a tracked flow is in its life; decides its idle timeout.
///
/// Every state lets packets of the flow through both ways; states differ
/// only in how long an idle entry lives. No sequence numbers are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EntryState {
    /// TCP, a SYN seen, handshake not finished.
    /// Trigger: a new flow starts with SYN.
    /// Leaves: to `TcpEstablished` on an ACK without SYN after the other side
    /// answered; to `TcpClosing` on FIN; to `TcpClosed` on RST.
    TcpHandshake,
    /// TCP, both sides talking.
    /// Trigger: handshake done. (A flow is never picked up mid-stream: only a
    /// SYN opens one; see the filter's module doc.)
    TcpEstablished,
    /// TCP, a FIN seen from one side.
    TcpClosing,
    /// TCP, RST seen or FINs seen both ways. A new SYN from the side that
    /// started the flow replaces the entry and is judged by the rules again
    /// (port reuse).
    TcpClosed,
    /// UDP, traffic one way or a single request-response.
    UdpSingle,
    /// UDP, "more than one request-response transaction".
    UdpStream,
    /// ICMP.
    Icmp,
    /// Any other protocol (addresses and protocol only).
    Other,
}

impl std::fmt::Display for EntryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EntryState::TcpHandshake => "tcp-handshake",
            EntryState::TcpEstablished => "tcp-established",
            EntryState::TcpClosing => "tcp-closing",
            EntryState::TcpClosed => "tcp-closed",
            EntryState::UdpSingle => "udp",
            EntryState::UdpStream => "udp-stream",
            EntryState::Icmp => "icmp",
            EntryState::Other => "other",
        })
    }
}

/// A tracked flow: the ENI's index and the flow through it, as the two
/// words of [`crate::flow::FlowKey::packed`] with the index in their spare
/// top bits (24 bits of index). Hashing is two multiply rounds, equality and
/// the heap's order two integer compares: a field-wise key cost a new flow
/// 16 % more instructions (heap pushes compare keys of equal deadlines).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TrackedFlow([u64; 2]);

impl Hash for TrackedFlow {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0[0]);
        state.write_u64(self.0[1]);
    }
}

impl TrackedFlow {
    /// The tracked flow of `packet` crossing ENI `eni` in `dir`. AWS: "For
    /// protocols other than TCP, UDP, or ICMP, only the IP address and
    /// protocol number is tracked": their ports are zeroed.
    #[inline]
    pub(crate) fn new(eni: usize, dir: Direction, packet: &PacketMeta) -> TrackedFlow {
        let mut flow = packet.flow_in(dir);
        if !matches!(packet.protocol, PROTO_TCP | PROTO_UDP | PROTO_ICMP) {
            flow.client.1 = 0;
            flow.eni.1 = 0;
        }
        let [a, b] = flow.packed();
        TrackedFlow([a, b | (eni as u64) << 40])
    }
}

const REPLY_SEEN: u8 = 1;
const FIN_ORIGIN: u8 = 2;
const FIN_REPLY: u8 = 4;

/// Nanoseconds since the table's first packet: entries store `u64` ticks,
/// not `Instant`s (16 bytes each, and their arithmetic normalizes nanos on
/// every add), which halves the entry and keeps the per-packet path to
/// integer compares.
type Ticks = u64;

#[derive(Debug)]
struct Entry {
    last_seen: Ticks,
    /// The deadline a heap item exists for; never after the true deadline.
    scheduled: Ticks,
    state: EntryState,
    origin: Direction,
    flags: u8,
}

/// What [`Conntrack::touch`] found.
pub(crate) enum Touch {
    /// A live entry; its state was updated.
    Tracked,
    /// No live entry: judge the packet as a new flow.
    New,
}

pub(crate) struct Conntrack {
    map: HashMap<TrackedFlow, Entry, SeededState>,
    heap: BinaryHeap<Reverse<(Ticks, TrackedFlow)>>,
    /// Idle timeout per [`EntryState`], in ticks, indexed by `state as usize`.
    timeouts: [Ticks; 8],
    max_entries: usize,
    /// The instant tick 0 stands for: the first `now` seen.
    epoch: Option<Instant>,
    /// The last conversion: a data plane passes one `now` per batch of
    /// packets, so most calls skip the `Instant` subtraction.
    last: Option<(Instant, Ticks)>,
}

impl Conntrack {
    pub(crate) fn new(timeouts: ConntrackTimeouts, max_entries: usize, seed: u64) -> Conntrack {
        // Reserved up-front: a flood of new flows never allocates, and memory
        // use is known at start (about 50 bytes per entry, map and heap).
        let states = [
            EntryState::TcpHandshake,
            EntryState::TcpEstablished,
            EntryState::TcpClosing,
            EntryState::TcpClosed,
            EntryState::UdpSingle,
            EntryState::UdpStream,
            EntryState::Icmp,
            EntryState::Other,
        ];
        debug_assert!(states.iter().enumerate().all(|(i, s)| *s as usize == i));
        let timeouts = states.map(|s| timeouts.of(s).as_nanos() as Ticks);
        Conntrack {
            map: HashMap::with_capacity_and_hasher(max_entries, SeededState(seed)),
            heap: BinaryHeap::with_capacity(max_entries),
            timeouts,
            max_entries,
            epoch: None,
            last: None,
        }
    }

    #[inline]
    fn ticks(&mut self, now: Instant) -> Ticks {
        if let Some((at, t)) = self.last {
            if at == now {
                return t;
            }
        }
        let epoch = *self.epoch.get_or_insert(now);
        let t = now.saturating_duration_since(epoch).as_nanos() as Ticks;
        self.last = Some((now, t));
        t
    }

    #[inline]
    fn timeout(&self, state: EntryState) -> Ticks {
        self.timeouts[state as usize]
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn state(&self, key: &TrackedFlow) -> Option<EntryState> {
        self.map.get(key).map(|e| e.state)
    }

    /// Looks the flow up and, if it is live, advances its state.
    #[inline]
    pub(crate) fn touch(&mut self, now: Instant, key: &TrackedFlow, dir: Direction, f: &PacketMeta) -> Touch {
        let now = self.ticks(now);
        let timeouts = self.timeouts;
        let Some(e) = self.map.get_mut(key) else {
            return Touch::New;
        };
        let syn_only = f.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN;
        let reuse = e.state == EntryState::TcpClosed && syn_only && dir == e.origin;
        if now >= e.last_seen + timeouts[e.state as usize] || reuse {
            // Its heap item, if any, is now stale and will be dropped when due.
            self.map.remove(key);
            return Touch::New;
        }
        advance(e, dir, f);
        e.last_seen = now;
        let deadline = now + timeouts[e.state as usize];
        if deadline < e.scheduled {
            e.scheduled = deadline;
            self.heap.push(Reverse((deadline, *key)));
        }
        Touch::Tracked
    }

    /// Starts tracking a new flow; `false` if the table is full.
    #[inline]
    pub(crate) fn insert(&mut self, now: Instant, key: TrackedFlow, dir: Direction, f: &PacketMeta) -> bool {
        if self.map.len() >= self.max_entries {
            self.expire(now);
            if self.map.len() >= self.max_entries {
                return false;
            }
        }
        let now = self.ticks(now);
        let state = initial_state(f);
        let deadline = now + self.timeout(state);
        self.map.insert(key, Entry { last_seen: now, scheduled: deadline, state, origin: dir, flags: 0 });
        self.heap.push(Reverse((deadline, key)));
        true
    }

    /// Whether `key` has an entry a packet at `now` would find alive (the
    /// reuse of a closed flow by a new SYN aside); changes nothing.
    pub(crate) fn is_live(&self, now: Instant, key: &TrackedFlow) -> bool {
        let (Some(e), Some(epoch)) = (self.map.get(key), self.epoch) else {
            return false;
        };
        let now = now.saturating_duration_since(epoch).as_nanos() as Ticks;
        now < e.last_seen + self.timeouts[e.state as usize]
    }

    /// Drops every entry idle past its timeout at `now`.
    pub(crate) fn expire(&mut self, now: Instant) {
        let now = self.ticks(now);
        while let Some(&Reverse((due, key))) = self.heap.peek() {
            if due > now {
                break;
            }
            self.heap.pop();
            let Some(e) = self.map.get_mut(&key) else {
                continue;
            };
            if e.scheduled != due {
                continue; // a stale item: a newer one exists for this entry
            }
            let deadline = e.last_seen + self.timeouts[e.state as usize];
            if deadline <= now {
                self.map.remove(&key);
            } else {
                e.scheduled = deadline;
                self.heap.push(Reverse((deadline, key)));
            }
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let Reverse((due, _)) = self.heap.peek()?;
        Some(self.epoch? + Duration::from_nanos(*due))
    }
}

fn initial_state(f: &PacketMeta) -> EntryState {
    match f.protocol {
        PROTO_TCP if f.tcp_flags & TCP_RST != 0 => EntryState::TcpClosed,
        PROTO_TCP if f.tcp_flags & TCP_FIN != 0 => EntryState::TcpClosing,
        PROTO_TCP if f.tcp_flags & TCP_SYN != 0 => EntryState::TcpHandshake,
        PROTO_TCP => EntryState::TcpEstablished,
        PROTO_UDP => EntryState::UdpSingle,
        PROTO_ICMP => EntryState::Icmp,
        _ => EntryState::Other,
    }
}

/// The state machine documented on [`EntryState`].
#[inline]
fn advance(e: &mut Entry, dir: Direction, f: &PacketMeta) {
    let reply = dir != e.origin;
    match f.protocol {
        PROTO_TCP => {
            let flags = f.tcp_flags;
            if flags & TCP_RST != 0 {
                e.state = EntryState::TcpClosed;
                return;
            }
            if reply {
                e.flags |= REPLY_SEEN;
            }
            if flags & TCP_FIN != 0 {
                e.flags |= if reply { FIN_REPLY } else { FIN_ORIGIN };
            }
            e.state = match e.state {
                _ if e.flags & (FIN_ORIGIN | FIN_REPLY) == FIN_ORIGIN | FIN_REPLY => EntryState::TcpClosed,
                _ if e.flags & (FIN_ORIGIN | FIN_REPLY) != 0 => EntryState::TcpClosing,
                EntryState::TcpHandshake if e.flags & REPLY_SEEN != 0 && flags & (TCP_SYN | TCP_ACK) == TCP_ACK => {
                    EntryState::TcpEstablished
                }
                s => s,
            };
        }
        PROTO_UDP => {
            if reply {
                e.flags |= REPLY_SEEN;
            } else if e.flags & REPLY_SEEN != 0 {
                // A second request after a response: a stream.
                e.state = EntryState::UdpStream;
            }
        }
        _ => {}
    }
}
