//! Unit tests of the query counters: key slots, reason names, the id cap, sole writers, and
//! what they publish to the registry.

use super::*;
use crate::dns::summary::{Proto, Steered};

#[test]
fn every_key_is_its_own_counter() {
    let mut seen = std::collections::HashSet::new();
    for t in 0..TYPES.len() {
        for r in 0..RCODES.len() {
            for why in 0..REASONS {
                assert!(seen.insert((t * RCODES.len() + r) * REASONS + why));
            }
        }
    }
    assert_eq!(seen.len(), KEYS);
    assert!(seen.iter().all(|k| *k < KEYS));
}

#[test]
fn every_reason_has_its_own_slot_and_name() {
    let summary = |reason, fail_open| Summary {
        proto: Proto::Udp,
        rcode: 0,
        qtype: proto::TYPE_A,
        truncated: false,
        ecs: false,
        steered: Some(Steered {
            service: 0,
            region: None,
            reason,
            fail_open,
        }),
        zone: None,
    };
    for (i, r) in STEERED.iter().enumerate() {
        let slot = reason_index(&summary(*r, false));
        assert_eq!(slot, i + 1);
        assert_eq!(reason_name(slot), r.as_str());
        assert_eq!(
            reason_name(slot),
            summary(*r, false).steered.map_or("", |s| s.reason_label())
        );
    }
    let down = summary(Reason::Distance, true);
    assert_eq!(
        reason_name(reason_index(&down)),
        down.steered.map_or("", |s| s.reason_label())
    );
    assert_eq!(reason_name(0), "static");
}

#[test]
fn ids_past_the_cap_share_the_last_one() {
    let mut n = Interner::default();
    for i in 0..MAX_IDS + 3 {
        let id = n.id(&format!("z{i}"));
        assert_eq!(id as usize, i.min(MAX_IDS - 1));
    }
    let by = ById::new();
    by.add(u32::MAX, false);
    by.add(u32::MAX, true);
    assert_eq!(by.get(MAX_IDS - 1), 2);
}

#[test]
fn a_sole_writers_clone_counts_in_a_block_of_its_own() {
    let counters = Counters::new(Arc::new(Telemetry::new()));
    let sole = counters.sole_listener();
    let shared = counters.listener();
    let (sole2, shared2) = (sole.clone(), shared.clone());
    assert!(sole.sole && sole2.sole && !shared.sole && !shared2.sole);
    assert!(!Arc::ptr_eq(&sole.stats, &sole2.stats));
    assert!(Arc::ptr_eq(&shared.stats, &shared2.stats));
    assert_eq!(guard(&counters.blocks).len(), 3);
    std::thread::scope(|s| {
        for t in [sole, sole2, shared, shared2] {
            s.spawn(move || {
                for _ in 0..10_000 {
                    bump(&t.stats.ecs[1], t.sole);
                }
            });
        }
    });
    let total: u64 = guard(&counters.blocks)
        .iter()
        .map(|b| b.ecs[1].load(Relaxed))
        .sum();
    assert_eq!(total, 40_000);
}

/// A snapshot of one zone (`example.com`) with one region (`uk`).
fn snapshot() -> (Snapshot, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir(dir.path().join("zones")).expect("zones");
    std::fs::write(dir.path().join("sipsteer.yaml"), "zones: zones\n").expect("main");
    let zone = "zone: example.com\nsoa: { primary: ns1, contact: h, serial: 1 }\nns: [ns1]\n\
                records: { ns1: { A: 192.0.2.1 } }\nregions:\n  uk: { location: [51.5, 0], \
                servers: { a: { address: 192.0.2.10 } } }\nservices:\n  sip: { regions: [uk] }\n";
    std::fs::write(dir.path().join("zones/z.yaml"), zone).expect("zone");
    let cfg = crate::config::load(&dir.path().join("sipsteer.yaml")).expect("valid");
    (Snapshot::build(Arc::new(cfg), None, 1), dir)
}

#[test]
fn published_counts_render_through_the_registry_with_names_escaped() {
    let t = Arc::new(Telemetry::new());
    let counters = Counters::new(t.clone());
    let (snap, _dir) = snapshot();
    let mut tally = counters.listener();
    let steered = Steered {
        service: 0,
        region: Some(0),
        reason: Reason::Fallback,
        fail_open: false,
    };
    let summary = Summary {
        proto: Proto::Udp,
        rcode: 0,
        qtype: proto::TYPE_A,
        truncated: true,
        ecs: true,
        steered: Some(steered),
        zone: Some(0),
    };
    tally.record(&snap, &summary);
    tally.record(&snap, &summary);
    // Names no config can give today (zone and region names are DNS names), but the
    // exposition must not depend on that.
    {
        let mut n = guard(&counters.names);
        n.zones.id("we\"ird\\zone\nname.");
        n.regions.id("back\\\"slash");
    }
    counters.publish(&snap);
    counters.publish(&snap);
    let out = t.render();
    for line in [
        "sipsteer_queries_total{type=\"A\",rcode=\"NOERROR\",reason=\"fallback\"} 2",
        "sipsteer_queries_ecs_total{ecs=\"present\"} 2",
        "sipsteer_queries_ecs_total{ecs=\"absent\"} 0",
        "sipsteer_truncated_total 2",
        "sipsteer_zone_queries_total{zone=\"example.com.\"} 2",
        "sipsteer_zone_queries_total{zone=\"we\\\"ird\\\\zone\\nname.\"} 0",
        "sipsteer_region_answers_total{region=\"uk\"} 2",
        "sipsteer_region_answers_total{region=\"back\\\\\\\"slash\"} 0",
        "sipsteer_dns_cookies_total{result=\"valid\"} 0",
        "sipsteer_rrl_prefix_limited_total 0",
        "# HELP sipsteer_queries_total DNS queries answered, by type, rcode and steering reason",
        "# TYPE sipsteer_zone_queries_total counter",
    ] {
        assert_eq!(
            out.lines().filter(|l| *l == line).count(),
            1,
            "{line}\n{out}"
        );
    }
}
