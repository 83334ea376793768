//! [`Responder`]: one query in, one [`Outcome`] out, the zone rules of the
//! module doc applied in between, and a counter per outcome.
//!
//! The order of the checks is the order of trust: a message shorter than a
//! header, or a response (QR set), is dropped before anything else is read,
//! so a reflected answer never gets one back; an opcode other than QUERY is
//! NOTIMP; then the question and OPT are parsed ([`super::query`]), and only
//! a query that parses meets the zone. The responder is shared by `&self`:
//! its counters are relaxed atomics, the zone an `Arc` swapped whole.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::answer::{emit_answer, emit_error, response_limit, Answer};
use super::asked::{Answered, AskedNames};
use super::query::{find_edns, parse_query, ParseError, Query, QueryDropReason};
use super::wire::{
    read_u16, CLASS_ANY, CLASS_IN, EXT_RCODE_BADVERS, FLAG_QR, HEADER_LEN, MASK_OPCODE, MAX_NAME_LEN, RCODE_FORMERR,
    RCODE_NOTIMP, RCODE_NXDOMAIN, RCODE_REFUSED, TYPE_A, TYPE_ANY, TYPE_AXFR, TYPE_IXFR, TYPE_SOA,
};
use super::zone::{Lookup, Zone};
use super::{Transport, MAX_QUERY_LEN, PLAIN_UDP_LIMIT};

/// What to do with names outside every private zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardMode {
    /// Return [`Outcome::Forward`]: the caller asks an upstream resolver.
    Forward,
    /// Privacy mode (`forward = []`): answer REFUSED.
    Refuse,
}

/// What the caller must do after [`Responder::handle_query`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Send `out` back to the client.
    Respond,
    /// Send the original query to an upstream resolver; `out` is empty.
    Forward,
    /// Send nothing; `out` is empty.
    Drop(QueryDropReason),
}

/// Counters by outcome, read with [`Responder::counters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DnsCounters {
    /// Messages handled, whatever the outcome.
    pub queries: u64,
    /// NOERROR with A records (or the apex SOA).
    pub answered: u64,
    /// NOERROR without records (NODATA), e.g. AAAA for an endpoint name.
    pub nodata: u64,
    /// NXDOMAIN under a private zone apex.
    pub nxdomain: u64,
    /// REFUSED: privacy mode, non-IN class, zone transfer.
    pub refused: u64,
    /// FORMERR.
    pub formerr: u64,
    /// NOTIMP (an opcode other than QUERY).
    pub notimp: u64,
    /// BADVERS (EDNS version other than 0).
    pub badvers: u64,
    /// UDP responses sent with TC set (also counted under their rcode).
    pub truncated: u64,
    /// Handed to the caller for an upstream resolver.
    pub forwarded: u64,
    /// Dropped: shorter than a header.
    pub dropped_too_short: u64,
    /// Dropped: QR set.
    pub dropped_not_query: u64,
    /// Dropped: too long.
    pub dropped_oversized: u64,
    /// Dropped: compression pointer in the question.
    pub dropped_malformed: u64,
}

crate::counters_add!(DnsCounters {
    queries,
    answered,
    nodata,
    nxdomain,
    refused,
    formerr,
    notimp,
    badvers,
    truncated,
    forwarded,
    dropped_too_short,
    dropped_not_query,
    dropped_oversized,
    dropped_malformed,
});

/// Indexes into [`Responder`]'s counter array, in [`DnsCounters`] order.
#[derive(Clone, Copy)]
enum Counter {
    Queries,
    Answered,
    NoData,
    NxDomain,
    Refused,
    FormErr,
    NotImp,
    BadVers,
    Truncated,
    Forwarded,
    DroppedTooShort,
    DroppedNotQuery,
    DroppedOversized,
    DroppedMalformed,
}
const COUNTERS: usize = Counter::DroppedMalformed as usize + 1;

/// Answers queries from a [`Zone`]; cheap to share (`&self`, relaxed atomic counters).
#[derive(Debug)]
pub struct Responder {
    zone: Arc<Zone>,
    forward: ForwardMode,
    counters: [AtomicU64; COUNTERS],
}

