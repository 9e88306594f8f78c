//! Admission of stream connections (DNS over TCP, TLS and HTTPS, the admin API): a cap on
//! the connections open at once, a cap per source (an IPv4 address, or the /64 of an IPv6
//! one), and eviction of an idle connection to make room for a new one.
//!
//! A listener accepts first and asks the table afterwards, so a flood never holds its accept
//! loop. At the cap, an idle connection (waiting for a request, nothing queued for the
//! client) among the next [`EVICTION_SCAN`] places of the table is closed for the new one, so
//! admission costs the same at any table size: one that never sent a byte before one that
//! has, and among those the one whose last complete request (or admission) is oldest. A flood
//! of connections that send nothing (the cheapest kind) so evicts its own connections before
//! a client in the middle of its TLS handshake. When none of them is idle, the new connection
//! is closed instead, since the open ones are busy.
//! A source already holding its share has its next connection closed at once.
//!
//! The table is locked on admission and when a connection ends, never per request: a
//! connection marks itself idle or busy and notes each complete request with plain atomics
//! ([`Conn::set_idle`], [`Conn::touch`]).
//!
//! Around the table: [`accept`] (an accept loop's error handling: backoff, counts, one warning
//! per interval, an idle connection evicted when descriptors run out) and [`budget`] (the
//! open-file limit against every cap, set at start).

pub(crate) mod accept;
pub(crate) mod budget;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::Counter;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::lock::guard;

/// Places of the table looked at for an idle connection to evict, from a rotating cursor.
pub(crate) const EVICTION_SCAN: usize = 128;

/// The bounds of one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Connections open at once, over all sources.
    pub max: usize,
    /// Connections open at once from one source (IPv4 address or IPv6 /64).
    pub per_source: usize,
}

/// Why a new connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shed {
    /// Its source already holds its share.
    PerSource,
    /// Every place is taken by a busy connection.
    Full,
}

/// The `reason` labels of a listener's shed counter: an idle connection closed for a new
/// one, or a new one closed ([`Shed`]).
pub(crate) const SHED_REASONS: [&str; 3] = ["evicted_idle", "full", "per_source"];

/// A listener's counters of shed connections, one per [`SHED_REASONS`] entry.
#[derive(Clone)]
pub(crate) struct ShedCounts {
    evicted: Counter,
    full: Counter,
    per_source: Counter,
    /// Also counts every new connection closed (full or per source), for a listener that
    /// reports them under a second name too.
    closed: Option<Counter>,
}

impl ShedCounts {
    /// The counters `counter(reason)` gives for each reason.
    pub(crate) fn new(counter: impl Fn(&'static str) -> Counter) -> ShedCounts {
        ShedCounts {
            evicted: counter(SHED_REASONS[0]),
            full: counter(SHED_REASONS[1]),
            per_source: counter(SHED_REASONS[2]),
            closed: None,
        }
    }

    /// Counts every new connection closed on `closed` as well.
    pub(crate) fn also_closed(self, closed: Counter) -> ShedCounts {
        ShedCounts {
            closed: Some(closed),
            ..self
        }
    }

    /// The counter of idle connections evicted.
    pub(crate) fn evicted(&self) -> &Counter {
        &self.evicted
    }
}

/// What one connection tells the table, without locking it.
struct State {
    /// Waiting for a request with nothing queued for the client.
    idle: AtomicBool,
    /// The client has sent something (a first byte, or a complete request).
    heard: AtomicBool,
    /// When the last complete request arrived (or the connection was admitted), in ms since
    /// the table's epoch.
    last_ms: AtomicU64,
    /// Fires when the table closes the connection for a new one.
    evict: CancellationToken,
}

struct Entry {
    source: IpAddr,
    state: Arc<State>,
}

struct Table {
    /// Places; a connection's index stays its own until it ends.
    places: Vec<Option<Entry>>,
    free: Vec<usize>,
    open: usize,
    per_source: HashMap<IpAddr, usize>,
    cursor: usize,
}

/// The connections of one listener (or of several that share their bounds).
pub(crate) struct Conns {
    table: Mutex<Table>,
    limits: Limits,
    epoch: Instant,
}

/// A connection the table admitted. Dropping it takes it out of the table.
pub(crate) struct Conn {
    conns: Arc<Conns>,
    place: usize,
    state: Arc<State>,
}

/// The outcome of a successful admission.
pub(crate) struct Admitted {
    pub conn: Conn,
    /// An idle connection was closed to make room.
    pub evicted: bool,
}

/// The key a source is counted under: IPv4 addresses one by one, IPv6 by /64.
pub(crate) fn source_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !0u128 << 64)),
        v4 @ IpAddr::V4(_) => v4,
    }
}

