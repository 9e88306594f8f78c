//! The signature cache of steered answers: RRSIG record data by (key tag, algorithm,
//! signature window, owner, type, TTL, canonical RRset), read without a lock by the answer
//! path and filled off it: by the pre-signing rounds (`presign`) that run before a snapshot
//! or a health view is published, and by the signer task that signs what a query found
//! missing (a bounded queue, offered with `try_send`). A query never signs.
//!
//! The readers load one immutable table (`ArcSwap`); a writer copies it, changes the copy
//! and publishes it. The cache holds at most `dns.signature_cache` entries: when it is full
//! the entry least recently needed by a pre-signing round goes first, never one the latest
//! round needs (the cache is never cleared all at once).

use std::cell::Cell;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use siphasher::sip128::{Hasher128, SipHasher13};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::lock::guard;
use crate::routing::{Signing, ZoneData};

/// Sets a query found unsigned, waiting for the signer task; more are dropped (and counted).
const QUEUE: usize = 1024;
/// Sets the signer task signs in one go.
const BATCH: usize = 64;
const HASH_KEY: [u8; 16] = *b"sipsteer-rrsig-1";

thread_local! {
    /// Set while this thread answers a query: a signature made then counts as `query`.
    static ON_QUERY: Cell<bool> = const { Cell::new(false) };
}

/// Marks the current thread as answering a query (see the `query` signature count).
#[inline]
pub(crate) fn on_query(on: bool) {
    ON_QUERY.set(on);
}

/// One RRset to sign: its key in the cache and the canonical data the RRSIG covers.
#[derive(Debug)]
pub(crate) struct SetToSign {
    pub key: u128,
    pub zone: Arc<ZoneData>,
    /// Canonical wire form (lowercase, uncompressed).
    pub owner: Box<[u8]>,
    pub rtype: u16,
    pub ttl: u32,
    pub rdatas: Vec<Vec<u8>>,
}

/// The cache key of the RRset of `rtype` at `owner` with TTL `ttl` and the records `rdatas`
/// (canonical form, any order) in `zone`: its key tag, algorithm and signature window, then
/// the set (the records hashed one by one and summed, so their order does not matter).
pub(crate) fn set_key<'a>(
    zone: &ZoneData,
    owner: &[u8],
    rtype: u16,
    ttl: u32,
    rdatas: impl Iterator<Item = &'a [u8]>,
) -> u128 {
    let (mut sum, mut n) = (0u128, 0u32);
    for rd in rdatas {
        let mut h = SipHasher13::new_with_key(&HASH_KEY);
        std::hash::Hasher::write(&mut h, rd);
        sum = sum.wrapping_add(h.finish128().as_u128());
        n += 1;
    }
    let mut h = SipHasher13::new_with_key(&HASH_KEY);
    let w = |h: &mut SipHasher13, b: &[u8]| std::hash::Hasher::write(h, b);
    if let Some(k) = zone.key.as_deref() {
        w(&mut h, &k.key_tag().to_be_bytes());
        w(&mut h, &[k.algorithm().number()]);
    }
    w(&mut h, &zone.window.inception.to_be_bytes());
    w(&mut h, &zone.window.expiration.to_be_bytes());
    w(&mut h, owner);
    w(&mut h, &rtype.to_be_bytes());
    w(&mut h, &ttl.to_be_bytes());
    w(&mut h, &n.to_be_bytes());
    w(&mut h, &sum.to_be_bytes());
    h.finish128().as_u128()
}

/// The record data of the records in `wire` (records as a reply holds them: owner, possibly
/// compressed, type, class, TTL, length, data).
pub(crate) fn rdatas(wire: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        loop {
            let &b = wire.get(pos)?;
            match b {
                0 => pos += 1,
                b if b & 0xC0 == 0xC0 => pos += 2,
                b => {
                    pos += 1 + b as usize;
                    continue;
                }
            }
            break;
        }
        let fixed = wire.get(pos..pos + 10)?;
        let len = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
        let data = wire.get(pos + 10..pos + 10 + len)?;
        pos += 10 + len;
        Some(data)
    })
}

