//! RFC 5961 ("Improving TCP's Robustness to Blind In-Window Attacks") on the
//! ENI's side of a live connection: which of the client's segments reach the
//! TCP stack, which get a challenge ACK instead, which are dropped.
//!
//! # Why here
//! smoltcp 0.14 checks an RST against its receive window only: any RST inside
//! it closes the socket, silently (an RST with seq = RCV.NXT + 1000 cut a
//! 60 MB download; an RST|ACK at + 5000 closed the ENI's side and the client
//! was never told). It drops a SYN on a synchronized connection without a
//! word, so a client that restarted on the same port never learns the old
//! connection is there. The decision is made here, before smoltcp sees the
//! segment; the edge applies it.
//!
//! # The decision ([`SeqSpace::receive`]), once the handshake is done
//! - **RST** (§3.2): seq = RCV.NXT exactly resets; RCV.NXT < seq < RCV.NXT +
//!   RCV.WND gets a challenge ACK; anything else is dropped.
//! - **SYN**, whatever its sequence number (§4): a challenge ACK.
//! - **No ACK bit**: dropped (RFC 9293 §3.10.7.4).
//! - **ACK** outside SND.UNA − MAX.SND.WND ..= SND.NXT (§5.2): discarded, and
//!   answered with a challenge ACK, as §5.2 says.
//! - Anything else goes on to smoltcp.
//!
//! Before the handshake completes (SYN-RECEIVED) every segment goes to
//! smoltcp, which has its own checks for that state (an RST there returns its
//! socket to LISTEN).
//!
//! # Where the numbers come from
//! smoltcp has no getter for RCV.NXT. The edge learns the connection's
//! sequence space from the segments smoltcp itself sends ([`SeqSpace::sent`]):
//! each ACK carries its RCV.NXT, and its window field (scaled by the shift
//! smoltcp chose in its SYN-ACK) the right edge smoltcp checks segments
//! against; the highest sequence it sent is SND.NXT. The client's ACKs that
//! pass give SND.UNA, its windows MAX.SND.WND. So the learned RCV.NXT can lag
//! smoltcp's (it moves when smoltcp acknowledges, not when data arrives), but
//! never leads it, and every verdict is safe under a lag: an RST passes only
//! when its seq equals the learned RCV.NXT, and smoltcp resets only if that
//! is also inside its own window, i.e. exactly its RCV.NXT; a client's exact
//! RST that meets a lagging value gets a challenge ACK, answers it with an RST
//! at the number the ACK carries, and that one passes.
//!
//! # The challenge ACK
//! It is smoltcp's own: [`make_challenge`] rewrites the segment in place into a
//! bare ACK of data never sent (SND.NXT + 2^30), which smoltcp discards and
//! answers with a challenge ACK (its §5 check) carrying its exact RCV.NXT and
//! SND.NXT, so the ACK the client gets is never stale. smoltcp throttles these
//! to one per connection per second (§7): more challenges within the second
//! are discarded without a reply.

use crate::packet::tcp_flags::{ACK, FIN, RST, SYN};
use crate::packet::PacketMeta;

/// How far past SND.NXT the ACK of a rewritten segment points: far enough
/// beyond any sequence number smoltcp has sent that its §5 check fails, near
/// enough (under 2^31) that it does not wrap to "old".
const BEYOND_SENT: u32 = 1 << 30;

/// The TCP facts of one segment the decision needs, read from its [`PacketMeta`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Flags byte.
    pub flags: u8,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (meaningful with [`ACK`]).
    pub ack: u32,
    /// Window field as sent.
    pub window: u16,
    /// Sequence space it takes: payload bytes, plus one each for SYN and FIN.
    pub len: u32,
}

impl Segment {
    /// The segment of a parsed TCP packet.
    #[inline]
    pub fn of(meta: &PacketMeta) -> Segment {
        let payload = u32::from(meta.payload_end.saturating_sub(meta.payload_start));
        let control = u32::from(meta.tcp_flags & SYN != 0) + u32::from(meta.tcp_flags & FIN != 0);
        Segment { flags: meta.tcp_flags, seq: meta.seq, ack: meta.ack, window: meta.window, len: payload + control }
    }

    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// What to do with a client's segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentVerdict {
    /// Hand it to the TCP stack.
    Accept,
    /// Do not let it act; have the stack send a challenge ACK ([`make_challenge`]).
    Challenge,
    /// Drop it, silently.
    Drop,
}

