//! Pins the directory lookup of [`GeoMap`] to a plain binary search over all block starts:
//! every block boundary (first address, the one before it, last address, the one after it)
//! and every directory boundary of generated databases, for IPv4, IPv6 and IPv4-mapped.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::*;
use crate::geo::{GeoDb, Location};

/// The lookup as a binary search over every block start.
fn reference<T: Addr>(b: &Blocks<T>, x: T, max: T) -> (u32, u8) {
    let i = b.starts.partition_point(|&s| s <= x).saturating_sub(1);
    let lo: u128 = b.starts[i].into();
    let hi: u128 = b.starts.get(i + 1).map_or(max.into(), |&n| n.into() - 1);
    (b.class[i], scope(x.into(), lo, hi, T::BITS))
}

/// Addresses around every block boundary and every directory boundary.
fn probes<T: Addr>(b: &Blocks<T>, max: T, step: impl Fn(T, bool) -> Option<T>) -> Vec<T> {
    let mut out = vec![max];
    let split: Vec<usize> = (0..1usize << DIR_BITS)
        .filter(|&h| b.dir[h][1] != NONE && b.dir[h][1] & LEAF == 0)
        .collect();
    let subs = split.iter().flat_map(|&h| {
        (0..1usize << SUB_BITS)
            .map(move |m| T::from_prefix((h << SUB_BITS) | m, DIR_BITS + SUB_BITS))
    });
    let edges = b
        .starts
        .iter()
        .copied()
        .chain((0..1usize << DIR_BITS).map(|h| T::from_prefix(h, DIR_BITS)))
        .chain(subs);
    for s in edges {
        out.push(s);
        out.extend(step(s, false));
        out.extend(step(s, true));
    }
    out
}

fn check_v4(m: &GeoMap) -> usize {
    let step = |s: u32, up: bool| {
        if up {
            s.checked_add(1)
        } else {
            s.checked_sub(1)
        }
    };
    let all = probes(&m.v4, u32::MAX, step);
    for &x in &all {
        let want = reference(&m.v4, x, u32::MAX);
        assert_eq!(m.lookup(IpAddr::V4(Ipv4Addr::from(x))), want, "{x:#x}");
        let mapped = Ipv4Addr::from(x).to_ipv6_mapped();
        assert_eq!(m.lookup(IpAddr::V6(mapped)), want, "mapped {x:#x}");
    }
    all.len()
}