/// The published table: key to RRSIG record data.
#[derive(Debug, Default)]
struct Table {
    sigs: HashMap<u128, Arc<[u8]>, foldhash::fast::RandomState>,
}

/// The writers' side: when each entry was last needed (round, then insertion order).
#[derive(Debug, Default)]
struct State {
    meta: HashMap<u128, (u64, u64), foldhash::fast::RandomState>,
    order: BTreeSet<(u64, u64, u128)>,
    round: u64,
    seq: u64,
}

impl State {
    fn stamp(&mut self, key: u128, round: u64) {
        if let Some((r, s)) = self.meta.get(&key).copied() {
            if r == round {
                return;
            }
            self.order.remove(&(r, s, key));
        }
        self.seq += 1;
        self.meta.insert(key, (round, self.seq));
        self.order.insert((round, self.seq, key));
    }
}

/// What the cache has done, for `/metrics` and the tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SigTotals {
    /// Signatures made off the packet path (pre-signing rounds, the signer task).
    pub signer: u64,
    /// Signatures made while a thread answered a query (never, by design).
    pub query: u64,
    /// Steered sets a DO=1 query found without a signature.
    pub misses: u64,
    /// Of those, not queued for the signer (queue full).
    pub dropped: u64,
    pub entries: u64,
    pub bound: u64,
    /// Sets a round could not keep because every entry serves the latest round.
    pub over_bound: u64,
    /// The last pre-signing round: when it ended (Unix seconds), the distinct sets it
    /// enumerated, the signatures it made and how long it took (microseconds).
    pub round_unix: u64,
    pub round_variants: u64,
    pub round_signed: u64,
    pub round_micros: u64,
}

#[derive(Debug, Default)]
struct Counts {
    signer: AtomicU64,
    query: AtomicU64,
    misses: AtomicU64,
    dropped: AtomicU64,
    entries: AtomicU64,
    over_bound: AtomicU64,
    round_unix: AtomicU64,
    round_variants: AtomicU64,
    round_signed: AtomicU64,
    round_micros: AtomicU64,
}

/// The bounded signature cache, shared by every snapshot of an instance.
#[derive(Debug)]
pub struct SigCache {
    table: ArcSwap<Table>,
    state: Mutex<State>,
    bound: AtomicUsize,
    queue: mpsc::Sender<SetToSign>,
    jobs: Mutex<Option<mpsc::Receiver<SetToSign>>>,
    counts: Counts,
}

impl SigCache {
    pub fn new(bound: usize) -> SigCache {
        let (queue, jobs) = mpsc::channel(QUEUE);
        SigCache {
            table: ArcSwap::default(),
            state: Mutex::default(),
            bound: AtomicUsize::new(bound.max(1)),
            queue,
            jobs: Mutex::new(Some(jobs)),
            counts: Counts::default(),
        }
    }

    /// Applies a reloaded `dns.signature_cache` (a smaller bound takes effect as entries are
    /// replaced).
    pub fn set_bound(&self, bound: usize) {
        self.bound.store(bound.max(1), Relaxed);
    }

    /// Calls `f` with the RRSIG record data of the set `key`, if the cache holds it.
    #[inline]
    pub(crate) fn with<R>(&self, key: u128, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let t = self.table.load();
        t.sigs.get(&key).map(|v| f(v))
    }

