//! Policy tests: real ClientHellos from rustls, and endpoint policy documents.

use std::sync::Arc;

use rustls::pki_types::ServerName;

use super::*;

/// The first flight a rustls client sends for `server_name` (a DNS name or an IP).
fn client_hello(server_name: &str) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = ServerName::try_from(server_name.to_string()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

// ---- SNI extraction -------------------------------------------------------

#[test]
fn extracts_sni_from_real_client_hellos() {
    for name in [
        "ec2.us-east-1.amazonaws.com",
        "vpce-0fe5b17a0707d6abc-29p5708s.ec2.us-east-1.vpce.amazonaws.com",
        "bucket.vpce-1a2b3c4d-5e6f.s3.us-east-1.vpce.amazonaws.com",
        "a.b",
    ] {
        assert_eq!(client_hello_sni(&client_hello(name)), SniOutcome::Sni(name.to_string()));
    }
}

#[test]
fn sni_is_lowercased() {
    assert_eq!(
        client_hello_sni(&client_hello("EC2.US-East-1.amazonaws.com")),
        SniOutcome::Sni("ec2.us-east-1.amazonaws.com".into())
    );
}

#[test]
fn every_prefix_of_a_client_hello_needs_more() {
    let hello = client_hello("sts.us-east-1.amazonaws.com");
    for k in 0..hello.len() {
        assert_eq!(client_hello_sni(&hello[..k]), SniOutcome::NeedMore, "prefix of {k} bytes");
    }
    assert_eq!(client_hello_sni(&hello), SniOutcome::Sni("sts.us-east-1.amazonaws.com".into()));
}

#[test]
fn client_hello_split_across_tls_records() {
    // A ClientHello may be fragmented over several records: re-frame it in 100-byte records.
    let hello = client_hello("sqs.us-east-1.amazonaws.com");
    let body = &hello[5..];
    let mut framed = Vec::new();
    for chunk in body.chunks(100) {
        framed.extend_from_slice(&[0x16, 0x03, 0x01]);
        framed.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        framed.extend_from_slice(chunk);
    }
    for k in [1, 5, 6, 104, 105, 106, framed.len() - 1] {
        assert_eq!(client_hello_sni(&framed[..k]), SniOutcome::NeedMore, "{k}");
    }
    assert_eq!(client_hello_sni(&framed), SniOutcome::Sni("sqs.us-east-1.amazonaws.com".into()));
}

#[test]
fn bytes_after_the_client_hello_are_ignored() {
    let mut flight = client_hello("ec2.us-east-1.amazonaws.com");
    flight.extend_from_slice(&[0x17, 0x03, 0x03, 0x00, 0x02, 0xaa, 0xbb]);
    assert_eq!(client_hello_sni(&flight), SniOutcome::Sni("ec2.us-east-1.amazonaws.com".into()));
}

#[test]
fn no_sni_when_the_client_dialled_an_ip() {
    assert_eq!(client_hello_sni(&client_hello("10.0.1.49")), SniOutcome::NoSni);
}

#[test]
fn plain_http_is_not_tls_from_the_first_byte() {
    assert_eq!(client_hello_sni(b"G"), SniOutcome::NotTls);
    assert_eq!(client_hello_sni(b"GET / HTTP/1.1\r\nHost: ec2.us-east-1.amazonaws.com\r\n\r\n"), SniOutcome::NotTls);
    assert_eq!(client_hello_sni(b"SSH-2.0-OpenSSH_9.6\r\n"), SniOutcome::NotTls);
}

#[test]
fn bad_record_headers_are_not_tls() {
    assert_eq!(client_hello_sni(&[0x16, 0x02]), SniOutcome::NotTls, "version major");
    assert_eq!(client_hello_sni(&[0x16, 0x03, 0x09]), SniOutcome::NotTls, "version minor");
    assert_eq!(client_hello_sni(&[0x16, 0x03, 0x01, 0x00, 0x00]), SniOutcome::NotTls, "empty record");
    assert_eq!(client_hello_sni(&[0x16, 0x03, 0x01, 0x40, 0x01]), SniOutcome::NotTls, "record over 2^14");
    assert_eq!(client_hello_sni(&[0x16, 0x03, 0x01, 0x00, 0x10, 0x02]), SniOutcome::NotTls, "ServerHello");
    assert_eq!(client_hello_sni(&[0x16, 0x03, 0x01]), SniOutcome::NeedMore);
}

#[test]
fn garbage_inside_a_plausible_record_is_not_tls() {
    let mut g = vec![0x16, 0x03, 0x01, 0x00, 0x40, 0x01, 0x00, 0x00, 0x3c];
    g.extend((0..0x3c).map(|i| (i * 37 % 251) as u8));
    assert_eq!(client_hello_sni(&g), SniOutcome::NotTls);
    // A real hello whose legacy_session_id length (offset 5 + 4 + 2 + 32) says 255 (at most 32).
    let mut h = client_hello("ec2.us-east-1.amazonaws.com");
    h[43] = 0xff;
    assert_eq!(client_hello_sni(&h), SniOutcome::NotTls);
}

#[test]
fn oversized_first_flight_is_refused() {
    let mut big = vec![0x16, 0x03, 0x01, 0x40, 0x00, 0x01];
    big.resize(MAX_CLIENT_HELLO + 1, 0);
    assert_eq!(client_hello_sni(&big), SniOutcome::TooLarge);
}

// ---- SNI policy -----------------------------------------------------------

const NONE: &[&str] = &[];

fn sni_policy() -> SniPolicy {
    let regional = "vpce-0fe5b17a0707d6abc-29p5708s.execute-api.us-east-1.vpce.amazonaws.com";
    let zonal = "vpce-0fe5b17a0707d6abc-29p5708s-us-east-1a.execute-api.us-east-1.vpce.amazonaws.com";
    SniPolicy::new(&["*.execute-api.us-east-1.amazonaws.com"], &[regional, zonal], &["Internal.Example.COM."], false)
        .unwrap()
}

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
    let names = SniPolicy::s3_endpoint_names(regional);
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

// ---- Endpoint policy ------------------------------------------------------

const VPC: &str = "vpc-1a2b3c4d";
const VPCE: &str = "vpce-0fe5b17a0707d6abc";

fn ctx(ip: &str) -> ConnContext<'static> {
    ConnContext { source_ip: ip.parse().unwrap(), vpc_id: VPC, vpce_id: VPCE }
}

