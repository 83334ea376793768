//! Name patterns and verdicts.

use super::*;
use crate::policy::client_hello_sni;
use crate::policy::tests::{client_hello, sni_policy};

const NONE: &[&str] = &[];

#[test]
fn wildcard_matches_exactly_one_label() {
    let p = sni_policy();
    assert!(p.allows_name("abc123.execute-api.us-east-1.amazonaws.com"));
    assert!(p.allows_name("ABC123.Execute-API.us-east-1.amazonaws.com."));
    assert!(!p.allows_name("execute-api.us-east-1.amazonaws.com"), "no label for the *");
    assert!(!p.allows_name("a.b.execute-api.us-east-1.amazonaws.com"), "two labels");
    assert!(!p.allows_name(".execute-api.us-east-1.amazonaws.com"), "empty label");
    assert!(!p.allows_name("abc123execute-api.us-east-1.amazonaws.com"));
    assert!(!p.allows_name("abc.execute-api.us-east-1.amazonaws.com.evil.com"));
}

#[test]
fn endpoint_specific_and_extra_names_match_case_insensitively() {
    let p = sni_policy();
    assert!(p.allows_name("VPCE-0fe5b17a0707d6abc-29p5708s.execute-api.us-east-1.vpce.amazonaws.com"));
    assert!(p.allows_name("vpce-0fe5b17a0707d6abc-29p5708s-us-east-1a.execute-api.us-east-1.vpce.amazonaws.com"));
    assert!(!p.allows_name("vpce-0fe5b17a0707d6abc-29p5708s-us-east-1b.execute-api.us-east-1.vpce.amazonaws.com"));
    assert!(p.allows_name("internal.example.com"));
    assert!(!p.allows_name("ec2.us-east-1.amazonaws.com"));
}

#[test]
fn s3_prefixes() {
    let regional = "vpce-1a2b3c4d-5e6f.s3.us-east-1.vpce.amazonaws.com";
    let names = crate::catalog::s3_endpoint_names(regional);
    let p = SniPolicy::new(NONE, &names, NONE, false).unwrap();
    for ok in ["bucket.", "my-bucket.bucket.", "accesspoint.", "control."] {
        assert!(p.allows_name(&format!("{ok}{regional}")), "{ok}");
    }
    assert!(!p.allows_name(regional));
    assert!(!p.allows_name(&format!("a.b.bucket.{regional}")));
}

#[test]
fn bad_patterns_are_refused() {
    for bad in ["", "*", "foo*.example.com", "a.*.example.com", "*.*.example.com", "a..b", "exa mple.com"] {
        assert!(SniPolicy::new(&[bad], NONE, NONE, false).is_err(), "{bad:?}");
    }
    let e = SniPolicy::new(&["a.*.com"], NONE, NONE, false).unwrap_err();
    assert!(e.to_string().contains("leftmost"), "{e}");
}

#[test]
fn verdicts() {
    let p = sni_policy();
    assert_eq!(p.check(&SniOutcome::NeedMore), SniVerdict::Wait);
    assert_eq!(p.check(&SniOutcome::Sni("x.execute-api.us-east-1.amazonaws.com".into())), SniVerdict::Allow);
    assert_eq!(
        p.check(&SniOutcome::Sni("evil.com".into())),
        SniVerdict::Deny(SniDeny::NameNotAllowed("evil.com".into()))
    );
    assert_eq!(p.check(&SniOutcome::NoSni), SniVerdict::Deny(SniDeny::NoSni));
    assert_eq!(p.check(&SniOutcome::NotTls), SniVerdict::Deny(SniDeny::NotTls));
    assert_eq!(p.check(&SniOutcome::TooLarge), SniVerdict::Deny(SniDeny::TooLarge));
    let mut lenient = sni_policy();
    lenient.allow_non_tls = true;
    lenient.allow_no_sni = true;
    assert_eq!(lenient.check(&SniOutcome::NotTls), SniVerdict::Allow);
    assert_eq!(lenient.check(&SniOutcome::NoSni), SniVerdict::Allow);
    let aws = SniPolicy::allow_all();
    for o in [SniOutcome::Sni("anything".into()), SniOutcome::NoSni, SniOutcome::NotTls, SniOutcome::TooLarge] {
        assert_eq!(aws.check(&o), SniVerdict::Allow);
    }
}

#[test]
fn end_to_end_from_bytes_to_verdict() {
    let p = sni_policy();
    let hello = client_hello("abc.execute-api.us-east-1.amazonaws.com");
    assert_eq!(p.check(&client_hello_sni(&hello[..10])), SniVerdict::Wait);
    assert_eq!(p.check(&client_hello_sni(&hello)), SniVerdict::Allow);
    assert!(matches!(p.check(&client_hello_sni(&client_hello("other.example"))), SniVerdict::Deny(_)));
}
