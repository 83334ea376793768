//! What a UDP client gets for an answer an upstream resolver gave to its
//! forwarded query.
//!
//! The upstream saw the query as the client sent it (only the id differs),
//! EDNS size included, so it normally keeps to the client's limit itself.
//! One case is checked here because the client would otherwise drop the
//! datagram or fail to parse it: an answer over 512 bytes to a query without
//! EDNS (RFC 1035 section 2.3.4). The client gets the answer's header with TC
//! set and the question only, no records, the same shape as a truncated
//! private answer, so it retries over TCP, where the whole answer comes back.
//! With EDNS the answer passes as it is: the size the upstream chose was the
//! client's to set.

use super::query::parse_standard_query;
use super::wire::{emit_header, read_u16, FLAG_TC, HEADER_LEN};
use super::PLAIN_UDP_LIMIT;

/// The bytes to send a UDP client for `answer`, the upstream's reply to its
/// `query` (with the client's id restored): `answer` itself, or a TC message
/// written into `out` (cleared first, reused so the hot path does not
/// allocate) when the answer is too big for a client without EDNS.
///
/// A query that is not a standard query counts as one without EDNS and gets
/// a TC message with no question.
pub fn forwarded_udp_reply<'a>(query: &[u8], answer: &'a [u8], out: &'a mut Vec<u8>) -> &'a [u8] {
    if answer.len() <= PLAIN_UDP_LIMIT {
        return answer;
    }
    let parsed = parse_standard_query(query);
    if parsed.is_some_and(|q| q.edns.is_some()) {
        return answer;
    }
    let question = parsed.map_or(&[][..], |q| &query[HEADER_LEN..q.question_end]);
    out.clear();
    let flags = read_u16(answer, 2) | FLAG_TC;
    emit_header(out, read_u16(answer, 0), flags, [u16::from(!question.is_empty()), 0, 0, 0]);
    out.extend_from_slice(question);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::testkit::*;
    use hickory_proto::rr::{rdata::A, Record};

    /// An upstream answer to `q` with `n` A records (16 bytes each, compressed).
    fn answer_with(q: &[u8], n: u8) -> Vec<u8> {
        upstream_answer(q, 300, |m| {
            let name = m.queries[0].name().clone();
            m.answers.clear();
            for i in 0..n {
                m.add_answer(Record::from_rdata(name.clone(), 300, RData::A(A::new(198, 51, 100, i))));
            }
        })
    }

    #[test]
    fn small_answer_passes_uncopied() {
        let q = query("www.example.com", RecordType::A);
        let answer = answer_with(&q, 2);
        assert!(answer.len() <= PLAIN_UDP_LIMIT);
        let mut out = Vec::new();
        let reply = forwarded_udp_reply(&q, &answer, &mut out);
        assert!(std::ptr::eq(reply, answer.as_slice()), "the answer itself, not a copy");
        assert!(out.is_empty());
    }

    #[test]
    fn big_answer_without_edns_becomes_tc_with_the_question() {
        let q = build_query("WWW.Example.com", RecordType::A, |m| m.metadata.id = 0x5151);
        let answer = answer_with(&q, 40);
        assert!(answer.len() > PLAIN_UDP_LIMIT, "{}", answer.len());
        let mut out = vec![0xAA; 700];
        let reply = forwarded_udp_reply(&q, &answer, &mut out).to_vec();
        // The header with TC and one question, then the client's question, byte for byte.
        let question = &q[HEADER_LEN..];
        assert_eq!(reply.len(), HEADER_LEN + question.len());
        assert_eq!(&reply[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&reply[HEADER_LEN..], question);
        let msg = Message::from_vec(&reply).unwrap();
        assert_eq!(msg.metadata.id, 0x5151);
        assert_eq!(msg.metadata.message_type, MessageType::Response);
        assert!(msg.metadata.truncation);
        assert!(msg.metadata.recursion_available, "the upstream's other flags are kept");
        assert_eq!(msg.metadata.response_code, ResponseCode::NoError);
        assert_eq!(msg.queries[0].name().to_ascii(), "WWW.Example.com.");
        assert!(msg.answers.is_empty() && msg.authorities.is_empty() && msg.additionals.is_empty());
        assert_eq!(out, reply, "written into the caller's buffer");
    }

    #[test]
    fn big_answer_with_edns_passes() {
        let q = build_query("www.example.com", RecordType::A, edns(1232));
        let answer = answer_with(&q, 40);
        assert!(answer.len() > PLAIN_UDP_LIMIT);
        let mut out = Vec::new();
        assert!(std::ptr::eq(forwarded_udp_reply(&q, &answer, &mut out), answer.as_slice()));
    }

    #[test]
    fn a_query_that_does_not_parse_gets_a_tc_header_only() {
        let q = query("www.example.com", RecordType::A);
        let answer = answer_with(&q, 40);
        let mut out = Vec::new();
        for bad in [&q[..5], &q[..HEADER_LEN + 3]] {
            let reply = forwarded_udp_reply(bad, &answer, &mut out);
            assert_eq!(reply.len(), HEADER_LEN);
            assert_eq!(&reply[..2], &answer[..2]);
            assert_eq!(&reply[4..12], &[0; 8]);
            assert!(Message::from_vec(reply).unwrap().metadata.truncation);
        }
    }
}
