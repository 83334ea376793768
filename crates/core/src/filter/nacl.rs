//! Network ACLs: stateless, numbered, first match wins, final `*` denies.
//!
//! VPC User Guide: "Rules are evaluated starting with the lowest numbered
//! rule. As soon as a rule matches traffic, it's applied regardless of any
//! higher-numbered rule that might contradict it." and "Each network ACL also
//! includes a rule whose rule number is an asterisk (*). This rule ensures
//! that if a packet doesn't match any of the other numbered rules, it's
//! denied."

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use super::matcher::{bucket_of, Match, MatchList, BUCKETS};
use super::{ParseRuleError, PortRange, Protocol, Reason};
use crate::cidr::Cidr;
use crate::flow::Direction;

/// A NACL entry's number, 1..=32766 (AWS's range; `*` is not a number).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize)]
#[serde(try_from = "u32")]
pub struct RuleNumber(u16);

impl RuleNumber {
    /// Largest number AWS accepts.
    pub const MAX: u16 = 32766;

    /// A rule number; fails outside 1..=32766.
    pub fn new(n: u32) -> Result<RuleNumber, ParseRuleError> {
        if (1..=u32::from(Self::MAX)).contains(&n) {
            Ok(RuleNumber(n as u16))
        } else {
            Err(ParseRuleError::RuleNumberOutOfRange(n))
        }
    }

    /// The number.
    pub fn get(self) -> u16 {
        self.0
    }
}

impl TryFrom<u32> for RuleNumber {
    type Error = ParseRuleError;
    fn try_from(n: u32) -> Result<Self, Self::Error> {
        RuleNumber::new(n)
    }
}

impl fmt::Display for RuleNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a matching NACL entry does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum RuleAction {
    /// Let the packet through the subnet boundary.
    Allow,
    /// Drop the packet.
    Deny,
}

impl FromStr for RuleAction {
    type Err = ParseRuleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "allow" => Ok(RuleAction::Allow),
            "deny" => Ok(RuleAction::Deny),
            _ => Err(ParseRuleError::RuleAction(s.to_owned())),
        }
    }
}

impl TryFrom<String> for RuleAction {
    type Error = ParseRuleError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for RuleAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RuleAction::Allow => "allow",
            RuleAction::Deny => "deny",
        })
    }
}

/// One numbered NACL entry (EC2 `NetworkAclEntry`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NaclEntry {
    /// Evaluation order; lowest first.
    pub rule: RuleNumber,
    /// Protocol matched.
    pub protocol: Protocol,
    /// Destination ports matched (ignored for ICMP and all).
    pub ports: PortRange,
    /// Remote block: source for ingress, destination for egress.
    pub cidr: Cidr,
    /// Allow or deny on match.
    pub action: RuleAction,
}

impl NaclEntry {
    /// Whether the entry matches a packet with this protocol, remote address and destination port.
    pub fn matches(&self, protocol: u8, remote: std::net::Ipv4Addr, dst_port: u16) -> bool {
        self.protocol.matches(protocol)
            && (!self.protocol.has_ports() || self.ports.contains(dst_port))
            && self.cidr.contains(remote)
    }
}

/// A custom network ACL (EC2 `NetworkAcl`); with no entries it denies everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkAcl {
    /// The ACL id, e.g. `acl-strict`.
    pub id: String,
    /// Inbound entries (any order; evaluated by rule number).
    pub ingress: Vec<NaclEntry>,
    /// Outbound entries (any order; evaluated by rule number).
    pub egress: Vec<NaclEntry>,
}

/// One direction of a NACL, sorted by rule number and split by protocol
/// bucket so evaluation is one [`MatchList`] scan.
#[derive(Debug, Default)]
pub(crate) struct CompiledNaclDir {
    matches: [MatchList; BUCKETS],
    verdicts: [Vec<(RuleNumber, RuleAction)>; BUCKETS],
}

