//! A client for a running instance's admin API (`explain --live`, `sipsteer ctl`): one
//! HTTP/1.1 request through hyper, bounded in time ([`TIMEOUT`]) and in size ([`MAX_BODY`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use crate::dns::snapshot::Snapshot;
use crate::steering::{HealthView, Status};

/// Largest reply body read.
pub const MAX_BODY: usize = 16 << 20;
/// Longest wait for the whole exchange.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Why the admin API of a running instance could not be read; names its address.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("admin url `{0}` must look like http://127.0.0.1:8053")]
    BadUrl(String),
    #[error("cannot connect to admin api {hostport}")]
    Connect {
        hostport: String,
        source: std::io::Error,
    },
    #[error("http handshake with {hostport} failed")]
    Handshake {
        hostport: String,
        source: hyper::Error,
    },
    #[error("bad admin request to {hostport}")]
    Request {
        hostport: String,
        source: hyper::http::Error,
    },
    #[error("admin api {hostport} did not answer {path}")]
    NoAnswer {
        hostport: String,
        path: String,
        source: hyper::Error,
    },
    #[error("cannot read the reply of {hostport}{path}: {reason}")]
    Body {
        hostport: String,
        path: String,
        reason: String,
    },
    #[error("admin api {hostport} did not answer within {TIMEOUT:?}")]
    Timeout { hostport: String },
    #[error("admin api {hostport} answered {status} to {path}")]
    Status {
        hostport: String,
        status: hyper::StatusCode,
        path: String,
    },
    #[error("admin api {hostport} sent a reply to {path} that is not utf-8")]
    NotUtf8 {
        hostport: String,
        path: String,
        source: std::string::FromUtf8Error,
    },
    #[error("admin api {base} sent malformed json")]
    Json {
        base: String,
        source: serde_json::Error,
    },
}

impl ClientError {
    /// Nothing answered: no connection, no HTTP exchange, or no reply in time.
    pub fn unreachable(&self) -> bool {
        matches!(
            self,
            ClientError::Connect { .. }
                | ClientError::Handshake { .. }
                | ClientError::NoAnswer { .. }
                | ClientError::Timeout { .. }
        )
    }
}

/// The `host:port` of an admin url such as `http://127.0.0.1:8053`.
fn authority(base: &str) -> Result<String, ClientError> {
    let bad = || ClientError::BadUrl(base.to_owned());
    let uri: hyper::Uri = base.parse().map_err(|_| bad())?;
    if uri.scheme_str() != Some("http") || !matches!(uri.path(), "" | "/") {
        return Err(bad());
    }
    let auth = uri.authority().ok_or_else(bad)?;
    if auth.port().is_none() {
        return Err(bad());
    }
    Ok(auth.as_str().to_owned())
}

/// `GET http://host:port/path`, returning the body of a 200 reply.
pub async fn get(base: &str, path: &str) -> Result<String, ClientError> {
    let hostport = authority(base)?;
    let (status, body) = request(&hostport, hyper::Method::GET, path, None, None).await?;
    if status != hyper::StatusCode::OK {
        return Err(ClientError::Status {
            hostport,
            status,
            path: path.to_owned(),
        });
    }
    Ok(body)
}

/// A reply of the admin API, whatever its status.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

/// A request method `send` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Put,
    Post,
}

