//! How often one kind of failure may print a log line.
//!
//! A refused client, a REJECT by a security group or a network ACL, a stream
//! reset by the SNI check: each is one line at `info`, so a user sees it at
//! the default level. A flood (a scanner, a retrying client, a NACL that
//! denies every reply of a bulk flow) must not become a line per packet, so
//! each kind has a token bucket: [`LINE_BURST`] lines at once, then one per
//! [`LINE_INTERVAL`]; the rest are counted and the next line printed says how
//! many were held back. Pure: the caller passes the `Instant` and prints.
//!
//! | limit | value | consequence |
//! |---|---|---|
//! | [`LINE_BURST`] | 10 lines | after a quiet spell, the first ten of a kind print at once |
//! | [`LINE_INTERVAL`] | 1 s | then one more line of that kind per second; the others are counted |

use std::fmt;
use std::time::{Duration, Instant};

/// Lines of one kind printed at once after a quiet spell.
pub const LINE_BURST: u32 = 10;
/// One more line of a kind may print each interval once the burst is spent.
pub const LINE_INTERVAL: Duration = Duration::from_secs(1);

/// The line budget of one kind of event.
#[derive(Debug, Clone)]
pub struct LogLimit {
    /// Lines that may print now.
    tokens: u32,
    /// When the budget last gained a line (or was full); `None` before the first event.
    refilled: Option<Instant>,
    /// Events whose line was held back since the last printed one.
    held_back: u64,
}

impl Default for LogLimit {
    fn default() -> Self {
        LogLimit { tokens: LINE_BURST, refilled: None, held_back: 0 }
    }
}

impl LogLimit {
    /// Counts one event at `now`. `Some(n)`: print its line, and say that `n`
    /// more were held back since the last line; `None`: stay quiet (it is counted).
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        let since = *self.refilled.get_or_insert(now);
        let gained = now.saturating_duration_since(since).as_nanos() / LINE_INTERVAL.as_nanos();
        if gained > 0 {
            let tokens = u128::from(self.tokens) + gained;
            self.tokens = tokens.min(u128::from(LINE_BURST)) as u32;
            // A full budget gains nothing while it waits; a partial one keeps
            // the remainder of the interval it is in.
            self.refilled = Some(if self.tokens == LINE_BURST { now } else { since + LINE_INTERVAL * gained as u32 });
        }
        if self.tokens == 0 {
            self.held_back += 1;
            return None;
        }
        self.tokens -= 1;
        Some(std::mem::take(&mut self.held_back))
    }
}

/// The note a printed line carries about the lines held back before it:
/// nothing if none were, else ` (N more like it not logged)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldBack(pub u64);

impl fmt::Display for HeldBack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => Ok(()),
            n => write!(f, " ({n} more like it not logged)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printed(l: &mut LogLimit, at: Instant, n: usize) -> Vec<Option<u64>> {
        (0..n).map(|_| l.allow(at)).collect()
    }

    #[test]
    fn a_flood_prints_the_burst_then_one_line_per_interval() {
        let t0 = Instant::now();
        let mut l = LogLimit::default();
        let first = printed(&mut l, t0, 1000);
        assert_eq!(first.iter().filter(|p| p.is_some()).count(), LINE_BURST as usize);
        assert!(first[..LINE_BURST as usize].iter().all(|p| *p == Some(0)));
        // Half an interval later: still nothing.
        assert_eq!(l.allow(t0 + LINE_INTERVAL / 2), None);
        // One interval after the flood began: one line, which tells what was held back.
        assert_eq!(l.allow(t0 + LINE_INTERVAL), Some(1000 - u64::from(LINE_BURST) + 1));
        assert_eq!(l.allow(t0 + LINE_INTERVAL), None);
        // Ten seconds of 100 events a second print ten lines, one per second.
        let mut lines = 0;
        for ms in (1000..11_000).step_by(10) {
            lines += usize::from(l.allow(t0 + Duration::from_millis(ms + 10)).is_some());
        }
        assert_eq!(lines, 10);
    }

    #[test]
    fn a_quiet_spell_refills_the_burst_and_no_more() {
        let t0 = Instant::now();
        let mut l = LogLimit::default();
        printed(&mut l, t0, 50);
        let later = t0 + LINE_INTERVAL * 3600;
        let after = printed(&mut l, later, 50);
        assert_eq!(after.iter().filter(|p| p.is_some()).count(), LINE_BURST as usize, "the burst, not an hour's worth");
        assert_eq!(after[0], Some(40), "the 40 held back before the quiet spell");
    }

    #[test]
    fn a_partial_budget_keeps_its_interval() {
        let t0 = Instant::now();
        let mut l = LogLimit::default();
        printed(&mut l, t0, LINE_BURST as usize);
        // 1.5 intervals: one line gained, and half an interval toward the next.
        assert!(l.allow(t0 + LINE_INTERVAL * 3 / 2).is_some());
        assert_eq!(l.allow(t0 + LINE_INTERVAL * 3 / 2), None);
        assert!(l.allow(t0 + LINE_INTERVAL * 2).is_some(), "the next line one interval after the first gain");
    }

    #[test]
    fn the_note_says_how_many_were_held_back() {
        assert_eq!(HeldBack(0).to_string(), "");
        assert_eq!(HeldBack(7).to_string(), " (7 more like it not logged)");
    }
}
