//! The link a queue's stack reads packets from and writes them to: one queue
//! of the TUN in the VPC namespace, or an in-memory pair of queues in tests.
//!
//! Frames are the TUN's: a [`VnetHdr`], then an IPv4 packet. A link that
//! [`offloads`](Link::offloads) takes partial TCP checksums and superpackets
//! (the kernel finishes and cuts them); one that does not gets every packet
//! whole, its checksums complete, at most the MTU.

use std::io;

use crate::edge::tun::{self, Tun, VnetHdr};

/// Packet I/O for one queue's stack, without blocking.
pub trait Link {
    /// Reads one frame into `buf`: `Ok(None)` when there is none now, else
    /// its header and the packet's length (the packet is `buf[VNET_HDR_LEN..][..len]`).
    fn read_frame(&mut self, buf: &mut [u8]) -> io::Result<Option<(VnetHdr, usize)>>;
    /// Writes one frame that starts with its [`VnetHdr`].
    fn write_frame(&mut self, frame: &[u8]) -> io::Result<()>;
    /// Writes one packet whose checksums are complete.
    fn write_packet(&mut self, pkt: &[u8]) -> io::Result<()>;
    /// Whether the link takes partial checksums and superpackets.
    fn offloads(&self) -> bool;
}

impl Link for Tun {
    fn read_frame(&mut self, buf: &mut [u8]) -> io::Result<Option<(VnetHdr, usize)>> {
        tun::read_packet(self.raw_fd(), buf)
    }
    fn write_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        tun::write_frame(self.raw_fd(), frame)
    }
    fn write_packet(&mut self, pkt: &[u8]) -> io::Result<()> {
        tun::write_packet(self.raw_fd(), pkt)
    }
    fn offloads(&self) -> bool {
        true
    }
}
