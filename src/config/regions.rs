//! The `regions:` section: validating regions and their servers (with their probe settings),
//! the places steering can send clients to.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;

use serde_saphyr::Spanned;

use super::error::Sink;
use super::probe::{self, HealthDefaults};
use super::raw;
use super::values::Values;
use super::{
    CONTINENTS, Capacity, Check, MAX_RECORDS_PER_NAME, ProbeConfig, RegionConfig, ServerConfig,
    Transport,
};

/// Whether `s` can be one DNS label of a generated name (`uk`, `lon1`, `us-east`).
fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Every region of the config, with where it was defined.
#[derive(Default)]
pub(super) struct RegionTable {
    regions: Vec<RegionConfig>,
    /// name → (index, defining file; `None` = shared from sipsteer.yaml).
    index: HashMap<String, (usize, Option<PathBuf>, PathBuf, u64)>,
    shared_file: Option<PathBuf>,
    /// Regions that had errors: services naming them are not reported again.
    failed: HashSet<String>,
}

impl RegionTable {
    pub(super) fn add_all(
        &mut self,
        raw: &HashMap<Spanned<String>, raw::Region>,
        path: &str,
        defaults: &HealthDefaults,
        sink: &mut Sink,
    ) {
        let shared = match &self.shared_file {
            None => {
                self.shared_file = Some(sink.file.to_path_buf());
                true
            }
            Some(f) => f == sink.file,
        };
        let list = raw::in_written_order(raw);
        for (key, r) in list {
            let rpath = format!("{path}.{}", key.value);
            if !is_label(&key.value) {
                sink.on(
                    key,
                    &rpath,
                    "region names are DNS labels: lowercase letters, digits and `-`",
                );
                continue;
            }
            if let Some((_, _, file, line)) = self.index.get(&key.value) {
                sink.on(
                    key,
                    &rpath,
                    format!(
                        "region `{}` is already defined at {}:{}",
                        key.value,
                        file.display(),
                        line
                    ),
                );
                continue;
            }
            if let Some(region) = region(&key.value, r, &rpath, defaults, sink) {
                let owner = (!shared).then(|| sink.file.to_path_buf());
                self.index.insert(
                    key.value.clone(),
                    (
                        self.regions.len(),
                        owner,
                        sink.file.to_path_buf(),
                        key.referenced.line(),
                    ),
                );
                self.regions.push(region);
            } else {
                self.failed.insert(key.value.clone());
            }
        }
    }

    /// A region a zone file may use: shared ones and its own.
    pub(super) fn failed(&self, name: &str) -> bool {
        self.failed.contains(name)
    }

    pub(super) fn usable(&self, name: &str, file: &std::path::Path) -> Option<usize> {
        match self.index.get(name) {
            Some((i, None, _, _)) => Some(*i),
            Some((i, Some(owner), _, _)) if owner == file => Some(*i),
            _ => None,
        }
    }

    /// The region at index `i`.
    pub(super) fn get(&self, i: usize) -> Option<&RegionConfig> {
        self.regions.get(i)
    }

    /// What validating a zone against this table depends on (see [`super::cache`]).
    pub(super) fn signature(&self) -> super::cache::RegionSig {
        let mut owners: Vec<Option<PathBuf>> = vec![None; self.regions.len()];
        for (i, owner, _, _) in self.index.values() {
            if let Some(o) = owners.get_mut(*i) {
                o.clone_from(owner);
            }
        }
        let mut failed: Vec<String> = self.failed.iter().cloned().collect();
        failed.sort();
        super::cache::RegionSig {
            regions: self.regions.iter().cloned().zip(owners).collect(),
            failed,
        }
    }

    pub(super) fn into_regions(self) -> Vec<RegionConfig> {
        self.regions
    }
}

