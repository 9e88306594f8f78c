//! Crafted and corrupt MaxMind databases: loading is refused with the path and the reason, in
//! a bounded time, at load, on a running server's reload (the old data keeps serving) and in
//! `sipsteer explain`. The databases are written here byte by byte.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::dns::*;
use crate::support::steer::{GEO_CSV, MAIN_GEO, STEER_ZONE};
use hickory_proto::rr::RecordType;
use sipsteer::geo::GeoDb;
use sipsteer::reload::{ReloadResult, Trigger};

/// MaxMind DB data-section encoding, just enough for metadata and a small record.
struct Enc(Vec<u8>);

impl Enc {
    fn ctrl(&mut self, ty: u8, size: usize) {
        assert!(size < 29);
        if ty <= 7 {
            self.0.push(ty << 5 | size as u8);
        } else {
            self.0.extend([size as u8, ty - 7]);
        }
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.ctrl(2, s.len());
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    fn uint(&mut self, ty: u8, v: u64) -> &mut Self {
        let b = v.to_be_bytes();
        let skip = b.iter().take_while(|x| **x == 0).count();
        self.ctrl(ty, 8 - skip);
        self.0.extend_from_slice(&b[skip..]);
        self
    }
    fn map(&mut self, n: usize) -> &mut Self {
        self.ctrl(7, n);
        self
    }
}

/// How a database is laid out; `nodes[i]` are node i's two records.
struct Db {
    ip_version: u64,
    record_size: u64,
    /// Overrides the real number of nodes in the metadata.
    node_count: Option<u64>,
    nodes: Vec<[u32; 2]>,
}

/// The record value pointing at the first (and only) data record.
fn data(node_count: usize) -> u32 {
    node_count as u32 + 16
}

impl Db {
    fn v4(nodes: Vec<[u32; 2]>) -> Db {
        Db {
            ip_version: 4,
            record_size: 24,
            node_count: None,
            nodes,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for &[l, r] in &self.nodes {
            match self.record_size {
                28 => {
                    out.extend_from_slice(&l.to_be_bytes()[1..]);
                    out.push(((l >> 20) & 0xF0) as u8 | ((r >> 24) & 0x0F) as u8);
                    out.extend_from_slice(&r.to_be_bytes()[1..]);
                }
                32 => {
                    out.extend_from_slice(&l.to_be_bytes());
                    out.extend_from_slice(&r.to_be_bytes());
                }
                _ => {
                    out.extend_from_slice(&l.to_be_bytes()[1..]);
                    out.extend_from_slice(&r.to_be_bytes()[1..]);
                }
            }
        }
        out.extend([0u8; 16]);
        // The one data record: {country: {iso_code: "DE"}, location: {latitude, longitude}}.
        let mut d = Enc(Vec::new());
        d.map(1).str("country").map(1).str("iso_code").str("DE");
        out.extend(d.0);
        out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
        let mut m = Enc(Vec::new());
        m.map(9);
        m.str("binary_format_major_version").uint(5, 2);
        m.str("binary_format_minor_version").uint(5, 0);
        m.str("build_epoch").uint(9, 1_764_000_000);
        m.str("database_type").str("GeoIP2-City");
        m.str("description").map(1).str("en").str("crafted");
        m.str("ip_version").uint(5, self.ip_version);
        m.str("languages").ctrl(11, 1);
        m.str("en");
        let nodes = self.node_count.unwrap_or(self.nodes.len() as u64);
        m.str("node_count").uint(6, nodes);
        m.str("record_size").uint(5, self.record_size);
        out.extend(m.0);
        out
    }
}

/// 32 nodes where node i points both ways to node i + 1: 2^32 paths through 32 nodes.
fn chained() -> Vec<u8> {
    let n = 32;
    let nodes = (0..n)
        .map(|i| {
            let next = if i + 1 < n { i as u32 + 1 } else { data(n) };
            [next, next]
        })
        .collect();
    Db::v4(nodes).bytes()
}

/// Opens `bytes` as a `.mmdb` file; returns the error text (with the path stripped off).
fn refused(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("x.mmdb");
    std::fs::write(&path, bytes).expect("write");
    let started = Instant::now();
    let err = match GeoDb::open(&path).and_then(|db| db.table()) {
        Ok(t) => panic!("loaded a table of {} ranges", t.len()),
        Err(e) => e.to_string(),
    };
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let prefix = format!("{}: ", path.display());
    err.strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("error does not start with the path: {err}"))
        .to_owned()
}

const CRAFTED: &str = "(crafted or corrupt database)";

#[test]
fn chained_tree_is_refused() {
    let bytes = chained();
    assert!(bytes.len() < 512, "{} bytes", bytes.len());
    assert_eq!(
        refused(&bytes),
        format!("search tree node 31 is reached twice {CRAFTED}")
    );
}

#[test]
fn cycles_bad_pointers_and_deep_paths_are_refused() {
    // Node 1 points back to the root.
    let cyclic = Db::v4(vec![[1, data(2)], [0, data(2)]]).bytes();
    assert_eq!(
        refused(&cyclic),
        format!("search tree node 0 is reached twice {CRAFTED}")
    );
    // A record past the end of the data section.
    let far = data(1) + 5000;
    let outside = Db::v4(vec![[data(1), far]]).bytes();
    assert_eq!(
        refused(&outside),
        format!("search tree node 0 points to {far}, outside the data section {CRAFTED}")
    );
    // A record inside the separator.
    let sep = Db::v4(vec![[data(1), 3]]).bytes();
    assert_eq!(
        refused(&sep),
        format!("search tree node 0 points to 3, outside the data section {CRAFTED}")
    );
    // 40 distinct nodes in a row: deeper than an IPv4 address.
    let n = 40;
    let deep = (0..n)
        .map(|i| [if i + 1 < n { i as u32 + 1 } else { data(n) }, n as u32])
        .collect();
    assert_eq!(
        refused(&Db::v4(deep).bytes()),
        format!("search tree is deeper than 32 bits at node 32 {CRAFTED}")
    );
}

#[test]
fn metadata_that_does_not_fit_the_file_is_refused() {
    let mut big = Db::v4(vec![[data(1), data(1)]]);
    big.node_count = Some(1_000_000);
    let e = refused(&big.bytes());
    assert!(e.starts_with("cannot read MaxMind database: "), "{e}");
    let mut rs = Db::v4(vec![[data(1), data(1)]]);
    rs.record_size = 29;
    let e = refused(&rs.bytes());
    assert!(e.contains("record_size"), "{e}");
    let mut v = Db::v4(vec![[data(1), data(1)]]);
    v.ip_version = 5;
    let e = refused(&v.bytes());
    assert!(e.contains("ip_version"), "{e}");
    let e = refused(&chained()[..100]);
    assert!(e.starts_with("cannot read MaxMind database: "), "{e}");
}

#[test]
fn valid_trees_of_every_record_size_load() {
    // 0.0.0.0/1 -> node 1; 128.0.0.0/1 -> DE. Node 1: 0.0.0.0/2 empty, 64.0.0.0/2 -> DE.
    for record_size in [24, 28, 32] {
        let db = Db {
            ip_version: 4,
            record_size,
            node_count: None,
            nodes: vec![[1, data(2)], [2, data(2)]],
        };
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("ok.mmdb");
        std::fs::write(&path, db.bytes()).expect("write");
        let table = GeoDb::open(&path)
            .and_then(|d| d.table())
            .unwrap_or_else(|e| panic!("record size {record_size}: {e}"));
        assert_eq!(
            table.v4,
            [(0x4000_0000, u32::MAX, 0)],
            "record size {record_size}"
        );
    }
}

#[test]
fn aliased_ipv4_subtree_of_the_project_writer_loads() {
    let dir = tempfile::tempdir().expect("tmp");
    let csv = dir.path().join("geo.csv");
    std::fs::write(&csv, GEO_CSV).expect("csv");
    let mmdb = dir.path().join("geo.mmdb");
    sipsteer::geo::build_file(&csv, &mmdb).expect("build");
    let table = GeoDb::open(&mmdb).and_then(|d| d.table()).expect("loads");
    let r = table.lookup_range("81.2.69.7".parse().expect("ip"));
    assert_eq!(
        r.map(|(a, b, _)| (a.to_string(), b.to_string())),
        Some(("81.2.68.0".into(), "81.2.69.255".into()))
    );
}

/// A server on an `.mmdb` built from the steering fixture.
async fn mmdb_server(admin: bool) -> TestServer {
    let cfg = ConfigDir::new("", &[("example.com.yaml", STEER_ZONE)]);
    std::fs::write(cfg.path("geo.csv"), GEO_CSV).expect("csv");
    sipsteer::geo::build_file(&cfg.path("geo.csv"), &cfg.path("geo.mmdb")).expect("build");
    let mut main = MAIN_GEO.replace("geo.csv", "geo.mmdb");
    if admin {
        main = main.replace("admin: \"off\"", "admin: \"127.0.0.1:0\"");
    }
    std::fs::write(cfg.main(), main).expect("main");
    TestServer::start_in(cfg).await
}

async fn london_answer(s: &TestServer) -> Vec<String> {
    let q = Q {
        ecs: Some(("81.2.69.0".parse().expect("ip"), 24)),
        ..Q::default()
    };
    let m = udp(s.addr, "sip.example.com.", RecordType::A, &q).await;
    let mut a = rrs(&m.answers);
    a.sort();
    a
}

fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_file_name(".geo.tmp");
    std::fs::write(&tmp, bytes).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

#[tokio::test]
async fn running_server_refuses_a_crafted_database_and_keeps_serving() {
    let s = mmdb_server(true).await;
    let before = london_answer(&s).await;
    assert_eq!(
        before,
        [
            "sip.example.com. 30 A 192.0.2.10",
            "sip.example.com. 30 A 192.0.2.11"
        ]
    );
    let running = s.running.as_ref().expect("running");
    let path = s.cfg.path("geo.mmdb");
    replace(&path, &chained());
    let want = format!(
        "{}: search tree node 31 is reached twice {CRAFTED}",
        path.display()
    );
    // The watcher reloads; a direct reload must give the same verdict.
    let started = Instant::now();
    let status = loop {
        let st = running.reloader.status();
        if st.last_result == ReloadResult::Error {
            break st;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no rejected reload: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let last = status.last_error.unwrap_or_default();
    assert!(last.contains(&want), "{last}");
    let r = running.reloader.clone();
    let outcome = tokio::task::spawn_blocking(move || r.reload(Trigger::Api))
        .await
        .expect("join");
    match outcome {
        sipsteer::reload::Outcome::Rejected(e) => {
            assert!(e.to_string().contains(&want), "{e}");
        }
        other => panic!("not rejected: {other:?}"),
    }
    assert_eq!(london_answer(&s).await, before);
    let admin = running.admin.expect("admin");
    let (code, body) = crate::support::http::get(admin, "/v1/status").await;
    assert_eq!(code, 200);
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    let err = json["reload"]["last_error"].as_str().unwrap_or_default();
    assert!(err.contains(&want), "{body}");
    s.stop().await;
}

#[test]
fn explain_refuses_a_crafted_database() {
    let cfg = ConfigDir::new(MAIN_GEO, &[("example.com.yaml", STEER_ZONE)]);
    std::fs::write(cfg.main(), MAIN_GEO.replace("geo.csv", "geo.mmdb")).expect("main");
    let path = cfg.path("geo.mmdb");
    std::fs::write(&path, chained()).expect("write");
    let o = Command::new(env!("CARGO_BIN_EXE_sipsteer"))
        .arg("explain")
        .args(["--config", &cfg.main().display().to_string()])
        .args(["--client", "81.2.69.1", "sip.example.com"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    let want = format!(
        "{}: search tree node 31 is reached twice {CRAFTED}",
        path.display()
    );
    assert!(err.contains(&want), "{err}");
}
