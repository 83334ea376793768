//! One queue's stack: smoltcp terminating TCP on the ENI, fed from a link
//! (a TUN queue, or memory in tests), relaying to upstream connections.
//!
//! # Theory of operation
//!
//! One thread owns one queue of the TUN, a smoltcp `Interface` and
//! `SocketSet`, and every connection the kernel steers to that queue (the
//! daemon's module doc says how flows stay on one queue). Nothing is shared
//! across queues but the flow log and the per-endpoint connection counts
//! ([`ConnectionSlots`]).
//!
//! **A turn.** [`Stack::turn`] does all there is to do at one instant, which
//! the caller passes in: answer finished connects, run due timers, poll
//! smoltcp over the link ([`device`]: the pipeline and the guards run inside
//! the poll, on the packet in place), start connects for new SYNs, service
//! woken connections, reap finished ones. It says whether it should run
//! again at once and when it has work next. [`Stack::run`] is the tokio loop
//! around it for a TUN: it sleeps until the TUN is readable, a connection is
//! woken, a connect finishes, a DNS answer arrives or the next timer; tests
//! call `turn` themselves with instants of their own.
//!
//! **Connect first.** A SYN for a new flow never reaches smoltcp at first:
//! the device sets it aside, the core's [`Admission`] judges it (the client's
//! room, the endpoint's, whether the guards would let its SYN-ACK out, then
//! the endpoint policy) and the stack starts the upstream connection.
//! Retransmitted SYNs meanwhile are absorbed. Only when the upstream is
//! connected does the stack create a socket listening on exactly that ENI
//! address and port, and feed it the held SYN alone, so smoltcp answers
//! SYN-ACK and the listener cannot take another client's SYN (a LISTEN socket
//! accepts any SYN to its port). If the upstream refuses, is unreachable or
//! times out, the client gets an RST built from the held SYN. Holding the SYN
//! outside smoltcp, rather than `pause_synack`, keeps `poll_delay` honest: a
//! paused socket makes smoltcp ask to be polled again at once, forever.
//!
//! **Half-open per client.** A client's SYNs admitted and not yet through
//! their handshake are counted per address ([`HalfOpenByClient`]): from
//! admission until the connection leaves its handshake or goes, so a flood of
//! SYNs that never complete (spoofed) holds at most
//! [`MAX_HALF_OPEN_PER_CLIENT`] upstream connections per queue.
//!
//! **RFC 5961.** Each connection's flow carries the sequence space smoltcp
//! has shown ([`device::FlowConn`]); the device judges the client's segments
//! against it before smoltcp sees them (see [`privlink_core::rfc5961`]).
//!
//! **The resolver's TCP side** is one more endpoint, after the real ones,
//! but it connects nothing: its SYNs get a stream from the queue's own
//! resolver at once (`resolver_stream`), which never refuses one, so they
//! hold no half-open slot.
//!
//! **A socket per SYN, recycled.** Each connection gets its own socket with
//! [`SOCKET_BUFFER`] bytes each way (window scaling follows the buffer size);
//! its rings are mapped fresh and cost memory only as far as data has
//! reached into them, and go back to the kernel when freed ([`window::ring`]).
//! A finished connection's socket goes back to a small spare list
//! ([`SPARE_SOCKETS`]) and the next SYN reuses it: `listen()` resets it, so a
//! new connection costs no 2 MiB allocation, zero-fill and page faults (a
//! quarter of the stack's time at a few thousand connections per second).
//!
//! **Stopping.** When the stack stops (its endpoint deleted, privlink
//! stopping) every connection is aborted and every held SYN refused, and one
//! last turn sends the RSTs ([`Stack::reset_all`]): a client is told at once
//! instead of waiting out its timeout on a device that is gone.
//!
//! # Timers and limits
//!
//! - smoltcp's own (retransmission, delayed ACK, keep-alive) come back as
//!   `poll_delay`. A socket whose peer stops ACKing for [`SOCKET_TIMEOUT`]
//!   (300 s) is closed; smoltcp has no SYN-RECEIVED timer otherwise.
//! - A connection's hello deadline (`hello_timeout`, default 10 s): a stream
//!   whose first flight has not passed the SNI check by then is reset.
//! - The endpoint's `connect_timeout` (default 10 s), in the connector: the
//!   client gets an RST.
//! - The guards' (conntrack expiry, the flow-log window) and the shapers'
//!   (a connection's retry time, autoscaling every second).
//! - [`MAX_HALF_OPEN`] connects in flight and `max_connections` per endpoint:
//!   new SYNs past them are dropped and counted (`connection_limit`).
//! - [`MAX_HALF_OPEN_PER_CLIENT`] half-open connections per client address:
//!   that client's new SYNs past it are dropped and counted (`client_limit`).
//! - Challenge ACKs: smoltcp sends at most one per connection per second;
//!   more challenges within it are discarded without a reply.
//! - [`READ_BUDGET`] frames per poll: the loop yields, then comes back at once.

