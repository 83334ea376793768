//! smoltcp's view of the link for one poll: reads run the pipeline and the
//! guards, writes go straight out.
//!
//! When smoltcp asks for a packet, the device reads the link into one
//! reusable buffer, runs the [`Pipeline`] and the ingress guards on it and
//! hands smoltcp only what is for the stack; drops are counted on the spot.
//! UDP DNS goes to the resolver, which answers through the same link. New
//! SYNs are set aside ([`HeldSyn`]) for the stack to connect upstream first.
//! A segment of a live connection meets the RFC 5961 checks first
//! ([`rfc5961`]: its flow's [`SeqSpace`], found by the one lookup that tells
//! a live flow from a new one): it goes on, is rewritten into the segment
//! that makes smoltcp send a challenge ACK, or is dropped. Transmit learns
//! each segment smoltcp sends into its flow's [`SeqSpace`], passes the egress
//! guards and writes from a second reusable buffer. No queue, no allocation,
//! no copy per packet. A read budget per poll bounds one turn's work
//! (smoltcp's "DoS warning").

use std::collections::HashMap;
use std::io;
use std::time::Instant;

use privlink_core::flow::{Direction, FlowKey, SeededState};
use privlink_core::packet::{self, tcp_flags, PacketMeta};
use privlink_core::pipeline::{Pipeline, Verdict};
use privlink_core::rfc5961::{self, Segment, SegmentVerdict, SeqSpace};
use smoltcp::phy::{Checksum, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant as SmolInstant;

use super::link::Link;
use super::report::ConnStats;
use super::window::stack_mtu;
use crate::edge::guard::EniGuard;
use crate::edge::relay::ConnId;
use crate::edge::resolver::Resolver;
use crate::edge::tun::{VnetHdr, VNET_HDR_LEN};

/// The largest TCP superpacket smoltcp may hand the device: the IPv4 total
/// length is 16 bits, and the kernel segments up to 64 KiB.
const MAX_TSO: usize = 65535;

/// A SYN held while its upstream connects.
pub struct HeldSyn {
    /// The parsed SYN.
    pub meta: PacketMeta,
    /// Its endpoint.
    pub endpoint: usize,
    /// Its ENI.
    pub eni: usize,
    /// The packet, fed to smoltcp once the upstream is connected.
    pub bytes: Vec<u8>,
}

/// A flow's connection as the device sees it.
#[derive(Debug, Clone, Copy)]
pub struct FlowConn {
    /// The connection.
    pub id: ConnId,
    /// Its sequence space, learned from smoltcp's segments and judged against.
    pub seq: SeqSpace,
}

/// The connections by flow: the one lookup per packet, each way. The client
/// chooses the key, so the hash is seeded.
pub type Flows = HashMap<FlowKey, FlowConn, SeededState>;

/// The device for one `Interface::poll`.
pub struct LinkDevice<'a, L> {
    /// The link.
    pub link: &'a mut L,
    /// The ENI MTU.
    pub mtu: usize,
    /// Receive buffer (a frame).
    pub rx: &'a mut [u8],
    /// Transmit buffer (a frame).
    pub tx: &'a mut [u8],
    /// A held SYN to feed smoltcp first.
    pub inject: Option<&'a [u8]>,
    /// The ingress pipeline.
    pub pipeline: &'a mut Pipeline,
    /// The resolver's UDP side.
    pub resolver: &'a mut Resolver,
    /// Security groups, NACLs, flow logs.
    pub guard: &'a mut EniGuard,
    /// ENIs `0..guarded` are guarded; the resolver addresses after them are not.
    pub guarded: usize,
    /// This poll's instant.
    pub now: Instant,
    /// Flows with a connection.
    pub by_flow: &'a mut Flows,
    /// Where RFC 5961 verdicts are counted.
    pub stats: &'a mut ConnStats,
    /// SYNs whose upstream is connecting.
    pub held: &'a HashMap<FlowKey, HeldSyn>,
    /// SYNs of new flows, found in this poll.
    pub new_syns: &'a mut Vec<HeldSyn>,
    /// Frames left to read in this poll.
    pub budget: usize,
    /// The link had nothing more to read.
    pub drained: bool,
    /// A read failed.
    pub error: Option<io::Error>,
}

