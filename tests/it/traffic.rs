//! Traffic engineering in the pure core: `bias` in distance rankings, `split` shares over
//! 100k random prefixes (share, churn when a percentage changes, a lost target), the ECS
//! scope of hashed answers, and proportional shedding.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::support::dns::ConfigDir;
use crate::support::steer::{GEO_CSV, MAIN_GEO};
use sipsteer::steering::{self, Asked, HealthView, Plan, Reason, Status, Steering};

/// Three regions near each other, no country lists: London ranks by distance too.
pub(crate) const TRAFFIC_ZONE: &str = r#"
zone: example.com
soa: { primary: ns1, contact: hostmaster, serial: 1 }
ns: [ns1]
records:
  ns1: { A: 192.0.2.53 }
regions:
  uk:
    location: [51.51, -0.13]
    servers:
      lon1: { address: [192.0.2.10, "2001:db8::10"] }
  de:
    location: [50.11, 8.68]
    servers:
      fra1: { address: [192.0.2.20, "2001:db8::20"] }
  ams:
    location: [52.37, 4.90]
    servers:
      ams1: { address: [192.0.2.30, "2001:db8::30"] }
services:
  sip:
    regions: [uk, de, ams]
    fallback: [uk]
"#;

/// The zone with `extra` lines added to the service.
pub(crate) fn zone_with(extra: &str) -> String {
    format!("{TRAFFIC_ZONE}{extra}")
}

fn steering_from(zone: &str) -> (Steering, ConfigDir) {
    let dir = ConfigDir::new(MAIN_GEO, &[("example.com.yaml", zone)]);
    std::fs::write(dir.path("geo.csv"), GEO_CSV).expect("write csv");
    let cfg = sipsteer::config::load(&dir.main()).unwrap_or_else(|e| panic!("{e}"));
    let geo = sipsteer::reload::load_geo(&cfg).expect("geo loads");
    (steering::compile(&cfg, geo), dir)
}

fn first(st: &Steering, p: &Plan) -> String {
    let pos = p.tiers()[0];
    st.regions[st.services[0].regions[pos as usize]]
        .name
        .clone()
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn slot(st: &Steering, name: &str) -> usize {
    st.regions
        .iter()
        .flat_map(|r| &r.servers)
        .find(|s| s.name == name)
        .map(|s| s.slot)
        .expect("server exists")
}

/// `n` distinct random IPv4 /24s outside the GeoIP data (a fixed xorshift sequence), so
/// every one is ranked by the fallback order, uk first.
fn prefixes(n: usize) -> Vec<IpAddr> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let a = (x >> 32) as u32 & 0xFFFF_FF00;
        // 10.0.0.0/8 and up: outside the sample rows (which start at 1.128, 24, 41...).
        let a = 0x0A00_0000 | (a & 0x00FF_FF00) | ((a >> 24) % 4) << 24;
        if seen.insert(a) {
            out.push(IpAddr::V4(Ipv4Addr::from(a)));
        }
    }
    out
}

/// Each prefix's first region.
fn firsts(st: &Steering, h: &HealthView, clients: &[IpAddr]) -> Vec<String> {
    clients
        .iter()
        .map(|&c| first(st, &steering::plan(st, h, 0, Asked::Service, c)))
        .collect()
}

fn share(v: &[String], region: &str) -> f64 {
    100.0 * v.iter().filter(|r| *r == region).count() as f64 / v.len() as f64
}

fn moved(a: &[String], b: &[String]) -> f64 {
    100.0 * a.iter().zip(b).filter(|(x, y)| x != y).count() as f64 / a.len() as f64
}

#[test]
fn bias_grows_a_catchment_and_is_the_reason() {
    let paris = ip("90.0.0.1");
    let (plain, _d) = steering_from(TRAFFIC_ZONE);
    let h = HealthView::all_up(plain.slots);
    let p = steering::plan(&plain, &h, 0, Asked::Service, paris);
    assert_eq!(
        (first(&plain, &p), p.reason),
        ("uk".into(), Reason::Distance)
    );

    // Paris is 344 km from London and 430 km from Amsterdam: 100 km of bias is enough.
    let (st, _d) = steering_from(&zone_with("    bias: { ams: 100 }\n"));
    let p = steering::plan(&st, &h, 0, Asked::Service, paris);
    assert_eq!((first(&st, &p), p.reason), ("ams".into(), Reason::Bias));
    // A negative bias shrinks: the same from the other side.
    let (st, _d) = steering_from(&zone_with("    bias: { uk: -100 }\n"));
    let p = steering::plan(&st, &h, 0, Asked::Service, paris);
    assert_eq!((first(&st, &p), p.reason), ("ams".into(), Reason::Bias));
    // Too little to change the order: still plain distance.
    let (st, _d) = steering_from(&zone_with("    bias: { ams: 50 }\n"));
    let p = steering::plan(&st, &h, 0, Asked::Service, paris);
    assert_eq!((first(&st, &p), p.reason), ("uk".into(), Reason::Distance));
    // London itself is 358 km from Amsterdam: 300 km of bias on ams keeps it home.
    let (st, _d) = steering_from(&zone_with("    bias: { ams: 300 }\n"));
    let london = ip("81.2.69.160");
    let p = steering::plan(&st, &h, 0, Asked::Service, london);
    assert_eq!(first(&st, &p), "uk");
    let p = steering::plan(&st, &h, 0, Asked::Service, paris);
    assert_eq!(first(&st, &p), "ams");
}

