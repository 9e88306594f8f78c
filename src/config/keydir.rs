//! A zone's keys directory (`dnssec.keys`): one PKCS#8 file and one sidecar of timings per
//! key (`example.com.zsk.2.pem`, `example.com.zsk.2.yaml`), read bounded and recorded so an
//! edit reloads; the key set they make at this time; and the keys written into it: the first
//! KSK and ZSK of an empty directory (never again into one that had keys since the process
//! started), a ZSK's successor when it is due. Every name is fixed by the zone, role and
//! number, a private key is written before its sidecar, and nothing is ever replaced by a
//! write, so instances sharing the directory keep whichever key was written first.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::error::{ConfigError, Sink};
use super::{DnssecSettings, RollSettings, SourceFile, ZoneConfig, raw};
use crate::dnssec::{
    Algorithm, FLAGS_KSK, FLAGS_ZSK, KeySet, Policy, Role, SetKey, Timings, ZoneKey,
};

/// Most keys (sidecars) one zone may have in its directory.
pub(crate) const MAX_KEYS: usize = 256;
/// Most directory entries looked at.
const MAX_ENTRIES: usize = 10_000;

/// Seconds since the epoch now.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A time in the sidecars' form: RFC 3339, UTC, whole seconds.
pub(crate) fn time_text(t: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t)).to_string()
}

fn parse_time(s: &str) -> Result<u64, String> {
    let t = humantime::parse_rfc3339(s.trim())
        .map_err(|_| format!("`{s}` is not an RFC 3339 time in UTC (like 2026-12-07T00:00:00Z)"))?;
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| format!("`{s}` is before 1970"))
}

/// The waits of the zone's rollovers: the DNSKEY TTL is the zone's `ttl`, the largest signed
/// TTL the largest of the zone's TTLs.
pub(crate) fn policy(z: &ZoneConfig, r: &RollSettings) -> Policy {
    let max_ttl = z
        .records
        .iter()
        .map(|rec| rec.ttl)
        .chain(
            z.services
                .iter()
                .flat_map(|s| [Some(s.ttl), s.trouble_ttl])
                .flatten(),
        )
        .chain([z.ttl, z.soa.minimum])
        .max()
        .unwrap_or(z.ttl);
    Policy {
        publish_wait: u64::from(z.ttl) + r.propagation,
        zsk_remove_wait: u64::from(max_ttl) + r.propagation,
        ksk_remove_wait: r.ds_ttl + r.propagation,
        zsk_lifetime: r.zsk_lifetime,
        ds_wait: r.ds_wait,
    }
}

/// The zone's part of a file name: `example.com` (`root` for the root zone).
pub(crate) fn zone_stem(z: &ZoneConfig) -> String {
    let name = z.origin.to_lowercase().to_ascii();
    let name = name.trim_end_matches('.');
    if name.is_empty() {
        "root".into()
    } else {
        name.into()
    }
}

/// The file of key `seq` of `role` with `ext` (`pem`, `yaml`).
pub(crate) fn key_path(dir: &Path, zone: &str, role: Role, seq: u32, ext: &str) -> PathBuf {
    dir.join(format!("{zone}.{}.{seq}.{ext}", role.as_str()))
}

/// The sidecar of a key with `t`.
pub(crate) fn sidecar_text(alg: Algorithm, t: &Timings) -> String {
    let mut out = format!(
        "# sipsteer DNSSEC key timings (RFC 3339, UTC)\nalgorithm: {}\npublish: {}\nactive: {}\n",
        alg.number(),
        time_text(t.publish),
        time_text(t.active)
    );
    for (name, v) in [("retire", t.retire), ("remove", t.remove)] {
        if let Some(v) = v {
            out.push_str(&format!("{name}: {}\n", time_text(v)));
        }
    }
    out
}

