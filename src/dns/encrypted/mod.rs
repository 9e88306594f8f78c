//! DNS over TLS (RFC 7858), served by hickory-server's `Server`, and DNS over HTTPS (RFC 8484,
//! HTTP/2, GET and POST at `/dns-query`, [`doh`]), both with rustls. Answers come from the same
//! answer path as UDP and TCP ([`handler`]); the certificate comes from the current snapshot on
//! every handshake ([`CertResolver`]), so a renewal on disk is served as soon as the config
//! reload accepts it.

pub(crate) mod doh;
pub(crate) mod gate;
pub(crate) mod handler;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;
use rustls::ServerConfig;
use rustls::server::{ClientHello, NoServerSessionStorage, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::dns::listener;
use crate::dns::querylog::QueryLog;
use crate::dns::snapshot::Shared;
use crate::dns::stats::Tally;
use crate::telemetry::Telemetry;

/// The HTTP path DNS over HTTPS answers on.
pub const DOH_PATH: &str = "/dns-query";

/// Serves the certificate of the current snapshot; the one loaded at start if a later config
/// has no `tls:` section (removing it takes a restart).
/// With a gate, a handshake over the connection cap gets no certificate and fails.
#[derive(Debug, Clone)]
pub struct CertResolver {
    shared: Shared,
    first: Arc<CertifiedKey>,
    gate: Option<Arc<gate::Gate>>,
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(g) = &self.gate
            && !g.admit()
        {
            return None;
        }
        let snap = self.shared.load();
        Some(
            snap.config
                .tls
                .as_ref()
                .map_or_else(|| self.first.clone(), |t| t.certified.clone()),
        )
    }
}

/// Why the encrypted listeners could not start; names the address concerned.
#[derive(Debug, thiserror::Error)]
pub enum EncryptedError {
    #[error("encrypted listeners need a tls certificate and key")]
    NoCertificate,
    #[error("cannot set up tls")]
    Tls(#[source] rustls::Error),
    /// `what` is `tls` or `https`.
    #[error("cannot bind {what} {addr}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// rustls settings: TLS 1.2 and 1.3 (rustls' safe defaults), one ALPN protocol, no session
/// resumption (every handshake picks up the current certificate).
fn server_config(
    alpn: &[u8],
    resolver: Arc<CertResolver>,
) -> Result<Arc<ServerConfig>, EncryptedError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut c = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(EncryptedError::Tls)?
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
    pub tally: Tally,
    pub telemetry: Arc<Telemetry>,
    pub log: Option<Arc<QueryLog>>,
    /// Handshake timeout and idle timeout between queries.
    pub timeout: Duration,
    /// Connections per DNS over HTTPS listener, and over all DNS over TLS listeners.
    pub max_connections: usize,
}

/// The bound encrypted listeners.
#[derive(Debug, Default, Clone)]
pub struct Bound {
    pub tls: Vec<SocketAddr>,
    pub https: Vec<SocketAddr>,
}

/// Binds every `listen.tls` and `listen.https` address and starts serving them on `tasks`
/// until `cancel` fires: DNS over TLS through hickory-server, DNS over HTTPS through [`doh`].
pub fn start(
    setup: Setup,
    tls: &[SocketAddr],
    https: &[SocketAddr],
    tasks: &mut JoinSet<()>,
    cancel: &CancellationToken,
) -> Result<Bound, EncryptedError> {
    let mut bound = Bound::default();
    if tls.is_empty() && https.is_empty() {
        return Ok(bound);
    }
    let first = setup
        .shared
        .load()
        .config
        .tls
        .as_ref()
        .map(|t| t.certified.clone())
        .ok_or(EncryptedError::NoCertificate)?;
    let resolver = CertResolver {
        shared: setup.shared.clone(),
        first,
        gate: None,
    };
    let answerer = Arc::new(handler::Answerer::new(
        setup.shared.clone(),
        setup.tally,
        setup.log,
        &setup.telemetry,
    ));
    let all: Vec<SocketAddr> = tls.iter().chain(https).copied().collect();
    if !tls.is_empty() {
        let mut server = Server::new(handler::Handler(answerer.clone()));
        let mut listeners = Vec::new();
        for &addr in tls {
            let (l, at) = bind("tls", addr, &all)?;
            bound.tls.push(at);
            listeners.push(l);
        }
        let ports = bound.tls.iter().map(SocketAddr::port).collect();
        let gated = CertResolver {
            gate: Some(Arc::new(gate::Gate::new(
                ports,
                setup.max_connections,
                &setup.telemetry,
            ))),
            ..resolver.clone()
        };
        let dot = server_config(b"dot", Arc::new(gated))?;
        for (l, at) in listeners.into_iter().zip(&bound.tls) {
            server
                .register_tls_listener_with_tls_config(l, setup.timeout, dot.clone())
                .map_err(|source| EncryptedError::Bind {
                    what: "tls",
                    addr: *at,
                    source,
                })?;
            tracing::info!(bound = %at, "dns listening on tls");
        }
        tasks.spawn(stop_on(server, cancel.clone()));
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config(b"h2", Arc::new(resolver))?);
    for &addr in https {
        let (l, at) = bind("https", addr, &all)?;
        let limits = doh::Limits {
            max_connections: setup.max_connections,
            timeout: setup.timeout,
        };
        tasks.spawn(doh::serve(
            l,
            acceptor.clone(),
            answerer.clone(),
            limits,
            cancel.clone(),
        ));
        tracing::info!(bound = %at, "dns listening on https");
        bound.https.push(at);
    }
    Ok(bound)
}

/// Binds one listener of `what` (`tls` or `https`); returns it and the address it got.
fn bind(
    what: &'static str,
    addr: SocketAddr,
    all: &[SocketAddr],
) -> Result<(tokio::net::TcpListener, SocketAddr), EncryptedError> {
    let bound = listener::bind_tcp(addr, listener::v6_only(addr, all))
        .and_then(tokio::net::TcpListener::from_std)
        .and_then(|l| Ok((l.local_addr()?, l)));
    match bound {
        Ok((at, l)) => Ok((l, at)),
        Err(source) => Err(EncryptedError::Bind { what, addr, source }),
    }
}

/// Runs until `cancel` fires, then stops hickory's server.
async fn stop_on(mut server: Server<handler::Handler>, cancel: CancellationToken) {
    cancel.cancelled().await;
    if let Err(e) = server.shutdown_gracefully().await {
        tracing::debug!(error = %e, "dns over tls stopped");
    }
}
