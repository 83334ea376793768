//! The stack: smoltcp terminating TCP on the ENI, driven from the TUN.
//!
//! # Theory of operation
//!
//! One task owns one queue of the TUN, a smoltcp `Interface` and
//! `SocketSet`, and every connection the kernel steers to that queue (see
//! [`crate::edge::daemon`] for how flows stay on one queue). Nothing is shared
//! across tasks but the ready list that wakers fill and the channel that
//! upstream connect attempts answer on; across queues, only the flow log and
//! the per-endpoint connection counts ([`ConnectionSlots`]).
//!
//! **The device reads the TUN itself.** When smoltcp asks the device for a
//! packet, the device reads the fd into one reusable buffer, runs the
//! [`Pipeline`] on it and hands smoltcp only what is for the stack; drops are
//! counted on the spot. Transmit writes smoltcp's packet straight to the fd
//! from a second reusable buffer. No queue, no allocation, no copy per packet.
//! A read budget per poll bounds the work one turn may do (smoltcp's "DoS
//! warning"); the loop comes back at once if the TUN was not drained.
//!
//! **Connect first.** A SYN for a new flow never reaches smoltcp at first:
//! the device sets it aside and the stack starts the upstream connection.
//! Retransmitted SYNs meanwhile are absorbed. Only when the upstream is
//! connected does the stack create a socket listening on exactly that ENI
//! address and port, and feed it the held SYN alone, so smoltcp answers
//! SYN-ACK and the listener cannot take another client's SYN (a LISTEN socket
//! accepts any SYN to its port). If the upstream refuses, is unreachable or
//! times out, the client gets an RST built from the held SYN. Holding the SYN
//! outside smoltcp, rather than `pause_synack`, keeps `poll_delay` honest: a
//! paused socket makes smoltcp ask to be polled again at once, forever.
//!
//! **A socket per SYN, recycled.** Each connection gets its own socket with
//! [`SOCKET_BUFFER`] bytes each way (window scaling follows the buffer size);
//! `calloc`ed rings cost memory only as far as data has reached into them.
//! A finished connection's socket goes back to a small spare list
//! ([`SPARE_SOCKETS`]) and the next SYN reuses it: `listen()` resets it, so a
//! new connection costs no 2 MiB allocation, zero-fill and page faults (a
//! quarter of the stack's time at a few thousand connections per second).
//!
//! **The loop:** answer finished connects; poll (ingress from the TUN, egress
//! to it); start connects for new SYNs; service woken connections; and sleep
//! only when the TUN is drained and nothing moved, until the TUN is readable,
//! a connection is woken, a connect finishes, or smoltcp's next timer.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use smoltcp::iface::{Config as IfaceConfig, Interface, SocketSet};
use smoltcp::phy::{Checksum, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpEndpoint};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::edge::guard::{EniGuard, GuardCounters};
use crate::edge::relay::{self, Conn, ConnId, Progress, ReadySet, Shaping};
use crate::edge::resolver::{ForwardCounters, Resolver};
use crate::edge::tun::{self, Tun};
use privlink_core::dns::DnsCounters;
use privlink_core::flow::{Direction as ShapeDir, FlowKey};
use privlink_core::model::{Plan, Upstream};
use privlink_core::packet::{self, DropReason, PacketMeta};
use privlink_core::pipeline::{Counters, EniRoute, Pipeline, Verdict};
use privlink_core::policy::{ConnContext, PolicyDecision, PolicyDocument, SniPolicy};
use privlink_core::shaper::{AutoscaleConfig, Autoscaler, EniShaper, ShaperConfig};

/// Bytes in each of a connection's two smoltcp rings. 1 MiB lets the window
/// scale far past 64 KiB; measured: 256 KiB costs throughput at MTU 8500+.
pub const SOCKET_BUFFER: usize = 1 << 20;
/// Closed sockets kept for reuse. Each may hold up to 2 × [`SOCKET_BUFFER`] of
/// touched memory, so the list is short: it serves a connection rate, not a
/// connection count.
pub const SPARE_SOCKETS: usize = 16;
/// Connections whose upstream connect is in flight. Past this, new SYNs are
/// dropped (not reset) so clients retry, as smoltcp PR #1120 proposes.
pub const MAX_HALF_OPEN: usize = 1024;
/// TUN packets read per poll before the loop yields.
const READ_BUDGET: usize = 256;
/// The largest packet a TUN hands up (IPv4 total length is 16 bits).
const MAX_PACKET: usize = 65536;
/// A TUN frame: the vnet header, then a packet.
const MAX_FRAME: usize = tun::VNET_HDR_LEN + MAX_PACKET;

