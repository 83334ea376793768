//! The config parser target: TOML text through what `privlink check` and
//! `privlink up` do with it before touching the host: [`Config::from_toml`]
//! (syntax, validation, quotas), [`Plan::make`] (ids and ENI addresses), then
//! what `up` derives from the plan (the private zone, the rule set, each
//! endpoint's SNI policy and policy warnings) and the plan as printed.
//!
//! Invariants besides "never panics": an error formats with a message; a
//! config that `check` would pass also passes everything `up` derives
//! from it (else `check` says "config OK" to a config `up` refuses, after it
//! has taken its locks); the state the plan wrote passes the check a state
//! read back from disk must pass; planning again from that state gives the
//! same plan (ids and addresses are kept); a plan needs no restart to
//! reload itself. Config bytes that are not UTF-8 are rejected, as reading
//! the file would (`read_to_string`).

use privlink_core::config::Config;
use privlink_core::model::{Plan, State};
use privlink_core::reload;

/// Runs one input (see the module doc). Panics if an invariant breaks.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let config = match Config::from_toml("fuzz.toml", text) {
        Ok(c) => c,
        Err(e) => {
            assert!(!e.to_string().is_empty(), "an error says something");
            return;
        }
    };
    let mut state = State::default();
    let plan = match Plan::make(&config, &mut state, ids()) {
        Ok(p) => p,
        Err(e) => {
            assert!(!e.to_string().is_empty(), "an error says something");
            return;
        }
    };
    let printed = plan.to_string();
    if let Err(e) = plan.zone() {
        panic!("check passes a config whose zone fails: {e}");
    }
    if let Err(e) = plan.rule_set() {
        panic!("check passes a config whose rules fail: {e}");
    }
    for e in &plan.endpoints {
        if let Err(err) = e.sni_policy() {
            panic!("check passes a config whose SNI names fail: {err}");
        }
        for w in e.settings.policy.warnings() {
            let _ = w.to_string();
        }
    }
    if let Err(e) = state.check("state.json", &config) {
        panic!("the state a plan wrote fails its own check: {e}");
    }
    let mut kept = state.clone();
    let again = Plan::make(&config, &mut kept, ids()).expect("planning again from the kept state");
    assert_eq!(again.to_string(), printed, "the same state, the same plan");
    assert_eq!(kept, state, "planning again changes no kept id or address");
    if let Err(e) = reload::check(&plan, &again) {
        panic!("a plan needs a restart to reload itself: {e}");
    }
}

/// Deterministic "random" bytes for new ids: an input always plans the same.
fn ids() -> impl FnMut() -> [u8; 9] {
    let mut n = 0u8;
    move || {
        n = n.wrapping_add(1);
        [n; 9]
    }
}
