//! The aggregate shaper of one ENI: two token buckets (one per
//! [`Direction`]) and fair sharing among the ENI's connections by virtual
//! time, whatever order the caller services them in (the algorithm, its
//! limits and the call order are in the shaper's module doc).
//!
//! Timers: a backlogged flow that stops polling stops counting after
//! [`STALE_GRACE`] past its retry time; `poll_grant` sweeps such flows every
//! 100 ms (`SWEEP_EVERY`) even if the driver never calls `handle_timeout`.

use std::time::{Duration, Instant};

use super::token_bucket::{duration_from_nanos, UNITS_PER_BYTE};
use super::{ByteSize, Grant, Rate, TokenBucket};
use crate::flow::Direction;

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

    /// Changes one direction's rate (e.g. from [`super::Autoscaler`]).
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
