//! A minimal client for a running instance's admin API (`explain --live`): one HTTP/1.1 GET
//! on loopback, bounded in size and time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::snapshot::Snapshot;
use crate::steering::{HealthView, Status};

const MAX_BODY: usize = 16 << 20;

/// `GET http://host:port/path`, returning the body of a 200 reply.
pub async fn get(base: &str, path: &str) -> Result<String> {
    let hostport = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    if hostport.contains('/') || base.starts_with("https://") {
        bail!("admin url must look like http://127.0.0.1:8053");
    }
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(&hostport)
            .await
            .with_context(|| format!("cannot connect to {hostport}"))?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        (&mut s).take(MAX_BODY as u64).read_to_end(&mut buf).await?;
        anyhow::Ok(buf)
    };
    let buf = tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .context("admin api did not answer within 5s")??;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("malformed http reply")?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("admin api answered {}", head.lines().next().unwrap_or(""));
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Ok(dechunk(body));
    }
    Ok(body.to_owned())
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
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
