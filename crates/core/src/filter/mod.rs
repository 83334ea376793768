//! Security groups, network ACLs and connection tracking for an endpoint ENI.
//!
//! Heads up! Before changing this module read the AWS pages it follows:
//! "Security group connection tracking" (EC2 User Guide), "Control subnet
//! traffic with network ACLs" (VPC User Guide), summarised in the repo's
//! `docs/aws-behaviour.md`. The semantics emulated here:
//!
//! - **Network ACLs** are stateless and guard the *subnet boundary*: they are
//!   evaluated only when the remote address (source for ingress, destination
//!   for egress) lies outside the ENI's subnet. Entries are evaluated from the
//!   lowest [`RuleNumber`]; the first match decides, allow or deny; the final
//!   `*` entry denies. The default NACL allows everything; a custom NACL with
//!   no entries denies everything. Return traffic needs its own rule (the
//!   clients' ephemeral ports) because nothing is remembered.
//! - **Security groups** are allow-only. All rules of all groups on the ENI
//!   are aggregated (a packet passes if *any* rule allows it). They are
//!   stateful: a new flow is checked against the rules of the direction it
//!   starts in, then tracked, and "responses to inbound traffic are allowed to
//!   flow out of the instance regardless of outbound security group rules,
//!   and vice versa". An ENI without groups gets the VPC default group:
//!   inbound from members of that group, outbound to anywhere.
//! - **Order.** Ingress: NACL (subnet boundary) → SG/conntrack (at the ENI).
//!   Egress: SG/conntrack (at the ENI) → NACL. So a reply the NACL denies
//!   still updates the tracked state, as on AWS where the group sits on the
//!   ENI and the NACL on the subnet edge.
//! - **Untracked flows**: "If a security group rule permits TCP or UDP flows
//!   for all traffic (0.0.0.0/0 or ::/0) and there is a corresponding rule in
//!   the other direction that permits all response traffic (0.0.0.0/0 or
//!   ::/0) for any port (0-65535), then that flow of traffic is not tracked".
//!   Each packet of such a flow, request or response, is judged by the rules
//!   alone (never entered in conntrack), so removing the rule cuts it at
//!   once; "ICMP traffic is always tracked".
//! - **Only a packet that can open a flow starts tracking**: for TCP, a SYN
//!   (without ACK or RST). A TCP packet of no tracked flow that is not one
//!   (an ACK, data, a FIN, an RST) is judged by its direction's rules and
//!   passes or not, tracking nothing ([`Reason::MidFlow`]). Otherwise, once a
//!   rule of an untracked flow is narrowed, the next packet either way would
//!   start a tracked flow, and the other side's packets would pass as its
//!   replies: narrowing the inbound rule would not cut a download, since the
//!   ENI's next segment would admit the client's ACKs. Linux's conntrack
//!   picks such flows up ("loose" tracking); AWS cuts them.
//! - **Tracked flows survive rule changes**: "When you change a security
//!   group rule, its tracked connections are not immediately interrupted."
//!   [`Filter::set_rules`] swaps the [`RuleSet`] and keeps the conntrack table.
//! - **Conntrack timeouts** follow EC2's `ConnectionTrackingSpecification`
//!   (see [`ConntrackTimeouts`]); when the table is full "any packets that
//!   are sent or received are dropped because a new connection cannot be
//!   established" ([`Reason::ConntrackFull`]).
//!
//! # Call order
//! Build a [`RuleSet`] once ([`RuleSet::build`]), wrap it in an `Arc`, make a
//! [`Filter`]. Then, on the single task that owns the filter:
//! 1. for every packet, as the parser read it ([`PacketMeta`], by reference:
//!    nothing is copied), [`Filter::handle_packet`] → [`Decision`];
//! 2. after a batch, [`Filter::poll_timeout`] says when to wake up;
//! 3. at that instant call [`Filter::handle_timeout`] to expire idle flows;
//! 4. on a rules change, build a new `RuleSet` and [`Filter::set_rules`].
//!
//! Time is always passed in and must be monotonic (`Instant`). Nothing here
//! reads the clock, allocates per packet once a flow exists, or does I/O.
//!
//! ## Not emulated
//! - IPv6 (the endpoint is IPv4-only; the caller drops IPv6 before this).
//! - ICMP type/code ranges: an ICMP rule matches every ICMP message.
//! - AWS counts a referenced prefix list's *max entries* against the group's
//!   rule quota; here each rule counts once.
//! - Per-ENI `ConnectionTrackingSpecification`: one [`ConntrackTimeouts`]
//!   for the whole filter.
//! - The per-instance-type conntrack allowance: a fixed
//!   [`FilterConfig::max_entries`] instead.
//! - TCP sequence-number checks; the TCP state machine is the coarse one
//!   documented on [`EntryState`].
//! - UDP cannot tell a request from a reply: any UDP packet a rule allows
//!   opens a flow, so the reply of an untracked UDP flow whose rule was
//!   narrowed starts a tracked one. No UDP reaches the filter at an ENI (the
//!   pipeline drops it), so this never shows.
//! - "Automatically tracked connections": AWS lists "AWS PrivateLink
//!   (interface VPC endpoints)" among them, so a real endpoint ENI never has
//!   untracked flows. privlink follows the project's source documents by
//!   default (untracked semantics on); set [`FilterConfig::always_track`] to
//!   get the current AWS behaviour.
//! - Security group rule descriptions, IPv6 CIDRs, NACL IPv6 entries.

