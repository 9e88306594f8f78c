//! The snapshot: everything the answer path reads, published as one value. A query loads it
//! once; reloads and health flips publish a new one, so no query ever sees two halves.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::dns::sigs::SigCache;
use crate::geo::GeoData;
use crate::routing::Routing;
use crate::steering::{HealthView, Steering};

/// One consistent view of config, zones, steering data and health.
#[derive(Debug)]
pub struct Snapshot {
    /// Bumped on every successful reload.
    pub generation: u64,
    pub config: Arc<Config>,
    pub routing: Arc<Routing>,
    pub steering: Arc<Steering>,
    pub health: Arc<HealthView>,
    /// Largest UDP reply we send.
    pub udp_payload: u16,
    /// Cookies, rate limiting, NSID (kept across reloads that leave them unchanged).
    pub defences: Arc<crate::dns::defences::Defences>,
    /// The RRSIGs of steered answers (one cache for the instance, kept across reloads).
    pub sigs: Arc<SigCache>,
    /// The signed proofs of names that do not exist, the signer's queue and their counters
    /// (kept across reloads that leave `dnssec.denial` unchanged).
    pub denial: Arc<crate::dns::denial::Denial>,
    /// Steered names that need the GeoIP map answer SERVFAIL: the map is not compiled yet and
    /// `geoip.warmup.answer` is `servfail` (cleared when the load that should bring it in
    /// is refused, see [`Snapshot::warmup_failed`]).
    pub warmup_servfail: bool,
}

impl Snapshot {
    /// Builds the serving data for a freshly loaded config.
    pub fn build(config: Arc<Config>, geo: Option<Arc<GeoData>>, generation: u64) -> Snapshot {
        Self::build_after(config, geo, generation, None)
    }

    /// Builds a snapshot for a reload, reusing what did not change in `previous`.
    pub fn build_after(
        config: Arc<Config>,
        geo: Option<Arc<GeoData>>,
        generation: u64,
        previous: Option<&Snapshot>,
    ) -> Snapshot {
        let routing = Arc::new(crate::routing::build::compile_reusing(
            &config,
            previous.map(|p| &*p.routing),
        ));
        let kept = kept_zones(&routing, previous.map(|p| &*p.routing));
        let steering = Arc::new(crate::steering::compile_keeping(
            &config,
            geo,
            previous.map(|p| &*p.steering),
            &kept,
        ));
        let health = Arc::new(HealthView::all_up(steering.slots));
        let warmup_servfail = steering.warmup_ttl.is_some()
            && config.warmup.answer == crate::config::WarmupAnswer::Servfail;
        let defences = crate::dns::defences::Defences::for_settings(
            &config.dns.defences,
            previous.map(|p| &p.defences),
        );
        let bound = config.dns.signature_cache;
        let sigs = match previous {
            Some(p) => {
                p.sigs.set_bound(bound);
                p.sigs.clone()
            }
            None => Arc::new(SigCache::new(bound)),
        };
        let denial =
            crate::dns::denial::Denial::for_settings(&config.denial, previous.map(|p| &p.denial));
        Snapshot {
            generation,
            udp_payload: config.dns.udp_payload,
            defences,
            sigs,
            denial,
            config,
            routing,
            steering,
            health,
            warmup_servfail,
        }
    }

    /// The same data with a new health view (published on every health flip).
    pub fn with_health(&self, health: Arc<HealthView>) -> Snapshot {
        Snapshot {
            generation: self.generation,
            config: self.config.clone(),
            routing: self.routing.clone(),
            steering: self.steering.clone(),
            health,
            udp_payload: self.udp_payload,
            defences: self.defences.clone(),
            sigs: self.sigs.clone(),
            denial: self.denial.clone(),
            warmup_servfail: self.warmup_servfail,
        }
    }

    /// The same data answering in fallback order instead of SERVFAIL while the GeoIP map is
    /// missing: published when the load that should have compiled it was refused, so a bad
    /// database (shared by a whole fleet) never leaves steered names failing.
    pub fn warmup_failed(&self) -> Snapshot {
        Snapshot {
            warmup_servfail: false,
            ..self.with_health(self.health.clone())
        }
    }
}

/// For each zone of `routing`, where its services started in `previous` when routing reused its
/// compiled zone (the zone and the regions it names did not change), so steering shares them.
fn kept_zones(routing: &Routing, previous: Option<&Routing>) -> Vec<Option<u32>> {
    let Some(previous) = previous else {
        return Vec::new();
    };
    let old: std::collections::HashMap<*const crate::routing::ZoneData, u32> = previous
        .zones
        .iter()
        .map(|z| (Arc::as_ptr(&z.data), z.service_base))
        .collect();
    routing
        .zones
        .iter()
        .map(|z| old.get(&Arc::as_ptr(&z.data)).copied())
        .collect()
}

/// After a refused load while steered names answer SERVFAIL for want of the GeoIP map: they
/// answer in fallback order from now on (health flips published meanwhile are kept). Returns
/// whether anything changed.
pub fn end_warmup_servfail(shared: &ArcSwap<Snapshot>) -> bool {
    if !shared.load().warmup_servfail {
        return false;
    }
    shared.rcu(|cur| {
        if cur.warmup_servfail {
            Arc::new(cur.warmup_failed())
        } else {
            cur.clone()
        }
    });
    true
}

/// The handle every listener and the supervisor share.
pub type Shared = Arc<ArcSwap<Snapshot>>;
