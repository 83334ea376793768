//! Shaper tests, all on a virtual clock (`t0` plus offsets; nothing sleeps).

use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use super::token_bucket::UNITS_PER_BYTE;
use super::*;
use crate::flow::Direction;
use proptest::prelude::*;

fn rate(s: &str) -> Rate {
    s.parse().unwrap()
}
fn size(s: &str) -> ByteSize {
    s.parse().unwrap()
}
fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A deterministic xorshift for shuffling service orders.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, (self.next() % (i as u64 + 1)) as usize);
        }
    }
}

// ---- Units ----------------------------------------------------------------

#[test]
fn parses_bit_rates_as_decimal_si() {
    assert_eq!(rate("10Gbit").bits_per_sec(), 10_000_000_000);
    assert_eq!(rate("500Mbit").bits_per_sec(), 500_000_000);
    assert_eq!(rate("1.5Gbit").bits_per_sec(), 1_500_000_000);
    assert_eq!(rate("64kbit").bits_per_sec(), 64_000);
    assert_eq!(rate("64kbit").bytes_per_sec(), 8_000);
    assert_eq!(rate("10 mbit").bits_per_sec(), 10_000_000);
    assert_eq!(rate(".5Mbit").bits_per_sec(), 500_000);
    assert_eq!(rate("100MB/s").bits_per_sec(), 800_000_000);
    assert_eq!(rate("1MiB/s").bits_per_sec(), 8 * 1024 * 1024);
    assert_eq!(Rate::AWS_DEFAULT, rate("10Gbit"));
    assert_eq!(rate("1.5Gbit").to_string(), "1500Mbit");
}

#[test]
fn parses_byte_sizes_1000_and_1024_based() {
    assert_eq!(size("4MB").bytes(), 4_000_000);
    assert_eq!(size("512KB").bytes(), 512_000);
    assert_eq!(size("512kB").bytes(), 512_000);
    assert_eq!(size("1MiB").bytes(), 1 << 20);
    assert_eq!(size("1.5KiB").bytes(), 1536);
    assert_eq!(size("1500B").bytes(), 1500);
}

#[test]
fn refuses_bad_units_with_clear_errors() {
    assert!(matches!("0Mbit".parse::<Rate>(), Err(UnitError::Zero(_))));
    assert!(matches!("0.0Gbit".parse::<Rate>(), Err(UnitError::Zero(_))));
    assert!(matches!("0B".parse::<ByteSize>(), Err(UnitError::Zero(_))));
    assert!(matches!("".parse::<Rate>(), Err(UnitError::Empty)));
    assert!(matches!("10".parse::<Rate>(), Err(UnitError::MissingUnit(_))));
    assert!(matches!("Gbit".parse::<Rate>(), Err(UnitError::NoNumber(_))));
    assert!(matches!("1.2.3Gbit".parse::<Rate>(), Err(UnitError::NoNumber(_))));
    assert!(matches!("10Gbps".parse::<Rate>(), Err(UnitError::UnknownUnit { .. })));
    assert!(matches!("4MB".parse::<Rate>(), Err(UnitError::UnknownUnit { .. })), "a size is not a rate");
    assert!(matches!("10Mbit".parse::<ByteSize>(), Err(UnitError::UnknownUnit { .. })));
    assert!(matches!("1.5bit".parse::<Rate>(), Err(UnitError::Fractional(..))));
    assert!(matches!("0.1B".parse::<ByteSize>(), Err(UnitError::Fractional(..))));
    assert!(matches!("99999999999Tbit".parse::<Rate>(), Err(UnitError::Overflow(_))));
    let msg = "10Gbps".parse::<Rate>().unwrap_err().to_string();
    assert!(msg.contains("Gbps") && msg.contains("Gbit"), "{msg}");
}

// ---- Token bucket ---------------------------------------------------------

