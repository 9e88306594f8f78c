//! DNS over TLS (RFC 7858) and DNS over HTTPS (RFC 8484, HTTP/2, `/dns-query`), served by
//! hickory-server's `Server` with rustls. Answers come from the same answer path as UDP and
//! TCP ([`handler`]); the certificate comes from the current snapshot on every handshake
//! ([`CertResolver`]), so a renewal on disk is served as soon as the config reload accepts it.

pub mod handler;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use hickory_server::Server;
use rustls::ServerConfig;
use rustls::server::{ClientHello, NoServerSessionStorage, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;

use crate::admin::metrics::QueryStats;
use crate::dns::listener;
use crate::querylog::QueryLog;
use crate::snapshot::Shared;

/// The HTTP path DNS over HTTPS answers on.
pub const DOH_PATH: &str = "/dns-query";

/// Serves the certificate of the current snapshot; the one loaded at start if a later config
/// has no `tls:` section (removing it takes a restart).
#[derive(Debug)]
pub struct CertResolver {
    shared: Shared,
    first: Arc<CertifiedKey>,
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let snap = self.shared.load();
        Some(
            snap.config
                .tls
                .as_ref()
                .map_or_else(|| self.first.clone(), |t| t.certified.clone()),
        )
    }
}

/// rustls settings: TLS 1.2 and 1.3 (rustls' safe defaults), one ALPN protocol, no session
/// resumption (every handshake picks up the current certificate).
fn server_config(alpn: &[u8], resolver: Arc<CertResolver>) -> Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut c = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("cannot set up tls")?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    c.alpn_protocols = vec![alpn.to_vec()];
    c.session_storage = Arc::new(NoServerSessionStorage {});
    c.send_tls13_tickets = 0;
    Ok(Arc::new(c))
}

/// What the encrypted listeners share.
pub struct Setup {
    pub shared: Shared,
    pub stats: Arc<QueryStats>,
    pub log: Option<Arc<QueryLog>>,
    /// Handshake timeout and idle timeout between queries.
    pub timeout: Duration,
}

/// The bound encrypted listeners.
#[derive(Debug, Default, Clone)]
pub struct Bound {
    pub tls: Vec<SocketAddr>,
    pub https: Vec<SocketAddr>,
}

/// Binds every `listen.tls` and `listen.https` address and starts hickory's server on them.
/// Returns `None` when neither is configured.
pub fn start(
    setup: Setup,
    tls: &[SocketAddr],
    https: &[SocketAddr],
) -> Result<Option<(Server<handler::Handler>, Bound)>> {
    if tls.is_empty() && https.is_empty() {
        return Ok(None);
    }
    let snap = setup.shared.load_full();
    let first = snap
        .config
        .tls
        .as_ref()
        .map(|t| t.certified.clone())
        .context("encrypted listeners need a tls certificate and key")?;
    let resolver = Arc::new(CertResolver {
        shared: setup.shared.clone(),
        first,
    });
    let mut server = Server::new(handler::Handler {
        shared: setup.shared,
        stats: setup.stats,
        log: setup.log,
        tls_queries: metrics::counter!("sipsteer_dns_encrypted_queries_total", "transport" => "tls"),
        https_queries: metrics::counter!("sipsteer_dns_encrypted_queries_total", "transport" => "https"),
    });
    let mut bound = Bound::default();
    let all: Vec<SocketAddr> = tls.iter().chain(https).copied().collect();
    let dot = server_config(b"dot", resolver.clone())?;
    for &addr in tls {
        let l = bind(addr, &all).with_context(|| format!("cannot bind tls {addr}"))?;
        bound.tls.push(l.local_addr()?);
        server.register_tls_listener_with_tls_config(l, setup.timeout, dot.clone())?;
        tracing::info!(bound = %bound.tls[bound.tls.len() - 1], "dns listening on tls");
    }
    let doh = server_config(b"h2", resolver)?;
    for &addr in https {
        let l = bind(addr, &all).with_context(|| format!("cannot bind https {addr}"))?;
        bound.https.push(l.local_addr()?);
        server.register_https_listener_with_tls_config(
            l,
            setup.timeout,
            doh.clone(),
            None,
            DOH_PATH.to_string(),
        )?;
        tracing::info!(bound = %bound.https[bound.https.len() - 1], "dns listening on https");
    }
    Ok(Some((server, bound)))
}

fn bind(addr: SocketAddr, all: &[SocketAddr]) -> Result<tokio::net::TcpListener> {
    let std = listener::bind_tcp(addr, listener::v6_only(addr, all))?;
    Ok(tokio::net::TcpListener::from_std(std)?)
}

/// Runs until `cancel` fires, then stops hickory's server.
pub async fn serve(mut server: Server<handler::Handler>, cancel: CancellationToken) {
    cancel.cancelled().await;
    if let Err(e) = server.shutdown_gracefully().await {
        tracing::debug!(error = %e, "encrypted listeners stopped");
    }
}
