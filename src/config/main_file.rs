//! Loading `sipsteer.yaml`: listen addresses, limits, defaults, shared regions, then every
//! zone map in the zones directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::error::{self, ConfigError, ConfigErrors, Sink, whole_file};
use super::probe::HealthDefaults;
use super::raw;
use super::regions::RegionTable;
use super::source::{read, zone_files};
use super::values::parse_duration;
use super::zone;
use super::{AdminSettings, CapacitySettings, Config, DnsSettings, SourceFile, ZoneConfig};

/// Environment variable read for the admin token when the config names none.
pub(crate) const TOKEN_ENV: &str = "SIPSTEER_ADMIN_TOKEN";

/// Loads `sipsteer.yaml` and every zone map, reusing the zone maps `cache` has validated
/// before; every problem found is reported, sorted by file and position.
pub(crate) fn load(path: &Path, cache: &mut super::ZoneCache) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    let mut files = Vec::new();
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let main = main_yaml(path, &mut files)?;

    let mut sink = Sink {
        file: path,
        errors: &mut errors,
    };
    let (listen_dns, listen_admin) = listen(&main.listen, &mut sink);
    let mut dns = dns_settings(main.dns.as_ref(), &mut sink);
    dns.defences = super::defences::settings(main.dns.as_ref(), &base, &mut files, &mut sink);
    let denial = super::denial::settings(main.dnssec.as_ref(), &mut sink);
    let admin = admin_settings(main.admin.as_ref(), &base, &mut sink);
    admin_needs_token(&main.listen, listen_admin, &admin, &mut sink);
    let capacity = capacity_settings(main.capacity.as_ref(), &mut sink);
    let query_log = query_log_settings(main.query_log.as_ref(), &base, &mut sink);
    let defaults = HealthDefaults::from_raw(main.health.as_ref(), &mut sink);
    let zones_dir = base.join(main.zones.as_ref().map_or("zones", |z| z.value.as_str()));
    let geoip = main.geoip.as_ref().map(|g| base.join(&g.database.value));
    let warmup = super::warmup::settings(main.geoip.as_ref(), &mut sink);

    let mut regions = RegionTable::default();
    regions.add_all(&main.regions, "regions", &defaults, &mut sink);
    let raw_zones = zone_maps(&zones_dir, cache, &mut files, &mut errors);
    let zones = zone_configs(&raw_zones, &mut regions, &defaults, cache, &mut errors);
    let mut regions = regions.into_regions();
    let operator_state_file = main.operator_state.as_ref().map(|f| base.join(&f.value));
    let operator = match &operator_state_file {
        Some(f) => super::operator::load(f, &regions, &mut files, &mut errors),
        None => Default::default(),
    };
    let mut sink = Sink {
        file: path,
        errors: &mut errors,
    };
    let tls_ca = main
        .health
        .as_ref()
        .and_then(|h| h.tls_ca_file.as_ref())
        .and_then(|f| {
            super::pem::trust_anchors(f, "health.tls_ca_file", &base, &mut files, &mut sink)
        });
    if let Some(ca) = tls_ca {
        for s in regions.iter_mut().flat_map(|r| r.servers.iter_mut()) {
            if let Some(t) = &mut s.tls_check {
                std::sync::Arc::make_mut(t).ca = Some(ca.clone());
            }
        }
    }
    let load_source = main
        .load
        .as_ref()
        .and_then(|l| super::load_source::compile(l, &regions, &base, &mut files, &mut sink));
    let encrypted = super::tls::load(&main, &base, &mut files, &mut sink);
    let rescan = super::watch::rescan(main.reload.as_ref(), &mut sink);
    let state_dir = main.state_dir.as_ref().map(|d| base.join(&d.value));
    let dirs = super::dnssec::Dirs {
        base: &base,
        state: state_dir.as_deref(),
        zones: &zones_dir,
    };
    let keys = super::dnssec::keys(&zones, &dirs, cache.keyed(), &mut files, &mut errors);
    let super::dnssec::Keys {
        keys,
        sets: key_sets,
        dirs: key_dirs,
    } = keys;

    if !errors.is_empty() {
        return Err(sorted(errors));
    }
    Ok(Config {
        file: path.to_path_buf(),
        listen_dns,
        listen_admin,
        dns,
        denial,
        zones_dir,
        geoip,
        warmup,
        admin,
        capacity,
        health_concurrency: defaults.max_concurrent,
        query_log,
        regions,
        zones,
        files,
        operator_state_file,
        operator,
        load_source,
        listen_tls: encrypted.listen_tls,
        listen_https: encrypted.listen_https,
        tls: encrypted.files,
        rescan,
        state_dir,
        keys,
        key_sets,
        key_dirs,
    })
}