/// Polls greedily for `secs` of virtual time; returns bytes granted after the initial burst.
fn greedy_bytes(bucket: &mut TokenBucket, t0: Instant, secs: u64) -> u64 {
    let burst = match bucket.poll_grant(t0, usize::MAX) {
        Grant::Now(n) => n as u64,
        Grant::Later(_) => panic!("a new bucket is full"),
    };
    assert_eq!(burst, bucket.burst());
    let end = t0 + Duration::from_secs(secs);
    let (mut t, mut total) = (t0, 0u64);
    loop {
        match bucket.poll_grant(t, 1 << 20) {
            Grant::Now(n) => total += n as u64,
            Grant::Later(at) => {
                assert!(at > t);
                if at > end {
                    return total;
                }
                t = at;
            }
        }
    }
}

#[test]
fn rate_is_accurate_to_one_percent_over_ten_seconds() {
    for r in ["10Mbit", "100Mbit", "1Gbit", "10Gbit"] {
        let r = rate(r);
        let mut b = TokenBucket::new(r, size("64KB"));
        let got = greedy_bytes(&mut b, Instant::now(), 10);
        let expect = r.bytes_per_sec() as f64 * 10.0;
        let err = (got as f64 - expect).abs() / expect;
        assert!(err < 0.01, "{r}: {got} bytes vs {expect}: {:.3}%", err * 100.0);
    }
}

#[test]
fn integer_refill_has_no_drift() {
    // 1 bit/s refills exactly one byte every 8 s, even when polled every 3 ns.
    let mut b = TokenBucket::new(rate("1bit"), size("1B"));
    let t0 = Instant::now();
    assert_eq!(b.poll_grant(t0, 1), Grant::Now(1));
    assert_eq!(b.poll_grant(t0, 1), Grant::Later(t0 + Duration::from_secs(8)));
    let mut t = t0;
    for _ in 0..1000 {
        t += Duration::from_nanos(3);
        assert!(matches!(b.poll_grant(t, 1), Grant::Later(_)));
    }
    assert_eq!(
        b.poll_grant(t0 + Duration::from_secs(8) - Duration::from_nanos(1), 1),
        Grant::Later(t0 + Duration::from_secs(8))
    );
    assert_eq!(b.poll_grant(t0 + Duration::from_secs(8), 1), Grant::Now(1));
}

#[test]
fn burst_is_granted_at_once_then_refills_to_the_cap_only() {
    let mut b = TokenBucket::new(rate("8Mbit"), size("100KB")); // 1 MB/s
    let t0 = Instant::now();
    assert_eq!(b.poll_grant(t0, 30_000), Grant::Now(30_000));
    assert_eq!(b.poll_grant(t0, usize::MAX), Grant::Now(70_000));
    // Empty: the retry instant is when one quantum (1 ms = 1000 B, floored to 1500) is there.
    assert_eq!(b.poll_grant(t0, usize::MAX), Grant::Later(t0 + Duration::from_micros(1500)));
    // A small want waits only for itself.
    assert_eq!(b.poll_grant(t0, 10), Grant::Later(t0 + Duration::from_micros(10)));
    // An hour later the bucket holds the burst, not an hour of rate.
    assert_eq!(b.poll_grant(t0 + Duration::from_secs(3600), usize::MAX), Grant::Now(100_000));
}

#[test]
fn grants_partial_when_less_is_available() {
    let mut b = TokenBucket::new(rate("8Mbit"), size("1000B"));
    let t0 = Instant::now();
    assert_eq!(b.poll_grant(t0, 999), Grant::Now(999));
    assert_eq!(b.poll_grant(t0, 50), Grant::Now(1), "at least one byte when any is there");
    assert_eq!(b.poll_grant(t0 + Duration::from_micros(20), 50), Grant::Now(20));
    assert_eq!(b.poll_grant(t0 + Duration::from_micros(20), 0), Grant::Now(0));
}

