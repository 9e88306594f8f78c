//! DNS over HTTPS (RFC 8484): HTTP/2 over rustls, GET (`?dns=` base64url) and POST
//! (`application/dns-message`) at `/dns-query`, on the `h2` crate.
//!
//! Connections are admitted as DNS over TCP ones are, through this transport's own `Conns`
//! table: a cap, a share per source, and eviction of an idle connection (no request in
//! flight; a connection in its handshake counts as idle) for a new one; accept errors back
//! off ([`Accept`]). Also bounded: concurrent streams per connection, request size, handshake
//! time and idle time between requests.
//!
//! A request's DNS message goes through the same answer path as UDP and TCP, bytes in and
//! bytes out: the reply is padded in its bytes and its `Cache-Control` max-age is the smallest
//! TTL of its answer and authority records, both from one walk of the reply (`dns::pad`).
//!
//! The listener owns its connection tasks, and each connection its request tasks (`JoinSet`s).
//! On shutdown a connection sends GOAWAY and finishes the requests in flight within
//! [`SHUTDOWN_GRACE`]; then it is dropped.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use h2::RecvStream;
use h2::server::SendResponse;
use http::{Method, Request, Response, StatusCode, header};
use metrics::Counter;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::DOH_PATH;
use crate::conns::accept::Accept;
use crate::conns::{Conn, Conns, ShedCounts};
use crate::dns::denial::Route;
use crate::dns::pad;
use crate::dns::serving::{Answering, Served};
use crate::dns::summary::Proto;
use crate::dns::tcp::SHUTDOWN_GRACE;
use crate::telemetry::Telemetry;

/// Concurrent requests (HTTP/2 streams) per connection.
pub(crate) const MAX_STREAMS: u32 = 32;
/// Largest DNS message accepted (RFC 8484 4.1: the DNS maximum).
const MAX_MESSAGE: usize = 65535;
const MIME: &str = "application/dns-message";

/// base64url as RFC 8484 wants it (no padding), tolerating padding some clients send.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What the requests of DNS over HTTPS share besides the answer path.
pub(crate) struct Answerer {
    /// `sipsteer_dns_encrypted_queries_total{transport="https"}`.
    pub queries: Counter,
    /// Handshake timeout, idle timeout between requests, and the longest wait for a request.
    pub idle: Duration,
    /// Fires when the listeners stop.
    pub stop: CancellationToken,
}

impl Answerer {
    /// Answers one query on the connection's answer path: the padded reply and its max-age.
    /// `BAD_REQUEST` when nothing is to be sent (not a query); `SERVICE_UNAVAILABLE` when
    /// the reply waits for a proof and the signer cannot complete it (its queue full).
    async fn answer(
        &self,
        answering: &Mutex<Answering>,
        client: IpAddr,
        raw: &[u8],
    ) -> Result<(Vec<u8>, u32), StatusCode> {
        let mut out = Vec::with_capacity(512);
        let mut later = None;
        let served =
            crate::lock::guard(answering).answer(client, Proto::Https, raw, &mut out, || {
                let (tx, rx) = tokio::sync::oneshot::channel();
                later = Some(rx);
                Route::Stream(tx)
            });
        match served {
            Served::Send(_) => {}
            Served::Nothing => return Err(StatusCode::BAD_REQUEST),
            Served::Dropped(_) => return Err(StatusCode::SERVICE_UNAVAILABLE),
            Served::Later(_) => {
                let rx = later.ok_or(StatusCode::SERVICE_UNAVAILABLE)?;
                match timeout(SIGNER_WAIT, rx).await {
                    Ok(Ok(reply)) => out = reply,
                    _ => return Err(StatusCode::SERVICE_UNAVAILABLE),
                }
            }
        }
        self.queries.increment(1);
        let max_age = pad::pad_and_min_ttl(&mut out);
        Ok((out, max_age))
    }
}

/// Longest wait for the signer thread to complete a reply.
const SIGNER_WAIT: Duration = Duration::from_secs(2);

/// What the DNS over HTTPS listeners share: the TLS settings, the answer path (cloned for
/// each connection), the table their connections are admitted to and its shed counts, and
/// the query counter.
#[derive(Clone)]
pub(crate) struct Doh {
    pub tls: TlsAcceptor,
    pub answerer: Arc<Answerer>,
    pub table: Arc<Conns>,
    pub shed: ShedCounts,
    pub answering: Answering,
}

/// Accepts connections until `cancel` fires, then waits for them (see the module notes).
pub(crate) async fn serve(
    listener: TcpListener,
    doh: Doh,
    telemetry: Arc<Telemetry>,
    cancel: CancellationToken,
) {
    let mut accept =
        Accept::new("https", &telemetry).evicting(doh.table.clone(), doh.shed.evicted().clone());
    let mut conns = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            x = accept.next(&listener) => x,
            Some(_) = conns.join_next() => continue,
            () = cancel.cancelled() => break,
        };
        let Some(conn) = doh.table.admit_counted(peer.ip(), &doh.shed) else {
            drop(stream);
            continue;
        };
        stream.set_nodelay(true).ok();
        let (tls, answerer) = (doh.tls.clone(), doh.answerer.clone());
        let answering = Arc::new(Mutex::new(doh.answering.clone()));
        conns.spawn(connection(stream, peer, tls, answerer, answering, conn));
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

