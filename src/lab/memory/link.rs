//! A link made of two bounded packet queues: what the stack writes, a test
//! reads; what a test pushes, the stack reads. No offloads: every packet is
//! whole, at most the MTU, its checksums complete, as on a wire.

use std::collections::VecDeque;
use std::io;

use crate::edge::queue::link::Link;
use crate::edge::tun::{VnetHdr, VNET_HDR_LEN};

/// Packets each way before the link drops (and counts) more.
pub const LINK_CAPACITY: usize = 4096;

/// An in-memory link for one queue's stack.
#[derive(Debug, Default)]
pub struct MemoryLink {
    /// Toward the stack.
    pub inbound: VecDeque<Vec<u8>>,
    /// From the stack.
    pub outbound: VecDeque<Vec<u8>>,
    /// Packets dropped because a queue was full.
    pub dropped: u64,
}

impl MemoryLink {
    /// Queues a packet toward the stack.
    pub fn push(&mut self, pkt: Vec<u8>) {
        if self.inbound.len() < LINK_CAPACITY {
            self.inbound.push_back(pkt);
        } else {
            self.dropped += 1;
        }
    }
}

impl Link for MemoryLink {
    fn read_frame(&mut self, buf: &mut [u8]) -> io::Result<Option<(VnetHdr, usize)>> {
        let Some(pkt) = self.inbound.pop_front() else { return Ok(None) };
        let n = pkt.len().min(buf.len() - VNET_HDR_LEN);
        buf[VNET_HDR_LEN..][..n].copy_from_slice(&pkt[..n]);
        Ok(Some((VnetHdr::default(), n)))
    }
    fn write_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        self.write_packet(&frame[VNET_HDR_LEN..])
    }
    fn write_packet(&mut self, pkt: &[u8]) -> io::Result<()> {
        if self.outbound.len() < LINK_CAPACITY {
            self.outbound.push_back(pkt.to_vec());
        } else {
            self.dropped += 1;
        }
        Ok(())
    }
    fn offloads(&self) -> bool {
        false
    }
}