#[test]
fn backwards_clock_counts_as_no_time() {
    let mut b = TokenBucket::new(rate("8Mbit"), size("1000B"));
    let t0 = Instant::now() + Duration::from_secs(10);
    assert_eq!(b.poll_grant(t0, usize::MAX), Grant::Now(1000));
    // Going back does not refill, and does not make the later refill count twice.
    assert!(matches!(b.poll_grant(t0 - Duration::from_secs(5), 10), Grant::Later(_)));
    assert_eq!(b.poll_grant(t0 + Duration::from_micros(100), usize::MAX), Grant::Now(100));
    assert!(matches!(b.poll_grant(t0, 1), Grant::Later(at) if at > t0 + Duration::from_micros(100)));
}

#[test]
fn huge_want_is_capped_by_tokens() {
    let mut b = TokenBucket::new(rate("10Gbit"), size("4MB"));
    let t0 = Instant::now();
    assert_eq!(b.poll_grant(t0, usize::MAX), Grant::Now(4_000_000));
    // Retry when one quantum (1 ms at 10 Gbit/s = 1.25 MB) is there.
    assert_eq!(b.poll_grant(t0, usize::MAX), Grant::Later(t0 + ms(1)));
}

#[test]
fn quantum_never_exceeds_burst() {
    let mut b = TokenBucket::new(rate("10Gbit"), size("1000B"));
    assert_eq!(b.quantum(), 1000);
    let t0 = Instant::now();
    b.poll_grant(t0, usize::MAX);
    // 1000 bytes at 10 Gbit/s: 800 ns, never a wait for more than the bucket holds.
    assert_eq!(b.poll_grant(t0, usize::MAX), Grant::Later(t0 + Duration::from_nanos(800)));
}

proptest! {
    #[test]
    fn bucket_never_grants_more_than_burst_plus_rate_times_elapsed(
        bits in 1u64..20_000_000_000,
        burst in 1u64..10_000_000,
        steps in prop::collection::vec((-1_000_000i64..50_000_000, 0usize..5_000_000), 1..200),
    ) {
        let mut b = TokenBucket::new(Rate::from_bits_per_sec(NonZeroU64::new(bits).unwrap()), ByteSize::new(NonZeroU64::new(burst).unwrap()));
        let t0 = Instant::now() + Duration::from_secs(1);
        let (mut t, mut latest, mut granted) = (t0, t0, 0u128);
        // The bucket starts filling at its first poll, which may lie before t0.
        let mut start: Option<Instant> = None;
        for (dt, want) in steps {
            t = if dt < 0 { t - Duration::from_nanos(dt.unsigned_abs()) } else { t + Duration::from_nanos(dt as u64) };
            latest = latest.max(t);
            let start = *start.get_or_insert(t);
            match b.poll_grant(t, want) {
                Grant::Now(n) => { prop_assert!(n <= want); prop_assert!(n > 0 || want == 0); granted += n as u128 }
                Grant::Later(at) => prop_assert!(at > t),
            }
            let elapsed = (latest - start).as_nanos();
            prop_assert!(granted * UNITS_PER_BYTE <= burst as u128 * UNITS_PER_BYTE + bits as u128 * elapsed);
        }
    }

    #[test]
    fn eni_shaper_never_exceeds_the_aggregate(
        flows in 1usize..10,
        steps in prop::collection::vec((0usize..10, 0i64..3_000_000, 0usize..3_000_000, prop::bool::ANY), 1..300),
    ) {
        let (r, burst) = (rate("1Gbit"), size("256KB"));
        let mut s = EniShaper::new(ShaperConfig::symmetric(r, burst));
        let ids: Vec<_> = (0..flows).map(|_| s.register()).collect();
        let t0 = Instant::now();
        let mut t = t0;
        let mut granted = [0u128; 2];
        for (who, dt, want, up) in steps {
            t += Duration::from_nanos(dt as u64);
            let dir = if up { Direction::Ingress } else { Direction::Egress };
            if let Grant::Now(n) = s.poll_grant(t, ids[who % flows], dir, want) {
                prop_assert!(n <= want);
                granted[dir.index()] += n as u128;
            }
            s.handle_timeout(t, |_| {});
            let limit = burst.bytes() as u128 + r.bits_per_sec() as u128 * (t - t0).as_nanos() / UNITS_PER_BYTE;
            prop_assert!(granted[0] <= limit && granted[1] <= limit);
        }
    }
}

