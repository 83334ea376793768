//! A token bucket in exact integer arithmetic (the units are in the
//! shaper's module doc). Its retry quantum, 1 ms of rate within
//! [`MIN_QUANTUM`] and the burst, sets how far apart `Later` instants are.

use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use super::{ByteSize, Rate};

/// Token units per byte: tokens are kept in units of 1/(8·10⁹) byte, so
/// `rate_bits_per_s × elapsed_ns` is an exact refill.
pub(super) const UNITS_PER_BYTE: u128 = 8_000_000_000;

/// Smallest retry quantum and fairness lead: one full-sized Ethernet frame,
/// so a slow shaped flow is woken per segment, not per byte.
pub const MIN_QUANTUM: u64 = 1500;

/// How much of the rate one quantum is: 1 ms (10 Gbit/s → 1.25 MB).
const QUANTUM_NANOS: u128 = 1_000_000;

/// The answer to "how many bytes may move now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// Move at most this many bytes now (0 only when 0 was asked for).
    Now(usize),
    /// Nothing now; ask again at this instant.
    Later(Instant),
}

/// A token bucket: `rate` refills up to `burst` bytes; starts full.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    pub(super) rate_bits: u64,
    /// Capacity in units.
    cap: u128,
    /// Current tokens in units (≤ cap).
    tokens: u128,
    /// Time of the last refill: the latest `now` seen.
    last: Option<Instant>,
    /// Retry quantum in bytes.
    quantum: u64,
}

impl TokenBucket {
    /// A full bucket of `burst` bytes refilled at `rate`.
    pub fn new(rate: Rate, burst: ByteSize) -> TokenBucket {
        let cap = burst.bytes() as u128 * UNITS_PER_BYTE;
        let mut b = TokenBucket { rate_bits: 0, cap, tokens: cap, last: None, quantum: 0 };
        b.set_rate(rate);
        b
    }

    /// Changes the rate; tokens already in the bucket stay.
    pub fn set_rate(&mut self, rate: Rate) {
        self.rate_bits = rate.bits_per_sec();
        // One quantum = 1 ms of rate, at least one frame, at most the burst.
        let per_ms = (self.rate_bits as u128 * QUANTUM_NANOS / UNITS_PER_BYTE) as u64;
        self.quantum = per_ms.max(MIN_QUANTUM).min(self.burst());
    }

    /// The rate.
    pub fn rate(&self) -> Rate {
        Rate::from_bits_per_sec(NonZeroU64::new(self.rate_bits).expect("rate is never zero"))
    }

    /// The capacity in bytes.
    pub fn burst(&self) -> u64 {
        (self.cap / UNITS_PER_BYTE) as u64
    }

    /// Bytes one retry waits for: 1 ms of rate, within [`MIN_QUANTUM`] and the burst.
    pub fn quantum(&self) -> u64 {
        self.quantum
    }

    /// Whole bytes available now (after [`TokenBucket::refill`]).
    pub fn available(&self) -> u64 {
        (self.tokens / UNITS_PER_BYTE) as u64
    }

    /// Adds the tokens earned since the last call; a `now` in the past adds none.
    pub fn refill(&mut self, now: Instant) {
        match self.last {
            None => self.last = Some(now),
            Some(last) if now > last => {
                // u128: 100 Gbit/s × a year of nanoseconds still fits.
                let dt = (now - last).as_nanos();
                self.tokens = self.tokens.saturating_add(dt.saturating_mul(self.rate_bits as u128)).min(self.cap);
                self.last = Some(now);
            }
            Some(_) => {}
        }
    }

    /// Takes `n` whole bytes (the caller checked `available`).
    pub(super) fn take(&mut self, n: u64) {
        self.tokens -= n as u128 * UNITS_PER_BYTE;
    }

    /// Gives back `n` unused bytes (never above the burst).
    pub fn refund(&mut self, n: usize) {
        self.tokens = self.tokens.saturating_add(n as u128 * UNITS_PER_BYTE).min(self.cap);
    }

    /// When `bytes` (capped at the burst) will be available; `now` if already.
    pub fn ready_at(&self, bytes: u64) -> Instant {
        let last = self.last.expect("refill() ran before ready_at()");
        let need = (bytes.min(self.burst()) as u128 * UNITS_PER_BYTE).saturating_sub(self.tokens);
        // Round up so that at the returned instant the bytes really are there.
        let nanos = need.div_ceil(self.rate_bits as u128);
        last + duration_from_nanos(nanos)
    }

    /// Grants up to `want` bytes: everything available if less than asked
    /// (at least 1 byte if any), else the instant at which
    /// `min(want, quantum)` bytes will be available.
    pub fn poll_grant(&mut self, now: Instant, want: usize) -> Grant {
        self.refill(now);
        if want == 0 {
            return Grant::Now(0);
        }
        let avail = self.available();
        if avail > 0 {
            let n = avail.min(want as u64);
            self.take(n);
            return Grant::Now(n as usize);
        }
        Grant::Later(self.ready_at((want as u64).min(self.quantum)).max(now + Duration::from_nanos(1)))
    }
}

/// `nanos` as a `Duration`, saturating at about 584 years.
pub(super) fn duration_from_nanos(nanos: u128) -> Duration {
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}
