//! A connection's rings, and the MTU smoltcp is told so its window edge
//! stays put.
//!
//! # A ring's memory
//!
//! A ring must cost memory only as far as data has reached into it, and
//! give it back when its socket goes: a handshake-only connection then
//! costs a page per ring, whatever came before it. glibc's malloc does that
//! for a fresh process only. It maps blocks of 128 KiB or more from the
//! kernel (untouched pages, `calloc` need not zero them; unmapped on
//! `free`), but the first such block freed raises that threshold to the
//! block's size (its dynamic mmap threshold), so every later ring comes
//! from the heap: reused memory, which `calloc` zeroes page by page (2 MiB
//! resident per connection, even one that never carried a byte) and which
//! stays with the process when freed. Measured with `benches/churn.rs`, ten
//! rounds of 1,000 handshake-only connections: RSS 7 MiB at rest, 12 after
//! the first round, 217 after the second, 1,952 after the tenth with no
//! connection open, and 3,442 MiB with 10,000 idle connections after that.
//! [`ring`] therefore fixes the threshold at [`SOCKET_BUFFER`] before the
//! first ring (glibc's `M_MMAP_THRESHOLD`, which also ends the dynamic
//! raising): every ring is mapped fresh and unmapped when freed; smaller
//! blocks stay on the heap as before. Then, the same way: 23 MiB after the
//! tenth round, 113 MiB with 10,000 idle connections, and 1,000 connections
//! open in 0.11–0.37 s instead of 0.50–0.77 s (no zeroing); see
//! `benches/README.md`, "Connection churn".
//!
//! smoltcp fixes a socket's window scale from its receive ring's size when
//! it listens and cannot swap rings, so a ring cannot grow with the window;
//! one that has carried a megabyte stays touched while its connection
//! lives. The spare sockets ([`super::SPARE_SOCKETS`]) keep their rings'
//! touched pages (at most 2 × [`SOCKET_BUFFER`] each) for the next SYN.

use smoltcp::socket::tcp;

/// Bytes in each of a connection's two smoltcp rings. 1 MiB lets the window
/// scale far past 64 KiB; measured: 256 KiB costs throughput at MTU 8500+.
pub const SOCKET_BUFFER: usize = 1 << 20;

/// One of a connection's two rings, [`SOCKET_BUFFER`] bytes, mapped fresh
/// from the kernel (see the module doc): its pages cost memory once data
/// reaches them, and go back when it is freed.
pub fn ring() -> tcp::SocketBuffer<'static> {
    static MAPPED: std::sync::Once = std::sync::Once::new();
    MAPPED.call_once(map_rings);
    tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER])
}

/// Has glibc's malloc map every block of a ring's size or more, always.
fn map_rings() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt sets a malloc parameter under malloc's own lock.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, SOCKET_BUFFER as libc::c_int);
    }
}

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