/// Writes key `seq` of `role`: its private key (unless one is there) and its sidecar (unless
/// one is there: another instance wrote it first, and its timings stand).
pub(crate) fn create(
    dir: &Path,
    zone: &str,
    alg: Algorithm,
    role: Role,
    seq: u32,
    t: &Timings,
) -> Result<(), String> {
    generate_if_missing(&key_path(dir, zone, role, seq, "pem"), alg)?;
    let sidecar = key_path(dir, zone, role, seq, "yaml");
    if let Err(e) = crate::dnssec::write_private(&sidecar, sidecar_text(alg, t).as_bytes())
        && std::fs::symlink_metadata(&sidecar).is_err()
    {
        return Err(format!("cannot write {}: {e}", sidecar.display()));
    }
    tracing::info!(key = %sidecar.display(), "wrote a DNSSEC key");
    Ok(())
}

/// The zone's sidecars in `dir`: role, number and path. A missing directory has none.
fn list(dir: &Path, zone: &str) -> Result<Vec<(Role, u32, PathBuf)>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(format!(
                "cannot read {}: {}",
                dir.display(),
                crate::files::io_reason(&e)
            ));
        }
    };
    let prefix = format!("{zone}.");
    let mut out = Vec::new();
    for entry in entries.take(MAX_ENTRIES) {
        let entry = entry.map_err(|e| {
            format!(
                "cannot read {}: {}",
                dir.display(),
                crate::files::io_reason(&e)
            )
        })?;
        let name = entry.file_name();
        let Some(rest) = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|n| n.strip_suffix(".yaml"))
        else {
            continue;
        };
        let Some((role, seq)) = rest.split_once('.') else {
            continue;
        };
        let role = match role {
            "ksk" => Role::Ksk,
            "zsk" => Role::Zsk,
            _ => continue,
        };
        let Ok(seq) = seq.parse::<u32>() else {
            continue;
        };
        out.push((role, seq, entry.path()));
    }
    if out.len() > MAX_KEYS {
        return Err(format!(
            "{}: more than {MAX_KEYS} keys of zone {zone}; remove the sidecars of removed keys",
            dir.display()
        ));
    }
    out.sort();
    Ok(out)
}

