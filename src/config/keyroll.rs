//! `sipsteer dnssec roll`, `ds-seen` and `status`: the operator's side of a keys directory.
//! A roll writes the next key of its role (published now, active a publish wait later); the
//! server and every other instance see it on their next reload or rescan. `ds-seen` writes
//! the retire time of the KSKs a newer active KSK replaces, once the parent's DS points at
//! the new one. `status` prints every key with its state and times.

use std::path::Path;
use std::sync::Arc;

use hickory_proto::rr::Name;

use super::keydir::{create, key_path, now, sidecar_text, time_text, zone_stem};
use super::{Config, ZoneConfig};
use crate::dnssec::{KeySet, KeyState, Role, Timings};

/// The zones asked for (every zone with a key set when none is named), with their key sets.
fn zones<'a>(
    cfg: &'a Config,
    asked: &[String],
    need_dir: bool,
) -> Result<Vec<(&'a ZoneConfig, &'a Arc<KeySet>)>, String> {
    let same = |asked: &str, origin: &Name| {
        asked
            .trim_end_matches('.')
            .eq_ignore_ascii_case(origin.to_ascii().trim_end_matches('.'))
    };
    let ok = |z: &ZoneConfig| !need_dir || cfg.key_dirs.contains_key(&z.origin);
    for name in asked {
        if !cfg
            .zones
            .iter()
            .any(|z| same(name, &z.origin) && cfg.key_sets.contains_key(&z.origin) && ok(z))
        {
            let what = if need_dir {
                "has no keys directory here (`dnssec.keys`)"
            } else {
                "is not signed here (no zone map with `dnssec:` serves it)"
            };
            return Err(format!("zone `{name}` {what}"));
        }
    }
    let out: Vec<_> = cfg
        .zones
        .iter()
        .filter(|z| asked.is_empty() || asked.iter().any(|n| same(n, &z.origin)))
        .filter(|z| ok(z))
        .filter_map(|z| cfg.key_sets.get(&z.origin).map(|s| (&**z, s)))
        .collect();
    if out.is_empty() {
        let what = if need_dir {
            "has a keys directory (`dnssec.keys`)"
        } else {
            "is signed (no zone map has `dnssec:`)"
        };
        return Err(format!("no zone of {} {what}", cfg.file.display()));
    }
    Ok(out)
}

fn dir_of<'a>(cfg: &'a Config, z: &ZoneConfig) -> Result<&'a Path, String> {
    cfg.key_dirs
        .get(&z.origin)
        .map(std::path::PathBuf::as_path)
        .ok_or_else(|| format!("zone {} has no keys directory", zone_stem(z)))
}

/// `sipsteer dnssec roll zsk|ksk`: writes the next key of `role` of each zone.
pub fn roll(cfg: &Config, role: Role, asked: &[String]) -> Result<String, String> {
    let now = now();
    let mut out = String::new();
    for (z, set) in zones(cfg, asked, true)? {
        let zone = zone_stem(z);
        let name = role.as_str().to_uppercase();
        if let Some(s) = set.rolling_role(role) {
            return Err(format!(
                "{zone}: a {name} roll is under way: {name} {} (key tag {}) is {} and goes active at {}",
                s.seq,
                s.key_tag,
                s.state,
                time_text(s.active)
            ));
        }
        let dir = dir_of(cfg, z)?;
        let seq = set.next_seq(role);
        let t = Timings {
            publish: now,
            active: now + set.policy.publish_wait,
            ..Timings::default()
        };
        let alg = z.dnssec.as_ref().map(|d| d.algorithm).unwrap_or_default();
        create(dir, &zone, alg, role, seq, &t)?;
        out.push_str(&format!(
            "{zone}: wrote {name} {seq} ({}): published now, active at {}\n",
            key_path(dir, &zone, role, seq, "yaml").display(),
            time_text(t.active)
        ));
        if role == Role::Ksk {
            out.push_str(&format!(
                "{zone}: once it is active, give the parent its DS (`sipsteer dnssec ds`, or CDS) \
                 and run `sipsteer dnssec ds-seen {zone}` when the parent's DS has changed\n"
            ));
        }
    }
    Ok(out)
}

/// `sipsteer dnssec ds-seen`: the parent's DS points at the new KSK; the KSKs it replaces
/// retire now (they leave CDS and CDNSKEY, and the DNSKEY set once the DS TTL has passed).
pub fn ds_seen(cfg: &Config, asked: &[String]) -> Result<String, String> {
    let now = now();
    let mut out = String::new();
    for (z, set) in zones(cfg, asked, true)? {
        let zone = zone_stem(z);
        let dir = dir_of(cfg, z)?;
        let ksks: Vec<_> = set
            .keys
            .iter()
            .zip(&set.status)
            .filter(|(_, s)| s.role == Role::Ksk && s.state == KeyState::Active)
            .collect();
        // Every active KSK but the newest is replaced.
        let Some((_, replaced)) = ksks.split_last() else {
            continue;
        };
        if replaced.is_empty() {
            return Err(format!(
                "{zone}: no KSK roll waits for the parent's DS (the new KSK must be active first: \
                 `sipsteer dnssec status`)"
            ));
        }
        let alg = z.dnssec.as_ref().map(|d| d.algorithm).unwrap_or_default();
        for (k, s) in replaced {
            let path = key_path(dir, &zone, Role::Ksk, s.seq, "yaml");
            let t = Timings {
                retire: Some(now),
                ..k.timings
            };
            replace(&path, sidecar_text(alg, &t).as_bytes())?;
            out.push_str(&format!(
                "{zone}: KSK {} (key tag {}) retires now; it is removed at {}\n",
                s.seq,
                s.key_tag,
                time_text(now + set.policy.ksk_remove_wait)
            ));
        }
    }
    Ok(out)
}

/// Replaces `path` atomically (a temporary file in its directory, synced, renamed over it).
fn replace(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("cannot write {}: {}", path.display(), e);
    let tmp = crate::dnssec::write_temp(path, bytes).map_err(fail)?;
    let renamed = std::fs::rename(&tmp, path);
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed.map_err(fail)
}

/// `sipsteer dnssec status`: every key of each zone with its state and times, the next key
/// event, and a ZSK successor that is due and missing.
pub fn status(cfg: &Config, asked: &[String]) -> Result<String, String> {
    let opt = |t: Option<u64>| t.map_or("-".to_string(), time_text);
    let mut out = String::new();
    for (z, set) in zones(cfg, asked, false)? {
        let zone = zone_stem(z);
        out.push_str(&format!("{zone}: next key event {}\n", opt(set.next_event)));
        if let Some(due) = set.successor_due {
            out.push_str(&format!(
                "{zone}: the next ZSK was due at {} and could not be written\n",
                time_text(due)
            ));
        }
        out.push_str("  role seq  tag   state      publish               active                retire                remove\n");
        for s in &set.status {
            let (publish, active) = match s.role {
                Role::Csk => ("-".to_string(), "-".to_string()),
                _ => (time_text(s.publish), time_text(s.active)),
            };
            out.push_str(&format!(
                "  {:<4} {:<4} {:<5} {:<10} {:<21} {:<21} {:<21} {}\n",
                s.role.as_str(),
                s.seq,
                s.key_tag,
                s.state.as_str(),
                publish,
                active,
                opt(s.retire),
                opt(s.remove)
            ));
        }
    }
    Ok(out)
}
