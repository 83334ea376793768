//! The endpoint policy document ([`PolicyDocument`]), evaluated with what the
//! data plane can see of a connection.
//!
//! AWS: "An endpoint policy is a resource-based policy that you attach to a
//! VPC endpoint to control which AWS principals can use the endpoint to access
//! an AWS service." The default policy allows full access:
//! `{"Statement":[{"Action":"*","Effect":"Allow","Principal":"*","Resource":"*"}]}`.
//! The text is stored exactly as given ([`PolicyDocument::text`]), as
//! `DescribeVpcEndpoints` returns it unchanged.
//!
//! A data plane that splices TCP sees a connection, not requests: no
//! principal, action or resource. [`PolicyDocument::evaluate`] applies the IAM
//! rules to what it can see:
//! - an explicit Deny that matches wins ([`PolicyDecision::Deny`]); otherwise a
//!   matching Allow allows; otherwise the implicit deny;
//! - conditions: `IpAddress`/`NotIpAddress` on `aws:SourceIp` and
//!   `aws:VpcSourceIp`; `StringEquals`/`StringNotEquals` and their
//!   `IgnoreCase` forms on `aws:SourceVpc` and `aws:SourceVpce`; every
//!   operator also with `IfExists` (the keys always exist here). Operators
//!   are ANDed, keys within an operator ANDed, values of a key ORed (for the
//!   negated operators: none may match);
//! - IP values are IPv4 CIDR blocks ([`Cidr`]): a bare address is a /32, and
//!   host bits below the prefix are ignored, as IAM does (`10.0.1.77/24` is
//!   `10.0.1.0/24`);
//! - **`aws:SourceIp`**: at AWS, a request through an endpoint carries the
//!   client's *private* address only in `aws:VpcSourceIp`; `aws:SourceIp` does
//!   not see it, so a policy testing private CIDRs against `aws:SourceIp` never
//!   matches there. privlink evaluates `aws:SourceIp` against the client's
//!   private address too (what such a policy means to say), and reports each
//!   use as a [`PolicyWarning`] with `enforced: true` so the difference is
//!   visible;
//! - anything else (a principal other than `*`, an `Action`/`Resource` other
//!   than `*`, `NotPrincipal`/`NotAction`/`NotResource`, other condition keys
//!   or operators) cannot be decided per connection. Such parts are listed in
//!   [`PolicyDocument::warnings`] (`enforced: false`) and, by default
//!   ([`UnknownParts::FailClosed`]), count as *not* matching for an Allow and
//!   as matching for a Deny. [`UnknownParts::PerConnection`] instead asks
//!   "could some request on this connection be allowed?": unknown parts may
//!   match for an Allow and do not match for a Deny.
//!
//! Not emulated:
//! - Per-request evaluation (principals, actions, resources): the service
//!   would do it at AWS; privlink only sees connections.
//! - IPv6 client addresses (the endpoint is IPv4-only): IPv6 values in
//!   `IpAddress` conditions are accepted and never match.
//! - Policy variables (`${aws:username}`), `ForAnyValue:`/`ForAllValues:`
//!   qualifiers, and the 20,480-character size quota.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use serde_json::{Map, Value};

use crate::cidr::Cidr;

/// The policy AWS attaches when none is given: full access.
pub const FULL_ACCESS_POLICY: &str =
    r#"{"Statement":[{"Action":"*","Effect":"Allow","Principal":"*","Resource":"*"}]}"#;

/// Why a policy document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Not JSON at all.
    #[error("the policy is not valid JSON: {0}")]
    Json(String),
    /// JSON, but not an object.
    #[error("the policy must be a JSON object")]
    NotObject,
    /// A `Version` other than the two IAM knows.
    #[error("Version {0} is not supported: use \"2012-10-17\" (or \"2008-10-17\")")]
    BadVersion(String),
    /// An element IAM does not define.
    #[error("unknown top-level element {0:?} (expected Version, Id, Statement)")]
    UnknownElement(String),
    /// No `Statement`.
    #[error("the policy has no Statement")]
    MissingStatement,
    /// `Statement` is not an object or a non-empty array of objects.
    #[error("Statement must be an object or a non-empty array of objects")]
    BadStatement,
    /// Something wrong inside one statement.
    #[error("Statement[{index}]: {problem}")]
    Statement {
        /// Position in the `Statement` array (0 for a single object).
        index: usize,
        /// What is wrong.
        problem: String,
    },
}

