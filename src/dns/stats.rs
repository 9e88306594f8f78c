//! Query counters of one running instance. Each listener (a UDP worker thread, all TCP
//! connections, the encrypted transports) counts into its own [`QueryStats`] block of plain
//! atomics: no locks, no label hashing on the query path. Zones and regions are counted in
//! dense arrays indexed by a stable id per name ([`Counters`] hands them out), so a reload that
//! adds or removes zones keeps every name's count. At scrape time `publish` sums the blocks
//! into the instance's metric registry, where `/metrics` renders them with everything else.

mod publish;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use super::snapshot::Snapshot;
use super::summary::{ALL_DOWN, Summary};
use crate::lock::guard;
use crate::proto;
use crate::routing::Routing;
use crate::steering::{Reason, Steering};
use crate::telemetry::Telemetry;

/// Query types counted by name; everything else is `other`.
const TYPES: [(u16, &str); 8] = [
    (proto::TYPE_A, "A"),
    (proto::TYPE_AAAA, "AAAA"),
    (proto::TYPE_NAPTR, "NAPTR"),
    (proto::TYPE_SRV, "SRV"),
    (proto::TYPE_SOA, "SOA"),
    (proto::TYPE_NS, "NS"),
    (proto::TYPE_ANY, "ANY"),
    (0, "other"),
];
/// Response codes counted by name (index = rcode for 0..=5).
const RCODES: [&str; 8] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "BADVERS", "other",
];
/// Steering reasons in their slots after `static` (slot 0); the last slot is `all_down`.
const STEERED: [Reason; 10] = [
    Reason::Network,
    Reason::Country,
    Reason::Continent,
    Reason::Distance,
    Reason::Fallback,
    Reason::Pinned,
    Reason::Warmup,
    Reason::Bias,
    Reason::Split,
    Reason::Shed,
];
/// How an answer was decided: static data, a steering reason, or all down.
const REASONS: usize = STEERED.len() + 2;

fn reason_name(slot: usize) -> &'static str {
    match slot {
        0 => "static",
        s if s == REASONS - 1 => ALL_DOWN,
        s => STEERED[s - 1].as_str(),
    }
}

/// One counter per (type, rcode, reason).
const KEYS: usize = TYPES.len() * RCODES.len() * REASONS;

/// Zone and region ids per chunk, and chunks per block: at most `CHUNK * CHUNKS` names of
/// each kind are counted apart; later ones share the last id.
const CHUNK: usize = 256;
const CHUNKS: usize = 256;
const MAX_IDS: usize = CHUNK * CHUNKS;

fn type_index(t: u16) -> usize {
    TYPES
        .iter()
        .position(|(c, _)| *c == t)
        .unwrap_or(TYPES.len() - 1)
}

fn rcode_index(r: u16) -> usize {
    match r {
        0..=5 => r as usize,
        proto::RCODE_BADVERS => 6,
        _ => RCODES.len() - 1,
    }
}

fn reason_index(s: &Summary) -> usize {
    match &s.steered {
        None => 0,
        Some(st) if st.fail_open => REASONS - 1,
        // Exhaustive: a new reason needs its slot in `STEERED`.
        Some(st) => match st.reason {
            Reason::Network => 1,
            Reason::Country => 2,
            Reason::Continent => 3,
            Reason::Distance => 4,
            Reason::Fallback => 5,
            Reason::Pinned => 6,
            Reason::Warmup => 7,
            Reason::Bias => 8,
            Reason::Split => 9,
            Reason::Shed => 10,
        },
    }
}

fn key_index(s: &Summary) -> usize {
    (type_index(s.qtype) * RCODES.len() + rcode_index(s.rcode)) * REASONS + reason_index(s)
}

/// Counters by id, allocated a chunk at a time on first use.
struct ById {
    chunks: [OnceLock<Box<[AtomicU64; CHUNK]>>; CHUNKS],
}

impl ById {
    fn new() -> ById {
        ById {
            chunks: [const { OnceLock::new() }; CHUNKS],
        }
    }

    #[inline]
    fn add(&self, id: u32, sole: bool) {
        let id = (id as usize).min(MAX_IDS - 1);
        let chunk =
            self.chunks[id / CHUNK].get_or_init(|| Box::new([const { AtomicU64::new(0) }; CHUNK]));
        bump(&chunk[id % CHUNK], sole);
    }

    fn get(&self, id: usize) -> u64 {
        let id = id.min(MAX_IDS - 1);
        self.chunks[id / CHUNK]
            .get()
            .map_or(0, |c| c[id % CHUNK].load(Relaxed))
    }
}

/// Adds one to a counter: a plain load and store when the caller is its block's only writer
/// (no locked instruction on the UDP path), an atomic addition otherwise.
#[inline]
fn bump(c: &AtomicU64, sole: bool) {
    if sole {
        c.store(c.load(Relaxed) + 1, Relaxed);
    } else {
        c.fetch_add(1, Relaxed);
    }
}

/// Counters of one listener.
#[repr(align(128))]
pub struct QueryStats {
    by_key: [AtomicU64; KEYS],
    ecs: [AtomicU64; 2],
    truncated: AtomicU64,
    zones: ById,
    regions: ById,
}

impl QueryStats {
    fn new() -> QueryStats {
        QueryStats {
            by_key: [const { AtomicU64::new(0) }; KEYS],
            ecs: [const { AtomicU64::new(0) }; 2],
            truncated: AtomicU64::new(0),
            zones: ById::new(),
            regions: ById::new(),
        }
    }
}