#[test]
fn bias_leaves_country_rankings_and_pinned_names_alone() {
    let zone = zone_with("    bias: { ams: 5000 }\n").replace(
        "    location: [51.51, -0.13]\n",
        "    location: [51.51, -0.13]\n    countries: [GB]\n",
    );
    let (st, _d) = steering_from(&zone);
    let h = HealthView::all_up(st.slots);
    let p = steering::plan(&st, &h, 0, Asked::Service, ip("81.2.69.160"));
    assert_eq!((first(&st, &p), p.reason), ("uk".into(), Reason::Country));
    let p = steering::plan(&st, &h, 0, Asked::Region(1), ip("81.2.69.160"));
    assert_eq!((first(&st, &p), p.reason), ("de".into(), Reason::Pinned));
}

#[test]
fn a_split_share_is_within_half_a_point_over_100k_prefixes() {
    let clients = prefixes(100_000);
    for (extra, want) in [
        (
            "    split: { uk: { de: 5 } }\n",
            vec![("de", 5.0), ("uk", 95.0)],
        ),
        (
            "    split: { uk: { de: 10, ams: 2.5 } }\n",
            vec![("de", 10.0), ("ams", 2.5), ("uk", 87.5)],
        ),
        (
            "    split: { uk: { ams: 50 } }\n",
            vec![("ams", 50.0), ("uk", 50.0)],
        ),
    ] {
        let (st, _d) = steering_from(&zone_with(extra));
        let got = firsts(&st, &HealthView::all_up(st.slots), &clients);
        for (region, pct) in want {
            let s = share(&got, region);
            assert!(
                (s - pct).abs() <= 0.5,
                "{extra}: {region} {s} not within 0.5 of {pct}"
            );
        }
    }
}

#[test]
fn raising_a_split_moves_only_the_added_share() {
    let clients = prefixes(100_000);
    let h = HealthView::all_up(3);
    let run = |extra: &str| {
        let (st, _d) = steering_from(&zone_with(extra));
        firsts(&st, &h, &clients)
    };
    let five = run("    split: { uk: { de: 5 } }\n");
    let ten = run("    split: { uk: { de: 10 } }\n");
    let churn = moved(&five, &ten);
    assert!(churn <= 5.5, "5 -> 10 moved {churn} points");
    assert!(
        five.iter().zip(&ten).all(|(a, b)| a != "de" || b == "de"),
        "every prefix sent to de at 5 % still goes there at 10 %"
    );
    // With a second target beside it.
    let five = run("    split: { uk: { de: 5, ams: 5 } }\n");
    let ten = run("    split: { uk: { de: 10, ams: 5 } }\n");
    let churn = moved(&five, &ten);
    assert!(churn <= 5.5, "5 -> 10 beside ams 5 moved {churn} points");
    // Written in another order: the same answers.
    assert_eq!(ten, run("    split: { uk: { ams: 5, de: 10 } }\n"));
}

#[test]
fn losing_a_target_moves_only_its_prefixes() {
    let clients = prefixes(100_000);
    let (st, _d) = steering_from(&zone_with("    split: { uk: { de: 10, ams: 10 } }\n"));
    let all = HealthView::all_up(st.slots);
    let before = firsts(&st, &all, &clients);
    let mut h = HealthView::all_up(st.slots);
    h.status[slot(&st, "fra1")] = Status::Down;
    let after = firsts(&st, &h, &clients);
    for (b, a) in before.iter().zip(&after) {
        match b.as_str() {
            "de" => assert_eq!(a, "uk", "de's prefixes go back to their region"),
            _ => assert_eq!(a, b, "only de's prefixes move"),
        }
    }
    assert!((share(&before, "de") - 10.0).abs() <= 0.5);
}

#[test]
fn a_split_client_keeps_its_region_as_the_next_tier() {
    let (st, _d) = steering_from(&zone_with(
        "    split: { uk: { de: 100 } }\n    failover: 3\n",
    ));
    let h = HealthView::all_up(st.slots);
    let p = steering::plan(&st, &h, 0, Asked::Service, ip("10.1.2.3"));
    let names: Vec<_> = p
        .tiers()
        .iter()
        .map(|&x| st.regions[st.services[0].regions[x as usize]].name.as_str())
        .collect();
    assert_eq!(names, ["de", "uk", "ams"]);
    assert_eq!((p.reason, p.split), (Reason::Split, Some(1)));
    // Pinned names are not split.
    let p = steering::plan(&st, &h, 0, Asked::Region(0), ip("10.1.2.3"));
    assert_eq!((first(&st, &p), p.reason), ("uk".into(), Reason::Pinned));
}

