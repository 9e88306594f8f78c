//! Load pulled from Prometheus: every `load.interval`, one instant query per distinct PromQL
//! string (a template without per-server variables is one query for every server), each
//! server's series picked out by its label, fed to the hub exactly like a pushed load report.
//! When Prometheus cannot be reached or a query fails, no report is made, so the last one
//! expires after `capacity.report_ttl` and the server's load becomes unknown (fail open).
//! The puller owns its query tasks and its HTTP client's connection tasks: it stops and waits
//! for them when cancelled.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::hub::HealthHub;
use crate::config::load_source::{LoadSource, ServerQueries};

/// Largest query result read (a vector of a few thousand series fits easily).
pub(crate) const MAX_BODY: usize = 8 << 20;
/// Queries in flight at once.
const MAX_IN_FLIGHT: usize = 8;

/// What `/v1/status` shows about pulled load.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PullStatus {
    pub url: String,
    pub servers: usize,
    /// Distinct queries sent per interval.
    pub queries_per_interval: usize,
    pub last_attempt_unix: u64,
    pub last_success_unix: u64,
    pub last_error: Option<String>,
    pub queries_ok: u64,
    pub queries_failed: u64,
}

/// One series of an instant query's result.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Series {
    pub labels: HashMap<String, String>,
    pub value: f64,
}

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// Runs the HTTP client's background tasks (its connections) in a set the puller owns.
#[derive(Clone, Default)]
struct Owned(Arc<Mutex<JoinSet<()>>>);

impl<F> hyper::rt::Executor<F> for Owned
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        let mut set = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        while set.try_join_next().is_some() {}
        set.spawn(async move {
            fut.await;
        });
    }
}

/// Polls until `cancel` fires, following the load source of the config the hub is bound to;
/// then
/// stops its queries and connections and waits for them.
pub(crate) async fn run(hub: Arc<HealthHub>, cancel: CancellationToken) {
    let owned = Owned::default();
    let client: HttpClient = Client::builder(owned.clone()).build_http();
    poll(&client, &hub, &cancel).await;
    drop(client);
    let mut set = std::mem::take(&mut *owned.0.lock().unwrap_or_else(PoisonError::into_inner));
    set.shutdown().await;
}

