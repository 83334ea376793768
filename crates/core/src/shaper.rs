//! Bandwidth shaping for an endpoint's ENI (sans-IO).
//!
//! AWS: "By default, each VPC endpoint can support a bandwidth of up to 10 Gbps
//! per Availability Zone, and automatically scales up to 100 Gbps" (PrivateLink
//! quotas; the source documents say 40 Gbps). So the limit is an *aggregate*
//! per endpoint per AZ, i.e. per ENI, not per connection: opening more
//! connections must not buy more bandwidth (USER-ASKS 17, toxiproxy #613).
//!
//! # Theory of operation
//! Nothing here touches a socket or a clock: every call takes `now`, which must
//! come from a monotonic clock (a `now` earlier than one already seen counts
//! as "no time passed").
//!
//! - [`TokenBucket`]: `rate` bytes per second refill a bucket of `burst` bytes.
//!   Tokens are kept in units of 1/(8·10⁹) byte, so a refill over `dt`
//!   nanoseconds at `r` bit/s adds exactly `r·dt` units: integer arithmetic,
//!   no rounding, no drift after hours.
//! - [`EniShaper`]: one per ENI, with one bucket per direction
//!   ([`Direction::Ingress`], client → service, and [`Direction::Egress`],
//!   service → client), both independent.
//!   Connections register and get a [`FlowShare`]. Fairness does not depend on
//!   the order in which the caller services connections: each direction keeps
//!   a *virtual time* `V`, the bytes a backlogged flow would have received in
//!   a perfectly fair (fluid) scheduler: with `n` backlogged flows `V` grows
//!   by `rate / n` per second. A flow may run at most [`EniShaper::lead`]
//!   bytes ahead of `V`, so whoever the caller services first, it cannot take
//!   the others' part. A flow that was idle restarts at `V - lead` (idling
//!   earns no hoarded credit); a backlogged flow's deficit is forgiven beyond
//!   a few leads (it was slow to poll, not robbed). A flow is
//!   *backlogged* when its last poll got less than it asked for; it stops being
//!   so when a poll is fully satisfied, when it unregisters, or when it has not
//!   polled for a while after its retry time ([`STALE_GRACE`]), which keeps a
//!   vanished flow from holding the others back.
//! - While some registered flow is not backlogged (it runs under its share),
//!   backlogged flows may not take the last `lead` bytes of the bucket: that
//!   reserve is what lets a light flow be served at once instead of queueing
//!   behind greedy ones. Light flows may use every token.
//! - [`Autoscaler`]: the optional AWS-like step-up/step-down of the rate.
//! - [`LossModel`] and [`Latency`]: teaching knobs, pure decisions.
//!
//! # Call order (per connection, per direction)
//! 1. `poll_grant(now, flow, dir, want)`: `want` is what the caller could move
//!    right now (bytes waiting in the rx ring, or free space in the tx ring).
//! 2. On `Grant::Now(n)`: move at most `n` bytes; if fewer moved, give the rest
//!    back with [`EniShaper::refund`] at once.
//! 3. On `Grant::Later(t)`: stop this direction; the shaper remembers `t`.
//!    The driver sleeps until [`EniShaper::poll_timeout`] and then calls
//!    [`EniShaper::handle_timeout`], which names every flow due for a retry.
//!
//! # Limits and their consequences
//! - The burst of an idle bucket goes to whoever asks first; fairness is
//!   counted from the moment flows are backlogged (so with 8 flows at
//!   100 Mbit/s and a 1 MB burst, the first flow is about 14 % ahead after 3 s,
//!   against 1 % at 1 Gbit/s).
//! - Fairness error: a backlogged flow is never more than `lead` ahead of `V`,
//!   so with `n` greedy flows each is within about `n·lead` bytes of its fair
//!   share at any moment; `lead` defaults to 1 ms of rate (at least
//!   [`MIN_QUANTUM`]), a few ms of traffic.
//! - `Later` instants are never closer than the time to gather one quantum
//!   (`min(want, lead)` bytes), so a shaped flow is woken about once per
//!   millisecond of traffic, not once per byte.
//! - Cost: `poll_grant` is O(1) and allocation-free. `handle_timeout` scans
//!   all flows (O(n)), once per wake-up.
//!
//! ## Not emulated
//! - AWS's exact scaling steps and timings are not published; [`Autoscaler`]
//!   uses documented, configurable ones.
//! - Packets-per-second limits and per-flow limits at AWS (a single flow is
//!   limited to about 5 Gbps elsewhere in EC2): only the aggregate is shaped.
//! - Shaping works by pausing the relay, so TCP's window slows the sender;
//!   nothing is dropped (AWS polices; here the client just sees a small
//!   window).

