//! The packet pipeline target: packets from the TUN and from the stack, in
//! the order an input gives them, through the core exactly as a queue's
//! stack drives it (`src/edge/queue/device.rs`, `src/edge/guard.rs`):
//!
//! - in (control bit 0 clear): [`Pipeline::handle_segmented`]; what goes to
//!   the stack meets the ENI's filter (NACL, security groups, conntrack) and
//!   the flow log; a new flow's SYN meets [`Admission::judge`] (with the
//!   SYN-ACK peeked through the filter), an admitted one gets a
//!   [`SeqSpace`], and a live connection's segments meet its RFC 5961
//!   checks, a challenged one rewritten by [`rfc5961::make_challenge`]. UDP
//!   to a resolver goes to the DNS responder, as the edge's resolver does.
//! - out (bit 0 set): what smoltcp would send, parsed, taught to the
//!   connection's [`SeqSpace`] and judged by the filter on its way out.
//!
//! Bit 1 says the kernel vouched for the checksums (not verified); bit 2
//! makes the packet a superpacket with the GSO size that bits 3 to 5 pick.
//! The step byte moves the clock, and expired conntrack entries and closed
//! flow-log windows are handled as the edge's timers would.
//!
//! Invariants checked besides "never panics": every verdict agrees with the
//! plan (an ENI's own address, port and protocol; a resolver's UDP 53; a
//! source a VPC client may have), a parsed packet's offsets lie inside it,
//! the counters add up to the packets seen, the conntrack table keeps its
//! bound, a challenged segment still parses as a bare ACK of its flow, and a
//! DNS response carries its query's id.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use privlink_core::admission::{self, Admission, HalfOpenByClient, Room, SynVerdict};
use privlink_core::dns::{ForwardMode, Outcome, Responder, Transport};
use privlink_core::filter::{Filter, FilterConfig, RuleSet};
use privlink_core::flow::{Direction, FlowKey};
use privlink_core::flowlog::{FlowLog, FlowLogConfig, InterfaceHandle, UnixClock};
use privlink_core::packet::{self, proto, tcp_flags, PacketMeta};
use privlink_core::pipeline::{EniRoute, Pipeline, Verdict, VpcSources};
use privlink_core::rfc5961::{self, Segment, SegmentVerdict, SeqSpace};

use crate::fixture;
use crate::records::{records, step};

/// Conntrack entries per input: small, so that an input can fill the table
/// (the default's 7 MiB would also cost more to make than the input to run).
const MAX_ENTRIES: usize = 64;
/// Connections an endpoint may hold here, small for the same reason.
const MAX_CONNECTIONS: usize = 8;
/// The GSO sizes bits 3 to 5 pick: none of the edge's choosing, so edges too.
const GSO_SIZES: [u16; 8] = [1, 536, 1460, 8460, 8461, 9000, 32768, u16::MAX];

/// What every input starts from, made once.
struct Fixture {
    pipeline: Pipeline,
    /// ENIs below this index are guarded (the resolver's addresses are not).
    guarded: usize,
    eni_ips: Vec<std::net::Ipv4Addr>,
    /// The stack's view: per ENI index, its endpoint and ports.
    routes: Vec<EniRoute>,
    sources: VpcSources,
    resolvers: [std::net::Ipv4Addr; 2],
    mtu: usize,
    rules: Arc<RuleSet>,
    /// Per endpoint, then one for the resolver's TCP side (no policy).
    admissions: Vec<Admission>,
    eni_ids: Vec<String>,
    responder: Responder,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let plan = fixture::plan();
        // As `Stack::new` builds it: the ENIs, then the resolver addresses as one more endpoint.
        let (routes, guarded) = plan.eni_routes();
        let eni_ips = routes[..guarded].iter().map(|r| r.ip).collect();
        let sources = plan.vpc_sources();
        let pipeline = Pipeline::new(routes.clone(), plan.vpc.resolvers(), sources.clone(), plan.vpc.mtu);
        let mut admissions: Vec<Admission> = plan
            .endpoints
            .iter()
            .map(|e| Admission {
                policy: Some(e.settings.policy.clone()),
                vpc_id: plan.vpc.id.clone(),
                vpce_id: e.id.clone(),
            })
            .collect();
        admissions.push(Admission { policy: None, vpc_id: plan.vpc.id.clone(), vpce_id: String::new() });
        let zone = Arc::new(plan.zone().expect("the fixture's zone builds"));
        Fixture {
            pipeline,
            guarded,
            eni_ips,
            routes,
            sources,
            resolvers: plan.vpc.resolvers(),
            mtu: plan.vpc.mtu as usize,
            rules: Arc::new(plan.rule_set().expect("the fixture's rules build")),
            admissions,
            eni_ids: plan.endpoints.iter().flat_map(|e| e.enis.iter().map(|n| n.id.clone())).collect(),
            responder: Responder::new(zone, ForwardMode::Forward),
        }
    })
}