impl Responder {
    /// A responder over `zone`; swap zones with [`Responder::set_zone`].
    pub fn new(zone: Arc<Zone>, forward: ForwardMode) -> Responder {
        Responder { zone, forward, counters: Default::default() }
    }

    /// Replaces the zone (endpoints changed); counters are kept.
    pub fn set_zone(&mut self, zone: Arc<Zone>) {
        self.zone = zone;
    }

    /// The current zone.
    pub fn zone(&self) -> &Arc<Zone> {
        &self.zone
    }

    /// The forwarding mode.
    pub fn forward_mode(&self) -> ForwardMode {
        self.forward
    }

    /// Changes the forwarding mode (the server list became empty, or not).
    pub fn set_forward_mode(&mut self, forward: ForwardMode) {
        self.forward = forward;
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> DnsCounters {
        let c = |i: Counter| self.counters[i as usize].load(Ordering::Relaxed);
        DnsCounters {
            queries: c(Counter::Queries),
            answered: c(Counter::Answered),
            nodata: c(Counter::NoData),
            nxdomain: c(Counter::NxDomain),
            refused: c(Counter::Refused),
            formerr: c(Counter::FormErr),
            notimp: c(Counter::NotImp),
            badvers: c(Counter::BadVers),
            truncated: c(Counter::Truncated),
            forwarded: c(Counter::Forwarded),
            dropped_too_short: c(Counter::DroppedTooShort),
            dropped_not_query: c(Counter::DroppedNotQuery),
            dropped_oversized: c(Counter::DroppedOversized),
            dropped_malformed: c(Counter::DroppedMalformed),
        }
    }

    fn bump(&self, counter: Counter) {
        self.counters[counter as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Handles one DNS message (without TCP's length prefix); the response, if any, goes in `out`.
    ///
    /// `out` is cleared first and reused: keep one per worker so the hot
    /// path does not allocate. Never panics, whatever `query` holds.
    pub fn handle_query(&self, query: &[u8], transport: Transport, out: &mut Vec<u8>) -> Outcome {
        self.handle(query, transport, out, None)
    }

    /// [`Responder::handle_query`], noting the question and what was decided
    /// in `asked` (a query whose question does not parse is not noted).
    pub fn handle_query_noting(
        &self,
        query: &[u8],
        transport: Transport,
        out: &mut Vec<u8>,
        asked: &mut AskedNames,
    ) -> Outcome {
        self.handle(query, transport, out, Some(asked))
    }

    fn handle(&self, query: &[u8], transport: Transport, out: &mut Vec<u8>, asked: Option<&mut AskedNames>) -> Outcome {
        out.clear();
        self.bump(Counter::Queries);
        let outcome = self.respond(query, transport, out, asked);
        if let Outcome::Drop(reason) = outcome {
            self.bump(match reason {
                QueryDropReason::TooShort => Counter::DroppedTooShort,
                QueryDropReason::NotQuery => Counter::DroppedNotQuery,
                QueryDropReason::Oversized => Counter::DroppedOversized,
                QueryDropReason::Malformed => Counter::DroppedMalformed,
            });
        } else if outcome == Outcome::Forward {
            self.bump(Counter::Forwarded);
        }
        outcome
    }

    fn respond(&self, msg: &[u8], transport: Transport, out: &mut Vec<u8>, asked: Option<&mut AskedNames>) -> Outcome {
        if msg.len() < HEADER_LEN {
            return Outcome::Drop(QueryDropReason::TooShort);
        }
        let id = read_u16(msg, 0);
        let flags = read_u16(msg, 2);
        if flags & FLAG_QR != 0 {
            return Outcome::Drop(QueryDropReason::NotQuery);
        }
        if msg.len() > MAX_QUERY_LEN {
            return Outcome::Drop(QueryDropReason::Oversized);
        }
        if flags & MASK_OPCODE != 0 {
            self.bump(Counter::NotImp);
            emit_error(out, id, flags, RCODE_NOTIMP, find_edns(msg));
            return Outcome::Respond;
        }
        let query = match parse_query(msg, id, flags) {
            Ok(q) => q,
            Err(ParseError::Drop(reason)) => return Outcome::Drop(reason),
            Err(ParseError::FormErr) => {
                self.bump(Counter::FormErr);
                emit_error(out, id, flags, RCODE_FORMERR, find_edns(msg));
                return Outcome::Respond;
            }
        };
        if transport == Transport::Udp && query.edns.is_none() && msg.len() > PLAIN_UDP_LIMIT {
            return Outcome::Drop(QueryDropReason::Oversized);
        }

        let wire = &msg[HEADER_LEN..query.name_end];
        let mut lower = [0u8; MAX_NAME_LEN];
        let lower = &mut lower[..wire.len()];
        lower.copy_from_slice(wire);
        // Label lengths are below 64, so they are untouched by ASCII lowercasing.
        lower.make_ascii_lowercase();
        let decided = self.decide(lower, &query);
        if let Some(asked) = asked {
            asked.note(lower, query.qtype, answered(decided.as_ref()));
        }
        let Some((answer, counter)) = decided else {
            return Outcome::Forward;
        };
        self.bump(counter);
        if emit_answer(out, msg, &query, &answer, response_limit(transport, query.edns)) {
            self.bump(Counter::Truncated);
        }
        Outcome::Respond
    }

    /// Applies the zone rules to the question's name (`lower`: lowercased,
    /// wire format): the answer and the counter it goes under; `None` means forward.
    fn decide<'z>(&'z self, lower: &[u8], query: &Query) -> Option<(Answer<'z>, Counter)> {
        let mut answer = Answer::empty();
        let refused = |mut a: Answer<'z>| {
            a.rcode = RCODE_REFUSED;
            (a, Counter::Refused)
        };
        if query.edns.is_some_and(|e| e.version != 0) {
            answer.ext_rcode = EXT_RCODE_BADVERS;
            return Some((answer, Counter::BadVers));
        }
        if query.qclass != CLASS_IN && query.qclass != CLASS_ANY {
            return Some(refused(answer));
        }

        let zone = &*self.zone;
        match zone.lookup(lower) {
            Lookup::Outside => match self.forward {
                ForwardMode::Forward => None,
                ForwardMode::Refuse => {
                    answer.recursion_available = false;
                    Some(refused(answer))
                }
            },
            Lookup::NxDomain { apex, apex_offset } => {
                answer.authoritative = true;
                answer.rcode = RCODE_NXDOMAIN;
                answer.soa = Some((apex_offset, zone.apex_soa(apex)));
                Some((answer, Counter::NxDomain))
            }
            Lookup::Exists { records, is_apex, apex, apex_offset } => {
                answer.authoritative = true;
                let soa = Some((apex_offset, zone.apex_soa(apex)));
                let counter = match (query.qtype, records) {
                    (TYPE_AXFR | TYPE_IXFR, _) => return Some(refused(answer)),
                    (TYPE_A | TYPE_ANY, Some(range)) => {
                        answer.ips = zone.ips(range);
                        Counter::Answered
                    }
                    (TYPE_SOA, _) if is_apex => {
                        answer.soa = soa;
                        answer.soa_in_answer = true;
                        Counter::Answered
                    }
                    _ => {
                        answer.soa = soa;
                        Counter::NoData
                    }
                };
                Some((answer, counter))
            }
        }
    }
}

/// What [`Responder::decide`] decided, as [`AskedNames`] keeps it.
fn answered<'z>(decided: Option<&(Answer<'z>, Counter)>) -> Answered<'z> {
    match decided {
        None => Answered::Forwarded,
        Some((a, Counter::Answered)) if a.soa_in_answer => Answered::Soa,
        Some((a, Counter::Answered)) => Answered::Addresses(a.ips),
        Some((_, Counter::NoData)) => Answered::NoData,
        Some((_, Counter::NxDomain)) => Answered::NxDomain,
        Some((_, Counter::BadVers)) => Answered::BadVers,
        Some(_) => Answered::Refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::testkit::*;
    use crate::dns::wire::{A_RECORD_LEN, OPT_RECORD_LEN};
    use crate::dns::zone::soa_tail;
    use crate::dns::*;

    // ---------------------------------------------------------------
    // A answers: regional, zonal, default names
    // ---------------------------------------------------------------

    #[test]
    fn regional_name_answers_every_eni_ip() {
        let msg = ask_udp(&lab(), EC2_REGIONAL, RecordType::A);
        assert_eq!(msg.metadata.id, 0x1234);
        assert_eq!(msg.metadata.message_type, MessageType::Response);
        assert_eq!(msg.metadata.response_code, ResponseCode::NoError);
        assert!(msg.metadata.authoritative);
        assert!(msg.metadata.recursion_desired);
        assert!(msg.metadata.recursion_available);
        assert!(!msg.metadata.truncation);
        assert_eq!(msg.queries.len(), 1);
        assert_eq!(a_records(&msg), IPS);
        assert!(msg.answers.iter().all(|r| r.ttl == ANSWER_TTL));
        assert!(msg.answers.iter().all(|r| r.dns_class == DNSClass::IN));
        assert!(msg.authorities.is_empty() && msg.edns.is_none());
    }

    #[test]
    fn zonal_name_answers_its_az_ip_only() {
        let msg = ask_udp(&lab(), EC2_ZONAL_B, RecordType::A);
        assert_eq!(a_records(&msg), [IPS[1]]);
        assert_eq!(msg.answers[0].name.to_ascii(), format!("{EC2_ZONAL_B}."));
    }

    #[test]
    fn default_name_answers_with_private_dns_on() {
        let msg = ask_udp(&lab(), "ec2.us-east-1.amazonaws.com", RecordType::A);
        assert_eq!(a_records(&msg), IPS);
        assert!(msg.metadata.authoritative);
    }

    #[test]
    fn any_query_returns_the_a_records() {
        let msg = ask_udp(&lab(), "ec2.us-east-1.amazonaws.com.", RecordType::ANY);
        assert_eq!(a_records(&msg), IPS);
    }

    #[test]
    fn rd_clear_is_copied() {
        let q = build_query(EC2_REGIONAL, RecordType::A, |m| {
            m.metadata.recursion_desired = false;
            m.metadata.checking_disabled = true;
        });
        let msg = ask(&lab(), &q, Transport::Udp);
        assert!(!msg.metadata.recursion_desired);
        assert!(msg.metadata.checking_disabled);
        assert!(msg.metadata.recursion_available);
    }

    #[test]
    fn response_echoes_the_question_case() {
        let name = "Ec2.US-east-1.AmazonAWS.Com";
        let q = query(name, RecordType::A);
        let mut out = Vec::new();
        lab().handle_query(&q, Transport::Udp, &mut out);
        let qlen = q.len() - HEADER_LEN;
        assert_eq!(out[HEADER_LEN..HEADER_LEN + qlen], q[HEADER_LEN..]);
        let msg = Message::from_vec(&out).unwrap();
        assert_eq!(msg.queries[0].name().to_ascii(), format!("{name}."));
        assert_eq!(a_records(&msg), IPS);
    }

    #[test]
    fn out_buffer_is_reused_and_cleared() {
        let r = lab();
        let mut out = vec![0xAA; 4096];
        r.handle_query(&query(EC2_REGIONAL, RecordType::A), Transport::Udp, &mut out);
        let first = out.clone();
        let capacity = out.capacity();
        r.handle_query(&query(EC2_REGIONAL, RecordType::A), Transport::Udp, &mut out);
        assert_eq!(out, first);
        assert_eq!(out.capacity(), capacity);
        let q = query("example.com", RecordType::A);
        assert_eq!(r.handle_query(&q, Transport::Udp, &mut out), Outcome::Forward);
        assert!(out.is_empty());
    }

    // ---------------------------------------------------------------
    // Wildcards and S3 sub-names
    // ---------------------------------------------------------------

    #[test]
    fn execute_api_wildcard_matches_any_api_id() {
        let r = lab();
        for name in [
            "abc123.execute-api.us-east-1.amazonaws.com",
            "ABC123.Execute-API.us-east-1.amazonaws.com",
            "a.b.execute-api.us-east-1.amazonaws.com",
            "*.execute-api.us-east-1.amazonaws.com",
        ] {
            let msg = ask_udp(&r, name, RecordType::A);
            assert_eq!(a_records(&msg), IPS, "{name}");
            // The synthesised owner is the query name (RFC 4592 section 2.1.1).
            assert_eq!(msg.answers[0].name.to_ascii(), format!("{name}."));
        }
        // The apex itself has no A record: NODATA, not a wildcard match.
        let msg = ask_udp(&r, "execute-api.us-east-1.amazonaws.com", RecordType::A);
        assert_eq!(msg.metadata.response_code, ResponseCode::NoError);
        assert_soa_authority(&msg, "execute-api.us-east-1.amazonaws.com");
    }

    // ---------------------------------------------------------------
    // Negative answers: NODATA, NXDOMAIN, SOA
    // ---------------------------------------------------------------

    #[test]
    fn aaaa_for_an_endpoint_name_is_nodata_with_soa() {
        let r = lab();
        for (name, apex) in [
            ("ec2.us-east-1.amazonaws.com", "ec2.us-east-1.amazonaws.com"),
            (EC2_REGIONAL, "ec2.us-east-1.vpce.amazonaws.com"),
            ("x.execute-api.us-east-1.amazonaws.com", "execute-api.us-east-1.amazonaws.com"),
        ] {
            let msg = ask_udp(&r, name, RecordType::AAAA);
            assert_eq!(msg.metadata.response_code, ResponseCode::NoError, "{name}");
            assert!(msg.metadata.authoritative);
            assert_soa_authority(&msg, apex);
        }
        assert_eq!(r.counters().nodata, 3);
    }

    #[test]
    fn dual_stack_client_gets_nodata_then_a_at_once() {
        // What getaddrinfo(AF_UNSPEC) does: AAAA and A; the empty AAAA must
        // not be an error, so the client uses the A answer without delay.
        let r = lab();
        let aaaa = ask_udp(&r, "ec2.us-east-1.amazonaws.com", RecordType::AAAA);
        let a = ask_udp(&r, "ec2.us-east-1.amazonaws.com", RecordType::A);
        assert_eq!(aaaa.metadata.response_code, ResponseCode::NoError);
        assert!(aaaa.answers.is_empty());
        assert_eq!(a_records(&a), IPS);
        assert_eq!(r.counters().forwarded, 0);
    }

    #[test]
    fn other_types_are_nodata() {
        let r = lab();
        for rtype in [RecordType::TXT, RecordType::MX, RecordType::CNAME, RecordType::NS] {
            let msg = ask_udp(&r, EC2_REGIONAL, rtype);
            assert_eq!(msg.metadata.response_code, ResponseCode::NoError);
            assert_soa_authority(&msg, "ec2.us-east-1.vpce.amazonaws.com");
        }
    }

    #[test]
    fn missing_name_under_an_apex_is_nxdomain() {
        let r = lab();
        for (name, apex) in [
            ("foo.ec2.us-east-1.amazonaws.com", "ec2.us-east-1.amazonaws.com"),
            ("vpce-0000000000000000-nope.ec2.us-east-1.vpce.amazonaws.com", "ec2.us-east-1.vpce.amazonaws.com"),
        ] {
            for rtype in [RecordType::A, RecordType::AAAA] {
                let msg = ask_udp(&r, name, rtype);
                assert_eq!(msg.metadata.response_code, ResponseCode::NXDomain, "{name}");
                assert!(msg.metadata.authoritative);
                assert_soa_authority(&msg, apex);
            }
        }
        assert_eq!(r.counters().nxdomain, 4);
    }

    #[test]
    fn soa_pointer_keeps_the_question_case() {
        let msg = ask_udp(&lab(), "Foo.EC2.us-east-1.amazonaws.com", RecordType::A);
        assert_eq!(msg.authorities[0].name.to_ascii(), "EC2.us-east-1.amazonaws.com.");
    }

    #[test]
    fn soa_at_the_apex_is_answered() {
        let msg = ask_udp(&lab(), "ec2.us-east-1.vpce.amazonaws.com", RecordType::SOA);
        assert_eq!(msg.metadata.response_code, ResponseCode::NoError);
        assert_eq!(msg.answers.len(), 1);
        assert!(matches!(msg.answers[0].data, RData::SOA(_)));
        assert!(msg.authorities.is_empty());
        // Below the apex SOA is NODATA.
        let msg = ask_udp(&lab(), EC2_REGIONAL, RecordType::SOA);
        assert_soa_authority(&msg, "ec2.us-east-1.vpce.amazonaws.com");
    }

    #[test]
    fn zone_transfer_is_refused() {
        let q = query("ec2.us-east-1.amazonaws.com", RecordType::AXFR);
        let msg = ask(&lab(), &q, Transport::Tcp);
        assert_eq!(msg.metadata.response_code, ResponseCode::Refused);
    }

    // ---------------------------------------------------------------
    // Forwarding, privacy mode, private DNS off
    // ---------------------------------------------------------------

    #[test]
    fn outside_names_are_forwarded() {
        let r = lab();
        let mut out = Vec::new();
        for name in ["example.com", "amazonaws.com", "us-east-1.amazonaws.com", "sts.us-east-1.amazonaws.com", "."] {
            let q = query(name, RecordType::A);
            assert_eq!(r.handle_query(&q, Transport::Udp, &mut out), Outcome::Forward, "{name}");
            assert!(out.is_empty());
        }
        assert_eq!(r.counters().forwarded, 5);
    }

    #[test]
    fn privacy_mode_refuses_outside_names() {
        let r = responder(&lab_spec(), ForwardMode::Refuse);
        let msg = ask_udp(&r, "example.com", RecordType::A);
        assert_eq!(msg.metadata.response_code, ResponseCode::Refused);
        assert!(!msg.metadata.authoritative);
        assert!(!msg.metadata.recursion_available);
        assert!(msg.answers.is_empty());
        // Zone names still answer.
        assert_eq!(a_records(&ask_udp(&r, EC2_REGIONAL, RecordType::A)), IPS);
        assert_eq!(r.counters().refused, 1);
    }

    #[test]
    fn private_dns_off_forwards_the_default_name_only() {
        let r = lab();
        let mut out = Vec::new();
        let q = query("ssm.us-east-1.amazonaws.com", RecordType::A);
        assert_eq!(r.handle_query(&q, Transport::Udp, &mut out), Outcome::Forward);
        let q = query("ssm.us-east-1.amazonaws.com", RecordType::AAAA);
        assert_eq!(r.handle_query(&q, Transport::Udp, &mut out), Outcome::Forward);
        assert_eq!(a_records(&ask_udp(&r, SSM_REGIONAL, RecordType::A)), IPS);
    }

    #[test]
    fn non_in_class_is_refused() {
        let q = build_query("version.bind", RecordType::TXT, |m| {
            m.queries[0].set_query_class(DNSClass::CH);
        });
        let msg = ask(&lab(), &q, Transport::Udp);
        assert_eq!(msg.metadata.response_code, ResponseCode::Refused);
    }

    #[test]
    fn zone_swap_takes_effect() {
        let mut r = lab();
        let mut out = Vec::new();
        r.set_zone(Arc::new(Zone::default()));
        assert!(r.zone().is_empty());
        let q = query(EC2_REGIONAL, RecordType::A);
        assert_eq!(r.handle_query(&q, Transport::Udp, &mut out), Outcome::Forward);
    }

    #[test]
    fn noting_keeps_each_question_with_what_was_decided() {
        let r = responder(&lab_spec(), ForwardMode::Refuse);
        let mut asked = AskedNames::default();
        let mut out = Vec::new();
        for (name, rtype) in [
            ("EC2.us-east-1.amazonaws.com", RecordType::A),
            ("ec2.us-east-1.amazonaws.com", RecordType::AAAA),
            ("sts.us-east-1.amazonaws.com", RecordType::A),
            ("foo.ec2.us-east-1.amazonaws.com", RecordType::A),
        ] {
            assert_eq!(
                r.handle_query_noting(&query(name, rtype), Transport::Udp, &mut out, &mut asked),
                Outcome::Respond
            );
        }
        // Not a query: nothing to note.
        r.handle_query_noting(&[0u8; 5], Transport::Udp, &mut out, &mut asked);
        let forwarding = lab();
        forwarding.handle_query_noting(&query("example.com", RecordType::A), Transport::Udp, &mut out, &mut asked);
        let lines: Vec<String> = asked
            .iter()
            .map(|(name, s)| {
                let answers: Vec<String> = s.answers.iter().map(|((t, a), n)| format!("{t} {a} {n}")).collect();
                format!("{name} {}: {}", s.asked, answers.join(", "))
            })
            .collect();
        let ips: Vec<String> = IPS.iter().map(|ip| ip.to_string()).collect();
        assert_eq!(
            lines,
            [
                format!("ec2.us-east-1.amazonaws.com 2: A {} 1, AAAA NODATA 1", ips.join(",")),
                "sts.us-east-1.amazonaws.com 1: A REFUSED 1".to_string(),
                "foo.ec2.us-east-1.amazonaws.com 1: A NXDOMAIN 1".to_string(),
                "example.com 1: A forwarded 1".to_string(),
            ]
        );
        assert_eq!(r.counters().queries, 5, "noting changes no counter");
    }

    // ---------------------------------------------------------------
    // Fuzz: 100,000 random and mutated queries
    // ---------------------------------------------------------------

    #[test]
    fn fuzz_100k_queries_never_panic_and_stay_bounded() {
        let lab = responder(&lab_spec(), ForwardMode::Forward);
        let big = responder(&big_spec(), ForwardMode::Refuse);
        let corpus = corpus();
        let soa_len = 2 + soa_tail().len();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut out = Vec::new();
        let mut responded = 0;
        for i in 0..100_000 {
            let base = &corpus[rng.below(corpus.len())];
            let q = mutate(&mut rng, base);
            let transport = if rng.below(4) == 0 { Transport::Tcp } else { Transport::Udp };
            let (r, max_ips) = if i % 2 == 0 { (&lab, IPS.len()) } else { (&big, 100) };
            match r.handle_query(&q, transport, &mut out) {
                Outcome::Respond => {
                    responded += 1;
                    let msg =
                        Message::from_vec(&out).unwrap_or_else(|e| panic!("unparseable response {e}: query {q:02x?}"));
                    assert_eq!(msg.metadata.message_type, MessageType::Response);
                    assert_eq!(out[..2], q[..2], "id echoed");
                    assert!(msg.queries.len() <= 1);
                    // Additive bound: the question (at most the query) plus one RRset or one SOA, plus OPT.
                    let extra = (max_ips * A_RECORD_LEN).max(soa_len) + OPT_RECORD_LEN;
                    assert!(out.len() <= q.len() + extra, "{} > {} + {extra}", out.len(), q.len());
                    if transport == Transport::Udp {
                        assert!(out.len() <= MAX_UDP_RESPONSE);
                        if msg.edns.is_none() {
                            assert!(out.len() <= PLAIN_UDP_LIMIT);
                        }
                        // The realistic zone (3 AZs) never amplifies more than 4x.
                        if i % 2 == 0 {
                            assert!(out.len() <= 4 * q.len(), "{} > 4 x {}", out.len(), q.len());
                        }
                    }
                }
                Outcome::Forward | Outcome::Drop(_) => assert!(out.is_empty()),
            }
        }
        let c = lab.counters();
        let b = big.counters();
        assert_eq!(c.queries + b.queries, 100_000);
        // The mutations reach every path, not just the header checks.
        for (what, n) in [
            ("answered", c.answered),
            ("nodata", c.nodata),
            ("nxdomain", c.nxdomain),
            ("formerr", c.formerr),
            ("notimp", c.notimp),
            ("forwarded", c.forwarded),
            ("truncated", b.truncated),
            ("refused", b.refused),
            ("too short", c.dropped_too_short),
            ("not query", c.dropped_not_query),
            ("malformed", c.dropped_malformed),
        ] {
            assert!(n > 50, "{what}: {n}");
        }
        assert!(responded > 50_000, "{responded}");
    }
}
