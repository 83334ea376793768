//! A forwarded query and its answer, on the wire.
//!
//! What goes upstream ([`upstream_query`]) is the client's header flags and
//! question under an id of ours, and nothing else of what the client sent:
//! no other records, and our OPT in place of the client's (see
//! [`super::opt`]: a client's cookie, padding or subnet stay with it). A UDP
//! client's payload size is passed on, clamped to what we take, so the
//! upstream keeps to it itself.
//!
//! What comes back counts only if it answers that query ([`answers`]: our id,
//! QR, and our question, the name compared without case: RFC 5452 section
//! 9.1). The client then gets ([`client_answer`]) the upstream's records
//! under its own id and question bytes (its case), without the upstream's
//! OPT: the additional section ends where that OPT was (records after an OPT
//! are left out rather than risking a compression pointer into what moved;
//! the additional section may always be cut, RFC 2181 section 9). That
//! OPT-less form is what the cache keeps. [`finish_response`] then gives it
//! the client's own view: our OPT if the client sent one (DO copied, the
//! upstream's extended rcode), and the client's size limit: over it, the
//! header with TC and the question, no records, so the client asks again
//! over TCP, where the whole answer comes back.

use super::answer::response_limit;
use super::name::skip_owner_name;
use super::opt::emit_opt;
use super::query::Query;
use super::wire::{read_u16, FLAG_QR, FLAG_TC, HEADER_LEN, MASK_OPCODE, TYPE_OPT};
use super::{Transport, MAX_UDP_RESPONSE, PLAIN_UDP_LIMIT};

/// Writes into `out` (cleared first) the query to send upstream for the
/// client's `query` (parsed as `parsed`), under `id`.
pub(super) fn upstream_query(query: &[u8], parsed: &Query, transport: Transport, id: u16, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&parsed.flags.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(parsed.edns.is_some())]);
    out.extend_from_slice(&query[HEADER_LEN..parsed.question_end]);
    if let Some(e) = parsed.edns {
        let size = match transport {
            Transport::Udp => usize::from(e.udp_size).clamp(PLAIN_UDP_LIMIT, MAX_UDP_RESPONSE),
            Transport::Tcp => MAX_UDP_RESPONSE,
        };
        emit_opt(out, size as u16, 0, e.dnssec_ok);
    }
}

/// Whether `reply` answers the query with id `id` and the question of
/// `query` (the client's, parsed as `parsed`).
pub(super) fn answers(query: &[u8], parsed: &Query, id: u16, reply: &[u8]) -> bool {
    if reply.len() < parsed.question_end {
        return false;
    }
    let flags = read_u16(reply, 2);
    let name = HEADER_LEN..parsed.name_end;
    let type_class = parsed.name_end..parsed.question_end;
    read_u16(reply, 0) == id
        && flags & FLAG_QR != 0
        && flags & MASK_OPCODE == 0
        && read_u16(reply, 4) == 1
        && reply[name.clone()].eq_ignore_ascii_case(&query[name])
        && reply[type_class.clone()] == query[type_class]
}

/// Writes into `out` (cleared first) the client's view of `reply`, an
/// upstream answer to the client's `query` ([`answers`] holds), without any
/// OPT; returns the upstream's extended rcode (its OPT's upper 8 bits), or
/// `None` if the records are cut short.
pub(super) fn client_answer(query: &[u8], parsed: &Query, reply: &[u8], out: &mut Vec<u8>) -> Option<u8> {
    out.clear();
    out.extend_from_slice(&query[..2]);
    out.extend_from_slice(&reply[2..HEADER_LEN]);
    out.extend_from_slice(&query[HEADER_LEN..parsed.question_end]);
    let counts = [read_u16(reply, 6), read_u16(reply, 8), read_u16(reply, 10)];
    let mut kept = [0u16; 3];
    let mut ext_rcode = 0;
    let mut pos = parsed.question_end;
    'sections: for (section, &count) in counts.iter().enumerate() {
        for _ in 0..count {
            let start = pos;
            pos = skip_owner_name(reply, pos)?;
            let fixed = reply.get(pos..pos + 10)?;
            let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
            let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
            let end = pos + 10 + rdlen;
            if end > reply.len() {
                return None;
            }
            if rtype == TYPE_OPT {
                ext_rcode = fixed[4];
                break 'sections;
            }
            out.extend_from_slice(&reply[start..end]);
            kept[section] += 1;
            pos = end;
        }
    }
    for (i, n) in kept.iter().enumerate() {
        out[6 + 2 * i..8 + 2 * i].copy_from_slice(&n.to_be_bytes());
    }
    Some(ext_rcode)
}

