//! Fixtures shared by the dns module's tests: a lab zone of four endpoints,
//! a zone with names too big for plain UDP, query builders, the fuzz corpus
//! and its mutations, and a stand-in upstream answer.

pub(super) use std::net::Ipv4Addr;
pub(super) use std::sync::Arc;

pub(super) use hickory_proto::op::{Edns as HEdns, Message, MessageType, OpCode, Query as HQuery, ResponseCode};
pub(super) use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

use super::wire::HEADER_LEN;
use super::{
    EndpointDns, ForwardMode, Outcome, Responder, Transport, Zone, ZoneApex, ZoneEntry, ZoneSpec, NEGATIVE_TTL,
};
use crate::catalog::lookup;

pub(super) const EC2_REGIONAL: &str = "vpce-0fe5b17a0707d6abc-29p5708s.ec2.us-east-1.vpce.amazonaws.com";
pub(super) const EC2_ZONAL_B: &str = "vpce-0fe5b17a0707d6abc-29p5708s-us-east-1b.ec2.us-east-1.vpce.amazonaws.com";
pub(super) const S3_REGIONAL: &str = "vpce-0a1b2c3d4e5f60718-s3s3s3s3.s3.us-east-1.vpce.amazonaws.com";
pub(super) const SSM_REGIONAL: &str = "vpce-0123456789abcdef0-ssmssmss.ssm.us-east-1.vpce.amazonaws.com";
pub(super) const IPS: [Ipv4Addr; 3] =
    [Ipv4Addr::new(10, 0, 1, 49), Ipv4Addr::new(10, 0, 2, 49), Ipv4Addr::new(10, 0, 3, 49)];

pub(super) fn enis() -> Vec<(String, Ipv4Addr)> {
    ["us-east-1a", "us-east-1b", "us-east-1c"].iter().zip(IPS).map(|(az, ip)| (az.to_string(), ip)).collect()
}

/// ec2 and execute-api with private DNS, s3 (no private DNS), ssm with private DNS off.
pub(super) fn lab_spec() -> ZoneSpec {
    let enis = enis();
    let mut spec = ZoneSpec::default();
    let endpoints = [
        ("ec2", "vpce-0fe5b17a0707d6abc", "29p5708s", true),
        ("execute-api", "vpce-0aaaaaaaaaaaaaaaa", "apiapiap", true),
        ("s3", "vpce-0a1b2c3d4e5f60718", "s3s3s3s3", false),
        ("ssm", "vpce-0123456789abcdef0", "ssmssmss", false),
    ];
    for (svc, id, suffix, private_dns) in endpoints {
        let service = lookup(&format!("com.amazonaws.us-east-1.{svc}")).unwrap();
        spec.add_endpoint(&EndpointDns { service: &service, endpoint_id: id, suffix, enis: &enis, private_dns });
    }
    spec
}

/// A hand-made zone with names too big for plain UDP.
pub(super) fn big_spec() -> ZoneSpec {
    let ips = |n: u32| (0..n).map(|i| Ipv4Addr::from(0x0a00_0000 + i)).collect();
    ZoneSpec {
        apexes: vec![ZoneApex { name: "big.test".into(), private_dns: true }],
        entries: vec![
            ZoneEntry { name: "sixty.big.test".into(), ips: ips(60), private_dns: true },
            ZoneEntry { name: "hundred.big.test".into(), ips: ips(100), private_dns: true },
            ZoneEntry { name: "deep.ent.big.test".into(), ips: ips(1), private_dns: true },
        ],
    }
}

pub(super) fn responder(spec: &ZoneSpec, mode: ForwardMode) -> Responder {
    Responder::new(Arc::new(Zone::build(spec).unwrap()), mode)
}

pub(super) fn lab() -> Responder {
    responder(&lab_spec(), ForwardMode::Forward)
}

