//! The whole data path in one process, without root, a TUN or a clock: a
//! client's smoltcp TCP stack in the VPC, one queue's [`Stack`] on the ENI
//! (pipeline, guards, DNS responder, relay), and in-process services behind
//! the in-memory network.
//!
//! Time is the lab's own: [`MemoryLab::run_until`] steps the stack and the
//! client while anything moves, and when nothing does, jumps to the next
//! timer either of them asked for. A hello timeout of 10 s or a 300 s socket
//! timeout takes no wall-clock time, and a run is the same every time.
//! It gives up (panics) after [`MAX_VIRTUAL`] of lab time or [`MAX_STEPS`]
//! steps without reaching its goal: a bound on the protocol, not a timing.

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use privlink_core::config::Config;
use privlink_core::filter::{FilterConfig, RuleSet};
use privlink_core::model::{Plan, State};
use privlink_core::packet::proto;
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpEndpoint};
use tokio::sync::watch;

use super::dns::MemoryDns;
use super::link::MemoryLink;
use super::net::{MemoryConnector, MemoryNet};
use crate::edge::guard::EniGuard;
use crate::edge::pipe::MemoryPeer;
use crate::edge::queue::report::{ConnectionSlots, Report};
use crate::edge::queue::Stack;
use crate::edge::resolver::{Resolver, ResolverSettings};

