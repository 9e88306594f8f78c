//! A measurement, not a test: how long a health flip takes to be served signed in a signed
//! zone with many steered variants (each service ranked over six regions by a GeoIP table of
//! many locations, with a split): the pre-signing round of the new view and the swap, from
//! the flip's view to the snapshot that answers with it. Run in release, as
//! docs/dnssec.md says: `cargo test --release --lib dns::presign_speed -- --ignored --nocapture`
//! (`PRESIGN_SERVICES` sets the number of services, 12 by default).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;

use super::answer::{Proto, respond};
use super::presign::presign;
use super::snapshot::Snapshot;
use crate::health::hub::Publisher;
use crate::steering::Status;

const REGIONS: [(&str, f64, f64); 6] = [
    ("uk", 51.5, -0.1),
    ("de", 50.1, 8.7),
    ("ams", 52.4, 4.9),
    ("useast", 39.0, -77.5),
    ("uswest", 37.3, -121.9),
    ("sg", 1.35, 103.8),
];

fn config(dir: &std::path::Path, services: usize) {
    std::fs::create_dir_all(dir.join("zones")).expect("zones");
    std::fs::write(
        dir.join("sipsteer.yaml"),
        "listen: { dns: [\"127.0.0.1:0\"], admin: off }\nzones: zones\n\
         geoip: { database: geo.csv }\nhealth: { check: none }\n",
    )
    .expect("main");
    let mut csv = String::from("network,country,continent,latitude,longitude,city\n");
    for i in 0..64u32 {
        let (lat, lon) = (-60.0 + f64::from(i) * 2.0, -180.0 + f64::from(i) * 5.6);
        let _ = writeln!(csv, "10.{i}.0.0/16,,,{lat},{lon},");
    }
    std::fs::write(dir.join("geo.csv"), csv).expect("csv");
    let mut zone = String::from(
        "zone: example.com\nsoa: { primary: ns1, contact: h, serial: 1 }\nns: [ns1]\n\
         records: { ns1: { A: 192.0.2.53 } }\ndnssec: { key: zone.pem }\nregions:\n",
    );
    for (r, (name, lat, lon)) in REGIONS.iter().enumerate() {
        let _ = writeln!(
            zone,
            "  {name}:\n    location: [{lat}, {lon}]\n    servers:"
        );
        for s in 0..2 {
            let _ = writeln!(
                zone,
                "      s{s}: {{ address: [198.51.{r}.{s}, \"2001:db8:{r}::{s}\"] }}"
            );
        }
    }
    zone.push_str("services:\n");
    for i in 0..services {
        let regions: Vec<&str> = REGIONS.iter().map(|r| r.0).collect();
        let _ = writeln!(
            zone,
            "  svc{i}: {{ regions: [{}], transports: [udp, tcp], failover: 3, answers: 1, \
             split: {{ uk: {{ de: 10 }} }} }}",
            regions.join(", ")
        );
    }
    std::fs::write(dir.join("zones/example.com.yaml"), zone).expect("zone");
    let pem =
        crate::dnssec::ZoneKey::generate_pem(crate::dnssec::Algorithm::EcdsaP256).expect("key");
    std::fs::write(dir.join("zone.pem"), pem).expect("pem");
}

#[test]
#[ignore]
fn time_from_a_health_flip_to_signed_answers() {
    let services = std::env::var("PRESIGN_SERVICES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let dir = tempfile::tempdir().expect("tmp");
    config(dir.path(), services);
    let cfg = crate::config::load(&dir.path().join("sipsteer.yaml")).expect("config");
    let geo = (cfg.geoip.as_ref()).map(|p| Arc::new(crate::geo::GeoData::load(p).expect("geo")));
    let snap = Snapshot::build(Arc::new(cfg), geo, 1);
    let t = Instant::now();
    presign(&snap);
    let first = t.elapsed();
    let start = snap.sigs.totals();
    println!(
        "{services} services: first round {:.1} ms, {} variants, {} signatures",
        first.as_secs_f64() * 1e3,
        start.round_variants,
        start.round_signed
    );
    let steering = snap.steering.clone();
    let shared = ArcSwap::from_pointee(snap);
    // Flip: uk's first server down, then de's too, then both back.
    let flips: [&[(usize, Status)]; 3] = [
        &[(0, Status::Down)],
        &[(0, Status::Down), (2, Status::Down)],
        &[],
    ];
    for (n, flip) in flips.iter().enumerate() {
        let mut view = crate::steering::HealthView::all_up(steering.slots);
        for &(slot, st) in *flip {
            view.status[slot] = st;
        }
        let before = shared.load().sigs.totals();
        let t = Instant::now();
        shared.publish(&steering, view);
        let took = t.elapsed();
        let after = shared.load().sigs.totals();
        println!(
            "flip {n}: served signed after {:.1} ms: {} variants, {} new signatures",
            took.as_secs_f64() * 1e3,
            after.round_variants,
            after.signer - before.signer
        );
    }
    // Every answer of the new view is found signed.
    let snap = shared.load_full();
    let mut out = Vec::new();
    for i in 0..64u8 {
        for svc in 0..services {
            let q = query(&format!("svc{svc}.example.com"), i);
            respond(&snap, [10, i, 1, 1].into(), Proto::Tcp, &q, &mut out).expect("reply");
            assert_eq!(out[3] & 0xF, 0, "NOERROR");
        }
    }
    assert_eq!(snap.sigs.totals().misses, 0);
}

/// A DO=1 NAPTR query for `name` (TCP: no size limit).
fn query(name: &str, id: u8) -> Vec<u8> {
    let mut q = vec![0, id, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 35, 0, 1]);
    q.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0x80, 0, 0, 0]);
    q
}