/// One input's state: a queue's stack, fresh.
struct Queue {
    pipeline: Pipeline,
    filter: Filter,
    log: FlowLog,
    handles: Vec<InterfaceHandle>,
    clock: UnixClock,
    /// Admitted connections by flow, as the device's `by_flow`.
    conns: BTreeMap<FlowKey, SeqSpace>,
    /// Connections per endpoint.
    per_endpoint: Vec<usize>,
    half_open: HalfOpenByClient,
    dns_out: Vec<u8>,
    now: Instant,
    packets_in: u64,
}

/// Builds the fixture (see [`crate::warm_up`]).
pub(crate) fn warm_up() {
    fixture();
}

/// Runs one input (see the module doc). Panics if an invariant breaks.
pub fn pipeline(data: &[u8]) {
    let f = fixture();
    let epoch = fixture::epoch();
    let mut log = FlowLog::new(FlowLogConfig { max_flows_per_window: 16, ..FlowLogConfig::default() })
        .expect("a valid flow-log config");
    let handles = f.eni_ids.iter().map(|id| log.interface(id)).collect();
    let config = FilterConfig { max_entries: MAX_ENTRIES, ..FilterConfig::default() };
    let mut q = Queue {
        pipeline: f.pipeline.clone(),
        filter: Filter::new(f.rules.clone(), config).expect("a valid filter config"),
        log,
        handles,
        clock: UnixClock::new(epoch, Duration::from_secs(1_700_000_000)),
        conns: BTreeMap::new(),
        per_endpoint: vec![0; f.admissions.len()],
        half_open: HalfOpenByClient::default(),
        dns_out: Vec::new(),
        now: epoch,
        packets_in: 0,
    };
    for r in records(data) {
        q.advance(step(r.step));
        let gso = if r.control & 4 != 0 { GSO_SIZES[usize::from(r.control >> 3) & 7] } else { 0 };
        if r.control & 1 == 0 {
            q.ingress(f, r.bytes, r.control & 2 == 0, gso);
        } else {
            q.egress(f, r.bytes, gso);
        }
        assert!(q.filter.conntrack_len() <= MAX_ENTRIES, "conntrack grew past its bound");
    }
    let c = &q.pipeline.counters;
    assert_eq!(c.to_stack + c.to_dns + c.dropped.iter().sum::<u64>(), q.packets_in, "counters: {c}");
    // The end of the run: every window closes, every record formats.
    q.advance(Duration::from_secs(3600));
}

impl Queue {
    /// Moves the clock, then does what the edge's timers would have done by then.
    fn advance(&mut self, by: Duration) {
        self.now += by;
        if self.filter.poll_timeout().is_some_and(|t| t <= self.now) {
            self.filter.handle_timeout(self.now);
        }
        let unix = self.clock.secs(self.now);
        while let Some(rec) = self.log.poll_record(unix) {
            let line = rec.to_string();
            assert!(line.starts_with("2 "), "a v2 record: {line}");
        }
    }

    fn ingress(&mut self, f: &Fixture, pkt: &[u8], verify: bool, gso: u16) {
        self.packets_in += 1;
        match self.pipeline.handle_segmented(pkt, verify, gso) {
            Verdict::ToStack { meta, endpoint, eni } => {
                check_meta(&meta, pkt);
                let route = &f.routes[eni];
                assert_eq!(route.ip, meta.dst, "to the ENI it names");
                assert_eq!(route.endpoint, endpoint);
                assert!(route.ports.contains(&meta.dst_port), "a port it carries");
                assert_eq!(meta.protocol, proto::TCP);
                self.check_source(f, &meta);
                assert!(gso != 0 || pkt.len() <= f.mtu, "within the MTU");
                if eni < f.guarded && !self.judge(eni, Direction::Ingress, &meta, gso) {
                    return;
                }
                self.stack_takes(f, pkt, &meta, endpoint, eni);
            }
            Verdict::ToDns(meta) => {
                check_meta(&meta, pkt);
                assert!(meta.protocol == proto::UDP && meta.dst_port == 53 && f.resolvers.contains(&meta.dst));
                self.check_source(f, &meta);
                let query = meta.payload(pkt);
                if f.responder.handle_query(query, Transport::Udp, &mut self.dns_out) == Outcome::Respond {
                    assert_eq!(self.dns_out[..2], query[..2], "the response carries the query's id");
                }
            }
            Verdict::Drop(_) => {}
        }
    }

