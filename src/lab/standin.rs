//! Stand-ins for the public side, on loopback: a TLS server playing the
//! real service (a certificate for its names, signed by a CA of its own, and
//! answers shaped as AWS shapes them) and a DNS server playing the internet's
//! answers. The demo and the namespace tests use them, and so does
//! `privlink standin`; nothing here leaves the host.

pub mod aws_reply;
mod cert;
pub mod http;
mod public_dns;
mod tls;

pub use cert::{certificate_names, default_ca_path, CertError, ServiceCert};
pub use public_dns::PublicDns;
pub use tls::TlsStandIn;
