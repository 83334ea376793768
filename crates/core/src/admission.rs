//! Whether the SYN of a new flow may open an upstream connection: decided
//! before anything is connected, from the endpoint's limits, the way back to
//! the client and the endpoint's policy.
//!
//! The stack holds a new flow's SYN and connects upstream first (the client
//! sees the real service's reachability). Before that, in this order:
//!
//! 1. **The client's room**: at most [`MAX_HALF_OPEN_PER_CLIENT`] half-open
//!    connections per client address and queue ([`HalfOpenByClient`]): SYNs
//!    whose upstream is connecting, and connections whose client has not
//!    finished its handshake. A flood of SYNs from one address (spoofed ones
//!    never finish) holds at most that many upstream connections, not the
//!    endpoint's whole `max_connections`, and other clients are served.
//! 2. **The endpoint's room**: at most [`MAX_HALF_OPEN`] connects in flight
//!    per queue and the endpoint's `max_connections` across queues.
//!
//!    A flow that finds no room is dropped, not reset, so the client retries
//!    as it would against a busy listener.
//! 3. **The way back**: the filter must let the SYN-ACK leave (a NACL's
//!    egress rules may not, e.g. without the clients' ephemeral ports). If it
//!    would not, nothing is connected and the client hears nothing, as at AWS,
//!    where the NACL drops the SYN-ACK; the service sees no phantom connection.
//! 4. **The endpoint policy**: a client it denies gets an RST at once and
//!    nothing is connected.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::packet::tcp_flags::{ACK, SYN};
use crate::packet::{DropReason, PacketMeta};
use crate::policy::{ConnContext, PolicyDecision, PolicyDocument};

/// Connections whose upstream connect is in flight, per queue. Past this,
/// new SYNs are dropped (not reset) so clients retry.
pub const MAX_HALF_OPEN: usize = 1024;

/// Half-open connections one client address may have per queue (an eighth of
/// [`MAX_HALF_OPEN`]). Past this, its new SYNs are dropped (`client_limit`):
/// it retries, as against a busy listener; a legitimate client's handshakes
/// finish within a round trip and an upstream connect, so only a burst of
/// more than this many at once waits.
pub const MAX_HALF_OPEN_PER_CLIENT: usize = MAX_HALF_OPEN / 8;
// One client cannot take the queue's whole room.
const _: () = assert!(MAX_HALF_OPEN_PER_CLIENT < MAX_HALF_OPEN);

/// What to do with a new flow's SYN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynVerdict {
    /// Connect upstream, then let the stack answer the SYN.
    Connect,
    /// Drop it silently and count it: the client retries.
    Drop(DropReason),
    /// Drop it silently: the filter would reject its SYN-ACK (that reject is
    /// the filter's to count and log, as the SYN-ACK's).
    ReplyRejected,
    /// Refuse it with an RST: the endpoint policy denies this client.
    Refuse(PolicyDecision),
}

/// The room a new flow finds, as the stack counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    /// Connects in flight on this queue.
    pub half_open: usize,
    /// Half-open connections of this flow's client on this queue.
    pub client_half_open: usize,
    /// The endpoint had a free connection slot (the caller took it; it gives
    /// it back unless the verdict is `Connect`).
    pub slot: bool,
}

/// Half-open connections per client address, on one queue: the stack opens
/// one when it admits a SYN and closes it when the client's handshake is done
/// or the connection goes. Its entries are the clients with one open, so it
/// is no larger than the half-open connections themselves.
#[derive(Debug, Clone, Default)]
pub struct HalfOpenByClient(HashMap<Ipv4Addr, usize>);

impl HalfOpenByClient {
    /// `client`'s half-open connections.
    pub fn of(&self, client: Ipv4Addr) -> usize {
        self.0.get(&client).copied().unwrap_or(0)
    }

    /// Counts one more for `client`.
    pub fn open(&mut self, client: Ipv4Addr) {
        *self.0.entry(client).or_insert(0) += 1;
    }

    /// Counts one fewer for `client`.
    pub fn close(&mut self, client: Ipv4Addr) {
        if let Some(n) = self.0.get_mut(&client) {
            *n -= 1;
            if *n == 0 {
                self.0.remove(&client);
            }
        }
    }

    /// Half-open connections of every client.
    pub fn total(&self) -> usize {
        self.0.values().sum()
    }
}

/// The SYN-ACK that answers `syn`, as the filter sees it: the reply whose way
/// out admission checks (sequence numbers are the stack's, not needed here).
pub fn syn_ack(syn: &PacketMeta) -> PacketMeta {
    PacketMeta {
        src: syn.dst,
        dst: syn.src,
        src_port: syn.dst_port,
        dst_port: syn.src_port,
        tcp_flags: SYN | ACK,
        seq: 0,
        ack: syn.seq.wrapping_add(1),
        payload_end: syn.payload_start,
        len: syn.payload_start,
        ..*syn
    }
}

/// The limits and policy a new flow of one endpoint meets.
#[derive(Debug, Clone)]
pub struct Admission {
    /// The endpoint's policy (`None`: the resolver's TCP side, which has none).
    pub policy: Option<PolicyDocument>,
    /// `aws:SourceVpc`.
    pub vpc_id: String,
    /// `aws:SourceVpce`.
    pub vpce_id: String,
}