fn codes(
    v: &Spanned<Values>,
    path: &str,
    allowed: Option<&[&str]>,
    sink: &mut Sink,
) -> Vec<[u8; 2]> {
    let mut out = Vec::new();
    for (s, loc) in v.value.items(v.referenced) {
        let up = s.to_ascii_uppercase();
        let b = up.as_bytes();
        let ok = b.len() == 2
            && b.iter().all(u8::is_ascii_alphabetic)
            && allowed.is_none_or(|a| a.contains(&up.as_str()));
        if ok {
            out.push([b[0], b[1]]);
        } else if allowed.is_some() {
            sink.at(
                loc,
                path,
                format!("unknown continent code `{s}` (use AF, AN, AS, EU, NA, OC, SA)"),
            );
        } else {
            sink.at(
                loc,
                path,
                format!("invalid country code `{s}` (two letters, ISO 3166)"),
            );
        }
    }
    out
}

fn region(
    name: &str,
    r: &raw::Region,
    path: &str,
    defaults: &HealthDefaults,
    sink: &mut Sink,
) -> Option<RegionConfig> {
    let loc = &r.location;
    let location = match loc.value.as_slice() {
        [lat, lon] if lat.abs() <= 90.0 && lon.abs() <= 180.0 => Some((*lat, *lon)),
        [_, _] => {
            sink.on(
                loc,
                format!("{path}.location"),
                "latitude must be within ±90 and longitude within ±180",
            );
            None
        }
        _ => {
            sink.on(
                loc,
                format!("{path}.location"),
                "location is [latitude, longitude]",
            );
            None
        }
    };
    let countries = r
        .countries
        .as_ref()
        .map(|c| codes(c, &format!("{path}.countries"), None, sink))
        .unwrap_or_default();
    let continents = r
        .continents
        .as_ref()
        .map(|c| codes(c, &format!("{path}.continents"), Some(&CONTINENTS), sink))
        .unwrap_or_default();
    let (rprobe, rcheck) = match &r.health {
        Some(h) => probe::overlay(
            &defaults.probe,
            defaults.check.clone(),
            h,
            &format!("{path}.health"),
            sink,
        ),
        None => (defaults.probe.clone(), defaults.check.clone()),
    };
    let servers = raw::in_written_order(&r.servers.value);
    let mut out = Vec::new();
    for (key, s) in servers {
        let spath = format!("{path}.servers.{}", key.value);
        if !is_label(&key.value) {
            sink.on(
                key,
                &spath,
                "server names are DNS labels: lowercase letters, digits and `-`",
            );
            continue;
        }
        if let Some(s) = server(&key.value, s, &spath, &rprobe, rcheck.as_deref(), sink) {
            out.push(s);
        }
    }
    if r.servers.value.is_empty() {
        sink.on(
            &r.servers,
            format!("{path}.servers"),
            "a region needs at least one server",
        );
    }
    let min_up = match &r.min_up {
        None => 1,
        Some(m) if m.value >= 1 && (m.value as usize) <= r.servers.value.len() => m.value as usize,
        Some(m) => {
            sink.on(
                m,
                format!("{path}.min_up"),
                "min_up must be between 1 and the number of servers",
            );
            1
        }
    };
    Some(RegionConfig {
        name: name.to_owned(),
        location: location?,
        countries,
        continents,
        min_up,
        servers: out,
    })
}

