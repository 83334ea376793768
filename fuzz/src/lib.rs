//! Coverage-guided fuzz targets for privlink-core, one pure function per
//! target, each driving the core's real API as the daemon does and
//! asserting what must hold besides "never panics":
//!
//! - [`pipeline`]: raw IPv4/IPv6 packets, both ways, through the pipeline,
//!   the filter, admission, RFC 5961 and the flow log;
//! - [`dns_responder`]: DNS messages over UDP and TCP, and DNS-over-TCP
//!   streams, against the private zone;
//! - [`client_hello`]: a stream's first flight through the ClientHello reader
//!   and the first-flight gate;
//! - [`config`]: TOML through validation, planning and what `up` derives.
//!
//! The functions are plain Rust, so `tests/corpus.rs` replays the committed
//! corpus and regressions under `cargo test`, with no AFL. The AFL binaries
//! (`src/bin/`, feature `afl`) wrap them in `afl::fuzz!`, AFL's persistent
//! mode; `README.md` says how to run them. Fixtures are built once per
//! process ([`fixture`]), so an input costs only its own work.

mod client_hello;
mod config;
mod dns;
pub mod fixture;
mod pipeline;
pub mod records;

pub use client_hello::client_hello;
pub use config::config;
pub use dns::dns_responder;
pub use pipeline::pipeline;

/// Builds every target's fixtures now. The AFL binaries call it before
/// `afl::fuzz!`, so the fork server starts with them built: otherwise the
/// first input of each process also covers the fixture's construction, and
/// AFL counts those edges as unstable (with it: 449 edges for a DNS query
/// run twice in one process, not 7,494 then 449).
pub fn warm_up() {
    pipeline::warm_up();
    dns::warm_up();
    client_hello::warm_up();
}

/// A target: one input in, a panic if an invariant breaks.
pub type Target = fn(&[u8]);

/// The targets by name, as `fuzz/corpus/<name>/` and the binaries name them.
pub const TARGETS: [(&str, Target); 4] =
    [("pipeline", pipeline), ("dns_responder", dns_responder), ("client_hello", client_hello), ("config", config)];