impl Admission {
    /// Judges a SYN from `source` that finds `room` (see the module doc for
    /// the order). `reply_leaves` says whether the filter would let its
    /// SYN-ACK out ([`syn_ack`]); it is asked only if there is room.
    pub fn judge(&self, room: Room, source: Ipv4Addr, reply_leaves: impl FnOnce() -> bool) -> SynVerdict {
        if room.client_half_open >= MAX_HALF_OPEN_PER_CLIENT {
            return SynVerdict::Drop(DropReason::ClientLimit);
        }
        if room.half_open >= MAX_HALF_OPEN || !room.slot {
            return SynVerdict::Drop(DropReason::ConnectionLimit);
        }
        if !reply_leaves() {
            return SynVerdict::ReplyRejected;
        }
        let Some(policy) = &self.policy else { return SynVerdict::Connect };
        let ctx = ConnContext { source_ip: source, vpc_id: &self.vpc_id, vpce_id: &self.vpce_id };
        match policy.evaluate(&ctx) {
            PolicyDecision::Allow => SynVerdict::Connect,
            denied => SynVerdict::Refuse(denied),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(policy: Option<&str>) -> Admission {
        Admission {
            policy: policy.map(|p| PolicyDocument::parse(p).expect("a valid policy")),
            vpc_id: "vpc-1".into(),
            vpce_id: "vpce-1".into(),
        }
    }

    const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 10);

    const ROOM: Room = Room { half_open: 0, client_half_open: 0, slot: true };

    fn judge(a: &Admission, room: Room, source: Ipv4Addr) -> SynVerdict {
        a.judge(room, source, || true)
    }

    #[test]
    fn a_full_endpoint_or_too_many_connects_drop_the_syn() {
        let a = admission(None);
        assert_eq!(judge(&a, ROOM, CLIENT), SynVerdict::Connect);
        assert_eq!(judge(&a, Room { slot: false, ..ROOM }, CLIENT), SynVerdict::Drop(DropReason::ConnectionLimit));
        assert_eq!(judge(&a, Room { half_open: MAX_HALF_OPEN - 1, ..ROOM }, CLIENT), SynVerdict::Connect);
        let full = Room { half_open: MAX_HALF_OPEN, ..ROOM };
        assert_eq!(judge(&a, full, CLIENT), SynVerdict::Drop(DropReason::ConnectionLimit));
    }

    #[test]
    fn one_client_gets_at_most_its_share_of_half_open_connections() {
        let a = admission(None);
        let at = |n| Room { client_half_open: n, ..ROOM };
        assert_eq!(judge(&a, at(MAX_HALF_OPEN_PER_CLIENT - 1), CLIENT), SynVerdict::Connect);
        assert_eq!(judge(&a, at(MAX_HALF_OPEN_PER_CLIENT), CLIENT), SynVerdict::Drop(DropReason::ClientLimit));
        // The client's cap is the more specific reason, and comes first.
        let both = Room { slot: false, ..at(MAX_HALF_OPEN_PER_CLIENT) };
        assert_eq!(judge(&a, both, CLIENT), SynVerdict::Drop(DropReason::ClientLimit));

        let mut counts = HalfOpenByClient::default();
        let other = Ipv4Addr::new(10, 0, 2, 7);
        for _ in 0..3 {
            counts.open(CLIENT);
        }
        counts.open(other);
        counts.close(CLIENT);
        assert_eq!((counts.of(CLIENT), counts.of(other), counts.total()), (2, 1, 3));
        counts.close(other);
        counts.close(other); // one too many: no underflow
        assert_eq!((counts.of(other), counts.0.len()), (0, 1), "a client at zero leaves the map");
    }

    #[test]
    fn a_syn_whose_syn_ack_cannot_leave_connects_nothing() {
        let a = admission(None);
        let mut asked = false;
        assert_eq!(
            a.judge(ROOM, CLIENT, || {
                asked = true;
                false
            }),
            SynVerdict::ReplyRejected
        );
        assert!(asked);
        // Without room the way back is not asked about (no reply would exist to judge).
        let v = a.judge(Room { slot: false, ..ROOM }, CLIENT, || panic!("asked without room"));
        assert_eq!(v, SynVerdict::Drop(DropReason::ConnectionLimit));
        // The reply judged is the SYN's mirror image.
        let syn = PacketMeta { src: CLIENT, ..crate::packet::sample::SYN };
        let r = syn_ack(&syn);
        assert_eq!((r.src, r.src_port, r.dst, r.dst_port), (syn.dst, syn.dst_port, syn.src, syn.src_port));
        assert_eq!((r.tcp_flags, r.ack), (SYN | ACK, syn.seq + 1));
        assert_eq!(r.flow_in(crate::flow::Direction::Egress), syn.flow());
    }

    #[test]
    fn the_policy_refuses_clients_it_does_not_allow() {
        let only_subnet_b = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*",
            "Condition":{"IpAddress":{"aws:VpcSourceIp":"10.0.2.0/24"}}}]}"#;
        let a = admission(Some(only_subnet_b));
        assert_eq!(judge(&a, ROOM, Ipv4Addr::new(10, 0, 2, 7)), SynVerdict::Connect);
        assert!(matches!(judge(&a, ROOM, CLIENT), SynVerdict::Refuse(_)));
        // Room comes first: a full endpoint drops even a client the policy would refuse.
        assert_eq!(judge(&a, Room { slot: false, ..ROOM }, CLIENT), SynVerdict::Drop(DropReason::ConnectionLimit));
        // And so does a reply that cannot leave: an RST could not either.
        assert_eq!(a.judge(ROOM, CLIENT, || false), SynVerdict::ReplyRejected);
    }
}