/// `a` comes before `b` in sequence space (RFC 9293's modular comparison).
#[inline]
fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// One connection's sequence space as the ENI's TCP stack has shown it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqSpace {
    /// The next sequence number expected from the client, as last acknowledged.
    rcv_nxt: u32,
    /// The receive window last advertised, in bytes (scaled).
    rcv_wnd: u32,
    /// The oldest of the ENI's sequence numbers the client has not acknowledged.
    snd_una: u32,
    /// The ENI's next sequence number: one past the highest it sent.
    snd_nxt: u32,
    /// The largest window the client advertised, in bytes (scaled).
    max_snd_wnd: u32,
    /// The client offered window scaling in its SYN, with this shift.
    client_scale: Option<u8>,
    /// Shift of the ENI's advertised windows (0 unless both sides scale).
    rcv_shift: u8,
    /// Shift of the client's advertised windows (0 unless both sides scale).
    snd_shift: u8,
    /// The ENI's SYN-ACK was seen: the send side is known.
    sent_syn: bool,
    /// The handshake is done: the checks apply.
    synchronized: bool,
}

impl SeqSpace {
    /// The sequence space of a connection opened by `syn`, which offered window
    /// scaling with `client_scale` (see [`crate::packet::window_scale`]).
    pub fn new(syn: &Segment, client_scale: Option<u8>) -> SeqSpace {
        SeqSpace {
            rcv_nxt: syn.seq.wrapping_add(1),
            rcv_wnd: 0,
            snd_una: 0,
            snd_nxt: 0,
            max_snd_wnd: u32::from(syn.window),
            client_scale,
            rcv_shift: 0,
            snd_shift: 0,
            sent_syn: false,
            synchronized: false,
        }
    }

    /// Whether the handshake is done and the checks apply.
    pub fn synchronized(&self) -> bool {
        self.synchronized
    }

    /// The next sequence number expected from the client, as last acknowledged.
    pub fn rcv_nxt(&self) -> u32 {
        self.rcv_nxt
    }

    /// Learns from a segment the ENI's stack sent on this connection; `scale`
    /// is its window scale option (a SYN-ACK's).
    #[inline]
    pub fn sent(&mut self, seg: &Segment, scale: Option<u8>) {
        let end = seg.seq.wrapping_add(seg.len);
        if seg.has(SYN) {
            // RFC 7323: windows are scaled only if both SYNs carried the option.
            if let (Some(ours), Some(theirs)) = (scale, self.client_scale) {
                self.rcv_shift = ours;
                self.snd_shift = theirs;
            }
            if !self.sent_syn {
                self.sent_syn = true;
                self.snd_una = seg.seq;
                self.snd_nxt = end;
            }
        } else if self.sent_syn {
            // smoltcp sends nothing but SYN-ACKs until the handshake is done.
            self.synchronized = true;
        }
        if self.sent_syn && before(self.snd_nxt, end) {
            self.snd_nxt = end;
        }
        if seg.has(ACK) && !before(seg.ack, self.rcv_nxt) {
            self.rcv_nxt = seg.ack;
            // A SYN's window is never scaled.
            let shift = if seg.has(SYN) { 0 } else { self.rcv_shift };
            self.rcv_wnd = u32::from(seg.window) << shift;
        }
    }

    /// Judges a segment from the client (see the module doc) and, when it goes
    /// on, learns from it.
    #[inline]
    pub fn receive(&mut self, seg: &Segment) -> SegmentVerdict {
        if !self.synchronized {
            // The handshake's last ACK, exact both ways, is the one smoltcp
            // takes to ESTABLISHED; from then on the checks apply.
            if self.sent_syn
                && seg.flags & (SYN | RST | ACK) == ACK
                && seg.ack == self.snd_nxt
                && seg.seq == self.rcv_nxt
            {
                self.synchronized = true;
                self.snd_una = seg.ack;
                self.max_snd_wnd = self.max_snd_wnd.max(u32::from(seg.window) << self.snd_shift);
            }
            return SegmentVerdict::Accept;
        }
        if seg.has(RST) {
            let off = seg.seq.wrapping_sub(self.rcv_nxt);
            return if off == 0 {
                SegmentVerdict::Accept
            } else if off < self.rcv_wnd {
                SegmentVerdict::Challenge
            } else {
                SegmentVerdict::Drop
            };
        }
        if seg.has(SYN) {
            return SegmentVerdict::Challenge;
        }
        if !seg.has(ACK) {
            return SegmentVerdict::Drop;
        }
        if before(self.snd_nxt, seg.ack) || before(seg.ack, self.snd_una.wrapping_sub(self.max_snd_wnd)) {
            return SegmentVerdict::Challenge;
        }
        if before(self.snd_una, seg.ack) {
            self.snd_una = seg.ack;
        }
        self.max_snd_wnd = self.max_snd_wnd.max(u32::from(seg.window) << self.snd_shift);
        SegmentVerdict::Accept
    }
}