    /// A query found the set `key` without a signature: counted, and offered to the signer
    /// task (dropped and counted when its queue is full).
    pub(crate) fn missed<'a>(
        &self,
        zone: &Arc<ZoneData>,
        owner: &[u8],
        (rtype, ttl, key): (u16, u32, u128),
        rdatas: impl Iterator<Item = &'a [u8]>,
    ) {
        self.counts.misses.fetch_add(1, Relaxed);
        let Ok(permit) = self.queue.try_reserve() else {
            self.counts.dropped.fetch_add(1, Relaxed);
            return;
        };
        permit.send(SetToSign {
            key,
            zone: zone.clone(),
            owner: owner.into(),
            rtype,
            ttl,
            rdatas: rdatas.map(<[u8]>::to_vec).collect(),
        });
    }

    /// Signs what queries found missing until `cancel` fires (the instance's one signer
    /// task; a second call returns at once).
    pub async fn run_signer(self: Arc<Self>, cancel: CancellationToken) {
        let Some(mut rx) = guard(&self.jobs).take() else {
            return;
        };
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                n = rx.recv_many(&mut batch, BATCH) => {
                    if n == 0 {
                        return;
                    }
                    self.apply(batch.drain(..), false);
                }
                () = cancel.cancelled() => return,
            }
        }
    }

    /// One pre-signing round over every set the current plans can answer (most likely
    /// first): the missing ones are signed, all of them marked as needed now.
    pub(crate) fn round(&self, sets: impl IntoIterator<Item = SetToSign>) {
        let started = std::time::Instant::now();
        let (variants, signed) = self.apply(sets.into_iter(), true);
        let c = &self.counts;
        c.round_variants.store(variants, Relaxed);
        c.round_signed.store(signed, Relaxed);
        c.round_micros
            .store(started.elapsed().as_micros() as u64, Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        c.round_unix.store(now, Relaxed);
    }

    /// Signs the sets not in the cache (making room by evicting entries no round since the
    /// latest needs, oldest first) and publishes the new table; returns the distinct sets
    /// seen and the signatures made.
    fn apply(&self, sets: impl Iterator<Item = SetToSign>, new_round: bool) -> (u64, u64) {
        let mut st = guard(&self.state);
        if new_round {
            st.round += 1;
        }
        let round = st.round;
        let bound = self.bound.load(Relaxed);
        let (mut added, mut gone) = (Vec::new(), Vec::new());
        let (mut variants, mut signed) = (0u64, 0u64);
        for set in sets {
            if st.meta.contains_key(&set.key) {
                if new_round && st.meta.get(&set.key).is_some_and(|m| m.0 != round) {
                    variants += 1;
                }
                st.stamp(set.key, round);
                continue;
            }
            variants += 1;
            if !make_room(&mut st, bound, round, &mut gone) {
                self.counts.over_bound.fetch_add(1, Relaxed);
                continue;
            }
            let Some(k) = set.zone.key.as_deref() else {
                continue;
            };
            let sg = Signing::new(k, &set.zone.origin, set.zone.window);
            let rrsig = sg.wire(&set.owner, set.rtype, set.ttl, &set.rdatas);
            self.count_signature();
            signed += 1;
            st.stamp(set.key, round);
            added.push((set.key, Arc::<[u8]>::from(rrsig)));
        }
        if !added.is_empty() || !gone.is_empty() {
            let mut next = Table {
                sigs: self.table.load().sigs.clone(),
            };
            for k in gone {
                next.sigs.remove(&k);
            }
            next.sigs.extend(added);
            self.table.store(Arc::new(next));
        }
        self.counts.entries.store(st.meta.len() as u64, Relaxed);
        (variants, signed)
    }

    fn count_signature(&self) {
        let c = if ON_QUERY.get() {
            &self.counts.query
        } else {
            &self.counts.signer
        };
        c.fetch_add(1, Relaxed);
    }

    pub fn totals(&self) -> SigTotals {
        let c = &self.counts;
        SigTotals {
            signer: c.signer.load(Relaxed),
            query: c.query.load(Relaxed),
            misses: c.misses.load(Relaxed),
            dropped: c.dropped.load(Relaxed),
            entries: c.entries.load(Relaxed),
            bound: self.bound.load(Relaxed) as u64,
            over_bound: c.over_bound.load(Relaxed),
            round_unix: c.round_unix.load(Relaxed),
            round_variants: c.round_variants.load(Relaxed),
            round_signed: c.round_signed.load(Relaxed),
            round_micros: c.round_micros.load(Relaxed),
        }
    }
}

