//! A DNS over HTTPS load generator for `bench/stream-throughput.sh` (Debian's dnsperf 2.10
//! stalls on DoH here: about 40 ms per query and queries lost with more than one in flight):
//! `CONNS` HTTP/2 connections over TLS (certificates not checked, ALPN `h2`), each keeping
//! `STREAMS` GET requests for `static.example.com A` in flight, for `SECONDS`, each stream
//! waiting `PACE_MS` (default 0) after a reply; a lost connection is set up again. Prints
//! the NOERROR replies, the requests that got none (HTTP error, bad message, 5 s timeout,
//! lost connection) and the rate in dnsperf's words (`Queries completed:`,
//! `Queries per second:`).
//!
//! ```sh
//! cargo run --release --example doh_load -- 127.0.0.1:8443 16 12 10
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use bytes::Bytes;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Accepts any certificate: the load is measured, not the server's identity.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `static.example.com A`, id 0 (RFC 8484 4.1), as the `dns` parameter of a GET.
fn request_uri() -> String {
    let mut q = vec![0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["static", "example", "com"] {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(q);
    format!("https://localhost/dns-query?dns={b64}")
}

/// What the load counts.
#[derive(Default)]
struct Counts {
    /// Replies with status 200 and a NOERROR DNS message.
    done: AtomicU64,
    /// Requests with no such reply: an HTTP error, a bad message, a timeout, a lost
    /// connection (each request in flight on it counts once).
    failed: AtomicU64,
    /// Connections that could not be set up or were lost.
    conns_failed: AtomicU64,
}

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// One request; whether it got a 200 with a NOERROR reply.
async fn one(client: &h2::client::SendRequest<Bytes>, uri: &str) -> Result<bool> {
    let req = http::Request::get(uri).body(())?;
    let (resp, _) = client.clone().ready().await?.send_request(req, true)?;
    let resp = resp.await?;
    let ok_status = resp.status() == http::StatusCode::OK;
    let mut body = resp.into_body();
    let mut msg = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk: Bytes = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        msg.extend_from_slice(&chunk);
    }
    Ok(ok_status && msg.len() >= 12 && msg[3] & 0x0f == 0)
}

/// One connection, set up again whenever it fails: `streams` requests in flight (each
/// waiting `pace` after its reply) until `end`.
async fn connection(
    addr: SocketAddr,
    tls: TlsConnector,
    streams: usize,
    pace: Duration,
    end: Instant,
    counts: Arc<Counts>,
) {
    while Instant::now() < end {
        if session(addr, &tls, streams, pace, end, &counts)
            .await
            .is_err()
        {
            counts.conns_failed.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn session(
    addr: SocketAddr,
    tls: &TlsConnector,
    streams: usize,
    pace: Duration,
    end: Instant,
    counts: &Arc<Counts>,
) -> Result<()> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from("localhost")?;
    let io = tokio::time::timeout(REQUEST_TIMEOUT, tls.connect(name, tcp)).await??;
    let (client, conn) = h2::client::handshake(io).await?;
    tokio::spawn(conn);
    let uri = request_uri();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..streams {
        let (client, uri, counts) = (client.clone(), uri.clone(), counts.clone());
        tasks.spawn(async move {
            while Instant::now() < end {
                match tokio::time::timeout(REQUEST_TIMEOUT, one(&client, &uri)).await {
                    Ok(Ok(true)) => counts.done.fetch_add(1, Ordering::Relaxed),
                    Ok(Ok(false)) | Err(_) => counts.failed.fetch_add(1, Ordering::Relaxed),
                    Ok(Err(e)) => {
                        counts.failed.fetch_add(1, Ordering::Relaxed);
                        return Err(e);
                    }
                };
                if !pace.is_zero() {
                    tokio::time::sleep(pace).await;
                }
            }
            anyhow::Ok(())
        });
    }
    let mut result = Ok(());
    while let Some(r) = tasks.join_next().await {
        if let Ok(Err(e)) = r {
            result = Err(e);
        }
    }
    result
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (addr, conns, streams, seconds, pace) = match args.as_slice() {
        [a, c, s, t] => (a, c, s, t, "0"),
        [a, c, s, t, p] => (a, c, s, t, p.as_str()),
        _ => bail!("usage: doh_load ADDR CONNS STREAMS SECONDS [PACE_MS]"),
    };
    let addr: SocketAddr = addr.parse().context("address")?;
    let (conns, streams): (usize, usize) = (conns.parse()?, streams.parse()?);
    let seconds: u64 = seconds.parse()?;
    let pace = Duration::from_millis(pace.parse()?);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tls = TlsConnector::from(Arc::new(config));
    let counts = Arc::new(Counts::default());
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let mut all = tokio::task::JoinSet::new();
    for _ in 0..conns {
        all.spawn(connection(
            addr,
            tls.clone(),
            streams,
            pace,
            end,
            counts.clone(),
        ));
    }
    while all.join_next().await.is_some() {}
    let n = counts.done.load(Ordering::Relaxed);
    let secs = start.elapsed().as_secs_f64();
    println!("  Queries completed:    {n}");
    println!(
        "  Queries failed:       {}",
        counts.failed.load(Ordering::Relaxed)
    );
    println!(
        "  Connections failed:   {}",
        counts.conns_failed.load(Ordering::Relaxed)
    );
    println!("  Queries per second:   {:.0}", n as f64 / secs);
    Ok(())
}