/// Completes `out`, an OPT-less response to the client's query (parsed as
/// `parsed`), for `transport`: our OPT if the client sent one, and TC with
/// the question alone if it is over the client's limit.
pub(super) fn finish_response(parsed: &Query, transport: Transport, ext_rcode: u8, out: &mut Vec<u8>) {
    let opt_len = if parsed.edns.is_some() { super::wire::OPT_RECORD_LEN } else { 0 };
    if out.len() + opt_len > response_limit(transport, parsed.edns) {
        out.truncate(parsed.question_end);
        let flags = read_u16(out, 2) | FLAG_TC;
        out[2..4].copy_from_slice(&flags.to_be_bytes());
        out[6..12].fill(0);
    }
    if let Some(e) = parsed.edns {
        let ar = read_u16(out, 10) + 1;
        out[10..12].copy_from_slice(&ar.to_be_bytes());
        emit_opt(out, MAX_UDP_RESPONSE as u16, ext_rcode, e.dnssec_ok);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::query::parse_standard_query;
    use crate::dns::testkit::*;
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    use hickory_proto::rr::{rdata::A, Record};

    const CLIENT_COOKIE: [u8; 8] = *b"cookie-A";
    const SERVER_COOKIE: [u8; 16] = *b"server-cookie-16";

    /// EDNS with DO and a client cookie (RFC 7873), as a client sends it.
    fn with_cookie(m: &mut Message) {
        let mut e = HEdns::new();
        e.set_max_payload(4096);
        e.set_dnssec_ok(true);
        e.options_mut().insert(EdnsOption::Unknown(u16::from(EdnsCode::Cookie), CLIENT_COOKIE.to_vec()));
        m.edns = Some(e);
    }

    /// An upstream answer to `sent` with `n` A records and an OPT with both cookies.
    fn answer_with(sent: &[u8], n: u8) -> Vec<u8> {
        upstream_answer(sent, 300, |m| {
            let name = m.queries[0].name().clone();
            m.answers.clear();
            for i in 0..n {
                m.add_answer(Record::from_rdata(name.clone(), 300, RData::A(A::new(198, 51, 100, i))));
            }
            let mut e = HEdns::new();
            e.set_max_payload(1400);
            let cookie = [CLIENT_COOKIE.as_slice(), SERVER_COOKIE.as_slice()].concat();
            e.options_mut().insert(EdnsOption::Unknown(u16::from(EdnsCode::Cookie), cookie));
            m.edns = Some(e);
        })
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn the_upstream_gets_our_id_the_question_and_our_opt_never_the_clients() {
        let q = build_query("WWW.Example.com", RecordType::A, |m| {
            m.metadata.id = 0x5151;
            m.metadata.checking_disabled = true;
            with_cookie(m);
        });
        let parsed = parse_standard_query(&q).unwrap();
        let mut out = vec![0xAA; 3];
        upstream_query(&q, &parsed, Transport::Udp, 0xd00d, &mut out);
        assert!(!contains(&out, &CLIENT_COOKIE), "the client's cookie went upstream");
        let msg = Message::from_vec(&out).unwrap();
        assert_eq!(msg.metadata.id, 0xd00d);
        assert!(msg.metadata.recursion_desired && msg.metadata.checking_disabled);
        assert_eq!(msg.queries[0].name().to_ascii(), "WWW.Example.com.");
        let e = msg.edns.as_ref().expect("our OPT");
        assert!(e.flags().dnssec_ok, "DO copied");
        assert_eq!(e.max_payload(), MAX_UDP_RESPONSE as u16, "4096 clamped to what we take");
        assert!(e.options().options.is_empty());
        // No EDNS from the client, none upstream.
        let plain = query("www.example.com", RecordType::A);
        upstream_query(&plain, &parse_standard_query(&plain).unwrap(), Transport::Udp, 1, &mut out);
        assert!(Message::from_vec(&out).unwrap().edns.is_none());
    }

    #[test]
    fn an_answer_matches_on_id_and_question_only() {
        let q = query("www.example.com", RecordType::A);
        let parsed = parse_standard_query(&q).unwrap();
        let asked = |name: &str, rtype, id| build_query(name, rtype, |m| m.metadata.id = id);
        let good = answer_with(&asked("WWW.EXAMPLE.COM", RecordType::A, 9), 1);
        assert!(answers(&q, &parsed, 9, &good), "case does not matter");
        assert!(!answers(&q, &parsed, 8, &good));
        assert!(!answers(&q, &parsed, 9, &answer_with(&asked("www.example.org", RecordType::A, 9), 1)));
        // Type 0x0061 against 0x0041 ("a" and "A"): only the name ignores case.
        let mut lower = build_query("www.example.com", RecordType::Unknown(0x41), |m| m.metadata.id = 9);
        let mut upper =
            answer_with(&build_query("www.example.com", RecordType::Unknown(0x61), |m| m.metadata.id = 9), 0);
        let p = parse_standard_query(&lower).unwrap();
        assert!(!answers(&lower, &p, 9, &upper));
        lower.truncate(0);
        upper.truncate(HEADER_LEN);
        assert!(!answers(&q, &parsed, 9, &upper), "too short");
        assert!(!answers(&q, &parsed, 9, &asked("www.example.com", RecordType::A, 9)), "not a response");
    }

    #[test]
    fn the_client_gets_its_id_and_question_and_our_opt_never_the_upstreams() {
        let q = build_query("WWW.Example.com", RecordType::A, |m| {
            m.metadata.id = 0x5151;
            with_cookie(m);
        });
        let parsed = parse_standard_query(&q).unwrap();
        let reply = answer_with(&build_query("www.example.com", RecordType::A, |m| m.metadata.id = 3), 2);
        assert!(contains(&reply, &SERVER_COOKIE));
        let mut out = Vec::new();
        assert_eq!(client_answer(&q, &parsed, &reply, &mut out), Some(0));
        assert!(Message::from_vec(&out).unwrap().edns.is_none(), "the kept form has no OPT");
        finish_response(&parsed, Transport::Udp, 0, &mut out);
        assert!(!contains(&out, &SERVER_COOKIE) && !contains(&out, &CLIENT_COOKIE));
        let msg = Message::from_vec(&out).unwrap();
        assert_eq!(msg.metadata.id, 0x5151);
        assert_eq!(msg.queries[0].name().to_ascii(), "WWW.Example.com.");
        assert_eq!(msg.answers.len(), 2);
        let e = msg.edns.as_ref().expect("our OPT for the client's");
        assert!(e.flags().dnssec_ok && e.options().options.is_empty());
        // Records after an OPT are left out; the ones before it stay.
        let mut two_after = reply.clone();
        let ar = read_u16(&two_after, 10) + 1;
        two_after[10..12].copy_from_slice(&ar.to_be_bytes());
        two_after.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4]);
        assert_eq!(client_answer(&q, &parsed, &two_after, &mut out), Some(0));
        let msg = Message::from_vec(&out).unwrap();
        assert_eq!((msg.answers.len(), msg.additionals.len()), (2, 0));
        // Cut short: nothing.
        assert_eq!(client_answer(&q, &parsed, &reply[..reply.len() - 3], &mut out), None);
    }

    #[test]
    fn a_response_over_the_clients_limit_becomes_tc_with_the_question() {
        let plain = build_query("WWW.Example.com", RecordType::A, |m| m.metadata.id = 0x5151);
        let with_edns = build_query("www.example.com", RecordType::A, edns(600));
        for (q, limit) in [(&plain, PLAIN_UDP_LIMIT), (&with_edns, 600)] {
            let parsed = parse_standard_query(q).unwrap();
            let reply = answer_with(q, 40);
            let mut out = Vec::new();
            client_answer(q, &parsed, &reply, &mut out).unwrap();
            assert!(out.len() > limit);
            let mut tcp = out.clone();
            finish_response(&parsed, Transport::Tcp, 0, &mut tcp);
            assert_eq!(Message::from_vec(&tcp).unwrap().answers.len(), 40, "TCP takes it whole");
            finish_response(&parsed, Transport::Udp, 0, &mut out);
            assert!(out.len() <= limit);
            assert_eq!(&out[HEADER_LEN..parsed.question_end], &q[HEADER_LEN..parsed.question_end]);
            let msg = Message::from_vec(&out).unwrap();
            assert!(msg.metadata.truncation);
            assert!(msg.metadata.recursion_available, "the upstream's other flags are kept");
            assert!(msg.answers.is_empty() && msg.authorities.is_empty());
            assert_eq!(msg.edns.is_some(), parsed.edns.is_some());
        }
        // A small one passes as it is.
        let parsed = parse_standard_query(&plain).unwrap();
        let mut out = Vec::new();
        client_answer(&plain, &parsed, &answer_with(&plain, 2), &mut out).unwrap();
        let before = out.clone();
        finish_response(&parsed, Transport::Udp, 0, &mut out);
        assert_eq!(out, before);
    }
}