use std::fmt;
use std::num::NonZeroU64;
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::flow::Direction;

/// Token units per byte: tokens are kept in units of 1/(8·10⁹) byte, so
/// `rate_bits_per_s × elapsed_ns` is an exact refill.
const UNITS_PER_BYTE: u128 = 8_000_000_000;

/// Smallest retry quantum and fairness lead: one full-sized Ethernet frame,
/// so a slow shaped flow is woken per segment, not per byte.
pub const MIN_QUANTUM: u64 = 1500;

/// How much of the rate one quantum is: 1 ms (10 Gbit/s → 1.25 MB).
const QUANTUM_NANOS: u128 = 1_000_000;

/// A backlogged flow that has not polled within this long after its retry
/// time (or twice its wait, if longer) no longer counts as backlogged.
pub const STALE_GRACE: Duration = Duration::from_millis(50);

/// How often `poll_grant` itself sweeps stale flows if the driver does not
/// call `handle_timeout`.
const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// How many leads of deficit a backlogged flow may carry (see `poll_grant`).
const LAG_LEADS: u128 = 4;

/// Fixed-point scale of the virtual-time counters (bytes × 2³²), so `V`
/// advances by `granted / n` without losing the fraction.
const VSCALE: u128 = 1 << 32;

// ---------------------------------------------------------------------------
// Units
// ---------------------------------------------------------------------------

/// Why a rate or size string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// Nothing to parse.
    #[error("empty value")]
    Empty,
    /// No number at the start.
    #[error("{0:?}: expected a number followed by a unit, e.g. 10Gbit or 4MB")]
    NoNumber(String),
    /// A number without a unit.
    #[error("{0:?}: missing unit (bit rates: bit, kbit, Mbit, Gbit, Tbit; sizes: B, KB, MB, GB, KiB, MiB, GiB)")]
    MissingUnit(String),
    /// A unit we do not know.
    #[error("{input:?}: unknown unit {unit:?} (bit rates: bit, kbit, Mbit, Gbit, Tbit or B/s, MB/s, ...; sizes: B, KB, MB, GB, KiB, MiB, GiB)")]
    UnknownUnit {
        /// The whole input.
        input: String,
        /// The unit as written.
        unit: String,
    },
    /// Zero: shaping at zero would stall every connection.
    #[error("{0:?}: must be greater than zero (leave the setting out to disable shaping)")]
    Zero(String),
    /// Does not fit in 64 bits.
    #[error("{0:?}: too large")]
    Overflow(String),
    /// A fraction of a bit or byte.
    #[error("{0:?}: not a whole number of {1}")]
    Fractional(String, &'static str),
}

