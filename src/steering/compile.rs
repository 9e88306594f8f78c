//! Compiling the config (and a loaded GeoIP table) into steering data: regions and servers with
//! health slots, services with their generated names, and per region set a map from address
//! blocks to rankings, so a query costs one lookup.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::Name;
use ipnet::IpNet;

use super::policy::{Policies, Policy, regions_of};
use super::rank::{Ranking, fallback_ranking, rank_pinned};
use super::traffic::{Split, compile_split};
use super::{HealthView, Reason};
use crate::config::service_names::{service_names, wire_name};
use crate::config::{AllDown, Capacity, Config, ServerConfig, ServiceConfig, Transport};
use crate::geo::{GeoData, GeoMap};

/// Everything steering needs, built once per config (and GeoIP) load.
#[derive(Debug, Default)]
pub struct Steering {
    /// Same order as the config's regions.
    pub regions: Vec<Region>,
    /// Same order as routing's service references (zones in order, services in order);
    /// shared with the previous compile for zones that did not change.
    pub services: Vec<Arc<Service>>,
    /// The ranking policy of each service (an index into `policies`).
    service_policy: Vec<usize>,
    policies: Vec<Arc<Policy>>,
    /// The policy holding the only GeoIP map, when exactly one has a map.
    sole_map: Option<usize>,
    /// Number of server slots (the length of a health view).
    pub slots: usize,
    pub geo: Option<Arc<GeoData>>,
    /// Set while the config names a GeoIP database that is not compiled yet: the largest TTL
    /// of an answer that needs it (`geoip.warmup.ttl`).
    pub warmup_ttl: Option<u32>,
}

#[derive(Debug)]
pub struct Region {
    pub name: String,
    pub location: (f64, f64),
    pub min_up: usize,
    pub servers: Vec<Server>,
}

#[derive(Debug)]
pub struct Server {
    pub name: String,
    /// Index into the health view.
    pub slot: usize,
    pub backup: bool,
    pub weight: u16,
    pub port: u16,
    pub tls_port: u16,
    pub ws_port: u16,
    pub wss_port: u16,
    pub transports: Vec<Transport>,
    pub v4: Vec<[u8; 4]>,
    pub v6: Vec<[u8; 16]>,
    pub capacity: Option<Capacity>,
}

impl Server {
    pub fn port_for(&self, t: Transport) -> u16 {
        match t {
            Transport::Udp | Transport::Tcp => self.port,
            Transport::Tls => self.tls_port,
            Transport::Ws => self.ws_port,
            Transport::Wss => self.wss_port,
        }
    }
}

#[derive(Debug)]
pub struct Service {
    pub label: String,
    /// `sip.example.com`, lowercase wire form.
    pub name: Box<[u8]>,
    pub display: Name,
    /// Global region indexes, in the order written.
    pub regions: Vec<usize>,
    pub transports: Vec<Transport>,
    pub ttl: u32,
    /// TTL while a server of the answer's tiers is in trouble (equal to `ttl` when unset).
    pub trouble_ttl: u32,
    pub failover: usize,
    pub answers: usize,
    pub all_down: AllDown,
    pub fallback: Ranking,
    /// Per region position: that region first, then its nearest (reason Pinned).
    pub pinned: Vec<Ranking>,
    /// The same orders, for `networks:` overrides (reason Network).
    network_rankings: Vec<Ranking>,
    /// Overrides, longest prefix first.
    pub networks: Vec<(IpNet, u16)>,
    /// Kilometres taken off the distance per region position (`bias:`); empty when none.
    pub bias: Vec<f64>,
    /// Per region position, the split of its clients (`split:`); empty when the service
    /// splits nothing, and an empty list for a region it does not split.
    pub splits: Vec<Box<[Split]>>,
    /// Wire names of the SRV owners per transport: `_sip._udp.sip.example.com`.
    pub srv_names: Vec<(Transport, Box<[u8]>)>,
    /// Per region position: `uk.sip.example.com`.
    pub region_names: Vec<Box<[u8]>>,
    /// Per region position and transport: `_sip._udp.uk.sip.example.com`.
    pub region_srv_names: Vec<Vec<(Transport, Box<[u8]>)>>,
    /// Per region position and server: `lon1.uk.sip.example.com`.
    pub hosts: Vec<Vec<Box<[u8]>>>,
}

/// Builds the steering data for a config and an optional GeoIP database.
pub fn compile(cfg: &Config, geo: Option<Arc<GeoData>>) -> Steering {
    compile_reusing(cfg, geo, None)
}

