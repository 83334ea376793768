//! smoltcp's view of the link for one poll: reads run the pipeline and the
//! guards, writes go straight out.
//!
//! When smoltcp asks for a packet, the device reads the link into one
//! reusable buffer, runs the [`Pipeline`] and the ingress guards on it and
//! hands smoltcp only what is for the stack; drops are counted on the spot.
//! UDP DNS goes to the resolver, which answers through the same link. New
//! SYNs are set aside ([`HeldSyn`]) for the stack to connect upstream first.
//! Transmit passes the egress guards and writes from a second reusable
//! buffer. No queue, no allocation, no copy per packet. A read budget per
//! poll bounds one turn's work (smoltcp's "DoS warning").

use std::collections::HashMap;
use std::io;
use std::time::Instant;

use privlink_core::flow::FlowKey;
use privlink_core::packet::PacketMeta;
use privlink_core::pipeline::{Pipeline, Verdict};
use smoltcp::phy::{Checksum, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant as SmolInstant;

use super::link::Link;
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
    pub by_flow: &'a HashMap<FlowKey, ConnId>,
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
    now: Instant,
}

impl<L: Link> smoltcp::phy::TxToken for TxToken<'_, L> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let frame = &mut self.buf[..VNET_HDR_LEN + len];
        let (hdr, pkt) = frame.split_at_mut(VNET_HDR_LEN);
        let r = f(pkt);
        if self.guard.handle_egress(self.now, pkt, self.gso_size) {
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
        let tx =
            TxToken { link: &mut *self.link, buf: &mut *self.tx, gso_size: 0, guard: &mut *self.guard, now: self.now };
        Some((RxToken(rx), tx))
    }

    fn transmit(&mut self, _now: SmolInstant) -> Option<TxToken<'_, L>> {
        Some(TxToken { link: &mut *self.link, buf: &mut *self.tx, gso_size: 0, guard: &mut *self.guard, now: self.now })
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