/// Splits "1.5Gbit" into the exact value `number × multiplier` (checked to
/// be whole) and the unit string.
fn parse_scaled(input: &str, unit_of: impl Fn(&str) -> Option<u128>, what: &'static str) -> Result<u64, UnitError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(UnitError::Empty);
    }
    let num_end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = (&s[..num_end], s[num_end..].trim());
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() && frac.is_empty() || frac.contains('.') {
        return Err(UnitError::NoNumber(input.to_string()));
    }
    if unit.is_empty() {
        return Err(UnitError::MissingUnit(input.to_string()));
    }
    let mult =
        unit_of(unit).ok_or_else(|| UnitError::UnknownUnit { input: input.to_string(), unit: unit.to_string() })?;
    let overflow = || UnitError::Overflow(input.to_string());
    if int.len() > 30 || frac.len() > 30 {
        return Err(overflow());
    }
    let int_v: u128 = if int.is_empty() { 0 } else { int.parse().map_err(|_| overflow())? };
    let frac_v: u128 = if frac.is_empty() { 0 } else { frac.parse().map_err(|_| overflow())? };
    let denom = 10u128.checked_pow(frac.len() as u32).ok_or_else(overflow)?;
    let frac_scaled = frac_v.checked_mul(mult).ok_or_else(overflow)?;
    if frac_scaled % denom != 0 {
        return Err(UnitError::Fractional(input.to_string(), what));
    }
    let total = int_v.checked_mul(mult).and_then(|v| v.checked_add(frac_scaled / denom)).ok_or_else(overflow)?;
    if total == 0 {
        return Err(UnitError::Zero(input.to_string()));
    }
    u64::try_from(total).map_err(|_| overflow())
}

/// Byte-size multiplier: KB/MB/GB/TB are 1000-based, KiB/MiB/GiB/TiB 1024-based.
fn byte_unit(unit: &str) -> Option<u128> {
    Some(match unit {
        "B" => 1,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return None,
    })
}

/// Bit-rate multiplier (bits per second): decimal SI, case-insensitive
/// (`mbit` cannot mean millibits); also byte rates written `<size>/s`.
fn rate_unit(unit: &str) -> Option<u128> {
    if let Some(bytes) = unit.strip_suffix("/s") {
        return byte_unit(bytes.trim()).map(|m| m * 8);
    }
    Some(match unit.to_ascii_lowercase().as_str() {
        "bit" => 1,
        "kbit" => 1_000,
        "mbit" => 1_000_000,
        "gbit" => 1_000_000_000,
        "tbit" => 1_000_000_000_000,
        _ => return None,
    })
}

/// A rate in bits per second, never zero.
///
/// Parsed from "10Gbit", "500Mbit", "1.5Gbit", "64kbit" (decimal SI: 1 kbit
/// = 1000 bit/s) or byte rates "100MB/s", "4MiB/s" (see [`ByteSize`] units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rate(NonZeroU64);

impl Rate {
    /// AWS's default per-AZ endpoint bandwidth, 10 Gbit/s.
    pub const AWS_DEFAULT: Rate = Rate::from_bits_per_sec(NonZeroU64::new(10_000_000_000).unwrap());

    /// A rate of `bits` per second.
    pub const fn from_bits_per_sec(bits: NonZeroU64) -> Rate {
        Rate(bits)
    }
    /// Bits per second.
    pub fn bits_per_sec(self) -> u64 {
        self.0.get()
    }
    /// Bytes per second, rounded down.
    pub fn bytes_per_sec(self) -> u64 {
        self.0.get() / 8
    }
    /// This rate times `k`, saturating.
    pub fn saturating_mul(self, k: u64) -> Rate {
        Rate(self.0.saturating_mul(NonZeroU64::new(k.max(1)).expect("max(1)")))
    }
    /// This rate divided by `k`, at least 1 bit/s.
    pub fn div_at_least_one(self, k: u64) -> Rate {
        Rate(NonZeroU64::new((self.0.get() / k.max(1)).max(1)).expect("max(1)"))
    }
}

impl FromStr for Rate {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Rate, UnitError> {
        let bits = parse_scaled(s, rate_unit, "bits per second")?;
        Ok(Rate(NonZeroU64::new(bits).expect("parse_scaled refuses zero")))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0.get();
        for (m, u) in [(1_000_000_000_000, "Tbit"), (1_000_000_000, "Gbit"), (1_000_000, "Mbit"), (1_000, "kbit")] {
            if b.is_multiple_of(m) {
                return write!(f, "{}{u}", b / m);
            }
        }
        write!(f, "{b}bit")
    }
}

/// A size in bytes, never zero: "4MB", "512KB" (1000-based), "1MiB" (1024-based), "1500B".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(NonZeroU64);

impl ByteSize {
    /// `bytes` bytes.
    pub const fn new(bytes: NonZeroU64) -> ByteSize {
        ByteSize(bytes)
    }
    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        self.0.get()
    }
}