/// A key's sidecar: its timings, checked, and where its `algorithm` is written.
fn read_timings(
    zone_alg: Algorithm,
    path: &Path,
    files: &mut Vec<SourceFile>,
    errors: &mut Vec<ConfigError>,
) -> Option<(Timings, (u64, u64))> {
    let bytes = match super::pem::read_pem(path, files) {
        Ok(b) => b,
        Err(e) => {
            errors.push(super::error::whole_file(path, e));
            return None;
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    let raw: raw::KeyTimings = match serde_saphyr::from_str(&text) {
        Ok(r) => r,
        Err(e) => {
            errors.push(super::error::from_yaml(path, &e));
            return None;
        }
    };
    let before = errors.len();
    let mut sink = Sink {
        file: path,
        errors: &mut *errors,
    };
    match Algorithm::parse(&raw.algorithm.value.0) {
        Some(a) if a == zone_alg => {}
        Some(a) => sink.on(
            &raw.algorithm,
            "algorithm",
            format!(
                "algorithm {} does not match the zone's algorithm {} (`dnssec.algorithm`)",
                a.number(),
                zone_alg.number()
            ),
        ),
        None => sink.on(
            &raw.algorithm,
            "algorithm",
            format!(
                "algorithm `{}` is not supported (use 13, ECDSA P-256, or 15, Ed25519)",
                raw.algorithm.value.0
            ),
        ),
    }
    let mut time = |v: &raw::S<String>, name: &str| match parse_time(&v.value) {
        Ok(t) => Some(t),
        Err(e) => {
            sink.on(v, name, e);
            None
        }
    };
    let publish = time(&raw.publish, "publish");
    let active = time(&raw.active, "active");
    let retire = raw.retire.as_ref().map(|v| (v, time(v, "retire")));
    let remove = raw.remove.as_ref().map(|v| (v, time(v, "remove")));
    let (Some(publish), Some(active)) = (publish, active) else {
        return None;
    };
    let order = [
        (
            "active",
            Some((&raw.active, Some(active))),
            "publish",
            publish,
        ),
        ("retire", retire, "active", active),
        ("remove", remove, "active", active),
    ];
    for (name, v, after, t0) in order {
        if let Some((v, Some(t))) = v
            && t < t0
        {
            sink.on(v, name, format!("`{name}` is before `{after}`"));
        }
    }
    if errors.len() > before {
        return None;
    }
    let t = Timings {
        publish,
        active,
        retire: retire.and_then(|(_, t)| t),
        remove: remove.and_then(|(_, t)| t),
    };
    let at = (
        raw.algorithm.referenced.line(),
        raw.algorithm.referenced.column(),
    );
    Some((t, at))
}

/// Reads one key: its sidecar (timings checked) and its private key. A private key is
/// written before its sidecar, so a sidecar without one was deleted by mistake: an error,
/// never a new key under the old name.
fn read_key(
    zone_alg: Algorithm,
    (role, seq, path): &(Role, u32, PathBuf),
    files: &mut Vec<SourceFile>,
    errors: &mut Vec<ConfigError>,
) -> Option<SetKey> {
    let (timings, at) = read_timings(zone_alg, path, files, errors)?;
    let pem_path = path.with_extension("pem");
    let flags = if *role == Role::Ksk {
        FLAGS_KSK
    } else {
        FLAGS_ZSK
    };
    let fail = |message: String| ConfigError {
        file: path.clone(),
        line: at.0,
        column: at.1,
        path: "algorithm".into(),
        message,
    };
    let key = super::pem::read_pem(&pem_path, files)
        .and_then(|b| {
            ZoneKey::from_pkcs8_flags(zone_alg, flags, &b)
                .map_err(|e| format!("{}: {e}", pem_path.display()))
        })
        .map_err(|e| errors.push(fail(e)))
        .ok()?;
    Some(SetKey {
        role: *role,
        seq: *seq,
        timings,
        key: std::sync::Arc::new(key),
    })
}

/// Where a zone's keys are and when they are loaded.
pub(super) struct Load<'a> {
    pub dir: &'a Path,
    /// Where `dnssec.keys` is written (line, column).
    pub at: (u64, u64),
    /// Seconds since the epoch.
    pub now: u64,
}

/// The zone's key set in `dir` at `now`: the first KSK and ZSK written into an empty
/// directory, a due ZSK successor written (when the directory is writable; otherwise the set
/// says it is due). Problems of the directory are reported at `dnssec.keys` (`at`), problems
/// of a key in its sidecar.
pub(super) fn load(
    z: &ZoneConfig,
    d: &DnssecSettings,
    l: &Load<'_>,
    keyed: &mut super::cache::Keyed,
    files: &mut Vec<SourceFile>,
    errors: &mut Vec<ConfigError>,
) -> Option<KeySet> {
    let (dir, at, now) = (l.dir, l.at, l.now);
    let fail = |message: String| ConfigError {
        file: z.file.clone(),
        line: at.0,
        column: at.1,
        path: "dnssec.keys".into(),
        message,
    };
    let policy = policy(z, &d.roll);
    // A ZSK must live long enough for its successor to be published and its own signatures
    // to leave the caches, or each new ZSK would need a successor at once.
    let shortest = 2 * policy.publish_wait + policy.zsk_remove_wait;
    if let Some(l) = policy.zsk_lifetime
        && l < shortest
    {
        errors.push(ConfigError {
            file: z.file.clone(),
            line: d.roll.zsk_lifetime_at.0,
            column: d.roll.zsk_lifetime_at.1,
            path: "dnssec.zsk_lifetime".into(),
            message: format!(
                "must be at least {shortest}s for this zone: twice the publish wait ({}s: ttl and \
                 propagation) and the removal wait ({}s: the largest TTL and propagation)",
                policy.publish_wait, policy.zsk_remove_wait
            ),
        });
        return None;
    }
    let zone = zone_stem(z);
    let mut wrote = false;
    loop {
        let mut listed = list(dir, &zone).map_err(|e| errors.push(fail(e))).ok()?;
        let known = (z.origin.clone(), dir.to_path_buf());
        if listed.is_empty() && keyed.contains(&known) {
            errors.push(fail(format!(
                "{} has no keys of zone {zone} any more (it had at an earlier load): restore \
                 them; first keys are written only into a directory that had none since \
                 sipsteer started",
                dir.display()
            )));
            return None;
        }
        if listed.is_empty() && !wrote {
            let t = Timings {
                publish: now,
                active: now,
                ..Timings::default()
            };
            for role in [Role::Ksk, Role::Zsk] {
                if let Err(e) = create(dir, &zone, d.algorithm, role, 1, &t) {
                    errors.push(fail(format!(
                        "no keys of zone {zone} in {} and none can be written: {e}",
                        dir.display()
                    )));
                    return None;
                }
            }
            wrote = true;
            listed = list(dir, &zone).map_err(|e| errors.push(fail(e))).ok()?;
        }
        let mut read = Vec::new();
        let mut bad = Vec::new();
        let keys: Vec<SetKey> = listed
            .iter()
            .filter_map(|k| read_key(d.algorithm, k, &mut read, &mut bad))
            .collect();
        if !bad.is_empty() {
            errors.extend(bad);
            return None;
        }
        let set = KeySet::rolling(keys, policy, now)
            .map_err(|e| errors.push(fail(format!("{}: {e}", dir.display()))))
            .ok()?;
        let last = set.keys.iter().rfind(|k| k.role == Role::Zsk);
        let end = last.and_then(|k| crate::dnssec::zsk_end(k, &policy));
        if let (Some(_), Some(end), false) = (set.successor_due, end, wrote) {
            let seq = set.next_seq(Role::Zsk);
            let t = crate::dnssec::successor_timings(now, end, &policy);
            match create(dir, &zone, d.algorithm, Role::Zsk, seq, &t) {
                Ok(()) => {
                    wrote = true;
                    continue;
                }
                Err(e) => tracing::error!(zone, "cannot write the next ZSK: {e}"),
            }
        }
        files.extend(read);
        keyed.insert(known);
        return Some(set);
    }
}

/// Writes a new key (flags do not matter in the file) at `path` unless a file is there ([`crate::dnssec::write_private`]). A
/// key another process wrote meanwhile (two instances sharing the state directory) is kept.
pub(super) fn generate_if_missing(path: &Path, algorithm: Algorithm) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecars_round_trip_and_only_the_zones_own_are_listed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = Timings {
            publish: 1_796_601_600,
            active: 1_796_605_200,
            retire: Some(1_804_377_600),
            remove: None,
        };
        let text = sidecar_text(Algorithm::Ed25519, &t);
        assert!(text.ends_with(
            "algorithm: 15\npublish: 2026-12-07T00:00:00Z\nactive: 2026-12-07T01:00:00Z\nretire: 2027-03-07T00:00:00Z\n"
        ));
        assert_eq!(parse_time("2026-12-07T00:00:00Z"), Ok(1_796_601_600));
        assert_eq!(
            parse_time("2026-12-07"),
            Err("`2026-12-07` is not an RFC 3339 time in UTC (like 2026-12-07T00:00:00Z)".into())
        );
        for name in [
            "example.com.zsk.2.yaml",
            "example.com.ksk.1.yaml",
            "example.com.zsk.2.pem",
            "example.com.csk.1.yaml",
            "example.com.zsk.two.yaml",
            "sub.example.com.zsk.1.yaml",
            ".example.com.zsk.3.yaml.tmp",
        ] {
            std::fs::write(dir.path().join(name), &text).expect("write");
        }
        let got: Vec<(Role, u32)> = list(dir.path(), "example.com")
            .expect("list")
            .into_iter()
            .map(|(r, n, _)| (r, n))
            .collect();
        assert_eq!(got, [(Role::Ksk, 1), (Role::Zsk, 2)]);
        assert_eq!(
            list(&dir.path().join("missing"), "example.com").expect("list"),
            []
        );
    }
}