impl<L: Link> LinkDevice<'_, L> {
    /// Reads until a packet for smoltcp turns up; returns its length. The
    /// packet sits in `rx` after the vnet header.
    fn next_for_stack(&mut self) -> Option<usize> {
        while self.budget > 0 {
            self.budget -= 1;
            let (hdr, n) = match self.link.read_frame(self.rx) {
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
            let pkt = &self.rx[VNET_HDR_LEN..][..n];
            // A kernel superpacket (offload) is checked against the MTU by its segment size.
            let gso_size = if hdr.is_gso() { hdr.gso_size.max(1) } else { 0 };
            match self.pipeline.handle_segmented(pkt, !hdr.checksum_trusted(), gso_size) {
                Verdict::ToStack { meta, endpoint, eni } => {
                    if eni < self.guarded && !self.guard.handle_ingress(self.now, eni, &meta, gso_size) {
                        continue;
                    }
                    let flow = meta.flow();
                    let Some(conn) = self.by_flow.get_mut(&flow) else {
                        if meta.is_syn() {
                            // A new flow, or a retransmitted SYN while its upstream connects.
                            if !self.held.contains_key(&flow) && !self.new_syns.iter().any(|s| s.meta.flow() == flow) {
                                self.new_syns.push(HeldSyn { meta, endpoint, eni, bytes: pkt.to_vec() });
                            }
                            continue;
                        }
                        // No connection: smoltcp answers it (with an RST).
                        return Some(n);
                    };
                    match conn.seq.receive(&Segment::of(&meta)) {
                        SegmentVerdict::Accept => {}
                        SegmentVerdict::Challenge => {
                            rfc5961::make_challenge(&mut self.rx[VNET_HDR_LEN..][..n], &conn.seq);
                            self.stats.challenged += 1;
                        }
                        SegmentVerdict::Drop => {
                            self.stats.rfc5961_dropped += 1;
                            continue;
                        }
                    }
                    return Some(n);
                }
                Verdict::ToDns(meta) => {
                    self.resolver.handle_udp(self.now, &meta, meta.payload(pkt), &mut *self.link, self.tx)
                }
                Verdict::Drop(_) => {}
            }
        }
        None
    }
}

/// A received packet.
pub struct RxToken<'a>(&'a [u8]);

impl smoltcp::phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

/// Room for one packet to send.
pub struct TxToken<'a, L> {
    link: &'a mut L,
    buf: &'a mut [u8],
    /// Payload bytes per segment when smoltcp hands over a superpacket (TSO); 0 if not one.
    gso_size: u16,
    guard: &'a mut EniGuard,
    by_flow: &'a mut Flows,
    now: Instant,
}

impl<'b, L> TxToken<'b, L> {
    fn new(
        link: &'b mut L,
        buf: &'b mut [u8],
        guard: &'b mut EniGuard,
        by_flow: &'b mut Flows,
        now: Instant,
    ) -> TxToken<'b, L> {
        TxToken { link, buf, gso_size: 0, guard, by_flow, now }
    }
}

