//! What a queue's stack counts, and the connection counts the queues share.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use privlink_core::dns::{AskedNames, DnsCounters, TcpCounters};
use privlink_core::model::Plan;
use privlink_core::pipeline::Counters;

use crate::edge::guard::{GuardCounters, RejectedByRule};
use crate::edge::resolver::ForwardCounters;

/// Connection statistics, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// Upstream connections made and handed to a socket.
    pub accepted: u64,
    /// Clients refused with an RST because the upstream failed.
    pub refused: u64,
    /// Connections finished and removed.
    pub closed: u64,
    /// SYNs refused (RST) because the endpoint policy denies the client.
    pub policy_denied: u64,
    /// Streams reset because their first flight failed the SNI policy (or never completed).
    pub sni_denied: u64,
    /// Client segments of live connections turned into a challenge ACK (RFC 5961:
    /// an RST in the window but not at RCV.NXT, a SYN, an ACK out of range).
    pub challenged: u64,
    /// Client segments of live connections dropped (RFC 5961: an RST outside the window, no ACK bit).
    pub rfc5961_dropped: u64,
    /// Payload bytes the relay wrote upstream (client → service), over every connection.
    pub bytes_to_service: u64,
    /// Payload bytes the relay handed the client's socket (service → client).
    pub bytes_to_client: u64,
}

privlink_core::counters_add!(ConnStats {
    accepted,
    refused,
    closed,
    policy_denied,
    sni_denied,
    challenged,
    rfc5961_dropped,
    bytes_to_service,
    bytes_to_client
});

/// Final report of a stack run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Pipeline counters.
    pub counters: Counters,
    /// Connection statistics.
    pub conns: ConnStats,
    /// The resolver's answers (UDP and TCP).
    pub dns: DnsCounters,
    /// Its forwarding.
    pub forward: ForwardCounters,
    /// Its DNS-over-TCP connections.
    pub dns_tcp: TcpCounters,
    /// Security group and NACL decisions.
    pub guard: GuardCounters,
    /// Connections accepted by each TUN queue's stack, in queue order.
    pub accepted_per_queue: Vec<u64>,
    /// The names the resolver was asked and its answers (bounded).
    pub names: AskedNames,
    /// Connections the guards rejected, by ENI and rule (bounded).
    pub rejected: RejectedByRule,
}

impl Report {
    /// Adds another queue's report to this one.
    pub fn add(&mut self, o: &Report) {
        self.counters.add(&o.counters);
        self.conns.add(&o.conns);
        self.dns.add(&o.dns);
        self.forward.add(&o.forward);
        self.dns_tcp.add(&o.dns_tcp);
        self.guard.add(&o.guard);
        self.accepted_per_queue.extend_from_slice(&o.accepted_per_queue);
        self.names.add(&o.names);
        self.rejected.add(&o.rejected, |mine, theirs| *mine += theirs, |n| *n);
    }
}

/// Connections open or connecting per endpoint (the resolver's TCP side
/// last), counted across the stacks of every TUN queue so `max_connections`
/// holds for the endpoint, not per queue.
#[derive(Debug, Clone)]
pub struct ConnectionSlots(Arc<[AtomicUsize]>);

impl ConnectionSlots {
    /// Empty slots for `plan`'s endpoints.
    pub fn new(plan: &Plan) -> ConnectionSlots {
        ConnectionSlots((0..=plan.endpoints.len()).map(|_| AtomicUsize::new(0)).collect())
    }

    /// Takes a slot of `endpoint` unless `max` are taken.
    pub fn try_take(&self, endpoint: usize, max: usize) -> bool {
        self.0[endpoint].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < max).then_some(n + 1)).is_ok()
    }

    /// Gives a slot of `endpoint` back.
    pub fn give_back(&self, endpoint: usize) {
        self.0[endpoint].fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use privlink_core::packet::DropReason;

    #[test]
    fn reports_of_two_queues_add_up() {
        let mut a = Report::default();
        a.counters.to_stack = 5;
        a.counters.drop(DropReason::Ipv6);
        a.conns =
            ConnStats { accepted: 3, refused: 1, closed: 2, sni_denied: 4, challenged: 5, ..ConnStats::default() };
        a.dns.queries = 7;
        a.forward.sent = 2;
        a.guard.nacl_egress = 1;
        a.accepted_per_queue = vec![3];
        a.conns.bytes_to_client = 100;
        a.names.note(&[1, b'x', 0], 1, privlink_core::dns::Answered::Refused);
        let mut b = a.clone();
        b.counters.drop(DropReason::Ipv6);
        b.conns.accepted = 10;
        b.accepted_per_queue = vec![10];
        a.add(&b);
        assert_eq!((a.counters.to_stack, a.counters.dropped(DropReason::Ipv6)), (10, 3));
        let want = ConnStats {
            accepted: 13,
            refused: 2,
            closed: 4,
            sni_denied: 8,
            challenged: 10,
            bytes_to_client: 200,
            ..ConnStats::default()
        };
        assert_eq!(a.conns, want);
        assert_eq!(a.names.iter().map(|(n, s)| (n.to_string(), s.asked)).collect::<Vec<_>>(), [("x".into(), 2)]);
        assert_eq!((a.dns.queries, a.forward.sent, a.guard.nacl_egress), (14, 4, 2));
        assert_eq!(a.accepted_per_queue, vec![3, 10]);
    }
}