/// Like [`compile`], reusing the compiled GeoIP maps of `previous` whose regions and database
/// did not change (a reload that only touched records or servers costs no map rebuild).
pub fn compile_reusing(
    cfg: &Config,
    geo: Option<Arc<GeoData>>,
    previous: Option<&Steering>,
) -> Steering {
    compile_keeping(cfg, geo, previous, &[])
}

/// Like [`compile_reusing`], also sharing the compiled services of unchanged zones:
/// `kept[i]` is, for zone `i` of `cfg`, where its services started in `previous` when the zone
/// and the regions it names did not change (routing reused its compiled zone).
pub fn compile_keeping(
    cfg: &Config,
    geo: Option<Arc<GeoData>>,
    previous: Option<&Steering>,
    kept: &[Option<u32>],
) -> Steering {
    let (regions, slots) = compile_regions(cfg);
    let mut policies = Policies::new(previous.map(|p| p.policies.as_slice()), geo.as_ref());
    let mut services = Vec::new();
    let mut service_policy = Vec::new();
    for (zi, z) in cfg.zones.iter().enumerate() {
        let base = kept.get(zi).copied().flatten().zip(previous);
        for (k, s) in z.services.iter().enumerate() {
            let old = base.and_then(|(b, p)| {
                let i = b as usize + k;
                Some((
                    p.services.get(i)?,
                    p.policies.get(*p.service_policy.get(i)?)?,
                ))
            });
            let (svc, policy) = match old {
                Some((svc, policy)) => (svc.clone(), policies.adopt(policy, cfg, s)),
                None => compile_service(cfg, s, &mut policies),
            };
            services.push(svc);
            service_policy.push(policy);
        }
    }
    let policies = policies.into_list();
    let mut with_maps = policies.iter().enumerate().filter(|(_, p)| p.map.is_some());
    let sole_map = match (with_maps.next(), with_maps.next()) {
        (Some((i, _)), None) => Some(i),
        _ => None,
    };
    Steering {
        regions,
        services,
        service_policy,
        policies,
        sole_map,
        slots,
        warmup_ttl: (cfg.geoip.is_some() && geo.is_none()).then_some(cfg.warmup.ttl),
        geo,
    }
}

/// The regions in config order, their servers numbered into health slots; and the slot count.
fn compile_regions(cfg: &Config) -> (Vec<Region>, usize) {
    let mut slots = 0;
    let regions = cfg
        .regions
        .iter()
        .map(|r| Region {
            name: r.name.clone(),
            location: r.location,
            min_up: r.min_up,
            servers: r
                .servers
                .iter()
                .map(|s| {
                    slots += 1;
                    compile_server(s, slots - 1)
                })
                .collect(),
        })
        .collect();
    (regions, slots)
}

fn compile_server(s: &ServerConfig, slot: usize) -> Server {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for a in &s.addresses {
        match a {
            IpAddr::V4(v) => v4.push(v.octets()),
            IpAddr::V6(v) => v6.push(v.octets()),
        }
    }
    Server {
        name: s.name.clone(),
        slot,
        backup: s.backup,
        weight: s.weight,
        port: s.port,
        tls_port: s.tls_port,
        ws_port: s.ws_port,
        wss_port: s.wss_port,
        transports: s.transports.clone(),
        v4,
        v6,
        capacity: s.capacity,
    }
}

/// One steered name: its regions by position, its rankings and its generated names; and the
/// position of its ranking policy.
fn compile_service(
    cfg: &Config,
    s: &ServiceConfig,
    policies: &mut Policies<'_>,
) -> (Arc<Service>, usize) {
    let (regs, fallback, bias) = regions_of(cfg, s);
    let policy = policies.position(&regs, &fallback, &bias);
    let pos_of = |g: usize| s.regions.iter().position(|&r| r == g).unwrap_or(0) as u16;
    let mut networks: Vec<(IpNet, u16)> =
        s.networks.iter().map(|(n, g)| (*n, pos_of(*g))).collect();
    networks.sort_by_key(|n| std::cmp::Reverse(n.0.prefix_len()));
    let n = regs.len() as u16;
    let base = wire_name(&s.name);
    let names = service_names(&base, &s.transports, &regs);
    let service = Service {
        label: s.label.clone(),
        name: base,
        display: s.name.clone(),
        regions: s.regions.clone(),
        transports: s.transports.clone(),
        ttl: s.ttl,
        trouble_ttl: s.trouble_ttl.unwrap_or(s.ttl),
        failover: s.failover,
        answers: s.answers,
        all_down: s.all_down,
        fallback: fallback_ranking(regs.len(), &fallback),
        pinned: (0..n)
            .map(|p| rank_pinned(p, &regs, Reason::Pinned))
            .collect(),
        network_rankings: (0..n)
            .map(|p| rank_pinned(p, &regs, Reason::Network))
            .collect(),
        networks,
        bias,
        splits: compile_splits(s, &regs),
        srv_names: names.srv,
        region_names: names.regions.iter().map(|r| r.name.clone()).collect(),
        region_srv_names: names.regions.iter().map(|r| r.srv.clone()).collect(),
        hosts: names.regions.into_iter().map(|r| r.hosts).collect(),
    };
    (Arc::new(service), policy)
}

