//! Security groups: allow-only rules, aggregated over every group on an ENI.
//!
//! EC2 User Guide: "Security group rules are always permissive; you can't
//! create rules that deny access." and "When you associate multiple security
//! groups with a resource, the rules from each security group are effectively
//! aggregated to create one set of rules."

use super::matcher::{bucket_of, Match, MatchList, BUCKETS, BUCKET_TCP, BUCKET_UDP};
use super::{PortRange, Protocol};
use crate::cidr::Cidr;

/// The other end of a rule: source for ingress, destination for egress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SgPeer {
    /// An IPv4 block.
    Cidr(Cidr),
    /// The private IPs of every ENI (and declared lab instance) in that group.
    Group(String),
    /// Every block of a managed prefix list.
    PrefixList(String),
}

/// One security group rule (EC2 `IpPermission` with a single peer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SgRule {
    /// Protocol allowed.
    pub protocol: Protocol,
    /// Destination ports allowed (ignored for ICMP and all).
    pub ports: PortRange,
    /// Who may be the remote end.
    pub peer: SgPeer,
}

/// A security group (EC2 `SecurityGroup`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecurityGroup {
    /// The group id, e.g. `sg-endpoint`.
    pub id: String,
    /// Inbound rules.
    pub ingress: Vec<SgRule>,
    /// Outbound rules.
    pub egress: Vec<SgRule>,
}

/// Which rule allowed a new flow, and whether the flow escapes tracking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SgMatch {
    /// Index into the rule set's group table.
    pub(crate) group: u16,
    /// Rule position in the group's list for that direction.
    pub(crate) index: u16,
    /// AWS's untracked case applies to this flow.
    pub(crate) untracked: bool,
}

/// One direction of the union of an ENI's groups, flattened and split by
/// protocol bucket. Order is group order, then rule order, then peer
/// expansion order, so the first match is the first rule a person would find.
#[derive(Debug, Default)]
pub(crate) struct CompiledSgDir {
    matches: [MatchList; BUCKETS],
    tags: [Vec<(u16, u16)>; BUCKETS],
    /// Per bucket: is there a rule with peer 0.0.0.0/0 and every port?
    /// (Half of AWS's untracked condition, seen from the *other* direction.)
    open_all: [bool; BUCKETS],
    /// Per bucket: port ranges of rules with peer 0.0.0.0/0.
    world: [Vec<Match>; BUCKETS],
}

impl CompiledSgDir {
    pub(crate) fn push(&mut self, m: Match, protocol: Protocol, group: u16, index: u16) {
        for b in 0..BUCKETS {
            if Match::protocol_in_bucket(protocol, b) {
                self.matches[b].push(m);
                self.tags[b].push((group, index));
                if m.is_any_addr() {
                    self.world[b].push(m);
                    self.open_all[b] |= m.is_all_ports();
                }
            }
        }
    }

    /// Number of compiled matches (after group and prefix-list expansion).
    pub(crate) fn len(&self) -> usize {
        // TCP and UDP buckets may differ; the largest is the honest size.
        self.matches.iter().map(MatchList::len).max().unwrap_or(0)
    }

    /// Whether a 0.0.0.0/0 rule allows destination port `port` in bucket `b`.
    fn world_allows(&self, b: usize, port: u16) -> bool {
        self.world[b].iter().any(|m| m.matches(0, port))
    }

    /// First rule allowing (protocol, remote, dst_port); `reverse` is the
    /// other direction of the same ENI, for the untracked test.
    #[inline]
    pub(crate) fn evaluate(
        &self,
        reverse: &CompiledSgDir,
        protocol: u8,
        remote: u32,
        src_port: u16,
        dst_port: u16,
    ) -> Option<SgMatch> {
        let b = bucket_of(protocol);
        let i = self.matches[b].first_match(remote, dst_port)?;
        let (group, index) = self.tags[b][i];
        // AWS: "If a security group rule permits TCP or UDP flows for all
        // traffic (0.0.0.0/0 or ::/0) and there is a corresponding rule in the
        // other direction that permits all response traffic (0.0.0.0/0 or
        // ::/0) for any port (0-65535), then that flow of traffic is not
        // tracked". Without state we cannot tell a request from a response,
        // so the packet is untracked if it is either:
        // - the request: a 0/0 rule here allows it, and the other direction
        //   is open on every port; or
        // - the response: a 0/0 rule in the other direction allows the
        //   reversed packet (its destination port is our source port), and
        //   this direction is open on every port.
        // Otherwise the reply of an untracked flow would start a tracked one
        // and survive the removal of the rule that enabled the flow.
        // TCP and UDP only: "ICMP traffic is always tracked".
        let untracked = (b == BUCKET_TCP || b == BUCKET_UDP)
            && ((reverse.open_all[b] && self.world_allows(b, dst_port))
                || (self.open_all[b] && reverse.world_allows(b, src_port)));
        Some(SgMatch { group, index, untracked })
    }
}