#![warn(missing_docs)]

mod conntrack;
mod matcher;
mod nacl;
mod ruleset;
mod sg;
#[cfg(test)]
mod tests;

pub use conntrack::{ConntrackTimeouts, EntryState};
pub use nacl::{NaclEntry, NetworkAcl, RuleAction, RuleNumber};
pub use ruleset::{EniRules, GroupMembers, PrefixList, Quotas, RuleSet, RuleSetConfig, RuleSetError, DEFAULT_GROUP_ID};
pub use sg::{SecurityGroup, SgPeer, SgRule};

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use conntrack::{Conntrack, Touch, TrackedFlow};

use crate::cidr::Cidr;
use crate::flow::Direction;
use crate::packet::PacketMeta;

// One set of protocol numbers and flag bits for the crate: the packet parser's.
pub use crate::packet::proto::{ICMP as PROTO_ICMP, TCP as PROTO_TCP, UDP as PROTO_UDP};
pub use crate::packet::tcp_flags::{ACK as TCP_ACK, FIN as TCP_FIN, RST as TCP_RST, SYN as TCP_SYN};

/// A rule's protocol in AWS terms (`tcp`, `udp`, `icmp`, `all` / `-1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum Protocol {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// ICMP (1), every type and code.
    Icmp,
    /// Every protocol (AWS `-1`); ports are ignored.
    All,
}

impl Protocol {
    /// Whether a packet with IP protocol `number` is covered by this rule protocol.
    pub fn matches(self, number: u8) -> bool {
        match self {
            Protocol::Tcp => number == PROTO_TCP,
            Protocol::Udp => number == PROTO_UDP,
            Protocol::Icmp => number == PROTO_ICMP,
            Protocol::All => true,
        }
    }

    /// Whether the rule's port range applies; AWS ignores ports for ICMP and all.
    pub fn has_ports(self) -> bool {
        matches!(self, Protocol::Tcp | Protocol::Udp)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
            Protocol::All => "all",
        })
    }
}

impl FromStr for Protocol {
    type Err = ParseRuleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" | "6" => Ok(Protocol::Tcp),
            "udp" | "17" => Ok(Protocol::Udp),
            "icmp" | "1" => Ok(Protocol::Icmp),
            "all" | "-1" => Ok(Protocol::All),
            _ => Err(ParseRuleError::Protocol(s.to_owned())),
        }
    }
}

impl TryFrom<String> for Protocol {
    type Error = ParseRuleError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// An inclusive port range: `"443"`, `"1024-65535"` or `"all"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct PortRange {
    lo: u16,
    hi: u16,
}

impl PortRange {
    /// Every port, 0-65535.
    pub const ALL: PortRange = PortRange { lo: 0, hi: u16::MAX };

    /// The range `lo..=hi`; fails if `lo > hi`.
    pub fn new(lo: u16, hi: u16) -> Result<PortRange, ParseRuleError> {
        if lo > hi {
            return Err(ParseRuleError::PortRange(format!("{lo}-{hi}")));
        }
        Ok(PortRange { lo, hi })
    }

    /// A single port.
    pub fn single(port: u16) -> PortRange {
        PortRange { lo: port, hi: port }
    }

