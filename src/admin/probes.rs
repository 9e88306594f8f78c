//! The liveness and readiness answers (`GET /healthz`, `GET /readyz`). The connection's
//! service answers them before the router, so they never wait for an in-flight slot or sit
//! behind the request timeout. They read the served snapshot and the hub's readiness flag
//! without a lock; only while a GeoIP database is loading or failed, the reload status, whose
//! lock is held for field reads and writes alone (never across a reload or a log line).

use axum::http::{Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AdminState;
use crate::reload::GeoState;

/// The answer to a liveness or readiness probe, or `None` for any other request.
pub(super) fn answer<B>(req: &Request<B>, s: &AdminState) -> Option<Response> {
    if req.method() != Method::GET {
        return None;
    }
    match req.uri().path() {
        "/healthz" => Some(healthz()),
        "/readyz" => Some(readyz(s)),
        _ => None,
    }
}

/// Alive while the process answers.
pub(super) fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

/// Ready once the GeoIP database (if any) is in and every probed server has had a result.
pub(super) fn readyz(s: &AdminState) -> Response {
    let geo = s.reloader.geoip_state();
    if matches!(geo, Some(GeoState::Loading | GeoState::Failed)) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "geoip database not loaded yet\n",
        )
            .into_response()
    } else if s.hub.ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "first probe round not finished\n",
        )
            .into_response()
    }
}