pub mod device;
pub mod link;
pub mod report;
mod resolver_stream;
pub mod shaping;
pub mod window;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use privlink_core::admission::{
    Admission, HalfOpenByClient, Room, SynVerdict, MAX_HALF_OPEN, MAX_HALF_OPEN_PER_CLIENT,
};
use privlink_core::flow::FlowKey;
use privlink_core::log_limit::LogLimit;
use privlink_core::model::{Plan, Upstream};
use privlink_core::packet::{self, PacketMeta};
use privlink_core::pipeline::Pipeline;
use privlink_core::policy::SniPolicy;
use privlink_core::rfc5961::{Segment, SeqSpace};
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketSet};
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpEndpoint};
use tokio::sync::mpsc;

use self::device::{capabilities, CapsOnly, FlowConn, Flows, HeldSyn, LinkDevice};
use self::link::Link;
use self::report::{ConnStats, ConnectionSlots, Report};
pub use self::resolver_stream::RelayTarget;
use self::shaping::{earliest, Shapers};
pub use self::window::SOCKET_BUFFER;
use crate::edge::guard::EniGuard;
use crate::edge::ready::ReadySet;
use crate::edge::relay::{Conn, ConnId, ConnState, Progress};
use crate::edge::resolver::Resolver;
use crate::edge::tun::{Tun, VNET_HDR_LEN};
use crate::edge::upstream::{Connected, Connector, TcpConnector};

/// Closed sockets kept for reuse. Each may hold up to 2 × [`SOCKET_BUFFER`] of
/// touched memory, so the list is short: it serves a connection rate, not a
/// connection count.
pub const SPARE_SOCKETS: usize = 16;
/// A socket whose peer stops ACKing for this long is closed.
pub const SOCKET_TIMEOUT: Duration = Duration::from_secs(300);
/// Link frames read per poll before the loop yields.
const READ_BUDGET: usize = 256;
/// The largest packet a TUN hands up (IPv4 total length is 16 bits).
const MAX_PACKET: usize = 65536;
/// A link frame: the vnet header, then a packet.
const MAX_FRAME: usize = VNET_HDR_LEN + MAX_PACKET;

/// The stack's view of one endpoint, derived from the plan's.
#[derive(Debug, Clone)]
struct EndpointRuntime {
    upstream: Upstream,
    connect_timeout: Duration,
    max_connections: usize,
    /// Room and policy for new flows.
    admission: Admission,
    /// The SNI policy first flights must pass, and their time limit (`None`: carry anything).
    sni: Option<(Arc<SniPolicy>, Duration)>,
}

/// What a turn left to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Turn {
    /// Run another turn at once: something moved, or the link was not drained.
    pub busy: bool,
    /// When there is work next, if nothing arrives before.
    pub next: Option<Instant>,
}

