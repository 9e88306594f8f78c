//! DNS over TCP and DNS over TLS: the accept loop of a stream listener, admission of each
//! connection through its transport's [`Conns`] table (a global cap, a cap per source,
//! eviction of an idle connection), and one connection's task: the [`Upgrade`] (nothing for
//! TCP, the TLS handshake for DNS over TLS, under the idle timeout, while the connection
//! already holds its place and counts as idle), then the framing of [`tcp_conn`] (RFC 7766
//! pipelining, answered in order). Admission never blocks accepting: a connection is accepted
//! first, then kept or shed; accept errors back off ([`Accept`]).
//!
//! The listener owns its connection tasks (a `JoinSet`). When `cancel` fires it stops
//! accepting and closes its socket; an idle or handshaking connection closes at once, one
//! answering a query writes that reply and closes, and any still open after
//! [`SHUTDOWN_GRACE`] is dropped. The listener returns once every connection task has ended.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use metrics::Counter;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::serving::Answering;
use super::summary::Proto;
use super::tcp_conn::{self, BAD_REASONS, ConnCtx};
use crate::conns::accept::Accept;
use crate::conns::{Conn, Conns, ShedCounts};
use crate::telemetry::Telemetry;

/// On shutdown, how long a connection may take to send the reply it is working on.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// What a listener does with an admitted connection before framing it.
pub(crate) trait Upgrade: Send + Sync + 'static {
    /// The stream queries are read from and replies written to.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Turns the accepted connection into that stream (a handshake, for TLS), telling `conn`
    /// when the client is first heard from ([`Conn::heard`]).
    fn upgrade<'a>(
        &'a self,
        stream: TcpStream,
        conn: &'a Conn,
    ) -> impl Future<Output = std::io::Result<Self::Io>> + Send + 'a;
}

/// Plain DNS over TCP: the accepted stream as it is.
pub(crate) struct Plain;

impl Upgrade for Plain {
    type Io = TcpStream;

    fn upgrade<'a>(
        &'a self,
        stream: TcpStream,
        _conn: &'a Conn,
    ) -> impl Future<Output = std::io::Result<TcpStream>> + Send + 'a {
        std::future::ready(Ok(stream))
    }
}

/// The shed connections of `proto`, counted from 0. Plain TCP keeps its own series
/// (`sipsteer_tcp_shed_total{reason}`); the encrypted transports count under
/// `sipsteer_dns_encrypted_shed_total{transport,reason}`, and every new connection they close
/// also under `sipsteer_dns_tls_refused_total`.
pub(crate) fn shed_counts(proto: Proto, t: &Telemetry) -> ShedCounts {
    if proto == Proto::Tcp {
        return ShedCounts::new(|r| {
            at_zero(t.counter("sipsteer_tcp_shed_total", &[("reason", r)]))
        });
    }
    let tr = proto.as_str();
    ShedCounts::new(|r| {
        at_zero(t.counter(
            "sipsteer_dns_encrypted_shed_total",
            &[("transport", tr), ("reason", r)],
        ))
    })
    .also_closed(at_zero(t.counter("sipsteer_dns_tls_refused_total", &[])))
}

/// The queries of an encrypted transport (`sipsteer_dns_encrypted_queries_total{transport}`).
pub(crate) fn query_count(proto: Proto, t: &Telemetry) -> Counter {
    at_zero(t.counter(
        "sipsteer_dns_encrypted_queries_total",
        &[("transport", proto.as_str())],
    ))
}

/// Connections of `proto` closed for what they sent: `sipsteer_tcp_bad_frames_total{reason}`
/// for plain TCP, `sipsteer_dns_encrypted_bad_frames_total{transport,reason}` otherwise.
fn bad_counts(proto: Proto, t: &Telemetry) -> [Counter; 3] {
    BAD_REASONS.map(|r| {
        at_zero(if proto == Proto::Tcp {
            t.counter("sipsteer_tcp_bad_frames_total", &[("reason", r)])
        } else {
            t.counter(
                "sipsteer_dns_encrypted_bad_frames_total",
                &[("transport", proto.as_str()), ("reason", r)],
            )
        })
    })
}

