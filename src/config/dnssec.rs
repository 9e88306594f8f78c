//! A zone's `dnssec:` block (algorithm, key file) and its signing key: read from the key file
//! it names (PEM or DER PKCS#8, bounded, recorded so an edit reloads), or, with no key named,
//! read from `state_dir/dnssec/` and generated there the first time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hickory_proto::rr::Name;

use super::error::{ConfigError, Sink};
use super::{DnssecSettings, SourceFile, ZoneConfig, raw};
use crate::dnssec::{Algorithm, ZoneKey};

/// Validates a zone's `dnssec:` block.
pub(super) fn settings(d: &raw::S<raw::Dnssec>, sink: &mut Sink) -> Option<DnssecSettings> {
    let algorithm = match &d.value.algorithm {
        None => Algorithm::default(),
        Some(a) => match Algorithm::parse(&a.value.0) {
            Some(alg) => alg,
            None => {
                let msg = format!(
                    "algorithm `{}` is not supported (use 13, ECDSA P-256, or 15, Ed25519)",
                    a.value.0
                );
                sink.on(a, "dnssec.algorithm", msg);
                return None;
            }
        },
    };
    let key = d.value.key.as_ref();
    if let Some(k) = key
        && k.value.trim().is_empty()
    {
        sink.on(k, "dnssec.key", "an empty key path");
        return None;
    }
    Some(DnssecSettings {
        algorithm,
        key: key.map(|k| k.value.clone()),
        at: (d.referenced.line(), d.referenced.column()),
        key_at: key.map(|k| (k.referenced.line(), k.referenced.column())),
    })
}

/// The signing key of every signed zone: read from its key file, or from (generated into)
/// `state_dir`. Problems are reported at the zone map's `dnssec:` or `dnssec.key`.
pub(super) fn keys(
    zones: &[Arc<ZoneConfig>],
    base: &Path,
    state_dir: Option<&Path>,
    files: &mut Vec<SourceFile>,
    errors: &mut Vec<ConfigError>,
) -> BTreeMap<Name, Arc<ZoneKey>> {
    let mut out = BTreeMap::new();
    for z in zones {
        let Some(d) = &z.dnssec else { continue };
        let fail = |at: (u64, u64), path: &str, message: String| ConfigError {
            file: z.file.clone(),
            line: at.0,
            column: at.1,
            path: path.into(),
            message,
        };
        let (path, at, key_path) = match (&d.key, d.key_at, state_dir) {
            (Some(k), Some(at), _) => (base.join(k), at, "dnssec.key"),
            (None, _, Some(dir)) => {
                let p = generated_path(dir, &z.origin, d.algorithm);
                if let Err(e) = generate_if_missing(&p, d.algorithm) {
                    errors.push(fail(d.at, "dnssec", e));
                    continue;
                }
                (p, d.at, "dnssec")
            }
            _ => {
                errors.push(fail(
                    d.at,
                    "dnssec",
                    "a signed zone needs a key: set `dnssec.key: FILE` (`sipsteer dnssec keygen FILE` \
                     writes one) or `state_dir:` in sipsteer.yaml to have one generated"
                        .into(),
                ));
                continue;
            }
        };
        let bytes = match super::pem::read_pem(&path, files) {
            Ok(b) => b,
            Err(e) => {
                errors.push(fail(at, key_path, e));
                continue;
            }
        };
        match ZoneKey::from_pkcs8(d.algorithm, &bytes) {
            Ok(k) => {
                out.insert(z.origin.clone(), Arc::new(k));
            }
            Err(e) => errors.push(fail(at, key_path, format!("{}: {e}", path.display()))),
        }
    }
    out
}

/// Where the generated key of `origin` lives: `STATE_DIR/dnssec/example.com.alg13.pem`.
pub(super) fn generated_path(state_dir: &Path, origin: &Name, algorithm: Algorithm) -> PathBuf {
    let name = origin.to_lowercase().to_ascii();
    let name = name.trim_end_matches('.');
    let name = if name.is_empty() { "root" } else { name };
    state_dir
        .join("dnssec")
        .join(format!("{name}.alg{}.pem", algorithm.number()))
}

/// Writes a new key at `path` unless a file is there ([`crate::dnssec::write_private`]). A
/// key another process wrote meanwhile (two instances sharing the state directory) is kept.
fn generate_if_missing(path: &Path, algorithm: Algorithm) -> Result<(), String> {
    if std::fs::symlink_metadata(path).is_ok() {
        return Ok(());
    }
    let pem = ZoneKey::generate_pem(algorithm).map_err(|e| e.to_string())?;
    if let Err(e) = crate::dnssec::write_private(path, pem.as_bytes()) {
        if std::fs::symlink_metadata(path).is_ok() {
            return Ok(());
        }
        return Err(format!(
            "cannot write generated key {}: {e}",
            path.display()
        ));
    }
    tracing::info!(key = %path.display(), "generated a DNSSEC key");
    Ok(())
}