/// The stable ids of one compiled routing and steering: `zones[i]` is the id of zone `i`.
struct Ids {
    routing: Weak<Routing>,
    steering: Weak<Steering>,
    zones: Box<[u32]>,
    regions: Box<[u32]>,
}

impl Ids {
    /// Whether these ids were made for the data `snap` serves. (The weak pointers keep the
    /// allocations, so an address is never reused while compared.)
    fn fits(&self, snap: &Snapshot) -> bool {
        std::ptr::eq(self.routing.as_ptr(), Arc::as_ptr(&snap.routing))
            && std::ptr::eq(self.steering.as_ptr(), Arc::as_ptr(&snap.steering))
    }
}

/// Stable ids for names: handed out in order, never reused, at most `MAX_IDS`.
#[derive(Default)]
struct Interner {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    /// The id of `name`, a new one the first time (past the cap, the last id).
    fn id(&mut self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        if self.names.len() >= MAX_IDS {
            return (MAX_IDS - 1) as u32;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_owned());
        self.ids.insert(name.to_owned(), id);
        id
    }
}

#[derive(Default)]
struct Names {
    zones: Interner,
    regions: Interner,
}

/// Every listener's counters of one instance, the ids of zone and region names, and the
/// registry they are published to.
pub struct Counters {
    blocks: Mutex<Vec<Arc<QueryStats>>>,
    names: Mutex<Names>,
    /// The ids of the data served last, shared by listeners that meet it.
    current: Mutex<Option<Arc<Ids>>>,
    /// The instance's registry, and the handles of the series published to it.
    telemetry: Arc<Telemetry>,
    published: Mutex<publish::Published>,
}

impl Default for Counters {
    /// Counters that publish to a registry of their own.
    fn default() -> Counters {
        Counters::publishing_to(Arc::default())
    }
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Counters")
    }
}

impl Counters {
    /// The counters of the instance whose registry is `telemetry`; the series that are always
    /// there are registered at once.
    pub fn new(telemetry: Arc<Telemetry>) -> Arc<Counters> {
        Arc::new(Counters::publishing_to(telemetry))
    }

    fn publishing_to(telemetry: Arc<Telemetry>) -> Counters {
        Counters {
            blocks: Mutex::default(),
            names: Mutex::default(),
            current: Mutex::default(),
            published: Mutex::new(publish::Published::new(&telemetry)),
            telemetry,
        }
    }

    /// A new listener's counting handle, included in every scrape from now on; its clones
    /// share its block (TCP connections of one listener).
    pub fn listener(self: &Arc<Self>) -> Tally {
        self.block(false)
    }

    /// A counting handle for one thread that is its block's only writer (a UDP socket's
    /// thread), so it counts without locked instructions. Its clones get blocks of their own.
    pub fn sole_listener(self: &Arc<Self>) -> Tally {
        self.block(true)
    }

    fn block(self: &Arc<Self>, sole: bool) -> Tally {
        let stats = Arc::new(QueryStats::new());
        guard(&self.blocks).push(stats.clone());
        Tally {
            stats,
            counters: self.clone(),
            ids: None,
            sole,
        }
    }

    /// The ids for the data `snap` serves (computed once per reload, then shared).
    fn ids_for(&self, snap: &Snapshot) -> Arc<Ids> {
        let mut cur = guard(&self.current);
        if let Some(ids) = cur.as_ref().filter(|i| i.fits(snap)) {
            return ids.clone();
        }
        let mut n = guard(&self.names);
        let n = &mut *n;
        let zones = snap
            .routing
            .zones
            .iter()
            .map(|z| n.zones.id(&z.origin.to_string()))
            .collect();
        let regions = snap
            .steering
            .regions
            .iter()
            .map(|r| n.regions.id(&r.name))
            .collect();
        let ids = Arc::new(Ids {
            routing: Arc::downgrade(&snap.routing),
            steering: Arc::downgrade(&snap.steering),
            zones,
            regions,
        });
        *cur = Some(ids.clone());
        ids
    }
}

/// One listener's way of counting: its block, and the ids of the data it served last.
pub struct Tally {
    stats: Arc<QueryStats>,
    counters: Arc<Counters>,
    ids: Option<Arc<Ids>>,
    /// This handle is its block's only writer ([`Counters::sole_listener`]).
    sole: bool,
}

impl Clone for Tally {
    /// Another handle on the same block (TCP connections of one listener); the clone of a
    /// sole writer's handle gets a block of its own, so the sole writer stays sole.
    fn clone(&self) -> Tally {
        if self.sole {
            return self.counters.sole_listener();
        }
        Tally {
            stats: self.stats.clone(),
            counters: self.counters.clone(),
            ids: self.ids.clone(),
            sole: false,
        }
    }
}

impl Tally {
    /// Counts one answered query of `snap`.
    #[inline]
    pub fn record(&mut self, snap: &Snapshot, s: &Summary) {
        let (st, sole) = (&*self.stats, self.sole);
        bump(&st.by_key[key_index(s)], sole);
        bump(&st.ecs[usize::from(s.ecs)], sole);
        if s.truncated {
            bump(&st.truncated, sole);
        }
        let region = s.steered.and_then(|x| x.region);
        if s.zone.is_none() && region.is_none() {
            return;
        }
        let ids = match &self.ids {
            Some(i) if i.fits(snap) => i,
            _ => self.ids.insert(self.counters.ids_for(snap)),
        };
        if let Some(id) = s.zone.and_then(|z| ids.zones.get(z as usize)) {
            st.zones.add(*id, sole);
        }
        if let Some(id) = region.and_then(|r| ids.regions.get(r)) {
            st.regions.add(*id, sole);
        }
    }
}

#[cfg(test)]
mod tests;
