//! A connection's rings, and the MTU smoltcp is told so its window edge
//! stays put.

/// Bytes in each of a connection's two smoltcp rings. 1 MiB lets the window
/// scale far past 64 KiB; measured: 256 KiB costs throughput at MTU 8500+.
pub const SOCKET_BUFFER: usize = 1 << 20;

/// Bytes per unit of the receive window smoltcp advertises: it scales the
/// window by the ring size (shift = bits of the capacity − 16, as in smoltcp).
pub const WINDOW_UNIT: usize = 1 << (usize::BITS - SOCKET_BUFFER.leading_zeros()).saturating_sub(16);

/// smoltcp's MTU: the ENI's, trimmed so the MSS it advertises (MTU − 40) is a
/// whole number of window units. smoltcp rounds its window down to a unit on
/// every ACK, so after a segment of any other size the window's right edge
/// moves back by a few bytes; a client that had filled the window then has
/// its last bytes trimmed and recovers them with a SACK retransmission and a
/// smaller congestion window. Full segments of a whole number of units keep
/// the edge in place. Measured, single stream up, alternating runs: MTU 1500
/// 17.8 → 19.5 Gbit/s, 8500 17.3 → 18.9, 65520 22.7 → 23.1; sender
/// retransmits 5–14 per 4 s run → 0. The cost: at most 31 bytes per segment.
pub fn stack_mtu(mtu: usize) -> usize {
    const HEADERS: usize = 40;
    mtu - (mtu - HEADERS) % WINDOW_UNIT
}

#[cfg(test)]
mod tests {
    use super::*;

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
