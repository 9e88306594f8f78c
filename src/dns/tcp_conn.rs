//! One DNS stream connection, over TCP or TLS alike (any `AsyncRead + AsyncWrite`): reads
//! length-prefixed queries, answers them in order and writes the replies, batching pipelined
//! ones up to a bound. Over TLS each reply gets RFC 8467 block padding, written into its bytes.
//!
//! A query whose reply waits for a proof to be signed is awaited on a oneshot channel from the
//! signer thread (replies stay in order); when the signer's queue is full, the replies before
//! it are written and the connection closes (the client asks again).
//!
//! A zero-length frame, a frame that is not a query (too short, a response) or one answered
//! FORMERR closes the connection. Only a complete query resets the idle timer; once the
//! first byte of a frame has arrived, the whole frame must follow within [`FRAME_TIMEOUT`].
//! Once the listener stops, an idle connection closes at once and a busy one after writing the
//! reply it is working on. A connection that ends here is shut down in order (a TLS
//! close_notify, then FIN) within [`CLOSE_TIMEOUT`].

use std::net::SocketAddr;
use std::time::Duration;

use metrics::Counter;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::denial::Route;
use super::pad;
use super::serving::{Answering, Served};
use super::summary::Proto;
use crate::conns::Conn;

/// Longest wait for the rest of a frame once its first byte arrived (at most the idle timeout).
pub(super) const FRAME_TIMEOUT: Duration = Duration::from_secs(3);
/// Replies queued for a pipelining client before we stop reading and wait for it to take them.
pub(super) const MAX_QUEUED_REPLIES: usize = 32;
/// Bytes of replies queued before the same wait.
pub(super) const MAX_QUEUED_BYTES: usize = 64 << 10;
/// Longest wait for an orderly close (TLS close_notify, FIN) once the connection is done.
pub(super) const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest wait for the signer thread to complete a reply (it takes well under a second
/// with its queue full).
const SIGNER_WAIT: Duration = Duration::from_secs(2);
/// Read buffer of one connection.
const READ_BUF: usize = 4096;
const RCODE_FORMERR: u16 = 1;

/// The `reason` labels of a listener's bad-frame counter, in [`Bad`] order.
pub(super) const BAD_REASONS: [&str; 3] = ["empty_frame", "not_a_query", "slow_frame"];

/// What every connection of a listener shares.
pub(super) struct ConnCtx {
    /// Cloned for each connection.
    pub answering: Answering,
    /// How queries arrive here (`Tcp` or `Tls`); `Tls` replies are padded.
    pub proto: Proto,
    /// Counts every query, for a listener that counts its own besides [`Tally`].
    pub queries: Option<Counter>,
    /// Connections closed for what they sent, one counter per [`BAD_REASONS`] entry.
    pub bad: [Counter; 3],
    /// Idle timeout, and the longest wait for the client to take a batch of replies.
    pub idle: Duration,
    /// Fires when the listener stops.
    pub stop: CancellationToken,
}

/// Why a connection was closed by us for what the client sent.
#[derive(Clone, Copy)]
enum Bad {
    EmptyFrame = 0,
    NotAQuery = 1,
    SlowFrame = 2,
}

impl Bad {
    fn count(self, ctx: &ConnCtx) {
        ctx.bad[self as usize].increment(1);
    }
}

/// Replies waiting to be written.
struct Queue {
    bytes: Vec<u8>,
    replies: usize,
}

impl Queue {
    fn push(&mut self, reply: &[u8]) {
        self.bytes
            .extend_from_slice(&(reply.len() as u16).to_be_bytes());
        self.bytes.extend_from_slice(reply);
        self.replies += 1;
    }

    fn full(&self) -> bool {
        self.replies >= MAX_QUEUED_REPLIES || self.bytes.len() >= MAX_QUEUED_BYTES
    }

    /// Writes everything queued; false when the client did not take it in time.
    async fn flush<W: AsyncWrite + Unpin>(&mut self, w: &mut W, limit: Duration) -> bool {
        if self.bytes.is_empty() {
            return true;
        }
        let write = async {
            w.write_all(&self.bytes).await?;
            // TLS keeps the last record until flushed; plain TCP's flush does nothing.
            w.flush().await
        };
        let ok = matches!(tokio::time::timeout(limit, write).await, Ok(Ok(())));
        self.bytes.clear();
        self.replies = 0;
        ok
    }
}

/// True when `buf` holds at least one whole frame.
fn holds_frame(buf: &[u8]) -> bool {
    buf.len() >= 2 && buf.len() >= 2 + usize::from(u16::from_be_bytes([buf[0], buf[1]]))
}

/// Reads one frame into `req`; the caller knows at least one byte is buffered.
async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut BufReader<R>,
    req: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let mut len = [0u8; 2];
    r.read_exact(&mut len).await?;
    let n = usize::from(u16::from_be_bytes(len));
    req.resize(n, 0);
    r.read_exact(req).await?;
    Ok(n)
}

