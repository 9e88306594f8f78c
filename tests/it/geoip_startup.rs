//! Starting without waiting for the GeoIP database: static names answer at once, steered
//! names answer in their fallback order (warm-up answers, see `geoip_warmup.rs`) and `/readyz`
//! says not ready until the database is compiled; then steered names switch to answers by
//! location.

use std::net::IpAddr;

use crate::support::dns::{ConfigDir, Q, ecs_of, rrs, udp};
use crate::support::http::get;
use crate::support::steer::{GEO_CSV, STEER_ZONE};
use hickory_proto::rr::RecordType;

const MAIN: &str = r#"
listen: { dns: ["127.0.0.1:0"], admin: "127.0.0.1:0" }
zones: zones
geoip: { database: geo.mmdb }
health: { check: none }
"#;

fn ecs(ip: &str, prefix: u8) -> Q {
    let ip: IpAddr = ip.parse().expect("ip");
    Q {
        ecs: Some((ip, prefix)),
        ..Q::default()
    }
}

/// The fixture's networks and 60,000 more /24s (10.0.0.0 up) in Sydney, as a MaxMind DB.
fn write_database(cfg: &ConfigDir) {
    let mut csv = GEO_CSV.to_string();
    for i in 0..60_000u32 {
        let a = (10u32 << 24) | (i << 8);
        let o = a.to_be_bytes();
        csv.push_str(&format!(
            "{}.{}.{}.0/24,AU,OC,-33.87,151.21,\n",
            o[0], o[1], o[2]
        ));
    }
    let path = cfg.path("geo.csv");
    std::fs::write(&path, csv).expect("csv");
    sipsteer::geo::build_file(&path, &cfg.path("geo.mmdb")).expect("build mmdb");
}

async fn geoip_state(admin: std::net::SocketAddr) -> String {
    let (code, body) = get(admin, "/v1/status").await;
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    v["geoip"]["state"].as_str().unwrap_or("none").to_string()
}

fn load(cfg: &ConfigDir) -> sipsteer::config::Config {
    crate::support::dns::load_config(&cfg.main())
}

#[tokio::test]
async fn static_names_answer_while_geoip_compiles_and_steering_follows_it() {
    let cfg = ConfigDir::new(MAIN, &[("example.com.yaml", STEER_ZONE)]);
    write_database(&cfg);
    let running = sipsteer::app::start_early(&cfg.main(), load(&cfg))
        .await
        .expect("server starts");
    let (dns, admin) = (running.dns[0], running.admin.expect("admin"));

    // Before the compile: static answers, steered answers in the fallback order (us-east
    // first) for every client outside the overrides, with the warm-up TTL, and not ready.
    assert_eq!(geoip_state(admin).await, "loading");
    let m = udp(dns, "ns1.example.com.", RecordType::A, &Q::default()).await;
    assert_eq!(rrs(&m.answers), ["ns1.example.com. 300 A 192.0.2.53"]);
    for (net, prefix, scope) in [
        ("81.2.69.0", 24, 1),
        ("1.128.0.0", 24, 1),
        ("2a00:1000::", 48, 0),
    ] {
        let m = udp(dns, "sip.example.com.", RecordType::A, &ecs(net, prefix)).await;
        assert_eq!(
            rrs(&m.answers),
            ["sip.example.com. 5 A 192.0.2.40"],
            "{net}"
        );
        assert_eq!(ecs_of(&m), Some((net.parse().expect("ip"), prefix, scope)));
    }
    let (code, body) = get(admin, "/readyz").await;
    assert_eq!(
        (code, body.as_str()),
        (503, "geoip database not loaded yet\n")
    );

    // The compile runs on the reload thread; the snapshot it brings steers by location.
    running.load_geoip();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while geoip_state(admin).await != "loaded" {
        assert!(std::time::Instant::now() < deadline, "geoip never loaded");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let cases: &[(&str, u8, &[&str], u8)] = &[
        ("81.2.69.0", 24, &["192.0.2.10", "192.0.2.11"], 23),
        ("1.128.0.0", 24, &["192.0.2.60"], 16),
        ("10.0.7.0", 24, &["192.0.2.60"], 9),
        ("2a00:1000::", 48, &["192.0.2.10", "192.0.2.11"], 32),
    ];
    for (net, prefix, want, scope) in cases {
        let m = udp(dns, "sip.example.com.", RecordType::A, &ecs(net, *prefix)).await;
        let want: Vec<String> = want
            .iter()
            .map(|a| format!("sip.example.com. 30 A {a}"))
            .collect();
        let mut got = rrs(&m.answers);
        got.sort();
        assert_eq!(got, want, "{net}");
        assert_eq!(
            ecs_of(&m),
            Some((net.parse().expect("ip"), *prefix, *scope)),
            "{net}"
        );
    }
    let m = udp(dns, "ns1.example.com.", RecordType::A, &Q::default()).await;
    assert_eq!(rrs(&m.answers), ["ns1.example.com. 300 A 192.0.2.53"]);
    assert_eq!(get(admin, "/readyz").await.0, 200);
    running.shutdown().await;
}

#[tokio::test]
async fn a_missing_database_still_stops_an_early_start() {
    let cfg = ConfigDir::new(MAIN, &[("example.com.yaml", STEER_ZONE)]);
    let err = match sipsteer::app::start_early(&cfg.main(), load(&cfg)).await {
        Ok(_) => panic!("started without its database"),
        Err(e) => format!("{e:#}"),
    };
    assert_eq!(
        err,
        format!(
            "{}: cannot read GeoIP database: no such file or directory (os error 2)",
            cfg.path("geo.mmdb").display()
        )
    );
}

#[test]
fn a_database_that_failed_is_not_read_again_until_it_changes() {
    let cfg = ConfigDir::new(MAIN, &[("example.com.yaml", STEER_ZONE)]);
    write_database(&cfg);
    let db = cfg.path("geo.mmdb");
    let good = std::fs::read(&db).expect("read");
    let marker = b"\xab\xcd\xefMaxMind.com";
    let at = good
        .windows(marker.len())
        .rposition(|w| w == marker)
        .expect("metadata marker");
    let mut bad = good.clone();
    bad[at + 3] = b'X';
    let write_in_place = |bytes: &[u8], mtime: std::time::SystemTime| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&db)
            .expect("open");
        f.write_all(bytes).expect("write");
        f.set_modified(mtime).expect("mtime");
    };
    let mtime = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    write_in_place(&bad, mtime);
    let cache = sipsteer::reload::GeoSlot::default();
    let first = match sipsteer::reload::load(&cfg.main(), &cache) {
        Ok(_) => panic!("a database without metadata loaded"),
        Err(e) => e.to_string(),
    };
    let prefix = format!("{}: cannot read MaxMind database: ", db.display());
    assert!(first.starts_with(&prefix), "{first}");
    // Same size, inode and mtime: the file counts as unchanged and is not read again.
    write_in_place(&good, mtime);
    match sipsteer::reload::load(&cfg.main(), &cache) {
        Ok(_) => panic!("the unchanged file was read again"),
        Err(e) => assert_eq!(e.to_string(), first),
    }
    // A new mtime: read again, and now it loads.
    write_in_place(&good, mtime + std::time::Duration::from_secs(1));
    let loaded = sipsteer::reload::load(&cfg.main(), &cache).unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.geo.is_some());
}