fn doc(statements: &str) -> PolicyDocument {
    PolicyDocument::parse(&format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#)).unwrap()
}

const ALLOW_ALL: &str = r#"{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}"#;

#[test]
fn default_policy_allows() {
    let d = PolicyDocument::default();
    assert_eq!(d.text(), FULL_ACCESS_POLICY);
    assert_eq!(d.evaluate(&ctx("10.0.1.5")), PolicyDecision::Allow);
    assert!(d.warnings().is_empty());
}

#[test]
fn deny_by_source_cidr() {
    let d = doc(&format!(
        r#"{ALLOW_ALL},{{"Effect":"Deny","Principal":"*","Action":"*","Resource":"*",
            "Condition":{{"IpAddress":{{"aws:VpcSourceIp":"10.0.2.0/24"}}}}}}"#
    ));
    assert_eq!(d.evaluate(&ctx("10.0.2.7")), PolicyDecision::Deny(1));
    assert_eq!(d.evaluate(&ctx("10.0.1.7")), PolicyDecision::Allow);
}

#[test]
fn allow_only_from_a_cidr_denies_others_implicitly() {
    let d = doc(r#"{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"*","Resource":"*",
            "Condition":{"IpAddress":{"aws:VpcSourceIp":["10.0.1.0/24","10.0.9.9"]}}}"#);
    assert_eq!(d.evaluate(&ctx("10.0.1.200")), PolicyDecision::Allow);
    assert_eq!(d.evaluate(&ctx("10.0.9.9")), PolicyDecision::Allow);
    assert_eq!(d.evaluate(&ctx("10.0.9.8")), PolicyDecision::ImplicitDeny);
    assert_eq!(d.evaluate(&ctx("10.0.2.1")), PolicyDecision::ImplicitDeny);
}

