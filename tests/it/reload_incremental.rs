//! Incremental reload: a reload that reuses the unchanged zone maps (parsed, validated and
//! compiled) publishes exactly the snapshot a full load of the same files builds, whether a
//! zone map changed, was added or removed, or a region it names changed; and it does reuse.

use std::fmt::Write;
use std::sync::Arc;

use crate::support::dns::ConfigDir;
use crate::support::steer::GEO_CSV;
use sipsteer::dns::snapshot::Snapshot;
use sipsteer::reload::{GeoSlot, Outcome, Reloader, Trigger};
use sipsteer::steering::HealthView;

const MAIN: &str = r#"
listen: { dns: ["127.0.0.1:0"], admin: "off" }
zones: zones
geoip: { database: geo.csv }
health: { check: none }
regions:
  uk: { location: [51.51, -0.13], countries: [GB], servers: { lon1: { address: 192.0.2.10 } } }
  de: { location: [50.11, 8.68], servers: { fra1: { address: [192.0.2.20, "2001:db8::20"] } } }
  us: { location: [39.04, -77.49], servers: { iad1: { address: 192.0.2.40 } } }
"#;

fn zone(name: &str, www: &str, regions: &str) -> String {
    format!(
        "zone: {name}\nsoa: {{ primary: ns1, contact: hostmaster, serial: 1 }}\nns: [ns1]\n\
         records:\n  ns1: {{ A: 192.0.2.53 }}\n  www: {{ A: {www} }}\n  _sip._udp: {{ SRV: \"10 100 5060 www\" }}\n\
         services:\n  sip: {{ regions: [{regions}] }}\n  voice: {{ regions: [us, uk] }}\n"
    )
}

/// `c.example` also declares a region of its own.
fn zone_c(addr: &str) -> String {
    format!(
        "{}regions:\n  own: {{ location: [1.35, 103.82], servers: {{ sin1: {{ address: {addr} }} }} }}\n",
        zone("c.example", "192.0.2.3", "own, uk")
    )
}

/// Everything a query can read from a snapshot's routing and steering, in a fixed order.
fn canon(s: &Snapshot) -> String {
    let mut out = String::new();
    for z in &s.routing.zones {
        let _ = writeln!(
            out,
            "zone {} index {} base {} apex {:?} cuts {} soa {:?}",
            z.origin, z.index, z.service_base, z.apex, z.has_cuts, z.negative_soa
        );
        let mut nodes: Vec<_> = z.nodes.iter().collect();
        nodes.sort_by(|a, b| a.0.cmp(b.0));
        for (name, node) in nodes {
            let _ = writeln!(out, "  {name:?} {node:?}");
        }
    }
    for r in &s.steering.regions {
        let _ = writeln!(out, "region {r:?}");
    }
    for svc in &s.steering.services {
        let _ = writeln!(out, "service {svc:?}");
    }
    let _ = writeln!(out, "slots {}", s.steering.slots);
    for client in [
        "81.2.68.1",
        "91.64.1.1",
        "24.0.1.1",
        "126.0.0.1",
        "203.0.113.1",
    ] {
        let ip = client.parse().expect("ip");
        for i in 0..s.steering.services.len() {
            let _ = writeln!(out, "rank {i} {client} {:?}", s.steering.ranking_for(i, ip));
        }
    }
    out
}

fn full(cfg: &ConfigDir) -> Snapshot {
    let loaded = sipsteer::reload::load(&cfg.main(), &GeoSlot::default()).expect("full load");
    Snapshot::build(Arc::new(loaded.config), loaded.geo, 0)
}

fn reloader(cfg: &ConfigDir) -> Reloader {
    let cache = GeoSlot::default();
    let loaded = sipsteer::reload::load(&cfg.main(), &cache).expect("first load");
    let binder: Arc<sipsteer::reload::HealthBinder> = Arc::new(
        |_: &sipsteer::config::Config, st: &Arc<sipsteer::steering::Steering>| {
            Arc::new(HealthView::all_up(st.slots))
        },
    );
    Reloader::first(&cfg.main(), loaded, cache, binder, Default::default())
}

/// Reloads and checks the result against a full load; returns the old and new snapshots.
fn reload_matches_full(r: &Reloader, cfg: &ConfigDir) -> (Arc<Snapshot>, Arc<Snapshot>) {
    let before = r.shared().load_full();
    assert!(
        matches!(r.reload(Trigger::Api), Outcome::Applied(_)),
        "{:?}",
        r.status()
    );
    let after = r.shared().load_full();
    assert_eq!(canon(&after), canon(&full(cfg)));
    (before, after)
}

/// Whether the zone `origin` shares its compiled steering services between two snapshots.
fn services_shared(a: &Snapshot, b: &Snapshot, origin: &str) -> bool {
    let services = |s: &Snapshot| {
        let z = s
            .routing
            .zones
            .iter()
            .find(|z| z.origin.to_string() == origin)
            .unwrap_or_else(|| panic!("no zone {origin}"));
        let base = z.service_base as usize;
        s.steering.services[base..base + z.source.services.len()].to_vec()
    };
    let (x, y) = (services(a), services(b));
    !x.is_empty() && x.iter().zip(&y).all(|(p, q)| Arc::ptr_eq(p, q))
}

