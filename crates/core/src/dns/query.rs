//! Reading a query: its one question and its EDNS OPT record, in place.
//!
//! The question name is walked label by label; a compression pointer in it
//! is a drop (see the module doc), an extended or binary label a FORMERR.
//! The other sections are walked only to find the OPT record (RFC 6891
//! section 6.1.1: at most one, in the additional section, owned by the
//! root); their names are skipped, never followed.

use super::name::skip_owner_name;
use super::wire::{read_u16, EDNS_DO, FLAG_QR, HEADER_LEN, MASK_OPCODE, MAX_NAME_LEN, TYPE_OPT};
use super::MAX_QUERY_LEN;

/// Why a DNS message got no response at all (the module doc says why this
/// is not [`crate::packet::DropReason`]). Decided while reading a query:
/// here and in [`super::Responder`], which checks the header first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QueryDropReason {
    /// Shorter than a DNS header.
    TooShort,
    /// The QR bit is set: a response, never answered (no reflection loops).
    NotQuery,
    /// Longer than [`MAX_QUERY_LEN`], or than 512 bytes over UDP without EDNS.
    Oversized,
    /// A compression pointer in the question name (see the module doc).
    Malformed,
}

/// The parts of a query the answer needs, all by offset into the query.
#[derive(Clone, Copy, Debug)]
pub(super) struct Query {
    pub(super) id: u16,
    pub(super) flags: u16,
    /// Offset just past the question's terminating root label.
    pub(super) name_end: usize,
    /// Offset just past QCLASS.
    pub(super) question_end: usize,
    pub(super) qtype: u16,
    pub(super) qclass: u16,
    pub(super) edns: Option<Edns>,
}

/// What the query's OPT record says.
#[derive(Clone, Copy, Debug)]
pub(super) struct Edns {
    /// The client's UDP payload size (the OPT's CLASS field).
    pub(super) udp_size: u16,
    pub(super) version: u8,
    pub(super) dnssec_ok: bool,
}

/// Why a query could not be parsed past its header.
pub(super) enum ParseError {
    Drop(QueryDropReason),
    FormErr,
}

/// Parses the question and the EDNS OPT of a query whose header is already checked.
pub(super) fn parse_query(msg: &[u8], id: u16, flags: u16) -> Result<Query, ParseError> {
    let count = |i: usize| usize::from(read_u16(msg, i));
    if count(4) != 1 {
        return Err(ParseError::FormErr);
    }
    let mut pos = HEADER_LEN;
    loop {
        let len = *msg.get(pos).ok_or(ParseError::FormErr)?;
        match len & 0xC0 {
            0x00 if len == 0 => {
                pos += 1;
                break;
            }
            0x00 => {
                pos += 1 + usize::from(len);
                // The name must also leave room for its root label.
                if pos - HEADER_LEN >= MAX_NAME_LEN {
                    return Err(ParseError::FormErr);
                }
            }
            0xC0 => return Err(ParseError::Drop(QueryDropReason::Malformed)),
            // 0x40 and 0x80: extended and binary labels (RFC 6891 section 5), unsupported.
            _ => return Err(ParseError::FormErr),
        }
    }
    let name_end = pos;
    let fixed = msg.get(pos..pos + 4).ok_or(ParseError::FormErr)?;
    let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
    pos += 4;
    let question_end = pos;

    let edns = find_opt(msg, pos, [count(6), count(8), count(10)]).map_err(|_| ParseError::FormErr)?;
    Ok(Query { id, flags, name_end, question_end, qtype, qclass, edns })
}

/// The EDNS OPT of any message, for an error response (FORMERR, NOTIMP) that
/// must carry an OPT when the query did: the questions are skipped as names
/// (whatever their count) and the first well-placed OPT is taken, even if the
/// message is wrong elsewhere. `None` if none can be found.
pub(super) fn find_edns(msg: &[u8]) -> Option<Edns> {
    if msg.len() < HEADER_LEN {
        return None;
    }
    let count = |i: usize| usize::from(read_u16(msg, i));
    let mut pos = HEADER_LEN;
    for _ in 0..count(4) {
        pos = skip_owner_name(msg, pos)? + 4;
    }
    match find_opt(msg, pos, [count(6), count(8), count(10)]) {
        Ok(edns) => edns,
        Err(first) => first,
    }
}

