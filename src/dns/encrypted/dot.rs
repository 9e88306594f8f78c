//! DNS over TLS (RFC 7858) is the DNS over TCP listener ([`crate::dns::tcp`]) with a TLS
//! handshake as its upgrade: the same accept loop, admission, framing, pipelining, timeouts and
//! shutdown, with replies padded in their bytes.

use std::future::Future;

use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::dns::tcp::Upgrade;

impl Upgrade for TlsAcceptor {
    type Io = TlsStream<TcpStream>;

    fn upgrade(
        &self,
        stream: TcpStream,
    ) -> impl Future<Output = std::io::Result<TlsStream<TcpStream>>> + Send {
        self.accept(stream)
    }
}
