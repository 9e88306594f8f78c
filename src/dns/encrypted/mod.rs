//! DNS over TLS (RFC 7858, [`dot`]: the DNS over TCP listener of `dns::tcp` behind a TLS
//! handshake) and DNS over HTTPS (RFC 8484, HTTP/2, GET and POST at `/dns-query`, [`doh`]),
//! both with rustls. Answers come through the same `dns::serving::Answering` as UDP and TCP,
//! bytes in and bytes out, padded in their bytes; each transport admits its connections
//! through its own `Conns` table. The addresses are bound first ([`bind`]) and served once
//! everything a start needs is bound ([`Sockets::serve`]). The certificate comes from the
//! current snapshot on every handshake ([`CertResolver`]), so a renewal on disk is served as
//! soon as the config reload accepts it.

mod doh;
mod dot;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::server::{ClientHello, NoServerSessionStorage, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::conns::{Conns, Limits};
use crate::dns::listener;
use crate::dns::serving::Answering;
use crate::dns::snapshot::Shared;
use crate::dns::summary::Proto;
use crate::dns::tcp::{self, Serving, Stream};
use crate::telemetry::Telemetry;

/// The HTTP path DNS over HTTPS answers on.
pub const DOH_PATH: &str = "/dns-query";

/// Serves the certificate of the current snapshot; the one loaded at start if a later config
/// has no `tls:` section (removing it takes a restart).
#[derive(Debug, Clone)]
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
pub(crate) struct Setup {
    /// The answer path, cloned for each connection.
    pub answering: Answering,
    pub telemetry: Arc<Telemetry>,
    /// Handshake timeout and idle timeout between queries.
    pub timeout: Duration,
    /// The bounds of the DNS over TLS table (over all `listen.tls` addresses).
    pub tls: Limits,
    /// The bounds of the DNS over HTTPS table (over all `listen.https` addresses).
    pub https: Limits,
}

/// The bound encrypted listeners.
#[derive(Debug, Default, Clone)]
pub struct Bound {
    pub tls: Vec<SocketAddr>,
    pub https: Vec<SocketAddr>,
}

/// One listener's work, to be spawned under its transport's name (`tls` or `https`).
pub(crate) struct Listener {
    pub name: &'static str,
    pub run: Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// Every `listen.tls` and `listen.https` address, bound and not served yet.
pub(crate) struct Sockets {
    tls: Vec<TcpListener>,
    https: Vec<TcpListener>,
    /// The certificate loaded at start (served while a later config has none).
    first: Option<Arc<CertifiedKey>>,
    pub bound: Bound,
}

/// Binds every `listen.tls` and `listen.https` address; `first` is the certificate of the
/// config they are bound for.
pub(crate) fn bind(
    tls: &[SocketAddr],
    https: &[SocketAddr],
    first: Option<Arc<CertifiedKey>>,
) -> Result<Sockets, EncryptedError> {
    let mut s = Sockets {
        tls: Vec::new(),
        https: Vec::new(),
        first: None,
        bound: Bound::default(),
    };
    if tls.is_empty() && https.is_empty() {
        return Ok(s);
    }
    s.first = Some(first.ok_or(EncryptedError::NoCertificate)?);
    let all: Vec<SocketAddr> = tls.iter().chain(https).copied().collect();
    for &addr in tls {
        let (l, at) = bind_one("tls", addr, &all)?;
        s.tls.push(l);
        s.bound.tls.push(at);
    }
    for &addr in https {
        let (l, at) = bind_one("https", addr, &all)?;
        s.https.push(l);
        s.bound.https.push(at);
    }
    Ok(s)
}

impl Sockets {
    /// The work of every listener until `cancel` fires: DNS over TLS through the stream
    /// listener of `dns::tcp`, DNS over HTTPS through [`doh`].
    pub(crate) fn serve(
        self,
        setup: Setup,
        cancel: &CancellationToken,
    ) -> Result<Vec<Listener>, EncryptedError> {
        let mut out = Vec::new();
        let Some(first) = self.first else {
            return Ok(out);
        };
        let resolver = Arc::new(CertResolver {
            shared: setup.answering.shared().clone(),
            first,
        });
        if !self.tls.is_empty() {
            let acceptor = TlsAcceptor::from(server_config(b"dot", resolver.clone())?);
            let serving = Serving {
                answering: setup.answering.clone(),
                idle: setup.timeout,
                stop: cancel.clone(),
            };
            let table = Conns::new(setup.tls);
            let stream = Stream::new(acceptor, table, Proto::Tls, serving, &setup.telemetry);
            for (l, at) in self.tls.into_iter().zip(&self.bound.tls) {
                let t = setup.telemetry.clone();
                out.push(Listener {
                    name: "tls",
                    run: Box::pin(tcp::serve(l, stream.clone(), t, cancel.clone())),
                });
                tracing::info!(bound = %at, "dns listening on tls");
            }
        }
        if !self.https.is_empty() {
            let doh = doh::Doh {
                tls: TlsAcceptor::from(server_config(b"h2", resolver)?),
                answerer: Arc::new(doh::Answerer {
                    queries: tcp::query_count(Proto::Https, &setup.telemetry),
                    idle: setup.timeout,
                    stop: cancel.clone(),
                }),
                table: Conns::new(setup.https),
                shed: tcp::shed_counts(Proto::Https, &setup.telemetry),
                answering: setup.answering,
            };
            for (l, at) in self.https.into_iter().zip(&self.bound.https) {
                let t = setup.telemetry.clone();
                out.push(Listener {
                    name: "https",
                    run: Box::pin(doh::serve(l, doh.clone(), t, cancel.clone())),
                });
                tracing::info!(bound = %at, "dns listening on https");
            }
        }
        Ok(out)
    }
}

/// Binds one listener of `what` (`tls` or `https`); returns it and the address it got.
fn bind_one(
    what: &'static str,
    addr: SocketAddr,
    all: &[SocketAddr],
) -> Result<(TcpListener, SocketAddr), EncryptedError> {
    let bound = listener::bind_tcp(addr, listener::v6_only(addr, all))
        .and_then(TcpListener::from_std)
        .and_then(|l| Ok((l.local_addr()?, l)));
    match bound {
        Ok((at, l)) => Ok((l, at)),
        Err(source) => Err(EncryptedError::Bind { what, addr, source }),
    }
}
