//! Writing a response: the query's header and question, then the records of
//! one [`Answer`], within the transport's size limit.
//!
//! The limit ([`response_limit`]) is 64 KiB over TCP, 512 bytes over UDP
//! without EDNS, and the client's EDNS size between 512 and
//! [`MAX_UDP_RESPONSE`] with it. An answer that does not fit is sent with TC
//! and no records at all (RFC 2181 section 9: no partial RRset), so the
//! client retries over TCP. The question is echoed byte for byte, so its case
//! is the client's (RFC 4343), and the owner names of the records are
//! compression pointers into it.

use super::opt::emit_opt;
use super::query::{Edns, Query};
use super::wire::{
    emit_header, A_RECORD_LEN, CLASS_IN, FLAG_AA, FLAG_CD, FLAG_QR, FLAG_RA, FLAG_RD, FLAG_TC, HEADER_LEN, MASK_OPCODE,
    OPT_RECORD_LEN, RCODE_NOERROR, TYPE_A,
};
use super::{Transport, ANSWER_TTL, MAX_UDP_RESPONSE, PLAIN_UDP_LIMIT};

/// The answer to emit, before size limits are applied.
pub(super) struct Answer<'z> {
    pub(super) rcode: u8,
    pub(super) ext_rcode: u8,
    pub(super) authoritative: bool,
    pub(super) recursion_available: bool,
    pub(super) ips: &'z [[u8; 4]],
    /// `(where the apex starts in the question name, its SOA tail)`.
    pub(super) soa: Option<(usize, &'z [u8])>,
    pub(super) soa_in_answer: bool,
}

impl Answer<'_> {
    /// NOERROR with nothing in it, recursion available: what every decision starts from.
    pub(super) fn empty() -> Self {
        Answer {
            rcode: RCODE_NOERROR,
            ext_rcode: 0,
            authoritative: false,
            recursion_available: true,
            ips: &[],
            soa: None,
            soa_in_answer: false,
        }
    }
}

/// The largest response the client takes on `transport`.
pub(super) fn response_limit(transport: Transport, edns: Option<Edns>) -> usize {
    match (transport, edns) {
        (Transport::Tcp, _) => usize::from(u16::MAX),
        (Transport::Udp, None) => PLAIN_UDP_LIMIT,
        (Transport::Udp, Some(e)) => usize::from(e.udp_size).clamp(PLAIN_UDP_LIMIT, MAX_UDP_RESPONSE),
    }
}

/// Response flags: QR, the query's opcode, RD and CD, plus what the answer sets.
fn response_flags(query_flags: u16, aa: bool, tc: bool, ra: bool, rcode: u8) -> u16 {
    let mut flags = FLAG_QR | (query_flags & (MASK_OPCODE | FLAG_RD | FLAG_CD));
    if aa {
        flags |= FLAG_AA;
    }
    if tc {
        flags |= FLAG_TC;
    }
    if ra {
        flags |= FLAG_RA;
    }
    flags | u16::from(rcode & 0x0F)
}

/// An error response (FORMERR, NOTIMP): the header, and our OPT when the
/// query had one (RFC 6891 section 6.1.1, errors included); never larger
/// than the query.
pub(super) fn emit_error(out: &mut Vec<u8>, id: u16, query_flags: u16, rcode: u8, edns: Option<Edns>) {
    let flags = response_flags(query_flags, false, false, true, rcode);
    emit_header(out, id, flags, [0, 0, 0, u16::from(edns.is_some())]);
    if let Some(e) = edns {
        emit_opt(out, MAX_UDP_RESPONSE as u16, 0, e.dnssec_ok);
    }
}