#[test]
fn not_ip_address_must_match_none_of_the_values() {
    let d = doc(r#"{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*",
            "Condition":{"NotIpAddress":{"aws:VpcSourceIp":["10.0.1.0/24","10.0.3.0/24"]}}}"#);
    assert_eq!(d.evaluate(&ctx("10.0.2.1")), PolicyDecision::Allow);
    assert_eq!(d.evaluate(&ctx("10.0.1.1")), PolicyDecision::ImplicitDeny);
    assert_eq!(d.evaluate(&ctx("10.0.3.1")), PolicyDecision::ImplicitDeny);
}

#[test]
fn source_ip_uses_the_private_ip_and_says_so() {
    let d = doc(r#"{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*",
            "Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/16"}}}"#);
    assert_eq!(d.evaluate(&ctx("10.0.4.4")), PolicyDecision::Allow);
    assert_eq!(d.evaluate(&ctx("192.168.0.1")), PolicyDecision::ImplicitDeny);
    assert_eq!(d.warnings().len(), 1);
    assert!(d.warnings()[0].enforced && d.warnings()[0].element.contains("aws:SourceIp"));
}

#[test]
fn source_vpce_and_vpc_match_and_mismatch() {
    let d = doc(&format!(
        r#"{{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*",
            "Condition":{{"StringEquals":{{"aws:SourceVpce":"{VPCE}","aws:sourcevpc":["vpc-other","{VPC}"]}}}}}}"#
    ));
    assert_eq!(d.evaluate(&ctx("10.0.1.1")), PolicyDecision::Allow);
    let other = ConnContext { vpce_id: "vpce-11111111111111111", ..ctx("10.0.1.1") };
    assert_eq!(d.evaluate(&other), PolicyDecision::ImplicitDeny);
    let other_vpc = ConnContext { vpc_id: "vpc-99999999", ..ctx("10.0.1.1") };
    assert_eq!(d.evaluate(&other_vpc), PolicyDecision::ImplicitDeny);
    // Case matters for StringEquals, not for StringEqualsIgnoreCase.
    let upper = ConnContext { vpce_id: "VPCE-0FE5B17A0707D6ABC", ..ctx("10.0.1.1") };
    assert_eq!(d.evaluate(&upper), PolicyDecision::ImplicitDeny);
    let ic = doc(&format!(
        r#"{{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*",
            "Condition":{{"StringEqualsIgnoreCase":{{"aws:SourceVpce":"{VPCE}"}}}}}}"#
    ));
    assert_eq!(ic.evaluate(&upper), PolicyDecision::Allow);
}

#[test]
fn string_not_equals_with_if_exists() {
    let d = doc(&format!(
        r#"{ALLOW_ALL},{{"Effect":"Deny","Principal":"*","Action":"*","Resource":"*",
            "Condition":{{"StringNotEqualsIfExists":{{"aws:SourceVpce":"{VPCE}"}}}}}}"#
    ));
    assert_eq!(d.evaluate(&ctx("10.0.1.1")), PolicyDecision::Allow);
    let other = ConnContext { vpce_id: "vpce-11111111111111111", ..ctx("10.0.1.1") };
    assert_eq!(d.evaluate(&other), PolicyDecision::Deny(1));
}

#[test]
fn explicit_deny_beats_allow_in_any_order() {
    let deny = r#"{"Effect":"Deny","Principal":"*","Action":"*","Resource":"*"}"#;
    assert_eq!(doc(&format!("{ALLOW_ALL},{deny}")).evaluate(&ctx("10.0.1.1")), PolicyDecision::Deny(1));
    assert_eq!(doc(&format!("{deny},{ALLOW_ALL}")).evaluate(&ctx("10.0.1.1")), PolicyDecision::Deny(0));
}