impl FromStr for ByteSize {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<ByteSize, UnitError> {
        let b = parse_scaled(s, byte_unit, "bytes")?;
        Ok(ByteSize(NonZeroU64::new(b).expect("parse_scaled refuses zero")))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}B", self.0.get())
    }
}

// ---------------------------------------------------------------------------
// Token bucket
// ---------------------------------------------------------------------------

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
    rate_bits: u64,
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
        Rate(NonZeroU64::new(self.rate_bits).expect("rate is never zero"))
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
    fn take(&mut self, n: u64) {
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
fn duration_from_nanos(nanos: u128) -> Duration {
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

// ---------------------------------------------------------------------------
// The ENI shaper
// ---------------------------------------------------------------------------

/// A registered connection's handle in an [`EniShaper`]; stale handles are harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowShare {
    index: u32,
    generation: u32,
}

impl FlowShare {
    /// A dense slot number (reused after `unregister`), for the caller's `Vec` lookups.
    pub fn index(self) -> usize {
        self.index as usize
    }
}

/// Rate and burst of each direction of an ENI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShaperConfig {
    /// Client → service ([`Direction::Ingress`]).
    pub to_service: (Rate, ByteSize),
    /// Service → client ([`Direction::Egress`]).
    pub to_client: (Rate, ByteSize),
}

impl ShaperConfig {
    /// The same rate and burst both ways.
    pub fn symmetric(rate: Rate, burst: ByteSize) -> ShaperConfig {
        ShaperConfig { to_service: (rate, burst), to_client: (rate, burst) }
    }
}

/// Per-flow, per-direction state.
#[derive(Debug, Clone, Copy, Default)]
struct FlowDir {
    /// Virtual bytes served (× VSCALE).
    served: u128,
    backlogged: bool,
    /// A backlogged flow that has not polled by then stops counting.
    stale_at: Option<Instant>,
    /// The retry time handed out and not yet polled.
    wake_at: Option<Instant>,
}

#[derive(Debug, Clone, Default)]
struct Slot {
    generation: u32,
    live: bool,
    dirs: [FlowDir; 2],
}

#[derive(Debug, Clone)]
struct DirState {
    bucket: TokenBucket,
    /// Virtual time (× VSCALE): the fair share of a flow backlogged all along.
    vtime: u128,
    backlogged: u32,
    /// A grant was cut short by the bucket since the last `take_saturated`.
    saturated: bool,
    /// When `vtime` was last advanced.
    vtime_at: Option<Instant>,
}

impl DirState {
    /// Advances the virtual time as a fluid fair scheduler would: each of the
    /// `backlogged` flows earns `rate / backlogged` per second. Being driven by
    /// time, not by grants, it cannot stall when every flow is held back.
    fn advance_vtime(&mut self, now: Instant) {
        let Some(at) = self.vtime_at.filter(|&at| now > at) else {
            self.vtime_at = Some(self.vtime_at.map_or(now, |at| at.max(now)));
            return;
        };
        if self.backlogged > 0 {
            let dt = (now - at).as_nanos();
            let earned = dt * self.bucket.rate_bits as u128 * VSCALE / (UNITS_PER_BYTE * self.backlogged as u128);
            self.vtime = self.vtime.saturating_add(earned);
        }
        self.vtime_at = Some(now);
    }
}

/// The aggregate shaper of one ENI: two token buckets and fair sharing among
/// its connections (see the module doc for the algorithm and call order).
#[derive(Debug, Clone)]
pub struct EniShaper {
    dirs: [DirState; 2],
    slots: Vec<Slot>,
    free: Vec<u32>,
    registered: u32,
    next_wake: Option<Instant>,
    next_sweep: Option<Instant>,
}

