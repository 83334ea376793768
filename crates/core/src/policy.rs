//! Connection-time policy for an endpoint (sans-IO): which TLS server names
//! may go through it ([`SniPolicy`]), and the endpoint policy document
//! ([`PolicyDocument`]) evaluated with what the data plane can see.
//!
//! # SNI
//! The relay never terminates TLS: it peeks at the client's first flight,
//! [`client_hello_sni`] parses the ClientHello with rustls's `Acceptor` (on a
//! copy; the original bytes go upstream untouched) and [`SniPolicy::check`]
//! decides. AWS itself does not filter on SNI: an interface endpoint forwards
//! any TCP traffic to the service. privlink can, so that a lab shows which
//! names reach which endpoint; leave every list empty to behave like AWS (see
//! [`SniPolicy::allow_all`]).
//!
//! Name matching follows certificate name matching (RFC 6125 section 6.4.3):
//! case-insensitive, a trailing dot ignored, and `*` only as the whole
//! leftmost label, standing for exactly one label (`*.example.com` matches
//! `a.example.com`, not `example.com` nor `a.b.example.com`).
//!
//! # Endpoint policy
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
//! ## Not emulated
//! - Per-request evaluation (principals, actions, resources): the service
//!   would do it at AWS; privlink only sees connections.
//! - IPv6 client addresses (the endpoint is IPv4-only): IPv6 values in
//!   `IpAddress` conditions are accepted and never match.
//! - Policy variables (`${aws:username}`), `ForAnyValue:`/`ForAllValues:`
//!   qualifiers, and the 20,480-character size quota.
//! - SNI in ECH (Encrypted Client Hello): only the outer name is seen.

use std::fmt;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};

use serde_json::{Map, Value};

// ---------------------------------------------------------------------------
// SNI extraction
// ---------------------------------------------------------------------------

/// The most bytes of first flight [`client_hello_sni`] will look at; a
/// ClientHello is usually under 2 KiB (about 1.8 KiB with a post-quantum key
/// share), so more than this is refused rather than buffered.
pub const MAX_CLIENT_HELLO: usize = 16 * 1024;
/// How long a client may take to send its whole ClientHello, by default
/// (`hello_timeout`). When it fires, the stream is reset and counted as SNI-denied.
pub const DEFAULT_HELLO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// TLS record content type "handshake" (RFC 8446 section 5.1).
const CONTENT_HANDSHAKE: u8 = 0x16;
/// Handshake message type "client_hello" (RFC 8446 section 4).
const HANDSHAKE_CLIENT_HELLO: u8 = 0x01;
/// Largest TLSPlaintext fragment, 2^14 (RFC 8446 section 5.1).
const MAX_FRAGMENT: usize = 1 << 14;

/// What the first bytes of a connection say about its TLS server name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SniOutcome {
    /// A TLS ClientHello has started but is incomplete: accumulate and call again.
    NeedMore,
    /// The ClientHello names this server (lowercase, as sent).
    Sni(String),
    /// A TLS ClientHello without `server_name` (e.g. the client dialled an IP).
    NoSni,
    /// Not TLS (e.g. plain HTTP), or a malformed TLS record or ClientHello.
    NotTls,
    /// Looks like TLS but the ClientHello exceeds [`MAX_CLIENT_HELLO`].
    TooLarge,
}

/// Extracts the SNI from a connection's first flight (all bytes received so far).
pub fn client_hello_sni(first_flight: &[u8]) -> SniOutcome {
    // Cheap checks first, so plain HTTP is recognised from its first byte.
    let Some(&content_type) = first_flight.first() else { return SniOutcome::NeedMore };
    if content_type != CONTENT_HANDSHAKE {
        return SniOutcome::NotTls;
    }
    // legacy_record_version is 0x0301 in ClientHellos (0x0300..=0x0304 seen in the wild).
    if first_flight.get(1).is_some_and(|&v| v != 0x03) || first_flight.get(2).is_some_and(|&v| v > 0x04) {
        return SniOutcome::NotTls;
    }
    if let Some(len) = first_flight.get(3..5).map(|b| u16::from_be_bytes([b[0], b[1]]) as usize) {
        if len == 0 || len > MAX_FRAGMENT {
            return SniOutcome::NotTls;
        }
    }
    if first_flight.get(5).is_some_and(|&t| t != HANDSHAKE_CLIENT_HELLO) {
        return SniOutcome::NotTls;
    }
    if first_flight.len() > MAX_CLIENT_HELLO {
        return SniOutcome::TooLarge;
    }
    let mut acceptor = rustls::server::Acceptor::default();
    let mut rd = first_flight;
    while !rd.is_empty() {
        match acceptor.read_tls(&mut rd as &mut dyn Read) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => return SniOutcome::NotTls,
        }
    }
    match acceptor.accept() {
        Ok(None) => SniOutcome::NeedMore,
        Ok(Some(accepted)) => match accepted.client_hello().server_name() {
            Some(name) => SniOutcome::Sni(name.to_ascii_lowercase()),
            None => SniOutcome::NoSni,
        },
        Err(_) => SniOutcome::NotTls,
    }
}

