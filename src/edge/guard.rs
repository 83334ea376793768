//! The ENI's guards at work: its security groups and its subnet's network
//! ACL on every packet, both ways, and VPC Flow Logs of every decision.
//!
//! The rules themselves live in the sans-IO [`privlink_core::filter`] (what AWS
//! decides) and [`privlink_core::flowlog`] (how AWS writes it down); this edge feeds
//! them packets with the time, swaps in new rules when the config changes
//! (tracked flows survive; untracked ones are judged by the new rules at once),
//! and writes flow-log records to a file and/or stdout.
//!
//! The resolver addresses are not guarded: AWS's security groups and NACLs do
//! not filter traffic to the Amazon-provided DNS server.
//!
//! Flow logs count what the wire carried: the device passes the segment
//! size of a superpacket (the kernel's GSO size in, smoltcp's MSS out), and
//! seconds come from a [`UnixClock`] read once, fraction kept, so a record
//! never starts before its first packet.
//!
//! The connections a guard rejects are also kept by rule ([`RejectedByRule`],
//! bounded) for `privlink run --summary`: counted per rejected SYN (or
//! first datagram), retransmissions of a recent one aside, never per packet
//! that passes.
//!
//! Every REJECT prints one line at `info`, naming the ENI's id, the rule and
//! the client, within a [`LogLimit`] per layer (security groups, network
//! ACL): a flood prints a few lines a second and says how many it held
//! back; the rest print at `debug`.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use privlink_core::admission;
use privlink_core::config::FlowLogs;
use privlink_core::filter::{Action, Decision, Filter, FilterConfig, Reason, RuleSet};
use privlink_core::first_seen::FirstSeen;
use privlink_core::flow::{Direction, FlowKey};
use privlink_core::flowlog::{FlowLog, FlowLogConfig, InterfaceHandle, UnixClock};
use privlink_core::log_limit::LogLimit;
use privlink_core::packet::PacketMeta;

/// Most distinct flows per flow-log window; more become a SKIPDATA record, as at AWS.
const MAX_FLOWS_PER_WINDOW: usize = 65_536;

/// Packets rejected, by layer and direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardCounters {
    /// Rejected by security groups, inbound.
    pub sg_ingress: u64,
    /// Rejected by security groups, outbound.
    pub sg_egress: u64,
    /// Rejected by the NACL, inbound.
    pub nacl_ingress: u64,
    /// Rejected by the NACL, outbound.
    pub nacl_egress: u64,
    /// Accepted, both ways.
    pub accepted: u64,
}

privlink_core::counters_add!(GuardCounters { sg_ingress, sg_egress, nacl_ingress, nacl_egress, accepted });

/// Most distinct (ENI, rule) pairs a guard keeps for [`RejectedByRule`].
pub const MAX_REJECT_RULES: usize = 32;

/// Connections the guards dropped, by the ENI's id and the rule (the
/// decision's [`Reason`]): the first [`MAX_REJECT_RULES`] pairs, the rest
/// counted. A connection is a rejected packet that would open a flow (an
/// inbound SYN, or a first inbound datagram), or a SYN whose SYN-ACK the
/// guards would reject; a retransmission of one of the last
/// [`RECENT_REJECTS`] rejected flows is the same connection, not another.
pub type RejectedByRule = FirstSeen<(Arc<str>, Reason), u64, MAX_REJECT_RULES>;

/// Rejected flows remembered so a retransmitted SYN counts once in [`RejectedByRule`].
pub const RECENT_REJECTS: usize = 16;

/// The flow log all queues' guards share: the open window behind one lock,
/// the writer behind another, so writing never holds up judging packets.
/// What the window still holds is written when the last guard goes.
struct SharedFlowLog {
    window: Mutex<FlowLogWindow>,
    out: Mutex<FlowLogOut>,
    /// Unix seconds when the guards started, a floor for the final write's clock.
    epoch_unix: u64,
}

struct FlowLogWindow {
    log: FlowLog,
    handles: Vec<InterfaceHandle>,
}

struct FlowLogOut {
    file: Option<BufWriter<File>>,
    stdout: bool,
}

