//! The ClientHello reader target: a stream's first flight, arriving in
//! pieces, read by [`client_hello_sni`] and judged by the first-flight gate
//! of one of the fixture's endpoints, as the relay does on every service
//! pass until the gate says `Pass` or `Reset` (`src/edge/relay.rs`).
//!
//! The first byte chooses: bits 0 to 2 the size of the pieces, bit 3 the
//! endpoint (the demo's EC2 names, or the custom one's `*.example.com`),
//! bit 4 whether non-TLS streams are carried, bit 5 whether the client
//! closes its side after the last piece. The rest is the first flight.
//!
//! Invariants besides "never panics": the reader's outcome is a function of
//! the bytes (asked twice, the same); a server name comes back lowercase and
//! is what the gate judges; a flight that does not start with a handshake
//! record is `NotTls`; the gate's answer agrees with the policy's verdict.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use privlink_core::policy::{
    client_hello_sni, FirstFlight, Gate, SniOutcome, SniPolicy, SniVerdict, DEFAULT_HELLO_TIMEOUT, MAX_CLIENT_HELLO,
};

use crate::fixture;

/// Piece sizes bits 0 to 2 pick: a whole ClientHello is about 200 to 2,000 bytes.
const PIECES: [usize; 8] = [16, 64, 100, 256, 517, 1024, 4096, usize::MAX];

/// Per endpoint of the fixture, its SNI policy as written and with non-TLS carried.
fn policies() -> &'static [[Arc<SniPolicy>; 2]] {
    static P: OnceLock<Vec<[Arc<SniPolicy>; 2]>> = OnceLock::new();
    P.get_or_init(|| {
        fixture::plan()
            .endpoints
            .iter()
            .map(|e| {
                let p = e.sni_policy().expect("the fixture's SNI names are valid");
                let mut non_tls = p.clone();
                non_tls.allow_non_tls = true;
                [Arc::new(p), Arc::new(non_tls)]
            })
            .collect()
    })
}

/// Builds the fixture (see [`crate::warm_up`]).
pub(crate) fn warm_up() {
    policies();
}

/// Runs one input (see the module doc). Panics if an invariant breaks.
pub fn client_hello(data: &[u8]) {
    let Some((&control, flight)) = data.split_first() else { return };
    let piece = PIECES[usize::from(control & 7)];
    let ps = policies();
    let policy = &ps[usize::from(control >> 3 & 1) % ps.len()][usize::from(control >> 4 & 1)];
    let client_fin = control & 0x20 != 0;

    let start = fixture::epoch();
    let gate = FirstFlight::new(policy.clone(), start, DEFAULT_HELLO_TIMEOUT);
    let mut have: usize = 0;
    loop {
        have = have.saturating_add(piece).min(flight.len());
        let last = have == flight.len();
        // The relay passes at most MAX_CLIENT_HELLO bytes; `queued` counts them all.
        let first = &flight[..have.min(MAX_CLIENT_HELLO)];
        // Within the hello deadline: only the client's FIN ends a wait here.
        let now = start + Duration::from_millis(have.min(9_000) as u64);
        let outcome = if first.is_empty() { SniOutcome::NeedMore } else { read(first) };
        let verdict = policy.check(&outcome);
        let fin = client_fin && last;
        let answer = gate.judge(first, have, now, fin);
        match (&verdict, &answer) {
            (SniVerdict::Allow, Gate::Pass) | (SniVerdict::Deny(_), Gate::Reset(_)) => break,
            (SniVerdict::Wait, Gate::Wait) => assert!(!fin, "waiting after the client closed"),
            (SniVerdict::Wait, Gate::Reset(_)) => assert!(fin, "reset before the deadline"),
            _ => panic!("the gate says {answer:?} to {verdict:?}"),
        }
        if last {
            break;
        }
    }
}

/// The reader's outcome, checked.
fn read(first: &[u8]) -> SniOutcome {
    let outcome = client_hello_sni(first);
    assert_eq!(client_hello_sni(first), outcome, "the same bytes, the same outcome");
    if first[0] != 0x16 {
        assert_eq!(outcome, SniOutcome::NotTls, "not a handshake record");
    }
    if let SniOutcome::Sni(name) = &outcome {
        assert!(!name.is_empty() && !name.bytes().any(|b| b.is_ascii_uppercase()), "a lowercase name: {name:?}");
    }
    outcome
}