/// Walks `counts` (answer, authority, additional) records from `pos` to find
/// the OPT record; names are skipped, never followed (a pointer ends a name),
/// so loops cannot bite. RFC 6891 section 6.1.1: one OPT, in the additional
/// section, owned by the root. `Err` (with the first such OPT, if any) when
/// the records are cut short or an OPT is misplaced or repeated.
fn find_opt(msg: &[u8], mut pos: usize, counts: [usize; 3]) -> Result<Option<Edns>, Option<Edns>> {
    let [an, ns, ar] = counts;
    let mut edns = None;
    for index in 0..an + ns + ar {
        let owner_start = pos;
        pos = skip_owner_name(msg, pos).ok_or(edns)?;
        let fixed = msg.get(pos..pos + 10).ok_or(edns)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let class = u16::from_be_bytes([fixed[2], fixed[3]]);
        let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
        let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let root_owner = pos - owner_start == 1;
        pos += 10 + rdlen;
        if pos > msg.len() {
            return Err(edns);
        }
        if rtype == TYPE_OPT {
            let in_additional = index >= an + ns;
            if !in_additional || !root_owner || edns.is_some() {
                return Err(edns);
            }
            edns = Some(Edns { udp_size: class, version: (ttl >> 16) as u8, dnssec_ok: ttl & EDNS_DO != 0 });
        }
    }
    Ok(edns)
}