/// A service's splits per region position (empty when it has none).
fn compile_splits(s: &ServiceConfig, regs: &[&crate::config::RegionConfig]) -> Vec<Box<[Split]>> {
    if s.splits.is_empty() {
        return Vec::new();
    }
    let pos_of = |g: usize| s.regions.iter().position(|&r| r == g).unwrap_or(0) as u16;
    (0..regs.len() as u16)
        .map(|from| {
            compile_split(
                s.splits
                    .iter()
                    .filter(|x| pos_of(x.from) == from)
                    .map(|x| {
                        let to = pos_of(x.to);
                        (to, regs[to as usize].name.as_str(), x.percent)
                    })
                    .collect(),
            )
        })
        .collect()
}

impl Steering {
    /// The ranking for a client of `service`, and the ECS scope it holds for.
    ///
    /// An IPv4-mapped IPv6 client (`::ffff:a.b.c.d`, as an ECS address of the IPv6 family) is
    /// ranked as its IPv4 address, and its scope is given in the IPv6 family (+96 bits), so a
    /// resolver never caches the answer for the whole mapped range.
    pub fn ranking_for(&self, service: usize, client: IpAddr) -> (&Ranking, u8) {
        match client {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => {
                    let (r, scope) = self.ranking_for_canonical(service, IpAddr::V4(v4));
                    (r, scope + 96)
                }
                None => self.ranking_for_canonical(service, client),
            },
            IpAddr::V4(_) => self.ranking_for_canonical(service, client),
        }
    }

    fn ranking_for_canonical(&self, service: usize, client: IpAddr) -> (&Ranking, u8) {
        let svc = &self.services[service];
        for (i, (net, pos)) in svc.networks.iter().enumerate() {
            if net.contains(&client) {
                let scope = narrow(client, net.prefix_len(), &svc.networks[..i]);
                return (&svc.network_rankings[*pos as usize], scope);
            }
        }
        let policy = &self.policies[self.service_policy[service]];
        match &policy.map {
            Some(map) => {
                let (class, scope) = map.lookup(client);
                let r = policy.rankings.get(class as usize).unwrap_or(&svc.fallback);
                (r, narrow(client, scope, &svc.networks))
            }
            // No map (none configured, or not compiled yet): the fallback order, for every
            // client outside the overrides.
            None => (&svc.fallback, narrow(client, 0, &svc.networks)),
        }
    }

    /// Every ranking a client of `service` can get, most clients first: the fallback order,
    /// the GeoIP map's rankings by the address space they cover, the `networks:` orders.
    pub fn rankings(&self, service: usize) -> Vec<&Ranking> {
        let Some(svc) = self.services.get(service) else {
            return Vec::new();
        };
        let policy = self.service_policy.get(service);
        let mut out = vec![&svc.fallback];
        out.extend(
            policy
                .and_then(|&i| self.policies.get(i))
                .map_or(Vec::new(), |p| p.by_catchment()),
        );
        out.extend(&svc.network_rankings);
        out
    }

    /// The GeoIP map every located answer uses, when there is exactly one (the listener
    /// warms its cache lines ahead of the lookups).
    pub fn sole_map(&self) -> Option<&GeoMap> {
        self.policies.get(self.sole_map?)?.map.as_ref()
    }

    /// Whether a region is healthy for a client whose shedding hash is `key` (at least
    /// `min_up` of its servers serve that client), whether it is healthy at all, and whether
    /// any of its servers sheds.
    pub fn region_serves_client(
        &self,
        region: usize,
        health: &HealthView,
        key: u64,
    ) -> (bool, bool, bool) {
        let Some(r) = self.regions.get(region) else {
            return (false, false, false);
        };
        let (mut serve, mut client, mut sheds) = (0, 0, false);
        for s in &r.servers {
            if health.status(s.slot).serves() {
                serve += 1;
                if health.shed(s.slot) != 0 {
                    sheds = true;
                }
                if !health.sheds(s.slot, key) {
                    client += 1;
                }
            }
        }
        (client >= r.min_up, serve >= r.min_up, sheds)
    }

    /// A region is healthy while at least `min_up` of its servers serve.
    pub fn region_healthy(&self, region: usize, health: &HealthView) -> bool {
        self.regions.get(region).is_some_and(|r| {
            r.servers
                .iter()
                .filter(|s| health.status(s.slot).serves())
                .count()
                >= r.min_up
        })
    }
}