pub(super) fn build_query(name: &str, rtype: RecordType, edit: impl FnOnce(&mut Message)) -> Vec<u8> {
    let mut msg = Message::new(0x1234, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(HQuery::query(Name::from_ascii(name).unwrap(), rtype));
    edit(&mut msg);
    msg.to_vec().unwrap()
}

pub(super) fn query(name: &str, rtype: RecordType) -> Vec<u8> {
    build_query(name, rtype, |_| {})
}

pub(super) fn edns(size: u16) -> impl FnOnce(&mut Message) {
    move |msg: &mut Message| {
        let mut e = HEdns::new();
        e.set_max_payload(size);
        msg.edns = Some(e);
    }
}

#[track_caller]
pub(super) fn ask(r: &Responder, q: &[u8], transport: Transport) -> Message {
    let mut out = Vec::new();
    assert_eq!(r.handle_query(q, transport, &mut out), Outcome::Respond);
    Message::from_vec(&out).expect("response parses")
}

#[track_caller]
pub(super) fn ask_udp(r: &Responder, name: &str, rtype: RecordType) -> Message {
    ask(r, &query(name, rtype), Transport::Udp)
}

pub(super) fn a_records(msg: &Message) -> Vec<Ipv4Addr> {
    msg.answers
        .iter()
        .map(|r| match &r.data {
            RData::A(a) => a.0,
            other => panic!("not an A record: {other:?}"),
        })
        .collect()
}

#[track_caller]
pub(super) fn assert_soa_authority(msg: &Message, apex: &str) {
    assert!(msg.answers.is_empty());
    assert_eq!(msg.authorities.len(), 1);
    let soa = &msg.authorities[0];
    assert_eq!(soa.name.to_ascii().to_ascii_lowercase(), format!("{apex}."));
    assert_eq!(soa.ttl, NEGATIVE_TTL);
    match &soa.data {
        RData::SOA(soa) => {
            assert_eq!(soa.mname.to_ascii(), "ns-0.awsdns-00.com.");
            assert_eq!(soa.rname.to_ascii(), "awsdns-hostmaster.amazon.com.");
        }
        other => panic!("not an SOA: {other:?}"),
    }
}

/// xorshift64*: deterministic, good enough to pick mutations.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

pub(super) fn corpus() -> Vec<Vec<u8>> {
    let names = [
        EC2_REGIONAL,
        EC2_ZONAL_B,
        "ec2.us-east-1.amazonaws.com",
        "EC2.us-east-1.amazonaws.com",
        "abc.execute-api.us-east-1.amazonaws.com",
        "execute-api.us-east-1.amazonaws.com",
        "my-bucket.bucket.vpce-0a1b2c3d4e5f60718-s3s3s3s3.s3.us-east-1.vpce.amazonaws.com",
        "nope.ec2.us-east-1.amazonaws.com",
        "ssm.us-east-1.amazonaws.com",
        "example.com",
        "sixty.big.test",
        "hundred.big.test",
        "ent.big.test",
    ];
    let types = [RecordType::A, RecordType::AAAA, RecordType::ANY, RecordType::SOA, RecordType::TXT];
    let mut corpus = Vec::new();
    for name in names {
        for rtype in types {
            corpus.push(query(name, rtype));
            corpus.push(build_query(name, rtype, edns(1232)));
            corpus.push(build_query(name, rtype, edns(4096)));
        }
    }
    corpus
}

/// Applies one of the mutation strategies to a copy of `base`.
pub(super) fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut q = base.to_vec();
    match rng.below(8) {
        // Random bytes.
        0 => {
            let len = rng.below(600);
            q = (0..len).map(|_| rng.next() as u8).collect();
            if rng.below(2) == 0 && q.len() > 2 {
                q[2] &= 0x07; // a query with opcode 0 most of the time
            }
        }
        // Bit flips, mostly past the QR bit so parsing goes deep.
        1 => {
            for _ in 0..=rng.below(8) {
                let i = rng.below(q.len());
                q[i] ^= 1 << rng.below(8);
            }
            q[2] &= 0x7F;
        }
        // Truncation.
        2 => q.truncate(rng.below(q.len() + 1)),
        // Length fields that lie: section counts, label lengths, RDLENGTH.
        3 => {
            let i = [4, 5, 6, 7, 8, 9, 10, 11, HEADER_LEN, q.len() - 2, q.len() - 1][rng.below(11)];
            q[i] = rng.next() as u8;
        }
        // Compression pointers into the question or the OPT owner, loops included.
        4 => {
            let at = HEADER_LEN + rng.below(q.len() - HEADER_LEN);
            let target = rng.below(q.len()) as u16;
            let ptr = (0xC000 | target).to_be_bytes();
            q[at] = ptr[0];
            if at + 1 < q.len() {
                q[at + 1] = ptr[1];
            }
        }
        // Garbage appended, sometimes counted as an extra record.
        5 => {
            for _ in 0..rng.below(64) {
                q.push(rng.next() as u8);
            }
            if rng.below(2) == 0 {
                q[11] = q[11].wrapping_add(1);
            }
        }
        // Random opcode, flags and type.
        6 => {
            q[2] = (rng.next() as u8) & 0x7F;
            q[3] = rng.next() as u8;
            let n = q.len();
            if n >= 4 && rng.below(2) == 0 {
                q[n - 4] = rng.next() as u8;
                q[n - 3] = rng.next() as u8;
            }
        }
        // Unchanged.
        _ => {}
    }
    q
}

pub(super) fn upstream_answer(q: &[u8], ttl: u32, edit: impl FnOnce(&mut Message)) -> Vec<u8> {
    use hickory_proto::rr::{rdata::A, Record};
    let query_msg = Message::from_vec(q).unwrap();
    let mut msg = Message::response(query_msg.metadata.id, OpCode::Query);
    msg.metadata.recursion_desired = query_msg.metadata.recursion_desired;
    msg.metadata.recursion_available = true;
    msg.add_query(query_msg.queries[0].clone());
    let name = query_msg.queries[0].name().clone();
    msg.add_answer(Record::from_rdata(name.clone(), ttl, RData::A(A::new(93, 184, 215, 14))));
    msg.add_answer(Record::from_rdata(name, ttl + 100, RData::A(A::new(93, 184, 215, 15))));
    msg.edns = query_msg.edns.clone();
    edit(&mut msg);
    msg.to_vec().unwrap()
}
