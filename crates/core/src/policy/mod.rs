//! Connection-time policy for an endpoint (sans-IO): which TLS server names
//! may go through it, and the endpoint policy document evaluated with what
//! the data plane can see.
//!
//! # Theory of operation
//! A new connection is judged twice, both times on data the caller passes in:
//! - when it is accepted, by the endpoint policy ([`PolicyDocument::evaluate`]
//!   on a [`ConnContext`]: the client's address, VPC and endpoint ids);
//! - on its first bytes, by the first-flight gate ([`FirstFlight::judge`]):
//!   [`client_hello_sni`] reads the server name from the ClientHello,
//!   [`SniPolicy::check`] decides, and the gate adds the hello deadline and
//!   the client's FIN. No byte goes upstream before it says [`Gate::Pass`].
//!
//! The parts, one file each:
//! - `hello`: the ClientHello reader ([`client_hello_sni`], [`SniOutcome`]);
//! - `sni`: name patterns and the SNI verdict ([`SniPolicy`], [`SniVerdict`]);
//! - `first_flight`: the gate in time ([`FirstFlight`], [`Gate`], [`StreamDenial`]);
//! - `document`: the IAM endpoint policy ([`PolicyDocument`], [`PolicyDecision`]).
//!
//! # Timers and limits
//! - Hello deadline, [`DEFAULT_HELLO_TIMEOUT`] (10 s, the endpoint's
//!   `hello_timeout`) after the stream is accepted: a ClientHello still
//!   incomplete then is reset as [`StreamDenial::HelloTimeout`]. Where
//!   non-TLS streams are carried, a client that has sent nothing is not.
//! - [`MAX_CLIENT_HELLO`] (16 KiB): [`client_hello_sni`] refuses a longer
//!   first flight that looks like TLS as [`SniOutcome::TooLarge`]; the gate is
//!   given at most that many bytes, so a longer ClientHello waits out the
//!   deadline instead.

mod document;
mod first_flight;
mod hello;
mod sni;

pub use document::{
    ConnContext, Effect, PolicyDecision, PolicyDocument, PolicyError, PolicyWarning, UnknownParts, FULL_ACCESS_POLICY,
};
pub use first_flight::{FirstFlight, Gate, StreamDenial, DEFAULT_HELLO_TIMEOUT};
pub use hello::{client_hello_sni, SniOutcome, MAX_CLIENT_HELLO};
pub use sni::{SniDeny, SniPatternError, SniPolicy, SniVerdict};

#[cfg(test)]
mod tests;