    /// First port of the range.
    pub fn lo(self) -> u16 {
        self.lo
    }

    /// Last port of the range (inclusive).
    pub fn hi(self) -> u16 {
        self.hi
    }

    /// Whether `port` lies in the range.
    pub fn contains(self, port: u16) -> bool {
        self.lo <= port && port <= self.hi
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == PortRange::ALL {
            f.write_str("all")
        } else if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

impl FromStr for PortRange {
    type Err = ParseRuleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseRuleError::PortRange(s.to_owned());
        let t = s.trim();
        if t.eq_ignore_ascii_case("all") || t == "-1" {
            return Ok(PortRange::ALL);
        }
        match t.split_once('-') {
            Some((a, b)) => {
                let lo = a.trim().parse().map_err(|_| bad())?;
                let hi = b.trim().parse().map_err(|_| bad())?;
                PortRange::new(lo, hi).map_err(|_| bad())
            }
            None => t.parse().map(PortRange::single).map_err(|_| bad()),
        }
    }
}

impl TryFrom<String> for PortRange {
    type Error = ParseRuleError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// A rule's CIDR block from text (surrounding spaces allowed), refused with
/// [`ParseRuleError::Cidr`]: the error rule fields give for a bad block.
pub fn parse_rule_cidr(s: &str) -> Result<Cidr, ParseRuleError> {
    s.trim().parse().map_err(|_| ParseRuleError::Cidr(s.to_owned()))
}

/// A malformed rule field (from config text or a constructor).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseRuleError {
    /// Not `a.b.c.d/n` with n ≤ 32 and no host bits set.
    #[error("invalid CIDR block {0:?}: expected a.b.c.d/n (n ≤ 32) with no host bits set")]
    Cidr(String),
    /// Not `"443"`, `"1024-65535"` or `"all"`, or lo > hi.
    #[error("invalid port range {0:?}: expected \"443\", \"1024-65535\" or \"all\"")]
    PortRange(String),
    /// Not `tcp`, `udp`, `icmp` or `all` (`-1`).
    #[error("invalid protocol {0:?}: expected tcp, udp, icmp or all (-1)")]
    Protocol(String),
    /// Not `allow` or `deny`.
    #[error("invalid rule action {0:?}: expected allow or deny")]
    RuleAction(String),
    /// NACL rule numbers run from 1 to 32766.
    #[error("network ACL rule number {0} out of range 1..=32766")]
    RuleNumberOutOfRange(u32),
}

/// Accept or reject, as a flow log writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// The packet may pass.
    Accept,
    /// The packet is dropped.
    Reject,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Accept => "ACCEPT",
            Action::Reject => "REJECT",
        })
    }
}

/// Which rule, or which mechanism, decided a packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A numbered NACL entry with action deny matched.
    NaclRule {
        /// The network ACL id.
        acl: Arc<str>,
        /// The entry's rule number.
        rule: RuleNumber,
        /// Which of the NACL's entry lists.
        dir: Direction,
    },
    /// No NACL entry matched; the final `*` entry denies.
    NaclDefaultDeny {
        /// The network ACL id.
        acl: Arc<str>,
        /// Which of the NACL's entry lists.
        dir: Direction,
    },
    /// A security group rule allowed a new flow, which is now tracked.
    SgRule {
        /// The security group id.
        group: Arc<str>,
        /// Inbound or outbound rule list.
        dir: Direction,
        /// Position of the rule in that list (0-based).
        index: u16,
    },
    /// No security group rule on the ENI allows the packet.
    SgNoMatch {
        /// Which rules were consulted.
        dir: Direction,
    },
    /// Return or ongoing traffic of a tracked flow; rules were not consulted.
    Tracked,
    /// A security group rule allowed a packet of no tracked flow that cannot
    /// open one (TCP without a SYN): it passes, and nothing is tracked.
    MidFlow {
        /// The security group id.
        group: Arc<str>,
        /// Inbound or outbound rule list.
        dir: Direction,
        /// Position of the rule in that list (0-based).
        index: u16,
    },
    /// A security group rule allowed the packet and the flow is untracked
    /// (open both ways), so every packet is judged by the rules.
    Untracked {
        /// The security group id.
        group: Arc<str>,
        /// Inbound or outbound rule list.
        dir: Direction,
        /// Position of the rule in that list (0-based).
        index: u16,
    },
    /// A new flow needed tracking but the conntrack table is full.
    ConntrackFull,
    /// The ENI index is not in the current rule set.
    UnknownEni,
}