/// Rewrites a TCP packet (one [`crate::packet::parse`] accepted) in place into
/// the bare ACK of data never sent that makes the stack discard it and send
/// its own challenge ACK (see the module doc). Its checksum is left stale:
/// the stack is told not to verify checksums (the pipeline did).
pub fn make_challenge(pkt: &mut [u8], space: &SeqSpace) {
    let tcp = usize::from(pkt[0] & 0x0f) * 4;
    let ack = space.snd_nxt.wrapping_add(BEYOND_SENT);
    pkt[tcp + 8..tcp + 12].copy_from_slice(&ack.to_be_bytes());
    pkt[tcp + 13] = ACK;
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT_ISN: u32 = 1000;
    const ENI_ISN: u32 = u32::MAX - 10; // wraps during the tests
    const WINDOW: u16 = 1000; // × 2^5: 32,000 bytes

    fn seg(flags: u8, seq: u32, ack: u32, len: u32) -> Segment {
        Segment { flags, seq, ack, window: WINDOW, len }
    }

    /// A connection after the handshake; the client's window scale 7, the ENI's 5.
    fn established() -> SeqSpace {
        let mut s = SeqSpace::new(&seg(SYN, CLIENT_ISN, 0, 1), Some(7));
        s.sent(&seg(SYN | ACK, ENI_ISN, CLIENT_ISN + 1, 1), Some(5));
        assert!(!s.synchronized());
        assert_eq!(s.receive(&seg(ACK, CLIENT_ISN + 1, ENI_ISN.wrapping_add(1), 0)), SegmentVerdict::Accept);
        assert!(s.synchronized());
        // Its first ACK after the SYN-ACK: a scaled window, 1000 units of 2^5.
        s.sent(&seg(ACK, ENI_ISN.wrapping_add(1), CLIENT_ISN + 1, 0), None);
        s
    }

    #[test]
    fn rsts_reset_only_at_rcv_nxt() {
        let mut s = established();
        let nxt = CLIENT_ISN + 1;
        let cases = [
            ("exact", nxt, SegmentVerdict::Accept),
            ("in the window, + 1000", nxt + 1000, SegmentVerdict::Challenge),
            ("in the window, + 5000", nxt + 5000, SegmentVerdict::Challenge),
            ("last byte of the window", nxt + 31_999, SegmentVerdict::Challenge),
            ("just past the window", nxt + 32_000, SegmentVerdict::Drop),
            ("before RCV.NXT", nxt - 1, SegmentVerdict::Drop),
            ("far away", nxt.wrapping_add(1 << 31), SegmentVerdict::Drop),
        ];
        for (name, seq, want) in cases {
            assert_eq!(s.receive(&seg(RST, seq, 0, 0)), want, "RST {name}");
            assert_eq!(s.receive(&seg(RST | ACK, seq, 12345, 0)), want, "RST|ACK {name}: the ACK is not looked at");
        }
    }

    #[test]
    fn rcv_nxt_and_the_window_follow_what_the_stack_acknowledged() {
        let mut s = established();
        let nxt = CLIENT_ISN + 1;
        // The stack acknowledged 5000 bytes and advertised a smaller window.
        s.sent(&Segment { flags: ACK, seq: ENI_ISN.wrapping_add(1), ack: nxt + 5000, window: 10, len: 0 }, None);
        assert_eq!(s.rcv_nxt(), nxt + 5000);
        assert_eq!(s.receive(&seg(RST, nxt + 5000, 0, 0)), SegmentVerdict::Accept);
        assert_eq!(s.receive(&seg(RST, nxt + 5000 + 319, 0, 0)), SegmentVerdict::Challenge);
        assert_eq!(s.receive(&seg(RST, nxt + 5000 + 320, 0, 0)), SegmentVerdict::Drop);
        // An older ACK (never sent by a stack, but a reordered copy) does not move it back.
        s.sent(&Segment { flags: ACK, seq: ENI_ISN.wrapping_add(1), ack: nxt, window: 1000, len: 0 }, None);
        assert_eq!(s.rcv_nxt(), nxt + 5000);
        // A zero window: only the exact RST.
        s.sent(&Segment { flags: ACK, seq: ENI_ISN.wrapping_add(1), ack: nxt + 5000, window: 0, len: 0 }, None);
        assert_eq!(s.receive(&seg(RST, nxt + 5001, 0, 0)), SegmentVerdict::Drop);
        assert_eq!(s.receive(&seg(RST, nxt + 5000, 0, 0)), SegmentVerdict::Accept);
    }

    #[test]
    fn a_syn_on_a_synchronized_connection_is_challenged_whatever_its_seq() {
        let mut s = established();
        for seq in [CLIENT_ISN, CLIENT_ISN + 1, CLIENT_ISN + 100, 7] {
            assert_eq!(s.receive(&seg(SYN, seq, 0, 1)), SegmentVerdict::Challenge, "SYN at {seq}");
            assert_eq!(s.receive(&seg(SYN | ACK, seq, ENI_ISN, 1)), SegmentVerdict::Challenge);
        }
        assert_eq!(s.receive(&seg(0, CLIENT_ISN + 1, 0, 10)), SegmentVerdict::Drop, "no ACK bit");
    }

    #[test]
    fn acks_outside_the_acceptable_range_are_challenged() {
        let mut s = established();
        let nxt = CLIENT_ISN + 1;
        let una = ENI_ISN.wrapping_add(1);
        // The client's largest window so far: its handshake ACK's, 1000 units of
        // 2^7. The ENI sent 100,000 bytes; the client acknowledges 40,000.
        s.sent(&Segment { flags: ACK, seq: una, ack: nxt, window: WINDOW, len: 100_000 }, None);
        let ack = |a: u32| Segment { flags: ACK, seq: nxt, ack: a, window: 10, len: 0 };
        assert_eq!(s.receive(&ack(una.wrapping_add(40_000))), SegmentVerdict::Accept);
        let una = una.wrapping_add(40_000);
        let cases = [
            ("beyond SND.NXT", una.wrapping_add(60_001), SegmentVerdict::Challenge),
            ("far beyond", una.wrapping_add(1 << 30), SegmentVerdict::Challenge),
            ("a duplicate", una, SegmentVerdict::Accept),
            ("old, within MAX.SND.WND", una.wrapping_sub(128_000), SegmentVerdict::Accept),
            ("older than MAX.SND.WND", una.wrapping_sub(128_001), SegmentVerdict::Challenge),
            ("SND.NXT", una.wrapping_add(60_000), SegmentVerdict::Accept),
        ];
        for (name, a, want) in cases {
            assert_eq!(s.receive(&ack(a)), want, "{name}");
        }
    }

    #[test]
    fn before_the_handshake_is_done_everything_goes_to_the_stack() {
        let mut s = SeqSpace::new(&seg(SYN, CLIENT_ISN, 0, 1), None);
        assert_eq!(s.receive(&seg(RST, CLIENT_ISN + 77, 0, 0)), SegmentVerdict::Accept, "no SYN-ACK seen yet");
        s.sent(&seg(SYN | ACK, ENI_ISN, CLIENT_ISN + 1, 1), None);
        assert_eq!(s.receive(&seg(RST, CLIENT_ISN + 77, 0, 0)), SegmentVerdict::Accept, "SYN-RECEIVED: smoltcp's");
        // An ACK of the wrong number does not complete it.
        assert_eq!(s.receive(&seg(ACK, CLIENT_ISN + 1, ENI_ISN, 0)), SegmentVerdict::Accept);
        assert!(!s.synchronized());
        // Nor does the stack's retransmitted SYN-ACK; a segment without SYN from it does.
        s.sent(&seg(SYN | ACK, ENI_ISN, CLIENT_ISN + 1, 1), None);
        assert!(!s.synchronized());
        s.sent(&seg(ACK, ENI_ISN.wrapping_add(1), CLIENT_ISN + 1, 100), None);
        assert!(s.synchronized());
        assert_eq!(s.receive(&seg(RST, CLIENT_ISN + 77, 0, 0)), SegmentVerdict::Challenge);
    }

    #[test]
    fn windows_are_scaled_only_when_both_sides_offered_it() {
        // The client offered no scaling: the ENI's windows are taken as sent.
        let mut s = SeqSpace::new(&seg(SYN, CLIENT_ISN, 0, 1), None);
        s.sent(&seg(SYN | ACK, ENI_ISN, CLIENT_ISN + 1, 1), Some(5));
        s.sent(&seg(ACK, ENI_ISN.wrapping_add(1), CLIENT_ISN + 1, 0), None);
        assert_eq!(s.receive(&seg(RST, CLIENT_ISN + 1 + 999, 0, 0)), SegmentVerdict::Challenge);
        assert_eq!(s.receive(&seg(RST, CLIENT_ISN + 1 + 1000, 0, 0)), SegmentVerdict::Drop);
    }

    #[test]
    fn a_challenge_is_a_bare_ack_far_past_snd_nxt() {
        let s = established();
        let mut pkt =
            crate::packet::sample::tcp(crate::packet::sample::CLIENT, crate::packet::sample::ENI, 1, 2, true, b"x");
        make_challenge(&mut pkt, &s);
        let m = crate::packet::parse(&pkt, false).unwrap();
        assert_eq!(m.tcp_flags, ACK);
        assert_eq!(m.ack, ENI_ISN.wrapping_add(1).wrapping_add(BEYOND_SENT));
        assert_eq!(m.payload(&pkt), b"x", "nothing else changes");
    }
}
