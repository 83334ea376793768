//! The private-DNS responder: the Amazon-provided resolver's view of an
//! endpoint's private hosted zones (sans-IO).
//!
//! Heads up: read RFC 1035 (sections 4.1 and 7: message format, FORMERR,
//! NOTIMP, REFUSED), RFC 2308 (negative answers: NXDOMAIN vs NODATA, the SOA
//! in the authority section), RFC 4592 (wildcards: the closest encloser),
//! RFC 8020 (an empty non-terminal is NODATA, not NXDOMAIN), RFC 6891 (EDNS:
//! UDP payload size, BADVERS) and RFC 7766 (TCP) before changing this module.
//!
//! # Theory of operation
//! `control` turns endpoints into a [`ZoneSpec`] (plain data, see
//! [`ZoneSpec::add_endpoint`]); [`Zone::build`] compiles it once into a hash
//! map of lowercased wire-format names; the caller swaps the whole [`Zone`]
//! behind an `Arc` when endpoints change. [`Responder::handle_query`] takes
//! one DNS message (UDP payload, or a TCP message *without* its 2-byte length
//! prefix: framing is the caller's job in both directions) and returns an
//! [`Outcome`]:
//! - `Respond`: `out` holds the response;
//! - `Forward`: the name is outside every private zone; the caller sends the
//!   original query to an upstream resolver (privacy mode answers REFUSED
//!   instead, `[dns] forward = []`);
//! - `Drop`: stay silent (not a query, or too broken to trust), for a
//!   [`QueryDropReason`]. That is not [`crate::packet::DropReason`]: the
//!   pipeline's reasons are about IP packets and index its counters, these are
//!   about a DNS message inside a packet the pipeline already accepted, and
//!   are counted in [`DnsCounters`].
//!
//! [`Forwarder`] carries `Forward` queries to the upstream resolvers
//! (`[dns] forward`, in order, with failover): random ids the edge supplies,
//! answers matched on id and question, our own OPT each way, and a
//! [`ForwardCache`] of the answers (the caller passes `now`).
//!
//! DNS over TCP (RFC 7766) is framed, pipelined and timed by a
//! [`TcpSession`] per connection, and the connections of one resolver are
//! kept by [`TcpSessions`]: limits that make room instead of refusing, so no
//! flood locks clients out.
//!
//! The rules, as the Amazon resolver applies them to a private hosted zone
//! ("a private hosted zone shadows the public zone of the same name"):
//! - a name with records, type A or ANY: the A records, TTL [`ANSWER_TTL`],
//!   AA set, RD copied, RA set;
//! - a name that exists, any other type (AAAA above all: the endpoint is
//!   IPv4-only): NOERROR, no answer, the zone's SOA in the authority section
//!   (NODATA, RFC 2308 section 2.2). Never NXDOMAIN for an existing name, and
//!   never forwarded, so no public AAAA leaks (podman #29772). SOA at an apex
//!   answers the SOA; AXFR/IXFR are REFUSED;
//! - a name under a zone apex with no record and no wildcard: NXDOMAIN with
//!   the SOA, even if the public zone has the name;
//! - any other name: `Forward`, or REFUSED in privacy mode. Classes other
//!   than IN (and ANY) are REFUSED: CHAOS `version.bind` is not forwarded.
//!
//! # Files
//! - `spec`: [`ZoneSpec`], what the zones hold, built from endpoints;
//! - `zone`: [`Zone`], the compiled zones and the closest-encloser lookup;
//! - `name`: configured names to wire format, skipping names in messages;
//! - `query`: reading a query's question and its EDNS OPT, and why one is dropped;
//! - `answer`: writing a response within its size limit (TC);
//! - `responder`: [`Responder`], the rules above and the counters;
//! - `asked`: [`AskedNames`], the names asked and their answers, bounded;
//! - `opt`: the OPT record we write, in answers and forwarded queries;
//! - `forwarder`: [`Forwarder`], forwarded queries, failover, spoofing;
//! - `forwarded`: a forwarded query and its answer on the wire;
//! - `cache`: [`ForwardCache`], upstream answers kept for their TTL;
//! - `session`: [`TcpSession`], one DNS-over-TCP connection;
//! - `sessions`: [`TcpSessions`], a resolver's TCP connections and their limits;
//! - `wire`: the protocol's numbers (types, classes, rcodes, flags);
//! - `hash`: the FNV hasher of the name maps.
//!
//! # Limits and their consequences
//! - Queries longer than [`MAX_QUERY_LEN`] are dropped, and over UDP without
//!   EDNS longer than 512 bytes (RFC 1035 section 2.3.4).
//! - UDP responses never exceed 512 bytes, or the client's EDNS size capped
//!   at [`MAX_UDP_RESPONSE`]. A larger answer is sent with TC set and no
//!   records at all (no partial RRset), so the client retries over TCP, where
//!   the whole answer is returned. A forwarded answer over the client's
//!   limit is replaced the same way, by its header with TC and the question.
//! - Amplification: every response is the query's header and question plus
//!   at most the A records of one name (16 bytes per IP), or one SOA, plus an
//!   11-byte OPT. Error responses (FORMERR, NOTIMP) are a 12-byte header,
//!   plus the OPT when the query had one.
//!   For an endpoint (one IP per AZ, at most 6 AZs) that is under 4x the
//!   query; the fuzz test asserts the bound. [`MAX_IPS_PER_NAME`] caps
//!   hand-built zones.
//! - A compression pointer in the question of a query can only point at the
//!   header or forwards (nothing precedes the first name), so it is hostile
//!   or garbage: dropped, never followed. Names in other sections are only
//!   skipped, never followed, so pointer loops cost nothing.
//! - No per-query allocation: the query is parsed in place, names are
//!   lowercased into a stack buffer, the response is written into the
//!   caller's `out`.
//! - [`ForwardCache`]: at most its capacity in answers, each kept for its
//!   smallest record TTL and never longer than [`MAX_CACHE_TTL`]; when full,
//!   expired answers go first, then any one.
//!
//! ## Not emulated
//! - DNSSEC (no signatures; the DO bit is echoed, AD is never set), TSIG and
//!   SIG(0) (ignored, answers unsigned), DNS cookies and other EDNS options
//!   (ignored, RFC 6891 section 6.1.2 allows it; never passed on either way).
//! - AAAA and dual-stack endpoints (`DnsRecordIpType` is always `ipv4`).
//! - The NS records of the private zone, zone transfers, NOTIFY and UPDATE
//!   (NOTIMP).
//! - Route 53 Resolver rules, inbound/outbound resolver endpoints, DNS64,
//!   query logging; the real resolver's own recursion (that is `Forward`).
//! - The SOA's TTL is [`NEGATIVE_TTL`] (Route 53 uses 900 s) so a name that
//!   appears when private DNS is turned on is seen within a minute.