/// A poisoned lock only means a queue panicked mid-record; what it guards stays usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SharedFlowLog {
    /// Writes every record whose window has closed by `unix`.
    fn write_due(&self, unix: u64) {
        let mut records = Vec::new();
        {
            let mut w = lock(&self.window);
            while let Some(rec) = w.log.poll_record(unix) {
                records.push(rec);
            }
        }
        if records.is_empty() {
            return;
        }
        let mut out = lock(&self.out);
        for rec in &records {
            if let Some(f) = out.file.as_mut() {
                if let Err(e) = writeln!(f, "{rec}") {
                    tracing::warn!("flow log file: {e}");
                }
            }
            if out.stdout {
                println!("{rec}");
            }
        }
        if let Some(f) = out.file.as_mut() {
            let _ = f.flush();
        }
    }
}

impl Drop for SharedFlowLog {
    /// Writes what the open window holds, as if it had closed: the last
    /// queue is done, so nothing more can count in it.
    fn drop(&mut self) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(self.epoch_unix);
        self.write_due(now.max(self.epoch_unix) + 3600);
    }
}

/// Security groups, NACLs and flow logs for the ENIs of one VPC, as seen by
/// one TUN queue. Each queue has its own connection tracking (a flow stays on
/// its queue); all queues write one flow log.
pub struct EniGuard {
    filter: Filter,
    config: FilterConfig,
    rules: watch::Receiver<Arc<RuleSet>>,
    /// ENI addresses sorted, with their index, to find the ENI of an outgoing packet.
    by_ip: Vec<(Ipv4Addr, usize)>,
    /// Shared by the queues' guards: one window of records, one writer. The
    /// window's lock is taken once per judged packet (a superpacket at speed), for a hash update.
    flow_log: Option<Arc<SharedFlowLog>>,
    /// The ENIs' ids (`eni-…`), by index, for log lines.
    eni_ids: Arc<[Arc<str>]>,
    /// Unix seconds of the guard's instants, for flow-log records.
    clock: UnixClock,
    /// The line budgets of REJECTs by a security group and by a network ACL.
    sg_log: LogLimit,
    nacl_log: LogLimit,
    /// What was rejected.
    pub counters: GuardCounters,
    /// The connections rejected, by rule.
    pub rejected: RejectedByRule,
    /// The last rejected flows that would have opened a connection, a ring.
    recent_rejects: [Option<FlowKey>; RECENT_REJECTS],
    recent_next: usize,
}

/// Why the guard could not start.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// The filter refused its configuration.
    #[error("connection tracking: {0}")]
    Filter(#[from] privlink_core::filter::FilterConfigError),
    /// The flow log could not be set up.
    #[error("flow logs: {0}")]
    FlowLog(#[from] privlink_core::flowlog::FlowLogError),
    /// The flow-log file could not be opened.
    #[error("flow log file {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The OS error.
        source: io::Error,
    },
}

