//! How one fuzz input becomes a sequence of events: records of
//! `[control][time step][length: u16 big-endian][bytes]`, the last one
//! taking whatever is left if its length runs past the end.
//!
//! One packet or message per input would only ever show a component its
//! first packet; a sequence lets the fuzzer build a handshake, then attack
//! the live connection, the conntrack entry, the TCP session's framing. The
//! header is four bytes so that AFL's byte-level mutations move lengths and
//! steps as readily as payloads.

use std::time::Duration;

/// One event of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Chooses what the bytes are (direction, transport, flags: each target says).
    pub control: u8,
    /// How far time moves before the event ([`step`]).
    pub step: u8,
    /// The packet or message.
    pub bytes: &'a [u8],
}

/// The records of `data`, in order; a trailing header shorter than four bytes is ignored.
pub fn records(mut data: &[u8]) -> impl Iterator<Item = Record<'_>> {
    std::iter::from_fn(move || {
        let [control, step, hi, lo, rest @ ..] = data else { return None };
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(rest.len());
        let (bytes, tail) = rest.split_at(len);
        data = tail;
        Some(Record { control: *control, step: *step, bytes })
    })
}

/// Encodes records in the format [`records`] reads (for seeds and tests).
pub fn encode(out: &mut Vec<u8>, control: u8, step: u8, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).expect("a record holds at most 65,535 bytes");
    out.extend_from_slice(&[control, step]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The time a record's step byte stands for: none for 0, else from 1 ms up
/// to about 200 days, spread logarithmically so that one byte reaches both
/// a retransmission's milliseconds and conntrack's five-day timeout.
pub fn step(b: u8) -> Duration {
    if b == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis((1u64 << (b >> 3)) * (1 + u64::from(b & 7)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_the_last_takes_the_rest() {
        let mut v = Vec::new();
        encode(&mut v, 1, 2, b"abc");
        encode(&mut v, 3, 4, b"");
        v.extend_from_slice(&[5, 6, 0xff, 0xff, b'x', b'y']);
        let got: Vec<Record<'_>> = records(&v).collect();
        assert_eq!(
            got,
            [
                Record { control: 1, step: 2, bytes: b"abc" },
                Record { control: 3, step: 4, bytes: b"" },
                Record { control: 5, step: 6, bytes: b"xy" },
            ]
        );
        assert_eq!(records(&[1, 2, 3]).count(), 0);
    }

    #[test]
    fn steps_reach_from_a_millisecond_past_five_days() {
        assert_eq!(step(0), Duration::ZERO);
        assert_eq!(step(1), Duration::from_millis(2));
        assert!(step(255) > Duration::from_secs(432_000));
    }
}