mod answer;
mod asked;
mod cache;
mod forwarded;
mod forwarder;
mod hash;
mod name;
mod opt;
mod query;
mod responder;
mod session;
mod sessions;
mod spec;
#[cfg(test)]
mod testkit;
mod wire;
mod zone;

pub use asked::{
    Answered, AskedNames, NameAnswer, NameStats, QType, WireName, MAX_ANSWERS_PER_NAME, MAX_IPS_KEPT, MAX_NAMES,
};
pub use cache::{ForwardCache, MAX_CACHE_TTL};
pub use forwarder::{
    servfail, Event, ForwardCounters, Forwarder, Outgoing, StartError, Token, FORWARD_CACHE_ENTRIES,
    FORWARD_TRY_TIMEOUT, MAX_FORWARDS, SERVER_HOLD_DOWN,
};
pub use query::QueryDropReason;
pub use responder::{DnsCounters, ForwardMode, Outcome, Responder};
pub use session::{Expiry, Framed, TcpSession, MAX_TCP_BACKLOG, MAX_TCP_PIPELINE, TCP_IDLE_TIMEOUT, TCP_QUERY_TIMEOUT};
pub use sessions::{Expired, SessionId, TcpCounters, TcpSessions, MAX_TCP_SESSIONS, MAX_TCP_SESSIONS_PER_SOURCE};
pub use spec::{EndpointDns, ZoneApex, ZoneEntry, ZoneSpec};
pub use zone::{DnsError, Zone};

/// TTL of the A records, as AWS's endpoint records (alias, 60 s is typical).
pub const ANSWER_TTL: u32 = 60;

/// TTL of the SOA, which bounds negative caching (RFC 2308 section 5).
pub const NEGATIVE_TTL: u32 = 60;

/// Longest query accepted on either transport. A single-question query is at
/// most 12 + 255 + 4 bytes plus an OPT; even padded (RFC 8467: 128-byte
/// blocks) it stays far below this, so anything longer is not a query.
pub const MAX_QUERY_LEN: usize = 1232;

/// Largest UDP response, whatever the client's EDNS size: 1232 bytes fits an
/// IPv6 minimum MTU without fragmentation (DNS flag day 2020).
pub const MAX_UDP_RESPONSE: usize = 1232;

/// UDP response limit without EDNS (RFC 1035 section 2.3.4).
pub const PLAIN_UDP_LIMIT: usize = 512;

/// Most addresses one name may carry; keeps a TCP answer under 64 KiB with room to spare.
pub const MAX_IPS_PER_NAME: usize = 1000;

/// The transport a query arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// UDP: responses are size-limited and may be truncated (TC).
    Udp,
    /// TCP: the caller strips and adds the 2-byte length prefix; no truncation.
    Tcp,
}
