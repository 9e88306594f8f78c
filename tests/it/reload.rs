//! Hot reload: every edit style operators and tools use, bad edits refused while the old
//! config keeps serving, and a query loop that never fails across many reloads.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::dns::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use sipsteer::reload::{ReloadResult, Trigger};

fn zone(addr: &str) -> String {
    format!(
        "zone: example.com\nsoa: {{ primary: ns1, contact: hostmaster, serial: 1 }}\nns: [ns1]\nrecords:\n  ns1: {{ A: 192.0.2.53 }}\n  www: {{ A: {addr} }}\n"
    )
}

async fn www(s: &TestServer) -> Vec<String> {
    rrs(
        &udp(s.addr, "www.example.com.", RecordType::A, &Q::default())
            .await
            .answers,
    )
}

/// The test config with the periodic rescan pushed out of the test's reach, so only the file
/// watcher can apply an edit.
const WATCHED: &str = r#"
listen: { dns: ["127.0.0.1:0"], admin: "off" }
zones: zones
health: { check: none }
reload: { rescan: 24h }
"#;

/// How long an edit may take to be served before the test fails: a bound against hanging, not
/// a latency goal (bench/reload_latency.py measures that); the rescan is out of reach, so only
/// the watcher can have applied it.
const SERVED_WITHIN: Duration = Duration::from_secs(30);