/// What `sipsteer ctl` needs of `sipsteer.yaml`, read as `load` reads it (the zone maps and
/// every other file are not read): the admin API's address (`None`: `off`) and its token.
pub(crate) fn admin_access(path: &Path) -> Result<super::AdminAccess, ConfigErrors> {
    let mut errors = Vec::new();
    let mut files = Vec::new();
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let main = main_yaml(path, &mut files)?;
    let mut sink = Sink {
        file: path,
        errors: &mut errors,
    };
    let addr = listen_admin(&main.listen, &mut sink);
    let admin = admin_settings(main.admin.as_ref(), &base, &mut sink);
    if !errors.is_empty() {
        return Err(sorted(errors));
    }
    Ok(super::AdminAccess {
        addr,
        token: admin.token,
    })
}

/// The errors by file and position, each once.
fn sorted(mut errors: Vec<ConfigError>) -> ConfigErrors {
    errors.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    errors.dedup();
    ConfigErrors(errors)
}

/// `listen:`: the DNS addresses and the admin API's, which must not clash with them.
fn listen(l: &raw::Listen, sink: &mut Sink) -> (Vec<SocketAddr>, Option<SocketAddr>) {
    let dns = listen_dns(l, sink);
    let admin = listen_admin(l, sink);
    admin_clash(l, &dns, admin, sink);
    (dns, admin)
}

/// Reads and parses `sipsteer.yaml` itself; an error here stops the load.
fn main_yaml(path: &Path, files: &mut Vec<SourceFile>) -> Result<raw::Main, ConfigErrors> {
    let text = read(path, crate::files::MAX_MAIN_CONFIG, "config", files)
        .map_err(|e| ConfigErrors(vec![e]))?;
    serde_saphyr::from_str(&text).map_err(|e| ConfigErrors(vec![error::from_yaml(path, &e)]))
}

/// An admin API listening beyond loopback must have a token.
fn admin_needs_token(
    listen: &raw::Listen,
    addr: Option<SocketAddr>,
    admin: &AdminSettings,
    sink: &mut Sink,
) {
    let Some(addr) = addr else {
        return;
    };
    if addr.ip().is_loopback() || admin.token.is_some() {
        return;
    }
    let msg = format!(
        "admin API on non-loopback address {addr} needs a token (admin.token or {TOKEN_ENV})"
    );
    match listen.admin.as_ref().map(|a| a.referenced) {
        Some(l) => sink.at(l, "listen.admin", msg),
        None => sink.file(msg),
    }
}

/// `query_log:`: the log file (relative to the config's directory) and the sampled share.
fn query_log_settings(
    q: Option<&raw::QueryLog>,
    base: &Path,
    sink: &mut Sink,
) -> Option<super::QueryLogSettings> {
    let q = q?;
    let sample = q.sample.as_ref().map_or(1.0, |s| s.value);
    if let Some(s) = &q.sample
        && !(s.value > 0.0 && s.value <= 1.0)
    {
        sink.on(
            s,
            "query_log.sample",
            "sample must be more than 0 and at most 1",
        );
        return None;
    }
    Some(super::QueryLogSettings {
        path: base.join(&q.path.value),
        sample,
    })
}

/// Reads (or takes from `cache`) every zone map in the zones directory; `cache` forgets the
/// files no longer there.
fn zone_maps(
    zones_dir: &Path,
    cache: &mut super::ZoneCache,
    files: &mut Vec<SourceFile>,
    errors: &mut Vec<ConfigError>,
) -> Vec<(PathBuf, Arc<raw::Zone>)> {
    let mut raw_zones = Vec::new();
    match zone_files(zones_dir) {
        Ok(list) if list.is_empty() => errors.push(whole_file(
            zones_dir,
            "no zone maps (*.yaml) in the zones directory",
        )),
        Ok(list) => {
            for file in &list {
                match cache.read(file, files) {
                    Ok(z) => raw_zones.push((file.clone(), z)),
                    Err(e) => errors.push(e),
                }
            }
            cache.keep_only(&list);
        }
        Err(e) => errors.extend(e.0),
    }
    raw_zones
}

