//! DNS over TCP: the accept loop, admission of connections through the listener's
//! [`Conns`] table (a global cap, a cap per source, eviction of an idle connection), and one
//! connection's task around the framing of [`tcp_conn`] (RFC 7766 pipelining, answered in
//! order). Admission never blocks accepting: a connection is accepted first, then kept or
//! shed.
//!
//! The listener owns its connection tasks (a `JoinSet`). When `cancel` fires it stops
//! accepting and closes its socket; an idle connection closes at once, one answering a query
//! writes that reply and closes, and any still open after [`SHUTDOWN_GRACE`] is dropped. The
//! listener returns once every connection task has ended.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::stats::Tally;
use super::tcp_conn::{self, ConnCtx};
use crate::conns::{Admitted, Conn, Conns, Limits};
use crate::dns::querylog::QueryLog;
use crate::dns::snapshot::Shared;
use crate::telemetry::Telemetry;

/// On shutdown, how long a connection may take to send the reply it is working on.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// The bounds of the TCP listener.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TcpLimits {
    /// Connections open at once, over all sources, and from one source.
    pub conns: Limits,
    /// A connection without a complete query for this long is closed.
    pub idle: Duration,
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
    let table = Conns::new(limits.conns);
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
        match table.admit(peer.ip()) {
            Ok(Admitted { conn, evicted }) => {
                if evicted {
                    telemetry
                        .counter("sipsteer_tcp_shed_total", &[("reason", "evicted_idle")])
                        .increment(1);
                }
                conns.spawn(connection(stream, peer, ctx.clone(), conn));
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
    conn: Conn,
) {
    let overdue = async {
        ctx.stop.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        () = tcp_conn::serve(stream, peer, &ctx, &conn) => {}
        () = conn.evicted() => {}
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
}