/// Per-endpoint settings the stack needs at run time.
#[derive(Debug, Clone)]
struct EndpointRuntime {
    upstream: Upstream,
    connect_timeout: Duration,
    max_connections: usize,
    /// The endpoint's id, for its policy's `aws:SourceVpce`.
    id: String,
    /// The policy new connections must pass (`None`: the resolver's TCP side).
    policy: Option<PolicyDocument>,
    /// The SNI policy first flights must pass, and their time limit (`None`: carry anything).
    sni: Option<(Arc<SniPolicy>, Duration)>,
}

/// One ENI's shaper and the connections holding a share of it.
struct EniShaping {
    shaper: EniShaper,
    /// By `FlowShare::index()`.
    conns: Vec<Option<ConnId>>,
    /// With `max_bandwidth`: the autoscalers of both directions and the next sample time.
    scale: Option<([Autoscaler; 2], std::time::Instant)>,
}

/// A SYN held while its upstream connects.
struct HeldSyn {
    meta: PacketMeta,
    endpoint: usize,
    eni: usize,
    bytes: Vec<u8>,
}

/// What a finished connect attempt reports.
struct Connected {
    flow: FlowKey,
    result: io::Result<TcpStream>,
}

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
}

privlink_core::counters_add!(ConnStats { accepted, refused, closed, policy_denied, sni_denied });

/// Final report of a stack run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Pipeline counters.
    pub counters: Counters,
    /// Connection statistics.
    pub conns: ConnStats,
    /// The UDP resolver's answers.
    pub dns: DnsCounters,
    /// Its forwarding.
    pub forward: ForwardCounters,
    /// Security group and NACL decisions.
    pub guard: GuardCounters,
    /// Connections accepted by each TUN queue's stack, in queue order.
    pub accepted_per_queue: Vec<u64>,
}

impl Report {
    /// Adds another queue's report to this one.
    pub fn add(&mut self, o: &Report) {
        self.counters.add(&o.counters);
        self.conns.add(&o.conns);
        self.dns.add(&o.dns);
        self.forward.add(&o.forward);
        self.guard.add(&o.guard);
        self.accepted_per_queue.extend_from_slice(&o.accepted_per_queue);
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
    fn try_take(&self, endpoint: usize, max: usize) -> bool {
        self.0[endpoint].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < max).then_some(n + 1)).is_ok()
    }

    fn give_back(&self, endpoint: usize) {
        self.0[endpoint].fetch_sub(1, Ordering::Relaxed);
    }
}

/// The ENI's TCP stack and everything it carries.
pub struct Stack {
    tun: Tun,
    resolver: Resolver,
    guard: EniGuard,
    /// By ENI index; `None` where the endpoint is not shaped.
    shapers: Vec<Option<EniShaping>>,
    vpc_id: String,
    /// ENIs `0..guarded` are guarded; the resolver routes after them are not.
    guarded: usize,
    iface: Interface,
    sockets: SocketSet<'static>,
    /// Closed sockets to reuse, at most [`SPARE_SOCKETS`].
    spare: Vec<tcp::Socket<'static>>,
    pipeline: Pipeline,
    endpoints: Vec<EndpointRuntime>,
    slots: ConnectionSlots,
    conns: Vec<Option<Conn>>,
    free_ids: Vec<ConnId>,
    by_flow: HashMap<FlowKey, ConnId>,
    held: HashMap<FlowKey, HeldSyn>,
    new_syns: Vec<HeldSyn>,
    ready: Arc<ReadySet>,
    ready_ids: Vec<ConnId>,
    /// Connections whose socket waits for a pending RST or FIN to go out.
    closing: Vec<ConnId>,
    connect_tx: mpsc::Sender<Connected>,
    connect_rx: mpsc::Receiver<Connected>,
    rx_buf: Box<[u8]>,
    tx_buf: Box<[u8]>,
    mtu: usize,
    stats: ConnStats,
    epoch: std::time::Instant,
}