#[test]
fn the_scope_of_a_split_answer_is_the_hashed_prefix() {
    let (st, _d) = steering_from(&zone_with("    split: { uk: { de: 50 } }\n"));
    let (plain, _d2) = steering_from(TRAFFIC_ZONE);
    let h = HealthView::all_up(st.slots);
    let plan = |st: &Steering, c: &str| steering::plan(st, &h, 0, Asked::Service, ip(c));
    // Unsplit, the fallback answer holds for the GeoIP gap around the client (a /5).
    assert_eq!(plan(&plain, "10.1.2.3").scope, 5);
    for (client, scope) in [
        ("10.1.2.3", 24),
        ("10.200.0.1", 24),
        ("2001:db8:aa::1", 56),
        ("::ffff:10.1.2.3", 120),
    ] {
        assert_eq!(plan(&st, client).scope, scope, "{client}");
    }
    // Berlin's GeoIP block is a /14 and ranks de first: no split there, the block's scope.
    assert_eq!(
        plan(&st, "91.65.0.1").scope,
        plan(&plain, "91.65.0.1").scope
    );
    // A mapped address gets the answer of its IPv4 address.
    assert_eq!(
        plan(&st, "::ffff:10.1.2.3").tiers(),
        plan(&st, "10.1.2.3").tiers()
    );
    // One /24 or /56, one answer.
    let mut split = 0;
    for i in 0..=255u8 {
        let a = plan(&st, &format!("10.9.{i}.1"));
        assert_eq!(a.tiers(), plan(&st, &format!("10.9.{i}.254")).tiers());
        split += usize::from(a.reason == Reason::Split);
        let v6 = Ipv6Addr::new(0x2001, 0xdb8, u16::from(i), 0x00ff, 0, 0, 0, 1);
        let b = steering::plan(&st, &h, 0, Asked::Service, IpAddr::V6(v6));
        let v6b = Ipv6Addr::new(0x2001, 0xdb8, u16::from(i), 0x0001, 9, 9, 9, 9);
        assert_eq!(
            b.tiers(),
            steering::plan(&st, &h, 0, Asked::Service, IpAddr::V6(v6b)).tiers()
        );
    }
    assert!((96..=160).contains(&split), "{split} of 256 split at 50 %");
}

#[test]
fn shedding_leaves_out_a_share_of_clients_between_the_watermarks() {
    let clients = prefixes(20_000);
    let (st, _d) = steering_from(TRAFFIC_ZONE);
    let mut h = HealthView::all_up(st.slots);
    h.shed[slot(&st, "lon1")] = steering::threshold(0.3);
    h.shedding = true;
    let got = firsts(&st, &h, &clients);
    let s = share(&got, "de");
    assert!((s - 30.0).abs() <= 1.0, "{s} % shed to de");
    for (c, r) in clients.iter().zip(&got).take(2000) {
        let p = steering::plan(&st, &h, 0, Asked::Service, *c);
        assert_eq!(p.scope, 24, "a shedding answer depends on the /24");
        let want = if r == "de" {
            Reason::Shed
        } else {
            Reason::Fallback
        };
        assert_eq!(p.reason, want);
    }
    // Shedding more keeps the clients already shed.
    h.shed[slot(&st, "lon1")] = steering::threshold(0.6);
    let more = firsts(&st, &h, &clients);
    assert!(got.iter().zip(&more).all(|(a, b)| a != "de" || b == "de"));
    // Every region shedding everybody: nobody is left out.
    for s in ["lon1", "fra1", "ams1"] {
        h.shed[slot(&st, s)] = u64::MAX;
    }
    let p = steering::plan(&st, &h, 0, Asked::Service, clients[0]);
    assert_eq!(
        (first(&st, &p), p.fail_open, p.shed_key),
        ("uk".into(), false, None)
    );
}

#[test]
fn a_shedding_server_of_the_tiers_shortens_the_ttl() {
    let (st, _d) = steering_from(&zone_with("    trouble_ttl: 5\n"));
    let svc = &st.services[0];
    let mut h = HealthView::all_up(st.slots);
    let client = ip("10.1.2.3");
    let p = steering::plan(&st, &h, 0, Asked::Service, client);
    assert_eq!(steering::answer_ttl(&st, &h, svc, &p), 30);
    h.shed[slot(&st, "fra1")] = steering::threshold(0.1);
    h.shedding = true;
    let p = steering::plan(&st, &h, 0, Asked::Service, client);
    assert_eq!(
        steering::answer_ttl(&st, &h, svc, &p),
        5,
        "de is the second tier"
    );
    h.shed[slot(&st, "fra1")] = 0;
    h.shed[slot(&st, "ams1")] = steering::threshold(0.1);
    let p = steering::plan(&st, &h, 0, Asked::Service, client);
    assert_eq!(
        steering::answer_ttl(&st, &h, svc, &p),
        30,
        "ams is not in the answer"
    );
}