/// Serves one connection until it closes, times out or sends something bad, then closes it in
/// order.
pub(super) async fn serve<S>(io: S, peer: SocketAddr, ctx: &ConnCtx, st: &Conn)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut io = BufReader::with_capacity(READ_BUF, io);
    session(&mut io, peer, ctx, st).await;
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, io.get_mut().shutdown()).await;
}

/// The exchange of queries and replies on one connection.
async fn session<S>(rd: &mut BufReader<S>, peer: SocketAddr, ctx: &ConnCtx, st: &Conn)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut req = Vec::new();
    let mut out = Vec::with_capacity(512);
    let mut answering = ctx.answering.clone();
    let mut queue = Queue {
        bytes: Vec::new(),
        replies: 0,
    };
    let frame_limit = FRAME_TIMEOUT.min(ctx.idle);
    let mut deadline = Instant::now() + ctx.idle;
    loop {
        if !holds_frame(rd.buffer()) && !queue.flush(rd.get_mut(), ctx.idle).await {
            return;
        }
        if rd.buffer().is_empty() {
            st.set_idle(true);
            let first = tokio::select! {
                r = tokio::time::timeout_at(deadline, rd.fill_buf()) => r,
                () = ctx.stop.cancelled() => return,
            };
            st.set_idle(false);
            match first {
                Ok(Ok(b)) if !b.is_empty() => {}
                _ => return,
            }
        }
        let n = match tokio::time::timeout(frame_limit, read_frame(rd, &mut req)).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) => return,
            Err(_) => return Bad::SlowFrame.count(ctx),
        };
        if n == 0 {
            return Bad::EmptyFrame.count(ctx);
        }
        let mut later = None;
        let served = answering.answer(peer.ip(), ctx.proto, &req, &mut out, || {
            let (tx, rx) = tokio::sync::oneshot::channel();
            later = Some(rx);
            Route::Stream(tx)
        });
        let answered = match served {
            Served::Send(s) => s,
            Served::Nothing => return Bad::NotAQuery.count(ctx),
            Served::Later(s) => match signed(later.take()).await {
                Some(reply) => {
                    out = reply;
                    s
                }
                // The signer stopped, or is far behind: the client asks again.
                None => {
                    queue.flush(rd.get_mut(), ctx.idle).await;
                    return;
                }
            },
            // The signer's queue is full: the replies before this one, then close.
            Served::Dropped(_) => {
                queue.flush(rd.get_mut(), ctx.idle).await;
                return;
            }
        };
        if let Some(q) = &ctx.queries {
            q.increment(1);
        }
        if ctx.proto == Proto::Tls {
            pad::pad(&mut out);
        }
        queue.push(&out);
        if answered.rcode == RCODE_FORMERR {
            queue.flush(rd.get_mut(), ctx.idle).await;
            return Bad::NotAQuery.count(ctx);
        }
        if ctx.stop.is_cancelled() {
            queue.flush(rd.get_mut(), ctx.idle).await;
            return;
        }
        let now = Instant::now();
        st.touch(now);
        deadline = now + ctx.idle;
        if queue.full() && !queue.flush(rd.get_mut(), ctx.idle).await {
            return;
        }
    }
}

/// The reply the signer thread completes, within [`SIGNER_WAIT`].
async fn signed(rx: Option<tokio::sync::oneshot::Receiver<Vec<u8>>>) -> Option<Vec<u8>> {
    match tokio::time::timeout(SIGNER_WAIT, rx?).await {
        Ok(Ok(reply)) => Some(reply),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::holds_frame;

    #[test]
    fn frame_boundaries() {
        assert!(!holds_frame(&[]));
        assert!(!holds_frame(&[0]));
        assert!(holds_frame(&[0, 0]));
        assert!(!holds_frame(&[0, 2, 1]));
        assert!(holds_frame(&[0, 2, 1, 2, 9]));
    }
}
