//! The admin HTTP API: health, readiness, metrics, status, explain, server state and load,
//! reload, the event log, and the operator page at `/ui`. Reading endpoints are open; changing ones need `Authorization: Bearer <token>`,
//! and are switched off when no token is configured.

pub mod client;
mod keys;
pub mod metrics;
mod probes;
mod routes;
mod server;
mod service;
mod ui;

pub use server::{HEADER_TIMEOUT, MAX_CONNECTIONS, MAX_CONNECTIONS_PER_SOURCE};

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::dns::stats::Counters;
use crate::health::hub::HealthHub;
use crate::health::load_pull::LoadPuller;
use crate::reload::Reloader;
use crate::telemetry::Telemetry;

/// What the handlers share.
#[derive(Clone)]
pub struct AdminState {
    pub reloader: Arc<Reloader>,
    pub hub: Arc<HealthHub>,
    /// The load puller, whose status `/v1/status` shows.
    pub puller: Arc<LoadPuller>,
    pub token: Option<Arc<str>>,
    pub telemetry: Arc<Telemetry>,
    pub counters: Arc<Counters>,
}

/// Serves the API on `listener` until `cancel` fires (see `server`).
pub async fn serve(listener: TcpListener, state: AdminState, cancel: CancellationToken) {
    let telemetry = state.telemetry.clone();
    let app = routes::router(state.clone());
    server::serve(listener, app, state, &telemetry, cancel).await;
}

/// Binds the admin listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