    fn check_source(&self, f: &Fixture, meta: &PacketMeta) {
        assert!(f.sources.allows(meta.src), "{} is no client's address", meta.src);
        assert!(!f.resolvers.contains(&meta.src) && !f.routes.iter().any(|r| r.ip == meta.src));
    }

    /// A packet that passed the guards, as the device hands it on.
    fn stack_takes(&mut self, f: &Fixture, pkt: &[u8], meta: &PacketMeta, endpoint: usize, eni: usize) {
        let flow = meta.flow();
        let Some(seq) = self.conns.get_mut(&flow) else {
            if !meta.is_syn() {
                return; // smoltcp answers it with an RST
            }
            let room = Room {
                half_open: self.half_open.total(),
                client_half_open: self.half_open.of(meta.src),
                slot: self.per_endpoint[endpoint] < MAX_CONNECTIONS,
            };
            let (filter, now) = (&self.filter, self.now);
            let leaves =
                || eni >= f.guarded || filter.peek(now, eni, Direction::Egress, &admission::syn_ack(meta)).is_accept();
            if f.admissions[endpoint].judge(room, meta.src, leaves) == SynVerdict::Connect {
                self.conns.insert(flow, SeqSpace::new(&Segment::of(meta), packet::window_scale(pkt)));
                self.per_endpoint[endpoint] += 1;
                self.half_open.open(meta.src);
            }
            return;
        };
        let was_synchronized = seq.synchronized();
        let verdict = seq.receive(&Segment::of(meta));
        match verdict {
            SegmentVerdict::Accept => {}
            SegmentVerdict::Drop => return,
            SegmentVerdict::Challenge => {
                let mut copy = pkt.to_vec();
                rfc5961::make_challenge(&mut copy, seq);
                let m = packet::parse(&copy, false).expect("a challenged segment still parses");
                assert_eq!(m.flow(), flow, "the challenge keeps its flow");
                assert_eq!(m.tcp_flags, tcp_flags::ACK, "a challenge is a bare ACK");
                return;
            }
        }
        let synchronized = seq.synchronized();
        if meta.tcp_flags & tcp_flags::RST != 0 {
            // An accepted reset ends the connection, as smoltcp's would.
            self.conns.remove(&flow);
            self.per_endpoint[endpoint] -= 1;
            if !synchronized {
                self.half_open.close(meta.src);
            }
        } else if !was_synchronized && synchronized {
            self.half_open.close(meta.src);
        }
    }

    /// What the stack sends: taught to its connection, judged on the way out.
    fn egress(&mut self, f: &Fixture, pkt: &[u8], gso: u16) {
        let Ok(meta) = packet::parse(pkt, false) else { return };
        check_meta(&meta, pkt);
        if let Some(seq) = self.conns.get_mut(&meta.flow_in(Direction::Egress)) {
            let scale = if meta.tcp_flags & tcp_flags::SYN != 0 { packet::window_scale(pkt) } else { None };
            seq.sent(&Segment::of(&meta), scale);
        }
        if let Some(eni) = f.eni_ips.iter().position(|&ip| ip == meta.src) {
            self.judge(eni, Direction::Egress, &meta, gso);
        }
    }

    /// The guard: the filter's decision, written to the flow log.
    fn judge(&mut self, eni: usize, dir: Direction, meta: &PacketMeta, segment_size: u16) -> bool {
        let d = self.filter.handle_packet(self.now, eni, dir, meta);
        let _ = d.to_string();
        let unix = self.clock.secs(self.now);
        self.log.record_segments(unix, self.handles[eni], dir, meta, d.action, segment_size);
        d.is_accept()
    }
}

/// A parsed packet's offsets lie inside it, in order.
fn check_meta(meta: &PacketMeta, pkt: &[u8]) {
    let (start, end, len) = (usize::from(meta.payload_start), usize::from(meta.payload_end), usize::from(meta.len));
    assert!(start <= end && end <= len && len <= pkt.len(), "offsets {start}..{end} of {len} in {}", pkt.len());
}
