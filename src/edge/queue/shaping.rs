//! The shapers of a queue's ENIs, and the connections holding a share of
//! each: the stack's side of [`EniShaper`].
//!
//! An ENI's shaper shares its rate among the connections through it. A
//! connection told to come back later is serviced again when its shaper's
//! timer says; with `max_bandwidth`, each direction's rate is stepped once a
//! second ([`SAMPLE_INTERVAL`]) by an [`Autoscaler`] from whether the ENI was
//! saturated.

use std::time::{Duration, Instant};

use privlink_core::flow::Direction;
use privlink_core::model::Plan;
use privlink_core::shaper::{AutoscaleConfig, Autoscaler, EniShaper, FlowShare, ShaperConfig};

use crate::edge::relay::{ConnId, Shaping};

/// How often autoscaling looks at an ENI's saturation.
const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// One ENI's shaper and the connections holding a share of it.
struct EniShaping {
    shaper: EniShaper,
    /// By `FlowShare::index()`.
    conns: Vec<Option<ConnId>>,
    /// With `max_bandwidth`: the autoscalers of both directions and the next sample time.
    scale: Option<([Autoscaler; 2], Instant)>,
}

/// The shapers of every ENI, by ENI index; `None` where the endpoint is not shaped.
pub struct Shapers(Vec<Option<EniShaping>>);

impl Shapers {
    /// Shapers for `plan`'s shaped endpoints' ENIs, in ENI order.
    pub fn new(plan: &Plan, now: Instant) -> Shapers {
        let per_eni = plan.endpoints.iter().flat_map(|e| e.enis.iter().map(move |_| e.settings.bandwidth));
        Shapers(
            per_eni
                .map(|bw| {
                    bw.map(|b| EniShaping {
                        shaper: EniShaper::new(ShaperConfig::symmetric(b.rate, b.burst)),
                        conns: Vec::new(),
                        scale: b.max.map(|max| {
                            let cfg = AutoscaleConfig::new(b.rate, max);
                            ([Autoscaler::new(cfg), Autoscaler::new(cfg)], now + SAMPLE_INTERVAL)
                        }),
                    })
                })
                .collect(),
        )
    }

    /// Gives connection `id` on `eni` a share, if the ENI is shaped.
    pub fn register(&mut self, eni: usize, id: ConnId) -> Option<FlowShare> {
        let sh = self.0.get_mut(eni)?.as_mut()?;
        let share = sh.shaper.register();
        if sh.conns.len() <= share.index() {
            sh.conns.resize(share.index() + 1, None);
        }
        sh.conns[share.index()] = Some(id);
        Some(share)
    }

    /// Takes a connection's share back.
    pub fn unregister(&mut self, eni: usize, share: FlowShare) {
        if let Some(Some(sh)) = self.0.get_mut(eni) {
            sh.shaper.unregister(share);
            sh.conns[share.index()] = None;
        }
    }

    /// The shaping a connection's service pass works under.
    pub fn shaping(&mut self, eni: usize, share: Option<FlowShare>) -> Option<Shaping<'_>> {
        match (self.0.get_mut(eni), share) {
            (Some(Some(sh)), Some(flow)) => Some(Shaping { shaper: &mut sh.shaper, flow }),
            _ => None,
        }
    }

    /// Runs the timers due by `now`: pushes the connections whose retry time
    /// came onto `due`, steps autoscaling. Returns when there is work next.
    pub fn handle_timeout(&mut self, now: Instant, due: &mut Vec<ConnId>) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for sh in self.0.iter_mut().flatten() {
            let conns = &sh.conns;
            sh.shaper.handle_timeout(now, |f| {
                if let Some(Some(id)) = conns.get(f.index()) {
                    due.push(*id);
                }
            });
            if let Some((scalers, at)) = sh.scale.as_mut() {
                if *at <= now {
                    for (i, dir) in [Direction::Ingress, Direction::Egress].into_iter().enumerate() {
                        let saturated = sh.shaper.take_saturated(dir);
                        sh.shaper.set_rate(dir, scalers[i].handle_sample(now, saturated));
                    }
                    *at = now + SAMPLE_INTERVAL;
                }
                next = earliest(next, Some(*at));
            }
            next = earliest(next, sh.shaper.poll_timeout());
        }
        next
    }
}

/// The earlier of two optional instants.
pub fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
