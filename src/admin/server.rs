//! The admin API's HTTP/1.1 server: its own accept loop serving the axum router through
//! hyper, so that connections are capped and every phase of one is bounded in time.
//!
//! At [`MAX_CONNECTIONS`] a new connection is closed at once. A request head must arrive
//! within [`HEADER_TIMEOUT`], which also closes a keep-alive connection idle for that long.
//! Once it holds one of its route's [`MAX_IN_FLIGHT`] slots, a request is answered within
//! [`REQUEST_TIMEOUT`] (408 otherwise). The wait for a slot is not timed, but every slot is
//! free again within that time; overload is never answered 503 here (that status comes only
//! from the routes themselves). A connection is asked to close after [`MAX_CONNECTION_AGE`],
//! and dropped if its last reply is not taken within [`REQUEST_TIMEOUT`] more, so a client
//! that never reads cannot keep a slot.
//!
//! The server owns its connection tasks (a `JoinSet`): on shutdown it closes its socket, asks
//! every connection to close once its request in flight is answered, and returns when all
//! have ended (a connection still open after [`SHUTDOWN_GRACE`] is dropped).

use crate::telemetry::Telemetry;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Admin connections open at once.
pub const MAX_CONNECTIONS: usize = 128;
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
    telemetry: &Telemetry,
    cancel: CancellationToken,
) {
    let shed = telemetry.counter("sipsteer_admin_connections_shed_total", &[]);
    let app = app.layer(
        tower::ServiceBuilder::new()
            .layer(axum::error_handling::HandleErrorLayer::new(
                |_: tower::BoxError| async { axum::http::StatusCode::REQUEST_TIMEOUT },
            ))
            .layer(tower::timeout::TimeoutLayer::new(REQUEST_TIMEOUT))
            .layer(tower::limit::ConcurrencyLimitLayer::new(MAX_IN_FLIGHT)),
    );
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::debug!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            Some(_) = conns.join_next() => continue,
            () = cancel.cancelled() => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            shed.increment(1);
            drop(stream);
            continue;
        };
        conns.spawn(connection(stream, app.clone(), cancel.clone(), permit));
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

/// Serves one connection within the bounds above.
async fn connection(
    stream: TcpStream,
    app: Router,
    cancel: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    stream.set_nodelay(true).ok();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD);
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    tokio::pin!(conn);
    let grace = tokio::select! {
        _ = conn.as_mut() => return,
        () = cancel.cancelled() => SHUTDOWN_GRACE,
        () = tokio::time::sleep(MAX_CONNECTION_AGE) => REQUEST_TIMEOUT,
    };
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(grace, conn).await;
}
