//! GeoIP: the mmdb writer read back by the maxminddb crate, the network table, the block map
//! and its ECS scopes, and `sipsteer geoip build` through the real binary.

use std::net::IpAddr;

use ipnet::IpNet;
use maxminddb::{Reader, geoip2};
use sipsteer::geo::{GeoDb, GeoMap, Location, write_mmdb};

fn loc(cc: &str, coords: Option<(f64, f64)>, city: Option<&str>) -> Location {
    let b = cc.as_bytes();
    Location {
        country: Some([b[0], b[1]]),
        continent: None,
        coords,
        city: city.map(Into::into),
    }
}

fn entries() -> Vec<(IpNet, Location)> {
    vec![
        (
            "10.0.0.0/8".parse().unwrap(),
            loc("DE", Some((50.11, 8.68)), Some("Frankfurt")),
        ),
        (
            "10.1.0.0/16".parse().unwrap(),
            loc("GB", Some((51.51, -0.13)), Some("London")),
        ),
        (
            "81.2.69.0/24".parse().unwrap(),
            loc("GB", Some((51.51, -0.13)), Some("London")),
        ),
        (
            "2a02:c7c::/32".parse().unwrap(),
            loc("NL", Some((52.37, 4.9)), None),
        ),
        ("41.80.0.0/13".parse().unwrap(), loc("KE", None, None)),
    ]
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn writer_output_reads_back_with_maxminddb() {
    let bytes = write_mmdb(&entries(), "GeoIP2-City").expect("write");
    let r = Reader::from_source(bytes).expect("valid database");
    assert_eq!(r.metadata().database_type, "GeoIP2-City");
    assert_eq!(r.metadata().ip_version, 6);
    r.verify().expect("database verifies");

    let city = |addr: &str| {
        let res = r.lookup(ip(addr)).expect("lookup");
        let prefix = res.network().expect("network").prefix();
        let c: Option<geoip2::City> = res.decode().expect("decode");
        c.map(|c| {
            (
                c.country.iso_code.map(str::to_owned),
                c.location.latitude,
                c.city.names.english.map(str::to_owned),
                prefix,
            )
        })
    };
    assert_eq!(
        city("10.2.3.4"),
        Some((Some("DE".into()), Some(50.11), Some("Frankfurt".into()), 15))
    );
    assert_eq!(
        city("10.1.200.1"),
        Some((Some("GB".into()), Some(51.51), Some("London".into()), 16)),
        "nested network wins"
    );
    assert_eq!(
        city("81.2.69.160"),
        Some((Some("GB".into()), Some(51.51), Some("London".into()), 24))
    );
    assert_eq!(
        city("2a02:c7c::1"),
        Some((Some("NL".into()), Some(52.37), None, 32))
    );
    assert_eq!(
        city("::ffff:81.2.69.160").map(|c| c.0),
        Some(Some("GB".into())),
        "IPv4-mapped alias"
    );
    assert_eq!(city("192.0.2.1"), None);
    let country = city("41.80.1.1").expect("found");
    assert_eq!((country.0.as_deref(), country.1), (Some("KE"), None));
}

#[test]
fn geodb_table_and_block_map() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.mmdb");
    std::fs::write(&path, write_mmdb(&entries(), "GeoIP2-City").unwrap()).unwrap();
    let db = GeoDb::open(&path).expect("open");
    let table = db.table().expect("table");
    let (first, last, id) = table.lookup_range(ip("41.80.1.1")).expect("found");
    assert_eq!((first, last), (ip("41.80.0.0"), ip("41.87.255.255")));
    let l = &table.locations[id as usize];
    assert_eq!(
        l.continent,
        Some(*b"AF"),
        "continent filled in from the country"
    );
    assert!(l.coords.is_some(), "country centroid");

    assert_eq!(
        table.len(),
        6,
        "10/8 is split around 10.1/16, and its pieces joined again"
    );
    // Class: 1 for GB, 2 for everything else known, 0 for unknown addresses.
    let classes: Vec<u32> = table
        .locations
        .iter()
        .map(|l| if l.country == Some(*b"GB") { 1 } else { 2 })
        .collect();
    let map = GeoMap::compile(&table, &classes, 0);
    assert_eq!(map.lookup(ip("10.1.2.3")), (1, 16));
    assert_eq!(
        map.lookup(ip("10.0.0.1")),
        (2, 16),
        "the /16 next to 10.1/16 in 10/8"
    );
    assert_eq!(map.lookup(ip("10.128.0.1")), (2, 9));
    assert_eq!(map.lookup(ip("81.2.69.1")), (1, 24));
    assert_eq!(map.lookup(ip("192.0.2.1")).0, 0);
    assert_eq!(map.lookup(ip("2a02:c7c:1::")), (2, 32));
    // The CSV path gives the same table.
    let csv = dir.path().join("t.csv");
    std::fs::write(
        &csv,
        "network,country,continent,latitude,longitude,city\n10.0.0.0/8,DE,,50.11,8.68,Frankfurt\n10.1.0.0/16,GB,,51.51,-0.13,London\n81.2.69.0/24,GB,,51.51,-0.13,London\n2a02:c7c::/32,NL,,52.37,4.9,\n41.80.0.0/13,KE,,,,\n",
    )
    .unwrap();
    let t2 = GeoDb::open(&csv).expect("csv").table().expect("table");
    assert_eq!(t2.v4.len(), table.v4.len());
    assert_eq!(t2.v6.len(), table.v6.len());
}

