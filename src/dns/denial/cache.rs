//! The bounded cache of signed NXNAME proofs, by zone key (its key tag and signature window)
//! and name asked (lowercase): quick_cache's sharded cache, so a query thread's lookup takes
//! one shard's read lock briefly, allocates nothing and never waits on a signature. Its
//! eviction (S3-FIFO, scan resistant) keeps names asked again over names asked once, so a
//! flood of random names does not push out the proofs resolvers keep asking for.

use std::sync::Arc;

use quick_cache::Equivalent;
use quick_cache::sync::Cache;

use super::Proof;
use crate::dnssec::ZoneKey;

/// How a proof is kept: the key's tag, the window's inception and the name (a proof whose
/// key or TTL differs is checked on use, see [`Proof::fits`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    tag: u16,
    inception: u32,
    name: Box<[u8]>,
}

/// A [`Key`] borrowed from a query (hashes as the key it equals).
#[derive(Hash)]
struct Lookup<'a> {
    tag: u16,
    inception: u32,
    name: &'a [u8],
}

impl Equivalent<Key> for Lookup<'_> {
    fn equivalent(&self, k: &Key) -> bool {
        self.tag == k.tag && self.inception == k.inception && self.name == &*k.name
    }
}

/// Signed proofs, at most the configured number.
pub(super) struct Proofs {
    cache: Cache<Key, Arc<Proof>>,
}

impl Proofs {
    pub(super) fn new(capacity: usize) -> Proofs {
        Proofs {
            cache: Cache::new(capacity.max(1)),
        }
    }

    /// The proof kept for `name` under `key` in the window starting at `inception`.
    #[inline]
    pub(super) fn get(&self, key: &ZoneKey, inception: u32, name: &[u8]) -> Option<Arc<Proof>> {
        self.cache.get(&Lookup {
            tag: key.key_tag(),
            inception,
            name,
        })
    }

    pub(super) fn insert(&self, key: &ZoneKey, inception: u32, name: &[u8], proof: Arc<Proof>) {
        let k = Key {
            tag: key.key_tag(),
            inception,
            name: name.into(),
        };
        self.cache.insert(k, proof);
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn a_lookup_hashes_as_its_key() {
        let s = foldhash::fast::FixedState::with_seed(7);
        let k = Key {
            tag: 9,
            inception: 5,
            name: Box::from(&b"\x01a\x00"[..]),
        };
        let l = Lookup {
            tag: 9,
            inception: 5,
            name: b"\x01a\x00",
        };
        assert_eq!(s.hash_one(&k), s.hash_one(&l));
        assert!(l.equivalent(&k));
    }
}