/// One connection until it ends, is evicted, or outlives the shutdown grace.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: TlsAcceptor,
    a: Arc<Answerer>,
    answering: Arc<Mutex<Answering>>,
    conn: Conn,
) {
    let overdue = async {
        a.stop.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        () = session(stream, peer, tls, &a, answering, &conn) => {}
        () = conn.evicted() => {}
        () = overdue => {}
    }
}

/// The handshakes, then requests until the connection closes, idles out or the listener
/// stops (GOAWAY, then the requests in flight are answered).
async fn session(
    stream: TcpStream,
    peer: SocketAddr,
    tls: TlsAcceptor,
    a: &Arc<Answerer>,
    answering: Arc<Mutex<Answering>>,
    conn: &Conn,
) {
    let handshake = async {
        // Heard from once the first byte of the ClientHello is there: silent connections are
        // evicted first.
        if stream.peek(&mut [0u8; 1]).await.ok()? > 0 {
            conn.heard();
        }
        let tls = tls.accept(stream).await.ok()?;
        let mut builder = h2::server::Builder::new();
        builder
            .max_concurrent_streams(MAX_STREAMS)
            .max_header_list_size(16 << 10);
        builder.handshake::<_, Bytes>(tls).await.ok()
    };
    let mut h2c = tokio::select! {
        r = timeout(a.idle, handshake) => match r {
            Ok(Some(c)) => c,
            _ => return,
        },
        () = a.stop.cancelled() => return,
    };
    let client = peer.ip();
    let mut streams = JoinSet::new();
    let mut deadline = Instant::now() + a.idle;
    // Polling `accept` also drives the connection, which sends the replies.
    loop {
        conn.set_idle(streams.is_empty());
        tokio::select! {
            r = h2c.accept() => {
                let Some(Ok((req, respond))) = r else { return };
                let now = Instant::now();
                conn.set_idle(false);
                conn.touch(now);
                deadline = now + a.idle;
                streams.spawn(request(req, respond, client, a.clone(), answering.clone()));
            }
            Some(_) = streams.join_next() => {}
            () = tokio::time::sleep_until(deadline), if streams.is_empty() => return,
            () = a.stop.cancelled() => break,
        }
    }
    conn.set_idle(false);
    h2c.graceful_shutdown();
    while let Some(Ok((req, respond))) = h2c.accept().await {
        streams.spawn(request(req, respond, client, a.clone(), answering.clone()));
    }
    while streams.join_next().await.is_some() {}
}

async fn request(
    req: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    client: IpAddr,
    a: Arc<Answerer>,
    answering: Arc<Mutex<Answering>>,
) {
    let query = match timeout(a.idle, query_of(req)).await {
        Ok(q) => q,
        Err(_) => Err(StatusCode::REQUEST_TIMEOUT),
    };
    let reply = match query {
        Ok(q) => a.answer(&answering, client, &q).await,
        Err(e) => Err(e),
    };
    let (resp, body) = match reply {
        Ok((body, max_age)) => (ok(body.len(), max_age), Bytes::from(body)),
        Err(status) => (Response::builder().status(status).body(()), Bytes::new()),
    };
    let Ok(resp) = resp else { return };
    let Ok(mut send) = respond.send_response(resp, body.is_empty()) else {
        return;
    };
    if !body.is_empty() {
        let _ = send.send_data(body, true);
    }
}

/// The head of a 200 reply: cacheable for the smallest TTL in it (RFC 8484 5.1).
fn ok(len: usize, max_age: u32) -> http::Result<Response<()>> {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, MIME)
        .header(header::CONTENT_LENGTH, len)
        .header(header::CACHE_CONTROL, format!("max-age={max_age}"))
        .body(())
}

/// The DNS message of a request, or the HTTP status that refuses it.
async fn query_of(req: Request<RecvStream>) -> Result<Vec<u8>, StatusCode> {
    if req.uri().path() != DOH_PATH {
        return Err(StatusCode::NOT_FOUND);
    }
    match *req.method() {
        Method::GET => {
            let q = req.uri().query().unwrap_or("");
            let dns = form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "dns")
                .map(|(_, v)| v)
                .ok_or(StatusCode::BAD_REQUEST)?;
            if dns.len() > MAX_MESSAGE.div_ceil(3) * 4 {
                return Err(StatusCode::URI_TOO_LONG);
            }
            B64.decode(dns.as_bytes())
                .map_err(|_| StatusCode::BAD_REQUEST)
        }
        Method::POST => {
            let ctype = req.headers().get(header::CONTENT_TYPE);
            if ctype.and_then(|v| v.to_str().ok()) != Some(MIME) {
                return Err(StatusCode::UNSUPPORTED_MEDIA_TYPE);
            }
            body(req.into_body()).await
        }
        _ => Err(StatusCode::METHOD_NOT_ALLOWED),
    }
}

/// Reads a POST body, at most one DNS message long.
async fn body(mut body: RecvStream) -> Result<Vec<u8>, StatusCode> {
    let mut out = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|_| StatusCode::BAD_REQUEST)?;
        let _ = body.flow_control().release_capacity(chunk.len());
        if out.len() + chunk.len() > MAX_MESSAGE {
            return Err(StatusCode::PAYLOAD_TOO_LARGE);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