/// Which event ended a wait.
enum Wake {
    Shutdown,
    Tun,
    Connected(Connected),
    Ready,
    DnsReply,
    Timer,
}

impl Stack {
    /// A stack for `plan`'s ENIs on `tun` (one queue of it). UDP DNS goes to
    /// `resolver`; TCP port 53 on the resolver addresses is relayed to
    /// `dns_tcp`. `slots` counts connections per endpoint across all queues.
    pub fn new(
        plan: &Plan,
        tun: Tun,
        resolver: Resolver,
        dns_tcp: SocketAddr,
        guard: EniGuard,
        slots: ConnectionSlots,
    ) -> Result<Stack, privlink_core::policy::SniPatternError> {
        let mut enis: Vec<EniRoute> = plan
            .endpoints
            .iter()
            .enumerate()
            .flat_map(|(i, e)| e.enis.iter().map(move |n| EniRoute { ip: n.ip, endpoint: i, ports: e.ports.clone() }))
            .collect();
        let guarded = enis.len();
        // DNS over TCP is one more "endpoint", after the real ones.
        let dns_endpoint = plan.endpoints.len();
        for ip in plan.vpc.resolvers() {
            enis.push(EniRoute { ip, endpoint: dns_endpoint, ports: vec![53] });
        }
        let mtu = plan.vpc.mtu as usize;
        let pipeline = Pipeline::new(enis, plan.vpc.resolvers(), plan.vpc.mtu);
        let rx_buf = vec![0u8; MAX_FRAME].into_boxed_slice();
        let tx_buf = vec![0u8; MAX_FRAME].into_boxed_slice();
        let epoch = std::time::Instant::now();

        let mut config = IfaceConfig::new(HardwareAddress::Ip);
        config.random_seed = u64::from_ne_bytes(random_bytes());
        let mut iface = Interface::new(config, &mut CapsOnly(capabilities(mtu)), SmolInstant::ZERO);
        // Every ENI address is accepted (the pipeline already dropped everything
        // else); sockets listen on exact ENI addresses. Medium::Ip needs no
        // neighbour, only a route, so a default route through the VPC router.
        iface.set_any_ip(true);
        let router = plan.vpc.router;
        iface.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::Ipv4(router), 32)).expect("one address fits");
        });
        iface.routes_mut().add_default_ipv4_route(router).expect("one route fits");

        let mut endpoints: Vec<EndpointRuntime> = plan
            .endpoints
            .iter()
            .map(|e| {
                Ok(EndpointRuntime {
                    upstream: e.upstream.clone(),
                    connect_timeout: e.connect_timeout,
                    max_connections: e.max_connections,
                    id: e.id.clone(),
                    policy: Some(e.policy.clone()),
                    sni: Some(Arc::new(e.sni_policy()?))
                        .filter(|p| !p.allows_everything())
                        .map(|p| (p, e.hello_timeout)),
                })
            })
            .collect::<Result<_, privlink_core::policy::SniPatternError>>()?;
        let now = std::time::Instant::now();
        let shapers = plan
            .endpoints
            .iter()
            .flat_map(|e| e.enis.iter().map(move |_| e.bandwidth))
            .map(|bw| {
                bw.map(|b| EniShaping {
                    shaper: EniShaper::new(ShaperConfig::symmetric(b.rate, b.burst)),
                    conns: Vec::new(),
                    scale: b.max.map(|max| {
                        let cfg = AutoscaleConfig::new(b.rate, max);
                        ([Autoscaler::new(cfg), Autoscaler::new(cfg)], now + Duration::from_secs(1))
                    }),
                })
            })
            .collect();
        endpoints.push(EndpointRuntime {
            upstream: Upstream { host: dns_tcp.ip().to_string(), port: dns_tcp.port() },
            connect_timeout: Duration::from_secs(2),
            max_connections: MAX_HALF_OPEN,
            id: String::new(),
            policy: None,
            sni: None,
        });
        let (connect_tx, connect_rx) = mpsc::channel(MAX_HALF_OPEN);
        Ok(Stack {
            tun,
            resolver,
            guard,
            shapers,
            vpc_id: plan.vpc.id.clone(),
            guarded,
            iface,
            sockets: SocketSet::new(Vec::new()),
            spare: Vec::new(),
            pipeline,
            endpoints,
            slots,
            conns: Vec::new(),
            free_ids: Vec::new(),
            by_flow: HashMap::new(),
            held: HashMap::new(),
            new_syns: Vec::new(),
            ready: Arc::new(ReadySet::default()),
            ready_ids: Vec::new(),
            closing: Vec::new(),
            connect_tx,
            connect_rx,
            rx_buf,
            tx_buf,
            mtu,
            stats: ConnStats::default(),
            epoch,
        })
    }

    fn now(&self) -> SmolInstant {
        SmolInstant::from_micros(self.epoch.elapsed().as_micros() as i64)
    }

    /// Runs until `shutdown` resolves; returns the counters.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) -> io::Result<Report> {
        tokio::pin!(shutdown);
        loop {
            let drained = self.poll(None)?;
            self.start_connects();
            let mut moved = self.service_ready();
            let wall = std::time::Instant::now();
            let (shaped, shaper_at) = self.handle_shaper_timeouts(wall);
            moved |= shaped;
            self.reap_closing();
            tokio::task::consume_budget().await;
            if moved || !drained {
                continue;
            }
            let mut delay =
                self.iface.poll_delay(self.now(), &self.sockets).map(|d| Duration::from_micros(d.total_micros()));
            if let Some(at) = shaper_at {
                delay = Some(
                    delay.map_or(at.saturating_duration_since(wall), |d| d.min(at.saturating_duration_since(wall))),
                );
            }
            if let Some(at) = self.guard.poll_timeout() {
                if at <= wall {
                    self.guard.handle_timeout(wall);
                    continue;
                }
                delay = Some(delay.map_or(at - wall, |d| d.min(at - wall)));
            }
            let wake = tokio::select! {
                biased;
                _ = &mut shutdown => Wake::Shutdown,
                Some(c) = self.connect_rx.recv() => Wake::Connected(c),
                g = self.tun.readable() => {
                    g?.clear_ready();
                    Wake::Tun
                }
                _ = self.ready.notified() => Wake::Ready,
                r = self.resolver.forward_readable() => {
                    r?;
                    Wake::DnsReply
                }
                _ = tokio::time::sleep(delay.unwrap_or(Duration::from_secs(3600))) => Wake::Timer,
            };
            match wake {
                Wake::Shutdown => break,
                Wake::Connected(c) => {
                    self.finish_connect(c)?;
                    while let Ok(c) = self.connect_rx.try_recv() {
                        self.finish_connect(c)?;
                    }
                }
                Wake::DnsReply => {
                    let fd = self.tun.raw_fd();
                    self.resolver.handle_forward_replies(std::time::Instant::now(), fd, &mut self.tx_buf);
                }
                Wake::Tun | Wake::Ready | Wake::Timer => {}
            }
        }
        Ok(Report {
            counters: self.pipeline.counters.clone(),
            conns: self.stats.clone(),
            dns: self.resolver.counters(),
            forward: self.resolver.forward,
            guard: self.guard.counters,
            accepted_per_queue: vec![self.stats.accepted],
        })
    }

    /// One smoltcp poll over the TUN. `inject` is a held SYN to feed first.
    /// Returns whether the TUN was read to `EAGAIN`.
    fn poll(&mut self, inject: Option<&[u8]>) -> io::Result<bool> {
        let now = self.now();
        let mut dev = TunDevice {
            fd: self.tun.raw_fd(),
            mtu: self.mtu,
            rx: &mut self.rx_buf,
            tx: &mut self.tx_buf,
            inject,
            pipeline: &mut self.pipeline,
            resolver: &mut self.resolver,
            guard: &mut self.guard,
            guarded: self.guarded,
            clock: std::time::Instant::now(),
            by_flow: &self.by_flow,
            held: &self.held,
            new_syns: &mut self.new_syns,
            budget: READ_BUDGET,
            drained: false,
            error: None,
        };
        self.iface.poll(now, &mut dev, &mut self.sockets);
        let (drained, err) = (dev.drained, dev.error.take());
        match err {
            Some(e) => Err(e),
            None => Ok(drained),
        }
    }

    /// Starts upstream connects for the SYNs the device set aside.
    fn start_connects(&mut self) {
        for syn in std::mem::take(&mut self.new_syns) {
            let flow = syn.meta.flow();
            let ep = &mut self.endpoints[syn.endpoint];
            if self.held.len() >= MAX_HALF_OPEN || !self.slots.try_take(syn.endpoint, ep.max_connections) {
                self.pipeline.counters.drop(DropReason::ConnectionLimit);
                continue;
            }
            if let Some(policy) = &ep.policy {
                let ctx = ConnContext { source_ip: syn.meta.src, vpc_id: &self.vpc_id, vpce_id: &ep.id };
                let decision = policy.evaluate(&ctx);
                if decision != PolicyDecision::Allow {
                    tracing::info!(%flow, "endpoint policy: {decision:?}; refusing the client");
                    self.stats.policy_denied += 1;
                    self.slots.give_back(syn.endpoint);
                    self.refuse(&syn.meta);
                    continue;
                }
            }
            let (upstream, timeout, tx) = (ep.upstream.clone(), ep.connect_timeout, self.connect_tx.clone());
            tracing::debug!(%flow, %upstream, "SYN: connecting upstream first");
            self.held.insert(flow, syn);
            tokio::spawn(async move {
                let result = relay::connect(&upstream, timeout).await;
                let _ = tx.send(Connected { flow, result }).await;
            });
        }
    }

    /// Hands a connected upstream to a new socket, or refuses the client.
    fn finish_connect(&mut self, c: Connected) -> io::Result<()> {
        let Some(syn) = self.held.remove(&c.flow) else {
            return Ok(());
        };
        let stream = match c.result {
            Ok(s) => s,
            Err(e) => {
                tracing::info!(flow = %c.flow, "upstream {}: {e}; refusing the client", self.endpoints[syn.endpoint].upstream);
                self.slots.give_back(syn.endpoint);
                self.stats.refused += 1;
                self.refuse(&syn.meta);
                return Ok(());
            }
        };
        let mut sock = self.spare.pop().unwrap_or_else(|| {
            tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]),
                tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]),
            )
        });
        sock.set_nagle_enabled(false);
        // A peer that stops ACKing for this long is gone (smoltcp has no SYN-RECEIVED timer otherwise).
        sock.set_timeout(Some(smoltcp::time::Duration::from_secs(300)));
        let local = IpEndpoint::new(IpAddress::Ipv4(syn.meta.dst), syn.meta.dst_port);
        // A spare socket is Closed: `listen` resets it (rings, sequence state, timers).
        sock.listen(local).expect("a fresh or closed socket listens");
        let handle = self.sockets.add(sock);
        let id = self.free_ids.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        });
        let sni = self.endpoints[syn.endpoint].sni.clone();
        let mut conn = Conn::new(
            id,
            handle,
            c.flow,
            syn.endpoint,
            syn.eni,
            stream,
            self.ready.clone(),
            sni,
            std::time::Instant::now(),
        );
        if let Some(Some(sh)) = self.shapers.get_mut(syn.eni) {
            let share = sh.shaper.register();
            if sh.conns.len() <= share.index() {
                sh.conns.resize(share.index() + 1, None);
            }
            sh.conns[share.index()] = Some(id);
            conn.share = Some(share);
        }
        self.conns[id] = Some(conn);
        self.by_flow.insert(c.flow, id);
        self.poll(Some(&syn.bytes))?;
        let sock = self.sockets.get_mut::<tcp::Socket>(handle);
        if sock.state() == State::Listen {
            // smoltcp did not take the SYN; never leave a listener that could take another's.
            tracing::debug!(flow = %c.flow, "held SYN not accepted; the client will retry");
            self.remove(id);
            return Ok(());
        }
        self.stats.accepted += 1;
        self.service(id);
        Ok(())
    }

    /// Services the connections wakers queued. Returns whether anything moved.
    fn service_ready(&mut self) -> bool {
        let mut ids = std::mem::take(&mut self.ready_ids);
        self.ready.drain_into(&mut ids);
        let mut moved = false;
        for &id in &ids {
            moved |= self.service(id);
        }
        ids.clear();
        self.ready_ids = ids;
        moved
    }

    fn service(&mut self, id: ConnId) -> bool {
        let Some(conn) = self.conns.get_mut(id).and_then(Option::as_mut) else {
            return false;
        };
        let sock = self.sockets.get_mut::<tcp::Socket>(conn.handle);
        let shaping = match (self.shapers.get_mut(conn.eni), conn.share) {
            (Some(Some(sh)), Some(flow)) => Some(Shaping { shaper: &mut sh.shaper, flow }),
            _ => None,
        };
        let progress = conn.service(sock, shaping, std::time::Instant::now());
        if conn.denied.take().is_some() {
            self.stats.sni_denied += 1;
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

    /// Sends the client of a held SYN an RST (through the egress guards).
    fn refuse(&mut self, syn: &PacketMeta) {
        let mut rst = [0u8; 64];
        let n = packet::emit_rst(syn, &mut rst);
        if self.guard.handle_egress(std::time::Instant::now(), &rst[..n]) {
            if let Err(e) = tun::write_packet(self.tun.raw_fd(), &rst[..n]) {
                tracing::debug!("TUN write (RST): {e}");
            }
        }
    }

    /// Shaper timers: services connections whose retry time came, steps
    /// autoscaling. Returns whether anything moved, and the next time there is work.
    fn handle_shaper_timeouts(&mut self, now: std::time::Instant) -> (bool, Option<std::time::Instant>) {
        let mut next: Option<std::time::Instant> = None;
        let mut due = std::mem::take(&mut self.ready_ids);
        for sh in self.shapers.iter_mut().flatten() {
            let conns = &sh.conns;
            sh.shaper.handle_timeout(now, |f| {
                if let Some(Some(id)) = conns.get(f.index()) {
                    due.push(*id);
                }
            });
            if let Some((scalers, at)) = sh.scale.as_mut() {
                if *at <= now {
                    for (i, dir) in [ShapeDir::Ingress, ShapeDir::Egress].into_iter().enumerate() {
                        let saturated = sh.shaper.take_saturated(dir);
                        sh.shaper.set_rate(dir, scalers[i].handle_sample(now, saturated));
                    }
                    *at = now + Duration::from_secs(1);
                }
                next = Some(next.map_or(*at, |n| n.min(*at)));
            }
            if let Some(t) = sh.shaper.poll_timeout() {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        let mut moved = false;
        for &id in &due {
            moved |= self.service(id);
        }
        due.clear();
        self.ready_ids = due;
        (moved, next)
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
            if let (Some(Some(sh)), Some(share)) = (self.shapers.get_mut(conn.eni), conn.share) {
                sh.shaper.unregister(share);
                sh.conns[share.index()] = None;
            }
            self.free_ids.push(id);
            self.stats.closed += 1;
            tracing::debug!(flow = %conn.flow, up = conn.bytes.0, down = conn.bytes.1, "connection closed");
        }
    }
}

fn random_bytes() -> [u8; 8] {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b).expect("the OS has randomness");
    b
}

/// smoltcp's view of the TUN for one poll: reads run the pipeline, writes go
/// straight to the fd.
struct TunDevice<'a> {
    fd: RawFd,
    mtu: usize,
    rx: &'a mut [u8],
    tx: &'a mut [u8],
    inject: Option<&'a [u8]>,
    pipeline: &'a mut Pipeline,
    resolver: &'a mut Resolver,
    guard: &'a mut EniGuard,
    guarded: usize,
    /// Wall-clock instant of this poll, for the resolver's cache and timeouts.
    clock: std::time::Instant,
    by_flow: &'a HashMap<FlowKey, ConnId>,
    held: &'a HashMap<FlowKey, HeldSyn>,
    new_syns: &'a mut Vec<HeldSyn>,
    budget: usize,
    drained: bool,
    error: Option<io::Error>,
}

