//! What monitoring and operators' tools see from a real sipsteer: the metrics present on the
//! first scrape, every metric the shipped alerts, dashboard and docs name (a server with
//! health per transport among them, sharing its probes with the others), `check: none`
//! servers shown up, rounded headroom, and JSON bodies sent with curl's form content type.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::support::dns::*;
use crate::support::http::{get, send};
use crate::support::sip::{self, Mode};
use hickory_proto::rr::RecordType;

const TOKEN: &str = "scrape-token-123";

fn main_cfg() -> String {
    format!(
        r#"
listen: {{ dns: ["127.0.0.1:0"], admin: "127.0.0.1:0" }}
zones: zones
geoip: {{ database: geo.csv }}
admin: {{ token: {TOKEN} }}
health: {{ check: sip-options-udp, interval: 200ms, timeout: 150ms, rise: 1, fall: 2, tls_ca_file: ca.pem }}
"#
    )
}

/// The zone signs with a keys directory (written at the first load), so the DNSSEC key series
/// the alerts name are in the scrape.
fn zone(sip_port: u16, tls_port: u16) -> String {
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
      lon1: {{ address: 127.0.0.1, port: {sip_port}, capacity: {{ calls: 1000 }} }}
  de:
    location: [50.1, 8.7]
    servers:
      fra1: {{ address: 192.0.2.20, check: none }}
      fra2: {{ address: 127.0.0.1, transports: [tls], tls_port: {tls_port}, check: sip-options-tls, tls_name: sip.example.com }}
      fra3: {{ address: 127.0.0.1, transports: [udp, tls], port: {sip_port}, tls_port: {tls_port}, checks: {{ udp: sip-options }}, tls_name: sip.example.com }}
services:
  sip: {{ regions: [uk, de], fallback: [uk, de] }}
dnssec: {{ keys: keys }}
"#
    )
}

/// A running sipsteer probing a UDP responder on `sip_port` and a TLS one (a fresh CA's
/// certificate for sip.example.com), kept alive as long as the server.
async fn start(sip_port: u16) -> (TestServer, sip::Responder) {
    let ca = crate::support::certs::SipCa::new();
    let tls = sip::tls(Mode::Code(200), ca.acceptor("sip.example.com", false)).await;
    let cfg = ConfigDir::new(
        &main_cfg(),
        &[("example.com.yaml", &zone(sip_port, tls.addr.port()))],
    );
    std::fs::write(cfg.path("ca.pem"), ca.pem()).expect("write ca");
    std::fs::write(
        cfg.path("geo.csv"),
        "network,country,continent,latitude,longitude,city\n81.2.69.0/24,GB,EU,51.51,-0.13,London\n",
    )
    .expect("write csv");
    (TestServer::start_in(cfg).await, tls)
}

/// The value of the first series whose line starts with `prefix`.
fn value(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The names of every series in a scrape.
fn series_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// Every `sipsteer_…` name in a file.
fn names_in(rel: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo_root().join(rel)).expect("read");
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("sipsteer_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        out.insert(name);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_scrape_and_every_named_metric() {
    let responder = sip::udp(Mode::Code(200)).await;
    let (s, _tls) = start(responder.addr.port()).await;
    let a = s.running.as_ref().and_then(|r| r.admin).expect("admin");
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();

    let (code, first) = get(a, "/metrics").await;
    assert_eq!(code, 200);
    assert!(
        value(&first, r#"sipsteer_config_reloads_total{result="ok"}"#).is_some_and(|v| v >= 1.0),
        "{first}"
    );
    assert!(
        value(&first, r#"sipsteer_config_reloads_total{result="error"}"#).is_some(),
        "{first}"
    );
    let last_ok = value(&first, "sipsteer_config_last_success_timestamp_seconds").expect("last ok");
    assert!((started - last_ok).abs() < 3600.0, "{last_ok} vs {started}");
    let tick = value(&first, "sipsteer_probe_last_tick_timestamp_seconds").expect("tick");
    assert!((started - tick).abs() < 3600.0, "{tick} vs {started}");
    assert_eq!(
        value(&first, "sipsteer_probe_targets "),
        Some(2.0),
        "{first}"
    );

    // Probes run and queries are answered, so every series exists.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = get(a, "/v1/servers").await;
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        let lanes_up = v["servers"][3]["transports"]
            .as_array()
            .is_some_and(|l| l.iter().all(|t| t["observed"] == "up"));
        if v["servers"][0]["state"] == "up" && v["servers"][2]["state"] == "up" && lanes_up {
            assert_eq!(v["servers"][1]["state"], "up", "check: none is up: {body}");
            break;
        }
        assert!(Instant::now() < deadline, "lon1 never came up: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let opts = Q::default();
    let m = udp(s.addr, "sip.example.com", RecordType::A, &opts).await;
    assert_eq!(rrs(&m.answers).len(), 1);
    let (_, scrape) = get(a, "/metrics").await;
    let have = series_names(&scrape);
    for file in [
        "examples/grafana/sipsteer.json",
        "examples/prometheus/alerts.yaml",
    ] {
        for name in names_in(file) {
            assert!(
                have.contains(&name),
                "{file} names `{name}`, not in:\n{scrape}"
            );
        }
    }
    for name in names_in("docs/operations.md") {
        assert!(
            have.iter().any(|h| h.starts_with(&name)),
            "docs/operations.md names `{name}`, not in:\n{scrape}"
        );
    }
    assert_eq!(
        value(&scrape, r#"sipsteer_region_healthy_servers{region="uk"}"#),
        Some(1.0)
    );
    drop(responder);
    s.stop().await;
}

/// A PUT as `curl -d` sends it: a JSON body with a form content type.
fn put_form(addr: SocketAddr, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let req = format!(
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let (head, rest) = out.split_once("\r\n\r\n").expect("reply");
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok());
    (code.expect("status"), rest.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_form_bodies_and_rounded_headroom() {
    let responder = sip::udp(Mode::Code(200)).await;
    let (s, _tls) = start(responder.addr.port()).await;
    let a = s.running.as_ref().and_then(|r| r.admin).expect("admin");
    let (code, body) = tokio::task::spawn_blocking(move || {
        put_form(a, "/v1/servers/uk/lon1/load", r#"{"calls":900}"#)
    })
    .await
    .expect("join");
    assert_eq!(code, 200, "{body}");
    let (_, status) = get(a, "/v1/status").await;
    assert!(status.contains(r#""headroom":0.1,"#), "{status}");
    let (code, body) = tokio::task::spawn_blocking(move || {
        put_form(a, "/v1/servers/de/fra1/state", r#"{"state":"drain"}"#)
    })
    .await
    .expect("join");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""state":"drained""#), "{body}");
    let (code, body) = tokio::task::spawn_blocking(move || {
        put_form(a, "/v1/servers/de/fra1/state", "state=drain")
    })
    .await
    .expect("join");
    assert_eq!(code, 400);
    assert_eq!(
        body,
        r#"{"error":"body must be JSON: {\"state\": \"drain|up|down|clear\", \"until\": \"2026-12-01T06:00:00Z\", \"note\": \"text\"}"}"#
    );
    let (code, _) = send(
        a,
        "PUT",
        "/v1/servers/de/fra1/state",
        Some(TOKEN),
        Some(r#"{"state":"clear"}"#),
    )
    .await;
    assert_eq!(code, 200);
    drop(responder);
    s.stop().await;
}
