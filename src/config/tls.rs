//! The encrypted DNS listeners' settings: `listen.tls` (DNS over TLS), `listen.https` (DNS over
//! HTTPS) and the `tls:` certificate and key. The PEM files are read and checked (parsed, key
//! matching the certificate) while the config loads, so `sipsteer check` validates them and a
//! broken renewal is refused like any other config error while the old certificate serves on.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use rustls::sign::CertifiedKey;

use super::error::Sink;
use super::pem::{chain, read_pem};
use super::{SourceFile, raw};
use crate::files::lower;

/// The certificate chain and key, as loaded.
#[derive(Clone)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
    /// Ready for rustls; swapped in on reload.
    pub certified: Arc<CertifiedKey>,
}

impl fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsFiles")
            .field("certificate", &self.certificate)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// What `listen.tls`, `listen.https` and `tls:` load into.
pub(crate) struct Encrypted {
    pub listen_tls: Vec<SocketAddr>,
    pub listen_https: Vec<SocketAddr>,
    pub files: Option<TlsFiles>,
}

pub(super) fn load(
    main: &raw::Main,
    base: &Path,
    files: &mut Vec<SourceFile>,
    sink: &mut Sink,
) -> Encrypted {
    let listen_tls = addresses(main.listen.tls.as_ref(), "listen.tls", sink);
    let listen_https = addresses(main.listen.https.as_ref(), "listen.https", sink);
    let tls = main
        .tls
        .as_ref()
        .and_then(|t| certified(t, base, files, sink));
    if main.tls.is_none() {
        for (v, key) in [
            (&main.listen.tls, "listen.tls"),
            (&main.listen.https, "listen.https"),
        ] {
            if let Some(v) = v
                && (!listen_tls.is_empty() || !listen_https.is_empty())
            {
                sink.on(
                    v,
                    key,
                    "encrypted DNS needs `tls: { certificate: PATH, key: PATH }`",
                );
            }
        }
    }
    Encrypted {
        listen_tls,
        listen_https,
        files: tls,
    }
}

fn addresses(
    v: Option<&serde_saphyr::Spanned<super::values::Values>>,
    key: &str,
    sink: &mut Sink,
) -> Vec<SocketAddr> {
    let Some(v) = v else { return Vec::new() };
    let mut out = Vec::new();
    for (s, loc) in v.value.items(v.referenced) {
        match s.parse::<SocketAddr>() {
            Ok(a) => out.push(a),
            Err(_) => sink.at(
                loc,
                key,
                format!("invalid listen address `{s}` (use ip:port, [v6]:port)"),
            ),
        }
    }
    out
}

/// Reads both PEM files, records them as config files, and checks that they belong together.
fn certified(
    t: &raw::Tls,
    base: &Path,
    files: &mut Vec<SourceFile>,
    sink: &mut Sink,
) -> Option<TlsFiles> {
    let cert_path = base.join(&t.certificate.value);
    let key_path = base.join(&t.key.value);
    let cert = read_pem(&cert_path, files)
        .and_then(|b| chain(&b).map_err(|e| format!("{}: {e}", cert_path.display())));
    let key = read_pem(&key_path, files)
        .and_then(|b| signing_key(&b).map_err(|e| format!("{}: {e}", key_path.display())));
    let (chain, key) = match (cert, key) {
        (Ok(c), Ok(k)) => (c, k),
        (c, k) => {
            if let Err(e) = c {
                sink.on(&t.certificate, "tls.certificate", e);
            }
            if let Err(e) = k {
                sink.on(&t.key, "tls.key", e);
            }
            return None;
        }
    };
    let ck = CertifiedKey::new(chain, key);
    if let Err(e) = ck.keys_match() {
        let msg = match e {
            rustls::Error::InconsistentKeys(_) => format!(
                "key {} does not match certificate {}",
                key_path.display(),
                cert_path.display()
            ),
            e => format!(
                "{}: bad certificate: {}",
                cert_path.display(),
                lower(&e.to_string())
            ),
        };
        sink.on(&t.certificate, "tls.certificate", msg);
        return None;
    }
    Some(TlsFiles {
        certificate: cert_path,
        key: key_path,
        certified: Arc::new(ck),
    })
}

fn signing_key(pem: &[u8]) -> Result<Arc<dyn rustls::sign::SigningKey>, String> {
    let key = PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            "no PEM private key (BEGIN PRIVATE KEY) found".to_string()
        }
        e => format!("bad PEM: {}", lower(&e.to_string())),
    })?;
    rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| format!("unusable private key: {}", lower(&e.to_string())))
}
