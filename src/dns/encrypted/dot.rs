//! DNS over TLS (RFC 7858) is the DNS over TCP listener ([`crate::dns::tcp`]) with a TLS
//! handshake as its upgrade: the same accept loop, admission, framing, pipelining, timeouts and
//! shutdown, with replies padded in their bytes. The connection is marked heard from once its
//! first bytes (the ClientHello) arrive, so a flood of silent connections is evicted first.

use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::conns::Conn;
use crate::dns::tcp::Upgrade;

impl Upgrade for TlsAcceptor {
    type Io = TlsStream<TcpStream>;

    async fn upgrade(
        &self,
        stream: TcpStream,
        conn: &Conn,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        // Heard from once the first byte of the ClientHello is there (not on an end or a
        // reset, which make the socket readable too).
        if stream.peek(&mut [0u8; 1]).await? > 0 {
            conn.heard();
        }
        self.accept(stream).await
    }
}