/// Effect of a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// `"Allow"`.
    Allow,
    /// `"Deny"`.
    Deny,
}

/// What the data plane knows about a connection when it evaluates the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnContext<'a> {
    /// The client's private address (`aws:VpcSourceIp`, and `aws:SourceIp` here).
    pub source_ip: Ipv4Addr,
    /// `aws:SourceVpc`, e.g. `vpc-1a2b3c4d`.
    pub vpc_id: &'a str,
    /// `aws:SourceVpce`, e.g. `vpce-0fe5b17a0707d6abc`.
    pub vpce_id: &'a str,
}

/// The outcome of evaluating a policy for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyDecision {
    /// An Allow statement matched and no Deny did.
    Allow,
    /// The Deny statement at this index matched (explicit deny wins).
    Deny(usize),
    /// Nothing matched.
    ImplicitDeny,
}

/// How parts the data plane cannot see are treated (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownParts {
    /// Unknown parts fail an Allow and satisfy a Deny (the default).
    #[default]
    FailClosed,
    /// Unknown parts may satisfy an Allow and never satisfy a Deny: "could
    /// some request on this connection be allowed?".
    PerConnection,
}

/// A part of a policy that the data plane evaluates differently from AWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyWarning {
    /// Statement index.
    pub statement: usize,
    /// The element, e.g. `Action "s3:GetObject"` or `condition key aws:PrincipalArn`.
    pub element: String,
    /// `true`: evaluated, but with different semantics from AWS; `false`: cannot be evaluated.
    pub enforced: bool,
}

impl fmt::Display for PolicyWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.enforced {
            write!(
                f,
                "statement {}: {} is evaluated on the client's private address (AWS differs)",
                self.statement, self.element
            )
        } else {
            write!(
                f,
                "statement {}: {} cannot be evaluated without terminating TLS (fails closed)",
                self.statement, self.element
            )
        }
    }
}

/// A condition key the data plane can see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    SourceIp,
    VpcSourceIp,
    SourceVpc,
    SourceVpce,
}

/// Which of the connection's ids a string condition compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdKey {
    /// `aws:SourceVpc`.
    Vpc,
    /// `aws:SourceVpce`.
    Vpce,
}

