//! The snapshot: everything the answer path reads, published as one value. A query loads it
//! once; reloads and health flips publish a new one, so no query ever sees two halves.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::routing::Routing;

/// One consistent view of config, zones, steering data and health.
#[derive(Debug)]
pub struct Snapshot {
    /// Bumped on every successful reload.
    pub generation: u64,
    pub config: Arc<Config>,
    pub routing: Arc<Routing>,
    /// Largest UDP reply we send.
    pub udp_payload: u16,
}

impl Snapshot {
    /// Builds the serving data for a freshly loaded config.
    pub fn build(config: Arc<Config>, generation: u64) -> Snapshot {
        let routing = Arc::new(crate::routing::compile(&config));
        Snapshot {
            generation,
            udp_payload: config.dns.udp_payload,
            config,
            routing,
        }
    }
}

/// The handle every listener and the supervisor share.
pub type Shared = Arc<ArcSwap<Snapshot>>;
