//! Several instances agree: two sipsteer instances load one config directory; a drain written
//! to the operator state file takes effect on both, expires on both, and an API force on one
//! instance stays on that instance. Load pulled from a real Prometheus (started here on
//! loopback, scraping an exporter this test serves) moves both instances' answers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::support::dns::*;
use crate::support::http::{get, send};
use hickory_proto::rr::RecordType;
use sipsteer::reload::Trigger;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "test-token-123";

fn main_cfg(extra: &str) -> String {
    format!(
        r#"
listen: {{ dns: ["127.0.0.1:0"], admin: "127.0.0.1:0" }}
zones: zones
admin: {{ token: {TOKEN} }}
operator_state: operator-state.yaml
health: {{ check: none }}
{extra}
"#
    )
}

const ZONE: &str = r#"
zone: example.com
soa: { primary: ns1, contact: hostmaster, serial: 1 }
ns: [ns1]
records:
  ns1: { A: 192.0.2.53 }
regions:
  uk:
    location: [51.5, 0]
    servers:
      lon1: { address: 192.0.2.10, capacity: { calls: 100 } }
      lon2: { address: 192.0.2.11, capacity: { calls: 100 } }
  de:
    location: [50.1, 8.7]
    servers:
      fra1: { address: 192.0.2.20 }
services:
  sip: { regions: [uk, de], fallback: [uk, de], failover: 2 }
"#;

/// The SRV answer as "priority server" pairs, sorted.
async fn srv(addr: SocketAddr) -> Vec<String> {
    let m = udp(
        addr,
        "_sip._udp.sip.example.com.",
        RecordType::SRV,
        &Q::default(),
    )
    .await;
    let mut out: Vec<String> = m
        .answers
        .iter()
        .map(|r| {
            let d = r.data.to_string();
            let f: Vec<&str> = d.split_whitespace().collect();
            let server = f.get(3).and_then(|t| t.split('.').next()).unwrap_or("");
            format!("{} {server}", f.first().unwrap_or(&""))
        })
        .collect();
    out.sort();
    out
}