/// The plan of `config`, ids allocated into `state` from a fixed sequence (the
/// same config and state give the same plan).
fn make_plan(config: &Config, state: &mut State) -> Plan {
    let mut seq = 0u8;
    Plan::make(config, state, || {
        seq = seq.wrapping_add(1);
        [seq; 9]
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The most lab time one `run_until` may take.
pub const MAX_VIRTUAL: Duration = Duration::from_secs(900);
/// The most steps one `run_until` may take.
pub const MAX_STEPS: usize = 2_000_000;
/// Client ports start here.
const FIRST_PORT: u16 = 40000;

/// An in-process service: handles one accepted connection, a step at a time.
pub trait Service {
    /// Moves what it can without blocking; `false` once it is done with the connection.
    fn serve(&mut self, peer: &mut MemoryPeer) -> bool;
}

/// Echoes every byte back and closes when the client does.
#[derive(Debug, Default)]
pub struct Echo {
    pending: Vec<u8>,
}

impl Service for Echo {
    fn serve(&mut self, peer: &mut MemoryPeer) -> bool {
        let mut buf = [0u8; 16 << 10];
        loop {
            if !self.pending.is_empty() {
                match peer.write(&self.pending) {
                    Ok(n) => {
                        self.pending.drain(..n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                    Err(_) => return false,
                }
                continue;
            }
            match peer.read(&mut buf) {
                Ok(0) => {
                    peer.shutdown();
                    return false;
                }
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
    }
}

/// Sends `len` bytes of a pattern (byte `i` is `i % 251`), then closes: a download.
#[derive(Debug)]
pub struct Download {
    sent: usize,
    len: usize,
}

impl Download {
    /// A download of `len` bytes.
    pub fn new(len: usize) -> Download {
        Download { sent: 0, len }
    }

    /// Byte `i` of every download.
    pub fn byte(i: usize) -> u8 {
        (i % 251) as u8
    }
}

impl Service for Download {
    fn serve(&mut self, peer: &mut MemoryPeer) -> bool {
        let mut buf = [0u8; 16 << 10];
        while self.sent < self.len {
            let n = buf.len().min(self.len - self.sent);
            for (i, b) in buf[..n].iter_mut().enumerate() {
                *b = Download::byte(self.sent + i);
            }
            match peer.write(&buf[..n]) {
                Ok(w) => self.sent += w,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
        peer.shutdown();
        false
    }
}

/// What a factory makes for each connection to a listening address.
type ServiceFactory = Box<dyn FnMut() -> Box<dyn Service>>;

/// The client's side of the wire: packets the stack sent it, packets it sends.
#[derive(Default)]
struct ClientDevice {
    rx: VecDeque<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
}

impl Device for ClientDevice {
    type RxToken<'a> = ClientRx;
    type TxToken<'a> = ClientTx<'a>;
    fn receive(&mut self, _: SmolInstant) -> Option<(ClientRx, ClientTx<'_>)> {
        let p = self.rx.pop_front()?;
        Some((ClientRx(p), ClientTx(&mut self.tx)))
    }
    fn transmit(&mut self, _: SmolInstant) -> Option<ClientTx<'_>> {
        Some(ClientTx(&mut self.tx))
    }
    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = 1500;
        caps
    }
}

/// A packet for the client.
pub struct ClientRx(Vec<u8>);
impl smoltcp::phy::RxToken for ClientRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

/// Room for a packet the client sends.
pub struct ClientTx<'a>(&'a mut VecDeque<Vec<u8>>);
impl smoltcp::phy::TxToken for ClientTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut p = vec![0u8; len];
        let r = f(&mut p);
        self.0.push_back(p);
        r
    }
}

/// A VPC with one endpoint's data path, all in memory (see the module doc).
pub struct MemoryLab {
    /// The plan the stack was built from.
    pub plan: Plan,
    /// The ids and addresses the plan allocated, to build the same plan from another config.
    state: State,
    /// Publishes rule sets to the stack's guards, as a reload does.
    rules_tx: watch::Sender<Arc<RuleSet>>,
    stack: Stack<MemoryLink, MemoryConnector>,
    net: MemoryNet,
    services: Vec<(String, ServiceFactory)>,
    serving: Vec<(MemoryPeer, Box<dyn Service>)>,
    client: Interface,
    sockets: SocketSet<'static>,
    device: ClientDevice,
    /// UDP packets the stack sent toward the client (DNS answers), in order.
    pub udp: VecDeque<Vec<u8>>,
    /// Every packet the stack sent toward the client, when [`MemoryLab::tap`] is on.
    pub seen: Vec<Vec<u8>>,
    tap: bool,
    next_port: u16,
    epoch: Instant,
    now: Instant,
    next: Option<Instant>,
}

impl MemoryLab {
    /// A lab for the config `toml` (read as `file`). Its resolver forwards
    /// nothing (`[dns] forward = []` whatever the text says): answers come
    /// from the private zone or are REFUSED. The client is 10.0.1.10/16.
    pub fn new(file: &str, toml: &str) -> MemoryLab {
        MemoryLab::with_upstream_dns(file, toml, &[], MemoryDns::default())
    }

    /// A lab whose resolver forwards to `forward`, in order, over `upstreams`
    /// (whatever `[dns] forward` the text says).
    pub fn with_upstream_dns(file: &str, toml: &str, forward: &[SocketAddr], upstreams: MemoryDns) -> MemoryLab {
        let mut config = Config::from_toml(file, toml).unwrap_or_else(|e| panic!("{e}"));
        config.dns.forward = Some(forward.to_vec());
        let mut state = State::default();
        let plan = make_plan(&config, &mut state);
        let zone = plan.zone().unwrap_or_else(|e| panic!("{e}"));
        let rules = plan.rule_set().unwrap_or_else(|e| panic!("{e}"));
        // One instant read at the start gives the lab's time a base; every
        // later instant is that base plus lab time.
        let epoch = Instant::now();
        let settings = ResolverSettings { zone: Arc::new(zone), forward: forward.to_vec() };
        let (_, settings_rx) = watch::channel(Arc::new(settings));
        let resolver = Resolver::new(settings_rx, Box::new(upstreams));
        let (rules_tx, rules_rx) = watch::channel(Arc::new(rules));
        let eni_ids: Vec<String> = plan.endpoints.iter().flat_map(|e| e.enis.iter().map(|n| n.id.clone())).collect();
        let eni_ips: Vec<Ipv4Addr> = plan.eni_ips().map(|(ip, _)| ip).collect();
        let guard = EniGuard::new(rules_rx, FilterConfig::default(), &eni_ids, &eni_ips, None)
            .unwrap_or_else(|e| panic!("{e}"));
        let net = MemoryNet::default();
        let stack = Stack::new(
            &plan,
            MemoryLink::default(),
            resolver,
            guard,
            ConnectionSlots::new(&plan),
            net.connector(),
            epoch,
        )
        .unwrap_or_else(|e| panic!("{e}"));

        let mut device = ClientDevice::default();
        let mut client = Interface::new(IfaceConfig::new(HardwareAddress::Ip), &mut device, SmolInstant::ZERO);
        client.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::v4(10, 0, 1, 10), 16)).expect("room for an address");
        });
        client.routes_mut().add_default_ipv4_route(plan.vpc.router).expect("room for a route");
        MemoryLab {
            plan,
            state,
            rules_tx,
            stack,
            net,
            services: Vec::new(),
            serving: Vec::new(),
            client,
            sockets: SocketSet::new(Vec::new()),
            device,
            udp: VecDeque::new(),
            seen: Vec::new(),
            tap: false,
            next_port: FIRST_PORT,
            epoch,
            now: epoch,
            next: None,
        }
    }

    /// Takes the security groups and network ACLs of the config `toml` (read
    /// as `file`), as a reload does: the next packet meets them. Its VPC,
    /// subnets and endpoints must be this lab's.
    pub fn set_rules(&mut self, file: &str, toml: &str) {
        let config = Config::from_toml(file, toml).unwrap_or_else(|e| panic!("{e}"));
        let plan = make_plan(&config, &mut self.state.clone());
        if let Err(e) = privlink_core::reload::check(&self.plan, &plan) {
            panic!("{file}: not a reload this lab can take: {e}");
        }
        self.rules_tx.send_replace(Arc::new(plan.rule_set().unwrap_or_else(|e| panic!("{e}"))));
    }

    /// Half-open connections the stack counts (connecting upstream, or the client's handshake not done).
    pub fn half_open(&self) -> usize {
        self.stack.half_open()
    }

    /// Lab time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.epoch
    }

    /// Records every packet the stack sends toward the client in [`MemoryLab::seen`].
    pub fn tap(&mut self, on: bool) {
        self.tap = on;
    }

    /// The ENI of endpoint `endpoint` in its `i`th subnet, on `port`.
    pub fn eni(&self, endpoint: usize, i: usize, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(self.plan.endpoints[endpoint].enis[i].ip, port)
    }

    /// Gives the client one more address (another instance in the VPC).
    pub fn add_client_address(&mut self, ip: Ipv4Addr, prefix: u8) {
        self.client.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::Ipv4(ip), prefix)).expect("room for an address");
        });
    }

    /// Runs `make()` for each connection made to `addr` (`host:port`).
    pub fn serve(&mut self, addr: &str, make: impl FnMut() -> Box<dyn Service> + 'static) {
        self.net.listen(addr);
        self.services.push((addr.to_string(), Box::new(make)));
    }

    /// Listens on `addr` without a service: the test takes connections with [`MemoryLab::accept`].
    pub fn listen(&mut self, addr: &str) {
        self.net.listen(addr);
    }

    /// The next connection made to a bare listener at `addr`.
    pub fn accept(&mut self, addr: &str) -> Option<MemoryPeer> {
        self.net.accept(addr)
    }

    /// Opens a client connection from `src` to `dst`.
    pub fn connect(&mut self, src: Ipv4Addr, dst: SocketAddrV4) -> SocketHandle {
        let mut sock =
            tcp::Socket::new(tcp::SocketBuffer::new(vec![0; 256 << 10]), tcp::SocketBuffer::new(vec![0; 256 << 10]));
        let port = self.next_port;
        self.next_port = self.next_port.checked_add(1).unwrap_or(FIRST_PORT);
        let remote = IpEndpoint::new(IpAddress::Ipv4(*dst.ip()), dst.port());
        sock.connect(self.client.context(), remote, IpEndpoint::new(IpAddress::Ipv4(src), port))
            .expect("a fresh socket connects");
        self.sockets.add(sock)
    }

    /// A client socket.
    pub fn socket(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(h)
    }

    /// Sends a raw packet from the VPC toward the ENI side.
    pub fn inject(&mut self, pkt: Vec<u8>) {
        self.stack.link_mut().push(pkt);
    }

    /// What the stack has counted.
    pub fn report(&self) -> Report {
        self.stack.report()
    }

    /// Connections the stack holds open.
    pub fn open_connections(&self) -> usize {
        self.stack.open_connections()
    }

    /// One step at the current lab time. Returns whether anything moved.
    pub fn step(&mut self) -> bool {
        let turn = self.stack.turn(self.now).unwrap_or_else(|e| panic!("stack turn: {e}"));
        self.next = turn.next;
        let mut moved = turn.busy;
        while let Some(p) = self.stack.link_mut().outbound.pop_front() {
            moved = true;
            if self.tap {
                self.seen.push(p.clone());
            }
            if p.get(9) == Some(&proto::UDP) {
                self.udp.push_back(p);
            } else {
                self.device.rx.push_back(p);
            }
        }
        let at = SmolInstant::from_micros((self.now - self.epoch).as_micros() as i64);
        moved |= self.client.poll(at, &mut self.device, &mut self.sockets) != smoltcp::iface::PollResult::None;
        while let Some(p) = self.device.tx.pop_front() {
            moved = true;
            self.stack.link_mut().push(p);
        }
        for (addr, make) in &mut self.services {
            while let Some(peer) = self.net.accept(addr) {
                self.serving.push((peer, make()));
                moved = true;
            }
        }
        self.serving.retain_mut(|(peer, svc)| svc.serve(peer));
        moved
    }

    /// Steps until `done` holds, jumping lab time to the next timer whenever
    /// nothing moves. Panics past [`MAX_VIRTUAL`] or [`MAX_STEPS`].
    pub fn run_until(&mut self, what: &str, mut done: impl FnMut(&mut MemoryLab) -> bool) {
        let start = self.now;
        for _ in 0..MAX_STEPS {
            if done(self) {
                return;
            }
            if !self.step() && !self.jump(None) {
                panic!("{what}: nothing left to happen, and not done");
            }
            assert!(self.now - start <= MAX_VIRTUAL, "{what}: not done after {MAX_VIRTUAL:?} of lab time");
        }
        panic!("{what}: not done after {MAX_STEPS} steps");
    }

    /// Lets `d` of lab time pass, stepping all the while.
    pub fn wait(&mut self, d: Duration) {
        let until = self.now + d;
        for _ in 0..MAX_STEPS {
            if self.now >= until {
                return;
            }
            if !self.step() && !self.jump(Some(until)) {
                self.now = until;
            }
        }
        panic!("wait: not done after {MAX_STEPS} steps");
    }

    /// Moves lab time to the next timer of the stack or the client, no later
    /// than `limit`. `false` if there is none before it.
    fn jump(&mut self, limit: Option<Instant>) -> bool {
        let at = SmolInstant::from_micros((self.now - self.epoch).as_micros() as i64);
        let client =
            self.client.poll_delay(at, &self.sockets).map(|d| self.now + Duration::from_micros(d.total_micros()));
        let next = match (self.next, client) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match next {
            Some(t) if limit.is_none_or(|l| t <= l) => {
                self.now = t.max(self.now + Duration::from_micros(1));
                true
            }
            _ => false,
        }
    }
}