impl TunDevice<'_> {
    fn tx_token(&mut self) -> TxToken<'_> {
        TxToken { fd: self.fd, buf: self.tx, gso_size: 0, guard: Some((self.guard, self.clock)) }
    }

    /// Reads until a packet for smoltcp turns up; returns its length. The
    /// packet sits in `rx` after the vnet header.
    fn next_for_stack(&mut self) -> Option<usize> {
        while self.budget > 0 {
            self.budget -= 1;
            let (hdr, n) = match tun::read_packet(self.fd, self.rx) {
                Ok(Some(r)) => r,
                Ok(None) => {
                    self.drained = true;
                    return None;
                }
                Err(e) => {
                    self.error = Some(e);
                    return None;
                }
            };
            let pkt = &self.rx[tun::VNET_HDR_LEN..][..n];
            // A kernel superpacket (offload) is checked against the MTU by its segment size.
            let gso_size = if hdr.is_gso() { hdr.gso_size.max(1) } else { 0 };
            match self.pipeline.handle_segmented(pkt, !hdr.checksum_trusted(), gso_size) {
                Verdict::ToStack { meta, endpoint, eni } => {
                    if eni < self.guarded && !self.guard.handle_ingress(self.clock, eni, &meta) {
                        continue;
                    }
                    let flow = meta.flow();
                    if meta.is_syn() && !self.by_flow.contains_key(&flow) {
                        // A new flow, or a retransmitted SYN while its upstream connects.
                        if !self.held.contains_key(&flow) && !self.new_syns.iter().any(|s| s.meta.flow() == flow) {
                            self.new_syns.push(HeldSyn { meta, endpoint, eni, bytes: pkt.to_vec() });
                        }
                        continue;
                    }
                    return Some(n);
                }
                Verdict::ToDns(meta) => {
                    self.resolver.handle_udp(self.clock, &meta, meta.payload(pkt), self.fd, self.tx)
                }
                Verdict::Drop(_) => {}
            }
        }
        None
    }
}