impl<L: Link> smoltcp::phy::TxToken for TxToken<'_, L> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let frame = &mut self.buf[..VNET_HDR_LEN + len];
        let (hdr, pkt) = frame.split_at_mut(VNET_HDR_LEN);
        let r = f(pkt);
        let pass = match packet::parse(pkt, false) {
            Ok(meta) => {
                // What smoltcp says of its sequence space, whether or not the guards let it out.
                if let Some(conn) = self.by_flow.get_mut(&meta.flow_in(Direction::Egress)) {
                    let scale = if meta.tcp_flags & tcp_flags::SYN != 0 { packet::window_scale(pkt) } else { None };
                    conn.seq.sent(&Segment::of(&meta), scale);
                }
                self.guard.handle_egress(self.now, &meta, self.gso_size)
            }
            Err(_) => true,
        };
        if pass {
            // With offloads, smoltcp leaves TCP checksums to the device: the
            // kernel finishes them, and cuts a superpacket into `gso_size` segments.
            let vnet = if self.link.offloads() { VnetHdr::for_egress(pkt, self.gso_size) } else { VnetHdr::default() };
            vnet.write(hdr.try_into().expect("10 bytes"));
            if let Err(e) = self.link.write_frame(frame) {
                tracing::debug!("link write: {e}");
            }
        }
        r
    }

    fn set_meta(&mut self, meta: smoltcp::phy::PacketMeta) {
        self.gso_size = meta.segmentation_offload_size.map_or(0, |s| s.get());
    }
}

impl<L: Link> Device for LinkDevice<'_, L> {
    type RxToken<'b>
        = RxToken<'b>
    where
        Self: 'b;
    type TxToken<'b>
        = TxToken<'b, L>
    where
        Self: 'b;

    fn receive(&mut self, _now: SmolInstant) -> Option<(RxToken<'_>, TxToken<'_, L>)> {
        let rx: &[u8] = match self.inject.take() {
            Some(p) => p,
            None => {
                let n = self.next_for_stack()?;
                &self.rx[VNET_HDR_LEN..][..n]
            }
        };
        let tx = TxToken::new(&mut *self.link, &mut *self.tx, &mut *self.guard, &mut *self.by_flow, self.now);
        Some((RxToken(rx), tx))
    }

    fn transmit(&mut self, _now: SmolInstant) -> Option<TxToken<'_, L>> {
        Some(TxToken::new(&mut *self.link, &mut *self.tx, &mut *self.guard, &mut *self.by_flow, self.now))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        capabilities(self.mtu, self.link.offloads())
    }
}

/// The MTU is the ENI's (see [`stack_mtu`]): smoltcp advertises its MSS from
/// it, and with offloads the kernel cuts superpackets to it. Received
/// superpackets (the kernel's, see [`VnetHdr`]) are larger; smoltcp does not
/// check received sizes.
pub fn capabilities(mtu: usize, offloads: bool) -> DeviceCapabilities {
    let mut caps = DeviceCapabilities::default();
    caps.medium = Medium::Ip;
    caps.max_transmission_unit = stack_mtu(mtu);
    // The pipeline verified incoming checksums (or the kernel vouched for
    // them); smoltcp computes IPv4 header checksums and, with offloads,
    // leaves TCP's to the device (the kernel completes them from the partial
    // sum we write).
    let mut sums = ChecksumCapabilities::default();
    sums.ipv4 = Checksum::Tx;
    sums.tcp = if offloads { Checksum::None } else { Checksum::Tx };
    caps.checksum = sums;
    caps.segmentation.tcpv4 = if offloads { std::num::NonZeroUsize::new(MAX_TSO) } else { None };
    caps
}

/// A device that only describes itself, to build the `Interface`.
pub struct CapsOnly(pub DeviceCapabilities);

impl Device for CapsOnly {
    type RxToken<'b>
        = RxToken<'b>
    where
        Self: 'b;
    type TxToken<'b>
        = NoTx
    where
        Self: 'b;
    fn receive(&mut self, _now: SmolInstant) -> Option<(RxToken<'_>, Self::TxToken<'_>)> {
        None
    }
    fn transmit(&mut self, _now: SmolInstant) -> Option<Self::TxToken<'_>> {
        None
    }
    fn capabilities(&self) -> DeviceCapabilities {
        self.0.clone()
    }
}

/// The transmit token of a device that never transmits.
pub enum NoTx {}

impl smoltcp::phy::TxToken for NoTx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, _len: usize, _f: F) -> R {
        match self {}
    }
}
