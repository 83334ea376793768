//! A stand-in's certificates: a CA of its own and one leaf for all its names.
//!
//! Every stand-in makes a fresh CA, and each CA has a name no other has
//! (`privlink stand-in CA <random> for <service>`, and a random serial). The
//! first version named every CA "privlink demo CA" and wrote it to one file:
//! a second stand-in overwrote the first's CA, and a client holding both
//! could not tell them apart (OpenSSL picks the issuer by name and then fails
//! the signature, "asn1 encoding routines::EVP lib"). With distinct names
//! and [`default_ca_path`] naming the file after the service and the port,
//! several stand-ins run at once and their CA files can even be joined into
//! one bundle. A CA kept on disk across runs would spare re-trusting after a
//! restart, but would keep a private key in a file: a lab tool need not.
//!
//! The leaf covers each name the stand-in plays and, for an AWS service the
//! catalogue knows, the endpoint's specific names
//! ([`privlink_core::catalog::vpce_wildcard`]: `*.ec2.us-east-1.vpce.amazonaws.com`
//! covers the regional `vpce-…-xyz.ec2…` and the zonal `vpce-…-xyz-us-east-1a.ec2…`
//! alike), so a client may use any of the names AWS gives an endpoint. For S3
//! that is `*.s3.<region>.vpce.amazonaws.com` and the service's own names; the
//! `bucket.vpce-…`, `accesspoint.vpce-…` and `control.vpce-…` names are one
//! label deeper than any one wildcard reaches: pass them with `--name`.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;

use privlink_core::catalog;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType, SerialNumber};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use thiserror::Error;

/// The longest common name X.509 allows (`ub-common-name`).
const MAX_COMMON_NAME: usize = 64;

/// Why a stand-in's certificates could not be made.
#[derive(Debug, Error)]
pub enum CertError {
    /// No name to put in the certificate.
    #[error("a stand-in needs at least one name")]
    NoName,
    /// A name that is not a host name (or a `*.` wildcard over one).
    #[error("{0:?} is not a DNS name a certificate can hold")]
    BadName(String),
    /// The OS gave no randomness for the CA's name and serial.
    #[error("no randomness for the CA's name: {0}")]
    Random(String),
    /// rcgen refused the parameters or could not sign.
    #[error("certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// rustls refused the certificate or key.
    #[error("TLS config: {0}")]
    Tls(#[from] rustls::Error),
}

/// A CA and a leaf certificate for one stand-in's names.
pub struct ServiceCert {
    /// The CA certificate clients trust.
    pub ca: CertificateDer<'static>,
    /// The CA certificate in PEM, for `curl --cacert` and `aws --ca-bundle`.
    pub ca_pem: String,
    /// The CA's common name, unique to this stand-in.
    pub ca_name: String,
    /// The leaf certificate the service presents.
    pub leaf: CertificateDer<'static>,
    /// The DNS names the leaf covers, the first being its common name (it
    /// also covers the address 127.0.0.1).
    pub names: Vec<String>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl ServiceCert {
    /// Makes a fresh CA and a leaf for `name` (and its vpce wildcard).
    pub fn generate(name: &str) -> Result<ServiceCert, CertError> {
        ServiceCert::for_names(&[name])
    }

    /// Makes a fresh CA and a leaf for `names`: the first is the leaf's
    /// common name; see [`certificate_names`] for what else it covers.
    pub fn for_names<S: AsRef<str>>(names: &[S]) -> Result<ServiceCert, CertError> {
        let names = certificate_names(names)?;
        let (mut tag, mut serial) = ([0u8; 8], [0u8; 16]);
        for buf in [&mut tag[..], &mut serial[..]] {
            getrandom::getrandom(buf).map_err(|e| CertError::Random(e.to_string()))?;
        }
        let tag = catalog::random_suffix(tag);
        let ca_name: String =
            format!("privlink stand-in CA {tag} for {}", names[0]).chars().take(MAX_COMMON_NAME).collect();

        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::OrganizationName, "privlink");
        ca_params.distinguished_name.push(DnType::CommonName, ca_name.as_str());
        // A positive serial (top bit clear), 16 bytes as RFC 5280 allows at most 20.
        serial[0] &= 0x7f;
        ca_params.serial_number = Some(SerialNumber::from_slice(&serial));
        let ca = ca_params.self_signed(&ca_key)?;

        let leaf_key = KeyPair::generate()?;
        let mut leaf_params = CertificateParams::new(names.clone())?;
        leaf_params.distinguished_name.push(DnType::CommonName, names[0].as_str());
        // It listens on loopback: a client on the host may name it by address
        // (`aws --endpoint-url https://127.0.0.1:8443`).
        leaf_params.subject_alt_names.push(SanType::IpAddress(Ipv4Addr::LOCALHOST.into()));
        // Names the issuer by key too, so a client holding several stand-in CAs finds the right one at once.
        leaf_params.use_authority_key_identifier_extension = true;
        let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key)?;
        Ok(ServiceCert {
            ca: ca.der().clone(),
            ca_pem: ca.pem(),
            ca_name,
            leaf: leaf.der().clone(),
            names,
            key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
        })
    }