impl Reason {
    /// A short stable label for metrics (`nacl`, `sg`, `tracked`, ...).
    pub fn label(&self) -> &'static str {
        match self {
            Reason::NaclRule { .. } | Reason::NaclDefaultDeny { .. } => "nacl",
            Reason::SgRule { .. } | Reason::SgNoMatch { .. } | Reason::MidFlow { .. } => "sg",
            Reason::Tracked => "tracked",
            Reason::Untracked { .. } => "untracked",
            Reason::ConntrackFull => "conntrack_full",
            Reason::UnknownEni => "unknown_eni",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NaclRule { acl, rule, dir } => {
                write!(f, "network ACL {acl} {dir} rule {rule} denies")
            }
            Reason::NaclDefaultDeny { acl, dir } => {
                write!(f, "network ACL {acl} {dir} rule * denies (no numbered rule matched)")
            }
            Reason::SgRule { group, dir, index } => {
                write!(f, "security group {group} {dir} rule #{index} allows (flow tracked)")
            }
            Reason::SgNoMatch { dir } => {
                write!(f, "no security group {dir} rule on the ENI allows it")
            }
            Reason::Tracked => f.write_str("tracked flow (return or ongoing traffic)"),
            Reason::MidFlow { group, dir, index } => {
                write!(f, "security group {group} {dir} rule #{index} allows (no flow tracked, none opened)")
            }
            Reason::Untracked { group, dir, index } => {
                write!(f, "security group {group} {dir} rule #{index} allows (untracked: open both ways)")
            }
            Reason::ConntrackFull => f.write_str("connection tracking table full"),
            Reason::UnknownEni => f.write_str("unknown ENI"),
        }
    }
}

/// The filter's verdict on one packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Pass or drop.
    pub action: Action,
    /// Which rule or mechanism decided.
    pub reason: Reason,
}

impl Decision {
    fn accept(reason: Reason) -> Decision {
        Decision { action: Action::Accept, reason }
    }

    fn reject(reason: Reason) -> Decision {
        Decision { action: Action::Reject, reason }
    }

    /// Whether the packet may pass.
    pub fn is_accept(&self) -> bool {
        self.action == Action::Accept
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.action, self.reason)
    }
}

/// Settings of a [`Filter`] that are not rules.
#[derive(Clone, Debug)]
pub struct FilterConfig {
    /// Idle timeouts per conntrack state.
    pub timeouts: ConntrackTimeouts,
    /// Most tracked flows at once; beyond it new tracked flows are rejected.
    /// Not an AWS number (AWS's allowance depends on the instance type): a
    /// memory bound, reserved when the filter is created: about 100 bytes per
    /// entry (the default, 65536, takes about 7 MiB).
    pub max_entries: usize,
    /// Track every flow, as AWS does for "automatically tracked connections"
    /// (PrivateLink among them). Off by default: see the module doc.
    pub always_track: bool,
    /// Seed of the conntrack hash. The key is attacker-chosen (remote
    /// address and port), so the edge should pass a random value.
    pub hash_seed: u64,
}

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig {
            timeouts: ConntrackTimeouts::default(),
            max_entries: 65_536,
            always_track: false,
            hash_seed: 0x5eed_0fc0_ffee,
        }
    }
}

/// A [`FilterConfig`] value out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterConfigError {
    /// A timeout outside the range EC2 accepts.
    #[error("conntrack timeout {name} = {secs} s is outside {min}..={max} s")]
    Timeout {
        /// The `ConntrackTimeouts` field.
        name: &'static str,
        /// The value given.
        secs: u64,
        /// Smallest allowed value.
        min: u64,
        /// Largest allowed value.
        max: u64,
    },
    /// `max_entries` must be at least 1.
    #[error("conntrack max_entries must be at least 1")]
    ZeroMaxEntries,
}

/// The stateful packet filter of all ENIs: NACLs, security groups, conntrack.
///
/// Owns the current [`RuleSet`] (an `Arc`, swapped whole) and the conntrack
/// table. See the module doc for the call order.
pub struct Filter {
    rules: Arc<RuleSet>,
    table: Conntrack,
    always_track: bool,
}

