//! The HTTP side of a query: the client (plain HTTP or HTTPS through rustls with the ring
//! provider; the built-in Mozilla roots from `webpki-roots`, or the config's CA file in their
//! place; the server name checked against the URL's host as usual), the `Authorization`
//! header, and the reply's body handed chunk by chunk to the reply reader on a blocking
//! thread. The body is bounded in bytes and the whole query in time; the reader holds at
//! most [`CHUNKS`] chunks it has not read yet.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Empty};
use hyper::StatusCode;
use hyper::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::pki_types::CertificateDer;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::reply::{Matcher, Reply, ReplyError, read_reply};
use crate::config::load_source::LoadSource;
use crate::lock::guard;

/// Body chunks queued for the reader.
const CHUNKS: usize = 2;
/// Bytes of a failed reply's body kept to show what it said.
const SHOWN: usize = 200;

pub(super) type HttpClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

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
    #[error("reply is larger than {0} bytes (load.max_bytes)")]
    TooLarge(u64),
    #[error(transparent)]
    Reply(#[from] ReplyError),
    /// The body of a reply that was not a success, when it was not a Prometheus error.
    #[error("{}", quoted(.0))]
    Said(String),
    /// A reply that was not a success, with what its body said.
    #[error("http {status}: {error}")]
    Status { status: u16, error: Box<PullError> },
    #[error("cannot set up https: {0}")]
    Tls(String),
}

impl PullError {
    /// The cap a refused reply went over: `series`, `bytes`, `token` or `depth`.
    pub(super) fn over_limit(&self) -> Option<&'static str> {
        match self {
            PullError::TooLarge(_) => Some("bytes"),
            PullError::Reply(ReplyError::TooManySeries(_)) => Some("series"),
            PullError::Reply(ReplyError::TokenTooLong) => Some("token"),
            PullError::Reply(ReplyError::TooDeep) => Some("depth"),
            PullError::Status { error, .. } => error.over_limit(),
            _ => None,
        }
    }
}

/// Runs the HTTP client's background tasks (its connections) in a set the puller owns.
#[derive(Clone, Default)]
pub(super) struct Owned(Arc<Mutex<JoinSet<()>>>);

impl<F> hyper::rt::Executor<F> for Owned
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        let mut set = guard(&self.0);
        while set.try_join_next().is_some() {}
        set.spawn(async move {
            fut.await;
        });
    }
}

impl Owned {
    /// Stops every connection task and waits for them.
    pub(super) async fn shutdown(&self) {
        let mut set = std::mem::take(&mut *guard(&self.0));
        set.shutdown().await;
    }
}

/// A client trusting `ca` (or the built-in roots when there is none); the error says why
/// TLS cannot be set up.
pub(super) fn client(
    ca: Option<&[CertificateDer<'static>]>,
    exec: Owned,
) -> Result<HttpClient, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(certs) => {
            for c in certs {
                roots.add(c.clone()).map_err(|e| e.to_string())?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(exec).build(https))
}

/// One instant query, `GET /api/v1/query?query=…`, read by `matcher` as it arrives.
pub(super) async fn query(
    client: &HttpClient,
    src: &LoadSource,
    promql: &str,
    matcher: Arc<Matcher>,
) -> Result<Reply, PullError> {
    let qs: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("query", promql)
        .finish();
    let uri: hyper::Uri = format!("{}/api/v1/query?{qs}", src.url)
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| PullError::BadUrl(e.to_string()))?;
    let mut req = hyper::Request::get(uri)
        .body(Empty::new())
        .map_err(|e| PullError::BadUrl(e.to_string()))?;
    req.headers_mut()
        .insert(ACCEPT, HeaderValue::from_static("application/json"));
    if let Some(a) = &src.auth {
        req.headers_mut().insert(AUTHORIZATION, a.header().clone());
    }
    let (tx, rx) = mpsc::channel(CHUNKS);
    let max_series = src.max_series;
    let reader = tokio::task::spawn_blocking(move || {
        read_reply(ChannelReader::new(rx), &matcher, max_series)
    });
    let fetched = tokio::time::timeout(src.timeout, fetch(client, req, tx, src.max_bytes)).await;
    // The sender is gone by now, so the reader ends at the end of what it was given.
    let read = reader
        .await
        .map_err(|e| PullError::Body(format!("the reader stopped: {e}")))?;
    let (status, said) = fetched.map_err(|_| PullError::Timeout(src.timeout))??;
    if status.is_success() {
        return read.map_err(PullError::from);
    }
    let error = match read {
        Ok(_) | Err(ReplyError::NotJson(_)) => PullError::Said(said),
        Err(e) => PullError::Reply(e),
    };
    Err(PullError::Status {
        status: status.as_u16(),
        error: Box::new(error),
    })
}

/// Sends the request and feeds the body to `tx` until it ends, the reader stops taking it,
/// or it passes `max_bytes`. Returns the status and, for a failure, the start of the body.
async fn fetch(
    client: &HttpClient,
    req: hyper::Request<Empty<Bytes>>,
    tx: mpsc::Sender<Bytes>,
    max_bytes: u64,
) -> Result<(StatusCode, String), PullError> {
    let resp = client
        .request(req)
        .await
        .map_err(|e| PullError::Unreachable(error_chain(&e)))?;
    let status = resp.status();
    let mut body = resp.into_body();
    let mut total = 0u64;
    let mut said = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| PullError::Body(error_chain(&e)))?;
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        total += chunk.len() as u64;
        if total > max_bytes {
            return Err(PullError::TooLarge(max_bytes));
        }
        if !status.is_success() && said.len() < SHOWN {
            let take = chunk.len().min(SHOWN - said.len());
            said.extend_from_slice(&chunk[..take]);
        }
        if tx.send(chunk).await.is_err() {
            // The reader has all it needs (or has failed): the rest is not read.
            break;
        }
    }
    Ok((status, shown(&said)))
}

fn quoted(s: &str) -> String {
    if s.is_empty() {
        "empty body".to_owned()
    } else {
        format!("{s:?}")
    }
}

/// A body's start as one line of text.
fn shown(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
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

/// The body as `Read` for the blocking reader: waits for each chunk; the end of the body
/// (or the query given up) is the end of the stream.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    chunk: Bytes,
}

impl ChannelReader {
    fn new(rx: mpsc::Receiver<Bytes>) -> Self {
        ChannelReader {
            rx,
            chunk: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(c) => self.chunk = c,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Ok(n)
    }
}
