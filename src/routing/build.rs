//! Compiling the validated config into [`Routing`]: owner names, empty non-terminals,
//! delegations and pre-encoded record sets.

use std::collections::HashMap;

use hickory_proto::rr::{Name, RData, Record};

use std::sync::Arc;

use super::secure::{any_sets, key_sets, nsec_sets, rrsig_set, unsign_below_cuts};
use super::sign::Signing;
use super::{
    NameMap, Node, Routing, SteerKind, SteerRef, Zone, ZoneData, count_labels, rrset,
    rrset_with_ptrs,
};
use crate::config::service_names::wire_name;
use crate::config::{Config, RegionConfig, ZoneConfig};

/// Compiles every zone of the config.
pub fn compile(cfg: &Config) -> Routing {
    compile_reusing(cfg, None)
}

/// Like [`compile`], sharing the compiled data of `previous` for every zone whose validated
/// config is the same one (see [`crate::config::ZoneCache`]) and whose services' regions are
/// unchanged: a reload that changed one zone map compiles that zone only.
pub(crate) fn compile_reusing(cfg: &Config, previous: Option<&Routing>) -> Routing {
    let mut r = Routing {
        min_apex_labels: usize::MAX,
        ..Routing::default()
    };
    let old: HashMap<*const ZoneConfig, &Arc<ZoneData>> = previous
        .map(|p| {
            p.zones
                .iter()
                .map(|z| (Arc::as_ptr(&z.source), &z.data))
                .collect()
        })
        .unwrap_or_default();
    let mut regions = Regions::new(cfg);
    let mut service_base = 0u32;
    for z in &cfg.zones {
        let data = match old.get(&Arc::as_ptr(z)) {
            Some(d)
                if regions.same(d)
                    && cfg.key_sets.get(&z.origin) == d.key_set.as_ref()
                    && (d.key.is_none() || d.window == crate::dnssec::Window::now()) =>
            {
                Arc::clone(d)
            }
            _ => Arc::new(zone(z, cfg, &regions)),
        };
        let zone = Zone {
            index: r.zones.len() as u32,
            service_base,
            data,
        };
        service_base += z.services.len() as u32;
        r.min_apex_labels = r.min_apex_labels.min(count_labels(&zone.apex));
        r.apexes.insert(zone.apex.clone(), r.zones.len());
        r.zones.push(zone);
    }
    if r.zones.is_empty() {
        r.min_apex_labels = 0;
    }
    r
}

/// The regions of one compile: shared by the zones it compiles, and compared with the
/// copies that reused zones were compiled with.
struct Regions<'a> {
    cfg: &'a Config,
    /// Each region's shared value, made when a zone compiled in this pass first names it.
    shared: Vec<std::cell::OnceCell<Arc<RegionConfig>>>,
    /// Whether a copy (by index and address) equals the region at its index now.
    verdicts: HashMap<(usize, *const RegionConfig), bool>,
}