// ---- ENI shaper: fairness -------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Order {
    Random,
    ById,
    ReverseById,
}

struct SimResult {
    greedy: Vec<u64>,
    light_polls: u64,
    light_delayed: u64,
}

/// Drives `n` greedy flows (and maybe one light flow wanting `chunk` bytes
/// every `period`) the way the relay would: a flow woken at its retry time
/// polls until `Later`; due flows are serviced in `order`.
fn simulate(r: Rate, n: usize, light: Option<(Duration, usize)>, secs: u64, order: Order, seed: u64) -> SimResult {
    let mut s = EniShaper::new(ShaperConfig::symmetric(r, size("1MB")));
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(secs);
    let mut flows: Vec<(FlowShare, Instant)> = (0..n).map(|_| (s.register(), t0)).collect();
    let light_flow = light.map(|_| s.register());
    let mut light_next = t0;
    let mut res = SimResult { greedy: vec![0; n], light_polls: 0, light_delayed: 0 };
    let mut rng = Rng(seed);
    let mut due: Vec<usize> = Vec::new();
    loop {
        let mut t = flows.iter().map(|f| f.1).min().unwrap();
        if light.is_some() {
            t = t.min(light_next);
        }
        if t >= end {
            return res;
        }
        if let (Some((period, chunk)), Some(lf)) = (light, light_flow) {
            if light_next <= t {
                res.light_polls += 1;
                match s.poll_grant(t, lf, Direction::Egress, chunk) {
                    Grant::Now(g) if g == chunk => {}
                    _ => res.light_delayed += 1,
                }
                light_next = t + period;
            }
        }
        due.clear();
        due.extend((0..n).filter(|&i| flows[i].1 <= t));
        match order {
            Order::Random => rng.shuffle(&mut due),
            Order::ById => {}
            Order::ReverseById => due.reverse(),
        }
        for &i in &due {
            loop {
                match s.poll_grant(t, flows[i].0, Direction::Egress, 256 * 1024) {
                    Grant::Now(g) => res.greedy[i] += g as u64,
                    Grant::Later(at) => {
                        assert!(at > t);
                        flows[i].1 = at;
                        break;
                    }
                }
            }
        }
    }
}

#[track_caller]
fn assert_fair(res: &SimResult, total_rate: Rate, secs: u64, label: &str) {
    let n = res.greedy.len() as f64;
    let total: u64 = res.greedy.iter().sum();
    let fair = total as f64 / n;
    for (i, &b) in res.greedy.iter().enumerate() {
        let dev = (b as f64 - fair) / fair;
        assert!(
            dev.abs() <= 0.2,
            "{label}: flow {i} got {b} vs fair {fair:.0} ({:+.1}%): {:?}",
            dev * 100.0,
            res.greedy
        );
    }
    // Work conserving: the flows together use the whole rate (less the reserve/burst slack).
    let expect = total_rate.bytes_per_sec() as f64 * secs as f64;
    assert!(total as f64 > expect * 0.97, "{label}: total {total} vs {expect}");
}

#[test]
fn greedy_flows_share_fairly_in_random_service_order() {
    for n in [2, 4, 8] {
        for seed in [1, 7, 0xdead_beef] {
            let r = rate("1Gbit");
            let res = simulate(r, n, None, 3, Order::Random, seed);
            assert_fair(&res, r, 3, &format!("n={n} seed={seed}"));
        }
    }
}

#[test]
fn greedy_flows_share_fairly_in_a_fixed_service_order() {
    // The adversarial case for a plain shared bucket: the first serviced flow would take it all.
    for n in [2, 4, 8] {
        for order in [Order::ById, Order::ReverseById] {
            for r in [rate("100Mbit"), rate("10Gbit")] {
                let res = simulate(r, n, None, 3, order, 1);
                assert_fair(&res, r, 3, &format!("n={n} r={r}"));
            }
        }
    }
}

