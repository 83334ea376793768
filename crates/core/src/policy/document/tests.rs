//! Endpoint policy documents: parsing, conditions, explicit and implicit denies.

use super::*;

const VPC: &str = "vpc-1a2b3c4d";
const VPCE: &str = "vpce-0fe5b17a0707d6abc";

fn ctx(ip: &str) -> ConnContext<'static> {
    ConnContext { source_ip: ip.parse().unwrap(), vpc_id: VPC, vpce_id: VPCE }
}

fn doc(statements: &str) -> PolicyDocument {
    PolicyDocument::parse(&format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#)).unwrap()
}

/// `d` allows clients from each of `allowed` and implicitly denies those from each of `denied`.
fn assert_allows(d: &PolicyDocument, allowed: &[&str], denied: &[&str]) {
    for ip in allowed {
        assert_eq!(d.evaluate(&ctx(ip)), PolicyDecision::Allow, "{ip}");
    }
    for ip in denied {
        assert_eq!(d.evaluate(&ctx(ip)), PolicyDecision::ImplicitDeny, "{ip}");
    }
}

/// An Allow-all statement with one condition on `aws:VpcSourceIp`: `op` and its `values` (JSON).
fn vpc_source_ip(op: &str, values: &str) -> PolicyDocument {
    doc(&format!(
        r#"{{"Effect":"Allow","Principal":{{"AWS":"*"}},"Action":"*","Resource":"*",
            "Condition":{{"{op}":{{"aws:VpcSourceIp":{values}}}}}}}"#
    ))
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
    // A bare address is a /32.
    let d = vpc_source_ip("IpAddress", r#"["10.0.1.0/24","10.0.9.9"]"#);
    assert_allows(&d, &["10.0.1.200", "10.0.9.9"], &["10.0.9.8", "10.0.9.10", "10.0.2.1"]);
}

#[test]
fn not_ip_address_must_match_none_of_the_values() {
    let d = vpc_source_ip("NotIpAddress", r#"["10.0.1.0/24","10.0.3.0/24"]"#);
    assert_allows(&d, &["10.0.2.1"], &["10.0.1.1", "10.0.3.1"]);
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
    let d = vpc_source_ip("IpAddress", r#"["2001:db8::/32","10.0.1.77/24"]"#);
    assert_allows(&d, &["10.0.1.1"], &["10.0.2.1"]);
    let any = vpc_source_ip("IpAddress", r#""0.0.0.0/0""#);
    assert_eq!(any.evaluate(&ctx("203.0.113.9")), PolicyDecision::Allow);
    // Host bits are ignored at every prefix length, /32 and /31 included.
    let host = vpc_source_ip("IpAddress", r#"["10.0.5.5/32","10.0.7.7/31","203.0.113.9/1"]"#);
    assert_allows(&host, &["10.0.5.5", "10.0.7.6", "192.0.2.1"], &["10.0.5.4", "10.0.7.8", "127.0.0.1"]);
    // An IPv6 value alone is valid and matches no (IPv4) client.
    assert_eq!(vpc_source_ip("IpAddress", r#""2001:db8::1""#).evaluate(&ctx("10.0.1.1")), PolicyDecision::ImplicitDeny);
}

#[test]
fn bad_ip_values_are_refused_by_name() {
    for bad in ["10.0.0.256", "10.0.0.0/", "10.0.0.0/x", "10.0.0.0/-1", "10.0/8", "2001:db8::/129", "vpc-1a2b3c4d"] {
        let text = format!(
            r#"{{"Statement":{{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*",
                "Condition":{{"IpAddress":{{"aws:SourceIp":"{bad}"}}}}}}}}"#
        );
        let e = PolicyDocument::parse(&text).unwrap_err().to_string();
        assert!(e.contains(bad) && e.contains("aws:SourceIp"), "{bad}: {e}");
    }
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
