//! Whether the SYN of a new flow may open an upstream connection: decided
//! before anything is connected, from the endpoint's limits and its policy.
//!
//! The stack holds a new flow's SYN and connects upstream first (the client
//! sees the real service's reachability). Before that, the flow must find
//! room: at most [`MAX_HALF_OPEN`] connects in flight per queue and the
//! endpoint's `max_connections` across queues. A flow that finds none is
//! dropped, not reset, so the client retries as it would against a busy
//! listener. Then the endpoint policy: a client it denies gets an RST at
//! once and nothing is connected.

use std::net::Ipv4Addr;

use crate::packet::DropReason;
use crate::policy::{ConnContext, PolicyDecision, PolicyDocument};

/// Connections whose upstream connect is in flight, per queue. Past this,
/// new SYNs are dropped (not reset) so clients retry.
pub const MAX_HALF_OPEN: usize = 1024;

/// What to do with a new flow's SYN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynVerdict {
    /// Connect upstream, then let the stack answer the SYN.
    Connect,
    /// Drop it silently and count it: the client retries.
    Drop(DropReason),
    /// Refuse it with an RST: the endpoint policy denies this client.
    Refuse(PolicyDecision),
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
    /// Judges a SYN from `source`. `half_open` connects are in flight on this
    /// queue; `slot` says whether the endpoint had a free connection slot
    /// (the caller took it; it gives it back unless the verdict is `Connect`).
    pub fn judge(&self, half_open: usize, slot: bool, source: Ipv4Addr) -> SynVerdict {
        if half_open >= MAX_HALF_OPEN || !slot {
            return SynVerdict::Drop(DropReason::ConnectionLimit);
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

    #[test]
    fn a_full_endpoint_or_too_many_connects_drop_the_syn() {
        let a = admission(None);
        assert_eq!(a.judge(0, true, CLIENT), SynVerdict::Connect);
        assert_eq!(a.judge(0, false, CLIENT), SynVerdict::Drop(DropReason::ConnectionLimit));
        assert_eq!(a.judge(MAX_HALF_OPEN - 1, true, CLIENT), SynVerdict::Connect);
        assert_eq!(a.judge(MAX_HALF_OPEN, true, CLIENT), SynVerdict::Drop(DropReason::ConnectionLimit));
    }

    #[test]
    fn the_policy_refuses_clients_it_does_not_allow() {
        let only_subnet_b = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*",
            "Condition":{"IpAddress":{"aws:VpcSourceIp":"10.0.2.0/24"}}}]}"#;
        let a = admission(Some(only_subnet_b));
        assert_eq!(a.judge(0, true, Ipv4Addr::new(10, 0, 2, 7)), SynVerdict::Connect);
        assert!(matches!(a.judge(0, true, CLIENT), SynVerdict::Refuse(_)));
        // Room comes first: a full endpoint drops even a client the policy would refuse.
        assert_eq!(a.judge(0, false, CLIENT), SynVerdict::Drop(DropReason::ConnectionLimit));
    }
}
