//! sipsteer's answer path behind hickory-server's `Server`, for the throughput table in
//! `bench/README.md` (run by `bench/hickory-row.sh`): the config is loaded the normal way,
//! one snapshot is built, and hickory-server serves UDP and TCP on one address with a
//! `RequestHandler` that hands the request's raw bytes to [`respond`].
//!
//! hickory-server parses every request before the handler sees it, and its `ResponseHandler`
//! only sends a `MessageResponse` it encodes itself, so the reply bytes [`respond`] writes are
//! decoded into a hickory `Message` and encoded again by hickory. That round trip, the request
//! parse and a task per UDP request are what this row measures on top of [`respond`]. There
//! are no health probes (`health.check: none` in the benchmark config), no metrics and no
//! query log; the runtime is tokio's current-thread runtime (one thread, to pin to one CPU).
//!
//! ```sh
//! cargo run --release --example hickory_server -- bench/sipsteer.yaml 127.0.0.1:5310
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hickory_proto::op::{Header, HeaderCounts, Message, MessageType, Metadata, ResponseCode};
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo, Server};
use hickory_server::zone_handler::MessageResponseBuilder;
use sipsteer::dns::answer::{Proto, respond};
use sipsteer::dns::snapshot::Snapshot;
use sipsteer::reload::{GeoSlot, load};

/// Idle TCP connections are closed after this long (hickory-server's per-request timeout).
const TCP_TIMEOUT: Duration = Duration::from_secs(10);
/// Replies queued per TCP connection.
const TCP_BUFFER: usize = 64;
/// Socket buffers of the UDP socket, as sipsteer's own listener sets them.
const UDP_BUFFERS: usize = 4 << 20;

/// Answers every request with [`respond`] on one fixed snapshot.
struct Handler(Arc<Snapshot>);

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let proto = match request.protocol() {
            Protocol::Udp => Proto::Udp,
            _ => Proto::Tcp,
        };
        let mut out = Vec::with_capacity(512);
        if respond(
            &self.0,
            request.src().ip(),
            proto,
            request.as_slice(),
            &mut out,
        )
        .is_none()
        {
            return servfail(request);
        }
        let Ok(reply) = Message::from_vec(&out) else {
            return servfail(request);
        };
        let response = MessageResponseBuilder::new(&request.queries, reply.edns.as_ref()).build(
            reply.metadata,
            reply.answers.iter(),
            reply.authorities.iter(),
            std::iter::empty(),
            reply.additionals.iter(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(_) => servfail(request),
        }
    }
}

/// The info hickory-server records for a request that got no reply.
fn servfail(request: &Request) -> ResponseInfo {
    let mut metadata = Metadata::new(
        request.metadata.id,
        MessageType::Response,
        request.metadata.op_code,
    );
    metadata.response_code = ResponseCode::ServFail;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}

/// A non-blocking UDP socket on `addr` with the buffers sipsteer's listener uses.
fn bind_udp(addr: SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
    s.set_recv_buffer_size(UDP_BUFFERS).ok();
    s.set_send_buffer_size(UDP_BUFFERS).ok();
    s.bind(&addr.into())?;
    s.set_nonblocking(true)?;
    tokio::net::UdpSocket::from_std(s.into())
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(config), Some(addr)) = (args.next(), args.next()) else {
        bail!("usage: hickory_server CONFIG ADDR:PORT");
    };
    let config = PathBuf::from(config);
    let addr: SocketAddr = addr
        .parse()
        .with_context(|| format!("bad listen address {addr}"))?;
    let loaded = load(&config, &GeoSlot::default())
        .map_err(|e| anyhow::anyhow!("cannot load {}: {e}", config.display()))?;
    let snapshot = Arc::new(Snapshot::build(Arc::new(loaded.config), loaded.geo, 1));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let udp = bind_udp(addr).with_context(|| format!("cannot bind udp {addr}"))?;
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot bind tcp {addr}"))?;
        let mut server = Server::new(Handler(snapshot));
        server.register_socket(udp);
        server.register_listener(tcp, TCP_TIMEOUT, TCP_BUFFER);
        eprintln!(
            "hickory-server serving {} on {addr} (udp, tcp)",
            config.display()
        );
        server
            .block_until_done()
            .await
            .map_err(|e| anyhow::anyhow!("server stopped: {e}"))
    })
}