/// Parses a well-formed standard query (opcode QUERY, QR clear, at most
/// [`MAX_QUERY_LEN`] bytes); `None` for anything else. For the callers that
/// see a query again after the responder accepted it: the cache and the
/// forwarded-answer rule.
pub(super) fn parse_standard_query(query: &[u8]) -> Option<Query> {
    if query.len() < HEADER_LEN || query.len() > MAX_QUERY_LEN {
        return None;
    }
    let id = read_u16(query, 0);
    let flags = read_u16(query, 2);
    if flags & (FLAG_QR | MASK_OPCODE) != 0 {
        return None;
    }
    parse_query(query, id, flags).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::testkit::*;
    use crate::dns::*;

    // ---------------------------------------------------------------
    // Bad queries: drop, FORMERR, NOTIMP
    // ---------------------------------------------------------------

    #[track_caller]
    fn outcome(r: &Responder, q: &[u8], t: Transport) -> (Outcome, Vec<u8>) {
        let mut out = Vec::new();
        let o = r.handle_query(q, t, &mut out);
        (o, out)
    }

    #[track_caller]
    fn rcode_of(r: &Responder, q: &[u8]) -> ResponseCode {
        let (o, out) = outcome(r, q, Transport::Udp);
        assert_eq!(o, Outcome::Respond);
        assert!(out.len() <= q.len().max(HEADER_LEN) || out.len() <= PLAIN_UDP_LIMIT);
        Message::from_vec(&out).unwrap().metadata.response_code
    }

    #[test]
    fn short_messages_are_dropped() {
        let r = lab();
        for len in 0..HEADER_LEN {
            let q = vec![0u8; len];
            assert_eq!(outcome(&r, &q, Transport::Udp).0, Outcome::Drop(QueryDropReason::TooShort));
        }
        assert_eq!(r.counters().dropped_too_short, HEADER_LEN as u64);
    }

    #[test]
    fn responses_are_never_answered() {
        let r = lab();
        let mut q = query(EC2_REGIONAL, RecordType::A);
        q[2] |= 0x80;
        let (o, out) = outcome(&r, &q, Transport::Udp);
        assert_eq!(o, Outcome::Drop(QueryDropReason::NotQuery));
        assert!(out.is_empty());
        // Our own response fed back in is dropped too: no reflection loops.
        let mut resp = Vec::new();
        r.handle_query(&query(EC2_REGIONAL, RecordType::A), Transport::Udp, &mut resp);
        assert_eq!(outcome(&r, &resp, Transport::Udp).0, Outcome::Drop(QueryDropReason::NotQuery));
        assert_eq!(r.counters().dropped_not_query, 2);
    }

    /// A query padded with an additional TXT record of `pad` bytes.
    fn padded_query(pad: usize, with_edns: bool) -> Vec<u8> {
        let mut q = if with_edns {
            build_query(EC2_REGIONAL, RecordType::A, edns(1232))
        } else {
            query(EC2_REGIONAL, RecordType::A)
        };
        let arcount = u16::from_be_bytes([q[10], q[11]]) + 1;
        q[10..12].copy_from_slice(&arcount.to_be_bytes());
        q.extend_from_slice(&[0, 0, 16, 0, 1, 0, 0, 0, 0]);
        q.extend_from_slice(&(pad as u16).to_be_bytes());
        q.resize(q.len() + pad, b'x');
        q
    }

    #[test]
    fn oversized_queries_are_dropped() {
        let r = lab();
        let q = padded_query(MAX_QUERY_LEN, true);
        assert_eq!(outcome(&r, &q, Transport::Tcp).0, Outcome::Drop(QueryDropReason::Oversized));
        // Over 512 without EDNS: dropped over UDP, fine over TCP.
        let q = padded_query(600, false);
        assert_eq!(outcome(&r, &q, Transport::Udp).0, Outcome::Drop(QueryDropReason::Oversized));
        assert_eq!(a_records(&ask(&r, &q, Transport::Tcp)), IPS);
        // With EDNS the same size is a query.
        let q = padded_query(600, true);
        assert_eq!(a_records(&ask(&r, &q, Transport::Udp)), IPS);
        assert_eq!(r.counters().dropped_oversized, 2);
    }

    #[test]
    fn other_opcodes_are_notimp() {
        let r = lab();
        for opcode in [OpCode::Status, OpCode::Notify, OpCode::Update] {
            let q = build_query(EC2_REGIONAL, RecordType::A, |m| m.metadata.op_code = opcode);
            let (o, out) = outcome(&r, &q, Transport::Udp);
            assert_eq!(o, Outcome::Respond);
            assert_eq!(out.len(), HEADER_LEN);
            let msg = Message::from_vec(&out).unwrap();
            assert_eq!(msg.metadata.response_code, ResponseCode::NotImp);
            assert_eq!(msg.metadata.op_code, opcode);
        }
        assert_eq!(r.counters().notimp, 3);
    }

    #[test]
    fn formerr_and_notimp_keep_the_opt() {
        let r = lab();
        let with_do = |m: &mut Message| {
            let mut e = HEdns::new();
            e.set_dnssec_ok(true);
            m.edns = Some(e);
        };
        let notify = build_query(EC2_REGIONAL, RecordType::A, |m| {
            m.metadata.op_code = OpCode::Notify;
            with_do(m);
        });
        let two_questions = build_query(EC2_REGIONAL, RecordType::A, |m| {
            m.add_query(HQuery::query(Name::from_ascii("example.com").unwrap(), RecordType::A));
            with_do(m);
        });
        let mut two_opts = build_query(EC2_REGIONAL, RecordType::A, with_do);
        two_opts[10..12].copy_from_slice(&2u16.to_be_bytes());
        two_opts.extend_from_slice(&[0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0]);
        for (q, rcode) in
            [(notify, ResponseCode::NotImp), (two_questions, ResponseCode::FormErr), (two_opts, ResponseCode::FormErr)]
        {
            let (o, out) = outcome(&r, &q, Transport::Udp);
            assert_eq!(o, Outcome::Respond);
            assert!(out.len() <= q.len());
            let msg = Message::from_vec(&out).unwrap();
            assert_eq!(msg.metadata.response_code, rcode);
            let e = msg.edns.as_ref().unwrap_or_else(|| panic!("{rcode:?} without the query's OPT"));
            assert!(e.flags().dnssec_ok, "DO copied");
            assert_eq!((e.version(), e.max_payload()), (0, MAX_UDP_RESPONSE as u16));
        }
        // No OPT in, none out.
        let q = build_query(EC2_REGIONAL, RecordType::A, |m| m.metadata.op_code = OpCode::Status);
        let (_, out) = outcome(&r, &q, Transport::Udp);
        assert_eq!(out.len(), HEADER_LEN);
    }

    #[test]
    fn question_count_other_than_one_is_formerr() {
        let r = lab();
        let mut none = query(EC2_REGIONAL, RecordType::A);
        none[4..6].copy_from_slice(&0u16.to_be_bytes());
        none.truncate(HEADER_LEN);
        assert_eq!(rcode_of(&r, &none), ResponseCode::FormErr);
        let two = build_query(EC2_REGIONAL, RecordType::A, |m| {
            m.add_query(HQuery::query(Name::from_ascii("example.com").unwrap(), RecordType::A));
        });
        assert_eq!(rcode_of(&r, &two), ResponseCode::FormErr);
        assert_eq!(r.counters().formerr, 2);
    }

    #[test]
    fn truncated_question_is_formerr() {
        let r = lab();
        let q = query(EC2_REGIONAL, RecordType::A);
        for len in HEADER_LEN..q.len() {
            assert_eq!(rcode_of(&r, &q[..len]), ResponseCode::FormErr, "len {len}");
        }
    }

    #[test]
    fn compression_pointer_in_the_question_is_dropped() {
        let r = lab();
        // Points at itself: a loop.
        let mut q = query(EC2_REGIONAL, RecordType::A);
        q.truncate(HEADER_LEN);
        q.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1]);
        assert_eq!(outcome(&r, &q, Transport::Udp).0, Outcome::Drop(QueryDropReason::Malformed));
        // A label, then a pointer back to it.
        let mut q2 = q[..HEADER_LEN].to_vec();
        q2.extend_from_slice(&[3, b'e', b'c', b'2', 0xC0, 0x0C, 0, 1, 0, 1]);
        assert_eq!(outcome(&r, &q2, Transport::Udp).0, Outcome::Drop(QueryDropReason::Malformed));
        assert_eq!(r.counters().dropped_malformed, 2);
    }

    #[test]
    fn pointer_loops_elsewhere_are_skipped_not_followed() {
        let r = lab();
        let mut q = query(EC2_REGIONAL, RecordType::A);
        let loop_at = q.len() as u16;
        q[10..12].copy_from_slice(&1u16.to_be_bytes());
        q.extend_from_slice(&(0xC000 | loop_at).to_be_bytes());
        q.extend_from_slice(&[0, 16, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(a_records(&ask(&r, &q, Transport::Udp)), IPS);
    }

    #[test]
    fn bad_labels_and_opt_misuse_are_formerr() {
        let r = lab();
        let header = &query(EC2_REGIONAL, RecordType::A)[..HEADER_LEN];
        // Extended label type 0x40.
        let mut q = header.to_vec();
        q.extend_from_slice(&[0x41, b'x', 0, 0, 1, 0, 1]);
        assert_eq!(rcode_of(&r, &q), ResponseCode::FormErr);
        // A name longer than 255 bytes.
        let mut q = header.to_vec();
        for _ in 0..5 {
            q.push(63);
            q.extend_from_slice(&[b'a'; 63]);
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(rcode_of(&r, &q), ResponseCode::FormErr);
        // Two OPT records.
        let mut q = build_query(EC2_REGIONAL, RecordType::A, edns(1232));
        q[10..12].copy_from_slice(&2u16.to_be_bytes());
        q.extend_from_slice(&[0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0]);
        assert_eq!(rcode_of(&r, &q), ResponseCode::FormErr);
        // An OPT with a non-root owner.
        let mut q = query(EC2_REGIONAL, RecordType::A);
        q[10..12].copy_from_slice(&1u16.to_be_bytes());
        q.extend_from_slice(&[1, b'x', 0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0]);
        assert_eq!(rcode_of(&r, &q), ResponseCode::FormErr);
        // An additional record whose RDLENGTH lies.
        let mut q = padded_query(10, false);
        q.truncate(q.len() - 1);
        assert_eq!(rcode_of(&r, &q), ResponseCode::FormErr);
    }

    #[test]
    fn a_255_byte_name_is_accepted() {
        // 3 x 63-byte labels + one 61-byte label = 4 * 64 - 2 + 1 = 255 bytes.
        let name = ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61)].join(".");
        let q = query(&name, RecordType::A);
        assert_eq!(q.len(), HEADER_LEN + 255 + 4);
        assert_eq!(outcome(&lab(), &q, Transport::Udp).0, Outcome::Forward);
    }
}