/// Evicts entries until one more fits under `bound`, oldest first, never one the round
/// `round` needs; false when only such entries are left.
fn make_room(st: &mut State, bound: usize, round: u64, gone: &mut Vec<u128>) -> bool {
    while st.meta.len() >= bound {
        match st.order.first().copied() {
            Some((r, s, key)) if r != round => {
                st.order.remove(&(r, s, key));
                st.meta.remove(&key);
                gone.push(key);
            }
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signed zone compiled from a config in `dir`.
    fn zone(dir: &std::path::Path) -> Arc<ZoneData> {
        use crate::dnssec::{Algorithm, ZoneKey};
        std::fs::create_dir(dir.join("zones")).expect("zones");
        std::fs::write(dir.join("sipsteer.yaml"), "zones: zones\n").expect("main");
        let pem = ZoneKey::generate_pem(Algorithm::EcdsaP256).expect("key");
        std::fs::write(dir.join("z.pem"), pem).expect("pem");
        std::fs::write(
            dir.join("zones/z.yaml"),
            "zone: example.com\nsoa: { primary: ns1, contact: h, serial: 1 }\nns: [ns1]\n\
             records: { ns1: { A: 192.0.2.53 } }\ndnssec: { key: z.pem }\n",
        )
        .expect("zone");
        let cfg = crate::config::load(&dir.join("sipsteer.yaml")).expect("config");
        crate::routing::compile(&cfg).zones[0].data.clone()
    }

    #[tokio::test]
    async fn a_miss_is_signed_by_the_signer_task_and_counted_by_thread() {
        let dir = tempfile::tempdir().expect("tmp");
        let zone = zone(dir.path());
        let cache = Arc::new(SigCache::new(16));
        let owner = b"\x03sip\x07example\x03com\x00";
        let rd: &[u8] = &[192, 0, 2, 1];
        let key = set_key(&zone, owner, 1, 60, std::iter::once(rd));
        assert!(cache.with(key, |_| ()).is_none());
        cache.missed(&zone, owner, (1, 60, key), std::iter::once(rd));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(cache.clone().run_signer(cancel.clone()));
        for _ in 0..500 {
            if cache.with(key, |_| ()).is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        // Type covered A, algorithm 13, 3 labels, original TTL 60.
        let head = cache.with(key, |r| r[..8].to_vec()).expect("signed");
        assert_eq!(head, [0, 1, 13, 3, 0, 0, 0, 60]);
        let t = cache.totals();
        assert_eq!((t.misses, t.signer, t.query, t.entries), (1, 1, 0, 1));
        cancel.cancel();
        task.await.expect("signer ends");
        // A signature made while the thread answers a query counts as the query's.
        let other = set_key(&zone, owner, 1, 30, std::iter::once(rd));
        on_query(true);
        cache.round([SetToSign {
            key: other,
            zone: zone.clone(),
            owner: owner[..].into(),
            rtype: 1,
            ttl: 30,
            rdatas: vec![rd.to_vec()],
        }]);
        on_query(false);
        assert_eq!(cache.totals().query, 1);
    }

    #[test]
    fn written_records_yield_their_data() {
        // Owner pointer, A 192.0.2.1; owner `a` + pointer, A 192.0.2.2.
        let mut wire = vec![0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1];
        wire.extend_from_slice(&[1, b'a', 0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        wire.extend_from_slice(&[192, 0, 2, 2]);
        let got: Vec<&[u8]> = rdatas(&wire).collect();
        assert_eq!(got, [&[192, 0, 2, 1][..], &[192, 0, 2, 2][..]]);
        assert_eq!(rdatas(&wire[..20]).count(), 1, "a cut record is not read");
    }

    #[test]
    fn room_is_made_from_the_oldest_entries_of_earlier_rounds_only() {
        let mut st = State::default();
        for k in 0..3u128 {
            st.stamp(k, 1);
        }
        st.stamp(0, 2); // needed again by round 2
        let mut gone = Vec::new();
        assert!(make_room(&mut st, 3, 2, &mut gone));
        assert_eq!(gone, [1], "the oldest entry of round 1 goes first");
        st.stamp(9, 2);
        assert!(make_room(&mut st, 3, 2, &mut gone));
        assert_eq!(gone, [1, 2]);
        st.stamp(10, 2);
        assert!(!make_room(&mut st, 3, 2, &mut gone), "all serve round 2");
        assert_eq!(st.meta.len(), 3);
    }
}
