//! Compact denial of existence (RFC 9824) for names that do not exist in a signed zone: the
//! NSEC owned by the name asked, next name `\000.<name>`, types RRSIG NSEC NXNAME, with its
//! RRSIG. Its signature is over a name the client chose, so it cannot be made before the
//! query, and a query thread never computes one: a bounded cache of signed proofs by zone key
//! and name ([`cache`]) answers most; on a miss the query, its reply written but for the
//! proof, is handed to the signer thread ([`signer`]: a bounded queue, a full one drops the
//! query and counts it), which signs, keeps the proof and sends the reply itself. What a proof
//! is and how it goes into a reply: [`proof`]. [`Denial`] lives in the snapshot (kept across
//! reloads that leave `dnssec.denial` unchanged); its counters and queue live as long as the
//! instance.

mod cache;
mod proof;
mod signer;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::config::DenialSettings;
use crate::routing::ZoneData;

pub(crate) use proof::{Owner, Proof, reply_len};
pub(crate) use signer::{Queue, Route, SignerThread, spawn_signer};

/// A reply waiting for its proof: the zone (its index in the snapshot's routing), the name
/// the proof is for, and where in the reply the proof's two records go (the end of the
/// authority section, where the OPT record starts).
#[derive(Clone, Copy)]
pub(crate) struct Pending {
    pub zone: u32,
    pub owner: Owner,
    pub at: usize,
}

/// The proofs of one configuration's bounds, and the instance's queue and counters.
pub struct Denial {
    settings: DenialSettings,
    proofs: Arc<cache::Proofs>,
    queue: Arc<Queue>,
    counts: Arc<Counts>,
}

impl std::fmt::Debug for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Denial")
            .field("settings", &self.settings)
            .finish()
    }
}

/// Series of [`Counts`], in [`Counts::totals`] order.
pub(crate) const SERIES: [&str; COUNTERS] = [
    "sipsteer_dnssec_nxname_signed_total",
    "sipsteer_dnssec_nxname_cache_hits_total",
    "sipsteer_dnssec_nxname_handoffs_total",
    "sipsteer_dnssec_nxname_dropped_total",
];
pub(crate) const COUNTERS: usize = 4;

/// What the denial path did, for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    /// Proofs signed (by the signer thread).
    signed: AtomicU64,
    /// Proofs answered from the cache on a query thread.
    hits: AtomicU64,
    /// Queries handed to the signer thread.
    handoffs: AtomicU64,
    /// Queries dropped because the signer's queue was full.
    dropped: AtomicU64,
    /// Signatures computed on any thread but the signer (0 by design; a tripwire).
    query_thread: AtomicU64,
}

impl Counts {
    fn add(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }
}

impl Denial {
    /// The proofs for `s`, reusing `previous` when the bounds did not change; the queue and
    /// the counters are the instance's, carried from `previous`.
    pub fn for_settings(s: &DenialSettings, previous: Option<&Arc<Denial>>) -> Arc<Denial> {
        if let Some(p) = previous
            && p.settings == *s
        {
            return p.clone();
        }
        Arc::new(Denial {
            settings: *s,
            proofs: Arc::new(cache::Proofs::new(s.cache)),
            queue: previous.map_or_else(|| Arc::new(Queue::default()), |p| p.queue.clone()),
            counts: previous.map_or_else(Arc::default, |p| p.counts.clone()),
        })
    }

    /// The instance's queue (for starting the signer thread).
    pub(crate) fn queue(&self) -> &Arc<Queue> {
        &self.queue
    }

    /// The signed proof for `owner` (lowercase wire form) in `zone`, if one is kept.
    #[inline]
    pub(crate) fn lookup(&self, zone: &ZoneData, owner: &[u8]) -> Option<Arc<Proof>> {
        let key = zone.key.as_deref()?;
        let p = self
            .proofs
            .get(key, zone.window.inception, owner)
            .filter(|p| p.fits(key, proof::ttl(zone)))?;
        Counts::add(&self.counts.hits);
        Some(p)
    }

    /// Hands the reply `reply` to the signer thread, which completes it with the proof of
    /// `pending` and sends it along `route`; false when the queue is full (the query is
    /// dropped, and counted).
    pub(crate) fn hand_off(
        &self,
        zone: &Arc<ZoneData>,
        pending: &Pending,
        reply: &[u8],
        route: impl FnOnce() -> Route,
    ) -> bool {
        let cap = self.settings.queue;
        if self.queue.len() >= cap {
            Counts::add(&self.counts.dropped);
            return false;
        }
        let job = signer::Job {
            reply: reply.to_vec(),
            pending: *pending,
            zone: zone.clone(),
            proofs: self.proofs.clone(),
            counts: self.counts.clone(),
            route: route(),
        };
        if self.queue.try_push(job, cap) {
            Counts::add(&self.counts.handoffs);
            true
        } else {
            Counts::add(&self.counts.dropped);
            false
        }
    }

    /// Every counter, in [`SERIES`] order.
    pub(crate) fn totals(&self) -> [u64; COUNTERS] {
        let c = &*self.counts;
        [&c.signed, &c.hits, &c.handoffs, &c.dropped].map(|a| a.load(Relaxed))
    }

    /// Signatures made by the signer thread and on any other thread (0 by design): they are
    /// counted with the steered answers' in `sipsteer_dnssec_signatures_total{thread}`.
    pub(crate) fn signatures(&self) -> (u64, u64) {
        let c = &*self.counts;
        (c.signed.load(Relaxed), c.query_thread.load(Relaxed))
    }
}
