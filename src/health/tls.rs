//! SIP OPTIONS over TLS: a TCP connect, a handshake that sends the server's `tls_name` as SNI
//! and verifies the chain against the configured CA file or the built-in roots and the name
//! against the certificate's subjectAltName DNS entries (RFC 5922), then the OPTIONS exchange
//! of `tcp` (or, for `sip-options-wss`, the WebSocket exchange of `ws`), all within the probe
//! timeout. The leaf certificate's notAfter is read whatever
//! the verification says, and a failure is classified (expired, name mismatch, untrusted,
//! handshake, timeout).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::cert;
use super::tcp::options;
use super::vocab::{CodePolicy, ProbeError, ProbeResult, Res, Target, TlsFailure, TlsSeen};
use super::ws;
use crate::config::{Check, TlsCheck};
use crate::lock::guard;

/// Runs one TLS check of `target`, bounded by `timeout`.
pub(crate) async fn probe(target: &Target, timeout: Duration, policy: &CodePolicy) -> ProbeResult {
    let start = Instant::now();
    let seen = Arc::new(Mutex::new(TlsSeen::default()));
    let r = match &target.tls {
        Some(check) => run(target, check, &seen, timeout, policy).await,
        None => Err(ProbeError::Tls("no tls_name to verify".into())),
    };
    let mut tls = *guard(&seen);
    match &r {
        Err(ProbeError::Timeout(_)) => tls.failure = Some(TlsFailure::Timeout),
        Err(_) if tls.failure.is_some() => {}
        Err(ProbeError::Tls(_)) => tls.failure = Some(TlsFailure::Handshake),
        _ => {}
    }
    let mut result = ProbeResult::from_res(r, start.elapsed());
    result.tls = Some(tls);
    result
}

async fn run(
    target: &Target,
    check: &TlsCheck,
    seen: &Arc<Mutex<TlsSeen>>,
    timeout: Duration,
    policy: &CodePolicy,
) -> Res {
    let config = client(check, seen.clone()).map_err(ProbeError::Tls)?;
    let name = ServerName::try_from(check.name.clone())
        .map_err(|_| ProbeError::Tls(format!("invalid tls name `{}`", check.name)))?;
    let addr = target.addr;
    let fut = async {
        let tcp = TcpStream::connect(addr).await?;
        let local = tcp.local_addr()?;
        let mut s = TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| ProbeError::Tls(crate::files::lower(&e.to_string())))?;
        if target.check == Check::SipWss {
            return ws::exchange(s, target, local, Some(&check.name), policy).await;
        }
        options(&mut s, addr, local, "TLS", policy).await
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(ProbeError::Timeout(timeout)),
    }
}

/// A client that verifies as [`TlsCheck`] says and records what it saw in `seen`.
fn client(
    check: &TlsCheck,
    seen: Arc<Mutex<TlsSeen>>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    match &check.ca {
        Some(certs) => {
            for c in certs.iter() {
                roots.add(c.clone()).map_err(|e| e.to_string())?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Recording { inner, seen }))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The standard verifier, noting the leaf's notAfter and why verification failed.
#[derive(Debug)]
struct Recording {
    inner: Arc<WebPkiServerVerifier>,
    seen: Arc<Mutex<TlsSeen>>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut r = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        if r.is_ok()
            && let ServerName::DnsName(domain) = server_name
            && !cert::names_sip_domain(end_entity, domain.as_ref())
        {
            r = Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName,
            ));
        }
        let mut seen = guard(&self.seen);
        seen.not_after = cert::not_after(end_entity);
        if let Err(e) = &r {
            seen.failure = Some(classify(e));
        }
        r
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Which failure a verification error is.
fn classify(e: &rustls::Error) -> TlsFailure {
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => TlsFailure::Expired,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsFailure::NameMismatch
            }
            _ => TlsFailure::Untrusted,
        },
        _ => TlsFailure::Handshake,
    }
}