/// Validates the zone maps: the regions they define first (services of any zone may name any
/// region), then each zone, reusing what `cache` validated before with the same regions.
fn zone_configs(
    raw_zones: &[(PathBuf, Arc<raw::Zone>)],
    regions: &mut RegionTable,
    defaults: &HealthDefaults,
    cache: &mut super::ZoneCache,
    errors: &mut Vec<ConfigError>,
) -> Vec<Arc<ZoneConfig>> {
    for (file, z) in raw_zones {
        let mut sink = Sink { file, errors };
        regions.add_all(&z.regions, "regions", defaults, &mut sink);
    }
    cache.regions(regions.signature());
    let mut zones = Vec::new();
    for (file, z) in raw_zones {
        if let Some(zone) = cache.valid(file, z) {
            zones.push(zone);
            continue;
        }
        let before = errors.len();
        let mut sink = Sink { file, errors };
        if let Some(zone) = zone::validate(z, regions, &mut sink) {
            let zone = Arc::new(zone);
            if errors.len() == before {
                cache.set_valid(file, z, zone.clone());
            }
            zones.push(zone);
        }
    }
    zone::check_unique(&zones, raw_zones, errors);
    zones
}

fn listen_dns(l: &raw::Listen, sink: &mut Sink) -> Vec<SocketAddr> {
    let Some(v) = &l.dns else {
        return vec![SocketAddr::from(([127, 0, 0, 1], 5353))];
    };
    let mut out: Vec<SocketAddr> = Vec::new();
    for (s, loc) in v.value.items(v.referenced) {
        match s.parse::<SocketAddr>() {
            Ok(a) => {
                if let Some(other) = out.iter().find(|b| clash(a, **b)) {
                    sink.at(loc, "listen.dns", clash_message(a, *other));
                }
                out.push(a);
            }
            Err(_) => sink.at(
                loc,
                "listen.dns",
                format!("invalid listen address `{s}` (use ip:port, [v6]:port)"),
            ),
        }
    }
    if out.is_empty() && matches!(&v.value, super::values::Values::Many(m) if m.is_empty()) {
        sink.on(v, "listen.dns", "at least one DNS listen address is needed");
    }
    out
}

/// Whether two listen addresses cannot both be bound (same port and family, and the same
/// address or either one the wildcard). Port 0 picks a free port each time, so never clashes;
/// `0.0.0.0:P` and `[::]:P` are different families and bind together.
fn clash(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn clash_message(a: SocketAddr, b: SocketAddr) -> String {
    if a == b {
        format!("listen address {a} is given twice")
    } else {
        format!("listen address {a} cannot be bound together with {b} (same port)")
    }
}

/// The admin API (TCP) cannot share an address with a DNS listener (TCP too).
fn admin_clash(l: &raw::Listen, dns: &[SocketAddr], admin: Option<SocketAddr>, sink: &mut Sink) {
    let (Some(a), Some(v)) = (admin, &l.admin) else {
        return;
    };
    if let Some(d) = dns.iter().find(|d| clash(a, **d)) {
        sink.on(v, "listen.admin", clash_message(a, *d));
    }
}

fn listen_admin(l: &raw::Listen, sink: &mut Sink) -> Option<SocketAddr> {
    let Some(v) = &l.admin else {
        return Some(SocketAddr::from(([127, 0, 0, 1], 8053)));
    };
    if v.value == "off" {
        return None;
    }
    match v.value.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            sink.on(
                v,
                "listen.admin",
                format!("invalid listen address `{}` (use ip:port or off)", v.value),
            );
            None
        }
    }
}

