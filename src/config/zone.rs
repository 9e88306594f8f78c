//! Validating one zone map: name, TTL, SOA, NS set and static records, each record set and
//! owner name bounded so that its answer fits one DNS message.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{Name, RData, RecordType};

use super::error::{ConfigError, Sink};
use super::names;
use super::raw;
use super::records;
use super::regions::RegionTable;
use super::services;
use super::values::Values;
use super::{MAX_RECORDS_PER_NAME, MAX_TTL, RecordConfig, ZoneConfig};

/// Bytes of a 65,535-byte reply kept beside the header, the question and the records for the
/// OPT record (ECS, a cookie, NSID, padding) and a CNAME leading to the set.
const REPLY_ROOM: usize = 1024;

/// The bytes a record set may take in a reply to a query for `owner`: each record with its
/// owner compressed to a pointer, record data with names written in full.
fn set_room(owner: &Name) -> usize {
    let question = wire_len(owner) + 4;
    usize::from(u16::MAX) - 12 - question - REPLY_ROOM
}

/// A name's length in wire form, uncompressed.
fn wire_len(n: &Name) -> usize {
    n.iter().map(|label| label.len() + 1).sum::<usize>() + 1
}

/// One record's bytes in a reply: owner pointer, type, class, TTL, length, then the data.
const RECORD_HEAD: usize = 12;

pub(super) fn validate(
    z: &raw::Zone,
    regions: &RegionTable,
    sink: &mut Sink,
) -> Option<ZoneConfig> {
    let origin = match names::origin(&z.zone.value) {
        Ok(o) => o,
        Err(e) => {
            sink.on(&z.zone, "zone", e);
            return None;
        }
    };
    let ttl = ttl(z.ttl.as_ref(), 300, "ttl", sink);
    let soa = soa(&z.soa.value, &origin, sink);
    let ns = ns_set(z, &origin, sink);
    let entries = raw::in_written_order(&z.records);
    let mut out = Vec::new();
    let mut owners: HashMap<Name, &str> = HashMap::new();
    for (key, types) in entries {
        let path = format!("records.{}", key.value);
        let name = match names::in_zone(&key.value, &origin) {
            Ok(n) => n,
            Err(e) => {
                sink.on(key, &path, e);
                continue;
            }
        };
        if let Some(first) = owners.get(&name) {
            let msg = format!("`{}` is the same name as `{first}`", key.value);
            sink.on(key, &path, msg);
            continue;
        }
        owners.insert(name.clone(), &key.value);
        // The apex holds the SOA and the NS set too.
        let held = if name == origin { 1 + ns.len() } else { 0 };
        out.extend(node(&name, &origin, types, ttl, held, &path, sink));
    }
    let services = services::services(z, &origin, regions, sink);
    let dnssec = z
        .dnssec
        .as_ref()
        .and_then(|d| super::dnssec::settings(d, sink));
    Some(ZoneConfig {
        origin,
        file: sink.file.to_path_buf(),
        ttl,
        soa: soa?,
        ns,
        records: out,
        services,
        dnssec,
    })
}

/// `ns:`: the zone's NS names, each once, as many as one name may hold and fitting a reply.
fn ns_set(z: &raw::Zone, origin: &Name, sink: &mut Sink) -> Vec<Name> {
    let mut ns = Vec::new();
    let mut seen = HashSet::new();
    let mut bytes = 0;
    for (s, loc) in z.ns.value.items(z.ns.referenced) {
        if ns.len() + 1 == MAX_RECORDS_PER_NAME {
            let msg = format!("more than {MAX_RECORDS_PER_NAME} records at one name");
            sink.at(loc, "ns", msg);
            break;
        }
        match names::resolve(s, origin) {
            Ok(n) if seen.insert(n.clone()) => {
                bytes += RECORD_HEAD + wire_len(&n);
                ns.push(n);
            }
            Ok(_) => sink.at(loc, "ns", format!("duplicate NS name `{s}`")),
            Err(e) => sink.at(loc, "ns", e),
        }
    }
    if ns.is_empty() {
        sink.on(&z.ns, "ns", "a zone needs at least one NS name");
    }
    if bytes > set_room(origin) {
        sink.on(&z.ns, "ns", too_big(RecordType::NS, bytes, origin));
    }
    ns
}

fn too_big(t: RecordType, bytes: usize, owner: &Name) -> String {
    format!(
        "the {t} records take {bytes} bytes, more than the {} that fit in one reply at this name",
        set_room(owner)
    )
}

/// The values of one type at one name: each once (by canonical record data, so a hash set
/// finds repeats however many values there are), at most `room` of them; their reply bytes.
fn values(
    t: RecordType,
    v: &serde_saphyr::Spanned<Values>,
    origin: &Name,
    room: usize,
    tpath: &str,
    sink: &mut Sink,
) -> (Vec<RData>, usize) {
    let mut rdatas = Vec::new();
    let mut seen = HashSet::new();
    let mut bytes = 0;
    for (s, loc) in v.value.items(v.referenced) {
        if rdatas.len() == room {
            let msg = format!("more than {MAX_RECORDS_PER_NAME} records at one name");
            sink.at(loc, tpath, msg);
            break;
        }
        match records::parse(t, s, origin) {
            Ok((r, wire)) => {
                let len = RECORD_HEAD + wire.len();
                if seen.insert(wire) {
                    bytes += len;
                    rdatas.push(r);
                } else {
                    sink.at(loc, tpath, format!("duplicate value `{s}`"));
                }
            }
            Err(e) => sink.at(loc, tpath, e),
        }
    }
    (rdatas, bytes)
}

