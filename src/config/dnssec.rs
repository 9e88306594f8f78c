//! A zone's `dnssec:` block (algorithm, key file or keys directory, rollover settings) and its
//! key set: one combined signing key read from the key file it names (PEM or DER PKCS#8,
//! bounded, recorded so an edit reloads) or, with no key named, read from `state_dir/dnssec/`
//! and generated there the first time; or the KSKs and ZSKs of a keys directory
//! ([`super::keydir`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hickory_proto::rr::Name;

use super::RollSettings;
use super::error::{ConfigError, Sink};
use super::{DnssecSettings, SourceFile, ZoneConfig, raw};
use crate::dnssec::{Algorithm, KeySet, ZoneKey};

/// `dnssec.propagation` when not set: an hour for a change to reach every secondary.
const DEFAULT_PROPAGATION: u64 = 3_600;
/// `dnssec.ds_ttl` when not set: a day, the DS TTL of most top-level zones.
const DEFAULT_DS_TTL: u64 = 86_400;
/// The shortest `zsk_lifetime`.
const MIN_ZSK_LIFETIME: u64 = 3_600;

/// `dns.signature_cache`: the most RRSIGs of steered answers held.
pub(super) fn signature_cache(c: Option<&raw::S<u32>>, sink: &mut Sink) -> usize {
    match c {
        None => super::DEFAULT_SIGNATURE_CACHE,
        Some(c) if (16..=10_000_000).contains(&c.value) => c.value as usize,
        Some(c) => {
            sink.on(c, "dns.signature_cache", "must be between 16 and 10000000");
            super::DEFAULT_SIGNATURE_CACHE
        }
    }
}

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
    let keys = d.value.keys.as_ref();
    if let Some(k) = keys {
        if key.is_some() {
            sink.on(
                k,
                "dnssec.keys",
                "set `key` (one combined signing key) or `keys` (a directory of KSKs and ZSKs), not both",
            );
            return None;
        }
        if k.value.trim().is_empty() {
            sink.on(k, "dnssec.keys", "an empty keys directory path");
            return None;
        }
    }
    let roll = roll_settings(&d.value, keys.is_some(), sink)?;
    Some(DnssecSettings {
        algorithm,
        key: key.map(|k| k.value.clone()),
        at: (d.referenced.line(), d.referenced.column()),
        key_at: key.map(|k| (k.referenced.line(), k.referenced.column())),
        keys: keys.map(|k| {
            (
                k.value.clone(),
                (k.referenced.line(), k.referenced.column()),
            )
        }),
        roll,
    })
}

/// The rollover settings; each needs a keys directory.
fn roll_settings(d: &raw::Dnssec, dir: bool, sink: &mut Sink) -> Option<RollSettings> {
    let mut ok = true;
    let mut get = |v: &Option<raw::S<String>>, name: &str, min: u64| -> Option<u64> {
        let v = v.as_ref()?;
        let path = format!("dnssec.{name}");
        if !dir {
            sink.on(
                v,
                path,
                format!("`{name}` needs `keys` (a directory of KSKs and ZSKs)"),
            );
            ok = false;
            return None;
        }
        match days_or_duration(&v.value) {
            Ok(t) if t.as_secs() >= min => Some(t.as_secs()),
            Ok(_) => {
                sink.on(v, path, format!("must be at least {min}s"));
                ok = false;
                None
            }
            Err(e) => {
                sink.on(v, path, e);
                ok = false;
                None
            }
        }
    };
    let settings = RollSettings {
        zsk_lifetime: get(&d.zsk_lifetime, "zsk_lifetime", MIN_ZSK_LIFETIME),
        zsk_lifetime_at: d
            .zsk_lifetime
            .as_ref()
            .map_or((0, 0), |v| (v.referenced.line(), v.referenced.column())),
        propagation: get(&d.propagation, "propagation", 0).unwrap_or(DEFAULT_PROPAGATION),
        ds_ttl: get(&d.ds_ttl, "ds_ttl", 0).unwrap_or(DEFAULT_DS_TTL),
        ds_wait: get(&d.ds_wait, "ds_wait", 0),
    };
    ok.then_some(settings)
}

/// A duration in days (`90d`) or as every other duration is written (`1h`, `30m`).
fn days_or_duration(s: &str) -> Result<std::time::Duration, String> {
    match s.trim().strip_suffix('d').map(str::parse::<u64>) {
        Some(Ok(days)) if days <= 36_500 => Ok(std::time::Duration::from_secs(days * 86_400)),
        Some(_) => Err(format!(
            "invalid duration `{s}` (use a number of days, like 90d)"
        )),
        None => super::parse_duration(s)
            .map_err(|e| e.replace("(use ms, s, m or h)", "(use d, h, m or s)")),
    }
}

/// The directories keys are found relative to or kept in.
pub(super) struct Dirs<'a> {
    /// `sipsteer.yaml`'s directory.
    pub base: &'a Path,
    /// `state_dir`, where generated single keys live.
    pub state: Option<&'a Path>,
    /// The zones directory (a keys directory must be another one).
    pub zones: &'a Path,
}

/// Whether `a` and `b` name the same directory (compared resolved when both exist).
fn same_dir(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => std::path::absolute(a).ok() == std::path::absolute(b).ok(),
    }
}

/// The key sets of the signed zones, the data-signing key of each, and the keys directories.
#[derive(Default)]
pub(super) struct Keys {
    pub keys: BTreeMap<Name, Arc<ZoneKey>>,
    pub sets: BTreeMap<Name, Arc<KeySet>>,
    pub dirs: BTreeMap<Name, PathBuf>,
}

/// The key set of every signed zone: its keys directory's KSKs and ZSKs at this time, or one
/// key read from its key file, or from (generated into) `state_dir`. Problems are reported at
/// the zone map's `dnssec:`, `dnssec.key` or `dnssec.keys`, or in a key's sidecar.
pub(super) fn keys(
    zones: &[Arc<ZoneConfig>],
    dirs: &Dirs<'_>,
    keyed: &mut super::cache::Keyed,
    files: &mut Vec<SourceFile>,
    errors: &mut Vec<ConfigError>,
) -> Keys {
    let (base, state_dir) = (dirs.base, dirs.state);
    let mut out = Keys::default();
    let now = super::keydir::now();
    for z in zones {
        let Some(d) = &z.dnssec else { continue };
        if let Some((dir, at)) = &d.keys {
            let dir = base.join(dir);
            if same_dir(&dir, dirs.zones) {
                errors.push(ConfigError {
                    file: z.file.clone(),
                    line: at.0,
                    column: at.1,
                    path: "dnssec.keys".into(),
                    message: "the keys directory cannot be the zones directory (every .yaml file there is a zone map)".into(),
                });
                continue;
            }
            let load = super::keydir::Load {
                dir: &dir,
                at: *at,
                now,
            };
            if let Some(set) = super::keydir::load(z, d, &load, keyed, files, errors) {
                out.keys.insert(z.origin.clone(), Arc::clone(&set.zsk));
                out.sets.insert(z.origin.clone(), Arc::new(set));
                out.dirs.insert(z.origin.clone(), dir);
            }
            continue;
        }
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
                if let Err(e) = super::keydir::generate_if_missing(&p, d.algorithm) {
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
                let k = Arc::new(k);
                out.keys.insert(z.origin.clone(), Arc::clone(&k));
                out.sets
                    .insert(z.origin.clone(), Arc::new(KeySet::single(k)));
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