fn dns_settings(d: Option<&raw::Dns>, sink: &mut Sink) -> DnsSettings {
    let cache = d.and_then(|d| d.signature_cache.as_ref());
    let mut s = DnsSettings {
        udp_payload: 1232,
        tcp_idle_timeout: Duration::from_secs(10),
        tcp_max_connections: 1024,
        tcp_max_connections_per_source: 32,
        udp_workers: 0,
        signature_cache: super::dnssec::signature_cache(cache, sink),
        defences: Default::default(),
    };
    let Some(d) = d else { return s };
    if let Some(p) = &d.udp_payload {
        if (512..=4096).contains(&p.value) {
            s.udp_payload = p.value;
        } else {
            sink.on(p, "dns.udp_payload", "must be between 512 and 4096");
        }
    }
    if let Some(t) = &d.tcp_idle_timeout {
        match parse_duration(&t.value) {
            Ok(v) if !v.is_zero() => s.tcp_idle_timeout = v,
            Ok(_) => sink.on(t, "dns.tcp_idle_timeout", "must be more than 0"),
            Err(e) => sink.on(t, "dns.tcp_idle_timeout", e),
        }
    }
    if let Some(c) = &d.tcp_max_connections {
        if c.value == 0 || c.value > 100_000 {
            sink.on(c, "dns.tcp_max_connections", "must be between 1 and 100000");
        } else {
            s.tcp_max_connections = c.value as usize;
        }
    }
    if let Some(c) = &d.tcp_max_connections_per_source {
        if c.value == 0 || c.value > 100_000 {
            let msg = "must be between 1 and 100000";
            sink.on(c, "dns.tcp_max_connections_per_source", msg);
        } else {
            s.tcp_max_connections_per_source = c.value as usize;
        }
    }
    if let Some(w) = &d.udp_workers {
        if w.value > 256 {
            let msg = "must be between 0 (one per cpu) and 256";
            sink.on(w, "dns.udp_workers", msg);
        } else {
            s.udp_workers = w.value as usize;
        }
    }
    s
}

fn admin_settings(a: Option<&raw::Admin>, base: &Path, sink: &mut Sink) -> AdminSettings {
    let mut s = AdminSettings::default();
    let env_name = a
        .and_then(|a| a.token_env.as_ref())
        .map_or(TOKEN_ENV, |t| t.value.as_str());
    if let Some(t) = a.and_then(|a| a.token.as_ref()) {
        if t.value.len() < 8 {
            sink.on(t, "admin.token", "token must be at least 8 characters");
        } else {
            s.token = Some(t.value.clone());
        }
    } else if let Ok(t) = std::env::var(env_name)
        && !t.is_empty()
    {
        if t.len() < 8 {
            sink.file(format!(
                "token from environment variable {env_name} must be at least 8 characters"
            ));
        } else {
            s.token = Some(t);
        }
    }
    s.state_file = a
        .and_then(|a| a.state_file.as_ref())
        .map(|f| base.join(&f.value));
    s
}

fn capacity_settings(c: Option<&raw::CapacityPolicy>, sink: &mut Sink) -> CapacitySettings {
    let mut s = CapacitySettings {
        overflow_at: 0.8,
        report_ttl: Duration::from_secs(30),
        shed: None,
    };
    let Some(c) = c else { return s };
    if let Some(shed) = &c.shed {
        s.shed = shed_watermarks(shed, c.overflow_at.is_some(), sink);
        if let Some((_, to)) = s.shed {
            s.overflow_at = to;
        }
    }
    if let Some(o) = c.overflow_at.as_ref().filter(|_| c.shed.is_none()) {
        if o.value > 0.0 && o.value <= 1.0 {
            s.overflow_at = o.value;
        } else {
            sink.on(
                o,
                "capacity.overflow_at",
                "must be more than 0 and at most 1",
            );
        }
    }
    if let Some(t) = &c.report_ttl {
        match parse_duration(&t.value) {
            Ok(v) if !v.is_zero() => s.report_ttl = v,
            Ok(_) => sink.on(t, "capacity.report_ttl", "must be more than 0"),
            Err(e) => sink.on(t, "capacity.report_ttl", e),
        }
    }
    s
}

/// `capacity.shed`: the load fractions where shedding starts and where a server is full,
/// `0 <= from < to <= 1`; not together with `overflow_at` (`to` takes its place).
fn shed_watermarks(
    shed: &raw::S<raw::Shed>,
    with_overflow_at: bool,
    sink: &mut Sink,
) -> Option<(f64, f64)> {
    if with_overflow_at {
        sink.on(
            shed,
            "capacity.shed",
            "use either overflow_at or shed, not both (shed.to is where a server is full)",
        );
        return None;
    }
    let (from, to) = (&shed.value.from, &shed.value.to);
    if !(0.0..1.0).contains(&from.value) {
        sink.on(
            from,
            "capacity.shed.from",
            "must be at least 0 and less than 1",
        );
        return None;
    }
    if !(to.value > from.value && to.value <= 1.0) {
        sink.on(
            to,
            "capacity.shed.to",
            format!("must be more than shed.from ({}) and at most 1", from.value),
        );
        return None;
    }
    Some((from.value, to.value))
}
