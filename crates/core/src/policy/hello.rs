//! Reading the TLS server name (SNI) from a connection's first flight.
//!
//! The relay never terminates TLS: it peeks at the client's first bytes and
//! [`client_hello_sni`] parses the ClientHello with rustls's `Acceptor`, which
//! reads a copy (the original bytes go upstream untouched). Plain text
//! is recognised from its first byte, and a TLS record header that cannot
//! start a ClientHello from its first six, before rustls is asked.
//!
//! Limit: [`MAX_CLIENT_HELLO`] (16 KiB). A longer first flight that still
//! looks like TLS is [`SniOutcome::TooLarge`], never buffered further.
//!
//! Not emulated: SNI inside ECH (Encrypted Client Hello): only the outer name
//! is seen.

use std::io::Read;

/// The most bytes of first flight [`client_hello_sni`] will look at; a
/// ClientHello is usually under 2 KiB (about 1.8 KiB with a post-quantum key
/// share), so more than this is refused rather than buffered.
pub const MAX_CLIENT_HELLO: usize = 16 * 1024;

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

#[cfg(test)]
mod tests;