fn at_zero(c: Counter) -> Counter {
    c.increment(0);
    c
}

/// What the connections of a stream transport share, besides their table.
pub(crate) struct Serving {
    /// The answer path, cloned for each connection.
    pub answering: Answering,
    /// Handshake and idle timeout, and the longest wait for a client to take its replies.
    pub idle: Duration,
    /// Fires when the listeners stop.
    pub stop: CancellationToken,
}

/// One stream listener: how it upgrades connections, the table it admits them to (shared
/// with the other listeners of its transport), its shed counts and what its connections share.
pub(crate) struct Stream<U> {
    upgrade: Arc<U>,
    table: Arc<Conns>,
    shed: ShedCounts,
    ctx: Arc<ConnCtx>,
}

impl<U: Upgrade> Stream<U> {
    /// The listener of `proto` (`Tcp` or `Tls`) on `table`.
    pub(crate) fn new(
        upgrade: U,
        table: Arc<Conns>,
        proto: Proto,
        s: Serving,
        telemetry: &Telemetry,
    ) -> Stream<U> {
        let ctx = ConnCtx {
            answering: s.answering,
            proto,
            queries: (proto != Proto::Tcp).then(|| query_count(proto, telemetry)),
            bad: bad_counts(proto, telemetry),
            idle: s.idle,
            stop: s.stop,
        };
        Stream {
            upgrade: Arc::new(upgrade),
            table,
            shed: shed_counts(proto, telemetry),
            ctx: Arc::new(ctx),
        }
    }
}

impl<U> Clone for Stream<U> {
    /// Another listener of the same transport: the same table, counters and context.
    fn clone(&self) -> Stream<U> {
        Stream {
            upgrade: self.upgrade.clone(),
            table: self.table.clone(),
            shed: self.shed.clone(),
            ctx: self.ctx.clone(),
        }
    }
}

/// Accepts connections until `cancel` fires, then waits for its connections to end.
pub(crate) async fn serve<U: Upgrade>(
    listener: TcpListener,
    stream: Stream<U>,
    telemetry: Arc<Telemetry>,
    cancel: CancellationToken,
) {
    let Stream {
        upgrade,
        table,
        shed,
        ctx,
    } = stream;
    let mut accept =
        Accept::new(ctx.proto.as_str(), &telemetry).evicting(table.clone(), shed.evicted().clone());
    let mut conns = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            x = accept.next(&listener) => x,
            Some(_) = conns.join_next() => continue,
            () = cancel.cancelled() => break,
        };
        let Some(conn) = table.admit_counted(peer.ip(), &shed) else {
            drop(stream);
            continue;
        };
        stream.set_nodelay(true).ok();
        conns.spawn(connection(stream, peer, ctx.clone(), conn, upgrade.clone()));
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

/// One connection until it ends, is evicted, or outlives the shutdown grace.
async fn connection<U: Upgrade>(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<ConnCtx>,
    conn: Conn,
    upgrade: Arc<U>,
) {
    let overdue = async {
        ctx.stop.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    let work = async {
        let handshake = tokio::time::timeout(ctx.idle, upgrade.upgrade(stream, &conn));
        // Plain TCP's upgrade is ready at once: polled first, the stop token is never
        // waited on for it.
        let io = tokio::select! {
            biased;
            r = handshake => match r {
                Ok(Ok(io)) => io,
                _ => return,
            },
            () = ctx.stop.cancelled() => return,
        };
        tcp_conn::serve(io, peer, &ctx, &conn).await;
    };
    tokio::select! {
        () = work => {}
        () = conn.evicted() => {}
        () = overdue => {}
    }
}