impl<'a> Regions<'a> {
    fn new(cfg: &'a Config) -> Regions<'a> {
        Regions {
            cfg,
            shared: cfg
                .regions
                .iter()
                .map(|_| std::cell::OnceCell::new())
                .collect(),
            verdicts: HashMap::new(),
        }
    }

    /// Region `g`'s value, shared with the other zones of this compile.
    fn shared(&self, g: usize) -> Option<Arc<RegionConfig>> {
        let reg = self.cfg.regions.get(g)?;
        let cell = self.shared.get(g)?;
        Some(Arc::clone(cell.get_or_init(|| Arc::new(reg.clone()))))
    }

    /// Whether the regions a compiled zone's services name are still the same in the config.
    fn same(&mut self, d: &ZoneData) -> bool {
        d.regions.iter().all(|(i, reg)| {
            let cfg = self.cfg;
            *self
                .verdicts
                .entry((*i, Arc::as_ptr(reg)))
                .or_insert_with(|| cfg.regions.get(*i) == Some(&**reg))
        })
    }
}

/// Compiles one zone: its static records, the steered names of its services, the empty
/// non-terminals between them and the apex, and the SOA of negative answers.
fn zone(z: &Arc<ZoneConfig>, cfg: &Config, regions: &Regions<'_>) -> ZoneData {
    let origin = &z.origin;
    let apex = wire_name(origin);
    let key_set = cfg.key_sets.get(origin).cloned();
    let key = key_set.as_ref().map(|s| Arc::clone(&s.zsk));
    let window = crate::dnssec::Window::now();
    let signing = key.as_deref().map(|k| Signing::new(k, origin, window));
    let signing = signing.as_ref();
    let mut nodes: NameMap<Node> = NameMap::default();
    let mut has_cuts = false;
    for (name, records) in &by_owner(z) {
        let mut node = static_node(records, origin, &apex, signing);
        if name != origin && node.set(crate::proto::TYPE_NS).is_some() {
            node.cut = true;
            has_cuts = true;
        }
        nodes.insert(wire_name(name), node);
    }
    for (local, svc) in z.services.iter().enumerate() {
        service_nodes(&mut nodes, local as u32, svc, cfg, origin, signing);
    }
    empty_non_terminals(&mut nodes, &apex);
    if let (Some(ks), Some(sg)) = (&key_set, signing) {
        let node = nodes.entry(apex.clone()).or_default();
        node.sets.extend(key_sets(ks, origin, z.ttl, window));
        nsec_sets(&mut nodes, origin, z.soa.minimum.min(z.ttl), sg);
        any_sets(&mut nodes, origin, z.soa.minimum, sg);
        if has_cuts {
            unsign_below_cuts(&mut nodes, &apex);
        }
    }

    let soa_min = z.soa.minimum;
    let (soa, soa_ptrs) = super::rdata::soa(&z.soa, &apex);
    let mut negative_soa = rrset_with_ptrs(
        crate::proto::TYPE_SOA,
        &[(soa_min, soa, soa_ptrs)],
        origin,
        Vec::new(),
    );
    // The apex SOA's signature, with the negative answer's TTL (its original TTL, inside
    // the signature, is the SOA's own).
    let apex_sig = nodes
        .get(&apex)
        .and_then(|n| n.set(crate::proto::TYPE_SOA))
        .and_then(|s| s.rrsig.clone());
    negative_soa.rrsig = apex_sig.map(|mut sig| {
        if let Some(t) = sig.wire.get_mut(6..10) {
            t.copy_from_slice(&soa_min.to_be_bytes());
        }
        sig
    });
    ZoneData {
        source: z.clone(),
        regions: service_regions(z, regions),
        apex,
        origin: origin.clone(),
        negative_soa,
        nodes,
        has_cuts,
        key,
        key_set,
        window,
    }
}

/// The zone's static records (SOA and NS at the apex first) grouped by owner, each owner's in
/// the order written.
fn by_owner(z: &ZoneConfig) -> HashMap<Name, Vec<Record>> {
    let origin = &z.origin;
    let mut by_owner: HashMap<Name, Vec<Record>> = HashMap::new();
    let mut push = |name: &Name, ttl: u32, rdata: RData| {
        by_owner
            .entry(name.clone())
            .or_default()
            .push(Record::from_rdata(name.clone(), ttl, rdata));
    };
    push(origin, z.ttl, RData::SOA(z.soa.clone()));
    for ns in &z.ns {
        push(
            origin,
            z.ttl,
            RData::NS(hickory_proto::rr::rdata::NS(ns.clone())),
        );
    }
    for rec in &z.records {
        push(&rec.name, rec.ttl, rec.rdata.clone());
    }
    by_owner
}

/// The node of one owner of static records: one wire record set per type, in the order the
/// types first appear.
fn static_node(records: &[Record], origin: &Name, apex: &[u8], sg: Option<&Signing>) -> Node {
    let mut node = Node::default();
    let mut types: Vec<u16> = Vec::new();
    for r in records {
        let t = u16::from(r.record_type());
        if !types.contains(&t) {
            types.push(t);
        }
    }
    for t in types {
        let of_type: Vec<&Record> = records
            .iter()
            .filter(|r| u16::from(r.record_type()) == t)
            .collect();
        let items: Vec<(u32, Vec<u8>, Vec<usize>)> = of_type
            .iter()
            .filter_map(|r| match super::rdata::encode(&r.data, apex) {
                Ok((d, p)) => Some((r.ttl, d, p)),
                Err(e) => {
                    tracing::error!(name = %r.name, error = %e, "record left out: no wire form");
                    None
                }
            })
            .collect();
        let targets: Vec<Name> = of_type.iter().filter_map(|r| target(&r.data)).collect();
        let mut set = rrset_with_ptrs(t, &items, origin, targets);
        if let Some(RData::CNAME(c)) = of_type.first().map(|r| &r.data) {
            set.cname = Some(wire_name(&c.0));
            set.targets = Box::new([]);
        }
        if let (Some(sg), Some(first)) = (sg, of_type.first()) {
            let data = of_type.iter().map(|r| &r.data);
            set.rrsig = sg
                .records(&first.name, t, first.ttl, data)
                .map(|rd| rrsig_set(first.ttl, rd, origin));
        }
        node.sets.push(set);
    }
    node
}

/// The steered names of service number `local` of the zone (the service, its SRV names,
/// each region's names) and the A/AAAA records of its servers' host names.
fn service_nodes(
    nodes: &mut NameMap<Node>,
    local: u32,
    svc: &crate::config::ServiceConfig,
    cfg: &Config,
    origin: &Name,
    sg: Option<&Signing>,
) {
    let sref = |kind| SteerRef {
        service: local,
        kind,
    };
    let base = wire_name(&svc.name);
    let regs: Vec<&crate::config::RegionConfig> =
        svc.regions.iter().map(|&r| &cfg.regions[r]).collect();
    let names = crate::config::service_names::service_names(&base, &svc.transports, &regs);
    nodes.entry(base).or_default().steer = Some(sref(SteerKind::Service));
    for (t, n) in names.srv {
        nodes.entry(n).or_default().steer = Some(sref(SteerKind::Srv(t)));
    }
    for (ri, (rn, reg)) in names.regions.into_iter().zip(&regs).enumerate() {
        nodes.entry(rn.name).or_default().steer = Some(sref(SteerKind::Region(ri as u16)));
        for (t, n) in rn.srv {
            nodes.entry(n).or_default().steer = Some(sref(SteerKind::RegionSrv(ri as u16, t)));
        }
        for (host, s) in rn.hosts.into_iter().zip(&reg.servers) {
            let owner = sg.and_then(|_| super::name_of(&host));
            let sg = sg.zip(owner.as_ref());
            host_sets(
                nodes.entry(host).or_default(),
                &s.addresses,
                svc.ttl,
                origin,
                sg,
            );
        }
    }
}

/// Adds a server host name's A and AAAA record sets (those it has addresses for).
fn host_sets(
    node: &mut Node,
    addresses: &[std::net::IpAddr],
    ttl: u32,
    origin: &Name,
    sg: Option<(&Signing, &Name)>,
) {
    for (t, v4) in [
        (crate::proto::TYPE_A, true),
        (crate::proto::TYPE_AAAA, false),
    ] {
        let items: Vec<(u32, Vec<u8>)> = addresses
            .iter()
            .filter_map(|ip| match ip {
                std::net::IpAddr::V4(a) if v4 => Some((ttl, a.octets().to_vec())),
                std::net::IpAddr::V6(a) if !v4 => Some((ttl, a.octets().to_vec())),
                _ => None,
            })
            .collect();
        if !items.is_empty() {
            let mut set = rrset(t, &items, origin, Vec::new());
            if let Some((sg, owner)) = sg {
                let rdatas: Vec<Vec<u8>> = items.iter().map(|(_, d)| d.clone()).collect();
                set.rrsig = Some(rrsig_set(ttl, sg.raw(owner, t, ttl, &rdatas), origin));
            }
            node.sets.push(set);
        }
    }
}

/// Adds every ancestor between a name and the apex that has no node yet (an empty
/// non-terminal).
fn empty_non_terminals(nodes: &mut NameMap<Node>, apex: &[u8]) {
    let names: Vec<Box<[u8]>> = nodes.keys().cloned().collect();
    for n in names {
        let mut cur: &[u8] = &n;
        while let Some(p) = super::parent(cur) {
            if p.len() <= apex.len() {
                break;
            }
            nodes.entry(p.into()).or_default();
            cur = p;
        }
    }
}

/// The regions the zone's services name, with their config, in the order first named.
fn service_regions(z: &ZoneConfig, shared: &Regions<'_>) -> Vec<(usize, Arc<RegionConfig>)> {
    let mut regions: Vec<(usize, Arc<RegionConfig>)> = Vec::new();
    for &g in z.services.iter().flat_map(|svc| &svc.regions) {
        if !regions.iter().any(|(i, _)| *i == g)
            && let Some(r) = shared.shared(g)
        {
            regions.push((g, r));
        }
    }
    regions
}

/// Names in record data whose addresses go in the additional section.
fn target(r: &RData) -> Option<Name> {
    match r {
        RData::MX(m) => Some(m.exchange.clone()),
        RData::SRV(s) => Some(s.target.clone()),
        RData::NS(n) => Some(n.0.clone()),
        _ => None,
    }
}
