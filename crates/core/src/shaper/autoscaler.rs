//! AWS-like step-up and step-down of an ENI's rate under sustained demand.
//!
//! Timers: `up_after` (default 60 s) of saturation doubles the rate, up to
//! `max`; `down_after` (default 300 s) without saturation halves it, down to
//! `base`. Each step restarts the streak.

use std::time::{Duration, Instant};

use super::Rate;

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

    /// One demand sample (e.g. [`super::EniShaper::take_saturated`] once a second);
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
