//! Pre-signing: before a snapshot or a health view is served, every steered RRset of a
//! signed zone that its plans can answer is enumerated and the sets missing from the
//! signature cache (`sigs`) are signed, so the first DO=1 query after a reload or a health
//! flip finds its RRSIGs. The plans are every ranking the service can give (its fallback
//! order, the GeoIP map's rankings by the address space they cover, its `networks:` orders,
//! each pinned region name), each split target, each side of every shedding threshold of the
//! view; the sets are what the steered answer code writes for them ([`plan_sets`]) into a
//! collecting [`Sink`], with every A/AAAA rotation window and the view's TTLs.
//!
//! Health flips reach the snapshot here: [`Publisher`] for the shared snapshot pre-signs the
//! new view, then swaps it in.

use std::collections::HashSet;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::sigs::{SetToSign, set_key};
use super::sink::{Signed, Sink};
use super::snapshot::Snapshot;
use super::steered::plan_sets;
use crate::health::hub::Publisher;
use crate::routing::ZoneData;
use crate::steering::{Asked, HealthView, Plan, Steering, plan_for, splits_of};

/// Signs what the steered names of `snap`'s signed zones can answer and is not in the cache
/// yet (one pre-signing round; nothing when no signed zone has steered names).
pub fn presign(snap: &Snapshot) {
    let sets = variants(snap);
    if !sets.is_empty() {
        snap.sigs.round(sets);
    }
}

/// Every steered RRset of the signed zones, most likely first (duplicates included: the
/// cache sees each once).
fn variants(snap: &Snapshot) -> Vec<SetToSign> {
    let mut out = Vec::new();
    for zone in &snap.routing.zones {
        if zone.key.is_none() {
            continue;
        }
        for local in 0..zone.source.services.len() {
            let si = zone.service_base as usize + local;
            for (asked, plan) in plans(snap, si) {
                let mut c = Collector::new(&zone.data);
                plan_sets(snap, si, asked, &plan, &mut c);
                out.append(&mut c.sets);
            }
        }
    }
    out
}

/// Every distinct plan of service `si` under `snap`'s health view.
fn plans(snap: &Snapshot, si: usize) -> Vec<(Asked, Plan)> {
    let (st, health) = (&*snap.steering, &*snap.health);
    let Some(svc) = st.services.get(si) else {
        return Vec::new();
    };
    let keys = shed_keys(st, health);
    let mut seen: HashSet<(Option<u16>, Plan)> = HashSet::new();
    let mut out = Vec::new();
    let mut push = |asked: Asked, mut p: Plan| {
        p.scope = 0;
        let pinned = match asked {
            Asked::Service => None,
            Asked::Region(r) => Some(r),
        };
        if seen.insert((pinned, p)) {
            out.push((asked, p));
        }
    };
    for ranking in st.rankings(si) {
        let targets = splits_of(svc, Asked::Service, ranking).unwrap_or_default();
        let splits = std::iter::once(None).chain(targets.iter().map(|s| Some(s.to)));
        for split in splits {
            for &key in &keys {
                push(
                    Asked::Service,
                    plan_for(st, health, svc, ranking, split, key).0,
                );
            }
        }
    }
    for (pos, ranking) in svc.pinned.iter().enumerate() {
        for &key in &keys {
            let p = plan_for(st, health, svc, ranking, None, key).0;
            push(Asked::Region(pos as u16), p);
        }
    }
    out
}

/// One shedding hash per class of clients the view's thresholds make: none while nobody
/// sheds; else a hash every shedding server leaves out (0) and, per threshold, a hash just
/// outside its share (the servers with a higher threshold still leave it out).
fn shed_keys(st: &Steering, health: &HealthView) -> Vec<Option<u64>> {
    if !health.shedding {
        return vec![None];
    }
    let mut t: Vec<u64> = (0..st.slots)
        .map(|s| health.shed(s))
        .filter(|&t| t != 0)
        .collect();
    t.sort_unstable();
    t.dedup();
    std::iter::once(0).chain(t).map(Some).collect()
}

/// The record sets a steered answer writes, collected to be signed.
struct Collector<'z> {
    zone: &'z Arc<ZoneData>,
    /// The record data written since the last whole set.
    records: Vec<Vec<u8>>,
    sets: Vec<SetToSign>,
}

impl<'z> Collector<'z> {
    fn new(zone: &'z Arc<ZoneData>) -> Collector<'z> {
        Collector {
            zone,
            records: Vec::new(),
            sets: Vec::new(),
        }
    }
}

impl Sink for Collector<'_> {
    type Mark = usize;

    fn mark(&self) -> usize {
        self.records.len()
    }

    fn rollback(&mut self, m: usize) {
        self.records.truncate(m);
    }

    fn clear_records(&mut self) {
        self.records.clear();
    }

    fn record(&mut self, _: usize, _: &[u8], _: u16, _: u32, rdata: &[u8]) -> bool {
        self.records.push(rdata.to_vec());
        true
    }

    fn record_with(
        &mut self,
        _: usize,
        _: &[u8],
        _: u16,
        _: u32,
        max_rdata: usize,
        f: impl FnOnce(&mut Vec<u8>),
    ) -> bool {
        let mut rdata = Vec::with_capacity(max_rdata);
        f(&mut rdata);
        self.records.push(rdata);
        true
    }

    fn signing(&self) -> bool {
        true
    }

    fn signed(&mut self, _: usize, owner: &[u8], rtype: u16, ttl: u32, m: usize) -> Signed {
        let rdatas: Vec<Vec<u8>> = self.records.get(m..).unwrap_or_default().to_vec();
        let key = set_key(self.zone, owner, rtype, ttl, rdatas.iter().map(|r| &r[..]));
        self.sets.push(SetToSign {
            key,
            zone: self.zone.clone(),
            owner: owner.into(),
            rtype,
            ttl,
            rdatas,
        });
        Signed::Yes
    }
}

/// Health flips become new snapshots: the same data with the new view, pre-signed, then
/// swapped in only if no reload replaced the steering data meanwhile.
impl Publisher for ArcSwap<Snapshot> {
    fn publish(&self, steering: &Arc<Steering>, view: HealthView) {
        let view = Arc::new(view);
        let mut cur = self.load_full();
        loop {
            if !Arc::ptr_eq(&cur.steering, steering) || *cur.health == *view {
                return;
            }
            let next = Arc::new(cur.with_health(view.clone()));
            presign(&next);
            let prev = self.compare_and_swap(&cur, next);
            if Arc::ptr_eq(&prev, &cur) {
                return;
            }
            cur = arc_swap::Guard::into_inner(prev);
        }
    }
}