/// One request to `http://host:port/path`, with the bearer `token` and a JSON `body` when
/// given; the reply whatever its status.
pub async fn send(
    base: &str,
    verb: Verb,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> Result<Reply, ClientError> {
    let hostport = authority(base)?;
    let method = match verb {
        Verb::Get => hyper::Method::GET,
        Verb::Put => hyper::Method::PUT,
        Verb::Post => hyper::Method::POST,
    };
    let (status, body) = request(&hostport, method, path, token, body).await?;
    Ok(Reply {
        status: status.as_u16(),
        body,
    })
}

/// One request within [`TIMEOUT`]; the status and the body as text.
async fn request(
    hostport: &str,
    method: hyper::Method,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> Result<(hyper::StatusCode, String), ClientError> {
    let ask = Ask {
        hostport,
        method,
        path,
        token,
        body,
    };
    let (status, body) = tokio::time::timeout(TIMEOUT, exchange(ask))
        .await
        .map_err(|_| ClientError::Timeout {
            hostport: hostport.to_owned(),
        })??;
    let body = String::from_utf8(body.to_vec()).map_err(|source| ClientError::NotUtf8 {
        hostport: hostport.to_owned(),
        path: path.to_owned(),
        source,
    })?;
    Ok((status, body))
}

/// One request as [`exchange`] sends it.
struct Ask<'a> {
    hostport: &'a str,
    method: hyper::Method,
    path: &'a str,
    token: Option<&'a str>,
    body: Option<String>,
}

/// One request and its whole reply body (bounded by [`MAX_BODY`]).
async fn exchange(ask: Ask<'_>) -> Result<(hyper::StatusCode, Bytes), ClientError> {
    let Ask {
        hostport,
        method,
        path,
        token,
        body,
    } = ask;
    let hostport_owned = || hostport.to_owned();
    let stream = tokio::net::TcpStream::connect(hostport)
        .await
        .map_err(|source| ClientError::Connect {
            hostport: hostport_owned(),
            source,
        })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|source| ClientError::Handshake {
            hostport: hostport_owned(),
            source,
        })?;
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, hostport);
    if let Some(t) = token {
        req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if body.is_some() {
        req = req.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|source| ClientError::Request {
            hostport: hostport_owned(),
            source,
        })?;
    let reply = sender
        .send_request(req)
        .await
        .map_err(|source| ClientError::NoAnswer {
            hostport: hostport_owned(),
            path: path.to_owned(),
            source,
        })?;
    let status = reply.status();
    let body = Limited::new(reply.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| ClientError::Body {
            hostport: hostport_owned(),
            path: path.to_owned(),
            reason: e.to_string(),
        })?
        .to_bytes();
    Ok((status, body))
}

/// The transports (a mask) a server with health per transport is not answered on, from its
/// `transports` in `/v1/servers`.
fn not_on(transports: &serde_json::Value) -> u8 {
    let mut mask = 0;
    for t in transports.as_array().into_iter().flatten() {
        let state: Option<Status> = serde_json::from_value(t["state"].clone()).ok();
        let transport = crate::config::Transport::ALL
            .into_iter()
            .find(|x| t["transport"].as_str() == Some(x.as_str()));
        if let (Some(st), Some(tr)) = (state, transport)
            && !st.serves()
        {
            mask |= tr.bit();
        }
    }
    mask
}

/// The snapshot with server states read from a running instance (with the transports a
/// server with health per transport is not answered on).
pub async fn with_live_health(snap: Snapshot, base: &str) -> Result<Snapshot, ClientError> {
    let body = get(base, "/v1/servers").await?;
    let v: serde_json::Value = serde_json::from_str(&body).map_err(|source| ClientError::Json {
        base: base.to_owned(),
        source,
    })?;
    let mut live: HashMap<(String, String), (Status, Option<f64>, u8)> = HashMap::new();
    for s in v["servers"].as_array().into_iter().flatten() {
        let state: Option<Status> = serde_json::from_value(s["state"].clone()).ok();
        if let (Some(r), Some(n), Some(st)) = (s["region"].as_str(), s["server"].as_str(), state) {
            let not_on = not_on(&s["transports"]);
            live.insert(
                (r.to_owned(), n.to_owned()),
                (st, s["shed"].as_f64(), not_on),
            );
        }
    }
    let mut view = HealthView::all_up(snap.steering.slots);
    for r in &snap.steering.regions {
        for s in &r.servers {
            if let Some((st, shed, not_on)) = live.get(&(r.name.clone(), s.name.clone())) {
                view.status[s.slot] = *st;
                view.shed[s.slot] = shed.map_or(0, crate::steering::threshold);
                view.not_on[s.slot] = *not_on;
            }
        }
    }
    view.shedding = view.shed.iter().any(|&t| t != 0);
    let snap = snap.with_health(Arc::new(view));
    crate::dns::presign::presign(&snap);
    Ok(snap)
}
