//! privlink's sans-IO core: an AWS interface VPC endpoint as pure code over
//! bytes and structs. No sockets, no files, no clock: callers pass bytes and
//! `Instant`s in and get decisions and bytes back. The edges that do the I/O
//! (namespaces, the TUN, the per-queue loop, the relay's sockets, the
//! resolver's sockets, the state store, the daemon) are the `privlink` crate;
//! this crate cannot reach them, nor tokio, libc or socket2 (they are not its
//! dependencies), and `tests/boundary.rs` fails if its code names std's file
//! system, sockets, processes or clock.
//!
//! # The data path (one packet, client to service)
//!
//! ```text
//! TUN frame ─▶ pipeline ──▶ filter (ingress) ──▶ admission ──▶ smoltcp ──▶ relay ──▶ upstream
//!  (edge)      MTU, parse,   NACL at the subnet    room, then     (edge)     first_flight
//!              IPv6/non-TCP  boundary, then SGs;   endpoint                  gate (SNI), then
//!              drops, route  conntrack             policy                    shaper grants
//!                  │
//!                  └─ UDP 53 to a resolver address ─▶ dns responder (zone, or REFUSED / forward)
//!                     (TCP 53 goes through smoltcp and the relay to the same resolver, in process)
//! smoltcp's replies ─▶ filter (egress: SG by state, NACL stateless) ─▶ TUN; every decision ─▶ flowlog
//! ```
//!
//! - [`packet`] parses once ([`packet::PacketMeta`]); nobody parses again.
//! - [`pipeline`] drops by MTU, IPv6, malformed, source, no route, not TCP, port.
//! - [`filter`] is the ENI's network ACL (stateless, only across the subnet
//!   boundary) and security groups (stateful, with AWS's conntrack timeouts).
//! - [`admission`] decides a new flow's SYN before anything is connected:
//!   the client's and the endpoint's room, whether its SYN-ACK could leave,
//!   the endpoint policy.
//! - [`rfc5961`] judges a live connection's segments before the TCP stack
//!   does (RST, SYN and ACK checks against blind in-window attacks).
//! - [`policy`] holds the endpoint policy (IAM JSON), the ClientHello reader
//!   and the SNI gate a stream's first flight must pass.
//! - [`shaper`] shares an ENI's rate among its connections (token buckets).
//! - [`dns`] compiles the private zone and answers queries on the wire,
//!   forwards the rest (failover, random ids, a cache), and frames and times
//!   DNS-over-TCP connections.
//! - [`flowlog`] aggregates decisions into VPC Flow Log v2 records.
//! - [`log_limit`] says when a failure may print its log line (rate limits).
//! - [`first_seen`] keeps the first N distinct keys met and counts the rest:
//!   bounded bookkeeping of what a client did (`privlink run --summary`).
//!
//! # The control path (a config becomes a running endpoint)
//!
//! [`config`] reads TOML into typed, validated specs (errors name the file,
//! line and key); [`catalog`] knows the AWS services' DNS facts; [`model`]
//! turns them into the [`model::Plan`], whose endpoints are the one
//! authoritative model: ids and ENI IPs allocated once and kept ([`cidr`]
//! keeps AWS's five reserved addresses free), and from which the zone, the
//! rule set and the stack's view are derived. A state read back from disk is
//! checked field by field first ([`model::State::check`]). [`reload`] says which changes
//! a running privlink takes live.
//!
//! With an `[api]` config the plan comes from the EC2 API instead: [`api`]
//! maps a Query request ([`api::query::Params`]) onto the [`api::ec2::Ec2`]
//! model and an XML answer, checking the whole call before changing
//! anything, and derives each VPC's plan from the model
//! ([`api::ec2::Ec2::vpc_plan`]); the edge runs one TUN per endpoint from it.
//! A VPC in the same file seeds that model once, through the same calls
//! ([`api::ec2::seed`]), so the file's objects and the API's are one model.
//!
//! # Who owns what (in the edge crate)
//!
//! Each TUN queue has one thread with a current-thread runtime and owns its
//! stack: pipeline, filter and conntrack, resolver, connections, shapers.
//! Shared across queues: the rule set and zone (`Arc`, swapped on reload and
//! taken up per packet and per query), the flow-log window (one lock), and
//! the per-endpoint connection counts (atomics). Each queue's resolver
//! serves UDP and TCP and forwards on its own; the first queue's thread
//! applies reloads. Once the ENI exists the process gives up its
//! privileges; one teardown thread keeps what removing the namespace needs
//! (the edge's `privileges` module).
//!
//! # Timers and limits
//!
//! | what | default | when it fires or is reached |
//! |---|---|---|
//! | `connect_timeout` | 10 s (≤ 300) | the upstream did not answer: the client gets an RST |
//! | `hello_timeout` ([`policy::DEFAULT_HELLO_TIMEOUT`]) | 10 s (≤ 300) | no complete ClientHello: stream and upstream reset, counted `sni_denied` |
//! | [`policy::MAX_CLIENT_HELLO`] | 16 KiB | the SNI check reads no more of a first flight |
//! | smoltcp socket timeout (edge) | 300 s | a peer that stops ACKing is gone: the socket closes, the upstream is reset |
//! | [`admission::MAX_HALF_OPEN`] | 1,024 per queue | new SYNs dropped (`connection_limit`); clients retry |
//! | [`admission::MAX_HALF_OPEN_PER_CLIENT`] | 128 per client address and queue | that client's new SYNs dropped (`client_limit`); it retries, others are served |
//! | challenge ACKs ([`rfc5961`], smoltcp's throttle) | 1 per connection per second | more challenges within the second are discarded without a reply |
//! | `max_connections` | 10,000 per endpoint | new SYNs dropped (`connection_limit`) |
//! | conntrack, established TCP | 432,000 s (5 days) | entry expires: the flow is judged by the rules again |
//! | conntrack, TCP handshake / closing / closed | 60 / 120 / 10 s | entry expires |
//! | conntrack, UDP / UDP stream / ICMP / other | 30 / 180 / 30 / 600 s | entry expires |
//! | conntrack table | 65,536 flows | a new flow is rejected |
//! | flow-log window (`[flow_logs] interval`) | 60 s | the window's records are written |
//! | flows per flow-log window | 65,536 | one SKIPDATA record per ENI, as AWS |
//! | flow-log `start`/`end` ([`flowlog::UnixClock`]) | the first whole second at or after a packet | a record lags its packets by < 1 s, never precedes them |
//! | log lines per kind of failure ([`log_limit::LINE_BURST`], [`log_limit::LINE_INTERVAL`]) | 10 at once, then 1 per second | the rest are counted; the next line says how many |
//! | DNS answer / negative TTL | 60 / 60 s | clients ask again |
//! | DNS forward cache ([`dns::FORWARD_CACHE_ENTRIES`], [`dns::MAX_CACHE_TTL`]) | 4,096 answers, ≤ 3,600 s | the answer is fetched upstream again |
//! | DNS forwards waiting ([`dns::MAX_FORWARDS`]) | 4,096 per queue | a new one is not forwarded; the client retries |
//! | DNS forward try ([`dns::FORWARD_TRY_TIMEOUT`]) | 2 s per server | the next server in `[dns] forward` is asked; after the last, SERVFAIL (TCP) or silence (UDP: the client retries) |
//! | unresponsive forwarder ([`dns::SERVER_HOLD_DOWN`]) | 30 s, per queue | new queries skip it and start at the next server |
//! | a forward try's socket (edge) | 4 s or 16 datagrams | closed, should the forwarder not have done so |
//! | DNS over TCP: first query, a begun query, answers not taken, close after our FIN ([`dns::TCP_QUERY_TIMEOUT`]) | 5 s | the connection is reset |
//! | DNS over TCP idle ([`dns::TCP_IDLE_TIMEOUT`]) | 30 s | the server closes it (FIN) |
//! | DNS-over-TCP connections ([`dns::MAX_TCP_SESSIONS`], [`dns::MAX_TCP_SESSIONS_PER_SOURCE`]) | 1,024 per queue, 16 per client address | a new one resets the quietest (of that address, at its cap); never refused |
//! | DNS-over-TCP pipeline ([`dns::MAX_TCP_PIPELINE`], [`dns::MAX_TCP_BACKLOG`]) | 16 queries forwarded, 16 KiB of answers waiting | no more queries are read until answers go out (TCP's window slows the client) |
//! | DNS over UDP answer size | 512 B, or EDNS up to 1,232 | TC set: the client asks again over TCP |
//! | shaper autoscaling (`max_bandwidth`) | sampled each 1 s; ×2 after 60 s saturated, ÷2 after 300 s not | the ENI's rate steps |
//! | shaper retry | when tokens suffice | the connection is serviced again; meanwhile TCP's window slows the sender |
//! | TUN read budget (edge) | 256 frames per poll | the loop yields, then comes back at once |
//! | lock file retries (edge, `LOCK_TRIES`) | 8 | the lock file was replaced under us each time: `up` stops with an error |

#[macro_export]
/// Gives a struct of `u64` counters an `add` that sums another's into it
/// (another queue's, at exit). The destructuring is exhaustive, so a new
/// field does not compile until it is listed here too.
macro_rules! counters_add {
    ($t:ident { $($f:ident),+ $(,)? }) => {
        impl $t {
            /// Adds `o`'s counts (another TUN queue's) to these.
            pub fn add(&mut self, o: &$t) {
                let $t { $($f),+ } = o;
                $(self.$f += *$f;)+
            }
        }
    };
}

pub mod admission;
pub mod allocation;
pub mod api;
pub mod catalog;
pub mod cidr;
pub mod config;
pub mod dns;
pub mod filter;
pub mod first_seen;
pub mod flow;
pub mod flowlog;
pub mod log_limit;
pub mod model;
pub mod packet;
pub mod pipeline;
pub mod policy;
pub mod reload;
pub mod rfc5961;
pub mod shaper;
