//! Validating services: the steered names of a zone, their regions, failover depth,
//! fallback order, `networks:` overrides and all-down policy.

use std::collections::HashSet;

use hickory_proto::rr::Name;
use ipnet::IpNet;
use serde_saphyr::Spanned;

use super::MAX_TIERS;
use super::error::Sink;
use super::names;
use super::not_in;
use super::raw;
use super::regions::{RegionTable, transports};
use super::traffic;
use super::values::Values;
use super::{AllDown, ServiceConfig, Transport};

/// The services of one zone map.
pub(super) fn services(
    z: &raw::Zone,
    origin: &Name,
    regions: &RegionTable,
    sink: &mut Sink,
) -> Vec<ServiceConfig> {
    let list = raw::in_written_order(&z.services);
    let mut out: Vec<ServiceConfig> = Vec::new();
    for (key, s) in list {
        let path = format!("services.{}", key.value);
        if key.value == "@" || key.value.ends_with('.') {
            sink.on(
                key,
                &path,
                "a service is named relative to the zone, like `sip`",
            );
            continue;
        }
        let name = match names::in_zone(&key.value, origin) {
            Ok(n) => n,
            Err(e) => {
                sink.on(key, &path, e);
                continue;
            }
        };
        if let Some(other) = out
            .iter()
            .find(|o| o.name.zone_of(&name) || name.zone_of(&o.name))
        {
            sink.on(
                key,
                &path,
                format!(
                    "service names overlap: `{}` and `{}`",
                    other.label, key.value
                ),
            );
            continue;
        }
        if let Some(svc) = service(key, s, name, regions, &path, sink) {
            out.push(svc);
        }
    }
    // Static records may not stand at or below a steered name.
    for rkey in z.records.keys() {
        if let Ok(n) = names::in_zone(&rkey.value, origin)
            && let Some(svc) = out.iter().find(|s| s.name.zone_of(&n))
        {
            sink.on(
                rkey,
                format!("records.{}", rkey.value),
                format!(
                    "name is answered by service `{}`; remove the record or rename it",
                    svc.label
                ),
            );
        }
    }
    out
}

/// Indices of the regions listed in `v` that `allowed` accepts, each once; a region that
/// failed validation is skipped (it was reported where it is defined).
fn region_list(
    v: &Spanned<Values>,
    path: &str,
    allowed: &dyn Fn(&str) -> Option<usize>,
    not_found: &dyn Fn(&str) -> String,
    regions: &RegionTable,
    sink: &mut Sink,
) -> Vec<usize> {
    let mut out = Vec::new();
    for (s, loc) in v.value.items(v.referenced) {
        match allowed(s) {
            None if regions.failed(s) => {}
            Some(i) if out.contains(&i) => sink.at(loc, path, format!("region `{s}` listed twice")),
            Some(i) => out.push(i),
            None => sink.at(loc, path, not_found(s)),
        }
    }
    out
}

/// Validates one service; `None` when it cannot be served (an error was reported, or every
/// region it names failed validation and was reported there).
fn service(
    key: &Spanned<String>,
    s: &raw::Service,
    name: Name,
    regions: &RegionTable,
    path: &str,
    sink: &mut Sink,
) -> Option<ServiceConfig> {
    let file = sink.file.to_path_buf();
    let regs = service_regions(s, regions, path, sink)?;
    let in_service = |r: &str| regions.usable(r, &file).filter(|i| regs.contains(i));
    let transports = match &s.transports {
        None => vec![Transport::Udp, Transport::Tcp],
        Some(t) => transports(t, &format!("{path}.transports"), sink),
    };
    if let Some(bad) = generated_name_error(&name, &regs, &transports, regions) {
        sink.on(key, path, bad);
        return None;
    }
    let ttl = ttl(s, path, sink);
    let trouble_ttl = trouble_ttl(s, ttl, path, sink);
    let failover = failover(s, regs.len(), path, sink);
    let answers = answers(s, path, sink);
    let fallback = match &s.fallback {
        None => regs.clone(),
        Some(f) => region_list(
            f,
            &format!("{path}.fallback"),
            &in_service,
            &not_in,
            regions,
            sink,
        ),
    };
    let networks = networks(s, &in_service, path, sink);
    let all_down = all_down(s, path, sink);
    let bias = traffic::bias(s, &in_service, path, sink);
    let splits = traffic::splits(s, &in_service, path, sink);
    Some(ServiceConfig {
        label: key.value.clone(),
        name,
        regions: regs,
        transports,
        ttl,
        trouble_ttl,
        failover,
        answers,
        fallback,
        networks,
        all_down,
        bias,
        splits,
    })
}

/// The service's `regions:`, at least one; `None` when there are none usable.
fn service_regions(
    s: &raw::Service,
    regions: &RegionTable,
    path: &str,
    sink: &mut Sink,
) -> Option<Vec<usize>> {
    let file = sink.file.to_path_buf();
    let regs = region_list(
        &s.regions,
        &format!("{path}.regions"),
        &|r| regions.usable(r, &file),
        &|r| {
            format!(
                "unknown region `{r}` (define it under regions: in this file or in sipsteer.yaml)"
            )
        },
        regions,
        sink,
    );
    if !regs.is_empty() {
        return Some(regs);
    }
    // A region that failed validation was reported where it is defined.
    if !s
        .regions
        .value
        .items(s.regions.referenced)
        .iter()
        .any(|(r, _)| regions.failed(r))
    {
        sink.on(
            &s.regions,
            format!("{path}.regions"),
            "a service needs at least one region",
        );
    }
    None
}