/// Whether the zone `origin` shares its compiled data between two snapshots.
fn reused(a: &Snapshot, b: &Snapshot, origin: &str) -> bool {
    let find = |s: &Snapshot| {
        s.routing
            .zones
            .iter()
            .find(|z| z.origin.to_string() == origin)
            .map_or_else(|| panic!("no zone {origin}"), |z| z.data.clone())
    };
    Arc::ptr_eq(&find(a), &find(b))
}

fn setup() -> ConfigDir {
    let cfg = ConfigDir::new(
        MAIN,
        &[
            ("a.example.yaml", &zone("a.example", "192.0.2.1", "uk, de")),
            ("b.example.yaml", &zone("b.example", "192.0.2.2", "de, us")),
            ("c.example.yaml", &zone_c("192.0.2.60")),
        ],
    );
    std::fs::write(cfg.path("geo.csv"), GEO_CSV).expect("geo csv");
    cfg
}

#[test]
fn a_changed_zone_map_is_the_only_one_recompiled() {
    let cfg = setup();
    let r = reloader(&cfg);
    assert_eq!(canon(&r.shared().load()), canon(&full(&cfg)));
    let zone_b = zone("b.example", "192.0.2.22", "de, us");
    std::fs::write(cfg.path("zones/b.example.yaml"), zone_b).expect("write");
    let (old, new) = reload_matches_full(&r, &cfg);
    assert!(reused(&old, &new, "a.example."));
    assert!(!reused(&old, &new, "b.example."));
    assert!(reused(&old, &new, "c.example."));
    assert!(services_shared(&old, &new, "a.example."));
    assert!(!services_shared(&old, &new, "b.example."));
    assert!(services_shared(&old, &new, "c.example."));
    assert!(Arc::ptr_eq(
        old.steering.geo.as_ref().expect("geo"),
        new.steering.geo.as_ref().expect("geo")
    ));
}

#[test]
fn unchanged_files_reload_as_unchanged() {
    let cfg = setup();
    let r = reloader(&cfg);
    assert_eq!(r.reload(Trigger::Api), Outcome::Unchanged);
    // Rewritten with the same bytes: new identity, same content.
    let text = std::fs::read_to_string(cfg.path("zones/a.example.yaml")).expect("read");
    std::fs::write(cfg.path("zones/a.example.yaml"), text).expect("write");
    assert_eq!(r.reload(Trigger::Api), Outcome::Unchanged);
}

#[test]
fn added_and_removed_zone_maps_shift_the_others_without_recompiling_them() {
    let cfg = setup();
    let r = reloader(&cfg);
    // Sorts first: every other zone moves one place and its services one service further.
    let first = zone("0.example", "192.0.2.9", "us");
    std::fs::write(cfg.path("zones/0.example.yaml"), first).expect("write");
    let (old, new) = reload_matches_full(&r, &cfg);
    for z in ["a.example.", "b.example.", "c.example."] {
        assert!(reused(&old, &new, z), "{z}");
    }
    std::fs::remove_file(cfg.path("zones/a.example.yaml")).expect("remove");
    let (old, new) = reload_matches_full(&r, &cfg);
    for z in ["0.example.", "b.example.", "c.example."] {
        assert!(reused(&old, &new, z), "{z}");
    }
    assert!(
        new.routing
            .zones
            .iter()
            .all(|z| z.origin.to_string() != "a.example.")
    );
}

#[test]
fn a_changed_region_recompiles_the_zones_that_name_it() {
    let cfg = setup();
    let r = reloader(&cfg);
    // A shared region every zone names (through `voice`).
    let main = MAIN.replace("192.0.2.40", "192.0.2.44");
    std::fs::write(cfg.main(), main).expect("write");
    let (old, new) = reload_matches_full(&r, &cfg);
    for z in ["a.example.", "b.example.", "c.example."] {
        assert!(!reused(&old, &new, z), "{z}");
    }
    // A zone's own region: named by that zone only.
    std::fs::write(cfg.path("zones/c.example.yaml"), zone_c("192.0.2.61")).expect("write");
    reload_matches_full(&r, &cfg);
    // A new shared region moves the index of every zone's own region after it.
    let main = format!(
        "{MAIN}  sg: {{ location: [1.3, 103.8], servers: {{ s1: {{ address: 192.0.2.70 }} }} }}\n"
    )
    .replace("192.0.2.40", "192.0.2.44");
    std::fs::write(cfg.main(), main).expect("write");
    reload_matches_full(&r, &cfg);
}

#[test]
fn a_broken_zone_map_then_fixed_matches_a_full_load() {
    let cfg = setup();
    let r = reloader(&cfg);
    std::fs::write(cfg.path("zones/b.example.yaml"), "zone: [").expect("write");
    assert!(matches!(r.reload(Trigger::Api), Outcome::Rejected(_)));
    let zone_b = zone("b.example", "192.0.2.23", "uk");
    std::fs::write(cfg.path("zones/b.example.yaml"), zone_b).expect("write");
    let (old, new) = reload_matches_full(&r, &cfg);
    assert!(reused(&old, &new, "a.example."));
}