impl EniShaper {
    /// A shaper with full buckets and no flows.
    pub fn new(cfg: ShaperConfig) -> EniShaper {
        let dir = |(rate, burst)| DirState {
            bucket: TokenBucket::new(rate, burst),
            vtime: 0,
            backlogged: 0,
            saturated: false,
            vtime_at: None,
        };
        EniShaper {
            dirs: [dir(cfg.to_service), dir(cfg.to_client)],
            slots: Vec::new(),
            free: Vec::new(),
            registered: 0,
            next_wake: None,
            next_sweep: None,
        }
    }

    /// Adds a connection (allocates only here, when the slab grows).
    pub fn register(&mut self) -> FlowShare {
        self.registered += 1;
        let init = |d: &DirState| FlowDir { served: d.vtime.saturating_sub(lead_v(d)), ..FlowDir::default() };
        let dirs = [init(&self.dirs[0]), init(&self.dirs[1])];
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            slot.live = true;
            slot.dirs = dirs;
            FlowShare { index, generation: slot.generation }
        } else {
            self.slots.push(Slot { generation: 0, live: true, dirs });
            FlowShare { index: (self.slots.len() - 1) as u32, generation: 0 }
        }
    }

    /// Removes a connection; its handle becomes stale.
    pub fn unregister(&mut self, flow: FlowShare) {
        let Some(slot) = self.slots.get_mut(flow.index as usize) else { return };
        if !slot.live || slot.generation != flow.generation {
            return;
        }
        for (fd, d) in slot.dirs.iter_mut().zip(self.dirs.iter_mut()) {
            if fd.backlogged {
                d.backlogged -= 1;
            }
        }
        slot.live = false;
        slot.generation = slot.generation.wrapping_add(1);
        self.registered -= 1;
        self.free.push(flow.index);
    }

    /// Registered connections.
    pub fn flows(&self) -> usize {
        self.registered as usize
    }

    /// The bucket of one direction (rate, burst, tokens).
    pub fn bucket(&self, dir: Direction) -> &TokenBucket {
        &self.dirs[dir.index()].bucket
    }

    /// Most bytes a backlogged flow may run ahead of its fair share in `dir`.
    pub fn lead(&self, dir: Direction) -> u64 {
        self.dirs[dir.index()].bucket.quantum()
    }

    /// Changes one direction's rate (e.g. from [`Autoscaler`]).
    pub fn set_rate(&mut self, dir: Direction, rate: Rate) {
        self.dirs[dir.index()].bucket.set_rate(rate);
    }

    /// Whether the bucket cut a grant short since the last call (demand ≥ rate).
    pub fn take_saturated(&mut self, dir: Direction) -> bool {
        std::mem::take(&mut self.dirs[dir.index()].saturated)
    }

    /// How many bytes `flow` may move in `dir` now, or when to ask again.
    ///
    /// Grants at most `want`, at least 1 byte when any is granted. A handle
    /// that is stale is shaped by the aggregate bucket alone.
    pub fn poll_grant(&mut self, now: Instant, flow: FlowShare, dir: Direction, want: usize) -> Grant {
        if self.next_sweep.is_some_and(|t| now >= t) {
            self.sweep(now, |_| {});
        }
        let d = &mut self.dirs[dir.index()];
        d.bucket.refill(now);
        if want == 0 {
            return Grant::Now(0);
        }
        let Some(slot) = self.slots.get_mut(flow.index as usize).filter(|s| s.live && s.generation == flow.generation)
        else {
            let g = d.bucket.poll_grant(now, want);
            d.saturated |= matches!(g, Grant::Later(_));
            return g;
        };
        let f = &mut slot.dirs[dir.index()];
        f.wake_at = None;
        d.advance_vtime(now);
        let lead = lead_v(d);
        if f.backlogged {
            // A deficit older than a few leads is forgiven, so a flow that was
            // slow to poll cannot later take a long run of the bucket.
            f.served = f.served.max(d.vtime.saturating_sub(LAG_LEADS * lead));
        } else {
            // Back from idle (or under its share): no credit beyond one lead.
            f.served = f.served.max(d.vtime.saturating_sub(lead));
        }
        let others = d.backlogged - f.backlogged as u32;
        // Fairness cap: only binds when someone else is waiting too.
        let allowance = if others == 0 {
            u64::MAX
        } else {
            ((d.vtime + lead).saturating_sub(f.served) / VSCALE).min(u64::MAX as u128) as u64
        };
        // Light flows exist: greedy ones leave them one quantum of tokens.
        let reserve = if f.backlogged && self.registered > d.backlogged { d.bucket.quantum() } else { 0 };
        let usable = d.bucket.available().saturating_sub(reserve);
        let n = (want as u64).min(usable).min(allowance);
        if n < want as u64 && usable <= allowance {
            d.saturated = true;
        }
        let was_backlogged = f.backlogged;
        f.backlogged = n < want as u64;
        match (was_backlogged, f.backlogged) {
            (false, true) => {
                d.backlogged += 1;
                // Joining the queue: start level with the others, whatever came before.
                f.served = f.served.min(d.vtime + lead);
            }
            (true, false) => d.backlogged -= 1,
            _ => {}
        }
        if n > 0 {
            d.bucket.take(n);
            let nv = n as u128 * VSCALE;
            f.served += nv;
            if f.backlogged {
                f.stale_at = Some(now + STALE_GRACE);
                self.next_sweep.get_or_insert(now + SWEEP_EVERY);
            }
            return Grant::Now(n as usize);
        }
        // Nothing now: wait for the tokens and for the fair share, whichever is later.
        let q = (want as u64).min(d.bucket.quantum());
        let mut at = d.bucket.ready_at(reserve + q);
        if allowance < q {
            let behind = (f.served + q as u128 * VSCALE).saturating_sub(d.vtime + lead).div_ceil(VSCALE);
            // V advances at about rate / n while the others are served.
            let nanos = behind * d.backlogged as u128 * UNITS_PER_BYTE / d.bucket.rate_bits as u128;
            at = at.max(now + duration_from_nanos(nanos));
        }
        let at = at.max(now + Duration::from_nanos(1));
        f.wake_at = Some(at);
        f.stale_at = Some(at + (at - now) + STALE_GRACE);
        self.next_wake = Some(self.next_wake.map_or(at, |w| w.min(at)));
        self.next_sweep.get_or_insert(now + SWEEP_EVERY);
        Grant::Later(at)
    }

    /// Gives back bytes granted to `flow` but not moved (call right after the grant).
    pub fn refund(&mut self, flow: FlowShare, dir: Direction, bytes: usize) {
        let d = &mut self.dirs[dir.index()];
        d.bucket.refund(bytes);
        if let Some(slot) =
            self.slots.get_mut(flow.index as usize).filter(|s| s.live && s.generation == flow.generation)
        {
            let f = &mut slot.dirs[dir.index()];
            f.served = f.served.saturating_sub(bytes as u128 * VSCALE);
        }
    }

    /// The next instant [`EniShaper::handle_timeout`] has work: a retry falls due or a sweep.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.next_wake, self.next_sweep) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Calls `wake` once for every flow whose retry time has come, and stops
    /// counting flows that went quiet as backlogged. O(flows).
    pub fn handle_timeout(&mut self, now: Instant, wake: impl FnMut(FlowShare)) {
        if self.poll_timeout().is_some_and(|t| now >= t) {
            self.sweep(now, wake);
        }
    }

    fn sweep(&mut self, now: Instant, mut wake: impl FnMut(FlowShare)) {
        for d in &mut self.dirs {
            d.advance_vtime(now);
        }
        let mut next_wake: Option<Instant> = None;
        let mut any_backlogged = false;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if !slot.live {
                continue;
            }
            let mut due = false;
            for (f, d) in slot.dirs.iter_mut().zip(self.dirs.iter_mut()) {
                if let Some(t) = f.wake_at {
                    if t <= now {
                        f.wake_at = None;
                        due = true;
                    } else {
                        next_wake = Some(next_wake.map_or(t, |w| w.min(t)));
                    }
                }
                if f.backlogged && f.stale_at.is_some_and(|t| t <= now) {
                    f.backlogged = false;
                    d.backlogged -= 1;
                }
                any_backlogged |= f.backlogged;
            }
            if due {
                wake(FlowShare { index: i as u32, generation: slot.generation });
            }
        }
        self.next_wake = next_wake;
        self.next_sweep = any_backlogged.then(|| now + SWEEP_EVERY);
    }
}

