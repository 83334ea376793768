//! Cost of the stream-layer cores (no I/O): `EniShaper::poll_grant` with 1
//! and 64 registered flows, and `client_hello_sni` on a typical ClientHello.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use privlink_core::flow::Direction;
use privlink_core::policy::client_hello_sni;
use privlink_core::shaper::{EniShaper, Grant, ShaperConfig};

fn poll_grant(c: &mut Criterion) {
    let mut group = c.benchmark_group("poll_grant");
    group.throughput(Throughput::Elements(1));
    for flows in [1usize, 64] {
        let mut s = EniShaper::new(ShaperConfig::symmetric("10Gbit".parse().unwrap(), "4MB".parse().unwrap()));
        let ids: Vec<_> = (0..flows).map(|_| s.register()).collect();
        let t0 = Instant::now();
        let mut i = 0u64;
        // Virtual time advances 100 ns per poll and every flow asks for 64 KiB:
        // the mix of grants, partial grants and Later that a saturated ENI sees.
        group.bench_function(format!("{flows}_flows"), |b| {
            b.iter(|| {
                i += 1;
                let now = t0 + Duration::from_nanos(i * 100);
                let f = ids[(i as usize) % flows];
                let g = s.poll_grant(now, black_box(f), Direction::Egress, black_box(65536));
                if matches!(g, Grant::Later(_)) && i.is_multiple_of(1024) {
                    s.handle_timeout(now, |_| {});
                }
                g
            })
        });
    }
    group.finish();
}

fn client_hello() -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("ec2.us-east-1.amazonaws.com").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

fn sni(c: &mut Criterion) {
    let hello = client_hello();
    let mut group = c.benchmark_group("client_hello_sni");
    group.throughput(Throughput::Elements(1));
    group.bench_function(format!("rustls_{}_bytes", hello.len()), |b| b.iter(|| client_hello_sni(black_box(&hello))));
    group.bench_function("http_get", |b| b.iter(|| client_hello_sni(black_box(b"GET / HTTP/1.1\r\n"))));
    group.finish();
}

criterion_group!(benches, poll_grant, sni);
criterion_main!(benches);