/// `ttl:` of the steered records, 30 seconds unless given.
fn ttl(s: &raw::Service, path: &str, sink: &mut Sink) -> u32 {
    match &s.ttl {
        None => 30,
        Some(t) if t.value <= super::MAX_TTL => t.value,
        Some(t) => {
            sink.on(
                t,
                format!("{path}.ttl"),
                format!("ttl must be 0 to {} seconds", super::MAX_TTL),
            );
            30
        }
    }
}

/// `trouble_ttl:`, at most the service's `ttl`.
fn trouble_ttl(s: &raw::Service, ttl: u32, path: &str, sink: &mut Sink) -> Option<u32> {
    match &s.trouble_ttl {
        Some(t) if t.value > ttl => {
            sink.on(
                t,
                format!("{path}.trouble_ttl"),
                format!("trouble_ttl must not exceed the service's ttl ({ttl})"),
            );
            None
        }
        t => t.as_ref().map(|t| t.value),
    }
}

/// `failover:`, the number of regions answered: 1 to the number of regions (`n_regions`)
/// and at most [`MAX_TIERS`]; 2 (or fewer regions) unless given.
fn failover(s: &raw::Service, n_regions: usize, path: &str, sink: &mut Sink) -> usize {
    match &s.failover {
        None => 2.min(n_regions),
        Some(f) if f.value >= 1 && f.value as usize <= n_regions.min(MAX_TIERS) => f.value as usize,
        Some(f) => {
            sink.on(
                f,
                format!("{path}.failover"),
                format!(
                    "failover must be between 1 and the number of regions ({n_regions}), at most {MAX_TIERS}"
                ),
            );
            1
        }
    }
}

/// `answers:`, the most addresses in one answer: 1 to 16, 4 unless given.
fn answers(s: &raw::Service, path: &str, sink: &mut Sink) -> usize {
    match &s.answers {
        None => 4,
        Some(a) if (1..=16).contains(&a.value) => a.value as usize,
        Some(a) => {
            sink.on(
                a,
                format!("{path}.answers"),
                "answers must be between 1 and 16",
            );
            4
        }
    }
}

/// `networks:` overrides in the order written: each network (CIDR, no host bits, listed
/// once) with the service's region it is sent to (its index, from `in_service`).
fn networks(
    s: &raw::Service,
    in_service: &dyn Fn(&str) -> Option<usize>,
    path: &str,
    sink: &mut Sink,
) -> Vec<(IpNet, usize)> {
    let mut networks = Vec::new();
    let nets = raw::in_written_order(&s.networks);
    let mut seen = HashSet::new();
    for (net, region) in nets {
        let npath = format!("{path}.networks.{}", net.value);
        let Some(n) = network(net, &npath, sink) else {
            continue;
        };
        if !seen.insert(n) {
            sink.on(net, &npath, "network listed twice");
            continue;
        }
        match in_service(&region.value.0) {
            Some(i) => networks.push((n, i)),
            None => sink.on(region, &npath, not_in(&region.value.0)),
        }
    }
    networks
}

/// One network of `networks:`: CIDR without host bits.
fn network(net: &Spanned<String>, npath: &str, sink: &mut Sink) -> Option<IpNet> {
    let Ok(n) = net.value.parse::<IpNet>() else {
        sink.on(
            net,
            npath,
            format!(
                "invalid network `{}` (use CIDR, e.g. 203.0.113.0/24)",
                net.value
            ),
        );
        return None;
    };
    if n.trunc() != n {
        sink.on(
            net,
            npath,
            format!(
                "network `{}` has host bits set (did you mean {}?)",
                net.value,
                n.trunc()
            ),
        );
        return None;
    }
    Some(n)
}

/// `all_down:`, the answer when every region is down: `nearest` (the default) or `nodata`.
fn all_down(s: &raw::Service, path: &str, sink: &mut Sink) -> AllDown {
    let Some(a) = &s.all_down else {
        return AllDown::Nearest;
    };
    match a.value.as_str() {
        "nearest" => AllDown::Nearest,
        "nodata" => AllDown::Nodata,
        other => {
            sink.on(
                a,
                format!("{path}.all_down"),
                format!("unknown policy `{other}` (use nearest or nodata)"),
            );
            AllDown::Nearest
        }
    }
}

/// A name the service would generate that cannot exist (over 255 octets, or a label over 63).
fn generated_name_error(
    name: &Name,
    regs: &[usize],
    transports: &[Transport],
    regions: &RegionTable,
) -> Option<String> {
    let configs: Vec<&super::RegionConfig> = regs.iter().filter_map(|&i| regions.get(i)).collect();
    let base = crate::config::service_names::wire_name(name);
    let names = crate::config::service_names::service_names(&base, transports, &configs);
    let bad = names.invalid()?;
    Some(format!(
        "generated name `{}` is too long ({} octets; a name has at most 255, a label at most 63)",
        crate::config::service_names::text(bad),
        bad.len()
    ))
}