#[test]
fn unenforceable_parts_are_listed_and_fail_closed_by_default() {
    let d = doc(r#"{"Sid":"ReadOnly","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},
            "Action":["s3:GetObject"],"Resource":"arn:aws:s3:::my-bucket/*"},
           {"Effect":"Deny","Principal":"*","Action":"*","Resource":"*",
            "Condition":{"StringNotEquals":{"aws:PrincipalAccount":"123456789012"}}}"#);
    let elements: Vec<_> = d.warnings().iter().map(|w| (w.statement, w.element.as_str(), w.enforced)).collect();
    assert_eq!(elements.len(), 4, "{elements:?}");
    assert!(elements.iter().all(|e| !e.2));
    assert!(elements.iter().any(|e| e.0 == 0 && e.1.starts_with("Principal")));
    assert!(elements.iter().any(|e| e.0 == 0 && e.1.starts_with("Action")));
    assert!(elements.iter().any(|e| e.0 == 0 && e.1.starts_with("Resource")));
    assert!(elements.iter().any(|e| e.0 == 1 && e.1 == "condition key aws:PrincipalAccount"));
    assert_eq!(d.evaluate(&ctx("10.0.1.1")), PolicyDecision::Deny(1));
    assert_eq!(d.evaluate_with(&ctx("10.0.1.1"), UnknownParts::PerConnection), PolicyDecision::Allow);
}

