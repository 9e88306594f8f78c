//! The admin API's reading endpoints: metrics that move, status and explain JSON, readiness,
//! reload through the API, and forced states that survive a restart.

use crate::support::dns::*;
use crate::support::http::{get, send};
use crate::support::steer::{GEO_CSV, STEER_ZONE};
use hickory_proto::rr::RecordType;

const TOKEN: &str = "admin-token-42";

fn main_cfg() -> String {
    format!(
        "listen: {{ dns: [\"127.0.0.1:0\"], admin: \"127.0.0.1:0\" }}\nzones: zones\ngeoip: {{ database: geo.csv }}\nadmin: {{ token: {TOKEN}, state_file: state.json }}\nhealth: {{ check: none }}\n"
    )
}

async fn server() -> TestServer {
    let cfg = ConfigDir::new(&main_cfg(), &[("example.com.yaml", STEER_ZONE)]);
    std::fs::write(cfg.path("geo.csv"), GEO_CSV).expect("csv");
    TestServer::start_in(cfg).await
}

fn admin(s: &TestServer) -> std::net::SocketAddr {
    s.running.as_ref().and_then(|r| r.admin).expect("admin")
}

/// The value of one exact series line in a scrape.
fn series(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_move_with_queries_and_reloads() {
    let s = server().await;
    let a = admin(&s);
    let (code, before) = get(a, "/metrics").await;
    assert_eq!(code, 200);
    assert_eq!(
        series(&before, r#"sipsteer_config_reloads_total{result="ok"}"#),
        1.0
    );
    let q = Q {
        ecs: Some(("81.2.69.0".parse().expect("ip"), 24)),
        ..Q::default()
    };
    for _ in 0..3 {
        udp(s.addr, "sip.example.com.", RecordType::A, &q).await;
    }
    udp(s.addr, "nope.example.com.", RecordType::A, &Q::default()).await;
    let steered = r#"sipsteer_queries_total{type="A",rcode="NOERROR",reason="country"}"#;
    let nx = r#"sipsteer_queries_total{type="A",rcode="NXDOMAIN",reason="static"}"#;
    let zone = r#"sipsteer_zone_queries_total{zone="example.com."}"#;
    let region = r#"sipsteer_region_answers_total{region="uk"}"#;
    let ecs = r#"sipsteer_queries_ecs_total{ecs="present"}"#;
    let (_, after) = get(a, "/metrics").await;
    // Every instance counts on its own: exactly what this test sent.
    assert_eq!(series(&after, steered), 3.0, "{after}");
    assert_eq!(series(&after, nx), 1.0);
    assert_eq!(series(&after, zone), 4.0);
    assert_eq!(series(&after, region), 3.0);
    assert_eq!(series(&after, ecs), 3.0);

    let ok = r#"sipsteer_config_reloads_total{result="ok"}"#;
    let err = r#"sipsteer_config_reloads_total{result="error"}"#;
    std::fs::write(
        s.cfg.path("zones/example.com.yaml"),
        STEER_ZONE.replace("serial: 1", "serial: 2"),
    )
    .expect("write");
    let (code, body) = send(a, "POST", "/v1/reload", Some(TOKEN), None).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""result":"ok""#), "{body}");
    std::fs::write(s.cfg.path("zones/example.com.yaml"), "zone: [").expect("write");
    let (code, body) = send(a, "POST", "/v1/reload", Some(TOKEN), None).await;
    assert_eq!(code, 422);
    assert!(body.contains("zones/example.com.yaml:1:"), "{body}");
    let (_, last) = get(a, "/metrics").await;
    assert_eq!(series(&last, ok), 2.0, "{last}");
    assert_eq!(series(&last, err), 1.0);
    assert_eq!(series(&last, "sipsteer_config_generation"), 2.0, "{last}");
    let (_, status) = get(a, "/v1/status").await;
    let st: serde_json::Value = serde_json::from_str(&status).expect("status json");
    assert_eq!(st["generation"], 2, "{st}");
    assert!(
        last.contains("sipsteer_servers{state=\"unknown\"}"),
        "{last}"
    );
    assert_eq!(send(a, "POST", "/v1/reload", None, None).await.0, 401);
    s.stop().await;
}

#[tokio::test]
async fn status_and_explain_json() {
    let s = server().await;
    let a = admin(&s);
    let (code, body) = get(a, "/v1/status").await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["generation"], 1);
    assert_eq!(v["reload"]["last_result"], "ok");
    assert!(
        v["reload"]["files"]
            .as_array()
            .is_some_and(|f| f.len() == 2),
        "{body}"
    );
    assert!(
        v["reload"]["files"][0]["hash"]
            .as_str()
            .is_some_and(|h| h.len() == 16)
    );
    assert_eq!(v["geoip"]["database_type"], "sipsteer-csv");
    assert_eq!(v["zones"][0]["zone"], "example.com.");
    assert_eq!(v["zones"][0]["services"][0], "sip.example.com.");
    assert_eq!(v["servers"].as_array().map(Vec::len), Some(8));

    let (code, body) = get(
        a,
        "/v1/explain?client=192.0.2.1&ecs=81.2.69.0/24&name=_sip._udp.sip.example.com&type=SRV",
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let e: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(e["location"]["country"], "GB");
    assert_eq!(
        e["location"]["network"], "81.2.68.0 - 81.2.69.255",
        "two London /24s, one range"
    );
    assert_eq!(e["service"]["reason"], "country");
    assert_eq!(e["service"]["tiers"], serde_json::json!(["uk", "ams"]));
    assert_eq!(e["service"]["ranking"][0]["region"], "uk");
    assert_eq!(e["ecs_scope"], 23);
    assert_eq!(
        e["answer"][0],
        "_sip._udp.sip.example.com. 30 SRV 10 100 5060 lon1.uk.sip.example.com."
    );
    let (code, body) = get(a, "/v1/explain?client=nope&name=x").await;
    assert_eq!(code, 400, "{body}");

    // Live health shows in explain: drain lon1 and lon2, the backup answers.
    for srv in ["lon1", "lon2"] {
        let p = format!("/v1/servers/uk/{srv}/state");
        assert_eq!(
            send(a, "PUT", &p, Some(TOKEN), Some(r#"{"state":"drain"}"#))
                .await
                .0,
            200
        );
    }
    let (_, body) = get(
        a,
        "/v1/explain?client=81.2.69.1&name=_sip._udp.sip.example.com&type=SRV",
    )
    .await;
    let e: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        e["answer"][0], "_sip._udp.sip.example.com. 30 SRV 11 100 5060 lon3.uk.sip.example.com.",
        "{body}"
    );
    assert_eq!(e["service"]["ranking"][0]["servers"][0]["state"], "drained");
    let (code, _) = get(a, "/healthz").await;
    assert_eq!(code, 200);
    let (code, _) = get(a, "/readyz").await;
    assert_eq!(code, 200, "nothing to probe: ready at once");
    s.stop().await;
}

#[tokio::test]
async fn forced_states_survive_a_restart() {
    let cfg = ConfigDir::new(&main_cfg(), &[("example.com.yaml", STEER_ZONE)]);
    std::fs::write(cfg.path("geo.csv"), GEO_CSV).expect("csv");
    std::fs::write(
        cfg.path("state.json"),
        r#"{"uk/lon1": "drained", "uk/lon2": "down"}"#,
    )
    .expect("state");
    let s = TestServer::start_in(cfg).await;
    let m = udp(
        s.addr,
        "_sip._udp.sip.example.com.",
        RecordType::SRV,
        &Q {
            ecs: Some(("81.2.69.0".parse().expect("ip"), 24)),
            ..Q::default()
        },
    )
    .await;
    assert_eq!(
        rrs(&m.answers),
        [
            "_sip._udp.sip.example.com. 30 SRV 11 100 5060 lon3.uk.sip.example.com.",
            "_sip._udp.sip.example.com. 30 SRV 20 100 5060 ams1.ams.sip.example.com.",
        ]
    );
    s.stop().await;
}

#[tokio::test]
async fn admin_without_token_refuses_changes() {
    let cfg = ConfigDir::new(
        "listen: { dns: [\"127.0.0.1:0\"], admin: \"127.0.0.1:0\" }\nzones: zones\nhealth: { check: none }\n",
        &[("example.com.yaml", STEER_ZONE)],
    );
    let s = TestServer::start_in(cfg).await;
    let (code, body) = send(
        admin(&s),
        "PUT",
        "/v1/servers/uk/lon1/state",
        Some("anything-at-all"),
        Some(r#"{"state":"drain"}"#),
    )
    .await;
    assert_eq!(code, 403);
    assert!(body.contains("changing endpoints are disabled"), "{body}");
    s.stop().await;
}

#[tokio::test]
async fn explain_cli_reads_live_states() {
    let s = server().await;
    let a = admin(&s);
    for srv in ["lon1", "lon2"] {
        let p = format!("/v1/servers/uk/{srv}/state");
        assert_eq!(
            send(a, "PUT", &p, Some(TOKEN), Some(r#"{"state":"drain"}"#))
                .await
                .0,
            200
        );
    }
    let cfg = s.cfg.main();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_sipsteer"))
            .args(["explain", "--config"])
            .arg(cfg)
            .args([
                "--live",
                &format!("http://{a}"),
                "--client",
                "81.2.69.1",
                "_sip._udp.sip.example.com",
                "SRV",
            ])
            .output()
            .expect("run")
    })
    .await
    .expect("join");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("lon1 drained, lon2 drained, lon3 up (backup)"),
        "{text}"
    );
    assert!(
        text.contains("_sip._udp.sip.example.com. 30 SRV 11 100 5060 lon3.uk.sip.example.com."),
        "{text}"
    );
    s.stop().await;
}
