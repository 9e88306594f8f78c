//! DNS over TCP: the accept loop, admission of connections (a global cap, a cap per source,
//! eviction of the oldest idle connection) and the framing of one connection (RFC 7766
//! pipelining, answered in order).
//!
//! Admission never blocks accepting: a connection is accepted first, then kept or shed.
//! At `max_connections` the idle connection (waiting for a query, no reply queued) whose
//! last complete query is oldest is closed to make room; when none is idle, the new
//! connection is closed instead, since every open one is busy answering. A source (an IPv4
//! address, or the /64 of an IPv6 one) holding `per_source` connections has its next one
//! closed at once. The table is locked only on accept and close, never per query.
//!
//! The listener owns its connection tasks (a `JoinSet`). When `cancel` fires it stops
//! accepting and closes its socket; an idle connection closes at once, one answering a query
//! writes that reply and closes, and any still open after [`SHUTDOWN_GRACE`] is dropped. The
//! listener returns once every connection task has ended.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::stats::Tally;
use super::tcp_conn::{self, ConnCtx};
use crate::dns::querylog::QueryLog;
use crate::dns::snapshot::Shared;
use crate::telemetry::Telemetry;

/// On shutdown, how long a connection may take to send the reply it is working on.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// The bounds of the TCP listener.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TcpLimits {
    /// Connections open at once, over all sources.
    pub max_connections: usize,
    /// Connections open at once from one source (IPv4 address or IPv6 /64).
    pub per_source: usize,
    /// A connection without a complete query for this long is closed.
    pub idle: Duration,
}

/// What the table knows of one open connection; the connection task updates it.
pub(super) struct ConnState {
    /// Waiting for the first byte of a query with no reply queued.
    pub idle: AtomicBool,
    /// When the last complete query arrived (or the connection was accepted), in ms since
    /// the table's epoch.
    pub last_query_ms: AtomicU64,
    epoch: Instant,
}

impl ConnState {
    /// Notes a complete query that arrived at `now`.
    pub(super) fn touch(&self, now: Instant) {
        let ms = now.saturating_duration_since(self.epoch).as_millis() as u64;
        self.last_query_ms.store(ms, Ordering::Relaxed);
    }
}

struct Entry {
    source: IpAddr,
    state: Arc<ConnState>,
    evict: CancellationToken,
}

/// The open connections.
struct Table {
    conns: HashMap<u64, Entry>,
    per_source: HashMap<IpAddr, usize>,
    next_id: u64,
    epoch: Instant,
}

/// Why a new connection was not kept, or an old one was closed for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shed {
    /// The new connection's source already holds its share.
    PerSource,
    /// Every slot is taken by a busy connection.
    Full,
}

impl Shed {
    fn label(self) -> &'static str {
        match self {
            Shed::PerSource => "per_source",
            Shed::Full => "full",
        }
    }
}

/// The key a source is counted under: IPv4 addresses one by one, IPv6 by /64.
fn source_key(ip: IpAddr) -> IpAddr {
    match crate::geo::canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !0u128 << 64)),
        v4 @ IpAddr::V4(_) => v4,
    }
}

impl Table {
    fn new() -> Table {
        Table {
            conns: HashMap::new(),
            per_source: HashMap::new(),
            next_id: 0,
            epoch: Instant::now(),
        }
    }

    /// Admits a connection from `peer`, evicting the oldest idle one when full.
    fn admit(
        &mut self,
        peer: IpAddr,
        limits: &TcpLimits,
        telemetry: &Telemetry,
    ) -> Result<(u64, Arc<ConnState>, CancellationToken), Shed> {
        let source = source_key(peer);
        if self.per_source.get(&source).copied().unwrap_or(0) >= limits.per_source {
            return Err(Shed::PerSource);
        }
        if self.conns.len() >= limits.max_connections {
            let victim = self.oldest_idle().ok_or(Shed::Full)?;
            self.remove(victim);
            telemetry
                .counter("sipsteer_tcp_shed_total", &[("reason", "evicted_idle")])
                .increment(1);
        }
        let state = Arc::new(ConnState {
            idle: AtomicBool::new(true),
            last_query_ms: AtomicU64::new(0),
            epoch: self.epoch,
        });
        state.touch(Instant::now());
        let evict = CancellationToken::new();
        let id = self.next_id;
        self.next_id += 1;
        self.conns.insert(
            id,
            Entry {
                source,
                state: state.clone(),
                evict: evict.clone(),
            },
        );
        *self.per_source.entry(source).or_insert(0) += 1;
        Ok((id, state, evict))
    }

    fn oldest_idle(&self) -> Option<u64> {
        self.conns
            .iter()
            .filter(|(_, e)| e.state.idle.load(Ordering::Relaxed))
            .min_by_key(|(_, e)| e.state.last_query_ms.load(Ordering::Relaxed))
            .map(|(id, _)| *id)
    }

