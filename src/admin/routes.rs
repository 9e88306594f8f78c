//! The admin API's routes and handlers.

use std::net::IpAddr;
use std::time::SystemTime;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::json;

use super::AdminState;
use crate::health::hub::{Force, HubError};
use crate::reload::trigger::QueueError;
use crate::reload::{Outcome, Trigger};

/// Largest request body accepted (the changing endpoints take small JSON objects).
pub(super) const MAX_BODY: usize = 64 << 10;

pub(super) fn router(state: AdminState) -> Router {
    // The token is checked by a layer before any extractor runs, so a request without it is
    // answered before its body is read.
    let changing = Router::new()
        .route("/v1/reload", post(reload))
        .route("/v1/servers/{region}/{server}/state", put(set_state))
        .route("/v1/servers/{region}/{server}/load", put(set_load))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        // GET is answered ahead of the router (see `probes`); the routes serve HEAD.
        .route("/healthz", get(|| async { super::probes::healthz() }))
        .route(
            "/readyz",
            get(|State(s): State<AdminState>| async move { super::probes::readyz(&s) }),
        )
        .route("/metrics", get(metrics))
        .route("/v1/status", get(status))
        .route("/v1/explain", get(explain))
        .route("/v1/servers", get(servers))
        .route("/v1/events", get(events))
        .route("/ui", get(super::ui::index))
        .route("/ui/app.js", get(super::ui::script))
        .route("/ui/app.css", get(super::ui::style))
        .route("/ui/icon.svg", get(super::ui::icon))
        .merge(changing)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Lets a changing request through only with the right token, and refuses a body announced
/// larger than [`MAX_BODY`] before reading it.
async fn require_token(State(s): State<AdminState>, req: Request, next: Next) -> Response {
    if let Err(r) = same_origin(req.headers()) {
        return *r;
    }
    if let Err(r) = authorize(&s, req.headers()) {
        return *r;
    }
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY as u64) {
        return too_large();
    }
    next.run(req).await
}

fn too_large() -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("body larger than {MAX_BODY} bytes"),
    )
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