/// The ENI's TCP stack for one queue, and everything it carries.
pub struct Stack<L, C: Connector> {
    link: L,
    connector: C,
    resolver: Resolver,
    guard: EniGuard,
    shapers: Shapers,
    /// ENIs `0..guarded` are guarded; the resolver routes after them are not.
    guarded: usize,
    iface: Interface,
    sockets: SocketSet<'static>,
    /// Closed sockets to reuse, at most [`SPARE_SOCKETS`].
    spare: Vec<tcp::Socket<'static>>,
    pipeline: Pipeline,
    endpoints: Vec<EndpointRuntime>,
    /// The resolver's TCP side: the endpoint index after the real ones.
    resolver_endpoint: usize,
    /// Flows the resolver reset, to abort (reused).
    resolver_resets: Vec<FlowKey>,
    slots: ConnectionSlots,
    conns: Vec<Option<Conn<RelayTarget<C::Stream>>>>,
    free_ids: Vec<ConnId>,
    by_flow: Flows,
    held: HashMap<FlowKey, HeldSyn>,
    /// Half-open connections per client: held SYNs and handshakes not done.
    half_open: HalfOpenByClient,
    new_syns: Vec<HeldSyn>,
    ready: Arc<ReadySet<ConnId>>,
    ready_ids: Vec<ConnId>,
    /// Hello deadlines of connections whose first flight has not passed yet.
    /// Stale entries (the flight passed, the id was reused) cost one service pass.
    deadlines: BinaryHeap<Reverse<(Instant, ConnId)>>,
    /// Connections whose socket waits for a pending RST or FIN to go out.
    closing: Vec<ConnId>,
    connect_tx: mpsc::Sender<Connected<C::Stream>>,
    connect_rx: mpsc::Receiver<Connected<C::Stream>>,
    rx_buf: Box<[u8]>,
    tx_buf: Box<[u8]>,
    mtu: usize,
    stats: ConnStats,
    /// The line budgets of the clients the stack resets.
    resets_log: ResetsLog,
    /// smoltcp's time zero.
    epoch: Instant,
}

/// Why the stack resets a client, each with its line budget: one `info`
/// line per reset, naming the ENI and the client, within the budget.
#[derive(Default)]
struct ResetsLog {
    /// The upstream refused, was unreachable or timed out.
    upstream: LogLimit,
    /// The stream failed the SNI check.
    sni: LogLimit,
    /// The endpoint policy denies the client.
    policy: LogLimit,
}

/// Which event ended a wait.
enum Wake<S> {
    Shutdown,
    Connected(Connected<S>),
    Other,
}

