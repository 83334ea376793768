//! Queries per second of `Responder::handle_query` (no I/O): an A hit, an
//! AAAA NODATA and an NXDOMAIN, each against a zone of four endpoints; and of
//! `handle_query_noting`, which also notes the name for `run --summary`, with
//! the bounded name set already full of other names (its worst case: a scan
//! of all 64 before the name is counted past the cap).

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use privlink_core::catalog::lookup;
use privlink_core::dns::{
    Answered, AskedNames, EndpointDns, ForwardMode, Responder, Transport, Zone, ZoneSpec, MAX_NAMES,
};

fn query(name: &str, rtype: RecordType) -> Vec<u8> {
    let mut msg = Message::new(0x4242, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    msg.to_vec().unwrap()
}

fn responder() -> Responder {
    let enis: Vec<(String, Ipv4Addr)> = ["us-east-1a", "us-east-1b", "us-east-1c"]
        .iter()
        .enumerate()
        .map(|(i, az)| (az.to_string(), Ipv4Addr::new(10, 0, i as u8 + 1, 49)))
        .collect();
    let mut spec = ZoneSpec::default();
    for (i, svc) in ["ec2", "sts", "execute-api", "s3"].iter().enumerate() {
        let service = lookup(&format!("com.amazonaws.us-east-1.{svc}")).unwrap();
        spec.add_endpoint(&EndpointDns {
            service: &service,
            endpoint_id: &format!("vpce-0fe5b17a0707d6ab{i}"),
            suffix: "29p5708s",
            enis: &enis,
            private_dns: true,
        });
    }
    Responder::new(Arc::new(Zone::build(&spec).unwrap()), ForwardMode::Forward)
}

fn bench(c: &mut Criterion) {
    let r = responder();
    let mut group = c.benchmark_group("handle_query");
    group.throughput(Throughput::Elements(1));
    for (label, name, rtype) in [
        ("a_hit", "ec2.us-east-1.amazonaws.com", RecordType::A),
        ("aaaa_nodata", "ec2.us-east-1.amazonaws.com", RecordType::AAAA),
        ("nxdomain", "nope.ec2.us-east-1.amazonaws.com", RecordType::A),
    ] {
        let q = query(name, rtype);
        let mut out = Vec::with_capacity(512);
        group.bench_function(label, |b| b.iter(|| r.handle_query(black_box(&q), Transport::Udp, &mut out)));
        let mut full = AskedNames::default();
        for i in 0..MAX_NAMES {
            full.note(format!("\x05other{i:02}\x03com\x00").as_bytes(), 1, Answered::Refused);
        }
        group.bench_function(format!("{label}_noting_full"), |b| {
            b.iter(|| r.handle_query_noting(black_box(&q), Transport::Udp, &mut out, &mut full))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
