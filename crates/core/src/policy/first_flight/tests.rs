//! Every branch of the gate, on real ClientHellos, at fixed offsets from one base instant.

use std::time::{Duration, Instant};

use super::*;
use crate::policy::tests::{client_hello, sni_policy};

const TIMEOUT: Duration = Duration::from_secs(10);
const ALLOWED: &str = "abc.execute-api.us-east-1.amazonaws.com";

/// The gate of a stream accepted at `t0` under the execute-api policy
/// (`allow_non_tls` as given).
fn gate(t0: Instant, allow_non_tls: bool) -> FirstFlight {
    let mut policy = sni_policy();
    policy.allow_non_tls = allow_non_tls;
    FirstFlight::new(Arc::new(policy), t0, TIMEOUT)
}

/// Judges `first` as everything the client has sent.
fn judge(g: &FirstFlight, first: &[u8], now: Instant, client_fin: bool) -> Gate {
    g.judge(first, first.len(), now, client_fin)
}

#[test]
fn deadline_is_acceptance_plus_timeout() {
    let t0 = Instant::now();
    assert_eq!(gate(t0, false).deadline(), t0 + TIMEOUT);
    assert_eq!(DEFAULT_HELLO_TIMEOUT, Duration::from_secs(10));
}

#[test]
fn an_allowed_hello_passes_whenever_it_is_complete() {
    let t0 = Instant::now();
    let g = gate(t0, false);
    let hello = client_hello(ALLOWED);
    assert_eq!(judge(&g, &hello, t0, false), Gate::Pass);
    // Allow is decided before the deadline and the FIN are looked at.
    assert_eq!(judge(&g, &hello, t0 + TIMEOUT * 3, true), Gate::Pass);
}

#[test]
fn a_denied_name_resets_at_once() {
    let t0 = Instant::now();
    let g = gate(t0, true);
    let want = Gate::Reset(StreamDenial::Sni(SniDeny::NameNotAllowed("evil.example.com".into())));
    assert_eq!(judge(&g, &client_hello("evil.example.com"), t0, false), want);
    assert_eq!(judge(&g, &client_hello("10.0.1.49"), t0, false), Gate::Reset(StreamDenial::Sni(SniDeny::NoSni)));
}

#[test]
fn a_started_hello_waits_until_the_deadline_then_times_out() {
    let t0 = Instant::now();
    let hello = client_hello(ALLOWED);
    let part = &hello[..hello.len() / 2];
    for allow_non_tls in [false, true] {
        let g = gate(t0, allow_non_tls);
        assert_eq!(judge(&g, part, t0, false), Gate::Wait, "{allow_non_tls}");
        assert_eq!(judge(&g, part, g.deadline() - Duration::from_nanos(1), false), Gate::Wait);
        assert_eq!(judge(&g, part, g.deadline(), false), Gate::Reset(StreamDenial::HelloTimeout));
        assert_eq!(judge(&g, part, g.deadline() + TIMEOUT, false), Gate::Reset(StreamDenial::HelloTimeout));
    }
}

#[test]
fn the_clients_fin_ends_the_wait() {
    let t0 = Instant::now();
    let hello = client_hello(ALLOWED);
    for allow_non_tls in [false, true] {
        let g = gate(t0, allow_non_tls);
        assert_eq!(judge(&g, &hello[..10], t0, true), Gate::Reset(StreamDenial::HelloTimeout), "{allow_non_tls}");
        assert_eq!(judge(&g, &[], t0, true), Gate::Reset(StreamDenial::HelloTimeout), "{allow_non_tls}");
    }
}

#[test]
fn nothing_sent_times_out_where_tls_is_required() {
    let t0 = Instant::now();
    let g = gate(t0, false);
    assert_eq!(judge(&g, &[], t0 + TIMEOUT / 2, false), Gate::Wait);
    assert_eq!(judge(&g, &[], g.deadline(), false), Gate::Reset(StreamDenial::HelloTimeout));
}

#[test]
fn nothing_sent_is_idle_where_non_tls_is_carried() {
    let t0 = Instant::now();
    let g = gate(t0, true);
    assert_eq!(judge(&g, &[], g.deadline(), false), Gate::Wait);
    assert_eq!(judge(&g, &[], g.deadline() + TIMEOUT * 100, false), Gate::Wait);
    // Queued bytes that could not be read in place are not "nothing sent".
    assert_eq!(g.judge(&[], 1, g.deadline(), false), Gate::Reset(StreamDenial::HelloTimeout));
}

#[test]
fn non_tls_bytes_pass_or_reset_by_the_policy() {
    let t0 = Instant::now();
    let get = b"GET / HTTP/1.1\r\n";
    assert_eq!(judge(&gate(t0, true), get, t0, false), Gate::Pass);
    assert_eq!(judge(&gate(t0, false), get, t0, false), Gate::Reset(StreamDenial::Sni(SniDeny::NotTls)));
}

#[test]
fn a_timeout_beyond_the_clock_does_not_panic() {
    let t0 = Instant::now();
    let g = FirstFlight::new(Arc::new(sni_policy()), t0, Duration::MAX);
    assert!(g.deadline() > t0 + TIMEOUT * 1000);
    assert_eq!(judge(&g, &[0x16], t0 + TIMEOUT * 1000, false), Gate::Wait);
}

#[test]
fn denials_say_why() {
    assert_eq!(StreamDenial::Sni(SniDeny::NotTls).to_string(), "not TLS");
    assert!(StreamDenial::HelloTimeout.to_string().contains("hello_timeout"));
}