struct RxToken<'a>(&'a [u8]);

impl smoltcp::phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

struct TxToken<'a> {
    fd: RawFd,
    buf: &'a mut [u8],
    /// Payload bytes per segment when smoltcp hands over a superpacket (TSO); 0 if not one.
    gso_size: u16,
    /// `None` only for the capabilities-only device, which never transmits.
    guard: Option<(&'a mut EniGuard, std::time::Instant)>,
}

impl smoltcp::phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let frame = &mut self.buf[..tun::VNET_HDR_LEN + len];
        let (hdr, pkt) = frame.split_at_mut(tun::VNET_HDR_LEN);
        let r = f(pkt);
        let pass = match self.guard {
            Some((guard, now)) => guard.handle_egress(now, pkt),
            None => false,
        };
        if pass {
            // smoltcp leaves TCP checksums to the device: the kernel finishes
            // them, and cuts a superpacket into `gso_size` segments.
            let vnet = tun::VnetHdr::for_egress(pkt, self.gso_size);
            vnet.write(hdr.try_into().expect("10 bytes"));
            if let Err(e) = tun::write_frame(self.fd, frame) {
                tracing::debug!("TUN write: {e}");
            }
        }
        r
    }

    fn set_meta(&mut self, meta: smoltcp::phy::PacketMeta) {
        self.gso_size = meta.segmentation_offload_size.map_or(0, |s| s.get());
    }
}

