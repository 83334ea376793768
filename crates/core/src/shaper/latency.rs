//! Added one-way latency for teaching: a pure release-time decision.

use std::time::{Duration, Instant};

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