impl EniGuard {
    /// A guard for ENIs `eni_ids[i]` at `eni_ips[i]` (index `i` as in the rule set).
    pub fn new(
        rules: watch::Receiver<Arc<RuleSet>>,
        config: FilterConfig,
        eni_ids: &[String],
        eni_ips: &[Ipv4Addr],
        flow_logs: Option<&FlowLogs>,
    ) -> Result<EniGuard, GuardError> {
        let current = rules.borrow().clone();
        let filter = Filter::new(current, config.clone())?;
        let mut by_ip: Vec<(Ipv4Addr, usize)> = eni_ips.iter().copied().zip(0..).collect();
        by_ip.sort();
        let unix = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let clock = UnixClock::new(Instant::now(), unix);
        let flow_log = match flow_logs {
            None => None,
            Some(f) => {
                let mut log = FlowLog::new(FlowLogConfig {
                    account_id: f.account_id.clone(),
                    interval_secs: f.interval,
                    max_flows_per_window: MAX_FLOWS_PER_WINDOW,
                })?;
                let handles = eni_ids.iter().map(|id| log.interface(id)).collect();
                let file = match &f.file {
                    None => None,
                    Some(path) => {
                        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                            let _ = std::fs::create_dir_all(dir);
                        }
                        let file = File::options()
                            .create(true)
                            .append(true)
                            .open(path)
                            .map_err(|source| GuardError::File { path: path.display().to_string(), source })?;
                        Some(BufWriter::new(file))
                    }
                };
                Some(Arc::new(SharedFlowLog {
                    window: Mutex::new(FlowLogWindow { log, handles }),
                    out: Mutex::new(FlowLogOut { file, stdout: f.stdout }),
                    epoch_unix: unix.as_secs(),
                }))
            }
        };
        Ok(EniGuard {
            filter,
            config,
            rules,
            by_ip,
            flow_log,
            eni_ids: eni_ids.iter().map(|id| Arc::from(id.as_str())).collect(),
            clock,
            sg_log: LogLimit::default(),
            nacl_log: LogLimit::default(),
            counters: GuardCounters::default(),
            rejected: RejectedByRule::default(),
            recent_rejects: [None; RECENT_REJECTS],
            recent_next: 0,
        })
    }

    /// A guard for another TUN queue: its own connection tracking, the same
    /// rules (and their reloads) and the same flow log.
    pub fn for_another_queue(&self) -> Result<EniGuard, GuardError> {
        let current = self.rules.borrow().clone();
        Ok(EniGuard {
            filter: Filter::new(current, self.config.clone())?,
            config: self.config.clone(),
            rules: self.rules.clone(),
            by_ip: self.by_ip.clone(),
            flow_log: self.flow_log.clone(),
            eni_ids: self.eni_ids.clone(),
            clock: self.clock,
            sg_log: LogLimit::default(),
            nacl_log: LogLimit::default(),
            counters: GuardCounters::default(),
            rejected: RejectedByRule::default(),
            recent_rejects: [None; RECENT_REJECTS],
            recent_next: 0,
        })
    }

    /// The id (`eni-…`) of ENI `eni`, or what the stack's other addresses are.
    pub fn eni_id(&self, eni: usize) -> &str {
        eni_id(&self.eni_ids, eni)
    }

    /// Takes new rules if the config changed: one atomic load when nothing
    /// did. Done per packet, not per loop turn: a queue's thread may be
    /// between turns when a reload is published, and the next packet any
    /// queue judges must meet the new rules.
    fn refresh_rules(&mut self) {
        if self.rules.has_changed().unwrap_or(false) {
            let r = self.rules.borrow_and_update().clone();
            self.filter.set_rules(r);
        }
    }

    /// Judges a packet toward ENI `eni`; `true` lets it pass. `segment_size`:
    /// the payload bytes per segment of a superpacket (the GSO size), 0 if not one.
    pub fn handle_ingress(&mut self, now: Instant, eni: usize, meta: &PacketMeta, segment_size: u16) -> bool {
        self.judge(now, eni, Direction::Ingress, meta, segment_size)
    }

    /// Judges a packet the stack is about to send (as parsed); `true` lets it pass.
    /// `segment_size` as for [`EniGuard::handle_ingress`] (smoltcp's MSS).
    pub fn handle_egress(&mut self, now: Instant, meta: &PacketMeta, segment_size: u16) -> bool {
        match self.by_ip.binary_search_by_key(&meta.src, |&(ip, _)| ip) {
            Ok(i) => {
                let eni = self.by_ip[i].1;
                self.judge(now, eni, Direction::Egress, meta, segment_size)
            }
            // From a resolver address: not guarded.
            Err(_) => true,
        }
    }

    /// Whether the SYN-ACK answering `syn` (toward ENI `eni`) would leave,
    /// asked before anything answers it: conntrack is not changed. A reject
    /// is counted and logged as the SYN-ACK's, since no SYN-ACK will be built
    /// to meet it (AWS's NACL drops the one it would send).
    pub fn reply_leaves(&mut self, now: Instant, eni: usize, syn: &PacketMeta) -> bool {
        self.refresh_rules();
        let reply = admission::syn_ack(syn);
        let d = self.filter.peek(now, eni, Direction::Egress, &reply);
        if d.is_accept() {
            return true;
        }
        self.record(now, eni, Direction::Egress, &reply, &d, 0);
        self.note_rejected_connection(eni, syn.flow(), &d.reason);
        false
    }

    fn judge(&mut self, now: Instant, eni: usize, dir: Direction, f: &PacketMeta, segment_size: u16) -> bool {
        self.refresh_rules();
        let d = self.filter.handle_packet(now, eni, dir, f);
        let pass = self.record(now, eni, dir, f, &d, segment_size);
        if !pass && dir == Direction::Ingress && opens_flow(f) {
            self.note_rejected_connection(eni, f.flow(), &d.reason);
        }
        pass
    }

    /// Counts a connection rejected by `reason` in [`EniGuard::rejected`],
    /// unless `flow` is one of the last rejected (a retransmission). Done
    /// per rejected SYN, never for a packet that passes.
    fn note_rejected_connection(&mut self, eni: usize, flow: FlowKey, reason: &Reason) {
        if self.recent_rejects.contains(&Some(flow)) {
            return;
        }
        self.recent_rejects[self.recent_next] = Some(flow);
        self.recent_next = (self.recent_next + 1) % RECENT_REJECTS;
        let Some(id) = self.eni_ids.get(eni) else { return };
        let kept = self.rejected.entry(|(e, r)| e == id && r == reason, || ((id.clone(), reason.clone()), 0));
        if let Some(n) = kept {
            *n += 1;
        }
    }

    /// Writes decision `d` on `f` into the flow log, the counters and the
    /// rate-limited log; `true` if it accepts. `segment_size` as for
    /// [`EniGuard::handle_ingress`].
    fn record(
        &mut self,
        now: Instant,
        eni: usize,
        dir: Direction,
        f: &PacketMeta,
        d: &Decision,
        segment_size: u16,
    ) -> bool {
        if let Some(shared) = &self.flow_log {
            let unix = self.clock.secs(now);
            let mut sink = lock(&shared.window);
            if let Some(&h) = sink.handles.get(eni) {
                sink.log.record_segments(unix, h, dir, f, d.action, segment_size);
            }
        }
        let id = eni_id(&self.eni_ids, eni);
        let flow = f.flow_in(dir);
        match d.action {
            Action::Accept => {
                self.counters.accepted += 1;
                tracing::trace!("{id}: ACCEPT {dir} client {flow}: {}", d.reason);
                true
            }
            Action::Reject => {
                let nacl = matches!(d.reason, Reason::NaclRule { .. } | Reason::NaclDefaultDeny { .. });
                let c = &mut self.counters;
                match (nacl, dir) {
                    (true, Direction::Ingress) => c.nacl_ingress += 1,
                    (true, Direction::Egress) => c.nacl_egress += 1,
                    (false, Direction::Ingress) => c.sg_ingress += 1,
                    (false, Direction::Egress) => c.sg_egress += 1,
                }
                let limit = if nacl { &mut self.nacl_log } else { &mut self.sg_log };
                log_failure!(limit, now, "{id}: REJECT {dir} client {flow}: {}", d.reason);
                false
            }
        }
    }

    /// Expires tracked flows and writes the flow-log records of closed windows.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.filter.handle_timeout(now);
        if let Some(shared) = &self.flow_log {
            shared.write_due(self.clock.secs(now));
        }
    }

    /// When [`EniGuard::handle_timeout`] has work next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let flow = self
            .flow_log
            .as_ref()
            .and_then(|s| lock(&s.window).log.poll_timeout())
            .map(|unix| self.clock.instant_at(unix));
        match (self.filter.poll_timeout(), flow) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Whether `f`, toward the ENI, would open a flow: a TCP SYN without ACK, or