impl CompiledNaclDir {
    pub(crate) fn compile(entries: &[NaclEntry]) -> CompiledNaclDir {
        let mut sorted: Vec<&NaclEntry> = entries.iter().collect();
        sorted.sort_by_key(|e| e.rule);
        let mut out = CompiledNaclDir::default();
        for e in sorted {
            let m = Match::new(e.cidr, e.protocol, e.ports);
            for b in 0..BUCKETS {
                if Match::protocol_in_bucket(e.protocol, b) {
                    out.matches[b].push(m);
                    out.verdicts[b].push((e.rule, e.action));
                }
            }
        }
        out
    }

    /// First matching entry's number and action, or `None` for the `*` rule.
    #[inline]
    fn evaluate(&self, protocol: u8, remote: u32, dst_port: u16) -> Option<(RuleNumber, RuleAction)> {
        let b = bucket_of(protocol);
        let i = self.matches[b].first_match(remote, dst_port)?;
        Some(self.verdicts[b][i])
    }
}

/// A NACL ready for the hot path.
#[derive(Debug)]
pub(crate) struct CompiledNacl {
    pub(crate) id: Arc<str>,
    dirs: [CompiledNaclDir; 2],
}

impl CompiledNacl {
    pub(crate) fn compile(acl: &NetworkAcl) -> CompiledNacl {
        CompiledNacl {
            id: Arc::from(acl.id.as_str()),
            dirs: [CompiledNaclDir::compile(&acl.ingress), CompiledNaclDir::compile(&acl.egress)],
        }
    }

    /// `Ok` if the packet may cross, else the reason it may not.
    #[inline]
    pub(crate) fn check(&self, dir: Direction, protocol: u8, remote: u32, dst_port: u16) -> Result<(), Reason> {
        match self.dirs[dir.index()].evaluate(protocol, remote, dst_port) {
            Some((_, RuleAction::Allow)) => Ok(()),
            Some((rule, RuleAction::Deny)) => Err(Reason::NaclRule { acl: self.id.clone(), rule, dir }),
            None => Err(Reason::NaclDefaultDeny { acl: self.id.clone(), dir }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- parsing -------------------------------------------------------

    #[test]
    fn rule_number_range() {
        assert!(RuleNumber::new(0).is_err());
        assert_eq!(RuleNumber::new(1).unwrap().get(), 1);
        assert_eq!(RuleNumber::new(32766).unwrap().get(), 32766);
        assert_eq!(RuleNumber::new(32767), Err(ParseRuleError::RuleNumberOutOfRange(32767)));
        assert_eq!(RuleNumber::new(70000), Err(ParseRuleError::RuleNumberOutOfRange(70000)));
    }

    #[test]
    fn rule_action_parse() {
        assert_eq!("allow".parse::<RuleAction>().unwrap(), RuleAction::Allow);
        assert_eq!("DENY".parse::<RuleAction>().unwrap(), RuleAction::Deny);
        assert!("drop".parse::<RuleAction>().is_err());
    }

    // ---- NACL ordering (compiled, single direction) ---------------------

    fn entry(rule: u32, ports: &str, cidr: &str, action: RuleAction) -> NaclEntry {
        NaclEntry {
            rule: RuleNumber::new(rule).unwrap(),
            protocol: Protocol::Tcp,
            ports: ports.parse().unwrap(),
            cidr: cidr.parse().unwrap(),
            action,
        }
    }

    #[test]
    fn lowest_number_wins_regardless_of_declaration_order() {
        let entries =
            [entry(200, "443", "0.0.0.0/0", RuleAction::Allow), entry(100, "443", "192.0.2.0/24", RuleAction::Deny)];
        let c = CompiledNaclDir::compile(&entries);
        let inside = u32::from(std::net::Ipv4Addr::new(192, 0, 2, 7));
        let outside = u32::from(std::net::Ipv4Addr::new(198, 51, 100, 7));
        assert_eq!(c.evaluate(6, inside, 443).map(|v| v.0.get()), Some(100));
        assert_eq!(c.evaluate(6, outside, 443).map(|v| v.0.get()), Some(200));
        assert_eq!(c.evaluate(6, outside, 80), None);
        assert_eq!(c.evaluate(17, outside, 443), None, "tcp entry must not match udp");
    }
}