/// The fairness lead of a direction, in virtual units.
fn lead_v(d: &DirState) -> u128 {
    d.bucket.quantum() as u128 * VSCALE
}

// ---------------------------------------------------------------------------
// Autoscaling
// ---------------------------------------------------------------------------

/// AWS-like automatic scaling of an ENI's rate.
///
/// AWS only says the bandwidth "automatically scales" from 10 Gbps; the steps
/// here are privlink's: demand that saturates the rate for `up_after` doubles
/// it (up to `max`); `down_after` without saturation halves it (down to `base`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoscaleConfig {
    /// The starting and lowest rate.
    pub base: Rate,
    /// The highest rate.
    pub max: Rate,
    /// Sustained saturation before a step up (default 60 s).
    pub up_after: Duration,
    /// Sustained lack of saturation before a step down (default 300 s).
    pub down_after: Duration,
}

impl AutoscaleConfig {
    /// `base` to `max` with the default step timings.
    pub fn new(base: Rate, max: Rate) -> AutoscaleConfig {
        AutoscaleConfig {
            base,
            max: max.max(base),
            up_after: Duration::from_secs(60),
            down_after: Duration::from_secs(300),
        }
    }
}

/// The scaling state machine: feed it samples, apply the rate it returns.
#[derive(Debug, Clone)]
pub struct Autoscaler {
    cfg: AutoscaleConfig,
    current: Rate,
    /// Since when the samples have all been saturated / all unsaturated.
    streak_since: Option<(bool, Instant)>,
}