impl Conns {
    pub(crate) fn new(limits: Limits) -> Arc<Conns> {
        Arc::new(Conns {
            table: Mutex::new(Table {
                places: Vec::new(),
                free: Vec::new(),
                open: 0,
                per_source: HashMap::new(),
                cursor: 0,
            }),
            limits,
            epoch: Instant::now(),
        })
    }

    /// Connections open now.
    #[cfg(test)]
    fn open(&self) -> usize {
        guard(&self.table).open
    }

    /// Admits a connection from `peer`, closing an idle one when the table is full.
    pub(crate) fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Admitted, Shed> {
        let source = source_key(peer);
        let mut t = guard(&self.table);
        if t.per_source.get(&source).copied().unwrap_or(0) >= self.limits.per_source {
            return Err(Shed::PerSource);
        }
        let mut evicted = false;
        if t.open >= self.limits.max {
            let victim = t.idle_victim().ok_or(Shed::Full)?;
            t.remove(victim);
            evicted = true;
        }
        let state = Arc::new(State {
            idle: AtomicBool::new(true),
            heard: AtomicBool::new(false),
            last_ms: AtomicU64::new(self.ms(Instant::now())),
            evict: CancellationToken::new(),
        });
        let entry = Entry {
            source,
            state: state.clone(),
        };
        let place = match t.free.pop() {
            Some(i) => {
                t.places[i] = Some(entry);
                i
            }
            None => {
                t.places.push(Some(entry));
                t.places.len() - 1
            }
        };
        t.open += 1;
        *t.per_source.entry(source).or_insert(0) += 1;
        Ok(Admitted {
            conn: Conn {
                conns: self.clone(),
                place,
                state,
            },
            evicted,
        })
    }

    /// Admits a connection from `peer` as [`Conns::admit`] does, counting what was shed;
    /// `None` when the new connection is to be closed.
    pub(crate) fn admit_counted(
        self: &Arc<Self>,
        peer: IpAddr,
        counts: &ShedCounts,
    ) -> Option<Conn> {
        match self.admit(peer) {
            Ok(Admitted { conn, evicted }) => {
                if evicted {
                    counts.evicted.increment(1);
                }
                Some(conn)
            }
            Err(why) => {
                match why {
                    Shed::Full => counts.full.increment(1),
                    Shed::PerSource => counts.per_source.increment(1),
                }
                if let Some(c) = &counts.closed {
                    c.increment(1);
                }
                None
            }
        }
    }

    /// Closes the idle connection with the oldest last request among the next
    /// [`EVICTION_SCAN`] places, to free its descriptor; false when none of them is idle.
    pub(crate) fn evict_idle(&self) -> bool {
        let mut t = guard(&self.table);
        match t.idle_victim() {
            Some(victim) => {
                t.remove(victim);
                true
            }
            None => false,
        }
    }

    fn ms(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }
}

impl Table {
    /// Among the next [`EVICTION_SCAN`] places from the cursor (which moves past them), the
    /// idle connection that has not been heard from, else the idle one, with the oldest last
    /// request.
    fn idle_victim(&mut self) -> Option<usize> {
        let n = self.places.len();
        if n == 0 {
            return None;
        }
        let start = self.cursor % n;
        let scan = EVICTION_SCAN.min(n);
        self.cursor = (start + scan) % n;
        (0..scan)
            .map(|k| (start + k) % n)
            .filter_map(|i| {
                let e = self.places[i].as_ref()?;
                e.state.idle.load(Ordering::Relaxed).then(|| {
                    let heard = e.state.heard.load(Ordering::Relaxed);
                    (heard, e.state.last_ms.load(Ordering::Relaxed), i)
                })
            })
            .min()
            .map(|(_, _, i)| i)
    }

    /// Takes a connection out and tells it to close (a no-op when its place is empty).
    fn remove(&mut self, place: usize) {
        let Some(e) = self.places.get_mut(place).and_then(Option::take) else {
            return;
        };
        e.state.evict.cancel();
        self.free.push(place);
        self.open -= 1;
        if let Some(n) = self.per_source.get_mut(&e.source) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&e.source);
            }
        }
    }
}

impl Conn {
    /// Marks the connection as waiting for a request with nothing queued (evictable), or
    /// as busy.
    pub(crate) fn set_idle(&self, idle: bool) {
        self.state.idle.store(idle, Ordering::Relaxed);
    }

    /// Notes that the client has sent something (the first bytes of a handshake).
    pub(crate) fn heard(&self) {
        self.state.heard.store(true, Ordering::Relaxed);
    }

    /// Notes a complete request that arrived at `now`.
    pub(crate) fn touch(&self, now: Instant) {
        self.heard();
        self.state
            .last_ms
            .store(self.conns.ms(now), Ordering::Relaxed);
    }

    /// Completes when the table closed this connection for a new one.
    pub(crate) fn evicted(&self) -> WaitForCancellationFutureOwned {
        self.state.evict.clone().cancelled_owned()
    }

