//! The event log at `GET /v1/events`: a real server with real SIP responders records a
//! silenced server's flip, operator states with their note and end, reloads applied and
//! refused with their errors, and load pulls failing and recovering; `since` pages through
//! them.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::load_pull_fake::{FakeProm, series, vector};
use crate::support::console::{self, admin};
use crate::support::dns::{ConfigDir, TestServer};
use crate::support::http::{get, send};
use crate::support::sip::{self, Mode, Responder};

const TOKEN: &str = "events-token-7";

fn main_cfg() -> String {
    console::main_cfg(TOKEN, 2, "")
}

fn zone(uk: &Responder, de: &Responder) -> String {
    console::zone(uk, de, "")
}

async fn page(s: &TestServer, query: &str) -> Value {
    let (code, body) = get(admin(s), &format!("/v1/events{query}")).await;
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("json")
}

/// `(kind, subject, message)` of every event in the ring.
async fn events(s: &TestServer) -> Vec<(String, String, String)> {
    let p = page(s, "").await;
    p["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or("").to_owned(),
                e["subject"].as_str().unwrap_or("").to_owned(),
                e["message"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// Waits for an event of `kind` about `subject`; returns its message.
async fn wait_event(s: &TestServer, kind: &str, subject: &str) -> String {
    let start = Instant::now();
    loop {
        let all = events(s).await;
        if let Some((_, _, m)) = all.iter().find(|(k, sub, _)| k == kind && sub == subject) {
            return m.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no {kind} event for {subject}: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_silenced_server_flips_down_and_back_in_the_event_log() {
    let uk = sip::udp(Mode::Code(200)).await;
    let de = sip::udp(Mode::Code(200)).await;
    let s = TestServer::start(&main_cfg(), &[("example.com.yaml", &zone(&uk, &de))]).await;
    assert_eq!(
        wait_event(&s, "flip", "uk/lon1").await,
        "unknown → up: 200 OK"
    );
    let before = page(&s, "").await["next"].as_u64().expect("next");

    uk.set(Mode::Silent);
    let start = Instant::now();
    loop {
        let p = page(&s, &format!("?since={before}")).await;
        let down = p["events"].as_array().expect("events").iter().find(|e| {
            e["kind"] == "flip"
                && e["subject"] == "uk/lon1"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("up → down"))
        });
        if let Some(e) = down {
            assert!(e["seq"].as_u64().expect("seq") > before);
            assert_eq!(p["missed"], 0);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no down flip: {p}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    uk.set(Mode::Code(200));
    let start = Instant::now();
    loop {
        let all = events(&s).await;
        if all
            .iter()
            .any(|(k, sub, m)| k == "flip" && sub == "uk/lon1" && m == "down → up: 200 OK")
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no up flip: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    s.stop().await;
}

#[tokio::test]
async fn operator_states_are_logged_with_note_and_end() {
    let uk = sip::udp(Mode::Code(200)).await;
    let de = sip::udp(Mode::Code(200)).await;
    let s = TestServer::start(&main_cfg(), &[("example.com.yaml", &zone(&uk, &de))]).await;
    let a = admin(&s);
    let (code, body) = send(
        a,
        "PUT",
        "/v1/servers/uk/lon1/state",
        Some(TOKEN),
        Some(r#"{"state":"drain","until":"2099-01-01T00:00:00Z","note":"kernel upgrade"}"#),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        wait_event(&s, "forced", "uk/lon1").await,
        "drain until 2099-01-01T00:00:00Z: kernel upgrade"
    );
    let (code, body) = send(
        a,
        "PUT",
        "/v1/servers/uk/lon1/state",
        Some(TOKEN),
        Some(r#"{"state":"clear"}"#),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let forced: Vec<String> = events(&s)
        .await
        .into_iter()
        .filter(|(k, _, _)| k == "forced")
        .map(|(_, sub, m)| format!("{sub} {m}"))
        .collect();
    assert_eq!(
        forced,
        [
            "uk/lon1 drain until 2099-01-01T00:00:00Z: kernel upgrade",
            "uk/lon1 clear"
        ]
    );

    // A state set for two seconds ends by itself, and that is logged too.
    let until =
        humantime::format_rfc3339_seconds(std::time::SystemTime::now() + Duration::from_secs(2))
            .to_string();
    let (code, body) = send(
        a,
        "PUT",
        "/v1/servers/de/fra1/state",
        Some(TOKEN),
        Some(&format!(r#"{{"state":"down","until":"{until}"}}"#)),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        wait_event(&s, "forced_ended", "de/fra1").await,
        "forced state ended"
    );
    s.stop().await;
}

#[tokio::test]
async fn reloads_are_logged_with_their_errors() {
    let uk = sip::udp(Mode::Code(200)).await;
    let de = sip::udp(Mode::Code(200)).await;
    let cfg = ConfigDir::new(&main_cfg(), &[("example.com.yaml", &zone(&uk, &de))]);
    let s = TestServer::start_in(cfg).await;
    let zone_file = s.cfg.path("zones/example.com.yaml");
    let good = std::fs::read_to_string(&zone_file).expect("read zone");
    std::fs::write(
        &zone_file,
        good.replace("ns: [ns1]", "ns: [ns1]\nttl: nope"),
    )
    .expect("write");
    s.reload().await;
    let main = s.cfg.main().display().to_string();
    let msg = wait_event(&s, "reload_rejected", &main).await;
    let file = zone_file.display().to_string();
    assert_eq!(
        msg,
        format!("refused (api), still serving generation 1:\n{file}:5:6: invalid u32")
    );

    std::fs::write(&zone_file, good.replace("serial: 1", "serial: 2")).expect("write");
    s.reload().await;
    assert_eq!(
        wait_event(&s, "reload", &main).await,
        "generation 2 applied (api)"
    );
    s.stop().await;
}

#[tokio::test]
async fn load_pull_failures_and_recovery_are_logged() {
    let prom = FakeProm::start(vector(&[series("lon1", "5")]), None, None).await;
    prom.set_reply(
        503,
        r#"{"status":"error","errorType":"unavailable","error":"tsdb down"}"#.into(),
    );
    let url = format!("http://{}", prom.addr);
    let main = crate::load_pull_fake::main_cfg(&url, "  interval: 200ms\n");
    let s = crate::load_pull_fake::start(&main, &[]).await;
    let failed = wait_event(&s, "load_pull_failed", &url).await;
    assert_eq!(
        failed,
        format!(
            "query `sum by (server) (sip_active_calls)` to {url}: http 503: prometheus says: tsdb down"
        )
    );
    prom.set_reply(200, vector(&[series("lon1", "5")]));
    assert_eq!(
        wait_event(&s, "load_pull_recovered", &url).await,
        "works again"
    );
    s.stop().await;
}

#[tokio::test]
async fn events_paging_and_bad_queries() {
    let uk = sip::udp(Mode::Code(200)).await;
    let de = sip::udp(Mode::Code(200)).await;
    let s = TestServer::start(&main_cfg(), &[("example.com.yaml", &zone(&uk, &de))]).await;
    wait_event(&s, "flip", "uk/lon1").await;
    wait_event(&s, "flip", "de/fra1").await;
    let p = page(&s, "?since=0&limit=1").await;
    assert_eq!(p["events"].as_array().expect("events").len(), 1);
    assert_eq!(p["next"], 1);
    assert_eq!(p["events"][0]["seq"], 1);
    let p = page(&s, "?since=1&limit=1").await;
    assert_eq!(p["events"][0]["seq"], 2);
    assert_eq!(p["next"], 2);
    let (code, body) = get(admin(&s), "/v1/events?since=-1").await;
    assert_eq!(code, 400);
    assert_eq!(
        body,
        r#"{"error":"bad query: use ?since=N&limit=M (non-negative integers)"}"#
    );
    // Read-only: no changing method is routed.
    let (code, _) = send(admin(&s), "POST", "/v1/events", Some(TOKEN), None).await;
    assert_eq!(code, 405);
    s.stop().await;
}
