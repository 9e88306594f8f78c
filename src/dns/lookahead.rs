//! Warming the GeoIP map's cache lines ahead of a batch's lookups. When the snapshot has one
//! GeoIP map, the address each query of a batch will be located by (its ECS address, else the
//! sender's) is peeked once, and before each query the map's lines are asked for two queries
//! ahead (directory entry) and one ahead (what follows it), so the misses of a batch overlap
//! instead of stalling one after another. A hint only: no answer depends on it.

use std::net::IpAddr;

use super::snapshot::Snapshot;
use super::wire;
use crate::geo::GeoMap;

/// Room for the peeked addresses of a batch of up to `N` queries, kept by the listener from
/// one batch to the next (filled only as far as a batch goes).
pub(crate) struct Peeked<const N: usize>([Option<IpAddr>; N]);

impl<const N: usize> Default for Peeked<N> {
    fn default() -> Self {
        Peeked([None; N])
    }
}

/// The look ahead of one batch.
pub(crate) struct Lookahead<'a> {
    /// The map, when there is one and the batch has more than one query.
    map: Option<&'a GeoMap>,
    /// The batch's peeked addresses (empty without a map).
    ahead: &'a [Option<IpAddr>],
}

impl Snapshot {
    /// Starts the look ahead over a batch of `n` queries, `query(i)` being query `i` and
    /// `sender(i)` the address it came from, and warms the first two lookups.
    #[inline]
    pub(crate) fn lookahead<'a, 'q, const N: usize>(
        &'a self,
        peeked: &'a mut Peeked<N>,
        n: usize,
        query: impl Fn(usize) -> &'q [u8],
        sender: impl Fn(usize) -> Option<IpAddr>,
    ) -> Lookahead<'a> {
        let Some(map) = self.steering.sole_map().filter(|_| n > 1) else {
            return Lookahead {
                map: None,
                ahead: &[],
            };
        };
        let ahead = &mut peeked.0[..n.min(N)];
        for (i, a) in ahead.iter_mut().enumerate() {
            *a = wire::peek_ecs(query(i)).or_else(|| sender(i));
        }
        ahead
            .iter()
            .take(2)
            .flatten()
            .for_each(|&a| map.prefetch(a, true));
        Lookahead {
            map: Some(map),
            ahead,
        }
    }
}

impl Lookahead<'_> {
    /// Called before answering query `i`: warms the lookups of queries `i + 2` and `i + 1`.
    #[inline]
    pub(crate) fn before(&self, i: usize) {
        if let Some(map) = self.map {
            if let Some(&Some(a)) = self.ahead.get(i + 2) {
                map.prefetch(a, true);
            }
            if let Some(&Some(a)) = self.ahead.get(i + 1) {
                map.prefetch(a, false);
            }
        }
    }
}