    /// Forgets a connection and tells its task to close it (a no-op when already gone).
    fn remove(&mut self, id: u64) {
        let Some(e) = self.conns.remove(&id) else {
            return;
        };
        e.evict.cancel();
        if let Some(n) = self.per_source.get_mut(&e.source) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&e.source);
            }
        }
    }
}

/// Removes its connection from the table when the connection task ends.
struct Slot {
    table: Arc<Mutex<Table>>,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(self.id);
    }
}

/// Accepts TCP connections until `cancel` fires, then waits for its connections to end.
pub(crate) async fn serve_tcp(
    listener: TcpListener,
    shared: Shared,
    tally: Tally,
    log: Option<Arc<QueryLog>>,
    limits: TcpLimits,
    telemetry: Arc<Telemetry>,
    cancel: CancellationToken,
) {
    let table = Arc::new(Mutex::new(Table::new()));
    let ctx = Arc::new(ConnCtx {
        shared,
        tally,
        telemetry: telemetry.clone(),
        log,
        idle: limits.idle,
        stop: cancel.clone(),
    });
    let mut conns = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "tcp accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            Some(_) = conns.join_next() => continue,
            () = cancel.cancelled() => break,
        };
        let admitted = table.lock().unwrap_or_else(PoisonError::into_inner).admit(
            peer.ip(),
            &limits,
            &telemetry,
        );
        match admitted {
            Ok((id, state, evict)) => {
                let slot = Slot {
                    table: table.clone(),
                    id,
                };
                conns.spawn(connection(stream, peer, ctx.clone(), state, evict, slot));
            }
            Err(why) => {
                telemetry
                    .counter("sipsteer_tcp_shed_total", &[("reason", why.label())])
                    .increment(1);
                drop(stream);
            }
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

/// One connection until it ends, is evicted, or outlives the shutdown grace.
async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    ctx: Arc<ConnCtx>,
    state: Arc<ConnState>,
    evict: CancellationToken,
    slot: Slot,
) {
    let _slot = slot;
    let overdue = async {
        ctx.stop.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        () = tcp_conn::serve(stream, peer, &ctx, &state) => {}
        () = evict.cancelled() => {}
        () = overdue => {}
    }
}

/// Raises the soft limit on open files to the hard limit, and warns once when the result is
/// still below `needed` (every connection the caps allow, plus files and sockets besides).
pub(crate) fn raise_fd_limit(needed: usize) {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read and write the struct passed.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) } != 0 {
            return;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            // SAFETY: as above.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const raised) } == 0 {
                lim = raised;
            }
        }
        let needed = needed.saturating_add(FD_MARGIN) as libc::rlim_t;
        if lim.rlim_cur < needed {
            tracing::warn!(
                limit = lim.rlim_cur,
                needed,
                "open file limit is below what dns.tcp_max_connections and the admin cap allow: raise LimitNOFILE"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = needed;
}

/// Descriptors kept for everything but client connections (UDP sockets, files, probes).
const FD_MARGIN: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per_source: usize) -> TcpLimits {
        TcpLimits {
            max_connections: max,
            per_source,
            idle: Duration::from_secs(10),
        }
    }

    #[tokio::test]
    async fn full_table_evicts_the_oldest_idle_or_refuses() {
        let mut t = Table::new();
        let tm = Telemetry::new();
        let l = limits(2, 10);
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let (first, s1, e1) = t.admit(a, &l, &tm).expect("first");
        let (_, s2, _) = t.admit(a, &l, &tm).expect("second");
        s1.last_query_ms.store(5, Ordering::Relaxed);
        s2.last_query_ms.store(9, Ordering::Relaxed);
        let (_, s3, _) = t.admit(a, &l, &tm).expect("third evicts");
        assert!(e1.is_cancelled());
        assert!(!t.conns.contains_key(&first));
        s2.idle.store(false, Ordering::Relaxed);
        s3.idle.store(false, Ordering::Relaxed);
        assert_eq!(t.admit(a, &l, &tm).err(), Some(Shed::Full));
        assert_eq!(t.per_source.get(&a), Some(&2));
    }

    #[cfg(unix)]
    #[test]
    fn fd_limit_is_raised_to_the_hard_limit() {
        raise_fd_limit(0);
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct passed.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) },
            0
        );
        assert_eq!(lim.rlim_cur, lim.rlim_max);
    }

    #[tokio::test]
    async fn per_source_limit_counts_ipv6_by_64() {
        let mut t = Table::new();
        let tm = Telemetry::new();
        let l = limits(10, 1);
        let x: IpAddr = "2001:db8::1".parse().expect("ip");
        let y: IpAddr = "2001:db8::2".parse().expect("ip");
        let z: IpAddr = "2001:db8:0:1::1".parse().expect("ip");
        let (id, _, _) = t.admit(x, &l, &tm).expect("x");
        assert_eq!(t.admit(y, &l, &tm).err(), Some(Shed::PerSource));
        assert!(t.admit(z, &l, &tm).is_ok());
        t.remove(id);
        assert!(t.admit(y, &l, &tm).is_ok());
    }
}