/// Waits until `addr` answers `want`; returns how long it took.
async fn wait_srv(addr: SocketAddr, want: &[&str], within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let got = srv(addr).await;
        if got == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{addr}: SRV still {got:?}, want {want:?} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn admin(s: &TestServer) -> SocketAddr {
    s.running.as_ref().and_then(|r| r.admin).expect("admin")
}

/// `/v1/servers` entry of one server.
async fn server_json(s: &TestServer, region: &str, server: &str) -> serde_json::Value {
    let (code, body) = get(admin(s), "/v1/servers").await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    v["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .find(|x| x["region"] == region && x["server"] == server)
        .cloned()
        .expect("server listed")
}

fn write_atomic(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

fn rfc3339_in(d: Duration) -> String {
    humantime::format_rfc3339_seconds(SystemTime::now() + d).to_string()
}

const ALL: [&str; 3] = ["10 lon1", "10 lon2", "20 fra1"];

/// A second instance loading the same config directory as the first.
async fn second_instance(dir: &std::path::Path) -> TestServer {
    let main = dir.join("sipsteer.yaml");
    let running = sipsteer::app::start_with(&main, crate::support::dns::load_config(&main))
        .await
        .expect("second instance starts");
    TestServer {
        cfg: ConfigDir {
            dir: tempfile::tempdir().expect("tempdir"),
        },
        addr: running.dns[0],
        running: Some(running),
    }
}

#[tokio::test]
async fn operator_state_file_is_shared_and_api_force_is_not() {
    let cfg = ConfigDir::new(&main_cfg(""), &[("example.com.yaml", ZONE)]);
    let dir = cfg.dir.path().to_path_buf();
    let a = TestServer::start_in(cfg).await;
    let b = second_instance(&dir).await;
    for s in [&a, &b] {
        assert_eq!(srv(s.addr).await, ALL);
    }

    // A drain in the file: both instances drop lon1.
    let state = dir.join("operator-state.yaml");
    write_atomic(&state, "uk/lon1: { state: drain, note: kernel upgrade }\n");
    for s in [&a, &b] {
        wait_srv(s.addr, &["10 lon2", "20 fra1"], Duration::from_secs(3)).await;
        let j = server_json(s, "uk", "lon1").await;
        assert_eq!(j["state"], "drained");
        assert_eq!(j["forced_by"], "file");
        assert_eq!(j["file_state"]["state"], "drain");
        assert_eq!(j["file_state"]["note"], "kernel upgrade");
    }

    // An entry with an expiry: in force now, gone on both once it passes.
    write_atomic(
        &state,
        &format!(
            "uk: {{ state: drain, until: {} }}\n",
            rfc3339_in(Duration::from_secs(3))
        ),
    );
    for s in [&a, &b] {
        wait_srv(s.addr, &["10 fra1"], Duration::from_secs(3)).await;
    }
    for s in [&a, &b] {
        wait_srv(s.addr, &ALL, Duration::from_secs(6)).await;
        let j = server_json(s, "uk", "lon2").await;
        assert_eq!(j["forced_by"], serde_json::Value::Null);
        assert_eq!(j["file_state"]["active"], false);
        assert_eq!(j["file_state"]["region_wide"], true);
    }

    // An API force is this instance's alone, and wins over the file while it is set.
    let (code, body) = send(
        admin(&a),
        "PUT",
        "/v1/servers/uk/lon2/state",
        Some(TOKEN),
        Some(r#"{"state":"drain"}"#),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    wait_srv(a.addr, &["10 lon1", "20 fra1"], Duration::from_secs(2)).await;
    write_atomic(&state, "uk/lon2: { state: up }\nuk/lon1: { state: down }\n");
    wait_srv(b.addr, &["10 lon2", "20 fra1"], Duration::from_secs(3)).await;
    wait_srv(a.addr, &["10 fra1"], Duration::from_secs(3)).await;
    assert_eq!(server_json(&a, "uk", "lon2").await["forced_by"], "api");
    assert_eq!(server_json(&b, "uk", "lon2").await["forced_by"], "file");
    let (code, _) = send(
        admin(&a),
        "PUT",
        "/v1/servers/uk/lon2/state",
        Some(TOKEN),
        Some(r#"{"state":"clear"}"#),
    )
    .await;
    assert_eq!(code, 200);
    wait_srv(a.addr, &["10 lon2", "20 fra1"], Duration::from_secs(2)).await;

    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn bad_operator_state_is_refused_and_the_old_one_kept() {
    let cfg = ConfigDir::new(&main_cfg(""), &[("example.com.yaml", ZONE)]);
    std::fs::write(
        cfg.path("operator-state.yaml"),
        "uk/lon1: { state: drain }\n",
    )
    .expect("write");
    let s = TestServer::start_in(cfg).await;
    wait_srv(s.addr, &["10 lon2", "20 fra1"], Duration::from_secs(2)).await;
    let state = s.cfg.path("operator-state.yaml");
    write_atomic(
        &state,
        "uk/lon1: { state: drain }\nuk/lon9: { state: down }\nde: { state: drainn }\n",
    );
    let r = s.running.as_ref().expect("running");
    let out = r.reloader.reload(Trigger::Api);
    let sipsteer::reload::Outcome::Rejected(e) = out else {
        panic!("bad operator state applied: {out:?}");
    };
    let e = e.to_string();
    let file = state.display().to_string();
    assert!(
        e.contains(&format!(
            "{file}:2:1: uk/lon9: no server `lon9` in region `uk`"
        )),
        "{e}"
    );
    assert!(
        e.contains(&format!(
            "{file}:3:14: de.state: unknown state `drainn` (use drain, down or up)"
        )),
        "{e}"
    );
    assert_eq!(srv(s.addr).await, ["10 lon2", "20 fra1"]);
    s.stop().await;
}

/// A Prometheus exporter serving `sip_active_calls{server=…}` from a shared table.
async fn exporter(calls: Arc<Mutex<HashMap<String, u32>>>) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind exporter");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            let calls = calls.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = c.read(&mut buf).await;
                let mut body = String::from("# TYPE sip_active_calls gauge\n");
                let table = calls.lock().map(|t| t.clone()).unwrap_or_default();
                for (server, n) in table {
                    body.push_str(&format!("sip_active_calls{{server=\"{server}\"}} {n}\n"));
                }
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = c.write_all(reply.as_bytes()).await;
            });
        }
    });
    addr
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_prometheus(target: SocketAddr) -> Option<Prometheus> {
    let bin = which("prometheus")?;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\nscrape_configs:\n  - job_name: sip\n    static_configs: [{{ targets: ['{target}'] }}]\n"
        ),
    )
    .expect("write prometheus config");
    let port = free_port();
    let child = Command::new(bin)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    Some(Prometheus {
        child,
        port,
        _dir: dir,
    })
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.is_file())
}

