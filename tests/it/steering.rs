//! The pure steering core, table-driven: rankings, overrides, health, failover, all-down.

use std::net::IpAddr;
use std::sync::Arc;

use crate::support::dns::ConfigDir;
use crate::support::steer::{GEO_CSV, MAIN_GEO, STEER_ZONE};
use sipsteer::steering::{self, Asked, HealthView, Plan, Reason, Status, Steering};

fn steering_from(zone: &str) -> (Steering, ConfigDir) {
    let dir = ConfigDir::new(MAIN_GEO, &[("example.com.yaml", zone)]);
    std::fs::write(dir.path("geo.csv"), GEO_CSV).expect("write csv");
    let cfg = sipsteer::config::load(&dir.main()).unwrap_or_else(|e| panic!("{e}"));
    let geo = sipsteer::reload::load_geo(&cfg).expect("geo loads");
    (steering::compile(&cfg, geo), dir)
}

fn names(st: &Steering, p: &Plan) -> Vec<String> {
    let svc = &st.services[0];
    p.tiers()
        .iter()
        .map(|&pos| st.regions[svc.regions[pos as usize]].name.clone())
        .collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// Health with the named servers in the given state.
fn health(st: &Steering, set: &[(&str, Status)]) -> HealthView {
    let mut h = HealthView::all_up(st.slots);
    for (name, status) in set {
        let slot = st
            .regions
            .iter()
            .flat_map(|r| &r.servers)
            .find(|s| s.name == *name)
            .map(|s| s.slot)
            .expect("server exists");
        h.status[slot] = *status;
    }
    h
}

#[test]
fn rankings_for_clients_on_every_continent() {
    let (st, _d) = steering_from(STEER_ZONE);
    let h = HealthView::all_up(st.slots);
    let cases: &[(&str, [&str; 2], Reason, u8)] = &[
        ("81.2.69.160", ["uk", "ams"], Reason::Country, 23),
        ("87.32.1.1", ["uk", "ams"], Reason::Country, 16),
        ("91.65.0.1", ["de", "ams"], Reason::Distance, 14),
        ("90.0.0.1", ["uk", "ams"], Reason::Distance, 16),
        ("81.240.3.4", ["ams", "de"], Reason::Distance, 16),
        ("24.0.0.1", ["us-east", "us-west"], Reason::Distance, 16),
        ("50.46.9.9", ["us-west", "us-east"], Reason::Distance, 16),
        ("126.0.0.1", ["sg", "us-west"], Reason::Distance, 16),
        ("1.128.0.1", ["sg", "us-west"], Reason::Continent, 16),
        ("177.0.0.1", ["us-east", "uk"], Reason::Distance, 16),
        ("2a00:1000::1", ["uk", "ams"], Reason::Country, 32),
    ];
    for (client, want, reason, scope) in cases {
        let p = steering::plan(&st, &h, 0, Asked::Service, ip(client));
        assert_eq!(names(&st, &p), want, "{client}");
        assert_eq!(p.reason, *reason, "{client}");
        assert_eq!(p.scope, *scope, "{client}");
        assert!(!p.fail_open && !p.empty);
    }
}

#[test]
fn country_only_rows_use_the_centroid() {
    let (st, _d) = steering_from(STEER_ZONE);
    let p = steering::plan(
        &st,
        &HealthView::all_up(st.slots),
        0,
        Asked::Service,
        ip("41.80.1.1"),
    );
    // Kenya's centroid is nearer Frankfurt than London or Amsterdam.
    assert_eq!(names(&st, &p)[0], "de");
    assert_eq!(p.reason, Reason::Distance);
}

#[test]
fn network_overrides_win_longest_prefix_first() {
    let (st, _d) = steering_from(STEER_ZONE);
    let h = HealthView::all_up(st.slots);
    let p = steering::plan(&st, &h, 0, Asked::Service, ip("203.0.113.5"));
    assert_eq!(names(&st, &p), ["de", "ams"]);
    assert_eq!(
        (p.reason, p.scope),
        (Reason::Network, 25),
        "the /25 inside narrows the scope"
    );
    let p = steering::plan(&st, &h, 0, Asked::Service, ip("203.0.113.200"));
    assert_eq!(
        names(&st, &p),
        ["sg", "de"],
        "sg first, then the region nearest to sg"
    );
    assert_eq!((p.reason, p.scope), (Reason::Network, 25));
}

#[test]
fn unknown_clients_get_the_fallback_order() {
    let (st, _d) = steering_from(STEER_ZONE);
    let h = HealthView::all_up(st.slots);
    for client in ["127.0.0.1", "10.1.2.3", "::1"] {
        let p = steering::plan(&st, &h, 0, Asked::Service, ip(client));
        assert_eq!(names(&st, &p), ["us-east", "uk"], "{client}");
        assert_eq!(p.reason, Reason::Fallback);
    }
}

#[test]
fn unhealthy_servers_and_regions_are_skipped() {
    let (st, _d) = steering_from(STEER_ZONE);
    let uk = ip("81.2.69.160");
    // One uk server down: uk stays first.
    let h = health(&st, &[("lon1", Status::Down)]);
    assert_eq!(
        names(&st, &steering::plan(&st, &h, 0, Asked::Service, uk)),
        ["uk", "ams"]
    );
    // Every uk server down or full: ams and de.
    let h = health(
        &st,
        &[
            ("lon1", Status::Down),
            ("lon2", Status::Full),
            ("lon3", Status::Drained),
        ],
    );
    let p = steering::plan(&st, &h, 0, Asked::Service, uk);
    assert_eq!(names(&st, &p), ["ams", "de"]);
    // ams down as well: de then us-east... the next healthy in the ranking.
    let h = health(
        &st,
        &[
            ("lon1", Status::Down),
            ("lon2", Status::Down),
            ("lon3", Status::Down),
            ("ams1", Status::Down),
        ],
    );
    let p = steering::plan(&st, &h, 0, Asked::Service, uk);
    assert_eq!(names(&st, &p), ["de", "us-east"]);
}

#[test]
fn backups_answer_only_while_primaries_are_out() {
    let (st, _d) = steering_from(STEER_ZONE);
    let uk = st.services[0].regions[0];
    let pick = |h: &HealthView| -> Vec<(String, bool)> {
        let p = steering::plan(&st, h, 0, Asked::Service, ip("81.2.69.160"));
        steering::tier_servers(&st, h, uk, &p)
            .map(|(_, s)| (s.name.clone(), s.backup))
            .collect()
    };
    let all = HealthView::all_up(st.slots);
    assert_eq!(pick(&all), [("lon1".into(), false), ("lon2".into(), false)]);
    let h = health(&st, &[("lon1", Status::Down)]);
    assert_eq!(pick(&h), [("lon2".to_string(), false)]);
    let h = health(&st, &[("lon1", Status::Down), ("lon2", Status::Full)]);
    assert_eq!(pick(&h), [("lon3".to_string(), true)]);
}

#[test]
fn all_down_fails_open_or_answers_nothing() {
    let (st, _d) = steering_from(STEER_ZONE);
    let mut h = HealthView::all_up(st.slots);
    h.status.fill(Status::Down);
    let p = steering::plan(&st, &h, 0, Asked::Service, ip("81.2.69.160"));
    assert_eq!(names(&st, &p), ["uk"]);
    assert!(p.fail_open);
    let uk = st.services[0].regions[0];
    assert_eq!(
        steering::tier_servers(&st, &h, uk, &p).count(),
        2,
        "fail open answers the primaries"
    );

    let (st, _d) = steering_from(&STEER_ZONE.replace(
        "fallback: [us-east, uk]",
        "fallback: [us-east, uk]\n    all_down: nodata",
    ));
    let p = steering::plan(&st, &h, 0, Asked::Service, ip("81.2.69.160"));
    assert!(p.empty && p.tiers().is_empty());
}

#[test]
fn pinned_regions_fail_over_to_their_nearest() {
    let (st, _d) = steering_from(STEER_ZONE);
    let all = HealthView::all_up(st.slots);
    // Position 0 is uk; its nearest is ams. The client does not matter.
    for client in ["24.0.0.1", "126.0.0.1"] {
        let p = steering::plan(&st, &all, 0, Asked::Region(0), ip(client));
        assert_eq!(names(&st, &p), ["uk", "ams"]);
        assert_eq!((p.reason, p.scope), (Reason::Pinned, 0));
    }
    let h = health(
        &st,
        &[
            ("lon1", Status::Down),
            ("lon2", Status::Down),
            ("lon3", Status::Down),
        ],
    );
    let p = steering::plan(&st, &h, 0, Asked::Region(0), ip("24.0.0.1"));
    assert_eq!(names(&st, &p), ["ams", "de"]);
    // us-west pinned: us-east is nearest.
    let p = steering::plan(&st, &all, 0, Asked::Region(4), ip("81.2.69.1"));
    assert_eq!(names(&st, &p), ["us-west", "us-east"]);
}

#[test]
fn plans_are_deterministic() {
    let (st, _d) = steering_from(STEER_ZONE);
    let (st2, _d2) = steering_from(STEER_ZONE);
    let h = HealthView::all_up(st.slots);
    for client in [
        "81.2.69.160",
        "24.0.0.9",
        "126.0.0.1",
        "10.0.0.1",
        "203.0.113.9",
    ] {
        let a = steering::plan(&st, &h, 0, Asked::Service, ip(client));
        let b = steering::plan(&st2, &h, 0, Asked::Service, ip(client));
        assert_eq!(a, b, "{client}");
        assert_eq!(a, steering::plan(&st, &h, 0, Asked::Service, ip(client)));
    }
}

#[test]
fn srv_weights_follow_headroom() {
    assert_eq!(steering::srv_weight(100, None), 100);
    assert_eq!(steering::srv_weight(100, Some(0.25)), 25);
    assert_eq!(steering::srv_weight(100, Some(0.0)), 1, "never zero");
    let _ = Arc::new(0);
}

#[test]
fn without_geoip_everyone_gets_the_fallback() {
    let dir = ConfigDir::new(
        crate::support::dns::MAIN,
        &[("example.com.yaml", STEER_ZONE)],
    );
    let cfg = sipsteer::config::load(&dir.main()).unwrap_or_else(|e| panic!("{e}"));
    let st = steering::compile(&cfg, None);
    let p = steering::plan(
        &st,
        &HealthView::all_up(st.slots),
        0,
        Asked::Service,
        ip("81.2.69.160"),
    );
    assert_eq!(names(&st, &p), ["us-east", "uk"]);
    // The scope is the widest block around the client that holds no `networks:` override
    // (203.0.113.0/24 differs from 81.2.69.160 in the first bit).
    assert_eq!((p.reason, p.scope), (Reason::Fallback, 1));
}

#[test]
fn trouble_ttl_while_a_server_of_the_tiers_is_suspect_flipped_or_full() {
    let zone = STEER_ZONE.replace("    failover: 2\n", "    failover: 2\n    trouble_ttl: 5\n");
    let (st, _d) = steering_from(&zone);
    let svc = &st.services[0];
    assert_eq!((svc.ttl, svc.trouble_ttl), (30, 5));
    let slot = |name: &str| {
        st.regions
            .iter()
            .flat_map(|r| &r.servers)
            .find(|s| s.name == name)
            .map(|s| s.slot)
            .expect("server exists")
    };
    // No location: the fallback order, us-east then uk.
    let ttl = |h: &HealthView| {
        let p = steering::plan(&st, h, 0, Asked::Service, ip("10.1.2.3"));
        assert_eq!(names(&st, &p), ["us-east", "uk"]);
        steering::answer_ttl(&st, h, svc, &p)
    };
    let calm = health(&st, &[]);
    assert_eq!(ttl(&calm), 30);
    let mut h = health(&st, &[]);
    h.suspect[slot("lon3")] = true;
    assert_eq!(ttl(&h), 5, "a suspect backup of a tier region");
    let mut h = health(&st, &[]);
    h.suspect[slot("sin1")] = true;
    assert_eq!(ttl(&h), 30, "sg is not in the answer");
    let mut h = health(&st, &[]);
    h.flipped[slot("iad1")] = true;
    assert_eq!(ttl(&h), 5, "us-east just flipped (and is up again)");
    assert_eq!(ttl(&health(&st, &[("lon2", Status::Full)])), 5);
    assert_eq!(ttl(&health(&st, &[("lon2", Status::Down)])), 30);
    let (plain, _d) = steering_from(STEER_ZONE);
    let p = steering::plan(&plain, &h, 0, Asked::Service, ip("10.1.2.3"));
    assert_eq!(
        steering::answer_ttl(&plain, &h, &plain.services[0], &p),
        30,
        "no trouble_ttl: always the ttl"
    );
}