    /// Whether the table closed this connection for a new one.
    #[cfg(test)]
    fn is_evicted(&self) -> bool {
        self.state.evict.is_cancelled()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let mut t = guard(&self.conns.table);
        // An evicted connection's place may already hold a newer one.
        let ours = t.places.get(self.place).and_then(Option::as_ref);
        if ours.is_some_and(|e| Arc::ptr_eq(&e.state, &self.state)) {
            t.remove(self.place);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_table_evicts_the_oldest_idle_or_sheds() {
        let conns = Conns::new(Limits {
            max: 2,
            per_source: 10,
        });
        let a = ip("192.0.2.1");
        let first = conns.admit(a).expect("first").conn;
        tokio::time::advance(std::time::Duration::from_millis(5)).await;
        let second = conns.admit(a).expect("second").conn;
        let third = conns.admit(a).expect("third evicts");
        assert!(third.evicted);
        assert!(first.is_evicted());
        assert!(!second.is_evicted());
        assert_eq!(conns.open(), 2);
        second.set_idle(false);
        third.conn.set_idle(false);
        assert_eq!(conns.admit(a).err(), Some(Shed::Full));
        // The evicted handle's end does not free the place its successor took.
        drop(first);
        assert_eq!(conns.open(), 2);
        drop(second);
        assert_eq!(conns.open(), 1);
        assert!(conns.admit(a).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn touching_makes_a_connection_the_last_to_be_evicted() {
        let conns = Conns::new(Limits {
            max: 2,
            per_source: 10,
        });
        let a = ip("192.0.2.1");
        let first = conns.admit(a).expect("first").conn;
        let second = conns.admit(a).expect("second").conn;
        tokio::time::advance(std::time::Duration::from_millis(5)).await;
        first.touch(Instant::now());
        let _third = conns.admit(a).expect("third");
        assert!(second.is_evicted());
        assert!(!first.is_evicted());
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_goes_before_one_that_spoke_however_old() {
        let conns = Conns::new(Limits {
            max: 2,
            per_source: 10,
        });
        let a = ip("192.0.2.1");
        let spoke = conns.admit(a).expect("first").conn;
        spoke.heard();
        tokio::time::advance(std::time::Duration::from_millis(5)).await;
        let silent = conns.admit(a).expect("second").conn;
        let _third = conns.admit(a).expect("third");
        assert!(silent.is_evicted(), "the silent one, though newer");
        assert!(!spoke.is_evicted());
    }

    #[tokio::test]
    async fn per_source_limit_counts_ipv6_by_64_and_mapped_ipv4_as_ipv4() {
        let conns = Conns::new(Limits {
            max: 10,
            per_source: 1,
        });
        let x = conns.admit(ip("2001:db8::1")).expect("x").conn;
        assert_eq!(conns.admit(ip("2001:db8::2")).err(), Some(Shed::PerSource));
        assert!(conns.admit(ip("2001:db8:0:1::1")).is_ok());
        drop(x);
        assert!(conns.admit(ip("2001:db8::2")).is_ok());
        let _v4 = conns.admit(ip("192.0.2.7")).expect("v4");
        assert_eq!(
            conns.admit(ip("::ffff:192.0.2.7")).err(),
            Some(Shed::PerSource)
        );
    }

    #[tokio::test]
    async fn evicting_for_a_descriptor_takes_an_idle_connection_only() {
        let conns = Conns::new(Limits {
            max: 10,
            per_source: 10,
        });
        let a = ip("192.0.2.1");
        assert!(!conns.evict_idle(), "an empty table has nothing to evict");
        let busy = conns.admit(a).expect("busy").conn;
        busy.set_idle(false);
        assert!(!conns.evict_idle(), "a busy connection is never evicted");
        let idle = conns.admit(a).expect("idle").conn;
        assert!(conns.evict_idle());
        assert!(idle.is_evicted());
        assert!(!busy.is_evicted());
        assert_eq!(conns.open(), 1);
    }

    #[tokio::test]
    async fn eviction_looks_at_a_bounded_window() {
        let max = EVICTION_SCAN * 2;
        let conns = Conns::new(Limits {
            max,
            per_source: max + 1,
        });
        let a = ip("192.0.2.1");
        let held: Vec<Conn> = (0..max)
            .map(|_| conns.admit(a).expect("fill").conn)
            .collect();
        for c in &held[..EVICTION_SCAN] {
            c.set_idle(false);
        }
        // The first window is all busy: the new connection is shed, and the cursor moves on.
        assert_eq!(conns.admit(a).err(), Some(Shed::Full));
        let next = conns.admit(a).expect("second window has idle ones");
        assert!(next.evicted);
        assert!(held[EVICTION_SCAN..].iter().any(Conn::is_evicted));
    }
}