#[tokio::test]
async fn load_from_prometheus_moves_both_instances_and_fails_open() {
    let calls = Arc::new(Mutex::new(HashMap::from([
        ("lon1".to_owned(), 10u32),
        ("lon2".to_owned(), 10u32),
    ])));
    let exp = exporter(calls.clone()).await;
    let Some(prom) = start_prometheus(exp) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "prometheus is not installed; .ci/run installs the Debian package `prometheus`"
        );
        eprintln!("skipped: the `prometheus` binary is not on PATH (apt-get install prometheus)");
        return;
    };
    let extra = format!(
        "capacity: {{ overflow_at: 0.8, report_ttl: 3s }}\nload: {{ prometheus: \"http://127.0.0.1:{}\", interval: 1s, timeout: 1s, calls: 'sum by (server) (sip_active_calls)' }}\n",
        prom.port
    );
    let cfg = ConfigDir::new(&main_cfg(&extra), &[("example.com.yaml", ZONE)]);
    let dir = cfg.dir.path().to_path_buf();
    let a = TestServer::start_in(cfg).await;
    let b = second_instance(&dir).await;
    // Wait until Prometheus has scraped and both instances pulled a load for lon1.
    let start = Instant::now();
    for s in [&a, &b] {
        loop {
            let j = server_json(s, "uk", "lon1").await;
            if j["load"]["calls"] == 10 {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no load pulled from prometheus: {j}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let (_, status) = get(admin(&a), "/v1/status").await;
    let st: serde_json::Value = serde_json::from_str(&status).expect("json");
    assert_eq!(st["load_pull"]["queries_per_interval"], 1, "{st}");
    assert_eq!(st["load_pull"]["servers"], 2, "{st}");

    // lon1 over overflow_at (80 of 100 calls): both instances move away within
    // interval (1 s) + scrape (1 s) + 2 s.
    calls.lock().expect("table").insert("lon1".into(), 90);
    let changed = Instant::now();
    let bound = Duration::from_secs(4);
    for s in [&a, &b] {
        wait_srv(s.addr, &["10 lon2", "20 fra1"], bound).await;
        let t = changed.elapsed();
        eprintln!(
            "{}: lon1 left the answers {t:?} after the load change",
            s.addr
        );
    }
    calls.lock().expect("table").insert("lon1".into(), 20);
    for s in [&a, &b] {
        wait_srv(s.addr, &ALL, bound).await;
    }

    // Full again, then Prometheus goes away: after report_ttl the load is unknown and both
    // instances fail open (lon1 answered).
    calls.lock().expect("table").insert("lon1".into(), 95);
    for s in [&a, &b] {
        wait_srv(s.addr, &["10 lon2", "20 fra1"], bound).await;
    }
    drop(prom);
    for s in [&a, &b] {
        wait_srv(s.addr, &ALL, Duration::from_secs(3 + 2 + 2)).await;
    }
    let (_, status) = get(admin(&a), "/v1/status").await;
    let st: serde_json::Value = serde_json::from_str(&status).expect("json");
    let err = st["load_pull"]["last_error"].as_str().unwrap_or("");
    assert!(err.contains("cannot reach prometheus"), "{st}");
    let (_, metrics) = get(admin(&a), "/metrics").await;
    let failed: f64 = metrics
        .lines()
        .find(|l| l.starts_with("sipsteer_load_queries_total{result=\"error\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(failed >= 1.0, "{metrics}");

    a.stop().await;
    b.stop().await;
}

#[test]
fn a_thousand_servers_cost_one_query_per_metric_per_interval() {
    let mut zone = String::from(
        "zone: example.com\nsoa: { primary: ns1, contact: hostmaster, serial: 1 }\nns: [ns1]\nregions:\n",
    );
    for r in 0..10 {
        zone.push_str(&format!(
            "  r{r}:\n    location: [{r}, {r}]\n    servers:\n"
        ));
        for s in 0..100 {
            zone.push_str(&format!(
                "      s{s}: {{ address: 192.0.2.{}, capacity: {{ calls: 1000, cps: 100 }} }}\n",
                s + 1
            ));
        }
    }
    zone.push_str("services:\n  sip: { regions: [r0, r1, r2, r3, r4, r5, r6, r7, r8, r9] }\n");
    let extra = "load:\n  prometheus: http://127.0.0.1:9\n  calls: 'sum by (server, region) (sip_active_calls)'\n  cps: 'sum by (server, region) (rate(sip_calls_total[1m]))'\n  match: { label: instance, value: \"$region/$server\" }\n  servers:\n    r3/s7: { calls: 'sip_active_calls{instance=\"$address:9100\"}' }\n";
    let cfg = ConfigDir::new(&main_cfg(extra), &[("example.com.yaml", &zone)]);
    let loaded = sipsteer::config::load(&cfg.main()).expect("config loads");
    let src = loaded.load_source.expect("load source");
    assert_eq!(src.servers.len(), 1000);
    let distinct: std::collections::BTreeSet<&str> = src
        .servers
        .iter()
        .flat_map(|s| [s.calls.as_deref(), s.cps.as_deref()])
        .flatten()
        .collect();
    // Two shared queries, plus the one server with its own calls query.
    assert_eq!(distinct.len(), 3, "{distinct:?}");
    let s7 = src
        .servers
        .iter()
        .find(|s| s.region == "r3" && s.server == "s7")
        .expect("r3/s7");
    assert_eq!(
        s7.calls.as_deref(),
        Some("sip_active_calls{instance=\"192.0.2.8:9100\"}")
    );
    assert_eq!(
        (s7.label.as_str(), s7.value.as_str()),
        ("instance", "r3/s7")
    );
}