#[test]
fn a_flow_under_its_share_is_never_delayed() {
    // 4 greedy flows and one that wants 5 KB every 10 ms (500 KB/s ≪ 1/5 of 125 MB/s).
    for order in [Order::Random, Order::ById] {
        let res = simulate(rate("1Gbit"), 4, Some((ms(10), 5_000)), 3, order, 3);
        assert!(res.light_polls >= 299);
        assert_eq!(res.light_delayed, 0, "light flow delayed {} of {} times", res.light_delayed, res.light_polls);
        assert_fair(&res, rate("990Mbit"), 3, "with a light flow");
    }
}

#[test]
fn single_flow_gets_the_whole_rate() {
    let r = rate("1Gbit");
    let res = simulate(r, 1, None, 10, Order::ById, 1);
    let expect = r.bytes_per_sec() as f64 * 10.0;
    let err = (res.greedy[0] as f64 - 1_000_000.0 - expect).abs() / expect;
    assert!(err < 0.01, "{err}");
}

#[test]
fn directions_are_independent() {
    let mut s = EniShaper::new(ShaperConfig {
        to_service: (rate("8Mbit"), size("1000B")),
        to_client: (rate("80Mbit"), size("2000B")),
    });
    let f = s.register();
    let t0 = Instant::now();
    assert_eq!(s.poll_grant(t0, f, Direction::Ingress, usize::MAX), Grant::Now(1000));
    assert!(matches!(s.poll_grant(t0, f, Direction::Ingress, 1), Grant::Later(_)));
    assert_eq!(s.poll_grant(t0, f, Direction::Egress, usize::MAX), Grant::Now(2000));
}

#[test]
fn a_vanished_backlogged_flow_stops_holding_others_back() {
    let r = rate("100Mbit");
    let mut s = EniShaper::new(ShaperConfig::symmetric(r, size("100KB")));
    let (a, b) = (s.register(), s.register());
    let t0 = Instant::now();
    let dir = Direction::Egress;
    // Both become backlogged; then b is never polled again (its relay is stuck elsewhere).
    let _ = s.poll_grant(t0, a, dir, usize::MAX);
    assert!(matches!(s.poll_grant(t0, b, dir, usize::MAX), Grant::Later(_)));
    let (mut t, mut got) = (t0, 0u64);
    let end = t0 + Duration::from_secs(2);
    while t < end {
        s.handle_timeout(t, |_| {});
        match s.poll_grant(t, a, dir, usize::MAX) {
            Grant::Now(n) => got += n as u64,
            Grant::Later(at) => t = at,
        }
    }
    // After the grace period a alone gets (nearly) everything.
    assert!(got as f64 > r.bytes_per_sec() as f64 * 2.0 * 0.95, "{got}");
}

#[test]
fn handle_timeout_wakes_flows_at_their_retry_time() {
    let mut s = EniShaper::new(ShaperConfig::symmetric(rate("8Mbit"), size("3000B")));
    let (a, b) = (s.register(), s.register());
    let t0 = Instant::now();
    assert_eq!(s.poll_grant(t0, a, Direction::Egress, usize::MAX), Grant::Now(3000));
    let Grant::Later(at) = s.poll_grant(t0, b, Direction::Egress, 2000) else { panic!() };
    assert_eq!(s.poll_timeout(), Some(at));
    let mut woken = Vec::new();
    s.handle_timeout(at - Duration::from_nanos(1), |f| woken.push(f));
    assert!(woken.is_empty());
    s.handle_timeout(at, |f| woken.push(f));
    assert_eq!(woken, vec![b]);
    assert_eq!(s.poll_grant(at, b, Direction::Egress, 2000), Grant::Now(1500));
}

#[test]
fn refund_returns_unused_tokens() {
    let mut s = EniShaper::new(ShaperConfig::symmetric(rate("8Mbit"), size("1000B")));
    let f = s.register();
    let t0 = Instant::now();
    assert_eq!(s.poll_grant(t0, f, Direction::Ingress, 1000), Grant::Now(1000));
    s.refund(f, Direction::Ingress, 400);
    assert_eq!(s.poll_grant(t0, f, Direction::Ingress, 1000), Grant::Now(400));
}