/// Lengthens `scope` until the block around `addr` contains none of `nets` (networks whose
/// answers differ), so a resolver never caches our answer for an override's clients.
pub fn narrow(addr: IpAddr, mut scope: u8, nets: &[(IpNet, u16)]) -> u8 {
    for (n, _) in nets {
        if n.contains(&addr) {
            continue;
        }
        let block = IpNet::new(addr, scope).map(|b| b.trunc());
        if let Ok(b) = block
            && b.contains(&n.network())
        {
            let common = common_prefix(addr, n.network());
            scope = scope.max(common + 1);
        }
    }
    scope
}

fn common_prefix(a: IpAddr, b: IpAddr) -> u8 {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) ^ u32::from(b)).leading_zeros() as u8,
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a) ^ u128::from(b)).leading_zeros() as u8,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(zone: &str) -> (Config, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir(dir.path().join("zones")).expect("zones");
        std::fs::write(
            dir.path().join("sipsteer.yaml"),
            "zones: zones\ngeoip: { database: g.csv }\n",
        )
        .expect("main");
        std::fs::write(
            dir.path().join("g.csv"),
            "network,country,continent,latitude,longitude,city\n10.0.0.0/8,GB,EU,51.5,0,\n",
        )
        .expect("csv");
        std::fs::write(dir.path().join("zones/z.yaml"), zone).expect("zone");
        let cfg = crate::config::load(&dir.path().join("sipsteer.yaml")).expect("valid");
        (cfg, dir)
    }

    const ZONE: &str = "zone: example.com\nsoa: { primary: ns1, contact: h, serial: 1 }\nns: [ns1]\nrecords: { www: { A: 192.0.2.1 } }\nregions:\n  uk: { location: [51.5, 0], servers: { a: { address: 192.0.2.10 } } }\n  de: { location: [50, 8], servers: { b: { address: 192.0.2.20 } } }\nservices:\n  sip: { regions: [uk, de] }\n";

    #[test]
    fn the_sole_map_is_the_one_policy_map() {
        let (cfg, _d) = load(ZONE);
        let geo = Some(Arc::new(
            GeoData::load(cfg.geoip.as_deref().expect("geoip")).expect("geo"),
        ));
        let one = compile(&cfg, geo.clone());
        let map = one.policies[0].map.as_ref().expect("a map");
        assert!(one.sole_map().is_some_and(|m| std::ptr::eq(m, map)));
        assert!(
            compile(&cfg, None).sole_map().is_none(),
            "no database, no map"
        );
        let two = ZONE.replace(
            "services:\n  sip: { regions: [uk, de] }\n",
            "services:\n  sip: { regions: [uk, de] }\n  alt: { regions: [de, uk] }\n",
        );
        let (cfg2, _d2) = load(&two);
        let both = compile(&cfg2, geo);
        assert_eq!(both.policies.iter().filter(|p| p.map.is_some()).count(), 2);
        assert!(both.sole_map().is_none(), "two maps: none is the sole one");
    }

    #[test]
    fn reload_reuses_maps_only_when_regions_and_geoip_are_unchanged() {
        let (cfg, _d) = load(ZONE);
        let geo = Some(Arc::new(
            GeoData::load(cfg.geoip.as_deref().expect("geoip")).expect("geo"),
        ));
        let first = compile(&cfg, geo.clone());
        let (cfg2, _d2) = load(
            &ZONE
                .replace("192.0.2.1 ", "192.0.2.2 ")
                .replace("serial: 1", "serial: 2"),
        );
        let second = compile_reusing(&cfg2, geo.clone(), Some(&first));
        assert!(
            Arc::ptr_eq(&first.policies[0], &second.policies[0]),
            "records changed only: map reused"
        );
        let (cfg3, _d3) = load(&ZONE.replace("location: [50, 8]", "location: [48, 11]"));
        let third = compile_reusing(&cfg3, geo.clone(), Some(&second));
        assert!(
            !Arc::ptr_eq(&second.policies[0], &third.policies[0]),
            "a region moved: rebuilt"
        );
        let other_geo = Some(Arc::new(
            GeoData::load(cfg.geoip.as_deref().expect("geoip")).expect("geo"),
        ));
        let fourth = compile_reusing(&cfg3, other_geo, Some(&third));
        assert!(
            !Arc::ptr_eq(&third.policies[0], &fourth.policies[0]),
            "new database: rebuilt"
        );
    }
}
