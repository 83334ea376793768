//! VPC Flow Logs: aggregate filter verdicts into AWS default-format records.
//!
//! Follows the VPC User Guide, "Flow log records", default format version 2:
//! `version account-id interface-id srcaddr dstaddr srcport dstport protocol
//! packets bytes start end action log-status`, e.g.
//! `2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK`.
//!
//! - One record per flow per capture window: "A flow log record represents
//!   a network flow in your VPC", aggregated over the "maximum aggregation
//!   interval" (60 s or 600 s at AWS; here any of 1..=600 s, 1 for tests).
//!   A flow is (interface, [`FlowKey`], [`Direction`], action), which is
//!   AWS's (interface, srcaddr, dstaddr, srcport, dstport, protocol,
//!   action): the two directions of a connection are two records, and a
//!   request accepted while its NACL-denied reply is rejected gives an
//!   ACCEPT and a REJECT record, as at AWS.
//! - `packets` counts packets, `bytes` sums the IP total length, as the
//!   wire carried them: a TCP superpacket (offload hands them over whole:
//!   the kernel's GSO on the way in, smoltcp's TSO on the way out) counts as
//!   the segments it is cut into, each `segment_size` bytes of payload (the
//!   GSO size or the MSS, not the ENI's MTU: a client's MSS may be smaller)
//!   behind a copy of its IP and TCP headers ([`wire_packets`]).
//! - `start`/`end`: "the time, in Unix seconds, when the first packet of the
//!   flow was received within the aggregation interval" and the last one.
//!   AWS's may lag a packet, never precede it, so a packet's second is the
//!   first whole Unix second at or after it ([`UnixClock`]): the seconds
//!   keep the fraction of the instant the clock was read at.
//! - `log-status`: OK, or SKIPDATA when "some flow log records were skipped
//!   during the aggregation interval": here, when a window holds
//!   `max_flows_per_window` flows, further new flows are counted, not kept,
//!   and each interface that lost some gets one SKIPDATA record.
//!
//! # Call order
//! [`FlowLog::interface`] once per ENI (interns its id); [`FlowLog::record`]
//! (or [`FlowLog::record_segments`] for a superpacket) for every judged
//! packet; [`FlowLog::poll_record`] until `None` whenever the clock passes
//! [`FlowLog::poll_timeout`]. Time is Unix seconds from the caller's
//! [`UnixClock`], expected not to go backwards (a late packet counts in the
//! open window). Memory: at most `max_flows_per_window` flows per window; the
//! caller must drain records, which queue until polled.
//!
//! ## Not emulated
//! - NODATA records for interfaces without traffic in a window.
//! - Custom formats and fields of versions 3-8 (vpc-id, tcp-flags, ...).
//! - Delivery (CloudWatch Logs, S3 layout): the caller writes the lines.
//! - The deciding layer (SG or NACL) of a REJECT: not a v2 field; the caller
//!   can log [`crate::filter::Reason`] beside it.

#![warn(missing_docs)]

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::filter::Action;
use crate::flow::{Direction, FlowKey, SeededState};
use crate::packet::PacketMeta;

/// Flow log settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowLogConfig {
    /// The AWS account id written in every record (12 digits at AWS).
    pub account_id: String,
    /// Capture window in seconds, 1..=600 (AWS offers 60 and 600).
    pub interval_secs: u32,
    /// Most distinct flows kept per window; more become SKIPDATA.
    pub max_flows_per_window: usize,
}

impl Default for FlowLogConfig {
    fn default() -> Self {
        FlowLogConfig { account_id: "123456789012".to_owned(), interval_secs: 60, max_flows_per_window: 10_000 }
    }
}

/// A [`FlowLogConfig`] value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowLogError {
    /// The window must be 1..=600 seconds.
    #[error("flow log interval {0} s is outside 1..=600 s")]
    Interval(u32),
    /// At least one flow per window must fit.
    #[error("flow log max_flows_per_window must be at least 1")]
    ZeroMaxFlows,
    /// The account id would break the space-separated format.
    #[error("flow log account id {0:?} must be non-empty and contain no whitespace")]
    AccountId(String),
}

/// `log-status` of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogStatus {
    /// Data is logging normally.
    Ok,
    /// Some records of the window were skipped (capacity).
    SkipData,
}

impl fmt::Display for LogStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogStatus::Ok => "OK",
            LogStatus::SkipData => "SKIPDATA",
        })
    }
}

