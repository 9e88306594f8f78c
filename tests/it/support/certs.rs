//! Certificates for TLS SIP responders: a CA made for one test, leaves for a name with a
//! chosen validity, and the acceptor that presents one.

use std::sync::Arc;

use rcgen::{CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, date_time_ymd};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// 2099-01-01T00:00:00Z, the notAfter of a valid leaf.
pub(crate) const VALID_UNTIL: i64 = 4_070_908_800;
/// 2020-01-01T00:00:00Z, the notAfter of an expired leaf.
pub(crate) const EXPIRED_AT: i64 = 1_577_836_800;

pub(crate) struct SipCa {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl SipCa {
    pub(crate) fn new() -> SipCa {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(DnType::CommonName, "sipsteer sip test ca");
        let key = KeyPair::generate().expect("ca key");
        SipCa {
            ca: CertifiedIssuer::self_signed(p, key).expect("ca cert"),
        }
    }

    /// The CA certificate as PEM (a `health.tls_ca_file`).
    pub(crate) fn pem(&self) -> String {
        self.ca.pem()
    }

    /// A leaf naming `name` (subjectAltName DNS), valid until `expired` says
    /// ([`EXPIRED_AT`] if so, else [`VALID_UNTIL`]), presented by the acceptor returned.
    pub(crate) fn acceptor(&self, name: &str, expired: bool) -> TlsAcceptor {
        self.acceptor_until(name, if expired { EXPIRED_AT } else { VALID_UNTIL })
    }

    /// A leaf naming `name`, valid from 2019-01-01 until `not_after` (Unix seconds, after
    /// 2019), presented by the acceptor returned.
    pub(crate) fn acceptor_until(&self, name: &str, not_after: i64) -> TlsAcceptor {
        let mut p = CertificateParams::new(vec![name.to_string()]).expect("params");
        p.distinguished_name.push(DnType::CommonName, name);
        p.not_before = date_time_ymd(2019, 1, 1);
        let secs = u64::try_from(not_after).expect("after 1970");
        p.not_after = date_time_ymd(1970, 1, 1) + std::time::Duration::from_secs(secs);
        let key = KeyPair::generate().expect("leaf key");
        let cert = p.signed_by(&key, &self.ca).expect("leaf cert");
        acceptor(
            vec![cert.der().clone(), self.ca.der().clone()],
            &key.serialize_pem(),
        )
    }
}

/// A self-signed leaf for `name`, trusted by nobody.
pub(crate) fn self_signed(name: &str) -> TlsAcceptor {
    let key = KeyPair::generate().expect("key");
    let p = CertificateParams::new(vec![name.to_string()]).expect("params");
    let cert = p.self_signed(&key).expect("cert");
    acceptor(vec![cert.der().clone()], &key.serialize_pem())
}

fn acceptor(chain: Vec<CertificateDer<'static>>, key_pem: &str) -> TlsAcceptor {
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key pem");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config");
    TlsAcceptor::from(Arc::new(cfg))
}