fn server(
    name: &str,
    s: &raw::Server,
    path: &str,
    base: &ProbeConfig,
    base_check: Option<&str>,
    sink: &mut Sink,
) -> Option<ServerConfig> {
    let mut addresses = Vec::new();
    let mut seen = HashSet::new();
    for (a, loc) in s.address.value.items(s.address.referenced) {
        // The server's host name answers with them all.
        if addresses.len() == MAX_RECORDS_PER_NAME {
            let msg = format!("more than {MAX_RECORDS_PER_NAME} addresses at one server");
            sink.at(loc, format!("{path}.address"), msg);
            break;
        }
        match a.parse::<IpAddr>() {
            Ok(ip) if seen.insert(ip) => addresses.push(ip),
            Ok(_) => sink.at(
                loc,
                format!("{path}.address"),
                format!("duplicate address `{a}`"),
            ),
            Err(_) => sink.at(
                loc,
                format!("{path}.address"),
                format!("invalid IP address `{a}`"),
            ),
        }
    }
    let transports = match &s.transports {
        None => vec![Transport::Udp, Transport::Tcp],
        Some(t) => transports(t, &format!("{path}.transports"), sink),
    };
    let port = s.port.as_ref().map_or(5060, |p| p.value);
    let tls_port = s.tls_port.as_ref().map_or(5061, |p| p.value);
    let ws_port = s.ws_port.as_ref().map_or(80, |p| p.value);
    let wss_port = s.wss_port.as_ref().map_or(443, |p| p.value);
    let ws_path = ws_path(s, path, sink);
    let weight = match &s.weight {
        None => 100,
        Some(w) if w.value >= 1 => w.value,
        Some(w) => {
            sink.on(
                w,
                format!("{path}.weight"),
                "weight must be between 1 and 65535",
            );
            100
        }
    };
    let capacity = s.capacity.as_ref().and_then(|c| {
        let calls = c.value.calls.as_ref().map(|v| v.value);
        let cps = c.value.cps.as_ref().map(|v| v.value);
        if calls.is_none() && cps.is_none() || calls == Some(0) || cps == Some(0) {
            sink.on(
                c,
                format!("{path}.capacity"),
                "capacity needs calls and/or cps, each more than 0",
            );
            None
        } else {
            Some(Capacity { calls, cps })
        }
    });
    let (probe, checks) = probe::for_server(s, &transports, base, base_check, path, sink);
    let uses_tls = std::iter::once(probe.check)
        .chain(checks.iter().map(|c| c.check))
        .find_map(|c| c.filter(|c| matches!(c, Check::SipTls | Check::SipWss)));
    let tls_check = probe::tls_check(s, uses_tls, path, sink);
    if addresses.is_empty() || transports.is_empty() {
        return None;
    }
    Some(ServerConfig {
        name: name.to_owned(),
        addresses,
        port,
        tls_port,
        ws_port,
        wss_port,
        ws_path,
        transports,
        weight,
        backup: s.backup.as_ref().is_some_and(|b| b.value),
        capacity,
        probe,
        checks,
        tls_check,
    })
}

/// The path of a server's WebSocket upgrade (`ws_path`, default `/`): an absolute path of
/// printable ASCII, no spaces, at most 256 bytes.
fn ws_path(s: &raw::Server, path: &str, sink: &mut Sink) -> std::sync::Arc<str> {
    let Some(p) = &s.ws_path else {
        return "/".into();
    };
    let ok = p.value.starts_with('/')
        && p.value.len() <= 256
        && p.value.bytes().all(|b| b.is_ascii_graphic() && b != b'#');
    if !ok {
        sink.on(
            p,
            format!("{path}.ws_path"),
            "ws_path is an absolute path like `/ws`: printable ASCII without spaces or `#`, at most 256 bytes",
        );
        return "/".into();
    }
    p.value.as_str().into()
}

pub(super) fn transports(v: &Spanned<Values>, path: &str, sink: &mut Sink) -> Vec<Transport> {
    let mut out = Vec::new();
    for (s, loc) in v.value.items(v.referenced) {
        let t = match s {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            "tls" => Transport::Tls,
            "ws" => Transport::Ws,
            "wss" => Transport::Wss,
            _ => {
                sink.at(
                    loc,
                    path,
                    format!("unknown transport `{s}` (use udp, tcp, tls, ws or wss)"),
                );
                continue;
            }
        };
        if out.contains(&t) {
            sink.at(loc, path, format!("transport `{s}` listed twice"));
        } else {
            out.push(t);
        }
    }
    if out.is_empty() {
        sink.on(v, path, "at least one transport is needed");
    }
    out
}