/// One key's test, with the key's kind fixed by the operator's (checked at parse time).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Test {
    /// The client's private address lies in one of the blocks (`aws:SourceIp`
    /// or `aws:VpcSourceIp`); IPv6 values are kept out (they never match).
    Ip(Vec<Cidr>),
    /// The id equals one of the values.
    Str { id: IdKey, values: Vec<String>, ignore_case: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Condition {
    test: Test,
    negated: bool,
}

impl Condition {
    fn holds(&self, ctx: &ConnContext<'_>) -> bool {
        let any = match &self.test {
            Test::Ip(blocks) => blocks.iter().any(|b| b.contains(ctx.source_ip)),
            Test::Str { id, values, ignore_case } => {
                let v = match id {
                    IdKey::Vpc => ctx.vpc_id,
                    IdKey::Vpce => ctx.vpce_id,
                };
                values.iter().any(|x| if *ignore_case { x.eq_ignore_ascii_case(v) } else { x == v })
            }
        };
        any != self.negated
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Statement {
    effect: Effect,
    /// Some part cannot be decided per connection.
    unknown: bool,
    conditions: Vec<Condition>,
}

/// A parsed endpoint policy, keeping its original text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDocument {
    text: String,
    statements: Vec<Statement>,
    warnings: Vec<PolicyWarning>,
}

impl Default for PolicyDocument {
    fn default() -> PolicyDocument {
        PolicyDocument::full_access()
    }
}

impl PolicyDocument {
    /// The AWS default policy ([`FULL_ACCESS_POLICY`]).
    pub fn full_access() -> PolicyDocument {
        PolicyDocument::parse(FULL_ACCESS_POLICY).expect("the default policy parses")
    }

    /// Parses and validates `json`; the text is kept byte for byte.
    pub fn parse(json: &str) -> Result<PolicyDocument, PolicyError> {
        let value: Value = serde_json::from_str(json).map_err(|e| PolicyError::Json(e.to_string()))?;
        let Value::Object(top) = value else { return Err(PolicyError::NotObject) };
        for k in top.keys() {
            if !matches!(k.as_str(), "Version" | "Id" | "Statement") {
                return Err(PolicyError::UnknownElement(k.clone()));
            }
        }
        if let Some(v) = top.get("Version") {
            if !matches!(v.as_str(), Some("2012-10-17" | "2008-10-17")) {
                return Err(PolicyError::BadVersion(v.to_string()));
            }
        }
        let list = match top.get("Statement") {
            None => return Err(PolicyError::MissingStatement),
            Some(Value::Object(o)) => vec![o],
            Some(Value::Array(a)) if !a.is_empty() => {
                a.iter().map(|s| s.as_object().ok_or(PolicyError::BadStatement)).collect::<Result<_, _>>()?
            }
            Some(_) => return Err(PolicyError::BadStatement),
        };
        let mut warnings = Vec::new();
        let statements = list
            .into_iter()
            .enumerate()
            .map(|(index, s)| {
                parse_statement(index, s, &mut warnings).map_err(|problem| PolicyError::Statement { index, problem })
            })
            .collect::<Result<_, _>>()?;
        Ok(PolicyDocument { text: json.to_string(), statements, warnings })
    }

    /// The document exactly as given.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Parts evaluated differently from AWS, or not at all (for the caller to warn about).
    pub fn warnings(&self) -> &[PolicyWarning] {
        &self.warnings
    }

    /// Evaluates the policy for a connection, unknown parts failing closed.
    pub fn evaluate(&self, ctx: &ConnContext<'_>) -> PolicyDecision {
        self.evaluate_with(ctx, UnknownParts::FailClosed)
    }

    /// Evaluates the policy for a connection, treating unknown parts as `unknown` says.
    pub fn evaluate_with(&self, ctx: &ConnContext<'_>, unknown: UnknownParts) -> PolicyDecision {
        let mut allowed = false;
        for (i, s) in self.statements.iter().enumerate() {
            let unknown_ok = match (s.effect, unknown) {
                (_, _) if !s.unknown => true,
                (Effect::Allow, UnknownParts::FailClosed) | (Effect::Deny, UnknownParts::PerConnection) => false,
                (Effect::Allow, UnknownParts::PerConnection) | (Effect::Deny, UnknownParts::FailClosed) => true,
            };
            if !unknown_ok || !s.conditions.iter().all(|c| c.holds(ctx)) {
                continue;
            }
            match s.effect {
                Effect::Deny => return PolicyDecision::Deny(i),
                Effect::Allow => allowed = true,
            }
        }
        if allowed {
            PolicyDecision::Allow
        } else {
            PolicyDecision::ImplicitDeny
        }
    }
}

/// A string or a list of strings (IAM's usual shape); `None` for anything else.
fn strings(v: &Value) -> Option<Vec<&str>> {
    match v {
        Value::String(s) => Some(vec![s.as_str()]),
        Value::Array(a) if !a.is_empty() => a.iter().map(Value::as_str).collect(),
        _ => None,
    }
}

fn parse_statement(
    index: usize,
    s: &Map<String, Value>,
    warnings: &mut Vec<PolicyWarning>,
) -> Result<Statement, String> {
    let mut unknown = false;
    let mut warn = |element: String, enforced: bool| {
        unknown |= !enforced;
        warnings.push(PolicyWarning { statement: index, element, enforced });
    };
    for k in s.keys() {
        if !matches!(
            k.as_str(),
            "Sid"
                | "Effect"
                | "Principal"
                | "NotPrincipal"
                | "Action"
                | "NotAction"
                | "Resource"
                | "NotResource"
                | "Condition"
        ) {
            return Err(format!("unknown element {k:?}"));
        }
    }
    if s.get("Sid").is_some_and(|v| !v.is_string()) {
        return Err("Sid must be a string".into());
    }
    let effect = match s.get("Effect").map(|v| v.as_str()) {
        Some(Some("Allow")) => Effect::Allow,
        Some(Some("Deny")) => Effect::Deny,
        Some(_) => return Err(format!("Effect must be \"Allow\" or \"Deny\", not {}", s["Effect"])),
        None => return Err("missing Effect".into()),
    };
    // Principal: "*" or {"AWS": "*"} is everyone; anything else names identities we cannot see.
    match (s.get("Principal"), s.get("NotPrincipal")) {
        (Some(_), Some(_)) => return Err("both Principal and NotPrincipal".into()),
        (None, None) => return Err("missing Principal".into()),
        (Some(p), None) => {
            let everyone = match p {
                Value::String(s) => s == "*",
                Value::Object(o) if !o.is_empty() => {
                    o.iter().all(|(k, v)| k == "AWS" && strings(v).is_some_and(|l| l.iter().all(|x| *x == "*")))
                }
                _ => return Err(format!("Principal must be \"*\" or an object, not {p}")),
            };
            if !everyone {
                warn(format!("Principal {p}"), false);
            }
        }
        (None, Some(p)) => warn(format!("NotPrincipal {p}"), false),
    }
    for (pos, neg) in [("Action", "NotAction"), ("Resource", "NotResource")] {
        match (s.get(pos), s.get(neg)) {
            (Some(_), Some(_)) => return Err(format!("both {pos} and {neg}")),
            (None, None) => return Err(format!("missing {pos}")),
            (Some(v), None) => {
                let list = strings(v).ok_or_else(|| format!("{pos} must be a string or a list of strings"))?;
                if !list.contains(&"*") {
                    warn(format!("{pos} {v}"), false);
                }
            }
            (None, Some(v)) => {
                strings(v).ok_or_else(|| format!("{neg} must be a string or a list of strings"))?;
                warn(format!("{neg} {v}"), false);
            }
        }
    }
    let mut conditions = Vec::new();
    if let Some(c) = s.get("Condition") {
        let Value::Object(ops) = c else { return Err("Condition must be an object".into()) };
        for (op, keys) in ops {
            let Value::Object(keys) = keys else { return Err(format!("Condition {op} must be an object of keys")) };
            let base = op.strip_suffix("IfExists").unwrap_or(op);
            for (key_name, values) in keys {
                let vals = strings(values).ok_or_else(|| {
                    format!("Condition {op} {key_name}: values must be a string or a list of strings")
                })?;
                let key = match key_name.to_ascii_lowercase().as_str() {
                    "aws:sourceip" => Key::SourceIp,
                    "aws:vpcsourceip" => Key::VpcSourceIp,
                    "aws:sourcevpc" => Key::SourceVpc,
                    "aws:sourcevpce" => Key::SourceVpce,
                    _ => {
                        warn(format!("condition key {key_name}"), false);
                        continue;
                    }
                };
                let (test, negated) = match base {
                    "IpAddress" | "NotIpAddress" => {
                        if !matches!(key, Key::SourceIp | Key::VpcSourceIp) {
                            warn(format!("{op} on {key_name}"), false);
                            continue;
                        }
                        let mut blocks = Vec::new();
                        for v in vals {
                            if let Some(b) = parse_ip_block(v).map_err(|e| format!("Condition {op} {key_name}: {e}"))? {
                                blocks.push(b);
                            }
                        }
                        (Test::Ip(blocks), base == "NotIpAddress")
                    }
                    "StringEquals" | "StringNotEquals" | "StringEqualsIgnoreCase" | "StringNotEqualsIgnoreCase" => {
                        let id = match key {
                            Key::SourceVpc => IdKey::Vpc,
                            Key::SourceVpce => IdKey::Vpce,
                            Key::SourceIp | Key::VpcSourceIp => {
                                warn(format!("{op} on {key_name}"), false);
                                continue;
                            }
                        };
                        let values = vals.into_iter().map(str::to_string).collect();
                        (Test::Str { id, values, ignore_case: base.ends_with("IgnoreCase") }, base.contains("Not"))
                    }
                    _ => {
                        warn(format!("condition operator {op}"), false);
                        continue;
                    }
                };
                if key == Key::SourceIp {
                    warn(format!("{op} on aws:SourceIp (matched against the client's private IP, unlike AWS)"), true);
                }
                conditions.push(Condition { test, negated });
            }
        }
    }
    Ok(Statement { effect, unknown, conditions })
}

/// An IP or CIDR as IAM writes it; `Ok(None)` for IPv6 (valid, never matches here).
fn parse_ip_block(v: &str) -> Result<Option<Cidr>, String> {
    let (addr, prefix) = match v.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (v, None),
    };
    let bad = || format!("{v:?} is not an IP address or CIDR block");
    let prefix_up_to = |max: u8| prefix.map(|p| p.parse::<u8>().ok().filter(|&p| p <= max).ok_or_else(bad)).transpose();
    match addr.parse::<IpAddr>().map_err(|_| bad())? {
        IpAddr::V6(_) => prefix_up_to(128).map(|_| None),
        IpAddr::V4(a) => {
            let len = prefix_up_to(32)?.unwrap_or(32);
            // IAM accepts host bits below the prefix and ignores them; a Cidr has none.
            let host_bits = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
            Cidr::new(Ipv4Addr::from(u32::from(a) & !host_bits), len).ok_or_else(bad).map(Some)
        }
    }
}

#[cfg(test)]
mod tests;
