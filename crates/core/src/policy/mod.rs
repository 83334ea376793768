//! Connection-time policy for an endpoint (sans-IO): which TLS server names
//! may go through it, and the endpoint policy document evaluated with what
//! the data plane can see.
//!
//! # Theory of operation
//! A new connection is judged twice, both times on data the caller passes in:
//! - when it is accepted, by the endpoint policy ([`PolicyDocument::evaluate`]
//!   on a [`ConnContext`]: the client's address, VPC and endpoint ids);
//! - on its first bytes, by the SNI check: [`client_hello_sni`] reads the
//!   server name from the ClientHello and [`SniPolicy::check`] decides. No
//!   byte goes upstream before it passes.
//!
//! The parts, one file each:
//! - `hello`: the ClientHello reader ([`client_hello_sni`], [`SniOutcome`]);
//! - `sni`: name patterns and the SNI verdict ([`SniPolicy`], [`SniVerdict`]);
//! - `document`: the IAM endpoint policy ([`PolicyDocument`], [`PolicyDecision`]).
//!
//! # Limits
//! - [`MAX_CLIENT_HELLO`] (16 KiB): a first flight that looks like TLS and is
//!   longer is refused as [`SniOutcome::TooLarge`], never buffered further.
//! - [`DEFAULT_HELLO_TIMEOUT`] (10 s, the endpoint's `hello_timeout`): a
//!   ClientHello still incomplete then is reset, counted as SNI-denied.

mod document;
mod hello;
mod sni;

pub use document::{
    ConnContext, Effect, PolicyDecision, PolicyDocument, PolicyError, PolicyWarning, UnknownParts, FULL_ACCESS_POLICY,
};
pub use hello::{client_hello_sni, SniOutcome, DEFAULT_HELLO_TIMEOUT, MAX_CLIENT_HELLO};
pub use sni::{SniDeny, SniPatternError, SniPolicy, SniVerdict};

#[cfg(test)]
mod tests;
