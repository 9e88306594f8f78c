//! PEM files: read bounded (regular files only, never blocking on a FIFO) with their hash
//! recorded, and certificate chains parsed from them. The TLS listener's certificate and the
//! load source's and the TLS health check's CA files all read through here.

use std::io::Read;
use std::path::Path;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::SourceFile;
use crate::files::lower;

/// Largest PEM file read (a chain of a few certificates is a few KiB).
const MAX_PEM: u64 = 1 << 20;

/// Reads a PEM file (bounded, regular files only, never blocking on a FIFO) and records its
/// hash so a renewal on disk counts as a config change.
pub(super) fn read_pem(path: &Path, files: &mut Vec<SourceFile>) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e: std::io::Error| {
        format!(
            "cannot read {}: {}",
            path.display(),
            crate::files::io_reason(&e)
        )
    };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(fail)?;
    if !f.metadata().map_err(fail)?.is_file() {
        return Err(format!("{}: not a regular file", path.display()));
    }
    let mut bytes = Vec::new();
    f.take(MAX_PEM + 1).read_to_end(&mut bytes).map_err(fail)?;
    if bytes.len() as u64 > MAX_PEM {
        return Err(format!("{}: larger than {MAX_PEM} bytes", path.display()));
    }
    files.push(SourceFile {
        path: path.to_path_buf(),
        hash: super::source::content_hash(&bytes),
    });
    Ok(bytes)
}

pub(super) fn chain(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad PEM: {}", lower(&e.to_string())))?;
    if certs.is_empty() {
        return Err("no PEM certificate (BEGIN CERTIFICATE) found".into());
    }
    Ok(certs)
}

/// The certificates of a CA file named at `key`, each checked usable as a trust anchor; an
/// error is reported at the key's position.
pub(super) fn trust_anchors(
    f: &serde_saphyr::Spanned<String>,
    key: &str,
    base: &Path,
    files: &mut Vec<SourceFile>,
    sink: &mut super::error::Sink,
) -> Option<std::sync::Arc<[CertificateDer<'static>]>> {
    let path = base.join(&f.value);
    let certs = read_pem(&path, files)
        .and_then(|b| chain(&b).map_err(|e| format!("{}: {e}", path.display())))
        .and_then(|certs| {
            let mut roots = rustls::RootCertStore::empty();
            for c in &certs {
                roots.add(c.clone()).map_err(|e| {
                    format!(
                        "{}: not a usable CA certificate: {}",
                        path.display(),
                        lower(&e.to_string())
                    )
                })?;
            }
            Ok(certs)
        });
    certs.map(Into::into).map_err(|e| sink.on(f, key, e)).ok()
}
