//! The first-flight gate: what to do with a new stream whose first bytes
//! must pass the SNI check before any of them goes upstream.
//!
//! # Theory of operation
//! The edge makes one [`FirstFlight`] when it accepts a stream on an endpoint
//! that filters names, then calls [`FirstFlight::judge`] on every service
//! pass (new bytes, the client's FIN, the wake-up at [`FirstFlight::deadline`])
//! with the client's bytes so far, read in place. Until the answer is
//! [`Gate::Pass`] nothing is sent upstream: the bytes wait in the edge's
//! receive buffer, whose filling closes the client's TCP window. After `Pass`
//! or [`Gate::Reset`] the gate is not asked again.
//!
//! The decision, from the [`SniVerdict`] of what has arrived:
//! - `Allow` passes, whenever it comes (even with the client's FIN);
//! - `Deny` resets at once ([`StreamDenial::Sni`]);
//! - `Wait` (a ClientHello started but incomplete, or nothing sent yet)
//!   waits until the deadline; after it, or once the client has closed its
//!   side (no more bytes can come), the stream is reset
//!   ([`StreamDenial::HelloTimeout`]).
//! - One exception: where the policy carries non-TLS streams
//!   ([`SniPolicy::allow_non_tls`]), a client that has sent nothing is only
//!   idle (or waits for a service that speaks first): it waits past the
//!   deadline, until its first byte or its FIN. Only a started, unfinished
//!   ClientHello times out there.
//!
//! # Timers and limits
//! - Hello deadline: `now` + the endpoint's `hello_timeout` when the stream is
//!   accepted ([`DEFAULT_HELLO_TIMEOUT`], 10 s). Reached while waiting: reset
//!   as [`StreamDenial::HelloTimeout`] (the edge counts it as SNI-denied). A
//!   timeout too long for the clock gives the latest deadline it can hold.
//! - [`MAX_CLIENT_HELLO`](super::MAX_CLIENT_HELLO) (16 KiB): the caller passes at most that many bytes.
//!   A ClientHello longer than that never completes within them, so it waits
//!   out the deadline and is reset as `HelloTimeout`.
//!
//! Time is the caller's (monotonic) clock: the gate reads none.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::hello::{client_hello_sni, SniOutcome};
use super::sni::{SniDeny, SniPolicy, SniVerdict};

/// How long a client may take to send its whole ClientHello, by default
/// (`hello_timeout`). When it fires, the stream is reset and counted as SNI-denied.
pub const DEFAULT_HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The SNI check a new stream's first bytes must pass before any byte goes upstream.
#[derive(Debug, Clone)]
pub struct FirstFlight {
    policy: Arc<SniPolicy>,
    deadline: Instant,
}

/// What to do with the stream now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Keep the bytes and ask again when more arrive, the client closes its
    /// side, or at [`FirstFlight::deadline`].
    Wait,
    /// Relay the stream, the bytes already received first.
    Pass,
    /// Reset the stream (the client and the upstream).
    Reset(StreamDenial),
}

/// Why a stream was reset before its first byte went upstream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamDenial {
    /// The SNI policy refused the first flight.
    #[error("{0}")]
    Sni(SniDeny),
    /// No complete ClientHello before the deadline, or before the client closed its side.
    #[error("no complete ClientHello within hello_timeout")]
    HelloTimeout,
}

impl FirstFlight {
    /// A gate for a stream accepted at `now`, whose ClientHello must be complete
    /// within `timeout` (the endpoint's `hello_timeout`).
    pub fn new(policy: Arc<SniPolicy>, now: Instant, timeout: Duration) -> FirstFlight {
        FirstFlight { policy, deadline: saturating_deadline(now, timeout) }
    }

    /// When to look again if the client sends nothing (the hello deadline).
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// `first`: the client's bytes so far, at most [`MAX_CLIENT_HELLO`](super::MAX_CLIENT_HELLO) of them;
    /// `queued`: how many it has sent (≥ `first.len()`); `client_fin`: the
    /// client has closed its side.
    pub fn judge(&self, first: &[u8], queued: usize, now: Instant, client_fin: bool) -> Gate {
        let outcome = if first.is_empty() { SniOutcome::NeedMore } else { client_hello_sni(first) };
        match self.policy.check(&outcome) {
            SniVerdict::Allow => Gate::Pass,
            SniVerdict::Deny(why) => Gate::Reset(StreamDenial::Sni(why)),
            SniVerdict::Wait if client_fin => Gate::Reset(StreamDenial::HelloTimeout),
            SniVerdict::Wait if now < self.deadline => Gate::Wait,
            SniVerdict::Wait if queued == 0 && self.policy.allow_non_tls => Gate::Wait,
            SniVerdict::Wait => Gate::Reset(StreamDenial::HelloTimeout),
        }
    }
}

/// `now + timeout`; where the clock cannot hold that, a deadline as late as it
/// can (within a factor of two), rather than a panic.
fn saturating_deadline(now: Instant, mut timeout: Duration) -> Instant {
    loop {
        match now.checked_add(timeout) {
            Some(t) => return t,
            None => timeout /= 2,
        }
    }
}

#[cfg(test)]
mod tests;
