//! DNS over HTTPS (RFC 8484): HTTP/2 over rustls, GET (`?dns=` base64url) and POST
//! (`application/dns-message`) at `/dns-query`. hickory-server 0.26's DoH handler answers POST
//! only, so this listener is sipsteer's own, on the `h2` crate; it shares the answer path
//! ([`Answerer`]) and the certificate with DNS over TLS.
//!
//! Bounded: connections per listener (a semaphore, as for TCP), concurrent streams per
//! connection, request size, handshake time and idle time between requests.
//!
//! The listener owns its connection tasks, and each connection its request tasks (`JoinSet`s).
//! On shutdown a connection sends GOAWAY and finishes the requests in flight; the listener
//! waits for its connections at most [`SHUTDOWN_GRACE`], then drops the rest and returns.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use h2::RecvStream;
use h2::server::SendResponse;
use hickory_proto::op::Message;
use http::{Method, Request, Response, StatusCode, header};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::DOH_PATH;
use super::handler::Answerer;
use crate::dns::answer::Proto;
use crate::dns::tcp::SHUTDOWN_GRACE;

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

/// How one DoH listener runs.
pub(crate) struct Limits {
    pub max_connections: usize,
    /// Handshake timeout and idle timeout between requests.
    pub timeout: Duration,
}

/// Accepts connections until `cancel` fires, then waits for them (see the module notes).
pub(crate) async fn serve(
    listener: TcpListener,
    tls: TlsAcceptor,
    answerer: Arc<Answerer>,
    limits: Limits,
    cancel: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut conns = JoinSet::new();
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = cancel.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "https accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = cancel.cancelled() => break,
        };
        let (tls, answerer, idle) = (tls.clone(), answerer.clone(), limits.timeout);
        let stop = cancel.clone();
        conns.spawn(async move {
            let _permit = permit;
            connection(stream, peer, tls, answerer, idle, stop).await;
        });
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    let all = async { while conns.join_next().await.is_some() {} };
    if timeout(SHUTDOWN_GRACE, all).await.is_err() {
        conns.shutdown().await;
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: TlsAcceptor,
    answerer: Arc<Answerer>,
    idle: Duration,
    stop: CancellationToken,
) {
    stream.set_nodelay(true).ok();
    let Ok(Ok(tls)) = timeout(idle, tls.accept(stream)).await else {
        return;
    };
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(16 << 10);
    let Ok(Ok(mut conn)) = timeout(idle, builder.handshake::<_, Bytes>(tls)).await else {
        return;
    };
    let mut streams = JoinSet::new();
    // Polling `accept` also drives the connection, which sends the replies.
    loop {
        let next = tokio::select! {
            r = timeout(idle, conn.accept()) => r,
            () = stop.cancelled() => break,
        };
        let Ok(Some(Ok((req, respond)))) = next else {
            return;
        };
        streams.spawn(request(req, respond, peer.ip(), answerer.clone(), idle));
        while streams.try_join_next().is_some() {}
    }
    // GOAWAY: requests already open are answered, then the connection closes.
    conn.graceful_shutdown();
    while let Some(Ok((req, respond))) = conn.accept().await {
        streams.spawn(request(req, respond, peer.ip(), answerer.clone(), idle));
    }
    while streams.join_next().await.is_some() {}
}

async fn request(
    req: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    client: IpAddr,
    answerer: Arc<Answerer>,
    idle: Duration,
) {
    let query = match timeout(idle, query_of(req)).await {
        Ok(q) => q,
        Err(_) => Err(StatusCode::REQUEST_TIMEOUT),
    };
    let reply = query.and_then(|q| {
        answerer
            .answer_padded(client, Proto::Https, &q)
            .ok_or(StatusCode::BAD_REQUEST)
    });
    let (resp, body) = match reply.and_then(|m| encode(&m)) {
        Ok(x) => x,
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

type Reply = (http::Result<Response<()>>, Bytes);

/// A 200 reply with the DNS message; cacheable for the smallest TTL in it (RFC 8484 5.1).
fn encode(m: &Message) -> Result<Reply, StatusCode> {
    let body = m.to_vec().map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    let max_age = m
        .answers
        .iter()
        .chain(&m.authorities)
        .map(|r| r.ttl)
        .min()
        .unwrap_or(0);
    let resp = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, MIME)
        .header(header::CONTENT_LENGTH, body.len())
        .header(header::CACHE_CONTROL, format!("max-age={max_age}"))
        .body(());
    Ok((resp, Bytes::from(body)))
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