impl Filter {
    /// A filter with an empty conntrack table.
    pub fn new(rules: Arc<RuleSet>, config: FilterConfig) -> Result<Filter, FilterConfigError> {
        config.timeouts.validate()?;
        if config.max_entries == 0 {
            return Err(FilterConfigError::ZeroMaxEntries);
        }
        Ok(Filter {
            rules,
            table: Conntrack::new(config.timeouts, config.max_entries, config.hash_seed),
            always_track: config.always_track,
        })
    }

    /// The rule set in force.
    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    /// Swaps in a new rule set. Tracked flows survive (AWS: "its tracked
    /// connections are not immediately interrupted"); untracked ones are
    /// judged by the new rules from the next packet on.
    pub fn set_rules(&mut self, rules: Arc<RuleSet>) {
        self.rules = rules;
    }

    /// Judges one packet crossing ENI `eni` in direction `dir` at `now`.
    pub fn handle_packet(&mut self, now: Instant, eni: usize, dir: Direction, packet: &PacketMeta) -> Decision {
        let rules = &*self.rules;
        let Some(compiled) = rules.eni(eni) else {
            return Decision::reject(Reason::UnknownEni);
        };
        // Ingress meets the subnet boundary first, then the ENI.
        if dir == Direction::Ingress {
            if let Err(reason) = rules.check_nacl(compiled, dir, packet) {
                return Decision::reject(reason);
            }
        }
        let key = TrackedFlow::new(eni, dir, packet);
        let decision = match self.table.touch(now, &key, dir, packet) {
            Touch::Tracked => Decision::accept(Reason::Tracked),
            Touch::New => match rules.check_sg(compiled, dir, packet) {
                None => Decision::reject(Reason::SgNoMatch { dir }),
                Some(m) => {
                    let group = rules.group_id(m.group);
                    if m.untracked && !self.always_track {
                        Decision::accept(Reason::Untracked { group, dir, index: m.index })
                    } else if !opens_flow(packet) {
                        Decision::accept(Reason::MidFlow { group, dir, index: m.index })
                    } else if self.table.insert(now, key, dir, packet) {
                        Decision::accept(Reason::SgRule { group, dir, index: m.index })
                    } else {
                        Decision::reject(Reason::ConntrackFull)
                    }
                }
            },
        };
        // Egress leaves the ENI first, then meets the subnet boundary.
        if dir == Direction::Egress && decision.is_accept() {
            if let Err(reason) = rules.check_nacl(compiled, dir, packet) {
                return Decision::reject(reason);
            }
        }
        decision
    }

    /// How [`Filter::handle_packet`] would judge `packet` at `now`, changing
    /// nothing: no flow is tracked, advanced or expired. The stack asks it
    /// whether a reply it has not built yet (a SYN-ACK) would leave.
    pub fn peek(&self, now: Instant, eni: usize, dir: Direction, packet: &PacketMeta) -> Decision {
        let rules = &*self.rules;
        let Some(compiled) = rules.eni(eni) else {
            return Decision::reject(Reason::UnknownEni);
        };
        if !self.table.is_live(now, &TrackedFlow::new(eni, dir, packet)) {
            return rules.evaluate(eni, dir, packet);
        }
        // A tracked flow passes the groups; the NACL is stateless either way.
        match rules.check_nacl(compiled, dir, packet) {
            Ok(()) => Decision::accept(Reason::Tracked),
            Err(reason) => Decision::reject(reason),
        }
    }

    /// Expires flows idle past their timeout at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.table.expire(now);
    }

    /// When [`Filter::handle_timeout`] should next run; never later than
    /// needed, sometimes earlier (a flow refreshed since is rescheduled then).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.table.next_deadline()
    }

    /// Number of tracked flows, expired ones not yet collected included.
    pub fn conntrack_len(&self) -> usize {
        self.table.len()
    }

    /// The conntrack state of the flow `packet` belongs to, if tracked.
    pub fn flow_state(&self, eni: usize, dir: Direction, packet: &PacketMeta) -> Option<EntryState> {
        self.table.state(&TrackedFlow::new(eni, dir, packet))
    }
}

/// Whether `packet` may start a tracked flow: any but TCP, and TCP's SYN
/// (without ACK or RST). See the module doc.
#[inline]
fn opens_flow(packet: &PacketMeta) -> bool {
    packet.protocol != PROTO_TCP || packet.tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST) == TCP_SYN
}
