//! A client for a running instance's admin API (`explain --live`): one HTTP/1.1 GET through
//! hyper, bounded in time ([`TIMEOUT`]) and in size ([`MAX_BODY`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use crate::dns::snapshot::Snapshot;
use crate::steering::{HealthView, Status};

/// Largest reply body read.
pub const MAX_BODY: usize = 16 << 20;
/// Longest wait for the whole exchange.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The `host:port` of an admin url such as `http://127.0.0.1:8053`.
fn authority(base: &str) -> Result<String> {
    let bad = || anyhow!("admin url `{base}` must look like http://127.0.0.1:8053");
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
pub async fn get(base: &str, path: &str) -> Result<String> {
    let hostport = authority(base)?;
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(&hostport)
            .await
            .with_context(|| format!("cannot connect to admin api {hostport}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("http handshake with {hostport} failed"))?;
        tokio::spawn(conn);
        let req = hyper::Request::get(path)
            .header(hyper::header::HOST, &hostport)
            .body(Empty::<Bytes>::new())
            .context("bad admin request")?;
        let reply = sender
            .send_request(req)
            .await
            .with_context(|| format!("admin api {hostport} did not answer {path}"))?;
        let status = reply.status();
        let body = Limited::new(reply.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| anyhow!("cannot read the reply of {hostport}{path}: {e}"))?
            .to_bytes();
        anyhow::Ok((status, body))
    };
    let (status, body) = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .with_context(|| format!("admin api {hostport} did not answer within {TIMEOUT:?}"))??;
    if status != hyper::StatusCode::OK {
        bail!("admin api {hostport} answered {status} to {path}");
    }
    String::from_utf8(body.to_vec())
        .with_context(|| format!("admin api {hostport} sent a reply to {path} that is not utf-8"))
}

/// The snapshot with server states read from a running instance.
pub async fn with_live_health(snap: Snapshot, base: &str) -> Result<Snapshot> {
    let body = get(base, "/v1/servers").await?;
    let v: serde_json::Value =
        serde_json::from_str(&body).context("admin api sent malformed json")?;
    let mut live: HashMap<(String, String), Status> = HashMap::new();
    for s in v["servers"].as_array().into_iter().flatten() {
        let state: Option<Status> = serde_json::from_value(s["state"].clone()).ok();
        if let (Some(r), Some(n), Some(st)) = (s["region"].as_str(), s["server"].as_str(), state) {
            live.insert((r.to_owned(), n.to_owned()), st);
        }
    }
    let mut view = HealthView::all_up(snap.steering.slots);
    for r in &snap.steering.regions {
        for s in &r.servers {
            if let Some(st) = live.get(&(r.name.clone(), s.name.clone())) {
                view.status[s.slot] = *st;
            }
        }
    }
    Ok(snap.with_health(Arc::new(view)))
}
