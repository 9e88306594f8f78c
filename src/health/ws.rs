//! SIP over WebSocket (RFC 7118): an HTTP/1.1 Upgrade to the server's `ws_path` asking for
//! the `sip` subprotocol, the 101 answer checked (its accept key, and `sip` as the protocol),
//! one OPTIONS in a masked text frame, and its final response read from the messages that
//! follow (one SIP message per WebSocket message), all within the probe timeout. Every byte
//! read from the server counts against one budget ([`MAX_READ`]) and a message or frame may
//! hold at most one SIP message's worth ([`MAX_MESSAGE`]), so endless headers, a huge frame or
//! a stream of pings end the probe. Over TLS (`sip-options-wss`) `tls` runs the handshake and
//! hands the stream to [`exchange`]. tokio-tungstenite does the handshake and the framing and
//! lives behind this module.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::sip::{Ids, MAX_MESSAGE, ParseError, parse_response, push_options_request};
use super::vocab::{CodePolicy, ProbeError, ProbeResult, Res, Target, describe};

/// Most bytes one probe reads from the server: the upgrade's answer and every frame after it.
pub(crate) const MAX_READ: usize = 64 * 1024;

/// Most WebSocket messages read after the request (pings, other transactions' replies,
/// provisional responses) before the probe gives up.
const MAX_MESSAGES: usize = 16;

/// Runs one `sip-options-ws` check of `target`, bounded by `timeout`.
pub(crate) async fn probe(target: &Target, timeout: Duration, policy: &CodePolicy) -> ProbeResult {
    let start = Instant::now();
    let fut = async {
        let tcp = TcpStream::connect(target.addr).await?;
        let local = tcp.local_addr()?;
        exchange(tcp, target, local, None, policy).await
    };
    let r = match tokio::time::timeout(timeout, Box::pin(fut)).await {
        Ok(r) => r,
        Err(_) => Err(ProbeError::Timeout(timeout)),
    };
    ProbeResult::from_res(r, start.elapsed())
}

/// The upgrade and one OPTIONS exchange on a connected stream: plain (`tls_name` `None`,
/// `Via: SIP/2.0/WS`) or already through TLS (`wss://` to `tls_name`, `Via: SIP/2.0/WSS`).
pub(super) async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    target: &Target,
    local: SocketAddr,
    tls_name: Option<&str>,
    policy: &CodePolicy,
) -> Res {
    let path = target.path.as_deref().unwrap_or("/");
    let url = match tls_name {
        Some(name) => format!("wss://{name}:{}{path}", target.addr.port()),
        None => format!("ws://{}{path}", target.addr),
    };
    let mut req = url
        .into_client_request()
        .map_err(|e| ProbeError::BadResponse(format!("websocket request: {}", lower(&e))))?;
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("sip"));
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_MESSAGE);
    let capped = Capped {
        inner: stream,
        left: MAX_READ,
    };
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(req, capped, Some(config))
        .await
        .map_err(ws_error)?;
    let ids = Ids::random();
    let mut out = Vec::with_capacity(512);
    let transport = if tls_name.is_some() { "WSS" } else { "WS" };
    push_options_request(&mut out, target.addr, local, transport, &ids);
    let text = String::from_utf8_lossy(&out).into_owned();
    ws.send(Message::text(text)).await.map_err(ws_error)?;
    for _ in 0..MAX_MESSAGES {
        let msg = match ws.next().await {
            None => return Err(ProbeError::Closed),
            Some(Err(e)) => return Err(ws_error(e)),
            Some(Ok(m)) => m,
        };
        let data: &[u8] = match &msg {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b,
            Message::Close(_) => return Err(ProbeError::Closed),
            _ => continue,
        };
        match parse_response(data) {
            Ok((r, _)) if r.matches(&ids) && r.code >= 200 => {
                // A close frame, sent without waiting for the answer to it.
                let _ = ws.close(None).await;
                return Ok((
                    policy.classify(r.code),
                    Some(r.code),
                    describe(r.code, &r.reason, r.retry_after),
                ));
            }
            Ok(_) => {}
            Err(ParseError::Incomplete) => {
                return Err(ProbeError::BadResponse(
                    "a websocket message without a complete sip message".into(),
                ));
            }
            Err(e @ ParseError::Bad(_)) => return Err(ProbeError::BadResponse(e.to_string())),
        }
    }
    Err(ProbeError::BadResponse(format!(
        "{MAX_MESSAGES} websocket messages without the final response"
    )))
}

/// Why the WebSocket layer failed, as a probe error.
fn ws_error(e: WsError) -> ProbeError {
    match e {
        WsError::Io(e) if e.kind() == io::ErrorKind::InvalidData => {
            ProbeError::BadResponse(lower(&e))
        }
        WsError::Io(e) => e.into(),
        WsError::ConnectionClosed | WsError::AlreadyClosed => ProbeError::Closed,
        WsError::Http(r) => ProbeError::BadResponse(format!(
            "websocket upgrade refused: http {}",
            r.status().as_u16()
        )),
        WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
            ProbeError::BadResponse(format!(
                "websocket: a message of {size} bytes, over the {max_size} a probe reads"
            ))
        }
        WsError::Protocol(ProtocolError::SecWebSocketSubProtocolError(_)) => {
            ProbeError::BadResponse("websocket: the server did not take subprotocol sip".into())
        }
        e => ProbeError::BadResponse(format!("websocket: {}", lower(&e))),
    }
}

/// An error's text in lowercase.
fn lower(e: &impl std::fmt::Display) -> String {
    e.to_string().to_lowercase()
}

/// A stream that fails its reads once `left` bytes have been read from it.
struct Capped<S> {
    inner: S,
    left: usize,
}

impl<S: AsyncRead + Unpin> AsyncRead for Capped<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.left == 0 {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("websocket: more than {MAX_READ} bytes from the server"),
            )));
        }
        let mut tmp = [0u8; 4096];
        let room = self.left.min(tmp.len()).min(buf.remaining());
        let mut part = ReadBuf::new(&mut tmp[..room]);
        ready!(Pin::new(&mut self.inner).poll_read(cx, &mut part))?;
        let n = part.filled().len();
        buf.put_slice(part.filled());
        self.left -= n;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Capped<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
