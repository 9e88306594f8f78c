//! The admin HTTP API: health, readiness, metrics, status, explain, server state and load,
//! reload. Reading endpoints are open; changing ones need `Authorization: Bearer <token>`,
//! and are switched off when no token is configured.

pub mod client;
pub mod metrics;
mod routes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::Reloader;
use crate::health::hub::HealthHub;

/// Requests served at once; more wait for a slot.
const MAX_IN_FLIGHT: usize = 64;
/// A request that takes longer is answered 408/503 and dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What the handlers share.
#[derive(Clone)]
pub struct AdminState {
    pub reloader: Arc<Reloader>,
    pub hub: Arc<HealthHub>,
    pub token: Option<Arc<str>>,
}

/// Serves the API on `listener` until `cancel` fires.
pub async fn serve(listener: TcpListener, state: AdminState, cancel: CancellationToken) {
    let app = routes::router(state).layer(
        tower::ServiceBuilder::new()
            .layer(axum::error_handling::HandleErrorLayer::new(
                |_: tower::BoxError| async { axum::http::StatusCode::REQUEST_TIMEOUT },
            ))
            .layer(tower::timeout::TimeoutLayer::new(REQUEST_TIMEOUT))
            .layer(tower::limit::ConcurrencyLimitLayer::new(MAX_IN_FLIGHT)),
    );
    let addr = listener.local_addr().ok();
    let r = axum::serve(listener, app)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await;
    if let Err(e) = r {
        tracing::error!(error = %e, ?addr, "admin api stopped");
    }
}

/// Binds the admin listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
