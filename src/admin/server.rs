//! The admin API's HTTP/1.1 server: its own accept loop serving the axum router through
//! hyper, so that connections are capped and every phase of one is bounded in time.
//!
//! Every connection is accepted, then admitted or closed by a [`Conns`] table: a source (an
//! IPv4 address, an IPv6 /64) holds at most [`MAX_CONNECTIONS_PER_SOURCE`] and its next one
//! is closed at once; at [`MAX_CONNECTIONS`] the idle connection (no request being handled,
//! see `service`) with the oldest request is closed for the new one, or the new one when every
//! connection is busy. So one source never takes every place, and slow request heads from
//! many sources give way to a new client. `/healthz` and `/readyz` are answered ahead of the
//! router (`probes`).
//!
//! A request head must arrive within [`HEADER_TIMEOUT`], which also closes a keep-alive
//! connection idle for that long. Once it holds one of its route's [`MAX_IN_FLIGHT`] slots, a
//! request is answered within [`REQUEST_TIMEOUT`] (408 otherwise). The wait for a slot is not
//! timed, but every slot is free again within that time; overload is never answered 503 here
//! (that status comes only from the routes themselves). A connection is asked to close after
//! [`MAX_CONNECTION_AGE`], and dropped if its last reply is not taken within
//! [`REQUEST_TIMEOUT`] more, so a client that never reads cannot keep a slot.
//!
//! The server owns its connection tasks (a `JoinSet`): on shutdown it closes its socket, asks
//! every connection to close once its request in flight is answered, and returns when all
//! have ended (a connection still open after [`SHUTDOWN_GRACE`] is dropped).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::AdminState;
use super::service::ConnService;
use crate::conns::accept::Accept;
use crate::conns::{Conn, Conns, Limits, ShedCounts};
use crate::telemetry::Telemetry;

/// Admin connections open at once.
pub const MAX_CONNECTIONS: usize = 128;
/// Admin connections open at once from one source (an IPv4 address, an IPv6 /64).
pub const MAX_CONNECTIONS_PER_SOURCE: usize = 16;
/// Longest wait for a request head (the first one, or the next on a keep-alive connection).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest time to answer one request once it holds an in-flight slot, body included.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests handled at once (per route); more wait for a slot.
const MAX_IN_FLIGHT: usize = 64;
/// After this a connection is closed once its request in flight is answered.
pub(super) const MAX_CONNECTION_AGE: Duration = Duration::from_secs(60);
/// On shutdown, how long requests in flight may still take.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Largest request head (request line and headers).
const MAX_HEAD: usize = 16 << 10;

/// Serves `app` on `listener` until `cancel` fires, then lets requests in flight finish
/// (at most [`SHUTDOWN_GRACE`]) and returns when every connection has ended.
pub(super) async fn serve(
    listener: TcpListener,
    app: Router,
    state: AdminState,
    telemetry: &Telemetry,
    cancel: CancellationToken,
) {
    let shed = ShedCounts::new(|reason| {
        telemetry.counter(
            "sipsteer_admin_connections_shed_total",
            &[("reason", reason)],
        )
    });
    let app = app.layer(
        tower::ServiceBuilder::new()
            .layer(axum::error_handling::HandleErrorLayer::new(
                |_: tower::BoxError| async { axum::http::StatusCode::REQUEST_TIMEOUT },
            ))
            .layer(tower::timeout::TimeoutLayer::new(REQUEST_TIMEOUT))
            .layer(tower::limit::ConcurrencyLimitLayer::new(MAX_IN_FLIGHT)),
    );
    let table = Conns::new(Limits {
        max: MAX_CONNECTIONS,
        per_source: MAX_CONNECTIONS_PER_SOURCE,
    });
    let mut accept =
        Accept::new("admin", telemetry).evicting(table.clone(), shed.evicted().clone());
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
        let service = ConnService {
            app: app.clone(),
            state: state.clone(),
            conn: Arc::new(conn),
        };
        conns.spawn(connection(stream, service, cancel.clone()));
    }
    drop(listener);
    // Each connection ends within SHUTDOWN_GRACE of `cancel`; the margin only guards that.
    let all = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(1), all)
        .await
        .is_err()
    {
        conns.shutdown().await;
    }
}

/// Serves one connection within the bounds above; an evicted connection is closed at once
/// (it was idle when the table chose it).
async fn connection(stream: TcpStream, service: ConnService, cancel: CancellationToken) {
    stream.set_nodelay(true).ok();
    let entry: Arc<Conn> = service.conn.clone();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let evicted = entry.evicted();
    tokio::pin!(evicted);
    // Biased: once evicted, a connection serves nothing more, even with a request ready.
    let grace = tokio::select! {
        biased;
        () = evicted.as_mut() => return,
        _ = conn.as_mut() => return,
        () = cancel.cancelled() => SHUTDOWN_GRACE,
        () = tokio::time::sleep(MAX_CONNECTION_AGE) => REQUEST_TIMEOUT,
    };
    conn.as_mut().graceful_shutdown();
    tokio::select! {
        biased;
        () = evicted => {}
        _ = tokio::time::timeout(grace, conn) => {}
    }
}
