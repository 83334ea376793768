//! ClientHello parsing on real rustls first flights, split, truncated and mangled.

use super::*;
use crate::policy::tests::client_hello;

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