#[test]
fn an_ipv6_network_over_the_ipv4_range_covers_ipv4_clients() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all.mmdb");
    // ::/64 holds ::/96, where an IPv6 tree keeps IPv4: every IPv4 client is in it.
    let all: Vec<(IpNet, Location)> = vec![
        (
            "::/64".parse().unwrap(),
            loc("US", Some((39.0, -77.5)), None),
        ),
        (
            "2a02::/16".parse().unwrap(),
            loc("NL", Some((52.37, 4.9)), None),
        ),
    ];
    std::fs::write(&path, write_mmdb(&all, "GeoIP2-City").unwrap()).unwrap();
    let table = GeoDb::open(&path).unwrap().table().unwrap();
    let classes: Vec<u32> = table
        .locations
        .iter()
        .map(|l| if l.country == Some(*b"US") { 1 } else { 2 })
        .collect();
    let map = GeoMap::compile(&table, &classes, 0);
    assert_eq!(map.lookup(ip("81.2.69.1")), (1, 0));
    assert_eq!(map.lookup(ip("2a02::1")), (2, 16));
}

#[test]
fn csv_errors_name_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("bad.csv");
    std::fs::write(
        &csv,
        "network,country,continent,latitude,longitude,city\n10.0.0.0/8,G1,,,,\n",
    )
    .unwrap();
    let e = GeoDb::open(&csv).expect_err("bad csv").to_string();
    assert_eq!(e, format!("{}:2:12: bad country code `G1`", csv.display()));
}

#[test]
fn geoip_build_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sample.mmdb");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_sipsteer"))
        .args(["geoip", "build"])
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip/sample.csv"))
        .arg(&out)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("GeoIP2-City"), "{stdout}");
    let r = Reader::open_readfile(&out).expect("readable");
    let c: geoip2::City = r
        .lookup(ip("81.2.69.160"))
        .unwrap()
        .decode()
        .unwrap()
        .expect("data");
    assert_eq!(c.city.names.english, Some("London"));
}

/// Load and compile time for a database of a million networks (run in release:
/// `cargo test --release --test geo -- --ignored --nocapture`).
#[test]
#[ignore]
fn million_networks() {
    use std::time::Instant;
    let cities = [
        (51.51, -0.13),
        (50.11, 8.68),
        (52.37, 4.9),
        (39.04, -77.49),
        (37.34, -121.89),
        (1.35, 103.82),
        (35.68, 139.69),
        (-33.87, 151.21),
    ];
    let mut entries = Vec::with_capacity(1_000_000);
    for i in 0..1_000_000u32 {
        let net = IpNet::new(
            IpAddr::V4(std::net::Ipv4Addr::from((i + (16 << 20)) << 8)),
            24,
        )
        .unwrap();
        let c = cities[(i as usize / 3) % cities.len()];
        entries.push((
            net,
            Location {
                country: Some(*b"ZZ"),
                continent: Some(*b"EU"),
                coords: Some((c.0 + f64::from(i % 97) * 0.01, c.1)),
                city: None,
            },
        ));
    }
    let t = Instant::now();
    let bytes = write_mmdb(&entries, "GeoIP2-City").unwrap();
    println!("write: {:?}, {} bytes", t.elapsed(), bytes.len());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.mmdb");
    std::fs::write(&path, &bytes).unwrap();
    let t = Instant::now();
    let db = GeoDb::open(&path).unwrap();
    let table = db.table().unwrap();
    println!(
        "open + table: {:?}, {} ranges, {} locations",
        t.elapsed(),
        table.len(),
        table.locations.len()
    );
    let t = Instant::now();
    let classes: Vec<u32> = table
        .locations
        .iter()
        .enumerate()
        .map(|(i, _)| (i % 6) as u32)
        .collect();
    let map = GeoMap::compile(&table, &classes, 99);
    println!(
        "compile: {:?}, {} blocks, {} bytes",
        t.elapsed(),
        map.blocks(),
        map.bytes()
    );
}