/// The records of one owner name, which already holds `held` records (the apex's SOA and NS).
fn node(
    name: &Name,
    origin: &Name,
    types: &HashMap<serde_saphyr::Spanned<String>, serde_saphyr::Spanned<Values>>,
    zone_ttl: u32,
    mut held: usize,
    path: &str,
    sink: &mut Sink,
) -> Vec<RecordConfig> {
    let mut node_ttl = zone_ttl;
    type Set<'a> = (RecordType, &'a serde_saphyr::Spanned<String>, Vec<RData>);
    let mut sets: BTreeMap<(u64, u64), Set> = BTreeMap::new();
    // In written order, so the record over the bound is the one written last.
    for (tkey, v) in raw::in_written_order(types) {
        let tpath = format!("{path}.{}", tkey.value);
        if tkey.value == "ttl" {
            match &v.value {
                Values::One(s) => match s.parse::<u32>() {
                    Ok(t) if t <= MAX_TTL => node_ttl = t,
                    _ => sink.on(v, &tpath, format!("ttl must be 0 to {MAX_TTL} seconds")),
                },
                Values::Many(_) => sink.on(v, &tpath, "ttl must be a single number"),
            }
            continue;
        }
        let Some(t) = records::record_type(&tkey.value) else {
            sink.on(
                tkey,
                &tpath,
                format!(
                    "unknown record type `{}` (use {})",
                    tkey.value,
                    records::TYPES
                ),
            );
            continue;
        };
        if t == RecordType::NS && name == origin {
            sink.on(
                tkey,
                &tpath,
                "the zone's own NS set comes from `ns:`, not records",
            );
            continue;
        }
        if held >= MAX_RECORDS_PER_NAME {
            let msg = format!("more than {MAX_RECORDS_PER_NAME} records at one name");
            sink.on(v, &tpath, msg);
            continue;
        }
        let (rdatas, bytes) = values(t, v, origin, MAX_RECORDS_PER_NAME - held, &tpath, sink);
        held += rdatas.len();
        if bytes > set_room(name) {
            sink.on(tkey, &tpath, too_big(t, bytes, name));
        }
        if rdatas.is_empty() && matches!(&v.value, Values::Many(m) if m.is_empty()) {
            sink.on(
                v,
                &tpath,
                "empty list: give at least one value or remove the type",
            );
        }
        sets.insert(
            (tkey.referenced.line(), tkey.referenced.column()),
            (t, tkey, rdatas),
        );
    }
    if let Some((_, (_, tkey, rd))) = sets.iter().find(|(_, (t, _, _))| *t == RecordType::CNAME) {
        let tpath = format!("{path}.CNAME");
        if name == origin {
            sink.on(tkey, &tpath, "CNAME is not allowed at the zone apex");
        } else if sets.len() > 1 {
            sink.on(
                tkey,
                &tpath,
                "CNAME cannot stand beside other data at the same name",
            );
        } else if rd.len() > 1 {
            sink.on(tkey, &tpath, "a name has at most one CNAME");
        }
    }
    let mut out = Vec::new();
    for (_, (_, _, rdatas)) in sets {
        for rdata in rdatas {
            out.push(RecordConfig {
                name: name.clone(),
                ttl: node_ttl,
                rdata,
            });
        }
    }
    out
}

fn ttl(v: Option<&serde_saphyr::Spanned<u32>>, default: u32, path: &str, sink: &mut Sink) -> u32 {
    match v {
        None => default,
        Some(t) if t.value <= MAX_TTL => t.value,
        Some(t) => {
            sink.on(t, path, format!("ttl must be 0 to {MAX_TTL} seconds"));
            default
        }
    }
}

fn soa(s: &raw::Soa, origin: &Name, sink: &mut Sink) -> Option<SOA> {
    let primary = names::resolve(&s.primary.value, origin)
        .map_err(|e| sink.on(&s.primary, "soa.primary", e))
        .ok();
    // `hostmaster@example.com` is accepted and written as `hostmaster.example.com`.
    let contact_text = match s.contact.value.split_once('@') {
        Some((user, domain)) => format!("{user}.{}.", domain.trim_end_matches('.')),
        None => s.contact.value.clone(),
    };
    let contact = names::resolve(&contact_text, origin)
        .map_err(|e| sink.on(&s.contact, "soa.contact", e))
        .ok();
    let get = |v: &Option<serde_saphyr::Spanned<u32>>, d: u32| v.as_ref().map_or(d, |v| v.value);
    let minimum = get(&s.minimum, 60);
    if minimum > 86_400
        && let Some(m) = &s.minimum
    {
        sink.on(
            m,
            "soa.minimum",
            "negative-answer TTL must be at most 86400 seconds",
        );
    }
    Some(SOA::new(
        primary?,
        contact?,
        s.serial.value,
        get(&s.refresh, 3600) as i32,
        get(&s.retry, 600) as i32,
        get(&s.expire, 604_800) as i32,
        minimum,
    ))
}

/// Two files may not claim one zone.
pub(super) fn check_unique(
    zones: &[std::sync::Arc<ZoneConfig>],
    raw: &[(PathBuf, std::sync::Arc<raw::Zone>)],
    errors: &mut Vec<ConfigError>,
) {
    let mut seen: HashMap<&Name, &PathBuf> = HashMap::new();
    for z in zones.iter().map(|z| &**z) {
        if let Some(first) = seen.get(&z.origin) {
            if let Some((_, rz)) = raw.iter().find(|(f, _)| *f == z.file) {
                errors.push(ConfigError {
                    file: z.file.clone(),
                    line: rz.zone.referenced.line(),
                    column: rz.zone.referenced.column(),
                    path: "zone".into(),
                    message: format!(
                        "zone {} is already defined in {}",
                        z.origin,
                        first.display()
                    ),
                });
            }
        } else {
            seen.insert(&z.origin, &z.file);
        }
    }
}
