//! Which TLS server names may go through an endpoint ([`SniPolicy`]).
//!
//! AWS itself does not filter on SNI: an interface endpoint forwards any TCP
//! traffic to the service. privlink can, so that a lab shows which names
//! reach which endpoint; leave every list empty to behave like AWS (see
//! [`SniPolicy::allow_all`]).
//!
//! Name matching follows certificate name matching (RFC 6125 section 6.4.3):
//! case-insensitive, a trailing dot ignored, and `*` only as the whole
//! leftmost label, standing for exactly one label (`*.example.com` matches
//! `a.example.com`, not `example.com` nor `a.b.example.com`).

use super::hello::{SniOutcome, MAX_CLIENT_HELLO};

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
    /// endpoint-specific names (regional, zonal, and S3's names under them,
    /// see [`crate::catalog::s3_endpoint_names`]) and the extra `allowed_sni`.
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

    /// Checks one server-name pattern (an `allowed_sni` entry) as
    /// [`SniPolicy::new`] will compile it: the config refuses a bad one,
    /// naming its line, so that `check` never passes a pattern `up` would
    /// refuse only once the ENI exists.
    pub fn check_pattern(pattern: &str) -> Result<(), SniPatternError> {
        NamePattern::parse(pattern).map(drop)
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

    /// The verdict for what [`client_hello_sni`](super::client_hello_sni) found.
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

#[cfg(test)]
mod tests;