/// The traffic fields of a record (absent in SKIPDATA records).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowTraffic {
    /// `srcaddr`.
    pub src: Ipv4Addr,
    /// `dstaddr`.
    pub dst: Ipv4Addr,
    /// `srcport`.
    pub src_port: u16,
    /// `dstport`.
    pub dst_port: u16,
    /// `protocol` (IANA number).
    pub protocol: u8,
    /// `packets`.
    pub packets: u64,
    /// `bytes`.
    pub bytes: u64,
    /// `action`.
    pub action: Action,
}

/// One flow log record, printed by `Display` in the default v2 format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowLogRecord {
    /// `account-id`.
    pub account_id: Arc<str>,
    /// `interface-id`.
    pub interface_id: Arc<str>,
    /// The flow's fields; `None` prints `-` for each (SKIPDATA).
    pub traffic: Option<FlowTraffic>,
    /// `start`, Unix seconds.
    pub start: u64,
    /// `end`, Unix seconds.
    pub end: u64,
    /// `log-status`.
    pub log_status: LogStatus,
}

impl fmt::Display for FlowLogRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "2 {} {} ", self.account_id, self.interface_id)?;
        match &self.traffic {
            Some(t) => write!(
                f,
                "{} {} {} {} {} {} {} {} {} {}",
                t.src, t.dst, t.src_port, t.dst_port, t.protocol, t.packets, t.bytes, self.start, self.end, t.action
            )?,
            None => write!(f, "- - - - - - - {} {} -", self.start, self.end)?,
        }
        write!(f, " {}", self.log_status)
    }
}

/// An interned interface id, cheap to pass per packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InterfaceHandle(u32);

/// What one record aggregates: a flow, one way, on one interface, with one verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct LoggedFlow {
    iface: u32,
    flow: FlowKey,
    dir: Direction,
    accept: bool,
}

#[derive(Clone, Copy, Debug)]
struct FlowStats {
    key: LoggedFlow,
    packets: u64,
    bytes: u64,
    first: u64,
    last: u64,
}

/// The aggregator: counters per flow per window, records out when a window closes.
pub struct FlowLog {
    account_id: Arc<str>,
    interval: u64,
    max_flows: usize,
    interfaces: Vec<Arc<str>>,
    interface_ids: HashMap<Arc<str>, InterfaceHandle>,
    /// Start of the open window (a multiple of `interval`), if any.
    window: Option<u64>,
    flows: Vec<FlowStats>,
    index: HashMap<LoggedFlow, u32, SeededState>,
    /// Per interface: packets not kept in the open window.
    skipped: Vec<u64>,
    skipped_total: u64,
    ready: VecDeque<FlowLogRecord>,
}

impl FlowLog {
    /// An empty aggregator.
    pub fn new(config: FlowLogConfig) -> Result<FlowLog, FlowLogError> {
        if !(1..=600).contains(&config.interval_secs) {
            return Err(FlowLogError::Interval(config.interval_secs));
        }
        if config.max_flows_per_window == 0 {
            return Err(FlowLogError::ZeroMaxFlows);
        }
        if config.account_id.is_empty() || config.account_id.chars().any(char::is_whitespace) {
            return Err(FlowLogError::AccountId(config.account_id));
        }
        let cap = config.max_flows_per_window.min(4096);
        Ok(FlowLog {
            account_id: Arc::from(config.account_id.as_str()),
            interval: u64::from(config.interval_secs),
            max_flows: config.max_flows_per_window,
            interfaces: Vec::new(),
            interface_ids: HashMap::new(),
            window: None,
            flows: Vec::with_capacity(cap),
            index: HashMap::with_capacity_and_hasher(cap, SeededState(0x00f1_0e10)),
            skipped: Vec::new(),
            skipped_total: 0,
            ready: VecDeque::new(),
        })
    }

    /// The handle of interface `id` (e.g. `eni-0b16f0581c8ac6877`), interning it on first use.
    pub fn interface(&mut self, id: &str) -> InterfaceHandle {
        if let Some(&h) = self.interface_ids.get(id) {
            return h;
        }
        let h = InterfaceHandle(self.interfaces.len() as u32);
        let id: Arc<str> = Arc::from(id);
        self.interfaces.push(id.clone());
        self.interface_ids.insert(id, h);
        self.skipped.push(0);
        h
    }