impl Device for TunDevice<'_> {
    type RxToken<'b>
        = RxToken<'b>
    where
        Self: 'b;
    type TxToken<'b>
        = TxToken<'b>
    where
        Self: 'b;

    fn receive(&mut self, _now: SmolInstant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        if let Some(p) = self.inject.take() {
            return Some((RxToken(p), self.tx_token()));
        }
        let n = self.next_for_stack()?;
        let tx = TxToken { fd: self.fd, buf: self.tx, gso_size: 0, guard: Some((self.guard, self.clock)) };
        Some((RxToken(&self.rx[tun::VNET_HDR_LEN..][..n]), tx))
    }

    fn transmit(&mut self, _now: SmolInstant) -> Option<TxToken<'_>> {
        Some(self.tx_token())
    }

    fn capabilities(&self) -> DeviceCapabilities {
        capabilities(self.mtu)
    }
}

/// The largest TCP superpacket smoltcp may hand the device: the IPv4 total
/// length is 16 bits, and the kernel segments up to 64 KiB.
const MAX_TSO: usize = 65535;

/// Bytes per unit of the receive window smoltcp advertises: it scales the
/// window by the ring size (shift = bits of the capacity − 16, as in smoltcp).
const WINDOW_UNIT: usize = 1 << (usize::BITS - SOCKET_BUFFER.leading_zeros()).saturating_sub(16);

