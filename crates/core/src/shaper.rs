//! Bandwidth shaping for an endpoint's ENI (sans-IO).
//!
//! AWS: "By default, each VPC endpoint can support a bandwidth of up to 10 Gbps
//! per Availability Zone, and automatically scales up to 100 Gbps" (PrivateLink
//! quotas; the source documents say 40 Gbps). So the limit is an *aggregate*
//! per endpoint per AZ, i.e. per ENI, not per connection: opening more
//! connections must not buy more bandwidth (as users of toxiproxy asked, its issue #613).
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
//!   ([`crate::flow::Direction::Ingress`], client → service, and
//!   [`crate::flow::Direction::Egress`], service → client), both
//!   independent. Connections register and get a [`FlowShare`]. Fairness does not depend on
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

mod autoscaler;
mod eni_shaper;
mod latency;
mod loss;
mod token_bucket;
mod units;

pub use autoscaler::{AutoscaleConfig, Autoscaler};
pub use eni_shaper::{EniShaper, FlowShare, ShaperConfig, STALE_GRACE};
pub use latency::Latency;
pub use loss::LossModel;
pub use token_bucket::{Grant, TokenBucket, MIN_QUANTUM};
pub use units::{ByteSize, Rate, UnitError};

#[cfg(test)]
mod tests;
