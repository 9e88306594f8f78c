//! The admin API's routes and handlers.

use std::net::IpAddr;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::json;

use super::AdminState;
use crate::health::hub::{Force, HubError};

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/status", get(status))
        .route("/v1/explain", get(explain))
        .route("/v1/reload", post(reload))
        .route("/v1/servers", get(servers))
        .route("/v1/servers/{region}/{server}/state", put(set_state))
        .route("/v1/servers/{region}/{server}/load", put(set_load))
        .with_state(state)
}

fn error(code: StatusCode, msg: impl Into<String>) -> Response {
    (code, Json(json!({ "error": msg.into() }))).into_response()
}

/// Changing endpoints: the bearer token must match; with no token configured they are off.
fn authorize(state: &AdminState, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some(token) = &state.token else {
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "changing endpoints are disabled: set admin.token or SIPSTEER_ADMIN_TOKEN",
        )));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(g) if constant_time_eq(g.as_bytes(), token.as_bytes()) => Ok(()),
        _ => Err(Box::new(
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                Json(json!({ "error": "missing or wrong bearer token" })),
            )
                .into_response(),
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn readyz(State(s): State<AdminState>) -> Response {
    if s.hub.ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "first probe round not finished\n",
        )
            .into_response()
    }
}

async fn metrics(State(s): State<AdminState>) -> Response {
    s.hub.export_gauges();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        super::metrics::render(),
    )
        .into_response()
}

async fn status(State(s): State<AdminState>) -> Response {
    let snap = s.reloader.shared().load_full();
    let reload = s.reloader.status();
    let geo = snap.steering.geo.as_ref().map(|g| {
        json!({
            "path": g.path.display().to_string(),
            "database_type": g.info.database_type,
            "build_epoch": g.info.build_epoch,
            "networks": g.info.networks,
        })
    });
    let zones: Vec<_> = snap
        .config
        .zones
        .iter()
        .map(|z| {
            json!({
                "zone": z.origin.to_string(),
                "file": z.file.display().to_string(),
                "serial": z.soa.serial,
                "records": z.records.len(),
                "services": z.services.iter().map(|s| s.name.to_string()).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "generation": snap.generation,
        "reload": reload,
        "geoip": geo,
        "zones": zones,
        "servers": s.hub.servers(),
    }))
    .into_response()
}

#[derive(Deserialize)]
struct ExplainQuery {
    client: IpAddr,
    name: String,
    #[serde(rename = "type", default)]
    rtype: Option<String>,
    #[serde(default)]
    ecs: Option<ipnet::IpNet>,
}

async fn explain(
    State(s): State<AdminState>,
    q: Result<Query<ExplainQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("bad query: {e} (use ?client=IP&name=NAME&type=TYPE&ecs=CIDR)"),
            );
        }
    };
    let rtype = q.rtype.as_deref().unwrap_or("A").to_ascii_uppercase();
    let Ok(rtype) = rtype.parse::<hickory_proto::rr::RecordType>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("unknown record type `{rtype}`"),
        );
    };
    let snap = s.reloader.shared().load_full();
    match crate::explain::explain(&snap, q.client, q.ecs, &q.name, rtype) {
        Ok(e) => Json(e).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

async fn reload(State(s): State<AdminState>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&s, &headers) {
        return *r;
    }
    let r = s.reloader.clone();
    let out = tokio::task::spawn_blocking(move || r.reload("api")).await;
    match out {
        Ok(crate::app::Outcome::Applied(g)) => {
            Json(json!({"result": "ok", "generation": g})).into_response()
        }
        Ok(crate::app::Outcome::Unchanged) => Json(json!({"result": "unchanged"})).into_response(),
        Ok(crate::app::Outcome::Rejected(e)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"result": "error", "error": e})),
        )
            .into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reload failed: {e}"),
        ),
    }
}

async fn servers(State(s): State<AdminState>) -> Response {
    Json(json!({ "servers": s.hub.servers() })).into_response()
}

#[derive(Deserialize)]
struct StateBody {
    state: String,
}

/// The reply to a change of one server: its new report, or why there is none.
fn hub_reply(r: Result<crate::health::hub::ServerReport, HubError>) -> Response {
    match r {
        Ok(report) => Json(report).into_response(),
        Err(HubError::NotFound(what)) => error(StatusCode::NOT_FOUND, what),
        Err(HubError::Invalid(what)) => error(StatusCode::BAD_REQUEST, what),
    }
}

/// A changing request's body, once the token is checked; `shape` shows the expected JSON.
/// The body is read as JSON whatever its content type (`curl -d` sends a form type).
fn authorized_body<T: serde::de::DeserializeOwned>(
    s: &AdminState,
    headers: &HeaderMap,
    body: &[u8],
    shape: &str,
) -> Result<T, Box<Response>> {
    authorize(s, headers)?;
    match serde_json::from_slice(body) {
        Ok(b) => Ok(b),
        Err(_) => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("body must be JSON: {shape}"),
        ))),
    }
}

async fn set_state(
    State(s): State<AdminState>,
    Path((region, server)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let body: StateBody =
        match authorized_body(&s, &headers, &body, r#"{"state": "drain|up|down|clear"}"#) {
            Ok(b) => b,
            Err(r) => return *r,
        };
    let force = match body.state.as_str() {
        "drain" => Force::Drain,
        "up" => Force::Up,
        "down" => Force::Down,
        "clear" => Force::Clear,
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("unknown state `{other}` (use drain, up, down or clear)"),
            );
        }
    };
    hub_reply(s.hub.force(&region, &server, force))
}

#[derive(Deserialize)]
struct LoadBody {
    #[serde(default)]
    calls: Option<u32>,
    #[serde(default)]
    cps: Option<u32>,
}

async fn set_load(
    State(s): State<AdminState>,
    Path((region, server)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let body: LoadBody = match authorized_body(&s, &headers, &body, r#"{"calls": N, "cps": N}"#) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    if body.calls.is_none() && body.cps.is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "a load report needs calls and/or cps",
        );
    }
    hub_reply(s.hub.load(&region, &server, body.calls, body.cps))
}