/// smoltcp's MTU: the ENI's, trimmed so the MSS it advertises (MTU − 40) is a
/// whole number of window units. smoltcp rounds its window down to a unit on
/// every ACK, so after a segment of any other size the window's right edge
/// moves back by a few bytes; a client that had filled the window then has
/// its last bytes trimmed and recovers them with a SACK retransmission and a
/// smaller congestion window. Full segments of a whole number of units keep
/// the edge in place. Measured, single stream up, alternating runs: MTU 1500
/// 17.8 → 19.5 Gbit/s, 8500 17.3 → 18.9, 65520 22.7 → 23.1; sender
/// retransmits 5–14 per 4 s run → 0. The cost: at most 31 bytes per segment.
fn stack_mtu(mtu: usize) -> usize {
    const HEADERS: usize = 40;
    mtu - (mtu - HEADERS) % WINDOW_UNIT
}

/// The MTU is the ENI's (see [`stack_mtu`]): smoltcp advertises its MSS from
/// it, and the device cuts superpackets to it. Received superpackets (the
/// kernel's, see [`tun::VnetHdr`]) are larger; smoltcp does not check received sizes.
fn capabilities(mtu: usize) -> DeviceCapabilities {
    let mut caps = DeviceCapabilities::default();
    caps.medium = Medium::Ip;
    caps.max_transmission_unit = stack_mtu(mtu);
    // The pipeline verified incoming checksums (or the kernel vouched for
    // them); smoltcp computes IPv4 header checksums and leaves TCP's to the
    // device (the kernel completes them from the partial sum we write).
    let mut sums = ChecksumCapabilities::default();
    sums.ipv4 = Checksum::Tx;
    sums.tcp = Checksum::None;
    caps.checksum = sums;
    caps.segmentation.tcpv4 = std::num::NonZeroUsize::new(MAX_TSO);
    caps
}