    /// Counts one packet crossing `iface` in `dir`, judged `action`, at Unix second `unix`.
    pub fn record(&mut self, unix: u64, iface: InterfaceHandle, dir: Direction, packet: &PacketMeta, action: Action) {
        self.record_segments(unix, iface, dir, packet, action, 0);
    }

    /// Counts `packet` as what the wire carries of it: a TCP superpacket cut
    /// into segments of `segment_size` payload bytes (offload's GSO size or
    /// MSS; 0 for a plain packet) is that many packets ([`wire_packets`]).
    pub fn record_segments(
        &mut self,
        now_unix_secs: u64,
        iface: InterfaceHandle,
        dir: Direction,
        packet: &PacketMeta,
        action: Action,
        segment_size: u16,
    ) {
        let (packets, bytes) = wire_packets(packet, segment_size);
        let start = now_unix_secs - now_unix_secs % self.interval;
        match self.window {
            Some(w) if start > w => {
                self.close_window();
                self.window = Some(start);
            }
            Some(_) => {}
            None => self.window = Some(start),
        }
        let key = LoggedFlow { iface: iface.0, flow: packet.flow_in(dir), dir, accept: action == Action::Accept };
        if let Some(&i) = self.index.get(&key) {
            let s = &mut self.flows[i as usize];
            s.packets += packets;
            s.bytes += bytes;
            s.last = s.last.max(now_unix_secs);
            return;
        }
        if self.flows.len() >= self.max_flows {
            self.skipped[iface.0 as usize] += 1;
            self.skipped_total += 1;
            return;
        }
        self.index.insert(key, self.flows.len() as u32);
        self.flows.push(FlowStats { key, packets, bytes, first: now_unix_secs, last: now_unix_secs });
    }

    /// The next record of a closed window; closes the open window if `now_unix_secs` is past it.
    pub fn poll_record(&mut self, now_unix_secs: u64) -> Option<FlowLogRecord> {
        if let Some(w) = self.window {
            if now_unix_secs >= w + self.interval {
                self.close_window();
                self.window = None;
            }
        }
        self.ready.pop_front()
    }

    /// Unix second at which the open window closes (call `poll_record` then).
    pub fn poll_timeout(&self) -> Option<u64> {
        self.window.map(|w| w + self.interval)
    }

    /// Packets not recorded because a window was full, since creation.
    pub fn skipped_packets(&self) -> u64 {
        self.skipped_total
    }

    /// Moves the open window's flows to the ready queue, in first-seen order.
    fn close_window(&mut self) {
        let Some(w) = self.window else { return };
        for s in self.flows.drain(..) {
            let k = s.key;
            let (src, dst) = k.flow.ends(k.dir);
            self.ready.push_back(FlowLogRecord {
                account_id: self.account_id.clone(),
                interface_id: self.interfaces[k.iface as usize].clone(),
                traffic: Some(FlowTraffic {
                    src: src.0,
                    dst: dst.0,
                    src_port: src.1,
                    dst_port: dst.1,
                    protocol: k.flow.protocol,
                    packets: s.packets,
                    bytes: s.bytes,
                    action: if k.accept { Action::Accept } else { Action::Reject },
                }),
                start: s.first,
                end: s.last,
                log_status: LogStatus::Ok,
            });
        }
        for (i, n) in self.skipped.iter_mut().enumerate() {
            if *n > 0 {
                *n = 0;
                self.ready.push_back(FlowLogRecord {
                    account_id: self.account_id.clone(),
                    interface_id: self.interfaces[i].clone(),
                    traffic: None,
                    start: w,
                    end: w + self.interval,
                    log_status: LogStatus::SkipData,
                });
            }
        }
        // `clear` keeps the capacity: the next window allocates nothing for
        // flows up to this window's count.
        self.index.clear();
    }
}

/// The packets and bytes `packet` stands for on the wire when it is cut into
/// segments of `segment_size` payload bytes (0: it is not cut): each segment
/// carries a copy of its IP and TCP headers, options included.
pub fn wire_packets(packet: &PacketMeta, segment_size: u16) -> (u64, u64) {
    let len = u64::from(packet.len);
    let headers = u64::from(packet.payload_start);
    let payload = u64::from(packet.payload_end.saturating_sub(packet.payload_start));
    if segment_size == 0 || packet.protocol != crate::packet::proto::TCP || payload <= u64::from(segment_size) {
        return (1, len);
    }
    let segments = payload.div_ceil(u64::from(segment_size));
    (segments, len + (segments - 1) * headers)
}