/// A changing request sent by a browser carries `Origin`: it must name this API (the `Host`
/// it was sent to), so a page from elsewhere cannot send one (with the bearer token as the
/// only credential, and no cookies, there is nothing for it to ride on either).
fn same_origin(headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin = origin.to_str().ok();
    let matches = match (origin.and_then(|o| o.strip_prefix("http://")), host) {
        (Some(o), Some(h)) => o.eq_ignore_ascii_case(h),
        _ => false,
    };
    if matches {
        Ok(())
    } else {
        Err(Box::new(error(
            StatusCode::FORBIDDEN,
            format!(
                "cross-origin request refused: origin `{}` is not this admin api",
                origin.unwrap_or("?")
            ),
        )))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn metrics(State(s): State<AdminState>) -> Response {
    s.hub.export_gauges();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        super::metrics::render(&s.telemetry, &s.counters, &s.reloader.shared().load()),
    )
        .into_response()
}

async fn status(State(s): State<AdminState>) -> Response {
    let snap = s.reloader.shared().load_full();
    let reload = s.reloader.status();
    let state = s.reloader.geoip_state();
    let geo = snap.steering.geo.as_ref().map(|g| {
        json!({
            "state": state,
            "path": g.path.display().to_string(),
            "database_type": g.info.database_type,
            "build_epoch": g.info.build_epoch,
            "networks": g.info.networks,
        })
    });
    let geo = geo.or_else(|| {
        let path = snap.config.geoip.as_ref()?;
        Some(json!({ "state": state, "path": path.display().to_string() }))
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
                "dnssec": super::keys::zone_keys(&snap.routing, &z.origin),
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
        "load_pull": s.puller.status(),
        "state_file": s.hub.state_file_status(),
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
    /// `json` (default) or `text`: the trace as `sipsteer explain` prints it.
    #[serde(default)]
    format: Option<String>,
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
                format!(
                    "bad query: {e} (use ?client=IP&name=NAME&type=TYPE&ecs=CIDR&format=json|text)"
                ),
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
    let text = match q.format.as_deref() {
        None | Some("json") => false,
        Some("text") => true,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("unknown format `{other}` (use json or text)"),
            );
        }
    };
    let snap = s.reloader.shared().load_full();
    let explained = crate::explain::explain(&snap, q.client, q.ecs, &q.name, rtype).map(|mut e| {
        let servers = s.hub.servers();
        crate::explain::add_certificates(&mut e, |region, server| {
            servers
                .iter()
                .find(|r| r.region == region && r.server == server)
                .and_then(|r| r.tls_certificate.as_ref())
                .map(|c| c.days_left)
        });
        e
    });
    match explained {
        Ok(e) if text => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            crate::explain::render(&e),
        )
            .into_response(),
        Ok(e) => Json(e).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    #[serde(default)]
    since: u64,
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /v1/events?since=N&limit=M`: the events numbered after `since`, oldest first.
async fn events(
    State(s): State<AdminState>,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad query: use ?since=N&limit=M (non-negative integers)",
        );
    };
    let limit = q.limit.unwrap_or(crate::events::MAX_READ);
    Json(s.hub.events().since(q.since, limit)).into_response()
}

async fn reload(State(s): State<AdminState>) -> Response {
    let rx = match s.reloader.request(Trigger::Api) {
        Ok(rx) => rx,
        Err(QueueError::Full) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "reload queue is full; a reload is already pending",
            );
        }
        Err(QueueError::Stopped) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "reload thread is not running",
            );
        }
    };
    let out = tokio::select! {
        out = rx => out,
        () = s.reloader.stopping.cancelled() => {
            return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
        }
    };
    let Ok(out) = out else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "reload thread stopped before answering",
        );
    };
    let result = out.result();
    match out {
        Outcome::Applied(g) => Json(json!({"result": result, "generation": g})).into_response(),
        Outcome::Unchanged => Json(json!({"result": result})).into_response(),
        Outcome::Rejected(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"result": result, "error": e.summary(), "errors": e.count()})),
        )
            .into_response(),
    }
}

async fn servers(State(s): State<AdminState>) -> Response {
    Json(json!({ "servers": s.hub.servers() })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateBody {
    state: String,
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

/// Longest `note` of a forced state (it is kept in the state file and shown in `/v1/servers`).
pub(super) const MAX_NOTE: usize = 1024;

/// The reply to a change of one server: its new report, or why there is none.
fn hub_reply(r: Result<crate::health::hub::ServerReport, HubError>) -> Response {
    match r {
        Ok(report) => Json(report).into_response(),
        Err(e) => {
            let code = match e {
                HubError::NotFound { .. } => StatusCode::NOT_FOUND,
                HubError::NoCapacity { .. } => StatusCode::BAD_REQUEST,
                HubError::Persist(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(code, e.to_string())
        }
    }
}

/// A changing request's body (the token was checked by [`require_token`]), read as JSON
/// whatever its content type (`curl -d` sends a form type); `shape` shows the expected JSON.
fn json_body<T: serde::de::DeserializeOwned>(
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
    shape: &str,
) -> Result<T, Box<Response>> {
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(Box::new(too_large())),
        Err(e) => {
            return Err(Box::new(error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            )));
        }
    };
    match serde_json::from_slice(&body) {
        Ok(b) => Ok(b),
        // A well-formed body of the wrong shape: serde names the field (unknown, missing or
        // of the wrong type).
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            let mut msg = e.to_string();
            if let Some(i) = msg.rfind(" at line ") {
                msg.truncate(i);
            }
            Err(Box::new(error(
                StatusCode::BAD_REQUEST,
                format!("{msg} (use {shape})"),
            )))
        }
        Err(_) => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("body must be JSON: {shape}"),
        ))),
    }
}

async fn set_state(
    State(s): State<AdminState>,
    Path((region, server)): Path<(String, String)>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body: StateBody = match json_body(body, STATE_SHAPE) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let Some(force) = Force::from_word(&body.state) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown state `{}` (use drain, up, down or clear)",
                body.state
            ),
        );
    };
    let (until, note) = match until_and_note(force, body.until, body.note) {
        Ok(x) => x,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    // The state file is written (and fsynced) before the answer: off the async workers.
    let hub = s.hub.clone();
    let set = move || hub.force(&region, &server, force, until, note);
    match tokio::task::spawn_blocking(set).await {
        Ok(r) => hub_reply(r),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("state change failed: {e}"),
        ),
    }
}

const STATE_SHAPE: &str =
    r#"{"state": "drain|up|down|clear", "until": "2026-12-01T06:00:00Z", "note": "text"}"#;

/// Checks the optional end and note of a forced state: an end in the future (read like the
/// operator state file's `until`), a note of at most [`MAX_NOTE`] bytes, neither with `clear`.
fn until_and_note(
    force: Force,
    until: Option<String>,
    note: Option<String>,
) -> Result<(Option<SystemTime>, Option<String>), String> {
    if force == Force::Clear && (until.is_some() || note.is_some()) {
        return Err("`until` and `note` go with drain, up or down, not with clear".into());
    }
    let until = match until {
        None => None,
        Some(text) => {
            let at =
                crate::config::operator::parse_until(&text).map_err(|e| format!("until: {e}"))?;
            if at <= SystemTime::now() {
                return Err(format!("until: `{text}` is in the past"));
            }
            Some(at)
        }
    };
    if note.as_ref().is_some_and(|n| n.len() > MAX_NOTE) {
        return Err(format!("note: longer than {MAX_NOTE} bytes"));
    }
    Ok((until, note))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadBody {
    #[serde(default)]
    calls: Option<u32>,
    #[serde(default)]
    cps: Option<u32>,
}

async fn set_load(
    State(s): State<AdminState>,
    Path((region, server)): Path<(String, String)>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body: LoadBody = match json_body(body, r#"{"calls": N, "cps": N}"#) {
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