impl<L: Link, C: Connector> Stack<L, C> {
    /// A stack for `plan`'s ENIs on `link` (one queue of the TUN). DNS to the
    /// resolver addresses goes to `resolver`, UDP and TCP port 53 alike.
    /// `slots` counts connections per endpoint across all queues;
    /// `connector` opens upstream connections; `now` is time zero.
    pub fn new(
        plan: &Plan,
        link: L,
        resolver: Resolver,
        guard: EniGuard,
        slots: ConnectionSlots,
        connector: C,
        now: Instant,
    ) -> Result<Stack<L, C>, privlink_core::policy::SniPatternError> {
        // DNS over TCP is one more "endpoint", after the real ones.
        let (enis, guarded) = plan.eni_routes();
        let dns_endpoint = plan.endpoints.len();
        let mtu = plan.vpc.mtu as usize;
        let sources = plan.vpc_sources();
        let pipeline = Pipeline::new(enis, plan.vpc.resolvers(), sources, plan.vpc.mtu);

        let mut config = IfaceConfig::new(HardwareAddress::Ip);
        config.random_seed = u64::from_ne_bytes(random_bytes());
        let mut iface = Interface::new(config, &mut CapsOnly(capabilities(mtu, link.offloads())), SmolInstant::ZERO);
        // Every ENI address is accepted (the pipeline already dropped everything
        // else); sockets listen on exact ENI addresses. Medium::Ip needs no
        // neighbour, only a route, so a default route through the VPC router.
        iface.set_any_ip(true);
        let router = plan.vpc.router;
        iface.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::Ipv4(router), 32)).expect("one address fits");
        });
        iface.routes_mut().add_default_ipv4_route(router).expect("one route fits");

        let endpoints: Vec<EndpointRuntime> = plan
            .endpoints
            .iter()
            .map(|e| {
                Ok(EndpointRuntime {
                    upstream: e.upstream.clone(),
                    connect_timeout: e.settings.connect_timeout,
                    max_connections: e.settings.max_connections,
                    admission: Admission {
                        policy: Some(e.settings.policy.clone()),
                        vpc_id: plan.vpc.id.clone(),
                        vpce_id: e.id.clone(),
                    },
                    sni: Some(Arc::new(e.sni_policy()?))
                        .filter(|p| !p.allows_everything())
                        .map(|p| (p, e.settings.hello_timeout)),
                })
            })
            .collect::<Result<_, privlink_core::policy::SniPatternError>>()?;
        let (connect_tx, connect_rx) = mpsc::channel(MAX_HALF_OPEN);
        Ok(Stack {
            link,
            connector,
            resolver,
            guard,
            shapers: Shapers::new(plan, now),
            guarded,
            iface,
            sockets: SocketSet::new(Vec::new()),
            spare: Vec::new(),
            pipeline,
            endpoints,
            resolver_endpoint: dns_endpoint,
            resolver_resets: Vec::new(),
            slots,
            conns: Vec::new(),
            free_ids: Vec::new(),
            by_flow: Flows::with_hasher(privlink_core::flow::SeededState(u64::from_ne_bytes(random_bytes()))),
            held: HashMap::new(),
            half_open: HalfOpenByClient::default(),
            new_syns: Vec::new(),
            ready: Arc::new(ReadySet::default()),
            ready_ids: Vec::new(),
            deadlines: BinaryHeap::new(),
            closing: Vec::new(),
            connect_tx,
            connect_rx,
            rx_buf: vec![0u8; MAX_FRAME].into_boxed_slice(),
            tx_buf: vec![0u8; MAX_FRAME].into_boxed_slice(),
            mtu,
            stats: ConnStats::default(),
            resets_log: ResetsLog::default(),
            epoch: now,
        })
    }

    /// The link, for a test to feed and drain.
    pub fn link_mut(&mut self) -> &mut L {
        &mut self.link
    }

    /// What the stack has counted so far.
    pub fn report(&self) -> Report {
        // Bytes of the connections still open count too (once per connection, not per packet).
        let mut conns = self.stats.clone();
        for c in self.conns.iter().flatten() {
            conns.bytes_to_service += c.bytes.0;
            conns.bytes_to_client += c.bytes.1;
        }
        Report {
            counters: self.pipeline.counters.clone(),
            conns,
            dns: self.resolver.counters(),
            forward: self.resolver.forward_counters(),
            dns_tcp: self.resolver.tcp_counters(),
            guard: self.guard.counters,
            accepted_per_queue: vec![self.stats.accepted],
            names: self.resolver.asked().clone(),
            rejected: self.guard.rejected.clone(),
        }
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.by_flow.len()
    }

    /// Half-open connections now, every client's: SYNs whose upstream is
    /// connecting and connections whose client has not finished its handshake.
    pub fn half_open(&self) -> usize {
        self.half_open.total()
    }

    fn smol_now(&self, now: Instant) -> SmolInstant {
        SmolInstant::from_micros(now.saturating_duration_since(self.epoch).as_micros() as i64)
    }

    /// Does everything there is to do at `now` (see the module doc).
    pub fn turn(&mut self, now: Instant) -> io::Result<Turn> {
        self.finish_connects(now)?;
        if self.guard.poll_timeout().is_some_and(|at| at <= now) {
            self.guard.handle_timeout(now);
        }
        let drained = self.poll(None, now)?;
        self.start_connects(now)?;
        // A connector may answer at once (a refusal, or memory in tests).
        let mut moved = self.finish_connects(now)?;
        moved |= self.service_ready(now);
        moved |= self.handle_timers(now);
        moved |= self.turn_resolver(now);
        let mut due = std::mem::take(&mut self.ready_ids);
        let shaper_at = self.shapers.handle_timeout(now, &mut due);
        for &id in &due {
            moved |= self.service(id, now);
        }
        due.clear();
        self.ready_ids = due;
        self.reap_closing();
        if moved || !drained {
            // Another turn comes at once: no need to ask smoltcp, whose
            // `poll_delay` looks at every socket, when it wants to be polled.
            return Ok(Turn { busy: true, next: None });
        }
        let delay = self.iface.poll_delay(self.smol_now(now), &self.sockets);
        let smol_at = delay.map(|d| now + Duration::from_micros(d.total_micros()));
        let mut next = earliest(smol_at, self.guard.poll_timeout());
        next = earliest(next, self.resolver.poll_timeout());
        next = earliest(next, self.deadlines.peek().map(|Reverse((at, _))| *at));
        Ok(Turn { busy: false, next: earliest(next, shaper_at) })
    }

    /// Services the connections whose hello deadline came.
    fn handle_timers(&mut self, now: Instant) -> bool {
        let mut moved = false;
        while let Some(&Reverse((at, id))) = self.deadlines.peek() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            moved |= self.service(id, now);
        }
        moved
    }

    /// One smoltcp poll over the link. `inject` is a held SYN to feed first.
    /// Returns whether the link was read to the end.
    fn poll(&mut self, inject: Option<&[u8]>, now: Instant) -> io::Result<bool> {
        let smol_now = self.smol_now(now);
        let mut dev = LinkDevice {
            link: &mut self.link,
            mtu: self.mtu,
            rx: &mut self.rx_buf,
            tx: &mut self.tx_buf,
            inject,
            pipeline: &mut self.pipeline,
            resolver: &mut self.resolver,
            guard: &mut self.guard,
            guarded: self.guarded,
            now,
            by_flow: &mut self.by_flow,
            stats: &mut self.stats,
            held: &self.held,
            new_syns: &mut self.new_syns,
            budget: READ_BUDGET,
            drained: false,
            error: None,
        };
        self.iface.poll(smol_now, &mut dev, &mut self.sockets);
        let (drained, err) = (dev.drained, dev.error.take());
        match err {
            Some(e) => Err(e),
            None => Ok(drained),
        }
    }

    /// Judges the SYNs the device set aside and starts their upstream
    /// connects; the resolver's are opened at once.
    fn start_connects(&mut self, now: Instant) -> io::Result<()> {
        for syn in std::mem::take(&mut self.new_syns) {
            if syn.endpoint == self.resolver_endpoint {
                self.open_resolver_stream(syn, now)?;
                continue;
            }
            let flow = syn.meta.flow();
            let client = syn.meta.src;
            let ep = &self.endpoints[syn.endpoint];
            let client_half_open = self.half_open.of(client);
            let slot = self.held.len() < MAX_HALF_OPEN
                && client_half_open < MAX_HALF_OPEN_PER_CLIENT
                && self.slots.try_take(syn.endpoint, ep.max_connections);
            let room = Room { half_open: self.held.len(), client_half_open, slot };
            let guard = &mut self.guard;
            let guarded = syn.eni < self.guarded;
            match ep.admission.judge(room, client, || !guarded || guard.reply_leaves(now, syn.eni, &syn.meta)) {
                SynVerdict::Connect => {}
                SynVerdict::Drop(reason) => {
                    if slot {
                        self.slots.give_back(syn.endpoint);
                    }
                    self.pipeline.counters.drop(reason);
                    continue;
                }
                SynVerdict::ReplyRejected => {
                    tracing::debug!(%flow, "the SYN-ACK would be rejected on its way out; connecting nothing");
                    self.slots.give_back(syn.endpoint);
                    continue;
                }
                SynVerdict::Refuse(decision) => {
                    let eni = self.guard.eni_id(syn.eni);
                    log_failure!(
                        self.resets_log.policy,
                        now,
                        "{eni}: RESET client {flow}: endpoint policy: {decision:?}"
                    );
                    self.stats.policy_denied += 1;
                    self.slots.give_back(syn.endpoint);
                    self.refuse(&syn.meta, now);
                    continue;
                }
            }
            tracing::debug!(%flow, upstream = %ep.upstream, "SYN: connecting upstream first");
            self.connector.start(flow, &ep.upstream, ep.connect_timeout, self.connect_tx.clone());
            self.half_open.open(client);
            self.held.insert(flow, syn);
        }
        Ok(())
    }

    /// Takes every connect result that has arrived. Returns whether there was one.
    fn finish_connects(&mut self, now: Instant) -> io::Result<bool> {
        let mut any = false;
        while let Ok(c) = self.connect_rx.try_recv() {
            self.finish_connect(c, now)?;
            any = true;
        }
        Ok(any)
    }

    /// Hands a connected upstream to a new socket, or refuses the client.
    fn finish_connect(&mut self, c: Connected<C::Stream>, now: Instant) -> io::Result<()> {
        let Some(syn) = self.held.remove(&c.flow) else {
            return Ok(());
        };
        let stream = match c.result {
            Ok(s) => s,
            Err(e) => {
                let (eni, flow, up) = (self.guard.eni_id(syn.eni), c.flow, &self.endpoints[syn.endpoint].upstream);
                log_failure!(self.resets_log.upstream, now, "{eni}: RESET client {flow}: upstream {up}: {e}");
                self.slots.give_back(syn.endpoint);
                self.half_open.close(syn.meta.src);
                self.stats.refused += 1;
                self.refuse(&syn.meta, now);
                return Ok(());
            }
        };
        let sni = self.endpoints[syn.endpoint].sni.clone();
        self.open(syn, RelayTarget::Service(stream), sni, now)
    }

    /// Gives `syn`'s flow a socket relaying to `stream` (first flights
    /// checked against `sni`, if any) and feeds it the SYN.
    fn open(
        &mut self,
        syn: HeldSyn,
        stream: RelayTarget<C::Stream>,
        sni: Option<(Arc<SniPolicy>, Duration)>,
        now: Instant,
    ) -> io::Result<()> {
        let flow = syn.meta.flow();
        let mut sock = self.spare.pop().unwrap_or_else(|| tcp::Socket::new(window::ring(), window::ring()));
        sock.set_nagle_enabled(false);
        sock.set_timeout(Some(smoltcp::time::Duration::from_secs(SOCKET_TIMEOUT.as_secs())));
        let local = IpEndpoint::new(IpAddress::Ipv4(syn.meta.dst), syn.meta.dst_port);
        // A spare socket is Closed: `listen` resets it (rings, sequence state, timers).
        sock.listen(local).expect("a fresh or closed socket listens");
        let handle = self.sockets.add(sock);
        let id = self.free_ids.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        });
        let mut conn = Conn::new(id, handle, flow, syn.endpoint, syn.eni, stream, self.ready.clone(), sni, now);
        if let Some(at) = conn.hello_deadline() {
            self.deadlines.push(Reverse((at, id)));
        }
        conn.share = self.shapers.register(syn.eni, id);
        self.conns[id] = Some(conn);
        let seq = SeqSpace::new(&Segment::of(&syn.meta), packet::window_scale(&syn.bytes));
        self.by_flow.insert(flow, FlowConn { id, seq });
        self.poll(Some(&syn.bytes), now)?;
        let sock = self.sockets.get_mut::<tcp::Socket>(handle);
        if sock.state() == State::Listen {
            // smoltcp did not take the SYN; never leave a listener that could take another's.
            tracing::debug!(%flow, "held SYN not accepted; the client will retry");
            self.remove(id);
            return Ok(());
        }
        self.stats.accepted += 1;
        self.service(id, now);
        Ok(())
    }

    /// Services the connections wakers queued. Returns whether anything moved.
    fn service_ready(&mut self, now: Instant) -> bool {
        let mut ids = std::mem::take(&mut self.ready_ids);
        self.ready.drain_into(&mut ids);
        let mut moved = false;
        for &id in &ids {
            moved |= self.service(id, now);
        }
        ids.clear();
        self.ready_ids = ids;
        moved
    }

    fn service(&mut self, id: ConnId, now: Instant) -> bool {
        let Some(conn) = self.conns.get_mut(id).and_then(Option::as_mut) else {
            return false;
        };
        let sock = self.sockets.get_mut::<tcp::Socket>(conn.handle);
        let shaping = self.shapers.shaping(conn.eni, conn.share);
        let handshake = conn.state() == ConnState::Handshake;
        let progress = conn.service(sock, shaping, now);
        if handshake && conn.state() != ConnState::Handshake {
            self.half_open.close(conn.flow.client.0);
        }
        if let Some(why) = conn.denied.take() {
            self.stats.sni_denied += 1;
            let (eni, flow) = (self.guard.eni_id(conn.eni), conn.flow);
            log_failure!(self.resets_log.sni, now, "{eni}: RESET client {flow}: SNI check: {why}");
        }
        match progress {
            Progress::Idle => false,
            Progress::Moved => true,
            Progress::Finished => {
                if !self.closing.contains(&id) {
                    self.closing.push(id);
                }
                true
            }
        }
    }

    /// Resets every connection and every held SYN: the endpoint is going
    /// away (deleted, or privlink stopping), and a client told at once does
    /// not wait out its own timeout on a device that is gone.
    pub fn reset_all(&mut self, now: Instant) -> io::Result<()> {
        for conn in self.conns.iter().flatten() {
            self.sockets.get_mut::<tcp::Socket>(conn.handle).abort();
        }
        let held: Vec<HeldSyn> = self.held.drain().map(|(_, syn)| syn).collect();
        for syn in &held {
            self.refuse(&syn.meta, now);
        }
        // smoltcp sends an aborted socket's RST at its next poll.
        self.turn(now).map(|_| ())
    }

    /// Sends the client of a held SYN an RST (through the egress guards).
    fn refuse(&mut self, syn: &PacketMeta, now: Instant) {
        let mut rst = [0u8; 64];
        let n = packet::emit_rst(syn, &mut rst);
        let Ok(meta) = packet::parse(&rst[..n], false) else { return };
        if self.guard.handle_egress(now, &meta, 0) {
            if let Err(e) = self.link.write_packet(&rst[..n]) {
                tracing::debug!("link write (RST): {e}");
            }
        }
    }

    /// Removes finished connections whose socket has nothing left to send.
    fn reap_closing(&mut self) {
        let mut i = 0;
        while i < self.closing.len() {
            let id = self.closing[i];
            let done = match self.conns[id].as_ref() {
                Some(c) => {
                    let s = self.sockets.get::<tcp::Socket>(c.handle);
                    s.state() == State::TimeWait || s.remote_endpoint().is_none()
                }
                None => true,
            };
            if done {
                self.closing.swap_remove(i);
                self.remove(id);
            } else {
                i += 1;
            }
        }
    }

    fn remove(&mut self, id: ConnId) {
        if let Some(conn) = self.conns[id].take() {
            // TCP is the only socket kind this stack builds.
            let smoltcp::socket::Socket::Tcp(mut sock) = self.sockets.remove(conn.handle);
            if self.spare.len() < SPARE_SOCKETS {
                // Closed, whatever it was (a listener whose SYN was not taken is
                // still open, and `listen` refuses an open socket). Out of the
                // set, the socket sends nothing.
                sock.abort();
                self.spare.push(sock);
            }
            self.by_flow.remove(&conn.flow);
            self.slots.give_back(conn.endpoint);
            if conn.state() == ConnState::Handshake {
                self.half_open.close(conn.flow.client.0);
            }
            if let Some(share) = conn.share {
                self.shapers.unregister(conn.eni, share);
            }
            self.free_ids.push(id);
            self.stats.closed += 1;
            self.stats.bytes_to_service += conn.bytes.0;
            self.stats.bytes_to_client += conn.bytes.1;
            tracing::debug!(flow = %conn.flow, up = conn.bytes.0, down = conn.bytes.1, "connection closed");
        }
    }
}

impl Stack<Tun, TcpConnector> {
    /// Runs on the TUN until `shutdown` resolves; returns the counters.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) -> io::Result<Report> {
        tokio::pin!(shutdown);
        loop {
            let turn = self.turn(Instant::now())?;
            tokio::task::consume_budget().await;
            if turn.busy {
                continue;
            }
            let delay = turn.next.map_or(Duration::from_secs(3600), |at| at.saturating_duration_since(Instant::now()));
            let wake = tokio::select! {
                biased;
                _ = &mut shutdown => Wake::Shutdown,
                Some(c) = self.connect_rx.recv() => Wake::Connected(c),
                g = self.link.readable() => {
                    g?.clear_ready();
                    Wake::Other
                }
                _ = self.ready.notified() => Wake::Other,
                _ = self.resolver.forward_ready() => Wake::Other,
                _ = tokio::time::sleep(delay) => Wake::Other,
            };
            match wake {
                Wake::Shutdown => {
                    self.reset_all(Instant::now())?;
                    break;
                }
                Wake::Connected(c) => self.finish_connect(c, Instant::now())?,
                Wake::Other => {}
            }
        }
        Ok(self.report())
    }
}

fn random_bytes() -> [u8; 8] {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b).expect("the OS has randomness");
    b
}
