//! The TLS check end to end: a sipsteer started from YAML probes real TLS SIP responders
//! (valid, expired and wrong-name certificates signed by `health.tls_ca_file`), and
//! `/v1/servers`, `/v1/explain` and `/metrics` show each certificate; the config errors of
//! `tls_name` and `tls_ca_file` with their file:line:col.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::support::certs::{EXPIRED_AT, SipCa, VALID_UNTIL};
use crate::support::dns::{ConfigDir, TestServer};
use crate::support::http::get;
use crate::support::sip::{self, Mode, Responder};

const TOKEN: &str = "test-token-123";
const NAME: &str = "sip.example.com";

fn main_cfg() -> String {
    format!(
        r#"
listen: {{ dns: ["127.0.0.1:0"], admin: "127.0.0.1:0" }}
zones: zones
admin: {{ token: {TOKEN} }}
health: {{ check: sip-options-tls, tls_ca_file: ca.pem, interval: 500ms, timeout: 400ms, rise: 1, fall: 1 }}
"#
    )
}

fn zone(good: &Responder, old: &Responder, wrong: &Responder) -> String {
    format!(
        r#"
zone: example.com
soa: {{ primary: ns1, contact: hostmaster, serial: 1 }}
ns: [ns1]
records:
  ns1: {{ A: 192.0.2.53 }}
regions:
  uk:
    location: [51.5, 0]
    servers:
      good: {{ address: 127.0.0.1, transports: [tls], tls_port: {}, tls_name: {NAME} }}
      old: {{ address: 127.0.0.1, transports: [tls], tls_port: {}, tls_name: {NAME} }}
      wrong: {{ address: 127.0.0.1, transports: [tls], tls_port: {}, tls_name: {NAME} }}
services:
  sip: {{ regions: [uk], transports: [tls] }}
"#,
        good.addr.port(),
        old.addr.port(),
        wrong.addr.port()
    )
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `/v1/servers` once every server has the observed state wanted.
async fn servers_once(s: &TestServer, want: &[(&str, &str)]) -> Vec<Value> {
    let admin = s.running.as_ref().and_then(|r| r.admin).expect("admin");
    let start = Instant::now();
    loop {
        let (code, body) = get(admin, "/v1/servers").await;
        assert_eq!(code, 200, "{body}");
        let v: Value = serde_json::from_str(&body).expect("json");
        let list = v["servers"].as_array().cloned().unwrap_or_default();
        let done = want.iter().all(|(name, state)| {
            list.iter()
                .any(|x| x["server"] == *name && x["observed"] == *state)
        });
        if done {
            return list;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "servers never reached {want:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `/metrics`: each certificate's seconds left (taken at scrape time, negative once
/// expired) and the failures by reason.
async fn check_metrics(admin: std::net::SocketAddr) {
    // The gauge is taken at scrape time: seconds left now, negative once expired.
    let (code, metrics) = get(admin, "/metrics").await;
    assert_eq!(code, 200);
    let now = unix_now();
    let series = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no series {name}:\n{metrics}"))
    };
    let gauge = |server: &str| {
        series(&format!(
            "sipsteer_sip_tls_cert_expiry_seconds{{region=\"uk\",server=\"{server}\"}}"
        ))
    };
    assert!((gauge("good") - (VALID_UNTIL - now) as f64).abs() <= 5.0);
    assert!(gauge("old") < 0.0);
    assert!((gauge("old") - (EXPIRED_AT - now) as f64).abs() <= 5.0);
    let failures = |server: &str, reason: &str| {
        series(&format!(
            "sipsteer_sip_tls_failures_total{{region=\"uk\",server=\"{server}\",reason=\"{reason}\"}}"
        ))
    };
    assert_eq!(failures("good", "expired"), 0.0);
    assert_eq!(failures("good", "name_mismatch"), 0.0);
    assert!(failures("old", "expired") >= 1.0);
    assert_eq!(failures("old", "name_mismatch"), 0.0);
    assert!(failures("wrong", "name_mismatch") >= 1.0);
    assert_eq!(failures("wrong", "untrusted"), 0.0);
}

#[tokio::test]
async fn certificates_show_in_servers_explain_and_metrics() {
    let ca = SipCa::new();
    let good = sip::tls(Mode::Code(200), ca.acceptor(NAME, false)).await;
    let old = sip::tls(Mode::Code(200), ca.acceptor(NAME, true)).await;
    let wrong = sip::tls(Mode::Code(200), ca.acceptor("other.example.com", false)).await;
    let cfg = ConfigDir::new(
        &main_cfg(),
        &[("example.com.yaml", &zone(&good, &old, &wrong))],
    );
    std::fs::write(cfg.path("ca.pem"), ca.pem()).expect("write ca");
    let s = TestServer::start_in(cfg).await;
    let list = servers_once(&s, &[("good", "up"), ("old", "down"), ("wrong", "down")]).await;
    let by = |n: &str| {
        list.iter()
            .find(|x| x["server"] == n)
            .cloned()
            .expect("server listed")
    };

    let now = unix_now();
    let g = by("good");
    assert_eq!(g["check"], "sip-options-tls");
    assert_eq!(g["last_result"], "200 OK");
    let c = &g["tls_certificate"];
    assert_eq!(c["not_after_unix"], VALID_UNTIL);
    assert_eq!(c["failure"], Value::Null);
    let left = c["expires_in_secs"].as_i64().expect("secs");
    assert!((VALID_UNTIL - now - left).abs() <= 5, "{left}");
    assert_eq!(c["days_left"], (VALID_UNTIL - now).div_euclid(86_400));

    let o = by("old");
    let c = &o["tls_certificate"];
    assert_eq!(c["not_after_unix"], EXPIRED_AT);
    assert_eq!(c["failure"], "expired");
    let left = c["expires_in_secs"].as_i64().expect("secs");
    assert!(left < 0 && (EXPIRED_AT - now - left).abs() <= 5, "{left}");
    assert!(
        o["last_result"]
            .as_str()
            .is_some_and(|r| r.starts_with("tls: ")),
        "{o}"
    );

    let w = by("wrong");
    assert_eq!(w["tls_certificate"]["failure"], "name_mismatch");
    assert_eq!(w["tls_certificate"]["not_after_unix"], VALID_UNTIL);

    let admin = s.running.as_ref().and_then(|r| r.admin).expect("admin");
    check_metrics(admin).await;

    // Only the server whose certificate verified is answered.
    let srv = crate::support::dns::udp(
        s.addr,
        "_sips._tcp.sip.example.com.",
        hickory_proto::rr::RecordType::SRV,
        &crate::support::dns::Q::default(),
    )
    .await;
    let targets: Vec<String> = srv.answers.iter().map(|r| r.data.to_string()).collect();
    assert_eq!(targets.len(), 1, "{targets:?}");
    assert!(targets[0].contains(" good."), "{targets:?}");

    // Explain shows the days left.
    let (code, text) = get(
        admin,
        "/v1/explain?client=192.0.2.1&name=sip.example.com&type=A&format=text",
    )
    .await;
    assert_eq!(code, 200, "{text}");
    let days = (VALID_UNTIL - unix_now()).div_euclid(86_400);
    assert!(
        text.contains(&format!("good up (tls certificate: {days} days left)")),
        "{text}"
    );
    let expired_days = (unix_now() - EXPIRED_AT).div_euclid(86_400) + 1;
    assert!(
        text.contains(&format!(
            "old down (tls certificate expired {expired_days} days ago)"
        )),
        "{text}"
    );
    assert_eq!(old.count(), 0, "no request over an unverified connection");
    assert!(good.count() >= 1);
}

fn errors(main: &str, zone: &str) -> Vec<String> {
    let dir = ConfigDir::new(main, &[("z.yaml", zone)]);
    let root = format!("{}/", dir.dir.path().display());
    match sipsteer::config::load(&dir.main()) {
        Ok(_) => Vec::new(),
        Err(e) => {
            e.0.iter()
                .map(|e| e.to_string().replace(&root, ""))
                .collect()
        }
    }
}

#[test]
fn tls_check_config_errors() {
    let main = r#"
listen: { dns: ["127.0.0.1:0"], admin: "off" }
zones: zones
health: { check: none, tls_ca_file: missing.pem }
"#;
    let zone = r#"zone: example.com
soa: { primary: ns1, contact: hostmaster, serial: 1 }
ns: [ns1]
regions:
  uk:
    location: [51.5, 0]
    health: { tls_ca_file: ca.pem }
    servers:
      a: { address: 192.0.2.1, check: sip-options-tls }
      b: { address: 192.0.2.2, check: sip-options-tls, tls_name: "not a name" }
      c: { address: 192.0.2.3, check: sip-options-tls, tls_name: 192.0.2.3 }
      d: { address: 192.0.2.4, check: sip-options-udp, tls_name: sip.example.com }
      e: { address: 192.0.2.5, check: sip-options-tls, tls_name: sip.example.com }
"#;
    assert_eq!(
        errors(main, zone),
        [
            "sipsteer.yaml:4:37: health.tls_ca_file: cannot read missing.pem: no such file or directory",
            "zones/z.yaml:7:28: regions.uk.health.tls_ca_file: belongs in the top-level health section",
            "zones/z.yaml:9:39: regions.uk.servers.a.tls_name: check sip-options-tls needs `tls_name`, the SIP domain its certificate must name",
            "zones/z.yaml:10:66: regions.uk.servers.b.tls_name: invalid DNS name `not a name`",
            "zones/z.yaml:11:66: regions.uk.servers.c.tls_name: invalid DNS name `192.0.2.3`",
            "zones/z.yaml:12:66: regions.uk.servers.d.tls_name: applies only to checks sip-options-tls and sip-options-wss",
        ]
    );
}

/// The real binary probing a server whose certificate expires in ten days logs the 14-day
/// warning once, however many probes read it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_near_its_end_is_warned_about_once() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let ca = SipCa::new();
    let not_after = unix_now() + 10 * 86_400 - 60;
    let r = sip::tls(Mode::Code(200), ca.acceptor_until(NAME, not_after)).await;
    let main = r#"
listen: { dns: ["127.0.0.1:0"], admin: "off" }
zones: zones
health: { check: sip-options-tls, tls_ca_file: ca.pem, interval: 100ms, timeout: 100ms }
"#;
    let zone = format!(
        "zone: example.com\nsoa: {{ primary: ns1, contact: hostmaster, serial: 1 }}\nns: [ns1]\n\
         records:\n  ns1: {{ A: 192.0.2.53 }}\nregions:\n  uk:\n    location: [51.5, 0]\n    servers:\n      \
         lon1: {{ address: 127.0.0.1, transports: [tls], tls_port: {}, tls_name: {NAME} }}\n",
        r.addr.port()
    );
    let cfg = ConfigDir::new(main, &[("example.com.yaml", &zone)]);
    std::fs::write(cfg.path("ca.pem"), ca.pem()).expect("write ca");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sipsteer"))
        .arg("serve")
        .arg("--config")
        .arg(cfg.main())
        .env_remove("RUST_LOG")
        .env_remove("SIPSTEER_LOG_FORMAT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // Wait for ten probes of the server, then read what was logged.
    let start = Instant::now();
    while r.count() < 10 {
        assert!(start.elapsed() < Duration::from_secs(30), "too few probes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let lines: Vec<String> = rx.try_iter().collect();
    let warned: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("tls certificate"))
        .collect();
    assert_eq!(warned.len(), 1, "{lines:#?}");
    assert!(warned[0].contains("WARN"), "{}", warned[0]);
    assert!(warned[0].contains("uk/lon1"), "{}", warned[0]);
    assert!(
        warned[0].contains("tls certificate expires in 9 days (within 14 days)"),
        "{}",
        warned[0]
    );
}