// ---------------------------------------------------------------------------
// SNI policy
// ---------------------------------------------------------------------------

/// A server-name pattern that is not a name or a one-label wildcard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pattern:?}: {problem}")]
pub struct SniPatternError {
    /// The pattern as given.
    pub pattern: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

/// A compiled name pattern: exact, or `*.` + suffix.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NamePattern {
    Exact(String),
    /// The part after `*.` (lowercase).
    Wildcard(String),
}

impl NamePattern {
    fn parse(p: &str) -> Result<NamePattern, SniPatternError> {
        let err = |problem| SniPatternError { pattern: p.to_string(), problem };
        let s = p.trim_end_matches('.').to_ascii_lowercase();
        if s.is_empty() {
            return Err(err("empty name"));
        }
        let (wild, rest) = match s.strip_prefix("*.") {
            Some(rest) => (true, rest.to_string()),
            None => (false, s.clone()),
        };
        if rest.contains('*') {
            return Err(err("'*' is only allowed as the whole leftmost label, as in *.example.com"));
        }
        if rest.split('.').any(|l| l.is_empty() || l.len() > 63) {
            return Err(err("empty or over-long label"));
        }
        if !rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_') {
            return Err(err("names are letters, digits, '-' and '.' (use the A-label form for IDNs)"));
        }
        Ok(if wild { NamePattern::Wildcard(rest) } else { NamePattern::Exact(rest) })
    }

    /// `name` is lowercase without a trailing dot.
    fn matches(&self, name: &str) -> bool {
        match self {
            NamePattern::Exact(e) => e == name,
            NamePattern::Wildcard(suffix) => name
                .strip_suffix(suffix.as_str())
                .and_then(|head| head.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        }
    }
}

/// Why a connection's server name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SniDeny {
    /// The name is not one of the endpoint's names nor allowed explicitly.
    #[error("server name {0:?} is not a name of this endpoint")]
    NameNotAllowed(String),
    /// A ClientHello without a server name.
    #[error("TLS ClientHello without a server name (SNI)")]
    NoSni,
    /// Not TLS, and the endpoint requires TLS.
    #[error("not TLS")]
    NotTls,
    /// A ClientHello too large to inspect.
    #[error("ClientHello larger than {MAX_CLIENT_HELLO} bytes")]
    TooLarge,
}

/// What to do with the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SniVerdict {
    /// Relay it.
    Allow,
    /// Refuse it (reset the client).
    Deny(SniDeny),
    /// Need more bytes of the first flight.
    Wait,
}

/// Which server names an endpoint accepts. Build with [`SniPolicy::new`].
#[derive(Debug, Clone, Default)]
pub struct SniPolicy {
    patterns: Vec<NamePattern>,
    filter: bool,
    /// Accept a ClientHello without SNI.
    pub allow_no_sni: bool,
    /// Accept connections that do not start with a TLS ClientHello.
    pub allow_non_tls: bool,
}

impl SniPolicy {
    /// Accepts any name, no SNI and non-TLS: what AWS does.
    pub fn allow_all() -> SniPolicy {
        SniPolicy { patterns: Vec::new(), filter: false, allow_no_sni: true, allow_non_tls: true }
    }

    /// Accepts the service's default names (`names`, wildcards allowed), the
    /// endpoint-specific names (regional, zonal, S3 prefixes, see
    /// [`SniPolicy::s3_endpoint_names`]) and the extra `allowed_sni`.
    pub fn new(
        names: &[impl AsRef<str>],
        endpoint_names: &[impl AsRef<str>],
        allowed_sni: &[impl AsRef<str>],
        allow_non_tls: bool,
    ) -> Result<SniPolicy, SniPatternError> {
        let patterns = (names.iter().map(AsRef::as_ref))
            .chain(endpoint_names.iter().map(AsRef::as_ref))
            .chain(allowed_sni.iter().map(AsRef::as_ref))
            .map(NamePattern::parse)
            .collect::<Result<_, _>>()?;
        Ok(SniPolicy { patterns, filter: true, allow_no_sni: false, allow_non_tls })
    }

