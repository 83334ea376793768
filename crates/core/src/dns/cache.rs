//! [`ForwardCache`]: answers from upstream resolvers, kept for their TTL so
//! a repeated forwarded name is answered without a round trip.
//!
//! Keyed by the lowercased question (name, type, class), whether the query
//! carried EDNS, and its DO bit (RFC 3225 section 3: an answer with DNSSEC
//! records is for a client that asked for them), built in a stack buffer.
//! An answer is kept without any OPT record (RFC 6891 section 6.1.1: OPT
//! records are not cached; [`super::forwarded`] strips the upstream's), and
//! each client gets its own OPT on the way out, so nothing of one client's
//! EDNS options (a cookie: RFC 7873 section 5.3) reaches another. Limits:
//! the capacity given to
//! [`ForwardCache::new`] (when full, expired answers are swept first, then
//! any one answer makes room) and [`MAX_CACHE_TTL`] (an answer is never kept
//! longer, whatever its TTL says).

use std::time::Instant;

use super::forwarded::finish_response;
use super::hash::FnvMap;
use super::name::skip_owner_name;
use super::query::{parse_standard_query, Query};
use super::wire::{read_u16, FLAG_QR, FLAG_TC, HEADER_LEN, MAX_NAME_LEN, RCODE_NOERROR, RCODE_NXDOMAIN, TYPE_OPT};
use super::Transport;

/// Longest time an upstream answer is kept, whatever its TTL.
pub const MAX_CACHE_TTL: u32 = 3600;

/// A bounded cache of upstream answers keyed by (name, type, class, EDNS or
/// not, DO); the caller passes `now` (monotonic) and owns the I/O.
///
/// [`super::Forwarder`] uses it: on `Outcome::Forward` it tries
/// [`ForwardCache::get`]; on a miss it asks upstream and hands the client's
/// OPT-less view of the reply to [`ForwardCache::insert`]. Only NOERROR and
/// NXDOMAIN answers with at least one record, without TC, whose id and
/// question match the query are kept, for the smallest TTL among their
/// records (for a negative answer that is the SOA's TTL; RFC 2308 section 5
/// would also take the SOA MINIMUM into account: not done). TTLs are
/// decremented on the way out.
#[derive(Debug)]
pub struct ForwardCache {
    entries: FnvMap<Box<[u8]>, CachedAnswer>,
    capacity: usize,
}

#[derive(Debug)]
struct CachedAnswer {
    response: Box<[u8]>,
    /// Offsets of the TTL fields of every record but OPT.
    ttl_offsets: Box<[u16]>,
    stored: Instant,
    ttl: u32,
}

impl ForwardCache {
    /// An empty cache holding at most `capacity` answers.
    pub fn new(capacity: usize) -> ForwardCache {
        ForwardCache { entries: FnvMap::default(), capacity }
    }

    /// How many answers are held (expired ones included until evicted).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the cached answer to `query` into `out`, with the query's id,
    /// case and RD bit, decremented TTLs, the client's own OPT (if it sent
    /// one) and its size limit (TC beyond it); `false` (and `out` empty) on a miss.
    pub fn get(&self, now: Instant, query: &[u8], transport: Transport, out: &mut Vec<u8>) -> bool {
        out.clear();
        let Some((parsed, key_buf, key_len)) = cache_key(query) else {
            return false;
        };
        let Some(entry) = self.entries.get(&key_buf[..key_len]) else {
            return false;
        };
        let elapsed = now.saturating_duration_since(entry.stored).as_secs();
        if elapsed >= u64::from(entry.ttl) {
            return false;
        }
        out.extend_from_slice(&entry.response);
        out[..2].copy_from_slice(&query[..2]);
        out[2] = (out[2] & !0x01) | (query[2] & 0x01); // RD
        out[HEADER_LEN..parsed.question_end].copy_from_slice(&query[HEADER_LEN..parsed.question_end]);
        for &offset in entry.ttl_offsets.iter() {
            let at = usize::from(offset);
            let ttl = u32::from_be_bytes([out[at], out[at + 1], out[at + 2], out[at + 3]]);
            let left = ttl.saturating_sub(elapsed as u32);
            out[at..at + 4].copy_from_slice(&left.to_be_bytes());
        }
        finish_response(&parsed, transport, 0, out);
        true
    }