    /// A rustls server config presenting the leaf.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, CertError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![self.leaf.clone()], PrivateKeyDer::Pkcs8(self.key.clone_key()))?;
        Ok(Arc::new(cfg))
    }
}

/// The names a stand-in's leaf covers: each of `names` (lowercased, a
/// trailing dot dropped), then the vpce wildcard of each that has one, each
/// once, in that order.
pub fn certificate_names<S: AsRef<str>>(names: &[S]) -> Result<Vec<String>, CertError> {
    if names.is_empty() {
        return Err(CertError::NoName);
    }
    let mut out: Vec<String> = Vec::new();
    let mut push = |n: String| {
        if !out.contains(&n) {
            out.push(n);
        }
    };
    let given: Vec<String> = names
        .iter()
        .map(|n| {
            let n = n.as_ref();
            let host = n.strip_suffix('.').unwrap_or(n).to_ascii_lowercase();
            if is_certificate_name(&host) {
                Ok(host)
            } else {
                Err(CertError::BadName(n.to_string()))
            }
        })
        .collect::<Result<_, _>>()?;
    for n in &given {
        push(n.clone());
    }
    for n in &given {
        if let Some(w) = catalog::vpce_wildcard(n) {
            push(w);
        }
    }
    Ok(out)
}

/// Whether `name` is a host name, or `*.` and a host name.
fn is_certificate_name(name: &str) -> bool {
    let host = name.strip_prefix("*.").unwrap_or(name);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Where `privlink standin` writes its CA unless told: one file per service
/// name and port (`/tmp/privlink-standin-ec2.us-east-1.amazonaws.com-8443-ca.pem`),
/// so two stand-ins never write the same file. A second stand-in on the same
/// port fails to listen before it writes anything.
pub fn default_ca_path(name: &str, port: u16) -> PathBuf {
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c.to_ascii_lowercase() } else { '_' })
        .collect();
    PathBuf::from(format!("/tmp/privlink-standin-{safe}-{port}-ca.pem"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{ServerName, UnixTime};

    const EC2: &str = "ec2.us-east-1.amazonaws.com";

    /// Verifies `cert`'s leaf for `name` against a root store holding `cas`, as a client would.
    fn verify(cas: &[&CertificateDer<'static>], cert: &ServiceCert, name: &str) -> Result<(), rustls::Error> {
        let mut roots = rustls::RootCertStore::empty();
        for ca in cas {
            roots.add((*ca).clone()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider).build().unwrap();
        let server_name = ServerName::try_from(name.to_string()).unwrap();
        verifier.verify_server_cert(&cert.leaf, &[], &server_name, &[], UnixTime::now()).map(|_| ())
    }

    #[test]
    fn names_include_the_vpce_wildcards() {
        assert_eq!(certificate_names(&[EC2]).unwrap(), [EC2, "*.ec2.us-east-1.vpce.amazonaws.com"]);
        let several = certificate_names(&[
            "STS.us-east-1.amazonaws.com.",
            "api.partner.example",
            EC2,
            "sts.us-east-1.amazonaws.com",
        ]);
        assert_eq!(
            several.unwrap(),
            [
                "sts.us-east-1.amazonaws.com",
                "api.partner.example",
                EC2,
                "*.sts.us-east-1.vpce.amazonaws.com",
                "*.ec2.us-east-1.vpce.amazonaws.com",
            ]
        );
        assert!(matches!(certificate_names::<&str>(&[]), Err(CertError::NoName)));
        for bad in ["", "a..b", "white space.example", "*.", "a.*.b", "é.example"] {
            assert!(matches!(certificate_names(&[bad]), Err(CertError::BadName(_))), "{bad:?}");
        }
    }

    #[test]
    fn the_leaf_verifies_for_regional_and_zonal_vpce_names() {
        let cert = ServiceCert::for_names(&[EC2, "sts.us-east-1.amazonaws.com"]).unwrap();
        for name in [
            EC2,
            "sts.us-east-1.amazonaws.com",
            "vpce-0fe5b17a0707d6abc-29p5708s.ec2.us-east-1.vpce.amazonaws.com",
            "vpce-0fe5b17a0707d6abc-29p5708s-us-east-1a.ec2.us-east-1.vpce.amazonaws.com",
            "vpce-0fe5b17a0707d6abc-29p5708s.sts.us-east-1.vpce.amazonaws.com",
            "127.0.0.1",
        ] {
            verify(&[&cert.ca], &cert, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        // The wildcard is one label: deeper names, and other services, are not covered.
        for name in [
            "bucket.vpce-0fe5-29p5708s.ec2.us-east-1.vpce.amazonaws.com",
            "vpce-0fe5-x.kms.us-east-1.vpce.amazonaws.com",
            "127.0.0.2",
        ] {
            assert!(verify(&[&cert.ca], &cert, name).is_err(), "{name}");
        }
    }

    #[test]
    fn s3_covers_its_endpoint_names_but_not_the_bucket_forms() {
        let cert = ServiceCert::for_names(&["s3.us-east-1.amazonaws.com", "*.s3.us-east-1.amazonaws.com"]).unwrap();
        assert_eq!(cert.names[2], "*.s3.us-east-1.vpce.amazonaws.com");
        for name in ["my-bucket.s3.us-east-1.amazonaws.com", "vpce-1a2b3c4d-5e6f.s3.us-east-1.vpce.amazonaws.com"] {
            verify(&[&cert.ca], &cert, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(verify(&[&cert.ca], &cert, "bucket.vpce-1a2b3c4d-5e6f.s3.us-east-1.vpce.amazonaws.com").is_err());
    }

    #[test]
    fn every_ca_has_a_name_of_its_own() {
        let (a, b) = (ServiceCert::generate(EC2).unwrap(), ServiceCert::generate(EC2).unwrap());
        assert_ne!(a.ca_name, b.ca_name, "two stand-ins of one service must not share a CA name");
        for cert in [&a, &b] {
            assert!(
                cert.ca_name.starts_with("privlink stand-in CA ") && cert.ca_name.ends_with(EC2),
                "{}",
                cert.ca_name
            );
            // The name is in the certificate's subject, not only in our struct.
            let der: &[u8] = cert.ca.as_ref();
            assert!(der.windows(cert.ca_name.len()).any(|w| w == cert.ca_name.as_bytes()));
        }
        // Each leaf verifies under its own CA only.
        verify(&[&a.ca], &a, EC2).unwrap();
        assert!(verify(&[&b.ca], &a, EC2).is_err());
        // A long name keeps the common name within X.509's bound.
        let long = format!("{}.example", "a".repeat(60));
        assert_eq!(ServiceCert::generate(&long).unwrap().ca_name.len(), MAX_COMMON_NAME);
    }

    #[test]
    fn default_ca_paths_differ_by_name_and_port() {
        assert_eq!(
            default_ca_path(EC2, 8443),
            PathBuf::from("/tmp/privlink-standin-ec2.us-east-1.amazonaws.com-8443-ca.pem")
        );
        assert_ne!(default_ca_path(EC2, 8443), default_ca_path(EC2, 8444));
        assert_ne!(default_ca_path(EC2, 8443), default_ca_path("sts.us-east-1.amazonaws.com", 8443));
        assert_eq!(default_ca_path("*.S3/../x", 1), PathBuf::from("/tmp/privlink-standin-_.s3_.._x-1-ca.pem"));
    }
}