impl Autoscaler {
    /// Starts at `cfg.base`.
    pub fn new(cfg: AutoscaleConfig) -> Autoscaler {
        Autoscaler { cfg, current: cfg.base, streak_since: None }
    }

    /// The current rate.
    pub fn rate(&self) -> Rate {
        self.current
    }

    /// One demand sample (e.g. [`EniShaper::take_saturated`] once a second);
    /// returns the rate to apply from now on.
    pub fn handle_sample(&mut self, now: Instant, saturated: bool) -> Rate {
        let since = match self.streak_since {
            Some((s, t)) if s == saturated => t,
            _ => {
                self.streak_since = Some((saturated, now));
                now
            }
        };
        let held = now.saturating_duration_since(since);
        if saturated && held >= self.cfg.up_after && self.current < self.cfg.max {
            self.current = self.current.saturating_mul(2).min(self.cfg.max);
            self.streak_since = Some((true, now));
        } else if !saturated && held >= self.cfg.down_after && self.current > self.cfg.base {
            self.current = self.current.div_at_least_one(2).max(self.cfg.base);
            self.streak_since = Some((false, now));
        }
        self.current
    }
}

// ---------------------------------------------------------------------------
// Teaching knobs
// ---------------------------------------------------------------------------

/// Random packet loss with a seeded xorshift64 generator (reproducible runs).
#[derive(Debug, Clone)]
pub struct LossModel {
    state: u64,
    per_million: u32,
}

impl LossModel {
    /// Drops `per_million` of 1 000 000 packets on average; `seed` 0 is replaced.
    pub fn new(per_million: u32, seed: u64) -> LossModel {
        LossModel {
            state: if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed },
            per_million: per_million.min(1_000_000),
        }
    }

    /// Whether to drop the next packet.
    pub fn should_drop(&mut self) -> bool {
        if self.per_million == 0 {
            return false;
        }
        // xorshift64 (Marsaglia 2003): fast, good enough for a coin toss.
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x % 1_000_000 < self.per_million as u64
    }
}

/// Added one-way latency: a packet that arrived at `t` may leave at `t + delay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Latency {
    /// The delay to add.
    pub delay: Duration,
}

impl Latency {
    /// When a packet that arrived at `arrived` may be released.
    pub fn release_at(&self, arrived: Instant) -> Instant {
        arrived + self.delay
    }
}

#[cfg(test)]
mod tests;