    /// Stores `response` as the answer to `query`, if it is cacheable: an
    /// upstream's answer as the client sees it, with the client's id and no
    /// OPT record (one is never kept: see the module doc).
    pub fn insert(&mut self, now: Instant, query: &[u8], response: &[u8]) {
        let Some((parsed, key_buf, key_len)) = cache_key(query) else {
            return;
        };
        let Some((ttl_offsets, ttl)) = cacheable(query, &parsed, response) else {
            return;
        };
        if self.capacity == 0 {
            return;
        }
        let key: Box<[u8]> = key_buf[..key_len].into();
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.entries.retain(|_, e| now.saturating_duration_since(e.stored).as_secs() < u64::from(e.ttl));
            if self.entries.len() >= self.capacity {
                // Still full of live answers: make room by dropping any one.
                if let Some(victim) = self.entries.keys().next().cloned() {
                    self.entries.remove(&victim);
                }
            }
        }
        self.entries.insert(
            key,
            CachedAnswer {
                response: response.into(),
                ttl_offsets: ttl_offsets.into(),
                stored: now,
                ttl: ttl.min(MAX_CACHE_TTL),
            },
        );
    }
}

/// Parses a plain query and builds its cache key in a stack buffer:
/// lowercased name, type, class, and one byte: EDNS (1), and DO (2).
fn cache_key(query: &[u8]) -> Option<(Query, [u8; MAX_NAME_LEN + 5], usize)> {
    let parsed = parse_standard_query(query)?;
    let mut key = [0u8; MAX_NAME_LEN + 5];
    let question = &query[HEADER_LEN..parsed.question_end];
    key[..question.len()].copy_from_slice(question);
    let name_len = parsed.name_end - HEADER_LEN;
    key[..name_len].make_ascii_lowercase();
    key[question.len()] = match parsed.edns {
        None => 0,
        Some(e) => 1 | u8::from(e.dnssec_ok) << 1,
    };
    Some((parsed, key, question.len() + 1))
}