/// Unix time of the caller's `Instant`s, for flow-log seconds: read once
/// (an instant and the wall clock at it), then advanced by the monotonic clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnixClock {
    /// The instant the wall clock was read at.
    at: Instant,
    /// Time since the Unix epoch then, fraction included.
    unix: Duration,
}

impl UnixClock {
    /// The clock that reads `unix` (since the Unix epoch) at `at`.
    pub fn new(at: Instant, unix: Duration) -> UnixClock {
        UnixClock { at, unix }
    }

    /// The first whole Unix second at or after `now`: a record's `start` may
    /// lag its first packet by less than a second, never precede it. Before
    /// the clock's own instant, its time then.
    pub fn secs(&self, now: Instant) -> u64 {
        let t = self.unix + now.saturating_duration_since(self.at);
        t.as_secs() + u64::from(t.subsec_nanos() > 0)
    }

    /// The first instant whose [`UnixClock::secs`] is at least `unix_secs`:
    /// when a window that closes at `unix_secs` has closed.
    pub fn instant_at(&self, unix_secs: u64) -> Instant {
        // secs(t) >= s  <=>  unix + (t - at) > s - 1 s.
        let Some(before) = unix_secs.checked_sub(1) else { return self.at };
        match Duration::from_secs(before).checked_sub(self.unix) {
            Some(d) => self.at + d + Duration::from_nanos(1),
            None => self.at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Direction::{Egress, Ingress};
    use crate::packet::{sample, tcp_flags};

    const ENI: &str = "eni-1235b8ca123456789";

    /// AWS's documentation example flow, toward the ENI: 172.31.16.139:20641 → 172.31.16.21:22.
    const SSH: PacketMeta = PacketMeta {
        src: Ipv4Addr::new(172, 31, 16, 139),
        dst: Ipv4Addr::new(172, 31, 16, 21),
        src_port: 20641,
        dst_port: 22,
        tcp_flags: tcp_flags::ACK,
        len: 200,
        ..sample::SYN
    };

    fn log(interval_secs: u32, max_flows: usize) -> FlowLog {
        FlowLog::new(FlowLogConfig {
            account_id: "123456789010".into(),
            interval_secs,
            max_flows_per_window: max_flows,
        })
        .unwrap()
    }

    fn drain(l: &mut FlowLog, now: u64) -> Vec<String> {
        std::iter::from_fn(|| l.poll_record(now)).map(|r| r.to_string()).collect()
    }

    // ---- flow log format -----------------------------------------------

    #[test]
    fn record_text_is_aws_default_format_v2() {
        let r = FlowLogRecord {
            account_id: "123456789010".into(),
            interface_id: ENI.into(),
            traffic: Some(FlowTraffic {
                src: SSH.src,
                dst: SSH.dst,
                src_port: 20641,
                dst_port: 22,
                protocol: 6,
                packets: 20,
                bytes: 4249,
                action: Action::Accept,
            }),
            start: 1418530010,
            end: 1418530070,
            log_status: LogStatus::Ok,
        };
        assert_eq!(
            r.to_string(),
            "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK"
        );
        let skip = FlowLogRecord { traffic: None, log_status: LogStatus::SkipData, ..r };
        assert_eq!(
            skip.to_string(),
            "2 123456789010 eni-1235b8ca123456789 - - - - - - - 1418530010 1418530070 - SKIPDATA"
        );
    }

    // ---- aggregation ----------------------------------------------------

    #[test]
    fn packets_of_one_flow_in_one_window_make_one_record() {
        let mut l = log(60, 100);
        let eni = l.interface(ENI);
        // Windows are aligned to multiples of the interval: T starts one.
        const T: u64 = 1418530020;
        assert_eq!(T % 60, 0);
        // 20 packets summing to 4249 bytes between T and T + 38.
        for i in 0..20u64 {
            let len = if i == 19 { 4249 - 19 * 200 } else { 200 };
            l.record(T + 2 * i, eni, Ingress, &PacketMeta { len, ..SSH }, Action::Accept);
        }
        assert_eq!(drain(&mut l, T + 59), Vec::<String>::new(), "window still open");
        assert_eq!(l.poll_timeout(), Some(T + 60));
        assert_eq!(
            drain(&mut l, T + 60),
            ["2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530020 1418530058 ACCEPT OK"]
        );
        assert_eq!(l.poll_timeout(), None);
        assert_eq!(drain(&mut l, T + 200), Vec::<String>::new());
    }

    #[test]
    fn directions_actions_and_interfaces_are_separate_flows() {
        let mut l = log(60, 100);
        let a = l.interface("eni-a");
        let b = l.interface("eni-b");
        assert_eq!(l.interface("eni-a"), a, "interning returns the same handle");
        let back = PacketMeta { src: SSH.dst, dst: SSH.src, src_port: 22, dst_port: 20641, len: 100, ..SSH };
        l.record(120, a, Ingress, &SSH, Action::Accept);
        l.record(121, a, Egress, &back, Action::Reject); // e.g. the NACL denied the reply
        l.record(122, b, Ingress, &SSH, Action::Accept);
        l.record(123, a, Ingress, &SSH, Action::Accept);
        assert_eq!(
            drain(&mut l, 180),
            [
                "2 123456789010 eni-a 172.31.16.139 172.31.16.21 20641 22 6 2 400 120 123 ACCEPT OK",
                "2 123456789010 eni-a 172.31.16.21 172.31.16.139 22 20641 6 1 100 121 121 REJECT OK",
                "2 123456789010 eni-b 172.31.16.139 172.31.16.21 20641 22 6 1 200 122 122 ACCEPT OK",
            ]
        );
    }

    #[test]
    fn window_rollover_emits_the_closed_window_only() {
        let mut l = log(60, 100);
        let eni = l.interface(ENI);
        l.record(100, eni, Ingress, &SSH, Action::Accept); // window [60, 120)
        l.record(119, eni, Ingress, &SSH, Action::Accept);
        l.record(120, eni, Ingress, &SSH, Action::Accept); // window [120, 180)
        assert_eq!(
            drain(&mut l, 125),
            ["2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 2 400 100 119 ACCEPT OK"]
        );
        l.record(179, eni, Ingress, &SSH, Action::Accept);
        // A packet after a quiet gap closes the old window, not counted into it.
        l.record(400, eni, Ingress, &SSH, Action::Accept);
        assert_eq!(
            drain(&mut l, 401),
            ["2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 2 400 120 179 ACCEPT OK"]
        );
        assert_eq!(drain(&mut l, 420).len(), 1);
    }

    #[test]
    fn one_second_windows_for_tests() {
        let mut l = log(1, 100);
        let eni = l.interface(ENI);
        l.record(10, eni, Ingress, &SSH, Action::Reject);
        l.record(11, eni, Ingress, &SSH, Action::Reject);
        let out = drain(&mut l, 12);
        assert_eq!(out.len(), 2);
        assert!(out[0].ends_with(" 6 1 200 10 10 REJECT OK"), "{}", out[0]);
        assert!(out[1].ends_with(" 6 1 200 11 11 REJECT OK"), "{}", out[1]);
    }

    #[test]
    fn overflow_counts_and_emits_skipdata() {
        let mut l = log(60, 2);
        let a = l.interface("eni-a");
        let b = l.interface("eni-b");
        for port in [1, 2, 3, 4] {
            l.record(60, a, Ingress, &PacketMeta { src_port: port, ..SSH }, Action::Accept);
        }
        l.record(61, b, Ingress, &SSH, Action::Accept);
        // Existing flows still count when the window is full.
        l.record(62, a, Ingress, &PacketMeta { src_port: 1, ..SSH }, Action::Accept);
        assert_eq!(l.skipped_packets(), 3);
        let out = drain(&mut l, 120);
        assert_eq!(
            out,
            [
                "2 123456789010 eni-a 172.31.16.139 172.31.16.21 1 22 6 2 400 60 62 ACCEPT OK",
                "2 123456789010 eni-a 172.31.16.139 172.31.16.21 2 22 6 1 200 60 60 ACCEPT OK",
                "2 123456789010 eni-a - - - - - - - 60 120 - SKIPDATA",
                "2 123456789010 eni-b - - - - - - - 60 120 - SKIPDATA",
            ]
        );
        // The next window starts empty: room again, no SKIPDATA.
        l.record(130, b, Ingress, &SSH, Action::Accept);
        assert_eq!(drain(&mut l, 180).len(), 1);
    }

    #[test]
    fn nacl_denied_reply_is_rejected_while_request_is_accepted() {
        use crate::filter::*;
        // SG allows 443 in; the NACL lets 443 in but lacks the ephemeral
        // range out, so the ENI's replies die at the subnet boundary.
        let entry = |ports: &str| NaclEntry {
            rule: RuleNumber::new(100).unwrap(),
            protocol: Protocol::Tcp,
            ports: ports.parse().unwrap(),
            cidr: "10.0.0.0/16".parse().unwrap(),
            action: RuleAction::Allow,
        };
        let cfg = RuleSetConfig {
            enis: vec![EniRules {
                index: 0,
                ip: Ipv4Addr::new(10, 0, 1, 49),
                subnet: "10.0.1.0/24".parse().unwrap(),
                security_groups: vec!["sg-endpoint".into()],
                network_acl: Some("acl-x".into()),
            }],
            security_groups: vec![SecurityGroup {
                id: "sg-endpoint".into(),
                ingress: vec![SgRule {
                    protocol: Protocol::Tcp,
                    ports: PortRange::single(443),
                    peer: SgPeer::Cidr("10.0.0.0/16".parse().unwrap()),
                }],
                egress: vec![],
            }],
            network_acls: vec![NetworkAcl {
                id: "acl-x".into(),
                ingress: vec![entry("443")],
                egress: vec![entry("443")],
            }],
            ..RuleSetConfig::default()
        };
        let mut f = Filter::new(Arc::new(RuleSet::build(&cfg).unwrap()), FilterConfig::default()).unwrap();
        let mut l = log(60, 100);
        let eni = l.interface("eni-0b16f0581c8ac6877");
        let t0 = std::time::Instant::now();
        let syn = PacketMeta { src: Ipv4Addr::new(10, 0, 2, 10), len: 60, ..sample::SYN };
        let syn_ack = PacketMeta {
            src: syn.dst,
            dst: syn.src,
            src_port: 443,
            dst_port: 40000,
            tcp_flags: TCP_SYN | TCP_ACK,
            ..syn
        };
        for (i, (dir, p)) in [(Ingress, syn), (Egress, syn_ack), (Ingress, syn)].iter().enumerate() {
            let d = f.handle_packet(t0, 0, *dir, p);
            l.record(600 + i as u64, eni, *dir, p, d.action);
        }
        assert_eq!(
            drain(&mut l, 660),
            [
                "2 123456789010 eni-0b16f0581c8ac6877 10.0.2.10 10.0.1.49 40000 443 6 2 120 600 602 ACCEPT OK",
                "2 123456789010 eni-0b16f0581c8ac6877 10.0.1.49 10.0.2.10 443 40000 6 1 60 601 601 REJECT OK",
            ]
        );
    }

    // ---- what the wire carried -------------------------------------------

    /// A data segment toward the client, 20 + 20 header bytes (smoltcp sends
    /// no TCP options on data), `payload` bytes after them.
    fn data(payload: u16) -> PacketMeta {
        PacketMeta {
            src: SSH.dst,
            dst: SSH.src,
            src_port: 22,
            dst_port: 20641,
            len: 40 + payload,
            payload_start: 40,
            payload_end: 40 + payload,
            ..SSH
        }
    }

    #[test]
    fn a_superpacket_counts_as_its_segments() {
        // A full 64 KiB superpacket, cut at a client's MSS of 1460 (its MTU
        // 1500) and at smoltcp's 8448 (ENI MTU 8500): the headers repeat on
        // every segment, 40 bytes, not 52.
        let big = data(65535 - 40);
        assert_eq!(wire_packets(&big, 1460), (45, 65535 + 44 * 40));
        assert_eq!(wire_packets(&big, 8448), (8, 65535 + 7 * 40));
        // The last segment short, or exactly full.
        assert_eq!(wire_packets(&data(2 * 1460), 1460), (2, 40 + 2 * 1460 + 40));
        assert_eq!(wire_packets(&data(2 * 1460 + 1), 1460), (3, 40 + 2 * 1460 + 1 + 2 * 40));
        // Not cut: no segment size, or the payload fits one segment, or no payload.
        assert_eq!(wire_packets(&big, 0), (1, 65535));
        assert_eq!(wire_packets(&data(1460), 1460), (1, 1500));
        assert_eq!(wire_packets(&sample::SYN, 1460), (1, 40));
        // Options repeat too: a 52-byte header (timestamps) is 52 per segment.
        let with_ts = PacketMeta { payload_start: 52, ..data(3 * 1448 + 12) };
        assert_eq!(wire_packets(&with_ts, 1448), (3, u64::from(with_ts.len) + 2 * 52));
    }

    #[test]
    fn a_download_at_a_smaller_client_mtu_logs_every_wire_packet() {
        // 1 MB toward a client of MSS 1460, handed to the TUN as smoltcp's
        // superpackets of 44 segments each (64,240 bytes), the last one short.
        let mut l = log(60, 100);
        let eni = l.interface(ENI);
        let mut left: u32 = 1_000_000;
        while left > 0 {
            let n = left.min(44 * 1460);
            l.record_segments(120, eni, Egress, &data(n as u16), Action::Accept, 1460);
            left -= n;
        }
        // ceil(1,000,000 / 1460) = 685 segments of 40 header bytes each.
        assert_eq!(
            drain(&mut l, 180),
            [format!(
                "2 123456789010 {ENI} 172.31.16.21 172.31.16.139 22 20641 6 685 {} 120 120 ACCEPT OK",
                1_000_000 + 685 * 40
            )]
        );
    }

    // ---- the seconds of a record --------------------------------------------

    #[test]
    fn a_record_never_starts_before_its_first_packet() {
        // The clock was read at Unix 1418530019.7; a packet 0.5 s later was
        // sent at 1418530020.2, so its record starts at 1418530021, not 020
        // and not 019 (the second of the clock's reading).
        let t0 = std::time::Instant::now();
        let clock = UnixClock::new(t0, Duration::from_millis(1_418_530_019_700));
        let packet_at = t0 + Duration::from_millis(500);
        let sent = Duration::from_millis(1_418_530_020_200);
        let mut l = log(60, 100);
        let eni = l.interface(ENI);
        l.record(clock.secs(packet_at), eni, Ingress, &SSH, Action::Accept);
        let rec = l.poll_record(clock.secs(packet_at + Duration::from_secs(60))).expect("the window closed");
        assert!(Duration::from_secs(rec.start) >= sent, "start {} precedes the packet at {sent:?}", rec.start);
        assert_eq!((rec.start, rec.end), (1_418_530_021, 1_418_530_021), "and lags it by less than a second");
    }

    #[test]
    fn the_clock_rounds_up_and_finds_the_instant_of_a_second() {
        let t0 = std::time::Instant::now();
        let whole = UnixClock::new(t0, Duration::from_secs(100));
        assert_eq!(whole.secs(t0), 100, "a whole second is itself");
        assert_eq!(whole.secs(t0 + Duration::from_nanos(1)), 101);
        assert_eq!(whole.secs(t0 - Duration::from_secs(5)), 100, "before the reading: the reading's second");
        let frac = UnixClock::new(t0, Duration::from_millis(99_700));
        assert_eq!(frac.secs(t0), 100);
        assert_eq!(frac.secs(t0 + Duration::from_millis(300)), 100);
        assert_eq!(frac.secs(t0 + Duration::from_millis(301)), 101);
        for c in [whole, frac] {
            for s in [0, 99, 100, 101, 160, 1_000_000] {
                let at = c.instant_at(s);
                assert!(c.secs(at) >= s, "second {s} has begun at its instant");
                if at > t0 {
                    assert!(c.secs(at - Duration::from_nanos(1)) < s, "second {s}: not one nanosecond later");
                }
            }
        }
    }

    #[test]
    fn config_validation() {
        let bad = |c: FlowLogConfig| FlowLog::new(c).err().map(|e| e.to_string());
        let ok = FlowLogConfig::default();
        assert!(FlowLog::new(ok.clone()).is_ok());
        assert_eq!(
            bad(FlowLogConfig { interval_secs: 0, ..ok.clone() }).unwrap(),
            "flow log interval 0 s is outside 1..=600 s"
        );
        assert!(bad(FlowLogConfig { interval_secs: 601, ..ok.clone() }).is_some());
        assert!(FlowLog::new(FlowLogConfig { interval_secs: 600, ..ok.clone() }).is_ok());
        assert!(bad(FlowLogConfig { max_flows_per_window: 0, ..ok.clone() }).is_some());
        assert!(bad(FlowLogConfig { account_id: "1234 5678".into(), ..ok.clone() }).is_some());
        assert!(bad(FlowLogConfig { account_id: String::new(), ..ok }).is_some());
    }
}
