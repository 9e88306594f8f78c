//! The snapshot: everything the answer path reads, published as one value. A query loads it
//! once; reloads and health flips publish a new one, so no query ever sees two halves.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::Config;
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
        let steering = Arc::new(crate::steering::compile_reusing(
            &config,
            geo,
            previous.map(|p| &*p.steering),
        ));
        let health = Arc::new(HealthView::all_up(steering.slots));
        let defences = crate::dns::defences::Defences::for_settings(
            &config.dns.defences,
            previous.map(|p| &p.defences),
        );
        Snapshot {
            generation,
            udp_payload: config.dns.udp_payload,
            defences,
            config,
            routing,
            steering,
            health,
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
        }
    }
}

impl Snapshot {
    /// Counts one answered query (zone, region, the listener's own counters) and hands it to
    /// the query log when one is configured.
    #[inline]
    pub fn count_and_log(
        &self,
        s: &crate::dns::answer::Summary,
        stats: &crate::admin::metrics::QueryStats,
        log: Option<&crate::querylog::QueryLog>,
        client: std::net::IpAddr,
        packet: &[u8],
    ) {
        use std::sync::atomic::Ordering::Relaxed;
        stats.record(s);
        if let Some(z) = s.zone.and_then(|z| self.routing.zones.get(z as usize)) {
            z.queries.fetch_add(1, Relaxed);
        }
        let region = s
            .steered
            .and_then(|st| st.region)
            .and_then(|r| self.steering.regions.get(r));
        if let Some(r) = region {
            r.answers.fetch_add(1, Relaxed);
        }
        if let Some(log) = log {
            log.maybe_log(client, packet, s, region.map(|r| r.name.as_str()));
        }
    }
}

/// The handle every listener and the supervisor share.
pub type Shared = Arc<ArcSwap<Snapshot>>;