    /// The names S3 clients use under an interface endpoint's name `regional`
    /// (`vpce-….s3.<region>.vpce.amazonaws.com`), as the catalogue lists them
    /// ([`crate::catalog::s3_endpoint_names`]): `bucket.`, `accesspoint.` and
    /// `control.`, each with a one-label wildcard under it.
    pub fn s3_endpoint_names(regional: &str) -> Vec<String> {
        crate::catalog::s3_endpoint_names(regional)
    }

    /// Whether every first flight passes (no check needed at all).
    pub fn allows_everything(&self) -> bool {
        !self.filter && self.allow_no_sni && self.allow_non_tls
    }

    /// Whether `name` is accepted (case-insensitive, trailing dot ignored).
    pub fn allows_name(&self, name: &str) -> bool {
        if !self.filter {
            return true;
        }
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.patterns.iter().any(|p| p.matches(&name))
    }

    /// The verdict for what [`client_hello_sni`] found.
    pub fn check(&self, outcome: &SniOutcome) -> SniVerdict {
        match outcome {
            SniOutcome::NeedMore => SniVerdict::Wait,
            SniOutcome::Sni(name) if self.allows_name(name) => SniVerdict::Allow,
            SniOutcome::Sni(name) => SniVerdict::Deny(SniDeny::NameNotAllowed(name.clone())),
            SniOutcome::NoSni if self.allow_no_sni => SniVerdict::Allow,
            SniOutcome::NoSni => SniVerdict::Deny(SniDeny::NoSni),
            SniOutcome::NotTls if self.allow_non_tls => SniVerdict::Allow,
            SniOutcome::NotTls => SniVerdict::Deny(SniDeny::NotTls),
            SniOutcome::TooLarge if !self.filter => SniVerdict::Allow,
            SniOutcome::TooLarge => SniVerdict::Deny(SniDeny::TooLarge),
        }
    }
}

// ---------------------------------------------------------------------------
// Endpoint policy
// ---------------------------------------------------------------------------

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

#[derive(Debug, Clone, PartialEq, Eq)]
enum Test {
    /// IPv4 (base, mask) blocks; IPv6 values are kept out (they never match).
    Ip(Vec<(u32, u32)>),
    Str {
        values: Vec<String>,
        ignore_case: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Condition {
    key: Key,
    test: Test,
    negated: bool,
}

impl Condition {
    fn holds(&self, ctx: &ConnContext<'_>) -> bool {
        let any = match (&self.test, self.key) {
            (Test::Ip(blocks), Key::SourceIp | Key::VpcSourceIp) => {
                let ip = u32::from(ctx.source_ip);
                blocks.iter().any(|&(base, mask)| ip & mask == base)
            }
            (Test::Str { values, ignore_case }, Key::SourceVpc | Key::SourceVpce) => {
                let v = if self.key == Key::SourceVpc { ctx.vpc_id } else { ctx.vpce_id };
                values.iter().any(|x| if *ignore_case { x.eq_ignore_ascii_case(v) } else { x == v })
            }
            _ => unreachable!("operator and key kinds are checked at parse time"),
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
                        if !matches!(key, Key::SourceVpc | Key::SourceVpce) {
                            warn(format!("{op} on {key_name}"), false);
                            continue;
                        }
                        let values = vals.into_iter().map(str::to_string).collect();
                        (Test::Str { values, ignore_case: base.ends_with("IgnoreCase") }, base.contains("Not"))
                    }
                    _ => {
                        warn(format!("condition operator {op}"), false);
                        continue;
                    }
                };
                if key == Key::SourceIp {
                    warn(format!("{op} on aws:SourceIp (matched against the client's private IP, unlike AWS)"), true);
                }
                conditions.push(Condition { key, test, negated });
            }
        }
    }
    Ok(Statement { effect, unknown, conditions })
}

/// An IP or CIDR as IAM writes it; `Ok(None)` for IPv6 (valid, never matches here).
fn parse_ip_block(v: &str) -> Result<Option<(u32, u32)>, String> {
    let (addr, prefix) = match v.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (v, None),
    };
    let bad = || format!("{v:?} is not an IP address or CIDR block");
    match addr.parse::<IpAddr>().map_err(|_| bad())? {
        IpAddr::V6(_) => {
            if prefix.is_some_and(|p| p.parse::<u8>().map_or(true, |p| p > 128)) {
                return Err(bad());
            }
            Ok(None)
        }
        IpAddr::V4(a) => {
            let len = match prefix {
                Some(p) => p.parse::<u8>().ok().filter(|&p| p <= 32).ok_or_else(bad)?,
                None => 32,
            };
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            // IAM accepts host bits below the prefix; they are ignored.
            Ok(Some((u32::from(a) & mask, mask)))
        }
    }
}

#[cfg(test)]
mod tests;