/// Writes the response; returns whether it had to be truncated (TC).
pub(super) fn emit_answer(out: &mut Vec<u8>, msg: &[u8], query: &Query, answer: &Answer<'_>, limit: usize) -> bool {
    let question = &msg[HEADER_LEN..query.question_end];
    let soa_len = answer.soa.map_or(0, |(_, tail)| 2 + tail.len());
    let opt_len = if query.edns.is_some() { OPT_RECORD_LEN } else { 0 };
    let full_len = HEADER_LEN + question.len() + answer.ips.len() * A_RECORD_LEN + soa_len + opt_len;
    // No partial RRset: if it does not fit, send none of it (RFC 2181 section 9).
    let truncated = full_len > limit;

    let (mut an, mut ns) = (answer.ips.len() as u16, u16::from(answer.soa.is_some()));
    if answer.soa_in_answer {
        (an, ns) = (1, 0);
    }
    if truncated {
        (an, ns) = (0, 0);
    }
    let flags = response_flags(query.flags, answer.authoritative, truncated, answer.recursion_available, answer.rcode);
    out.reserve(full_len.min(limit));
    emit_header(out, query.id, flags, [1, an, ns, u16::from(query.edns.is_some())]);
    // The question is echoed byte for byte, so its case is the client's (RFC 4343).
    out.extend_from_slice(question);
    if !truncated {
        for ip in answer.ips {
            // Owner: a pointer to the question name at offset 12.
            out.extend_from_slice(&[0xC0, 0x0C]);
            out.extend_from_slice(&TYPE_A.to_be_bytes());
            out.extend_from_slice(&CLASS_IN.to_be_bytes());
            out.extend_from_slice(&ANSWER_TTL.to_be_bytes());
            out.extend_from_slice(&4u16.to_be_bytes());
            out.extend_from_slice(ip);
        }
        if let Some((apex_offset, tail)) = answer.soa {
            // The apex is a suffix of the question name: point into it.
            let pointer = 0xC000 | (HEADER_LEN + apex_offset) as u16;
            out.extend_from_slice(&pointer.to_be_bytes());
            out.extend_from_slice(tail);
        }
    }
    if let Some(edns) = query.edns {
        emit_opt(out, MAX_UDP_RESPONSE as u16, answer.ext_rcode, edns.dnssec_ok);
    }
    truncated
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::testkit::*;
    use crate::dns::*;

    // ---------------------------------------------------------------
    // Size limits: TC over UDP, whole answers over TCP, EDNS
    // ---------------------------------------------------------------

    #[test]
    fn big_answer_over_plain_udp_is_truncated_without_records() {
        let r = responder(&big_spec(), ForwardMode::Forward);
        let q = query("sixty.big.test", RecordType::A);
        let mut out = Vec::new();
        r.handle_query(&q, Transport::Udp, &mut out);
        assert!(out.len() <= PLAIN_UDP_LIMIT);
        let msg = Message::from_vec(&out).unwrap();
        assert!(msg.metadata.truncation);
        assert!(msg.answers.is_empty() && msg.authorities.is_empty());
        assert_eq!(msg.queries.len(), 1);
        assert_eq!(r.counters().truncated, 1);
    }

    #[test]
    fn big_answer_over_tcp_is_whole() {
        let r = responder(&big_spec(), ForwardMode::Forward);
        for (name, n) in [("sixty.big.test", 60), ("hundred.big.test", 100)] {
            let msg = ask(&r, &query(name, RecordType::A), Transport::Tcp);
            assert!(!msg.metadata.truncation);
            assert_eq!(a_records(&msg).len(), n);
        }
        assert_eq!(r.counters().truncated, 0);
    }

    #[test]
    fn edns_size_is_honoured_and_capped() {
        let r = responder(&big_spec(), ForwardMode::Forward);
        let mut out = Vec::new();
        // 60 IPs (~1 KB) fit in 1232 bytes but not in 900.
        let q = build_query("sixty.big.test", RecordType::A, edns(1232));
        r.handle_query(&q, Transport::Udp, &mut out);
        let msg = Message::from_vec(&out).unwrap();
        assert!(!msg.metadata.truncation);
        assert_eq!(a_records(&msg).len(), 60);
        assert_eq!(msg.max_payload(), MAX_UDP_RESPONSE as u16);

        let q = build_query("sixty.big.test", RecordType::A, edns(900));
        r.handle_query(&q, Transport::Udp, &mut out);
        assert!(out.len() <= 900);
        assert!(Message::from_vec(&out).unwrap().metadata.truncation);

        // 100 IPs (~1.7 KB) exceed the 1232-byte cap whatever the client says.
        let q = build_query("hundred.big.test", RecordType::A, edns(4096));
        r.handle_query(&q, Transport::Udp, &mut out);
        assert!(out.len() <= MAX_UDP_RESPONSE);
        let msg = Message::from_vec(&out).unwrap();
        assert!(msg.metadata.truncation);
        assert!(msg.edns.is_some());

        // A size below 512 means 512 (RFC 6891 section 6.2.5).
        let q = build_query("ec2.us-east-1.amazonaws.com", RecordType::A, edns(100));
        assert_eq!(a_records(&ask(&lab(), &q, Transport::Udp)), IPS);
    }

    #[test]
    fn edns_is_echoed_with_do_bit() {
        let q = build_query(EC2_REGIONAL, RecordType::A, |m| {
            let mut e = HEdns::new();
            e.set_dnssec_ok(true);
            m.edns = Some(e);
        });
        let msg = ask(&lab(), &q, Transport::Udp);
        let e = msg.edns.as_ref().expect("OPT in the response");
        assert!(e.flags().dnssec_ok);
        assert_eq!(e.version(), 0);
        assert_eq!(a_records(&msg), IPS);
        assert!(!msg.metadata.authentic_data);
    }

    #[test]
    fn unknown_edns_version_is_badvers() {
        let q = build_query(EC2_REGIONAL, RecordType::A, |m| {
            let mut e = HEdns::new();
            e.set_version(1);
            m.edns = Some(e);
        });
        let r = lab();
        let msg = ask(&r, &q, Transport::Udp);
        assert_eq!(r.counters().badvers, 1);
        // 16 is both BADVERS and BADSIG; hickory names it BADSIG.
        assert_eq!(u16::from(msg.metadata.response_code), 16);
        assert!(msg.answers.is_empty());
        assert_eq!(msg.edns.as_ref().map(|e| e.version()), Some(0));
    }
}