#[test]
fn unenforceable_allow_alone_is_an_implicit_deny() {
    let d = doc(r#"{"Effect":"Allow","Principal":"*","Action":"ec2:Describe*","Resource":"*"}"#);
    assert_eq!(d.evaluate(&ctx("10.0.1.1")), PolicyDecision::ImplicitDeny);
    // Enforceable conditions still apply in the per-connection reading.
    let d = doc(r#"{"Effect":"Allow","Principal":"*","Action":"ec2:Describe*","Resource":"*",
            "Condition":{"IpAddress":{"aws:VpcSourceIp":"10.0.1.0/24"},"Bool":{"aws:SecureTransport":"true"}}}"#);
    assert_eq!(d.evaluate_with(&ctx("10.0.1.1"), UnknownParts::PerConnection), PolicyDecision::Allow);
    assert_eq!(d.evaluate_with(&ctx("10.0.2.1"), UnknownParts::PerConnection), PolicyDecision::ImplicitDeny);
    assert!(d.warnings().iter().any(|w| w.element == "condition key aws:SecureTransport"));
}

#[test]
fn ip_values_ipv6_and_host_bits() {
    let d = doc(r#"{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*",
            "Condition":{"IpAddress":{"aws:VpcSourceIp":["2001:db8::/32","10.0.1.77/24"]}}}"#);
    assert_eq!(d.evaluate(&ctx("10.0.1.1")), PolicyDecision::Allow);
    assert_eq!(d.evaluate(&ctx("10.0.2.1")), PolicyDecision::ImplicitDeny);
    let any = doc(r#"{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*",
            "Condition":{"IpAddress":{"aws:VpcSourceIp":"0.0.0.0/0"}}}"#);
    assert_eq!(any.evaluate(&ctx("203.0.113.9")), PolicyDecision::Allow);
}

#[test]
fn text_round_trips_byte_for_byte() {
    let texts = [
        FULL_ACCESS_POLICY.to_string(),
        "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": {\"Effect\": \"Allow\", \"Principal\": \"*\",\n    \"Action\": \"*\", \"Resource\": \"*\"}\n}\n".to_string(),
        format!("  {{\"Id\":\"p1\",\"Statement\":[{ALLOW_ALL}],\"Version\":\"2008-10-17\"}}\t"),
        "{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"*\",\"Resource\":\"*\",\"Sid\":\"caf\\u00e9 ☕\"}]}".to_string(),
    ];
    for t in texts {
        assert_eq!(PolicyDocument::parse(&t).unwrap().text(), t);
    }
}

#[test]
fn malformed_documents_name_the_problem() {
    let err = |t: &str| PolicyDocument::parse(t).unwrap_err();
    assert!(matches!(err("{"), PolicyError::Json(_)));
    assert!(matches!(err("[]"), PolicyError::NotObject));
    assert!(matches!(err(r#""x""#), PolicyError::NotObject));
    assert!(matches!(err(r#"{"Version":"2012-10-17"}"#), PolicyError::MissingStatement));
    assert!(matches!(err(r#"{"Statement":"x"}"#), PolicyError::BadStatement));
    assert!(matches!(err(r#"{"Statement":[]}"#), PolicyError::BadStatement));
    assert!(matches!(err(r#"{"Statement":[1]}"#), PolicyError::BadStatement));
    assert_eq!(
        err(&format!(r#"{{"Version":"2024-01-01","Statement":[{ALLOW_ALL}]}}"#)),
        PolicyError::BadVersion("\"2024-01-01\"".into())
    );
    assert!(matches!(err(&format!(r#"{{"Version":20121017,"Statement":[{ALLOW_ALL}]}}"#)), PolicyError::BadVersion(_)));
    assert_eq!(
        err(&format!(r#"{{"Statment":[],"Statement":[{ALLOW_ALL}]}}"#)),
        PolicyError::UnknownElement("Statment".into())
    );
    let stmt = |s: &str| match err(&format!(r#"{{"Statement":[{ALLOW_ALL},{s}]}}"#)) {
        PolicyError::Statement { index: 1, problem } => problem,
        other => panic!("{other:?}"),
    };
    assert_eq!(stmt(r#"{"Principal":"*","Action":"*","Resource":"*"}"#), "missing Effect");
    assert!(stmt(r#"{"Effect":"allow","Principal":"*","Action":"*","Resource":"*"}"#).contains("\"Allow\" or \"Deny\""));
    assert_eq!(stmt(r#"{"Effect":"Allow","Action":"*","Resource":"*"}"#), "missing Principal");
    assert_eq!(stmt(r#"{"Effect":"Allow","Principal":"*","Resource":"*"}"#), "missing Action");
    assert_eq!(stmt(r#"{"Effect":"Allow","Principal":"*","Action":"*"}"#), "missing Resource");
    assert_eq!(
        stmt(r#"{"Effect":"Allow","Principal":"*","Action":"*","NotAction":"x","Resource":"*"}"#),
        "both Action and NotAction"
    );
    assert!(stmt(r#"{"Effect":"Allow","Principal":"*","Action":5,"Resource":"*"}"#).contains("Action must be"));
    assert!(stmt(r#"{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*","Conditions":{}}"#)
        .contains("unknown element \"Conditions\""));
    assert!(stmt(r#"{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*","Condition":[]}"#)
        .contains("Condition must be an object"));
    let bad_ip = stmt(
        r#"{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:VpcSourceIp":"10.0.0.0/33"}}}"#,
    );
    assert!(bad_ip.contains("10.0.0.0/33") && bad_ip.contains("aws:VpcSourceIp"), "{bad_ip}");
    let e = err(r#"{"Statement":{"Effect":"Maybe","Principal":"*","Action":"*","Resource":"*"}}"#);
    assert!(e.to_string().starts_with("Statement[0]: Effect must be"), "{e}");
}

#[test]
fn operators_on_the_wrong_kind_of_key_are_unenforceable() {
    let d = doc(r#"{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*",
            "Condition":{"IpAddress":{"aws:SourceVpc":"10.0.0.0/8"},"ArnLike":{"aws:SourceVpce":"arn:*"}}}"#);
    let w: Vec<_> = d.warnings().iter().map(|w| w.element.as_str()).collect();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w.contains(&"condition operator ArnLike") && w.contains(&"IpAddress on aws:SourceVpc"), "{w:?}");
    assert_eq!(d.evaluate(&ctx("10.0.1.1")), PolicyDecision::ImplicitDeny);
}