/// Checks an upstream response against its query; returns its TTL offsets and smallest TTL.
fn cacheable(query: &[u8], parsed: &Query, response: &[u8]) -> Option<(Vec<u16>, u32)> {
    if response.len() < parsed.question_end || response.len() > usize::from(u16::MAX) {
        return None;
    }
    let flags = read_u16(response, 2);
    let rcode = (flags & 0x000F) as u8;
    let same_question = response[HEADER_LEN..parsed.name_end].eq_ignore_ascii_case(&query[HEADER_LEN..parsed.name_end])
        && response[parsed.name_end..parsed.question_end] == query[parsed.name_end..parsed.question_end];
    if response[..2] != query[..2]
        || flags & FLAG_QR == 0
        || flags & FLAG_TC != 0
        || !(rcode == RCODE_NOERROR || rcode == RCODE_NXDOMAIN)
        || response[4..6] != [0, 1]
        || !same_question
    {
        return None;
    }
    let count = |i: usize| usize::from(read_u16(response, i));
    let mut pos = parsed.question_end;
    let mut offsets = Vec::new();
    let mut min_ttl = u32::MAX;
    for _ in 0..count(6) + count(8) + count(10) {
        pos = skip_owner_name(response, pos)?;
        let fixed = response.get(pos..pos + 10)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
        let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        if rtype == TYPE_OPT {
            return None;
        }
        offsets.push(u16::try_from(pos + 4).ok()?);
        min_ttl = min_ttl.min(ttl);
        pos += 10 + rdlen;
        if pos > response.len() {
            return None;
        }
    }
    (!offsets.is_empty() && min_ttl > 0).then_some((offsets, min_ttl))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::testkit::*;
    use crate::dns::*;
    use std::time::Duration;

    // ---------------------------------------------------------------
    // Forward cache
    // ---------------------------------------------------------------

    #[test]
    fn cache_hit_rewrites_id_case_rd_and_ttl() {
        let t0 = Instant::now();
        let mut cache = ForwardCache::new(16);
        let q = query("www.example.com", RecordType::A);
        cache.insert(t0, &q, &upstream_answer(&q, 300, |_| {}));
        assert_eq!(cache.len(), 1);

        let q2 = build_query("WWW.Example.COM", RecordType::A, |m| {
            m.metadata.id = 0x7777;
            m.metadata.recursion_desired = false;
        });
        let mut out = Vec::new();
        assert!(cache.get(t0 + Duration::from_secs(100), &q2, Transport::Udp, &mut out));
        let msg = Message::from_vec(&out).unwrap();
        assert_eq!(msg.metadata.id, 0x7777);
        assert!(!msg.metadata.recursion_desired);
        assert_eq!(msg.queries[0].name().to_ascii(), "WWW.Example.COM.");
        let ttls: Vec<u32> = msg.answers.iter().map(|r| r.ttl).collect();
        assert_eq!(ttls, [200, 300]);
        // Expired after the smallest TTL.
        assert!(!cache.get(t0 + Duration::from_secs(300), &q2, Transport::Udp, &mut out));
        assert!(out.is_empty());
        // Another type is another key.
        let aaaa = query("www.example.com", RecordType::AAAA);
        assert!(!cache.get(t0, &aaaa, Transport::Udp, &mut out));
    }

    #[test]
    fn cache_keeps_only_clean_answers() {
        let t0 = Instant::now();
        let mut cache = ForwardCache::new(16);
        let q = query("www.example.com", RecordType::A);
        let bad = [
            upstream_answer(&q, 300, |m| m.metadata.truncation = true),
            upstream_answer(&q, 300, |m| m.metadata.response_code = ResponseCode::ServFail),
            upstream_answer(&q, 300, |m| m.metadata.id ^= 1),
            upstream_answer(&q, 300, |m| m.answers.clear()),
            upstream_answer(&q, 0, |_| {}),
            upstream_answer(&q, 300, |m| {
                m.queries[0].set_name(Name::from_ascii("www.example.org").unwrap());
            }),
            q.clone(),
            vec![0; 5],
        ];
        for response in &bad {
            cache.insert(t0, &q, response);
        }
        assert!(cache.is_empty());
        // TTLs are capped.
        cache.insert(t0, &q, &upstream_answer(&q, 86_400, |_| {}));
        assert_eq!(cache.len(), 1);
        let mut out = Vec::new();
        let later = t0 + Duration::from_secs(u64::from(MAX_CACHE_TTL));
        assert!(!cache.get(later, &q, Transport::Udp, &mut out));
    }

    /// What the forwarder hands the cache: the client's OPT-less view of `reply`.
    fn kept(q: &[u8], reply: &[u8]) -> Vec<u8> {
        let parsed = crate::dns::query::parse_standard_query(q).unwrap();
        let mut out = Vec::new();
        crate::dns::forwarded::client_answer(q, &parsed, reply, &mut out).unwrap();
        out
    }

    #[test]
    fn cache_separates_edns_and_respects_udp_size() {
        let t0 = Instant::now();
        let mut cache = ForwardCache::new(16);
        let with_edns = build_query("www.example.com", RecordType::A, edns(1232));
        cache.insert(t0, &with_edns, &kept(&with_edns, &upstream_answer(&with_edns, 300, |_| {})));
        let plain = query("www.example.com", RecordType::A);
        let mut out = Vec::new();
        assert!(!cache.get(t0, &plain, Transport::Udp, &mut out));
        assert!(cache.get(t0, &with_edns, Transport::Udp, &mut out));
        assert!(Message::from_vec(&out).unwrap().edns.is_some());
        // An OPT is never kept, whoever hands one in.
        let mut other = ForwardCache::new(16);
        other.insert(t0, &with_edns, &upstream_answer(&with_edns, 300, |_| {}));
        assert!(other.is_empty());
    }

    #[test]
    fn the_do_bit_is_part_of_the_key() {
        let t0 = Instant::now();
        let mut cache = ForwardCache::new(16);
        let with_do = |on: bool| {
            build_query("signed.example.com", RecordType::A, move |m| {
                let mut e = HEdns::new();
                e.set_dnssec_ok(on);
                m.edns = Some(e);
            })
        };
        let (dnssec, plain) = (with_do(true), with_do(false));
        cache.insert(t0, &dnssec, &kept(&dnssec, &upstream_answer(&dnssec, 300, |_| {})));
        let mut out = Vec::new();
        assert!(!cache.get(t0, &plain, Transport::Udp, &mut out), "a DO=1 answer served to a DO=0 client");
        assert!(cache.get(t0, &dnssec, Transport::Udp, &mut out));
        assert!(Message::from_vec(&out).unwrap().edns.unwrap().flags().dnssec_ok);
    }

    #[test]
    fn a_cached_answer_carries_no_other_clients_cookie() {
        use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
        let t0 = Instant::now();
        let cookie = |c: &'static [u8; 8]| {
            move |m: &mut Message| {
                let mut e = HEdns::new();
                e.options_mut().insert(EdnsOption::Unknown(u16::from(EdnsCode::Cookie), c.to_vec()));
                m.edns = Some(e);
            }
        };
        let mut f: Forwarder<u8> = Forwarder::new(vec!["192.0.2.1:53".parse().unwrap()]);
        let mut ids = || 0x3131;
        let a = build_query("www.example.com", RecordType::A, cookie(b"client-A"));
        let token = f.start(t0, 1, &a, Transport::Udp, &mut ids).unwrap().token;
        // The upstream echoes the cookie it was given and adds its own, as RFC 7873 servers do.
        let reply =
            upstream_answer(&build_query("www.example.com", RecordType::A, |m| m.metadata.id = 0x3131), 300, |m| {
                let mut e = HEdns::new();
                e.options_mut()
                    .insert(EdnsOption::Unknown(u16::from(EdnsCode::Cookie), b"client-Aserver-cookie-16".to_vec()));
                m.edns = Some(e);
            });
        let mut out = Vec::new();
        assert_eq!(
            f.answer(t0, token, &reply, &mut ids, &mut out),
            crate::dns::Event::Reply { cancel: token, origin: 1 }
        );
        let b = build_query("www.example.com", RecordType::A, cookie(b"client-B"));
        assert!(f.cached(t0, &b, Transport::Udp, &mut out));
        for leaked in [&b"client-A"[..], b"server-cookie-16"] {
            assert!(
                !out.windows(leaked.len()).any(|w| w == leaked),
                "client B got {:?}",
                String::from_utf8_lossy(leaked)
            );
        }
        let msg = Message::from_vec(&out).unwrap();
        assert_eq!(msg.answers.len(), 2);
        assert!(msg.edns.expect("B's own OPT").options().options.is_empty());
    }

    #[test]
    fn cache_is_bounded() {
        let t0 = Instant::now();
        let mut cache = ForwardCache::new(8);
        for i in 0..100 {
            let q = query(&format!("host{i}.example.com"), RecordType::A);
            cache.insert(t0, &q, &upstream_answer(&q, 300, |_| {}));
            assert!(cache.len() <= 8);
        }
        let mut out = Vec::new();
        let last = query("host99.example.com", RecordType::A);
        assert!(cache.get(t0, &last, Transport::Tcp, &mut out));
        assert!(ForwardCache::new(0).is_empty());
    }

    #[test]
    fn cache_survives_garbage() {
        let t0 = Instant::now();
        let mut cache = ForwardCache::new(64);
        let corpus = corpus();
        let mut rng = Rng(42);
        let mut out = Vec::new();
        for _ in 0..20_000 {
            let base = &corpus[rng.below(corpus.len())];
            let q = if rng.below(2) == 0 { base.clone() } else { mutate(&mut rng, base) };
            let good = match Message::from_vec(base) {
                Ok(m) if !m.queries.is_empty() => upstream_answer(base, 300, |_| {}),
                _ => base.clone(),
            };
            let response = mutate(&mut rng, &good);
            cache.insert(t0, &q, &response);
            if cache.get(t0, &q, Transport::Udp, &mut out) {
                assert!(out.len() >= HEADER_LEN);
                assert_eq!(out[..2], q[..2]);
            }
            assert!(cache.len() <= 64);
        }
    }
}