/// anything not TCP (its flow's first datagram).
fn opens_flow(f: &PacketMeta) -> bool {
    use privlink_core::packet::{proto, tcp_flags};
    f.protocol != proto::TCP || f.tcp_flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN
}

/// ENI `eni`'s id; past the ENIs, the stack's addresses are the resolver's.
fn eni_id(ids: &[Arc<str>], eni: usize) -> &str {
    ids.get(eni).map_or("the VPC resolver", |id| id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use privlink_core::packet::sample;
    use std::time::Duration;

    /// The demo's endpoint group, allowing TCP `port` from the VPC.
    fn rules(port: &str) -> Arc<RuleSet> {
        let text = privlink_core::config::DEMO_CONFIG.replace(r#"ports = "443""#, &format!(r#"ports = "{port}""#));
        let config = privlink_core::config::Config::from_toml("demo.toml", &text).unwrap();
        let mut state = privlink_core::model::State::default();
        let plan = privlink_core::model::Plan::make(&config, &mut state, crate::edge::daemon::random_id_bytes).unwrap();
        Arc::new(plan.rule_set().unwrap())
    }

    const ENIS: [&str; 2] = ["eni-a", "eni-b"];
    const IPS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 0, 1, 49), Ipv4Addr::new(10, 0, 2, 49)];

    fn guard(rules_rx: watch::Receiver<Arc<RuleSet>>, flow_logs: Option<&FlowLogs>) -> EniGuard {
        let enis = ENIS.map(String::from);
        EniGuard::new(rules_rx, FilterConfig::default(), &enis, &IPS, flow_logs).unwrap()
    }

    #[test]
    fn the_next_packet_meets_rules_published_since_the_last() {
        let (publish, rules_rx) = watch::channel(rules("443"));
        let mut guard = guard(rules_rx, None);
        // sample::SYN is 10.0.1.10 → 10.0.1.49:443, a client of ENI 0.
        assert_eq!(sample::SYN.dst, IPS[0]);
        let syn = |src_port| PacketMeta { src_port, ..sample::SYN };
        let now = Instant::now();
        assert!(guard.judge(now, 0, Direction::Ingress, &syn(40000), 0));
        // No loop turn in between: another queue's thread may be anywhere when a reload lands.
        publish.send_replace(rules("444"));
        assert!(!guard.judge(now, 0, Direction::Ingress, &syn(40001), 0), "judged by the old rules");
        assert_eq!(guard.counters.sg_ingress, 1);
    }

    #[test]
    fn a_rejected_connection_counts_once_by_its_rule_whatever_its_retransmissions() {
        let (_publish, rules_rx) = watch::channel(rules("444"));
        let mut g = guard(rules_rx, None);
        let syn = |src_port| PacketMeta { src_port, ..sample::SYN };
        let now = Instant::now();
        for _ in 0..3 {
            assert!(!g.handle_ingress(now, 0, &syn(40000), 0), "no group allows 443");
        }
        assert!(!g.handle_ingress(now, 0, &syn(40001), 0));
        // A mid-flow packet of no tracked flow is not a connection.
        let ack = PacketMeta { tcp_flags: privlink_core::packet::tcp_flags::ACK, ..syn(40002) };
        assert!(!g.handle_ingress(now, 0, &ack, 0));
        assert_eq!(g.counters.sg_ingress, 5, "every packet is counted");
        let by_rule: Vec<(String, String, u64)> =
            g.rejected.iter().map(|((eni, why), n)| (eni.to_string(), why.to_string(), *n)).collect();
        assert_eq!(
            by_rule,
            [("eni-a".into(), "no security group ingress rule on the ENI allows it".into(), 2)],
            "two connections, one rule"
        );
        // Sixteen other flows later, the first one's SYN counts again.
        for port in 0..RECENT_REJECTS as u16 {
            g.handle_ingress(now, 0, &syn(41000 + port), 0);
        }
        g.handle_ingress(now, 0, &syn(40000), 0);
        assert_eq!(g.rejected.iter().next().map(|(_, n)| *n), Some(2 + RECENT_REJECTS as u64 + 1));
    }

    #[test]
    fn flow_logs_count_a_superpacket_as_segments_of_its_own_size() {
        let dir = std::env::temp_dir().join(format!("privlink-guard-test-{}", std::process::id()));
        let file = dir.join("flow.log");
        let logs = FlowLogs { file: Some(file.clone()), stdout: false, interval: 1, account_id: "123456789012".into() };
        let (_publish, rules_rx) = watch::channel(rules("443"));
        let mut g = guard(rules_rx, Some(&logs));
        let now = Instant::now();
        assert!(g.handle_ingress(now, 0, &sample::SYN, 0));
        // 64,240 bytes toward a client whose MSS is 1460 (its MTU 1500; the ENI's
        // is 8500): smoltcp hands the TUN one superpacket, the wire carries 44
        // segments of 40 header bytes each.
        let down = PacketMeta {
            src: sample::SYN.dst,
            dst: sample::SYN.src,
            src_port: 443,
            dst_port: 40000,
            tcp_flags: privlink_core::packet::tcp_flags::ACK,
            len: 40 + 44 * 1460,
            payload_start: 40,
            payload_end: 40 + 44 * 1460,
            ..sample::SYN
        };
        assert!(g.judge(now, 0, Direction::Egress, &down, 1460));
        g.handle_timeout(now + Duration::from_secs(3));
        let text = std::fs::read_to_string(&file).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let line =
            text.lines().find(|l| l.contains(" 10.0.1.49 10.0.1.10 443 40000 6 ")).expect("the download's record");
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!((fields[8], fields[9]), ("44", &*(64_280 + 43 * 40).to_string()), "{line}");
    }
}