/// Waits until `www` answers `addr` (applied by the file watcher).
async fn served_after_the_edit(s: &TestServer, addr: &str) {
    let want = vec![format!("www.example.com. 300 A {addr}")];
    let start = Instant::now();
    loop {
        if www(s).await == want {
            return;
        }
        assert!(
            start.elapsed() < SERVED_WITHIN,
            "{addr} not served: {:?}",
            www(s).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn atomic_replace(path: &Path, text: &str) {
    let tmp = path.with_file_name(".tmp-write");
    std::fs::write(&tmp, text).expect("write tmp");
    std::fs::rename(&tmp, path).expect("rename");
}

#[tokio::test]
async fn in_place_write() {
    let s = TestServer::start(WATCHED, &[("example.com.yaml", &zone("192.0.2.1"))]).await;
    served_after_the_edit(&s, "192.0.2.1").await;
    std::fs::write(s.cfg.path("zones/example.com.yaml"), zone("192.0.2.2")).expect("write");
    served_after_the_edit(&s, "192.0.2.2").await;
    s.stop().await;
}

#[tokio::test]
async fn atomic_rename() {
    let s = TestServer::start(WATCHED, &[("example.com.yaml", &zone("192.0.2.1"))]).await;
    let p = s.cfg.path("zones/example.com.yaml");
    atomic_replace(&p, &zone("192.0.2.3"));
    served_after_the_edit(&s, "192.0.2.3").await;
    // A second replace still fires: the directory is watched, not the dead inode.
    atomic_replace(&p, &zone("192.0.2.4"));
    served_after_the_edit(&s, "192.0.2.4").await;
    s.stop().await;
}

#[tokio::test]
async fn rename_away_and_recreate() {
    let s = TestServer::start(WATCHED, &[("example.com.yaml", &zone("192.0.2.1"))]).await;
    let p = s.cfg.path("zones/example.com.yaml");
    let backup = s.cfg.path("zones/example.com.yaml~");
    std::fs::rename(&p, &backup).expect("rename away");
    std::fs::write(&p, zone("192.0.2.5")).expect("recreate");
    std::fs::remove_file(&backup).expect("remove backup");
    served_after_the_edit(&s, "192.0.2.5").await;
    s.stop().await;
}

#[tokio::test]
async fn configmap_data_swap() {
    use std::os::unix::fs::symlink;
    let cfg = ConfigDir::new(WATCHED, &[]);
    let zones = cfg.path("zones");
    let v1 = zones.join("..2026_11_25_01");
    std::fs::create_dir(&v1).expect("mkdir");
    std::fs::write(v1.join("example.com.yaml"), zone("192.0.2.6")).expect("write");
    symlink("..2026_11_25_01", zones.join("..data")).expect("link data");
    symlink("..data/example.com.yaml", zones.join("example.com.yaml")).expect("link file");
    let s = TestServer::start_in(cfg).await;
    served_after_the_edit(&s, "192.0.2.6").await;

    // What the kubelet does: a new timestamped dir, then an atomic swap of `..data`.
    let v2 = zones.join("..2026_11_25_02");
    std::fs::create_dir(&v2).expect("mkdir");
    std::fs::write(v2.join("example.com.yaml"), zone("192.0.2.7")).expect("write");
    symlink("..2026_11_25_02", zones.join("..data_tmp")).expect("link tmp");
    std::fs::rename(zones.join("..data_tmp"), zones.join("..data")).expect("swap");
    std::fs::remove_dir_all(&v1).expect("rm old");
    served_after_the_edit(&s, "192.0.2.7").await;
    s.stop().await;
}

#[tokio::test]
async fn bad_edit_keeps_serving_then_the_fix_applies() {
    let s = TestServer::start(WATCHED, &[("example.com.yaml", &zone("192.0.2.1"))]).await;
    let p = s.cfg.path("zones/example.com.yaml");
    let gen_before = s.running.as_ref().map(sipsteer::app::Running::generation);
    std::fs::write(&p, zone("192.0.2.999")).expect("write broken");
    // Wait for the reload to be attempted and rejected.
    let start = Instant::now();
    let status = loop {
        let st = s.running.as_ref().expect("running").reloader.status();
        if st.last_result == ReloadResult::Error {
            break st;
        }
        assert!(start.elapsed() < SERVED_WITHIN, "bad edit not noticed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let err = status.last_error.expect("error kept");
    assert!(
        err.ends_with(
            "zones/example.com.yaml:6:13: records.www.A: invalid IPv4 address `192.0.2.999`"
        ),
        "{err}"
    );
    assert_eq!(
        www(&s).await,
        ["www.example.com. 300 A 192.0.2.1"],
        "old answers still served"
    );
    assert_eq!(
        s.running.as_ref().map(sipsteer::app::Running::generation),
        gen_before
    );

    std::fs::write(&p, zone("192.0.2.8")).expect("write fix");
    served_after_the_edit(&s, "192.0.2.8").await;
    let st = s.running.as_ref().expect("running").reloader.status();
    assert_eq!(st.last_result, ReloadResult::Ok);
    assert!(st.last_error.is_none());
    assert!(st.rejected >= 1);
    s.stop().await;
}

#[tokio::test]
async fn geoip_database_replace() {
    use crate::support::steer::{GEO_CSV, MAIN_GEO, STEER_ZONE};
    let main = format!("{MAIN_GEO}reload: {{ rescan: 24h }}\n");
    let cfg = ConfigDir::new(&main, &[("example.com.yaml", STEER_ZONE)]);
    std::fs::write(cfg.path("geo.csv"), GEO_CSV).expect("csv");
    let s = TestServer::start_in(cfg).await;
    let q = Q {
        ecs: Some(("24.0.0.0".parse().expect("ip"), 24)),
        ..Q::default()
    };
    let ask = || udp(s.addr, "sip.example.com.", RecordType::A, &q);
    assert_eq!(
        rrs(&ask().await.answers),
        ["sip.example.com. 30 A 192.0.2.40"],
        "New York → us-east"
    );
    // The same network moves to Singapore in the new database.
    let moved = GEO_CSV.replace(
        "24.0.0.0/16,US,NA,40.71,-74.01,New York",
        "24.0.0.0/16,SG,AS,1.29,103.85,Singapore",
    );
    atomic_replace(&s.cfg.path("geo.csv"), &moved);
    let start = Instant::now();
    while rrs(&ask().await.answers) != ["sip.example.com. 30 A 192.0.2.60"] {
        assert!(start.elapsed() < SERVED_WITHIN, "geoip change not served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.stop().await;
}

#[tokio::test]
async fn no_query_fails_during_many_reloads() {
    let s = TestServer::start(WATCHED, &[("example.com.yaml", &zone("192.0.2.1"))]).await;
    let addr = s.addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut loops = Vec::new();
    for tcp_mode in [false, true] {
        let stop = stop.clone();
        loops.push(tokio::task::spawn_blocking(move || {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let p = query("www.example.com.", RecordType::A, &Q::default());
                let reply = if tcp_mode {
                    tcp_raw(addr, &p)
                } else {
                    udp_raw(addr, &p).expect("udp reply, no timeout")
                };
                let m = parse(&reply);
                assert_eq!(rcode(&m), ResponseCode::NoError);
                assert_eq!(m.answers.len(), 1, "answer present");
                n += 1;
            }
            n
        }));
    }
    let p = s.cfg.path("zones/example.com.yaml");
    let reloader = s.running.as_ref().expect("running").reloader.clone();
    for i in 0..60u32 {
        let text = if i % 2 == 0 {
            zone(&format!("192.0.2.{}", 10 + i))
        } else {
            zone("not-an-address")
        };
        std::fs::write(&p, text).expect("write");
        let r = reloader.clone();
        let out = tokio::task::spawn_blocking(move || r.reload(Trigger::Api))
            .await
            .expect("join");
        if i % 2 == 0 {
            assert!(
                matches!(
                    out,
                    sipsteer::reload::Outcome::Applied(_) | sipsteer::reload::Outcome::Unchanged
                ),
                "{out:?}"
            );
        } else {
            assert!(
                matches!(out, sipsteer::reload::Outcome::Rejected(_)),
                "{out:?}"
            );
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for l in loops {
        let n = l.await.expect("query loop had no failure");
        assert!(n > 10, "loop ran ({n} queries)");
    }
    s.stop().await;
}

#[tokio::test]
async fn listen_changes_need_a_restart_and_are_not_half_applied() {
    let s = TestServer::start(WATCHED, &[("example.com.yaml", &zone("192.0.2.1"))]).await;
    std::fs::write(s.cfg.main(), WATCHED.replace("127.0.0.1:0", "127.0.0.1:1")).expect("write");
    std::fs::write(s.cfg.path("zones/example.com.yaml"), zone("192.0.2.9")).expect("write");
    let out = s.reload().await;
    assert!(
        matches!(out, sipsteer::reload::Outcome::Applied(_)),
        "{out:?}"
    );
    let st = s.running.as_ref().expect("running").reloader.status();
    assert_eq!(
        st.restart_needed.as_deref(),
        Some("listen addresses changed: restart sipsteer to apply them")
    );
    // Still serving on the socket bound at start, with the new zone data.
    assert_eq!(www(&s).await, ["www.example.com. 300 A 192.0.2.9"]);
    s.stop().await;
}

#[tokio::test]
async fn query_log_writes_sampled_json_lines() {
    use crate::support::steer::{GEO_CSV, MAIN_GEO, STEER_ZONE};
    let main = format!("{MAIN_GEO}query_log: {{ path: queries.jsonl, sample: 1 }}\n");
    let cfg = ConfigDir::new(&main, &[("example.com.yaml", STEER_ZONE)]);
    std::fs::write(cfg.path("geo.csv"), GEO_CSV).expect("csv");
    let s = TestServer::start_in(cfg).await;
    let q = Q {
        ecs: Some(("81.2.69.0".parse().expect("ip"), 24)),
        ..Q::default()
    };
    udp(s.addr, "SIP.example.com.", RecordType::A, &q).await;
    tcp(s.addr, "nope.example.com.", RecordType::AAAA, &Q::default()).await;
    let path = s.cfg.path("queries.jsonl");
    let start = Instant::now();
    let text = loop {
        let t = std::fs::read_to_string(&path).unwrap_or_default();
        if t.lines().count() >= 2 {
            break t;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "query log not written: {t:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines[0]["name"], "SIP.example.com.");
    assert_eq!(lines[0]["type"], "A");
    assert_eq!(lines[0]["ecs"], "81.2.69.0/24");
    assert_eq!(lines[0]["region"], "uk");
    assert_eq!(lines[0]["reason"], "country");
    assert_eq!(lines[0]["rcode"], 0);
    assert_eq!(lines[0]["proto"], "udp");
    assert_eq!(lines[1]["proto"], "tcp");
    assert_eq!(lines[1]["name"], "nope.example.com.");
    assert_eq!(lines[1]["rcode"], 3);
    assert_eq!(lines[1]["region"], serde_json::Value::Null);
    s.stop().await;
}