/// A device that only describes itself, to build the `Interface`.
struct CapsOnly(DeviceCapabilities);

impl Device for CapsOnly {
    type RxToken<'b>
        = RxToken<'b>
    where
        Self: 'b;
    type TxToken<'b>
        = TxToken<'b>
    where
        Self: 'b;
    fn receive(&mut self, _now: SmolInstant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        None
    }
    fn transmit(&mut self, _now: SmolInstant) -> Option<TxToken<'_>> {
        None
    }
    fn capabilities(&self) -> DeviceCapabilities {
        self.0.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_of_two_queues_add_up() {
        let mut a = Report::default();
        a.counters.to_stack = 5;
        a.counters.drop(DropReason::Ipv6);
        a.conns = ConnStats { accepted: 3, refused: 1, closed: 2, policy_denied: 0, sni_denied: 4 };
        a.dns.queries = 7;
        a.forward.sent = 2;
        a.guard.nacl_egress = 1;
        a.accepted_per_queue = vec![3];
        let mut b = a.clone();
        b.counters.drop(DropReason::Ipv6);
        b.conns.accepted = 10;
        b.accepted_per_queue = vec![10];
        a.add(&b);
        assert_eq!((a.counters.to_stack, a.counters.dropped(DropReason::Ipv6)), (10, 3));
        assert_eq!(a.conns, ConnStats { accepted: 13, refused: 2, closed: 4, policy_denied: 0, sni_denied: 8 });
        assert_eq!((a.dns.queries, a.forward.sent, a.guard.nacl_egress), (14, 4, 2));
        assert_eq!(a.accepted_per_queue, vec![3, 10]);
    }

    #[test]
    fn the_advertised_mss_is_a_whole_number_of_window_units() {
        assert_eq!(WINDOW_UNIT, 32, "1 MiB rings scale the window by 2^5");
        for mtu in [576, 1280, 1500, 8500, 9001, 65520, 65535] {
            let mss = stack_mtu(mtu) - 40;
            assert_eq!(mss % WINDOW_UNIT, 0, "MTU {mtu}: MSS {mss}");
            assert!(stack_mtu(mtu) <= mtu && mtu - stack_mtu(mtu) < WINDOW_UNIT, "MTU {mtu}");
        }
        assert_eq!(stack_mtu(8500), 8488);
    }
}
