//! Publishing the query counters (and the defences' and the denial proofs' counters of the
//! served snapshot) into
//! the instance's metric registry at scrape time, so one exporter renders and escapes every
//! series of `/metrics`. Each series' handle is registered once, the first time it has
//! something to show, and set to the sum of the listeners' blocks on every scrape (a counter
//! only grows, so two scrapes at once cannot move it back).

use std::sync::atomic::Ordering::Relaxed;

use metrics::{Counter, Gauge};

use super::{Counters, KEYS, RCODES, REASONS, TYPES, reason_name};
use crate::dns::defences::{COUNTERS as DEFENCE_COUNTERS, SERIES as DEFENCE_SERIES};
use crate::dns::denial::{COUNTERS as DENIAL_COUNTERS, SERIES as DENIAL_SERIES};
use crate::dns::snapshot::Snapshot;
use crate::lock::guard;
use crate::telemetry::Telemetry;

/// The handles of the series published so far.
pub(super) struct Published {
    /// One per (type, rcode, reason), registered with its first query.
    by_key: Vec<Option<Counter>>,
    /// `absent`, `present`.
    ecs: [Counter; 2],
    truncated: Counter,
    /// By zone and region id.
    zones: Vec<Counter>,
    regions: Vec<Counter>,
    defences: [Counter; DEFENCE_COUNTERS],
    denial: [Counter; DENIAL_COUNTERS],
    sigs: SigSeries,
}

/// The signature cache's series (`dns::sigs`).
struct SigSeries {
    /// `signer`, `query`.
    signatures: [Counter; 2],
    misses: Counter,
    dropped: Counter,
    full: Counter,
    entries: Gauge,
    capacity: Gauge,
    round_time: Gauge,
    round_variants: Gauge,
    round_signed: Gauge,
    round_seconds: Gauge,
}

impl SigSeries {
    fn new(t: &Telemetry) -> SigSeries {
        let zero = |c: Counter| {
            c.increment(0);
            c
        };
        let gauge = |name| {
            let g = t.gauge(name, &[]);
            g.set(0.0);
            g
        };
        SigSeries {
            signatures: ["signer", "query"]
                .map(|th| zero(t.counter("sipsteer_dnssec_signatures_total", &[("thread", th)]))),
            misses: zero(t.counter("sipsteer_dnssec_signature_cache_misses_total", &[])),
            dropped: zero(t.counter("sipsteer_dnssec_signature_queue_dropped_total", &[])),
            full: zero(t.counter("sipsteer_dnssec_signature_cache_full_total", &[])),
            entries: gauge("sipsteer_dnssec_signature_cache_entries"),
            capacity: gauge("sipsteer_dnssec_signature_cache_capacity"),
            round_time: gauge("sipsteer_dnssec_presign_timestamp_seconds"),
            round_variants: gauge("sipsteer_dnssec_presign_variants"),
            round_signed: gauge("sipsteer_dnssec_presign_signatures"),
            round_seconds: gauge("sipsteer_dnssec_presign_duration_seconds"),
        }
    }

    /// The signature cache's totals, and the signatures of denial proofs (signer thread,
    /// other threads) counted with them.
    fn set(&self, s: crate::dns::sigs::SigTotals, denial: (u64, u64)) {
        self.signatures[0].absolute(s.signer + denial.0);
        self.signatures[1].absolute(s.query + denial.1);
        self.misses.absolute(s.misses);
        self.dropped.absolute(s.dropped);
        self.full.absolute(s.over_bound);
        self.entries.set(s.entries as f64);
        self.capacity.set(s.bound as f64);
        self.round_time.set(s.round_unix as f64);
        self.round_variants.set(s.round_variants as f64);
        self.round_signed.set(s.round_signed as f64);
        self.round_seconds.set(s.round_micros as f64 / 1e6);
    }
}

impl Published {
    /// The series present from the first scrape, registered at 0.
    pub(super) fn new(t: &Telemetry) -> Published {
        let zero = |c: Counter| {
            c.increment(0);
            c
        };
        Published {
            by_key: vec![None; KEYS],
            ecs: ["absent", "present"]
                .map(|e| zero(t.counter("sipsteer_queries_ecs_total", &[("ecs", e)]))),
            truncated: zero(t.counter("sipsteer_truncated_total", &[])),
            zones: Vec::new(),
            regions: Vec::new(),
            defences: DEFENCE_SERIES.map(|(name, label)| {
                zero(match label {
                    Some(l) => t.counter(name, &[l]),
                    None => t.counter(name, &[]),
                })
            }),
            denial: DENIAL_SERIES.map(|name| zero(t.counter(name, &[]))),
            sigs: SigSeries::new(t),
        }
    }
}

impl Counters {
    /// Brings the registry's query series up to the listeners' counts, and the defences'
    /// series up to `snap`'s; the zones and regions `snap` serves are present even before
    /// their first query.
    pub fn publish(&self, snap: &Snapshot) {
        self.ids_for(snap);
        let blocks = guard(&self.blocks).clone();
        let mut by_key = [0u64; KEYS];
        let (mut ecs, mut tc) = ([0u64; 2], 0u64);
        for s in &blocks {
            for (i, c) in s.by_key.iter().enumerate() {
                by_key[i] += c.load(Relaxed);
            }
            ecs[0] += s.ecs[0].load(Relaxed);
            ecs[1] += s.ecs[1].load(Relaxed);
            tc += s.truncated.load(Relaxed);
        }
        let t = &*self.telemetry;
        let mut p = guard(&self.published);
        for (k, v) in by_key.iter().enumerate().filter(|(_, v)| **v > 0) {
            let (ty, rest) = (k / (RCODES.len() * REASONS), k % (RCODES.len() * REASONS));
            let (r, why) = (rest / REASONS, rest % REASONS);
            p.by_key[k]
                .get_or_insert_with(|| {
                    let labels = [
                        ("type", TYPES[ty].1),
                        ("rcode", RCODES[r]),
                        ("reason", reason_name(why)),
                    ];
                    t.counter("sipsteer_queries_total", &labels)
                })
                .absolute(*v);
        }
        p.ecs[0].absolute(ecs[0]);
        p.ecs[1].absolute(ecs[1]);
        p.truncated.absolute(tc);
        let names = guard(&self.names);
        let zones = &names.zones.names;
        for name in &zones[p.zones.len().min(zones.len())..] {
            let c = t.counter("sipsteer_zone_queries_total", &[("zone", name)]);
            p.zones.push(c);
        }
        let regions = &names.regions.names;
        for name in &regions[p.regions.len().min(regions.len())..] {
            let c = t.counter("sipsteer_region_answers_total", &[("region", name)]);
            p.regions.push(c);
        }
        drop(names);
        for (id, c) in p.zones.iter().enumerate() {
            c.absolute(blocks.iter().map(|s| s.zones.get(id)).sum());
        }
        for (id, c) in p.regions.iter().enumerate() {
            c.absolute(blocks.iter().map(|s| s.regions.get(id)).sum());
        }
        let totals = snap.defences.totals();
        for (c, v) in p.defences.iter().zip(totals) {
            c.absolute(v);
        }
        for (c, v) in p.denial.iter().zip(snap.denial.totals()) {
            c.absolute(v);
        }
        p.sigs.set(snap.sigs.totals(), snap.denial.signatures());
    }
}
