//! Fixtures shared by the policy tests: real ClientHellos from rustls, and the
//! SNI policy of an execute-api endpoint.

use std::sync::Arc;

use rustls::pki_types::ServerName;

use super::SniPolicy;

/// The first flight a rustls client sends for `server_name` (a DNS name or an IP).
pub(super) fn client_hello(server_name: &str) -> Vec<u8> {
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

/// An execute-api endpoint's names (wildcard default name, regional and zonal
/// names) plus one extra name, written with capitals and a trailing dot.
pub(super) fn sni_policy() -> SniPolicy {
    let regional = "vpce-0fe5b17a0707d6abc-29p5708s.execute-api.us-east-1.vpce.amazonaws.com";
    let zonal = "vpce-0fe5b17a0707d6abc-29p5708s-us-east-1a.execute-api.us-east-1.vpce.amazonaws.com";
    SniPolicy::new(&["*.execute-api.us-east-1.amazonaws.com"], &[regional, zonal], &["Internal.Example.COM."], false)
        .unwrap()
}