fn check_v6(m: &GeoMap) -> usize {
    let step = |s: u128, up: bool| {
        if up {
            s.checked_add(1)
        } else {
            s.checked_sub(1)
        }
    };
    let all = probes(&m.v6, u128::MAX, step);
    for &x in &all {
        let ip = Ipv6Addr::from(x);
        if ip.to_ipv4_mapped().is_some() {
            continue;
        }
        let want = reference(&m.v6, x, u128::MAX);
        assert_eq!(m.lookup(IpAddr::V6(ip)), want, "{ip}");
    }
    all.len()
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn place(i: u64) -> Location {
    Location {
        country: Some(*b"ZZ"),
        continent: Some(*b"EU"),
        coords: Some((i as f64 * 0.5, i as f64)),
        city: None,
    }
}

/// Networks of every length, nested and dense in a few places, in both families.
fn generated_rows() -> Vec<(IpNet, Location)> {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut rows = Vec::new();
    for _ in 0..4000 {
        let len = 8 + rng.below(25) as u8;
        let a = Ipv4Addr::from(rng.next() as u32);
        if let Ok(n) = IpNet::new(IpAddr::V4(a), len) {
            rows.push((n.trunc(), place(rng.below(7))));
        }
    }
    // A dense /16: neighbouring /28s of alternating locations, so one directory entry
    // covers thousands of blocks.
    for i in 0..4096u32 {
        let a = Ipv4Addr::from((81u32 << 24) | (2 << 16) | (i << 4));
        rows.push((
            IpNet::new(IpAddr::V4(a), 28).unwrap(),
            place(u64::from(i % 2)),
        ));
    }
    for _ in 0..4000 {
        let len = 16 + rng.below(113) as u8;
        let hi = 0x2000u128 + u128::from(rng.below(0x1000));
        let x = (hi << 112) | u128::from(rng.next()) << 48 | u128::from(rng.next());
        if let Ok(n) = IpNet::new(IpAddr::V6(Ipv6Addr::from(x)), len) {
            rows.push((n.trunc(), place(rng.below(7))));
        }
    }
    for i in 0..2048u128 {
        let x = (0x2a00_1450u128 << 96) | (i << 72);
        let n = IpNet::new(IpAddr::V6(Ipv6Addr::from(x)), 56).unwrap();
        rows.push((n, place((i % 3) as u64)));
    }
    rows
}

#[test]
fn directory_lookup_equals_binary_search_on_a_generated_database() {
    let rows = generated_rows();
    let bytes = crate::geo::write_mmdb(&rows, "GeoIP2-City").expect("write");
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("gen.mmdb");
    std::fs::write(&path, bytes).expect("write db");
    let table = GeoDb::open(&path).expect("open").table().expect("table");
    assert!(
        table.v4.len() > 4000 && table.v6.len() > 4000,
        "{}",
        table.len()
    );
    // Several class assignments: each location apart, and locations sharing classes.
    for modulo in [u32::MAX, 3, 2] {
        let classes: Vec<u32> = (0..table.locations.len() as u32)
            .map(|l| l % modulo)
            .collect();
        let m = GeoMap::compile(&table, &classes, 99);
        assert!(m.v4.starts.len() > 4000, "{}", m.v4.starts.len());
        assert!(check_v4(&m) > 4 * m.v4.starts.len());
        assert!(check_v6(&m) > 4 * m.v6.starts.len());
    }
    // The compact table kept after loading compiles to the same blocks.
    let classes: Vec<u32> = (0..table.locations.len() as u32).map(|l| l % 3).collect();
    let from_table = GeoMap::compile(&table, &classes, 99);
    let compact = crate::geo::Networks::new(table);
    let from_compact = GeoMap::compile(&compact, &classes, 99);
    assert_eq!(from_table.v4.starts, from_compact.v4.starts);
    assert_eq!(from_table.v4.class, from_compact.v4.class);
    assert_eq!(from_table.v6.starts, from_compact.v6.starts);
    assert_eq!(from_table.v6.class, from_compact.v6.class);
}

#[test]
fn directory_lookup_equals_binary_search_on_built_blocks() {
    // Blocks at the very ends of each space, blocks spanning many directory entries, and
    // one directory entry holding thousands of blocks.
    let mut v4 = vec![(0u32, 0u32, 0u32), (5, 5, 1), (u32::MAX, u32::MAX, 2)];
    v4.push((0x0100_0000, 0x7fff_ffff, 1));
    for i in 0..3000u32 {
        let s = 0x9000_0000 + i * 3;
        v4.push((s, s + 1, i % 3));
    }
    v4.sort();
    let v6 = vec![
        (0u128, 0u128, 0u32),
        (1 << 112, (3 << 112) - 1, 1),
        (u128::MAX - 7, u128::MAX, 2),
    ];
    let t = NetworkTable {
        v4,
        v6,
        locations: vec![],
    };
    let m = GeoMap::compile(&t, &[4, 5, 6], 7);
    // Every kind of entry is exercised: whole /16s in one block, /24s in one block under a
    // sub-directory, and searches from both levels.
    let dir_leaves = m.v4.dir.iter().filter(|e| e[1] != NONE && e[1] & LEAF != 0);
    let sub_leaves = m.v4.sub.iter().filter(|&&e| e & LEAF != 0).count();
    assert!(dir_leaves.count() > 30_000);
    assert!(sub_leaves > 0 && sub_leaves < m.v4.sub.len());
    assert!(m.v4.dir.iter().any(|e| e[1] == NONE));
    assert!(check_v4(&m) > 4 * 3000);
    assert!(check_v6(&m) > 1 << DIR_BITS);
    assert_eq!(m.lookup("255.255.255.255".parse().unwrap()), (6, 32));
    assert_eq!(m.lookup("::".parse().unwrap()), (4, 128));
}

/// Lookups per second over GeoLite2-City with six regions' classes, directory against the
/// plain binary search (run in release, with the database linked as bench/README.md says:
/// `cargo test --release --lib geo::map -- --ignored --nocapture`).
#[test]
#[ignore]
fn lookup_speed_on_geolite2() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/data/GeoLite2-City.mmdb");
    let table = GeoDb::open(&path).expect("open").table().expect("table");
    let regions = [
        (51.5, -0.1),
        (50.1, 8.7),
        (52.4, 4.9),
        (39.0, -77.5),
        (37.3, -121.9),
        (1.35, 103.8),
    ];
    let classes: Vec<u32> = table
        .locations
        .iter()
        .map(|l| {
            let c = l.coords.unwrap_or((0.0, 0.0));
            (0..regions.len())
                .min_by(|&a, &b| {
                    let da = crate::geo::distance_km(c, regions[a]);
                    let db = crate::geo::distance_km(c, regions[b]);
                    da.total_cmp(&db)
                })
                .unwrap_or(0) as u32
        })
        .collect();
    let m = GeoMap::compile(&table, &classes, 99);
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let addrs: Vec<u32> = (0..4_000_000).map(|_| rng.next() as u32).collect();
    let (new, old) = time_lookups(&m, &addrs);
    let index = |e: u32| e & ((1 << SUB_INDEX_BITS) - 1);
    let widest = |b: &[u32]| {
        b.windows(2)
            .map(|w| index(w[1]).saturating_sub(index(w[0])))
            .max()
            .unwrap_or(0)
    };
    let longest = widest(&m.v4.sub);
    let longest6 = widest(&m.v6.sub);
    println!(
        "{} v4 blocks, {} v6 blocks, {} bytes; most blocks under one sub-directory entry: v4 {longest}, v6 {longest6}",
        m.v4.starts.len(),
        m.v6.starts.len(),
        m.bytes()
    );
    println!(
        "random IPv4, {} lookups: directory {:.1} ns each, binary search {:.1} ns each",
        addrs.len(),
        new.as_nanos() as f64 / addrs.len() as f64,
        old.as_nanos() as f64 / addrs.len() as f64
    );
    // Addresses where the database has networks: one in a random block each time.
    let n = m.v4.starts.len() as u64;
    let placed: Vec<u32> = (0..4_000_000)
        .map(|_| {
            let i = (rng.next() % n) as usize;
            let next = m.v4.starts.get(i + 1).map_or(u32::MAX, |&s| s - 1);
            let span = u64::from(next - m.v4.starts[i]) + 1;
            m.v4.starts[i] + (rng.next() % span) as u32
        })
        .collect();
    let (new, old) = time_lookups(&m, &placed);
    println!(
        "IPv4 in a random block, {} lookups: directory {:.1} ns each, binary search {:.1} ns each",
        placed.len(),
        new.as_nanos() as f64 / placed.len() as f64,
        old.as_nanos() as f64 / placed.len() as f64
    );
}

/// The time to look up every one of `addrs`, by directory and by plain binary search (whose
/// answers must agree).
fn time_lookups(m: &GeoMap, addrs: &[u32]) -> (std::time::Duration, std::time::Duration) {
    let sum = |f: &dyn Fn(u32) -> (u32, u8)| {
        let t = std::time::Instant::now();
        let total: u64 = addrs
            .iter()
            .map(|&x| {
                let (c, s) = f(x);
                u64::from(c) + u64::from(s)
            })
            .sum();
        (t.elapsed(), total)
    };
    let (new, a) = sum(&|x| m.v4.lookup(x));
    let (old, b) = sum(&|x| reference(&m.v4, x, u32::MAX));
    assert_eq!(a, b);
    (new, old)
}