#[test]
fn stale_handles_are_shaped_by_the_aggregate_only() {
    let mut s = EniShaper::new(ShaperConfig::symmetric(rate("8Mbit"), size("1000B")));
    let f = s.register();
    s.unregister(f);
    s.unregister(f);
    assert_eq!(s.flows(), 0);
    let g = s.register();
    assert_ne!(f, g, "a reused slot gets a new generation");
    let t0 = Instant::now();
    assert_eq!(s.poll_grant(t0, f, Direction::Ingress, 600), Grant::Now(600));
    assert_eq!(s.poll_grant(t0, g, Direction::Ingress, 600), Grant::Now(400));
}

#[test]
fn backwards_clock_on_the_eni_shaper() {
    let mut s = EniShaper::new(ShaperConfig::symmetric(rate("8Mbit"), size("1000B")));
    let f = s.register();
    let t0 = Instant::now() + Duration::from_secs(1);
    assert_eq!(s.poll_grant(t0, f, Direction::Ingress, 1000), Grant::Now(1000));
    assert!(matches!(s.poll_grant(t0 - ms(500), f, Direction::Ingress, 10), Grant::Later(at) if at > t0));
}

#[test]
fn saturation_is_reported_for_autoscaling() {
    let mut s = EniShaper::new(ShaperConfig::symmetric(rate("8Mbit"), size("1000B")));
    let f = s.register();
    let t0 = Instant::now();
    assert_eq!(s.poll_grant(t0, f, Direction::Ingress, 500), Grant::Now(500));
    assert!(!s.take_saturated(Direction::Ingress));
    assert_eq!(s.poll_grant(t0, f, Direction::Ingress, 800), Grant::Now(500));
    assert!(s.take_saturated(Direction::Ingress));
    assert!(!s.take_saturated(Direction::Ingress));
    assert!(!s.take_saturated(Direction::Egress));
}

// ---- Autoscaling and knobs ------------------------------------------------

#[test]
fn autoscaler_steps_up_under_sustained_demand_and_down_when_idle() {
    let mut a = Autoscaler::new(AutoscaleConfig::new(rate("10Gbit"), rate("40Gbit")));
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    for s in 0..60 {
        assert_eq!(a.handle_sample(at(s), true), rate("10Gbit"));
    }
    assert_eq!(a.handle_sample(at(60), true), rate("20Gbit"));
    // A gap in demand restarts the count.
    assert_eq!(a.handle_sample(at(61), false), rate("20Gbit"));
    assert_eq!(a.handle_sample(at(100), true), rate("20Gbit"));
    assert_eq!(a.handle_sample(at(160), true), rate("40Gbit"));
    assert_eq!(a.handle_sample(at(300), true), rate("40Gbit"), "capped at max");
    assert_eq!(a.handle_sample(at(301), false), rate("40Gbit"));
    assert_eq!(a.handle_sample(at(601), false), rate("20Gbit"));
    assert_eq!(a.handle_sample(at(901), false), rate("10Gbit"));
    assert_eq!(a.handle_sample(at(2000), false), rate("10Gbit"), "never below base");
}

#[test]
fn loss_model_is_seeded_and_roughly_calibrated() {
    let drops = |pm, seed| {
        let mut l = LossModel::new(pm, seed);
        (0..100_000).filter(|_| l.should_drop()).count()
    };
    assert_eq!(drops(0, 1), 0);
    assert_eq!(drops(1_000_000, 1), 100_000);
    let d = drops(10_000, 42); // 1 %
    assert!((800..1200).contains(&d), "{d}");
    assert_eq!(d, drops(10_000, 42), "same seed, same decisions");
    let t0 = Instant::now();
    assert_eq!(Latency { delay: ms(20) }.release_at(t0), t0 + ms(20));
}