async fn poll(client: &HttpClient, hub: &HealthHub, cancel: &CancellationToken) {
    loop {
        let source = hub.load_source();
        let wait = match source {
            Some(src) => {
                if !poll_once(client, &src, hub, cancel).await {
                    return;
                }
                src.interval
            }
            None => Duration::from_secs(1),
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = cancel.cancelled() => return,
        }
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One round: every distinct query once, then one load report per server that got a value.
/// Why one query brought no load; shown after the query and the Prometheus url it went to.
#[derive(Debug, PartialEq, thiserror::Error)]
pub(crate) enum PullError {
    #[error("bad url: {0}")]
    BadUrl(String),
    #[error("cannot reach prometheus: {0}")]
    Unreachable(String),
    #[error("cannot read the reply: {0}")]
    Body(String),
    #[error("no reply within {}ms", .0.as_millis())]
    Timeout(Duration),
    #[error("reply is not JSON: {0}")]
    NotJson(String),
    /// Prometheus answered with an error of its own.
    #[error("prometheus says: {0}")]
    Failed(String),
    #[error("unsupported result type {0} (use an instant vector or scalar query)")]
    ResultType(String),
    /// A reply that was not a success, with what its body said.
    #[error("http {status}: {error}")]
    Status { status: u16, error: Box<PullError> },
}

/// False when `cancel` fired first (the queries in flight are stopped and waited for).
async fn poll_once(
    client: &HttpClient,
    src: &LoadSource,
    hub: &HealthHub,
    cancel: &CancellationToken,
) -> bool {
    let mut users: HashMap<&str, usize> = HashMap::new();
    for s in &src.servers {
        for q in [&s.calls, &s.cps].into_iter().flatten() {
            *users.entry(q.as_str()).or_default() += 1;
        }
    }
    let mut results: HashMap<String, Result<Vec<Series>, PullError>> = HashMap::new();
    let mut pending: Vec<String> = users.keys().map(|q| (*q).to_owned()).collect();
    let mut set = JoinSet::new();
    while !pending.is_empty() || !set.is_empty() {
        while set.len() < MAX_IN_FLIGHT
            && let Some(q) = pending.pop()
        {
            let (client, url, timeout) = (client.clone(), src.url.clone(), src.timeout);
            set.spawn(async move {
                let r = query(&client, &url, &q, timeout).await;
                (q, r)
            });
        }
        let next = tokio::select! {
            r = set.join_next() => r,
            () = cancel.cancelled() => {
                set.shutdown().await;
                return false;
            }
        };
        if let Some(Ok((q, r))) = next {
            results.insert(q, r);
        }
    }
    let (ok, failed) = results.values().fold((0u64, 0u64), |(o, f), r| match r {
        Ok(_) => (o + 1, f),
        Err(_) => (o, f + 1),
    });
    let t = &hub.telemetry;
    t.counter("sipsteer_load_queries_total", &[("result", "ok")])
        .increment(ok);
    t.counter("sipsteer_load_queries_total", &[("result", "error")])
        .increment(failed);
    for s in &src.servers {
        let calls = value_for(s, s.calls.as_deref(), &results, &users);
        let cps = value_for(s, s.cps.as_deref(), &results, &users);
        if calls.is_some() || cps.is_some() {
            let _ = hub.load(&s.region, &s.server, calls, cps);
        }
    }
    let first_error = results.iter().find_map(|(q, r)| {
        r.as_ref()
            .err()
            .map(|e| format!("query `{q}` to {}: {e}", src.url))
    });
    let now = now_unix();
    hub.update_pull_status(|st| {
        st.url.clone_from(&src.url);
        st.servers = src.servers.len();
        st.queries_per_interval = users.len();
        st.last_attempt_unix = now;
        st.queries_ok += ok;
        st.queries_failed += failed;
        if failed == 0 {
            st.last_success_unix = now;
        }
        if st.last_error != first_error {
            if let Some(e) = &first_error {
                tracing::warn!(
                    "load from prometheus failed (loads expire after capacity.report_ttl): {e}"
                );
            } else if st.last_error.is_some() {
                tracing::info!(url = %src.url, "load from prometheus works again");
            }
        }
        st.last_error = first_error;
    });
    if failed == 0 {
        t.gauge("sipsteer_load_last_success_timestamp_seconds", &[])
            .set(now as f64);
    }
    true
}

/// The value of one server's query: the series carrying its label, or the only series of a
/// query that no other server shares.
fn value_for(
    s: &ServerQueries,
    q: Option<&str>,
    results: &HashMap<String, Result<Vec<Series>, PullError>>,
    users: &HashMap<&str, usize>,
) -> Option<u32> {
    let q = q?;
    let series = results.get(q)?.as_ref().ok()?;
    let v = match series.as_slice() {
        [only] if users.get(q) == Some(&1) => only.value,
        many => {
            many.iter()
                .find(|x| x.labels.get(&s.label) == Some(&s.value))?
                .value
        }
    };
    (v.is_finite() && v >= 0.0).then(|| v.round().min(f64::from(u32::MAX)) as u32)
}

/// One instant query: `GET /api/v1/query?query=…`, bounded in time and size.
pub(crate) async fn query(
    client: &HttpClient,
    base: &str,
    promql: &str,
    timeout: Duration,
) -> Result<Vec<Series>, PullError> {
    let qs: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("query", promql)
        .finish();
    let uri: hyper::Uri = format!("{base}/api/v1/query?{qs}")
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| PullError::BadUrl(e.to_string()))?;
    let fut = async {
        let resp = client
            .get(uri)
            .await
            .map_err(|e| PullError::Unreachable(error_chain(&e)))?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| PullError::Body(e.to_string()))?
            .to_bytes();
        Ok::<_, PullError>((status, body))
    };
    let (status, body) = tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| PullError::Timeout(timeout))??;
    parse(&body).map_err(|e| {
        if status.is_success() {
            e
        } else {
            PullError::Status {
                status: status.as_u16(),
                error: Box::new(e),
            }
        }
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

/// Parses the JSON of an instant query (vector or scalar).
pub(crate) fn parse(body: &[u8]) -> Result<Vec<Series>, PullError> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| PullError::NotJson(e.to_string()))?;
    if v["status"] != "success" {
        let msg = v["error"].as_str().unwrap_or("query failed");
        return Err(PullError::Failed(msg.to_owned()));
    }
    let data = &v["data"];
    let sample = |x: &serde_json::Value| -> Option<f64> { x.get(1)?.as_str()?.parse().ok() };
    match data["resultType"].as_str() {
        Some("vector") => Ok(data["result"]
            .as_array()
            .map(std::vec::Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|s| {
                let labels = s["metric"]
                    .as_object()?
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect();
                Some(Series {
                    labels,
                    value: sample(&s["value"])?,
                })
            })
            .collect()),
        Some("scalar") => Ok(sample(&data["result"])
            .map(|value| Series {
                labels: HashMap::new(),
                value,
            })
            .into_iter()
            .collect()),
        other => Err(PullError::ResultType(other.unwrap_or("none").to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vector_scalar_and_errors() {
        let v = parse(br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"server":"lon1"},"value":[1.5,"850"]},{"metric":{"server":"fra1"},"value":[1.5,"NaN"]}]}}"#).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].labels["server"], "lon1");
        assert_eq!(v[0].value, 850.0);
        assert!(v[1].value.is_nan());
        let s = parse(br#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"3"]}}"#)
            .unwrap();
        assert_eq!(s[0].value, 3.0);
        let e =
            parse(br#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#);
        assert_eq!(
            e.map_err(|e| e.to_string()),
            Err("prometheus says: parse error at char 3".into())
        );
        assert!(
            parse(b"<html>")
                .unwrap_err()
                .to_string()
                .starts_with("reply is not JSON")
        );
    }

    #[test]
    fn picks_series_by_label_or_alone() {
        let s = ServerQueries {
            region: "uk".into(),
            server: "lon1".into(),
            calls: Some("q1".into()),
            cps: Some("q2".into()),
            label: "server".into(),
            value: "lon1".into(),
        };
        let series = |l: &str, v: f64| Series {
            labels: [("server".to_owned(), l.to_owned())].into(),
            value: v,
        };
        let results = HashMap::from([
            (
                "q1".to_owned(),
                Ok(vec![series("fra1", 10.0), series("lon1", 849.6)]),
            ),
            ("q2".to_owned(), Ok(vec![series("other", 7.0)])),
        ]);
        let mut users = HashMap::from([("q1", 2), ("q2", 1)]);
        assert_eq!(value_for(&s, Some("q1"), &results, &users), Some(850));
        assert_eq!(value_for(&s, Some("q2"), &results, &users), Some(7));
        users.insert("q2", 2);
        assert_eq!(value_for(&s, Some("q2"), &results, &users), None);
    }
}
